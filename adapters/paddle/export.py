"""Export a converted Paddle model to ONNX in QDQ form.

Paddle's own route (``paddle.jit.save`` of the converted model, then paddle2onnx) is broken:
paddle2onnx 2.1.0 aborts the whole process on Paddle's ``quantize_linear``. So
:func:`export_onnx` takes another route:

1. **Read the quantization parameters** of the converted model (what ``PTQ.convert`` /
   ``QAT.convert`` left behind for every quantized tensor: Paddle's
   ``LinearQuanterDequanter`` -- Paddle's own layers or the adapter's default form -- or
   the adapter's portable ``QuantDequant``). Each becomes a :class:`~refquant.QParams`:
   Paddle's threshold ``S`` for symmetric parameters (zero point 0), the step and zero point
   for the adapter's asymmetric / unsigned ones, ``[in / G, out]`` thresholds with
   ``extra["group_size"]`` for group-wise weights.
2. **Build a float twin** of the model (a deep copy; the caller's model is not touched):
   every weight quanter is replaced by an identity, so each quantized layer reads its weight
   parameter directly; every activation quant-dequant pair is replaced by a *marker*,
   ``x * m`` with ``m`` a one-element parameter of a unique name.
3. **Export the float twin** with paddle2onnx, in a subprocess (paddle2onnx can abort the
   process; the subprocess turns that into a ``RuntimeError`` carrying its output).
   paddle2onnx keeps parameter names as initializer names, so the markers and the weights
   can be found in the ONNX graph by name.
4. **Insert QDQ**: each marker ``Mul`` becomes ``QuantizeLinear -> DequantizeLinear``
   (per-tensor, or per-axis on the same axis as Paddle); each quantized weight initializer
   becomes an integer initializer (the codes the converted layer itself produced) followed
   by a ``DequantizeLinear`` on the weight's output-channel axis: ``0`` for ``Conv``
   (``[out, in, kh, kw]``), ``1`` for ``MatMul`` (Paddle's ``Linear`` weight is
   ``[in, out]``), ``1`` or ``0`` for ``Gemm`` with ``transB = 0`` or ``1``; group-wise
   weights get a *blocked* ``DequantizeLinear`` (``axis=0``, ``block_size=G``, scales
   ``[in / G, out]``).

The ONNX parameters are :meth:`QParams.to_onnx`: ``y_scale = fl32(S / qmax)`` (one float32
division; the step itself for asymmetric parameters) and ``y_zero_point`` (0, or the zero
point). Element types: ``int8`` / ``uint8`` for 5- to 8-bit grids, ``int4`` / ``uint4``
for 2- to 4-bit ones (unsigned when ``qmin = 0``). An 8-bit model is opset 13 (per-axis QDQ);
a model with a 4-bit or blocked tensor is opset 21 (the first with INT4 / UINT4 and
``block_size``): paddle2onnx writes the float graph at opset 13 and ONNX's version converter
raises it to 21 (every node is then checked to have a schema at 21). The model passes
``onnx.checker.check_model(full_check=True)``.

ONNX Runtime then quantizes as ``x / y_scale`` (RNE) where Paddle computes
``(qmax * (1/S)) * x`` (RNE), and dequantizes ``q * y_scale`` where Paddle computes
``(q * S) / qmax``: the two agree except at near-ties and in the last bit of dequantized
values (``docs/kernels.md``; ``refquant.kernels.onnx`` emulates the ONNX side exactly).

Not exportable (a ``ValueError`` / ``NotImplementedError`` naming the layer): float models
(no converted quant-dequant layer at all), quantized but unconverted models or observers,
bit widths outside 2..8 and FP8, activation grids that are not an element type's whole
range (ONNX ``QuantizeLinear`` saturates there: a 3-bit activation), non-zero zero points
of Paddle's own layers (Paddle's ``quantize_linear`` ignores them, so the Paddle model is
not what its parameters say), non-positive scales, and quantized weights that feed anything
but ``Conv`` / ``MatMul`` / ``Gemm`` (e.g. ``Conv2DTranspose``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from paddle.nn.quant.format import ConvertibleQuantedLayer, LinearQuanterDequanter
from paddle.quantization.base_quanter import BaseQuanter

from refquant.qparams import QParams, integer_range

from .layers import QDQSpec, QuantDequant

__all__ = ["QDQEntry", "export_onnx", "export_onnx_many", "OPSET", "OPSET_LOWBIT"]

#: The ONNX opset written for 8-bit models: 13 is the first with per-axis
#: QuantizeLinear / DequantizeLinear.
OPSET = 13
#: The opset written when a tensor is 4-bit (INT4 / UINT4) or blocked (group-wise weights):
#: 21 is the first with those types and ``block_size``.
OPSET_LOWBIT = 21

_MARKER_PREFIX = "refquant_qdq_marker"


@dataclass(frozen=True)
class QDQEntry:
    """One quantized tensor of an exported model.

    ``kind`` is ``"activation"`` or ``"weight"``; ``layer`` the Paddle sub-layer path of the
    quant-dequant pair (``"features.0.activation_quanter"``); ``tensor`` the ONNX tensor that
    is quantized: the input of ``QuantizeLinear`` for activations; for weights the
    dequantized weight, named after its Paddle path (``"features.0.weight"``), whose int8
    codes are the initializer ``"<tensor>.quantized"``. Scale and zero point are the
    initializers ``"<base>.scale"`` / ``"<base>.zero_point"`` with ``base`` the layer path
    (activations) or ``tensor`` (weights). ``qparams`` are the parameters in Paddle's
    threshold convention; ``nodes`` names the inserted ONNX nodes.
    """

    kind: str
    layer: str
    tensor: str
    qparams: QParams
    nodes: tuple[str, ...] = ()


@dataclass
class _Weight:
    layer: str  # path of the weight quanter
    name: str  # path of the weight ("features.0.weight"), its name in the ONNX graph
    param: str  # Paddle parameter name == ONNX initializer name
    onnx: _OnnxQ
    ints: np.ndarray  # integer codes the converted layer's own quantize half produced


@dataclass
class _Plan:
    activations: dict[str, tuple[str, _OnnxQ]]  # marker name -> (layer path, parameters)
    weights: dict[str, _Weight]  # param name -> weight

    @property
    def opset(self) -> int:
        return max([OPSET] + [q.opset for _, q in self.activations.values()]
                   + [w.onnx.opset for w in self.weights.values()])


# ---------------------------------------------------------------------------------------
# 1. quantization parameters of a converted model
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _OnnxQ:
    """The ONNX form of one converted quant-dequant: ``y_scale`` / ``y_zero_point`` arrays,
    the element type (``"int8"``, ``"uint8"``, ``"int4"``, ``"uint4"``), the ``axis``
    attribute (None: per tensor) and ``block_size`` (0: not blocked), and the opset needed."""

    qparams: QParams
    y_scale: np.ndarray
    y_zero_point: np.ndarray
    elem: str
    axis: int | None
    block_size: int

    @property
    def opset(self) -> int:
        return OPSET_LOWBIT if self.block_size or self.elem in ("int4", "uint4") else OPSET


def _qdq_types() -> tuple[type, ...]:
    """Converted QDQ layer types: Paddle's (the adapter's standard form is one) and the
    adapter's portable ``QuantDequant``."""
    return (LinearQuanterDequanter, QuantDequant)


