"""Deterministic input builders for case families.

No ``np.random``: Generator streams may change between NumPy releases and transcendental
functions may differ by an ulp between builds, either of which would make regenerated
fixtures drift. Everything here is integer hashing (SplitMix64) and exactly rounded
arithmetic, so the same bytes come out on every platform.
"""

from __future__ import annotations

import numpy as np

__all__ = ["f32", "uniform", "normal", "heavy_tailed", "near_ties_mul", "near_ties_div",
           "special_values", "ulp_neighbours", "DISTRIBUTIONS", "distribution"]

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix(seed: int, n: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(seed * 0x632BE59BD9B4E019 % (1 << 64)))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z & _M64


def _unit(seed: int, n: int) -> np.ndarray:
    """float64 in [0, 1), exactly ``k / 2^53``."""
    return (_splitmix(seed, n) >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def uniform(seed: int, shape: int | tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    n = int(np.prod(shape))
    return (lo + (hi - lo) * _unit(seed, n)).astype(np.float32).reshape(shape)


def normal(seed: int, shape: int | tuple[int, ...], sigma: float = 1.0, mu: float = 0.0
           ) -> np.ndarray:
    """Approximately normal (Irwin-Hall: sum of 12 uniforms minus 6), exact arithmetic."""
    n = int(np.prod(shape))
    u = _unit(seed, 12 * n).reshape(n, 12)
    return (mu + sigma * (u.sum(axis=1) - 6.0)).astype(np.float32).reshape(shape)


def heavy_tailed(seed: int, shape: int | tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """Symmetric Pareto-like tails: ``sign * (1/(1-u) - 1) * scale`` (outliers included)."""
    n = int(np.prod(shape))
    u = _unit(seed, n)
    s = np.where(_unit(seed + 7919, n) < 0.5, -1.0, 1.0)
    return (s * (1.0 / (1.0 - 0.999 * u) - 1.0) * scale).astype(np.float32).reshape(shape)


DISTRIBUTIONS = ("normal", "uniform", "heavy", "relu", "bimodal", "constant_outlier")


def distribution(name: str, seed: int, shape: int | tuple[int, ...], scale: float = 1.0
                 ) -> np.ndarray:
    """One of :data:`DISTRIBUTIONS`, float32."""
    if name == "normal":
        return normal(seed, shape, scale)
    if name == "uniform":
        return uniform(seed, shape, -scale, scale)
    if name == "heavy":
        return heavy_tailed(seed, shape, scale)
    if name == "relu":
        return np.maximum(normal(seed, shape, scale), np.float32(0))
    if name == "bimodal":
        x = normal(seed, shape, 0.2 * scale)
        sign = np.where(uniform(seed + 1, shape, 0, 1) < 0.5, -1, 1).astype(np.float32)
        return (x + sign * np.float32(scale)).astype(np.float32)
    if name == "constant_outlier":
        x = np.full(shape, np.float32(0.25 * scale), dtype=np.float32)
        x.reshape(-1)[-1] = np.float32(-8 * scale)
        return x
    raise ValueError(f"unknown distribution {name!r}")


def ulp_neighbours(x: np.ndarray, k: int = 1) -> np.ndarray:
    """``x`` and its float32 neighbours up to ``k`` ulps each way (concatenated)."""
    x = np.asarray(x, dtype=np.float32)
    parts = [x]
    up, down = x.copy(), x.copy()
    for _ in range(k):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(-np.inf))
        parts += [up, down]
    return np.concatenate(parts).astype(np.float32)


def near_ties_mul(c: np.float32, halves: np.ndarray) -> np.ndarray:
    """x near ``fl(c * x) == h`` for each half-integer ``h`` (the Paddle multiply order)."""
    x = (np.asarray(halves, dtype=np.float64) / np.float64(c)).astype(np.float32)
    return ulp_neighbours(x, 2)


def near_ties_div(s: np.float32, halves: np.ndarray) -> np.ndarray:
    """x near ``fl(x / s) == h`` for each half-integer ``h`` (the ONNX divide order)."""
    x = (np.asarray(halves, dtype=np.float64) * np.float64(s)).astype(np.float32)
    return ulp_neighbours(x, 2)


def special_values(with_nan: bool = True, with_inf: bool = True) -> np.ndarray:
    """+-0, subnormals, the smallest normal, huge finite values, and optionally Inf/NaN."""
    v = [0.0, -0.0, 1e-45, -1e-45, 1e-40, -3e-39, 1.17549435e-38, -1.17549435e-38,
         1e-7, -0.3, 0.3, 3e9, -3e9, 3.4028235e38, -3.4028235e38]
    if with_inf:
        v += [np.inf, -np.inf]
    if with_nan:
        v += [np.nan]
    return np.array(v, dtype=np.float32)
