"""Observer factories for Paddle: statistics on the device, decisions from refquant.

Each factory (``MSEObserver(quant_bits=8, profile="canonical")``) subclasses Paddle's
``paddle.quantization.factory.ObserverFactory``, so it works in this package's
:class:`~refquant.adapters.paddle.QuantConfig` and in ``paddle.quantization.QuantConfig``
alike (a drop-in for ``paddleslim.quant.observers``). The layer it builds is
``<FactoryName>Layer`` (``MSEObserverLayer``), a ``paddle.quantization.BaseObserver`` whose
``forward`` returns its input unchanged after reducing it to small statistics with Paddle ops
on the tensor's own device (:mod:`._device`). The decision is made by the very same
reference observer object that the NumPy path uses (``refquant.observers.*``): the layer
feeds it statistics instead of the tensor, so the two can only differ where statistics
differ -- and the statistics below are exact.

==============================  =====================================  ====================
observer                        device statistic per batch             host copy of batch
==============================  =====================================  ====================
AbsmaxObserver                  abs-max (kept on the device)           no
AVGObserver                     per-sample abs-max (kept on device;    no
                                paddleslim: their ``paddle.mean``)
MSEObserver / EMDObserver       canonical: exact histogram counts      no
                                paddleslim: 35 candidate losses        no
HistObserver / KLObserver       canonical: exact histogram counts      no
                                paddleslim: --                         yes (see below)
AbsMaxChannelWiseWeightObserver per-channel abs-max                    no
MSEChannelWiseWeightObserver    --                                     yes (weights only)
GroupWiseWeightObserver         per-group abs-max                      no
==============================  =====================================  ====================

Every batch is also checked for NaN/Inf (a float32 sum comes back with the statistics:
an IEEE sum is NaN whenever a NaN is summed, on every device and in any order, and an Inf
shows in the abs-max); non-finite input raises ``ValueError`` naming the layer unless the
observer was built with ``ignore_nonfinite=True``. Abs-max and AVG keep their per-batch
results on the device and hand them to the reference when the parameters are needed (one
transfer for the whole calibration).

The hand-over uses only the reference observers' public statistics-ingestion methods
(``observe_abs_max``, ``observe_sample_abs_max``/``observe_batch_means``,
``observe_histogram``, ``observe_losses``, ``observe_channel_abs_max``,
``observe_group_abs_max``), each of which equals ``observe`` on the values, bit for bit.

Host copies: PaddleSlim's histogram (``profile="paddleslim"`` Hist/KL) is ``np.histogram``
on an order-dependent, re-binned range (quirks 21-24), reproduced by
:class:`refquant.histogram.SlimHistogram` from the values themselves; and the MSE
channel-wise decision needs every weight value (exact float64 losses over each channel's
sorted values). Both copy the tensor to the host; the second only ever sees weights. The
reference has a hook for the first (``observe_slim_batch(min, max, counts_on)``: the state
machine picks the range, ``counts_on`` counts on it), but a device counter must equal
``np.histogram`` bit for bit. For float32 data NumPy 2 computes ``d = x - lo`` in float32,
then ``d / (hi - lo) * bins`` in float64 (the denominator is a float64 NumPy scalar),
truncates, and corrects the index against ``np.linspace(lo, hi, bins + 1)`` edges in
float32. Those are correctly rounded elementwise operations and comparisons a device
could repeat, but that is not implemented here (nor checked on a GPU, whose division
would have to be IEEE, not fast-math), so the values go to the host.

``profile="paddleslim"`` MSE/EMD compute PaddleSlim's per-candidate losses on the device
with PaddleSlim's own expressions (``clip(round(x / s * qmax), -qmax - 1, qmax) / qmax * s``,
``mean``, ``std``), one candidate at a time with a Python-float scale as PaddleSlim does, so
the 35 losses are Paddle's own bits on that device; they come back in one transfer and the
running decision is the reference's ``slim_running_choice``.

CPU dispatch: a tensor on a CPU place is read in place as a NumPy array
(:func:`._device.host_view`, DLPack, no copy) and the statistics in the table are computed
by refquant's NumPy code instead of Paddle ops: abs-max and per-sample maxima with
``np.abs(...).max``, the canonical histograms with ``ExactHistogram.add``, the paddleslim
MSE/EMD losses, the paddleslim Hist/KL and the channel-wise MSE by the reference's own
``observe`` (no copy either). The statistics are the same on both branches (exact; the
paddleslim AVG mean is :func:`refquant.kernels.slim.paddle_mean`, Paddle's CPU ``mean`` bit
for bit), except the paddleslim MSE/EMD losses, which are refquant's reproduction of
Paddle's float32 losses instead of Paddle's own bits (same decision unless the reported
margin is inside the bound). ``_device.FORCE_DEVICE_OPS`` (environment variable
``REFQUANT_PADDLE_DEVICE_OPS=1``) forces the Paddle-op branch, for the tests that compare
the two (``tests/test_adapter_fastpath.py``).

Channel-wise observers take ``axis=None``: inferred from the layer they are built for
(:func:`refquant.adapters.paddle.layers.weight_axis`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import paddle
from paddle.quantization.base_observer import BaseObserver
from paddle.quantization.factory import ObserverFactory

from refquant.histogram import ExactHistogram
from refquant.kernels.slim import LaneSum
from refquant.observers.absmax import AbsmaxObserver as _RefAbsmax
from refquant.observers.absmax import abs_max
from refquant.observers.avg import AVGObserver as _RefAVG
from refquant.observers.channel_wise import (
    AbsMaxChannelWiseWeightObserver as _RefAbsMaxCW,
)
from refquant.observers.channel_wise import (
    MSEChannelWiseWeightObserver as _RefMSECW,
)
from refquant.observers.emd import EMDObserver as _RefEMD
from refquant.observers.groupwise import GroupWiseWeightObserver as _RefGroupWise
from refquant.observers.hist import HistObserver as _RefHist
from refquant.observers.kl import KLObserver as _RefKL
from refquant.observers.mse import MSEObserver as _RefMSE
from refquant.observers.mse import slim_candidates
from refquant.observers.search import decision_bound, f32_mean_bound
from refquant.qparams import QParams

from . import _device as dev
from .layers import check_signature, layer_label, weight_axis

__all__ = [
    "AbsmaxObserver",
    "AVGObserver",
    "MSEObserver",
    "EMDObserver",
    "HistObserver",
    "KLObserver",
    "AbsMaxChannelWiseWeightObserver",
    "MSEChannelWiseWeightObserver",
    "GroupWiseWeightObserver",
    "AbsmaxObserverLayer",
    "AVGObserverLayer",
    "MSEObserverLayer",
    "EMDObserverLayer",
    "HistObserverLayer",
    "KLObserverLayer",
    "AbsMaxChannelWiseWeightObserverLayer",
    "MSEChannelWiseWeightObserverLayer",
    "GroupWiseWeightObserverLayer",
    "PercentHistObserverLayer",
    "RefquantObserverLayer",
    "NotCalibratedError",
]


class NotCalibratedError(RuntimeError):
    """An observer was asked for its parameters before it observed any data."""


# ---------------------------------------------------------------------------------------
# base layer
# ---------------------------------------------------------------------------------------
class RefquantObserverLayer(BaseObserver):
    """Observer layer: device statistics -> the reference observer's decision.

    Subclasses set ``_ref_cls`` and implement :meth:`_observe`. ``qparams()`` returns the
    reference observer's :class:`~refquant.QParams`; ``scales()`` / ``zero_points()`` are
    float32 tensors on the current device (shape ``[]`` per tensor, ``[C]`` per channel).
    """

    _ref_cls: Any = None
    #: what PaddleSlim's ``scales()`` raises before any forward (quirk 59)
    _slim_uncalibrated: type[Exception] = AttributeError
    #: per-tensor observers have no axis
    _channel_wise = False

    def __init__(self, layer: Any = None, quant_bits: int = 8, **kwargs: Any) -> None:
        super().__init__()
        self._target = layer_label(layer)
        self._axis: int | None = None
        if self._channel_wise:
            self._axis = weight_axis(layer, kwargs.pop("axis", None))
            kwargs["axis"] = self._axis
        self._ref = self._ref_cls(quant_bits, **kwargs)
        self._qp: QParams | None = None
        self._qp_key: tuple[int, int] = (0, -1)
        self._scales_t: tuple[QParams, paddle.Tensor] | None = None

    # -- Paddle's observer protocol ------------------------------------------------------
    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        with paddle.no_grad():
            self._observe(dev.as_float_tensor(x, f"input of {self._target}"))
        if self._qp is not None:  # (paddle's Layer.__setattr__ is slow: only when needed)
            self._qp = None
        return x

    def cal_thresholds(self) -> None:
        self.qparams()

    def qparams(self) -> QParams:
        """The reference decision from everything observed so far."""
        self._flush()
        if self._ref.num_batches == 0:
            if self._ref.rules.paddle_api_quirks:
                raise self._slim_uncalibrated(
                    f"{type(self).__name__} of {self._target} has observed no data "
                    f"(PaddleSlim's scales() raises {self._slim_uncalibrated.__name__} here, "
                    "quirk 59)")
            raise NotCalibratedError(
                f"{type(self).__name__} of {self._target} has observed no data: run "
                "calibration batches through the model before convert()/scales()"
            )
        key = (id(self._ref), self._ref.num_batches)
        if self._qp is None or self._qp_key != key:
            self._qp = self._ref.compute()
            self._qp_key = key
        return self._qp

    @property
    def calibrated(self) -> bool:
        self._flush()
        return self._ref.num_batches > 0

    def _flush(self) -> None:
        """Hand statistics kept on the device to the reference (observers that defer)."""

    def flush(self) -> None:
        """Hand any statistics still kept on the device to the reference observer now."""
        self._flush()

    def set_reference(self, ref: Any) -> None:
        """Replace the reference observer (e.g. by a replicated rank's copy after a sync).

        ``ref`` must be an instance of this layer's reference class; statistics still on
        the device are dropped (call :meth:`flush` first to keep them) and the cached
        parameters are forgotten.
        """
        if not isinstance(ref, self._ref_cls):
            raise TypeError(f"ref must be a {self._ref_cls.__name__}, got {type(ref).__name__}")
        self._discard_pending()
        self._ref = ref
        self._qp = None

    def pin_qparams(self, qp: QParams) -> None:
        """Make ``qparams()`` return ``qp`` until the reference observes more data.

        Used by :func:`~refquant.adapters.paddle.distributed.sync_observers` for decisions
        reduced across ranks (``profile="paddleslim"``: the MAX of the ranks' scales).
        """
        if not isinstance(qp, QParams):
            raise TypeError(f"qp must be a QParams, got {type(qp).__name__}")
        self._flush()
        self._qp = qp
        self._qp_key = (id(self._ref), self._ref.num_batches)

    def invalidate_qparams(self) -> None:
        """Forget the cached parameters: the next ``qparams()`` asks the reference again."""
        self._qp = None

    def _discard_pending(self) -> None:
        """Drop statistics kept on the device (observers that defer override this)."""

    @property
    def reference(self) -> Any:
        """The reference (NumPy) observer that holds the statistics and decides.

        Statistics still held on the device (abs-max, AVG) are handed over first, so the
        returned object is up to date.
        """
        self._flush()
        return self._ref

    def scales(self) -> paddle.Tensor:
        qp = self.qparams()
        if self._scales_t is None or self._scales_t[0] is not qp:
            self._scales_t = (qp, paddle.to_tensor(np.asarray(qp.scale, np.float32)))
        return self._scales_t[1]

    def zero_points(self) -> paddle.Tensor:
        zp = np.asarray(self.qparams().zero_point, np.float32)
        return paddle.to_tensor(zp)

    def quant_axis(self) -> int:
        return -1 if self._axis is None else self._axis

    def bit_length(self) -> int:
        return int(self._ref.quant_bits)

    def min_value(self) -> float:
        return -float(np.max(self.qparams().scale))

    def max_value(self) -> float:
        return float(np.max(self.qparams().scale))

    def extra_repr(self) -> str:
        return f"profile={self._ref.profile}, quant_bits={self._ref.quant_bits}"

    # -- hooks --------------------------------------------------------------------------
    def _observe(self, x: paddle.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _host_observe(self, x: paddle.Tensor) -> None:
        """Hand the values themselves to the reference observer.

        A CPU tensor is read in place (:func:`._device.host_view`); any other is copied to
        the host (the fallbacks listed in the module docstring).
        """
        v = dev.host_view(x)
        self._ref.observe(x.numpy() if v is None else v)

    def _finite(self, x: paddle.Tensor) -> paddle.Tensor | None:
        """``x`` when finite; its finite values with ``ignore_nonfinite``; else raise."""
        if bool(paddle.isfinite(x).all()):
            return x
        self._nonfinite(x)
        return None

    def _nonfinite(self, x: paddle.Tensor) -> None:
        """Raise for non-finite input unless ``ignore_nonfinite``."""
        if not self._ref.ignore_nonfinite:
            raise ValueError(
                f"input of {self._target} holds NaN or Inf values (shape {list(x.shape)}); "
                "pass ignore_nonfinite=True to the observer to drop them"
            )



def _hist_observe(obs: RefquantObserverLayer, x: paddle.Tensor, bins: int,
                  symmetric: bool) -> None:
    """Canonical histogram observers: device counts into ``observe_histogram``.

    CPU tensors are counted by :meth:`ExactHistogram.add` on the tensor's memory (the same
    exact counts on the same grid: both are a function of the multiset of values).
    """
    ref = obs.reference
    v = dev.host_view(x)
    if v is not None:
        if not _view_finite(v):
            obs._nonfinite(x)
            v = v[np.isfinite(v)]
        h = ExactHistogram(bins, symmetric=symmetric)
        if v.size:  # every value dropped: an empty histogram still counts the batch
            h.add(v)
        ref.observe_histogram(h)
        return
    lo, hi, finite = dev.min_max_finite(x)
    lo_hi: tuple[float, float] | None = (lo, hi)
    if not finite:
        obs._nonfinite(x)
        x = dev.finite_values(x)
        lo_hi = None
        if x.size == 0:  # every value dropped: an empty histogram still counts the batch
            ref.observe_histogram(ExactHistogram(bins, symmetric=symmetric))
            return
    ref.observe_histogram(dev.exact_histogram_of(x, bins, symmetric, lo_hi))


def _view_finite(v: np.ndarray) -> bool:
    """All of ``v`` finite: NumPy's min and max propagate NaN, and an Inf is an extreme."""
    return bool(np.isfinite(v.min()) and np.isfinite(v.max()))


# ---------------------------------------------------------------------------------------
# per-tensor observers
# ---------------------------------------------------------------------------------------
def _probe_error(target: str, k: int) -> ValueError:
    return ValueError(
        f"input of {target} held NaN or Inf values in one of its last {k} batches (or values "
        "near the float32 limit whose sum overflowed both ways); pass ignore_nonfinite=True "
        "to the observer to drop non-finite values"
    )


#: the probe of a batch whose statistic is its own finiteness probe (host path)
_NO_PROBE = np.zeros(1, np.float32)


def _probes_ok(extremes: np.ndarray, probes: np.ndarray) -> bool:
    """Finiteness from per-batch abs-max values and float32 sums read back from the device.

    An Inf always shows in the abs-max (nothing compares above it); a NaN always makes the
    IEEE sum NaN, whatever the summation order and the device (a max reduction may skip a
    NaN on some devices). A sum of finite values can overflow to +-Inf, which is not a NaN.
    """
    return bool(np.all(np.isfinite(extremes)) and not np.any(np.isnan(probes)))


_Pending = tuple[Any, Any]  # (statistic, probe): both paddle.Tensor or both np.ndarray


def _pending_on_host(pending: list[_Pending]) -> tuple[np.ndarray, np.ndarray]:
    """Per-batch ``(statistics, probes)`` concatenated in batch order, as host arrays.

    Entries left on a device come back in one transfer; entries computed on the host
    (CPU tensors, :func:`._device.host_view`) are already NumPy arrays.
    """
    on_dev = [t for pair in pending for t in pair if isinstance(t, paddle.Tensor)]
    back: Iterator[np.ndarray] = iter(())
    if on_dev:
        flat = paddle.concat([t.reshape([-1]) for t in on_dev]).numpy()
        sizes = [math.prod(t.shape) for t in on_dev]
        back = iter(np.split(flat, np.cumsum(sizes)[:-1]))
    stats, probes = [], []
    for m, p in pending:
        if isinstance(m, paddle.Tensor):
            m, p = next(back), next(back)
        stats.append(np.reshape(m, -1))
        probes.append(np.reshape(p, -1))
    return np.concatenate(stats), np.concatenate(probes)


class _DeferredLayer(RefquantObserverLayer):
    """A layer that keeps per-batch results (a statistic and a float32 sum probe) in
    ``_pending`` and hands them to the reference in ``_flush``: Paddle tensors left on the
    device, or NumPy arrays already computed on the host for CPU tensors."""

    def __init__(self, layer: Any = None, quant_bits: int = 8, **kwargs: Any) -> None:
        super().__init__(layer, quant_bits, **kwargs)
        self._pending: list[_Pending] = []

    def _discard_pending(self) -> None:
        self._pending = []

    def _take_pending(self) -> list[_Pending]:
        pending, self._pending = self._pending, []
        return pending


class AbsmaxObserverLayer(_DeferredLayer):
    """Per-tensor abs-max, kept on the device; decision by the reference.

    float32 batches leave ``max |x|`` and a float32 sum (finiteness probe) on the device, with
    no device-to-host transfer; when the parameters are needed they come back in one
    transfer and the reference folds their maximum as one batch (abs-max is a maximum, so
    this is the same state). Non-finite data is reported then, naming the layer. Other
    dtypes, and ``ignore_nonfinite=True``, take the per-batch path.
    """

    _ref_cls = _RefAbsmax
    _slim_uncalibrated = AssertionError

    def _observe(self, x: paddle.Tensor) -> None:
        if x.dtype == paddle.float32 and not self._ref.ignore_nonfinite:
            v = dev.host_view(x)
            if v is not None:
                # CPU: max |x| on the tensor's memory; NumPy's max propagates NaN, so the
                # value is its own finiteness probe
                m = np.abs(v).max()
                self._pending.append((m, m))
                return
            self._pending.append((paddle.max(paddle.abs(x)), paddle.sum(x)))
            return
        self._flush()
        lo_f, hi_f, finite = dev.min_max_finite(x)
        if not finite:
            self._nonfinite(x)
            self._host_observe(x)  # non-finite data with ignore_nonfinite: rare, exact
            return
        # max |x| of the batch from its exact min and max, in the batch's dtype
        pair = np.array([lo_f, hi_f], dtype=str(x.dtype).replace("paddle.", ""))
        self._ref.observe_abs_max(abs_max(pair))

    def _flush(self) -> None:
        pending = self._take_pending()
        if not pending:
            return
        extremes, probes = _pending_on_host(pending)
        if not _probes_ok(extremes, probes):
            raise _probe_error(self._target, len(pending))
        # abs-max is a maximum: the pending batches fold as one statistic
        self._ref.observe_abs_max(extremes.max(), batches=len(pending))


#: marks a host AVG entry (paddleslim profile) whose per-batch mean is still to be taken
_MEAN_DUE = np.zeros(1, np.float32)


def _slim_means(pending: list[_Pending]) -> list[_Pending]:
    """Replace the host entries marked ``_MEAN_DUE`` by PaddleSlim's per-batch mean.

    The mean of each batch's maxima is :func:`refquant.kernels.slim.paddle_mean` (Paddle's
    CPU ``mean``, bit for bit), evaluated for all batches with the same sample count at
    once: :class:`refquant.kernels.slim.LaneSum` with one independent lane sum per batch
    is the same computation row by row. Order and device entries are kept.
    """
    due: dict[int, list[int]] = {}
    for i, (m, p) in enumerate(pending):
        if p is _MEAN_DUE:
            due.setdefault(int(m.shape[0]), []).append(i)
    if not due:
        return pending
    out = list(pending)
    for idx in due.values():
        rows = np.stack([pending[i][0] for i in idx])
        acc = LaneSum(rows.dtype, (len(idx),))
        acc.add(rows)
        means = acc.mean()
        for i, mean in zip(idx, means, strict=True):
            out[i] = (np.asarray(mean, rows.dtype).reshape(1), _NO_PROBE)
    return out


class AVGObserverLayer(_DeferredLayer):
    """Mean of per-sample abs-max: the per-sample maxima, kept on the device until needed.

    Each batch leaves its per-sample maxima and a float32 sum (finiteness probe) on the
    device; when the parameters are needed they come back in one transfer and go to the
    reference all at once (``canonical``: its state is an exact, order-free sum). For
    ``paddleslim`` each batch leaves ``paddle.mean`` of its maxima instead -- PaddleSlim's
    per-batch statistic, computed by Paddle on this device -- which is appended, in order,
    to the reference's list of per-batch means. CPU tensors: the maxima are computed with
    NumPy on the tensor's memory (exact), and the paddleslim means with
    :func:`refquant.kernels.slim.paddle_mean`'s lane model (Paddle's CPU ``mean``, bit for
    bit), for all pending batches at once when the parameters are needed.
    """

    _ref_cls = _RefAVG

    def _observe(self, x: paddle.Tensor) -> None:
        if x.ndim == 0:
            # one sample, or PaddleSlim's IndexError (Q13a): the reference decides, from the
            # value itself, after the batches still pending
            self._flush()
            self._finite(x)
            self._host_observe(x)
            return
        exact = self._ref.rules.exact_merge  # exact sums; else PaddleSlim's per-batch means
        if x.dtype != paddle.float32 or self._ref.ignore_nonfinite:
            self._flush()
            host_maxima, finite = dev.per_sample_abs_max_finite(x)
            if not finite:
                self._nonfinite(x)
                self._host_observe(x)
                return
            self._ref.observe_sample_abs_max(host_maxima)
            return
        v = dev.host_view(x)
        if v is not None:
            # NumPy's max propagates NaN and an Inf is a maximum: the maxima are their own
            # finiteness probe
            hmax = np.abs(v.reshape(v.shape[0], -1)).max(axis=1)
            # per-batch means (not exact_merge): taken in _flush (_slim_means), batched
            self._pending.append((hmax, _NO_PROBE if exact else _MEAN_DUE))
            return
        flat = x.reshape([x.shape[0], -1])
        maxima = paddle.max(paddle.abs(flat), axis=1)
        if not exact:
            # PaddleSlim keeps float(paddle.mean(maxima)) per batch: computed here, on this
            # device, with Paddle's own mean (the reference emulates its CPU lane order)
            maxima = paddle.mean(maxima).reshape([1])
        self._pending.append((maxima, paddle.sum(flat)))

    def _flush(self) -> None:
        pending = _slim_means(self._take_pending())
        if not pending:
            return
        maxima, probes = _pending_on_host(pending)
        if not _probes_ok(maxima, probes):
            raise _probe_error(self._target, len(pending))
        if self._ref.rules.exact_merge:
            # exact, order-free sum: every pending batch's maxima in one hand-over
            self._ref.observe_sample_abs_max(maxima, batches=len(pending))
            return
        # PaddleSlim's per-batch means, in order (its list of Python floats)
        self._ref.observe_batch_means(maxima)


class _SearchLayer(RefquantObserverLayer):
    _loss = "mse"

    def _observe(self, x: paddle.Tensor) -> None:
        if self._ref.rules.exact_merge:  # an exact histogram; else PaddleSlim's losses
            _hist_observe(self, x, self._ref.histogram_bins, True)
            return
        v = dev.host_view(x)
        if v is not None:
            # CPU: the reference's own NumPy losses on the tensor's memory
            # (refquant.observers.search.slim_search_losses and the reference's bound)
            if not _view_finite(v):
                self._nonfinite(x)
            self._ref.observe(v)
            return
        fx = self._finite(x)
        if fx is None:
            self._host_observe(x)
            return
        self._slim_observe(fx)

    def _slim_losses(self, x: paddle.Tensor, scales: list[float], qmax: int) -> np.ndarray:
        """PaddleSlim's per-candidate losses, computed on the device with PaddleSlim's ops.

        The expressions are PaddleSlim's (``mse.py`` L66-76, ``emd.py`` L65-80), each
        candidate on the whole batch with a Python-float scale, so the losses are Paddle's
        own bits on this device; the 35 scalars come back in one transfer.
        """
        out = []
        if self._loss == "emd":
            mean_x, std_x = paddle.mean(x), dev.std(x)
        for scale in scales:
            q = paddle.clip(paddle.round(x / scale * qmax), -qmax - 1, qmax)
            y = q / qmax * scale
            if self._loss == "mse":
                out.append(((x - y) ** 2).mean())
            else:
                out.append(paddle.abs(mean_x - paddle.mean(y))
                           + paddle.abs(std_x - dev.std(y)))
        return paddle.stack(out).astype("float64").numpy().reshape(-1)

    def _slim_observe(self, x: paddle.Tensor) -> None:
        ref = self._ref
        flat = x.reshape([-1])
        if self._loss == "mse":
            am = float(paddle.max(paddle.abs(flat)))
        else:
            am = float(paddle.max(flat))  # signed max (quirk 19)
        batch_max = am
        am = 1e-8 if am == 0.0 else am
        qmax = 2 ** (ref.quant_bits - 1) - 1
        scales = slim_candidates(batch_max)
        if math.isfinite(am):
            losses = self._slim_losses(flat, scales, qmax)
        else:
            losses = np.full(len(scales), math.nan)
        n = int(flat.shape[0])
        if self._loss == "mse":
            bound = decision_bound(n, np.float32 if flat.dtype == paddle.float32
                                   else np.float64)
        else:
            u = 2.0**-24 if flat.dtype == paddle.float32 else 2.0**-53
            std = float(dev.std(flat)) if n > 1 else 0.0
            big = float(paddle.max(paddle.abs(flat)))
            bound = (f32_mean_bound(n, np.float32 if flat.dtype == paddle.float32
                                    else np.float64) + 8 * u) * (2.0 * std + big)
            bound = 0.0 if n < 2 else bound
        ref.observe_losses(batch_max, losses, bound=bound)


class MSEObserverLayer(_SearchLayer):
    """MSE search: exact histogram (canonical) or PaddleSlim's losses, on the device."""

    _ref_cls = _RefMSE
    _loss = "mse"


class EMDObserverLayer(_SearchLayer):
    """EMD search: exact histogram (canonical) or PaddleSlim's losses, on the device."""

    _ref_cls = _RefEMD
    _loss = "emd"


class _HistLayer(RefquantObserverLayer):
    _slim_uncalibrated = AssertionError

    def _symmetric(self) -> bool:
        return True

    def _observe(self, x: paddle.Tensor) -> None:
        if not self._ref.rules.exact_merge:
            self._host_observe(x)  # PaddleSlim's np.histogram state machine needs values
            return
        _hist_observe(self, x, self._ref.bins_count, self._symmetric())


class HistObserverLayer(_HistLayer):
    """Percentile observer; canonical: exact histogram counted on the device."""

    _ref_cls = _RefHist

    def _symmetric(self) -> bool:
        return bool(self._ref.symmetric)


class KLObserverLayer(_HistLayer):
    """KL observer; canonical: exact ``|x|`` histogram counted on the device."""

    _ref_cls = _RefKL


# ---------------------------------------------------------------------------------------
# weight observers
# ---------------------------------------------------------------------------------------
class AbsMaxChannelWiseWeightObserverLayer(RefquantObserverLayer):
    """Per-channel abs-max of a weight, reduced on the device."""

    _ref_cls = _RefAbsMaxCW
    _channel_wise = True

    def _observe(self, x: paddle.Tensor) -> None:
        ax = self._axis if self._axis is not None and self._axis >= 0 else None
        v = dev.host_view(x) if ax is not None and ax < x.ndim else None
        if v is not None:
            # CPU: per-channel max |x| with NumPy on the tensor's memory; NaN propagates
            # through the maximum and an Inf is one, so m is its own finiteness probe
            other = tuple(d for d in range(v.ndim) if d != ax)
            m = np.abs(v).max(axis=other) if other else np.abs(v)
            if not np.isfinite(m).all():
                self._nonfinite(x)
                self._host_observe(x)
                return
            self._ref.observe_channel_abs_max(m, tuple(v.shape))
            return
        fx = self._finite(x)
        if fx is None:
            self._host_observe(x)
            return
        if ax is None or ax >= fx.ndim:
            raise ValueError(f"axis {self._axis} is invalid for the weight of {self._target} "
                             f"with shape {list(fx.shape)}")
        m = dev.channel_abs_max(fx, ax)
        self._ref.observe_channel_abs_max(m, tuple(fx.shape))


class MSEChannelWiseWeightObserverLayer(RefquantObserverLayer):
    """Per-channel MSE search; the weight is copied to the host (exact float64 losses)."""

    _ref_cls = _RefMSECW
    _channel_wise = True

    def _observe(self, x: paddle.Tensor) -> None:
        self._host_observe(x)


class GroupWiseWeightObserverLayer(RefquantObserverLayer):
    """Group-wise abs-max of a 2-D ``[in, out]`` weight, reduced on the device."""

    _ref_cls = _RefGroupWise

    def __init__(self, layer: Any = None, quant_bits: int = 8, group_size: int = 128,
                 **kwargs: Any) -> None:
        super().__init__(layer, quant_bits, group_size=group_size, **kwargs)
        self._axis = 1

    def _observe(self, x: paddle.Tensor) -> None:
        ref = self._ref
        ref.check_weight(tuple(x.shape))  # the reference's shape rules and messages
        fx = self._finite(x)
        if fx is None:
            self._host_observe(x)
            return
        m = dev.group_abs_max(fx, ref.group_size)
        if m.dtype == np.float16:
            # exact widening: the device computes float16 abs where Paddle's CPU kernel
            # (and so the reference's paddleslim profile) refuses float16
            m = m.astype(np.float32)
        ref.observe_group_abs_max(m)


# ---------------------------------------------------------------------------------------
# factories
# ---------------------------------------------------------------------------------------
class _Factory(ObserverFactory):
    """A Paddle ``ObserverFactory`` whose arguments are checked when it is created."""

    _layer: type[RefquantObserverLayer] = RefquantObserverLayer
    _channel_wise = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        probe = dict(kwargs)
        if self._channel_wise:
            probe.pop("axis", None)
            ax = kwargs.get("axis")
            if ax is not None and (isinstance(ax, bool) or not isinstance(ax, int)):
                raise TypeError(f"axis must be an integer or None, got {ax!r}")
        check_signature(type(self).__name__, self._layer._ref_cls, args, probe)
        self._layer._ref_cls(*args, **probe)  # validates: ValueError/TypeError naming the arg

    def _get_class(self) -> type[RefquantObserverLayer]:
        return self._layer

    def _instance(self, layer: Any) -> RefquantObserverLayer:
        return self._layer(layer, *self.args, **self.kwargs)


def _factory(name: str, layer_cls: type[RefquantObserverLayer], doc: str) -> type[_Factory]:
    cls = type(name, (_Factory,), {"_layer": layer_cls, "__doc__": doc,
                                   "_channel_wise": layer_cls._channel_wise,
                                   "__module__": __name__})
    return cls


AbsmaxObserver = _factory(
    "AbsmaxObserver", AbsmaxObserverLayer,
    "AbsmaxObserver(quant_bits=8, *, profile='canonical', ignore_nonfinite=False).")
AVGObserver = _factory(
    "AVGObserver", AVGObserverLayer,
    "AVGObserver(quant_bits=8, *, profile='canonical', ignore_nonfinite=False).")
MSEObserver = _factory(
    "MSEObserver", MSEObserverLayer,
    "MSEObserver(quant_bits=8, *, profile='canonical', ignore_nonfinite=False, bins=None).")
EMDObserver = _factory(
    "EMDObserver", EMDObserverLayer,
    "EMDObserver(quant_bits=8, *, profile='canonical', ignore_nonfinite=False, bins=None).")
HistObserver = _factory(
    "HistObserver", HistObserverLayer,
    "HistObserver(quant_bits=8, bins_count=2048, percent=0.999, sign=True, symmetric=True, "
    "*, profile='canonical').")
KLObserver = _factory(
    "KLObserver", KLObserverLayer,
    "KLObserver(quant_bits=8, bins_count=2048, *, profile='canonical').")
AbsMaxChannelWiseWeightObserver = _factory(
    "AbsMaxChannelWiseWeightObserver", AbsMaxChannelWiseWeightObserverLayer,
    "AbsMaxChannelWiseWeightObserver(quant_bits=8, *, axis=None, profile='canonical').")
MSEChannelWiseWeightObserver = _factory(
    "MSEChannelWiseWeightObserver", MSEChannelWiseWeightObserverLayer,
    "MSEChannelWiseWeightObserver(quant_bits=8, *, axis=None, profile='canonical').")
GroupWiseWeightObserver = _factory(
    "GroupWiseWeightObserver", GroupWiseWeightObserverLayer,
    "GroupWiseWeightObserver(quant_bits=8, group_size=128, *, profile='canonical').")

#: PaddleSlim 2.6.0's name of the layer ``HistObserver`` builds
#: (``paddleslim/quant/observers/hist.py``): ``isinstance(layer, PercentHistObserverLayer)``
#: finds the percentile observers as it does on PaddleSlim.
PercentHistObserverLayer = HistObserverLayer
#: The factory of :data:`PercentHistObserverLayer`: another name of :class:`HistObserver`
#: (PaddleSlim 2.6.0 itself exports the factory as ``HistObserver`` only, so this alias is
#: importable but not in ``__all__``, where each factory ``X`` builds ``XLayer``).
PercentHistObserver = HistObserver
