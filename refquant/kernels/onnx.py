"""ONNX ``QuantizeLinear`` / ``DequantizeLinear`` (opsets 10/13/19/21), as ONNX Runtime runs them.

Matches the ONNX operator spec (onnx 1.17 schemas) and ONNX Runtime 1.32's CPU kernels
(``onnxruntime/core/providers/cpu/quantization/quantize_linear.cc``, MLAS ``quantize.cpp``),
checked bit for bit by ``tests/test_kernels_onnx.py``. Where the spec is silent, refquant
follows ONNX Runtime; where onnx.reference (``onnx/reference/ops/op_quantize_linear.py``)
disagrees with the spec, refquant follows the spec. docs/kernels/onnx.md lists every case.

Quantize, per element, with ``s`` and ``zp`` the scale and zero point that apply to it::

    v = fl32(float32(x) / float32(s))     # one IEEE float32 division (fp16 x and s are
                                          # widened exactly to float32 first)
    r = round_half_even(v)
    y = clip(r + zp, qmin, qmax)          # integer output types; NaN -> qmin
    y = fp8(v, saturate)                  # FP8 output types (see refquant.kernels._fp8)

Dequantize::

    d = int32(x) - int32(zp)              # exact integer subtraction
    y = fl32(float32(d) * float32(s))     # one float32 multiply (float32(d) rounds when |d| > 2^24)
    y = fp16(y)                           # only when the scale is float16

Granularity is chosen by the scale's shape, as in the spec: a scalar (or 1-element 1-D
array, which ONNX Runtime also treats as per-tensor) is per-tensor; a 1-D array of length
``x.shape[axis]`` is per-axis (opset >= 13); with ``block_size > 0`` (opset >= 21) the scale
has ``x``'s rank and ``x``'s shape except along ``axis``, where it has
``ceil(x.shape[axis] / block_size)`` entries (the spec's accepted ``block_size`` range
``[ceil(D/S), ceil(D/(S-1)) - 1]`` is exactly the set of ``B`` with ``ceil(D/B) == S``).

Output containers (NumPy has no 4-bit or FP8 dtypes): ``int4`` / ``uint4`` results are
``int8`` / ``uint8`` arrays holding values in ``[-8, 7]`` / ``[0, 15]``, one value per byte
(not packed); FP8 results are ``uint8`` arrays holding the bit patterns
(``refquant.kernels._fp8.fp8_to_float32`` decodes them). ``dequantize_linear`` takes the same
containers and is told their ONNX type by ``x_dtype``.

Input rules (shared with the other kernel families): an empty ``x`` gives an empty result
(both operators are elementwise); scales must be non-empty, finite and > 0. Python numbers
and lists are converted to float32 (``x``) or to ``x``'s float type (scales); a finite value
beyond that type's range raises ``ValueError`` naming the argument instead of becoming
``inf``; NumPy arrays must already have an accepted dtype (float64 arrays raise
``TypeError``), so nothing wider is narrowed silently. Big-endian arrays are read by value
(same bits as native ones). Complex, bool, object and string input raise ``TypeError``.
Caller arrays are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import _describe, check_axis, check_flag, native, to_float_dtype
from . import _fp8
from ._rounding import round_half_even

__all__ = [
    "QUANT_TYPES",
    "SUPPORTED_OPSETS",
    "quantize_linear",
    "dequantize_linear",
    "op_version",
]

SUPPORTED_OPSETS = (10, 13, 19, 21)
_MAX_OPSET = 22  # QuantizeLinear / DequantizeLinear did not change in opset 22


@dataclass(frozen=True)
class QuantType:
    """One ONNX quantized element type and how refquant stores it."""

    name: str
    onnx_code: int  # onnx.TensorProto.DataType value
    container: type  # NumPy dtype of the arrays refquant returns / accepts
    since: int  # first QuantizeLinear / DequantizeLinear version that accepts it
    qmin: int = 0
    qmax: int = 0
    fp8: _fp8.FP8Format | None = None


QUANT_TYPES: dict[str, QuantType] = {
    t.name: t
    for t in (
        QuantType("uint8", 2, np.uint8, 10, 0, 255),
        QuantType("int8", 3, np.int8, 10, -128, 127),
        QuantType("uint16", 4, np.uint16, 21, 0, 65535),
        QuantType("int16", 5, np.int16, 21, -32768, 32767),
        QuantType("uint4", 21, np.uint8, 21, 0, 15),
        QuantType("int4", 22, np.int8, 21, -8, 7),
        QuantType("float8e4m3fn", 17, np.uint8, 19, fp8=_fp8.E4M3FN),
        QuantType("float8e5m2", 19, np.uint8, 19, fp8=_fp8.E5M2),
    )
}
_BY_CODE = {t.onnx_code: t for t in QUANT_TYPES.values()}
_ALIASES = {"float8_e4m3fn": "float8e4m3fn", "float8_e5m2": "float8e5m2"}
_INT32 = QuantType("int32", 6, np.int32, 10, -(2**31), 2**31 - 1)  # dequantize input only


# -- argument handling ---------------------------------------------------------------------


def op_version(opset: Any) -> int:
    """The QuantizeLinear / DequantizeLinear version in force in a model of ``opset``.

    >>> op_version(17)
    13
    """
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an integer in [10, {_MAX_OPSET}], got {_describe(opset)}")
    if not 10 <= int(opset) <= _MAX_OPSET:
        raise ValueError(
            f"opset must be in [10, {_MAX_OPSET}] (QuantizeLinear versions 10/13/19/21), "
            f"got {int(opset)}"
        )
    return max(v for v in SUPPORTED_OPSETS if v <= int(opset))


def _check_flag(value: Any, name: str) -> bool:
    return check_flag(value, name, allow_int=True)  # ONNX attributes are 0/1 integers


def _check_block_size(block_size: Any, version: int) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"block_size must be a non-negative integer, got {_describe(block_size)}")
    if int(block_size) < 0:
        raise ValueError(f"block_size must be >= 0 (0 = not blocked), got {int(block_size)}")
    if int(block_size) and version < 21:
        raise ValueError(f"block_size={int(block_size)} needs opset >= 21, got opset {version}")
    return int(block_size)


def _lookup_type(value: Any, name: str) -> QuantType:
    """Resolve an ONNX type given as a name, a NumPy dtype or a TensorProto code."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if int(value) in _BY_CODE:
            return _BY_CODE[int(value)]
        raise ValueError(
            f"{name}={int(value)} is not a supported TensorProto type code "
            f"(supported: {sorted(_BY_CODE)})"
        )
    if isinstance(value, str):
        key = _ALIASES.get(value.lower(), value.lower())
    else:
        try:
            key = np.dtype(value).name
        except TypeError:
            raise TypeError(
                f"{name} must be a type name, NumPy dtype or TensorProto code, "
                f"got {_describe(value)}"
            ) from None
    if key not in QUANT_TYPES:
        raise ValueError(f"{name} must be one of {tuple(QUANT_TYPES)}, got {_describe(value)}")
    return QUANT_TYPES[key]


