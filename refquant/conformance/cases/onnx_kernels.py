"""ONNX QuantizeLinear / DequantizeLinear cases (reference: :mod:`refquant.kernels.onnx`).

Operations:

* ``onnx.quantize_linear``: inputs ``x``, ``y_scale`` and optionally ``y_zero_point``;
  params ``axis``, ``saturate``, ``block_size``, ``output_dtype`` (ONNX type name),
  ``opset`` -> ``y`` (int4/uint4 in int8/uint8 containers, FP8 as uint8 bit patterns).
* ``onnx.dequantize_linear``: inputs ``x``, ``x_scale``, optionally ``x_zero_point``;
  params ``axis``, ``block_size``, ``x_dtype``, ``opset`` -> ``y``.

Runs on the ``reference``, ``onnxruntime`` and ``onnx-reference`` targets.

Coverage, by operator version (each case names the opset of its model):

* v10: per-tensor int8 / uint8 with zero points at and inside both ends, near-ties of
  ``x / s`` (``near_ties_div``: the tie and 2 ulps each way) at both saturation edges and
  around the zero point, +-0, subnormals, NaN, -inf, huge values.
* v13: per-axis on every axis (positive and negative) of ranks 1-4, per-channel scales and
  zero points, x near ``(k + 0.5) * s_c`` moved by -2 .. +2 ulps.
* v19: float16 x and scales (float16 near-ties, specials, a subnormal float16 scale,
  per-axis), FP8 e4m3fn / e5m2 with saturate on and off: every midpoint between
  consecutive FP8 values +-1 ulp, scaled inputs (``fl32(x / s)`` then FP8), float16 input.
* v21: int4 / uint4 / int16 / uint16 (edges, per-axis, overflow to +inf and past 2^31),
  blocked layouts with block sizes 1 to 10 and short last blocks on first, middle and last
  axes of ranks 2-4,
  subnormal scales (``s = 2^-148``: exact subnormal ties), and quantization with the
  parameters ``QParams.to_onnx()`` produces.
* DequantizeLinear: every type with zero points at both ends, int32 above 2^24 (the
  int -> float32 conversion rounds ties to even), float16 scales (two roundings, overflow
  to inf, subnormal results), subnormal / huge float32 scales, per-axis on every axis of
  ranks 1-4, blocked, and all 256 FP8 codes with float16 and huge scales.

Where onnx.reference disagrees with the spec / ONNX Runtime the case records an expected
divergence for ``onnx-reference`` with the reason (``_INF_DIV``, ``_NEG_ZP_DIV``,
``_F16_DIV``, ``_OLD_DQ_REASON``); each was measured, and a marked case that matches would
be reported with a note.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import onnx as ok
from ...kernels._fp8 import FP8_FORMATS, fp8_to_float32
from ...qparams import asymmetric_qparams, symmetric_qparams
from ..registry import CaseDraft, register_family, register_op
from ._inputs import f32, near_ties_div, normal, special_values, ulp_neighbours, uniform

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
    if opset < 19:
        div = {ORT_REF: _OLD_DQ_REASON, **(div or {})}
    if zp is not None:
        inputs["x_zero_point"] = np.asarray(zp, dtype=x.dtype)
    return CaseDraft(id=f"onnx.dq.{cid}", op="onnx.dequantize_linear", inputs=inputs,
                     params={"axis": axis, "block_size": block, "x_dtype": dtype,
                             "opset": opset},
                     tags=("onnx", "dequantize", dtype) + tags, description=desc,
                     expected_divergence=div or {})


_OLD_DQ_REASON = ("onnx 1.17's onnx.reference implements DequantizeLinear only from version "
                  "19 and raises RuntimeError for a model of opset 10 or 13; ONNX Runtime "
                  "runs it (the semantics did not change in version 19)")
_INF_DIV = {ORT_REF: "onnx.reference converts x/s to int32 before clipping; on x86 +inf and "
                     "x/s >= 2^31 become INT32_MIN, so they give qmin where the spec and ONNX "
                     "Runtime saturate to qmax"}
_F16_DIV = {ORT_REF: "onnx.reference divides float16 x by float16 y_scale in float16; ONNX "
                     "Runtime (and refquant) widen to float32 first"}


def _quantize_cases() -> Iterator[CaseDraft]:
    scales = {"s0": 0.00214854861, "s1": 0.1, "s2": np.float32(0.7) / np.float32(127),
              "s3": 3.3}
    for dtype, (_c, qmin, qmax, mid) in _INT_TYPES.items():
        # k + 0.5 for k within 40 steps of the zero point (and inside the type's range)
        halves = np.arange(max(qmin - mid, -40), min(qmax - mid, 40)) + 0.5
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


# -- helpers for the extended cases ---------------------------------------------------------

_SHAPES = {1: (5,), 2: (3, 4), 3: (2, 3, 4), 4: (2, 3, 2, 3)}
_WIDE = ("int16", "uint16", "int4", "uint4")  # the opset-21 integer types
_FP8 = ("float8e4m3fn", "float8e5m2")
_NEG_ZP_DIV = {ORT_REF: "onnx.reference converts NaN / -inf / x/s <= -2^31 to INT32_MIN and "
                        "then adds a negative zero point in int32, which wraps to a large "
                        "positive value and clips to qmax; the spec and ONNX Runtime give qmin"}


def _nudge(x: np.ndarray) -> np.ndarray:
    """Move element ``i`` of ``x`` by ``(i % 5) - 2`` float32 ulps (-2 .. +2)."""
    flat = np.asarray(x, np.float32).ravel().copy()
    off = np.arange(flat.size) % 5 - 2
    for step in range(2):
        up = off > step
        down = off < -step
        flat[up] = np.nextafter(flat[up], np.float32(np.inf))
        flat[down] = np.nextafter(flat[down], np.float32(-np.inf))
    return flat.reshape(np.shape(x))


def _bshape(n: int, rank: int, axis: int) -> list[int]:
    shape = [1] * rank
    shape[axis % rank] = n
    return shape


def _axis_ties(seed: int, shape: tuple[int, ...], axis: int, s: np.ndarray, lo: int,
               hi: int) -> np.ndarray:
    """x near ``(k + 0.5) * s_c`` (k in ``[lo, hi]``, ``s_c`` the scale of x's channel
    along ``axis``), each moved by -2 .. +2 ulps."""
    k = np.floor(uniform(seed, shape, lo, hi + 1).astype(np.float64))
    sc = s.astype(np.float64).reshape(_bshape(s.size, len(shape), axis))
    return _nudge(((k + 0.5) * sc).astype(np.float32))


def _channel_zp(dtype: str, n: int) -> np.ndarray:
    """Non-zero, varying per-channel zero points inside the type's range."""
    _c, qmin, qmax, mid = _INT_TYPES[dtype]
    if qmax - qmin < 20:
        return np.arange(n) * 3 % 5 - 2 + mid
    return np.arange(n) * 5 % 7 - 3 + mid


