"""PyTorch's fake-quantize and quantize / dequantize kernels (torch 2.13, x86-64 CPU).

Every function reproduces, bit for bit, what ``torch`` 2.13 (CPU wheel, FBGEMM build) returns
on an x86-64 machine with AVX2 and FMA; ``tests/test_kernels_torch.py`` checks each against the
real torch, and ``docs/kernels/torch.md`` lists the operation orders and every place where the
measured behaviour differs from what the source suggests. The ``device="cuda"`` variants are
emulated from the CUDA source (``aten/src/ATen/native/quantized/cuda/AffineQuantizer.cu``) and
have NOT been checked against a GPU.

Notation: ``fl32`` is one IEEE float32 rounding (round half to even), ``rne`` is C
``nearbyint``/``rint``/``lrintf`` in the default mode (round half to even), ``fma32(a, b, c)``
is ``fl32(a*b + c)`` with a single rounding.

Sources (pytorch/pytorch and the FBGEMM it bundles):

* fake-quant: ``aten/src/ATen/native/quantized/cpu/kernels/QuantizedOpKernels.cpp``
  (``_fake_quantize_tensor_helper``, ``_fake_quant_per_channel_cachemask_cpu_helper``);
* ``quantize_per_tensor``: the same file's ``quantize_tensor_per_tensor_affine_cpu`` calling
  FBGEMM ``Quantize<T>`` with its default ``LEGACY=true`` (``include/fbgemm/QuantUtils.h``,
  ``src/QuantUtilsAvx2.cc: QuantizeAvx2``) -- the zero point is added **before** rounding,
  fused into the multiply for 8-bit types (measured);
* ``quantize_per_channel`` and ``dequantize``: ``aten/src/ATen/native/quantized/
  AffineQuantizerBase.cpp`` (``quantize_val``: FBGEMM's scalar ``Quantize``, measured to be
  the legacy zero-point-before-rounding order on torch 2.13; ``quantize_val_float_qparams``)
  and ``QuantizedOpKernels.cpp`` (``dequantize_per_channel_affine_kernel``).

Containers: quantized results are NumPy integer arrays holding torch's ``int_repr()``:
``uint8`` for ``quint8``, ``int8`` for ``qint8``, ``int32`` for ``qint32``; the sub-byte types
``quint4x2`` / ``quint2x4`` are returned **unpacked**, one code per ``uint8`` (torch packs two /
four codes per byte, lowest index in the low bits). NumPy has no bfloat16: pass float32 arrays
holding bfloat16 values with ``bfloat16=True`` to the fake-quant functions.

Input checks are stricter than torch's (``docs/architecture.md``, "Principles", item 6):
``scale`` must be finite and
> 0 before and after its conversion to float32, ``quant_min < quant_max`` (torch accepts
``==``), and zero points must lie in the grid (torch does not check float zero points).

Input rules (shared with the other kernel families): every function here is elementwise, so
an empty ``x`` / ``q`` gives an empty result. Python numbers and lists become float32 arrays
(as ``torch.tensor`` makes float32 tensors of them); a finite value beyond float32's range
raises ``ValueError`` instead of becoming ``inf``. A float64 array is computed as torch
computes a float64 tensor (in double, by the fake-quant functions; the quantize functions
accept float32 only), never narrowed. Scales are checked in float64 and again after their
rounding to float32 (``scale=1e39`` raises). Big-endian arrays are read by value (same bits
as native ones). Complex, bool, object and string input raise ``TypeError``; flags must be
bools. Caller arrays are never modified.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .._validation import _describe, as_kernel_input, check_flag, check_int, native

__all__ = [
    "QDTYPES",
    "fake_quantize_per_tensor_affine",
    "fake_quantize_per_channel_affine",
    "quantize_per_tensor",
    "quantize_per_channel",
    "dequantize",
]

Device = Literal["cpu", "cuda"]
CpuCapability = Literal["avx2", "avx512", "default"]

#: torch quantized dtype name -> (NumPy container, qmin, qmax, bits)
QDTYPES: dict[str, tuple[type, int, int, int]] = {
    "quint8": (np.uint8, 0, 255, 8),
    "qint8": (np.int8, -128, 127, 8),
    "qint32": (np.int32, -(2**31), 2**31 - 1, 32),
    "quint4x2": (np.uint8, 0, 15, 4),
    "quint2x4": (np.uint8, 0, 3, 2),
}

_SUB_BYTE = ("quint4x2", "quint2x4")
_INT64_MIN = np.iinfo(np.int64).min
_INT32_MIN = np.iinfo(np.int32).min
_TWO63 = 2.0**63
_TWO31 = 2.0**31
# Largest float32 below 2^31: FBGEMM's ``int32_float_max_val`` (INT32_MAX - 127).
_FBGEMM_F32_MAX = np.float32(2147483520.0)


# --------------------------------------------------------------------------------------------
# argument checks


def _check_int(value: Any, name: str) -> int:
    return check_int(value, name)


def _check_range(quant_min: Any, quant_max: Any) -> tuple[int, int]:
    qmin = _check_int(quant_min, "quant_min")
    qmax = _check_int(quant_max, "quant_max")
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    if not (lo <= qmin <= hi and lo <= qmax <= hi):
        raise ValueError(f"quant_min/quant_max must fit int64, got {qmin}, {qmax}")
    if qmin >= qmax:
        raise ValueError(f"quant_min must be < quant_max, got quant_min={qmin}, quant_max={qmax}")
    return qmin, qmax


def _check_qdtype(dtype: Any) -> str:
    name = dtype if isinstance(dtype, str) else str(dtype)
    name = name.removeprefix("torch.")
    if name not in QDTYPES:
        raise ValueError(f"dtype must be one of {tuple(QDTYPES)}, got {_describe(dtype)}")
    return name


def _check_device(device: Any) -> str:
    if not isinstance(device, str) or device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {_describe(device)}")
    return str(device)


def _recip32(s: Any) -> Any:
    """``fl32(1.0f / s)``; a subnormal ``s`` overflows to ``+inf`` as in C."""
    with np.errstate(over="ignore", divide="ignore"):
        return np.float32(1.0) / np.asarray(s, np.float32) if np.ndim(s) else (
            np.float32(1.0) / np.float32(s))


def _scalar_scale(scale: Any, name: str = "scale") -> tuple[float, np.float32]:
    """Validate a per-tensor scale; return it as (float64, float32)."""
    if isinstance(scale, bool) or isinstance(scale, (str, bytes)) or scale is None:
        raise TypeError(f"{name} must be a real number, got {_describe(scale)}")
    try:
        arr = np.asarray(scale)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"{name} must be a real number, got {_describe(scale)}") from exc
    if arr.dtype.kind not in "fiu" or arr.size != 1:
        raise TypeError(f"{name} must be a real number, got {_describe(scale)}")
    s64 = float(arr.reshape(()))
    if not (np.isfinite(s64) and s64 > 0):
        raise ValueError(f"{name} must be finite and > 0, got {s64!r}")
    with np.errstate(over="ignore"):
        s32 = np.float32(s64)
    if not (np.isfinite(s32) and s32 > 0):
        raise ValueError(f"{name}={s64!r} is not finite and > 0 once rounded to float32")
    return s64, s32


def _channel_scales(scale: Any, n: int, name: str = "scale") -> np.ndarray:
    """Validate per-channel scales (length ``n``); return them as float64."""
    if isinstance(scale, (str, bytes)) or scale is None:
        raise TypeError(f"{name} must be a 1-D array of floats, got {_describe(scale)}")
    arr = np.asarray(scale)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got shape {arr.shape}")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite and > 0, got {arr[i]!r} at index {i}")
    with np.errstate(over="ignore"):
        s32 = arr.astype(np.float32)
    bad = ~(np.isfinite(s32) & (s32 > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}[{i}]={arr[i]!r} is not finite and > 0 once rounded to float32"
        )
    return arr


def _channel_zero_points(
    zero_point: Any, n: int, qmin: int, qmax: int, name: str = "zero_point"
) -> np.ndarray:
    """Validate per-channel zero points: int64 array, or float32 array for float ones."""
    if isinstance(zero_point, (str, bytes)) or zero_point is None:
        raise TypeError(f"{name} must be a 1-D array, got {_describe(zero_point)}")
    arr = np.asarray(zero_point)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must hold integers or floats, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} must be finite, got {arr.tolist()!r}")
        vals = arr.astype(np.float64)
    else:
        vals = arr.astype(np.float64)
        arr = arr.astype(np.int64)
    bad = (vals < qmin) | (vals > qmax)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}[{i}]={arr[i]!r} is outside [quant_min, quant_max] = [{qmin}, {qmax}]"
        )
    return arr


def _check_axis(axis: Any, ndim: int) -> int:
    axis = _check_int(axis, "axis")
    if ndim == 0:
        raise ValueError("x must have at least 1 dimension for per-channel quantization")
    if not 0 <= axis < ndim:
        raise ValueError(f"axis must be in [0, {ndim}) (torch rejects negative axes), got {axis}")
    return axis


def _bcast(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = values.shape[0]
    return values.reshape(shape)


def _fake_input(x: Any, bfloat16: Any) -> np.ndarray:
    arr = as_kernel_input(x, "x", (np.float32, np.float16, np.float64))
    if check_flag(bfloat16, "bfloat16"):
        if arr.dtype != np.float32:
            raise TypeError(f"x must be float32 holding bfloat16 values, got dtype {arr.dtype}")
        low = arr.view(np.uint32) & np.uint32(0xFFFF)
        if low.any():
            i = int(np.flatnonzero(low.ravel())[0])
            raise ValueError(
                f"x[{i}]={arr.ravel()[i]!r} is not a bfloat16 value (bfloat16=True)"
            )
    return arr


# --------------------------------------------------------------------------------------------
# float -> integer conversions and float arithmetic as the x86 machine code does them


def _fma32(a: Any, b: Any, c: Any) -> np.ndarray:
    """``fl32(a*b + c)`` with one rounding (x86 ``vfmadd``), for float32 operands.

    ``a*b`` is exact in float64 (24 + 24 significant bits). The float64 sum
    ``s = fl64(a*b + c)`` has an exact error ``e`` (Knuth's TwoSum: ``s + e == a*b + c``).
    Rounding ``s`` to float32 gives the correctly rounded result except when ``s`` is exactly
    half-way between two float32 values and ``e != 0``; then the sign of ``e`` picks the
    neighbour (a float32 half-way point is a float64, so no other case can go wrong).
    """
    p = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    cc = np.asarray(c, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        s = p + cc
        bv = s - p
        e = (p - (s - bv)) + (cc - bv)
        r = s.astype(np.float32)
        r64 = r.astype(np.float64)
        toward = np.where(s > r64, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32)
        nb = np.nextafter(r, toward)
        nb64 = nb.astype(np.float64)
        half_way = (
            np.isfinite(s) & np.isfinite(r) & np.isfinite(nb) & (s != r64)
            & ((s - r64) * 2 == (nb64 - r64)) & (e != 0)
        )
    if not np.any(half_way):
        return np.asarray(r, np.float32)
    lower = np.minimum(r, nb)
    upper = np.maximum(r, nb)
    fixed = np.where(e > 0, upper, lower).astype(np.float32)
    return np.asarray(np.where(half_way, fixed, r), np.float32)


def _to_int64_x86(v: np.ndarray) -> np.ndarray:
    """C ``static_cast<int64_t>`` / ``lrint`` result on x86-64 (``cvttsd2si``/``cvtss2si``).

    ``v`` holds integral values; NaN, +-Inf and values outside ``[-2^63, 2^63)`` give
    ``INT64_MIN`` (the "integer indefinite" value).
    """
    v = np.asarray(v)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(v) | (v >= _TWO63) | (v < -_TWO63)
        out = np.where(bad, 0, v).astype(np.int64)
    return np.where(bad, _INT64_MIN, out)


def _cvtps_epi32(v: np.ndarray) -> np.ndarray:
    """``_mm256_cvtps_epi32``: RNE; NaN and values outside ``[-2^31, 2^31)`` -> INT32_MIN."""
    r = np.rint(v)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(r) | (r >= _TWO31) | (r < -_TWO31)
        out = np.where(bad, 0, r).astype(np.int64)
    return np.where(bad, _INT32_MIN, out)


def _clamp_double_to(v: np.ndarray, dtype: str) -> np.ndarray:
    """FBGEMM ``clamp<double, T>``: ``std::min(std::max(v, min), max)`` then ``T(v)``.

    ``std::max``/``std::min`` keep a NaN first argument, and x86 converts NaN to the int32
    "indefinite" value ``INT32_MIN``, whose low byte is 0: NaN -> 0 for 8-bit types,
    ``INT32_MIN`` for qint32.
    """
    container, lo, hi, _ = QDTYPES[dtype]
    v = np.asarray(v, np.float64)
    nan = np.isnan(v)
    clipped = np.clip(np.where(nan, 0.0, v), lo, hi).astype(np.int64)
    out = np.where(nan, _INT32_MIN, clipped)
    return out.astype(np.int32).astype(container)


def _round_bfloat16(y: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 (round half to even, c10::BFloat16), returned as float32."""
    y = np.asarray(y, np.float32)
    u = y.view(np.uint32).astype(np.uint64)
    lsb = (u >> np.uint64(16)) & np.uint64(1)
    r = ((u + np.uint64(0x7FFF) + lsb) & np.uint64(0xFFFF0000)).astype(np.uint32)
    r = np.where(np.isnan(y), np.uint32(0x7FC00000), r).astype(np.uint32)
    return r.view(np.float32)


def _store_from_f32(y: np.ndarray, in_dtype: np.dtype, bfloat16: bool) -> np.ndarray:
    """Store a float32 result into the input's dtype (one rounding for half / bfloat16)."""
    if bfloat16:
        return _round_bfloat16(y)
    with np.errstate(over="ignore"):
        return np.asarray(y, np.float32).astype(in_dtype)


def _store_from_f64(y: np.ndarray, in_dtype: np.dtype, bfloat16: bool) -> np.ndarray:
    """Store a double result: c10::Half / BFloat16 only convert from float, so double ->
    float -> half rounds twice; float64 outputs keep the double."""
    if in_dtype == np.float64:
        return np.asarray(y, np.float64)
    with np.errstate(over="ignore"):
        y32 = np.asarray(y, np.float64).astype(np.float32)
    return _store_from_f32(y32, in_dtype, bfloat16)


# --------------------------------------------------------------------------------------------
# fake quantization


def fake_quantize_per_tensor_affine(
    x: Any,
    scale: float,
    zero_point: int,
    quant_min: int,
    quant_max: int,
    *,
    bfloat16: bool = False,
) -> np.ndarray:
    """``torch.fake_quantize_per_tensor_affine`` on CPU.

    With ``s = fl32(scale)`` (torch passes the double ``scale`` as a C ``float``)::

        inv = fl32(1.0f / s)
        t   = fl32(x * inv)            # float32 (float16/bfloat16 x widened exactly);
                                       # float64 x: the product is a double
        qf  = fl32(float(zp) + rne(t)) # the zero point is added AFTER rounding, in float
        q   = int64(fmin(fmax(qf, quant_min), quant_max))   # double; NaN -> quant_min
        y   = fl32(float(q - zp) * s)  # stored once into x's dtype (float64 x: widened)

    Consequences (measured on torch 2.13): NaN gives ``(quant_min - zp) * s``; +-Inf give
    the grid ends; ``-0.0`` gives ``+0.0``; float16 and bfloat16 inputs are computed in
    float32 and rounded once at the store. Source: ``QuantizedOpKernels.cpp:
    _fake_quantize_tensor_helper``.
    """
    arr = _fake_input(x, bfloat16)
    _, s = _scalar_scale(scale)
    zp = _check_int(zero_point, "zero_point")
    qmin, qmax = _check_range(quant_min, quant_max)
    if not qmin <= zp <= qmax:
        raise ValueError(f"zero_point must be in [quant_min, quant_max] = [{qmin}, {qmax}], "
                         f"got {zp}")
    inv = _recip32(s)
    with np.errstate(invalid="ignore", over="ignore"):
        if arr.dtype == np.float64:
            r = np.rint(arr * np.float64(inv))
            qf = np.float64(zp) + r
        else:
            r = np.rint(arr.astype(np.float32) * inv)
            qf = np.float32(zp) + r
        qd = np.fmin(np.fmax(qf.astype(np.float64), float(qmin)), float(qmax))
        q = qd.astype(np.int64)
        y = (q - zp).astype(np.float32) * s
    return _store_from_f32(y, arr.dtype, bfloat16)


def fake_quantize_per_channel_affine(
    x: Any,
    scale: Any,
    zero_point: Any,
    axis: int,
    quant_min: int,
    quant_max: int,
    *,
    bfloat16: bool = False,
    cpu_capability: CpuCapability = "avx2",
) -> np.ndarray:
    """``torch.fake_quantize_per_channel_affine`` on CPU, integer or float zero points.

    ``scale`` is rounded once to float32 (torch requires a float32 tensor). With ``s``,
    ``zp`` the channel's scale and zero point and ``inv = fl32(1.0f / s)``:

    Integer zero points (torch requires int32)::

        v = fl32(float(zp) + rne(fl32(x * inv)))   # zp after rounding
        q = int64(v)                    # x86: NaN, +-Inf, |v| >= 2^63 -> INT64_MIN
        y = fl64(fmin(fmax(q, quant_min), quant_max) - zp) * double(s)

    Float zero points (float32 or float16 in torch)::

        v = fma32(x, inv, zp)           # zp BEFORE rounding, fused multiply-add (measured)
                                        # cpu_capability="default": fl32(fl32(x*inv) + zp)
        q = lrintf(v)                   # RNE; NaN, +-Inf, overflow -> LONG_MIN
        y = fl64((fmin(fmax(q, quant_min), quant_max) - double(zp)) * double(s))

    ``y`` is a double, rounded to float32 (float16 / bfloat16 inputs: double -> float ->
    half, two roundings, as ``c10::Half`` converts only from float); float64 inputs keep it.
    So NaN, +Inf and huge values all go to ``quant_min`` here, unlike the per-tensor kernel.
    Source: ``QuantizedOpKernels.cpp: _fake_quant_per_channel_cachemask_cpu_helper``.
    Float zero points with a float64 ``x`` (a double FMA) are not emulated.

    ``cpu_capability`` is the ATen kernel build torch dispatches to
    (``torch.backends.cpu.get_cpu_capability()``, forced by ``ATEN_CPU_CAPABILITY``): the
    ``avx2`` and ``avx512`` builds are compiled with FMA and GCC contracts the float-zero-point
    multiply-add; the ``default`` build (machines without AVX2) rounds the product first.
    """
    arr = _fake_input(x, bfloat16)
    if not isinstance(cpu_capability, str) or cpu_capability not in ("avx2", "avx512",
                                                                     "default"):
        raise ValueError(f"cpu_capability must be 'avx2', 'avx512' or 'default', "
                         f"got {_describe(cpu_capability)}")
    cap = str(cpu_capability)
    ax = _check_axis(axis, arr.ndim)
    qmin, qmax = _check_range(quant_min, quant_max)
    n = arr.shape[ax]
    s = _channel_scales(scale, n).astype(np.float32)
    zp = _channel_zero_points(zero_point, n, qmin, qmax)
    if zp.dtype.kind == "i" and zp.size and (
        zp.min() < np.iinfo(np.int32).min or zp.max() > np.iinfo(np.int32).max
    ):
        raise ValueError(f"zero_point must fit int32 (torch's dtype for it), got {zp.tolist()!r}")
    inv = _recip32(s)
    s_b = _bcast(s, ax, arr.ndim)
    inv_b = _bcast(inv, ax, arr.ndim)
    with np.errstate(invalid="ignore", over="ignore"):
        if zp.dtype.kind == "f":
            if arr.dtype == np.float64:
                raise TypeError(
                    "x must be float16/float32 when zero_point is floating point "
                    "(torch's double fused multiply-add is not emulated), got dtype float64"
                )
            zp_b = _bcast(zp, ax, arr.ndim)
            if cap == "default":
                v = ((arr.astype(np.float32) * inv_b).astype(np.float32) + zp_b).astype(
                    np.float32)
            else:
                v = _fma32(arr.astype(np.float32), inv_b, zp_b)
            q = _to_int64_x86(np.rint(v))
            zp_d = zp_b.astype(np.float64)
        else:
            zp_b = _bcast(zp, ax, arr.ndim)
            if arr.dtype == np.float64:
                v = zp_b.astype(np.float64) + np.rint(arr * inv_b.astype(np.float64))
            else:
                v = zp_b.astype(np.float32) + np.rint(arr.astype(np.float32) * inv_b)
            q = _to_int64_x86(v)
            zp_d = zp_b.astype(np.float64)
        qd = np.fmin(np.fmax(q.astype(np.float64), float(qmin)), float(qmax))
        y = (qd - zp_d) * s_b.astype(np.float64)
    return _store_from_f64(y, arr.dtype, bfloat16)


# --------------------------------------------------------------------------------------------
# quantize


def _quantize_input(x: Any) -> np.ndarray:
    if isinstance(x, (np.ndarray, np.generic)) and np.asarray(x).dtype.kind == "f" and (
        np.asarray(x).dtype.type is not np.float32
    ):
        raise TypeError(
            f"x must have dtype float32 (torch: 'Quantize only works on Float Tensor'), "
            f"got dtype {np.asarray(x).dtype}"
        )
    return as_kernel_input(x, "x", (np.float32,))


def _check_type_zero_point(zp: int, dtype: str, name: str = "zero_point") -> None:
    _, lo, hi, _ = QDTYPES[dtype]
    if not lo <= zp <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}] for {dtype}, got {zp}")


