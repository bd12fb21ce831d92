"""ONNX Runtime's ``EntropyCalibrater`` bug for bug, and its canonical counterpart.

Upstream: microsoft/onnxruntime ``onnxruntime/python/tools/quantization/calibrate.py``
(``HistogramCollector.get_entropy_threshold``, ``entropy``, ``rel_entr``) and
``quant_utils.py`` (``smooth_distribution``), onnxruntime 1.32.

On the signed histogram (``_histogram.py``: ``n`` bins on ``(-T, T)``), with ``z = n // 2``
and ``k = num_quantized_bins``, for ``i = k//2 .. z``: the window is bins ``[z - i,
min(z + i + 1, n))``; ``p`` is the window's counts with the counts left and right of it added
to its first and last bin; ``m = len(window) // k``; ``Q_j`` the sum of window bins
``j*m .. j*m+m-1`` (the last group also takes the ``len % k`` bins after ``k*m``);
``q = int64(Q_j / #{nonzero p in group j})`` on group ``j``'s bins and ``0`` on the
``len % k`` bins after them; both smoothed (zeros become ``1e-4``, non-zeros lose
``1e-4 * zeros/nonzeros``, float32; ``inf`` divergence if ``p`` or ``q`` is all zero) and
``KL = sum(p' log(p'/q'))`` in float32 on the normalised vectors (``inf`` where ``q' <= 0``).
The threshold is ``(edges[start], edges[end])`` of the first window with the least
divergence, clipped to ``[min, max]``. With ORT's default ``num_bins = num_quantized_bins =
128`` there is one window, the whole histogram: the range is ``(min, max)``.

Canonical: the same search on an :class:`~refquant.histogram.ExactHistogram` regridded to
cover ``[-absmax, absmax]`` (zero is a bin edge), windows ``[z - i, z + i + 1)`` clipped to
the grid for ``i = k//2 ..`` until both ends are reached, ``k`` groups with bounds
``floor(j * len / k)`` (covering every bin), ``q`` in float64 without truncation, float64
divergence; the threshold is clipped to ``[min, max]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.observers.onnxruntime._common import OrtAssertionError, count, flag
from refquant.observers.onnxruntime._histogram import HistogramCalibrater, symmetric_grid
from refquant.profiles import CANONICAL, ONNXRUNTIME

__all__ = ["EntropyCalibrater", "ort_smooth", "ort_entropy"]

_EPS = 0.0001


def ort_smooth(p: np.ndarray) -> np.ndarray | None:
    """ORT's ``smooth_distribution(p)`` in float32 (``None`` when ``p`` is all zero)."""
    zeros = (p == 0).astype(np.float32)
    nonzeros = (p != 0).astype(np.float32)
    n_zeros = zeros.sum()
    n_nonzeros = p.size - n_zeros
    if not n_nonzeros:
        return None
    eps1 = _EPS * float(n_zeros) / float(n_nonzeros)
    if not eps1 < 1.0:
        raise OrtAssertionError(
            f"ORT's smooth_distribution asserts eps1 < 1 (n_zeros={n_zeros}, n_nonzeros="
            f"{n_nonzeros}, eps1={eps1}): a histogram window with over 10000 times more empty "
            "than filled bins fails in ONNX Runtime")
    out = p.astype(np.float32)
    out += _EPS * zeros + (-eps1) * nonzeros
    if (out <= 0).sum():
        raise OrtAssertionError("ORT's smooth_distribution asserts every smoothed count > 0")
    return out


def ort_entropy(p: np.ndarray, q: np.ndarray) -> np.float32:
    """ORT's ``entropy(p, q)``: KL divergence of the normalised float32 vectors."""
    pk = np.asarray(p).astype(np.float32)
    pk = 1.0 * pk / np.sum(pk, axis=0, keepdims=True)
    qk = np.asarray(q).astype(np.float32)
    qk = 1.0 * qk / np.sum(qk, axis=0, keepdims=True)
    with np.errstate(all="ignore"):
        vec = pk * np.log(pk / qk)
    vec[(pk == 0) & (qk >= 0)] = 0
    vec[~((pk > 0) & (qk > 0))] = np.inf
    return np.float32(np.sum(vec, axis=0))


