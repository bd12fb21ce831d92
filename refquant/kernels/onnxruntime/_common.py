"""Argument checks and float32 steps shared by the ONNX Runtime integer-kernel emulations."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import _describe, native, to_float_dtype

F32 = np.float32
CODE_TYPES: tuple[type, ...] = (np.uint8, np.int8)
_RANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


def qrange(dtype: np.dtype) -> tuple[int, int]:
    """``(qmin, qmax)`` of ``uint8`` / ``int8``."""
    return _RANGE[np.dtype(dtype)]


def as_codes(x: Any, name: str, dtypes: tuple[type, ...] = CODE_TYPES) -> np.ndarray:
    """A quantized tensor: a NumPy array (or scalar) whose dtype is one of ``dtypes``.

    Lists and Python numbers are refused (``TypeError``): the element type of an integer
    kernel input decides which kernel runs, so it is never guessed.
    """
    allowed = "/".join(np.dtype(d).name for d in dtypes)
    if not isinstance(x, (np.ndarray, np.generic)):
        raise TypeError(f"{name} must be a NumPy array of dtype {allowed}, got {_describe(x)}")
    arr = native(np.asarray(x))
    if arr.dtype.type not in dtypes:
        raise TypeError(f"{name} must have dtype {allowed}, got dtype {arr.dtype}")
    return arr


def _param_shape_ok(shape: tuple[int, ...], lengths: tuple[int, ...]) -> bool:
    if shape == () or shape == (1,):
        return True
    return len(shape) == 1 and shape[0] in lengths


def _shape_text(lengths: tuple[int, ...]) -> str:
    extra = [f"({n},)" for n in lengths if n != 1]
    if not extra:
        return "a scalar or shape (1,)"
    return "a scalar, shape (1,) or " + " or ".join(extra)


def zero_point(
    zp: Any, name: str, dtype: np.dtype, of: str, lengths: tuple[int, ...] = (),
) -> np.ndarray:
    """A zero point as int64 (shape ``()`` or ``(n,)`` for ``n`` in ``lengths``).

    ``None`` is 0. A NumPy value must have ``dtype`` (the dtype of the tensor ``of`` it
    belongs to, as ONNX ties them), else ``TypeError``; a Python int must lie in its range.
    """
    dtype = np.dtype(dtype)
    if zp is None:
        return np.zeros((), np.int64)
    if isinstance(zp, (np.ndarray, np.generic)):
        arr = native(np.asarray(zp))
        if arr.dtype != dtype:
            raise TypeError(
                f"{name} must have the dtype of {of} ({dtype.name}), got dtype {arr.dtype}"
            )
    elif isinstance(zp, (int, np.integer)) and not isinstance(zp, bool):
        lo, hi = qrange(dtype)
        if not lo <= int(zp) <= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}] ({dtype.name}), got {int(zp)}")
        arr = np.asarray(int(zp), dtype)
    else:
        raise TypeError(
            f"{name} must be a {dtype.name} NumPy value or a Python int, got {_describe(zp)}"
        )
    if not _param_shape_ok(arr.shape, lengths):
        raise ValueError(f"{name} must be {_shape_text(lengths)}, got shape {arr.shape}")
    return arr.reshape(-1).astype(np.int64) if arr.ndim else arr.astype(np.int64)


def scale(s: Any, name: str, lengths: tuple[int, ...] = ()) -> np.ndarray:
    """A float32 scale (shape ``()`` or ``(n,)`` for ``n`` in ``lengths``), finite and > 0.

    NumPy values must be float32 (``TypeError`` otherwise, nothing is narrowed silently);
    Python numbers are converted to float32 (a value beyond its range raises).
    """
    if isinstance(s, (np.ndarray, np.generic)):
        arr = native(np.asarray(s))
        if arr.dtype != np.float32:
            raise TypeError(f"{name} must have dtype float32, got dtype {arr.dtype}")
    elif isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool):
        arr = to_float_dtype(np.asarray(float(s)), F32, name)
    else:
        raise TypeError(f"{name} must be a float32 NumPy value or a Python number, got "
                        f"{_describe(s)}")
    if not _param_shape_ok(arr.shape, lengths):
        raise ValueError(f"{name} must be {_shape_text(lengths)}, got shape {arr.shape}")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"{name} must be finite and > 0, got {arr.ravel()[i].item()!r} at flat index {i}"
        )
    return arr.reshape(-1) if arr.ndim else arr


def vector(value: Any, name: str, dtype: type, n: int, what: str) -> np.ndarray | None:
    """An optional 1-D NumPy input of ``dtype`` and shape ``(n,)`` (a bias): ``None`` stays
    None; anything else raises ``TypeError`` / ``ValueError`` naming ``name``; ``what``
    says what the ``n`` values are for."""
    if value is None:
        return None
    tname = np.dtype(dtype).name
    if not isinstance(value, (np.ndarray, np.generic)):
        raise TypeError(f"{name} must be a {tname} NumPy array of shape ({n},), got "
                        f"{_describe(value)}")
    arr = native(np.asarray(value))
    if arr.dtype != dtype:
        raise TypeError(f"{name} must have dtype {tname}, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) ({what}), got shape {arr.shape}")
    return arr


def per_tensor(arr: np.ndarray) -> bool:
    """Whether a checked scale / zero point applies to the whole tensor."""
    return arr.size == 1


def wrap_i32(v: np.ndarray) -> np.ndarray:
    """int64 values reduced modulo 2^32 into int32 (two's-complement wrap-around)."""
    v = np.asarray(v, np.int64)
    if v.size == 0 or (v.min() >= -2**31 and v.max() < 2**31):
        return v.astype(np.int32)
    return ((v + 2**31) % 2**32 - 2**31).astype(np.int32)


def fma32(a: Any, b: Any, c: Any) -> np.ndarray:
    """``fl32(a * b + c)`` rounded once (x86 ``vfmadd``), for float32 operands.

    ``a * b`` is exact in float64; the float64 sum is rounded to odd (an inexact sum whose
    last bit is even moves one ulp toward the exact value), so rounding it to float32 gives
    the correctly rounded result (Boldo and Melquiond, 2008).
    """
    p = np.asarray(a, F32).astype(np.float64) * np.asarray(b, F32).astype(np.float64)
    c64 = np.asarray(c, F32).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        s = p + c64
        t = s - c64
        err = (p - t) + (c64 - (s - t))
        fix = (err != 0) & np.isfinite(s) & ((s.view(np.int64) & 1) == 0)
        if fix.any():
            s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
        return np.asarray(s, np.float64).astype(F32)


def requantize(acc: np.ndarray, out_scale: np.ndarray, zp: int, dtype: np.dtype) -> np.ndarray:
    """MLAS ``MlasRequantizeOutput`` (``onnxruntime/core/mlas/lib/quantize.cpp``).

    Per element, with ``acc`` the int32 accumulator (bias already added with int32
    wrap-around) and ``s`` the float32 scale of its column (the last axis)::

        v = fl32(float32(acc) * s)                 # cvtdq2ps rounds |acc| > 2^24
        v = min(max(v, qmin - zp), qmax - zp)      # maxps/minps; NaN -> qmin - zp
        y = round_half_even(v) + zp                # cvtps2dq, integer add
    """
    qmin, qmax = qrange(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(acc, np.int32).astype(F32) * np.asarray(out_scale, F32)
    v = np.where(np.isnan(v), F32(qmin - zp), v)
    v = np.minimum(np.maximum(v, F32(qmin - zp)), F32(qmax - zp))
    return (np.rint(v).astype(np.int32) + np.int32(zp)).astype(dtype)


def quantize_mlas(x: np.ndarray, s: Any, zp: int, dtype: np.dtype) -> np.ndarray:
    """MLAS ``MlasQuantizeLinear`` (``quantize.cpp``) of finite float32 ``x``::

        y = clip(round_half_even(fl32(x / s)), qmin - zp, qmax - zp) + zp
    """
    qmin, qmax = qrange(dtype)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        v = np.asarray(x, F32) / F32(s)
    v = np.where(np.isnan(v), F32(qmin - zp), v)
    v = np.minimum(np.maximum(v, F32(qmin - zp)), F32(qmax - zp))
    return (np.rint(v).astype(np.int32) + np.int32(zp)).astype(dtype)


def check_attr_int(value: Any, name: str, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}")
    if low is not None and int(value) < low:
        raise ValueError(f"{name} must be >= {low}, got {int(value)}")
    return int(value)


def check_ints(value: Any, name: str, n: int, low: int) -> tuple[int, ...]:
    """A sequence of ``n`` integers >= ``low`` (an attribute such as ``strides``)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a sequence of {n} integers, got {_describe(value)}")
    if len(value) != n:
        raise ValueError(f"{name} must have {n} entries, got {len(value)}: {list(value)!r}")
    return tuple(check_attr_int(v, f"{name}[{i}]", low) for i, v in enumerate(value))