def _quantize_fbgemm_avx2_legacy(x: np.ndarray, s: np.float32, zp: int, dtype: str) -> np.ndarray:
    """FBGEMM ``QuantizeAvx2<T, LEGACY=true>`` (8-bit types)."""
    _, lo, hi, _ = QDTYPES[dtype]
    inv = _recip32(s)
    t = _fma32(x, inv, np.float32(zp))
    with np.errstate(invalid="ignore"):
        # _mm256_min_ps(t, c) returns c when t is NaN.
        t = np.where(np.isnan(t) | (t > _FBGEMM_F32_MAX), _FBGEMM_F32_MAX, t).astype(np.float32)
    r = _cvtps_epi32(t)
    return np.clip(r, lo, hi).astype(QDTYPES[dtype][0])


def _quantize_fbgemm_scalar(
    x: np.ndarray, s: np.ndarray | np.float32, zp: np.ndarray | int, dtype: str
) -> np.ndarray:
    """FBGEMM scalar ``Quantize<T, LEGACY=true>`` (compiled without FMA):
    ``v = rne(fl32(float(zp) + fl32(x * inv)))``, then ``clamp<double, T>``."""
    inv = np.asarray(_recip32(s), np.float32)
    zpf = np.asarray(zp).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        t = (x * inv).astype(np.float32)
        v = np.rint((zpf + t).astype(np.float32))
    return _clamp_double_to(v, dtype)


