"""``com.microsoft.QLinearLeakyRelu`` / ``QLinearSigmoid``: ONNX Runtime's 256-entry tables.

Source: ``onnxruntime/contrib_ops/cpu/quantization/qlinear_lookup_table.cc``
(``QlinearBuildLookupTable``) and ``qlinear_activations.cc``. For every code ``i`` of the
input type::

    d[i]     = fl32(x_scale * float32(i - x_zero_point))
    f[i]     = LeakyRelu: d if d >= 0 else fl32(alpha * d)
               Sigmoid:   MLAS MlasComputeLogistic(d) (below)
    table[i] = MlasQuantizeLinear(f[i], y_scale, y_zero_point)   # clip(rne(fl32(f / s))) + zp
    y        = table[x]

``MlasComputeLogistic`` on x86-64 with AVX2 is ``x86_64/LogisticKernelFma3.S`` (Eigen's
rational approximation with the constants of ``logistic.cpp``)::

    v = min(max(d, -18), 18);  v2 = fl32(v * v)
    p = fma(fma(fma(fma(v2, a9, a7), v2, a5), v2, a3), v2, a1);  p = fl32(v * p)
    q = fma(fma(fma(fma(fma(v2, b10, b8), v2, b6), v2, b4), v2, b2), v2, b0)
    f = max(fl32(fl32(p / q) + 0.5), 0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import F32, as_codes, fma32, quantize_mlas, scale, zero_point
from ._dispatch import check_isa

__all__ = ["mlas_logistic", "qlinear_concat", "qlinear_leaky_relu", "qlinear_sigmoid"]

_A = [F32(v) for v in (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05,
                       8.51377133304701e-03, 2.48287947061529e-01)]
_B = [F32(v) for v in (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
                       1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01)]


def mlas_logistic(d: np.ndarray) -> np.ndarray:
    """MLAS's float32 logistic function of the AVX2/FMA3 kernel (formula above)."""
    v = np.minimum(np.maximum(np.asarray(d, F32), F32(-18)), F32(18))
    v2 = (v * v).astype(F32)
    p = fma32(v2, _A[0], _A[1])
    for c in _A[2:]:
        p = fma32(p, v2, c)
    p = (v * p).astype(F32)
    q = fma32(v2, _B[0], _B[1])
    for c in _B[2:]:
        q = fma32(q, v2, c)
    return np.maximum(((p / q).astype(F32) + F32(0.5)).astype(F32), F32(0))


def _lookup(x: Any, x_scale: Any, x_zero_point: Any, y_scale: Any, y_zero_point: Any,
            isa: str, fn: Any) -> np.ndarray:
    if check_isa(isa) == "neon":
        raise ValueError("isa='neon': MLAS's ARM64 logistic kernel is not emulated")
    xx = as_codes(x, "x")
    sx, sy = scale(x_scale, "x_scale"), scale(y_scale, "y_scale")
    zx = int(zero_point(x_zero_point, "x_zero_point", xx.dtype, "x"))
    zy = int(zero_point(y_zero_point, "y_zero_point", xx.dtype, "x (the output type)"))
    codes = np.arange(256, dtype=np.uint8).view(xx.dtype)  # table index = the byte of x
    with np.errstate(over="ignore"):
        d = (sx * (codes.astype(np.int32) - zx).astype(F32)).astype(F32)
        table = quantize_mlas(fn(d), sy, zy, xx.dtype)
    return table[xx.view(np.uint8)]


def qlinear_leaky_relu(
    x: Any, x_scale: Any, x_zero_point: Any, y_scale: Any, y_zero_point: Any, *,
    alpha: float = 0.01, isa: str = "host",
) -> np.ndarray:
    """``QLinearLeakyRelu(X, X_scale, X_zero_point, Y_scale, Y_zero_point)`` (uint8/int8)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha must be a real number, got {alpha!r}")
    a = F32(alpha)
    if not np.isfinite(a):
        raise ValueError(f"alpha must be finite in float32, got {alpha!r}")
    return _lookup(x, x_scale, x_zero_point, y_scale, y_zero_point, isa,
                   lambda d: np.where(d >= 0, d, (a * d).astype(F32)).astype(F32))


def qlinear_sigmoid(
    x: Any, x_scale: Any, x_zero_point: Any, y_scale: Any, y_zero_point: Any, *,
    isa: str = "host",
) -> np.ndarray:
    """``QLinearSigmoid(X, X_scale, X_zero_point, Y_scale, Y_zero_point)`` (uint8/int8)."""
    return _lookup(x, x_scale, x_zero_point, y_scale, y_zero_point, isa, mlas_logistic)


def qlinear_concat(
    y_scale: Any, y_zero_point: Any, *inputs: Any, axis: int, isa: str = "host",
) -> np.ndarray:
    """``com.microsoft.QLinearConcat(Y_scale, Y_zero_point, X0, X0_scale, X0_zero_point,
    X1, ...)`` (``contrib_ops/cpu/quantization/qlinear_concat.cc``): an input with the
    output's scale and zero point is copied, any other goes through the 256-entry table of
    ``QlinearBuildLookupTable`` with the identity, ``MlasQuantizeLinear(fl32(s_x * (i -
    z_x)), s_y, z_y)``; then the codes are concatenated along ``axis``."""
    if check_isa(isa) == "neon":
        raise ValueError("isa='neon': MLAS's ARM64 quantization kernel is not emulated")
    if len(inputs) < 3 or len(inputs) % 3:
        raise ValueError(f"inputs must be (X, X_scale, X_zero_point) triples, got "
                         f"{len(inputs)} values")
    sy = scale(y_scale, "y_scale")
    if y_zero_point is None:
        y_zero_point = np.uint8(0)
    if not isinstance(y_zero_point, (np.ndarray, np.generic)):
        raise TypeError("y_zero_point must be a uint8 or int8 NumPy value (it selects the "
                        f"kernel), got {type(y_zero_point).__name__}")
    dtype = np.asarray(y_zero_point).dtype
    zy = int(zero_point(y_zero_point, "y_zero_point", dtype, "Y"))
    parts = []
    for i in range(0, len(inputs), 3):
        j = i // 3
        x = as_codes(inputs[i], f"X{j}", (dtype.type,))
        sx = scale(inputs[i + 1], f"X{j}_scale")
        zx = int(zero_point(inputs[i + 2], f"X{j}_zero_point", dtype, f"X{j}"))
        if sx == sy and zx == zy:
            parts.append(x)
            continue
        codes = np.arange(256, dtype=np.uint8).view(dtype)
        with np.errstate(over="ignore"):
            d = (sx * (codes.astype(np.int32) - zx).astype(F32)).astype(F32)
            table = quantize_mlas(d, sy, zy, dtype)
        parts.append(table[x.view(np.uint8)])
    try:
        return np.concatenate(parts, axis=axis)
    except (ValueError, np.exceptions.AxisError) as exc:
        raise ValueError(f"inputs cannot be concatenated along axis={axis}: {exc}") from None
