"""refquant.observers.onnxruntime: ONNX Runtime's calibrators bug for bug, checked against
the installed onnxruntime run on a one-node model (tests/quirks/xf_onnxruntime.py), and the
canonical counterparts (exact, order-free, mergeable), checked on their own math."""

from __future__ import annotations

import contextlib
import io
import math
import runpy
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refquant.histogram import ExactHistogram
from refquant.observers import onnxruntime as R

HERE = Path(__file__).resolve().parent
XF = runpy.run_path(str(HERE / "quirks" / "xf_onnxruntime.py"))
RENDER = runpy.run_path(str(HERE / "quirks" / "render.py"))
F32 = np.float32
SLOW = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _ort():
    return pytest.importorskip("onnxruntime")


# -- data -------------------------------------------------------------------------------
KINDS = ("normal", "relu", "constant", "outlier", "uniform_pos", "zeros")
MAGNITUDES = (1e-30, 1e-6, 1.0, 1e3, 1e30)
ENTROPY_KINDS = tuple(k for k in KINDS if k != "outlier")


def _batch(seed: int, kind: str, mag: float, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(size) * mag
    if kind == "relu":
        x = np.maximum(x, 0.0)
    elif kind == "constant":
        x = np.full(size, x[0])
    elif kind == "outlier":
        x = x * 1e-3
        x[rng.integers(size)] = mag * rng.choice([-50.0, 50.0])
    elif kind == "uniform_pos":
        x = np.abs(x) + mag
    elif kind == "zeros":
        x = np.zeros(size)
    return x.astype(F32)


@st.composite
def calls(draw, same_shape=True, max_calls=4, ladder=True, kinds=KINDS,
          factors=(0.25, 1.0, 4.0)):
    """A list of collect_data calls, each a list of batches (one shape per call when
    ``same_shape``): ranges that grow and shrink, post-ReLU zeros, constants, single
    elements, tiny and huge magnitudes, outliers. ``ladder=False``: one magnitude per
    example, scaled by ``factors`` per batch (ORT's signed histogram grows its bin count with
    the range ratio, to billions of bins between the magnitudes of the ladder, and its
    entropy search is quadratic in the bin count)."""
    out = []
    base = draw(st.sampled_from(MAGNITUDES))
    for _ in range(draw(st.integers(1, max_calls))):
        size = draw(st.sampled_from([1, 2, 3, 7, 33]))
        batches = []
        for _ in range(draw(st.integers(1, 3))):
            if not same_shape:
                size = draw(st.sampled_from([1, 2, 5, 17]))
            mag = (draw(st.sampled_from(MAGNITUDES)) if ladder
                   else base * draw(st.sampled_from(factors)))
            batches.append(_batch(draw(st.integers(0, 2**31)), draw(st.sampled_from(kinds)),
                                  mag, size))
        out.append(batches)
    return out


def _bits(v, zero_sign=True):
    a = np.asarray(v, F32)
    if not zero_sign:
        a = a + F32(0)  # -0.0 -> 0.0
    return a.shape, a.view(np.uint32).tolist()


def _same(real, ours, zero_sign=True):
    if isinstance(real, str) or isinstance(ours, str):
        return real == ours
    return [_bits(v, zero_sign) for v in real] == [_bits(v, zero_sign) for v in ours]


# -- bit-exact against ORT ------------------------------------------------------------------
MINMAX_KW = [{}, {"symmetric": True}, {"moving_average": True},
             {"moving_average": True, "averaging_constant": 0.3, "symmetric": True},
             {"max_intermediate_outputs": 2}, {"moving_average": True,
                                               "max_intermediate_outputs": 3}]


@SLOW
@given(calls(same_shape=False), st.sampled_from(MINMAX_KW))
def test_minmax_matches_ort(cs, kw):
    _ort()
    real = XF["real"]("MinMaxCalibrater", cs, **kw)
    ours = XF["ours"]("MinMaxCalibrater", cs, "onnxruntime", **kw)
    # the sign of a zero extreme follows ORT's SIMD reduction (module docstring)
    assert _same(real, ours, zero_sign=False), (real, ours)


@SLOW
@given(calls(ladder=False, kinds=ENTROPY_KINDS, factors=(0.5, 1.0, 2.0)),
       st.sampled_from([(128, 128), (16, 8), (64, 16), (33, 4), (8, 9)]))
def test_entropy_matches_ort(cs, bins):
    _ort()
    kw = {"num_bins": bins[0], "num_quantized_bins": bins[1]}
    real = XF["real"]("EntropyCalibrater", cs, **kw)
    assert _same(real, XF["ours"]("EntropyCalibrater", cs, "onnxruntime", **kw)), real


@SLOW
@given(calls(ladder=False), st.sampled_from([8, 64, 2048]),
       st.sampled_from([0.0, 50.0, 99.0, 99.999, 100.0]), st.booleans())
def test_percentile_matches_ort(cs, bins, pct, sym):
    _ort()
    kw = {"num_bins": bins, "percentile": pct, "symmetric": sym}
    real = XF["real"]("PercentileCalibrater", cs, **kw)
    assert _same(real, XF["ours"]("PercentileCalibrater", cs, "onnxruntime", **kw)), real


@SLOW
@given(calls(ladder=False), st.sampled_from(["same", "p3"]))
def test_distribution_matches_ort_with_avg_std(cs, scenario):
    _ort()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            td = XF["ort_calibrator"]("DistributionCalibrater", cs, num_bins=512,
                                      scenario=scenario).compute_data()["y"]
        real = (td.lowest, td.highest, *td.avg_std)
    except ValueError:
        real = "raises ValueError"
    try:
        cal = R.DistributionCalibrater(num_bins=512, scenario=scenario)
        for c in cs:
            cal.collect(c)
        ours = (*cal.compute_data(), *cal.compute_avg_std())
    except ValueError:
        ours = "raises ValueError"
    assert _same(real, ours), (real, ours)


@settings(max_examples=300, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False),
       st.floats(width=32, allow_nan=False, allow_infinity=False),
       st.sampled_from(R.QTYPES), st.booleans(), st.booleans(),
       st.sampled_from([None, 0.0, 1e-4, 0.5]))
