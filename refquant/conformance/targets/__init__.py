"""Implementations the runner can check against the fixtures.

Each target is a small module that imports its framework lazily (inside :meth:`Target.load`)
and maps operation names to functions ``fn(case) -> {output name: array}``. A target whose
package is missing reports why, and the runner marks every case skipped with that reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..format import Case

__all__ = ["TARGET_NAMES", "Target", "get_target", "Unsupported"]

#: target name -> module under refquant.conformance.targets
_MODULES = {
    "reference": "reference",
    "paddle": "paddle",
    "paddleslim": "paddleslim",
    "onnxruntime": "onnxruntime",
    "onnx-reference": "onnx_reference",
    "torch": "torch",
    "torchao": "torchao",
}
TARGET_NAMES: tuple[str, ...] = tuple(_MODULES)

OpFn = Callable[[Case], dict[str, Any]]


class Unsupported(Exception):
    """Raised by a target for a case (or parameter combination) it cannot express."""


class Target:
    """Base class: subclasses set ``name``, ``requires`` and fill ``ops`` in ``_load``."""

    name: str = ""
    requires: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.ops: dict[str, OpFn] = {}
        self._loaded = False
        self._missing: str | None = None

    def missing(self) -> str | None:
        """Why this target cannot run here (a missing package), or None."""
        for mod in self.requires:
            try:
                importlib.import_module(mod)
            except Exception as exc:  # ImportError, or a broken install
                return f"target {self.name!r} needs the Python package {mod!r} ({exc})"
        return None

    def load(self) -> None:
        if not self._loaded:
            self._load()
            self._loaded = True

    def _load(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def supports(self, case: Case) -> bool:
        return case.op in self.ops

    def run(self, case: Case) -> dict[str, np.ndarray]:
        self.load()
        fn = self.ops.get(case.op)
        if fn is None:
            raise Unsupported(f"target {self.name} does not implement {case.op}")
        out = fn(case)
        return {k: np.asarray(v) for k, v in out.items()}


def get_target(name: str) -> Target:
    """Instantiate the target called ``name``; ``ValueError`` for an unknown name."""
    mod = _MODULES.get(name)
    if mod is None:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(TARGET_NAMES)}")
    module = importlib.import_module(f"{__name__}.{mod}")
    target: Target = module.TARGET_CLASS()
    return target
