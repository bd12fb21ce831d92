"""Bad input to the Paddle adapter's public API.

Every case gets a ``TypeError`` / ``ValueError`` (or the adapter's ``NotCalibratedError``)
whose message names the argument or the layer, raised before anything is changed: the
caller's model, config and argument dicts are compared with snapshots taken before the call.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from paddle.quantization import PTQ as PaddlePTQ  # noqa: E402
from paddle.quantization import QuantConfig as PaddleQuantConfig  # noqa: E402
from refquant.adapters.paddle import (  # noqa: E402
    PTQ,
    QAT,
    NotCalibratedError,
    QuantConfig,
    sync_observers,
)
from refquant.adapters.paddle import observers as A  # noqa: E402
from refquant.adapters.paddle import quanters as Q  # noqa: E402
from refquant.adapters.paddle.layers import (  # noqa: E402
    QuantedConv1D,
    QuantedConv2D,
    QuantedConv2DTranspose,
    QuantedLinear,
)
from refquant.adapters.paddle.parallel import (  # noqa: E402
    QuantedColumnParallelLinear,
    QuantedRowParallelLinear,
)

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
SPEC = [paddle.static.InputSpec([None, 4], "float32", "x")]


class Net(paddle.nn.Layer):
    """fc1 -> relu (a leaf observed through ObserveWrapper) -> fc2; ``fc3`` is never run."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = paddle.nn.Linear(4, 5)
        self.relu = paddle.nn.ReLU()
        self.fc2 = paddle.nn.Linear(5, 3)
        self.fc3 = paddle.nn.Linear(3, 3)

    def forward(self, x: Any, use_fc3: bool = False) -> Any:
        y = self.fc2(self.relu(self.fc1(x)))
        return self.fc3(y) if use_fc3 else y


def _net(seed: int = 0) -> Net:
    paddle.seed(seed)
    m = Net()
    m.eval()
    return m


def _x(seed: int = 0, n: int = 3) -> Any:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32))


def _cfg(profile: str = "canonical") -> QuantConfig:
    return QuantConfig(activation=A.AbsmaxObserver(profile=profile),
                       weight=A.AbsMaxChannelWiseWeightObserver(profile=profile), profile=profile)


def _calibrated(profile: str = "canonical", use_fc3: bool = True) -> tuple[PTQ, Any]:
    ptq = PTQ(_cfg(profile))
    q = ptq.quantize(_net())
    for seed in range(2):
        q(_x(seed), use_fc3=use_fc3)
    return ptq, q


def _snapshot(model: Any) -> tuple[list[tuple[str, str]], dict[str, np.ndarray]]:
    """Structure (path, type) and a copy of every parameter and buffer."""
    layers = [("", type(model).__name__)] + [(p, type(sub).__name__)
                                             for p, sub in model.named_sublayers()]
    state = {k: np.array(v.numpy(), copy=True) for k, v in model.state_dict().items()}
    return layers, state


def _assert_same_model(model: Any, snap: tuple[list, dict]) -> None:
    layers, state = _snapshot(model)
    assert layers == snap[0]
    assert sorted(state) == sorted(snap[1])
    for k, v in state.items():
        assert v.dtype == snap[1][k].dtype and v.shape == snap[1][k].shape, k
        assert v.tobytes() == snap[1][k].tobytes(), k


def _bits(t: Any) -> np.ndarray:
    return np.asarray(t.numpy(), np.float32).view(np.uint32)


