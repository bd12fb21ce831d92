"""Bad input at every public entry point of the observers and quanters.

For each entry point (constructor, ``observe``, ``observe_<statistic>``, ``merge``, ``compute``
of every observer in both profiles; constructor, ``forward``, ``backward``, ``load_state`` and
``qparams`` of every quanter) Hypothesis draws bad arguments of every kind -- NaN/Inf, None,
negative, bool/complex/str/object in place of numbers, out-of-range bits/axes/bins/percent,
empty arrays, float64 beyond float32's range -- and the test requires a ``TypeError`` or
``ValueError`` whose message names the argument, with the object's state unchanged. Valid
but unusual input (big-endian, read-only, strided views, Fortran order) must give the result
of the native contiguous array bit for bit, and the caller's array must be unchanged.
Self-merge and copies are deterministic tests checked against independent routes: a deep
copy merged instead, one observer fed the data twice, a fresh observer fed the same batches.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import refquant.quanters as rq
from refquant.histogram import ExactHistogram
from refquant.observers import OBSERVERS, AbsmaxObserver
from refquant.quanters import (
    ActLSQplusQuanter,
    FakeQuanterChannelWiseAbsMaxObserver,
    FakeQuanterWithAbsMaxObserver,
    PACTQuanter,
    WeightLSQplusQuanter,
)

F32 = np.float32
PROFILES = ("canonical", "paddleslim")
SET = settings(max_examples=6, derandomize=True, database=None, deadline=None)
#: float64 values from here on round to inf in float32 (2**128 - 2**103)
F32_OVERFLOW = 2.0**128 - 2.0**103
T, V = TypeError, ValueError


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def make_obs(name: str, profile: str, **kw: Any) -> Any:
    if name == "GroupWiseWeightObserver":
        kw.setdefault("group_size", 64)
    return OBSERVERS[name](profile=profile, **kw)


def batch_shape(name: str) -> tuple[int, int]:
    return (128, 4) if name == "GroupWiseWeightObserver" else (4, 8)


def batch(name: str, seed: int, dtype: Any = F32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(batch_shape(name)).astype(dtype)


def same(a: Any, b: Any) -> bool:
    """Bit-exact equality of observer/quanter states, QParams parts and plain values."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(same(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(same(u, v) for u, v in zip(a, b, strict=True)))
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        x, y = np.asarray(a), np.asarray(b)
        return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a)
                                                      == math.copysign(1, b))
    return type(a) is type(b) and a == b


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", value)`` or ``("raises", exception type)``."""
    try:
        return "ok", fn()
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return "raises", type(exc)


def same_qparams(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    if a[0] != b[0] or a[0] == "raises":
        return a == b
    qa, qb = a[1], b[1]
    return qa == qb and same(qa.margin, qb.margin)


def expect(exc: type[Exception], name: str, fn: Callable[[], Any]) -> None:
    """``fn()`` raises ``exc`` (not a subclass of the other kind) naming ``name``."""
    with pytest.raises((TypeError, ValueError)) as info:
        fn()
    assert isinstance(info.value, exc), (type(info.value), str(info.value))
    assert re.search(rf"(?<!\w){re.escape(name)}(?!\w)", str(info.value)), (
        name, str(info.value))


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Turn an endless loop into a failure (POSIX; a no-op elsewhere)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def fail(signum: int, frame: Any) -> None:
        raise TimeoutError(f"did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------------
# strategies of bad arguments: (value, expected exception type)
# ---------------------------------------------------------------------------------------
_NOT_NUMBERS = st.one_of(st.text(max_size=4), st.binary(min_size=1, max_size=3),
                         st.just(object()), st.lists(st.integers(0, 9), min_size=1, max_size=2),
                         st.complex_numbers(allow_nan=False).filter(lambda c: c.imag != 0),
                         st.just(np.complex64(1 + 1j)), st.just(np.array([1.0])))


def bad_ints(low: int, high: int | None = None, optional: bool = False) -> Any:
    """Not an integer (bool, float, str, ... and None unless optional): TypeError; an
    integer outside ``[low, high]``: ValueError."""
    wrong = st.one_of(st.booleans(), st.just(np.bool_(True)), st.floats(), _NOT_NUMBERS,
                      st.just(np.float64(8.0)), st.just(8.0))
    if not optional:
        wrong = st.one_of(wrong, st.none())
    out = st.integers(max_value=low - 1)
    if high is not None:
        out = st.one_of(out, st.integers(min_value=high + 1))
    return st.one_of(wrong.map(lambda v: (v, T)), out.map(lambda v: (v, V)))


def bad_flags() -> Any:
    """Anything but a bool: TypeError (0/1, 'no', None, arrays, ...)."""
    return st.one_of(st.integers(), st.floats(), st.none(), st.just("no"), st.just(""),
                     st.just(np.array(True)), _NOT_NUMBERS).map(lambda v: (v, T))


def bad_names(choices: tuple[str, ...], optional: bool = False) -> Any:
    """A str outside ``choices``: ValueError; not a str (None unless optional): TypeError."""
    wrong = st.one_of(st.integers(), st.booleans(), st.binary(max_size=3),
                      st.lists(st.sampled_from(choices), min_size=1, max_size=1),
                      st.just(np.array(choices[0])), st.just(object()), st.just(np.float32))
    if not optional:
        wrong = st.one_of(wrong, st.none())
    other = st.one_of(st.text(max_size=8), st.sampled_from([c.upper() for c in choices]),
                      st.sampled_from([c + " " for c in choices])).filter(
        lambda s: s not in choices)
    return st.one_of(wrong.map(lambda v: (v, T)), other.map(lambda v: (v, V)))


def bad_reals(ok: Callable[[float], bool]) -> Any:
    """Not a real number (bool, str, None, complex, list): TypeError; NaN, +-inf or a
    float with ``not ok(v)``: ValueError."""
    wrong = st.one_of(st.booleans(), st.none(), _NOT_NUMBERS)
    out = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, np.float64(np.nan)]),
                    st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: not ok(v)))
    return st.one_of(wrong.map(lambda v: (v, T)), out.map(lambda v: (v, V)))


