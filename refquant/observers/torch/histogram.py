"""torch.ao's ``HistogramObserver``, bug for bug as torch 2.13 computes it on CPU.

Upstream: pytorch/pytorch ``torch/ao/quantization/observer.py`` (``HistogramObserver``; the
algorithm since pytorch/pytorch#129387 and #130316) and its copy in pytorch/ao
``torchao/quantization/pt2e/observer.py`` (torchao 0.18: the same arithmetic; its checks are
``assert`` statements, which ``python -O`` removes).

State: float32 ``min_val``, ``max_val`` and ``histogram`` (``bins`` float32 counts).

``observe(x)`` (torch's ``forward``), on ``x`` as float32:

1. empty ``x`` is ignored; if ``aminmax(x)`` hits ``+-inf`` (no NaN present), the infinite
   elements are dropped with a warning (all infinite: ignored);
2. first batch: ``min, max = aminmax(x)``, ``histogram = histc(x, bins, min, max)``;
3. later: ``m, M = min(min, x_min), max(max, x_max)``, ``u = histc(x, bins, m, M)``; if the
   range is unchanged ``histogram += u``; else if the old ``min == max`` the old total is put
   in the bin ``histc`` gives that value on ``[m, M]``; else every old bin is cut into 16
   sub-bins of ``count / 16`` whose centres (``linspace(min, max, 16 bins + 1)[:-1] +
   w / 32``) are placed on ``linspace(m, M, bins + 1)`` by ``bucketize`` and summed in
   index order (``bincount``); ``histogram = u + that``.

``calculate_qparams()``: torch's ``_non_linear_param_search`` -- ``total = sum(h)``, ``c =
cumsum(h)``; ``alpha, beta`` step by ``1e-5`` (Python floats); each step moves the start bin
(to the first ``l`` with ``c[l] >= fl32(alpha * total)``) or the end bin (the last ``r``
with ``c[r] <= fl32(beta * total)``), whichever moves further; the L2 error ``sum(density *
((d_e**3 - d_b**3) / 3))`` of quantizing ``[start, end]`` onto ``2**bits`` destination bins
(float32 tensor ops, Python-float bin widths rounded to float32) is evaluated and the search
stops as soon as it grows. ``new_min = min + bw * start``, ``new_max = min + bw * (end + 1)``
with ``bw = (max - min) / bins`` (float32); scale and zero point as torch's
``_calculate_qparams`` (``_qparams.py``).

Every float32 operation follows the ATen CPU kernel it runs on (``_ops.py``; x86-64 with
FMA). ``linspace``, ``cumsum``, ``bincount`` and ``histc``'s bin choice compute each element
independently of torch's threads; ``histc``'s per-thread counts are exact below ``2**24``
per bin and batch (beyond that torch's float32 counts saturate per thread, so its result
depends on its thread count; this class gives the single-thread value), and ``sum``'s
cascade is emulated for one thread (torch splits a reduction over more than 32768 elements
between threads; ``bins`` up to 40000 matched torch on a 2-thread machine).

NaN in a batch makes torch's ``histc`` raise ``RuntimeError`` (:class:`TorchRuntimeError`
here); on the first batch torch has already stored ``min = max = NaN``, and every later
batch raises as well. This class does the same.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from refquant.observers.torch._ops import (
    HistcRangeError,
    cumsum32,
    div_floor32,
    histc32,
    linspace32,
    sum32,
)
from refquant.observers.torch._qparams import (
    PER_TENSOR,
    QSpec,
    TorchNotImplementedError,
    TorchRuntimeError,
)
from refquant.observers.torch.minmax import _EPS, _torch_rules, _TorchObserver
from refquant.profiles import ProfileRules

__all__ = ["HistogramObserver", "VERSIONS", "UPSAMPLE_RATE"]

F32 = np.float32
#: the algorithms this class reproduces: torch 2.13, torchao 0.18's copy (same numbers) and
#: the one torch shipped before pytorch/pytorch#129387 (torch <= 2.4)
VERSIONS = ("2.13", "torchao-0.18", "2.4")
#: sub-bins per old bin when the range grows (``upsample_rate`` in torch and torchao)
UPSAMPLE_RATE = 16
#: the default ``upsample_rate`` argument of the algorithm before pytorch/pytorch#129387
OLD_UPSAMPLE_RATE = 128
#: destination bins of the search, ``2 ** torch.iinfo(dtype).bits``
_DST_BITS = {"qint8": 8, "quint8": 8, "quint4x2": 8, "int8": 8, "uint8": 8, "int16": 16,
             "uint16": 16, "qint32": 32, "int32": 32}


def _nanmin(a: np.float32, b: np.float32) -> np.float32:
    """``torch.min(a, b)``: NaN propagates."""
    return F32(np.nan) if np.isnan(a) or np.isnan(b) else F32(min(a, b))


def _nanmax(a: np.float32, b: np.float32) -> np.float32:
    """``torch.max(a, b)``: NaN propagates."""
    return F32(np.nan) if np.isnan(a) or np.isnan(b) else F32(max(a, b))


def as_float32_any(x: Any) -> np.ndarray:
    """``x`` as float32 (NaN and Inf kept); refuses non-real input."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"x must be a real array, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):
        return arr.astype(F32, copy=False).reshape(-1)


