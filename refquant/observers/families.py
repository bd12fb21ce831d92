"""Observer families by name, for the CLI and the conformance suite.

A family is a package of observers that share one convention: PaddleSlim's
(:mod:`refquant.observers`, profiles ``canonical`` / ``paddleslim``) and the other
frameworks' bug-for-bug families (:mod:`refquant.observers.torch` and the others listed in
:data:`FAMILIES`), each imported only when asked for. An observer is named
``family.ClassName`` (``torch.HistogramObserver``); a bare ``ClassName`` is PaddleSlim's.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FAMILIES", "DEFAULT_FAMILY", "observer_classes", "resolve_observer"]

DEFAULT_FAMILY = "paddleslim"

#: family name -> the module holding its observers: its ``OBSERVERS`` dict (name -> class)
#: where it has one, else the public classes in ``__all__`` with ``observe`` and ``compute``
FAMILIES: dict[str, str] = {
    "paddleslim": "refquant.observers",
    "torch": "refquant.observers.torch",
    "onnxruntime": "refquant.observers.onnxruntime",
    "modelopt": "refquant.observers.modelopt",
    "nncf": "refquant.observers.nncf",
}


def observer_classes(family: str) -> dict[str, type]:
    """The observer classes of ``family``, by class name.

    Raises ``ValueError`` naming the known families for an unknown one, and ``ImportError``
    where the family's module is not part of this build.
    """
    if family not in FAMILIES:
        raise ValueError(f"observer family must be one of {sorted(FAMILIES)}, got {family!r}")
    module = importlib.import_module(FAMILIES[family])
    listed = getattr(module, "OBSERVERS", None)
    if isinstance(listed, dict):
        return dict(listed)
    found: dict[str, type] = {}
    for name in getattr(module, "__all__", ()):
        obj: Any = getattr(module, name, None)
        if isinstance(obj, type) and callable(getattr(obj, "observe", None)) \
                and callable(getattr(obj, "compute", None)) and not name.startswith("_"):
            found[name] = obj
    return found


def resolve_observer(spec: str) -> tuple[str, type]:
    """``"torch.HistogramObserver"`` -> ``("torch", HistogramObserver)``.

    The class name is matched case-insensitively and the suffix ``Observer`` may be left
    out (``torch.histogram``); a bare name is looked up in :data:`DEFAULT_FAMILY`.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"observer must be a name like 'HistObserver' or "
                         f"'torch.HistogramObserver', got {spec!r}")
    family, _, name = spec.rpartition(".")
    family = family or DEFAULT_FAMILY
    classes = observer_classes(family)

    def key(s: str) -> str:
        return s.lower().removesuffix("observer")

    lookup = {key(k): v for k, v in classes.items()}
    if key(name) not in lookup:
        raise ValueError(f"observer must be one of {sorted(classes)} (family {family!r}), "
                         f"got {name!r}")
    return family, lookup[key(name)]