def bad_optional_str() -> Any:
    return st.one_of(st.integers(), st.binary(min_size=1, max_size=3), st.just(object()),
                     st.lists(st.text(max_size=2), min_size=1, max_size=1)).map(lambda v: (v, T))


def wrong_type_ints_optional() -> Any:
    """Axes checked at construction only by type (the range needs the data's rank)."""
    return st.one_of(st.booleans(), st.floats(), _NOT_NUMBERS).map(lambda v: (v, T))


# ---------------------------------------------------------------------------------------
# observers: constructors
# ---------------------------------------------------------------------------------------
def _obs_arg_strategies(name: str, profile: str) -> dict[str, Any]:
    common = {"quant_bits": bad_ints(2, 16), "profile": bad_names(PROFILES),
              "ignore_nonfinite": bad_flags()}
    bins_low = 2**7 if profile == "canonical" else 1  # >= 2**(bits-1) canonical (bits 8)
    extra = {
        "AbsmaxObserver": {}, "AVGObserver": {},
        "MSEObserver": {"bins": bad_ints(2, 2**24, optional=True)},
        "EMDObserver": {"bins": bad_ints(2, 2**24, optional=True)},
        "HistObserver": {"bins_count": bad_ints(bins_low, 2**24),
                         "percent": bad_reals(lambda v: 0 < v <= 1),
                         "sign": bad_flags(), "symmetric": bad_flags()},
        "KLObserver": {"bins_count": bad_ints(bins_low, 2**24)},
        "AbsMaxChannelWiseWeightObserver": {"axis": wrong_type_ints_optional()},
        "MSEChannelWiseWeightObserver": {"axis": wrong_type_ints_optional()},
        "GroupWiseWeightObserver": {"group_size": bad_ints(1)},
    }[name]
    return {**common, **extra}


OBS_ARGS = [(n, p, a) for n in sorted(OBSERVERS) for p in PROFILES
            for a in sorted(_obs_arg_strategies(n, p))]


def test_every_observer_argument_has_a_bad_input_strategy():
    for name, cls in OBSERVERS.items():
        params = set(inspect.signature(cls).parameters)
        assert params == set(_obs_arg_strategies(name, "canonical")), name


@pytest.mark.parametrize("name, profile, arg", OBS_ARGS)
@SET
@given(data=st.data())
def test_observer_constructor_rejects_bad_arguments(name, profile, arg, data):
    value, exc = data.draw(_obs_arg_strategies(name, profile)[arg], label=arg)
    kw = {"profile": profile, arg: value}
    expect(exc, arg, lambda: make_obs(name, **kw) if arg != "profile"
           else make_obs(name, value))


def test_observer_constructor_examples_from_the_issue():
    for cls in (OBSERVERS["MSEObserver"], OBSERVERS["EMDObserver"]):
        expect(T, "bins", lambda c=cls: c(bins=2.9))
        expect(T, "bins", lambda c=cls: c(bins="16"))
    expect(T, "sign", lambda: OBSERVERS["HistObserver"](sign="no"))
    expect(T, "symmetric", lambda: OBSERVERS["HistObserver"](symmetric=1))


# ---------------------------------------------------------------------------------------
# observers: observe
# ---------------------------------------------------------------------------------------
BAD_X = [(None, T), ("abc", T), (b"ab", T), (object(), T), ({"a": 1}, T),
         ([[1.0, 2.0], [3.0]], T), (np.ones((4, 8), np.int32), T), (np.ones((4, 8), bool), T),
         (np.ones((4, 8), np.complex64), T), (np.array([["a", "b"]]), T),
         (np.zeros((0, 8), F32), V), (np.zeros((4, 0), np.float64), V)]


@st.composite
def poisoned(draw: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, type[Exception]]:
    """A float64 batch with one NaN, +-inf or finite value beyond float32's range."""
    x = np.zeros(shape, np.float64) + draw(st.floats(-4, 4))
    bad = draw(st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf, F32_OVERFLOW, 1e39, 1e300]),
        st.floats(min_value=F32_OVERFLOW, max_value=1e308)))
    x.flat[draw(st.integers(0, x.size - 1))] = bad * draw(st.sampled_from([1.0, -1.0]))
    return x, V


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", sorted(OBSERVERS))
@SET
@given(data=st.data())
def test_observe_rejects_bad_x_and_keeps_state(name, profile, data):
    shape = batch_shape(name)
    obs = make_obs(name, profile)
    obs.observe(batch(name, 0))
    before = copy.deepcopy(obs.state())
    extra = [(np.float32(1.0), V)] if obs.min_ndim else []
    x, exc = data.draw(st.one_of(st.sampled_from(BAD_X + extra), poisoned(shape)), label="x")
    x0 = copy.deepcopy(x)
    expect(exc, "x", lambda: obs.observe(x))
    assert same(obs.state(), before)
    if isinstance(x, np.ndarray):
        assert same(x, x0)


