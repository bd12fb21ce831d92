"""QuantConfig priority rules (layer > name > type > parent > global, call-order free)."""

from __future__ import annotations

import itertools

import pytest

paddle = pytest.importorskip("paddle")

from refquant.adapters.paddle import PTQ, QuantConfig  # noqa: E402
from refquant.adapters.paddle import observers as A  # noqa: E402
from refquant.adapters.paddle.layers import (  # noqa: E402
    ObserveWrapper,
    QuantedConv2D,
    QuantedLinear,
)

# distinct factories so the test can tell which config won
G, T, N, L, P = (A.AbsmaxObserver(quant_bits=b) for b in (8, 7, 6, 5, 4))


class MyLinear(paddle.nn.Linear):
    pass


class Block(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(4, 4)
        self.act = paddle.nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(x))


class Net(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.block = Block()
        self.my = MyLinear(4, 4)
        self.out = paddle.nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.my(self.block(x)))


def _bits_of(q, path):
    layer = q
    for part in path.split("."):
        layer = getattr(layer, part)
    if isinstance(layer, ObserveWrapper):
        return layer._observer.bit_length()
    return layer.activation_quanter.bit_length()


def _net():
    paddle.seed(0)
    m = Net()
    m.eval()
    return m


CALLS = ("layer", "name", "type")


@pytest.mark.parametrize("order", list(itertools.permutations(CALLS)))
def test_priority_does_not_depend_on_call_order(order):
    m = _net()
    cfg = QuantConfig(activation=G)
    for what in order:
        if what == "layer":
            cfg.add_layer_config(m.out, activation=L)
        elif what == "name":
            cfg.add_name_config([m.out.full_name(), "my"], activation=N)
        else:
            cfg.add_type_config(paddle.nn.Linear, activation=T)
    q = PTQ(cfg).quantize(m)
    assert _bits_of(q, "out") == 5  # layer beats name and type
    assert _bits_of(q, "my") == 6  # name (attribute path) beats type
    assert _bits_of(q, "block.fc") == 7  # type beats parent/global
    assert _bits_of(q, "block.act") == 8  # global


def test_type_config_matches_subclasses_most_derived_wins():
    m = _net()
    cfg = QuantConfig(activation=G)
    cfg.add_type_config(paddle.nn.Linear, activation=T)
    q = PTQ(cfg).quantize(m)
    assert isinstance(q.my, QuantedLinear) and _bits_of(q, "my") == 7  # subclass matched
    cfg.add_type_config(MyLinear, activation=N)
    q = PTQ(cfg).quantize(_net())
    assert _bits_of(q, "my") == 6 and _bits_of(q, "out") == 7


def test_parent_config_is_inherited_and_beats_global():
    m = _net()
    cfg = QuantConfig(activation=G)
    cfg.add_layer_config(m.block, activation=P)
    q = PTQ(cfg).quantize(m)
    assert _bits_of(q, "block.fc") == 4 and _bits_of(q, "block.act") == 4
    assert _bits_of(q, "out") == 8
    # a type config on the child still beats the parent
    cfg.add_type_config(paddle.nn.ReLU, activation=T)
    q = PTQ(cfg).quantize(m)
    assert _bits_of(q, "block.act") == 7 and _bits_of(q, "block.fc") == 4


def test_empty_config_excludes_a_layer_and_root_is_configured():
    m = _net()
    cfg = QuantConfig(activation=G, weight=A.AbsMaxChannelWiseWeightObserver())
    cfg.add_name_config("out", activation=None, weight=None)
    q = PTQ(cfg).quantize(m)
    assert type(q.out) is paddle.nn.Linear
    assert isinstance(q.my, QuantedLinear)
    bare = paddle.nn.Linear(3, 3)
    bare.eval()
    assert isinstance(PTQ(QuantConfig(activation=G)).quantize(bare), QuantedLinear)


def test_layer_config_survives_deep_copy_and_original_untouched():
    m = _net()
    cfg = QuantConfig(activation=None)
    cfg.add_layer_config(m.block.fc, activation=L)
    q = PTQ(cfg).quantize(m, inplace=False)
    assert isinstance(q.block.fc, QuantedLinear) and _bits_of(q, "block.fc") == 5
    assert type(m.block.fc) is paddle.nn.Linear
    assert type(q.out) is paddle.nn.Linear


def test_quantize_on_training_model_returns_eval_model():
    m = _net()
    m.train()
    q = PTQ(QuantConfig(activation=G)).quantize(m)
    assert not q.training and m.training


def test_customized_leaf_and_mapping():
    m = _net()
    cfg = QuantConfig(activation=G)
    cfg.add_customized_leaf(Block)
    q = PTQ(cfg).quantize(m)
    assert isinstance(q.block, ObserveWrapper)
    assert type(q.block._observed.fc) is paddle.nn.Linear