# ---------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["canonical", "paddleslim"])
def test_convert_of_a_converted_model_is_a_no_op_as_in_paddle(profile):
    ptq, q = _calibrated(profile)
    once = ptq.convert(q)
    snap = _snapshot(once)
    twice = ptq.convert(once)  # raised AttributeError ('QuantDequant' has no 'scales')
    _assert_same_model(once, snap)  # inplace=False: the argument is untouched
    _assert_same_model(twice, snap)
    # Paddle's own PTQ.convert on the same converted model: also leaves it as it is
    paddle_twice = PaddlePTQ(PaddleQuantConfig(None, None)).convert(once)
    _assert_same_model(paddle_twice, snap)
    x = _x(5)
    want = once(x, use_fc3=True)
    assert np.array_equal(_bits(twice(x, use_fc3=True)), _bits(want))
    assert np.array_equal(_bits(paddle_twice(x, use_fc3=True)), _bits(want))
    same = ptq.convert(once, inplace=True)
    assert same is once
    _assert_same_model(once, snap)


def test_convert_of_a_float_model_is_refused():
    m = _net()
    snap = _snapshot(m)
    for inplace in (False, True):
        with pytest.raises(ValueError, match="model holds no observer, quanter or quant-deq"):
            PTQ(_cfg()).convert(m, inplace=inplace)
    _assert_same_model(m, snap)


@pytest.mark.parametrize("inplace", [False, True])
def test_convert_error_leaves_the_model_as_it_was(inplace):
    # fc1, relu and fc2 are calibrated and decide first; fc3 never saw data
    ptq, q = _calibrated(use_fc3=False)
    snap = _snapshot(q)
    with pytest.raises(NotCalibratedError, match=r"'fc3\.(weight|activation)_quanter'"):
        ptq.convert(q, inplace=inplace)
    _assert_same_model(q, snap)  # no weight replaced by codes, no quanter by a QDQ
    q(_x(3), use_fc3=True)
    ptq.convert(q, inplace=inplace)  # still a working quantized model


@pytest.mark.parametrize("kw", [{"inplace": "yes"}, {"inplace": None},
                                {"remain_weight": 1}, {"remain_weight": "False"}])
def test_convert_flags_must_be_bools(kw):
    ptq, q = _calibrated()
    snap = _snapshot(q)
    (name, value), = kw.items()
    with pytest.raises(TypeError, match=f"{name} must be True or False, got {value!r}"):
        ptq.convert(q, **kw)
    _assert_same_model(q, snap)


# ---------------------------------------------------------------------------------------
# export_onnx
# ---------------------------------------------------------------------------------------
@pytest.fixture()
def export():
    pytest.importorskip("onnx")
    from refquant.adapters.paddle import export as mod

    return mod


@pytest.mark.parametrize("make", [_net, lambda: paddle.nn.Linear(4, 3)],
                         ids=["net", "bare_linear"])
def test_export_of_a_float_model_is_refused(export, tmp_path, make):
    m = make()
    snap = _snapshot(m)
    with pytest.raises(ValueError, match=r"model \(\w+\) has no quantized tensor"):
        export.export_onnx(m, tmp_path / "m.onnx", SPEC)
    assert not (tmp_path / "m.onnx").exists()
    _assert_same_model(m, snap)


def test_export_of_a_quantized_unconverted_model_is_refused(export, tmp_path):
    _, q = _calibrated()
    snap = _snapshot(q)
    with pytest.raises(ValueError, match="model is not converted: layer 'fc1'"):
        export.export_onnx(q, tmp_path / "m.onnx", SPEC)
    # an observer left behind outside a quantized layer (the ReLU's)
    ptq, q2 = _calibrated()
    c = ptq.convert(q2)
    c.add_sublayer("relu", q2.relu)
    with pytest.raises(ValueError, match=r"model is not converted: layer 'relu\._observer'"):
        export.export_onnx(c, tmp_path / "m.onnx", SPEC)
    assert not (tmp_path / "m.onnx").exists()
    _assert_same_model(q, snap)


