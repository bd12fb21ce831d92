"""Channel-wise weight observers.

Upstream: PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/abs_max_weight.py`` and
``mse_weight.py`` (the channel axis: ``channel_wise.py``). Quirk numbers (Q32, ...) are the
rows of docs/divergences.md.

The channel axis is the ``axis=`` argument. When it is left out it is inferred from the
rank of the first batch the way PaddleSlim's ``CHANNEL_AXIS`` table does for the layer
types it knows: a 4-D (Conv2D ``[out, in, kh, kw]``) weight uses axis 0, a 2-D (Linear
``[in, out]``) weight axis 1; other ranks need an explicit ``axis``. PaddleSlim itself
only ever uses axis 0 or 1 (any other layer type raises ``KeyError``, Q32a), so the
``paddleslim`` profile accepts only those (``rules.channel_axes``); the canonical profile
accepts any axis.

AbsMaxChannelWiseWeightObserver
    canonical (:class:`_CanonicalAbsMaxChannelWise`): ``S_c = max |x|`` over every observed
    value of channel ``c`` (merge = max); an all-zero channel gets ``S_c = 0``.
    paddleslim (:class:`_SlimAbsMaxChannelWise`; Q33, Q33a): computed on the FIRST batch
    only, later batches are ignored; ``max |x|`` per channel in the input dtype, "zeros"
    replaced by ``T(1e-8)`` -- Paddle's float ``==`` is tolerant, so every abs-max below
    ``1e-15`` counts as zero (:func:`slim_is_zero`); the scale is a tensor of the input
    dtype (rounded to float32 for QParams); zero point 0.
MSEChannelWiseWeightObserver
    canonical (:class:`_CanonicalMSEChannelWise`): per channel, ``argmin_k MSE_c(S_k)`` over
    ``S_k = fl32(k/50 * S_c)``, ``k = 15..50``, where ``MSE_c`` is the exact float64 mean
    over ALL observed values of the channel of ``(|x| - qdq(|x|))**2`` (symmetric grid
    ``0..qmax``). The observer keeps every value (weights are small) and sorts each
    channel's ``|x|`` before summing, so the result is a pure function of the multiset of
    values per channel: order-free and mergeable (merge concatenates). Smallest factor wins
    exact ties; zero channels get 0.
    paddleslim (:class:`_SlimMSEChannelWise`; Q33, Q34, Q34a): first batch only; ``absmax``
    with "zeros" (``< 1e-15``, :func:`slim_is_zero`) replaced by ``float32(1e-8)``;
    candidates ``T(s) * absmax`` in the input dtype ``T`` for the 35 accumulated factors;
    quant-dequant with clip ``[qmin, qmax] = [-2**(b-1), 2**(b-1)-1]``
    (:func:`refquant.kernels.slim.quant_dequant`, tensor scales); per-channel mean squared
    error; a candidate replaces the running choice only when strictly smaller (``<``, the
    first minimum wins). The per-channel losses are summed here in float64 (Paddle's
    reduction order is not reproduced): ``margin`` is per channel and ``extra['bound']`` is
    :func:`refquant.observers.search.decision_bound` for the channel size.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import numpy as np

from .._validation import check_axis, check_int
from ..kernels.slim import SEARCH_FACTORS, quant_dequant
from ..profiles import CANONICAL, PADDLESLIM, ProfileRules
from ..qparams import QParams, integer_range
from .base import ObserverBase, Profile
from .search import (
    argmin_first,
    canonical_thresholds,
    decision_bound,
    exact_losses,
    reject_slim_float16,
    relative_margin,
)

__all__ = [
    "AbsMaxChannelWiseWeightObserver",
    "MSEChannelWiseWeightObserver",
    "infer_axis",
    "slim_is_zero",
]

_CHUNK = 1 << 16


def slim_is_zero(v: np.ndarray) -> np.ndarray:
    """Paddle 3.3.1's floating ``==`` against 0: ``|v| < 1e-15`` counts as equal.

    Paddle's equal kernel compares floats with a tolerance, so PaddleSlim's
    ``where(abs_max == 0, 1e-8, abs_max)`` also floors channels whose abs-max is below
    ``1e-15`` (measured against Paddle 3.3.1 on float32 and float64, Q33a in
    docs/divergences.md). NaN compares unequal.
    """
    with np.errstate(invalid="ignore"):
        return np.abs(v) < 1e-15


def infer_axis(ndim: int) -> int:
    """PaddleSlim's channel axis by weight rank: 4-D (Conv2D) -> 0, 2-D (Linear) -> 1."""
    if ndim == 4:
        return 0
    if ndim == 2:
        return 1
    raise ValueError(
        f"axis cannot be inferred for a weight of rank {ndim} (PaddleSlim knows Conv2D 4-D "
        "-> 0 and Linear 2-D -> 1); pass axis= explicitly"
    )


