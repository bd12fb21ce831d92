"""PaddleSlim 2.6.0's Python-side quant-dequant and the reductions its searches use.

PaddleSlim's MSE / EMD observers (PaddlePaddle/PaddleSlim
``paddleslim/quant/observers/mse.py``, ``emd.py``) and the channel-wise MSE weight observer
(``mse_weight.py``) evaluate every candidate scale with the expression::

    quant_var = paddle.clip(paddle.round(inputs / scale * qmax), qmin, qmax)
    quant_dequant_var = quant_var / qmax * scale

written with Paddle tensor operators. Evaluated by Paddle 3.3.1 this is, in the tensor's
dtype ``T`` (float32 for activations; ``paddle.to_tensor`` keeps float64 as float64):

1. a Python float ``scale`` is cast to ``T`` first (``docs/divergences.md`` Q2), a tensor
   ``scale`` is used as is (broadcast);
2. ``t = fl_T(x / s)``, then ``t = fl_T(t * T(qmax)) + 0.0`` -- Paddle evaluates
   ``tensor * python_scalar`` with its ``scale`` kernel, ``x * s + bias`` with ``bias = 0.0``,
   which turns ``-0.0`` into ``+0.0`` (division by a scalar keeps the sign);
3. ``paddle.round`` rounds half to even (``docs/divergences.md`` Q3);
4. clip to ``[qmin, qmax]`` (``qmin = -qmax - 1`` in both files); NaN passes through;
5. ``fl_T(fl_T(q / T(qmax)) * s)``, ``+ 0.0`` again when ``s`` is a Python float (an
   elementwise tensor product keeps ``-0.0``).

:func:`paddle_mean` reproduces ``paddle.mean`` over a whole tensor on CPU (Eigen's full
reduction as built into Paddle 3.3.1): eight float32 lanes (four float64 lanes), each
accumulated sequentially, the ``n mod lanes`` tail summed sequentially in a scalar, the lane
vector folded by halving (``[a0+a4, a1+a5, ...]`` ...), ``tail + folded``, then one division
by ``T(n)``. This model agreed bit for bit with ``paddle.mean`` on every size measured
(1 ... 2**20 elements, float32 and float64); ``tests/test_kernels_slim.py`` checks it
against real Paddle with Hypothesis. It lives, with :class:`LaneSum` and :func:`lanes_for`,
in :mod:`refquant.kernels._paddle_reduce` (one implementation of Paddle's CPU reduction
orders, shared with the quanters) and is re-exported here.

Input rules (shared with the other kernel families): :func:`quant_dequant` is elementwise,
so an empty ``x`` gives an empty result, while :func:`paddle_mean` is a reduction and raises
``ValueError`` for an empty ``x``. :func:`quant_dequant` reads Python numbers and lists as
float32 (as ``paddle.to_tensor`` makes them; a value beyond float32's range raises
``ValueError`` instead of becoming ``inf``) and evaluates float64 arrays in float64, never
narrowed. Big-endian arrays are read by value; complex, bool, object and string input raise
``TypeError``. Caller arrays are never modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import (
    as_kernel_input,
    as_real_array,
    check_int,
    check_real,
    to_float_dtype,
)
from ._paddle_reduce import LaneSum, lanes_for, paddle_mean

__all__ = [
    "SEARCH_FACTORS",
    "search_factors",
    "quant_dequant",
    "paddle_mean",
    "LaneSum",
    "lanes_for",
]


_MAX_FACTORS = 10**6


def search_factors(start: float = 0.3, stop: float = 1.0, step: float = 0.02) -> tuple[float, ...]:
    """The factors PaddleSlim's ``while s <= 1.0: ...; s += 0.02`` loop visits.

    ``s`` is accumulated in float64, so from the fourth value on it drifts above the
    decimal grid and the value after 0.98... is 1.0000000000000004 > 1.0: the loop visits
    35 factors and never 1.0 (``docs/divergences.md`` Q1 and Q16).

    ``start``, ``stop`` and ``step`` must be finite real numbers, ``step > 0`` (the loop
    would never end otherwise) and the loop may visit at most ``10**6`` factors.
    """
    start = float(check_real(start, "start"))
    stop = float(check_real(stop, "stop"))
    step = float(check_real(step, "step", positive=True))
    if (stop - start) / step > _MAX_FACTORS:
        raise ValueError(
            f"start={start!r}, stop={stop!r}, step={step!r} would visit more than "
            f"{_MAX_FACTORS} factors"
        )
    out = []
    s = start
    while s <= stop:
        out.append(s)
        s += step
    return tuple(out)


#: the 35 accumulated factors 0.3, 0.32, 0.34, 0.36000000000000004, ..., 0.9800000000000005
SEARCH_FACTORS: tuple[float, ...] = search_factors()


def quant_dequant(
    x: Any,
    scale: float | np.ndarray,
    qmax: int,
    qmin: int | None = None,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """PaddleSlim's ``clip(round(x / scale * qmax), qmin, qmax) / qmax * scale``.

    Evaluated in ``x.dtype`` (``T``) in Paddle's operation order::

        s = T(scale)                      # Python float cast first (Q2)
        t = fl_T(fl_T(x / s) * T(qmax)) + 0   # scale kernel: -0.0 -> +0.0
        q = clip(round_half_even(t), qmin, qmax)      # qmin defaults to -qmax - 1
        y = fl_T(fl_T(q / T(qmax)) * s)   # (+ 0 when scale is a Python float)

    ``scale`` may be a Python float (per-tensor searches, ``mse.py`` / ``emd.py``) or an
    array broadcastable against ``x`` (``mse_weight.py``'s per-channel scales, cast to
    ``T`` like Paddle does when both tensors share ``T``). ``x`` is never modified; pass
    ``out`` (same shape and dtype as ``x``) to reuse a buffer.

    Checks: ``x`` is a float16 / float32 / float64 array (Python numbers and lists become
    float32, as ``paddle.to_tensor`` makes them; an empty ``x`` gives an empty result);
    ``scale`` holds real numbers that fit ``T`` (``1e39`` with float32 ``x`` raises instead
    of becoming ``inf``) and broadcasts to ``x``'s shape; any sign, 0, +-inf and NaN are
    evaluated by IEEE rules, as Paddle evaluates the expression; ``qmax >= 1`` and
    ``qmin < qmax`` are integers; ``out`` is a writeable array of ``x``'s shape and dtype
    that shares no memory with ``x`` or ``scale``.
    """
    arr = as_kernel_input(x, "x", (np.float32, np.float16, np.float64))
    dt = arr.dtype
    qmax = check_int(qmax, "qmax", low=1)
    lo = -qmax - 1 if qmin is None else check_int(qmin, "qmin", high=qmax - 1)
    s = to_float_dtype(as_real_array(scale, "scale"), dt, "scale")
    try:
        bshape = np.broadcast_shapes(arr.shape, s.shape)
    except ValueError:
        bshape = None
    if bshape != arr.shape:
        raise ValueError(f"scale of shape {s.shape} must broadcast to x's shape {arr.shape}")
    qm = dt.type(qmax)
    zero = dt.type(0.0)
    if out is None:
        out = np.empty(arr.shape, dtype=dt)
    else:
        _check_out(out, arr, s)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(arr, s, out=out)
        np.multiply(out, qm, out=out)
        np.add(out, zero, out=out)  # Paddle's scalar multiply is scale(x, s, bias=0.0)
        np.rint(out, out=out)  # round_half_even (docs/divergences.md Q3)
        np.clip(out, lo, qmax, out=out)
        np.divide(out, qm, out=out)
        np.multiply(out, s, out=out)
        if s.ndim == 0:
            np.add(out, zero, out=out)  # ... so a Python-float scale also turns -0.0 into +0.0
    return out


def _check_out(out: Any, x: np.ndarray, scale: np.ndarray) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(
            f"out must have x's shape {x.shape} and dtype {x.dtype}, got shape {out.shape} "
            f"and dtype {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError("out must be writeable, got a read-only array")
    for name, a in (("x", x), ("scale", scale)):
        if np.may_share_memory(out, a) and np.shares_memory(out, a):
            raise ValueError(f"out must not share memory with {name} (inputs are never modified)")
