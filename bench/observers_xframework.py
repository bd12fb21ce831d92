"""Benchmark: the other frameworks' observers vs refquant's, on the same data, in one run.

For each framework that is installed, on the same batches (default: 8 batches of 64x4096
float32 activations, normal with a few large outliers per batch):

* each bug-for-bug observer of refquant (``refquant.observers.torch``, ``.onnxruntime``,
  ``.nncf``) vs the real one (``torch.ao.quantization``'s observers; ONNX Runtime's
  calibrators on a one-node ``Identity`` model, one ``collect_data`` call per batch, then
  ``compute_scale_zp``; NNCF's reducers and aggregators, then its FakeQuantize parameters):
  both times, the ratio original / refquant (target >= 1x: no slower than the original) and
  ``identical=`` whether every result (range where the family has one, scale, zero point)
  has the same dtype, shape and bit pattern;
* each canonical counterpart vs the original: both times, the ratio (target >= 3x for the
  histogram-based ones) and ``agrees=`` whether its result happens to equal the original's
  (it need not: it is a different, order-free computation).

Timed: observing the batches and computing the result (best of ``--repeat``); not timed:
building ORT's model and inference session. ModelOpt is run only where it imports.

Run: ``python bench/observers_xframework.py`` (``--quick``: 2 small batches, one repeat).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

Result = tuple[np.ndarray, ...]


def make_batches(n: int, rows: int, cols: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` float32 batches: N(0, s) with s in [0.8, 1.2] per batch, and 8 outliers of
    magnitude 20..60 per batch (the range grows and shrinks from batch to batch)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.standard_normal((rows, cols)) * rng.uniform(0.8, 1.2)
        idx = rng.integers(0, x.size, 8)
        x.reshape(-1)[idx] = rng.uniform(20, 60, 8) * rng.choice([-1.0, 1.0], 8)
        out.append(x.astype(np.float32))
    return out


def best_of(fn: Callable[[], Result], repeat: int,
            setup: Callable[[], None] | None = None) -> tuple[float, Result]:
    """Best time of ``repeat`` calls of ``fn`` (``setup`` runs untimed before each)."""
    best = float("inf")
    out: Result = ()
    for _ in range(repeat):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def identical(a: Result, b: Result) -> bool:
    """Same number of results, and each with the same dtype, shape and bytes."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            return False
    return True


def row(family: str, name: str, t_real: float, t_ours: float, target: float,
        key: str, same: bool) -> None:
    ratio = t_real / t_ours
    met = "met" if ratio >= target else "MISSED"
    print(f"{family:<12} {name:<56} {t_real * 1e3:10.1f} {t_ours * 1e3:10.1f} "
          f"{ratio:7.2f}x  >={target:g}x {met:<6} {key}={same}")


def header() -> None:
    print(f"{'family':<12} {'observer (refquant vs original)':<56} {'orig ms':>10} "
          f"{'ours ms':>10} {'ratio':>8}  target")


def run_ours(make: Callable[[], Any], batches: list[np.ndarray],
             finish: Callable[[Any], Result]) -> Callable[[], Result]:
    def go() -> Result:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs = make()
            for b in batches:
                obs.observe(b)
            return finish(obs)
    return go


def qp_result(obs: Any) -> Result:
    qp = obs.compute()
    return (np.asarray(qp.scale, np.float32), np.asarray(qp.zero_point, np.int64))


