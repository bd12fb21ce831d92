"""TFLite's reference integer requantization, bit for bit (vectorised NumPy on int64).

Upstream sources (tensorflow/tensorflow):

* ``tensorflow/lite/kernels/internal/quantization_util.cc``: ``QuantizeMultiplier``;
* ``tensorflow/lite/kernels/internal/common.cc`` / ``common.h``:
  ``MultiplyByQuantizedMultiplier`` (int32 ``x``), in two variants chosen at compile time by
  the macro ``TFLITE_SINGLE_ROUNDING`` (added by tensorflow PR #50290): undefined or 0 gives
  the double-rounding variant (gemmlowp's two steps, the default of TensorFlow's own builds),
  1 gives the single-rounding variant (one 64-bit product, one rounding shift; embedded
  builds such as TFLite Micro ports with CMSIS-NN define it);
* google/gemmlowp ``fixedpoint/fixedpoint.h``: ``SaturatingRoundingDoublingHighMul`` and
  ``RoundingDivideByPOT``.

Integer semantics follow the release build (``TFLITE_DCHECK`` off): int32 overflow outside
the upstream input contract (``x * (1 << left_shift)`` in the double-rounding variant, the
final ``static_cast<int32_t>`` of the single-rounding variant) wraps in two's complement here,
which is what those builds compute on common targets but not a C++ guarantee; the one
saturation in the formulas (``INT32_MIN * INT32_MIN`` in the doubling high multiply) gives
``INT32_MAX``. Arguments outside the ranges the upstream ``DCHECK`` / ``assert`` states raise
``ValueError`` naming the argument; non-integer arrays raise ``TypeError``. Inputs broadcast
against each other; results are ``int32`` arrays; nothing the caller passed is modified.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refquant._validation import _describe, check_name, check_real

__all__ = [
    "quantize_multiplier",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
_ROUNDINGS = ("double", "single")


def _int_array(x: Any, name: str, low: int = INT32_MIN, high: int = INT32_MAX) -> np.ndarray:
    """``x`` as an int64 array after checking it is integer-typed and within ``[low, high]``."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer array, got {_describe(x)}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    wide = arr.astype(np.int64) if arr.dtype != np.uint64 else arr
    if wide.size:
        lo, hi = int(wide.min()), int(wide.max())
        if lo < low or hi > high:
            bad = lo if lo < low else hi
            raise ValueError(f"{name} must be in [{low}, {high}], got {bad}")
    return np.asarray(wide, dtype=np.int64)


def _wrap32(v: np.ndarray) -> np.ndarray:
    """Two's-complement truncation of int64 values to int32."""
    return v.astype(np.int32)  # C-style truncation of the low 32 bits


