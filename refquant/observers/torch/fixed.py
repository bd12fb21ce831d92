"""torch.ao's ``FixedQParamsObserver``: quantization parameters given, data ignored.

Upstream: pytorch/pytorch ``torch/ao/quantization/observer.py`` (``FixedQParamsObserver``).
``calculate_qparams()`` returns ``scale`` rounded to float32 (``torch.tensor([scale],
dtype=torch.float)``) and ``zero_point`` as an int32 value, shape ``(1,)``; ``quant_min`` and
``quant_max`` are kept as given (``0`` and ``255`` by default, whatever the dtype), not
derived from ``dtype``. torch checks none of its arguments; here ``dtype`` and ``qscheme``
must be names torch's observers know, ``scale`` a real number and ``zero_point``,
``quant_min``, ``quant_max`` integers (``TypeError`` / ``ValueError`` otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.observers.torch._qparams import DTYPES, QSCHEMES, as_float32
from refquant.observers.torch.minmax import _torch_rules
from refquant.profiles import ProfileRules
from refquant.qparams import QParams

__all__ = ["FixedQParamsObserver"]


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    return int(value)


class FixedQParamsObserver:
    """torch's ``FixedQParamsObserver`` (module docstring)."""

    def __init__(self, scale: float, zero_point: int, dtype: str = "quint8",
                 qscheme: str = "per_tensor_affine", quant_min: int = 0,
                 quant_max: int = 255, *, profile: str | ProfileRules = "torch") -> None:
        self._rules = _torch_rules(profile)
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"scale must be a real number, got {scale!r}")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if not isinstance(qscheme, str) or qscheme not in QSCHEMES:
            raise ValueError(f"qscheme must be one of {QSCHEMES}, got {qscheme!r}")
        zp = _int(zero_point, "zero_point")
        if not -(2**31) <= zp < 2**31:
            raise ValueError(f"zero_point must fit int32, got {zp}")
        with np.errstate(over="ignore"):
            self._scale = np.array([scale], np.float32)
        self._zero_point = np.array([zp], np.int64)
        self.dtype, self.qscheme = dtype, qscheme
        self.quant_min = _int(quant_min, "quant_min")
        self.quant_max = _int(quant_max, "quant_max")

    @property
    def rules(self) -> ProfileRules:
        """The profile's rules (always ``TORCH``)."""
        return self._rules

    @property
    def profile(self) -> str:
        """The profile's name, ``"torch"``."""
        return self._rules.name

    def observe(self, x: Any) -> None:
        """Check ``x`` (a real, finite array) and ignore it, as torch's ``forward``."""
        as_float32(x)

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, zero_point)`` as torch returns them (fresh arrays of shape ``(1,)``)."""
        return self._scale.copy(), self._zero_point.copy()

    def compute(self) -> QParams:
        """The same numbers as :class:`QParams` (``convention="step"``); ``ValueError`` where
        ``QParams`` cannot hold them (a range of more than 16 bits, a zero point outside
        ``[quant_min, quant_max]``, a non-finite or negative scale)."""
        qmin, qmax = self.quant_min, self.quant_max
        bits = max(2, (qmax - qmin).bit_length())
        if bits > 16:
            raise ValueError(f"quant_min..quant_max = {qmin}..{qmax} spans {bits} bits; "
                             "QParams holds at most 16: use calculate_qparams()")
        return QParams(self._scale.copy(), self._zero_point.copy(), qmin, qmax, bits,
                       convention="step")

    def __repr__(self) -> str:
        return (f"FixedQParamsObserver(scale={self._scale[0]!r}, "
                f"zero_point={int(self._zero_point[0])}, dtype={self.dtype!r}, "
                f"qscheme={self.qscheme!r}, quant_min={self.quant_min}, "
                f"quant_max={self.quant_max})")