def test_compute_scale_zp_matches_ort(a, b, qtype, sym, reduce, mrr):
    _ort()
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType
    lo, hi = np.array(min(a, b), F32), np.array(max(a, b), F32)
    qt = getattr(TensorProto, qtype.upper())
    qmin, qmax = get_qmin_qmax_for_qType(qt, reduce_range=reduce, symmetric=sym)
    with np.errstate(all="ignore"):
        zp, scale = compute_scale_zp(lo, hi, qmin, qmax, symmetric=sym, min_real_range=mrr)
    qp = R.compute_scale_zp(lo, hi, qtype, symmetric=sym, reduce_range=reduce,
                            min_real_range=mrr)
    assert (qp.qmin, qp.qmax) == (int(qmin), int(qmax))
    assert int(qp.zero_point) == int(zp)
    assert _bits(qp.scale) == _bits(scale)


def test_compute_uses_the_calibrated_range():
    cal = R.MinMaxCalibrater(symmetric=True)
    cal.observe(F32([-0.5, 2.0]))
    qp = cal.compute("int8")
    assert qp.scale.shape == (1,)  # ORT's MinMax range has shape (1,), and so its scale
    assert (qp.qmin, qp.qmax, qp.zero_point.tolist()) == (-127, 127, [0])
    # hand-worked: (2 - -2) / 254 in float64, then float32
    assert _bits(qp.scale) == _bits([4.0 / 254])


# -- NaN / Inf ----------------------------------------------------------------------------
NONFINITE = [F32([1.0, np.nan, 3.0]), F32([np.nan, np.nan]), F32([1.0, np.inf]),
             F32([-np.inf, 2.0]), F32([np.nan, -np.inf, 0.5])]


@pytest.mark.parametrize("kind,kw", [
    ("EntropyCalibrater", {}), ("PercentileCalibrater", {"symmetric": True}),
    ("PercentileCalibrater", {"symmetric": False}), ("DistributionCalibrater",
                                                     {"num_bins": 512})])
@pytest.mark.parametrize("bad", range(len(NONFINITE)))
@pytest.mark.parametrize("first", [True, False])
def test_histogram_nonfinite_as_ort(kind, kw, bad, first):
    _ort()
    good = F32([-2.0, 0.25, 1.5])
    cs = [[NONFINITE[bad]], [good]] if first else [[good], [NONFINITE[bad]]]
    real = XF["real"](kind, cs, **kw)
    assert _same(real, XF["ours"](kind, cs, "onnxruntime", **kw)), real


@pytest.mark.parametrize("kind,kw", [("EntropyCalibrater", {}), ("PercentileCalibrater",
                                                                 {"symmetric": False})])