def _span(dtype: str) -> tuple[int, int]:
    """Range of k (in steps around the zero point) that reaches past both saturation ends
    of the 4/8-bit types and stays near zero for the 16-bit ones."""
    _c, qmin, qmax, mid = _INT_TYPES[dtype]
    return max(qmin - mid, -40) - 3, min(qmax - mid, 40) + 2


def _opset_for(dtype: str) -> int:
    return 21 if dtype in _WIDE else 13


def _edges(s: np.float32, qmin: int, qmax: int, zp: int) -> np.ndarray:
    """Near-ties at both saturation edges and around the zero point, then +-0,
    subnormals, the smallest normal, NaN, -inf and huge negative values (no positive
    overflow: that is the ``special`` / ``overflow`` cases' job)."""
    halves = np.array([qmin - zp - 1.5, qmin - zp - 0.5, qmin - zp + 0.5, -1.5, -0.5, 0.5,
                       1.5, qmax - zp - 0.5, qmax - zp + 0.5, qmax - zp + 1.5])
    return np.concatenate([near_ties_div(s, halves),
                           f32(0.0, -0.0, 1e-45, -1e-45, 1e-40, -3e-39, 1.17549435e-38,
                               np.nan, -np.inf, -3.4028235e38, -3e9)])


def _fp8_mids(fmt: str) -> np.ndarray:
    """Midpoints between consecutive positive finite FP8 values, and beyond the largest."""
    vals = fp8_to_float32(np.arange(128, dtype=np.uint8), FP8_FORMATS[fmt]).astype(np.float64)
    vals = vals[np.isfinite(vals)]
    mids = (vals[1:] + vals[:-1]) / 2
    top = vals[-1] + (vals[-1] - vals[-2]) * np.array([0.5, 1.0, 1.5])  # 464, 480, 496 / ...
    return np.concatenate([mids, top])


