"""Canonical profile of the abs-max / AVG / MSE / EMD / channel-wise / group-wise observers.

Properties (Hypothesis): results are bit-identical under any permutation of the batches and
any split into shards + ``merge``; values agree with independent formulations (brute-force
losses over the raw data, exact rational means, loop-based maxima). Plus decision-function
units and bad input (the quirk registry is checked in tests/test_divergences.py).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import testing as rqt
from refquant.observers.absmax import AbsmaxObserver
from refquant.observers.avg import AVGObserver
from refquant.observers.channel_wise import (
    AbsMaxChannelWiseWeightObserver,
    MSEChannelWiseWeightObserver,
)
from refquant.observers.emd import EMDObserver
from refquant.observers.groupwise import GroupWiseWeightObserver
from refquant.observers.mse import MSEObserver
from refquant.observers.search import (
    CANONICAL_FACTORS,
    argmin_first,
    relative_margin,
    slim_running_choice,
)

DTYPES = st.sampled_from([np.float32, np.float64])


def batches(shape: tuple[int, ...], min_batches: int = 2, dtype=DTYPES, **kw):
    """2-4 batches of ``shape`` (each its own dtype when ``dtype`` is a strategy); kind
    "single" keeps the shape: zeros but one element, so channel-wise state stays valid."""
    return rqt.adversarial_batches(shape, dtype, min_batches=min_batches, same_dtype=False,
                                   single="spike", **kw)


FACTORIES = {
    "absmax": (lambda: AbsmaxObserver(), (6, 5)),
    "avg": (lambda: AVGObserver(), (6, 5)),
    "mse": (lambda: MSEObserver(), (6, 5)),
    "emd": (lambda: EMDObserver(), (6, 5)),
    "mse4": (lambda: MSEObserver(4), (6, 5)),
    "abscw": (lambda: AbsMaxChannelWiseWeightObserver(axis=2), (3, 2, 4)),
    "msecw": (lambda: MSEChannelWiseWeightObserver(), (6, 5)),
    "msecw0": (lambda: MSEChannelWiseWeightObserver(4, axis=0), (4, 2, 1, 3)),
    "group": (lambda: GroupWiseWeightObserver(group_size=3), (6, 5)),
}


def _margins_equal(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


def _run(name, xs):
    obs = FACTORIES[name][0]()
    for x in xs:
        obs.observe(x)
    return obs.compute()


@pytest.mark.parametrize("name", sorted(FACTORIES))
@settings(max_examples=12, deadline=None, derandomize=True)
@given(data=st.data(), order_seed=st.integers(0, 2**31), cut=st.integers(1, 3))
def test_permutation_and_shard_merge_are_bit_identical(name, data, order_seed, cut):
    xs = data.draw(batches(FACTORIES[name][1]), label="batches")
    base = _run(name, xs)
    perm = np.random.default_rng(order_seed).permutation(len(xs))
    shuffled = _run(name, [xs[i] for i in perm])
    assert shuffled == base and _margins_equal(shuffled.margin, base.margin)
    cut = min(cut, len(xs) - 1)
    a, b = FACTORIES[name][0](), FACTORIES[name][0]()
    for x in xs[:cut]:
        b.observe(x)
    for x in xs[cut:]:
        a.observe(x)
    a.merge(b)
    merged = a.compute()
    assert merged == base and _margins_equal(merged.margin, base.margin)


# -- independent formulations --------------------------------------------------------------
@settings(max_examples=30, deadline=None, derandomize=True)
@given(xs=batches((5, 3), dtype=np.float32))
def test_absmax_and_avg_against_independent_math(xs):
    ab, av = AbsmaxObserver(), AVGObserver()
    for x in xs:
        ab.observe(x)
        av.observe(x)
    everything = np.concatenate([x.ravel() for x in xs])
    assert float(ab.compute().scale) == float(np.float32(max(abs(float(v)) for v in everything)))
    maxima = [max(abs(float(v)) for v in row) for x in xs for row in x]
    exact = sum((Fraction(m) for m in maxima), Fraction(0)) / len(maxima)
    got = av.compute().scale
    below, above = np.nextafter(got, np.float32(0)), np.nextafter(got, np.float32(np.inf))
    err = abs(Fraction(float(got)) - exact)
    assert err <= abs(Fraction(float(below)) - exact) and err <= abs(Fraction(float(above)) - exact)


def test_avg_counts_every_sample_hand_worked():
    obs = AVGObserver()
    obs.observe(np.array([[1, -4], [2, 0.5]], np.float32))
    obs.observe(np.array([[10, 0]], np.float32))
    assert float(obs.compute().scale) == float(np.float32(16 / 3))  # (4 + 2 + 10) / 3


@settings(max_examples=20, deadline=None, derandomize=True)
@given(xs=batches((3, 4, 2), dtype=np.float32), axis=st.integers(-3, 2))
def test_channel_wise_abs_max_any_axis(xs, axis):
    obs = AbsMaxChannelWiseWeightObserver(axis=axis)
    for x in xs:
        obs.observe(x)
    qp = obs.compute()
    ax = axis % 3
    expect = [max(abs(float(v)) for x in xs for v in np.take(x, c, axis=ax).ravel())
              for c in range(xs[0].shape[ax])]
    assert qp.scale.tolist() == np.float32(expect).tolist() and qp.axis == ax


@settings(max_examples=20, deadline=None, derandomize=True)
@given(xs=batches((6, 4), dtype=np.float32), g=st.sampled_from([1, 2, 3, 6]))
def test_groupwise_against_loops(xs, g):
    obs = GroupWiseWeightObserver(group_size=g)
    for x in xs:
        obs.observe(x)
    qp = obs.compute()
    assert qp.scale.shape == (6 // g, 4)
    for gi in range(6 // g):
        for j in range(4):
            m = max(abs(float(x[i, j])) for x in xs for i in range(gi * g, gi * g + g))
            assert qp.scale[gi, j] == np.float32(m)


def _true_losses(values, thresholds, qmax, kind):
    """Brute force over the raw data: a different formulation from the observers' code."""
    out = []
    for S in thresholds:
        tot = 0.0
        for v in values:
            a = abs(v)
            q = min(round(a / S * qmax), qmax)  # Python round: half to even
            e = a - q * S / qmax
            tot += e * e if kind == "mse" else abs(e)
        out.append(tot / len(values))
    return out


