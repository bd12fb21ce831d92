"""Quantization parameters, integer ranges and scale / zero-point from a value range.

Scale conventions
-----------------
Paddle and PaddleSlim describe symmetric quantization by a *threshold* ``S`` (the abs-max
that maps to ``qmax``) and quantize as ``q = round(x / S * qmax)``; ONNX, PyTorch and
TensorRT describe it by a *step* ``s = S / qmax`` and quantize as ``q = round(x / s) + zp``.
:class:`QParams` stores the scale in the convention named by its ``convention`` field:

* ``"threshold"`` (symmetric quantization, Paddle's ``scales()``): ``step = S / qmax``;
* ``"step"`` (asymmetric quantization; PaddleSlim's asymmetric branch also returns a step).

:meth:`QParams.to_onnx` converts either to ONNX's ``(y_scale, y_zero_point)``; the
threshold-to-step conversion is one float32 division ``fl32(S / qmax)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._validation import (
    _describe,
    as_real_array,
    as_zero_point,
    check_bits,
    check_flag,
    check_int,
    check_scale_values,
    to_float_dtype,
)

__all__ = [
    "QParams",
    "integer_range",
    "symmetric_qparams",
    "asymmetric_qparams",
]

Convention = Literal["threshold", "step"]


def integer_range(bits: int, signed: bool = True, narrow: bool = False) -> tuple[int, int]:
    """Return ``(qmin, qmax)`` for a ``bits``-wide integer grid.

    ============  ===========================  ==============================
    signed        narrow=False                 narrow=True
    ============  ===========================  ==============================
    True          ``[-2^(b-1), 2^(b-1) - 1]``  ``[-(2^(b-1) - 1), 2^(b-1) - 1]``
    False         ``[0, 2^b - 1]``             ``[1, 2^b - 1]`` (TensorFlow's
                                               ``narrow_range`` convention)
    ============  ===========================  ==============================

    ``bits`` must be in 2..16.

    >>> integer_range(8)
    (-128, 127)
    >>> integer_range(4, signed=False)
    (0, 15)
    >>> integer_range(8, narrow=True)
    (-127, 127)
    """
    bits = check_bits(bits, "bits")
    signed = check_flag(signed, "signed")
    narrow = check_flag(narrow, "narrow")
    if signed:
        qmax = 2 ** (bits - 1) - 1
        return (-qmax if narrow else -qmax - 1), qmax
    return (1 if narrow else 0), 2**bits - 1


def _as_f32_scale(scale: object, allow_nonfinite: bool = False) -> np.ndarray:
    """A fresh read-only float32 copy of ``scale``: real, finite (unless ``allow_nonfinite``),
    >= 0, and no non-zero value that float32 cannot hold (beyond its range, or rounding to
    0)."""
    src = as_real_array(scale, "scale")
    arr = np.array(to_float_dtype(src, np.float32, "scale"), dtype=np.float32)  # fresh copy
    check_scale_values(arr, "scale", allow_zero=True, allow_nonfinite=allow_nonfinite)
    lost = (arr == 0) & (src != 0)
    if lost.any():
        i = int(np.flatnonzero(lost.ravel())[0])
        raise ValueError(
            f"scale holds {src.ravel()[i].item()!r} (flat index {i}), which rounds to 0 in "
            f"float32"
        )
    arr.setflags(write=False)
    return arr


def _as_int_zp(zero_point: object, shape: tuple[int, ...], qmin: int, qmax: int
               ) -> np.ndarray:
    """A fresh read-only int64 copy of ``zero_point`` (integer values in ``[qmin, qmax]``),
    broadcast to ``shape`` when it holds one value."""
    zp = as_zero_point(zero_point, "zero_point", qmin, qmax)
    if zp.shape != shape and zp.size == 1:
        zp = np.broadcast_to(zp.reshape(()), shape)
    zp = np.array(zp, dtype=np.int64)
    zp.setflags(write=False)
    return zp


@dataclass(frozen=True, eq=False)
class QParams:
    """Quantization parameters of one tensor (per-tensor, per-channel or group-wise).

    Attributes
    ----------
    scale:
        float32 ndarray; shape ``()`` per-tensor, ``(C,)`` per-channel along ``axis``, or
        PaddleSlim's ``(in / group_size, out)`` for group-wise weights. Its meaning is given
        by ``convention``.
    zero_point:
        int64 ndarray with the shape of ``scale``.
    qmin, qmax:
        The integer grid. ``qmax`` is also the divisor of the threshold convention
        (``step = scale / qmax``).
    bits:
        Bit width the grid was derived from.
    axis:
        Channel axis for per-channel parameters, ``None`` per-tensor.
    margin:
        For searching observers: the relative gap ``(loss_2nd - loss_best) / loss_best``
        between the best and second-best candidate (``inf`` where there is a single
        candidate, ``None`` where no search took place). Decisions whose margin is below
        the float32 summation error bound may legitimately differ between
        implementations (``docs/architecture.md``, "Principles", item 3).
    convention:
        ``"threshold"`` (Paddle's abs-max ``S``) or ``"step"`` (``s``).

    Validation (``ValueError`` / ``TypeError`` naming the field): ``scale`` must hold real
    numbers that are finite and >= 0 once rounded to float32 (0 stands for an all-zero
    range; a value beyond float32's range or a non-zero value rounding to 0 is refused);
    ``zero_point`` integer values in ``[qmin, qmax]``; ``bits`` an integer in 2..16;
    ``qmin < qmax`` integers (floats are refused, not truncated); ``axis`` ``None`` or an
    integer. Big-endian arrays are read by value. The stored arrays are read-only copies.

    ``allow_nonfinite=True`` (keyword only) lets NaN and ``+inf`` scales through, for a
    profile that reproduces another implementation's output bit for bit (PaddleSlim's
    ``AbsmaxObserver`` turns an input ``-inf`` into scale ``inf``); negative scales are
    refused all the same, and :meth:`to_onnx` refuses a non-finite scale.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    qmin: int
    qmax: int
    bits: int
    axis: int | None = None
    margin: float | np.ndarray | None = None
    convention: Convention = "threshold"
    extra: dict = field(default_factory=dict, compare=False, repr=False)
    allow_nonfinite: bool = field(default=False, kw_only=True, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.convention, str) or self.convention not in ("threshold", "step"):
            raise ValueError(f"convention must be 'threshold' or 'step', got {self.convention!r}")
        bits = check_bits(self.bits, "bits")
        qmin = check_int(self.qmin, "qmin")
        qmax = check_int(self.qmax, "qmax")
        if qmin >= qmax:
            raise ValueError(f"qmin must be < qmax, got qmin={qmin}, qmax={qmax}")
        axis = None if self.axis is None else check_int(self.axis, "axis")
        scale = _as_f32_scale(self.scale, check_flag(self.allow_nonfinite, "allow_nonfinite"))
        zero_point = _as_int_zp(self.zero_point, scale.shape, qmin, qmax)
        if zero_point.shape != scale.shape:
            raise ValueError(
                f"zero_point shape {zero_point.shape} does not match scale shape {scale.shape}"
            )
        if self.margin is not None:
            as_real_array(self.margin, "margin")
        if not isinstance(self.extra, dict):
            raise TypeError(f"extra must be a dict, got {type(self.extra).__name__}")
        for name, value in (("scale", scale), ("zero_point", zero_point), ("qmin", qmin),
                            ("qmax", qmax), ("bits", bits), ("axis", axis)):
            object.__setattr__(self, name, value)

    # -- conversions -------------------------------------------------------------------
    @property
    def step(self) -> np.ndarray:
        """The step size ``s`` (float32): ``fl32(scale / qmax)`` for thresholds.

        A subnormal result is kept; a non-zero threshold whose step underflows to 0 raises
        ``ValueError`` (a zero threshold gives step 0).
        """
        if self.convention == "step":
            return self.scale
        with np.errstate(under="ignore"):
            step = (self.scale / np.float32(self.qmax)).astype(np.float32)
        lost = (step == 0) & (self.scale != 0)
        if lost.any():
            i = int(np.flatnonzero(lost.ravel())[0])
            raise ValueError(
                f"scale {self.scale.ravel()[i].item()!r} (flat index {i}) divided by "
                f"qmax={self.qmax} "
                f"underflows to 0 in float32: no float32 step represents it"
            )
        return step

    @property
    def threshold(self) -> np.ndarray:
        """The threshold ``S`` (float32): ``fl32(scale * qmax)`` for steps; a step whose
        threshold overflows float32 raises ``ValueError``."""
        if self.convention == "threshold":
            return self.scale
        with np.errstate(over="ignore"):
            thr = (self.scale * np.float32(self.qmax)).astype(np.float32)
        over = ~np.isfinite(thr) & np.isfinite(self.scale)
        if over.any():
            i = int(np.flatnonzero(over.ravel())[0])
            raise ValueError(
                f"scale {self.scale.ravel()[i].item()!r} (flat index {i}) times qmax={self.qmax} "
                f"overflows float32"
            )
        return thr

    def to_onnx(self, dtype: type = np.int8) -> tuple[np.ndarray, np.ndarray]:
        """Return ONNX ``(y_scale, y_zero_point)``.

        ``y_scale = fl32(scale / float32(qmax))`` (one IEEE float32 division, round to
        nearest even) for the threshold convention, ``scale`` itself for the step
        convention. ``y_zero_point`` is the zero point cast to ``dtype`` (int8 by default;
        uint8 for unsigned grids), after checking it is representable.

        ONNX requires a finite ``y_scale > 0``, so a ``y_scale`` of 0 raises ``ValueError``: a
        zero scale (an all-zero range) and a non-zero threshold whose ``S / qmax`` underflows
        to 0 in float32 (``symmetric_qparams(0, 1e-45)``); so does a non-finite scale
        (``allow_nonfinite``). A subnormal ``y_scale`` is returned as
        it is (ONNX Runtime uses subnormal scales without flushing them). ``dtype`` must be
        an integer dtype; a ``TypeError`` names it otherwise.

        Note that ONNX then quantizes as ``x / y_scale`` while Paddle's kernels compute
        ``fl(qmax * (1/S)) * x``; the two agree except at near-ties (see docs/kernels.md).
        """
        try:
            zdt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be a NumPy integer dtype, got {dtype!r}") from None
        if zdt.kind not in "iu":
            raise TypeError(f"dtype must be a NumPy integer dtype, got {zdt}")
        zdt = zdt.newbyteorder("=")
        info = np.iinfo(zdt)
        if self.zero_point.size and (
            self.zero_point.min() < info.min or self.zero_point.max() > info.max
        ):
            raise ValueError(
                f"zero_point {self.zero_point} does not fit dtype {zdt.name}"
            )
        y_scale = self.step.copy()
        bad = ~(np.isfinite(y_scale) & (y_scale > 0))
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            raise ValueError(
                f"scale {self.scale.ravel()[i].item()!r} (flat index {i}) gives y_scale "
                f"{y_scale.ravel()[i].item()!r}; ONNX requires a finite y_scale > 0"
            )
        return y_scale, self.zero_point.astype(zdt)

    def to_dict(self) -> dict:
        """JSON-serialisable view (scales as float32 bit patterns and decimal values)."""
        margin = self.margin
        if isinstance(margin, np.ndarray):
            margin = margin.tolist()
        return {
            "scale": self.scale.tolist(),
            "scale_bits": self.scale.view(np.uint32).tolist(),
            "zero_point": self.zero_point.tolist(),
            "qmin": self.qmin,
            "qmax": self.qmax,
            "bits": self.bits,
            "axis": self.axis,
            "margin": margin,
            "convention": self.convention,
        }

    def __eq__(self, other: object) -> bool:
        """Bit-exact equality of every field except ``margin`` and ``extra``."""
        if not isinstance(other, QParams):
            return NotImplemented
        return (
            self.scale.shape == other.scale.shape
            and np.array_equal(self.scale.view(np.uint32), other.scale.view(np.uint32))
            and np.array_equal(self.zero_point, other.zero_point)
            and (self.qmin, self.qmax, self.bits, self.axis, self.convention)
            == (other.qmin, other.qmax, other.bits, other.axis, other.convention)
        )

    __hash__ = None  # type: ignore[assignment]


def symmetric_qparams(
    min_val: float | np.ndarray,
    max_val: float | np.ndarray,
    bits: int = 8,
    signed: bool = True,
    narrow: bool = False,
    axis: int | None = None,
) -> QParams:
    """Symmetric parameters from a range: ``S = max(|min|, |max|)``, zero point 0.

    Signed grids map ``[-S, S]`` onto ``[qmin, qmax]`` with ``step = S / qmax``. Unsigned
    grids are for non-negative data: ``[0, S]`` onto ``[0, 2^b - 1]`` (values below zero
    saturate at 0), again ``step = S / qmax`` and zero point 0 (``qmin`` for a narrow
    grid is 1, the zero point stays 0 only when ``narrow`` is False).

    ``S`` is computed in float64 and rounded once to float32. A zero range gives ``S = 0``;
    the kernels define what a zero threshold does (Paddle's ``1e-30`` guard). A non-zero
    range whose ``S`` underflows to 0 or overflows in float32 raises ``ValueError``, and so
    do NaN bounds and ``min_val > max_val``.
    """
    lo, hi = _range(min_val, max_val)
    threshold = np.maximum(np.abs(lo), np.abs(hi))
    _check_representable(threshold, threshold, "threshold", min_val, max_val)
    qmin, qmax = integer_range(bits, signed, narrow)
    zp = 0 if (signed or not narrow) else qmin
    return QParams(threshold, np.zeros(threshold.shape, np.int64) + zp, qmin, qmax, bits, axis)


def asymmetric_qparams(
    min_val: float | np.ndarray,
    max_val: float | np.ndarray,
    bits: int = 8,
    signed: bool = False,
    narrow: bool = False,
    axis: int | None = None,
) -> QParams:
    """Affine parameters from a range ``[min, max]`` (step convention).

    The range is first widened to contain 0 (``min <- min(min, 0)``, ``max <- max(max, 0)``)
    so that 0 is exactly representable. Then, in float64::

        step = (max - min) / (qmax - qmin)
        zero_point = clip(qmin - round_half_even(min / step), qmin, qmax)

    and ``step`` is rounded once to float32. A zero-width range (all zeros) gives
    ``step = 0`` and the zero point is the grid value closest to 0; a non-zero range whose
    step underflows to 0 or overflows in float32 raises ``ValueError``, and so do NaN
    bounds and ``min_val > max_val`` (checked before the widening, so ``(3, 1)`` is refused).
    """
    lo, hi = _range(min_val, max_val)
    lo = np.minimum(lo, 0.0)
    hi = np.maximum(hi, 0.0)
    qmin, qmax = integer_range(bits, signed, narrow)
    width = hi - lo
    step = width / float(qmax - qmin)
    with np.errstate(divide="ignore", invalid="ignore"):
        zp = np.where(step > 0, qmin - np.rint(lo / np.where(step > 0, step, 1.0)),
                      np.clip(0, qmin, qmax))
    zp = np.clip(zp, qmin, qmax).astype(np.int64)
    if not math.isfinite(float(np.max(step))):
        raise ValueError(f"range [min_val={_describe(min_val)}, max_val={_describe(max_val)}] "
                         f"is not finite")
    _check_representable(step, width, "step", min_val, max_val)
    return QParams(step, zp, qmin, qmax, bits, axis, convention="step")


def _range(min_val: object, max_val: object) -> tuple[np.ndarray, np.ndarray]:
    """``(min_val, max_val)`` as float64 arrays of one shape: real, not NaN, ``min <= max``."""
    lo = as_real_array(min_val, "min_val", allow_empty=False).astype(np.float64)
    hi = as_real_array(max_val, "max_val", allow_empty=False).astype(np.float64)
    try:
        lo, hi = np.broadcast_arrays(lo, hi)
    except ValueError:
        raise ValueError(
            f"min_val and max_val must have the same shape, got {lo.shape} and {hi.shape}"
        ) from None
    for name, v in (("min_val", lo), ("max_val", hi)):
        if np.isnan(v).any():
            raise ValueError(f"{name} must not be NaN, got {_show(v)}")
    if np.any(lo > hi):
        i = int(np.flatnonzero((lo > hi).ravel())[0])
        raise ValueError(
            f"min_val must be <= max_val, got {lo.ravel()[i].item()!r} > "
            f"{hi.ravel()[i].item()!r}"
            + (f" at flat index {i}" if lo.ndim else "")
        )
    return lo, hi


def _show(v: np.ndarray) -> str:
    return repr(float(v)) if v.ndim == 0 else f"array(shape={v.shape})"


def _check_representable(
    value: np.ndarray, width: np.ndarray, name: str, min_val: object, max_val: object
) -> None:
    """A non-empty range whose scale rounds to 0 (or overflows) in float32 cannot be
    quantized: raise instead of returning a zero or infinite scale."""
    with np.errstate(over="ignore"):
        f32 = np.asarray(value, dtype=np.float64).astype(np.float32)
    bad = (np.asarray(width) > 0) & ((f32 == 0) | ~np.isfinite(f32))
    if np.any(bad):
        raise ValueError(
            f"range [min_val={_describe(min_val)}, max_val={_describe(max_val)}] gives a "
            f"{name} that float32 cannot represent "
            f"({float(np.asarray(value, dtype=np.float64)[bad].ravel()[0])!r})"
        )
