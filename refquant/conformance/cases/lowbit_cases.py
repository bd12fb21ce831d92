"""Low-bit element casts and block-scaled formats (reference: :mod:`refquant.kernels.formats`,
:mod:`refquant.kernels.mx`, :mod:`refquant.kernels.nvfp4`).

Operations (codes are ``uint8``, unpacked, one per element):

* ``lowbit.encode``: ``x`` (float32); ``fmt``, ``saturate`` -> ``codes``
* ``lowbit.decode``: ``codes``; ``fmt`` -> ``y`` (float32)
* ``lowbit.encode_int``: ``x``; ``fmt``, ``rounding``, ``overflow`` (optional, default
  ``"saturate"``) -> ``q`` (int8 / uint8 values)
* ``lowbit.encode_e8m0``: ``x`` (> 0); ``rounding`` -> ``codes``
* ``mx.quantize``: ``x``; ``elem``, ``block_size``, ``scale_mode`` -> ``scale_e8m0``, ``codes``
* ``mx.dequantize``: ``scale_e8m0``, ``codes``; ``elem``, ``block_size`` -> ``y``
* ``nvfp4.quantize``: ``x``; ``per_tensor_scale`` (float32 value or None) -> ``scale_e4m3``,
  ``codes``
* ``nvfp4.dequantize``: ``scale_e4m3``, ``codes``; ``per_tensor_scale`` -> ``y``

Adversarial inputs (:func:`element_edges`, :func:`mx_blocks`): every representable value,
every tie between neighbours and its float32 neighbours, the max finite value, the tie just
above it and beyond, subnormals and the tie below the smallest one, signed zeros, +-inf and
NaN; blocks that mix huge and tiny values, all-zero blocks, blocks whose abs-max sits at
``max_pos * 2^k`` and one ulp above (the scale-rounding boundary of every mode), blocks with
float32-subnormal abs-max (scale code 0), blocks at the float32 maximum, NaN / inf blocks.

Targets: ``reference``; a ``torchao`` target runs ``mx.*`` / ``nvfp4.*`` FP cases through
torchao 0.18 on CPU (MXINT8 is not in torchao).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import formats as fm
from ...kernels import mx, nvfp4
from ..registry import CaseDraft, register_family, register_op
from ._inputs import normal

__all__ = ["element_edges", "mx_blocks", "nvfp4_blocks"]


@register_op("lowbit.encode", "kernel", ("codes",))
def _encode(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.formats.encode."""
    return fm.encode(inputs["x"], p["fmt"], saturate=p["saturate"])


