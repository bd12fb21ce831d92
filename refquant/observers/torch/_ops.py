"""torch 2.13's CPU float32 tensor operations that ``HistogramObserver`` uses, in NumPy.

Each function reproduces one ATen CPU kernel's arithmetic, operation by operation:

* :func:`fma32` -- ``fmaf(a, b, c)`` (one rounding). ATen's AVX2/AVX-512 kernels are built
  with FMA and GCC contracts ``start + step * idx`` into one; refquant assumes x86-64 with
  AVX2+FMA or AVX-512 (both of the project's CPU types).
* :func:`linspace32` -- ``aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp``
  (``linspace_kernel``, scalar since torch 2.x): ``step = (end - start) / (steps - 1)``;
  ``start + step * i`` for ``i < steps // 2``, else ``end - step * (steps - 1 - i)``.
* :func:`histc32` -- ``aten/src/ATen/native/Histogram.cpp`` (``histc_select_outer_bin_edges``,
  with ``bins_edges_correction`` widening an empty range to the next float32 outside
  ``[min - 1, max + 1]``) and ``cpu/HistogramKernel.cpp`` (``LINEAR_INTERPOLATION``:
  ``pos = int64((x - left) * bins / (right - left))``; a NaN or out-of-range ``pos`` is
  ``INT64_MIN`` on x86-64 and lands in bin 0 through pointer wrap-around).
* :func:`sum32` -- ``aten/src/ATen/native/cpu/SumKernel.cpp`` (``cascade_sum``: 4 vector
  accumulators, a 4-level cascade, lanes folded left to right) with 8 float32 lanes: torch
  2.13 sums with 256-bit vectors on an AVX-512 CPU (measured: 16 lanes do not match) and
  AVX2's vectors hold 8 floats; single thread (exact for ``numel <= 32768``, torch's grain
  size).
* :func:`cumsum32` -- ``cumsum`` accumulates float32 in double, rounding each output.
* :func:`div_floor32` -- ``div_floor_floating_vec`` (``cpu/BinaryOpsKernel.cpp``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fma32", "linspace32", "histc32", "sum32", "cumsum32", "div_floor32",
           "HistcRangeError"]

F32 = np.float32


class HistcRangeError(RuntimeError, ValueError):
    """torch.histc's ``RuntimeError`` (a non-finite range, or ``min > max``)."""


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``fmaf(a, b, c)`` on float32 arrays: ``a*b + c`` rounded once to float32.

    ``a*b`` is exact in float64; the float64 sum is made round-to-odd (TwoSum error term)
    so that the final rounding to float32 is correct (53 >= 2*24 + 2)."""
    a64, b64, c64 = (np.asarray(v, np.float64) for v in (a, b, c))
    with np.errstate(all="ignore"):
        p = a64 * b64
        s = p + c64
        bb = s - p
        err = (p - (s - bb)) + (c64 - bb)
        even = (s.view(np.int64) & 1) == 0 if s.ndim else (np.array(s).view(np.int64) & 1) == 0
        fix = np.isfinite(s) & (err != 0) & even
        s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
        return np.asarray(s).astype(F32)


def linspace32(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps)`` in float32 (start/end rounded to float32)."""
    s, e = F32(start), F32(end)
    with np.errstate(all="ignore"):
        step = F32(e - s) / F32(steps - 1) if steps > 1 else F32(e - s)
    half = steps // 2
    i = np.arange(steps)
    out = np.empty(steps, F32)
    out[:half] = fma32(np.full(half, step), i[:half].astype(F32), np.full(half, s))
    k = (steps - 1 - i[half:]).astype(F32)
    out[half:] = fma32(np.full(k.size, -step), k, np.full(k.size, e))
    return out


