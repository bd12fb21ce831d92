"""The deviation catalogue: the semantic axes of a per-tensor quantize, dequantize and
fake-quant kernel, each with its variants, and one executable emulation per combination.

A *variant* is a mapping ``{axis: choice}``; :func:`emulate` runs it. Per element, with
``x`` float32, ``s`` the float32 scale, ``z`` the zero point (an integer; a non-integer
float32 one only in the ``float`` cases of fake_quant, rounded half to even first by every
zero-point variant except ``float``) and ``[qmin, qmax]`` the code range the kernel is
given, quantize is::

    s' = P(s)                      # scale_precision: fp32 | fp16 | bf16 (RNE)
    x, s' = D(x), D(s')            # subnormal: keep | ftz (flush subnormals to zero, DAZ)
    [lo, hi] = C(qmin, qmax)       # clamp_range: full | narrow [qmin+1, qmax] |
                                   #   reduce_range [floor(qmin/2), floor(qmax/2)]
    x = clip(x, fl(s'*(lo-z)), fl(s'*(hi-z)))   # only with clamp_order = before
    v = A(x, s')                   # scale: div fl32(x/s) | div64 x/s in float64 |
                                   #   recip32 fl32(x*fl32(1/s)) | recip64 x*(1/s) in float64
                                   #   | paddle fl32(fl32(qmax*inv(fl32(qmax*s)))*x)
                                   #   | fma fl32(x*fl32(1/s) + z), one rounding
    v = fl(v + z)                  # zero_point = before (fma includes it); = float: the
                                   #   same with a non-integer float32 z (fake_quant only)
    r = R(v)                       # rounding: rne | half_away | half_up | half_toward_zero
                                   #   | trunc | floor_half (floor(fl(v + 0.5)))
    r = r + z                      # zero_point = after (exact integer addition)
    q = O(r, lo, hi)               # overflow: saturate clip(r, lo, hi) | wrap (two's
                                   #   complement to the code width, no clip) | x86_int32
                                   #   (|R(v)| >= 2^31 or inf -> INT32_MIN before z is added,
                                   #   int32 wrap of the sum, then clip; onnx.reference)
                                   #   | x86_int64 (R(v) + z out of int64 or inf ->
                                   #   INT64_MIN, then clip; torch's per-channel fake-quant)
    q = N(...)  where x or v is NaN  # nan: qmin | zero | zp | qmax | propagate (NaN code)
                                   #   | indefinite (INT32_MIN + z in int32, then clip)

Dequantize: ``dequant_order`` ``sub_first`` ``fl32((q - z) * s')`` (the difference exact,
one rounding; with an integer ``z`` the same as ``fl32(float32(q - z) * s')``), ``distribute``
``fl32(fl32(q*s') - fl32(z*s'))``, ``fma`` ``fl32(q*s' - fl32(z*s'))`` with one rounding;
``scale_precision`` as above. Fake-quant is quantize then dequantize.

The emulations are composed from the kernels: rounding from
:mod:`refquant.kernels._rounding`, the FTZ flush and Paddle's guarded reciprocal from
:mod:`refquant.kernels.paddle`, the fused multiply-add and the bfloat16 rounding from
:mod:`refquant.kernels.torch`. ``tests/test_diagnose.py`` checks each named reference
(``REFERENCES``) against the kernel it names, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kernels import paddle as _pk
from ..kernels import torch as _tk
from ..kernels._rounding import round_half_away, round_half_even

__all__ = ["AXES", "FAMILIES", "BASE", "REFERENCES", "Family", "emulate", "is_valid",
           "variant_of", "single_deviations", "describe"]

#: axis -> (choices, one-line meaning of each)
AXES: dict[str, dict[str, str]] = {
    "rounding": {
        "rne": "round half to even",
        "half_away": "round half away from zero",
        "half_up": "round half up (toward +inf), exactly",
        "half_toward_zero": "round half toward zero",
        "trunc": "truncation toward zero",
        "floor_half": "floor(fl(v + 0.5)), the float addition rounds first",
    },
    "scale": {
        "div": "x / s in float32",
        "div64": "x / s in float64, rounded once to an integer",
        "recip32": "x * fl32(1/s) in float32",
        "recip64": "x * (1/s) with the reciprocal and the product in float64",
        "paddle": "fl32(qmax * inv(fl32(qmax*s))) * x, as Paddle's quantize_linear",
        "fma": "fma(x, fl32(1/s), z): the zero point fused into the multiply",
    },
    "zero_point": {
        "after": "integer zero point added after rounding",
        "before": "zero point added in float before rounding",
        "float": "float zero point, not rounded to an integer, added in float before "
                 "rounding (fake_quant only)",
    },
    "scale_precision": {
        "fp32": "scale used as float32",
        "fp16": "scale rounded to float16 first",
        "bf16": "scale rounded to bfloat16 first",
    },
    "clamp_range": {
        "full": "[qmin, qmax]",
        "narrow": "[qmin + 1, qmax] (symmetric for signed codes)",
        "reduce_range": "[floor(qmin/2), floor(qmax/2)] (7-bit, reduce_range)",
    },
    "clamp_order": {
        "after": "clip the integer result",
        "before": "clip x to [fl(s*(lo-z)), fl(s*(hi-z))] before scaling (observable only "
                  "with directed rounding)",
    },
    "nan": {
        "qmin": "NaN -> lowest code",
        "zero": "NaN -> code 0",
        "zp": "NaN -> the zero point",
        "qmax": "NaN -> highest code",
        "propagate": "NaN stays NaN (float codes)",
        "indefinite": "NaN -> INT32_MIN (x86), plus the zero point with int32 wrap, then clip",
    },
    "overflow": {
        "saturate": "clip to the range",
        "wrap": "two's-complement wrap to the code width, no clip",
        "x86_int32": "float -> int32 conversion first (out of range -> INT32_MIN), then clip",
        "x86_int64": "float -> int64 conversion first (out of range, +-inf -> INT64_MIN), "
                     "then clip",
    },
    "subnormal": {
        "keep": "subnormal x and scale used as they are",
        "ftz": "subnormal x and scale read as zero (FTZ/DAZ)",
    },
    "dequant_order": {
        "sub_first": "fl32((q - z) * s), q - z exact",
        "distribute": "fl32(fl32(q*s) - fl32(z*s))",
        "fma": "fma(q, s, -fl32(z*s)), one rounding",
    },
}


@dataclass(frozen=True)
class Family:
    """A kernel family: the axes it has and the call signature of a kernel of it."""

    name: str
    axes: tuple[str, ...]
    signature: str
    op: str
    #: axis -> choices of AXES[axis] the family does not have
    excluded: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def choices(self, axis: str) -> tuple[str, ...]:
        """The variants of ``axis`` in this family."""
        drop = dict(self.excluded).get(axis, ())
        return tuple(c for c in AXES[axis] if c not in drop)


_Q_AXES = ("rounding", "scale", "zero_point", "scale_precision", "clamp_range",
           "clamp_order", "nan", "overflow", "subnormal")
FAMILIES: dict[str, Family] = {
    "quantize": Family("quantize", _Q_AXES,
                       "fn(x: float32 array, scale: float32, zero_point: int, qmin: int, "
                       "qmax: int) -> integer codes", "diagnose.quantize",
                       (("zero_point", ("float",)),)),
    "dequantize": Family("dequantize", ("dequant_order", "scale_precision"),
                         "fn(q: int32 array, scale: float32, zero_point: int) -> float32",
                         "diagnose.dequantize"),
    "fake_quant": Family("fake_quant", (*_Q_AXES, "dequant_order"),
                         "fn(x: float32 array, scale: float32, zero_point: int, qmin: int, "
                         "qmax: int) -> float32", "diagnose.fake_quant"),
}

#: the ONNX QuantizeLinear / DequantizeLinear semantics every axis defaults to
_ONNX = {"rounding": "rne", "scale": "div", "zero_point": "after", "scale_precision": "fp32",
         "clamp_range": "full", "clamp_order": "after", "nan": "qmin",
         "overflow": "saturate", "subnormal": "keep", "dequant_order": "sub_first"}


def _restrict(family: str, v: Mapping[str, str]) -> dict[str, str]:
    return {a: v[a] for a in FAMILIES[family].axes}


#: the base variant of each family (the fixtures' expected output): ONNX's semantics
BASE: dict[str, dict[str, str]] = {f: _restrict(f, _ONNX) for f in FAMILIES}

#: named references: family -> name -> (variant, the kernel it emulates)
REFERENCES: dict[str, dict[str, tuple[dict[str, str], str]]] = {
    "quantize": {
        "onnx": (BASE["quantize"], "ONNX QuantizeLinear (refquant.kernels.onnx)"),
        "torch": (_restrict("quantize", {**_ONNX, "scale": "fma", "zero_point": "before",
                                         "nan": "qmax"}),
                  "torch.quantize_per_tensor, CPU FBGEMM (refquant.kernels.torch)"),
        "paddle": (_restrict("quantize", {**_ONNX, "scale": "paddle", "nan": "propagate"}),
                   "Paddle quantize_linear round_type 0 (refquant.kernels.paddle)"),
    },
    "dequantize": {
        "onnx": (BASE["dequantize"], "ONNX DequantizeLinear / torch.dequantize"),
    },
    "fake_quant": {
        "onnx": (BASE["fake_quant"], "ONNX QuantizeLinear then DequantizeLinear"),
        "torch": (_restrict("fake_quant", {**_ONNX, "scale": "recip32"}),
                  "torch.fake_quantize_per_tensor_affine (refquant.kernels.torch)"),
    },
}


def is_valid(variant: Mapping[str, str]) -> bool:
    """False for combinations the catalogue does not define: ``fma`` needs the zero point
    before rounding, and ``wrap`` has no clip so only the ``full`` range."""
    if variant.get("scale") == "fma" and variant.get("zero_point") == "after":
        return False
    if variant.get("overflow") == "wrap" and variant.get("clamp_range") != "full":
        return False
    if variant.get("clamp_order") == "before" and variant.get("overflow", "saturate") != \
            "saturate":
        return False
    return True


def variant_of(family: str, **choices: str) -> dict[str, str]:
    """The family's base variant with ``choices`` changed (``ValueError`` for an unknown
    axis or choice, or an invalid combination)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    v = dict(BASE[family])
    for axis, choice in choices.items():
        if axis not in v:
            raise ValueError(f"family {family!r} has no axis {axis!r}; axes: {list(v)}")
        if choice not in FAMILIES[family].choices(axis):
            raise ValueError(f"axis {axis!r} has no variant {choice!r}; variants: "
                             f"{list(FAMILIES[family].choices(axis))}")
        v[axis] = choice
    if choices.get("scale") == "fma" and "zero_point" not in choices:
        v["zero_point"] = "before"
    if not is_valid(v):
        raise ValueError(f"invalid combination of variants: {v}")
    return v


