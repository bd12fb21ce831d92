"""Exact float32 emulations of Paddle 3.3.1's quantize / dequantize kernels (CPU).

Every function here returns, bit for bit, what the matching ``paddle._C_ops`` /
``paddle._legacy_C_ops`` op returns on CPU (``paddle.set_device("cpu")``); the differential
tests in ``tests/test_kernels_paddle.py`` check this against the real ops. The sources are
the phi kernels: ``paddle/phi/kernels/funcs/fake_quantize_functor.{h,cc}``,
``paddle/phi/kernels/impl/fake_quantize_kernel_impl.h``,
``paddle/phi/kernels/impl/fake_dequantize_kernel_impl.h``,
``paddle/phi/kernels/impl/quantize_linear_impl.h`` and
``paddle/phi/kernels/cpu/quantize_linear_kernel.cc``.

Conventions shared by all kernels (``S`` is Paddle's *threshold* scale, the abs-max that
maps to ``qmax``; ``fl()`` is one float32 rounding, round-half-even):

* **tiny-scale guard** :func:`inverse`: ``inv(S) = 1 / (S + 1e-6)`` if ``S <= 1e-30`` else
  ``1 / S`` (float32 constants ``fl(1e-30)``, ``fl(1e-6)``);
* **multiplier** ``c = fl(qmax * inv(S))``, then ``v = fl(c * x)`` (C++ evaluates
  ``qmax * inv_s * x`` left to right; ``x * qmax / S`` and friends differ in the last bit);
* ``round_type=0`` (:func:`quantize_rt0`): ``q = RNE(v)``, then clip **after** rounding to
  ``[-qmax - 1, qmax]``;
* ``round_type=1`` (:func:`quantize_rt1`): clip ``x`` to ``[-S, S]`` **before** multiplying,
  then round half away from zero (so ``q`` stays in ``[-qmax, qmax]``);
* dequantize (:func:`dequantize`): ``y = fl(fl(q * S) / qmax)``, never ``q * fl(S / qmax)``;
* ``qmax = 2^(bit_length - 1) - 1`` for the ``fake_*`` ops; ``quantize_linear`` and
  ``dequantize_linear`` use their ``qmax`` argument and ignore ``bit_length``, ``qmin`` and
  ``zero_point`` (as Paddle does);
* FP8 (``quantize_linear`` with ``round_type=0`` and ``qmax`` 448 / 57344): the rounding is
  Paddle's CPU float8 conversion (:mod:`refquant.kernels._paddle_fp8`) and the clip bounds
  are ``[-qmax, qmax]``.

Inputs: the quantize kernels are registered on CPU for float32 only, so ``x`` must be a
float32 array (Python scalars and lists are converted to float32, as ``paddle.to_tensor``
does); float16 / float64 arrays raise ``TypeError`` naming the argument, like Paddle's
"kernel not registered" error. ``dequantize_linear`` and ``fake_dequantize_max_abs`` also
accept the other dtypes Paddle's CPU kernels accept (see each docstring). Negative scales
raise ``ValueError``. NaN, +-Inf, ``S = 0`` and ``S = inf`` are *defined* for these kernels
and are emulated; each docstring says what happens. Caller arrays are never modified;
results are fresh arrays.

Rules shared by every public function here (the primitives included):

* **empty input**: elementwise kernels (:func:`quantize_linear`, :func:`dequantize_linear`,
  :func:`fake_dequantize_max_abs`, :func:`quantize`, :func:`quantize_rt0`,
  :func:`quantize_rt1`, :func:`dequantize`, :func:`inverse`, :func:`flush_denormals`, the
  moving-average ops with ``is_test=True``) return an empty result of the same shape;
  reductions (:func:`abs_max`, :func:`channel_abs_max`, the ``fake_*abs_max`` ops and the
  moving-average ops in training) raise ``ValueError``: an empty tensor has no abs-max.
* **wider input**: float64 data is never narrowed silently past float32's range: a finite
  float64 value beyond it (in Python numbers and lists, which are converted to the kernel's
  dtype, or in a float64 ``q`` that :func:`dequantize_linear` casts to a float32 / float16
  scale's dtype) raises ``ValueError`` naming the argument instead of becoming ``inf``.
  float64 arithmetic (a float64 scale in :func:`dequantize_linear`, float64 ``x`` in
  :func:`fake_dequantize_max_abs`) keeps float64. The float16 cast of
  :func:`dequantize_linear` (codes above 65504 become ``inf``) is Paddle's own arithmetic
  and is emulated.
* **byte order**: big-endian arrays are read by value (converted to native byte order), so
  they give the same bits as native ones.
* **types**: complex, bool, object and string input raise ``TypeError``; integer
  arguments (``qmax``, ``round_type``, axes, bit widths) must be integers and in range,
  flags must be bools: nothing is truncated or replaced by a default.

Denormals: which floating-point mode a Paddle op runs in depends on how it is called, not
on the kernel. ``paddle._legacy_C_ops`` (the legacy dygraph tracer, the only eager entry
to ``quantize_linear`` / ``dequantize_linear``) and the inference executor enable
flush-to-zero and denormals-are-zero; the eager ``paddle._C_ops`` functions (what
``paddle.nn.quant`` calls for the ``fake_*`` ops) do not. So :func:`quantize_linear` and
:func:`dequantize_linear` flush by default (``flush_denormals=True``) and the ``fake_*``
functions never flush (see :func:`flush_denormals`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._validation import (
    _describe,
    as_float_array,
    as_real_array,
    check_bits,
    check_flag,
    check_int,
    check_real,
    check_scale_values,
    native,
    to_float_dtype,
)
from ._paddle_fp8 import E4M3_QMAX, E5M2_QMAX, paddle_cpu_fp8_round
from ._rounding import round_half_away, round_half_even

__all__ = [
    "inverse",
    "quantize_rt0",
    "quantize_rt1",
    "quantize",
    "dequantize",
    "abs_max",
    "channel_abs_max",
    "quantize_linear",
    "dequantize_linear",
    "fake_quantize_abs_max",
    "fake_quantize_dequantize_abs_max",
    "fake_channel_wise_quantize_abs_max",
    "fake_channel_wise_quantize_dequantize_abs_max",
    "fake_dequantize_max_abs",
    "fake_quantize_moving_average_abs_max",
    "fake_quantize_dequantize_moving_average_abs_max",
    "MovingAverageResult",
    "FP8_QMAX",
    "flush_denormals",
]

_F32 = np.float32
_TINY = _F32(1e-30)
_EPS = _F32(1e-6)
FP8_QMAX = (E4M3_QMAX, E5M2_QMAX)
"""``qmax`` values that switch ``round_type=0`` to the float8 conversion (e4m3fn, e5m2)."""


# --------------------------------------------------------------------------- validation


def _as_array(
    x: Any, name: str, dtypes: tuple[type, ...] = (np.float32,), allow_empty: bool = False
) -> np.ndarray:
    """``x`` as an ndarray of one of ``dtypes`` (never copied, never written to).

    NumPy arrays and scalars must already have an accepted dtype (``TypeError`` otherwise);
    big-endian ones are converted to native byte order. Python numbers and (nested) lists
    are converted to ``dtypes[0]``; a value beyond its range raises ``ValueError``.
    """
    if isinstance(x, (np.ndarray, np.generic)):
        arr = native(np.asarray(x))
        if arr.dtype.type not in dtypes:
            allowed = ", ".join(np.dtype(d).name for d in dtypes)
            raise TypeError(
                f"{name} must have dtype in ({allowed}) like Paddle's CPU kernel, got dtype "
                f"{arr.dtype}"
            )
    else:
        if x is None or isinstance(x, (str, bytes, bool)):
            raise TypeError(f"{name} must be a numeric array, got {_describe(x)}")
        try:
            probe = np.asarray(x)
        except Exception as exc:
            raise TypeError(f"{name} must be array-like, got {_describe(x)}") from exc
        if probe.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a numeric array, got {_describe(x)}")
        arr = to_float_dtype(probe, dtypes[0], name)
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def _check_int(value: Any, name: str) -> int:
    return check_int(value, name)


def _check_round_type(round_type: Any) -> int:
    rt = _check_int(round_type, "round_type")
    if rt not in (0, 1):
        raise ValueError(f"round_type must be 0 or 1, got {rt}")
    return rt


def _check_qmax(qmax: Any) -> int:
    q = _check_int(qmax, "qmax")
    if not (1 <= q <= 32767 or q == E5M2_QMAX):
        raise ValueError(
            f"qmax must be in [1, 32767] (2..16-bit grids, 448 = float8 e4m3) or 57344 "
            f"(float8 e5m2), got {q}"
        )
    return q


def _check_quant_axis(quant_axis: Any, ndim: int, allow_per_tensor: bool = True) -> int:
    axis = _check_int(quant_axis, "quant_axis")
    allowed = (-1, 0, 1) if allow_per_tensor else (0, 1)
    if axis not in allowed:
        raise ValueError(
            f"quant_axis must be one of {allowed} (Paddle's CPU kernels support "
            f"{'per-tensor (-1), ' if allow_per_tensor else ''}axis 0 and axis 1 only), "
            f"got {axis}"
        )
    if axis >= 0 and axis >= ndim:
        raise ValueError(f"quant_axis={axis} is out of range for an array of rank {ndim}")
    return axis


def _check_scale_values(scale: np.ndarray, name: str) -> None:
    check_scale_values(scale, name, allow_zero=True, allow_nonfinite=True,
                       note=" (0, +inf and NaN are emulated)")


def _per_tensor_scale(scale: np.ndarray, name: str) -> np.ndarray:
    if scale.size != 1 or scale.ndim > 1:
        raise ValueError(
            f"{name} must hold exactly one value (shape () or (1,)) for per-tensor "
            f"quantization, got shape {scale.shape}"
        )
    _check_scale_values(scale, name)
    return scale.reshape(())


def _per_channel_scale(scale: np.ndarray, name: str, x_shape: tuple[int, ...], axis: int
                       ) -> np.ndarray:
    channels = x_shape[axis]
    if scale.shape != (channels,):
        raise ValueError(
            f"{name} must have shape ({channels},) to match x.shape[{axis}] = {channels}, "
            f"got shape {scale.shape}"
        )
    _check_scale_values(scale, name)
    return _along_axis(scale, len(x_shape), axis)


def _along_axis(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Reshape 1-D ``v`` so it broadcasts along ``axis`` of a rank-``ndim`` array."""
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return v.reshape(shape)


