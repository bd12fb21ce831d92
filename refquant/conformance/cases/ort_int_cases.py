"""ONNX Runtime CPU integer-kernel cases (reference: :mod:`refquant.kernels.onnxruntime`).

One operation per kernel, ``ort.<kernel>``; inputs are named as the ONNX operator's inputs,
attributes are params, and every case names the MLAS instruction-set variant it emulates in
the param ``isa`` (``avx2``, ``avx2-vnni``, ``avx512``, ``avx512-vnni``, ``amx``). The
expected outputs are what ONNX Runtime 1.32's CPU kernels output on a CPU of that variant
(``docs/deploy.md``): on ``avx2`` and ``avx512`` a uint8 x int8 GEMM sums adjacent K pairs of
raw-code products into a saturating int16 (``vpmaddubsw``), the VNNI/AMX variants are exact.

Inputs are saturation-prone: uint8 activations near 255 with zero point 128 (ORT's
``qdq_s8_to_u8`` form), int8 weights near -128/127, odd K (a lone last product), K beyond
MLAS's 128-wide strides, per-tensor and per-column weight parameters, zero points at both
ends. ``DynamicQuantizeLinear``, ``QLinearAdd`` and ``QLinearMul`` compute the same on every
x86-64 variant; their cases name a variant too, so a target runs each case on its own CPU.
The ``onnxruntime-int8`` target runs a case only where its ``isa`` is the host's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import onnxruntime as rk
from ..registry import CaseDraft, register_family, register_op
from ._inputs import _splitmix, uniform

#: the x86-64 variants every case is generated for
X86_ISAS = ("avx2", "avx2-vnni", "avx512", "avx512-vnni", "amx")

#: op -> (ONNX op type, domain, ordered ONNX input names, inputs fed at run time, outputs)
ORT_OPS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "ort.matmul_integer": ("MatMulInteger", "", ("a", "b", "a_zero_point", "b_zero_point"),
                           ("a",), ("y",)),
    "ort.qlinear_matmul": ("QLinearMatMul", "", ("a", "a_scale", "a_zero_point", "b",
                                                 "b_scale", "b_zero_point", "y_scale",
                                                 "y_zero_point"), ("a",), ("y",)),
    "ort.matmul_integer_to_float": ("MatMulIntegerToFloat", "com.microsoft",
                                    ("a", "b", "a_scale", "b_scale", "a_zero_point",
                                     "b_zero_point", "bias"), ("a",), ("y",)),
    "ort.conv_integer": ("ConvInteger", "", ("x", "w", "x_zero_point", "w_zero_point"),
                         ("x",), ("y",)),
    "ort.qlinear_conv": ("QLinearConv", "", ("x", "x_scale", "x_zero_point", "w", "w_scale",
                                             "w_zero_point", "y_scale", "y_zero_point", "bias"),
                         ("x",), ("y",)),
    "ort.qgemm": ("QGemm", "com.microsoft", ("a", "a_scale", "a_zero_point", "b", "b_scale",
                                             "b_zero_point", "c", "y_scale", "y_zero_point"),
                  ("a",), ("y",)),
    "ort.dynamic_quantize_linear": ("DynamicQuantizeLinear", "", ("x",), ("x",),
                                    ("y", "y_scale", "y_zero_point")),
    "ort.qlinear_add": ("QLinearAdd", "com.microsoft", ("a", "a_scale", "a_zero_point", "b",
                                                        "b_scale", "b_zero_point", "c_scale",
                                                        "c_zero_point"), ("a", "b"), ("y",)),
    "ort.qlinear_mul": ("QLinearMul", "com.microsoft", ("a", "a_scale", "a_zero_point", "b",
                                                        "b_scale", "b_zero_point", "c_scale",
                                                        "c_zero_point"), ("a", "b"), ("y",)),
}

#: case param -> ONNX attribute (params are lowercase)
_ATTRS = {"auto_pad": "auto_pad", "dilations": "dilations", "group": "group",
          "kernel_shape": "kernel_shape", "pads": "pads", "strides": "strides",
          "alpha": "alpha", "trans_a": "transA", "trans_b": "transB"}


_LIST_ATTRS = ("dilations", "kernel_shape", "pads", "strides")


def attributes(params: dict[str, Any]) -> dict[str, Any]:
    """The ONNX attributes among a case's params; list attributes are stored as
    comma-separated integers (``"1,1,1,1"``: manifest params are scalars)."""
    return {_ATTRS[k]: [int(t) for t in v.split(",")] if k in _LIST_ATTRS else v
            for k, v in params.items() if k in _ATTRS}


def _args(op: str, inputs: dict[str, np.ndarray]) -> list[Any]:
    return [inputs.get(name) for name in ORT_OPS[op][2]]


def _reference(op: str) -> Any:
    fn = getattr(rk, op.removeprefix("ort."))

    def ref(inputs: dict[str, np.ndarray], params: dict[str, Any]) -> Any:
        if op == "ort.dynamic_quantize_linear":
            y, s, z = fn(inputs["x"])
            return np.asarray(y), np.asarray(s, np.float32), np.asarray(z, np.uint8)
        return fn(*_args(op, inputs), isa=params["isa"], **attributes(params))
    ref.__doc__ = f"refquant.kernels.onnxruntime.{op.removeprefix('ort.')}, isa=params['isa']."
    return ref


for _op, _spec in ORT_OPS.items():
    register_op(_op, "kernel", _spec[4])(_reference(_op))


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------
def codes(seed: int, shape: tuple[int, ...], dtype: type, edge: float = 0.5) -> np.ndarray:
    """Integer codes of ``dtype``: a fraction ``edge`` within 8 of the type's two ends
    (uint8 activations: near 255 only), the rest anywhere in the range."""
    lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
    n = int(np.prod(shape))
    h = _splitmix(seed, 2 * n).astype(np.uint64)
    anywhere = lo + (h[:n] % np.uint64(hi - lo + 1)).astype(np.int64)
    near = (h[n:] % np.uint64(8)).astype(np.int64)
    if dtype == np.uint8:
        high = hi - near
        pick = (h[n:] >> np.uint64(8)) % np.uint64(1000) < np.uint64(int(1000 * edge))
        out = np.where(pick, high, anywhere)
    else:
        sign = ((h[n:] >> np.uint64(20)) & np.uint64(1)).astype(bool)
        extreme = np.where(sign, hi - near, lo + near)
        pick = (h[n:] >> np.uint64(8)) % np.uint64(1000) < np.uint64(int(1000 * edge))
        out = np.where(pick, extreme, anywhere)
    return out.astype(dtype).reshape(shape)


def _scales(seed: int, n: int, lo: float = 0.002, hi: float = 0.03) -> np.ndarray:
    return uniform(seed, n, lo, hi)


def _gemm_cases() -> Iterator[tuple[str, str, dict[str, np.ndarray], dict[str, Any], str]]:
    u8, s8 = np.uint8, np.int8
    # MatMulInteger
    for k, (m, kk, n) in enumerate(((4, 33, 8), (3, 131, 5), (1, 7, 16))):
        yield ("mmi.u8s8", f"k{kk}", {
            "a": codes(100 + k, (m, kk), u8), "b": codes(200 + k, (kk, n), s8, 0.7),
            "a_zero_point": np.array(128, u8), "b_zero_point": np.array(0, s8)},
            {}, f"uint8 x int8, a near 255 at zero point 128, M={m} K={kk} N={n}")
    yield ("mmi.u8s8pc", "k33", {
        "a": codes(110, (5, 33), u8), "b": codes(210, (33, 6), s8, 0.7),
        "a_zero_point": np.array(255, u8),
        "b_zero_point": np.array([-128, 0, 127, 5, -3, 1], s8)},
        {}, "uint8 x int8, per-column b zero points at both ends, a zero point 255")
    yield ("mmi.u8u8", "k9", {
        "a": codes(120, (4, 9), u8), "b": codes(220, (9, 3), u8),
        "a_zero_point": np.array(0, u8), "b_zero_point": np.array(255, u8)},
        {}, "uint8 x uint8 (16-bit operands, exact on every variant)")
    yield ("mmi.s8s8", "k15", {
        "a": codes(130, (3, 15), s8), "b": codes(230, (15, 4), s8),
        "a_zero_point": np.array(-128, s8), "b_zero_point": np.array(127, s8)},
        {}, "int8 x int8 (portable kernel, exact), zero points at both ends")
    # QLinearMatMul
    for k, pc in enumerate((False, True)):
        n = 7
        yield ("qlmm.u8s8" + (".pc" if pc else ""), "k33", {
            "a": codes(140 + k, (4, 33), u8), "a_scale": np.array(0.02, np.float32),
            "a_zero_point": np.array(128, u8), "b": codes(240 + k, (33, n), s8, 0.7),
            "b_scale": _scales(340 + k, n) if pc else np.array(0.01, np.float32),
            "b_zero_point": np.zeros(n, s8) if pc else np.array(0, s8),
            "y_scale": np.array(0.6, np.float32), "y_zero_point": np.array(128, u8)},
            {}, "uint8 x int8 requantized to uint8" + (", per-column b scale" if pc else ""))
    yield ("qlmm.s8s8", "k17", {
        "a": codes(150, (3, 17), s8), "a_scale": np.array(0.03, np.float32),
        "a_zero_point": np.array(-5, s8), "b": codes(250, (17, 5), s8),
        "b_scale": np.array(0.01, np.float32), "b_zero_point": np.array(0, s8),
        "y_scale": np.array(0.4, np.float32), "y_zero_point": np.array(-128, s8)},
        {}, "int8 x int8 requantized to int8, output zero point -128 (clamps)")
    # MatMulIntegerToFloat
    yield ("mmitf.u8s8", "k65", {
        "a": codes(160, (6, 65), u8), "b": codes(260, (65, 10), s8, 0.7),
        "a_scale": np.array(0.015, np.float32), "b_scale": _scales(360, 10),
        "a_zero_point": np.array(128, u8), "b_zero_point": np.zeros(10, s8),
        "bias": uniform(460, 10, -2.0, 2.0)},
        {}, "uint8 x int8 to float, per-column b scale, bias (the digits demo's fc layers)")
    yield ("mmitf.u8s8", "k1", {
        "a": codes(161, (4, 1), u8), "b": codes(261, (1, 3), s8, 0.9),
        "a_scale": np.array(0.5, np.float32), "b_scale": np.array(0.25, np.float32),
        "a_zero_point": np.array(128, u8), "b_zero_point": np.array(0, s8)},
        {}, "K = 1: one lone product, no pair, no bias")
    # ConvInteger
    yield ("convi.u8u8", "c3", {
        "x": codes(170, (1, 3, 5, 5), u8), "w": codes(270, (4, 3, 3, 3), u8),
        "x_zero_point": np.array(128, u8), "w_zero_point": np.array(7, u8)},
        {"pads": "1,1,1,1"}, "uint8 x uint8 convolution, padding holds the zero point")
    # QLinearConv
    yield ("qlconv.u8s8", "c3", {
        "x": codes(180, (1, 3, 6, 6), u8), "x_scale": np.array(0.02, np.float32),
        "x_zero_point": np.array(128, u8), "w": codes(280, (8, 3, 3, 3), s8, 0.7),
        "w_scale": _scales(380, 8), "w_zero_point": np.zeros(8, s8),
        "y_scale": np.array(0.5, np.float32), "y_zero_point": np.array(128, u8),
        "bias": (codes(480, (8,), s8).astype(np.int32) * 37)},
        {"pads": "1,1,1,1"},
        "uint8 x int8, 3 channels (a pair spans two kernel positions), per-channel, bias")
    yield ("qlconv.u8s8", "c8m16", {
        "x": codes(181, (1, 8, 5, 5), u8), "x_scale": np.array(0.02, np.float32),
        "x_zero_point": np.array(128, u8), "w": codes(281, (16, 8, 3, 3), s8, 0.7),
        "w_scale": np.array(0.01, np.float32), "w_zero_point": np.array(0, s8),
        "y_scale": np.array(0.9, np.float32), "y_zero_point": np.array(100, u8)},
        {"pads": "1,1,1,1", "strides": "2,2"},
        "uint8 x int8, C % 4 == 0 and M >= 16 (MLAS's symmetric convolution), stride 2")
    yield ("qlconv.s8s8", "dw", {
        "x": codes(182, (1, 4, 5, 5), s8), "x_scale": np.array(0.02, np.float32),
        "x_zero_point": np.array(-128, s8), "w": codes(282, (4, 1, 3, 3), s8),
        "w_scale": np.array(0.01, np.float32), "w_zero_point": np.array(0, s8),
        "y_scale": np.array(0.2, np.float32), "y_zero_point": np.array(0, s8)},
        {"group": 4, "pads": "1,1,1,1"}, "int8 depthwise convolution")
    # QGemm
    yield ("qgemm.u8s8.float", "k33", {
        "a": codes(190, (4, 33), u8), "a_scale": np.array(0.02, np.float32),
        "a_zero_point": np.array(128, u8), "b": codes(290, (6, 33), s8, 0.7),
        "b_scale": _scales(390, 6), "b_zero_point": np.zeros(6, s8),
        "c": (codes(490, (6,), s8).astype(np.int32) * 53)},
        {"trans_b": 1, "alpha": 1.0}, "uint8 x int8, float output, int32 bias, B transposed")
    yield ("qgemm.u8s8.q", "k31", {
        "a": codes(191, (3, 31), u8), "a_scale": np.array(0.02, np.float32),
        "a_zero_point": np.array(128, u8), "b": codes(291, (31, 5), s8, 0.7),
        "b_scale": np.array(0.01, np.float32), "b_zero_point": np.array(0, s8),
        "c": (codes(491, (5,), s8).astype(np.int32) * 101),
        "y_scale": np.array(0.3, np.float32), "y_zero_point": np.array(128, u8)},
        {"alpha": 0.5}, "uint8 x int8 requantized, int32 bias, alpha 0.5")


def _elementwise_cases() -> Iterator[tuple[str, str, dict[str, np.ndarray], dict[str, Any],
                                            str]]:
    u8, s8 = np.uint8, np.int8
    yield ("dql", "mixed", {"x": uniform(500, (3, 7), -3.0, 5.0)}, {},
           "mixed signs: the range widened to contain 0")
    yield ("dql", "positive", {"x": uniform(501, (11,), 0.25, 9.0)}, {},
           "all positive: zero point 0")
    yield ("dql", "negative", {"x": uniform(502, (2, 5), -7.0, -0.5)}, {},
           "all negative: zero point 255")
    for name, op in (("qladd", "qlinear_add"), ("qlmul", "qlinear_mul")):
        for dt, tag in ((u8, "u8"), (s8, "s8")):
            lo = 0 if dt == u8 else -128
            yield (f"{name}.{tag}", "bcast", {
                "a": codes(510 + len(name), (2, 3, 16), dt),
                "a_scale": np.array(0.05, np.float32),
                "a_zero_point": np.array(lo + 128 if dt == u8 else 3, dt),
                "b": codes(610 + len(name), (3, 1), dt),
                "b_scale": np.array(0.03, np.float32),
                "b_zero_point": np.array(lo + 7, dt),
                "c_scale": np.array(0.07 if op == "qlinear_add" else 0.9, np.float32),
                "c_zero_point": np.array(lo + 100 if dt == u8 else -20, dt)},
                {}, f"{tag}, codes at the ends, b broadcast along the innermost axis")
            yield (f"{name}.{tag}", "same", {
                "a": codes(520 + len(name), (37,), dt),
                "a_scale": np.array(0.011, np.float32),
                "a_zero_point": np.array(lo, dt),
                "b": codes(620 + len(name), (37,), dt),
                "b_scale": np.array(0.013, np.float32),
                "b_zero_point": np.array(lo + 255 if dt == u8 else 127, dt),
                "c_scale": np.array(0.02 if op == "qlinear_add" else 0.5, np.float32),
                "c_zero_point": np.array(lo + 128, dt)},
                {}, f"{tag}, same shapes (37: a vector tail), zero points at both ends")


_OP_OF = {"mmi": "ort.matmul_integer", "qlmm": "ort.qlinear_matmul",
          "mmitf": "ort.matmul_integer_to_float", "convi": "ort.conv_integer",
          "qlconv": "ort.qlinear_conv", "qgemm": "ort.qgemm",
          "dql": "ort.dynamic_quantize_linear", "qladd": "ort.qlinear_add",
          "qlmul": "ort.qlinear_mul"}


@register_family("ort_int", requires=("refquant.kernels.onnxruntime",))
def generate() -> Iterator[CaseDraft]:
    for stem, tail, inputs, attrs, text in (*_gemm_cases(), *_elementwise_cases()):
        op = _OP_OF[stem.split(".")[0]]
        for isa in X86_ISAS:
            yield CaseDraft(
                id=f"ort.{stem}.{tail}.{isa}", op=op, inputs=inputs,
                params={**attrs, "isa": isa},
                tags=("ort-int", op.removeprefix("ort."), isa),
                description=f"ONNX Runtime {ORT_OPS[op][0]} on {isa}: {text}")
