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

from ..._validation import _describe, native
from ._common import F32, scale, zero_point
from ._dispatch import check_isa
from ._gemm import gemm_s32
from ._matmul import column_lengths, matmul_operands

__all__ = ["matmul_integer_to_float"]


def _bias(bias: Any, n: int) -> np.ndarray | None:
    if bias is None:
        return None
    if not isinstance(bias, (np.ndarray, np.generic)):
        raise TypeError(f"bias must be a float32 NumPy array of shape ({n},), got "
                        f"{_describe(bias)}")
    arr = native(np.asarray(bias))
    if arr.dtype != np.float32:
        raise TypeError(f"bias must have dtype float32, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"bias must have shape ({n},) (one value per column of b), got "
                         f"shape {arr.shape}")
    return arr


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
    ops = matmul_operands(a, b)
    lengths = column_lengths(ops)
    sa = scale(a_scale, "a_scale")
    sb = scale(b_scale, "b_scale", lengths)
    azp = zero_point(a_zero_point, "a_zero_point", ops.a.dtype, "a")
    bzp = zero_point(b_zero_point, "b_zero_point", ops.b.dtype, "b", lengths)
    bias_arr = _bias(bias, ops.n)
    acc = gemm_s32(ops.a, ops.b, azp, bzp, resolved)
    assert isinstance(acc, np.ndarray)
    with np.errstate(over="ignore"):
        mult = (sa * sb).astype(F32)
        y = acc.astype(F32) * mult
        if bias_arr is not None:
            y = (y + bias_arr).astype(F32)
    return ops.finish(y.astype(F32))
