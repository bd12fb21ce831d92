"""Group-wise, 4-bit and asymmetric parameters through ``convert`` and ``export_onnx``.

Expected values come from sources other than the adapter's layers:

* group-wise scales: NumPy abs-max per group of the float weight (and
  :class:`refquant.observers.GroupWiseWeightObserver`, the reference observer);
* group-wise codes / dequantized weights: Paddle 3.3.1's own ``LinearQuanter`` /
  ``LinearDequanter`` (``python/paddle/nn/quant/format.py``, 2-D-scale path) run in the test,
  and a NumPy evaluation of that arithmetic (``clip(RNE(fl(fl(w / S) * qmax)) + 0)``,
  ``fl(fl(q / qmax) * S)``);
* ONNX graphs: :mod:`refquant.kernels.onnx` (checked against onnx.reference and ORT by
  ``tests/test_kernels_onnx.py``) and ONNX Runtime 1.32 itself;
* asymmetric QDQ: :func:`refquant.kernels.onnx.quantize_linear` /
  :func:`~refquant.kernels.onnx.dequantize_linear` with ``QParams.to_onnx()``;
* layer counts: Paddle 3.3.1's own ``PTQ.convert`` of the same model.
"""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("paddle2onnx")

from onnx import numpy_helper  # noqa: E402
from paddle.nn.quant.format import (  # noqa: E402
    LinearDequanter,
    LinearQuanter,
    LinearQuanterDequanter,
)
from refquant.adapters.paddle import PTQ, QuantConfig, export_onnx  # noqa: E402
from refquant.adapters.paddle import observers as A  # noqa: E402

from refquant.kernels import onnx as ok  # noqa: E402
from refquant.observers import GroupWiseWeightObserver as RefGroupWise  # noqa: E402

F32 = np.float32
SPEC = [paddle.static.InputSpec([None, 256], "float32", "x")]


class MLP(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = paddle.nn.Linear(256, 128)
        self.relu = paddle.nn.ReLU()
        self.fc2 = paddle.nn.Linear(128, 16)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def _model(seed: int = 3) -> MLP:
    paddle.seed(seed)
    m = MLP()
    m.eval()
    return m


def _x(seed: int, n: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 256)).astype(F32)


def _calibrated(m, config, batches=2):
    ptq = PTQ(config)
    q = ptq.quantize(m)
    with paddle.no_grad():
        for k in range(batches):
            q(paddle.to_tensor(_x(k)))
    return ptq, q


def _bits(a):
    return np.ascontiguousarray(np.asarray(a, F32)).view(np.uint32)