def test_float64_beyond_float32_range_is_refused_everywhere():
    """float64 1e39 / 1e300 used to give scale inf (MSE/EMD/channel-wise) or a raw
    OverflowError (AVG); a float32 maximum stored as float64 stays valid."""
    for name in OBSERVERS:
        for profile in PROFILES:
            for big in (1e39, -1e300, F32_OVERFLOW):
                x = batch(name, 1, np.float64)
                x[1, 2] = big
                expect(V, "x", lambda n=name, p=profile, x=x: make_obs(n, p).observe(x))
            x = batch(name, 1, np.float64)
            x[1, 2] = float(np.finfo(F32).max)
            obs = make_obs(name, profile)
            obs.observe(x)
            if profile == "canonical":
                scale = obs.compute().scale
                assert np.all(np.isfinite(scale)), (name, scale)


@pytest.mark.parametrize("name", ["AbsMaxChannelWiseWeightObserver",
                                  "MSEChannelWiseWeightObserver"])
@pytest.mark.parametrize("profile", PROFILES)
def test_channel_axis_out_of_range_names_axis(name, profile):
    for axis in (2, -3, 7):
        obs = make_obs(name, profile, axis=axis)
        expect(V, "axis", lambda o=obs: o.observe(batch(name, 0)))
        assert obs.num_batches == 0


# -- valid but unusual batches ------------------------------------------------------------
def _variant(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "big-endian":
        return x.astype(x.dtype.newbyteorder(">"))
    if kind == "read-only":
        y = x.copy()
        y.setflags(write=False)
        return y
    if kind == "strided":
        big = np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype)
        big[:, ::2] = x
        view = big[:, ::2]
        view.setflags(write=False)
        return view
    return np.asfortranarray(x)


_FINITE = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", sorted(OBSERVERS))
@SET
@given(data=st.data())
def test_unusual_batches_give_the_native_result_bit_for_bit(name, profile, data):
    shape = batch_shape(name)
    dtype = data.draw(st.sampled_from([F32, np.float64]), label="dtype")
    kind = data.draw(st.sampled_from(["big-endian", "read-only", "strided", "fortran"]),
                     label="kind")
    xs = [data.draw(arrays(F32, shape, elements=_FINITE), label="x").astype(dtype)
          for _ in range(2)]
    native, odd = make_obs(name, profile), make_obs(name, profile)
    variants = [_variant(x, kind) for x in xs]
    saved = [(v.tobytes(), v.dtype, v.strides, v.flags.writeable) for v in variants]
    ra = [outcome(lambda x=x: native.observe(np.ascontiguousarray(x))) for x in xs]
    rb = [outcome(lambda v=v: odd.observe(v)) for v in variants]
    assert ra == rb
    assert same_qparams(outcome(native.compute), outcome(odd.compute))
    assert same(native.state(), odd.state())
    assert saved == [(v.tobytes(), v.dtype, v.strides, v.flags.writeable) for v in variants]


# ---------------------------------------------------------------------------------------
# observers: observe_<statistic>
# ---------------------------------------------------------------------------------------
X_SMALL = np.array([1.0, -2.0, 0.5, 3.0], F32)


def _hist_for(obs: Any, values: np.ndarray = X_SMALL) -> ExactHistogram:
    bins = obs.bins_count if hasattr(obs, "bins_count") else obs.histogram_bins
    h = ExactHistogram(bins, symmetric=getattr(obs, "symmetric", True))
    h.add(values)
    return h


def _counts_on(lo: float, hi: float, bins: int) -> np.ndarray:
    return np.histogram(X_SMALL, bins=bins, range=(lo, hi))[0]


_SCALAR_TYPES = st.sampled_from([(None, T), ("1.5", T), (True, T), (np.bool_(False), T),
                                 (1j, T), ([1.0], T), (np.array([1.0]), T), (object(), T)])
_BEYOND = st.one_of(st.sampled_from([1e39, F32_OVERFLOW, 1e300]),
                    st.floats(min_value=F32_OVERFLOW, max_value=1e308)).flatmap(
    lambda v: st.sampled_from([(v, V), (-v, V)]))
_NEGATIVE = st.floats(max_value=-1e-30, min_value=-1e30).map(lambda v: (v, V))
_NONFINITE = st.sampled_from([(math.nan, V), (math.inf, V)])


def _arrays_bad(ndim: int, canonical: bool) -> Any:
    """Bad 1-D / 2-D statistic arrays (``maxima``)."""
    shape = (3,) if ndim == 1 else (2, 4)
    other = (2, 4) if ndim == 1 else (8,)
    vals = [(None, T), ("x", T), (object(), T), (np.ones(shape, np.int64), T),
            (np.ones(shape, bool), T), (np.ones(shape, complex), T), (np.ones(other), T),
            (np.float64(1.0), T), (np.full(shape, 1e39), V), (np.full(shape, -1.0), V)]
    if canonical:
        vals += [(np.full(shape, np.nan), V), (np.full(shape, np.inf), V)]
    return st.sampled_from(vals)


def _hist_bad(obs: Any) -> Any:
    bins = obs.bins_count if hasattr(obs, "bins_count") else obs.histogram_bins
    sym = getattr(obs, "symmetric", True)
    big = ExactHistogram(bins, symmetric=sym)
    big.add(np.array([1.0, 1e39]))
    return st.sampled_from([
        (None, T), (np.ones(bins, np.int64), T), ("h", T), (5, T),
        (ExactHistogram(bins * 2, symmetric=sym), V), (ExactHistogram(bins, symmetric=not sym), V),
        (big, V)])


