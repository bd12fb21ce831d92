"""torch.ao's quantization-parameter arithmetic, in float32 NumPy, bit for bit.

Upstream: pytorch/pytorch ``torch/ao/quantization/observer.py``
(``UniformQuantizationObserverBase.__init__`` and ``_calculate_qparams``) and
``torch/ao/quantization/utils.py`` (``calculate_qmin_qmax``, ``validate_qmin_qmax``,
``check_min_max_valid``), as torch 2.13 runs them on CPU.

With ``r = quant_max - quant_min``, ``m- = min(min_val, 0)``, ``m+ = max(max_val, 0)``, all in
float32 (the Python-float divisor rounded to float32 first):

* symmetric: ``scale = max(max(-m-, m+) / fl32(r / 2), eps)``; zero point ``128`` for
  ``quint8``/``uint8`` (``(quant_min + quant_max) // 2`` with a customised range), ``2**15``
  for ``uint16``, else ``0``;
* affine: ``scale = max((m+ - m-) / fl32(r), eps)``,
  ``zero_point = clamp(quant_min - int32(round_half_even(m- / scale)), quant_min,
  quant_max)`` in int32 arithmetic. For ``qint32``/``int32`` the rounded value can leave
  int32's range; torch's float-to-int32 cast then gives ``INT32_MIN`` on x86-64 (the CPUs
  refquant runs on), so e.g. ``min = -3, max = 2`` with ``eps=1e-30`` gives zero point ``0``
  where the formula gives about ``4.3e8``. A range beyond int32 raises torch's
  ``RuntimeError`` here (:class:`TorchRuntimeError`);
* ``per_channel_affine_float_qparams``: ``scale = (max - min) / fl32(r)`` where it exceeds
  ``eps``, else ``1``; ``zero_point = -min / scale`` (a float).

An observer that saw no data returns ``scale = [1.0]``, ``zero_point = [0]`` with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["TorchAssertionError", "TorchNotImplementedError", "TorchIndexError",
           "TorchRuntimeError", "DTYPES", "QSCHEMES"]


class TorchAssertionError(AssertionError, ValueError):
    """Raised where torch raises ``AssertionError`` (also a ``ValueError``)."""


class TorchNotImplementedError(NotImplementedError, ValueError):
    """Raised where torch raises ``NotImplementedError`` (also a ``ValueError``)."""


class TorchIndexError(IndexError, ValueError):
    """Raised where torch raises ``IndexError`` (an out-of-range ``ch_axis``; also a
    ``ValueError``)."""


class TorchRuntimeError(RuntimeError, ValueError):
    """Raised where torch raises ``RuntimeError`` (an affine range beyond int32; also a
    ``ValueError``)."""


#: the dtypes torch's observers accept, spelled without ``torch.``
DTYPES = ("qint8", "quint8", "quint4x2", "qint32", "int8", "uint8", "int16", "int32",
          "float8_e5m2", "float8_e4m3fn", "uint16")
PER_TENSOR = ("per_tensor_affine", "per_tensor_symmetric")
PER_CHANNEL = ("per_channel_affine", "per_channel_symmetric",
               "per_channel_affine_float_qparams")
QSCHEMES = PER_TENSOR + PER_CHANNEL


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__} ({value!r})")
    return int(value)


class QSpec:
    """Validated dtype / qscheme / range / eps of one torch observer (torch's checks, in
    torch's order: qscheme, dtype, customised range, range width)."""

    def __init__(self, dtype: Any, qscheme: Any, reduce_range: Any, quant_min: Any,
                 quant_max: Any, eps: Any) -> None:
        if not isinstance(qscheme, str) or qscheme not in QSCHEMES:
            raise TorchAssertionError(f"qscheme must be one of {QSCHEMES}, got {qscheme!r}")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise TorchAssertionError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if not isinstance(reduce_range, (bool, np.bool_)):
            raise TypeError(f"reduce_range must be a bool, got {reduce_range!r}")
        qmin_in = _int_or_none(quant_min, "quant_min")
        qmax_in = _int_or_none(quant_max, "quant_max")
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
            raise TypeError(f"eps must be a real number, got {eps!r}")
        eps32 = np.float32(eps)
        if not (np.isfinite(eps32) and eps32 > 0):
            # torch accepts it, but a zero scale then makes the zero point undefined (0/0)
            raise ValueError(f"eps must be finite and > 0 in float32, got {eps!r}")
        if reduce_range:
            warnings.warn("Please use quant_min and quant_max to specify the range for "
                          "observers. reduce_range will be deprecated in a future release "
                          "of PyTorch.", UserWarning, stacklevel=3)
        self.dtype, self.qscheme, self.reduce_range = dtype, qscheme, bool(reduce_range)
        self.eps = eps32
        self.customized = qmin_in is not None and qmax_in is not None
        if self.customized:
            assert qmin_in is not None and qmax_in is not None
            if not qmin_in <= 0 <= qmax_in:
                raise TorchAssertionError(
                    f"quant_min..quant_max must include 0, got {qmin_in}..{qmax_in}")
            if qmin_in >= qmax_in:
                raise TorchAssertionError(
                    f"quant_min must be < quant_max, got {qmin_in} >= {qmax_in}")
            width = qmax_in - qmin_in + 1
            if dtype in ("qint8", "int8") and not 0 < width <= 256:
                raise TorchAssertionError(
                    f"quant_min..quant_max must span at most 256 values for {dtype}, got "
                    f"{qmin_in}..{qmax_in}")
            if dtype in ("qint32", "int32") and not 0 < width <= 2**32:
                raise TorchAssertionError(
                    f"quant_min..quant_max must span at most 2**32 values for {dtype}, got "
                    f"{qmin_in}..{qmax_in}")
            qmin, qmax = qmin_in, qmax_in
            if self.reduce_range:
                qmin, qmax = qmin // 2, qmax // 2
        elif dtype in ("qint8", "int8"):
            qmin, qmax = (-64, 63) if reduce_range else (-128, 127)
        elif dtype in ("quint8", "uint8"):
            qmin, qmax = (0, 127) if reduce_range else (0, 255)
        elif dtype in ("qint32", "int32"):
            qmin, qmax = -(2**31), 2**31 - 1
        elif dtype == "uint16":
            qmin, qmax = 0, 2**16 - 1
        elif dtype == "int16":
            qmin, qmax = -(2**15), 2**15 - 1
        else:  # quint4x2 and the float8 dtypes
            qmin, qmax = 0, 15
        self.quant_min, self.quant_max = qmin, qmax

    def check_symmetric_reduce(self) -> None:
        """torch refuses ``reduce_range`` with a symmetric scheme for ``quint8`` only."""
        if self.qscheme.endswith("symmetric") and self.reduce_range and self.dtype == "quint8":
            raise TorchNotImplementedError(
                "Cannot reduce range for symmetric quantization for quint8")

    def calculate(self, min_val: np.ndarray | None, max_val: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, zero_point)`` as torch's ``_calculate_qparams`` (float32 scale of shape
        ``(1,)`` per tensor or ``(C,)``; int64 zero point, float32 for float qparams)."""
        if min_val is None or max_val is None or min_val.size == 0:
            warnings.warn("must run observer before calling calculate_qparams. Returning "
                          "default values.", UserWarning, stacklevel=3)
            return np.ones(1, np.float32), np.zeros(1, np.int64)
        if np.any(min_val > max_val):
            raise TorchAssertionError(f"min {min_val} should be less than max {max_val}")
        qmin, qmax = self.quant_min, self.quant_max
        zero = np.float32(0)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            min_neg = np.minimum(min_val, zero)
            max_pos = np.maximum(max_val, zero)
            if self.qscheme.endswith("symmetric"):
                half = np.float32(float(qmax - qmin) / 2)
                scale = np.maximum(np.maximum(-min_neg, max_pos) / half, self.eps)
                if self.dtype in ("quint8", "uint8"):
                    zp_value = (qmin + qmax) // 2 if self.customized else 128
                elif self.dtype == "uint16":
                    zp_value = 2**15
                else:
                    zp_value = 0
                zp = np.full(scale.shape, zp_value, np.int64)
            elif self.qscheme == "per_channel_affine_float_qparams":
                scale = (max_val - min_val) / np.float32(float(qmax - qmin))
                scale = np.where(scale > self.eps, scale, np.float32(1))
                zp = (-min_val / scale).astype(np.float32)
            else:
                if not -(2**31) <= qmin <= qmax < 2**31:
                    # the zero point is an int32 tensor clamped to [quant_min, quant_max]
                    raise TorchRuntimeError(
                        f"quant_min..quant_max = {qmin}..{qmax} cannot be converted to type "
                        "int without overflow (torch clamps an int32 zero point)")
                scale = np.maximum((max_pos - min_neg) / np.float32(float(qmax - qmin)),
                                   self.eps)
                zp = np.clip(_wrap_int32(qmin - _to_int32(np.round(min_neg / scale))),
                             qmin, qmax).astype(np.int64)
        return (np.array(scale, np.float32).reshape(-1),
                np.array(zp).reshape(-1))


def _to_int32(v: np.ndarray) -> np.ndarray:
    """float32 -> int32 as ``Tensor.to(torch.int)`` on x86-64: out-of-range and NaN give
    ``INT32_MIN`` (``cvttss2si``'s "integer indefinite"), as int64."""
    v = np.asarray(v, np.float64)
    bad = ~((v >= -(2.0**31)) & (v < 2.0**31))
    return np.where(bad, -(2**31), np.where(bad, 0, v).astype(np.int64))


def _wrap_int32(v: np.ndarray) -> np.ndarray:
    """int64 values wrapped to int32 (torch's int32 subtraction), as int64."""
    return ((np.asarray(v, np.int64) + 2**31) % 2**32) - 2**31


def as_float32(x: Any, name: str = "x", check_finite: bool = True) -> np.ndarray:
    """``x`` as a float32 array (``x.to(torch.float32)``; no copy when it already is one);
    refuses non-real and, unless ``check_finite`` is false (the caller then checks the
    reduced values with :func:`check_finite_range`), non-finite values."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if check_finite and not np.isfinite(arr).all():
        _refuse_nonfinite(name)
    return arr


def _refuse_nonfinite(name: str) -> None:
    raise ValueError(f"{name} holds NaN or Inf; torch's observers propagate them into "
                     "undefined zero points, so they are refused")


def check_finite_range(lo: np.ndarray, hi: np.ndarray, name: str = "x") -> None:
    """Refuse a batch whose min or max is not finite (a NaN propagates into both, an
    infinity into one of them)."""
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        _refuse_nonfinite(name)
