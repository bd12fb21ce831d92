"""OCP Microscaling (MX) v1.0 block scaling: MXFP8, MXFP6, MXFP4, MXINT8.

A block of ``block_size`` consecutive elements along the last axis shares one E8M0 scale
``X = 2^(code - 127)``; element ``i`` is stored as a code ``P_i`` of the element format, and
decodes to ``X * P_i`` (float32). ``quantize`` returns ``(scale_e8m0, codes)``: ``uint8``
arrays of shape ``x.shape[:-1] + (K // block_size,)`` and ``x.shape``, codes unpacked, one
per element (:mod:`refquant.kernels.formats` defines the element codes; MXINT8 codes are
two's complement bit patterns of ``round(v / X * 64)``).

=============  ===========  ===========  ==============  ============================
``elem``       emax_elem    max_pos      mantissa bits   element format
=============  ===========  ===========  ==============  ============================
fp8_e4m3fn     8            448          3               OFP8 E4M3 (MXFP8)
fp8_e5m2       15           57344        2               OFP8 E5M2 (MXFP8)
fp6_e3m2       4            28           2               MX FP6 E3M2
fp6_e2m3       2            7.5          3               MX FP6 E2M3
fp4_e2m1       2            6            1               MX FP4 E2M1
int8           0            127/64       6               MX INT8 (1.6 fixed point)
=============  ===========  ===========  ==============  ============================

Scale computation (``scale_mode``), from the block's float32 ``amax = max |x_i|`` (NaN when
any element is NaN), as torchao 0.18 computes it (pytorch/ao
``torchao/prototype/mx_formats/mx_tensor.py: to_mx``, ``_to_mx_rceil``; the modes are its
``ScaleCalculationMode``, config.py):

* ``"floor"`` (the MX spec's, section 6.3): ``code = clamp(E(amax) - emax_elem, -127, 128)
  + 127`` where ``E(a) = ((bits(a) >> 23) & 0xFF) - 127`` is the float32 exponent field
  (``floor(log2 a)`` for normal ``a``; -127 for zero and float32 subnormals, 128 for inf).
* ``"ceil"``: as floor, plus 1 when the float32 mantissa field of ``amax`` is non-zero.
* ``"even"``: as floor on ``amax`` first rounded to ``M`` mantissa bits, ties away
  (``bits(amax) + 2^(22 - M)``, mantissa cleared; carries into the exponent).
* NaN ``amax`` gives ``0xFF`` in these three modes; elements are then divided by the
  float32 reading of the code (``inf`` for 0xFF, see below).
  Elements: ``q_i = fl32(x_i / S)`` with ``S = max(float32 with exponent field code,
  2^-126)``: code 0 (2^-127) divides by 2^-126, not 2^-127 (torchao's clamp to the smallest
  normal; dequantization multiplies by 2^-127, so such blocks decode to half their value).
* ``"rceil"`` (NVIDIA's UE8M0 recipe, cuBLAS "Computing scaling and conversion factors
  for FP8 with UE8M0 scales"): ``d = fl32(amax / max_pos)``; ``code = clamp(ceil(fl32(
  log2 d)), -127, 127) + 127`` with the float32-rounded logarithm (so a ``d`` one ulp above
  a power of two ``2^k`` keeps ``k`` unless -4 <= k <= 3: torch's CPU ``log2``, measured;
  the PTX ``cvt.rp`` rounds it up); NaN ``d`` gives 0xFF, inf gives 0xFE. Elements:
  ``q_i = fl32(x_i * R)`` with ``R = 2^(127 - code)``, except ``R = 1`` for code 0,
  ``2^-127`` for 0xFE and ``d`` (NaN) for 0xFF (TransformerEngine's reciprocal); in a
  0xFF block every ``q_i`` is that NaN (torch keeps it also where ``x_i`` is a NaN of the
  other sign).

Then each ``q_i`` is cast to the element format, round half to even, saturating
(:func:`refquant.kernels.formats.encode`; torchao clamps FP8 values, and every value in
``rceil``, to ``+-max_pos`` before its cast, which gives the same codes), FP8 keeping NaN.
INT8 elements are ``clamp(rint(q_i * 64), -127, 127)`` (symmetric, as microsoft/microxcaling
``mx/formats.py`` sets MXINT8's max to 127/64; torchao 0.18 has no MXINT8, so INT8 follows
the spec with round half to even; with emax 0, an inf in the block gives 0xFF under
``floor``). In a NaN-scaled block the element codes carry no value (0xFF decodes every
element to NaN); refquant reproduces torchao's (x86): FP6 / FP4 codes of NaN are torchao's
integer arithmetic on the NaN bit pattern, and inf / inf gives the x86 default NaN
(``0xFFC00000``). INT8 NaN elements give code 0.

Dequantization (torchao ``to_dtype``): ``y_i = fl32(value(P_i) * X)``, ``X`` the float32
``2^(code - 127)`` (subnormal for 0) and NaN for 0xFF; ``448 * 2^127`` overflows to inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._validation import _describe, as_float_array, check_int, check_name
from . import formats as fm

__all__ = ["ELEMENTS", "SCALE_MODES", "shared_scale", "quantize", "dequantize"]

ScaleMode = Literal["floor", "rceil", "ceil", "even"]
SCALE_MODES: tuple[ScaleMode, ...] = ("floor", "rceil", "ceil", "even")


@dataclass(frozen=True)
class _Elem:
    name: str
    fmt: fm.FloatFormat | None  # None: MXINT8
    emax: int
    max_pos: np.float32
    mbits: int

    @property
    def nbits(self) -> int:
        return self.fmt.nbits if self.fmt is not None else 8


def _float_elem(name: str) -> _Elem:
    f = fm.FLOAT_FORMATS[name]
    return _Elem(name, f, f.emax, np.float32(f.max_finite), f.mbits)


ELEMENTS: dict[str, _Elem] = {
    e.name: e
    for e in (
        _float_elem("fp8_e4m3fn"),
        _float_elem("fp8_e5m2"),
        _float_elem("fp6_e3m2"),
        _float_elem("fp6_e2m3"),
        _float_elem("fp4_e2m1"),
        _Elem("int8", None, 0, np.float32(127 / 64), 6),
    )
}

_F32_MIN_NORMAL = np.float32(2.0**-126)
_E8M0_NAN = 0xFF


def _elem(elem: Any) -> _Elem:
    if not isinstance(elem, str):
        raise TypeError(f"elem must be one of {tuple(ELEMENTS)}, got {_describe(elem)}")
    return ELEMENTS[check_name(elem, "elem", tuple(ELEMENTS))]


def _blocks(shape: tuple[int, ...], block_size: Any, name: str) -> int:
    bs = check_int(block_size, "block_size", low=1)
    if len(shape) == 0:
        raise ValueError(f"{name} must have at least 1 dimension (blocks run along the last "
                         "axis), got a scalar")
    if shape[-1] % bs:
        raise ValueError(f"block_size={bs} does not divide the last axis of {name} "
                         f"(shape {shape}, {shape[-1]} elements)")
    return bs


def _scale_floor_family(amax: np.ndarray, e: _Elem, mode: str) -> np.ndarray:
    bits = amax.view(np.int32)
    nan = np.isnan(amax)
    if mode == "even":
        rounded = (bits + np.int32(1 << (22 - e.mbits))) & np.int32(0x7F800000)
        bits = np.where(nan, bits, rounded)
    pow2 = ((bits >> 23) & 0xFF) - 127
    if mode == "ceil":
        pow2 = pow2 + ((bits & 0x7FFFFF) > 0)
    code = np.clip(pow2 - e.emax, -127, 128) + 127
    return np.where(nan, _E8M0_NAN, code).astype(np.uint8)


def _rceil(amax: np.ndarray, e: _Elem) -> tuple[np.ndarray, np.ndarray]:
    """(code, descale) for ``rceil``; see the module docstring."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = (amax / e.max_pos).astype(np.float32)
    nan, inf = np.isnan(d), np.isinf(d)
    dd = np.where(nan | inf, 1.0, d.astype(np.float64))
    with np.errstate(divide="ignore"):
        lg = np.log2(dd).astype(np.float32)  # float32-rounded logarithm; log2(0) = -inf
    code = np.clip(np.ceil(lg), -127, 127).astype(np.int32) + 127
    code = np.where(nan, _E8M0_NAN, np.where(inf, 0xFE, code))
    return code.astype(np.uint8), d


