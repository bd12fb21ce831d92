"""Shared statistics of the histogram observers (:class:`HistObserver`, :class:`KLObserver`).

Both families keep the same statistics and differ only in the decision. Each family has one
variant per profile, and a variant takes its statistics from one of the two classes here
(it lists its family first, its statistics second)::

    class _CanonicalKL(KLObserver, ExactHistogramStatistics, profile=CANONICAL): ...
    class _SlimKL(KLObserver, SlimHistogramStatistics, profile=PADDLESLIM): ...

* :class:`ExactHistogramStatistics` (canonical): an
  :class:`~refquant.histogram.ExactHistogram` (of ``|x|`` when symmetric, else of ``x``),
  order-free and exactly mergeable; statistics ingestion ``observe_histogram``.
* :class:`SlimHistogramStatistics` (paddleslim): the state machine of PaddleSlim's
  ``BaseHistObserver`` (PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/base_hist.py``),
  :class:`~refquant.histogram.SlimHistogram` (docs/divergences.md Q21-Q24); statistics
  ingestion ``observe_slim_batch``.

:class:`HistogramObserverBase` holds the constructor checks and refuses the ingestion method
of the other profile (``ValueError`` naming the profile that has it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_bits, check_float32_range
from ..histogram import ExactHistogram, SlimHistogram
from ..profiles import Profile, ProfileRules, get_profile
from .base import ObserverBase

__all__: list[str] = []


def check_histogram(hist: Any, bins: int, symmetric: bool) -> None:
    """``TypeError``/``ValueError`` unless ``hist`` is an ExactHistogram of this shape whose
    values lie in float32's range (as ``observe`` requires of a batch)."""
    if not isinstance(hist, ExactHistogram):
        raise TypeError(f"hist must be an ExactHistogram, got {type(hist).__name__}")
    if (hist.bins, hist.symmetric) != (bins, symmetric):
        raise ValueError(
            f"hist must have bins={bins}, symmetric={symmetric}; got bins={hist.bins}, "
            f"symmetric={hist.symmetric}"
        )
    if hist.total:
        check_float32_range(np.array([hist.min, hist.max]), "hist (its min/max)")


def check_bins_count(bins_count: Any, quant_bits: Any, profile: str | ProfileRules) -> int:
    """``bins_count`` as an int: an integer in ``[1, 2**24]``, and ``>= 2**(bits-1)`` (one bin
    per quantization level at least) where the profile's rules have
    ``histogram_bins_cover_levels`` (canonical; PaddleSlim does not check)."""
    if isinstance(bins_count, bool) or not isinstance(bins_count, (int, np.integer)):
        raise TypeError(f"bins_count must be an integer, got {bins_count!r}")
    n = int(bins_count)
    bits = check_bits(quant_bits, "quant_bits")
    rules = get_profile(profile)
    if not 1 <= n <= 1 << 24:
        raise ValueError(f"bins_count must be in [1, 2**24], got {n}")
    if rules.histogram_bins_cover_levels and n < 2 ** (bits - 1):
        raise ValueError(
            f"bins_count must be >= 2**(quant_bits-1) = {2 ** (bits - 1)}, got {n}"
        )
    return n


class HistogramObserverBase(ObserverBase):
    """Constructor checks of the histogram observers; the statistics are the variants'."""

    #: the canonical histogram is of ``|x|`` (KL) or follows ``self.symmetric`` (Hist)
    symmetric: bool = True
    #: PaddleSlim's layer name, for the error of ``SlimHistogramStatistics._slim_histogram``
    _slim_layer = "BaseHistObserver"

    def __init__(
        self,
        quant_bits: int,
        bins_count: int,
        *,
        profile: Profile | ProfileRules = "canonical",
        ignore_nonfinite: bool = False,
    ) -> None:
        self.bins_count = check_bins_count(bins_count, quant_bits, self.rules)
        super().__init__(quant_bits, profile=profile, ignore_nonfinite=ignore_nonfinite)

    def observe_histogram(self, hist: ExactHistogram, *, batches: int = 1) -> None:
        """Fold in an :class:`ExactHistogram` of the batch (canonical profile; see
        :meth:`ExactHistogramStatistics.observe_histogram`). Other profiles raise
        ``ValueError``."""
        self._refuse("observe_histogram")

    def observe_slim_batch(
        self, batch_min: float, batch_max: float,
        counts_on: Callable[[float, float, int], np.ndarray],
    ) -> None:
        """One PaddleSlim ``forward`` from the batch's statistics (paddleslim profile; see
        :meth:`SlimHistogramStatistics.observe_slim_batch`). Other profiles raise
        ``ValueError``."""
        self._refuse("observe_slim_batch")


