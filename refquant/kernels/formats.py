"""Low-bit element formats: exact float32 -> code -> float32 casts.

Codes are carried unpacked, one ``uint8`` per element, in the low bits (NumPy has no FP8 /
FP6 / FP4 / 4-bit integer dtypes). Three families:

**Minifloats** (:class:`FloatFormat`): value of a code with sign ``s``, exponent field ``e``
and mantissa field ``m`` (``M`` mantissa bits, exponent bias ``b``)::

    normal    (e > 0):  (-1)^s * 2^(e - b) * (1 + m / 2^M)
    subnormal (e = 0):  (-1)^s * 2^(1 - b) * (m / 2^M)

=================  ====  =====  ======  ===========  ===========================  ========
name               bits  E, M   bias    max finite   NaN                          infinity
=================  ====  =====  ======  ===========  ===========================  ========
``fp8_e4m3``       8     4, 3   7       240          exponent 1111, m != 0        m == 0
``fp8_e4m3fn``     8     4, 3   7       448          S.1111.111 only              none
``fp8_e4m3fnuz``   8     4, 3   8       240          0x80 only (no -0)            none
``fp8_e5m2``       8     5, 2   15      57344        exponent 11111, m != 0       m == 0
``fp8_e5m2fnuz``   8     5, 2   16      57344        0x80 only (no -0)            none
``fp6_e3m2``       6     3, 2   3       28           none                         none
``fp6_e2m3``       6     2, 3   1       7.5          none                         none
``fp4_e2m1``       4     2, 1   1       6            none                         none
=================  ====  =====  ======  ===========  ===========================  ========

Specifications: OCP 8-bit Floating Point Specification (OFP8) rev 1.0 for E4M3 (its
"E4M3" is ``fp8_e4m3fn`` here) and E5M2; the OCP Microscaling Formats (MX) v1.0 spec
section 5.3 for FP6 E3M2 / E2M3 and FP4 E2M1; ``fp8_e4m3`` (IEEE-style, with infinities)
and the ``fnuz`` variants (Graphcore / AMD: one NaN at 0x80, no negative zero, bias + 1)
as defined by ml_dtypes (jax-ml/ml_dtypes ``ml_dtypes/include/float8.h``).

Encoding (:func:`encode`) rounds to nearest, ties to even (IEEE roundTiesToEven, the only
mode the implementations checked here use for these casts: torchao, torch, ml_dtypes, ONNX
Runtime). It is computed on the float32 bit pattern: for ``|v| >= 2^(1-b)`` the pattern is
rounded at bit ``23 - M`` (add ``2^(22-M) - 1`` plus the lowest kept bit, shift right), which
rounds the mantissa and carries into the exponent; below, ``rint(|v| * 2^(M - 1 + b))`` (an
exact float32 scaling by a power of two) is the subnormal code, and its value ``2^M`` is the
code of the smallest normal number. With at most 3 mantissa bits only bits 31..16 and the OR
of bits 15..0 of the input affect the result, so the results for all 2^17 such keys are
tabulated once per format and looked up. Special values:

* ``saturate=True`` (default; OFP8 "saturating" conversion, the only one MX elements use):
  a finite value that rounds above the max finite value, and +-inf, become +-max; except
  that +-inf becomes NaN in the ``fnuz`` formats (OFP8 does not define them; this is the
  ONNX ``Cast`` table's rule for FLOAT8E4M3FNUZ / FLOAT8E5M2FNUZ).
* ``saturate=False`` (OFP8 non-saturating; FP8 only): such values become +-inf where the
  format has infinities, NaN otherwise. FP6 / FP4 have neither, so they always saturate.
* NaN becomes the format's NaN code (sign copied where the format has a signed NaN:
  ``0x7F | sign``; ``0x80`` for ``fnuz``). FP6 / FP4 have no NaN: NaN input raises
  ``ValueError`` (the MX spec leaves it implementation-defined; torchao and ml_dtypes
  return different finite codes, docs/lowbit.md).
* ``-0.0`` and negative values that round to zero keep their sign, except in ``fnuz``
  formats, which have no negative zero (0x80 is NaN) and give ``0x00``.

ONNX Runtime's FP8 converter differs from this for ``saturate=False`` in two input ranges;
:mod:`refquant.kernels._fp8` emulates it (used by :mod:`refquant.kernels.onnx`).

**Integers** (:class:`IntFormat`): ``int8``, ``uint8``, ``int4``, ``uint4``, ``int2``,
``uint2``. :func:`encode_int` rounds (``"rne"``: half to even, the ONNX QuantizeLinear
rounding; ``"half_away"``: C ``round``; ``"trunc"``: C cast) and saturates to the range.

**E8M0** (the MX scale): unsigned, exponent only, bias 127, code ``k`` is ``2^(k - 127)``,
``0xFF`` is NaN; no zero, sign or infinity (MX v1.0 section 5.4.1). Decoding ``0x00`` gives
the float32 subnormal ``2^-127`` exactly. :func:`encode_e8m0` offers the roundings the
implementations use: ``"floor"``, ``"ceil"`` (PTX ``cvt.rp.satfinite.ue8m0x2.f32``) and
``"half_up"`` (nearest in the linear domain, ties up: ml_dtypes' ``float8_e8m0fnu`` cast,
and torch's for normal inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .._validation import _describe, as_float_array, check_flag, check_name

__all__ = [
    "FloatFormat",
    "IntFormat",
    "FLOAT_FORMATS",
    "INT_FORMATS",
    "float_format",
    "int_format",
    "encode",
    "decode",
    "encode_int",
    "decode_int",
    "encode_e8m0",
    "decode_e8m0",
]

Specials = Literal["ieee", "fn", "fnuz", "none"]


@dataclass(frozen=True)
class FloatFormat:
    """A sign-exponent-mantissa format of at most 8 bits (see the module docstring).

    ``specials``: ``"ieee"`` (all-ones exponent holds inf and NaNs), ``"fn"`` (only the
    all-ones code is NaN, no inf), ``"fnuz"`` (only 0x80 is NaN, no inf, no -0), ``"none"``
    (every code is a finite number).
    """

    name: str
    ebits: int
    mbits: int
    bias: int
    specials: Specials
    max_code: int = field(init=False)  # code of +max finite (sign bit clear)
    nan_code: int | None = field(init=False)  # code written for +NaN
    inf_code: int | None = field(init=False)
    table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        m_all = (1 << self.mbits) - 1
        top = ((1 << self.ebits) - 1) << self.mbits  # exponent field all ones
        nan: int | None
        inf: int | None
        if self.specials == "ieee":
            max_code, nan, inf = (top - (1 << self.mbits)) | m_all, top | m_all, top
        elif self.specials == "fn":
            max_code, nan, inf = top | (m_all - 1), top | m_all, None
        elif self.specials == "fnuz":
            max_code, nan, inf = top | m_all, 1 << (self.ebits + self.mbits), None
        else:
            max_code, nan, inf = top | m_all, None, None
        object.__setattr__(self, "max_code", max_code)
        object.__setattr__(self, "nan_code", nan)
        object.__setattr__(self, "inf_code", inf)
        object.__setattr__(self, "table", self._build_table())

    @property
    def nbits(self) -> int:
        """Bits per code (sign + exponent + mantissa)."""
        return 1 + self.ebits + self.mbits

    @property
    def sign_bit(self) -> int:
        return 1 << (self.ebits + self.mbits)

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number, ``1 - bias``."""
        return 1 - self.bias

    @property
    def max_finite(self) -> float:
        return float(self.table[self.max_code])

    @property
    def emax(self) -> int:
        """Exponent of the largest normal number (the MX spec's ``emax_elem``)."""
        return (self.max_code >> self.mbits) - self.bias

    def _build_table(self) -> np.ndarray:
        codes = np.arange(1 << self.nbits, dtype=np.int64)
        sign = np.where(codes & self.sign_bit, -1.0, 1.0)
        e = (codes >> self.mbits) & ((1 << self.ebits) - 1)
        m = codes & ((1 << self.mbits) - 1)
        frac = m / float(1 << self.mbits)
        mag = np.where(e == 0, np.ldexp(frac, self.emin),
                       np.ldexp(1.0 + frac, (e - self.bias).astype(np.int32)))
        low = codes & (self.sign_bit - 1)
        if self.specials == "ieee":
            e_all = (1 << self.ebits) - 1
            mag = np.where((e == e_all) & (m != 0), np.nan, np.where(e == e_all, np.inf, mag))
        elif self.specials == "fn":
            mag = np.where(low == self.nan_code, np.nan, mag)
        out = (sign * mag).astype(np.float32)
        # NaN codes decode to sign | exponent all-ones | quiet bit | the code's mantissa at
        # the top of float32's (torch's conversions give these bits); fnuz's 0x80 to +NaN
        nan_bits = ((codes & self.sign_bit) << (31 - self.ebits - self.mbits)) | 0x7FC00000 | (
            m << (23 - self.mbits))
        out = np.where(np.isnan(out), nan_bits.astype(np.uint32).view(np.float32), out)
        if self.specials == "fnuz":
            out[self.sign_bit] = np.uint32(0x7FC00000).view(np.float32)
        out.setflags(write=False)
        return out


