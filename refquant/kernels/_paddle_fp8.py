"""Paddle 3.3.1's CPU float -> float8 -> float round trip, as its quantize functor uses it.

``phi::funcs::QuantTensorFunctor`` (``paddle/phi/kernels/funcs/fake_quantize_functor.h``)
replaces integer rounding by ``float(float8_e4m3fn(v))`` when ``qmax == 448`` and by
``float(float8_e5m2(v))`` when ``qmax == 57344``. On CPU builds those constructors are the
bit-manipulation converters in ``paddle/phi/common/float8_e4m3fn.h`` and
``paddle/phi/common/float8_e5m2.h``; their out-of-range handling is *not* the OCP / ONNX
one. What the CPU converters compute, restated as arithmetic on the magnitude ``a = |v|``
(the sign bit of ``v`` is copied onto the result in every case, so ``-0.0`` and negative
underflow give ``-0.0``):

e4m3fn (3 mantissa bits, smallest normal ``2^-6``, subnormal spacing ``2^-9``)
    * ``a >= 480``, ``+-inf`` **and NaN** (their bit patterns compare above 480's): ``448``;
    * otherwise ``a`` is rounded half-to-even to the e4m3 grid; a magnitude that rounds to
      480 (``464 < a < 480``) lands on the code ``0x7F``, which decodes as **NaN**
      (``a == 464`` is a tie and goes to the even neighbour 448).

e5m2 (2 mantissa bits, smallest normal ``2^-14``, subnormal spacing ``2^-16``)
    * NaN stays NaN;
    * ``a >= 65536`` and ``+-inf``: ``57344``;
    * otherwise rounded half-to-even to the e5m2 grid; ``61440 <= a < 65536`` rounds to
      65536, i.e. the infinity code, and decodes as ``+-inf`` (the functor's clip to
      ``[-57344, 57344]`` then saturates it).

A NaN result carries the decoder's fixed payload (float32 ``0x7FF00000`` for e4m3,
``0x7FE00000`` for e5m2) and the sign bit of ``v``, whatever NaN ``v`` was.

The grid rounding is computed here, not by bit tricks: with ``a`` widened exactly to
float64, the grid spacing at ``a`` is ``q = 2^(max(floor(log2 a), emin) - mantissa_bits)``
and the rounded magnitude is ``rint(a / q) * q`` (both scalings are exact powers of two).
"""

from __future__ import annotations

import numpy as np

__all__ = ["paddle_cpu_fp8_round", "E4M3_QMAX", "E5M2_QMAX"]

E4M3_QMAX = 448
E5M2_QMAX = 57344

# (mantissa bits, exponent of the smallest normal) per format
_FORMATS = {E4M3_QMAX: (3, -6), E5M2_QMAX: (2, -14)}
# float32 bit pattern the CPU decoders produce for the positive NaN code 0x7F
_NAN_BITS = {E4M3_QMAX: np.uint32(0x7FF00000), E5M2_QMAX: np.uint32(0x7FE00000)}


def _round_to_grid(a: np.ndarray, mantissa_bits: int, emin: int) -> np.ndarray:
    """Round finite, non-negative float64 ``a`` half-to-even onto an FP8 grid (no overflow
    handling)."""
    _, e = np.frexp(a)  # a = f * 2^e with f in [0.5, 1); frexp(0) gives e = 0 (harmless)
    exp = np.maximum(e - 1, emin)
    step_exp = (exp - mantissa_bits).astype(np.int32)
    return np.ldexp(np.rint(np.ldexp(a, -step_exp)), step_exp)


def paddle_cpu_fp8_round(v: np.ndarray, qmax: int) -> np.ndarray:
    """``float(float8(v))`` for float32 ``v`` as Paddle 3.3.1's CPU converters compute it.

    ``qmax`` selects the format: 448 for e4m3fn, 57344 for e5m2. Returns float32. See the
    module docstring for the special values (e4m3: NaN and ``|v| >= 480`` give +-448, and
    ``464 < |v| < 480`` gives NaN; e5m2: NaN stays NaN, everything else saturates at the
    functor's clip).
    """
    if qmax not in _FORMATS:
        raise ValueError(f"qmax must be 448 (e4m3fn) or 57344 (e5m2), got {qmax!r}")
    mantissa_bits, emin = _FORMATS[qmax]
    v = np.asarray(v, dtype=np.float32)
    negative = (v.view(np.uint32) >> np.uint32(31)).astype(bool)
    with np.errstate(invalid="ignore"):
        a = np.abs(v).astype(np.float64)
    nan = np.isnan(a)
    finite = np.isfinite(a)
    rounded = _round_to_grid(np.where(finite, a, 0.0), mantissa_bits, emin)
    if qmax == E4M3_QMAX:
        big = ~(a < 480.0)  # true for NaN, inf and >= 480: the converter's unsigned compare
        mag = np.where(big, 448.0, np.where(rounded >= 480.0, np.nan, rounded))
    else:
        big = finite & (a >= 65536.0)  # the converter's 0x7B (57344); inf lands here too
        mag = np.where(rounded >= 65536.0, np.inf, rounded)  # rounds onto the inf code
        mag = np.where(big | np.isinf(a), 57344.0, mag)
        mag = np.where(nan, np.nan, mag)
    out = np.where(negative, -mag, mag).astype(np.float32)
    # A NaN result is the decoder's reading of the NaN code: a fixed quiet-NaN pattern
    # (e4m3 0x7F -> 0x7FF00000, e5m2 0x7F -> 0x7FE00000) with the input's sign bit.
    nan_out = np.isnan(out)
    if nan_out.any():
        bits = out.view(np.uint32).copy()
        sign = np.where(negative, np.uint32(0x80000000), np.uint32(0))
        bits[nan_out] = (sign | _NAN_BITS[qmax])[nan_out]
        out = bits.view(np.float32)
    return out
