"""The ``litert`` target: LiteRT's QUANTIZE / DEQUANTIZE (``ai-edge-litert``), one tiny model
per case (the package and ``flatbuffers`` imported lazily).

Runs the ``litert.quantize`` / ``litert.dequantize`` cases (family ``kernels.litert``). The
model is written directly as a TFLite flatbuffer (object API of
``ai_edge_litert.schema_py_generated``) and run by ``ai_edge_litert.interpreter.Interpreter``
with the op resolver of the case's ``variant``: ``xnnpack`` -> ``AUTO`` (the default: the
XNNPACK delegate takes int8 / uint8), ``optimized`` -> ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``,
``reference`` -> ``BUILTIN_REF``.

ONNX QuantizeLinear / DequantizeLinear cases are not run here: LiteRT multiplies by the
reciprocal of the scale and rounds ties to even or away depending on the kernel and the
element's position, which the ONNX operators do not allow (docs/kernels.md, LiteRT section;
``refquant diagnose`` names the differences).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..format import Case
from ._base import Target, Unsupported

_TYPES = ("int8", "uint8", "int16")


def build_model(op: str, in_dtype: str, out_dtype: str, shape: tuple[int, ...], scale: float,
                zero_point: int) -> bytes:
    """A one-operator TFLite model: ``QUANTIZE`` (float32 -> ``out_dtype``) or ``DEQUANTIZE``
    (``in_dtype`` -> float32), per-tensor ``scale`` / ``zero_point`` on the integer tensor."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    codes = {"float32": s.TensorType.FLOAT32, "int8": s.TensorType.INT8,
             "uint8": s.TensorType.UINT8, "int16": s.TensorType.INT16}

    def tensor(name: str, dtype: str) -> Any:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), codes[dtype], 0
        if dtype != "float32":
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
            t.quantization = q
        return t

    model = s.ModelT()
    model.version = 3
    model.buffers = [s.BufferT()]
    code = s.BuiltinOperator.QUANTIZE if op == "quantize" else s.BuiltinOperator.DEQUANTIZE
    opcode = s.OperatorCodeT()
    opcode.builtinCode = opcode.deprecatedBuiltinCode = code
    opcode.version = 1
    model.operatorCodes = [opcode]
    node = s.OperatorT()
    node.opcodeIndex, node.inputs, node.outputs = 0, [0], [1]
    graph = s.SubGraphT()
    graph.tensors = [tensor("x", in_dtype), tensor("y", out_dtype)]
    graph.inputs, graph.outputs, graph.operators = [0], [1], [node]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_model(blob: bytes, x: np.ndarray, resolver: str = "AUTO") -> np.ndarray:
    """Run a one-input model; ``resolver`` names an ``OpResolverType`` (``AUTO`` = XNNPACK,
    ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``, ``BUILTIN_REF``)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=blob,
                     experimental_op_resolver_type=getattr(OpResolverType, resolver))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(x))
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[0]["index"]))


#: case variant -> ``OpResolverType`` name
RESOLVERS = {"xnnpack": "AUTO", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
             "reference": "BUILTIN_REF"}


def _params(case: Case, dtype: str) -> tuple[float, int, str]:
    p = case.params
    resolver = RESOLVERS.get(p["variant"])
    if resolver is None:
        raise Unsupported(f"litert target: unknown variant {p['variant']!r}")
    if dtype not in _TYPES:
        raise Unsupported(f"litert target: type {dtype} is not a LiteRT QUANTIZE type here")
    scale = np.float32(p["scale"])
    if p["variant"] == "xnnpack" and not scale >= np.finfo(np.float32).tiny:
        # the XNNPACK delegate refuses a subnormal scale and the interpreter then fails
        # (RuntimeError, or a crash of the process in ai-edge-litert 2.3)
        raise Unsupported("litert target: XNNPACK needs a normal float32 scale")
    return float(scale), int(p["zero_point"]), resolver


class LiteRTTarget(Target):
    name = "litert"
    requires = ("ai_edge_litert", "flatbuffers")

    def _load(self) -> None:
        self.ops.update({"litert.quantize": self._q, "litert.dequantize": self._dq})

    def _q(self, case: Case) -> dict:
        x = np.asarray(case.inputs["x"])
        if x.dtype != np.float32 or x.ndim == 0 or x.size == 0:
            raise Unsupported("litert target: non-empty float32 x only")
        dtype = str(case.params["dtype"])
        scale, zp, resolver = _params(case, dtype)
        blob = build_model("quantize", "float32", dtype, x.shape, scale, zp)
        return {"q": run_model(blob, x, resolver)}

    def _dq(self, case: Case) -> dict:
        q = np.asarray(case.inputs["q"])
        if q.ndim == 0 or q.size == 0:
            raise Unsupported("litert target: non-empty q only")
        scale, zp, resolver = _params(case, q.dtype.name)
        blob = build_model("dequantize", q.dtype.name, "float32", q.shape, scale, zp)
        return {"y": run_model(blob, q, resolver)}


TARGET_CLASS = LiteRTTarget