@dataclass(frozen=True)
class IntFormat:
    """A two's complement (``signed``) or unsigned integer format of ``bits`` bits."""

    name: str
    bits: int
    signed: bool

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


FLOAT_FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("fp8_e4m3", 4, 3, 7, "ieee"),
        FloatFormat("fp8_e4m3fn", 4, 3, 7, "fn"),
        FloatFormat("fp8_e4m3fnuz", 4, 3, 8, "fnuz"),
        FloatFormat("fp8_e5m2", 5, 2, 15, "ieee"),
        FloatFormat("fp8_e5m2fnuz", 5, 2, 16, "fnuz"),
        FloatFormat("fp6_e3m2", 3, 2, 3, "none"),
        FloatFormat("fp6_e2m3", 2, 3, 1, "none"),
        FloatFormat("fp4_e2m1", 2, 1, 1, "none"),
    )
}

INT_FORMATS: dict[str, IntFormat] = {
    f.name: f
    for f in (
        IntFormat("int8", 8, True),
        IntFormat("uint8", 8, False),
        IntFormat("int4", 4, True),
        IntFormat("uint4", 4, False),
        IntFormat("int2", 2, True),
        IntFormat("uint2", 2, False),
    )
}


def float_format(fmt: Any, name: str = "fmt") -> FloatFormat:
    """A :class:`FloatFormat` from itself or its name (``ValueError`` naming ``name``)."""
    if isinstance(fmt, FloatFormat):
        return fmt
    if not isinstance(fmt, str):
        raise TypeError(f"{name} must be one of {tuple(FLOAT_FORMATS)}, got {_describe(fmt)}")
    return FLOAT_FORMATS[check_name(fmt, name, tuple(FLOAT_FORMATS))]


