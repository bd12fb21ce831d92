"""ONNX ``DynamicQuantizeLinear`` as ONNX Runtime's CPU kernel computes it.

Source: ``onnxruntime/core/providers/cpu/quantization/dynamicquantizelinear.cc`` with
``GetQuantizationParameter`` and ``ParQuantizeLinearStd`` (``onnxruntime/core/util/qmath.h``)
and MLAS ``MlasQuantizeLinear`` (``onnxruntime/core/mlas/lib/quantize.cpp``), all float32::

    lo = min(min(x), 0);  hi = max(max(x), 0)
    scale = 1 if hi == lo else fl32((hi - lo) / 255)
    zp = rne(clip(fl32(0 - fl32(lo / scale)), 0, 255))
    y = clip(rne(fl32(x / scale)), -zp, 255 - zp) + zp

Min and max are order-free, so ORT's threaded reduction gives the same values. An empty
``x`` gives scale 1 and zero point 0 (MLAS starts the reduction at +-FLT_MAX).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import _describe, native
from ._common import F32, quantize_mlas

__all__ = ["dynamic_quantize_linear"]


def dynamic_quantize_linear(x: Any) -> tuple[np.ndarray, np.float32, np.uint8]:
    """``DynamicQuantizeLinear(x)`` -> ``(y uint8, y_scale float32, y_zero_point uint8)``.

    ``x`` must be a float32 NumPy array without NaN or infinities (``ValueError``): ORT's
    result for those depends on the order of its min/max reduction.
    """
    if not isinstance(x, (np.ndarray, np.generic)):
        raise TypeError(f"x must be a float32 NumPy array, got {_describe(x)}")
    arr = native(np.asarray(x))
    if arr.dtype != np.float32:
        raise TypeError(f"x must have dtype float32, got dtype {arr.dtype}")
    if arr.size and not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise ValueError(f"x must be finite, got {arr.ravel()[i]!r} at flat index {i}")
    lo = min(F32(arr.min()), F32(0)) if arr.size else F32(0)
    hi = max(F32(arr.max()), F32(0)) if arr.size else F32(0)
    with np.errstate(over="ignore"):
        s = F32(1.0) if hi == lo else F32(F32(hi - lo) / F32(255))
    initial = F32(F32(0) - F32(lo / s))
    zp = int(np.rint(min(max(initial, F32(0)), F32(255))))
    y = quantize_mlas(arr, s, zp, np.dtype(np.uint8))
    return y, F32(s), np.uint8(zp)
