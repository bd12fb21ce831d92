"""Convolution geometry and im2col shared by ``ConvInteger`` and ``QLinearConv``.

Output size and padding follow ONNX Runtime's ``ConvAttributes::InferPadsAndOutputShape``
(``onnxruntime/core/providers/cpu/nn/conv_attributes.h``). The im2col matrix has ORT's
channels-last order (``math::Im2col<T, StorageOrder::NHWC>``, used by ``qlinearconv.cc``):
one row per output pixel, columns ``k = kernel_position * C_group + c`` with kernel
positions in row-major order; padded pixels hold the input zero point
(``padding_data`` in ``qlinearconv.cc``). The column order fixes which products share a
``vpmaddubsw`` pair on the saturating ISAs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._validation import _describe
from ._common import check_attr_int, check_ints, wrap_i32
from ._gemm import gemm_s32

_AUTO_PAD = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


@dataclass(frozen=True)
class ConvGeometry:
    group: int
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    out: tuple[int, ...]


def conv_geometry(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], *, auto_pad: Any, dilations: Any,
    group: Any, kernel_shape: Any, pads: Any, strides: Any, x_name: str = "x",
    w_name: str = "w",
) -> ConvGeometry:
    """Checked attributes and the output spatial shape of an N-D convolution."""
    if len(x_shape) < 3:
        raise ValueError(f"{x_name} must be [N, C, D1, ...] (rank >= 3), got shape {x_shape}")
    r = len(x_shape) - 2
    if len(w_shape) != r + 2:
        raise ValueError(f"{w_name} must have rank {r + 2} like {x_name}, got shape {w_shape}")
    g = check_attr_int(group, "group", 1)
    c, m = x_shape[1], w_shape[0]
    if c != w_shape[1] * g:
        raise ValueError(
            f"{x_name} has {c} channels but {w_name} shape {w_shape} with group={g} expects "
            f"{w_shape[1] * g}"
        )
    if m % g:
        raise ValueError(f"{w_name} has {m} output channels, not a multiple of group={g}")
    kernel = tuple(int(v) for v in w_shape[2:])
    if kernel_shape is not None and check_ints(kernel_shape, "kernel_shape", r, 1) != kernel:
        raise ValueError(f"kernel_shape {list(kernel_shape)} does not match {w_name} shape "
                         f"{w_shape}")
    st = (1,) * r if strides is None else check_ints(strides, "strides", r, 1)
    dl = (1,) * r if dilations is None else check_ints(dilations, "dilations", r, 1)
    if not isinstance(auto_pad, str) or auto_pad not in _AUTO_PAD:
        raise ValueError(f"auto_pad must be one of {_AUTO_PAD}, got {_describe(auto_pad)}")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and any(d != 1 for d in dl):
        raise ValueError(f"dilations {list(dl)} with auto_pad={auto_pad!r}: ONNX Runtime "
                         "supports no dilation with SAME padding")
    if pads is not None and auto_pad != "NOTSET":
        raise ValueError(f"pads must be None when auto_pad={auto_pad!r}")
    p = (0,) * (2 * r) if pads is None else check_ints(pads, "pads", 2 * r, 0)
    begin, end, out = [], [], []
    for i in range(r):
        size, dk = x_shape[2 + i], dl[i] * (kernel[i] - 1) + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            b, e = same_pads(size, kernel[i], st[i], auto_pad)
            if b + e < 0:
                raise ValueError(
                    f"auto_pad={auto_pad!r} with kernel {kernel[i]} < stride {st[i]} on an axis "
                    f"of size {size} asks for negative padding; ONNX Runtime's convolution "
                    "windows for it are not emulated"
                )
            o = (size + b + e - dk) // st[i] + 1
        else:
            b, e = (0, 0) if auto_pad == "VALID" else (p[i], p[r + i])
            o = (size + b + e - dk) // st[i] + 1
        if o < 1:
            raise ValueError(f"{x_name} spatial size {x_shape[2:]} is smaller than the dilated "
                             f"kernel {kernel} with pads {list(p)}: empty output")
        begin.append(b)
        end.append(e)
        out.append(o)
    return ConvGeometry(g, kernel, st, dl, tuple(begin), tuple(end), tuple(out))


def same_pads(size: int, kernel: int, stride: int, mode: str) -> tuple[int, int]:
    """ORT's SAME_UPPER / SAME_LOWER padding (``pool_attributes.h``,
    ``core/providers/common.h`` ``ComputePad``): C++ integer division, so a kernel smaller
    than the stride can give negative padding."""
    need = (-(-size // stride) - 1) * stride + kernel - size
    head = int(need / 2) if mode == "SAME_UPPER" else int((need + 1) / 2)
    return head, need - head


def im2col(x: np.ndarray, geo: ConvGeometry, pad_value: int) -> np.ndarray:
    """[N, P, kernel_positions, C] patches of ``x`` [N, C, *spatial] (codes, ``x``'s dtype)."""
    r = len(geo.kernel)
    crop = tuple(slice(max(0, -geo.pads_begin[i]), x.shape[2 + i] - max(0, -geo.pads_end[i]))
                 for i in range(r))
    widths = [(0, 0), (0, 0)] + [(max(0, geo.pads_begin[i]), max(0, geo.pads_end[i]))
                                 for i in range(r)]
    xp = np.pad(x[(slice(None), slice(None)) + crop], widths, constant_values=pad_value)
    n, c = x.shape[:2]
    span = tuple(geo.dilations[i] * (geo.kernel[i] - 1) + 1 for i in range(r))
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + r)))
    # win: [N, C, *positions, *span] -> strided outputs, dilated kernel taps
    index = (slice(None), slice(None)) + tuple(
        slice(0, (geo.out[i] - 1) * geo.strides[i] + 1, geo.strides[i]) for i in range(r)
    ) + tuple(slice(None, None, geo.dilations[i]) for i in range(r))
    win = win[index]  # [N, C, *out, *kernel]
    order = (0,) + tuple(range(2, 2 + r)) + tuple(range(2 + r, 2 + 2 * r)) + (1,)
    p = int(np.prod(geo.out))
    kpos = int(np.prod(geo.kernel))
    return win.transpose(order).reshape(n, p, kpos, c)


