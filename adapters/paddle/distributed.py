"""Distributed calibration: merge observer statistics across ranks with ``paddle.distributed``.

Data-parallel PTQ: every rank runs its own share of the calibration batches through its copy
of the quantized model, then calls :func:`sync_observers` (collectively, on every rank of the
group) before ``convert``::

    paddle.distributed.init_parallel_env()        # gloo on CPU, nccl on GPU
    qmodel = PTQ(cfg).quantize(model)
    for batch in my_shard_of_the_data:
        qmodel(batch)
    sync_observers(qmodel)                        # every rank: the same parameters
    infer = PTQ(cfg).convert(qmodel)

What is exchanged
-----------------
``profile="canonical"`` observers (every reference observer's state merges exactly, see
:meth:`refquant.observers.base.ObserverBase.merge`): the states are reduced so that every
rank ends with the state one process would have built from all the ranks' data, and so with
bit-identical :class:`~refquant.QParams`:

==============================  ===============================================================
observer                        collective
==============================  ===============================================================
AbsmaxObserver                  ``all_reduce(MAX)`` of ``max |x|`` (float64: exact)
MSE / EMD / Hist / KL           ``all_reduce(MAX)`` of ``(-min, max)``, then every rank folds its
                                exact histogram onto the union's grid (exact, whole bins) and
                                ``all_reduce(SUM)`` of the int64 counts and totals
AbsMaxChannelWise / GroupWise   ``all_reduce(MAX)`` of the per-channel / per-group maxima
AVGObserver, MSEChannelWise     ``all_gather_object`` of the reference observer (the state is
and any other                   an exact rational sum or a set of values, not a fixed-size
                                sum), merged in rank order with the reference ``merge``
==============================  ===============================================================

All reductions of one call are batched: one ``all_gather_object`` of a manifest, one MAX and
one SUM ``all_reduce`` and at most one more ``all_gather_object``, whatever the model size.

``profile="paddleslim"`` observers: PaddleSlim 2.6.0's observers
(``paddleslim/quant/observers/*.py``) never communicate -- each rank keeps the scale of its own
shard, so the ranks silently disagree -- and ``paddle.quantization.PTQ`` only refuses
``inplace=False`` when ``fleet.worker_num() > 2`` (``ptq.py``, ``_is_parallel_training``).
The only cross-rank rule PaddleSlim has is in its quanters: ``FakeQuanterChannelWiseAbsMaxObserver``
(``quanters/channel_wise_abs_max.py``) all-reduces its scale with ``ReduceOp.MAX`` on every
forward when ``paddle.distributed.is_initialized()``, and the LSQ+ quanters
(``lsq_act.py``, ``lsq_weight.py``) do the same for their scale (and beta) with
``reduce_type="max"``. The ``paddleslim`` profile follows that rule: each rank decides with
PaddleSlim's algorithm on its own data, then the decided scales are all-reduced with MAX (the
zero points, grids and conventions must agree). The synced parameters are held by the layer
(``layer.qparams()``); the reference observer keeps the rank's own state.

Weights (and other replicated inputs)
-------------------------------------
In data parallelism every rank holds the same weights, so weight observers are *checked*, not
merged: the ranks' weight QParams must be bit-identical (``SyncMismatchError`` otherwise,
e.g. when the ranks loaded different checkpoints). Merging them would count every weight
``world_size`` times (harmless for maxima, wrong for a percentile).

Tensor parallelism (:mod:`refquant.adapters.paddle.parallel`): a quantized parallel linear
says, per quanter, whether its input over the model-parallel group is *sharded* (merged over
that group, after the data-parallel merge), *replicated* (checked) or *local* (a channel-wise
scale of the channels the shard owns: nothing to exchange). :func:`sync_observers` does the
model-parallel pass by itself, using each layer's ``model_parallel_group``.

Faults
------
Every rank takes the same decision from the gathered manifests, so a fault raises the same
error on every rank and no rank goes on with different parameters:

* :class:`SyncMismatchError` (``ValueError``): the ranks' models have different observers, or
  observer configurations, or channel counts, or different replicated (weight) parameters;
* :class:`EmptyRankError`: an observer saw data on some ranks and none on others (a data
  sharding bug, usually); ``allow_empty_ranks=True`` accepts it (the merged statistics are
  still exact: an empty shard contributes nothing). An observer that saw no data on *any*
  rank is left alone (``convert`` raises ``NotCalibratedError`` for it, as in one process);
* :class:`SyncTimeoutError` (``TimeoutError``): a collective did not complete within
  ``timeout`` seconds -- a rank died, hangs, or never called :func:`sync_observers`. Each
  rank registers its arrival in Paddle's TCP store, so the message names the ranks that did
  not arrive;
* :class:`SyncError`: a collective failed (gloo reports a closed connection when a peer
  process exits), or an observer raised on some rank while deciding.

After a timeout or a failed collective the group is unusable (the collective may still be
pending, the communicator has lost a peer): later calls on it raise at once.

Each collective runs in a worker thread so that the calling thread can give up after
``timeout``; Paddle releases the GIL while it waits.

Sync after the last calibration batch: a canonical observer that observes more data after a
sync holds the merged statistics plus the new local data, and a second sync would count the
first merge again; :func:`sync_observers` refuses that (``SyncError``); to calibrate again,
quantize a fresh copy of the float model.
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import paddle
import paddle.distributed as dist
from paddle.quantization.base_observer import BaseObserver

from refquant.histogram import ExactHistogram
from refquant.observers.absmax import AbsmaxObserver as _RefAbsmax
from refquant.observers.channel_wise import AbsMaxChannelWiseWeightObserver as _RefAbsMaxCW
from refquant.observers.groupwise import GroupWiseWeightObserver as _RefGroupWise
from refquant.qparams import QParams

from .observers import RefquantObserverLayer

__all__ = [
    "sync_observers",
    "SyncResult",
    "SyncError",
    "SyncTimeoutError",
    "SyncMismatchError",
    "EmptyRankError",
    "observer_entries",
]

#: per group: how many sync calls this process made (keys of the arrival registry)
_SEQ: dict[tuple, int] = {}
#: groups whose collective timed out (the pending collective makes them unusable)
_POISONED: set[tuple] = set()
#: attribute set on a layer after a sync: the reference observer's batch count then
_SYNCED_ATTR = "_refquant_synced_batches"


class SyncError(RuntimeError):
    """Observer statistics could not be synchronised across ranks."""


class SyncTimeoutError(SyncError, TimeoutError):
    """A collective of :func:`sync_observers` did not complete within the timeout."""


class SyncMismatchError(SyncError, ValueError):
    """The ranks' models or replicated parameters differ."""


