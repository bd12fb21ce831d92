"""NNCF 3.4's range estimators: refquant.observers.nncf against NNCF's own classes.

The differential tests build NNCF's reducers and aggregators (``nncf/common/tensor_statistics/
collectors.py``) exactly as ``MinMaxQuantization._get_statistic_collector`` does for each
preset and feed them NumPy tensors; results are compared by dtype, shape and bit pattern.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.observers import nncf as rn

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)


def _nncf():
    pytest.importorskip("nncf")
    from nncf.common.tensor_statistics import collectors as c
    from nncf.tensor import Tensor

    return c, Tensor


def nncf_range(batches, preset, axes=None, q=1e-4, use_abs_max=False):
    """NNCF's MIN and MAX branches for ``preset``, built as the MinMax algorithm builds them."""
    c, tensor = _nncf()
    reducers = {"min": c.MinReducer, "max": c.MaxReducer, "abs_max": c.AbsMaxReducer,
                "mean": c.MeanReducer, "quantile": c.QuantileReducer,
                "abs_quantile": c.AbsQuantileReducer}
    aggregators = {"min": c.MinAggregator, "max": c.MaxAggregator, "mean": c.MeanAggregator,
                   "median": c.MedianAggregator, "mean_no_outliers": c.MeanNoOutliersAggregator,
                   "median_no_outliers": c.MedianNoOutliersAggregator}
    min_stat, min_agg, max_stat, max_agg = rn.PRESETS[preset]
    if use_abs_max and max_stat == "max":
        max_stat = "abs_max"
    out = []
    for stat, agg, quantile in ((min_stat, min_agg, q), (max_stat, max_agg, 1 - q)):
        kw = {"quantile": [quantile]} if "quantile" in stat else {}
        reducer = reducers[stat](axes=axes, **kw)
        akw = {"quantile": q} if "no_outliers" in agg else {}
        aggregator = aggregators[agg](aggregation_axes=(0,), **akw)
        for b in batches:
            reduced = reducer([tensor(b)])
            if reduced is not None:
                aggregator.register_reduced_input(reduced[0])
        res = aggregator.aggregate()
        out.append(None if res is None else np.asarray(res.data))
    return tuple(out)


def ours_range(batches, preset, axes=None, q=1e-4, use_abs_max=False, cls=rn.RangeEstimator):
    est = cls(preset, axes=axes, quantile_outlier_prob=q, use_abs_max=use_abs_max)
    for b in batches:
        est.observe(b)
    return est.compute_range()


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# -- data ---------------------------------------------------------------------------------
MAGNITUDES = st.sampled_from([1e-30, 1e-6, 1.0, 3.0, 1e4, 1e30])


@st.composite
def batch_lists(draw):
    """2-6 batches of shape (rows, 3) whose range grows and shrinks; post-ReLU zeros,
    constants, single rows, tiny and huge magnitudes, one outlier."""
    n = draw(st.integers(2, 6))
    rows = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        kind = draw(st.sampled_from(["normal", "relu", "const", "outlier"]))
        scale = draw(MAGNITUDES)
        x = rng.standard_normal((rows, 3)) * scale
        if kind == "relu":
            x = np.maximum(x, 0.0)
        elif kind == "const":
            x = np.full((rows, 3), scale * draw(st.sampled_from([-1.0, 0.0, 2.0])))
        elif kind == "outlier":
            x[0, 0] = 1e3 * scale
        out.append(x.astype(np.float32))
    return out


@SETTINGS
@given(batches=batch_lists(), preset=st.sampled_from(sorted(rn.PRESETS)),
       axes=st.sampled_from([None, (0,), (1,)]), use_abs_max=st.booleans(),
       q=st.sampled_from([1e-4, 0.1, 0.3]))
def test_range_estimators_bit_exact_against_nncf(batches, preset, axes, use_abs_max, q):
    real = nncf_range(batches, preset, axes, q, use_abs_max)
    ours = ours_range(batches, preset, axes, q, use_abs_max)
    for r, o in zip(real, ours, strict=True):
        assert same_bits(r, o), (r, o)