def _quantize_sub_byte(x: np.ndarray, s: np.float32, zp: int, dtype: str) -> np.ndarray:
    """``quantize_tensor_per_tensor_affine_sub_byte_cpu``: ``lrintf(rne(fl32(x*inv)) + zp)``."""
    _, lo, hi, _ = QDTYPES[dtype]
    inv = _recip32(s)
    with np.errstate(invalid="ignore", over="ignore"):
        v = (np.rint((x * inv).astype(np.float32)) + np.float32(zp)).astype(np.float32)
    q = _to_int64_x86(np.rint(v))
    return np.clip(q, lo, hi).astype(np.uint8)


def _quantize_cuda(
    x: np.ndarray, s64: np.ndarray | float, zp: np.ndarray | int, dtype: str
) -> np.ndarray:
    """CUDA ``int64(rne(double(x) / scale) + zp)``, integer clamp. PTX converts NaN to 0 and
    saturates +-Inf (from the PTX ISA; not run on a GPU)."""
    container, lo, hi, _ = QDTYPES[dtype]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        v = np.rint(x.astype(np.float64) / np.asarray(s64, np.float64)) + np.asarray(
            zp, np.float64)
        q = np.where(np.isnan(v), 0.0, np.clip(v, -_TWO63, _TWO63 - 1024))
    return np.clip(q, lo, hi).astype(np.int64).astype(container)


