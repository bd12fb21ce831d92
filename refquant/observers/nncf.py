"""OpenVINO NNCF 3.4's range estimators, bug for bug on NumPy tensors, and a canonical twin.

Upstream (openvinotoolkit/nncf): ``nncf/quantization/range_estimator.py`` (statistic and
aggregator types, the preset sets), ``nncf/common/tensor_statistics/collectors.py``
(reducers ``MinReducer`` ... ``AbsQuantileReducer``; aggregators ``MinAggregator``,
``MaxAggregator``, ``MeanAggregator``, ``MedianAggregator``, ``MeanNoOutliersAggregator``,
``MedianNoOutliersAggregator``), ``nncf/quantization/algorithms/min_max/algorithm.py``
(``_get_statistic_collector``: which reducer and aggregator a preset builds) and
``nncf/quantization/fake_quantize.py`` (``calculate_quantizer_parameters``,
``calculate_scale_zero_point``). The NumPy backend's tensor functions are
``nncf/tensor/functions/numpy_numeric.py``.

What NNCF computes, per batch ``x`` (a *sample*) and then over the samples:

* reducer, ``keepdims=True`` over ``axes`` (all axes when ``None``): ``min``/``max``/
  ``abs_max``/``mean`` in the input dtype; ``quantile`` / ``abs_quantile`` as
  ``np.quantile(float64(x), [q])`` (linear interpolation) -- float64, not the input dtype.
  An empty batch is skipped.
* aggregator over the stack of samples (axis 0): ``min``/``max`` online (running extreme),
  ``mean`` = ``np.mean`` of the stack in the statistic's dtype, ``median`` = ``np.median``,
  ``mean_no_outliers`` / ``median_no_outliers``: drop samples strictly outside the linear
  interpolated ``[quantile(q), quantile(1-q)]`` of the stack, then the masked mean / median
  (``numpy.ma``).
* presets: ``MINMAX`` (min/min, max/max), ``MEAN_MINMAX`` (min/mean, max/mean; NNCF's
  default for per-tensor activations), ``MEDIAN_MINMAX``, ``MEAN_NO_OUTLIERS_MINMAX``,
  ``MEAN_QUANTILE`` (quantile ``q`` and ``1-q`` with ``mean``), ``q = 1e-4``. With
  ``use_abs_max`` (NNCF's symmetric quantizers) the ``max`` statistic becomes ``abs_max``.

Then ``calculate_quantizer_parameters`` turns ``(min, max)`` into FakeQuantize's
``input_low``/``input_high`` (float32), with ``fix_zero_filters_*`` and, for the asymmetric
mode, ``tune_range`` which moves one border so that zero is exactly representable.

The bug-for-bug classes reproduce this order-dependent arithmetic (``mean`` of the per-batch
minima in float32, so batch order and batch split change the answer). The canonical twin
:class:`CanonicalRangeEstimator` keeps the multiset of per-sample statistics and aggregates it
with correctly rounded sums (``math.fsum``) and an exact trimmed mean (``floor(q*N)`` samples
cut at each end), so its answer does not depend on batch order and ``merge`` is exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refquant.qparams import QParams

__all__ = [
    "STATISTICS", "AGGREGATORS", "PRESETS", "reduce_sample", "aggregate",
    "RangeEstimator", "CanonicalRangeEstimator", "MinMaxRangeEstimator",
    "MeanMinMaxRangeEstimator", "MedianMinMaxRangeEstimator",
    "MeanNoOutliersRangeEstimator", "MeanQuantileRangeEstimator", "quantizer_parameters",
    "scale_zero_point", "tune_range",
]

STATISTICS = ("min", "max", "abs_max", "mean", "quantile", "abs_quantile")
AGGREGATORS = ("min", "max", "mean", "median", "mean_no_outliers", "median_no_outliers")
#: NNCF's RangeEstimatorParametersSet: (min stat, min aggregator, max stat, max aggregator)
PRESETS = {
    "MINMAX": ("min", "min", "max", "max"),
    "MEAN_MINMAX": ("min", "mean", "max", "mean"),
    "MEDIAN_MINMAX": ("min", "median", "max", "median"),
    "MEAN_NO_OUTLIERS_MINMAX": ("min", "mean_no_outliers", "max", "mean_no_outliers"),
    "MEAN_QUANTILE": ("quantile", "mean", "quantile", "mean"),
}


def _choice(value: Any, options: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def _prob(q: Any, name: str = "quantile_outlier_prob") -> float:
    if isinstance(q, bool) or not isinstance(q, (int, float, np.floating)):
        raise TypeError(f"{name} must be a real number, got {q!r}")
    if not 0.0 <= float(q) <= 0.5:
        raise ValueError(f"{name} must be in [0, 0.5], got {q!r}")
    return float(q)


def _array(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"x must be a floating-point array, got dtype {arr.dtype}")
    return arr


def _axes(axes: Any, ndim: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        axes = (axes,)
    try:
        out = tuple(int(a) % ndim if -ndim <= int(a) < ndim else None for a in axes)  # type: ignore[misc]
    except TypeError:
        raise TypeError(f"axes must be None or a tuple of ints, got {axes!r}") from None
    if None in out or ndim == 0:
        raise ValueError(f"axes {axes!r} out of range for a {ndim}-d sample")
    return out  # type: ignore[return-value]


def reduce_sample(x: Any, statistic: str, axes: Any = None, quantile: float = 0.01
                  ) -> np.ndarray | None:
    """One NNCF reducer on one sample (``keepdims=True``); ``None`` for an empty sample.

    ``min``/``max``/``abs_max``/``mean``: ``np.min``/``np.max``/``np.max(|x|)``/``np.mean``
    in the input dtype. ``quantile``/``abs_quantile``: ``np.quantile(float64(x), [quantile])``
    with linear interpolation, float64 (upstream: ``collectors.py`` ``QuantileReducer``).
    """
    statistic = _choice(statistic, STATISTICS, "statistic")
    arr = _array(x)
    if arr.size == 0:
        return None
    red = _axes(axes, arr.ndim)
    if statistic in ("abs_max", "abs_quantile"):
        arr = np.abs(arr)
    if statistic == "min":
        return np.asarray(np.min(arr, axis=red, keepdims=True))
    if statistic in ("max", "abs_max"):
        return np.asarray(np.max(arr, axis=red, keepdims=True))
    if statistic == "mean":
        return np.asarray(np.mean(arr, axis=red, keepdims=True))
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float, np.floating)) or not (
            0.0 <= float(quantile) <= 1.0):
        raise ValueError(f"quantile must be a real number in [0, 1], got {quantile!r}")
    return np.quantile(arr.astype(np.float64), [float(quantile)], axis=red, keepdims=True)[0]


def aggregate(samples: list[np.ndarray], aggregator: str, quantile: float = 1e-4) -> np.ndarray:
    """One NNCF aggregator over the per-sample statistics (aggregation axis 0 of their stack).

    ``min``/``max`` are exact; ``mean`` is ``np.mean`` of the stack in its dtype (float32
    pairwise/sequential sums: the result depends on the samples' order); ``*_no_outliers``
    masks samples ``< quantile(q)`` or ``> quantile(1-q)`` (linear interpolation on float64)
    and takes ``numpy.ma``'s mean / median of the rest.
    """
    aggregator = _choice(aggregator, AGGREGATORS, "aggregator")
    if not samples:
        raise ValueError("samples must not be empty (no batch was observed)")
    shapes = {s.shape for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"samples must share one shape, got {sorted(shapes)}")
    stack = np.stack(samples)
    if aggregator == "min":
        return np.asarray(np.min(stack, axis=0))
    if aggregator == "max":
        return np.asarray(np.max(stack, axis=0))
    if aggregator == "mean":
        return np.asarray(np.mean(stack, axis=(0,), keepdims=True))[0]
    if aggregator == "median":
        return np.asarray(np.median(stack, axis=(0,), keepdims=True))[0]
    q = _prob(quantile)
    low, high = np.quantile(stack.astype(np.float64), q=[q, 1 - q], axis=(0,))
    masked = np.ma.array(stack, mask=(stack < low) | (high < stack))
    if aggregator == "mean_no_outliers":
        out = np.ma.mean(masked, axis=(0,), keepdims=True)
    else:
        out = np.ma.median(masked, axis=(0,), keepdims=True)  # type: ignore[no-untyped-call]
    return np.asarray(out.data if isinstance(out, np.ma.MaskedArray) else out)[0]


class RangeEstimator:
    """NNCF's MinMax statistic collector, bug for bug (numpy tensors, NNCF 3.4).

    ``preset`` is one of :data:`PRESETS` (or give ``min_statistic``, ``min_aggregator``,
    ``max_statistic``, ``max_aggregator``); ``axes`` the reducer's reduction axes (``None``:
    per tensor); ``use_abs_max`` turns the ``max`` statistic into ``abs_max`` as NNCF does
    for symmetric quantizers; ``num_samples`` caps the registered batches like NNCF's.
    ``observe(x)`` registers one batch; ``compute_range()`` returns ``(min_values,
    max_values)`` as NNCF's ``MinMaxTensorStatistic`` holds them (keepdims shapes);
    ``compute()`` the FakeQuantize parameters as :class:`~refquant.qparams.QParams` (step
    convention: NNCF's ``calculate_scale_zero_point`` on ``calculate_quantizer_parameters``
    with ``mode``, ``num_bits``, ``narrow_range``, ``signedness_to_force``; per channel when
    ``axes`` leaves one axis unreduced).
    Verified bit for bit against NNCF 3.4's reducer and aggregator classes.
    """

    #: the family whose numbers this class reproduces
    profile = "nncf"

    def __init__(self, preset: str | None = "MINMAX", *, min_statistic: str | None = None,
                 min_aggregator: str | None = None, max_statistic: str | None = None,
                 max_aggregator: str | None = None, quantile_outlier_prob: float = 1e-4,
                 axes: Any = None, use_abs_max: bool | None = None,
                 num_samples: int | None = None, mode: str = "symmetric", num_bits: int = 8,
                 narrow_range: bool = False, signedness_to_force: bool | None = None) -> None:
        base = PRESETS[_choice(preset, tuple(PRESETS), "preset")] if preset is not None \
            else (None, None, None, None)
        parts = [p if p is not None else b for p, b in zip(
            (min_statistic, min_aggregator, max_statistic, max_aggregator), base, strict=True)]
        for p, name in zip(parts, ("min_statistic", "min_aggregator", "max_statistic",
                                   "max_aggregator"), strict=True):
            if p is None:
                raise ValueError(f"{name} must be given when preset is None")
        self.min_statistic = _choice(parts[0], STATISTICS, "min_statistic")
        self.min_aggregator = _choice(parts[1], AGGREGATORS, "min_aggregator")
        self.max_statistic = _choice(parts[2], STATISTICS, "max_statistic")
        self.max_aggregator = _choice(parts[3], AGGREGATORS, "max_aggregator")
        self.mode = _choice(mode, ("symmetric", "asymmetric"), "mode")
        if use_abs_max is None:  # NNCF: abs-max for symmetric quantizers
            use_abs_max = self.mode == "symmetric"
        if not isinstance(use_abs_max, bool):
            raise TypeError(f"use_abs_max must be a bool or None, got {use_abs_max!r}")
        if isinstance(num_bits, bool) or not isinstance(num_bits, (int, np.integer)) or not (
                2 <= num_bits <= 16):
            raise ValueError(f"num_bits must be an int in [2, 16], got {num_bits!r}")
        self.num_bits = int(num_bits)
        self.narrow_range = bool(narrow_range)
        self.signedness_to_force = signedness_to_force
        if use_abs_max and self.max_statistic == "max":
            self.max_statistic = "abs_max"
        self.quantile_outlier_prob = _prob(quantile_outlier_prob)
        if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(
                num_samples, (int, np.integer)) or num_samples < 1):
            raise ValueError(f"num_samples must be None or a positive int, got {num_samples!r}")
        self.num_samples = num_samples
        self.axes = axes
        self._mins: list[np.ndarray] = []
        self._maxs: list[np.ndarray] = []
        self._seen = 0

    def _reduce(self, x: np.ndarray, statistic: str, is_min: bool) -> np.ndarray | None:
        q = self.quantile_outlier_prob if is_min else 1 - self.quantile_outlier_prob
        return reduce_sample(x, statistic, self.axes, quantile=q)

    def observe(self, x: Any) -> None:
        """Register one batch (NNCF's ``TensorCollector.register_inputs``)."""
        arr = _array(x)
        if arr.size == 0:
            return
        _axes(self.axes, arr.ndim)
        if self.num_samples is not None and self._seen >= self.num_samples:
            return
        lo = self._reduce(arr, self.min_statistic, True)
        hi = self._reduce(arr, self.max_statistic, False)
        assert lo is not None and hi is not None
        if self._mins and lo.shape != self._mins[0].shape:
            raise ValueError(f"x: reduced shape {lo.shape} differs from the first batch's "
                             f"{self._mins[0].shape}")
        self._mins.append(lo)
        self._maxs.append(hi)
        self._seen += 1

    def compute_range(self) -> tuple[np.ndarray, np.ndarray]:
        """``(min_values, max_values)``: the two aggregators over the registered samples."""
        if not self._mins:
            raise ValueError("no batch observed: call observe(x) first")
        q = self.quantile_outlier_prob
        return (aggregate(self._mins, self.min_aggregator, q),
                aggregate(self._maxs, self.max_aggregator, q))

    def compute(self) -> QParams:
        """QParams of the FakeQuantize NNCF derives from :meth:`compute_range`."""
        lo, hi = self.compute_range()
        kept = [i for i, n in enumerate(np.shape(lo)) if n != 1]
        per_channel = len(kept) == 1
        if len(kept) > 1:
            raise ValueError(f"compute() needs a per-tensor or per-channel range, got shape "
                             f"{np.shape(lo)}")
        low, high, _ = quantizer_parameters(
            lo, hi, num_bits=self.num_bits, mode=self.mode, narrow_range=self.narrow_range,
            signedness_to_force=self.signedness_to_force, per_channel=per_channel)
        # nncf/common/quantization/quantizers.py: calculate_(a)symmetric_level_ranges
        qmin, qmax = 0, 2**self.num_bits - 1
        if self.mode == "asymmetric":
            qmin += int(self.narrow_range)
        else:
            if self.signedness_to_force is True or bool(np.any(np.asarray(lo) < 0)):
                qmin, qmax = -(2 ** (self.num_bits - 1)), 2 ** (self.num_bits - 1) - 1
            if self.narrow_range:
                qmin, qmax = (qmin + 1, qmax) if qmin < 0 else (qmin, qmax - 1)
        scale, zp = scale_zero_point(low, high, qmin, qmax, self.narrow_range)
        return QParams(np.ravel(scale) if per_channel else scale,
                       np.ravel(zp).astype(np.int64) if per_channel else zp.astype(np.int64),
                       qmin, qmax, self.num_bits, kept[0] if per_channel else None,
                       convention="step")

    def merge(self, other: RangeEstimator) -> None:
        """Not defined for NNCF's aggregators (use :class:`CanonicalRangeEstimator`)."""
        raise NotImplementedError("NNCF's aggregators do not merge; use CanonicalRangeEstimator")


class MinMaxRangeEstimator(RangeEstimator):
    """:class:`RangeEstimator` with NNCF's ``MINMAX`` preset (weights, per-channel
    activations)."""

    def __init__(self, preset: str | None = "MINMAX", **kwargs: Any) -> None:
        super().__init__(preset, **kwargs)


class MeanMinMaxRangeEstimator(RangeEstimator):
    """``MEAN_MINMAX``: NNCF's default for per-tensor activations."""

    def __init__(self, preset: str | None = "MEAN_MINMAX", **kwargs: Any) -> None:
        super().__init__(preset, **kwargs)


class MedianMinMaxRangeEstimator(RangeEstimator):
    """``MEDIAN_MINMAX``."""

    def __init__(self, preset: str | None = "MEDIAN_MINMAX", **kwargs: Any) -> None:
        super().__init__(preset, **kwargs)


class MeanNoOutliersRangeEstimator(RangeEstimator):
    """``MEAN_NO_OUTLIERS_MINMAX``."""

    def __init__(self, preset: str | None = "MEAN_NO_OUTLIERS_MINMAX", **kwargs: Any) -> None:
        super().__init__(preset, **kwargs)


class MeanQuantileRangeEstimator(RangeEstimator):
    """``MEAN_QUANTILE``."""

    def __init__(self, preset: str | None = "MEAN_QUANTILE", **kwargs: Any) -> None:
        super().__init__(preset, **kwargs)


def _fsum_mean(values: np.ndarray) -> float:
    return math.fsum(values.tolist()) / values.size


class CanonicalRangeEstimator(RangeEstimator):
    """The same statistics, aggregated exactly: order-free and mergeable.

    Keeps every per-sample statistic (float64) and aggregates each element's multiset:
    ``min``/``max`` exact; ``mean`` = ``fsum / N`` (one rounding to float64);
    ``median`` of the sorted values; ``mean_no_outliers`` / ``median_no_outliers`` cut
    ``k = floor(q * N)`` samples at each end of the sorted values (a trimmed mean; NNCF's
    interpolated bounds instead drop the extremes of as few as 3 samples). Results are
    float64 arrays of NNCF's shapes. NaN or Inf in a batch raises ValueError.
    ``merge(other)`` adds another estimator's samples: the result equals one estimator that
    saw all batches, in any order.
    """

    #: the family whose numbers this class reproduces
    profile = "canonical"

    def observe(self, x: Any) -> None:
        arr = _array(x)
        if arr.size and not np.all(np.isfinite(arr)):
            bad = arr[~np.isfinite(arr)].flat[0]
            raise ValueError(f"x holds a non-finite value ({bad}); the canonical estimator "
                             "refuses it")
        super().observe(arr)

    def _aggregate(self, samples: list[np.ndarray], aggregator: str) -> np.ndarray:
        stack = np.sort(np.stack(samples).astype(np.float64), axis=0)
        n = stack.shape[0]
        flat = stack.reshape(n, -1)
        if aggregator == "min":
            return stack[0]
        if aggregator == "max":
            return stack[-1]
        if aggregator.endswith("no_outliers"):
            k = math.floor(self.quantile_outlier_prob * n)
            flat = flat[k:n - k]
        if aggregator.startswith("mean"):
            out = np.array([_fsum_mean(flat[:, j]) for j in range(flat.shape[1])])
        else:
            m = flat.shape[0]
            lo, hi = flat[(m - 1) // 2], flat[m // 2]
            pairs = zip(lo.tolist(), hi.tolist(), strict=True)
            out = np.array([math.fsum([a, b]) / 2 for a, b in pairs])
        return out.reshape(stack.shape[1:])

    def compute_range(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._mins:
            raise ValueError("no batch observed: call observe(x) first")
        return (self._aggregate(self._mins, self.min_aggregator),
                self._aggregate(self._maxs, self.max_aggregator))

    def merge(self, other: RangeEstimator) -> None:  # type: ignore[override]
        if not isinstance(other, CanonicalRangeEstimator):
            raise TypeError(f"other must be a CanonicalRangeEstimator, got {type(other).__name__}")
        same = ("min_statistic", "min_aggregator", "max_statistic", "max_aggregator",
                "quantile_outlier_prob", "axes", "num_samples")
        for name in same:
            if getattr(self, name) != getattr(other, name):
                raise ValueError(f"other.{name} = {getattr(other, name)!r} differs from "
                                 f"{getattr(self, name)!r}")
        if self.num_samples is not None:
            raise ValueError("merge is defined only without num_samples (a cap depends on order)")
        if self._mins and other._mins and self._mins[0].shape != other._mins[0].shape:
            raise ValueError("other's statistics have a different shape")
        self._mins += [m.copy() for m in other._mins]
        self._maxs += [m.copy() for m in other._maxs]
        self._seen += other._seen


# -- FakeQuantize parameters (nncf/quantization/fake_quantize.py) ---------------------------
def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def tune_range(left: np.ndarray, right: np.ndarray, num_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """NNCF's ``tune_range(unify_zp=False)`` in float32: move one border so zero is a level.

    ``s = (2^b - 1) / (right - left)``, ``q = round_half_even(-left * s)``; candidate
    ``ra = q / (q - L) * right`` (if ``q < L``, else ``left``) and ``rb = (q - L) / q * left``
    (if ``q > 0``, else ``right``); keep the one that widens the range less
    (``right - ra > rb - left`` picks ``ra``), blended by a 0/1 mask as upstream does.
    """
    level_high = 2**num_bits - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        s = level_high / (right - left)
        qval = np.round(-left * s)
        ra_then = qval / (qval - level_high) * right
        rb_then = (qval - level_high) / qval * left
    ra = np.where(qval < level_high, ra_then, left)
    rb = np.where(qval > 0.0, rb_then, right)
    mask = np.where((right - ra) > (rb - left), 1.0, 0.0)
    inv = np.abs(1.0 - mask)
    with np.errstate(invalid="ignore"):
        return mask * ra + inv * left, inv * rb + mask * right


def quantizer_parameters(min_values: Any, max_values: Any, *, num_bits: int = 8,
                         mode: str = "symmetric", narrow_range: bool = False,
                         signedness_to_force: bool | None = None,
                         per_channel: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """NNCF's ``calculate_quantizer_parameters`` (``half_range=False``): FakeQuantize's
    ``(input_low, input_high, levels)``, float32.

    Symmetric: ``high = max(max(max(max_values) * 0.01, 8e-5), max_values)``; signed when
    forced or any ``min < 0``: ``low = -high * (1 if narrow_range else levels/(levels-2))``,
    else ``low = 0``; levels ``2^b - 1`` (narrow) or ``2^b``. Asymmetric: widen ranges below
    ``8e-4`` by ``8e-4`` on each side, clamp ``low <= 0 <= high`` and :func:`tune_range`.
    Per tensor, the results are squeezed to shape ``()``.
    """
    mode = _choice(mode, ("symmetric", "asymmetric"), "mode")
    if isinstance(num_bits, bool) or not isinstance(num_bits, (int, np.integer)) or not (
            2 <= num_bits <= 16):
        raise ValueError(f"num_bits must be an int in [2, 16], got {num_bits!r}")
    lo = _f32(min_values)
    hi = _f32(max_values)
    if lo.shape != hi.shape:
        raise ValueError(f"min_values shape {lo.shape} differs from max_values shape {hi.shape}")
    if mode == "symmetric":
        levels = 2**num_bits - 1 if narrow_range else 2**num_bits
        level_high = np.maximum(np.maximum(np.max(hi) * 0.01, 8e-5), hi)
        if signedness_to_force is True or bool(np.any(lo < 0)):
            level_low = -level_high * (1 if narrow_range else levels / (levels - 2))
        else:
            level_low = np.zeros_like(level_high)
        input_low, input_high = _f32(level_low), _f32(level_high)
    else:
        levels = 2**num_bits - 1 if narrow_range else 2**num_bits
        ranges = hi - lo
        corr = np.where(ranges > 8e-4, (np.maximum(1e-8 * ranges, ranges) - ranges) * 0.5, 8e-4)
        level_low = np.where(lo - corr < 0.0, lo - corr, 0.0)
        level_high = np.where(hi + corr > 0.0, hi + corr, 0.0)
        a, b = tune_range(level_low, level_high, num_bits)
        input_low, input_high = _f32(a), _f32(b)
    if not per_channel:
        input_low, input_high = np.squeeze(input_low), np.squeeze(input_high)
    return input_low, input_high, levels


def scale_zero_point(input_low: Any, input_high: Any, level_low: int, level_high: int,
                     narrow_range: bool) -> tuple[np.ndarray, np.ndarray]:
    """NNCF's ``calculate_scale_zero_point``: ``scale = f32((high - low) / (levels - 1))``,
    replaced by float32 eps where ``|scale| < eps``; ``zp = clip(int32(lo' -
    round_half_even(low / scale)), level_low, level_high)`` with ``lo' = level_low (+1 when
    narrow_range)``."""
    lo, hi = _f32(input_low), _f32(input_high)
    levels = level_high - level_low if narrow_range else level_high - level_low + 1
    scale = ((hi - lo) / (levels - 1)).astype(np.float32)
    eps = np.finfo(np.float32).eps
    scale = np.where(np.abs(scale) < eps, eps, scale)
    expected = level_low + 1 if narrow_range else level_low
    zp = expected - np.round(lo / scale)
    return scale, np.clip(zp.astype(np.int32), level_low, level_high)
