"""The ``paddle`` conformance target: Paddle's own CPU kernels through ``paddle._C_ops`` /
``paddle._legacy_C_ops`` (the same entry points ``paddle.nn.quant`` uses in dygraph), and
this adapter's observers and quanters.

The observer cases run through the adapter's observer factories
(:mod:`refquant.adapters.paddle.observers`: statistics computed with Paddle ops, decision by
the reference) and the quanter cases through its quanter factories
(:mod:`refquant.adapters.paddle.quanters`, backward by Paddle autograd), both profiles.

refquant's core finds this target through the entry point ``paddle`` of the group
``refquant.conformance_targets`` (``pyproject.toml``) and imports this module only when the
target is checked or loaded, so ``refquant conformance run --target paddle`` works while the
core never names the adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from refquant.conformance.targets import Target

from . import observers as adapter_observers
from . import quanters as adapter_quanters

if TYPE_CHECKING:
    from refquant.conformance.format import Case

__all__ = ["PaddleTarget"]

_OBSERVERS = ("AbsmaxObserver", "AVGObserver", "MSEObserver", "EMDObserver", "HistObserver",
              "KLObserver", "AbsMaxChannelWiseWeightObserver", "MSEChannelWiseWeightObserver",
              "GroupWiseWeightObserver")
_QUANTERS = ("FakeQuanterWithAbsMaxObserver", "FakeQuanterChannelWiseAbsMaxObserver",
             "PACTQuanter", "WeightLSQplusQuanter", "ActLSQplusQuanter")


class PaddleTarget(Target):
    """Paddle's quantization kernels and the adapter's observer / quanter layers."""

    name = "paddle"
    requires = ("paddle",)

    def _load(self) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import paddle
            from paddle import _C_ops, _legacy_C_ops
        paddle.set_device("cpu")
        self._paddle, self._C, self._L = paddle, _C_ops, _legacy_C_ops
        self.ops.update({
            "paddle.quantize_linear": self._quantize_linear,
            "paddle.dequantize_linear": self._dequantize_linear,
            "paddle.fake_quantize_abs_max": self._fake("fake_quantize_abs_max"),
            "paddle.fake_quantize_dequantize_abs_max":
                self._fake("fake_quantize_dequantize_abs_max"),
            "paddle.fake_channel_wise_quantize_abs_max": self._channel(
                "fake_channel_wise_quantize_abs_max", True),
            "paddle.fake_channel_wise_quantize_dequantize_abs_max": self._channel(
                "fake_channel_wise_quantize_dequantize_abs_max", False),
            "paddle.fake_dequantize_max_abs": self._fake_dequantize,
            "paddle.fake_quantize_moving_average_abs_max": self._moving(
                "fake_quantize_moving_average_abs_max"),
            "paddle.fake_quantize_dequantize_moving_average_abs_max": self._moving(
                "fake_quantize_dequantize_moving_average_abs_max"),
            "slim.paddle_mean": self._mean,
            "slim.quant_dequant": self._slim_quant_dequant,
            "paddle.weight_quantize": self._weight_quantize,
        })
        for name in _OBSERVERS:
            self.ops[f"observer.{name}"] = self._adapter_observer
        for name in _QUANTERS:
            self.ops[f"quanter.{name}"] = self._adapter_quanter

    def _adapter_quanter(self, case: Case) -> dict:
        """The Paddle adapter's quanter layer: training-mode forward of each batch, then
        Paddle autograd of ``grad`` through the last output; QParams from the layer."""
        paddle = self._paddle
        name = case.op.split(".", 1)[1]
        kw = dict(case.params)
        inner = kw.pop("inner", None)
        if inner is not None:
            kw["quanter"] = getattr(adapter_quanters, inner)(profile=kw["profile"])
        x0 = case.inputs["batch0"]
        layer = (paddle.nn.Conv2D(x0.shape[1], x0.shape[0], x0.shape[2:]) if x0.ndim == 4
                 else paddle.nn.Linear(1, 1))
        q = getattr(adapter_quanters, name)(**kw)._instance(layer)
        q.train()
        nb = len(case.inputs) - 1
        xt = y = None
        for i in range(nb):
            xt = paddle.to_tensor(np.array(case.inputs[f"batch{i}"]), stop_gradient=False)
            y = q(xt)
        assert y is not None and xt is not None
        y.backward(self._t(case.inputs["grad"]))
        out = {"y": self._np(y), "grad_x": self._np(xt.grad)}
        if "grad_alpha" in case.outputs:
            out["grad_alpha"] = self._np(q.alpha.grad).reshape(case.outputs["grad_alpha"].shape)
        if "grad_scale" in case.outputs:  # LSQ+: the learned step is the parameter `scale`
            out["grad_scale"] = self._np(q.scale.grad).reshape(case.outputs["grad_scale"].shape)
        out["scale"] = np.asarray(q.qparams().scale, np.float32)
        return out

    def _adapter_observer(self, case: Case) -> dict:
        """The Paddle adapter's observer layer (device statistics, reference decision):
        forward every batch as a Paddle tensor, then read its QParams."""
        name = case.op.split(".", 1)[1]
        layer = self._paddle.nn.Linear(1, 1)
        observer = getattr(adapter_observers, name)(**case.params)._instance(layer)
        for i in range(len(case.inputs)):
            observer(self._t(case.inputs[f"batch{i}"]))
        qp = observer.qparams()
        return {"scale": np.asarray(qp.scale, np.float32),
                "zero_point": np.asarray(qp.zero_point, np.int64)}

    def _slim_quant_dequant(self, case: Case) -> dict:
        """PaddleSlim's candidate expression, which is plain Paddle arithmetic:
        ``clip(round(x / s * qmax), -qmax - 1, qmax) / qmax * s``."""
        paddle = self._paddle
        x = self._t(case.inputs["x"])
        qmax = case.params["qmax"]
        s = (self._t(case.inputs["scale"]) if "scale" in case.inputs
             else float(case.params["scale"]))
        q = paddle.clip(paddle.round(x / s * qmax), -qmax - 1, qmax)
        return {"y": self._np(q / qmax * s)}

    def _weight_quantize(self, case: Case) -> dict:
        """``paddle.nn.quant.weight_quantize`` on CPU; bfloat16 travels as uint16 bits."""
        from paddle.nn.quant import weight_quantize

        p = case.params
        x = self._t(case.inputs["x"])
        if p["dtype"] == "bfloat16":
            x = x.view("bfloat16")
        out, scale = weight_quantize(x, algo=p["algo"], arch=p["arch"],
                                     group_size=p["group_size"])
        if scale.dtype == self._paddle.bfloat16:
            scale = scale.view("uint16")  # type: ignore[arg-type]  # works; the stub omits it
        return {"out": self._np(out), "scale": self._np(scale)}

    def _mean(self, case: Case) -> dict:
        return {"mean": self._np(self._paddle.mean(self._t(case.inputs["x"])))}

    def _t(self, a: np.ndarray) -> Any:
        return self._paddle.to_tensor(np.array(a))

    @staticmethod
    def _np(t: Any) -> np.ndarray:
        return np.array(t.numpy())

    def _zp(self, case: Case) -> Any:
        s = case.inputs["scale"]
        return self._t(np.zeros(s.shape if s.ndim else (1,), np.float32))

    def _quantize_linear(self, case: Case) -> dict:
        p = case.params
        s = case.inputs["scale"]
        out = self._L.quantize_linear(  # type: ignore[attr-defined]
            self._t(case.inputs["x"]), self._t(s.reshape(-1) if s.ndim == 0 else s),
            self._zp(case), "quant_axis", p["quant_axis"], "bit_length", p["bit_length"],
            "qmin", p["qmin"], "qmax", p["qmax"], "round_type", p["round_type"])
        return {"y": self._np(out)}

    def _dequantize_linear(self, case: Case) -> dict:
        p = case.params
        s = case.inputs["scale"]
        out = self._L.dequantize_linear(  # type: ignore[attr-defined]
            self._t(case.inputs["x"]), self._t(s.reshape(-1) if s.ndim == 0 else s),
            self._zp(case), "quant_axis", p["quant_axis"], "bit_length", p["bit_length"],
            "qmin", p["qmin"], "qmax", p["qmax"])
        return {"y": self._np(out)}

    def _fake(self, op: str) -> Any:
        def fn(case: Case) -> dict:
            p = case.params
            out, scale = getattr(self._C, op)(self._t(case.inputs["x"]), p["bit_length"],
                                              p["round_type"])
            return {"out": self._np(out), "scale": self._np(scale)}
        return fn

    def _channel(self, op: str, has_is_test: bool) -> Any:
        def fn(case: Case) -> dict:
            p = case.params
            args = [self._t(case.inputs["x"]), p["bit_length"], p["round_type"],
                    p["quant_axis"]]
            if has_is_test:
                args.append(False)
            out, scale = getattr(self._C, op)(*args)
            return {"out": self._np(out), "scale": self._np(scale)}
        return fn

    def _fake_dequantize(self, case: Case) -> dict:
        out = self._C.fake_dequantize_max_abs(self._t(case.inputs["x"]),
                                              self._t(case.inputs["scale"]),
                                              float(case.params["max_range"]))
        return {"y": self._np(out)}

    def _moving(self, op: str) -> Any:
        def fn(case: Case) -> dict:
            p = case.params
            i = case.inputs
            out, scale, state, accum = getattr(self._C, op)(
                self._t(i["x"]), self._t(i["in_scale"]), self._t(i["in_accum"]),
                self._t(i["in_state"]), float(p["moving_rate"]), p["bit_length"], False,
                p["round_type"])
            return {"out": self._np(out), "out_scale": self._np(scale),
                    "out_accum": self._np(accum), "out_state": self._np(state)}
        return fn

