"""``paddle.divide`` of float32 tensors on CPU (Paddle 3.3.1), bit for bit, per CPU variant.

Paddle's CPU divide kernel sends two operands *of the same shape* to MKL's vector math
function ``vsDiv`` (``paddle/phi/kernels/cpu/elementwise_divide_kernel.cc``: ``x.dims() ==
y.dims()`` -> ``SameDimsDivideFunctor`` -> ``blas.VDIV``, in
``paddle/phi/kernels/funcs/blas/blas_impl.h``); operands of different shapes (a tensor and a
Python number, a ``[C]`` tensor and a 0-D one, ...) go through the broadcasting loop, which
computes the IEEE quotient ``fl(x / y)``. ``vsDiv`` in its default high-accuracy mode picks a
kernel from the CPU when it runs, and the kernels differ (see :mod:`refquant.kernels._isa`):

* ``isa="avx2"`` (every CPU without AVX-512, and the default here): the IEEE quotient
  (the kernel divides with ``divps``);
* ``isa="avx512"`` (Intel CPUs with AVX-512): for finite non-zero ``x`` and ``y``, with
  ``x = mx * 2^ex``, ``y = my * 2^ey`` (``|mx|, |my|`` in ``[1, 2)``, signs kept)::

      r  = rcp14(my)                  # VRCP14PS: |r * my - 1| < 2^-14
      q0 = fl(mx * r)
      e  = fma(-q0, my, mx)           # fused: one rounding
      q1 = fma(r, e, q0)
      z  = fl(q1 * 2^(ex - ey))       # VSCALEFPS: one rounding, also into subnormals / inf

  Every other case (a zero, an infinity or a NaN among the operands) gives the IEEE
  quotient. ``z`` is within 1 ulp of the IEEE quotient and differs from it on about 0.3% of
  random operands. ``rcp14`` is Intel's documented VRCP14PS algorithm (the SDM and Intel's
  reference implementation ``RECIP14.c``): for ``m = 1 + f`` in ``(1, 2)``, ``i`` = the top
  6 bits of ``f``, ``d`` = the next 10 bits as a signed offset from the middle of segment
  ``i`` (``d = bits(f)[16:7] - 512``, the 7 lowest fraction bits ignored),
  ``r = trunc17(A[i] - B[i] * d / 256) / 2^18`` (truncated to 17 significant bits);
  ``rcp14(1) = 1``. The coefficient pairs below were recovered from the instruction's output
  on every one of the 2^23 significands of ``[1, 2)`` (an Intel Xeon with AVX-512) and are
  Intel's published ones.

Measured on that Xeon (Paddle 3.3.1, the MKL build Paddle bundles): Paddle's same-shape
divide equals :func:`vml_divide` with ``isa="avx512"`` on 4,194,304 random pairs spanning
``1e-30 .. 1e30`` (including quotients that overflow or become subnormal) and on every pair of
18 special values; with ``MKL_ENABLE_INSTRUCTIONS=AVX2`` (MKL's switch to cap its code path)
it equals the IEEE quotient, as on AVX2 machines.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._isa import check_isa

__all__ = ["rcp14", "vml_divide", "paddle_divide"]

F32 = np.float32

# VRCP14PS segment coefficients: value at the segment centre (scaled by 2^18) and slope.
_RCP14_A = np.array([
    260119, 256148, 252296, 248558, 244929, 241405, 237981, 234652, 231416, 228266, 225202,
    222220, 219314, 216485, 213727, 211038, 208417, 205859, 203364, 200929, 198551, 196229,
    193960, 191743, 189576, 187458, 185387, 183360, 181377, 179439, 177540, 175681, 173860,
    172077, 170330, 168618, 166940, 165295, 163682, 162101, 160550, 159027, 157535, 156069,
    154631, 153219, 151832, 150470, 149133, 147819, 146528, 145260, 144012, 142787, 141582,
    140397, 139232, 138085, 136959, 135853, 134763, 133689, 132631, 131589,
], dtype=np.float64)
_RCP14_B = np.array([
    1009, 977, 949, 921, 893, 869, 843, 821, 797, 777, 755, 735, 717, 699, 681, 663, 647, 631,
    617, 601, 587, 573, 561, 547, 535, 523, 513, 501, 491, 479, 469, 459, 451, 441, 433, 423,
    415, 407, 399, 391, 385, 377, 369, 363, 357, 349, 343, 337, 331, 325, 319, 315, 309, 303,
    299, 293, 289, 285, 279, 275, 271, 267, 263, 259,
], dtype=np.float64)


def rcp14(m: np.ndarray) -> np.ndarray:
    """VRCP14PS of float32 significands ``m`` in ``[1, 2)`` (see the module docstring)."""
    f = np.asarray(m, F32).view(np.uint32).astype(np.int64) & 0x7FFFFF
    i = f >> 17
    d = ((f >> 7) & 0x3FF) - 512
    v = _RCP14_A[i] - _RCP14_B[i] * d / 256.0  # exact in float64
    # v lies in (2^17, 2^18) for every segment: 17 significant bits leave a unit of 2
    r = np.floor(v / 2.0) * 2.0 / 2.0**18
    return np.where(f == 0, 1.0, r).astype(F32)


def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``fl32(a * b + c)`` with one rounding, for float32 operands.

    The product is exact in float64; the float64 sum is rounded to odd (if inexact, the
    neighbour with an odd last bit), which makes the final rounding to float32 correct
    (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums", 2008).
    """
    p = a.astype(np.float64) * b.astype(np.float64)
    c64 = c.astype(np.float64)
    s = p + c64
    t = s - c64
    err = (p - t) + (c64 - (s - t))
    even = (s.view(np.int64) & 1) == 0
    toward = np.where(err > 0, np.inf, -np.inf)
    s = np.where((err != 0) & even, np.nextafter(s, toward), s)
    return s.astype(F32)


