"""Paddle's weight-only / LLM.int8 weight quantization (reference:
:mod:`refquant.kernels.paddle_weight_only`).

Operation ``paddle.weight_quantize``: input ``x`` (float16, or uint16 bfloat16 bit patterns
with param ``dtype`` ``"bfloat16"``), params ``algo``, ``arch``, ``group_size``, ``dtype`` ->
``out`` (int8, the layout of ``arch``) and ``scale`` (float16, uint16 bfloat16 bits, or
float32 for ``llm.int8``). Runs on ``reference`` and ``paddle`` (Paddle's CPU kernel).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...kernels import paddle_weight_only as wo
from ..registry import CaseDraft, register_family, register_op


@register_op("paddle.weight_quantize", "kernel", ("out", "scale"))
def _wq(inputs: dict[str, np.ndarray], p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """refquant.kernels.paddle_weight_only.weight_quantize."""
    return wo.weight_quantize(inputs["x"], p["algo"], p["arch"], p["group_size"],
                              bfloat16_bits=p["dtype"] == "bfloat16")


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, round half to even (finite input)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)


def _weights(seed: int, m: int, n: int, big: float, tiny: float) -> dict[str, np.ndarray]:
    """Named float32 weights: plain, ties, specials, zero and -0.0 columns, huge / tiny."""
    rng = np.random.default_rng(seed)
    plain = rng.standard_normal((m, n)).astype(np.float32)
    ties = (rng.integers(-254, 255, size=(m, n)) / 2).astype(np.float32)
    ties[0] = 127.0
    ties[:, n // 2:] = (rng.integers(-14, 15, size=(m, n - n // 2)) / 2)
    ties[0, n // 2:] = 7.0
    special = plain.copy()
    special[:, 0] = 0.0
    special[:, 1] = -0.0
    special[0, 2] = np.nan
    special[5, 3] = np.nan
    special[3, 4] = np.inf
    special[7, 5] = -np.inf
    special[:, 6] *= np.float32(big)
    special[:, 7] *= np.float32(tiny)
    special[0, 8] = -0.0
    special[1:, 8] = 0.0
    return {"plain": plain, "ties": ties, "special": special}


@register_family("kernels.paddle_weight_only",
                 requires=("refquant.kernels.paddle_weight_only",))
def generate() -> Iterator[CaseDraft]:
    # arch 75..90 share one layout (tests/test_kernels_paddle_weight_only.py runs them all)
    combos = [("weight_only_int8", 70), ("weight_only_int8", 80), ("weight_only_int4", 70),
              ("weight_only_int4", 86), ("llm.int8", 80), ("llm.int8", 100)]
    for dtype in ("float16", "bfloat16"):
        big, tiny = (60000.0, 6e-8) if dtype == "float16" else (1e38, 1e-38)
        for name, w in _weights(300 if dtype == "float16" else 301, 64, 32, big, tiny).items():
            with np.errstate(over="ignore", invalid="ignore"):
                x = w.astype(np.float16) if dtype == "float16" else _bf16_bits(w)
            if dtype == "bfloat16":
                x[np.isnan(w)] = np.uint16(0x7FC0)
                x[np.isinf(w)] = np.where(w[np.isinf(w)] > 0, 0x7F80, 0xFF80).astype(np.uint16)
                x[(w == 0) & np.signbit(w)] = np.uint16(0x8000)
            for algo, arch in combos:
                for gs in (-1, 64, 128):
                    yield CaseDraft(
                        id=f"wq.{dtype}.{name}.{algo}.sm{arch}.g{gs}",
                        op="paddle.weight_quantize", inputs={"x": x},
                        params={"algo": algo, "arch": arch, "group_size": gs, "dtype": dtype},
                        tags=("paddle", "weight_only", dtype, name),
                        description="paddle.nn.quant.weight_quantize on CPU: scales, codes "
                                    "and the arch's layout")
    # a short last group (m = 192, group_size 128) and an odd m for arch 70 / llm.int8
    rng = np.random.default_rng(310)
    x = rng.standard_normal((192, 48)).astype(np.float16)
    yield CaseDraft(id="wq.float16.short_group.int4.sm80", op="paddle.weight_quantize",
                    inputs={"x": x}, params={"algo": "weight_only_int4", "arch": 80,
                                             "group_size": 128, "dtype": "float16"},
                    tags=("paddle", "weight_only", "short_group"))
    x = rng.standard_normal((37, 16)).astype(np.float16)
    for algo, arch in (("weight_only_int4", 70), ("llm.int8", 90)):
        yield CaseDraft(id=f"wq.float16.m37.{algo}.sm{arch}", op="paddle.weight_quantize",
                        inputs={"x": x}, params={"algo": algo, "arch": arch, "group_size": 64,
                                                 "dtype": "float16"},
                        tags=("paddle", "weight_only", "odd_m"))