@pytest.mark.parametrize("cls,kind", [(MSEObserver, "mse"), (EMDObserver, "emd")])
@settings(max_examples=15, deadline=None, derandomize=True)
@given(xs=batches((40,), 1, np.float32, max_batches=3,
                  kinds=("normal", "student_t", "relu", "outlier", "shifted")))
def test_histogram_search_within_resolution_bound(cls, kind, xs):
    obs = cls()
    for x in xs:
        obs.observe(x)
    qp = obs.compute()
    vals = [float(v) for x in xs for v in x]
    amax = max(abs(v) for v in vals)
    thr = [float(np.float32(f * amax)) for f in CANONICAL_FACTORS]
    qmax = qp.qmax
    true = _true_losses(vals, thr, qmax, kind)
    w = obs._hist.width
    bounds = []
    for S in thr:  # the docstring's resolution bound, evaluated on the raw data
        d = S / qmax
        E = max(d / 2, amax - S)
        bnd = [(j + 0.5) * d for j in range(qmax)]
        in_b = 0
        for v in vals:
            lo = math.floor(abs(v) / w) * w
            in_b += any(lo <= b < lo + w for b in bnd)
        fb = in_b / len(vals)
        if kind == "mse":
            bounds.append(w / 2 * (2 * E + w / 2) + fb * (d / 2 + w / 2) ** 2)
        else:
            bounds.append(w / 2 + fb * (d / 2 + w / 2))
    hist = qp.extra["losses"]
    for k in range(len(thr)):
        assert abs(hist[k] - true[k]) <= bounds[k] * (1 + 1e-9) + 1e-300
    k = qp.extra["index"]
    assert float(qp.scale) == thr[k]
    assert true[k] <= min(true) + 2 * max(bounds) * (1 + 1e-9)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(xs=batches((9, 3), dtype=np.float32), bits=st.sampled_from([8, 4]))
