"""Benchmark: PaddleSlim's histogram observers vs refquant, same inputs, one run.

Prints, for each item, the PaddleSlim time, the refquant time and the ratio:

1. KL search from a 2048-bin histogram (``cal_kl_threshold`` vs ``slim_kl_threshold``),
   for the int64 histogram of one batch and the float32 histogram after a merge; asserts
   identical thresholds.
2. KL observer on 1M values (observe + compute).
3. Hist observer on 1M values (observe + compute; PaddleSlim with the float-shim).
4. Histogram statistics (``ExactHistogram.add``) vs a bare ``np.abs(x).max()`` and vs
   ``np.histogram`` with the same bin count (the bare NumPy reduction of the same statistic).
5. Peak traced memory (tracemalloc) of one ``observe`` vs the input size.

Run: ``python bench/observers_hist.py`` (needs paddle + paddleslim for items 1-3).
"""

from __future__ import annotations

import importlib
import importlib.util
import time
import tracemalloc
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from refquant.histogram import ExactHistogram, SlimHistogram
from refquant.observers.hist import HistObserver
from refquant.observers.kl import KLObserver, kl_threshold, slim_kl_threshold
from refquant.testing import import_paddleslim, paddleslim_hist_module


def slim_module(name: str) -> types.ModuleType:
    """``paddleslim.quant.observers.<name>``; ``hist`` with the NumPy 2 float-shim (Q25)."""
    if name == "hist":
        return paddleslim_hist_module()
    return import_paddleslim(f"paddleslim.quant.observers.{name}")


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def row(name: str, t_slim: float | None, t_ours: float, extra: str = "") -> None:
    if t_slim is None:
        print(f"{name:<52} {'-':>10} {t_ours * 1e3:10.2f} ms {'':>9} {extra}")
    else:
        print(f"{name:<52} {t_slim * 1e3:10.1f} ms {t_ours * 1e3:10.2f} ms "
              f"{t_slim / t_ours:8.1f}x {extra}")


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1 << 20).astype(np.float32)
    x2 = (rng.standard_normal(1 << 20) * 1.5).astype(np.float32)
    have_slim = importlib.util.find_spec("paddleslim") is not None
    print(f"{'item':<52} {'PaddleSlim':>13} {'refquant':>13} {'ratio':>9}")

    # 1. KL search on 2048-bin histograms
    st = SlimHistogram(2048)
    st.forward(x)
    h_int = st.hist
    st.forward(x2)
    h_f32 = st.hist
    assert h_int is not None and h_f32 is not None
    cal = slim_module("kl").cal_kl_threshold if have_slim else None
    for label, h in (("int64, 1 batch", h_int), ("float32, after a merge", h_f32)):
        t_ours, thr = best_of(lambda h=h: slim_kl_threshold(h, 0.01, 8), 5)
        if cal is not None:
            t_slim, ref = best_of(lambda h=h: cal(h, 0.01, 8), 1)
            assert np.float64(ref).view(np.uint64) == np.float64(thr).view(np.uint64), (ref, thr)
            row(f"KL search, 2048 bins ({label})", t_slim, t_ours, "identical threshold")
        else:
            row(f"KL search, 2048 bins ({label})", None, t_ours)
    eh = ExactHistogram(2048)
    eh.add(x)
    t_can, _ = best_of(lambda: kl_threshold(eh.counts, eh.width, eh.abs_max, 8), 5)
    row("KL search, 2048 bins, canonical kl_threshold", None, t_can)

    # 2./3. observers on 1M values
    def ours(cls: type, profile: str, **kw: Any) -> Callable[[], Any]:
        def run() -> Any:
            obs = cls(**kw, profile=profile)
            obs.observe(x)
            return obs.compute()
        return run

    if have_slim:
        import paddle

        tx = paddle.to_tensor(x)
        lin = paddle.nn.Linear(2, 2)
        kl_mod, hist_mod = slim_module("kl"), slim_module("hist")

        def slim_run(layer_cls: Any, **kw: Any) -> Callable[[], Any]:
            def run() -> Any:
                layer = layer_cls(lin, **kw)
                layer.forward(tx)
                return layer.scales()
            return run

        t_slim_kl, s_ref = best_of(slim_run(kl_mod.KLObserverLayer), 1)
        t_slim_h, h_ref = best_of(slim_run(hist_mod.PercentHistObserverLayer), 2)
    else:
        t_slim_kl = t_slim_h = None
    t_kl, qp = best_of(ours(KLObserver, "paddleslim"), 3)
    if have_slim:
        assert np.float32(s_ref).view(np.uint32) == qp.scale.view(np.uint32)
    row("KL observer, 1M float32 (paddleslim profile)", t_slim_kl, t_kl, "same scale")
    t_klc, _ = best_of(ours(KLObserver, "canonical"), 3)
    row("KL observer, 1M float32 (canonical)", t_slim_kl, t_klc)
    t_h, qp = best_of(ours(HistObserver, "paddleslim"), 3)
    if have_slim:
        assert np.float32(h_ref).view(np.uint32) == qp.scale.view(np.uint32)
    row("Hist observer, 1M float32 (paddleslim profile)", t_slim_h, t_h, "same scale")
    t_hc, _ = best_of(ours(HistObserver, "canonical"), 3)
    row("Hist observer, 1M float32 (canonical)", t_slim_h, t_hc)

    # 4. histogram statistics vs a bare reduction
    t_bare, _ = best_of(lambda: np.abs(x).max(), 7)
    for sym in (True, False):
        t_stat, _ = best_of(lambda sym=sym: ExactHistogram(2048, symmetric=sym).add(x), 7)
        label = "|x|" if sym else "x (signed)"
        print(f"{'ExactHistogram.add ' + label + ', 1M float32':<52} bare np.abs(x).max() "
              f"{t_bare * 1e3:.2f} ms, add {t_stat * 1e3:.2f} ms: {t_stat / t_bare:.1f}x the bare "
              f"reduction (target <= 3x)")
        # the bare NumPy reduction that computes the same statistic: a 2048-bin histogram
        data = np.abs(x) if sym else x
        lo = 0.0 if sym else float(x.min())
        hi = float(data.max())
        t_np, _ = best_of(lambda d=data, lo=lo, hi=hi: np.histogram(d, 2048, (lo, hi)), 7)
        print(f"{'ExactHistogram.add ' + label + ' vs np.histogram':<52} np.histogram "
              f"{t_np * 1e3:.2f} ms, add {t_stat * 1e3:.2f} ms: {t_stat / t_np:.2f}x")

    # 5. peak memory of one observe
    for name, obs in (("KLObserver canonical", KLObserver()),
                      ("HistObserver canonical", HistObserver()),
                      ("HistObserver(symmetric=False) canonical", HistObserver(symmetric=False)),
                      ("KLObserver paddleslim", KLObserver(profile="paddleslim"))):
        tracemalloc.start()
        obs.observe(x)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"{'peak memory, ' + name:<52} {peak / 2**20:8.2f} MiB for a {x.nbytes / 2**20:.0f} "
              f"MiB input: {peak / x.nbytes:.2f}x (target < 4x)")


if __name__ == "__main__":
    main()
