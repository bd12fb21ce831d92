"""Multi-GPU PTQ with refquant's Paddle adapter: data-parallel calibration + tensor parallelism.

Run on a machine with GPUs (never part of CI)::

    # 4 GPUs: 2 data-parallel replicas x 2 tensor-parallel shards
    python -m paddle.distributed.launch --gpus 0,1,2,3 examples/multi_gpu_ptq.py --mp 2

    # data parallel only, 2 GPUs
    python -m paddle.distributed.launch --gpus 0,1 examples/multi_gpu_ptq.py --mp 1

    # CPU, 2 processes (gloo; data parallel only: Paddle has no CPU c_identity kernel)
    PADDLE_DISTRI_BACKEND=gloo python -m paddle.distributed.launch --nproc_per_node 2 \\
        examples/multi_gpu_ptq.py --mp 1

Each data-parallel rank calibrates on its own share of the batches; ``sync_observers`` merges
the statistics over the data-parallel group (exactly, in the canonical profile) and then over
each tensor-parallel layer's model-parallel group; ``convert`` gives every rank the QDQ model of
its shard. Rank 0 prints the activation scales, identical on every rank.
"""

from __future__ import annotations

import argparse

import numpy as np
import paddle
import paddle.distributed as dist
from paddle.distributed import fleet
from refquant.adapters.paddle import PTQ, QuantConfig
from refquant.adapters.paddle.distributed import sync_observers
from refquant.adapters.paddle.observers import (
    AbsMaxChannelWiseWeightObserver,
    HistObserver,
    KLObserver,
)
from refquant.adapters.paddle.parallel import register_parallel_layers


class TPBlock(paddle.nn.Layer):
    """An MLP block split Megatron-style: Column (no gather) -> GELU -> Row (parallel input)."""

    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.up = fleet.meta_parallel.ColumnParallelLinear(hidden, inner, has_bias=True,
                                                           gather_output=False)
        self.act = paddle.nn.GELU()
        self.down = fleet.meta_parallel.RowParallelLinear(inner, hidden, has_bias=True,
                                                          input_is_parallel=True)
        self.head = paddle.nn.Linear(hidden, 10)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.down(self.act(self.up(x))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mp", type=int, default=1, help="tensor-parallel degree")
    ap.add_argument("--batches", type=int, default=16, help="calibration batches in total")
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args()

    world = dist.get_world_size()
    if world % args.mp:
        raise SystemExit(f"--mp {args.mp} does not divide the {world} ranks")
    strategy = fleet.DistributedStrategy()
    strategy.hybrid_configs = {"dp_degree": world // args.mp, "mp_degree": args.mp,
                               "pp_degree": 1}
    fleet.init(is_collective=True, strategy=strategy)
    hcg = fleet.get_hybrid_communicate_group()
    dp_group = hcg.get_data_parallel_group()
    dp_rank, dp_size = hcg.get_data_parallel_rank(), hcg.get_data_parallel_world_size()

    # the same replicated weights on every rank, a different seed per tensor-parallel shard
    fleet.meta_parallel.model_parallel_random_seed(2024)
    model = TPBlock(args.hidden, 4 * args.hidden)
    model.eval()

    cfg = QuantConfig(activation=KLObserver(), weight=AbsMaxChannelWiseWeightObserver())
    cfg.add_type_config(paddle.nn.Linear, activation=HistObserver(percent=0.9999),
                        weight=AbsMaxChannelWiseWeightObserver())
    register_parallel_layers(cfg)  # ColumnParallelLinear/RowParallelLinear -> Quanted*
    ptq = PTQ(cfg)
    qmodel = ptq.quantize(model, inplace=True)

    # every data-parallel rank calibrates on batches dp_rank, dp_rank + dp_size, ...
    rng = np.random.default_rng(0)
    data = [rng.standard_normal((8, args.hidden)).astype("float32") * (1 + i % 4)
            for i in range(args.batches)]
    with paddle.no_grad():
        for x in data[dp_rank::dp_size]:
            qmodel(paddle.to_tensor(x))

    result = sync_observers(qmodel, group=dp_group, timeout=300)
    if dist.get_rank() == 0:
        print(f"synced over {result.world_size} data-parallel ranks and "
              f"{result.mp_groups} model-parallel group(s)")
        for path, qp in result.qparams.items():
            if "activation" in path:
                print(f"  {path}: scale {float(np.max(qp.scale))!r}")
    infer = ptq.convert(qmodel, inplace=True)
    with paddle.no_grad():
        out = infer(paddle.to_tensor(data[0]))
    if dist.get_rank() == 0:
        print("converted output", out.shape, float(out.abs().max()))


if __name__ == "__main__":
    main()
