"""refquant.deploy.onnxruntime: ONNX Runtime's QDQ rewrites and the model-level emulator.

Expected values come from ONNX Runtime itself: each model (built here with ``onnx.helper``)
runs in ORT's default CPU session, its optimized graph is read back from
``SessionOptions.optimized_model_filepath``, and the emulator with ``isa="host"`` (the
variant ORT runs on this machine) must give the same integer kernels and the same output
bits. The saturating variant, which a VNNI CPU cannot run, is checked against a pair-by-pair
formulation of ``vpmaddubsw`` written in this file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from refquant.cli import main
from refquant.deploy.onnxruntime import InferenceSession, check

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

F32 = np.float32
KERNELS = ("QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat", "QGemm", "QLinearAdd",
           "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearLeakyRelu",
           "QLinearSigmoid", "QLinearConcat", "MatMulNBits", "FusedConv", "FusedGemm", "Conv",
           "MatMul", "Gemm")


class Builder:
    """QDQ models in the layout ONNX Runtime's quantizer writes (int8, zero point 0)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.inits: list = []
        self.nodes: list = []
        self.k = 0

    def const(self, arr, base="c"):
        self.k += 1
        name = f"{base}{self.k}"
        self.inits.append(nh.from_array(np.asarray(arr), name))
        return name

    def qdq(self, x, scale, zp=0, consumers=1):
        s, z = self.const(F32(scale), "s"), self.const(np.int8(zp), "z")
        self.k += 1
        q = f"q{self.k}"
        self.nodes.append(h.make_node("QuantizeLinear", [x, s, z], [q], name=q))
        outs = []
        for i in range(consumers):
            d = f"d{self.k}_{i}"
            self.nodes.append(h.make_node("DequantizeLinear", [q, s, z], [d], name=d))
            outs.append(d)
        return outs[0] if consumers == 1 else outs

    def weight(self, shape, axis, lim=127, per_channel=True):
        w = self.rng.integers(-lim, lim + 1, shape).astype(np.int8)
        n = shape[axis]
        s = self.rng.uniform(0.002, 0.02, n).astype(F32) if per_channel else F32(0.01)
        z = np.zeros(n, np.int8) if per_channel else np.int8(0)
        names = [self.const(w, "w"), self.const(s, "ws"), self.const(z, "wz")]
        self.k += 1
        out = f"wd{self.k}"
        self.nodes.append(h.make_node("DequantizeLinear", names, [out], name=out, axis=axis))
        return out, s

    def bias(self, sx, sw, n, rel=1.0):
        b = self.rng.integers(-3000, 3000, n).astype(np.int32)
        bs = (F32(sx) * np.asarray(sw, F32) * F32(rel)).astype(F32)
        names = [self.const(b, "b"), self.const(bs, "bs")]
        self.k += 1
        out = f"bd{self.k}"
        self.nodes.append(h.make_node("DequantizeLinear", names, [out], name=out, axis=0))
        return out

    def op(self, op, ins, domain="", **attrs):
        self.k += 1
        out = f"{op.lower()}{self.k}"
        self.nodes.append(h.make_node(op, ins, [out], name=out, domain=domain, **attrs))
        return out

    def model(self, x_shape, outs):
        g = h.make_graph(self.nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, x_shape)],
                         [h.make_tensor_value_info(o, TP.FLOAT, None) for o in outs],
                         initializer=self.inits)
        m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
        m.ir_version = 8
        return m.SerializeToString()


