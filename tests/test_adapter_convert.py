"""convert(): QDQ form checked against refquant.kernels.paddle layer by layer; jit.save/load."""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
F = paddle.nn.functional

from refquant.adapters.paddle import PTQ, NotCalibratedError, QuantConfig  # noqa: E402
from refquant.adapters.paddle import observers as A  # noqa: E402
from refquant.adapters.paddle.layers import QuantDequant, QuantedLinear  # noqa: E402

from refquant.kernels import paddle as pk  # noqa: E402


class Net(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.relu = paddle.nn.ReLU()
        self.fc = paddle.nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).flatten(1))


def _calibrated(act=None, weight=None, seed=0):
    paddle.seed(seed)
    m = Net()
    m.eval()
    ptq = PTQ(QuantConfig(activation=act or A.AbsmaxObserver(),
                          weight=weight or A.AbsMaxChannelWiseWeightObserver()))
    q = ptq.quantize(m)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        q(paddle.to_tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32)))
    return m, ptq, q


def _qdq(x, scale, axis=-1):
    s = np.asarray(scale, np.float32)
    q = pk.quantize_linear(x, s, np.zeros_like(s), quant_axis=axis)
    return pk.dequantize_linear(q, s, np.zeros_like(s), quant_axis=axis)


def _bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("remain_weight", [False, True])
def test_converted_model_equals_reference_kernels_layer_by_layer(remain_weight):
    m, ptq, q = _calibrated(A.MSEObserver(), A.AbsMaxChannelWiseWeightObserver())
    sc = {k: np.asarray(v.qparams().scale) for k, v in (
        ("conv_a", q.conv.activation_quanter), ("conv_w", q.conv.weight_quanter),
        ("relu", q.relu._observer), ("fc_a", q.fc.activation_quanter),
        ("fc_w", q.fc.weight_quanter))}
    c = ptq.convert(q, remain_weight=remain_weight)
    x = np.random.default_rng(7).standard_normal((3, 3, 6, 6)).astype(np.float32)
    got = c(paddle.to_tensor(x)).numpy()

    w_conv, w_fc = m.conv.weight.numpy(), m.fc.weight.numpy()
    codes_conv = pk.quantize_linear(w_conv, sc["conv_w"], np.zeros(4, np.float32), quant_axis=0)
    if not remain_weight:  # weights are stored as the kernel's integer codes
        assert np.array_equal(_bits(c.conv.weight.numpy()), _bits(codes_conv))
    else:
        assert np.array_equal(c.conv.weight.numpy(), w_conv)
    h = _qdq(x, sc["conv_a"])
    h = F.conv2d(paddle.to_tensor(h), paddle.to_tensor(_qdq(w_conv, sc["conv_w"], 0)),
                 bias=m.conv.bias, padding=1).numpy()
    h = F.relu(paddle.to_tensor(_qdq(h, sc["relu"]))).numpy().reshape(3, -1)
    want = F.linear(paddle.to_tensor(_qdq(h, sc["fc_a"])),
                    paddle.to_tensor(_qdq(w_fc, sc["fc_w"], 1)), m.fc.bias).numpy()
    assert np.array_equal(_bits(got), _bits(want))


def test_jit_save_load_with_dynamic_batch(tmp_path):
    _, ptq, q = _calibrated(A.KLObserver(bins_count=256), A.MSEChannelWiseWeightObserver())
    c = ptq.convert(q)
    c.eval()
    path = str(tmp_path / "model")
    paddle.jit.save(c, path, input_spec=[paddle.static.InputSpec([None, 3, 6, 6], "float32")])
    loaded = paddle.jit.load(path)
    rng = np.random.default_rng(3)
    for n in (1, 5):
        x = paddle.to_tensor(rng.standard_normal((n, 3, 6, 6)).astype(np.float32) * 3)
        assert np.array_equal(_bits(c(x).numpy()), _bits(loaded(x).numpy()))


def test_paddle_own_convert_fails_on_dynamic_batch(tmp_path):
    # the motivating Paddle 3.3.1 bug: its LinearQuanter bakes the input shape into the program
    from paddle.quantization import PTQ as PaddlePTQ
    from paddle.quantization import QuantConfig as PaddleConfig
    from paddle.quantization.observers import AbsmaxObserver

    paddle.seed(0)
    m = Net()
    m.eval()
    ptq = PaddlePTQ(PaddleConfig(activation=AbsmaxObserver(), weight=AbsmaxObserver()))
    q = ptq.quantize(m)
    q(paddle.randn([2, 3, 6, 6]))
    c = ptq.convert(q)
    with pytest.raises(ValueError, match=r"shape\[0\] = -1"):
        paddle.jit.save(c, str(tmp_path / "p"),
                        input_spec=[paddle.static.InputSpec([None, 3, 6, 6], "float32")])


def test_convert_before_calibration_names_the_layer():
    paddle.seed(0)
    m = Net()
    m.eval()
    ptq = PTQ(QuantConfig(activation=A.MSEObserver(), weight=A.AbsMaxChannelWiseWeightObserver()))
    q = ptq.quantize(m)
    with pytest.raises(NotCalibratedError, match=r"conv\.(weight|activation)_quanter"):
        ptq.convert(q)


def test_convert_refuses_asymmetric_parameters():
    _, ptq, q = _calibrated(A.HistObserver(bins_count=256, symmetric=False))
    with pytest.raises(NotImplementedError, match="zero point"):
        ptq.convert(q)


def test_convert_inplace_and_original_untouched():
    _, ptq, q = _calibrated()
    c = ptq.convert(q)
    assert isinstance(c.conv.activation_quanter, QuantDequant)
    assert not isinstance(q.conv.activation_quanter, QuantDequant)
    same = ptq.convert(q, inplace=True)
    assert same is q and isinstance(q.fc.activation_quanter, QuantDequant)
    assert isinstance(q.fc, QuantedLinear) and q.fc.converted


def test_quantdequant_matches_kernels_per_channel_axis1_and_rejects_bad_scale():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    s = np.abs(rng.standard_normal(4)).astype(np.float32) + 0.1
    out = QuantDequant(s, axis=1)(paddle.to_tensor(w)).numpy()
    assert np.array_equal(_bits(out), _bits(_qdq(w, s, 1)))
    with pytest.raises(ValueError, match="scale"):
        QuantDequant(np.array([1.0, -1.0], np.float32), axis=0)
    with pytest.raises(ValueError, match="axis"):
        QuantDequant(np.ones(3, np.float32), axis=2)
