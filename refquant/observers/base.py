"""Observer base class: statistics in ``observe``, a pure decision in ``compute``.

Every observer follows the same life cycle (docs/architecture.md)::

    obs = SomeObserver(quant_bits=8, profile="canonical")
    obs.observe(batch)          # any number of times: reduce to sufficient statistics
    qp = obs.compute()          # QParams from the statistics, by a pure decision function
    obs.merge(other)            # profiles with exact statistics only: exact shard merge
    obs.reset()                 # forget everything

Statistics ingestion (public)
-----------------------------
``observe(x)`` is always "compute the statistics of ``x``, then fold them in". The second
half is public, so a caller that computes the statistics its own way (the Paddle adapter,
with Paddle ops on the device) feeds them straight in and the decision stays the
reference's: every observer has ``observe_<statistic>(...)`` methods (see each class) with

    ``obs.observe(x)``  ==  ``obs.observe_<statistic>(<statistic>(x))``   (bit for bit)

for the resulting state, ``num_batches`` and ``compute()``. Each method's docstring names
the statistic, its dtype and exactness requirement. ``batches=`` says how many observed
batches the statistics stand for (for statistics that are already reduced over several
batches, where the observer's state allows it); ``config()`` and ``state()`` expose what a
cross-process merge needs.

Profiles
--------
Every observer family is a :class:`refquant.profiles.ProfileVariants` family: ``profile=``
picks the rules (:class:`refquant.profiles.ProfileRules`) and, where a whole algorithm
differs, the family's variant subclass for that profile, once, at construction.

``"canonical"`` (default)
    The math the PaddleSlim guide describes, with its quirks fixed; results are independent
    of batch order and ``merge`` of shards equals one observer fed all the data, bit for bit.
``"paddleslim"``
    Bug-for-bug PaddleSlim 2.6.0 on Paddle 3.3.1 (see docs/divergences.md). ``merge``
    raises ``NotImplementedError`` (``rules.exact_merge`` is false): PaddleSlim has no merge
    and its state is order-dependent.
"""

from __future__ import annotations

import abc
import copy
from typing import Any, NoReturn

import numpy as np

from .._validation import (
    _describe,
    as_float_array,
    as_real_array,
    check_bits,
    check_flag,
    check_float32_range,
    check_int,
)
from ..profiles import CANONICAL, PADDLESLIM, Profile, ProfileRules, ProfileVariants, get_profile
from ..qparams import QParams

#: the profiles of the PaddleSlim observer and quanter families (refquant.profiles.PROFILES
#: lists every registered profile, other frameworks' included)
PROFILES: tuple[str, ...] = (CANONICAL.name, PADDLESLIM.name)

__all__ = ["ObserverBase", "Profile", "PROFILES"]


