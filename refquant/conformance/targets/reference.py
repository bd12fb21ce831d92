"""The ``reference`` target: refquant's own NumPy implementation (what generated the fixtures).

Running it checks that the current reference still produces the shipped expected outputs;
any failure is a regression in refquant (or fixtures that need regenerating).
"""

from __future__ import annotations

from ..format import Case
from ..registry import OPS, run_reference
from ._base import Target


class ReferenceTarget(Target):
    name = "reference"

    def _load(self) -> None:
        from .. import cases  # noqa: F401  (registers every operation)

        for op in OPS:
            self.ops[op] = self._make(op)

    @staticmethod
    def _make(op: str):  # type: ignore[no-untyped-def]
        def fn(case: Case) -> dict:
            outs, _ = run_reference(op, dict(case.inputs), dict(case.params))
            return outs
        return fn

    def supports(self, case: Case) -> bool:
        self.load()
        return case.op in self.ops


TARGET_CLASS = ReferenceTarget
