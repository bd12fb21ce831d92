"""refquant.kernels.tflite and refquant.kernels.tosa: integer requantization.

Expected values come from hand-worked cases (the arithmetic is in the comments) and from an
independent formulation with exact Python integers / Fractions that states each rounding
rule as a rational rounding ("nearest, ties toward +inf", "nearest, ties away from zero"),
compared bit for bit with the vectorised kernels on Hypothesis-generated int32 inputs.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.kernels import tflite as tfl
from refquant.kernels import tosa

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)
i32 = st.integers(I32_MIN, I32_MAX)


# ---------------------------------------------------------------- independent formulation
def half_up(q: Fraction) -> int:
    """Nearest integer, ties toward +inf."""
    return math.floor(q + Fraction(1, 2))


def half_away(q: Fraction) -> int:
    """Nearest integer, ties away from zero."""
    return int(math.copysign(math.floor(abs(q) + Fraction(1, 2)), q))


def wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def ref_srdhm(a: int, b: int) -> int:
    # high 32 bits of 2ab, i.e. ab / 2**31, rounded to nearest with ties toward +inf; the one
    # value beyond int32 (a = b = INT32_MIN gives 2**31) saturates.
    if a == b == I32_MIN:
        return I32_MAX
    return half_up(Fraction(a * b, 2**31))


def ref_rdbpot(x: int, e: int) -> int:
    return half_away(Fraction(x, 2**e))


def ref_mbqm(x: int, qm: int, shift: int, rounding: str) -> int:
    if rounding == "single":
        # one rounding of the exact product x * qm * 2**(shift - 31), ties toward +inf
        return wrap32(half_up(Fraction(x * qm) * Fraction(2) ** (shift - 31)))
    x1 = wrap32(x * 2 ** max(shift, 0))
    return ref_rdbpot(ref_srdhm(x1, qm), max(-shift, 0))


def ref_apply_scale_32(v: int, m: int, s: int, double_round: bool) -> int:
    if double_round and s > 31:
        # round at bit 31 first (ties toward +inf), then the rest (ties away from zero)
        return half_away(Fraction(half_up(Fraction(v * m, 2**31)), 2 ** (s - 31)))
    return half_up(Fraction(v * m, 2**s))


def ref_quantize_multiplier(real: float, rounding: str) -> tuple[int, int]:
    # real = q * 2**e with q in [0.5, 1), via exact Fractions rather than frexp
    f = Fraction(real)
    if f == 0:
        return 0, 0
    e = 0
    while f >= 1:
        f /= 2
        e += 1
    while f < Fraction(1, 2):
        f *= 2
        e -= 1
    qf = half_away(f * 2**31)
    if qf == 2**31:
        qf, e = 2**30, e + 1
    if e < -31:
        return 0, 0
    if rounding == "single" and e > 30:
        return I32_MAX, 30
    return qf, e


# ---------------------------------------------------------------- hand-worked: TFLite
def test_quantize_multiplier_hand_worked():
    # 0.5 = 0.5 * 2**0 -> q_fixed = 0.5 * 2**31 = 2**30, shift 0
    assert tfl.quantize_multiplier(0.5) == (1 << 30, 0)
    # 1.0 = 0.5 * 2**1 -> (2**30, 1)
    assert tfl.quantize_multiplier(1.0) == (1 << 30, 1)
    # 0.75 -> 0.75 * 2**31 = 1610612736, shift 0
    assert tfl.quantize_multiplier(0.75) == (1610612736, 0)
    # 1 - 2**-40: q * 2**31 = 2**31 - 2**-9 rounds to 2**31 -> halved: (2**30, shift 0 + 1)
    assert tfl.quantize_multiplier(1 - 2.0**-40) == (1 << 30, 1)
    # 2**-40 = 0.5 * 2**-39: shift -39 < -31 flushes to (0, 0)
    assert tfl.quantize_multiplier(2.0**-40) == (0, 0)
    assert tfl.quantize_multiplier(2.0**-32) == (1 << 30, -31)  # 0.5 * 2**-31: kept
    assert tfl.quantize_multiplier(0.0) == (0, 0)
    # 2**40 = 0.5 * 2**41: double rounding keeps shift 41; single saturates to (2**31-1, 30)
    assert tfl.quantize_multiplier(2.0**40) == (1 << 30, 41)
    assert tfl.quantize_multiplier(2.0**40, rounding="single") == (I32_MAX, 30)
    # 0.1: frexp = (0.8, -3); 0.8 * 2**31 = 1717986918.4 -> 1717986918
    assert tfl.quantize_multiplier(0.1) == (1717986918, -3)


def test_srdhm_hand_worked():
    # INT32_MIN * INT32_MIN: 2ab / 2**32 = 2**31 does not fit int32 -> saturates to INT32_MAX
    assert tfl.saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN) == I32_MAX
    # INT32_MIN * INT32_MAX = -2**62 + 2**31 -> /2**31 = -2**31 + 1 exactly
    assert tfl.saturating_rounding_doubling_high_mul(I32_MIN, I32_MAX) == I32_MIN + 1
    # 2**30 * 2**30 = 2**60 -> /2**31 = 2**29
    assert tfl.saturating_rounding_doubling_high_mul(1 << 30, 1 << 30) == 1 << 29
    # 3 * 2**30 / 2**31 = 1.5: nudge 2**30 -> (3*2**30 + 2**30) / 2**31 = 2
    assert tfl.saturating_rounding_doubling_high_mul(3, 1 << 30) == 2
    # -1.5: nudge 1 - 2**30 -> (-2**32 + 1) / 2**31 = -1.9999..., truncated -> -1:
    # ties go toward +inf, not away from zero
    assert tfl.saturating_rounding_doubling_high_mul(-3, 1 << 30) == -1
    # -1.5 minus a hair: a = -3 * 2**29 - 1, b = 2 -> ab = -3 * 2**30 - 2;
    # (ab + 1 - 2**30) / 2**31 = (-2**32 - 1) / 2**31 -> truncated -2
    assert tfl.saturating_rounding_doubling_high_mul(-3 * (1 << 29) - 1, 2) == -2
    out = tfl.saturating_rounding_doubling_high_mul(np.array([5, -5], np.int32), 1 << 30)
    assert out.dtype == np.int32 and out.tolist() == [3, -2]  # 2.5 -> 3, -2.5 -> -2


def test_rounding_divide_by_pot_hand_worked():
    x = np.array([3, -3, -5, -6, 5, 6], dtype=np.int32)
    # /2: 1.5 -> 2, -1.5 -> -2 (ties away from zero)
    assert tfl.rounding_divide_by_pot(x[:2], 1).tolist() == [2, -2]
    # /4: -5 -> -1.25 -> -1 (mask 3, remainder -5 & 3 = 3 > threshold 1 + 1; -5 >> 2 = -2, +1)
    # -6 -> -1.5 -> -2 (remainder 2 == threshold 2: no increment); 5 -> 1; 6 -> 1.5 -> 2
    assert tfl.rounding_divide_by_pot(x[2:], 2).tolist() == [-1, -2, 1, 2]
    # exponent 31: INT32_MIN -> -1 exactly; +-2**30 -> +-0.5 -> +-1; INT32_MAX -> 0.99.. -> 1
    v = np.array([I32_MIN, -(1 << 30), 1 << 30, I32_MAX, -(1 << 30) + 1], dtype=np.int32)
    assert tfl.rounding_divide_by_pot(v, 31).tolist() == [-1, -1, 1, 1, 0]
    assert tfl.rounding_divide_by_pot(v, 0).tolist() == v.tolist()


def test_mbqm_hand_worked():
    mbqm = tfl.multiply_by_quantized_multiplier
    half = 1 << 30  # 0.5 in Q31
    # 100 * 0.5 = 50 in both variants
    assert mbqm(100, half, 0) == 50 and mbqm(100, half, 0, rounding="single") == 50
    # 1 * 0.5 * 2**-1 = 0.25: double: SRDHM 0.5 -> 1 (ties up), then 1/2 = 0.5 -> 1;
    # single: (2**30 + 2**31) >> 32 = 0. The double-rounding error of PR #50290.
    assert mbqm(1, half, -1) == 1 and mbqm(1, half, -1, rounding="single") == 0
    # shift -31: (2**31-1) * 0.5 * 2**-31 = 0.4999999998: double: SRDHM -> 2**30 (rounded
    # up from 2**30 - 0.5), RDBPOT(2**30, 31) = 0.5 -> 1; single: (2**62 - 2**30) >> 62 = 0
    assert mbqm(I32_MAX, half, -31) == 1 and mbqm(I32_MAX, half, -31, rounding="single") == 0
    # shift 30: 1 * 0.5 * 2**30 = 2**29 in both (double: 1 << 30 then SRDHM(2**30, 2**30))
    assert mbqm(1, half, 30) == 1 << 29 and mbqm(1, half, 30, rounding="single") == 1 << 29
    # wrap: double: 3 << 30 = 3221225472 wraps to -2**30 in int32 -> SRDHM(-2**30, 2**30)
    # = -2**29; single: (3 * 2**30 + 1) >> 1 = 3 * 2**29 = 1610612736, the exact value
    assert mbqm(3, half, 30) == -(1 << 29)
    assert mbqm(3, half, 30, rounding="single") == 3 << 29
    # single, result beyond int32: 5 * 2**29 = 2684354560 truncates to 2684354560 - 2**32
    assert mbqm(5, half, 30, rounding="single") == 5 * 2**29 - 2**32
    # negative tie in single rounding: -3 * 0.5 = -1.5 -> (-3*2**30 + 2**30) >> 31 = -1
    assert mbqm(-3, half, 0, rounding="single") == -1


# ---------------------------------------------------------------- hand-worked: TOSA
def test_apply_scale_hand_worked():
    # 5 * 3 / 2**4 = 0.9375: (15 + 8) >> 4 = 1
    assert tosa.apply_scale_32(5, 3, 4) == 1
    # -6 * 4 / 2**4 = -1.5: (-24 + 8) >> 4 = -1 (ties toward +inf)
    assert tosa.apply_scale_32(-6, 4, 4) == -1
    # value outside [-2**(shift-1), 2**(shift-1)) is a REQUIRE failure
    with pytest.raises(ValueError, match="value"):
        tosa.apply_scale_32(4, 1, 3)
    # double_round, shift 32: value 1, multiplier 2**30 -> 1 * 2**30 / 2**32 = 0.25;
    # round = 2**31 + 2**30 -> (2**30 + 3 * 2**30) >> 32 = 1 (single round: 0)
    assert tosa.apply_scale_32(1, 1 << 30, 32, True) == 1
    assert tosa.apply_scale_32(1, 1 << 30, 32, False) == 0
    # negative, shift 32: -1 * 2**30: round = 2**31 - 2**30 -> 0 >> 32 = 0 (-0.25 -> 0)
    assert tosa.apply_scale_32(-1, 1 << 30, 32, True) == 0
    # double_round has no effect for shift <= 31: 3 * 2**30 / 2**31 = 1.5 -> 2 either way
    assert tosa.apply_scale_32(3, 1 << 30, 31, True) == 2 == tosa.apply_scale_32(3, 1 << 30, 31)
    # apply_scale_16: int48 value 2**40 * 3 / 2**12 = 3 * 2**28
    assert tosa.apply_scale_16(np.int64(2**40), 3, 12) == 3 << 28
    # -5 * 3 / 2**3 = -1.875 -> (-15 + 4) >> 3 = -2
    assert tosa.apply_scale_16(-5, 3, 3) == -2
    with pytest.raises(ValueError, match="int32"):
        tosa.apply_scale_16(np.int64(2**46), 32767, 2)


def test_rescale_hand_worked():
    x = np.array([[-128, 0, 127], [10, -10, 5]], dtype=np.int8)
    # int8 -> int8, zp_in -1, zp_out 3, multiplier 2**30 shift 31 (x 0.5), single round:
    # (-128+1)*0.5 = -63.5 -> -63 (+3 = -60); (0+1)*0.5 -> 1 (+3 = 4); 128*0.5 = 64 -> 67;
    # 11*0.5 = 5.5 -> 6 -> 9; -9*0.5 = -4.5 -> -4 -> -1; 6*0.5 = 3 -> 6
    y = tosa.rescale(x, 1 << 30, 31, out_dtype=np.int8, input_zp=-1, output_zp=3)
    assert y.dtype == np.int8 and y.tolist() == [[-60, 4, 67], [9, -1, 6]]
    # per channel (last axis) to uint8 with output_zp 128 and clamping: multipliers x2 (2**30
    # shift 29), x0.5, x1 -> [-256, 0, 127] + 128 -> [0 (clamped from -128), 128, 255]
    m = np.array([1 << 30, 1 << 30, 1 << 30], np.int32)
    s = np.array([29, 31, 30], np.int32)
    y = tosa.rescale(x, m, s, out_dtype=np.uint8, output_zp=128, per_channel=True)
    assert y.dtype == np.uint8 and y.tolist() == [[0, 128, 255], [148, 123, 133]]
    # 16-bit scale: int16 -> int8 clamps at 127 / -128
    y = tosa.rescale(np.array([1000, -1000, 100], np.int16), 16384, 15, out_dtype=np.int8,
                     scale32=False)
    assert y.tolist() == [127, -128, 50]
    # uint16 with zp 32768 -> int16
    y = tosa.rescale(np.array([0, 32768, 65535], np.uint16), 1 << 30, 30, out_dtype=np.int16,
                     input_zp=32768)
    assert y.tolist() == [-32768, 0, 32767]


# ---------------------------------------------------------------- property tests
@SETTINGS
@given(a=i32, b=i32)
def test_srdhm_matches_rational(a, b):
    got = tfl.saturating_rounding_doubling_high_mul(np.int32(a), np.int32(b))
    assert got.dtype == np.int32 and int(got) == ref_srdhm(a, b)


@SETTINGS
@given(x=i32, e=st.integers(0, 31))
def test_rdbpot_matches_rational(x, e):
    assert int(tfl.rounding_divide_by_pot(np.int32(x), e)) == ref_rdbpot(x, e)


qm_st = st.one_of(st.integers(1 << 30, I32_MAX), st.integers(0, I32_MAX),
                  st.sampled_from([0, 1 << 30, I32_MAX, 3 << 28]))


@SETTINGS
@given(x=i32, qm=qm_st, shift=st.integers(-31, 30),
       rounding=st.sampled_from(["double", "single"]))
def test_mbqm_matches_rational(x, qm, shift, rounding):
    got = tfl.multiply_by_quantized_multiplier(np.int32(x), np.int32(qm), shift,
                                               rounding=rounding)
    assert np.asarray(got).view(np.uint32) == np.uint32(ref_mbqm(x, qm, shift, rounding) % 2**32)


def test_mbqm_vectorised_bits():
    rng = np.random.default_rng(7)
    x = rng.integers(I32_MIN, I32_MAX, 400, endpoint=True).astype(np.int32)
    x[:4] = [I32_MIN, I32_MAX, -1, 0]
    qm = rng.integers(0, I32_MAX, 400, endpoint=True).astype(np.int32)
    sh = rng.integers(-31, 30, 400, endpoint=True).astype(np.int32)
    for rounding in ("double", "single"):
        got = tfl.multiply_by_quantized_multiplier(x, qm, sh, rounding=rounding)
        triples = zip(x.tolist(), qm.tolist(), sh.tolist(), strict=True)
        ref = np.array([ref_mbqm(a, b, c, rounding) for a, b, c in triples],
                       dtype=np.int64).astype(np.int32)
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


@SETTINGS
@given(real=st.one_of(st.floats(0, 1e12, allow_nan=False),
                      st.floats(2.0**-45, 2.0**-20), st.floats(0.4, 1.1)),
       rounding=st.sampled_from(["double", "single"]))
def test_quantize_multiplier_matches_rational(real, rounding):
    assert tfl.quantize_multiplier(real, rounding=rounding) == ref_quantize_multiplier(
        real, rounding)


@SETTINGS
@given(data=st.data(), m=st.integers(0, I32_MAX), s=st.integers(2, 62),
       dr=st.booleans())
def test_apply_scale_32_matches_rational(data, m, s, dr):
    lim = min(2 ** (s - 1), 2**31)
    v = data.draw(st.integers(-lim, min(lim - 1, I32_MAX)))
    assert int(tosa.apply_scale_32(np.int32(v), m, s, dr)) == ref_apply_scale_32(v, m, s, dr)


@SETTINGS
@given(data=st.data(), m=st.integers(0, 32767), s=st.integers(2, 62))
def test_apply_scale_16_matches_rational(data, m, s):
    v = data.draw(st.integers(-(2**47), 2**47 - 1))
    want = half_up(Fraction(v * m, 2**s))
    if I32_MIN <= want <= I32_MAX:
        assert int(tosa.apply_scale_16(np.int64(v), m, s)) == want
    else:
        with pytest.raises(ValueError):
            tosa.apply_scale_16(np.int64(v), m, s)


@SETTINGS
@given(v=i32, m=st.integers(0, I32_MAX), s=st.integers(32, 62))
def test_tosa_and_tflite_agree_on_right_shifts(v, m, s):
    # TOSA's double_round with shift s > 31 is TFLite's double-rounding MBQM with shift
    # 31 - s, and TOSA's single round TFLite's single rounding (two formulas, one rule each)
    for dr, rounding in ((True, "double"), (False, "single")):
        assert tosa.apply_scale_32(v, m, s, dr) == tfl.multiply_by_quantized_multiplier(
            v, m, 31 - s, rounding=rounding)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "exc", "word"),
    [
        (lambda: tfl.multiply_by_quantized_multiplier(1, -1, 0, rounding="single"), ValueError,
         "quantized_multiplier"),
        (lambda: tfl.multiply_by_quantized_multiplier(1, 2**31, 0), ValueError,
         "quantized_multiplier"),
        (lambda: tfl.multiply_by_quantized_multiplier(1, 1 << 30, 31), ValueError, "shift"),
        (lambda: tfl.multiply_by_quantized_multiplier(1, 1 << 30, -32), ValueError, "shift"),
        (lambda: tfl.multiply_by_quantized_multiplier(np.array([1.0]), 1 << 30, 0), TypeError,
         "x"),
        (lambda: tfl.multiply_by_quantized_multiplier(1, 1 << 30, 0.0), TypeError, "shift"),
        (lambda: tfl.multiply_by_quantized_multiplier(2**31, 1 << 30, 0), ValueError, "x"),
        (lambda: tfl.multiply_by_quantized_multiplier(1, 1, 0, rounding="triple"), ValueError,
         "rounding"),
        (lambda: tfl.rounding_divide_by_pot(1, 32), ValueError, "exponent"),
        (lambda: tfl.saturating_rounding_doubling_high_mul(True, 1), TypeError, "a"),
        (lambda: tfl.quantize_multiplier(float("nan")), ValueError, "real_multiplier"),
        (lambda: tfl.quantize_multiplier("0.5"), TypeError, "real_multiplier"),
        (lambda: tosa.apply_scale_32(1, -1, 10), ValueError, "multiplier"),
        (lambda: tosa.apply_scale_32(1, 1, 1), ValueError, "shift"),
        (lambda: tosa.apply_scale_32(1, 1, 63), ValueError, "shift"),
        (lambda: tosa.apply_scale_32(1, 1, 10, "yes"), TypeError, "double_round"),
        (lambda: tosa.apply_scale_16(1, 32768, 10), ValueError, "multiplier"),
        (lambda: tosa.rescale(np.zeros(3, np.int8), 1, 10, out_dtype=np.int8, scale32=False,
                              double_round=True), ValueError, "double_round"),
        (lambda: tosa.rescale(np.zeros(3, np.int16), 1, 10, out_dtype=np.int8, input_zp=1),
         ValueError, "input_zp"),
        (lambda: tosa.rescale(np.zeros(3, np.int8), 1, 10, out_dtype=np.int8, output_zp=200),
         ValueError, "output_zp"),
        (lambda: tosa.rescale(np.zeros(3, np.float32), 1, 10, out_dtype=np.int8), TypeError,
         "x"),
        (lambda: tosa.rescale(np.zeros(3, np.int8), 1, 10, out_dtype=np.float32), ValueError,
         "out_dtype"),
        (lambda: tosa.rescale(np.zeros((2, 3), np.int8), [1, 1], [10, 10], out_dtype=np.int8,
                              per_channel=True), ValueError, "multiplier"),
        (lambda: tosa.rescale(np.zeros(3, np.int64), 1, 10, out_dtype=np.int8), ValueError,
         "scale32"),
    ],
)
def test_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_inputs_not_modified():
    x = np.array([5, -7, 9], np.int32)
    qm = np.array([1 << 30, 3 << 28, I32_MAX], np.int32)
    keep = (x.copy(), qm.copy())
    tfl.multiply_by_quantized_multiplier(x, qm, -3)
    tosa.rescale(x, qm, np.array([33, 33, 33]), out_dtype=np.int8, per_channel=True,
                 double_round=True)
    assert np.array_equal(x, keep[0]) and np.array_equal(qm, keep[1])


# ---------------------------------------------------------------- LiteRT interpreter
def _fc_int8_model(w, bias, sx, zx, sw, so, zo):
    """A one-op int8 FULLY_CONNECTED .tflite built with the flatbuffer schema shipped in
    ai-edge-litert (no TensorFlow): x int8 [1, K] (sx, zx), weights int8 [N, K] (sw, 0),
    bias int32 [N] (sx * sw, 0), output int8 [1, N] (so, zo)."""
    flatbuffers = pytest.importorskip("flatbuffers")
    sch = pytest.importorskip("ai_edge_litert.schema_py_generated")
    bufs = [sch.BufferT()]

    def tensor(name, shape, ttype, data, scale, zp):
        buf = sch.BufferT()
        if data is not None:
            buf.data = np.frombuffer(data.tobytes(), np.uint8)
        bufs.append(buf)
        t = sch.TensorT()
        t.name, t.shape, t.type, t.buffer = name, np.array(shape, np.int32), ttype, len(bufs) - 1
        t.quantization = sch.QuantizationParametersT()
        t.quantization.scale = np.array([scale], np.float32)
        t.quantization.zeroPoint = np.array([zp], np.int64)
        return t

    n, k = w.shape
    tt = sch.TensorType
    sg = sch.SubGraphT()
    sg.tensors = [tensor("x", [1, k], tt.INT8, None, sx, zx),
                  tensor("w", [n, k], tt.INT8, w.astype(np.int8), sw, 0),
                  tensor("b", [n], tt.INT32, bias.astype(np.int32), np.float32(sx) * sw, 0),
                  tensor("y", [1, n], tt.INT8, None, so, zo)]
    op = sch.OperatorT()
    op.opcodeIndex = 0
    op.inputs, op.outputs = np.array([0, 1, 2], np.int32), np.array([3], np.int32)
    op.builtinOptionsType = sch.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = sch.FullyConnectedOptionsT()
    sg.inputs, sg.outputs, sg.operators = np.array([0], np.int32), np.array([3], np.int32), [op]
    code = sch.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = sch.BuiltinOperator.FULLY_CONNECTED
    code.version = 4
    model = sch.ModelT()
    model.version, model.subgraphs, model.operatorCodes, model.buffers = 3, [sg], [code], bufs
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize(("sx", "zx", "sw", "so", "zo", "k", "wmax"),
                         [(0.5, -7, 0.25, 37.0, -2, 16, 127), (0.5, 0, 0.25, 3.0, 0, 4, 20)])
def test_litert_reference_fully_connected_is_double_rounding(sx, zx, sw, so, zo, k, wmax):
    # LiteRT's reference FULLY_CONNECTED (int8, per tensor): acc = sum((x - zx) * w) + bias,
    # MultiplyByQuantizedMultiplier(acc, QuantizeMultiplier(sx * sw / so)) + zo, clamped.
    # sx and sw are powers of two so sx * sw / so is the same double in any operation order.
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    rng = np.random.default_rng(5)
    n, rows = 8, 3000
    w = rng.integers(-wmax, wmax + 1, (n, k))
    bias = rng.integers(-300, 300, n)
    x = rng.integers(-128, 128, (rows, k)).astype(np.int8)
    it = litert.Interpreter(model_content=_fc_int8_model(w, bias, sx, zx, sw, so, zo),
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.resize_tensor_input(0, x.shape)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    acc = (x.astype(np.int64) - zx) @ w.T + bias
    outs = {}
    for rounding in ("double", "single"):
        qm, shift = tfl.quantize_multiplier(sx * sw / so, rounding=rounding)
        y = tfl.multiply_by_quantized_multiplier(acc, qm, shift, rounding=rounding)
        outs[rounding] = np.clip(y.astype(np.int64) + zo, -128, 127).astype(np.int8)
    assert np.array_equal(got.view(np.uint8), outs["double"].view(np.uint8))
    assert not np.array_equal(outs["double"], outs["single"])  # the case tells them apart