_BATCHES = bad_ints(1)
_SHAPES = st.sampled_from([(None, T), (5, T), ("ab", T), ((2.5, 8), T), ((True, 8), T),
                           (((4,), 8), T), (np.array([4, 8]), T), ((4, 8.0), T),
                           ((-1, 8), V), ((0, 8), V), ((4, 0), V)])


def _stat_cases() -> list[tuple[str, str, str, str]]:
    """(observer, profile, method, argument) for every statistics entry point."""
    out = []
    for p in PROFILES:
        out += [("AbsmaxObserver", p, "observe_abs_max", a) for a in ("value", "batches")]
        out += [("AVGObserver", p, "observe_sample_abs_max", a) for a in ("maxima", "batches")]
        out += [("AbsMaxChannelWiseWeightObserver", p, "observe_channel_abs_max", a)
                for a in ("maxima", "shape", "batches")]
        out += [("GroupWiseWeightObserver", p, "observe_group_abs_max", a)
                for a in ("maxima", "batches")]
        out += [("GroupWiseWeightObserver", p, "check_weight", a) for a in ("shape", "dtype")]
    out += [("AVGObserver", "paddleslim", "observe_batch_means", "means")]
    for n in ("HistObserver", "KLObserver", "MSEObserver", "EMDObserver"):
        out += [(n, "canonical", "observe_histogram", a) for a in ("hist", "batches")]
    for n in ("HistObserver", "KLObserver"):
        out += [(n, "paddleslim", "observe_slim_batch", a)
                for a in ("batch_min", "batch_max", "counts_on")]
    for n in ("MSEObserver", "EMDObserver"):
        out += [(n, "paddleslim", "observe_losses", a) for a in ("batch_max", "losses", "bound")]
    return out


STAT_CASES = _stat_cases()


def _valid_kwargs(obs: Any, method: str) -> dict[str, Any]:
    return {
        "observe_abs_max": lambda: {"value": 1.5, "batches": 1},
        "observe_sample_abs_max": lambda: {"maxima": np.array([1.0, 2.0]), "batches": 1},
        "observe_batch_means": lambda: {"means": [1.0, 0.5]},
        "observe_histogram": lambda: {"hist": _hist_for(obs), "batches": 1},
        "observe_slim_batch": lambda: {"batch_min": -2.0, "batch_max": 3.0,
                                       "counts_on": _counts_on},
        "observe_losses": lambda: {"batch_max": 2.0, "losses": np.linspace(1.0, 2.0, 35),
                                   "bound": 0.0},
        "observe_channel_abs_max": lambda: {"maxima": np.ones(8), "shape": (4, 8),
                                            "batches": 1},
        "observe_group_abs_max": lambda: {"maxima": np.ones((2, 4)), "batches": 1},
        "check_weight": lambda: {"shape": (128, 4), "dtype": np.float32},
    }[method]()


def _bad_for(obs: Any, method: str, arg: str) -> Any:
    canonical = obs.profile == "canonical"
    if arg == "batches":
        return _BATCHES
    if method == "observe_abs_max":
        extra = [_NONFINITE] if canonical else []
        return st.one_of(_SCALAR_TYPES, _BEYOND, _NEGATIVE, *extra)
    if arg == "maxima":
        return _arrays_bad(2 if method == "observe_group_abs_max" else 1, canonical)
    if arg == "means":
        return st.sampled_from([(None, T), ("1", T), ([True], T), ([1j], T), (["a"], T),
                                (object(), T), ([[1.0]], V), ([-1.0], V), ([1e39], V),
                                ([], V)])
    if arg == "hist":
        return _hist_bad(obs)
    if arg in ("batch_min", "batch_max"):
        cases = st.one_of(_SCALAR_TYPES, _BEYOND)
        if method == "observe_slim_batch":  # min > max
            flip = (5.0, V) if arg == "batch_min" else (-5.0, V)
            cases = st.one_of(cases, st.just(flip))
        elif obs._loss == "mse":
            cases = st.one_of(cases, _NEGATIVE)
        return cases
    if arg == "counts_on":
        return st.sampled_from([
            (None, T), (5, T), ("f", T),
            (lambda lo, hi, b: np.ones(b, np.float64), T),
            (lambda lo, hi, b: np.ones(b + 1, np.int64), T),
            (lambda lo, hi, b: -np.ones(b, np.int64), V)])
    if arg == "losses":
        return st.sampled_from([(None, T), ("x", T), ([True] * 35, T), ([1j] * 35, T),
                                (["a"] * 35, T), (np.zeros(34), V), (np.zeros((5, 7)), V),
                                ([-1.0] * 35, V)])
    if arg == "bound":  # NaN / inf are what non-finite data gives: valid
        return st.one_of(_SCALAR_TYPES, _NEGATIVE)
    if arg == "shape":
        return _SHAPES
    if arg == "dtype":
        return st.sampled_from([(None, T), ("int32", T), (np.int64, T), ("foo", T),
                                (object(), T), (bool, T), (np.complex64, T)])
    raise AssertionError((method, arg))


def test_every_statistics_entry_point_is_covered():
    methods = {(n, m) for n, cls in OBSERVERS.items() for m in dir(cls)
               if m.startswith("observe_") or m == "check_weight"}
    covered = {(n, m) for n, _, m, _ in STAT_CASES}
    assert methods == covered
    for n, _, m, a in STAT_CASES:
        params = set(inspect.signature(getattr(OBSERVERS[n], m)).parameters) - {"self"}
        assert a in params, (n, m, a)


