"""Registries of operations and case families.

An *operation* (``OpSpec``) names what a case computes (``"paddle.quantize_linear"``), the
kind (kernel, observer, quanter, qparams), the names of its outputs, and the reference
function that produces the expected outputs from ``(inputs, params)``.

A *family* is a generator of :class:`CaseDraft` objects (inputs and parameters, no
outputs); ``refquant conformance generate`` runs every draft through its operation's
reference function to fill in the expected outputs. Each family lives in a small module
under :mod:`refquant.conformance.cases` and registers itself on import; a family whose
``requires`` modules are not importable yet is skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .format import Case, check_case_id

__all__ = [
    "OpSpec",
    "CaseDraft",
    "OPS",
    "FAMILIES",
    "register_op",
    "register_family",
    "build_case",
    "iter_families",
]

RefFn = Callable[[dict[str, np.ndarray], dict[str, Any]], Any]


@dataclass(frozen=True)
class OpSpec:
    name: str
    kind: str
    outputs: tuple[str, ...]
    reference: RefFn
    doc: str = ""


@dataclass
class CaseDraft:
    """A case before its expected outputs are computed."""

    id: str
    op: str
    inputs: dict[str, np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)
    rule: str = "bits"
    #: for ``decision`` cases: the margin below which either decision is accepted
    bound: float | None = None
    profile: str | None = None
    tags: tuple[str, ...] = ()
    description: str = ""
    expected_divergence: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    name: str
    generate: Callable[[], Iterable[CaseDraft]]
    requires: tuple[str, ...]


OPS: dict[str, OpSpec] = {}
FAMILIES: dict[str, Family] = {}


def register_op(name: str, kind: str, outputs: tuple[str, ...], doc: str = ""
                ) -> Callable[[RefFn], RefFn]:
    """Decorator: register ``fn(inputs, params)`` as the reference for operation ``name``.

    ``fn`` returns a tuple of arrays in ``outputs`` order, or ``(tuple, margin)`` wrapped in
    a dict ``{"outputs": tuple, "margin": float}`` for decision operations.
    """
    def deco(fn: RefFn) -> RefFn:
        if name in OPS and OPS[name].reference is not fn:
            raise ValueError(f"operation {name!r} registered twice")
        OPS[name] = OpSpec(name, kind, tuple(outputs), fn, doc or (fn.__doc__ or "").strip())
        return fn
    return deco


def register_family(name: str, requires: tuple[str, ...] = ()
                    ) -> Callable[[Callable[[], Iterable[CaseDraft]]],
                                  Callable[[], Iterable[CaseDraft]]]:
    """Decorator: register a generator of case drafts (skipped when ``requires`` is missing)."""
    def deco(fn: Callable[[], Iterable[CaseDraft]]) -> Callable[[], Iterable[CaseDraft]]:
        FAMILIES[name] = Family(name, fn, tuple(requires))
        return fn
    return deco


def _importable(mod: str) -> bool:
    try:
        importlib.import_module(mod)
    except ImportError:
        return False
    return True


def iter_families() -> Iterator[tuple[Family, bool]]:
    """Every registered family (sorted by name) and whether its requirements import."""
    for name in sorted(FAMILIES):
        fam = FAMILIES[name]
        yield fam, all(_importable(m) for m in fam.requires)


def _margin(m: Any) -> float | list[float | None] | None:
    """JSON form of a margin: a float, or a per-channel list; non-finite -> None."""
    if m is None:
        return None
    if isinstance(m, (list, tuple, np.ndarray)):
        return [_margin(float(v)) for v in np.asarray(m, dtype=np.float64).ravel()]  # type: ignore[misc]
    f = float(m)
    return f if np.isfinite(f) else None


def run_reference(op: str, inputs: dict[str, np.ndarray], params: dict[str, Any]
                  ) -> tuple[dict[str, np.ndarray], Any]:
    """Run the reference of ``op``; returns ``({output: array}, margin or None)``."""
    spec = OPS.get(op)
    if spec is None:
        raise KeyError(f"unknown operation {op!r}")
    frozen = {k: _readonly_copy(v) for k, v in inputs.items()}
    res = spec.reference(frozen, dict(params))
    margin = None
    if isinstance(res, dict):
        margin = res.get("margin")
        res = res["outputs"]
    if not isinstance(res, tuple):
        res = (res,)
    if len(res) != len(spec.outputs):
        raise ValueError(f"reference of {op} returned {len(res)} outputs, expected "
                         f"{len(spec.outputs)} {spec.outputs}")
    outs = {n: np.asarray(a) for n, a in zip(spec.outputs, res, strict=True)}
    return outs, _margin(margin)


def _readonly_copy(a: np.ndarray) -> np.ndarray:
    c = np.array(a, copy=True)
    c.setflags(write=False)
    return c


def build_case(draft: CaseDraft, family: str) -> Case:
    """Compute a draft's expected outputs with the reference and return the full case."""
    check_case_id(draft.id)
    spec = OPS[draft.op]
    outputs, margin = run_reference(draft.op, draft.inputs, draft.params)
    compare: dict[str, Any] = {"rule": draft.rule}
    if draft.rule == "decision":
        # JSON has no inf: a single-candidate (certain) decision records margin null
        compare["margin"] = margin
        compare["bound"] = draft.bound
    return Case(
        id=draft.id, op=draft.op, kind=spec.kind, family=family, params=dict(draft.params),
        inputs={k: np.asarray(v) for k, v in draft.inputs.items()}, outputs=outputs,
        compare=compare, profile=draft.profile, tags=list(draft.tags),
        description=draft.description, expected_divergence=dict(draft.expected_divergence),
    )