def _channels_first(x: np.ndarray, axis: int) -> np.ndarray:
    """``x`` as a C-contiguous ``(C, m)`` matrix with channel ``c`` in row ``c``."""
    return np.ascontiguousarray(np.moveaxis(x, axis, 0)).reshape(x.shape[axis], -1)


class _ChannelWise(ObserverBase):
    min_ndim = 1

    def __init__(
        self,
        quant_bits: int = 8,
        *,
        axis: int | None = None,
        profile: Profile | ProfileRules = "canonical",
        ignore_nonfinite: bool = False,
    ) -> None:
        self._axis_arg = None if axis is None else check_int(axis, "axis")
        super().__init__(quant_bits, profile=profile, ignore_nonfinite=ignore_nonfinite)

    def _config(self) -> dict[str, Any]:
        cfg = super()._config()
        cfg["axis"] = self._axis_arg
        return cfg

    def _reset(self) -> None:
        self._axis: int | None = None
        self._shape: tuple[int, ...] | None = None
        self._ndim: int | None = None

    @property
    def channel_axis(self) -> int | None:
        """The resolved (non-negative) channel axis of the observed batches, or None."""
        return self._axis

    def _resolve_shape(self, shape: Any, dtype: Any = np.float32) -> int:
        """:meth:`_resolve_axis` for a batch known by its shape (and dtype) only."""
        return self._resolve_axis(self._shape_only(shape, dtype))

    def _resolve_axis(self, x: np.ndarray) -> int:
        ax = infer_axis(x.ndim) if self._axis_arg is None else check_axis(self._axis_arg, x.ndim)
        allowed = self.rules.channel_axes
        if allowed is not None and ax not in allowed:
            raise ValueError(
                f"axis={self._axis_arg} is not a channel axis of profile={self.profile!r}, "
                f"which accepts {allowed} (PaddleSlim's CHANNEL_AXIS has only 0 for Conv2D "
                "and 1 for Linear; other layer types raise KeyError, Q32a)"
            )
        if self._axis is not None and ax != self._axis:
            raise ValueError(f"axis {ax} differs from the axis {self._axis} of earlier batches")
        if self._shape is not None and x.shape[ax] != self._shape[0]:
            raise ValueError(
                f"x has {x.shape[ax]} channels on axis {ax}, earlier batches had {self._shape[0]}"
            )
        self._axis = ax
        self._shape = (x.shape[ax],)
        self._ndim = x.ndim
        return ax

    def _grid(self) -> tuple[int, int]:
        return integer_range(self.quant_bits)


