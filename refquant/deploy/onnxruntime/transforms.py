"""ONNX Runtime's CPU graph rewrites that decide which integer kernels a QDQ model runs.

Each function mirrors one transformer of ONNX Runtime 1.32 (microsoft/onnxruntime), in the
order ``onnxruntime/core/optimizer/graph_transformer_utils.cc`` (``GenerateTransformers``)
runs them at the default level ``ORT_ENABLE_ALL``; file names below are relative to
``onnxruntime/core/optimizer/``:

Level 1
    :func:`eliminate_identity` (``identity_elimination.cc``), :func:`fold_constants`
    (``constant_folding.cc``; ``DequantizeLinear`` is not folded while QDQ rewrites are on),
    :func:`matmul_add_fusion` (``matmul_add_fusion.cc``),
    :func:`propagate_qdq` (``qdq_transformer/qdq_propagation.cc``),
    :func:`quantize_bias` (``qdq_transformer/weight_bias_quantization.cc``),
    :func:`ensure_unique_dq` (``qdq_transformer/ensure_unique_dq_for_node_unit.cc``).
Level 2
    :func:`remove_relu_before_q` (``qdq_transformer/relu_quantizelinear.cc``),
    :func:`qdq_s8_to_u8` (``qdq_transformer/qdq_s8_to_u8.cc``; x86-64 only, where
    ``session.qdqisint8allowed`` defaults to 0), :func:`select_and_fuse`
    (``qdq_transformer/selectors_actions/qdq_selector_action_transformer.cc``,
    ``qdq_selectors.cc``, ``qdq_actions.cc``), :func:`fuse_gemm_activation`
    (``gemm_activation_fusion.cc``), :func:`fuse_dynamic_quantize_matmul`
    (``matmul_integer_to_float.cc`` with ``dynamic_quantize_matmul_fusion.cc``),
    :func:`fuse_conv_activation` (``conv_activation_fusion.cc``), :func:`avx2_weight_s8_to_u8`
    (``qdq_transformer/avx2_weight_s8_to_u8.cc``, only with ``session.x64quantprecision=1``
    on a CPU whose u8 x s8 GEMM saturates).

Level 3 (``NhwcTransformer``, ``NchwcTransformer``) changes layouts only and is not modelled.
Rules read from source and confirmed against ONNX Runtime 1.32's optimized graphs on x86-64
(``SessionOptions.optimized_model_filepath``):

* a QDQ Conv / MatMul / Gemm fuses only if *every* input comes from a ``DequantizeLinear``
  consumed by it alone; the output goes to one ``QuantizeLinear`` (``MatMul`` and ``Gemm``
  without one become ``MatMulIntegerToFloat`` / float-output ``QGemm``); a ``Relu``/``Clip``
  in between is dropped only when the quantizer clips at least as much (zero point at the
  type's minimum for ``Relu``);
* on x86-64 int8 activations do not fuse (``QDQIsInt8Allowed()`` is false); a Q -> DQ pair
  becomes uint8 (zero point + 128) only when the ``QuantizeLinear`` has a single consumer,
  so an int8 activation read by two nodes keeps its float operators;
* a convolution's int32 bias must be dequantized with a scale close to
  ``x_scale * w_scale`` (measured: ORT 1.32 fuses at a relative difference of 1.2 % and not
  at 1.25 %; refquant uses 1.2 %);
* a float ``MatMul`` whose second input alone is dequantized becomes ``MatMulNBits``
  (not emulated: refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...kernels import onnxruntime as rk
from .graph import Graph, Node
from .ops import FLOAT_OPS, run_node

__all__ = ["Options", "SOURCES", "optimize"]

F32 = np.float32
QDQ_DOMAINS = ("", "com.microsoft")
PROPAGATE = ("MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice")
DROP_QDQ = ("Expand", "Flatten", "Gather", "GatherElements", "Reshape", "Slice", "Squeeze",
            "Tile", "Transpose", "Unsqueeze", "MaxPool")
UNARY = {"AveragePool": "QLinearAveragePool", "GlobalAveragePool": "QLinearGlobalAveragePool",
         "LeakyRelu": "QLinearLeakyRelu", "Sigmoid": "QLinearSigmoid",
         "Softmax": "QLinearSoftmax"}
BINARY = {"Add": "QLinearAdd", "Mul": "QLinearMul"}
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid")
BIAS_SCALE_RTOL = 0.012
# integer nodes whose output has the type of input 0
_CODES_OUT = ("QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
              "QLinearGlobalAveragePool", "QLinearLeakyRelu", "QLinearSigmoid")

_Q = "core/optimizer/qdq_transformer/"
SOURCES = {
    "EliminateIdentity": "core/optimizer/identity_elimination.cc",
    "ConstantFolding": "core/optimizer/constant_folding.cc",
    "MatMulAddFusion": "core/optimizer/matmul_add_fusion.cc",
    "GemmActivationFusion": "core/optimizer/gemm_activation_fusion.cc",
    "DynamicQuantizeMatMul": "core/optimizer/matmul_integer_to_float.cc, "
                             "core/optimizer/dynamic_quantize_matmul_fusion.cc",
    "QDQPropagation": _Q + "qdq_propagation.cc",
    "WeightBiasQuantization": _Q + "weight_bias_quantization.cc",
    "EnsureUniqueDQForNodeUnit": _Q + "ensure_unique_dq_for_node_unit.cc",
    "ReluQuantFusion": _Q + "relu_quantizelinear.cc",
    "QDQS8ToU8": _Q + "qdq_s8_to_u8.cc",
    "ConvReplaceWithQLinear": _Q + "selectors_actions/qdq_actions.cc",
    "MatMulReplaceWithQLinear": _Q + "selectors_actions/qdq_actions.cc",
    "GemmReplaceWithQuant": _Q + "selectors_actions/qdq_actions.cc",
    "BinaryReplaceWithQLinear": _Q + "selectors_actions/qdq_actions.cc",
    "UnaryReplaceWithQLinear": _Q + "selectors_actions/qdq_actions.cc",
    "VariadicReplaceWithQLinear": _Q + "selectors_actions/qdq_actions.cc",
    "WhereReplaceWithQLinear": _Q + "selectors_actions/qdq_actions.cc",
    "DropQDQNodes": _Q + "selectors_actions/qdq_selector_action_transformer.cc",
    "DropDQNodes": _Q + "selectors_actions/qdq_selector_action_transformer.cc",
    "DQMatMulToMatMulNBits": _Q + "selectors_actions/qdq_actions.cc",
    "ConvActivationFusion": "core/optimizer/conv_activation_fusion.cc",
    "Avx2WeightS8ToU8": _Q + "avx2_weight_s8_to_u8.cc",
}


@dataclass(frozen=True)
class Options:
    """``isa`` resolved; ``x64quantprecision`` is the session option of that name."""

    isa: str
    x64quantprecision: bool = False

    @property
    def int8_allowed(self) -> bool:
        """``QDQIsInt8Allowed()``: true on ARM64 only."""
        return self.isa == "neon"

    @property
    def weights_to_u8(self) -> bool:
        """``avx2_precision_mode``: the option, on a CPU whose u8 x s8 GEMM saturates
        (``MlasPlatformU8S8Overflow``)."""
        return self.x64quantprecision and self.isa in rk.SATURATING_ISAS


# -- small queries --------------------------------------------------------------------
def _is(n: Node | None, op: str) -> bool:
    return n is not None and n.op == op and n.domain in QDQ_DOMAINS


def _scalar(g: Graph, name: str) -> np.ndarray | None:
    c = g.const(name)
    return c if c is not None and c.size == 1 else None


def _qparams(g: Graph, n: Node) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Constant scalar ``(scale, zero_point)`` of a Q/DQ node, or None."""
    s = _scalar(g, n.input(1))
    if s is None:
        return None
    if not n.input(2):
        return s, None
    z = _scalar(g, n.input(2))
    return None if z is None else (s, z)


