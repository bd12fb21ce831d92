"""torch.ao's min/max observers, bug for bug as torch 2.13 computes them on CPU.

Upstream: pytorch/pytorch ``torch/ao/quantization/observer.py`` (``MinMaxObserver``,
``MovingAverageMinMaxObserver``, ``PerChannelMinMaxObserver``,
``MovingAveragePerChannelMinMaxObserver``, ``FixedQParamsObserver``). Constructor arguments
are spelled as torch's, with dtypes and qschemes as strings without ``torch.``
(``dtype="quint8"``, ``qscheme="per_tensor_affine"``). ``observe(x)`` is torch's ``forward``;
``calculate_qparams()`` returns torch's ``(scale, zero_point)`` as arrays and ``compute()``
the same numbers as :class:`~refquant.qparams.QParams` (``convention="step"``).

Running statistics, all in float32:

* ``MinMaxObserver``: ``min = min(min, min(x))``, ``max = max(max, max(x))``;
* moving average (constant ``c``): the first batch sets ``min, max = min(x), max(x)``;
  later ones ``min = min + fl32(c) * (min(x) - min)`` (each operation rounded to float32);
* per channel: the same per slice along ``ch_axis``.

Scale and zero point follow torch's ``_calculate_qparams`` (``_qparams.py``). Calibration
data holding NaN or Inf is refused (``ValueError``): torch propagates it into undefined zero
points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.observers.torch._qparams import (
    PER_CHANNEL,
    PER_TENSOR,
    QSpec,
    TorchIndexError,
    TorchNotImplementedError,
    as_float32,
    check_finite_range,
)
from refquant.profiles import TORCH, ProfileRules, get_profile
from refquant.qparams import QParams

__all__ = [
    "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver",
]

_EPS = float(np.finfo(np.float32).eps)


def _torch_rules(profile: Any) -> ProfileRules:
    rules = get_profile(profile)
    if rules is not TORCH:
        raise ValueError(f"profile must be one of ('torch',) for torch.ao observers, got "
                         f"{rules.name!r}")
    return rules


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


class _TorchObserver:
    """What torch's uniform observers share: the spec, ``compute`` and the profile."""

    _spec: QSpec
    _rules: ProfileRules
    min_val: np.ndarray | None
    max_val: np.ndarray | None

    @property
    def rules(self) -> ProfileRules:
        """The profile's rules (always ``TORCH``)."""
        return self._rules

    @property
    def profile(self) -> str:
        """The profile's name, ``"torch"``."""
        return self._rules.name

    @property
    def quant_min(self) -> int:
        """The integer range's low end, as torch computes it (reduce_range applied)."""
        return self._spec.quant_min

    @property
    def quant_max(self) -> int:
        """The integer range's high end, as torch computes it (reduce_range applied)."""
        return self._spec.quant_max

    @property
    def dtype(self) -> str:
        return self._spec.dtype

    @property
    def qscheme(self) -> str:
        return self._spec.qscheme

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """torch's ``calculate_qparams()``: ``(scale float32, zero_point)``, shape ``(1,)``
        per tensor or ``(C,)`` per channel (fresh arrays)."""
        return self._spec.calculate(self.min_val, self.max_val)

    def compute(self) -> QParams:
        """The same numbers as :class:`QParams` (``convention="step"``; scale shape ``(1,)``
        per tensor as torch's). ``ValueError`` where ``QParams`` cannot hold them: more than
        16 bits (``qint32``/``int32``), float zero points (``per_channel_affine_float_qparams``)
        or a zero point outside ``[quant_min, quant_max]`` (torch's ``128`` for ``uint8``
        symmetric with ``reduce_range``); ``calculate_qparams()`` returns those."""
        scale, zp = self.calculate_qparams()
        qmin, qmax = self.quant_min, self.quant_max
        bits = max(2, (qmax - qmin).bit_length())
        if bits > 16:
            raise ValueError(f"dtype {self.dtype!r} spans {bits} bits; QParams holds at most "
                             "16: use calculate_qparams()")
        if zp.dtype != np.int64:
            raise ValueError(f"qscheme {self.qscheme!r} has float zero points; QParams holds "
                             "integers: use calculate_qparams()")
        if np.any((zp < qmin) | (zp > qmax)):
            raise ValueError(f"torch's zero point {zp.tolist()} lies outside quant_min.."
                             f"quant_max = {qmin}..{qmax} (dtype {self.dtype!r}, reduce_range"
                             f"={self._spec.reduce_range}); use calculate_qparams()")
        axis = getattr(self, "ch_axis", None) if self.qscheme in PER_CHANNEL else None
        return QParams(scale, zp, qmin, qmax, bits, axis=axis, convention="step",
                       allow_nonfinite=True)

    def reset_min_max_vals(self) -> None:
        """Forget the observed range (torch's ``reset_min_max_vals``)."""
        self.min_val = self.max_val = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(dtype={self.dtype!r}, qscheme={self.qscheme!r}, "
                f"quant_min={self.quant_min}, quant_max={self.quant_max}, "
                f"min_val={self.min_val}, max_val={self.max_val})")