class EmptyRankError(SyncError):
    """An observer saw data on some ranks and none on others."""


@dataclass
class SyncResult:
    """What :func:`sync_observers` did on this rank.

    ``qparams``: ``{path: QParams}`` of every observer that has data after the sync (the same
    on every rank); ``modes``: ``{path: "merge" | "check" | "local"}`` for the data-parallel
    pass; ``world_size``: the data-parallel group size; ``mp_groups``: how many
    model-parallel groups were merged over.
    """

    qparams: dict[str, QParams] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    mp_groups: int = 0


# ---------------------------------------------------------------------------------------
# the observers of a model
# ---------------------------------------------------------------------------------------
@dataclass
class _Entry:
    path: str
    layer: RefquantObserverLayer
    role: str  # "activation" | "weight"
    parent: Any = None
    name: str = ""


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def observer_entries(model: paddle.nn.Layer) -> list[_Entry]:
    """Every refquant observer layer of ``model`` with its attribute path and role.

    A quanter listed by its parent's ``weights_to_quanters()`` is a *weight* observer; every
    other observer (activation quanters, :class:`ObserveWrapper` observers) an *activation*
    one. Raises ``TypeError`` for an observer that is not a refquant one (its statistics are
    unknown here).
    """
    if not isinstance(model, paddle.nn.Layer):
        raise TypeError(f"model must be a paddle.nn.Layer, got {type(model).__name__}")
    out: list[_Entry] = []
    foreign: list[str] = []

    def walk(layer: Any, path: str) -> None:
        wnames: set[str] = set()
        if hasattr(layer, "weights_to_quanters"):
            wnames = {q for _, q in layer.weights_to_quanters()}
        for name, child in layer.named_children():
            cpath = _join(path, name)
            if isinstance(child, RefquantObserverLayer):
                role = "weight" if name in wnames else "activation"
                out.append(_Entry(cpath, child, role, layer, name))
                continue
            if isinstance(child, BaseObserver):
                foreign.append(f"{cpath} ({type(child).__name__})")
                continue
            walk(child, cpath)

    if isinstance(model, RefquantObserverLayer):
        out.append(_Entry("", model, "activation"))
    else:
        walk(model, "")
    if foreign:
        raise TypeError(
            "sync_observers merges refquant observers only; these observers are not: "
            + ", ".join(foreign)
            + " (use refquant.adapters.paddle.observers instead)"
        )
    return out


def _mp_mode(entry: _Entry) -> str | None:
    """Mode of an observer over its parent's model-parallel group, if the parent has one."""
    modes = getattr(entry.parent, "mp_sync_modes", None)
    if modes is None:
        return None
    return dict(modes()).get(entry.name, "check")


def _mp_group(entry: _Entry) -> Any:
    return getattr(entry.parent, "model_parallel_group", None)