def _spec_of_paddle(part: Any, where: str) -> QDQSpec:
    """The :class:`QDQSpec` that Paddle's own ``LinearQuanter`` / ``LinearDequanter``
    computes (``python/paddle/nn/quant/format.py``): group-wise for 2-D scales, the
    ``quantize_linear`` kernels otherwise (which ignore the zero point)."""
    scale = np.asarray(part._scales.numpy(), np.float32)
    zp = np.asarray(part._zero_point.numpy(), np.float32)
    bits = part._bit_length
    if isinstance(bits, tuple) or int(part._qmax) in (448, 57344):
        raise NotImplementedError(f"{where}: FP8 quantization (bit_length={bits!r}) is not "
                                  "exportable to integer ONNX QDQ")
    qmax = int(part._qmax)
    if np.any(zp != 0):
        raise ValueError(
            f"{where}: zero_point {zp.tolist()} is not 0; Paddle's quantize_linear ignores "
            "the zero point, so this model does not compute what its parameters say and "
            "cannot be exported faithfully")
    if scale.ndim == 2:
        return QDQSpec("group", scale, zp, -1, int(bits), -qmax - 1, qmax,
                       int(part._group_size), where)
    return QDQSpec("linear", scale, zp, int(part._quant_axis), int(bits), -qmax - 1, qmax, 0,
                   where)