def test_export_path_and_jobs_are_checked(export, tmp_path):
    ptq, q = _calibrated()
    c = ptq.convert(q)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="path .* is a directory"):
        export.export_onnx(c, tmp_path, SPEC)
    with pytest.raises(ValueError, match="path .*file.txt.* which is a file"):
        export.export_onnx(c, a_file / "m.onnx", SPEC)
    with pytest.raises(ValueError, match="path must name an ONNX file, got ''"):
        export.export_onnx(c, "", SPEC)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        export.export_onnx(c, 3, SPEC)
    with pytest.raises(TypeError, match=r"jobs\[0\] must be a \(model, path\) pair"):
        export.export_onnx_many([c], SPEC)
    with pytest.raises(TypeError, match="jobs must be a list"):
        export.export_onnx_many("m.onnx", SPEC)
    with pytest.raises(ValueError, match="jobs write the same path twice"):
        export.export_onnx_many([(c, tmp_path / "m.onnx"), (c, tmp_path / "m.onnx")], SPEC)
    assert a_file.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


# ---------------------------------------------------------------------------------------
# quantize: weights that do not fit the quantized layer they map to
# ---------------------------------------------------------------------------------------
class _Custom(paddle.nn.Layer):
    """A custom layer with a weight of any shape, optionally a conv layer's attributes."""

    def __init__(self, shape: list[int], bias: int | None = None, conv: bool = False) -> None:
        super().__init__()
        self.weight = self.create_parameter(shape)
        self.bias = None if bias is None else self.create_parameter([bias], is_bias=True)
        if conv:
            self._stride, self._padding, self._dilation = 1, 0, 1
            self._groups, self._data_format = 1, "NCHW"

    def forward(self, x: Any) -> Any:
        return x


#: quantized layer -> (supported weight rank, does it need a conv layer's attributes)
TARGETS = {
    QuantedLinear: (2, False),
    QuantedColumnParallelLinear: (2, False),
    QuantedRowParallelLinear: (2, False),
    QuantedConv1D: (3, True),
    QuantedConv2D: (4, True),
    QuantedConv2DTranspose: (4, True),
}
SHAPES = {1: [6], 2: [4, 6], 3: [4, 6, 2], 4: [4, 6, 2, 2], 5: [4, 6, 2, 2, 2]}


def _custom_model(shape: list[int], conv: bool, bias: int | None = None) -> Any:
    m = paddle.nn.Sequential(paddle.nn.Linear(2, 2),
                             paddle.nn.Sequential(paddle.nn.ReLU(), _Custom(shape, bias, conv)))
    m.eval()
    return m


def _mapped_cfg(target: type) -> QuantConfig:
    cfg = QuantConfig(activation=A.AbsmaxObserver(), weight=A.AbsmaxObserver())
    cfg.add_qat_layer_mapping(_Custom, target)
    return cfg


@pytest.mark.parametrize("flow", [PTQ, QAT])
@pytest.mark.parametrize("target", list(TARGETS), ids=lambda t: t.__name__)
def test_weight_rank_is_checked_at_quantize(target, flow):
    rank, conv = TARGETS[target]
    cfg = _mapped_cfg(target)
    flow(cfg).quantize(_custom_model(SHAPES[rank], conv))  # the supported rank passes
    for bad in sorted(set(SHAPES) - {rank}):
        for inplace in (False, True):
            m = _custom_model(SHAPES[bad], conv)
            snap = _snapshot(m)
            shape = str(SHAPES[bad]).replace("[", r"\[").replace("]", r"\]")
            with pytest.raises(ValueError, match=(
                    f"cannot quantize layer '1.1' \\(_Custom '.*'\\) as {target.__name__}: "
                    f"its weight has shape {shape}, but {target.__name__} needs a {rank}-D")):
                flow(cfg).quantize(m, inplace=inplace)
            _assert_same_model(m, snap)  # the Linear before it was not replaced either


def test_custom_3d_weight_mapped_to_linear_fails_at_quantize_not_forward():
    cfg = _mapped_cfg(QuantedLinear)
    with pytest.raises(ValueError, match=r"layer '1\.1'.*shape \[4, 6, 2\]"):
        PTQ(cfg).quantize(_custom_model([4, 6, 2], conv=False))


