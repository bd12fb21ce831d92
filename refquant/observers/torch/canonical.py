"""Canonical counterparts of torch.ao's observers: the same decision rules on exact,
mergeable statistics, independent of batch order and split.

* :class:`CanonicalMinMaxObserver` / :class:`CanonicalPerChannelMinMaxObserver`: exact
  running min/max (per channel along ``ch_axis``) -- the statistic torch keeps is already
  order-free; what changes is the input contract (NaN/Inf are refused, or dropped with
  ``ignore_nonfinite=True``, where torch propagates them) and :meth:`merge`.
* :class:`CanonicalHistogramObserver`: torch's L2 range search
  (``HistogramObserver._non_linear_param_search``, pytorch/pytorch
  ``torch/ao/quantization/observer.py``) run in float64 on refquant's
  :class:`~refquant.histogram.ExactHistogram` of ``x`` (power-of-two bin width, exact
  integer counts) instead of torch's re-binned float32 histogram, whose counts depend on the
  order and split of the batches. With ``lower``, ``w`` the grid's left edge and bin width
  and ``c`` the exact cumulative counts, the search steps ``alpha, beta`` by ``1e-5``,
  moves the start bin to the first ``l`` with ``c[l] >= alpha * N`` or the end bin to the
  last ``r`` with ``c[r] <= beta * N``, and stops when the error
  ``sum_j h_j / w * sum over the quantization cells of (d_e**3 - d_b**3) / 3`` grows; the
  range is ``[lower + w * start, lower + w * (end + 1)]`` clipped to the data's
  ``[min, max]`` and rounded outward to float32. The search quantizes onto the
  ``quant_max - quant_min + 1`` levels the result uses (torch: ``2**bits`` of ``dtype``).

The moving-average observers have no order-free counterpart: their statistic is defined by
the batch order.

Scale and zero point then follow torch's ``_calculate_qparams`` (``_qparams.py``), except
that the affine zero point is computed in exact integers (torch's int32 cast wraps for
``qint32``) and a symmetric zero point outside ``[quant_min, quant_max]`` raises
``ValueError``.
``merge(other)`` folds another observer of the same configuration in: observers fed
disjoint batches, merged, equal one observer fed all the batches (``==``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from refquant.histogram import ExactHistogram
from refquant.observers.torch._qparams import PER_CHANNEL, PER_TENSOR, QSpec
from refquant.observers.torch.minmax import _EPS
from refquant.qparams import QParams

__all__ = ["CanonicalMinMaxObserver", "CanonicalPerChannelMinMaxObserver",
           "CanonicalHistogramObserver"]

F32 = np.float32


def _finite_f32(x: Any, ignore_nonfinite: bool) -> np.ndarray:
    """``x`` as float32 (no copy when it already is one) with its NaN/Inf dropped (1-D then)
    when ``ignore_nonfinite``, else refused; the caller's array is never modified."""
    arr = _f32(x)
    if arr.size and np.isfinite(arr.min()) and np.isfinite(arr.max()):
        return arr  # no NaN (it would propagate into the min) and no infinity
    bad = ~np.isfinite(arr)
    if bad.any():
        if not ignore_nonfinite:
            raise ValueError(f"x holds {int(bad.sum())} NaN/Inf value(s); pass "
                             "ignore_nonfinite=True to drop them")
    return arr