@pytest.mark.parametrize("first,second", [(1e-31, 1e29), (1e-3, 3e38), (3e38, 1.0)])
def test_signed_histogram_huge_growth_as_ort(kind, kw, first, second):
    _ort()
    cs = [[F32([first, -first])], [F32([second])]]
    real = XF["real"](kind, cs, **kw)
    assert _same(real, XF["ours"](kind, cs, "onnxruntime", **kw)), real


@pytest.mark.parametrize("x", [F32([1.0, np.inf]), F32([-np.inf, 2.0]), F32([np.inf] * 3)])
def test_minmax_inf_as_ort(x):
    _ort()
    cs = [[F32([0.5, 1.0])], [x]]
    assert _same(XF["real"]("MinMaxCalibrater", cs),
                 XF["ours"]("MinMaxCalibrater", cs, "onnxruntime"))


def test_minmax_nan_is_refused_clearly():
    cal = R.MinMaxCalibrater()
    with pytest.raises(ValueError, match="NaN.*vector width"):
        cal.observe(F32([1.0, np.nan]))


@pytest.mark.parametrize("cls,kw", [(R.MinMaxCalibrater, {}), (R.EntropyCalibrater, {}),
                                    (R.PercentileCalibrater, {}),
                                    (R.DistributionCalibrater, {})])
def test_canonical_nonfinite_refused_or_ignored(cls, kw):
    x = F32([-1.0, np.nan, 2.0, np.inf, 0.5])
    cal = cls(profile="canonical", **kw)
    with pytest.raises(ValueError, match="NaN/Inf.*ignore_nonfinite"):
        cal.observe(x)
    a = cls(profile="canonical", ignore_nonfinite=True, **kw)
    a.observe(x)
    b = cls(profile="canonical", **kw)
    b.observe(F32([-1.0, 2.0, 0.5]))
    assert _same(a.compute_data(), b.compute_data())
    with pytest.raises(ValueError, match="ignore_nonfinite"):
        cls(ignore_nonfinite=True, **kw)


# -- canonical: exact, order-free, mergeable -------------------------------------------------
CANON = [(R.MinMaxCalibrater, {}), (R.MinMaxCalibrater, {"symmetric": True}),
         (R.EntropyCalibrater, {"num_bins": 64, "num_quantized_bins": 16}),
         (R.PercentileCalibrater, {"num_bins": 64, "percentile": 99.0}),
         (R.PercentileCalibrater, {"num_bins": 64, "percentile": 90.0, "symmetric": False}),
         (R.DistributionCalibrater, {"num_bins": 512, "scenario": "p3"})]


def _feed(cal, batches):
    for b in batches:
        cal.observe(b)
    return cal


@settings(max_examples=60, deadline=None)
@given(calls(same_shape=False, max_calls=6), st.sampled_from(range(len(CANON))),
       st.randoms(use_true_random=False))
def test_canonical_merge_of_halves_equals_one_observer(cs, which, rnd):
    cls, kw = CANON[which]
    batches = [b for c in cs for b in c]
    cut = rnd.randint(0, len(batches))
    whole = _feed(cls(profile="canonical", **kw), batches)
    left = _feed(cls(profile="canonical", **kw), batches[:cut])
    right = _feed(cls(profile="canonical", **kw), batches[cut:])
    left.merge(right)
    shuffled = list(batches)
    rnd.shuffle(shuffled)
    other = _feed(cls(profile="canonical", **kw), shuffled)
    if isinstance(whole, R.HistogramCalibrater):
        assert left.exact == whole.exact == other.exact
    assert _same(left.compute_data(), whole.compute_data())
    assert _same(other.compute_data(), whole.compute_data())


def test_canonical_minmax_is_the_exact_range():
    cal = R.MinMaxCalibrater(profile="canonical")
    _feed(cal, [F32([0.5, -3.25]), F32([7.0]), F32([])])
    assert _same(cal.compute_data(), (F32([-3.25]), F32([7.0])))
    sym = _feed(R.MinMaxCalibrater(symmetric=True, profile="canonical"), [F32([0.5, -3.25])])
    assert _same(sym.compute_data(), (F32([-3.25]), F32([3.25])))


@settings(max_examples=60, deadline=None)
@given(calls(same_shape=False), st.sampled_from([4, 16, 256]),
       st.sampled_from([1.0, 50.0, 75.0, 99.9, 100.0]))
