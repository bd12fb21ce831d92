"""The public statistics-ingestion API of the reference observers.

For every observer and profile: ``observe(x)`` and ``observe_<statistic>(statistic(x))``
leave the same state and give the same QParams, bit for bit. The statistics are computed
here independently with NumPy (abs-max with ``np.abs``/``max``, histogram counts with
Python integers and Fractions on the grid's definition, PaddleSlim's histogram with
``np.histogram``); the PaddleSlim search losses come from
:func:`refquant.observers.search.slim_search_losses` (their bits against Paddle's are
checked in ``test_observers_search.py``). Plus: the adapter holds no private attribute of a
reference object (an AST scan of ``adapters/``).
"""

from __future__ import annotations

import ast
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant import QParams
from refquant.histogram import ExactHistogram, SlimHistogram
from refquant.kernels.slim import paddle_mean
from refquant.observers import (
    AbsMaxChannelWiseWeightObserver,
    AbsmaxObserver,
    AVGObserver,
    EMDObserver,
    GroupWiseWeightObserver,
    HistObserver,
    KLObserver,
    MSEObserver,
)
from refquant.observers.mse import slim_candidates
from refquant.observers.search import decision_bound, emd_loss_bound, slim_search_losses

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
PROFILES = ("canonical", "paddleslim")


# ---------------------------------------------------------------------------------------
# strategies and comparison
# ---------------------------------------------------------------------------------------
def _arrays(dtype: Any, min_dims: int = 1, max_dims: int = 3, max_side: int = 6) -> Any:
    width = 32 if dtype == np.float32 else 64
    elements = st.one_of(
        st.floats(-1e3, 1e3, width=width, allow_subnormal=False),
        st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 3.0]),
    )
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=min_dims, max_dims=max_dims,
                                              min_side=1, max_side=max_side),
                      elements=elements)


def batches(min_dims: int = 1, n: int = 3) -> Any:
    dtype = st.sampled_from([np.float32, np.float64])
    return dtype.flatmap(lambda d: st.lists(_arrays(d, min_dims), min_size=1, max_size=n))