def shared_scale(amax: Any, elem: str = "fp4_e2m1", scale_mode: ScaleMode = "floor"
                 ) -> np.ndarray:
    """E8M0 scale codes (``uint8``) for float32 block abs-maxima ``amax`` (>= 0 or NaN);
    the formulas are in the module docstring."""
    e = _elem(elem)
    mode = check_name(scale_mode, "scale_mode", SCALE_MODES)
    a = as_float_array(amax, "amax", allow_empty=True, dtypes=(np.float32,))
    with np.errstate(invalid="ignore"):
        if (a < 0).any():
            i = int(np.flatnonzero((a < 0).ravel())[0])
            raise ValueError(f"amax must be >= 0 (an abs-max), got {a.ravel()[i]!r} at "
                             f"flat index {i}")
    a = np.ascontiguousarray(a)
    if mode == "rceil":
        return _rceil(a, e)[0]
    return _scale_floor_family(a, e, mode)


def _cast_elements(q: np.ndarray, e: _Elem) -> np.ndarray:
    """Element codes of already-scaled float32 values (torchao's cast for FP formats: round
    half to even, saturating; a clamp to +-max_pos before it changes nothing)."""
    if e.fmt is None:
        with np.errstate(invalid="ignore"):
            r = np.clip(np.rint(q * np.float32(64.0)), -127, 127)
        r = np.where(np.isnan(r), 0, r)
        return r.astype(np.int8).view(np.uint8)
    nan_mode: fm.NanMode = "torchao" if e.fmt.nan_code is None else "code"
    return fm._lookup(q, fm._lut(e.fmt, True, nan_mode))


