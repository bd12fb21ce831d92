"""Argument checks shared by every public function.

Policy (``docs/architecture.md``, "Principles", item 6): bad input raises ``ValueError`` or
``TypeError`` whose message names the argument and the offending value; nothing the caller
passed in is modified; nothing returns a wrong number silently.

Two rules every helper applies: non-native (big-endian) arrays are converted to native byte
order first, so they give the same bits as native ones; and a value is never narrowed to a
float type whose range it exceeds (``1e39`` to float32 raises instead of becoming ``inf``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_bits",
    "check_axis",
    "check_positive_finite_scale",
    "check_choice",
    "check_percent",
    "native",
    "check_int",
    "check_flag",
    "check_real",
    "as_real_array",
    "to_float_dtype",
    "as_kernel_input",
    "check_scale_values",
    "as_zero_point",
]

_FLOAT_KINDS = "f"


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape}, dtype={value.dtype})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_float_array(
    x: Any,
    name: str,
    *,
    allow_nonfinite: bool = True,
    allow_empty: bool = False,
    dtypes: tuple[type, ...] | None = None,
    min_ndim: int = 0,
) -> np.ndarray:
    """Return ``x`` as a floating NumPy array (never a view the caller could see mutated).

    The array is *not* copied when it already is a native-byte-order ndarray of an accepted
    dtype: callers must treat the result as read-only. Non-native (big-endian) arrays are
    converted to native byte order, which keeps every value. Raises ``TypeError`` for
    non-numeric or integer input and ``ValueError`` for empty input, too few dimensions or
    non-finite values (unless ``allow_nonfinite``).
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        if isinstance(x, (str, bytes)) or x is None:
            raise TypeError(f"{name} must be a floating-point array, got {_describe(x)}")
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise TypeError(f"{name} must be array-like, got {_describe(x)}") from exc
        if arr.dtype.kind in "iub" and arr.dtype != np.bool_ and not isinstance(x, np.generic):
            # Python ints / lists of ints are promoted like NumPy would; explicit integer
            # *ndarrays* are rejected below so that quantized codes are never mistaken for
            # real values.
            arr = arr.astype(np.float64)
    if arr.dtype.kind not in _FLOAT_KINDS:
        raise TypeError(
            f"{name} must have a floating-point dtype (float16/float32/float64), "
            f"got dtype {arr.dtype}"
        )
    if dtypes is not None and arr.dtype.type not in dtypes:
        allowed = ", ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"{name} must have dtype in ({allowed}), got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # big-endian input: same values, native
    if not allow_nonfinite and arr.size and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise ValueError(
            f"{name} contains non-finite values (first at flat index {bad}: "
            f"{arr.ravel()[bad]!r}); pass ignore_nonfinite=True to drop them"
        )
    return arr


def check_bits(bits: Any, name: str = "bits", low: int = 2, high: int = 16) -> int:
    """Validate an integer bit width in ``[low, high]``."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an integer in [{low}, {high}], got {_describe(bits)}")
    if not low <= int(bits) <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {int(bits)}")
    return int(bits)


def check_axis(
    axis: Any, ndim: int, name: str = "axis", allowed: tuple[int, ...] | None = None
) -> int:
    """Validate an axis for an array of rank ``ndim``; returns it normalised to >= 0."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {_describe(axis)}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array of rank {ndim}")
    norm = axis % ndim
    if allowed is not None and norm not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {axis}")
    return norm


def check_positive_finite_scale(scale: np.ndarray, name: str = "scale") -> None:
    """Raise ``ValueError`` unless every element of ``scale`` is finite and > 0."""
    bad = ~(np.isfinite(scale) & (scale > 0))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"{name} must be finite and > 0, got {scale.ravel()[i]!r} at flat index {i}"
        )


