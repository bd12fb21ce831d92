"""MSEObserver: the abs-max fraction minimising the quantization MSE.

Upstream: PaddlePaddle/PaddleSlim 2.6.0, ``paddleslim/quant/observers/mse.py``. Quirk
numbers (Q1, ...) are the rows of docs/divergences.md. One variant per profile:

canonical (:class:`_CanonicalMSE`)
    Statistics: an :class:`refquant.histogram.ExactHistogram` of ``|x|`` over everything
    observed (order-free, exactly mergeable). Decision: :func:`refquant.observers.search.
    search_scale` -- ``argmin_k MSE(S_k)``, ``S_k = fl32(k/50 * abs_max)``, ``k = 15..50``
    (factor 1.0 included, smallest factor wins exact ties), where ``MSE(S)`` is the mean over
    ALL observed values of ``(|x| - qdq(|x|))**2`` for the symmetric grid ``0..qmax``,
    evaluated at the bin centres weighted by the counts (float64, fixed bin order).

    Resolution bound: with bin width ``w`` (a power of two, ``abs_max/bins < w <=
    2 abs_max/bins``) and step ``d = S/qmax``, a value ``v`` and its bin centre ``c`` satisfy
    ``|v - c| <= w/2``. If no rounding boundary of the quantizer lies in the bin,
    ``e(v) - e(c) = v - c`` and ``|e(v)^2 - e(c)^2| <= w/2 * (2 E + w/2)`` where ``E`` is the
    largest ``|e|`` (``d/2`` inside the range, the clipping error above it). A bin holding a
    boundary changes ``e^2`` by at most ``(d/2 + w/2)^2``. So ``|MSE_hist(S) - MSE(S)| <=
    w/2 (2E + w/2) + f_b (d/2 + w/2)^2`` where ``f_b`` is the fraction of values in
    boundary bins (at most ``qmax + 1`` bins). The default ``bins = 2**max(12, bits + 4)``
    keeps ``w <= d / 5`` for every candidate (``d >= 0.3 abs_max / qmax``).
paddleslim (:class:`_SlimMSE`)
    PaddleSlim 2.6.0's ``MSEObserverLayer`` (Q1, Q2, Q15-Q18), per batch:
    ``abs_max = float(max |x|)`` (floored to ``1e-8`` when 0), candidates ``s * abs_max`` for
    the 35 accumulated factors (no 1.0), losses ``paddle.mean((x - qdq(x))**2)`` with the
    bit-exact :func:`refquant.kernels.slim.quant_dequant` (clip ``[-qmax-1, qmax]``), and
    a candidate replaces the running choice when ``loss <= calibration_loss``, the loss
    *carried across batches*. Only the last batch's choice survives: when nothing beats the
    carried loss the scale is that batch's raw abs-max. ``scale`` is the float64 product
    ``s * abs_max`` rounded to float32 for QParams; NaN gives ``int 0`` -> 0.0. The batch is
    computed in its own dtype (float64 stays float64, as with ``paddle.to_tensor``); float16
    raises ``RuntimeError`` as on Paddle's CPU (:func:`refquant.observers.search.
    reject_slim_float16`).

    Losses differ from Paddle's in the last bits (Paddle's ``** 2`` is inexact, Q4), so
    ``margin`` is the relative gap between the best and second-best of {carried loss, this
    batch's 35 losses} and ``extra['bound']`` the relative gap below which Paddle may decide
    differently (:func:`refquant.observers.search.decision_bound`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import as_real_array, check_int
from ..histogram import ExactHistogram
from ..kernels.slim import SEARCH_FACTORS
from ..profiles import CANONICAL, PADDLESLIM, Profile, ProfileRules
from ..qparams import QParams
from ._histbase import check_histogram
from .absmax import abs_max, slim_py_scale
from .base import ObserverBase
from .search import (
    decision_bound,
    per_tensor_qparams,
    reject_slim_float16,
    relative_margin,
    search_scale,
    slim_running_choice,
    slim_search_losses,
)

__all__ = ["MSEObserver", "default_bins", "slim_candidates"]


def slim_candidates(batch_max: float) -> list[float]:
    """PaddleSlim's candidate scales ``s * m`` (Python floats) for a batch maximum ``m``.

    ``m`` is floored to ``1e-8`` when it is 0 (``mse.py`` / ``emd.py``); ``s`` runs over
    :data:`refquant.kernels.slim.SEARCH_FACTORS` in order.
    """
    am = 1e-8 if batch_max == 0.0 else batch_max
    return [f * am for f in SEARCH_FACTORS]


def default_bins(bits: int) -> int:
    """Histogram size of the canonical searches: ``2**max(12, bits + 4)``."""
    return 1 << max(12, bits + 4)


class _SearchObserver(ObserverBase):
    """Constructor and configuration of the MSE / EMD searching observers.

    Each family (:class:`MSEObserver`, :class:`refquant.observers.emd.EMDObserver`) has one
    variant per profile, taking its statistics and decision from :class:`_CanonicalSearch`
    (exact histogram of ``|x|``, :func:`~refquant.observers.search.search_scale`) or
    :class:`_SlimSearch` (PaddleSlim's per-batch search with its carried loss). ``_loss``
    names the loss (``"mse"`` or ``"emd"``).
    """

    _loss = "mse"

    def __init__(
        self,
        quant_bits: int = 8,
        *,
        profile: Profile | ProfileRules = "canonical",
        ignore_nonfinite: bool = False,
        bins: int | None = None,
    ) -> None:
        self._bins_arg = None if bins is None else check_int(bins, "bins", 2, 1 << 24)
        super().__init__(quant_bits, profile=profile, ignore_nonfinite=ignore_nonfinite)

    def _config(self) -> dict:
        cfg = super()._config()
        cfg["bins"] = self.histogram_bins
        return cfg

    @property
    def histogram_bins(self) -> int:
        """Bins of the canonical profile's :class:`ExactHistogram` (``bins`` or the default)."""
        return self._hist_bins()

    def _hist_bins(self) -> int:
        return default_bins(self.quant_bits) if self._bins_arg is None else self._bins_arg

    def observe_histogram(self, hist: ExactHistogram, *, batches: int = 1) -> None:
        """Fold in an :class:`ExactHistogram` of ``|x|`` (canonical profile; see
        :meth:`_CanonicalSearch.observe_histogram`). Other profiles raise ``ValueError``."""
        self._refuse("observe_histogram")

    def observe_losses(self, batch_max: float, losses: Any, *, bound: float) -> None:
        """Fold in one batch's PaddleSlim search statistics (paddleslim profile; see
        :meth:`_SlimSearch.observe_losses`). Other profiles raise ``ValueError``."""
        self._refuse("observe_losses")


class _CanonicalSearch(_SearchObserver):
    """canonical statistics and decision: an exact histogram of ``|x|`` over everything
    observed (order-free, merged exactly) and :func:`~refquant.observers.search.
    search_scale` on it. With ``ignore_nonfinite`` the non-finite values are dropped."""

    def _reset(self) -> None:
        self._hist = ExactHistogram(self._hist_bins(), symmetric=True)

    def _observe(self, x: np.ndarray) -> None:
        if self.ignore_nonfinite:
            x = x[np.isfinite(x)]
        self._hist.add(x)

    def observe_histogram(self, hist: ExactHistogram, *, batches: int = 1) -> None:
        """canonical profile: fold in an :class:`ExactHistogram` of ``|x|``.

        ``hist`` must be symmetric (a histogram of ``|x|``) with ``bins ==
        histogram_bins``; its counts are exact integers, so however it was counted (on the
        host with :meth:`ExactHistogram.add`, on a device, or assembled with
        :meth:`ExactHistogram.from_counts`) it is a pure function of the multiset of
        values. It is merged exactly (``hist`` is not modified). Equivalence, bit for bit::

            obs.observe(x)  ==  obs.observe_histogram(h)
            # h = ExactHistogram(obs.histogram_bins, symmetric=True); h.add(x)
            # (with ignore_nonfinite: h.add(x[isfinite(x)]))

        Histograms merge exactly, so one histogram of ``k`` batches with ``batches=k``
        equals ``k`` calls.
        """
        batches = self._check_batches(batches)
        check_histogram(hist, self._hist_bins(), True)
        self._hist.merge(hist)
        self._ingest(batches)

    def _state(self) -> dict[str, Any]:
        """``histogram``: a copy of the :class:`ExactHistogram` of ``|x|``."""
        return {"histogram": self._hist.copy()}

    def _compute(self) -> QParams:
        if self._hist.total == 0:
            raise ValueError("no finite values observed (ignore_nonfinite=True dropped all)")
        return search_scale(self._hist.counts, self._hist.centers(), self._hist.abs_max,
                            self.quant_bits, self._loss)  # type: ignore[arg-type]

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, _CanonicalSearch)
        self._hist.merge(other._hist)


