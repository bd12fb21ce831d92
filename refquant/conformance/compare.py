"""Comparison rules: ``bits`` (bit-identical) and ``decision`` (bit-identical unless the
recorded decision margin is below the stated bound).

``bits`` compares float arrays by their bit patterns (``view(uint32)`` for float32), so
``-0.0 != 0.0`` and ``1 ulp`` is a failure; every NaN equals every other NaN (NaN payloads and
the sign of NaN are not portable across compilers and instruction sets,
``refquant/_fixtures/SPEC.md``). Integer arrays compare exactly. dtype and shape must match.
The element comparison itself is :mod:`refquant._compare`'s, shared with
:mod:`refquant.testing`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compare import Mismatch, bit_pattern, diff_mask, first_mismatch

__all__ = ["Mismatch", "first_mismatch", "bit_pattern", "compare_outputs"]


def _within_margin(expected: Any, actual: Any, margin: Any, bound: Any) -> bool:
    """True when every differing element's decision margin is below ``bound``.

    ``margin`` is one number (per-tensor decision) or a list with one entry per element of
    the output (per-channel decisions); ``None`` entries mean a certain decision.
    """
    if margin is None or bound is None:
        return False
    if not isinstance(margin, list):
        return float(margin) < float(bound)
    exp, act = np.asarray(expected), np.asarray(actual)
    if exp.shape != act.shape or exp.dtype != act.dtype or len(margin) != exp.size:
        return False
    m = np.array([np.inf if v is None else float(v) for v in margin]).reshape(exp.shape)
    return bool(np.all(m[diff_mask(exp, act)] < float(bound)))


def compare_outputs(
    expected: dict[str, np.ndarray], actual: dict[str, Any], compare: dict[str, Any]
) -> tuple[bool, Mismatch | None, str]:
    """Apply a case's comparison rule.

    Returns ``(ok, first_mismatch, note)``. For ``decision`` cases whose recorded
    ``margin`` is below ``bound`` a mismatch is accepted (``ok`` True, note explains).
    Outputs missing from ``actual`` are failures.
    """
    for name, exp in expected.items():
        if name not in actual:
            return False, Mismatch(name, "output missing from the implementation's result"), ""
        mm = first_mismatch(name, exp, actual[name])
        if mm is not None:
            if compare.get("rule") == "decision" and _within_margin(
                    exp, actual[name], compare.get("margin"), compare.get("bound")):
                return True, mm, (f"accepted: decision margin {compare.get('margin')!r} is "
                                  f"below the bound {compare.get('bound')!r}")
            return False, mm, ""
    return True, None, ""
