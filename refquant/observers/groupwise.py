"""GroupWiseWeightObserver: abs-max per group of rows.

Upstream: PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/groupwise.py``. Quirk
numbers (Q35, ...) are the rows of docs/divergences.md.

Layout (PaddleSlim's): a 2-D Linear weight ``W[in, out]`` is cut along axis 0 into
``in / group_size`` groups of consecutive rows; the scale of group ``g`` and column ``j`` is
``max_{i in group g} |W[i, j]|``, so the scales have shape ``[in / group_size, out]``.
``QParams.axis`` is 1 (the out-feature axis PaddleSlim's ``quant_axis()`` reports) and
``extra['group_size']`` holds the group size.

canonical (:class:`_CanonicalGroupWise`)
    Any positive ``group_size`` dividing the rows; running max over every observed batch
    (merge = max); an all-zero group gets 0. Bad shapes raise ``ValueError``.
paddleslim (:class:`_SlimGroupWise`)
    PaddleSlim 2.6.0's ``GroupWiseWeightObserverLayer`` (Q35, Q36): ``group_size`` must
    be 64 or 128, the rows a multiple of it and the weight 2-D -- checked in that order and
    raised as ``AssertionError`` with PaddleSlim's messages, as PaddleSlim does; each batch
    *replaces* the statistics (no running max) and the first :meth:`compute` caches the
    scales (``scales()``'s cache), so later batches do not change the result; maxima are
    taken in the input dtype, cast to float32, "zeros" (below ``1e-15``: Paddle's float ``==``
    is tolerant, :func:`refquant.observers.channel_wise.slim_is_zero`) replaced by
    ``float32(1e-8)``.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from .._validation import check_int
from ..profiles import CANONICAL, PADDLESLIM, ProfileRules
from ..qparams import QParams, integer_range
from .base import ObserverBase, Profile
from .channel_wise import slim_is_zero
from .search import reject_slim_float16

__all__ = ["GroupWiseWeightObserver", "group_abs_max"]

_BLOCK = 1 << 18


def group_abs_max(w: np.ndarray, group_size: int) -> np.ndarray:
    """``max |w[g*G:(g+1)*G, j]|`` as an array of shape ``[rows / G, cols]`` in ``w.dtype``.

    Exact (max is exact; NaN propagates). Computed on blocks of whole groups: ``|w|`` into a
    small buffer, then halving folds ``max(a[:, :h], a[:, n-h:n])`` over the rows of each
    group, which are long contiguous vector operations (about one pass over the data).
    """
    G = group_size
    ngroups, cols = w.shape[0] // G, w.shape[1]
    r = w.reshape(ngroups, G, cols)
    out = np.empty((ngroups, cols), dtype=w.dtype)
    step = max(1, _BLOCK // max(1, G * cols))
    for g0 in range(0, ngroups, step):
        a = np.abs(r[g0 : g0 + step])
        n = G
        while n > 1:
            h = n // 2
            np.maximum(a[:, :h], a[:, n - h : n], out=a[:, :h])
            n -= h
        out[g0 : g0 + step] = a[:, 0]
    return out


class GroupWiseWeightObserver(ObserverBase):
    """Group-wise abs-max weight observer: ``S[g, j] = max_{i in group g} |W[i, j]|``.

    ``profile="canonical"`` builds a :class:`_CanonicalGroupWise` (running max over every
    batch, any group size, mergeable), ``profile="paddleslim"`` a :class:`_SlimGroupWise`
    (PaddleSlim's checks, last batch replaces, first result cached); the module docstring
    states both. ``group_size`` is checked here (an integer >= 1) for every profile.
    """

    min_ndim = 1

    def __init__(
        self,
        quant_bits: int = 8,
        group_size: int = 128,
        *,
        profile: Profile | ProfileRules = "canonical",
        ignore_nonfinite: bool = False,
    ) -> None:
        self.group_size = check_int(group_size, "group_size", low=1)
        super().__init__(quant_bits, profile=profile, ignore_nonfinite=ignore_nonfinite)

    def _config(self) -> dict[str, Any]:
        cfg = super()._config()
        cfg["group_size"] = self.group_size
        return cfg

    def _reset(self) -> None:
        self._max: np.ndarray | None = None

    def check_weight(self, shape: Any, dtype: Any = np.float32) -> None:
        """Raise what :meth:`observe` raises for a weight of this shape and dtype, if anything.

        The shape rules (and, for paddleslim, PaddleSlim's ``AssertionError`` messages and
        the float16 ``RuntimeError``) without the values; nothing is recorded.
        """
        self._check(self._shape_only(shape, dtype))

    def _observe(self, x: np.ndarray) -> None:
        self._check(x)
        if self.ignore_nonfinite and self.rules.drops_nonfinite:
            x = np.where(np.isfinite(x), x, 0)
        self._fold_group_max(group_abs_max(x, self.group_size))

    def observe_group_abs_max(self, maxima: Any, *, batches: int = 1) -> None:
        """Fold in the group-wise abs-max of a 2-D ``[in, out]`` weight.

        ``maxima`` has shape ``[in / group_size, out]``: ``maxima[g, j] = max |w[g*G:(g+1)*G,
        j]|`` (:func:`group_abs_max`), exact in the weight's dtype (any device or order).
        The weight's shape is checked as :meth:`observe` checks it (:meth:`check_weight`
        with ``(rows * group_size, cols)`` and the maxima's dtype). Equivalence, bit for
        bit::

            obs.observe(w)  ==  obs.observe_group_abs_max(group_abs_max(w, group_size))

        (canonical with ``ignore_nonfinite``: over the finite values, 0 for none).
        canonical: finite and ``>= 0``; a running max, so ``batches=k`` with the maximum of
        ``k`` batches' maxima equals ``k`` calls. paddleslim: each batch replaces the state
        (Q35); after the first :meth:`compute` the cached value stays (Q36).
        """
        batches = self._check_batches(batches)
        arr = self._stat_array(maxima, "maxima", 2)
        self._check_group_maxima(arr)
        self._fold_group_max(arr)
        self._ingest(batches)

    def _state(self) -> dict[str, Any]:
        """``abs_max``: the group-wise maxima (copy, or None before any batch)."""
        return {"abs_max": None if self._max is None else self._max.copy()}

    def _group_qparams(self) -> QParams:
        qmin, qmax = integer_range(self.quant_bits)
        assert self._max is not None
        qp = QParams(self._max, np.zeros(self._max.shape, np.int64), qmin, qmax,
                     self.quant_bits, 1)
        qp.extra["group_size"] = self.group_size
        return qp

    def _weight_shape(self, maxima: np.ndarray) -> tuple[int, int]:
        """The ``[in, out]`` shape of the weight whose group-wise maxima are ``maxima``."""
        return (maxima.shape[0] * self.group_size, maxima.shape[1])

    @abc.abstractmethod
    def _check(self, x: np.ndarray) -> None:
        """The profile's errors for a weight ``x`` (shape and dtype; values unused)."""

    @abc.abstractmethod
    def _check_group_maxima(self, maxima: np.ndarray) -> None:
        """The errors :meth:`observe_group_abs_max` raises for ``maxima``, in order."""

    @abc.abstractmethod
    def _fold_group_max(self, m: np.ndarray) -> None:
        """Fold one batch's group-wise maxima into the state."""


class _CanonicalGroupWise(GroupWiseWeightObserver, profile=CANONICAL):
    """canonical: ``S[g, j]`` over every observed batch, exactly.

    Any ``group_size`` dividing the rows of a 2-D weight (``ValueError`` otherwise, and for
    a shape that differs from earlier batches). The maxima are exact in the input dtype and
    kept as a float64 running maximum (order-free; ``merge`` takes the maximum); an all-zero
    group gets 0, zero points are 0.
    """

    def _check(self, x: np.ndarray) -> None:
        g = self.group_size
        if x.ndim != 2:
            raise ValueError(f"x must be a 2-D [in, out] weight, got shape {x.shape}")
        if x.shape[0] % g != 0:
            raise ValueError(
                f"group_size={g} does not divide the {x.shape[0]} rows of x (shape {x.shape})"
            )
        if self._max is not None and self._max.shape != (x.shape[0] // g, x.shape[1]):
            raise ValueError(f"x shape {x.shape} differs from earlier batches")

    def _check_group_maxima(self, maxima: np.ndarray) -> None:
        self.check_weight(self._weight_shape(maxima), maxima.dtype)
        if not (np.all(np.isfinite(maxima)) and np.all(maxima >= 0)):
            raise ValueError("maxima must be finite and >= 0 (group-wise abs-max values)")

    def _fold_group_max(self, m: np.ndarray) -> None:
        m64 = m.astype(np.float64)
        self._max = m64 if self._max is None else np.maximum(self._max, m64)

    def _compute(self) -> QParams:
        return self._group_qparams()

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, _CanonicalGroupWise) and other._max is not None
        if self._max is None:
            self._max = other._max.copy()
        elif self._max.shape != other._max.shape:
            raise ValueError("cannot merge observers that saw differently shaped weights")
        else:
            self._max = np.maximum(self._max, other._max)


class _SlimGroupWise(GroupWiseWeightObserver, profile=PADDLESLIM):
    """paddleslim: PaddleSlim 2.6.0's ``GroupWiseWeightObserverLayer`` (Q35, Q35a, Q36).

    Upstream: PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/groupwise.py``
    (``forward``, ``_cal_abs_max``, ``scales``). ``group_size`` must be 64 or 128, the rows a
    multiple of it and the weight 2-D, asserted in that order with PaddleSlim's messages
    (``AssertionError``); float16 raises ``RuntimeError`` as on Paddle's CPU (Q18a). Each
    batch *replaces* the state: the maxima in the input dtype, cast to float32, "zeros"
    (below ``1e-15``, :func:`refquant.observers.channel_wise.slim_is_zero`) replaced by
    ``float32(1e-8)``. The first :meth:`compute` caches its result (``scales()``), so later
    batches do not change it.
    """

    def _reset(self) -> None:
        super()._reset()
        self._cached: QParams | None = None

    def _check(self, x: np.ndarray) -> None:
        g = self.group_size
        if g not in (64, 128):
            raise AssertionError("group_size only support 64 or 128")
        if x.shape[0] % g != 0:
            raise AssertionError("group_size must be a factor of input channels")
        if x.ndim != 2:
            raise AssertionError("Currently only support 2D tensor")
        reject_slim_float16(x, self.public_name)  # paddle.abs comes after

    def _check_group_maxima(self, maxima: np.ndarray) -> None:
        self._check_nonnegative(maxima, "maxima")
        self.check_weight(self._weight_shape(maxima), maxima.dtype)

    def _fold_group_max(self, m: np.ndarray) -> None:
        with np.errstate(over="ignore"):
            m32 = m.astype(np.float32)
        self._max = np.where(slim_is_zero(m32), np.float32(1e-8), m32)

    def _compute(self) -> QParams:
        if self._cached is None:  # scales() caches its first value (Q36)
            self._cached = self._group_qparams()
        return self._cached