def _alternate_sign(x: np.ndarray) -> np.ndarray:
    return np.where(np.arange(x.size) % 2 == 1, -x, x).astype(x.dtype)


def _f16_near_ties(s: np.float16, halves: np.ndarray) -> np.ndarray:
    """float16 x near ``(k + 0.5) * s`` and its float16 neighbours (2 each way)."""
    x = (np.asarray(halves, np.float64) * np.float64(s)).astype(np.float16)
    parts, up, down = [x], x.copy(), x.copy()
    for _ in range(2):
        up = np.nextafter(up, np.float16(np.inf))
        down = np.nextafter(down, np.float16(-np.inf))
        parts += [up, down]
    return np.concatenate(parts).astype(np.float16)


_BLOCKS = (  # (x shape, axis, block_size): short last blocks, one block, block 1
    ((4, 10), 1, 3), ((4, 10), -1, 4), ((4, 10), 1, 7), ((4, 10), 1, 10), ((9, 3), 0, 2),
    ((9, 3), -2, 4), ((2, 7, 3), 1, 3), ((2, 3, 5), -1, 2), ((2, 3, 2, 5), 3, 3),
    ((5, 2, 3), 0, 1),
)


# -- extended quantize cases ----------------------------------------------------------------


def _opset_cases() -> Iterator[CaseDraft]:
    """Per-tensor int8 / uint8 at every opset, non-zero zero points, edge values."""
    zps = {"int8": (-7, 100), "uint8": (3, 255)}
    for opset in (10, 13, 19, 21):
        for dtype, pair in zps.items():
            _, qmin, qmax, _m = _INT_TYPES[dtype]
            for zp in pair:
                s = np.float32(0.0625 if zp > 0 else 0.3)
                yield _q(f"edges.{dtype}.zp{zp}.opset{opset}", _edges(s, qmin, qmax, zp), s,
                         zp, dtype, opset=opset, tags=("saturation", "special",
                                                       f"opset{opset}", "zero-point"),
                         desc="near-ties at both saturation edges and around zp, +-0, "
                              "subnormals, NaN, -inf, huge negative",
                         div=_NEG_ZP_DIV if zp < 0 else None)
        for sname, s in (("s0", 0.00214854861), ("s3", 3.3)):
            s32 = np.float32(s)
            x = near_ties_div(s32, np.arange(-30, 30) + 0.5)
            yield _q(f"ties.int8.zp5.{sname}.opset{opset}", x, s32, 5, "int8", opset=opset,
                     tags=("ties", f"opset{opset}", "zero-point"))


