"""The ``torchao`` target: torchao 0.18's MX / NVFP4 reference casts on CPU (imported lazily).

Operations: ``mx.quantize`` / ``mx.dequantize`` (FP elements; torchao has no MXINT8),
``nvfp4.quantize`` / ``nvfp4.dequantize`` (2-D / 3-D inputs), and ``lowbit.encode`` /
``lowbit.decode`` for FP6 / FP4 (torchao's ``f32_to_f6_*`` / ``f32_to_f4_unpacked``, which
only saturate). FP4 data is packed two per byte by torchao (element ``2i`` in the low
nibble); this target unpacks it to refquant's one code per element.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from ..format import Case
from ._base import Target, Unsupported

_FP_ELEMS = ("fp8_e4m3fn", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1")


class TorchaoTarget(Target):
    name = "torchao"
    requires = ("torch", "torchao")

    def _load(self) -> None:
        logging.getLogger("torchao").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
            from torchao.prototype.mx_formats import kernels, mx_tensor, nvfp4_tensor
            from torchao.prototype.mx_formats.config import ScaleCalculationMode
        self._torch, self._k, self._mt, self._nv = torch, kernels, mx_tensor, nvfp4_tensor
        self._scm = ScaleCalculationMode
        self.ops.update({
            "mx.quantize": self._mx_q,
            "mx.dequantize": self._mx_dq,
            "nvfp4.quantize": self._nv_q,
            "nvfp4.dequantize": self._nv_dq,
            "lowbit.encode": self._encode,
            "lowbit.decode": self._decode,
        })

    def _elem(self, elem: str) -> Any:
        t = self._torch
        table = {"fp8_e4m3fn": t.float8_e4m3fn, "fp8_e5m2": t.float8_e5m2,
                 "fp6_e3m2": "fp6_e3m2", "fp6_e2m3": "fp6_e2m3",
                 "fp4_e2m1": t.float4_e2m1fn_x2}
        if elem not in table:
            raise Unsupported(f"torchao target: element {elem} is not in torchao 0.18")
        return table[elem]

    @staticmethod
    def _unpack(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return np.stack([p & 0xF, p >> 4], axis=-1).reshape(shape)

    @staticmethod
    def _pack(c: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(c[..., ::2] | (c[..., 1::2] << 4)).astype(np.uint8)

    def _mx_q(self, case: Case) -> dict:
        p, t = case.params, self._torch
        x = np.array(case.inputs["x"], dtype=np.float32)
        s, d = self._mt.to_mx(t.from_numpy(x), self._elem(p["elem"]), int(p["block_size"]),
                              self._scm(p["scale_mode"]))
        if p["elem"] == "fp4_e2m1":
            codes = self._unpack(d.view(t.uint8).numpy(), x.shape)
        elif p["elem"].startswith("fp8"):
            codes = d.view(t.uint8).numpy()
        else:
            codes = d.numpy()
        return {"scale_e8m0": s.view(t.uint8).numpy(), "codes": codes}

    def _mx_dq(self, case: Case) -> dict:
        p, t = case.params, self._torch
        elem = self._elem(p["elem"])
        c = np.array(case.inputs["codes"], dtype=np.uint8)
        if p["elem"] == "fp4_e2m1":
            data = t.from_numpy(self._pack(c))
        elif p["elem"].startswith("fp8"):
            data = t.from_numpy(c).view(elem)
        else:
            data = t.from_numpy(c)
        s = t.from_numpy(np.array(case.inputs["scale_e8m0"], np.uint8)).view(t.float8_e8m0fnu)
        y = self._mt.to_dtype(data, s, elem, int(p["block_size"]), t.float32)
        return {"y": y.numpy()}

    def _pts(self, case: Case) -> Any:
        v = case.params.get("per_tensor_scale")
        return None if v is None else self._torch.tensor(np.float32(v))

    def _nv_q(self, case: Case) -> dict:
        t = self._torch
        x = np.array(case.inputs["x"], dtype=np.float32)
        if x.ndim not in (2, 3):
            raise Unsupported("torchao target: NVFP4Tensor takes 2-D or 3-D inputs")
        q = self._nv.NVFP4Tensor.to_nvfp4(t.from_numpy(x), per_tensor_scale=self._pts(case))
        return {"scale_e4m3": q.scale.view(t.uint8).numpy(),
                "codes": self._unpack(q.qdata.view(t.uint8).numpy(), x.shape)}

    def _nv_dq(self, case: Case) -> dict:
        t = self._torch
        c = np.array(case.inputs["codes"], dtype=np.uint8)
        if c.ndim not in (2, 3):
            raise Unsupported("torchao target: NVFP4Tensor takes 2-D or 3-D inputs")
        s = t.from_numpy(np.array(case.inputs["scale_e4m3"], np.uint8)).view(t.float8_e4m3fn)
        q = self._nv.NVFP4Tensor(t.from_numpy(self._pack(c)), s, 16, t.float32,
                                 self._pts(case), None, False, False, None)
        return {"y": q.dequantize(t.float32).numpy()}

    def _encode(self, case: Case) -> dict:
        p, t = case.params, self._torch
        fns = {"fp6_e3m2": self._k.f32_to_f6_e3m2_unpacked,
               "fp6_e2m3": self._k.f32_to_f6_e2m3_unpacked,
               "fp4_e2m1": self._k.f32_to_f4_unpacked}
        if p["fmt"] not in fns or not p["saturate"]:
            raise Unsupported(f"torchao target: encode to {p['fmt']} is not checked")
        x = np.array(case.inputs["x"], dtype=np.float32)
        return {"codes": fns[p["fmt"]](t.from_numpy(x)).numpy()}

    def _decode(self, case: Case) -> dict:
        p, t = case.params, self._torch
        fns = {"fp6_e3m2": self._k.f6_e3m2_unpacked_to_f32,
               "fp6_e2m3": self._k.f6_e2m3_unpacked_to_f32,
               "fp4_e2m1": self._k.f4_unpacked_to_f32}
        if p["fmt"] not in fns:
            raise Unsupported(f"torchao target: decode of {p['fmt']} is not checked")
        c = np.array(case.inputs["codes"], dtype=np.uint8)
        return {"y": fns[p["fmt"]](t.from_numpy(c)).numpy()}


TARGET_CLASS = TorchaoTarget
