"""What ONNX Runtime's calibrators share: input handling, the family base class, and ORT's
``compute_scale_zp`` in NumPy.

Upstream: microsoft/onnxruntime ``onnxruntime/python/tools/quantization/quant_utils.py``
(``compute_scale_zp``, ``get_qmin_qmax_for_qType``), as onnxruntime 1.32 ships it.

``compute_scale_zp(rmin, rmax, qmin, qmax, symmetric, min_real_range)``, with ``rmin, rmax``
float32:

* ``rmin = min(rmin, 0)``, ``rmax = max(rmax, 0)``; with ``min_real_range``:
  ``rmax = max(rmax, rmin + fl32(min_real_range))``;
* symmetric: ``absmax = max(|rmin|, |rmax|)``, ``rmin, rmax = -absmax, absmax``;
* ``scale = (f64(rmax) - f64(rmin)) / (qmax - qmin)`` in float64;
* ``scale < FLT_MIN`` (float32's smallest normal): ``scale = 1``, ``zero_point = 0``;
* otherwise ``zero_point = round_half_even((qmin + qmax) / 2)`` when symmetric, else
  ``round_half_even(qmin - rmin / scale)`` (float64), and the scale is stored as float32.

The integer ranges are ORT's: ``uint8 0..255``, ``int8 -128..127`` (``-127..127`` when
symmetric), ``uint16 0..65535``, ``int16 -32768..32767`` (``-32767..32767`` symmetric);
``reduce_range``: ``uint8 0..127``, ``int8 -64..64``, ``uint16 0..32767``,
``int16 -16384..16384``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from refquant.profiles import CANONICAL, ProfileVariants
from refquant.qparams import QParams

__all__ = ["OrtAssertionError", "OrtCalibrater", "QTYPES", "qrange", "compute_scale_zp",
           "ort_scale_zp"]

#: the activation types ORT's ``compute_scale_zp`` serves
QTYPES = ("uint8", "int8", "uint16", "int16")
_RANGE = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535),
          "int16": (-32768, 32767)}
_SYMMETRIC = {"int8": (-127, 127), "int16": (-32767, 32767)}
_REDUCED = {"uint8": (0, 127), "int8": (-64, 64), "uint16": (0, 32767),
            "int16": (-16384, 16384)}


class OrtAssertionError(AssertionError, ValueError):
    """Raised where ORT's calibrator fails an ``assert`` (also a ``ValueError``)."""


def qrange(qtype: str = "uint8", *, symmetric: bool = False,
           reduce_range: bool = False) -> tuple[int, int]:
    """``(qmin, qmax)`` as ORT's ``get_qmin_qmax_for_qType``."""
    if not isinstance(qtype, str) or qtype not in QTYPES:
        raise ValueError(f"qtype must be one of {QTYPES}, got {qtype!r}")
    if reduce_range:
        return _REDUCED[qtype]
    if symmetric and qtype in _SYMMETRIC:
        return _SYMMETRIC[qtype]
    return _RANGE[qtype]