@pytest.mark.parametrize("name, profile, method, arg", STAT_CASES)
@SET
@given(data=st.data())
def test_statistics_entry_points_reject_bad_arguments(name, profile, method, arg, data):
    obs = make_obs(name, profile)
    getattr(copy.deepcopy(obs), method)(**_valid_kwargs(obs, method))  # the baseline is valid
    kw = _valid_kwargs(obs, method)
    before = copy.deepcopy(obs.state())
    kw[arg], exc = data.draw(_bad_for(obs, method, arg), label=arg)
    expect(exc, arg, lambda: getattr(obs, method)(**kw))
    assert same(obs.state(), before)


@pytest.mark.parametrize("name, profile, method", sorted(
    {(n, p, m) for n, p, m, a in STAT_CASES if a in ("maxima", "means", "losses")}))
def test_statistics_arrays_big_endian_and_read_only_give_the_native_state(name, profile,
                                                                          method):
    native, odd = make_obs(name, profile), make_obs(name, profile)
    kw = _valid_kwargs(native, method)
    getattr(native, method)(**kw)
    odd_kw = {}
    for k, v in kw.items():
        if isinstance(v, (np.ndarray, list)) and k != "shape":
            v = np.asarray(v, np.float64).astype(">f8")
            v.setflags(write=False)
        odd_kw[k] = v
    saved = copy.deepcopy(odd_kw)
    getattr(odd, method)(**odd_kw)
    assert same(native.state(), odd.state())
    assert same_qparams(outcome(native.compute), outcome(odd.compute))
    assert same(odd_kw, saved)


# ---------------------------------------------------------------------------------------
# observers: merge and copies
# ---------------------------------------------------------------------------------------
def _fed(name: str, profile: str, seeds: list[int]) -> Any:
    obs = make_obs(name, profile)
    for s in seeds:
        obs.observe(batch(name, s))
    return obs


@pytest.mark.parametrize("name", sorted(OBSERVERS))
def test_self_merge_doubles_the_data_exactly(name):
    """``a.merge(a)`` == ``a.merge(deepcopy(a))`` == one observer fed the data twice."""
    a = _fed(name, "canonical", [1, 2])
    b = _fed(name, "canonical", [1, 2])
    twice = _fed(name, "canonical", [1, 2, 1, 2])
    with time_limit(20):
        a.merge(a)
    b.merge(copy.deepcopy(b))
    assert same(a.state(), b.state()) and same(a.state(), twice.state())
    assert same_qparams(outcome(a.compute), outcome(twice.compute))
    assert a.num_batches == 4


def test_exact_histogram_self_merge_and_copies():
    h, twice = ExactHistogram(64), ExactHistogram(64)
    for x in (X_SMALL, X_SMALL * 7):
        h.add(x)
        twice.add(x)
    for x in (X_SMALL, X_SMALL * 7):
        twice.add(x)
    c = copy.copy(h)
    h.merge(h)
    assert h == twice and c != h
    c.add(np.array([100.0], F32))
    assert h == twice
    be = ExactHistogram(64)
    be.add(X_SMALL.astype(">f4"))
    one = ExactHistogram(64)
    one.add(X_SMALL)
    assert be == one


@pytest.mark.parametrize("name", sorted(OBSERVERS))
def test_paddleslim_merge_is_not_implemented_not_silent(name):
    a = _fed(name, "paddleslim", [1])
    before = copy.deepcopy(a.state())
    with pytest.raises(NotImplementedError, match="profile='canonical'"):
        a.merge(a)
    assert same(a.state(), before)


def _mismatched(name: str) -> list[tuple[Any, type[Exception], str]]:
    """Observers (or non-observers) that ``name`` must refuse to merge."""
    other_cls = "KLObserver" if name != "KLObserver" else "HistObserver"
    cases: list[tuple[Any, type[Exception], str]] = [
        (None, T, "other"), (5, T, "other"), ("obs", T, "other"),
        (_fed(other_cls, "canonical", [1]), T, "other"),
        (_fed(name, "paddleslim", [1]), V, "configurations"),
        (make_obs(name, "canonical", quant_bits=4), V, "configurations")]
    if name in ("AbsMaxChannelWiseWeightObserver", "MSEChannelWiseWeightObserver"):
        o = make_obs(name, "canonical")
        o.observe(np.ones((4, 5), F32))  # 5 channels instead of 8
        cases.append((o, V, "channel"))
    if name == "GroupWiseWeightObserver":
        o = make_obs(name, "canonical")
        o.observe(np.ones((64, 4), F32))
        cases.append((o, V, "shaped"))
    if name == "HistObserver":
        cases.append((make_obs(name, "canonical", percent=0.5), V, "configurations"))
    if name in ("HistObserver", "KLObserver"):
        cases.append((make_obs(name, "canonical", bins_count=1024), V, "configurations"))
    return cases


@pytest.mark.parametrize("name", sorted(OBSERVERS))
@SET
@given(data=st.data())
def test_merge_with_a_mismatched_observer_is_refused(name, data):
    a = _fed(name, "canonical", [1])
    other, exc, word = data.draw(st.sampled_from(_mismatched(name)), label="other")
    before = copy.deepcopy(a.state())
    theirs = copy.deepcopy(other.state()) if hasattr(other, "state") else None
    expect(exc, word, lambda: a.merge(other))
    assert same(a.state(), before)
    if theirs is not None:
        assert same(other.state(), theirs)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", sorted(OBSERVERS))
