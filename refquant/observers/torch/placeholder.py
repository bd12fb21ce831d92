"""torch.ao's pass-through observers: ``PlaceholderObserver`` and ``NoopObserver``.

Upstream: pytorch/pytorch ``torch/ao/quantization/observer.py``. Both only carry
configuration to the converted module (float16 / dynamic quantization); ``observe(x)``
ignores ``x`` and ``calculate_qparams()`` raises (torch raises a bare ``Exception``; here
:class:`CalculateQParamsError`, a ``RuntimeError``). ``PlaceholderObserver``'s defaults:
``dtype="float32"``, ``qscheme="per_tensor_affine"``, ``eps = float32 eps``. Its deprecated
``compute_dtype`` warns and, as in torch, does *not* set ``is_dynamic`` (torch assigns a
local variable after storing the attribute).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["PlaceholderObserver", "NoopObserver", "CalculateQParamsError"]


class CalculateQParamsError(RuntimeError):
    """torch's ``Exception("calculate_qparams should not be called for ...")``."""


def _check_real(x: Any) -> None:
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"x must be a real array, got dtype {arr.dtype}")


class PlaceholderObserver:
    """torch's ``PlaceholderObserver`` (module docstring)."""

    def __init__(self, dtype: str = "float32", custom_op_name: str = "",
                 compute_dtype: Any = None, quant_min: int | None = None,
                 quant_max: int | None = None, qscheme: str | None = None,
                 eps: float | None = None, is_dynamic: bool = False) -> None:
        if not isinstance(dtype, str):
            raise TypeError(f"dtype must be a dtype name such as 'float16', got {dtype!r}")
        self.dtype = dtype
        self.is_dynamic = bool(is_dynamic)
        self.qscheme = "per_tensor_affine" if qscheme is None else qscheme
        self.quant_min, self.quant_max = quant_min, quant_max
        self.eps = float(np.finfo(np.float32).eps) if eps is None else eps
        self.custom_op = custom_op_name
        if compute_dtype:
            warnings.warn("Please use `is_dynamic` instead of `compute_dtype`. "
                          "`compute_dtype` will be deprecated in a future release of "
                          "PyTorch.", UserWarning, stacklevel=2)

    def observe(self, x: Any) -> None:
        """Ignore ``x`` (checked to be a real array)."""
        _check_real(x)

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        raise CalculateQParamsError(
            f"calculate_qparams should not be called for {type(self).__name__}")


class NoopObserver(PlaceholderObserver):
    """torch's ``NoopObserver`` (``dtype="float16"`` by default, nothing observed)."""

    def __init__(self, dtype: str = "float16", custom_op_name: str = "") -> None:
        super().__init__(dtype=dtype, custom_op_name=custom_op_name)