def _zp_dtype(g: Graph, n: Node) -> np.dtype:
    z = g.const(n.input(2))
    return np.dtype(np.uint8) if z is None else z.dtype


def dtype_of(g: Graph, name: str) -> np.dtype | None:
    """The element type of a value where the rewrites need it (None if unknown)."""
    c = g.const(name)
    if c is not None:
        return c.dtype
    for nm, dt, _ in g.inputs:
        if nm == name:
            return dt
    p = g.producer(name)
    if _is(p, "QuantizeLinear"):
        assert p is not None
        return _zp_dtype(g, p)
    if p is not None and (p.rule == "DropQDQNodes" or p.op in _CODES_OUT
                          or (p.op == "QGemm" and p.input(8))):
        return dtype_of(g, p.input(0))
    return None


def _same_qparams(g: Graph, a: Node, b: Node) -> bool:
    pa, pb = _qparams(g, a), _qparams(g, b)
    if pa is None or pb is None:
        return False
    if pa[0].astype(F32).reshape(()) != pb[0].astype(F32).reshape(()):
        return False
    za = np.zeros((), np.uint8) if pa[1] is None else pa[1].reshape(())
    zb = np.zeros((), np.uint8) if pb[1] is None else pb[1].reshape(())
    return bool(za.dtype == zb.dtype and za == zb)


# -- level 1 --------------------------------------------------------------------------
def eliminate_identity(g: Graph, log: list[str]) -> None:
    for n in list(g.nodes):
        if n.op != "Identity" or n.domain:
            continue
        src, dst = n.inputs[0], n.outputs[0]
        if g.is_output(dst):
            if g.is_output(src) or src in g.consts or any(src == i[0] for i in g.inputs):
                continue
            p = g.producer(src)
            if p is None:
                continue
            p.outputs[p.outputs.index(src)] = dst
            for c in g.consumers(src):
                c.inputs = [dst if x == src else x for x in c.inputs]
        else:
            for c in g.consumers(dst):
                c.inputs = [src if x == dst else x for x in c.inputs]
        g.nodes.remove(n)
        log.append(f"EliminateIdentity: {n.name}")


def fold_constants(g: Graph, log: list[str]) -> None:
    for n in list(g.nodes):
        if _is(n, "DequantizeLinear") or n.op not in FLOAT_OPS or n.domain:
            continue
        if n.op == "Shape" or not all(x == "" or x in g.consts for x in n.inputs):
            continue
        if any(g.is_output(o) for o in n.outputs):
            continue
        vals = [g.consts[x] if x else None for x in n.inputs]
        outs = run_node(n, vals, "avx2")
        for name, v in zip(n.outputs, outs, strict=True):
            g.consts[name] = np.asarray(v)
        g.nodes.remove(n)
        log.append(f"ConstantFolding: {n.name} ({n.op})")


def _dim_eq(a: Any, b: Any) -> bool:
    return a is not None and a == b