def _check_flag(value: Any, name: str) -> bool:
    return check_flag(value, name)


def _float_param(value: Any, name: str) -> np.float32:
    """An op attribute of type float: a real number, finite once rounded to float32."""
    return _F32(check_real(value, name, dtype=_F32))


def _broadcasts_to(scale: np.ndarray, x: np.ndarray, name: str) -> None:
    """``scale`` must broadcast against ``x`` without enlarging it."""
    try:
        shape = np.broadcast_shapes(x.shape, scale.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise ValueError(
            f"{name} of shape {scale.shape} must broadcast to x's shape {x.shape}"
        )


# --------------------------------------------------------------------------- primitives


def flush_denormals(a: np.ndarray) -> np.ndarray:
    """Replace float32 / float64 subnormals by a zero of the same sign (x86 FTZ + DAZ).

    Paddle's legacy dygraph tracer (``Tracer::TraceOp``, i.e. ``paddle._legacy_C_ops``)
    and its inference executor (``NaiveExecutor``) run every op under
    ``platform::ScopedFlushDenormal``, which sets the MXCSR flush-to-zero and
    denormals-are-zero bits: subnormal operands read as zero and subnormal results are
    written as zero. The eager ``paddle._C_ops`` path does not. float16 arrays are returned
    unchanged: Eigen's ``half`` arithmetic goes through float32, where float16 subnormals are
    normal numbers; integer arrays too.

    Returns a fresh array in native byte order; ``a`` must hold real numbers (``TypeError``
    for bool, complex, object and string input). Empty input gives an empty result.
    """
    return np.array(_flush(as_real_array(a, "a")))


def _flush(a: Any) -> np.ndarray:
    """:func:`flush_denormals` without the checks; returns ``a`` itself when nothing changes."""
    a = np.asarray(a)
    if a.dtype.kind != "f" or a.dtype == np.float16:
        return a
    tiny = np.finfo(a.dtype).tiny
    with np.errstate(invalid="ignore"):
        sub = (np.abs(a) < tiny) & (a != 0)
    if not sub.any():
        return a
    return np.where(sub, np.copysign(a.dtype.type(0), a), a).astype(a.dtype, copy=False)


def _fz(a: Any, flush: bool) -> np.ndarray:
    return _flush(a) if flush else np.asarray(a)


def inverse(s: Any, flush: bool = False) -> np.ndarray:
    """Paddle's guarded reciprocal ``phi::funcs::inverse``, elementwise in float32.

    ``inv(s) = fl(1 / fl(s + 1e-6))`` if ``s <= 1e-30`` else ``fl(1 / s)``, with float32
    constants ``fl(1e-30)`` and ``fl(1e-6)``. ``s = 0`` (either sign) gives ``1e6``
    (``fl(1 / fl(1e-6))``), every ``s <= 1e-30`` (negative ones included) takes the same
    branch, ``s = +inf`` gives ``0`` and ``s = NaN`` gives NaN (the comparison is false).

    ``flush=True`` applies :func:`flush_denormals` to ``s`` and to the result (a scale above
    about ``8.5e37`` then has ``inv = 0``).

    ``s`` is float32 (Python numbers and lists are converted); an empty ``s`` gives an empty
    result.

    Matches ``inverse`` in ``paddle/phi/kernels/funcs/fake_quantize_functor.h``.
    """
    return _inverse(_as_array(s, "s", allow_empty=True), _check_flag(flush, "flush"))


def _inverse(s: np.ndarray, flush: bool = False) -> np.ndarray:
    s = _fz(s, flush)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(s <= _TINY, _F32(1) / (s + _EPS), _F32(1) / s)
    return _fz(np.asarray(out, dtype=_F32), flush)


def _multiplier(scale: np.ndarray, qmax: int, flush: bool = False) -> np.ndarray:
    """``c = fl(qmax * inv(S))`` (float32, same shape as ``scale``)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _fz(np.asarray(_F32(qmax) * _inverse(scale, flush), dtype=_F32), flush)


def quantize_rt0(x: np.ndarray, scale: np.ndarray, qmax: int, flush: bool = False
                 ) -> np.ndarray:
    """``round_type=0`` quantization (``phi::funcs::QuantTensorFunctor``), float32 codes.

    Float32 operation sequence::

        c = fl(qmax * inv(S))            # inv: the 1e-30 guard, see inverse()
        v = fl(c * x)
        q = RNE(v)                       # roundWithTiesToEven; FP8 qmax: float8 round trip
        q = qmax       if q > qmax       # clip AFTER rounding
        q = -qmax - 1  if q < -qmax - 1  # -qmax for the FP8 qmax values 448 / 57344

    ``x`` and ``scale`` must be float32 and broadcast together (per-channel callers reshape
    ``scale``). Special values: NaN in ``x`` gives NaN (comparisons with NaN are false, so
    the clip keeps it); ``+-inf`` saturate to ``qmax`` / ``-qmax - 1``; ``-0.0`` and
    negatives that round to zero give ``-0.0``; ``S = 0`` (or any ``S <= 1e-30``) uses
    ``c = fl(qmax * 1e6)`` so e.g. ``x = 1e-7, qmax = 127`` gives 13; ``S = inf`` gives
    ``c = 0``, so finite ``x`` give ``+-0.0`` and ``+-inf`` give NaN (``0 * inf``).

    FP8 (``qmax`` 448 or 57344): RNE is replaced by Paddle's CPU float8 conversion
    (:func:`refquant.kernels._paddle_fp8.paddle_cpu_fp8_round`): e4m3 maps NaN and
    ``|v| >= 480`` to ``+-448`` but ``464 < |v| < 480`` to NaN; e5m2 keeps NaN and saturates
    the rest at ``+-57344``.

    Matches ``QuantTensorFunctor`` in ``paddle/phi/kernels/funcs/fake_quantize_functor.h``
    as called by ``ClipAndFakeQuantFunctor`` / ``ChannelClipAndFakeQuantFunctor``
    (``fake_quantize_functor.cc``).
    """
    return _quantize_rt0(*_quantize_args(x, scale, qmax, flush))


def _quantize_args(x: Any, scale: Any, qmax: Any, flush: Any
                   ) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Checks of the quantize primitives: float32 ``x`` (may be empty) and ``scale`` (>= 0;
    0, +inf and NaN are emulated) that broadcasts to ``x``'s shape, ``qmax``, ``flush``."""
    xa = _as_array(x, "x", allow_empty=True)
    sa = _as_array(scale, "scale", allow_empty=True)
    _broadcasts_to(sa, xa, "scale")
    _check_scale_values(sa, "scale")
    return xa, sa, _check_qmax(qmax), _check_flag(flush, "flush")


def _quantize_rt0(x: np.ndarray, scale: np.ndarray, qmax: int, flush: bool = False
                  ) -> np.ndarray:
    c = _multiplier(scale, qmax, flush)
    with np.errstate(invalid="ignore", over="ignore"):
        v = _fz(np.asarray(c * _fz(x, flush), dtype=_F32), flush)
    if qmax in FP8_QMAX:
        q = paddle_cpu_fp8_round(v, qmax)
        lo = _F32(-qmax)
    else:
        q = round_half_even(v)
        lo = _F32(-qmax - 1)
    hi = _F32(qmax)
    with np.errstate(invalid="ignore"):
        q = np.where(q > hi, hi, q)
        q = np.where(q < lo, lo, q)
    return np.asarray(q, dtype=_F32)


def quantize_rt1(x: np.ndarray, scale: np.ndarray, qmax: int, flush: bool = False
                 ) -> np.ndarray:
    """``round_type=1`` quantization (clip first, round half away from zero), float32 codes.

    Float32 operation sequence::

        xc = -S if x < -S else (S if x > S else x)   # phi::ClipFunctor(-S, S), BEFORE scaling
        c  = fl(qmax * inv(S))
        q  = round_half_away(fl(c * xc))              # Eigen .round() / std::round

    There is no clip after rounding; ``|q| <= qmax`` because ``|xc| <= S``. This path never
    uses the float8 conversion, even for ``qmax`` 448 / 57344. Special values: NaN in ``x``
    gives NaN; ``+-inf`` clip to ``+-S``, so give ``+-qmax``; ``-0.0`` and small negatives
    give ``-0.0``; ``S = 0`` clips every ``x`` to ``+-0`` so the result is ``+-0.0``
    (``-0.0`` for ``x <= -0.0``; with ``S = -0.0`` the clip bounds swap their signs and
    positive ``x`` give ``-0.0``); ``S = inf`` leaves ``x`` unclipped with ``c = 0``, so
    finite ``x`` give ``+-0.0`` and ``+-inf`` give NaN; ``S = NaN`` gives NaN everywhere.

    Matches the ``round_type == 1`` branches of ``ClipAndFakeQuantFunctor`` and
    ``ChannelClipAndFakeQuantFunctor`` in ``paddle/phi/kernels/funcs/fake_quantize_functor.cc``.
    """
    return _quantize_rt1(*_quantize_args(x, scale, qmax, flush))


def _quantize_rt1(x: np.ndarray, scale: np.ndarray, qmax: int, flush: bool = False
                  ) -> np.ndarray:
    xf, sf = _fz(x, flush), _fz(scale, flush)  # DAZ: the compares see flushed operands
    with np.errstate(invalid="ignore"):
        xc = np.where(xf < -sf, -sf, np.where(xf > sf, sf, xf))
    c = _multiplier(scale, qmax, flush)
    with np.errstate(invalid="ignore", over="ignore"):
        v = _fz(np.asarray(c * xc, dtype=_F32), flush)
    return np.asarray(round_half_away(v), dtype=_F32)


def quantize(x: np.ndarray, scale: np.ndarray, qmax: int, round_type: int,
             flush: bool = False) -> np.ndarray:
    """:func:`quantize_rt0` or :func:`quantize_rt1` by ``round_type`` (0 or 1).

    ``flush=True`` emulates the FTZ/DAZ floating-point mode (:func:`flush_denormals` on every
    operand and result); it only matters for scales above about ``8.5e37`` (``inv(S)`` is
    subnormal and becomes 0) since subnormal products round to zero anyway.

    Checks (shared by :func:`quantize_rt0` / :func:`quantize_rt1`): ``x`` and ``scale`` are
    float32 (Python numbers and lists are converted), ``scale`` is >= 0 and broadcasts to
    ``x``'s shape, ``qmax`` is in [1, 32767] or 57344, ``round_type`` is 0 or 1 (any other
    value raises instead of selecting a branch), ``flush`` is a bool. Empty ``x`` gives an
    empty result.
    """
    rt = _check_round_type(round_type)
    xa, sa, qm, fl = _quantize_args(x, scale, qmax, flush)
    return _quantize(xa, sa, qm, rt, fl)


def _quantize(x: np.ndarray, scale: np.ndarray, qmax: int, round_type: int,
              flush: bool = False) -> np.ndarray:
    if round_type == 0:
        return _quantize_rt0(x, scale, qmax, flush)
    return _quantize_rt1(x, scale, qmax, flush)


def dequantize(q: np.ndarray, scale: np.ndarray, max_range: Any, flush: bool = False
               ) -> np.ndarray:
    """Paddle's dequantize step ``y = fl(fl(q * S) / max_range)`` in ``scale``'s dtype.

    ``q`` must already be in ``scale``'s dtype; ``max_range`` is converted to it first
    (``static_cast<D>(max_range)``: 32767 becomes 32768 in float16). Two roundings, never
    ``q * fl(S / max_range)``. ``flush=True`` applies :func:`flush_denormals` to operands
    and results (the FTZ/DAZ mode). float16 arithmetic rounds after each operation (Eigen's
    ``half`` computes each operation in float32 and rounds the result, which is the
    correctly rounded float16 result). NaN and infinities propagate by IEEE rules
    (``0 * inf = NaN``); signs of zero are kept.

    Matches ``DequantizeFunctor`` / ``ChannelDequantizeFunctorV2`` in
    ``paddle/phi/kernels/cpu/quantize_linear_kernel.cc`` and the dequantize half of
    ``ClipAndFakeQuantDequantFunctor`` / ``ChannelClipFakeQuantDequantFunctor``
    (``paddle/phi/kernels/funcs/fake_quantize_functor.cc``).

    Checks: ``scale`` is float16 / float32 / float64 (Python numbers and lists become
    float32) and >= 0; ``q`` has ``scale``'s dtype (Python numbers and lists are converted
    to it; a value beyond its range raises) and ``scale`` broadcasts to its shape;
    ``max_range`` is a real number, finite and > 0 in that dtype (``max_range=0`` would
    give ``inf``); ``flush`` is a bool. Empty ``q`` gives an empty result.
    """
    sa = _as_array(scale, "scale", dtypes=_DQ_SCALE_DTYPES, allow_empty=True)
    qa = _as_array(q, "q", dtypes=(sa.dtype.type,), allow_empty=True)
    _broadcasts_to(sa, qa, "scale")
    _check_scale_values(sa, "scale")
    m = check_real(max_range, "max_range", positive=True, dtype=sa.dtype.type)
    return _dequantize(qa, sa, m, _check_flag(flush, "flush"))


def _dequantize(q: np.ndarray, scale: np.ndarray, max_range: Any, flush: bool = False
                ) -> np.ndarray:
    dt = np.asarray(scale).dtype
    m = dt.type(max_range)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        prod = _fz(np.asarray(_fz(q, flush) * _fz(scale, flush), dtype=dt), flush)
        return _fz(np.asarray(prod / m, dtype=dt), flush)


def abs_max(x: np.ndarray) -> np.float32:
    """Paddle CPU's ``FindAbsMaxFunctor``: ``|x_k|`` with ``k = max_element`` by ``|x|``.

    ``std::max_element`` with the comparison ``|a| < |b|`` keeps the running maximum unless
    a later element is strictly larger. Comparisons with NaN are false, so:

    * a NaN at flat index 0 is never replaced: the scale is NaN;
    * a NaN anywhere else is skipped;
    * ``+-inf`` gives ``inf``; ``-0.0`` gives ``0.0``.

    ``x`` is converted to float32 first (a no-op for the float32 arrays the kernels pass;
    rounding is monotone, so this equals rounding the abs-max of a wider input).

    ``x`` must be a non-empty floating array (float16 / float32 / float64; Python numbers and
    lists are read as float64): an empty ``x`` has no abs-max and raises ``ValueError``, a
    float64 value beyond float32's range raises ``ValueError`` instead of becoming ``inf``.

    Matches ``FindAbsMaxFunctor`` in ``paddle/phi/kernels/funcs/fake_quantize_functor.cc``.
    """
    return _abs_max(_as_f32_data(x))


def _as_f32_data(x: Any) -> np.ndarray:
    """Non-empty floating ``x`` for the abs-max reductions, as float32 (see :func:`abs_max`)."""
    return to_float_dtype(as_float_array(x, "x"), _F32, "x")


def _abs_max(x: np.ndarray) -> np.float32:
    flat = np.asarray(x, dtype=_F32).reshape(-1)
    if np.isnan(flat[0]):
        return _F32(np.nan)
    a = np.abs(flat)
    with np.errstate(invalid="ignore"):
        return _F32(np.nanmax(a)) if a.size > 1 else _F32(a[0])


def _chunk_abs_max(chunks: np.ndarray, flush: bool = False) -> np.ndarray:
    """``FindAbsMaxFunctor`` on each row of a 2-D array (NaN first element -> NaN).

    ``flush=True``: the magnitudes are compared and stored under FTZ/DAZ
    (:func:`flush_denormals`), so subnormals count as 0.
    """
    a = _fz(np.abs(chunks), flush)
    a = np.where(np.isnan(a), _F32(-1), a)  # skipped unless first (handled below)
    m = a.max(axis=1)
    return np.where(np.isnan(chunks[:, 0]), _F32(np.nan), m).astype(_F32)


def channel_abs_max(x: np.ndarray, quant_axis: int, flush: bool = False) -> np.ndarray:
    """Paddle CPU's ``FindChannelAbsMaxFunctor`` (``quant_axis`` 0 or 1), float32 ``(C,)``.

    * axis 0: each channel ``x[i]`` is one contiguous run, reduced like :func:`abs_max`: a
      NaN as the channel's first element makes that channel's scale NaN, other NaNs are
      skipped.
    * axis 1: the scale starts at 0 and is updated with
      ``std::max(s_j, abs_max(x[i, j]))`` for each ``i`` in order. ``std::max`` keeps its
      first argument when the comparison is false, so a run ``x[i, j]`` whose **first**
      element is NaN contributes nothing at all (its other, possibly larger, values are
      ignored) and the scale of axis 1 is never NaN.

    ``flush=True`` runs it in the FTZ/DAZ mode of ``paddle._legacy_C_ops`` (what
    PaddleSlim's channel-wise quanter calls): subnormal magnitudes compare and are stored as
    0, so a channel of only subnormals and zeros gets scale 0.

    Checks: ``x`` as in :func:`abs_max` (non-empty, floating, converted to float32);
    ``quant_axis`` must be 0 or 1 and below ``x.ndim`` (any other value raises instead of
    being read as axis 1); ``flush`` is a bool.

    Matches ``FindChannelAbsMaxFunctor`` in ``paddle/phi/kernels/funcs/fake_quantize_functor.cc``.
    """
    xa = _as_f32_data(x)
    axis = _check_quant_axis(quant_axis, xa.ndim, allow_per_tensor=False)
    return _channel_abs_max(xa, axis, _check_flag(flush, "flush"))


def _channel_abs_max(x: np.ndarray, quant_axis: int, flush: bool = False) -> np.ndarray:
    if quant_axis == 0:
        return _chunk_abs_max(x.reshape(x.shape[0], -1), flush)
    d0, d1 = x.shape[0], x.shape[1]
    runs = _chunk_abs_max(x.reshape(d0 * d1, -1), flush).reshape(d0, d1)
    runs = np.where(np.isnan(runs), _F32(0), runs)  # std::max(s, NaN) keeps s (>= 0)
    return runs.max(axis=0).astype(_F32)


# --------------------------------------------------------------------------- quantize_linear


def quantize_linear(
    x: Any,
    scale: Any,
    zero_point: Any = None,
    quant_axis: int = -1,
    bit_length: int = 8,
    qmin: int = -128,
    qmax: int = 127,
    round_type: int = 0,
    *,
    flush_denormals: bool = True,
) -> np.ndarray:
    """Paddle's ``quantize_linear`` op in inference mode (``is_test=True``), CPU.

    Returns float32 integer-valued codes (Paddle's output is a float32 tensor), same shape
    as ``x``. ``quant_axis=-1``: one scale (shape ``()`` or ``(1,)``); ``quant_axis`` 0 or 1:
    ``scale`` has shape ``(x.shape[quant_axis],)``. Per element, with ``S`` the element's
    scale, the float32 sequence is :func:`quantize_rt0` (``round_type=0``, the default:
    ``c = fl(qmax * inv(S))``, ``RNE(fl(c * x))``, clip after to ``[-qmax - 1, qmax]``) or
    :func:`quantize_rt1` (``round_type=1``: clip ``x`` to ``[-S, S]`` first, round half
    away). With ``round_type=0`` and ``qmax`` 448 (e4m3fn) or 57344 (e5m2) the rounding is
    Paddle's CPU float8 conversion and the bounds are ``[-qmax, qmax]``: e4m3 maps NaN and
    ``|v| >= 480`` to ``+-448`` but ``464 < |v| < 480`` to NaN; e5m2 keeps NaN.

    As in Paddle, **only** ``qmax`` and ``round_type`` affect the result: ``qmin``,
    ``bit_length`` and ``zero_point`` are ignored (``qmin=-7, qmax=7`` still yields -8).
    They are validated (integers; ``bit_length`` in 2..16) so typos do not go unnoticed.

    Special values (``x``): NaN gives NaN; ``+-inf`` give ``qmax`` / ``-qmax - 1``
    (``round_type=1``: ``+-qmax``); ``-0.0`` and negatives rounding to zero give ``-0.0``.
    Scales: ``S <= 1e-30`` (0 included) uses ``inv = 1 / (S + 1e-6)`` (``round_type=0``,
    ``x = 1e-7`` gives 13; ``round_type=1`` gives ``+-0.0``); ``S = inf`` gives ``+-0.0`` for
    finite ``x`` and NaN for ``+-inf``; ``S = NaN`` gives NaN; ``S < 0`` raises ``ValueError``.

    Errors: ``x`` and ``scale`` must be float32 (the CPU kernel is float32-only; float16
    raises ``TypeError``); ``quant_axis`` other than -1, 0, 1 raises ``ValueError`` (Paddle
    raises for axis >= 2 and silently treats every negative axis as per-tensor);
    ``qmax`` must be in [1, 32767] or 57344.

    ``flush_denormals`` (default True): Paddle runs ``quantize_linear`` through its legacy
    dygraph tracer (``paddle._legacy_C_ops``, what ``LinearQuanter`` calls) or its inference
    executor, both of which enable FTZ/DAZ (:func:`flush_denormals`); then a scale above
    about ``8.5e37`` has a subnormal ``inv(S)`` that becomes 0 and every finite ``x`` gives
    ``+-0.0``. Pass False for a caller that runs the kernel without that mode.

    Matches ``QuantizeLinearInferKernel`` in ``paddle/phi/kernels/impl/quantize_linear_impl.h``
    with ``ClipAndFakeQuantFunctor`` / ``ChannelClipAndFakeQuantFunctor``
    (``paddle/phi/kernels/funcs/fake_quantize_functor.cc``). Training mode (``is_test=False``,
    moving average with a hard-coded rate 0.9) is not emulated here; see
    :func:`fake_quantize_moving_average_abs_max`.
    """
    x = _as_array(x, "x", allow_empty=True)
    s = _as_array(scale, "scale", allow_empty=True)
    if zero_point is not None:
        _as_array(zero_point, "zero_point", dtypes=(np.float32, np.float64, np.int32,
                                                    np.int64, np.int8), allow_empty=True)
    check_bits(bit_length, "bit_length")
    _check_int(qmin, "qmin")
    qm = _check_qmax(qmax)
    rt = _check_round_type(round_type)
    axis = _check_quant_axis(quant_axis, x.ndim)
    if axis < 0:
        s_b = _per_tensor_scale(s, "scale")
    else:
        s_b = _per_channel_scale(s, "scale", x.shape, axis)
    return _quantize(x, s_b, qm, rt, _check_flag(flush_denormals, "flush_denormals"))


_DQ_X_DTYPES = (np.float32, np.float64, np.int8)
_DQ_SCALE_DTYPES = (np.float32, np.float16, np.float64)


def dequantize_linear(
    q: Any,
    scale: Any,
    zero_point: Any = None,
    quant_axis: int = -1,
    bit_length: int = 8,
    qmin: int = -128,
    qmax: int = 127,
    *,
    flush_denormals: bool = True,
) -> np.ndarray:
    """Paddle's ``dequantize_linear`` op, CPU: ``y = fl(fl(D(q) * S) / D(qmax))`` in dtype D.

    ``D`` is ``scale``'s dtype (float32, float16 or float64) and is also the output dtype:
    ``q`` (float32, float64 or int8, the dtypes Paddle's CPU kernel is registered for) is
    first cast to ``D`` (float64 ``q`` with a float32 scale is rounded to float32 here), then
    multiplied by its scale and divided by ``qmax`` converted to ``D`` (in float16, 32767
    becomes 32768). Each operation rounds once in ``D`` (see :func:`dequantize`).
    ``quant_axis=-1``: one scale; 0 or 1: ``scale`` has shape ``(q.shape[quant_axis],)``.

    As in Paddle, ``zero_point``, ``qmin`` and ``bit_length`` are ignored (validated only),
    and there is no float8 special case: ``qmax=448`` simply divides by 448.

    Special values: NaN propagates; ``q = +-inf`` or a product overflowing ``D`` gives
    ``+-inf``; ``S = inf`` gives ``+-inf`` (NaN for ``q = 0``); ``S = 0`` gives ``+-0.0``;
    signs of zero are kept. ``S < 0`` raises ``ValueError``.

    Errors: ``quant_axis`` other than -1, 0, 1 raises ``ValueError`` (Paddle's CPU kernel
    accepts ``quant_axis >= 2`` but returns **uninitialised memory**; every negative axis
    means per-tensor there); a per-channel ``scale`` whose length differs from
    ``q.shape[quant_axis]`` raises ``ValueError`` (Paddle raises too).

    ``flush_denormals`` (default True, see :func:`quantize_linear`): float32 / float64
    subnormal operands and results become signed zeros (``q = 1e-40`` gives 0 whatever the
    scale; ``q * S`` below ``2^-126`` gives 0). float16 computation is not affected.

    Matches ``DeQuantizeLinearKernel`` / ``DeQuantizeLinearImpl`` in
    ``paddle/phi/kernels/impl/quantize_linear_impl.h`` with ``DequantizeFunctor`` and
    ``ChannelDequantizeFunctorV2`` in ``paddle/phi/kernels/cpu/quantize_linear_kernel.cc``.
    """
    qa = _as_array(q, "q", dtypes=_DQ_X_DTYPES, allow_empty=True)
    s = _as_array(scale, "scale", dtypes=_DQ_SCALE_DTYPES, allow_empty=True)
    if zero_point is not None:
        _as_array(zero_point, "zero_point", dtypes=(np.float32, np.float64, np.int32,
                                                    np.int64, np.int8), allow_empty=True)
    check_bits(bit_length, "bit_length")
    _check_int(qmin, "qmin")
    qm = _check_qmax(qmax)
    axis = _check_quant_axis(quant_axis, qa.ndim)
    s_b = _per_tensor_scale(s, "scale") if axis < 0 else _per_channel_scale(
        s, "scale", qa.shape, axis)
    flush = _check_flag(flush_denormals, "flush_denormals")
    with np.errstate(over="ignore", invalid="ignore"):
        # phi::Cast to the scale's dtype runs under the same FTZ/DAZ mode
        q_in = _fz(qa, flush)
        if q_in.dtype == np.float64 and s.dtype != np.float64:
            to_float_dtype(q_in, _F32, "q")  # float64 beyond float32's range raises
        qd = _fz(q_in.astype(s.dtype), flush)
    return _dequantize(qd, s_b, _F32(qm), flush)


# --------------------------------------------------------------------------- fake ops


def _fake_qmax(bit_length: Any) -> int:
    b = check_bits(bit_length, "bit_length")
    return 2 ** (b - 1) - 1


def fake_quantize_abs_max(
    x: Any, bit_length: int = 8, round_type: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Paddle's ``fake_quantize_abs_max`` (CPU): per-tensor abs-max, then quantize.

    Returns ``(out, scale)``: float32 integer-valued codes shaped like ``x`` and the scale as
    a float32 array of shape ``(1,)``. Steps: ``S = abs_max(x)`` (:func:`abs_max`), then
    :func:`quantize_rt1` (default ``round_type=1``: clip to ``[-S, S]``, ``fl(c * x)`` with
    ``c = fl(qmax * inv(S))``, round half away) or :func:`quantize_rt0` (RNE, clip after to
    ``[-qmax - 1, qmax]``), ``qmax = 2^(bit_length - 1) - 1``.

    Special values: a NaN at flat index 0 makes ``S`` NaN and every output NaN; NaNs elsewhere
    are skipped by the abs-max and give NaN only in their own position. Any ``+-inf`` makes
    ``S = inf``, so ``c = 0``: finite ``x`` give ``+-0.0`` and ``+-inf`` give NaN. An
    all-zero ``x`` gives ``S = 0`` and zeros (``-0.0`` where ``x`` is ``-0.0``).

    Matches ``FakeQuantizeAbsMaxKernel`` (``paddle/phi/kernels/impl/fake_quantize_kernel_impl.h``)
    with ``FindAbsMaxFunctor`` / ``ClipAndFakeQuantFunctor``
    (``paddle/phi/kernels/funcs/fake_quantize_functor.cc``).
    """
    xa = _as_array(x, "x")
    qmax = _fake_qmax(bit_length)
    rt = _check_round_type(round_type)
    s = np.asarray(_abs_max(xa))
    return _quantize(xa, s, qmax, rt), np.array([s], dtype=_F32)


def fake_quantize_dequantize_abs_max(
    x: Any, bit_length: int = 8, round_type: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Paddle's ``fake_quantize_dequantize_abs_max`` (CPU): abs-max, quantize, dequantize.

    Returns ``(out, scale)`` (float32, shapes ``x.shape`` and ``(1,)``). ``S = abs_max(x)``,
    ``q`` as in :func:`fake_quantize_abs_max`, then ``out = fl(fl(q * S) / qmax)`` (two
    roundings; ``q * fl(S / qmax)`` differs). ``qmax = 2^(bit_length - 1) - 1``.

    Special values: NaN at flat index 0 gives ``S = NaN`` and all-NaN output; other NaNs stay
    NaN in place. Any ``+-inf`` gives ``S = inf`` and then ``q * S = 0 * inf``: **every
    output is NaN**. All-zero ``x`` returns zeros with the sign of ``x``.

    Matches ``FakeQuantizeDequantizeAbsMaxKernel``
    (``paddle/phi/kernels/impl/fake_quantize_kernel_impl.h``) with
    ``ClipAndFakeQuantDequantFunctor`` (``paddle/phi/kernels/funcs/fake_quantize_functor.cc``).
    """
    xa = _as_array(x, "x")
    qmax = _fake_qmax(bit_length)
    rt = _check_round_type(round_type)
    s = np.asarray(_abs_max(xa))
    q = _quantize(xa, s, qmax, rt)
    return _dequantize(q, s, _F32(qmax)), np.array([s], dtype=_F32)


def _channel_args(x: Any, bit_length: Any, round_type: Any, quant_axis: Any
                  ) -> tuple[np.ndarray, int, int, int]:
    xa = _as_array(x, "x")
    qmax = _fake_qmax(bit_length)
    rt = _check_round_type(round_type)
    axis = _check_quant_axis(quant_axis, xa.ndim, allow_per_tensor=False)
    return xa, qmax, rt, axis


def fake_channel_wise_quantize_abs_max(
    x: Any, bit_length: int = 8, round_type: int = 1, quant_axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Paddle's ``fake_channel_wise_quantize_abs_max`` (CPU, ``is_test=False``).

    Returns ``(out, scales)``: float32 codes shaped like ``x`` and float32 scales of shape
    ``(x.shape[quant_axis],)``. ``scales = channel_abs_max(x, quant_axis)``
    (:func:`channel_abs_max`), then each element is quantized with its channel's scale by
    :func:`quantize_rt1` (default) or :func:`quantize_rt0`, ``qmax = 2^(bit_length-1) - 1``.
    ``quant_axis`` must be 0 or 1 (Paddle raises for anything else; so does this).

    NaN: axis 0: a NaN as a channel's first element makes that channel's scale NaN and all of
    its outputs NaN; axis 1: a run ``x[i, j, ...]`` starting with NaN is ignored by the
    channel's abs-max. Other NaNs give NaN only in place. ``+-inf`` in a channel makes its
    scale ``inf`` (outputs ``+-0.0``, NaN at the infinities).

    Matches ``FakeChannelWiseQuantizeAbsMaxKernel``
    (``paddle/phi/kernels/impl/fake_quantize_kernel_impl.h``) with
    ``FindChannelAbsMaxFunctor`` / ``ChannelClipAndFakeQuantFunctor``
    (``paddle/phi/kernels/funcs/fake_quantize_functor.cc``).
    """
    xa, qmax, rt, axis = _channel_args(x, bit_length, round_type, quant_axis)
    scales = _channel_abs_max(xa, axis)
    return _quantize(xa, _along_axis(scales, xa.ndim, axis), qmax, rt), scales


def fake_channel_wise_quantize_dequantize_abs_max(
    x: Any, bit_length: int = 8, round_type: int = 1, quant_axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Paddle's ``fake_channel_wise_quantize_dequantize_abs_max`` (CPU).

    Returns ``(out, scales)`` (float32; ``scales`` has shape ``(x.shape[quant_axis],)``).
    Per channel ``S``: ``q`` as in :func:`fake_channel_wise_quantize_abs_max`, then
    ``out = fl(fl(q * S) / qmax)``. ``quant_axis`` must be 0 or 1. NaN rules as in
    :func:`fake_channel_wise_quantize_abs_max`; a channel containing ``+-inf`` has
    ``S = inf`` and dequantizes to all NaN (``0 * inf``).

    Matches ``FakeChannelWiseQuantizeDequantizeAbsMaxKernel``
    (``paddle/phi/kernels/impl/fake_quantize_kernel_impl.h``) with
    ``ChannelClipFakeQuantDequantFunctor`` (``paddle/phi/kernels/funcs/fake_quantize_functor.cc``).
    """
    xa, qmax, rt, axis = _channel_args(x, bit_length, round_type, quant_axis)
    scales = _channel_abs_max(xa, axis)
    s_b = _along_axis(scales, xa.ndim, axis)
    q = _quantize(xa, s_b, qmax, rt)
    return _dequantize(q, s_b, _F32(qmax)), scales


def fake_dequantize_max_abs(x: Any, scale: Any, max_range: float) -> np.ndarray:
    """Paddle's ``fake_dequantize_max_abs`` (CPU): ``y = fl(fl(x * S) / T(fl32(max_range)))``.

    ``x`` is float32 or float64 (the CPU kernel's dtypes) and ``scale`` must have the same
    dtype and hold one value (Paddle reads only its first element; refquant rejects more).
    ``max_range`` is an op attribute of type float: it is rounded to float32 first, then
    converted to ``x``'s dtype. Output dtype = ``x``'s dtype. NaN / inf propagate by IEEE
    rules; signs of zero are kept; ``S < 0`` or ``max_range`` not finite and > 0 raise
    ``ValueError``.

    Matches ``FakeDequantizeMaxAbsKernel``
    (``paddle/phi/kernels/impl/fake_dequantize_kernel_impl.h``) with the CPU
    ``DequantizeFunctor`` (``paddle/phi/kernels/funcs/fake_dequantize_functor.cc``).
    """
    xa = _as_array(x, "x", dtypes=(np.float32, np.float64), allow_empty=True)
    s = _as_array(scale, "scale", dtypes=(np.float32, np.float64))
    if s.dtype != xa.dtype:
        raise TypeError(
            f"scale must have the same dtype as x ({xa.dtype}) like Paddle's kernel, got "
            f"dtype {s.dtype}"
        )
    mr = _float_param(max_range, "max_range")
    if not mr > 0:
        raise ValueError(f"max_range must be > 0, got {max_range!r}")
    s0 = _per_tensor_scale(s, "scale")
    return _dequantize(xa, s0, xa.dtype.type(mr))


# --------------------------------------------------------------------------- moving average


class MovingAverageResult(NamedTuple):
    """Outputs of the moving-average abs-max kernels.

    Field order follows refquant's API; Paddle's op returns ``(out, out_scale, out_state,
    out_accum)``, so use the names when porting code.
    """

    out: np.ndarray
    out_scale: np.ndarray
    out_accum: np.ndarray | None
    out_state: np.ndarray | None


def _state1(value: Any, name: str) -> np.ndarray:
    arr = _as_array(value, name)
    if arr.size != 1 or arr.ndim > 1:
        raise ValueError(f"{name} must hold exactly one value (shape () or (1,)), got shape "
                         f"{arr.shape}")
    return arr.reshape(())


def _moving_average_update(
    state: Any, accum: Any, cur: Any, rate: Any
) -> tuple[np.float32, np.float32, np.float32]:
    """One step of ``FindMovingAverageAbsMaxFunctor``, float32, no fused multiply-add::

        state = fl(fl(rate * state) + 1);  accum = fl(fl(rate * accum) + cur)
        scale = fl(accum / state)

    Returns ``(state, accum, scale)``; all operands must already be float32.
    """
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        st = _F32(_F32(rate * state) + _F32(1))
        acc = _F32(_F32(rate * accum) + cur)
        return st, acc, _F32(acc / st)


def _moving_average(
    x: Any, in_scale: Any, in_accum: Any, in_state: Any, moving_rate: Any, bit_length: Any,
    round_type: Any, is_test: Any, dequant: bool,
) -> MovingAverageResult:
    test = _check_flag(is_test, "is_test")
    xa = _as_array(x, "x", allow_empty=test)  # training reduces x: an abs-max needs values
    s_in = _state1(in_scale, "in_scale")
    rate = _float_param(moving_rate, "moving_rate")
    qmax = _fake_qmax(bit_length)
    rt = _check_round_type(round_type)

    if test:
        _check_scale_values(s_in, "in_scale")
        scale = s_in
        accum = None if in_accum is None else _state1(in_accum, "in_accum").reshape(1).copy()
        state = None if in_state is None else _state1(in_state, "in_state").reshape(1).copy()
    else:
        if in_accum is None or in_state is None:
            missing = "in_accum" if in_accum is None else "in_state"
            raise ValueError(f"{missing} is required when is_test=False, got None")
        acc0 = _state1(in_accum, "in_accum")
        st0 = _state1(in_state, "in_state")
        st, acc, s_new = _moving_average_update(st0, acc0, _abs_max(xa), rate)
        scale = np.asarray(s_new)
        if scale < 0:
            raise ValueError(
                f"the updated scale accum/state = {float(scale)!r} is negative; in_accum and "
                f"in_state must describe a non-negative average"
            )
        accum = np.array([acc], dtype=_F32)
        state = np.array([st], dtype=_F32)
    q = _quantize(xa, scale, qmax, rt)
    out = _dequantize(q, scale, _F32(qmax)) if dequant else q
    return MovingAverageResult(out, np.array([scale], dtype=_F32).reshape(1), accum, state)


def fake_quantize_moving_average_abs_max(
    x: Any,
    in_scale: Any,
    in_accum: Any = None,
    in_state: Any = None,
    moving_rate: float = 0.9,
    bit_length: int = 8,
    round_type: int = 1,
    is_test: bool = False,
) -> MovingAverageResult:
    """Paddle's ``fake_quantize_moving_average_abs_max`` (CPU): state in, state out.

    Returns :class:`MovingAverageResult` ``(out, out_scale, out_accum, out_state)`` (Paddle's
    own positional order is ``out, out_scale, out_state, out_accum``). All float32; the state
    outputs have shape ``(1,)``.

    Training (``is_test=False``), with ``r = fl32(moving_rate)`` and ``m = abs_max(x)``
    (:func:`abs_max`, NaN at flat index 0 poisons it)::

        state = fl(fl(r * in_state) + 1)
        accum = fl(fl(r * in_accum) + m)
        S     = fl(accum / state)
        out   = quantize(x, S)          # with the NEW scale; in_scale is not used at all

    so ``|x| > S`` saturates: ``x = -3`` with ``S = 1.63`` gives -127 (``round_type=1``,
    the default) or -128 (``round_type=0``). No fused multiply-add (measured).
    Inference (``is_test=True``): ``out = quantize(x, in_scale)``; ``in_accum`` / ``in_state``
    are optional and returned unchanged (copies, or ``None``); Paddle returns empty tensors
    for the three state outputs there. ``quantize`` is :func:`quantize_rt1` /
    :func:`quantize_rt0` with ``qmax = 2^(bit_length - 1) - 1``.

    Special values: NaN / inf in the state propagate into ``S`` (a NaN ``S`` makes every
    output NaN; ``S = inf`` gives ``+-0.0``, NaN at infinities). A negative resulting scale
    raises ``ValueError``.

    Matches ``FakeQuantOrWithDequantMovingAverageAbsMaxKernel``
    (``paddle/phi/kernels/impl/fake_quantize_kernel_impl.h``) with
    ``FindMovingAverageAbsMaxFunctor`` / ``ClipAndFakeQuantFunctor``
    (``paddle/phi/kernels/funcs/fake_quantize_functor.cc``).
    """
    return _moving_average(x, in_scale, in_accum, in_state, moving_rate, bit_length,
                           round_type, is_test, dequant=False)


def fake_quantize_dequantize_moving_average_abs_max(
    x: Any,
    in_scale: Any,
    in_accum: Any = None,
    in_state: Any = None,
    moving_rate: float = 0.9,
    bit_length: int = 8,
    round_type: int = 1,
    is_test: bool = False,
) -> MovingAverageResult:
    """Paddle's ``fake_quantize_dequantize_moving_average_abs_max`` (CPU).

    Same state update and return layout as :func:`fake_quantize_moving_average_abs_max`;
    ``out`` is then dequantized: ``out = fl(fl(q * S) / qmax)`` with the new ``S``
    (training) or ``in_scale`` (``is_test=True``). ``S = inf`` makes every output NaN.

    Matches ``FakeQuantizeDequantizeMovingAverageAbsMaxKernel``
    (``paddle/phi/kernels/impl/fake_quantize_kernel_impl.h``) with
    ``ClipAndFakeQuantDequantFunctor`` (``paddle/phi/kernels/funcs/fake_quantize_functor.cc``).
    """
    return _moving_average(x, in_scale, in_accum, in_state, moving_rate, bit_length,
                           round_type, is_test, dequant=True)
