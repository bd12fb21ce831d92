"""Tensor-parallel worker (one process, ``mp_degree=1``): ``python tp_worker.py OUT``.

Part 1 -- the quantized parallel linears on fleet's real layers: calibration, QParams,
forward, convert. Part 2 -- two model-parallel "ranks" simulated in one process: each holds
a shard of the weights and of the activation, and ``sync_observers`` runs its real
model-parallel pass over a thread-backed stand-in for ``paddle.distributed`` (Paddle has no
CPU kernel for ``c_identity``, so real multi-rank tensor parallelism needs GPUs). Writes
``tp.npz`` and ``tp.json``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import paddle
from paddle.distributed import fleet
from refquant.adapters.paddle import PTQ, QuantConfig
from refquant.adapters.paddle import distributed as rd
from refquant.adapters.paddle import observers as O
from refquant.adapters.paddle.parallel import (
    QuantedColumnParallelLinear,
    QuantedRowParallelLinear,
    register_parallel_layers,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakedist  # noqa: E402

IN, MID, OUT = 16, 12, 8


def data() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((IN, MID)) * rng.uniform(0.1, 3, MID)).astype(np.float32)
    w2 = (rng.standard_normal((MID, OUT)) * rng.uniform(0.1, 3, OUT)).astype(np.float32)
    xs = [(rng.standard_normal((4, IN)) * (1 + i)).astype(np.float32) for i in range(3)]
    return w1, w2, xs


def column(w: np.ndarray, gather_output: bool = False) -> paddle.nn.Layer:
    layer = fleet.meta_parallel.ColumnParallelLinear(w.shape[0], w.shape[1], has_bias=True,
                                                     gather_output=gather_output)
    layer.weight.set_value(w)
    layer.bias.set_value(np.linspace(-1, 1, w.shape[1]).astype(np.float32))
    return layer


def row(w: np.ndarray, input_is_parallel: bool = True) -> paddle.nn.Layer:
    layer = fleet.meta_parallel.RowParallelLinear(w.shape[0], w.shape[1], has_bias=True,
                                                  input_is_parallel=input_is_parallel)
    layer.weight.set_value(w)
    layer.bias.set_value(np.linspace(-0.5, 0.5, w.shape[1]).astype(np.float32))
    return layer


def config(act, wt) -> QuantConfig:
    return register_parallel_layers(QuantConfig(activation=act, weight=wt))


def part1(arrays: dict, report: dict) -> None:
    w1, w2, xs = data()
    model = paddle.nn.Sequential(column(w1), row(w2))
    model.eval()
    ptq = PTQ(config(O.MSEObserver(), O.AbsMaxChannelWiseWeightObserver()))
    qm = ptq.quantize(model)
    report["types"] = [type(qm[0]).__name__, type(qm[1]).__name__]
    report["modes"] = [qm[0].mp_sync_modes(), qm[1].mp_sync_modes()]
    with paddle.no_grad():
        for i, x in enumerate(xs):
            arrays[f"float_out{i}"] = model(paddle.to_tensor(x)).numpy()
            arrays[f"obs_out{i}"] = qm(paddle.to_tensor(x)).numpy()
    for i, name in enumerate(("col", "row")):
        wq = qm[i].weight_quanter.qparams()
        aq = qm[i].activation_quanter.qparams()
        arrays[f"{name}_wscale"] = np.asarray(wq.scale, np.float32)
        arrays[f"{name}_waxis"] = np.array(wq.axis)
        arrays[f"{name}_ascale"] = np.asarray(aq.scale, np.float32)
    res = rd.sync_observers(qm)  # one process: nothing to exchange, nothing changes
    report["single_world"] = res.world_size
    arrays["col_wscale_after_sync"] = np.asarray(res.qparams["0.weight_quanter"].scale)
    arrays["hidden_ascale"] = np.asarray(qm[1].activation_quanter.qparams().scale)
    conv = ptq.convert(qm)
    arrays["col_codes"] = conv[0].weight.numpy()
    arrays["row_codes"] = conv[1].weight.numpy()
    with paddle.no_grad():
        arrays["conv_out0"] = conv(paddle.to_tensor(xs[0])).numpy()
    report["conv_shapes"] = [list(conv[0].weight.shape), list(conv[1].weight.shape)]
    # the hidden activation of the float model (input of the Row layer), for the reference
    with paddle.no_grad():
        arrays["hidden"] = np.concatenate(
            [column(w1)(paddle.to_tensor(x)).numpy() for x in xs])


# -- part 2: two simulated model-parallel ranks ---------------------------------------------
def part2(arrays: dict, report: dict) -> None:
    w1, w2, xs = data()
    h = MID // 2
    hidden = [np.maximum(x @ w1, 0).astype(np.float32) for x in xs]
    world = fakedist.World(2)
    models = []
    for r in range(2):
        col = column(w1[:, r * h:(r + 1) * h])  # rank r's column shard
        rw = row(w2[r * h:(r + 1) * h], input_is_parallel=True)  # rank r's row shard
        qc = PTQ(config(O.AbsmaxObserver(), O.AbsmaxObserver())).quantize(
            paddle.nn.Sequential(col))
        qr = PTQ(config(O.MSEObserver(), O.AbsMaxChannelWiseWeightObserver())).quantize(
            paddle.nn.Sequential(rw))
        with paddle.no_grad():
            for x, hd in zip(xs, hidden, strict=True):
                qc(paddle.to_tensor(x))  # replicated input
                qr(paddle.to_tensor(hd[:, r * h:(r + 1) * h]))  # sharded input
        for q in (qc[0], qr[0]):
            q.model_parallel_group = fakedist.Group(r, world)
        models.append((qc, qr))
    with fakedist.patched(initialized=False):
        res = fakedist.run_ranks(2, lambda r: [rd.sync_observers(m, timeout=60)
                                               for m in models[r]])
    errors = [f"{type(e).__name__}: {e}" if isinstance(e, Exception) else None for e in res]
    report["mp_errors"] = errors
    for r, (qc, qr) in enumerate(models):
        arrays[f"mp{r}_col_w"] = np.asarray(qc[0].weight_quanter.qparams().scale)
        arrays[f"mp{r}_col_a"] = np.asarray(qc[0].activation_quanter.qparams().scale)
        arrays[f"mp{r}_row_w"] = np.asarray(qr[0].weight_quanter.qparams().scale)
        arrays[f"mp{r}_row_a"] = np.asarray(qr[0].activation_quanter.qparams().scale)
    arrays["mp_hidden"] = np.concatenate(hidden)


def main() -> None:
    out_dir = sys.argv[1]
    strategy = fleet.DistributedStrategy()
    strategy.hybrid_configs = {"dp_degree": 1, "mp_degree": 1, "pp_degree": 1}
    fleet.init(is_collective=True, strategy=strategy)
    arrays: dict = {}
    report: dict = {}
    part1(arrays, report)
    part2(arrays, report)
    report["classes"] = [QuantedColumnParallelLinear.__name__, QuantedRowParallelLinear.__name__]
    np.savez(os.path.join(out_dir, "tp.npz"), **arrays)
    with open(os.path.join(out_dir, "tp.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)


if __name__ == "__main__":
    main()
