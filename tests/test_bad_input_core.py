"""Bad input to every public entry point of refquant.kernels.* and refquant.qparams.

For each entry point (``ENTRIES``) three properties are checked:

* **bad arguments** raise ``ValueError`` / ``TypeError`` whose message names the argument:
  a fixed pool per kind of argument is swept exhaustively (``test_bad_pool``) and Hypothesis
  generates more of each kind (``test_bad_generated``): None, strings, bools, complex and
  object arrays, integer arrays for float data, NaN / inf / negative / zero scales, float64
  values beyond float32's range, out-of-range bit widths, axes, ``round_type``...;
* **valid input in another layout** (big-endian, read-only, a strided view, a Python list
  where lists are accepted) gives the native float32 result bit for bit
  (``test_layouts_give_native_bits``), and the result shares no memory with the input;
* **empty input** follows the one rule of every kernel family (module docstrings):
  elementwise functions return an empty result, reductions raise ``ValueError``.

No call, failing or not, may modify what the caller passed. The expected outcome of each
case is stated here (an error naming the argument, or the native call's bits), never taken
from the code under test.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant import qparams as qpm
from refquant.kernels import nvidia as nv
from refquant.kernels import onnx as ok
from refquant.kernels import paddle as pk
from refquant.kernels import slim
from refquant.kernels import torch as tk
from refquant.qparams import QParams

F32 = np.float32
SETTINGS = settings(max_examples=12, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# --------------------------------------------------------------------------- argument kinds


@dataclass(frozen=True)
class Kind:
    """Bad values of one kind of argument: a fixed pool and a Hypothesis strategy."""

    pool: tuple[Any, ...]
    gen: st.SearchStrategy[Any]


class Same:
    """A bad value computed from the other arguments of the call (e.g. ``out=x``)."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any], label: str) -> None:
        self.fn, self.label = fn, label

    def __repr__(self) -> str:
        return self.label


_BEYOND = 3.5e38  # beyond float32's largest finite value (3.4028235e38) after rounding
beyond_f32 = st.builds(lambda v, neg: -v if neg else v,
                       st.floats(min_value=_BEYOND, max_value=1e308), st.booleans())
junk = st.one_of(st.none(), st.text(max_size=3), st.builds(object),
                 st.complex_numbers(min_magnitude=1, max_magnitude=10, allow_nan=False,
                                    allow_infinity=False))
bad_dtype_arrays = st.sampled_from([np.complex64, np.complex128, np.bool_, object, "U1"]).map(
    lambda dt: np.zeros(3, dtype=dt))

JUNK = (None, "abc", b"x", object(), 1 + 2j)
BAD_ARRAYS = (np.array([1 + 2j, 3], np.complex64), np.array([True, False]),
              np.array([1.0, "a"], dtype=object), np.array(["a", "b"]))
BEYOND = ([1e39, 1.0], [-1e300], 1e39)


def data_kind(*, int_ok: bool = False, f64_ok: bool = False, f16_ok: bool = True,
              lists_narrow: bool = True, extra: tuple[Any, ...] = ()) -> Kind:
    """A floating data argument (``x``, ``q``...): junk, bool, complex, object and string
    arrays always fail; integer / float64 / float16 arrays fail unless accepted; Python
    values beyond float32's range fail where lists are converted to float32."""
    pool = list(JUNK) + [True] + list(BAD_ARRAYS) + list(extra)
    if not int_ok:
        pool.append(np.arange(3, dtype=np.int32))
    if not f64_ok:
        pool.append(np.ones(3, np.float64))
    if not f16_ok:
        pool.append(np.ones(3, np.float16))
    gens = [junk, bad_dtype_arrays, st.booleans()]
    if lists_narrow:
        pool += list(BEYOND)
        gens.append(beyond_f32.map(lambda v: [1.0, v]))
    return Kind(tuple(pool), st.one_of(gens))


def int_kind(lo: int | None = None, hi: int | None = None, extra: tuple[Any, ...] = (),
             exclude: tuple[int, ...] = (), none_ok: bool = False) -> Kind:
    """An integer argument in ``[lo, hi]``: floats (integral ones too), bools, strings and
    None (unless ``none_ok``) fail, and so do integers outside the range."""
    pool: list[Any] = [True, False, 1.5, 8.0, "8", 1 + 0j, np.float32(2.0)]
    if not none_ok:
        pool.append(None)
    pool += [v for v in ((lo - 1) if lo is not None else None,
                         (hi + 1) if hi is not None else None) if v is not None]
    pool += list(extra)
    gens = [st.booleans(), st.floats(), st.text(max_size=3)]
    if not none_ok:
        gens.append(st.none())
    if lo is not None:
        gens.append(st.integers(max_value=lo - 1).filter(lambda v: v not in exclude))
    if hi is not None:
        gens.append(st.integers(min_value=hi + 1).filter(lambda v: v not in exclude))
    return Kind(tuple(pool), st.one_of(gens))


def flag_kind(allow_int: bool = False) -> Kind:
    pool: list[Any] = ["no", "yes", None, 2.0, np.array([True]), 1 + 0j]
    ints = st.integers().filter(lambda v: v not in (0, 1)) if allow_int else st.integers()
    if allow_int:
        pool += [2, -1]
    else:
        pool += [1, 0]
    return Kind(tuple(pool), st.one_of(st.text(max_size=3), st.none(), st.floats(), ints))


def choice_kind(choices: tuple[Any, ...], none_ok: bool = False) -> Kind:
    """One of ``choices`` (strings): other strings, floats and objects fail, and so does
    None unless ``none_ok``."""
    pool: tuple[Any, ...] = ("nope", "", 1.5, object()) + (() if none_ok else (None,))
    gens = [st.text(max_size=4).filter(lambda s: s.lower() not in choices), st.floats()]
    return Kind(pool, st.one_of(gens if none_ok else [*gens, st.none()]))


