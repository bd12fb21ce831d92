"""AbsmaxObserver: the abs-max of everything observed.

Upstream: PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/abs_max.py``. Quirk numbers
(Q9, Q10, ...) are the rows of docs/divergences.md.

canonical (:class:`_CanonicalAbsmax`)
    ``S = max |x|`` over all observed finite values (merge = max), float64 of the input
    values rounded once to float32; signed grid ``integer_range(bits)``, zero point 0. All
    zeros give ``S = 0``.
paddleslim (:class:`_SlimAbsmax`)
    PaddleSlim 2.6.0's ``AbsmaxObserverLayer``:

    * the running value starts at ``float32(1e-7)`` and each batch does
      ``_max = maximum(max(abs(float32(x))), _max)`` (Q11: all-zero data gives 1e-07;
      float64 input is cast to float32 first, fp16 exactly, Q11a);
    * ``scales()`` caches its first result and ``forward`` never clears it (Q10): here
      the first :meth:`compute` freezes the value, later ``observe`` calls do not change it;
    * ``scale = max(-min(0, 0.), max(_max, 0.))`` with Python's ``max`` (Q6, Q9): a NaN
      running max gives the Python ``int 0`` -> scale 0.0; ``-inf`` gives ``inf`` (Q11b);
    * ``zero_points()`` is ``int 0``; the grid is ``(-2**(b-1), 2**(b-1) - 1)``.

Statistics are one pass of ``max(x)`` and ``min(x)`` (no full-size temporary).
"""

from __future__ import annotations

import abc
import math
from typing import Any

import numpy as np

from ..profiles import CANONICAL, PADDLESLIM
from ..qparams import QParams, symmetric_qparams
from .base import ObserverBase
from .search import per_tensor_qparams

__all__ = [
    "AbsmaxObserver",
    "abs_max",
    "slim_py_scale",
    "slim_qmin_qmax",
    "slim_uniform_scale_zp",
]

_SLIM_FLOOR = np.float32(1e-7)


def abs_max(x: np.ndarray) -> float:
    """``max |x|`` as a float64 (``+0.0`` for all zeros; NaN if ``x`` holds NaN).

    Computed as ``max(max(x), -min(x))``: two reductions and no temporary array.
    """
    hi = float(np.max(x))
    lo = float(np.min(x))
    if hi != hi or lo != lo:
        return float("nan")
    return abs(max(hi, -lo))


def slim_py_scale(value: Any) -> float:
    """PaddleSlim's ``cal_scales_zero_points`` symmetric branch on a scalar ``_max``.

    ``_min = min(0, 0.)`` is the int 0, ``_max = max(value, 0.)``, ``scale = max(-_min,
    _max)``: Python's ``max`` keeps its first argument unless a later one compares greater,
    so NaN and non-positive values give the ``int 0`` (Q6, Q9). Returns the float value
    (0.0 for the int 0).
    """
    v = float(value)
    m = v if not (0.0 > v) else 0.0  # max(value, 0.): keeps value unless 0. > value
    return m if m > 0 else 0.0  # max(0, m): int 0 unless m > 0


def slim_qmin_qmax(bits: int, sign: bool = True) -> tuple[int, int]:
    """PaddleSlim's ``UniformObserver.qmin_qmax``; unsigned gets ``qmax = 2**bits`` (Q5)."""
    if sign:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits


def slim_uniform_scale_zp(
    min_value: Any, max_value: Any, bits: int = 8, sign: bool = True, symmetric: bool = True
) -> tuple[Any, Any]:
    """PaddleSlim's ``UniformObserver.cal_scales_zero_points`` with Python semantics (Q5-Q8).

    The range is widened with Python's ``min(min, 0.)`` / ``max(max, 0.)``. Symmetric:
    ``scale = max(-min, max)`` (an abs-max *threshold*), zero point the int ``0`` when
    signed, the float ``(qmax + qmin) / 2`` (``128.0`` for 8 bits) when not. Asymmetric:
    ``scale = (max - min) / float(qmax - qmin)`` (a *step*; ``ZeroDivisionError`` for a zero
    range) and ``zp = np.clip(qmin - round(min / scale), qmin, qmax)`` with Python's
    half-to-even ``round``. An ``np.ndarray`` ``max_value`` stands for a Paddle Tensor, which
    has no ``__round__``: the asymmetric branch raises ``TypeError`` then (Q8).
    """
    qmin, qmax = slim_qmin_qmax(bits, sign)
    lo = min(min_value, 0.0)
    hi = max(max_value, 0.0)
    if symmetric:
        scale = max(-lo, hi)
        return scale, (0 if sign else (qmax + qmin) / 2)
    scale = (hi - lo) / float(qmax - qmin)
    if isinstance(max_value, np.ndarray) or isinstance(min_value, np.ndarray):
        raise TypeError("type Tensor doesn't define __round__ method (PaddleSlim's asymmetric "
                        "branch with a Tensor max, Q8)")
    zp = qmin - round(lo / scale)
    return scale, np.clip(zp, qmin, qmax)


