"""TOSA RESCALE and its scaling helpers, bit for bit (vectorised NumPy on int64).

Source: the TOSA specification (github.com/arm/tosa-specification, ``tosa_spec.adoc`` and
``chapters/introduction.adoc``), version 0.80: section 1.8 "Integer Behavior", subsection
"Scaling" (``apply_scale_32``, ``apply_scale_16``), and section 2.12 "Type Conversion",
operator RESCALE. TOSA 1.0 replaces the ``double_round`` flag by ``rounding_mode``
(``SINGLE_ROUND`` = ``double_round=False``, ``DOUBLE_ROUND`` = ``double_round=True``; its
``INEXACT_ROUND`` lets an implementation choose and is not emulated) and passes zero points
as tensors; the arithmetic is the same.

Every ``REQUIRE`` / ``ERROR_IF`` of the pseudocode raises ``ValueError`` naming the argument
(an implementation may return anything there, so no number is given); non-integer arrays
raise ``TypeError``. Inputs broadcast; nothing the caller passed is modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant._validation import check_flag
from refquant.kernels.tflite import _int_array

__all__ = ["apply_scale_32", "apply_scale_16", "rescale"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT48_MIN = -(1 << 47)
INT48_MAX = (1 << 47) - 1

_OUT_DTYPES = {
    np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int16): (-32768, 32767),
    np.dtype(np.uint16): (0, 65535),
    np.dtype(np.int32): (INT32_MIN, INT32_MAX),
}


def apply_scale_32(
    value: Any, multiplier: Any, shift: Any, double_round: Any = False
) -> np.ndarray:
    """TOSA ``apply_scale_32``: ``(value * multiplier + round) >> shift`` in int64, as int32.

    ``round = 2**(shift - 1)`` (half toward +inf); with ``double_round`` and ``shift > 31``,
    ``round += 2**30`` for ``value >= 0`` and ``round -= 2**30`` for ``value < 0`` (the result
    of rounding first at bit 31, as gemmlowp's doubling high multiply does, then again).
    REQUIRE: ``multiplier >= 0`` (int32), ``2 <= shift <= 62``, and
    ``-2**(shift - 1) <= value < 2**(shift - 1)`` so that the result fits int32.
    Source: TOSA specification 0.80, section 1.8 "Integer Behavior", "Scaling".
    """
    dr = check_flag(double_round, "double_round")
    v = _int_array(value, "value")
    m = _int_array(multiplier, "multiplier", 0, INT32_MAX)
    s = _int_array(shift, "shift", 2, 62)
    half = np.int64(1) << (s - 1)
    outside = (v < -half) | (v >= half)
    if np.any(outside):
        bad = np.broadcast_to(v, outside.shape)[outside][0]
        raise ValueError(
            f"value must be in [-2**(shift-1), 2**(shift-1)) for apply_scale_32, got {int(bad)}"
        )
    rnd = half
    if dr:
        step = np.where(v >= 0, np.int64(1 << 30), np.int64(-(1 << 30)))
        rnd = np.where(s > 31, half + step, half)
    result = (v * m + rnd) >> s  # |v * m| < 2**62, round <= 2**61: fits int64
    return result.astype(np.int32)


def apply_scale_16(value: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """TOSA ``apply_scale_16``: ``(value * multiplier + 2**(shift - 1)) >> shift`` in int64.

    ``value`` is int48, ``multiplier`` int16 with ``multiplier >= 0``, ``2 <= shift <= 62``;
    REQUIRE: the result fits int32 (``ValueError`` otherwise). Source: TOSA specification
    0.80, section 1.8 "Integer Behavior", "Scaling".
    """
    v = _int_array(value, "value", INT48_MIN, INT48_MAX)
    m = _int_array(multiplier, "multiplier", 0, 32767)
    s = _int_array(shift, "shift", 2, 62)
    result = (v * m + (np.int64(1) << (s - 1))) >> s  # |v * m| < 2**62
    if result.size and (result.min() < INT32_MIN or result.max() > INT32_MAX):
        raise ValueError(
            "apply_scale_16 result must fit int32 (REQUIRE): value, multiplier or shift too large"
        )
    return result.astype(np.int32)


def _check_zp(zp: Any, name: str, dtype: np.dtype) -> int:
    """RESCALE's zero-point rule: int8 and uint8 any value of the type, uint16 0 or 32768,
    every other type 0."""
    arr = _int_array(zp, name, INT32_MIN, INT32_MAX)
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    z = int(arr)
    if dtype == np.int8:
        ok = -128 <= z <= 127
    elif dtype == np.uint8:
        ok = 0 <= z <= 255
    elif dtype == np.uint16:
        ok = z in (0, 32768)
    else:
        ok = z == 0
    if not ok:
        raise ValueError(f"{name} = {z} is not allowed for {dtype} by RESCALE's ERROR_IF")
    return z


def rescale(
    x: Any,
    multiplier: Any,
    shift: Any,
    *,
    out_dtype: Any,
    input_zp: Any = 0,
    output_zp: Any = 0,
    scale32: Any = True,
    double_round: Any = False,
    per_channel: Any = False,
) -> np.ndarray:
    """TOSA RESCALE: per element,
    ``out = clip(apply_scale(x - input_zp, multiplier[c], shift[c]) + output_zp, out_t)``.

    ``x``: int8, uint8, int16, uint16, int32 or int48 (pass int48 as int64; it must fit 48
    bits). ``apply_scale`` is ``apply_scale_32(..., double_round)`` with ``scale32`` and
    ``apply_scale_16`` without; ``c`` is the last axis index with ``per_channel`` (then
    ``multiplier`` and ``shift`` have that axis' length), else 0 (one value each). The sum
    with ``output_zp`` is taken in int64 and clipped to ``out_dtype``'s range (int8, uint8,
    int16, uint16, int32). ERROR_IF: ``double_round`` without ``scale32``; ``scale32`` with
    int48 input; a zero point the type does not allow (int8/uint8: any value of the type;
    uint16: 0 or 32768; others: 0). Source: TOSA specification 0.80, section 2.12
    "Type Conversion", RESCALE.
    """
    sc32 = check_flag(scale32, "scale32")
    dr = check_flag(double_round, "double_round")
    pc = check_flag(per_channel, "per_channel")
    if dr and not sc32:
        raise ValueError("double_round=True requires scale32=True (RESCALE ERROR_IF)")
    try:
        odt = np.dtype(out_dtype)
    except TypeError as exc:
        raise TypeError(f"out_dtype must be a NumPy integer dtype, got {out_dtype!r}") from exc
    if odt not in _OUT_DTYPES:
        raise ValueError(f"out_dtype must be one of int8, uint8, int16, uint16, int32, got {odt}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"x must be an integer array, got dtype {arr.dtype}")
    idt = arr.dtype.newbyteorder("=")
    is48 = idt == np.int64
    if idt not in _OUT_DTYPES and not is48:
        raise ValueError(f"x must be int8, uint8, int16, uint16, int32 or int64 (int48), got {idt}")
    if is48 and sc32:
        raise ValueError("scale32=True is not allowed for int48 input (RESCALE ERROR_IF)")
    v = _int_array(arr, "x", INT48_MIN, INT48_MAX)
    izp = _check_zp(input_zp, "input_zp", idt)
    ozp = _check_zp(output_zp, "output_zp", odt)
    m = _int_array(multiplier, "multiplier")
    s = _int_array(shift, "shift")
    if pc:
        if v.ndim == 0:
            raise ValueError("per_channel=True needs x with at least one axis")
        nc = v.shape[-1]
        if m.shape != (nc,) or s.shape != (nc,):
            raise ValueError(
                f"with per_channel=True, multiplier and shift must have shape ({nc},), "
                f"got {m.shape} and {s.shape}"
            )
    elif m.size != 1 or s.size != 1:
        raise ValueError(
            f"with per_channel=False, multiplier and shift must hold one value, "
            f"got shapes {m.shape} and {s.shape}"
        )
    else:
        m, s = m.reshape(()), s.reshape(())
    value = v - izp
    if sc32:
        scaled = apply_scale_32(value, m, s, dr)
    else:
        scaled = apply_scale_16(value, m, s)
    lo, hi = _OUT_DTYPES[odt]
    return np.clip(scaled.astype(np.int64) + ozp, lo, hi).astype(odt)
