"""Histogram state for the histogram observers (KL, percentile, histogram-based MSE/EMD).

Two histograms live here:

* :class:`ExactHistogram` -- the canonical, exactly mergeable histogram
  (``docs/architecture.md``, "Principles", item 5). Bin width is a power of two and bin
  edges are integer multiples of the width, so every bin index is computed exactly and
  growing the range only ever folds whole bins. The counts are a pure function of the
  multiset of observed values: they do not depend on batch order, batch split, or how
  shards are merged.
* :class:`SlimHistogram` -- PaddleSlim 2.6.0's ``BaseHistObserver`` state machine
  (PaddlePaddle/PaddleSlim ``paddleslim/quant/observers/base_hist.py``), reproduced bug for
  bug for the ``paddleslim`` profile (``docs/divergences.md`` Q21-Q24).

Grid of :class:`ExactHistogram`
-------------------------------
Let ``v`` be the binned value (``|x|`` when ``symmetric``, ``x`` otherwise) and let
``lo, hi`` be the *grid range*: ``lo = 0, hi = abs_max`` when symmetric, ``lo = min(x),
hi = max(x)`` otherwise. For an exponent ``e`` write ``w = 2**e`` and
``F_e(v) = floor(v / w)`` (an integer). The grid is

* ``e`` = the smallest integer ``>= E_MIN = -1074`` with ``F_e(hi) - F_e(lo) < bins``;
* ``L = F_e(lo)`` (so ``lower = L * w`` is a multiple of ``w``, ``lower <= lo``);
* ``counts[j] = #{v : F_e(v) - L == j}`` for ``j = 0 .. bins-1``.

Every observed ``v`` lies in ``[lo, hi]``, and ``F_e`` is monotone, so its index is in
``[0, F_e(hi) - F_e(lo)] \\subseteq [0, bins)``.

*The grid is well defined and only grows.* ``D(e) = F_e(hi) - F_e(lo)`` is non-increasing
in ``e``: with ``a = F_e(hi) >= b = F_e(lo)``, ``F_{e+1} = floor(F_e / 2)`` (see below),
and ``floor(a/2) - floor(b/2) <= a - b`` for integers ``a >= b``. So "smallest ``e`` with
``D(e) < bins``" exists (``D`` reaches 0 for ``e`` large) and is found by walking ``e``.
Enlarging ``[lo, hi]`` can only increase ``D(e)`` for every ``e``, so the exponent of a
histogram that has seen more data is ``>=`` the exponent it had before.

*Indices are exact.* ``v / 2**e`` only changes the binary exponent of ``v``; it is
computed with ``np.ldexp`` (or a multiplication by an exactly representable ``2**-e``),
which is exact unless the result is subnormal. A subnormal result has magnitude ``< 1``,
so ``floor`` still gives 0 (positive) -- the one case that needs care is a negative ``x``
whose scaled value underflows to ``-0.0``; that is patched to index ``-1 - L``.

*Folding is exact.* For integers ``n`` and ``k >= 0``, ``floor(floor(v/w) / 2**k) =
floor(v / (w 2**k))`` (nested floor of a division by a positive integer). When the grid
moves from ``(e, L)`` to ``(e', L')`` with ``k = e' - e >= 0``, old bin ``a`` (all of its
values have ``F_e(v) = L + a``) goes to new bin ``((L + a) >> k) - L'``: whole bins move,
no count is split. Hence after any sequence of ``add`` and ``merge`` calls the counts equal
the definition above evaluated on the union of the data: order-free and shard-mergeable.

Resolution bound
----------------
Symmetric: ``e`` is the smallest exponent with ``abs_max < bins * w`` (or ``E_MIN``), so
``bins*w/2 <= abs_max < bins*w``: the width is within a factor ``(1, 2]`` of the width
``abs_max / bins`` of an unaligned histogram on ``[0, abs_max]``, and the data occupies
between ``bins/2`` and ``bins`` bins (at least ``floor(bins/2)`` ... ``bins`` effective
bins). Signed: ``(hi-lo)/bins < w < 2 (hi-lo)/(bins-1)`` (from ``D(e) <= bins-1`` and
``D(e-1) >= bins`` with ``a - b - 1 < floor(a) - floor(b) < a - b + 1``) -- again at most
about twice the width of an unaligned histogram on ``[min, max]``, and the data spans
between about ``bins/2`` and ``bins`` bins. Both bounds assume ``e > E_MIN``; a constant
data set (``lo == hi``) has ``e = E_MIN``.

Cost
----
One pass for ``min``/``max`` and one chunked pass (abs, scale, truncate, ``np.bincount``)
with fixed 64 Ki-element buffers, so peak extra memory is bounded by a few hundred KiB
regardless of the input size; folding is O(bins).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from ._validation import check_flag, check_int, native

__all__ = ["ExactHistogram", "SlimHistogram", "E_MIN", "grid_exponent"]

#: smallest exponent of the bin width (2**-1074 is the smallest positive float64)
E_MIN = -1074
_CHUNK = 1 << 16


def _floor_pow2(v: float, e: int) -> int:
    """Exact ``floor(v / 2**e)`` for a finite float ``v`` (Python integers, no rounding)."""
    num, den = float(v).as_integer_ratio()
    if e >= 0:
        return num // (den << e)
    return (num << -e) // den


def _span_ok(lo: float, hi: float, e: int, bins: int) -> bool:
    return _floor_pow2(hi, e) - _floor_pow2(lo, e) < bins


def grid_exponent(lo: float, hi: float, bins: int) -> int:
    """Smallest ``e >= E_MIN`` with ``floor(hi/2**e) - floor(lo/2**e) < bins``."""
    if not hi > lo:
        return E_MIN
    span = hi / 2.0 - lo / 2.0  # no overflow; exact enough for a starting estimate
    est = math.frexp(span / bins)[1] + 1  # 2**(est-1) >= 2*span/bins roughly
    e = max(E_MIN, est)
    while not _span_ok(lo, hi, e, bins):
        e += 1
    while e > E_MIN and _span_ok(lo, hi, e - 1, bins):
        e -= 1
    return e


def _fold(counts: np.ndarray, offset: int, k: int, new_offset: int, bins: int) -> np.ndarray:
    """Move whole bins from grid ``(e, offset)`` to ``(e + k, new_offset)``.

    Old bin ``a`` goes to ``((offset + a) >> k) - new_offset``, computed with Python
    integers for the part that may be huge and NumPy int64 for the per-bin part.
    """
    a = np.arange(bins, dtype=np.int64)
    base = (offset >> k) - new_offset  # Python int
    rem = offset - ((offset >> k) << k)  # offset mod 2**k, in [0, 2**k)
    if k <= 40:
        carry = (a + rem) >> k
    else:  # rem + a < 2**k + 2**40 < 2**(k+1): the carry is 0 or 1
        threshold = (1 << k) - rem
        carry = (a >= threshold).astype(np.int64) if threshold < bins else np.zeros_like(a)
    idx = carry + base
    used = counts != 0
    if used.any() and (idx[used].min() < 0 or idx[used].max() >= bins):  # pragma: no cover
        raise AssertionError("ExactHistogram fold left the grid (internal error)")
    out = np.zeros(bins, dtype=np.int64)
    np.add.at(out, idx[used], counts[used])
    return out


class ExactHistogram:
    """Histogram of ``|x|`` (``symmetric=True``) or of ``x``, on a power-of-two-aligned grid.

    Bin width ``width`` is a power of two and bin ``j`` is ``[lower + j*width,
    lower + (j+1)*width)`` with ``lower`` a multiple of ``width``; the bin index
    ``floor(v / width) - lower/width`` is exact. When the range must grow the width
    doubles (as often as needed) and bins fold exactly. Order-free and shard-mergeable: a
    pure function of the multiset of observed values (see the module docstring for the
    grid's definition, the proof and the resolution bound).

    Attributes
    ----------
    bins, symmetric:
        Configuration.
    counts:
        int64 array of shape ``(bins,)``.
    lower, width:
        Left edge of bin 0 (``0.0`` when symmetric) and the bin width (``2**exponent``).
    exponent, offset:
        ``width = 2**exponent`` and ``lower = offset * width`` (exact integers).
    total:
        Number of values added.
    min, max, abs_max:
        Exact extremes (float64 of the input values); ``+inf``/``-inf``/``0.0`` while empty.
    """

    def __init__(self, bins: int = 2048, *, symmetric: bool = True) -> None:
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)):
            raise TypeError(f"bins must be an integer >= 2, got {bins!r}")
        if int(bins) < 2 or int(bins) > (1 << 24):
            raise ValueError(f"bins must be in [2, 2**24], got {int(bins)}")
        self.bins = int(bins)
        self.symmetric = check_flag(symmetric, "symmetric")
        self.counts = np.zeros(self.bins, dtype=np.int64)
        self.exponent = E_MIN
        self.offset = 0
        self.total = 0
        self.min = math.inf
        self.max = -math.inf

    # -- derived attributes -----------------------------------------------------------
    @property
    def abs_max(self) -> float:
        if self.min > self.max:  # empty
            return 0.0
        return max(-self.min, self.max)

    @property
    def width(self) -> float:
        return math.ldexp(1.0, self.exponent)

    @property
    def lower(self) -> float:
        return float(Fraction(self.offset) * Fraction(2) ** self.exponent)

    def _grid_range(self) -> tuple[float, float]:
        if self.symmetric:
            return 0.0, self.abs_max
        return self.min, self.max

    def edges(self) -> np.ndarray:
        """Bin edges ``(offset + j) * width``, ``j = 0..bins`` (float64, shape ``(bins+1,)``).

        Exact whenever ``|offset| + bins < 2**53`` (always, except for constant data).
        """
        if abs(self.offset) + self.bins < (1 << 53):
            j = np.arange(self.offset, self.offset + self.bins + 1, dtype=np.float64)
            return np.ldexp(j, self.exponent)
        return self.lower + np.arange(self.bins + 1, dtype=np.float64) * self.width

    def centers(self) -> np.ndarray:
        """Bin centres ``(offset + j + 1/2) * width`` (float64, shape ``(bins,)``)."""
        if abs(self.offset) + self.bins < (1 << 52):
            j = np.arange(self.bins, dtype=np.float64) * 2.0 + (2 * self.offset + 1)
            return np.ldexp(j, self.exponent - 1)
        return self.lower + (np.arange(self.bins, dtype=np.float64) + 0.5) * self.width

    # -- updates ----------------------------------------------------------------------
    def copy(self) -> ExactHistogram:
        new = ExactHistogram(self.bins, symmetric=self.symmetric)
        new.counts = self.counts.copy()
        new.exponent, new.offset, new.total = self.exponent, self.offset, self.total
        new.min, new.max = self.min, self.max
        return new

    __copy__ = copy  # ``copy.copy`` gives an independent histogram as well

    @classmethod
    def from_counts(
        cls, counts: Any, *, exponent: int, offset: int, min: float, max: float,
        symmetric: bool = True,
    ) -> ExactHistogram:
        """An ExactHistogram from counts made elsewhere (a device, a collective sum).

        ``counts`` (1-D integer array, ``>= 0``; its length is ``bins``) must be the
        counts of a multiset of values on the grid this class defines for the values'
        extremes ``min``/``max`` (the signed extremes of ``x``, also when ``symmetric``;
        ``-0.0`` is read as ``0.0``): ``exponent = grid_exponent(lo, hi, bins)`` and
        ``offset = floor(lo / 2**exponent)`` with ``(lo, hi) = (0, max(-min, max))``
        when symmetric, else ``(min, max)``. The grid is checked (``ValueError``); the
        counts are copied and ``total`` is their sum. All-zero counts give an empty
        histogram (``min``/``max`` are then ignored). The result equals, ``==``, the
        histogram :meth:`add` builds from the same values.
        """
        c = np.asarray(counts)
        if c.ndim != 1 or c.dtype.kind not in "iu":
            raise TypeError(f"counts must be a 1-D integer array, got dtype {c.dtype} "
                            f"shape {c.shape}")
        h = cls(int(c.shape[0]), symmetric=symmetric)
        if np.any(c < 0):
            raise ValueError("counts must be >= 0")
        total = int(c.sum(dtype=np.int64))
        if total == 0:
            return h
        lo_v, hi_v = float(min) + 0.0, float(max) + 0.0  # -0.0 -> 0.0
        if not (math.isfinite(lo_v) and math.isfinite(hi_v) and lo_v <= hi_v):
            raise ValueError(f"min/max must be finite with min <= max, got {min!r}, {max!r}")
        h.min, h.max = lo_v, hi_v
        glo, ghi = h._grid_range()
        e = grid_exponent(glo, ghi, h.bins)
        off = _floor_pow2(glo, e)
        if (int(exponent), int(offset)) != (e, off):
            raise ValueError(
                f"exponent/offset ({exponent}, {offset}) are not the grid of the range "
                f"[{glo!r}, {ghi!r}] with {h.bins} bins: expected ({e}, {off})"
            )
        h.exponent, h.offset = e, off
        h.counts = c.astype(np.int64, copy=True)
        h.total = total
        return h

    def regrid(self, new_min: float, new_max: float) -> None:
        """Widen the extremes to ``new_min``/``new_max`` and fold the counts onto that grid.

        The range may only grow (``new_min <= min``, ``new_max >= max``; ``ValueError``
        otherwise): every count moves as a whole bin (exact). After ``a.regrid(lo, hi)``
        and ``b.regrid(lo, hi)`` the two share a grid and their counts add bin by bin --
        what :meth:`merge` does, and what a cross-process sum of counts relies on.
        """
        lo, hi = float(new_min) + 0.0, float(new_max) + 0.0
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"new_min/new_max must be finite with new_min <= new_max, got "
                             f"{new_min!r}, {new_max!r}")
        if lo > self.min or hi < self.max:
            raise ValueError(
                f"regrid may only widen the range: [{lo!r}, {hi!r}] does not contain "
                f"[{self.min!r}, {self.max!r}]"
            )
        self._regrid(lo, hi)

    def _regrid(self, new_min: float, new_max: float) -> None:
        """Set the extremes to ``new_min/new_max`` and fold the counts onto their grid."""
        self.min, self.max = new_min, new_max
        lo, hi = self._grid_range()
        e = grid_exponent(lo, hi, self.bins)
        off = _floor_pow2(lo, e)
        if self.total and (e != self.exponent or off != self.offset):
            self.counts = _fold(self.counts, self.offset, e - self.exponent, off, self.bins)
        self.exponent, self.offset = e, off

    def add(self, x: Any) -> None:
        """Add every element of ``x`` (finite floating array, any shape, either byte order;
        not modified)."""
        arr = np.asarray(x)
        if arr.dtype.kind != "f":
            raise TypeError(f"x must be a floating-point array, got dtype {arr.dtype}")
        arr = native(arr)
        if arr.size == 0:
            return
        if arr.dtype == np.float16 or arr.dtype.itemsize > 8:
            arr = arr.astype(np.float64 if arr.dtype.itemsize > 8 else np.float32)
        flat = arr.reshape(-1)
        bmin, bmax = float(flat.min()), float(flat.max())
        if not (math.isfinite(bmin) and math.isfinite(bmax)):
            raise ValueError(f"x must be finite, got min={bmin!r}, max={bmax!r}")
        if bmin == 0.0:
            bmin = 0.0  # -0.0 and 0.0 are the same value
        if bmax == 0.0:
            bmax = 0.0
        self._regrid(min(self.min, bmin), max(self.max, bmax))
        self.counts = self.counts + self._bin(flat)
        self.total += int(flat.size)

    def _bin(self, flat: np.ndarray) -> np.ndarray:
        """Counts of ``flat`` on the current grid (all values must lie inside it)."""
        bins, e, off = self.bins, self.exponent, self.offset
        lo, hi = self._grid_range()
        if not hi > lo:  # constant data: everything is in bin 0
            out = np.zeros(bins, dtype=np.int64)
            out[0] = flat.size
            return out
        dt = flat.dtype
        finfo = np.finfo(dt)
        # multiply by 2**-e when it is a normal number of the input dtype, else ldexp
        use_mul = finfo.minexp <= -e <= finfo.maxexp - 1
        scale = dt.type(math.ldexp(1.0, -e)) if use_mul else dt.type(1)
        out = np.zeros(bins, dtype=np.int64)
        n = flat.size
        step = min(n, _CHUNK)
        buf = np.empty(step, dtype=dt)
        ibuf = np.empty(step, dtype=np.intp)
        for s in range(0, n, step):
            chunk = flat[s : s + step]
            m = chunk.size
            b, ib = buf[:m], ibuf[:m]
            if self.symmetric:
                np.abs(chunk, out=b)
                if use_mul:
                    np.multiply(b, scale, out=b)
                else:
                    np.ldexp(b, -e, out=b)
                # b >= 0: truncation is floor; values are < bins so the cast is exact
                np.copyto(ib, b, casting="unsafe")
            else:
                if use_mul:
                    np.multiply(chunk, scale, out=b)
                else:
                    np.ldexp(chunk, -e, out=b)
                np.floor(b, out=b)
                if e > 0:  # a negative value may have underflowed to -0.0 (see docstring)
                    fix = (b == 0) & (chunk < 0)
                    if fix.any():
                        b[fix] = -1.0
                np.copyto(ib, b, casting="unsafe")
                if off:
                    np.subtract(ib, off, out=ib)
            out += np.bincount(ib, minlength=bins)
        if out.size != bins:  # pragma: no cover - guarded by the grid proof
            raise AssertionError("ExactHistogram index left the grid (internal error)")
        return out

    def merge(self, other: ExactHistogram) -> None:
        """Fold ``other``'s counts into this histogram (exact; ``other`` is unchanged)."""
        if not isinstance(other, ExactHistogram):
            raise TypeError(f"other must be an ExactHistogram, got {type(other).__name__}")
        if (other.bins, other.symmetric) != (self.bins, self.symmetric):
            raise ValueError(
                f"cannot merge histograms with bins/symmetric {(self.bins, self.symmetric)} "
                f"and {(other.bins, other.symmetric)}"
            )
        if other.total == 0:
            return
        if self.total == 0:
            src = other.copy()
            self.counts, self.exponent, self.offset = src.counts, src.exponent, src.offset
            self.total, self.min, self.max = src.total, src.min, src.max
            return
        theirs = other.copy()
        new_min, new_max = min(self.min, other.min), max(self.max, other.max)
        self._regrid(new_min, new_max)
        theirs._regrid(new_min, new_max)
        self.counts = self.counts + theirs.counts
        self.total += other.total

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExactHistogram):
            return NotImplemented
        return (
            (self.bins, self.symmetric, self.exponent, self.offset, self.total)
            == (other.bins, other.symmetric, other.exponent, other.offset, other.total)
            and np.array_equal(self.counts, other.counts)
            and (self.min, self.max) == (other.min, other.max)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"ExactHistogram(bins={self.bins}, symmetric={self.symmetric}, total={self.total}, "
            f"lower={self.lower!r}, width=2**{self.exponent})"
        )