def _view(qdq: Any, where: str) -> tuple[QDQSpec, Any, bool]:
    """``(spec, quantize, dequantizes)`` of a converted quant-dequant layer: ``quantize`` runs
    the layer's own quantize half (None when the weight is stored as codes)."""
    if isinstance(qdq, LinearQuanterDequanter):
        part = qdq._dequanter if qdq._dequanter is not None else qdq._quanter
        if part is None:
            raise ValueError(f"{where}: quant-dequant pair has neither quanter nor dequanter")
        if not hasattr(part, "spec"):
            return _spec_of_paddle(part, where), qdq._quanter, qdq._dequanter is not None
        spec = _live(part.spec, part._scales, part._zero_point)
        return spec, qdq._quanter, qdq._dequanter is not None
    # refquant.adapters.paddle.layers.QuantDequant
    spec = _live(qdq.spec, qdq.scale, qdq.zero_point)
    return spec, (qdq.quantize if qdq.quantizes else None), bool(qdq.dequantizes)


def _live(spec: QDQSpec, scale: Any, zero_point: Any) -> QDQSpec:
    """``spec`` with the values the layer's parameters hold now (a ``set_state_dict`` after
    convert changes them)."""
    return dataclasses.replace(
        spec, scale=np.asarray(scale.numpy(), np.float32).reshape(spec.scale.shape),
        zero_point=np.asarray(zero_point.numpy(), np.float32).reshape(spec.zero_point.shape))


def _onnx_q(qdq: Any, where: str, activation: bool) -> _OnnxQ:
    """The ONNX parameters of one converted quant-dequant layer; a clear error for what
    ONNX QDQ cannot express exactly."""
    spec, _, dequantizes = _view(qdq, where)
    if not dequantizes:
        raise NotImplementedError(f"{where}: a quantize without dequantize is not exportable")
    if not 2 <= spec.bits <= 8:
        raise NotImplementedError(f"{where}: only 2- to 8-bit integer quantization is "
                                  f"exportable to ONNX QDQ, got bit_length={spec.bits}")
    scale = spec.scale
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(
            f"{where}: scale must be positive and finite to export, got {scale.tolist()}")
    signed = spec.qmin < 0
    width = 4 if spec.bits <= 4 else 8
    elem = ("int" if signed else "uint") + str(width)
    lo, hi = integer_range(width, signed=signed)
    if activation and (spec.qmin, spec.qmax) != (lo, hi):
        raise NotImplementedError(
            f"{where}: an activation grid [{spec.qmin}, {spec.qmax}] is not the range of "
            f"{elem} [{lo}, {hi}], where ONNX QuantizeLinear saturates; only 4- and 8-bit "
            "activation grids are exportable")
    if spec.kind == "group" and activation:
        raise NotImplementedError(f"{where}: group-wise activation scales are not exportable")
    zp = np.rint(spec.zero_point).astype(np.int64)
    if spec.kind == "affine":
        axis = None if spec.axis < 0 else spec.axis
        qp = QParams(scale, zp, spec.qmin, spec.qmax, spec.bits, axis, convention="step")
    elif spec.kind == "group":
        qp = QParams(scale, zp, spec.qmin, spec.qmax, spec.bits, 1,
                     extra={"group_size": spec.group_size})
    else:
        if spec.axis < 0 and scale.size != 1:
            raise ValueError(f"{where}: {scale.size} scales but no channel axis")
        axis = None if spec.axis < 0 else spec.axis
        qp = QParams(scale.reshape(()) if axis is None else scale.reshape(-1),
                     zp.reshape(()) if axis is None else zp.reshape(-1),
                     spec.qmin, spec.qmax, spec.bits, axis)
    y_scale, y_zp = qp.to_onnx(np.int8 if signed else np.uint8)
    if spec.kind == "group":  # blocked along the rows (Paddle's [in, out] weight)
        return _OnnxQ(qp, y_scale, y_zp, elem, 0, spec.group_size)
    return _OnnxQ(qp, y_scale, y_zp, elem, qp.axis, 0)


