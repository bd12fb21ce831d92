"""refquant.kernels.mx and refquant.kernels.nvfp4: block-scaled casts.

Expected values: hand-worked blocks, and torchao 0.18's CPU reference (``to_mx`` /
``to_dtype``, ``NVFP4Tensor.to_nvfp4`` / ``dequantize``) run in the test and compared bit for
bit (scales, element codes, dequantized float32).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.conformance.cases.lowbit_cases import mx_blocks, nvfp4_blocks
from refquant.kernels import mx, nvfp4

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
FP_ELEMS = ("fp8_e4m3fn", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1")


def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


def _assert_same_f32(actual: np.ndarray, expected: np.ndarray) -> None:
    """Bit patterns equal, except that any NaN matches any NaN: which NaN a product of two
    NaNs returns is the compiled operand order (x86 returns the first), not a property of
    the cast; refquant follows torch's build measured here, the tests do not assert it."""
    a, e = np.asarray(actual, np.float32), np.asarray(expected, np.float32)
    assert a.shape == e.shape
    diff = (_bits(a) != _bits(e)) & ~(np.isnan(a) & np.isnan(e))
    assert not diff.any(), (np.argwhere(diff)[:5], a[diff][:5], e[diff][:5])


def _nvfp4_codes_equal(c1: np.ndarray, c0: np.ndarray, x: np.ndarray, s: np.ndarray) -> None:
    """Codes equal except for NaN elements of NaN-scaled blocks, where torchao multiplies a
    NaN by the NaN reciprocal (see :func:`_assert_same_f32`)."""
    ambiguous = np.isnan(x) & (np.repeat(s, 16, axis=-1) == 0x7F)
    np.testing.assert_array_equal(np.where(ambiguous, 0, c1), np.where(ambiguous, 0, c0))


# --- hand-worked -----------------------------------------------------------------------


def test_mxfp4_floor_and_ceil_hand_worked():
    x = np.zeros((1, 32), np.float32)
    x[0, :6] = [7.0, 3.5, -0.75, 0.3, 1e-8, -6.0]
    s, c = mx.quantize(x, "fp4_e2m1", 32, "floor")
    # floor(log2 7) = 2 = emax(E2M1): X = 1; 7 saturates to 6, 3.5 ties to 4, -0.75 ties
    # to -1, 0.3 -> 0.5, 1e-8 -> 0
    assert s.tolist() == [[127]]
    assert c[0, :6].tolist() == [7, 6, 0xA, 1, 0, 0xF]
    s, c = mx.quantize(x, "fp4_e2m1", 32, "ceil")
    # ceil: exponent 3 -> X = 2: 3.5, 1.75 -> 2 (tie to even), -0.375 -> -0.5, 0.15 -> 0
    assert s.tolist() == [[128]]
    assert c[0, :6].tolist() == [6, 4, 0x9, 0, 0, 0xD]
    y = mx.dequantize(s, c, "fp4_e2m1", 32)
    assert y[0, :6].tolist() == [8.0, 4.0, -1.0, 0.0, 0.0, -6.0]


def test_mx_scale_modes_hand_worked():
    # amax 7 (E4M3 elements, emax 8): floor 2-8 = -6; ceil -5; even rounds 7 = 1.11b * 2^2
    # to 3 mantissa bits (unchanged) -> -6; rceil ceil(log2(7/448)) = ceil(-6) = -6
    a = np.float32([7.0, 7.5, 0.0, 2.0**-140, np.inf, np.nan])
    assert mx.shared_scale(a, "fp8_e4m3fn", "floor").tolist() == [121, 121, 0, 0, 247, 255]
    assert mx.shared_scale(a, "fp8_e4m3fn", "ceil").tolist() == [122, 122, 0, 0, 247, 255]
    # 7.5 = 1.111b * 2^2: rounding to 3 mantissa bits keeps it; 7.75 carries to 8 (2^3)
    assert mx.shared_scale(np.float32([7.5, 7.75]), "fp8_e4m3fn", "even").tolist() == [121, 122]
    # rceil: 7.5/448 -> ceil(log2) = -5; 0 -> log2 = -inf -> -127 -> 0; inf -> 0xFE
    assert mx.shared_scale(a, "fp8_e4m3fn", "rceil").tolist() == [121, 122, 0, 0, 254, 255]


