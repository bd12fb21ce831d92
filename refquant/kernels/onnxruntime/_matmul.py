"""Shape handling shared by the MatMul-like kernels (ORT's ``MatMulComputeHelper``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import CODE_TYPES, as_codes, scale, zero_point


@dataclass(frozen=True)
class MatMulOperands:
    a: np.ndarray  # [..., M, K]
    b: np.ndarray  # [..., K, N]
    n: int
    squeeze_m: bool
    squeeze_n: bool
    b_is_2d: bool

    def finish(self, y: np.ndarray) -> np.ndarray:
        """The output with the dimensions of 1-D operands removed, as ``numpy.matmul``."""
        if self.squeeze_n:
            y = y[..., 0]
        if self.squeeze_m:
            y = y[..., 0, :] if not self.squeeze_n else y[..., 0]
        return y


def matmul_operands(a: object, b: object, a_name: str = "a", b_name: str = "b",
                    signed_a_needs_signed_b: bool = True) -> MatMulOperands:
    """Checked u8/s8 operands of a MatMul-like kernel, promoted to at least 2-D.

    Batch dimensions broadcast as in ``numpy.matmul``. ONNX Runtime registers int8 ``a``
    only with int8 ``b`` (``TypeError`` otherwise).
    """
    aa = as_codes(a, a_name)
    bb = as_codes(b, b_name)
    if signed_a_needs_signed_b and aa.dtype == np.int8 and bb.dtype != np.int8:
        raise TypeError(
            f"{b_name} must be int8 when {a_name} is int8 (ONNX Runtime has no int8 x uint8 "
            f"kernel), got dtype {bb.dtype}"
        )
    if aa.ndim == 0 or bb.ndim == 0:
        raise ValueError(
            f"{a_name} and {b_name} must have at least 1 dimension, got shapes {aa.shape} "
            f"and {bb.shape}"
        )
    squeeze_m, squeeze_n = aa.ndim == 1, bb.ndim == 1
    b_is_2d = bb.ndim == 2
    a2 = aa[None, :] if squeeze_m else aa
    b2 = bb[:, None] if squeeze_n else bb
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(
            f"{a_name} shape {aa.shape} and {b_name} shape {bb.shape} do not match for MatMul "
            f"(K = {a2.shape[-1]} vs {b2.shape[-2]})"
        )
    try:
        np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(
            f"batch dimensions of {a_name} {aa.shape} and {b_name} {bb.shape} do not broadcast"
        ) from None
    return MatMulOperands(a2, b2, b2.shape[-1], squeeze_m, squeeze_n, b_is_2d)


def column_lengths(ops: MatMulOperands) -> tuple[int, ...]:
    """Lengths a per-column quantization parameter of ``b`` may have (2-D ``b`` only)."""
    return (ops.n,) if ops.b_is_2d else ()


def quantized_operands(
    a: object, b: object, a_scale: object, a_zero_point: object, b_scale: object,
    b_zero_point: object,
) -> tuple[MatMulOperands, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(operands, a_scale, b_scale, a_zero_point, b_zero_point)`` of a quantized
    MatMul-like kernel, checked in that order: ``a`` parameters per tensor, ``b``
    parameters per tensor or per column of a 2-D ``b``; zero points as int64."""
    ops = matmul_operands(a, b)
    lengths = column_lengths(ops)
    sa = scale(a_scale, "a_scale")
    sb = scale(b_scale, "b_scale", lengths)
    azp = zero_point(a_zero_point, "a_zero_point", ops.a.dtype, "a")
    bzp = zero_point(b_zero_point, "b_zero_point", ops.b.dtype, "b", lengths)
    return ops, sa, sb, azp, bzp


__all__ = ["CODE_TYPES", "MatMulOperands", "column_lengths", "matmul_operands",
           "quantized_operands"]
