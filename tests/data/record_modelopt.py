"""Record nvidia-modelopt 0.47's calibrators on CPU into tests/data/modelopt_0.47.npz.

ModelOpt needs setuptools>=80 and cannot be installed next to PaddleSlim, so it runs in a
scratch environment:

    python3 -m venv /tmp/movenv
    /tmp/movenv/bin/pip install "nvidia-modelopt==0.47.*" torch==2.13.0 numpy==2.4.6 \\
        requests huggingface_hub
    /tmp/movenv/bin/python tests/data/record_modelopt.py tests/data/modelopt_0.47.npz

The file holds every input and every real output; tests/test_observers_modelopt.py replays
the inputs through refquant.observers.modelopt and compares bit patterns. ``manifest`` (a
JSON string) lists the cases: kind, parameters, and the keys of their arrays.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

F32 = np.float32


def batches_for(kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Batch sequences that stress the calibrators (all float32)."""
    if kind == "grow":  # the range grows: the histogram appends bins
        return [rng.standard_normal(600).astype(F32) * s for s in (0.5, 1.0, 3.0, 2.0, 7.5)]
    if kind == "shrink":
        return [rng.standard_normal(600).astype(F32) * s for s in (5.0, 1.0, 0.25)]
    if kind == "relu":  # post-ReLU: many exact zeros, never negative
        return [np.maximum(rng.standard_normal(800), 0).astype(F32) * s for s in (1.0, 2.5)]
    if kind == "outlier":
        b = rng.standard_normal(1000).astype(F32)
        b[17] = 80.0
        return [b, rng.standard_normal(1000).astype(F32)]
    if kind == "tiny":
        return [rng.standard_normal(500).astype(F32) * F32(1e-30), rng.standard_normal(
            500).astype(F32) * F32(3e-30)]
    if kind == "huge":
        return [rng.standard_normal(500).astype(F32) * F32(1e30),
                rng.standard_normal(500).astype(F32) * F32(4e30)]
    if kind == "const":
        return [np.full(64, 0.75, F32), np.full(64, 0.75, F32)]
    if kind == "single":
        return [np.float32([-0.3]), np.float32([0.9]), np.float32([2.2])]
    if kind == "uniform":
        return [rng.uniform(-1, 1, 2000).astype(F32) for _ in range(3)]
    raise ValueError(kind)


