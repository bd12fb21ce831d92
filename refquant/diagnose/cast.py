"""Diagnosis of low-bit element casts and MX block quantizers: name the rounding mode.

Family ``cast``: a kernel ``fn(x: float32 (N,)) -> float32 (N,)`` that casts ``x`` to an
element format of :mod:`refquant.kernels.formats` and back (``x.astype(fp8).astype(f32)``).
Axes and variants, for ``a = |x|`` between the neighbouring grid values ``lo <= a < hi`` of
the format (the grid extended by one step past the largest finite value ``max``, to
``max + ulp(max)``, the first value that overflows)::

    rounding    rne        nearer of lo, hi; a tie to the one with the even code
                half_away  nearer; a tie to hi
                trunc      lo (toward zero; a finite a > max gives max, as IEEE says)
    saturation  satfinite  a rounded past max, and +-inf, give +-max (OFP8 saturating)
                sat_inf    a finite a rounded past max gives +-max; +-inf stays inf
                           (NaN in a format without inf)
                inf_nan    overflow gives +-inf, NaN in a format without inf (OFP8
                           non-saturating)
    subnormal   keep       subnormal results of the format are kept
                ftz        a result below the smallest normal number becomes +-0

The sign is copied (``-0`` in formats with a negative zero); NaN gives NaN. FP6 / FP4 have
neither inf nor NaN: their probes hold no inf or NaN and the saturation axis has the one
variant ``satfinite``. Stochastic rounding is not catalogued. The grid is the decoded code
table (:attr:`refquant.kernels.formats.FloatFormat.table`); the rounding is computed by
search in that grid, a formulation independent of :func:`refquant.kernels.formats.encode`
(tests/test_diagnose.py checks that ``rne`` + ``satfinite`` / ``inf_nan`` is that encoder).

Family ``mx``: ``fn(x: float32 (32 * B,)) -> float32`` quantizes B blocks of 32 to MX
(:mod:`refquant.kernels.mx`, element ``elem``) and dequantizes them. One axis,
``scale_mode``: ``floor`` (the OCP MX v1.0 spec), ``ceil``, ``even``, ``rceil`` (torchao
0.18 ``ScaleCalculationMode``); the elements round half to even, saturating.

The probes are generated, not read from fixtures: every grid value, every midpoint and its
float32 neighbours, quarter points, values past ``max``, +-inf, NaN, +-0; for ``mx``,
blocks whose abs-max runs over mantissas and exponents. They tell every pair of variants
apart (tests/test_diagnose.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from typing import Any

import numpy as np

from ..kernels import formats as _fm
from ..kernels import mx as _mx

__all__ = ["CAST_AXES", "MX_AXES", "cast_variants", "emulate_cast", "cast_probes",
           "mx_probes", "emulate_mx", "diagnose_cast", "diagnose_mx", "format_cast_report"]

_F32 = np.float32

CAST_AXES: dict[str, dict[str, str]] = {
    "rounding": {"rne": "round to nearest, ties to even",
                 "half_away": "round to nearest, ties away from zero",
                 "trunc": "toward zero"},
    "saturation": {"satfinite": "overflow and +-inf give +-max",
                   "sat_inf": "finite overflow gives +-max, +-inf stays inf (NaN without inf)",
                   "inf_nan": "overflow gives +-inf (NaN without inf)"},
    "subnormal": {"keep": "subnormal results kept",
                  "ftz": "results below the smallest normal number flushed to +-0"},
}
MX_AXES: dict[str, dict[str, str]] = {
    "scale_mode": {"floor": "E(amax) - emax_elem (OCP MX v1.0)",
                   "ceil": "floor, plus 1 when amax is not a power of two",
                   "even": "floor of amax rounded to the element's mantissa width",
                   "rceil": "ceil(log2(amax / max_pos)) (NVIDIA UE8M0)"},
}


def _format(fmt: Any) -> _fm.FloatFormat:
    return _fm.float_format(fmt, "format")


def _has_specials(f: _fm.FloatFormat) -> bool:
    return f.specials != "none"


def cast_variants(fmt: Any) -> list[dict[str, str]]:
    """Every catalogued variant of the cast to ``fmt`` (FP6 / FP4: ``satfinite`` only)."""
    f = _format(fmt)
    sats = list(CAST_AXES["saturation"]) if _has_specials(f) else ["satfinite"]
    return [{"rounding": r, "saturation": s, "subnormal": d}
            for r, s, d in product(CAST_AXES["rounding"], sats, CAST_AXES["subnormal"])]


def _grid(f: _fm.FloatFormat) -> np.ndarray:
    """Finite non-negative values of the codes 0..max_code (ascending; index = code), then
    ``max + ulp(max)``."""
    g = f.table[: f.max_code + 1].astype(np.float64)
    return np.append(g, 2 * g[-1] - g[-2])


def emulate_cast(x: Any, fmt: Any, variant: dict[str, str]) -> np.ndarray:
    """``x`` (float32) cast to ``fmt`` with ``variant``, as float32 values."""
    f = _format(fmt)
    for axis, choices in CAST_AXES.items():
        if variant.get(axis) not in choices:
            raise ValueError(f"variant[{axis!r}] must be one of {list(choices)}, got "
                             f"{variant.get(axis)!r}")
    xa = np.asarray(x, dtype=_F32)
    g = _grid(f)
    n = g.size - 1  # index of the first overflowing value
    a = np.abs(xa.astype(np.float64))
    fin = np.isfinite(a)
    af = np.where(fin, a, 0.0)
    i = np.clip(np.searchsorted(g, af, side="right") - 1, 0, n)
    j = np.minimum(i + 1, n)
    lo, hi = g[i], g[j]
    mode = variant["rounding"]
    if mode == "trunc":
        r = np.minimum(i, n - 1)
    else:
        dlo, dhi = af - lo, hi - af
        tie_up = (j % 2 == 0) if mode == "rne" else np.ones_like(fin)
        r = np.where((dhi < dlo) | ((dhi == dlo) & tie_up & (j > i)), j, i)
        r = np.where(af >= g[n], n, r)
    over = fin & (r >= n)
    mag = g[np.minimum(r, n - 1)]
    if variant["subnormal"] == "ftz":
        mag = np.where(mag < 2.0 ** f.emin, 0.0, mag)
    inf_val = np.inf if f.specials == "ieee" else np.nan
    sat = variant["saturation"]
    mag = np.where(over, g[n - 1] if sat != "inf_nan" else inf_val, mag)
    mag = np.where(~fin, np.nan, mag)
    mag = np.where(np.isinf(a), g[n - 1] if sat == "satfinite" else inf_val, mag)
    out = np.where(np.signbit(xa), -mag, mag)
    if f.specials == "fnuz":
        out = np.where(out == 0, 0.0, out)
    return out.astype(_F32)


def cast_probes(fmt: Any) -> np.ndarray:
    """The probe vector of ``fmt`` (float32, deterministic)."""
    f = _format(fmt)
    g = _grid(f)
    lo, hi = g[:-1], g[1:]
    mid = (lo + hi) / 2
    pts = [g, mid, lo + (hi - lo) / 4, hi - (hi - lo) / 4, [2 * g[-1], 1e30, 3.4028235e38]]
    v = np.concatenate([np.asarray(p, np.float64) for p in pts]).astype(_F32)
    m32 = mid.astype(_F32)
    v = np.concatenate([v, np.nextafter(m32, _F32(np.inf)), np.nextafter(m32, _F32(0))])
    v = np.concatenate([v, -v])
    if _has_specials(f):
        v = np.concatenate([v, np.array([np.inf, -np.inf, np.nan], _F32)])
    _, first = np.unique(v.view(np.uint32), return_index=True)
    return v[np.sort(first)]


def mx_probes(elem: str) -> np.ndarray:
    """MX probe blocks (32 elements each) for element ``elem``: per block an abs-max
    ``m * 2^e`` over mantissas and exponents, and the block's other elements at fixed
    fractions of it."""
    mants = (1.0, 1.0 + 2.0 ** -10, 1.0625, 1.25, 1.5, 1.55, 1.6, 1.7, 1.75, 1.8, 1.875,
             1.9, 1.9375, 1.96875, 1.9999)
    fracs = np.array([1.0, -0.75, 0.6, 0.5, -0.4, 0.33, 0.3, 0.25, 0.2, 0.17, 0.15, 0.125,
                      0.1, -0.09, 1.2e-9, 4e-10, 0.03, 0.02, 0.0125, 0.01, -0.008, 0.005,
                      0.003, 0.001, 3e-4, 1e-4, 3e-5, 1.5e-5, 7e-6, 3.3e-6, 1e-6, 0.0])
    blocks = [(m * 2.0 ** e * fracs) for e in (-3, 0, 2, 5) for m in mants]
    del elem  # the same blocks for every element format
    return np.concatenate(blocks).astype(_F32)


def emulate_mx(x: Any, elem: str, variant: dict[str, str]) -> np.ndarray:
    """MX quantize then dequantize of ``x`` (blocks of 32) with ``variant["scale_mode"]``."""
    xb = np.asarray(x, _F32).reshape(-1, 32)
    with np.errstate(all="ignore"):
        s, c = _mx.quantize(xb, elem, 32, variant["scale_mode"])  # type: ignore[arg-type]
        return np.asarray(_mx.dequantize(s, c, elem, 32), _F32).reshape(-1)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.isnan(a) & np.isnan(b)) | (a.view(np.uint32) == b.view(np.uint32))


def _run(fn: Callable[[np.ndarray], Any], x: np.ndarray, what: str) -> np.ndarray:
    try:
        out = fn(x.copy())
    except Exception as exc:
        raise ValueError(f"{what}: the kernel raised {type(exc).__name__}: {exc}") from exc
    arr = np.asarray(out)
    if arr.shape != x.shape or arr.dtype != np.float32:
        raise ValueError(f"{what}: the kernel returned {arr.dtype} {arr.shape}, expected "
                         f"float32 {x.shape}")
    return arr


def _report(family: str, what: str, axes_doc: dict[str, dict[str, str]],
            variants: list[dict[str, str]], outs: list[np.ndarray], x: np.ndarray,
            actual: np.ndarray) -> dict[str, Any]:
    masks = [_same(o, actual) for o in outs]
    scores = [int(m.sum()) for m in masks]
    best = int(np.argmax(scores))
    explained = scores[best] == x.size
    ok = [v for v, m in zip(variants, masks, strict=True) if bool(m.all())]
    axes = {}
    for axis in axes_doc:
        cands = sorted({v[axis] for v in ok}, key=list(axes_doc[axis]).index) if ok \
            else [variants[best][axis]]
        axes[axis] = {"variant": cands[0] if len(cands) == 1 else None, "candidates": cands}
    bad = np.flatnonzero(~masks[best])
    return {"family": family, "format": what, "elements": int(x.size),
            "explained": explained, "best_variant": variants[best], "axes": axes,
            "mismatches": int(bad.size),
            "first_mismatch": None if explained else {
                "index": int(bad[0]), "input": float(x[bad[0]]),
                "best_variant_gives": float(outs[best][bad[0]]),
                "actual": float(actual[bad[0]])}}


def diagnose_cast(fn: Callable[[np.ndarray], Any], fmt: Any) -> dict[str, Any]:
    """Run ``fn`` on the probes of ``fmt`` and name, per axis of :data:`CAST_AXES`, the
    variant that explains every output (``candidates`` lists them all when several do;
    ``explained`` False when none does, with the closest and its first mismatch)."""
    f = _format(fmt)
    x = cast_probes(f)
    actual = _run(fn, x, f"cast to {f.name}")
    variants = cast_variants(f)
    outs = [emulate_cast(x, f, v) for v in variants]
    return _report("cast", f.name, CAST_AXES, variants, outs, x, actual)


def diagnose_mx(fn: Callable[[np.ndarray], Any], elem: str) -> dict[str, Any]:
    """As :func:`diagnose_cast` for an MX quantize-dequantize kernel of element ``elem``."""
    if elem not in ("fp8_e4m3fn", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "int8"):
        raise ValueError(f"elem must be an MX element format, got {elem!r}")
    x = mx_probes(elem)
    actual = _run(fn, x, f"MX {elem}")
    variants = [{"scale_mode": m} for m in MX_AXES["scale_mode"]]
    outs = [emulate_mx(x, elem, v) for v in variants]
    return _report("mx", elem, MX_AXES, variants, outs, x, actual)


def format_cast_report(report: dict[str, Any], source: str = "") -> str:
    """The report as text, one line per axis."""
    doc = CAST_AXES if report["family"] == "cast" else MX_AXES
    lines = [f"diagnose {report['family']} {report['format']} kernel {source}: "
             f"{report['elements']} probes"
             + ("" if report["explained"] else "; closest catalogued variant:")]
    for axis, info in report["axes"].items():
        what = (f"{info['variant']:<10} {doc[axis][info['variant']]}" if info["variant"]
                else f"{' | '.join(info['candidates'])}  not told apart by these probes")
        lines.append(f"  {axis:<11} {what}")
    if not report["explained"]:
        m = report["first_mismatch"]
        lines.append(f"not explained: {report['mismatches']} probes differ from the closest "
                     f"variant; first: input {m['input']!r} gives {m['actual']!r}, closest "
                     f"variant {m['best_variant_gives']!r}")
    return "\n".join(lines)


# -- installed implementations --------------------------------------------------------------

_ML = {"fp8_e4m3": "float8_e4m3", "fp8_e4m3fn": "float8_e4m3fn",
       "fp8_e4m3fnuz": "float8_e4m3fnuz", "fp8_e5m2": "float8_e5m2",
       "fp8_e5m2fnuz": "float8_e5m2fnuz", "fp6_e3m2": "float6_e3m2fn",
       "fp6_e2m3": "float6_e2m3fn", "fp4_e2m1": "float4_e2m1fn"}
_TORCH = {"fp8_e4m3fn": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2",
          "fp8_e4m3fnuz": "float8_e4m3fnuz", "fp8_e5m2fnuz": "float8_e5m2fnuz"}
_TORCHAO_ELEM = {"fp4_e2m1": "f4", "fp6_e3m2": "f6_e3m2", "fp6_e2m3": "f6_e2m3"}


def _ml_dtypes(fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    import ml_dtypes

    dt = getattr(ml_dtypes, _ML[fmt])

    def run(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(x.astype(dt).astype(_F32))
    return run


def _torch_cast(fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    dt = getattr(torch, _TORCH[fmt])
    return lambda x: torch.from_numpy(x).to(dt).float().numpy()


def _torchao_cast(fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    import logging
    import warnings

    import torch

    logging.getLogger("torchao").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.prototype.mx_formats import kernels as k
    name = _TORCHAO_ELEM[fmt]
    enc = getattr(k, f"f32_to_{name}_unpacked")
    dec = getattr(k, f"{name}_unpacked_to_f32")

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(dec(enc(torch.from_numpy(x))).numpy(), _F32)
    return run


def _torchao_mx(elem: str, mode: str) -> Callable[[np.ndarray], np.ndarray]:
    import logging
    import warnings

    import torch

    logging.getLogger("torchao").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.prototype.mx_formats import config as cfg
        from torchao.prototype.mx_formats import mx_tensor as mt
    td: Any = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2,
               "fp4_e2m1": torch.float4_e2m1fn_x2}.get(elem, elem)

    def run(x: np.ndarray) -> np.ndarray:
        xb = torch.from_numpy(x.reshape(-1, 32).copy())
        s, d = mt.to_mx(xb, td, 32, cfg.ScaleCalculationMode(mode))
        return np.asarray(mt.to_dtype(d, s, td, 32, torch.float32).numpy(), _F32).reshape(-1)
    return run


Factory = Callable[[], Callable[[np.ndarray], np.ndarray]]


def _bind(make: Callable[..., Callable[[np.ndarray], np.ndarray]], *args: str) -> Factory:
    return lambda: make(*args)


#: name -> (family, format or element, package, factory)
CAST_IMPLEMENTATIONS: dict[str, tuple[str, str, str, Factory]] = {
    **{f"ml_dtypes.{f}": ("cast", f, "ml_dtypes", _bind(_ml_dtypes, f)) for f in _ML},
    **{f"torch.{f}": ("cast", f, "torch", _bind(_torch_cast, f)) for f in _TORCH},
    **{f"torchao.{f}": ("cast", f, "torchao", _bind(_torchao_cast, f)) for f in _TORCHAO_ELEM},
    **{f"torchao.mx.{e}.{m}": ("mx", e, "torchao", _bind(_torchao_mx, e, m))
       for e in ("fp8_e4m3fn", "fp4_e2m1") for m in MX_AXES["scale_mode"]},
}


def diagnose_implementation(name: str) -> dict[str, Any]:
    """Diagnose the installed implementation ``name`` of :data:`CAST_IMPLEMENTATIONS`."""
    if name not in CAST_IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {sorted(CAST_IMPLEMENTATIONS)}, got "
                         f"{name!r}")
    family, fmt, _, factory = CAST_IMPLEMENTATIONS[name]
    fn = factory()
    return diagnose_cast(fn, fmt) if family == "cast" else diagnose_mx(fn, fmt)


def cast_table_row(name: str, report: dict[str, Any]) -> str:
    """One Markdown row of docs/kernels.md's cast table."""
    cells = [f"`{name}`", report["format"]]
    for axis in ("rounding", "saturation", "subnormal", "scale_mode"):
        info = report["axes"].get(axis)
        cells.append("-" if info is None else " / ".join(info["candidates"]))
    cells.append("explained" if report["explained"] else
                 f"not explained: {report['mismatches']} of {report['elements']} probes")
    return "| " + " | ".join(cells) + " |"