# -- torch.ao -------------------------------------------------------------------------------
def bench_torch(batches: list[np.ndarray], repeat: int) -> None:
    if importlib.util.find_spec("torch") is None:
        print("torch: not installed")
        return
    import torch

    from refquant.observers import torch as tobs

    tb = [torch.from_numpy(b) for b in batches]

    def real(name: str, **kw: Any) -> Callable[[], Result]:
        targs = {k: getattr(torch, v) if k in ("dtype", "qscheme") else v
                 for k, v in kw.items()}

        def go() -> Result:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obs = getattr(torch.ao.quantization, name)(**targs)
                for t in tb:
                    obs(t)
                s, z = obs.calculate_qparams()
            return (s.numpy().astype(np.float32), z.numpy().astype(np.int64))
        return go

    cases: list[tuple[str, dict[str, Any], str | None]] = [
        ("MinMaxObserver", {"dtype": "quint8", "qscheme": "per_tensor_affine"},
         "CanonicalMinMaxObserver"),
        ("MovingAverageMinMaxObserver", {"dtype": "quint8", "qscheme": "per_tensor_affine"},
         None),
        ("PerChannelMinMaxObserver", {"dtype": "qint8", "qscheme": "per_channel_symmetric",
                                      "ch_axis": 0}, "CanonicalPerChannelMinMaxObserver"),
        ("MovingAveragePerChannelMinMaxObserver", {"dtype": "qint8", "ch_axis": 0,
                                                   "qscheme": "per_channel_symmetric"}, None),
        ("HistogramObserver", {"dtype": "quint8", "qscheme": "per_tensor_affine"},
         "CanonicalHistogramObserver"),
    ]
    for name, kw, canon in cases:
        t_real, r_real = best_of(real(name, **kw), repeat)
        t_ours, r_ours = best_of(run_ours(partial(getattr(tobs, name), **kw),
                                          batches, qp_result), repeat)
        row("torch.ao", name, t_real, t_ours, 1, "identical", identical(r_real, r_ours))
        if canon is not None:
            t_c, r_c = best_of(run_ours(partial(getattr(tobs, canon), **kw),
                                        batches, qp_result), repeat)
            row("torch.ao", f"{canon} vs {name}", t_real, t_c,
                3 if "Histogram" in name else 1, "agrees", identical(r_real, r_c))


# -- ONNX Runtime ---------------------------------------------------------------------------
def _ort_scale_zp(low: Any, high: Any, symmetric: bool) -> Result:
    from onnx import TensorProto
    from onnxruntime.quantization import quant_utils

    qmin, qmax = quant_utils.get_qmin_qmax_for_qType(TensorProto.UINT8, symmetric=symmetric)
    zp, scale = quant_utils.compute_scale_zp(low, high, qmin, qmax, symmetric=symmetric)
    # a symmetric range gives a 0-d zero point: broadcast to the scale's shape (QParams')
    return (np.asarray(low, np.float32), np.asarray(high, np.float32),
            np.asarray(scale, np.float32),
            np.broadcast_to(np.asarray(zp), np.shape(scale)).astype(np.int64))


def bench_onnxruntime(batches: list[np.ndarray], repeat: int) -> None:
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") \
            is None:
        print("onnxruntime: not installed")
        return
    from refquant.conformance.targets.onnxruntime import FeedReader, identity_calibrator
    from refquant.observers import onnxruntime as R

    tmp = tempfile.TemporaryDirectory()

    def real(name: str, kw: dict[str, Any]) -> Callable[[], Result]:
        def go() -> Result:
            cal = holder["cal"]
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for b in batches:
                    cal.collect_data(FeedReader([{"x": b}]))
                low, high = cal.compute_data()["y"].range_value
            return _ort_scale_zp(low, high, bool(kw.get("symmetric", False)))
        return go

    def fresh(name: str, kw: dict[str, Any]) -> Any:
        return identity_calibrator(name, batches[0].ndim, tmp.name, **kw)

    def ours_finish(obs: Any) -> Result:
        low, high = obs.compute_data()
        qp = obs.compute("uint8")
        return (np.asarray(low, np.float32), np.asarray(high, np.float32),
                np.asarray(qp.scale, np.float32), np.asarray(qp.zero_point, np.int64))

    holder: dict[str, Any] = {}

    def setup(name: str, kw: dict[str, Any]) -> None:
        holder["cal"] = fresh(name, kw)
    cases: list[tuple[str, dict[str, Any], bool]] = [
        ("MinMaxCalibrater", {}, True),
        ("MinMaxCalibrater", {"moving_average": True, "averaging_constant": 0.3}, False),
        ("EntropyCalibrater", {"num_bins": 128, "num_quantized_bins": 128}, True),
        ("PercentileCalibrater", {"num_bins": 2048, "percentile": 99.999, "symmetric": True},
         True),
        ("DistributionCalibrater", {"num_bins": 2048, "scenario": "same"}, True),
    ]
    try:
        for name, kw, canon in cases:
            t_real, r_real = best_of(real(name, kw), repeat,
                                     partial(setup, name, kw))
            label = name + ("(moving_average)" if kw.get("moving_average") else "")
            t_ours, r_ours = best_of(run_ours(partial(R.CALIBRATERS[name], **kw),
                                              batches, ours_finish), repeat)
            row("onnxruntime", label, t_real, t_ours, 1, "identical",
                identical(r_real, r_ours))
            if canon:
                t_c, r_c = best_of(run_ours(
                    partial(R.CALIBRATERS[name], profile="canonical", **kw),
                    batches, ours_finish), repeat)
                row("onnxruntime", f"{name}(canonical)", t_real, t_c,
                    1 if name == "MinMaxCalibrater" else 3, "agrees", identical(r_real, r_c))
    finally:
        holder.clear()
        tmp.cleanup()