def test_bias_and_conv_attributes_are_checked_at_quantize():
    with pytest.raises(ValueError, match=r"'1\.1'.*bias must be None or of shape \[6\].*got \[4\]"):
        PTQ(_mapped_cfg(QuantedLinear)).quantize(_custom_model([4, 6], False, bias=4))
    with pytest.raises(ValueError, match=r"bias must be None or of shape \[4\]"):
        PTQ(_mapped_cfg(QuantedConv2D)).quantize(_custom_model([4, 6, 2, 2], True, bias=6))
    with pytest.raises(ValueError, match="lacks the attributes _stride, _padding, _dil"):
        PTQ(_mapped_cfg(QuantedConv2D)).quantize(_custom_model([4, 6, 2, 2], conv=False))
    # a real layer of every mapped kind passes, its bias included
    for layer in (paddle.nn.Linear(3, 4), paddle.nn.Conv1D(2, 4, 3), paddle.nn.Conv2D(2, 4, 3),
                  paddle.nn.Conv2DTranspose(4, 6, 3, groups=2)):
        q = PTQ(QuantConfig(A.AbsmaxObserver(), A.AbsmaxObserver())).quantize(layer)
        assert type(q).__name__ == f"Quanted{type(layer).__name__}"


# ---------------------------------------------------------------------------------------
# PTQ / QAT arguments, quantizing twice
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["canonical", "paddleslim"])
@pytest.mark.parametrize("flow", [PTQ, QAT])
@pytest.mark.parametrize("model", [None, np.zeros((2, 4), np.float32), "model",
                                   paddle.nn.Linear], ids=["None", "ndarray", "str", "class"])
def test_quantize_and_convert_refuse_non_layer_models(flow, profile, model):
    q = flow(QuantConfig(A.AbsmaxObserver(profile=profile), None, profile=profile))
    with pytest.raises(TypeError, match="model must be a paddle.nn.Layer, got"):
        q.quantize(model)
    with pytest.raises(TypeError, match="model must be a paddle.nn.Layer, got"):
        q.convert(model)


@pytest.mark.parametrize("config", [None, PaddleQuantConfig(None, None), "cfg"])
def test_flows_need_a_refquant_quant_config(config):
    for flow in (PTQ, QAT):
        with pytest.raises(TypeError, match="config must be a refquant.adapters.paddle"):
            flow(config)


@pytest.mark.parametrize("flow", [PTQ, QAT])
def test_inplace_must_be_a_bool(flow):
    m = _net()
    snap = _snapshot(m)
    for bad in ("no", 0, None):
        with pytest.raises(TypeError, match=f"inplace must be True or False, got {bad!r}"):
            flow(_cfg()).quantize(m, inplace=bad)
    _assert_same_model(m, snap)


@pytest.mark.parametrize("first", [PTQ, QAT])
@pytest.mark.parametrize("second", [PTQ, QAT])
def test_quantizing_a_quantized_or_converted_model_is_refused(first, second):
    q = first(_cfg()).quantize(_net())
    snap = _snapshot(q)
    for inplace in (False, True):
        with pytest.raises(ValueError, match="model is already quantized: layer 'fc1' is a "
                                             "QuantedLinear"):
            second(_cfg()).quantize(q, inplace=inplace)
    _assert_same_model(q, snap)
    ptq, cal = _calibrated()
    conv = ptq.convert(cal)
    with pytest.raises(ValueError, match="model is already quantized"):
        second(_cfg()).quantize(conv)
    with pytest.raises(ValueError, match="model is already quantized: layer '<root>'"):
        second(_cfg()).quantize(second(_cfg()).quantize(paddle.nn.Linear(2, 2)))


