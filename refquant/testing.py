"""Testing helpers for implementations written in Python: adversarial inputs and assertions.

Assertions (no third-party dependency beyond NumPy)::

    from refquant.testing import assert_kernel_matches, assert_observer_matches
    assert_kernel_matches(my_quantize(x, s), pk.quantize_linear(x, s), inputs={"x": x})
    assert_observer_matches(my_observer_qparams, ref_obs.compute())

Both compare bit for bit (float32 by ``view(uint32)``; ``-0.0 != 0.0``; every NaN equals
every NaN) and, on failure, report the first differing element: its index, both values,
both bit patterns, how many elements differ, the input values at that index, and for
observers the decision margin.

Hypothesis strategies (``hypothesis`` is imported only when a strategy is built)::

    from hypothesis import given
    from refquant import testing as rqt

    @given(rqt.near_ties(scale=0.7, qmax=127, order="mul"))
    def test_ties(x): ...

``near_ties`` (inputs within a few ulps of a rounding tie for a given scale and operation
order), ``saturating`` (inputs around the clip bounds), ``special_floats`` (+-0,
subnormals, huge, +-inf, NaN), ``scales`` (including the tiny-scale guard region),
``float32_arrays``, ``distributions`` (normal, uniform, heavy-tailed, ReLU, bimodal,
constant-with-outlier), ``batch_sequences`` (1-3 batches of one distribution), and
``adversarial_arrays`` / ``adversarial_batches`` (float32 or float64 arrays, or lists of
them, of the kinds in ``ARRAY_KINDS`` built by the deterministic ``adversarial_array``:
heavy tails, one sign only, zero range, one element, underflowing squares, outliers, all
zeros, rounding half-steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._compare import bit_pattern, first_mismatch
from ._compat import import_paddleslim, paddleslim_hist_module
from ._numerics import decision_bound as summation_bound
from .qparams import QParams

__all__ = [
    "assert_kernel_matches",
    "assert_observer_matches",
    "summation_bound",
    "near_ties",
    "saturating",
    "special_floats",
    "scales",
    "float32_arrays",
    "distributions",
    "batch_sequences",
    "DISTRIBUTIONS",
    "adversarial_array",
    "adversarial_arrays",
    "adversarial_batches",
    "ARRAY_KINDS",
    "SINGLE_MODES",
    "MAGNITUDES",
    "import_paddleslim",
    "paddleslim_hist_module",
    "diagnose",
]

DISTRIBUTIONS = ("normal", "uniform", "heavy", "relu", "bimodal", "constant_outlier")


# ----------------------------------------------------------------------------- assertions


def diagnose(fn: Any, family: str = "quantize", *, reference: str | None = None,
             fixtures: Any = None) -> dict[str, Any]:
    """Name the variant a kernel implements: run ``fn`` on the ``diagnose.<family>.*``
    conformance cases and match its outputs against the deviation catalogue
    (:mod:`refquant.diagnose`).

    ``fn(x, scale, zero_point, qmin, qmax)`` for ``"quantize"`` (integer codes) and
    ``"fake_quant"`` (float32), ``fn(q, scale, zero_point)`` for ``"dequantize"``;
    returning None skips a case. Returns the report: ``report["axes"][axis]["variant"]``
    names the variant per axis (None with ``candidates`` when the cases cannot tell them
    apart), ``report["matches_reference"]`` says whether ``fn`` is ``reference``
    (``"onnx"``, ``"torch"``, ``"paddle"``; default ``"onnx"``), ``report["unexplained"]``
    lists the cases no catalogued variant explains, and
    ``refquant.diagnose.match.format_report(report)`` prints it. A kernel that raises or
    returns the wrong shape or dtype raises ``ValueError`` naming the case.

    >>> report = diagnose(my_quantize)                                  # doctest: +SKIP
    >>> report["axes"]["rounding"]["variant"]                           # doctest: +SKIP
    'half_away'
    """
    from .diagnose.match import diagnose_callable

    return diagnose_callable(fn, family, reference, fixtures)



def _inputs_at(inputs: Mapping[str, Any] | None, shape: tuple[int, ...],
               index: tuple[int, ...]) -> str:
    if not inputs:
        return ""
    parts = []
    for name, arr in inputs.items():
        a = np.asarray(arr)
        if a.shape == shape and index is not None:
            v = a[index]
            bits = bit_pattern(v, a.dtype)
            parts.append(f"{name}={v.item()!r}" + (f" [{bits}]" if bits else ""))
        elif a.size == 1:
            parts.append(f"{name}={a.reshape(()).item()!r}")
    return ("; input " + ", ".join(parts)) if parts else ""


def assert_kernel_matches(actual: Any, expected: Any, *, name: str = "output",
                          inputs: Mapping[str, Any] | None = None) -> None:
    """Raise ``AssertionError`` unless ``actual`` equals ``expected`` bit for bit.

    ``actual`` / ``expected`` are arrays, or tuples / dicts of arrays (compared element by
    element, names taken from the dict keys or ``name[i]``). ``inputs`` (name -> array) is
    only used to print the input values at the first differing index. Neither argument is
    modified.
    """
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping) or set(actual) != set(expected):
            raise AssertionError(f"{name}: expected outputs {sorted(expected)}, got "
                                 f"{sorted(actual) if isinstance(actual, Mapping) else actual!r}")
        for k in expected:
            assert_kernel_matches(actual[k], expected[k], name=f"{name}.{k}", inputs=inputs)
        return
    if isinstance(expected, tuple):
        if not isinstance(actual, tuple) or len(actual) != len(expected):
            raise AssertionError(f"{name}: expected a tuple of {len(expected)} arrays, got "
                                 f"{type(actual).__name__}")
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_kernel_matches(a, e, name=f"{name}[{i}]", inputs=inputs)
        return
    mm = first_mismatch(name, expected, actual)
    if mm is None:
        return
    if mm.index is None:
        raise AssertionError(str(mm))
    raise AssertionError(f"{mm}{_inputs_at(inputs, np.shape(expected), mm.index)}")


def _scale_zp(q: Any) -> tuple[np.ndarray, np.ndarray | None, Any]:
    if isinstance(q, QParams):
        return q.scale, q.zero_point, q.margin
    return np.asarray(q), None, None


def assert_observer_matches(actual: Any, expected: Any, *, margin: float | None = None,
                            bound: float | None = None) -> None:
    """Raise ``AssertionError`` unless ``actual``'s scale and zero point equal ``expected``'s
    bit for bit, except where the decision margin is below ``bound``.

    ``actual`` / ``expected`` are :class:`~refquant.QParams` or scale arrays. ``margin``
    defaults to ``expected.margin`` (a scalar, or one value per channel) and ``bound`` to
    nothing (every mismatch fails). A per-channel mismatch is accepted only in channels
    whose margin is below ``bound``. The message gives the first differing element that is
    not excused, both bit patterns and its margin.
    """
    a_scale, a_zp, _ = _scale_zp(actual)
    e_scale, e_zp, e_margin = _scale_zp(expected)
    m = e_margin if margin is None else margin
    for name, e, a in (("scale", e_scale, a_scale), ("zero_point", e_zp, a_zp)):
        if e is None or a is None:
            continue
        mm = first_mismatch(name, e, a)
        if mm is None:
            continue
        if mm.index is None:  # dtype / shape
            raise AssertionError(str(mm))
        if e.dtype.kind == "f":
            ut = np.uint32 if e.dtype.itemsize == 4 else np.uint64
            diff = (e.view(ut) != a.view(ut)) & ~(np.isnan(e) & np.isnan(a))
        else:
            diff = e != a
        margins = (None if m is None
                   else np.broadcast_to(np.asarray(m, dtype=np.float64), e.shape))
        if margins is not None and bound is not None:
            diff = diff & ~(margins < bound)
            if not diff.any():
                continue
        idx = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(diff.ravel())[0]),
                                                     e.shape)) if e.ndim else ()
        mm = first_mismatch(name, e[idx], a[idx])
        assert mm is not None
        where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
        detail = str(mm).split(": ", 1)[1].split(" (")[0]
        note = "; no decision margin recorded" if margins is None else (
            f"; decision margin {float(margins[idx])!r}"
            + (f" (bound {bound!r})" if bound is not None else ""))
        raise AssertionError(f"{where}: {detail} ({int(diff.sum())} element(s) differ "
                             f"beyond the margin){note}")


# ----------------------------------------------------------------------------- strategies


def _st() -> Any:
    try:
        from hypothesis import strategies as st
    except ImportError as exc:  # pragma: no cover - exercised only without hypothesis
        raise ImportError("refquant.testing strategies need the 'hypothesis' package "
                          "(pip install hypothesis); the assertions work without it") from exc
    return st


def special_floats(include_nan: bool = True, include_inf: bool = True) -> Any:
    """float32 scalars that break kernels: +-0, subnormals, min normal, huge, +-inf, NaN."""
    st = _st()
    vals = [0.0, -0.0, 1e-45, -1e-45, 1e-40, -3e-39, 1.17549435e-38, 1e-7, -0.3, 3e9, -3e9,
            3.4028235e38, -3.4028235e38]
    if include_inf:
        vals += [float("inf"), float("-inf")]
    if include_nan:
        vals += [float("nan")]
    return st.sampled_from([np.float32(v) for v in vals])


def scales(min_value: float = 1e-38, max_value: float = 1e6, tiny_guard: bool = True) -> Any:
    """Positive float32 scales, log-spread, plus (``tiny_guard``) values at Paddle's
    ``1e-30`` guard boundary and zero."""
    st = _st()
    base = st.floats(min_value=float(np.float32(min_value)),
                     max_value=float(np.float32(max_value)), width=32, allow_nan=False,
                     allow_infinity=False).map(np.float32)
    if not tiny_guard:
        return base
    edge = st.sampled_from([np.float32(v) for v in (0.0, 1e-30, 1.1e-30, 1e-31, 1e-40)])
    return st.one_of(base, edge)


def near_ties(scale: float, qmax: int = 127, order: str = "mul", max_ulps: int = 2,
              size: tuple[int, int] = (1, 64)) -> Any:
    """float32 arrays whose elements lie within ``max_ulps`` of a rounding tie.

    ``order="mul"``: ties of ``fl(fl(qmax * (1/S)) * x)`` (Paddle, threshold ``S=scale``);
    ``order="div"``: ties of ``fl(x / s)`` (ONNX, step ``s=scale``). The half-integers cover
    ``[-qmax - 1.5, qmax + 0.5]``, so saturation ties are included.
    """
    st = _st()
    s32 = np.float32(scale)
    if order == "mul":
        c = np.float32(np.float32(qmax) * (np.float32(1) / s32))
        to_x = lambda h: np.float32(np.float64(h) / np.float64(c))  # noqa: E731
    elif order == "div":
        to_x = lambda h: np.float32(np.float64(h) * np.float64(s32))  # noqa: E731
    else:
        raise ValueError(f"order must be 'mul' or 'div', got {order!r}")

    def build(h: int, k: int) -> np.float32:
        x = to_x(h + 0.5)
        step = np.float32(np.inf) if k > 0 else np.float32(-np.inf)
        for _ in range(abs(k)):
            x = np.nextafter(x, step)
        return np.float32(x)

    elem = st.builds(build, st.integers(-qmax - 2, qmax), st.integers(-max_ulps, max_ulps))
    return st.lists(elem, min_size=size[0], max_size=size[1]).map(
        lambda v: np.array(v, dtype=np.float32))


def saturating(threshold: float, qmax: int = 127, size: tuple[int, int] = (1, 32)) -> Any:
    """float32 arrays around the clip bounds ``+-threshold`` and ``(-qmax-1)/qmax * S``."""
    st = _st()
    t = float(np.float32(threshold))
    anchors = [t, -t, -t * (qmax + 1) / qmax, 2 * t, -2 * t, t * (qmax + 0.5) / qmax]
    elem = st.builds(lambda a, f: np.float32(a * f), st.sampled_from(anchors),
                     st.floats(0.99, 1.01))
    return st.lists(elem, min_size=size[0], max_size=size[1]).map(
        lambda v: np.array(v, dtype=np.float32))


def float32_arrays(shape: Any = None, min_value: float = -1e4, max_value: float = 1e4,
                   allow_special: bool = False) -> Any:
    """float32 arrays (``hypothesis.extra.numpy``), optionally mixed with special values."""
    st = _st()
    from hypothesis.extra import numpy as hnp

    shp = shape if shape is not None else hnp.array_shapes(min_dims=1, max_dims=3,
                                                           min_side=1, max_side=8)
    fin = st.floats(min_value=min_value, max_value=max_value, width=32)
    elements = st.one_of(fin, special_floats()) if allow_special else fin
    return hnp.arrays(np.float32, shp, elements=elements)


def _draw_distribution(name: str, seed: int, shape: tuple[int, ...], scale: float
                       ) -> np.ndarray:
    from .conformance.cases._inputs import distribution

    return distribution(name, seed, shape, scale)


def distributions(shape: tuple[int, ...] = (16, 16), names: tuple[str, ...] = DISTRIBUTIONS
                  ) -> Any:
    """float32 arrays drawn from one of ``names`` with a random seed and scale
    (deterministic builders shared with the conformance generator)."""
    st = _st()
    return st.builds(_draw_distribution, st.sampled_from(names), st.integers(0, 2**32 - 1),
                     st.just(shape), st.sampled_from([1e-3, 0.1, 1.0, 7.5, 300.0]))


def batch_sequences(min_batches: int = 1, max_batches: int = 3,
                    shape: tuple[int, ...] = (8, 16)) -> Any:
    """Lists of 1-3 float32 batches, each from a (possibly different) distribution and
    scale: exercises running statistics, order dependence and merging."""
    st = _st()
    return st.lists(distributions(shape), min_size=min_batches, max_size=max_batches)


#: the kinds of :func:`adversarial_array`
ARRAY_KINDS = ("normal", "student_t", "relu", "negative", "shifted", "constant", "single",
               "tiny", "outlier", "zeros", "halfway")
#: what ``kind="single"`` builds: one element, or one non-zero element in the given shape
SINGLE_MODES = ("element", "spike")
#: the default magnitudes of :func:`adversarial_arrays`
MAGNITUDES = (1e-3, 0.01, 1.0, 30.0)


def adversarial_array(kind: str, seed: int, shape: tuple[int, ...],
                      dtype: Any = np.float32, magnitude: float = 1.0,
                      single: str = "element") -> np.ndarray:
    """A float array of one of :data:`ARRAY_KINDS`, determined by the arguments alone.

    With ``z`` standard normal draws of ``numpy.random.default_rng(seed)`` and ``m =
    magnitude`` (values are formed in float64 and cast once to ``dtype``):

    * ``normal``: ``m z``; ``student_t``: ``m t`` with Student's ``t`` of 2.5 degrees of
      freedom (heavy tails);
    * ``relu``: ``m max(z, 0)`` (about half exact zeros); ``negative``: ``-m (|z| + 0.01)``
      (no value >= 0); ``shifted``: ``m (z + 5)`` (far from zero-centred);
    * ``constant``: every element ``m c``, ``c`` one of ``-1.3, 0.75, 1.7`` (a zero range);
    * ``single``: with ``single="element"`` one element ``m z`` in shape ``(1,) * ndim``
      (one-sample paths: a NaN standard deviation, a single row); with ``single="spike"``
      the given shape, zeros except the first element ``2.5 m`` (one non-zero value);
    * ``tiny``: ``m z t``, ``t`` one of ``1e-6, 1e-32`` (float32 squares underflow);
    * ``outlier``: ``m z`` with one element, at a random index, set to ``m o``, ``o`` one of
      ``50, 1e4``;
    * ``zeros``: all ``+0.0``;
    * ``halfway``: ``m (k + 0.5) / 127`` for integers ``k`` in ``[-300, 300)``: the
      half-steps of an 8-bit grid with threshold ``m`` (rounding ties; beyond ``+-m``
      saturation).

    Raises ``ValueError`` for an unknown ``kind`` or ``single``, or a shape with a
    non-positive side, and ``TypeError`` for a non-floating ``dtype``.
    """
    if kind not in ARRAY_KINDS:
        raise ValueError(f"kind must be one of {ARRAY_KINDS}, got {kind!r}")
    if single not in SINGLE_MODES:
        raise ValueError(f"single must be one of {SINGLE_MODES}, got {single!r}")
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dt}")
    shp = tuple(int(n) for n in shape)
    if any(n < 1 for n in shp):
        raise ValueError(f"shape must have positive sides, got {shape!r}")
    rng = np.random.default_rng(seed)
    m = float(magnitude)
    if kind == "single" and single == "element":
        shp = (1,) * len(shp)
    z = rng.standard_normal(shp)
    x: np.ndarray
    if kind == "student_t":
        x = rng.standard_t(2.5, shp)
    elif kind == "relu":
        x = np.maximum(z, 0.0)
    elif kind == "negative":
        x = -(np.abs(z) + 0.01)
    elif kind == "shifted":
        x = z + 5.0
    elif kind == "constant":
        x = np.full(shp, rng.choice([-1.3, 0.75, 1.7]))
    elif kind == "single" and single == "spike":
        x = np.zeros(shp)
        x.flat[0] = 2.5
    elif kind == "tiny":
        x = z * rng.choice([1e-6, 1e-32])
    elif kind == "outlier":
        x = z
        x.flat[rng.integers(x.size)] = rng.choice([50.0, 1e4])
    elif kind == "zeros":
        x = np.zeros(shp)
    elif kind == "halfway":
        x = (rng.integers(-300, 300, shp) + 0.5) / 127.0
    else:  # normal; single="element"
        x = z
    return (x * m).astype(dt)


def _as_strategy(value: Any) -> Any:
    st = _st()
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


def _check_kinds(kinds: tuple[str, ...], magnitudes: tuple[float, ...], single: str) -> None:
    unknown = [k for k in kinds if k not in ARRAY_KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty selection of {ARRAY_KINDS}, got "
                         f"{tuple(kinds)!r}")
    if not magnitudes:
        raise ValueError("magnitudes must not be empty")
    if single not in SINGLE_MODES:
        raise ValueError(f"single must be one of {SINGLE_MODES}, got {single!r}")


def adversarial_arrays(shape: Any = (16,), dtype: Any = np.float32, *,
                       kinds: tuple[str, ...] = ARRAY_KINDS,
                       magnitudes: tuple[float, ...] = MAGNITUDES,
                       single: str = "element") -> Any:
    """Arrays of :func:`adversarial_array`: a kind of ``kinds``, a seed, a magnitude of
    ``magnitudes``. ``shape`` and ``dtype`` are values or strategies; ``single`` says what
    the ``single`` kind builds (:data:`SINGLE_MODES`)."""
    st = _st()
    kinds, magnitudes = tuple(kinds), tuple(magnitudes)
    _check_kinds(kinds, magnitudes, single)
    return st.builds(adversarial_array, st.sampled_from(kinds), st.integers(0, 2**32 - 1),
                     _as_strategy(shape), _as_strategy(dtype), st.sampled_from(magnitudes),
                     st.just(single))


def adversarial_batches(shape: Any = (16,), dtype: Any = np.float32, *,
                        min_batches: int = 1, max_batches: int = 4,
                        same_shape: bool = True, same_dtype: bool = True,
                        kinds: tuple[str, ...] = ARRAY_KINDS,
                        magnitudes: tuple[float, ...] = MAGNITUDES,
                        single: str = "element") -> Any:
    """Lists of ``min_batches``..``max_batches`` arrays of :func:`adversarial_arrays`, each
    of its own kind, seed and magnitude: observers' running statistics, order dependence
    and merging. With ``same_shape`` (``same_dtype``) one shape (dtype) is drawn for the
    whole list, as per-channel state needs (a ``single`` batch with ``single="element"``
    still has one element); otherwise one per batch."""
    st = _st()
    _check_kinds(tuple(kinds), tuple(magnitudes), single)
    shapes, dtypes = _as_strategy(shape), _as_strategy(dtype)

    def batches(shape_and_dtype: tuple[Any, Any]) -> Any:
        shp, dt = shape_and_dtype
        return st.lists(adversarial_arrays(shp, dt, kinds=kinds, magnitudes=magnitudes,
                                           single=single),
                        min_size=min_batches, max_size=max_batches)

    return st.tuples(shapes if same_shape else st.just(shapes),
                     dtypes if same_dtype else st.just(dtypes)).flatmap(batches)
