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
constant-with-outlier) and ``batch_sequences`` (1-3 batches of one distribution).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from .conformance.compare import bit_pattern, first_mismatch
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
    "import_paddleslim",
    "paddleslim_hist_module",
]

DISTRIBUTIONS = ("normal", "uniform", "heavy", "relu", "bimodal", "constant_outlier")


# ----------------------------------------------------------------------------- assertions


def import_paddleslim(module: str = "paddleslim") -> ModuleType:
    """Import PaddleSlim 2.6.0, or one of its modules (``"paddleslim.quant.observers.kl"``).

    PaddleSlim's package ``__init__`` imports ``pkg_resources`` (``common/load_model.py``,
    ``prune/__init__.py``), which setuptools >= 80 no longer ships; refquant's ``slim``
    extra pins ``setuptools<80``. Where ``pkg_resources`` is missing anyway, the
    quantization modules are imported without running PaddleSlim's package ``__init__``:
    ``paddleslim`` and ``paddleslim.quant`` are registered as bare packages over the
    installed directories (nothing on disk changes), which is all ``paddleslim.quant.*``
    needs. Raises ``ImportError`` when PaddleSlim is not installed.
    """
    import importlib
    import importlib.util
    import os
    import sys
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            if "pkg_resources" not in str(exc) and getattr(exc, "name", "") != "pkg_resources":
                raise
        for key in [k for k in sys.modules if k == "paddleslim" or k.startswith("paddleslim.")]:
            del sys.modules[key]
        spec = importlib.util.find_spec("paddleslim")
        if spec is None or spec.origin is None:
            raise ImportError("paddleslim is not installed")
        root = os.path.dirname(spec.origin)
        for name, path in (("paddleslim", root), ("paddleslim.quant", os.path.join(root, "quant"))):
            package = ModuleType(name)
            package.__path__ = [path]
            sys.modules[name] = package
        return importlib.import_module(module)


def paddleslim_hist_module() -> ModuleType:
    """``paddleslim.quant.observers.hist`` with its NumPy 2 crash worked around.

    ``PercentHistObserverLayer`` computes ``float(v)`` of a 1-element array, which NumPy 2
    refuses (paddleslim-quirks.md item 25: ``scales()`` always raises ``TypeError``). The
    module's ``float`` is replaced by one that accepts a 1-element array, as NumPy 1.x did,
    so the real observer can be compared with refquant's ``paddleslim`` profile. Only that
    module's global name is patched; no file changes.
    """
    import builtins

    mod = import_paddleslim("paddleslim.quant.observers.hist")
    mod.float = lambda v: builtins.float(np.asarray(v).reshape(()))  # type: ignore[attr-defined]
    return mod


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


def summation_bound(n: int) -> float:
    """Relative error bound of a float32 sum of ``n`` non-negative terms in any order:
    ``gamma_(n-1) = (n-1) u / (1 - (n-1) u)`` with ``u = 2^-24`` (Higham, Thm 4.3); the bound
    on a loss difference is twice that. Used as the ``decision`` tolerance on margins."""
    u = 2.0 ** -24
    k = max(int(n) - 1, 1)
    if k * u >= 1:
        return float("inf")
    return 2.0 * (k * u) / (1.0 - k * u)


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