@pytest.mark.parametrize("preset", sorted(rn.PRESETS))
def test_order_dependent_aggregators_follow_the_order_given(preset):
    rng = np.random.default_rng(7)
    batches = [(rng.standard_normal((5, 4)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
               for _ in range(7)]
    for perm in itertools.islice(itertools.permutations(range(7)), 0, 200, 37):
        seq = [batches[i] for i in perm]
        for r, o in zip(nncf_range(seq, preset), ours_range(seq, preset), strict=True):
            assert same_bits(r, o)


def test_nonfinite_and_empty_batches_follow_nncf():
    seq = [np.float32([[1.0, np.nan]]), np.zeros((0, 2), np.float32), np.float32([[np.inf, 2]])]
    for preset in ("MINMAX", "MEAN_MINMAX"):
        for r, o in zip(nncf_range(seq, preset), ours_range(seq, preset), strict=True):
            assert same_bits(r, o)


def test_num_samples_caps_the_registered_batches():
    est = rn.RangeEstimator("MINMAX", num_samples=2)
    for v in (1.0, 2.0, 50.0):
        est.observe(np.float32([v]))
    assert est.compute_range()[1].tolist() == [2.0]


# -- quantizer parameters -----------------------------------------------------------------
def nncf_params(lo, hi, mode, narrow, per_channel, signed=None, num_bits=8):
    pytest.importorskip("nncf")
    from nncf.common.quantization.structs import QuantizationScheme, QuantizerConfig, QuantizerGroup
    from nncf.common.tensor_statistics.statistics import MinMaxTensorStatistic
    from nncf.quantization.fake_quantize import calculate_quantizer_parameters
    from nncf.tensor import Tensor

    qc = QuantizerConfig(num_bits=num_bits, mode=QuantizationScheme(mode), narrow_range=narrow,
                         per_channel=per_channel, signedness_to_force=signed)
    p = calculate_quantizer_parameters(MinMaxTensorStatistic(Tensor(lo), Tensor(hi)), qc,
                                       QuantizerGroup.ACTIVATIONS)
    return np.asarray(p.input_low.data), np.asarray(p.input_high.data), p.levels


@st.composite
def min_max(draw):
    c = draw(st.integers(1, 4))
    vals = draw(st.lists(st.floats(-1e6, 1e6, width=32, allow_subnormal=True),
                         min_size=2 * c, max_size=2 * c))
    a = np.float32(vals[:c]).reshape(c, 1)
    b = np.float32(vals[c:]).reshape(c, 1)
    return np.minimum(a, b), np.maximum(a, b)


@SETTINGS
@given(mm=min_max(), mode=st.sampled_from(["symmetric", "asymmetric"]), narrow=st.booleans(),
       signed=st.sampled_from([None, True]), num_bits=st.sampled_from([4, 8]),
       tiny=st.booleans())
def test_quantizer_parameters_bit_exact_against_nncf(mm, mode, narrow, signed, num_bits, tiny):
    lo, hi = mm
    if tiny:
        lo, hi = lo * np.float32(1e-9), hi * np.float32(1e-9)
    for per_channel in (False, True) if lo.size > 1 else (False,):
        real = nncf_params(lo, hi, mode, narrow, per_channel, signed, num_bits)
        ours = rn.quantizer_parameters(lo, hi, num_bits=num_bits, mode=mode,
                                       narrow_range=narrow, signedness_to_force=signed,
                                       per_channel=per_channel)
        assert same_bits(real[0], ours[0]) and same_bits(real[1], ours[1]), (real, ours)
        assert real[2] == ours[2]


@SETTINGS
@given(mm=min_max(), narrow=st.booleans())
def test_scale_zero_point_bit_exact_against_nncf(mm, narrow):
    pytest.importorskip("nncf")
    from nncf.quantization.fake_quantize import calculate_scale_zero_point
    from nncf.tensor import Tensor

    lo, hi, _ = rn.quantizer_parameters(*mm, mode="asymmetric", per_channel=True)
    s, z = calculate_scale_zero_point(Tensor(lo), Tensor(hi), 0, 255, narrow)
    s2, z2 = rn.scale_zero_point(lo, hi, 0, 255, narrow)
    assert same_bits(s.data, s2) and same_bits(z.data, z2)


def test_tune_range_hand_worked():
    # [-1, 3], 8 bits: s = 255/4, zero lands on round(63.75) = 64; moving the left border to
    # 64/(64-255)*3 = -192/191 widens the range less than moving the right one to 191/64.
    lo, hi, levels = rn.quantizer_parameters(np.float32([[-1.0]]), np.float32([[3.0]]),
                                             mode="asymmetric")
    assert levels == 256 and float(hi) == 3.0
    assert abs(Fraction(float(lo)) - Fraction(-192, 191)) <= Fraction(2.0 ** -23)
    # symmetric, signed: low = -high * 256/254
    lo, hi, _ = rn.quantizer_parameters(np.float32([[-1.0]]), np.float32([[2.54]]))
    assert float(hi) == float(np.float32(2.54))
    assert abs(float(lo) + 2.56) < 1e-6


@SETTINGS
@given(batches=batch_lists(), preset=st.sampled_from(sorted(rn.PRESETS)),
       mode=st.sampled_from(["symmetric", "asymmetric"]), narrow=st.booleans(),
       axes=st.sampled_from([None, (0,)]))
def test_compute_matches_nncf_scale_zero_point(batches, preset, mode, narrow, axes):
    pytest.importorskip("nncf")
    from nncf.common.quantization.quantizers import (
        calculate_asymmetric_level_ranges,
        calculate_symmetric_level_ranges,
    )
    from nncf.quantization.fake_quantize import calculate_scale_zero_point
    from nncf.tensor import Tensor

    est = rn.RangeEstimator(preset, axes=axes, mode=mode, narrow_range=narrow)
    for b in batches:
        est.observe(b)
    lo, hi = nncf_range(batches, preset, axes, use_abs_max=mode == "symmetric")
    per_channel = axes is not None
    low, high, _ = nncf_params(lo.astype(np.float32), hi.astype(np.float32), mode, narrow,
                               per_channel)
    if mode == "symmetric":
        qmin, qmax = calculate_symmetric_level_ranges(8, bool(np.any(lo < 0)), narrow)
    else:
        qmin, qmax = calculate_asymmetric_level_ranges(8, narrow)
    s, z = calculate_scale_zero_point(Tensor(low), Tensor(high), qmin, qmax, narrow)
    qp = est.compute()
    assert (qp.qmin, qp.qmax, qp.convention) == (qmin, qmax, "step")
    assert same_bits(np.ravel(s.data), np.ravel(qp.scale))
    assert np.ravel(z.data).tolist() == np.ravel(qp.zero_point).tolist()


# -- hand-worked aggregator cases (independent of NNCF) -------------------------------------
def _run(preset, values, cls=rn.RangeEstimator, **kw):
    est = cls(preset, use_abs_max=False, **kw)
    for v in values:
        est.observe(np.float32([[v]]))
    return est.compute_range()


def test_mean_no_outliers_hand_worked():
    # 3 samples, q = 1e-4: bounds 1 + 2e-4 and 10 - 16e-4 drop 1 and 10; the mean is 2
    assert _run("MEAN_NO_OUTLIERS_MINMAX", [1.0, 2.0, 10.0])[1].item() == 2.0
    # 2 samples: both are outside their own interpolated bounds -> the masked mean is 0
    assert _run("MEAN_NO_OUTLIERS_MINMAX", [1.0, 3.0])[1].item() == 0.0
    # canonical: floor(1e-4 * 3) = 0 samples cut
    assert _run("MEAN_NO_OUTLIERS_MINMAX", [1.0, 2.0, 10.0], rn.CanonicalRangeEstimator)[1].item() \
        == 13 / 3


def test_mean_minmax_is_order_dependent_canonical_is_not():
    a = _run("MEAN_MINMAX", [1e8, 1.0, -1e8])[1].item()
    b = _run("MEAN_MINMAX", [1e8, -1e8, 1.0])[1].item()
    assert (a, b) == (0.0, float(np.float32(1 / 3)))
    ca = _run("MEAN_MINMAX", [1e8, 1.0, -1e8], rn.CanonicalRangeEstimator)[1].item()
    assert ca == 1 / 3


def test_median_of_two_rounds_in_float32():
    assert _run("MEDIAN_MINMAX", [16777216.0, 16777218.0])[1].item() == 16777216.0
    assert _run("MEDIAN_MINMAX", [16777216.0, 16777218.0],
                rn.CanonicalRangeEstimator)[1].item() == 16777217.0


# -- canonical: order-free and exactly mergeable --------------------------------------------
@SETTINGS
@given(batches=batch_lists(), preset=st.sampled_from(sorted(rn.PRESETS)),
       axes=st.sampled_from([None, (0,), (1,)]), seed=st.integers(0, 1000),
       cut=st.integers(1, 5))
def test_canonical_is_order_free_and_merges_exactly(batches, preset, axes, seed, cut):
    whole = ours_range(batches, preset, axes, 0.2, cls=rn.CanonicalRangeEstimator)
    perm = np.random.default_rng(seed).permutation(len(batches))
    seq = [batches[i] for i in perm]
    cut = min(cut, len(seq) - 1)
    a = rn.CanonicalRangeEstimator(preset, axes=axes, quantile_outlier_prob=0.2,
                                   use_abs_max=False)
    b = rn.CanonicalRangeEstimator(preset, axes=axes, quantile_outlier_prob=0.2,
                                   use_abs_max=False)
    for x in seq[:cut]:
        a.observe(x)
    for x in seq[cut:]:
        b.observe(x)
    b.merge(a)
    for w, m in zip(whole, b.compute_range(), strict=True):
        assert same_bits(w, m)


def test_canonical_mean_is_correctly_rounded():
    vals = [0.1, 0.2, 0.3, 1e10, -1e10]
    got = _run("MEAN_MINMAX", vals, rn.CanonicalRangeEstimator)[1].item()
    exact = sum(Fraction(float(np.float32(v))) for v in vals) / 5
    assert got == float(exact) or math.isclose(got, float(exact), rel_tol=2**-52)


def test_batch_order_sensitivity_of_the_float32_mean():
    """N1: NNCF's mean of per-batch maxima is a float32 running sum, so (1e8 + 1) - 1e8 is 0
    in one order and 1/3 of 1 in another; the plain min/max is order-free."""
    from refquant.observers.order import batch_order_sensitivity

    batches = [np.float32([[v]]) for v in (1e8, 1.0, -1e8)]
    mean = batch_order_sensitivity(
        lambda: rn.RangeEstimator("MEAN_MINMAX", use_abs_max=False), batches)
    assert mean.exhaustive and mean.distinct_scales > 1
    highs = set()
    for order in mean.orders:
        est = rn.RangeEstimator("MEAN_MINMAX", use_abs_max=False)
        for i in order:
            est.observe(batches[i])
        highs.add(float(np.max(est.compute_range()[1])))
    assert min(highs) == 0.0 and max(highs) == float(np.float32(1 / 3))
    plain = batch_order_sensitivity(
        lambda: rn.RangeEstimator("MINMAX", use_abs_max=False), batches)
    assert plain.distinct_scales == 1


# -- bad input ----------------------------------------------------------------------------
def test_bad_input():
    with pytest.raises(ValueError, match="preset"):
        rn.RangeEstimator("MINMAXX")
    with pytest.raises(ValueError, match="quantile_outlier_prob"):
        rn.RangeEstimator(quantile_outlier_prob=0.7)
    with pytest.raises(TypeError, match="x must be"):
        rn.RangeEstimator().observe(np.int32([1]))
    with pytest.raises(ValueError, match="axes"):
        rn.RangeEstimator(axes=(3,)).observe(np.float32([[1.0]]))
    with pytest.raises(ValueError, match="no batch"):
        rn.RangeEstimator().compute_range()
    with pytest.raises(ValueError, match="non-finite"):
        rn.CanonicalRangeEstimator().observe(np.float32([1.0, np.nan]))
    with pytest.raises(NotImplementedError):
        rn.RangeEstimator().merge(rn.RangeEstimator())
    with pytest.raises(ValueError, match="num_bits"):
        rn.quantizer_parameters(0.0, 1.0, num_bits=1)
    x = np.float32([[3.0, -1.0]])
    keep = x.copy()
    rn.RangeEstimator().observe(x)
    assert same_bits(x, keep)
