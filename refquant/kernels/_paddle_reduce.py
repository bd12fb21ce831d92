"""Paddle 3.3.1's CPU ``mean`` / ``sum`` / ``std`` reduction orders, reproduced bit for bit.

Paddle's CPU ``mean``/``sum`` kernels evaluate Eigen reductions on ``Eigen::DefaultDevice``
(x86-64 wheels built with AVX: one packet is 32 bytes, 8 float32 or 4 float64 lanes). The
packet width is fixed when Paddle is compiled, not chosen at run time, so these orders are the
same on AVX2 and AVX-512 CPUs (measured on both). Three shapes of summation occur (measured
on Paddle 3.3.1 CPU):

* full ``mean`` (a *stateful* reducer, no tree), :func:`paddle_mean` / :class:`LaneSum`:
  one packet accumulator over the leading ``lanes * floor(n / lanes)`` elements in order
  (lane ``j`` adds ``x[j], x[j + lanes], ...`` sequentially from 0), a scalar accumulator
  over the tail, the packet folded by halving (``p[i] + p[i + lanes/2]`` ... down to one
  value: for 8 lanes ``(q0 + q2) + (q1 + q3)`` with ``q_i = p_i + p_{i+4}``), then
  ``tail + folded`` and one division by ``T(n)``. float32 and float64.
* full ``sum`` (Eigen's tree reducer), :func:`eigen_sum` (float32): ranges longer than
  ``8 * 1024`` elements are split in two (the split rounded up to a packet boundary) and the
  halves' sums added; a leaf uses two packet accumulators over alternating packets, a last
  odd packet into the first, the two packets added, a scalar tail, ``tail + fold(packets)``.
* partial reductions (``paddle.sum(x, axis=1)`` or ``axis=0`` of a 2-D tensor,
  ``paddle.mean`` likewise) and the broadcast-gradient reduction (``subtract_grad`` onto a
  ``[1]`` operand): plain sequential float32 accumulation per output element.

``paddle.std`` combines them with Eigen's ``pow`` (see :func:`paddle_std`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_float_array

__all__ = [
    "lanes_for",
    "LaneSum",
    "paddle_mean",
    "eigen_mean",
    "eigen_sum",
    "eigen_sum_rows",
    "eigen_mean_rows",
    "eigen_sum_cols",
    "eigen_mean_cols",
    "sequential_sum",
]

F32 = np.float32
_LANES = 8  # float32 lanes of one AVX packet
_LEAF = 1024  # packets per leaf of Eigen's tree reducer
_CHUNK_ROWS = 1 << 12


def lanes_for(dtype: np.dtype) -> int:
    """Number of SIMD lanes of Paddle's CPU full reduction: 32 bytes / itemsize."""
    return max(1, 32 // np.dtype(dtype).itemsize)


def _fold(acc: np.ndarray, scalar_last: bool = False) -> np.generic:
    """Eigen's ``predux`` of one packet: add the halves until one value is left.

    ``scalar_last=True`` does the last addition (and nothing else differently) with NumPy
    scalar arithmetic instead of an array ufunc loop. The value is the same; only the sign
    of a NaN produced from two NaNs of opposite sign can differ (NumPy's scalar and array
    loops pass the operands to the CPU in opposite order). Neither matches Paddle in that
    case (Paddle's own NaN sign there depends on how its kernel was compiled).
    :func:`eigen_mean` and :func:`eigen_sum` pass ``scalar_last=True``, so their NaN signs
    stay fixed.
    """
    dt = acc.dtype
    a = acc
    stop = 2 if scalar_last and a.size > 1 else 1
    while a.size > stop:
        h = a.size // 2
        a = np.add(a[:h], a[h:], dtype=dt)
    if stop == 2:
        return dt.type(dt.type(a[0]) + dt.type(a[1]))
    return dt.type(a[0])


class LaneSum:
    """Streaming form of :func:`paddle_mean`'s sum for a tensor fed in consecutive pieces.

    Every piece but the last must hold a multiple of ``lanes`` elements (so each element
    lands in the lane it occupies in the whole tensor). ``acc`` may hold several
    independent sums (leading dimensions), e.g. one per search candidate.
    """

    def __init__(self, dtype: np.dtype, batch_shape: tuple[int, ...] = ()) -> None:
        self.dtype = np.dtype(dtype)
        self.lanes = lanes_for(self.dtype)
        self.acc = np.zeros((*batch_shape, self.lanes), dtype=self.dtype)
        self.tail = np.zeros(batch_shape, dtype=self.dtype)
        self.count = 0

    def add(self, values: np.ndarray) -> None:
        """Add ``values`` of shape ``(*batch_shape, m)`` (float, dtype ``self.dtype``)."""
        m = values.shape[-1]
        P = self.lanes
        full = (m // P) * P
        step = _CHUNK_ROWS * P
        for start in range(0, full, step):  # bounded temporaries
            stop = min(start + step, full)
            blocks = values[..., start:stop].reshape(*values.shape[:-1], (stop - start) // P, P)
            # numpy reduces a non-contiguous axis sequentially: acc[j] += v[i, j] in order
            stacked = np.concatenate([self.acc[..., None, :], blocks], axis=-2)
            self.acc = stacked.sum(axis=-2, dtype=self.dtype)
        for j in range(full, m):
            self.tail = np.add(self.tail, values[..., j], dtype=self.dtype)
        self.count += m

    def total(self) -> np.ndarray:
        """``tail + fold(lanes)`` in ``dtype`` (Eigen's ``finalizeBoth``)."""
        flat = self.acc.reshape(-1, self.lanes)
        folded = np.array([_fold(r) for r in flat], dtype=self.dtype).reshape(self.tail.shape)
        return np.add(self.tail, folded, dtype=self.dtype)

    def mean(self) -> np.ndarray:
        """``total / T(n)``, one rounding in ``dtype``."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.divide(self.total(), self.dtype.type(self.count), dtype=self.dtype)


def _lane_mean(flat: np.ndarray) -> np.generic:
    """Full ``paddle.mean`` of a 1-D float32 / float64 array (no checks)."""
    acc = LaneSum(flat.dtype)
    acc.add(flat)
    return flat.dtype.type(acc.mean())


def paddle_mean(x: Any) -> np.generic:
    """``paddle.mean(x)`` over the whole tensor (CPU, Paddle 3.3.1), bit for bit.

    See the module docstring for the lane model. ``x`` is float32 or float64 and is read
    in C order; the result is a scalar of ``x.dtype``.
    """
    arr = np.ascontiguousarray(as_float_array(x, "x", allow_nonfinite=True)).ravel()
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got dtype {arr.dtype}")
    return _lane_mean(arr)


def eigen_mean(x: np.ndarray) -> np.float32:
    """``paddle.mean(x)`` of ``x`` converted to float32, no argument checks.

    :func:`paddle_mean`'s lane model (8 lanes); the finishing ``tail + fold(lanes)`` and
    ``/ n`` are NumPy scalar operations (see :func:`_fold`: only a NaN's sign can differ
    from :func:`paddle_mean`, when NaNs of both signs meet).
    """
    flat = np.ascontiguousarray(x, dtype=F32).ravel()
    acc = LaneSum(flat.dtype)
    acc.add(flat)
    total = F32(F32(acc.tail) + _fold(acc.acc, scalar_last=True))
    return F32(total / F32(flat.size))


def _tail(v: np.ndarray, start: int) -> np.float32:
    """Scalar accumulation ``((0 + v[start]) + ...)`` (``add.accumulate`` is sequential)."""
    if start >= v.size:
        return F32(0.0)
    return F32(np.add.accumulate(v[start:], dtype=F32)[-1] + F32(0.0))


def sequential_sum(x: np.ndarray) -> np.float32:
    """``((0 + x0) + x1) + ...`` in float32: Paddle's CPU reduction of a broadcast gradient
    (``subtract_grad`` onto a ``[1]`` operand), measured bit-exact."""
    return _tail(np.ascontiguousarray(x, dtype=F32).ravel(), 0)


def _tree_sum_1d(v: np.ndarray) -> np.float32:
    n = v.size
    if n > _LANES * _LEAF:
        split = _LANES * -(-((n + 1) // 2) // _LANES)
        left = _tree_sum_1d(v[:split])
        acc = F32(F32(0.0) + left)
        if split < n:
            acc = F32(acc + _tree_sum_1d(v[split:]))
        return acc
    full = n // _LANES
    pairs = full // 2
    if pairs:
        blocks = v[: pairs * 2 * _LANES].reshape(pairs, 2, _LANES)
        p1 = np.add.reduce(blocks[:, 0, :], axis=0, dtype=F32)
        p2 = np.add.reduce(blocks[:, 1, :], axis=0, dtype=F32)
    else:
        p1 = np.zeros(_LANES, F32)
        p2 = np.zeros(_LANES, F32)
    if full % 2:
        p1 = (p1 + v[pairs * 2 * _LANES : full * _LANES]).astype(F32)
    p1 = (p1 + p2).astype(F32)
    return F32(_tail(v, full * _LANES) + _fold(p1, scalar_last=True))


def eigen_sum(x: np.ndarray) -> np.float32:
    """``paddle.sum(x)`` of a float32 tensor on CPU: Eigen's 8-lane tree reduction."""
    return _tree_sum_1d(np.ascontiguousarray(x, dtype=F32).ravel())


def _seq_rows(rows: np.ndarray) -> np.ndarray:
    """Float32 sum of each row, adding the columns one by one from 0."""
    if rows.shape[1] == 0:
        return np.zeros(rows.shape[0], F32)
    return (np.add.accumulate(rows, axis=1, dtype=F32)[:, -1] + F32(0.0)).astype(F32)


def eigen_sum_rows(x2d: np.ndarray) -> np.ndarray:
    """``paddle.sum(x2d, axis=1)``: a partial reduction, plain sequential float32 per row."""
    return _seq_rows(np.asarray(x2d, dtype=F32))


def eigen_mean_rows(x2d: np.ndarray) -> np.ndarray:
    """``paddle.mean(x2d, axis=1)``: sequential float32 row sums, then ``/ columns``."""
    x = np.asarray(x2d, dtype=F32)
    return (_seq_rows(x) / F32(x.shape[1])).astype(F32)


def eigen_mean_cols(x2d: np.ndarray) -> np.ndarray:
    """``paddle.mean(x2d, axis=0)``: row-by-row float32 accumulation, then ``/ rows``."""
    x = np.asarray(x2d, dtype=F32)
    return (_seq_rows(x.T) / F32(x.shape[0])).astype(F32)


def eigen_sum_cols(x2d: np.ndarray) -> np.ndarray:
    """``paddle.sum(x2d, axis=0)``: row-by-row float32 accumulation."""
    return _seq_rows(np.asarray(x2d, dtype=F32).T)
