"""ONNX ``ConvInteger`` as ONNX Runtime's CPU kernel computes it.

Source: ``onnxruntime/core/providers/cpu/quantization/conv_integer.cc`` (im2col +
``MlasGemm``), MLAS ``qgemm.h``::

    y[n, m, p] = sum_{kpos, c} (x[n, c, p @ kpos] - x_zero_point) * (w[m, c, kpos] - w_zero_point)

in int32, with padded pixels equal to ``x_zero_point`` (so they add nothing) and the GEMM's
pair saturation on ``isa="avx2"`` / ``"avx512"`` for uint8 ``x`` and int8 ``w`` (see
:mod:`._gemm` and :mod:`._conv`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import as_codes, zero_point
from ._conv import conv_accumulate, conv_geometry
from ._dispatch import check_isa

__all__ = ["conv_integer"]


def conv_integer(
    x: Any,
    w: Any,
    x_zero_point: Any = None,
    w_zero_point: Any = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Any = None,
    group: int = 1,
    kernel_shape: Any = None,
    pads: Any = None,
    strides: Any = None,
    isa: str = "host",
) -> np.ndarray:
    """``ConvInteger(x, w, x_zero_point, w_zero_point)`` -> int32 [N, M, *out].

    ``x``: uint8 [N, C, D1, ...]; ``w``: uint8 or int8 [M, C / group, k1, ...]; zero points
    are per-tensor scalars of their tensor's dtype. Attributes as in the ONNX operator.
    """
    resolved = check_isa(isa)
    xx = as_codes(x, "x", (np.uint8,))
    ww = as_codes(w, "w")
    xzp = zero_point(x_zero_point, "x_zero_point", xx.dtype, "x")
    wzp = zero_point(w_zero_point, "w_zero_point", ww.dtype, "w")
    geo = conv_geometry(xx.shape, ww.shape, auto_pad=auto_pad, dilations=dilations,
                        group=group, kernel_shape=kernel_shape, pads=pads, strides=strides)
    return conv_accumulate(xx, ww, int(xzp), int(wzp), geo, resolved)
