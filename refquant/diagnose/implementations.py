"""Installed real implementations as kernels of the diagnose families.

Each entry maps a name to ``(family, reference, required package, factory)``; the factory
imports the framework (never at module level) and returns a callable with the family's
signature (:data:`refquant.diagnose.catalogue.FAMILIES`). A case the implementation cannot
express (a code range with no matching type, a zero point Paddle does not take) returns
None and is skipped. ``IMPLEMENTATIONS`` drives ``refquant diagnose --implementation`` and
the diagnosis table of docs/kernels.md (computed by ``tests/test_diagnose.py``).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._stderr import CV2_ABI, drop_stderr_lines

__all__ = ["Implementation", "IMPLEMENTATIONS", "get_implementation"]

Kernel = Callable[..., Any]
_ONNX_TYPES = {(-128, 127): "int8", (0, 255): "uint8", (-32768, 32767): "int16",
               (0, 65535): "uint16"}


@dataclass(frozen=True)
class Implementation:
    name: str
    family: str
    reference: str
    package: str
    factory: Callable[[], Kernel]
    what: str
    #: takes a non-integer zero point (runs ``diag.fq.zero_point.i8fzp``)
    float_zero_point: bool = False

    def missing(self) -> str | None:
        """Why it cannot run here, or None."""
        if importlib.util.find_spec(self.package) is None:
            return f"implementation {self.name!r} needs the Python package {self.package!r}"
        return None


def _onnx_model(qdq: bool, dtype: str) -> bytes:
    from onnx import TensorProto, helper

    elem = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8,
            "int16": TensorProto.INT16, "uint16": TensorProto.UINT16}[dtype]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])]
    out = helper.make_tensor_value_info("q", elem, None)
    if qdq:
        nodes.append(helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("z", elem, [])],
        [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return bytes(model.SerializeToString())


def _onnx(runtime: str, qdq: bool) -> Kernel:
    runners: dict[str, Any] = {}

    def run(x: np.ndarray, s: np.float32, z: int, qmin: int, qmax: int) -> Any:
        dtype = _ONNX_TYPES.get((qmin, qmax))
        if dtype is None:
            return None
        if dtype not in runners:
            model = _onnx_model(qdq, dtype)
            if runtime == "onnxruntime":
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
                sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
                runners[dtype] = lambda feeds: sess.run(None, feeds)[0]
            else:
                import onnx
                from onnx.reference import ReferenceEvaluator

                ev = ReferenceEvaluator(onnx.load_from_string(model))
                runners[dtype] = lambda feeds: ev.run(None, feeds)[0]  # type: ignore[index]
        feeds = {"x": x, "s": np.array(s, np.float32), "z": np.array(z, dtype)}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return runners[dtype](feeds)
    return run


def _ort_dequantize() -> Kernel:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    sessions: dict[str, Any] = {}
    elems = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8,
             "int16": TensorProto.INT16}

    def run(q: np.ndarray, s: np.float32, z: int) -> Any:
        dtype = next((t for t in elems if np.iinfo(t).min <= min(int(q.min()), z)
                      and max(int(q.max()), z) <= np.iinfo(t).max), None)
        if dtype is None:
            return None
        if dtype not in sessions:
            graph = helper.make_graph(
                [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], "g",
                [helper.make_tensor_value_info("q", elems[dtype], None),
                 helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
                 helper.make_tensor_value_info("z", elems[dtype], [])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
            model.ir_version = 10
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            sessions[dtype] = ort.InferenceSession(model.SerializeToString(), so,
                                                   providers=["CPUExecutionProvider"])
        return sessions[dtype].run(None, {"q": q.astype(dtype), "s": np.array(s, np.float32),
                                          "z": np.array(z, dtype)})[0]
    return run


def _torch_dequantize() -> Kernel:
    import torch

    def run(q: np.ndarray, s: np.float32, z: int) -> Any:
        lo, hi = int(q.min()), int(q.max())
        if 0 <= lo and hi <= 255 and 0 <= z <= 255:
            np_dt: Any = np.uint8  # quint8
        elif -128 <= lo and hi <= 127 and -128 <= z <= 127:
            np_dt = np.int8  # qint8
        else:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(q.astype(np_dt)),
                                                        float(s), z)
            return t.dequantize().numpy()
    return run


def _torch_quantize() -> Kernel:
    import torch

    types = {(0, 255): torch.quint8, (-128, 127): torch.qint8}

    def run(x: np.ndarray, s: np.float32, z: int, qmin: int, qmax: int) -> Any:
        dt = types.get((qmin, qmax))
        if dt is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the quantized-tensor deprecation notice
            q = torch.quantize_per_tensor(torch.from_numpy(x), float(s), z, dt)
        return q.int_repr().numpy()
    return run


def _torch_fake() -> Kernel:
    import torch

    def run(x: np.ndarray, s: np.float32, z: int, qmin: int, qmax: int) -> Any:
        return torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), float(s), z, qmin,
                                                     qmax).numpy()
    return run


def _torch_fake_float_zp(learnable: bool) -> Kernel:
    """``torch.fake_quantize_per_channel_affine`` with a float32 zero-point tensor, one
    channel per element (an int32 tensor selects another CPU kernel), or
    ``torch._fake_quantize_learnable_per_tensor_affine`` (float scale and zero-point
    tensors)."""
    import torch

    def run(x: np.ndarray, s: np.float32, z: Any, qmin: int, qmax: int) -> Any:
        t = torch.from_numpy(x)
        if learnable:
            return torch._fake_quantize_learnable_per_tensor_affine(
                t, torch.tensor([float(s)]), torch.tensor([float(z)]), qmin, qmax,
                1.0).detach().numpy()
        n = x.size
        return torch.fake_quantize_per_channel_affine(
            t, torch.full((n,), float(s), dtype=torch.float32),
            torch.full((n,), float(z), dtype=torch.float32), 0, qmin, qmax).numpy()
    return run


def _paddle_quantize(round_type: int) -> Kernel:
    with warnings.catch_warnings(), drop_stderr_lines(CV2_ABI):
        warnings.simplefilter("ignore")
        import paddle
        from paddle import _legacy_C_ops
    paddle.set_device("cpu")

    def run(x: np.ndarray, s: np.float32, z: int, qmin: int, qmax: int) -> Any:
        if z != 0 or qmin != -qmax - 1:
            return None  # Paddle's quantize_linear has no zero point and clips to -qmax-1
        big = np.float32(np.float32(qmax) * s)  # Paddle takes the threshold S = qmax * s
        out = _legacy_C_ops.quantize_linear(  # type: ignore[attr-defined]
            paddle.to_tensor(x), paddle.to_tensor(np.array([big], np.float32)),
            paddle.to_tensor(np.zeros(1, np.float32)), "quant_axis", -1,
            "bit_length", int(qmax + 1).bit_length(), "qmin", qmin, "qmax", qmax,
            "round_type", round_type)
        return np.array(out.numpy())
    return run


def _paddle_fake() -> Kernel:
    with warnings.catch_warnings(), drop_stderr_lines(CV2_ABI):
        warnings.simplefilter("ignore")
        import paddle
        from paddle import _C_ops
    paddle.set_device("cpu")

    def run(x: np.ndarray, s: np.float32, z: int, qmin: int, qmax: int) -> Any:
        if z != 0 or qmin != -qmax - 1:
            return None
        big = paddle.to_tensor(np.array([np.float32(qmax) * s], np.float32))
        one = paddle.to_tensor(np.ones(1, np.float32))
        out = _C_ops.fake_quantize_dequantize_moving_average_abs_max(
            paddle.to_tensor(x), big, one, one, 0.9, int(qmax + 1).bit_length(), True, 0)[0]
        return np.array(out.numpy())
    return run


def _tf_bits(qmin: int, qmax: int) -> int | None:
    n = qmax - qmin + 1
    b = n.bit_length() - 1
    return b if n == 1 << b and 2 <= b <= 16 else None


def _tf_fake(op: str) -> Kernel:
    import tensorflow as tf

    def run(x: np.ndarray, s: np.float32, z: int, qmin: int, qmax: int) -> Any:
        bits = _tf_bits(qmin, qmax)
        if bits is None:
            return None
        lo = float(np.float32(s * np.float32(qmin - z)))
        hi = float(np.float32(s * np.float32(qmax - z)))
        if op == "args":
            out = tf.quantization.fake_quant_with_min_max_args(x, min=lo, max=hi,
                                                               num_bits=bits)
        else:
            out = tf.quantization.quantize_and_dequantize_v2(
                x, lo, hi, signed_input=qmin < 0, num_bits=bits, range_given=True,
                round_mode="HALF_TO_EVEN")
        return np.array(out.numpy())
    return run


def _litert_model(n: int, s: float, z: int, ttype: int) -> bytes:
    """A one-op LiteRT flatbuffer: float32 ``x`` (n,) -> QUANTIZE -> ``q`` with scale ``s``
    and zero point ``z`` (schema: ``ai_edge_litert.schema_py_generated``)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as sch

    code = sch.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = sch.BuiltinOperator.QUANTIZE
    code.version = 1
    x = sch.TensorT()
    x.shape, x.type, x.buffer, x.name = [n], sch.TensorType.FLOAT32, 1, b"x"
    q = sch.TensorT()
    q.shape, q.type, q.buffer, q.name = [n], ttype, 2, b"q"
    q.quantization = sch.QuantizationParametersT()
    q.quantization.scale, q.quantization.zeroPoint = [s], [z]
    op = sch.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = sch.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = [x, q], [0], [1], [op]
    model = sch.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [sch.BufferT(), sch.BufferT(), sch.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _litert(delegate: bool) -> Kernel:
    from ai_edge_litert import schema_py_generated as sch
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    types = {(-128, 127): sch.TensorType.INT8, (0, 255): sch.TensorType.UINT8,
             (-32768, 32767): sch.TensorType.INT16}
    resolver = (OpResolverType.AUTO if delegate
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)

    def run(x: np.ndarray, s: np.float32, z: int, qmin: int, qmax: int) -> Any:
        tt = types.get((qmin, qmax))
        if tt is None or (delegate and s < np.finfo(np.float32).tiny):
            return None  # a subnormal scale crashes the XNNPACK delegate (segfault)
        it = Interpreter(model_content=_litert_model(x.size, float(s), z, tt),
                         experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return np.array(it.get_tensor(it.get_output_details()[0]["index"]))
    return run


def _openvino_fake() -> Kernel:
    import openvino as ov
    from openvino import opset13 as ops

    core = ov.Core()

    def run(x: np.ndarray, s: np.float32, z: int, qmin: int, qmax: int) -> Any:
        if qmax - qmin + 1 > 256:
            return None  # the CPU plugin's FQ stripping pass refuses a lone 16-bit FQ
        lo = np.array(np.float32(s * np.float32(qmin - z)), np.float32)
        hi = np.array(np.float32(s * np.float32(qmax - z)), np.float32)
        p = ops.parameter(list(x.shape), ov.Type.f32)
        fq = ops.fake_quantize(p, ops.constant(lo), ops.constant(hi), ops.constant(lo),
                               ops.constant(hi), qmax - qmin + 1)
        compiled = core.compile_model(ov.Model([fq], [p]), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32"})
        return np.array(compiled([x])[0], np.float32)
    return run


IMPLEMENTATIONS: dict[str, Implementation] = {i.name: i for i in (
    Implementation("onnxruntime", "quantize", "onnx", "onnxruntime",
                   lambda: _onnx("onnxruntime", False),
                   "ONNX Runtime QuantizeLinear (CPU EP, opset 21)"),
    Implementation("onnx-reference", "quantize", "onnx", "onnx",
                   lambda: _onnx("reference", False),
                   "onnx.reference QuantizeLinear (opset 21)"),
    Implementation("onnxruntime-qdq", "fake_quant", "onnx", "onnxruntime",
                   lambda: _onnx("onnxruntime", True),
                   "ONNX Runtime QuantizeLinear + DequantizeLinear"),
    Implementation("torch.quantize_per_tensor", "quantize", "torch", "torch",
                   _torch_quantize, "torch.quantize_per_tensor(...).int_repr(), CPU"),
    Implementation("torch.fake_quantize_per_tensor_affine", "fake_quant", "torch", "torch",
                   _torch_fake, "torch.fake_quantize_per_tensor_affine, CPU"),
    Implementation("torch.fake_quantize_per_channel_affine.float_zp", "fake_quant", "torch",
                   "torch", lambda: _torch_fake_float_zp(False),
                   "torch.fake_quantize_per_channel_affine, CPU, one channel per element, "
                   "float32 zero-point tensor",
                   float_zero_point=True),
    Implementation("torch._fake_quantize_learnable_per_tensor_affine", "fake_quant", "torch",
                   "torch", lambda: _torch_fake_float_zp(True),
                   "torch._fake_quantize_learnable_per_tensor_affine (forward), CPU, float "
                   "scale and zero-point tensors", float_zero_point=True),
    Implementation("paddle.quantize_linear", "quantize", "paddle", "paddle",
                   lambda: _paddle_quantize(0),
                   "Paddle _legacy_C_ops.quantize_linear, round_type 0, CPU (threshold "
                   "S = qmax * s)"),
    Implementation("paddle.quantize_linear.rt1", "quantize", "paddle", "paddle",
                   lambda: _paddle_quantize(1), "the same with round_type 1"),
    Implementation("paddle.fake_quantize_dequantize_moving_average_abs_max", "fake_quant",
                   "onnx", "paddle", _paddle_fake,
                   "Paddle _C_ops.fake_quantize_dequantize_moving_average_abs_max, is_test "
                   "(the given scale S = qmax * s), round_type 0, CPU"),
    Implementation("onnxruntime.DequantizeLinear", "dequantize", "onnx", "onnxruntime",
                   _ort_dequantize, "ONNX Runtime DequantizeLinear (CPU EP, opset 21)"),
    Implementation("torch.dequantize", "dequantize", "onnx", "torch", _torch_dequantize,
                   "torch.dequantize of a quint8/qint8 tensor, CPU"),
    Implementation("tensorflow.fake_quant_with_min_max_args", "fake_quant", "onnx",
                   "tensorflow", lambda: _tf_fake("args"),
                   "tf.quantization.fake_quant_with_min_max_args, min/max = s*(qmin-z), "
                   "s*(qmax-z)"),
    Implementation("tensorflow.quantize_and_dequantize_v4", "fake_quant", "onnx",
                   "tensorflow", lambda: _tf_fake("qdq"),
                   "tf.quantization.quantize_and_dequantize_v2 (the QuantizeAndDequantizeV4 op), "
                   "range given, half to even"),
    Implementation("litert.QUANTIZE", "quantize", "onnx", "ai_edge_litert",
                   lambda: _litert(True),
                   "LiteRT QUANTIZE in a one-op model, default interpreter (XNNPACK "
                   "delegate)"),
    Implementation("litert.QUANTIZE.builtin", "quantize", "onnx", "ai_edge_litert",
                   lambda: _litert(False),
                   "LiteRT QUANTIZE, builtin kernels without the default delegate"),
    Implementation("openvino.FakeQuantize", "fake_quant", "onnx", "openvino",
                   _openvino_fake, "OpenVINO FakeQuantize (CPU, f32), levels = qmax-qmin+1, "
                                   "in = out = [s*(qmin-z), s*(qmax-z)]"),
)}


def get_implementation(name: str) -> Implementation:
    """``IMPLEMENTATIONS[name]``; ``ValueError`` naming the choices otherwise."""
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {sorted(IMPLEMENTATIONS)}, got "
                         f"{name!r}")
    return IMPLEMENTATIONS[name]
