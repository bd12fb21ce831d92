"""ONNX Runtime's ``MinMaxCalibrater`` bug for bug, and its canonical counterpart.

Upstream: microsoft/onnxruntime ``onnxruntime/python/tools/quantization/calibrate.py``
(``MinMaxCalibrater.collect_data``, ``compute_data``, ``merge_range``), onnxruntime 1.32.

ORT appends ``ReduceMin``/``ReduceMax`` to each tensor. One ``collect_data(reader)`` call
(:meth:`MinMaxCalibrater.collect`; :meth:`~OrtCalibrater.observe` is a call with one batch):

* every batch gives ``(min, max)`` in float32 (an empty batch gives ``(+inf, -inf)``);
* with ``max_intermediate_outputs = k``: whenever ``k`` batches are pending they are
  **discarded** (never folded into the range); if nothing is pending at the end and no range
  exists yet, ``ValueError("No data is collected.")``;
* the pending batches are reduced with ``nanmin``/``nanmax`` over batches, or -- with
  ``moving_average`` -- with ``nanmean`` (a plain mean of the batch extremes: no averaging
  constant inside one call);
* ``symmetric``: ``m = nanmax(|min|, |max|)``, range ``(-m, m)``;
* the call's range is folded into the stored one: ``moving_average``:
  ``old + c * (new - old)`` in float32; otherwise Python's ``min``/``max``.

``compute_data()`` returns the stored ``(low, high)``, float32 arrays of shape ``(1,)``.

NaN: ORT's vectorised ``ReduceMin``/``ReduceMax`` then return values that depend on the NaN's
position and on the CPU's vector width (measured: ``[1..8]`` with a NaN at index 1 gives
``max = 7``), so the ``onnxruntime`` profile refuses NaN (``ValueError``); ``+-inf`` pass
through as in ORT. The sign of a zero extreme also depends on the vector width in ORT;
refquant returns ``+0.0``.

Canonical (``profile="canonical"``): the exact min and max of all data (order-free,
mergeable); ``symmetric`` gives ``(-absmax, absmax)``; ``moving_average`` and
``max_intermediate_outputs`` are refused (order-dependent by definition).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.observers.onnxruntime._common import (
    OrtCalibrater,
    as_batch,
    count,
    flag,
    nonfinite_mask,
    real_number,
)
from refquant.profiles import CANONICAL, ONNXRUNTIME

__all__ = ["MinMaxCalibrater"]


class MinMaxCalibrater(OrtCalibrater):
    """ORT's ``MinMaxCalibrater`` on arrays (module docstring)."""

    def __init__(self, symmetric: bool = False, moving_average: bool = False,
                 averaging_constant: float = 0.01, max_intermediate_outputs: int | None = None,
                 *, ignore_nonfinite: bool = False, profile: str = "onnxruntime") -> None:
        self.symmetric = flag(symmetric, "symmetric")
        self.moving_average = flag(moving_average, "moving_average")
        self.averaging_constant = real_number(averaging_constant, "averaging_constant")
        if self.moving_average and not 0 <= self.averaging_constant <= 1:
            raise ValueError(f"averaging_constant must be in [0, 1], got {averaging_constant!r}")
        self.max_intermediate_outputs = (None if max_intermediate_outputs is None else
                                         count(max_intermediate_outputs,
                                               "max_intermediate_outputs", 1))
        self._check_profile(ignore_nonfinite)
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None

    def config(self) -> dict[str, Any]:
        return {"symmetric": self.symmetric, "moving_average": self.moving_average,
                "averaging_constant": self.averaging_constant,
                "max_intermediate_outputs": self.max_intermediate_outputs}

    def compute_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The calibrated ``(low, high)`` (float32 arrays of shape ``(1,)``, fresh copies)."""
        if self.low is None or self.high is None:
            raise ValueError("No data is collected.")
        return self.low.copy(), self.high.copy()

    def __repr__(self) -> str:
        return (f"{self.public_name}(profile={self.profile!r}, "
                + ", ".join(f"{k}={v!r}" for k, v in self.config().items())
                + f", low={self.low}, high={self.high})")


def _pos_zero(v: np.ndarray) -> np.ndarray:
    return np.where(v == 0, np.float32(0), v).astype(np.float32)


class _OrtMinMax(MinMaxCalibrater, profile=ONNXRUNTIME):
    def collect(self, batches: Any) -> None:
        """One ``collect_data`` call whose reader yields ``batches`` in order."""
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        for x in list(batches):
            arr = as_batch(x)
            if np.isnan(arr).any():
                raise ValueError(
                    "x holds NaN: ONNX Runtime's ReduceMin/ReduceMax then give results that "
                    "depend on the NaN's position and the CPU's vector width, which refquant "
                    "does not emulate (profile='onnxruntime')")
            if arr.size:
                lo = np.array([arr.min()], np.float32)
                hi = np.array([arr.max()], np.float32)
            else:
                lo = np.array([np.inf], np.float32)
                hi = np.array([-np.inf], np.float32)
            pending.append((_pos_zero(lo), _pos_zero(hi)))
            if len(pending) == self.max_intermediate_outputs:
                pending = []  # ORT clears them without computing a range
        if not pending:
            if self.low is None:
                raise ValueError("No data is collected.")
            return
        mins = [p[0] for p in pending]
        maxs = [p[1] for p in pending]
        with np.errstate(all="ignore"):
            if self.moving_average:
                lo, hi = np.nanmean(mins, axis=0), np.nanmean(maxs, axis=0)
            else:
                lo, hi = np.nanmin(mins, axis=0), np.nanmax(maxs, axis=0)
            if self.symmetric:
                m = np.nanmax([np.abs(lo), np.abs(hi)], axis=0)
                lo, hi = -m, m
            if self.low is None or self.high is None:
                self.low, self.high = lo.astype(np.float32), hi.astype(np.float32)
                return
            if self.moving_average:
                c = self.averaging_constant
                self.low = (self.low + c * (lo - self.low)).astype(np.float32)
                self.high = (self.high + c * (hi - self.high)).astype(np.float32)
            else:  # Python's min/max: the new value only where it compares smaller/larger
                self.low = lo if lo < self.low else self.low
                self.high = hi if hi > self.high else self.high


class _CanonicalMinMax(MinMaxCalibrater, profile=CANONICAL):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.moving_average:
            raise ValueError("moving_average=True depends on batch order; profile='canonical' "
                             "has no moving average")
        if self.max_intermediate_outputs is not None:
            raise ValueError("max_intermediate_outputs drops batches in ORT; profile="
                             "'canonical' takes every batch (pass None)")
        self._min = np.inf
        self._max = -np.inf

    def collect(self, batches: Any) -> None:
        """Fold every batch into the exact min and max (order does not matter)."""
        for x in list(batches):
            arr = nonfinite_mask(as_batch(x).reshape(-1), self.ignore_nonfinite,
                                 "MinMaxCalibrater")
            if arr.size:
                self._min = min(self._min, float(arr.min()))
                self._max = max(self._max, float(arr.max()))
        self._update()

    def _update(self) -> None:
        if self._min > self._max:
            return
        lo, hi = self._min + 0.0, self._max + 0.0
        if self.symmetric:
            m = max(-lo, hi)
            lo, hi = -m, m
        self.low = np.array([lo], np.float32)
        self.high = np.array([hi], np.float32)

    def _merge(self, other: Any) -> None:
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        self._update()