class MinMaxObserver(_TorchObserver):
    """torch's ``MinMaxObserver``: running min/max of every batch (module docstring)."""

    def __init__(self, dtype: str = "quint8", qscheme: str = "per_tensor_affine",
                 reduce_range: bool = False, quant_min: int | None = None,
                 quant_max: int | None = None, eps: float = _EPS, *,
                 profile: str | ProfileRules = "torch") -> None:
        self._rules = _torch_rules(profile)
        if qscheme not in PER_TENSOR:
            raise TorchNotImplementedError(
                f"{type(self).__name__}'s qscheme must be one of {PER_TENSOR}, got {qscheme!r}")
        self._spec = QSpec(dtype, qscheme, reduce_range, quant_min, quant_max, eps)
        self._spec.check_symmetric_reduce()
        self.min_val = self.max_val = None

    def _batch_range(self, x: Any) -> tuple[np.ndarray, np.ndarray] | None:
        arr = as_float32(x, check_finite=False)
        if arr.size == 0:
            return None
        lo, hi = np.array(arr.min(), np.float32), np.array(arr.max(), np.float32)
        check_finite_range(lo, hi)
        return lo, hi

    def observe(self, x: Any) -> None:
        """Fold one batch into the running min/max (empty batches are ignored)."""
        got = self._batch_range(x)
        if got is None:
            return
        lo, hi = got
        if self.min_val is None or self.max_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            self.min_val = np.minimum(lo, self.min_val)
            self.max_val = np.maximum(hi, self.max_val)


class MovingAverageMinMaxObserver(MinMaxObserver):
    """torch's ``MovingAverageMinMaxObserver`` (module docstring: the first batch sets the
    range, later ones move it by ``averaging_constant``)."""

    def __init__(self, averaging_constant: float = 0.01, dtype: str = "quint8",
                 qscheme: str = "per_tensor_affine", reduce_range: bool = False,
                 quant_min: int | None = None, quant_max: int | None = None,
                 eps: float = _EPS, *, profile: str | ProfileRules = "torch") -> None:
        if qscheme not in PER_TENSOR:
            raise TorchNotImplementedError(
                f"{type(self).__name__}'s qscheme must be one of {PER_TENSOR}, got {qscheme!r}")
        self.averaging_constant = _real(averaging_constant, "averaging_constant")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, eps,
                         profile=profile)

    def observe(self, x: Any) -> None:
        """Move the running min/max towards this batch's (empty batches are ignored)."""
        got = self._batch_range(x)
        if got is None:
            return
        lo, hi = got
        if self.min_val is None or self.max_val is None:
            self.min_val, self.max_val = lo, hi
            return
        c = np.float32(self.averaging_constant)
        self.min_val = (self.min_val + c * (lo - self.min_val)).astype(np.float32)
        self.max_val = (self.max_val + c * (hi - self.max_val)).astype(np.float32)


