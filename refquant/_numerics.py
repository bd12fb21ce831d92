"""Floating-point error bounds shared by the observers' decisions and the conformance rules.

A leaf module: NumPy only. Notation of Higham, *Accuracy and Stability of Numerical
Algorithms* (2nd ed., SIAM 2002): the unit roundoff ``u = eps / 2`` (``2**-24`` for float32,
``2**-53`` for float64) and ``gamma_k = k u / (1 - k u)`` for ``k u < 1`` (eq. 3.8).

* :func:`unit_roundoff` -- ``u`` of a floating dtype.
* :func:`gamma` -- ``gamma_k``: a product of ``k`` factors ``(1 + d_i)`` with ``|d_i| <= u``
  (or their inverses) is ``1 + t`` with ``|t| <= gamma_k`` (Lemma 3.1).
* :func:`decision_bound` -- the relative margin below which two implementations may order
  two searched losses differently (the ``decision`` rule of the conformance fixtures and
  ``extra['bound']`` of the PaddleSlim MSE searches).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import check_int

__all__ = ["unit_roundoff", "gamma", "decision_bound"]


def unit_roundoff(dtype: Any = np.float32) -> float:
    """``u = eps / 2`` of the floating ``dtype`` (``2**-24`` float32, ``2**-53`` float64).

    ``TypeError`` for a dtype that is not floating.
    """
    try:
        dt = np.dtype(dtype) if dtype is not None else None  # np.dtype(None) is float64
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r}")
    return float(np.finfo(dt).eps) / 2.0


def gamma(k: int, dtype: Any = np.float32) -> float:
    """Higham's ``gamma_k = k u / (1 - k u)`` in ``dtype`` (``inf`` once ``k u >= 1``).

    ``k`` is a non-negative integer (``gamma_0 = 0``); ``u`` is :func:`unit_roundoff`.
    """
    k = check_int(k, "k", low=0)
    ku = k * unit_roundoff(dtype)
    if ku >= 1.0:
        return math.inf
    return ku / (1.0 - ku)


def decision_bound(n: int, dtype: Any = np.float32, *, extra_roundings: int = 0) -> float:
    """Relative margin below which two losses, each a sum of ``n`` terms, may swap order.

    Returns ``2 * gamma_k`` with ``k = max(n - 1 + extra_roundings, 1)`` in ``dtype``
    (:func:`gamma`; ``inf`` once ``k u >= 1``). ``extra_roundings`` counts the roundings of
    a loss besides the ``n - 1`` additions of its sum: ``1`` for the division of a mean,
    plus those of a term computed less accurately than one rounding (Paddle's ``x ** 2``:
    up to ``4``), so a PaddleSlim MSE loss has ``extra_roundings = 5``.

    Derivation. A loss is a floating sum of ``n`` non-negative terms in some order,
    followed (or preceded, per term) by ``extra_roundings`` roundings. Each term of the
    computed sum then carries at most ``k`` factors ``(1 + d)``, ``|d| <= u``; as the terms
    are non-negative, the computed loss is ``L (1 + t)`` with ``|t| <= gamma_k`` whatever the
    order (Higham, Lemma 3.1 and section 4.2). Take one implementation's losses ``a <= b`` as
    the reference, with margin ``m = (b - a) / a``; the other's are within ``gamma_k`` of
    them, so it can rank ``b`` before ``a`` only if ``b (1 - gamma_k) <= a (1 + gamma_k)``,
    i.e. ``m <= 2 gamma_k / (1 - gamma_k)``. The value returned, ``2 gamma_k``, is that
    threshold to first order in ``k u`` (it is smaller by a relative ``gamma_k``: ``1.5e-5``
    for ``n = 256`` in float32). First-order terms: ``2 gamma_k = 2 k u + O((k u)^2)``,
    e.g. ``2 * 260 * 2**-24`` for a float32 MSE loss of 256 values.

    ``k`` is at least 1, so a single term still allows one rounding. ``n`` is an integer
    ``>= 0`` and ``extra_roundings`` an integer ``>= 0``.
    """
    n = check_int(n, "n", low=0)
    extra = check_int(extra_roundings, "extra_roundings", low=0)
    return 2.0 * gamma(max(n - 1 + extra, 1), dtype)
