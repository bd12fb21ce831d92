"""float32 <-> float8 (E4M3FN, E5M2) conversions, as ONNX Runtime's CPU kernels do them.

FP8 values are carried as ``uint8`` arrays holding the bit pattern (NumPy has no FP8 dtype).

Formats (OCP FP8 / ONNX ``FLOAT8E4M3FN`` and ``FLOAT8E5M2``):

==========  ====  ========  =====  ===========  =============  ===================
format      bias  mantissa  emin   max finite   NaN codes      infinity
==========  ====  ========  =====  ===========  =============  ===================
e4m3fn      7     3 bits    -6     448 (0x7E)   0x7F, 0xFF     none
e5m2        15    2 bits    -14    57344 (0x7B) 0x7D-0x7F (+-) 0x7C / 0xFC
==========  ====  ========  =====  ===========  =============  ===================

Encoding (:func:`float32_to_fp8`) is computed here as a scaled integer rounding, not by bit
manipulation: for ``a = |v|`` (float32, widened exactly to float64) the spacing of the FP8
grid at ``a`` is ``ulp = 2^(max(floor(log2 a), emin) - mantissa_bits)``, and the rounded
magnitude is ``rint(a / ulp) * ulp`` (round half to even; both scalings are by powers of two
and therefore exact). The result is then encoded, and out-of-range results follow the ONNX
``Cast`` tables (``saturate``), with one measured exception, see below. The sign bit is
copied from the float32 input, so ``-0.0`` becomes ``0x80`` and underflow keeps its sign.

Special values (ONNX ``Cast`` spec tables, and measured on ONNX Runtime 1.32 CPU):

* NaN -> ``0x7F`` (sign bit copied from the input NaN) for both formats;
* saturate=True: ``+-inf`` and anything whose rounded magnitude exceeds the max finite value
  become ``+-max`` (448 / 57344);
* saturate=False, e5m2: ``+-inf`` and ``|v| >= 65536`` become ``+-inf`` (``0x7C``), as the
  spec says; **but** ``61440 <= |v| < 65536`` (rounds to 65536, above the max 57344) becomes
  NaN ``0x7F`` (sign copied), where the spec's table says ``+-inf``;
* saturate=False, e4m3fn: out-of-range values become NaN, **except** ``480 <= |v| < 496``,
  which become ``+-448`` where the spec's table says NaN (``[x]`` is 480 > 448).

The two saturate=False exceptions are what ONNX Runtime 1.32 (and onnx.reference 1.17, which
shares the algorithm) output, measured with ``Cast`` and ``QuantizeLinear``: their
converters truncate the mantissa first, patch the code they land on, and round afterwards.
refquant reproduces the real kernels; docs/kernels/onnx.md lists both divergences from the
spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FP8Format",
    "E4M3FN",
    "E5M2",
    "FP8_FORMATS",
    "float32_to_fp8",
    "fp8_to_float32",
]


@dataclass(frozen=True)
class FP8Format:
    """Parameters of one FP8 format (see the module docstring)."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    max_finite: float
    max_code: int  # bit pattern of +max_finite
    nan_code: int  # bit pattern written for NaN (sign bit added separately)
    inf_code: int | None  # bit pattern of +inf, None when the format has no infinity

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number (``1 - bias``)."""
        return 1 - self.bias


E4M3FN = FP8Format("float8e4m3fn", 4, 3, 7, 448.0, 0x7E, 0x7F, None)
E5M2 = FP8Format("float8e5m2", 5, 2, 15, 57344.0, 0x7B, 0x7F, 0x7C)
FP8_FORMATS: dict[str, FP8Format] = {E4M3FN.name: E4M3FN, E5M2.name: E5M2}


def _decode_table(fmt: FP8Format) -> np.ndarray:
    """float32 value of each of the 256 codes (computed from the format's definition)."""
    codes = np.arange(256, dtype=np.int64)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exp_field = (codes >> fmt.mantissa_bits) & ((1 << fmt.exponent_bits) - 1)
    man_field = codes & ((1 << fmt.mantissa_bits) - 1)
    frac = man_field / float(1 << fmt.mantissa_bits)
    normal = np.ldexp(1.0 + frac, (exp_field - fmt.bias).astype(np.int32))
    subnormal = np.ldexp(frac, fmt.emin)
    mag = np.where(exp_field == 0, subnormal, normal)
    low7 = codes & 0x7F
    if fmt.inf_code is None:
        mag = np.where(low7 == fmt.nan_code, np.nan, mag)
    else:
        mag = np.where(low7 > fmt.inf_code, np.nan, mag)
        mag = np.where(low7 == fmt.inf_code, np.inf, mag)
    return (sign * mag).astype(np.float32)


_DECODE = {name: _decode_table(fmt) for name, fmt in FP8_FORMATS.items()}


def fp8_to_float32(codes: np.ndarray, fmt: FP8Format) -> np.ndarray:
    """Exact float32 values of FP8 bit patterns (``uint8`` array). NaN codes give NaN."""
    return _DECODE[fmt.name][np.asarray(codes, dtype=np.uint8)]


def _encode_magnitude(mag: np.ndarray, fmt: FP8Format) -> np.ndarray:
    """Bit pattern (without sign) of finite, non-negative float64 values already on the grid
    and not above ``fmt.max_finite``."""
    out = np.zeros(mag.shape, dtype=np.int64)
    nz = mag > 0
    m = mag[nz]
    _, e = np.frexp(m)  # m = f * 2^e, f in [0.5, 1)
    exp = np.maximum(e - 1, fmt.emin)
    # significand scaled to an integer: normal -> 2^mb + mantissa, subnormal -> mantissa
    sig = np.ldexp(m, (fmt.mantissa_bits - exp).astype(np.int32)).astype(np.int64)
    is_normal = sig >= (1 << fmt.mantissa_bits)
    exp_field = np.where(is_normal, exp + fmt.bias, 0)
    man_field = np.where(is_normal, sig - (1 << fmt.mantissa_bits), sig)
    out[nz] = (exp_field << fmt.mantissa_bits) | man_field
    return out


def float32_to_fp8(v: np.ndarray, fmt: FP8Format, saturate: bool = True) -> np.ndarray:
    """Convert float32 ``v`` to FP8 bit patterns (``uint8``), round half to even.

    See the module docstring for the rounding formula and the special values; the result is
    the same as ONNX Runtime 1.32's ``Cast`` / ``QuantizeLinear`` to ``fmt`` on CPU.
    """
    v = np.asarray(v, dtype=np.float32)
    sign = ((v.view(np.uint32) >> np.uint32(31)).astype(np.int64)) << 7
    with np.errstate(invalid="ignore"):  # signalling NaNs warn on conversion
        a = np.abs(v).astype(np.float64)
    nan = np.isnan(a)
    inf = np.isinf(a)
    finite = ~(nan | inf)
    af = np.where(finite, a, 0.0)

    _, e = np.frexp(af)
    exp = np.maximum(e - 1, fmt.emin)  # frexp(0) gives e=0, harmless: rint(0) = 0
    ulp_exp = (exp - fmt.mantissa_bits).astype(np.int32)
    rounded = np.ldexp(np.rint(np.ldexp(af, -ulp_exp)), ulp_exp)

    over = finite & (rounded > fmt.max_finite)
    in_range = np.where(over, 0.0, rounded)
    code = _encode_magnitude(in_range, fmt)

    nan_code = fmt.nan_code
    if saturate:
        overflow_code = fmt.max_code
        inf_out = fmt.max_code
    elif fmt.inf_code is None:
        overflow_code = nan_code
        inf_out = nan_code
    else:
        overflow_code = fmt.inf_code
        inf_out = fmt.inf_code
    code = np.where(over, overflow_code, code)
    # ONNX Runtime's truncate-then-round converter (see module docstring).
    if not saturate and fmt is E4M3FN:
        code = np.where(finite & (a >= 480.0) & (a < 496.0), fmt.max_code, code)
    if not saturate and fmt is E5M2:
        code = np.where(over & (a < 65536.0), nan_code, code)
    code = np.where(inf, inf_out, code)
    code = np.where(nan, nan_code, code)
    return (code | sign).astype(np.uint8)
