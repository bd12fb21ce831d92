"""Quirk registry for the Paddle adapter (QuantConfig, PTQ and convert: Q54-Q61).

These quirks live in Paddle 3.3.1's ``paddle.quantization`` (QuantConfig, PTQ, convert) that
PaddleSlim's flow runs on. ``refquant.adapters.paddle`` reproduces them with
``QuantConfig(..., profile="paddleslim")`` (and the ``profile="paddleslim"`` observers), and
fixes them in the canonical profile. Every ``paddleslim_value`` was measured by running
Paddle 3.3.1 / PaddleSlim 2.6.0 (CPU) on the stated input; the ``real`` callables repeat the
measurement.

The module imports with NumPy + refquant alone; paddle (and paddleslim, inside ``real``)
are imported when a callable runs -- the adapter itself needs paddle, so every callable
does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Quirk = dict


# -- helpers --------------------------------------------------------------------------------
def _paddle() -> Any:
    import paddle

    return paddle


def _adapter() -> Any:
    import refquant.adapters.paddle as adapter
    import refquant.adapters.paddle.observers as observers

    return adapter, observers


def _real_api() -> Any:
    from paddle.quantization import PTQ, QuantConfig

    return PTQ, QuantConfig


def _raises(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the registry reports any exception
        return f"raises {type(exc).__name__}"
    return "does not raise"


def _same_bits(got: Any, want: Any) -> bool:
    g, w = np.asarray(got, np.float32), np.asarray(want, np.float32)
    return g.shape == w.shape and bool(np.array_equal(g.view(np.uint32), w.view(np.uint32)))


def _seq(*layers: Any) -> Any:
    m = _paddle().nn.Sequential(*layers)
    m.eval()
    return m


def _ours(profile: str, activation: Any = None, weight: Any = None) -> tuple[Any, Any]:
    adapter, _ = _adapter()
    cfg = adapter.QuantConfig(activation=activation, weight=weight, profile=profile)
    return cfg, adapter.PTQ


def _obs(name: str, profile: str, **kw: Any) -> Any:
    _, observers = _adapter()
    return getattr(observers, name)(profile=profile, **kw)


# -- Q54: add_layer_config is a name config; the last call wins -----------------------------
def _q54(profile: str) -> int:
    paddle = _paddle()
    model = _seq(paddle.nn.Linear(2, 2))
    cfg, PTQ = _ours(profile)
    cfg.add_layer_config(model[0], activation=_obs("AbsmaxObserver", profile, quant_bits=5))
    cfg.add_name_config(model[0].full_name(),
                        activation=_obs("AbsmaxObserver", profile, quant_bits=6))
    return int(PTQ(cfg).quantize(model)[0].activation_quanter.bit_length())


def _q54_real() -> int:
    paddle = _paddle()
    from paddle.quantization.observers import AbsmaxObserver

    PTQ, QuantConfig = _real_api()
    model = _seq(paddle.nn.Linear(2, 2))
    cfg = QuantConfig(activation=None, weight=None)
    cfg.add_layer_config(model[0], activation=AbsmaxObserver(quant_bits=5))
    cfg.add_name_config(model[0].full_name(), activation=AbsmaxObserver(quant_bits=6))
    return int(PTQ(cfg).quantize(model)[0].activation_quanter.bit_length())


# -- Q55: type configs match the exact type only ------------------------------------------
def _my_linear() -> Any:
    paddle = _paddle()

    class MyLinear(paddle.nn.Linear):
        pass

    return MyLinear(2, 2)


def _q55(profile: str) -> str:
    paddle = _paddle()
    model = _seq(_my_linear())
    cfg, PTQ = _ours(profile)
    cfg.add_type_config(paddle.nn.Linear, activation=_obs("AbsmaxObserver", profile))
    return type(PTQ(cfg).quantize(model)[0]).__name__


def _q55_real() -> str:
    paddle = _paddle()
    from paddle.quantization.observers import AbsmaxObserver

    PTQ, QuantConfig = _real_api()
    model = _seq(_my_linear())
    cfg = QuantConfig(activation=None, weight=None)
    cfg.add_type_config(paddle.nn.Linear, activation=AbsmaxObserver())
    return type(PTQ(cfg).quantize(model)[0]).__name__


# -- Q56: the root model is never configured ------------------------------------------------
def _bare_linear() -> Any:
    lin = _paddle().nn.Linear(2, 2)
    lin.eval()
    return lin


def _q56(profile: str) -> str:
    cfg, PTQ = _ours(profile, activation=_obs("AbsmaxObserver", profile),
                     weight=_obs("AbsmaxObserver", profile))
    return type(PTQ(cfg).quantize(_bare_linear())).__name__


def _q56_real() -> str:
    from paddle.quantization.observers import AbsmaxObserver

    PTQ, QuantConfig = _real_api()
    cfg = QuantConfig(activation=AbsmaxObserver(), weight=AbsmaxObserver())
    return type(PTQ(cfg).quantize(_bare_linear())).__name__


# -- Q57: quantize(inplace=False) asserts on the caller's training flag ---------------------
def _training_model() -> Any:
    m = _paddle().nn.Sequential(_paddle().nn.Linear(2, 2))
    m.train()
    return m


def _q57(profile: str) -> str:
    cfg, PTQ = _ours(profile, activation=_obs("AbsmaxObserver", profile))
    q = PTQ(cfg).quantize(_training_model(), inplace=False)
    return "training" if q.training else "eval"


def _q57_real() -> str:
    from paddle.quantization.observers import AbsmaxObserver

    PTQ, QuantConfig = _real_api()
    q = PTQ(QuantConfig(activation=AbsmaxObserver(), weight=None)).quantize(
        _training_model(), inplace=False)
    return "training" if q.training else "eval"


# -- Q58: observers of leaf layers see the leaf's input -------------------------------------
X58 = [-3.0, 1.0]


def _q58(profile: str) -> Any:
    paddle = _paddle()
    cfg, PTQ = _ours(profile, activation=_obs("AbsmaxObserver", profile))
    q = PTQ(cfg).quantize(_seq(paddle.nn.ReLU()))
    q(paddle.to_tensor(np.asarray(X58, np.float32)))
    return np.float32(q[0]._observer.scales().numpy())


def _q58_real() -> Any:
    paddle = _paddle()
    from paddle.quantization.observers import AbsmaxObserver

    PTQ, QuantConfig = _real_api()
    q = PTQ(QuantConfig(activation=AbsmaxObserver(), weight=None)).quantize(
        _seq(paddle.nn.ReLU()))
    q(paddle.to_tensor(np.asarray(X58, np.float32)))
    q[0]._observer.cal_thresholds()
    return np.float32(q[0]._observer.scales().numpy())


# -- Q59: convert / scales() before calibration ---------------------------------------------
def _q59a(profile: str) -> str:
    paddle = _paddle()
    cfg, PTQ = _ours(profile, activation=_obs("MSEObserver", profile),
                     weight=_obs("MSEObserver", profile))
    ptq = PTQ(cfg)
    q = ptq.quantize(_seq(paddle.nn.Linear(2, 2)))
    ptq.convert(q)
    return "converted"


def _slim_observers() -> Any:
    from refquant.testing import import_paddleslim

    return import_paddleslim("paddleslim.quant.observers")


def _q59a_real() -> str:
    paddle = _paddle()
    slim = _slim_observers()
    PTQ, QuantConfig = _real_api()
    ptq = PTQ(QuantConfig(activation=slim.MSEObserver(), weight=slim.MSEObserver()))
    q = ptq.quantize(_seq(paddle.nn.Linear(2, 2)))
    ptq.convert(q)
    return "converted"


def _q59b(profile: str) -> Any:
    layer = _obs("KLObserver", profile)._instance(_paddle().nn.ReLU())
    return layer.scales()


def _q59b_real() -> Any:
    slim = _slim_observers()
    return slim.KLObserver()._instance(_paddle().nn.ReLU()).scales()


# -- Q60: a quanted layer without a weight quanter is skipped by convert --------------------
def _q60(profile: str) -> str:
    paddle = _paddle()
    cfg, PTQ = _ours(profile, activation=_obs("AbsmaxObserver", profile))
    ptq = PTQ(cfg)
    q = ptq.quantize(_seq(paddle.nn.Linear(2, 2)))
    q(paddle.ones([3, 2]))
    return type(ptq.convert(q)[0].activation_quanter).__name__


def _q60_real() -> str:
    paddle = _paddle()
    slim = _slim_observers()
    PTQ, QuantConfig = _real_api()
    ptq = PTQ(QuantConfig(activation=slim.AbsmaxObserver(), weight=None))
    q = ptq.quantize(_seq(paddle.nn.Linear(2, 2)))
    q(paddle.ones([3, 2]))
    return type(ptq.convert(q)[0].activation_quanter).__name__


# -- Q61: QDQ hard-codes signed bounds and ignores the zero point ---------------------------
X61 = [1.0 / 127.0, 0.5, -3.0]


class _FixedQuanterFactory:
    """A foreign quanter factory with fixed ``scales() = 2`` and ``zero_points() = 10``."""

    def _instance(self, layer: Any) -> Any:
        paddle = _paddle()
        from paddle.quantization.base_quanter import BaseQuanter

        class Fixed(BaseQuanter):
            def forward(self, x: Any) -> Any:
                return x

            def scales(self) -> Any:
                return paddle.to_tensor(2.0)

            def zero_points(self) -> Any:
                return paddle.to_tensor(10.0)

            def quant_axis(self) -> int:
                return -1

            def bit_length(self) -> int:
                return 8

        return Fixed()


def _q61a(profile: str) -> Any:
    paddle = _paddle()
    adapter, _ = _adapter()
    cfg = adapter.QuantConfig(activation=_FixedQuanterFactory(), profile=profile)
    ptq = adapter.PTQ(cfg)
    c = ptq.convert(ptq.quantize(_seq(paddle.nn.ReLU())))
    return c[0]._observer(paddle.to_tensor(np.asarray(X61, np.float32))).numpy()


def _q61a_real() -> Any:
    paddle = _paddle()
    from paddle.nn.quant.format import LinearDequanter, LinearQuanter, LinearQuanterDequanter

    s, zp = paddle.to_tensor(2.0), paddle.to_tensor(10.0)
    qdq = LinearQuanterDequanter(LinearQuanter(s, zp), LinearDequanter(s, zp))
    return qdq(paddle.to_tensor(np.asarray(X61, np.float32))).numpy()


W61 = [[-0.6, -1.0, 0.7]]


def _q61b(profile: str) -> Any:
    paddle = _paddle()
    lin = paddle.nn.Linear(3, 1)
    lin.weight.set_value(np.asarray(W61, np.float32).T)
    cfg, PTQ = _ours(profile, weight=_obs("AbsmaxObserver", profile))
    ptq = PTQ(cfg)
    q = ptq.quantize(_seq(lin))
    q(paddle.ones([1, 3]))
    return ptq.convert(q)[0].weight.numpy().reshape(-1)


def _q61b_real() -> Any:
    paddle = _paddle()
    from paddle.quantization.observers import AbsmaxObserver

    PTQ, QuantConfig = _real_api()
    lin = paddle.nn.Linear(3, 1)
    lin.weight.set_value(np.asarray(W61, np.float32).T)
    ptq = PTQ(QuantConfig(activation=None, weight=AbsmaxObserver()))
    q = ptq.quantize(_seq(lin))
    q(paddle.ones([1, 3]))
    return ptq.convert(q)[0].weight.numpy().reshape(-1)


# -- registry -------------------------------------------------------------------------------
def _entry(qid: str, title: str, input_: str, value: Any, fn: Callable[[str], Any],
           check: Callable[[Callable[[], Any]], bool], real: Callable[[], Any]) -> Quirk:
    return {
        "id": qid,
        "title": title,
        "input": input_,
        "paddleslim_value": value,
        "refquant_paddleslim": lambda: fn("paddleslim"),
        "refquant_canonical": lambda: fn("canonical"),
        "check": lambda: check(lambda: fn("paddleslim")),
        "real": real,
    }


def _eq(want: Any) -> Callable[[Callable[[], Any]], bool]:
    return lambda call: call() == want


def _bits(want: Any) -> Callable[[Callable[[], Any]], bool]:
    return lambda call: _same_bits(call(), want)


def _raise(name: str) -> Callable[[Callable[[], Any]], bool]:
    return lambda call: _raises(call) == f"raises {name}"


QUIRKS: list[Quirk] = [
    _entry("Q54", "add_layer_config is a name config: the later of layer/name config wins",
           "Sequential(Linear); add_layer_config(fc, 5-bit AbsmaxObserver) then "
           "add_name_config(fc.full_name(), 6-bit); activation bit length",
           6, _q54, _eq(6), _q54_real),
    _entry("Q55", "type configs match the exact type only: a Linear subclass is not quantized",
           "Sequential(MyLinear(Linear)); add_type_config(Linear, AbsmaxObserver); "
           "type of the child after quantize",
           "MyLinear", _q55, _eq("MyLinear"), _q55_real),
    _entry("Q56", "the root model is never configured",
           "a bare Linear, QuantConfig(activation=Absmax, weight=Absmax); type returned",
           "Linear", _q56, _eq("Linear"), _q56_real),
    _entry("Q57", "quantize(inplace=False) asserts the caller's model is in eval mode",
           "Sequential(Linear) in training mode, quantize(inplace=False)",
           "raises AssertionError", _q57, _raise("AssertionError"), _q57_real),
    _entry("Q58", "leaf observers see the leaf's input (ReLU observed before it runs)",
           f"Sequential(ReLU), AbsmaxObserver, one batch {X58}; the observer's scale",
           np.float32(3.0), _q58, _bits(np.float32(3.0)), _q58_real),
    {**_entry("Q59a", "convert before calibration fails inside the observer's scales()",
              "Sequential(Linear), MSEObserver for activation and weight, convert() without "
              "any forward",
              "raises AttributeError", _q59a, _raise("AttributeError"), _q59a_real),
     "canonical_raises": "NotCalibratedError"},
    {**_entry("Q59b", "scales() before any forward: the exception depends on the observer",
              "KLObserver layer built for a ReLU, scales() with no forward",
              "raises AssertionError", _q59b, _raise("AssertionError"), _q59b_real),
     "canonical_raises": "NotCalibratedError"},
    _entry("Q60", "convert skips a quanted layer without weight quanter, observer and all",
           "Sequential(Linear), activation AbsmaxObserver, no weight config, one batch of "
           "ones, convert(); type of the activation quanter",
           "AbsmaxObserverLayer", _q60, _eq("AbsmaxObserverLayer"), _q60_real),
    {**_entry("Q61a", "converted QDQ: signed bounds, half-to-even, zero point ignored",
              f"a quanter with scales() 2.0 and zero_points() 10 on a ReLU, converted; "
              f"applied to x = {X61}",
              np.asarray([0.0, 0.503937, -2.015748], np.float32), _q61a,
              _bits(np.asarray([0.0, 0.503937, -2.015748], np.float32)), _q61a_real),
     "canonical_raises": "NotImplementedError"},
    _entry("Q61b", "converted weights are stored as integer-valued floats",
           f"Linear(3, 1) with weight {W61} (as [in, out]), per-tensor AbsmaxObserver on "
           "the weight, convert(remain_weight=False); the stored weight",
           np.asarray([-76.0, -127.0, 89.0], np.float32), _q61b,
           _bits(np.asarray([-76.0, -127.0, 89.0], np.float32)), _q61b_real),
]
