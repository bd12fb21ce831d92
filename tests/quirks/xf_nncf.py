"""Quirk registry: OpenVINO NNCF 3.4's range estimators (shared format: tests/quirks/render.py).

``real`` builds NNCF's own reducers and aggregators (``nncf/common/tensor_statistics/
collectors.py``) the way ``MinMaxQuantization._get_statistic_collector`` does and feeds them
NumPy tensors; ``bugforbug`` is :class:`refquant.observers.nncf.RangeEstimator`,
``canonical`` :class:`refquant.observers.nncf.CanonicalRangeEstimator`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.observers import nncf as rn

FRAMEWORK = "OpenVINO NNCF 3.4 (NumPy tensors)"
REQUIRES = "nncf"


def _real_high(values: list[float], preset: str, q: float = 1e-4) -> Any:
    """The MAX branch of ``preset`` in NNCF, one batch ``[[v]]`` per value."""
    from nncf.common.tensor_statistics import collectors as c
    from nncf.tensor import Tensor

    _, _, stat, agg = rn.PRESETS[preset]
    reducer = {"max": c.MaxReducer}[stat]()
    aggregator = {"mean": c.MeanAggregator, "median": c.MedianAggregator,
                  "max": c.MaxAggregator,
                  "mean_no_outliers": lambda: c.MeanNoOutliersAggregator(quantile=q)}[agg]()
    for v in values:
        aggregator.register_reduced_input(reducer([Tensor(np.float32([[v]]))])[0])
    return np.asarray(aggregator.aggregate().data).reshape(())


def _ours_high(values: list[float], preset: str, cls: type = rn.RangeEstimator) -> Any:
    est = cls(preset, use_abs_max=False)
    try:
        for v in values:
            est.observe(np.float32([[v]]))
        return np.asarray(est.compute_range()[1]).reshape(())
    except ValueError:
        return "raises ValueError"


ORDER_A = [1e8, 1.0, -1e8]
ORDER_B = [1e8, -1e8, 1.0]

QUIRKS = [
    {
        "id": "N1",
        "title": "MEAN_MINMAX (the default for per-tensor activations) averages per-batch "
                 "extremes in float32: the range depends on batch order",
        "input": "per-batch maxima [1e8, 1, -1e8] and [1e8, -1e8, 1] (batches [[v]]): the "
                 "MAX bound for each order",
        "documented": "the average of the per-sample maxima, a property of the set of batches",
        "real": lambda: (_real_high(ORDER_A, "MEAN_MINMAX"), _real_high(ORDER_B, "MEAN_MINMAX")),
        "bugforbug": lambda: (_ours_high(ORDER_A, "MEAN_MINMAX"),
                              _ours_high(ORDER_B, "MEAN_MINMAX")),
        "canonical": lambda: (_ours_high(ORDER_A, "MEAN_MINMAX", rn.CanonicalRangeEstimator),
                              _ours_high(ORDER_B, "MEAN_MINMAX", rn.CanonicalRangeEstimator)),
    },
    {
        "id": "N2",
        "title": "MEAN_NO_OUTLIERS drops the smallest and largest sample even when "
                 "quantile_outlier_prob = 1e-4 says nothing is an outlier among 3",
        "input": "per-batch maxima [1, 2, 10], quantile_outlier_prob = 1e-4",
        "documented": "the mean over samples within [min quantile, max quantile]: with 3 "
                      "samples and q = 1e-4 no sample is an outlier, the mean is 13/3",
        "real": lambda: _real_high([1.0, 2.0, 10.0], "MEAN_NO_OUTLIERS_MINMAX"),
        "bugforbug": lambda: _ours_high([1.0, 2.0, 10.0], "MEAN_NO_OUTLIERS_MINMAX"),
        "canonical": lambda: _ours_high([1.0, 2.0, 10.0], "MEAN_NO_OUTLIERS_MINMAX",
                                        rn.CanonicalRangeEstimator),
    },
    {
        "id": "N3",
        "title": "MEAN_NO_OUTLIERS over two distinct samples masks both and returns 0.0",
        "input": "per-batch maxima [1, 3]",
        "documented": "the mean of the samples that are not outliers: 2.0",
        "real": lambda: _real_high([1.0, 3.0], "MEAN_NO_OUTLIERS_MINMAX"),
        "bugforbug": lambda: _ours_high([1.0, 3.0], "MEAN_NO_OUTLIERS_MINMAX"),
        "canonical": lambda: _ours_high([1.0, 3.0], "MEAN_NO_OUTLIERS_MINMAX",
                                        rn.CanonicalRangeEstimator),
    },
    {
        "id": "N4",
        "title": "MEDIAN_MINMAX of an even number of samples averages the middle two in "
                 "float32",
        "input": "per-batch maxima [16777216, 16777218]",
        "documented": "the median, (16777216 + 16777218) / 2 = 16777217",
        "real": lambda: _real_high([16777216.0, 16777218.0], "MEDIAN_MINMAX"),
        "bugforbug": lambda: _ours_high([16777216.0, 16777218.0], "MEDIAN_MINMAX"),
        "canonical": lambda: _ours_high([16777216.0, 16777218.0], "MEDIAN_MINMAX",
                                        rn.CanonicalRangeEstimator),
    },
    {
        "id": "N5",
        "title": "A NaN in a batch becomes the range (np.max propagates it); no error",
        "input": "MINMAX, batches [[1.0]] and [[nan]]: the MAX bound",
        "documented": "a range for quantization must be finite; canonical refuses the batch",
        "real": lambda: _real_high([1.0, float("nan")], "MINMAX"),
        "bugforbug": lambda: _ours_high([1.0, float("nan")], "MINMAX"),
        "canonical": lambda: _ours_high([1.0, float("nan")], "MINMAX",
                                        rn.CanonicalRangeEstimator),
    },
]