def matmul_add_fusion(g: Graph, log: list[str]) -> None:
    """``MatMul -> Add`` becomes ``Gemm`` (with Reshapes around it for a concrete N-D input)
    when the shapes allow it (``matmul_add_fusion.cc``); shapes come from ONNX shape
    inference."""
    for n in list(g.nodes):
        if n.op != "MatMul" or n.domain or n not in g.nodes:
            continue
        add = _single_edge(g, n.outputs[0])
        if add is None or add.op != "Add" or add.domain:
            continue
        a, b = n.inputs
        if g.types.get(a, dtype_of(g, a)) != np.float32 or \
                g.types.get(add.inputs[0], dtype_of(g, add.inputs[0])) != np.float32:
            continue
        sa, sb = g.shape(a), g.shape(b)
        if sa is None or sb is None or len(sb) != 2:
            continue
        need_reshape = len(sa) != 2
        if need_reshape and (any(not isinstance(d, int) or isinstance(d, bool) for d in sa)
                             or not all(isinstance(d, int) for d in sb)):
            continue
        bias = add.inputs[1] if add.inputs[0] == n.outputs[0] else add.inputs[0]
        sc = g.shape(bias)
        if sc is None:
            continue
        dn = sb[1]
        ok = (len(sc) == 1 and _dim_eq(sc[0], dn)) or (not need_reshape and len(sc) == 2 and (
            (sc[0] == 1 and _dim_eq(sc[1], dn)) or
            (_dim_eq(sc[0], sa[0]) and (sc[1] == 1 or _dim_eq(sc[1], dn)))))
        if not ok:
            continue
        new: list[Node] = []
        x, out = a, add.outputs[0]
        if need_reshape:
            m = int(np.prod(sa[:-1]))
            s_in, s_out = g.fresh("gemm_input_shape"), g.fresh("gemm_output_shape")
            g.consts[s_in] = np.array([m, sb[0]], np.int64)
            g.consts[s_out] = np.array(list(sa[:-1]) + [sb[1]], np.int64)
            x, y = g.fresh("gemm_input_reshape_arg"), g.fresh("gemm_output_reshape_arg")
            new.append(Node("Reshape", [a, s_in], [x], {}, g.fresh("gemm_input_reshape"),
                            rule="MatMulAddFusion"))
            new.append(Node("Gemm", [x, b, bias], [y], {}, n.name + "/MatMulAddFusion",
                            fused=[n.name, add.name], rule="MatMulAddFusion"))
            new.append(Node("Reshape", [y, s_out], [out], {}, g.fresh("gemm_output_reshape"),
                            rule="MatMulAddFusion"))
        else:
            new.append(Node("Gemm", [a, b, bias], [out], {}, n.name + "/MatMulAddFusion",
                            fused=[n.name, add.name], rule="MatMulAddFusion"))
        g.replace([n, add], new)
        log.append(f"MatMulAddFusion: {n.name} + {add.name} -> Gemm")


def _insert_qdq(g: Graph, src: str, consumers: list[Node], like: Node) -> None:
    """``src -> Q -> DQ -> consumer`` with ``like``'s scale and zero point (one DQ per
    consumer; a graph output keeps its name behind its own DQ)."""
    qp = [like.input(1)] + ([like.input(2)] if like.input(2) else [])
    qout = g.fresh(src + "_q_to_dq")
    new = []
    to_output = g.is_output(src)
    pre = src
    if to_output:
        pre = g.fresh(src + "_pre_q")
        p = g.producer(src)
        assert p is not None
        p.outputs[p.outputs.index(src)] = pre
        for c in g.consumers(src):
            if c not in consumers:
                c.inputs = [pre if x == src else x for x in c.inputs]
    new.append(Node("QuantizeLinear", [pre] + qp, [qout], {}, g.fresh(src + "_q"),
                    rule="QDQPropagation"))
    for c in consumers:
        dout = g.fresh(src + "_post_dq")
        new.append(Node("DequantizeLinear", [qout] + qp, [dout], {}, g.fresh(src + "_dq"),
                        rule="QDQPropagation"))
        c.inputs = [dout if x == src else x for x in c.inputs]
    if to_output:
        new.append(Node("DequantizeLinear", [qout] + qp, [src], {}, g.fresh(src + "_dq"),
                        rule="QDQPropagation"))
    g.nodes.extend(new)
    g.toposort()


def _single_edge(g: Graph, name: str) -> Node | None:
    """The only consumer of ``name`` (one edge, not a graph output), else None."""
    if g.is_output(name) or g.edges_out(name) != 1:
        return None
    return g.consumers(name)[0]


def propagate_qdq(g: Graph, log: list[str]) -> None:
    # Q backward: X -> propagating op -> ... -> Q gets Q/DQ pairs before each op
    for q in list(g.nodes):
        if not _is(q, "QuantizeLinear") or _qparams(g, q) is None:
            continue
        name = q.inputs[0]
        while True:
            src = g.producer(name)
            if src is None or src.op not in PROPAGATE or src.domain:
                break
            if _single_edge(g, name) is None:
                break
            prev = src.inputs[0]
            p = g.producer(prev)
            if p is None or _is(p, "DequantizeLinear"):
                break
            if g.is_output(prev) or g.edges_out(prev) != 1:
                break
            _insert_qdq(g, prev, [src], q)
            log.append(f"QDQPropagation: Q {q.name} copied before {src.name} ({src.op})")
            name = prev
    # DQ forward: DQ -> propagating op -> ... gets Q/DQ pairs after each op
    for dq in list(g.nodes):
        if not _is(dq, "DequantizeLinear") or _qparams(g, dq) is None:
            continue
        first = _single_edge(g, dq.outputs[0])
        if first is None:
            continue
        stack = [first]
        while stack:
            n = stack.pop()
            if n.op not in PROPAGATE or n.domain:
                continue
            out = n.outputs[0]
            nxt = [c for c in g.consumers(out) if not _is(c, "QuantizeLinear")]
            if g.is_output(out):
                nxt = []
                _insert_qdq(g, out, [], dq)
            elif nxt:
                _insert_qdq(g, out, nxt, dq)
            else:
                continue
            log.append(f"QDQPropagation: DQ {dq.name} copied after {n.name} ({n.op})")
            stack.extend(nxt)


