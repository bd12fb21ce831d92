"""Export a converted Paddle model to ONNX in QDQ form.

Paddle's own route (``paddle.jit.save`` of the converted model, then paddle2onnx) is broken:
paddle2onnx 2.1.0 aborts the whole process on Paddle's ``quantize_linear``. So
:func:`export_onnx` takes another route:

1. **Read the quantization parameters** of the converted model (what ``PTQ.convert`` /
   ``QAT.convert`` left behind for every quantized tensor: Paddle's
   ``LinearQuanterDequanter`` or this adapter's ``QuantDequant``, both holding Paddle's
   threshold ``S``). Each becomes a :class:`~refquant.QParams` (threshold convention, zero
   point 0, ``[-2^(b-1), 2^(b-1) - 1]``).
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
   becomes an ``int8`` initializer (the integers Paddle itself produced) followed by a
   per-channel ``DequantizeLinear`` on the weight's output-channel axis: ``0`` for ``Conv``
   (``[out, in, kh, kw]``), ``1`` for ``MatMul`` (Paddle's ``Linear`` weight is
   ``[in, out]``), ``1`` or ``0`` for ``Gemm`` with ``transB = 0`` or ``1``.

The ONNX parameters are :meth:`QParams.to_onnx`: ``y_scale = fl32(S / qmax)`` (one float32
division) and ``y_zero_point = 0`` (int8). The model is opset 13 (per-axis QDQ) and passes
``onnx.checker.check_model(full_check=True)``.

ONNX Runtime then quantizes as ``x / y_scale`` (RNE) where Paddle computes
``(qmax * (1/S)) * x`` (RNE), and dequantizes ``q * y_scale`` where Paddle computes
``(q * S) / qmax``: the two agree except at near-ties and in the last bit of dequantized
values (``docs/kernels.md``; ``refquant.kernels.onnx`` emulates the ONNX side exactly).

Not exportable (a ``ValueError`` / ``NotImplementedError`` naming the layer): float models
(no converted quant-dequant layer at all), quantized but unconverted models or observers,
bit widths other than 8, FP8 and group-wise scales, non-zero zero points (Paddle's
``quantize_linear`` ignores them, so the Paddle model is not what its parameters say),
non-positive scales, and quantized weights that feed anything but
``Conv`` / ``MatMul`` / ``Gemm`` (e.g. ``Conv2DTranspose``).
"""

from __future__ import annotations

import copy
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

__all__ = ["QDQEntry", "export_onnx", "export_onnx_many", "OPSET"]

#: The ONNX opset written: 13 is the first with per-axis QuantizeLinear / DequantizeLinear.
OPSET = 13

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
    qparams: QParams
    ints: np.ndarray  # int8 values Paddle's own quantize kernel produced


@dataclass
class _Plan:
    activations: dict[str, tuple[str, QParams]]  # marker name -> (layer path, qparams)
    weights: dict[str, _Weight]  # param name -> weight


# ---------------------------------------------------------------------------------------
# 1. quantization parameters of a converted model
# ---------------------------------------------------------------------------------------
@dataclass
class _QDQView:
    """What a converted quant-dequant layer holds, whichever implementation it is."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    bits: Any
    qmax: int
    quantize: Any  # callable running the layer's own quantize kernel, or None
    dequantize: bool


def _qdq_types() -> tuple[type, ...]:
    """Converted QDQ layer types: Paddle's and refquant's adapter's (if importable)."""
    types: list[type] = [LinearQuanterDequanter]
    try:
        from .layers import QuantDequant
    except ImportError:  # pragma: no cover - the adapter's layers are part of the package
        pass
    else:
        types.append(QuantDequant)
    return tuple(types)


def _view(qdq: Any, where: str) -> _QDQView:
    if isinstance(qdq, LinearQuanterDequanter):
        part = qdq._dequanter if qdq._dequanter is not None else qdq._quanter
        if part is None:
            raise ValueError(f"{where}: quant-dequant pair has neither quanter nor dequanter")
        return _QDQView(
            np.asarray(part._scales.numpy(), np.float32),
            np.asarray(part._zero_point.numpy(), np.float64),
            int(part._quant_axis), part._bit_length, int(part._qmax),
            qdq._quanter, qdq._dequanter is not None,
        )
    # refquant.adapters.paddle.layers.QuantDequant
    return _QDQView(
        np.asarray(qdq.scale.numpy(), np.float32),
        np.asarray(qdq.zero_point.numpy(), np.float64),
        int(qdq.axis), qdq.bits, int(qdq.qmax),
        qdq.quantize if qdq.quantizes else None, bool(qdq.dequantizes),
    )


