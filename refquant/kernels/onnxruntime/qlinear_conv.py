"""ONNX ``QLinearConv`` as ONNX Runtime's CPU kernel computes it.

Source: ``onnxruntime/core/providers/cpu/quantization/qlinearconv.cc``
(``QLinearConv::Compute``, ``ComputeOutputScale``) and MLAS ``MlasRequantizeOutput``
(``onnxruntime/core/mlas/lib/quantize.cpp``)::

    acc[n, m, p] = int32 convolution of :mod:`._conv` (pair saturation on "avx2" / "avx512"
                   for uint8 x and int8 w, except depthwise)
    acc          = acc + bias[m]                              # int32, wraps
    s[m]         = fl32(fl32(x_scale * w_scale[m]) / y_scale)
    y            = clip(rne(min(max(fl32(float32(acc) * s[m]), qmin - zp), qmax - zp)) + zp)

ORT runs one of three code paths (symmetric indirect convolution ``MlasConvSym`` for
constant int8 weights with zero point 0 and input channels a multiple of 4; depthwise
``MlasConvDepthwise``; im2col + ``MlasGemm``); their requantization and their K pairing
are the same, so the emulation has one formula. Kernels: uint8 ``x`` with uint8 or int8
``w`` and uint8 ``y``; int8 ``x``, ``w`` and ``y``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import F32, as_codes, requantize, scale, vector, wrap_i32, zero_point
from ._conv import conv_accumulate_nhwc, conv_geometry
from ._dispatch import check_isa

__all__ = ["qlinear_conv"]


def qlinear_conv(
    x: Any,
    x_scale: Any,
    x_zero_point: Any,
    w: Any,
    w_scale: Any,
    w_zero_point: Any,
    y_scale: Any,
    y_zero_point: Any,
    bias: Any = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Any = None,
    group: int = 1,
    kernel_shape: Any = None,
    pads: Any = None,
    strides: Any = None,
    isa: str = "host",
) -> np.ndarray:
    """``QLinearConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
    y_zero_point, B)`` -> [N, M, *out] codes of ``x``'s dtype.

    ``w_scale`` and ``w_zero_point`` may be per output channel ([M]); ONNX Runtime requires
    the per-channel zero points to be equal (``ValueError`` otherwise). ``bias``: int32 [M].
    """
    resolved = check_isa(isa)
    xx = as_codes(x, "x")
    ww = as_codes(w, "w")
    if xx.dtype == np.int8 and ww.dtype != np.int8:
        raise TypeError(f"w must be int8 when x is int8 (ONNX Runtime's int8 QLinearConv), got "
                        f"dtype {ww.dtype}")
    geo = conv_geometry(xx.shape, ww.shape, auto_pad=auto_pad, dilations=dilations,
                        group=group, kernel_shape=kernel_shape, pads=pads, strides=strides)
    m = ww.shape[0]
    sx = scale(x_scale, "x_scale")
    sw = scale(w_scale, "w_scale", (m,))
    sy = scale(y_scale, "y_scale")
    xzp = zero_point(x_zero_point, "x_zero_point", xx.dtype, "x")
    wzp = zero_point(w_zero_point, "w_zero_point", ww.dtype, "w", (m,))
    if wzp.size > 1 and np.any(wzp != wzp[0]):
        raise ValueError(
            "w_zero_point must hold one value for all output channels (ONNX Runtime: 'zero "
            f"point of per-channel filter must be same'), got {wzp.tolist()}"
        )
    yzp = zero_point(y_zero_point, "y_zero_point", xx.dtype, "x (the output type)")
    b = vector(bias, "bias", np.int32, m, "one value per output channel")
    # [N, P, M]: channels last, as ORT requantizes
    acc = conv_accumulate_nhwc(xx, ww, int(xzp), int(wzp.reshape(-1)[0]), geo, resolved)
    if b is not None:
        acc = wrap_i32(acc.astype(np.int64) + b)
    with np.errstate(over="ignore", under="ignore"):
        out_scale = ((sx * sw).astype(F32) / sy).astype(F32)
    y = requantize(acc, out_scale, int(yzp), xx.dtype)
    n, m = xx.shape[0], ww.shape[0]
    return np.ascontiguousarray(y.transpose(0, 2, 1)).reshape((n, m) + geo.out)
