"""KL-divergence (entropy) calibration: PaddleSlim's search, vectorized, and a canonical one.

Two pure decision functions and one observer:

* :func:`slim_kl_threshold` -- bit-identical to PaddleSlim 2.6.0's ``cal_kl_threshold``
  (``paddleslim/quant/observers/kl.py``) on NumPy 2, including its dtype-dependent
  arithmetic, but vectorized (a few ms instead of seconds for 2048 bins).
* :func:`kl_threshold` -- the canonical decision on an exact ``|x|`` histogram
  (:class:`refquant.histogram.ExactHistogram`): threshold measured from 0 (quirk 29
  fixed), every candidate from the target bin count up to the last used bin, smallest
  threshold on ties, and a decision margin.
* :class:`KLObserver` -- ``KLObserver(quant_bits=8, bins_count=2048)`` with both profiles.

PaddleSlim's arithmetic, as it runs on NumPy 2 (NEP 50)
-------------------------------------------------------
For each candidate ``i`` in ``[int((n-1)*0.5), n)`` (quirk 30) with ``hist[i-1] != 0``:

* ``P = hist[:i]`` as Python numbers, last element ``P[i-1] += sum(hist[i:])`` where the
  builtin ``sum`` walks NumPy scalars: a *sequential float32* sum for a float32 histogram,
  an exact integer sum for int64; ``P[i-1]`` becomes a NumPy scalar of the hist dtype
  (Python float + ``np.float32`` is float32 under NEP 50).
* ``m = int(i / R)`` with ``R = 2**(bits-1) - 1`` target bins; chunks
  ``[c*m, (c+1)*m)`` for ``c < R-1`` and ``[(R-1)*m, i)`` for the last one; each chunk sum is
  a sequential float64 (Python) sum; its value is spread evenly over the chunk's non-zero
  bins: ``avg = sum / (nonzero + 0.0)``; ``Q_j = avg`` where ``P_j != 0`` else 0.
* ``Q_sum`` = sequential float64 sum of ``Q``; ``P_sum = np.sum(hist)`` (pairwise, in the
  hist dtype).
* ``tmp1 = sum_j p_j*log(Q_sum*p_j)``, ``tmp2 = sum_j p_j*log(P_sum*q_j)`` sequentially over
  ``j`` with ``p_j != 0``, with ``math.log``. For a float32 histogram ``P_sum*q_j`` is a
  float32 product, and the last term (``p = P[i-1]``, a float32 scalar) turns every
  operation it touches into float32: ``fl32(fl32(tmp1) + fl32(p * fl32(log(fl32(fl32(Q_sum)
  * p)))))``. ``KL = (tmp1 - tmp2) / P_sum`` (float32 for float32 histograms, float64
  otherwise).
* The first candidate initialises the minimum, later ones replace it only when strictly
  smaller: the result is the *first* index of the minimum KL. If no candidate is valid,
  the index walks down from the starting bin to a non-zero bin (or 0).
* ``threshold = (index + 0.5) * bin_width`` -- measured from 0 although the histogram
  starts at ``hist_min`` (quirk 29).

Vectorization and exactness
---------------------------
Every operation above is an IEEE operation that NumPy reproduces exactly (float64 and
float32 elementwise arithmetic; sequential sums as ``np.cumsum`` or a left-to-right loop of
vector adds -- an accumulate is sequential by definition), except the logarithm: NumPy's
SIMD ``np.log`` differs from ``math.log`` in the last bit for about 0.3% of arguments on
this machine. All logarithms that are few (one per chunk and candidate, and the last-bin
terms) use ``math.log``. The large family, ``tmp1 = sum_j p_j log(Q_sum p_j)`` (``O(n)``
terms per candidate), is replaced by a guaranteed interval around
``log(Q_sum) * sum p_j + sum p_j log p_j`` (prefix sums; error bound in
:func:`_tmp1_bound`). Every later operation is monotone in ``tmp1``, so evaluating it at
both ends brackets PaddleSlim's KL value exactly (in float32 the two ends usually round to
the same value). Candidates whose lower end exceeds the smallest upper end are provably
not minimal; the others, when not already known exactly, are recomputed with
``math.log`` and PaddleSlim's summation order, and the first exact minimum wins. So the
returned threshold equals PaddleSlim's bit for bit, in ``O(n * (n/R + R))`` vector work.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .._validation import check_bits
from ..qparams import QParams, symmetric_qparams
from ._histbase import HistogramObserverBase
from .base import Profile

__all__ = [
    "slim_kl_threshold",
    "kl_threshold",
    "KLObserver",
    "slim_kl_divergences",
]


def _seq_suffix_sums(h: np.ndarray, start: int) -> np.ndarray:
    """``out[k] = sum(h[start+k:])`` summed left to right in ``h``'s dtype (sequential)."""
    n = h.shape[0]
    if start >= n:
        return np.zeros(0, dtype=h.dtype)
    if h.dtype.kind in "iu":
        rev = np.cumsum(h[::-1].astype(np.int64))[::-1]
        return rev[start:]
    h64 = h.astype(np.float64)
    # Shortcut: with every value a multiple of 2**-q and the total below 2**p (p = 24 for
    # float32, 53 for float64), every partial sum is exact, so any order gives the
    # sequential result.
    prec = 24 if h.dtype == np.float32 else 53
    for q in (0, 6, 12, 18):
        scaled = h64 * 2.0**q
        if np.all(scaled == np.floor(scaled)) and np.all(scaled >= 0):
            if float(scaled.sum()) <= 2.0**prec:
                sums = np.cumsum(scaled[::-1])[::-1] / 2.0**q
                return sums[start:].astype(h.dtype)
            break
    # Sequential sums for every start at once: acc[c] walks h[start+c], h[start+c+1], ...
    # left to right (zeros past the end leave it unchanged).
    pad = np.concatenate([h, np.zeros(n - start, dtype=h.dtype)])
    acc = pad[start:n].copy()
    for k in range(1, n - start):
        acc += pad[start + k : n + k]
    return acc