def _histc_edges(x: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """``histc_select_outer_bin_edges`` (float32 input): the double range [left, right]."""
    left, right = float(lo), float(hi)
    if left == right and x.size > 0:
        left, right = float(np.min(x)), float(np.max(x))
    if left == right:
        f = F32(left)
        with np.errstate(over="ignore"):
            left = min(float(np.nextafter(f, F32(-np.inf))), left - 1.0)
            right = max(float(np.nextafter(f, F32(np.inf))), right + 1.0)
    if not (np.isfinite(left) and np.isfinite(right)):
        raise HistcRangeError(f"torch.histc: range of [{left}, {right}] is not finite")
    if not left < right:
        raise HistcRangeError("torch.histc: max must be larger than min")
    return left, right


def histc32(x: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """``torch.histc(x, bins, min=lo, max=hi)`` for float32 ``x`` (float32 counts).

    Counts saturate at ``2**24`` per bin (float32 ``+= 1``); torch keeps one such
    histogram per thread, so beyond ``2**24`` equal-bin elements in one call torch's result
    depends on its thread count and this one is the single-thread value."""
    x = np.asarray(x, F32).reshape(-1)
    left_d, right_d = _histc_edges(x, lo, hi)
    edges = linspace32(left_d, right_d, bins + 1)
    left, right = edges[0], edges[-1]
    with np.errstate(all="ignore"):
        inside = bool(x.size) and x.min() >= left and x.max() <= right
        v = x if inside else x[(x >= left) & (x <= right)]
        q = np.subtract(v, left, dtype=F32)
        q *= F32(bins)
        q /= F32(right - left)
        if np.isfinite(q).all():  # q in [0, bins]: every index is exact
            pos = q.astype(np.int64)
        else:  # an overflowing (v - left) * bins: INT64_MIN * 4 bytes wraps to bin 0
            ok = np.isfinite(q) & (q > -(2.0**63)) & (q < 2.0**63)
            pos = np.where(ok, q, 0).astype(np.int64)
    counts = np.bincount(pos, minlength=bins + 1)
    counts[bins - 1] += counts[bins]  # x == right lands in the last bin
    return np.minimum(counts[:bins], 2**24).astype(F32)


def _seq_sum(acc: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``acc += rows[0]; acc += rows[1]; ...`` in float32 (sequential, per lane)."""
    if rows.shape[0] == 0:
        return acc
    return np.cumsum(np.concatenate([acc[None], rows]), axis=0, dtype=F32)[-1]


def _multi_row_sum(data: np.ndarray) -> np.ndarray:
    """SumKernel's ``multi_row_sum``: ``data`` shape ``(size, 4, lanes)``."""
    size = data.shape[0]
    levels = 4
    level_power = max(4, (int(size - 1).bit_length() if size > 1 else 0) // levels)
    level_step = 1 << level_power
    mask = level_step - 1
    acc = np.zeros((levels,) + data.shape[1:], F32)
    i = 0
    while i + level_step <= size:
        acc[0] = _seq_sum(acc[0], data[i:i + level_step])
        i += level_step
        for j in range(1, levels):
            acc[j] = acc[j] + acc[j - 1]
            acc[j - 1] = 0
            if i & (mask << (j * level_power)):
                break
    acc[0] = _seq_sum(acc[0], data[i:])
    for j in range(1, levels):
        acc[0] = acc[0] + acc[j]
    return acc[0]


def _row_sum(rows: np.ndarray) -> np.ndarray:
    """SumKernel's ``row_sum`` over ``rows`` (shape ``(size, lanes)``), ilp factor 4."""
    size = rows.shape[0]
    n4 = size // 4
    part = _multi_row_sum(rows[:n4 * 4].reshape(n4, 4, rows.shape[1]))
    part[0] = _seq_sum(part[0], rows[n4 * 4:])
    for k in range(1, 4):
        part[0] = part[0] + part[k]
    return part[0]


def sum32(x: np.ndarray, lanes: int = 8) -> np.float32:
    """``torch.sum`` of a contiguous 1-D float32 tensor on one thread (``lanes`` floats
    per vector; torch 2.13's reduction uses 8, see the module docstring)."""
    x = np.asarray(x, F32).reshape(-1)
    n = x.size
    if n >= lanes:
        nv = n // lanes
        vec = _row_sum(x[:nv * lanes].reshape(nv, lanes))
        acc = _seq_sum(np.zeros(1, F32), x[nv * lanes:, None])[0]
        return F32(_seq_sum(np.array([acc], F32), vec[:, None])[0])
    return F32(_row_sum(x[:, None])[0])


def cumsum32(x: np.ndarray) -> np.ndarray:
    """``torch.cumsum`` of float32 (double accumulator, each output rounded)."""
    return np.cumsum(np.asarray(x, np.float64)).astype(F32)


def div_floor32(a: np.ndarray, b: np.float32) -> np.ndarray:
    """``torch.div(a, b, rounding_mode="floor")`` for float32 ``a`` and scalar ``b``."""
    a = np.asarray(a, F32)
    b = F32(b)
    with np.errstate(all="ignore"):
        basic = a / b
        if b == 0:
            return basic
        mod = np.fmod(a, b)
        fl = np.where((np.abs(basic) == np.inf) & (np.abs(a) != np.inf), a, a - mod)
        div = fl / b
        div = np.where((mod != 0) & ((b < 0) != (mod < 0)), div - F32(1), div)
        floordiv = np.floor(div)
        floordiv = np.where(div - floordiv > F32(0.5), floordiv + F32(1), floordiv)
        floordiv = np.where(div == 0, np.copysign(F32(0), basic), floordiv)
    return floordiv.astype(F32)