def quantize_multiplier(real_multiplier: Any, *, rounding: str = "double") -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: a real multiplier as ``(quantized_multiplier, shift)``
    with ``real ~= quantized_multiplier * 2**(shift - 31)``.

    ``q, shift = frexp(real)`` (``q`` in [0.5, 1)); ``q_fixed = round(q * 2**31)`` rounding
    half away from zero (``TfLiteRound``); ``q_fixed == 2**31`` becomes ``2**30`` with
    ``shift + 1``; ``shift < -31`` flushes to ``(0, 0)``; with ``rounding="single"``
    (``TFLITE_SINGLE_ROUNDING``) a ``shift > 30`` saturates to ``(2**31 - 1, 30)``. ``0.0``
    gives ``(0, 0)``. Source: tensorflow/tensorflow
    ``tensorflow/lite/kernels/internal/quantization_util.cc``.
    """
    check_name(rounding, "rounding", _ROUNDINGS)
    real = float(check_real(real_multiplier, "real_multiplier"))
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    scaled = q * 2.0**31  # exact: a power-of-two scaling of a double
    q_fixed = int(math.copysign(math.floor(abs(scaled) + 0.5), scaled))  # exact, |scaled| < 2**31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if q_fixed > INT32_MAX:  # TFLITE_CHECK_LE in upstream; unreachable for finite input
        raise ValueError(f"real_multiplier {real!r} gives a multiplier beyond int32")
    if shift < -31:
        return 0, 0
    if rounding == "single" and shift > 30:
        return INT32_MAX, 30
    return q_fixed, shift


def saturating_rounding_doubling_high_mul(a: Any, b: Any) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32: the high 32 bits of
    ``2 * a * b``, i.e. ``a * b / 2**31``, rounded to nearest with ties toward +inf (the
    negative nudge ``1 - 2**30`` with truncating division sends ``-1.5`` to ``-1``).

    ``ab = a * b`` (int64); ``nudge = 2**30`` if ``ab >= 0`` else ``1 - 2**30``;
    ``(ab + nudge) / 2**31`` truncated toward zero; ``a == b == INT32_MIN`` (the only
    overflow) gives ``INT32_MAX``. Source: google/gemmlowp ``fixedpoint/fixedpoint.h``.
    """
    a64 = _int_array(a, "a")
    b64 = _int_array(b, "b")
    ab = a64 * b64  # |ab| <= 2**62: fits int64
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    num = ab + nudge
    # C++ integer division truncates toward zero; NumPy's // floors.
    quot = np.where(num >= 0, num >> 31, -((-num) >> 31))
    overflow = (a64 == INT32_MIN) & (b64 == INT32_MIN)
    return np.where(overflow, np.int64(INT32_MAX), quot).astype(np.int32)


def rounding_divide_by_pot(x: Any, exponent: Any) -> np.ndarray:
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded to nearest, ties away
    from zero, for int32 ``x`` and ``exponent`` in [0, 31].

    ``mask = 2**exponent - 1``; ``remainder = x & mask``; ``threshold = (mask >> 1) + (x < 0)``;
    result ``(x >> exponent) + (remainder > threshold)`` (arithmetic shift). Source:
    google/gemmlowp ``fixedpoint/fixedpoint.h``.
    """
    x64 = _int_array(x, "x")
    e = _int_array(exponent, "exponent", 0, 31)
    mask = (np.int64(1) << e) - 1
    remainder = x64 & mask
    threshold = (mask >> 1) + (x64 < 0)
    return ((x64 >> e) + (remainder > threshold)).astype(np.int32)


def multiply_by_quantized_multiplier(
    x: Any, quantized_multiplier: Any, shift: Any, *, rounding: str = "double"
) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier(int32 x, int32 quantized_multiplier, shift)``:
    ``x * quantized_multiplier * 2**(shift - 31)`` rounded to int32.

    ``rounding="double"`` (``TFLITE_SINGLE_ROUNDING`` undefined / 0, TensorFlow's default):
    ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2**max(shift, 0), qm),
    max(-shift, 0))``; the left shift wraps in int32 as in the C++; two roundings, the
    first with ties toward +inf, the second with ties away from zero.
    ``quantized_multiplier`` in [INT32_MIN, INT32_MAX].

    ``rounding="single"`` (``TFLITE_SINGLE_ROUNDING=1``): ``total = 31 - shift``;
    ``(x * qm + 2**(total - 1)) >> total`` in int64 (one rounding, half toward +inf), then
    truncated to int32. ``quantized_multiplier`` in [0, INT32_MAX] (the upstream DCHECK).

    ``shift`` is in [-31, 30] for both. Source: tensorflow/tensorflow
    ``tensorflow/lite/kernels/internal/common.cc`` (and ``common.h`` before it moved there).
    """
    check_name(rounding, "rounding", _ROUNDINGS)
    x64 = _int_array(x, "x")
    qm_low = 0 if rounding == "single" else INT32_MIN
    qm = _int_array(quantized_multiplier, "quantized_multiplier", qm_low, INT32_MAX)
    s = _int_array(shift, "shift", -31, 30)
    if rounding == "single":
        total = 31 - s
        acc = x64 * qm + (np.int64(1) << (total - 1))  # |x * qm| < 2**62: no int64 overflow
        return _wrap32(acc >> total)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    shifted = _wrap32(x64 << left)  # int32 multiply by 1 << left wraps
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, qm), right)
