"""The ``onnxruntime`` target: ONNX Runtime's CPU kernels, one tiny model per case, and its
calibrators (``onnxruntime.quantization.calibrate``) for ``observer.onnxruntime.<Class>``.

Graph optimisations are disabled so no constant folding replaces the kernel under test.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from typing import Any

import numpy as np

from ..format import Case
from ._base import Target
from ._onnx_models import build, finish


class FeedReader:
    """A ``CalibrationDataReader`` over a list of feeds (one ``collect_data`` call)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def identity_calibrator(kind: str, rank: int, directory: str, **kwargs: Any) -> Any:
    """ORT's calibrator ``kind`` (``onnxruntime.quantization.calibrate.<kind>``) on an
    ``Identity`` model of input ``x`` / output ``y`` of ``rank`` dimensions, saved in
    ``directory`` (which must outlive the calibrator), augmented and with its inference
    session created: ``collect_data(FeedReader([{"x": batch}, ...]))`` calibrates ``y``."""
    import onnx
    from onnx import TensorProto, helper
    from onnxruntime.quantization import calibrate

    dims: list[str | int] = [f"d{i}" for i in range(rank)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = os.path.join(directory, "model.onnx")
    onnx.save(model, path)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = getattr(calibrate, kind)(
            path, augmented_model_path=os.path.join(directory, "aug.onnx"), **kwargs)
        cal.augment_graph()
        cal.create_inference_session()
    return cal


class OnnxRuntimeTarget(Target):
    name = "onnxruntime"
    requires = ("onnx", "onnxruntime")

    def _load(self) -> None:
        import onnxruntime as ort

        self._ort = ort
        for op in ("onnx.quantize_linear", "onnx.dequantize_linear"):
            self.ops[op] = self._run_model
        from ..cases.xf_observer_cases import PARAMS

        for name in PARAMS["onnxruntime"]:
            self.ops[f"observer.onnxruntime.{name}"] = self._calibrate

    def _run_model(self, case: Case) -> dict:
        ort = self._ort
        blob, feeds, fp8 = build(case)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        (y,) = sess.run(["y"], feeds)
        return finish(y, fp8)

    def _calibrate(self, case: Case) -> dict:
        """ORT's calibrator ``<Class>(**params)`` on an ``Identity`` model whose output
        ``y`` is the calibrated tensor: one ``collect_data`` call per batch, in order, then
        ``compute_data()["y"].range_value`` and ``quant_utils.compute_scale_zp`` with
        ``get_qmin_qmax_for_qType(qtype, symmetric=params["symmetric"])`` (``qtype`` a
        params key, default ``uint8``). For a symmetric range ORT returns a 0-d zero point
        next to a scale of the range's shape; it is broadcast to the scale's shape, the one
        shape refquant's ``QParams`` holds for both."""
        from onnx import TensorProto
        from onnxruntime.quantization import quant_utils

        params: dict[str, Any] = dict(case.params)
        qtype = params.pop("qtype", "uint8")
        symmetric = bool(params.get("symmetric", False))
        batches = [case.inputs[f"batch{i}"] for i in range(len(case.inputs))]
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cal = identity_calibrator(case.op.rsplit(".", 1)[1], batches[0].ndim, d, **params)
            for b in batches:
                cal.collect_data(FeedReader([{"x": np.array(b, np.float32)}]))
            low, high = cal.compute_data()["y"].range_value
            qmin, qmax = quant_utils.get_qmin_qmax_for_qType(
                getattr(TensorProto, qtype.upper()), symmetric=symmetric)
            zp, scale = quant_utils.compute_scale_zp(low, high, qmin, qmax, symmetric=symmetric)
        return {"low": np.asarray(low), "high": np.asarray(high),
                "scale": np.asarray(scale),
                "zero_point": np.broadcast_to(np.asarray(zp), np.shape(scale)).astype(np.int64)}


TARGET_CLASS = OnnxRuntimeTarget
