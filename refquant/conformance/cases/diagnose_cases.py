"""Discriminating cases of the deviation catalogue (:mod:`refquant.diagnose`).

One operation per family and axis, ``diagnose.<family>.<axis>`` (families ``quantize``,
``dequantize``, ``fake_quant``). Every operation of a family has the same inputs, params
and primary output, the family's base semantics (ONNX QuantizeLinear / DequantizeLinear,
per tensor)::

    diagnose.quantize.*:   x f32 (N,), scale f32 (), zero_point i32 (); qmin, qmax
                           (f32 with a non-integer value in ``diag.fq.zero_point.i8fzp``,
                           whose ``y`` rounds it half to even first)
                           -> q i32 = clip(rne(fl32(x/scale)) + zero_point, qmin, qmax),
                              NaN -> qmin
    diagnose.dequantize.*: q i32 (N,), scale, zero_point -> y f32 = fl32((q - zp) * scale)
    diagnose.fake_quant.*: as quantize -> y f32 = dequantize(quantize(x))

The other outputs are named after the axis's other variants, each the output of the base
with that one axis changed (:func:`refquant.diagnose.catalogue.single_deviations`):
the manifest says which variant produces which output. Quantize variants are int32, or
float64 where the variant leaves NaN (``nan=propagate``). The inputs come from
:func:`refquant.diagnose.search.discriminating_cases`: every pair of the axis's variants
differs on some element.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ...diagnose.catalogue import BASE, FAMILIES, emulate
from ...diagnose.search import discriminating_cases, with_choice
from ..registry import CaseDraft, register_family, register_op

_ABBREV = {"quantize": "q", "dequantize": "dq", "fake_quant": "fq"}
_PRIMARY = {"quantize": "q", "dequantize": "y", "fake_quant": "y"}


def _axis_base(family: str, axis: str) -> dict[str, str]:
    base = dict(BASE[family])
    if axis == "clamp_order":
        base["rounding"] = "trunc"
    return base


def _store(family: str, out: np.ndarray) -> np.ndarray:
    if family != "quantize":
        return np.asarray(out, np.float32)
    return out if np.isnan(out).any() else out.astype(np.int32)


def _run(family: str, variant: dict[str, str], inputs: dict[str, np.ndarray],
         p: dict[str, Any]) -> np.ndarray:
    data = inputs["q"] if family == "dequantize" else inputs["x"]
    return _store(family, emulate(family, variant, data, inputs["scale"],
                                  inputs["zero_point"], p.get("qmin"), p.get("qmax")))


def _reference(family: str, axis: str) -> Callable[[dict[str, np.ndarray], dict[str, Any]],
                                                    tuple[np.ndarray, ...]]:
    def ref(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple[np.ndarray, ...]:
        outs = [_run(family, BASE[family], inputs, p)]
        base = _axis_base(family, axis)
        for choice in _others(family, axis):
            v = with_choice(base, axis, choice)
            assert v is not None
            outs.append(_run(family, v, inputs, p))
        return tuple(outs)
    ref.__doc__ = (f"refquant.diagnose.catalogue.emulate, family {family}: the base and each "
                   f"variant of axis {axis}.")
    return ref


def _others(family: str, axis: str) -> list[str]:
    return [c for c in FAMILIES[family].choices(axis) if c != BASE[family][axis]]


for _fam, _spec in FAMILIES.items():
    for _axis in _spec.axes:
        register_op(f"diagnose.{_fam}.{_axis}", "kernel",
                    (_PRIMARY[_fam], *_others(_fam, _axis)))(_reference(_fam, _axis))


@register_family("diagnose", requires=("refquant.diagnose.search",))
def generate() -> Iterator[CaseDraft]:
    for family in FAMILIES:
        for dc in discriminating_cases(family):
            st = dc.setting
            inputs: dict[str, np.ndarray] = {
                ("q" if family == "dequantize" else "x"): dc.x,
                "scale": np.array(st.scale, dtype=np.float32),
                "zero_point": np.array(st.zero_point, dtype=np.int32
                                       if st.integer_zero_point else np.float32),
            }
            params: dict[str, Any] = {} if family == "dequantize" else {
                "qmin": st.qmin, "qmax": st.qmax}
            note = " (with truncation: the clip order is invisible under round-to-nearest)" \
                if dc.axis == "clamp_order" else ""
            yield CaseDraft(
                id=f"diag.{_ABBREV[family]}.{dc.axis}.{st.name}",
                op=f"diagnose.{family}.{dc.axis}",
                inputs=inputs, params=params,
                tags=("diagnose", family, dc.axis),
                description=(f"{family}, axis {dc.axis}: the outputs other than "
                             f"{_PRIMARY[family]!r} are the base with {dc.axis} set to the "
                             f"variant they are named after{note}; scale {st.scale!r}, zero "
                             f"point {st.zero_point}, codes [{st.qmin}, {st.qmax}]"),
            )
