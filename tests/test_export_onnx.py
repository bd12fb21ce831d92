"""``refquant.adapters.paddle.export_onnx``: converted Paddle model -> ONNX QDQ, run in ORT.

Expected values come from independent sources: the converted Paddle model itself (outputs,
integer weight codes), NumPy abs-max reductions of the float model's weights and of its
layer inputs captured with forward pre-hooks (the observers used are abs-max, so the scale
is ``fl32(max|x|) / fl32(127)`` by definition), ONNX Runtime (outputs of the inserted
nodes), and ``refquant.kernels.onnx`` (checked against ORT by ``test_kernels_onnx.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("paddle2onnx")

import refquant.adapters.paddle as adapter  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from refquant.adapters.paddle import export  # noqa: E402
from refquant.adapters.paddle import observers as obs  # noqa: E402

from refquant.kernels import onnx as ok  # noqa: E402

SPEC = [paddle.static.InputSpec([None, 1, 8, 8], "float32", "image")]


class SmallNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = paddle.nn.Conv2D(1, 8, 3, padding=1)
        self.relu1 = paddle.nn.ReLU()
        self.conv2 = paddle.nn.Conv2D(8, 16, 3, stride=2, padding=1)
        self.fc = paddle.nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = self.relu1(self.conv1(x))
        x = paddle.nn.functional.relu(self.conv2(x))
        return self.fc(paddle.flatten(x, 1))


def _batches(seed: int, n: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def _calibrated(model, ptq, batches):
    q = ptq.quantize(model)
    with paddle.no_grad():
        for b in batches:
            q(paddle.to_tensor(b))
    return q


def _paddle_out(model, x: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def _ort_session(path, extra_outputs=()):
    proto = onnx.load(str(path))
    for name in extra_outputs:
        proto.graph.output.append(onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


def _inits(proto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def _layer_inputs(model, names, batches) -> dict[str, np.ndarray]:
    seen: dict[str, list[np.ndarray]] = {n: [] for n in names}
    subs = dict(model.named_sublayers())
    hooks = [subs[n].register_forward_pre_hook(
        lambda _l, inp, n=n: seen[n].append(inp[0].numpy())) for n in names]
    with paddle.no_grad():
        for b in batches:
            model(paddle.to_tensor(b))
    for h in hooks:
        h.remove()
    return {n: np.concatenate([v.ravel() for v in vals]) for n, vals in seen.items()}


# ---------------------------------------------------------------------------------------
# one module-wide export of three converted models (one paddle2onnx child process)
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    paddle.seed(7)
    model = SmallNet()
    model.eval()
    calib = _batches(1, 3, (8, 1, 8, 8))

    # refquant adapter, global config: Conv/Linear quantized, the ReLU layer observed
    ptq = adapter.PTQ(adapter.QuantConfig(
        activation=obs.AbsmaxObserver(quant_bits=8),
        weight=obs.AbsMaxChannelWiseWeightObserver(quant_bits=8)))
    q = _calibrated(model, ptq, calib)
    conv = ptq.convert(q)
    conv_rw = ptq.convert(q, remain_weight=True)
    conv_port = ptq.convert(q, format="portable")

    # Paddle's own PTQ and observer (per-tensor weights, LinearQuanterDequanter layers)
    from paddle.quantization import PTQ, QuantConfig
    from paddle.quantization.observers import AbsmaxObserver

    pptq = PTQ(QuantConfig(activation=AbsmaxObserver(), weight=AbsmaxObserver()))
    pconv = pptq.convert(_calibrated(model, pptq, calib))

    state_before = {k: v.numpy().copy() for k, v in conv.state_dict().items()}
    types_before = [type(s).__name__ for s in conv.sublayers()]
    out = tmp_path_factory.mktemp("export")
    paths = [out / "adapter.onnx", out / "remain.onnx", out / "paddle.onnx",
             out / "portable.onnx"]
    entries = export.export_onnx_many(
        [(conv, paths[0]), (conv_rw, paths[1]), (pconv, paths[2]), (conv_port, paths[3])],
        SPEC)
    return {
        "float": model, "calib": calib, "conv": conv, "conv_rw": conv_rw, "pconv": pconv,
        "conv_port": conv_port,
        "paths": paths, "entries": entries, "state_before": state_before,
        "types_before": types_before,
    }


def test_models_are_checker_clean_opset13_qdq(exported):
    for path, entries in zip(exported["paths"], exported["entries"], strict=True):
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
        opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        assert opset >= 13
        ops = [n.op_type for n in proto.graph.node]
        acts = [e for e in entries if e.kind == "activation"]
        weights = [e for e in entries if e.kind == "weight"]
        # conv1, conv2, fc inputs (+ the ReLU layer's input under the global config)
        assert ops.count("QuantizeLinear") == len(acts) >= 3
        assert ops.count("DequantizeLinear") == len(acts) + len(weights)
        assert len(weights) == 3
        assert "Mul" not in ops  # every marker was replaced
        inits = _inits(proto)
        for e in weights:
            assert inits[f"{e.tensor}.quantized"].dtype == np.int8
            assert inits[f"{e.tensor}.zero_point"].dtype == np.int8
            assert e.tensor not in inits  # no float copy of a quantized weight is left


def test_observe_wrapper_of_relu_layer_is_exported(exported):
    layers = {e.layer for e in exported["entries"][0] if e.kind == "activation"}
    assert layers == {"conv1.activation_quanter", "relu1._observer",
                      "conv2.activation_quanter", "fc.activation_quanter"}


def test_activation_scales_equal_abs_max_of_captured_inputs(exported):
    """y_scale == fl32(max|x|) / fl32(127), x the layer's input over the calibration data."""
    names = ["conv1", "relu1", "conv2", "fc"]
    captured = _layer_inputs(exported["float"], names, exported["calib"])
    for path, entries in zip(exported["paths"][::2], exported["entries"][::2], strict=True):
        inits = _inits(onnx.load(str(path)))
        for e in entries:
            if e.kind != "activation":
                continue
            layer = e.layer.split(".")[0]
            expected = np.float32(np.max(np.abs(captured[layer]))) / np.float32(127)
            got = inits[f"{e.layer}.scale"]
            assert got.shape == () and got.dtype == np.float32
            assert got.view(np.uint32) == np.asarray(expected, np.float32).view(np.uint32), e
            assert inits[f"{e.layer}.zero_point"] == 0
            # and equal to the QParams' own conversion
            y_scale, y_zp = e.qparams.to_onnx()
            assert y_scale.view(np.uint32) == got.view(np.uint32)