def _avx512_divide(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        ieee = np.divide(x, y, dtype=F32)
        ordinary = np.isfinite(x) & np.isfinite(y) & (x != 0) & (y != 0)
        if not ordinary.any():
            return ieee
        xs = np.where(ordinary, x, F32(1.0))
        ys = np.where(ordinary, y, F32(1.0))
        fx, ex = np.frexp(xs)
        fy, ey = np.frexp(ys)
        mx = (fx * F32(2.0)).astype(F32)
        my = (fy * F32(2.0)).astype(F32)
        r = np.copysign(rcp14(np.abs(my)), my)
        q0 = (mx * r).astype(F32)
        e = _fma32(-q0, my, mx)
        q1 = _fma32(r, e, q0)
        z = np.ldexp(q1.astype(np.float64), (ex - ey).astype(np.int64)).astype(F32)
    return np.where(ordinary, z, ieee)


def vml_divide(x: Any, y: Any, isa: str = "avx2") -> np.ndarray:
    """MKL ``vsDiv(n, x, y, out)`` elementwise on float32 arrays of one shape.

    ``isa``: ``"avx2"`` (default; the IEEE quotient), ``"avx512"`` or ``"host"``
    (:func:`refquant.kernels._isa.host_isa`). No argument checks beyond ``isa``; ``x`` and
    ``y`` are read as float32 and must have the same shape.
    """
    variant = check_isa(isa)
    xa = np.asarray(x, F32)
    ya = np.asarray(y, F32)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same shape, got {xa.shape} and {ya.shape}")
    if variant == "avx2":
        with np.errstate(all="ignore"):
            return np.divide(xa, ya, dtype=F32)
    return _avx512_divide(xa, ya)


def paddle_divide(x: Any, y: Any, isa: str = "avx2") -> np.ndarray:
    """``paddle.divide(x, y)`` of float32 tensors with these shapes on CPU.

    Equal shapes: :func:`vml_divide` with ``isa``; otherwise the broadcast IEEE quotient
    (``isa`` is still checked). The shapes must be the tensors' shapes in Paddle: a
    ``[1]``-shaped parameter is ``(1,)`` here, a 0-D tensor ``()``.
    """
    variant = check_isa(isa)
    xa = np.asarray(x, F32)
    ya = np.asarray(y, F32)
    if xa.shape == ya.shape:
        return vml_divide(xa, ya, variant)
    with np.errstate(all="ignore"):
        return np.divide(xa, ya, dtype=F32)
