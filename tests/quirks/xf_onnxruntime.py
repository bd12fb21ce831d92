"""Quirks of ONNX Runtime's calibrators (issue 15, item 5), in the shared registry format
(/tests/quirks/render.py, ``load_xf``).

``real`` runs the installed onnxruntime's calibrator (``onnxruntime/quantization/
calibrate.py``) on a one-node ONNX model (``Identity``; the calibrated tensor is its output)
through :func:`ort_calibrate`; ``bugforbug`` is refquant's ``profile="onnxruntime"`` and
``canonical`` its ``profile="canonical"`` on the same input. Each ``calls`` below is a list of
``collect_data`` calls, each a list of batches.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from typing import Any

import numpy as np

FRAMEWORK = "onnxruntime 1.32.0 (onnxruntime.quantization.calibrate, CPU)"
REQUIRES = "onnxruntime"


def ort_calibrator(kind: str, calls: list[list[Any]], **kwargs: Any) -> Any:
    """ORT's calibrator ``kind`` after ``collect_data`` once per entry of ``calls``."""
    from refquant.conformance.targets.onnxruntime import FeedReader, identity_calibrator

    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = identity_calibrator(kind, np.asarray(calls[0][0]).ndim, d, **kwargs)
        for batches in calls:
            cal.collect_data(FeedReader([{"x": np.asarray(b, np.float32)} for b in batches]))
        return cal


