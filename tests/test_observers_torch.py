"""Differential tests: refquant.observers.torch against torch 2.13's torch.ao observers (CPU).

Expected values come from torch run in the test (``torch.ao.quantization.observer``) and
from hand-worked cases; scales and zero points are compared as bit patterns.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.ao.quantization import observer as tao  # noqa: E402

from refquant.observers import torch as tobs  # noqa: E402
from refquant.profiles import TORCH, get_profile  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True)

DTYPES = ["quint8", "qint8", "qint32", "quint4x2", "int8", "uint8", "int16", "int32",
          "uint16", "float8_e5m2", "float8_e4m3fn"]
PER_TENSOR = ["per_tensor_affine", "per_tensor_symmetric"]
PER_CHANNEL = ["per_channel_affine", "per_channel_symmetric",
               "per_channel_affine_float_qparams"]
EPS = [float(np.finfo(np.float32).eps), 1e-3, 1e-30, 0.5]


def _batch(rng: np.random.Generator, style: str, shape: tuple[int, ...]) -> np.ndarray:
    mag = 10.0 ** rng.integers(-38, 37)
    x = rng.standard_normal(shape) * mag + rng.integers(-3, 4) * mag * rng.integers(0, 2)
    if style == "relu":  # post-ReLU: many exact zeros
        x = np.maximum(x, 0)
    elif style == "const":
        x = np.full(shape, x.flat[0])
    elif style == "zeros":
        x = np.zeros(shape)
    elif style == "outlier":
        x = x.copy()
        x.flat[rng.integers(x.size)] *= 1e4
    return np.clip(x, -3e38, 3e38).astype(np.float32)


STYLES = st.sampled_from(["normal", "relu", "const", "zeros", "outlier"])


@st.composite
def spec(draw, schemes):
    qmin = draw(st.one_of(st.none(), st.sampled_from([-300, -128, -64, -8, -1, 0, 1, -2**31])))
    qmax = draw(st.one_of(st.none(), st.sampled_from([-1, 0, 1, 7, 15, 127, 255, 300,
                                                      2**31 - 1])))
    return dict(dtype=draw(st.sampled_from(DTYPES)), qscheme=draw(st.sampled_from(schemes)),
                reduce_range=draw(st.booleans()), quant_min=qmin, quant_max=qmax,
                eps=draw(st.sampled_from(EPS)))


def _torch_kwargs(kw: dict) -> dict:
    out = dict(kw)
    out["dtype"] = getattr(torch, kw["dtype"])
    out["qscheme"] = getattr(torch, kw["qscheme"])
    return out


def _build(tcls, rcls, kw: dict, **extra):
    """Both observers, or check that both refuse with the same exception type."""
    try:
        t = tcls(**extra, **_torch_kwargs(kw))
    except Exception as exc:  # torch's own error type for the combination
        with pytest.raises(type(exc)):
            rcls(**extra, **kw)
        return None, None
    return t, rcls(**extra, **kw)


def _same(t, r) -> None:
    try:
        ts, tz = t.calculate_qparams()
    except (AssertionError, RuntimeError) as exc:
        with pytest.raises(type(exc)):
            r.calculate_qparams()
        return
    rs, rz = r.calculate_qparams()
    ts, tz = ts.numpy(), tz.numpy()
    assert rs.dtype == np.float32 and rs.shape == ts.shape
    np.testing.assert_array_equal(rs.view(np.uint32), ts.view(np.uint32))
    if tz.dtype == np.float32:
        np.testing.assert_array_equal(rz.astype(np.float32).view(np.uint32), tz.view(np.uint32))
    else:
        np.testing.assert_array_equal(rz, tz.astype(np.int64))
    try:
        qp = r.compute()
    except ValueError:
        # QParams holds <= 16 bits, integer zero points inside the range
        qmin, qmax = t.quant_min, t.quant_max
        assert (qmax - qmin).bit_length() > 16 or tz.dtype == np.float32 or \
            ((tz < qmin) | (tz > qmax)).any()
        return
    assert qp.convention == "step"
    np.testing.assert_array_equal(qp.scale.view(np.uint32), ts.view(np.uint32))
    np.testing.assert_array_equal(qp.zero_point, tz.astype(np.int64))
    assert (qp.qmin, qp.qmax) == (t.quant_min, t.quant_max)


@SETTINGS
@given(kw=spec(PER_TENSOR), moving=st.booleans(), c=st.sampled_from([0.01, 0.3, 0.9, 1.0]),
       seed=st.integers(0, 2**32 - 1), styles=st.lists(STYLES, min_size=1, max_size=5),
       sizes=st.lists(st.integers(1, 40), min_size=5, max_size=5))
def test_per_tensor_matches_torch(kw, moving, c, seed, styles, sizes):
    rng = np.random.default_rng(seed)
    if moving:
        t, r = _build(tao.MovingAverageMinMaxObserver, tobs.MovingAverageMinMaxObserver, kw,
                      averaging_constant=c)
    else:
        t, r = _build(tao.MinMaxObserver, tobs.MinMaxObserver, kw)
    if t is None:
        return
    for i, style in enumerate(styles):
        x = _batch(rng, style, (sizes[i],))
        before = x.copy()
        t(torch.from_numpy(x))
        r.observe(x)
        np.testing.assert_array_equal(x, before)
        # the running range equals torch's after every batch (it grows and shrinks)
        assert np.float32(r.min_val).view(np.uint32) == t.min_val.numpy().view(np.uint32)
        assert np.float32(r.max_val).view(np.uint32) == t.max_val.numpy().view(np.uint32)
    _same(t, r)


@SETTINGS
@given(kw=spec(PER_CHANNEL), moving=st.booleans(), c=st.sampled_from([0.01, 0.5, 1.0]),
       axis=st.sampled_from([0, 1, -1]), seed=st.integers(0, 2**32 - 1),
       styles=st.lists(STYLES, min_size=1, max_size=4), channels=st.integers(1, 4),
       other=st.integers(1, 6))
def test_per_channel_matches_torch(kw, moving, c, axis, seed, styles, channels, other):
    rng = np.random.default_rng(seed)
    if moving:
        t, r = _build(tao.MovingAveragePerChannelMinMaxObserver,
                      tobs.MovingAveragePerChannelMinMaxObserver, kw, averaging_constant=c,
                      ch_axis=axis)
    else:
        t, r = _build(tao.PerChannelMinMaxObserver, tobs.PerChannelMinMaxObserver, kw,
                      ch_axis=axis)
    if t is None:
        return
    shape = (channels, other) if axis == 0 else (other, channels)
    for style in styles:
        x = _batch(rng, style, shape)
        t(torch.from_numpy(x))
        r.observe(x)
    np.testing.assert_array_equal(r.min_val.view(np.uint32), t.min_val.numpy().view(np.uint32))
    np.testing.assert_array_equal(r.max_val.view(np.uint32), t.max_val.numpy().view(np.uint32))
    _same(t, r)
    if r.qscheme != "per_channel_affine_float_qparams" and r.dtype in ("qint8", "quint8"):
        assert r.compute().axis == axis


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("qscheme", PER_TENSOR + PER_CHANNEL)
@pytest.mark.parametrize("reduce_range", [False, True])
def test_every_combination_accepted_or_refused_as_torch(dtype, qscheme, reduce_range):
    kw = dict(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range)
    x = np.array([[-1.5, 0.25, 3.0], [0.0, 2.0, -0.75]], np.float32)
    for tcls, rcls in [(tao.MinMaxObserver, tobs.MinMaxObserver),
                       (tao.PerChannelMinMaxObserver, tobs.PerChannelMinMaxObserver)]:
        t, r = _build(tcls, rcls, kw)
        if t is not None:
            t(torch.from_numpy(x))
            r.observe(x)
            _same(t, r)


@pytest.mark.parametrize("qmin, qmax", [(1, 10), (-10, -1), (5, 5), (0, 0), (-200, 100),
                                        (-128, 127), (0, 15), (-7, 8), (0, 2**32),
                                        (-(2**31), 2**31), (None, 15), (-3, None)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("qscheme", PER_TENSOR)
@pytest.mark.parametrize("reduce_range", [False, True])
def test_custom_range_checks_as_torch(qmin, qmax, dtype, qscheme, reduce_range):
    kw = dict(dtype=dtype, qscheme=qscheme, quant_min=qmin, quant_max=qmax,
              reduce_range=reduce_range)
    t, r = _build(tao.MinMaxObserver, tobs.MinMaxObserver, kw)
    if t is not None:
        x = np.array([-2.0, 5.0], np.float32)
        t(torch.from_numpy(x))
        r.observe(x)
        _same(t, r)


@pytest.mark.parametrize("lo, zp", [(-0.5, 0), (-1.5, 2), (-2.5, 2), (-3.5, 4)])
def test_zero_point_ties_round_half_even(lo, zp):
    # range 255 on 0..255: scale 1.0, so -lo / scale is a tie; half-even rounding
    x = np.array([lo, lo + 255], np.float32)
    t, r = tao.MinMaxObserver(), tobs.MinMaxObserver()
    t(torch.from_numpy(x))
    r.observe(x)
    assert r.calculate_qparams()[1].tolist() == [zp]
    _same(t, r)


def test_refusals_are_also_value_errors():
    with pytest.raises(ValueError, match="qscheme"):
        tobs.MinMaxObserver(qscheme="per_channel_affine")
    with pytest.raises(NotImplementedError, match="quint8"):
        tobs.MinMaxObserver(qscheme="per_tensor_symmetric", reduce_range=True)
    with pytest.raises(AssertionError, match="include 0"):
        tobs.MinMaxObserver(quant_min=1, quant_max=10)
    with pytest.raises(ValueError, match="dtype"):
        tobs.MinMaxObserver(dtype="torch.quint8")


def test_unobserved_returns_torch_defaults_with_a_warning():
    for t, r in [(tao.MinMaxObserver(), tobs.MinMaxObserver()),
                 (tao.PerChannelMinMaxObserver(), tobs.PerChannelMinMaxObserver())]:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            ts, tz = t.calculate_qparams()
        with pytest.warns(UserWarning, match="must run observer"):
            rs, rz = r.calculate_qparams()
        np.testing.assert_array_equal(rs.view(np.uint32), ts.numpy().view(np.uint32))
        np.testing.assert_array_equal(rz, tz.numpy())


def test_empty_and_single_element_batches():
    for x in [np.zeros((0,), np.float32), np.array([7.5], np.float32),
              np.array(-1e-40, np.float32), np.array([3e38], np.float32)]:
        t, r = tao.MinMaxObserver(), tobs.MinMaxObserver()
        t(torch.from_numpy(np.atleast_1d(x)))
        r.observe(np.atleast_1d(x))
        _same(t, r)


def test_qint32_zero_point_out_of_int32_hand_worked():
    # eps=1e-30 keeps scale = 5 / 2**32; -3 / scale = -2576980377.6 leaves int32: the
    # x86-64 cast gives INT32_MIN, and -2**31 - INT32_MIN = 0 (the formula: about 4.3e8)
    x = np.array([-3.0, 2.0], np.float32)
    r = tobs.MinMaxObserver(dtype="qint32", eps=1e-30)
    r.observe(x)
    scale, zp = r.calculate_qparams()
    assert scale[0] == np.float32(5.0) / np.float32(2.0**32)
    assert zp.tolist() == [0]
    t = tao.MinMaxObserver(dtype=torch.qint32, eps=1e-30)
    t(torch.from_numpy(x))
    assert t.calculate_qparams()[1].tolist() == [0]
    with pytest.raises(ValueError, match="16"):
        r.compute()


def test_symmetric_quint8_hand_worked():
    # max(|-1.5|, 3) / 127.5 = 0.023529..., zero point 128
    r = tobs.MinMaxObserver(qscheme="per_tensor_symmetric")
    r.observe(np.array([-1.5, 3.0], np.float32))
    qp = r.compute()
    assert qp.scale.tolist() == [float(np.float32(3.0) / np.float32(127.5))]
    assert qp.zero_point.tolist() == [128] and qp.scale.shape == (1,)


def test_profile_is_torch_only():
    assert get_profile("torch") is TORCH
    assert tobs.MinMaxObserver().profile == "torch"
    assert tobs.PerChannelMinMaxObserver(profile=TORCH).rules is TORCH
    with pytest.raises(ValueError, match="'torch'"):
        tobs.MinMaxObserver(profile="canonical")
    with pytest.raises(ValueError, match="profile"):
        tobs.MovingAverageMinMaxObserver(profile="nope")


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="NaN"):
        tobs.MinMaxObserver().observe(np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="x"):
        tobs.MinMaxObserver().observe(np.array(["a"]))
    with pytest.raises(ValueError, match="eps"):
        tobs.MinMaxObserver(eps=0.0)
    with pytest.raises(TypeError, match="quant_min"):
        tobs.MinMaxObserver(quant_min=1.5, quant_max=3)
    with pytest.raises(TypeError, match="averaging_constant"):
        tobs.MovingAverageMinMaxObserver(averaging_constant="0.1")
    with pytest.raises(IndexError, match="ch_axis"):
        tobs.PerChannelMinMaxObserver(ch_axis=2).observe(np.zeros((2, 2), np.float32))
    o = tobs.PerChannelMinMaxObserver()
    o.observe(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="channels"):
        o.observe(np.zeros((3, 2), np.float32))


@pytest.mark.parametrize("scale, zp, dtype, qmin, qmax", [
    (1.0 / 256.0, 0, "quint8", 0, 255), (2.0 / 256.0, 128, "quint8", 0, 255),
    (0.1, -3, "qint8", -128, 127), (1e-45, 0, "qint8", -128, 127), (1 / 3, 7, "quint4x2", 0, 15),
])
def test_fixed_qparams_matches_torch(scale, zp, dtype, qmin, qmax):
    t = tao.FixedQParamsObserver(scale, zp, dtype=getattr(torch, dtype), quant_min=qmin,
                                 quant_max=qmax)
    r = tobs.FixedQParamsObserver(scale, zp, dtype=dtype, quant_min=qmin, quant_max=qmax)
    x = np.array([-4.0, 9.0], np.float32)
    t(torch.from_numpy(x))
    r.observe(x)
    _same(t, r)


def test_fixed_qparams_bad_input():
    with pytest.raises(TypeError, match="zero_point"):
        tobs.FixedQParamsObserver(0.1, 1.5)
    with pytest.raises(TypeError, match="scale"):
        tobs.FixedQParamsObserver("0.1", 0)
    with pytest.raises(ValueError, match="'torch'"):
        tobs.FixedQParamsObserver(0.1, 0, profile="paddleslim")
    with pytest.raises(ValueError, match="zero_point"):
        tobs.FixedQParamsObserver(0.1, 300).compute()
