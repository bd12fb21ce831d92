"""``com.microsoft.QGemm`` as ONNX Runtime's CPU kernel computes it.

Source: ``onnxruntime/contrib_ops/cpu/quantization/quant_gemm.cc`` (``QGemm::Compute``,
``ComputeOutputScale``) with MLAS ``MlasGemmBatch`` in accumulate mode::

    acc[m, n] = c[m, n] + GEMM(A', B')           # int32, wraps; c broadcast from (), (N,),
                                                  # (1, N), (M, 1) or (M, N); A' = A or A^T
    s[n]      = fl32(fl32(alpha * a_scale) * b_scale[n])
    with y_scale / y_zero_point:  s[n] = fl32(s[n] / y_scale);  y = MlasRequantizeOutput(acc, s, zy)
    without:                      y = fl32(float32(acc) * s[n])             # float32 output

The GEMM is the one of :mod:`._gemm`, with its pair saturation on ``"avx2"`` / ``"avx512"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import _describe, native
from ._common import F32, as_codes, requantize, scale, wrap_i32, zero_point
from ._dispatch import check_isa
from ._gemm import gemm_s32

__all__ = ["qgemm"]


def _c(c: Any, m: int, n: int) -> np.ndarray | None:
    if c is None:
        return None
    if not isinstance(c, (np.ndarray, np.generic)):
        raise TypeError(f"c must be an int32 NumPy array, got {_describe(c)}")
    arr = native(np.asarray(c))
    if arr.dtype != np.int32:
        raise TypeError(f"c must have dtype int32, got dtype {arr.dtype}")
    ok = arr.shape in ((), (1,), (n,), (1, 1), (1, n), (m, 1), (m, n))
    if not ok:
        raise ValueError(f"c must have shape (), ({n},), (1, {n}), ({m}, 1) or ({m}, {n}), got "
                         f"shape {arr.shape}")
    return arr


def qgemm(
    a: Any,
    a_scale: Any,
    a_zero_point: Any,
    b: Any,
    b_scale: Any,
    b_zero_point: Any,
    c: Any = None,
    y_scale: Any = None,
    y_zero_point: Any = None,
    *,
    alpha: float = 1.0,
    transA: int = 0,
    transB: int = 0,
    isa: str = "host",
) -> np.ndarray:
    """``QGemm(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale,
    y_zero_point)``: 2-D uint8/int8 ``a`` and ``b`` (int8 ``b`` when ``a`` is int8), per-tensor
    ``a`` parameters, ``b_scale`` / ``b_zero_point`` scalar or [N] (same shape). Returns
    float32 without ``y_zero_point``, else codes of ``a``'s dtype."""
    resolved = check_isa(isa)
    aa = as_codes(a, "a")
    bb = as_codes(b, "b")
    for flag, name in ((transA, "transA"), (transB, "transB")):
        if isinstance(flag, bool) or flag not in (0, 1):
            raise ValueError(f"{name} must be 0 or 1, got {flag!r}")
    if aa.ndim != 2 or bb.ndim != 2:
        raise ValueError(f"a and b must be 2-D, got shapes {aa.shape} and {bb.shape}")
    if aa.dtype == np.int8 and bb.dtype != np.int8:
        raise TypeError(f"b must be int8 when a is int8, got dtype {bb.dtype}")
    a2 = aa.T if transA else aa
    b2 = bb.T if transB else bb
    if a2.shape[1] != b2.shape[0]:
        raise ValueError(f"a {aa.shape} (transA={transA}) and b {bb.shape} (transB={transB}) "
                         "do not match")
    m, k = a2.shape
    n = b2.shape[1]
    if k == 0:
        raise ValueError("K = 0 is not emulated (ONNX Runtime fills the output from c)")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha must be a real number, got {alpha!r}")
    sa = scale(a_scale, "a_scale")
    sb = scale(b_scale, "b_scale", (n,))
    azp = zero_point(a_zero_point, "a_zero_point", aa.dtype, "a")
    bzp = zero_point(b_zero_point, "b_zero_point", bb.dtype, "b", (n,))
    if sb.shape != bzp.shape and not (sb.size == 1 and bzp.size == 1):
        raise ValueError(f"b_scale and b_zero_point must have the same shape, got {sb.shape} "
                         f"and {bzp.shape}")
    if (y_scale is None) != (y_zero_point is None):
        raise ValueError("y_scale and y_zero_point must be given together (or neither)")
    cc = _c(c, m, n)
    acc = gemm_s32(np.ascontiguousarray(a2), np.ascontiguousarray(b2), azp, bzp, resolved)
    assert isinstance(acc, np.ndarray)
    if cc is not None:
        acc = wrap_i32(acc.astype(np.int64) + np.broadcast_to(cc, (m, n)))
    with np.errstate(over="ignore", under="ignore"):
        out_scale = ((F32(alpha) * sa).astype(F32) * sb).astype(F32)
        if y_scale is None:
            return (acc.astype(F32) * out_scale).astype(F32)
        sy = scale(y_scale, "y_scale")
        out_scale = (out_scale / sy).astype(F32)
    zy = zero_point(y_zero_point, "y_zero_point", aa.dtype, "a (the output type)")
    return requantize(acc, out_scale, int(zy), aa.dtype)
