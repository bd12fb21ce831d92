"""Data-parallel worker: run by ``python -m paddle.distributed.launch --nproc_per_node 2``.

Calibrates every case of :mod:`common` on this rank's shard, calls ``sync_observers`` and
saves the QParams (``rank<r>.npz``); then provokes the fault cases and records, per case,
the exception each rank raised (``rank<r>.json``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

os.environ.setdefault("PADDLE_DISTRI_BACKEND", "gloo")

import numpy as np  # noqa: E402
import paddle.distributed as dist  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from refquant.adapters.paddle import observers as O  # noqa: E402
from refquant.adapters.paddle.distributed import sync_observers  # noqa: E402


def outcome(fn) -> dict:
    try:
        fn()
    except Exception as exc:  # recorded for the test to check
        return {"error": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
                "message": str(exc)}
    return {"error": None}


def main() -> None:
    out_dir = sys.argv[1]
    dist.init_parallel_env()
    rank, world = dist.get_rank(), dist.get_world_size()
    data = common.shard(common.batches(), rank, world)
    arrays: dict[str, np.ndarray] = {}
    report: dict[str, dict] = {}

    # -- exact data-parallel merge, every canonical observer; paddleslim profile (MAX) ------
    for name, fac in {**common.CANONICAL, **common.SLIM}.items():
        _, qm = common.quantized(fac())
        common.calibrate(qm, data)
        arrays.update(common.flatten(common.observer_qparams(qm), f"local_{name}"))
        res = sync_observers(qm, timeout=60)
        arrays.update(common.flatten(common.observer_qparams(qm), name))
        report[f"modes_{name}"] = res.modes
        if name == "mse":  # a second sync without new data changes nothing
            sync_observers(qm, timeout=60)
            arrays.update(common.flatten(common.observer_qparams(qm), "mse_twice"))
            common.calibrate(qm, data[:1])  # more data after the sync: refused everywhere
            report["stale"] = outcome(lambda qm=qm: sync_observers(qm, timeout=60))

    # -- a rank that never observed data ---------------------------------------------------
    _, qm = common.quantized(common.CANONICAL["kl"]())
    if rank == 0:
        common.calibrate(qm, data)
    report["empty"] = outcome(lambda: sync_observers(qm, timeout=60))
    report["empty_allowed"] = outcome(
        lambda: sync_observers(qm, timeout=60, allow_empty_ranks=True))
    arrays.update(common.flatten(common.observer_qparams(qm), "empty_allowed"))

    # -- different observer configurations -------------------------------------------------
    act = O.MSEObserver() if rank == 0 else O.KLObserver()
    _, qm = common.quantized((act, O.AbsMaxChannelWiseWeightObserver()))
    common.calibrate(qm, data)
    report["config"] = outcome(lambda: sync_observers(qm, timeout=60))

    # -- different bit widths: same class, different configuration -------------------------
    _, qm = common.quantized((O.AbsmaxObserver(quant_bits=8 if rank == 0 else 4), None))
    common.calibrate(qm, data)
    report["bits"] = outcome(lambda: sync_observers(qm, timeout=60))

    # -- different weights on the ranks (replicated data that is not) ----------------------
    model = common.build_model(seed=7 + rank)
    _, qm = common.quantized(common.CANONICAL["absmax"](), model)
    common.calibrate(qm, data)
    report["weights"] = outcome(lambda: sync_observers(qm, timeout=60))

    # -- the group is still usable after every refused sync -------------------------------
    _, qm = common.quantized(common.CANONICAL["absmax"]())
    common.calibrate(qm, data)
    report["after_faults"] = outcome(lambda: sync_observers(qm, timeout=60))
    arrays.update(common.flatten(common.observer_qparams(qm), "after_faults"))

    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **arrays)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
