"""refquant.kernels.nvidia: hand-worked cases and an independent float64 formulation.

pytorch-quantization and Model Optimizer are not installed (and need CUDA for the kernel), so
the expected values are worked by hand (``docs/kernels/torch.md``, "Hand-worked cases" 3 and
4) or computed with Python floats (float64) and one explicit rounding to float32 after each
operation (exact for +, *, / since float64 has more than 2*24+2 bits), with Python's own
round-half-even.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.kernels import nvidia as nv

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def _f32(v: float) -> float:
    return float(np.float32(v))


def _reference(x: np.ndarray, amax: float, num_bits: int, unsigned: bool, narrow: bool,
               backend: str) -> np.ndarray:
    bound = float(2 ** (num_bits - 1 + int(unsigned)) - 1)
    if backend == "modelopt_cuda":
        lo = -bound  # narrow_range is not forwarded to the CUDA kernel
    else:
        lo = 0.0 if unsigned else (-bound if narrow else -bound - 1)
    a = _f32(amax)
    out = []
    for v in x.tolist():
        tiny = a < 2.0**-24 if backend == "modelopt_cuda" else a <= 2.0**-24
        if tiny:
            out.append(0.0 if np.isfinite(v) or backend == "modelopt_cuda" else float("nan"))
            continue
        scale = _f32(bound / a)
        if np.isnan(v):
            out.append(float("nan"))
            continue
        p = _f32(v * scale)
        q = float(round(p)) if np.isfinite(p) else p
        q = math.copysign(q, p) if q == 0 else q  # rint keeps the sign of -0.3 -> -0.0
        q = min(max(q, lo), bound)
        out.append(_f32(q / scale))
    return np.array(out, np.float32)


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float32
    diff = a.view(np.uint32) != b.view(np.uint32)
    assert not diff.any(), (a[diff][:5], b[diff][:5])


@SETTINGS
@given(
    st.integers(0, 2**32 - 1),
    st.floats(1e-6, 1e4),
    st.sampled_from([4, 8, 16]),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["python", "modelopt_cuda"]),
)
def test_against_float64_formulation(seed, amax, num_bits, unsigned, narrow, backend):
    rng = np.random.default_rng(seed)
    a32 = np.float32(amax)
    bound = 2 ** (num_bits - 1 + int(unsigned)) - 1
    scale = np.float32(bound / float(a32))
    k = rng.integers(-bound - 3, bound + 4, 48) + 0.5
    x0 = (k / float(scale)).astype(np.float32)
    x = np.concatenate([x0, np.nextafter(x0, np.float32(np.inf)),
                        np.nextafter(x0, np.float32(-np.inf)),
                        (rng.standard_normal(48) * float(a32) * 1.5).astype(np.float32),
                        np.array([0.0, a32, -a32, np.nan, 1e30, -1e30], np.float32)])
    if unsigned:
        x = np.abs(x)
    got = nv.fake_tensor_quant(x, a32, num_bits, unsigned, narrow, backend=backend)
    _same_bits(got, _reference(x, float(a32), num_bits, unsigned, narrow, backend))


def test_dequantize_divides_hand_worked_4():
    # amax = 0.7, code -118: q / (127/0.7) = -0.65039366, not q * (0.7/127) = -0.6503937.
    amax = np.float32(0.7)
    scale = np.float32(127) / amax
    x = np.array([np.float32(-118) / scale], np.float32)
    q, s = nv.tensor_quant(x, amax)
    assert q[0] == -118.0 and s == scale
    y = nv.fake_tensor_quant(x, amax)
    assert y[0] == np.float32(-0.65039366)
    assert y[0] != np.float32(-0.6503937)
    assert np.float32(-118) * (amax / np.float32(127)) == np.float32(-0.6503937)
    assert nv.fake_tensor_quant(x, amax, backend="modelopt_cuda")[0] == y[0]


def test_tiny_amax_guard_hand_worked_12():
    # amax = x = 2^-24: Python guard (<=) gives 0; CUDA guard (<) keeps 2^-24.
    eps = np.float32(2.0**-24)
    x = np.array([eps], np.float32)
    assert nv.fake_tensor_quant(x, eps)[0] == 0.0
    assert nv.fake_tensor_quant(x, eps, backend="modelopt_cuda")[0] == eps
    q, s = nv.tensor_quant(x, eps)
    assert q[0] == 0.0 and s == 1.0
    # just above the threshold both keep it
    above = np.nextafter(eps, np.float32(1))
    xa = np.array([above], np.float32)
    assert nv.fake_tensor_quant(xa, above)[0] == above
    assert nv.fake_tensor_quant(np.array([1.0], np.float32), 0.0)[0] == 0.0


def test_narrow_range_default_and_cuda_ignores_it():
    x = np.array([-1.01, -1.0, 1.01], np.float32)
    q, _ = nv.tensor_quant(x, 1.0)
    assert q.tolist() == [-127.0, -127.0, 127.0]  # narrow_range=True is the default
    q, _ = nv.tensor_quant(x, 1.0, narrow_range=False)
    assert q.tolist() == [-128.0, -127.0, 127.0]
    wide = nv.fake_tensor_quant(x, 1.0, narrow_range=False, backend="modelopt_cuda")
    assert wide[0] == np.float32(-127) / np.float32(127)  # still narrow on CUDA


def test_nan_propagates_and_unsigned():
    x = np.array([np.nan, 0.5, 300.0], np.float32)
    y = nv.fake_tensor_quant(np.abs(x), 2.0, unsigned=True)
    assert np.isnan(y[0])
    assert y[2] == np.float32(255) / (np.float32(255) / np.float32(2.0))
    q, _ = nv.tensor_quant(np.array([0.5], np.float32), 2.0, unsigned=True)
    assert q[0] == 64.0  # rne(0.5 * 127.5) = rne(63.75)


def test_per_axis():
    x = np.array([[1.0, -1.0], [0.5, 3.0]], np.float32)
    amax = np.array([1.0, 4.0], np.float32)
    y = nv.fake_tensor_quant(x, amax, axis=0)
    for i in range(2):
        assert np.array_equal(y[i], nv.fake_tensor_quant(x[i], amax[i]))
    yc = nv.fake_tensor_quant(x, amax, axis=1, backend="modelopt_cuda")
    for j in range(2):
        assert np.array_equal(yc[:, j], nv.fake_tensor_quant(x[:, j], amax[j],
                                                             backend="modelopt_cuda"))


@pytest.mark.parametrize(
    ("call", "exc", "word"),
    [
        (lambda: nv.fake_tensor_quant(np.ones(2, np.float32), -1.0), ValueError, "amax"),
        (lambda: nv.fake_tensor_quant(np.ones(2, np.float32), np.nan), ValueError, "amax"),
        (lambda: nv.fake_tensor_quant(np.ones(2, np.float32), "1"), TypeError, "amax"),
        (lambda: nv.fake_tensor_quant(np.ones(2, np.float32), [1.0, 2.0]), ValueError, "amax"),
        (lambda: nv.fake_tensor_quant(np.ones((2, 2), np.float32), [1.0], axis=0), ValueError,
         "amax"),
        (lambda: nv.fake_tensor_quant(np.ones((2, 2), np.float32), [1.0, 1.0], axis=2),
         ValueError, "axis"),
        (lambda: nv.fake_tensor_quant(np.ones(2, np.float64), 1.0), TypeError, "x"),
        (lambda: nv.fake_tensor_quant(np.array([-1.0], np.float32), 1.0, unsigned=True),
         ValueError, "unsigned"),
        (lambda: nv.fake_tensor_quant(np.ones(2, np.float32), 1.0, num_bits=1), ValueError,
         "num_bits"),
        (lambda: nv.fake_tensor_quant(np.ones(2, np.float32), 1.0, backend="trt"), ValueError,
         "backend"),
    ],
)
def test_bad_input(call, exc, word):
    with pytest.raises(exc, match=word):
        call()


def test_inputs_not_modified():
    x = np.array([0.3, -2.0, np.nan], np.float32)
    amax = np.array([1.5], np.float32)
    xs, As = x.copy(), amax.copy()
    nv.fake_tensor_quant(x, amax[0])
    nv.tensor_quant(x, amax[0])
    nv.fake_tensor_quant(x.reshape(1, -1), amax, axis=0, backend="modelopt_cuda")
    assert np.array_equal(x.view(np.uint32), xs.view(np.uint32))
    assert np.array_equal(amax, As)


def test_amax_scale():
    assert nv.amax_scale(0.7) == np.float32(127) / np.float32(0.7)
    assert nv.amax_scale(2.0, 8, unsigned=True) == np.float32(127.5)
    assert np.isinf(nv.amax_scale(0.0))
