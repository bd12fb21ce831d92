"""The ``tensorflow`` target: TensorFlow's CPU fake-quant kernels (TensorFlow imported lazily).

Runs the ``tensorflow.*`` cases (family ``kernels.tensorflow``): ``variant="eager"`` cases
call the op eagerly (TensorFlow's CPU kernels); ``variant="xla"`` cases call it inside
``tf.function(jit_compile=True)``, one compiled function per op and parameter set, reused
across cases. ``quantize_and_dequantize_v4`` runs eagerly (``tf.raw_ops``).

Other families' fake-quant cases (torch, ONNX) are not run here: TensorFlow nudges the range
and rounds half up, which those operations never specified (docs/kernels.md measures the
differences; ``refquant diagnose`` names them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..format import Case
from ._base import Target, Unsupported

_OPS = ("fake_quant_with_min_max_args", "fake_quant_with_min_max_vars",
        "fake_quant_with_min_max_vars_per_channel")


class TensorFlowTarget(Target):
    name = "tensorflow"
    requires = ("tensorflow",)

    def _load(self) -> None:
        import tensorflow as tf

        self._tf = tf
        self._compiled: dict[tuple[Any, ...], Callable[..., Any]] = {}
        for op in _OPS:
            self.ops[f"tensorflow.{op}"] = self._fake_quant
        self.ops["tensorflow.quantize_and_dequantize_v4"] = self._qdq_v4

    @staticmethod
    def _x(case: Case) -> np.ndarray:
        x = np.asarray(case.inputs["x"])
        if x.dtype != np.float32:
            raise Unsupported("tensorflow target: float32 x only")
        return x

    def _function(self, op: str, p: dict[str, Any]) -> Callable[..., Any]:
        """The op as a callable of tensors: eager, or compiled by XLA once per parameter set
        (``_args`` takes ``min`` / ``max`` as attributes, so they are part of the key)."""
        variant = p["variant"]
        if variant not in ("eager", "xla"):
            raise Unsupported(f"tensorflow target: unknown variant {variant!r}")
        attrs: dict[str, Any] = {"num_bits": int(p["num_bits"]),
                                 "narrow_range": bool(p["narrow_range"])}
        if op == "fake_quant_with_min_max_args":
            attrs.update(min=float(p["min"]), max=float(p["max"]))
        key = (op, variant, *sorted(attrs.items()))
        fn = self._compiled.get(key)
        if fn is None:
            raw = getattr(self._tf.quantization, op)

            def call(*tensors: Any) -> Any:
                return raw(*tensors, **attrs)

            fn = call if variant == "eager" else self._tf.function(call, jit_compile=True)
            self._compiled[key] = fn
        return fn

    def _fake_quant(self, case: Case) -> dict:
        op = case.op.split(".", 1)[1]
        p, tf = case.params, self._tf
        args = [tf.constant(self._x(case))]
        if op == "fake_quant_with_min_max_vars":
            args += [tf.constant(np.float32(p["min"])), tf.constant(np.float32(p["max"]))]
        elif op == "fake_quant_with_min_max_vars_per_channel":
            args += [tf.constant(np.asarray(case.inputs["min"], np.float32)),
                     tf.constant(np.asarray(case.inputs["max"], np.float32))]
        fn = self._function(op, p)
        log = logging.getLogger("tensorflow")
        level = log.level
        log.setLevel(logging.ERROR)  # one trace per shape is the plan, not a retracing warning
        try:
            return {"y": fn(*args).numpy()}
        finally:
            log.setLevel(level)

    def _qdq_v4(self, case: Case) -> dict:
        p = case.params
        y = self._tf.raw_ops.QuantizeAndDequantizeV4(
            input=self._x(case), input_min=np.float32(p["input_min"]),
            input_max=np.float32(p["input_max"]), signed_input=bool(p["signed_input"]),
            num_bits=int(p["num_bits"]), range_given=bool(p["range_given"]),
            round_mode=str(p["round_mode"]), narrow_range=bool(p["narrow_range"]), axis=-1)
        return {"y": y.numpy()}


TARGET_CLASS = TensorFlowTarget