def int_format(fmt: Any, name: str = "fmt") -> IntFormat:
    """An :class:`IntFormat` from itself or its name (``ValueError`` naming ``name``)."""
    if isinstance(fmt, IntFormat):
        return fmt
    if not isinstance(fmt, str):
        raise TypeError(f"{name} must be one of {tuple(INT_FORMATS)}, got {_describe(fmt)}")
    return INT_FORMATS[check_name(fmt, name, tuple(INT_FORMATS))]


def _magnitude_codes(mag: np.ndarray, f: FloatFormat) -> np.ndarray:
    """RNE code (int32, sign excluded, may exceed ``max_code``) of non-negative float32
    magnitudes given as their int32 bit patterns. For NaN patterns this is the same integer
    arithmetic torchao applies to them (used by :mod:`refquant.kernels.mx`)."""
    shift = 23 - f.mbits
    lsb = (mag >> shift) & 1
    normal = ((mag + ((1 << (shift - 1)) - 1) + lsb) >> shift) - ((127 - f.bias) << f.mbits)
    small = mag < ((127 + f.emin) << 23)  # below the smallest normal number
    if small.any():
        magf = np.where(small, mag, 0).view(np.float32)
        sub = np.rint(magf * np.float32(2.0 ** (f.mbits - f.emin))).astype(np.int32)
        normal = np.where(small, sub, normal)
    return normal