def fully_fused(seed=0, batch=2, zp_in=0):
    """Every compute op fuses into an integer kernel (no BatchNormalization)."""
    b = Builder(seed)
    x = b.qdq("x", 0.02, zp_in)
    w, sw = b.weight((16, 3, 3, 3), 0)
    y = b.op("Conv", [x, w, b.bias(0.02, sw, 16)], pads=[1, 1, 1, 1])
    x = b.qdq(y, 0.05)
    w, sw = b.weight((16, 4, 3, 3), 0)
    y = b.op("Conv", [x, w, b.bias(0.05, sw, 16)], pads=[1, 1, 1, 1], group=4, strides=[2, 2])
    y = b.op("Relu", [y])
    x = b.qdq(y, 0.05, -128)  # the Relu is redundant: ORT drops it
    w, _ = b.weight((16, 1, 3, 3), 0)
    y = b.op("Conv", [x, w], pads=[1, 1, 1, 1], group=16)
    x = b.qdq(y, 0.04)
    y = b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.qdq(y, 0.04)
    x = b.qdq(b.op("LeakyRelu", [x], alpha=0.1), 0.03)
    x = b.qdq(b.op("AveragePool", [x], kernel_shape=[2, 2], pads=[0, 0, 1, 1]), 0.03)
    y = b.op("Reshape", [x, b.const(np.array([0, -1], np.int64), "shape")])
    x = b.qdq(y, 0.03)
    w, _ = b.weight((16 * 4 * 4, 32), 1)
    x = b.qdq(b.op("MatMul", [x, w]), 0.2)
    w, _ = b.weight((32, 24), 1, per_channel=False)
    x = b.qdq(b.op("MatMul", [x, w]), 0.1)
    x = b.qdq(b.op("Sigmoid", [x]), 1 / 256, -128)
    w, sw = b.weight((10, 24), 0)
    y = b.op("Gemm", [x, w, b.bias(1 / 256, sw, 10)], transB=1)
    return b.model([batch, 3, 16, 16], [y])


def ort_session(model, **config):
    so = ort.SessionOptions()
    for k, v in config.items():
        so.add_session_config_entry(k, v)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_optimized_types(model, tmp_path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]


def kernels(types):
    """Compute nodes in order; ORT's layout nodes (Level 3 NHWC) do not count."""
    return [t for t in types if t in KERNELS]


def bits(a):
    return np.asarray(a, F32).view(np.uint32)


def saturating_input(shape, seed):
    """Activations at the ends of the quantizer's range, where int16 pairs saturate."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, shape).astype(F32)
    x[..., ::3] = 2.6
    return x


@pytest.mark.parametrize("seed,batch,zp_in", [(0, 2, 0), (1, 1, 5), (2, 3, -7)])
def test_fully_fused_model_is_bit_identical_to_ort(seed, batch, zp_in, tmp_path):
    model = fully_fused(seed, batch, zp_in)
    sess = InferenceSession(model)
    plan = sess.plan()
    assert kernels(plan.op_types()) == kernels(ort_optimized_types(model, tmp_path))
    assert not plan.float_nodes()
    assert {e.op for e in plan.integer_nodes()} >= {"QLinearConv", "QLinearMatMul", "QGemm",
                                                    "QLinearSigmoid", "QLinearLeakyRelu"}
    ref = ort_session(model)
    for k in range(2):
        x = saturating_input((batch, 3, 16, 16), seed * 10 + k)
        want = ref.run(None, {"x": x})[0]
        got = sess.run(None, {"x": x})[0]
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.array_equal(bits(got), bits(want))


def test_ort_x64quantprecision_equals_the_option_here():
    """ORT's ``session.x64quantprecision=1`` (effective on saturating CPUs only) equals the
    emulator with the option on this machine's variant, on every machine."""
    model = fully_fused(3)
    x = saturating_input((2, 3, 16, 16), 3)
    want = ort_session(model, **{"session.x64quantprecision": "1"}).run(None, {"x": x})[0]
    got = InferenceSession(model, x64quantprecision=True).run(None, {"x": x})[0]
    assert np.array_equal(bits(got), bits(want))


def demo_like(seed=0):
    """The digits demo's export layout: Q/DQ only on layer inputs, bias and Relu in float."""
    b = Builder(seed)
    x = b.qdq("x", 16 / 127)
    w, _ = b.weight((16, 1, 3, 3), 0)
    y = b.op("Relu", [b.op("Add", [b.op("Conv", [x, w], pads=[1, 1, 1, 1]),
                                   b.const(b.rng.normal(0, 0.1, (1, 16, 1, 1)).astype(F32))])])
    x = b.qdq(y, 0.05)
    w, _ = b.weight((32, 16, 3, 3), 0)
    y = b.op("Relu", [b.op("Add", [b.op("Conv", [x, w], pads=[1, 1, 1, 1], strides=[2, 2]),
                                   b.const(b.rng.normal(0, 0.1, (1, 32, 1, 1)).astype(F32))])])
    y = b.op("Flatten", [y])
    x = b.qdq(y, 0.05)
    w, _ = b.weight((512, 64), 1)
    y = b.op("Relu", [b.op("Add", [b.op("MatMul", [x, w]),
                                   b.const(b.rng.normal(0, 0.1, 64).astype(F32))])])
    x = b.qdq(y, 0.08)
    w, _ = b.weight((64, 10), 1)
    y = b.op("Add", [b.op("MatMul", [x, w]), b.const(b.rng.normal(0, 0.1, 10).astype(F32))])
    return b.model([None, 1, 8, 8], [y])


