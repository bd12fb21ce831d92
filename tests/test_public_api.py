"""The public API that refquant promises other code (names and call signatures)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import refquant
from refquant import QParams
from refquant.kernels import onnx as ok
from refquant.kernels import paddle as pk
from refquant.observers import (
    AbsMaxChannelWiseWeightObserver,
    AbsmaxObserver,
    AVGObserver,
    EMDObserver,
    GroupWiseWeightObserver,
    HistObserver,
    KLObserver,
    MSEChannelWiseWeightObserver,
    MSEObserver,
)

OBSERVERS = (AbsmaxObserver, AVGObserver, MSEObserver, EMDObserver, HistObserver, KLObserver,
             AbsMaxChannelWiseWeightObserver, MSEChannelWiseWeightObserver,
             GroupWiseWeightObserver)


def _params(fn) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
            if p.kind is not inspect.Parameter.KEYWORD_ONLY]


def test_qparams_fields():
    assert refquant.QParams is QParams
    fields = set(QParams.__dataclass_fields__)
    assert {"scale", "zero_point", "qmin", "qmax", "bits", "axis", "margin"} <= fields


@pytest.mark.parametrize("cls", OBSERVERS, ids=lambda c: c.__name__)
def test_observer_life_cycle_and_profiles(cls):
    sig = inspect.signature(cls)
    assert "quant_bits" in sig.parameters and sig.parameters["profile"].default == "canonical"
    for method in ("observe", "compute", "merge", "reset"):
        assert callable(getattr(cls, method))
    with pytest.raises(NotImplementedError):
        cls(profile="paddleslim").merge(cls(profile="paddleslim"))


def test_paddle_kernel_signatures():
    q = [("x", inspect._empty), ("scale", inspect._empty), ("zero_point", None),
         ("quant_axis", -1), ("bit_length", 8), ("qmin", -128), ("qmax", 127)]
    assert _params(pk.quantize_linear)[:7] == q
    dq = [("q", inspect._empty)] + q[1:]
    assert _params(pk.dequantize_linear)[:7] == dq
    assert _params(pk.fake_quantize_dequantize_abs_max) == [
        ("x", inspect._empty), ("bit_length", 8), ("round_type", 1)]
    assert _params(pk.fake_channel_wise_quantize_dequantize_abs_max) == [
        ("x", inspect._empty), ("bit_length", 8), ("round_type", 1), ("quant_axis", 0)]
    out, scale = pk.fake_quantize_dequantize_abs_max(np.array([1.0, -2.0], np.float32))
    assert out.dtype == np.float32 and scale.dtype == np.float32


def test_onnx_kernel_signature():
    assert _params(ok.quantize_linear) == [
        ("x", inspect._empty), ("y_scale", inspect._empty), ("y_zero_point", None),
        ("axis", 1), ("saturate", True), ("block_size", 0), ("output_dtype", None)]


def test_adapter_names():
    pytest.importorskip("paddle")
    from paddle.quantization.factory import ObserverFactory
    from refquant.adapters.paddle import PTQ, QAT, QuantConfig, export_onnx  # noqa: F401
    from refquant.adapters.paddle import observers as aobs
    from refquant.adapters.paddle.quanters import (  # noqa: F401
        ActLSQplusQuanter,
        PACTQuanter,
        WeightLSQplusQuanter,
    )

    for cls in OBSERVERS:
        factory = getattr(aobs, cls.__name__)
        assert issubclass(factory, ObserverFactory)
        assert factory()._get_class().__name__ == f"{cls.__name__}Layer"