def _qparams_of(qdq: Any, where: str) -> QParams:
    """QParams of one converted quant-dequant layer (Paddle's threshold ``S``)."""
    v = _view(qdq, where)
    if isinstance(v.bits, tuple) or v.qmax in (448, 57344) or v.bits != 8:
        raise NotImplementedError(
            f"{where}: only 8-bit integer quantization is exportable to ONNX QDQ, got "
            f"bit_length={v.bits!r} (qmax={v.qmax})"
        )
    if not v.dequantize:
        raise NotImplementedError(f"{where}: a quantize without dequantize is not exportable")
    scale = v.scale
    if scale.ndim > 1:
        raise NotImplementedError(
            f"{where}: group-wise scales (shape {list(scale.shape)}) are not exportable to "
            "opset-13 QDQ"
        )
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(
            f"{where}: scale must be positive and finite to export, got {scale.tolist()}"
        )
    if np.any(v.zero_point != 0):
        raise ValueError(
            f"{where}: zero_point {v.zero_point.tolist()} is not 0; Paddle's quantize_linear "
            "ignores the zero point, so this model does not compute what its parameters say "
            "and cannot be exported faithfully"
        )
    per_tensor = v.axis < 0
    if per_tensor and scale.size != 1:
        raise ValueError(f"{where}: {scale.size} scales but no channel axis")
    qmin, qmax = integer_range(8)
    if per_tensor:
        return QParams(scale.reshape(()), np.zeros((), np.int64), qmin, qmax, 8, None)
    return QParams(scale.reshape(-1), np.zeros(scale.size, np.int64), qmin, qmax, 8, v.axis)


def _weight_ints(weight: Any, qdq: Any, qp: QParams, where: str) -> np.ndarray:
    """The int8 codes of a quantized weight, as Paddle's own kernel produced them."""
    quantize = _view(qdq, where).quantize
    if quantize is not None:  # remain_weight=True: the weight is still float
        with paddle.no_grad():
            values = quantize(weight.astype("float32")).numpy()
    else:  # convert() stored the integer codes in the float parameter
        values = weight.numpy()
    values = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
        raise ValueError(f"{where}: the converted weight does not hold integer codes")
    if values.size and (values.min() < qp.qmin or values.max() > qp.qmax):
        raise ValueError(
            f"{where}: weight codes span [{values.min()}, {values.max()}], outside "
            f"[{qp.qmin}, {qp.qmax}]"
        )
    if qp.axis is not None and (qp.axis >= values.ndim
                                or values.shape[qp.axis] != qp.scale.size):
        raise ValueError(
            f"{where}: {qp.scale.size} scales along axis {qp.axis} do not match the weight "
            f"shape {list(values.shape)}"
        )
    return values.astype(np.int8)


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
                qp = _qparams_of(qdq, wwhere)
                weight = getattr(layer, weight_name)
                ints = _weight_ints(weight, qdq, qp, wwhere)
                name = weight.name
                if name in plan.weights:
                    raise NotImplementedError(f"{wwhere}: weight {name!r} is quantized twice")
                plan.weights[name] = _Weight(f"{path}.{quanter_name}".lstrip("."),
                                             f"{path}.{weight_name}".lstrip("."), name, qp, ints)
                setattr(layer, quanter_name, paddle.nn.Identity())
    # activation quant-dequant pairs (in quanted layers, ObserveWrapper, or stand-alone)
    for path, layer in layers:
        for child_name, child in list(layer._sub_layers.items()):
            child_path = f"{path}.{child_name}".lstrip(".")
            if isinstance(child, qdq_types):
                qp = _qparams_of(child, f"layer {child_path!r}")
                marker_name = paddle.utils.unique_name.generate(_MARKER_PREFIX)
                plan.activations[marker_name] = (child_path, qp)
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