def test_demo_layout_plan_matches_ort_and_outputs_agree(tmp_path):
    model = demo_like()
    sess = InferenceSession(model)
    ours = sess.plan().op_types()
    assert kernels(ours) == kernels(ort_optimized_types(model, tmp_path))
    # MatMul + Add on a 2-D input becomes a float Gemm (MatMulAddFusion) before the QDQ
    # rewrites, and a Gemm -> Relu -> Q does not fuse: this layout runs no integer kernel
    assert kernels(ours) == ["Conv", "Conv", "FusedGemm", "Gemm"]
    x = np.random.default_rng(0).uniform(0, 16, (64, 1, 8, 8)).astype(F32)
    want = ort_session(model).run(None, {"x": x})[0]
    got = sess.run(None, {"x": x})[0]
    # float convolutions sum in NumPy's order, not MLAS's: a quantizer after them may move
    # by one code where its input lies on a rounding boundary
    same = np.mean(bits(got) == bits(want))
    assert same >= 0.99, same
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.98


def _rule_model(kind):
    b = Builder(7)
    x = b.qdq("x", 0.02)
    w, sw = b.weight((8, 3, 3, 3), 0)
    if kind == "bias scale off":
        y = b.op("Conv", [x, w, b.bias(0.02, sw, 8, rel=1.05)], pads=[1, 1, 1, 1])
        return b.model([1, 3, 6, 6], [b.qdq(y, 0.05)])
    y = b.op("Conv", [x, w], pads=[1, 1, 1, 1])
    if kind == "relu zp 0":
        return b.model([1, 3, 6, 6], [b.qdq(b.op("Relu", [y]), 0.05)])
    if kind == "relu zp -128":
        return b.model([1, 3, 6, 6], [b.qdq(b.op("Relu", [y]), 0.05, -128)])
    if kind == "branch":  # an int8 activation read twice stays int8, so nothing fuses
        d1, d2 = b.qdq(y, 0.05, consumers=2)
        w2, _ = b.weight((8, 8, 1, 1), 0)
        y2 = b.op("Conv", [d1, w2])
        return b.model([1, 3, 6, 6], [b.qdq(b.op("Add", [b.qdq(y2, 0.05), d2]), 0.05)])
    if kind == "add":
        d = b.qdq(y, 0.05)
        w2, _ = b.weight((8, 8, 1, 1), 0)
        y2 = b.op("Conv", [b.qdq("x", 0.02), b.weight((8, 3, 1, 1), 0)[0]])
        return b.model([1, 3, 6, 6], [b.qdq(b.op("Add", [d, b.qdq(y2, 0.07)]), 0.05)])
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,expected", [
    ("relu zp 0", ["FusedConv"]),
    ("relu zp -128", ["QLinearConv"]),
    ("bias scale off", ["Conv"]),
    ("branch", ["Conv", "Conv"]),
    ("add", ["QLinearConv", "QLinearConv", "QLinearAdd"]),
])
def test_fusion_rules_match_ort(kind, expected, tmp_path):
    model = _rule_model(kind)
    ours = kernels(InferenceSession(model).plan().op_types())
    assert ours == kernels(ort_optimized_types(model, tmp_path))
    assert sorted(ours) == sorted(expected)
    x = saturating_input((1, 3, 6, 6), 1)
    want = ort_session(model).run(None, {"x": x})[0]
    got = InferenceSession(model).run(None, {"x": x})[0]
    assert np.array_equal(bits(got), bits(want))


def _pairs_reference(a_u8, w_s8):
    """vpmaddubsw then vpmaddwd, written out: sum over K pairs of sat16(a0*w0 + a1*w1)."""
    m, k = a_u8.shape
    n = w_s8.shape[1]
    acc = np.zeros((m, n), np.int64)
    nsat = 0
    for i in range(m):
        for j in range(n):
            for p in range(0, k, 2):
                v = int(a_u8[i, p]) * int(w_s8[p, j])
                if p + 1 < k:
                    v += int(a_u8[i, p + 1]) * int(w_s8[p + 1, j])
                c = min(max(v, -32768), 32767)
                nsat += c != v
                acc[i, j] += c
    return acc, nsat


