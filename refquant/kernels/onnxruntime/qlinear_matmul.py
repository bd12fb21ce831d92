"""ONNX ``QLinearMatMul`` as ONNX Runtime's CPU kernel computes it.

Source: ``onnxruntime/core/providers/cpu/quantization/quantize_linear_matmul.cc``
(``QLinearMatMul::Compute``) with MLAS ``MLAS_QGEMM_REQUANT_OUTPUT_PROCESSOR``, i.e.
``MlasRequantizeOutput`` (``onnxruntime/core/mlas/lib/quantize.cpp``)::

    acc[m, n] = the int32 GEMM of :mod:`._gemm` (pair saturation on "avx2" / "avx512")
    s[n]      = fl32(fl32(a_scale * b_scale[n]) / y_scale)
    y[m, n]   = clip(rne(min(max(fl32(float32(acc) * s[n]), qmin - zp), qmax - zp)) + zp)

with ``zp = y_zero_point`` and ``[qmin, qmax]`` the range of the output type, which is
``a``'s type (uint8 kernel: uint8 ``a`` with uint8 or int8 ``b``; int8 kernel: all int8).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import F32, requantize, scale, zero_point
from ._dispatch import check_isa
from ._gemm import gemm_s32
from ._matmul import quantized_operands

__all__ = ["qlinear_matmul"]


def qlinear_matmul(
    a: Any,
    a_scale: Any,
    a_zero_point: Any,
    b: Any,
    b_scale: Any,
    b_zero_point: Any,
    y_scale: Any,
    y_zero_point: Any,
    *,
    isa: str = "host",
) -> np.ndarray:
    """``QLinearMatMul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
    y_zero_point)`` -> codes of ``a``'s dtype.

    ``b_scale`` / ``b_zero_point`` may be per column ([N]) for a 2-D ``b``; the others are
    scalars. ``y_zero_point`` must have ``a``'s dtype (``None`` means 0 of that dtype).
    """
    resolved = check_isa(isa)
    ops, sa, sb, azp, bzp = quantized_operands(a, b, a_scale, a_zero_point, b_scale,
                                               b_zero_point)
    sy = scale(y_scale, "y_scale")
    yzp = zero_point(y_zero_point, "y_zero_point", ops.a.dtype, "a (the output type)")
    acc = gemm_s32(ops.a, ops.b, azp, bzp, resolved)
    assert isinstance(acc, np.ndarray)
    with np.errstate(over="ignore", under="ignore"):
        out_scale = ((sa * sb).astype(F32) / sy).astype(F32)
    return ops.finish(requantize(acc, out_scale, int(yzp), ops.a.dtype))
