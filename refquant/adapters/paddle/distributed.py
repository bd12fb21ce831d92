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

The collective runs in a helper thread so that the calling thread can give up after
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
from typing import Any

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
        """Run the collective ``fn()`` in a helper thread; give up after ``timeout``."""
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
# per-observer state: manifest, contributions, application
# ---------------------------------------------------------------------------------------
def _hist_of(ref: Any) -> ExactHistogram | None:
    """A copy of a canonical histogram observer's ExactHistogram (``state()['histogram']``)."""
    if ref.profile != "canonical":
        return None
    h = ref.state().get("histogram")
    return h if isinstance(h, ExactHistogram) else None


def _kind(ref: Any) -> str:
    """How a canonical reference observer's state is reduced."""
    if _hist_of(ref) is not None:
        return "hist"
    if isinstance(ref, _RefAbsmax):
        return "absmax"
    if isinstance(ref, (_RefAbsMaxCW, _RefGroupWise)):
        return "maxarray"
    return "object"


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
    if item["status"] == "stale" and ref.profile == "canonical" and mode != "local":
        item["error"] = (
            "observed more data after an earlier sync_observers call (the merged state plus "
            "new local data cannot be merged again without double counting); sync once, "
            "after the last calibration batch (to calibrate again, quantize a fresh copy of "
            "the float model)"
        )
    if ref.num_batches == 0 or mode == "local":
        return item
    kind = _kind(ref) if ref.profile == "canonical" else "scale"
    if mode == "check":
        kind = "check"
    item["kind"] = kind
    if kind == "maxarray":
        st = ref.state()
        m = st["abs_max"]
        item["shape"] = None if m is None else tuple(np.shape(m))
        item["axis"] = st.get("axis")
        item["ndim"] = st.get("ndim")
    if kind in ("check", "scale"):
        try:
            qp = layer.qparams()
            item["digest"] = _qp_digest(qp)
            item["meta"] = _qp_meta(qp)
        except Exception as exc:  # reported on every rank, raised on every rank
            item["error"] = f"{type(exc).__name__}: {exc}"
    return item


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
        if seen[0]["kind"] == "check":
            if len({it["digest"] for it in seen}) > 1:
                raise SyncMismatchError(
                    f"{what}: observer '{path}' sees replicated data (a weight, or an input "
                    "that every rank of this group holds) but its parameters differ across "
                    f"ranks {[comm.ranks[r] for r in full]}: the ranks hold different weights "
                    "or inputs (different checkpoints or initialisations?)"
                )
        elif seen[0]["kind"] == "scale" and len({repr(it["meta"]) for it in seen}) > 1:
            raise SyncMismatchError(
                f"{what}: observer '{path}' (profile='paddleslim') decided different zero "
                "points, grids or scale shapes on different ranks, so a MAX of the scales "
                "has no meaning: "
                + "; ".join(f"rank {comm.ranks[r]}: {items[r]['meta']!r}" for r in full)
            )


@dataclass
class _Step:
    """One observer's share of the collectives (identical on every rank)."""

    entry: _Entry
    kind: str
    items: list[dict]
    donor: int  # first group rank (index) that has data
    nmax: int = 0  # float64 values in the MAX reduction
    nsum: int = 0  # int64 values in the SUM reduction
    obj: bool = False  # takes part in the object gather
    grid: ExactHistogram | None = None


def _plan(entries: list[tuple[_Entry, str]], manifests: list[list[dict]],
          nranks: int) -> list[_Step]:
    steps = []
    for i, (e, mode) in enumerate(entries):
        items = [man[i] for man in manifests]
        full = [r for r, it in enumerate(items) if it["batches"] > 0]
        if not full or mode == "local" or all(it["status"] == "synced" for it in items):
            continue
        donor = full[0]
        kind = items[donor]["kind"]
        step = _Step(e, kind, items, donor)
        some_empty = len(full) < nranks
        if kind == "check":
            step.obj = some_empty
        elif kind == "scale":
            step.nmax = int(np.prod(items[donor]["meta"][0], dtype=np.int64))
            step.obj = some_empty
        elif kind == "absmax":
            step.nmax = 1
        elif kind == "maxarray":
            step.nmax = int(np.prod(items[donor]["shape"], dtype=np.int64))
        elif kind == "hist":
            step.nmax = 2
            h = _hist_of(e.layer.reference)
            assert h is not None
            step.nsum = h.bins + 2
        else:
            step.obj = True
        steps.append(step)
    return steps