def _f32(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"x must be a real array, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):
        return arr.astype(F32, copy=False)


class _Canonical:
    _spec: QSpec
    ignore_nonfinite: bool

    @property
    def quant_min(self) -> int:
        return self._spec.quant_min

    @property
    def quant_max(self) -> int:
        return self._spec.quant_max

    def _check_other(self, other: Any) -> None:
        if type(other) is not type(self):
            raise TypeError(f"other must be a {type(self).__name__}, got "
                            f"{type(other).__name__}")
        if self._config() != other._config():
            raise ValueError(f"cannot merge observers with different configurations: "
                             f"{self._config()} vs {other._config()}")

    def _config(self) -> tuple[Any, ...]:
        s = self._spec
        return (s.dtype, s.qscheme, s.reduce_range, s.quant_min, s.quant_max, float(s.eps))

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _qparams(self, lo: np.ndarray | None, hi: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """torch's scale; the affine zero point ``clamp(qmin - round(min- / scale))`` in
        exact integers (torch casts to int32 first, which wraps); ``ValueError`` for a
        zero point outside ``[quant_min, quant_max]`` (torch's symmetric 128 with a reduced
        ``uint8`` range)."""
        scale, zp = self._spec.calculate(lo, hi)
        if lo is None or hi is None or zp.dtype != np.int64:
            return scale, zp
        qmin, qmax = self.quant_min, self.quant_max
        if self._spec.qscheme.endswith("affine"):
            with np.errstate(all="ignore"):
                q = np.minimum(np.asarray(lo, F32), F32(0)).reshape(-1) / scale
            zp = np.array([min(qmax, max(qmin, qmin - int(np.round(np.float64(v)))))
                           for v in q], np.int64)
        elif np.any((zp < qmin) | (zp > qmax)):
            raise ValueError(f"the symmetric zero point {zp.tolist()} lies outside quant_min"
                             f"..quant_max = {qmin}..{qmax} (dtype {self._spec.dtype!r}, "
                             f"reduce_range={self._spec.reduce_range})")
        return scale, zp

    def compute(self) -> QParams:
        """The same numbers as :class:`QParams` (``convention="step"``); ``ValueError``
        where QParams cannot hold them (as the bug-for-bug classes' ``compute``)."""
        scale, zp = self.calculate_qparams()
        qmin, qmax = self.quant_min, self.quant_max
        bits = max(2, (qmax - qmin).bit_length())
        if bits > 16 or zp.dtype != np.int64 or np.any((zp < qmin) | (zp > qmax)):
            raise ValueError("these qparams do not fit QParams (more than 16 bits, float "
                             "zero points or a zero point outside quant_min..quant_max); "
                             "use calculate_qparams()")
        axis = getattr(self, "ch_axis", None) if self._spec.qscheme in PER_CHANNEL else None
        return QParams(scale, zp, qmin, qmax, bits, axis=axis, convention="step",
                       allow_nonfinite=True)


class CanonicalMinMaxObserver(_Canonical):
    """Exact running min/max, per tensor, with :meth:`merge` (module docstring)."""

    def __init__(self, dtype: str = "quint8", qscheme: str = "per_tensor_affine",
                 reduce_range: bool = False, quant_min: int | None = None,
                 quant_max: int | None = None, eps: float = _EPS, *,
                 ignore_nonfinite: bool = False) -> None:
        if qscheme not in PER_TENSOR:
            raise ValueError(f"qscheme must be one of {PER_TENSOR}, got {qscheme!r}")
        self._spec = QSpec(dtype, qscheme, reduce_range, quant_min, quant_max, eps)
        self.ignore_nonfinite = bool(ignore_nonfinite)
        self.min_val: np.ndarray | None = None
        self.max_val: np.ndarray | None = None

    def observe(self, x: Any) -> None:
        """Fold one batch's finite values into the exact min/max."""
        v = _f32(x)
        if v.size == 0:
            return
        lo, hi = v.min(), v.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            v = _finite_f32(v, self.ignore_nonfinite)
            v = v[np.isfinite(v)]
            if v.size == 0:
                return
            lo, hi = v.min(), v.max()
        self._fold(np.array(lo, F32), np.array(hi, F32))

    def _fold(self, lo: np.ndarray, hi: np.ndarray) -> None:
        if self.min_val is None or self.max_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            self.min_val = np.minimum(self.min_val, lo)
            self.max_val = np.maximum(self.max_val, hi)

    def merge(self, other: CanonicalMinMaxObserver) -> None:
        """Fold ``other``'s statistics in (``other`` unchanged)."""
        self._check_other(other)
        if other.min_val is not None and other.max_val is not None:
            self._fold(other.min_val.copy(), other.max_val.copy())

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """torch's ``_calculate_qparams`` on the exact min/max (exact zero point)."""
        return self._qparams(self.min_val, self.max_val)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, CanonicalMinMaxObserver)
        return (self._config() == other._config()
                and _same(self.min_val, other.min_val) and _same(self.max_val, other.max_val))

    __hash__ = None  # type: ignore[assignment]


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


class CanonicalPerChannelMinMaxObserver(CanonicalMinMaxObserver):
    """Exact running min/max per slice along ``ch_axis``, with :meth:`merge`."""

    def __init__(self, ch_axis: int = 0, dtype: str = "quint8",
                 qscheme: str = "per_channel_affine", reduce_range: bool = False,
                 quant_min: int | None = None, quant_max: int | None = None,
                 eps: float = _EPS, *, ignore_nonfinite: bool = False) -> None:
        if qscheme not in PER_CHANNEL:
            raise ValueError(f"qscheme must be one of {PER_CHANNEL}, got {qscheme!r}")
        if isinstance(ch_axis, bool) or not isinstance(ch_axis, (int, np.integer)):
            raise TypeError(f"ch_axis must be an int, got {ch_axis!r}")
        self._spec = QSpec(dtype, qscheme, reduce_range, quant_min, quant_max, eps)
        self.ch_axis = int(ch_axis)
        self.ignore_nonfinite = bool(ignore_nonfinite)
        self.min_val = self.max_val = None

    def _config(self) -> tuple[Any, ...]:
        return super()._config() + (self.ch_axis,)

    def observe(self, x: Any) -> None:
        """Fold one batch's finite values into the per-channel exact min/max (a channel
        with no finite value keeps its range)."""
        arr = _finite_f32(x, self.ignore_nonfinite)
        if arr.size == 0:
            return
        if not -arr.ndim <= self.ch_axis < arr.ndim:
            raise ValueError(f"ch_axis={self.ch_axis} is out of range for x of shape "
                             f"{arr.shape}")
        y = np.moveaxis(arr, self.ch_axis, 0).reshape(arr.shape[self.ch_axis], -1)
        if y.shape[1] == 0:
            return
        lo, hi = y.min(axis=1).astype(F32), y.max(axis=1).astype(F32)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            with np.errstate(invalid="ignore"):
                fin = np.isfinite(y)
                lo = np.where(fin, y, np.inf).min(axis=1).astype(F32)
                hi = np.where(fin, y, -np.inf).max(axis=1).astype(F32)
        if self.min_val is not None and self.min_val.shape != lo.shape:
            raise ValueError(f"x has {lo.shape[0]} channels along ch_axis={self.ch_axis}, "
                             f"the observer has seen {self.min_val.shape[0]}")
        self._fold(lo, hi)

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """torch's ``_calculate_qparams`` per channel; ``ValueError`` if a channel never
        saw a finite value."""
        if self.min_val is not None and not np.isfinite(self.min_val).all():
            raise ValueError("a channel saw no finite value")
        return self._qparams(self.min_val, self.max_val)


class CanonicalHistogramObserver(_Canonical):
    """torch's histogram search on an exact histogram, with :meth:`merge` (module
    docstring)."""

    def __init__(self, bins: int = 2048, dtype: str = "quint8",
                 qscheme: str = "per_tensor_affine", reduce_range: bool = False,
                 quant_min: int | None = None, quant_max: int | None = None,
                 eps: float = _EPS, *, ignore_nonfinite: bool = False) -> None:
        from refquant.observers.torch.histogram import _DST_BITS
        if qscheme not in PER_TENSOR:
            raise ValueError(f"qscheme must be one of {PER_TENSOR}, got {qscheme!r}")
        self._spec = QSpec(dtype, qscheme, reduce_range, quant_min, quant_max, eps)
        if dtype not in _DST_BITS:
            raise ValueError(f"dtype must be an integer dtype, got {dtype!r}")
        # the levels the result quantizes to (torch uses 2**bits of dtype, whatever
        # reduce_range / quant_min / quant_max say)
        self.dst_nbins = self._spec.quant_max - self._spec.quant_min + 1
        self.ignore_nonfinite = bool(ignore_nonfinite)
        self.hist = ExactHistogram(bins, symmetric=False)

    def _config(self) -> tuple[Any, ...]:
        return super()._config() + (self.hist.bins,)

    def observe(self, x: Any) -> None:
        """Add one batch's finite values to the exact histogram."""
        v = _finite_f32(x, self.ignore_nonfinite).reshape(-1)
        if v.size and not (np.isfinite(v.min()) and np.isfinite(v.max())):
            v = v[np.isfinite(v)]
        if v.size:
            self.hist.add(v)

    def merge(self, other: CanonicalHistogramObserver) -> None:
        """Fold ``other``'s histogram in (exact; ``other`` unchanged)."""
        self._check_other(other)
        self.hist.merge(other.hist)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, CanonicalHistogramObserver)
        return self._config() == other._config() and self.hist == other.hist

    __hash__ = None  # type: ignore[assignment]

    def _error(self, counts: np.ndarray, width: float, start: int, end: int) -> float:
        bins = counts.size
        dbw = width * (end - start + 1) / self.dst_nbins
        if dbw == 0.0:
            return 0.0
        begin = (np.arange(bins, dtype=np.float64) - start) * width
        stop = begin + width
        top = self.dst_nbins - 1
        b0 = np.clip(np.floor(begin / dbw), 0, top)
        b1 = np.clip(np.floor(stop / dbw), 0, top)
        density = counts / width

        def norm(d0: Any, d1: Any) -> Any:
            return (d1 ** 3 - d0 ** 3) / 3.0

        terms = (density * norm(begin - (b0 + 0.5) * dbw, dbw / 2)
                 + (b1 - b0 - 1) * density * norm(-dbw / 2, dbw / 2)
                 + density * norm(-dbw / 2, stop - (b1 * dbw + dbw / 2)))
        return math.fsum(terms.tolist())

    def search(self) -> tuple[float, float]:
        """The searched range ``(new_min, new_max)`` as float64 (module docstring)."""
        h = self.hist
        start, end = self._search_bins()
        lo = max(h.lower + h.width * start, h.min)
        hi = min(h.lower + h.width * (end + 1), h.max)
        return lo, max(lo, hi)

    def _search_bins(self) -> tuple[int, int]:
        """torch's search on the exact counts: the chosen ``(start_bin, end_bin)``."""
        h = self.hist
        counts = h.counts.astype(np.float64)
        csum = np.cumsum(h.counts)
        total = int(csum[-1])
        bins = h.bins
        alpha, beta, start, end = 0.0, 1.0, 0, bins - 1
        norm_min = math.inf
        while alpha < beta:
            next_alpha, next_beta = alpha + 1e-5, beta - 1e-5
            left, right = start, end
            if start < end:
                left = min(end, max(start, int(np.searchsorted(csum, next_alpha * total,
                                                               side="left"))))
            if left == start:  # only beta steps on until the end bin can move
                c_end = int(csum[end])
                while alpha < beta and (start == end or not c_end > (beta - 1e-5) * total):
                    beta = beta - 1e-5
                if not alpha < beta:
                    break
                next_beta = beta - 1e-5
            if start < end:
                right = max(start, min(end, int(np.searchsorted(csum, next_beta * total,
                                                                side="right")) - 1))
            next_start, next_end = start, end
            if left - start > end - right:
                next_start, alpha = left, next_alpha
            else:
                next_end, beta = right, next_beta
            if next_start == start and next_end == end:
                continue
            err = self._error(counts, h.width, next_start, next_end)
            if err > norm_min:
                break
            norm_min, start, end = err, next_start, next_end
        return start, end

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """torch's ``_calculate_qparams`` on the searched range (rounded outward to
        float32); ``([1.0], [0])`` with a warning before any data."""
        if self.hist.total == 0:
            warnings.warn("must run observer before calling calculate_qparams. Returning "
                          "default scale and zero point", UserWarning, stacklevel=2)
            return np.ones(1, F32), np.zeros(1, np.int64)
        lo, hi = self.search()
        lo32, hi32 = F32(lo), F32(hi)
        if float(lo32) > lo:
            lo32 = np.nextafter(lo32, F32(-np.inf))
        if float(hi32) < hi:
            hi32 = np.nextafter(hi32, F32(np.inf))
        return self._qparams(np.array(lo32), np.array(hi32))