# ---------------------------------------------------------------------------------------
# sync
# ---------------------------------------------------------------------------------------
def test_sync_arguments_are_checked():
    ptq, q = _calibrated()
    snap = _snapshot(q)
    cases = [
        ({"group": "dp"}, TypeError, "group must be a paddle.distributed process group.*'dp'"),
        ({"group": 2}, TypeError, "group must be"),
        ({"allow_empty_ranks": "yes"}, TypeError, "allow_empty_ranks must be True or False"),
        ({"allow_empty_ranks": None}, TypeError, "allow_empty_ranks"),
        ({"timeout": 0}, ValueError, "timeout must be a positive"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": "60"}, TypeError, "timeout must be a number"),
    ]
    for kw, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            ptq.sync(q, **kw)
    _assert_same_model(q, snap)
    with pytest.raises(TypeError, match="model must be a paddle.nn.Layer"):
        ptq.sync(None)
    for model in (_net(), ptq.convert(q)):  # nothing to sync: a silent no-op would hide it
        with pytest.raises(ValueError, match=r"model \(\w+\) holds no refquant observer"):
            sync_observers(model)


# ---------------------------------------------------------------------------------------
# QuantConfig
# ---------------------------------------------------------------------------------------
def _lin() -> Any:
    return paddle.nn.Linear(2, 2)


CONFIG_CASES = [
    (lambda c: c.add_layer_config("fc1", A.AbsmaxObserver()), TypeError, "layer must be"),
    (lambda c: c.add_layer_config([_lin(), "fc1"], A.AbsmaxObserver()), TypeError, "layer must"),
    (lambda c: c.add_layer_config(_lin(), weight=A.AbsmaxObserver), TypeError,
     "weight must be a factory instance, got the class AbsmaxObserver"),
    (lambda c: c.add_layer_config(_lin(), activation=A.AbsmaxObserver()._instance(None)),
     TypeError, "activation must be a quanter/observer factory"),
    (lambda c: c.add_name_config(3, A.AbsmaxObserver()), TypeError, "layer_name"),
    (lambda c: c.add_name_config(["fc1", ""], A.AbsmaxObserver()), TypeError, "layer_name"),
    (lambda c: c.add_name_config("fc1", "abs_max"), TypeError, "activation"),
    (lambda c: c.add_type_config(int, A.AbsmaxObserver()), TypeError, "layer_type"),
    (lambda c: c.add_type_config([paddle.nn.Linear, "Conv2D"], A.AbsmaxObserver()), TypeError,
     "layer_type"),
    (lambda c: c.add_type_config(_lin(), A.AbsmaxObserver()), TypeError, "layer_type"),
    (lambda c: c.add_qat_layer_mapping(object, QuantedLinear), TypeError, "source"),
    (lambda c: c.add_qat_layer_mapping(paddle.nn.Linear, "QuantedLinear"), TypeError, "target"),
    (lambda c: c.add_qat_layer_mapping(paddle.nn.Linear, paddle.nn.ReLU), TypeError,
     "target must be a quantized layer class"),
    (lambda c: c.add_customized_leaf(3), TypeError, "layer_type"),
]


@pytest.mark.parametrize("call,exc,msg", CONFIG_CASES)
def test_quant_config_methods_check_their_arguments(call, exc, msg):
    cfg = _cfg()
    before = (str(cfg), cfg.qat_layer_mappings, cfg.customized_leaves)
    with pytest.raises(exc, match=msg):
        call(cfg)
    assert (str(cfg), cfg.qat_layer_mappings, cfg.customized_leaves) == before


@pytest.mark.parametrize("kw,msg", [
    ({"activation": A.AbsmaxObserver}, "activation must be a factory instance"),
    ({"weight": "mse"}, "weight must be a quanter/observer factory"),
    ({"profile": "PaddleSlim"}, "profile must be one of"),
    ({"profile": None}, "profile"),
])
def test_quant_config_constructor_checks_its_arguments(kw, msg):
    with pytest.raises((TypeError, ValueError), match=msg):
        QuantConfig(**kw)


# ---------------------------------------------------------------------------------------
# factories (property-based)
# ---------------------------------------------------------------------------------------
def _not_int() -> st.SearchStrategy[Any]:
    return st.one_of(st.floats(allow_nan=True), st.text(max_size=4), st.booleans(), st.none(),
                     st.lists(st.integers(), max_size=2))


BAD = {
    "bits": st.one_of(st.integers(max_value=1), st.integers(min_value=17), _not_int()),
    "profile": st.one_of(st.text(max_size=12).filter(lambda s: s not in ("canonical",
                                                                          "paddleslim")),
                         st.integers(), st.none()),
    # (0, 1) open
    "rate": st.one_of(st.floats().filter(lambda v: not 0 < v < 1), st.text(max_size=3),
                      st.booleans(), st.none()),
    # > 0 and finite in float32 (from 3.41e38 on a float rounds to float32 inf)
    "positive": st.one_of(st.floats().filter(lambda v: not (0 < v < 3.41e38)),
                          st.integers(max_value=0), st.text(max_size=3), st.booleans(),
                          st.none()),
    "nonnegative": st.one_of(st.floats().filter(lambda v: not (0 <= v < float("inf"))),
                             st.integers(max_value=-1), st.text(max_size=3), st.booleans(),
                             st.none()),
    "percent": st.one_of(st.floats().filter(lambda v: not 0 < v <= 1), st.text(max_size=3),
                         st.booleans(), st.none()),
    "bins_count": st.one_of(st.integers(max_value=127), _not_int()),  # >= 2**(8-1)
    "count": st.one_of(st.integers(max_value=0), _not_int()),
    "optional_count": st.one_of(st.integers(max_value=0), _not_int().filter(
        lambda v: v is not None)),
    # [2, 2**24]; None is the default
    "bins": st.one_of(st.integers(max_value=1), st.integers(min_value=2**24 + 1),
                      st.floats(), st.text(max_size=3), st.booleans()),
    "axis": st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.booleans(),
                      st.lists(st.integers(), max_size=2)),
    "kernel_axis": st.one_of(st.integers().filter(lambda v: v not in (0, 1)),
                             st.floats(allow_nan=True), st.text(max_size=3), st.booleans()),
    "flag": st.one_of(st.text(max_size=3), st.integers(min_value=2), st.floats(), st.none()),
}

