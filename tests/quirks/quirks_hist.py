"""Quirk registry: PaddleSlim's histogram observers (Q21-Q31).

Each entry's ``paddleslim_value`` was measured by running the real PaddleSlim 2.6.0 (Paddle
3.3.1, NumPy 2.4.6) on the stated input (Hist entries with the float-shim of Q25).
Importable with numpy + refquant alone; paddle/paddleslim are imported only inside the
``real`` callables. :func:`same_outcome` says when a ``real`` outcome and refquant's agree.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

from refquant.histogram import ExactHistogram, SlimHistogram
from refquant.observers.hist import HistObserver
from refquant.observers.kl import KLObserver, kl_threshold, slim_kl_threshold
from refquant.testing import import_paddleslim, paddleslim_hist_module


# -- helpers ------------------------------------------------------------------------------
def _slim(name: str) -> types.ModuleType:
    """``paddleslim.quant.observers.<name>``; ``hist`` with the NumPy 2 float-shim (Q25)."""
    if name == "hist":
        return paddleslim_hist_module()
    return import_paddleslim(f"paddleslim.quant.observers.{name}")


def _real_layer(name: str, cls: str, batches: list[np.ndarray], **kw: Any) -> Any:
    import paddle

    layer = getattr(_slim(name), cls)(paddle.nn.Linear(2, 2), **kw)
    for b in batches:
        layer.forward(paddle.to_tensor(b))
    return layer


def _real_scale(name: str, cls: str, batches: list[np.ndarray], **kw: Any) -> float:
    return float(_real_layer(name, cls, batches, **kw).scales())


def _real_zp(name: str, cls: str, batches: list[np.ndarray], **kw: Any) -> Any:
    return _real_layer(name, cls, batches, **kw).zero_points()


def _ours(cls: type, batches: list[np.ndarray], profile: str = "paddleslim", **kw: Any) -> Any:
    obs = cls(**kw, profile=profile)
    for b in batches:
        obs.observe(b)
    return obs.compute()


def _scale(cls: type, batches: list[np.ndarray], profile: str = "paddleslim", **kw: Any) -> float:
    return float(_ours(cls, batches, profile, **kw).scale)


def _slim_state(batches: list[np.ndarray], bins: int) -> SlimHistogram:
    st = SlimHistogram(bins)
    for b in batches:
        st.forward(b)
    return st


def _exact(batches: list[np.ndarray], bins: int) -> ExactHistogram:
    h = ExactHistogram(bins)
    for b in batches:
        h.add(b)
    return h


def _raises(fn: Any, exc: type) -> bool:
    try:
        fn()
    except exc:
        return True
    except Exception:  # noqa: BLE001
        return False
    return False


def _f32_same(a: Any, b: Any) -> bool:
    return bool(np.float32(a).view(np.uint32) == np.float32(b).view(np.uint32))


def _f64_same(a: Any, b: Any) -> bool:
    return bool(np.float64(a).view(np.uint64) == np.float64(b).view(np.uint64))


# -- inputs -------------------------------------------------------------------------------
F32 = np.float32
B_0TO4 = [np.array([0, 1, 2, 3, 4], F32)]
B_MERGE = [np.array([0, 1, 2, 3, 4], F32), np.array([-2, 5], F32)]
_rng = np.random.default_rng(2024)
B_1000 = [_rng.standard_normal(1000).astype(F32)]
B_CONST_FIRST = [np.full(3, 0.5, F32), B_1000[0]]
B_CONST_LATER = [B_1000[0], np.zeros(500, F32)]
B_ARANGE = [np.arange(1000, dtype=F32)]
B_TAIL = [np.concatenate([np.full(5, -10, F32), np.linspace(0, 1, 995, dtype=F32)])]
B_SKEW = [np.linspace(-1, 3, 1001, dtype=F32)]
B_U1011 = [np.random.default_rng(5).uniform(10, 11, 2000).astype(F32)]
B_N64 = [np.random.default_rng(6).standard_normal(2000).astype(F32)]
H_LOW = np.array([1000] * 20 + [1] * 236, dtype=np.int64)


QUIRKS: list[dict[str, Any]] = [
    {
        "id": "Q21",
        "title": "the first batch's histogram stays int64 (astype result discarded); float32 "
                 "only after a second non-constant batch",
        "input": "bins=8; batch [0,1,2,3,4] (float32), then [-2,5]",
        "paddleslim_value": "('int64', 'float32')",
        "refquant_paddleslim": lambda: str((str(_slim_state(B_0TO4, 8).hist.dtype),
                                            str(_slim_state(B_MERGE, 8).hist.dtype))),
        "refquant_canonical": lambda: str(_exact(B_MERGE, 8).counts.dtype),
        "check": lambda: str((str(_slim_state(B_0TO4, 8).hist.dtype),
                              str(_slim_state(B_MERGE, 8).hist.dtype))) == "('int64', 'float32')",
        "real": lambda: str((str(_real_layer("kl", "KLObserverLayer", B_0TO4,
                                             bins_count=8)._hist.dtype),
                             str(_real_layer("kl", "KLObserverLayer", B_MERGE,
                                             bins_count=8)._hist.dtype))),
    },
    {
        "id": "Q22a",
        "title": "a constant first batch leaves no histogram: scales() raises AssertionError",
        "input": "KLObserver, one batch of three 0.5 values (float32)",
        "paddleslim_value": "raises AssertionError",
        "refquant_paddleslim": lambda: _scale(KLObserver, B_CONST_FIRST[:1]),
        "refquant_canonical": lambda: _scale(KLObserver, B_CONST_FIRST[:1], "canonical"),
        "check": lambda: _raises(lambda: _scale(KLObserver, B_CONST_FIRST[:1]), AssertionError),
        "real": lambda: _real_scale("kl", "KLObserverLayer", B_CONST_FIRST[:1]),
    },
    {
        "id": "Q22b",
        "title": "after a constant first batch the next batch replaces the state: its values "
                 "are lost from the counts",
        "input": "bins=2048; three 0.5 values, then 1000 N(0,1) values (float32)",
        "paddleslim_value": 1000.0,
        "refquant_paddleslim": lambda: float(np.sum(_slim_state(B_CONST_FIRST, 2048).hist)),
        "refquant_canonical": lambda: float(_exact(B_CONST_FIRST, 2048).total),
        "check": lambda: float(np.sum(_slim_state(B_CONST_FIRST, 2048).hist)) == 1000.0,
        "real": lambda: float(np.sum(_real_layer("kl", "KLObserverLayer", B_CONST_FIRST)._hist)),
    },
    {
        "id": "Q23",
        "title": "a constant later batch is silently dropped, even inside the range",
        "input": "bins=2048; 1000 N(0,1) values, then 500 zeros (float32)",
        "paddleslim_value": 1000.0,
        "refquant_paddleslim": lambda: float(np.sum(_slim_state(B_CONST_LATER, 2048).hist)),
        "refquant_canonical": lambda: float(_exact(B_CONST_LATER, 2048).total),
        "check": lambda: float(np.sum(_slim_state(B_CONST_LATER, 2048).hist)) == 1000.0,
        "real": lambda: float(np.sum(_real_layer("kl", "KLObserverLayer", B_CONST_LATER)._hist)),
    },
    {
        "id": "Q24a",
        "title": "approximate merge: old histogram repeated x64, re-binned on a relaxed range, "
                 "divided by 64",
        "input": "bins=8; batch [0,1,2,3,4], then [-2,5] (float32)",
        "paddleslim_value": "[1.0, 0.0, 1.0, 1.0, 0.75, 0.75, 1.5, 1.0]",
        "refquant_paddleslim": lambda: _slim_state(B_MERGE, 8).hist.tolist(),
        "refquant_canonical": lambda: _exact(B_MERGE, 8).counts.tolist(),
        "check": lambda: _slim_state(B_MERGE, 8).hist.tolist()
        == [1.0, 0.0, 1.0, 1.0, 0.75, 0.75, 1.5, 1.0],
        "real": lambda: _real_layer("kl", "KLObserverLayer", B_MERGE, bins_count=8)._hist.tolist(),
    },
    {
        "id": "Q24b",
        "title": "_relax_min_max extends the max by the re-binning error",
        "input": "_relax_min_max(-0.01171875, 4, 0, 4, 8, 64)",
        "paddleslim_value": 4.05078125,
        "refquant_paddleslim": lambda: SlimHistogram.relax_min_max(-0.01171875, 4, 0, 4, 8, 64)[1],
        "refquant_canonical": lambda: "n/a: the exact histogram doubles a power-of-two width",
        "check": lambda: SlimHistogram.relax_min_max(-0.01171875, 4, 0, 4, 8, 64)[1] == 4.05078125,
        "real": lambda: _real_layer("kl", "KLObserverLayer", B_0TO4, bins_count=8)._relax_min_max(
            -0.01171875, 4, 0, 4, 8, 64)[1],
    },
    {
        "id": "Q25",
        "title": "Hist scales() raises TypeError on NumPy 2 (float() of a shape-(1,) array); "
                 "refquant computes the NumPy 1.x value (what the float-shim gives)",
        "input": "HistObserver(bins_count=10, percent=0.999), x = 0..999 (float32)",
        "paddleslim_value": 849.1500000000001,
        "refquant_paddleslim": lambda: _ours(HistObserver, B_ARANGE, bins_count=10).extra["max"],
        "refquant_canonical": lambda: _scale(HistObserver, B_ARANGE, "canonical", bins_count=128),
        "check": lambda: _ours(HistObserver, B_ARANGE, bins_count=10).extra["max"]
        == 849.1500000000001,
        "real": lambda: _real_scale("hist", "PercentHistObserverLayer", B_ARANGE, bins_count=10),
    },
    {
        "id": "Q26",
        "title": "percentile threshold is hist_min + (idx - 0.5) * w, half a bin below the "
                 "percentile bin's left edge",
        "input": "HistObserver(bins_count=1000, percent=0.5), x = 0..999 (float32)",
        "paddleslim_value": 498.0015,
        "refquant_paddleslim": lambda: _ours(HistObserver, B_ARANGE, bins_count=1000,
                                             percent=0.5).extra["max"],
        "refquant_canonical": lambda: _scale(HistObserver, B_ARANGE, "canonical",
                                             bins_count=1000, percent=0.5),
        "check": lambda: _ours(HistObserver, B_ARANGE, bins_count=1000,
                               percent=0.5).extra["max"] == 498.0015,
        "real": lambda: _real_scale("hist", "PercentHistObserverLayer", B_ARANGE,
                                    bins_count=1000, percent=0.5),
    },
    {
        "id": "Q27",
        "title": "per-tail percentiles of the signed histogram; a low quantile in bin 0 lands "
                 "below the data",
        "input": "HistObserver(); five -10.0 values and linspace(0, 1, 995) (float32)",
        "paddleslim_value": 10.002685546875,
        "refquant_paddleslim": lambda: _scale(HistObserver, B_TAIL),
        "refquant_canonical": lambda: _scale(HistObserver, B_TAIL, "canonical"),
        "check": lambda: _f32_same(_scale(HistObserver, B_TAIL), 10.002685546875),
        "real": lambda: float(np.float32(_real_scale("hist", "PercentHistObserverLayer", B_TAIL))),
    },
    {
        "id": "Q28a",
        "title": "symmetric=False returns a step (max-min)/255 and an np.int64 zero point",
        "input": "HistObserver(symmetric=False), x = linspace(-1, 3, 1001) (float32)",
        "paddleslim_value": 0.015647977590560913,
        "refquant_paddleslim": lambda: _scale(HistObserver, B_SKEW, symmetric=False),
        "refquant_canonical": lambda: _scale(HistObserver, B_SKEW, "canonical", symmetric=False),
        "check": lambda: _f32_same(_scale(HistObserver, B_SKEW, symmetric=False),
                                   0.015647977590560913),
        "real": lambda: float(np.float32(_real_scale("hist", "PercentHistObserverLayer", B_SKEW,
                                                     symmetric=False))),
    },
    {
        "id": "Q28b",
        "title": "sign=False keeps the abs-max threshold and returns zero point 128.0 "
                 "((qmax+qmin)/2 with qmax = 2**bits)",
        "input": "HistObserver(sign=False), x = linspace(-1, 3, 1001) (float32)",
        "paddleslim_value": 128.0,
        "refquant_paddleslim": lambda: float(_ours(HistObserver, B_SKEW, sign=False).zero_point),
        "refquant_canonical": lambda: float(_ours(HistObserver, B_SKEW, "canonical",
                                                  sign=False).zero_point),
        "check": lambda: float(_ours(HistObserver, B_SKEW, sign=False).zero_point) == 128.0
        and _ours(HistObserver, B_SKEW, sign=False).qmax == 256,
        "real": lambda: float(_real_zp("hist", "PercentHistObserverLayer", B_SKEW, sign=False)),
    },
    {
        "id": "Q28c",
        "title": "sign=False, symmetric=False: step = range/256",
        "input": "HistObserver(sign=False, symmetric=False), x = linspace(-1, 3, 1001) (float32)",
        "paddleslim_value": 0.01558685302734375,
        "refquant_paddleslim": lambda: _scale(HistObserver, B_SKEW, sign=False, symmetric=False),
        "refquant_canonical": lambda: _scale(HistObserver, B_SKEW, "canonical", sign=False,
                                             symmetric=False),
        "check": lambda: _f32_same(_scale(HistObserver, B_SKEW, sign=False, symmetric=False),
                                   0.01558685302734375),
        "real": lambda: float(np.float32(_real_scale("hist", "PercentHistObserverLayer", B_SKEW,
                                                     sign=False, symmetric=False))),
    },
    {
        "id": "Q29",
        "title": "KL threshold (idx+0.5)*w is measured from 0 on a histogram that starts at "
                 "min: shifted data is clipped entirely",
        "input": "KLObserver(bins_count=256), 2000 values U[10, 11] (float32, seed 5)",
        "paddleslim_value": 0.9974281787872314,
        "refquant_paddleslim": lambda: _scale(KLObserver, B_U1011, bins_count=256),
        "refquant_canonical": lambda: _scale(KLObserver, B_U1011, "canonical", bins_count=256),
        "check": lambda: _f32_same(_scale(KLObserver, B_U1011, bins_count=256),
                                   0.9974281787872314),
        "real": lambda: float(np.float32(_real_scale("kl", "KLObserverLayer", B_U1011,
                                                     bins_count=256))),
    },
    {
        "id": "Q30",
        "title": "only i >= int((bins-1)*0.5) is searched (127 target bins): a histogram whose "
                 "mass is in the first bins still gets a threshold past the middle",
        "input": "cal_kl_threshold([1000]*20 + [1]*236 (int64), bin_width=1.0, bits=8)",
        "paddleslim_value": 255.5,
        "refquant_paddleslim": lambda: slim_kl_threshold(H_LOW, 1.0, 8),
        "refquant_canonical": lambda: kl_threshold(H_LOW, 1.0, 256.0, 8)[0],
        "check": lambda: slim_kl_threshold(H_LOW, 1.0, 8) == 255.5,
        "real": lambda: _slim("kl").cal_kl_threshold(H_LOW, 1.0, 8),
    },
    {
        "id": "Q31a",
        "title": "error paths: a single-element input leaves no histogram -> AssertionError "
                 "(safe_entropy's NameError on an undefined _logger is unreachable from "
                 "cal_kl_threshold for non-negative histograms)",
        "input": "KLObserver, one batch [2.5] (float32)",
        "paddleslim_value": "raises AssertionError",
        "refquant_paddleslim": lambda: _scale(KLObserver, [np.array([2.5], F32)]),
        "refquant_canonical": lambda: _scale(KLObserver, [np.array([2.5], F32)], "canonical"),
        "check": lambda: _raises(lambda: _scale(KLObserver, [np.array([2.5], F32)]),
                                 AssertionError),
        "real": lambda: _real_scale("kl", "KLObserverLayer", [np.array([2.5], F32)]),
    },
    {
        "id": "Q31b",
        "title": "bins_count=64 (fewer bins than 2*127 target bins) runs without error",
        "input": "KLObserver(bins_count=64), 2000 N(0,1) values (float32, seed 6)",
        "paddleslim_value": 5.304966926574707,
        "refquant_paddleslim": lambda: _scale(KLObserver, B_N64, bins_count=64),
        "refquant_canonical": lambda: "canonical rejects bins_count < 2**(bits-1) (ValueError)",
        "check": lambda: _f32_same(_scale(KLObserver, B_N64, bins_count=64), 5.304966926574707),
        "real": lambda: float(np.float32(_real_scale("kl", "KLObserverLayer", B_N64,
                                                     bins_count=64))),
    },
]


def same_outcome(real: Any, ours: Any) -> bool:
    """Whether the real PaddleSlim's outcome equals the ``paddleslim`` profile's: floats bit
    for bit in float64, arrays by value and dtype, anything else by ``==``; an exception
    (either side) by its type."""
    real, ours = (f"raises {type(v).__name__}" if isinstance(v, BaseException) else v
                  for v in (real, ours))
    if isinstance(real, float) and isinstance(ours, float):
        return _f64_same(real, ours)
    if isinstance(real, np.ndarray) or isinstance(ours, np.ndarray):
        a, b = np.asarray(real), np.asarray(ours)
        return a.dtype == b.dtype and bool(np.array_equal(a, b))
    return bool(real == ours)
