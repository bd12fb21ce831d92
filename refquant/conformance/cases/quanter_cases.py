"""Quanter forward / backward steps, both profiles (reference: :mod:`refquant.quanters`).

Operation ``quanter.<ClassName>``: inputs ``batch0``, ``batch1``, ... (float32; each is one
training-mode ``forward``, in order) and ``grad`` (the upstream gradient for the last
batch); params = constructor arguments (``profile`` included; PACT in the paddleslim
profile wraps ``FakeQuanterWithAbsMaxObserver``) -> ``y`` (the last forward output),
``grad_x`` and, where the quanter has a learned parameter, ``grad_alpha`` (PACT) or
``grad_scale`` (LSQ+), then ``scale`` (``qparams().scale`` after the steps).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...profiles import CANONICAL, PADDLESLIM
from ..registry import CaseDraft, register_family, register_op
from ._inputs import distribution

#: class name -> (module, parameter-gradient output or None)
QUANTERS: dict[str, tuple[str, str | None]] = {
    "FakeQuanterWithAbsMaxObserver": ("abs_max", None),
    "FakeQuanterChannelWiseAbsMaxObserver": ("channel_wise_abs_max", None),
    "PACTQuanter": ("pact", "alpha"),
    "WeightLSQplusQuanter": ("lsq", "scale"),
    "ActLSQplusQuanter": ("lsq", "scale"),
}


def _cls(name: str) -> Any:
    return getattr(importlib.import_module(f"refquant.quanters.{QUANTERS[name][0]}"), name)


def _outputs(name: str) -> tuple[str, ...]:
    g = QUANTERS[name][1]
    return ("y", "grad_x") + ((f"grad_{g}",) if g else ()) + ("scale",)


def _make_ref(name: str) -> Any:
    def ref(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple:
        kw = dict(p)
        inner = kw.pop("inner", None)
        if inner is not None:
            kw["quanter"] = _cls(inner)(profile=kw["profile"])
        q = _cls(name)(**kw)
        nb = len(inputs) - 1
        y = None
        for i in range(nb):
            y = q.forward(inputs[f"batch{i}"])
        grads = q.backward(inputs[f"batch{nb - 1}"], inputs["grad"])
        out = [y, grads["x"]]
        g = QUANTERS[name][1]
        if g:
            out.append(np.asarray(grads[g], np.float32))
        out.append(q.qparams().scale)
        return tuple(out)
    ref.__doc__ = f"refquant.quanters.{QUANTERS[name][0]}.{name}: forward steps, backward."
    return ref


for _name in QUANTERS:
    register_op(f"quanter.{_name}", "quanter", _outputs(_name))(_make_ref(_name))


@register_family("quanters", requires=tuple(
    f"refquant.quanters.{m}" for m, _ in sorted(set(QUANTERS.values()))))
def generate() -> Iterator[CaseDraft]:
    for qi, name in enumerate(QUANTERS):
        for rules in (CANONICAL, PADDLESLIM):
            profile = rules.name
            for di, dist in enumerate(("normal", "heavy", "relu")):
                nb = 1 + (qi + di) % 3
                shape = (4, 3, 2, 2)
                seed = 5000 + 31 * qi + 7 * di
                batches = {f"batch{b}": distribution(dist, seed + b, shape, (1.0, 2.0, 0.5)[b])
                           for b in range(nb)}
                batches["grad"] = distribution("normal", seed + 99, shape, 1.0)
                params: dict[str, Any] = {"profile": profile}
                if name == "PACTQuanter":
                    params["init_value"] = 1.5
                    if rules.reproduces is not None:  # as PaddleSlim's PACT is used: around
                        params["inner"] = "FakeQuanterWithAbsMaxObserver"  # a quanter (Q40)
                yield CaseDraft(
                    id=f"quanter.{name.lower()}.{profile}.{dist}.n{nb}", op=f"quanter.{name}",
                    inputs=batches, params=params, profile=profile,
                    tags=("quanter", name, profile, dist, f"steps{nb}"),
                    description=f"{name}({profile}): {nb} training forward(s), then backward")
