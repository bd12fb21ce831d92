"""PyTorch CPU quantize / fake-quantize kernel cases (reference: :mod:`refquant.kernels.torch`).

Operations (CPU only; ``device="cuda"`` emulations are not checked against hardware):

* ``torch.fake_quantize_per_tensor_affine``: ``x``; ``scale`` (float), ``zero_point``,
  ``quant_min``, ``quant_max`` -> ``y``
* ``torch.fake_quantize_per_channel_affine``: ``x``, ``scale`` (float32 (C,)),
  ``zero_point`` (int32 or float32 (C,)); ``axis``, ``quant_min``, ``quant_max`` -> ``y``
* ``torch.quantize_per_tensor``: ``x``; ``scale``, ``zero_point``, ``dtype`` -> ``q``
  (``int_repr()``: uint8 / int8 / int32)
* ``torch.quantize_per_channel``: ``x``, ``scales`` (float64), ``zero_points`` (int64);
  ``axis``, ``dtype`` -> ``q``
* ``torch.dequantize``: ``q``; ``scale``, ``zero_point``, ``dtype`` (per-tensor) -> ``y``

Runs on the ``reference`` and ``torch`` targets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import torch as tk
from ..registry import CaseDraft, register_family, register_op
from ._inputs import f32, near_ties_mul, normal, special_values


@register_op("torch.fake_quantize_per_tensor_affine", "kernel", ("y",))
def _fq_t(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.torch.fake_quantize_per_tensor_affine."""
    return tk.fake_quantize_per_tensor_affine(inputs["x"], p["scale"], p["zero_point"],
                                              p["quant_min"], p["quant_max"])


@register_op("torch.fake_quantize_per_channel_affine", "kernel", ("y",))
def _fq_c(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.torch.fake_quantize_per_channel_affine."""
    return tk.fake_quantize_per_channel_affine(inputs["x"], inputs["scale"],
                                               inputs["zero_point"], p["axis"],
                                               p["quant_min"], p["quant_max"])


@register_op("torch.quantize_per_tensor", "kernel", ("q",))
def _q_t(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.torch.quantize_per_tensor (CPU)."""
    return tk.quantize_per_tensor(inputs["x"], p["scale"], p["zero_point"], p["dtype"])


@register_op("torch.quantize_per_channel", "kernel", ("q",))
def _q_c(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.torch.quantize_per_channel (CPU)."""
    return tk.quantize_per_channel(inputs["x"], inputs["scales"], inputs["zero_points"],
                                   p["axis"], p["dtype"])


@register_op("torch.dequantize", "kernel", ("y",))
def _dq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.torch.dequantize (per-tensor, CPU)."""
    return tk.dequantize(inputs["q"], p["scale"], p["zero_point"], dtype=p["dtype"])


_DT = {"quint8": (0, 255, 128), "qint8": (-128, 127, 0)}


@register_family("kernels.torch", requires=("refquant.kernels.torch",))
def generate() -> Iterator[CaseDraft]:
    # the FBGEMM header's example and near-ties of x * fl(1/s)
    scales = {"fbgemm": 0.00214854861, "s0p1": 0.1, "s7": 0.7 / 127}
    for sname, s in scales.items():
        s32 = np.float32(s)
        inv = np.float32(np.float32(1) / s32)
        x = np.concatenate([f32(0.273939937), near_ties_mul(inv, np.arange(-30, 30) + 0.5)])
        for dt, (qmin, qmax, mid) in _DT.items():
            for zp in sorted({0, mid, 3}):
                if not qmin <= zp <= qmax:
                    continue
                yield CaseDraft(
                    id=f"torch.fq.ties.{sname}.{dt}.zp{zp}",
                    op="torch.fake_quantize_per_tensor_affine", inputs={"x": x},
                    params={"scale": float(s32), "zero_point": zp, "quant_min": qmin,
                            "quant_max": qmax},
                    tags=("torch", "fake_quantize", "ties"),
                    description="inv = fl(1/s); rne(fl(x*inv)); zp added after rounding")
                yield CaseDraft(
                    id=f"torch.q.ties.{sname}.{dt}.zp{zp}", op="torch.quantize_per_tensor",
                    inputs={"x": x},
                    params={"scale": float(s32), "zero_point": zp, "dtype": dt},
                    tags=("torch", "quantize_per_tensor", "ties"),
                    description="FBGEMM: fma(x, inv, zp) then cvtps (zp before rounding)")
    sv = special_values()
    for dt, (qmin, qmax, mid) in _DT.items():
        yield CaseDraft(id=f"torch.fq.special.{dt}", op="torch.fake_quantize_per_tensor_affine",
                        inputs={"x": sv},
                        params={"scale": 0.5, "zero_point": mid, "quant_min": qmin,
                                "quant_max": qmax},
                        tags=("torch", "special"), description="NaN -> (qmin - zp) * s")
        yield CaseDraft(id=f"torch.q.special.{dt}", op="torch.quantize_per_tensor",
                        inputs={"x": sv}, params={"scale": 0.5, "zero_point": mid, "dtype": dt},
                        tags=("torch", "special"), description="NaN -> qmax on AVX2")
        codes = np.arange(qmin, qmax + 1).astype(np.uint8 if dt == "quint8" else np.int8)
        yield CaseDraft(id=f"torch.dq.codes.{dt}", op="torch.dequantize",
                        inputs={"q": codes},
                        params={"scale": 0.0123, "zero_point": mid, "dtype": dt},
                        tags=("torch", "dequantize"))
    for bits in (4, 8):
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        yield CaseDraft(id=f"torch.fq.normal.b{bits}", op="torch.fake_quantize_per_tensor_affine",
                        inputs={"x": normal(301 + bits, 64, 1.0)},
                        params={"scale": 3.0 / qmax, "zero_point": 0, "quant_min": qmin,
                                "quant_max": qmax}, tags=("torch", f"b{bits}"))
    w = normal(311, (4, 5, 3), 0.6)
    for axis in (0, 1, 2):
        n = w.shape[axis]
        sc = np.linspace(0.004, 0.02, n).astype(np.float32)
        yield CaseDraft(
            id=f"torch.fqc.axis{axis}.int_zp", op="torch.fake_quantize_per_channel_affine",
            inputs={"x": w, "scale": sc, "zero_point": (np.arange(n) - 1).astype(np.int32)},
            params={"axis": axis, "quant_min": -128, "quant_max": 127},
            tags=("torch", "per-channel"), description="integer zero points: zp after rounding")
        yield CaseDraft(
            id=f"torch.fqc.axis{axis}.float_zp", op="torch.fake_quantize_per_channel_affine",
            inputs={"x": w, "scale": sc,
                    "zero_point": (np.arange(n) * 0.5 + 100).astype(np.float32)},
            params={"axis": axis, "quant_min": 0, "quant_max": 255},
            tags=("torch", "per-channel", "float-zp"),
            description="float zero points: fma(x, inv, zp), zp before rounding")
        yield CaseDraft(
            id=f"torch.qc.axis{axis}.qint8", op="torch.quantize_per_channel",
            inputs={"x": w, "scales": sc.astype(np.float64),
                    "zero_points": (np.arange(n) - 1).astype(np.int64)},
            params={"axis": axis, "dtype": "qint8"}, tags=("torch", "per-channel"))
