"""A small mutable graph of ONNX nodes, enough for ONNX Runtime's QDQ rewrites.

Constants (initializers and ``Constant`` nodes) are NumPy arrays; every other value is
named by a string as in ONNX. ``onnx`` is imported only to read a model.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Graph", "Node", "load_graph"]


@dataclass
class Node:
    """One operator. Fused nodes keep the names of the nodes they replace in ``fused``."""

    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    domain: str = ""
    fused: list[str] = field(default_factory=list)
    rule: str = ""  # the ORT transformation that produced the node ("" = original)

    def input(self, i: int) -> str:
        """Input ``i``'s name, ``""`` when absent."""
        return self.inputs[i] if i < len(self.inputs) else ""


@dataclass
class Graph:
    nodes: list[Node]
    consts: dict[str, np.ndarray]
    inputs: list[tuple[str, np.dtype, tuple[Any, ...]]]
    outputs: list[str]
    #: static shapes from ONNX shape inference: dims are ints, names (symbolic) or None
    shapes: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: element types from ONNX shape inference
    types: dict[str, np.dtype] = field(default_factory=dict)
    _counter: int = 0

    def shape(self, name: str) -> tuple[Any, ...] | None:
        c = self.consts.get(name)
        return tuple(c.shape) if c is not None else self.shapes.get(name)

    # -- queries ---------------------------------------------------------------------
    def producer(self, name: str) -> Node | None:
        for n in self.nodes:
            if name in n.outputs:
                return n
        return None

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def edges_out(self, name: str) -> int:
        """Number of consuming input slots (an ONNX Runtime edge per slot)."""
        return sum(n.inputs.count(name) for n in self.nodes)

    def is_output(self, name: str) -> bool:
        return name in self.outputs

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def fresh(self, base: str) -> str:
        self._counter += 1
        return f"{base}__rq{self._counter}"

    # -- edits -----------------------------------------------------------------------
    def replace(self, old: list[Node], new: list[Node]) -> None:
        """Remove ``old`` and insert ``new`` where the first of ``old`` was."""
        pos = min(self.nodes.index(n) for n in old)
        ids = {id(n) for n in old}
        self.nodes = [n for n in self.nodes if id(n) not in ids]
        self.nodes[pos:pos] = new
        self.toposort()

    def toposort(self) -> None:
        """Order the nodes so that each comes after its inputs' producers (Kahn's
        algorithm; among ready nodes the earlier one in the current order goes first)."""
        known = set(self.consts) | {name for name, _, _ in self.inputs} | {""}
        producer = {o: i for i, n in enumerate(self.nodes) for o in n.outputs}
        users: dict[int, list[int]] = {}
        indeg = [0] * len(self.nodes)
        for i, n in enumerate(self.nodes):
            missing = [x for x in n.inputs if x not in known and x not in producer]
            if missing:
                raise ValueError(f"node {n.name!r} ({n.op}): input(s) {missing[:5]} are "
                                 "neither graph inputs, initializers nor node outputs")
            deps = {producer[x] for x in n.inputs if x not in known}
            indeg[i] = len(deps)
            for d in deps:
                users.setdefault(d, []).append(i)
        ready = [i for i, d in enumerate(indeg) if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for u in users.get(i, ()):
                indeg[u] -= 1
                if indeg[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != len(self.nodes):
            stuck = [self.nodes[i].name for i in range(len(self.nodes)) if indeg[i]]
            raise ValueError(f"the graph has a cycle through node(s) {stuck[:5]}")
        self.nodes = [self.nodes[i] for i in order]


def _attr(a: Any) -> Any:
    from onnx import helper, numpy_helper

    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if hasattr(v, "data_type"):  # TensorProto
        return numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [x.decode() for x in v]
    return v


def load_graph(model: Any) -> tuple[Graph, int]:
    """``(graph, default-domain opset)`` of a path, serialized bytes or ``onnx.ModelProto``."""
    import onnx
    from onnx import numpy_helper

    if isinstance(model, (str, os.PathLike)):
        proto = onnx.load(os.fspath(model))
    elif isinstance(model, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(model))
    elif isinstance(model, onnx.ModelProto):
        proto = model
    else:
        raise TypeError(f"path_or_bytes must be a path, bytes or an onnx.ModelProto, got "
                        f"{type(model).__name__}")
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    g = proto.graph
    if any(a.type == onnx.AttributeProto.GRAPH for n in g.node for a in n.attribute):
        sub = next(n for n in g.node if any(a.type == onnx.AttributeProto.GRAPH
                                            for a in n.attribute))
        raise ValueError(f"node {sub.name!r} ({sub.op_type}) has a subgraph; control flow "
                         "is not emulated")
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    init = set(consts)
    inputs = []
    for vi in g.input:
        if vi.name in init:
            continue
        tt = vi.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                      for d in tt.shape.dim)
        inputs.append((vi.name, np.dtype(dtype), shape))
    nodes = []
    for i, n in enumerate(g.node):
        attrs = {a.name: _attr(a) for a in n.attribute}
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            if "value" not in attrs:
                raise ValueError(f"node {n.name!r} (Constant): only the 'value' attribute "
                                 "is supported")
            consts[n.output[0]] = np.asarray(attrs["value"])
            continue
        domain = "" if n.domain == "ai.onnx" else n.domain
        nodes.append(Node(n.op_type, list(n.input), list(n.output), attrs,
                          n.name or f"{n.op_type}_{i}", domain))
    graph = Graph(nodes, consts, inputs, [o.name for o in g.output])
    graph.shapes, graph.types = _infer(proto)
    graph.toposort()
    return graph, opset


def _infer(proto: Any) -> tuple[dict[str, tuple[Any, ...]], dict[str, np.dtype]]:
    """Shapes and element types that ``onnx.shape_inference`` finds (empty on failure)."""
    import onnx
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - inference is best effort, as in ONNX Runtime
        return {}, {}
    shapes, types = {}, {}
    g = inferred.graph
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        tt = vi.type.tensor_type
        if tt.elem_type:
            types[vi.name] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        if tt.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else
                                    (d.dim_param or None) for d in tt.shape.dim)
    return shapes, types
