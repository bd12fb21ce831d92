"""Differential tests: refquant's torch HistogramObserver against torch 2.13's (and torchao
0.18's) on CPU; hand-worked cases for the algorithm before pytorch/pytorch#129387; the
canonical counterparts' merge and order independence; the pass-through observers.

Expected values come from torch / torchao run in the test, from hand-worked histograms, or
(for the canonical search) from torch's own ``_non_linear_param_search`` run on the exact
histogram's grid. Scales, histograms and ranges are compared as float32 bit patterns.
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
from refquant.observers.order import batch_order_sensitivity  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
INT_DTYPES = ["quint8", "qint8", "qint32", "quint4x2", "int8", "uint8", "int16", "int32",
              "uint16"]
DTYPES = INT_DTYPES + ["float8_e5m2", "float8_e4m3fn"]
SCHEMES = ["per_tensor_affine", "per_tensor_symmetric"]
EPS = [float(np.finfo(np.float32).eps), 1e-3, 1e-30]


def bits(a) -> np.ndarray:
    """A copy of ``a``'s float32 bit patterns (torch's ``.numpy()`` shares the buffer)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().numpy()
    return np.array(a, np.float32, copy=True).reshape(-1).view(np.uint32)


def _batch(rng: np.random.Generator, style: str, n: int, mag: float) -> np.ndarray:
    x = rng.standard_normal(n) * mag + rng.integers(-2, 3) * mag * rng.integers(0, 2)
    if style == "relu":  # post-ReLU: many exact zeros
        x = np.maximum(x, 0)
    elif style == "const":
        x = np.full(n, x[0])
    elif style == "single":
        x = x[:1]
    elif style == "outlier":
        x = x.copy()
        x[rng.integers(x.size)] *= 1e4
    return x.astype(np.float32)


@st.composite
def batches(draw):
    """1-4 batches; magnitudes grow, shrink or jump between batches."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    trend = draw(st.sampled_from(["grow", "shrink", "jump", "same"]))
    mag = 10.0 ** draw(st.integers(-4, 4))
    out = []
    for _ in range(draw(st.integers(1, 4))):
        style = draw(st.sampled_from(["normal", "relu", "const", "single", "outlier"]))
        out.append(_batch(rng, style, draw(st.integers(1, 600)), mag))
        mag *= {"grow": 10.0, "shrink": 0.1, "same": 1.0}.get(trend, 10.0 ** rng.integers(-3, 4))
    return out


@st.composite
def spec(draw):
    qmin = draw(st.one_of(st.none(), st.sampled_from([-128, -64, -8, 0, 1])))
    qmax = draw(st.one_of(st.none(), st.sampled_from([0, 7, 15, 127, 255])))
    return dict(dtype=draw(st.sampled_from(DTYPES)), qscheme=draw(st.sampled_from(SCHEMES)),
                reduce_range=draw(st.booleans()), quant_min=qmin, quant_max=qmax,
                eps=draw(st.sampled_from(EPS)),
                bins=draw(st.sampled_from([2048, 2048, 256, 37, 2, 1])))


def _torch_kw(kw: dict) -> dict:
    out = dict(kw)
    out["dtype"] = getattr(torch, kw["dtype"])
    out["qscheme"] = getattr(torch, kw["qscheme"])
    return out


def _kind(exc: BaseException) -> str:
    for base in (TypeError, NotImplementedError, AssertionError, RuntimeError, ValueError):
        if isinstance(exc, base):
            return base.__name__
    return type(exc).__name__


def run_real(cls, kw: dict, xs: list[np.ndarray]) -> list:
    """Every step's outcome: (histogram, min, max) per batch, then (scale, zero point)."""
    try:
        obs = cls(**_torch_kw(kw))
    except Exception as exc:  # noqa: BLE001 - the exception kind is the outcome
        return ["raises " + _kind(exc)]
    out: list = []
    for x in xs:
        try:
            obs(torch.from_numpy(x.copy()))
        except Exception as exc:  # noqa: BLE001
            return out + ["raises " + _kind(exc)]
        out.append((bits(obs.histogram.numpy()), bits(obs.min_val.numpy()),
                    bits(obs.max_val.numpy())))
    try:
        scale, zp = obs.calculate_qparams()
    except Exception as exc:  # noqa: BLE001
        return out + ["raises " + _kind(exc)]
    return out + [(bits(scale.numpy()), np.asarray(zp.numpy(), np.int64).reshape(-1))]


