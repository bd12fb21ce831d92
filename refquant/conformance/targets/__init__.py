"""Implementations the runner can check against the fixtures.

Each target is a small module that imports its framework lazily (inside :meth:`Target.load`)
and maps operation names to functions ``fn(case) -> {output name: array}``. A target whose
package is missing reports why, and the runner marks every case skipped with that reason.

Built-in targets are modules of this package. An installed package adds a target by
declaring a :class:`Target` subclass as an entry point of the group
``refquant.conformance_targets`` (the Paddle adapter declares ``paddle`` this way in
refquant's ``pyproject.toml``), so this package never names the code that provides it. A
declared target's module is imported only when the target is checked or loaded
(:class:`DeclaredTarget`), as a built-in target imports its framework only then.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

import numpy as np

from ..format import Case
from ._base import OpFn, Target, Unsupported

__all__ = ["ENTRY_POINT_GROUP", "TARGET_NAMES", "DeclaredTarget", "OpFn", "Target",
           "Unsupported", "get_target"]

#: The entry point group of targets provided by installed packages.
ENTRY_POINT_GROUP = "refquant.conformance_targets"

#: built-in target name -> module under refquant.conformance.targets
_MODULES = {
    "reference": "reference",
    "paddleslim": "paddleslim",
    "onnxruntime": "onnxruntime",
    "onnx-reference": "onnx_reference",
    "torch": "torch",
    "torchao": "torchao",
    "tensorflow": "tensorflow",
    "litert": "litert",
    "openvino": "openvino",
    "onnxruntime-int8": "onnxruntime_int8",
    "nncf": "nncf",
}


def _declared() -> dict[str, EntryPoint]:
    """Targets declared by installed packages (a built-in name cannot be redeclared)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _MODULES:
            found.setdefault(ep.name, ep)
    return found


_DECLARED = _declared()
TARGET_NAMES: tuple[str, ...] = (*_MODULES, *sorted(_DECLARED))


class DeclaredTarget(Target):
    """A target declared by an entry point, loaded on first use.

    :meth:`missing` imports the entry point's module and reports an import failure the way
    a built-in target reports a missing package (``target 'paddle' needs the Python package
    'paddle' (...)``); every other method runs the loaded target.
    """

    def __init__(self, name: str, entry_point: EntryPoint) -> None:
        super().__init__()
        self.name = name
        self._entry_point = entry_point
        self._target: Target | None = None

    def _resolve(self) -> Target:
        if self._target is None:
            cls = self._entry_point.load()
            target = cls()
            if not isinstance(target, Target):
                raise TypeError(f"entry point {self._entry_point.value!r} of target "
                                f"{self.name!r} is not a Target subclass")
            self._target = target
        return self._target

    def missing(self) -> str | None:
        try:
            self._entry_point.load()
        except Exception as exc:  # ImportError, or a broken install of the framework
            package = getattr(exc, "name", None) or self._entry_point.module
            return f"target {self.name!r} needs the Python package {package!r} ({exc})"
        return self._resolve().missing()

    def load(self) -> None:
        self._resolve().load()

    def supports(self, case: Case) -> bool:
        return self._resolve().supports(case)

    def run(self, case: Case) -> dict[str, np.ndarray]:
        return self._resolve().run(case)


def get_target(name: str) -> Target:
    """Instantiate the target called ``name``; ``ValueError`` for an unknown name."""
    declared = _DECLARED.get(name)
    if declared is not None:
        return DeclaredTarget(name, declared)
    mod = _MODULES.get(name)
    if mod is None:
        raise ValueError(f"unknown target {name!r}; choose one of {', '.join(TARGET_NAMES)}")
    module = importlib.import_module(f"{__name__}.{mod}")
    target: Target = module.TARGET_CLASS()
    return target