def test_avx2_saturation_in_a_fused_matmul_against_pairwise_reference():
    b = Builder(11)
    sx = 0.05
    x = b.qdq("x", sx)
    w_name, sw = b.weight((9, 5), 1)
    y = b.op("MatMul", [x, w_name])
    model = b.model([4, 9], [y])
    w = nh.to_array(next(i for i in b.inits if i.name.startswith("w") and
                         i.data_type == TP.INT8 and len(i.dims) == 2))
    rng = np.random.default_rng(5)
    x_in = rng.choice(np.array([-6.4, -6.0, 6.0, 6.35, 0.5], F32), (4, 9))
    q = np.clip(np.rint(x_in / F32(sx)), -128, 127).astype(np.int64)
    a = (q + 128).astype(np.uint8)  # ORT's QDQ s8 -> u8 rewrite: zero point 128
    dot, nsat = _pairs_reference(a, w)
    acc = dot - 128 * w.astype(np.int64).sum(axis=0)
    want = (acc.astype(F32) * (F32(sx) * sw).astype(F32)).astype(F32)
    assert nsat > 0
    sess = InferenceSession(model, isa="avx2")
    assert kernels(sess.plan().op_types()) == ["MatMulIntegerToFloat"]
    got = sess.run(None, {"x": x_in})[0]
    assert np.array_equal(bits(got), bits(want))
    report = check(model, {"x": x_in}, isa="avx2")
    (node,) = report.nodes
    assert node.saturated == nsat and node.operands == "u8 x s8"
    exact = ((q @ w.astype(np.int64)).astype(F32) * (F32(sx) * sw).astype(F32)).astype(F32)
    assert node.outputs_changed == int(np.sum(bits(want) != bits(exact)))
    assert "x64quantprecision" in node.remedies and "reduce_range" in node.remedies
    fixed = InferenceSession(model, isa="avx2", x64quantprecision=True)
    assert np.array_equal(bits(fixed.run(None, {"x": x_in})[0]), bits(exact))
    assert check(fixed, {"x": x_in}).saturating is False
    vnni = check(model, {"x": x_in}, isa="avx512-vnni")
    assert vnni.nodes[0].saturated == 0 and vnni.outputs_changed == {y: 0}


def test_unsupported_ops_are_named(tmp_path):
    b = Builder(0)
    y = b.op("Einsum", ["x", "x"], equation="ij,ij->i")
    with pytest.raises(ValueError, match=r"einsum\d+.*'Einsum'"):
        InferenceSession(b.model([2, 3], [y]))
    b = Builder(0)  # float MatMul with dequantized weights: ORT makes it MatMulNBits
    w, _ = b.weight((4, 3), 1)
    y = b.op("MatMul", ["x", w])
    model = b.model([2, 4], [y])
    assert "MatMulNBits" in ort_optimized_types(model, tmp_path)
    with pytest.raises(ValueError, match="MatMulNBits"):
        InferenceSession(model)


def test_bad_feeds_and_arguments():
    sess = InferenceSession(fully_fused(0))
    x = np.zeros((2, 3, 16, 16), F32)
    before = x.copy()
    sess.run(None, {"x": x})
    assert np.array_equal(x, before)
    with pytest.raises(TypeError, match=r"feeds\['x'\].*float32.*float64"):
        sess.run(None, {"x": x.astype(np.float64)})
    with pytest.raises(ValueError, match="missing input"):
        sess.run(None, {})
    with pytest.raises(ValueError, match="unknown input"):
        sess.run(None, {"x": x, "y": x})
    with pytest.raises(ValueError, match=r"shape \(2, 3, 8, 8\)"):
        sess.run(None, {"x": np.zeros((2, 3, 8, 8), F32)})
    with pytest.raises(ValueError, match="output_names"):
        sess.run(["nope"], {"x": x})
    with pytest.raises(ValueError, match="isa"):
        InferenceSession(fully_fused(0), isa="sse")
    with pytest.raises(TypeError, match="path_or_bytes"):
        InferenceSession(3.5)


def test_bad_quantization_parameters_name_the_node():
    b = Builder(0)
    x = b.qdq("x", 0.02)
    w, _ = b.weight((4, 3), 1)
    y = b.op("MatMul", [x, w])
    b.inits[-2] = nh.from_array(np.zeros(3, F32), b.inits[-2].name)  # weight scales 0
    sess = InferenceSession(b.model([2, 4], [y]))
    with pytest.raises(ValueError, match=r"matmul\d+.*b_scale must be finite and > 0"):
        sess.run(None, {"x": np.ones((2, 4), F32)})


