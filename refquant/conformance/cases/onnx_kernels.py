"""ONNX QuantizeLinear / DequantizeLinear cases (reference: :mod:`refquant.kernels.onnx`).

Operations:

* ``onnx.quantize_linear``: inputs ``x``, ``y_scale`` and optionally ``y_zero_point``;
  params ``axis``, ``saturate``, ``block_size``, ``output_dtype`` (ONNX type name),
  ``opset`` -> ``y`` (int4/uint4 in int8/uint8 containers, FP8 as uint8 bit patterns).
* ``onnx.dequantize_linear``: inputs ``x``, ``x_scale``, optionally ``x_zero_point``;
  params ``axis``, ``block_size``, ``x_dtype``, ``opset`` -> ``y``.

Runs on the ``reference``, ``onnxruntime`` and ``onnx-reference`` targets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import onnx as ok
from ..registry import CaseDraft, register_family, register_op
from ._inputs import f32, near_ties_div, normal, special_values, uniform

ORT_REF = "onnx-reference"


@register_op("onnx.quantize_linear", "kernel", ("y",))
def _quantize(inputs: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.onnx.quantize_linear."""
    return ok.quantize_linear(inputs["x"], inputs["y_scale"], inputs.get("y_zero_point"),
                              axis=params["axis"], saturate=params["saturate"],
                              block_size=params["block_size"],
                              output_dtype=params["output_dtype"], opset=params["opset"])


