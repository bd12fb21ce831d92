"""``com.microsoft.QLinearGlobalAveragePool`` / ``QLinearAveragePool`` as ONNX Runtime's CPU
kernels compute them.

QLinearGlobalAveragePool (``contrib_ops/cpu/quantization/qlinear_global_average_pool.cc``,
MLAS ``qlgavgpool.cpp``), per image and channel over the ``S`` spatial elements::

    acc = sum(x) - zx * S                                    # int32
    s   = fl32(sx / fl32(sy * float32(S)))                   # ORT refuses s < 2^-32, s >= 256
    y   = MlasRequantizeOutput(acc, s, zy)                   # see _common.requantize

QLinearAveragePool (``contrib_ops/cpu/quantization/qlinear_pool.cc``) dequantizes,
averages in float32 and quantizes::

    d   = fl32(sx * float32(x - zx))
    acc = d[first] + d[second] + ...                         # float32, window in row-major order
    avg = fl32(acc / float32(count))     # count: kernel size with count_include_pad, else the
                                         # window clipped to the input
    y   = clip(int32(rne(fl32(fl32(avg / sy) + float32(zy)))), qmin, qmax)

When the kernel covers the whole image without padding, ORT runs the global kernel instead.
Both kernels are the same on every x86-64 CPU (``isa`` is checked only); the ARM64 global
kernel has the same arithmetic.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ._common import F32, as_codes, check_ints, qrange, requantize, scale, zero_point
from ._conv import same_pads
from ._dispatch import check_isa

__all__ = ["qlinear_average_pool", "qlinear_global_average_pool"]


def _global(x: np.ndarray, sx: np.ndarray, zx: int, sy: np.ndarray, zy: int,
            channels_last: bool) -> np.ndarray:
    n = x.shape[0]
    if channels_last:
        c = x.shape[-1]
        flat = x.reshape(n, -1, c).transpose(0, 2, 1)
    else:
        c = x.shape[1]
        flat = x.reshape(n, c, -1)
    size = flat.shape[-1]
    if size >= 0x1000000:
        raise ValueError(f"x has {size} spatial elements per channel; ONNX Runtime refuses "
                         "2^24 or more ('ImageSize too large')")
    s = F32(F32(sx) / F32(F32(sy) * F32(size)))
    if s < F32(2.0**-32) or s >= F32(256):
        raise ValueError(
            f"x_scale / (y_scale * {size}) = {float(s)!r} is outside [2^-32, 256): ONNX Runtime "
            "raises 'QLinearGlobalAveragePool parameter out of computation range'"
        )
    acc = flat.astype(np.int64).sum(axis=-1) - zx * size
    y = requantize(acc.astype(np.int32), s, zy, x.dtype)  # [N, C]
    ones = (1,) * (x.ndim - 2)
    return y.reshape((n,) + ones + (c,)) if channels_last else y.reshape((n, c) + ones)


def qlinear_global_average_pool(
    x: Any, x_scale: Any, x_zero_point: Any, y_scale: Any, y_zero_point: Any, *,
    channels_last: int = 0, isa: str = "host",
) -> np.ndarray:
    """``QLinearGlobalAveragePool(X, x_scale, x_zero_point, y_scale, y_zero_point)``.

    ``x``: uint8 or int8 [N, C, D1, ...] (or [N, D1, ..., C] with ``channels_last=1``);
    returns the same dtype with spatial dimensions 1.
    """
    check_isa(isa)
    xx = as_codes(x, "x")
    if xx.ndim < 3:
        raise ValueError(f"x must have rank >= 3, got shape {xx.shape}")
    if channels_last not in (0, 1) or isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be 0 or 1, got {channels_last!r}")
    sx, sy = scale(x_scale, "x_scale"), scale(y_scale, "y_scale")
    zx = int(zero_point(x_zero_point, "x_zero_point", xx.dtype, "x"))
    zy = int(zero_point(y_zero_point, "y_zero_point", xx.dtype, "x (the output type)"))
    return _global(xx, sx, zx, sy, zy, bool(channels_last))


def _out_size(size: int, k: int, s: int, pad_head: int, pad: int, ceil_mode: int) -> int:
    """``PoolAttributes::ComputeOutputSize``: with ``ceil_mode`` a last window that would
    start beyond the input and the head padding is dropped."""
    v = (size + pad - k) / s + 1
    if not ceil_mode:
        return int(v)
    o = int(math.ceil(v))
    return o - 1 if (o - 1) * s >= size + pad_head else o


def qlinear_average_pool(
    x: Any,
    x_scale: Any,
    x_zero_point: Any,
    y_scale: Any,
    y_zero_point: Any,
    *,
    kernel_shape: Any,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    count_include_pad: int = 0,
    pads: Any = None,
    strides: Any = None,
    channels_last: int = 0,
    isa: str = "host",
) -> np.ndarray:
    """``QLinearAveragePool(X, x_scale, x_zero_point, y_scale, y_zero_point)`` for 1-3
    spatial dimensions (NCHW, or NHWC with ``channels_last=1``)."""
    check_isa(isa)
    xx = as_codes(x, "x")
    if not 3 <= xx.ndim <= 5:
        raise ValueError(f"x must have 1 to 3 spatial dimensions, got shape {xx.shape}")
    if channels_last not in (0, 1) or isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be 0 or 1, got {channels_last!r}")
    xn = np.moveaxis(xx, -1, 1) if channels_last else xx
    r = xn.ndim - 2
    k = check_ints(kernel_shape, "kernel_shape", r, 1)
    st = (1,) * r if strides is None else check_ints(strides, "strides", r, 1)
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise ValueError(f"auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, got "
                         f"{auto_pad!r}")
    p = (0,) * (2 * r) if pads is None else check_ints(pads, "pads", 2 * r, 0)
    sx, sy = scale(x_scale, "x_scale"), scale(y_scale, "y_scale")
    zx = int(zero_point(x_zero_point, "x_zero_point", xx.dtype, "x"))
    zy = int(zero_point(y_zero_point, "y_zero_point", xx.dtype, "x (the output type)"))
    spatial = xn.shape[2:]
    begin, out, all_pads = [], [], []
    for i in range(r):
        if auto_pad == "VALID":
            b, e = 0, 0
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            b, e = same_pads(spatial[i], k[i], st[i], auto_pad)
        else:
            b, e = p[i], p[r + i]
        o = _out_size(spatial[i], k[i], st[i], b, b + e, ceil_mode)
        if o < 1:
            raise ValueError(f"kernel_shape {list(k)} with pads {list(p)} gives an empty output "
                             f"for x spatial shape {spatial}")
        begin.append(b)
        out.append(o)
        all_pads += [b, e]
    if tuple(k) == tuple(spatial) and not any(all_pads):
        return _global(xx, sx, zx, sy, zy, bool(channels_last))
    qmin, qmax = qrange(xx.dtype)
    d = (sx * (xn.astype(np.int32) - zx).astype(F32)).astype(F32)
    acc = np.zeros(xn.shape[:2] + tuple(out), F32)
    count = np.ones(tuple(out), np.int64)
    for i in range(r):  # window sizes clipped to the input, per axis
        lo = np.arange(out[i]) * st[i] - begin[i]
        hi = np.minimum(lo + k[i], spatial[i])
        lo = np.maximum(lo, 0)
        shape = [1] * r
        shape[i] = out[i]
        count = count * (hi - lo).reshape(shape)
    if count_include_pad:
        count = np.full(tuple(out), int(np.prod(k)), np.int64)
    for pos in itertools.product(*(range(v) for v in k)):
        idx, valid = [], np.ones(tuple(out), bool)
        for i in range(r):
            coord = np.arange(out[i]) * st[i] - begin[i] + pos[i]
            ok = (coord >= 0) & (coord < spatial[i])
            shape = [1] * r
            shape[i] = out[i]
            valid = valid & ok.reshape(shape)
            idx.append(np.clip(coord, 0, spatial[i] - 1).reshape(shape))
        vals = d[(slice(None), slice(None)) + tuple(np.broadcast_arrays(*idx))]
        acc = (acc + np.where(valid, vals, F32(0))).astype(F32)
    with np.errstate(invalid="ignore", over="ignore"):
        avg = (acc / count.astype(F32)).astype(F32)
        v = ((avg / sy).astype(F32) + F32(zy)).astype(F32)
    big = F32(2**31)
    q = np.where(np.isfinite(v) & (np.abs(v) < big), np.rint(v), -big).astype(np.int64)
    y = np.clip(q, qmin, qmax).astype(xx.dtype)
    return np.moveaxis(y, 1, -1) if channels_last else y
