"""mobilenet_v1(scale=0.25) at small resolution, and the seed example (examples/seed_ptq.py)."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
from paddle.vision.models import mobilenet_v1  # noqa: E402
from refquant.adapters.paddle import PTQ, QuantConfig  # noqa: E402
from refquant.adapters.paddle import observers as A  # noqa: E402
from refquant.adapters.paddle.layers import QuantedConv2D, QuantedLinear  # noqa: E402

from refquant.observers.channel_wise import AbsMaxChannelWiseWeightObserver  # noqa: E402
from refquant.observers.kl import KLObserver  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed_ptq.py"


def test_mobilenet_kl_scales_equal_reference_and_jit_save(tmp_path):
    paddle.seed(0)
    model = mobilenet_v1(scale=0.25, num_classes=10)
    model.eval()
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((2, 3, 32, 32)).astype(np.float32) for _ in range(2)]
    # capture the inputs of every Conv2D / Linear of the float model
    convs = [(n, m) for n, m in model.named_sublayers()
             if isinstance(m, (paddle.nn.Conv2D, paddle.nn.Linear))]
    seen: dict[str, list[np.ndarray]] = {n: [] for n, _ in convs}
    hooks = [m.register_forward_pre_hook(
        lambda layer, inp, n=n: seen[n].append(inp[0].numpy().copy())) for n, m in convs]
    for b in batches:
        model(paddle.to_tensor(b))
    for h in hooks:
        h.remove()

    cfg = QuantConfig(activation=A.KLObserver(bins_count=256),
                      weight=A.AbsMaxChannelWiseWeightObserver())
    ptq = PTQ(cfg)
    q = ptq.quantize(model)
    for b in batches:
        q(paddle.to_tensor(b))
    qlayers = dict(q.named_sublayers())
    checked = 0
    for name, float_layer in convs[::4]:  # a spread of layers keeps the test short
        ql = qlayers[name]
        assert isinstance(ql, (QuantedConv2D, QuantedLinear))
        ref = KLObserver(bins_count=256)
        for arr in seen[name]:
            ref.observe(arr)
        got = ql.activation_quanter.qparams().scale
        assert np.array_equal(np.float32(got).view(np.uint32),
                              np.float32(ref.compute().scale).view(np.uint32)), name
        wref = AbsMaxChannelWiseWeightObserver(axis=ql.weight_quanter.quant_axis())
        wref.observe(float_layer.weight.numpy())
        assert np.array_equal(ql.weight_quanter.qparams().scale, wref.compute().scale)
        checked += 1
    assert checked >= 3
    c = ptq.convert(q, format="portable")  # jit.load on CPU: docs/adapter.md
    path = str(tmp_path / "mbv1")
    paddle.jit.save(c, path, input_spec=[paddle.static.InputSpec([None, 3, 32, 32], "float32")])
    loaded = paddle.jit.load(path)
    for n in (1, 3):
        x = paddle.to_tensor(rng.standard_normal((n, 3, 32, 32)).astype(np.float32))
        a, b = c(x).numpy(), loaded(x).numpy()
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_seed_example_runs_and_maps_the_custom_layer():
    mod = runpy.run_path(str(EXAMPLE))
    converted = mod["main"](scale=0.25, resolution=32, batch=2, ptq_step=1)
    head = converted.head
    assert isinstance(head, QuantedLinear) and head.converted
    assert isinstance(head.activation_quanter, paddle.nn.quant.format.LinearQuanterDequanter)
    assert isinstance(converted.backbone.fc, QuantedLinear)
    # conv layers were not configured (type config on Linear and the stand-in only)
    assert not any(isinstance(m, QuantedConv2D) for m in converted.sublayers())
    out = converted(paddle.randn([2, 3, 32, 32]))
    assert out.shape == [2, 10]


def test_custom_layer_channel_axis_inferred_from_layout():
    mod = runpy.run_path(str(EXAMPLE))
    standin = mod["ColumnParallelLinearStandIn"](6, 4)
    cfg = QuantConfig(weight=A.AbsMaxChannelWiseWeightObserver())
    cfg.add_qat_layer_mapping(mod["ColumnParallelLinearStandIn"], QuantedLinear)
    model = paddle.nn.Sequential(standin)
    model.eval()
    q = PTQ(cfg).quantize(model)
    assert q[0].weight_quanter.quant_axis() == 1
    q(paddle.randn([2, 6]))
    want = np.max(np.abs(standin.weight.numpy()), axis=0)
    assert np.array_equal(q[0].weight_quanter.qparams().scale, want)
