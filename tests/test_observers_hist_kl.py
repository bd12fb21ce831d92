"""HistObserver / KLObserver: differential tests against the real PaddleSlim, canonical
properties (order and shard independence, bit for bit), independent formulations, and bad
input.

The real PaddleSlim observer layers are driven directly (``forward(paddle.to_tensor(x))``,
``scales()``, ``zero_points()``), imported with :func:`refquant.testing.import_paddleslim`.
For Hist, ``float`` in paddleslim's hist module is patched to accept 1-element arrays (the
"float-shim", quirk Q25 of docs/divergences.md, :func:`refquant.testing.paddleslim_hist_module`),
so the real observer runs on NumPy 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import types
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import testing as rqt
from refquant.histogram import ExactHistogram, SlimHistogram
from refquant.observers.hist import HistObserver, percentile_range, percentile_threshold
from refquant.observers.kl import KLObserver, kl_threshold, slim_kl_divergences, slim_kl_threshold
from refquant.testing import import_paddleslim, paddleslim_hist_module

HAVE_SLIM = importlib.util.find_spec("paddleslim") is not None and (
    importlib.util.find_spec("paddle") is not None
)
needs_slim = pytest.mark.skipif(not HAVE_SLIM, reason="paddle/paddleslim not installed")
FAST = settings(max_examples=40, deadline=None, derandomize=True)
SLOW = settings(max_examples=60, deadline=None, derandomize=True)


def slim_module(name: str) -> types.ModuleType:
    """``paddleslim.quant.observers.<name>``; ``hist`` with the NumPy 2 float-shim (Q25)."""
    if name == "hist":
        return paddleslim_hist_module()
    return import_paddleslim(f"paddleslim.quant.observers.{name}")


# -- data ---------------------------------------------------------------------------------
# 1-D batches of 2-600 values (kind "single": one value), each its own size and dtype
KINDS = rqt.ARRAY_KINDS
SIZES = st.integers(2, 600).map(lambda n: (n,))
DTYPES = st.sampled_from([np.float32, np.float32, np.float64])
batch_st = rqt.adversarial_arrays(SIZES, DTYPES, kinds=KINDS)
batches_st = rqt.adversarial_batches(SIZES, DTYPES, same_shape=False, same_dtype=False,
                                     kinds=KINDS)


def _run_real(layer_cls, batches, **kw):
    import paddle

    layer = layer_cls(paddle.nn.Linear(2, 2), **kw)
    try:
        for b in batches:
            layer.forward(paddle.to_tensor(b))
        return np.float32(layer.scales()), layer.zero_points()
    except Exception as exc:  # noqa: BLE001 - compared by type
        return type(exc)


def _run_ours(cls, batches, **kw):
    obs = cls(**kw, profile="paddleslim")
    try:
        for b in batches:
            obs.observe(b)
        qp = obs.compute()
        return qp.scale, qp.zero_point
    except Exception as exc:  # noqa: BLE001 - compared by type
        return type(exc)


def _affordable(batches, bins) -> bool:
    """False when PaddleSlim's merge would allocate an enormous slot array (Q24)."""
    sh = SlimHistogram(bins)
    try:
        for b in batches:
            sh.forward(b)
    except ValueError:
        pass  # a merge too large for NumPy: PaddleSlim raises the same, allocating nothing
    return sh.peak_slots <= 4_000_000


def _assert_same(real, ours):
    if isinstance(real, type) or isinstance(ours, type):
        assert real == ours, (real, ours)
        return
    assert np.asarray(ours[0]).dtype == np.float32
    assert np.asarray(real[0]).view(np.uint32) == np.asarray(ours[0]).view(np.uint32), (
        real, ours)
    assert float(real[1]) == float(np.asarray(ours[1]))


# -- differential: paddleslim profile vs real PaddleSlim ------------------------------------
@needs_slim
@SLOW
@given(
    batches=batches_st,
    bits=st.sampled_from([8, 4]),
    bins=st.sampled_from([64, 256, 2048]),
    percent=st.sampled_from([0.999, 0.99, 0.5, 1.0]),
    sign=st.booleans(),
    symmetric=st.booleans(),
)
def test_hist_paddleslim_matches_real(batches, bits, bins, percent, sign, symmetric):
    hist = slim_module("hist")
    if not _affordable(batches, bins):
        return
    keep = [b.copy() for b in batches]
    kw = dict(quant_bits=bits, bins_count=bins, percent=percent, sign=sign,
              symmetric=symmetric)
    _assert_same(_run_real(hist.PercentHistObserverLayer, batches, **kw),
                 _run_ours(HistObserver, batches, **kw))
    assert all(np.array_equal(a, b) for a, b in zip(keep, batches, strict=True))


