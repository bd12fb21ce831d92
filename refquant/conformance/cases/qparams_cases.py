"""QParams conversions: scale / zero point from a range, and threshold -> ONNX step.

Operations (reference: :mod:`refquant.qparams`):

* ``qparams.symmetric``  inputs ``min_val``, ``max_val`` (float64); params ``bits``,
  ``signed``, ``narrow`` -> ``scale`` (float32 threshold), ``zero_point`` (int64),
  ``qrange`` (int64 ``[qmin, qmax]``).
* ``qparams.asymmetric`` same inputs and params -> ``scale`` (float32 step),
  ``zero_point``, ``qrange``.
* ``qparams.to_onnx``    inputs ``scale`` (float32), ``zero_point`` (int64); params ``bits``,
  ``signed``, ``convention`` -> ``y_scale`` (float32: ``fl32(S / qmax)`` for thresholds),
  ``y_zero_point`` (int8 / uint8, or int16 / uint16 for more than 8 bits).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...qparams import QParams, asymmetric_qparams, integer_range, symmetric_qparams
from ..registry import CaseDraft, register_family, register_op


def _qrange(qp: QParams) -> np.ndarray:
    return np.array([qp.qmin, qp.qmax], dtype=np.int64)


@register_op("qparams.symmetric", "qparams", ("scale", "zero_point", "qrange"))
def _symmetric(inputs: dict[str, np.ndarray], params: dict[str, Any]) -> tuple:
    """refquant.qparams.symmetric_qparams."""
    qp = symmetric_qparams(inputs["min_val"], inputs["max_val"], bits=params["bits"],
                           signed=params["signed"], narrow=params["narrow"])
    return qp.scale, qp.zero_point, _qrange(qp)


@register_op("qparams.asymmetric", "qparams", ("scale", "zero_point", "qrange"))
def _asymmetric(inputs: dict[str, np.ndarray], params: dict[str, Any]) -> tuple:
    """refquant.qparams.asymmetric_qparams."""
    qp = asymmetric_qparams(inputs["min_val"], inputs["max_val"], bits=params["bits"],
                            signed=params["signed"], narrow=params["narrow"])
    return qp.scale, qp.zero_point, _qrange(qp)


def _zp_dtype(bits: int, signed: bool) -> type:
    if bits <= 8:
        return np.int8 if signed else np.uint8
    return np.int16 if signed else np.uint16


@register_op("qparams.to_onnx", "qparams", ("y_scale", "y_zero_point"))
def _to_onnx(inputs: dict[str, np.ndarray], params: dict[str, Any]) -> tuple:
    """refquant.qparams.QParams.to_onnx."""
    bits, signed = params["bits"], params["signed"]
    qmin, qmax = integer_range(bits, signed)
    qp = QParams(inputs["scale"], inputs["zero_point"], qmin, qmax, bits,
                 convention=params["convention"])
    return qp.to_onnx(_zp_dtype(bits, signed))


_RANGES = [
    ("unit", -1.0, 1.0), ("skew_pos", -0.5, 3.0), ("skew_neg", -3.0, 0.5),
    ("pos_only", 0.5, 3.0), ("neg_only", -3.0, -0.5), ("zero", 0.0, 0.0),
    ("tiny", -1e-30, 2e-30), ("huge", -3e37, 1e38), ("odd", -0.7, 0.7000001),
    ("third", -1.0 / 3.0, 2.0 / 3.0),
]


@register_family("qparams", requires=("refquant.qparams",))
def generate() -> Iterator[CaseDraft]:
    for bits in (4, 8, 16):
        for name, lo, hi in _RANGES:
            for signed in (True, False):
                sg = "s" if signed else "u"
                mn, mx = np.array(lo, np.float64), np.array(hi, np.float64)
                yield CaseDraft(
                    id=f"qparams.symmetric.{name}.b{bits}{sg}", op="qparams.symmetric",
                    inputs={"min_val": mn, "max_val": mx},
                    params={"bits": bits, "signed": signed, "narrow": False},
                    tags=("qparams",), description=f"symmetric threshold of [{lo}, {hi}]")
                if name == "huge" and bits == 16 and signed:
                    continue
                yield CaseDraft(
                    id=f"qparams.asymmetric.{name}.b{bits}{sg}", op="qparams.asymmetric",
                    inputs={"min_val": mn, "max_val": mx},
                    params={"bits": bits, "signed": signed, "narrow": False},
                    tags=("qparams",), description=f"affine step / zero point of [{lo}, {hi}]")
    # per-channel ranges
    lo_c = np.array([-1.0, -0.25, 0.0, -5.0, -1e-3], np.float64)
    hi_c = np.array([1.0, 2.0, 0.0, -1.0, 7e-3], np.float64)
    for bits in (4, 8):
        yield CaseDraft(id=f"qparams.symmetric.per_channel.b{bits}s", op="qparams.symmetric",
                        inputs={"min_val": lo_c, "max_val": hi_c},
                        params={"bits": bits, "signed": True, "narrow": False},
                        tags=("qparams", "per-channel"))
        yield CaseDraft(id=f"qparams.asymmetric.per_channel.b{bits}u", op="qparams.asymmetric",
                        inputs={"min_val": lo_c, "max_val": hi_c},
                        params={"bits": bits, "signed": False, "narrow": False},
                        tags=("qparams", "per-channel"))
    yield CaseDraft(id="qparams.symmetric.narrow.b8s", op="qparams.symmetric",
                    inputs={"min_val": np.array(-2.0), "max_val": np.array(1.5)},
                    params={"bits": 8, "signed": True, "narrow": True}, tags=("qparams",))
    # threshold -> ONNX step: near-tie thresholds where fl32(S/qmax) != fl32(fl64(S)/qmax)
    thresholds = np.array([0.7, 1.0, 3.0, 127.0, 1e-30, 6.1e-5, 0.1, 2.0 ** -126, 3.4e38,
                           0.99999994], dtype=np.float32)
    for bits in (4, 8, 16):
        yield CaseDraft(id=f"qparams.to_onnx.threshold.b{bits}s", op="qparams.to_onnx",
                        inputs={"scale": thresholds,
                                "zero_point": np.zeros(thresholds.shape, np.int64)},
                        params={"bits": bits, "signed": True, "convention": "threshold"},
                        tags=("qparams", "onnx"),
                        description="y_scale = fl32(S / qmax) per element")
    yield CaseDraft(id="qparams.to_onnx.step.b8u", op="qparams.to_onnx",
                    inputs={"scale": np.array([0.015625, 0.011764706], np.float32),
                            "zero_point": np.array([64, 0], np.int64)},
                    params={"bits": 8, "signed": False, "convention": "step"},
                    tags=("qparams", "onnx"))