class AbsmaxObserver(ObserverBase):
    """Per-tensor abs-max observer: the scale is ``max |x|`` over everything observed.

    ``AbsmaxObserver(profile="canonical")`` is a :class:`_CanonicalAbsmax` (exact running
    max, mergeable), ``profile="paddleslim"`` a :class:`_SlimAbsmax` (PaddleSlim's float32
    running value with its floor and cache); the module docstring states both. Constructor:
    :class:`ObserverBase`'s ``(quant_bits=8, *, profile, ignore_nonfinite)``.
    """

    _max: Any

    def _observe(self, x: np.ndarray) -> None:
        if self.ignore_nonfinite and self.rules.drops_nonfinite:
            x = x[np.isfinite(x)]
            if x.size == 0:
                return
        self._fold_abs_max(abs_max(x))

    def observe_abs_max(self, value: Any, *, batches: int = 1) -> None:
        """Fold in the statistic of ``batches`` batches: their abs-max ``max |x|``.

        ``value`` is a real scalar (Python or NumPy int/float, or a 0-D real array; not
        bool or str): the largest ``|x|`` over the batches, exact in the input's dtype or
        wider (max is exact, so a float32 device reduction qualifies); a finite value beyond
        float32's range raises ``ValueError`` as ``observe`` does. Equivalence, bit for
        bit, for every ``x`` ``observe`` accepts::

            obs.observe(x)  ==  obs.observe_abs_max(abs_max(x))
            # canonical with ignore_nonfinite: the abs-max of the finite values, -inf
            # when there are none

        Abs-max is a maximum, so ``observe_abs_max(max(v1, .., vk), batches=k)`` equals
        ``k`` calls (for the paddleslim profile: before the first ``compute``, which
        freezes the value). canonical: ``value`` must be finite and ``>= 0``, or ``-inf``
        for batches without a finite value (only ``num_batches`` changes, as with
        ``observe``); ``ValueError`` otherwise. paddleslim: rounded to float32 as
        PaddleSlim's ``cast``; NaN makes the running value NaN (``compute`` then gives 0,
        Q9); a negative value raises ``ValueError``.
        """
        batches = self._check_batches(batches)
        v = self._stat_scalar(value, "value")
        self._fold_abs_max(self._checked_abs_max(v, value))
        self._ingest(batches)

    def _state(self) -> dict[str, Any]:
        """``abs_max``: the running abs-max (canonical: float64, ``-inf`` before any finite
        value; paddleslim: float32, starting at ``1e-7``)."""
        return {"abs_max": self._max}

    @abc.abstractmethod
    def _checked_abs_max(self, v: float, value: Any) -> float:
        """The statistic ``v`` (read from the caller's ``value``) as folded, or ``ValueError``."""

    @abc.abstractmethod
    def _fold_abs_max(self, value: float) -> None:
        """Fold one batch's (or several batches') abs-max into the running value."""


class _CanonicalAbsmax(AbsmaxObserver, profile=CANONICAL):
    """canonical: ``S = max |x|`` over every observed finite value, exactly.

    The running value is a float64 maximum of the (exact) per-batch abs-maxima, ``-inf``
    before any finite value; ``compute`` rounds it once to float32
    (:func:`refquant.qparams.symmetric_qparams`: signed grid ``integer_range(bits)``, zero
    point 0; all zeros give ``S = 0``). A maximum does not depend on batch order, so
    ``merge`` takes the maximum of the two running values.
    """

    def _reset(self) -> None:
        self._max = float("-inf")

    def _checked_abs_max(self, v: float, value: Any) -> float:
        if v == -math.inf:  # statistics of batches without a finite value: folds to no-op
            return v
        if not (math.isfinite(v) and v >= 0.0):
            raise ValueError(f"value must be a finite abs-max >= 0 (or -inf for no "
                             f"finite values), got {value!r}")
        return abs(v)  # -0.0 -> 0.0

    def _fold_abs_max(self, value: float) -> None:
        self._max = max(self._max, value)

    def _compute(self) -> QParams:
        if self._max == float("-inf"):  # only non-finite values were observed
            raise ValueError("no finite values observed (ignore_nonfinite=True dropped all)")
        return symmetric_qparams(0.0, self._max, self.quant_bits)

    def _merge(self, other: ObserverBase) -> None:
        assert isinstance(other, _CanonicalAbsmax)
        self._max = max(self._max, other._max)


class _SlimAbsmax(AbsmaxObserver, profile=PADDLESLIM):
    """paddleslim: PaddleSlim 2.6.0's ``AbsmaxObserverLayer``, bug for bug.

    Upstream: PaddlePaddle/PaddleSlim, ``paddleslim/quant/observers/abs_max.py``
    (``cal_min_max``, ``cal_thresholds``) and ``uniform.py`` (``cal_scales_zero_points``).
    The running value starts at ``float32(1e-7)`` (Q11) and each batch does
    ``_max = paddle.maximum(max(abs(cast(x, float32))), _max)`` in float32 (float64 input
    is rounded first, fp16 exactly, Q11a; rounding is monotone, so ``max|fl32(x)| ==
    fl32(max|x|)``; a NaN on either side gives NaN). The first :meth:`compute` caches its
    result and later batches never change it (Q10). The scale is Python's
    ``max(-min(0, 0.), max(_max, 0.))`` (:func:`slim_py_scale`, Q6/Q9): NaN gives 0.0,
    ``-inf`` an infinite scale (Q11b); zero point 0, grid ``(-2**(b-1), 2**(b-1) - 1)``.
    """

    def _reset(self) -> None:
        self._max = np.float32(_SLIM_FLOOR)
        self._cached: QParams | None = None

    def _checked_abs_max(self, v: float, value: Any) -> float:
        if v < 0.0:
            raise ValueError(f"value must be an abs-max >= 0 (NaN and inf pass through as in "
                             f"PaddleSlim), got {value!r}")
        return v

    def _fold_abs_max(self, value: float) -> None:
        with np.errstate(over="ignore"):
            m = np.float32(value)
        prev = self._max
        self._max = np.float32(np.nan) if (m != m or prev != prev) else max(m, prev)

    def _compute(self) -> QParams:
        if self._cached is None:  # scales() caches its first result (Q10)
            self._cached = per_tensor_qparams(slim_py_scale(self._max), self.quant_bits,
                                              allow_nonfinite=True)  # -inf -> inf (Q11b)
        return self._cached
