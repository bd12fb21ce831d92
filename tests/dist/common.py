"""Shared by the distributed tests and their worker scripts: models, data and configs.

Everything here is deterministic (fixed seeds), so every process builds the same model and
the same global list of calibration batches; rank ``r`` of ``n`` calibrates on batches
``r, r + n, r + 2n, ...``.
"""

from __future__ import annotations

import numpy as np
import paddle
from refquant.adapters.paddle import PTQ, QuantConfig
from refquant.adapters.paddle import observers as O

N_BATCHES = 6

#: name -> (activation factory, weight factory) of the canonical data-parallel cases
CANONICAL = {
    "absmax": lambda: (O.AbsmaxObserver(), O.AbsMaxChannelWiseWeightObserver()),
    "avg": lambda: (O.AVGObserver(), O.MSEChannelWiseWeightObserver()),
    "mse": lambda: (O.MSEObserver(), O.GroupWiseWeightObserver(group_size=8)),
    "emd": lambda: (O.EMDObserver(), O.AbsmaxObserver()),
    "hist": lambda: (O.HistObserver(percent=0.99), O.AbsMaxChannelWiseWeightObserver()),
    "hist_asym": lambda: (O.HistObserver(percent=0.99, symmetric=False), None),
    "kl": lambda: (O.KLObserver(bins_count=512), O.MSEObserver()),
}

#: paddleslim-profile cases (MAX of the scales across ranks)
SLIM = {
    "slim_absmax": lambda: (O.AbsmaxObserver(profile="paddleslim"),
                            O.AbsMaxChannelWiseWeightObserver(profile="paddleslim")),
    "slim_mse": lambda: (O.MSEObserver(profile="paddleslim"), None),
    "slim_avg": lambda: (O.AVGObserver(profile="paddleslim"), None),
}


def build_model(seed: int = 7) -> paddle.nn.Layer:
    """A small MLP: Linear(16, 32) -> ReLU -> Linear(32, 8)."""
    paddle.seed(seed)
    return paddle.nn.Sequential(
        paddle.nn.Linear(16, 32), paddle.nn.ReLU(), paddle.nn.Linear(32, 8)
    )


def batches(n: int = N_BATCHES, seed: int = 0) -> list[np.ndarray]:
    """Calibration batches with different scales, outliers and sizes (float32)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rows = 3 + (i % 3)
        x = rng.standard_normal((rows, 16)).astype(np.float32) * np.float32(0.5 + i)
        if i == 2:
            x[0, 3] = np.float32(37.25)  # an outlier on one rank only
        if i == 3:
            x = np.abs(x)
        out.append(x)
    return out


def shard(data: list[np.ndarray], rank: int, world: int) -> list[np.ndarray]:
    return data[rank::world]


def quantized(factories: tuple, model: paddle.nn.Layer | None = None) -> tuple:
    act, wt = factories
    cfg = QuantConfig(activation=act, weight=wt)
    ptq = PTQ(cfg)
    return ptq, ptq.quantize(build_model() if model is None else model)


def calibrate(qmodel: paddle.nn.Layer, data: list[np.ndarray]) -> None:
    with paddle.no_grad():
        for x in data:
            qmodel(paddle.to_tensor(x))


def observer_qparams(qmodel: paddle.nn.Layer) -> dict[str, dict[str, np.ndarray]]:
    """``{path: {scale, zero_point, grid}}`` of every calibrated refquant observer."""
    from refquant.adapters.paddle.observers import RefquantObserverLayer

    out = {}
    for path, layer in qmodel.named_sublayers():
        if isinstance(layer, RefquantObserverLayer) and layer.calibrated:
            qp = layer.qparams()
            out[path] = {
                "scale": np.asarray(qp.scale, np.float32).copy(),
                "zero_point": np.asarray(qp.zero_point, np.int64).copy(),
                "grid": np.array([qp.qmin, qp.qmax, qp.bits,
                                  -1 if qp.axis is None else qp.axis], np.int64),
            }
    return out


def flatten(qps: dict[str, dict[str, np.ndarray]], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}|{p}|{k}": v for p, d in qps.items() for k, v in d.items()}