def test_weight_scales_per_output_channel_with_right_axis(exported):
    proto = onnx.load(str(exported["paths"][0]))
    inits = _inits(proto)
    float_model = exported["float"]
    dq_axis = {n.output[0]: next((a.i for a in n.attribute if a.name == "axis"), 1)
               for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    consumers = {i: n.op_type for n in proto.graph.node for i in n.input}
    expect_axis = {"conv1": 0, "conv2": 0, "fc": 1}  # Conv [out,in,kh,kw]; MatMul [in,out]
    for layer, axis in expect_axis.items():
        w = getattr(float_model, layer).weight.numpy()
        reduce = tuple(a for a in range(w.ndim) if a != axis)
        expected = np.abs(w).max(axis=reduce).astype(np.float32) / np.float32(127)
        name = f"{layer}.weight"
        got = inits[f"{name}.scale"]
        assert got.shape == (w.shape[axis],)
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
        assert dq_axis[name] == axis
        assert consumers[name] == ("Conv" if layer.startswith("conv") else "MatMul")


def test_paddle_per_tensor_weights(exported):
    proto = onnx.load(str(exported["paths"][2]))
    inits = _inits(proto)
    for layer in ("conv1", "conv2", "fc"):
        w = getattr(exported["float"], layer).weight.numpy()
        got = inits[f"{layer}.weight.scale"]
        expected = np.float32(np.abs(w).max()) / np.float32(127)
        assert got.shape == ()
        assert got.view(np.uint32) == np.asarray(expected).view(np.uint32)


def test_int8_weights_are_paddles_codes(exported):
    for path, model in ((exported["paths"][0], exported["conv"]),
                        (exported["paths"][2], exported["pconv"])):
        inits = _inits(onnx.load(str(path)))
        for layer in ("conv1", "conv2", "fc"):
            codes = getattr(model, layer).weight.numpy()
            np.testing.assert_array_equal(inits[f"{layer}.weight.quantized"].astype(np.float32),
                                          codes)


def test_remain_weight_exports_the_same_model(exported):
    a = _inits(onnx.load(str(exported["paths"][0])))
    b = _inits(onnx.load(str(exported["paths"][1])))
    for layer in ("conv1", "conv2", "fc"):
        np.testing.assert_array_equal(a[f"{layer}.weight.quantized"],
                                      b[f"{layer}.weight.quantized"])
    x = _batches(3, 1, (16, 1, 8, 8))[0]
    ya = _ort_session(exported["paths"][0]).run(None, {"image": x})[0]
    yb = _ort_session(exported["paths"][1]).run(None, {"image": x})[0]
    np.testing.assert_array_equal(ya.view(np.uint32), yb.view(np.uint32))


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_ort_matches_converted_paddle_model(exported, which):
    model = [exported["conv"], exported["conv_rw"], exported["pconv"],
             exported["conv_port"]][which]
    x = _batches(11, 1, (64, 1, 8, 8))[0]
    y_ort = _ort_session(exported["paths"][which]).run(None, {"image": x})[0]
    y_pd = _paddle_out(model, x)
    assert _cosine(y_ort, y_pd) >= 0.999
    np.testing.assert_array_equal(np.argmax(y_ort, 1), np.argmax(y_pd, 1))


def test_inserted_nodes_match_refquant_onnx_kernels(exported):
    """Each inserted Q/DQ node in ORT equals refquant.kernels.onnx on the same input, exactly."""
    path = exported["paths"][0]
    proto = onnx.load(str(path))
    inits = _inits(proto)
    qnodes = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    dqnodes = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    names = sorted({n.input[0] for n in qnodes} | {n.output[0] for n in qnodes}
                   | {n.output[0] for n in dqnodes})
    sess = _ort_session(path, names)
    x = _batches(5, 1, (32, 1, 8, 8))[0]
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x}),
                   strict=True))
    for n in qnodes:
        xin = got[n.input[0]].copy()
        expected = ok.quantize_linear(xin, inits[n.input[1]], inits[n.input[2]])
        assert got[n.output[0]].dtype == np.int8
        np.testing.assert_array_equal(got[n.output[0]], expected)
        np.testing.assert_array_equal(xin, got[n.input[0]])  # kernel left its input alone
    for n in dqnodes:
        q = got[n.input[0]] if n.input[0] in got else inits[n.input[0]]
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        expected = ok.dequantize_linear(q, inits[n.input[1]], inits[n.input[2]], axis=axis)
        np.testing.assert_array_equal(got[n.output[0]].view(np.uint32),
                                      expected.view(np.uint32))