# -- NNCF -----------------------------------------------------------------------------------
NNCF_PRESETS = {"MinMaxRangeEstimator": "MINMAX", "MeanMinMaxRangeEstimator": "MEAN_MINMAX",
                "MedianMinMaxRangeEstimator": "MEDIAN_MINMAX",
                "MeanNoOutliersRangeEstimator": "MEAN_NO_OUTLIERS_MINMAX",
                "MeanQuantileRangeEstimator": "MEAN_QUANTILE"}


def _nncf_real(batches: list[np.ndarray], preset_name: str, mode: str) -> Callable[[], Result]:
    """NNCF's reducer + aggregator per bound (as MinMaxQuantization builds them), then
    ``calculate_quantizer_parameters`` and ``calculate_scale_zero_point``: the nncf
    conformance target's :func:`~refquant.conformance.targets.nncf.nncf_estimate`."""
    from refquant.conformance.targets.nncf import nncf_estimate

    def go() -> Result:
        out = nncf_estimate(preset_name, batches, {"mode": mode})
        return (out["min_values"], out["max_values"], np.asarray(out["scale"], np.float32),
                out["zero_point"])
    go()  # warm-up: NNCF's modules are imported inside, not while timed
    return go


def bench_nncf(batches: list[np.ndarray], repeat: int) -> None:
    if importlib.util.find_spec("nncf") is None:
        print("nncf: not installed")
        return
    from refquant.observers import nncf as N

    def finish(obs: Any) -> Result:
        lo, hi = obs.compute_range()
        s, z = qp_result(obs)
        return (lo, hi, s, z)

    for name, preset in NNCF_PRESETS.items():
        mode = "asymmetric" if name == "MeanQuantileRangeEstimator" else "symmetric"
        t_real, r_real = best_of(_nncf_real(batches, preset, mode), repeat)
        t_ours, r_ours = best_of(run_ours(partial(getattr(N, name), mode=mode),
                                          batches, finish), repeat)
        row("nncf", f"{name}({mode})", t_real, t_ours, 1, "identical",
            identical(r_real, r_ours))
    t_real, r_real = best_of(_nncf_real(batches, "MEAN_MINMAX", "symmetric"), repeat)
    t_c, r_c = best_of(run_ours(lambda: N.CanonicalRangeEstimator("MEAN_MINMAX"), batches,
                                finish), repeat)
    row("nncf", "CanonicalRangeEstimator(MEAN_MINMAX)", t_real, t_c, 1, "agrees",
        identical(r_real, r_c))


def bench_modelopt() -> None:
    if importlib.util.find_spec("modelopt") is None:
        print("modelopt: not installed (it cannot be installed next to PaddleSlim; "
              "refquant.observers.modelopt is verified against a recording of "
              "nvidia-modelopt 0.47, tests/data/modelopt_0.47.npz)")
        return
    print("modelopt: installed, but not benchmarked here")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 batches of 16x1024, 1 repeat")
    ap.add_argument("--repeat", type=int, default=None, help="best of N (default 5; quick 1)")
    args = ap.parse_args(argv)
    n, rows, cols = (2, 16, 1024) if args.quick else (8, 64, 4096)
    repeat = args.repeat or (1 if args.quick else 5)
    if repeat < 1:
        ap.error(f"--repeat must be >= 1, got {repeat}")
    batches = make_batches(n, rows, cols)
    print(f"{n} batches of {rows}x{cols} float32 (outliers up to 60), best of {repeat}")
    header()
    bench_torch(batches, repeat)
    bench_onnxruntime(batches, repeat)
    bench_nncf(batches, repeat)
    bench_modelopt()


if __name__ == "__main__":
    main()
