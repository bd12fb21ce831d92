"""Paddle 3.3.1's weight-only / LLM.int8 weight quantization (``paddle.nn.quant``), CPU.

:func:`weight_quantize` returns, bit for bit, what ``paddle.nn.quant.weight_quantize(x,
algo, arch, group_size)`` returns on CPU (``tests/test_kernels_paddle_weight_only.py``
checks it against the real op). Upstream: PaddlePaddle/Paddle,
``paddle/phi/kernels/cpu/weight_quantize_kernel.cc`` and
``paddle/phi/kernels/impl/weight_quantize_kernel_impl.h``.

Of the four ops, only ``weight_quantize`` has a CPU kernel in Paddle 3.3.1 (and only for
float16 / bfloat16 input). ``weight_dequantize``, ``weight_only_linear`` and
``llm_int8_linear`` raise ``RuntimeError: (NotFound) The kernel `<name>` is not
registered.`` on CPU; they are not emulated here (their GPU kernels are not verified).
:func:`unpack_weight` is the exact inverse of the output layout and
:func:`dequantize_codes` is ``codes * scale`` in float32 (the definition of the scale, not
Paddle's GPU ``weight_dequantize``).

Arithmetic, for a 2-D weight ``x[m, n]`` (``m`` in-features, ``n`` out-features) of dtype
``T`` (float16 or bfloat16), ``bound = 127`` (int8) or ``7`` (int4), ``fl`` one float32
rounding::

    amax[g, j] = max over the rows i of group g of float32(|x[i, j]|)
    scale[g, j] = ScaleT(fl(amax[g, j] / bound))      # ScaleT = T; float32 for llm.int8
    q[i, j] = clip(round_half_away(fl(float32(x[i, j]) / float32(scale[g(i), j]))), -b, b)

* ``group_size=-1``: one group (all ``m`` rows), ``scale`` has shape ``[n]``; the running
  maximum starts from the *signed* ``x[0, j]`` and is updated by ``|x| > max``, so a NaN in
  row 0 makes the scale NaN, any other NaN is skipped, and a column of zeros whose row 0 is
  ``-0.0`` gets the scale ``-0.0``. ``group_size`` 64 / 128: groups of
  consecutive rows, the last one may be short (``scale`` has shape ``[ceil(m / G), n]``), the
  maximum starts at 0 and NaN is skipped.
* ``ScaleT`` rounding: float16 / bfloat16 round half to even; overflow gives inf; a NaN
  scale is ``0x7E00`` (float16) / ``0x7FFF`` (bfloat16).
* int8 clipping is done in float32 (``max(-127, min(127, v))``: NaN -> 127, +-inf -> +-127).
  int4 converts to ``int`` first (C ``static_cast<int>``; on x86 a NaN or a value outside
  the int range becomes ``INT_MIN``) and then clips to ``[-7, 7]``: NaN, +-inf and
  ``|v| >= 2^31`` become -7. Neither uses -8 / -128.

Output layout (``out`` is int8; ``codes`` ``q`` is ``[m, n]``; int4 packs two codes per byte,
the even index in the low nibble):

* ``llm.int8`` (any arch; arch 70 only for square ``x``): ``out = q.T``, shape ``[n, m]``,
  scale float32.
* ``arch=70``: the row-major ``[m, n]`` codes (int4: packed along ``n``), biased to unsigned
  (``q + 128``; int4 nibbles ``q + 8``) and interleaved in place (int8: bytes 1 and 2 of
  every 4 swapped; int4: the nibbles ``0..7`` of every little-endian 32-bit word reordered
  to ``0, 2, 4, 6, 1, 3, 5, 7``), then *reinterpreted* (not transposed) as shape
  ``[n, m]`` (int4 ``[n / 2, m]``).
* ``arch`` 75, 80, 86, 89, 90 (CUTLASS mixed-GEMM layout): rows permuted within tiles of
  16 (int8) / 32 (int4) rows (``permute_B_rows_for_mixed_gemm``), transposed to ``[n, m]``
  (int4 packed along ``m``; ``subbyte_transpose_impl``), then, per 64-row tile of 32-bit
  words, the tiles of 2 (int8) / 4 (int4) consecutive columns concatenated
  (``interleave_column_major_tensor``), then biased and interleaved as for arch 70.
* ``arch=100`` (weight-only algos) and algos ``w4a8`` / ``w4afp8``: Paddle's CPU kernel
  writes nothing into ``out`` (uninitialized memory); rejected here.

Shapes Paddle accepts but corrupts its heap on (measured: ``double free or corruption``):
``llm.int8`` with ``arch=70`` and ``m != n``; arch 75..90 with ``m`` not a multiple of 64.
Those raise ``ValueError`` here, as do ``n`` not a multiple of 16 (Paddle's own check), an
arch outside {70, 75, 80, 86, 89, 90, 100}, a ``group_size`` outside {-1, 64, 128}, an
unknown algo and a non-2-D ``x``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "ALGOS",
    "ARCHS",
    "dequantize_codes",
    "quantize_codes",
    "unpack_weight",
    "weight_quantize",
]

ALGOS = ("weight_only_int8", "weight_only_int4", "llm.int8")
ARCHS = (70, 75, 80, 86, 89, 90, 100)
_CUTLASS_ARCHS = (75, 80, 86, 89, 90)
_F16_NAN = np.uint16(0x7E00)
_BF16_NAN = np.uint16(0x7FFF)


def _bits(algo: str) -> int:
    return 4 if algo == "weight_only_int4" else 8


def _check_args(x: Any, algo: Any, arch: Any, group_size: Any, *, layout: bool = True,
                bfloat16_bits: bool = False) -> np.ndarray:
    if not isinstance(algo, str) or algo not in ALGOS:
        raise ValueError(
            f"algo must be one of {ALGOS}, got {algo!r} (Paddle's CPU kernel leaves the "
            "output uninitialized for 'w4a8' / 'w4afp8')"
        )
    if isinstance(arch, bool) or not isinstance(arch, (int, np.integer)) or arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or (
        group_size not in (-1, 64, 128)
    ):
        raise ValueError(f"group_size must be -1, 64 or 128, got {group_size!r}")
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a float16 or bfloat16 NumPy array, got {type(x).__name__}")
    if not isinstance(bfloat16_bits, bool):
        raise TypeError(f"bfloat16_bits must be a bool, got {bfloat16_bits!r}")
    if bfloat16_bits and x.dtype != np.uint16:
        raise TypeError(f"x must be uint16 (bfloat16 bit patterns) with bfloat16_bits=True, "
                        f"got {x.dtype}")
    if not bfloat16_bits and x.dtype != np.float16 and x.dtype.name != "bfloat16":
        raise TypeError(
            f"x must be float16 or bfloat16 (Paddle's CPU kernel has no other), got {x.dtype}"
        )
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D [in, out], got shape {x.shape}")
    m, n = x.shape
    if m == 0 or n == 0:
        raise ValueError(
            f"x must not be empty (Paddle leaves the scale uninitialized), got shape {x.shape}"
        )
    if n % 16 != 0:
        raise ValueError(f"x.shape[1] must be a multiple of 16, got shape {x.shape}")
    if not layout:
        return x
    if algo == "llm.int8":
        if arch == 70 and m != n:
            raise ValueError(
                f"algo='llm.int8' with arch=70 needs a square x (Paddle corrupts its heap), "
                f"got shape {x.shape}"
            )
    elif arch == 100:
        raise ValueError(f"arch=100 with algo={algo!r}: Paddle's CPU kernel writes no output")
    elif arch in _CUTLASS_ARCHS and m % 64 != 0:
        raise ValueError(
            f"x.shape[0] must be a multiple of 64 for arch={arch} (Paddle corrupts its heap "
            f"otherwise), got shape {x.shape}"
        )
    return x


def _to_float32(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.float16:
        return x.astype(np.float32)
    bits = np.ascontiguousarray(x).view(np.uint16).astype(np.uint32) << 16
    return bits.view(np.float32)


def _round_scale(s: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 -> ``dtype`` (float16 / bfloat16), round half to even, Paddle's NaN codes."""
    nan = np.isnan(s)
    if dtype == np.float16:
        with np.errstate(over="ignore"):
            h = s.astype(np.float16)
        bits = h.view(np.uint16)
        bits[nan] = _F16_NAN
        return bits.view(np.float16)
    u = s.view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    r[nan] = _BF16_NAN
    return r.view(dtype)