def main(path: str) -> None:
    from modelopt.torch.quantization.calib import HistogramCalibrator, MaxCalibrator
    from modelopt.torch.quantization.calib.mse import MseCalibrator
    from modelopt.torch.quantization.tensor_quant import (
        FakeTensorQuantFunction,
        ScaledE4M3Function,
    )

    rng = np.random.default_rng(20261204)
    arrays: dict[str, np.ndarray] = {}
    manifest: list[dict] = []

    def put(key: str, value: np.ndarray) -> str:
        arrays[key] = np.asarray(value)
        return key

    def outcome(fn):
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - an exception is a recorded outcome
            return {"raises": type(exc).__name__}
        return {"value": out}

    # -- histogram calibrator -------------------------------------------------------------
    hist_cases = [("grow", 2048, False, 8, False), ("grow", 512, False, 8, False),
                  ("shrink", 512, False, 8, False), ("relu", 512, False, 8, False),
                  ("relu", 512, True, 8, False), ("outlier", 2048, False, 8, False),
                  ("tiny", 512, False, 8, False), ("huge", 512, False, 8, False),
                  ("const", 300, False, 8, False), ("single", 256, False, 8, False),
                  ("uniform", 512, False, 4, False), ("uniform", 512, False, 8, True),
                  ("grow", 1000, False, (4, 3), False)]
    for n, (kind, bins, skip, bits, unsigned) in enumerate(hist_cases):
        name = f"hist{n}"
        batches = batches_for(kind, rng)
        cal = HistogramCalibrator(num_bits=bits, unsigned=unsigned, num_bins=bins,
                                  skip_zeros=skip)
        keys = [put(f"{name}/x{j}", b) for j, b in enumerate(batches)]
        for b in batches:
            cal.collect(torch.from_numpy(b.copy()))
        case = {"kind": "hist", "name": name, "data": kind, "num_bins": bins, "skip_zeros": skip,
                "num_bits": bits, "unsigned": unsigned, "batches": keys,
                "hist": put(f"{name}/hist", cal._calib_hist.numpy()),
                "edges": put(f"{name}/edges", cal._calib_bin_edges.numpy()), "results": []}
        methods = [("percentile", {"percentile": 99.99}), ("percentile", {"percentile": 50.0}),
                   ("percentile", {"percentile": 100.0}), ("mse", {}),
                   ("mse", {"stride": 7, "start_bin": 30}), ("entropy", {}),
                   ("entropy", {"stride": 5, "start_bin": 64})]
        for k, (method, kw) in enumerate(methods):
            got = outcome(lambda method=method, kw=kw, cal=cal: cal.compute_amax(method, **kw))
            entry = {"method": method, "kwargs": kw}
            if "raises" in got:
                entry["raises"] = got["raises"]
            else:
                entry["amax"] = put(f"{name}/amax{k}", np.asarray(got["value"], F32))
            case["results"].append(entry)
        manifest.append(case)

    # -- max calibrator -------------------------------------------------------------------
    max_cases = [("grow", None, (600,)), ("uniform", 0, (20, 100)), ("uniform", 1, (20, 100)),
                 ("uniform", (0,), (40, 50)), ("uniform", -1, (40, 50)), ("single", 0, (1,)),
                 ("relu", 0, (8, 100))]
    for n, (kind, axis, shape) in enumerate(max_cases):
        name = f"max{n}"
        batches = [b.reshape(shape) if b.size == int(np.prod(shape)) else b
                   for b in batches_for(kind, rng)]
        batches = [b.reshape(shape) for b in batches if b.size == int(np.prod(shape))]
        cal = MaxCalibrator(num_bits=8, axis=axis)
        for b in batches:
            cal.collect(torch.from_numpy(b.copy()))
        manifest.append({"kind": "max", "name": name, "axis": axis, "batches": [
            put(f"{name}/x{j}", b) for j, b in enumerate(batches)],
            "amax": put(f"{name}/amax", cal.compute_amax().numpy())})
    for n, bad in enumerate((np.float32([1.0, np.nan]), np.float32([np.inf, 1.0]))):
        cal = MaxCalibrator()
        got = outcome(lambda bad=bad, cal=cal: cal.collect(torch.from_numpy(bad.copy())))
        manifest.append({"kind": "max_raises", "name": f"maxbad{n}", "batches": [
            put(f"maxbad{n}/x0", bad)], "raises": got.get("raises")})

    # -- mse multiplier sweep -------------------------------------------------------------
    def int_quant(narrow):
        return lambda x, amax: FakeTensorQuantFunction.apply(x, amax, None, 8, False, narrow)

    def fp8_quant(x, amax):
        return ScaledE4M3Function.apply(x, amax, None, 4, 3)

    mse_cases = [("uniform", None, (2000,), "int8", {}), ("outlier", None, (1000,), "int8narrow",
                                                          {}),
                 ("uniform", 0, (20, 100), "int8", {}), ("uniform", 1, (20, 100), "int8",
                                                         {"step_size": 0.05}),
                 ("grow", None, (600,), "fp8", {}), ("uniform", 0, (20, 100), "fp8",
                                                     {"start_multiplier": 0.5})]
    for n, (kind, axis, shape, quant, kw) in enumerate(mse_cases):
        name = f"mse{n}"
        batches = [b.reshape(shape) for b in batches_for(kind, rng) if b.size == np.prod(shape)]
        red = None if axis is None else tuple(i for i in range(len(shape)) if i != axis)
        x0 = torch.from_numpy(batches[0].copy())
        if red is None:
            amax = torch.maximum(x0.max().abs(), x0.min().abs())
        else:
            amax = torch.maximum(torch.amax(x0, dim=red, keepdim=True).abs(),
                                 torch.amin(x0, dim=red, keepdim=True).abs())
        fn = {"int8": int_quant(False), "int8narrow": int_quant(True), "fp8": fp8_quant}[quant]
        cal = MseCalibrator(amax=amax.clone(), axis=axis, quant_func=fn, **kw)
        for b in batches:
            cal.collect(torch.from_numpy(b.copy()))
        manifest.append({"kind": "mse", "name": name, "axis": axis, "quant": quant, "kwargs": kw,
                         "batches": [put(f"{name}/x{j}", b) for j, b in enumerate(batches)],
                         "amax0": put(f"{name}/amax0", amax.numpy()),
                         "amax": put(f"{name}/amax", cal.compute_amax().numpy())})

    # -- quantizers -----------------------------------------------------------------------
    x = np.concatenate([rng.standard_normal(400).astype(F32) * 3,
                        np.float32([0.0, -0.0, 1e-40, 448.0, -1000.0, 0.5, 1.5, 2.5])])
    for n, (amax, bits, unsigned, narrow) in enumerate([
            (2.5, 8, False, False), (2.5, 8, False, True), (1.0, 4, False, False),
            (7.0, 8, True, False), (0.0, 8, False, False), (1e-8, 8, False, True)]):
        xi = np.abs(x) if unsigned else x
        out = FakeTensorQuantFunction.apply(torch.from_numpy(xi.copy()), torch.tensor(
            amax, dtype=torch.float32), None, bits, unsigned, narrow)
        manifest.append({"kind": "int_quant", "name": f"q{n}", "amax": amax, "num_bits": bits,
                         "unsigned": unsigned, "narrow": narrow, "x": put(f"q{n}/x", xi),
                         "out": put(f"q{n}/out", out.numpy())})
    for n, amax in enumerate([2.5, 1.0, 0.0, 1e-9, 3e4, 0.1]):
        out = ScaledE4M3Function.apply(torch.from_numpy(x.copy()), torch.tensor(
            amax, dtype=torch.float32), None, 4, 3)
        manifest.append({"kind": "fp8_quant", "name": f"f{n}", "amax": amax,
                         "x": put(f"f{n}/x", x), "out": put(f"f{n}/out", out.numpy())})

    # -- the inputs of tests/quirks/xf_modelopt.py (M1-M5) and the real outcomes ----------
    quirks: dict[str, dict] = {}

    def hist_amax(batches, method, **kw):
        bits = kw.pop("num_bits", 8)
        cal = HistogramCalibrator(num_bits=bits, num_bins=kw.pop("num_bins", 2048))
        for b in batches:
            cal.collect(torch.from_numpy(b.copy()))
        got = outcome(lambda: cal.compute_amax(method, **kw))
        return got if "raises" in got else {"value": float(got["value"])}

    normal = rng.standard_normal(10000).astype(F32)
    put("quirk/normal", normal)
    quirks["M1"] = hist_amax([normal], "mse")
    quirks["M2"] = hist_amax([normal], "mse", num_bits=(4, 3))
    mid = np.float32([0.5, 1.5, 2.5, 3.5])
    put("quirk/mid", mid)
    quirks["M3"] = hist_amax([mid], "percentile", num_bins=4, percentile=50.0)
    small = rng.uniform(-1, 1, 3000).astype(F32)
    wide = rng.uniform(-9, 9, 3000).astype(F32)
    put("quirk/small", small)
    put("quirk/wide", wide)
    quirks["M4a"] = hist_amax([small, wide], "percentile", percentile=99.0)
    quirks["M4b"] = hist_amax([wide, small], "percentile", percentile=99.0)
    cal = MaxCalibrator()
    quirks["M5"] = outcome(lambda: cal.collect(torch.tensor([1.0, float("nan")])))
    arrays["quirks"] = np.array(json.dumps(quirks))

    import modelopt

    arrays["manifest"] = np.array(json.dumps({"modelopt": modelopt.__version__,
                                              "torch": torch.__version__,
                                              "cases": manifest}))
    np.savez_compressed(path, **arrays)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/modelopt_0.47.npz")
