"""The ``paddleslim`` target: PaddleSlim 2.6.0's Python-side math and its observers
and quanters, run with Paddle on CPU.

``slim.quant_dequant`` evaluates the candidate quant-dequant expression of PaddleSlim's
``observers/mse.py`` / ``emd.py`` / ``mse_weight.py`` with Paddle tensors (the scale passed as
a Python float, or a float32 tensor for the channel-wise search), which is what those files
execute. Paddle and PaddleSlim are imported only when the target is loaded.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..format import Case
from ._base import Target, Unsupported

_OBSERVERS = ("AbsmaxObserver", "AVGObserver", "MSEObserver", "EMDObserver", "HistObserver",
              "KLObserver", "AbsMaxChannelWiseWeightObserver", "MSEChannelWiseWeightObserver",
              "GroupWiseWeightObserver")


_QUANTERS = ("FakeQuanterWithAbsMaxObserver", "FakeQuanterChannelWiseAbsMaxObserver",
             "PACTQuanter", "WeightLSQplusQuanter", "ActLSQplusQuanter")


def _import_paddleslim() -> Any:
    """``paddleslim.quant.observers`` (see :func:`refquant._compat.import_paddleslim`)."""
    from ..._compat import import_paddleslim

    return import_paddleslim("paddleslim.quant.observers")


class PaddleSlimTarget(Target):
    name = "paddleslim"
    # slim.quant_dequant needs only Paddle; observer / quanter operations import paddleslim
    # themselves and report it missing per case (Unsupported) when it cannot be imported.
    requires = ("paddle",)

    def _load(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import paddle
        paddle.set_device("cpu")
        self._paddle = paddle
        self.ops["slim.quant_dequant"] = self._quant_dequant
        self._slim: Any = None
        self._slim_error = ""
        for name in _OBSERVERS:
            self.ops[f"observer.{name}"] = self._observer
        for name in _QUANTERS:
            self.ops[f"quanter.{name}"] = self._quanter

    def _quanter_factory(self, name: str, params: dict[str, Any]) -> Any:
        self._observers()  # imports paddleslim (or raises Unsupported)
        from paddle.quantization.quanters import FakeQuanterWithAbsMaxObserver

        from ..._compat import import_paddleslim

        sq = import_paddleslim("paddleslim.quant.quanters")

        kw = dict(params)
        inner = kw.pop("inner", None)
        if name == "FakeQuanterWithAbsMaxObserver":
            return FakeQuanterWithAbsMaxObserver(**kw)
        if inner is not None:
            kw["quanter"] = FakeQuanterWithAbsMaxObserver()
        return getattr(sq, name)(**kw)

    @contextlib.contextmanager
    def _set_value_reshapes(self, name: str) -> Iterator[None]:
        """For the LSQ+ quanters only: let ``Tensor.set_value`` reshape a same-size value to
        the parameter's shape while the case runs (PaddleSlim 2.6.0 sets a 0-D value into a
        [1]-shaped parameter, which Paddle 3.3.1 rejects: docs/divergences.md Q42, Q47).
        Restored afterwards."""
        if "LSQ" not in name:
            yield
            return
        cls: Any = type(self._paddle.to_tensor(0.0))
        original = cls.set_value

        def set_value(t: Any, value: Any) -> Any:
            arr = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
            if list(arr.shape) != list(t.shape) and arr.size == int(np.prod(t.shape)):
                arr = arr.reshape(t.shape)
            return original(t, arr)

        cls.set_value = set_value
        try:
            yield
        finally:
            cls.set_value = original

    def _quanter(self, case: Case) -> dict:
        """Training-mode forward of each batch through PaddleSlim's quanter layer, then
        backward of ``grad`` through the last output (Paddle autograd)."""
        p = dict(case.params)
        if p.pop("profile") != "paddleslim":
            raise Unsupported("PaddleSlim runs only the paddleslim profile")
        paddle = self._paddle
        name = case.op.split(".", 1)[1]
        x0 = case.inputs["batch0"]
        layer = (paddle.nn.Conv2D(x0.shape[1], x0.shape[0], x0.shape[2:]) if x0.ndim == 4
                 else paddle.nn.Linear(1, 1))
        with warnings.catch_warnings(), self._set_value_reshapes(name):
            warnings.simplefilter("ignore")
            q = self._quanter_factory(name, p)._instance(layer)
            q.train()
            nb = len(case.inputs) - 1
            xt = y = None
            for i in range(nb):
                xt = paddle.to_tensor(np.array(case.inputs[f"batch{i}"]), stop_gradient=False)
                y = q(xt)
            assert y is not None and xt is not None
            y.backward(paddle.to_tensor(np.array(case.inputs["grad"])))
            out = {"y": np.array(y.numpy()), "grad_x": np.array(xt.grad.numpy())}
            if "grad_alpha" in case.outputs:
                out["grad_alpha"] = np.array(q.alpha.grad.numpy()).reshape(
                    case.outputs["grad_alpha"].shape)
            if "grad_scale" in case.outputs:
                out["grad_scale"] = np.array(q._scale.grad.numpy()).reshape(
                    case.outputs["grad_scale"].shape)
            sc = q.scales()
        s = np.asarray(sc.numpy() if hasattr(sc, "numpy") else sc, dtype=np.float32)
        exp = case.outputs["scale"]
        out["scale"] = s.reshape(exp.shape) if s.size == exp.size else s
        return out

    def _observers(self) -> Any:
        if self._slim is None and not self._slim_error:
            try:
                self._slim = _import_paddleslim()
            except Exception as exc:  # ImportError or a broken install
                self._slim_error = f"paddleslim cannot be imported here: {exc}"
        if self._slim is None:
            raise Unsupported(self._slim_error)
        return self._slim

    def _observer(self, case: Case) -> dict:
        """Feed each batch to PaddleSlim's observer layer, then read scales / zero points."""
        p = dict(case.params)
        if p.pop("profile") != "paddleslim":
            raise Unsupported("PaddleSlim runs only the paddleslim profile")
        obs = self._observers()
        paddle = self._paddle
        name = case.op.split(".", 1)[1]
        axis = p.pop("axis", None)
        layer = paddle.nn.Conv2D(1, 1, 1) if axis == 0 else paddle.nn.Linear(1, 1)
        observer = getattr(obs, name)(**p)._instance(layer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(len(case.inputs)):
                observer(paddle.to_tensor(np.array(case.inputs[f"batch{i}"])))
            scale = observer.scales()
            zp = observer.zero_points()
        exp = case.outputs["scale"]
        s = np.asarray(scale.numpy() if hasattr(scale, "numpy") else scale, dtype=np.float32)
        z = np.asarray(zp.numpy() if hasattr(zp, "numpy") else zp)
        if s.shape != exp.shape and s.size == exp.size:
            s = s.reshape(exp.shape)
        return {"scale": s, "zero_point": np.broadcast_to(z.astype(np.int64), s.shape).copy()}

    def _quant_dequant(self, case: Case) -> dict:
        paddle = self._paddle
        x = paddle.to_tensor(np.array(case.inputs["x"]))
        qmax = case.params["qmax"]
        scale = (paddle.to_tensor(np.array(case.inputs["scale"])) if "scale" in case.inputs
                 else float(case.params["scale"]))
        q = paddle.clip(paddle.round(x / scale * qmax), -qmax - 1, qmax)
        y = q / qmax * scale
        return {"y": np.array(y.numpy())}


TARGET_CLASS = PaddleSlimTarget