def real_kind(*, positive: bool = True, f32: bool = True, extra: tuple[Any, ...] = ()
              ) -> Kind:
    """A real-number attribute that must be finite (and > 0): NaN, +-inf, junk and bools
    fail, and values beyond float32's range where it is a float32 attribute."""
    pool: list[Any] = [np.nan, np.inf, -np.inf, None, "1", True, 1 + 1j] + list(extra)
    gens = [st.sampled_from([np.nan, np.inf, -np.inf]), junk, st.booleans()]
    if f32:
        pool.append(1e39)
        gens.append(beyond_f32)
    if positive:
        pool += [0.0, -1.0, -0.0]
        gens.append(st.floats(max_value=0.0, allow_nan=False))
    return Kind(tuple(pool), st.one_of(gens))


def scale_kind(*, zero_ok: bool, nonfinite_ok: bool, as_array: bool,
               extra: tuple[Any, ...] = ()) -> Kind:
    """A scale: negative values always fail; zero, NaN and +inf fail unless defined;
    junk, complex, bool and values beyond float32's range fail."""
    wrap: Callable[[Any], Any] = (lambda v: np.array(v, F32)) if as_array else (lambda v: v)
    bad_vals = [-1.0, -1e-30, -np.inf]
    if not zero_ok:
        bad_vals.append(0.0)
    if not nonfinite_ok:
        bad_vals += [np.nan, np.inf]
    pool: list[Any] = [wrap(v) for v in bad_vals] + [None, "1", True, 1 + 1j,
                                                     np.array([1 + 1j]), [1e39]] + list(extra)
    neg = st.floats(max_value=-1.401298464324817e-45, allow_nan=False, width=32)
    gens = [neg.map(wrap), junk, beyond_f32.map(lambda v: [abs(v)])]
    if not nonfinite_ok:
        gens.append(st.sampled_from([np.nan, np.inf]).map(wrap))
    return Kind(tuple(pool), st.one_of(gens))


# --------------------------------------------------------------------------- entry points


@dataclass
class Entry:
    """One public entry point: a valid call, its arguments' kinds, the layouts to try."""

    name: str
    call: Callable[..., Any]
    base: Callable[[], dict[str, Any]]
    args: dict[str, Kind]
    extra: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    valid: dict[str, st.SearchStrategy[Any]] = field(default_factory=dict)
    lists: tuple[str, ...] = ()  # valid args that may also be passed as Python lists
    empty: tuple[str, tuple[int, ...], str] | None = None  # (arg, shape, rule)


def X() -> np.ndarray:
    return np.array([[0.5, -1.25, 3.0], [2.0, -0.75, 0.0]], F32)


def f32_arrays(shape: tuple[int, ...], lo: float = -1e4, hi: float = 1e4,
               nan: bool = False) -> st.SearchStrategy[np.ndarray]:
    el = st.floats(min_value=float(F32(lo)), max_value=float(F32(hi)), width=32,
                   allow_subnormal=lo <= 0.0 <= hi)
    if nan:
        el = st.one_of(el, st.sampled_from([np.nan, np.inf, -np.inf, -0.0]))
    return hnp.arrays(F32, shape, elements=el)


def pos_arrays(shape: tuple[int, ...], dtype: Any = F32) -> st.SearchStrategy[np.ndarray]:
    t = np.dtype(dtype).type
    return hnp.arrays(dtype, shape, elements=st.floats(
        min_value=float(t(1e-3)), max_value=float(t(1e3)), width=np.dtype(dtype).itemsize * 8))


def int_arrays(dtype: Any, shape: tuple[int, ...], lo: int, hi: int
               ) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, shape, elements=st.integers(lo, hi))


XDATA = f32_arrays((2, 3), nan=True)
BITS = int_kind(2, 16)
PK_QMAX = int_kind(1, 32767, exclude=(57344,))
RT = int_kind(0, 1)
FLAG = flag_kind()
PK_X = data_kind()
PK_SCALE = scale_kind(zero_ok=True, nonfinite_ok=True, as_array=True,
                      extra=(np.ones(1, np.float64),))


def _pk_quant_base() -> dict[str, Any]:
    return {"x": X(), "scale": np.array(1.5, F32), "qmax": 127, "flush": False}


PK_QUANT_ARGS = {"x": PK_X, "scale": PK_SCALE, "qmax": PK_QMAX, "flush": FLAG}
PK_QUANT_EXTRA = [("scale", {"scale": np.ones(5, F32)})]  # does not broadcast to x
PK_QUANT_VALID = {"x": XDATA, "scale": f32_arrays((), 0.0, 1e30, nan=False)}

PK_LINEAR_INTS = {
    "quant_axis": int_kind(-1, 1, extra=(2, -2, 5)),
    "bit_length": BITS,
    "qmin": int_kind(),
    "qmax": PK_QMAX,
}

_MA_BASE = {"in_scale": np.array([1.0], F32), "in_accum": np.array([1.0], F32),
            "in_state": np.array([1.0], F32), "moving_rate": 0.9, "bit_length": 8,
            "round_type": 1}
def _state_kind(none_ok: bool) -> Kind:
    k = data_kind(extra=(np.ones(2, F32),))
    if not none_ok:
        return k
    return Kind(tuple(v for v in k.pool if v is not None),
                k.gen.filter(lambda v: v is not None))


def _ma_entry(fn: Callable[..., Any], is_test: bool) -> Entry:
    return Entry(
        f"paddle.{fn.__name__}" + ("[is_test]" if is_test else ""), fn,
        lambda: {"x": X(), **{k: (v.copy() if isinstance(v, np.ndarray) else v)
                              for k, v in _MA_BASE.items()}, "is_test": is_test},
        {"x": PK_X, "in_scale": _state_kind(False), "in_accum": _state_kind(is_test),
         "in_state": _state_kind(is_test),
         "moving_rate": real_kind(positive=False), "bit_length": BITS, "round_type": RT,
         "is_test": FLAG},
        valid={"x": XDATA, "in_scale": pos_arrays((1,)), "in_accum": pos_arrays((1,)),
               "in_state": pos_arrays((1,))},
        lists=("x",),
        empty=("x", (0,), "elementwise" if is_test else "reduction"),
    )