def run_ours(kw: dict, xs: list[np.ndarray], version: str = "2.13") -> list:
    try:
        obs = tobs.HistogramObserver(**kw, version=version)
    except Exception as exc:  # noqa: BLE001
        return ["raises " + _kind(exc)]
    out: list = []
    for x in xs:
        try:
            obs.observe(x)
        except Exception as exc:  # noqa: BLE001
            return out + ["raises " + _kind(exc)]
        out.append((bits(obs.histogram), bits(obs.min_val), bits(obs.max_val)))
    try:
        scale, zp = obs.calculate_qparams()
    except Exception as exc:  # noqa: BLE001
        return out + ["raises " + _kind(exc)]
    return out + [(bits(scale), np.asarray(zp, np.int64).reshape(-1))]


def assert_same(real: list, ours: list) -> None:
    assert len(real) == len(ours), (real, ours)
    for r, o in zip(real, ours, strict=True):
        if isinstance(r, str) or isinstance(o, str):
            assert r == o
            continue
        for a, b in zip(r, o, strict=True):
            np.testing.assert_array_equal(a, b)


# -- the float32 kernels -----------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 8, 15, 17, 100, 2047, 2048, 4096, 32768])
def test_kernels_match_torch(n):
    """sum (cascade, 8 lanes), cumsum, linspace (FMA), histc and floor division."""
    from refquant.observers.torch import _ops

    rng = np.random.default_rng(n)
    for trial in range(6):
        x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)).astype(np.float32)
        if trial % 2:
            x = np.abs(x)
        t = torch.from_numpy(x)
        np.testing.assert_array_equal(bits(torch.sum(t)), bits(_ops.sum32(x)))
        np.testing.assert_array_equal(bits(torch.cumsum(t, 0)), bits(_ops.cumsum32(x)))
        lo, hi = float(x.min()), float(x.max())
        for steps in (2, n + 1, 2049):
            np.testing.assert_array_equal(
                bits(torch.linspace(torch.tensor(x.min()), torch.tensor(x.max()), steps)),
                bits(_ops.linspace32(lo, hi, steps)))
        for bins in (1, 7, 2048):
            np.testing.assert_array_equal(torch.histc(t, bins, lo, hi).numpy(),
                                          _ops.histc32(x, bins, lo, hi))
        d = np.float32(10.0 ** rng.uniform(-3, 1))
        np.testing.assert_array_equal(
            bits(torch.div(t, float(d), rounding_mode="floor")), bits(_ops.div_floor32(x, d)))


def test_fma32_rounds_once():
    from refquant.observers.torch._ops import fma32

    a = np.float32(1 + 2.0**-12)
    # a*a = 1 + 2**-11 + 2**-24: a float32 product rounds the last term away (ties to
    # even), the fused result keeps it through the addition of -1
    assert fma32(a, a, np.float32(-1.0)) == np.float32(2.0**-11 + 2.0**-24)
    assert np.float32(a * a) - np.float32(1.0) == np.float32(2.0**-11)


# -- torch 2.13 -------------------------------------------------------------------------
@SETTINGS
@given(kw=spec(), xs=batches())
def test_histogram_observer_matches_torch(kw, xs):
    originals = [x.copy() for x in xs]
    assert_same(run_real(tao.HistogramObserver, kw, xs), run_ours(kw, xs))
    for x, x0 in zip(xs, originals, strict=True):  # the caller's arrays are not modified
        np.testing.assert_array_equal(bits(x), bits(x0))


EDGE_CASES = [
    [np.full(7, 2.5, np.float32)],                                  # constant
    [np.array([3.0], np.float32), np.array([3.0], np.float32)],     # single elements
    [np.zeros(9, np.float32), np.array([0.0, 1.0], np.float32)],    # zeros, then a range
    [np.array([1e8], np.float32), np.array([-5.0, 2e8], np.float32)],  # histc's widened edges
    [np.array([16777216.0], np.float32)],                           # 2**24: edges -1 / +2
    [np.array([0.0, 1e36, 2e36], np.float32)],                      # (x - min) * bins overflows
    [np.array([-3e38, 0.0, 3e38], np.float32)],                     # max - min overflows
    [np.array([1e-30, 2e-30, -1e-30], np.float32)],                 # tiny
    [np.array([1.5e30, -2e30, 7e29], np.float32)],                  # huge
    [np.array([0.0, 1.0, np.inf], np.float32), np.array([-np.inf, 2.0], np.float32)],
    [np.array([np.inf, -np.inf], np.float32)],
    [np.array([1.0, np.nan], np.float32), np.array([2.0], np.float32)],
    [np.array([1.0, 2.0], np.float32), np.array([np.nan, 0.5], np.float32)],
]
EDGE_IDS = ["const", "single", "zeros", "1e8", "2**24", "bins-overflow", "range-overflow",
            "tiny", "huge", "inf", "all-inf", "nan-first", "nan-later"]