class HistogramObserver(_TorchObserver):
    """torch's ``HistogramObserver`` (module docstring).

    ``version`` is ``"2.13"`` (torch.ao, default) or ``"torchao-0.18"`` (torchao's pt2e
    copy; the same numbers). ``bins`` must be an int ``>= 1``; ``dtype`` must be an integer
    dtype (torch raises ``TypeError`` from ``torch.iinfo`` for the float8 dtypes)."""

    def __init__(self, bins: int = 2048, dtype: str = "quint8",
                 qscheme: str = "per_tensor_affine", reduce_range: bool = False,
                 quant_min: int | None = None, quant_max: int | None = None,
                 eps: float = _EPS, is_dynamic: bool = False, *, version: str = "2.13",
                 upsample_rate: int | None = None,
                 profile: str | ProfileRules = "torch") -> None:
        self._rules = _torch_rules(profile)
        if not isinstance(version, str) or version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
        if upsample_rate is None:
            upsample_rate = OLD_UPSAMPLE_RATE if version == "2.4" else UPSAMPLE_RATE
        elif version != "2.4":
            raise ValueError(f"upsample_rate is fixed at {UPSAMPLE_RATE} in version "
                             f"{version!r} (an argument only before torch 2.5), got "
                             f"{upsample_rate!r}")
        if (isinstance(upsample_rate, bool) or not isinstance(upsample_rate, (int, np.integer))
                or upsample_rate < 1):
            raise ValueError(f"upsample_rate must be an int >= 1, got {upsample_rate!r}")
        if qscheme not in PER_TENSOR:
            raise TorchNotImplementedError(
                "HistogramObserver's qscheme only support torch.per_tensor_symmetric and "
                f"torch.per_tensor_affine, got {qscheme!r}")
        if is_dynamic:
            raise TorchNotImplementedError(
                "HistogramObserver doesn't support dynamic quantization (is_dynamic=True)")
        self._spec = QSpec(dtype, qscheme, reduce_range, quant_min, quant_max, eps)
        if dtype not in _DST_BITS:
            raise TypeError(f"torch.iinfo() requires an integer input type: dtype {dtype!r} "
                            "cannot be used with HistogramObserver")
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"bins must be an int >= 1, got {bins!r}")
        self.bins = int(bins)
        self.version = version
        self.min_val: np.ndarray = np.array(np.inf, F32)
        self.max_val: np.ndarray = np.array(-np.inf, F32)
        self.dst_nbins = 2 ** _DST_BITS[dtype]
        self.upsample_rate = int(upsample_rate)
        self.reset_min_max_vals()

    def reset_min_max_vals(self) -> None:
        """Back to the unobserved state (``min = inf``, ``max = -inf``, zero histogram)."""
        self.min_val = np.array(np.inf, F32)
        self.max_val = np.array(-np.inf, F32)
        self.histogram = np.zeros(self.bins, F32)

    # -- forward ------------------------------------------------------------------------
    def observe(self, x: Any) -> None:
        """Fold one batch into the histogram (module docstring). ``x`` (any real array, not
        modified) is converted to float32: the result is torch's for the float32 tensor
        (torch computes a float64 tensor's histogram in float64)."""
        v = as_float32_any(x)
        if v.size == 0:
            return
        if self.version == "2.4":
            self._observe_old(v)
            return
        x_min, x_max = F32(np.min(v)), F32(np.max(v))
        if x_min == -np.inf or x_max == np.inf:
            warnings.warn("torch.inf detected in input tensor, ignoring input", UserWarning,
                          stacklevel=2)
            v = v[np.abs(v) != np.inf]
            if v.size == 0:
                return
            x_min, x_max = F32(np.min(v)), F32(np.max(v))
        cur_min, cur_max = F32(self.min_val), F32(self.max_val)
        if cur_min == np.inf or cur_max == -np.inf:
            # torch copies min/max into its buffers before histc can raise
            self.min_val, self.max_val = np.array(x_min), np.array(x_max)
            self.histogram = self._histc(v, x_min, x_max)
            return
        new_min, new_max = _nanmin(cur_min, x_min), _nanmax(cur_max, x_max)
        update = self._histc(v, new_min, new_max)
        if new_min == cur_min and new_max == cur_max:
            self.histogram = self.histogram + update
            return
        self.histogram = self._combine(self.histogram, cur_min, cur_max, update, new_min,
                                       new_max)
        self.min_val, self.max_val = np.array(new_min), np.array(new_max)

    def _histc(self, v: np.ndarray, lo: np.float32, hi: np.float32) -> np.ndarray:
        try:
            return histc32(v, self.bins, float(lo), float(hi))
        except HistcRangeError as exc:
            raise TorchRuntimeError(str(exc)) from None

    def _combine(self, orig: np.ndarray, orig_min: np.float32, orig_max: np.float32,
                 update: np.ndarray, new_min: np.float32, new_max: np.float32) -> np.ndarray:
        if orig_min == orig_max:
            moved = self._histc(np.array([orig_min], F32), new_min, new_max) * sum32(orig)
            return (moved + update).astype(F32)
        n = self.bins * self.upsample_rate
        fine = np.repeat(orig, self.upsample_rate) / F32(self.upsample_rate)
        bin_size = F32(orig_max - orig_min) / F32(n)
        mids = linspace32(float(orig_min), float(orig_max), n + 1)[:-1] + F32(0.5) * bin_size
        bounds = linspace32(float(new_min), float(new_max), self.bins + 1)
        idx = np.searchsorted(bounds, mids, side="right") - 1
        idx = np.clip(idx, 0, self.bins - 1)
        moved = np.zeros(self.bins, F32)
        np.add.at(moved, idx, fine.astype(F32))
        return (update + moved).astype(F32)

    def _observe_old(self, v: np.ndarray) -> None:
        """``forward`` before pytorch/pytorch#129387 (``version="2.4"``)."""
        cur_min, cur_max = F32(self.min_val), F32(self.max_val)
        x_min, x_max = F32(np.min(v)), F32(np.max(v))
        if (cur_min == np.inf and cur_max == -np.inf) or float(cur_min) == float(cur_max):
            self.min_val, self.max_val = np.array(x_min), np.array(x_max)
            self.histogram = self._histc(v, x_min, x_max)
            return
        c_min, c_max = _nanmin(cur_min, x_min), _nanmax(cur_max, x_max)
        up, n = self.upsample_rate, self.bins
        with np.errstate(all="ignore"):
            d_old, d_new = F32(cur_max - cur_min), F32(c_max - c_min)
            ratio = np.ceil(F32(d_new * F32(up)) / d_old)
            if not np.isfinite(ratio):
                raise TorchRuntimeError(f"cannot convert float {ratio} to integer")
            down = int(ratio)
            e = F32(F32(F32(down) * d_old) / F32(up)) - d_new
            start = np.round(F32(F32(F32(cur_min - c_min) * F32(n)) * F32(up)) / d_old)
            if not np.isfinite(start):
                raise TorchRuntimeError(f"cannot convert float {start} to integer")
            c_max = F32(c_max + e)
        update = self._histc(v, c_min, c_max)
        if c_min == cur_min and c_max == cur_max:
            self.histogram = (update + self.histogram).astype(F32)
        else:
            self.histogram = self._combine_old(update, self.histogram, down, int(start))
        self.min_val, self.max_val = np.array(c_min), np.array(c_max)

    def _combine_old(self, update: np.ndarray, old: np.ndarray, down: int,
                     start: int) -> np.ndarray:
        """``_combine_histograms`` before pytorch/pytorch#129387: the old histogram
        upsampled ``upsample_rate`` times, placed at ``start`` on a grid of ``bins * down``
        sub-bins, integrated in float64 and read every ``down`` sub-bins."""
        n, up = self.bins, self.upsample_rate
        size = n * down
        if size < 0:
            raise TorchRuntimeError(f"negative dimension {size}")
        grid = np.zeros(size, F32)
        stop = min(size, start + n * up) if start >= 0 else start + n * up
        got = len(range(size)[start:start + n * up]) if start >= 0 else 0
        if start < 0 or got != n * up:
            raise TorchRuntimeError(
                f"The expanded size of the tensor ({got}) must match the existing size "
                f"({n * up}) (start index {start}, stop {stop}, {size} sub-bins)")
        grid[start:start + n * up] = np.repeat(old, up)
        integral = np.cumsum(grid.astype(np.float64))[down - 1::down]
        shifted = np.zeros(n, F32)
        shifted[1:] = integral[:-1].astype(F32)
        interpolated = (integral - shifted.astype(np.float64)) / up
        return (update + interpolated.astype(F32)).astype(F32)

    # -- calculate_qparams --------------------------------------------------------------
    def _quantization_error(self, start: int, end: int) -> float:
        """torch's ``_compute_quantization_error`` (float32 tensor ops, Python widths)."""
        bw = (float(self.max_val) - float(self.min_val)) / self.bins
        dbw = bw * (end - start + 1) / self.dst_nbins
        if dbw == 0.0:
            return 0.0
        bw32, dbw32 = F32(bw), F32(dbw)
        half32, nhalf32 = F32(dbw / 2), F32(-dbw / 2)
        top = F32(self.dst_nbins - 1)
        with np.errstate(all="ignore"):
            src = (np.arange(self.bins) - start).astype(F32)
            begin = src * bw32
            stop = begin + bw32
            b_of_begin = np.clip(div_floor32(begin, dbw32), F32(0), top)
            b_of_begin_center = (b_of_begin + F32(0.5)) * dbw32
            b_of_end = np.clip(div_floor32(stop, dbw32), F32(0), top)
            density = self.histogram / bw32

            def norm(d_begin: Any, d_end: Any) -> Any:
                return (d_end * d_end * d_end - d_begin * d_begin * d_begin) / F32(3)

            acc = np.zeros(self.bins, F32)
            acc = acc + density * norm(begin - b_of_begin_center,
                                       np.full(self.bins, half32))
            acc = acc + (b_of_end - b_of_begin - F32(1)) * (density * norm(nhalf32, half32))
            b_of_end_center = b_of_end * dbw32 + half32
            acc = acc + density * norm(nhalf32, stop - b_of_end_center)
            return float(sum32(acc.astype(F32)))

    def _non_linear_param_search(self) -> tuple[np.float32, np.float32]:
        """torch's ``_non_linear_param_search``: the searched ``(new_min, new_max)``."""
        mn, mx = F32(self.min_val), F32(self.max_val)
        with np.errstate(all="ignore"):
            bin_width = F32(mx - mn) / F32(self.bins)
        total = float(sum32(self.histogram))
        csum = cumsum32(self.histogram)
        monotone = not np.isnan(csum).any()
        stepsize, alpha, beta = 1e-5, 0.0, 1.0
        start, end = 0, self.bins - 1
        norm_min = float("inf")
        while alpha < beta:
            next_alpha, next_beta = alpha + stepsize, beta - stepsize
            if monotone:
                ta = F32(next_alpha * total)
                left = start
                if start < end:
                    left = min(end, max(start, int(np.searchsorted(csum, ta, side="left"))))
                if left == start:
                    # neither bin moves while c[end] <= fl32(beta * total) (or start == end):
                    # only beta steps on, as in torch's loop
                    c_end = csum[end]
                    while alpha < beta and (start == end
                                            or not c_end > F32((beta - stepsize) * total)):
                        beta = beta - stepsize
                    if not alpha < beta:
                        break
                    next_beta = beta - stepsize
                tb = F32(next_beta * total)
                right = max(start, min(end, int(np.searchsorted(csum, tb, side="right")) - 1))
            else:
                ta, tb = F32(next_alpha * total), F32(next_beta * total)
                left, right = start, end
                while left < end and csum[left] < ta:
                    left += 1
                while right > start and csum[right] > tb:
                    right -= 1
            next_start, next_end = start, end
            if left - start > end - right:
                next_start, alpha = left, next_alpha
            else:
                next_end, beta = right, next_beta
            if next_start == start and next_end == end:
                continue
            err = self._quantization_error(next_start, next_end)
            if err > norm_min:
                break
            norm_min, start, end = err, next_start, next_end
        with np.errstate(all="ignore"):
            return (F32(mn + bin_width * F32(start)), F32(mn + bin_width * F32(end + 1)))

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """torch's ``calculate_qparams()``: ``(scale float32 (1,), zero_point (1,))``;
        ``([1.0], [0])`` with a warning before any data."""
        if F32(self.min_val) == np.inf and F32(self.max_val) == -np.inf:
            warnings.warn("must run observer before calling calculate_qparams. Returning "
                          "default scale and zero point", UserWarning, stacklevel=2)
            return np.ones(1, F32), np.zeros(1, np.int64)
        new_min, new_max = self._non_linear_param_search()
        scale, zp = self._spec.calculate(np.array(new_min), np.array(new_max))
        # a NaN range (max - min overflowing float32): torch's scalar maximum returns
        # std::numeric_limits<float>::quiet_NaN()
        scale[np.isnan(scale)] = F32(np.nan)
        return scale, zp

    def __repr__(self) -> str:
        return (f"HistogramObserver(bins={self.bins}, dtype={self.dtype!r}, "
                f"qscheme={self.qscheme!r}, quant_min={self.quant_min}, "
                f"quant_max={self.quant_max}, version={self.version!r}, "
                f"min_val={self.min_val}, max_val={self.max_val})")