ONNX_X = data_kind(f16_ok=True)  # float16 x with a float32 scale fails on the scale's dtype
ONNX_SCALE = scale_kind(zero_ok=False, nonfinite_ok=False, as_array=False,
                        extra=(np.float64(0.5), np.float32([])))
ONNX_OPSET = int_kind(10, 22)
TORCH_X = data_kind(f64_ok=True)
TORCH_SCALE = scale_kind(zero_ok=False, nonfinite_ok=False, as_array=False,
                         extra=(1e-50, np.ones(2)))
TORCH_RANGE = {"quant_min": int_kind(), "quant_max": int_kind()}
NV_AMAX = scale_kind(zero_ok=True, nonfinite_ok=False, as_array=False,
                     extra=(np.array([1.0, "a"], dtype=object),))
NV_X = data_kind(f16_ok=False)

ENTRIES: list[Entry] = [
    # ---------------------------------------------------------------- kernels.paddle
    Entry("paddle.inverse", pk.inverse, lambda: {"s": np.array([0.5, 0.0, 2.0], F32)},
          {"s": PK_X, "flush": FLAG}, valid={"s": f32_arrays((3,), nan=True)},
          lists=("s",), empty=("s", (0,), "elementwise")),
    Entry("paddle.flush_denormals", pk.flush_denormals,
          lambda: {"a": np.array([1e-40, 1.0, -1e-41], F32)},
          {"a": Kind(tuple(JUNK) + (True,) + BAD_ARRAYS, st.one_of(junk, bad_dtype_arrays))},
          valid={"a": f32_arrays((3,), -1e-37, 1e-37)}, empty=("a", (0,), "elementwise")),
    Entry("paddle.quantize_rt0", pk.quantize_rt0, _pk_quant_base, PK_QUANT_ARGS,
          PK_QUANT_EXTRA, PK_QUANT_VALID, ("x",), ("x", (0,), "elementwise")),
    Entry("paddle.quantize_rt1", pk.quantize_rt1, _pk_quant_base, PK_QUANT_ARGS,
          PK_QUANT_EXTRA, PK_QUANT_VALID, ("x",), ("x", (0,), "elementwise")),
    Entry("paddle.quantize", pk.quantize, lambda: {**_pk_quant_base(), "round_type": 0},
          {**PK_QUANT_ARGS, "round_type": int_kind(0, 1, extra=(5, 2, -1))},
          PK_QUANT_EXTRA, PK_QUANT_VALID, ("x",), ("x", (0,), "elementwise")),
    Entry("paddle.dequantize", pk.dequantize,
          lambda: {"q": np.array([[3, -7, 127], [-128, 0, 1]], F32),
                   "scale": np.array(0.5, F32), "max_range": 127.0, "flush": False},
          {"q": PK_X, "scale": scale_kind(zero_ok=True, nonfinite_ok=True, as_array=True),
           "max_range": real_kind(), "flush": FLAG},
          [("scale", {"scale": np.ones(4, F32)})],
          {"q": f32_arrays((2, 3), -128, 127), "scale": f32_arrays((), 0.0, 1e3)},
          ("q",), ("q", (0,), "elementwise")),
    Entry("paddle.abs_max", pk.abs_max, lambda: {"x": X()},
          {"x": data_kind(f64_ok=True, extra=(np.array([1e39]), np.array([-1e300, 1.0])))},
          valid={"x": XDATA}, lists=("x",), empty=("x", (0, 3), "reduction")),
    Entry("paddle.channel_abs_max", pk.channel_abs_max,
          lambda: {"x": X(), "quant_axis": 0, "flush": False},
          {"x": data_kind(f64_ok=True, extra=(np.array([[1e39], [1.0]]),)),
           "quant_axis": int_kind(0, 1, extra=(2, -1, 5, -2)), "flush": FLAG},
          valid={"x": XDATA}, lists=("x",), empty=("x", (0, 3), "reduction")),
    Entry("paddle.quantize_linear", pk.quantize_linear,
          lambda: {"x": X(), "scale": np.array([0.5], F32), "zero_point": None,
                   "quant_axis": -1, "bit_length": 8, "qmin": -128, "qmax": 127,
                   "round_type": 0, "flush_denormals": True},
          {"x": PK_X, "scale": PK_SCALE,
           "zero_point": Kind(("0", b"x", 1 + 1j, np.array([True]), object()), junk.filter(
               lambda v: v is not None)),
           **PK_LINEAR_INTS, "round_type": int_kind(0, 1), "flush_denormals": FLAG},
          [("scale", {"scale": np.ones(2, F32)})],
          {"x": XDATA, "scale": f32_arrays((1,), 0.0, 1e30)}, ("x", "scale"),
          ("x", (0,), "elementwise")),
    Entry("paddle.dequantize_linear", pk.dequantize_linear,
          lambda: {"q": np.array([[3, -7, 127], [-128, 0, 1]], F32),
                   "scale": np.array([0.5], F32), "zero_point": None, "quant_axis": -1,
                   "bit_length": 8, "qmin": -128, "qmax": 127, "flush_denormals": True},
          {"q": data_kind(f64_ok=True, extra=(np.array([1e39, 1.0]),)),
           "scale": scale_kind(zero_ok=True, nonfinite_ok=True, as_array=True),
           **PK_LINEAR_INTS, "flush_denormals": FLAG},
          [("scale", {"scale": np.ones(3, F32)})],
          {"q": f32_arrays((2, 3), -128, 127), "scale": f32_arrays((1,), 0.0, 1e3)},
          ("q", "scale"), ("q", (0,), "elementwise")),
    *[Entry(f"paddle.{fn.__name__}", fn,
            lambda: {"x": X(), "bit_length": 8, "round_type": 1},
            {"x": PK_X, "bit_length": BITS, "round_type": RT},
            valid={"x": XDATA}, lists=("x",), empty=("x", (0,), "reduction"))
      for fn in (pk.fake_quantize_abs_max, pk.fake_quantize_dequantize_abs_max)],
    *[Entry(f"paddle.{fn.__name__}", fn,
            lambda: {"x": X(), "bit_length": 8, "round_type": 1, "quant_axis": 1},
            {"x": PK_X, "bit_length": BITS, "round_type": RT,
             "quant_axis": int_kind(0, 1, extra=(-1, 2, 5))},
            valid={"x": XDATA}, lists=("x",), empty=("x", (2, 0), "reduction"))
      for fn in (pk.fake_channel_wise_quantize_abs_max,
                 pk.fake_channel_wise_quantize_dequantize_abs_max)],
    Entry("paddle.fake_dequantize_max_abs", pk.fake_dequantize_max_abs,
          lambda: {"x": X(), "scale": np.array([0.5], F32), "max_range": 127.0},
          {"x": PK_X, "scale": scale_kind(zero_ok=True, nonfinite_ok=True, as_array=True,
                                          extra=(np.ones(1, np.float64), np.ones(2, F32))),
           "max_range": real_kind()},
          valid={"x": XDATA, "scale": f32_arrays((1,), 0.0, 1e3)}, lists=("x",),
          empty=("x", (0,), "elementwise")),
    _ma_entry(pk.fake_quantize_moving_average_abs_max, False),
    _ma_entry(pk.fake_quantize_moving_average_abs_max, True),
    _ma_entry(pk.fake_quantize_dequantize_moving_average_abs_max, False),
    _ma_entry(pk.fake_quantize_dequantize_moving_average_abs_max, True),
    # ---------------------------------------------------------------- kernels.onnx
    Entry("onnx.quantize_linear", ok.quantize_linear,
          lambda: {"x": X(), "y_scale": np.array(0.5, F32), "y_zero_point": np.int8(1)},
          {"x": ONNX_X, "y_scale": ONNX_SCALE,
           "y_zero_point": Kind(("0", 1.5, np.float32(0), 1 + 1j, object()),
                                st.one_of(st.text(max_size=3), st.floats())),
           "axis": int_kind(), "saturate": flag_kind(allow_int=True),
           "block_size": int_kind(0, None),
           "output_dtype": choice_kind(tuple(ok.QUANT_TYPES), none_ok=True),
           "opset": ONNX_OPSET},
          valid={"x": XDATA, "y_scale": pos_arrays(())}, lists=("x",),
          empty=("x", (0,), "elementwise")),
    Entry("onnx.dequantize_linear", ok.dequantize_linear,
          lambda: {"x": np.array([[3, -700, 127], [-32768, 0, 32767]], np.int16),
                   "x_scale": np.array(0.5, F32), "x_zero_point": np.int16(1)},
          {"x": Kind(tuple(JUNK) + (True, [1, 2], np.ones(3, F32), np.arange(3)) + BAD_ARRAYS,
                     st.one_of(junk, bad_dtype_arrays, st.lists(st.integers(-5, 5)))),
           "x_scale": ONNX_SCALE,
           "x_zero_point": Kind(("0", np.uint8(0), np.int8(0), 1 + 1j),
                                st.one_of(st.text(max_size=3), st.complex_numbers())),
           "axis": int_kind(), "block_size": int_kind(0, None),
           "x_dtype": choice_kind(tuple(ok.QUANT_TYPES) + ("int32",), none_ok=True),
           "opset": ONNX_OPSET},
          valid={"x": int_arrays(np.int16, (2, 3), -32768, 32766),
                 "x_scale": pos_arrays(())},
          empty=("x", (0,), "elementwise")),
    Entry("onnx.op_version", ok.op_version, lambda: {"opset": 13}, {"opset": ONNX_OPSET}),
    # ---------------------------------------------------------------- kernels.torch
    Entry("torch.fake_quantize_per_tensor_affine", tk.fake_quantize_per_tensor_affine,
          lambda: {"x": X(), "scale": 0.1, "zero_point": 3, "quant_min": 0, "quant_max": 255},
          {"x": TORCH_X, "scale": TORCH_SCALE, "zero_point": int_kind(0, 255),
           **TORCH_RANGE, "bfloat16": FLAG},
          [("quant_min", {"quant_min": 255}), ("quant_max", {"quant_max": -5})],
          valid={"x": XDATA}, lists=("x",), empty=("x", (0,), "elementwise")),
    Entry("torch.fake_quantize_per_channel_affine", tk.fake_quantize_per_channel_affine,
          lambda: {"x": X(), "scale": np.array([0.1, 0.2]),
                   "zero_point": np.array([0, 3], np.int32), "axis": 0, "quant_min": 0,
                   "quant_max": 255},
          {"x": TORCH_X,
           "scale": Kind((np.array([0.1, -1.0]), np.array([0.1, np.nan]), None, "1",
                          np.array([1 + 1j, 1]), np.ones(3), [1e39, 1.0], [1e-50, 1.0]),
                         st.one_of(junk, bad_dtype_arrays)),
           "zero_point": Kind((np.array([0, 300]), None, "0", np.array([True, False]),
                               np.ones(3, np.int32), np.array([1 + 1j, 0]),
                               np.array([np.nan, 0.0])), st.one_of(junk, bad_dtype_arrays)),
           "axis": int_kind(0, 1), **TORCH_RANGE, "bfloat16": FLAG,
           "cpu_capability": choice_kind(("avx2", "avx512", "default"))},
          valid={"x": XDATA, "scale": pos_arrays((2,), np.float64),
                 "zero_point": int_arrays(np.int32, (2,), 0, 255)},
          lists=("x", "scale", "zero_point"), empty=("x", (2, 0), "elementwise")),
    Entry("torch.quantize_per_tensor", tk.quantize_per_tensor,
          lambda: {"x": X(), "scale": 0.1, "zero_point": 3, "dtype": "quint8"},
          {"x": data_kind(f16_ok=False), "scale": TORCH_SCALE,
           "zero_point": int_kind(0, 255), "dtype": choice_kind(tuple(tk.QDTYPES)),
           "device": choice_kind(("cpu", "cuda"))},
          valid={"x": XDATA}, lists=("x",), empty=("x", (0,), "elementwise")),
    Entry("torch.quantize_per_channel", tk.quantize_per_channel,
          lambda: {"x": X(), "scales": np.array([0.1, 0.2]), "zero_points": np.array([0, 3]),
                   "axis": 0, "dtype": "quint8"},
          {"x": data_kind(f16_ok=False),
           "scales": Kind((np.array([0.1, 0.0]), np.array([0.1, np.inf]), None, "1",
                           np.ones(3), [1e39, 1.0]), st.one_of(junk, bad_dtype_arrays)),
           "zero_points": Kind((np.array([0, 256]), np.array([-1, 0]), None, "0",
                                np.ones(3, np.int64)), st.one_of(junk, bad_dtype_arrays)),
           "axis": int_kind(0, 1), "dtype": choice_kind(tuple(tk.QDTYPES)),
           "device": choice_kind(("cpu", "cuda"))},
          valid={"x": XDATA, "scales": pos_arrays((2,), np.float64),
                 "zero_points": int_arrays(np.int64, (2,), 0, 255)},
          lists=("x", "scales", "zero_points"), empty=("x", (2, 0), "elementwise")),
    Entry("torch.dequantize", tk.dequantize,
          lambda: {"q": np.array([[1, 2, 3], [-4, 500, 6]], np.int32), "scale": 0.1,
                   "zero_point": 3},
          {"q": Kind(tuple(JUNK) + (True, [1.5], np.ones(3, F32)) + BAD_ARRAYS,
                     st.one_of(junk, bad_dtype_arrays)),
           "scale": TORCH_SCALE, "zero_point": int_kind(),
           "dtype": choice_kind(tuple(tk.QDTYPES), none_ok=True),
           "axis": int_kind(extra=(5, -1), none_ok=True),
           "device": choice_kind(("cpu", "cuda"))},
          [("q", {"dtype": "quint8"})],  # int32 codes outside quint8's [0, 255]
          valid={"q": int_arrays(np.int32, (2, 3), -1000, 1000)},
          empty=("q", (0,), "elementwise")),
    # ---------------------------------------------------------------- kernels.nvidia
    Entry("nvidia.amax_scale", nv.amax_scale, lambda: {"amax": np.array([0.7, 2.0], F32)},
          {"amax": NV_AMAX, "num_bits": BITS, "unsigned": FLAG},
          valid={"amax": pos_arrays((2,))}, lists=("amax",),
          empty=("amax", (0,), "elementwise")),
    Entry("nvidia.tensor_quant", nv.tensor_quant, lambda: {"x": X(), "amax": 1.5},
          {"x": NV_X, "amax": NV_AMAX, "num_bits": BITS, "unsigned": FLAG,
           "narrow_range": FLAG, "axis": int_kind(extra=(5,), none_ok=True)},
          [("amax", {"amax": [1.0, 2.0]}), ("x", {"unsigned": True})],
          valid={"x": XDATA}, lists=("x",), empty=("x", (0,), "elementwise")),
    *[Entry(f"nvidia.fake_tensor_quant[{b}]", nv.fake_tensor_quant,
            lambda b=b: {"x": X(), "amax": np.array([1.5, 0.5], F32), "axis": 0,
                         "backend": b},
            {"x": NV_X, "amax": NV_AMAX, "num_bits": BITS, "unsigned": FLAG,
             "narrow_range": FLAG, "axis": int_kind(-2, 1, none_ok=True),
             "backend": choice_kind(("python", "modelopt_cuda"))},
            [("amax", {"amax": np.ones(3, F32)}), ("x", {"unsigned": True})],
            valid={"x": XDATA, "amax": pos_arrays((2,))}, lists=("x", "amax"),
            empty=("x", (2, 0), "elementwise"))
      for b in ("python", "modelopt_cuda")],
    # ---------------------------------------------------------------- kernels.slim
    Entry("slim.search_factors", slim.search_factors,
          lambda: {"start": 0.3, "stop": 1.0, "step": 0.02},
          {"start": real_kind(positive=False, f32=False),
           "stop": real_kind(positive=False, f32=False),
           "step": real_kind(f32=False, extra=(1e-12,))}),
    Entry("slim.quant_dequant", slim.quant_dequant,
          lambda: {"x": X(), "scale": np.array(1.5, F32), "qmax": 127},
          {"x": data_kind(f64_ok=True),
           "scale": Kind((None, "1", 1 + 1j, True, 1e39, [1e39], np.ones(7),
                          np.array(["a"])), st.one_of(junk, beyond_f32, bad_dtype_arrays)),
           "qmax": int_kind(1, None), "qmin": int_kind(None, 126, none_ok=True),
           "out": Kind((Same(lambda kw: kw["x"], "out=x"), Same(lambda kw: kw["x"][:, ::-1],
                                                                 "out=x[:, ::-1]"),
                        np.empty(5, F32), np.empty((2, 3)), [0.0] * 6, "out",
                        Same(lambda kw: _read_only(np.zeros((2, 3), F32)), "read-only out")),
                       st.one_of(st.text(max_size=2), st.lists(st.floats(), max_size=3)))},
          valid={"x": XDATA, "scale": f32_arrays((), 1e-3, 1e3)}, lists=("x",),
          empty=("x", (0,), "elementwise")),
    Entry("slim.paddle_mean", slim.paddle_mean, lambda: {"x": X()},
          {"x": data_kind(f64_ok=True, f16_ok=False, lists_narrow=False)},
          valid={"x": f32_arrays((2, 3))}, empty=("x", (0,), "reduction")),
    # ---------------------------------------------------------------- refquant.qparams
    Entry("qparams.QParams", QParams,
          lambda: {"scale": np.array([0.5, 2.0], F32), "zero_point": np.array([0, 1]),
                   "qmin": -128, "qmax": 127, "bits": 8, "axis": 0},
          {"scale": Kind((np.array([np.nan, 1.0]), np.array([-1.0, 1.0]), [np.inf, 1.0],
                          None, "1", 1 + 1j, True, [1e39, 1.0], [1e-50, 1.0],
                          np.array([1.0, "a"], dtype=object), np.array(["a", "b"]),
                          np.array([True, True])),
                         st.one_of(junk, beyond_f32.map(lambda v: [abs(v), 1.0]),
                                   st.floats(max_value=-1e-45).map(lambda v: [v, 1.0]),
                                   bad_dtype_arrays.map(lambda a: a[:2]))),
           "zero_point": Kind((np.array([200, 0]), np.array([0.5, 0]), None, "0",
                               np.array([np.nan, 0]), np.array([1 + 1j, 0]),
                               np.array([True, False]), np.zeros(3)),
                              st.one_of(junk, st.integers(128).map(lambda v: [v, 0]),
                                        st.integers(max_value=-129).map(lambda v: [0, v]))),
           "qmin": int_kind(None, 126), "qmax": int_kind(-127, None), "bits": BITS,
           "axis": Kind(("a", 1.5, True, np.float32(0.0)),
                        st.one_of(st.text(max_size=2), st.floats(), st.booleans())),
           "convention": choice_kind(("threshold", "step")),
           "margin": Kind(("a", object(), 1 + 1j), st.text(min_size=1, max_size=3)),
           "extra": Kind((None, "a", [1]), st.one_of(st.none(), st.text(max_size=2))),
           "allow_nonfinite": FLAG},
          valid={"scale": f32_arrays((2,), 0.0, 1e30),
                 "zero_point": int_arrays(np.int64, (2,), -128, 127)},
          lists=("scale", "zero_point")),
    Entry("qparams.QParams.to_onnx", lambda qp, dtype=np.int8: qp.to_onnx(dtype),
          lambda: {"qp": QParams(np.array([0.5, 2.0], F32), np.array([0, 1]), -128, 127, 8,
                                 axis=0)},
          {"dtype": Kind((np.float32, "abc", None, float, "float32", 5),
                         st.sampled_from([np.float16, np.float64, np.complex64, bool, str]))},
          [("scale", {"qp": QParams(0.0, 0, -128, 127, 8)}),
           ("scale", {"qp": qpm.symmetric_qparams(0.0, 1e-45)}),
           ("scale", {"qp": QParams(np.inf, 0, -128, 127, 8, allow_nonfinite=True)}),
           ("zero_point", {"qp": QParams(1.0, 200, 0, 255, 8)})]),
    Entry("qparams.integer_range", qpm.integer_range, lambda: {"bits": 8},
          {"bits": BITS, "signed": FLAG, "narrow": FLAG}),
    *[Entry(f"qparams.{fn.__name__}", fn,
            lambda: {"min_val": np.array([-1.0, -0.5, 0.0], F32),
                     "max_val": np.array([2.0, 0.25, 0.0], F32), "bits": 8},
            {"min_val": Kind((None, "1", 1 + 1j, np.nan, [], True, np.array([1 + 1j]),
                              np.array(["a"])), st.one_of(junk, st.just(np.nan))),
             "max_val": Kind((None, "2", np.nan, [np.nan, 1.0, 1.0], 1 + 1j),
                             st.one_of(junk, st.just(np.nan))),
             "bits": BITS, "signed": FLAG, "narrow": FLAG,
             "axis": Kind(("a", 1.5, True), st.one_of(st.text(max_size=2), st.floats()))},
            [("min_val", {"min_val": 3.0, "max_val": 1.0}),
             ("min_val", {"min_val": [1.0, 2.0], "max_val": [1.0, 2.0, 3.0]}),
             ("min_val", {"min_val": -1e300, "max_val": 1.0}),
             ("max_val", {"min_val": 0.0, "max_val": 1e300})],
            valid={"min_val": f32_arrays((3,), -1e3, 0.0),
                   "max_val": f32_arrays((3,), 0.0, 1e3)},
            lists=("min_val", "max_val"))
      for fn in (qpm.symmetric_qparams, qpm.asymmetric_qparams)],
]


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


