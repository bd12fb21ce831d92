"""Observer cases, both profiles, over varied distributions and 1-3 batches
(reference: :mod:`refquant.observers`).

Operation ``observer.<ClassName>`` (e.g. ``observer.MSEObserver``): inputs ``batch0``,
``batch1``, ... (float32, observed in order); params = the constructor arguments
(``quant_bits``, ``profile`` and the class's own: ``axis``, ``bins_count``, ``percent``,
``group_size``) -> ``scale`` (float32, Paddle's threshold or PaddleSlim's group shape),
``zero_point`` (int64). Searching observers (MSE, EMD, KL, MSE channel-wise) use the
``decision`` rule: their recorded margin is the relative gap between the best and the
second-best candidate and ``bound`` the float32 summation error bound for the batch size.

Runs on ``reference`` and, for ``profile="paddleslim"`` cases, on ``paddleslim`` (PaddleSlim
2.6.0's own observer layers on Paddle).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..._numerics import decision_bound
from ...profiles import CANONICAL, PADDLESLIM
from ..registry import CaseDraft, register_family, register_op
from ._inputs import DISTRIBUTIONS, distribution

#: class name -> (module under refquant.observers, searching?)
OBSERVERS: dict[str, tuple[str, bool]] = {
    "AbsmaxObserver": ("absmax", False),
    "AVGObserver": ("avg", False),
    "MSEObserver": ("mse", True),
    "EMDObserver": ("emd", True),
    "HistObserver": ("hist", False),
    "KLObserver": ("kl", True),
    "AbsMaxChannelWiseWeightObserver": ("channel_wise", False),
    "MSEChannelWiseWeightObserver": ("channel_wise", True),
    "GroupWiseWeightObserver": ("groupwise", False),
}

_SLIM_HIST_DIV = ("PaddleSlim 2.6.0's HistObserver.scales() raises TypeError on NumPy 2 "
                  "(float() of a shape-(1,) array, docs/divergences.md Q25); the "
                  "paddleslim profile gives the value it computes under NumPy 1.x semantics")


def _observer_class(name: str) -> Any:
    mod = importlib.import_module(f"refquant.observers.{OBSERVERS[name][0]}")
    return getattr(mod, name)


def _batches(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [inputs[f"batch{i}"] for i in range(len(inputs))]


def _make_ref(name: str) -> Any:
    def ref(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> dict[str, Any]:
        obs = _observer_class(name)(**p)
        for b in _batches(inputs):
            obs.observe(b)
        qp = obs.compute()
        margin = qp.margin
        if isinstance(margin, np.ndarray):
            margin = [float(m) for m in margin.ravel()]
        return {"outputs": (qp.scale, qp.zero_point), "margin": margin}
    ref.__doc__ = f"refquant.observers.{OBSERVERS[name][0]}.{name}: observe each batch, compute."
    return ref


for _name in OBSERVERS:
    register_op(f"observer.{_name}", "observer", ("scale", "zero_point"))(_make_ref(_name))


def _params(name: str, profile: str, bits: int, axis: int) -> dict[str, Any]:
    p: dict[str, Any] = {"quant_bits": bits, "profile": profile}
    if name in ("AbsMaxChannelWiseWeightObserver", "MSEChannelWiseWeightObserver"):
        p["axis"] = axis
    elif name == "HistObserver":
        p.update(bins_count=256, percent=0.999)
    elif name == "KLObserver":
        p.update(bins_count=256)
    elif name == "GroupWiseWeightObserver":
        p.update(group_size=64)
    return p


@register_family("observers", requires=tuple(
    f"refquant.observers.{m}" for m, _ in sorted(set(OBSERVERS.values()))))
def generate() -> Iterator[CaseDraft]:
    for oi, (name, (_mod, searching)) in enumerate(OBSERVERS.items()):
        for rules in (CANONICAL, PADDLESLIM):
            profile = rules.name
            for di, dist in enumerate(DISTRIBUTIONS):
                nb = 1 + (di + oi) % 3
                axis = (di + oi) % 2
                bits = 8 if (di + oi) % 4 else 4
                shape = (128, 4) if name == "GroupWiseWeightObserver" else (8, 32)
                seed = 1000 + 97 * oi + 13 * di
                scales = (1.0, 3.0, 0.25)
                batches = {f"batch{b}": distribution(dist, seed + b, shape, scales[b])
                           for b in range(nb)}
                if name == "KLObserver" and dist == "constant_outlier":
                    continue  # KL needs a non-degenerate histogram (PaddleSlim asserts)
                n = int(np.prod(shape))
                div = {}
                if name == "HistObserver" and rules.reproduces is not None:
                    div = {"paddleslim": _SLIM_HIST_DIV}  # where the original itself runs
                yield CaseDraft(
                    id=f"obs.{name.lower()}.{profile}.{dist}.n{nb}", op=f"observer.{name}",
                    inputs=batches, params=_params(name, profile, bits, axis),
                    rule="decision" if searching else "bits",
                    bound=decision_bound(n) if searching else None, profile=profile,
                    tags=("observer", name, profile, dist, f"batches{nb}", f"b{bits}"),
                    description=f"{name}({profile}) on {nb} batch(es) of {dist} data",
                    expected_divergence=div)