# ---------------------------------------------------------------------------------------
# the group, the arrival registry and collectives with a timeout
# ---------------------------------------------------------------------------------------
class _Comm:
    """A process group (``None``: the global one) with timeouts on its collectives."""

    def __init__(self, group: Any, timeout: float, what: str) -> None:
        self.group = group
        self.timeout = timeout
        self.what = what
        if group is None:
            self.nranks = dist.get_world_size()
            self.rank = dist.get_rank()
            self.ranks = list(range(self.nranks))
            self.key: tuple = ("global", self.nranks)
        else:
            self.nranks = int(group.nranks)
            self.rank = int(group.rank)
            self.ranks = list(group.ranks)
            self.key = (int(getattr(group, "id", -1)), tuple(self.ranks))
            if self.nranks > 1 and self.rank < 0:
                raise ValueError(
                    f"group must contain this process (global rank {dist.get_rank()}), got "
                    f"a group of ranks {self.ranks}"
                )
        self.seq = 0
        self._arrival: str | None = None

    @property
    def active(self) -> bool:
        return self.nranks > 1

    def start(self) -> None:
        """Register this rank's arrival in the TCP store (to name missing ranks later)."""
        if self.key in _POISONED:
            raise SyncTimeoutError(
                f"an earlier {self.what} on this group (ranks {self.ranks}) timed out or "
                "lost a rank; its collective may still be pending, so the group cannot be "
                "used again -- restart the job"
            )
        self.seq = _SEQ.get(self.key, 0) + 1
        _SEQ[self.key] = self.seq
        store = _store()
        if store is None:
            return
        base = f"refquant/sync/{self.key}/{self.seq}"
        try:
            store.add(f"{base}/{self.rank // 62}", 1 << (self.rank % 62))
            self._arrival = base
        except Exception:  # pragma: no cover - a store problem must not stop the sync
            self._arrival = None

    def missing(self) -> str:
        """The group ranks that did not register their arrival (best effort)."""
        store = _store()
        if store is None or self._arrival is None:
            return "unknown (no TCP store)"
        try:
            gone = []
            for chunk in range((self.nranks + 61) // 62):
                mask = int(store.add(f"{self._arrival}/{chunk}", 0))
                for b in range(62):
                    r = chunk * 62 + b
                    if r < self.nranks and not (mask >> b) & 1:
                        gone.append(self.ranks[r])
            return ", ".join(map(str, gone)) if gone else "none (all arrived)"
        except Exception as exc:  # the store lives in rank 0's process
            return f"unknown (the TCP store is unreachable: {exc}; rank 0 may be dead)"

    def run(self, fn: Any, step: str) -> Any:
        """Run the collective ``fn()`` in a worker thread; give up after ``timeout``."""
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                box["error"] = exc

        th = threading.Thread(target=target, name=f"refquant-sync-{step}", daemon=True)
        th.start()
        th.join(self.timeout)
        if th.is_alive():
            _POISONED.add(self.key)
            raise SyncTimeoutError(
                f"{self.what}: collective '{step}' did not complete within {self.timeout:g} s "
                f"on rank {self.rank} of group {self.ranks}; ranks that never called "
                f"sync_observers: {self.missing()}. A rank died, hangs, or skipped the call "
                "(every rank of the group must call it the same number of times)."
            )
        if "error" in box:
            exc = box["error"]
            _POISONED.add(self.key)  # a failed collective leaves the communicator broken
            raise SyncError(
                f"{self.what}: collective '{step}' failed on rank {self.rank} of group "
                f"{self.ranks} ({type(exc).__name__}: {exc}); a peer process probably exited. "
                f"Ranks that never called sync_observers: {self.missing()}"
            ) from exc
        return box.get("value")

    # -- collectives ----------------------------------------------------------------------
    def all_gather_object(self, obj: Any, step: str) -> list[Any]:
        def fn() -> list[Any]:
            out: list[Any] = []
            dist.all_gather_object(out, obj, group=self.group)
            return out

        return list(self.run(fn, step))

    def all_reduce(self, values: np.ndarray, op: Any, step: str) -> np.ndarray:
        if values.size == 0:
            return values
        t = paddle.to_tensor(values)

        def fn() -> np.ndarray:
            dist.all_reduce(t, op=op, group=self.group)
            return t.numpy()

        return np.asarray(self.run(fn, step), dtype=values.dtype)


def _store() -> Any:
    try:
        from paddle.distributed import collective

        store = getattr(collective, "_default_store", None)
        return store
    except Exception:  # pragma: no cover
        return None


def _default_group_comm(group: Any, timeout: float, what: str) -> _Comm:
    if not dist.is_initialized() or dist.get_world_size() < 2:
        if group is not None and int(group.nranks) > 1:
            raise ValueError("group has several ranks but paddle.distributed is not initialized")
        comm = _Comm.__new__(_Comm)
        comm.group, comm.timeout, comm.what = None, timeout, what
        comm.nranks, comm.rank, comm.ranks, comm.key = 1, 0, [0], ("single",)
        comm.seq, comm._arrival = 0, None
        return comm
    return _Comm(group, timeout, what)


# ---------------------------------------------------------------------------------------
# per-observer state: the manifest
# ---------------------------------------------------------------------------------------
def _hist_of(ref: Any) -> ExactHistogram | None:
    """A copy of the exact histogram an observer keeps (``state()['histogram']``), if any."""
    h = ref.state().get("histogram")
    return h if isinstance(h, ExactHistogram) else None


def _qp_digest(qp: QParams) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(qp.scale, np.float32).tobytes())
    h.update(np.ascontiguousarray(qp.zero_point, np.int64).tobytes())
    h.update(repr((qp.scale.shape, qp.qmin, qp.qmax, qp.bits, qp.axis, qp.convention))
             .encode())
    return h.hexdigest()


