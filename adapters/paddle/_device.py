"""Statistics computed with Paddle tensor ops on the tensor's own device.

Every function here reduces a (possibly large) ``paddle.Tensor`` to a *small* host value --
a few floats, one value per sample or channel, or ``bins`` histogram counts -- with Paddle
kernels running where the tensor lives (CPU or GPU). Nothing copies the full tensor to the
host. The results are exactly what the NumPy reference computes from the same values,
because each statistic is exact: maxima and minima are exact, and histogram bin indices
are exact integer computations (see :func:`exact_histogram_counts`).

CPU dispatch: on a CPU place the tensor's memory *is* host memory. :func:`host_view` returns
a read-only NumPy array on that memory (DLPack, no copy), and the observer layers then run
refquant's own NumPy statistics on it instead of Paddle ops (several Paddle kernel launches
and a blocking read-back per batch, against one NumPy pass). GPU tensors, and every tensor
while :data:`FORCE_DEVICE_OPS` is true, take the Paddle-op functions below. Both paths give
the same statistics (``tests/test_adapter_fastpath.py``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import paddle

from refquant.histogram import E_MIN, ExactHistogram, grid_exponent

__all__ = [
    "FORCE_DEVICE_OPS",
    "host_view",
    "as_float_tensor",
    "check_finite",
    "min_max",
    "per_sample_abs_max",
    "per_sample_abs_max_finite",
    "min_max_finite",
    "channel_abs_max",
    "group_abs_max",
    "exact_histogram_of",
    "exact_histogram_counts",
    "std",
]

_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

#: Force the Paddle-op statistics for CPU tensors too (``host_view`` then returns ``None``).
#: For tests and ``bench/gpu_check.py`` only, which compare the two paths; initialised from
#: the environment variable ``REFQUANT_PADDLE_DEVICE_OPS`` (any value but ``""``/``"0"``)
#: and read at every call, so it may be changed at run time.
FORCE_DEVICE_OPS: bool = os.environ.get("REFQUANT_PADDLE_DEVICE_OPS", "") not in ("", "0")


def host_view(x: paddle.Tensor) -> np.ndarray | None:
    """A read-only NumPy view of a CPU tensor's memory, or ``None``.

    ``None`` for a tensor on any other place (its statistics are computed there with Paddle
    ops), while :data:`FORCE_DEVICE_OPS` is set, or when the tensor cannot be exported
    through DLPack. The array shares the tensor's memory (``np.from_dlpack``: no copy, the
    tensor stays alive as long as the array), so it must only be read: it is marked
    read-only. A tensor that requires gradients is viewed through ``detach()`` (same memory).
    """
    if FORCE_DEVICE_OPS or not x.place.is_cpu_place():
        return None
    try:
        arr = np.from_dlpack(x if x.stop_gradient else x.detach())
    except (BufferError, RuntimeError, TypeError, ValueError):  # pragma: no cover - exotic
        return None
    arr.flags.writeable = False
    return arr


def _dtype_name(t: paddle.Tensor) -> str:
    return str(t.dtype).replace("paddle.", "")


def as_float_tensor(x: Any, name: str = "x") -> paddle.Tensor:
    """``x`` as a float32/float64 tensor (float16/bfloat16 widen to float32 exactly)."""
    if not isinstance(x, paddle.Tensor):
        raise TypeError(f"{name} must be a paddle.Tensor, got {type(x).__name__}")
    dt = _dtype_name(x)
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {dt}")
    if 0 in x.shape:  # (x.size is a much slower property)
        raise ValueError(f"{name} must not be empty, got shape {list(x.shape)}")
    if dt in ("float16", "bfloat16"):
        return x.astype("float32")
    return x


def check_finite(x: paddle.Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` when ``x`` holds NaN or +-Inf (one reduction, one scalar read)."""
    if not bool(paddle.isfinite(x).all()):
        raise ValueError(
            f"{name} holds NaN or Inf values (shape {list(x.shape)}); pass "
            "ignore_nonfinite=True to drop them"
        )


