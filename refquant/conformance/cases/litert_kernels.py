"""LiteRT QUANTIZE / DEQUANTIZE kernel cases (reference: :mod:`refquant.kernels.litert`).

Operations (per tensor; ``variant`` names the kernel, which the ``litert`` target selects
with the interpreter's op resolver: ``"xnnpack"`` = ``AUTO``, ``"optimized"`` =
``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, ``"reference"`` = ``BUILTIN_REF``):

* ``litert.quantize``: ``x`` f32; ``scale``, ``zero_point``, ``dtype`` (``int8``, ``uint8``,
  ``int16``), ``variant`` -> ``q``
* ``litert.dequantize``: ``q`` (int8, uint8 or int16); ``scale``, ``zero_point``,
  ``variant`` -> ``y`` f32

Quantize inputs: ties of ``x / scale`` and of ``x * fl(1 / scale)`` (near zero, at both
ends of the range and between) with their float32 neighbours, the clamp edges
``(qmin - zp) * scale`` and ``(qmax - zp) * scale`` with half a step either side, +-0,
subnormals, huge values and +-inf; sizes are not multiples of 8 and end with exact ties,
so the optimized kernel's scalar tail (ties away from zero) is exercised next to its
8-element blocks (ties to even).
NaN only for the builtin kernels: XNNPACK's result for NaN depends on the CPU's instruction
set. Dequantize: every code (int8 / uint8) or a sample (int16), with sizes leaving a tail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import litert as lk
from ..registry import CaseDraft, register_family, register_op
from ._inputs import special_values, ulp_neighbours

F32 = np.float32
VARIANTS = ("xnnpack", "optimized", "reference")
RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


@register_op("litert.quantize", "kernel", ("q",))
def _quantize(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.litert.quantize."""
    return lk.quantize(inputs["x"], p["scale"], p["zero_point"], p["dtype"],
                       variant=p["variant"])


@register_op("litert.dequantize", "kernel", ("y",))
def _dequantize(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.litert.dequantize."""
    return lk.dequantize(inputs["q"], p["scale"], p["zero_point"], variant=p["variant"])


#: (name, dtype, scale, zero point): exact ties at scale 1, an inexact reciprocal (0.1), a
#: symmetric int8 scale with a negative zero point, uint8 around 128, int16
QUANTIZE = [("s1", "int8", 1.0, 0), ("s0p1", "int8", 0.1, 0), ("s7", "int8", 0.7 / 127, -5),
            ("u0p02", "uint8", 0.02, 128), ("u3e-3", "uint8", 3e-3, 0),
            ("i16", "int16", 1.5e-4, 0)]


def quantize_inputs(dtype: str, scale: F32, zp: int, nan: bool) -> np.ndarray:
    """Adversarial inputs for one quantization grid (see the module docstring)."""
    lo, hi = RANGES[dtype]
    halves = np.arange(lo - zp - 2, hi - zp + 2) + 0.5
    halves = np.unique(np.concatenate([halves[:4], halves[-4:], halves[:: halves.size // 8],
                                       np.arange(-3, 3) + 0.5]))
    inv = F32(F32(1) / scale)
    edges = (np.array([lo - zp, hi - zp], np.float64)[:, None]
             + np.array([-0.5, 0.0, 0.5])).ravel() * np.float64(scale)
    div = (halves * np.float64(scale)).astype(F32)
    mul = (halves / np.float64(inv)).astype(F32)
    body = np.concatenate([ulp_neighbours(np.concatenate([div, mul]), 1),
                           ulp_neighbours(edges.astype(F32), 1),
                           special_values(with_nan=nan)])
    body = body[: body.size - body.size % 8]
    tail = (np.array([0.5, -0.5, 2.5, -1.5, 1.5]) * np.float64(scale)).astype(F32)
    return np.concatenate([body, tail]).astype(F32)  # size % 8 == 5: a scalar tail of ties


@register_family("kernels.litert", requires=("refquant.kernels.litert",))
def generate() -> Iterator[CaseDraft]:
    for name, dtype, s, zp in QUANTIZE:
        scale = F32(s)
        for variant in VARIANTS:
            x = quantize_inputs(dtype, scale, zp, nan=variant != "xnnpack")
            note = " (int16 is not delegated: the optimized kernel runs)" if (
                variant == "xnnpack" and dtype == "int16") else ""
            yield CaseDraft(
                id=f"litert.q.{variant}.{name}", op="litert.quantize", inputs={"x": x},
                params={"scale": float(scale), "zero_point": zp, "dtype": dtype,
                        "variant": variant},
                tags=("litert", "quantize", variant),
                description=f"{variant} QUANTIZE on ties of x / s and x * fl(1/s){note}")
    # a huge scale: fl(1 / scale) is subnormal (the builtin kernels keep it; not XNNPACK,
    # whose handling of it is not the same on every instruction set)
    huge = F32(3e38)
    x = np.array([3e38, -3e38, 1.5e38, 2.9e38, 3.4028235e38, -3.4028235e38, 1.0, 0.0,
                  np.inf], F32)
    for variant in ("optimized", "reference"):
        yield CaseDraft(id=f"litert.q.{variant}.huge_scale", op="litert.quantize",
                        inputs={"x": x},
                        params={"scale": float(huge), "zero_point": 0, "dtype": "int8",
                                "variant": variant},
                        tags=("litert", "quantize", variant, "subnormal"),
                        description="subnormal reciprocal of the scale")
    yield from _dequantize_cases()


def _dequantize_cases() -> Iterator[CaseDraft]:
    configs = [("i8", "int8", 0.1, -3), ("u8", "uint8", 0.0123, 128),
               ("i8.odd_scale", "int8", 1.2345e-5 * 3, 17), ("i16", "int16", 1.2345e-5, 0),
               ("i8.huge", "int8", 3e36, 0)]
    for name, dtype, s, zp in configs:
        lo, hi = RANGES[dtype]
        if dtype == "int16":
            codes = np.concatenate([np.arange(lo, hi + 1, 1031), [hi, -1, 0, 1]])
        else:
            codes = np.concatenate([np.arange(lo, hi + 1), [lo, hi, zp]])  # 259: a tail of 3
        q = codes.astype(dtype)
        for variant in VARIANTS:
            yield CaseDraft(id=f"litert.dq.{variant}.{name}", op="litert.dequantize",
                            inputs={"q": q},
                            params={"scale": float(F32(s)), "zero_point": zp,
                                    "variant": variant},
                            tags=("litert", "dequantize", variant),
                            description="(q - zp) * s; optimized int8 / uint8 blocks of 8: "
                                        "fl(q * s) - fl(zp * s)")