@needs_slim
@SLOW
@given(batches=batches_st, bits=st.sampled_from([8, 4]), bins=st.sampled_from([64, 256]))
def test_kl_paddleslim_matches_real(batches, bits, bins):
    kl = slim_module("kl")
    if not _affordable(batches, bins):
        return
    kw = dict(quant_bits=bits, bins_count=bins)
    _assert_same(_run_real(kl.KLObserverLayer, batches, **kw), _run_ours(KLObserver, batches, **kw))


@needs_slim
@pytest.mark.parametrize("nbatches", [1, 2])
def test_kl_paddleslim_matches_real_2048_bins(nbatches):
    kl = slim_module("kl")
    rng = np.random.default_rng(7 + nbatches)
    batches = [rng.standard_normal(3000).astype(np.float32) * (1 + k) for k in range(nbatches)]
    kw = dict(quant_bits=8, bins_count=2048)
    _assert_same(_run_real(kl.KLObserverLayer, batches, **kw), _run_ours(KLObserver, batches, **kw))


hist_arrays = st.one_of(
    st.builds(lambda n, s: np.random.default_rng(s).integers(0, 6, n), st.integers(3, 400),
              st.integers(0, 2**31)),
    st.builds(lambda n, s: np.histogram(np.random.default_rng(s).standard_t(3, 2000), n)[0],
              st.integers(3, 400), st.integers(0, 2**31)),
    st.builds(lambda n, s: (np.random.default_rng(s).integers(0, 3, n)
                            * (np.random.default_rng(s + 1).random(n) < 0.2)),
              st.integers(3, 400), st.integers(0, 2**31)),
)


@needs_slim
@FAST
@given(h=hist_arrays, bits=st.sampled_from([2, 3, 4, 8]),
       dtype=st.sampled_from([np.int64, np.float32, np.float64, "frac32"]),
       width=st.floats(1e-3, 10.0))
def test_fast_kl_threshold_identical_to_real(h, bits, dtype, width):
    """The vectorized search returns PaddleSlim's threshold bit for bit."""
    cal = slim_module("kl").cal_kl_threshold
    if dtype == "frac32":  # merged histograms hold multiples of 1/64 in float32
        h = (h * 37 % 101).astype(np.float32) / np.float32(64)
    else:
        h = h.astype(dtype)
    keep = h.copy()
    try:
        expected = cal(h, width, bits)
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(type(exc)):
            slim_kl_threshold(h, width, bits)
        return
    got = slim_kl_threshold(h, width, bits)
    assert type(got) is float
    assert np.float64(got).view(np.uint64) == np.float64(expected).view(np.uint64)
    assert np.array_equal(h, keep)


@FAST
@given(h=hist_arrays, bits=st.sampled_from([2, 4, 8]),
       dtype=st.sampled_from([np.int64, np.float32, np.float64]))
def test_fast_kl_brackets_contain_exact_values(h, bits, dtype):
    """The fast path's [low, high] brackets contain the exact (math.log) KL of every
    candidate -- the guarantee the threshold identity rests on."""
    from refquant.observers.kl import _slim_kl_core

    h = h.astype(dtype)
    if int((h.size - 1) * 0.5) == 0:
        return
    idx_fast, lo, hi = _slim_kl_core(h, bits, exact=False)
    idx_exact, exact = slim_kl_divergences(h, bits, exact=True)
    assert np.array_equal(idx_fast, idx_exact)
    assert exact.dtype == (np.float32 if dtype == np.float32 else np.float64)
    assert np.all(lo <= exact) and np.all(exact <= hi)


@needs_slim
@pytest.mark.parametrize("dtype", [np.int64, np.float32])
def test_fast_kl_threshold_identical_to_real_2048_bins(dtype):
    cal = slim_module("kl").cal_kl_threshold
    x = np.random.default_rng(3).standard_normal(100_000)
    h = np.histogram(x, 2048)[0].astype(dtype)
    if dtype == np.float32:
        h = h * np.float32(1.015625)  # fractional float32 counts, as after a merge
    assert slim_kl_threshold(h, 0.01, 8) == cal(h, 0.01, 8)


@needs_slim
def test_slim_kl_divergences_exact_mode_selects_the_real_threshold():
    cal = slim_module("kl").cal_kl_threshold
    h = np.histogram(np.random.default_rng(1).standard_normal(5000), 200)[0].astype(np.float32)
    idx, kl = slim_kl_divergences(h, 8, exact=True)
    best = int(idx[int(np.argmin(kl))])
    assert (best + 0.5) * 0.5 == cal(h, 0.5, 8)


