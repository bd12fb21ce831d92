"""refquant.kernels.formats: element casts (FP8 / FP6 / FP4 / INT4 / INT2 / E8M0).

Expected values come from hand-worked cases, from ml_dtypes and torch (run here, compared
bit for bit), from refquant.kernels._fp8 (ONNX Runtime's converter, an independent float64
formulation) and, for E8M0 floor / ceil, from Python's math.frexp.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.conformance.cases.lowbit_cases import element_edges
from refquant.kernels import _fp8
from refquant.kernels import formats as fm

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
FLOATS = tuple(fm.FLOAT_FORMATS)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """float32 bit patterns equal, NaN matching NaN (payloads differ between libraries)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return bool(np.all((_bits(a) == _bits(b)) | (np.isnan(a) & np.isnan(b))))


@st.composite
def float32_inputs(draw, fmt: str, with_nan: bool = True) -> np.ndarray:  # type: ignore[no-untyped-def]
    """float32 arrays mixing the format's edge values (ties at every exponent, max and just
    above, subnormals), the same scaled by powers of two, and raw bit patterns."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 300))
    rng = np.random.default_rng(seed)
    edges = element_edges(fmt, with_specials=False)
    parts = [
        rng.choice(edges, n),
        rng.choice(edges, n) * np.exp2(rng.integers(-3, 4, n)).astype(np.float32),
        rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32),
        np.float32([np.inf, -np.inf, 0.0, -0.0] + ([np.nan, -np.nan] if with_nan else [])),
    ]
    x = np.concatenate(parts).astype(np.float32)
    if not with_nan:
        x = x[~np.isnan(x)]
    return rng.permutation(x)


# --- hand-worked -----------------------------------------------------------------------


def test_fp4_e2m1_table_and_ties():
    vals = fm.decode(np.arange(16), "fp4_e2m1")
    assert vals[:8].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    assert _bits(vals[8:]).tolist() == _bits(-vals[:8]).tolist()  # sign bit, -0.0 included
    x = np.float32([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.5, 7.0, 1e30, np.inf, -0.25])
    # ties to the even code: 0.25 -> 0, 0.75 -> 1.0, 1.25 -> 1.0, 1.75 -> 2.0, 2.5 -> 2,
    # 3.5 -> 4, 5 -> 4; beyond 6 saturates; -0.25 -> -0
    want = [0, 2, 2, 4, 4, 6, 6, 7, 7, 7, 7, 8]
    assert fm.encode(x, "fp4_e2m1").tolist() == want


def test_fp6_and_fp8_hand_worked():
    assert fm.decode(np.array([0x1F]), "fp6_e2m3")[0] == 7.5
    assert fm.decode(np.array([0x1F]), "fp6_e3m2")[0] == 28.0
    assert fm.decode(np.array([0x01]), "fp6_e2m3")[0] == 0.125  # 2^0 * 1/8
    assert fm.decode(np.array([0x01]), "fp6_e3m2")[0] == 0.0625  # 2^-2 * 1/4
    e4 = "fp8_e4m3fn"
    x = np.float32([448, 464, 465, 480, 2.0**-10, 2.0**-10 * 1.0000001, -0.0, np.nan])
    # 464 is the tie between 448 (0x7E) and 480: even mantissa 448; above saturates or NaN
    assert fm.encode(x, e4).tolist() == [0x7E, 0x7E, 0x7E, 0x7E, 0x00, 0x01, 0x80, 0x7F]
    assert fm.encode(x, e4, saturate=False).tolist() == [0x7E, 0x7E, 0x7F, 0x7F, 0x00, 0x01,
                                                         0x80, 0x7F]
    e5 = np.float32([57344, 61439.996, 61440, -1e9, np.inf])
    assert fm.encode(e5, "fp8_e5m2", saturate=False).tolist() == [0x7B, 0x7B, 0x7C, 0xFC, 0x7C]
    assert fm.encode(e5, "fp8_e5m2").tolist() == [0x7B, 0x7B, 0x7B, 0xFB, 0x7B]
    # fnuz: no negative zero, one NaN (0x80), bias 8 / 16
    z = np.float32([-0.0, -1e-30, np.nan, -np.nan, 240.0, 1e9])
    assert fm.encode(z, "fp8_e4m3fnuz", saturate=False).tolist() == [0, 0, 0x80, 0x80, 0x7F,
                                                                     0x80]
    # saturating: finite overflow -> max, inf -> NaN (ONNX Cast table for the fnuz types)
    assert fm.encode(np.float32([1e9, -1e9, np.inf, -np.inf]), "fp8_e5m2fnuz").tolist() == [
        0x7F, 0xFF, 0x80, 0x80]
    assert fm.decode(np.array([0x08]), "fp8_e4m3fnuz")[0] == 2.0**-7
    assert fm.decode(np.array([0x77]), "fp8_e4m3")[0] == 240.0
    assert np.isinf(fm.decode(np.array([0x78]), "fp8_e4m3")[0])


def test_int_formats_hand_worked():
    x = np.float32([2.5, 3.5, -2.5, 0.49999997, 7.9, -9.0, np.inf, -np.inf])
    assert fm.encode_int(x, "int4").tolist() == [2, 4, -2, 0, 7, -8, 7, -8]
    assert fm.encode_int(x, "int4", rounding="half_away").tolist() == [3, 4, -3, 0, 7, -8, 7,
                                                                       -8]
    assert fm.encode_int(x, "int4", rounding="trunc").tolist() == [2, 3, -2, 0, 7, -8, 7, -8]
    assert fm.encode_int(x, "uint4").tolist() == [2, 4, 0, 0, 8, 0, 15, 0]
    assert fm.encode_int(x, "int2").tolist() == [1, 1, -2, 0, 1, -2, 1, -2]
    assert fm.encode_int(x, "uint2").tolist() == [2, 3, 0, 0, 3, 0, 3, 0]
    w = fm.encode_int(np.float32([7.5, 9.0, -9.0, 16.0, 1e10]), "int4", overflow="wrap")
    assert w.tolist() == [-8, -7, 7, 0, 0]  # 8, 9, -9, 16 modulo 16; beyond int32: 0
    assert fm.decode_int(np.uint8([0, 7, 8, 15]), "int4").tolist() == [0, 7, -8, -1]
    assert fm.decode_int(np.int8([-2, 1]), "int2").tolist() == [-2, 1]


def test_e8m0_hand_worked():
    x = np.float32([0.75, 1.0, 1.5, 3.0, 2.0**-127, 1e-45, 2.0**127, 2.0**127 * 1.5, np.inf])
    assert fm.encode_e8m0(x, rounding="half_up").tolist() == [127, 127, 128, 129, 0, 0, 254,
                                                              255, 255]
    assert fm.encode_e8m0(x, rounding="floor").tolist() == [126, 127, 127, 128, 0, 0, 254,
                                                            254, 255]
    assert fm.encode_e8m0(x, rounding="ceil").tolist() == [127, 127, 128, 129, 0, 0, 254, 255,
                                                           255]
    d = fm.decode_e8m0(np.array([0, 127, 254, 255]))
    assert _bits(d[:3]).tolist() == [0x00400000, 0x3F800000, 0x7F000000] and np.isnan(d[3])


# --- differential: ml_dtypes, torch, ONNX Runtime's converter --------------------------


def _ml():
    return pytest.importorskip("ml_dtypes")


_ML_NAMES = {"fp8_e4m3": "float8_e4m3", "fp8_e4m3fn": "float8_e4m3fn",
             "fp8_e4m3fnuz": "float8_e4m3fnuz", "fp8_e5m2": "float8_e5m2",
             "fp8_e5m2fnuz": "float8_e5m2fnuz", "fp6_e3m2": "float6_e3m2fn",
             "fp6_e2m3": "float6_e2m3fn", "fp4_e2m1": "float4_e2m1fn"}


@pytest.mark.parametrize("fmt", FLOATS)
def test_decode_every_code_matches_ml_dtypes(fmt):
    md = _ml()
    f = fm.FLOAT_FORMATS[fmt]
    codes = np.arange(1 << f.nbits, dtype=np.uint8)
    want = codes.view(getattr(md, _ML_NAMES[fmt])).astype(np.float32)
    assert _same_values(fm.decode(codes, fmt), want)


@pytest.mark.parametrize("fmt", FLOATS)
@SETTINGS
@given(data=st.data())
def test_encode_matches_ml_dtypes(fmt, data):
    # ml_dtypes converts FP8 without saturation and FP6 / FP4 with it (their only mode);
    # its NaN codes differ from ours (0x7E for e5m2, -0 for FP4 / FP6) and are left out
    md = _ml()
    f = fm.FLOAT_FORMATS[fmt]
    x = data.draw(float32_inputs(fmt, with_nan=False))
    sat = f.specials == "none"
    want = x.astype(getattr(md, _ML_NAMES[fmt]))
    got = fm.encode(x, fmt, saturate=sat)
    wv = want.astype(np.float32)
    assert _same_values(fm.decode(got, fmt), wv)
    finite = ~np.isnan(wv)
    np.testing.assert_array_equal(got[finite], want.view(np.uint8)[finite])


_TORCH = {"fp8_e4m3fn": ("float8_e4m3fn", True), "fp8_e5m2": ("float8_e5m2", False),
          "fp8_e4m3fnuz": ("float8_e4m3fnuz", False), "fp8_e5m2fnuz": ("float8_e5m2fnuz", False)}


@pytest.mark.parametrize("fmt", tuple(_TORCH))
@SETTINGS
@given(data=st.data())
def test_encode_matches_torch(fmt, data):
    # torch 2.13 saturates E4M3FN (inf too) and not the others (inf / NaN on overflow)
    torch = pytest.importorskip("torch")
    name, sat = _TORCH[fmt]
    x = data.draw(float32_inputs(fmt))
    want = torch.from_numpy(x).to(getattr(torch, name)).view(torch.uint8).numpy()
    np.testing.assert_array_equal(fm.encode(x, fmt, saturate=sat), want)


@pytest.mark.parametrize("fmt", ("fp8_e4m3fn", "fp8_e5m2"))
def test_decode_nan_bits_match_torch(fmt):
    torch = pytest.importorskip("torch")
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    want = codes.view(getattr(torch, _TORCH[fmt][0])).float().numpy()
    np.testing.assert_array_equal(_bits(fm.decode(codes.numpy(), fmt)), _bits(want))


@pytest.mark.parametrize("fmt,ort", [("fp8_e4m3fn", _fp8.E4M3FN), ("fp8_e5m2", _fp8.E5M2)])
@SETTINGS
@given(data=st.data())
def test_encode_matches_onnxruntime_converter(fmt, ort, data):
    # _fp8 is a float64 frexp/rint formulation of ONNX Runtime's converter: identical when
    # saturating; without saturation ORT differs in [480, 496) (e4m3fn: 448 instead of NaN)
    # and [61440, 65536) (e5m2: NaN instead of inf), docs/lowbit.md
    x = data.draw(float32_inputs(fmt))
    np.testing.assert_array_equal(fm.encode(x, fmt), _fp8.float32_to_fp8(x, ort, True))
    a = np.abs(x)
    quirk = (a >= 480) & (a < 496) if fmt == "fp8_e4m3fn" else (a >= 61440) & (a < 65536)
    got = fm.encode(x, fmt, saturate=False)
    np.testing.assert_array_equal(got[~quirk], _fp8.float32_to_fp8(x, ort, False)[~quirk])


@SETTINGS
@given(data=st.data())
def test_e8m0_matches_ml_dtypes_and_frexp(data):
    md = _ml()
    x = np.abs(data.draw(float32_inputs("fp8_e5m2", with_nan=False)))
    x = np.concatenate([x[x > 0], np.ldexp(np.float32(1.5), np.arange(-150, 128)).astype(
        np.float32)])
    x = x[x > 0]
    want = x.astype(md.float8_e8m0fnu).view(np.uint8)
    np.testing.assert_array_equal(fm.encode_e8m0(x, rounding="half_up"), want)
    for rounding in ("floor", "ceil"):
        exp = []
        for v in x.tolist():
            if not math.isfinite(v):
                exp.append(255)
                continue
            m, e = math.frexp(v)  # v = m * 2^e, m in [0.5, 1)
            k = e - 1 if rounding == "floor" or m == 0.5 else e
            exp.append(255 if k > 127 else max(k, -127) + 127)
        np.testing.assert_array_equal(fm.encode_e8m0(x, rounding=rounding), exp)


def test_e8m0_matches_torch_on_normal_inputs():
    # torch's cast rounds float32 subnormals up (any bit above 2^-127 gives 2^-126) and maps
    # zero to 2^-127 and negatives by magnitude: docs/lowbit.md; compared on normal inputs
    torch = pytest.importorskip("torch")
    b = np.random.default_rng(5).integers(0x00800000, 0x7F800000, 100_000).astype(np.uint32)
    x = np.concatenate([b.view(np.float32),
                        np.ldexp(np.float32(1.5), np.arange(-126, 128)).astype(np.float32)])
    want = torch.from_numpy(x).to(torch.float8_e8m0fnu).view(torch.uint8).numpy()
    np.testing.assert_array_equal(fm.encode_e8m0(x, rounding="half_up"), want)


@pytest.mark.parametrize("fmt", ("int4", "uint4", "int2", "uint2"))
def test_int_codes_match_ml_dtypes(fmt):
    # ml_dtypes' float -> intN cast truncates in range (and gives 0 out of range): compared
    # in range with rounding="trunc"; decoding compared on every bit pattern
    md = _ml()
    f = fm.INT_FORMATS[fmt]
    d = getattr(md, fmt)
    x = np.arange(f.qmin - 0.75, f.qmax + 1, 0.125, dtype=np.float32)
    x = x[(x > f.qmin - 1) & (x < f.qmax + 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = x.astype(d).astype(np.int64)
    np.testing.assert_array_equal(fm.encode_int(x, fmt, rounding="trunc").astype(np.int64),
                                  want)
    pats = np.arange(1 << f.bits, dtype=np.uint8)
    np.testing.assert_array_equal(fm.decode_int(pats, fmt), pats.view(d).astype(np.float32))


@SETTINGS
@given(st.lists(st.floats(-20, 20, width=32), min_size=1, max_size=50))
def test_int_rne_matches_python_round(values):
    x = np.float32(values)
    for fmt in ("int4", "uint4", "int2", "uint2", "int8"):
        f = fm.INT_FORMATS[fmt]
        want = [min(max(round(v), f.qmin), f.qmax) for v in x.tolist()]
        assert fm.encode_int(x, fmt).tolist() == want


# --- bad input -----------------------------------------------------------------------


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="x holds NaN at flat index 1; fp4_e2m1"):
        fm.encode(np.float32([1.0, np.nan]), "fp4_e2m1")
    with pytest.raises(ValueError, match="saturate=False"):
        fm.encode(np.float32([1.0]), "fp6_e2m3", saturate=False)
    with pytest.raises(ValueError, match="fmt must be one of"):
        fm.encode(np.float32([1.0]), "fp5")
    with pytest.raises(TypeError, match="x must have dtype"):
        fm.encode(np.float64([1.0]), "fp4_e2m1")
    with pytest.raises(TypeError, match="saturate must be a bool"):
        fm.encode(np.float32([1.0]), "fp8_e5m2", saturate="no")
    with pytest.raises(ValueError, match=r"codes must hold 4-bit codes .* got 16"):
        fm.decode(np.array([1, 16]), "fp4_e2m1")
    with pytest.raises(TypeError, match="codes must be an integer array"):
        fm.decode(np.float32([1.0]), "fp4_e2m1")
    with pytest.raises(ValueError, match="x must be > 0"):
        fm.encode_e8m0(np.float32([1.0, 0.0]))
    with pytest.raises(ValueError, match="rounding must be one of"):
        fm.encode_e8m0(np.float32([1.0]), rounding="rne")
    with pytest.raises(ValueError, match="x holds NaN"):
        fm.encode_int(np.float32([np.nan]), "int4")
    with pytest.raises(ValueError, match="overflow must be one of"):
        fm.encode_int(np.float32([1.0]), "int4", overflow="clip")
    with pytest.raises(ValueError, match=r"codes must be int4 values in \[-8, 7\], got 9"):
        fm.decode_int(np.int8([9]), "int4")


def test_inputs_not_modified():
    x = np.float32([1.0, -2.5, 1e9, np.inf])
    before = x.copy()
    fm.encode(x, "fp8_e4m3fn")
    fm.encode_int(x, "int4")
    np.testing.assert_array_equal(_bits(x), _bits(before))


def _ort_cast(code: int, x: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    g = helper.make_graph([helper.make_node("Cast", ["X"], ["T"], to=code),
                           helper.make_node("Cast", ["T"], ["Y"], to=TensorProto.FLOAT)], "g",
                          [vi("X", TensorProto.FLOAT, [x.size])],
                          [vi("Y", TensorProto.FLOAT, [x.size])])
    # INT2 / UINT2 (25, 26) need opset 25; onnx 1.17 does not know them, ORT 1.32 does
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 25)])
    m.ir_version = 12
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x})[0]


@pytest.mark.parametrize("fmt,code", [("uint4", 21), ("int4", 22), ("uint2", 25), ("int2", 26)])
@SETTINGS
@given(st.lists(st.floats(-300, 300, width=32), min_size=1, max_size=64))
def test_int_wrap_matches_onnxruntime_cast(fmt, code, values):
    x = np.float32(values + [0.5, -0.5, 1.5, 2.5, -2.5, 0.49999997, 1e10, -np.inf])
    want = _ort_cast(code, x)
    got = fm.encode_int(x, fmt, rounding="half_away", overflow="wrap")
    np.testing.assert_array_equal(got.astype(np.float32), want)