class AbsMaxChannelWiseWeightObserver(_ChannelWise):
    """Per-channel abs-max weight observer: ``S_c = max |x|`` over channel ``c``.

    ``profile="canonical"`` builds a :class:`_CanonicalAbsMaxChannelWise` (running max over
    every batch, mergeable), ``profile="paddleslim"`` a :class:`_SlimAbsMaxChannelWise`
    (first batch only, zeros floored to ``1e-8``); the module docstring states both.
    """

    _max: np.ndarray | None  # canonical: float64; paddleslim: the input dtype

    def _reset(self) -> None:
        super()._reset()
        self._max = None

    def _observe(self, x: np.ndarray) -> None:
        self._check_batch(x)
        if self._keeps_batches():
            ax = self._resolve_axis(x)
            m = _channels_first(x, ax)
            if self.ignore_nonfinite and self.rules.drops_nonfinite:
                m = np.where(np.isfinite(m), m, 0)
            self._fold_channel_max(np.maximum(m.max(axis=1), -m.min(axis=1)))

    def observe_channel_abs_max(self, maxima: Any, shape: Any, *, batches: int = 1) -> None:
        """Fold in the per-channel abs-max of a batch of shape ``shape``.

        ``maxima`` is a 1-D floating array, ``maxima[c] = max |x|`` over channel ``c`` of
        the batch (the channel axis resolved from ``shape`` exactly as :meth:`observe` does
        it, with the same errors), exact and in the batch's dtype (max is exact, so any
        device or order qualifies; the paddleslim profile keeps that dtype). ``shape`` is
        the batch's shape. Equivalence, bit for bit::

            obs.observe(x)  ==  obs.observe_channel_abs_max(
                abs(moveaxis(x, ax, 0).reshape(C, -1)).max(axis=1), x.shape)

        (canonical with ``ignore_nonfinite``: over the finite values, 0 for none).
        canonical: the maxima must be finite and ``>= 0``; a running max, so the maximum of
        ``k`` batches' maxima with ``batches=k`` equals ``k`` calls. paddleslim: only the
        first batch counts (Q33); float16 raises ``RuntimeError`` as on Paddle's CPU.
        """
        batches = self._check_batches(batches)
        arr = self._stat_array(maxima, "maxima", 1)
        self._check_channel_maxima(arr)
        if self._keeps_batches():
            before = (self._axis, self._shape, self._ndim)
            ax = self._resolve_shape(shape, arr.dtype)
            C = int(tuple(shape)[ax])
            if arr.shape != (C,):
                self._axis, self._shape, self._ndim = before  # nothing recorded on error
                raise ValueError(f"maxima must have shape ({C},) (channels of shape "
                                 f"{tuple(shape)} on axis {ax}), got {arr.shape}")
            self._fold_channel_max(arr)
        self._ingest(batches)

    def _state(self) -> dict[str, Any]:
        """``abs_max`` (per-channel array copy, or None), ``axis`` and ``ndim`` of the
        observed batches (None before any)."""
        return {"abs_max": None if self._max is None else self._max.copy(),
                "axis": self._axis, "ndim": self._ndim}

    def _compute(self) -> QParams:
        qmin, qmax = self._grid()
        assert self._max is not None
        with np.errstate(over="ignore"):
            scale = self._max.astype(np.float32)
        return QParams(scale, np.zeros(scale.shape, np.int64), qmin, qmax, self.quant_bits,
                       self._axis)

    def _check_batch(self, x: np.ndarray) -> None:
        """Errors the profile raises for a batch before looking at its values (none here)."""

    @abc.abstractmethod
    def _keeps_batches(self) -> bool:
        """Whether the next batch's statistics change the state."""

    @abc.abstractmethod
    def _check_channel_maxima(self, maxima: np.ndarray) -> None:
        """``ValueError`` (or the original's error) for maxima this profile cannot fold."""

    @abc.abstractmethod
    def _fold_channel_max(self, cur: np.ndarray) -> None:
        """Fold one batch's per-channel ``max(x), -min(x)`` maximum into the state."""


class _CanonicalAbsMaxChannelWise(AbsMaxChannelWiseWeightObserver, profile=CANONICAL):
    """canonical: ``S_c = max |x|`` over every observed value of channel ``c``, exactly.

    The per-channel maxima are exact in the input dtype and kept as a float64 running
    maximum (order-free; ``merge`` takes the maximum); ``compute`` rounds them once to
    float32. An all-zero channel gets ``S_c = 0``; zero points are 0.
    """

    def _keeps_batches(self) -> bool:
        return True

    def _check_channel_maxima(self, maxima: np.ndarray) -> None:
        if not (np.all(np.isfinite(maxima)) and np.all(maxima >= 0)):
            raise ValueError("maxima must be finite and >= 0 (per-channel abs-max values)")

    def _fold_channel_max(self, cur: np.ndarray) -> None:
        cur = np.abs(cur.astype(np.float64))
        self._max = cur if self._max is None else np.maximum(self._max, cur)

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, _CanonicalAbsMaxChannelWise) and other._max is not None
        if self._max is None:
            self._max, self._axis, self._shape = other._max.copy(), other._axis, other._shape
            self._ndim = other._ndim
            return
        if other._max.shape != self._max.shape or other._axis != self._axis:
            raise ValueError("cannot merge observers with different channel counts or axes")
        self._max = np.maximum(self._max, other._max)