def _path_to_q(g: Graph, n: Node) -> bool:
    cur = n
    while True:
        if len(cur.outputs) != 1:
            return False
        cons = g.consumers(cur.outputs[0])
        if len(cons) != 1:
            return False
        if _is(cons[0], "QuantizeLinear"):
            return True
        if cons[0].op not in ("Relu", "Clip"):
            return False
        cur = cons[0]


def quantize_bias(g: Graph, log: list[str]) -> None:
    """A float bias initializer of a Conv/Gemm between DQ and Q becomes
    ``DQ(int32(round(fl32(b / fl32(x_scale * w_scale)))))``."""
    for n in list(g.nodes):
        if n.op not in ("Conv", "Gemm") or n.domain:
            continue
        x_dq, w_dq = g.producer(n.input(0)), g.producer(n.input(1))
        if not _is(x_dq, "DequantizeLinear") or _scalar(g, x_dq.input(1)) is None:  # type: ignore[union-attr]
            continue
        if not _path_to_q(g, n):
            continue
        if not _is(w_dq, "DequantizeLinear"):
            if n.input(1) in g.consts and g.consts[n.input(1)].dtype == np.float32:
                raise ValueError(
                    f"node {n.name!r} ({n.op}): ONNX Runtime quantizes its float weight "
                    "initializer (WeightBiasQuantization); that is not emulated")
            continue
        b = g.const(n.input(2))
        if b is None or b.ndim != 1 or b.dtype != np.float32:
            continue
        assert x_dq is not None and w_dq is not None
        ws = g.consts.get(w_dq.input(1))
        if ws is None:
            continue
        if ws.size > 1 and ws.size != b.size:
            continue
        sx = g.consts[x_dq.input(1)].astype(F32).reshape(())
        bscale = (sx * ws.astype(F32)).astype(F32)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            q = np.rint((b / bscale).astype(F32))
        q = np.clip(np.nan_to_num(q), -2**31, 2**31 - 1).astype(np.int32)
        qname, sname, dname = (g.fresh(n.name + "_bias_int32"), g.fresh(n.name + "_bias_scale"),
                               g.fresh(n.name + "_bias_dq"))
        g.consts[qname] = q
        g.consts[sname] = bscale.reshape(ws.shape)
        attrs = {"axis": 0} if ws.size > 1 else {}
        g.nodes.append(Node("DequantizeLinear", [qname, sname], [dname], attrs, dname,
                            rule="WeightBiasQuantization"))
        n.inputs[2] = dname
        g.toposort()
        log.append(f"WeightBiasQuantization: float bias of {n.name} quantized to int32")


def ensure_unique_dq(g: Graph, log: list[str]) -> None:
    for dq in list(g.nodes):
        if not _is(dq, "DequantizeLinear"):
            continue
        out = dq.outputs[0]
        cons = [c for c in g.consumers(out) for _ in range(c.inputs.count(out))]
        extra = cons if g.is_output(out) else cons[1:]
        seen: set[int] = set()
        for c in extra:
            if id(c) in seen:
                continue
            seen.add(id(c))
            name = g.fresh(out)
            g.nodes.append(Node("DequantizeLinear", list(dq.inputs), [name], dict(dq.attrs),
                                g.fresh(dq.name), rule="EnsureUniqueDQForNodeUnit"))
            c.inputs = [name if x == out else x for x in c.inputs]
        if extra:
            log.append(f"EnsureUniqueDQForNodeUnit: {dq.name} duplicated for {len(seen)} "
                       "more consumer(s)")
    g.toposort()


# -- level 2 --------------------------------------------------------------------------
def _qmin(dtype: np.dtype) -> int:
    return 0 if dtype == np.uint8 else -128


def _clip_redundant(g: Graph, clip: Node, q: Node) -> bool:
    """``IsClipMadeRedundantByQ`` (``qdq_transformer/qdq_util.cc``)."""
    qp = _qparams(g, q)
    if qp is None:
        return False
    s, z = qp
    dtype = np.dtype(np.uint8) if z is None else z.dtype
    zp = 0 if z is None else int(z.reshape(()))
    lo, hi = (_qmin(dtype), 255 if dtype == np.uint8 else 127)
    if clip.op == "Relu":
        return zp == lo
    cmin = g.const(clip.input(1)) if clip.input(1) else np.asarray(clip.attrs.get("min",
                                                                                  -np.inf))
    cmax = g.const(clip.input(2)) if clip.input(2) else np.asarray(clip.attrs.get("max",
                                                                                  np.inf))
    if cmin is None or cmax is None:
        return False
    scale = float(s.reshape(()))
    return (float(cmin) <= scale * (lo - zp)) and (float(cmax) >= scale * (hi - zp))


def remove_relu_before_q(g: Graph, log: list[str]) -> None:
    for n in list(g.nodes):
        if n.op not in ("Relu", "Clip") or n.domain:
            continue
        q = _single_edge(g, n.outputs[0])
        if q is None or not _is(q, "QuantizeLinear") or not _clip_redundant(g, n, q):
            continue
        q.inputs[0] = n.inputs[0]
        g.nodes.remove(n)
        log.append(f"ReluQuantFusion: {n.name} ({n.op}) removed before {q.name}")


