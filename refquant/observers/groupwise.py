"""GroupWiseWeightObserver: abs-max per group of rows (``.../observers/groupwise.py``).

Layout (PaddleSlim's): a 2-D Linear weight ``W[in, out]`` is cut along axis 0 into
``in / group_size`` groups of consecutive rows; the scale of group ``g`` and column ``j`` is
``max_{i in group g} |W[i, j]|``, so the scales have shape ``[in / group_size, out]``.
``QParams.axis`` is 1 (the out-feature axis PaddleSlim's ``quant_axis()`` reports) and
``extra['group_size']`` holds the group size.

canonical
    Any positive ``group_size`` dividing the rows; running max over every observed batch
    (merge = max); an all-zero group gets 0. Bad shapes raise ``ValueError``.
paddleslim
    PaddleSlim 2.6.0's ``GroupWiseWeightObserverLayer`` (items 35, 36): ``group_size`` must
    be 64 or 128, the rows a multiple of it and the weight 2-D -- checked in that order and
    raised as ``AssertionError`` with PaddleSlim's messages, as PaddleSlim does; each batch
    *replaces* the statistics (no running max) and the first :meth:`compute` caches the
    scales (``scales()``'s cache), so later batches do not change the result; maxima are
    taken in the input dtype, cast to float32, "zeros" (below ``1e-15``: Paddle's float ``==``
    is tolerant, :func:`refquant.observers.channel_wise.slim_is_zero`) replaced by
    ``float32(1e-8)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_int
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
    """Group-wise abs-max weight observer (see module docstring for both profiles)."""

    min_ndim = 1

    def __init__(
        self,
        quant_bits: int = 8,
        group_size: int = 128,
        *,
        profile: Profile = "canonical",
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
        self._cached: QParams | None = None

    def _check(self, x: np.ndarray) -> None:
        g = self.group_size
        if self.profile == "paddleslim":
            if g not in (64, 128):
                raise AssertionError("group_size only support 64 or 128")
            if x.shape[0] % g != 0:
                raise AssertionError("group_size must be a factor of input channels")
            if x.ndim != 2:
                raise AssertionError("Currently only support 2D tensor")
            reject_slim_float16(x, "GroupWiseWeightObserver")  # paddle.abs comes after
            return
        if x.ndim != 2:
            raise ValueError(f"x must be a 2-D [in, out] weight, got shape {x.shape}")
        if x.shape[0] % g != 0:
            raise ValueError(
                f"group_size={g} does not divide the {x.shape[0]} rows of x (shape {x.shape})"
            )
        if self._max is not None and self._max.shape != (x.shape[0] // g, x.shape[1]):
            raise ValueError(f"x shape {x.shape} differs from earlier batches")

    def check_weight(self, shape: Any, dtype: Any = np.float32) -> None:
        """Raise what :meth:`observe` raises for a weight of this shape and dtype, if anything.

        The shape rules (and, for paddleslim, PaddleSlim's ``AssertionError`` messages and
        the float16 ``RuntimeError``) without the values; nothing is recorded.
        """
        self._check(self._shape_only(shape, dtype))

    def _observe(self, x: np.ndarray) -> None:
        self._check(x)
        if self.profile == "canonical" and self.ignore_nonfinite:
            x = np.where(np.isfinite(x), x, 0)
        self._fold_group_max(group_abs_max(x, self.group_size))

    def _fold_group_max(self, m: np.ndarray) -> None:
        if self.profile == "paddleslim":
            with np.errstate(over="ignore"):
                m32 = m.astype(np.float32)
            self._max = np.where(slim_is_zero(m32), np.float32(1e-8), m32)
            return
        m64 = m.astype(np.float64)
        self._max = m64 if self._max is None else np.maximum(self._max, m64)

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
        (item 35); after the first :meth:`compute` the cached value stays (item 36).
        """
        batches = self._check_batches(batches)
        arr = self._stat_array(maxima, "maxima", 2)
        if self.profile == "paddleslim":
            self._check_nonnegative(arr, "maxima")
        self.check_weight((arr.shape[0] * self.group_size, arr.shape[1]), arr.dtype)
        if self.profile == "canonical" and not (np.all(np.isfinite(arr)) and np.all(arr >= 0)):
            raise ValueError("maxima must be finite and >= 0 (group-wise abs-max values)")
        self._fold_group_max(arr)
        self._ingest(batches)

    def _state(self) -> dict[str, Any]:
        """``abs_max``: the group-wise maxima (copy, or None before any batch)."""
        return {"abs_max": None if self._max is None else self._max.copy()}

    def _compute(self) -> QParams:
        qmin, qmax = integer_range(self.quant_bits)
        if self.profile == "paddleslim" and self._cached is not None:
            return self._cached  # scales() caches its first value (item 36)
        assert self._max is not None
        qp = QParams(self._max, np.zeros(self._max.shape, np.int64), qmin, qmax,
                     self.quant_bits, 1)
        qp.extra["group_size"] = self.group_size
        if self.profile == "paddleslim":
            self._cached = qp
        return qp

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, GroupWiseWeightObserver) and other._max is not None
        if self._max is None:
            self._max = other._max.copy()
        elif self._max.shape != other._max.shape:
            raise ValueError("cannot merge observers that saw differently shaped weights")
        else:
            self._max = np.maximum(self._max, other._max)