def finite_values(x: paddle.Tensor) -> paddle.Tensor:
    """The finite elements of ``x`` as a 1-D tensor on ``x``'s device."""
    return paddle.masked_select(x, paddle.isfinite(x))


def min_max(x: paddle.Tensor) -> tuple[float, float]:
    """``(min(x), max(x))`` as Python floats (exact: the float value of two elements)."""
    both = paddle.stack([paddle.min(x), paddle.max(x)]).astype("float64")
    lo, hi = (float(v) for v in both.numpy())
    return lo, hi


def std(x: paddle.Tensor, axis: int | None = None) -> paddle.Tensor:
    """``paddle.std(x, axis)`` (unbiased), bit for bit, without its type-promotion log line.

    On a CPU build Paddle 3.3.1 computes it in Python (``python/paddle/tensor/stat.py`` of
    PaddlePaddle/Paddle, ``var`` then ``sqrt``): ``u = mean(x, axis, keepdim=True)``,
    ``t = sum(pow(x - u, 2), axis)``, ``sqrt(t / (fl32(n) - 1))`` with ``n`` the count per
    result element, obtained from an int64 true division that makes Paddle log "Got
    different data type, run type promotion automatically" (once per process). The same
    kernels run here, with ``n`` built as a float32 constant. CUDA builds (fused
    ``_C_ops.std``), other dtypes and fewer than 2 elements per result are left to
    ``paddle.std`` itself.
    """
    count = int(x.size) if axis is None else int(x.shape[axis])
    if paddle.is_compiled_with_cuda() or _dtype_name(x) not in ("float32", "float64") \
            or count < 2:
        return paddle.std(x, axis=axis)
    u = paddle.mean(x, axis=axis, keepdim=True)
    t = paddle.sum(paddle.pow(x - u, 2), axis=axis)
    n = paddle.full([], float(np.float32(count)), dtype=x.dtype) - 1.0
    return paddle.sqrt(t / n)


def _all_finite(x: paddle.Tensor, probe: Any) -> bool:
    """Finiteness of ``x`` given ``probe``, a float sum over ``x`` already on the host.

    A NaN or Inf anywhere makes an IEEE sum NaN or +-Inf on every device, whatever the
    summation order (NaN propagation through max/min reductions, by contrast, is not
    guaranteed on every device). A non-finite sum can also be an overflow of finite values,
    so only then is the exact ``isfinite`` test run.
    """
    if bool(np.all(np.isfinite(probe))):
        return True
    return bool(paddle.isfinite(x).all())


def min_max_finite(x: paddle.Tensor) -> tuple[float, float, bool]:
    """``(min(x), max(x), all finite)`` with a single device-to-host transfer."""
    vals = paddle.stack([paddle.min(x), paddle.max(x), paddle.sum(x)]).astype("float64").numpy()
    return float(vals[0]), float(vals[1]), _all_finite(x, vals[2])


def per_sample_abs_max(x: paddle.Tensor) -> np.ndarray:
    """``max |x[i, ...]|`` for every index of axis 0 (shape ``(n,)``, x's dtype)."""
    flat = x.reshape([x.shape[0], -1])
    return paddle.max(paddle.abs(flat), axis=1).numpy()


def per_sample_abs_max_finite(x: paddle.Tensor) -> tuple[np.ndarray, bool]:
    """:func:`per_sample_abs_max` and whether ``x`` is all finite, in one transfer."""
    flat = x.reshape([x.shape[0], -1])
    n = flat.shape[0]
    both = paddle.concat([paddle.max(paddle.abs(flat), axis=1), paddle.sum(flat, axis=1)])
    vals = both.numpy()
    return vals[:n], _all_finite(x, vals[n:])


def channel_abs_max(x: paddle.Tensor, axis: int) -> np.ndarray:
    """``max |x|`` over every axis but ``axis`` (shape ``(C,)``, x's dtype)."""
    other = [d for d in range(x.ndim) if d != axis]
    if not other:
        return paddle.abs(x).numpy()
    return paddle.max(paddle.abs(x), axis=other).numpy()


