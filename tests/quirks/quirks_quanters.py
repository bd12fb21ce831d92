"""Quirk registry for the quanters (Q38-Q53).

Each entry's ``paddleslim_value`` was measured by running PaddleSlim 2.6.0 on Paddle 3.3.1
(CPU) on the stated input (the ``real`` callable reproduces the measurement). Per-tensor LSQ+
quanters crash on Paddle 3.3.1 (Q42, Q47); their values were measured with the
set_value-shim (``Tensor.set_value`` reshapes its argument to the parameter's shape).

Importable with NumPy + refquant alone: paddle / paddleslim are imported inside ``real``.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from refquant.quanters import (
    ActLSQplusQuanter,
    FakeQuanterChannelWiseAbsMaxObserver,
    FakeQuanterWithAbsMaxObserver,
    PACTQuanter,
    WeightLSQplusQuanter,
)

F32 = np.float32
Quirk = dict


# -- helpers --------------------------------------------------------------------------------
def _f32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=F32)


def _same_bits(got: Any, want: Any) -> bool:
    g, w = _f32(got), _f32(want)
    return g.shape == w.shape and bool(np.array_equal(g.view(np.uint32), w.view(np.uint32)))


def _raises(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the registry reports any exception
        return f"raises {type(exc).__name__}"
    return "does not raise"


def _paddle() -> Any:
    import paddle

    return paddle


def _slim() -> Any:
    from refquant.testing import import_paddleslim

    return import_paddleslim("paddleslim.quant.quanters")


def _ma_factory() -> Any:
    from paddle.quantization.quanters.abs_max import FakeQuanterWithAbsMaxObserver as MA

    return MA()


@contextlib.contextmanager
def _set_value_shim() -> Any:
    paddle = _paddle()
    orig = paddle.Tensor.set_value

    def shim(self: Any, value: Any) -> Any:
        if isinstance(value, paddle.Tensor):
            value = value.numpy()
        return orig(self, np.asarray(value).reshape(self.shape))

    paddle.Tensor.set_value = shim
    try:
        yield
    finally:
        paddle.Tensor.set_value = orig


def _t(values: Any) -> Any:
    return _paddle().to_tensor(_f32(values))


def _weight_layer(shape: tuple[int, ...]) -> Any:
    return types.SimpleNamespace(weight=_paddle().zeros(list(shape)))


class _IdentityFactory:
    """A stand-in inner quanter for PACT that returns its input (shows the clip alone)."""

    def _instance(self, layer: Any) -> Any:
        return _paddle().nn.Identity()


# -- inputs ---------------------------------------------------------------------------------
X39A = [-5.0, -1.0, 0.5, 3.0]
X39B = [-3.0, -0.5, 0.25, 2.0, 4.0]
X39C = [-3.0, 0.0, 3.0]
X40 = [0.25, -0.5]
W43 = (np.arange(12, dtype=F32).reshape(3, 4, 1, 1) * F32(0.25) - F32(1.1)).astype(F32)
W45 = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
STEPS45 = [1.0, 10.0, 100.0]
X48 = [0.0, 2.0, 5.0, 10.0]
W52 = [[1.0, -5.0, 0.0], [-2.0, 0.5, 0.0]]


# -- Q38 ------------------------------------------------------------------------------------
def _q38(profile: str) -> float:
    inner = FakeQuanterWithAbsMaxObserver(profile=profile)
    return float(PACTQuanter(inner, profile=profile).state["alpha"].reshape(-1)[0])


def _q38_real() -> float:
    slim = _slim()
    return float(slim.PACTQuanter(quanter=_ma_factory())._instance(None).alpha.numpy()[0])


# -- Q39 ------------------------------------------------------------------------------------
def _pact(alpha: float, profile: str, inner: bool = True) -> PACTQuanter:
    q = FakeQuanterWithAbsMaxObserver(profile=profile) if inner else None
    return PACTQuanter(q, init_value=alpha, profile=profile)


def _q39a(profile: str) -> list[float]:
    return _pact(2.0, profile).clip(_f32(X39A)).tolist()


def _q39a_real() -> list[float]:
    from paddleslim.quant.quanters.pact import PACTQuanterLayer

    _slim()
    layer = PACTQuanterLayer(None, _IdentityFactory(), init_value=2.0)
    return [float(v) for v in layer(_t(X39A)).numpy()]


def _q39b(profile: str) -> float:
    q = _pact(1.0, profile)
    x = _f32(X39B)
    q.forward(x)
    return float(q.backward(x, np.ones(5, F32))["alpha"].reshape(-1)[0])


def _q39b_real() -> float:
    paddle = _paddle()
    layer = _slim().PACTQuanter(quanter=_ma_factory(), init_value=1.0)._instance(None)
    x = paddle.to_tensor(_f32(X39B), stop_gradient=False)
    layer(x).backward(paddle.ones([5]))
    return float(layer.alpha.grad.numpy()[0])


def _q39c(profile: str) -> Any:
    if profile == "canonical":
        return _raises(lambda: _pact(-1.0, profile))
    return _pact(-1.0, profile).clip(_f32(X39C)).tolist()


def _q39c_real() -> list[float]:
    from paddleslim.quant.quanters.pact import PACTQuanterLayer

    _slim()
    layer = PACTQuanterLayer(None, _IdentityFactory(), init_value=-1.0)
    return [float(v) for v in layer(_t(X39C)).numpy()]


# -- Q40 ------------------------------------------------------------------------------------
def _q40(profile: str) -> float:
    q = _pact(100.0, profile, inner=profile == "paddleslim")
    q.forward(_f32(X40))
    return float(q.scales().reshape(-1)[0])


def _q40_real() -> float:
    layer = _slim().PACTQuanter(quanter=_ma_factory())._instance(None)
    layer(_t(X40))
    return float(layer.scales().numpy()[0])


# -- Q41 / Q47 ------------------------------------------------------------------------------
def _q41(profile: str) -> Any:
    def make() -> tuple[int, int, int, int]:
        q = WeightLSQplusQuanter(quant_bits=4, sign=False, symmetric=False, profile=profile)
        qp = q.qparams()
        return (qp.bits, qp.qmin, qp.qmax, int(qp.zero_point))

    if profile == "canonical":
        return _raises(make)
    return make()


def _q41_real() -> tuple[int, int, int, int]:
    layer = _slim().WeightLSQplusQuanter(quant_bits=4, sign=False,
                                         symmetric=False)._instance(_weight_layer((3, 4, 1, 1)))
    return (layer.bit_length(), layer.qmin, layer.qmax, layer.zero_points())


def _q47(profile: str) -> tuple[int, int, int]:
    q = ActLSQplusQuanter(quant_bits=4, sign=False, profile=profile)
    if profile == "canonical":  # canonical qparams() needs a learned step (a forward)
        q.forward(np.array([0.5, 1.0, 2.0], F32))
    qp = q.qparams()
    return (qp.bits, qp.qmin, qp.qmax)


def _q47_real() -> tuple[int, int, int]:
    layer = _slim().ActLSQplusQuanter(quant_bits=4, sign=False)._instance(None)
    return (layer.bit_length(), layer.qmin, layer.qmax)


# -- Q42 / Q43 / Q46 ------------------------------------------------------------------------
def _q43(profile: str) -> float:
    q = WeightLSQplusQuanter(profile=profile)
    q.forward(W43)
    return float(q.scales().reshape(-1)[0])


def _q43_real() -> float:
    with _set_value_shim():
        layer = _slim().WeightLSQplusQuanter()._instance(_weight_layer(W43.shape))
        layer(_t(W43))
        return float(layer._scale.numpy()[0])


Y42 = [-1.0982015132904053, -0.8528586030006409, -0.5958327054977417, -0.35048985481262207,
       -0.10514695197343826, 0.15187892317771912, 0.39722180366516113, 0.6542477011680603,
       0.8995906114578247, 1.1449334621429443, 1.4019594192504883, 1.4837403297424316]


def _q42(profile: str) -> list[float]:
    return WeightLSQplusQuanter(profile=profile).forward(W43).ravel().tolist()


def _q42_real() -> list[float]:
    with _set_value_shim():
        layer = _slim().WeightLSQplusQuanter()._instance(_weight_layer(W43.shape))
        return [float(v) for v in layer(_t(W43)).numpy().ravel()]


def crash_without_shim_real() -> tuple[str, str]:
    """What the per-tensor LSQ+ quanters do on Paddle 3.3.1 without the shim (Q42, Q47)."""
    w = _slim().WeightLSQplusQuanter()._instance(_weight_layer(W43.shape))
    a = _slim().ActLSQplusQuanter()._instance(None)
    return _raises(lambda: w(_t(W43))), _raises(lambda: a(_t(X48)))


def _q43_g(profile: str) -> float:
    q = WeightLSQplusQuanter(per_channel=True, profile=profile)
    q.forward(W43)
    return float(q.state["g"])


def _q43_g_real() -> float:
    layer = _slim().WeightLSQplusQuanter(per_channel=True)._instance(_weight_layer(W43.shape))
    layer(_t(W43))
    return float(layer.g.numpy())


def _q46(profile: str) -> tuple[float, str]:
    q = WeightLSQplusQuanter(profile=profile)
    q.forward(W43)
    qp = q.qparams()
    return (float(qp.scale), qp.convention)


# -- Q44 ------------------------------------------------------------------------------------
def _q44(profile: str) -> list[float]:
    q = WeightLSQplusQuanter(per_channel=True, profile=profile)
    q.forward(W43)
    q.forward(W43)
    return q.scales().tolist()


def _q44_real() -> list[float]:
    layer = _slim().WeightLSQplusQuanter(per_channel=True)._instance(_weight_layer(W43.shape))
    layer(_t(W43))
    layer(_t(W43))
    return [float(v) for v in layer._scale.numpy()]


# -- Q45 ------------------------------------------------------------------------------------
def _q45(profile: str) -> list[list[float]]:
    q = WeightLSQplusQuanter(per_channel=True, quant_linear=True, batch_init=1, profile=profile)
    q.forward(_f32(W45))
    state = q.state
    state["scale"] = _f32(STEPS45)
    q.load_state(state)
    return q.forward(_f32(W45)).tolist()


def _q45_real() -> list[list[float]]:
    layer = _slim().WeightLSQplusQuanter(per_channel=True, quant_linear=True,
                                         batch_init=1)._instance(_weight_layer((2, 3)))
    layer(_t(W45))
    layer._scale.set_value(_f32(STEPS45))
    return layer(_t(W45)).numpy().tolist()


# -- Q48 / Q49 / Q50 ------------------------------------------------------------------------
def _q48(profile: str) -> list[float]:
    return ActLSQplusQuanter(profile=profile).forward(_f32(X48)).tolist()


def _q48_real() -> list[float]:
    with _set_value_shim():
        return _slim().ActLSQplusQuanter()._instance(None)(_t(X48)).numpy().tolist()


def _q49(profile: str) -> float:
    q = ActLSQplusQuanter(symmetric=False, profile=profile)
    q.forward(_f32(X48))
    q.forward(_f32(X48))
    return float(q.state["beta"].reshape(-1)[0])


def _q49_real() -> float:
    with _set_value_shim():
        layer = _slim().ActLSQplusQuanter(symmetric=False)._instance(None)
        layer(_t(X48))
        layer(_t(X48))
        return float(layer._beta.numpy()[0])


def _q50(profile: str) -> float:
    q = ActLSQplusQuanter(symmetric=False, profile=profile)
    q.forward(_f32(X48))
    return float(np.asarray(q.zero_points()).reshape(-1)[0])


def _q50_real() -> float:
    with _set_value_shim():
        layer = _slim().ActLSQplusQuanter(symmetric=False)._instance(None)
        layer(_t(X48))
        return float(layer.zero_points().numpy()[0])


# -- Q51 / Q52 / Q53 ------------------------------------------------------------------------
def _q51(profile: str) -> str:
    return _raises(lambda: FakeQuanterChannelWiseAbsMaxObserver(  # type: ignore[call-arg]
        quant_bits=8, profile=profile))


def _q51_real() -> str:
    from paddleslim.quant.quanters.channel_wise_abs_max import (
        FakeQuanterChannelWiseAbsMaxObserver as CW,
    )

    _slim()
    return _raises(lambda: CW(quant_bits=8))


def _q52(profile: str) -> list[float]:
    q = FakeQuanterChannelWiseAbsMaxObserver(quant_axis=1, profile=profile)
    q.forward(_f32(W52))
    q.forward((_f32(W52) * F32(0.1)).astype(F32))
    return q.scales().tolist()


def _q52_real() -> list[float]:
    from paddleslim.quant.quanters.channel_wise_abs_max import (
        FakeQuanterChannelWiseAbsMaxObserver as CW,
    )

    _slim()
    layer = CW()._instance(_paddle().nn.Linear(2, 3))
    layer(_t(W52))
    layer(_t((_f32(W52) * F32(0.1)).astype(F32)))
    return [float(v) for v in layer._scale.numpy()]


def _q53(profile: str) -> Any:
    q = FakeQuanterChannelWiseAbsMaxObserver(quant_axis=1, profile=profile)
    q.forward(_f32(W52))
    zp = q.zero_points()
    return None if zp is None else zp.tolist()


def _q53_real() -> Any:
    from paddleslim.quant.quanters.channel_wise_abs_max import (
        FakeQuanterChannelWiseAbsMaxObserver as CW,
    )

    _slim()
    layer = CW()._instance(_paddle().nn.Linear(2, 3))
    layer(_t(W52))
    return layer.zero_points()


# -- registry -------------------------------------------------------------------------------
def _entry(qid: str, title: str, input_: str, value: Any, fn: Callable[[str], Any],
           check: Callable[[Any], bool], real: Callable[[], Any] | None = None) -> Quirk:
    entry: Quirk = {
        "id": qid,
        "title": title,
        "input": input_,
        "paddleslim_value": value,
        "refquant_paddleslim": lambda: fn("paddleslim"),
        "refquant_canonical": lambda: fn("canonical"),
        "check": lambda: check(fn("paddleslim")),
    }
    if real is not None:
        entry["real"] = real
    return entry


def _eq(want: Any) -> Callable[[Any], bool]:
    return lambda got: got == want


def _bits(want: Any) -> Callable[[Any], bool]:
    return lambda got: _same_bits(got, want)


QUIRKS: list[Quirk] = [
    _entry("Q38", "PACT alpha: factory default init_value=100, the layer class alone 1000",
           "PACTQuanter(quanter=FakeQuanterWithAbsMaxObserver()) via the factory",
           100.0, _q38, _bits(100.0), _q38_real),
    _entry("Q39a", "PACT clips symmetrically to [-alpha, alpha] (paper: [0, alpha])",
           "alpha=2, x=[-5,-1,.5,3], clipped activation before the inner quanter",
           [-2.0, -1.0, 0.5, 2.0], _q39a, _bits([-2.0, -1.0, 0.5, 2.0]), _q39a_real),
    _entry("Q39b", "PACT dalpha counts x > alpha as +1 and x < -alpha as -1",
           "alpha=1, x=[-3,-.5,.25,2,4], dy=1, inner FakeQuanterWithAbsMaxObserver",
           1.0, _q39b, _bits(1.0), _q39b_real),
    _entry("Q39c", "PACT with a negative alpha flips the data (canonical: error)",
           "alpha=-1, x=[-3,0,3], clipped activation",
           [1.0, 0.0, -1.0], _q39c, _bits([1.0, 0.0, -1.0]), _q39c_real),
    _entry("Q40", "PACT scales() is the inner quanter's scale, not alpha",
           "alpha=100, x=[.25,-.5], inner FakeQuanterWithAbsMaxObserver (canonical: no inner "
           "quanter, alpha is the scale)",
           0.7368420958518982, _q40, _bits(0.7368420958518982), _q40_real),
    _entry("Q41", "WeightLSQplusQuanter ignores quant_bits/sign/symmetric: 8-bit signed grid",
           "WeightLSQplusQuanter(quant_bits=4, sign=False, symmetric=False): "
           "(bits, qmin, qmax, zero point)",
           (8, -128, 127, 0), _q41, _eq((8, -128, 127, 0)), _q41_real),
    _entry("Q42", "Per-tensor WeightLSQplusQuanter crashes on Paddle 3.3.1 (AssertionError: a "
           "0-D value set into a [1] parameter); refquant computes the set_value-shim result",
           "3x4x1x1 weight arange(12)*0.25-1.1, first forward, default arguments: the output "
           "(real: with the set_value-shim; without it the call raises AssertionError)",
           Y42, _q42, _bits(Y42), _q42_real),
    _entry("Q43", "LSQ+ weight init divides the 3-sigma bound by 255 while Qp=127 "
           "(canonical: by 2^(b-1)=128)",
           "3x4x1x1 weight arange(12)*0.25-1.1, one forward (set_value-shim): the step",
           0.011682994663715363, _q43, _bits(0.011682994663715363), _q43_real),
    _entry("Q43b", "LSQ+ gradient scale g uses the total numel even per channel",
           "3x4x1x1 weight arange(12)*0.25-1.1, per_channel=True: g",
           0.02561577595770359, _q43_g, _bits(0.02561577595770359), _q43_g_real),
    _entry("Q44", "Per-channel collect_gaussian sets s*0.9+0.1*s/255 from the raw 3-sigma "
           "bound: the step grows ~230x",
           "3x4x1x1 weight arange(12)*0.25-1.1, per_channel=True, two forwards: the steps",
           [1.524585247039795, 1.1194088459014893, 2.019800901412964], _q44,
           _bits([1.524585247039795, 1.1194088459014893, 2.019800901412964]), _q44_real),
    _entry("Q45", "Per-channel LsqFunc with quant_axis=1 reshapes [in,out] to (out,-1) "
           "without a transpose",
           "w=[[1,2,3],[4,5,6]], quant_linear=True, column steps [1,10,100]",
           [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]], _q45,
           _bits([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]), _q45_real),
    _entry("Q46", "scales() returns the LSQ step, consumers read it as an abs-max threshold",
           "3x4x1x1 weight arange(12)*0.25-1.1, one forward: (scale, convention)",
           (0.011682994663715363, "threshold"), _q46,
           lambda got: _same_bits(got[0], 0.011682994663715363) and got[1] == "threshold"),
    _entry("Q47", "ActLSQplusQuanter ignores quant_bits/sign (its first forward also crashes "
           "on Paddle 3.3.1 like Q42; refquant computes the set_value-shim result)",
           "ActLSQplusQuanter(quant_bits=4, sign=False): (bits, qmin, qmax)",
           (8, -128, 127), _q47, _eq((8, -128, 127)), _q47_real),
    _entry("Q48", "Symmetric act init (max-min)/255 on a signed grid clips at half the range",
           "symmetric ActLSQplusQuanter, x=[0,2,5,10] (set_value-shim)",
           [0.0, 2.0, 4.9803924560546875, 4.9803924560546875], _q48,
           _bits([0.0, 2.0, 4.9803924560546875, 4.9803924560546875]), _q48_real),
    _entry("Q49", "The beta EMA is seeded with the scale: beta=0.9*scale+0.1*(min-scale*qmin)",
           "asymmetric ActLSQplusQuanter, x=[0,2,5,10] twice: beta",
           0.5372549295425415, _q49, _bits(0.5372549295425415), _q49_real),
    _entry("Q50", "zero_points() = clip(qmin - round(qmin/scale)) = 127, not -round(beta/s)",
           "asymmetric ActLSQplusQuanter, x=[0,2,5,10] once: zero_points()",
           127.0, _q50, _bits(127.0), _q50_real),
    _entry("Q51", "The channel-wise quanter's keyword is bit_length: quant_bits= is a TypeError",
           "FakeQuanterChannelWiseAbsMaxObserver(quant_bits=8)",
           "raises TypeError", _q51, _eq("raises TypeError"), _q51_real),
    _entry("Q52", "Channel-wise scale (init 0.001) is overwritten by the current abs-max, "
           "no averaging",
           "Linear weight [[1,-5,0],[-2,.5,0]] then 0.1x it: the scales",
           [0.20000000298023224, 0.5, 0.0], _q52, _bits([0.20000000298023224, 0.5, 0.0]),
           _q52_real),
    _entry("Q53", "Channel-wise zero_points() returns None (PTQ.convert then fails)",
           "Linear weight [[1,-5,0],[-2,.5,0]]: zero_points()",
           None, _q53, lambda got: got is None, _q53_real),
]


def same_outcome(real: Any, ours: Any) -> bool:
    """Whether the real PaddleSlim's outcome equals the ``paddleslim`` profile's: lists and
    floats as float32 bit patterns, anything else by ``==``. Both sides report PaddleSlim's
    exceptions as ``"raises <type>"`` strings, so an exception escaping either is a failure."""
    if isinstance(real, BaseException) or isinstance(ours, BaseException):
        return False
    if isinstance(real, (list, float)):
        return _same_bits(ours, real)
    return bool(ours == real)
