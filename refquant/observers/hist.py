"""Percentile histogram observer: ``HistObserver(quant_bits=8, bins_count=2048, percent=0.999,
sign=True, symmetric=True)``, PaddleSlim's ``PercentHistObserverLayer`` and a canonical one.

Upstream: PaddlePaddle/PaddleSlim 2.6.0, ``paddleslim/quant/observers/hist.py`` and
``uniform.py``. Quirk numbers (Q25, ...) are the rows of docs/divergences.md.

Decision functions (pure, importable on their own):

* :func:`slim_percent_min_max` -- PaddleSlim's ``_cal_min_max_by_percent``
  (``paddleslim/quant/observers/hist.py`` L84-91) with NumPy 1.x semantics for its
  ``float()`` of a 1-element array (Q25): per-tail percentiles of the *signed*
  histogram (Q27), each threshold ``hist_min + (idx - 0.5) * w`` -- half a bin below the
  left edge of the percentile bin (Q26).
* :func:`slim_uniform_qparams` -- PaddleSlim's ``UniformObserver.cal_scales_zero_points``
  (``paddleslim/quant/observers/uniform.py`` L70-101) with its Python arithmetic (Q5-Q7,
  Q28).
* :func:`percentile_threshold` / :func:`percentile_range` -- the canonical percentile on an
  :class:`~refquant.histogram.ExactHistogram`.

The observer has one variant per profile: :class:`_CanonicalHist` and :class:`_SlimHist`
(their statistics come from :mod:`refquant.observers._histbase`).

Canonical percentile (definition)
---------------------------------
With ``N`` values and ``k = ceil(percent * N)`` (exact rational arithmetic, ``k >= 1``):

* symmetric (histogram of ``|x|``, bins ``[j w, (j+1) w)``): the threshold is the smallest
  bin upper edge ``E`` with ``#{|x| < E} >= k``, capped at ``abs_max``:
  ``T = min((j* + 1) w, abs_max)``, ``j* = min{j : cum_j >= k}``. At least a fraction
  ``percent`` of the values satisfies ``|x| <= T``, and ``T`` is within one bin (``w <=
  2 abs_max / bins``) of the exact order statistic ``|x|_(k)`` from above.
* asymmetric (histogram of ``x``): the upper end is the smallest upper edge with at least
  ``k`` values below it (capped at ``max``), the lower end the largest lower edge with at
  least ``k`` values at or above it (capped at ``min``) -- the same rule on each tail.
  For ``percent <= 1/2`` the two ends can cross; the range is then the interval between
  them (``(min(lo, hi), max(lo, hi))``).

Both are exact integer computations on the counts, so they inherit the histogram's order
and shard independence.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .._validation import check_flag, check_percent
from ..histogram import ExactHistogram
from ..profiles import CANONICAL, PADDLESLIM, Profile, ProfileRules
from ..qparams import QParams, asymmetric_qparams, symmetric_qparams
from ._histbase import (
    ExactHistogramStatistics,
    HistogramObserverBase,
    SlimHistogramStatistics,
    check_bins_count,
)

__all__ = [
    "HistObserver",
    "slim_percent_min_max",
    "slim_uniform_qparams",
    "percentile_threshold",
    "percentile_range",
]


# ---------------------------------------------------------------------------------------
# PaddleSlim profile
# ---------------------------------------------------------------------------------------
def slim_percent_min_max(
    hist: np.ndarray, hist_min: float, hist_max: float, percent: float
) -> tuple[float, float]:
    """PaddleSlim's percentile ``(min, max)`` from its signed histogram state.

    ``cum = cumsum(hist / sum(hist, float64))`` (float64, sequential);
    ``i_hi = first index with cum >= percent``, ``i_lo = first index with cum >= 1 -
    percent``; ``w = (hist_max - hist_min) / bins``; returns ``(hist_min + (i_lo - 0.5) * w,
    hist_min + (i_hi - 0.5) * w)`` in float64 (Q26-Q27). PaddleSlim computes this with
    ``float()`` of a shape-(1,) array, which NumPy 2 rejects (Q25); this is what the
    code computes under NumPy 1.x. If ``cum`` never reaches ``percent`` (possible for
    ``percent = 1`` after rounding), PaddleSlim indexes an empty array: ``IndexError``.
    """
    frac = hist / np.sum(hist, dtype=np.float64)
    cum = np.cumsum(frac)
    hi_hits = np.flatnonzero(cum >= percent)
    lo_hits = np.flatnonzero(cum >= (1 - percent))
    if hi_hits.size == 0 or lo_hits.size == 0:
        raise IndexError(
            f"index 0 is out of bounds (PaddleSlim: the cumulative histogram never reaches "
            f"percent={percent!r}; its last value is {float(cum[-1])!r})"
        )
    width = (hist_max - hist_min) / hist.shape[0]
    hi = hist_min + float((int(hi_hits[0]) - 0.5) * width)
    lo = hist_min + float((int(lo_hits[0]) - 0.5) * width)
    return lo, hi


def slim_uniform_qparams(
    min_value: float, max_value: float, bits: int, sign: bool, symmetric: bool,
    extra: dict | None = None,
) -> QParams:
    """PaddleSlim's ``UniformObserver.cal_scales_zero_points`` as a QParams.

    ``(qmin, qmax) = (-2^(b-1), 2^(b-1)-1)`` signed, ``(0, 2^b)`` unsigned (Q5);
    ``lo = min(min_value, 0.)``, ``hi = max(max_value, 0.)`` (Python ``min``/``max``);
    symmetric: ``scale = max(-lo, hi)`` (a threshold), zero point 0 signed or
    ``(qmax + qmin) / 2`` unsigned (Q6); asymmetric: ``scale = (hi - lo) / float(qmax -
    qmin)`` (a *step*, Q7), ``zp = clip(qmin - round(lo / scale), qmin, qmax)`` with
    Python ``round`` (half to even). A zero asymmetric scale divides by zero in PaddleSlim:
    ``ZeroDivisionError``.
    """
    if sign:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        qmin, qmax = 0, 2**bits
    lo = min(min_value, 0.0)
    hi = max(max_value, 0.0)
    info = dict(extra or {}, min=min_value, max=max_value)
    if symmetric:
        scale = max(-lo, hi)
        zp: Any = 0 if sign else (qmax + qmin) / 2
        return QParams(np.float32(scale), zp, qmin, qmax, bits, None, None, extra=info)
    scale = (hi - lo) / float(qmax - qmin)
    if scale == 0:
        raise ZeroDivisionError(
            "float division by zero (PaddleSlim's asymmetric branch: round(min / scale) with "
            "scale 0 because the range is empty)"
        )
    zp = np.clip(qmin - round(lo / scale), qmin, qmax)
    return QParams(np.float32(scale), zp, qmin, qmax, bits, None, None, convention="step",
                   extra=info)


# ---------------------------------------------------------------------------------------
# canonical
# ---------------------------------------------------------------------------------------
def _rank(percent: float, total: int) -> int:
    return max(1, math.ceil(Fraction(percent) * total))


def percentile_threshold(hist: ExactHistogram, percent: float) -> float:
    """Canonical symmetric percentile of ``|x|`` (see the module docstring)."""
    if not hist.symmetric:
        raise ValueError("percentile_threshold needs a symmetric (|x|) histogram")
    if hist.total == 0:
        raise ValueError("percentile_threshold: the histogram is empty")
    k = _rank(percent, hist.total)
    cum = np.cumsum(hist.counts)
    j = int(np.searchsorted(cum, k, side="left"))
    edge = float(Fraction(j + 1) * Fraction(hist.width))
    return min(edge, hist.abs_max)


def percentile_range(hist: ExactHistogram, percent: float) -> tuple[float, float]:
    """Canonical two-tailed percentile range of ``x`` (see the module docstring)."""
    if hist.symmetric:
        raise ValueError("percentile_range needs a signed (symmetric=False) histogram")
    if hist.total == 0:
        raise ValueError("percentile_range: the histogram is empty")
    k = _rank(percent, hist.total)
    cum = np.cumsum(hist.counts)
    j_hi = int(np.searchsorted(cum, k, side="left"))
    # values at or above bin j: total - cum[j-1]; largest j with that >= k
    at_or_above = hist.total - np.concatenate([[0], cum[:-1]])
    j_lo = int(np.flatnonzero(at_or_above >= k)[-1])
    w = Fraction(hist.width)
    off = hist.offset
    hi = min(float((off + j_hi + 1) * w), hist.max)
    lo = max(float((off + j_lo) * w), hist.min)
    return min(lo, hi), max(lo, hi)


# ---------------------------------------------------------------------------------------
# observer
# ---------------------------------------------------------------------------------------
class HistObserver(HistogramObserverBase):
    """Percentile observer (PaddleSlim ``HistObserver`` / ``PercentHistObserverLayer``).

    ``HistObserver(profile="paddleslim")`` is a :class:`_SlimHist`:
    :class:`~refquant.histogram.SlimHistogram` (Q21-Q24), :func:`slim_percent_min_max`
    (Q25-Q27: NumPy 1.x value where PaddleSlim raises on NumPy 2),
    :func:`slim_uniform_qparams` (Q5-Q7, Q28). ``compute`` raises ``AssertionError`` when
    PaddleSlim has no histogram (Q22).

    ``profile="canonical"`` gives a :class:`_CanonicalHist`: an :class:`ExactHistogram` of
    ``|x|`` when ``symmetric`` (else of ``x``), the percentile of the module docstring, and
    :func:`~refquant.qparams.symmetric_qparams` (signed, or unsigned ``[0, T]`` when
    ``sign=False``) / :func:`~refquant.qparams.asymmetric_qparams` (grid signed per
    ``sign``).

    Statistics ingestion: ``observe_histogram`` (canonical) and ``observe_slim_batch``
    (paddleslim), see :mod:`refquant.observers._histbase`.
    """

    def __init__(
        self,
        quant_bits: int = 8,
        bins_count: int = 2048,
        percent: float = 0.999,
        sign: bool = True,
        symmetric: bool = True,
        *,
        profile: Profile | ProfileRules = "canonical",
        ignore_nonfinite: bool = False,
    ) -> None:
        check_bins_count(bins_count, quant_bits, self.rules)
        self.percent = check_percent(percent, "percent")
        self.sign = check_flag(sign, "sign")
        self.symmetric = check_flag(symmetric, "symmetric")
        super().__init__(quant_bits, bins_count, profile=profile,
                         ignore_nonfinite=ignore_nonfinite)

    _slim_layer = "PercentHistObserverLayer"

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "bins_count": self.bins_count, "percent": self.percent,
                "sign": self.sign, "symmetric": self.symmetric}


class _CanonicalHist(HistObserver, ExactHistogramStatistics, profile=CANONICAL):
    """canonical: the exact percentile of an :class:`ExactHistogram` (module docstring)."""

    def _compute(self) -> QParams:
        bits = self.quant_bits
        h = self._canonical_histogram()
        if self.symmetric:
            t = percentile_threshold(h, self.percent)
            if self.sign:
                qp = symmetric_qparams(-t, t, bits, signed=True)
            else:
                qp = symmetric_qparams(0.0, t, bits, signed=False)
            return QParams(qp.scale, qp.zero_point, qp.qmin, qp.qmax, bits, None, None,
                           extra={"threshold": t})
        lo, hi = percentile_range(h, self.percent)
        qp = asymmetric_qparams(lo, hi, bits, signed=self.sign)
        return QParams(qp.scale, qp.zero_point, qp.qmin, qp.qmax, bits, None, None,
                       convention="step", extra={"min": lo, "max": hi})


class _SlimHist(HistObserver, SlimHistogramStatistics, profile=PADDLESLIM):
    """paddleslim: PaddleSlim's ``PercentHistObserverLayer`` on its :class:`SlimHistogram`
    (``_cal_min_max_by_percent``, then ``cal_scales_zero_points``)."""

    def _compute(self) -> QParams:
        hist, hist_min, hist_max = self._slim_histogram()
        lo, hi = slim_percent_min_max(hist, hist_min, hist_max, self.percent)
        return slim_uniform_qparams(lo, hi, self.quant_bits, self.sign, self.symmetric)