#: Public callables without an entry here, and why.
NOT_HERE = {
    "paddle.MovingAverageResult": "a NamedTuple the moving-average kernels return",
    "slim.LaneSum": "re-exported from kernels/_paddle_reduce.py (tested there)",
    "slim.lanes_for": "re-exported from kernels/_paddle_reduce.py (tested there)",
}


# --------------------------------------------------------------------------- helpers


def _snapshot(kwargs: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...], bytes, bool]]:
    return {k: (v.dtype.str, v.shape, v.tobytes(), v.flags.writeable)
            for k, v in kwargs.items() if isinstance(v, np.ndarray) and v.dtype != object}


def _assert_unmodified(before: dict[str, Any], kwargs: dict[str, Any], what: str) -> None:
    assert _snapshot(kwargs) == before, f"{what}: an argument was modified"


def _resolve(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.fn(kwargs) if isinstance(v, Same) else v) for k, v in kwargs.items()}


def _names_arg(msg: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", msg) is not None


def _expect_error(entry: Entry, name: str, overrides: dict[str, Any]) -> None:
    kwargs = _resolve({**entry.base(), **overrides})
    before = _snapshot(kwargs)
    with pytest.raises((ValueError, TypeError)) as info:
        entry.call(**kwargs)
    msg = str(info.value)
    assert _names_arg(msg, name), (
        f"{entry.name}({name}={overrides.get(name, overrides)!r}): message does not name "
        f"{name!r}: {type(info.value).__name__}: {msg}"
    )
    _assert_unmodified(before, kwargs, entry.name)


def _canon(r: Any) -> Any:
    """A comparable form of a result: arrays by dtype, shape and bytes (bit for bit)."""
    if isinstance(r, QParams):
        return ("QParams", _canon(r.scale), _canon(r.zero_point), r.qmin, r.qmax, r.bits,
                r.axis, r.convention)
    if isinstance(r, tuple):
        return tuple(_canon(v) for v in r)
    if isinstance(r, (np.ndarray, np.generic)):
        a = np.asarray(r)
        return (a.dtype.str, a.shape, a.tobytes())
    return r


def _leaves(r: Any) -> list[np.ndarray]:
    if isinstance(r, QParams):
        return [r.scale, r.zero_point]
    if isinstance(r, tuple):
        return [a for v in r for a in _leaves(v)]
    return [r] if isinstance(r, np.ndarray) else []


def _big_endian(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder(">")) if a.dtype.itemsize > 1 else a.copy()


def _strided(a: np.ndarray) -> np.ndarray:
    b = np.zeros(a.shape + (2,), a.dtype)
    b[..., 0] = a
    return b[..., 0]


LAYOUTS: dict[str, Callable[[np.ndarray], Any]] = {
    "big-endian": _big_endian,
    "read-only": lambda a: _read_only(a.copy()),
    "strided view": _strided,
    "read-only big-endian view": lambda a: _read_only(_strided(_big_endian(a))),
}


def _ids(entries: list[Entry]) -> list[str]:
    return [e.name for e in entries]


# --------------------------------------------------------------------------- tests


def test_every_public_callable_has_an_entry():
    modules = {"paddle": pk, "onnx": ok, "torch": tk, "nvidia": nv, "slim": slim,
               "qparams": qpm}
    covered = {e.name.split("[")[0] for e in ENTRIES}
    missing = []
    for short, mod in modules.items():
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and (inspect.isfunction(obj) or inspect.isclass(obj)):
                key = f"{short}.{name}"
                if key not in covered and key not in NOT_HERE:
                    missing.append(key)
    assert not missing, f"public callables without a bad-input entry: {missing}"
    assert "qparams.QParams.to_onnx" in covered


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_valid_base_call_and_no_aliasing(entry):
    """The base call of each entry is valid (so a bad-argument error is about that argument)
    and its result shares no memory with the inputs."""
    kwargs = entry.base()
    before = _snapshot(kwargs)
    result = entry.call(**kwargs)
    _assert_unmodified(before, kwargs, entry.name)
    for leaf in _leaves(result):
        for k, v in kwargs.items():
            if isinstance(v, np.ndarray):
                assert not np.shares_memory(leaf, v), f"{entry.name}: result aliases {k}"


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_bad_pool(entry):
    """Every value of every argument's fixed pool raises, naming the argument."""
    for name, kind in entry.args.items():
        for value in kind.pool:
            _expect_error(entry, name, {name: value})
    for name, overrides in entry.extra:
        _expect_error(entry, name, overrides)


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
@SETTINGS
@given(data=st.data())
def test_bad_generated(entry, data):
    """Hypothesis-generated bad values of each argument raise, naming the argument."""
    name = data.draw(st.sampled_from(sorted(entry.args)), label="argument")
    value = data.draw(entry.args[name].gen, label=name)
    _expect_error(entry, name, {name: value})


LAYOUT_ENTRIES = [e for e in ENTRIES if e.valid]


@pytest.mark.parametrize("entry", LAYOUT_ENTRIES, ids=_ids(LAYOUT_ENTRIES))
@SETTINGS
@given(data=st.data())
def test_layouts_give_native_bits(entry, data):
    """Big-endian, read-only and strided inputs (and Python lists where accepted) give the
    native-layout result bit for bit, leave the inputs alone and share no memory with the
    result."""
    kwargs = entry.base()
    for name, strategy in entry.valid.items():
        kwargs[name] = data.draw(strategy, label=name)
    if entry.name.startswith("qparams.") and "min_val" in kwargs:
        kwargs["min_val"], kwargs["max_val"] = (np.minimum(kwargs["min_val"], kwargs["max_val"]),
                                                np.maximum(kwargs["min_val"], kwargs["max_val"]))
    try:
        want = _canon(entry.call(**kwargs))
    except (ValueError, TypeError) as exc:  # e.g. a range whose scale float32 cannot hold
        for fn in LAYOUTS.values():
            other = {k: (fn(v) if k in entry.valid else v) for k, v in kwargs.items()}
            with pytest.raises(type(exc)):
                entry.call(**other)
        return
    variants = dict(LAYOUTS)
    if entry.lists:
        variants["Python lists"] = lambda a: a.tolist()
    for layout, fn in variants.items():
        names = entry.lists if layout == "Python lists" else tuple(entry.valid)
        other = {k: (fn(v) if k in names else v) for k, v in kwargs.items()}
        before = _snapshot(other)
        got = entry.call(**other)
        assert _canon(got) == want, f"{entry.name}: {layout} input changes the result"
        _assert_unmodified(before, other, f"{entry.name} ({layout})")
        for leaf in _leaves(got):
            for k, v in other.items():
                if isinstance(v, np.ndarray):
                    assert not np.shares_memory(leaf, v), f"{entry.name}: result aliases {k}"


EMPTY_ENTRIES = [e for e in ENTRIES if e.empty]


@pytest.mark.parametrize("entry", EMPTY_ENTRIES, ids=_ids(EMPTY_ENTRIES))
def test_empty_input_rule(entry):
    """One rule for every kernel family: elementwise -> empty result, reduction -> error."""
    assert entry.empty is not None
    name, shape, rule = entry.empty
    base = entry.base()
    empty = np.zeros(shape, dtype=np.asarray(base[name]).dtype)
    if rule == "reduction":
        _expect_error(entry, name, {name: empty})
        return
    result = entry.call(**{**base, name: empty})
    leaves = _leaves(result)
    assert leaves, f"{entry.name}: no array in the result"
    assert leaves[0].shape == shape, f"{entry.name}: empty {name} gives shape {leaves[0].shape}"


# --------------------------------------------------------------------------- targeted properties


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(s=st.floats(min_value=0.0, max_value=float(F32(1e-30)), width=32, allow_subnormal=True),
       bits=st.integers(2, 16), signed=st.booleans())
def test_to_onnx_never_returns_a_zero_or_nonfinite_y_scale(s, bits, signed):
    """``symmetric_qparams(0, 1e-45).to_onnx()`` gave y_scale 0: a threshold whose
    ``S / qmax`` underflows must raise, naming the scale; otherwise y_scale is
    ``fl32(S / qmax)`` (computed here in exact rational arithmetic) and > 0."""
    from fractions import Fraction

    qp = qpm.symmetric_qparams(0.0, float(s), bits=bits, signed=signed)
    qmax = qp.qmax
    exact = Fraction(float(np.float32(s))) / qmax
    nearest = np.float32(float(exact))  # float(Fraction) rounds once; float32 once more
    cands = [nearest, np.nextafter(nearest, F32(0)), np.nextafter(nearest, F32(1))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - exact),
                                     int(np.asarray(c).view(np.uint32)) & 1))
    zdt = (np.int8 if bits <= 8 else np.int16) if signed else (np.uint8 if bits <= 8
                                                               else np.uint16)
    if best == 0:
        with pytest.raises(ValueError, match="scale"):
            qp.to_onnx(zdt)
        return
    y_scale, _ = qp.to_onnx(zdt)
    assert np.asarray(y_scale).view(np.uint32) == np.asarray(best).view(np.uint32)
    assert y_scale > 0


