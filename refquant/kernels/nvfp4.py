"""NVFP4: FP4 E2M1 elements in blocks of 16 with an FP8 E4M3 block scale and an optional
float32 per-tensor scale.

``quantize`` returns ``(scale_e4m3, codes)``: ``uint8`` arrays of shape ``x.shape[:-1] +
(K // 16,)`` (UE4M3 codes, sign bit clear) and ``x.shape`` (FP4 E2M1 codes, unpacked, one
per element; see :mod:`refquant.kernels.formats`). The float32 operations are torchao 0.18's
reference (pytorch/ao ``torchao/prototype/mx_formats/nvfp4_tensor.py: nvfp4_quantize``,
``NVFP4Tensor.dequantize``), with ``amax = max |x_i|`` over the block (NaN if any is NaN)::

    b = fl32(amax / 6)
    without per_tensor_scale (t):
        s  = e4m3(clamp(b, 2^-6, 448))          # RNE; NaN stays NaN (code 0x7F)
        r  = fl32(1 / s)
    with t:
        s  = e4m3(clamp(fl32(b / t), 2^-6, 448))
        r  = fl32(fl32(1 / t) / s)
    q_i = e2m1(clamp(fl32(x_i * r), -6, 6))     # RNE, saturating
    y_i = fl32(value(q_i) * S),  S = s, or fl32(t * s) with t

The lower clamp is the smallest *normal* E4M3 number (``torch.finfo(float8_e4m3fn).tiny``),
so an all-zero block gets scale code 0x08, and blocks with ``amax < 6 * 2^-6`` use a
larger scale than the spec's nearest one. ``per_tensor_scale_from_amax`` gives torchao's
``per_tensor_amax_to_scale``: ``fl32(amax / 2688)`` (2688 = 448 * 6).

NaN elements make the block's scale NaN (code 0x7F), and the element codes there are
torchao's integer arithmetic on the NaN pattern (:mod:`refquant.kernels.mx`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_float_array, check_real
from . import formats as fm
from .mx import CHUNK_ELEMENTS, _block_amax, _cast_elements, _check_codes, _Elem

__all__ = ["BLOCK_SIZE", "per_tensor_scale_from_amax", "quantize", "dequantize"]

BLOCK_SIZE = 16
_E2M1 = fm.FLOAT_FORMATS["fp4_e2m1"]
_E4M3 = fm.FLOAT_FORMATS["fp8_e4m3fn"]
_FP4 = _Elem("fp4_e2m1", _E2M1, _E2M1.emax, np.float32(6.0), 1)
_E4M3_TINY = np.float32(2.0**-6)
_E4M3_MAX = np.float32(448.0)


def per_tensor_scale_from_amax(amax: Any) -> np.float32:
    """torchao's ``per_tensor_amax_to_scale``: ``fl32(amax / 2688)`` for a finite amax > 0."""
    a = check_real(amax, "amax", positive=True, dtype=np.float32)
    return np.float32(a / np.float32(448.0 * 6.0))


def _tensor_scale(per_tensor_scale: Any) -> np.float32 | None:
    if per_tensor_scale is None:
        return None
    if isinstance(per_tensor_scale, np.ndarray):
        if per_tensor_scale.size != 1:
            raise ValueError("per_tensor_scale must be a scalar (one float32 for the whole "
                             f"tensor), got shape {per_tensor_scale.shape}")
        per_tensor_scale = per_tensor_scale.reshape(()).item()
    return check_real(per_tensor_scale, "per_tensor_scale", positive=True, dtype=np.float32)


def _check_x(x: Any) -> np.ndarray:
    v = as_float_array(x, "x", allow_empty=True, dtypes=(np.float32,))
    if v.ndim == 0 or v.shape[-1] % BLOCK_SIZE:
        raise ValueError(f"x's last axis must be a multiple of the NVFP4 block size "
                         f"{BLOCK_SIZE}, got shape {v.shape}")
    return v


def quantize(x: Any, per_tensor_scale: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """NVFP4-quantize float32 ``x`` (blocks of 16 along the last axis).

    ``per_tensor_scale``: ``None`` (single-level scaling) or a finite float32 > 0 (a Python
    float is rounded to float32 once). Returns ``(scale_e4m3, codes)``; formulas in the
    module docstring. Bit for bit torchao 0.18's ``nvfp4_quantize`` on CPU.
    """
    v = _check_x(x)
    t = _tensor_scale(per_tensor_scale)
    xb = np.ascontiguousarray(v).reshape(-1, BLOCK_SIZE)
    scale = np.empty(xb.shape[0], np.uint8)
    codes = np.empty(xb.shape, np.uint8)
    step = CHUNK_ELEMENTS // BLOCK_SIZE  # the result does not depend on it
    for i in range(0, xb.shape[0], step):
        scale[i:i + step], codes[i:i + step] = _quantize_blocks(xb[i:i + step], t)
    return (scale.reshape(*v.shape[:-1], v.shape[-1] // BLOCK_SIZE), codes.reshape(v.shape))


def _quantize_blocks(xb: np.ndarray, t: np.float32 | None) -> tuple[np.ndarray, np.ndarray]:
    amax = _block_amax(xb)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        b = (amax / np.float32(6.0)).astype(np.float32)
        if t is not None:
            b = (b / t).astype(np.float32)
        s8 = fm.encode(np.clip(b, _E4M3_TINY, _E4M3_MAX), _E4M3, saturate=True)
        s = _E4M3.table[s8]
        if t is None:
            r = np.float32(1.0) / s
        else:
            r = (np.float32(1.0) / t) / s
        r = r.astype(np.float32)[:, None]
        # NaN block: every element becomes the NaN reciprocal (torch's product of two NaNs
        # keeps the reciprocal's, measured)
        q = xb * r
        if np.isnan(r).any():
            q = np.where(np.isnan(r), r, q)
    return s8, _cast_elements(np.ascontiguousarray(q, dtype=np.float32), _FP4)


def dequantize(scale_e4m3: Any, codes: Any, per_tensor_scale: Any = None) -> np.ndarray:
    """float32 ``value(codes) * S`` per block of 16, ``S = e4m3(scale_e4m3)`` or
    ``fl32(per_tensor_scale * e4m3(scale_e4m3))`` (torchao's ``NVFP4Tensor.dequantize``).

    ``scale_e4m3`` must have shape ``codes.shape[:-1] + (K // 16,)`` and hold UE4M3 codes
    (``[0, 127]``; 0x7F is NaN).
    """
    c = _check_codes(codes, "codes", 4)
    if c.ndim == 0 or c.shape[-1] % BLOCK_SIZE:
        raise ValueError(f"codes' last axis must be a multiple of the NVFP4 block size "
                         f"{BLOCK_SIZE}, got shape {c.shape}")
    s = _check_codes(scale_e4m3, "scale_e4m3", 7)
    want = c.shape[:-1] + (c.shape[-1] // BLOCK_SIZE,)
    if s.shape != want:
        raise ValueError(f"scale_e4m3 must have shape {want} (codes.shape[:-1] + "
                         f"({c.shape[-1]} // 16,)), got shape {s.shape}")
    t = _tensor_scale(per_tensor_scale)
    scale = _E4M3.table[s.astype(np.intp)]
    if t is not None:
        scale = (t * scale).astype(np.float32)
    vals = _E2M1.table[c.astype(np.intp)].reshape(want + (BLOCK_SIZE,))
    with np.errstate(over="ignore", invalid="ignore"):
        y = vals * scale[..., None]
    return y.astype(np.float32, copy=False).reshape(c.shape)