class _SlimAbsMaxChannelWise(AbsMaxChannelWiseWeightObserver, profile=PADDLESLIM):
    """paddleslim: PaddleSlim 2.6.0's ``AbsMaxChannelWiseWeightObserverLayer`` (Q33, Q33a).

    Upstream: PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/abs_max_weight.py``
    (``forward``, ``_cal_abs_max``). Only the first batch is computed, later ones are
    ignored; ``max |x|`` per channel in the input dtype ``T``, then
    ``where(abs_max == 0, T(1e-8), abs_max)`` with Paddle's tolerant ``==`` (every abs-max
    below ``1e-15`` counts as zero, :func:`slim_is_zero`). The scale stays a ``T`` tensor
    (rounded to float32 for QParams); zero points are 0. float16 raises ``RuntimeError`` as
    on Paddle's CPU (no float16 ``abs`` kernel, Q18a).
    """

    def _check_batch(self, x: np.ndarray) -> None:
        reject_slim_float16(x, self.public_name)

    def _keeps_batches(self) -> bool:
        return self._max is None  # first forward only (Q33)

    def _check_channel_maxima(self, maxima: np.ndarray) -> None:
        reject_slim_float16(maxima, self.public_name)
        self._check_nonnegative(maxima, "maxima")

    def _fold_channel_max(self, cur: np.ndarray) -> None:
        cur = np.abs(cur)
        self._max = np.where(slim_is_zero(cur), cur.dtype.type(1e-8), cur)