class ExactHistogramStatistics(HistogramObserverBase):
    """Statistics of the canonical variants: one :class:`ExactHistogram` of everything
    observed (of ``|x|`` when ``symmetric``, else of ``x``), order-free; ``merge`` adds the
    counts exactly. With ``ignore_nonfinite`` the non-finite values are dropped."""

    def _reset(self) -> None:
        self._exact = ExactHistogram(self.bins_count, symmetric=self.symmetric)

    def _observe(self, x: np.ndarray) -> None:
        if self.ignore_nonfinite:
            x = x[np.isfinite(x)]
        self._exact.add(x)

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, ExactHistogramStatistics)
        self._exact.merge(other._exact)

    def _state(self) -> dict[str, Any]:
        """``histogram``: a copy of the :class:`ExactHistogram`."""
        return {"histogram": self._exact.copy()}

    def _canonical_histogram(self) -> ExactHistogram:
        """The histogram; ``ValueError`` when every value was non-finite."""
        if self._exact.total == 0:
            raise ValueError(f"{self.public_name}.compute(): every observed value was "
                             "non-finite")
        return self._exact

    def observe_histogram(self, hist: ExactHistogram, *, batches: int = 1) -> None:
        """canonical profile: fold in an :class:`ExactHistogram` of the batch.

        ``hist`` must have ``bins == bins_count`` and the observer's ``symmetric`` (a
        histogram of ``|x|`` when symmetric, of ``x`` otherwise); its counts are exact
        integers on the power-of-two grid, a pure function of the multiset of values
        however they were counted (:meth:`ExactHistogram.add`, a device, or
        :meth:`ExactHistogram.from_counts`). Merged exactly; ``hist`` is not modified.
        An empty histogram counts a batch whose values were all dropped
        (``ignore_nonfinite``). Equivalence, bit for bit::

            obs.observe(x)  ==  obs.observe_histogram(h)
            # h = ExactHistogram(obs.bins_count, symmetric=obs.symmetric); h.add(x)
            # (with ignore_nonfinite: h.add(x[isfinite(x)]))

        One histogram of ``k`` batches with ``batches=k`` equals ``k`` calls.
        """
        batches = self._check_batches(batches)
        check_histogram(hist, self.bins_count, self.symmetric)
        self._exact.merge(hist)
        self._ingest(batches)


class SlimHistogramStatistics(HistogramObserverBase):
    """Statistics of the paddleslim variants: PaddleSlim's order-dependent
    :class:`SlimHistogram` (Q21-Q24); non-finite values pass through as in PaddleSlim."""

    def _reset(self) -> None:
        self._slim = SlimHistogram(self.bins_count)

    def _observe(self, x: np.ndarray) -> None:
        self._slim.forward(x)

    def _state(self) -> dict[str, Any]:
        """``hist`` (a copy, or None), ``hist_min``, ``hist_max`` of the
        :class:`SlimHistogram`."""
        st = self._slim
        return {"hist": None if st.hist is None else st.hist.copy(), "hist_min": st.hist_min,
                "hist_max": st.hist_max}

    def _slim_histogram(self) -> tuple[np.ndarray, float, float]:
        """``(hist, hist_min, hist_max)``, or PaddleSlim's ``AssertionError`` when it has no
        histogram (Q22)."""
        st = self._slim
        if st.hist is None:
            raise AssertionError(
                f"PaddleSlim {self._slim_layer} has no histogram: the first batch was "
                "constant or had one element and no later non-constant batch came "
                "(quirk 22); scales() raises AssertionError"
            )
        assert st.hist_min is not None and st.hist_max is not None
        return st.hist, st.hist_min, st.hist_max

    def observe_slim_batch(
        self, batch_min: float, batch_max: float,
        counts_on: Callable[[float, float, int], np.ndarray],
    ) -> None:
        """paddleslim profile: one PaddleSlim ``forward`` from the batch's statistics.

        PaddleSlim's histogram is re-binned on a range that depends on the state and on
        the batch (Q21-Q24), so the counts cannot be computed before the range is known:
        the state machine (:meth:`SlimHistogram.forward_stats`) calls back
        ``counts_on(lo, hi, bins)``, which must return, bit for bit,
        ``np.histogram(x, bins=bins, range=(lo, hi))[0]`` (int64) for the batch ``x`` in
        the tensor's dtype -- NumPy's float arithmetic on the edges included. ``batch_min``
        and ``batch_max`` are ``float(min(x))`` and ``float(max(x))`` (exact; real scalars,
        ``min <= max`` unless NaN).
        Equivalence, bit for bit::

            obs.observe(x)  ==  obs.observe_slim_batch(
                float(x.min()), float(x.max()),
                lambda lo, hi, bins: np.histogram(x, bins=bins, range=(lo, hi))[0])
        """
        lo = self._stat_scalar(batch_min, "batch_min")
        hi = self._stat_scalar(batch_max, "batch_max")
        if lo > hi:
            raise ValueError(f"batch_min must be <= batch_max, got {batch_min!r} > {batch_max!r}")
        if not callable(counts_on):
            raise TypeError(f"counts_on must be callable, got {type(counts_on).__name__}")
        self._slim.forward_stats(lo, hi, counts_on)
        self._ingest(1)
