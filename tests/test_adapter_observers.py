"""Adapter observers inside a model vs the NumPy reference observers on the same tensors.

For every observer and both profiles, a tiny model is calibrated through
``refquant.adapters.paddle.PTQ``; the activations each observer saw are captured
independently (forward pre-hooks on the float model, which computes the same values because
observers are the identity) and fed to a fresh ``refquant.observers`` object. Exact
families must agree bit for bit; searches whose losses are sums must agree unless the
reference's decision margin is inside its stated bound.
"""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from refquant.adapters.paddle import PTQ, NotCalibratedError, QuantConfig  # noqa: E402
from refquant.adapters.paddle import observers as A  # noqa: E402
from refquant.adapters.paddle.layers import weight_axis  # noqa: E402

from refquant import observers as _ref_pkg  # noqa: E402,F401
from refquant.observers.absmax import AbsmaxObserver  # noqa: E402
from refquant.observers.avg import AVGObserver  # noqa: E402
from refquant.observers.channel_wise import (  # noqa: E402
    AbsMaxChannelWiseWeightObserver,
    MSEChannelWiseWeightObserver,
)
from refquant.observers.emd import EMDObserver  # noqa: E402
from refquant.observers.groupwise import GroupWiseWeightObserver  # noqa: E402
from refquant.observers.hist import HistObserver  # noqa: E402
from refquant.observers.kl import KLObserver  # noqa: E402
from refquant.observers.mse import MSEObserver  # noqa: E402

PROFILES = ("canonical", "paddleslim")


class Net(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3)
        self.relu = paddle.nn.ReLU()
        self.fc = paddle.nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).flatten(1))


def _model(seed: int = 0) -> Net:
    paddle.seed(seed)
    m = Net()
    m.eval()
    return m


def _batches(n: int = 3, seed: int = 1, shape=(2, 3, 8, 8), scale: float = 1.0) -> list:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * scale * (1 + i)).astype(np.float32)
            for i in range(n)]


def _capture(model: Net, batches: list) -> dict[str, list[np.ndarray]]:
    """Inputs of conv, relu and fc for each batch, from the float model."""
    seen: dict[str, list[np.ndarray]] = {"conv": [], "relu": [], "fc": []}
    hooks = []
    for name in seen:
        def hook(layer, inputs, name=name):
            seen[name].append(inputs[0].numpy().copy())
        hooks.append(getattr(model, name).register_forward_pre_hook(hook))
    for b in batches:
        model(paddle.to_tensor(b))
    for h in hooks:
        h.remove()
    return seen


def _bits(a) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


def _calibrate(act, weight, batches, seed=0):
    model = _model(seed)
    q = PTQ(QuantConfig(activation=act, weight=weight)).quantize(model)
    for b in batches:
        q(paddle.to_tensor(b))
    return model, q


ACT = [
    ("AbsmaxObserver", AbsmaxObserver, {}),
    ("AVGObserver", AVGObserver, {}),
    ("MSEObserver", MSEObserver, {}),
    ("EMDObserver", EMDObserver, {}),
    ("HistObserver", HistObserver, {"bins_count": 256}),
    ("KLObserver", KLObserver, {"bins_count": 256}),
]


def _decision_ok(name: str, ours, ref) -> bool:
    """Bit-equal scales, or a search decision inside the reference's stated bound."""
    if np.array_equal(_bits(ours.scale), _bits(ref.scale)):
        return True
    if name not in ("MSEObserver", "EMDObserver"):
        return False
    bound = ref.extra.get("bound", 0.0)
    if ref.margin is None:
        return False
    if name == "MSEObserver":
        return float(np.min(ref.margin)) <= bound
    losses = np.sort(np.concatenate([[ref.extra["carried"]], ref.extra["losses"]]))
    return float(losses[1] - losses[0]) <= 2 * bound


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name,ref_cls,kw", ACT, ids=[a[0] for a in ACT])
def test_activation_observers_match_reference(name, ref_cls, kw, profile):
    batches = _batches()
    model, q = _calibrate(getattr(A, name)(profile=profile, **kw), None, batches)
    seen = _capture(_model(0), batches)
    where = {"conv": q.conv.activation_quanter, "relu": q.relu._observer,
             "fc": q.fc.activation_quanter}
    for key, layer in where.items():
        ref = ref_cls(profile=profile, **kw)
        for arr in seen[key]:
            ref.observe(arr)
        ours, want = layer.qparams(), ref.compute()
        assert _decision_ok(name, ours, want), (key, ours.scale, want.scale, want.margin)
        assert np.array_equal(ours.zero_point, want.zero_point)
        assert (ours.qmin, ours.qmax, ours.axis) == (want.qmin, want.qmax, want.axis)


