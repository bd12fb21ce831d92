"""QAT through the adapter: forward and backward equal the reference quanters bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from refquant.adapters.paddle import PTQ, QAT, QuantConfig  # noqa: E402
from refquant.adapters.paddle import quanters as Q  # noqa: E402

from refquant import quanters as R  # noqa: E402
from refquant.kernels import paddle as pk  # noqa: E402

PROFILES = ("canonical", "paddleslim")


def _bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


def _data(seed, shape=(4, 6), n=3):
    rng = np.random.default_rng(seed)
    xs = [(rng.standard_normal(shape) * (1 + i)).astype(np.float32) for i in range(n)]
    gs = [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]
    return xs, gs


@pytest.mark.parametrize("profile", PROFILES)
def test_moving_average_abs_max_matches_reference(profile):
    layer = Q.FakeQuanterWithAbsMaxObserver(moving_rate=0.9, profile=profile)._instance(None)
    layer.train()
    ref = R.FakeQuanterWithAbsMaxObserver(moving_rate=0.9, profile=profile)
    xs, gs = _data(0)
    for x, g in zip(xs, gs, strict=True):
        t = paddle.to_tensor(x, stop_gradient=False)
        y = layer(t)
        y.backward(paddle.to_tensor(g))
        want = ref.forward(x)
        assert np.array_equal(_bits(y.numpy()), _bits(want))
        assert np.array_equal(_bits(t.grad.numpy()), _bits(ref.backward(x, g)["x"]))
        assert np.array_equal(_bits(layer.scales().numpy()), _bits(ref.scales()))
    layer.eval()
    ref.eval()
    x = xs[0] * 3
    assert np.array_equal(_bits(layer(paddle.to_tensor(x)).numpy()), _bits(ref.forward(x)))
    assert layer.qparams() == ref.qparams()


@pytest.mark.parametrize("profile", PROFILES)
def test_channel_wise_abs_max_matches_reference(profile):
    conv = paddle.nn.Conv2D(2, 3, 1)
    layer = Q.FakeQuanterChannelWiseAbsMaxObserver(profile=profile)._instance(conv)
    assert layer.quant_axis() == 0
    ref = R.FakeQuanterChannelWiseAbsMaxObserver(quant_axis=0, profile=profile)
    xs, gs = _data(1, shape=(3, 2, 2, 2))
    for x, g in zip(xs, gs, strict=True):
        t = paddle.to_tensor(x, stop_gradient=False)
        y = layer(t)
        y.backward(paddle.to_tensor(g))
        assert np.array_equal(_bits(y.numpy()), _bits(ref.forward(x)))
        assert np.array_equal(_bits(t.grad.numpy()), _bits(ref.backward(x, g)["x"]))
    assert np.array_equal(_bits(layer.scales().numpy()), _bits(ref.scales()))
    lin = paddle.nn.Linear(3, 4)
    assert Q.FakeQuanterChannelWiseAbsMaxObserver()._instance(lin).quant_axis() == 1
    with pytest.raises(ValueError, match="axis"):
        Q.FakeQuanterChannelWiseAbsMaxObserver(quant_axis=2)._instance(
            paddle.nn.Conv2D(2, 3, 1))


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("alpha", [1.5, 100.0])
def test_pact_with_inner_quanter_matches_reference(profile, alpha):
    inner = Q.FakeQuanterWithAbsMaxObserver(profile=profile)
    layer = Q.PACTQuanter(quanter=inner, init_value=alpha, profile=profile)._instance(None)
    ref = R.PACTQuanter(R.FakeQuanterWithAbsMaxObserver(profile=profile), init_value=alpha,
                        profile=profile)
    xs, gs = _data(2)
    for x, g in zip(xs, gs, strict=True):
        t = paddle.to_tensor(x, stop_gradient=False)
        layer.alpha.clear_gradient()
        y = layer(t)
        y.backward(paddle.to_tensor(g))
        want_g = ref.backward(x, g)
        want_y = ref.forward(x)
        assert np.array_equal(_bits(y.numpy()), _bits(want_y))
        assert np.array_equal(_bits(t.grad.numpy()), _bits(want_g["x"]))
        assert np.array_equal(_bits(layer.alpha.grad.numpy().reshape(-1)),
                              _bits(np.asarray(want_g["alpha"]).reshape(-1)))


@pytest.mark.parametrize("signed", [False, True])
def test_canonical_pact_paper_quantizer_matches_reference(signed):
    layer = Q.PACTQuanter(init_value=1.25, signed=signed, quant_bits=4)._instance(None)
    ref = R.PACTQuanter(None, init_value=1.25, signed=signed, quant_bits=4)
    xs, gs = _data(3)
    for x, g in zip(xs, gs, strict=True):
        t = paddle.to_tensor(x, stop_gradient=False)
        layer.alpha.clear_gradient()
        y = layer(t)
        y.backward(paddle.to_tensor(g))
        want_g = ref.backward(x, g)
        assert np.array_equal(_bits(y.numpy()), _bits(ref.forward(x)))
        assert np.array_equal(_bits(t.grad.numpy()), _bits(want_g["x"]))
        assert np.array_equal(_bits(layer.alpha.grad.numpy().reshape(-1)),
                              _bits(np.asarray(want_g["alpha"]).reshape(-1)))


def test_qat_model_trains_and_converts():
    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Linear(6, 4), paddle.nn.ReLU(), paddle.nn.Linear(4, 2))
    model.train()
    cfg = QuantConfig(activation=Q.FakeQuanterWithAbsMaxObserver(),
                      weight=Q.FakeQuanterChannelWiseAbsMaxObserver())
    qat = QAT(cfg)
    q = qat.quantize(model)
    assert q.training
    opt = paddle.optimizer.SGD(0.01, parameters=q.parameters())
    rng = np.random.default_rng(0)
    for _ in range(3):
        loss = q(paddle.to_tensor(rng.standard_normal((5, 6)).astype(np.float32))).square().mean()
        loss.backward()
        opt.step()
        opt.clear_grad()
    q.eval()
    c = qat.convert(q)
    assert isinstance(c[0].activation_quanter, paddle.nn.quant.format.LinearQuanterDequanter)
    x = rng.standard_normal((3, 6)).astype(np.float32)
    s_act = q[0].activation_quanter.scales().numpy().reshape(())
    s_w = q[0].weight_quanter.scales().numpy()
    w = q[0].weight.numpy()
    qx = pk.dequantize_linear(pk.quantize_linear(x, s_act, np.zeros((), np.float32)),
                              s_act, np.zeros((), np.float32))
    qw = pk.dequantize_linear(pk.quantize_linear(w, s_w, np.zeros(4, np.float32), quant_axis=1),
                              s_w, np.zeros(4, np.float32), quant_axis=1)
    want = paddle.nn.functional.linear(paddle.to_tensor(qx), paddle.to_tensor(qw),
                                       q[0].bias).numpy()
    got = c[0](paddle.to_tensor(x)).numpy()
    assert np.array_equal(_bits(got), _bits(want))


def test_quanter_factories_validate_and_name_layers():
    with pytest.raises(ValueError, match="moving_rate"):
        Q.FakeQuanterWithAbsMaxObserver(moving_rate=1.5)
    with pytest.raises(TypeError, match="quanter"):
        Q.PACTQuanter(profile="paddleslim")
    for name in ("FakeQuanterWithAbsMaxObserver", "FakeQuanterChannelWiseAbsMaxObserver",
                 "PACTQuanter"):
        fac = getattr(Q, name)
        assert fac._layer.__name__ == name + "Layer"
        assert issubclass(fac, paddle.quantization.factory.QuanterFactory)
    layer = Q.FakeQuanterWithAbsMaxObserver()._instance(paddle.nn.ReLU())
    with pytest.raises(ValueError, match="NaN"):
        layer(paddle.to_tensor(np.array([np.nan], np.float32)))
    assert PTQ  # PTQ and QAT share convert


def _lsq_run(layer, ref, xs, gs, params):
    for i, (x, g) in enumerate(zip(xs, gs, strict=True)):
        t = paddle.to_tensor(x, stop_gradient=False)
        for p in params.values():
            p.clear_gradient()
        y = layer(t)
        want_y = ref.forward(x)
        y.backward(paddle.to_tensor(g))
        want = ref.backward(x, g)
        assert np.array_equal(_bits(y.numpy()), _bits(want_y)), i
        assert np.array_equal(_bits(t.grad.numpy()), _bits(want["x"])), i
        for key, p in params.items():
            assert np.array_equal(_bits(p.grad.numpy().reshape(-1)),
                                  _bits(np.asarray(want[key]).reshape(-1))), (i, key)
        for key, p in params.items():
            assert np.array_equal(_bits(p.numpy().reshape(-1)),
                                  _bits(np.asarray(ref.state[key]).reshape(-1))), (i, key)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("per_channel", [False, True])
def test_weight_lsq_matches_reference(profile, per_channel):
    conv = paddle.nn.Conv2D(3, 4, 2)
    kw = {"per_channel": per_channel, "batch_init": 2}
    layer = Q.WeightLSQplusQuanter(profile=profile, **kw)._instance(conv)
    extra = {"channel_num": 4} if per_channel else {}
    ref = R.WeightLSQplusQuanter(profile=profile, **kw, **extra)
    rng = np.random.default_rng(4)
    xs = [(rng.standard_normal((4, 3, 2, 2)) * (0.5 + i)).astype(np.float32) for i in range(3)]
    gs = [rng.standard_normal((4, 3, 2, 2)).astype(np.float32) for _ in range(3)]
    _lsq_run(layer, ref, xs, gs, {"scale": layer.scale})
    assert layer.qparams() == ref.qparams()


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("symmetric", [True, False])
def test_act_lsq_matches_reference(profile, symmetric):
    layer = Q.ActLSQplusQuanter(profile=profile, symmetric=symmetric,
                                batch_init=2)._instance(None)
    ref = R.ActLSQplusQuanter(profile=profile, symmetric=symmetric, batch_init=2)
    xs, gs = _data(5, shape=(3, 8))
    params = {"scale": layer.scale}
    if not symmetric:
        params["beta"] = layer.beta
    _lsq_run(layer, ref, xs, gs, params)
    assert layer.qparams() == ref.qparams()


def test_lsq_qat_model_converts_with_threshold_of_the_step():
    paddle.seed(1)
    model = paddle.nn.Sequential(paddle.nn.Linear(6, 4))
    model.train()
    qat = QAT(QuantConfig(activation=Q.ActLSQplusQuanter(batch_init=1),
                          weight=Q.WeightLSQplusQuanter(per_channel=True, batch_init=1)))
    q = qat.quantize(model)
    q(paddle.randn([5, 6]))
    q.eval()
    c = qat.convert(q, format="portable")
    s_w = q[0].weight_quanter.qparams()
    assert s_w.axis == 1 and s_w.convention == "step"
    want = (s_w.scale * np.float32(127)).astype(np.float32)
    assert np.array_equal(_bits(c[0].weight_quanter.scale.numpy()), _bits(want))


@pytest.mark.parametrize("signed", [False, True])
def test_canonical_pact_on_model_input_trains(signed):
    """PACT on the model's input (a tensor without gradient): the backward pass gives alpha
    its gradient and nothing to the input (a PyLayer must return None there)."""
    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Linear(6, 4))
    model.train()
    pact = Q.PACTQuanter(init_value=1.5, signed=signed)
    q = QAT(QuantConfig(activation=pact)).quantize(model)
    x = paddle.to_tensor(np.linspace(-2, 2, 12, dtype=np.float32).reshape(2, 6))
    q(x).sum().backward()
    alpha = q[0].activation_quanter.alpha
    assert alpha.grad is not None and x.grad is None


def _qat_linear(act, weight, seed=0):
    paddle.seed(seed)
    model = paddle.nn.Sequential(paddle.nn.Linear(6, 4))
    model.train()
    return QAT(QuantConfig(activation=act, weight=weight)).quantize(model)


@pytest.mark.parametrize("signed", [False, True])
def test_traced_paper_pact_equals_dygraph(signed, tmp_path):
    q = _qat_linear(Q.PACTQuanter(init_value=1.25, signed=signed),
                    Q.FakeQuanterChannelWiseAbsMaxObserver())
    x = paddle.to_tensor(np.linspace(-2, 2, 30, dtype=np.float32).reshape(5, 6))
    q(x).sum().backward()
    q.eval()
    want = q(x).numpy()
    path = str(tmp_path / "pact")
    paddle.jit.save(q, path, input_spec=[paddle.static.InputSpec([None, 6], "float32")])
    got = paddle.jit.load(path)(x).numpy()
    assert np.array_equal(_bits(got), _bits(want))


def test_untrained_lsq_refuses_to_trace_and_dtype_is_checked(tmp_path):
    q = _qat_linear(Q.ActLSQplusQuanter(), Q.WeightLSQplusQuanter())
    q.eval()
    with pytest.raises(ValueError, match="ActLSQplusQuanterLayer of Linear .* cannot be traced"):
        paddle.jit.save(q, str(tmp_path / "lsq"),
                        input_spec=[paddle.static.InputSpec([None, 6], "float32")])
    q = _qat_linear(Q.FakeQuanterWithAbsMaxObserver(), None)
    with pytest.raises(TypeError, match="must be float32"):
        paddle.jit.save(q, str(tmp_path / "f64"),
                        input_spec=[paddle.static.InputSpec([None, 6], "float64")])