def _ort(path, outputs=()):
    proto = onnx.load(str(path))
    for name in outputs:
        proto.graph.output.append(onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _group_ref(w: np.ndarray, S: np.ndarray, G: int, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """NumPy evaluation of Paddle's LinearQuanter / LinearDequanter 2-D-scale arithmetic."""
    s = np.repeat(S.astype(F32), G, axis=0)
    t = ((w / s).astype(F32) * F32(qmax)).astype(F32)
    q = (np.clip(np.rint(t) + F32(0), -qmax - 1, qmax)).astype(F32)
    y = ((q / F32(qmax)).astype(F32) * s).astype(F32)
    return q, y


def _paddle_group(w: np.ndarray, S: np.ndarray, G: int, bits: int):
    """Paddle 3.3.1's own LinearQuanter / LinearDequanter with the same 2-D scales."""
    zp = np.zeros_like(S)
    quanter = LinearQuanter(paddle.to_tensor(S), paddle.to_tensor(zp), bit_length=bits,
                            group_size=G)
    deq = LinearDequanter(paddle.to_tensor(S), paddle.to_tensor(zp), bit_length=bits,
                          group_size=G)
    q = quanter(paddle.to_tensor(w))
    return q.numpy(), deq(q).numpy()


# ---------------------------------------------------------------------------------------
# group-wise convert
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["canonical", "paddleslim"])
@pytest.mark.parametrize("remain_weight", [False, True])
def test_groupwise_4bit_convert_matches_reference(profile, remain_weight):
    G = 64
    m = _model()
    w_float = {n: getattr(m, n).weight.numpy().copy() for n in ("fc1", "fc2")}
    ptq, q = _calibrated(m, QuantConfig(activation=None, weight=A.GroupWiseWeightObserver(
        quant_bits=4, group_size=G, profile=profile)))
    c = ptq.convert(q, remain_weight=remain_weight)
    x = _x(11)
    got = c(paddle.to_tensor(x)).numpy()
    h = x
    for name in ("fc1", "fc2"):
        w = w_float[name]
        S = np.abs(w).reshape(-1, G, w.shape[1]).max(axis=1)  # abs-max per group
        ref = RefGroupWise(4, G, profile=profile)
        ref.observe(w)
        assert np.array_equal(_bits(ref.compute().scale), _bits(S))
        codes, deq = _group_ref(w, S, G, 7)
        p_codes, p_deq = _paddle_group(w, S, G, 4)
        assert np.array_equal(_bits(codes), _bits(p_codes))
        assert np.array_equal(_bits(deq), _bits(p_deq))
        layer = getattr(c, name)
        qdq = layer.weight_quanter
        assert isinstance(qdq, LinearQuanterDequanter)
        assert isinstance(qdq._dequanter, LinearDequanter)
        assert (qdq._quanter is None) != remain_weight
        stored = layer.weight.numpy()
        assert np.array_equal(_bits(stored), _bits(w if remain_weight else codes))
        assert np.array_equal(_bits(qdq(layer.weight).numpy()), _bits(deq))
        lin = paddle.nn.functional.linear(paddle.to_tensor(h), paddle.to_tensor(deq),
                                          layer.bias)
        h = lin.numpy() if name == "fc2" else np.maximum(lin.numpy(), F32(0))
    assert np.array_equal(_bits(got), _bits(h))


def test_groupwise_layer_counts_equal_paddles_own_ptq(tmp_path):
    """Paddle 3.3.1's own PTQ with its GroupWiseWeightObserver (group 128) and the adapter's
    give the same converted layers and the same integer codes. (Saved programs differ on
    purpose: Paddle saves a ``dequantize_linear`` with a 2-D scale, which its CPU kernel does
    not compute group-wise; the adapter saves the group arithmetic as elementwise ops.)"""
    from paddle.quantization import PTQ as PaddlePTQ
    from paddle.quantization import QuantConfig as PaddleConfig
    from paddle.quantization.observers import GroupWiseWeightObserver as PaddleGW

    counts, codes = [], []
    for kind in ("paddle", "adapter"):
        m = _model()
        if kind == "paddle":
            ptq = PaddlePTQ(PaddleConfig(activation=None, weight=PaddleGW(quant_bits=4)))
            q = ptq.quantize(m)
            q(paddle.to_tensor(_x(0)))
        else:
            ptq, q = _calibrated(m, QuantConfig(activation=None, weight=A.GroupWiseWeightObserver(
                quant_bits=4, group_size=128)), batches=1)
        c = ptq.convert(q)
        subs = c.sublayers()
        counts.append([sum(isinstance(s, t) for s in subs)
                       for t in (LinearQuanterDequanter, LinearQuanter, LinearDequanter)])
        codes.append([c.fc1.weight.numpy(), c.fc2.weight.numpy()])
    assert counts[0] == counts[1] == [2, 0, 2]
    for a, b in zip(codes[0], codes[1], strict=True):
        assert np.array_equal(_bits(a), _bits(b))


# ---------------------------------------------------------------------------------------
# 4-bit end to end: calibrate -> convert -> export_onnx (opset 21) -> ORT
# ---------------------------------------------------------------------------------------
def _dq_outputs(proto) -> list[str]:
    return [n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"]


def _check_against_reference(path, entries, x, converted):
    """Every DequantizeLinear output of ORT equals refquant.kernels.onnx on the stored codes
    (bit for bit); returns (max |ORT - Paddle converted|, bit-identical count, size)."""
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    nodes = {n.output[0]: n for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    names = list(nodes)
    outs = _ort(path, names).run(None, {"x": x})
    by_name = dict(zip(["y", *names], outs, strict=True))
    for e in entries:
        if e.kind != "weight":
            continue
        node = nodes[e.tensor]
        attrs = {a.name: a.i for a in node.attribute}
        codes = inits[node.input[0]]
        want = ok.dequantize_linear(codes, inits[node.input[1]], inits[node.input[2]],
                                    axis=attrs.get("axis", 1),
                                    block_size=attrs.get("block_size", 0))
        assert np.array_equal(_bits(by_name[e.tensor]), _bits(want)), e.layer
    y_ort = outs[0]
    y_pd = converted(paddle.to_tensor(x)).numpy()
    return float(np.abs(y_ort - y_pd).max()), int((_bits(y_ort) == _bits(y_pd)).sum()), y_pd.size


@pytest.mark.parametrize("profile", ["canonical", "paddleslim"])
def test_groupwise_4bit_exports_int4_blocked_and_runs_in_ort(profile, tmp_path):
    G = 64
    ptq, q = _calibrated(_model(), QuantConfig(activation=None, weight=A.GroupWiseWeightObserver(
        quant_bits=4, group_size=G, profile=profile)))
    c = ptq.convert(q)
    path = tmp_path / "gw.onnx"
    entries = export_onnx(c, path, SPEC)
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 21
    dqs = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dqs) == 2 and "QuantizeLinear" not in [n.op_type for n in proto.graph.node]
    inits = {t.name: t for t in proto.graph.initializer}
    for n, e in zip(dqs, entries, strict=True):
        attrs = {a.name: a.i for a in n.attribute}
        assert attrs == {"axis": 0, "block_size": G}
        assert inits[n.input[0]].data_type == onnx.TensorProto.INT4
        assert inits[n.input[2]].data_type == onnx.TensorProto.INT4
        layer = getattr(c, e.layer.split(".")[0])
        assert np.array_equal(numpy_helper.to_array(inits[n.input[0]]).astype(F32),
                              layer.weight.numpy())  # the codes convert() stored
        S = e.qparams.scale
        assert np.array_equal(_bits(numpy_helper.to_array(inits[n.input[1]])),
                              _bits((S / F32(7)).astype(F32)))
    diff, same, size = _check_against_reference(path, entries, _x(21), c)
    # ORT dequantizes q * fl(S / 7), Paddle fl(fl(q / 7) * S): last-bit weight differences
    assert diff < 2e-5, diff
    assert 0 <= same <= size


def _asym_config():
    return QuantConfig(activation=A.HistObserver(quant_bits=8, sign=False, symmetric=False),
                       weight=A.HistObserver(quant_bits=4, sign=False, symmetric=False))


def test_asymmetric_uint4_weights_uint8_activations_convert_and_export(tmp_path):
    ptq, q = _calibrated(_model(), _asym_config())
    aq = q.fc1.activation_quanter.qparams()
    wq = q.fc1.weight_quanter.qparams()
    assert (aq.qmin, aq.qmax, wq.qmin, wq.qmax) == (0, 255, 0, 15)
    c = ptq.convert(q)
    # dygraph: each QDQ is ONNX's QuantizeLinear / DequantizeLinear with QParams.to_onnx()
    x = _x(5)
    ys, zp = aq.to_onnx(np.uint8)
    codes = ok.quantize_linear(x, ys, zp, axis=1)
    want = ok.dequantize_linear(codes, ys, zp)
    got = c.fc1.activation_quanter(paddle.to_tensor(x)).numpy()
    assert np.array_equal(_bits(got), _bits(want))
    w_ys, w_zp = wq.to_onnx(np.uint8)
    w_codes = ok.quantize_linear(_model().fc1.weight.numpy(), w_ys, w_zp, output_dtype="uint4")
    assert np.array_equal(c.fc1.weight.numpy(), w_codes.astype(F32))
    assert isinstance(c.fc1.activation_quanter._quanter, LinearQuanter)
    # export: uint8 activations, uint4 weights with their zero points
    path = tmp_path / "asym.onnx"
    entries = export_onnx(c, path, SPEC)
    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    types = {e.layer: inits[f"{e.layer if e.kind == 'activation' else e.tensor}.zero_point"]
             .data_type for e in entries}
    assert sorted(set(types.values())) == sorted({onnx.TensorProto.UINT8, onnx.TensorProto.UINT4})
    diff, same, size = _check_against_reference(path, entries, _x(22), c)
    assert diff < 1e-3, diff


def test_asymmetric_paddle_form_cannot_be_saved_but_portable_can(tmp_path):
    ptq, q = _calibrated(_model(), _asym_config())
    c = ptq.convert(q)
    with pytest.raises(ValueError, match=r"fc1\.activation_quanter.*format='portable'"):
        paddle.jit.save(c, str(tmp_path / "std"), input_spec=SPEC)
    p = ptq.convert(q, format="portable")
    x = _x(8)
    y = p(paddle.to_tensor(x)).numpy()
    assert np.array_equal(_bits(y), _bits(c(paddle.to_tensor(x)).numpy()))
    paddle.jit.save(p, str(tmp_path / "port"), input_spec=SPEC)
    loaded = paddle.jit.load(str(tmp_path / "port"))
    assert np.array_equal(_bits(loaded(paddle.to_tensor(x)).numpy()), _bits(y))


@pytest.mark.parametrize("weight", ["per_channel", "per_tensor"])
def test_4bit_int4_qdq_export(weight, tmp_path):
    w_obs = (A.AbsMaxChannelWiseWeightObserver(quant_bits=4) if weight == "per_channel"
             else A.AbsmaxObserver(quant_bits=4))
    ptq, q = _calibrated(_model(), QuantConfig(activation=A.AbsmaxObserver(quant_bits=4),
                                               weight=w_obs))
    c = ptq.convert(q)
    path = tmp_path / "int4.onnx"
    entries = export_onnx(c, path, SPEC)
    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    for e in entries:
        base = e.layer if e.kind == "activation" else e.tensor
        assert inits[f"{base}.zero_point"].data_type == onnx.TensorProto.INT4
        assert (e.qparams.axis is None) == (e.kind == "activation" or weight == "per_tensor")
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 21
    diff, same, size = _check_against_reference(path, entries, _x(23), c)
    assert diff < 2e-5, diff


def test_convert_format_is_validated():
    ptq, q = _calibrated(_model(), QuantConfig(activation=A.AbsmaxObserver(),
                                               weight=A.AbsmaxObserver()))
    with pytest.raises(ValueError, match="format.*'onnx'"):
        ptq.convert(q, format="onnx")
    with pytest.raises(ValueError, match="format"):
        ptq.convert(q, format=None)


def test_4bit_conv_model_upgrades_to_opset_21(tmp_path):
    """A convolutional model (Conv, Reshape, Shape, Slice, Concat from paddle2onnx at opset
    13) is raised to opset 21 by ONNX's version converter and runs in ORT."""
    class ConvNet(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv = paddle.nn.Conv2D(1, 8, 3, padding=1)
            self.fc = paddle.nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            return self.fc(paddle.flatten(paddle.nn.functional.relu(self.conv(x)), 1))

    paddle.seed(7)
    m = ConvNet()
    m.eval()
    ptq = PTQ(QuantConfig(activation=A.AbsmaxObserver(quant_bits=4),
                          weight=A.AbsMaxChannelWiseWeightObserver(quant_bits=4)))
    q = ptq.quantize(m)
    rng = np.random.default_rng(1)
    q(paddle.to_tensor(rng.standard_normal((4, 1, 8, 8)).astype(F32)))
    c = ptq.convert(q)
    path = tmp_path / "conv4.onnx"
    entries = export_onnx(c, path, [paddle.static.InputSpec([None, 1, 8, 8], "float32", "x")])
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 21)]
    conv_w = next(e for e in entries if e.layer == "conv.weight_quanter")
    assert conv_w.qparams.axis == 0 and conv_w.qparams.qmax == 7
    x = rng.standard_normal((3, 1, 8, 8)).astype(F32)
    y = _ort(path).run(None, {"x": x})[0]
    assert np.abs(y - c(paddle.to_tensor(x)).numpy()).max() < 2e-5


@pytest.mark.parametrize("fmt", ["paddle", "portable"])
def test_groupwise_converted_model_saves_and_loads_bit_identically(fmt, tmp_path):
    ptq, q = _calibrated(_model(), QuantConfig(activation=None, weight=A.GroupWiseWeightObserver(
        quant_bits=4, group_size=64)))
    c = ptq.convert(q, format=fmt)
    path = str(tmp_path / "gw")
    paddle.jit.save(c, path, input_spec=SPEC)
    loaded = paddle.jit.load(path)
    for n in (1, 7):
        x = paddle.to_tensor(_x(30 + n, n))
        assert np.array_equal(_bits(loaded(x).numpy()), _bits(c(x).numpy()))
