"""Per fused node: how many int16 pairs saturate on an instruction-set variant, what it costs.

On the saturating variants (``isa="avx2"``, ``"avx512"``: ``vpmaddubsw``, see
:mod:`refquant.kernels.onnxruntime._dispatch`) a uint8 x int8 GEMM adds adjacent K pairs of
raw-code products into a saturating int16. :func:`check` runs a model on ``isa``, and for
every fused GEMM node (``QLinearConv``, ``QLinearMatMul``, ``MatMulIntegerToFloat``,
``QGemm``) counts the saturated pairs of the given input, recomputes the node on the exact
variant (``"avx512-vnni"``: VNNI, no int16 step) from the *same* inputs, and reports how
many outputs change and by how much; it also compares the model's outputs on both variants.

Remedies, each making the node's GEMM exact (sources in microsoft/onnxruntime):

* ``x64quantprecision``: the session option ``session.x64quantprecision=1`` converts constant
  int8 weights with some value outside [-64, 64] to uint8
  (``core/optimizer/qdq_transformer/avx2_weight_s8_to_u8.cc``); uint8 x uint8 is exact;
* ``reduce_range``: quantize weights to 7 bits (``reduce_range=True`` in
  ``onnxruntime.quantization``), |w| <= 64, so no pair can reach 32,768
  (``255 * (64 + 64) = 32,640``);
* ``u8 weights``: quantize weights as uint8 (``weight_type=QuantType.QUInt8``);
* a CPU with VNNI (``avx2-vnni``, ``avx512-vnni``, ``amx``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...kernels.onnxruntime import SATURATING_ISAS, pair_saturation
from ...kernels.onnxruntime import dynamic_quantize_linear as rk_dql
from ...kernels.onnxruntime._conv import conv_geometry, conv_pair_saturation
from .ops import run_node
from .session import InferenceSession

__all__ = ["ModelCheck", "NodeCheck", "check"]

EXACT_ISA = "avx512-vnni"
_GEMM_OPS = ("QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat", "QGemm", "MatMulInteger",
             "DynamicQuantizeMatMul")
REMEDIES = ("x64quantprecision", "reduce_range", "u8 weights", "VNNI CPU")


@dataclass
class NodeCheck:
    """Saturation of one fused node on one input."""

    name: str
    op: str
    fused: list[str]
    operands: str  # e.g. "u8 x s8"
    pairs: int  # int16 pairs the GEMM forms (all outputs)
    saturated: int  # of which saturate
    outputs: int
    outputs_changed: int  # vs the exact variant, same inputs
    max_abs_error: float  # codes for QLinear* outputs, output units for float outputs
    max_abs_weight: int
    remedies: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ModelCheck:
    isa: str
    x64quantprecision: bool
    nodes: list[NodeCheck]
    outputs_changed: dict[str, int]  # model outputs differing from the exact variant
    max_abs_diff: dict[str, float]

    @property
    def saturating(self) -> bool:
        return any(n.saturated for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {"isa": self.isa, "x64quantprecision": self.x64quantprecision,
                "exact_isa": EXACT_ISA, "saturating": self.saturating,
                "nodes": [n.to_dict() for n in self.nodes],
                "model_outputs_changed": self.outputs_changed,
                "model_max_abs_diff": self.max_abs_diff}

    def __str__(self) -> str:
        head = (f"isa={self.isa} x64quantprecision={self.x64quantprecision}: "
                f"{sum(n.saturated for n in self.nodes):,} saturated int16 pairs in "
                f"{sum(1 for n in self.nodes if n.saturated)} of {len(self.nodes)} integer "
                f"GEMM nodes (exact reference: isa={EXACT_ISA})")
        rows = [head, f"{'node':<24} {'kernel':<21} {'operands':<8} {'saturated pairs':>21} "
                      f"{'outputs changed':>17} {'max error':>10}  remedy"]
        for n in self.nodes:
            rows.append(f"{n.name[:24]:<24} {n.op:<21} {n.operands:<8} "
                        f"{n.saturated:>9,}/{n.pairs:<11,} {n.outputs_changed:>8,}/"
                        f"{n.outputs:<8,} {n.max_abs_error:>10.4g}  "
                        f"{', '.join(n.remedies) if n.saturated else '-'}")
        for name, k in self.outputs_changed.items():
            rows.append(f"model output {name!r}: {k:,} values differ from isa={EXACT_ISA} "
                        f"(max |diff| {self.max_abs_diff[name]:.4g})")
        return "\n".join(rows)


def _operands(op: str, v: list[Any], attrs: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """(activations, weights, activation zero point) of a GEMM node, weights [K, N] / conv."""
    if op == "MatMulIntegerToFloat":
        a, b, zp = v[0], v[1], v[4]
    elif op == "MatMulInteger":
        a, b, zp = v[0], v[1], v[2]
    elif op == "DynamicQuantizeMatMul":
        a, _, zp = rk_dql(v[0])
        b = v[1]
    elif op == "QGemm":
        a = v[0].T if attrs.get("transA", 0) else v[0]
        b = v[3].T if attrs.get("transB", 0) else v[3]
        zp = v[2]
    else:
        a, b, zp = v[0], v[3], v[2]
    return a, b, 0 if zp is None else int(np.asarray(zp).reshape(()))


def _saturated(op: str, v: list[Any], attrs: dict) -> tuple[int, int]:
    a, b, zp = _operands(op, v, attrs)
    if op == "QLinearConv":
        geo = conv_geometry(a.shape, b.shape, auto_pad=attrs.get("auto_pad", "NOTSET"),
                            dilations=attrs.get("dilations"), group=attrs.get("group", 1),
                            kernel_shape=attrs.get("kernel_shape"), pads=attrs.get("pads"),
                            strides=attrs.get("strides"))
        k = int(np.prod(b.shape[1:]))
        pairs = a.shape[0] * b.shape[0] * int(np.prod(geo.out)) * ((k + 1) // 2)
        return int(conv_pair_saturation(a, b, zp, geo).sum()), pairs
    a2 = a.reshape(-1, a.shape[-1]) if a.ndim >= 2 else a.reshape(1, -1)
    b2 = b if b.ndim == 2 else b.reshape(b.shape[0], -1)
    pairs = a2.shape[0] * b2.shape[1] * ((a2.shape[1] + 1) // 2)
    if a2.dtype != np.uint8 or b2.dtype != np.int8 or b.ndim != 2:
        return 0, pairs
    return int(pair_saturation(a2, b2).sum()), pairs


def _diff(x: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    if x.dtype.kind == "f":
        bad = x.view(np.uint32) != y.view(np.uint32) if x.dtype == np.float32 else x != y
        d = np.abs(x.astype(np.float64) - y.astype(np.float64))
    else:
        bad = x != y
        d = np.abs(x.astype(np.int64) - y.astype(np.int64)).astype(np.float64)
    return int(bad.sum()), float(d.max()) if d.size else 0.0


def check(model: Any, feeds: dict[str, np.ndarray], isa: str = "avx2",
          x64quantprecision: bool = False) -> ModelCheck:
    """Saturation diagnostics of ``model`` (path, bytes, ``onnx.ModelProto`` or an
    :class:`InferenceSession`) on ``feeds`` for ``isa``."""
    sess = model if isinstance(model, InferenceSession) else InferenceSession(
        model, isa=isa, x64quantprecision=x64quantprecision)
    seen: list[tuple[Any, list[Any], list[Any]]] = []

    def observe(node: Any, vals: list[Any], outs: list[Any]) -> None:
        if node.op in _GEMM_OPS:
            seen.append((node, vals, outs))

    got = sess.run(None, feeds, observe=observe)
    ref = sess.run(None, feeds, isa=EXACT_ISA)
    nodes = []
    for node, vals, outs in seen:
        sat, pairs = _saturated(node.op, vals, node.attrs) if sess.isa in SATURATING_ISAS \
            else (0, _saturated(node.op, vals, node.attrs)[1])
        exact = run_node(node, vals, EXACT_ISA)[0]
        changed, err = _diff(outs[0], exact)
        a, b, _ = _operands(node.op, vals, node.attrs)
        wmax = int(np.abs(b.astype(np.int32)).max()) if b.size else 0
        remedies = []
        if sat:
            if b.dtype == np.int8:
                remedies += ["x64quantprecision", "reduce_range", "u8 weights"]
            remedies.append("VNNI CPU")
        nodes.append(NodeCheck(node.name, node.op, list(node.fused),
                               f"{'u8' if a.dtype == np.uint8 else 's8'} x "
                               f"{'u8' if b.dtype == np.uint8 else 's8'}",
                               pairs, sat, int(outs[0].size), changed, err, wmax, remedies))
    names = sess.get_outputs()
    changed_out, max_diff = {}, {}
    for arg, x, y in zip(names, got, ref, strict=True):
        k, d = _diff(np.asarray(x), np.asarray(y))
        changed_out[arg.name], max_diff[arg.name] = k, d
    return ModelCheck(sess.isa, sess.x64quantprecision, nodes, changed_out, max_diff)
