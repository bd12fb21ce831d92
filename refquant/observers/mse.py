"""MSEObserver: the abs-max fraction minimising the quantization MSE (``.../observers/mse.py``).

canonical
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
paddleslim
    PaddleSlim 2.6.0's ``MSEObserverLayer`` (items 1, 2, 15-18), per batch:
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

    Losses differ from Paddle's in the last bits (Paddle's ``** 2`` is inexact, quirk 4), so
    ``margin`` is the relative gap between the best and second-best of {carried loss, this
    batch's 35 losses} and ``extra['bound']`` the relative gap below which Paddle may decide
    differently (:func:`refquant.observers.search.decision_bound`).
"""

from __future__ import annotations

import math

import numpy as np

from ..histogram import ExactHistogram
from ..kernels.slim import SEARCH_FACTORS
from ..qparams import QParams, integer_range
from .absmax import abs_max, slim_py_scale
from .base import ObserverBase, Profile
from .search import (
    decision_bound,
    emd_loss_bound,
    per_tensor_qparams,
    reject_slim_float16,
    relative_margin,
    search_scale,
    slim_running_choice,
    slim_search_losses,
)

__all__ = ["MSEObserver", "default_bins"]


def default_bins(bits: int) -> int:
    """Histogram size of the canonical searches: ``2**max(12, bits + 4)``."""
    return 1 << max(12, bits + 4)


class _SearchObserver(ObserverBase):
    _loss = "mse"

    def __init__(
        self,
        quant_bits: int = 8,
        *,
        profile: Profile = "canonical",
        ignore_nonfinite: bool = False,
        bins: int | None = None,
    ) -> None:
        self._bins_arg = bins
        super().__init__(quant_bits, profile=profile, ignore_nonfinite=ignore_nonfinite)

    def _config(self) -> dict:
        cfg = super()._config()
        cfg["bins"] = self._hist_bins()
        return cfg

    def _hist_bins(self) -> int:
        return default_bins(self.quant_bits) if self._bins_arg is None else int(self._bins_arg)

    def _reset(self) -> None:
        if self.profile == "canonical":
            self._hist = ExactHistogram(self._hist_bins(), symmetric=True)
        self._carried = math.inf  # PaddleSlim's calibration_loss
        self._choice = math.nan  # PaddleSlim's _mse_max / _emd_max (Python float)
        self._margin = math.inf
        self._extra: dict = {}

    def _batch_max(self, x: np.ndarray) -> float:
        return abs_max(x)

    def _observe(self, x: np.ndarray) -> None:
        if self.profile == "canonical":
            if self.ignore_nonfinite:
                x = x[np.isfinite(x)]
            self._hist.add(x)
            return
        reject_slim_float16(x, type(self).__name__)
        flat = x.reshape(-1)
        am = self._batch_max(flat)
        am = 1e-8 if am == 0.0 else am
        qmax = 2 ** (self.quant_bits - 1) - 1
        scales = [f * am for f in SEARCH_FACTORS]
        if math.isfinite(am):
            losses = slim_search_losses(flat, scales, qmax, self._loss)  # type: ignore[arg-type]
        else:
            losses = np.full(len(scales), math.nan)
        prev = self._carried
        best, self._carried = slim_running_choice(prev, [float(v) for v in losses])
        self._choice = scales[best] if best >= 0 else am
        self._margin = relative_margin(np.concatenate([[prev], losses]))
        if self._loss == "mse":
            bound = decision_bound(flat.size, flat.dtype.type)
        else:
            bound = emd_loss_bound(flat.size, flat)
        self._extra = {"losses": losses, "carried": prev, "index": best, "bound": bound,
                       "abs_max": am}

    def _compute(self) -> QParams:
        if self.profile == "canonical":
            if self._hist.total == 0:
                raise ValueError("no finite values observed (ignore_nonfinite=True dropped all)")
            return search_scale(self._hist.counts, self._hist.centers(), self._hist.abs_max,
                                self.quant_bits, self._loss)  # type: ignore[arg-type]
        qmin, qmax = integer_range(self.quant_bits)
        qp = per_tensor_qparams(slim_py_scale(self._choice), self.quant_bits, self._margin)
        qp.extra.update(self._extra)
        return qp

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, _SearchObserver)
        self._hist.merge(other._hist)


class MSEObserver(_SearchObserver):
    """Per-tensor MSE-searching observer (see module docstring for both profiles).

    ``bins`` (keyword-only, canonical profile) sets the histogram size; the default is
    :func:`default_bins`.
    """

    _loss = "mse"