def test_asymmetric_order_is_checked_before_widening():
    """(3, 1) widened to (0, 3) used to pass the min <= max check."""
    with pytest.raises(ValueError, match=r"min_val must be <= max_val, got 3\.0 > 1\.0"):
        qpm.asymmetric_qparams(3, 1)
    with pytest.raises(ValueError, match="min_val must be <= max_val"):
        qpm.symmetric_qparams(np.array([0.0, 5.0]), np.array([1.0, 2.0]))


def test_qparams_step_threshold_conversions_refuse_to_lose_the_value():
    tiny = QParams(np.float32(1e-45), 0, -128, 127, 8)
    with pytest.raises(ValueError, match="underflows"):
        _ = tiny.step
    big = QParams(np.float32(3e38), 0, 0, 255, 8, convention="step")
    with pytest.raises(ValueError, match="overflows"):
        _ = big.threshold
    # the conversions themselves: fl32(2 / 127) and fl32(0.5 * 255), worked by hand
    assert QParams(2.0, 0, -128, 127, 8).step == F32(2.0) / F32(127.0)
    assert QParams(0.5, 0, 0, 255, 8, convention="step").threshold == F32(127.5)


def test_qparams_allow_nonfinite_is_explicit():
    with pytest.raises(ValueError, match="scale"):
        QParams(np.inf, 0, -128, 127, 8)
    qp = QParams(np.inf, 0, -128, 127, 8, allow_nonfinite=True)
    assert np.isinf(qp.scale)
    with pytest.raises(ValueError, match="scale"):
        QParams(-1.0, 0, -128, 127, 8, allow_nonfinite=True)