def test_canonical_percentile_against_sorting(cs, bins, pct):
    """Independent formulation: the k-th smallest |x| (k = ceil(p N / 100)), its bin on the
    exact grid, that bin's right edge, capped at max|x|."""
    data = np.concatenate([b for c in cs for b in c]).astype(np.float64)
    cal = _feed(R.PercentileCalibrater(num_bins=bins, percentile=pct, profile="canonical"),
                [b for c in cs for b in c])
    lo, hi = cal.compute_data()
    v = np.sort(np.abs(data))
    k = max(1, math.ceil(pct / 100 * v.size - 1e-12 * v.size))
    w = cal.exact.width
    expect = min((math.floor(v[k - 1] / w) + 1) * w, v[-1])
    assert float(hi) == float(F32(expect)) and float(lo) == -float(hi)


def test_canonical_percentile_hand_worked():
    # |x| = 1..8, 4 bins: width 4 (8 < 4*4), bins [0,4) [4,8) [8,12): counts 3, 4, 1.
    # 50%: 4 values -> bin 1 -> right edge 8; 25%: 2 values -> bin 0 -> 4.
    x = np.arange(1, 9, dtype=F32)
    for pct, t in ((50.0, 8.0), (25.0, 4.0), (0.0, 4.0)):
        cal = _feed(R.PercentileCalibrater(num_bins=4, percentile=pct, profile="canonical"),
                    [x])
        assert _same(cal.compute_data(), (F32(-t), F32(t)))


def test_canonical_entropy_clips_an_outlier_and_stays_in_range():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(20000), [60.0]]).astype(F32)
    cal = _feed(R.EntropyCalibrater(num_bins=2048, num_quantized_bins=128,
                                    profile="canonical"), [x])
    lo, hi = cal.compute_data()
    assert float(x.min()) <= float(lo) < 0 < float(hi) < 60.0
    assert float(hi) >= 3.0  # a KL window keeps the bulk of N(0, 1)


def test_canonical_distribution_moments_near_the_data():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(50000) * 2 + 0.5).astype(F32)
    cal = _feed(R.DistributionCalibrater(num_bins=2048, profile="canonical"), [x])
    lo, hi = cal.compute_data()
    assert _same((lo, hi), (-np.abs(x).max(), np.abs(x).max()))
    avg, std = cal.compute_avg_std()
    w = cal.exact.width * 2  # the symmetric regrid at most doubles the width
    assert abs(float(avg) - float(x.astype(np.float64).mean())) <= w / 2
    assert abs(float(std) - float(x.astype(np.float64).std())) <= w


def test_canonical_refuses_order_dependent_options():
    with pytest.raises(ValueError, match="moving_average"):
        R.MinMaxCalibrater(moving_average=True, profile="canonical")
    with pytest.raises(ValueError, match="max_intermediate_outputs"):
        R.MinMaxCalibrater(max_intermediate_outputs=2, profile="canonical")


def test_merge_rules():
    ort = R.EntropyCalibrater()
    with pytest.raises(NotImplementedError, match="profile='canonical'"):
        ort.merge(R.EntropyCalibrater())
    a = R.EntropyCalibrater(profile="canonical")
    with pytest.raises(ValueError, match="config"):
        a.merge(R.EntropyCalibrater(num_bins=64, profile="canonical"))
    with pytest.raises(ValueError, match="config"):
        a.merge(R.PercentileCalibrater(profile="canonical"))