def _weight_ints(weight: Any, qdq: Any, oq: _OnnxQ, where: str) -> np.ndarray:
    """The integer codes of a quantized weight, as the converted layer's own quantize half
    produced them (int64)."""
    quantize = _view(qdq, where)[1]
    if quantize is not None:  # remain_weight=True: the weight is still float
        with paddle.no_grad():
            values = quantize(weight.astype("float32")).numpy()
    else:  # convert() stored the integer codes in the float parameter
        values = weight.numpy()
    values = np.asarray(values, dtype=np.float32)
    qp = oq.qparams
    if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
        raise ValueError(f"{where}: the converted weight does not hold integer codes")
    if values.size and (values.min() < qp.qmin or values.max() > qp.qmax):
        raise ValueError(
            f"{where}: weight codes span [{values.min()}, {values.max()}], outside "
            f"[{qp.qmin}, {qp.qmax}]"
        )
    if oq.block_size:
        rows = qp.scale.shape[0] * oq.block_size
        if values.ndim != 2 or values.shape != (rows, qp.scale.shape[1]):
            raise ValueError(f"{where}: group-wise scales {list(qp.scale.shape)} with "
                             f"group_size={oq.block_size} do not fit the weight shape "
                             f"{list(values.shape)}")
    elif qp.axis is not None and (qp.axis >= values.ndim
                                  or values.shape[qp.axis] != qp.scale.size):
        raise ValueError(
            f"{where}: {qp.scale.size} scales along axis {qp.axis} do not match the weight "
            f"shape {list(values.shape)}"
        )
    return values.astype(np.int64)