def group_abs_max(w: paddle.Tensor, group_size: int) -> np.ndarray:
    """``max |w[g*G:(g+1)*G, j]|`` -> shape ``[rows / G, cols]`` (w's dtype)."""
    rows, cols = w.shape
    r = w.reshape([rows // group_size, group_size, cols])
    return paddle.max(paddle.abs(r), axis=1).numpy()


def _pow2_factors(k: int) -> list[float]:
    """Split ``2**k`` into factors that are normal float32 numbers (each exact)."""
    out = []
    while k > 100:
        out.append(2.0**100)
        k -= 100
    while k < -100:
        out.append(2.0**-100)
        k += 100
    out.append(2.0**k)
    return out


def _floor_pow2(v: float, e: int) -> int:
    num, den = float(v).as_integer_ratio()
    if e >= 0:
        return num // (den << e)
    return (num << -e) // den


def exact_histogram_counts(
    x: paddle.Tensor, bins: int, exponent: int, offset: int, symmetric: bool
) -> np.ndarray:
    """Counts of ``x`` on the power-of-two grid ``(exponent, offset)`` (int64, ``(bins,)``).

    Bin of ``v`` (``|x|`` when ``symmetric``): ``floor(v * 2**-exponent) - offset``. The
    product by a power of two is exact in the tensor's dtype (it only moves the binary
    exponent; the factor is applied in pieces that are normal float32 numbers); a result
    below the normal range is below 1 and floors to 0, except a negative value that
    underflows to ``-0.0``, which is patched to ``-1`` (the same rule as
    ``refquant.histogram.ExactHistogram.add``). The integer indices are then counted
    with ``paddle.bincount`` on the device; only the ``bins`` counts come back.
    """
    v = paddle.abs(x) if symmetric else x
    v = v.reshape([-1])
    t = v
    for f in _pow2_factors(-exponent):
        t = t * paddle.to_tensor(f, dtype=t.dtype)
    if symmetric:
        idx = t.astype("int64")  # t >= 0: truncation is floor; t < bins
    else:
        fl = paddle.floor(t)
        if exponent > 0:
            fl = paddle.where((fl == 0) & (v < 0), paddle.full_like(fl, -1.0), fl)
        idx = fl.astype("int64") - offset
    counts = paddle.bincount(idx, minlength=bins).numpy().astype(np.int64)
    if counts.size != bins:  # pragma: no cover - guarded by the grid proof
        raise AssertionError("device histogram index left the grid (internal error)")
    return counts


def exact_histogram_of(x: paddle.Tensor, bins: int, symmetric: bool,
                       lo_hi: tuple[float, float] | None = None) -> ExactHistogram:
    """An :class:`ExactHistogram` of one finite batch, counted on the device.

    The grid is the one :class:`ExactHistogram` defines for this batch's range; merging it
    into a running histogram (``ExactHistogram.merge``, exact folding) gives the same counts
    as ``ExactHistogram.add`` on the host (both equal the histogram of the union of the
    values on the union's grid: order-free by construction). ``lo_hi``: ``(min(x),
    max(x))`` when already known.
    """
    lo, hi = min_max(x) if lo_hi is None else lo_hi
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"x must be finite, got min={lo!r}, max={hi!r}")
    lo = 0.0 if lo == 0.0 else lo
    hi = 0.0 if hi == 0.0 else hi
    glo, ghi = (0.0, max(-lo, hi)) if symmetric else (lo, hi)
    e = grid_exponent(glo, ghi, bins)
    off = _floor_pow2(glo, e)
    n = int(x.size)
    if not ghi > glo:
        counts = np.zeros(bins, np.int64)
        counts[0] = n
    else:
        counts = exact_histogram_counts(x, bins, e, off, symmetric)
    # from_counts re-derives the grid from (lo, hi) and checks it against ours
    return ExactHistogram.from_counts(
        counts, exponent=e if ghi > glo else E_MIN,
        offset=off if ghi > glo else _floor_pow2(glo, E_MIN), min=lo, max=hi,
        symmetric=symmetric)
