"""The u8/s8 integer GEMM core of ONNX Runtime's CPU kernels (MLAS ``MlasGemmBatch``).

MLAS multiplies the raw codes and applies the zero points afterwards, with row and column
sums (``onnxruntime/core/mlas/lib/qgemm.h``, ``MlasGemmQuantOperation``)::

    C[m, n] = sum_k A[m, k] * B[k, n]                       # the kernel's dot product
              - zpB[n] * sum_k A[m, k] - zpA * sum_k B[k, n] + K * zpA * zpB[n]

all in int32 with wrap-around, which equals ``sum_k (A - zpA) * (B - zpB)`` modulo 2^32
whenever the dot product is exact. It is not exact on the saturating variants
(``isa="avx2"``, ``"avx512"``; see :mod:`._dispatch`) for u8 ``A`` times s8 ``B``:
``vpmaddubsw`` adds the products of the K pairs ``(2j, 2j + 1)`` into int16 with saturation
before they are widened::

    dot[m, n] = sum_j sat16(A[m, 2j] * B[2j, n] + A[m, 2j+1] * B[2j+1, n])

An odd K is padded with a zero, so the last product has no partner. The pairs are the same
in every MLAS code path that uses the instruction: the packed GEMM (``PackedK = 4``; K
strides of 128 and 384 are even), the M = 1 GEMV kernel (``QgemvU8S8KernelAvx2.S``, four
rows of B at a time) and the symmetric convolution (``ConvSymKernelAvx2.S``, which requires
a multiple of 4 input channels). Example: ``A = (255, 255)``, ``B = (127, 127)`` gives
``255 * 127 * 2 = 64770``, stored as 32767. A pair can only saturate when
``|B[2j]| + |B[2j+1]| >= 129`` (``255 * 128.5 = 32767.5``); weights in ``[-64, 64]`` never
do, which is why ORT's ``avx2_weight_s8_to_u8`` transform leaves such weights alone.

The emulation computes the exact product with float32 BLAS over chunks of K short enough
that no partial sum reaches 2^24 (chunks added in float64) and adds the saturation excess
of the candidate pairs only.
"""

from __future__ import annotations

import numpy as np

from ._common import wrap_i32
from ._dispatch import saturates

__all__ = ["gemm_s32", "pair_saturation", "weight_s8_to_u8"]

_CHUNK = 1 << 22  # elements of one candidate-pair block


