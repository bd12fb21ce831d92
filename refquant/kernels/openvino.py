"""OpenVINO FakeQuantize-1 on the CPU plugin, bit for bit (NumPy only).

``il``, ``ih``, ``ol``, ``oh`` (input / output low / high) broadcast against ``x`` (NumPy
rules); ``L = float(levels - 1)``; ``fl()`` is one float32 rounding; ``rint`` rounds half to
even. The grid is anchored at ``input_low``, not at zero. Two variants, chosen with
``variant=``, measured on the OpenVINO 2026.4 CPU plugin with one-node models compiled with
``SNIPPETS_MODE=DISABLE`` and ``LP_TRANSFORMS_MODE=NO`` (so the node runs as its own layer);
:func:`cpu_plugin_variant` says which one the plugin runs for given shapes:

``"reference"`` (layer type ``Reference``: inputs of rank 1 or >= 6, ranges along axis 0):
``y = ol`` where ``x <= min(il, ih)``, ``y = oh`` where ``x > max(il, ih)``, otherwise
``y = fl(fl(fl(rint(fl(fl(fl(x - il) / fl(ih - il)) * L)) / L) * fl(oh - ol)) + ol)``;
NaN stays NaN. Source: openvinotoolkit/openvino
``src/core/reference/include/openvino/reference/fake_quantize.hpp``.

``"jit"`` (inputs of rank 2 to 5 with scalar ranges or ranges along axis 1; ranges along a
later axis are refused by the plugin): ``isc = fl(L / fl(ih - il))``,
``ish = fl(fl(-il * L) / fl(ih - il))``, ``osc = fl(fl(oh - ol) / L)``, then
``y = fma(rint(fma(clamp(x, il, ih), isc, ish)), osc, ol)``, each ``fma`` rounded once; the
clamp sends NaN to ``ih``. Source: openvinotoolkit/openvino
``src/plugins/intel_cpu/src/nodes/fake_quantize.cpp``. Measured with the AVX-512 kernel; the
AVX2 kernel is expected to use the same fused multiply-add (not measured).

With default settings the plugin rewrites the node before running it (low-precision
transformations split it into a quantize to ``u8`` and a float dequantize; snippets fuse it
into a generated subgraph), so the numbers then depend on the graph around the node
(docs/kernels.md). With ``levels == 65536``, ``il == ol`` and ``ih == oh`` (scalar or per
channel) the plugin removes the node (``y = x``); ``identity_65536=True`` emulates that.

Validation: ``levels`` an integer >= 2; ranges finite in float32 and broadcasting to ``x``'s
shape; ``x`` float32. Nothing passed is modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant._validation import as_kernel_input, check_flag, check_int, check_name
from refquant.kernels.onnxruntime._common import fma32

__all__ = ["fake_quantize", "cpu_plugin_variant"]

F32 = np.float32
_VARIANTS = ("reference", "jit")


def _range(v: Any, name: str) -> np.ndarray:
    arr = np.asarray(v)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):
        out = arr.astype(F32)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must be finite in float32, got {v!r}")
    return out


def cpu_plugin_variant(x_shape: tuple[int, ...], *range_shapes: tuple[int, ...]) -> str:
    """The variant the OpenVINO 2026.4 CPU plugin runs for an input of ``x_shape`` and ranges
    of ``range_shapes`` (measured; see the module docstring). ``ValueError`` where the plugin
    refuses the node or where the choice was not measured (ranges varying along two axes)."""
    rank = len(x_shape)
    axes = set()
    for shape in range_shapes:
        padded = (1,) * (rank - len(shape)) + tuple(shape)
        axes |= {i for i, d in enumerate(padded) if d != 1}
    if rank in (1,) or rank >= 6 or axes == {0}:
        if len(axes) > 1:
            raise ValueError(f"ranges vary along axes {sorted(axes)}: not measured")
        return "reference"
    if axes <= {1}:
        return "jit"
    raise ValueError(f"ranges vary along axes {sorted(axes)}: the CPU plugin refuses "
                     f"FakeQuantize with per-channel ranges on axes other than 0 and 1")


def fake_quantize(x: Any, input_low: Any, input_high: Any, output_low: Any, output_high: Any,
                  levels: Any, *, variant: str = "reference", identity_65536: bool = False
                  ) -> np.ndarray:
    """OpenVINO ``FakeQuantize`` on float32 ``x``; see the module docstring."""
    check_name(variant, "variant", _VARIANTS)
    arr = as_kernel_input(x, "x", (np.float32,))
    n = check_int(levels, "levels", 2, 2**31 - 1)
    il, ih = _range(input_low, "input_low"), _range(input_high, "input_high")
    ol, oh = _range(output_low, "output_low"), _range(output_high, "output_high")
    try:
        shape = np.broadcast_shapes(arr.shape, il.shape, ih.shape, ol.shape, oh.shape)
    except ValueError as exc:
        raise ValueError(f"input ranges do not broadcast against x of shape {arr.shape}: "
                         f"{exc}") from None
    if shape != arr.shape:
        raise ValueError(f"input ranges broadcast x of shape {arr.shape} to {shape}")
    if (check_flag(identity_65536, "identity_65536") and n == 65536
            and np.array_equal(il, ol) and np.array_equal(ih, oh)):
        return arr.copy()
    lm1 = F32(n - 1)
    if variant == "jit":
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            width = (ih - il).astype(F32)
            isc = (lm1 / width).astype(F32)
            ish = ((-il * lm1).astype(F32) / width).astype(F32)
            osc = ((oh - ol).astype(F32) / lm1).astype(F32)
            c = np.where(np.isnan(arr), ih, np.minimum(np.maximum(arr, il), ih))
            return np.asarray(fma32(np.rint(fma32(c, isc, ish)), osc, ol), F32).reshape(shape)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        t = ((arr - il).astype(F32) / (ih - il).astype(F32)).astype(F32)
        r = np.rint((t * lm1).astype(F32))
        y = (((r / lm1).astype(F32) * (oh - ol).astype(F32)).astype(F32) + ol).astype(F32)
        y = np.where(arr > np.maximum(il, ih), oh, y)
        y = np.where(arr <= np.minimum(il, ih), ol, y)
    return np.asarray(y, F32)
