"""Tests of refquant.histogram.ExactHistogram against independent formulations.

The expected counts come from (a) a brute-force exact computation with Python integers and
``fractions.Fraction`` that follows the grid's *definition* (smallest exponent whose
aligned grid covers the range) rather than the implementation's walk, and (b)
``np.histogram`` on the histogram's own edges (binary search, a different algorithm).
"""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant.histogram import E_MIN, ExactHistogram

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def _floor_div(v: Fraction, e: int) -> int:
    return math.floor(v / Fraction(2) ** e)


def brute_force(values: list[float], bins: int, symmetric: bool) -> tuple[int, int, list[int]]:
    """(exponent, offset, counts) by the definition, with exact rationals."""
    vals = [Fraction(abs(v)) if symmetric else Fraction(v) for v in values]
    lo = Fraction(0) if symmetric else min(vals)
    hi = max(vals)
    e = E_MIN
    if hi > lo:
        # the definition: the smallest e >= E_MIN whose aligned grid covers [lo, hi]
        while _floor_div(hi, e) - _floor_div(lo, e) >= bins:
            e += 1
    off = _floor_div(lo, e)
    counts = [0] * bins
    for v in vals:
        counts[_floor_div(v, e) - off] += 1
    return e, off, counts


finite64 = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
small_mag = st.floats(min_value=-1e-30, max_value=1e-30, allow_nan=False)
values_st = st.one_of(
    st.lists(finite64, min_size=1, max_size=40),
    st.lists(finite32, min_size=1, max_size=40),
    st.lists(small_mag, min_size=1, max_size=40),
    st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 3.0, 5e-324, -5e-324]),
             min_size=1, max_size=20),
    st.lists(st.integers(-300, 300).map(float), min_size=1, max_size=40),
)


@SETTINGS
@given(values=values_st, bins=st.sampled_from([2, 3, 7, 8, 64, 100]), symmetric=st.booleans())
def test_counts_match_brute_force_definition(values, bins, symmetric):
    h = ExactHistogram(bins, symmetric=symmetric)
    h.add(np.array(values, dtype=np.float64))
    e, off, counts = brute_force(values, bins, symmetric)
    assert (h.exponent, h.offset) == (e, off)
    assert h.counts.tolist() == counts
    assert h.counts.dtype == np.int64
    assert h.total == len(values) == int(h.counts.sum())
    assert h.min == min(values) and h.max == max(values)
    assert h.abs_max == max(abs(v) for v in values)
    assert h.width == 2.0**e if e >= -1022 else h.width == math.ldexp(1.0, e)


@SETTINGS
@given(
    x=hnp.arrays(
        np.float32,
        st.integers(1, 300),
        elements=st.floats(-1e6, 1e6, allow_nan=False, width=32),
    ),
    bins=st.sampled_from([8, 128, 2048]),
    symmetric=st.booleans(),
)
def test_counts_match_np_histogram_on_edges(x, bins, symmetric):
    h = ExactHistogram(bins, symmetric=symmetric)
    h.add(x)
    v = np.abs(x.astype(np.float64)) if symmetric else x.astype(np.float64)
    edges = h.edges()
    if not np.all(np.diff(edges) > 0):  # constant data: the grid is finer than float64
        assert h.counts[0] == x.size
        return
    ref, _ = np.histogram(v, bins=edges)
    assert np.array_equal(ref, h.counts)
    # every value is strictly below the upper edge (np.histogram's last bin is closed)
    assert v.max() < edges[-1]
    assert edges[0] == h.lower and h.lower <= v.min()
    assert np.array_equal(h.centers(), (edges[:-1] + edges[1:]) / 2)
    if symmetric and h.abs_max > 0:
        # resolution bound: bins*w/2 <= abs_max < bins*w
        assert bins * h.width / 2 <= h.abs_max < bins * h.width
    if not symmetric and h.max > h.min and h.exponent > E_MIN:
        # resolution bound: span/bins < w < 2*span/(bins-1), in exact rationals
        span = Fraction(h.max) - Fraction(h.min)
        assert span / bins < Fraction(h.width) < 2 * span / (bins - 1)


batches_st = st.lists(
    hnp.arrays(
        np.float64,
        st.integers(1, 30),
        elements=st.one_of(
            st.floats(-1e4, 1e4, allow_nan=False),
            st.floats(-1e-6, 1e-6, allow_nan=False),
            st.just(0.0),
        ),
    ),
    min_size=1,
    max_size=5,
)


@SETTINGS
@given(batches=batches_st, bins=st.sampled_from([4, 16, 2048]), symmetric=st.booleans(),
       data=st.data())
