"""AVGObserver: mean of per-sample abs-max.

Upstream: PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/avg.py``. Quirk numbers
(Q12, ...) are the rows of docs/divergences.md.

A *sample* is one index of axis 0 (a 1-D batch is a batch of scalar samples, as in
PaddleSlim; a 0-D batch is one sample in the canonical profile).

canonical (:class:`_CanonicalAVG`)
    ``S = mean over ALL observed samples of max |sample|``, the exact rational mean of the
    (exact) per-sample maxima rounded once, correctly, to float32. The state is the exact
    sum (a Python integer times a power of two) and the sample count, so the result does not
    depend on batch order or sharding and ``merge`` adds the states. (This is what
    ``math.fsum`` would give up to its final rounding; the sum stays exact so that the
    single rounding happens at the end, straight to float32.)
paddleslim (:class:`_SlimAVG`)
    PaddleSlim 2.6.0's ``AVGObserverLayer`` (Q12-Q14):

    * per batch: ``float(paddle.mean(paddle.max(abs(x.reshape(n, -1)), axis=1)))`` -- the
      per-sample maxima averaged in the input dtype with Paddle's lane order
      (:func:`refquant.kernels.slim.paddle_mean`), stored as a Python float;
    * ``scales()``: ``paddle.mean(paddle.to_tensor(list))`` -- the per-batch values as
      float32 averaged again in float32, so every batch weighs the same whatever its size
      (Q12, Q14);
    * a 0-D batch raises ``IndexError`` (as PaddleSlim does, Q13a);
    * a zero or NaN mean gives Python ``int 0`` -> scale 0.0 (Q9a);
    * ``forward`` clears the cached scale, so :meth:`compute` always reflects every batch;
    * float16 input raises ``RuntimeError`` as on Paddle's CPU (no float16 ``abs`` kernel,
      Q18a).
"""

from __future__ import annotations

import abc
from fractions import Fraction
from typing import Any

import numpy as np

from .._validation import as_real_array, check_float32_range
from ..kernels.slim import paddle_mean
from ..profiles import CANONICAL, PADDLESLIM
from ..qparams import QParams
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
    """Average of per-sample abs-max.

    ``AVGObserver(profile="canonical")`` is an :class:`_CanonicalAVG` (exact mean of every
    sample's abs-max, mergeable), ``profile="paddleslim"`` an :class:`_SlimAVG` (PaddleSlim's
    mean of per-batch float means); the module docstring states both. Constructor:
    :class:`ObserverBase`'s ``(quant_bits=8, *, profile, ignore_nonfinite)``.
    """

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
        self._check_sample_maxima(arr, batches)
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

        Other profiles keep no per-batch means: ``ValueError``.
        """
        self._refuse("observe_batch_means")

    @abc.abstractmethod
    def _check_sample_maxima(self, maxima: np.ndarray, batches: int) -> None:
        """``ValueError`` (or the original's error) for maxima this profile cannot fold."""

    @abc.abstractmethod
    def _fold_sample_maxima(self, maxima: np.ndarray) -> None:
        """Fold per-sample abs-maxima (validated) into the state."""


class _CanonicalAVG(AVGObserver, profile=CANONICAL):
    """canonical: ``S = fl32(sum_i m_i / N)`` over ALL observed samples, one rounding.

    ``m_i = max |sample_i|`` is exact in the input dtype; the state is the exact sum of the
    ``m_i`` (:func:`exact_sum`, a Fraction) and their count ``N``, so ``compute`` rounds the
    exact rational mean once, to nearest-even float32 (:func:`fraction_to_float32`). The
    state does not depend on batch order or sharding; ``merge`` adds sums and counts. A 0-D
    batch is one sample; with ``ignore_nonfinite`` each sample's maximum is over its finite
    values and samples with none are left out.
    """

    def _reset(self) -> None:
        self._sum = Fraction(0)
        self._count = 0

    def _observe(self, x: np.ndarray) -> None:
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

    def _check_sample_maxima(self, maxima: np.ndarray, batches: int) -> None:
        if not (np.all(np.isfinite(maxima)) and np.all(maxima >= 0)):
            raise ValueError("maxima must be finite and >= 0 (per-sample abs-max values)")

    def _fold_sample_maxima(self, maxima: np.ndarray) -> None:
        self._sum += exact_sum(maxima)
        self._count += maxima.size

    def _state(self) -> dict[str, Any]:
        """``sum`` (exact, a Fraction) and ``count`` of the per-sample maxima."""
        return {"sum": self._sum, "count": self._count}

    def _compute(self) -> QParams:
        if self._count == 0:
            raise ValueError("no finite values observed (ignore_nonfinite=True dropped all)")
        s = fraction_to_float32(self._sum / self._count)
        return per_tensor_qparams(s, self.quant_bits)

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, _CanonicalAVG)
        self._sum += other._sum
        self._count += other._count


class _SlimAVG(AVGObserver, profile=PADDLESLIM):
    """paddleslim: PaddleSlim 2.6.0's ``AVGObserverLayer``, bug for bug (Q12-Q14, Q9a).

    Upstream: PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/avg.py``. Per batch,
    ``float(paddle.mean(paddle.max(abs(x.reshape(n, -1)), axis=1)))``: the per-sample maxima
    averaged in the input dtype in Paddle's CPU lane order
    (:func:`refquant.kernels.slim.paddle_mean`), kept as a Python float (NaN if a maximum is
    NaN). ``compute`` is ``paddle.mean(paddle.to_tensor(list))``: the per-batch floats
    rounded to float32 and averaged again in float32 (every batch weighs the same, Q12,
    Q14); then Python's ``max`` (:func:`refquant.observers.absmax.slim_py_scale`): a zero or
    NaN mean gives 0.0 (Q9a). A 0-D batch raises ``IndexError`` (Q13a) and float16 raises
    ``RuntimeError`` (Q18a), as on Paddle's CPU.
    """

    def _reset(self) -> None:
        self._avg_list: list[float] = []

    def _observe(self, x: np.ndarray) -> None:
        if x.ndim == 0:
            raise IndexError("AVGObserver(profile='paddleslim'): a 0-D batch has no axis 0 "
                             "(PaddleSlim's inputs.shape[0] raises IndexError, Q13a)")
        reject_slim_float16(x, self.public_name)
        self._fold_sample_maxima(per_sample_abs_max(x))

    def _check_sample_maxima(self, maxima: np.ndarray, batches: int) -> None:
        self._check_nonnegative(maxima, "maxima")
        if batches != 1:
            raise ValueError(
                f"batches must be 1 for profile='paddleslim' (PaddleSlim averages each "
                f"batch separately), got {batches}; use observe_batch_means"
            )
        reject_slim_float16(maxima, self.public_name)

    def _fold_sample_maxima(self, maxima: np.ndarray) -> None:
        with np.errstate(invalid="ignore"):
            nan = np.isnan(maxima).any()
        self._avg_list.append(float("nan") if nan else float(paddle_mean(maxima)))

    def observe_batch_means(self, means: Any) -> None:
        """Fold in PaddleSlim's per-batch means (see :meth:`AVGObserver.observe_batch_means`)."""
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
        """``batch_means``: the per-batch means (list of float, a copy)."""
        return {"batch_means": list(self._avg_list)}

    def _compute(self) -> QParams:
        vals = np.array(self._avg_list, dtype=np.float64)
        with np.errstate(over="ignore"):
            v32 = vals.astype(np.float32)  # paddle.to_tensor(list of floats) -> float32
        m = float(paddle_mean(v32))
        return per_tensor_qparams(slim_py_scale(m), self.quant_bits)