SLOW = {"range-overflow", "tiny", "huge"}  # torch's search runs its full 1e5-step loop


@pytest.mark.parametrize("xs, scheme", [
    pytest.param(xs, scheme, id=f"{name}-{scheme}")
    for xs, name in zip(EDGE_CASES, EDGE_IDS, strict=True) for scheme in SCHEMES
    if name not in SLOW or scheme == "per_tensor_affine"])
def test_edge_cases_match_torch(xs, scheme):
    kw = dict(dtype="quint8", qscheme=scheme)
    assert_same(run_real(tao.HistogramObserver, kw, xs), run_ours(kw, xs))


def test_nan_poisons_the_observer_as_in_torch():
    real, ours = tao.HistogramObserver(), tobs.HistogramObserver()
    x = np.array([1.0, np.nan], np.float32)
    with pytest.raises(RuntimeError):
        real(torch.from_numpy(x))
    with pytest.raises(tobs.TorchRuntimeError, match="not finite"):
        ours.observe(x)
    assert np.isnan(real.min_val.item()) and np.isnan(float(ours.min_val))
    with pytest.raises(RuntimeError):
        real(torch.tensor([1.0, 2.0]))
    with pytest.raises(tobs.TorchRuntimeError):
        ours.observe(np.array([1.0, 2.0], np.float32))


def test_inf_is_dropped_with_a_warning():
    obs = tobs.HistogramObserver(bins=4)
    with pytest.warns(UserWarning, match="inf detected"):
        obs.observe(np.array([0.0, np.inf, 1.0], np.float32))
    np.testing.assert_array_equal(obs.histogram, [1, 0, 0, 1])


