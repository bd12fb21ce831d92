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
    # PaddleSlim's MSE on [[3]]: the 35 accumulated factors never reach 1.0 (Q16)
    assert "scale 2.9400000000000017" in res.stdout


# -- adversarial arrays ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", rqt.ARRAY_KINDS)
def test_adversarial_array_kinds(kind, dtype):
    shape, m = (6, 7), 3.0
    x = rqt.adversarial_array(kind, 5, shape, dtype, m)
    assert x.dtype == dtype
    assert x.shape == ((1, 1) if kind == "single" else shape)
    assert np.array_equal(x, rqt.adversarial_array(kind, 5, shape, dtype, m))  # deterministic
    assert np.isfinite(x).all()
    v = x.astype(np.float64)
    if kind in ("normal", "student_t", "shifted", "outlier", "halfway"):
        other = rqt.adversarial_array(kind, 6, shape, dtype, m)
        assert not np.array_equal(x, other)  # the seed matters
    if kind == "relu":
        assert v.min() == 0.0 and v.max() > 0.0
    elif kind == "negative":
        assert v.max() <= -0.01 * m * (1 - 1e-6)
    elif kind == "shifted":
        assert 4.0 * m < v.mean() < 6.0 * m
    elif kind == "constant":
        assert np.unique(x).size == 1 and float(x.flat[0]) in [
            float(dtype(c * m)) for c in (-1.3, 0.75, 1.7)]
    elif kind == "tiny":
        assert 0.0 < np.abs(v).max() <= 10 * 1e-6 * m
    elif kind == "outlier":
        assert np.abs(v).max() in (float(dtype(50 * m)), float(dtype(1e4 * m)))
    elif kind == "zeros":
        assert not v.any() and not np.signbit(x).any()
    elif kind == "halfway":
        k = v * 127 / m - 0.5  # k + 0.5 = x * 127 / m, within the dtype's rounding
        assert np.allclose(k, np.round(k), rtol=0, atol=1e-4)
        assert k.min() >= -300 - 1e-4 and k.max() <= 299 + 1e-4


def test_adversarial_array_single_modes():
    one = rqt.adversarial_array("single", 3, (4, 2, 3), np.float64, 2.0)
    assert one.shape == (1, 1, 1) and one.item() != 0.0
    spike = rqt.adversarial_array("single", 3, (4, 2, 3), np.float32, 2.0, single="spike")
    assert spike.shape == (4, 2, 3) and np.count_nonzero(spike) == 1
    assert spike.flat[0] == np.float32(5.0)


def test_adversarial_array_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        rqt.adversarial_array("gauss", 0, (3,))
    with pytest.raises(ValueError, match="single"):
        rqt.adversarial_array("single", 0, (3,), single="one")
    with pytest.raises(TypeError, match="dtype"):
        rqt.adversarial_array("normal", 0, (3,), np.int32)
    with pytest.raises(ValueError, match="shape"):
        rqt.adversarial_array("normal", 0, (3, 0))
    with pytest.raises(ValueError, match="kinds"):
        rqt.adversarial_arrays(kinds=("normal", "gauss"))
    with pytest.raises(ValueError, match="single"):
        rqt.adversarial_batches(single="one")


@SETTINGS
@given(rqt.adversarial_arrays(st.sampled_from([(3,), (2, 5)]),
                              st.sampled_from([np.float32, np.float64]),
                              kinds=("normal", "single", "zeros"), magnitudes=(2.0,)))
def test_adversarial_arrays_draw_the_given_shapes_and_dtypes(x):
    assert x.dtype in (np.float32, np.float64)
    assert x.shape in ((3,), (2, 5), (1,), (1, 1))
    assert np.abs(x).max() < 2.0 * 10


@SETTINGS
@given(rqt.adversarial_batches(st.sampled_from([(4, 3), (6, 2)]),
                               st.sampled_from([np.float32, np.float64]),
                               min_batches=2, max_batches=3, single="spike"),
       rqt.adversarial_batches(st.sampled_from([(4,), (5,)]),
                               st.sampled_from([np.float32, np.float64]),
                               same_shape=False, same_dtype=False, kinds=("normal",)))
def test_adversarial_batches_share_shape_and_dtype_when_asked(same, free):
    assert 2 <= len(same) <= 3
    assert len({b.shape for b in same}) == 1 and len({b.dtype for b in same}) == 1
    assert 1 <= len(free) <= 4 and all(b.shape in ((4,), (5,)) for b in free)


def test_adversarial_batches_mix_layouts_and_one_element_batches():
    """Hypothesis finds a list mixing shapes and dtypes when asked to, and one holding a
    one-element batch next to a full one (the "single" kind)."""
    from hypothesis import Phase, find

    quick = settings(database=None, max_examples=500, phases=[Phase.generate])

    mixed = find(rqt.adversarial_batches(st.sampled_from([(4,), (5,)]),
                                         st.sampled_from([np.float32, np.float64]),
                                         same_shape=False, same_dtype=False),
                 lambda bs: len({b.shape for b in bs}) > 1 and len({b.dtype for b in bs}) > 1,
                 settings=quick)
    assert len(mixed) >= 2
    single = find(rqt.adversarial_batches((8, 4)),
                  lambda bs: {b.shape for b in bs} == {(1, 1), (8, 4)},
                  settings=quick)
    assert len(single) >= 2