def _max_part(step: _Step) -> np.ndarray:
    """This rank's contribution to the MAX reduction (``-inf`` where it has no data)."""
    ref = step.entry.layer.reference
    if step.kind == "hist":
        h = _hist_of(ref)
        assert h is not None  # empty: min = +inf, max = -inf
        return np.array([-h.min, h.max], np.float64)
    if ref.num_batches == 0:
        return np.full(step.nmax, -math.inf)
    if step.kind == "scale":
        return np.asarray(step.entry.layer.qparams().scale, np.float64).ravel()
    if step.kind == "absmax":
        return np.array([ref.state()["abs_max"]], np.float64)
    return np.asarray(ref.state()["abs_max"], np.float64).ravel()  # maxarray


def _sync_entries(entries: list[tuple[_Entry, str]], comm: _Comm, allow_empty: bool) -> None:
    """The collective part for one group: manifest, reductions, application."""
    comm.start()
    manifest = [_manifest_item(e, mode) for e, mode in entries]
    manifests = comm.all_gather_object(manifest, "manifest")
    _validate(manifests, comm, allow_empty)
    steps = _plan(entries, manifests, comm.nranks)
    if not steps:
        return

    parts = [_max_part(s) for s in steps if s.nmax]
    mx = comm.all_reduce(np.concatenate(parts) if parts else np.zeros(0),
                         dist.ReduceOp.MAX, "all_reduce max")
    # histograms: fold onto the grid of the union range (exact), then sum the counts
    pos, sums = 0, []
    maxima: list[np.ndarray] = []
    for s in steps:
        maxima.append(mx[pos:pos + s.nmax])
        pos += s.nmax
        if s.kind == "hist":
            h0 = _hist_of(s.entry.layer.reference)
            assert h0 is not None
            lo, hi = -float(maxima[-1][0]) + 0.0, float(maxima[-1][1]) + 0.0
            g = h0  # already a copy (state())
            if lo <= hi:  # else no rank has a finite value: nothing to fold
                g.regrid(lo, hi)
            s.grid = g
            sums.append(np.concatenate([g.counts, [g.total, 0]]).astype(np.int64))
    sm = comm.all_reduce(np.concatenate(sums) if sums else np.zeros(0, np.int64),
                         dist.ReduceOp.SUM, "all_reduce sum")
    objects = [s.entry.layer.reference if s.entry.layer.reference.num_batches > 0 and (
        s.kind == "object" or comm.rank == s.donor) else None for s in steps if s.obj]
    gathered = comm.all_gather_object(objects, "all_gather objects") if objects else []

    # -- apply: the same computation on every rank ---------------------------------------
    spos, opos = 0, 0
    for s, m in zip(steps, maxima, strict=True):
        layer, ref = s.entry.layer, s.entry.layer.reference
        src = None
        if s.obj:
            src = [gathered[r][opos] for r in range(comm.nranks)]
            opos += 1
        if s.kind == "check":
            if ref.num_batches == 0 and src is not None:
                layer.set_reference(copy.deepcopy(src[s.donor]))  # replicated: donor's state
            continue
        if s.kind == "scale":
            if ref.num_batches == 0 and src is not None:
                layer.set_reference(copy.deepcopy(src[s.donor]))
            local = layer.qparams()
            scale = m.astype(np.float32).reshape(local.scale.shape)
            layer.pin_qparams(QParams(scale, local.zero_point, local.qmin, local.qmax,
                                      local.bits, local.axis, None, local.convention,
                                      extra={"local_scale": local.scale, "synced": "max"}))
            continue
        # the merged statistics stand for every rank's batches: reset, then ingest them
        total = sum(it["batches"] for it in s.items)
        if s.kind == "absmax":
            ref.reset()
            ref.observe_abs_max(float(m[0]), batches=total)
        elif s.kind == "maxarray":
            it = s.items[s.donor]
            shape = tuple(it["shape"])
            maxima = m.reshape(shape).copy()
            ref.reset()
            if isinstance(ref, _RefAbsMaxCW):
                batch_shape = [1] * int(it["ndim"])
                batch_shape[int(it["axis"])] = shape[0]
                ref.observe_channel_abs_max(maxima, tuple(batch_shape), batches=total)
            else:
                ref.observe_group_abs_max(maxima, batches=total)
        elif s.kind == "hist":
            grid = s.grid
            assert grid is not None
            n = grid.bins
            counts = sm[spos:spos + n].copy()
            if int(sm[spos + n]) != int(counts.sum()):  # pragma: no cover - collective bug
                raise SyncError(f"{comm.what}: histogram totals do not add up")
            merged = ExactHistogram.from_counts(counts, exponent=grid.exponent,
                                                offset=grid.offset, min=grid.min,
                                                max=grid.max, symmetric=grid.symmetric)
            spos += n + 2
            ref.reset()
            ref.observe_histogram(merged, batches=total)
        else:  # object: every rank's observer merged in rank order (exact, order-free)
            assert src is not None
            ref.reset()
            for o in src:
                if o is not None:
                    ref.merge(o)
        layer.invalidate_qparams()


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