def test_copies_are_independent(name, profile):
    """copy.copy and copy.deepcopy give observers that share no state with the original:
    each equals a fresh observer fed the same batches."""
    a = _fed(name, profile, [1])
    shallow, deep = copy.copy(a), copy.deepcopy(a)
    shallow.observe(batch(name, 2))
    deep.observe(batch(name, 3))
    deep.observe(batch(name, 4))
    for obs, seeds in ((a, [1]), (shallow, [1, 2]), (deep, [1, 3, 4])):
        ref = _fed(name, profile, seeds)
        assert same(obs.state(), ref.state()), seeds
        assert same_qparams(outcome(obs.compute), outcome(ref.compute)), seeds
    a.observe(batch(name, 5))
    assert same(shallow.state(), _fed(name, profile, [1, 2]).state())


def test_copy_of_a_cached_paddleslim_observer_keeps_its_cache():
    a = AbsmaxObserver(profile="paddleslim")
    a.observe(X_SMALL)
    qp = a.compute()
    b = copy.copy(a)
    b.observe(X_SMALL * 10)  # PaddleSlim's scales() cache: later batches do not count
    assert b.compute() == qp and a.compute() is qp


# ---------------------------------------------------------------------------------------
# quanters
# ---------------------------------------------------------------------------------------
QUANTER_KINDS: dict[str, tuple[Callable[[str], Any], tuple[str, ...]]] = {
    "abs_max": (lambda p: FakeQuanterWithAbsMaxObserver(profile=p), PROFILES),
    "channel_wise": (lambda p: FakeQuanterChannelWiseAbsMaxObserver(quant_axis=0, profile=p),
                     PROFILES),
    "pact": (lambda p: PACTQuanter(FakeQuanterWithAbsMaxObserver(profile=p), init_value=2.0,
                                   profile=p), PROFILES),
    "pact_paper": (lambda p: PACTQuanter(init_value=2.0, profile=p), ("canonical",)),
    "weight_lsq": (lambda p: WeightLSQplusQuanter(profile=p), PROFILES),
    "weight_lsq_channel": (lambda p: WeightLSQplusQuanter(per_channel=True, profile=p),
                           PROFILES),
    "act_lsq": (lambda p: ActLSQplusQuanter(profile=p), PROFILES),
    "act_lsq_asym": (lambda p: ActLSQplusQuanter(symmetric=False, profile=p), PROFILES),
}
Q_CASES = [(k, p) for k, (_, ps) in QUANTER_KINDS.items() for p in ps]
X_Q = np.random.default_rng(7).standard_normal((4, 6)).astype(F32)


def make_q(kind: str, profile: str) -> Any:
    return QUANTER_KINDS[kind][0](profile)


def _q_arg_strategies(cls: type, profile: str) -> dict[str, Any]:
    common = {"profile": bad_names(PROFILES), "dtype": bad_names(("float32",)),
              "name": bad_optional_str()}
    lsq = {"quant_bits": bad_ints(2, 16), "sign": bad_flags(), "symmetric": bad_flags(),
           "per_channel": bad_flags(), "batch_init": bad_ints(1), "quant_linear": bad_flags(),
           "reduce_type": bad_names(("max",), optional=True),
           "isa": bad_names(("avx2", "avx512", "host"))}
    init_ok = (lambda v: v > 0 and abs(v) < F32_OVERFLOW) if profile == "canonical" \
        else (lambda v: abs(v) < F32_OVERFLOW)
    table = {
        FakeQuanterWithAbsMaxObserver: {"moving_rate": bad_reals(lambda v: 0 < v < 1),
                                        "bit_length": bad_ints(2, 16),
                                        "ignore_nonfinite": bad_flags()},
        FakeQuanterChannelWiseAbsMaxObserver: {
            "bit_length": bad_ints(2, 16), "ignore_nonfinite": bad_flags(),
            "quant_axis": bad_ints(0, 1) if profile == "paddleslim"
            else wrong_type_ints_optional().filter(lambda t: t[0] is not None)},
        PACTQuanter: {"quanter": st.sampled_from([(5, T), ("q", T), (object(), T),
                                                  (AbsmaxObserver(), T)]),
                      "init_value": bad_reals(init_ok),
                      "learning_rate": bad_reals(lambda v: v >= 0),
                      "signed": bad_flags(), "quant_bits": bad_ints(2, 16)},
        WeightLSQplusQuanter: {**lsq, "channel_num": bad_ints(1, optional=True),
                               "quant_axis": wrong_type_ints_optional() if profile == "canonical"
                               else st.sampled_from([(0, V), (1, V), ("0", V), (True, V)])},
        ActLSQplusQuanter: lsq,
    }[cls]
    return {**common, **table}


Q_CLASSES = [getattr(rq, n) for n in rq.__all__ if isinstance(getattr(rq, n), type)]
Q_ARGS = [(c.__name__, p, a) for c in Q_CLASSES for p in PROFILES
          for a in sorted(_q_arg_strategies(c, p))]


def test_every_quanter_and_argument_is_covered():
    covered = {type(make_q(k, p)).family for k, p in Q_CASES}
    assert covered == set(Q_CLASSES)
    for cls in Q_CLASSES:
        assert set(inspect.signature(cls).parameters) == set(
            _q_arg_strategies(cls, "canonical")), cls.__name__


def _q_base_kwargs(cls: type, profile: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"profile": profile}
    if cls is PACTQuanter and profile == "paddleslim":
        kw["quanter"] = FakeQuanterWithAbsMaxObserver(profile="paddleslim")
    return kw