def _pair_excess(
    a: np.ndarray, b: np.ndarray, want_count: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``sum_j (sat16(p_j) - p_j)`` and the number of saturated pairs, per output.

    ``a``: [M, K] raw u8 codes, ``b``: [K, N] raw s8 codes (int32 arrays). Only pairs whose
    value range (from the column's weights and the pair's largest and smallest activations)
    leaves int16 are evaluated.
    """
    m, k = a.shape
    n = b.shape[1]
    excess = np.zeros((m, n), np.int64)
    count = np.zeros((m, n), np.int64) if want_count else None
    if k % 2:
        a = np.concatenate([a, np.zeros((m, 1), a.dtype)], axis=1)
        b = np.concatenate([b, np.zeros((1, n), b.dtype)], axis=0)
    a0t = np.ascontiguousarray(a[:, 0::2].T)  # [K/2, M]
    a1t = np.ascontiguousarray(a[:, 1::2].T)
    b0, b1 = b[0::2], b[1::2]  # [K/2, N]
    hi0, hi1 = a0t.max(axis=1)[:, None], a1t.max(axis=1)[:, None]
    lo0, lo1 = a0t.min(axis=1)[:, None], a1t.min(axis=1)[:, None]
    upper = np.where(b0 > 0, hi0, lo0) * b0 + np.where(b1 > 0, hi1, lo1) * b1
    lower = np.where(b0 < 0, hi0, lo0) * b0 + np.where(b1 < 0, hi1, lo1) * b1
    cand = (upper > 32767) | (lower < -32768)
    if not cand.any():
        return excess, count
    col, pair = np.nonzero(cand.T)  # sorted by output column
    w0, w1 = b0[pair, col][:, None], b1[pair, col][:, None]
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    cols = col[starts]
    step = max(1, _CHUNK // len(col))
    for r in range(0, m, step):
        p = a0t[pair, r:r + step] * w0 + a1t[pair, r:r + step] * w1  # [C, rows]
        ex = np.clip(p, -32768, 32767) - p
        excess[r:r + step, cols] = np.add.reduceat(ex, starts, axis=0, dtype=np.int64).T
        if count is not None:
            count[r:r + step, cols] = np.add.reduceat(
                (ex != 0).astype(np.int32), starts, axis=0, dtype=np.int64).T
    return excess, count


def _exact_product(a: np.ndarray, b: np.ndarray, a_zp: np.ndarray, b_zp: np.ndarray,
                   ) -> tuple[np.ndarray, float]:
    """``(a - a_zp) @ (b - b_zp)`` computed exactly with float32 BLAS, and a bound on its
    magnitude (``K * max|a - a_zp| * max|b - b_zp|``).

    K is cut into chunks of ``L`` with ``L * max|a - a_zp| * max|b - b_zp| < 2^24``: every
    partial sum of a chunk, in any summation order, is then an integer that float32 holds
    exactly; the chunk results are added in float64 (exact below 2^53)."""
    af = a.astype(np.float32) - a_zp.astype(np.float32)
    bf = b.astype(np.float32) - b_zp.astype(np.float32)
    k = af.shape[1]
    prod = float(np.abs(af).max(initial=0.0)) * float(np.abs(bf).max(initial=0.0))
    if prod == 0.0:
        return np.zeros((af.shape[0], bf.shape[1]), np.float32), 0.0
    step = int((2**24 - 1) // prod)
    if step >= k:
        return af @ bf, k * prod
    acc = np.zeros((af.shape[0], bf.shape[1]), np.float64)
    for s in range(0, k, step):
        acc += af[:, s:s + step] @ bf[s:s + step]
    return acc, k * prod


def _gemm2d(
    a: np.ndarray, b: np.ndarray, a_zp: np.ndarray, b_zp: np.ndarray, sat: bool,
    want_count: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    exact, bound = _exact_product(a, b, a_zp, b_zp)
    if not sat and bound < 2.0**31:
        return exact.astype(np.int32), None
    acc = exact.astype(np.int64)
    count = None
    if sat:
        excess, count = _pair_excess(a.astype(np.int32), b.astype(np.int32), want_count)
        acc += excess
    return wrap_i32(acc), count


def gemm_s32(
    a: np.ndarray,
    b: np.ndarray,
    a_zero_point: np.ndarray,
    b_zero_point: np.ndarray,
    isa: str,
    *,
    return_saturation: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``sum_k (a - zpA) * (b - zpB)`` as MLAS's ``isa`` variant computes it, in int32.

    ``a``: [..., M, K] and ``b``: [..., K, N] checked u8/s8 codes (batch dimensions broadcast
    as in ``numpy.matmul``; 1-D operands are not accepted here); ``a_zero_point``: int64
    scalar; ``b_zero_point``: int64 scalar or [N] (per column). ``isa`` must be resolved
    (:func:`._dispatch.check_isa`). With ``return_saturation`` also returns the number of
    saturated int16 pairs per output (zeros on exact variants).
    """
    sat = saturates(isa, a.dtype == np.int8, b.dtype == np.int8)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, n = a.shape[-2], b.shape[-1]
    if not batch:
        acc2, count2 = _gemm2d(a, b, a_zero_point, b_zero_point, sat, return_saturation)
        if return_saturation:
            return acc2, np.zeros((m, n), np.int64) if count2 is None else count2
        return acc2
    out = np.empty(batch + (m, n), np.int32)
    nsat = np.zeros(batch + (m, n), np.int64) if return_saturation else out
    aa = np.broadcast_to(a, batch + a.shape[-2:])
    bb = np.broadcast_to(b, batch + b.shape[-2:])
    for idx in np.ndindex(*batch):
        out[idx], count = _gemm2d(aa[idx], bb[idx], a_zero_point, b_zero_point, sat,
                                  return_saturation)
        if count is not None and return_saturation:
            nsat[idx] = count
    if return_saturation:
        return out, nsat
    return out


def pair_saturation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Saturated ``vpmaddubsw`` pairs per output of raw u8 ``a`` [M, K] x s8 ``b`` [K, N]."""
    count = _pair_excess(a.astype(np.int32), b.astype(np.int32))[1]
    assert count is not None
    return count


def weight_s8_to_u8(w: np.ndarray, w_zero_point: np.ndarray | None = None,
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """ORT's ``session.x64quantprecision`` weight rewrite, or None where ORT keeps int8.

    ``onnxruntime/core/optimizer/qdq_transformer/avx2_weight_s8_to_u8.cc`` with
    ``s8_to_u8.h``: constant int8 weights become uint8 ``w ^ 0x80`` (= ``w + 128``) with
    zero point ``zp + 128`` when some weight lies outside ``[-64, 64]``. The uint8 x uint8
    GEMM is exact, and ``(w + 128) - (zp + 128) = w - zp``, so the converted operator computes
    the exact int32 result on every variant.
    """
    if w.dtype != np.int8:
        raise TypeError(f"w must have dtype int8, got dtype {w.dtype}")
    if not np.any((w < -64) | (w > 64)):
        return None
    zp = np.zeros((), np.int8) if w_zero_point is None else np.asarray(w_zero_point)
    if zp.dtype != np.int8:
        raise TypeError(f"w_zero_point must have dtype int8, got dtype {zp.dtype}")
    return w.view(np.uint8) ^ np.uint8(0x80), zp.view(np.uint8) ^ np.uint8(0x80)
