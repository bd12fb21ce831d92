"""TensorFlow CPU fake-quant kernel cases (reference: :mod:`refquant.kernels.tensorflow`).

Operations (float32 ``x``; ``variant`` is ``"eager"`` (the CPU kernels) or ``"xla"``
(``tf.function(jit_compile=True)``); the ``tensorflow`` target runs each case that way):

* ``tensorflow.fake_quant_with_min_max_args``: ``x``; ``variant``, ``num_bits``,
  ``narrow_range``, ``min``, ``max`` (attributes) -> ``y``
* ``tensorflow.fake_quant_with_min_max_vars``: ``x``; the same params (``min`` / ``max``
  passed as scalar tensors) -> ``y``
* ``tensorflow.fake_quant_with_min_max_vars_per_channel``: ``x`` (channels last), ``min``,
  ``max`` f32 ``(C,)``; ``variant``, ``num_bits``, ``narrow_range`` -> ``y``
* ``tensorflow.quantize_and_dequantize_v4``: ``x``; ``input_min``, ``input_max``,
  ``signed_input``, ``num_bits``, ``range_given``, ``round_mode``, ``narrow_range`` -> ``y``
  (per tensor, the CPU kernel)

Inputs: exact ``.5`` ties of the scaled value on the nudged grid (at both ends of the grid
and six between) and their float32 neighbours, the raw and nudged range ends and their
neighbours, +-0,
subnormals (flushed by the eager kernels), huge values and +-inf. NaN only in eager cases:
what XLA's clamp makes of NaN depends on the code XLA generates for the host CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import tensorflow as tk
from ..registry import CaseDraft, register_family, register_op
from ._inputs import normal, special_values, ulp_neighbours

F32 = np.float32


@register_op("tensorflow.fake_quant_with_min_max_args", "kernel", ("y",))
def _args(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.tensorflow.fake_quant_with_min_max_args."""
    return tk.fake_quant_with_min_max_args(inputs["x"], p["min"], p["max"], p["num_bits"],
                                           p["narrow_range"], variant=p["variant"])