@pytest.mark.parametrize("cls_name, profile, arg", Q_ARGS)
@SET
@given(data=st.data())
def test_quanter_constructor_rejects_bad_arguments(cls_name, profile, arg, data):
    cls = getattr(rq, cls_name)
    value, exc = data.draw(_q_arg_strategies(cls, profile)[arg], label=arg)
    kw = _q_base_kwargs(cls, profile)
    kw[arg] = value
    expect(exc, arg, lambda: cls(**kw))


def test_pact_quanter_argument_checks_per_profile():
    expect(T, "quanter", lambda: PACTQuanter(profile="paddleslim"))
    expect(V, "quanter", lambda: PACTQuanter(FakeQuanterWithAbsMaxObserver(),
                                             profile="paddleslim"))
    expect(V, "init_value", lambda: PACTQuanter(init_value=1e39))


# -- forward / backward ---------------------------------------------------------------------
@pytest.mark.parametrize("kind, profile", Q_CASES)
@SET
@given(data=st.data())
def test_forward_and_backward_reject_bad_x(kind, profile, data):
    q = make_q(kind, profile)
    q.forward(X_Q)
    before = q.state
    x, exc = data.draw(st.one_of(st.sampled_from(BAD_X), poisoned(X_Q.shape)), label="x")
    expect(exc, "x", lambda: q.forward(x))
    if isinstance(q, PACTQuanter):
        expect(exc, "x", lambda: q.clip(x))
    assert same(q.state, before)
    grad = np.ones(X_Q.shape, F32)
    expect(exc, "x", lambda: q.backward(x, grad))
    g, gexc = data.draw(st.one_of(
        st.sampled_from([(None, T), ("g", T), (np.ones(X_Q.shape, np.int64), T),
                         (np.ones(X_Q.shape, complex), T), (np.ones((4, 5), F32), V),
                         (np.ones(X_Q.size, F32), V)]),
        poisoned(X_Q.shape)), label="grad_y")
    expect(gexc, "grad_y", lambda: q.backward(X_Q, g))
    assert same(q.state, before)


def test_forward_no_longer_turns_1e39_into_a_finite_value():
    x = np.array([[1.0, 1e39, -2.0], [0.5, 0.25, 3.0]])
    for kind, profile in Q_CASES:
        for nonfinite_ok in (False, True):
            q = make_q(kind, profile)
            if nonfinite_ok and hasattr(q, "ignore_nonfinite"):
                q = type(q)(profile=profile, ignore_nonfinite=True)
            expect(V, "x", lambda q=q: q.forward(x))


@pytest.mark.parametrize("profile", PROFILES)
def test_channel_wise_quant_axis_out_of_range_at_forward(profile):
    q = FakeQuanterChannelWiseAbsMaxObserver(quant_axis=1, profile=profile)
    if profile == "paddleslim":  # PaddleSlim's kernel needs a rank >= 2 weight
        expect(V, "x", lambda: q.forward(np.ones(5, F32)))
    else:
        expect(V, "quant_axis", lambda: q.forward(np.ones(5, F32)))
    q = FakeQuanterChannelWiseAbsMaxObserver(quant_axis=-5)
    expect(V, "quant_axis", lambda: q.forward(X_Q))


# -- load_state ---------------------------------------------------------------------------
def _state_bad(q: Any, key: str, valid: Any) -> Any:
    """Bad values for ``state[key]`` given a valid one."""
    profile = q.profile
    leaf = key.split(".")[-1]
    shape = np.shape(valid) if valid is not None else ()
    types = [("abc", T), (None, T), (True, T), (1j, T), (object(), T), (np.array(["a"]), T),
             (np.ones(shape, complex), T)]
    if leaf == "init_state":
        return st.sampled_from([(-1, V), (True, T), (1.5, T), ("1", T), (None, T), (0, V)])
    if leaf == "zero_point":
        return st.sampled_from([(1.5, V), (1000, V), (-1000, V), ("a", T), (True, T),
                                (np.array([np.nan], F32), V)])
    if leaf == "g":
        return st.sampled_from([(None, V), (-1.0, V), (0.0, V), (math.nan, V), (np.ones(2), V),
                                ("x", T), (True, T), (1e39, V)])
    vals = types + [(np.full(shape, np.nan), V), (np.full(shape, np.inf), V),
                    (np.full(shape, 1e39), V), (np.ones((2, 3, 2)), V)]
    if leaf in ("scale", "state", "accum") or (leaf == "alpha" and profile == "canonical"):
        vals.append((np.full(shape, -1.0), V))
    if (leaf == "scale" and profile == "canonical" and "lsq" in type(q).__name__.lower()) or (
            leaf == "alpha" and profile == "canonical"):
        vals.append((np.zeros(shape), V))
    if len(shape) == 1 and shape[0] > 0:
        vals.append((np.ones(shape[0] + 1), V))
    return st.sampled_from(vals)


LOAD_CASES = [(k, p, key) for k, p in Q_CASES for key in sorted(make_q(k, p).state)]


@pytest.mark.parametrize("kind, profile, key", LOAD_CASES)
@SET
@given(data=st.data())
def test_load_state_rejects_bad_entries_and_changes_nothing(kind, profile, key, data):
    q = make_q(kind, profile)
    q.forward(X_Q)
    if kind == "act_lsq_asym" and profile == "paddleslim":
        q.zero_points()  # the cached zero point is part of the state
    good = q.state
    q.load_state(copy.deepcopy(good))  # the state round-trips
    assert same(q.state, good)
    value, exc = data.draw(_state_bad(q, key, good[key]), label=key)
    bad = dict(good, **{key: value})
    leaf = key.split(".")[-1]
    expect(exc, f"'{leaf}'", lambda: q.load_state(bad))
    assert same(q.state, good)


