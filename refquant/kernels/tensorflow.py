"""TensorFlow 2.21 CPU fake-quant kernels, bit for bit (float32 NumPy; no TensorFlow import).

Upstream sources (tensorflow/tensorflow):

* ``tensorflow/core/kernels/fake_quant_ops_functor.h``: ``Nudge`` and the eager functors of
  ``FakeQuantWithMinMaxArgs`` / ``Vars`` / ``VarsPerChannel``;
* ``tensorflow/compiler/tf2xla/kernels/fake_quantize_ops.cc`` and the MLIR lowering of
  ``FakeQuantWithMinMaxArgs``: the XLA-compiled form (``tf.function(jit_compile=True)``);
* ``tensorflow/core/kernels/quantize_and_dequantize_op.h``: ``QuantizeAndDequantizeV4``.

Two variants of the fake-quant ops, chosen with ``variant=``:

``"eager"`` (the CPU kernels): ``Nudge`` in float32 with ``scale = (max - min) / Q``,
``inv = Q / (max - min)`` (``Q = qmax - qmin``), ``zp`` from ``qmin - min / scale`` clamped
with strict ``<`` / ``>`` and rounded half away from zero; ``nudged_min = (qmin - zp) * scale``,
``nudged_max = (qmax - zp) * scale``; ``quant_zero = floor(-nudged_min * inv + 0.5)``; then
``y = floor((clamp(x) - nudged_min) OP - quant_zero + 0.5) * scale`` where ``OP`` is ``* inv``
for ``_args`` and ``_per_channel`` and ``/ scale`` for ``_vars``. Every step rounds to float32
(TensorFlow's CPU build does not contract to FMA), with subnormal operands and results
flushed to zero (TensorFlow sets FTZ / DAZ for its CPU kernels).

``"xla"`` (the XLA CPU JIT of TensorFlow 2.21, measured on an x86-64 host with AVX-512; XLA
contracts the multiply-adds wherever the host has FMA, as AVX2 hosts do; not measured on one):
``y = fma(floor(fma(clamp(x) - nudged_min, inv, 0.5)),
scale, nudged_min)``, each ``fma`` rounded once. The range differs per op: ``_vars`` computes
``scale = (max - min) * fl(1 / Q)`` (XLA rewrites the division by a constant), ``zp`` with
``<=`` / ``>=`` and ``inv = 1 / scale``; ``_per_channel`` uses the same ``scale`` and, with more
than one channel, the same ``zp`` and ``inv``; with exactly one channel XLA rewrites to
``inv = Q / (max - min)`` and ``zp`` from ``qmin - (min * Q) / (max - min)``; ``_args`` folds
its range at trace time with ``scale = (max - min) / Q``, ``inv = Q / (max - min)`` and ``zp``
rounded half to even.

``min == max == 0`` gives zeros for ``_vars`` / ``_per_channel`` (eager). NaN inputs give NaN,
except under XLA for ``_vars`` and ``_per_channel``, where the clamp sends NaN to
``nudged_min``; ``+-inf`` saturate to the nudged ends. Inputs must be float32; nothing
passed is modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant._validation import _describe, as_kernel_input, check_flag, check_int, check_name
from refquant.kernels.onnxruntime._common import fma32

__all__ = [
    "nudge",
    "fake_quant_with_min_max_args",
    "fake_quant_with_min_max_vars",
    "fake_quant_with_min_max_vars_per_channel",
    "quantize_and_dequantize_v4",
    "fake_quant_gradient",
]

F32 = np.float32
_VARIANTS = ("eager", "xla")
_ROUND_MODES = ("HALF_TO_EVEN", "HALF_UP")


_TINY = np.finfo(np.float32).tiny


def _ftz(v: Any) -> Any:
    """Flush float32 subnormals to zero (sign kept): TensorFlow runs its CPU kernels with
    FTZ and DAZ set (``tensorflow/core/platform/denormal.h``)."""
    a = np.asarray(v, F32)
    with np.errstate(invalid="ignore"):
        out = np.where(np.abs(a) < _TINY, np.copysign(F32(0), a), a).astype(F32)
    return F32(out) if np.ndim(v) == 0 else out


def _round_half_away(v: F32) -> F32:
    return F32(np.copysign(np.floor(np.abs(v) + F32(0.5)), v)) if abs(v) < 2**23 else F32(v)


def _qrange(num_bits: Any, narrow_range: Any) -> tuple[int, int]:
    bits = check_int(num_bits, "num_bits", 2, 16)
    narrow = check_flag(narrow_range, "narrow_range")
    return (1 if narrow else 0), (1 << bits) - 1


def _range_value(v: Any, name: str) -> F32:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {_describe(v)}")
    with np.errstate(over="ignore"):
        f = F32(v)
    if not np.isfinite(f):
        raise ValueError(f"{name} must be finite in float32, got {v!r}")
    return f


def nudge(min: Any, max: Any, quant_min: int, quant_max: int, *, op: str = "vars",
          variant: str = "eager") -> tuple[F32, F32, F32, F32]:
    """``(nudged_min, nudged_max, scale, inv_scale)`` of TensorFlow's ``Nudge`` for ``op`` in
    ``("args", "vars", "per_channel", "per_channel_1")`` (the last: XLA with one channel).

    See the module docstring for the float32 operation order of each variant.
    """
    check_name(variant, "variant", _VARIANTS)
    mn, mx = _range_value(min, "min"), _range_value(max, "max")
    if not mn < mx:
        raise ValueError(f"min must be < max, got min={float(mn)!r}, max={float(mx)!r}")
    qmin, qmax = F32(quant_min), F32(quant_max)
    q = F32(qmax - qmin)
    width = F32(mx - mn)
    if variant == "eager":
        mn, width = _ftz(mn), _ftz(F32(_ftz(mx) - _ftz(mn)))
        scale = _ftz(F32(width / q))
        inv = _ftz(F32(q / width))
        zpf = F32(qmin - _ftz(F32(mn / scale)))
        zp = qmin if zpf < qmin else qmax if zpf > qmax else _round_half_away(zpf)
    else:
        if op == "args":
            scale, inv = F32(width / q), F32(q / width)
            zpf = F32(qmin - F32(mn / scale))
            r = F32(np.rint(zpf))
        else:
            scale = F32(width * F32(F32(1) / q))
            if op == "per_channel_1":
                inv = F32(q / width)
                zpf = F32(qmin - F32(F32(mn * q) / width))
            else:
                inv = F32(F32(1) / scale)
                zpf = F32(qmin - F32(mn / scale))
            r = _round_half_away(zpf)
        zp = qmin if zpf <= qmin else qmax if zpf >= qmax else r
    nmin = F32(F32(qmin - zp) * scale)
    nmax = F32(F32(qmax - zp) * scale)
    if variant == "eager":
        nmin, nmax = _ftz(nmin), _ftz(nmax)
    return nmin, nmax, scale, inv


def _fq(x: np.ndarray, nmin: F32, nmax: F32, scale: F32, inv: F32, *, divide: bool,
        variant: str, nan_to_min: bool = False) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        clamped = np.maximum(np.minimum(x, nmax), nmin)
        if nan_to_min and variant == "xla":
            clamped = np.where(np.isnan(x), nmin, clamped)
        shifted = (clamped - nmin).astype(F32)
        if variant == "xla":
            r = np.floor(fma32(shifted, inv, F32(0.5)))
            return fma32(r, scale, nmin)
        shifted = _ftz((np.maximum(np.minimum(_ftz(x), nmax), nmin) - nmin).astype(F32))
        quant_zero = np.floor(F32(_ftz(F32(-nmin * inv)) + F32(0.5)))
        v = _ftz((shifted / scale) if divide else (shifted * inv))
        r = np.floor((v - quant_zero).astype(F32) + F32(0.5)).astype(F32)
        return _ftz((r * scale).astype(F32))


def _input(x: Any) -> np.ndarray:
    return as_kernel_input(x, "x", (np.float32,))


def fake_quant_with_min_max_args(x: Any, min: Any = -6.0, max: Any = 6.0, num_bits: Any = 8,
                                 narrow_range: Any = False, *, variant: str = "eager"
                                 ) -> np.ndarray:
    """``tf.quantization.fake_quant_with_min_max_args``: ``min`` / ``max`` are attributes.

    Eager: ``floor((clamp(x) - nudged_min) * inv - quant_zero + 0.5) * scale``; XLA: see the
    module docstring. Source: tensorflow/tensorflow
    ``tensorflow/core/kernels/fake_quant_ops_functor.h``.
    """
    arr = _input(x)
    qmin, qmax = _qrange(num_bits, narrow_range)
    check_name(variant, "variant", _VARIANTS)
    nmin, nmax, scale, inv = nudge(min, max, qmin, qmax, op="args", variant=variant)
    return _fq(arr, nmin, nmax, scale, inv, divide=False, variant=variant)


def fake_quant_with_min_max_vars(x: Any, min: Any, max: Any, num_bits: Any = 8,
                                 narrow_range: Any = False, *, variant: str = "eager"
                                 ) -> np.ndarray:
    """``tf.quantization.fake_quant_with_min_max_vars`` (scalar ``min`` / ``max`` tensors).

    Eager: ``floor((clamp(x) - nudged_min) / scale - quant_zero + 0.5) * scale`` (a true
    division, unlike ``_args``); ``min == max == 0`` gives zeros. Source: tensorflow/tensorflow
    ``tensorflow/core/kernels/fake_quant_ops_functor.h``.
    """
    arr = _input(x)
    qmin, qmax = _qrange(num_bits, narrow_range)
    check_name(variant, "variant", _VARIANTS)
    if _range_value(min, "min") == 0 and _range_value(max, "max") == 0 and variant == "eager":
        return np.zeros_like(arr)
    nmin, nmax, scale, inv = nudge(min, max, qmin, qmax, op="vars", variant=variant)
    return _fq(arr, nmin, nmax, scale, inv, divide=True, variant=variant, nan_to_min=True)


def fake_quant_with_min_max_vars_per_channel(x: Any, min: Any, max: Any, num_bits: Any = 8,
                                             narrow_range: Any = False, *,
                                             variant: str = "eager") -> np.ndarray:
    """``tf.quantization.fake_quant_with_min_max_vars_per_channel``: channels on the last
    axis, ``min`` / ``max`` of shape ``[d]``.

    Eager: per channel as ``_args`` (multiplication by ``inv``); a channel with
    ``min == max == 0`` gives zeros. Source: tensorflow/tensorflow
    ``tensorflow/core/kernels/fake_quant_ops_functor.h``.
    """
    arr = _input(x)
    qmin, qmax = _qrange(num_bits, narrow_range)
    check_name(variant, "variant", _VARIANTS)
    if arr.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension, got shape {arr.shape}")
    mins = np.asarray(min)
    maxs = np.asarray(max)
    d = arr.shape[-1]
    for name, v in (("min", mins), ("max", maxs)):
        if v.dtype.kind not in "iuf" or v.shape != (d,):
            raise ValueError(f"{name} must be a real vector of shape ({d},), got "
                             f"{_describe(v)}")
    out = np.empty_like(arr)
    op = "per_channel_1" if d == 1 else "per_channel"
    for c in range(d):
        lo, hi = mins[c].item(), maxs[c].item()
        if variant == "eager" and F32(lo) == 0 and F32(hi) == 0:
            out[..., c] = 0
            continue
        nmin, nmax, scale, inv = nudge(lo, hi, qmin, qmax, op=op, variant=variant)
        out[..., c] = _fq(arr[..., c], nmin, nmax, scale, inv, divide=False, variant=variant,
                          nan_to_min=True)
    return out


def fake_quant_gradient(gradients: Any, x: Any, min: Any, max: Any, num_bits: Any = 8,
                        narrow_range: Any = False, *, op: str = "args",
                        variant: str = "eager") -> np.ndarray:
    """Gradient of a fake-quant op with respect to its input (the straight-through mask):
    ``gradients`` where ``nudged_min <= x <= nudged_max``, else 0 (NaN ``x`` gives 0).
    Eager multiplies by a 0.0 / 1.0 mask (a negative gradient outside gives -0.0, an infinite
    one NaN); XLA selects (+0.0).

    ``op`` is ``"args"``, ``"vars"`` or ``"per_channel"`` (``min`` / ``max`` vectors over the
    last axis); the nudged range is the one of that op and ``variant``. The gradients with
    respect to ``min`` / ``max`` (sums) are not emulated. Source: tensorflow/tensorflow
    ``tensorflow/core/kernels/fake_quant_ops_functor.h`` (``*GradientFunctor``) and
    ``tensorflow/compiler/tf2xla/kernels/fake_quantize_ops.cc``.
    """
    check_name(op, "op", ("args", "vars", "per_channel"))
    check_name(variant, "variant", _VARIANTS)
    arr = _input(x)
    grad = as_kernel_input(gradients, "gradients", (np.float32,))
    if grad.shape != arr.shape:
        raise ValueError(f"gradients must have x's shape {arr.shape}, got {grad.shape}")
    qmin, qmax = _qrange(num_bits, narrow_range)
    if op == "per_channel":
        mins, maxs = np.asarray(min), np.asarray(max)
        d = arr.shape[-1] if arr.ndim else 0
        if mins.shape != (d,) or maxs.shape != (d,):
            raise ValueError(f"min and max must have shape ({d},), got {mins.shape} and "
                             f"{maxs.shape}")
        pairs = [(mins[c].item(), maxs[c].item()) for c in range(d)]
        nudge_op = "per_channel_1" if d == 1 else "per_channel"
    else:
        pairs, nudge_op = [(min, max)], op
    lows, highs = [], []
    for lo, hi in pairs:
        if op != "args" and variant == "eager" and F32(lo) == 0 and F32(hi) == 0:
            lows.append(F32(-np.inf))  # TensorFlow passes every gradient through
            highs.append(F32(np.inf))
            continue
        nmin, nmax, _, _ = nudge(lo, hi, qmin, qmax, op=nudge_op, variant=variant)
        lows.append(nmin)
        highs.append(nmax)
    low = np.array(lows, F32) if op == "per_channel" else lows[0]
    high = np.array(highs, F32) if op == "per_channel" else highs[0]
    with np.errstate(invalid="ignore"):
        flushed = _ftz(arr)  # the comparisons read subnormal x as zero (DAZ), also under XLA
        inside = (flushed >= low) & (flushed <= high)
        if variant == "eager":  # gradients * 0.0 / 1.0: -0.0 (and NaN) where a grad is so
            return _ftz((_ftz(grad) * inside.astype(F32)).astype(F32))
    return np.where(inside, grad, F32(0)).astype(F32)


def _round(v: np.ndarray, mode: str) -> np.ndarray:
    if mode == "HALF_UP":
        return np.floor(v + F32(0.5)).astype(F32)
    return np.rint(v)


def quantize_and_dequantize_v4(x: Any, input_min: Any, input_max: Any, *,
                               signed_input: Any = True, num_bits: Any = 8,
                               range_given: Any = False, round_mode: str = "HALF_TO_EVEN",
                               narrow_range: Any = False, axis: Any = -1) -> np.ndarray:
    """``tf.raw_ops.QuantizeAndDequantizeV4`` on float32 (CPU kernel).

    Per tensor only (``axis=-1``). Range: ``[input_min, input_max]`` when ``range_given``,
    else the min / max of ``x`` (NaN in ``x`` is then not supported). Integer range
    ``[qmin, qmax]``: signed ``[-2**(b-1) (+1 if narrow), 2**(b-1) - 1]``, unsigned
    ``[0, 2**b - 1]``. ``scale_min = qmin / min`` if ``qmin * min > 0`` else FLT_MAX;
    ``scale_max = qmax / max`` likewise; the smaller one wins: ``scale``, ``inverse = min / qmin``
    (or ``max / qmax``) and the other end is recomputed as ``q_end * inverse``. Then
    ``y = round(clamp(x) * scale) * inverse`` (clamp only with ``range_given``); round
    ``HALF_TO_EVEN`` = ``rint``, ``HALF_UP`` = ``floor(v + 0.5)`` in float32. Source:
    tensorflow/tensorflow ``tensorflow/core/kernels/quantize_and_dequantize_op.h``. Every
    float32 operation flushes subnormal operands and results to zero, as TensorFlow's CPU
    kernels run with FTZ / DAZ: a range whose ``scale`` is subnormal gives zeros.
    """
    arr = _input(x)
    signed = check_flag(signed_input, "signed_input")
    bits = check_int(num_bits, "num_bits", 1, 63 if signed else 62)
    given = check_flag(range_given, "range_given")
    mode = check_name(round_mode, "round_mode", _ROUND_MODES)
    narrow = check_flag(narrow_range, "narrow_range")
    if check_int(axis, "axis") != -1:
        raise ValueError(f"axis must be -1 (per tensor; per-channel is not emulated), got {axis}")
    if signed:
        qmin = -(1 << (bits - 1)) + (1 if narrow else 0)
        qmax = (1 << (bits - 1)) - 1
    else:
        qmin, qmax = 0, (1 << bits) - 1
    view = arr.reshape(1, 1, -1)
    channels = view.shape[1]
    if given:
        mins = np.full(channels, _range_value(input_min, "input_min"), F32)
        maxs = np.full(channels, _range_value(input_max, "input_max"), F32)
    else:
        if arr.size == 0:
            raise ValueError("x must not be empty when range_given is False")
        mins = view.min(axis=(0, 2))
        maxs = view.max(axis=(0, 2))
    out = np.empty_like(view)
    fmax = F32(np.finfo(F32).max)
    qminf, qmaxf = F32(qmin), F32(qmax)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for c in range(channels):
            lo, hi = _ftz(F32(mins[c])), _ftz(F32(maxs[c]))
            s_min = _ftz(F32(qminf / lo)) if _ftz(F32(qminf * lo)) > 0 else fmax
            s_max = _ftz(F32(qmaxf / hi)) if _ftz(F32(qmaxf * hi)) > 0 else fmax
            if s_min < s_max:
                scale, inverse = s_min, _ftz(F32(lo / qminf))
                hi = _ftz(F32(qmaxf * inverse))
            else:
                scale, inverse = s_max, _ftz(F32(hi / qmaxf))
                lo = _ftz(F32(qminf * inverse))
            v = _ftz(view[:, c, :])
            if given:
                # min then max, each keeping its first operand on a tie (Eigen's cwiseMin /
                # cwiseMax): clamp(-0.0) to [0, hi] is -0.0
                v = np.where(hi < v, hi, v)
                v = np.where(v < lo, lo, v)
            scaled = _ftz((v * scale).astype(F32))
            out[:, c, :] = _ftz((_round(scaled, mode) * inverse).astype(F32))
    return out.reshape(arr.shape)