def _marker_layer(name: str) -> paddle.nn.Layer:
    """``x * m`` with a one-element parameter named ``name``: found by name in the ONNX graph."""

    class _QDQMarker(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.marker = self.create_parameter(
                [1], dtype="float32",
                attr=paddle.ParamAttr(name=name, trainable=False,
                                      initializer=paddle.nn.initializer.Constant(1.0)),
            )

        def forward(self, x: paddle.Tensor) -> paddle.Tensor:
            return x * self.marker

    return _QDQMarker()


def _float_twin(model: paddle.nn.Layer) -> tuple[paddle.nn.Layer, _Plan]:
    """Deep copy of ``model`` with QDQ replaced by identities / markers, and the plan."""
    if not isinstance(model, paddle.nn.Layer):
        raise TypeError(f"model must be a paddle.nn.Layer, got {type(model).__name__}")
    twin = copy.deepcopy(model)
    twin.eval()
    plan = _Plan({}, {})
    qdq_types = _qdq_types()
    layers = [("", twin), *twin.named_sublayers()]
    for path, layer in layers:
        where = f"layer {path or '<model>'!r} ({type(layer).__name__})"
        if isinstance(layer, ConvertibleQuantedLayer):
            if not layer.converted:
                raise ValueError(
                    f"model is not converted: {where} still holds its observers/quanters; call "
                    "PTQ.convert / QAT.convert before export_onnx"
                )
            for weight_name, quanter_name in layer.weights_to_quanters():
                qdq = getattr(layer, quanter_name, None)
                if qdq is None:
                    continue
                if not isinstance(qdq, qdq_types):
                    raise NotImplementedError(
                        f"{where}: weight quanter {quanter_name!r} is a {type(qdq).__name__}, "
                        "not a converted quant-dequant layer"
                    )
                wwhere = f"{where}, weight {weight_name!r}"
                oq = _onnx_q(qdq, wwhere, activation=False)
                weight = getattr(layer, weight_name)
                ints = _weight_ints(weight, qdq, oq, wwhere)
                name = weight.name
                if name in plan.weights:
                    raise NotImplementedError(f"{wwhere}: weight {name!r} is quantized twice")
                plan.weights[name] = _Weight(f"{path}.{quanter_name}".lstrip("."),
                                             f"{path}.{weight_name}".lstrip("."), name, oq, ints)
                setattr(layer, quanter_name, paddle.nn.Identity())
    # activation quant-dequant pairs (in quanted layers, ObserveWrapper, or stand-alone)
    for path, layer in layers:
        for child_name, child in list(layer._sub_layers.items()):
            child_path = f"{path}.{child_name}".lstrip(".")
            if isinstance(child, qdq_types):
                oq = _onnx_q(child, f"layer {child_path!r}", activation=True)
                marker_name = paddle.utils.unique_name.generate(_MARKER_PREFIX)
                plan.activations[marker_name] = (child_path, oq)
                setattr(layer, child_name, _marker_layer(marker_name))
            elif isinstance(child, BaseQuanter):
                raise ValueError(
                    f"model is not converted: layer {child_path!r} is an unconverted "
                    f"{type(child).__name__}; call PTQ.convert / QAT.convert before export_onnx "
                    "(note that PTQ.convert skips quantized layers without a weight quanter, "
                    "leaving their observers)"
                )
    if isinstance(twin, BaseQuanter):
        raise ValueError(f"model is an unconverted {type(twin).__name__}: call PTQ.convert / "
                         "QAT.convert before export_onnx")
    if not plan.weights and not plan.activations:
        raise ValueError(
            f"model ({type(model).__name__}) has no quantized tensor: it holds no converted "
            "quant-dequant layer, so its ONNX export would be a float model. export_onnx takes "
            "the output of PTQ.convert / QAT.convert"
        )
    return twin, plan


# ---------------------------------------------------------------------------------------
# 2. paddle2onnx, in a subprocess
# ---------------------------------------------------------------------------------------
_P2O_SCRIPT = r"""
import json, sys
import paddle2onnx
jobs = json.loads(sys.argv[1])
for model_file, params_file, out_file, opset in jobs:
    paddle2onnx.export(model_file, params_file, out_file, opset_version=opset,
                       auto_upgrade_opset=False, enable_onnx_checker=True,
                       enable_optimize=True, optimize_tool="none")
"""


def _run_paddle2onnx(jobs: list[tuple[str, str, str, int]], timeout: float = 600.0) -> None:
    """Run paddle2onnx on saved models in one child process; raise if any output is missing.

    ``optimize_tool="none"``: paddle2onnx's default (polygraphy) sets
    ``POLYGRAPHY_AUTOINSTALL_DEPS=1`` and pip-installs packages at export time.
    """
    env = dict(os.environ)
    env["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _P2O_SCRIPT, json.dumps(jobs)],
            capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"paddle2onnx did not finish within {timeout} s") from exc
    missing = [job[2] for job in jobs if not os.path.isfile(job[2])]
    if proc.returncode != 0 or missing:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(
            f"paddle2onnx failed (exit status {proc.returncode}; missing {missing}) while "
            f"exporting the float graph. Its output ends with:\n{tail}"
        )


# ---------------------------------------------------------------------------------------
# 3. QDQ insertion
# ---------------------------------------------------------------------------------------
def _weight_axis(node: Any, index: int, rank: int, where: str) -> int:
    """The output-channel axis of a weight consumed as input ``index`` of ``node``."""
    op = node.op_type
    if op == "Conv" and index == 1:
        return 0
    if op == "MatMul" and index == 1 and rank == 2:
        return 1
    if op == "Gemm" and index == 1:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    raise NotImplementedError(
        f"{where}: the quantized weight feeds ONNX {op} (input {index}); only Conv, MatMul "
        "and Gemm weights are exportable with per-channel DequantizeLinear"
    )


def _through_identities(nodes: list[Any], uses: list[tuple[Any, int]]
                        ) -> list[tuple[Any, int]]:
    """The ``(node, input index)`` uses of a tensor, looking through ``Identity`` nodes."""
    out: list[tuple[Any, int]] = []
    todo = list(uses)
    while todo:
        node, k = todo.pop()
        if node.op_type == "Identity":
            todo += [(n, j) for n in nodes for j, i in enumerate(n.input) if i == node.output[0]]
        else:
            out.append((node, k))
    return out


def _default_opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
               default=0)


