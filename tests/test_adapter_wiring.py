"""Public wiring of the Paddle adapter: PTQ.sync, default parallel-layer mapping, exports."""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import refquant.adapters.paddle as adapter  # noqa: E402
from refquant.adapters.paddle import PTQ, QuantConfig  # noqa: E402
from refquant.adapters.paddle.config import DEFAULT_QAT_LAYER_MAPPING  # noqa: E402
from refquant.adapters.paddle.observers import (  # noqa: E402
    AbsMaxChannelWiseWeightObserver,
    KLObserver,
)

from refquant.observers import KLObserver as RefKL  # noqa: E402


def test_design_public_names_are_exported():
    for name in ("QuantConfig", "PTQ", "QAT", "export_onnx", "sync_observers",
                 "QuantedColumnParallelLinear", "QuantedRowParallelLinear"):
        assert hasattr(adapter, name), name


def test_fleet_parallel_linears_are_mapped_by_default():
    from paddle.distributed.fleet.meta_parallel import ColumnParallelLinear, RowParallelLinear

    assert DEFAULT_QAT_LAYER_MAPPING[ColumnParallelLinear] is adapter.QuantedColumnParallelLinear
    assert DEFAULT_QAT_LAYER_MAPPING[RowParallelLinear] is adapter.QuantedRowParallelLinear


def test_ptq_sync_in_one_process_keeps_the_calibrated_scales():
    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Linear(6, 4), paddle.nn.ReLU(), paddle.nn.Linear(4, 3))
    model.eval()
    ptq = PTQ(QuantConfig(activation=KLObserver(), weight=AbsMaxChannelWiseWeightObserver()))
    qmodel = ptq.quantize(model)
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((16, 6)).astype(np.float32) for _ in range(3)]
    for b in batches:
        qmodel(paddle.to_tensor(b))
    result = ptq.sync(qmodel)
    assert result.world_size == 1
    # the first layer's input observer equals the reference KL observer on the same batches
    ref = RefKL()
    for b in batches:
        ref.observe(b)
    assert result.qparams["0.activation_quanter"] == ref.compute()
