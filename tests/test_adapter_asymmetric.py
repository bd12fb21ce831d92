"""Unsigned / asymmetric parameters (canonical profile) through ``convert``.

Each case calibrates (or trains) a quantizer whose ``qparams()`` has a zero point or an
unsigned grid, converts in both formats and checks the converted quant-dequant against ONNX's
``QuantizeLinear`` / ``DequantizeLinear`` as :mod:`refquant.kernels.onnx` computes them with
``QParams.to_onnx()`` (an independent formulation, checked against ORT by
``tests/test_kernels_onnx.py``). Paddle's ``quantize_linear`` / ``dequantize_linear`` ops
cannot express a zero point, so ``paddle.jit.save`` of the default (Paddle) form must raise
``ValueError`` naming the layer, and the portable form must save and reload bit-identically.
"""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from paddle.nn.quant.format import LinearDequanter, LinearQuanter  # noqa: E402
from refquant.adapters.paddle import PTQ, QAT, QuantConfig  # noqa: E402
from refquant.adapters.paddle import observers as A  # noqa: E402
from refquant.adapters.paddle import quanters as Q  # noqa: E402

from refquant.kernels import onnx as ok  # noqa: E402

F32 = np.float32
SPEC = [paddle.static.InputSpec([None, 8], "float32")]


def _bits(a):
    return np.ascontiguousarray(np.asarray(a, F32)).view(np.uint32)


def _data(seed: int, n: int = 16) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, 8)) + 0.7).astype(F32)


def _prepared(case: str):
    paddle.seed(2)
    model = paddle.nn.Sequential(paddle.nn.Linear(8, 4))
    w_obs = A.AbsMaxChannelWiseWeightObserver()
    if case == "lsq_plus":
        model.train()
        algo = QAT(QuantConfig(activation=Q.ActLSQplusQuanter(symmetric=False, batch_init=1),
                               weight=w_obs))
        q = algo.quantize(model)
        q(paddle.to_tensor(_data(0)))
        q.eval()
        return algo, q
    model.eval()
    kw = {"hist_unsigned": {"sign": False}, "hist_asym": {"symmetric": False},
          "hist_unsigned_asym": {"sign": False, "symmetric": False}}[case]
    algo = PTQ(QuantConfig(activation=A.HistObserver(bins_count=256, **kw), weight=w_obs))
    q = algo.quantize(model)
    for k in range(2):
        q(paddle.to_tensor(_data(k)))
    return algo, q


@pytest.mark.parametrize("case", ["hist_unsigned", "hist_asym", "hist_unsigned_asym",
                                  "lsq_plus"])
def test_asymmetric_activation_converts_with_zero_point(case, tmp_path):
    algo, q = _prepared(case)
    qp = q[0].activation_quanter.qparams()
    assert qp.qmin == 0 or np.any(qp.zero_point != 0)  # really asymmetric or unsigned
    ys, zp = qp.to_onnx(np.uint8 if qp.qmin == 0 else np.int8)
    x = _data(9) * F32(1.5)
    want = ok.dequantize_linear(ok.quantize_linear(x, ys, zp), ys, zp)
    std = algo.convert(q)
    port = algo.convert(q, format="portable")
    qdq = std[0].activation_quanter
    assert isinstance(qdq._quanter, LinearQuanter) and isinstance(qdq._dequanter, LinearDequanter)
    for part in (qdq._quanter, qdq._dequanter):  # Paddle's attributes hold the zero point
        assert np.array_equal(part._zero_point.numpy(), zp.astype(F32))
    for model in (std, port):
        got = model[0].activation_quanter(paddle.to_tensor(x)).numpy()
        assert np.array_equal(_bits(got), _bits(want))
    with pytest.raises(ValueError, match=r"'0\.activation_quanter'.*format='portable'"):
        paddle.jit.save(std, str(tmp_path / "std"), input_spec=SPEC)
    paddle.jit.save(port, str(tmp_path / "port"), input_spec=SPEC)
    loaded = paddle.jit.load(str(tmp_path / "port"))
    xt = paddle.to_tensor(x)
    assert np.array_equal(_bits(loaded(xt).numpy()), _bits(port(xt).numpy()))
    assert np.array_equal(_bits(std(xt).numpy()), _bits(port(xt).numpy()))


def test_paddleslim_profile_keeps_quirk_61():
    """profile="paddleslim": PaddleSlim's convert uses the scale as a signed threshold and
    ignores the zero point (docs/divergences.md Q61), so no affine arithmetic appears."""
    paddle.seed(2)
    model = paddle.nn.Sequential(paddle.nn.Linear(8, 4))
    model.eval()
    algo = PTQ(QuantConfig(activation=A.HistObserver(symmetric=False, profile="paddleslim"),
                           weight=A.AbsMaxChannelWiseWeightObserver(profile="paddleslim"),
                           profile="paddleslim"))
    q = algo.quantize(model)
    q(paddle.to_tensor(_data(0)))
    c = algo.convert(q)
    assert c[0].activation_quanter._quanter.spec.kind == "linear"
    assert not np.any(c[0].activation_quanter._quanter._zero_point.numpy())