def _constants_to_initializers(graph: Any) -> None:
    """Move ``Constant`` nodes holding a tensor into initializers (same names).

    paddle2onnx without its polygraphy pass writes every parameter as a ``Constant`` node
    named after the parameter; as initializers they can be replaced by name.
    """
    from onnx import TensorProto

    kept = []
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and len(node.attribute) == 1 and value is not None:
            tensor = TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def _insert_qdq(model: Any, plan: _Plan) -> tuple[Any, list[QDQEntry]]:
    """Rewrite ``model`` (an ``onnx.ModelProto``; upgraded to ``plan.opset`` first when that
    is higher); returns the rewritten model and what was inserted."""
    from onnx import helper, numpy_helper

    if _default_opset(model) < OPSET:
        raise RuntimeError(f"paddle2onnx wrote opset {_default_opset(model)}, need >= {OPSET}")
    if plan.opset > _default_opset(model):
        model = _upgrade_opset(model, plan.opset)
    graph = model.graph
    _constants_to_initializers(graph)
    inits = {t.name: t for t in graph.initializer}
    entries: list[QDQEntry] = []
    new_inits: list[Any] = []

    def add_params(base: str, oq: _OnnxQ) -> tuple[str, str]:
        s_name, z_name = f"{base}.scale", f"{base}.zero_point"
        new_inits.append(numpy_helper.from_array(np.asarray(oq.y_scale, np.float32), s_name))
        new_inits.append(_int_tensor(oq.y_zero_point, oq.elem, z_name))
        return s_name, z_name

    def axis_attrs(oq: _OnnxQ) -> dict[str, Any]:
        attrs = {} if oq.axis is None else {"axis": int(oq.axis)}
        if oq.block_size:
            attrs["block_size"] = int(oq.block_size)
        return attrs

    # activations: marker Mul -> QuantizeLinear, DequantizeLinear
    nodes: list[Any] = []
    uses: dict[str, int] = {}
    for node in graph.node:
        marker = next((i for i in node.input if i in plan.activations), None)
        if marker is None:
            nodes.append(node)
            continue
        layer, oq = plan.activations[marker]
        if node.op_type != "Mul" or len(node.input) != 2:
            raise RuntimeError(
                f"layer {layer!r}: paddle2onnx turned the activation marker into "
                f"{node.op_type}; cannot place QuantizeLinear"
            )
        x = node.input[0] if node.input[1] == marker else node.input[1]
        count = uses.get(marker, 0)
        uses[marker] = count + 1
        base = layer if count == 0 else f"{layer}#{count}"
        s_name, z_name = add_params(base, oq)
        q = helper.make_node("QuantizeLinear", [x, s_name, z_name], [f"{base}.quantized"],
                             name=f"{base}/QuantizeLinear", **axis_attrs(oq))
        dq = helper.make_node("DequantizeLinear", [f"{base}.quantized", s_name, z_name],
                              [node.output[0]], name=f"{base}/DequantizeLinear",
                              **axis_attrs(oq))
        nodes += [q, dq]
        entries.append(QDQEntry("activation", layer, x, oq.qparams, (q.name, dq.name)))
    used_markers = {i for n in graph.node for i in n.input if i in plan.activations}

    # weights: float initializer -> int8 initializer + DequantizeLinear
    weight_nodes: list[Any] = []
    drop = set(used_markers)
    taken: set[str] = set()
    for name, w in plan.weights.items():
        if name not in inits:
            raise RuntimeError(
                f"layer {w.layer!r}: weight {name!r} is not an initializer of the exported "
                "graph (paddle2onnx renamed or folded it)"
            )
        consumers = [(n, k) for n in nodes for k, i in enumerate(n.input) if i == name]
        for n, k in _through_identities(nodes, consumers):
            axis = _weight_axis(n, k, w.ints.ndim, f"layer {w.layer!r}")
            if w.onnx.qparams.axis is not None and w.onnx.qparams.axis != axis:
                raise NotImplementedError(
                    f"layer {w.layer!r}: weight scales are along axis {w.onnx.qparams.axis} "
                    f"but the output channels of ONNX {n.op_type} are along axis {axis}"
                )
        # readable names from the layer path ("features.0.weight"), unless already taken
        out = w.name if w.name not in inits and w.name not in taken else name
        taken.add(out)
        s_name, z_name = add_params(out, w.onnx)
        new_inits.append(_int_tensor(w.ints, w.onnx.elem, f"{out}.quantized"))
        dq = helper.make_node("DequantizeLinear", [f"{out}.quantized", s_name, z_name],
                              [out], name=f"{out}/DequantizeLinear", **axis_attrs(w.onnx))
        for n, k in consumers:
            n.input[k] = out
        weight_nodes.append(dq)
        drop.add(name)
        entries.append(QDQEntry("weight", w.layer, out, w.onnx.qparams, (dq.name,)))

    used = {i for n in [*weight_nodes, *nodes] for i in n.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name not in drop and t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    graph_inputs = [i for i in graph.input if i.name not in drop]
    del graph.input[:]
    graph.input.extend(graph_inputs)
    del graph.node[:]
    graph.node.extend(weight_nodes + nodes)
    return model, entries


def _int_tensor(values: np.ndarray, elem: str, name: str) -> Any:
    """An integer initializer of ONNX element type ``elem`` (int4 / uint4 packed by
    ``onnx.helper.make_tensor``)."""
    from onnx import TensorProto, helper, numpy_helper

    v = np.asarray(values)
    if elem in ("int8", "uint8"):
        return numpy_helper.from_array(v.astype(np.dtype(elem)), name)
    kind = TensorProto.INT4 if elem == "int4" else TensorProto.UINT4
    return helper.make_tensor(name, kind, list(v.shape), v.astype(np.int64).ravel().tolist())


def _upgrade_opset(model: Any, opset: int) -> Any:
    """``model`` with its default-domain opset raised to ``opset`` by ONNX's version
    converter (each op's adapter from its version to the one at ``opset``); every node is
    then checked to have a schema at ``opset`` (``onnx.defs.get_schema``), and the final
    ``onnx.checker.check_model(full_check=True)`` validates the whole graph."""
    import onnx
    from onnx import version_converter

    try:
        up = version_converter.convert_version(model, opset)
    except Exception as exc:  # the converter has no adapter for some op of the graph
        raise RuntimeError(f"cannot upgrade the exported graph from opset "
                           f"{_default_opset(model)} to {opset}: {exc}") from exc
    for node in up.graph.node:
        if node.domain in ("", "ai.onnx"):
            try:
                onnx.defs.get_schema(node.op_type, opset, node.domain)
            except onnx.defs.SchemaError as exc:
                raise RuntimeError(f"ONNX op {node.op_type} (node {node.name!r}) has no "
                                   f"schema at opset {opset}") from exc
    return up


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def _check_input_spec(input_spec: Any) -> list[Any]:
    if isinstance(input_spec, (str, bytes)) or not isinstance(input_spec, Sequence) \
            or len(input_spec) == 0:
        raise TypeError(
            "input_spec must be a non-empty list of paddle.static.InputSpec (or example "
            f"tensors), got {input_spec!r}"
        )
    return list(input_spec)


def _check_path(path: Any, name: str = "path") -> Path:
    """``path`` as a ``Path`` to a file that can be written (it is not a directory, and no
    existing parent is a file)."""
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str or os.PathLike of str, got {path!r}")
    if not text:
        raise ValueError(f"{name} must name an ONNX file, got ''")
    p = Path(text)
    if p.is_dir():
        raise ValueError(f"{name} {text!r} is a directory; it must name an ONNX file")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{name} {text!r} is under {str(parent)!r}, which is a "
                                 "file, not a directory")
            break
    return p


