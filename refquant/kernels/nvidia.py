"""NVIDIA's ``amax`` fake quantization: pytorch-quantization and TensorRT Model Optimizer.

Emulated from source; neither package is installed here and no GPU was used, so these
functions are checked only against hand-worked cases and an independent float64
formulation (``tests/test_kernels_nvidia.py``). docs/kernels/torch.md has the variant table.

The convention is symmetric with a threshold ``amax`` and ``bound = 2^(num_bits-1+unsigned) - 1``;
the kernels multiply by ``scale = bound / amax`` and **divide** by it to dequantize (ONNX and
torch multiply by a step instead, which rounds differently: ``docs/kernels/torch.md``,
"Hand-worked cases", case 3).

Sources read:

* ``backend="python"``: NVIDIA/TensorRT ``tools/pytorch-quantization/pytorch_quantization/
  tensor_quant.py: _tensor_quant`` and ``FakeTensorQuantFunction`` (the same Python code is in
  Model Optimizer's ``modelopt/torch/quantization/tensor_quant.py``)::

      max_bound = fl32(2^(num_bits - 1 + unsigned) - 1)
      min_bound = 0 if unsigned else (-max_bound if narrow_range else -max_bound - 1)
      scale     = fl32(max_bound / amax)                # float32 division
      scale     = 0 where amax <= 2^-24                 # "<=": amax == 2^-24 gives 0
      q         = clip(rne(fl32(x * scale)), min_bound, max_bound)   # NaN stays NaN
      scale     = 1 where amax <= 2^-24
      y         = fl32(q / scale)                       # division, not q * step

* ``backend="modelopt_cuda"``: NVIDIA/TensorRT-Model-Optimizer ``modelopt/torch/quantization/
  src/tensor_quant_gpu.cu: fake_tensor_quant_device``::

      y = 0                                   where amax < 2^-24   ("<": amax == 2^-24 is kept)
      scale = fl32(max_bound / amax); q = rint(fl32(x * scale))
      q = q > max_bound ? max_bound : q;  q = q < min_bound ? min_bound : q   # NaN stays
      y = fl32(q / scale)

  with ``min_bound = -(bound + !narrow_range)``. In the copy read, the host functions
  ``fake_tensor_quant_cuda`` and ``fake_tensor_quant_with_axis_cuda`` launch the kernel without
  passing ``narrow_range``, whose kernel default is ``true``: the CUDA path is therefore always
  narrow (``[-bound, bound]``, also for unsigned inputs, which are asserted >= 0). refquant
  reproduces that and ignores ``narrow_range`` for this backend.

Only float32 inputs are accepted (half inputs are widened and rounded differently by the two
paths; not emulated). Input rules (shared with the other kernel families): the functions are
elementwise, so an empty ``x`` gives an empty result; Python numbers and lists become float32
(a finite value beyond float32's range raises ``ValueError``), float64 arrays raise
``TypeError`` (never narrowed); ``amax`` must be real, finite and >= 0 once rounded to
float32 (``amax=1e39`` raises); big-endian arrays are read by value; complex, bool, object
and string input raise ``TypeError``; flags must be bools. Caller arrays are never modified.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .._validation import (
    as_kernel_input,
    as_real_array,
    check_bits,
    check_flag,
    check_scale_values,
    to_float_dtype,
)

__all__ = ["AMAX_EPSILON", "amax_scale", "tensor_quant", "fake_tensor_quant"]

#: ``1 / (1 << 24)``: below (Python: at or below) this amax the output is 0.
AMAX_EPSILON = 2.0**-24

Backend = Literal["python", "modelopt_cuda"]


def _bounds(num_bits: int, unsigned: bool, narrow_range: bool) -> tuple[np.float32, np.float32]:
    max_bound = np.float32(2.0 ** (num_bits - 1 + int(unsigned)) - 1.0)
    if unsigned:
        return np.float32(0.0), max_bound
    return (-max_bound if narrow_range else np.float32(-max_bound - 1)), max_bound


def _amax32(amax: Any) -> np.ndarray:
    """``amax`` as float32: real, finite (also after the rounding) and >= 0."""
    a32 = to_float_dtype(as_real_array(amax, "amax"), np.float32, "amax")
    check_scale_values(a32, "amax", allow_zero=True, allow_nonfinite=False)
    return a32


def _amax_array(amax: Any, x: np.ndarray, axis: int | None) -> np.ndarray:
    """Validate ``amax`` and return it as float32, broadcastable against ``x``."""
    a32 = _amax32(amax)
    if axis is None:
        if a32.size != 1:
            raise ValueError(f"amax must be a scalar when axis is None, got shape {a32.shape}")
        return a32.reshape(())
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer or None, got {axis!r}")
    if not -x.ndim <= int(axis) < x.ndim:
        raise ValueError(f"axis={axis} is out of range for x of rank {x.ndim}")
    ax = int(axis) % x.ndim
    if a32.shape != (x.shape[ax],):
        raise ValueError(f"amax must have shape ({x.shape[ax]},) for axis={axis}, "
                         f"got shape {a32.shape}")
    shape = [1] * x.ndim
    shape[ax] = x.shape[ax]
    return a32.reshape(shape)


def _check_x(x: Any, unsigned: bool) -> np.ndarray:
    arr = as_kernel_input(x, "x", (np.float32,))
    if unsigned and arr.size and (arr < 0).any():
        i = int(np.flatnonzero((arr < 0).ravel())[0])
        raise ValueError(f"x must be >= 0 for unsigned quantization, got {arr.ravel()[i]!r} "
                         f"at flat index {i}")
    return arr


def amax_scale(amax: Any, num_bits: int = 8, unsigned: bool = False) -> np.ndarray:
    """``scale = fl32(bound / amax)`` with ``bound = 2^(num_bits-1+unsigned) - 1`` (float32).

    ``amax = 0`` gives ``+inf`` here; the quantizers replace it (see the module docstring).
    ``amax`` must be real, finite and >= 0 (any shape).
    """
    bits = check_bits(num_bits, "num_bits")
    a32 = _amax32(amax)
    _, max_bound = _bounds(bits, check_flag(unsigned, "unsigned"), True)
    with np.errstate(divide="ignore"):
        return np.asarray(max_bound / a32, np.float32)


def tensor_quant(
    x: Any,
    amax: Any,
    num_bits: int = 8,
    unsigned: bool = False,
    narrow_range: bool = True,
    *,
    axis: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """pytorch-quantization's ``_tensor_quant``: ``(q, scale)``, both float32.

    ``q`` holds the integer codes as float32 (NaN where ``x`` is NaN), ``scale`` is
    ``fl32(bound / amax)`` with 1 where ``amax <= 2^-24`` (and then ``q = 0`` for finite x).
    ``axis`` selects per-channel ``amax`` (a 1-D array of length ``x.shape[axis]``).
    """
    bits = check_bits(num_bits, "num_bits")
    uns = check_flag(unsigned, "unsigned")
    arr = _check_x(x, uns)
    a32 = _amax_array(amax, arr, axis)
    min_bound, max_bound = _bounds(bits, uns, check_flag(narrow_range, "narrow_range"))
    tiny = a32 <= np.float32(AMAX_EPSILON)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = np.asarray(max_bound / a32, np.float32)
        scale = np.where(tiny, np.float32(0.0), scale).astype(np.float32)
        q = np.clip(np.rint(arr * scale), min_bound, max_bound).astype(np.float32)
    scale = np.where(tiny, np.float32(1.0), scale).astype(np.float32)
    return q, scale


def fake_tensor_quant(
    x: Any,
    amax: Any,
    num_bits: int = 8,
    unsigned: bool = False,
    narrow_range: bool = True,
    *,
    axis: int | None = None,
    backend: Backend = "python",
) -> np.ndarray:
    """Fake quantization ``fl32(q / scale)`` in the ``amax`` convention (float32 result).

    ``backend="python"``: pytorch-quantization / Model Optimizer ``FakeTensorQuantFunction``
    (zero output where ``amax <= 2^-24``). ``backend="modelopt_cuda"``: Model Optimizer's
    CUDA kernel (zero output where ``amax < 2^-24``; always narrow range, see the module
    docstring). NaN inputs give NaN in both.
    """
    if not isinstance(backend, str) or backend not in ("python", "modelopt_cuda"):
        raise ValueError(f"backend must be 'python' or 'modelopt_cuda', got {backend!r}")
    if backend == "python":
        q, scale = tensor_quant(x, amax, num_bits, unsigned, narrow_range, axis=axis)
        with np.errstate(invalid="ignore"):
            return np.asarray(q / scale, np.float32)
    bits = check_bits(num_bits, "num_bits")
    uns = check_flag(unsigned, "unsigned")
    check_flag(narrow_range, "narrow_range")  # validated, then ignored (module docstring)
    arr = _check_x(x, uns)
    a32 = _amax_array(amax, arr, axis)
    bound = np.float32(2.0 ** (bits - 1 + int(uns)) - 1.0)
    max_bound, min_bound = bound, -bound  # narrow_range is not forwarded to the kernel
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = np.asarray(max_bound / a32, np.float32)
        q = np.rint(arr * scale).astype(np.float32)
        q = np.where(q > max_bound, max_bound, q)
        q = np.where(q < min_bound, min_bound, q).astype(np.float32)
        y = np.asarray(q / scale, np.float32)
    return np.where(a32 < np.float32(AMAX_EPSILON), np.float32(0.0), y).astype(np.float32)
