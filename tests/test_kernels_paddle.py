"""Differential tests: refquant.kernels.paddle vs Paddle 3.3.1's real CPU kernels, bit for bit.

Expected values come from the real ops (``paddle._C_ops`` / ``paddle._legacy_C_ops`` on CPU),
run inside the test, and from hand-worked cases (``docs/kernels/paddle.md``, "Hand-worked
cases") asserted against both refquant and Paddle. Inputs are built to hit exact ``.5`` ties of
``fl(c * x)`` and their float32 neighbours, both saturation edges, +-0.0, subnormals, huge
finite values, NaN / +-inf, and scales at and around 1e-30.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.kernels import paddle as pk

paddle = pytest.importorskip("paddle")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from paddle import _C_ops, _legacy_C_ops

paddle.set_device("cpu")

F32 = np.float32


def _f(v):
    """v rounded to float32, as a Python float (Hypothesis width=32 bounds must be exact)."""
    return float(F32(v))

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)
SMALL = settings(max_examples=60, deadline=None, derandomize=True)


# ----------------------------------------------------------------------------- helpers


def T(a):  # noqa: N802 - short helper name
    return paddle.to_tensor(np.ascontiguousarray(a))


def assert_bits(actual, expected, what=""):
    """Same shape, dtype and bit pattern (NaN payloads included); reports the first diff."""
    a = np.asarray(actual)
    e = np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != {e.dtype}"
    ab = a.reshape(-1).view(np.uint8).reshape(a.size, -1)
    eb = e.reshape(-1).view(np.uint8).reshape(e.size, -1)
    diff = np.flatnonzero((ab != eb).any(axis=1))
    if diff.size:
        i = int(diff[0])
        raise AssertionError(
            f"{what}: {diff.size} of {a.size} elements differ; first at flat index {i}: "
            f"refquant {a.reshape(-1)[i]!r} vs paddle {e.reshape(-1)[i]!r}"
        )


def pd_quantize_linear(x, s, axis=-1, qmax=127, round_type=0):
    return _legacy_C_ops.quantize_linear(
        T(x), T(s), T(np.zeros(1, F32)), "quant_axis", axis, "bit_length", 8,
        "qmin", -qmax - 1, "qmax", qmax, "round_type", round_type,
    ).numpy()


def pd_dequantize_linear(q, s, axis=-1, qmax=127):
    return _legacy_C_ops.dequantize_linear(
        T(q), T(s), T(np.zeros(1, F32)), "quant_axis", axis, "bit_length", 8,
        "qmin", -qmax - 1, "qmax", qmax,
    ).numpy()


def np_list(*outs):
    return [o.numpy() for o in outs]


def multiplier(s, qmax):
    """c = fl(qmax * inv(S)) as the C++ source states it (used only to BUILD inputs)."""
    s = F32(s)
    with np.errstate(all="ignore"):
        inv = F32(1) / (s + F32(1e-6)) if s <= F32(1e-30) else F32(1) / s
        return F32(F32(qmax) * inv)


def tie_points(c, k):
    """x whose fl(c * x) is k + 0.5 when one exists near (k + 0.5) / c, plus the float32
    neighbours of the candidate both ways."""
    c = F32(c)
    if not (np.isfinite(c) and c > 0):
        return []
    t = k + 0.5
    with np.errstate(all="ignore"):
        x0 = F32(t / float(c))
    if not np.isfinite(x0):
        return []
    out = [x0, np.nextafter(x0, F32(np.inf)), np.nextafter(x0, F32(-np.inf))]
    cand = x0
    for _ in range(3):  # walk a few ulps to land exactly on the tie if x0 is not on it
        with np.errstate(all="ignore"):
            v = F32(c * cand)
        if v == t:
            out += [cand, np.nextafter(cand, F32(np.inf)), np.nextafter(cand, F32(-np.inf))]
            break
        cand = np.nextafter(cand, F32(np.inf) if v < t else F32(-np.inf))
    return [F32(v) for v in out]


SPECIAL_FINITE = [0.0, -0.0, 1e-45, -1e-45, 1e-40, -3e-39, 1.1754944e-38, 3.4028235e38,
                  -3.4028235e38, 1e30, -1e-7]
NONFINITE = [np.nan, np.inf, -np.inf]
SCALES = [0.0, 1e-30, float(np.nextafter(F32(1e-30), F32(0))),
          float(np.nextafter(F32(1e-30), F32(1))), 1.1e-30, 1e-45, 1e-38, 1e-6, 1e-3, 0.7,
          1.0, 3.3, 128.0, 448.0, 1e30, 3.4028235e38, np.inf]

bits_st = st.one_of(st.sampled_from([4, 8, 16]), st.integers(2, 16))
scale_st = st.one_of(
    st.sampled_from(SCALES),
    st.floats(min_value=_f(1e-4), max_value=_f(1e4), width=32),
    st.floats(min_value=_f(0.0), max_value=_f(3.4e38), width=32, allow_subnormal=True),
)
finite_scale_st = st.one_of(
    st.sampled_from([1e-30, 1.1e-30, 1e-3, 0.7, 1.0, 3.3, 128.0, 1e30]),
    st.floats(min_value=_f(1e-4), max_value=_f(1e4), width=32),
    st.floats(min_value=_f(1e-38), max_value=_f(1e38), width=32),
)


@st.composite
def tensor_values(draw, s, qmax, nonfinite=True, bounded=False):
    """A shuffled list of float32 values: ties for S and their neighbours, both saturation
    edges, +-S and its neighbours, specials and random floats."""
    c = multiplier(s, qmax)
    edge_ks = [qmax, -qmax - 1, qmax - 1, -qmax, -qmax - 2, qmax + 1, 0, -1]
    ks = draw(st.lists(st.one_of(st.sampled_from(edge_ks), st.integers(-qmax - 2, qmax + 1)),
                       min_size=1, max_size=6))
    vals = [v for k in ks for v in tie_points(c, k)]
    sf = F32(s)
    if np.isfinite(sf):
        vals += [sf, -sf, np.nextafter(sf, F32(np.inf)), np.nextafter(-sf, F32(-np.inf)),
                 np.nextafter(sf, F32(0))]
    vals += draw(st.lists(st.sampled_from(SPECIAL_FINITE), max_size=3))
    if nonfinite:
        vals += draw(st.lists(st.sampled_from(NONFINITE), max_size=2))
    vals += draw(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False),
                          max_size=4))
    vals = [F32(v) for v in vals]
    if bounded:  # keep |x| <= S so that the abs-max of the tensor is S itself
        vals = [v for v in vals if not np.abs(v) > sf]
        vals.append(sf)
    perm = draw(st.permutations(list(range(len(vals)))))
    return np.array([vals[i] for i in perm], dtype=F32)


# ----------------------------------------------------------------------------- primitives


def test_inverse_hand_worked():
    # fl32(1e-6) = 9.99999997e-07 and 1 / that rounds to exactly 1e6 in float32.
    assert pk.inverse(F32(0.0)) == F32(1e6)
    assert pk.inverse(F32(-0.0)) == F32(1e6)
    assert pk.inverse(F32(1e-30)) == F32(1e6)  # 1e-30 + 1e-6 == 1e-6 in float32
    assert pk.inverse(F32(2.0)) == F32(0.5)
    assert pk.inverse(F32(np.inf)) == F32(0.0)
    assert np.isnan(pk.inverse(F32(np.nan)))
    # just above the guard: plain reciprocal, computed here in float64 then rounded once
    s = np.nextafter(F32(1e-30), F32(1))
    assert pk.inverse(s) == F32(1.0 / float(s))
    assert pk.inverse(np.array([0.0, 4.0], F32)).dtype == F32


def test_round_type_tie_hand_worked_s128():
    # docs/kernels/paddle.md, hand-worked case 1: S=128, c = 127/128 exactly,
    # fl(c * 2.519685) = 2.5
    x = np.array([2.519685], F32)
    assert F32(F32(127 / 128) * x[0]) == F32(2.5)
    s = np.array([128.0], F32)
    for rt, want in ((0, 2.0), (1, 3.0)):
        assert pk.quantize_linear(x, s, round_type=rt)[0] == want
        assert pd_quantize_linear(x, s, round_type=rt)[0] == want
    # measured ties at S=128: v = 0.5, 1.5, 2.5, -2.5
    xs = np.array([0.5, 1.5, 2.5, -2.5], F32) * F32(128 / 127)
    xs = np.array([x for x in xs], F32)
    for rt, want in ((0, [0, 2, 2, -2]), (1, [1, 2, 3, -3])):
        got = pk.quantize_linear(xs, s, round_type=rt)
        ref = pd_quantize_linear(xs, s, round_type=rt)
        assert_bits(got, ref, f"ties rt{rt}")
        if np.all(F32(127 / 128) * xs == np.array([0.5, 1.5, 2.5, -2.5], F32)):
            assert got.tolist() == want


def test_threshold_case_and_lower_saturation_hand_worked():
    # 6.3: S=0.7, x=-0.6972441 (0xbf327e97): quantize_linear gives -127
    x = np.array([0xBF327E97], np.uint32).view(F32)
    s = np.array([0.7], F32)
    assert pk.quantize_linear(x, s)[0] == -127.0
    assert pd_quantize_linear(x, s)[0] == -127.0
    # 6.5: S=1, x=-1.003937: rt0 -128, rt1 -127
    x = np.array([-1.003937], F32)
    s = np.array([1.0], F32)
    for rt, want in ((0, -128.0), (1, -127.0)):
        assert pk.quantize_linear(x, s, round_type=rt)[0] == want
        assert pd_quantize_linear(x, s, round_type=rt)[0] == want


def test_zero_inf_nan_scale_and_signed_zero_hand_worked():
    x = np.array([1e-7, -0.3, 0.3, -0.0, np.inf], F32)
    # 6.8: S=0, x=1e-7 gives 13 with rt0 (c = 127e6), 0 with rt1 (x clipped to 0)
    for s0 in (0.0, -0.0, 1e-30):
        s = np.array([s0], F32)
        got0 = pk.quantize_linear(x, s, round_type=0)
        got1 = pk.quantize_linear(x, s, round_type=1)
        assert got0[0] == 13.0 and got0[1] == -128.0 and got0[2] == 127.0
        assert got1[0] == 0.0
        assert_bits(got0, pd_quantize_linear(x, s, round_type=0), f"S={s0} rt0")
        assert_bits(got1, pd_quantize_linear(x, s, round_type=1), f"S={s0} rt1")
    # S=1.1e-30 is above the guard: saturates
    s = np.array([1.1e-30], F32)
    assert pk.quantize_linear(x, s)[0] == 127.0
    # 6.14: x=-0.3 at S=128 gives -0.0 (sign bit set) for both round types
    s = np.array([128.0], F32)
    for rt in (0, 1):
        got = pk.quantize_linear(np.array([-0.3], F32), s, round_type=rt)
        assert got.view(np.uint32)[0] == 0x80000000
        assert_bits(got, pd_quantize_linear(np.array([-0.3], F32), s, round_type=rt))
    # S=inf: finite x -> +-0.0, inf -> NaN
    s = np.array([np.inf], F32)
    for rt in (0, 1):
        got = pk.quantize_linear(x, s, round_type=rt)
        assert got[0] == 0 and np.isnan(got[4])
        assert_bits(got, pd_quantize_linear(x, s, round_type=rt), f"S=inf rt{rt}")
    # S=NaN: NaN everywhere
    s = np.array([np.nan], F32)
    for rt in (0, 1):
        got = pk.quantize_linear(x, s, round_type=rt)
        assert np.isnan(got).all()
        assert_bits(got, pd_quantize_linear(x, s, round_type=rt), f"S=nan rt{rt}")


def test_abs_max_nan_position_hand_worked():
    # 6.9: [NaN, 1, -2] poisons the scale; [1, NaN, -2] skips the NaN
    a = np.array([np.nan, 1, -2], F32)
    b = np.array([1, np.nan, -2], F32)
    out_a, s_a = pk.fake_quantize_abs_max(a)
    out_b, s_b = pk.fake_quantize_abs_max(b)
    assert np.isnan(s_a[0]) and np.isnan(out_a).all()
    assert s_b[0] == 2.0 and np.isnan(out_b[1]) and out_b[0] == 64.0 and out_b[2] == -127.0
    for x, out, s in ((a, out_a, s_a), (b, out_b, s_b)):
        ref = np_list(*_C_ops.fake_quantize_abs_max(T(x), 8, 1))
        assert_bits(out, ref[0])
        assert_bits(s, ref[1])


def test_dequantize_order_hand_worked():
    # docs/kernels/paddle.md, hand-worked case 2: y = fl(fl(q * S) / qmax); the product
    # -118 * fl(0.7) is exact in float64 and the float64 quotient rounds to the same float32
    # as a float32 division would.
    s = F32(0.7)
    q = np.array([-118.0], F32)
    want = F32(float(F32(-118.0 * float(s))) / 127.0)
    got = pk.dequantize_linear(q, np.array([s], F32))
    assert got[0] == want
    assert_bits(got, pd_dequantize_linear(q, np.array([s], F32)))
    # hand-worked case 2: (q * S) / 127 differs from q / fl(127 / S) in 58 of 255 codes;
    # q * fl(S / 127) is another algebraically equal order that differs too
    codes = np.arange(-127, 128).astype(F32)
    got = pk.dequantize_linear(codes, np.array([s], F32))
    alt = codes / F32(F32(127) / s)
    assert int((alt.view(np.uint32) != got.view(np.uint32)).sum()) == 58
    alt2 = codes * F32(s / F32(127))
    assert int((alt2.view(np.uint32) != got.view(np.uint32)).sum()) > 0
    assert_bits(got, pd_dequantize_linear(codes, np.array([s], F32)))


def test_denormal_flush_of_the_legacy_path_hand_worked():
    # _legacy_C_ops runs under FTZ/DAZ: inv(3e38) ~ 3.3e-39 is subnormal and becomes 0,
    # so x = S quantizes to 0 instead of 127.
    x = np.array([3e38, -1e38], F32)
    s = np.array([3e38], F32)
    ref = pd_quantize_linear(x, s)
    assert ref.tolist() == [0.0, -0.0]
    assert_bits(pk.quantize_linear(x, s), ref)
    # without the flush the subnormal reciprocal keeps ~21 bits: 127 * (1 +- 1e-6) -> 127
    assert pk.quantize_linear(x, s, flush_denormals=False)[0] == 127.0
    # dequantize_linear: a subnormal code reads as 0 under DAZ; the eager fake op does not
    # flush: 1e-40 * 1e30 / 1 is about 1e-10 there
    q = np.array([1e-40], F32)
    big = np.array([1e30], F32)
    assert_bits(pk.dequantize_linear(q, big, qmax=1), pd_dequantize_linear(q, big, qmax=1))
    assert pk.dequantize_linear(q, big, qmax=1)[0] == 0.0
    eager = pk.fake_dequantize_max_abs(q, big, 1.0)
    assert_bits(eager, _C_ops.fake_dequantize_max_abs(T(q), T(big), 1.0).numpy())
    assert 0.9e-10 < eager[0] < 1.1e-10


def test_qmin_and_zero_point_are_ignored():
    x = np.array([-7.9, -7.0, 7.9], F32)
    s = np.array([7.0], F32)
    got = pk.quantize_linear(x, s, np.array([3.0], F32), qmin=-7, qmax=7)
    assert got.tolist() == [-8.0, -7.0, 7.0]
    ref = _legacy_C_ops.quantize_linear(
        T(x), T(s), T(np.array([3.0], F32)), "quant_axis", -1, "bit_length", 4,
        "qmin", -7, "qmax", 7, "round_type", 0).numpy()
    assert_bits(got, ref)


# ----------------------------------------------------------------------------- quantize_linear


@SETTINGS
@given(data=st.data(), bits=bits_st, s=scale_st, rt=st.sampled_from([0, 1]))
def test_quantize_linear_per_tensor_vs_paddle(data, bits, s, rt):
    qmax = 2 ** (bits - 1) - 1
    x = data.draw(tensor_values(s, qmax))
    scale = np.array([s], F32)
    assert_bits(pk.quantize_linear(x, scale, None, -1, bits, -qmax - 1, qmax, rt),
                pd_quantize_linear(x, scale, -1, qmax, rt), f"bits={bits} S={s} rt={rt}")


@SMALL
@given(data=st.data(), bits=bits_st, axis=st.sampled_from([0, 1]), rt=st.sampled_from([0, 1]),
       shape=st.sampled_from([(3, 4), (2, 3, 5), (4, 2, 2, 3), (1, 6)]))
def test_quantize_linear_per_channel_vs_paddle(data, bits, axis, rt, shape):
    qmax = 2 ** (bits - 1) - 1
    base = data.draw(finite_scale_st)
    channels = shape[axis]
    exps = data.draw(st.lists(st.integers(-4, 4), min_size=channels, max_size=channels))
    scales = np.array([F32(base) * F32(2.0**e) for e in exps], F32)
    scales[0] = data.draw(st.sampled_from([scales[0], 0.0, 1e-30, np.inf]))
    pool = data.draw(tensor_values(base, qmax))
    n = int(np.prod(shape))
    idx = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=n, max_size=n))
    x = pool[idx].reshape(shape)
    # scale each channel by its power of two: ties relative to that channel survive exactly
    with np.errstate(all="ignore"):
        x = (x * np.array([F32(2.0**e) for e in exps], F32).reshape(
            [channels if d == axis else 1 for d in range(len(shape))])).astype(F32)
    assert_bits(pk.quantize_linear(x, scales, None, axis, bits, -qmax - 1, qmax, rt),
                pd_quantize_linear(x, scales, axis, qmax, rt), f"axis={axis} rt={rt}")


FP8_MEASURED = [(465.0, np.nan), (480.0, 448.0), (np.nan, 448.0), (17.0, 16.0), (19.0, 20.0)]


def test_fp8_measured_points():
    # S = 448 gives c = fl(448 * fl(1/448)) = 1 exactly, so v = x
    s = np.array([448.0], F32)
    assert multiplier(448.0, 448) == F32(1.0)
    x = np.array([p for p, _ in FP8_MEASURED], F32)
    got = pk.quantize_linear(x, s, qmax=448, round_type=0)
    ref = pd_quantize_linear(x, s, qmax=448, round_type=0)
    for (_, want), g, r in zip(FP8_MEASURED, got, ref, strict=True):
        if np.isnan(want):
            assert np.isnan(g) and np.isnan(r)
        else:
            assert g == want and r == want
    assert_bits(got, ref, "fp8 measured")
    # round_type=1 with qmax=448 is plain integer rounding (clip first)
    got1 = pk.quantize_linear(np.array([17.5, 465.0], F32), s, qmax=448, round_type=1)
    assert got1.tolist() == [18.0, 448.0]
    assert_bits(got1, pd_quantize_linear(np.array([17.5, 465.0], F32), s, qmax=448,
                                         round_type=1))


FP8_EDGES = [464.0, 463.99997, 464.00003, 479.99997, 480.0, 496.0, 448.0, 2.0**-9, 2.0**-10,
             3 * 2.0**-10, 2.0**-6, 57344.0, 61440.0, 61439.996, 65536.0, 2.0**-16,
             2.0**-17, 3 * 2.0**-17, 2.0**-14, 1e-45, 0.0, -0.0]


@SETTINGS
@given(data=st.data(), fmt=st.sampled_from([448, 57344]), rt=st.sampled_from([0, 1]),
       s=st.one_of(st.sampled_from([448.0, 57344.0, 1.0, 0.0, 1e-30, np.inf]),
                   st.floats(min_value=_f(1e-3), max_value=_f(1e5), width=32)))
def test_quantize_linear_fp8_vs_paddle(data, fmt, rt, s):
    c = multiplier(s, fmt)
    edges = data.draw(st.lists(st.sampled_from(FP8_EDGES), min_size=1, max_size=8))
    signs = data.draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=len(edges),
                               max_size=len(edges)))
    with np.errstate(all="ignore"):
        xs = [F32(sg * e / float(c)) if np.isfinite(c) and c > 0 else F32(sg * e)
              for sg, e in zip(signs, edges, strict=True)]
    xs += data.draw(st.lists(st.floats(width=32), max_size=6))
    x = np.array(xs, F32)
    scale = np.array([s], F32)
    assert_bits(pk.quantize_linear(x, scale, None, -1, 8, -fmt, fmt, rt),
                pd_quantize_linear(x, scale, -1, fmt, rt), f"fp8 {fmt} rt={rt} S={s}")


# ----------------------------------------------------------------------------- dequantize


@SETTINGS
@given(data=st.data(), qdt=st.sampled_from([np.float32, np.float64, np.int8]),
       sdt=st.sampled_from([np.float32, np.float16, np.float64]),
       axis=st.sampled_from([-1, 0, 1]), bits=bits_st,
       qmax_kind=st.sampled_from(["bits", "fp8"]))
def test_dequantize_linear_vs_paddle(data, qdt, sdt, axis, bits, qmax_kind):
    qmax = 2 ** (bits - 1) - 1 if qmax_kind == "bits" else data.draw(
        st.sampled_from([448, 57344]))
    shape = data.draw(st.sampled_from([(4, 3), (2, 3, 2), (5, 1)]))
    n = int(np.prod(shape))
    lo, hi = (-128, 127) if qdt is np.int8 else (-qmax - 1, qmax)
    q = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)),
                 dtype=np.float64)
    if qdt is not np.int8:
        extra = data.draw(st.lists(st.sampled_from(SPECIAL_FINITE + NONFINITE + [0.5, -2.5]),
                                   max_size=3))
        q[: len(extra)] = extra
    q = q.astype(qdt).reshape(shape)
    count = 1 if axis < 0 else shape[axis]
    svals = data.draw(st.lists(st.one_of(
        st.sampled_from(SCALES),
        st.floats(min_value=_f(1e-4), max_value=_f(1e4), width=32)),
        min_size=count, max_size=count))
    with np.errstate(over="ignore"):
        s = np.array(svals, dtype=np.float64).astype(sdt)
    assert_bits(pk.dequantize_linear(q, s, None, axis, bits, -qmax - 1, qmax),
                pd_dequantize_linear(q, s, axis, qmax), f"{qdt} {sdt} axis={axis} qmax={qmax}")


@SMALL
@given(data=st.data(), dt=st.sampled_from([np.float32, np.float64]),
       max_range=st.one_of(st.sampled_from([127.0, 7.0, 32767.0, 0.1, 3.3]),
                           st.floats(min_value=_f(1e-3), max_value=_f(1e5), width=32)))
def test_fake_dequantize_max_abs_vs_paddle(data, dt, max_range):
    x = np.array(data.draw(st.lists(st.one_of(
        st.integers(-32768, 32767).map(float), st.sampled_from(SPECIAL_FINITE + NONFINITE),
        st.floats(width=32)), min_size=1, max_size=12)), dtype=dt)
    s = np.array([data.draw(st.sampled_from(SCALES))], dtype=dt)
    assert_bits(pk.fake_dequantize_max_abs(x, s, max_range),
                _C_ops.fake_dequantize_max_abs(T(x), T(s), float(max_range)).numpy(),
                f"{dt} max_range={max_range}")


def test_dequantize_linear_float16_hand_worked():
    # float16 scale: everything in float16; qmax 32767 becomes 32768 in float16
    got = pk.dequantize_linear(np.array([32767.0], F32), np.array([1.0], np.float16),
                               qmax=32767)
    assert got.dtype == np.float16 and got[0] == np.float16(1.0)
    assert_bits(got, pd_dequantize_linear(np.array([32767.0], F32),
                                          np.array([1.0], np.float16), qmax=32767))


# ----------------------------------------------------------------------------- fake abs-max


@SETTINGS
@given(data=st.data(), bits=bits_st, s=finite_scale_st, rt=st.sampled_from([0, 1]),
       nonfinite=st.booleans())
def test_fake_quantize_abs_max_vs_paddle(data, bits, s, rt, nonfinite):
    qmax = 2 ** (bits - 1) - 1
    x = data.draw(tensor_values(s, qmax, nonfinite=nonfinite, bounded=True))
    if nonfinite:
        x = np.concatenate([x, np.array(data.draw(st.lists(st.sampled_from(NONFINITE),
                                                           max_size=2)), F32)])
        perm = data.draw(st.permutations(list(range(x.size))))
        x = x[perm]
    for fn, op in ((pk.fake_quantize_abs_max, _C_ops.fake_quantize_abs_max),
                   (pk.fake_quantize_dequantize_abs_max,
                    _C_ops.fake_quantize_dequantize_abs_max)):
        out, scale = fn(x, bits, rt)
        ref = np_list(*op(T(x), bits, rt))
        assert_bits(out, ref[0], f"{fn.__name__} out bits={bits} rt={rt}")
        assert_bits(scale, ref[1], f"{fn.__name__} scale")


@SMALL
@given(data=st.data(), bits=bits_st, axis=st.sampled_from([0, 1]), rt=st.sampled_from([0, 1]),
       shape=st.sampled_from([(3, 4), (2, 3, 4), (3, 2, 2, 2), (5,)]),
       s=finite_scale_st, nonfinite=st.booleans())
def test_fake_channel_wise_vs_paddle(data, bits, axis, rt, shape, s, nonfinite):
    if axis >= len(shape):
        axis = 0
    qmax = 2 ** (bits - 1) - 1
    pool = data.draw(tensor_values(s, qmax, nonfinite=nonfinite, bounded=True))
    n = int(np.prod(shape))
    idx = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=n, max_size=n))
    x = pool[idx].reshape(shape)
    channels = shape[axis]
    exps = data.draw(st.lists(st.integers(-3, 3), min_size=channels, max_size=channels))
    with np.errstate(all="ignore"):
        x = (x * np.array([F32(2.0**e) for e in exps], F32).reshape(
            [channels if d == axis else 1 for d in range(len(shape))])).astype(F32)
    if nonfinite and data.draw(st.booleans()):
        x.reshape(-1)[0] = np.nan  # NaN as the first element of channel 0 / run (0, 0)
    for fn, call in (
        (pk.fake_channel_wise_quantize_abs_max,
         lambda: _C_ops.fake_channel_wise_quantize_abs_max(T(x), bits, rt, axis, False)),
        (pk.fake_channel_wise_quantize_dequantize_abs_max,
         lambda: _C_ops.fake_channel_wise_quantize_dequantize_abs_max(T(x), bits, rt, axis)),
    ):
        out, scales = fn(x, bits, rt, axis)
        ref = np_list(*call())
        assert_bits(out, ref[0], f"{fn.__name__} out axis={axis} rt={rt}")
        assert_bits(scales, ref[1], f"{fn.__name__} scales axis={axis}")


def test_channel_wise_nan_run_is_skipped_on_axis1():
    # axis 1: run x[0, 0, :] starts with NaN, so its 9.0 is ignored; channel 0 scale = 2
    x = np.array([[[np.nan, 9.0], [1.0, 1.0]], [[2.0, -1.0], [0.5, 3.0]]], F32)
    out, scales = pk.fake_channel_wise_quantize_abs_max(x, 8, 1, 1)
    assert scales.tolist() == [2.0, 3.0]
    ref = np_list(*_C_ops.fake_channel_wise_quantize_abs_max(T(x), 8, 1, 1, False))
    assert_bits(out, ref[0])
    assert_bits(scales, ref[1])
    # axis 0: channel 0 starts with NaN -> its scale and outputs are NaN
    out, scales = pk.fake_channel_wise_quantize_abs_max(x, 8, 1, 0)
    assert np.isnan(scales[0]) and np.isnan(out[0]).all() and scales[1] == 3.0
    ref = np_list(*_C_ops.fake_channel_wise_quantize_abs_max(T(x), 8, 1, 0, False))
    assert_bits(out, ref[0])
    assert_bits(scales, ref[1])


# ----------------------------------------------------------------------------- moving average


step_st = st.tuples(
    st.lists(st.one_of(st.floats(min_value=_f(-8), max_value=_f(8), width=32),
                       st.sampled_from(SPECIAL_FINITE[:5])), min_size=1, max_size=12),
    st.sampled_from([0.9, 0.99, 0.5, 0.0, 1.0, 0.1]),
)


@SMALL
@given(steps=st.lists(step_st, min_size=2, max_size=8), rt=st.sampled_from([0, 1]),
       bits=bits_st, dequant=st.booleans(),
       init=st.tuples(st.sampled_from([0.0, 1.0, 3.7]), st.sampled_from([0.0, 1.0, 2.5])))
def test_moving_average_sequences_vs_paddle(steps, rt, bits, dequant, init):
    fn = (pk.fake_quantize_dequantize_moving_average_abs_max if dequant
          else pk.fake_quantize_moving_average_abs_max)
    op = (_C_ops.fake_quantize_dequantize_moving_average_abs_max if dequant
          else _C_ops.fake_quantize_moving_average_abs_max)
    scale = np.array([1.0], F32)
    accum = np.array([init[0]], F32)
    state = np.array([init[1]], F32)
    for i, (vals, rate) in enumerate(steps):
        x = np.array(vals, F32)
        res = fn(x, scale, accum, state, rate, bits, rt, False)
        ref = np_list(*op(T(x), T(scale), T(accum), T(state), rate, bits, False, rt))
        # Paddle's order: out, out_scale, out_state, out_accum
        assert_bits(res.out, ref[0], f"step {i} out")
        assert_bits(res.out_scale, ref[1], f"step {i} scale")
        assert_bits(res.out_state, ref[2], f"step {i} state")
        assert_bits(res.out_accum, ref[3], f"step {i} accum")
        test_res = fn(x, res.out_scale, None, None, rate, bits, rt, True)
        test_ref = op(T(x), T(res.out_scale), None, None, rate, bits, True, rt)[0].numpy()
        assert_bits(test_res.out, test_ref, f"step {i} is_test")
        scale, accum, state = res.out_scale, res.out_accum, res.out_state


def test_moving_average_saturates_with_new_scale_hand_worked():
    # state 10 -> 0.9*10+1 = 10; accum chosen so S = accum/state is about 1.63 < |x| = 3
    x = np.array([-3.0, 0.5], F32)
    state = np.array([10.0], F32)
    accum = np.array([(16.3 - 3.0) / 0.9], F32)
    for rt, want in ((0, -128.0), (1, -127.0)):
        res = pk.fake_quantize_moving_average_abs_max(x, np.array([9.0], F32), accum, state,
                                                      0.9, 8, rt, False)
        assert 1.62 < res.out_scale[0] < 1.64
        assert res.out[0] == want
        ref = _C_ops.fake_quantize_moving_average_abs_max(
            T(x), T(np.array([9.0], F32)), T(accum), T(state), 0.9, 8, False, rt)
        assert_bits(res.out, ref[0].numpy())


# ----------------------------------------------------------------------------- bad input


def test_float16_and_float64_inputs_rejected_like_paddle():
    x16 = np.array([1.0, -2.0], np.float16)
    with pytest.raises(TypeError, match="x must have dtype"):
        pk.fake_quantize_abs_max(x16)
    with pytest.raises(Exception, match="not registered"):
        _C_ops.fake_quantize_abs_max(T(x16), 8, 1)
    with pytest.raises(TypeError, match="x must have dtype"):
        pk.quantize_linear(x16.astype(np.float64), np.array([1.0], F32))
    with pytest.raises(TypeError, match="q must have dtype"):
        pk.dequantize_linear(np.array([1, 2], np.int32), np.array([1.0], F32))
    with pytest.raises(TypeError, match="scale must have the same dtype"):
        pk.fake_dequantize_max_abs(np.array([1.0], F32), np.array([1.0]), 127.0)
    with pytest.raises(TypeError, match="x must be"):
        pk.fake_quantize_abs_max("abc")


def test_bad_axis():
    x = np.ones((2, 2, 2), F32)
    s2 = np.ones(2, F32)
    for axis in (2, -2, 5):
        with pytest.raises(ValueError, match="quant_axis"):
            pk.quantize_linear(x, s2, quant_axis=axis)
        with pytest.raises(ValueError, match="quant_axis"):
            pk.dequantize_linear(x, s2, quant_axis=axis)
    with pytest.raises(ValueError, match="quant_axis"):
        pk.fake_channel_wise_quantize_abs_max(x, quant_axis=-1)
    with pytest.raises(ValueError, match="quant_axis"):
        pk.fake_channel_wise_quantize_dequantize_abs_max(np.ones(3, F32), quant_axis=1)
    with pytest.raises(TypeError, match="quant_axis"):
        pk.quantize_linear(x, s2, quant_axis=1.0)
    # Paddle itself raises for quantize axis 2
    with pytest.raises(ValueError, match="quant_axis"):
        pd_quantize_linear(x, s2, axis=2)


def test_bad_bits_round_type_qmax():
    x = np.ones(3, F32)
    for b in (1, 17, 0):
        with pytest.raises(ValueError, match="bit_length"):
            pk.fake_quantize_abs_max(x, bit_length=b)
        with pytest.raises(ValueError, match="bit_length"):
            pk.quantize_linear(x, np.array([1.0], F32), bit_length=b)
    with pytest.raises(TypeError, match="bit_length"):
        pk.fake_quantize_dequantize_abs_max(x, bit_length=8.0)
    with pytest.raises(ValueError, match="round_type"):
        pk.fake_quantize_abs_max(x, round_type=2)
    with pytest.raises(TypeError, match="round_type"):
        pk.fake_quantize_abs_max(x, round_type=True)
    for qmax in (0, 32768, 65535):
        with pytest.raises(ValueError, match="qmax"):
            pk.quantize_linear(x, np.array([1.0], F32), qmax=qmax)


def test_bad_scale_shape_and_values():
    x = np.ones((3, 4), F32)
    with pytest.raises(ValueError, match=r"scale must have shape \(4,\)"):
        pk.quantize_linear(x, np.ones(3, F32), quant_axis=1)
    with pytest.raises(ValueError, match=r"scale must have shape \(3,\)"):
        pk.dequantize_linear(x, np.ones(4, F32), quant_axis=0)
    with pytest.raises(ValueError, match="scale must hold exactly one value"):
        pk.quantize_linear(x, np.ones(2, F32))
    with pytest.raises(ValueError, match="scale must be >= 0"):
        pk.quantize_linear(x, np.array([-1.0], F32))
    with pytest.raises(ValueError, match="max_range"):
        pk.fake_dequantize_max_abs(x, np.array([1.0], F32), 0.0)
    with pytest.raises(ValueError, match="x must not be empty"):
        pk.fake_quantize_abs_max(np.zeros((0,), F32))
    with pytest.raises(ValueError, match="in_state is required"):
        pk.fake_quantize_moving_average_abs_max(x, np.array([1.0], F32), np.array([1.0], F32))
    with pytest.raises(ValueError, match="in_accum must hold exactly one value"):
        pk.fake_quantize_moving_average_abs_max(x, np.array([1.0], F32), np.ones(2, F32),
                                                np.ones(1, F32))
    # Paddle also refuses a per-channel dequantize scale of the wrong length
    with pytest.raises(Exception, match="scale"):
        pd_dequantize_linear(x, np.ones(4, F32), axis=0)


def test_inputs_not_modified():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(F32)
    x[0, 1] = np.nan
    s = np.array([0.5], F32)
    sc = np.array([1.0, 2.0, 3.0], F32)
    acc = np.array([1.0], F32)
    st_ = np.array([1.0], F32)
    arrays = [x, s, sc, acc, st_]
    before = [a.copy() for a in arrays]
    pk.quantize_linear(x, s)
    pk.quantize_linear(x, sc, quant_axis=0, round_type=1)
    pk.dequantize_linear(x, sc, quant_axis=0)
    pk.fake_quantize_abs_max(x)
    pk.fake_quantize_dequantize_abs_max(x, round_type=0)
    pk.fake_channel_wise_quantize_abs_max(x)
    pk.fake_channel_wise_quantize_dequantize_abs_max(x, quant_axis=1)
    pk.fake_dequantize_max_abs(x, s, 127.0)
    pk.fake_quantize_moving_average_abs_max(x, s, acc, st_)
    r = pk.fake_quantize_dequantize_moving_average_abs_max(x, s, acc, st_, is_test=True)
    for a, b in zip(arrays, before, strict=True):
        assert_bits(a, b, "input modified")
    assert r.out_accum is not acc and r.out_state is not st_
