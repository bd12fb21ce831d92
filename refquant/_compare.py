"""Bit-exact comparison of arrays: the first differing element and its bit patterns.

A leaf module (NumPy only), shared by :mod:`refquant.testing`'s assertions and the
conformance rules of :mod:`refquant.conformance.compare`.

Float arrays compare by their bit patterns (``view(uint32)`` for float32), so
``-0.0 != 0.0`` and a difference of one ulp is a mismatch; every NaN equals every other NaN
(NaN payloads and the sign of NaN are not portable across compilers and instruction sets,
``refquant/_fixtures/SPEC.md``). Integer arrays compare exactly. dtype and shape must match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Mismatch", "bit_pattern", "diff_mask", "first_mismatch"]

_UINT_OF = {2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass
class Mismatch:
    """Where two arrays first differ (``index`` is a multi-index; ``None`` for dtype/shape)."""

    output: str
    reason: str
    index: tuple[int, ...] | None = None
    expected: Any = None
    actual: Any = None
    expected_bits: str | None = None
    actual_bits: str | None = None
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "reason": self.reason,
            "index": list(self.index) if self.index is not None else None,
            "expected": _jsonable(self.expected),
            "actual": _jsonable(self.actual),
            "expected_bits": self.expected_bits,
            "actual_bits": self.actual_bits,
            "mismatches": self.count,
        }

    def __str__(self) -> str:
        if self.index is None:
            return f"{self.output}: {self.reason}"
        eb = f" [{self.expected_bits}]" if self.expected_bits else ""
        ab = f" [{self.actual_bits}]" if self.actual_bits else ""
        return (f"{self.output}[{', '.join(map(str, self.index))}]: expected "
                f"{self.expected!r}{eb}, got {self.actual!r}{ab} ({self.count} element(s) differ)")


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        f = float(v)
        if np.isnan(f) or np.isinf(f):
            return repr(f)
        return f
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def bit_pattern(value: Any, dtype: np.dtype) -> str | None:
    """Hex bit pattern of one float element (``0x3f800000`` for float32 1.0); None for ints."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        return None
    u = np.asarray(value, dtype=dt).reshape(1).view(_UINT_OF[dt.itemsize])[0]
    return f"0x{int(u):0{dt.itemsize * 2}x}"


def diff_mask(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Boolean mask of the elements that differ (same dtype and shape): bit patterns for
    floats, except that any two NaNs are equal; values for integers."""
    if expected.dtype.kind == "f":
        ut = _UINT_OF[expected.dtype.itemsize]
        both_nan = np.isnan(expected) & np.isnan(actual)
        return (expected.view(ut) != actual.view(ut)) & ~both_nan
    return expected != actual


def first_mismatch(name: str, expected: Any, actual: Any) -> Mismatch | None:
    """Return the first element where ``actual`` differs from ``expected`` (bit-exact), or None."""
    exp = np.asarray(expected)
    act = np.asarray(actual)
    if exp.dtype != act.dtype:
        return Mismatch(name, f"dtype differs: expected {exp.dtype}, got {act.dtype}")
    if exp.shape != act.shape:
        return Mismatch(name, f"shape differs: expected {exp.shape}, got {act.shape}")
    if exp.size == 0:
        return None
    mask = diff_mask(exp, act)
    if not mask.any():
        return None
    flat = int(np.flatnonzero(mask.ravel())[0])
    idx = tuple(int(i) for i in np.unravel_index(flat, exp.shape)) if exp.ndim else ()
    e, a = exp[idx], act[idx]
    return Mismatch(name, "values differ", idx, e.item(), a.item(),
                    bit_pattern(e, exp.dtype), bit_pattern(a, act.dtype), int(mask.sum()))