def test_caller_model_is_not_modified(exported):
    conv = exported["conv"]
    assert [type(s).__name__ for s in conv.sublayers()] == exported["types_before"]
    for k, v in conv.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), exported["state_before"][k])


def test_returned_entries_describe_the_graph(exported):
    proto = onnx.load(str(exported["paths"][0]))
    node_names = {n.name for n in proto.graph.node}
    for e in exported["entries"][0]:
        assert set(e.nodes) <= node_names
        assert e.qparams.bits == 8 and e.qparams.convention == "threshold"


REFERENCE_CASES = [("MSEObserver", "mse", "canonical"), ("KLObserver", "kl", "canonical"),
                   ("HistObserver", "hist", "paddleslim"), ("EMDObserver", "emd", "paddleslim")]


def test_scales_equal_the_numpy_reference_observers(tmp_path):
    """Adapter PTQ + export vs refquant's NumPy observers fed the captured layer inputs.

    The adapter reduces statistics on the device; the reference here sees the raw inputs,
    batch by batch in the same order (the paddleslim profile is order-dependent).
    """
    import importlib

    paddle.seed(21)
    model = SmallNet()
    model.eval()
    calib = _batches(8, 3, (8, 1, 8, 8))
    layers = ["conv1", "conv2", "fc"]
    per_batch = {n: [] for n in layers}
    subs = dict(model.named_sublayers())
    hooks = [subs[n].register_forward_pre_hook(
        lambda _l, inp, n=n: per_batch[n].append(inp[0].numpy())) for n in layers]
    with paddle.no_grad():
        for b in calib:
            model(paddle.to_tensor(b))
    for h in hooks:
        h.remove()

    jobs = []
    for name, _, profile in REFERENCE_CASES:
        cfg = adapter.QuantConfig(activation=None, weight=None)
        cfg.add_type_config([paddle.nn.Conv2D, paddle.nn.Linear],
                            activation=getattr(obs, name)(quant_bits=8, profile=profile),
                            weight=obs.AbsMaxChannelWiseWeightObserver(quant_bits=8))
        ptq = adapter.PTQ(cfg)
        jobs.append((ptq.convert(_calibrated(model, ptq, calib)), tmp_path / f"{name}.onnx"))
    all_entries = export.export_onnx_many(jobs, SPEC)

    for (name, module, profile), (_, path), entries in zip(
            REFERENCE_CASES, jobs, all_entries, strict=True):
        inits = _inits(onnx.load(str(path)))
        cls = getattr(importlib.import_module(f"refquant.observers.{module}"), name)
        for layer in layers:
            ref = cls(quant_bits=8, profile=profile)
            for batch in per_batch[layer]:
                ref.observe(batch)
            expected, _ = ref.compute().to_onnx()
            got = inits[f"{layer}.activation_quanter.scale"]
            assert got.view(np.uint32) == np.asarray(expected, np.float32).view(np.uint32), \
                (name, profile, layer, got, expected)
        assert len([e for e in entries if e.kind == "activation"]) == 3


