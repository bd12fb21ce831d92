"""Argument checks shared by every public function.

Policy (DESIGN.md principle 6): bad input raises ``ValueError`` or ``TypeError`` whose
message names the argument and the offending value; nothing the caller passed in is
modified; nothing returns a wrong number silently.
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

    The array is *not* copied when it already is an ndarray of an accepted dtype: callers
    must treat the result as read-only. Raises ``TypeError`` for non-numeric or integer
    input and ``ValueError`` for empty input, too few dimensions or non-finite values
    (unless ``allow_nonfinite``).
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