def test_mse_channel_wise_against_brute_force(xs, bits):
    obs = MSEChannelWiseWeightObserver(bits)  # 2-D: axis 1 inferred
    for x in xs:
        obs.observe(x)
    qp = obs.compute()
    qmax = 2 ** (bits - 1) - 1
    for c in range(3):
        vals = [float(x[i, c]) for x in xs for i in range(9)]
        amax = max(abs(v) for v in vals)
        if amax == 0:
            assert qp.scale[c] == 0
            continue
        thr = [float(np.float32(k / 50 * amax)) for k in range(15, 51)]
        true = np.array(_true_losses(vals, thr, qmax, "mse"))
        k = int(np.argmin(true))  # first minimum: the smallest factor wins exact ties
        hits = [j for j in range(len(thr)) if np.float32(thr[j]) == qp.scale[c]]
        assert hits, (c, qp.scale[c])
        j = hits[0]
        if j == k:
            continue
        # Both sums add the same float64 terms, in different orders: each mean is within
        # g = gamma_m (m - 1 additions, one division; u = 2**-53) of the exact mean L of
        # those terms, so the two computed values of one loss differ by at most 2 g L <=
        # 2 g / (1 - g) * computed, and a different choice must be the runner-up with a gap
        # below that bound for both losses.
        m, u = len(vals), 2.0**-53
        g = m * u / (1 - m * u)
        assert true[j] <= np.sort(true)[1], (c, j, k, true[j], true[k])
        assert true[j] - true[k] <= 2 * g / (1 - g) * (true[j] + true[k]), (c, j, k, true)


# -- decisions, ties ---------------------------------------------------------------------
def test_decision_functions_hand_worked():
    assert argmin_first([3.0, 1.0, 1.0, 2.0]) == 1  # exact tie: first (smallest factor)
    assert argmin_first([math.nan, math.nan]) == -1
    assert slim_running_choice(math.inf, [3.0, 1.0, 1.0, 2.0]) == (2, 1.0)  # `<=`: later wins
    assert slim_running_choice(0.5, [3.0, 1.0]) == (-1, 0.5)  # carried loss wins
    assert relative_margin([2.0, 1.0, 1.5]) == 0.5
    assert relative_margin([1.0, 1.0]) == 0.0
    assert relative_margin([0.0, 1.0]) == math.inf
    assert CANONICAL_FACTORS[0] == 0.3 and CANONICAL_FACTORS[-1] == 1.0
    assert len(CANONICAL_FACTORS) == 36 and CANONICAL_FACTORS[5] == 0.4


@pytest.mark.parametrize("cls", [MSEObserver, EMDObserver, AbsmaxObserver, AVGObserver])
def test_all_zero_gives_zero_scale(cls):
    obs = cls()
    obs.observe(np.zeros((2, 3), np.float32))
    assert float(obs.compute().scale) == 0.0


def test_avg_zero_d_and_one_d_hand_worked():
    obs = AVGObserver()
    obs.observe(np.float32(-7.0))  # a 0-D batch is one sample
    obs.observe(np.array([1.0, -3.0], np.float32))  # 1-D: every element is a sample
    assert float(obs.compute().scale) == float(np.float32(11 / 3))


def test_subnormal_data_does_not_crash():
    obs = MSEObserver()
    obs.observe(np.array([1e-44, -3e-45], np.float32))
    qp = obs.compute()
    assert np.isfinite(qp.scale) and qp.scale >= 0