def test_details_lists_resolution_and_bad_arguments():
    m = _net()
    cfg = QuantConfig(activation=G)
    cfg.add_type_config(paddle.nn.Linear, activation=T)
    ptq = PTQ(cfg)
    ptq.quantize(m)
    text = str(ptq)  # the PTQ's own snapshot of the config, resolved on the model
    assert "block.fc: Linear" in text and "quant_bits=7" in text
    with pytest.raises(TypeError, match="activation"):
        QuantConfig(activation="abs_max")
    with pytest.raises(TypeError, match="layer_type"):
        cfg.add_type_config(int, activation=G)
    with pytest.raises(TypeError, match="layer_name"):
        cfg.add_name_config(3, activation=G)
    with pytest.raises(TypeError, match="source"):
        cfg.add_qat_layer_mapping(object, QuantedLinear)
    with pytest.raises(TypeError, match="config"):
        PTQ(object())


def test_conv_is_mapped_by_default():
    conv = paddle.nn.Sequential(paddle.nn.Conv2D(1, 2, 3))
    conv.eval()
    q = PTQ(QuantConfig(activation=G, weight=G)).quantize(conv)
    assert isinstance(q[0], QuantedConv2D)


def _paddle_bits(q, path):
    layer = q
    for part in path.split("."):
        layer = getattr(layer, part)
    if hasattr(layer, "_observer"):
        return layer._observer.bit_length()
    aq = getattr(layer, "activation_quanter", None)
    return None if aq is None else aq.bit_length()


@pytest.mark.parametrize("order", list(itertools.permutations(CALLS)))
def test_paddleslim_profile_resolves_like_paddle(order):
    from paddle.quantization import PTQ as PaddlePTQ
    from paddle.quantization import QuantConfig as PaddleConfig
    from paddle.quantization.observers import AbsmaxObserver as PaddleAbsmax

    results = []
    for flavour in ("paddle", "ours"):
        m = _net()

        def fac(bits, flavour=flavour):
            if flavour == "paddle":
                return PaddleAbsmax(quant_bits=bits)
            return A.AbsmaxObserver(quant_bits=bits, profile="paddleslim")

        if flavour == "paddle":
            cfg = PaddleConfig(activation=fac(8), weight=None)
        else:
            cfg = QuantConfig(activation=fac(8), profile="paddleslim")
        for what in order:
            if what == "layer":
                cfg.add_layer_config([m.out, m.block], activation=fac(5))
            elif what == "name":
                cfg.add_name_config(m.out.full_name(), activation=fac(6))
            else:
                cfg.add_type_config(paddle.nn.Linear, activation=fac(7))
        ptq = PaddlePTQ(cfg) if flavour == "paddle" else PTQ(cfg)
        q = ptq.quantize(m)
        results.append({p: (type(_get(q, p)).__name__.replace("Paddle", ""), _paddle_bits(q, p))
                        for p in ("block.fc", "block.act", "my", "out")})
    paddle_res, ours_res = results
    assert {k: v[1] for k, v in paddle_res.items()} == {k: v[1] for k, v in ours_res.items()}
    assert [v[0] for v in paddle_res.values()] == [v[0] for v in ours_res.values()]


def _get(q, path):
    layer = q
    for part in path.split("."):
        layer = getattr(layer, part)
    return layer


@pytest.mark.parametrize("profile", ["canonical", "paddleslim"])
def test_ptq_keeps_a_snapshot_of_the_config(profile):
    m = _net()
    cfg = QuantConfig(activation=G, profile=profile)
    ptq = PTQ(cfg)
    cfg.add_layer_config(m.block.fc, activation=L)  # after PTQ(cfg): not seen by ptq
    q = ptq.quantize(m)
    assert _bits_of(q, "block.fc") == 8
    assert _bits_of(PTQ(cfg).quantize(m), "block.fc") == 5  # a new PTQ sees it
    # and the other way round: configuring the snapshot leaves the caller's config alone
    snap = cfg.snapshot()
    snap.add_type_config(paddle.nn.Linear, activation=T)
    assert _bits_of(PTQ(cfg).quantize(_net()), "out") == 8
    assert _bits_of(PTQ(snap).quantize(_net()), "out") == 7


def test_class_instead_of_factory_names_the_factory():
    with pytest.raises(TypeError, match="got the class AbsmaxObserver: write AbsmaxObserver()"):
        QuantConfig(activation=A.AbsmaxObserver)
    with pytest.raises(TypeError, match="got the layer class HistObserverLayer: pass its "
                                        "factory HistObserver()"):
        QuantConfig(weight=A.HistObserverLayer)
    assert A.PercentHistObserverLayer is A.HistObserverLayer


def test_stub_given_a_class_names_the_factory():
    from refquant.adapters.paddle import QAT
    from refquant.adapters.paddle import quanters as Q

    model = paddle.nn.Sequential(paddle.nn.quant.Stub(Q.FakeQuanterWithAbsMaxObserverLayer))
    model.train()
    with pytest.raises(TypeError, match="observer of Stub '0' .* pass its factory "
                                        r"FakeQuanterWithAbsMaxObserver\(\)"):
        QAT(QuantConfig(activation=Q.FakeQuanterWithAbsMaxObserver())).quantize(model,
                                                                               inplace=True)
    assert type(model[0]) is paddle.nn.quant.Stub  # left as it was