@needs_slim
def test_slim_histogram_state_matches_real():
    """SlimHistogram's hist/min/max equal BaseHistObserver's after each batch (Q21-Q24)."""
    import paddle

    kl = slim_module("kl")
    rng = np.random.default_rng(11)
    batches = [rng.standard_normal(500).astype(np.float32), np.full(7, 0.25, np.float32),
               rng.standard_normal(300).astype(np.float32) * 0.5,
               rng.standard_normal(400).astype(np.float32) * 3 + 1]
    layer = kl.KLObserverLayer(paddle.nn.Linear(2, 2), bins_count=128)
    ours = SlimHistogram(128)
    for b in batches:
        layer.forward(paddle.to_tensor(b))
        ours.forward(b)
        assert (ours.hist_min, ours.hist_max) == (layer._hist_min, layer._hist_max)
        assert ours.hist.dtype == layer._hist.dtype
        assert np.array_equal(ours.hist, layer._hist)


# -- hand-worked / independent values ----------------------------------------------------------
def test_slim_merge_hand_worked_quirk24():
    # quirk Q24 (docs/divergences.md): bins=8 over [0..4], then a batch [-2, 5]
    sh = SlimHistogram(8)
    sh.forward(np.array([0, 1, 2, 3, 4], dtype=np.float32))
    assert sh.hist is not None and sh.hist.dtype == np.int64  # Q21
    sh.forward(np.array([-2, 5], dtype=np.float32))
    assert sh.hist.tolist() == [1, 0, 1, 1, 0.75, 0.75, 1.5, 1]
    lo, hi, down, start = SlimHistogram.relax_min_max(-0.01171875, 4, 0, 4, 8, 64)
    assert hi == 4.05078125


def test_slim_percent_hand_worked_quirk26():
    # x = 0..999, bins=10, p=0.999 -> 849.1500000000001 (quirk Q26, docs/divergences.md)
    obs = HistObserver(bins_count=10, percent=0.999, profile="paddleslim")
    obs.observe(np.arange(1000, dtype=np.float32))
    qp = obs.compute()
    assert qp.extra["max"] == 849.1500000000001
    assert qp.scale == np.float32(849.1500000000001)


def test_slim_kl_error_paths_quirk31():
    obs = KLObserver(profile="paddleslim", bins_count=64)
    obs.observe(np.full(10, 3.0, np.float32))
    with pytest.raises(AssertionError):
        obs.compute()
    with pytest.raises(IndexError):
        slim_kl_threshold(np.array([1, 2]), 1.0, 8)


def _brute_percentile(x: np.ndarray, percent: float, width: float) -> float:
    a = np.sort(np.abs(x.astype(np.float64)))
    k = max(1, math.ceil(Fraction(percent) * a.size))
    v = Fraction(float(a[k - 1]))
    edge = (math.floor(v / Fraction(width)) + 1) * Fraction(width)
    return min(float(edge), float(a[-1]))


@FAST
@given(x=batch_st, percent=st.sampled_from([0.999, 0.99, 0.9, 0.5, 1.0, 0.001]),
       bins=st.sampled_from([128, 2048]))
def test_canonical_percentile_matches_order_statistic(x, percent, bins):
    h = ExactHistogram(bins)
    h.add(x)
    assert percentile_threshold(h, percent) == _brute_percentile(x, percent, h.width)
    obs = HistObserver(bins_count=bins, percent=percent)
    obs.observe(x)
    assert obs.compute().scale == np.float32(_brute_percentile(x, percent, h.width))


@FAST
@given(x=batch_st, percent=st.sampled_from([0.999, 0.9, 0.6]))
def test_canonical_percentile_range_tails(x, percent):
    h = ExactHistogram(256, symmetric=False)
    h.add(x)
    lo, hi = percentile_range(h, percent)
    v = x.astype(np.float64)
    k = max(1, math.ceil(Fraction(percent) * v.size))
    assert np.count_nonzero(v <= hi) >= k and np.count_nonzero(v >= lo) >= k
    assert h.min <= lo <= hi <= h.max
    # one bin tighter would no longer hold k values (unless capped at the extremes)
    if hi < h.max:
        assert np.count_nonzero(v < hi - h.width) < k
    if lo > h.min:
        assert np.count_nonzero(v >= lo + h.width) < k