def _qp_meta(qp: QParams) -> tuple:
    """Everything of a QParams that MAX-reduced scales must share across ranks."""
    return (qp.scale.shape, np.asarray(qp.zero_point).tolist(), qp.qmin, qp.qmax, qp.bits,
            qp.axis, qp.convention)


def _describe_cfg(layer: RefquantObserverLayer) -> str:
    ref = layer.reference
    conf = dict(ref.config(), ignore_nonfinite=bool(getattr(ref, "ignore_nonfinite", False)))
    cfg = ", ".join(f"{k}={v!r}" for k, v in sorted(conf.items()))
    return f"{type(layer).__name__}({cfg})"


def _status(layer: RefquantObserverLayer) -> str:
    """``fresh`` (never synced), ``synced`` (synced, nothing observed since) or ``stale``."""
    synced = getattr(layer, _SYNCED_ATTR, None)
    if synced is None:
        return "fresh"
    return "synced" if synced == layer.reference.num_batches else "stale"


def _manifest_item(e: _Entry, mode: str) -> dict[str, Any]:
    layer = e.layer
    layer.flush()  # statistics kept on the device (abs-max, AVG) go to the reference
    ref = layer.reference
    item: dict[str, Any] = {
        "path": e.path,
        "mode": mode,
        "config": _describe_cfg(layer),
        "batches": int(ref.num_batches),
        "status": _status(layer),
        "error": None,
    }
    if item["status"] == "stale" and ref.rules.exact_merge and mode != "local":
        item["error"] = (
            "observed more data after an earlier sync_observers call (the merged state plus "
            "new local data cannot be merged again without double counting); sync once, "
            "after the last calibration batch (to calibrate again, quantize a fresh copy of "
            "the float model)"
        )
    if ref.num_batches == 0 or mode == "local":
        return item
    kind = next(k for k in _KINDS if k.handles(ref, mode))
    item["kind"] = kind.name
    item.update(kind.describe(layer))
    return item


# ---------------------------------------------------------------------------------------
# sync kinds: how each kind of observer state is exchanged
# ---------------------------------------------------------------------------------------
class _SyncKind:
    """One observer's share of a sync: its manifest fields, its values in the MAX and SUM
    reductions and in the object gather, and how the results become its state.

    Built from the gathered manifests, so every rank has the same plan: ``items`` are the
    ranks' manifest entries (group order), ``donor`` the first rank with data.
    """

    #: the kind's name in the manifest (the ranks must agree on it)
    name: ClassVar[str]

    def __init__(self, entry: _Entry, items: list[dict[str, Any]], donor: int,
                 what: str) -> None:
        self.layer = entry.layer
        self.items = items
        self.donor = donor
        self.what = what
        self.some_empty = any(it["batches"] == 0 for it in items)
        self.nmax = 0  # float64 values in the MAX reduction
        self.nsum = 0  # int64 values in the SUM reduction
        self.gathers = False  # takes part in the object gather

    @classmethod
    def handles(cls, ref: Any, mode: str) -> bool:
        """Whether this kind syncs ``ref`` (an observer with data) in ``mode``."""
        raise NotImplementedError

    @classmethod
    def describe(cls, layer: RefquantObserverLayer) -> dict[str, Any]:
        """The kind's own manifest fields for an observer with data (default: none)."""
        return {}

    @classmethod
    def check_ranks(cls, what: str, path: str, seen: list[dict[str, Any]],
                    ranks: list[int]) -> None:
        """Raise when the manifests ``seen`` of the ``ranks`` with data do not fit together."""

    def max_part(self) -> np.ndarray:
        """This rank's ``nmax`` values for the MAX reduction (``-inf`` where it has no data)."""
        return np.zeros(0, np.float64)

    def sum_part(self, maxima: np.ndarray) -> np.ndarray:
        """This rank's ``nsum`` values for the SUM reduction, given the reduced maxima."""
        return np.zeros(0, np.int64)

    def gather_part(self, rank: int) -> Any:
        """What rank ``rank`` sends in the object gather (``None``: nothing)."""
        return None

    def apply(self, maxima: np.ndarray, sums: np.ndarray, gathered: list[Any] | None) -> None:
        """Make the reduced values (and the gathered objects, one per rank) the state."""
        raise NotImplementedError


