"""AVGObserver: mean of per-sample abs-max (``paddleslim/quant/observers/avg.py``).

A *sample* is one index of axis 0 (a 1-D batch is a batch of scalar samples, as in
PaddleSlim; a 0-D batch is one sample in the canonical profile).

canonical
    ``S = mean over ALL observed samples of max |sample|``, the exact rational mean of the
    (exact) per-sample maxima rounded once, correctly, to float32. The state is the exact
    sum (a Python integer times a power of two) and the sample count, so the result does not
    depend on batch order or sharding and ``merge`` adds the states. (This is what
    ``math.fsum`` would give up to its final rounding; we keep the sum exact so that the
    single rounding happens at the end, straight to float32.)
paddleslim
    PaddleSlim 2.6.0's ``AVGObserverLayer`` (items 12-14):

    * per batch: ``float(paddle.mean(paddle.max(abs(x.reshape(n, -1)), axis=1)))`` -- the
      per-sample maxima averaged in the input dtype with Paddle's lane order
      (:func:`refquant.kernels.slim.paddle_mean`), stored as a Python float;
    * ``scales()``: ``paddle.mean(paddle.to_tensor(list))`` -- the per-batch values as
      float32 averaged again in float32, so every batch weighs the same whatever its size
      (item 12);
    * a 0-D batch raises ``IndexError`` (as PaddleSlim does, item 13);
    * a zero or NaN mean gives Python ``int 0`` -> scale 0.0 (item 9);
    * ``forward`` clears the cached scale, so :meth:`compute` always reflects every batch.

    * float16 input raises ``RuntimeError`` as on Paddle's CPU (no float16 ``abs`` kernel).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..kernels.slim import paddle_mean
from ..qparams import QParams, integer_range
from .absmax import slim_py_scale
from .base import ObserverBase, Profile
from .search import per_tensor_qparams, reject_slim_float16

__all__ = ["AVGObserver", "exact_sum", "fraction_to_float32", "per_sample_abs_max"]

_CHUNK = 1 << 16


def per_sample_abs_max(x: np.ndarray) -> np.ndarray:
    """``max |x[i, ...]|`` for each index ``i`` of axis 0, in ``x.dtype`` (exact)."""
    flat = x.reshape(x.shape[0], -1)
    return np.maximum(flat.max(axis=1), -flat.min(axis=1))


def exact_sum(values: np.ndarray) -> Fraction:
    """The exact sum of finite float values, as a Fraction (order-free by construction).

    Each float64 ``v = m * 2**(e - 53)`` with integer ``m`` (``np.frexp``); the mantissas are
    summed as Python integers per exponent, then shifted to the smallest exponent.
    """
    flat = np.asarray(values).ravel()
    out = Fraction(0)
    for start in range(0, flat.size, _CHUNK):  # bounded temporaries
        v = flat[start : start + _CHUNK].astype(np.float64)
        v = v[v != 0]
        if v.size == 0:
            continue
        mant, exp = np.frexp(v)
        m = (mant * 2.0**53).astype(np.int64)  # exact: |mant| in [0.5, 1)
        emin = int(exp.min())
        total = 0
        for e in np.unique(exp):
            sel = m[exp == e]
            hi = int((sel >> 26).sum())  # each part < 2**27: int64 sums cannot overflow
            lo = int((sel & ((1 << 26) - 1)).sum())
            total += ((hi << 26) + lo) << (int(e) - emin)
        out += Fraction(total) * Fraction(2) ** (emin - 53)
    return out


def fraction_to_float32(q: Fraction) -> np.float32:
    """Round a rational to the nearest float32, ties to even (a single rounding)."""
    f = np.float32(float(q))  # float() is correctly rounded; the f32 cast may double-round
    best = f
    for c in (np.nextafter(f, np.float32(-np.inf)), np.nextafter(f, np.float32(np.inf))):
        if not np.isfinite(c):
            continue
        dc, db = abs(Fraction(float(c)) - q), abs(Fraction(float(best)) - q)
        if dc < db or (dc == db and int(c.view(np.uint32)) % 2 == 0):
            best = c
    return np.float32(best)


class AVGObserver(ObserverBase):
    """Average of per-sample abs-max (see module docstring for both profiles)."""

    def __init__(
        self,
        quant_bits: int = 8,
        *,
        profile: Profile = "canonical",
        ignore_nonfinite: bool = False,
    ) -> None:
        super().__init__(quant_bits, profile=profile, ignore_nonfinite=ignore_nonfinite)

    def _reset(self) -> None:
        self._sum = Fraction(0)
        self._count = 0
        self._avg_list: list[float] = []

    def _observe(self, x: np.ndarray) -> None:
        if self.profile == "canonical":
            xs = x.reshape(1) if x.ndim == 0 else x
            if self.ignore_nonfinite:
                flat = xs.reshape(xs.shape[0], -1)
                if not np.isfinite(flat).all():
                    # a sample's max over its finite values; samples with none are dropped
                    fin = np.isfinite(flat)
                    keep = fin.any(axis=1)
                    vals = np.where(fin, np.abs(flat), 0).max(axis=1)[keep]
                    self._sum += exact_sum(vals)
                    self._count += int(keep.sum())
                    return
            maxima = per_sample_abs_max(xs)
            self._sum += exact_sum(maxima)
            self._count += maxima.size
            return
        if x.ndim == 0:
            raise IndexError("AVGObserver(profile='paddleslim'): a 0-D batch has no axis 0 "
                             "(PaddleSlim's inputs.shape[0] raises IndexError, item 13)")
        reject_slim_float16(x, "AVGObserver")
        maxima = per_sample_abs_max(x)
        with np.errstate(invalid="ignore"):
            nan = np.isnan(maxima).any()
        self._avg_list.append(float("nan") if nan else float(paddle_mean(maxima)))

    def _compute(self) -> QParams:
        qmin, qmax = integer_range(self.quant_bits)
        if self.profile == "canonical":
            if self._count == 0:
                raise ValueError("no finite values observed (ignore_nonfinite=True dropped all)")
            s = fraction_to_float32(self._sum / self._count)
            return per_tensor_qparams(s, self.quant_bits)
        vals = np.array(self._avg_list, dtype=np.float64)
        with np.errstate(over="ignore"):
            v32 = vals.astype(np.float32)  # paddle.to_tensor(list of floats) -> float32
        m = float(paddle_mean(v32))
        return per_tensor_qparams(slim_py_scale(m), self.quant_bits)

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, AVGObserver)
        self._sum += other._sum
        self._count += other._count