def _loop_kl(counts: np.ndarray, i: int, t: int) -> float:
    """KL of candidate i, written as explicit loops (independent of the closed form)."""
    total = int(counts.sum())
    p = [float(v) for v in counts[:i]]
    p[i - 1] += float(counts[i:].sum())
    q = [0.0] * i
    for g in range(t):
        a, b = (g * i) // t, ((g + 1) * i) // t
        nzs = [j for j in range(a, b) if p[j] > 0]
        for j in nzs:
            q[j] = float(counts[a:b].sum()) / len(nzs)
    qs = sum(q)
    out = 0.0
    for pj, qj in zip(p, q, strict=True):
        if pj > 0:
            if qj == 0:
                return math.inf
            out += (pj / total) * math.log((pj / total) / (qj / qs))
    return out


@FAST
@given(x=batch_st, bits=st.sampled_from([4, 8]))
def test_canonical_kl_matches_loop_formulation(x, bits):
    h = ExactHistogram(256)
    h.add(x)
    thr, margin, i_best = kl_threshold(h.counts, h.width, h.abs_max, bits)
    nz = np.flatnonzero(h.counts)
    if nz.size == 0:
        assert thr == 0.0
        return
    n_used = int(nz[-1]) + 1
    t = 2 ** (bits - 1) - 1
    cands = list(range(min(t, n_used), n_used + 1))
    levelled = h.counts.copy()
    if n_used > 1:  # zero-bin levelling, as pytorch-quantization's bins[0] = bins[1]
        levelled[0] = levelled[1]
    vals = [_loop_kl(levelled, i, t) for i in cands]
    best = min(vals)
    if margin > 1e-6:
        assert len(cands) - 1 - vals[::-1].index(best) == cands.index(i_best)
    else:
        assert vals[cands.index(i_best)] <= best + 1e-9
    assert math.isfinite(best)
    assert thr == min(float(Fraction(i_best) * Fraction(h.width)), h.abs_max)


def test_canonical_kl_is_not_dragged_down_by_a_spike_of_zeros():
    """Post-ReLU data: half exact zeros. Without zero-bin levelling the search picked
    ~0.3 x abs-max (3.6 dB SQNR on the demo's conv2 input); with it the threshold stays in
    the tail like on the same data without zeros (pytorch-quantization's entropy method
    gives 4.09 on this kind of data, abs-max ~4.5)."""
    rng = np.random.default_rng(7)
    tail = np.abs(rng.standard_normal(1 << 17)).astype(np.float32)
    spiked = np.concatenate([np.zeros(1 << 17, np.float32), tail])
    obs_spiked, obs_tail = KLObserver(), KLObserver()
    obs_spiked.observe(spiked)
    obs_tail.observe(tail)
    s_spiked, s_tail = float(obs_spiked.compute().scale), float(obs_tail.compute().scale)
    amax = float(tail.max())
    assert s_spiked >= 0.6 * amax
    assert abs(s_spiked - s_tail) <= 0.15 * amax
    counts = ExactHistogram(2048)
    counts.add(spiked)
    before = counts.counts.copy()
    kl_threshold(counts.counts, counts.width, counts.abs_max)
    assert np.array_equal(counts.counts, before)  # the levelling works on a copy


# -- canonical properties --------------------------------------------------------------
def _qp_same(a, b):
    assert a == b
    assert (a.margin == b.margin) or (a.margin is None and b.margin is None) or (
        math.isnan(a.margin) and math.isnan(b.margin))


@FAST
@given(batches=batches_st, data=st.data(), which=st.sampled_from(["kl", "hist", "hist_asym",
                                                                  "hist_unsigned"]))
def test_canonical_order_and_shard_invariant(batches, data, which):
    def new():
        if which == "kl":
            return KLObserver(8, 256)
        if which == "hist":
            return HistObserver(8, 256, 0.99)
        if which == "hist_asym":
            return HistObserver(8, 256, 0.99, sign=False, symmetric=False)
        return HistObserver(4, 256, 0.9, sign=False)

    single = new()
    for b in batches:
        single.observe(b)
    ref = single.compute()
    perm = new()
    for b in data.draw(st.permutations(batches)):
        perm.observe(b)
    _qp_same(ref, perm.compute())
    shards = [new() for _ in batches]
    for s, b in zip(shards, batches, strict=True):
        s.observe(b)
    merged = new()
    for k in data.draw(st.permutations(range(len(shards)))):
        merged.merge(shards[k])
    _qp_same(ref, merged.compute())
    # one batch holding everything
    whole = new()
    whole.observe(np.concatenate([b.astype(np.float64) for b in batches]))
    _qp_same(ref, whole.compute())