# -- torchao 0.18 -----------------------------------------------------------------------
@settings(max_examples=12, deadline=None, derandomize=True)
@given(kw=spec(), xs=batches())
def test_torchao_copy_matches(kw, xs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ao = pytest.importorskip("torchao.quantization.pt2e.observer")
    assert_same(run_real(ao.HistogramObserver, kw, xs), run_ours(kw, xs, "torchao-0.18"))


# -- before pytorch/pytorch#129387 (hand-worked) -------------------------------------------
def test_old_algorithm_hand_worked():
    """bins=2, upsample 2: [0, .25, 1] gives counts [2, 1] on [0, 1]; then [2]: the range
    doubles (downsample 4, start 0, e = 4*1/2 - 2 = 0); the old counts upsampled to
    [2, 2, 1, 1, 0, 0, 0, 0], integrated [.., 6 @3, .., 6 @7], differenced [6, 0], / 2 =
    [3, 0]; plus histc([2]) = [0, 1]: [3, 1] on [0, 2]."""
    obs = tobs.HistogramObserver(bins=2, version="2.4", upsample_rate=2)
    obs.observe(np.array([0.0, 0.25, 1.0], np.float32))
    np.testing.assert_array_equal(obs.histogram, [2, 1])
    obs.observe(np.array([2.0], np.float32))
    np.testing.assert_array_equal(obs.histogram, [3, 1])
    assert (float(obs.min_val), float(obs.max_val)) == (0.0, 2.0)


def test_old_algorithm_forgets_data_seen_as_one_value():
    """torch <= 2.4 restarts the histogram while min == max (pytorch/pytorch#129387's fix 1):
    two 1.0s then [0, 2] keep 2 counts; torch 2.13 keeps all 4."""
    first, second = np.array([1.0, 1.0], np.float32), np.array([0.0, 2.0], np.float32)
    old, new = (tobs.HistogramObserver(bins=4, version=v) for v in ("2.4", "2.13"))
    for obs in (old, new):
        obs.observe(first)
        obs.observe(second)
    assert old.histogram.sum() == 2 and new.histogram.sum() == 4
    np.testing.assert_array_equal(old.histogram, [1, 0, 0, 1])
    np.testing.assert_array_equal(new.histogram, [1, 0, 2, 1])


def test_old_algorithm_range_drifts():
    """The old grid stretches max by e = ceil(D*U/d)*d/U - D: [0, 1] then [0, 1.5] with
    U = 128 gives downsample 192 and max exactly 1.5; U = 7: ceil(10.5) = 11, max = 11/7."""
    obs = tobs.HistogramObserver(bins=8, version="2.4", upsample_rate=7)
    obs.observe(np.array([0.0, 1.0], np.float32))
    obs.observe(np.array([1.5], np.float32))
    expected = np.float32(np.float32(np.float32(11) * np.float32(1)) / np.float32(7))
    assert bits(obs.max_val)[0] == bits(expected)[0]


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize("kw, exc", [
    (dict(bins=0), ValueError), (dict(bins=2.0), ValueError), (dict(bins=True), ValueError),
    (dict(version="2.5"), ValueError), (dict(upsample_rate=16), ValueError),
    (dict(version="2.4", upsample_rate=0), ValueError),
    (dict(qscheme="per_channel_affine"), NotImplementedError),
    (dict(is_dynamic=True), NotImplementedError),
    (dict(dtype="float8_e4m3fn"), TypeError), (dict(dtype="bfloat16"), AssertionError),
    (dict(quant_min=1, quant_max=255), AssertionError),
])
def test_bad_arguments(kw, exc):
    with pytest.raises(exc) as info:
        tobs.HistogramObserver(**kw)
    assert any(k in str(info.value) or repr(v) in str(info.value) for k, v in kw.items())


def test_bad_data():
    obs = tobs.HistogramObserver()
    with pytest.raises(TypeError, match="real"):
        obs.observe(np.array(["a"]))
    with pytest.warns(UserWarning, match="must run observer"):
        scale, zp = obs.calculate_qparams()
    assert (float(scale[0]), int(zp[0])) == (1.0, 0)


# -- canonical --------------------------------------------------------------------------
def _split(xs, mask):
    a = [x for x, m in zip(xs, mask, strict=False) if m]
    return a, [x for x, m in zip(xs, mask, strict=False) if not m]


@settings(max_examples=30, deadline=None, derandomize=True)
@given(xs=batches(), mask=st.lists(st.booleans(), min_size=4, max_size=4),
       scheme=st.sampled_from(SCHEMES), bins=st.sampled_from([2048, 64, 5]))
def test_canonical_histogram_merges_exactly(xs, mask, scheme, bins):
    a_part, b_part = _split(xs, mask)
    whole = tobs.CanonicalHistogramObserver(bins=bins, qscheme=scheme)
    a = tobs.CanonicalHistogramObserver(bins=bins, qscheme=scheme)
    b = tobs.CanonicalHistogramObserver(bins=bins, qscheme=scheme)
    for x in xs:
        whole.observe(x)
    for x in a_part:
        a.observe(x)
    for x in reversed(b_part):
        b.observe(x)
    a.merge(b)
    assert a == whole
    sa, za = a.calculate_qparams()
    sw, zw = whole.calculate_qparams()
    np.testing.assert_array_equal(bits(sa), bits(sw))
    np.testing.assert_array_equal(za, zw)
    # one batch made of all the data: the same statistics, whatever the split
    flat = tobs.CanonicalHistogramObserver(bins=bins, qscheme=scheme)
    flat.observe(np.concatenate(xs))
    assert flat == whole


@settings(max_examples=30, deadline=None, derandomize=True)
@given(xs=batches(), mask=st.lists(st.booleans(), min_size=4, max_size=4))
def test_canonical_minmax_merges_exactly(xs, mask):
    a_part, b_part = _split(xs, mask)
    whole, a, b = (tobs.CanonicalMinMaxObserver(qscheme="per_tensor_symmetric")
                   for _ in range(3))
    for x in xs:
        whole.observe(x)
    for x in a_part:
        a.observe(x)
    for x in b_part:
        b.observe(x)
    a.merge(b)
    assert a == whole
    # the same numbers as torch's MinMaxObserver on the same data
    real = tao.MinMaxObserver(qscheme=torch.per_tensor_symmetric)
    for x in xs:
        real(torch.from_numpy(x))
    scale, zp = real.calculate_qparams()
    np.testing.assert_array_equal(bits(a.calculate_qparams()[0]), bits(scale.numpy()))


def test_canonical_per_channel_merge():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(4)]
    whole, a, b = (tobs.CanonicalPerChannelMinMaxObserver(ch_axis=1) for _ in range(3))
    for i, x in enumerate(xs):
        whole.observe(x)
        (a if i % 2 else b).observe(x)
    a.merge(b)
    assert a == whole
    real = tao.PerChannelMinMaxObserver(ch_axis=1)
    for x in xs:
        real(torch.from_numpy(x))
    np.testing.assert_array_equal(bits(whole.calculate_qparams()[0]),
                                  bits(real.calculate_qparams()[0].numpy()))


