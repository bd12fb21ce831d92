"""ONNX Runtime's ``HistogramCollector`` state, bug for bug, and the shared base of the three
histogram calibrators (entropy, percentile, distribution).

Upstream: microsoft/onnxruntime ``onnxruntime/python/tools/quantization/calibrate.py``
(``HistogramCalibrater.collect_data``, ``HistogramCollector.collect_value``,
``collect_absolute_value``, ``merge_histogram``), onnxruntime 1.32.

One ``collect_data`` call stacks its batches (``np.asarray(list)``: they must share one
shape) and flattens them into one array ``x``; only successive calls are merged. Two states:

*Signed* (entropy, distribution, percentile with ``symmetric=False``): ``min, max =
nanmin(x), nanmax(x)`` (float32; ``0`` for an empty ``x``), ``T = fl32(max(|min|, |max|))``.
The first call stores ``np.histogram(x, num_bins, range=(-T, T))`` (NaN and values outside
the range are not counted; edges float32). A later call with ``T <= T_old`` adds its
histogram on the old range. With ``T > T_old``: if ``T_old == 0`` the new histogram on
``(-T, T)`` with the old bin count gets the old counts added position by position;
otherwise the bin width is kept, ``s = fl32(2 T_old / n)``, ``h = int((T - T_old) // s + 1)``
(float32), ``n' = n + 2h`` bins on ``(-T', T')`` with ``T' = fl32(h s + T_old)``, and the old
counts are added to bins ``h .. n'-h`` -- so the number of bins grows without bound.

*Absolute* (percentile with ``symmetric=True``): the first call stores
``np.histogram(|x|, num_bins)`` on ``[min|x|, max|x|]`` (NaN or Inf raise ``ValueError``);
a later call whose ``nanmax|x|`` exceeds the last edge appends edges
``np.arange(e_last + w, max + w, w)`` (float32, ``w = e1 - e0``), bins ``|x|`` on the
explicit edges and adds the old counts to the first bins. ``min``/``max`` are the signed
``nanmin``/``nanmax`` in both states, merged with Python's ``min``/``max``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from refquant.histogram import ExactHistogram
from refquant.observers.onnxruntime._common import OrtCalibrater, as_batch, nonfinite_mask

__all__ = ["OrtHistogramState", "HistogramCalibrater", "stack"]


def _pymin(a: Any, b: Any) -> Any:
    return b if b < a else a


def _pymax(a: Any, b: Any) -> Any:
    return b if b > a else a


def stack(batches: Any) -> np.ndarray:
    """The batches of one ``collect_data`` call, stacked and flattened as ORT does."""
    arrs = [as_batch(b) for b in list(batches)]
    if not arrs:
        raise ValueError("No data is collected.")
    try:
        return np.asarray(arrs).reshape(-1)
    except ValueError as exc:
        raise ValueError(
            f"the batches of one collect call must share one shape, got "
            f"{sorted({a.shape for a in arrs})}: ORT stacks them with np.asarray and raises "
            f"ValueError ({exc})") from None


def _histogram(x: np.ndarray, bins: Any, rng: Any = None) -> tuple[np.ndarray, np.ndarray]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if rng is None:
                return np.histogram(x, bins=bins)
            return np.histogram(x, bins, range=rng)
    except ValueError as exc:
        raise ValueError(f"x cannot be binned (NaN/Inf or an empty range): ONNX Runtime's "
                         f"np.histogram raises ValueError here ({exc})") from None


class OrtHistogramState:
    """ORT's per-tensor histogram (module docstring): ``hist`` int64, ``edges`` float32,
    ``min``/``max`` float32, ``threshold`` (signed state only)."""

    def __init__(self, num_bins: int, absolute: bool) -> None:
        self.num_bins = num_bins
        self.absolute = absolute
        self.hist: np.ndarray | None = None
        self.edges: np.ndarray | None = None
        self.min: Any = None
        self.max: Any = None
        self.threshold: Any = None

    def add(self, x: np.ndarray) -> None:
        """One ``collect_data`` call's flattened float32 data."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if x.size:
                lo, hi = np.nanmin(x), np.nanmax(x)
            else:
                lo = hi = np.array(0, np.float32)
            with np.errstate(all="ignore"):
                if self.absolute:
                    self._add_absolute(x, lo, hi)
                else:
                    self._add_signed(x, lo, hi)

    def _add_signed(self, x: np.ndarray, lo: Any, hi: Any) -> None:
        t = np.array(_pymax(abs(lo), abs(hi)), dtype=np.float32)
        if self.hist is None:
            self.hist, self.edges = _histogram(x, self.num_bins, (-t, t))
            self.min, self.max, self.threshold = lo, hi, t
            return
        old, t_old = self.hist, self.threshold
        if t <= t_old:
            new, _ = _histogram(x, len(old), (-t_old, t_old))
            self.hist = new + old
        elif t_old == 0:
            new, self.edges = _histogram(x, len(old), (-t, t))
            new += old
            self.hist, self.threshold = new, t
        else:
            n = len(old)
            stride = 2 * t_old / n
            steps = (t - t_old) // stride + 1
            if not np.isfinite(steps):
                exc = ValueError if np.isnan(steps) else OverflowError
                raise exc(
                    f"ORT's histogram cannot grow from threshold {float(t_old)!r} to "
                    f"{float(t)!r} (the bin count {float(steps)!r} is not finite): "
                    f"ONNX Runtime raises {exc.__name__} here (int() of it)")
            half = int(steps)
            grown = n + 2 * half
            t_new = half * stride + t_old
            new, self.edges = _histogram(x, grown, (-t_new, t_new))
            new[half:grown - half] += old
            self.hist, self.threshold = new, t_new
        self.min, self.max = _pymin(self.min, lo), _pymax(self.max, hi)

    def _add_absolute(self, x: np.ndarray, lo: Any, hi: Any) -> None:
        a = np.absolute(x)
        if self.hist is None:
            hist, edges = _histogram(a, self.num_bins)
            self.hist, self.edges = hist, edges.astype(np.float32)
            self.min, self.max = lo, hi
            return
        assert self.edges is not None
        if a.size == 0:
            raise ValueError("an empty batch after the first one: ONNX Runtime's np.nanmax "
                             "raises ValueError (zero-size array) here")
        edges = self.edges
        amax = np.nanmax(a)
        if amax > edges[-1]:
            width = edges[1] - edges[0]
            try:
                more = np.arange(edges[-1] + width, amax + width, width)
            except (ValueError, MemoryError) as exc:
                raise ValueError(f"ORT's histogram cannot grow to {float(amax)!r}: np.arange "
                                 f"raises {type(exc).__name__} ({exc})") from None
            edges = np.hstack((edges, more))
        hist, edges = _histogram(a, edges)
        hist[:len(self.hist)] += self.hist
        self.hist, self.edges = hist, edges.astype(np.float32)
        self.min, self.max = _pymin(self.min, lo), _pymax(self.max, hi)