def test_canonical_kl_fixes_quirk29_on_shifted_data():
    # U[10, 11]: PaddleSlim's threshold ~0.9997 clips every value (Q29); canonical
    # measures from 0 on the |x| histogram, so the scale lies inside the data's range
    x = np.random.default_rng(0).uniform(10, 11, 5000).astype(np.float32)
    obs = KLObserver()
    obs.observe(x)
    qp = obs.compute()
    assert 10.0 <= float(qp.scale) <= 11.0
    assert qp.margin is not None and qp.margin >= 0
    slim = KLObserver(profile="paddleslim")
    slim.observe(x)
    assert float(slim.compute().scale) < 1.0


def test_canonical_degenerate_and_types():
    obs = KLObserver()
    obs.observe(np.zeros(10, np.float32))
    qp = obs.compute()
    assert qp.scale == np.float32(0.0) and qp.scale.shape == ()
    h = HistObserver(percent=0.5)
    h.observe(np.array([-3.0]))
    assert h.compute().scale == np.float32(3.0)


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [HistObserver, KLObserver])
def test_bad_input(cls):
    obs = cls()
    with pytest.raises(ValueError, match="non-finite"):
        obs.observe(np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="dtype"):
        obs.observe(np.array([1, 2]))
    with pytest.raises(ValueError, match="empty"):
        obs.observe(np.array([], np.float32))
    with pytest.raises(ValueError, match="before observe"):
        obs.compute()
    with pytest.raises(ValueError, match="bins_count"):
        cls(8, 64)
    with pytest.raises(TypeError, match="bins_count"):
        cls(8, 2048.0)
    with pytest.raises(NotImplementedError):
        cls(profile="paddleslim").merge(cls(profile="paddleslim"))
    with pytest.raises(ValueError, match="merge"):
        cls(8, 2048).merge(cls(8, 4096))
    ok = cls(ignore_nonfinite=True)
    ok.observe(np.array([1.0, np.inf, -2.0]))
    ref = cls()
    ref.observe(np.array([1.0, -2.0]))
    assert ok.compute() == ref.compute()


def test_hist_bad_percent():
    with pytest.raises(ValueError, match="percent"):
        HistObserver(percent=0.0)
    with pytest.raises(ValueError, match="percent"):
        HistObserver(percent=1.5)
    with pytest.raises(ValueError, match="quant_bits"):
        KLObserver(quant_bits=1)


def test_slim_kl_threshold_bad_hist():
    with pytest.raises(TypeError, match="hist"):
        slim_kl_threshold(np.array(["a", "b", "c"]), 1.0)
    with pytest.raises(AssertionError):
        slim_kl_threshold(np.ones((4, 4)), 1.0)


_GOOD = [[0.25, -1.5, 2.0], [1.0, 0.5, -3.0]]
_FAILING_SEQUENCES = {
    "later_nan": [_GOOD, [[1.0, np.nan, -2.0]]],
    "later_inf": [_GOOD, [[1.0, np.inf, -2.0]]],
    "later_neg_inf": [_GOOD, [[-np.inf, 1.0]]],
    "first_inf": [[[1.0, np.inf, -2.0]]],
    "overflowing_range": [[3e38, -3e38, 1.0]],
    "huge_growth": [_GOOD, [1.5e38, -1.5e38, 1.0]],
    "first_nan": [[[1.0, np.nan, -2.0]]],
}


@needs_slim
@pytest.mark.parametrize("kl", [False, True], ids=["hist", "kl"])
@pytest.mark.parametrize("name", sorted(_FAILING_SEQUENCES))
def test_paddleslim_profile_fails_like_paddleslim_with_a_clear_message(name, kl):
    """Where PaddleSlim's histogram observers fail (non-finite extremes, ranges whose
    arithmetic overflows), the paddleslim profile raises the same exception type, with a
    message that says what happened instead of NumPy's internals."""
    import paddle

    batches = [np.array(b, np.float32) for b in _FAILING_SEQUENCES[name]]
    mod = slim_module("kl" if kl else "hist")
    cls = mod.KLObserverLayer if kl else mod.PercentHistObserverLayer
    layer = cls(paddle.nn.Linear(2, 2), bins_count=256)
    with pytest.raises(Exception) as real:
        with np.errstate(all="ignore"):
            for b in batches:
                layer.forward(paddle.to_tensor(b))
            layer.scales()
    obs = (KLObserver if kl else HistObserver)(bins_count=256, profile="paddleslim",
                                               ignore_nonfinite=True)
    with pytest.raises(type(real.value)) as ours:
        with np.errstate(all="ignore"):
            for b in batches:
                obs.observe(b)
            obs.compute()
    assert type(ours.value) is type(real.value)
    assert "PaddleSlim" in str(ours.value)