def test_mse_keeps_factor_one_hand_worked():
    obs = MSEChannelWiseWeightObserver()
    obs.observe(np.array([[3.0, 1.0]], np.float32))
    assert obs.compute().scale.tolist() == [3.0, 1.0]  # 1.0 is on the canonical grid


# -- bad input ---------------------------------------------------------------------------
ALL = [AbsmaxObserver, AVGObserver, MSEObserver, EMDObserver, AbsMaxChannelWiseWeightObserver,
       MSEChannelWiseWeightObserver, lambda **kw: GroupWiseWeightObserver(group_size=2, **kw)]


@pytest.mark.parametrize("factory", ALL)
@pytest.mark.parametrize("profile", ["canonical", "paddleslim"])
def test_bad_input(factory, profile):
    obs = factory(profile=profile)
    with pytest.raises(ValueError, match="compute"):
        obs.compute()
    bad = np.array([[1.0, np.nan], [2.0, 3.0]], np.float32)
    before = bad.copy()
    with pytest.raises(ValueError, match="non-finite"):
        obs.observe(bad)
    assert np.array_equal(bad, before, equal_nan=True)
    with pytest.raises(ValueError, match="empty"):
        obs.observe(np.zeros((0, 2), np.float32))
    with pytest.raises(TypeError, match="floating"):
        obs.observe(np.ones((2, 2), np.int32))
    with pytest.raises(TypeError, match="x"):
        obs.observe("abc")
    other = factory(profile=profile)
    if profile == "paddleslim":
        with pytest.raises(NotImplementedError):
            obs.merge(other)


@pytest.mark.parametrize("cls", [AbsmaxObserver, MSEObserver, EMDObserver])
def test_bad_constructor_arguments(cls):
    with pytest.raises(ValueError, match="quant_bits"):
        cls(17)
    with pytest.raises(TypeError, match="quant_bits"):
        cls(8.0)
    with pytest.raises(ValueError, match="profile"):
        cls(profile="torch")


def test_channel_and_group_shape_errors():
    with pytest.raises(ValueError, match="axis"):
        AbsMaxChannelWiseWeightObserver().observe(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="axis=5"):
        AbsMaxChannelWiseWeightObserver(axis=5).observe(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="axis"):
        MSEChannelWiseWeightObserver(axis=2, profile="paddleslim").observe(np.ones((2, 3, 4),
                                                                                   np.float32))
    with pytest.raises(TypeError, match="axis"):
        AbsMaxChannelWiseWeightObserver(axis=1.0)
    obs = AbsMaxChannelWiseWeightObserver()
    obs.observe(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="channels"):
        obs.observe(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="group_size=4"):
        GroupWiseWeightObserver(group_size=4).observe(np.ones((6, 2), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        GroupWiseWeightObserver(group_size=2).observe(np.ones((6, 2, 1), np.float32))
    with pytest.raises(ValueError, match="group_size"):
        GroupWiseWeightObserver(group_size=0)
    with pytest.raises(ValueError, match="configurations"):
        GroupWiseWeightObserver(group_size=2).merge(GroupWiseWeightObserver(group_size=3))


def test_ignore_nonfinite_drops_values():
    x = np.array([[1.0, np.nan], [-3.0, np.inf]], np.float32)
    for cls in (AbsmaxObserver, MSEObserver, EMDObserver):
        obs = cls(ignore_nonfinite=True)
        obs.observe(x)
        ref = cls()
        ref.observe(np.array([1.0, -3.0], np.float32))
        assert obs.compute() == ref.compute()
    slim = AbsmaxObserver(profile="paddleslim", ignore_nonfinite=True)
    slim.observe(x)  # PaddleSlim propagates NaN, then Python's max gives int 0 (Q9)
    assert float(slim.compute().scale) == 0.0
