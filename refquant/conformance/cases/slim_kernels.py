"""PaddleSlim's Python-side arithmetic (reference: :mod:`refquant.kernels.slim`).

Operations:

* ``slim.quant_dequant``: ``x`` (float32) and either param ``scale`` (a Python float, as the
  MSE / EMD searches pass it) or input ``scale`` (float32, broadcastable: the channel-wise
  search); params ``qmax`` -> ``y`` =
  ``clip(round(x / scale * qmax), -qmax - 1, qmax) / qmax * scale`` in Paddle's float32
  operation order. Runs on ``reference`` and ``paddleslim`` (the expression evaluated with
  Paddle tensors, as PaddleSlim writes it).
* ``slim.paddle_mean``: ``x`` (float32 or float64) -> ``mean`` (0-d), ``paddle.mean``'s CPU
  reduction order. Runs on ``reference`` and ``paddle``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import slim as sk
from ..registry import CaseDraft, register_family, register_op
from ._inputs import DISTRIBUTIONS, distribution, normal, special_values


@register_op("slim.quant_dequant", "kernel", ("y",))
def _qdq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.slim.quant_dequant."""
    scale = inputs["scale"] if "scale" in inputs else float(p["scale"])
    return sk.quant_dequant(inputs["x"], scale, p["qmax"])


@register_op("slim.paddle_mean", "kernel", ("mean",))
def _mean(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.slim.paddle_mean."""
    return np.asarray(sk.paddle_mean(inputs["x"]))


@register_family("kernels.slim", requires=("refquant.kernels.slim",))
def generate() -> Iterator[CaseDraft]:
    factors = sk.SEARCH_FACTORS
    for dist in DISTRIBUTIONS:
        x = distribution(dist, 200 + len(dist), (16, 16), 2.0)
        absmax = float(np.max(np.abs(x)))
        for fi in (0, 17, len(factors) - 1):
            for qmax in (7, 127):
                yield CaseDraft(
                    id=f"slim.qdq.{dist}.f{fi}.q{qmax}", op="slim.quant_dequant",
                    inputs={"x": x}, params={"scale": factors[fi] * absmax, "qmax": qmax},
                    tags=("slim", "quant_dequant", dist),
                    description="PaddleSlim MSE/EMD candidate evaluation: the float64 scale "
                                "s * absmax is cast to float32 by Paddle")
    sv = special_values()
    yield CaseDraft(id="slim.qdq.special", op="slim.quant_dequant", inputs={"x": sv},
                    params={"scale": 0.5, "qmax": 127}, tags=("slim", "special"))
    w = normal(211, (8, 6), 0.5)
    s = (np.abs(w).max(axis=0) * np.float32(0.9)).astype(np.float32).reshape(1, 6)
    yield CaseDraft(id="slim.qdq.per_channel", op="slim.quant_dequant",
                    inputs={"x": w, "scale": s}, params={"qmax": 127},
                    tags=("slim", "per-channel"), description="mse_weight.py's broadcast")
    for n in (1, 7, 8, 9, 63, 64, 65, 1000, 4099):
        x = normal(220 + n, n, 1.0)
        sq = (x * x).astype(np.float32)
        yield CaseDraft(id=f"slim.mean.f32.n{n}", op="slim.paddle_mean", inputs={"x": sq},
                        tags=("slim", "paddle_mean"),
                        description="paddle.mean lane-order reduction, float32")
    for n in (5, 64, 1001):
        x = normal(240 + n, n, 1.0).astype(np.float64) ** 2
        yield CaseDraft(id=f"slim.mean.f64.n{n}", op="slim.paddle_mean", inputs={"x": x},
                        tags=("slim", "paddle_mean"))