def _ort_threshold(hist: np.ndarray, edges: np.ndarray, lo: Any, hi: Any,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    n = hist.size
    z = n // 2
    half = k // 2
    ncand = z - half + 1
    if ncand <= 0:
        raise ValueError(f"num_quantized_bins={k} leaves no window in a {n}-bin histogram: "
                         "ONNX Runtime raises ValueError here")
    kl = np.zeros(ncand)
    thresholds = []
    for i in range(half, z + 1):
        start, end = z - i, min(z + i + 1, n)
        thresholds.append((edges[start], edges[end]))
        window = hist[start:end]
        p = window.copy()
        p[0] += int(hist[:start].sum())
        p[-1] += int(hist[end:].sum())
        m = window.size // k
        groups = window[:k * m].reshape(k, m).sum(axis=1) if m else np.zeros(k, np.int64)
        groups[-1] += int(window[k * m:].sum())
        norms = (p[:k * m] != 0).reshape(k, m).sum(axis=1) if m else np.zeros(k, np.int64)
        q = np.zeros(p.size, np.int64)
        if m:
            with np.errstate(all="ignore"):
                vals = np.where(norms != 0, groups / np.maximum(norms, 1), 0.0)
            q[:k * m] = np.repeat(vals.astype(np.int64), m)
        ps, qs = ort_smooth(p), ort_smooth(q)
        div = np.float32(np.inf) if ps is None or qs is None else ort_entropy(ps, qs)
        kl[i - half] = div
    best = thresholds[int(np.argmin(kl))]
    low, high = best
    if low < lo:
        low = lo
    if high > hi:
        high = hi
    return np.array(low, np.float32), np.array(high, np.float32)


def _smooth64(p: np.ndarray) -> np.ndarray | None:
    nz = p != 0
    n_nonzeros = int(nz.sum())
    if n_nonzeros == 0:
        return None
    eps1 = _EPS * (p.size - n_nonzeros) / n_nonzeros
    out = p.astype(np.float64) + np.where(nz, -eps1, _EPS)
    return out if (out > 0).all() else None


def _canonical_threshold(counts: np.ndarray, edges: np.ndarray, z: int, lo: float,
                         hi: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = counts.size
    best: tuple[float, float, float] | None = None
    i = k // 2
    while True:
        start, end = max(z - i, 0), min(z + i + 1, n)
        window = counts[start:end]
        p = window.astype(np.float64)
        p[0] += counts[:start].sum()
        p[-1] += counts[end:].sum()
        bounds = (np.arange(k + 1) * window.size) // k
        csum = np.concatenate([[0], np.cumsum(window)])
        cnz = np.concatenate([[0], np.cumsum(p != 0)])
        sums = csum[bounds[1:]] - csum[bounds[:-1]]
        nzs = cnz[bounds[1:]] - cnz[bounds[:-1]]
        level = sums / np.maximum(nzs, 1)
        group = np.repeat(np.arange(k), np.diff(bounds))
        q = np.where(p != 0, level[group], 0.0)
        ps, qs = _smooth64(p), _smooth64(q)
        if ps is None or qs is None:
            div = np.inf
        else:
            ps, qs = ps / ps.sum(), qs / qs.sum()
            div = float(np.sum(ps * np.log(ps / qs)))
        if best is None or div < best[0]:
            best = (div, float(edges[start]), float(edges[end]))
        if start == 0 and end == n:
            break
        i += 1
    assert best is not None
    return (np.array(max(best[1], lo), np.float32), np.array(min(best[2], hi), np.float32))


class EntropyCalibrater(HistogramCalibrater):
    """ORT's ``EntropyCalibrater`` on arrays (module docstring). Defaults are those of
    ``create_calibrator`` (``quantize_static``): ``num_bins=128``, ``num_quantized_bins=128``,
    ``symmetric=False`` (``symmetric`` only symmetrises :meth:`compute`'s scale)."""

    def __init__(self, num_bins: int = 128, num_quantized_bins: int = 128,
                 symmetric: bool = False, *, ignore_nonfinite: bool = False,
                 profile: str = "onnxruntime") -> None:
        self.num_bins = count(num_bins, "num_bins", 2)
        self.num_quantized_bins = count(num_quantized_bins, "num_quantized_bins", 1)
        self.symmetric = flag(symmetric, "symmetric")
        self._check_profile(ignore_nonfinite)
        self._init_state()

    def config(self) -> dict[str, Any]:
        return {"num_bins": self.num_bins, "num_quantized_bins": self.num_quantized_bins,
                "symmetric": self.symmetric}


class _OrtEntropy(EntropyCalibrater, profile=ONNXRUNTIME):
    def compute_data(self) -> tuple[np.ndarray, np.ndarray]:
        """ORT's threshold ``(low, high)`` (float32 0-d arrays)."""
        st = self._ort_ready()
        assert st.edges is not None
        assert st.hist is not None
        return _ort_threshold(st.hist, st.edges, st.min, st.max, self.num_quantized_bins)


class _CanonicalEntropy(EntropyCalibrater, profile=CANONICAL):
    def compute_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The KL-optimal window on the exact histogram (module docstring)."""
        h = self._exact_ready()
        counts, edges, z = symmetric_grid(h)
        return _canonical_threshold(counts, edges, z, h.min, h.max, self.num_quantized_bins)