def quantize_per_tensor(
    x: Any, scale: float, zero_point: int, dtype: str, device: Device = "cpu"
) -> np.ndarray:
    """``torch.quantize_per_tensor(x, scale, zero_point, dtype).int_repr()``.

    ``device="cpu"`` (measured, torch 2.13 x86-64 with AVX2+FMA; FBGEMM legacy mode)::

        s = fl32(scale); inv = fl32(1.0f / s)
        quint8 / qint8:  t = fma32(x, inv, float(zp))            # zp BEFORE rounding, fused
                         t = min_ps(t, 2147483520.0f)            # NaN -> 2147483520
                         q = clamp(cvtps_epi32(t), Tmin, Tmax)   # RNE; -Inf -> Tmin
        qint32:          v = rne(fl32(float(zp) + fl32(x * inv)))   # not fused
                         q = clamp_double(v)                     # NaN -> INT32_MIN
        quint4x2/2x4:    q = clamp(lrintf(fl32(rne(fl32(x*inv)) + float(zp))), 0, 2^b-1)
                                                                 # zp AFTER rounding;
                                                                 # NaN and +-Inf -> 0

    So on CPU NaN gives ``qmax`` for 8-bit types, ``INT32_MIN`` for qint32 and 0 for the
    sub-byte types. ``device="cuda"`` emulates ``AffineQuantizer.cu`` from source (untested
    against a GPU): ``q = clamp(int64(rne(double(x) / scale) + zp))`` with the double
    ``scale`` (a float64 division, zp after rounding; NaN -> 0 -> clamp).
    Sub-byte results are unpacked (one code per uint8).
    """
    arr = _quantize_input(x)
    name = _check_qdtype(dtype)
    dev = _check_device(device)
    s64, s = _scalar_scale(scale)
    zp = _check_int(zero_point, "zero_point")
    _check_type_zero_point(zp, name)
    if dev == "cuda":
        if name in _SUB_BYTE:
            raise ValueError(f"dtype {name} has no CUDA quantize kernel in torch 2.13")
        return _quantize_cuda(arr, s64, zp, name)
    if name in _SUB_BYTE:
        return _quantize_sub_byte(arr, s, zp, name)
    if name == "qint32":
        return _quantize_fbgemm_scalar(arr, s, zp, name)
    return _quantize_fbgemm_avx2_legacy(arr, s, zp, name)