def _check_jobs(jobs: Any) -> list[tuple[paddle.nn.Layer, Path]]:
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Sequence):
        raise TypeError(f"jobs must be a list of (model, path) pairs, got {type(jobs).__name__}")
    out = []
    for k, job in enumerate(jobs):
        if not isinstance(job, Sequence) or isinstance(job, (str, bytes)) or len(job) != 2:
            raise TypeError(f"jobs[{k}] must be a (model, path) pair, got {job!r}")
        model, path = job
        if not isinstance(model, paddle.nn.Layer):
            raise TypeError(f"model must be a paddle.nn.Layer, got {type(model).__name__}")
        out.append((model, _check_path(path)))
    paths = [p.resolve() for _, p in out]
    if len(set(paths)) != len(paths):
        raise ValueError(f"jobs write the same path twice: {[str(p) for _, p in out]}")
    return out


def export_onnx_many(
    jobs: Sequence[tuple[paddle.nn.Layer, str | os.PathLike[str]]],
    input_spec: Sequence[Any],
) -> list[list[QDQEntry]]:
    """:func:`export_onnx` for several models with one paddle2onnx child process."""
    import onnx

    checked = _check_jobs(jobs)
    spec = _check_input_spec(input_spec)
    if not checked:
        return []
    twins = [(*_float_twin(model), path) for model, path in checked]  # every check first
    prepared = []
    with tempfile.TemporaryDirectory(prefix="refquant_export_") as tmp:
        p2o_jobs = []
        for k, (twin, plan, path) in enumerate(twins):
            prefix = os.path.join(tmp, f"model{k}")
            paddle.jit.save(twin, prefix, input_spec=spec)
            model_file = prefix + (".json" if os.path.isfile(prefix + ".json") else ".pdmodel")
            p2o_jobs.append((model_file, prefix + ".pdiparams", prefix + ".onnx", OPSET))
            prepared.append((plan, Path(path), prefix + ".onnx"))
        _run_paddle2onnx(p2o_jobs)
        results = []
        for plan, path, float_file in prepared:
            proto = onnx.load(float_file)
            proto, entries = _insert_qdq(proto, plan)
            proto.producer_name = "refquant"
            onnx.checker.check_model(proto, full_check=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            onnx.save(proto, str(path))
            results.append(entries)
    return results


def export_onnx(
    model: paddle.nn.Layer, path: str | os.PathLike[str], input_spec: Sequence[Any]
) -> list[QDQEntry]:
    """Export a converted model to ONNX (opset 13; 21 with 4-bit or group-wise tensors) in
    QDQ form; returns the inserted QDQ.

    ``model`` is the output of ``PTQ.convert`` / ``QAT.convert`` (Paddle's or refquant's;
    ``remain_weight`` either way). ``input_spec`` is what ``paddle.jit.save`` takes: a list
    of ``paddle.static.InputSpec`` (use ``None`` for a dynamic batch dimension).

    Activations get ``QuantizeLinear -> DequantizeLinear``; weights are stored as integers
    (the codes the converted layer produced) with a per-tensor, per-channel (output-channel
    axis) or blocked (group-wise) ``DequantizeLinear``. Parameters: ``QParams.to_onnx()``,
    e.g. ``y_scale = fl32(S / 127)``, ``y_zero_point = int8(0)`` for symmetric 8-bit. See
    the module docstring for what cannot be exported (a clear error, never a silently
    different model).
    """
    return export_onnx_many([(model, path)], input_spec)[0]
