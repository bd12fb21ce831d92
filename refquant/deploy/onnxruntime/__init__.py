"""ONNX Runtime's CPU execution of a QDQ model, emulated: graph rewrites and integer kernels.

``InferenceSession(path_or_bytes, isa="host", x64quantprecision=False)`` mirrors
``onnxruntime.InferenceSession``: ``.run(None, feeds)`` returns the outputs, ``.plan()``
lists which nodes became which integer kernel (and which rewrite of ONNX Runtime did it).
:func:`check` reports, per fused node, the int16 pair saturation of an instruction-set
variant and what it costs. See ``docs/deploy.md``.
"""

from .diagnose import NodeCheck, check
from .session import InferenceSession, NodeError, Plan, PlanEntry

__all__ = ["InferenceSession", "NodeCheck", "NodeError", "Plan", "PlanEntry", "check"]