class PerChannelMinMaxObserver(_TorchObserver):
    """torch's ``PerChannelMinMaxObserver``: running min/max per slice along ``ch_axis``."""

    def __init__(self, ch_axis: int = 0, dtype: str = "quint8",
                 qscheme: str = "per_channel_affine", reduce_range: bool = False,
                 quant_min: int | None = None, quant_max: int | None = None,
                 eps: float = _EPS, *, profile: str | ProfileRules = "torch") -> None:
        self._rules = _torch_rules(profile)
        if qscheme not in PER_CHANNEL:
            raise TorchNotImplementedError(
                f"{type(self).__name__}'s qscheme must be one of {PER_CHANNEL}, got "
                f"{qscheme!r}")
        self._spec = QSpec(dtype, qscheme, reduce_range, quant_min, quant_max, eps)
        if isinstance(ch_axis, bool) or not isinstance(ch_axis, (int, np.integer)):
            raise TypeError(f"ch_axis must be an int, got {ch_axis!r}")
        self.ch_axis = int(ch_axis)
        self._spec.check_symmetric_reduce()
        self.min_val = self.max_val = None

    def _batch_range(self, x: Any) -> tuple[np.ndarray, np.ndarray] | None:
        arr = as_float32(x, check_finite=False)
        if arr.size == 0:
            return None
        if not -arr.ndim <= self.ch_axis < arr.ndim:
            raise TorchIndexError(f"ch_axis={self.ch_axis} is out of range for x of shape "
                             f"{arr.shape}")
        y = np.moveaxis(arr, self.ch_axis, 0).reshape(arr.shape[self.ch_axis], -1)
        if y.shape[1] == 0:
            raise ValueError(f"x of shape {arr.shape} has no element per channel")
        lo, hi = y.min(axis=1), y.max(axis=1)
        check_finite_range(lo, hi)
        if self.min_val is not None and self.min_val.shape != lo.shape:
            raise ValueError(f"x has {lo.shape[0]} channels along ch_axis={self.ch_axis}, "
                             f"the observer has seen {self.min_val.shape[0]}")
        return lo, hi

    def observe(self, x: Any) -> None:
        """Fold one batch into the running per-channel min/max (empty batches are ignored)."""
        got = self._batch_range(x)
        if got is None:
            return
        lo, hi = got
        if self.min_val is None or self.max_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            self.min_val = np.minimum(lo, self.min_val)
            self.max_val = np.maximum(hi, self.max_val)


class MovingAveragePerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """torch's ``MovingAveragePerChannelMinMaxObserver`` (the moving average of
    ``MovingAverageMinMaxObserver`` per channel)."""

    def __init__(self, averaging_constant: float = 0.01, ch_axis: int = 0,
                 dtype: str = "quint8", qscheme: str = "per_channel_affine",
                 reduce_range: bool = False, quant_min: int | None = None,
                 quant_max: int | None = None, eps: float = _EPS, *,
                 profile: str | ProfileRules = "torch") -> None:
        self.averaging_constant = _real(averaging_constant, "averaging_constant")
        super().__init__(ch_axis, dtype, qscheme, reduce_range, quant_min, quant_max, eps,
                         profile=profile)

    def observe(self, x: Any) -> None:
        """Move the running per-channel min/max towards this batch's."""
        got = self._batch_range(x)
        if got is None:
            return
        lo, hi = got
        if self.min_val is None or self.max_val is None:
            self.min_val, self.max_val = lo, hi
            return
        c = np.float32(self.averaging_constant)
        self.min_val = (self.min_val + c * (lo - self.min_val)).astype(np.float32)
        self.max_val = (self.max_val + c * (hi - self.max_val)).astype(np.float32)

