"""The search for discriminating inputs: per axis, a few short vectors on which every pair
of that axis's variants gives a different output.

For each axis ``A`` and each setting (scale, zero point, code range) a pool of candidate
inputs is built from exactly rounded arithmetic: ties ``(k + 1/2) * s`` and integers
``k * s`` at many magnitudes with their float32 neighbours (1-3 ulps), ``0.49999997 * s``,
the clamp edges, values past them, huge values, +-inf, NaN, +-0 and subnormals (for
dequantize: every code of the range). Each requirement is a triple ``(context, a1, a2)``:
variants ``a1 != a2`` of ``A`` must differ, with the other axes at the family's base, or at
the base with one other axis changed (the *contexts*, so that a kernel deviating on two
axes is still told apart). A greedy set cover picks the pool elements that meet the most
requirements until every satisfiable one is met; the vector is padded with further pool
elements up to :data:`MAX_ELEMENTS`. Deterministic: no random numbers, the same bytes on
every platform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..kernels import paddle as _pk
from ..kernels import torch as _tk
from .catalogue import BASE, FAMILIES, emulate, is_valid

__all__ = ["Setting", "DiscriminatingCase", "settings_for", "MAX_ELEMENTS", "with_choice",
           "contexts", "discriminating_cases", "same"]

MAX_ELEMENTS = 47  # odd: a SIMD kernel also runs its scalar tail on every case
_F32 = np.float32


@dataclass(frozen=True)
class Setting:
    name: str
    scale: float
    zero_point: float  # an integer, except in the float zero-point setting
    qmin: int
    qmax: int

    @property
    def integer_zero_point(self) -> bool:
        return float(self.zero_point).is_integer()


def _searched_scale(pred: Callable[[np.float32], bool]) -> float:
    """The first ``s = fl32(0.1 * (1 + j/997))``, j = 1, 2, ..., for which ``pred(s)``."""
    for j in range(1, 10000):
        s = _F32(0.1 * (1 + j / 997))
        if pred(s):
            return float(s)
    raise RuntimeError("no scale found")  # pragma: no cover


def _paddle_differs(s: np.float32) -> bool:
    """Paddle's multiplier ``fl(127 * inv(fl(127*s)))`` is not ``fl(1/s)``."""
    big = np.array([_F32(127) * s], dtype=_F32)
    return bool(_F32(_F32(127) * _pk._inverse(big)[0]) != _F32(_F32(1) / s))


def _edge_below(s: np.float32) -> bool:
    """``fl(fl(127*s) / s) < 127``: clipping x to the scaled edge, then dividing and
    truncating, loses the top code."""
    return bool(_F32(_F32(s * _F32(127)) / s) < 127)


def _recip64_differs(s: np.float32) -> bool:
    """Some exact tie ``x/s = k + 1/2`` (|k| < 128) rounds to another integer when ``x`` is
    multiplied by the float64 reciprocal (whose product falls just inside the tie)."""
    s64 = np.float64(s)
    k = np.arange(-128, 128) + 0.5
    x = (k * s64).astype(_F32).astype(np.float64)
    exact = x / s64 == k
    return bool(np.any(exact & (np.rint(x * (1.0 / s64)) != np.rint(k))))


_DEFAULT = (
    Setting("i8", 0.1, 0, -128, 127),
    Setting("u8", 0.00214854861, 128, 0, 255),
    Setting("i8zp", 0.7 / 127, -7, -128, 127),
    Setting("i16", 0.0009765625, 3, -32768, 32767),
    Setting("i8third", 3 * 2 ** -8, 0, -128, 127),
)


