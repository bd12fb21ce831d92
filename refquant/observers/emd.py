"""EMDObserver: the abs-max fraction minimising an earth mover's distance.

Upstream: PaddlePaddle/PaddleSlim 2.6.0, ``paddleslim/quant/observers/emd.py``. Quirk
numbers (Q19, ...) are the rows of docs/divergences.md. One variant per profile:

canonical (:class:`_CanonicalEMD`)
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
paddleslim (:class:`_SlimEMD`)
    PaddleSlim 2.6.0's ``EMDObserverLayer`` (Q19, Q20): like its MSE observer but the
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

from ..profiles import CANONICAL, PADDLESLIM
from .mse import _CanonicalSearch, _SearchObserver, _SlimSearch
from .search import emd_loss_bound

__all__ = ["EMDObserver"]


class EMDObserver(_SearchObserver):
    """Per-tensor EMD-searching observer (see module docstring for both profiles).

    ``EMDObserver(profile="canonical")`` is a :class:`_CanonicalEMD`,
    ``profile="paddleslim"`` a :class:`_SlimEMD`; constructor as
    :class:`~refquant.observers.mse.MSEObserver`.
    """

    _loss = "emd"


class _CanonicalEMD(EMDObserver, _CanonicalSearch, profile=CANONICAL):
    """canonical: the exact 1-D earth mover's distance on the histogram of ``|x|``."""


class _SlimEMD(EMDObserver, _SlimSearch, profile=PADDLESLIM):
    """paddleslim: PaddleSlim's ``EMDObserverLayer`` (signed batch max, mean/std loss)."""

    def _batch_max(self, x: np.ndarray) -> float:
        return float(np.max(x))  # the signed max (Q19)

    def _batch_bound(self, flat: np.ndarray) -> float:
        """``extra['bound']``: the absolute loss bound
        :func:`~refquant.observers.search.emd_loss_bound`."""
        return emd_loss_bound(flat.size, flat)
