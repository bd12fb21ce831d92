"""The ``onnx-reference`` target: ``onnx.reference.ReferenceEvaluator`` (onnx's Python spec
implementation) on the same tiny models as the ``onnxruntime`` target."""

from __future__ import annotations

import warnings

import numpy as np

from ..format import Case
from ._base import Target
from ._onnx_models import build, finish


class OnnxReferenceTarget(Target):
    name = "onnx-reference"
    requires = ("onnx",)

    def _load(self) -> None:
        import onnx
        from onnx.reference import ReferenceEvaluator

        self._onnx = onnx
        self._ev = ReferenceEvaluator
        for op in ("onnx.quantize_linear", "onnx.dequantize_linear"):
            self.ops[op] = self._run_model

    def _run_model(self, case: Case) -> dict:
        blob, feeds, fp8 = build(case)
        model = self._onnx.load_from_string(blob)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            (y,) = self._ev(model).run(None, feeds)
        return finish(np.asarray(y), fp8)


TARGET_CLASS = OnnxReferenceTarget