def settings_for(family: str, axis: str) -> tuple[Setting, ...]:
    """The settings ``axis`` is searched over: scales with inexact reciprocals, a power of
    two, ``3 * 2^-8`` (an exact tie of ``x/s`` that ``x * (1/s)`` misses), plus per axis a
    scale found by search (Paddle's multiplier differs from ``fl(1/s)``; the clamp edge
    divides to just below the top code) or subnormal and tiny scales."""
    if axis == "subnormal":
        return (Setting("i8sub", 1e-39, 0, -128, 127), Setting("i8tiny", 3e-38, 5, -128, 127))
    if axis == "scale":
        return (*_DEFAULT, Setting("i8paddle", _searched_scale(_paddle_differs), 0, -128, 127),
                Setting("i8recip64", _searched_scale(_recip64_differs), 0, -128, 127))
    if axis == "clamp_order":
        return (*_DEFAULT, Setting("i8edge", _searched_scale(_edge_below), 0, -128, 127))
    if axis == "zero_point" and "float" in FAMILIES[family].choices(axis):
        # a non-integer zero point: the only setting that tells ``float`` from ``before``
        return (*_DEFAULT, Setting("i8fzp", 0.1, float(_F32(2.3)), -128, 127))
    return _DEFAULT


@dataclass(frozen=True)
class DiscriminatingCase:
    family: str
    axis: str
    setting: Setting
    x: np.ndarray
    #: requirements (context, a1, a2) no pool element could meet
    unmet: tuple[tuple[str, str, str], ...]


def same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise equality, every NaN equal to every NaN: float32 pairs by bit pattern
    (``-0.0 != 0.0``, as the ``bits`` rule of SPEC.md), anything else by value."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype.kind == "f" and b.dtype.kind == "f" and a.dtype == b.dtype == np.float32:
        nan = np.isnan(a) & np.isnan(b)
        return nan | (a.view(np.uint32) == b.view(np.uint32))
    with np.errstate(invalid="ignore"):
        return (a == b) | (np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64)))


def with_choice(variant: dict[str, str], axis: str, choice: str) -> dict[str, str] | None:
    """``variant`` with ``axis`` set to ``choice``; ``fma`` brings the zero point before
    rounding, ``wrap`` the full range, a clip before rounding ``saturate``. None when still
    invalid."""
    v = {**variant, axis: choice}
    if axis == "scale" and choice == "fma" and v.get("zero_point") == "after":
        v["zero_point"] = "before"
    if axis == "zero_point" and choice == "after" and v.get("scale") == "fma":
        v["scale"] = "recip32"
    if axis == "overflow" and choice == "wrap":
        v["clamp_range"] = "full"
    if axis == "clamp_range" and choice != "full" and v.get("overflow") == "wrap":
        v["overflow"] = "saturate"
    if axis == "clamp_order" and choice == "before":
        v["overflow"] = "saturate"
    if axis == "overflow" and choice != "saturate" and v.get("clamp_order") == "before":
        v["clamp_order"] = "after"
    return v if is_valid(v) else None


def _axis_base(family: str, axis: str) -> dict[str, str]:
    base = dict(BASE[family])
    if axis == "clamp_order":
        base["rounding"] = "trunc"  # clip order is invisible under round-to-nearest
    return base


def contexts(family: str, axis: str) -> list[tuple[str, dict[str, str]]]:
    """``(name, variant)``: the axis's base and the base with one other axis changed."""
    base = _axis_base(family, axis)
    out = [("base", base)]
    for other in FAMILIES[family].axes:
        if other == axis:
            continue
        for choice in FAMILIES[family].choices(other):
            if choice == base[other] or choice == "float":  # float = before for integer z
                continue
            v = with_choice(base, other, choice)
            if v is not None and v[axis] == base[axis]:
                out.append((f"{other}={choice}", v))
    return out


def _ulps(x: np.ndarray, n: int) -> np.ndarray:
    out = [x]
    up, dn = x, x
    for _ in range(n):
        up = np.nextafter(up, _F32(np.inf))
        dn = np.nextafter(dn, _F32(-np.inf))
        out += [up, dn]
    return np.concatenate(out)


