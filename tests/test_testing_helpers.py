"""refquant.testing: assertions and Hypothesis strategies.

Expected values are hand-worked bit patterns and independent float64 arithmetic; the
strategy test against Paddle uses the real kernel.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import QParams
from refquant import testing as rqt
from refquant.testing import assert_kernel_matches, assert_observer_matches, summation_bound

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


def test_kernel_assertion_passes_on_identical_bits():
    a = np.array([0.0, -0.0, np.nan, 1.5], np.float32)
    assert_kernel_matches(a, a.copy())
    assert_kernel_matches((a, np.int8([1, 2])), (a.copy(), np.int8([1, 2])))
    assert_kernel_matches({"y": a}, {"y": a.copy()})


def test_kernel_assertion_reports_first_difference_with_bits_and_input():
    x = np.array([1.0, -0.3, 2.0], np.float32)
    expected = np.array([1.0, -0.0, 2.0], np.float32)
    actual = np.array([1.0, 0.0, 3.0], np.float32)
    before = actual.copy()
    with pytest.raises(AssertionError) as info:
        assert_kernel_matches(actual, expected, name="y", inputs={"x": x, "scale": 0.5})
    msg = str(info.value)
    assert "y[1]" in msg and "0x80000000" in msg and "0x00000000" in msg
    assert "2 element(s) differ" in msg
    assert "x=-0.30000001192092896 [0xbe99999a]" in msg and "scale=0.5" in msg
    assert np.array_equal(actual, before)


def test_kernel_assertion_dtype_shape_and_structure():
    with pytest.raises(AssertionError, match="dtype differs"):
        assert_kernel_matches(np.float64([1.0]), np.float32([1.0]))
    with pytest.raises(AssertionError, match="shape differs"):
        assert_kernel_matches(np.float32([1.0, 2.0]), np.float32([1.0]))
    with pytest.raises(AssertionError, match=r"out\[1\]"):
        assert_kernel_matches((np.int8([1]), np.int8([2])), (np.int8([1]), np.int8([3])),
                              name="out")
    with pytest.raises(AssertionError, match="expected outputs"):
        assert_kernel_matches({"a": np.int8([1])}, {"b": np.int8([1])})
    with pytest.raises(AssertionError, match="expected 5, got 6"):
        assert_kernel_matches(np.int64([6]), np.int64([5]))


def _qp(scale, margin=None, zp=0):
    s = np.asarray(scale, np.float32)
    return QParams(s, np.zeros(s.shape, np.int64) + zp, -128, 127, 8,
                   axis=None if s.ndim == 0 else 0, margin=margin)


def test_observer_assertion_uses_the_margin():
    exp = _qp(2.0, margin=1e-9)
    assert_observer_matches(_qp(2.0), exp)
    assert_observer_matches(np.float32(2.0), exp)
    with pytest.raises(AssertionError, match=r"decision margin 1e-09"):
        assert_observer_matches(_qp(2.5), exp)
    assert_observer_matches(_qp(2.5), exp, bound=1e-6)
    with pytest.raises(AssertionError, match="0x40000000"):
        assert_observer_matches(_qp(2.5), _qp(2.0, margin=0.1), bound=1e-6)
    with pytest.raises(AssertionError, match="no decision margin"):
        assert_observer_matches(_qp(2.5), _qp(2.0))
    with pytest.raises(AssertionError, match="zero_point"):
        assert_observer_matches(_qp(2.0, zp=1), _qp(2.0))


def test_observer_assertion_per_channel():
    exp = _qp([1.0, 2.0, 3.0], margin=np.array([0.5, 1e-9, 0.5]))
    assert_observer_matches(_qp([1.0, 2.25, 3.0]), exp, bound=1e-6)
    with pytest.raises(AssertionError, match=r"scale\[2\]"):
        assert_observer_matches(_qp([1.0, 2.25, 3.5]), exp, bound=1e-6)


def test_summation_bound_hand_worked():
    u = 2.0 ** -24
    assert summation_bound(2) == 2 * u / (1 - u)
    assert summation_bound(1) == summation_bound(2)
    assert summation_bound(1 << 25) == float("inf")


@SETTINGS
@given(rqt.near_ties(scale=0.7, qmax=127, order="mul"))
def test_near_ties_mul_are_near_ties(x):
    c = np.float32(np.float32(127) * (np.float32(1) / np.float32(0.7)))
    v = (c * x).astype(np.float32).astype(np.float64)
    dist = np.abs(v - (np.floor(v) + 0.5))
    assert x.dtype == np.float32
    assert np.all(dist <= 8 * np.spacing(np.abs(v).astype(np.float32)).astype(np.float64))


@SETTINGS
@given(rqt.near_ties(scale=0.0123, qmax=127, order="div"))
def test_near_ties_div_are_near_ties(x):
    v = (x / np.float32(0.0123)).astype(np.float32).astype(np.float64)
    dist = np.abs(v - (np.floor(v) + 0.5))
    assert np.all(dist <= 8 * np.spacing(np.abs(v).astype(np.float32)).astype(np.float64))


@SETTINGS
@given(rqt.saturating(1.0), st.sampled_from([0, 1]))
def test_strategies_drive_a_differential_check_against_paddle(x, round_type):
    paddle = pytest.importorskip("paddle")
    from paddle import _legacy_C_ops

    from refquant.kernels import paddle as pk

    want = _legacy_C_ops.quantize_linear(  # type: ignore[attr-defined]
        paddle.to_tensor(x), paddle.to_tensor(np.float32([1.0])),
        paddle.to_tensor(np.float32([0.0])), "quant_axis", -1, "bit_length", 8,
        "qmin", -128, "qmax", 127, "round_type", round_type).numpy()
    got = pk.quantize_linear(x, np.float32([1.0]), round_type=round_type)
    assert_kernel_matches(got, want, inputs={"x": x})


@SETTINGS
@given(rqt.special_floats(), rqt.scales())
def test_special_floats_and_scales(v, s):
    assert isinstance(v, np.float32) and isinstance(s, np.float32)
    assert s >= 0 and np.isfinite(s)


@SETTINGS
@given(rqt.float32_arrays(allow_special=True))
def test_float32_arrays(x):
    assert x.dtype == np.float32 and 1 <= x.ndim <= 3


@SETTINGS
@given(rqt.batch_sequences())
def test_batch_sequences(batches):
    assert 1 <= len(batches) <= 3
    for b in batches:
        assert b.dtype == np.float32 and b.shape == (8, 16) and np.isfinite(b).all()


def test_hypothesis_is_imported_lazily():
    code = ("import sys, refquant.testing as t\n"
            "t.assert_kernel_matches(t.np.int8([1]), t.np.int8([1]))\n"
            "print('hypothesis' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_import_paddleslim_without_pkg_resources():
    """PaddleSlim's package __init__ imports pkg_resources (gone from setuptools >= 80):
    the helper still imports its quantization modules, and they work."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("paddleslim") is None:
        pytest.skip("paddleslim is not installed")
    code = (
        "import sys, numpy as np, paddle\n"  # paddle's own setuptools import comes first
        "sys.modules['pkg_resources'] = None\n"  # from here `import pkg_resources` fails
        "from refquant.testing import import_paddleslim\n"
        "mse = import_paddleslim('paddleslim.quant.observers.mse')\n"
        "layer = mse.MSEObserverLayer(paddle.nn.Linear(2, 2))\n"
        "layer.forward(paddle.to_tensor(np.array([[3.0]], np.float32)))\n"
        "print('scale', float(layer.scales()))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    # PaddleSlim's MSE on [[3]]: the 35 accumulated factors never reach 1.0 (quirk 16)
    assert "scale 2.9400000000000017" in res.stdout