class _SlimSearch(_SearchObserver):
    """PaddleSlim's per-batch search (``mse.py`` / ``emd.py`` ``forward``): each batch's
    candidates ``SEARCH_FACTORS[k] * batch_max`` compete with the loss carried from earlier
    batches (:func:`~refquant.observers.search.slim_running_choice`); only the last batch's
    choice survives. Non-finite values pass through as in PaddleSlim."""

    def _reset(self) -> None:
        self._carried = math.inf  # PaddleSlim's calibration_loss
        self._choice = math.nan  # PaddleSlim's _mse_max / _emd_max (Python float)
        self._margin = math.inf
        self._extra: dict = {}

    def _batch_max(self, x: np.ndarray) -> float:
        """The batch statistic the candidates scale: ``max |x|`` (MSE)."""
        return abs_max(x)

    def _batch_bound(self, flat: np.ndarray) -> float:
        """``extra['bound']`` of one batch: the relative decision bound of a float mean of
        squares (:func:`~refquant.observers.search.decision_bound`)."""
        return decision_bound(flat.size, flat.dtype.type)

    def _observe(self, x: np.ndarray) -> None:
        reject_slim_float16(x, self.public_name)
        flat = x.reshape(-1)
        am = self._batch_max(flat)
        scales = slim_candidates(am)
        if math.isfinite(1e-8 if am == 0.0 else am):
            qmax = 2 ** (self.quant_bits - 1) - 1
            losses = slim_search_losses(flat, scales, qmax, self._loss)  # type: ignore[arg-type]
        else:
            losses = np.full(len(scales), math.nan)
        self._fold_losses(am, losses, self._batch_bound(flat))

    def _fold_losses(self, batch_max: float, losses: np.ndarray, bound: float) -> None:
        am = 1e-8 if batch_max == 0.0 else batch_max
        scales = [f * am for f in SEARCH_FACTORS]
        prev = self._carried
        best, self._carried = slim_running_choice(prev, [float(v) for v in losses])
        self._choice = scales[best] if best >= 0 else am
        self._margin = relative_margin(np.concatenate([[prev], losses]))
        self._extra = {"losses": losses, "carried": prev, "index": best, "bound": bound,
                       "abs_max": am}

    def observe_losses(self, batch_max: float, losses: Any, *, bound: float) -> None:
        """paddleslim profile: fold in one batch's PaddleSlim search statistics.

        * ``batch_max``: the batch's maximum as a Python float -- ``max |x|`` for MSE, the
          *signed* ``max(x)`` for EMD (Q19) -- exact (any device), before PaddleSlim's
          ``1e-8`` floor (applied here).
        * ``losses``: the 35 per-candidate losses (float64 of the values Paddle computed in
          the tensor's dtype) for the scales ``SEARCH_FACTORS[k] * batch_max'`` (Python
          floats; ``batch_max'`` floored), in factor order; all NaN when ``batch_max`` is
          not finite. Any exact reproduction qualifies: :func:`refquant.observers.search.
          slim_search_losses` on the host, PaddleSlim's expressions with Paddle ops on a
          device.
        * ``bound``: the decision bound (``>= 0``; NaN or inf for non-finite data) reported
          in ``extra['bound']`` (MSE:
          :func:`~refquant.observers.search.decision_bound` ``(n, dtype)``; EMD: the absolute
          :func:`~refquant.observers.search.emd_loss_bound`).

        The running choice is :func:`~refquant.observers.search.slim_running_choice`,
        carried from earlier batches. Equivalence, bit for bit::

            obs.observe(x)  ==  obs.observe_losses(m, slim_search_losses(x, scales, qmax,
                                                   loss), bound=b)

        with ``m`` as above, ``scales = slim_candidates(m)``, ``qmax = 2**(bits-1) - 1``.
        """
        am = self._stat_scalar(batch_max, "batch_max")
        if self._loss == "mse" and am < 0:
            raise ValueError(f"batch_max must be an abs-max >= 0 for MSE, got {batch_max!r}")
        arr = as_real_array(losses, "losses")
        if arr.ndim != 1 or arr.size != len(SEARCH_FACTORS):
            raise ValueError(f"losses must hold {len(SEARCH_FACTORS)} values (one per "
                             f"factor, 1-D), got shape {arr.shape}")
        self._check_nonnegative(arr, "losses")
        b = self._stat_scalar(bound, "bound")  # NaN / inf for non-finite data
        if b < 0:
            raise ValueError(f"bound must be >= 0 (or NaN), got {bound!r}")
        self._fold_losses(am, arr.astype(np.float64), b)
        self._ingest(1)

    def _state(self) -> dict[str, Any]:
        """``carried`` loss, ``choice`` (Python float) and ``margin``."""
        return {"carried": self._carried, "choice": self._choice, "margin": self._margin}

    def _compute(self) -> QParams:
        qp = per_tensor_qparams(slim_py_scale(self._choice), self.quant_bits, self._margin)
        qp.extra.update(self._extra)
        return qp


class MSEObserver(_SearchObserver):
    """Per-tensor MSE-searching observer (see module docstring for both profiles).

    ``MSEObserver(profile="canonical")`` is a :class:`_CanonicalMSE`,
    ``profile="paddleslim"`` a :class:`_SlimMSE`. ``bins`` (keyword-only, canonical
    profile) sets the histogram size, an integer in ``[2, 2**24]``; the default is
    :func:`default_bins`.
    """

    _loss = "mse"


class _CanonicalMSE(MSEObserver, _CanonicalSearch, profile=CANONICAL):
    """canonical: the MSE of the exact histogram of ``|x|`` (module docstring)."""


class _SlimMSE(MSEObserver, _SlimSearch, profile=PADDLESLIM):
    """paddleslim: PaddleSlim's ``MSEObserverLayer`` (module docstring)."""
