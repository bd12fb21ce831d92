"""Tiny ONNX models around one QuantizeLinear / DequantizeLinear node (onnx imported lazily).

Shared by the ``onnxruntime`` and ``onnx-reference`` targets. Outputs NumPy cannot hold
(int4, uint4, FP8) go through a trailing ``Cast`` (int4 -> int8, uint4 -> uint8, FP8 ->
float32, all exact) and FP8 values are mapped back to their bit patterns with a decode table
written here from the OCP FP8 definition (not refquant's encoder).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..format import Case

_FLOAT_CODES = {"float32": 1, "float16": 10}
_QTYPE_CODES = {"uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "uint4": 21,
                "int4": 22, "float8e4m3fn": 17, "float8e5m2": 19}
_CAST_TO = {"int4": 3, "uint4": 2, "float8e4m3fn": 1, "float8e5m2": 1}


def fp8_table(name: str) -> np.ndarray:
    """float32 value of each of the 256 codes (OCP FP8: E4M3FN bias 7, E5M2 bias 15)."""
    ebits, mbits, bias = (4, 3, 7) if name == "float8e4m3fn" else (5, 2, 15)
    out = np.empty(256, np.float32)
    for code in range(256):
        sign = -1.0 if code & 0x80 else 1.0
        e = (code >> mbits) & ((1 << ebits) - 1)
        m = code & ((1 << mbits) - 1)
        if name == "float8e4m3fn" and e == 15 and m == 7:
            v = float("nan")
        elif name == "float8e5m2" and e == 31:
            v = float("inf") if m == 0 else float("nan")
        elif e == 0:
            v = m / (1 << mbits) * 2.0 ** (1 - bias)
        else:
            v = (1 + m / (1 << mbits)) * 2.0 ** (e - bias)
        out[code] = sign * v
    return out


def fp8_codes(values: np.ndarray, name: str) -> np.ndarray:
    """Map float32 values that are exactly FP8-representable back to their codes."""
    table = fp8_table(name)
    lookup = {int(b): c for c, b in enumerate(table.view(np.uint32)) if not np.isnan(table[c])}
    flat = np.asarray(values, np.float32).ravel()
    codes = np.empty(flat.shape, np.uint8)
    for i, v in enumerate(flat):
        if np.isnan(v):
            codes[i] = 0xFF if np.signbit(v) else 0x7F
        else:
            codes[i] = lookup[int(np.float32(v).view(np.uint32))]
    return codes.reshape(np.shape(values))


def _tensor(name: str, arr: np.ndarray, onnx_type: int) -> Any:
    from onnx import helper

    if onnx_type in (17, 19):  # FP8: raw bytes of the uint8 codes
        return helper.make_tensor(name, onnx_type, list(arr.shape),
                                  np.ascontiguousarray(arr, np.uint8).tobytes(), raw=True)
    return helper.make_tensor(name, onnx_type, list(arr.shape),
                              np.asarray(arr).ravel().tolist())


def build(case: Case) -> tuple[bytes, dict[str, np.ndarray], str | None]:
    """Serialized model, feeds, and the FP8 output name to decode (or None)."""
    from onnx import TensorProto, helper

    p = case.params
    inp = case.inputs
    inits = []
    graph_inputs = []
    feeds: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {"axis": int(p["axis"])} if int(p["opset"]) >= 13 else {}
    if p.get("block_size"):
        attrs["block_size"] = int(p["block_size"])
    if case.op == "onnx.quantize_linear":
        qtype = p["output_dtype"]
        x = inp["x"]
        graph_inputs.append(helper.make_tensor_value_info("x", _FLOAT_CODES[x.dtype.name],
                                                          list(x.shape)))
        feeds["x"] = np.array(x)
        inits.append(_tensor("s", inp["y_scale"], _FLOAT_CODES[inp["y_scale"].dtype.name]))
        names = ["x", "s"]
        if "y_zero_point" in inp:
            inits.append(_tensor("zp", inp["y_zero_point"], _QTYPE_CODES[qtype]))
            names.append("zp")
        elif p["opset"] >= 21:
            attrs["output_dtype"] = _QTYPE_CODES[qtype]
        if qtype.startswith("float8"):
            attrs["saturate"] = int(bool(p["saturate"]))
        node = helper.make_node("QuantizeLinear", names, ["q"], **attrs)
        out_type = _QTYPE_CODES[qtype]
        out_shape = list(x.shape)
    elif case.op == "onnx.dequantize_linear":
        qtype = p["x_dtype"]
        x = inp["x"]
        inits.append(_tensor("x", x, _QTYPE_CODES[qtype]))
        inits.append(_tensor("s", inp["x_scale"], _FLOAT_CODES[inp["x_scale"].dtype.name]))
        names = ["x", "s"]
        if "x_zero_point" in inp:
            inits.append(_tensor("zp", inp["x_zero_point"], _QTYPE_CODES[qtype]))
            names.append("zp")
        node = helper.make_node("DequantizeLinear", names, ["q"], **attrs)
        out_type = _FLOAT_CODES[inp["x_scale"].dtype.name]
        out_shape = list(x.shape)
        qtype = ""  # float output: no cast
    else:
        raise KeyError(case.op)
    nodes = [node]
    fp8 = None
    if qtype in _CAST_TO:
        nodes.append(helper.make_node("Cast", ["q"], ["y"], to=_CAST_TO[qtype]))
        out_type = _CAST_TO[qtype]
        fp8 = qtype if qtype.startswith("float8") else None
    else:
        nodes.append(helper.make_node("Identity", ["q"], ["y"]))
    graph = helper.make_graph(nodes, case.id, graph_inputs,
                              [helper.make_tensor_value_info("y", out_type, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(p["opset"]))])
    model.ir_version = 10 if int(p["opset"]) >= 21 else 8
    _ = TensorProto
    return model.SerializeToString(), feeds, fp8


def finish(y: np.ndarray, fp8: str | None) -> dict[str, np.ndarray]:
    if fp8 is not None:
        return {"y": fp8_codes(np.asarray(y, np.float32), fp8)}
    return {"y": np.asarray(y)}