def test_order_free_and_shard_merge_equal_single(batches, bins, symmetric, data):
    single = ExactHistogram(bins, symmetric=symmetric)
    single.add(np.concatenate(batches))
    seq = ExactHistogram(bins, symmetric=symmetric)
    for b in data.draw(st.permutations(batches)):
        seq.add(b)
    assert seq == single
    # split into shards, merge in a drawn order
    shards = [ExactHistogram(bins, symmetric=symmetric) for _ in batches]
    for s, b in zip(shards, batches, strict=True):
        s.add(b)
    order = data.draw(st.permutations(range(len(shards))))
    merged = ExactHistogram(bins, symmetric=symmetric)
    for i in order:
        before = shards[i].copy()
        merged.merge(shards[i])
        assert shards[i] == before  # other unchanged
    assert merged == single
    e, off, counts = brute_force(np.concatenate(batches).tolist(), bins, symmetric)
    assert (merged.exponent, merged.offset, merged.counts.tolist()) == (e, off, counts)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes_and_input_unchanged(dtype):
    x = np.array([[-3.5, 0.25], [7.0, -0.0]], dtype=dtype)
    keep = x.copy()
    h = ExactHistogram(16)
    h.add(x)
    assert np.array_equal(x, keep) and x.dtype == keep.dtype
    # |x| = 3.5, .25, 7, 0; abs_max 7 < 16*w -> w = 0.5; hand-worked bins 7, 0, 14, 0
    assert h.width == 0.5 and h.lower == 0.0
    expected = np.zeros(16, np.int64)
    for j in (7, 0, 14, 0):
        expected[j] += 1
    assert np.array_equal(h.counts, expected)
    g = ExactHistogram(16, symmetric=False)
    g.add(x)
    # [-3.5, 7]: w = 1 gives floor(7) - floor(-3.5) = 11 < 16, w = .5 gives 21 >= 16
    assert g.width == 1.0 and g.lower == -4.0
    exp2 = np.zeros(16, np.int64)
    for v in (-3.5, 0.25, 7.0, 0.0):
        exp2[math.floor(v) + 4] += 1
    assert np.array_equal(g.counts, exp2)


def test_negative_underflow_goes_to_bin_below_zero():
    # -5e-324 / 2**e underflows to -0.0 for a wide grid; it must land below 0
    g = ExactHistogram(4, symmetric=False)
    g.add(np.array([-5e-324, 30.0]))
    # w = 8: floor(30/8) - floor(-tiny/8) = 3 - (-1) = 4, not < 4; so w = 16, lower -16
    assert g.width == 16.0 and g.lower == -16.0
    assert g.counts.tolist() == [1, 0, 1, 0]


def test_constant_then_growth_folds_exactly():
    h = ExactHistogram(8, symmetric=False)
    h.add(np.full(5, 3.0))
    assert h.exponent == E_MIN and h.counts[0] == 5 and h.lower == 3.0
    h.add(np.array([-1.0]))
    assert h.width == 1.0 and h.lower == -1.0
    assert h.counts.tolist() == [1, 0, 0, 0, 5, 0, 0, 0]
    z = ExactHistogram(8)
    z.add(np.zeros(3))
    assert z.abs_max == 0.0 and z.counts[0] == 3
    z.add(np.array([1.0]))
    # 1 < 8 * 0.25 and not 1 < 8 * 0.125: w = 0.25, 1.0 is in bin 4
    assert z.width == 0.25
    assert z.counts.tolist() == [3, 0, 0, 0, 1, 0, 0, 0]


def test_empty_and_merge_into_empty():
    h = ExactHistogram(8)
    h.add(np.array([], dtype=np.float32))
    assert h.total == 0 and h.abs_max == 0.0
    g = ExactHistogram(8)
    g.add(np.array([1.0, 2.0]))
    h.merge(g)
    assert h == g
    h.merge(ExactHistogram(8))
    assert h == g


@pytest.mark.parametrize(
    "bad, exc, word",
    [
        (np.array([1.0, np.nan]), ValueError, "finite"),
        (np.array([1.0, np.inf]), ValueError, "finite"),
        (np.array([1, 2]), TypeError, "dtype"),
    ],
)
def test_bad_input(bad, exc, word):
    h = ExactHistogram(8)
    with pytest.raises(exc, match=word):
        h.add(bad)
    assert h.total == 0


def test_bad_config_and_merge():
    with pytest.raises(ValueError, match="bins"):
        ExactHistogram(1)
    with pytest.raises(TypeError, match="bins"):
        ExactHistogram(8.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="merge"):
        ExactHistogram(8).merge(ExactHistogram(16))
    with pytest.raises(TypeError, match="ExactHistogram"):
        ExactHistogram(8).merge(object())  # type: ignore[arg-type]


def test_peak_memory_is_bounded():
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    h = ExactHistogram(2048)
    tracemalloc.start()
    h.add(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < x.nbytes  # chunked: independent of the input size
    assert h.total == x.size
