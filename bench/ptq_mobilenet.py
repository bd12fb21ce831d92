"""PTQ calibration speed: refquant's Paddle adapter vs PaddleSlim + paddle.quantization.

For each observer, on ``mobilenet_v1(scale=0.25)`` (random weights, eval mode) and the same
4 random batches of shape ``(8, 3, 64, 64)``, times in one run, alternately:

* **PaddleSlim**: ``paddle.quantization.PTQ`` + ``QuantConfig(activation=paddleslim.quant.
  observers.<Obs>(), weight=AbsMaxChannelWiseWeightObserver())``;
* **adapter**: ``refquant.adapters.paddle.PTQ`` + the adapter's factories of the same names
  (``profile="canonical"``, the default, and ``profile="paddleslim"``).

A timing covers ``quantize`` + the forward passes + computing every observer's scale
(``cal_thresholds``), best of ``--repeats`` alternating runs when PaddleSlim's run is under
2 s. PaddleSlim's HistObserver ``scales()`` raises on NumPy 2 (quirk 25): for it
only the forward passes are timed. Prints seconds and the ratio PaddleSlim / adapter
(> 1: the adapter is faster). Targets (docs/adapter.md, "Performance"): >= 3x for MSE and
EMD, no slower for the others.

On a CPU place the adapter computes its statistics with NumPy on the tensors' memory (CPU
dispatch, docs/adapter.md); ``--device-ops`` forces its Paddle-op branch instead (the branch
a GPU takes), to time that branch on the same machine.

Usage::

    python bench/ptq_mobilenet.py                       # every observer, CPU or GPU
    python bench/ptq_mobilenet.py --observers MSEObserver EMDObserver --device cpu
    python bench/ptq_mobilenet.py --device-ops          # the adapter's Paddle-op branch
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import paddle

OBSERVERS = ("AbsmaxObserver", "AVGObserver", "MSEObserver", "EMDObserver", "HistObserver",
             "KLObserver")


def _model() -> paddle.nn.Layer:
    from paddle.vision.models import mobilenet_v1

    paddle.seed(0)
    m = mobilenet_v1(scale=0.25)
    m.eval()
    return m


def _calibrate(ptq: Any, model: paddle.nn.Layer, batches: list) -> tuple[float, str]:
    t0 = time.perf_counter()
    q = ptq.quantize(model)
    for b in batches:
        q(b)
    note = ""
    for layer in q.sublayers():
        if hasattr(layer, "cal_thresholds") and hasattr(layer, "scales"):
            try:
                layer.cal_thresholds()
                layer.scales()
            except TypeError as exc:  # PaddleSlim HistObserver on NumPy 2 (quirk 25)
                note = f"scales() raises TypeError: {str(exc)[:60]}"
    if paddle.device.get_device().startswith("gpu"):
        paddle.device.synchronize()
    return time.perf_counter() - t0, note


def run(observers: list[str], n_batches: int = 4, device: str | None = None,
        repeats: int = 5) -> list[dict]:
    from paddle.quantization import PTQ as PaddlePTQ
    from paddle.quantization import QuantConfig as PaddleConfig
    from paddleslim.quant import observers as slim
    from refquant.adapters.paddle import PTQ, QuantConfig
    from refquant.adapters.paddle import observers as ours

    if device:
        paddle.set_device(device)
    rng = np.random.default_rng(0)
    batches = [paddle.to_tensor(rng.standard_normal((8, 3, 64, 64)).astype(np.float32))
               for _ in range(n_batches)]
    model = _model()
    _calibrate(PTQ(QuantConfig(activation=ours.AbsmaxObserver())), model, batches[:1])  # warm-up
    rows = []
    for name in observers:
        slim_cfg = PaddleConfig(activation=getattr(slim, name)(),
                                weight=slim.AbsMaxChannelWiseWeightObserver())
        def ours_cfg(profile: str, name: str = name) -> Any:
            return QuantConfig(activation=getattr(ours, name)(profile=profile),
                               weight=ours.AbsMaxChannelWiseWeightObserver(profile=profile))

        # alternate the runs; the best of `repeats` each (cheap observers only: the machine
        # is shared, and a single sub-second timing is noise)
        t_slim, note = _calibrate(PaddlePTQ(slim_cfg), model, batches)
        best = {p: _calibrate(PTQ(ours_cfg(p)), model, batches)[0]
                for p in ("canonical", "paddleslim")}
        reps = repeats if t_slim < 2.0 else 1
        for _ in range(reps - 1):
            t_slim = min(t_slim, _calibrate(PaddlePTQ(slim_cfg), model, batches)[0])
            for p in best:
                best[p] = min(best[p], _calibrate(PTQ(ours_cfg(p)), model, batches)[0])
        row: dict[str, Any] = {"observer": name, "paddleslim_s": round(t_slim, 3),
                               "runs": reps}
        if note:
            row["paddleslim_note"] = note
        for profile, t_ours in best.items():
            row[f"adapter_{profile}_s"] = round(t_ours, 3)
            row[f"ratio_{profile}"] = round(t_slim / t_ours, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observers", nargs="*", default=list(OBSERVERS))
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--device", default=None, help="e.g. cpu or gpu:0 (default: Paddle's)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="best of N for observers whose PaddleSlim run takes < 2 s")
    parser.add_argument("--device-ops", action="store_true",
                        help="force the adapter's Paddle-op statistics on CPU tensors too")
    args = parser.parse_args()
    if args.device_ops:
        from refquant.adapters.paddle import _device

        _device.FORCE_DEVICE_OPS = True
    print(f"device: {args.device or paddle.device.get_device()}"
          + (" (adapter: Paddle-op branch forced)" if args.device_ops else ""))
    rows = run(args.observers, args.batches, args.device, args.repeats)
    print()
    print(f"{'observer':<16} {'paddleslim s':>12} {'canonical s':>12} {'ratio':>7} "
          f"{'slim-profile s':>14} {'ratio':>7}")
    for r in rows:
        print(f"{r['observer']:<16} {r['paddleslim_s']:>12.3f} {r['adapter_canonical_s']:>12.3f} "
              f"{r['ratio_canonical']:>7.2f} {r['adapter_paddleslim_s']:>14.3f} "
              f"{r['ratio_paddleslim']:>7.2f}")


if __name__ == "__main__":
    main()