def ort_scale_zp(rmin: Any, rmax: Any, qmin: int, qmax: int, symmetric: bool = False,
                 min_real_range: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ORT's ``compute_scale_zp`` on float32 ``rmin``/``rmax``: ``(zero_point, scale)``
    (module docstring), zero point as int64, scale float32, shapes of ``rmin``."""
    lo = np.asarray(rmin, np.float32)
    hi = np.asarray(rmax, np.float32)
    if lo.shape != hi.shape:
        raise ValueError(f"rmin and rmax must have one shape, got {lo.shape} and {hi.shape}")
    if qmin > 0 or qmax < 0 or qmin > qmax:
        raise ValueError(f"qmin and qmax must satisfy qmin <= 0 <= qmax, got {qmin}, {qmax}")
    with np.errstate(all="ignore"):
        lo = np.minimum(lo, np.float32(0))
        hi = np.maximum(hi, np.float32(0))
        if min_real_range is not None:
            hi = np.maximum(hi, lo + np.float32(min_real_range))
        if symmetric:
            absmax = np.maximum(np.abs(lo), np.abs(hi))
            lo, hi = -absmax, absmax
        scale = (hi.astype(np.float64) - lo.astype(np.float64)) / float(qmax - qmin)
        tiny = float(np.finfo(np.float32).tiny)
        if symmetric:
            mid = np.round((qmin + qmax) / 2.0)
            zp = np.broadcast_to(np.float64(mid), scale.shape)
        else:
            zp = np.round(qmin - lo.astype(np.float64) / scale)
        small = ~(scale >= tiny)  # NaN scales take ORT's "else" branch below
        small &= ~np.isnan(scale)
        zp = np.where(small, 0.0, zp)
        out_scale = np.where(small, np.float32(1), scale.astype(np.float32))
    if np.isnan(zp).any() or np.isinf(zp).any():
        raise ValueError(f"range [{rmin!r}, {rmax!r}] gives no zero point (NaN/Inf); "
                         "ORT would cast it to an undefined integer")
    return zp.astype(np.int64), out_scale.astype(np.float32)


def compute_scale_zp(low: Any, high: Any, qtype: str = "uint8", *, symmetric: bool = False,
                     reduce_range: bool = False,
                     min_real_range: float | None = None) -> QParams:
    """ORT's ``compute_scale_zp`` for ``qtype`` as :class:`QParams` (``convention="step"``,
    scale float32 of ``low``'s shape; module docstring). ``symmetric`` also selects ORT's
    symmetric integer range (``int8``: ``-127..127``) as ORT's quantizer does."""
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric must be a bool, got {symmetric!r}")
    if not isinstance(reduce_range, (bool, np.bool_)):
        raise TypeError(f"reduce_range must be a bool, got {reduce_range!r}")
    if min_real_range is not None and (isinstance(min_real_range, bool) or not isinstance(
            min_real_range, (int, float, np.floating, np.integer))
            or not math.isfinite(min_real_range) or min_real_range < 0):
        raise ValueError(f"min_real_range must be None or a finite number >= 0, got "
                         f"{min_real_range!r}")
    qmin, qmax = qrange(qtype, symmetric=bool(symmetric), reduce_range=bool(reduce_range))
    zp, scale = ort_scale_zp(low, high, qmin, qmax, bool(symmetric), min_real_range)
    bits = 16 if qtype.endswith("16") else 8
    return QParams(scale, zp, qmin, qmax, bits, convention="step", allow_nonfinite=True)


def as_batch(x: Any, name: str = "x") -> np.ndarray:
    """One batch as the float32 array a float32 model input receives (any shape; a fresh
    array: the caller's is never modified)."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)
                                   or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    return np.array(arr, dtype=np.float32)


def real_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if int(value) < low:
        raise ValueError(f"{name} must be >= {low}, got {int(value)}")
    return int(value)


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


class OrtCalibrater(ProfileVariants):
    """Shared life cycle of the calibrators: ``observe(x)`` (one ``collect_data`` call whose
    reader yields ``x``), ``collect(batches)`` (one call with several batches),
    ``compute_data()`` -> ``(low, high)`` float32, ``compute(qtype)`` -> :class:`QParams`.

    ``profile="onnxruntime"`` (the default) is ORT bug for bug; ``profile="canonical"`` the
    same decision rule on exact, order-free statistics, with :meth:`merge`.
    """

    supported_profiles: ClassVar[tuple[str, ...] | None] = ("onnxruntime", "canonical")
    #: whether ``compute`` symmetrises the range (ORT: the calibrator's ``symmetric``)
    symmetric: bool = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("profile", "onnxruntime")
        return super().__new__(cls, *args, **kwargs)

    def _check_profile(self, ignore_nonfinite: Any) -> None:
        self.ignore_nonfinite = flag(ignore_nonfinite, "ignore_nonfinite")
        if self.ignore_nonfinite and self.rules is not CANONICAL:
            raise ValueError("ignore_nonfinite=True is a canonical option; profile="
                             f"{self.profile!r} does with NaN/Inf what ONNX Runtime does")

    def observe(self, x: Any) -> None:
        """One ``collect_data`` call whose data reader yields the single batch ``x``."""
        self.collect([x])

    def collect(self, batches: Any) -> None:  # pragma: no cover - every variant defines it
        raise NotImplementedError

    def compute_data(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def compute(self, qtype: str = "uint8", *, symmetric: bool | None = None,
                reduce_range: bool = False, min_real_range: float | None = None) -> QParams:
        """``compute_data()``'s range through ORT's ``compute_scale_zp``. ``symmetric``
        defaults to the calibrator's; ORT's quantizer passes its own ``ActivationSymmetric``
        / ``WeightSymmetric`` option there, so set it to match a ``quantize_static`` run."""
        low, high = self.compute_data()
        sym = self.symmetric if symmetric is None else flag(symmetric, "symmetric")
        return compute_scale_zp(low, high, qtype, symmetric=sym,
                                reduce_range=reduce_range, min_real_range=min_real_range)

    def merge(self, other: Any) -> None:
        """Fold another canonical calibrator of the same configuration into this one."""
        if not self.rules.exact_merge:
            raise NotImplementedError(
                f"profile={self.profile!r} reproduces ONNX Runtime, whose calibrators cannot "
                "merge (the result depends on batch order); use profile='canonical'")
        if type(other) is not type(self) or other.config() != self.config():
            raise ValueError(f"other must be a {type(self).__name__} with config "
                             f"{self.config()}, got {type(other).__name__}")
        self._merge(other)

    def _merge(self, other: Any) -> None:  # pragma: no cover - canonical variants define it
        raise NotImplementedError

    def config(self) -> dict[str, Any]:  # pragma: no cover - every family defines it
        raise NotImplementedError


def nonfinite_mask(arr: np.ndarray, ignore: bool, who: str) -> np.ndarray:
    """``arr`` without NaN/Inf when ``ignore``; ``ValueError`` if it holds any otherwise."""
    fin = np.isfinite(arr)
    if fin.all():
        return arr
    if ignore:
        return arr[fin]
    raise ValueError(f"x holds {int((~fin).sum())} NaN/Inf value(s); {who} (profile="
                     "'canonical') refuses them: pass ignore_nonfinite=True to drop them")

