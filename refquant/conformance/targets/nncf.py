"""The ``nncf`` target: OpenVINO NNCF's range estimators for ``observer.nncf.<Class>``
(nncf imported lazily).

Each case builds NNCF's own reducer and aggregator for the class's preset as
``MinMaxQuantization._get_statistic_collector`` does (``nncf/quantization/algorithms/min_max/
algorithm.py``: ``REDUCERS_MAP`` / ``AGGREGATORS_MAP`` from
``nncf/common/tensor_statistics/collectors.py``, the preset from
``nncf/quantization/range_estimator.py``), feeds the batches as NumPy-backed ``Tensor``s,
then runs ``calculate_quantizer_parameters`` and ``calculate_scale_zero_point``
(``nncf/quantization/fake_quantize.py``) with NNCF's level ranges
(``nncf/common/quantization/quantizers.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..format import Case
from ._base import Target, Unsupported

#: refquant's class -> NNCF's RangeEstimatorParametersSet member
_PRESETS = {
    "MinMaxRangeEstimator": "MINMAX",
    "MeanMinMaxRangeEstimator": "MEAN_MINMAX",
    "MedianMinMaxRangeEstimator": "MEDIAN_MINMAX",
    "MeanNoOutliersRangeEstimator": "MEAN_NO_OUTLIERS_MINMAX",
    "MeanQuantileRangeEstimator": "MEAN_QUANTILE",
}
_KNOWN = {"mode", "num_bits", "narrow_range", "signedness_to_force", "axes",
          "quantile_outlier_prob"}


class NncfTarget(Target):
    name = "nncf"
    requires = ("nncf",)

    def _load(self) -> None:
        from ..cases.xf_observer_cases import PARAMS

        for name in PARAMS.get("nncf", {}):
            if name in _PRESETS:
                self.ops[f"observer.nncf.{name}"] = self._estimate

    def _estimate(self, case: Case) -> dict:
        """:func:`nncf_estimate` of the case's preset on its batches (copies)."""
        p: dict[str, Any] = dict(case.params)
        if set(p) - _KNOWN:
            raise Unsupported(f"nncf target: params {sorted(set(p) - _KNOWN)} not mapped")
        batches = [np.array(case.inputs[f"batch{i}"]) for i in range(len(case.inputs))]
        return nncf_estimate(_PRESETS[case.op.rsplit(".", 1)[1]], batches, p)


def nncf_estimate(preset_name: str, batches: list[np.ndarray], p: dict[str, Any]) -> dict:
    """NNCF's range estimator ``RangeEstimatorParametersSet.<preset_name>`` run as
    MinMaxQuantization builds it: one reducer and one aggregator per bound (axis 0 of the
    samples), then NNCF's FakeQuantize parameters. ``p`` holds ``mode``, ``num_bits``,
    ``narrow_range``, ``quantile_outlier_prob``, ``axes`` (one reduction axis) and
    ``signedness_to_force`` (NNCF's defaults where absent). Symmetric quantizers reduce
    ``abs_max`` for the ``max`` statistic (NNCF's ``use_abs_max``). A per-channel scale and
    zero point (one unreduced axis) are flattened to ``(C,)``, the shape refquant's
    ``QParams`` holds. Returns ``min_values``, ``max_values``, ``scale``, ``zero_point``."""
    from nncf.common.quantization.quantizers import (
        calculate_asymmetric_level_ranges,
        calculate_symmetric_level_ranges,
    )
    from nncf.common.quantization.structs import (
        QuantizationScheme,
        QuantizerConfig,
        QuantizerGroup,
    )
    from nncf.common.tensor_statistics.collectors import AGGREGATORS_MAP, REDUCERS_MAP
    from nncf.common.tensor_statistics.statistics import MinMaxTensorStatistic
    from nncf.quantization.fake_quantize import (
        calculate_quantizer_parameters,
        calculate_scale_zero_point,
    )
    from nncf.quantization.range_estimator import (
        AggregatorType,
        RangeEstimatorParametersSet,
        StatisticsType,
    )
    from nncf.tensor import Tensor

    mode = QuantizationScheme(p.get("mode", "symmetric"))
    narrow = bool(p.get("narrow_range", False))
    num_bits = int(p.get("num_bits", 8))
    q = float(p.get("quantile_outlier_prob", 1e-4))
    axes = None if p.get("axes") is None else (int(p["axes"]),)
    use_abs_max = mode == QuantizationScheme.SYMMETRIC
    preset = getattr(RangeEstimatorParametersSet, preset_name)
    stats = []
    for params, is_min in ((preset.min, True), (preset.max, False)):
        stype = params.statistics_type
        if stype in (StatisticsType.QUANTILE, StatisticsType.ABS_QUANTILE):
            reducer = REDUCERS_MAP[stype](axes=axes, quantile=[q if is_min else 1 - q])
        else:
            if use_abs_max and stype == StatisticsType.MAX:
                stype = StatisticsType.ABS_MAX
            reducer = REDUCERS_MAP[stype](axes=axes)
        kw: dict[str, Any] = {"aggregation_axes": (0,)}
        if params.aggregator_type in (AggregatorType.MEAN_NO_OUTLIERS,
                                      AggregatorType.MEDIAN_NO_OUTLIERS):
            kw["quantile"] = q
        aggregator = AGGREGATORS_MAP[params.aggregator_type](**kw)
        for b in batches:
            reduced = reducer([Tensor(b)])
            if reduced is not None:
                aggregator.register_reduced_input(reduced[0])
        stats.append(aggregator.aggregate())
    lo, hi = (np.asarray(s.data) for s in stats)
    kept = [n for n in lo.shape if n != 1]
    per_channel = len(kept) == 1
    qc = QuantizerConfig(num_bits=num_bits, mode=mode, narrow_range=narrow,
                         per_channel=per_channel,
                         signedness_to_force=p.get("signedness_to_force"))
    fq = calculate_quantizer_parameters(MinMaxTensorStatistic(Tensor(lo), Tensor(hi)), qc,
                                        QuantizerGroup.ACTIVATIONS)
    if mode == QuantizationScheme.SYMMETRIC:
        signed = bool(np.any(np.asarray(fq.input_low.data) < 0))
        level_low, level_high = calculate_symmetric_level_ranges(num_bits, signed, narrow)
    else:
        level_low, level_high = calculate_asymmetric_level_ranges(num_bits, narrow)
    scale, zp = calculate_scale_zero_point(fq.input_low, fq.input_high, level_low,
                                           level_high, narrow)
    s, z = np.asarray(scale.data), np.asarray(zp.data).astype(np.int64)
    if per_channel:
        s, z = s.reshape(-1), z.reshape(-1)
    return {"min_values": lo, "max_values": hi, "scale": s, "zero_point": z}



TARGET_CLASS = NncfTarget
