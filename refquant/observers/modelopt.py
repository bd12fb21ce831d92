"""NVIDIA ModelOpt 0.47's calibrators, bug for bug as they run on CPU, and canonical twins.

Verified against a recording of nvidia-modelopt 0.47.0 (not installable next to PaddleSlim:
it needs setuptools>=80): ``tests/data/record_modelopt.py`` runs the real calibrators in a
scratch environment with torch 2.13.0 (CPU) and writes ``tests/data/modelopt_0.47.npz``;
``tests/test_observers_modelopt.py`` compares these classes with it bit for bit. The torch
primitives the calibrators use (``torch.histc``, ``torch.linspace``, ``torch.arange`` on
float32) are emulated here and checked against the installed torch directly.

Upstream (NVIDIA/Model-Optimizer, ``modelopt/torch/quantization/``):

* ``calib/max.py`` ``MaxCalibrator``: ``amax = max(|max(x)|, |min(x)|)`` over the reduced
  axes (all axes but ``axis``), running elementwise maximum over batches; NaN or Inf in a
  batch fails an ``assert`` (AssertionError); a one-element amax is squeezed to shape ().
* ``calib/histogram.py`` ``HistogramCalibrator`` (default ``torch_hist=True``): histogram of
  ``|x|`` (taken only when ``min(x) < 0``). The first batch fixes ``edges =
  linspace(0, max, num_bins + 1)`` and ``hist = histc(x, num_bins, 0, max)``; a later batch
  whose max exceeds the last edge sets ``width = edges[1] - edges[0]``, ``num_bins =
  ceil(max / width)`` and ``edges = arange(0, max + width, width)`` -- which can hold one
  edge more than ``num_bins + 1``, so ``histc(x, num_bins, 0, edges[-1])`` then bins on a
  grid that differs from ``edges`` -- and adds the old counts into the first bins.
  ``compute_amax`` reads the counts as int32 and runs:

  - ``entropy``: for ``i = start_bin .. len(bins)`` (``stride``) with ``bins[0] = bins[1]``,
    merge the first ``i`` bins into ``2^(b-1+unsigned)`` groups (``np.digitize`` on
    ``linspace(0, i, nbins+1)``), spread each group's count over its non-empty bins, fold the
    tail into bin ``i-1`` and take ``scipy.stats.entropy`` (its SciPy 1.17 arithmetic);
    ``amax = edges[i]`` of the last minimum;
  - ``mse``: for bin centres ``c_i`` (``i >= start_bin``), the count-weighted mean of
    ``(fake_quant(c, c_i) - c)^2`` (float32 ``mean`` in torch; see below); the first minimum;
  - ``percentile``: ``edges[searchsorted(cumsum(hist / total), p / 100)]`` -- the *left*
    edge of the bin where the CDF reaches ``p``.
* ``calib/mse.py`` ``MseCalibrator``: candidates ``linspace(start, stop, ceil((stop -
  start) / step) + 1)`` (float32) times the initial amax; per batch the summed squared error
  of ``fake_quant(x, amax * m)`` per candidate (per channel with ``axis``), added over
  batches; the first minimum.
* ``tensor_quant.py``: ``_tensor_quant`` (integer fake quant: ``scale = maxbound / amax``,
  ``round_half_even(x * scale)`` clamped, divided by ``scale``; ``amax <= 2^-24`` gives 0)
  and ``_fp8_eager`` (the FP8 amax-to-scale step: ``scale = 448 / amax`` (1 where ``amax <=
  2^-24``), ``e4m3(clamp(x * scale, +-448)) * (1 / scale)``).

Losses (``mse`` methods) are float32 sums in torch whose order refquant does not emulate; they
are computed in float64 here, and the chosen candidate is the real one whenever the best and
second-best losses are further apart than float32 summation error (``margin`` says how far).
The amax itself is then bit-exact (an edge, a centre or ``amax * m`` in float32).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refquant.qparams import QParams

__all__ = [
    "torch_linspace", "torch_arange", "torch_histc", "fake_tensor_quant", "fp8_scale",
    "fake_e4m3", "MaxCalibrator", "HistogramCalibrator", "MseCalibrator",
    "CanonicalMaxCalibrator", "CanonicalHistogramCalibrator", "amax_qparams",
]

_F32 = np.float32
_EPS24 = 1.0 / (1 << 24)


# -- torch 2.13 CPU primitives (float32) ----------------------------------------------------
def _fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    from refquant.kernels.torch import _fma32 as fma

    return fma(a, b, c)


def torch_linspace(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps)`` (float32, CPU, torch 2.13; measured on AVX-512).

    ``step = fl32((end - start) / (steps - 1))``; element ``i`` is ``fma(step, i, start)``
    below ``steps // 2`` and ``fma(-step, steps - 1 - i, end)`` from there (one rounding each,
    as the vectorized kernel computes it).
    """
    s, e = _F32(start), _F32(end)
    if steps == 1:
        return np.array([s], _F32)
    step = _F32(_F32(e - s) / _F32(steps - 1))
    i = np.arange(steps)
    full = np.full(steps, 1, _F32)
    lo = _fma32(full * step, i.astype(_F32), full * s)
    hi = _fma32(full * -step, (steps - 1 - i).astype(_F32), full * e)
    return np.where(i < steps // 2, lo, hi).astype(_F32)


def torch_arange(end: float, step: float) -> np.ndarray:
    """``torch.arange(0, end, step)`` for float32 ``end`` and ``step`` (CPU, torch 2.13).

    ``n = ceil(end / step)`` in float64. torch's kernel writes blocks of 16 as two vectors
    of 8: each vector's base ``fl32(step * k)`` (float64 product), then ``fl32(base + j *
    step)`` in float64; the last ``n mod 16`` elements are ``fl32(step * i)``.
    """
    st = float(_F32(step))
    n = int(math.ceil(float(_F32(end)) / st))
    out = np.empty(n, _F32)
    nvec = n - n % 16
    if nvec:
        base = (st * np.arange(0, nvec, 8, dtype=np.float64)).astype(_F32).astype(np.float64)
        out[:nvec] = (base[:, None] + np.arange(8) * st).astype(_F32).ravel()
    out[nvec:] = (st * np.arange(nvec, n, dtype=np.float64)).astype(_F32)
    return out


def torch_histc(x: np.ndarray, bins: int, low: float, high: float) -> np.ndarray:
    """``torch.histc(x, bins, min=low, max=high)`` on float32 (CPU): float32 counts.

    Outer edges are ``low``/``high`` (the data's min/max when equal, then widened by 1 each
    way; if that rounds back to one float32 value, torch counts its copies in bin
    ``bins // 2``); element ``v`` in ``[e0, eN]`` (float32 ends of ``linspace``) goes to bin
    ``trunc(fl32(fl32(v - e0) * bins) / fl32(eN - e0))``, the last bin taking ``v == eN``;
    values outside and NaN are dropped.
    """
    lo, hi = float(low), float(high)
    if lo == hi and x.size:
        lo, hi = float(np.min(x)), float(np.max(x))
    if lo == hi:
        lo, hi = lo - 1.0, hi + 1.0
    e0, en = _F32(lo), _F32(hi)
    v = x[(x >= e0) & (x <= en)]
    if e0 == en:  # v +- 1 rounds back to v in float32: torch counts them in bin bins // 2
        out = np.zeros(bins, _F32)
        out[bins // 2] = v.size
        return out
    with np.errstate(over="ignore", invalid="ignore"):
        pos = ((_F32(v - e0) * _F32(bins)).astype(_F32) / _F32(en - e0)).astype(_F32)
    idx = pos.astype(np.int64)
    idx[idx == bins] = bins - 1
    return np.bincount(idx, minlength=bins).astype(_F32)


# -- quantizers -----------------------------------------------------------------------------
def fake_tensor_quant(x: Any, amax: Any, num_bits: int = 8, unsigned: bool = False,
                      narrow_range: bool = True) -> np.ndarray:
    """ModelOpt's ``_tensor_quant`` on CPU (float32), ``tensor_quant.py``.

    ``maxbound = 2^(b-1+unsigned) - 1``; ``scale = fl32(maxbound / amax)`` (0 where ``amax <=
    2^-24``); ``q = clamp(round_half_even(x * scale), minbound, maxbound)`` with ``minbound =
    0`` / ``-maxbound`` (narrow) / ``-maxbound - 1``; result ``q / scale`` (scale 1 where it
    was 0). Negative ``x`` with ``unsigned`` raises TypeError; negative amax ValueError.
    """
    xs = np.asarray(x, _F32)
    am = np.asarray(amax, _F32)
    if unsigned and xs.size and float(xs.min()) < 0.0:
        raise TypeError("Negative values encountered in unsigned quantization.")
    if am.size and float(am.min()) < 0:
        raise ValueError("Negative values in amax")
    max_bound = _F32(2.0 ** (num_bits - 1 + int(unsigned)) - 1.0)
    min_bound = _F32(0) if unsigned else (-max_bound if narrow_range else -max_bound - 1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        scale = (max_bound / am).astype(_F32)
        tiny = am <= _EPS24
        scale = np.where(tiny, _F32(0), scale).astype(_F32)
        q = np.clip(np.rint((xs * scale).astype(_F32)), min_bound, max_bound).astype(_F32)
        scale = np.where(tiny, _F32(1), scale).astype(_F32)
        return (q / scale).astype(_F32)


def fp8_scale(amax: Any) -> tuple[np.ndarray, np.ndarray]:
    """ModelOpt's FP8 amax-to-scale step (``_fp8_eager``): ``(scale, scale_inv)``, float32.

    ``scale = fl32(448 / amax)`` with amax replaced by 1 where ``amax <= 2^-24``;
    ``scale_inv = fl32(1 / scale)`` (not ``amax / 448``: the two differ in the last bit).
    """
    am = np.asarray(amax, _F32)
    safe = np.where(am <= _EPS24, _F32(1), am).astype(_F32)
    with np.errstate(divide="ignore"):
        scale = (_F32(448.0) / safe).astype(_F32)
        return scale, (_F32(1) / scale).astype(_F32)


def fake_e4m3(x: Any, amax: Any = None) -> np.ndarray:
    """ModelOpt's FP8 E4M3 fake quantization on CPU: ``e4m3(clamp(x * scale, +-448)) *
    scale_inv`` (float32; round to nearest even); without amax a plain cast."""
    from refquant.kernels._fp8 import E4M3FN, float32_to_fp8, fp8_to_float32

    xs = np.asarray(x, _F32)
    if amax is None:
        return fp8_to_float32(float32_to_fp8(xs, E4M3FN, saturate=False), E4M3FN)
    scale, inv = fp8_scale(amax)
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.clip((xs * scale).astype(_F32), _F32(-448), _F32(448))
        return (fp8_to_float32(float32_to_fp8(v, E4M3FN, saturate=False), E4M3FN)
                * inv).astype(_F32)


def _quant(values: np.ndarray, amax: Any, num_bits: Any, unsigned: bool,
           narrow_range: bool = True) -> np.ndarray:
    if num_bits == (4, 3):
        return fake_e4m3(values, amax)
    if isinstance(num_bits, int) and not isinstance(num_bits, bool) and num_bits >= 0:
        return fake_tensor_quant(values, amax, num_bits, unsigned, narrow_range)
    raise TypeError("Invalid num_bits. num_bits must be a positive integer or tuple (4,3).")


def _as_input(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"x must be a floating-point array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError("x must not be empty")
    return arr


def _refuse_nonfinite(arr: np.ndarray) -> None:
    """ModelOpt's histogram and MSE calibrators on NaN/Inf are not reproduced: refuse."""
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"x holds a non-finite value ({arr[~np.isfinite(arr)].flat[0]}); "
                         "ModelOpt's behaviour on it is not reproduced")


def _check_bits(num_bits: Any) -> Any:
    if num_bits == (4, 3):
        return (4, 3)
    if isinstance(num_bits, bool) or not isinstance(num_bits, (int, np.integer)) or not (
            2 <= num_bits <= 16):
        raise ValueError(f"num_bits must be an int in [2, 16] or (4, 3), got {num_bits!r}")
    return int(num_bits)


def amax_qparams(amax: Any, num_bits: Any = 8, unsigned: bool = False, axis: Any = None
                 ) -> QParams:
    """ModelOpt's amax as :class:`~refquant.qparams.QParams` (threshold convention).

    ModelOpt quantizes ``x * maxbound / amax`` with ``maxbound = 2^(b-1+unsigned) - 1`` on
    the grid ``[-2^(b-1), maxbound]`` (``[0, maxbound]`` unsigned; its default
    ``narrow_range=False``): ``scale = amax``, ``qmax = maxbound``, zero point 0. A per-axis
    amax becomes shape ``(C,)`` along ``axis``. FP8 (``num_bits=(4, 3)``) has no integer
    grid: ValueError (use :func:`fp8_scale`).
    """
    if num_bits == (4, 3):
        raise ValueError("num_bits (4, 3) is FP8: compute() describes integer grids; use "
                         "compute_amax() and fp8_scale()")
    bits = _check_bits(num_bits)
    if amax is None:
        raise ValueError("no batch observed: call observe(x) first")
    a = np.asarray(amax, _F32)
    qmax = 2 ** (bits - 1 + int(unsigned)) - 1
    qmin = 0 if unsigned else -(2 ** (bits - 1))
    if a.ndim and a.size > 1:
        keep = axis if isinstance(axis, int) else (axis[0] if isinstance(axis, (list, tuple))
                                                   and len(axis) == 1 else None)
        if keep is None:
            raise ValueError(f"compute() needs one channel axis, got axis={axis!r}")
        return QParams(a.ravel(), np.zeros(a.size, np.int64), qmin, qmax, bits, int(keep))
    return QParams(a.reshape(()), np.int64(0), qmin, qmax, bits)


# -- max ------------------------------------------------------------------------------------
def _reduce_axes(ndim: int, axis: Any) -> tuple[int, ...] | None:
    if axis is None:
        return None
    keep = axis if isinstance(axis, (list, tuple)) else [axis]
    for a in keep:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim:
            raise ValueError(f"axis {axis!r} out of range for a {ndim}-d x")
    return tuple(i for i in range(ndim) if i not in keep and (i - ndim) not in keep)


class MaxCalibrator:
    """ModelOpt's ``MaxCalibrator`` (``calib/max.py``): running abs-max, bug for bug.

    ``observe(x)`` is ``collect``; ``compute_amax()`` returns the amax (input dtype; shape
    ``()`` per tensor, keepdims shape per ``axis``, squeezed to ``()`` when it has one
    element) or ``None`` before any batch. NaN or Inf in a batch raises AssertionError, as
    ModelOpt's asserts do; a changed amax shape raises RuntimeError. Verified against a
    recording of nvidia-modelopt 0.47.0 (not installable next to PaddleSlim).
    """

    #: the family whose numbers this class reproduces
    profile = "modelopt"

    def __init__(self, num_bits: int = 8, axis: Any = None, unsigned: bool = False) -> None:
        self.num_bits = num_bits
        self.axis = axis
        self.unsigned = unsigned
        self._amax: np.ndarray | None = None

    def _local(self, x: Any) -> np.ndarray:
        arr = _as_input(x)
        red = _reduce_axes(arr.ndim, self.axis)
        if red is None:
            out = np.maximum(np.abs(np.max(arr)), np.abs(np.min(arr)))
            return np.asarray(out)
        out = np.maximum(np.abs(np.max(arr, axis=red, keepdims=True)),
                         np.abs(np.min(arr, axis=red, keepdims=True)))
        return out.reshape(()) if out.size == 1 else out

    def observe(self, x: Any) -> None:
        local = self._local(x)
        if np.any(np.isnan(local)):
            raise AssertionError("detected nan values in amax")
        if np.any(np.isinf(local)):
            raise AssertionError("detected inf values in amax")
        if self._amax is None:
            self._amax = local
        elif local.shape != self._amax.shape:
            raise RuntimeError("amax shape changed!")
        else:
            self._amax = np.maximum(self._amax, local)

    def compute_amax(self) -> np.ndarray | None:
        return None if self._amax is None else self._amax.copy()

    def compute(self) -> QParams:
        """:func:`amax_qparams` of :meth:`compute_amax` (threshold convention)."""
        return amax_qparams(self._amax, self.num_bits, self.unsigned, self.axis)


class CanonicalMaxCalibrator(MaxCalibrator):
    """The same abs-max, with clear errors and an exact ``merge``.

    NaN or Inf: ValueError naming ``x``; ``compute_amax()`` before any batch: ValueError.
    The abs-max is order-free, so ``merge(other)`` equals one calibrator over all batches.
    """

    profile = "canonical"

    def observe(self, x: Any) -> None:
        arr = _as_input(x)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"x holds a non-finite value ({arr[~np.isfinite(arr)].flat[0]})")
        super().observe(arr)

    def compute_amax(self) -> np.ndarray:  # type: ignore[override]
        if self._amax is None:
            raise ValueError("no batch observed: call observe(x) first")
        return self._amax.copy()

    def merge(self, other: CanonicalMaxCalibrator) -> None:
        if not isinstance(other, CanonicalMaxCalibrator):
            raise TypeError(f"other must be a CanonicalMaxCalibrator, got {type(other).__name__}")
        if other.axis != self.axis:
            raise ValueError(f"other.axis = {other.axis!r} differs from {self.axis!r}")
        if other._amax is None:
            return
        if self._amax is None:
            self._amax = other._amax.copy()
        elif other._amax.shape != self._amax.shape:
            raise ValueError("other's amax has a different shape")
        else:
            self._amax = np.maximum(self._amax, other._amax)


# -- histogram ------------------------------------------------------------------------------
def _rel_entropy(pk: np.ndarray, qk: np.ndarray) -> float:
    """``scipy.stats.entropy(pk, qk)`` (SciPy 1.17, 1-D, no base) without its wrapper: both
    normalised by their float64 sums, then ``sum(rel_entr(pk, qk))``."""
    from scipy.special import rel_entr

    p = pk.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = qk / np.sum(qk, axis=0, keepdims=True)
        p = p / np.sum(p, axis=0, keepdims=True)
    return float(np.sum(rel_entr(p, q), axis=0))


def _entropy_amax(hist: np.ndarray, edges: np.ndarray, num_bits: int, unsigned: bool,
                  stride: int, start_bin: int) -> np.ndarray:

    bins = hist.copy()
    bins[0] = bins[1]
    total = int(np.sum(bins))
    nbins = 1 << (num_bits - 1 + int(unsigned))
    divergences = []
    suffix = np.concatenate([np.cumsum(bins[::-1])[::-1], [0]])
    live_all = bins != 0
    csum = np.concatenate([[0], np.cumsum(np.where(live_all, bins, 0).astype(np.int64))])
    clive = np.concatenate([[0], np.cumsum(live_all)])
    groups = np.arange(nbins)
    for i in range(start_bin, len(bins) + 1, stride):
        # np.digitize(range(i), linspace(0, i, nbins + 1)) - 1 puts j in the group k with
        # space[k] <= j < space[k+1]: group k starts at the integer ceil(space[k])
        starts = np.minimum(np.ceil(np.linspace(0, i, num=nbins + 1)), i).astype(np.int64)
        starts[-1] = i
        sums = (csum[starts[1:]] - csum[starts[:-1]]).astype(np.float64)
        counts = clive[starts[1:]] - clive[starts[:-1]]
        with np.errstate(invalid="ignore", divide="ignore"):
            per = sums / counts
        group = np.repeat(groups, np.diff(starts))
        live = live_all[:i]
        new_density = np.where(live, per[group], 0.0)
        tail = suffix[i]
        total_new = np.sum(new_density) + tail
        reference = np.array(bins[:i])
        reference[-1] += tail
        total_old = np.sum(reference)
        if round(total_new) != total or round(total_old) != total:
            raise RuntimeError(f"Count mismatch! total_counts_new={total_new}, "
                               f"total_counts_old={total_old}, total_data={total}")
        divergences.append(_rel_entropy(reference, new_density))
    div = np.array(divergences)
    last = len(div) - 1 - int(np.argmin(div[::-1]))
    return np.asarray(_F32(edges[last * stride + start_bin]))


def _mse_amax(hist: np.ndarray, edges: np.ndarray, num_bits: Any, unsigned: bool,
              stride: int, start_bin: int) -> tuple[np.ndarray, float]:
    counts = hist.astype(_F32)
    e = edges.astype(_F32)
    centers = ((e[1:] + e[:-1]) / _F32(2)).astype(_F32)
    idx = list(range(start_bin, len(centers), stride))
    if not idx:
        raise ValueError(f"start_bin {start_bin} leaves no candidate among {len(centers)} bins")
    losses = []
    for i in idx:
        q = _hist_mse_quant(centers, centers[i], num_bits, unsigned)
        with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow, as torch's
            d = (q - centers).astype(_F32)
            err = (d * d).astype(_F32) * counts
        losses.append(math.fsum(err.astype(np.float64).tolist()) / len(centers))
    best = int(np.argmin(losses))
    return np.asarray(centers[idx[best]]), _margin(losses, best)


def _hist_mse_quant(centers: np.ndarray, amax: Any, num_bits: Any, unsigned: bool
                    ) -> np.ndarray:
    """What ``_compute_amax_mse``'s ``fake_tensor_quant(centers, amax, num_bits, unsigned)``
    computes: ``FakeTensorQuantFunction.apply`` takes ``(inputs, amax, bias, num_bits,
    unsigned, ...)``, so ``num_bits`` lands in ``bias`` and ``unsigned`` in ``num_bits``:
    ``_tensor_quant(centers - num_bits, amax, num_bits=unsigned)`` + ``num_bits``. Its
    ``maxbound = 2^(unsigned - 1) - 1`` is -0.5 (or 0 when unsigned), so every centre maps to
    the constant ``fl32(-0.5 / fl32(-0.5 / amax)) + num_bits`` (or NaN when unsigned). The FP8
    branch ``scaled_e4m3(centers, amax, 4, 3)`` misses an argument (TypeError)."""
    if num_bits == (4, 3):
        raise TypeError("ScaledE4M3Function.forward() missing 1 required positional argument: "
                        "'M'")
    bias = _F32(num_bits)
    out = fake_tensor_quant((centers - bias).astype(_F32), amax, int(unsigned), False, True)
    return (out + bias).astype(_F32)


def _margin(losses: list[float], best: int) -> float:
    """Relative gap between the best loss and the smallest larger one (equal losses are the
    same error summed in the same order, so they tie the same way in float32)."""
    b = losses[best]
    rest = [v for v in losses if v > b]
    if not rest or not math.isfinite(b):
        return math.inf
    return (min(rest) - b) / min(rest)


def _percentile_amax(hist: np.ndarray, edges: np.ndarray, percentile: float) -> np.ndarray:
    if percentile < 0 or percentile > 100:
        raise ValueError("Invalid percentile. Must be in range 0 <= percentile <= 100.")
    total = hist.sum()
    cdf = np.cumsum(hist / total)
    idx = np.searchsorted(cdf, percentile / 100)
    return np.asarray(_F32(edges[idx]))


class HistogramCalibrator:
    """ModelOpt's ``HistogramCalibrator`` (``calib/histogram.py``, ``torch_hist=True``).

    ``observe(x)`` is ``collect`` (float32 histogram of ``|x|``, see the module docstring);
    ``compute_amax(method, stride=1, start_bin=128, percentile=99.99)`` with ``method`` in
    ``entropy``/``mse``/``percentile`` returns a float32 amax of shape () (``None`` before any
    batch); ``margin`` holds the relative gap of the last ``mse`` decision; ``compute()``
    gives ``compute_amax("entropy")`` (ModelOpt's default) as QParams. ``num_bits=(4, 3)``
    selects FP8 E4M3 for ``mse`` (which then raises TypeError, as upstream: quirk M2).
    Per-channel ``axis`` raises NotImplementedError as upstream. NaN or Inf in a batch
    raises ValueError (not reproduced from ModelOpt). Verified against a recording of
    nvidia-modelopt 0.47.0 (not installable next to PaddleSlim).
    """

    #: the family whose numbers this class reproduces
    profile = "modelopt"

    def __init__(self, num_bits: Any = 8, axis: Any = None, unsigned: bool = False,
                 num_bins: int = 2048, skip_zeros: bool = False) -> None:
        if axis is not None:
            raise NotImplementedError(
                "Calibrator histogram collection only supports per tensor scaling")
        if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or \
                num_bins < 1:
            raise ValueError(f"num_bins must be a positive int, got {num_bins!r}")
        self.num_bits = _check_bits(num_bits)
        self.unsigned = bool(unsigned)
        self.num_bins = int(num_bins)
        self.skip_zeros = bool(skip_zeros)
        self.hist: np.ndarray | None = None
        self.edges: np.ndarray | None = None
        self.margin = math.inf

    def observe(self, x: Any) -> None:
        arr = _as_input(x)
        _refuse_nonfinite(arr)
        if float(np.min(arr)) < 0.0:
            arr = np.abs(arr)
        arr = arr.astype(_F32).ravel()
        if self.skip_zeros:
            arr = arr[arr != 0]
            if arr.size == 0:
                raise RuntimeError("max(): Expected reduction dim to be specified for "
                                   "input.numel() == 0.")
        x_max = _F32(np.max(arr))
        if self.hist is None or self.edges is None:
            self.hist = torch_histc(arr, self.num_bins, 0.0, float(x_max))
            self.edges = torch_linspace(0.0, float(x_max), self.num_bins + 1)
            return
        if x_max > self.edges[-1]:
            width = _F32(self.edges[1] - self.edges[0])
            self.num_bins = int(math.ceil(float(_F32(x_max / width))))
            self.edges = torch_arange(float(_F32(x_max + width)), float(width))
        hist = torch_histc(arr, self.num_bins, 0.0, float(self.edges[-1]))
        n = self.hist.size
        hist[:n] = (hist[:n] + self.hist).astype(_F32)
        self.hist = hist

    def compute_amax(self, method: str, *, stride: int = 1, start_bin: int = 128,
                     percentile: float = 99.99) -> np.ndarray | None:
        if self.hist is None or self.edges is None:
            return None
        hist = self.hist.astype(np.int32)
        edges = self.edges
        if method == "entropy":
            if self.num_bits == (4, 3):
                raise TypeError("entropy needs an integer num_bits")
            return _entropy_amax(hist, edges, self.num_bits, self.unsigned, stride, start_bin)
        if method == "mse":
            amax, self.margin = _mse_amax(hist, edges, self.num_bits, self.unsigned, stride,
                                          start_bin)
            return amax
        if method == "percentile":
            return _percentile_amax(hist, edges, percentile)
        raise TypeError(f"Unknown calibration method {method}")

    def compute(self, method: str = "entropy", **kwargs: Any) -> QParams:
        """:func:`amax_qparams` of ``compute_amax(method)``; ``entropy`` is ModelOpt's
        default for histogram calibration (``model_calib.py``)."""
        amax = self.compute_amax(method, **kwargs)
        qp = amax_qparams(amax, self.num_bits, self.unsigned)
        return qp if method != "mse" else QParams(qp.scale, qp.zero_point, qp.qmin, qp.qmax,
                                                  qp.bits, margin=self.margin,
                                                  convention="threshold")


class CanonicalHistogramCalibrator:
    """ModelOpt's histogram decisions on refquant's exact, mergeable histogram of ``|x|``.

    Statistics: :class:`~refquant.histogram.ExactHistogram` (``num_bins`` bins on a
    power-of-two grid: a pure function of the multiset of values, so batch order and sharding
    do not matter and ``merge`` is exact). Decisions, on its edges and integer counts:
    ``percentile``: the *right* edge of the first bin where ``100 * cumsum >= p * total``
    (exact integer arithmetic), so at least ``p`` percent of the values lie below amax;
    ``mse``: ModelOpt's rule (count-weighted squared error of the bin centres, first minimum)
    in float64; ``entropy``: ModelOpt's rule on these counts (``bins[0] = bins[1]`` kept, as
    it is part of the method). NaN or Inf raise ValueError. Results are float64 arrays of
    shape ().
    """

    profile = "canonical"

    def __init__(self, num_bits: Any = 8, unsigned: bool = False, num_bins: int = 2048) -> None:
        from refquant.histogram import ExactHistogram

        self.num_bits = _check_bits(num_bits)
        self.unsigned = bool(unsigned)
        self.hist = ExactHistogram(num_bins, symmetric=True)

    def observe(self, x: Any) -> None:
        arr = _as_input(x)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"x holds a non-finite value ({arr[~np.isfinite(arr)].flat[0]})")
        self.hist.add(arr.astype(np.float64))

    def merge(self, other: CanonicalHistogramCalibrator) -> None:
        if not isinstance(other, CanonicalHistogramCalibrator):
            raise TypeError(
                f"other must be a CanonicalHistogramCalibrator, got {type(other).__name__}")
        self.hist.merge(other.hist)

    def compute_amax(self, method: str, *, stride: int = 1, start_bin: int = 128,
                     percentile: float = 99.99) -> np.ndarray:
        if self.hist.total == 0:
            raise ValueError("no batch observed: call observe(x) first")
        counts = self.hist.counts
        edges = self.hist.edges()
        if method == "percentile":
            if not 0 <= percentile <= 100:
                raise ValueError(f"percentile must be in [0, 100], got {percentile!r}")
            from fractions import Fraction

            need = Fraction(percentile) * self.hist.total / 100
            cum = np.cumsum(counts)
            j = int(np.searchsorted(cum, math.ceil(need)))
            return np.asarray(float(edges[min(j, len(counts) - 1) + 1]))
        if method == "mse":
            c = (edges[1:] + edges[:-1]) / 2
            idx = list(range(start_bin, len(c), stride))
            if not idx:
                raise ValueError(f"start_bin {start_bin} leaves no candidate")
            losses = []
            for i in idx:
                q = _quant(c.astype(_F32), _F32(c[i]), self.num_bits, self.unsigned)
                losses.append(math.fsum(((q.astype(np.float64) - c) ** 2 * counts).tolist()))
            return np.asarray(float(c[idx[int(np.argmin(losses))]]))
        if method == "entropy":
            if self.num_bits == (4, 3):
                raise TypeError("entropy needs an integer num_bits")
            amax = _entropy_amax(counts.astype(np.int64), edges, self.num_bits, self.unsigned,
                                 stride, start_bin)
            return np.asarray(float(amax))
        raise ValueError(f"method must be 'entropy', 'mse' or 'percentile', got {method!r}")

    def compute(self, method: str = "entropy", **kwargs: Any) -> QParams:
        """:func:`amax_qparams` of ``compute_amax(method)``."""
        return amax_qparams(self.compute_amax(method, **kwargs), self.num_bits, self.unsigned)


# -- mse multiplier sweep -------------------------------------------------------------------
class MseCalibrator:
    """ModelOpt's ``MseCalibrator`` (``calib/mse.py``) with its default integer quantizer.

    ``amax`` is the initial amax (per tensor, or keepdims-shaped per ``axis``); candidates
    ``m_k = torch.linspace(start_multiplier, stop_multiplier, ceil((stop - start) / step) +
    1)`` and ``amax * m_k`` (float32); ``observe(x)`` adds, per candidate, the sum over the
    reduced axes of ``(x - fake_quant(x, amax * m_k))^2`` (float64 here, float32 upstream);
    ``compute_amax()`` returns ``amax * m_best`` with the first minimum per channel, and sets
    ``margin`` (smallest relative gap between best and second-best loss over channels).
    ``num_bits=(4, 3)`` sweeps FP8 E4M3 instead; ``narrow_range`` as the quantizer's
    (ModelOpt's default False). Verified against a recording of
    nvidia-modelopt 0.47.0 (not installable next to PaddleSlim).
    """

    #: the family whose numbers this class reproduces
    profile = "modelopt"

    def __init__(self, amax: Any, axis: Any = None, step_size: float = 0.1,
                 start_multiplier: float = 0.25, stop_multiplier: float = 4.0,
                 num_bits: Any = 8, unsigned: bool = False, narrow_range: bool = False) -> None:
        self.amax0 = np.asarray(amax, _F32)
        if not np.all(np.isfinite(self.amax0)):
            raise ValueError(f"amax must be finite, got {amax!r}")
        self.axis = axis
        self.num_bits = _check_bits(num_bits)
        self.unsigned = bool(unsigned)
        self.narrow_range = bool(narrow_range)
        steps = math.ceil((stop_multiplier - start_multiplier) / step_size) + 1
        self.candidates = torch_linspace(start_multiplier, stop_multiplier, steps)
        self._losses: list[np.ndarray] | None = None
        self.margin = math.inf

    def observe(self, x: Any) -> None:
        arr = _as_input(x).astype(_F32)
        _refuse_nonfinite(arr)
        red = _reduce_axes(arr.ndim, self.axis)
        losses = []
        for m in self.candidates:
            q = _quant(arr, (self.amax0 * m).astype(_F32), self.num_bits, self.unsigned,
                       self.narrow_range)
            err = (arr.astype(np.float64) - q.astype(np.float64)) ** 2
            losses.append(np.asarray(np.sum(err, axis=red)))
        if self._losses is None:
            self._losses = losses
        else:
            self._losses = [a + b for a, b in zip(self._losses, losses, strict=True)]

    def compute_amax(self) -> np.ndarray | None:
        if self._losses is None:
            return None
        stack = np.stack([np.asarray(v).reshape(-1) for v in self._losses])
        best = np.argmin(stack, axis=0)
        self.margin = min((_margin(list(col), int(b)) for col, b in zip(
            stack.T, best, strict=True)), default=math.inf)
        chosen = self.candidates[best].reshape(self.amax0.shape) if self.amax0.ndim else \
            self.candidates[best[0]]
        return (self.amax0 * chosen).astype(_F32)

    def compute(self) -> QParams:
        """:func:`amax_qparams` of :meth:`compute_amax`, with the decision ``margin``."""
        qp = amax_qparams(self.compute_amax(), self.num_bits, self.unsigned, self.axis)
        return QParams(qp.scale, qp.zero_point, qp.qmin, qp.qmax, qp.bits, qp.axis,
                       margin=self.margin, convention="threshold")