def _to_u8(g: Graph, name: str) -> str:
    arr = g.consts[name]
    new = g.fresh(name + "_u8")
    g.consts[new] = (arr.view(np.uint8) ^ np.uint8(0x80)).astype(np.uint8)
    return new


def qdq_s8_to_u8(g: Graph, opts: Options, log: list[str]) -> None:
    for n in list(g.nodes):
        if n not in g.nodes:
            continue
        if _is(n, "QuantizeLinear"):
            dq = _single_edge(g, n.outputs[0])
            if dq is None or not _is(dq, "DequantizeLinear") or len(n.inputs) < 3 \
                    or len(dq.inputs) < 3:
                continue
            zq, zd = _scalar(g, n.input(2)), _scalar(g, dq.input(2))
            if zq is None or zd is None or zq.dtype != np.int8 or zd.dtype != np.int8:
                continue
            if int(zq.reshape(())) != int(zd.reshape(())):
                continue
            zname = g.fresh("qdq_s8_to_u8_zp_conversion")
            g.consts[zname] = np.asarray(int(zq.reshape(())) + 128, np.uint8)
            n.inputs[2] = dq.inputs[2] = zname
            log.append(f"QDQS8ToU8: {n.name} -> {dq.name} now uint8, zero point "
                       f"{int(zq.reshape(())) + 128}")
        elif _is(n, "DequantizeLinear") and opts.weights_to_u8:
            w = g.const(n.input(0))
            if w is None or w.dtype != np.int8:
                continue
            z = g.const(n.input(2)) if n.input(2) else np.zeros((), np.int8)
            if z is None or z.dtype != np.int8:
                continue
            if not np.any((w < -64) | (w > 64)):
                continue
            n.inputs[0] = _to_u8(g, n.input(0))
            zname = g.fresh((n.input(2) or n.name) + "_zp_u8")
            g.consts[zname] = (z.view(np.uint8) ^ np.uint8(0x80)).astype(np.uint8)
            n.inputs[2:] = [zname]
            log.append(f"QDQS8ToU8: weights of {n.name} converted to uint8")


@dataclass
class _Group:
    target: Node
    dqs: list[Node | None]  # per input slot, None where the input is not a DQ
    qs: list[Node]
    clip: Node | None


def _group(g: Graph, n: Node) -> _Group | None:
    dqs: list[Node | None] = []
    for x in n.inputs:
        p = g.producer(x) if x else None
        dqs.append(p if _is(p, "DequantizeLinear") else None)
    clip = None
    if len(n.outputs) == 1 and g.edges_out(n.outputs[0]) == 1:
        nxt = g.consumers(n.outputs[0])[0]
        if nxt.op in ("Relu", "Clip") and not nxt.domain and \
                g.edges_out(nxt.outputs[0]) == 1 and not g.is_output(nxt.outputs[0]):
            clip = nxt
    tail = clip or n
    qs = [c for o in tail.outputs for c in g.consumers(o) if _is(c, "QuantizeLinear")]
    if clip is not None and (len(qs) != 1 or not _clip_redundant(g, clip, qs[0])):
        return None
    return _Group(n, dqs, qs, clip)


def _check_qdq(g: Graph, grp: _Group, num_dq: int = -1, empty_q_ok: bool = False) -> bool:
    """``NodeGroupSelector::CheckQDQNodes`` with ``NodeGroup::CanCreateNodeGroup``."""
    n = grp.target
    dqs = [d for d in grp.dqs if d is not None]
    if num_dq == -1:
        num_dq = sum(1 for x in n.inputs if x)
    if num_dq != len(dqs):
        return False
    for d in dqs:
        if g.is_output(d.outputs[0]) or g.edges_out(d.outputs[0]) != 1:
            return False
    if not grp.qs:
        return empty_q_ok
    tail = grp.clip or n
    edges = sum(g.edges_out(o) for o in tail.outputs)
    return (len(grp.qs) == len(n.outputs) == edges
            and not any(g.is_output(o) for o in n.outputs + tail.outputs))


def _q_dtype(g: Graph, q: Node) -> np.dtype:
    return _zp_dtype(g, q)


def _fuse(g: Graph, grp: _Group, new: Node, rule: str, log: list[str],
          keep_dqs: bool = False) -> None:
    old = [grp.target] + ([] if keep_dqs else [d for d in grp.dqs if d is not None]) \
        + ([grp.clip] if grp.clip else []) + grp.qs
    new.fused = [o.name for o in old]
    new.rule = rule
    g.replace(old, new=[new])
    log.append(f"{rule}: {grp.target.name} ({grp.target.op}) -> {new.op}")


def _dq_in(d: Node | None) -> list[str]:
    assert d is not None
    return [d.input(0), d.input(1), d.input(2)]


def _bias_ok(g: Graph, x_dq: Node, w_dq: Node, b_dq: Node) -> bool:
    sx, sw, sb = (g.const(x_dq.input(1)), g.const(w_dq.input(1)), g.const(b_dq.input(1)))
    if sx is None or sw is None or sb is None:
        return True
    want = (sx.astype(F32).reshape(()) * sw.astype(F32)).astype(F32).reshape(-1)
    got = sb.astype(F32).reshape(-1)
    if got.size not in (1, want.size) or want.size not in (1, got.size):
        return False
    return bool(np.all(np.abs(got.astype(np.float64) - want) <= BIAS_SCALE_RTOL * np.abs(want)))


