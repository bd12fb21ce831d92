"""Benchmark: refquant's abs-max / AVG / MSE / EMD / channel-wise / group-wise observers
against PaddleSlim 2.6.0 on the same input, side by side in one run.

    python bench/observers_search.py          # 1M-value tensors (a few seconds)
    python bench/observers_search.py --big    # plus ONE run on a (64,256,32,32) tensor
                                              # (PaddleSlim needs ~25-40 s per observer)

Prints, per observer: PaddleSlim time (forward + scales()), refquant time (observe +
compute) for the paddleslim profile (and the canonical one, for information), the ratio,
whether the scales are bit-identical, the decision margin, and refquant's peak traced
memory of one observe relative to the input size. Abs-max statistics are compared with a
bare ``np.abs(x).max()`` instead. Targets: MSE / EMD / MSE channel-wise >= 3x faster with
identical scale; abs-max statistics within 3x of the bare reduction; peak memory < 4x input.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from refquant.observers.absmax import AbsmaxObserver
from refquant.observers.avg import AVGObserver
from refquant.observers.channel_wise import (
    AbsMaxChannelWiseWeightObserver,
    MSEChannelWiseWeightObserver,
)
from refquant.observers.emd import EMDObserver
from refquant.observers.groupwise import GroupWiseWeightObserver
from refquant.observers.mse import MSEObserver
from refquant.testing import import_paddleslim


def _slim():
    import paddle

    import_paddleslim("paddleslim")
    from paddleslim.quant.observers.emd import EMDObserverLayer
    from paddleslim.quant.observers.mse import MSEObserverLayer
    from paddleslim.quant.observers.mse_weight import MSEChannelWiseWeightObserverLayer

    return paddle, {"MSE": MSEObserverLayer, "EMD": EMDObserverLayer,
                    "MSECW": MSEChannelWiseWeightObserverLayer}


def _time(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _ours(cls, x, **kw):
    def run():
        o = cls(**kw)
        o.observe(x)
        return o.compute()
    return _time(run)


def _peak(cls, x, **kw) -> float:
    o = cls(**kw)
    tracemalloc.start()
    tracemalloc.reset_peak()
    o.observe(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / x.nbytes


def _bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def compare(name, x, layer_kind, ours_cls, **kw):
    paddle, layers = _slim()
    dummy = paddle.nn.Conv2D(1, 1, 1) if layer_kind == "conv" else paddle.nn.Linear(2, 2)
    real = layers[name](dummy)
    t = paddle.to_tensor(x)
    real.forward(paddle.to_tensor(x[:8].copy()))  # warm-up on a tiny tensor
    real = layers[name](dummy)
    t_real, _ = _time(lambda: (real.forward(t), real.scales()))
    s_real = real.scales()
    s_real = s_real.numpy() if hasattr(s_real, "numpy") else s_real
    t_ours, qp = _ours(ours_cls, x, profile="paddleslim", **kw)
    t_can, _ = _ours(ours_cls, x, **kw)
    same = np.array_equal(_bits(s_real), _bits(qp.scale))
    margin = qp.margin if np.ndim(qp.margin) == 0 else float(np.min(qp.margin))
    mem = _peak(ours_cls, x, profile="paddleslim", **kw)
    mem_c = _peak(ours_cls, x, **kw)
    print(f"{name:6s} {str(x.shape):20s} paddleslim {t_real:8.3f} s | refquant {t_ours:7.3f} s "
          f"(canonical {t_can:6.3f} s) | x{t_real / t_ours:6.1f} | identical scale: {same} "
          f"| margin {margin:.3g} | peak mem {mem:.2f}x input (canonical {mem_c:.2f}x)")
    return t_real / t_ours, same, mem


def stats(x):
    bare, _ = _time(lambda: np.abs(x).max())
    bare = min(bare, _time(lambda: np.abs(x).max())[0])
    rows = [("AbsMax", AbsmaxObserver, x, {}), ("AVG", AVGObserver, x.reshape(64, -1), {}),
            ("AbsMaxCW", AbsMaxChannelWiseWeightObserver, x.reshape(64, -1), {"axis": 0}),
            ("Group", GroupWiseWeightObserver, x.reshape(1024, -1), {"group_size": 128})]
    out = []
    for name, cls, arr, kw in rows:
        for profile in ("paddleslim", "canonical"):
            def run(cls=cls, arr=arr, kw=kw, profile=profile):
                o = cls(profile=profile, **kw)
                o.observe(arr)
                return o
            t = min(_time(run)[0] for _ in range(3))
            mem = _peak(cls, arr, profile=profile, **kw)
            print(f"{name:8s} {profile:10s} observe {t * 1e3:7.2f} ms | bare np.abs(x).max() "
                  f"{bare * 1e3:6.2f} ms | ratio {t / bare:5.2f} | peak mem {mem:.2f}x input")
            out.append((t / bare, mem))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true", help="also run the (64,256,32,32) tensor once")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal(1 << 20).astype(np.float32)
    print("== abs-max statistics, 1M float32 values ==")
    stats(x1)
    print("== searching observers, 1M float32 values (N(0,1), default_rng(0)) ==")
    compare("MSE", x1, "linear", MSEObserver)
    compare("EMD", x1, "linear", EMDObserver)
    compare("MSECW", x1.reshape(64, 256, 8, 8), "conv", MSEChannelWiseWeightObserver)
    if args.big:
        xb = np.random.default_rng(0).standard_normal((64, 256, 32, 32)).astype(np.float32)
        print("== searching observers, (64,256,32,32) float32 (run once) ==")
        compare("MSE", xb, "linear", MSEObserver)
        compare("EMD", xb, "linear", EMDObserver)
        compare("MSECW", xb, "conv", MSEChannelWiseWeightObserver)


if __name__ == "__main__":
    main()
