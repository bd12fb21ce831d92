"""The ``openvino`` target: OpenVINO's FakeQuantize on the CPU plugin (``openvino`` imported
lazily), one single-node model per case.

Runs the ``openvino.fake_quantize`` cases (family ``kernels.openvino``). The model is
compiled with ``SNIPPETS_MODE=DISABLE`` and ``LP_TRANSFORMS_MODE=NO`` so the node runs as its
own layer (docs/kernels.md, OpenVINO). The plugin picks its kernel from the shapes, so a case
runs only when that choice is the case's ``variant``
(:func:`refquant.kernels.openvino.cpu_plugin_variant`); otherwise, and for a 65536-level
node with equal input and output ranges that the case does not expect removed, the case is
skipped with the reason.

torch fake-quant cases are not run here: FakeQuantize anchors its grid at ``input_low`` and
rounds ``(x - il) / (ih - il) * (levels - 1)``, which ``torch.fake_quantize_*`` never
specified (docs/kernels.md measures the differences; ``refquant diagnose`` names them).
"""

from __future__ import annotations

import numpy as np

from ..format import Case
from ._base import Target, Unsupported

CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "SNIPPETS_MODE": "DISABLE",
          "LP_TRANSFORMS_MODE": "NO"}


def run_fake_quantize(x: np.ndarray, input_low: np.ndarray, input_high: np.ndarray,
                      output_low: np.ndarray, output_high: np.ndarray, levels: int,
                      config: dict[str, str] | None = None) -> np.ndarray:
    """Compile a one-node FakeQuantize model for CPU and run it on float32 ``x``."""
    import openvino as ov
    import openvino.opset13 as ops

    param = ops.parameter(list(x.shape), ov.Type.f32)
    zero = ops.parameter(list(x.shape), ov.Type.f32)
    consts = [ops.constant(np.asarray(v, np.float32))
              for v in (input_low, input_high, output_low, output_high)]
    node = ops.fake_quantize(param, *consts, int(levels))
    # "+ (-0.0)" changes no value; without a consumer the plugin's pass that removes
    # 65536-level FakeQuantize nodes fails on a Parameter -> FakeQuantize -> Result graph
    out = ops.add(node, zero)
    compiled = ov.Core().compile_model(ov.Model([out], [param, zero]), "CPU",
                                       CONFIG if config is None else config)
    data = np.ascontiguousarray(x, np.float32)
    return np.array(compiled([data, np.full(data.shape, -0.0, np.float32)])[0])


class OpenVINOTarget(Target):
    name = "openvino"
    requires = ("openvino",)

    def _load(self) -> None:
        from ...kernels.openvino import cpu_plugin_variant

        self._variant_for = cpu_plugin_variant
        self.ops["openvino.fake_quantize"] = self._fq

    def _fq(self, case: Case) -> dict:
        i, p = case.inputs, case.params
        x = np.asarray(i["x"])
        if x.dtype != np.float32 or x.ndim == 0 or x.size == 0:
            raise Unsupported("openvino target: non-empty float32 x only")
        names = ("input_low", "input_high", "output_low", "output_high")
        ranges = [np.asarray(i[n], np.float32) for n in names]
        try:
            runs = self._variant_for(x.shape, *(r.shape for r in ranges))
        except ValueError as exc:
            raise Unsupported(f"openvino target: {exc}") from None
        if runs != p["variant"]:
            raise Unsupported(f"openvino target: for x of shape {x.shape} and ranges of shapes "
                              f"{[r.shape for r in ranges]} the CPU plugin runs the {runs!r} "
                              f"kernel, not {p['variant']!r}")
        il, ih, ol, oh = ranges
        if (int(p["levels"]) == 65536 and not p.get("identity_65536")
                and np.array_equal(il, ol) and np.array_equal(ih, oh)):
            raise Unsupported("openvino target: the CPU plugin removes a 65536-level "
                              "FakeQuantize with equal input and output ranges (y = x)")
        return {"y": run_fake_quantize(x, il, ih, ol, oh, int(p["levels"]))}


TARGET_CLASS = OpenVINOTarget
