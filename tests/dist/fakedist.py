"""A thread-backed stand-in for ``paddle.distributed``: n simulated ranks in one process.

Each simulated rank runs in its own thread; ``all_gather_object`` and ``all_reduce`` meet at a
barrier and exchange pickled values (like the real transport). Used to run the real
``sync_observers`` code over several ranks where real processes are too slow (Hypothesis) or
impossible (tensor parallelism needs ``c_identity``, which has no CPU kernel).
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


class World:
    """The meeting point of ``n`` simulated ranks."""

    def __init__(self, n: int, gid: int = 99) -> None:
        self.n = n
        self.gid = gid
        self.barrier = threading.Barrier(n, timeout=120)
        self.slots: list[Any] = [None] * n

    def exchange(self, rank: int, obj: Any) -> list[Any]:
        self.slots[rank] = pickle.dumps(obj)
        self.barrier.wait()
        out = [pickle.loads(s) for s in self.slots]
        self.barrier.wait()
        return out


class Group:
    """What ``sync_observers`` reads of a ``paddle.distributed`` group."""

    def __init__(self, rank: int, world: World) -> None:
        self.rank, self.nranks, self.world = rank, world.n, world
        self.ranks = list(range(world.n))
        self.id = world.gid


def fake_dist(real: Any, initialized: bool) -> types.SimpleNamespace:
    """A module-like object with the calls ``refquant.adapters.paddle.distributed`` makes."""

    def all_gather_object(out: list, obj: Any, group: Group) -> None:
        out.extend(group.world.exchange(group.rank, obj))

    def all_reduce(t: Any, op: Any, group: Group) -> None:
        vals = group.world.exchange(group.rank, t.numpy())
        red = np.maximum.reduce(vals) if op == real.ReduceOp.MAX else np.add.reduce(vals)
        t.set_value(red.astype(t.numpy().dtype))

    return types.SimpleNamespace(
        is_initialized=lambda: initialized, get_world_size=lambda: 2 if initialized else 1,
        get_rank=lambda: 0, ReduceOp=real.ReduceOp, all_gather_object=all_gather_object,
        all_reduce=all_reduce)


@contextlib.contextmanager
def patched(initialized: bool) -> Iterator[None]:
    """Replace ``paddle.distributed`` inside the sync module for the duration."""
    from refquant.adapters.paddle import distributed as rd

    real = rd.dist
    rd.dist = fake_dist(real, initialized)
    try:
        yield
    finally:
        rd.dist = real


def run_ranks(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(rank)`` in ``n`` threads; returns each result or the exception it raised."""
    out: list[Any] = [None] * n

    def target(r: int) -> None:
        try:
            out[r] = fn(r)
        except Exception as exc:  # returned to the caller
            out[r] = exc

    threads = [threading.Thread(target=target, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return out