#: code written into a lookup table for NaN inputs of a format without NaN (never a code)
_NAN_SENTINEL = 0xFF

NanMode = Literal["code", "torchao", "error"]


def _encode_bits(bits: np.ndarray, f: FloatFormat, saturate: bool, nan_mode: NanMode
                 ) -> np.ndarray:
    """Codes of float32 bit patterns (int32): the definition in the module docstring.

    ``nan_mode``: ``"code"`` writes the format's NaN code, ``"torchao"`` torchao's integer
    arithmetic on the pattern (low 8 bits, sign added), ``"error"`` the sentinel 0xFF.
    """
    mag = bits & np.int32(0x7FFFFFFF)
    negative = bits < 0
    nan = mag > 0x7F800000
    inf = mag == 0x7F800000
    code = _magnitude_codes(np.where(nan | inf, 0, mag), f)
    if f.specials == "fnuz":  # +-inf -> NaN in both modes (the ONNX Cast tables)
        nan, inf = nan | inf, inf & False
    over = (code > f.max_code) | inf
    if saturate:
        code = np.where(over, f.max_code, code)
    else:
        overflow = f.inf_code if f.inf_code is not None else f.nan_code
        assert overflow is not None
        code = np.where(over, overflow, code)
    if f.specials == "fnuz":
        # no -0; the single NaN is 0x80 whatever the sign
        negative = negative & (code != 0)
    code = code | np.where(negative, f.sign_bit, 0)
    if nan_mode == "code":
        assert f.nan_code is not None
        code = np.where(nan, f.nan_code | np.where(
            bits < 0, 0 if f.specials == "fnuz" else f.sign_bit, 0), code)
    elif nan_mode == "torchao":
        raw = (_magnitude_codes(mag, f) & 0xFF) | np.where(bits < 0, f.sign_bit, 0)
        code = np.where(nan, raw, code)
    else:
        code = np.where(nan, _NAN_SENTINEL, code)
    return code.astype(np.uint8)


_LUTS: dict[tuple[str, bool, str], np.ndarray] = {}


def _lut(f: FloatFormat, saturate: bool, nan_mode: NanMode) -> np.ndarray:
    """Codes for every 17-bit index ``(bits >> 15) | sticky`` (see :func:`_lookup`).

    Every format here has at most 3 mantissa bits, so a float32 pattern rounds at bit 19 or
    higher and only the OR of bits 15..0 (the sticky bit) matters below bit 16; the pattern
    ``index << 15`` stands for all patterns with that index and is encoded exactly.
    """
    key = (f.name, saturate, nan_mode)
    table = _LUTS.get(key)
    if table is None:
        reps = (np.arange(1 << 17, dtype=np.uint32) << np.uint32(15)).view(np.int32)
        table = _encode_bits(reps, f, saturate, nan_mode)
        table.setflags(write=False)
        _LUTS[key] = table
    return table


