"""The interface of a conformance target: :class:`Target` and :class:`Unsupported`.

A target maps operation names to functions ``fn(case) -> {output name: array}``. Its
framework is imported in :meth:`Target._load`, never at module level, and a target whose
package is missing says why in :meth:`Target.missing` (the runner then marks every case
skipped with that reason).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..format import Case

__all__ = ["OpFn", "Target", "Unsupported"]

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