class _DecidedKind(_SyncKind):
    """Kinds that compare or reduce the ranks' decided QParams (digest and meta in the
    manifest); a rank without data adopts the donor's observer."""

    def __init__(self, entry: _Entry, items: list[dict[str, Any]], donor: int,
                 what: str) -> None:
        super().__init__(entry, items, donor, what)
        self.gathers = self.some_empty

    @classmethod
    def describe(cls, layer: RefquantObserverLayer) -> dict[str, Any]:
        try:
            qp = layer.qparams()
            return {"digest": _qp_digest(qp), "meta": _qp_meta(qp)}
        except Exception as exc:  # reported on every rank, raised on every rank
            return {"error": f"{type(exc).__name__}: {exc}"}

    def gather_part(self, rank: int) -> Any:
        ref = self.layer.reference
        return ref if rank == self.donor and ref.num_batches > 0 else None

    def _adopt(self, gathered: list[Any] | None) -> None:
        if self.layer.reference.num_batches == 0 and gathered is not None:
            self.layer.set_reference(copy.deepcopy(gathered[self.donor]))


class _ReplicatedCheck(_DecidedKind):
    """Replicated data (weights, inputs every rank holds): the ranks' QParams must be
    bit-identical; nothing is reduced."""

    name = "check"

    @classmethod
    def handles(cls, ref: Any, mode: str) -> bool:
        return mode == "check"

    @classmethod
    def check_ranks(cls, what: str, path: str, seen: list[dict[str, Any]],
                    ranks: list[int]) -> None:
        if len({it["digest"] for it in seen}) > 1:
            raise SyncMismatchError(
                f"{what}: observer '{path}' sees replicated data (a weight, or an input "
                "that every rank of this group holds) but its parameters differ across "
                f"ranks {ranks}: the ranks hold different weights or inputs (different "
                "checkpoints or initialisations?)"
            )

    def apply(self, maxima: np.ndarray, sums: np.ndarray, gathered: list[Any] | None) -> None:
        self._adopt(gathered)


class _ScaleMax(_DecidedKind):
    """Order-dependent statistics (rules without ``exact_merge``): each rank decides on its
    own data, then the decided scales are reduced with MAX (PaddleSlim's quanters' rule);
    the layer holds the result (``pin_qparams``), the reference keeps the rank's state."""

    name = "scale"

    def __init__(self, entry: _Entry, items: list[dict[str, Any]], donor: int,
                 what: str) -> None:
        super().__init__(entry, items, donor, what)
        self.nmax = int(np.prod(items[donor]["meta"][0], dtype=np.int64))

    @classmethod
    def handles(cls, ref: Any, mode: str) -> bool:
        return not ref.rules.exact_merge

    @classmethod
    def check_ranks(cls, what: str, path: str, seen: list[dict[str, Any]],
                    ranks: list[int]) -> None:
        if len({repr(it["meta"]) for it in seen}) > 1:
            raise SyncMismatchError(
                f"{what}: observer '{path}' ({seen[0]['config']}) decided different zero "
                "points, grids or scale shapes on different ranks, so a MAX of the scales "
                "has no meaning: "
                + "; ".join(f"rank {r}: {it['meta']!r}" for r, it in zip(ranks, seen, strict=True))
            )

    def max_part(self) -> np.ndarray:
        if self.layer.reference.num_batches == 0:
            return np.full(self.nmax, -math.inf)
        return np.asarray(self.layer.qparams().scale, np.float64).ravel()

    def apply(self, maxima: np.ndarray, sums: np.ndarray, gathered: list[Any] | None) -> None:
        self._adopt(gathered)
        local = self.layer.qparams()
        scale = maxima.astype(np.float32).reshape(local.scale.shape)
        self.layer.pin_qparams(QParams(scale, local.zero_point, local.qmin, local.qmax,
                                       local.bits, local.axis, None, local.convention,
                                       extra={"local_scale": local.scale, "synced": "max"}))


class _MergedKind(_SyncKind):
    """Exact statistics (rules with ``exact_merge``): the reduced statistics stand for every
    rank's batches, so the reference is reset and ingests them."""

    #: the reference observer classes whose state the kind reduces
    observers: ClassVar[tuple[type, ...]] = ()

    @classmethod
    def handles(cls, ref: Any, mode: str) -> bool:
        return isinstance(ref, cls.observers)

    def apply(self, maxima: np.ndarray, sums: np.ndarray, gathered: list[Any] | None) -> None:
        ref = self.layer.reference
        self._ingest(ref, maxima, sums, gathered, sum(it["batches"] for it in self.items))
        self.layer.invalidate_qparams()

    def _ingest(self, ref: Any, maxima: np.ndarray, sums: np.ndarray,
                gathered: list[Any] | None, batches: int) -> None:
        raise NotImplementedError


