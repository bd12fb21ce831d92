"""Operators ONNX Runtime runs directly on uint8 / int8 codes, with no arithmetic.

``MaxPool`` (``onnxruntime/core/providers/cpu/nn/pool.cc``, ``MaxPoolV8`` registered for
``int8_t`` / ``uint8_t``): the maximum code of each window, padding excluded. ``Reshape``
and ``Transpose`` move codes. The quantization parameters pass through unchanged, which is
why ORT's QDQ propagation moves Q/DQ pairs across these operators.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..._validation import _describe
from ._common import as_codes, check_ints
from ._conv import same_pads

__all__ = ["max_pool", "reshape", "transpose"]


def max_pool(
    x: Any,
    *,
    kernel_shape: Any,
    auto_pad: str = "NOTSET",
    ceil_mode: int = 0,
    dilations: Any = None,
    pads: Any = None,
    strides: Any = None,
    storage_order: int = 0,
) -> np.ndarray:
    """``MaxPool(X)`` on uint8/int8 [N, C, D1, ...] codes (the ``Indices`` output is not
    emulated; ``storage_order`` only affects it)."""
    xx = as_codes(x, "x")
    if xx.ndim < 3:
        raise ValueError(f"x must have rank >= 3, got shape {xx.shape}")
    r = xx.ndim - 2
    k = check_ints(kernel_shape, "kernel_shape", r, 1)
    st = (1,) * r if strides is None else check_ints(strides, "strides", r, 1)
    dl = (1,) * r if dilations is None else check_ints(dilations, "dilations", r, 1)
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise ValueError(f"auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, got "
                         f"{_describe(auto_pad)}")
    if storage_order not in (0, 1):
        raise ValueError(f"storage_order must be 0 or 1, got {storage_order!r}")
    p = (0,) * (2 * r) if pads is None else check_ints(pads, "pads", 2 * r, 0)
    spatial = xx.shape[2:]
    begin, out = [], []
    for i in range(r):
        dk = dl[i] * (k[i] - 1) + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            b, e = same_pads(spatial[i], k[i], st[i], auto_pad)
        else:
            b, e = (0, 0) if auto_pad == "VALID" else (p[i], p[r + i])
        v = (spatial[i] + b + e - dk) / st[i] + 1
        o = int(v)
        if ceil_mode:
            o = int(math.ceil(v))
            if (o - 1) * st[i] >= spatial[i] + b:
                o -= 1
        if o < 1:
            raise ValueError(f"kernel_shape {list(k)} gives an empty output for x spatial shape "
                             f"{spatial}")
        begin.append(b)
        out.append(o)
    lo = np.iinfo(xx.dtype).min
    y = np.full(xx.shape[:2] + tuple(out), lo, xx.dtype)
    for pos in itertools.product(*(range(v) for v in k)):
        idx, valid = [], np.ones(tuple(out), bool)
        for i in range(r):
            coord = np.arange(out[i]) * st[i] - begin[i] + pos[i] * dl[i]
            shape = [1] * r
            shape[i] = out[i]
            valid = valid & ((coord >= 0) & (coord < spatial[i])).reshape(shape)
            idx.append(np.clip(coord, 0, spatial[i] - 1).reshape(shape))
        vals = xx[(slice(None), slice(None)) + tuple(np.broadcast_arrays(*idx))]
        y = np.where(valid, np.maximum(y, vals), y)
    return y


def reshape(x: Any, shape: Any, *, allowzero: int = 0) -> np.ndarray:
    """``Reshape(data, shape)`` on codes (ONNX rules: 0 copies the input dimension unless
    ``allowzero``, one -1 is inferred)."""
    xx = as_codes(x, "x")
    dims = [int(v) for v in np.asarray(shape, np.int64).reshape(-1)]
    if not allowzero:
        dims = [xx.shape[i] if d == 0 and i < xx.ndim else d for i, d in enumerate(dims)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise ValueError(f"shape {dims} is not a valid Reshape target")
    try:
        return xx.reshape(dims)
    except ValueError:
        raise ValueError(f"x of shape {xx.shape} cannot be reshaped to {dims}") from None


def transpose(x: Any, *, perm: Any = None) -> np.ndarray:
    """``Transpose(data, perm)`` on codes (reverse the axes when ``perm`` is None)."""
    xx = as_codes(x, "x")
    if perm is None:
        return np.ascontiguousarray(xx.transpose())
    p = check_ints(perm, "perm", xx.ndim, 0)
    if sorted(p) != list(range(xx.ndim)):
        raise ValueError(f"perm must be a permutation of range({xx.ndim}), got {list(p)}")
    return np.ascontiguousarray(xx.transpose(p))