@register_op("onnx.dequantize_linear", "kernel", ("y",))
def _dequantize(inputs: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.onnx.dequantize_linear."""
    return ok.dequantize_linear(inputs["x"], inputs["x_scale"], inputs.get("x_zero_point"),
                                axis=params["axis"], block_size=params["block_size"],
                                x_dtype=params["x_dtype"], opset=params["opset"])


_INT_TYPES = {  # name: (container, qmin, qmax, midpoint zero point for unsigned)
    "int8": (np.int8, -128, 127, 0), "uint8": (np.uint8, 0, 255, 128),
    "int16": (np.int16, -32768, 32767, 0), "uint16": (np.uint16, 0, 65535, 32768),
    "int4": (np.int8, -8, 7, 0), "uint4": (np.uint8, 0, 15, 8),
}


def _q(cid: str, x: np.ndarray, scale: Any, zp: Any, dtype: str, *, axis: int = 1,
       block: int = 0, opset: int = 21, saturate: bool = True, tags: tuple[str, ...] = (),
       desc: str = "", div: dict[str, str] | None = None) -> CaseDraft:
    inputs = {"x": x, "y_scale": np.asarray(scale, dtype=x.dtype)}
    if zp is not None:
        cont = _INT_TYPES[dtype][0] if dtype in _INT_TYPES else np.uint8
        inputs["y_zero_point"] = np.asarray(zp, dtype=cont)
    return CaseDraft(id=f"onnx.q.{cid}", op="onnx.quantize_linear", inputs=inputs,
                     params={"axis": axis, "saturate": saturate, "block_size": block,
                             "output_dtype": dtype, "opset": opset},
                     tags=("onnx", "quantize", dtype) + tags, description=desc,
                     expected_divergence=div or {})


def _dq(cid: str, x: np.ndarray, scale: Any, zp: Any, dtype: str, *, axis: int = 1,
        block: int = 0, opset: int = 21, sdtype: type = np.float32, tags: tuple[str, ...] = (),
        desc: str = "", div: dict[str, str] | None = None) -> CaseDraft:
    inputs = {"x": x, "x_scale": np.asarray(scale, dtype=sdtype)}
    if zp is not None:
        inputs["x_zero_point"] = np.asarray(zp, dtype=x.dtype)
    return CaseDraft(id=f"onnx.dq.{cid}", op="onnx.dequantize_linear", inputs=inputs,
                     params={"axis": axis, "block_size": block, "x_dtype": dtype,
                             "opset": opset},
                     tags=("onnx", "dequantize", dtype) + tags, description=desc,
                     expected_divergence=div or {})


_INF_DIV = {ORT_REF: "onnx.reference converts x/s to int32 before clipping; on x86 +inf and "
                     "x/s >= 2^31 become INT32_MIN, so they give qmin where the spec and ONNX "
                     "Runtime saturate to qmax"}
_F16_DIV = {ORT_REF: "onnx.reference divides float16 x by float16 y_scale in float16; ONNX "
                     "Runtime (and refquant) widen to float32 first"}


def _quantize_cases() -> Iterator[CaseDraft]:
    scales = {"s0": 0.00214854861, "s1": 0.1, "s2": np.float32(0.7) / np.float32(127),
              "s3": 3.3}
    for dtype, (_c, qmin, qmax, mid) in _INT_TYPES.items():
        lo, hi = (qmin, qmax) if qmax <= 255 else (-300, 300)
        halves = np.arange(max(lo - mid, -40), min(hi - mid, 40)) + 0.5
        for sname, s in scales.items():
            s32 = np.float32(s)
            x = near_ties_div(s32, halves)
            yield _q(f"ties.{dtype}.{sname}", x, s32, mid, dtype, tags=("ties",),
                     desc=f"x within 2 ulp of (k + 0.5) * s, s={s32!r}, zp={mid}")
        s32 = np.float32(0.05)
        x = np.concatenate([uniform(11, 40, -1.2 * (qmax - qmin) * 0.05, 1.2 * (qmax - qmin)
                                    * 0.05),
                            f32((qmin - mid - 0.5) * 0.05, (qmax - mid + 0.5) * 0.05,
                                (qmin - mid - 0.51) * 0.05, (qmax - mid + 0.49) * 0.05)])
        yield _q(f"saturate.{dtype}", x.astype(np.float32), s32, mid, dtype,
                 tags=("saturation",), desc="values beyond both ends of the range")
        sv = special_values()
        yield _q(f"special.{dtype}", sv, np.float32(0.5), mid, dtype, tags=("special",),
                 desc="+-0, subnormals, huge finite, +-inf, NaN", div=_INF_DIV)
        yield _q(f"special_finite.{dtype}", special_values(False, False), np.float32(0.5),
                 0 if dtype.startswith("int") else mid, dtype, tags=("special",),
                 desc="+-0, subnormals and huge finite values (no inf / NaN)",
                 div=_INF_DIV)
        yield _q(f"normal.{dtype}", normal(21, 64, 2.0), np.float32(4.0 / max(qmax, 1)),
                 mid, dtype, tags=("random",))
        yield _q(f"nozp.{dtype}", normal(22, 32, 1.0), np.float32(0.02), None, dtype,
                 tags=("default-zp",), desc="no zero point: output_dtype names the type")
    # scale edge cases
    for sname, s in (("subnormal", 1e-40), ("tiny", 1e-30), ("min_normal", 1.17549435e-38),
                     ("huge", 3e38)):
        x = f32(0.0, -0.0, 1e-45, -1e-45, 1e-39, 1e-36, -1e-30, 1.0, -1.0, 3e38)
        yield _q(f"scale_{sname}.int8", x, np.float32(s), 0, "int8", tags=("tiny-scale",),
                 desc=f"scale {s}: no flush to zero, x/s may overflow to inf",
                 div=_INF_DIV if sname != "huge" else None)
    # per-axis
    x3 = normal(31, (3, 4, 5), 1.5)
    for axis in (0, 1, 2, -1):
        n = x3.shape[axis]
        s = np.linspace(0.005, 0.04, n).astype(np.float32)
        for dtype in ("int8", "uint8", "int4"):
            _, qmin, qmax, mid = _INT_TYPES[dtype]
            zp = np.arange(n) % 3 + (mid if dtype.startswith("u") else -1)
            yield _q(f"axis{axis}.{dtype}", x3, s, zp, dtype, axis=axis,
                     tags=("per-axis", f"axis{axis}"))
    yield _q("axis1.int8.opset13", x3, np.linspace(0.01, 0.02, 4).astype(np.float32),
             np.zeros(4), "int8", axis=1, opset=13, tags=("per-axis", "opset13"))
    # blocked
    x2 = normal(41, (6, 8), 1.0)
    for axis, block in ((0, 2), (0, 4), (1, 3), (1, 8), (-1, 5)):
        nb = -(-x2.shape[axis] // block)
        shape = list(x2.shape)
        shape[axis] = nb
        s = uniform(42 + block, tuple(shape), 0.004, 0.03)
        for dtype in ("int8", "int4", "uint16"):
            _, qmin, qmax, mid = _INT_TYPES[dtype]
            zp = np.full(shape, mid)
            yield _q(f"block{block}.axis{axis}.{dtype}", x2, s, zp, dtype, axis=axis,
                     block=block, tags=("blocked",))
    # opset versions
    for opset in (10, 13, 19):
        for dtype in ("int8", "uint8"):
            mid = _INT_TYPES[dtype][3]
            x = near_ties_div(np.float32(0.1), np.arange(-20, 20) + 0.5)
            yield _q(f"opset{opset}.{dtype}", x, np.float32(0.1), mid, dtype, opset=opset,
                     tags=(f"opset{opset}",))
    # float16 input
    xh = np.concatenate([np.array([34.28125], np.float16),
                         (np.arange(-64, 64) * np.float16(0.53125) / 2).astype(np.float16)])
    for dtype in ("int8", "uint8"):
        mid = _INT_TYPES[dtype][3]
        for opset in (19, 21):
            yield _q(f"fp16.{dtype}.opset{opset}", xh, np.float16(0.53125), mid, dtype,
                     opset=opset, tags=("float16",), desc="float16 x and y_scale",
                     div=_F16_DIV)
    # FP8
    x8 = np.concatenate([f32(0.0, -0.0, 17, 19, 448, 449, 464, 465, 479, 480, 495, 496, 1e4,
                             57344, 61439, 61440, 65535, 65536, 1e-3, 2.0 ** -9, 2.0 ** -10,
                             2.0 ** -17, 2.0 ** -16, np.inf, -np.inf, np.nan),
                         -uniform(51, 16, 0, 600)])
    for dtype in ("float8e4m3fn", "float8e5m2"):
        for sat in (True, False):
            yield _q(f"{dtype}.sat{int(sat)}", x8, np.float32(1.0), 0, dtype, saturate=sat,
                     tags=("fp8",), desc="FP8 rounding, saturation and the 480 quirk")


def _dequantize_cases() -> Iterator[CaseDraft]:
    for dtype, (cont, qmin, qmax, mid) in _INT_TYPES.items():
        codes = np.arange(qmin, qmax + 1)
        if codes.size > 512:
            codes = np.concatenate([codes[:128], codes[-128:],
                                    (uniform(61, 128, qmin, qmax)).astype(np.int64)])
        codes = codes.astype(cont)
        for sname, s in (("a", np.float32(0.7) / np.float32(127)), ("b", 0.0123)):
            yield _dq(f"codes.{dtype}.{sname}", codes, np.float32(s), mid, dtype,
                      desc="every code (or a spread) of the type")
    i32 = np.array([0, 1, -1, 2**24, 2**24 + 1, -(2**24) - 3, 2**31 - 1, -(2**31), 123456789],
                   np.int32)
    yield _dq("codes.int32", i32, np.float32(0.001), None, "int32",
              desc="int32 codes above 2^24 round when converted to float32")
    for axis in (0, 1, -1):
        x = (np.arange(60).reshape(3, 4, 5) * 7 % 256 - 128).astype(np.int8)
        n = x.shape[axis]
        yield _dq(f"axis{axis}.int8", x, np.linspace(0.01, 0.05, n).astype(np.float32),
                  np.arange(n) - 1, "int8", axis=axis, tags=("per-axis",))
    xb = (np.arange(48).reshape(6, 8) * 5 % 16 - 8).astype(np.int8)
    yield _dq("block3.axis1.int4", xb, uniform(71, (6, 3), 0.01, 0.1), np.zeros((6, 3)),
              "int4", axis=1, block=3, tags=("blocked",))
    yield _dq("block4.axis0.int8", xb, uniform(72, (2, 8), 0.01, 0.1), np.ones((2, 8)),
              "int8", axis=0, block=4, tags=("blocked",))
    codes = np.arange(-128, 128).astype(np.int8)
    yield _dq("fp16_scale.int8", codes, np.float16(0.0123), 3, "int8", sdtype=np.float16,
              opset=19, tags=("float16",), desc="y = fp16(fl32(x - zp) * fl32(s))")
    for dtype in ("float8e4m3fn", "float8e5m2"):
        yield _dq(f"codes.{dtype}", np.arange(256).astype(np.uint8), np.float32(0.5), None,
                  dtype, tags=("fp8",), desc="every FP8 code, NaN and inf included")


@register_family("kernels.onnx", requires=("refquant.kernels.onnx",))
def generate() -> Iterator[CaseDraft]:
    yield from _quantize_cases()
    yield from _dequantize_cases()