#: factory -> {argument: kind of bad value}
FACTORIES = {
    A.AbsmaxObserver: {"quant_bits": "bits", "profile": "profile", "ignore_nonfinite": "flag"},
    A.AVGObserver: {"quant_bits": "bits", "profile": "profile", "ignore_nonfinite": "flag"},
    A.MSEObserver: {"quant_bits": "bits", "profile": "profile", "ignore_nonfinite": "flag",
                    "bins": "bins"},
    A.EMDObserver: {"quant_bits": "bits", "profile": "profile", "bins": "bins"},
    A.HistObserver: {"quant_bits": "bits", "profile": "profile", "bins_count": "bins_count",
                     "percent": "percent", "sign": "flag", "symmetric": "flag"},
    A.KLObserver: {"quant_bits": "bits", "profile": "profile", "bins_count": "bins_count"},
    A.AbsMaxChannelWiseWeightObserver: {"quant_bits": "bits", "profile": "profile",
                                        "axis": "axis"},
    A.MSEChannelWiseWeightObserver: {"quant_bits": "bits", "profile": "profile",
                                     "axis": "axis"},
    A.GroupWiseWeightObserver: {"quant_bits": "bits", "profile": "profile",
                                "group_size": "count"},
    Q.FakeQuanterWithAbsMaxObserver: {"moving_rate": "rate", "bit_length": "bits",
                                      "profile": "profile"},
    Q.FakeQuanterChannelWiseAbsMaxObserver: {"bit_length": "bits", "profile": "profile",
                                             "quant_axis": "kernel_axis"},
    Q.PACTQuanter: {"init_value": "positive", "learning_rate": "nonnegative",
                    "profile": "profile", "quant_bits": "bits", "signed": "flag"},
    Q.WeightLSQplusQuanter: {"quant_bits": "bits", "profile": "profile",
                             "batch_init": "count", "channel_num": "optional_count", "sign": "flag",
                             "symmetric": "flag", "per_channel": "flag",
                             "quant_linear": "flag"},
    Q.ActLSQplusQuanter: {"quant_bits": "bits", "profile": "profile", "batch_init": "count",
                          "sign": "flag", "symmetric": "flag", "per_channel": "flag",
                          "quant_linear": "flag"},
}
CASES = [(f, arg) for f, args in FACTORIES.items() for arg in args]