class SlimHistogram:
    """PaddleSlim 2.6.0's ``BaseHistObserver`` histogram state (``S/observers/base_hist.py``).

    State: ``hist_min``, ``hist_max`` (Python floats of the first batch's min/max, later the
    merged range) and ``hist`` (``None``, int64 or float32). :meth:`forward` reproduces one
    ``forward(inputs)`` call on an array of the tensor's dtype (``paddle.to_tensor`` keeps
    float16/float32/float64, and so does this class), bug for bug:

    * first batch: ``hist_min/hist_max = float(min), float(max)``; if ``max > min``,
      ``hist = np.histogram(x, bins, range=(min, max))[0]`` -- **int64**: PaddleSlim's
      ``astype(float32)`` discards its result (quirk 21); otherwise ``hist = None``
      (quirk 22: a constant or single-element first batch leaves no histogram).
    * later batch with ``max == min``: ignored, even inside the range (quirk 23).
    * later batch when the stored range is empty (``hist_max == hist_min``): the state is
      replaced by this batch's float32 histogram; earlier values are lost (quirk 22).
    * later batch inside ``[hist_min, hist_max]``: its float32 histogram on the stored range
      plus the old one (``new += old``, NumPy's in-place float32 add).
    * otherwise the approximate merge of quirk 24: the range grows to
      ``[min(new_min, old_min), max(new_max, old_max)]``; with ``w = (old_max - old_min) /
      (bins * 64)``, ``k = int(ceil(span / (bins * w)))`` and the max is relaxed by
      ``k*bins*w - span``; the old histogram is repeated 64 times, placed at
      ``round((old_min - new_min) / w)`` (Python round: half to even) in a float32 array of
      ``bins*k`` slots, cumulated in float64, sampled every ``k`` slots, differenced,
      divided by 64 and added in float32 to the new batch's histogram.
    """

    upsample = 64

    def __init__(self, bins: int = 2048) -> None:
        self.bins = check_int(bins, "bins", 1, 1 << 24)
        self.hist_min: float | None = None
        self.hist_max: float | None = None
        self.hist: np.ndarray | None = None
        #: largest float32 slot array PaddleSlim's merge would have allocated so far
        self.peak_slots = 0

    @staticmethod
    def _min_max(x: np.ndarray) -> tuple[float, float]:
        return float(np.min(x)), float(np.max(x))

    def forward(self, x: np.ndarray) -> None:
        """Fold one batch (an array in the tensor's dtype) into the state."""
        lo, hi = self._min_max(x)

        def counts_on(a: float, b: float, bins: int) -> np.ndarray:
            try:
                return np.histogram(x, range=(a, b), bins=bins)[0]
            except (IndexError, ValueError) as exc:
                # a non-finite range, or one whose width overflows: PaddleSlim fails the same
                raise type(exc)(
                    f"PaddleSlim's histogram cannot bin x on [{a!r}, {b!r}]: np.histogram "
                    f"raises {type(exc).__name__} ({exc}); PaddleSlim 2.6.0 raises the same "
                    "error"
                ) from exc

        self.forward_stats(lo, hi, counts_on)

    def forward_stats(
        self, batch_min: float, batch_max: float,
        counts_on: Callable[[float, float, int], np.ndarray],
    ) -> None:
        """:meth:`forward` from the batch's statistics instead of its values.

        ``batch_min``/``batch_max``: ``float(min(x))``, ``float(max(x))``. ``counts_on(lo,
        hi, bins)`` must return ``np.histogram(x, bins=bins, range=(lo, hi))[0]`` (int64)
        bit for bit; it is called at most once, with the range the state machine chose
        (the batch's own range, the stored one, or the grown and relaxed one of quirk 24),
        and not at all for a constant batch. ``forward(x)`` is exactly this call with
        NumPy's histogram of ``x``.

        Why the counts are a callback and not an input: the range depends on the state, and
        ``np.histogram`` bins with float arithmetic on that range (NumPy 2, float32 data:
        ``x - lo`` in float32, then ``/ (hi - lo) * bins`` in float64, truncation, and a
        correction against ``np.linspace`` edges in float32), so a counter elsewhere must
        reproduce that arithmetic for the range it is given; it cannot run ahead of the
        state.
        """
        bmin, bmax = float(batch_min), float(batch_max)
        counts_on = self._checked_counts(counts_on)
        if self.hist_min is not None and not (math.isfinite(bmin) and math.isfinite(bmax)):
            # a later batch with non-finite extremes breaks the range-growing arithmetic
            # (int(ceil(...)) of NaN / inf); raise what PaddleSlim 2.6.0 raises, clearly.
            # (A first batch with NaN extremes leaves no histogram, quirk 22; +-inf ones fail
            # inside np.histogram as in PaddleSlim.)
            kind, exc_type = ("NaN", ValueError) if math.isnan(bmin + bmax) else (
                "infinite", OverflowError)
            raise exc_type(
                f"PaddleSlim's histogram cannot grow its range to a batch with {kind} extremes "
                f"(min {bmin!r}, max {bmax!r}): PaddleSlim 2.6.0 raises {exc_type.__name__} "
                "here (int(ceil(...)) of a non-finite value)"
            )
        if self.hist_min is None or self.hist_max is None:
            # counts first: a failing counts_on leaves the state as it was
            hist = counts_on(bmin, bmax, self.bins) if bmax > bmin else None  # quirk 22
            self.hist_min, self.hist_max = bmin, bmax
            self.hist = None if hist is None else np.asarray(hist)  # int64 (quirk 21)
            return
        self.hist_min, self.hist_max, self.hist = self._update(float(batch_min),
                                                               float(batch_max), counts_on)

    def _checked_counts(
        self, counts_on: Callable[[float, float, int], np.ndarray]
    ) -> Callable[[float, float, int], np.ndarray]:
        """``counts_on`` whose result is checked: ``bins`` integer counts ``>= 0``."""
        def checked(lo: float, hi: float, bins: int) -> np.ndarray:
            c = np.asarray(counts_on(lo, hi, bins))
            if c.shape != (bins,) or c.dtype.kind not in "iu":
                raise TypeError(f"counts_on must return {bins} integer counts (a 1-D integer "
                                f"array), got dtype {c.dtype} shape {c.shape}")
            if c.size and c.min() < 0:
                raise ValueError(f"counts_on returned a negative count ({int(c.min())})")
            return native(c)
        return checked

    def _update(
        self, new_min: float, new_max: float,
        counts_on: Callable[[float, float, int], np.ndarray],
    ) -> tuple[float, float, np.ndarray | None]:
        old_min, old_max = self.hist_min, self.hist_max
        assert old_min is not None and old_max is not None
        bins = self.bins
        if new_max - new_min == 0.0:  # quirk 23
            return old_min, old_max, self.hist
        if old_max - old_min == 0.0:  # quirk 22: the stored values are dropped
            counts = counts_on(new_min, new_max, bins)
            return new_min, new_max, np.asarray(counts).astype(np.float32)
        if new_max <= old_max and new_min >= old_min:
            counts = counts_on(old_min, old_max, bins)
            acc = np.asarray(counts).astype(np.float32)
            assert self.hist is not None
            acc += self.hist  # float32 in-place add (old may be int64 or float32)
            return old_min, old_max, acc
        lo = min(new_min, old_min)
        hi = max(new_max, old_max)
        lo, hi, down, start = self.relax_min_max(lo, hi, old_min, old_max, bins, self.upsample)
        counts = np.asarray(counts_on(lo, hi, bins))
        self.peak_slots = max(self.peak_slots, bins * down)
        return lo, hi, self.merge_histograms(counts, self.hist, down, start)

    @staticmethod
    def relax_min_max(
        new_min: float, new_max: float, old_min: float, old_max: float, bins: int,
        upsample: int = 64,
    ) -> tuple[float, float, int, int]:
        """Quirk 24: the grown range, relaxed so the old fine grid tiles it.

        ``w = (old_max - old_min) / (bins*upsample)``; ``k = int(ceil((new_max - new_min) /
        (bins*w)))``; ``new_max += k*bins*w - (new_max - new_min)``; start slot
        ``round((old_min - new_min) / w)`` (half to even). All in float64, in this order.
        """
        w = (old_max - old_min) / (bins * upsample)
        down = int(np.ceil((new_max - new_min) / (bins * w)))
        err = down * bins * w - (new_max - new_min)
        return new_min, new_max + err, down, round((old_min - new_min) / w)

    def merge_histograms(
        self, counts: np.ndarray, old: np.ndarray | None, down: int, start: int
    ) -> np.ndarray:
        """Quirk 24: resample the old histogram onto the new range and add it (float32).

        PaddleSlim materialises ``bins * down`` float32 slots (``down`` can be huge when the
        range grows a lot: 490 GiB for a 1e-6-wide first batch followed by N(5, 1), which
        raises ``MemoryError`` there). The slots outside the repeated old histogram are
        zeros, which leave a float64 running sum unchanged, so the sampled cumulative sums
        are read off the cumulative sum of the ``bins * 64`` repeated values alone -- the
        same float64 values, without the allocation. Where PaddleSlim runs out of memory
        this returns what its code computes given enough memory.
        """
        bins, up = self.bins, self.upsample
        assert old is not None
        if bins * down > np.iinfo(np.intp).max:
            # PaddleSlim asks NumPy for bins * down slots, which NumPy refuses
            raise ValueError(
                f"Maximum allowed dimension exceeded: PaddleSlim's histogram merge would "
                f"allocate {bins} * {down} slots (the range grew by a factor of about "
                f"{down / up:.3g}); PaddleSlim 2.6.0 raises this ValueError from np.zeros"
            )
        if start < 0 or start + bins * up > bins * down:
            # numpy refuses to broadcast the repeated histogram into the shorter slice
            raise ValueError(
                f"could not broadcast input array from shape ({bins * up},) into shape "
                f"({max(0, min(bins * down, start + bins * up) - max(start, 0))},)"
            )
        fine = np.repeat(old, up).astype(np.float32)
        fine_cum = np.cumsum(fine, dtype=np.float64)
        pos = (np.arange(bins, dtype=np.int64) + 1) * down - 1 - start  # slot - start
        cum = np.where(pos < 0, 0.0, fine_cum[np.clip(pos, 0, fine_cum.size - 1)])
        prev = np.zeros(bins, dtype=np.float64)
        prev[1:] = cum[:-1]
        resampled = (cum - prev) / up
        out = counts.astype(np.float32)
        out += resampled.astype(np.float32)
        return out
