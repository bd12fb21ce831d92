"""``InferenceSession``: an ONNX QDQ model run as ONNX Runtime's CPU session runs it.

The model is rewritten by :mod:`.transforms` (ONNX Runtime's QDQ fusions, in its order);
integer nodes then run on :mod:`refquant.kernels.onnxruntime` (bit-exact for the chosen
``isa``), float nodes in float32 NumPy (:mod:`.ops`). When every compute node of a model is
fused into an integer kernel, outputs equal ONNX Runtime's bit for bit; float nodes
(an unfused ``Conv``, ``BatchNormalization``, ...) may differ in the last bits because MLAS
sums in another order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...kernels.onnxruntime import check_isa
from .graph import Graph, Node, load_graph
from .ops import INTEGER_OPS, NodeError, run_node, supported
from .transforms import SOURCES, Options, optimize

__all__ = ["InferenceSession", "NodeError", "Plan", "PlanEntry"]

#: integer kernels that the model-level emulator knows but cannot run
_NOT_EMULATED = {"QLinearSoftmax", "QLinearWhere", "MatMulNBits"}
_PASSTHROUGH = ("MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice",
                "Flatten", "Gather", "GatherElements", "Expand", "Tile")


@dataclass(frozen=True)
class PlanEntry:
    """One node of the rewritten graph: what runs, what it replaced, and why."""

    name: str
    op: str
    domain: str
    kind: str  # "integer", "codes" (moves integer codes), "quantize", "float"
    fused: tuple[str, ...]
    rule: str
    source: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "domain": self.domain, "kind": self.kind,
                "fused": list(self.fused), "rule": self.rule, "source": self.source}


@dataclass
class Plan:
    """The rewritten graph (``entries``, in execution order) and the rewrites applied."""

    isa: str
    x64quantprecision: bool
    entries: list[PlanEntry]
    log: list[str] = field(default_factory=list)

    def op_types(self) -> list[str]:
        return [e.op for e in self.entries]

    def integer_nodes(self) -> list[PlanEntry]:
        return [e for e in self.entries if e.kind == "integer"]

    def float_nodes(self) -> list[PlanEntry]:
        """Float compute nodes (Q/DQ and shape bookkeeping excluded)."""
        skip = ("QuantizeLinear", "DequantizeLinear", "Shape", "Reshape", "Flatten",
                "Squeeze", "Unsqueeze", "Transpose", "Slice", "Concat", "Gather", "Cast",
                "Identity")
        return [e for e in self.entries if e.kind == "float" and e.op not in skip]

    def to_dict(self) -> dict[str, Any]:
        return {"isa": self.isa, "x64quantprecision": self.x64quantprecision,
                "nodes": [e.to_dict() for e in self.entries], "rewrites": list(self.log)}

    def __str__(self) -> str:
        lines = [f"plan for isa={self.isa!r} x64quantprecision={self.x64quantprecision}"]
        for e in self.entries:
            what = f"  {e.op:<26} {e.kind:<8} {e.name}"
            if e.fused:
                what += f"  <- {', '.join(e.fused)} [{e.rule}]"
            lines.append(what)
        return "\n".join(lines)


def _kind(g: Graph, n: Node) -> str:
    if n.op in INTEGER_OPS or n.op in _NOT_EMULATED:
        return "integer"
    if n.op in ("QuantizeLinear", "DequantizeLinear"):
        return "quantize"
    if n.op in _PASSTHROUGH and n.rule == "DropQDQNodes":
        return "codes"
    return "float"


class InferenceSession:
    """``InferenceSession(path_or_bytes, isa="host", x64quantprecision=False)``.

    ``path_or_bytes``: an ONNX file, its bytes or an ``onnx.ModelProto``. ``isa``: the MLAS
    variant to emulate (:data:`refquant.kernels.onnxruntime.ISAS`, or ``"host"``: this
    machine's); it selects the kernels and the rewrites (``"neon"`` keeps int8 activations,
    as ``session.qdqisint8allowed`` defaults to 1 on ARM64). ``x64quantprecision``: ONNX
    Runtime's ``session.x64quantprecision`` option (effective on saturating variants only,
    as in ``graph_transformer_utils.cc``).

    Raises ``ValueError`` naming the node and its op type when the rewritten graph holds an
    operator that is not emulated.
    """

    def __init__(self, path_or_bytes: Any, isa: str = "host",
                 x64quantprecision: bool = False) -> None:
        if not isinstance(x64quantprecision, bool):
            raise TypeError(f"x64quantprecision must be a bool, got {x64quantprecision!r}")
        self.isa = check_isa(isa)
        self.x64quantprecision = x64quantprecision
        graph, self.opset = load_graph(path_or_bytes)
        self._graph = graph
        self._log = optimize(graph, Options(self.isa, x64quantprecision))
        for n in graph.nodes:
            if n.op in _NOT_EMULATED or not supported(n.op):
                origin = f" (fused from {', '.join(n.fused)})" if n.fused else ""
                raise ValueError(
                    f"node {n.name!r}: op type {n.op!r}{origin} is not emulated by "
                    "refquant.deploy.onnxruntime")

    # -- ORT-like API ----------------------------------------------------------------
    def get_inputs(self) -> list[Any]:
        return [_Arg(name, dt, shape) for name, dt, shape in self._graph.inputs]

    def get_outputs(self) -> list[Any]:
        return [_Arg(name, None, None) for name in self._graph.outputs]

    def plan(self) -> Plan:
        entries = [PlanEntry(n.name, n.op, n.domain, _kind(self._graph, n), tuple(n.fused),
                             n.rule, SOURCES.get(n.rule, ""), tuple(n.inputs),
                             tuple(n.outputs)) for n in self._graph.nodes]
        return Plan(self.isa, self.x64quantprecision, entries, list(self._log))

    def _feeds(self, feeds: Any) -> dict[str, np.ndarray]:
        if not isinstance(feeds, Mapping):
            raise TypeError(f"feeds must be a dict of input name -> array, got "
                            f"{type(feeds).__name__}")
        want = {name: (dt, shape) for name, dt, shape in self._graph.inputs}
        extra = sorted(set(feeds) - set(want))
        if extra:
            raise ValueError(f"feeds has unknown input(s) {extra}; the model's inputs are "
                             f"{sorted(want)}")
        missing = sorted(set(want) - set(feeds))
        if missing:
            raise ValueError(f"feeds is missing input(s) {missing}")
        out = {}
        for name, (dt, shape) in want.items():
            v = feeds[name]
            if not isinstance(v, np.ndarray):
                raise TypeError(f"feeds[{name!r}] must be a NumPy array, got "
                                f"{type(v).__name__}")
            if v.dtype != dt:
                raise TypeError(f"feeds[{name!r}] must have dtype {dt}, got {v.dtype}")
            fixed = tuple(s if isinstance(s, int) and s > 0 else None for s in shape)
            if len(shape) != v.ndim or any(s is not None and s != d
                                           for s, d in zip(fixed, v.shape, strict=False)):
                raise ValueError(f"feeds[{name!r}] has shape {v.shape}, the model expects "
                                 f"{fixed} (None: any size)")
            out[name] = np.array(v, copy=True)
        return out

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray],
            *, isa: str | None = None,
            observe: Callable[[Node, list[Any], list[Any]], None] | None = None,
            ) -> list[np.ndarray]:
        """The outputs named in ``output_names`` (all if None), as ORT's ``run``.

        ``isa`` overrides the session's kernel variant for this call (the rewrites stay
        those of the session); ``observe(node, inputs, outputs)`` is called after each node.
        """
        names = list(self._graph.outputs) if output_names is None else list(output_names)
        for nm in names:
            if nm not in self._graph.outputs:
                raise ValueError(f"output_names: {nm!r} is not an output of the model "
                                 f"({self._graph.outputs})")
        kernel_isa = self.isa if isa is None else check_isa(isa)
        env: dict[str, Any] = dict(self._graph.consts)
        env.update(self._feeds(feeds))
        for n in self._graph.nodes:
            vals = [env[x] if x else None for x in n.inputs]
            outs = run_node(n, vals, kernel_isa)
            for name, v in zip(n.outputs, outs, strict=False):
                env[name] = v
            if observe is not None:
                observe(n, vals, outs)
        return [np.asarray(env[nm]) for nm in names]


@dataclass(frozen=True)
class _Arg:
    name: str
    type: Any
    shape: Any

