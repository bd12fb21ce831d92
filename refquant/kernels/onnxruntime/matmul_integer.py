"""ONNX ``MatMulInteger`` as ONNX Runtime's CPU kernel computes it.

Source: ``onnxruntime/core/providers/cpu/quantization/matmul_integer.cc`` (``MatMulInteger``)
calling MLAS ``MlasGemmBatch`` (``onnxruntime/core/mlas/lib/qgemm.cpp``, ``qgemm.h``)::

    y[..., m, n] = sum_k (a[..., m, k] - a_zero_point) * (b[..., k, n] - b_zero_point[n])

in int32 with wrap-around, except that on ``isa="avx2"`` / ``"avx512"`` (emulated from
source) a uint8 ``a`` times an int8 ``b`` sums adjacent K pairs of raw-code products into a
saturating int16 first (see :mod:`refquant.kernels.onnxruntime._gemm`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import zero_point
from ._dispatch import check_isa
from ._gemm import gemm_s32
from ._matmul import column_lengths, matmul_operands

__all__ = ["matmul_integer"]

# Single-row products with zero points 0 and no output processing go to MLAS's GEMV kernel,
# which on VNNI CPUs sums all of K with saturating vpdpbusds (QgemvU8S8KernelAvxVnni.S,
# QgemvU8S8KernelAvx512Vnni.S); |sum| < 2^31 is guaranteed for K <= 2^31 / (255 * 128), or
# when the row sums of a times max |b| stay below 2^31 (otherwise refused).
_GEMV_INT32_SATURATING = frozenset({"avx2-vnni", "avx512-vnni", "amx"})
_GEMV_K_LIMIT = (2**31 - 1) // (255 * 128)


def matmul_integer(
    a: Any, b: Any, a_zero_point: Any = None, b_zero_point: Any = None, *, isa: str = "host",
) -> np.ndarray:
    """``MatMulInteger(a, b, a_zero_point, b_zero_point)`` -> int32.

    ``a``: uint8 or int8 [..., M, K] (1-D allowed as in ``numpy.matmul``); ``b``: uint8 or
    int8 [..., K, N] (int8 when ``a`` is int8). ``a_zero_point``: scalar of ``a``'s dtype;
    ``b_zero_point``: scalar, or [N] per column for a 2-D ``b``, of ``b``'s dtype. ``isa``:
    see :mod:`refquant.kernels.onnxruntime._dispatch`.
    """
    resolved = check_isa(isa)
    ops = matmul_operands(a, b)
    azp = zero_point(a_zero_point, "a_zero_point", ops.a.dtype, "a")
    bzp = zero_point(b_zero_point, "b_zero_point", ops.b.dtype, "b", column_lengths(ops))
    k = ops.a.shape[-1]
    if (resolved in _GEMV_INT32_SATURATING and k > _GEMV_K_LIMIT and ops.a.dtype == np.uint8
            and ops.b.dtype == np.int8 and not azp.any() and not bzp.any()
            and int(ops.a.sum(axis=-1, dtype=np.int64).max()) * int(np.abs(
                ops.b.astype(np.int32)).max()) > 2**31 - 1):
        raise ValueError(
            f"K = {k} > {_GEMV_K_LIMIT} with zero points 0 on isa={resolved!r}: MLAS's VNNI "
            "GEMV kernel (used for single rows) accumulates with saturating vpdpbusds and may "
            "clip at int32; this is not emulated"
        )
    y = gemm_s32(ops.a, ops.b, azp, bzp, resolved)
    assert isinstance(y, np.ndarray)
    return ops.finish(y)