def slim_channel_search(x: np.ndarray, axis: int, bits: int) -> tuple[np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """PaddleSlim's ``MSEChannelWiseWeightObserverLayer._cal_abs_max`` on one weight.

    Returns ``(scales, margins, losses)``: the chosen per-channel scales in ``x.dtype``,
    the per-channel relative margins and the ``(35, C)`` float64 losses.
    """
    dt = x.dtype
    m = _channels_first(x, axis)
    C, n = m.shape
    am = np.abs(np.maximum(m.max(axis=1), -m.min(axis=1)))
    am = np.where(slim_is_zero(am), dt.type(np.float32(1e-8)), am).astype(dt)
    qmin, qmax = integer_range(bits)
    K = len(SEARCH_FACTORS)
    scales = np.stack([np.multiply(dt.type(f), am, dtype=dt) for f in SEARCH_FACTORS])  # (K, C)
    sums = np.zeros((K, C), dtype=np.float64)
    width = max(1, _CHUNK // max(C, 1))
    buf = np.empty((C, min(width, n)), dtype=dt)
    d64 = np.empty((C, min(width, n)), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for j in range(0, n, width):
            xc = m[:, j : j + width]
            w = xc.shape[1]
            y, d = buf[:, :w], d64[:, :w]
            for k in range(K):
                quant_dequant(xc, scales[k][:, None], qmax, qmin, out=y)
                np.subtract(xc, y, out=y)
                np.copyto(d, y)
                sums[k] += np.einsum("ij,ij->i", d, d)
    losses = sums / n
    best = np.array([argmin_first(losses[:, c]) for c in range(C)], dtype=np.int64)
    chosen = np.where(best >= 0, scales[np.maximum(best, 0), np.arange(C)], am)
    margins = np.array([relative_margin(losses[:, c]) for c in range(C)])
    return chosen.astype(dt), margins, losses


class MSEChannelWiseWeightObserver(_ChannelWise):
    """Per-channel MSE-searching weight observer: ``S_c = argmin_k MSE_c(S_k)``.

    ``profile="canonical"`` builds a :class:`_CanonicalMSEChannelWise` (exact losses over
    every observed value, mergeable), ``profile="paddleslim"`` a
    :class:`_SlimMSEChannelWise` (PaddleSlim's search on the first batch); the module
    docstring states both.
    """


class _CanonicalMSEChannelWise(MSEChannelWiseWeightObserver, profile=CANONICAL):
    """canonical: exact per-channel MSE search over every observed value.

    Per channel ``c``: thresholds ``S_k = fl32(k/50 * S_c)``, ``k = 15..50``
    (:func:`refquant.observers.search.canonical_thresholds`, ``S_c = max |x|``), and
    ``MSE_c(S_k)``, the exact float64 mean over ALL observed values of the channel of
    ``(|x| - qdq(|x|))**2`` on the symmetric grid ``0..qmax``
    (:func:`refquant.observers.search.exact_losses`, each channel's ``|x|`` sorted before
    summing). The state is every value (weights are small), so the result is a pure
    function of the multiset of values per channel: order-free, and ``merge`` concatenates.
    The smallest factor wins exact ties; zero channels get 0 (margin ``inf``).
    """

    def _reset(self) -> None:
        super()._reset()
        self._values: list[np.ndarray] = []  # (C, m) |x| blocks in the input dtype

    def _observe(self, x: np.ndarray) -> None:
        ax = self._resolve_axis(x)
        m = np.abs(_channels_first(x, ax))  # exact in the input dtype; float64 at compute
        if self.ignore_nonfinite and not np.isfinite(m).all():
            raise ValueError(
                "MSEChannelWiseWeightObserver cannot drop non-finite values channel by channel "
                "(channels would get different sizes); clean the weight first"
            )
        self._values.append(m)

    def _compute(self) -> QParams:
        qmin, qmax = self._grid()
        data = np.concatenate([v.astype(np.float64) for v in self._values], axis=1)
        data.sort(axis=1)
        am = data[:, -1]
        thr = canonical_thresholds(am)  # (36, C)
        C = data.shape[0]
        zero = am == 0
        losses = exact_losses(data, np.where(zero, 1.0, thr), qmax)
        best = np.array([argmin_first(losses[:, c]) for c in range(C)], dtype=np.int64)
        scale = thr[best, np.arange(C)]
        scale = np.where(zero, 0.0, scale)
        margins = np.array([math.inf if zero[c] else relative_margin(losses[:, c])
                            for c in range(C)])
        qp = QParams(scale, np.zeros(C, np.int64), qmin, qmax, self.quant_bits, self._axis,
                     margin=margins)
        qp.extra.update(losses=losses, thresholds=thr, index=best)
        return qp

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, _CanonicalMSEChannelWise)
        if self._shape is not None and other._shape is not None and (
            self._shape != other._shape or self._axis != other._axis
        ):
            raise ValueError("cannot merge observers with different channel counts or axes")
        # a list, not a generator: ``other`` may be ``self`` (extending a list while
        # iterating it never ends)
        self._values.extend([v.copy() for v in other._values])
        if self._axis is None:
            self._axis, self._shape, self._ndim = other._axis, other._shape, other._ndim


class _SlimMSEChannelWise(MSEChannelWiseWeightObserver, profile=PADDLESLIM):
    """paddleslim: PaddleSlim 2.6.0's ``MSEChannelWiseWeightObserverLayer`` (Q33, Q34, Q34a).

    Upstream: PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/mse_weight.py``
    (``_cal_abs_max``). The first batch only, by :func:`slim_channel_search`: abs-max per
    channel with "zeros" (``< 1e-15``, :func:`slim_is_zero`) floored to ``float32(1e-8)``;
    candidates ``T(s) * absmax`` in the input dtype ``T`` for the 35 accumulated factors;
    quant-dequant with clip ``[-2**(b-1), 2**(b-1)-1]``; per-channel mean squared error; a
    candidate replaces the running choice only when strictly smaller. float16 raises
    ``RuntimeError`` as on Paddle's CPU (Q18a).
    """

    def _reset(self) -> None:
        super()._reset()
        self._result: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None

    def _observe(self, x: np.ndarray) -> None:
        reject_slim_float16(x, self.public_name)
        if self._result is not None:
            return  # first forward only (Q33, Q34)
        ax = self._resolve_axis(x)
        scales, margins, losses = slim_channel_search(x, ax, self.quant_bits)
        self._result = (scales, margins, losses, x.size // x.shape[ax])

    def _compute(self) -> QParams:
        qmin, qmax = self._grid()
        assert self._result is not None
        scales, margins, losses, n = self._result
        qp = QParams(scales.astype(np.float32), np.zeros(scales.shape, np.int64), qmin, qmax,
                     self.quant_bits, self._axis, margin=margins)
        qp.extra.update(losses=losses, bound=decision_bound(n, scales.dtype.type))
        return qp