def _same(a: Any, b: Any) -> bool:
    """Bit-level equality of nested results (arrays by bytes and dtype, floats by repr)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float) or isinstance(a, np.floating):
        return type(a) is type(b) and repr(a) == repr(b)  # NaN == NaN, 0.0 != -0.0
    return bool(type(a) is type(b) and a == b)


def _qp_fields(qp: QParams) -> dict[str, Any]:
    return {"scale": np.asarray(qp.scale), "zero_point": np.asarray(qp.zero_point),
            "qmin": qp.qmin, "qmax": qp.qmax, "bits": qp.bits, "axis": qp.axis,
            "margin": None if qp.margin is None else np.asarray(qp.margin, np.float64),
            "convention": qp.convention, "extra": qp.extra}


def assert_equivalent(a: Any, b: Any) -> None:
    """Same num_batches, same state (bit for bit), same QParams or the same error."""
    assert a.num_batches == b.num_batches
    sa, sb = a.state(), b.state()
    assert sa.keys() == sb.keys()
    for k in sa:
        va, vb = sa[k], sb[k]
        if isinstance(va, ExactHistogram):
            assert va == vb, k
        else:
            assert _same(va, vb), (k, va, vb)
    ra = rb = None
    try:
        ra = _qp_fields(a.compute())
    except Exception as exc:  # noqa: BLE001 - compared below
        ra = (type(exc), str(exc))
    try:
        rb = _qp_fields(b.compute())
    except Exception as exc:  # noqa: BLE001
        rb = (type(exc), str(exc))
    if isinstance(ra, tuple) or isinstance(rb, tuple):
        assert ra == rb
        return
    for k in ra:
        assert _same(ra[k], rb[k]), (k, ra[k], rb[k])


# ---------------------------------------------------------------------------------------
# independent statistics
# ---------------------------------------------------------------------------------------
def np_abs_max(x: np.ndarray) -> float:
    return float(np.max(np.abs(x.astype(np.float64))))


def np_sample_abs_max(x: np.ndarray) -> np.ndarray:
    return np.abs(x.reshape(x.shape[0], -1)).max(axis=1)


def _floor_div_pow2(v: float, e: int) -> int:
    return math.floor(Fraction(v) / Fraction(2) ** e)


def fraction_histogram(x: np.ndarray, bins: int, symmetric: bool) -> ExactHistogram:
    """ExactHistogram of ``x`` from its definition, with Python integers and Fractions."""
    vals = [float(v) for v in x.astype(np.float64).ravel()]
    mn, mx = min(vals) + 0.0, max(vals) + 0.0
    binned = [abs(v) for v in vals] if symmetric else vals
    lo, hi = (0.0, max(-mn, mx)) if symmetric else (mn, mx)

    def fits(e: int) -> bool:
        return _floor_div_pow2(hi, e) - _floor_div_pow2(lo, e) < bins

    # smallest e >= -1074 with fits(e): fits is monotone in e (binary search)
    a, b = -1074, 1100
    if fits(a):
        e = a
    else:
        while b - a > 1:
            mid = (a + b) // 2
            a, b = (a, mid) if fits(mid) else (mid, b)
        e = b
    off = _floor_div_pow2(lo, e)
    counts = np.zeros(bins, np.int64)
    for v in binned:
        counts[_floor_div_pow2(v, e) - off] += 1
    return ExactHistogram.from_counts(counts, exponent=e, offset=off, min=mn, max=mx,
                                      symmetric=symmetric)


def np_channel_abs_max(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    return np.abs(m).max(axis=1)


def np_group_abs_max(w: np.ndarray, g: int) -> np.ndarray:
    return np.abs(w).reshape(w.shape[0] // g, g, w.shape[1]).max(axis=1)


def _frozen(xs: list[np.ndarray]) -> list[np.ndarray]:
    return [x.copy() for x in xs]


def _unchanged(xs: list[np.ndarray], copies: list[np.ndarray]) -> None:
    for x, c in zip(xs, copies, strict=True):
        assert x.tobytes() == c.tobytes()


# ---------------------------------------------------------------------------------------
# per-tensor observers
# ---------------------------------------------------------------------------------------
@SETTINGS
@given(xs=batches(min_dims=0), profile=st.sampled_from(PROFILES))
def test_absmax_observe_abs_max(xs, profile):
    keep = _frozen(xs)
    a, b = AbsmaxObserver(profile=profile), AbsmaxObserver(profile=profile)
    for x in xs:
        a.observe(x)
        b.observe_abs_max(np_abs_max(x))
        assert_equivalent(a, b)
    _unchanged(xs, keep)


@SETTINGS
@given(xs=batches(min_dims=0))
def test_absmax_several_batches_at_once(xs):
    a, b = AbsmaxObserver(), AbsmaxObserver()
    for x in xs:
        a.observe(x)
    b.observe_abs_max(max(np_abs_max(x) for x in xs), batches=len(xs))
    assert_equivalent(a, b)


def test_absmax_ignore_nonfinite_counts_empty_batches():
    a = AbsmaxObserver(ignore_nonfinite=True)
    b = AbsmaxObserver(ignore_nonfinite=True)
    x = np.array([np.nan, np.inf], np.float32)
    a.observe(x)
    b.observe_abs_max(-math.inf)  # no finite value
    assert_equivalent(a, b)
    y = np.array([np.nan, -2.5, 1.0], np.float32)
    a.observe(y)
    b.observe_abs_max(2.5)
    assert_equivalent(a, b)


@SETTINGS
@given(xs=batches(min_dims=1), profile=st.sampled_from(PROFILES))
def test_avg_observe_sample_abs_max(xs, profile):
    keep = _frozen(xs)
    a, b = AVGObserver(profile=profile), AVGObserver(profile=profile)
    for x in xs:
        a.observe(x)
        b.observe_sample_abs_max(np_sample_abs_max(x))
        assert_equivalent(a, b)
    _unchanged(xs, keep)


@SETTINGS
@given(xs=batches(min_dims=1))
def test_avg_canonical_concatenated_batches(xs):
    a, b = AVGObserver(), AVGObserver()
    for x in xs:
        a.observe(x)
    b.observe_sample_abs_max(np.concatenate([np_sample_abs_max(x).astype(np.float64)
                                             for x in xs]), batches=len(xs))
    assert_equivalent(a, b)


@SETTINGS
@given(xs=batches(min_dims=1))
def test_avg_paddleslim_batch_means(xs):
    a, b = AVGObserver(profile="paddleslim"), AVGObserver(profile="paddleslim")
    for x in xs:
        a.observe(x)
    b.observe_batch_means([float(paddle_mean(np_sample_abs_max(x))) for x in xs])
    assert_equivalent(a, b)


def test_avg_batch_means_with_real_paddle_mean():
    paddle = pytest.importorskip("paddle")
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(n, 7)).astype(np.float32) for n in (3, 17, 64)]
    a, b = AVGObserver(profile="paddleslim"), AVGObserver(profile="paddleslim")
    for x in xs:
        a.observe(x)
        t = paddle.to_tensor(x)
        b.observe_batch_means([float(paddle.mean(paddle.max(paddle.abs(t), axis=1)))])
    assert_equivalent(a, b)


@SETTINGS
@given(xs=batches(min_dims=1), cls=st.sampled_from([MSEObserver, EMDObserver]),
       bins=st.sampled_from([16, 64, None]))
def test_search_canonical_observe_histogram(xs, cls, bins):
    keep = _frozen(xs)
    a, b = cls(profile="canonical", bins=bins), cls(profile="canonical", bins=bins)
    for x in xs:
        a.observe(x)
        b.observe_histogram(fraction_histogram(x, b.histogram_bins, True))
        assert_equivalent(a, b)
    _unchanged(xs, keep)


@SETTINGS
@given(xs=batches(min_dims=1), cls=st.sampled_from([MSEObserver, EMDObserver]),
       bits=st.sampled_from([4, 8]))
def test_search_paddleslim_observe_losses(xs, cls, bits):
    a, b = cls(bits, profile="paddleslim"), cls(bits, profile="paddleslim")
    qmax = 2 ** (bits - 1) - 1
    loss = "mse" if cls is MSEObserver else "emd"
    for x in xs:
        a.observe(x)
        flat = x.reshape(-1)
        m = np_abs_max(x) if loss == "mse" else float(np.max(flat))
        scales = slim_candidates(m)
        losses = slim_search_losses(flat, scales, qmax, loss)
        bound = (decision_bound(flat.size, flat.dtype.type) if loss == "mse"
                 else emd_loss_bound(flat.size, flat))
        b.observe_losses(m, losses, bound=bound)
        assert_equivalent(a, b)


def test_slim_candidates_floor_and_order():
    # a zero maximum is floored to 1e-8 (PaddleSlim); 35 increasing candidates, the
    # accumulated factors stay below 1 (no 1.0 candidate, docs/divergences.md Q16)
    assert slim_candidates(0.0) == slim_candidates(1e-8)
    c = slim_candidates(2.0)
    assert len(c) == 35 and c == sorted(c) and 0 < c[0] and c[-1] < 2.0


@SETTINGS
@given(xs=batches(min_dims=1), symmetric=st.booleans(), sign=st.booleans())
def test_hist_canonical_observe_histogram(xs, symmetric, sign):
    kw = {"bins_count": 32, "symmetric": symmetric, "sign": sign}
    a, b = HistObserver(5, **kw), HistObserver(5, **kw)
    for x in xs:
        a.observe(x)
        b.observe_histogram(fraction_histogram(x, 32, symmetric))
        assert_equivalent(a, b)


@SETTINGS
@given(xs=batches(min_dims=1))
def test_kl_canonical_observe_histogram(xs):
    a, b = KLObserver(5, bins_count=32), KLObserver(5, bins_count=32)
    for x in xs:
        a.observe(x)
        b.observe_histogram(fraction_histogram(x, 32, True))
        assert_equivalent(a, b)


def _np_counts(x: np.ndarray) -> Any:
    return lambda lo, hi, bins: np.histogram(x, bins=bins, range=(lo, hi))[0]


@SETTINGS
@given(xs=batches(min_dims=1, n=4), which=st.sampled_from(["hist", "kl"]))
def test_slim_histogram_observers_observe_slim_batch(xs, which):
    def make() -> Any:
        if which == "hist":
            return HistObserver(8, bins_count=16, profile="paddleslim")
        return KLObserver(8, bins_count=16, profile="paddleslim")

    keep = _frozen(xs)
    a, b = make(), make()
    for x in xs:
        a.observe(x)
        b.observe_slim_batch(float(np.min(x)), float(np.max(x)), _np_counts(x))
        assert_equivalent(a, b)
    _unchanged(xs, keep)


def test_slim_histogram_forward_stats_hand_worked():
    # first batch [0, 4] in 4 bins: np.histogram gives [1, 1, 0, 2]; a later batch inside
    # the range is counted on the stored range (quirk 21: the first state stays int64)
    h = SlimHistogram(4)
    calls: list[tuple[float, float, int]] = []

    def counts(x: np.ndarray) -> Any:
        def f(lo: float, hi: float, bins: int) -> np.ndarray:
            calls.append((lo, hi, bins))
            return np.histogram(x, bins=bins, range=(lo, hi))[0]
        return f

    x1 = np.array([0.0, 1.5, 3.0, 4.0])
    h.forward_stats(0.0, 4.0, counts(x1))
    assert h.hist is not None and h.hist.tolist() == [1, 1, 0, 2] and h.hist.dtype == np.int64
    x2 = np.array([1.0, 2.0])
    h.forward_stats(1.0, 2.0, counts(x2))
    assert calls == [(0.0, 4.0, 4), (0.0, 4.0, 4)]
    assert h.hist.dtype == np.float32 and h.hist.tolist() == [1.0, 2.0, 1.0, 2.0]
    h.forward_stats(5.0, 5.0, counts(np.array([5.0])))  # constant batch: ignored (quirk 23)
    assert len(calls) == 2


# ---------------------------------------------------------------------------------------
# weight observers
# ---------------------------------------------------------------------------------------
@SETTINGS
@given(xs=batches(min_dims=2, n=2), profile=st.sampled_from(PROFILES), axis=st.sampled_from([0, 1]))
def test_channel_wise_observe_channel_abs_max(xs, profile, axis):
    c = xs[0].shape[axis]
    xs = [x for x in xs if x.shape[axis] == c]
    a = AbsMaxChannelWiseWeightObserver(axis=axis, profile=profile)
    b = AbsMaxChannelWiseWeightObserver(axis=axis, profile=profile)
    for x in xs:
        a.observe(x)
        b.observe_channel_abs_max(np_channel_abs_max(x, axis), x.shape)
        assert_equivalent(a, b)


def test_channel_wise_inferred_axis_and_errors():
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 11
    a, b = AbsMaxChannelWiseWeightObserver(), AbsMaxChannelWiseWeightObserver()
    a.observe(w)
    b.observe_channel_abs_max(np_channel_abs_max(w, 0), w.shape)  # 4-D: axis 0 inferred
    assert_equivalent(a, b)
    assert b.state()["axis"] == 0 and b.state()["ndim"] == 4
    with pytest.raises(ValueError, match="maxima must have shape"):
        b.observe_channel_abs_max(np.ones(3, np.float32), w.shape)
    fresh = AbsMaxChannelWiseWeightObserver(axis=1)
    with pytest.raises(ValueError, match="maxima must have shape"):
        fresh.observe_channel_abs_max(np.ones(2), (4, 3))
    assert fresh.state() == {"num_batches": 0, "abs_max": None, "axis": None, "ndim": None}
    with pytest.raises(ValueError, match="cannot be inferred"):
        AbsMaxChannelWiseWeightObserver().observe_channel_abs_max(np.ones(3), (3, 2, 2))
    with pytest.raises(ValueError, match="finite"):
        b.observe_channel_abs_max(np.array([1.0, -1.0]), w.shape)


@SETTINGS
@given(data=st.data(), profile=st.sampled_from(PROFILES),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_groupwise_observe_group_abs_max(data, profile, dtype):
    g = 64
    rows = g * data.draw(st.integers(1, 2))
    cols = data.draw(st.integers(1, 3))
    ws = data.draw(st.lists(hnp.arrays(dtype, (rows, cols), elements=st.floats(
        -100, 100, width=32 if dtype == np.float32 else 64)), min_size=1, max_size=2))
    a = GroupWiseWeightObserver(group_size=g, profile=profile)
    b = GroupWiseWeightObserver(group_size=g, profile=profile)
    for w in ws:
        a.observe(w)
        b.observe_group_abs_max(np_group_abs_max(w, g))
        assert_equivalent(a, b)


def test_groupwise_shape_errors_match_observe():
    slim = GroupWiseWeightObserver(group_size=64, profile="paddleslim")
    with pytest.raises(AssertionError, match="factor of input channels"):
        slim.check_weight((96, 4))
    with pytest.raises(AssertionError, match="factor of input channels"):
        slim.observe(np.zeros((96, 4), np.float32))
    canon = GroupWiseWeightObserver(group_size=3)
    with pytest.raises(ValueError, match="does not divide"):
        canon.check_weight((4, 2))
    assert canon.num_batches == 0


# ---------------------------------------------------------------------------------------
# histograms: from_counts, regrid; profile and argument checks
# ---------------------------------------------------------------------------------------
@SETTINGS
@given(xs=batches(min_dims=1), symmetric=st.booleans())
def test_from_counts_equals_add(xs, symmetric):
    for x in xs:
        h = ExactHistogram(16, symmetric=symmetric)
        h.add(x)
        assert fraction_histogram(x, 16, symmetric) == h


@SETTINGS
@given(xs=batches(min_dims=1, n=2), symmetric=st.booleans())
def test_regrid_then_add_counts_is_merge(xs, symmetric):
    a = ExactHistogram(8, symmetric=symmetric)
    b = ExactHistogram(8, symmetric=symmetric)
    a.add(xs[0])
    b.add(xs[-1])
    lo, hi = min(a.min, b.min), max(a.max, b.max)
    ga, gb = a.copy(), b.copy()
    ga.regrid(lo, hi)
    gb.regrid(lo, hi)
    assert (ga.exponent, ga.offset) == (gb.exponent, gb.offset)
    summed = ExactHistogram.from_counts(ga.counts + gb.counts, exponent=ga.exponent,
                                        offset=ga.offset, min=lo, max=hi,
                                        symmetric=symmetric)
    a.merge(b)
    assert summed == a


def test_from_counts_and_regrid_reject_bad_input():
    with pytest.raises(ValueError, match="exponent/offset"):
        ExactHistogram.from_counts(np.array([1, 0, 0, 0]), exponent=0, offset=0, min=0.0,
                                   max=1.0)
    with pytest.raises(TypeError, match="counts"):
        ExactHistogram.from_counts(np.array([1.0, 0.0]), exponent=0, offset=0, min=0.0,
                                   max=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        ExactHistogram.from_counts(np.array([2, -1]), exponent=0, offset=0, min=0.0, max=1.0)
    h = ExactHistogram(4)
    h.add(np.array([-3.0, 2.0]))
    with pytest.raises(ValueError, match="only widen"):
        h.regrid(-1.0, 2.0)
    assert ExactHistogram.from_counts(np.zeros(4, np.int64), exponent=0, offset=0,
                                      min=math.nan, max=math.nan).total == 0


def test_profile_and_argument_checks():
    x = np.array([1.0, -2.0], np.float32)
    h = ExactHistogram(2048)
    h.add(x)
    with pytest.raises(ValueError, match="profile='canonical'"):
        KLObserver(profile="paddleslim").observe_histogram(h)
    with pytest.raises(ValueError, match="profile='paddleslim'"):
        MSEObserver().observe_losses(2.0, np.zeros(35), bound=0.0)
    with pytest.raises(ValueError, match="profile='paddleslim'"):
        AVGObserver().observe_batch_means([1.0])
    with pytest.raises(ValueError, match="profile='paddleslim'"):
        HistObserver().observe_slim_batch(-2.0, 1.0, _np_counts(x))
    with pytest.raises(ValueError, match="bins=2048, symmetric=False"):
        HistObserver(symmetric=False).observe_histogram(h)
    with pytest.raises(ValueError, match="losses must hold 35"):
        MSEObserver(profile="paddleslim").observe_losses(2.0, np.zeros(3), bound=0.0)
    with pytest.raises(ValueError, match="batches must be >= 1"):
        AbsmaxObserver().observe_abs_max(1.0, batches=0)
    with pytest.raises(TypeError, match="batches"):
        AbsmaxObserver().observe_abs_max(1.0, batches=1.5)
    with pytest.raises(ValueError, match="finite abs-max"):
        AbsmaxObserver().observe_abs_max(math.nan)
    with pytest.raises(ValueError, match="batches must be 1"):
        AVGObserver(profile="paddleslim").observe_sample_abs_max(np.ones(2), batches=2)
    with pytest.raises(ValueError, match="at least one sample"):
        AVGObserver().observe_sample_abs_max(np.zeros(0))
    obs = MSEObserver()
    assert obs.config() == {"quant_bits": 8, "profile": "canonical", "bins": 4096}
    obs.config()["bins"] = 1  # a copy
    assert obs.config()["bins"] == 4096


def test_merge_uses_public_config():
    a, b = KLObserver(bins_count=2048), KLObserver(bins_count=4096)
    a.observe(np.ones(3))
    b.observe(np.ones(3))
    with pytest.raises(ValueError, match="different configurations"):
        a.merge(b)


# ---------------------------------------------------------------------------------------
# the adapter uses only the public API of reference objects
# ---------------------------------------------------------------------------------------
_ADAPTER = Path(__file__).resolve().parents[1] / "adapters" / "paddle"
#: private attributes of Paddle's own objects the adapter reads (Paddle has no public
#: accessor) whose names happen to equal a reference private name: file -> names
_PADDLE_PRIVATE = {
    "export.py": {"_quanter", "_dequanter", "_scales", "_zero_point", "_quant_axis",
                  "_bit_length", "_qmax", "_sub_layers", "_group_size"},
}


def _private_names_of(paths: list[Path]) -> set[str]:
    """Private attributes and methods the classes in ``paths`` define on ``self``."""
    out: set[str] = set()
    for p in paths:
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("_") \
                    and not node.name.startswith("__"):
                out.add(node.name)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "self" and node.attr.startswith("_") \
                    and not node.attr.startswith("__"):
                out.add(node.attr)
    return out


def test_adapter_reads_no_private_attribute_of_reference_objects():
    """No ``obj._name`` in adapters/paddle where ``_name`` is private to a reference
    observer, a histogram or QParams (any module), or to the adapter's observer layers
    and QuantDequant (outside their own module). ``self.``/``cls.`` are the object's own."""
    root = _ADAPTER.parents[1] / "refquant"
    ref_private = _private_names_of(sorted((root / "observers").glob("*.py"))
                                    + [root / "histogram.py", root / "qparams.py"])
    layer_private = {name: _private_names_of([_ADAPTER / name])
                     for name in ("observers.py", "layers.py")}
    offenders = []
    for path in sorted(_ADAPTER.glob("*.py")):
        forbidden = set(ref_private)
        for name, names in layer_private.items():
            if name != path.name:
                forbidden |= names
        forbidden -= _PADDLE_PRIVATE.get(path.name, set())
        forbidden.discard("_instance")  # Paddle's ObserverFactory protocol (factory._instance)
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if node.attr in forbidden:
                offenders.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert offenders == [], offenders
