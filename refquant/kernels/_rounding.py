"""Rounding primitives shared by the kernel emulations (exact in any float dtype)."""

from __future__ import annotations

import numpy as np

__all__ = ["round_half_even", "round_half_away"]


def round_half_even(v: np.ndarray) -> np.ndarray:
    """IEEE roundTiesToEven in ``v``'s dtype (C ``nearbyint``/``rint`` in the default mode).

    NaN and +-Inf pass through; the sign of zero is kept (``-0.3 -> -0.0``).
    """
    return np.rint(v)


def round_half_away(v: np.ndarray) -> np.ndarray:
    """Round half away from zero (C ``round``, Eigen ``.round()``, CUDA ``round``).

    Computed as ``t = trunc(v)``; ``t + sign(v)`` when ``|v - t| >= 0.5``. ``v - t`` is
    exact in binary floating point, so unlike ``floor(v + 0.5)`` this never misrounds
    ``0.49999997``. NaN and +-Inf pass through; the sign of zero is kept.
    """
    v = np.asarray(v)
    t = np.trunc(v)
    with np.errstate(invalid="ignore"):
        bump = np.abs(v - t) >= 0.5
    return np.where(bump, t + np.sign(v), t).astype(v.dtype, copy=False)
