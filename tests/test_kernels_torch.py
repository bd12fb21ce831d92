"""Differential tests: refquant.kernels.torch against the real torch 2.13 CPU kernels, bit for bit.

Expected values come from torch run in the test, from hand-worked cases
(``docs/kernels/torch.md``, "Hand-worked cases" 1 and 2) or from exact rational arithmetic
(``Fraction``).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from refquant.kernels import torch as tk  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions")

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)

# The ATen kernel build torch runs on this CPU ("avx2", "avx512" or "default"). The float-zp
# fake-quant multiply-add is fused in the first two only: live comparisons pass this to
# refquant (``cpu_capability=``) instead of assuming the host's build.
TORCH_CAP = torch.backends.cpu.get_cpu_capability().lower()
# FBGEMM's quantize runs its AVX2 kernel (fused, NaN -> max) only on CPUs with AVX2; refquant
# emulates that kernel, so the live quantize_per_tensor comparisons need it.
needs_avx2_quantize = pytest.mark.skipif(
    TORCH_CAP not in ("avx2", "avx512"),
    reason=f"torch runs its {TORCH_CAP!r} kernels here; refquant emulates FBGEMM's AVX2 "
           "quantize_per_tensor only")

QRANGES = [(0, 255), (-128, 127), (0, 15), (-8, 7), (-(2**31), 2**31 - 1), (0, 1), (-3, 3)]
SPECIALS = np.array(
    [0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, 1.17549435e-38, 3.4e38, -3.4e38, 1e10, -1e10,
     3e9, -3e9, np.inf, -np.inf, np.nan],
    dtype=np.float32,
)


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def assert_same_bits(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.dtype == ref.dtype, (got.dtype, ref.dtype)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    diff = _bits(got) != _bits(ref)
    if diff.any():
        i = int(np.flatnonzero(diff.ravel())[0])
        raise AssertionError(
            f"{int(diff.sum())} of {diff.size} differ; first at {i}: "
            f"got {got.ravel()[i]!r}, torch {ref.ravel()[i]!r}"
        )


def assert_same_ints(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape, (got.shape, ref.shape)
    diff = got.astype(np.int64) != ref.astype(np.int64)
    if diff.any():
        i = int(np.flatnonzero(diff.ravel())[0])
        raise AssertionError(
            f"{int(diff.sum())} of {diff.size} differ; first at {i}: "
            f"got {got.ravel()[i]}, torch {ref.ravel()[i]}"
        )


def _unpack(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    per = 8 // bits
    parts = [(packed >> (bits * i)) & ((1 << bits) - 1) for i in range(per)]
    return np.stack(parts, axis=-1).ravel()[:n].astype(np.uint8)


def _adversarial_x(rng: np.random.Generator, s32: np.float32, zp: int, qmin: int, qmax: int,
                   n: int = 64) -> np.ndarray:
    """Exact .5 ties of fl(x*inv) and their neighbours, saturation edges and specials."""
    inv = np.float32(1.0) / s32
    lo = max(qmin - zp - 3, -(2**26))
    hi = min(qmax - zp + 3, 2**26)
    k = rng.integers(lo, hi + 1, n).astype(np.float64) + 0.5
    edges = np.array([qmin - zp - 0.5, qmax - zp + 0.5, qmin - zp - 1.5, qmax - zp + 1.5,
                      0.5, -0.5, 1.5, -1.5])
    targets = np.concatenate([k, edges])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        x0 = (targets / np.float64(inv)).astype(np.float32)
    x0 = x0[np.isfinite(x0)]
    up = np.nextafter(x0, np.float32(np.inf))
    dn = np.nextafter(x0, np.float32(-np.inf))
    width = float(max(qmax - qmin, 2)) * float(s32)
    rand = (rng.standard_normal(n) * width).astype(np.float32)
    return np.concatenate([x0, up, dn, rand, SPECIALS]).astype(np.float32)


@st.composite
def per_tensor_case(draw):
    qmin, qmax = draw(st.sampled_from(QRANGES))
    span = min(qmax - qmin, 2000)
    zp = draw(st.integers(qmin, qmin + span)) if qmax - qmin < 2**20 else draw(
        st.integers(-1000, 1000))
    exp = draw(st.floats(-12.0, 4.0))
    mant = draw(st.floats(1.0, 2.0))
    s32 = np.float32(mant * 2.0**exp)
    seed = draw(st.integers(0, 2**32 - 1))
    return s32, zp, qmin, qmax, seed


# --------------------------------------------------------------------------------------------
# fake_quantize_per_tensor_affine


@SETTINGS
@given(per_tensor_case())
def test_fake_per_tensor_matches_torch_float32(case):
    s32, zp, qmin, qmax, seed = case
    x = _adversarial_x(np.random.default_rng(seed), s32, zp, qmin, qmax)
    ref = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), float(s32), zp, qmin,
                                                qmax).numpy()
    assert_same_bits(tk.fake_quantize_per_tensor_affine(x, float(s32), zp, qmin, qmax), ref)


@SETTINGS
@given(per_tensor_case(), st.sampled_from(["float16", "bfloat16", "float64"]))
def test_fake_per_tensor_matches_torch_other_dtypes(case, dtype):
    s32, zp, qmin, qmax, seed = case
    x = _adversarial_x(np.random.default_rng(seed), s32, zp, qmin, qmax)
    if dtype == "bfloat16":
        xt = torch.from_numpy(x).to(torch.bfloat16)
        ref = torch.fake_quantize_per_tensor_affine(xt, float(s32), zp, qmin, qmax).float()
        got = tk.fake_quantize_per_tensor_affine(xt.float().numpy(), float(s32), zp, qmin,
                                                 qmax, bfloat16=True)
        assert_same_bits(got, ref.numpy())
        return
    with np.errstate(over="ignore"):
        xd = x.astype(dtype)
    ref = torch.fake_quantize_per_tensor_affine(torch.from_numpy(xd), float(s32), zp, qmin,
                                                qmax).numpy()
    assert_same_bits(tk.fake_quantize_per_tensor_affine(xd, float(s32), zp, qmin, qmax), ref)


@pytest.mark.parametrize("scale", [1e-39, 1e-45, 5e-30, 1e30, 3.0e38])
def test_fake_per_tensor_tiny_and_huge_scales(scale):
    # 1e-39 and 1e-45 are float32 subnormals whose reciprocal overflows to inf.
    x = np.concatenate([SPECIALS, np.array([1e-38, -2e-39, 1.0, -1.0], np.float32)])
    for qmin, qmax, zp in ((0, 255, 3), (-128, 127, 0)):
        ref = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), scale, zp, qmin,
                                                    qmax).numpy()
        assert_same_bits(tk.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax), ref)


def test_fake_per_tensor_double_scale_is_rounded_to_float():
    scale = 0.1 + 1e-12  # not a float32: torch rounds it to float32 first
    x = np.linspace(-30, 30, 601, dtype=np.float32)
    ref = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), scale, 0, -128,
                                                127).numpy()
    assert_same_bits(tk.fake_quantize_per_tensor_affine(x, scale, 0, -128, 127), ref)


def test_fake_per_tensor_nan_inf_signed_zero_hand_worked():
    # NaN -> quant_min (fmax drops NaN), +inf -> quant_max, -0.0 -> +0.0.
    x = np.array([np.nan, np.inf, -np.inf, -0.0], np.float32)
    got = tk.fake_quantize_per_tensor_affine(x, 0.5, 3, 0, 15)
    expected = np.array([(0 - 3) * 0.5, (15 - 3) * 0.5, (0 - 3) * 0.5, 0.0], np.float32)
    assert_same_bits(got, expected)


def test_zero_point_order_hand_worked_13():
    # docs/kernels/torch.md, hand-worked case 2: x*inv = 0.5 exactly, zp = 1.
    s = 0.25
    x = np.array([0.125], np.float32)
    # integer zp (added after rounding): rne(0.5) = 0, q - zp = 0.
    assert tk.fake_quantize_per_tensor_affine(x, s, 1, 0, 255)[0] == 0.0
    assert tk.fake_quantize_per_channel_affine(
        x, np.array([s], np.float32), np.array([1], np.int32), 0, 0, 255)[0] == 0.0
    # float zp (added before rounding): lrintf(1.5) = 2, q - zp = 1 -> y = s.
    assert tk.fake_quantize_per_channel_affine(
        x, np.array([s], np.float32), np.array([1.0], np.float32), 0, 0, 255)[0] == 0.25
    # quantize_per_tensor on CPU (FBGEMM legacy): zp before rounding too -> 2.
    assert tk.quantize_per_tensor(x, s, 1, "quint8")[0] == 2
    # ... and torch agrees on all four.
    xt = torch.from_numpy(x)
    assert torch.fake_quantize_per_tensor_affine(xt, s, 1, 0, 255).item() == 0.0
    assert torch.fake_quantize_per_channel_affine(
        xt, torch.tensor([s]), torch.tensor([1], dtype=torch.int32), 0, 0, 255).item() == 0.0
    assert torch.fake_quantize_per_channel_affine(
        xt, torch.tensor([s]), torch.tensor([1.0]), 0, 0, 255).item() == 0.25
    assert torch.quantize_per_tensor(xt, s, 1, torch.quint8).int_repr().item() == 2


# --------------------------------------------------------------------------------------------
# fake_quantize_per_channel_affine


@st.composite
def per_channel_case(draw):
    qmin, qmax = draw(st.sampled_from(QRANGES[:4] + [(-3, 3), (-(2**15), 2**15 - 1)]))
    axis = draw(st.integers(0, 2))
    float_zp = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    exp = draw(st.floats(-10.0, 2.0))
    return qmin, qmax, axis, float_zp, seed, exp


def _channel_inputs(rng, qmin, qmax, axis, float_zp, exp):
    shape = [2, 3, 4]
    c = rng.integers(2, 5)
    shape[axis] = int(c)
    scales = (np.float32(2.0**exp) * rng.uniform(1.0, 2.0, c)).astype(np.float32)
    if float_zp:
        zps = rng.uniform(qmin, qmax, c).astype(np.float32)
        zps[0] = np.float32(np.round(zps[0]))  # one integral float zp
        zps = np.clip(zps, qmin, qmax).astype(np.float32)
    else:
        zps = rng.integers(qmin, qmax + 1, c).astype(np.int32)
    size = int(np.prod(shape))
    pool = np.concatenate([
        _adversarial_x(rng, scales[i], int(np.round(zps[i])), qmin, qmax, 24)
        for i in range(c)
    ])
    x = rng.choice(pool, size).astype(np.float32).reshape(shape)
    return x, scales, zps


@SETTINGS
@given(per_channel_case(), st.sampled_from(["float32", "float16", "bfloat16", "float64"]))
def test_fake_per_channel_matches_torch(case, dtype):
    qmin, qmax, axis, float_zp, seed, exp = case
    if float_zp and dtype == "float64":
        dtype = "float32"  # float zp with double x: not emulated (double FMA)
    rng = np.random.default_rng(seed)
    x, scales, zps = _channel_inputs(rng, qmin, qmax, axis, float_zp, exp)
    st_, zt = torch.from_numpy(scales), torch.from_numpy(zps)
    if dtype == "bfloat16":
        xt = torch.from_numpy(x).to(torch.bfloat16)
        ref = torch.fake_quantize_per_channel_affine(xt, st_, zt, axis, qmin, qmax).float()
        got = tk.fake_quantize_per_channel_affine(xt.float().numpy(), scales, zps, axis, qmin,
                                                  qmax, bfloat16=True, cpu_capability=TORCH_CAP)
        assert_same_bits(got, ref.numpy())
        return
    with np.errstate(over="ignore"):
        xd = x.astype(dtype)
    ref = torch.fake_quantize_per_channel_affine(torch.from_numpy(xd), st_, zt, axis, qmin,
                                                 qmax).numpy()
    assert_same_bits(tk.fake_quantize_per_channel_affine(xd, scales, zps, axis, qmin, qmax,
                                                         cpu_capability=TORCH_CAP), ref)


def test_fake_per_channel_float16_zero_point_matches_torch():
    rng = np.random.default_rng(5)
    x = _adversarial_x(rng, np.float32(0.0137), 3, 0, 255).reshape(1, -1)
    zps = np.array([3.25], np.float16)
    ref = torch.fake_quantize_per_channel_affine(torch.from_numpy(x), torch.tensor([0.0137]),
                                                 torch.from_numpy(zps), 0, 0, 255).numpy()
    got = tk.fake_quantize_per_channel_affine(x, np.array([0.0137], np.float32), zps, 0, 0, 255,
                                              cpu_capability=TORCH_CAP)
    assert_same_bits(got, ref)


def _fma_distinguishing_x(scale: np.float32) -> np.float32:
    """A float32 x with fl32(x*inv) == 129.5 but exact x*inv < 129.5 (found by search)."""
    inv = np.float32(1.0) / scale
    x0 = np.float32(129.5 / float(inv))
    for d in range(-300, 300):
        x = (np.array([x0]).view(np.int32) + d).view(np.float32)[0]
        exact = Fraction(float(x)) * Fraction(float(inv))
        if np.float32(x * inv) == np.float32(129.5) and exact < Fraction(259, 2):
            return x
    raise AssertionError("no distinguishing input found")


@needs_avx2_quantize
def test_fused_multiply_add_where_measured():
    """Exact x*inv is just below 129.5; with zp = -128 a fused x*inv + zp is 1.5 - tiny -> 1,
    while rounding x*inv first gives 129.5 - 128 = 1.5 -> 2 (ties to even)."""
    scale = np.float32(0.0137)
    x = _fma_distinguishing_x(scale)
    xs = np.full(9, x, np.float32)  # 9 elements: vector body and tail of the AVX2 loop
    # fake per-channel with float zp: fused -> 1, y = (1 - (-128)) * s
    got = tk.fake_quantize_per_channel_affine(xs.reshape(1, -1), np.array([scale]),
                                              np.array([-128.0], np.float32), 0, -1000, 1000,
                                              cpu_capability="avx2")
    assert np.all(got == np.float32(np.float64(129) * np.float64(scale)))
    # quantize_per_tensor qint8 (AVX2, FMA): 1; qint32 (scalar, no FMA): 2
    assert np.all(tk.quantize_per_tensor(xs, float(scale), -128, "qint8") == 1)
    assert np.all(tk.quantize_per_tensor(xs, float(scale), -128, "qint32") == 2)
    # quantize_per_channel (scalar legacy, no FMA): 2
    assert np.all(tk.quantize_per_channel(xs.reshape(1, -1), [float(scale)], [-128], 0,
                                          "qint8") == 2)
    # torch agrees
    xt = torch.from_numpy(xs)
    ref = torch.fake_quantize_per_channel_affine(xt.reshape(1, -1), torch.tensor([scale]),
                                                 torch.tensor([-128.0]), 0, -1000, 1000)
    assert_same_bits(got, ref.numpy())
    assert (torch.quantize_per_tensor(xt, float(scale), -128, torch.qint8).int_repr() == 1).all()
    assert (torch.quantize_per_tensor(xt, float(scale), -128,
                                      torch.qint32).int_repr() == 2).all()
    assert (torch.quantize_per_channel(
        xt.reshape(1, -1), torch.tensor([float(scale)], dtype=torch.float64),
        torch.tensor([-128]), 0, torch.qint8).int_repr() == 2).all()


def test_fma32_helper_against_fractions():
    rng = np.random.default_rng(11)
    inv = (np.float32(1.0) / rng.uniform(1e-3, 1.0, 400).astype(np.float32)).astype(np.float32)
    k = rng.integers(-300, 300, 400) + 0.5
    x = (k / inv.astype(np.float64)).astype(np.float32)
    x = np.concatenate([x, np.nextafter(x, np.float32(1e30)), np.nextafter(x, np.float32(-1e30))])
    inv = np.tile(inv, 3)
    c = np.tile(rng.integers(-300, 300, 400).astype(np.float32), 3)
    got = tk._fma32(x, inv, c)
    for xi, bi, ci, gi in zip(x, inv, c, got, strict=True):
        exact = Fraction(float(xi)) * Fraction(float(bi)) + Fraction(float(ci))
        f = np.float32(float(exact))
        cands = [np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))]
        dist = [abs(Fraction(float(cv)) - exact) for cv in cands]
        best = min(dist)
        ok = [cv for cv, dv in zip(cands, dist, strict=True) if dv == best]
        if len(ok) == 2:  # tie: even mantissa
            ok = [cv for cv in ok if int(np.array(cv).view(np.uint32)) % 2 == 0]
        assert gi == ok[0], (xi, bi, ci, gi, ok)


# --------------------------------------------------------------------------------------------
# quantize_per_tensor / quantize_per_channel / dequantize


@needs_avx2_quantize
@SETTINGS
@given(per_tensor_case(), st.sampled_from(list(tk.QDTYPES)), st.integers(1, 40))
def test_quantize_per_tensor_and_dequantize_match_torch(case, dtype, n):
    s32, _, _, _, seed = case
    _, lo, hi, bits = tk.QDTYPES[dtype]
    rng = np.random.default_rng(seed)
    zp = int(rng.integers(max(lo, -5000), min(hi, 5000) + 1))
    x = _adversarial_x(rng, s32, zp, lo, hi)
    x = np.concatenate([x, x[:n]])  # vary the length (AVX2 remainder handling)
    q = torch.quantize_per_tensor(torch.from_numpy(x), float(s32), zp, getattr(torch, dtype))
    ref = q.int_repr().numpy()
    if bits < 8:
        ref = _unpack(ref, bits, x.size)
    got = tk.quantize_per_tensor(x, float(s32), zp, dtype)
    assert got.dtype == tk.QDTYPES[dtype][0]
    assert_same_ints(got, ref)
    assert_same_bits(tk.dequantize(got, float(s32), zp, dtype), q.dequantize().numpy())


@SETTINGS
@given(per_channel_case(), st.sampled_from(["quint8", "qint8", "qint32"]))
def test_quantize_per_channel_and_dequantize_match_torch(case, dtype):
    _, _, axis, float_zp, seed, exp = case
    _, lo, hi, _ = tk.QDTYPES[dtype]
    if dtype == "qint32":
        float_zp = False
    rng = np.random.default_rng(seed)
    x, scales32, zps = _channel_inputs(rng, max(lo, -5000), min(hi, 5000), axis, float_zp, exp)
    if float_zp:
        scales = scales32
    else:  # torch keeps double scales for per_channel_affine
        scales = scales32.astype(np.float64) * (1 + 1e-9)
        zps = zps.astype(np.int64)
    q = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(scales),
                                   torch.from_numpy(zps), axis, getattr(torch, dtype))
    got = tk.quantize_per_channel(x, scales, zps, axis, dtype)
    assert_same_ints(got, q.int_repr().numpy())
    assert_same_bits(tk.dequantize(got, scales, zps, dtype, axis=axis), q.dequantize().numpy())


@needs_avx2_quantize
def test_quantize_nan_inf_measured():
    x = np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, -0.0], np.float32)
    assert tk.quantize_per_tensor(x, 0.1, 200, "quint8").tolist() == [255, 255, 0, 255, 0, 200]
    assert tk.quantize_per_tensor(x, 0.1, 0, "qint32").tolist() == [
        -(2**31), 2**31 - 1, -(2**31), 2**31 - 1, -(2**31), 0]
    assert tk.quantize_per_tensor(x, 0.1, 3, "quint4x2").tolist() == [0, 0, 0, 15, 0, 3]
    pc = tk.quantize_per_channel(x.reshape(1, -1), [0.1], [-100], 0, "qint8")
    assert pc.tolist() == [[0, 127, -128, 127, -128, -100]]
    for dtype, zp in (("quint8", 200), ("qint32", 0), ("quint4x2", 3)):
        ref = torch.quantize_per_tensor(torch.from_numpy(x), 0.1, zp, getattr(torch, dtype))
        r = ref.int_repr().numpy()
        if dtype == "quint4x2":
            r = _unpack(r, 4, x.size)
        assert_same_ints(tk.quantize_per_tensor(x, 0.1, zp, dtype), r)


def test_division_vs_reciprocal_hand_worked_2():
    s = 0.00214854861
    x = np.array([0.273939937], np.float32)
    assert tk.quantize_per_tensor(x, s, 0, "quint8")[0] == 128  # x * fl(1/s) = 127.5 -> 128
    assert tk.quantize_per_tensor(x, s, 0, "quint8", device="cuda")[0] == 127  # x/s < 127.5
    assert torch.quantize_per_tensor(torch.from_numpy(x), s, 0,
                                     torch.quint8).int_repr().item() == 128


def test_cuda_emulation_against_float64_formula():
    """CUDA path: round(double(x) / double(scale)) + zp, written with Python floats."""
    rng = np.random.default_rng(3)
    s = 0.0123456789
    x = _adversarial_x(rng, np.float32(s), 5, -128, 127)
    x = x[np.isfinite(x)]
    got = tk.quantize_per_tensor(x, s, 5, "qint8", device="cuda")
    expected = [min(max(round(float(v) / s) + 5, -128), 127) for v in x]
    assert got.tolist() == expected
    assert tk.quantize_per_tensor(np.array([np.nan, np.inf], np.float32), s, 5, "qint8",
                                  device="cuda").tolist() == [0, 127]  # NaN + zp -> int64 0
    got_pc = tk.quantize_per_channel(x.reshape(1, -1), [s], [5], 0, "qint8", device="cuda")
    assert got_pc.ravel().tolist() == expected
    q = np.array([-128, 0, 127], np.int8)
    d = tk.dequantize(q, s, 5, device="cuda")
    assert d.tolist() == [float(np.float32((float(v) - 5) * s)) for v in (-128, 0, 127)]


def test_dequantize_qint32_wraps_and_rounds_like_torch():
    q = np.array([-(2**31), 16777217, 2**31 - 1, 0], np.int32)
    qt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(q), 1.5, 7)
    assert_same_bits(tk.dequantize(q, 1.5, 7), qt.dequantize().numpy())
    # the int32 difference wraps: -2^31 - 7 -> 2^31 - 7 (positive)
    assert tk.dequantize(q, 1.5, 7)[0] > 0
    qc = torch._make_per_channel_quantized_tensor(
        torch.from_numpy(q.reshape(1, -1)), torch.tensor([1.5], dtype=torch.float64),
        torch.tensor([7]), 0)
    assert_same_bits(tk.dequantize(q.reshape(1, -1), [1.5], [7], axis=0),
                     qc.dequantize().numpy())


def test_per_channel_dequantize_keeps_double_scale():
    # per-channel scales stay doubles: y = fl32((q - zp) * 0.1) differs from fl32(q-zp) * fl32(0.1)
    q = np.arange(-128, 128, dtype=np.int8).reshape(1, -1)
    pc = tk.dequantize(q, [0.1], [0], axis=0)
    pt = tk.dequantize(q.ravel(), 0.1, 0)
    assert (pc.ravel() != pt).any()
    expected = np.array([np.float32(float(v) * 0.1) for v in range(-128, 128)], np.float32)
    assert_same_bits(pc.ravel(), expected)


# --------------------------------------------------------------------------------------------
# bad input and no mutation


@pytest.mark.parametrize(
    ("call", "exc", "word"),
    [
        (lambda: tk.fake_quantize_per_tensor_affine(np.array([1, 2]), 0.1, 0, 0, 255),
         TypeError, "x"),
        (lambda: tk.fake_quantize_per_tensor_affine([1.0], 0.1, 0, 5, 5), ValueError,
         "quant_min"),
        (lambda: tk.fake_quantize_per_tensor_affine([1.0], 0.1, 0, 10, 5), ValueError,
         "quant_min"),
        (lambda: tk.fake_quantize_per_tensor_affine([1.0], 0.1, 300, 0, 255), ValueError,
         "zero_point"),
        (lambda: tk.fake_quantize_per_tensor_affine([1.0], 0.1, 1.5, 0, 255), TypeError,
         "zero_point"),
        (lambda: tk.fake_quantize_per_tensor_affine([1.0], 0.0, 0, 0, 255), ValueError, "scale"),
        (lambda: tk.fake_quantize_per_tensor_affine([1.0], -0.1, 0, 0, 255), ValueError,
         "scale"),
        (lambda: tk.fake_quantize_per_tensor_affine([1.0], np.nan, 0, 0, 255), ValueError,
         "scale"),
        (lambda: tk.fake_quantize_per_tensor_affine([1.0], 1e-50, 0, 0, 255), ValueError,
         "scale"),
        (lambda: tk.fake_quantize_per_tensor_affine([1.0], 1e40, 0, 0, 255), ValueError,
         "scale"),
        (lambda: tk.fake_quantize_per_tensor_affine(np.array([1.1], np.float32), 0.1, 0, 0, 255,
                                                    bfloat16=True), ValueError, "bfloat16"),
        (lambda: tk.fake_quantize_per_channel_affine(np.ones((2, 3), np.float32), [0.1, 0.1],
                                                     [0, 0], 2, 0, 255), ValueError, "axis"),
        (lambda: tk.fake_quantize_per_channel_affine(np.ones((2, 3), np.float32), [0.1, 0.1, 0.1],
                                                     [0, 0, 0], -1, 0, 255), ValueError, "axis"),
        (lambda: tk.fake_quantize_per_channel_affine(np.float32(1.0), [0.1], [0], 0, 0, 255),
         ValueError, "dimension"),
        (lambda: tk.fake_quantize_per_channel_affine(np.ones((2, 3), np.float32), [0.1, 0.1],
                                                     [0, 0], 1, 0, 255), ValueError, "scale"),
        (lambda: tk.fake_quantize_per_channel_affine(np.ones((2, 3), np.float32), [0.1, 0.0],
                                                     [0, 0], 0, 0, 255), ValueError, "scale"),
        (lambda: tk.fake_quantize_per_channel_affine(np.ones((2, 3), np.float32), [0.1, 0.1],
                                                     [0, 256], 0, 0, 255), ValueError,
         "zero_point"),
        (lambda: tk.fake_quantize_per_channel_affine(np.ones((2, 3), np.float32), [0.1, 0.1],
                                                     np.array([0.0, 300.0], np.float32), 0, 0,
                                                     255), ValueError, "zero_point"),
        (lambda: tk.fake_quantize_per_channel_affine(np.ones((2, 3)), [0.1, 0.1],
                                                     np.array([0.0, 3.0], np.float32), 0, 0,
                                                     255), TypeError, "float64"),
        (lambda: tk.fake_quantize_per_channel_affine(np.ones((2, 3), np.float32), [0.1, 0.1],
                                                     [0, 0], 0, 0, 255, cpu_capability="sse"),
         ValueError, "cpu_capability"),
        (lambda: tk.fake_quantize_per_channel_affine(np.ones((1, 3), np.float32), [0.1],
                                                     [2**35], 0, -(2**40), 2**40), ValueError,
         "int32"),
        (lambda: tk.quantize_per_tensor(np.ones(3, np.float16), 0.1, 0, "quint8"), TypeError,
         "x"),
        (lambda: tk.quantize_per_tensor(np.ones(3, np.float32), 0.1, 0, "int8"), ValueError,
         "dtype"),
        (lambda: tk.quantize_per_tensor(np.ones(3, np.float32), 0.1, 0, "quint8", device="tpu"),
         ValueError, "device"),
        (lambda: tk.quantize_per_tensor(np.ones(3, np.float32), 0.1, 256, "quint8"), ValueError,
         "zero_point"),
        (lambda: tk.quantize_per_tensor(np.ones(3, np.float32), 0.1, 0, "quint4x2",
                                        device="cuda"), ValueError, "quint4x2"),
        (lambda: tk.quantize_per_channel(np.ones((2, 3), np.float32), [0.1, 0.1], [0, 200], 0,
                                         "qint8"), ValueError, "zero_points"),
        (lambda: tk.quantize_per_channel(np.ones((2, 3), np.float32), [0.1, 0.1], [0, 0], 0,
                                         "quint4x2"), ValueError, "quint4x2"),
        (lambda: tk.dequantize(np.ones(3, np.float32), 0.1, 0), TypeError, "q"),
        (lambda: tk.dequantize(np.ones(3, np.int16), 0.1, 0), TypeError, "q"),
        (lambda: tk.dequantize(np.array([20], np.uint8), 0.1, 0, "quint4x2"), ValueError, "q"),
    ],
)
def test_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_inputs_are_not_modified():
    rng = np.random.default_rng(0)
    x = _adversarial_x(rng, np.float32(0.05), 3, 0, 255).reshape(2, -1)
    x.setflags(write=False)
    scales = np.array([0.05, 0.07], np.float32)
    zps_i = np.array([3, 4], np.int32)
    zps_f = np.array([3.5, 4.0], np.float32)
    saved = [a.copy() for a in (x, scales, zps_i, zps_f)]
    tk.fake_quantize_per_tensor_affine(x, 0.05, 3, 0, 255)
    tk.fake_quantize_per_channel_affine(x, scales, zps_i, 0, 0, 255)
    tk.fake_quantize_per_channel_affine(x, scales, zps_f, 0, 0, 255)
    q = tk.quantize_per_tensor(x, 0.05, 3, "quint8")
    tk.quantize_per_channel(x, scales.astype(np.float64), zps_i, 0, "quint8")
    tk.quantize_per_channel(x, scales, zps_f, 0, "quint8")
    q_saved = q.copy()
    tk.dequantize(q, 0.05, 3)
    tk.dequantize(q, scales, zps_i, axis=0)
    for a, b in zip((x, scales, zps_i, zps_f), saved, strict=True):
        assert_same_bits(a, b)
    assert_same_ints(q, q_saved)


def test_empty_input():
    x = np.zeros((0,), np.float32)
    assert tk.fake_quantize_per_tensor_affine(x, 0.1, 0, 0, 255).shape == (0,)
    assert tk.quantize_per_tensor(x, 0.1, 0, "qint8").shape == (0,)
    ref = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), 0.1, 0, 0, 255)
    assert ref.shape == (0,)


def test_per_channel_half_output_rounds_twice():
    """c10::Half converts only from float: the double (q - zp) * s goes double -> float -> half.
    For s = 0.08910362f, q = -95 that gives -8.47 where a direct double -> half gives -8.46."""
    s = np.float32(0.08910362)
    y = np.float64(-95) * np.float64(s)
    assert np.float16(np.float32(y)) != np.float16(y)  # the case distinguishes the two
    x = np.array([[np.float16(y)]], np.float16)
    got = tk.fake_quantize_per_channel_affine(x, np.array([s]), np.array([0], np.int32), 0,
                                              -128, 127)
    assert_same_bits(got, np.array([[np.float16(np.float32(y))]], np.float16))
    ref = torch.fake_quantize_per_channel_affine(torch.from_numpy(x), torch.tensor([s]),
                                                 torch.tensor([0], dtype=torch.int32), 0,
                                                 -128, 127)
    assert_same_bits(got, ref.numpy())


_CAPABILITY_SCRIPT = """
import numpy as np, torch
x = np.frombuffer(bytes.fromhex('{hex}'), np.float32).copy().reshape(1, -1)
y = torch.fake_quantize_per_channel_affine(torch.from_numpy(x), torch.tensor([{s!r}]),
    torch.tensor([-128.0]), 0, -1000, 1000)
print(y.numpy().tobytes().hex())
"""


def test_default_cpu_capability_does_not_fuse():
    """ATEN_CPU_CAPABILITY=default (no AVX2 build): the float-zp multiply-add is not fused."""
    import os
    import subprocess
    import sys

    scale = np.float32(0.0137)
    x = np.full((1, 3), _fma_distinguishing_x(scale), np.float32)
    script = _CAPABILITY_SCRIPT.format(hex=x.tobytes().hex(), s=float(scale))
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    ref = np.frombuffer(bytes.fromhex(out), np.float32).reshape(1, 3)
    got = tk.fake_quantize_per_channel_affine(x, np.array([scale]), np.array([-128.0]), 0,
                                              -1000, 1000, cpu_capability="default")
    assert_same_bits(got, ref)
    fused = tk.fake_quantize_per_channel_affine(x, np.array([scale]), np.array([-128.0]), 0,
                                                -1000, 1000)
    assert (got != fused).all()  # 130*s (not fused) vs 129*s (fused)
