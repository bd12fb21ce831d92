"""``com.microsoft.QLinearAdd`` / ``QLinearMul`` as ONNX Runtime's CPU kernels compute them.

Sources: ``onnxruntime/contrib_ops/cpu/quantization/qlinear_binary_op.cc`` (broadcasting:
one MLAS call per span of ORT's ``BroadcastLooper``), MLAS ``qladd.cpp`` /
``intrinsics/avx2/qladd_avx2.cpp`` (the kernel every x86-64 CPU with AVX2 runs) and
``qlmul.cpp`` (SSE2 kernel; no AVX2 version exists). All arithmetic is float32.

QLinearAdd, with ``ra = fl(sa / sc)``, ``rb = fl(sb / sc)`` and the codes ``a``, ``b`` as
floats::

    F = fl(zc - fma(ra, za, fl(rb * zb)))     # the compiler contracts ra*za + rb*zb
    v = fma(a, ra, fma(b, rb, F))
    y = sat8(sat16(rne(v)))                   # cvtps2dq, packs, packus/packs

When ``a`` is one value per span of ORT's broadcast loop (a scalar, or broadcast along the
innermost dimension that is larger than 1), ORT passes ``b`` as MLAS's first operand, which
exchanges the roles of ``a`` and ``b`` in both lines (the fused roundings then differ). The
contraction of ``F`` and of the per-span scalar term (``fma(b, rb, F)`` although the source
writes a separate multiply and add) was established by cases where the two readings give
different codes, checked against ONNX Runtime 1.32 on x86-64.

QLinearMul, with ``r = fl(fl(sa * sb) / sc)``::

    y = sat8(sat16(rne(fl(fl(float32((a - za) * (b - zb)) * r) + float32(zc)))))

``isa`` only checks its argument: every x86-64 variant runs the same kernels. The ARM64
kernels (fixed-point ``QLinearAdd``) are not emulated (``ValueError`` for ``"neon"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import F32, as_codes, fma32, qrange, scale, zero_point
from ._dispatch import check_isa

__all__ = ["qlinear_add", "qlinear_mul"]


def _operands(a: Any, b: Any, isa: str, op: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    if check_isa(isa) == "neon":
        raise ValueError(f"isa='neon': ONNX Runtime's ARM64 {op} kernel is not emulated")
    aa = as_codes(a, "a")
    bb = as_codes(b, "b")
    if aa.dtype != bb.dtype:
        raise TypeError(f"a and b must have the same dtype, got {aa.dtype} and {bb.dtype}")
    try:
        shape = np.broadcast_shapes(aa.shape, bb.shape)
    except ValueError:
        raise ValueError(f"a shape {aa.shape} and b shape {bb.shape} do not broadcast") from None
    return aa, bb, shape


def _span_kind(a_shape: tuple, b_shape: tuple, out: tuple) -> str:
    """Which MLAS call ORT's ``BroadcastLooper`` makes for the innermost span:
    ``"a"`` (a is a scalar per span), ``"b"`` or ``"both"``."""
    if int(np.prod(a_shape)) == 1:
        return "a"
    if int(np.prod(b_shape)) == 1:
        return "b"
    r = len(out)
    pa = (1,) * (r - len(a_shape)) + tuple(a_shape)
    pb = (1,) * (r - len(b_shape)) + tuple(b_shape)
    for i in range(r - 1, -1, -1):  # innermost output dimension larger than 1
        if out[i] == 1:
            continue
        if pa[i] == 1:
            return "a"
        if pb[i] == 1:
            return "b"
        return "both"
    return "both"


def _saturate(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    qmin, qmax = qrange(dtype)
    big = np.float32(2**31)
    with np.errstate(invalid="ignore"):
        r = np.where(np.isfinite(v) & (np.abs(v) < big), np.rint(v), -big)  # cvtps2dq
    return np.clip(np.clip(r, -32768, 32767), qmin, qmax).astype(dtype)


def qlinear_add(
    a: Any, a_scale: Any, a_zero_point: Any, b: Any, b_scale: Any, b_zero_point: Any,
    c_scale: Any, c_zero_point: Any, *, isa: str = "host",
) -> np.ndarray:
    """``QLinearAdd(A, A_scale, A_zero_point, B, B_scale, B_zero_point, C_scale,
    C_zero_point)`` -> codes of ``a``'s dtype (uint8 or int8), broadcast like NumPy."""
    aa, bb, shape = _operands(a, b, isa, "QLinearAdd")
    sa, sb, sc = scale(a_scale, "a_scale"), scale(b_scale, "b_scale"), scale(c_scale, "c_scale")
    za = int(zero_point(a_zero_point, "a_zero_point", aa.dtype, "a"))
    zb = int(zero_point(b_zero_point, "b_zero_point", bb.dtype, "b"))
    zc = int(zero_point(c_zero_point, "c_zero_point", aa.dtype, "a (the output type)"))
    kind = _span_kind(aa.shape, bb.shape, shape)
    x, sx, zx, y, sy, zy = (bb, sb, zb, aa, sa, za) if kind == "a" else (aa, sa, za, bb, sb, zb)
    rx = F32(sx / sc)
    ry = F32(sy / sc)
    with np.errstate(over="ignore", invalid="ignore"):
        fixed = F32(F32(zc) - fma32(rx, F32(zx), F32(ry * F32(zy))))
        xf = np.broadcast_to(x, shape).astype(F32)
        yf = np.broadcast_to(y, shape).astype(F32)
        v = fma32(xf, rx, fma32(yf, ry, fixed))
    return _saturate(v, aa.dtype)


def qlinear_mul(
    a: Any, a_scale: Any, a_zero_point: Any, b: Any, b_scale: Any, b_zero_point: Any,
    c_scale: Any, c_zero_point: Any, *, isa: str = "host",
) -> np.ndarray:
    """``QLinearMul(A, A_scale, A_zero_point, B, B_scale, B_zero_point, C_scale,
    C_zero_point)`` -> codes of ``a``'s dtype (uint8 or int8), broadcast like NumPy."""
    aa, bb, shape = _operands(a, b, isa, "QLinearMul")
    sa, sb, sc = scale(a_scale, "a_scale"), scale(b_scale, "b_scale"), scale(c_scale, "c_scale")
    za = int(zero_point(a_zero_point, "a_zero_point", aa.dtype, "a"))
    zb = int(zero_point(b_zero_point, "b_zero_point", bb.dtype, "b"))
    zc = int(zero_point(c_zero_point, "c_zero_point", aa.dtype, "a (the output type)"))
    with np.errstate(over="ignore", under="ignore"):
        ratio = F32(F32(sa * sb) / sc)
        prod = (np.broadcast_to(aa, shape).astype(np.int32) - za) * (
            np.broadcast_to(bb, shape).astype(np.int32) - zb)
        v = ((prod.astype(F32) * ratio).astype(F32) + F32(zc)).astype(F32)
    return _saturate(v, aa.dtype)
