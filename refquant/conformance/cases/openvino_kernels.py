"""OpenVINO FakeQuantize kernel cases (reference: :mod:`refquant.kernels.openvino`).

Operation:

* ``openvino.fake_quantize``: ``x`` f32, ``input_low``, ``input_high``, ``output_low``,
  ``output_high`` f32 (broadcasting to ``x``: scalars or per-channel shapes such as
  ``(1, C, 1, 1)``); ``levels``, ``variant`` (``"reference"`` or ``"jit"``),
  ``identity_65536`` -> ``y`` f32

Each case's ``variant`` is the one the OpenVINO CPU plugin runs for its shapes
(:func:`refquant.kernels.openvino.cpu_plugin_variant`: rank 1, rank >= 6 or ranges along
axis 0 run the reference kernel; ranks 2..5 with scalar ranges or ranges along axis 1 the
JIT kernel). Inputs: near-ties of both formulas (``il + (k + 0.5) / L * (ih - il)`` and
``(k + 0.5 - ish) / isc``) with two float32 neighbours each way, ``x`` exactly at and next
to ``input_low`` / ``input_high``, +-0, subnormals, huge values and +-inf; NaN only for the
reference kernel (what the JIT kernel's clamp makes of NaN was measured with one instruction
set only).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import openvino as ok
from ..registry import CaseDraft, register_family, register_op
from ._inputs import special_values

F32 = np.float32


@register_op("openvino.fake_quantize", "kernel", ("y",))
def _fake_quantize(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.openvino.fake_quantize."""
    return ok.fake_quantize(inputs["x"], inputs["input_low"], inputs["input_high"],
                            inputs["output_low"], inputs["output_high"], p["levels"],
                            variant=p["variant"], identity_65536=p["identity_65536"])


#: name -> (x shape, range shape)
SHAPES = {"r1": ((99,), ()), "r2ax0": ((4, 25), (4, 1)), "r6": ((1, 2, 1, 2, 3, 9), ()),
          "j2": ((1, 99), ()), "j3ch": ((2, 4, 13), (1, 4, 1)),
          "j4ch": ((2, 3, 2, 9), (1, 3, 1, 1))}
#: name -> (il, ih, ol, oh, levels): 8 bits, a symmetric 255-level grid, other and inverted
#: output ranges, 2 and 3 levels, 16 bits, and the 65536-level identity the plugin removes
SPECS = {"l256": (-1.0, 2.0, -1.0, 2.0, 256), "l255sym": (-1.27, 1.27, -1.27, 1.27, 255),
         "l16out": (-0.3, 0.9, -7.0, 5.0, 16), "l2": (0.0, 1.0, 0.0, 1.0, 2),
         "l3inv": (-2.0, 1.0, 4.0, -4.0, 3), "l65535": (-1.0, 1.0, -1.0, 1.0, 65535),
         "id65536": (-0.5, 1.5, -0.5, 1.5, 65536)}
#: specs run on one shape per kernel only (their grid has no rounding to get wrong, or the
#: plugin removes the node)
SPARSE = ("l2", "l255sym", "id65536")


def _per_channel(v: float, shape: tuple[int, ...]) -> np.ndarray:
    """``v`` scaled by 1, 0.5, 2, 0.75, ... per channel (a scalar for shape ``()``)."""
    n = int(np.prod(shape)) if shape else 1
    factors = np.array([1.0, 0.5, 2.0, 0.75, 1.25, 3.0])[np.arange(n) % 6]
    return (np.float64(v) * factors).astype(F32).reshape(shape)


def fq_inputs(shape: tuple[int, ...], il: np.ndarray, ih: np.ndarray, levels: int,
              nan: bool) -> np.ndarray:
    """Adversarial inputs (see the module docstring), deterministic in the element index."""
    lo = np.broadcast_to(il, shape).astype(np.float64).ravel()
    hi = np.broadcast_to(ih, shape).astype(np.float64).ravel()
    n = lo.size
    idx = np.arange(n)
    lm1 = levels - 1
    k = (idx // 5) % (levels + 2) - 1 if levels <= 80 else (idx * 2654435761) % (levels + 2) - 1
    ties_ref = lo + (k + 0.5) / lm1 * (hi - lo)
    isc = (F32(lm1) / (hi - lo).astype(F32)).astype(np.float64)
    ish = ((-lo * lm1).astype(F32) / (hi - lo).astype(F32)).astype(np.float64)
    ties_jit = (k + 0.5 - ish) / isc
    x = np.where((idx // 5) % 2 == 0, ties_ref, ties_jit).astype(F32)
    step = idx % 5  # the tie itself, one and two ulps up, one and two ulps down
    for _ in range(2):
        up = np.nextafter(x, F32(np.inf))
        down = np.nextafter(x, F32(-np.inf))
        x = np.where(step == 1, up, np.where(step == 2, down, x)).astype(F32)
        step = np.where((step == 3) | (step == 4), step - 2, 0)
    ends = np.stack([lo, hi]).astype(F32)
    edge = np.stack([ends, np.nextafter(ends, F32(np.inf)), np.nextafter(ends, F32(-np.inf))])
    edge = edge.transpose(2, 0, 1).reshape(n, 6)
    special = special_values(with_nan=nan)
    x[4 * np.arange(special.size)] = special
    at = 4 * np.arange(n // 4) + 2
    x[at] = edge[at, at % 6]
    return x.reshape(shape)


@register_family("kernels.openvino", requires=("refquant.kernels.openvino",))
def generate() -> Iterator[CaseDraft]:
    for sname, (shape, rshape) in SHAPES.items():
        variant = ok.cpu_plugin_variant(shape, rshape)
        for name, (il, ih, ol, oh, levels) in SPECS.items():
            if name in SPARSE and sname not in ("r1", "j2"):
                continue
            ranges = {"input_low": _per_channel(il, rshape),
                      "input_high": _per_channel(ih, rshape),
                      "output_low": _per_channel(ol, rshape),
                      "output_high": _per_channel(oh, rshape)}
            x = fq_inputs(shape, ranges["input_low"], ranges["input_high"], levels,
                          nan=variant == "reference")
            identity = name == "id65536"
            yield CaseDraft(
                id=f"openvino.fq.{variant}.{sname}.{name}", op="openvino.fake_quantize",
                inputs={"x": x, **ranges},
                params={"levels": levels, "variant": variant, "identity_65536": identity},
                tags=("openvino", "fake_quantize", variant),
                description="the CPU plugin removes the node: y = x" if identity else
                ("grid anchored at input_low; " + ("fl() at every step, RNE" if variant ==
                                                   "reference" else "two fused multiply-adds")))