# ---------------------------------------------------------------------------------------
# mobilenet_v1 (scale 0.25)
# ---------------------------------------------------------------------------------------
def _reinit(model, seed: int) -> None:
    """He-normal convolution/linear weights and non-trivial BatchNorm statistics.

    paddle.vision's default initialisation makes mobilenet_v1's logits ~1e-13, which
    would make any output comparison vacuous; no pretrained weights are available offline.
    """
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if name.endswith("_variance"):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("_mean"):
            v = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1:
            v = rng.uniform(0.5, 1.5, shape) if name.endswith("weight") else \
                rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            v = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        p.set_value(v.astype(np.float32))


def test_mobilenet_v1_025_cosine(tmp_path):
    paddle.seed(0)
    model = paddle.vision.models.mobilenet_v1(scale=0.25)
    model.eval()
    _reinit(model, 0)
    ptq = adapter.PTQ(adapter.QuantConfig(
        activation=obs.AbsmaxObserver(quant_bits=8),
        weight=obs.AbsMaxChannelWiseWeightObserver(quant_bits=8)))
    conv = ptq.convert(_calibrated(model, ptq, _batches(0, 2, (2, 3, 64, 64))))
    path = tmp_path / "mobilenet.onnx"
    entries = export.export_onnx(
        conv, path, [paddle.static.InputSpec([None, 3, 64, 64], "float32", "x")])
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    n_conv = sum(n.op_type == "Conv" for n in proto.graph.node)
    assert sum(e.kind == "weight" for e in entries) == n_conv + 1 == 28  # + the classifier
    x = _batches(9, 1, (4, 3, 64, 64))[0]
    y_ort = _ort_session(path).run(None, {"x": x})[0]
    y_pd = _paddle_out(conv, x)
    assert np.abs(y_pd).max() > 1e-3  # the comparison is not vacuous
    assert _cosine(y_ort, y_pd) >= 0.999


# ---------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_prepared():
    paddle.seed(3)
    model = SmallNet()
    model.eval()
    ptq = adapter.PTQ(adapter.QuantConfig(
        activation=obs.AbsmaxObserver(quant_bits=8),
        weight=obs.AbsMaxChannelWiseWeightObserver(quant_bits=8)))
    return model, ptq, _calibrated(model, ptq, _batches(2, 1, (4, 1, 8, 8)))