def single_deviations(family: str) -> list[tuple[str, str, dict[str, str]]]:
    """``(axis, choice, variant)`` for every catalogued choice of every axis of ``family``,
    the others at the base (``fma`` comes with the zero point before rounding, and
    ``clamp_order`` with truncation, where the clip order is observable)."""
    out = []
    for axis in FAMILIES[family].axes:
        for choice in FAMILIES[family].choices(axis):
            extra = {"rounding": "trunc"} if axis == "clamp_order" else {}
            out.append((axis, choice, variant_of(family, **{axis: choice, **extra})))
    return out


def describe(axis: str, choice: str) -> str:
    return AXES[axis][choice]


# -- emulation ---------------------------------------------------------------------------

_F32 = np.float32
_TWO31 = 2.0 ** 31


def _precision(s: np.ndarray, mode: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        if mode == "fp16":
            return s.astype(np.float16).astype(_F32)
        if mode == "bf16":
            return _tk._round_bfloat16(s)
    return s


def _range(qmin: np.ndarray, qmax: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    if mode == "narrow":
        return qmin + 1, qmax
    if mode == "reduce_range":
        return np.floor_divide(qmin, 2), np.floor_divide(qmax, 2)
    return qmin, qmax


def _round(v: np.ndarray, mode: str) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        if mode == "rne":
            return round_half_even(v)
        if mode == "half_away":
            return round_half_away(v)
        if mode == "trunc":
            return np.trunc(v)
        if mode == "floor_half":
            return np.floor(v + v.dtype.type(0.5))
        if mode == "half_up":
            f = np.floor(v)
            return np.where(v - f >= 0.5, f + 1, f).astype(v.dtype)
        t = np.trunc(v)  # half_toward_zero
        return np.where(np.abs(v - t) > 0.5, t + np.sign(v), t).astype(v.dtype)


def _scaled(x: np.ndarray, s: np.ndarray, z: np.ndarray, qmax: np.ndarray, mode: str,
            before: bool) -> np.ndarray:
    """``v`` before rounding (float32, or float64 for the ``*64`` modes), zero point ``z``
    (float64, integral or a float32 value) included when ``before``."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if mode == "fma":
            return _tk._fma32(x, (_F32(1) / s).astype(_F32), z.astype(_F32))
        if mode == "div":
            v = np.divide(x, s, dtype=_F32)
        elif mode == "div64":
            v = x.astype(np.float64) / s.astype(np.float64)
        elif mode == "recip32":
            v = (x * (_F32(1) / s).astype(_F32)).astype(_F32)
        elif mode == "recip64":
            v = x.astype(np.float64) * (1.0 / s.astype(np.float64))
        else:  # paddle
            big = (qmax.astype(_F32) * s).astype(_F32)
            m = (qmax.astype(_F32) * _pk._inverse(big)).astype(_F32)
            v = (m * x).astype(_F32)
        if before:
            v = (v + z.astype(v.dtype)).astype(v.dtype)
    return v


def _wrap(r: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    width = hi - lo + 1
    return np.mod(r - lo, width) + lo


def _quantize(x: np.ndarray, s: np.ndarray, z: np.ndarray, qmin: np.ndarray,
              qmax: np.ndarray, v: Mapping[str, str]) -> np.ndarray:
    s = _precision(s, v["scale_precision"])
    if v["subnormal"] == "ftz":
        x, s = _pk._flush(x), _pk._flush(s)
    lo, hi = _range(qmin, qmax, v["clamp_range"])
    z = _zero_point(z, v["zero_point"])
    nan_in = np.isnan(x)
    if v["clamp_order"] == "before":
        with np.errstate(over="ignore", invalid="ignore"):
            xlo = (s * (lo - z).astype(_F32)).astype(_F32)
            xhi = (s * (hi - z).astype(_F32)).astype(_F32)
        x = np.clip(x, np.minimum(xlo, xhi), np.maximum(xlo, xhi))
    before = v["zero_point"] != "after"
    val = _scaled(x, s, z, qmax, v["scale"], before)
    r = _round(val, v["rounding"]).astype(np.float64)
    nan = nan_in | np.isnan(r)
    zadd = np.zeros_like(r) if before else z.astype(np.float64)
    with np.errstate(invalid="ignore"):
        if v["overflow"] == "x86_int32":
            big = ~np.isfinite(r) | (r >= _TWO31) | (r < -_TWO31)
            r = np.where(big, -_TWO31, r) + zadd
            r = np.where(r < -_TWO31, r + 2 * _TWO31, np.where(r >= _TWO31, r - 2 * _TWO31, r))
            q = np.clip(r, lo, hi)
        elif v["overflow"] == "x86_int64":
            t = r + zadd
            big = ~np.isfinite(t) | (t >= 2.0 ** 63) | (t < -2.0 ** 63)
            q = np.clip(np.where(big, -2.0 ** 63, t), lo, hi)
        elif v["overflow"] == "wrap":
            r = np.where(np.isfinite(r), r, -_TWO31) + zadd
            q = _wrap(r, lo, hi)
        else:
            q = np.clip(r + zadd, lo, hi)
    if v["nan"] == "indefinite":
        fill = np.clip(_wrap(-_TWO31 + zadd, np.full_like(q, -_TWO31), np.full_like(q, _TWO31 - 1)),
                       lo, hi)
    else:
        fill = {"qmin": lo, "zero": np.zeros_like(q), "zp": round_half_even(z), "qmax": hi,
                "propagate": np.full_like(q, np.nan)}[v["nan"]]
    return np.where(nan, np.broadcast_to(fill, q.shape), q).astype(np.float64)


def _zero_point(z: np.ndarray, mode: str | None) -> np.ndarray:
    """The zero point a variant adds: ``float`` keeps it; the others take integer zero
    points, so a non-integer one is rounded half to even first (as torch's learnable
    fake-quant forward does, ``nearbyint``)."""
    return z if mode == "float" else round_half_even(z)


def _dequantize(q: np.ndarray, s: np.ndarray, z: np.ndarray, v: Mapping[str, str]
                ) -> np.ndarray:
    s = _precision(s, v["scale_precision"])
    z = _zero_point(z, v.get("zero_point"))
    with np.errstate(invalid="ignore", over="ignore"):
        if v["dequant_order"] == "sub_first":  # exact q - z, one rounding of the product
            return ((q - z) * s.astype(np.float64)).astype(_F32)
        zs = (z.astype(_F32) * s).astype(_F32)
        if v["dequant_order"] == "distribute":
            return ((q.astype(_F32) * s).astype(_F32) - zs).astype(_F32)
        return _tk._fma32(q.astype(_F32), s, -zs)


def _param(a: Any, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(a, dtype=dtype), shape)


def emulate(family: str, variant: Mapping[str, str], x: Any, scale: Any, zero_point: Any,
            qmin: Any = None, qmax: Any = None) -> np.ndarray:
    """Run ``variant`` of ``family`` elementwise.

    ``x`` is float32 (int codes for ``dequantize``); ``scale``, ``zero_point``, ``qmin``,
    ``qmax`` are scalars or arrays broadcasting to ``x`` (one value per element lets many
    cases run in one call). Quantize returns float64 codes (NaN only for
    ``nan=propagate``), the others float32.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    fam = FAMILIES[family]
    missing = [a for a in fam.axes if a not in variant]
    if missing:
        raise ValueError(f"variant lacks the axes {missing} of family {family!r}")
    for axis in fam.axes:
        if variant[axis] not in fam.choices(axis):
            raise ValueError(f"variant[{axis!r}] must be one of {list(fam.choices(axis))}, "
                             f"got {variant[axis]!r}")
    if not is_valid(variant):
        raise ValueError(f"invalid combination of variants: {dict(variant)}")
    xa = np.asarray(x)
    shape = xa.shape
    s = _param(scale, _F32, shape)
    z = _param(zero_point, np.float64, shape)
    if family == "dequantize":
        return _dequantize(xa.astype(np.int64), s, z, variant)
    lo = _param(qmin, np.int64, shape)
    hi = _param(qmax, np.int64, shape)
    q = _quantize(xa.astype(_F32), s, z, lo, hi, variant)
    if family == "quantize":
        return q
    y = _dequantize(np.nan_to_num(q, nan=0).astype(np.int64), s, z, variant)
    return np.where(np.isnan(q), _F32(np.nan), y).astype(_F32)