def test_order_sensitivity_measures_ort_and_not_canonical():
    from refquant.observers.order import batch_order_sensitivity

    a, b = XF["_A"], XF["_B"]
    kw = {"num_bins": 8, "num_quantized_bins": 2}
    ort = batch_order_sensitivity(lambda: R.EntropyCalibrater(**kw), [a, b])
    canon = batch_order_sensitivity(lambda: R.EntropyCalibrater(profile="canonical", **kw),
                                    [a, b])
    assert ort.exhaustive and ort.distinct_scales == 2 and ort.spread > 0
    assert canon.distinct_scales == 1 and canon.spread == 0.0
    # hand-checked in the registry (O7): (A, B) gives (-1, 1.25), (B, A) gives (-1.5, 2.25)
    ranges = []
    for order in ort.orders:
        cal = R.EntropyCalibrater(**kw)
        for i in order:
            cal.observe((a, b)[i])
        ranges.append(tuple(float(v) for v in cal.compute_data()))
    assert ranges == [(-1.0, 1.25), (-1.5, 2.25)]


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("make,exc,word", [
    (lambda: R.MinMaxCalibrater(symmetric=1), TypeError, "symmetric"),
    (lambda: R.MinMaxCalibrater(moving_average=True, averaging_constant=1.5), ValueError,
     "averaging_constant"),
    (lambda: R.MinMaxCalibrater(averaging_constant=float("nan")), ValueError,
     "averaging_constant"),
    (lambda: R.MinMaxCalibrater(max_intermediate_outputs=0), ValueError,
     "max_intermediate_outputs"),
    (lambda: R.EntropyCalibrater(num_bins=1), ValueError, "num_bins"),
    (lambda: R.EntropyCalibrater(num_bins=2.0), TypeError, "num_bins"),
    (lambda: R.EntropyCalibrater(num_quantized_bins=0), ValueError, "num_quantized_bins"),
    (lambda: R.PercentileCalibrater(percentile=100.5), ValueError, "percentile"),
    (lambda: R.PercentileCalibrater(percentile="99"), TypeError, "percentile"),
    (lambda: R.DistributionCalibrater(num_bins=128), ValueError, "num_bins"),
    (lambda: R.DistributionCalibrater(scenario="p2"), ValueError, "scenario"),
    (lambda: R.MinMaxCalibrater(profile="torch"), ValueError, "profile"),
    (lambda: R.compute_scale_zp(F32(0), F32(1), "int4"), ValueError, "qtype"),
    (lambda: R.compute_scale_zp(F32(0), F32(1), min_real_range=-1.0), ValueError,
     "min_real_range"),
])
def test_bad_arguments_name_the_argument(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


@pytest.mark.parametrize("cls", list(R.CALIBRATERS.values()))
def test_no_data_and_bad_batches(cls):
    cal = cls()
    with pytest.raises(ValueError, match="[Cc]ollect"):
        cal.compute_data()
    with pytest.raises(TypeError, match="x must be a real array"):
        cal.observe(np.array(["a"]))
    x = F32([3.0, -1.0])
    before = x.copy()
    cal.observe(x)
    assert np.array_equal(x, before)


def test_histogram_state_grows_as_documented():
    # hand-worked: T_old = 1, 4 bins: stride 0.5; T = 2.2 -> h = int(1.2 // 0.5 + 1) = 3,
    # 10 bins on (-2.5, 2.5), old counts land in bins 3..6
    cal = R.EntropyCalibrater(num_bins=4, num_quantized_bins=2)
    cal.observe(F32([-1.0, 0.2, 1.0]))
    cal.observe(F32([2.2]))
    st_ = cal.state
    assert st_.hist.tolist() == [0, 0, 0, 1, 0, 1, 1, 0, 0, 1]
    assert float(st_.threshold) == 2.5 and st_.edges.dtype == F32


# -- the quirk registry ---------------------------------------------------------------------
@pytest.mark.parametrize("quirk", XF["QUIRKS"], ids=[q["id"] for q in XF["QUIRKS"]])
def test_quirk_registry(quirk):
    out = RENDER["xf_outcome"]
    ours, canon = out(quirk["bugforbug"]()), out(quirk["canonical"]())
    assert canon != ours
    _ort()
    assert out(quirk["real"]()) == ours


def test_exact_histogram_is_the_canonical_state():
    cal = _feed(R.PercentileCalibrater(num_bins=16, profile="canonical"), [F32([1.0, -2.0])])
    h = ExactHistogram(16, symmetric=True)
    h.add(F32([1.0, -2.0]))
    assert cal.exact == h


def test_compute_symmetric_defaults_to_the_calibrater_and_can_be_set():
    cal = R.PercentileCalibrater(num_bins=64, percentile=100.0)  # symmetric=True
    cal.observe(F32([0.0, 1.0, 2.0]))
    lo, hi = cal.compute_data()
    # hand-worked: |x| binned on [0, 2] in 64 bins of 1/32; the cdf reaches 1 in bin 63,
    # whose left edge is 63/32 (quirk O5: even the 100th percentile cuts the maximum);
    # low is raised to the minimum 0 (quirk O4)
    t = 63 / 32
    assert _same((lo, hi), (F32(0.0), F32(t)))
    sym = cal.compute("uint8")
    asym = cal.compute("uint8", symmetric=False)
    # symmetric range (-t, t) -> scale 2t/255, zero point round(127.5) = 128;
    # affine range (0, t) -> scale t/255, zero point 0
    assert (int(sym.zero_point), int(asym.zero_point)) == (128, 0)
    assert _bits(sym.scale) == _bits(2 * t / 255) and _bits(asym.scale) == _bits(t / 255)


def test_families_lists_the_calibraters():
    from refquant.observers.families import resolve_observer
    assert resolve_observer("onnxruntime.EntropyCalibrater") == ("onnxruntime",
                                                                 R.EntropyCalibrater)