class _HistogramMerge(_MergedKind):
    """Exact histograms (MSE, EMD, Hist, KL): MAX of ``(-min, max)`` gives the union range,
    every rank folds its histogram onto that grid (whole bins, exact) and the counts and
    totals are summed."""

    name = "hist"

    def __init__(self, entry: _Entry, items: list[dict[str, Any]], donor: int,
                 what: str) -> None:
        super().__init__(entry, items, donor, what)
        h = _hist_of(self.layer.reference)
        assert h is not None
        self.nmax, self.nsum = 2, h.bins + 2
        self.grid: ExactHistogram | None = None

    @classmethod
    def handles(cls, ref: Any, mode: str) -> bool:
        return _hist_of(ref) is not None

    def max_part(self) -> np.ndarray:
        h = _hist_of(self.layer.reference)
        assert h is not None  # empty: min = +inf, max = -inf
        return np.array([-h.min, h.max], np.float64)

    def sum_part(self, maxima: np.ndarray) -> np.ndarray:
        g = _hist_of(self.layer.reference)  # a copy (state())
        assert g is not None
        lo, hi = -float(maxima[0]) + 0.0, float(maxima[1]) + 0.0
        if lo <= hi:  # else no rank has a finite value: nothing to fold
            g.regrid(lo, hi)
        self.grid = g
        return np.concatenate([g.counts, [g.total, 0]]).astype(np.int64)

    def _ingest(self, ref: Any, maxima: np.ndarray, sums: np.ndarray,
                gathered: list[Any] | None, batches: int) -> None:
        grid = self.grid
        assert grid is not None
        n = grid.bins
        counts = sums[:n].copy()
        if int(sums[n]) != int(counts.sum()):  # pragma: no cover - collective bug
            raise SyncError(f"{self.what}: histogram totals do not add up")
        merged = ExactHistogram.from_counts(counts, exponent=grid.exponent,
                                            offset=grid.offset, min=grid.min,
                                            max=grid.max, symmetric=grid.symmetric)
        ref.reset()
        ref.observe_histogram(merged, batches=batches)


class _AbsMaxReduce(_MergedKind):
    """Per-tensor abs-max: MAX of ``max |x|`` (float64 holds every float32 exactly)."""

    name = "absmax"
    observers = (_RefAbsmax,)

    def __init__(self, entry: _Entry, items: list[dict[str, Any]], donor: int,
                 what: str) -> None:
        super().__init__(entry, items, donor, what)
        self.nmax = 1

    def max_part(self) -> np.ndarray:
        ref = self.layer.reference
        if ref.num_batches == 0:
            return np.full(1, -math.inf)
        return np.array([ref.state()["abs_max"]], np.float64)

    def _ingest(self, ref: Any, maxima: np.ndarray, sums: np.ndarray,
                gathered: list[Any] | None, batches: int) -> None:
        ref.reset()
        ref.observe_abs_max(float(maxima[0]), batches=batches)


class _MaximaReduce(_MergedKind):
    """An array of maxima (per channel, per group): elementwise MAX; the ranks must agree
    on its shape (and axis)."""

    def __init__(self, entry: _Entry, items: list[dict[str, Any]], donor: int,
                 what: str) -> None:
        super().__init__(entry, items, donor, what)
        self.shape = tuple(items[donor]["shape"])
        self.nmax = int(np.prod(self.shape, dtype=np.int64))

    @classmethod
    def describe(cls, layer: RefquantObserverLayer) -> dict[str, Any]:
        st = layer.reference.state()
        m = st["abs_max"]
        return {"shape": None if m is None else tuple(np.shape(m)), "axis": st.get("axis"),
                "ndim": st.get("ndim")}

    def max_part(self) -> np.ndarray:
        ref = self.layer.reference
        if ref.num_batches == 0:
            return np.full(self.nmax, -math.inf)
        return np.asarray(ref.state()["abs_max"], np.float64).ravel()


class _ChannelMaxReduce(_MaximaReduce):
    """Per-channel abs-max of a weight (AbsMaxChannelWise)."""

    name = "channelmax"
    observers = (_RefAbsMaxCW,)

    def _ingest(self, ref: Any, maxima: np.ndarray, sums: np.ndarray,
                gathered: list[Any] | None, batches: int) -> None:
        donor = self.items[self.donor]
        batch_shape = [1] * int(donor["ndim"])
        batch_shape[int(donor["axis"])] = self.shape[0]
        ref.reset()
        ref.observe_channel_abs_max(maxima.reshape(self.shape).copy(), tuple(batch_shape),
                                    batches=batches)


class _GroupMaxReduce(_MaximaReduce):
    """Per-group abs-max of a weight (GroupWise)."""

    name = "groupmax"
    observers = (_RefGroupWise,)

    def _ingest(self, ref: Any, maxima: np.ndarray, sums: np.ndarray,
                gathered: list[Any] | None, batches: int) -> None:
        ref.reset()
        ref.observe_group_abs_max(maxima.reshape(self.shape).copy(), batches=batches)