@register_op("tensorflow.fake_quant_with_min_max_vars", "kernel", ("y",))
def _vars(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.tensorflow.fake_quant_with_min_max_vars."""
    return tk.fake_quant_with_min_max_vars(inputs["x"], p["min"], p["max"], p["num_bits"],
                                           p["narrow_range"], variant=p["variant"])


@register_op("tensorflow.fake_quant_with_min_max_vars_per_channel", "kernel", ("y",))
def _per_channel(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.tensorflow.fake_quant_with_min_max_vars_per_channel."""
    return tk.fake_quant_with_min_max_vars_per_channel(
        inputs["x"], inputs["min"], inputs["max"], p["num_bits"], p["narrow_range"],
        variant=p["variant"])


@register_op("tensorflow.quantize_and_dequantize_v4", "kernel", ("y",))
def _qdq_v4(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> np.ndarray:
    """refquant.kernels.tensorflow.quantize_and_dequantize_v4 (per tensor)."""
    return tk.quantize_and_dequantize_v4(
        inputs["x"], p["input_min"], p["input_max"], signed_input=p["signed_input"],
        num_bits=p["num_bits"], range_given=p["range_given"], round_mode=p["round_mode"],
        narrow_range=p["narrow_range"])


#: name -> (min, max): around zero, the tensorflow#117962 range, a nudged max beyond max,
#: zero min, ranges excluding zero on either side, a tiny and a wide range
RANGES = {"m6_6": (-6.0, 6.0), "m1_2": (-1.0, 2.0), "m0p1_1": (-0.1, 1.0),
          "z0_1": (0.0, 1.0), "pos": (0.5, 2.5), "neg": (-3.0, -0.25),
          "tiny": (-1e-3, 2.5e-3), "wide": (-3e4, 1e5)}
#: (range, num_bits, narrow_range) per case: every range at 8 bits, and other widths and
#: narrow_range on three of them
CONFIGS = ([(r, 8, False) for r in RANGES]
           + [("m1_2", 8, True), ("m1_2", 2, False), ("m1_2", 4, True), ("m1_2", 16, False),
              ("neg", 3, False), ("m0p1_1", 16, True)])


def _ties(nmin: F32, scale: F32, levels: int) -> np.ndarray:
    """``nmin + (k + 0.5) * scale`` for k at both ends of ``[-2, levels]`` and six between,
    with the float32 neighbour each way."""
    ks = np.unique(np.concatenate([np.arange(-2, 3), np.arange(levels - 3, levels + 1),
                                   np.arange(1, 7) * (levels // 7)]))
    t = (np.float64(nmin) + (ks + 0.5) * np.float64(scale)).astype(F32)
    return ulp_neighbours(t, 1)


def fq_inputs(mn: float, mx: float, bits: int, narrow: bool, op: str, variant: str,
              seed: int) -> np.ndarray:
    """Adversarial inputs for one fake-quant range (see the module docstring)."""
    qmin, qmax = (1 if narrow else 0), (1 << bits) - 1
    nmin, nmax, scale, _ = tk.nudge(mn, mx, qmin, qmax, op=op, variant=variant)
    edges = ulp_neighbours(np.array([mn, mx, nmin, nmax], F32), 1)
    spread = max(abs(mn), abs(mx)) * 1.2
    return np.concatenate([_ties(nmin, scale, qmax - qmin), edges,
                           normal(seed, 6, spread / 2, (mn + mx) / 2),
                           special_values(with_nan=variant == "eager")]).astype(F32)


@register_family("kernels.tensorflow", requires=("refquant.kernels.tensorflow",))
def generate() -> Iterator[CaseDraft]:
    for i, (rname, bits, narrow) in enumerate(CONFIGS):
        mn, mx = RANGES[rname]
        tag = f"{rname}.b{bits}{'n' if narrow else ''}"
        for variant in ("eager", "xla"):
            params = {"variant": variant, "num_bits": bits, "narrow_range": narrow,
                      "min": float(F32(mn)), "max": float(F32(mx))}
            for short, op, nudge_op, how in (
                    ("args", "fake_quant_with_min_max_args", "args", "multiplies by inv"),
                    ("vars", "fake_quant_with_min_max_vars", "vars", "divides by scale")):
                x = fq_inputs(mn, mx, bits, narrow, nudge_op, variant, 900 + i)
                yield CaseDraft(
                    id=f"tf.{short}.{variant}.{tag}", op=f"tensorflow.{op}", inputs={"x": x},
                    params=params, tags=("tensorflow", short, variant),
                    description=f"nudged range, floor(v + 0.5); eager {how}; "
                                f"xla: two fused multiply-adds")
    yield from _per_channel_cases()
    yield from _qdq_cases()


def _per_channel_cases() -> Iterator[CaseDraft]:
    chans = {"c1": [("m1_2", 8, False)],
             "c3": [("m0p1_1", 8, False), ("neg", 8, False), ("wide", 8, False)],
             "c3n4": [("m6_6", 4, True), ("pos", 4, True), ("tiny", 4, True)]}
    for name, cfg in chans.items():
        bits, narrow = cfg[0][1], cfg[0][2]
        for variant in ("eager", "xla"):
            op = "per_channel_1" if len(cfg) == 1 else "per_channel"
            cols = [fq_inputs(*RANGES[r], b, n, op, variant, 950 + j)
                    for j, (r, b, n) in enumerate(cfg)]
            n_rows = min(c.size for c in cols)
            x = np.stack([c[:n_rows] for c in cols], axis=-1).astype(F32)
            mins = np.array([RANGES[r][0] for r, _, _ in cfg], F32)
            maxs = np.array([RANGES[r][1] for r, _, _ in cfg], F32)
            yield CaseDraft(
                id=f"tf.pc.{variant}.{name}",
                op="tensorflow.fake_quant_with_min_max_vars_per_channel",
                inputs={"x": x, "min": mins, "max": maxs},
                params={"variant": variant, "num_bits": bits, "narrow_range": narrow},
                tags=("tensorflow", "per-channel", variant),
                description="per channel as _args; under XLA one channel takes another "
                            "rewrite of the range")
    # a channel with min == max == 0 gives zeros (eager only: XLA's range needs min < max)
    col = fq_inputs(-1.0, 2.0, 8, False, "per_channel", "eager", 960)
    x = np.stack([col[: col.size // 2 * 2]] * 2, axis=-1)
    yield CaseDraft(id="tf.pc.eager.zero_channel",
                    op="tensorflow.fake_quant_with_min_max_vars_per_channel",
                    inputs={"x": x.reshape(2, -1, 2), "min": np.array([-1.0, 0.0], F32),
                            "max": np.array([2.0, 0.0], F32)},
                    params={"variant": "eager", "num_bits": 8, "narrow_range": False},
                    tags=("tensorflow", "per-channel", "eager"),
                    description="a channel with min == max == 0 gives zeros")


def _qdq_cases() -> Iterator[CaseDraft]:
    base = {"signed_input": True, "num_bits": 8, "range_given": True,
            "round_mode": "HALF_TO_EVEN", "narrow_range": False}
    configs: list[tuple[str, dict[str, Any], float, float]] = [
        ("s8.given.even", {}, -1.0, 1.0),
        ("s8.given.up", {"round_mode": "HALF_UP"}, -1.0, 1.0),
        ("s8.given.narrow", {"narrow_range": True}, -0.75, 2.0),
        ("s4.given.min_side", {"num_bits": 4}, -3.0, 1.0),
        ("s8.given.negative", {}, -1.25, -0.25),  # the clamp's upper end falls below its lower
        ("u8.given.even", {"signed_input": False}, 0.0, 2.5),
        ("s8.data_range", {"range_given": False}, 0.0, 0.0),
        ("u4.data_range.up", {"signed_input": False, "range_given": False, "num_bits": 4,
                              "round_mode": "HALF_UP"}, 0.0, 0.0),
    ]
    for name, over, lo, hi in configs:
        p = {**base, **over, "input_min": lo, "input_max": hi}
        given, signed = p["range_given"], p["signed_input"]
        ref_hi = hi if given else 1.5
        bits = int(p["num_bits"])
        qmax = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        step = np.float64(F32(ref_hi)) / qmax
        ks = np.arange(-qmax - 2, qmax + 2) if signed else np.arange(-1, qmax + 2)
        if ks.size > 24:
            ks = np.unique(np.concatenate([ks[:5], ks[-5:], ks[:: ks.size // 12]]))
        x = ulp_neighbours(((ks + 0.5) * step).astype(F32), 1)
        x = np.concatenate([x, np.array([lo, hi, ref_hi], F32)])
        if not signed:
            x = np.abs(x)
        if given:  # the data range (min / max of x) of NaN is not emulated
            x = np.concatenate([x, special_values()])
        else:
            x = np.concatenate([x, np.array([0.0, -0.0, 1e-45, 1e-40], F32)])
            x = np.abs(x) if not signed else x
        yield CaseDraft(id=f"tf.qdq_v4.{name}", op="tensorflow.quantize_and_dequantize_v4",
                        inputs={"x": x.astype(F32)}, params=p,
                        tags=("tensorflow", "quantize_and_dequantize_v4"),
                        description="scale from the tighter side, round(fl(clamp(x) * scale)) "
                                    "* inverse, FTZ")
    x = np.array([3.4e38, 1.0], F32)
    yield CaseDraft(id="tf.qdq_v4.u2.subnormal_scale", op="tensorflow.quantize_and_dequantize_v4",
                    inputs={"x": x},
                    params={**base, "signed_input": False, "num_bits": 2, "range_given": False,
                            "input_min": 0.0, "input_max": 0.0},
                    tags=("tensorflow", "quantize_and_dequantize_v4", "subnormal"),
                    description="scale 3 / 3.4e38 is subnormal and flushed: zeros")