def _wide_type_cases() -> Iterator[CaseDraft]:
    """Opset 21 per-tensor: every integer type with zero points at qmin, inside and at qmax."""
    for dtype, (_c, qmin, qmax, _mid) in _INT_TYPES.items():
        inner = {"int8": -100, "uint8": 77, "int16": -1000, "uint16": 40000, "int4": -3,
                 "uint4": 5}[dtype]
        for zp in (qmin, inner, qmax):
            s = np.float32(0.037)
            yield _q(f"edges.{dtype}.zp{zp}", _edges(s, qmin, qmax, zp), s, zp, dtype,
                     tags=("saturation", "special", "zero-point"),
                     desc="near-ties at both saturation edges and around zp, +-0, "
                          "subnormals, NaN, -inf, huge negative",
                     div=_NEG_ZP_DIV if zp < 0 else None)
        ov = f32(np.inf, 3e9, 3.4028235e38, 2.0 ** 31 * 0.5, 2.0 ** 31 * 0.5 - 64, 1e9, -1e9)
        yield _q(f"overflow.{dtype}.zp{inner}", ov, np.float32(0.5), inner, dtype,
                 tags=("saturation", "special"),
                 desc="+inf and x/s at and above 2^31 (with a negative zero point "
                      "onnx.reference's INT32_MIN + zp wraps to a large positive value and "
                      "happens to clip to qmax, the right answer)",
                 div=_INF_DIV if inner >= 0 else None)


def _scale_edge_cases() -> Iterator[CaseDraft]:
    """Subnormal and tiny scales: exact ties of subnormal x / subnormal s, no flushing."""
    s_sub = np.float32(2.0 ** -148)
    k = np.arange(-40, 41)
    x_sub = np.concatenate([(k * 2.0 ** -149).astype(np.float32), f32(-1e-38, -0.0)])
    for dtype in (*_INT_TYPES, *_FP8):
        yield _q(f"scale_min_subnormal.{dtype}", x_sub, s_sub, 0, dtype, tags=("tiny-scale",),
                 desc="s = 2^-148, x = k * 2^-149: x / s = k / 2 exactly (subnormal ties)")
    for dtype in ("uint8", "int16", "uint16", "int4"):
        _c, qmin, qmax, mid = _INT_TYPES[dtype]
        s = np.float32(1e-30)
        x = near_ties_div(s, np.arange(max(qmin - mid, -20) - 2, min(qmax - mid, 20) + 2) + 0.5)
        yield _q(f"scale_tiny_ties.{dtype}", x, s, mid, dtype, tags=("tiny-scale", "ties"))
        s = np.float32(1e-40)
        x = near_ties_div(s, np.arange(max(qmin - mid, -20) - 2, min(qmax - mid, 20) + 2) + 0.5)
        yield _q(f"scale_subnormal_ties.{dtype}", x, s, mid, dtype, tags=("tiny-scale", "ties"),
                 desc="s = 1e-40 (subnormal), x near (k + 0.5) * s")


def _per_axis_cases() -> Iterator[CaseDraft]:
    """Every axis (positive and negative) of ranks 1-4: int8 / uint8 at opset 13 and the
    wide types at opset 21, per-channel scales and zero points."""
    seed = 200
    for rank, shape in _SHAPES.items():
        for axis in range(-rank, rank):
            n = shape[axis]
            s = uniform(seed, n, 0.01, 0.2)
            for dtype in ("int8", "uint8"):
                seed += 1
                lo, hi = _span(dtype)
                x = _axis_ties(seed, shape, axis, s, lo, hi)
                yield _q(f"r{rank}.axis{axis}.{dtype}.opset13", x, s, _channel_zp(dtype, n),
                         dtype, axis=axis, opset=13,
                         tags=("per-axis", f"axis{axis}", f"rank{rank}", "ties", "opset13"))
            if rank in (2, 4):
                dtype = _WIDE[(axis + rank) % 4]
                seed += 1
                lo, hi = _span(dtype)
                x = _axis_ties(seed, shape, axis, s, lo, hi)
                yield _q(f"r{rank}.axis{axis}.{dtype}", x, s, _channel_zp(dtype, n), dtype,
                         axis=axis, tags=("per-axis", f"axis{axis}", f"rank{rank}", "ties"))
    for dtype in _WIDE:  # rank 3, every wide type on a negative and a positive axis
        for axis in (-3, 1):
            seed += 1
            shape = _SHAPES[3]
            n = shape[axis]
            s = uniform(seed, n, 0.01, 0.2)
            lo, hi = _span(dtype)
            yield _q(f"r3.axis{axis}.{dtype}", _axis_ties(seed, shape, axis, s, lo, hi), s,
                     _channel_zp(dtype, n), dtype, axis=axis,
                     tags=("per-axis", f"axis{axis}", "rank3", "ties"))