def test_cli_check(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(fully_fused(0))
    xp = tmp_path / "x.npy"
    np.save(xp, saturating_input((2, 3, 16, 16), 0))
    assert main(["deploy", "check", str(path), str(xp), "--isa", "avx2", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["saturating"] and report["isa"] == "avx2"
    assert any(n["saturated"] > 0 for n in report["nodes"])
    assert main(["deploy", "check", str(path), str(xp), "--isa", "avx512-vnni"]) == 0
    assert "0 saturated int16 pairs" in capsys.readouterr().out
    assert main(["deploy", "check", str(path), str(xp), "--isa", "avx2",
                 "--x64quantprecision"]) == 0
    capsys.readouterr()
    np.save(xp, np.zeros((2, 3, 16, 16), np.float64))
    for argv in (["deploy", "check", str(path), str(xp)],
                 ["deploy", "check", str(path), str(tmp_path / "none.npy")],
                 ["deploy", "check", str(xp), str(xp)],
                 ["deploy", "check", str(path), str(xp), "--isa", "sse"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("refquant deploy: error:") and err.count("\n") == 1


def test_cli_plan(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(fully_fused(0))
    assert main(["deploy", "plan", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [n["op"] for n in plan["nodes"]] == InferenceSession(
        fully_fused(0)).plan().op_types()
    assert main(["deploy", "plan", str(path), "--isa", "avx2"]) == 0
    assert "QLinearConv" in capsys.readouterr().out
    assert main(["deploy", "plan", str(tmp_path / "none.onnx")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_long_k_products_stay_exact():
    """The exact GEMM cuts K into float32 chunks; compare with int64 NumPy on extremes."""
    from refquant.kernels import onnxruntime as rk

    rng = np.random.default_rng(3)
    a = rng.choice(np.array([0, 255], np.uint8), (5, 3001))
    b = rng.choice(np.array([-128, 127], np.int8), (3001, 7))
    want = (a.astype(np.int64) - 3) @ (b.astype(np.int64) + 5)
    got = rk.matmul_integer(a, b, np.uint8(3), np.int8(-5), isa="avx512-vnni")
    assert np.array_equal(got, want.astype(np.int32))


def test_consecutive_qgemm_nodes_fuse_like_ort(tmp_path):
    b = Builder(4)
    x = b.qdq("x", 0.05)
    w, sw = b.weight((16, 12), 0)
    x = b.qdq(b.op("Gemm", [x, w, b.bias(0.05, sw, 16)], transB=1), 0.1)
    w, sw = b.weight((5, 16), 0)
    y = b.op("Gemm", [x, w, b.bias(0.1, sw, 5)], transB=1)
    model = b.model([3, 12], [y])
    ours = kernels(InferenceSession(model).plan().op_types())
    assert ours == kernels(ort_optimized_types(model, tmp_path)) == ["QGemm", "QGemm"]
    x_in = saturating_input((3, 12), 4)
    want = ort_session(model).run(None, {"x": x_in})[0]
    assert np.array_equal(bits(InferenceSession(model).run(None, {"x": x_in})[0]), bits(want))


def test_concat_of_branches_with_different_scales_matches_ort(tmp_path):
    b = Builder(9)
    x = b.qdq("x", 0.02)
    w1, s1 = b.weight((4, 3, 1, 1), 0)
    w2, s2 = b.weight((6, 3, 3, 3), 0)
    x2 = b.qdq("x", 0.02)
    y1 = b.qdq(b.op("Conv", [x, w1, b.bias(0.02, s1, 4)]), 0.07)
    y2 = b.qdq(b.op("Conv", [x2, w2, b.bias(0.02, s2, 6)], pads=[1, 1, 1, 1]), 0.031)
    y = b.qdq(b.op("Concat", [y1, y2], axis=1), 0.05)
    model = b.model([2, 3, 5, 5], [y])
    ours = kernels(InferenceSession(model).plan().op_types())
    assert ours == kernels(ort_optimized_types(model, tmp_path))
    assert ours == ["QLinearConv", "QLinearConv", "QLinearConcat"]
    x_in = saturating_input((2, 3, 5, 5), 9)
    want = ort_session(model).run(None, {"x": x_in})[0]
    assert np.array_equal(bits(InferenceSession(model).run(None, {"x": x_in})[0]), bits(want))


def _float_model(rng):
    def c(name, arr):
        inits.append(nh.from_array(np.asarray(arr, F32), name))
        return name

    inits: list = []
    nodes = [
        h.make_node("Conv", ["x", c("w1", rng.normal(0, .3, (8, 3, 3, 3))),
                             c("b1", rng.normal(0, .1, 8))], ["c1"], pads=[1, 1, 1, 1]),
        h.make_node("Relu", ["c1"], ["r1"]),
        h.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node("Conv", ["p1", c("w2", rng.normal(0, .2, (8, 8, 3, 3))),
                             c("b2", rng.normal(0, .1, 8))], ["c2"], pads=[1, 1, 1, 1]),
        h.make_node("Add", ["c2", "p1"], ["a"]),
        h.make_node("Relu", ["a"], ["r2"]),
        h.make_node("Conv", ["r2", c("w3", rng.normal(0, .2, (16, 8, 1, 1))),
                             c("b3", rng.normal(0, .1, 16))], ["c3"]),
        h.make_node("Sigmoid", ["c3"], ["s3"]),
        h.make_node("GlobalAveragePool", ["s3"], ["g"]),
        h.make_node("Flatten", ["g"], ["f"]),
        h.make_node("Gemm", ["f", c("w4", rng.normal(0, .3, (10, 16))),
                             c("b4", rng.normal(0, .1, 10))], ["y"], transB=1),
    ]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 16, 16])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 10])], initializer=inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("activation", ["QUInt8", "QInt8"])
def test_models_from_onnxruntime_quantizer_match_ort(activation, tmp_path):
    """QDQ models written by ``onnxruntime.quantization.quantize_static``: with uint8
    activations everything fuses; with int8 ones the shortcut's quantizer feeds two nodes,
    stays int8, and the residual block runs in float, as in ORT."""
    quant = pytest.importorskip("onnxruntime.quantization")
    rng = np.random.default_rng(0)
    onnx.save(_float_model(rng), str(tmp_path / "float.onnx"))
    batches = iter([{"x": rng.normal(0, 1, (1, 3, 16, 16)).astype(F32)} for _ in range(4)])

    class Reader(quant.CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    quant.quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "q.onnx"), Reader(),
                          quant_format=quant.QuantFormat.QDQ,
                          activation_type=getattr(quant.QuantType, activation),
                          weight_type=quant.QuantType.QInt8, per_channel=True)
    model = (tmp_path / "q.onnx").read_bytes()
    ours = kernels(InferenceSession(model).plan().op_types())
    assert ours == kernels(ort_optimized_types(model, tmp_path))
    assert ("Conv" in ours) == (activation == "QInt8")
    ref = ort_session(model)
    for seed in range(3):
        x = np.random.default_rng(seed).normal(0, 1.5, (1, 3, 16, 16)).astype(F32)
        want = ref.run(None, {"x": x})[0]
        assert np.array_equal(bits(InferenceSession(model).run(None, {"x": x})[0]), bits(want))


def test_dynamically_quantized_model_matches_ort(tmp_path):
    """``quantize_dynamic`` writes DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul;
    ORT fuses it (with the bias Add) into DynamicQuantizeMatMul."""
    quant = pytest.importorskip("onnxruntime.quantization")
    rng = np.random.default_rng(1)
    inits = [nh.from_array(rng.normal(0, .3, (32, 16)).astype(F32), "w1"),
             nh.from_array(rng.normal(0, .1, 16).astype(F32), "b1"),
             nh.from_array(rng.normal(0, .3, (16, 8)).astype(F32), "w2")]
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"]), h.make_node("Add", ["m1", "b1"], ["a1"]),
             h.make_node("Relu", ["a1"], ["r"]), h.make_node("MatMul", ["r", "w2"], ["y"])]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, ["n", 32])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], initializer=inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "float.onnx"))
    quant.quantize_dynamic(str(tmp_path / "float.onnx"), str(tmp_path / "q.onnx"),
                           weight_type=quant.QuantType.QInt8)
    model = (tmp_path / "q.onnx").read_bytes()
    types = InferenceSession(model).plan().op_types()
    assert types == ort_optimized_types(model, tmp_path) == [
        "DynamicQuantizeMatMul", "Relu", "DynamicQuantizeMatMul"]
    x = rng.normal(0, 2, (64, 32)).astype(F32)
    want = ort_session(model).run(None, {"x": x})[0]
    assert np.array_equal(bits(InferenceSession(model).run(None, {"x": x})[0]), bits(want))