class _ObjectMerge(_MergedKind):
    """Any other exact state (AVG's exact sum, MSE channel-wise's values): every rank's
    reference observer is gathered and merged in rank order with its ``merge``."""

    name = "object"

    def __init__(self, entry: _Entry, items: list[dict[str, Any]], donor: int,
                 what: str) -> None:
        super().__init__(entry, items, donor, what)
        self.gathers = True

    @classmethod
    def handles(cls, ref: Any, mode: str) -> bool:
        return True

    def gather_part(self, rank: int) -> Any:
        ref = self.layer.reference
        return ref if ref.num_batches > 0 else None

    def _ingest(self, ref: Any, maxima: np.ndarray, sums: np.ndarray,
                gathered: list[Any] | None, batches: int) -> None:
        assert gathered is not None
        ref.reset()
        for other in gathered:
            if other is not None:
                ref.merge(other)


#: every kind, in the order an observer is matched against them (the first that handles
#: it; :class:`_ObjectMerge` takes whatever is left)
_KINDS: tuple[type[_SyncKind], ...] = (
    _ReplicatedCheck, _ScaleMax, _HistogramMerge, _AbsMaxReduce, _ChannelMaxReduce,
    _GroupMaxReduce, _ObjectMerge,
)
_KIND_BY_NAME: dict[str, type[_SyncKind]] = {k.name: k for k in _KINDS}


def _validate(manifests: list[list[dict]], comm: _Comm, allow_empty: bool) -> None:
    """Raise the same error on every rank when the ranks' manifests are incompatible."""
    what = comm.what
    ref = manifests[0]
    for r, man in enumerate(manifests[1:], start=1):
        paths0 = [m["path"] for m in ref]
        paths = [m["path"] for m in man]
        if paths0 != paths:
            only0 = sorted(set(paths0) - set(paths))
            only1 = sorted(set(paths) - set(paths0))
            raise SyncMismatchError(
                f"{what}: the ranks' models have different observers: rank {comm.ranks[0]} has "
                f"{len(paths0)}, rank {comm.ranks[r]} has {len(paths)} (only on rank "
                f"{comm.ranks[0]}: {only0[:5]}; only on rank {comm.ranks[r]}: {only1[:5]})"
            )
        for a, b in zip(ref, man, strict=True):
            if (a["config"], a["mode"]) != (b["config"], b["mode"]):
                raise SyncMismatchError(
                    f"{what}: observer '{a['path'] or '<root>'}' is configured differently: "
                    f"rank {comm.ranks[0]} has {a['config']}, rank {comm.ranks[r]} has "
                    f"{b['config']}"
                )
    for i, first in enumerate(ref):
        items = [man[i] for man in manifests]
        path = first["path"] or "<root>"
        for r, it in enumerate(items):
            if it["error"] is not None:
                raise SyncError(f"{what}: observer '{path}' on rank {comm.ranks[r]}: "
                                f"{it['error']}")
        states = {it["status"] == "fresh" for it in items}
        if len(states) > 1:
            raise SyncError(
                f"{what}: observer '{path}' was already synced on some ranks and not on others "
                "(every rank must call sync_observers the same number of times)"
            )
        full = [r for r, it in enumerate(items) if it["batches"] > 0]
        if not full or first["mode"] == "local":
            continue
        empty = [comm.ranks[r] for r, it in enumerate(items) if it["batches"] == 0]
        if empty and not allow_empty:
            raise EmptyRankError(
                f"{what}: observer '{path}' ({first['config']}) observed no data on rank(s) "
                f"{empty} but did on rank(s) {[comm.ranks[r] for r in full]}; every rank "
                "should calibrate on its share of the data (pass allow_empty_ranks=True to "
                "merge anyway: an empty shard contributes nothing)"
            )
        seen = [items[r] for r in full]
        for key in ("kind", "shape", "axis"):
            vals = {repr(it.get(key)) for it in seen}
            if len(vals) > 1:
                raise SyncMismatchError(
                    f"{what}: observer '{path}' has different {key} across ranks: "
                    + "; ".join(f"rank {comm.ranks[r]}: {items[r].get(key)!r}" for r in full)
                )
        _KIND_BY_NAME[seen[0]["kind"]].check_ranks(what, path, seen,
                                                   [comm.ranks[r] for r in full])


def _plan(entries: list[tuple[_Entry, str]], manifests: list[list[dict]],
          what: str) -> list[_SyncKind]:
    """The sync kind of every observer that has something to exchange (same on every rank)."""
    kinds = []
    for i, (e, mode) in enumerate(entries):
        items = [man[i] for man in manifests]
        full = [r for r, it in enumerate(items) if it["batches"] > 0]
        if not full or mode == "local" or all(it["status"] == "synced" for it in items):
            continue
        kinds.append(_KIND_BY_NAME[items[full[0]]["kind"]](e, items, full[0], what))
    return kinds