def _try_conv(g: Graph, n: Node, opts: Options, log: list[str]) -> bool:
    grp = _group(g, n)
    if grp is None or not _check_qdq(g, grp) or len(grp.dqs) < 2:
        return False
    x_dq, w_dq = grp.dqs[0], grp.dqs[1]
    assert x_dq is not None and w_dq is not None
    dt_in, dt_w = dtype_of(g, x_dq.input(0)), dtype_of(g, w_dq.input(0))
    if dt_in != _q_dtype(g, grp.qs[0]):
        return False
    if dt_in == np.int8 and (not opts.int8_allowed or dt_w != dt_in):
        return False
    if dt_in not in (np.uint8, np.int8) or dt_w not in (np.uint8, np.int8):
        return False
    b_dq = grp.dqs[2] if len(grp.dqs) > 2 else None
    if b_dq is not None:
        if dtype_of(g, b_dq.input(0)) != np.int32 or not _bias_ok(g, x_dq, w_dq, b_dq):
            return False
    q = grp.qs[0]
    ins = _dq_in(x_dq) + _dq_in(w_dq) + [q.input(1), q.input(2)] + \
        ([b_dq.input(0)] if b_dq is not None else [])
    _fuse(g, grp, Node("QLinearConv", ins, list(q.outputs), dict(n.attrs), n.name),
          "ConvReplaceWithQLinear", log)
    return True


def _try_matmul(g: Graph, n: Node, opts: Options, log: list[str]) -> bool:
    grp = _group(g, n)
    if grp is None:
        return False
    dqs = [d for d in grp.dqs if d is not None]
    if len(dqs) == 1 and grp.dqs[1] is not None and not grp.qs and grp.clip is None:
        return _try_nbits(g, n, grp, log)
    if len(dqs) != 2 or len(n.inputs) != 2:
        return False
    a_dq, b_dq = grp.dqs[0], grp.dqs[1]
    assert a_dq is not None and b_dq is not None
    dt_a, dt_b = dtype_of(g, a_dq.input(0)), dtype_of(g, b_dq.input(0))
    if dt_a not in (np.uint8, np.int8) or dt_b not in (np.uint8, np.int8):
        return False
    if dt_a == np.int8 and (not opts.int8_allowed or dt_b != dt_a):
        return False
    if grp.qs:
        if not _check_qdq(g, grp) or _q_dtype(g, grp.qs[0]) != dt_a:
            return False
        q = grp.qs[0]
        ins = _dq_in(a_dq) + _dq_in(b_dq) + [q.input(1), q.input(2)]
        _fuse(g, grp, Node("QLinearMatMul", ins, list(q.outputs), {}, n.name),
              "MatMulReplaceWithQLinear", log)
        return True
    if grp.clip is not None:
        return False
    for d in (a_dq, b_dq):
        if g.is_output(d.outputs[0]) or g.edges_out(d.outputs[0]) != 1:
            return False
    ins = [a_dq.input(0), b_dq.input(0), a_dq.input(1), b_dq.input(1), a_dq.input(2),
           b_dq.input(2)]
    _fuse(g, grp, Node("MatMulIntegerToFloat", ins, list(n.outputs), {}, n.name,
                       "com.microsoft"), "MatMulReplaceWithQLinear", log)
    return True


def _try_nbits(g: Graph, n: Node, grp: _Group, log: list[str]) -> bool:
    w_dq = grp.dqs[1]
    assert w_dq is not None
    w = g.const(w_dq.input(0))
    if w is None or w.ndim != 2 or w.dtype not in (np.uint8, np.int8) or \
            g.const(w_dq.input(1)) is None or g.edges_out(w_dq.outputs[0]) != 1:
        return False
    if n.op == "Gemm" and (n.attrs.get("transA", 0) or n.attrs.get("transB", 0)
                           or n.attrs.get("alpha", 1.0) != 1.0):
        return False
    new = Node("MatMulNBits", [n.input(0), w_dq.input(0)], list(n.outputs), {}, n.name,
               "com.microsoft")
    new.fused = [n.name, w_dq.name]
    new.rule = "DQMatMulToMatMulNBits"
    g.replace([n, w_dq], [new])
    log.append(f"DQMatMulToMatMulNBits: {n.name} ({n.op}) -> MatMulNBits")
    return True


def _try_gemm(g: Graph, n: Node, opts: Options, log: list[str]) -> bool:
    grp = _group(g, n)
    if grp is None or not _check_qdq(g, grp, -1, True) or len(grp.dqs) < 2:
        return False
    a_dq, b_dq = grp.dqs[0], grp.dqs[1]
    assert a_dq is not None and b_dq is not None
    dt_a, dt_b = dtype_of(g, a_dq.input(0)), dtype_of(g, b_dq.input(0))
    if dt_a not in (np.uint8, np.int8) or dt_b not in (np.uint8, np.int8):
        return False
    if dt_a == np.int8 and dt_b != dt_a:
        return False
    if grp.qs and _q_dtype(g, grp.qs[0]) != dt_a:
        return False
    c_dq = grp.dqs[2] if len(grp.dqs) > 2 else None
    if c_dq is not None and (float(n.attrs.get("beta", 1.0)) != 1.0
                             or dtype_of(g, c_dq.input(0)) != np.int32):
        return False
    ins = _dq_in(a_dq) + _dq_in(b_dq) + [c_dq.input(0) if c_dq is not None else ""]
    outs = list(n.outputs)
    if grp.qs:
        ins += [grp.qs[0].input(1), grp.qs[0].input(2)]
        outs = list(grp.qs[0].outputs)
    attrs: dict[str, Any] = {k: n.attrs[k] for k in ("alpha", "transA", "transB")
                             if k in n.attrs}
    _fuse(g, grp, Node("QGemm", ins, outs, attrs, n.name, "com.microsoft"),
          "GemmReplaceWithQuant", log)
    return True