@pytest.mark.parametrize("kind, profile", Q_CASES)
def test_load_state_rejects_bad_containers(kind, profile):
    q = make_q(kind, profile)
    good = q.state
    for bad in (None, [("scale", 1.0)], "state", 5):
        expect(T, "state", lambda b=bad: q.load_state(b))
    expect(V, "'bogus'", lambda: q.load_state(dict(good, bogus=1)))
    first = sorted(good)[0]
    missing = {k: v for k, v in good.items() if k != first}
    with pytest.raises(ValueError):
        q.load_state(missing)
    assert same(q.state, good)


@pytest.mark.parametrize("kind, profile", Q_CASES)
def test_load_state_copies_unusual_arrays(kind, profile):
    """Big-endian / read-only arrays load as their native values; the caller's arrays are
    neither modified nor shared afterwards."""
    q, ref = make_q(kind, profile), make_q(kind, profile)
    q.forward(X_Q)
    st_ = q.state
    odd = {}
    for k, v in st_.items():
        if isinstance(v, np.ndarray):
            v = v.astype(v.dtype.newbyteorder(">"))
            v.setflags(write=False)
        odd[k] = v
    saved = copy.deepcopy(odd)
    ref.load_state(odd)
    assert same(ref.state, st_) and same(odd, saved)
    writable = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st_.items()}
    ref.load_state(writable)
    for v in writable.values():
        if isinstance(v, np.ndarray) and v.size:
            v[...] = 3
    assert same(ref.state, st_)
    assert same(outcome(lambda: ref.forward(X_Q)), outcome(lambda: q.forward(X_Q)))


def test_wrongly_shaped_scale_no_longer_changes_the_output_shape():
    q = FakeQuanterWithAbsMaxObserver()
    q.forward(X_Q)
    st_ = q.state
    for bad in (np.ones((2, 2), F32), np.ones(3, F32), np.ones((), F32)):
        expect(V, "'scale'", lambda b=bad: q.load_state(dict(st_, scale=b)))
    assert q.forward(X_Q).shape == X_Q.shape


# -- qparams before forward -------------------------------------------------------------
@pytest.mark.parametrize("kind", [k for k, (_, ps) in QUANTER_KINDS.items()])
def test_canonical_qparams_before_forward_raises(kind):
    q = make_q(kind, "canonical")
    if kind == "pact_paper":  # alpha is the clip value from the start, not a placeholder
        assert float(q.qparams().scale) == 2.0
        return
    with pytest.raises(ValueError, match="before forward"):
        q.qparams()
    if kind != "channel_wise":  # its scales() is documented as empty before forward
        with pytest.raises(ValueError, match="before forward"):
            q.scales()
    q.forward(X_Q)
    assert np.all(np.isfinite(q.qparams().scale))
    assert np.array_equal(q.scales().ravel(), q.qparams().scale.ravel())


def test_paddleslim_qparams_before_forward_reports_paddles_initial_value():
    q = FakeQuanterWithAbsMaxObserver(profile="paddleslim")
    assert float(q.qparams().scale) == float(F32(0.001))


def test_canonical_eval_forward_before_training_forward_raises():
    q = FakeQuanterWithAbsMaxObserver()
    q.eval()
    with pytest.raises(ValueError, match="before forward"):
        q.forward(X_Q)


# -- valid but unusual x ---------------------------------------------------------------------
@pytest.mark.parametrize("kind, profile", Q_CASES)
@SET
@given(data=st.data())
def test_quanters_give_unusual_x_the_native_result(kind, profile, data):
    kind_x = data.draw(st.sampled_from(["big-endian", "read-only", "strided", "fortran"]),
                       label="layout")
    dtype = data.draw(st.sampled_from([F32, np.float64]), label="dtype")
    x = data.draw(arrays(F32, (4, 6), elements=_FINITE), label="x").astype(dtype)
    g = data.draw(arrays(F32, (4, 6), elements=_FINITE), label="grad")
    v, gv = _variant(x, kind_x), _variant(g, kind_x)
    saved = (v.tobytes(), gv.tobytes())
    native, odd = make_q(kind, profile), make_q(kind, profile)
    ya = outcome(lambda: native.forward(np.ascontiguousarray(x)))
    yb = outcome(lambda: odd.forward(v))
    assert ya[0] == yb[0] and (ya[0] == "raises" and ya == yb or same(ya[1], yb[1]))
    assert same(native.state, odd.state)
    if ya[0] == "ok":
        da = native.backward(np.ascontiguousarray(x), np.ascontiguousarray(g))
        db = odd.backward(v, gv)
        assert same(da, db)
    assert saved == (v.tobytes(), gv.tobytes())


@pytest.mark.parametrize("kind, profile", Q_CASES)
def test_quanter_copies_are_independent(kind, profile):
    a = make_q(kind, profile)
    a.forward(X_Q)
    before = a.state
    for dup in (copy.copy(a), copy.deepcopy(a)):
        dup.forward(X_Q * 3)
        dup.forward(X_Q * -2)
        assert same(a.state, before)
    ref = make_q(kind, profile)
    ref.forward(X_Q)
    dup = copy.copy(a)
    assert same(outcome(lambda: dup.forward(X_Q * 5)), outcome(lambda: ref.forward(X_Q * 5)))
    assert same(dup.state, ref.state)
