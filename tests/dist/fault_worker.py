"""Dead-rank worker: two processes started by the test with Paddle's environment variables.

``python fault_worker.py OUT MODE`` with MODE:

* ``hang``: rank 1 never calls ``sync_observers`` (it sleeps until the test kills it);
* ``die``: rank 1 exits in the middle of ``sync_observers``, after the manifest exchange.

Rank 0 records what ``sync_observers`` raised (``rank0.json``); nothing is timed.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("PADDLE_DISTRI_BACKEND", "gloo")

import paddle.distributed as dist  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from refquant.adapters.paddle import distributed as rd  # noqa: E402

TIMEOUT = 4.0


def main() -> None:
    out_dir, mode = sys.argv[1], sys.argv[2]
    dist.init_parallel_env()
    rank, world = dist.get_rank(), dist.get_world_size()
    _, qm = common.quantized(common.CANONICAL["mse"]())
    common.calibrate(qm, common.shard(common.batches(), rank, world))
    if rank == 1:
        if mode == "hang":
            time.sleep(3600)  # the test kills this process
            return
        real = rd._validate

        def die(*args, **kwargs):
            real(*args, **kwargs)
            os._exit(3)  # mid-sync: after the manifest exchange, before the reductions

        rd._validate = die
    try:
        rd.sync_observers(qm, timeout=TIMEOUT)
        rec = {"error": None}
    except Exception as exc:
        rec = {"error": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
               "message": str(exc)}
    rec["timeout"] = TIMEOUT
    if rank == 0:
        with open(os.path.join(out_dir, "rank0.json"), "w") as f:
            json.dump(rec, f)
    os._exit(0)  # do not wait for the dead peer in Paddle's exit hooks


if __name__ == "__main__":
    main()
