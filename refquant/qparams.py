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

from ._validation import check_bits

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
    if signed:
        qmax = 2 ** (bits - 1) - 1
        return (-qmax if narrow else -qmax - 1), qmax
    return (1 if narrow else 0), 2**bits - 1


def _as_f32_scale(scale: object) -> np.ndarray:
    arr = np.array(scale, dtype=np.float32)  # always a fresh copy
    arr.setflags(write=False)
    return arr


def _as_int_zp(zero_point: object, shape: tuple[int, ...]) -> np.ndarray:
    zp = np.asarray(zero_point)
    if zp.dtype.kind == "f":
        if not np.all(np.isfinite(zp)) or not np.all(zp == np.round(zp)):
            raise ValueError(f"zero_point must hold integer values, got {zero_point!r}")
    zp = np.array(np.broadcast_to(zp, shape) if zp.shape != shape and zp.size == 1 else zp,
                  dtype=np.int64)
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
        implementations (DESIGN.md principle 3).
    convention:
        ``"threshold"`` (Paddle's abs-max ``S``) or ``"step"`` (``s``).
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _as_f32_scale(self.scale))
        object.__setattr__(self, "zero_point", _as_int_zp(self.zero_point, self.scale.shape))
        if self.convention not in ("threshold", "step"):
            raise ValueError(f"convention must be 'threshold' or 'step', got {self.convention!r}")
        if int(self.qmin) >= int(self.qmax):
            raise ValueError(f"qmin must be < qmax, got qmin={self.qmin}, qmax={self.qmax}")
        if self.zero_point.shape != self.scale.shape:
            raise ValueError(
                f"zero_point shape {self.zero_point.shape} does not match scale shape "
                f"{self.scale.shape}"
            )
        object.__setattr__(self, "qmin", int(self.qmin))
        object.__setattr__(self, "qmax", int(self.qmax))
        object.__setattr__(self, "bits", int(self.bits))

    # -- conversions -------------------------------------------------------------------
    @property
    def step(self) -> np.ndarray:
        """The step size ``s`` (float32): ``fl32(scale / qmax)`` for thresholds."""
        if self.convention == "step":
            return self.scale
        return (self.scale / np.float32(self.qmax)).astype(np.float32)

    @property
    def threshold(self) -> np.ndarray:
        """The threshold ``S`` (float32): ``fl32(scale * qmax)`` for steps."""
        if self.convention == "threshold":
            return self.scale
        return (self.scale * np.float32(self.qmax)).astype(np.float32)

    def to_onnx(self, dtype: type = np.int8) -> tuple[np.ndarray, np.ndarray]:
        """Return ONNX ``(y_scale, y_zero_point)``.

        ``y_scale = fl32(scale / float32(qmax))`` (one IEEE float32 division, round to
        nearest even) for the threshold convention, ``scale`` itself for the step
        convention. ``y_zero_point`` is the zero point cast to ``dtype`` (int8 by default;
        uint8 for unsigned grids), after checking it is representable.

        Note that ONNX then quantizes as ``x / y_scale`` while Paddle's kernels compute
        ``fl(qmax * (1/S)) * x``; the two agree except at near-ties (see docs/kernels.md).
        """
        info = np.iinfo(dtype)
        if self.zero_point.size and (
            self.zero_point.min() < info.min or self.zero_point.max() > info.max
        ):
            raise ValueError(
                f"zero_point {self.zero_point} does not fit dtype {np.dtype(dtype).name}"
            )
        return self.step.copy(), self.zero_point.astype(dtype)

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
    range whose ``S`` underflows to 0 or overflows in float32 raises ``ValueError``.
    """
    lo = np.asarray(min_val, dtype=np.float64)
    hi = np.asarray(max_val, dtype=np.float64)
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise ValueError(f"min_val/max_val must not be NaN, got {min_val!r}, {max_val!r}")
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
    step underflows to 0 or overflows in float32 raises ``ValueError``.
    """
    lo = np.minimum(np.asarray(min_val, dtype=np.float64), 0.0)
    hi = np.maximum(np.asarray(max_val, dtype=np.float64), 0.0)
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise ValueError(f"min_val/max_val must not be NaN, got {min_val!r}, {max_val!r}")
    if np.any(lo > hi):
        raise ValueError(f"min_val must be <= max_val, got {min_val!r} > {max_val!r}")
    qmin, qmax = integer_range(bits, signed, narrow)
    width = hi - lo
    step = width / float(qmax - qmin)
    with np.errstate(divide="ignore", invalid="ignore"):
        zp = np.where(step > 0, qmin - np.rint(lo / np.where(step > 0, step, 1.0)),
                      np.clip(0, qmin, qmax))
    zp = np.clip(zp, qmin, qmax).astype(np.int64)
    if not math.isfinite(float(np.max(step))):
        raise ValueError(f"range [{min_val!r}, {max_val!r}] is not finite")
    _check_representable(step, width, "step", min_val, max_val)
    return QParams(step, zp, qmin, qmax, bits, axis, convention="step")


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
            f"range [{min_val!r}, {max_val!r}] gives a {name} that float32 cannot represent "
            f"({float(np.asarray(value, dtype=np.float64)[bad].ravel()[0])!r})"
        )
