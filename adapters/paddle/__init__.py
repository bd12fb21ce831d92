"""Paddle adapter: QuantConfig, PTQ, QAT and observer/quanter factories.

``refquant.adapters.paddle`` runs PaddleSlim's dygraph PTQ/QAT flow on Paddle's device with
refquant's decisions::

    from refquant.adapters.paddle import QuantConfig, PTQ
    from refquant.adapters.paddle.observers import MSEObserver, AbsMaxChannelWiseWeightObserver

    cfg = QuantConfig(activation=MSEObserver(), weight=AbsMaxChannelWiseWeightObserver())
    ptq = PTQ(cfg)
    qmodel = ptq.quantize(model)          # observers inserted (deep copy, eval mode)
    for batch in calibration_data:
        qmodel(batch)                     # statistics reduced on the device
    infer = ptq.convert(qmodel)           # QDQ form; paddle.jit.save works with batch -1
    export_onnx(infer, "model.onnx", input_spec)   # ONNX QDQ, checked in ONNX Runtime

QAT models (``QAT(cfg).quantize``) trace with ``paddle.jit.save`` before ``convert``: the
quanters emit their evaluation-mode computation, frozen (:mod:`.quanters`). ``PTQ(cfg)`` /
``QAT(cfg)`` keep a snapshot of ``cfg``; ``paddle.nn.quant.Stub(observer)`` is observed by
its own observer (:mod:`.config`).

Data-parallel calibration: every rank calls ``ptq.sync(qmodel)`` before ``convert``
(docs/distributed.md).

Importing this package imports Paddle (the core ``refquant`` package never does).
"""

from .config import QuantConfig, SingleLayerConfig
from .distributed import (
    EmptyRankError,
    SyncError,
    SyncMismatchError,
    SyncTimeoutError,
    sync_observers,
)
from .export import export_onnx
from .observers import NotCalibratedError
from .parallel import QuantedColumnParallelLinear, QuantedRowParallelLinear
from .quantize import PTQ, QAT

__all__ = [
    "QuantConfig", "SingleLayerConfig", "PTQ", "QAT", "NotCalibratedError", "export_onnx",
    "sync_observers", "SyncError", "SyncTimeoutError", "SyncMismatchError", "EmptyRankError",
    "QuantedColumnParallelLinear", "QuantedRowParallelLinear",
]