def conv_accumulate(
    x: np.ndarray, w: np.ndarray, x_zp: int, w_zp: int, geo: ConvGeometry, isa: str,
) -> np.ndarray:
    """int32 ``sum (x - x_zp) * (w - w_zp)`` per output, [N, M, *out], as ORT computes it
    (:func:`conv_accumulate_nhwc`, channels first)."""
    n, m = x.shape[0], w.shape[0]
    out = conv_accumulate_nhwc(x, w, x_zp, w_zp, geo, isa)
    return out.transpose(0, 2, 1).reshape((n, m) + geo.out)


def conv_accumulate_nhwc(
    x: np.ndarray, w: np.ndarray, x_zp: int, w_zp: int, geo: ConvGeometry, isa: str,
) -> np.ndarray:
    """int32 ``sum (x - x_zp) * (w - w_zp)`` per output, [N, P, M] (P output pixels in
    row-major order), as ORT computes it.

    Grouped convolutions run one GEMM per group on the im2col matrix (``qlinearconv.cc``),
    with the u8 x s8 pair saturation of ``isa``. Depthwise convolutions (one input and one
    output channel per group) use ``MlasConvDepthwise`` / ``MlasConvSymDepthwise``, which
    multiply 16-bit operands and never saturate (``onnxruntime/core/mlas/lib/qdwconv.cpp``,
    ``convsym.cpp``).
    """
    n = x.shape[0]
    m = w.shape[0]
    g = geo.group
    cg, mg = w.shape[1], m // g
    patches = im2col(x, geo, x_zp)  # [N, P, kpos, C]
    p, kpos = patches.shape[1], patches.shape[2]
    out = np.empty((n, p, m), np.int32)
    if cg == 1 and mg == 1:
        xs = patches.astype(np.int64) - x_zp  # [N, P, kpos, C]
        ws = w.reshape(m, kpos).astype(np.int64) - w_zp  # [M(=C), kpos]
        out[:] = wrap_i32(np.einsum("npkc,ck->npc", xs, ws))
    else:
        for gi in range(g):
            a = patches[:, :, :, gi * cg:(gi + 1) * cg].reshape(n * p, kpos * cg)
            wg = w[gi * mg:(gi + 1) * mg].reshape(mg, cg, kpos)
            b = np.ascontiguousarray(wg.transpose(2, 1, 0).reshape(kpos * cg, mg))
            acc = gemm_s32(a, b, np.int64(x_zp), np.int64(w_zp), isa)
            assert isinstance(acc, np.ndarray)
            out[:, :, gi * mg:(gi + 1) * mg] = acc.reshape(n, p, mg)
    return out


def conv_pair_saturation(x: np.ndarray, w: np.ndarray, x_zp: int, geo: ConvGeometry,
                         ) -> np.ndarray:
    """Saturated ``vpmaddubsw`` pairs per output [N, M, *out] of a uint8 x int8 convolution
    on a saturating variant (zeros for depthwise convolutions, which never saturate)."""
    from ._gemm import pair_saturation

    n, m = x.shape[0], w.shape[0]
    g = geo.group
    cg, mg = w.shape[1], m // g
    out = np.zeros((n, int(np.prod(geo.out)), m), np.int64)
    if x.dtype != np.uint8 or w.dtype != np.int8 or (cg == 1 and mg == 1):
        return out.transpose(0, 2, 1).reshape((n, m) + geo.out)
    patches = im2col(x, geo, x_zp)
    p, kpos = patches.shape[1], patches.shape[2]
    for gi in range(g):
        a = patches[:, :, :, gi * cg:(gi + 1) * cg].reshape(n * p, kpos * cg)
        wg = w[gi * mg:(gi + 1) * mg].reshape(mg, cg, kpos)
        b = np.ascontiguousarray(wg.transpose(2, 1, 0).reshape(kpos * cg, mg))
        out[:, :, gi * mg:(gi + 1) * mg] = pair_saturation(a, b).reshape(n, p, mg)
    return out.transpose(0, 2, 1).reshape((n, m) + geo.out)