def _check_hist(hist: Any) -> np.ndarray:
    arr = np.asarray(hist)
    if arr.dtype.kind not in "iuf" or arr.dtype == np.float16:
        raise TypeError(f"hist must be an int64, float32 or float64 array, got dtype {arr.dtype}")
    return arr


def slim_kl_divergences(
    hist: Any, bits: int = 8, exact: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """PaddleSlim's KL divergence for every valid candidate: ``(indices, kl)``.

    ``kl`` has the dtype PaddleSlim's values have (float32 for a float32 histogram,
    float64 otherwise). With ``exact=True`` (``math.log`` everywhere, slower) they are
    PaddleSlim's values bit for bit; with ``exact=False`` the returned values are the
    guaranteed lower ends of the brackets described in the module docstring.
    """
    h = _check_hist(hist)
    if h.ndim != 1 or h.shape[0] < 3:
        raise ValueError(f"hist must be 1-D with at least 3 bins, got shape {h.shape}")
    idx, kl, _ = _slim_kl_core(h, check_bits(bits, "bits", low=2, high=32), exact)
    return idx, kl


def _slim_kl_core(
    h: np.ndarray, bits: int, exact: bool, only: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized KL of every valid candidate: ``(indices, kl_low, kl_high)``.

    With ``exact=True`` ``kl_low == kl_high`` are PaddleSlim's values bit for bit; with
    ``exact=False`` they bracket them (guaranteed, see :func:`_tmp1_bound`).
    """
    n = h.shape[0]
    start = int((n - 1) * 0.5)
    R = 2 ** (bits - 1) - 1
    narrow = h.dtype == np.float32
    ints = h.dtype.kind in "iu"
    f32 = np.float32
    h64 = h.astype(np.float64)
    p_sum = np.sum(h.ravel())  # pairwise, hist dtype (as PaddleSlim)
    p_sum_f = float(p_sum)
    nz = h != 0
    cnz = np.concatenate([[0], np.cumsum(nz, dtype=np.int64)])
    first = max(start, 1)
    cand = np.arange(first, n)
    cand = cand[nz[cand - 1]]
    empty = np.zeros(0, dtype=np.float32 if narrow else np.float64)
    if cand.size == 0:
        return cand, empty, empty
    outliers = _seq_suffix_sums(h, first)[cand - first]
    if only is not None:
        keep = np.isin(cand, only)
        cand, outliers = cand[keep], outliers[keep]
    if ints:
        p_last64 = (h[cand - 1].astype(np.int64) + outliers).astype(np.float64)
    elif narrow:
        p_last32 = h[cand - 1] + outliers  # float32 + float32 (NEP 50: P[i-1] += sum)
        p_last64 = p_last32.astype(np.float64)
    else:
        p_last64 = h64[cand - 1] + outliers
    hsafe = np.where(nz, h64, 1.0)  # log argument 1 where p == 0: the term is 0*log = 0
    kdt = np.float32 if narrow else np.float64
    out_lo = np.empty(cand.size, dtype=kdt)
    out_hi = np.empty(cand.size, dtype=kdt)
    if not exact:
        # prefix sums for the approximation tmp1 ~ log(Q_sum) * H + G (see _tmp1_interval)
        hlogh = h64 * np.log(hsafe)
        pre_h = np.concatenate([[0.0], np.cumsum(h64)])
        pre_g = np.concatenate([[0.0], np.cumsum(hlogh)])
        pre_ga = np.concatenate([[0.0], np.cumsum(np.abs(hlogh))])
    ms = cand // R
    for m in np.unique(ms):
        sel = np.flatnonzero(ms == m)
        I = cand[sel]
        m = int(m)
        base_end = (R - 1) * m
        # -- fixed chunks [c*m, (c+1)*m), c < R-1: shared by every candidate with this m
        if base_end > 0:
            blk = h64[:base_end].reshape(R - 1, m)
            csum = np.cumsum(blk, axis=1)[:, -1]
            cnt = nz[:base_end].reshape(R - 1, m).sum(axis=1)
            avg_fixed = np.where(cnt > 0, csum / np.maximum(cnt, 1).astype(np.float64), 0.0)
            e_base = np.where(nz[:base_end], np.repeat(avg_fixed, m), 0.0)
            q_pre = float(np.cumsum(e_base)[-1])
            if narrow:
                args = (p_sum * avg_fixed.astype(f32)).astype(np.float64)
            else:
                args = p_sum_f * avg_fixed
            l2_fixed = np.array(
                [math.log(a) if c > 0 else 0.0
                 for a, c in zip(args.tolist(), cnt.tolist(), strict=True)]
            )
            t2_base = h64[:base_end] * np.repeat(l2_fixed, m)
            a2_pre = float(np.cumsum(t2_base)[-1])
        else:
            q_pre = 0.0
            a2_pre = 0.0
        # -- last chunk [(R-1)m, i): per candidate
        tail_cum = np.cumsum(h64[base_end:])
        last_sum = tail_cum[I - 1 - base_end]
        last_cnt = (cnz[I] - cnz[base_end]).astype(np.float64)
        last_avg = last_sum / last_cnt
        tlen = int(I.max()) - base_end
        jj = np.arange(base_end, base_end + tlen)
        inside = jj[None, :] < I[:, None]
        tail_e = np.where(inside & nz[base_end : base_end + tlen][None, :],
                          last_avg[:, None], 0.0)
        tail_e[:, 0] = q_pre + tail_e[:, 0]
        q_sum = np.cumsum(tail_e, axis=1)[:, -1]
        # tmp2 over j < i-1: fixed prefix + tail terms with the last chunk's log
        if narrow:
            l2_args = (p_sum * last_avg.astype(f32)).astype(np.float64)
        else:
            l2_args = p_sum_f * last_avg
        l2_last = np.array([math.log(a) for a in l2_args.tolist()])
        before_last = jj[None, :] < (I - 1)[:, None]
        t2_tail = np.where(before_last, h64[base_end : base_end + tlen][None, :]
                           * l2_last[:, None], 0.0)
        t2_tail[:, 0] = a2_pre + t2_tail[:, 0]
        a2 = np.cumsum(t2_tail, axis=1)[:, -1]
        # tmp1 over j < i-1: exactly (math.log) or as a guaranteed interval
        if exact:
            a1 = np.array([_exact_tmp1(float(qs), hsafe, h64, int(i))
                           for qs, i in zip(q_sum, I, strict=True)])
            a1_lo = a1_hi = a1
        else:
            k = np.maximum(I - 1, 0)
            lq = np.log(q_sum)
            approx = lq * pre_h[k] + pre_g[k]
            mag = pre_h[k] * (1.0 + np.abs(lq)) + pre_ga[k]
            delta = _tmp1_bound(n) * mag
            a1_lo, a1_hi = approx - delta, approx + delta
        pl = p_last64[sel]
        if narrow:
            pl32 = p_last32[sel]
            a_arg = (q_sum.astype(f32) * pl32).astype(np.float64)
            u1 = pl32 * np.array([math.log(a) for a in a_arg.tolist()]).astype(f32)
            t2 = a2.astype(f32) + pl32 * l2_last.astype(f32)
            # every remaining operation is monotone non-decreasing in tmp1
            out_lo[sel] = ((a1_lo.astype(f32) + u1) - t2) / p_sum
            out_hi[sel] = ((a1_hi.astype(f32) + u1) - t2) / p_sum
        else:
            u1 = pl * np.array([math.log(a) for a in (q_sum * pl).tolist()])
            t2 = a2 + pl * l2_last
            out_lo[sel] = ((a1_lo + u1) - t2) / p_sum_f
            out_hi[sel] = ((a1_hi + u1) - t2) / p_sum_f
    return cand, out_lo, out_hi


def _tmp1_bound(n: int) -> float:
    """Relative bound for ``|tmp1_PaddleSlim - (log(Q_sum) H + G)|``.

    With ``u = 2**-53``, ``L_j = ln(Q_sum p_j)``: PaddleSlim's sequential float64 sum of
    ``fl(p_j * fl(log(fl(Q_sum p_j))))`` differs from the real ``sum p_j L_j`` by at most
    about ``u (n + 4) sum p_j (1 + |L_j|)`` (one rounding of the product inside the log is
    an absolute ``u`` after the log, ``<= 1`` ulp for ``log``, ``u`` for the product,
    ``(n-1) u`` for recursive summation). The approximation ``ln(Q_sum) * H + G`` with
    prefix sums ``H = sum p_j``, ``G = sum p_j ln p_j`` (NumPy's ``log``, <= 4 ulp) errs by
    about ``u (n + 8) (|ln Q_sum| H + sum |p_j ln p_j|)``. Since ``|L_j| <= |ln Q_sum| +
    |ln p_j|`` both are below ``u (n + 8) * mag`` with ``mag = H (1 + |ln Q_sum|) +
    sum |p_j ln p_j|``; the bound returned is 16 times their sum.
    """
    return 16.0 * 2.0 * (n + 8) * 2.0**-53


def _exact_tmp1(q_sum: float, hsafe: np.ndarray, h64: np.ndarray, i: int) -> float:
    """``sum_{j < i-1} p_j * math.log(Q_sum * p_j)``, sequential, as PaddleSlim computes it."""
    if i < 2:
        return 0.0
    args = (q_sum * hsafe[: i - 1]).tolist()
    logs = np.fromiter(map(math.log, args), dtype=np.float64, count=i - 1)
    return float(np.cumsum(h64[: i - 1] * logs)[-1])


def slim_kl_threshold(hist: Any, bin_width: float, bits: int = 8) -> float:
    """PaddleSlim's ``cal_kl_threshold(hist, bin_width, bits)``, bit for bit, vectorized.

    ``hist`` is PaddleSlim's histogram state (int64 after one batch -- quirk 21 -- float32
    after merges, float64 accepted). Returns ``(index + 0.5) * bin_width`` (a Python float),
    measured from 0 (quirk 29); only indices ``>= int((bins-1)*0.5)`` are searched with
    ``2**(bits-1) - 1`` target bins (quirk 30). Error paths (quirk 31): a non-1-D ``hist``
    raises ``AssertionError``; fewer than 3 bins raise ``IndexError`` (PaddleSlim indexes an
    empty list).
    """
    h = _check_hist(hist)
    bits = check_bits(bits, "bits", low=2, high=32)
    if h.ndim != 1:
        raise AssertionError(f"hist must be 1-D (PaddleSlim asserts hist.ndim == 1), got "
                             f"shape {h.shape}")
    n = h.shape[0]
    start = int((n - 1) * 0.5)
    if start == 0 and n >= 1:
        raise IndexError("list index out of range (PaddleSlim: candidate i=0 reads P[-1] of an "
                         "empty list)")
    idx, lo, hi = _slim_kl_core(h, bits, exact=False)
    if idx.size == 0:
        k = start
        while k > 0 and h[k] == 0:
            k -= 1
        return (k + 0.5) * bin_width
    best = _first_exact_min(h, bits, idx, lo, hi)
    return (best + 0.5) * bin_width


def _first_exact_min(
    h: np.ndarray, bits: int, idx: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> int:
    """First index of the exact minimum KL given guaranteed intervals ``[lo, hi]``.

    A candidate whose ``lo`` exceeds the smallest ``hi`` cannot be minimal. Among the rest,
    those with ``lo == hi`` are known exactly; the others are recomputed with ``math.log``.
    The result is the first index attaining the minimum (PaddleSlim's strict ``<`` scan).
    """
    upper = hi.min()
    maybe = np.flatnonzero(lo <= upper)
    if maybe.size == 1:  # every other candidate is provably larger
        return int(idx[maybe[0]])
    vals = lo[maybe].copy()
    unsure = lo[maybe] != hi[maybe]
    if unsure.any():
        vals[unsure] = _exact_kl_at(h, bits, idx[maybe][unsure])
    j = int(np.argmin(vals))  # first minimum
    return int(idx[maybe][j])


def _exact_kl_at(h: np.ndarray, bits: int, which: np.ndarray) -> np.ndarray:
    """Exact PaddleSlim KL values (``math.log`` everywhere) of the candidates ``which``."""
    idx, kl, _ = _slim_kl_core(h, bits, exact=True, only=which)
    return kl[np.searchsorted(idx, which)]


# ---------------------------------------------------------------------------------------
# canonical
# ---------------------------------------------------------------------------------------
def kl_threshold(
    counts: Any, width: float, abs_max: float, bits: int = 8
) -> tuple[float, float, int]:
    """Canonical KL threshold on a histogram of ``|x|`` whose bin ``j`` is ``[j*w, (j+1)*w)``.

    Definition (quirks 29-30 fixed):

    * ``n_used`` = index of the last non-zero bin + 1; ``T = 2**(bits-1) - 1`` target bins.
    * Zero-bin levelling: when ``n_used > 1``, the search runs on a copy of the counts with
      ``counts[0]`` replaced by ``counts[1]`` (NVIDIA pytorch-quantization / ModelOpt
      ``_compute_amax_entropy`` do the same: ``bins[0] = bins[1]``). A spike of exact zeros
      (post-ReLU activations) costs nothing on a symmetric int grid, which maps 0 to 0
      exactly, but in the unmodified search it dominates ``KL`` once its target group is
      wider than one bin and drags the threshold down to ~0.1-0.45 x abs-max (demo conv2:
      0.49 instead of 3.39, 3.6 dB SQNR instead of 37.5 dB). The histogram state itself is
      untouched, so mergeability is unaffected; without a spike the rule moves nothing
      (measured on Laplace, t3, normal, uniform, log-normal and GELU data).
    * Candidates ``i = min(T, n_used) .. n_used`` (every clip point from ``T`` bins to no
      clipping). For each: the reference ``P = counts[:i]`` with the clipped mass
      ``sum(counts[i:])`` added to ``P[i-1]``; the candidate ``Q`` quantizes the *unclipped*
      ``counts[:i]`` into ``T`` groups ``[floor(c*i/T), floor((c+1)*i/T))``, spreading each
      group's mass ``G_c`` evenly over the group's bins where ``P != 0`` (``nz_c`` of them).
      ``KL_i = sum_j p_j log(p_j / q_j)`` of the normalised ``p = P/N``, ``q = Q/sum(Q)``,
      ``+inf`` when some ``q_j = 0 < p_j`` (a clip point that leaves no unclipped data in
      the last group). In closed form ``KL_i = (sum_j P_j log P_j - sum_c M_c log(G_c /
      nz_c)) / N - log N + log sum(Q)`` with ``M_c`` the ``P`` mass of group ``c``
      (float64; each candidate is a deterministic function of the counts).
    * The smallest ``KL`` wins; exact ties go to the largest ``i`` (least clipping). Ties
      are real: whenever all kept data falls into the last target group, ``p`` and ``q``
      are both one spike and ``KL = 0`` (e.g. data far from 0, U[10, 11]); rounding
      below 0 is clamped to 0 so such ties are exact.
    * ``threshold = min(i * w, abs_max)``: the upper edge of the last kept bin, measured
      from 0, or ``abs_max`` when nothing is clipped.

    Returns ``(threshold, margin, i)`` where ``margin = (KL_2nd - KL_best) / KL_best``
    (``inf`` for a single candidate or ``KL_best == 0 < KL_2nd``, 0 for an exact tie).
    Float64 error of each KL: about ``8 n eps (|log N| + 1)`` absolute, so decisions whose
    absolute gap exceeds ``1e-9`` are stable across implementations.
    """
    c = np.asarray(counts)
    if c.ndim != 1 or c.dtype.kind not in "iu":
        raise TypeError(f"counts must be a 1-D integer array, got {c.dtype} shape {c.shape}")
    bits = check_bits(bits, "bits")
    T = 2 ** (bits - 1) - 1
    nzi = np.flatnonzero(c)
    if nzi.size == 0:
        return 0.0, math.inf, 0
    n_used = int(nzi[-1]) + 1
    c = c[:n_used].astype(np.int64)  # a copy: the caller's counts are never modified
    if n_used > 1:
        c[0] = c[1]  # zero-bin levelling (see above)
    total = int(c.sum())
    cand = np.arange(min(T, n_used), n_used + 1)
    cum = np.concatenate([[0], np.cumsum(c)])  # exact int64
    nzc = np.concatenate([[0], np.cumsum(c != 0)])
    cf = c.astype(np.float64)
    plogp = np.where(c > 0, cf * np.log(np.where(c > 0, cf, 1.0)), 0.0)
    cum_plogp = np.concatenate([[0.0], np.cumsum(plogp)])
    # P's last bin: counts[i-1] + clipped mass
    p_last = (total - cum[cand - 1]).astype(np.float64)
    s1 = cum_plogp[cand - 1] + p_last * np.log(p_last)
    # groups: boundaries floor(g*i/T), g = 0..T  (shape (C, T+1))
    g = np.arange(T + 1)
    bnd = (g[None, :] * cand[:, None]) // T
    gmass = (cum[bnd[:, 1:]] - cum[bnd[:, :-1]]).astype(np.float64)  # unclipped Q mass
    pmass = gmass.copy()
    pmass[:, -1] += (total - cum[cand]).astype(np.float64)  # P mass includes the outliers
    nzg = nzc[bnd[:, 1:]] - nzc[bnd[:, :-1]]
    # P[i-1] is non-zero whenever outliers exist, even if counts[i-1] == 0
    nzg[:, -1] += ((c[cand - 1] == 0) & (total > cum[cand])).astype(nzg.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        glog = np.where(pmass > 0, pmass * np.log(gmass / np.maximum(nzg, 1)), 0.0)
        s2 = glog.sum(axis=1)
        qsum = cum[cand].astype(np.float64)
        kl = (s1 - s2) / float(total) - math.log(total) + np.log(qsum)
    kl = np.where(np.isnan(kl), np.inf, kl)  # q = 0 < p  ->  infinite divergence
    kl = np.where(np.isinf(kl), np.inf, np.maximum(kl, 0.0))  # -tiny rounding -> 0
    best = int(kl.size - 1 - np.argmin(kl[::-1]))  # last minimum: largest i on ties
    i_best = int(cand[best])
    kb = float(kl[best])
    if kl.size == 1:
        margin = math.inf
    else:
        second = float(np.delete(kl, best).min())
        margin = (second - kb) / kb if kb > 0 else (math.inf if second > 0 else 0.0)
    thr = min(float(Fraction(i_best) * Fraction(width)), float(abs_max))
    return thr, margin, i_best


# ---------------------------------------------------------------------------------------
# observer
# ---------------------------------------------------------------------------------------
class KLObserver(HistogramObserverBase):
    """KL-divergence observer: ``KLObserver(quant_bits=8, bins_count=2048)``.

    ``profile="paddleslim"``: PaddleSlim's ``KLObserverLayer`` (``S/observers/kl.py``,
    ``base_hist.py``): the order-dependent histogram of :class:`SlimHistogram` (quirks
    21-24), the search of :func:`slim_kl_threshold` (quirks 29-30), scale
    ``max(-min(0, 0.), max(thr, 0.))`` = ``thr``, zero point 0, ``(qmin, qmax) = (-2^(b-1),
    2^(b-1)-1)``. A constant or single-element first batch leaves no histogram, and
    ``compute`` raises ``AssertionError`` like ``scales()`` (quirk 22/31).

    ``profile="canonical"``: an :class:`ExactHistogram` of ``|x|`` and :func:`kl_threshold`;
    QParams via :func:`refquant.qparams.symmetric_qparams` with ``margin``.

    Statistics ingestion: :meth:`observe_histogram` (canonical, a symmetric histogram) and
    :meth:`observe_slim_batch` (paddleslim), see
    :class:`refquant.observers._histbase.HistogramObserverBase`.
    """

    symmetric = True
    _slim_layer = "KLObserverLayer"

    def __init__(
        self,
        quant_bits: int = 8,
        bins_count: int = 2048,
        *,
        profile: Profile = "canonical",
        ignore_nonfinite: bool = False,
    ) -> None:
        super().__init__(quant_bits, bins_count, profile=profile,
                         ignore_nonfinite=ignore_nonfinite)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "bins_count": self.bins_count}

    def _compute(self) -> QParams:
        bits = self.quant_bits
        if self.profile == "paddleslim":
            hist, hist_min, hist_max = self._slim_histogram()
            bin_width = (hist_max - hist_min) / self.bins_count
            thr = slim_kl_threshold(hist, bin_width, bits)
            scale = max(-min(0.0, 0.0), max(thr, 0.0))
            qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
            return QParams(np.float32(scale), np.zeros((), np.int64), qmin, qmax, bits, None,
                           None, extra={"threshold": thr})
        h = self._canonical_histogram()
        thr, margin, i = kl_threshold(h.counts, h.width, h.abs_max, bits)
        qp = symmetric_qparams(-thr, thr, bits)
        return QParams(qp.scale, qp.zero_point, qp.qmin, qp.qmax, bits, None, margin,
                       extra={"threshold": thr, "bins_kept": i})
