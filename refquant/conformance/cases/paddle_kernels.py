"""Paddle 3.3.1 quantize / dequantize / fake-quant kernel cases (reference:
:mod:`refquant.kernels.paddle`).

Operations (inputs; params -> outputs), all float32 unless noted:

* ``paddle.quantize_linear``: ``x``, ``scale``; ``quant_axis``, ``bit_length``, ``qmin``,
  ``qmax``, ``round_type`` -> ``y`` (integer-valued float32 codes)
* ``paddle.dequantize_linear``: ``x``, ``scale``; ``quant_axis``, ``bit_length``, ``qmin``,
  ``qmax`` -> ``y``
* ``paddle.fake_quantize_abs_max`` / ``paddle.fake_quantize_dequantize_abs_max``: ``x``;
  ``bit_length``, ``round_type`` -> ``out``, ``scale`` (shape (1,))
* ``paddle.fake_channel_wise_quantize_abs_max`` /
  ``paddle.fake_channel_wise_quantize_dequantize_abs_max``: ``x``; ``bit_length``,
  ``round_type``, ``quant_axis`` -> ``out``, ``scale`` (shape (C,))
* ``paddle.fake_dequantize_max_abs``: ``x``, ``scale``; ``max_range`` -> ``y``
* ``paddle.fake_quantize_moving_average_abs_max`` (and ``..._dequantize_...``), training
  step: ``x``, ``in_scale``, ``in_accum``, ``in_state``; ``moving_rate``, ``bit_length``,
  ``round_type`` -> ``out``, ``out_scale``, ``out_accum``, ``out_state``
  (``is_test=False``).

Runs on the ``reference`` and ``paddle`` targets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import paddle as pk
from ..registry import CaseDraft, register_family, register_op
from ._inputs import DISTRIBUTIONS, distribution, f32, near_ties_mul, normal, special_values


@register_op("paddle.quantize_linear", "kernel", ("y",))
def _quantize_linear(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.paddle.quantize_linear."""
    return pk.quantize_linear(inputs["x"], inputs["scale"], None, quant_axis=p["quant_axis"],
                              bit_length=p["bit_length"], qmin=p["qmin"], qmax=p["qmax"],
                              round_type=p["round_type"])


