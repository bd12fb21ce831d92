"""refquant.kernels.slim against the same expressions evaluated with real Paddle tensor ops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import testing as rqt
from refquant.kernels import slim

paddle = pytest.importorskip("paddle")

SIZES = st.integers(1, 3000).map(lambda n: (n,))
DTYPES = st.sampled_from([np.float32, np.float64])
data = rqt.adversarial_arrays(SIZES, DTYPES, magnitudes=(1.0, 1e-3, 37.0))


def _paddle_qdq(t, scale, qmax, qmin=None):
    lo = -qmax - 1 if qmin is None else qmin
    q = paddle.clip(paddle.round(t / scale * qmax), lo, qmax)
    return q / qmax * scale


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(x=data, factor=st.floats(0.05, 1.5), qmax=st.sampled_from([127, 7]),
       neg=st.booleans())
def test_quant_dequant_matches_paddle_scalar_scale(x, factor, qmax, neg):
    before = x.copy()
    am = float(np.abs(x).max()) or 1e-8
    scale = (-1 if neg else 1) * factor * am
    ours = slim.quant_dequant(x, scale, qmax)
    real = _paddle_qdq(paddle.to_tensor(x), scale, qmax).numpy()
    assert ours.dtype == real.dtype == x.dtype
    assert np.array_equal(_bits(ours), _bits(real))
    assert np.array_equal(x, before)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(x=rqt.adversarial_arrays(st.tuples(st.integers(1, 8), st.integers(1, 64))),
       factor=st.floats(0.3, 1.0), qmax=st.sampled_from([127, 7]))
def test_quant_dequant_matches_paddle_tensor_scale(x, factor, qmax):
    s = (np.abs(x).max(axis=1, keepdims=True) * np.float32(factor)).astype(np.float32)
    s[s == 0] = np.float32(1e-8)
    ours = slim.quant_dequant(x, s, qmax, -qmax - 1)
    real = _paddle_qdq(paddle.to_tensor(x), paddle.to_tensor(s), qmax).numpy()
    assert np.array_equal(_bits(ours), _bits(real))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(x=data)
def test_paddle_mean_matches_paddle(x):
    ours = slim.paddle_mean(x)
    real = paddle.mean(paddle.to_tensor(x)).numpy()
    assert np.array_equal(_bits(ours), _bits(real))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1023, 8193, 70001])
def test_paddle_mean_sizes(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    assert np.array_equal(_bits(slim.paddle_mean(x)), _bits(paddle.mean(paddle.to_tensor(x))
                                                          .numpy()))


def test_search_factors_hand_checked():
    f = slim.SEARCH_FACTORS
    assert len(f) == 35  # quirk Q1 of docs/divergences.md
    assert f[0] == 0.3 and f[1] == 0.32 and f[3] == 0.36000000000000004
    assert f[-1] == 0.9800000000000005 and 1.0 not in f
    assert all(b > a for a, b in zip(f, f[1:], strict=False))


def test_rounding_is_half_even_hand_worked():
    # scale 4 and qmax 4: x / 4 * 4 is exact, so the rounding mode shows directly
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 3.5], np.float32)
    out = slim.quant_dequant(x, 4.0, 4)
    assert out.tolist() == [0.0, 2.0, 2.0, 0.0, -2.0, 4.0]
    assert not np.signbit(out[3])  # the scalar multiply's "+ 0.0" clears the sign of -0.0


def test_bad_input():
    with pytest.raises(TypeError, match="x"):
        slim.quant_dequant(np.arange(3), 1.0, 127)
    with pytest.raises(ValueError, match="qmax"):
        slim.quant_dequant(np.ones(3), 1.0, 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        slim.paddle_mean(np.ones(3, np.float16))
