"""ONNX Runtime's ``PercentileCalibrater`` bug for bug, and its canonical counterpart.

Upstream: microsoft/onnxruntime ``onnxruntime/python/tools/quantization/calibrate.py``
(``HistogramCollector.compute_percentile``), onnxruntime 1.32.

``symmetric=True`` collects the absolute histogram, ``False`` the signed one
(``_histogram.py``). With ``cdf = cumsum(hist / total)`` (float64) and ``e`` the float32
edges:

* symmetric: ``i = searchsorted(cdf, percentile / 100)``, range ``(-e[i], e[i])``;
* otherwise: ``c = (100 - percentile) / 200``, range ``(e[searchsorted(cdf, c)],
  e[searchsorted(cdf, 1 - c)])``;

then ``low`` is raised to the data's signed ``min`` and ``high`` lowered to its ``max``
where they pass them -- so a "symmetric" range of non-negative data is ``(min, e[i])``.
``e[i]`` is the *left* edge of the bin in which the cdf reaches the percentile.

Canonical: the exact histogram (of ``|x|`` when symmetric); the first bin whose exact count
``cumsum`` reaches ``percentile / 100 * total`` (rational arithmetic), its *right* edge;
symmetric ranges are ``(-t, t)`` with ``t <= absmax``, others clipped to ``[min, max]``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from refquant.observers.onnxruntime._common import count, flag, real_number
from refquant.observers.onnxruntime._histogram import HistogramCalibrater
from refquant.profiles import CANONICAL, ONNXRUNTIME

__all__ = ["PercentileCalibrater"]


class PercentileCalibrater(HistogramCalibrater):
    """ORT's ``PercentileCalibrater`` on arrays (module docstring). Defaults are those of
    ``create_calibrator`` (``quantize_static``): ``num_bins=2048``, ``percentile=99.999``,
    ``symmetric=True`` (the class itself defaults to ``symmetric=False``)."""

    def __init__(self, num_bins: int = 2048, percentile: float = 99.999,
                 symmetric: bool = True, *, ignore_nonfinite: bool = False,
                 profile: str = "onnxruntime") -> None:
        self.num_bins = count(num_bins, "num_bins", 2)
        self.percentile = real_number(percentile, "percentile")
        if not 0 <= self.percentile <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {percentile!r}")
        self.symmetric = flag(symmetric, "symmetric")
        self._absolute = self.symmetric
        self._check_profile(ignore_nonfinite)
        self._init_state()

    def config(self) -> dict[str, Any]:
        return {"num_bins": self.num_bins, "percentile": self.percentile,
                "symmetric": self.symmetric}


class _OrtPercentile(PercentileCalibrater, profile=ONNXRUNTIME):
    def compute_data(self) -> tuple[np.ndarray, np.ndarray]:
        """ORT's percentile range ``(low, high)`` (float32 0-d arrays)."""
        st = self._ort_ready()
        hist, edges = st.hist, st.edges
        assert hist is not None and edges is not None
        with np.errstate(all="ignore"):
            cdf = np.cumsum(hist / hist.sum())
        if self.symmetric:
            i = np.searchsorted(cdf, self.percentile / 100.0)
            low, high = -np.array(edges[i], edges.dtype), np.array(edges[i], edges.dtype)
        else:
            cut = (100.0 - self.percentile) / 200.0
            low = np.array(edges[np.searchsorted(cdf, cut)], edges.dtype)
            high = np.array(edges[np.searchsorted(cdf, 1.0 - cut)], edges.dtype)
        if low < st.min:
            low = st.min
        if high > st.max:
            high = st.max
        return np.array(low, np.float32), np.array(high, np.float32)


def _first_reaching(cum: np.ndarray, need: Fraction) -> int:
    """Smallest ``i`` with ``cum[i] >= need`` (``cum`` non-decreasing integers)."""
    return int(np.searchsorted(cum, math.ceil(need), side="left"))


class _CanonicalPercentile(PercentileCalibrater, profile=CANONICAL):
    def compute_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact percentile range (module docstring)."""
        h = self._exact_ready()
        cum = np.cumsum(h.counts)
        edges = h.edges()
        total = int(h.total)
        last = h.bins - 1
        if self.symmetric:
            need = Fraction(self.percentile) / 100 * total
            t = min(float(edges[min(_first_reaching(cum, need), last) + 1]), h.abs_max)
            return np.array(-t, np.float32), np.array(t, np.float32)
        cut = Fraction(100 - Fraction(self.percentile)) / 200
        i_lo = min(_first_reaching(cum, cut * total), last)
        i_hi = min(_first_reaching(cum, (1 - cut) * total), last)
        low = max(float(edges[i_lo]), h.min)
        high = min(float(edges[i_hi + 1]), h.max)
        return np.array(low, np.float32), np.array(high, np.float32)
