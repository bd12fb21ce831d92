"""The ``torch`` target: PyTorch's CPU quantization kernels and torch.ao's observers (torch
imported lazily)."""

from __future__ import annotations

import warnings

import numpy as np

from ..format import Case
from ._base import Target, Unsupported


class TorchTarget(Target):
    name = "torch"
    requires = ("torch",)

    def _load(self) -> None:
        import torch

        self._torch = torch
        self.ops.update({
            "torch.fake_quantize_per_tensor_affine": self._fq_t,
            "torch.fake_quantize_per_channel_affine": self._fq_c,
            "torch.quantize_per_tensor": self._q_t,
            "torch.quantize_per_channel": self._q_c,
            "torch.dequantize": self._dq,
        })
        from ..cases.xf_observer_cases import PARAMS

        for name in PARAMS["torch"]:
            self.ops[f"observer.torch.{name}"] = self._observer

    def run(self, case: Case) -> dict[str, np.ndarray]:
        # torch 2.13 deprecates the quantized dtypes with a UserWarning on every call
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return super().run(case)

    def _t(self, a: np.ndarray):  # type: ignore[no-untyped-def]
        return self._torch.from_numpy(np.array(a))

    def _dtype(self, name: str):  # type: ignore[no-untyped-def]
        if name not in ("quint8", "qint8", "qint32"):
            raise Unsupported(f"torch target: dtype {name} is not checked")
        return getattr(self._torch, name)

    def _fq_t(self, case: Case) -> dict:
        p = case.params
        y = self._torch.fake_quantize_per_tensor_affine(
            self._t(case.inputs["x"]), float(p["scale"]), int(p["zero_point"]),
            int(p["quant_min"]), int(p["quant_max"]))
        return {"y": y.numpy()}

    def _fq_c(self, case: Case) -> dict:
        p, i = case.params, case.inputs
        y = self._torch.fake_quantize_per_channel_affine(
            self._t(i["x"]), self._t(i["scale"]), self._t(i["zero_point"]), int(p["axis"]),
            int(p["quant_min"]), int(p["quant_max"]))
        return {"y": y.numpy()}

    def _q_t(self, case: Case) -> dict:
        p = case.params
        q = self._torch.quantize_per_tensor(self._t(case.inputs["x"]), float(p["scale"]),
                                            int(p["zero_point"]), self._dtype(p["dtype"]))
        return {"q": q.int_repr().numpy()}

    def _q_c(self, case: Case) -> dict:
        p, i = case.params, case.inputs
        q = self._torch.quantize_per_channel(self._t(i["x"]), self._t(i["scales"]),
                                             self._t(i["zero_points"]), int(p["axis"]),
                                             self._dtype(p["dtype"]))
        return {"q": q.int_repr().numpy()}

    def _dq(self, case: Case) -> dict:
        p = case.params
        self._dtype(p["dtype"])
        qt = self._torch._make_per_tensor_quantized_tensor(
            self._t(case.inputs["q"]), float(p["scale"]), int(p["zero_point"]))
        return {"y": qt.dequantize().numpy()}

    def _observer(self, case: Case) -> dict:
        """``torch.ao.quantization.<Class>(**params)``: forward each batch in order, then
        ``calculate_qparams()``; dtype and qscheme names map to ``torch.<name>``."""
        torch = self._torch
        name = case.op.rsplit(".", 1)[1]
        kwargs = {k: (getattr(torch, v) if k in ("dtype", "qscheme") else v)
                  for k, v in case.params.items()}
        obs = getattr(torch.ao.quantization, name)(**kwargs)
        for i in range(len(case.inputs)):
            obs(self._t(case.inputs[f"batch{i}"]))
        scale, zero_point = obs.calculate_qparams()
        return {"scale": scale.numpy().astype(np.float32),
                "zero_point": zero_point.numpy().astype(np.int64)}


TARGET_CLASS = TorchTarget
