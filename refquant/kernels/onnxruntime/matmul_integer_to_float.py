"""``com.microsoft.MatMulIntegerToFloat`` as ONNX Runtime's CPU kernel computes it.

ORT's default session turns ``DequantizeLinear -> MatMul`` into this operator. Source:
``onnxruntime/contrib_ops/cpu/quantization/dynamic_quantize_matmul.cc``
(``MatMulIntegerToFloatBase::ComputeCommon``) and MLAS
``MLAS_QGEMM_SCALE_BIAS_OUTPUT_PROCESSOR`` (``onnxruntime/core/mlas/lib/qpostprocessor.cpp``)::

    acc[m, n] = the int32 GEMM of :mod:`._gemm` (pair saturation on "avx2" / "avx512")
    mult[n]   = fl32(a_scale * b_scale[n])
    y[m, n]   = fl32(float32(acc[m, n]) * mult[n])          # cvtdq2ps, mulps
    y[m, n]   = fl32(y[m, n] + bias[n])                      # addps, only with a bias
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import F32, vector
from ._dispatch import check_isa
from ._gemm import gemm_s32
from ._matmul import quantized_operands

__all__ = ["matmul_integer_to_float"]


def matmul_integer_to_float(
    a: Any,
    b: Any,
    a_scale: Any,
    b_scale: Any,
    a_zero_point: Any = None,
    b_zero_point: Any = None,
    bias: Any = None,
    *,
    isa: str = "host",
) -> np.ndarray:
    """``MatMulIntegerToFloat(a, b, a_scale, b_scale, a_zero_point, b_zero_point, bias)``.

    ``a``: uint8 or int8 [..., M, K]; ``b``: uint8 or int8 [..., K, N] (int8 when ``a`` is).
    ``a_scale``: float32 scalar; ``b_scale``: float32 scalar or [N] (2-D ``b``);
    zero points as in :func:`~refquant.kernels.onnxruntime.matmul_integer`; ``bias``: float32
    [N] or None. Returns float32 [..., M, N].
    """
    resolved = check_isa(isa)
    ops, sa, sb, azp, bzp = quantized_operands(a, b, a_scale, a_zero_point, b_scale,
                                               b_zero_point)
    bias_arr = vector(bias, "bias", np.float32, ops.n, "one value per column of b")
    acc = gemm_s32(ops.a, ops.b, azp, bzp, resolved)
    assert isinstance(acc, np.ndarray)
    with np.errstate(over="ignore"):
        mult = (sa * sb).astype(F32)
        y = acc.astype(F32) * mult
        if bias_arr is not None:
            y = (y + bias_arr).astype(F32)
    return ops.finish(y.astype(F32))