def _try_binary(g: Graph, n: Node, log: list[str]) -> bool:
    grp = _group(g, n)
    if grp is None or not _check_qdq(g, grp) or len(grp.dqs) != 2:
        return False
    a, b = grp.dqs
    assert a is not None and b is not None
    dt = dtype_of(g, a.input(0))
    if dt not in (np.uint8, np.int8) or dtype_of(g, b.input(0)) != dt or \
            _q_dtype(g, grp.qs[0]) != dt:
        return False
    q = grp.qs[0]
    ins = _dq_in(a) + _dq_in(b) + [q.input(1), q.input(2)]
    _fuse(g, grp, Node(BINARY[n.op], ins, list(q.outputs), {}, n.name, "com.microsoft"),
          "BinaryReplaceWithQLinear", log)
    return True


def _try_unary(g: Graph, n: Node, log: list[str]) -> bool:
    grp = _group(g, n)
    if grp is None or not _check_qdq(g, grp, 1):
        return False
    d = grp.dqs[0]
    assert d is not None
    dt = dtype_of(g, d.input(0))
    if dt not in (np.uint8, np.int8) or _q_dtype(g, grp.qs[0]) != dt:
        return False
    q = grp.qs[0]
    ins = _dq_in(d) + [q.input(1), q.input(2)]
    _fuse(g, grp, Node(UNARY[n.op], ins, list(q.outputs), dict(n.attrs), n.name,
                       "com.microsoft"), "UnaryReplaceWithQLinear", log)
    return True


def _try_drop(g: Graph, n: Node, log: list[str]) -> bool:
    grp = _group(g, n)
    if grp is None or grp.clip is not None or not _check_qdq(g, grp, 1):
        return False
    d, q = grp.dqs[0], grp.qs[0]
    if d is None or dtype_of(g, d.input(0)) not in (np.uint8, np.int8):
        return False
    if not _same_qparams(g, d, q):
        return False
    if n.op == "MaxPool":
        qp = _qparams(g, q)
        if qp is None or not float(qp[0].reshape(())) > 0:
            return False
    new = Node(n.op, [d.input(0)] + n.inputs[1:], list(q.outputs), dict(n.attrs), n.name)
    _fuse(g, grp, new, "DropQDQNodes", log)
    return True


def _try_variadic(g: Graph, n: Node, log: list[str]) -> bool:
    grp = _group(g, n)
    if grp is None or not _check_qdq(g, grp):
        return False
    dts = {str(dtype_of(g, d.input(0))) for d in grp.dqs if d is not None}
    if len(dts) != 1 or dts != {str(_q_dtype(g, grp.qs[0]))}:
        return False
    q = grp.qs[0]
    ins = [q.input(1), q.input(2)] + [x for d in grp.dqs if d is not None for x in _dq_in(d)]
    new = Node("QLinear" + n.op, ins, list(q.outputs), dict(n.attrs), n.name,
               "com.microsoft")
    _fuse(g, grp, new, "VariadicReplaceWithQLinear", log)
    return True


def select_and_fuse(g: Graph, opts: Options, log: list[str]) -> None:
    for n in list(g.nodes):
        if n not in g.nodes or n.domain:
            continue
        if n.op == "Conv":
            _try_conv(g, n, opts, log)
        elif n.op == "MatMul":
            _try_matmul(g, n, opts, log)
        elif n.op == "Gemm":
            if not _try_gemm(g, n, opts, log):
                grp = _group(g, n)
                if grp is not None and sum(d is not None for d in grp.dqs) == 1 \
                        and grp.dqs[1] is not None and not grp.qs:
                    _try_nbits(g, n, grp, log)
        elif n.op in BINARY:
            _try_binary(g, n, log)
        elif n.op in UNARY:
            _try_unary(g, n, log)
        elif n.op in DROP_QDQ:
            _try_drop(g, n, log)
        elif n.op == "Concat":
            _try_variadic(g, n, log)


def fuse_dynamic_quantize_matmul(g: Graph, log: list[str]) -> None:
    """``DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(a_scale * b_scale)
    [-> Add(bias)]`` becomes ``com.microsoft.DynamicQuantizeMatMul`` (what
    ``matmul_integer_to_float.cc`` then ``dynamic_quantize_matmul_fusion.cc`` produce
    together): ``y = fl(fl(float(acc) * fl(a_scale * b_scale)) + bias)``."""
    for m in list(g.nodes):
        if m not in g.nodes or m.op != "MatMulInteger" or m.domain:
            continue
        d = g.producer(m.input(0))
        if d is None or d.op != "DynamicQuantizeLinear" or m.input(2) != d.outputs[2]:
            continue
        b, bz = m.input(1), m.input(3)
        if g.const(b) is None:
            continue
        cast = _single_edge(g, m.outputs[0])
        if cast is None or cast.op != "Cast" or int(cast.attrs.get("to", 0)) != 1:
            continue
        mul = _single_edge(g, cast.outputs[0])
        if mul is None or mul.op != "Mul":
            continue
        other = mul.inputs[1] if mul.inputs[0] == cast.outputs[0] else mul.inputs[0]
        smul = g.producer(other)
        if smul is None or smul.op != "Mul" or d.outputs[1] not in smul.inputs:
            continue
        b_scale = smul.inputs[1] if smul.inputs[0] == d.outputs[1] else smul.inputs[0]
        if g.const(b_scale) is None or g.edges_out(other) != 1:
            continue
        if any(g.edges_out(o) != 1 or g.is_output(o) for o in d.outputs):
            continue
        old = [d, smul, m, cast, mul]
        bias, out = "", mul.outputs[0]
        add = _single_edge(g, out)
        if add is not None and add.op == "Add":
            cand = add.inputs[1] if add.inputs[0] == out else add.inputs[0]
            c = g.const(cand)
            n_out = g.consts[b].shape[-1]
            if c is not None and c.dtype == np.float32 and c.shape == (n_out,):
                bias, out = cand, add.outputs[0]
                old.append(add)
        new = Node("DynamicQuantizeMatMul", [d.input(0), b, b_scale, bz, bias], [out], {},
                   m.name, "com.microsoft", [o.name for o in old], "DynamicQuantizeMatMul")
        g.replace(old, [new])
        log.append(f"DynamicQuantizeMatMul: {m.name} with {d.name} -> DynamicQuantizeMatMul")