@SETTINGS
@given(data=st.data())
def test_factories_refuse_bad_argument_values(data):
    factory, arg = data.draw(st.sampled_from(CASES), label="factory, argument")
    value = data.draw(BAD[FACTORIES[factory][arg]], label=arg)
    kwargs = {arg: value}
    kept = copy.deepcopy(kwargs)
    with pytest.raises((TypeError, ValueError)) as info:
        factory(**kwargs)
    assert arg in str(info.value), (factory.__name__, arg, value, str(info.value))
    assert repr(kwargs) == repr(kept)  # nothing the caller passed is modified


@pytest.mark.parametrize("factory", list(FACTORIES), ids=lambda f: f.__name__)
def test_factories_refuse_unknown_and_surplus_arguments(factory):
    with pytest.raises(TypeError, match=f"{factory.__name__}: got an unexpected keyword "
                                        "argument 'bogus'"):
        factory(bogus=1)
    with pytest.raises(TypeError, match=f"{factory.__name__}: too many positional"):
        factory(*([8] * 12))


def test_pact_inner_quanter_must_be_a_factory_instance():
    for bad in (8, "abs_max", Q.FakeQuanterWithAbsMaxObserver):
        with pytest.raises(TypeError, match="quanter must be a refquant.adapters.paddle"):
            Q.PACTQuanter(quanter=bad)
    Q.PACTQuanter(quanter=Q.FakeQuanterWithAbsMaxObserver())


# ---------------------------------------------------------------------------------------
# quanter, observer and quant-dequant layers
# ---------------------------------------------------------------------------------------
def _quanter_layers(profile: str) -> list[Any]:
    lin = paddle.nn.Linear(3, 4)
    inner = Q.FakeQuanterWithAbsMaxObserver(profile=profile)
    pact = Q.PACTQuanter(quanter=inner if profile == "paddleslim" else None, profile=profile)
    return [Q.FakeQuanterWithAbsMaxObserver(profile=profile)._instance(None),
            Q.FakeQuanterChannelWiseAbsMaxObserver(profile=profile)._instance(lin),
            pact._instance(None),
            Q.WeightLSQplusQuanter(profile=profile)._instance(lin),
            Q.ActLSQplusQuanter(profile=profile)._instance(None)]


@pytest.mark.parametrize("profile", ["canonical", "paddleslim"])
def test_quanter_layers_refuse_empty_input(profile):
    # Paddle's abs-max kernels end the process on an empty tensor (SIGSEGV / SIGFPE)
    for layer in _quanter_layers(profile):
        layer.train()
        with pytest.raises(ValueError, match=r"input of \w+ of .* must not be empty, got "
                                             r"shape \[0, 4\]"):
            layer(paddle.zeros([0, 4], "float32"))