def _insert_qdq(model: Any, plan: _Plan) -> list[QDQEntry]:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place; returns what was inserted."""
    from onnx import helper, numpy_helper

    graph = model.graph
    if _default_opset(model) < OPSET:
        raise RuntimeError(f"paddle2onnx wrote opset {_default_opset(model)}, need >= {OPSET}")
    _constants_to_initializers(graph)
    inits = {t.name: t for t in graph.initializer}
    entries: list[QDQEntry] = []
    new_inits: list[Any] = []

    def add_params(base: str, qp: QParams) -> tuple[str, str]:
        y_scale, y_zp = qp.to_onnx(np.int8)
        s_name, z_name = f"{base}.scale", f"{base}.zero_point"
        new_inits.append(numpy_helper.from_array(np.asarray(y_scale, np.float32), s_name))
        new_inits.append(numpy_helper.from_array(np.asarray(y_zp, np.int8), z_name))
        return s_name, z_name

    def axis_attrs(qp: QParams) -> dict[str, Any]:
        return {} if qp.axis is None else {"axis": int(qp.axis)}

    # activations: marker Mul -> QuantizeLinear, DequantizeLinear
    nodes: list[Any] = []
    uses: dict[str, int] = {}
    for node in graph.node:
        marker = next((i for i in node.input if i in plan.activations), None)
        if marker is None:
            nodes.append(node)
            continue
        layer, qp = plan.activations[marker]
        if node.op_type != "Mul" or len(node.input) != 2:
            raise RuntimeError(
                f"layer {layer!r}: paddle2onnx turned the activation marker into "
                f"{node.op_type}; cannot place QuantizeLinear"
            )
        x = node.input[0] if node.input[1] == marker else node.input[1]
        count = uses.get(marker, 0)
        uses[marker] = count + 1
        base = layer if count == 0 else f"{layer}#{count}"
        s_name, z_name = add_params(base, qp)
        q = helper.make_node("QuantizeLinear", [x, s_name, z_name], [f"{base}.quantized"],
                             name=f"{base}/QuantizeLinear", **axis_attrs(qp))
        dq = helper.make_node("DequantizeLinear", [f"{base}.quantized", s_name, z_name],
                              [node.output[0]], name=f"{base}/DequantizeLinear",
                              **axis_attrs(qp))
        nodes += [q, dq]
        entries.append(QDQEntry("activation", layer, x, qp, (q.name, dq.name)))
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
            if w.qparams.axis is not None and w.qparams.axis != axis:
                raise NotImplementedError(
                    f"layer {w.layer!r}: weight scales are along axis {w.qparams.axis} but the "
                    f"output channels of ONNX {n.op_type} are along axis {axis}"
                )
        # readable names from the layer path ("features.0.weight"), unless already taken
        out = w.name if w.name not in inits and w.name not in taken else name
        taken.add(out)
        s_name, z_name = add_params(out, w.qparams)
        new_inits.append(numpy_helper.from_array(w.ints, f"{out}.quantized"))
        dq = helper.make_node("DequantizeLinear", [f"{out}.quantized", s_name, z_name],
                              [out], name=f"{out}/DequantizeLinear", **axis_attrs(w.qparams))
        for n, k in consumers:
            n.input[k] = out
        weight_nodes.append(dq)
        drop.add(name)
        entries.append(QDQEntry("weight", w.layer, out, w.qparams, (dq.name,)))

    used = {i for n in [*weight_nodes, *nodes] for i in n.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name not in drop and t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    graph_inputs = [i for i in graph.input if i.name not in drop]
    del graph.input[:]
    graph.input.extend(graph_inputs)
    del graph.node[:]
    graph.node.extend(weight_nodes + nodes)
    return entries


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
            entries = _insert_qdq(proto, plan)
            proto.producer_name = "refquant"
            onnx.checker.check_model(proto, full_check=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            onnx.save(proto, str(path))
            results.append(entries)
    return results


def export_onnx(
    model: paddle.nn.Layer, path: str | os.PathLike[str], input_spec: Sequence[Any]
) -> list[QDQEntry]:
    """Export a converted model to ONNX (opset 13) in QDQ form; returns the inserted QDQ.

    ``model`` is the output of ``PTQ.convert`` / ``QAT.convert`` (Paddle's or refquant's;
    ``remain_weight`` either way). ``input_spec`` is what ``paddle.jit.save`` takes: a list
    of ``paddle.static.InputSpec`` (use ``None`` for a dynamic batch dimension).

    Activations get per-tensor ``QuantizeLinear -> DequantizeLinear``; weights are stored
    as int8 (the codes Paddle's kernel produced) with per-channel ``DequantizeLinear`` on
    the output-channel axis. Parameters: ``QParams.to_onnx()``, i.e.
    ``y_scale = fl32(S / 127)``, ``y_zero_point = int8(0)``. See the module docstring for
    what cannot be exported (a clear error, never a silently different model).
    """
    return export_onnx_many([(model, path)], input_spec)[0]
