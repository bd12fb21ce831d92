"""Shared pieces of the quanters: base class, input checks and float32 functions.

The Paddle 3.3.1 CPU primitives the originals call live in :mod:`refquant.kernels`, one
implementation each, and are re-exported here under the quanters' names:

* reductions (``paddle.mean`` / ``paddle.sum`` full, per row / column, the sequential
  broadcast-gradient sum): :mod:`refquant.kernels._paddle_reduce`;
* ``FindAbsMaxFunctor``, the guarded reciprocal, FTZ/DAZ flushing, the ``round_type=1``
  quantize / dequantize and the moving-average update: :mod:`refquant.kernels.paddle`.

``paddle.std`` (:func:`paddle_std`) combines the reductions with Eigen's vectorised ``pow``
(:mod:`._eigen_pow`).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from .._validation import (
    _describe,
    as_float_array,
    as_real_array,
    check_float32_range,
    check_name,
    check_real,
    check_scale_values,
    to_float_dtype,
)
from ..kernels._paddle_divide import paddle_divide
from ..kernels._paddle_reduce import (
    eigen_mean,
    eigen_mean_cols,
    eigen_mean_rows,
    eigen_sum,
    eigen_sum_cols,
    eigen_sum_rows,
    sequential_sum,
)
from ..kernels.paddle import _moving_average_update, abs_max, dequantize, quantize_rt1
from ..kernels.paddle import flush_denormals as flush_denormals
from ..profiles import CANONICAL, PADDLESLIM, Profile, ProfileRules, ProfileVariants, get_profile
from ._eigen_pow import eigen_square

#: the profiles of the PaddleSlim observer and quanter families (refquant.profiles.PROFILES
#: lists every registered profile, other frameworks' included)
PROFILES: tuple[str, ...] = (CANONICAL.name, PADDLESLIM.name)

__all__ = [
    "Profile",
    "PROFILES",
    "QuanterBase",
    "eigen_mean",
    "eigen_sum",
    "eigen_sum_rows",
    "eigen_mean_rows",
    "eigen_sum_cols",
    "eigen_mean_cols",
    "paddle_std",
    "flush_denormals",
    "sequential_sum",
    "paddle_abs_max",
    "paddle_qdq_round1",
    "moving_average_update",
]

F32 = np.float32


def paddle_std(x2d: np.ndarray, axis: int | None, isa: str = "avx2"
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(paddle.mean(x, axis), paddle.std(x, axis))`` of a float32 tensor on CPU.

    ``paddle.std`` on a CPU build is ``sqrt(sum(pow(x - mean(x, keepdim), 2)) / (n - 1))``:
    the same mean, Eigen's ``pow`` (:func:`._eigen_pow.eigen_square`, not ``fl(d*d)``), the
    tree (full) or sequential (per-row / per-column) sum, one float32 division by
    ``fl32(n) - 1`` and a float32 ``sqrt``. ``axis`` is ``None`` (all elements) or 0/1 of a
    2-D array.

    The full reduction's division is of two 0-D tensors, which Paddle hands to MKL's
    ``vsDiv``: its result depends on the CPU variant ``isa`` (``"avx2"``, the default: the
    IEEE quotient; ``"avx512"``; ``"host"``; :func:`refquant.kernels._paddle_divide.vml_divide`).
    The per-row / per-column division broadcasts and is the IEEE quotient on every CPU.

    Exact except in one case: when the result has 8 or more elements, Paddle's CPU ``sqrt``
    computes the leading ``8 * floor(n / 8)`` of them with Eigen's fast-math packet square
    root (the hardware ``rsqrtps`` estimate refined by one Newton step), which is not
    correctly rounded (~36% of inputs differ, by up to a few ulp) and depends on the CPU
    vendor's ``rsqrtps`` table, so it cannot be reproduced portably. Here every ``sqrt`` is
    the correctly rounded one (what Paddle computes for the scalar tail and for 0-D results).
    """
    x = np.asarray(x2d, dtype=F32)
    if axis is None:
        m0 = eigen_mean(x)
        t0 = eigen_sum(eigen_square((x - m0).astype(F32)))
        var = paddle_divide(np.asarray(t0, F32), np.asarray(F32(x.size) - F32(1.0)), isa)
        return np.asarray(m0, F32), np.sqrt(var).astype(F32)
    mean: np.ndarray
    total: np.ndarray
    if axis == 1:
        mean = eigen_mean_rows(x)
        sq = eigen_square((x - mean[:, None]).astype(F32))
        total = eigen_sum_rows(sq)
        n = F32(x.shape[1])
    else:
        mean = eigen_mean_cols(x)
        sq = eigen_square((x - mean[None, :]).astype(F32))
        total = eigen_sum_cols(sq)
        n = F32(x.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt((total / F32(n - F32(1.0))).astype(F32)).astype(F32)
    return mean, std


# -- Paddle fake-quant kernels (CPU, round_type=1) ---------------------------------------
def paddle_abs_max(x: np.ndarray) -> np.float32:
    """Paddle CPU ``FindAbsMaxFunctor`` (:func:`refquant.kernels.paddle.abs_max`) of ``x``
    as float32: a NaN at flat index 0 makes the result NaN, other NaNs are skipped."""
    return abs_max(x)


def paddle_qdq_round1(x: np.ndarray, scale: np.ndarray, bin_cnt: int,
                      flush: bool = False) -> np.ndarray:
    """Paddle's quantize-dequantize with ``round_type=1`` (``ClipAndFakeQuantDequantFunctor``).

    Per element, in float32 (``scale`` broadcasts against ``x``)::

        xc = x < -S ? -S : (x > S ? S : x)        # clip first
        q  = round_half_away(fl(fl(bin_cnt * inv(S)) * xc))
        y  = fl(fl(q * S) / bin_cnt)

    :func:`refquant.kernels.paddle.quantize_rt1` then
    :func:`refquant.kernels.paddle.dequantize`. ``flush=True`` runs it in the FTZ/DAZ mode
    of Paddle's legacy dygraph tracer (``paddle._legacy_C_ops``): every operand and every
    arithmetic result is flushed (:func:`flush_denormals`).
    """
    xf = np.asarray(x, dtype=F32)
    s = np.asarray(scale, dtype=F32)
    q = quantize_rt1(xf, s, bin_cnt, flush)
    return dequantize(q, s, F32(bin_cnt), flush)


def moving_average_update(
    state: np.float32, accum: np.float32, cur: np.float32, rate: np.float32
) -> tuple[np.float32, np.float32, np.float32]:
    """Paddle's moving-average abs-max update (``FindMovingAverageAbsMaxFunctor``)::

        state = fl(fl(rate * state) + 1);  accum = fl(fl(rate * accum) + cur);
        scale = fl(accum / state)

    (:func:`refquant.kernels.paddle._moving_average_update`).
    """
    return _moving_average_update(state, accum, cur, rate)


# -- rounding ------------------------------------------------------------------------------
def lsq_round(v: np.ndarray) -> np.ndarray:
    """PaddleSlim ``lsq_func.round``: ``sign(v) * floor(fl(|v| + 0.5))`` in float32.

    Half away from zero at exact halves, but ``fl(|v| + 0.5)`` itself rounds, so e.g.
    ``0.49999997`` gives 1 (true round-half-away gives 0). ``sign(-0.0)`` is ``+0``, so
    ``-0.0 -> +0.0`` while ``-0.3 -> -0.0``.
    """
    v = np.asarray(v, dtype=F32)
    sign = np.sign(v).astype(F32) + F32(0.0)
    return (sign * np.floor((np.abs(v) + F32(0.5)).astype(F32))).astype(F32)


# -- base class ----------------------------------------------------------------------------
class QuanterBase(ProfileVariants):
    """Common constructor checks and the ``state`` / ``load_state`` protocol.

    Every quanter family is a :class:`refquant.profiles.ProfileVariants` family: ``profile=``
    picks the rules (:class:`refquant.profiles.ProfileRules`; ``q.rules``, ``q.profile`` is
    the name) and, where a whole algorithm differs (PACT, LSQ+), the family's variant
    subclass for that profile, once, at construction. A family that differs only by
    parameters (the abs-max quanters) reads ``self.rules``.

    Subclasses keep their running state in ``self._state`` (a dict of NumPy arrays and Python
    scalars) and implement ``forward(x)``, ``backward(x, grad_y)``, ``qparams()`` and
    ``_checked_state(state)`` (the validated new state for :meth:`load_state`).

    Input rules shared by every quanter: constructor arguments are type-checked strictly
    (integers are not ``bool``, flags are ``bool``, numbers are real and finite, strings come
    from a known set); ``x`` and ``grad_y`` are floating arrays that are never modified, and a
    finite value beyond float32's range (float64 ``1e39``) raises ``ValueError`` instead of
    becoming ``inf``; ``load_state`` refuses wrongly shaped or typed entries and NaN /
    negative scales. ``copy.copy`` gives an independent quanter (as ``copy.deepcopy``).
    """

    supported_profiles = PROFILES

    def __init__(self, profile: Profile | ProfileRules = "canonical") -> None:
        if get_profile(profile) is not self.rules:  # a variant class built directly
            raise ValueError(f"profile={profile!r} does not match this {self.public_name}'s "
                             f"profile {self.profile!r}; construct {self.public_name}"
                             f"(profile=...)")
        self.training = True
        self._state: dict[str, Any] = {}

    # -- mode ------------------------------------------------------------------------
    def train(self) -> None:
        """Training mode (the default): ``forward`` updates the running state."""
        self.training = True

    def eval(self) -> None:
        """Evaluation mode: ``forward`` uses the state without updating it."""
        self.training = False

    # -- state -----------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        """A copy of the running state (NumPy arrays and Python scalars / ``None``)."""
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self._state.items()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the running state with ``state`` (as returned by :attr:`state`).

        Every entry is checked (``TypeError``/``ValueError`` naming ``state[key]``): the keys
        must be this quanter's, arrays real with the shape the quanter uses, scales finite
        and ``>= 0`` (``> 0`` where a zero step cannot occur). On an error nothing changes;
        the arrays are copied, so the caller's are never shared or modified.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        missing = set(self._state) - set(state)
        extra = set(state) - set(self._state)
        if missing or extra:
            raise ValueError(
                f"state keys do not match: missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        self._state = self._checked_state(state)

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The new state from ``state`` (keys already checked), every entry validated."""
        raise NotImplementedError

    # -- copies ----------------------------------------------------------------------
    def __copy__(self) -> QuanterBase:
        """An independent quanter: the running state is mutable, so it is copied."""
        return copy.deepcopy(self)

    # -- interface -------------------------------------------------------------------
    def forward(self, x: Any) -> np.ndarray:
        """Fake-quantize ``x``, updating the running state as the original does."""
        raise NotImplementedError

    def backward(self, x: Any, grad_y: Any) -> dict[str, np.ndarray]:
        """Gradients for upstream gradient ``grad_y`` at the current state."""
        raise NotImplementedError

    def scales(self) -> np.ndarray:
        """The original's ``scales()``."""
        raise NotImplementedError

    def qparams(self) -> Any:
        """The quantization parameters (:class:`refquant.QParams`)."""
        raise NotImplementedError

    # -- checks ----------------------------------------------------------------------
    def _check_x(self, x: Any, name: str = "x", allow_nonfinite: bool = False,
                 min_ndim: int = 0) -> np.ndarray:
        """``x`` as a float32 array (a fresh array; the caller's is never modified). A finite
        value beyond float32's range raises ``ValueError`` (it would become ``inf``)."""
        arr = as_float_array(x, name, allow_nonfinite=allow_nonfinite, min_ndim=min_ndim)
        check_float32_range(arr, name)
        return np.array(arr, dtype=F32)

    def _check_grad(self, x: np.ndarray, grad_y: Any) -> np.ndarray:
        g = self._check_x(grad_y, "grad_y")
        if g.shape != x.shape:
            raise ValueError(f"grad_y must have the shape of x {x.shape}, got shape {g.shape}")
        return g

    def __repr__(self) -> str:
        return f"{self.public_name}(profile={self.profile!r})"


def state_array(value: Any, key: str, shape: tuple[int, ...] | None, *,
                sign: str = "nonnegative", allow_nonfinite: bool = False) -> np.ndarray:
    """A state entry as a fresh float32 array, checked (errors name ``state[key]``).

    ``value``: real numbers (no bool / complex / str / None), finite unless
    ``allow_nonfinite`` (NaN and +inf then pass), no finite value beyond float32's range;
    ``shape``: the exact shape required (``None``: any). ``sign``: ``"positive"`` (> 0),
    ``"nonnegative"`` (>= 0) or ``"any"``.
    """
    name = f"state[{key!r}]"
    arr = to_float_dtype(as_real_array(value, name), F32, name)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got shape {arr.shape}")
    if sign == "any":
        if not allow_nonfinite and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite, got {arr.tolist()!r}")
    else:
        check_scale_values(arr, name, allow_zero=sign == "nonnegative",
                           allow_nonfinite=allow_nonfinite)
    return np.array(arr, dtype=F32)


def check_dtype_arg(dtype: Any) -> str:
    """The quanters' ``dtype`` argument: the string ``'float32'`` (Paddle's default)."""
    return check_name(dtype, "dtype", ("float32",))


def check_name_arg(name: Any) -> str | None:
    """The quanters' ``name`` argument: ``None`` or a string."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {_describe(name)}")
    return name


def check_real_arg(value: Any, name: str, low: float | None = None, high: float | None = None,
                   *, low_open: bool = False, high_open: bool = False) -> float:
    """A finite real constructor argument (not bool) within the given bounds."""
    v = float(check_real(value, name))
    if (low is not None and (v < low or (low_open and v == low))) or (
            high is not None and (v > high or (high_open and v == high))):
        lo = "" if low is None else ("(" if low_open else "[") + repr(low)
        hi = "" if high is None else repr(high) + (")" if high_open else "]")
        raise ValueError(f"{name} must be in {lo or '(-inf'}, {hi or 'inf)'}, got {value!r}")
    return v

def f32_of_double(value: float) -> np.float32:
    """Round a Python float (double) to float32 once, as ``paddle.to_tensor(value)`` does."""
    return F32(value)


def inv_sqrt_f32(n: int, qp: int) -> np.float32:
    """``fl32(1.0 / math.sqrt(n * qp))`` evaluated in double first (PaddleSlim's ``g``)."""
    return F32(1.0 / math.sqrt(n * qp))