def _lookup(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[(bits >> 15) | (bits & 0x7FFF != 0)]`` for float32 ``x`` (any shape)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    idx = bits & np.uint32(0x7FFF)
    idx += np.uint32(0x7FFF)  # bit 15 set iff a low bit is
    idx |= bits
    idx >>= np.uint32(15)
    return table[idx]


def encode(x: Any, fmt: Any, *, saturate: bool = True) -> np.ndarray:
    """Codes (``uint8``, unpacked) of float32 ``x`` in the minifloat ``fmt``, round half to
    even; special values as in the module docstring.

    ``fmt``: a :class:`FloatFormat` or one of :data:`FLOAT_FORMATS`' names.
    """
    f = float_format(fmt)
    sat = check_flag(saturate, "saturate")
    if not sat and f.specials == "none":
        raise ValueError(f"saturate=False needs a format with inf or NaN; {f.name} has "
                         "neither (conversions to it always saturate)")
    v = as_float_array(x, "x", allow_empty=True, dtypes=(np.float32,))
    nan_mode: NanMode = "error" if f.nan_code is None else "code"
    codes = _lookup(v, _lut(f, sat, nan_mode))
    if nan_mode == "error" and codes.size and codes.max() == _NAN_SENTINEL:
        i = int(np.flatnonzero(codes.ravel() == _NAN_SENTINEL)[0])
        raise ValueError(f"x holds NaN at flat index {i}; {f.name} has no NaN encoding")
    return codes


def _as_codes(codes: Any, nbits: int, name: str) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be an integer array of codes, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= (1 << nbits)):
        bad = (arr < 0) | (arr >= (1 << nbits))
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name} must hold {nbits}-bit codes in [0, {(1 << nbits) - 1}], got "
                         f"{arr.ravel()[i].item()!r} at flat index {i}")
    return arr


def decode(codes: Any, fmt: Any) -> np.ndarray:
    """Exact float32 values of minifloat ``codes`` (integers in ``[0, 2^nbits)``); infinity
    codes give +-inf, NaN codes a quiet NaN with the code's sign and mantissa bits on top of
    float32's (``0x7F`` of ``fp8_e4m3fn`` gives ``0x7FF00000``, as torch's cast does;
    ``fnuz``'s NaN gives ``0x7FC00000``)."""
    f = float_format(fmt)
    arr = _as_codes(codes, f.nbits, "codes")
    return f.table[arr.astype(np.intp, copy=False)]


IntRounding = Literal["rne", "half_away", "trunc"]
IntOverflow = Literal["saturate", "wrap"]


def encode_int(x: Any, fmt: Any, *, rounding: IntRounding = "rne",
               overflow: IntOverflow = "saturate") -> np.ndarray:
    """Integer codes of float32 ``x`` in ``fmt``: round, then bring into ``[qmin, qmax]``.

    Returns ``int8`` for signed formats and ``uint8`` for unsigned ones (the values; for a
    4- or 2-bit format, ``code & (2^bits - 1)`` is the two's complement bit pattern).
    ``rounding``: ``"rne"`` (ties to even), ``"half_away"`` (ties away from zero, computed
    exactly), ``"trunc"`` (towards zero). ``overflow``: ``"saturate"`` (clamp; +-inf
    saturate) or ``"wrap"`` (keep the low ``bits`` bits of the rounded value as a two's
    complement number; values outside the int32 range and +-inf give 0, the low bits of
    x86's integer-indefinite 0x80000000). ONNX Runtime 1.32's CPU ``Cast`` from float to
    INT4 / UINT4 / INT2 / UINT2 is ``rounding="half_away", overflow="wrap"`` (measured; the
    ONNX spec leaves float-to-integer casts out of range undefined). NaN raises
    ``ValueError``.
    """
    f = int_format(fmt)
    check_name(rounding, "rounding", ("rne", "half_away", "trunc"))
    check_name(overflow, "overflow", ("saturate", "wrap"))
    v = as_float_array(x, "x", allow_empty=True, dtypes=(np.float32,))
    if v.size and np.isnan(v).any():
        i = int(np.flatnonzero(np.isnan(v).ravel())[0])
        raise ValueError(f"x holds NaN at flat index {i}; {f.name} has no NaN encoding")
    if rounding == "rne":
        r = np.rint(v)
    elif rounding == "trunc":
        r = np.trunc(v)
    else:
        t = np.trunc(v)
        with np.errstate(invalid="ignore"):
            r = np.where(np.abs(v - t) >= 0.5, t + np.sign(v), t)
    if overflow == "saturate":
        q = np.clip(r, f.qmin, f.qmax)
    else:
        with np.errstate(invalid="ignore"):
            r = np.where(np.abs(r) < 2.0**31, r, -(2.0**31))
        low = r.astype(np.int64) & ((1 << f.bits) - 1)
        q = np.where(f.signed & (low >= (1 << (f.bits - 1))), low - (1 << f.bits), low)
    return q.astype(np.int8 if f.signed else np.uint8)