def check_choice(value: Any, name: str, choices: tuple[Any, ...]) -> Any:
    """Validate that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {_describe(value)}")
    return value


def check_percent(percent: Any, name: str = "percent") -> float:
    """Validate a fraction in ``(0, 1]``."""
    if isinstance(percent, bool) or not isinstance(percent, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in (0, 1], got {_describe(percent)}")
    p = float(percent)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {p!r}")
    return p


def native(arr: np.ndarray) -> np.ndarray:
    """``arr`` in native byte order: ``arr`` itself when it already is, else a converted copy.

    A big-endian array holds the same values as its native copy, so every kernel gives the
    same bits for both.
    """
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """Validate an integer argument (Python or NumPy integer; ``bool`` is refused) in
    ``[low, high]`` (either bound may be ``None``). Floats are refused, also integral ones,
    so that nothing is truncated."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def check_flag(value: Any, name: str, *, allow_int: bool = False) -> bool:
    """Validate a boolean argument: ``bool`` or ``numpy.bool_`` (and 0 / 1 with ``allow_int``,
    for attributes that are integers in the format being emulated). Strings such as
    ``'no'`` are refused rather than taken as true."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if allow_int and isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    kind = "a bool (or 0/1)" if allow_int else "a bool"
    raise TypeError(f"{name} must be {kind}, got {_describe(value)}")


def check_real(
    value: Any, name: str, *, positive: bool = False, dtype: type = np.float64
) -> np.floating:
    """Validate a real-number argument (Python or NumPy int / float; not ``bool``) and return
    it as a ``dtype`` scalar. It must be finite after the conversion (a value beyond
    ``dtype``'s range raises instead of becoming inf) and, with ``positive``, > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    target = np.dtype(dtype)
    try:
        with np.errstate(over="ignore"):
            v = target.type(value)
    except OverflowError:  # a Python int beyond float64
        v = target.type(np.inf)
    if not np.isfinite(v):
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {_describe(value)}")
        raise ValueError(
            f"{name}={_describe(value)} is beyond the {target.name} range "
            f"(|v| <= {np.finfo(target).max:.7g})"
        )
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {_describe(value)}")
    return v  # type: ignore[no-any-return]


def as_real_array(x: Any, name: str, *, allow_empty: bool = True) -> np.ndarray:
    """``x`` (a number, nested sequence or array of real numbers) as a native-byte-order
    ndarray with its integer or floating dtype.

    Not copied when ``x`` already is a native ndarray: callers must treat the result as
    read-only. ``None``, strings, bools, complex numbers and objects raise ``TypeError``;
    an empty ``x`` raises ``ValueError`` unless ``allow_empty``.
    """
    if x is None or isinstance(x, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name} must be a real number or array, got {_describe(x)}")
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise TypeError(f"{name} must be a real number or array, got {_describe(x)}") from exc
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (an integer or floating dtype), got dtype "
            f"{arr.dtype}"
        )
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return native(arr)


def to_float_dtype(arr: np.ndarray, dtype: Any, name: str) -> np.ndarray:
    """Real ``arr`` converted to the floating ``dtype`` (native byte order; ``arr`` itself when
    it already has that dtype, so read-only for callers).

    Narrowing rounds once, as a cast does (tiny values may become subnormal or zero), but a
    finite value beyond ``dtype``'s range raises ``ValueError`` naming ``name`` instead of
    silently becoming ``+-inf``. NaN and infinities are kept.
    """
    target = np.dtype(dtype)
    src = native(np.asarray(arr))
    if src.dtype == target:
        return src
    with np.errstate(over="ignore", invalid="ignore"):
        out = src.astype(target)
    if out.size:
        bad = np.isinf(out)
        if src.dtype.kind == "f" and bad.any():
            bad &= ~np.isinf(src)
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            raise ValueError(
                f"{name} holds {src.ravel()[i].item()!r} (flat index {i}), beyond the "
                f"{target.name} range (|v| <= {np.finfo(target).max:.7g}); refquant does "
                f"not turn it into inf"
            )
    return out