@pytest.mark.parametrize("profile", PROFILES)
def test_search_observers_on_large_margin_data_are_bit_exact(profile):
    # one batch of widely spread data: the MSE/EMD margins are far above the bounds, so the
    # sum-based searches must also agree to the bit
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 3, 8, 8)) ** 3).astype(np.float32)
    for fac, ref_cls in ((A.MSEObserver, MSEObserver), (A.EMDObserver, EMDObserver)):
        layer = fac(profile=profile)._instance(None)
        layer(paddle.to_tensor(x))
        ref = ref_cls(profile=profile)
        ref.observe(x)
        want = ref.compute()
        assert np.array_equal(_bits(layer.qparams().scale), _bits(want.scale)), fac


WEIGHT = [
    ("AbsMaxChannelWiseWeightObserver", AbsMaxChannelWiseWeightObserver, {}),
    ("MSEChannelWiseWeightObserver", MSEChannelWiseWeightObserver, {}),
    ("AbsmaxObserver", AbsmaxObserver, {}),
    ("MSEObserver", MSEObserver, {}),
    ("KLObserver", KLObserver, {"bins_count": 128}),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name,ref_cls,kw", WEIGHT, ids=[w[0] for w in WEIGHT])
def test_weight_observers_match_reference(name, ref_cls, kw, profile):
    batches = _batches(2)
    model, q = _calibrate(None, getattr(A, name)(profile=profile, **kw), batches)
    for key, axis in (("conv", 0), ("fc", 1)):
        w = getattr(model, key).weight.numpy()
        extra = {"axis": axis} if "ChannelWise" in name else {}
        ref = ref_cls(profile=profile, **kw, **extra)
        ref.observe(w)  # PTQ observes a (constant) weight once
        ours, want = getattr(q, key).weight_quanter.qparams(), ref.compute()
        assert np.array_equal(_bits(ours.scale), _bits(want.scale)), (key, name)
        assert ours.axis == want.axis


@pytest.mark.parametrize("profile", PROFILES)
def test_groupwise_weight_observer_matches_reference(profile):
    paddle.seed(3)
    fc = paddle.nn.Linear(128, 6)
    fc.eval()
    q = PTQ(QuantConfig(weight=A.GroupWiseWeightObserver(group_size=64, profile=profile))
            ).quantize(fc)
    q(paddle.randn([2, 128]))
    ref = GroupWiseWeightObserver(group_size=64, profile=profile)
    ref.observe(fc.weight.numpy())
    ours, want = q.weight_quanter.qparams(), ref.compute()
    assert ours.scale.shape == (2, 6)
    assert np.array_equal(_bits(ours.scale), _bits(want.scale))


def test_device_histogram_equals_reference_histogram_any_order():
    from refquant.adapters.paddle import _device as dev

    from refquant.histogram import ExactHistogram

    rng = np.random.default_rng(9)
    parts = [rng.standard_normal(500).astype(np.float32) * s for s in (1e-3, 4.0, 0.5)]
    parts.append(np.array([0.0, -0.0, 3e-39, -7.5], np.float32))  # zeros, a subnormal
    for symmetric in (True, False):
        ref = ExactHistogram(64, symmetric=symmetric)
        for p in parts:
            ref.add(p)
        ours = ExactHistogram(64, symmetric=symmetric)
        for p in reversed(parts):
            ours.merge(dev.exact_histogram_of(paddle.to_tensor(p), 64, symmetric))
        assert ours == ref


def test_tiny_and_huge_ranges_histogram():
    from refquant.adapters.paddle import _device as dev

    from refquant.histogram import ExactHistogram

    for arr in (np.array([1e-44, -3e-45, 2e-42], np.float32),
                np.array([3e38, -1e38, 1.0], np.float32),
                np.array([2.5, 2.5, 2.5], np.float32)):
        for symmetric in (True, False):
            ref = ExactHistogram(16, symmetric=symmetric)
            ref.add(arr)
            got = dev.exact_histogram_of(paddle.to_tensor(arr), 16, symmetric)
            ours = ExactHistogram(16, symmetric=symmetric)
            ours.merge(got)
            assert ours == ref, (arr, symmetric)


def test_observers_do_not_modify_input_and_return_it():
    x = paddle.to_tensor(_batches(1)[0])
    before = x.numpy().copy()
    for fac in (A.AbsmaxObserver(), A.MSEObserver(), A.KLObserver(), A.AVGObserver()):
        layer = fac._instance(None)
        out = layer(x)
        assert out is x
        assert np.array_equal(x.numpy(), before)


def test_factories_validate_arguments_and_build_named_layers():
    with pytest.raises(ValueError, match="quant_bits"):
        A.MSEObserver(quant_bits=1)
    with pytest.raises(ValueError, match="profile"):
        A.AbsmaxObserver(profile="slim")
    with pytest.raises(TypeError, match="axis"):
        A.AbsMaxChannelWiseWeightObserver(axis="0")
    for name in A.__all__:
        obj = getattr(A, name)
        if name.endswith("Observer"):
            assert obj()._get_class().__name__ == name + "Layer"
            assert issubclass(obj, paddle.quantization.factory.ObserverFactory)


def test_nonfinite_input_gives_clear_error():
    layer = A.MSEObserver()._instance(paddle.nn.ReLU())
    bad = paddle.to_tensor(np.array([1.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer(bad)
    ok = A.MSEObserver(ignore_nonfinite=True)._instance(None)
    ok(paddle.to_tensor(np.array([1.0, np.nan, -2.0], np.float32)))
    ref = MSEObserver(ignore_nonfinite=True)
    ref.observe(np.array([1.0, np.nan, -2.0], np.float32))
    assert np.array_equal(_bits(ok.qparams().scale), _bits(ref.compute().scale))


def test_scales_before_calibration_raise():
    layer = A.KLObserver()._instance(paddle.nn.ReLU())
    with pytest.raises(NotCalibratedError, match="ReLU"):
        layer.scales()


def test_factories_work_inside_paddle_quantconfig():
    from paddle.quantization import PTQ as PaddlePTQ
    from paddle.quantization import QuantConfig as PaddleConfig

    model = _model(0)
    cfg = PaddleConfig(activation=A.AbsmaxObserver(), weight=A.AbsMaxChannelWiseWeightObserver())
    q = PaddlePTQ(cfg).quantize(model)
    batches = _batches(2)
    for b in batches:
        q(paddle.to_tensor(b))
    ref = AbsmaxObserver()
    for b in batches:
        ref.observe(b)
    got = q.conv.activation_quanter.scales().numpy()
    assert np.array_equal(_bits(got), _bits(ref.compute().scale))
    assert q.fc.weight_quanter.quant_axis() == 1


class _Odd(paddle.nn.Layer):
    def __init__(self, shape, transposed=False):
        super().__init__()
        self.weight = self.create_parameter(shape)
        if transposed:
            self._transposed = True


def test_weight_axis_rules():
    assert weight_axis(paddle.nn.Conv2D(2, 3, 1)) == 0
    assert weight_axis(paddle.nn.Conv1D(2, 3, 1)) == 0
    assert weight_axis(paddle.nn.Conv2DTranspose(2, 3, 1)) == 1
    assert weight_axis(paddle.nn.Linear(2, 3)) == 1
    assert weight_axis(_Odd([4, 3, 1, 1])) == 0
    assert weight_axis(_Odd([4, 3, 1, 1], transposed=True)) == 1
    assert weight_axis(_Odd([4, 3])) == 1
    assert weight_axis(_Odd([4, 3, 2]), axis=-1) == 2
    with pytest.raises(ValueError, match="_Odd"):
        weight_axis(_Odd([7]))
    with pytest.raises(ValueError, match="ReLU"):
        weight_axis(paddle.nn.ReLU())
    with pytest.raises(ValueError, match="out of range"):
        weight_axis(_Odd([4, 3]), axis=2)


def test_channel_wise_observer_on_activation_leaf_names_the_layer():
    cfg = QuantConfig(activation=A.AbsMaxChannelWiseWeightObserver())
    with pytest.raises(ValueError, match="ReLU"):
        PTQ(cfg).quantize(_model(0))


@pytest.mark.parametrize("fac", [A.AbsmaxObserver, A.AVGObserver])
def test_deferred_observers_report_nonfinite_batches(fac):
    layer = fac()._instance(paddle.nn.ReLU())
    layer(paddle.to_tensor(np.ones((2, 3), np.float32)))
    layer(paddle.to_tensor(np.array([[1.0, np.inf, 0.0]], np.float32)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer.qparams()


@pytest.mark.parametrize("profile", PROFILES)
def test_deferred_observers_interleaved_with_compute(profile):
    # scales() between batches (PaddleSlim's stale cache for Absmax, quirk 10) must see
    # exactly what the reference sees when fed the same batches in the same order
    batches = _batches(4, seed=3)
    for fac, ref_cls in ((A.AbsmaxObserver, AbsmaxObserver), (A.AVGObserver, AVGObserver)):
        layer = fac(profile=profile)._instance(None)
        ref = ref_cls(profile=profile)
        for i, b in enumerate(batches):
            layer(paddle.to_tensor(b))
            ref.observe(b)
            if i == 1:
                assert np.array_equal(_bits(layer.qparams().scale), _bits(ref.compute().scale))
        assert np.array_equal(_bits(layer.qparams().scale), _bits(ref.compute().scale))
        assert layer.reference.num_batches == ref.num_batches