def test_mx_smallest_scale_quirk():
    # a block whose amax is below 2^-126 * 2^emax gets code 0 (2^-127) but is divided by
    # 2^-126 (torchao's clamp): 2^-130 / 2^-126 = 2^-4 (E4M3 0x18) decodes to 2^-131
    x = np.zeros((1, 32), np.float32)
    x[0, 0] = 2.0**-130
    s, c = mx.quantize(x, "fp8_e4m3fn", 32, "floor")
    assert s.tolist() == [[0]] and c[0, 0] == 0x18
    assert mx.dequantize(s, c, "fp8_e4m3fn", 32)[0, 0] == np.float32(2.0**-131)


def test_mx_rceil_uses_float32_log2():
    # d = fl32(amax / 448) = 32 * (1 + 2^-23): log2 d = 5 + 1.7e-7 rounds to 5.0 in float32,
    # so the scale is 2^5 (code 132), where the exact ceiling is 6
    amax = np.float32(448 * 32) * np.float32(1 + 2.0**-23)
    assert mx.shared_scale(np.float32([amax]), "fp8_e4m3fn", "rceil").tolist() == [132]
    # at k = 1 the float32 logarithm keeps the increment: 2 * (1 + 2^-23) -> ceil = 2
    amax2 = np.float32(448 * 2) * np.float32(1 + 2.0**-23)
    assert mx.shared_scale(np.float32([amax2]), "fp8_e4m3fn", "rceil").tolist() == [129]


def test_mx_nan_and_inf_blocks():
    x = np.ones((3, 32), np.float32)
    x[0, 5] = np.nan
    x[1, 7] = np.inf
    x[2] = 0.0
    s, c = mx.quantize(x, "fp8_e4m3fn", 32, "floor")
    assert s.ravel().tolist() == [255, 247, 0]
    y = mx.dequantize(s, c, "fp8_e4m3fn", 32)
    assert np.isnan(y[0]).all()
    # inf block: X = 2^120; inf saturates to 448 and 448 * 2^120 = 1.75 * 2^128 overflows
    # to inf on decoding; the ones underflow to 0
    assert y[1, 7] == np.inf and (y[1, :7] == 0).all()
    assert (y[2] == 0).all()


def test_mxint8_hand_worked():
    x = np.zeros((2, 32), np.float32)
    x[0, :6] = [1.0, -1.0, 1.5, 0.5 / 64, 1.5 / 64, 1.99]
    x[1, :2] = [2.0, -3.0]
    s, c = mx.quantize(x, "int8", 32, "floor")
    # block 0: amax 1.99, exponent 0 = emax(INT8): X = 1; codes rint(v * 64), ties to even,
    # clamped to +-127: 64, -64, 96, 0 (0.5), 2 (1.5), 127 (127.36)
    assert s.ravel().tolist() == [127, 128]
    assert c[0, :6].view(np.int8).tolist() == [64, -64, 96, 0, 2, 127]
    # block 1: amax 3 -> X = 2: 2/2*64 = 64, -3/2*64 = -96
    assert c[1, :2].view(np.int8).tolist() == [64, -96]
    y = mx.dequantize(s, c, "int8", 32)
    assert y[0, :3].tolist() == [1.0, -1.0, 1.5] and y[1, :2].tolist() == [2.0, -3.0]


def test_nvfp4_hand_worked():
    x = np.zeros((1, 32), np.float32)
    x[0, :3] = [6.0, -3.0, 1.0]  # block 0: amax 6 -> s = e4m3(1.0) = 0x38
    # block 1 all zero -> s = e4m3(2^-6) = 0x08
    s, c = nvfp4.quantize(x)
    assert s.tolist() == [[0x38, 0x08]]
    assert c[0, :3].tolist() == [7, 0xD, 2]
    # with t = 0.5: fl32(1 / 0.5) = 2, s = e4m3(2) = 0x40, r = 2 / 2 = 1
    s, c = nvfp4.quantize(x, per_tensor_scale=0.5)
    assert s.tolist() == [[0x40, 0x08]]
    y = nvfp4.dequantize(s, c, per_tensor_scale=0.5)
    assert y[0, :3].tolist() == [6.0, -3.0, 1.0]
    assert nvfp4.per_tensor_scale_from_amax(2688.0) == np.float32(1.0)


