"""Candidate-scale searches of the MSE / EMD observers: losses, then pure decisions.

Two grids
---------
* PaddleSlim (``profile="paddleslim"``): the 35 factors its ``while s <= 1.0: s += 0.02``
  loop visits (:data:`refquant.kernels.slim.SEARCH_FACTORS`; docs/divergences.md Q1:
  accumulated, drifting, no 1.0), candidate ``scale = factor * abs_max`` in float64.
* canonical: :data:`CANONICAL_FACTORS` ``= k / 50`` for ``k = 15 .. 50`` (0.30, 0.32, ...,
  1.00), each computed as an exact quotient of integers, 1.0 included; candidate threshold
  ``S_k = fl32(k / 50 * abs_max)`` (the float32 scale that would be stored).

Decisions
---------
* :func:`slim_running_choice`: PaddleSlim's per-tensor loop -- the loss carried from
  earlier batches competes, ``<=`` lets later candidates win ties (Q15, Q17).
* :func:`argmin_first`: smallest index among the minimal losses (canonical: the smallest
  factor wins exact ties; also PaddleSlim's channel-wise strict ``<``, Q34).
* :func:`relative_margin`: ``(second - best) / best`` over the candidates that compete.

Error bound of a float32 mean (used by the conformance rule "identical decision unless the
margin is below the bound"): a mean of ``n`` non-negative terms carries ``n - 1`` roundings
of the sum in any order, one of the division, and up to 4 of Paddle's inexact ``x ** 2``
per term, so its relative error is at most ``gamma_(n+4)`` (:func:`f32_mean_bound`) and two
such losses can swap order only when their relative gap is below ``2 gamma_(n+4)``
(:func:`decision_bound`, the one formula of :func:`refquant._numerics.decision_bound`).

PaddleSlim's per-tensor MSE loss is reproduced with the exact quant-dequant, float32
differences and squares and Paddle's exact ``mean`` lane order; it still differs from
Paddle's in the last bits because Paddle's ``** 2`` is not correctly rounded. Measured
agreement of the loss bits: about 96%; decisions differ only inside the bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .. import _numerics
from ..kernels.slim import SEARCH_FACTORS, lanes_for, paddle_mean
from ..qparams import QParams, integer_range

__all__ = [
    "CANONICAL_FACTORS",
    "SEARCH_FACTORS",
    "f32_mean_bound",
    "decision_bound",
    "relative_margin",
    "argmin_first",
    "slim_running_choice",
    "slim_search_losses",
    "canonical_thresholds",
    "hist_losses",
    "exact_losses",
    "search_scale",
    "per_tensor_qparams",
    "reject_slim_float16",
]

Loss = Literal["mse", "emd"]

#: exact canonical factors k/50, k = 15..50
CANONICAL_FACTORS: tuple[float, ...] = tuple(k / 50 for k in range(15, 51))

_CHUNK = 1 << 15  # elements per chunk: a multiple of every lane count, fits in L2


#: roundings of a PaddleSlim mean of squares besides its sum: the division by ``n`` and up to
#: 4 of Paddle's ``x ** 2`` (not correctly rounded; measured 1-ulp differences from ``x * x``)
MEAN_EXTRA_ROUNDINGS = 5


def f32_mean_bound(n: int, dtype: type = np.float32) -> float:
    """Relative error bound ``gamma_(n+4)`` of a mean of ``n`` non-negative terms in ``dtype``.

    ``(n - 1)`` roundings for the sum in any order, ``1`` for the division and ``4`` for each
    term, because Paddle's ``x ** 2`` is not correctly rounded: ``n + 4`` factors
    ``(1 + d)``, ``|d| <= u``, so the relative error is at most
    :func:`refquant._numerics.gamma` ``(n + 4)`` (``inf`` once ``(n + 4) u >= 1``).
    """
    return _numerics.gamma(int(n) - 1 + MEAN_EXTRA_ROUNDINGS, dtype)


def decision_bound(n: int, dtype: type = np.float32) -> float:
    """Relative margin below which two means of ``n`` terms in ``dtype`` may swap order:
    :func:`refquant._numerics.decision_bound` with ``extra_roundings = 5`` (the division and
    Paddle's ``x ** 2``), ``2 gamma_(n+4)`` = ``2 * f32_mean_bound(n, dtype)``."""
    return _numerics.decision_bound(n, dtype, extra_roundings=MEAN_EXTRA_ROUNDINGS)


def per_tensor_qparams(scale: float | np.generic, bits: int,
                       margin: float | None = None, *, allow_nonfinite: bool = False) -> QParams:
    """Signed per-tensor QParams: ``fl32(scale)`` (one rounding), zero point 0.
    ``allow_nonfinite``: see :class:`refquant.qparams.QParams`."""
    qmin, qmax = integer_range(bits)
    return QParams(np.asarray(scale, dtype=np.float64), np.zeros((), np.int64), qmin, qmax, bits,
                   None, margin=margin, allow_nonfinite=allow_nonfinite)


def reject_slim_float16(x: np.ndarray, observer: str) -> None:
    """Raise ``RuntimeError`` for float16 input, as PaddleSlim does on Paddle 3.3.1's CPU.

    Every observer here except ``AbsmaxObserver`` (which casts to float32 first) calls
    ``paddle.abs`` / ``paddle.max`` on the raw tensor, and Paddle's CPU build has no float16
    kernel for them (``RuntimeError: (NotFound) The kernel with key (CPU, ..., float16) of
    kernel `abs` is not registered``). refquant raises the same type instead of guessing
    what a GPU build would compute.
    """
    if x.dtype == np.float16:
        raise RuntimeError(
            f"{observer}(profile='paddleslim'): x has dtype float16, which PaddleSlim 2.6.0 "
            "cannot observe on Paddle 3.3.1's CPU (no float16 abs/max kernel: RuntimeError "
            "NotFound); cast x to float32 first"
        )


def relative_margin(losses: Sequence[float] | np.ndarray) -> float:
    """``(second - best) / best`` over the non-NaN ``losses``.

    ``inf`` with fewer than two non-NaN losses or when ``best == 0 < second``; ``0.0`` on an
    exact tie.
    """
    v = np.asarray(losses, dtype=np.float64).ravel()
    v = np.sort(v[~np.isnan(v)])
    if v.size < 2:
        return math.inf
    best, second = float(v[0]), float(v[1])
    if second == best:
        return 0.0
    if best == 0.0 or not math.isfinite(best):
        return math.inf
    return (second - best) / best


def _margins_rows(losses: np.ndarray) -> np.ndarray:
    return np.array([relative_margin(r) for r in losses], dtype=np.float64)


def argmin_first(losses: Sequence[float] | np.ndarray) -> int:
    """Index of the first minimal non-NaN loss; ``-1`` when every loss is NaN.

    This is the canonical tie rule (smallest factor wins) and PaddleSlim's channel-wise rule
    ``where(loss < running_min, ...)`` started from ``inf`` (Q34).
    """
    v = np.asarray(losses, dtype=np.float64).ravel()
    ok = ~np.isnan(v)
    if not ok.any():
        return -1
    return int(np.argmin(np.where(ok, v, np.inf)))


def slim_running_choice(carried: float, losses: Sequence[float]) -> tuple[int, float]:
    """PaddleSlim's per-tensor decision (``mse.py`` L71-78, ``emd.py`` L70-82).

    ``for i, loss in enumerate(losses): if loss <= carried: carried, best = loss, i``.
    Returns ``(best, carried)``; ``best == -1`` when no candidate beats the loss carried
    from earlier batches (the observer then keeps this batch's raw max, Q15). Later
    candidates win ties (Q17); NaN never wins.
    """
    best = -1
    for i, loss in enumerate(losses):
        if loss <= carried:
            carried = loss
            best = i
    return best, carried


# -- PaddleSlim's losses -----------------------------------------------------------------
def _lane_fold(acc: np.ndarray) -> np.ndarray:
    """Fold the last axis (lanes) by halving, in ``acc.dtype`` (Eigen's ``predux``)."""
    a = acc
    while a.shape[-1] > 1:
        h = a.shape[-1] // 2
        a = np.add(a[..., :h], a[..., h:], dtype=acc.dtype)
    return a[..., 0]


def slim_search_losses(
    x: np.ndarray,
    scales: Sequence[float],
    qmax: int,
    loss: Loss = "mse",
) -> np.ndarray:
    """Per-candidate losses of PaddleSlim's per-tensor search on one batch ``x``.

    ``x`` is the batch in the dtype ``T`` Paddle computes in (float32, or float64 when the
    tensor was float64); ``scales`` the candidate scales as Python floats. For each
    candidate the quant-dequant ``y`` is :func:`refquant.kernels.slim.quant_dequant`
    (bit-exact), and, all in ``T`` unless stated:

    * ``"mse"``: ``paddle.mean((x - y) ** 2)``: ``x - y`` (exact), a correctly rounded
      square (Paddle's ``** 2`` is within a few ulps of it) and
      :func:`refquant.kernels.slim.paddle_mean`'s lane order;
    * ``"emd"``: ``|mean(x) - mean(y)| + |std(x) - std(y)|``: both means bit-exact (lane
      order); ``std = sqrt(T(T(sum((v - mean(v)) ** 2)) / T(n - 1)))`` with the
      differences and squares rounded in ``T`` (so tiny data underflows as in Paddle) and
      only the sum taken in float64 (Paddle's ``paddle.sum`` order is not reproduced); a
      second pass over the data per candidate.

    Returned as float64 values of the ``T`` results that PaddleSlim compares. The data is
    processed in chunks of 32 Ki elements, candidates inside each chunk, so the extra
    memory is a few chunk-sized buffers whatever the size of ``x``.
    """
    flat = np.ascontiguousarray(x).reshape(-1)
    dt = flat.dtype
    svals = [dt.type(s) for s in scales]  # Python float -> T (Q2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if loss == "mse":
            return _lane_means(flat, svals, qmax, dt, _sq_diff) \
                .astype(np.float64)
        mean_y = _lane_means(flat, svals, qmax, dt, None)  # (K,) in T
        mean_x = paddle_mean(flat)
        std_x = _std_like_paddle(flat, [None], mean_x, qmax, dt)[0]
        std_y = _std_like_paddle(flat, svals, mean_y, qmax, dt)
        dmean = np.abs(np.subtract(mean_x, mean_y, dtype=dt))
        dstd = np.abs(np.subtract(std_x, std_y, dtype=dt))
        return np.add(dmean, dstd, dtype=dt).astype(np.float64)


def _qdq_into(xc: np.ndarray, s: np.generic, qm: np.generic, lo: int, hi: int,
              y: np.ndarray) -> np.ndarray:
    np.divide(xc, s, out=y)
    np.multiply(y, qm, out=y)
    np.rint(y, out=y)
    np.clip(y, lo, hi, out=y)
    np.divide(y, qm, out=y)
    np.multiply(y, s, out=y)
    return y


def _sq_diff(xc: np.ndarray, y: np.ndarray) -> np.ndarray:
    np.subtract(xc, y, out=y)
    np.multiply(y, y, out=y)
    return y


def _lane_means(flat: np.ndarray, svals: list, qmax: int, dt: np.dtype, term) -> np.ndarray:
    """``paddle.mean`` of ``term(x, qdq_k(x))`` (or of ``qdq_k(x)``) for every candidate ``k``."""
    n = flat.size
    P = lanes_for(dt)
    K = len(svals)
    main = (n // P) * P
    qm = dt.type(qmax)
    lo, hi = -int(qmax) - 1, int(qmax)
    acc = np.zeros((K, P), dtype=dt)
    work = np.empty((_CHUNK // P + 1, P), dtype=dt)
    for start in range(0, main, _CHUNK):
        stop = min(start + _CHUNK, main)
        xc = flat[start:stop]
        rows = (stop - start) // P
        y = work[1 : rows + 1].reshape(-1)
        for k in range(K):
            _qdq_into(xc, svals[k], qm, lo, hi, y)
            if term is not None:
                term(xc, y)
            work[0] = acc[k]
            acc[k] = work[: rows + 1].sum(axis=0, dtype=dt)  # sequential per lane
    tail = np.zeros(K, dtype=dt)
    if main < n:
        xt = flat[main:]
        yt = np.empty_like(xt)
        for k in range(K):
            _qdq_into(xt, svals[k], qm, lo, hi, yt)
            vals = term(xt, yt) if term is not None else yt
            t = tail[k]
            for v in vals:
                t = dt.type(t + v)
            tail[k] = t
    total = np.add(tail, _lane_fold(acc), dtype=dt)
    return np.divide(total, dt.type(n), dtype=dt)


def _std_like_paddle(flat: np.ndarray, svals: list, means: np.ndarray | np.generic, qmax: int,
                     dt: np.dtype) -> np.ndarray:
    """Unbiased ``paddle.std`` of ``x`` (``svals == [None]``) or of each ``qdq_k(x)``, in ``T``.

    ``(v - mean)`` and its square are rounded in ``T``; the sum is float64 rounded once to
    ``T``; then ``T(sum) / T(n - 1)`` and ``sqrt`` in ``T`` (NaN for one element, like
    Paddle's ``0 / 0``).
    """
    n = flat.size
    qm = dt.type(qmax)
    lo, hi = -int(qmax) - 1, int(qmax)
    sums = np.zeros(len(svals), dtype=np.float64)
    mv = np.atleast_1d(np.asarray(means, dtype=dt))
    buf = np.empty(min(n, _CHUNK), dtype=dt)
    for start in range(0, n, _CHUNK):
        xc = flat[start : start + _CHUNK]
        y = buf[: xc.size]
        for k, s in enumerate(svals):
            if s is None:
                np.copyto(y, xc)
            else:
                _qdq_into(xc, s, qm, lo, hi, y)
            np.subtract(y, mv[k], out=y)
            np.multiply(y, y, out=y)
            sums[k] += float(np.sum(y, dtype=np.float64))
    var = np.divide(sums.astype(dt), dt.type(max(n - 1, 0)), dtype=dt)
    return np.sqrt(var, dtype=dt)


def emd_loss_bound(n: int, x: np.ndarray) -> float:
    """Absolute error bound used for PaddleSlim EMD decisions on a batch ``x`` of ``n`` values.

    The means, the differences and squares inside the standard deviations are reproduced
    in ``T``; only the order of the variance sums differs from Paddle's, a relative error
    of at most :func:`f32_mean_bound` ``(n)`` on each variance, half of that on each standard
    deviation, plus a few roundings of ``T`` in the final ``sqrt``, subtractions and sum.
    With ``std(y) <= std(x) + max|x|``, the per-loss absolute bound is
    ``(f32_mean_bound(n) + 8 u) * (2 std(x) + max|x|)``.
    """
    xs = np.asarray(x).ravel()
    if xs.size < 2:
        return 0.0
    u = float(np.finfo(xs.dtype).eps) / 2.0
    mean = float(np.mean(xs, dtype=np.float64))
    tot = 0.0
    for start in range(0, xs.size, _CHUNK):
        f = xs[start : start + _CHUNK].astype(np.float64) - mean
        tot += float(np.einsum("i,i->", f, f))
    std = math.sqrt(tot / (xs.size - 1))
    big = max(abs(float(np.max(xs))), abs(float(np.min(xs))))
    return (f32_mean_bound(n, xs.dtype.type) + 8 * u) * (2.0 * std + big)


# -- canonical losses --------------------------------------------------------------------
def canonical_thresholds(abs_max: float | np.ndarray) -> np.ndarray:
    """``fl32(k / 50 * abs_max)`` for ``k = 15..50`` (shape ``(36, *abs_max.shape)``), float64."""
    a = np.asarray(abs_max, dtype=np.float64)
    f = np.asarray(CANONICAL_FACTORS, dtype=np.float64).reshape((-1,) + (1,) * a.ndim)
    return (f * a).astype(np.float32).astype(np.float64)


def _sym_error(v: np.ndarray, threshold: np.ndarray | float, qmax: int) -> np.ndarray:
    """``v - qdq(v)`` for ``v >= 0`` on the symmetric grid ``0..qmax`` (float64).

    ``qdq(v) = min(round_half_even(v / S * qmax), qmax) * S / qmax`` -- the canonical
    symmetric quantizer applied to ``|x|``, which equals ``|qdq(x)|`` for the narrow grid
    ``[-qmax, qmax]`` (the extra code ``-qmax - 1`` of the signed grid only matters below
    ``-S (1 + 1/(2 qmax))`` and is not used by the search).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.minimum(np.rint(v / threshold * qmax), qmax)
        return v - q * threshold / qmax


def hist_losses(
    counts: np.ndarray, centers: np.ndarray, thresholds: np.ndarray, qmax: int, loss: Loss
) -> np.ndarray:
    """Losses of each threshold from a histogram of ``|x|`` (float64, fixed order).

    ``mse = sum_j counts_j e(c_j)^2 / N``, ``emd = sum_j counts_j |e(c_j)| / N`` with ``e``
    from :func:`_sym_error` at the bin centres ``c_j``. Only non-empty bins enter, in
    increasing bin order, so the result is a pure function of the histogram.
    """
    nz = counts > 0
    c = centers[nz]
    w = counts[nz].astype(np.float64)
    total = float(w.sum())
    out = np.empty(len(thresholds), dtype=np.float64)
    for k, S in enumerate(thresholds):
        e = _sym_error(c, float(S), qmax)
        t = e * e if loss == "mse" else np.abs(e)
        out[k] = float(np.einsum("i,i->", w, t)) / total
    return out


def exact_losses(sorted_abs: np.ndarray, thresholds: np.ndarray, qmax: int,
                 loss: Loss = "mse") -> np.ndarray:
    """Per-row losses over all values: ``sorted_abs`` is ``(C, m)`` sorted ``|x|`` (float64).

    ``thresholds`` is ``(K, C)``; returns ``(K, C)``. Sorting makes the float64 sum a pure
    function of each row's multiset.
    """
    K = thresholds.shape[0]
    out = np.empty((K, sorted_abs.shape[0]), dtype=np.float64)
    for k in range(K):
        e = _sym_error(sorted_abs, thresholds[k][:, None], qmax)
        t = e * e if loss == "mse" else np.abs(e)
        out[k] = t.sum(axis=1) / sorted_abs.shape[1]
    return out


def search_scale(
    counts: np.ndarray,
    centers: np.ndarray,
    abs_max: float,
    bits: int = 8,
    loss: Loss = "mse",
) -> QParams:
    """Canonical per-tensor MSE / EMD decision from a histogram of ``|x|``.

    ``argmin_k loss(S_k)`` over :data:`CANONICAL_FACTORS` (smallest factor wins ties), with
    ``S_k = fl32(k/50 * abs_max)`` and losses from :func:`hist_losses`. ``abs_max == 0``
    gives scale 0 and margin ``inf`` (every candidate is 0). Signed 8-bit-style grid
    ``integer_range(bits)``; ``margin`` is :func:`relative_margin` of the 36 losses and
    ``extra`` carries ``losses`` and ``thresholds``.
    """
    qmin, qmax = integer_range(bits)
    if not abs_max > 0:
        return per_tensor_qparams(0.0, bits, math.inf)
    thr = canonical_thresholds(abs_max)
    losses = hist_losses(np.asarray(counts), np.asarray(centers, np.float64), thr, qmax, loss)
    k = argmin_first(losses)
    if k < 0:  # every loss NaN: only possible when the thresholds underflow to 0
        k = len(thr) - 1
    qp = per_tensor_qparams(thr[k], bits, relative_margin(losses))
    qp.extra.update(losses=losses, thresholds=thr, index=k)
    return qp
