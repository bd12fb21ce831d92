"""Batch-order sensitivity: how much an observer's decision depends on the order of batches.

An observer with exact, mergeable statistics (refquant's ``canonical`` profile) decides the
same QParams for every order of the same batches. A bug-for-bug observer need not: running
means in float32 (PaddleSlim's AVGObserver), exponential moving averages (torch.ao's
``MovingAverageMinMaxObserver``), histograms whose bin edges the first batch fixes (torch.ao's
``HistogramObserver``, ONNX Runtime's histogram calibrators) all depend on the order.

:func:`batch_order_sensitivity` feeds the same batches to fresh observers in several orders
(the given order, its reverse, then random permutations; every permutation when there are
few enough) and reports the spread of the decided scale:

.. math::

    \\text{spread} = \\max_c \\frac{\\max_\\pi s_c(\\pi) - \\min_\\pi s_c(\\pi)}
                                 {\\min_\\pi s_c(\\pi)}

over the orders :math:`\\pi` and channels :math:`c` (per-tensor observers have one
channel). A spread of 0 with ``distinct_scales == 1`` means the decision did not depend on
the order on this data (it proves nothing about other data). docs/batch-order.md shows it
per framework on the demo's activations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..qparams import QParams

__all__ = ["OrderSensitivity", "batch_order_sensitivity"]


@dataclass(frozen=True)
class OrderSensitivity:
    """The decisions of one observer over several orders of the same batches.

    ``orders[i]`` is the permutation of batch indices fed for ``scales[i]`` /
    ``zero_points[i]`` (each row the observer's scale / zero point, flattened to 1-D).
    """

    orders: tuple[tuple[int, ...], ...]
    scales: np.ndarray
    zero_points: np.ndarray
    exhaustive: bool
    convention: str = field(default="step")

    @property
    def distinct_scales(self) -> int:
        """How many different scale vectors (bit patterns) the orders produced."""
        bits = np.ascontiguousarray(self.scales).view(np.uint8).reshape(len(self.scales), -1)
        return len({row.tobytes() for row in bits})

    @property
    def distinct_zero_points(self) -> int:
        """How many different zero-point vectors the orders produced."""
        return len({row.tobytes() for row in np.ascontiguousarray(self.zero_points)})

    @property
    def spread(self) -> float:
        """``max over channels of (max - min) / min`` of the scale over the orders
        (``inf`` where a channel's smallest scale is 0 and another order's is not)."""
        s = self.scales.astype(np.float64)
        lo, hi = s.min(axis=0), s.max(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(hi == lo, 0.0, (hi - lo) / lo)
        return float(np.max(rel)) if rel.size else 0.0

    @property
    def worst_orders(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The two orders giving the smallest and the largest scale of the channel with
        the largest spread."""
        s = self.scales.astype(np.float64)
        lo, hi = s.min(axis=0), s.max(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(hi == lo, 0.0, (hi - lo) / lo)
        c = int(np.argmax(rel))
        return self.orders[int(np.argmin(s[:, c]))], self.orders[int(np.argmax(s[:, c]))]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (scales as float32 values printed in full)."""
        s = self.scales
        return {
            "orders": len(self.orders), "exhaustive": self.exhaustive,
            "distinct_scales": self.distinct_scales,
            "distinct_zero_points": self.distinct_zero_points,
            "spread": self.spread, "scale_min": s.min(axis=0).tolist(),
            "scale_max": s.max(axis=0).tolist(), "convention": self.convention,
        }


def _orders(n: int, permutations: int, seed: int) -> tuple[list[tuple[int, ...]], bool]:
    """The given order, its reverse, then distinct random permutations; every permutation
    when ``n!`` does not exceed ``permutations``."""
    if math.factorial(n) <= permutations:
        return list(itertools.permutations(range(n))), True
    identity = tuple(range(n))
    chosen = [identity, identity[::-1]]
    seen = set(chosen)
    rng = np.random.default_rng(seed)
    while len(chosen) < permutations:
        p = tuple(int(i) for i in rng.permutation(n))
        if p not in seen:
            seen.add(p)
            chosen.append(p)
    return chosen, False


def batch_order_sensitivity(
    make_observer: Callable[[], Any],
    batches: Sequence[Any],
    *,
    permutations: int = 24,
    seed: int = 0,
) -> OrderSensitivity:
    """Feed ``batches`` to fresh observers in several orders and collect their decisions.

    Parameters
    ----------
    make_observer:
        A callable returning a fresh observer with ``observe(x)`` and ``compute()`` (any
        refquant family: PaddleSlim's, torch.ao's, ONNX Runtime's, ...); for example
        ``lambda: MovingAverageMinMaxObserver(dtype="qint8")``.
    batches:
        At least two batches (arrays); each order feeds all of them once. The arrays are
        never modified.
    permutations:
        How many orders to try (at least 2): the given order, its reverse and random
        distinct permutations; when ``len(batches)! <= permutations`` every permutation is
        tried and the result is ``exhaustive``.
    seed:
        Seed of the random permutations (the result is reproducible for a given seed).
    """
    if not callable(make_observer):
        raise TypeError(f"make_observer must be a callable returning a fresh observer, got "
                        f"{make_observer!r}")
    if isinstance(batches, (str, bytes)) or not isinstance(batches, Sequence):
        raise TypeError(f"batches must be a sequence of arrays, got {type(batches).__name__}")
    if len(batches) < 2:
        raise ValueError(f"batches must hold at least 2 batches to reorder, got {len(batches)}")
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) \
            or permutations < 2:
        raise ValueError(f"permutations must be an integer >= 2, got {permutations!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    orders, exhaustive = _orders(len(batches), int(permutations), int(seed))
    scales, zps, convention = [], [], "step"
    for order in orders:
        obs = make_observer()
        for i in order:
            obs.observe(batches[i])
        qp = obs.compute()
        if not isinstance(qp, QParams):
            raise TypeError(f"make_observer's observers must return QParams from compute(), "
                            f"got {type(qp).__name__}")
        scales.append(np.asarray(qp.scale, dtype=np.float32).reshape(-1))
        zps.append(np.asarray(qp.zero_point).reshape(-1).astype(np.int64))
        convention = qp.convention
    if len({s.shape for s in scales}) != 1:
        raise ValueError("the observer decided scales of different shapes for different "
                         "orders of the same batches")
    return OrderSensitivity(tuple(orders), np.stack(scales), np.stack(zps), exhaustive,
                            convention)