# --- differential: torchao 0.18 on CPU -------------------------------------------------


def _torchao():
    pytest.importorskip("torch")
    logging.getLogger("torchao").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mt = pytest.importorskip("torchao.prototype.mx_formats.mx_tensor")
        cfg = pytest.importorskip("torchao.prototype.mx_formats.config")
        nv = pytest.importorskip("torchao.prototype.mx_formats.nvfp4_tensor")
    return mt, cfg, nv


def _elem_dtype(elem: str):  # type: ignore[no-untyped-def]
    import torch

    return {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2,
            "fp6_e3m2": "fp6_e3m2", "fp6_e2m3": "fp6_e2m3",
            "fp4_e2m1": torch.float4_e2m1fn_x2}[elem]


def _unpack_fp4(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    # torchao packs element 2i in the low nibble and 2i+1 in the high nibble
    return np.stack([p & 0xF, p >> 4], axis=-1).reshape(shape)


def _torchao_mx(x: np.ndarray, elem: str, bs: int, mode: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mt, cfg, _ = _torchao()  # skips when torch or torchao is missing
    import torch

    td = _elem_dtype(elem)
    s, d = mt.to_mx(torch.from_numpy(x.copy()), td, bs, cfg.ScaleCalculationMode(mode))
    s8 = s.view(torch.uint8).numpy()
    if elem == "fp4_e2m1":
        codes = _unpack_fp4(d.view(torch.uint8).numpy(), x.shape)
    elif elem.startswith("fp8"):
        codes = d.view(torch.uint8).numpy()
    else:
        codes = d.numpy()
    y = mt.to_dtype(d, s, td, bs, torch.float32).numpy()
    return s8, codes, y


@st.composite
def mx_inputs(draw, elem: str, bs: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(rows, blocks * bs) float32: adversarial blocks (mx_blocks), normal data at random
    exponents, raw bit patterns (NaNs made standard), huge / tiny mixes."""
    seed = draw(st.integers(0, 2**32 - 1))
    rows, nblk = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    pool = mx_blocks(elem, bs)
    out = []
    for _ in range(rows * nblk):
        kind = draw(st.sampled_from(("edge", "normal", "bits", "mixed")))
        if kind == "edge":
            b = pool[rng.integers(pool.shape[0])]
        elif kind == "normal":
            b = rng.standard_normal(bs) * np.exp2(float(rng.integers(-140, 128)))
        elif kind == "bits":
            b = rng.integers(0, 2**32, bs, dtype=np.uint64).astype(np.uint32).view(np.float32)
            b = np.where(np.isnan(b), np.float32(np.nan), b)
        else:
            b = rng.standard_normal(bs) * np.exp2(rng.integers(-149, 128, bs).astype(float))
        with np.errstate(over="ignore"):
            out.append(np.asarray(b, np.float32))
    return np.stack(out).reshape(rows, nblk * bs)


@pytest.mark.parametrize("mode", mx.SCALE_MODES)
@pytest.mark.parametrize("elem", FP_ELEMS)
@SETTINGS
@given(data=st.data())
def test_mx_matches_torchao(elem, mode, data):
    bs = data.draw(st.sampled_from((32, 32, 16)))
    x = data.draw(mx_inputs(elem, bs))
    s0, c0, y0 = _torchao_mx(x, elem, bs, mode)
    s1, c1 = mx.quantize(x, elem, bs, mode)
    np.testing.assert_array_equal(s1, s0)
    np.testing.assert_array_equal(c1, c0)
    _assert_same_f32(mx.dequantize(s1, c1, elem, bs), y0)


@pytest.mark.parametrize("elem", FP_ELEMS)
def test_mx_adversarial_blocks_match_torchao(elem):
    x = mx_blocks(elem, 32)
    for mode in mx.SCALE_MODES:
        s0, c0, y0 = _torchao_mx(x, elem, 32, mode)
        s1, c1 = mx.quantize(x, elem, 32, mode)
        np.testing.assert_array_equal(s1, s0, err_msg=mode)
        np.testing.assert_array_equal(c1, c0, err_msg=mode)
        _assert_same_f32(mx.dequantize(s1, c1, elem, 32), y0)


def test_chunked_processing_matches_torchao():
    # more than one CHUNK_ELEMENTS step, with a partial last step and blocks of 16 / 32
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((3, mx.CHUNK_ELEMENTS // 2 + 96))
         * np.exp2(rng.integers(-60, 60, (3, 1)))).astype(np.float32)
    x[1, 100], x[2, -1] = np.nan, np.inf
    for elem, mode, bs in (("fp4_e2m1", "rceil", 32), ("fp8_e4m3fn", "floor", 16)):
        s0, c0, y0 = _torchao_mx(x, elem, bs, mode)
        s1, c1 = mx.quantize(x, elem, bs, mode)
        np.testing.assert_array_equal(s1, s0)
        np.testing.assert_array_equal(c1, c0)
        _assert_same_f32(mx.dequantize(s1, c1, elem, bs), y0)
    s0, c0, y0 = _torchao_nvfp4(x, np.float32(0.01))
    s1, c1 = nvfp4.quantize(x, np.float32(0.01))
    np.testing.assert_array_equal(s1, s0)
    _nvfp4_codes_equal(c1, c0, x, s0)


def _torchao_nvfp4(x: np.ndarray, t: np.float32 | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _, _, nv = _torchao()
    import torch
    pts = None if t is None else torch.tensor(t, dtype=torch.float32)
    q = nv.NVFP4Tensor.to_nvfp4(torch.from_numpy(x.copy()), per_tensor_scale=pts)
    s = q.scale.view(torch.uint8).numpy()
    c = _unpack_fp4(q.qdata.view(torch.uint8).numpy(), x.shape)
    return s, c, q.dequantize(torch.float32).numpy()


@SETTINGS
@given(data=st.data())
def test_nvfp4_matches_torchao(data):
    x = data.draw(mx_inputs("fp4_e2m1", 16))
    t = data.draw(st.one_of(st.none(), st.floats(2.0**-100, 2.0**33, width=32)))
    t32 = None if t is None else np.float32(t)
    s0, c0, y0 = _torchao_nvfp4(x, t32)
    s1, c1 = nvfp4.quantize(x, t32)
    np.testing.assert_array_equal(s1, s0)
    _nvfp4_codes_equal(c1, c0, x, s0)
    _assert_same_f32(nvfp4.dequantize(s1, c1, t32), y0)


def test_nvfp4_adversarial_blocks_match_torchao():
    _, _, nv = _torchao()
    import torch
    x = nvfp4_blocks()
    amax = np.float32(np.nanmax(np.abs(x[np.isfinite(x)])))
    t_ao = nv.per_tensor_amax_to_scale(torch.tensor(amax)).item()
    assert np.float32(t_ao) == nvfp4.per_tensor_scale_from_amax(amax)
    for t in (None, np.float32(0.37), np.float32(t_ao), np.float32(1e-3)):
        s0, c0, y0 = _torchao_nvfp4(x, t)
        s1, c1 = nvfp4.quantize(x, t)
        np.testing.assert_array_equal(s1, s0)
        _nvfp4_codes_equal(c1, c0, x, s0)
        _assert_same_f32(nvfp4.dequantize(s1, c1, t), y0)


# --- bad input -----------------------------------------------------------------------


def test_mx_bad_input_names_the_argument():
    x = np.ones((2, 48), np.float32)
    with pytest.raises(ValueError, match=r"block_size=32 does not divide the last axis of x"):
        mx.quantize(x, "fp4_e2m1", 32)
    with pytest.raises(ValueError, match="block_size must be in"):
        mx.quantize(x, "fp4_e2m1", 0)
    with pytest.raises(TypeError, match="block_size must be an integer"):
        mx.quantize(x, "fp4_e2m1", 16.0)
    with pytest.raises(ValueError, match="elem must be one of"):
        mx.quantize(x, "fp8_e4m3fnuz", 16)
    with pytest.raises(ValueError, match="scale_mode must be one of"):
        mx.quantize(x, "fp4_e2m1", 16, "nearest")
    with pytest.raises(TypeError, match="x must have dtype"):
        mx.quantize(x.astype(np.float64), "fp4_e2m1", 16)
    with pytest.raises(ValueError, match="x must have at least 1 dimension"):
        mx.quantize(np.float32(1.0), "fp4_e2m1", 1)
    s, c = mx.quantize(x, "fp4_e2m1", 16)
    with pytest.raises(ValueError, match=r"scale_e8m0 must have shape \(2, 3\)"):
        mx.dequantize(s[:, :2], c, "fp4_e2m1", 16)
    with pytest.raises(ValueError, match=r"scale_e8m0 must have shape \(2, 2\)"):
        mx.dequantize(s, c, "fp4_e2m1", 24)
    with pytest.raises(ValueError, match="codes must hold 4-bit codes"):
        mx.dequantize(s, c + 16, "fp4_e2m1", 16)
    with pytest.raises(TypeError, match="scale_e8m0 must be an integer"):
        mx.dequantize(s.astype(np.float32), c, "fp4_e2m1", 16)
    with pytest.raises(ValueError, match="amax must be >= 0"):
        mx.shared_scale(np.float32([-1.0]))


def test_nvfp4_bad_input_names_the_argument():
    x = np.ones((2, 32), np.float32)
    with pytest.raises(ValueError, match="multiple of the NVFP4 block size 16"):
        nvfp4.quantize(np.ones((2, 24), np.float32))
    for bad in (np.nan, np.inf, 0.0, -1.0):
        with pytest.raises(ValueError, match="per_tensor_scale must be"):
            nvfp4.quantize(x, per_tensor_scale=bad)
    with pytest.raises(ValueError, match="per_tensor_scale must be a scalar"):
        nvfp4.quantize(x, per_tensor_scale=np.float32([1.0, 2.0]))
    with pytest.raises(TypeError, match="per_tensor_scale must be a real number"):
        nvfp4.quantize(x, per_tensor_scale="1")
    s, c = nvfp4.quantize(x)
    with pytest.raises(ValueError, match=r"scale_e4m3 must have shape \(2, 2\)"):
        nvfp4.dequantize(s[:, :1], c)
    with pytest.raises(ValueError, match="scale_e4m3 must hold 7-bit codes"):
        nvfp4.dequantize(s | 0x80, c)
    with pytest.raises(ValueError, match="per_tensor_scale must be finite"):
        nvfp4.dequantize(s, c, per_tensor_scale=np.nan)


def test_inputs_not_modified():
    x = mx_blocks("fp4_e2m1", 32)
    before = x.copy()
    s, c = mx.quantize(x, "fp4_e2m1", 32, "rceil")
    s0, c0 = s.copy(), c.copy()
    mx.dequantize(s, c, "fp4_e2m1", 32)
    nvfp4.quantize(x, 0.5)
    np.testing.assert_array_equal(_bits(x), _bits(before))
    np.testing.assert_array_equal(s, s0)
    np.testing.assert_array_equal(c, c0)


# --- conformance: the lowbit family against torchao's target --------------------------


def test_lowbit_cases_pass_on_the_torchao_target():
    _torchao()
    from refquant.conformance.cases import lowbit_cases
    from refquant.conformance.compare import compare_outputs
    from refquant.conformance.registry import build_case
    from refquant.conformance.targets import Unsupported
    from refquant.conformance.targets.torchao import TorchaoTarget

    target = TorchaoTarget()
    ran = 0
    for draft in lowbit_cases.generate():
        case = build_case(draft, "kernels.lowbit")
        try:
            out = target.run(case)
        except Unsupported:
            assert "int8" in case.id or case.op.startswith("lowbit.")
            continue
        ok, mm, _ = compare_outputs(case.outputs, out, case.compare)
        assert ok, f"{case.id}: {mm}"
        ran += 1
    # 5 FP elements x 4 modes x (quantize, dequantize), 3 x 2 NVFP4, FP6 / FP4 casts
    assert ran == 5 * 4 * 2 + 6 + 6