def _split(values: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    return np.split(values, np.cumsum(sizes)[:-1])


def _sync_entries(entries: list[tuple[_Entry, str]], comm: _Comm, allow_empty: bool) -> None:
    """The collective part for one group: manifest, MAX and SUM reductions, object gather,
    then every observer's kind applies the results (the same computation on every rank)."""
    comm.start()
    manifest = [_manifest_item(e, mode) for e, mode in entries]
    manifests = comm.all_gather_object(manifest, "manifest")
    _validate(manifests, comm, allow_empty)
    kinds = _plan(entries, manifests, comm.what)
    if not kinds:
        return
    mx = comm.all_reduce(np.concatenate([k.max_part() for k in kinds]), dist.ReduceOp.MAX,
                         "all_reduce max")
    maxima = _split(mx, [k.nmax for k in kinds])
    parts = [k.sum_part(m) for k, m in zip(kinds, maxima, strict=True)]
    sm = comm.all_reduce(np.concatenate(parts), dist.ReduceOp.SUM, "all_reduce sum")
    sums = _split(sm, [k.nsum for k in kinds])
    sent = [k.gather_part(comm.rank) for k in kinds if k.gathers]
    gathered = comm.all_gather_object(sent, "all_gather objects") if sent else []
    per_kind = iter([list(c) for c in zip(*gathered, strict=True)])  # over ranks, per kind
    for k, m, s in zip(kinds, maxima, sums, strict=True):
        k.apply(m, s, next(per_kind) if k.gathers else None)


# ---------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------
def sync_observers(model: paddle.nn.Layer, group: Any = None, timeout: float = 600.0,
                   allow_empty_ranks: bool = False) -> SyncResult:
    """Merge every observer's statistics across the data-parallel ``group``.

    Call it on every rank of ``group`` (``None``: the global group of
    ``paddle.distributed.init_parallel_env()``; with fleet's hybrid parallelism pass
    ``hcg.get_data_parallel_group()``) after the last calibration batch and before
    ``convert``. Canonical observers end with the statistics one process would have
    gathered from all the ranks' data (bit-identical QParams on every rank); ``paddleslim``
    ones with PaddleSlim's cross-rank rule (MAX of the scales). Weight observers are checked
    to agree. Quantized tensor-parallel layers are then merged over their model-parallel
    group. See the module docstring for what is exchanged and for the errors.

    Without an initialised ``paddle.distributed`` (one process), nothing is exchanged.

    Parameters
    ----------
    model:
        The model returned by ``PTQ.quantize`` (calibrated on this rank's data).
    group:
        The data-parallel process group; ``None`` for the global group.
    timeout:
        Seconds each collective may take before :class:`SyncTimeoutError`.
    allow_empty_ranks:
        Accept observers that saw no data on some ranks (default: :class:`EmptyRankError`).

    Returns a :class:`SyncResult` (``qparams`` per observer path). Arguments are checked
    before anything is exchanged: ``TypeError`` / ``ValueError`` naming the argument, and
    ``ValueError`` for a model without any refquant observer (a float or converted model).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive finite number of seconds, got {timeout!r}")
    if group is not None and not all(hasattr(group, a) for a in ("nranks", "rank", "ranks")):
        raise TypeError("group must be a paddle.distributed process group (nranks, rank, ranks; "
                        f"e.g. hcg.get_data_parallel_group()) or None, got {group!r}")
    if not isinstance(allow_empty_ranks, (bool, np.bool_)):
        raise TypeError(f"allow_empty_ranks must be True or False, got {allow_empty_ranks!r}")
    entries = observer_entries(model)
    if not entries:
        raise ValueError(
            f"model ({type(model).__name__}) holds no refquant observer, so there is nothing to "
            "sync: pass the model returned by PTQ.quantize, before convert")
    result = SyncResult()
    comm = _default_group_comm(group, float(timeout), "sync_observers (data parallel)")
    result.world_size = comm.nranks
    dp = [(e, "check" if e.role == "weight" else "merge") for e in entries]
    for e, mode in dp:
        result.modes[e.path] = mode
    if comm.active:
        _sync_entries(dp, comm, bool(allow_empty_ranks))
    # model-parallel pass, one per distinct model-parallel group
    by_group: dict[tuple, tuple[Any, list[tuple[_Entry, str]]]] = {}
    for e in entries:
        mp_mode = _mp_mode(e)
        grp = _mp_group(e)
        if mp_mode is None or grp is None or int(getattr(grp, "nranks", 1)) < 2:
            continue
        key = (int(getattr(grp, "id", -1)), tuple(grp.ranks))
        by_group.setdefault(key, (grp, []))[1].append((e, mp_mode))
    for grp, items in by_group.values():
        mcomm = _Comm(grp, float(timeout), "sync_observers (model parallel)")
        _sync_entries(items, mcomm, bool(allow_empty_ranks))
        result.mp_groups += 1
    for e in entries:
        if e.layer.reference.num_batches > 0:
            setattr(e.layer, _SYNCED_ATTR, e.layer.reference.num_batches)
            result.qparams[e.path] = e.layer.qparams()
    return result