def test_unconverted_model_is_rejected(small_prepared, tmp_path):
    _, _, q = small_prepared
    with pytest.raises(ValueError, match="not converted"):
        export.export_onnx(q, tmp_path / "m.onnx", SPEC)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_arguments(small_prepared, tmp_path):
    _, ptq, q = small_prepared
    conv = ptq.convert(q)
    with pytest.raises(TypeError, match="model"):
        export.export_onnx(object(), tmp_path / "m.onnx", SPEC)
    with pytest.raises(TypeError, match="input_spec"):
        export.export_onnx(conv, tmp_path / "m.onnx", [])
    with pytest.raises(TypeError, match="input_spec"):
        export.export_onnx(conv, tmp_path / "m.onnx", "image")


def test_three_bit_activation_grid_is_rejected(tmp_path):
    # ONNX QuantizeLinear saturates to the element type's range: a 3-bit grid [-4, 3] has
    # no exact QuantizeLinear (4-bit export: tests/test_adapter_groupwise.py)
    from paddle.quantization import PTQ, QuantConfig
    from paddle.quantization.observers import AbsmaxObserver

    paddle.seed(4)
    model = SmallNet()
    model.eval()
    ptq = PTQ(QuantConfig(activation=AbsmaxObserver(quant_bits=3),
                          weight=AbsmaxObserver(quant_bits=3)))
    conv = ptq.convert(_calibrated(model, ptq, _batches(2, 1, (4, 1, 8, 8))))
    with pytest.raises(NotImplementedError, match=r"activation grid \[-4, 3\]"):
        export.export_onnx(conv, tmp_path / "m.onnx", SPEC)


def test_portable_and_paddle_forms_export_the_same_graph(exported):
    """``convert(format="portable")`` and the default Paddle form hold the same parameters:
    their ONNX graphs have the same nodes and bit-identical initializers, and ORT gives
    bit-identical outputs."""
    std, port = (onnx.load(str(exported["paths"][k])) for k in (0, 3))
    assert [n.op_type for n in std.graph.node] == [n.op_type for n in port.graph.node]
    a = [numpy_helper.to_array(t) for t in std.graph.initializer]
    b = [numpy_helper.to_array(t) for t in port.graph.initializer]
    assert len(a) == len(b)  # same order; Paddle's deep copies rename float parameters
    for u, v in zip(a, b, strict=True):
        assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()
    x = _batches(9, 1, (5, 1, 8, 8))[0]
    outs = [_ort_session(exported["paths"][k]).run(None, {"image": x})[0] for k in (0, 3)]
    assert outs[0].view(np.uint32).tolist() == outs[1].view(np.uint32).tolist()
    port_layers = [type(s).__name__ for s in exported["conv_port"].sublayers()]
    assert "QuantDequant" in port_layers and "LinearQuanterDequanter" not in port_layers


def test_conv_transpose_is_unsupported(tmp_path):
    class Up(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.up = paddle.nn.Conv2DTranspose(1, 4, 2, stride=2)

        def forward(self, x):
            return self.up(x)

    paddle.seed(5)
    model = Up()
    model.eval()
    ptq = adapter.PTQ(adapter.QuantConfig(
        activation=obs.AbsmaxObserver(quant_bits=8),
        weight=obs.AbsMaxChannelWiseWeightObserver(quant_bits=8)))
    conv = ptq.convert(_calibrated(model, ptq, _batches(2, 1, (2, 1, 8, 8))))
    with pytest.raises(NotImplementedError, match="ConvTranspose"):
        export.export_onnx(conv, tmp_path / "m.onnx", SPEC)
    assert not (tmp_path / "m.onnx").exists()


def test_paddle2onnx_failure_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "nothing.json")
    with pytest.raises(RuntimeError, match="paddle2onnx failed"):
        export._run_paddle2onnx([(missing, missing + ".pdiparams",
                                  str(tmp_path / "x.onnx"), 13)])
