"""ONNX Runtime's ``DistributionCalibrater`` bug for bug, and its canonical counterpart.

Upstream: microsoft/onnxruntime ``onnxruntime/python/tools/quantization/calibrate.py``
(``HistogramCollector.compute_distribution``, ``_avg_std``), onnxruntime 1.32. ORT uses it
for float 8 (``compute_scale_zp_float8`` reads ``std``).

On the signed histogram (``_histogram.py``) with float32 edges ``e`` and centres ``v =
fl32((e[:-1] + e[1:]) * 0.5)``: the range is ``(min(e), max(e)) = (-T, T)`` -- the
histogram's range, not the data's; ``scenario="same"``: ``avg = sum(h v) / sum(h)``,
``std = sqrt(sum(h v^2) / sum(h) - avg^2)`` (float64 sums of the float32 products,
returned as float32); ``scenario="p3"``: the same with ``v`` replaced by
``fl32(|v|^(1/3)) * sign(v)`` (``sign(0) = 1``). ORT refuses ``num_bins < 512`` (its class
default, 128, always fails in ``compute_data``; ``create_calibrator`` passes 2048).

Canonical: the exact histogram regridded to ``[-absmax, absmax]``; range ``(-absmax,
absmax)``; the same moments from the exact bin centres in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.observers.onnxruntime._common import count
from refquant.observers.onnxruntime._histogram import HistogramCalibrater, symmetric_grid
from refquant.profiles import CANONICAL, ONNXRUNTIME

__all__ = ["DistributionCalibrater"]

SCENARIOS = ("same", "p3")


def _ort_avg_std(hist: np.ndarray, edges: np.ndarray, p3: bool) -> tuple[np.ndarray, np.ndarray]:
    values = (edges[:-1] + edges[1:]) * 0.5
    with np.errstate(all="ignore"):
        if p3:
            fact = np.abs(values) / values
            fact[np.isnan(fact)] = 1
            fact[np.isinf(fact)] = 1
            values = np.abs(values) ** (1.0 / 3.0) * fact
        avg = (hist * values).sum() / hist.sum()
        std = ((hist * values**2).sum() / hist.sum() - avg**2) ** 0.5
    return np.array(avg, dtype=edges.dtype), np.array(std, dtype=edges.dtype)


class DistributionCalibrater(HistogramCalibrater):
    """ORT's ``DistributionCalibrater`` on arrays (module docstring). Defaults are those of
    ``create_calibrator``: ``num_bins=2048``, ``scenario="same"``."""

    def __init__(self, num_bins: int = 2048, scenario: str = "same", *,
                 ignore_nonfinite: bool = False, profile: str = "onnxruntime") -> None:
        self.num_bins = count(num_bins, "num_bins", 512)
        if not isinstance(scenario, str) or scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")
        self.scenario = scenario
        self._check_profile(ignore_nonfinite)
        self._init_state()

    def config(self) -> dict[str, Any]:
        return {"num_bins": self.num_bins, "scenario": self.scenario}

    def compute_avg_std(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError


class _OrtDistribution(DistributionCalibrater, profile=ONNXRUNTIME):
    def compute_data(self) -> tuple[np.ndarray, np.ndarray]:
        """ORT's ``(lowest, highest)``: the histogram's edges' extremes (float32)."""
        st = self._ort_ready()
        assert st.edges is not None
        return np.array(st.edges.min(), np.float32), np.array(st.edges.max(), np.float32)

    def compute_avg_std(self) -> tuple[np.ndarray, np.ndarray]:
        """ORT's ``(avg, std)`` (float32 0-d arrays)."""
        st = self._ort_ready()
        assert st.hist is not None and st.edges is not None
        return _ort_avg_std(st.hist, st.edges, self.scenario == "p3")


class _CanonicalDistribution(DistributionCalibrater, profile=CANONICAL):
    def compute_data(self) -> tuple[np.ndarray, np.ndarray]:
        """``(-absmax, absmax)`` of the data (float32)."""
        a = self._exact_ready().abs_max
        return np.array(-a, np.float32), np.array(a, np.float32)

    def compute_avg_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Moments of the exact histogram's bin centres (float64, returned as float32)."""
        counts, edges, _ = symmetric_grid(self._exact_ready())
        v = (edges[:-1] + edges[1:]) * 0.5
        if self.scenario == "p3":
            v = np.cbrt(v)
        w = counts.astype(np.float64)
        avg = float((w * v).sum() / w.sum())
        var = float((w * (v - avg) ** 2).sum() / w.sum())
        return np.array(avg, np.float32), np.array(var**0.5, np.float32)