def fuse_gemm_activation(g: Graph, log: list[str]) -> None:
    """Float ``Gemm -> activation`` becomes ``com.microsoft.FusedGemm``
    (``gemm_activation_fusion.cc``)."""
    for n in list(g.nodes):
        if n.op != "Gemm" or n.domain or len(n.outputs) != 1:
            continue
        act = _single_edge(g, n.outputs[0])
        if act is None or act.op not in ("Relu", "LeakyRelu", "Sigmoid", "Tanh") or act.domain:
            continue
        params = [float(act.attrs.get("alpha", 0.01))] if act.op == "LeakyRelu" else []
        attrs = dict(n.attrs, activation=act.op, activation_params=params)
        new = Node("FusedGemm", list(n.inputs), list(act.outputs), attrs, n.name,
                   "com.microsoft", [n.name, act.name], "GemmActivationFusion")
        g.replace([n, act], [new])
        log.append(f"GemmActivationFusion: {n.name} + {act.name} ({act.op})")


def fuse_conv_activation(g: Graph, log: list[str]) -> None:
    for n in list(g.nodes):
        if n.op != "Conv" or n.domain or len(n.outputs) != 1:
            continue
        act = _single_edge(g, n.outputs[0])
        if act is None or act.op not in ACTIVATIONS or act.domain:
            continue
        params: list[float] = []
        if act.op == "Clip":
            lo = g.const(act.input(1)) if act.input(1) else np.asarray(-np.inf)
            hi = g.const(act.input(2)) if act.input(2) else np.asarray(np.inf)
            if lo is None or hi is None:
                continue
            params = [float(lo), float(hi)]
        elif act.op == "LeakyRelu":
            params = [float(act.attrs.get("alpha", 0.01))]
        elif act.op == "HardSigmoid":
            params = [float(act.attrs.get("alpha", 0.2)), float(act.attrs.get("beta", 0.5))]
        attrs = dict(n.attrs, activation=act.op, activation_params=params)
        new = Node("FusedConv", list(n.inputs), list(act.outputs), attrs, n.name,
                   "com.microsoft", [n.name, act.name], "ConvActivationFusion")
        g.replace([n, act], [new])
        log.append(f"ConvActivationFusion: {n.name} + {act.name} ({act.op})")


_WEIGHT_SLOTS = {"MatMulIntegerToFloat": (1, 5), "QLinearMatMul": (3, 5),
                 "DynamicQuantizeMatMul": (1, 3), "MatMulInteger": (1, 3),
                 "QLinearConv": (3, 5), "QGemm": (3, 5)}


def avx2_weight_s8_to_u8(g: Graph, log: list[str]) -> None:
    """Constant int8 weights of integer nodes become uint8 (``w ^ 0x80``, zero point + 128)
    when some weight lies outside [-64, 64] (``qdq_transformer/s8_to_u8.h``)."""
    for n in g.nodes:
        slots = _WEIGHT_SLOTS.get(n.op)
        if slots is None:
            continue
        wi, zi = slots
        w = g.const(n.input(wi))
        if w is None or w.dtype != np.int8:
            continue
        z = g.const(n.input(zi)) if n.input(zi) else np.zeros((), np.int8)
        if z is None or z.dtype != np.int8:
            continue
        conv = rk.weight_s8_to_u8(w, z)
        if conv is None:
            continue
        wn, zn = g.fresh(n.input(wi) + "_u8"), g.fresh((n.input(zi) or n.name) + "_zp_u8")
        g.consts[wn], g.consts[zn] = conv
        n.inputs[wi] = wn
        while len(n.inputs) <= zi:
            n.inputs.append("")
        n.inputs[zi] = zn
        log.append(f"Avx2WeightS8ToU8: weights of {n.name} ({n.op}) converted to uint8")


def optimize(g: Graph, opts: Options) -> list[str]:
    """Apply the rewrites in ONNX Runtime's order; returns what each did (in order)."""
    log: list[str] = []
    eliminate_identity(g, log)
    fold_constants(g, log)
    matmul_add_fusion(g, log)
    propagate_qdq(g, log)
    quantize_bias(g, log)
    ensure_unique_dq(g, log)
    remove_relu_before_q(g, log)
    if not opts.int8_allowed:
        qdq_s8_to_u8(g, opts, log)
    select_and_fuse(g, opts, log)
    fuse_gemm_activation(g, log)
    fuse_dynamic_quantize_matmul(g, log)
    fuse_conv_activation(g, log)
    if opts.weights_to_u8:
        avx2_weight_s8_to_u8(g, log)
    return log
