"""The ``onnxruntime`` target: ONNX Runtime's CPU kernels, one tiny model per case.

Graph optimisations are disabled so no constant folding replaces the kernel under test.
"""

from __future__ import annotations

from ..format import Case
from ._base import Target
from ._onnx_models import build, finish


class OnnxRuntimeTarget(Target):
    name = "onnxruntime"
    requires = ("onnx", "onnxruntime")

    def _load(self) -> None:
        import onnxruntime as ort

        self._ort = ort
        for op in ("onnx.quantize_linear", "onnx.dequantize_linear"):
            self.ops[op] = self._run_model

    def _run_model(self, case: Case) -> dict:
        ort = self._ort
        blob, feeds, fp8 = build(case)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        (y,) = sess.run(["y"], feeds)
        return finish(y, fp8)


TARGET_CLASS = OnnxRuntimeTarget