class ObserverBase(ProfileVariants, abc.ABC):
    """Common constructor arguments, input checks and life-cycle bookkeeping.

    Subclasses implement :meth:`_observe` (update statistics from a validated array),
    :meth:`_compute` (statistics -> QParams), :meth:`_merge` (profiles whose rules have
    ``exact_merge``) and :meth:`_reset`. A family whose profiles differ in a whole algorithm
    registers one variant subclass per profile (``class _SlimX(X, profile=PADDLESLIM)``);
    one that differs only by parameters reads ``self.rules``.

    Parameters
    ----------
    quant_bits:
        Bit width, 2..16.
    profile:
        ``"canonical"`` or ``"paddleslim"`` (or a registered
        :class:`refquant.profiles.ProfileRules`); ``obs.profile`` is the name.
    ignore_nonfinite:
        By default NaN/Inf in an observed batch raise ``ValueError``. With ``True`` the
        non-finite values are dropped before the statistics are updated (profiles whose
        rules have ``drops_nonfinite``: canonical), or passed through to reproduce
        PaddleSlim (``paddleslim`` profile).

    Input rules shared by every observer: constructor arguments are type-checked strictly
    (integers are ``int``/NumPy integers and not ``bool``, flags are ``bool``, strings come
    from a known set); a batch is a floating array that is never modified (big-endian input
    is read as its native-order copy, bit for bit); a finite value beyond float32's range
    (float64 ``1e39``) raises ``ValueError`` in both profiles, as no float32 scale can
    represent it (PaddleSlim would report ``inf``). ``copy.copy`` gives an independent
    observer (the statistics are copied, as by ``copy.deepcopy``), and ``a.merge(a)``
    merges an identical copy (the data counted twice).
    """

    supported_profiles = PROFILES

    #: minimum rank ``observe`` accepts (channel-wise observers raise it)
    min_ndim: int = 0

    def __init__(
        self,
        quant_bits: int = 8,
        *,
        profile: Profile | ProfileRules = "canonical",
        ignore_nonfinite: bool = False,
    ) -> None:
        self.quant_bits = check_bits(quant_bits, "quant_bits")
        if get_profile(profile) is not self.rules:  # a variant class built directly
            raise ValueError(f"profile={profile!r} does not match this {self.public_name}'s "
                             f"profile {self.profile!r}; construct {self.public_name}"
                             f"(profile=...)")
        self.ignore_nonfinite = check_flag(ignore_nonfinite, "ignore_nonfinite")
        self._num_batches = 0
        self._reset()

    # -- public API -------------------------------------------------------------------
    @property
    def num_batches(self) -> int:
        """Number of batches observed since construction or the last ``reset``."""
        return self._num_batches

    def observe(self, x: Any) -> None:
        """Update the statistics with one batch ``x`` (a floating array; never modified)."""
        arr = as_float_array(
            x, "x", allow_nonfinite=self.ignore_nonfinite, min_ndim=self.min_ndim
        )
        check_float32_range(arr, "x")
        self._observe(arr)
        self._num_batches += 1

    def compute(self) -> QParams:
        """Return the quantization parameters decided from everything observed."""
        if self._num_batches == 0:
            raise ValueError(
                f"{self.public_name}.compute() called before observe(): no data observed"
            )
        return self._compute()

    def merge(self, other: ObserverBase) -> None:
        """Fold ``other``'s statistics into this observer (exact-merge profiles only).

        After ``a.merge(b)``, ``a.compute()`` equals what one observer fed a's and b's
        batches would compute, bit for bit. ``other`` is not modified; ``a.merge(a)``
        merges a snapshot of ``a`` (every batch counted twice). A profile whose rules lack
        ``exact_merge`` (paddleslim: order-dependent state) raises ``NotImplementedError``.
        """
        if not self.rules.exact_merge:
            exact = ", ".join(f"profile={n!r}" for n in PROFILES if get_profile(n).exact_merge)
            raise NotImplementedError(
                f"merge is only defined for {exact}: profile={self.profile!r} reproduces "
                f"{self.rules.reproduces}, whose observer state depends on batch order and "
                "has no merge"
            )
        if not isinstance(other, ObserverBase) or type(other).family is not type(self).family:
            got = other.public_name if isinstance(other, ObserverBase) else type(other).__name__
            raise TypeError(f"other must be a {self.public_name}, got {got}")
        mine, theirs = self.config(), other.config()
        if mine != theirs:
            raise ValueError(
                f"cannot merge observers with different configurations: {mine} vs {theirs}"
            )
        if other._num_batches == 0:
            return
        if other is self:  # merge an identical copy, never a state that grows while read
            other = copy.deepcopy(self)
        self._merge(other)
        self._num_batches += other._num_batches

    def reset(self) -> None:
        """Forget every observed batch."""
        self._num_batches = 0
        self._reset()

    def config(self) -> dict[str, Any]:
        """The constructor configuration (a new dict); observers merge only when equal."""
        return dict(self._config())

    def state(self) -> dict[str, Any]:
        """The observer's statistics as a dict of copies (keys documented per class).

        Always holds ``num_batches``; observers with a fixed-size, reducible state add it
        (e.g. ``abs_max``, ``histogram``), which is what a cross-process merge reduces.
        """
        return {"num_batches": self._num_batches, **self._state()}

    # -- copies -------------------------------------------------------------------------
    def __deepcopy__(self, memo: dict[int, Any]) -> ObserverBase:
        new = object.__new__(type(self))
        memo[id(self)] = new
        for v in self.__dict__.values():
            if isinstance(v, QParams):  # immutable: a copy may share it
                memo[id(v)] = v
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def __copy__(self) -> ObserverBase:
        """An independent observer: the statistics are mutable, so they are copied."""
        return self.__deepcopy__({})

    # -- statistics ingestion: shared checks ------------------------------------------
    def _ingest(self, batches: int) -> None:
        """Count ``batches`` observed batches after an ``observe_<statistic>`` call."""
        self._num_batches += batches

    @staticmethod
    def _check_batches(batches: Any) -> int:
        if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)):
            raise TypeError(f"batches must be an integer >= 1, got {batches!r}")
        if int(batches) < 1:
            raise ValueError(f"batches must be >= 1, got {int(batches)}")
        return int(batches)

    def _shape_only(self, shape: Any, dtype: Any = np.float32) -> np.ndarray:
        """A zero-strided stand-in for a batch known only by ``shape`` and ``dtype``, for
        the shape checks ``observe`` makes (``TypeError``/``ValueError`` like it).

        ``shape`` is a tuple or list of non-negative integers (not bools or floats);
        ``dtype`` a floating dtype. An empty shape (a zero dimension) is refused like an
        empty batch."""
        if not isinstance(shape, (tuple, list)):
            raise TypeError(f"shape must be a tuple of integers, got {_describe(shape)}")
        shp = tuple(check_int(d, f"shape[{i}]", low=0) for i, d in enumerate(shape))
        try:
            dt = np.dtype(dtype) if dtype is not None else None  # np.dtype(None) is float64
        except (TypeError, ValueError):
            dt = None
        if dt is None:
            raise TypeError(f"dtype must be a floating dtype, got {_describe(dtype)}")
        if dt.kind != "f":
            raise TypeError(f"dtype must be a floating dtype, got {dt}")
        if len(shp) < self.min_ndim:
            raise ValueError(f"x must have at least {self.min_ndim} dimension(s), got shape "
                             f"{shp}")
        if 0 in shp:
            raise ValueError(f"shape {shp} has a zero dimension: x must not be empty")
        return np.broadcast_to(np.zeros((), dt.newbyteorder("=")), shp)

    @staticmethod
    def _stat_scalar(value: Any, name: str) -> float:
        """A statistic given as one real number (Python or NumPy int/float, or a 0-D real
        array; not bool, complex, str or None), as a float; NaN and +-inf pass (each method
        says where they are allowed), a finite value beyond float32's range raises."""
        arr = as_real_array(value, name)
        if arr.ndim != 0:
            raise TypeError(f"{name} must be a real scalar, got {_describe(value)}")
        check_float32_range(arr, name)
        return float(arr)

    @staticmethod
    def _stat_array(value: Any, name: str, ndim: int) -> np.ndarray:
        """A statistic given as a ``ndim``-D floating array (native byte order; read-only
        for the caller), with no finite value beyond float32's range."""
        want = f"{name} must be a {ndim}-D floating array"
        if value is None or isinstance(value, (str, bytes)):
            raise TypeError(f"{want}, got {_describe(value)}")
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:  # ragged or exotic sequences
            raise TypeError(f"{want}, got {_describe(value)}") from exc
        if arr.ndim != ndim or arr.dtype.kind != "f":
            raise TypeError(f"{want}, got dtype {arr.dtype} shape {arr.shape}")
        arr = as_float_array(arr, name, allow_empty=True)  # native byte order
        check_float32_range(arr, name)
        return arr

    @staticmethod
    def _check_nonnegative(arr: np.ndarray, name: str) -> None:
        """``ValueError`` for a negative element (NaN passes): abs-maxima and losses are
        never negative."""
        with np.errstate(invalid="ignore"):
            neg = np.asarray(arr) < 0
        if np.any(neg):
            i = int(np.flatnonzero(neg.ravel())[0])
            raise ValueError(f"{name} must be >= 0, got {np.asarray(arr).ravel()[i]!r} at "
                             f"flat index {i}")

    def _refuse(self, method: str) -> NoReturn:
        """Raise ``ValueError`` for a statistics entry point this profile's variant lacks.

        The public class defines such a method as ``self._refuse("<method>")``; the variants
        that support it override it. The message names the profiles whose variants do.
        """
        fam = type(self).family
        shared = getattr(fam, method)
        owners = tuple(n for n, v in fam._variants.items() if getattr(v, method) is not shared)
        need = (f"profile={owners[0]!r}" if len(owners) == 1
                else f"one of the profiles {owners}" if owners else "another profile")
        raise ValueError(f"{self.public_name}.{method} needs {need}, this observer has "
                         f"profile={self.profile!r}")

    # -- hooks ------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        """Constructor configuration; observers with different configs do not merge."""
        return {"quant_bits": self.quant_bits, "profile": self.profile}

    def _state(self) -> dict[str, Any]:
        """Observer-specific part of :meth:`state` (copies)."""
        return {}

    @abc.abstractmethod
    def _observe(self, x: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _compute(self) -> QParams: ...

    @abc.abstractmethod
    def _reset(self) -> None: ...

    def _merge(self, other: ObserverBase) -> None:
        raise NotImplementedError(f"{self.public_name} does not implement merge")

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{self.public_name}({cfg})"