def _blocked_cases() -> Iterator[CaseDraft]:
    """Blocked (opset 21) layouts for every integer type."""
    seed = 300
    for i, (shape, axis, block) in enumerate(_BLOCKS):
        nb = -(-shape[axis] // block)
        sshape = list(shape)
        sshape[axis] = nb
        dtypes = list(_INT_TYPES) if i < 4 else [list(_INT_TYPES)[i % 6],
                                                  list(_INT_TYPES)[(i + 3) % 6]]
        for dtype in dtypes:
            seed += 1
            _c, qmin, qmax, mid = _INT_TYPES[dtype]
            s = uniform(seed, tuple(sshape), 0.01, 0.1)
            k = np.floor(uniform(seed + 1000, shape, *_span(dtype)).astype(np.float64))
            srep = np.take(np.repeat(s.astype(np.float64), block, axis=axis),
                           np.arange(shape[axis]), axis=axis)
            x = _nudge(((k + 0.5) * srep).astype(np.float32))
            zp = (np.arange(int(np.prod(sshape))).reshape(sshape) % 3 - 1 + mid)
            yield _q(f"blk.{'x'.join(map(str, shape))}.axis{axis}.b{block}.{dtype}", x, s, zp,
                     dtype, axis=axis, block=block, tags=("blocked", "ties"),
                     desc=f"block_size {block} along axis {axis} of {shape} "
                          f"(last block {shape[axis] - (nb - 1) * block} long)")


def _fp16_cases() -> Iterator[CaseDraft]:
    """float16 x and y_scale (opset 19 / 21): near-ties, specials, tiny scales, layouts."""
    for sname, sv in (("s1", 0.1), ("s2", 0.00214854861), ("s4", 7.0)):
        s16 = np.float16(sv)
        for dtype, opset in (("int8", 19), ("uint8", 19), ("int16", 21), ("int4", 21)):
            _c, qmin, qmax, mid = _INT_TYPES[dtype]
            zp = mid + (3 if dtype != "int4" else 1)
            lo, hi = max(qmin - zp, -60) - 2, min(qmax - zp, 60) + 2
            x = _f16_near_ties(s16, np.arange(lo, hi) + 0.5)
            yield _q(f"fp16.ties.{dtype}.{sname}", x, s16, zp, dtype, opset=opset,
                     tags=("float16", "ties"),
                     desc="float16 x near (k + 0.5) * s and its float16 neighbours",
                     div=_F16_DIV if sname != "s4" else None)
    xs = np.array([0.0, -0.0, 6e-8, -6e-8, 1e-5, -3e-5, 6.1e-5, 0.25, -0.75, 65504, -65504,
                   np.inf, -np.inf, np.nan], np.float16)
    for dtype, opset in (("int8", 19), ("uint8", 21), ("uint16", 21)):
        mid = _INT_TYPES[dtype][3]
        yield _q(f"fp16.special.{dtype}", xs, np.float16(0.5), mid + 2, dtype, opset=opset,
                 tags=("float16", "special"), desc="float16 +-0, subnormals, max, +-inf, NaN",
                 div={ORT_REF: _INF_DIV[ORT_REF] + "; it also divides in float16, so "
                               "65504 / 0.5 overflows to inf"})
    k = np.arange(-300, 301, 7)
    x16 = (k * 2.0 ** -24).astype(np.float16)
    for dtype, opset in (("int8", 19), ("int16", 21)):
        yield _q(f"fp16.scale_subnormal.{dtype}", x16, np.float16(2.0 ** -23), 0, dtype,
                 opset=opset, tags=("float16", "tiny-scale"),
                 desc="float16 subnormal s = 2^-23, x = k * 2^-24: x / s = k / 2 exactly")
    shape = _SHAPES[3]
    for axis, dtype in ((0, "int8"), (-1, "uint8")):
        n = shape[axis]
        s = uniform(400 + n, n, 0.01, 0.2).astype(np.float16)
        x = _axis_ties(401 + n, shape, axis, s.astype(np.float32), *_span(dtype))
        yield _q(f"fp16.r3.axis{axis}.{dtype}", x.astype(np.float16), s,
                 _channel_zp(dtype, n), dtype, axis=axis, opset=19,
                 tags=("float16", "per-axis", f"axis{axis}"), div=_F16_DIV)
    for dtype in ("int4", "uint8"):
        s = uniform(410, (4, 3), 0.02, 0.2).astype(np.float16)
        x = normal(411, (4, 10), 0.6).astype(np.float16)
        yield _q(f"fp16.blk.axis1.b4.{dtype}", x, s, np.full((4, 3), _INT_TYPES[dtype][3]),
                 dtype, axis=1, block=4, tags=("float16", "blocked"))


def _fp8_cases() -> Iterator[CaseDraft]:
    """FP8 (opset 19 / 21): every rounding midpoint and its neighbours, scaled inputs,
    float16 inputs, per-axis and blocked, saturate on and off."""
    for dtype in _FP8:
        mids = _fp8_mids(dtype).astype(np.float32)
        x = _alternate_sign(ulp_neighbours(mids, 1))
        xs = np.concatenate([x, f32(0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-40)])
        sc = np.float32(0.1)
        xsc = _alternate_sign(ulp_neighbours(
            (mids[::2].astype(np.float64) * np.float64(sc)).astype(np.float32), 2))
        for sat in (True, False):
            yield _q(f"{dtype}.mids.sat{int(sat)}", xs, np.float32(1.0), 0, dtype,
                     saturate=sat, opset=19, tags=("fp8", "ties"),
                     desc="every midpoint between consecutive FP8 values +-1 ulp, and past "
                          "the largest value")
            yield _q(f"{dtype}.scaled.sat{int(sat)}", xsc, sc, 0, dtype, saturate=sat,
                     tags=("fp8", "ties"), desc="x near midpoint * 0.1: fl32(x / s) first, "
                                                "then the FP8 rounding")
        x16 = np.array([0.0, -0.0, 6e-8, 2.0 ** -10, 2.0 ** -17, 17, 19, 448, 464, 480, 496,
                        57344, 61440, 65504, -65504, 1.0625, 1.1875, np.inf, -np.inf, np.nan],
                       np.float16)
        for sat in (True, False):
            yield _q(f"{dtype}.fp16.sat{int(sat)}", x16, np.float16(1.0), 0, dtype,
                     saturate=sat, opset=19, tags=("fp8", "float16"),
                     desc="float16 x widened to float32, then FP8")
        xa = normal(420, (3, 4), 300.0)
        sa = f32(0.5, 1.0, 3.0)
        yield _q(f"{dtype}.r2.axis-2", xa, sa, np.zeros(3), dtype, axis=-2, opset=19,
                 tags=("fp8", "per-axis"))
        sb = uniform(421, (3, 2), 0.3, 3.0)
        yield _q(f"{dtype}.blk.axis1.b3", xa, sb, np.zeros((3, 2)), dtype, axis=1, block=3,
                 tags=("fp8", "blocked"))


def _qparams_to_onnx_cases() -> Iterator[CaseDraft]:
    """Quantize with the parameters of ``QParams.to_onnx()`` (symmetric thresholds become
    ``fl32(S / qmax)``; asymmetric steps and zero points pass through)."""
    configs = (  # (name, min, max, bits, signed, symmetric, onnx type)
        ("sym.b8s", -0.7, 0.7, 8, True, True, "int8"),
        ("sym.b8s.skew", -0.25, 3.1, 8, True, True, "int8"),
        ("asym.b8u", -0.5, 3.0, 8, False, False, "uint8"),
        ("asym.b8s", -3.0, 0.5, 8, True, False, "int8"),
        ("sym.b4s", -1.0, 2.0, 4, True, True, "int4"),
        ("asym.b4u", -1.0 / 3.0, 2.0 / 3.0, 4, False, False, "uint4"),
        ("sym.b16s", -5.0, 5.0, 16, True, True, "int16"),
        ("asym.b16u", -2.0, 7.0, 16, False, False, "uint16"),
    )
    for name, lo, hi, bits, signed, sym, dtype in configs:
        mk = symmetric_qparams if sym else asymmetric_qparams
        qp = mk(lo, hi, bits=bits, signed=signed)
        zdt = np.int8 if signed else np.uint8
        if bits > 8:
            zdt = np.int16 if signed else np.uint16
        y_scale, y_zp = qp.to_onnx(zdt)
        s = np.float32(y_scale)
        zp = int(y_zp)
        _c, qmin, qmax, _m = _INT_TYPES[dtype]
        span = np.arange(max(qmin - zp, -50) - 2, min(qmax - zp, 50) + 2) + 0.5
        x = np.concatenate([near_ties_div(s, span), ulp_neighbours(f32(lo, hi, 0.0), 1)])
        yield _q(f"qparams.{name}", x, s, zp, dtype, tags=("qparams", "ties"),
                 desc=f"{'symmetric' if sym else 'asymmetric'}_qparams({lo}, {hi}, "
                      f"bits={bits}, signed={signed}).to_onnx(): s={s!r}, zp={zp}")


# -- extended dequantize cases --------------------------------------------------------------


def _codes(dtype: str, seed: int) -> np.ndarray:
    cont, qmin, qmax, _m = _INT_TYPES[dtype]
    codes = np.arange(qmin, qmax + 1)
    if codes.size > 512:
        codes = np.concatenate([codes[:16], codes[-16:],
                                np.floor(uniform(seed, 64, qmin, qmax + 1)).astype(np.int64)])
    return codes.astype(cont)


def _dequantize_more() -> Iterator[CaseDraft]:
    for dtype, (_cont, qmin, qmax, mid) in _INT_TYPES.items():
        op = 21 if dtype in _WIDE else 10
        for zp_end in (qmin, qmax):
            # int8 / uint8: the lower end in an opset-10 model, the upper one at opset 21
            yield _dq(f"codes.{dtype}.zp{zp_end}", _codes(dtype, 500), np.float32(0.0371),
                      zp_end, dtype, opset=op if zp_end == qmin else 21, tags=("zero-point",),
                      desc="zero point at an end of the range: x - zp spans 2^bits - 1")
        yield _dq(f"fp16_scale.{dtype}.zp{mid + 1}", _codes(dtype, 501), np.float16(0.0123),
                  mid + 1, dtype, sdtype=np.float16, opset=19 if op == 10 else 21,
                  tags=("float16",), desc="fp16(fl32(x - zp) * fl32(s)): two roundings")
    for dtype in ("int16", "uint16", "int8"):
        cont, qmin, qmax, mid = _INT_TYPES[dtype]
        yield _dq(f"fp16_scale_overflow.{dtype}", _codes(dtype, 502), np.float16(7.5), mid,
                  dtype, sdtype=np.float16, opset=21, tags=("float16",),
                  desc="fl32 product beyond 65504 becomes inf in float16")
        yield _dq(f"fp16_scale_subnormal.{dtype}", _codes(dtype, 503),
                  np.float16(3 * 2.0 ** -24), mid, dtype, sdtype=np.float16, opset=21,
                  tags=("float16", "tiny-scale"), desc="products land on float16 subnormals")
    for sname, sv in (("subnormal", 1e-40), ("min_subnormal", 1e-45), ("huge", 3e38),
                      ("tiny", 1e-30)):
        yield _dq(f"scale_{sname}.int8", _codes("int8", 0), np.float32(sv), -3, "int8",
                  tags=("tiny-scale",), desc=f"scale {sv}: subnormal products or overflow")
    i32 = np.array([2**24 - 1, 2**24 + 1, 2**24 + 3, 2**25 + 2, 2**25 + 6, 2**30 + 64,
                    2**30 + 192, 2**31 - 1, -(2**31), -(2**24) - 1, -(2**24) - 3, 0, 7, -7],
                   np.int32)
    for sname, sv in (("one", 1.0), ("three", 3.0), ("pow2", 2.0 ** -20), ("huge", 1e30),
                      ("subnormal", 1e-40)):
        yield _dq(f"codes.int32.{sname}", i32, np.float32(sv), None, "int32",
                  opset=10 if sname == "one" else 21,
                  desc="int32 -> float32 rounds (ties to even) above 2^24, then one multiply")
    yield _dq("codes.int32.fp16_scale", i32[:8], np.float16(0.5), None, "int32",
              sdtype=np.float16, opset=19, tags=("float16",),
              desc="int32 above 2^24 with a float16 scale: inf in float16")
    yield _dq("axis0.int32", i32.reshape(2, 7), f32(0.25, 3.0), None, "int32", axis=0,
              opset=13, tags=("per-axis",))
    # per-axis on every axis of ranks 1-4
    seed = 600
    types = list(_INT_TYPES)
    for rank, shape in _SHAPES.items():
        for axis in range(-rank, rank):
            dtype = types[(rank * 3 + axis) % 6]
            cont, qmin, qmax, mid = _INT_TYPES[dtype]
            seed += 1
            n = shape[axis]
            x = np.floor(uniform(seed, shape, qmin, qmax + 1)).astype(cont)
            s = uniform(seed + 1, n, 0.001, 0.5)
            yield _dq(f"r{rank}.axis{axis}.{dtype}", x, s, _channel_zp(dtype, n), dtype,
                      axis=axis, opset=_opset_for(dtype) if rank <= 2 else 21,
                      tags=("per-axis", f"axis{axis}", f"rank{rank}"))
    # blocked
    for i, (shape, axis, block) in enumerate(_BLOCKS):
        dtype = types[i % 6]
        cont, qmin, qmax, mid = _INT_TYPES[dtype]
        nb = -(-shape[axis] // block)
        sshape = list(shape)
        sshape[axis] = nb
        x = np.floor(uniform(700 + i, shape, qmin, qmax + 1)).astype(cont)
        s = uniform(720 + i, tuple(sshape), 0.001, 0.5)
        zp = np.arange(int(np.prod(sshape))).reshape(sshape) % 3 - 1 + mid
        yield _dq(f"blk.{'x'.join(map(str, shape))}.axis{axis}.b{block}.{dtype}", x, s, zp,
                  dtype, axis=axis, block=block, tags=("blocked",))
    # FP8
    codes = np.arange(256).astype(np.uint8)
    for dtype in _FP8:
        yield _dq(f"codes.{dtype}.fp16_scale", codes, np.float16(3.0), None, dtype,
                  sdtype=np.float16, opset=19, tags=("fp8", "float16"),
                  desc="every FP8 code times a float16 scale (overflows to inf in float16)")
        yield _dq(f"codes.{dtype}.scale_huge", codes, np.float32(1e35), None, dtype,
                  opset=21, tags=("fp8",), desc="products beyond float32 max become inf")
        yield _dq(f"{dtype}.axis-1", codes.reshape(16, 16), uniform(730, 16, 0.1, 2.0), None,
                  dtype, axis=-1, opset=19, tags=("fp8", "per-axis"))
        yield _dq(f"{dtype}.blk.axis0.b5", codes.reshape(16, 16), uniform(731, (4, 16), 0.1,
                                                                             2.0),
                  None, dtype, axis=0, block=5, tags=("fp8", "blocked"))


@register_family("kernels.onnx", requires=("refquant.kernels.onnx",))
def generate() -> Iterator[CaseDraft]:
    yield from _quantize_cases()
    yield from _dequantize_cases()
    yield from _opset_cases()
    yield from _wide_type_cases()
    yield from _scale_edge_cases()
    yield from _per_axis_cases()
    yield from _blocked_cases()
    yield from _fp16_cases()
    yield from _fp8_cases()
    yield from _qparams_to_onnx_cases()
    yield from _dequantize_more()