def decode_int(codes: Any, fmt: Any) -> np.ndarray:
    """float32 values of integer codes, given as values in ``[qmin, qmax]`` (any integer
    dtype) or, for the 4- and 2-bit formats, as unsigned bit patterns in ``[0, 2^bits)``."""
    f = int_format(fmt)
    arr = np.asarray(codes)
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"codes must be an integer array, got dtype {arr.dtype}")
    a = arr.astype(np.int64)
    if f.signed and f.bits < 8 and arr.dtype.kind == "u":
        a = np.where(a >= (1 << (f.bits - 1)), a - (1 << f.bits), a)
        a = np.where((arr >= (1 << f.bits)), f.qmax + 1, a)  # out of range, caught below
    bad = (a < f.qmin) | (a > f.qmax)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"codes must be {f.name} values in [{f.qmin}, {f.qmax}], got "
                         f"{arr.ravel()[i].item()!r} at flat index {i}")
    return a.astype(np.float32)


E8M0Rounding = Literal["floor", "ceil", "half_up"]
E8M0_NAN = 0xFF
E8M0_BIAS = 127


def encode_e8m0(x: Any, *, rounding: E8M0Rounding = "half_up") -> np.ndarray:
    """E8M0 codes (``uint8``) of positive float32 ``x``: ``2^(code - 127)`` rounded from x.

    ``rounding``: ``"floor"`` (largest power of two <= x), ``"ceil"`` (smallest >= x) or
    ``"half_up"`` (the nearer of the two in value, ties to the larger). Results below
    ``2^-127`` become ``0x00`` (2^-127); results above ``2^127``, +inf and NaN become NaN
    ``0xFF``. Zero and negative inputs have no E8M0 encoding and raise ``ValueError``.
    """
    check_name(rounding, "rounding", ("floor", "ceil", "half_up"))
    v = as_float_array(x, "x", allow_empty=True, dtypes=(np.float32,))
    with np.errstate(invalid="ignore"):
        bad = v <= 0
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"x must be > 0 (E8M0 has no zero or sign), got "
                         f"{v.ravel()[i].item()!r} at flat index {i}")
    a = np.ascontiguousarray(v).astype(np.float64)  # exact
    nan = ~np.isfinite(a)
    fr, e = np.frexp(np.where(nan, 1.0, a))  # a = fr * 2^e, fr in [0.5, 1)
    k = (e - 1).astype(np.int64)  # floor(log2 a)
    exact = fr == 0.5
    if rounding == "ceil":
        k = k + ~exact
    elif rounding == "half_up":
        k = k + (fr >= 0.75)
    code = np.clip(k + E8M0_BIAS, 0, 256)
    code = np.where(nan | (code > 254), E8M0_NAN, code)
    return code.astype(np.uint8)


def decode_e8m0(codes: Any) -> np.ndarray:
    """float32 ``2^(code - 127)`` (``0x00`` gives the subnormal 2^-127), NaN for ``0xFF``."""
    arr = _as_codes(codes, 8, "codes").astype(np.int32)
    out = np.ldexp(np.float32(1.0), np.minimum(arr, 254) - E8M0_BIAS).astype(np.float32)
    return np.where(arr == E8M0_NAN, np.float32(np.nan), out).astype(np.float32)