def quantize_per_channel(
    x: Any,
    scales: Any,
    zero_points: Any,
    axis: int,
    dtype: str,
    device: Device = "cpu",
) -> np.ndarray:
    """``torch.quantize_per_channel(x, scales, zero_points, axis, dtype).int_repr()``.

    ``scales`` are doubles in torch. Integer ``zero_points`` (``per_channel_affine``), CPU,
    per element with the channel's ``scale`` and ``zp`` (FBGEMM scalar ``Quantize``, legacy
    mode, measured: the source read suggested ``LEGACY=false``)::

        inv = fl32(1.0f / fl32(scale))
        v   = rne(fl32(float(zp) + fl32(x * inv)))    # zp BEFORE rounding, not fused
        q   = clamp_double(v)                         # NaN -> 0 (8-bit) / INT32_MIN (qint32)

    Floating ``zero_points`` (``per_channel_affine_float_qparams``; scales and zero points
    taken as float32), CPU ``quantize_val_float_qparams``::

        q = clamp(int32(lrintf(fl32(fl32(x * inv) + zp))), Tmin, Tmax)   # not fused;
                                                      # NaN, +-Inf -> 0 before the clamp

    ``device="cuda"`` (source only, untested on a GPU): integer zero points
    ``clamp(int64(rne(double(x) / scale) + zp))``; float zero points
    ``lrintf(fma32(x, inv, zp))`` (nvcc contracts the multiply-add by default) with NaN -> 0.
    """
    arr = _quantize_input(x)
    name = _check_qdtype(dtype)
    dev = _check_device(device)
    ax = _check_axis(axis, arr.ndim)
    n = arr.shape[ax]
    s64 = _channel_scales(scales, n, "scales")
    _, lo, hi, _ = QDTYPES[name]
    zp = _channel_zero_points(zero_points, n, lo, hi, "zero_points")
    s_b = _bcast(s64, ax, arr.ndim)
    zp_b = _bcast(zp, ax, arr.ndim)
    if zp.dtype.kind == "f":
        s32 = s_b.astype(np.float32)
        inv = np.asarray(_recip32(s32), np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            if dev == "cuda":
                v = _fma32(arr, inv, zp_b)
            else:
                v = ((arr * inv).astype(np.float32) + zp_b).astype(np.float32)
            q = _to_int64_x86(np.rint(v))
            if dev == "cuda":
                q = np.where(np.isnan(v), 0, q)
            else:  # static_cast<int>(long): keep the low 32 bits
                q = q.astype(np.int32).astype(np.int64)
        return np.clip(q, lo, hi).astype(QDTYPES[name][0])
    if name in _SUB_BYTE:
        raise ValueError(
            f"dtype {name} needs floating zero_points (torch supports only "
            f"per_channel_affine_float_qparams for sub-byte types)"
        )
    if dev == "cuda":
        return _quantize_cuda(arr, s_b, zp_b, name)
    return _quantize_fbgemm_scalar(arr, s_b.astype(np.float32), zp_b, name)


# --------------------------------------------------------------------------------------------
# dequantize


def _infer_qdtype(q: np.ndarray, dtype: Any) -> str:
    if dtype is not None:
        return _check_qdtype(dtype)
    by_container = {np.dtype(np.uint8): "quint8", np.dtype(np.int8): "qint8",
                    np.dtype(np.int32): "qint32"}
    if q.dtype not in by_container:
        raise TypeError(f"q must be a uint8, int8 or int32 array, got dtype {q.dtype}")
    return by_container[q.dtype]


def dequantize(
    q: Any,
    scale: Any,
    zero_point: Any,
    dtype: str | None = None,
    axis: int | None = None,
    device: Device = "cpu",
) -> np.ndarray:
    """``torch.dequantize`` of a quantized tensor with integer representation ``q``.

    ``dtype`` is the torch quantized dtype (inferred from ``q``'s container when omitted:
    uint8 -> quint8, int8 -> qint8, int32 -> qint32). Returns float32. Per element:

    * per-tensor (``axis=None``), CPU (FBGEMM ``Dequantize``)::

          y = fl32(fl32(scale) * float(int32(q - zp)))     # the int32 difference wraps

    * per-tensor sub-byte, CPU: ``y = fl32(fl32(float(q) - float(zp)) * fl32(scale))``;
    * per-channel, integer zero points, CPU (the scale stays a DOUBLE)::

          y = fl32(double(fl32(float(q) - float(zp))) * scale)

    * per-channel, float zero points (float32 scale and zp): ``fl32(fl32(float(q) - zp) * s)``;
    * CUDA (source only): per-tensor ``fl32(double(fl32(float(q) - float(zp))) * scale)``;
      per-channel ``fl32(double(float(q - zp)) * scale)``; float qparams as on CPU.
    """
    if isinstance(q, (str, bytes)) or q is None:
        raise TypeError(f"q must be an integer array, got {_describe(q)}")
    qa = native(np.asarray(q))
    if qa.dtype.kind not in "iu":
        raise TypeError(f"q must be an integer array, got dtype {qa.dtype}")
    name = _infer_qdtype(qa, dtype)
    dev = _check_device(device)
    container, lo, hi, _ = QDTYPES[name]
    if qa.size and (qa.min() < lo or qa.max() > hi):
        raise ValueError(f"q holds values outside [{lo}, {hi}] for {name}")
    qi = qa.astype(np.int64)
    if axis is None:
        s64, s = _scalar_scale(scale)
        zp = _check_int(zero_point, "zero_point")
        _check_type_zero_point(zp, name)
        with np.errstate(over="ignore"):
            if dev == "cuda":
                d = (qi.astype(np.float32) - np.float32(zp)).astype(np.float32)
                return (d.astype(np.float64) * s64).astype(np.float32)
            if name in _SUB_BYTE:
                d = (qi.astype(np.float32) - np.float32(zp)).astype(np.float32)
                return (d * s).astype(np.float32)
            diff = (qi - zp).astype(np.int32)  # wraps like the C int arithmetic
            return (s * diff.astype(np.float32)).astype(np.float32)
    ax = _check_axis(axis, qa.ndim)
    n = qa.shape[ax]
    cs64 = _channel_scales(scale, n)
    czp = _channel_zero_points(zero_point, n, lo, hi)
    s_b = _bcast(cs64, ax, qa.ndim)
    zp_b = _bcast(czp, ax, qa.ndim)
    with np.errstate(over="ignore"):
        if czp.dtype.kind == "f":
            d = (qi.astype(np.float32) - zp_b).astype(np.float32)
            return (d * s_b.astype(np.float32)).astype(np.float32)
        if name in _SUB_BYTE:
            raise ValueError(f"dtype {name} needs floating zero_point for per-channel dequantize")
        if dev == "cuda":
            d = (qi - zp_b).astype(np.float32)
        else:
            d = (qi.astype(np.float32) - zp_b.astype(np.float32)).astype(np.float32)
        return (d.astype(np.float64) * s_b).astype(np.float32)