@pytest.mark.parametrize("axis", [2, -1, 5])
def test_channel_abs_max_axis_is_not_silently_axis_1(axis):
    x = np.arange(24, dtype=F32).reshape(2, 3, 4)
    with pytest.raises(ValueError, match="quant_axis"):
        pk.channel_abs_max(x, axis)
    # axis 1 by hand: max |x| over the other axes of each of the 3 channels
    assert pk.channel_abs_max(x, 1).tolist() == [15.0, 19.0, 23.0]


def test_dequantize_max_range_zero_and_round_type_five():
    with pytest.raises(ValueError, match="max_range"):
        pk.dequantize(np.ones(2, F32), np.array(1.0, F32), 0)
    with pytest.raises(ValueError, match="round_type"):
        pk.quantize(np.ones(2, F32), np.array(1.0, F32), 127, 5)


def test_float64_beyond_float32_is_never_narrowed_to_inf():
    big = [1e39, 1.0]
    calls = [
        lambda: pk.quantize_linear(big, np.array([1.0], F32)),
        lambda: pk.dequantize_linear(np.array(big), np.array([1.0], F32)),
        lambda: pk.abs_max(np.array(big)),
        lambda: ok.quantize_linear(big, np.float32(1.0)),
        lambda: tk.fake_quantize_per_tensor_affine(big, 0.1, 0, 0, 255),
        lambda: nv.fake_tensor_quant(big, 1.0),
        lambda: slim.quant_dequant(big, 1.0, 127),
        lambda: QParams(np.array(big), np.zeros(2, np.int64), -128, 127, 8),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="beyond the float32 range"):
            call()
    # a float64 tensor is not narrowed: torch multiplies in double (1e300 * inv saturates at
    # quant_max = 127), then y = fl32(127 * fl32(1e-3)) is stored widened to float64
    y = tk.fake_quantize_per_tensor_affine(np.array([1e300]), 1e-3, 0, -128, 127)
    assert y.dtype == np.float64 and y[0] == np.float64(F32(127.0) * F32(1e-3))