def ort_calibrate(kind: str, calls: list[list[Any]], **kwargs: Any) -> Any:
    """ORT's ``compute_data()`` range for the model's output: ``(low, high)`` float32 arrays
    (ORT's shapes: ``(1,)`` for MinMax, ``()`` otherwise); ORT's exception is raised."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        td = ort_calibrator(kind, calls, **kwargs).compute_data()["y"]
    lo, hi = td.range_value
    return np.asarray(lo, np.float32), np.asarray(hi, np.float32)


def _outcome(fn: Any) -> Any:
    """``fn()``, or ``"raises <Name>"`` with the built-in exception type it is (refquant's
    ``OrtAssertionError`` reads as ORT's ``AssertionError``)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - an exception is a comparable outcome
        name = next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins")
        return f"raises {name}"


def real(kind: str, calls: list[list[Any]], **kwargs: Any) -> Any:
    return _outcome(lambda: ort_calibrate(kind, calls, **kwargs))


def ours(kind: str, calls: list[list[Any]], profile: str, **kwargs: Any) -> Any:
    from refquant.observers import onnxruntime as ortobs

    def run() -> Any:
        cal = ortobs.CALIBRATERS[kind](profile=profile, **kwargs)
        for batches in calls:
            cal.collect(batches)
        lo, hi = cal.compute_data()
        return np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    return _outcome(run)


def _both_orders(fn: Any, a: Any, b: Any) -> Any:
    return (fn([[a], [b]]), fn([[b], [a]]))


def _ort_bins(calls: list[list[Any]]) -> Any:
    cal = ort_calibrator("EntropyCalibrater", calls)
    return np.int64(cal.collector.histogram_dict["y"][0].size)


def _our_bins(calls: list[list[Any]], profile: str) -> Any:
    from refquant.observers import onnxruntime as ortobs
    cal = ortobs.EntropyCalibrater(profile=profile)
    for batches in calls:
        cal.collect(batches)
    return np.int64(cal.state.hist.size if profile == "onnxruntime" else cal.exact.bins)


_F = np.float32
_MA = [[_F([0, 1]), _F([0, 3]), _F([0, 5])]]
_MIO = [[_F([1, 2]), _F([5, 6]), _F([7, 8])]]
_RELU = [[np.arange(0, 9, dtype=_F)]]
_EIGHT = [[np.arange(1, 9, dtype=_F)]]
_A = np.linspace(-1, 1, 33, dtype=_F)
_B = _F([-3.0, 0.3, 0.7, 2.9])
_GROW = [[_F([-0.001, 0.001])], [_F([-1.0, 1.0])]]
_DIST = [[_F([-1.0, 1.0])], [_F([2.5])]]
_SHAPES = [[_F([1.0, 2.0]), _F([3.0, 4.0, 5.0])]]
_NAN = [[_F([1.0, np.nan, 3.0])]]
_EMPTY = [[np.zeros(0, _F)]]
_SPARSE = [[_F([1.0, 1.0])]]

QUIRKS: list[dict[str, Any]] = [
    {
        "id": "O1",
        "title": "MinMaxCalibrater(moving_average=True) averages the batches of one "
                 "collect_data call with a plain mean; averaging_constant only weighs "
                 "successive calls",
        "input": "one collect_data call with batches [0, 1], [0, 3], [0, 5]; "
                 "averaging_constant=0.01",
        "documented": "docstring: 'compute the moving average of the minimum and maximum "
                      "values' with the smoothing factor averaging_constant; canonical "
                      "(no moving average) gives the range (0, 5)",
        "real": lambda: real("MinMaxCalibrater", _MA, moving_average=True,
                             averaging_constant=0.01),
        "bugforbug": lambda: ours("MinMaxCalibrater", _MA, "onnxruntime", moving_average=True,
                                  averaging_constant=0.01),
        "canonical": lambda: ours("MinMaxCalibrater", _MA, "canonical"),
    },
    {
        "id": "O2",
        "title": "MinMaxCalibrater(max_intermediate_outputs=k) discards every k pending "
                 "batches without folding them into the range",
        "input": "one collect_data call with batches [1, 2], [5, 6], [7, 8]; "
                 "max_intermediate_outputs=2",
        "documented": "docstring: 'maximum number of intermediate outputs before an "
                      "intermediate range is computed'; the range of all data is (1, 8)",
        "real": lambda: real("MinMaxCalibrater", _MIO, max_intermediate_outputs=2),
        "bugforbug": lambda: ours("MinMaxCalibrater", _MIO, "onnxruntime",
                                  max_intermediate_outputs=2),
        "canonical": lambda: ours("MinMaxCalibrater", _MIO, "canonical"),
    },
    {
        "id": "O3",
        "title": "an empty batch gives MinMaxCalibrater the range (+inf, -inf)",
        "input": "one collect_data call with one batch of shape (0,)",
        "documented": "an empty calibration set has no range (canonical: ValueError)",
        "real": lambda: real("MinMaxCalibrater", _EMPTY),
        "bugforbug": lambda: ours("MinMaxCalibrater", _EMPTY, "onnxruntime"),
        "canonical": lambda: ours("MinMaxCalibrater", _EMPTY, "canonical"),
    },
    {
        "id": "O4",
        "title": "PercentileCalibrater(symmetric=True) returns an asymmetric range: low is "
                 "raised to the data's minimum",
        "input": "x = [0, 1, ..., 8] (post-ReLU), num_bins=2048, percentile=99.999",
        "documented": "'symmetric: make range of tensor symmetric (central point is 0)'; "
                      "canonical gives (-t, t)",
        "real": lambda: real("PercentileCalibrater", _RELU, num_bins=2048, symmetric=True),
        "bugforbug": lambda: ours("PercentileCalibrater", _RELU, "onnxruntime"),
        "canonical": lambda: ours("PercentileCalibrater", _RELU, "canonical"),
    },
    {
        "id": "O5",
        "title": "PercentileCalibrater takes the left edge of the bin where the cdf reaches "
                 "the percentile: the 75th percentile of 1..8 keeps only half the data",
        "input": "x = [1, 2, ..., 8], num_bins=4, percentile=75, symmetric=True",
        "documented": "a p-th percentile threshold has p% of the values below it; canonical "
                      "takes the bin's right edge",
        "real": lambda: real("PercentileCalibrater", _EIGHT, num_bins=4, percentile=75.0,
                             symmetric=True),
        "bugforbug": lambda: ours("PercentileCalibrater", _EIGHT, "onnxruntime", num_bins=4,
                                  percentile=75.0),
        "canonical": lambda: ours("PercentileCalibrater", _EIGHT, "canonical", num_bins=4,
                                  percentile=75.0),
    },
    {
        "id": "O6",
        "title": "the signed histogram keeps the first call's bin width, so its bin count "
                 "grows with the range: 128 bins become 128000",
        "input": "EntropyCalibrater(); calls with x = [-0.001, 0.001], then [-1, 1]",
        "documented": "'num_bins: number of bins to create a new histogram'; canonical keeps "
                      "num_bins bins (outcome: the number of bins)",
        "real": lambda: _outcome(lambda: _ort_bins(_GROW)),
        "bugforbug": lambda: _outcome(lambda: _our_bins(_GROW, "onnxruntime")),
        "canonical": lambda: _outcome(lambda: _our_bins(_GROW, "canonical")),
    },
    {
        "id": "O7",
        "title": "the histogram calibrators depend on batch order (the merge keeps the first "
                 "call's bins)",
        "input": "EntropyCalibrater(num_bins=8, num_quantized_bins=2); calls A = linspace(-1, "
                 "1, 33), B = [-3, 0.3, 0.7, 2.9] in the orders (A, B) and (B, A)",
        "documented": "a calibration table should not depend on the order of the calibration "
                      "batches; canonical gives one range for both orders",
        "real": lambda: _both_orders(lambda c: real(
            "EntropyCalibrater", c, num_bins=8, num_quantized_bins=2), _A, _B),
        "bugforbug": lambda: _both_orders(lambda c: ours(
            "EntropyCalibrater", c, "onnxruntime", num_bins=8, num_quantized_bins=2), _A, _B),
        "canonical": lambda: _both_orders(lambda c: ours(
            "EntropyCalibrater", c, "canonical", num_bins=8, num_quantized_bins=2), _A, _B),
    },
    {
        "id": "O8",
        "title": "DistributionCalibrater's range is the grown histogram's, wider than the data",
        "input": "DistributionCalibrater(num_bins=512); calls x = [-1, 1], then [2.5]",
        "documented": "the range of the calibration data is (-2.5, 2.5) (canonical)",
        "real": lambda: real("DistributionCalibrater", _DIST, num_bins=512),
        "bugforbug": lambda: ours("DistributionCalibrater", _DIST, "onnxruntime",
                                  num_bins=512),
        "canonical": lambda: ours("DistributionCalibrater", _DIST, "canonical", num_bins=512),
    },
    {
        "id": "O9",
        "title": "the histogram calibrators stack the batches of one collect_data call, which "
                 "must therefore share one shape",
        "input": "EntropyCalibrater(); one call with batches of shapes (2,) and (3,)",
        "documented": "a CalibrationDataReader yields any number of batches; canonical "
                      "takes batches of any shape",
        "real": lambda: real("EntropyCalibrater", _SHAPES),
        "bugforbug": lambda: ours("EntropyCalibrater", _SHAPES, "onnxruntime"),
        "canonical": lambda: ours("EntropyCalibrater", _SHAPES, "canonical"),
    },
    {
        "id": "O10",
        "title": "EntropyCalibrater drops NaN silently (np.histogram with a range)",
        "input": "x = [1, nan, 3]",
        "documented": "canonical refuses NaN (ValueError) unless ignore_nonfinite=True",
        "real": lambda: real("EntropyCalibrater", _NAN),
        "bugforbug": lambda: ours("EntropyCalibrater", _NAN, "onnxruntime"),
        "canonical": lambda: ours("EntropyCalibrater", _NAN, "canonical"),
    },
    {
        "id": "O11",
        "title": "EntropyCalibrater fails an assert (AssertionError) when a candidate window "
                 "holds over 10000 empty bins per filled one",
        "input": "EntropyCalibrater(num_bins=20000, num_quantized_bins=20000); x = [1, 1]",
        "documented": "smoothing is defined for any non-empty histogram; canonical treats "
                      "such a window as infinitely divergent and answers (1, 1)",
        "real": lambda: real("EntropyCalibrater", _SPARSE, num_bins=20000,
                             num_quantized_bins=20000),
        "bugforbug": lambda: ours("EntropyCalibrater", _SPARSE, "onnxruntime",
                                  num_bins=20000, num_quantized_bins=20000),
        "canonical": lambda: ours("EntropyCalibrater", _SPARSE, "canonical", num_bins=20000,
                                  num_quantized_bins=20000),
    },
]