class HistogramCalibrater(OrtCalibrater):
    """What the histogram calibrators share: ORT's state (``profile="onnxruntime"``) or an
    :class:`~refquant.histogram.ExactHistogram` (``profile="canonical"``)."""

    #: whether the ORT state bins ``|x|`` (percentile with symmetric=True)
    _absolute = False
    num_bins: int

    def _init_state(self) -> None:
        if self.rules.exact_merge:
            self._exact = ExactHistogram(self.num_bins, symmetric=self._absolute)
            self._n = 0
        else:
            self._state = OrtHistogramState(self.num_bins, self._absolute)

    @property
    def state(self) -> OrtHistogramState:
        """ORT's histogram state (``profile="onnxruntime"``)."""
        return self._state

    @property
    def exact(self) -> ExactHistogram:
        """The exact histogram (``profile="canonical"``)."""
        return self._exact

    def collect(self, batches: Any) -> None:
        """One ``collect_data`` call whose reader yields ``batches`` in order."""
        if self.rules.exact_merge:
            for b in list(batches):
                arr = nonfinite_mask(as_batch(b).reshape(-1), self.ignore_nonfinite,
                                     self.public_name)
                self._exact.add(arr)
                self._n += 1
            return
        self._state.add(stack(batches))

    def _merge(self, other: Any) -> None:
        self._exact.merge(other._exact)
        self._n += other._n

    def _ort_ready(self) -> OrtHistogramState:
        st = self._state
        if st.hist is None:
            raise ValueError("Histogram has not been collected. Please run collect() first.")
        return st

    def _exact_ready(self) -> ExactHistogram:
        if self._exact.total == 0:
            raise ValueError(f"{self.public_name} has seen no finite value: nothing to "
                             "calibrate")
        return self._exact


def symmetric_grid(h: ExactHistogram) -> tuple[np.ndarray, np.ndarray, int]:
    """``h`` regridded to cover ``[-absmax, absmax]``: (counts, float64 edges, index of the
    bin whose left edge is 0). Exact: whole bins fold (:meth:`ExactHistogram.regrid`)."""
    g = h.copy()
    a = g.abs_max
    g.regrid(min(g.min, -a), max(g.max, a))
    return g.counts, g.edges(), -g.offset