@register_op("lowbit.decode", "kernel", ("y",))
def _decode(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.formats.decode."""
    return fm.decode(inputs["codes"], p["fmt"])


@register_op("lowbit.encode_int", "kernel", ("q",))
def _encode_int(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.formats.encode_int."""
    return fm.encode_int(inputs["x"], p["fmt"], rounding=p["rounding"],
                         overflow=p.get("overflow", "saturate"))


@register_op("lowbit.encode_e8m0", "kernel", ("codes",))
def _encode_e8m0(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.formats.encode_e8m0."""
    return fm.encode_e8m0(inputs["x"], rounding=p["rounding"])


@register_op("mx.quantize", "kernel", ("scale_e8m0", "codes"))
def _mx_q(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """refquant.kernels.mx.quantize."""
    return mx.quantize(inputs["x"], p["elem"], p["block_size"], p["scale_mode"])


@register_op("mx.dequantize", "kernel", ("y",))
def _mx_dq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.mx.dequantize."""
    return mx.dequantize(inputs["scale_e8m0"], inputs["codes"], p["elem"], p["block_size"])


@register_op("nvfp4.quantize", "kernel", ("scale_e4m3", "codes"))
def _nv_q(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """refquant.kernels.nvfp4.quantize."""
    return nvfp4.quantize(inputs["x"], p["per_tensor_scale"])


@register_op("nvfp4.dequantize", "kernel", ("y",))
def _nv_dq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.nvfp4.dequantize."""
    return nvfp4.dequantize(inputs["scale_e4m3"], inputs["codes"], p["per_tensor_scale"])


def _arr(values: list[Any]) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _neighbours(v: np.ndarray) -> np.ndarray:
    """``v`` (float32, > 0) and its float32 neighbours one ulp below and above."""
    b = v.astype(np.float32).view(np.uint32)
    return np.concatenate([b - 1, b, b + 1]).view(np.float32)


def element_edges(fmt: str, *, with_specials: bool = True) -> np.ndarray:
    """Adversarial float32 inputs for the minifloat ``fmt`` (both signs, sorted by
    magnitude): see the module docstring. NaN only where ``fmt`` has a NaN code."""
    f = fm.float_format(fmt)
    t = f.table.astype(np.float64)
    mags = np.unique(np.abs(t[np.isfinite(t)]))  # 0, subnormals, normals, max
    top = mags[-1]
    step = top - mags[-2]
    ties = (mags[:-1] + mags[1:]) / 2
    extra = np.array([top + step / 2, top + step, 2 * top, mags[1] / 2, mags[1] / 4])
    pos = np.concatenate([mags[1:], ties, extra])
    vals = np.concatenate([_neighbours(pos.astype(np.float32)), _arr([0.0])])
    vals = np.unique(vals[vals >= 0])
    out = np.concatenate([vals, -vals])
    if with_specials:
        special = [np.inf, -np.inf] + ([np.nan] if f.nan_code is not None else [])
        out = np.concatenate([out, _arr(special)])
    return out.astype(np.float32)


def mx_blocks(elem: str, block_size: int = 32) -> np.ndarray:
    """Adversarial MX input, shape ``(n, block_size)`` float32 (see the module docstring)."""
    e = mx.ELEMENTS[elem]
    rows: list[np.ndarray] = []
    base = normal(7001, block_size, 1.0)

    def row(values: np.ndarray) -> None:
        r = np.resize(np.asarray(values, np.float32), block_size)
        rows.append(r)

    mp = e.max_pos
    for k in (-130, -127, -126, -100, -20, -1, 0, 1, 20, 100, 120):
        top = np.ldexp(np.float64(mp), k)
        if top >= 2.0**128:
            continue
        for a in _neighbours(_arr([top])):
            if not np.isfinite(a):
                continue
            r = base / np.abs(base).max() * a
            r[3] = -a
            row(r)
    # powers of two just around the block maximum (floor / ceil / even boundaries)
    for a in _neighbours(_arr([1.0, 1.5, 1.75, 1.875, 1.9375, 2.0 ** 64])):
        row(np.concatenate([[a], base[1:] * 0.1]))
    if e.fmt is not None:
        # every element-grid edge, in blocks led by the largest float32 below 2^(emax+1):
        # "floor" then gives X = 2^k and the edges stay ties; 2^k = 1, 2^-40, 2^40
        lim = np.float32(2.0 ** (e.emax + 1))
        lead = np.nextafter(lim, np.float32(0))
        edges = element_edges(elem, with_specials=False)
        edges = edges[np.abs(edges) < lim]
        for k in (0, -40, 40):
            sc = np.float32(2.0**k)
            for start in range(0, edges.size, block_size - 1):
                chunk = edges[start:start + block_size - 1]
                row(np.concatenate([[lead], chunk, np.zeros(block_size)]) * sc)
    row(np.zeros(block_size))
    row(np.concatenate([[-0.0], np.zeros(block_size - 1)]))
    row(np.concatenate([[3.0e38, 1e-30, -1e-45, 1.0], base[4:]]))  # huge and tiny
    row(np.concatenate([[1e-40, -2e-39, 5e-45], base[3:] * 1e-41]))  # float32 subnormals
    row(_arr([3.4028235e38, -3.4028235e38] * block_size))
    row(np.concatenate([[np.nan], base[1:]]))
    row(np.concatenate([[1.0, np.inf], base[2:]]))
    row(np.concatenate([[-np.inf, np.nan, np.inf], base[3:]]))
    return np.stack(rows).astype(np.float32)


def nvfp4_blocks() -> np.ndarray:
    """Adversarial NVFP4 input, shape ``(n, 16)`` float32: block maxima at ``6 * e4m3``
    values and their ties, below ``6 * 2^-6`` (the clamp), above ``6 * 448``, huge / tiny
    mixes, zeros, NaN and inf."""
    base = normal(7013, 16, 1.0)
    base = base / np.abs(base).max()
    e4 = element_edges("fp8_e4m3fn", with_specials=False)
    e4 = np.unique(np.abs(e4))
    amaxes = (e4[(e4 > 0) & (e4 < 600)] * np.float32(6.0)).astype(np.float32)
    rows = [base * a for a in amaxes[:: max(1, amaxes.size // 48)]]
    rows += [base * np.float32(a) for a in (1e-3, 0.09, 0.0937, 2688.0, 2689.0, 1e6, 3e38)]
    rows.append(np.resize(element_edges("fp4_e2m1", with_specials=False), 16))
    rows.append(np.zeros(16))
    rows.append(np.concatenate([[3e38, 1e-30, -1e-45], base[3:]]))
    # the NaN carries the payload torch decodes E4M3's NaN to (0x7FF00000), so that the
    # product of the two NaNs is the same whichever operand a build returns
    rows.append(np.concatenate([np.array([0x7FF00000], np.uint32).view(np.float32), base[1:]]))
    rows.append(np.concatenate([[-np.inf], base[1:]]))
    return np.stack(rows).astype(np.float32)


_FP_ELEMS = ("fp8_e4m3fn", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1")


@register_family("kernels.lowbit", requires=("refquant.kernels.mx",))
def generate() -> Iterator[CaseDraft]:
    for name, f in fm.FLOAT_FORMATS.items():
        x = element_edges(name)
        sats = (True,) if f.specials == "none" else (True, False)
        for sat in sats:
            yield CaseDraft(id=f"lowbit.encode.{name}.{'sat' if sat else 'nonsat'}",
                            op="lowbit.encode", inputs={"x": x},
                            params={"fmt": name, "saturate": sat},
                            tags=("lowbit", "element", name),
                            description="RNE; ties at every exponent, max and above, "
                                        "subnormals, specials")
        yield CaseDraft(id=f"lowbit.decode.{name}", op="lowbit.decode",
                        inputs={"codes": np.arange(1 << f.nbits, dtype=np.uint8)},
                        params={"fmt": name}, tags=("lowbit", "element", name))
    ints = np.concatenate([np.arange(-10, 10.5, 0.25), [0.49999997, -0.49999997, 1e9, -1e9,
                                                           np.inf, -np.inf]]).astype(np.float32)
    for name in fm.INT_FORMATS:
        for rounding in ("rne", "half_away", "trunc"):
            yield CaseDraft(id=f"lowbit.encode_int.{name}.{rounding}", op="lowbit.encode_int",
                            inputs={"x": ints}, params={"fmt": name, "rounding": rounding},
                            tags=("lowbit", "int", name))
        yield CaseDraft(id=f"lowbit.encode_int.{name}.half_away.wrap", op="lowbit.encode_int",
                        inputs={"x": ints},
                        params={"fmt": name, "rounding": "half_away", "overflow": "wrap"},
                        tags=("lowbit", "int", name, "onnxruntime"),
                        description="ONNX Runtime's CPU Cast to INT4 / INT2 (measured)")
    pos = _neighbours(np.ldexp(_arr([1.0, 1.5, 1.25, 1.75]), np.arange(-127, 128)[:, None]
                               ).ravel().astype(np.float32))
    pos = pos[np.isfinite(pos) & (pos > 0)]
    pos = np.concatenate([pos, _arr([1e-45, 6e-39, 3.4028235e38, np.inf, np.nan])])
    for rounding in ("floor", "ceil", "half_up"):
        yield CaseDraft(id=f"lowbit.encode_e8m0.{rounding}", op="lowbit.encode_e8m0",
                        inputs={"x": pos}, params={"rounding": rounding},
                        tags=("lowbit", "e8m0"))
    for elem in (*_FP_ELEMS, "int8"):
        x = mx_blocks(elem)
        for mode in mx.SCALE_MODES:
            yield CaseDraft(id=f"mx.quantize.{elem}.{mode}", op="mx.quantize", inputs={"x": x},
                            params={"elem": elem, "block_size": 32, "scale_mode": mode},
                            tags=("mx", elem, mode) + (("torchao",) if elem != "int8" else ()),
                            description="torchao 0.18 to_mx operation order")
            s, c = mx.quantize(x, elem, 32, mode)
            yield CaseDraft(id=f"mx.dequantize.{elem}.{mode}", op="mx.dequantize",
                            inputs={"scale_e8m0": s, "codes": c},
                            params={"elem": elem, "block_size": 32},
                            tags=("mx", elem) + (("torchao",) if elem != "int8" else ()))
    xn = nvfp4_blocks()
    for tag, pts in (("none", None), ("t0p37", 0.37), ("tiny", 1e-3)):
        t = None if pts is None else float(np.float32(pts))
        yield CaseDraft(id=f"nvfp4.quantize.{tag}", op="nvfp4.quantize", inputs={"x": xn},
                        params={"per_tensor_scale": t}, tags=("nvfp4", "torchao"),
                        description="torchao 0.18 nvfp4_quantize operation order")
        s, c = nvfp4.quantize(xn, t)
        yield CaseDraft(id=f"nvfp4.dequantize.{tag}", op="nvfp4.dequantize",
                        inputs={"scale_e4m3": s, "codes": c}, params={"per_tensor_scale": t},
                        tags=("nvfp4", "torchao"))
