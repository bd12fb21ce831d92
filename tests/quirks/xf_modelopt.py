"""Quirk registry: NVIDIA ModelOpt 0.47's calibrators (shared format: tests/quirks/render.py).

ModelOpt cannot be installed next to PaddleSlim (it needs setuptools>=80), so ``real`` reads
the outcomes that tests/data/record_modelopt.py recorded from nvidia-modelopt 0.47.0 (torch
2.13.0, CPU) in a scratch environment, on the inputs stored in the same file
(tests/data/modelopt_0.47.npz). ``bugforbug`` runs refquant.observers.modelopt's classes on
those inputs, ``canonical`` their canonical twins.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from refquant.observers import modelopt as mo

FRAMEWORK = "NVIDIA ModelOpt 0.47.0 (torch 2.13.0, CPU; recorded)"
REQUIRES = "numpy"  # the real outcomes come from the recording, see the module docstring
REAL_NOTE = ("the test suite compares it with a recording of the real package made by "
             "`tests/data/record_modelopt.py`, as ModelOpt cannot be installed next to "
             "PaddleSlim")
DATA = Path(__file__).resolve().parents[1] / "data" / "modelopt_0.47.npz"


@lru_cache(maxsize=1)
def _data() -> tuple[Any, dict[str, Any]]:
    z = np.load(DATA)
    return z, json.loads(str(z["quirks"]))


def _x(name: str) -> np.ndarray:
    return np.asarray(_data()[0][f"quirk/{name}"])


def _real(qid: str) -> Any:
    got = _data()[1][qid]
    if "raises" in got:
        return f"raises {got['raises']}"
    return None if got["value"] is None else np.float32(got["value"])


def _hist(batches: list[str], method: str, cls: type = mo.HistogramCalibrator, **kw: Any) -> Any:
    ctor = {k: kw.pop(k) for k in ("num_bits", "num_bins") if k in kw}
    cal = cls(**ctor)
    for b in batches:
        cal.observe(_x(b))
    try:
        out = cal.compute_amax(method, **kw)
    except (TypeError, ValueError) as exc:
        return f"raises {type(exc).__name__}"
    return np.float32(out) if cls is mo.HistogramCalibrator else np.float64(out)


def _max(cls: type) -> Any:
    try:
        cls().observe(np.float32([1.0, np.nan]))
    except (AssertionError, ValueError) as exc:
        return f"raises {type(exc).__name__}"
    return None


QUIRKS = [
    {
        "id": "M1",
        "title": "Histogram 'mse' passes num_bits where FakeTensorQuantFunction expects bias: "
                 "every centre quantizes to amax + 8, so the search picks a tiny amax",
        "input": "HistogramCalibrator() on 10000 N(0,1) values, compute_amax('mse')",
        "documented": "the amax minimising the histogram's 8-bit quantization MSE (about 3.6 "
                      "here)",
        "real": lambda: _real("M1"),
        "bugforbug": lambda: _hist(["normal"], "mse"),
        "canonical": lambda: _hist(["normal"], "mse", mo.CanonicalHistogramCalibrator),
    },
    {
        "id": "M2",
        "title": "Histogram 'mse' with num_bits=(4, 3) raises TypeError (scaled_e4m3 is "
                 "called without its M argument)",
        "input": "HistogramCalibrator(num_bits=(4, 3)) on 10000 N(0,1) values, "
                 "compute_amax('mse')",
        "documented": "the docstring offers FP8 E4M3 as num_bits (4, 3) for 'mse'",
        "real": lambda: _real("M2"),
        "bugforbug": lambda: _hist(["normal"], "mse", num_bits=(4, 3)),
        "canonical": lambda: _hist(["normal"], "mse", mo.CanonicalHistogramCalibrator,
                                   num_bits=(4, 3)),
    },
    {
        "id": "M3",
        "title": "'percentile' returns the left edge of the bin where the CDF reaches p, "
                 "clipping that bin's values",
        "input": "x = [0.5, 1.5, 2.5, 3.5], num_bins=4, percentile=50",
        "documented": "an amax that keeps p percent of the values (here 0.5 and 1.5: amax "
                      ">= 1.5)",
        "real": lambda: _real("M3"),
        "bugforbug": lambda: _hist(["mid"], "percentile", num_bins=4, percentile=50.0),
        "canonical": lambda: _hist(["mid"], "percentile", mo.CanonicalHistogramCalibrator,
                                   num_bins=4, percentile=50.0),
    },
    {
        "id": "M4",
        "title": "The first batch fixes the bin width, so the histogram and the amax depend "
                 "on batch order",
        "input": "3000 U(-1,1) values and 3000 U(-9,9) values, in both orders; "
                 "percentile=99",
        "documented": "a percentile of the calibration data, whatever the batch order",
        "real": lambda: (_real("M4a"), _real("M4b")),
        "bugforbug": lambda: (_hist(["small", "wide"], "percentile", percentile=99.0),
                              _hist(["wide", "small"], "percentile", percentile=99.0)),
        "canonical": lambda: (
            _hist(["small", "wide"], "percentile", mo.CanonicalHistogramCalibrator,
                  percentile=99.0),
            _hist(["wide", "small"], "percentile", mo.CanonicalHistogramCalibrator,
                  percentile=99.0)),
    },
    {
        "id": "M5",
        "title": "MaxCalibrator refuses NaN with a bare assert (AssertionError, skipped "
                 "under python -O)",
        "input": "MaxCalibrator().collect([1.0, nan])",
        "documented": "a clear error naming the argument (canonical: ValueError)",
        "real": lambda: _real("M5"),
        "bugforbug": lambda: _max(mo.MaxCalibrator),
        "canonical": lambda: _max(mo.CanonicalMaxCalibrator),
    },
]