def as_kernel_input(
    x: Any, name: str, dtypes: tuple[type, ...], *, allow_empty: bool = True
) -> np.ndarray:
    """Data input of a kernel emulation, in native byte order (not copied when acceptable).

    NumPy arrays and scalars must already have one of ``dtypes`` (``TypeError`` otherwise,
    so a float64 array is never narrowed silently); Python numbers and (nested) lists are
    converted to ``dtypes[0]`` (a floating dtype), as ``torch.tensor`` /
    ``paddle.to_tensor`` make float32 tensors of them, and a finite value beyond its range
    raises ``ValueError``. ``None``, strings, bools, complex numbers and objects raise
    ``TypeError``; an empty ``x`` raises ``ValueError`` unless ``allow_empty``.
    """
    if isinstance(x, (np.ndarray, np.generic)):
        arr = native(np.asarray(x))
        if arr.dtype.type not in dtypes:
            allowed = ", ".join(np.dtype(d).name for d in dtypes)
            raise TypeError(f"{name} must have dtype in ({allowed}), got dtype {arr.dtype}")
    else:
        arr = to_float_dtype(as_real_array(x, name), dtypes[0], name)
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def check_scale_values(
    scale: np.ndarray, name: str, *, allow_zero: bool = True, allow_nonfinite: bool = False,
    note: str = "",
) -> None:
    """Raise ``ValueError`` unless every element of ``scale`` is >= 0 (> 0 without
    ``allow_zero``) and finite (``allow_nonfinite`` lets NaN and +inf through, for kernels
    that define them). ``-0.0`` counts as zero. ``note`` is appended to the message."""
    with np.errstate(invalid="ignore"):
        ok = scale >= 0 if allow_zero else scale > 0
        ok = ok | np.isnan(scale) if allow_nonfinite else ok & np.isfinite(scale)
    if not np.all(ok):
        i = int(np.flatnonzero(~np.asarray(ok).ravel())[0])
        rule = (">= 0" if allow_zero else "> 0") + ("" if allow_nonfinite else " and finite")
        raise ValueError(
            f"{name} must be {rule}{note}, got {np.asarray(scale).ravel()[i].item()!r} at "
            f"flat index {i}"
        )


def as_zero_point(value: Any, name: str, qmin: int, qmax: int) -> np.ndarray:
    """Zero point(s) as int64: integers (or integer-valued floats) in ``[qmin, qmax]``."""
    arr = as_real_array(value, name)
    if arr.dtype.kind == "f" and arr.size and not (
        np.isfinite(arr).all() and (arr == np.round(arr)).all()
    ):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"{name} must hold integer values, got {arr.ravel()[i].item()!r} at flat index {i}"
        )
    out_of_range = (arr < qmin) | (arr > qmax)
    if np.any(out_of_range):
        i = int(np.flatnonzero(np.asarray(out_of_range).ravel())[0])
        raise ValueError(
            f"{name} must be in [qmin, qmax] = [{qmin}, {qmax}], got "
            f"{arr.ravel()[i].item()!r} at flat index {i}"
        )
    return arr.astype(np.int64)


#: float64 magnitudes from here on round to +-inf in float32: the midpoint ``2**128 - 2**103``
#: between float32's largest value and ``2**128`` rounds to even, which is upwards
F32_OVERFLOW = 2.0**128 - 2.0**103


def check_float32_range(x: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` when a finite element of ``x`` rounds to +-inf in float32.

    For arrays wider than float32 (float64, longdouble) whose values feed float32 scales or
    kernels: such a value (``1e39``, ``1e300``) cannot give a usable float32 result, so it is
    refused instead of becoming ``inf`` or a clipped finite number. NaN and +-inf are left to
    the caller's non-finite policy. Two reductions on the fast path, no copy of ``x``.
    """
    arr = np.asarray(x)
    if arr.dtype.kind != "f" or arr.dtype.itemsize <= 4 or arr.size == 0:
        return
    with np.errstate(invalid="ignore"):
        hi, lo = arr.max(), arr.min()
    if np.isfinite(hi) and np.isfinite(lo) and -F32_OVERFLOW < lo and hi < F32_OVERFLOW:
        return
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(arr) & (np.abs(arr) >= F32_OVERFLOW)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"{name} holds {arr.ravel()[i].item()!r} (flat index {i}), beyond the float32 "
            f"range (|v| <= {np.finfo(np.float32).max:.7g}): its float32 scale or result "
            "would be inf"
        )


def check_name(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Validate a string option: a ``str`` (``TypeError`` otherwise, also for arrays and
    bytes) that is one of ``choices`` (``ValueError`` otherwise)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}, got {_describe(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
