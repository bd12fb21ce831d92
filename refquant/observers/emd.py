"""EMDObserver: the abs-max fraction minimising an earth mover's distance (``.../emd.py``).

canonical
    Same statistics and grid as :class:`refquant.observers.mse.MSEObserver` (exact
    histogram of ``|x|``, ``S_k = fl32(k/50 * abs_max)``, ``k = 15..50``, smallest factor
    wins ties); the loss is the true 1-D earth mover's (Wasserstein-1) distance between the
    data and its quantized image, ``W1 = mean |x - qdq(x)|``.

    Why ``W1 = mean |x - qdq(x)|``: in one dimension ``W1(P, Q) = int_0^1 |F_P^-1(u) -
    F_Q^-1(u)| du``. ``qdq`` is non-decreasing, so the quantile function of ``Q = qdq#P`` is
    ``qdq o F_P^-1``, and the integral becomes ``E_P |X - qdq(X)|``: the coupling
    ``(X, qdq(X))`` is the monotone, optimal one. For the symmetric grid ``qdq(-v) =
    -qdq(v)``, so ``|x - qdq(x)| = ||x| - qdq(|x|)|`` and the histogram of ``|x|`` suffices.
    Resolution bound (bin width ``w``, step ``d``): ``||e(v)| - |e(c)|| <= w/2`` in bins
    without a rounding boundary, ``<= d/2 + w/2`` in the (at most ``qmax + 1``) bins with
    one, so ``|W1_hist - W1| <= w/2 + f_b d/2``.
paddleslim
    PaddleSlim 2.6.0's ``EMDObserverLayer`` (items 19, 20): like its MSE observer but the
    batch maximum is the *signed* ``max(x)`` (negative data gives negative candidates and
    finally ``int 0``), and the loss is ``|mean(x) - mean(qdq(x))| + |std(x) - std(qdq(x))|``
    (unbiased std; one element gives NaN and nothing is ever accepted), carried across
    batches with ``<=``. The means are reproduced bit for bit and the standard deviations
    round their differences and squares in the tensor's dtype like Paddle (tiny data
    underflows the same way); only the order of the variance sums differs, so
    ``extra['bound']`` is an *absolute* loss error bound
    (:func:`refquant.observers.search.emd_loss_bound`): Paddle may decide differently only
    when ``second - best <= 2 * bound``. Float16 input raises ``RuntimeError`` as on
    Paddle's CPU.
"""

from __future__ import annotations

import numpy as np

from .mse import _SearchObserver

__all__ = ["EMDObserver"]


class EMDObserver(_SearchObserver):
    """Per-tensor EMD-searching observer (see module docstring for both profiles)."""

    _loss = "emd"

    def _batch_max(self, x: np.ndarray) -> float:
        if self.profile == "paddleslim":
            return float(np.max(x))  # signed max (item 19)
        return super()._batch_max(x)