def _block_amax(xb: np.ndarray) -> np.ndarray:
    """float32 ``max |x|`` over the last axis (NaN if any element is NaN), computed on the
    bit patterns: for non-negative floats the integer order is the float order, and every
    NaN pattern is above +inf's."""
    if xb.size == 0:
        return np.zeros(xb.shape[:-1], np.float32)
    mag = xb.view(np.uint32) & np.uint32(0x7FFFFFFF)
    return np.ascontiguousarray(mag.max(axis=-1)).view(np.float32)


def quantize(x: Any, elem: str = "fp4_e2m1", block_size: int = 32,
             scale_mode: ScaleMode = "floor") -> tuple[np.ndarray, np.ndarray]:
    """MX-quantize float32 ``x`` in blocks of ``block_size`` along the last axis.

    Returns ``(scale_e8m0, codes)`` (both ``uint8``; shapes ``x.shape[:-1] + (K //
    block_size,)`` and ``x.shape``). ``elem``: ``fp8_e4m3fn``, ``fp8_e5m2``, ``fp6_e3m2``,
    ``fp6_e2m3``, ``fp4_e2m1``, ``int8``; ``scale_mode``: ``floor`` (the spec's), ``rceil``,
    ``ceil``, ``even``. The float32 operations are in the module docstring; the result is
    torchao 0.18's ``to_mx`` (CPU) bit for bit for the FP elements.
    """
    e = _elem(elem)
    mode = check_name(scale_mode, "scale_mode", SCALE_MODES)
    v = as_float_array(x, "x", allow_empty=True, dtypes=(np.float32,))
    bs = _blocks(v.shape, block_size, "x")
    xb = np.ascontiguousarray(v).reshape(-1, bs)
    scale = np.empty(xb.shape[0], np.uint8)
    codes = np.empty(xb.shape, np.uint8)
    step = max(1, CHUNK_ELEMENTS // bs)  # blocks per chunk; the result does not depend on it
    for i in range(0, xb.shape[0], step):
        scale[i:i + step], codes[i:i + step] = _quantize_blocks(xb[i:i + step], e, mode)
    return scale.reshape(*v.shape[:-1], v.shape[-1] // bs), codes.reshape(v.shape)


#: elements processed per step (keeps the temporaries in cache)
CHUNK_ELEMENTS = 1 << 17


def _quantize_blocks(xb: np.ndarray, e: _Elem, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale codes, element codes) of float32 blocks ``xb`` of shape (n, block_size)."""
    amax = _block_amax(xb)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        if mode == "rceil":
            code, d = _rceil(amax, e)
            c32 = code.astype(np.int32)
            pw = np.ldexp(np.float32(1.0), 127 - c32).astype(np.float32)
            rcp = np.where(c32 == 0, np.float32(1.0), pw)
            rcp = np.where(c32 == 0xFE, np.float32(2.0**-127), rcp)
            rcp = np.where(c32 == _E8M0_NAN, d, rcp).astype(np.float32)
            q = xb * rcp[:, None]
            # NaN block: every element becomes the NaN reciprocal (torch's product of two
            # NaNs keeps the reciprocal's, measured)
            if (c32 == _E8M0_NAN).any():
                q = np.where((c32 == _E8M0_NAN)[:, None], rcp[:, None], q)
        else:
            code = _scale_floor_family(amax, e, mode)
            s = (code.astype(np.int32) << 23).view(np.float32)
            s = np.maximum(s, _F32_MIN_NORMAL)
            q = xb / s[:, None]
    return code, _cast_elements(np.ascontiguousarray(q, dtype=np.float32), e)


def _check_codes(codes: Any, name: str, nbits: int) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be an integer (uint8) array of codes, got dtype "
                        f"{arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= (1 << nbits)):
        bad = (arr < 0) | (arr >= (1 << nbits))
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name} must hold {nbits}-bit codes in [0, {(1 << nbits) - 1}], "
                         f"got {arr.ravel()[i].item()!r} at flat index {i}")
    return arr


def dequantize(scale_e8m0: Any, codes: Any, elem: str = "fp4_e2m1",
               block_size: int = 32) -> np.ndarray:
    """float32 ``value(codes) * 2^(scale_e8m0 - 127)`` per block (NaN blocks for 0xFF).

    ``scale_e8m0`` must have shape ``codes.shape[:-1] + (K // block_size,)``; MXINT8 codes
    are the ``uint8`` two's complement patterns :func:`quantize` returns (``int8`` arrays
    are accepted too).
    """
    e = _elem(elem)
    c = np.asarray(codes)
    if e.fmt is None and c.dtype == np.int8:
        c = c.view(np.uint8)
    c = _check_codes(c, "codes", e.nbits)
    bs = _blocks(c.shape, block_size, "codes")
    s = _check_codes(scale_e8m0, "scale_e8m0", 8)
    want = c.shape[:-1] + (c.shape[-1] // bs,)
    if s.shape != want:
        raise ValueError(f"scale_e8m0 must have shape {want} (codes.shape[:-1] + "
                         f"({c.shape[-1]} // block_size={bs},)), got shape {s.shape}")
    if e.fmt is None:
        vals = c.astype(np.uint8).view(np.int8).astype(np.float32) * np.float32(2.0**-6)
    else:
        vals = e.fmt.table[c.astype(np.intp)]
    x_scale = fm.decode_e8m0(s)
    vb = vals.reshape(want + (bs,))
    xs = x_scale[..., None]
    with np.errstate(over="ignore", invalid="ignore"):
        # a NaN scale's NaN wins over a NaN element's (torch's product, measured)
        y = np.where(np.isnan(xs), xs, vb * xs)
    return y.astype(np.float32, copy=False).reshape(c.shape)