@pytest.mark.parametrize("seed", range(5))
def test_canonical_search_is_torchs_rule(seed):
    """torch's own search, run on the exact histogram's counts and grid, picks the same
    start/end bins as the canonical float64 search."""
    rng = np.random.default_rng(seed)
    x = np.r_[rng.standard_normal(3000), rng.standard_normal(5) * 20].astype(np.float32)
    can = tobs.CanonicalHistogramObserver(bins=256)
    can.observe(x)
    h = can.hist
    real = tao.HistogramObserver(bins=256)
    real.histogram = torch.tensor(h.counts, dtype=torch.float32)
    real.min_val = torch.tensor(h.lower, dtype=torch.float32)
    real.max_val = torch.tensor(h.lower + h.bins * h.width, dtype=torch.float32)
    lo, hi = real._non_linear_param_search()
    start, end = can._search_bins()
    assert float(lo) == h.lower + h.width * start
    assert float(hi) == h.lower + h.width * (end + 1)


def test_canonical_nonfinite():
    obs = tobs.CanonicalHistogramObserver()
    with pytest.raises(ValueError, match="ignore_nonfinite"):
        obs.observe(np.array([1.0, np.nan], np.float32))
    assert obs.hist.total == 0
    obs = tobs.CanonicalHistogramObserver(ignore_nonfinite=True)
    obs.observe(np.array([1.0, np.nan, np.inf, -2.0], np.float32))
    assert obs.hist.total == 2
    with pytest.raises(TypeError, match="CanonicalHistogramObserver"):
        obs.merge(tobs.CanonicalMinMaxObserver())
    with pytest.raises(ValueError, match="configurations"):
        obs.merge(tobs.CanonicalHistogramObserver(bins=64))


# -- pass-through observers -------------------------------------------------------------
def test_placeholder_and_noop_follow_torch():
    for real, ours in ((tao.PlaceholderObserver(dtype=torch.float16),
                        tobs.PlaceholderObserver(dtype="float16")),
                       (tao.NoopObserver(), tobs.NoopObserver())):
        x = np.arange(4, dtype=np.float32)
        assert real(torch.from_numpy(x)) is not None
        ours.observe(x)
        with pytest.raises(Exception, match="should not be called"):
            real.calculate_qparams()
        with pytest.raises(tobs.CalculateQParamsError, match="should not be called"):
            ours.calculate_qparams()
    real = tao.PlaceholderObserver(dtype=torch.float16, compute_dtype=torch.float16)
    ours = tobs.PlaceholderObserver(dtype="float16", compute_dtype="float16")
    assert real.is_dynamic is False and ours.is_dynamic is False


# -- batch-order sensitivity ------------------------------------------------------------
def test_order_sensitivity():
    """T1's batches: torch's HistogramObserver decides two scales over the two orders (the
    real torch, run here, agrees); the canonical counterpart one."""
    xs = [(np.linspace(-1, 1, 4001) ** 3).astype(np.float32),
          (np.linspace(-0.5, 1, 2001) ** 3 * 3).astype(np.float32)]
    ours = batch_order_sensitivity(tobs.HistogramObserver, xs)
    assert ours.orders == ((0, 1), (1, 0)) and ours.distinct_scales == 2 and ours.spread > 0
    for order, scale in zip(ours.orders, ours.scales, strict=True):
        real = tao.HistogramObserver()
        for i in order:
            real(torch.from_numpy(xs[i]))
        np.testing.assert_array_equal(bits(scale), bits(real.calculate_qparams()[0]))
    expected = float(ours.scales.max()) / float(ours.scales.min()) - 1
    assert ours.spread == pytest.approx(expected, rel=1e-12)
    canonical = batch_order_sensitivity(tobs.CanonicalHistogramObserver, xs)
    assert canonical.distinct_scales == 1 and canonical.spread == 0.0
    sampled = batch_order_sensitivity(tobs.CanonicalMinMaxObserver, xs * 3, permutations=5)
    assert len(sampled.orders) == 5 and sampled.orders[0] == tuple(range(6))
    with pytest.raises(ValueError, match="permutations"):
        batch_order_sensitivity(tobs.HistogramObserver, xs, permutations=0)
    with pytest.raises(ValueError, match="batches"):
        batch_order_sensitivity(tobs.HistogramObserver, [])
