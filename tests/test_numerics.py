"""refquant._numerics: the one decision-bound formula, checked against exact rationals."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from refquant import _numerics as nm
from refquant import testing
from refquant.observers import search


def _gamma_exact(k: int, u: Fraction) -> Fraction:
    return k * u / (1 - k * u)


@pytest.mark.parametrize("dtype, u", [(np.float32, Fraction(1, 2**24)),
                                      (np.float64, Fraction(1, 2**53))])
@pytest.mark.parametrize("k", [0, 1, 2, 255, 260, 4099, 1 << 20])
def test_gamma_is_higham_gamma_k(dtype, u, k):
    assert nm.unit_roundoff(dtype) == float(u)
    got = nm.gamma(k, dtype)
    exact = _gamma_exact(k, u)
    # one rounding of k*u/(1-k*u) in float64 (k*u and 1-k*u are exact here)
    assert abs(Fraction(got) - exact) <= exact * Fraction(1, 2**52)


def test_gamma_is_infinite_once_ku_reaches_one():
    assert nm.gamma(1 << 24) == math.inf
    assert math.isfinite(nm.gamma((1 << 24) - 1))


@pytest.mark.parametrize("n, extra, k", [(0, 0, 1), (1, 0, 1), (2, 0, 1), (3, 0, 2),
                                         (256, 0, 255), (256, 5, 260), (1, 5, 5)])
def test_decision_bound_hand_worked(n, extra, k):
    u = Fraction(1, 2**24)
    got = nm.decision_bound(n, np.float32, extra_roundings=extra)
    exact = 2 * _gamma_exact(k, u)
    assert abs(Fraction(got) - exact) <= exact * Fraction(1, 2**52)
    assert got == 2 * nm.gamma(k)


def test_callers_share_the_formula():
    assert testing.summation_bound is nm.decision_bound
    for n in (1, 7, 256, 512, 100_000):
        for dt in (np.float32, np.float64):
            assert search.decision_bound(n, dt) == nm.decision_bound(n, dt, extra_roundings=5)
            assert search.decision_bound(n, dt) == 2 * search.f32_mean_bound(n, dt)
    # the conformance fixtures record summation_bound(256) for the observer cases
    assert testing.summation_bound(256) == 2.0 * (255 * 2.0**-24) / (1.0 - 255 * 2.0**-24)


@pytest.mark.parametrize("call, exc", [
    (lambda: nm.decision_bound(-1), ValueError),
    (lambda: nm.decision_bound(2.0), TypeError),
    (lambda: nm.decision_bound(True), TypeError),
    (lambda: nm.decision_bound(4, extra_roundings=-1), ValueError),
    (lambda: nm.decision_bound(4, np.int32), TypeError),
    (lambda: nm.gamma(-3), ValueError),
    (lambda: nm.unit_roundoff("not a dtype"), TypeError),
    (lambda: nm.unit_roundoff(None), TypeError),
])
def test_bad_input_is_refused(call, exc):
    with pytest.raises(exc) as info:
        call()
    assert str(info.value)