def _pool(family: str, st: Setting) -> np.ndarray:
    if family == "dequantize":
        lo, hi = st.qmin, st.qmax
        codes = np.arange(lo, hi + 1) if hi - lo <= 512 else np.unique(np.concatenate([
            np.arange(lo, lo + 200), np.arange(hi - 200, hi + 1),
            np.arange(-300, 300) + st.zero_point]))
        return codes.astype(np.int32)
    s = np.float64(_F32(st.scale))
    z = int(round(st.zero_point))
    frac = st.zero_point - z  # ties of x/s + z sit at k + 1/2 - frac
    span = np.array([1, 2, 3, 5, 7, 10, 17, 31, 50, 63, 100, 126, 127, 200, 254, 1000, 4000,
                     16383, 32766], dtype=np.float64)
    ks = np.concatenate([[0], span, -span])
    if st.qmax - st.qmin <= 512:
        ks = np.arange(st.qmin - z - 2, st.qmax - z + 3, dtype=np.float64)
    ks = ks[(ks + z >= st.qmin - 2) & (ks + z <= st.qmax + 2)]
    targets = np.concatenate([ks + 0.5, ks - 0.5, ks, [0.49999997, -0.49999997, 0.25]])
    if frac:
        targets = np.concatenate([targets, ks + 0.5 - frac, ks - frac])
    with np.errstate(over="ignore", under="ignore"):
        s16 = np.float64(np.float16(s))
        sbf = np.float64(_tk._round_bfloat16(np.array([s], _F32))[0])
        near = _ulps(np.concatenate([targets * s, targets[::3] * s16, targets[::3] * sbf]
                                    ).astype(_F32), 3)
        edges = np.array([(q - z) * s for q in (st.qmin, st.qmin + 1, st.qmax, st.qmax - 1,
                                                 st.qmin // 2, st.qmax // 2,
                                                 st.qmin // 2 - 1, st.qmax // 2 + 1,
                                                 st.qmax + 3, st.qmin - 3, st.qmax + 300,
                                                 st.qmin - 300)]).astype(_F32)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3e9, -3e9, 3.4028235e38,
                        -3.4028235e38, 2 ** -149, -(2 ** -149), 3 * 2 ** -149, 2 ** -130,
                        -(2 ** -128), 1.17e-38], dtype=_F32)
    with np.errstate(over="ignore", under="ignore"):
        sub = (np.array([1.0, 3.0, 7.5, -2.5, 100.0, -127.0]) * s).astype(_F32)
    pool = np.concatenate([special, _ulps(edges, 2), near, sub]).astype(_F32)
    _, first = np.unique(pool.view(np.uint32), return_index=True)
    return pool[np.sort(first)]


def _run(family: str, v: dict[str, str], st: Setting, pool: np.ndarray) -> np.ndarray:
    return emulate(family, v, pool, _F32(st.scale), st.zero_point, st.qmin, st.qmax)


def _search(family: str, axis: str, st: Setting) -> DiscriminatingCase:
    pool = _pool(family, st)
    rows, names = [], []
    for cname, ctx in contexts(family, axis):
        outs = {}
        for choice in FAMILIES[family].choices(axis):
            if choice == "float" and st.integer_zero_point:
                continue  # the same as ``before`` for an integer zero point
            v = with_choice(ctx, axis, choice)
            if v is not None:
                outs[choice] = _run(family, v, st, pool)
        for a1, a2 in combinations(sorted(outs), 2):
            rows.append(~same(outs[a1], outs[a2]))
            names.append((cname, a1, a2))
    cover = np.array(rows)
    chosen: list[int] = []
    need: np.ndarray = np.asarray(cover.any(axis=1))
    open_ = need.copy()
    while open_.any():
        gain = cover[open_].sum(axis=0)
        best = int(np.argmax(gain))
        chosen.append(best)
        open_ &= ~cover[:, best]
    for i in range(len(pool)):
        if len(chosen) >= MAX_ELEMENTS:
            break
        if i not in chosen and i % 3 == 0:
            chosen.append(i)
    x = pool[np.array(sorted(chosen), dtype=np.int64)]
    unmet = tuple(n for n, ok in zip(names, list(need), strict=True) if not ok)
    return DiscriminatingCase(family, axis, st, x, unmet)


def discriminating_cases(family: str) -> Iterator[DiscriminatingCase]:
    """One case per axis of ``family`` and setting, in a fixed order."""
    for axis in FAMILIES[family].axes:
        for st in settings_for(family, axis):
            yield _search(family, axis, st)
