"""LiteRT (TensorFlow Lite) QUANTIZE / DEQUANTIZE from float32, bit for bit (NumPy only).

Measured on ``ai-edge-litert`` 2.3 (x86-64 CPU) with one-operator models; upstream sources
(tensorflow/tensorflow): ``tensorflow/lite/kernels/quantize.cc``, ``dequantize.cc``,
``tensorflow/lite/kernels/internal/reference/quantize.h`` / ``dequantize.h`` and
``internal/optimized/optimized_ops.h``; XNNPACK (google/XNNPACK) for the default delegate.

Three variants, chosen with ``variant=`` (``Interpreter(experimental_op_resolver_type=...)``
selects which one runs):

``"xnnpack"`` (``AUTO``, the default: the XNNPACK delegate takes int8 / uint8; int16 is not
delegated and runs ``"optimized"``): QUANTIZE ``v = x * fl(1 / scale)`` with subnormal ``x``
and a subnormal reciprocal read as zero, clamped in float to ``[qmin - zp, qmax - zp]``
(NaN gives ``qmax``: measured with XNNPACK's AVX-512 kernels), rounded half to even, plus
``zp``;
DEQUANTIZE ``y = fl(float(q - zp) * scale)``.

``"optimized"`` (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``): QUANTIZE in blocks of 8 elements
(of the flattened tensor) ``q = clamp(int32(rint(x * fl(1 / scale))) + zp, qmin, qmax)`` (a
multiplication by the float32 reciprocal, ties to even: the NEON code path, built for x86
through NEON_2_SSE); the last ``size % 8`` elements go through the scalar loop
``q = clamp(int32(round_half_away(double(x) / double(scale))) + zp, qmin, qmax)``, so an
exact tie rounds differently depending on its position; DEQUANTIZE for int8 / uint8 in blocks of 8
``y = fl(fl(q * scale) - fl(zp * scale))`` (two roundings: not ``(q - zp) * scale``) and
``y = fl(float(q - zp) * scale)`` for the last ``size % 8`` elements; for int16
``y = fl(float(q - zp) * scale)``.

``"reference"`` (``BUILTIN_REF``): QUANTIZE
``q = clamp(int32(round_half_away(x / scale)) + zp, qmin, qmax)`` (a true division, ties away
from zero, ``TfLiteRound``); DEQUANTIZE ``y = fl(float(q - zp) * scale)``.

``int32(v)`` of NaN, +-inf or ``|v| >= 2**31`` is INT32_MIN (the x86 conversion; C++ leaves
it undefined), plus ``zp`` with int32 wrap-around, so the builtin kernels give ``qmin`` for
NaN and +inf when ``zp >= 0`` and ``qmax`` when ``zp < 0``. Per-tensor
parameters; ``dtype`` in ``int8``, ``uint8``, ``int16`` (int16 requires ``zero_point == 0``,
as LiteRT does); the XNNPACK delegate refuses a subnormal scale (``ValueError`` here; the
interpreter raises or crashes). Nothing the caller passed is modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant._validation import _describe, as_kernel_input, check_int, check_name
from refquant.kernels._rounding import round_half_away
from refquant.kernels.onnxruntime._common import wrap_i32

__all__ = ["quantize", "dequantize"]

F32 = np.float32
_VARIANTS = ("xnnpack", "optimized", "reference")
INT32_MIN = -(1 << 31)
_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def _daz(v: Any) -> Any:
    """Subnormal float32 values as zero (sign kept), as XNNPACK reads them."""
    a = np.asarray(v, F32)
    out = np.where(np.abs(a) < np.finfo(F32).tiny, np.copysign(F32(0), a), a).astype(F32)
    return F32(out) if np.ndim(v) == 0 else out


def _params(scale: Any, zero_point: Any, dtype: Any, variant: str
            ) -> tuple[F32, int, int, int]:
    name = check_name(str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype, "dtype",
                      tuple(_RANGES))
    lo, hi = _RANGES[name]
    if isinstance(scale, (bool, np.bool_)) or not isinstance(
            scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale must be a real number, got {_describe(scale)}")
    s = F32(scale)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"scale must be finite and > 0 in float32, got {scale!r}")
    if not s >= np.finfo(F32).tiny and variant == "xnnpack":
        raise ValueError(f"scale {scale!r} is subnormal: the XNNPACK delegate refuses it")
    zp = check_int(zero_point, "zero_point", lo, hi)
    if name == "int16" and zp != 0:
        raise ValueError(f"zero_point must be 0 for int16, got {zp}")
    return s, zp, lo, hi


def quantize(x: Any, scale: Any, zero_point: Any = 0, dtype: Any = "int8", *,
             variant: str = "optimized") -> np.ndarray:
    """LiteRT QUANTIZE (float32 -> ``dtype``); see the module docstring for the formulas."""
    check_name(variant, "variant", _VARIANTS)
    if variant == "xnnpack" and str(np.dtype(dtype)) == "int16":
        variant = "optimized"  # int16 is not delegated
    s, zp, lo, hi = _params(scale, zero_point, dtype, variant)
    arr = as_kernel_input(x, "x", (np.float32,))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if variant == "reference":
            v = round_half_away((arr / s).astype(F32))
        elif variant == "xnnpack":
            v = (_daz(arr) * _daz(F32(F32(1) / s))).astype(F32)
            v = np.where(np.isnan(v), F32(hi - zp), np.clip(v, F32(lo - zp), F32(hi - zp)))
            return (np.rint(v).astype(np.int64) + zp).astype(dtype)
        else:
            flat = arr.reshape(-1)
            head = flat.size - flat.size % 8
            v = np.empty(flat.shape, np.float64)
            v[:head] = np.rint((flat[:head] * F32(F32(1) / s)).astype(F32))
            v[head:] = round_half_away(flat[head:].astype(np.float64) / np.float64(s))
            v = v.reshape(arr.shape)
        bad = ~(np.abs(v) < 2.0**31)  # NaN, +-inf, out of int32
        wide = np.where(bad, INT32_MIN, np.where(bad, 0, v).astype(np.int64)) + zp
    return np.clip(wrap_i32(wide), lo, hi).astype(dtype)


def dequantize(q: Any, scale: Any, zero_point: Any = 0, *, variant: str = "optimized"
               ) -> np.ndarray:
    """LiteRT DEQUANTIZE (``q``'s dtype int8 / uint8 / int16 -> float32)."""
    check_name(variant, "variant", _VARIANTS)
    arr = np.asarray(q)
    if arr.dtype.name not in _RANGES:
        raise TypeError(f"q must have dtype int8, uint8 or int16, got {_describe(q)}")
    if variant == "xnnpack" and arr.dtype.name == "int16":
        variant = "optimized"  # int16 is not delegated
    s, zp, _, _ = _params(scale, zero_point, arr.dtype.name, variant)
    q64 = arr.astype(np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        out = ((q64 - zp).astype(F32) * s).astype(F32)
        if variant == "optimized" and arr.dtype.name != "int16":
            flat = q64.reshape(-1)
            head = flat.size - flat.size % 8
            fused = ((flat[:head].astype(F32) * s).astype(F32) - F32(F32(zp) * s)).astype(F32)
            out.reshape(-1)[:head] = fused
    return out