def quantize_codes(x: np.ndarray, algo: str = "weight_only_int8", group_size: int = -1, *,
                   bfloat16_bits: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The codes ``q[m, n]`` (int8, unpacked, in ``[-b, b]``) and the scales, before layout.

    The module docstring gives the formula; ``scale`` has Paddle's shape and dtype. The
    codes do not depend on ``arch``; the shape rules of the layouts are not applied.
    ``bfloat16_bits=True``: ``x`` is a uint16 array of bfloat16 bit patterns (no
    ``ml_dtypes`` needed) and a bfloat16 scale is returned as uint16 bits.
    """
    x = _check_args(x, algo, 80, group_size, layout=False, bfloat16_bits=bfloat16_bits)
    bound = np.float32(7.0 if _bits(algo) == 4 else 127.0)
    xf = _to_float32(x)
    m, n = xf.shape
    a = np.abs(xf)
    with np.errstate(invalid="ignore"):
        if group_size == -1:
            # running max from the signed x[0, j]: NaN there sticks, other NaNs are skipped
            # and a column of zeros led by -0.0 keeps -0.0
            amax = np.fmax.reduce(a, axis=0)
            amax = np.where(np.isnan(xf[0]), np.float32(np.nan), amax)
            amax = np.where(amax == 0, xf[0] * np.float32(0), amax)
            gidx = np.zeros(m, dtype=np.intp)
        else:
            ng = -(-m // group_size)
            amax = np.zeros((ng, n), np.float32)
            for g in range(ng):
                blk = a[g * group_size : (g + 1) * group_size]
                amax[g] = np.fmax(np.fmax.reduce(blk, axis=0), np.float32(0))
            gidx = np.arange(m) // group_size
    amax = amax.astype(np.float32)
    scale_dtype = np.dtype(np.float32) if algo == "llm.int8" else x.dtype
    s32 = amax / bound
    scale = s32 if algo == "llm.int8" else _round_scale(s32, scale_dtype)
    sf = scale.astype(np.float32) if scale_dtype == np.float16 else (
        s32 if algo == "llm.int8" else _to_float32(scale))
    s_rows = sf[None, :] if group_size == -1 else sf[gidx]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = xf / s_rows
        t = np.trunc(v)
        r = np.where(np.abs(v - t) >= np.float32(0.5), t + np.sign(v), t)  # C round()
        if _bits(algo) == 8:
            q = np.where(np.isnan(r), np.float32(127), np.clip(r, -127, 127)).astype(np.int8)
        else:
            big = np.isnan(r) | (np.abs(r) >= np.float32(2.0**31))
            q = np.where(big, np.float32(-7), np.clip(r, -7, 7)).astype(np.int8)
    return q, scale


def _bias_interleave(b: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned bias and the per-32-bit-word interleave (``add_bias_and_interleave_inplace``)."""
    u = b.view(np.uint8).reshape(-1)
    if bits == 8:
        u = (u ^ np.uint8(0x80)).reshape(-1, 4)[:, [0, 2, 1, 3]]
        return u.reshape(-1).view(np.int8)
    nib = np.stack([u & 0xF, u >> 4], axis=1).reshape(-1, 8)  # nibbles in address order
    nib = (nib ^ 8)[:, [0, 2, 4, 6, 1, 3, 5, 7]].astype(np.uint8)
    packed = (nib[:, 0::2] | (nib[:, 1::2] << 4)).reshape(-1)
    return packed.view(np.int8)


def _unbias_interleave(b: np.ndarray, bits: int) -> np.ndarray:
    u = b.view(np.uint8).reshape(-1)
    if bits == 8:
        u = u.reshape(-1, 4)[:, [0, 2, 1, 3]].reshape(-1) ^ np.uint8(0x80)
        return u.view(np.int8)
    nib = np.stack([u & 0xF, u >> 4], axis=1).reshape(-1, 8)
    inv = np.argsort([0, 2, 4, 6, 1, 3, 5, 7])
    nib = (nib[:, inv] ^ 8).astype(np.uint8)
    return (nib[:, 0::2] | (nib[:, 1::2] << 4)).reshape(-1).view(np.int8)


def _pack4(q: np.ndarray) -> np.ndarray:
    """Pack int4 codes along the last axis, even index in the low nibble."""
    u = q.astype(np.uint8) & 0xF
    return (u[..., 0::2] | (u[..., 1::2] << 4)).view(np.int8)


def _unpack4(p: np.ndarray) -> np.ndarray:
    u = p.view(np.uint8)
    lo = ((u & 0xF) ^ 8).astype(np.int8) - 8
    hi = ((u >> 4) ^ 8).astype(np.int8) - 8
    return np.stack([lo, hi], axis=-1).reshape(*p.shape[:-1], -1).astype(np.int8)


def _row_perm(m: int, bits: int) -> np.ndarray:
    """``permute_B_rows_for_mixed_gemm``: destination row ``r`` reads source row ``perm[r]``."""
    k = 16 // bits
    e = 32 // bits
    tile = 8 * k
    t = np.arange(tile)
    local = 8 * ((t % e) // 2) + t % 2 + 2 * (t // e)
    return (np.arange(0, m, tile)[:, None] + local[None, :]).reshape(-1)


def _cutlass_geometry(bits: int) -> tuple[int, int]:
    """(interleave, 32-bit words per 64-row tile) of ``interleave_column_major_tensor``."""
    return 128 * 8 // bits // 64, 64 // (32 // bits)


def _layout(q: np.ndarray, algo: str, arch: int) -> np.ndarray:
    m, n = q.shape
    bits = _bits(algo)
    if algo == "llm.int8":
        return np.ascontiguousarray(q.T)
    if arch == 70:
        rows = _pack4(q) if bits == 4 else q
        out = _bias_interleave(np.ascontiguousarray(rows), bits)
        return out.reshape(n * bits // 8, m)
    p = q[_row_perm(m, bits)]
    t = np.ascontiguousarray(p.T)  # [n, m]
    t = _pack4(t) if bits == 4 else t
    words = t.view(np.uint32)  # [n, m*bits/32]
    il, vpt = _cutlass_geometry(bits)
    nv = words.shape[1]
    w = words.reshape(n // il, il, nv // vpt, vpt).transpose(0, 2, 1, 3)
    out = _bias_interleave(np.ascontiguousarray(w).reshape(-1).view(np.int8), bits)
    return out.reshape(n * bits // 8, m)


def weight_quantize(x: np.ndarray, algo: str = "weight_only_int8", arch: int = 80,
                    group_size: int = -1, *, bfloat16_bits: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``paddle.nn.quant.weight_quantize(x, algo, arch, group_size)`` on CPU, bit for bit.

    ``x``: float16 or bfloat16 (``ml_dtypes.bfloat16``) array ``[m, n]``. Returns ``(out,
    scale)``: ``out`` int8 in the layout of ``arch`` (module docstring), ``scale`` of dtype
    ``x.dtype`` (float32 for ``llm.int8``) and shape ``[n]`` or ``[ceil(m / G), n]``.
    ``bfloat16_bits``: as in :func:`quantize_codes`.
    Upstream: PaddlePaddle/Paddle ``paddle/phi/kernels/cpu/weight_quantize_kernel.cc``.
    """
    _check_args(x, algo, arch, group_size, bfloat16_bits=bfloat16_bits)
    q, scale = quantize_codes(x, algo, group_size, bfloat16_bits=bfloat16_bits)
    return _layout(q, algo, arch), scale


def unpack_weight(out: np.ndarray, m: int, algo: str = "weight_only_int8",
                  arch: int = 80) -> np.ndarray:
    """The codes ``q[m, n]`` (int8) that :func:`weight_quantize` laid out as ``out``.

    Exact inverse of the layout for every ``(algo, arch)`` :func:`weight_quantize` accepts.
    """
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    out = np.asarray(out)
    if out.dtype != np.int8 or out.ndim != 2 or out.shape[1] != m:
        raise ValueError(
            f"out must be an int8 array of shape [*, {m}], got {out.shape} {out.dtype}"
        )
    bits = _bits(algo)
    n = out.shape[0] * 8 // bits
    if algo == "llm.int8":
        return np.ascontiguousarray(out.T)
    flat = _unbias_interleave(np.ascontiguousarray(out).reshape(-1), bits)
    if arch == 70:
        rows = flat.reshape(m, n * bits // 8)
        return _unpack4(rows) if bits == 4 else rows.copy()
    il, vpt = _cutlass_geometry(bits)
    words = flat.view(np.uint32)
    nv = m * bits // 32
    w = words.reshape(n // il, nv // vpt, il, vpt).transpose(0, 2, 1, 3).reshape(n, nv)
    t = np.ascontiguousarray(w).view(np.int8).reshape(n, m * bits // 8)
    t = _unpack4(t) if bits == 4 else t
    p = np.ascontiguousarray(t.T)
    q = np.empty_like(p)
    q[_row_perm(m, bits)] = p
    return q


def dequantize_codes(q: np.ndarray, scale: np.ndarray, group_size: int = -1) -> np.ndarray:
    """``fl(float32(q[i, j]) * float32(scale[g(i), j]))``: the value each code stands for.

    Not Paddle's ``weight_dequantize`` (GPU-only, unverified): the definition of the scale
    in ``weight_quantize`` (``x ~ q * scale``), computed in float32.
    """
    q = np.asarray(q)
    s = np.asarray(scale)
    if q.ndim != 2 or not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f"q must be a 2-D integer array, got shape {q.shape} {q.dtype}")
    if group_size not in (-1, 64, 128):
        raise ValueError(f"group_size must be -1, 64 or 128, got {group_size!r}")
    want = (q.shape[1],) if group_size == -1 else (-(-q.shape[0] // group_size), q.shape[1])
    if s.shape != want:
        raise ValueError(f"scale must have shape {want} for q {q.shape} and "
                         f"group_size={group_size}, got {s.shape}")
    sf = _to_float32(s) if s.dtype.name == "bfloat16" else s.astype(np.float32)
    if group_size == -1:
        rows = sf[None, :]
    else:
        rows = sf[np.arange(q.shape[0]) // group_size]
    with np.errstate(invalid="ignore", over="ignore"):
        return q.astype(np.float32) * rows
