"""The Paddle adapter follows the profile's rules (refquant.profiles), never its name.

Rules objects that are not registered (``dataclasses.replace`` of a registered one under
another name) are passed directly: the adapter must behave as the fields say, whatever the
name.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from refquant.adapters.paddle import PTQ, QAT, QuantConfig  # noqa: E402
from refquant.adapters.paddle import _device as dev  # noqa: E402
from refquant.adapters.paddle import observers as A  # noqa: E402
from refquant.adapters.paddle.layers import QuantedLinear, check_signature  # noqa: E402

from refquant.profiles import CANONICAL, PADDLESLIM, ProfileVariants  # noqa: E402

#: canonical rules under another name, once with Paddle's front end
OWN = dataclasses.replace(CANONICAL, name="test-own-front-end")
PADDLE_FRONT = dataclasses.replace(CANONICAL, name="test-paddle-front-end",
                                   paddle_api_quirks=True)


def _fc() -> paddle.nn.Linear:
    paddle.seed(0)
    fc = paddle.nn.Linear(3, 2)
    fc.eval()
    return fc


def test_quant_config_exposes_its_rules_and_name():
    cfg = QuantConfig(A.AbsmaxObserver(), A.AbsmaxObserver(), profile="paddleslim")
    assert cfg.rules is PADDLESLIM and cfg.profile == "paddleslim"
    assert QuantConfig().rules is CANONICAL and QuantConfig().profile == "canonical"
    with pytest.raises(AttributeError):
        cfg.profile = "canonical"  # type: ignore[misc]


@pytest.mark.parametrize("rules,quantized", [(OWN, True), (PADDLE_FRONT, False)])
def test_root_layer_is_configured_unless_the_rules_ask_for_paddles_front_end(rules, quantized):
    # Q56: Paddle never configures the root model, so a bare Linear stays a Linear
    cfg = QuantConfig(A.AbsmaxObserver(), A.AbsmaxObserver(), profile=rules)
    out = PTQ(cfg).quantize(_fc())
    assert isinstance(out, QuantedLinear) is quantized
    assert cfg.profile == rules.name


@pytest.mark.parametrize("rules,raises", [(OWN, False), (PADDLE_FRONT, True)])
def test_qat_mode_check_follows_the_rules(rules, raises):
    cfg = QuantConfig(A.AbsmaxObserver(), A.AbsmaxObserver(), profile=rules)
    model = paddle.nn.Sequential(_fc())
    model.eval()  # Paddle's QAT asserts training mode
    if raises:
        with pytest.raises(AssertionError):
            QAT(cfg).quantize(model)
    else:
        QAT(cfg).quantize(model)


@pytest.mark.parametrize("force", [False, True])
def test_avg_zero_d_batch_is_one_sample_canonical(force, monkeypatch):
    monkeypatch.setattr(dev, "FORCE_DEVICE_OPS", force)
    layer = A.AVGObserver()._instance(None)
    for x in (np.ones((3, 2), np.float32), np.float32(7.0), np.full(2, 3.0, np.float32)):
        layer(paddle.to_tensor(x))
    # per-sample maxima 1, 1, 1 | 7 | 3, 3: mean 16/6, rounded once to float32
    assert layer.qparams().scale.view(np.uint32) == np.float32(16 / 6).view(np.uint32)
    assert layer.reference.num_batches == 3


@pytest.mark.parametrize("force", [False, True])
def test_avg_zero_d_batch_raises_index_error_paddleslim(force, monkeypatch):
    monkeypatch.setattr(dev, "FORCE_DEVICE_OPS", force)
    layer = A.AVGObserver(profile="paddleslim")._instance(None)
    layer(paddle.to_tensor(np.ones((3, 2), np.float32)))
    with pytest.raises(IndexError):  # PaddleSlim's inputs.shape[0] on a 0-D tensor (Q13a)
        layer(paddle.to_tensor(np.float32(7.0)))
    assert layer.reference.num_batches == 1  # the batch before it is kept


def test_avg_zero_d_non_finite_batch_names_the_layer():
    layer = A.AVGObserver()._instance(_fc())
    with pytest.raises(ValueError, match="input of Linear .* NaN or Inf"):
        layer(paddle.to_tensor(np.float32(np.nan)))


def test_uncalibrated_observer_raises_what_its_rules_say():
    with pytest.raises(A.NotCalibratedError):
        A.MSEObserver()._instance(None).scales()
    with pytest.raises(AttributeError):  # PaddleSlim's MSE layer before any forward (Q59a)
        A.MSEObserver(profile="paddleslim")._instance(None).scales()


def test_check_signature_reads_the_constructor_of_a_variant_family():
    class Base:
        def __init__(self, quant_bits: int = 8, *, profile: str = "canonical") -> None:
            pass

    class Family(ProfileVariants, Base):  # __new__(*args, **kwargs) comes first in the MRO
        pass

    check_signature("Family", Family, (8,), {"profile": "canonical"})
    with pytest.raises(TypeError, match="Family: .*unexpected keyword argument 'bins'"):
        check_signature("Family", Family, (), {"bins": 3})
    with pytest.raises(TypeError, match="Family: too many positional arguments"):
        check_signature("Family", Family, (8, 9), {})
