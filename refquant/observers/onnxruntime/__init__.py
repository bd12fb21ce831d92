"""ONNX Runtime's calibrators (``onnxruntime/quantization/calibrate.py``, onnxruntime 1.32)
on arrays, bug for bug, each with a canonical counterpart; no onnxruntime import.

``from refquant.observers import onnxruntime as ortobs``;
``cal = ortobs.EntropyCalibrater(num_bins=128)``; ``cal.observe(x)`` per ``collect_data``
call (``cal.collect([x1, x2])`` for a call whose reader yields several batches);
``cal.compute_data()`` -> ``(low, high)`` float32, bit for bit ORT's ``TensorData``
range; ``cal.compute("uint8")`` -> :class:`~refquant.qparams.QParams` through ORT's
``compute_scale_zp``. ``profile="canonical"`` gives the same decision rule on exact,
order-free statistics with ``merge``;
:func:`refquant.observers.order.batch_order_sensitivity` measures how much a calibrator's
decision depends on the order of the batches.
"""

from refquant.observers.onnxruntime._common import (
    QTYPES,
    OrtAssertionError,
    compute_scale_zp,
    ort_scale_zp,
    qrange,
)
from refquant.observers.onnxruntime._histogram import HistogramCalibrater
from refquant.observers.onnxruntime.distribution import DistributionCalibrater
from refquant.observers.onnxruntime.entropy import EntropyCalibrater
from refquant.observers.onnxruntime.minmax import MinMaxCalibrater
from refquant.observers.onnxruntime.percentile import PercentileCalibrater

#: the calibrators by ORT's class name
CALIBRATERS = {c.__name__: c for c in (MinMaxCalibrater, EntropyCalibrater,
                                       PercentileCalibrater, DistributionCalibrater)}
#: the same, under the name :mod:`refquant.observers.families` reads
OBSERVERS = CALIBRATERS

__all__ = [
    "MinMaxCalibrater", "EntropyCalibrater", "PercentileCalibrater", "DistributionCalibrater",
    "HistogramCalibrater", "CALIBRATERS", "OBSERVERS", "OrtAssertionError", "QTYPES",
    "compute_scale_zp", "ort_scale_zp", "qrange",
]