def test_canonical_quanter_layers_refuse_nonfinite_input_like_the_reference():
    from refquant import quanters as ref

    x = np.array([[1.0, np.nan, 2.0, 0.5], [0.25, 1.0, -1.0, 3.0]], np.float32)
    for ref_quanter in (ref.PACTQuanter(), ref.WeightLSQplusQuanter(), ref.ActLSQplusQuanter()):
        with pytest.raises(ValueError, match="non-finite"):
            ref_quanter.forward(x)
    for layer in _quanter_layers("canonical"):
        layer.train()
        before = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
        with pytest.raises(ValueError, match=r"input of \w+ of .* holds NaN or Inf"):
            layer(paddle.to_tensor(x))
        after = {k: v.numpy() for k, v in layer.state_dict().items()}
        assert all(before[k].tobytes() == after[k].tobytes() for k in before)


def test_channel_wise_quanter_needs_its_axis_in_the_input():
    layer = Q.FakeQuanterChannelWiseAbsMaxObserver()._instance(paddle.nn.Linear(3, 4))
    with pytest.raises(ValueError, match=r"shape \[4\]: it has no axis quant_axis=1"):
        layer(paddle.ones([4], "float32"))


@pytest.mark.parametrize("kw,exc,msg", [
    ({"scale": "a"}, TypeError, "scale must be a real number"),
    ({"scale": None}, TypeError, "scale must be a real number"),
    ({"scale": []}, ValueError, "scale must not be empty"),
    ({"scale": [[1.0]]}, ValueError, "scale must be 0-D or 1-D"),
    ({"scale": -1.0}, ValueError, "scale must be finite"),
    ({"scale": 1e39}, ValueError, "scale holds 1e[+]39.*beyond the float32 range"),
    ({"scale": [1.0, 2.0], "axis": 2}, ValueError, "per-channel axis must be 0 or 1"),
    ({"scale": [1.0, 2.0], "axis": "0"}, TypeError, "axis must be an integer, got '0'"),
    ({"scale": 1.0, "bits": 99}, ValueError, r"bits must be in \[2, 16\], got 99"),
    ({"scale": 1.0, "bits": True}, TypeError, "bits must be an integer"),
    ({"scale": 1.0, "quantize": "no"}, TypeError, "quantize must be a bool"),
    ({"scale": 1.0, "dequantize": 1}, TypeError, "dequantize must be a bool"),
])
def test_quant_dequant_checks_its_arguments(kw, exc, msg):
    from refquant.adapters.paddle.layers import QuantDequant

    with pytest.raises(exc, match=msg):
        QuantDequant(**kw)


def test_quant_dequant_checks_its_input():
    from refquant.adapters.paddle.layers import QuantDequant

    with pytest.raises(TypeError, match="input of QuantDequant must be a paddle.Tensor"):
        QuantDequant(1.0)(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="floating-point tensor, got paddle.int64"):
        QuantDequant(1.0)(paddle.to_tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"shape \[2, 3\], but its 2 scales are along axis 1"):
        QuantDequant([1.0, 2.0], axis=1)(paddle.ones([2, 3]))
    QuantDequant([1.0, 2.0], axis=0)(paddle.ones([2, 3]))


def test_observe_wrapper_and_quantize_weight_check_their_arguments():
    from refquant.adapters.paddle.layers import ObserveWrapper, quantize_weight

    obs = A.AbsmaxObserver()._instance(None)
    with pytest.raises(TypeError, match="observer must be a paddle.nn.Layer, got int"):
        ObserveWrapper(1, paddle.nn.ReLU())
    with pytest.raises(TypeError, match="observed must be a paddle.nn.Layer, got str"):
        ObserveWrapper(obs, "relu")
    w = paddle.ones([3, 4])
    with pytest.raises(ValueError, match="scale must be finite"):
        quantize_weight(w, np.float32(np.nan), -1, 8)
    with pytest.raises(ValueError, match=r"scale of shape \[3\] does not fit a weight of "
                                         r"shape \[3, 4\] along axis 1"):
        quantize_weight(w, np.ones(3, np.float32), 1, 8)
    with pytest.raises(ValueError, match="bits must be in"):
        quantize_weight(w, np.float32(1.0), -1, 40)
