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
from typing import Any

import numpy as np

from .._validation import as_real_array, check_float32_range
from ..kernels.slim import paddle_mean
from ..qparams import QParams, integer_range
from .absmax import slim_py_scale
from .base import ObserverBase
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
    """Round a rational to the nearest float32, ties to even (a single rounding).

    ``ValueError`` when ``q`` rounds beyond float32's largest value (no finite result)."""
    try:
        with np.errstate(over="ignore"):
            f = np.float32(float(q))  # float() is correctly rounded; the cast may double-round
    except OverflowError:  # beyond float64
        f = np.float32(np.inf)
    if not np.isfinite(f):
        raise ValueError("q is beyond the float32 range: it has no finite float32 rounding")
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

    # constructor: ObserverBase's (quant_bits=8, *, profile, ignore_nonfinite)

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
                    self._fold_sample_maxima(np.where(fin, np.abs(flat), 0).max(axis=1)[keep])
                    return
            self._fold_sample_maxima(per_sample_abs_max(xs))
            return
        if x.ndim == 0:
            raise IndexError("AVGObserver(profile='paddleslim'): a 0-D batch has no axis 0 "
                             "(PaddleSlim's inputs.shape[0] raises IndexError, item 13)")
        reject_slim_float16(x, "AVGObserver")
        self._fold_sample_maxima(per_sample_abs_max(x))

    def _fold_sample_maxima(self, maxima: np.ndarray) -> None:
        if self.profile == "canonical":
            self._sum += exact_sum(maxima)
            self._count += maxima.size
            return
        with np.errstate(invalid="ignore"):
            nan = np.isnan(maxima).any()
        self._avg_list.append(float("nan") if nan else float(paddle_mean(maxima)))

    def observe_sample_abs_max(self, maxima: Any, *, batches: int = 1) -> None:
        """Fold in the per-sample abs-max of ``batches`` batches.

        ``maxima`` is a 1-D floating array: ``max |x[i, ...]|`` for each sample ``i`` (index
        of axis 0), exact in the input's dtype (max is exact, so any reduction order or
        device qualifies); it is not modified. Equivalence, bit for bit::

            obs.observe(x)  ==  obs.observe_sample_abs_max(per_sample_abs_max(x))

        (a 0-D ``x`` is one sample, canonical profile; with ``ignore_nonfinite`` the maxima
        are over each sample's finite values and samples with none are left out).

        canonical: the maxima must be finite and ``>= 0``. The state is the exact sum and
        the count, so the maxima of several batches may come concatenated in one call with
        ``batches=k``. paddleslim: the maxima must be ONE batch's (``batches=1``):
        PaddleSlim keeps ``paddle.mean`` of each batch's maxima in the maxima's dtype
        (:func:`refquant.kernels.slim.paddle_mean`, Paddle's CPU lane order); use
        :meth:`observe_batch_means` for means computed elsewhere. float16 maxima raise
        ``RuntimeError`` there as on Paddle's CPU.
        """
        batches = self._check_batches(batches)
        arr = self._stat_array(maxima, "maxima", 1)
        if arr.size == 0:
            raise ValueError("maxima must hold at least one sample (observe rejects empty x)")
        if self.profile == "canonical":
            if not (np.all(np.isfinite(arr)) and np.all(arr >= 0)):
                raise ValueError("maxima must be finite and >= 0 (per-sample abs-max values)")
        else:
            self._check_nonnegative(arr, "maxima")
            if batches != 1:
                raise ValueError(
                    f"batches must be 1 for profile='paddleslim' (PaddleSlim averages each "
                    f"batch separately), got {batches}; use observe_batch_means"
                )
            reject_slim_float16(arr, "AVGObserver")
        self._fold_sample_maxima(arr)
        self._ingest(batches)

    def observe_batch_means(self, means: Any) -> None:
        """paddleslim profile: fold in PaddleSlim's per-batch statistic, one value per batch.

        ``means[k]`` is ``float(paddle.mean(paddle.max(abs(x_k.reshape(n, -1)), axis=1)))``
        for the ``k``-th batch, in batch order (PaddleSlim's ``_avg_list`` of Python
        floats; computed with Paddle's own ``mean`` on any device, or with
        :func:`refquant.kernels.slim.paddle_mean` of the per-sample maxima, NaN when a
        maximum is NaN): real numbers, NaN or ``>= 0``. Counts ``len(means)`` batches.
        Equivalence, bit for bit::

            obs.observe(x)  ==  obs.observe_batch_means(
                [nan if isnan(m).any() else float(paddle_mean(m))])
            # with m = per_sample_abs_max(x)
        """
        self._require_profile("paddleslim", "observe_batch_means")
        arr = as_real_array(means, "means")
        if arr.ndim > 1:
            raise ValueError(f"means must be a number or a 1-D sequence, got shape {arr.shape}")
        check_float32_range(arr, "means")
        self._check_nonnegative(arr, "means")
        vals = [float(v) for v in arr.astype(np.float64).reshape(-1)]
        if not vals:
            raise ValueError("means must hold at least one batch's value")
        self._avg_list.extend(vals)
        self._ingest(len(vals))

    def _state(self) -> dict[str, Any]:
        """canonical: ``sum`` (exact, a Fraction) and ``count`` of the per-sample maxima;
        paddleslim: ``batch_means`` (list of float)."""
        if self.profile == "canonical":
            return {"sum": self._sum, "count": self._count}
        return {"batch_means": list(self._avg_list)}

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