@register_op("paddle.dequantize_linear", "kernel", ("y",))
def _dequantize_linear(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.paddle.dequantize_linear."""
    return pk.dequantize_linear(inputs["x"], inputs["scale"], None, quant_axis=p["quant_axis"],
                                bit_length=p["bit_length"], qmin=p["qmin"], qmax=p["qmax"])


@register_op("paddle.fake_quantize_abs_max", "kernel", ("out", "scale"))
def _fq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple:
    """refquant.kernels.paddle.fake_quantize_abs_max."""
    return tuple(pk.fake_quantize_abs_max(inputs["x"], p["bit_length"], p["round_type"]))


@register_op("paddle.fake_quantize_dequantize_abs_max", "kernel", ("out", "scale"))
def _fqdq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple:
    """refquant.kernels.paddle.fake_quantize_dequantize_abs_max."""
    return tuple(pk.fake_quantize_dequantize_abs_max(inputs["x"], p["bit_length"],
                                                     p["round_type"]))


@register_op("paddle.fake_channel_wise_quantize_abs_max", "kernel", ("out", "scale"))
def _cfq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple:
    """refquant.kernels.paddle.fake_channel_wise_quantize_abs_max."""
    return tuple(pk.fake_channel_wise_quantize_abs_max(inputs["x"], p["bit_length"],
                                                       p["round_type"], p["quant_axis"]))


@register_op("paddle.fake_channel_wise_quantize_dequantize_abs_max", "kernel",
             ("out", "scale"))
def _cfqdq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple:
    """refquant.kernels.paddle.fake_channel_wise_quantize_dequantize_abs_max."""
    return tuple(pk.fake_channel_wise_quantize_dequantize_abs_max(
        inputs["x"], p["bit_length"], p["round_type"], p["quant_axis"]))


@register_op("paddle.fake_dequantize_max_abs", "kernel", ("y",))
def _fdq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.paddle.fake_dequantize_max_abs."""
    return pk.fake_dequantize_max_abs(inputs["x"], inputs["scale"], p["max_range"])


def _ma(fn: Any) -> Any:
    def ref(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple:
        r = fn(inputs["x"], inputs["in_scale"], inputs["in_accum"], inputs["in_state"],
               moving_rate=p["moving_rate"], bit_length=p["bit_length"],
               round_type=p["round_type"], is_test=False)
        return r.out, r.out_scale, r.out_accum, r.out_state
    ref.__doc__ = f"refquant.kernels.paddle.{fn.__name__} (is_test=False)."
    return ref


_MA_OUT = ("out", "out_scale", "out_accum", "out_state")
register_op("paddle.fake_quantize_moving_average_abs_max", "kernel", _MA_OUT)(
    _ma(pk.fake_quantize_moving_average_abs_max))
register_op("paddle.fake_quantize_dequantize_moving_average_abs_max", "kernel", _MA_OUT)(
    _ma(pk.fake_quantize_dequantize_moving_average_abs_max))

_QMAX = {4: 7, 8: 127, 16: 32767}


def _ql(cid: str, x: np.ndarray, scale: Any, *, rt: int, bits: int = 8, axis: int = -1,
        qmin: int | None = None, qmax: int | None = None, tags: tuple[str, ...] = (),
        desc: str = "") -> CaseDraft:
    qm = _QMAX[bits] if qmax is None else qmax
    return CaseDraft(
        id=f"paddle.ql.{cid}", op="paddle.quantize_linear",
        inputs={"x": x.astype(np.float32), "scale": np.asarray(scale, np.float32)},
        params={"quant_axis": axis, "bit_length": bits, "qmin": -qm - 1 if qmin is None else qmin,
                "qmax": qm, "round_type": rt},
        tags=("paddle", "quantize_linear", f"rt{rt}", f"b{bits}") + tags, description=desc)


def _quantize_linear_cases() -> Iterator[CaseDraft]:
    thresholds = {"s128": 128.0, "s0p1": 0.1, "s0p7": 0.7, "s3p3": 3.3, "s1em3": 1e-3}
    for bits, qmax in _QMAX.items():
        for sname, s in thresholds.items():
            s32 = np.float32(s)
            c = np.float32(np.float32(qmax) * (np.float32(1) / s32))
            span = min(qmax, 40)
            halves = np.arange(-span - 1, span + 1) + 0.5
            x = near_ties_mul(c, halves)
            for rt in (0, 1):
                yield _ql(f"ties.{sname}.b{bits}.rt{rt}", x, s32, rt=rt, bits=bits,
                          tags=("ties",),
                          desc=f"x within 2 ulp of fl(c*x) = k + 0.5, c = fl(qmax * (1/S)), "
                               f"S={s}")
    sat = np.concatenate([f32(-1.003937, -1.0, 1.0, 1.003937, -1.0039371, 0.99999994,
                              -0.99999994, -2.0, 2.0, 1e6, -1e6),
                          normal(5, 32, 1.0)])
    for bits in _QMAX:
        for rt in (0, 1):
            yield _ql(f"saturate.b{bits}.rt{rt}", sat, np.float32(1.0), rt=rt, bits=bits,
                      tags=("saturation",),
                      desc="S=1: rt0 clips after rounding to [-qmax-1, qmax], rt1 clips x "
                           "to [-S, S] first")
            yield _ql(f"special.b{bits}.rt{rt}", special_values(), np.float32(0.5), rt=rt,
                      bits=bits, tags=("special",),
                      desc="+-0 (sign kept), subnormals, huge, +-inf, NaN (stays NaN)")
    guard = f32(1e-7, -1e-7, 1e-6, 0.0, -0.0, 1.0, -1.0, 5e-8, 1e-30, 3e-31)
    for sname, s in (("zero", 0.0), ("1em30", 1e-30), ("1p1em30", 1.1e-30), ("1em31", 1e-31),
                     ("subnormal", 1e-40), ("inf", np.inf)):
        for rt in (0, 1):
            yield _ql(f"scale_{sname}.rt{rt}", guard, np.float32(s), rt=rt,
                      tags=("tiny-scale",),
                      desc=f"S={s}: inv(S) = 1/(S+1e-6) when S <= 1e-30 (rt0: x=1e-7 -> 13)")
    yield _ql("qmin_ignored.rt0", f32(-10, -7.5, -7, 0, 7, 10), np.float32(7.0), rt=0,
              qmin=-7, qmax=7, tags=("qmin-ignored",),
              desc="qmin=-7 is ignored: the lower bound is -qmax-1 = -8")
    for qmax in (448, 57344):
        x = np.concatenate([f32(0, -0.0, 17, 19, 464, 465, 479, 480, 1e4, 57344, 61440, 7e4,
                                np.nan, np.inf, -np.inf, 1e-3, 2.0 ** -9, 2.0 ** -17),
                            -np.linspace(0.1, 600, 24).astype(np.float32)])
        for rt in (0, 1):
            yield _ql(f"fp8_q{qmax}.rt{rt}", x, np.float32(qmax), rt=rt, qmax=qmax,
                      qmin=-qmax, tags=("fp8",),
                      desc="qmax 448/57344 with rt0: float8 conversion (465 -> NaN, "
                           "480 -> 448, NaN -> 448 for e4m3)")
    w2 = normal(81, (6, 5), 0.8)
    w4 = normal(82, (4, 3, 2, 2), 0.5)
    for x, name in ((w2, "2d"), (w4, "4d")):
        for axis in (0, 1):
            n = x.shape[axis]
            s = (np.abs(x).max(axis=tuple(i for i in range(x.ndim) if i != axis)) *
                 np.float32(0.9)).astype(np.float32)
            s[0] = np.float32(0.0)  # a zero channel: the tiny-scale guard per channel
            for bits in (4, 8):
                for rt in (0, 1):
                    yield _ql(f"axis{axis}.{name}.b{bits}.rt{rt}", x, s, rt=rt, bits=bits,
                              axis=axis, tags=("per-channel", f"axis{axis}"),
                              desc=f"per-channel along axis {axis}, {n} scales, channel 0 "
                                   f"has S=0")


def _dequantize_cases() -> Iterator[CaseDraft]:
    for bits, qmax in _QMAX.items():
        codes = np.arange(-qmax - 1, qmax + 1, dtype=np.float32)
        if codes.size > 512:
            codes = np.concatenate([codes[:200], codes[-200:]])
        for sname, s in (("s0p7", 0.7), ("s3p3", 3.3), ("s1em3", 1e-3)):
            yield CaseDraft(
                id=f"paddle.dql.codes.{sname}.b{bits}", op="paddle.dequantize_linear",
                inputs={"x": codes, "scale": np.array([s], np.float32)},
                params={"quant_axis": -1, "bit_length": bits, "qmin": -qmax - 1, "qmax": qmax},
                tags=("paddle", "dequantize_linear"),
                description="y = fl(fl(q * S) / qmax), every code")
    q2 = ((np.arange(30).reshape(6, 5) * 37) % 255 - 127).astype(np.float32)
    for axis in (0, 1):
        sc = np.linspace(0.3, 2.9, q2.shape[axis]).astype(np.float32)
        yield CaseDraft(
            id=f"paddle.dql.axis{axis}", op="paddle.dequantize_linear",
            inputs={"x": q2, "scale": sc},
            params={"quant_axis": axis, "bit_length": 8, "qmin": -128, "qmax": 127},
            tags=("paddle", "dequantize_linear", "per-channel"))
    for bits, qmax in _QMAX.items():
        codes = np.arange(-qmax - 1, qmax + 1, dtype=np.float32)[:256]
        yield CaseDraft(
            id=f"paddle.fdq.codes.b{bits}", op="paddle.fake_dequantize_max_abs",
            inputs={"x": codes, "scale": np.array([0.7], np.float32)},
            params={"max_range": float(qmax)}, tags=("paddle", "fake_dequantize_max_abs"),
            description="y = fl(fl(x * S) / max_range)")


def _fake_cases() -> Iterator[CaseDraft]:
    for dist in DISTRIBUTIONS:
        x = distribution(dist, 90 + len(dist), (8, 16), 1.5)
        for bits in (4, 8, 16):
            for rt in (0, 1):
                for op, short in (("fake_quantize_abs_max", "fq"),
                                  ("fake_quantize_dequantize_abs_max", "fqdq")):
                    if bits == 16 and short == "fq":
                        continue
                    yield CaseDraft(
                        id=f"paddle.{short}.{dist}.b{bits}.rt{rt}", op=f"paddle.{op}",
                        inputs={"x": x}, params={"bit_length": bits, "round_type": rt},
                        tags=("paddle", op, dist),
                        description=f"per-tensor abs-max then quantize, {dist} data")
    specials = {
        "nan_first": f32(np.nan, 1.0, -2.0, 0.5),
        "nan_later": f32(1.0, np.nan, -2.0, 0.5),
        "all_zero": f32(0.0, -0.0, 0.0, -0.0),
        "inf": f32(1.0, -np.inf, 0.5, 2.0),
        "subnormal": f32(1e-40, -3e-39, 1e-45, 0.0),
        "tie": f32(2.519685, -2.519685, 128.0, 1.5 * 128 / 127),
    }
    for name, x in specials.items():
        for rt in (0, 1):
            for op, short in (("fake_quantize_abs_max", "fq"),
                              ("fake_quantize_dequantize_abs_max", "fqdq")):
                yield CaseDraft(
                    id=f"paddle.{short}.{name}.rt{rt}", op=f"paddle.{op}",
                    inputs={"x": x}, params={"bit_length": 8, "round_type": rt},
                    tags=("paddle", op, "special"),
                    description="NaN at flat index 0 poisons the CPU abs-max; NaN elsewhere "
                                "is skipped" if name.startswith("nan") else "")
    w2 = normal(101, (8, 6), 0.4)
    w2[:, 2] = 0.0
    w4 = normal(102, (4, 3, 3, 3), 0.7)
    w4[1] = 0.0
    for x, name in ((w2, "2d"), (w4, "4d")):
        for axis in (0, 1):
            for bits in (4, 8):
                for rt in (0, 1):
                    for op, short in (("fake_channel_wise_quantize_abs_max", "cfq"),
                                      ("fake_channel_wise_quantize_dequantize_abs_max",
                                       "cfqdq")):
                        yield CaseDraft(
                            id=f"paddle.{short}.{name}.axis{axis}.b{bits}.rt{rt}",
                            op=f"paddle.{op}", inputs={"x": x},
                            params={"bit_length": bits, "round_type": rt, "quant_axis": axis},
                            tags=("paddle", op, f"axis{axis}"),
                            description="per-channel abs-max (zero channels included)")


def _moving_average_cases() -> Iterator[CaseDraft]:
    steps = [
        ("first", normal(111, 32, 1.0), 0.0, 0.0, 0.0),
        ("warm", normal(112, 32, 1.0), 1.63, 1.2, 0.81),
        ("saturate", f32(-3.0, 0.5, 1.0, 2.0), 1.63, 0.1, 0.5),
        ("nan_first", f32(np.nan, 0.5, 1.0), 1.0, 1.0, 1.0),
        ("zero", f32(0.0, -0.0, 0.0), 0.0, 0.0, 0.0),
    ]
    variants = [(rate, 8) for rate in (0.9, 0.99)] + [(0.9, 4), (0.9, 16)]
    for name, x, s, acc, st in steps:
        for rate, bits in variants:
            for rt in (0, 1):
                for op, short in (("fake_quantize_moving_average_abs_max", "ma"),
                                  ("fake_quantize_dequantize_moving_average_abs_max", "madq")):
                    suffix = "" if bits == 8 else f".b{bits}"
                    yield CaseDraft(
                        id=f"paddle.{short}.{name}.r{int(rate * 100)}{suffix}.rt{rt}",
                        op=f"paddle.{op}",
                        inputs={"x": x, "in_scale": np.array([s], np.float32),
                                "in_accum": np.array([acc], np.float32),
                                "in_state": np.array([st], np.float32)},
                        params={"moving_rate": rate, "bit_length": bits, "round_type": rt},
                        tags=("paddle", op, "moving-average"),
                        description="state = r*state + 1; accum = r*accum + absmax; "
                                    "S = accum / state; quantize with the new S")


@register_family("kernels.paddle", requires=("refquant.kernels.paddle",))
def generate() -> Iterator[CaseDraft]:
    yield from _quantize_linear_cases()
    yield from _dequantize_cases()
    yield from _fake_cases()
    yield from _moving_average_cases()