def _as_float_input(x: Any, version: int) -> np.ndarray:
    """``x`` as float32 / float16 (never copied when already one; never modified)."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"x must be a float32 or float16 array, got {_describe(x)}")
    if isinstance(x, (np.ndarray, np.generic)):
        arr = native(np.asarray(x))
        if arr.dtype == np.int32:
            raise TypeError(
                "x with dtype int32 (allowed by the spec) is not supported by refquant's "
                "QuantizeLinear (ONNX Runtime's CPU kernel does not register it either); "
                "pass float32"
            )
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
            raise TypeError(f"x must be numeric, got {_describe(x)} (dtype {arr.dtype})")
        arr = to_float_dtype(arr, np.float32, "x")  # Python numbers / lists: documented
    allowed = (np.float32,) if version < 19 else (np.float32, np.float16)
    if arr.dtype.type not in allowed:
        names = "/".join(np.dtype(t).name for t in allowed)
        raise TypeError(
            f"x must have dtype {names} for opset {version} (ONNX T1), got dtype {arr.dtype}"
        )
    return arr


def _as_scale(scale: Any, name: str, dtype: np.dtype | None, version: int) -> np.ndarray:
    """The scale as a float array of ``dtype`` (the input's; ONNX ties them from opset 19).

    Python numbers and lists are converted to ``dtype``; arrays must already have it.
    With ``dtype=None`` (dequantize) arrays may be float32 or (opset >= 19) float16.
    """
    if isinstance(scale, (str, bytes)) or scale is None:
        raise TypeError(f"{name} must be a positive float array, got {_describe(scale)}")
    if isinstance(scale, (np.ndarray, np.generic)):
        arr = native(np.asarray(scale))
    else:
        arr = np.asarray(scale)
        if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
            raise TypeError(f"{name} must be numeric, got {_describe(scale)}")
        arr = to_float_dtype(arr, dtype if dtype is not None else np.float32, name)
    allowed: tuple[type, ...]
    if dtype is not None:
        allowed = (np.float32,) if version < 19 else (dtype.type,)
    else:
        allowed = (np.float32,) if version < 19 else (np.float32, np.float16)
    if arr.dtype.type not in allowed:
        names = "/".join(np.dtype(t).name for t in allowed)
        raise TypeError(
            f"{name} must have dtype {names} for opset {version}"
            + (" (the same type as x)" if dtype is not None and version >= 19 else "")
            + f", got dtype {arr.dtype}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"{name} must be finite and > 0, got {arr.ravel()[i]!r} at flat index {i} "
            "(ONNX Runtime would compute x / 0 = +-inf and saturate; refquant rejects it)"
        )
    return arr


@dataclass(frozen=True)
class _Layout:
    kind: str  # "tensor", "axis" or "block"
    axis: int
    block_size: int


def _layout(
    x_shape: tuple[int, ...], scale: np.ndarray, axis: Any, block_size: int, version: int,
    scale_name: str,
) -> _Layout:
    """Granularity from the scale's shape (see the module docstring)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {_describe(axis)}")
    if block_size:
        if scale.ndim != len(x_shape) or scale.ndim == 0:
            raise ValueError(
                f"{scale_name} must have the rank of x ({len(x_shape)}) for blocked "
                f"quantization (block_size={block_size}), got shape {scale.shape}"
            )
        ax = check_axis(axis, len(x_shape), "axis")
        want = list(x_shape)
        want[ax] = -(-x_shape[ax] // block_size)
        if list(scale.shape) != want:
            raise ValueError(
                f"{scale_name} shape {scale.shape} does not fit x shape {x_shape} with "
                f"axis={axis}, block_size={block_size}: expected {tuple(want)} "
                f"(ceil({x_shape[ax]} / {block_size}) = {want[ax]} along axis {ax})"
            )
        return _Layout("block", ax, block_size)
    if scale.ndim == 0 or (scale.ndim == 1 and scale.size == 1):
        return _Layout("tensor", 0, 0)
    if scale.ndim != 1:
        raise ValueError(
            f"{scale_name} must be a scalar or a 1-D array (or pass block_size > 0 for "
            f"blocked quantization), got shape {scale.shape}"
        )
    if version < 13:
        raise ValueError(
            f"per-axis {scale_name} (shape {scale.shape}) needs opset >= 13, got opset {version}"
        )
    if len(x_shape) == 0:
        raise ValueError(f"per-axis {scale_name} needs x of rank >= 1, got a scalar x")
    ax = check_axis(axis, len(x_shape), "axis")
    if scale.shape[0] != x_shape[ax]:
        raise ValueError(
            f"{scale_name} has {scale.shape[0]} entries but x has {x_shape[ax]} along "
            f"axis={axis} (x shape {x_shape})"
        )
    return _Layout("axis", ax, 0)


def _expand(param: np.ndarray, x_shape: tuple[int, ...], layout: _Layout) -> np.ndarray:
    """``param`` (scale or zero point) as an array broadcastable against ``x``."""
    if layout.kind == "tensor":
        return param.reshape(())
    if layout.kind == "axis":
        shape = [1] * len(x_shape)
        shape[layout.axis] = param.size
        return param.reshape(shape)
    rep = np.repeat(param, layout.block_size, axis=layout.axis)
    return np.take(rep, np.arange(x_shape[layout.axis]), axis=layout.axis)


def _as_zero_point(
    zp: Any, name: str, qtype: QuantType, scale: np.ndarray
) -> np.ndarray | None:
    """Validated zero point as int64 with the scale's shape (None for absent / FP8)."""
    if zp is None:
        return None
    arr = native(np.asarray(zp))
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        if qtype.fp8 is not None and arr.dtype.kind == "f":
            pass
        else:
            raise TypeError(f"{name} must be an integer array, got {_describe(zp)}")
    if arr.shape != scale.shape and not (arr.size == 1 and scale.size == 1):
        raise ValueError(
            f"{name} shape {arr.shape} must equal the scale's shape {scale.shape}"
        )
    if qtype.fp8 is not None:
        if np.any(arr != 0):
            raise ValueError(
                f"{name} must be zero (or None) for {qtype.name}, got {_describe(zp)}"
            )
        return None
    vals = arr.astype(np.int64).reshape(scale.shape)
    if vals.size and (vals.min() < qtype.qmin or vals.max() > qtype.qmax):
        bad = vals.ravel()[(vals.ravel() < qtype.qmin) | (vals.ravel() > qtype.qmax)][0]
        raise ValueError(
            f"{name} holds {int(bad)}, outside {qtype.name}'s range [{qtype.qmin}, {qtype.qmax}]"
        )
    return vals


def _output_type(y_zero_point: Any, output_dtype: Any, version: int) -> QuantType:
    """Output type from ``output_dtype`` and the zero point's dtype (spec rules, opset 21).

    The zero point's dtype selects the type; ``output_dtype`` must then agree with it,
    except that ``int4`` / ``uint4`` / FP8 are named by ``output_dtype`` since NumPy cannot
    type a zero point with them (an ``int8`` / ``uint8`` zero point is accepted for int4 /
    uint4). With neither, the type is uint8.
    """
    explicit = None if output_dtype is None else _lookup_type(output_dtype, "output_dtype")
    zp_type = None
    if y_zero_point is not None:
        zp_arr = y_zero_point
        if isinstance(zp_arr, (np.ndarray, np.generic)):
            if zp_arr.dtype.kind in "iu" and zp_arr.dtype.name in QUANT_TYPES:
                zp_type = QUANT_TYPES[zp_arr.dtype.name]
            elif explicit is None:
                raise TypeError(
                    "y_zero_point's dtype selects the output type and must be one of "
                    f"int8/uint8/int16/uint16, got dtype {zp_arr.dtype}"
                )
        elif explicit is None:
            raise TypeError(
                "y_zero_point must be a NumPy integer array or scalar (its dtype selects the "
                f"output type) unless output_dtype is given, got {_describe(y_zero_point)}"
            )
    if explicit is not None and zp_type is not None and explicit is not zp_type:
        carrier_ok = explicit.container is zp_type.container and (
            explicit.name in ("int4", "uint4")
            or (explicit.fp8 is not None and zp_type.name == "uint8")
        )
        if not carrier_ok:
            raise ValueError(
                f"output_dtype={explicit.name} does not match y_zero_point's dtype "
                f"{zp_type.name}"
            )
    qtype = explicit or zp_type or QUANT_TYPES["uint8"]
    if qtype.since > version:
        raise ValueError(
            f"output type {qtype.name} needs opset >= {qtype.since}, got opset {version}"
        )
    return qtype


# -- kernels -------------------------------------------------------------------------------


def _saturate_int(r: np.ndarray, zp: np.ndarray | int, qmin: int, qmax: int) -> np.ndarray:
    """``clip(r + zp, qmin, qmax)`` for rounded float32 ``r``; NaN -> qmin (ONNX Runtime).

    The addition is done in float64: exact whenever ``|r| <= 2^53``, and beyond that any
    16-bit zero point leaves the sum outside ``[qmin, qmax]``, so the clip is unaffected.
    """
    s = r.astype(np.float64) + zp
    s = np.where(np.isnan(s), qmin, s)
    return np.clip(s, qmin, qmax).astype(np.int64)


def quantize_linear(
    x: Any,
    y_scale: Any,
    y_zero_point: Any = None,
    axis: int = 1,
    saturate: bool = True,
    block_size: int = 0,
    output_dtype: Any = None,
    *,
    opset: int = 21,
) -> np.ndarray:
    """ONNX ``QuantizeLinear``: ``y = saturate(round_half_even(x / y_scale) + y_zero_point)``.

    Float32 operation order (ONNX Runtime CPU, MLAS ``MlasQuantizeLinear``)::

        v = fl32(float32(x) / float32(y_scale))   # a true division, never x * (1/s)
        y = clip(rint(v) + zp, qmin, qmax)

    float16 ``x`` (opset >= 19, with a float16 ``y_scale``) is widened to float32 and divided
    in float32, as ONNX Runtime does; onnx.reference divides in float16 and so differs
    (x=34.28125, s=0.53125: ORT and refquant 65, onnx.reference 64).

    Parameters
    ----------
    x:
        float32 array (or float16 from opset 19). Python numbers and lists are converted
        to float32; other dtypes (float64, int32) raise ``TypeError``.
    y_scale:
        Scale(s), > 0 and finite (``ValueError`` otherwise: the spec does not define
        ``y_scale <= 0``; ONNX Runtime computes ``x / 0 = +-inf`` and saturates, and
        ``0 / 0 = NaN -> qmin``). Subnormal scales are used as given (no flush to zero).
        An array must have ``x``'s dtype from opset 19 (float32 before); Python numbers are
        converted to it. Its shape picks the granularity (module docstring).
    y_zero_point:
        Optional NumPy integer array with ``y_scale``'s shape; its dtype (int8, uint8,
        int16, uint16) selects the output type. Python ints need ``output_dtype``.
    axis:
        Quantization axis for per-axis / blocked scales (negative counts from the back);
        ignored for per-tensor scales.
    saturate:
        FP8 outputs only (spec): clamp out-of-range values to the largest finite value
        instead of NaN / inf. See :mod:`refquant.kernels._fp8`.
    block_size:
        > 0 for blocked quantization (opset 21).
    output_dtype:
        ``"int4"``, ``"uint4"``, ``"int8"``, ``"uint8"``, ``"int16"``, ``"uint16"``,
        ``"float8e4m3fn"``, ``"float8e5m2"``, a NumPy dtype or an ``onnx.TensorProto`` code.
        Must agree with ``y_zero_point``'s dtype (int4/uint4 zero points travel as
        int8/uint8 arrays). Neither given: uint8. refquant also accepts it below opset 21
        to name FP8 outputs (ONNX does that with an FP8-typed zero point).
    opset:
        The model's opset (10..22); it selects the operator version (10, 13, 19, 21) whose
        rules are enforced: v10 per-tensor int8/uint8 with float32 x; v13 adds per-axis;
        v19 adds float16 x and FP8 outputs; v21 adds int4/uint4/int16/uint16 and blocks.

    Returns
    -------
    numpy.ndarray
        ``x``'s shape. int8/uint8/int16/uint16 arrays for those types; int8/uint8 arrays
        holding int4/uint4 values; uint8 FP8 bit patterns for FP8.

    Special values (integer outputs), as ONNX Runtime: NaN -> qmin (the spec is silent);
    +-inf and huge values saturate to qmax / qmin (the spec; onnx.reference instead gives
    ``clip(INT32_MIN + zp)``, e.g. +inf -> -128 for int8, on x86); -0.0 -> zp.

    >>> quantize_linear(np.float32(0.273939937), np.float32(0.00214854861)).item()
    127
    """
    version = op_version(opset)
    xa = _as_float_input(x, version)
    scale = _as_scale(y_scale, "y_scale", xa.dtype, version)
    sat = _check_flag(saturate, "saturate")
    bs = _check_block_size(block_size, version)
    qtype = _output_type(y_zero_point, output_dtype, version)
    layout = _layout(xa.shape, scale, axis, bs, version, "y_scale")
    zp = _as_zero_point(y_zero_point, "y_zero_point", qtype, scale)

    s32 = _expand(scale, xa.shape, layout).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        v = np.divide(xa.astype(np.float32), s32, dtype=np.float32)
    if qtype.fp8 is not None:
        return _fp8.float32_to_fp8(v, qtype.fp8, sat)
    zpe: np.ndarray | int = 0 if zp is None else _expand(zp, xa.shape, layout)
    q = _saturate_int(round_half_even(v), zpe, qtype.qmin, qtype.qmax)
    return q.astype(qtype.container)


def _dequant_input_type(x: np.ndarray, x_dtype: Any) -> QuantType:
    if x_dtype is None:
        if x.dtype == np.int32:
            return _INT32
        if x.dtype.name in QUANT_TYPES:
            return QUANT_TYPES[x.dtype.name]
        raise TypeError(
            f"x must have an integer dtype int8/uint8/int16/uint16/int32 (or pass x_dtype "
            f"for int4/uint4/FP8 containers), got dtype {x.dtype}"
        )
    if isinstance(x_dtype, str) and x_dtype.lower() == "int32":
        qtype = _INT32
    else:
        qtype = _lookup_type(x_dtype, "x_dtype")
    if x.dtype != np.dtype(qtype.container):
        raise TypeError(
            f"x for x_dtype={qtype.name} must be a {np.dtype(qtype.container).name} array, "
            f"got dtype {x.dtype}"
        )
    return qtype


def dequantize_linear(
    x: Any,
    x_scale: Any,
    x_zero_point: Any = None,
    axis: int = 1,
    block_size: int = 0,
    *,
    x_dtype: Any = None,
    opset: int = 21,
) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``y = (x - x_zero_point) * x_scale``.

    Operation order (ONNX Runtime CPU ``DequantizeLinear``; integer subtraction, then one
    float multiply)::

        d = int32(x) - int32(zp)
        y = fl32(float32(d) * float32(x_scale))
        y = float16(y)          # when x_scale is float16 (opset >= 19): two roundings

    ``float32(d)`` is exact for 4/8/16-bit codes; int32 ``x`` above 2^24 is rounded when
    converted, as ONNX Runtime does. The algebraically equal ``x*s - zp*s`` differs.

    Parameters
    ----------
    x:
        NumPy integer array: int8, uint8, int32 (opset 10), int16, uint16 (opset 21); int4 /
        uint4 as int8 / uint8 arrays with ``x_dtype="int4"`` / ``"uint4"``; FP8 bit
        patterns as a uint8 array with ``x_dtype="float8e4m3fn"`` / ``"float8e5m2"``
        (opset 19).
    x_scale:
        float32 (or float16 from opset 19) scale(s), > 0 and finite; its dtype is the
        output dtype and its shape picks the granularity as in :func:`quantize_linear`.
    x_zero_point:
        Optional, with ``x``'s dtype and ``x_scale``'s shape; must be absent (or zero) for
        int32 and FP8 inputs.
    axis, block_size, opset:
        As in :func:`quantize_linear`.
    x_dtype:
        The ONNX type of ``x`` when its container does not say it (int4, uint4, FP8).

    >>> dequantize_linear(np.uint8([0, 128, 255]), np.float32(0.5), np.uint8(128)).tolist()
    [-64.0, 0.0, 63.5]
    """
    version = op_version(opset)
    if not isinstance(x, (np.ndarray, np.generic)):
        raise TypeError(f"x must be a NumPy integer array, got {_describe(x)}")
    xa = native(np.asarray(x))
    qtype = _dequant_input_type(xa, x_dtype)
    if qtype.since > version:
        raise ValueError(
            f"x of type {qtype.name} needs opset >= {qtype.since}, got opset {version}"
        )
    scale = _as_scale(x_scale, "x_scale", None, version)
    bs = _check_block_size(block_size, version)
    layout = _layout(xa.shape, scale, axis, bs, version, "x_scale")

    zp: np.ndarray | None = None
    if x_zero_point is not None:
        zpa = native(np.asarray(x_zero_point))
        if qtype.fp8 is None and zpa.dtype != xa.dtype:
            raise TypeError(
                f"x_zero_point must have x's dtype {xa.dtype}, got dtype {zpa.dtype}"
            )
        if qtype is _INT32:
            if np.any(zpa != 0):
                raise ValueError(f"x_zero_point must be zero (or None) for int32 x, got {zpa!r}")
        else:
            zp = _as_zero_point(zpa, "x_zero_point", qtype, scale)
    if qtype.fp8 is None and xa.size and (
        xa.min() < qtype.qmin or xa.max() > qtype.qmax
    ):
        raise ValueError(
            f"x holds values outside {qtype.name}'s range [{qtype.qmin}, {qtype.qmax}]"
        )

    if qtype.fp8 is not None:
        d = _fp8.fp8_to_float32(xa, qtype.fp8)
    else:
        di = xa.astype(np.int64)
        if zp is not None:
            di = di - _expand(zp, xa.shape, layout)
        d = di.astype(np.float32)
    s32 = _expand(scale, xa.shape, layout).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        y = np.multiply(d, s32, dtype=np.float32)
        return y.astype(scale.dtype, copy=False)  # float16: overflow gives +-inf, as ORT
