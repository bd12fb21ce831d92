"""Shared pieces of the quanters: base class, input checks, float32 helpers and exact
emulations of the Paddle 3.3.1 CPU reductions and fake-quant kernels the originals call.

Reductions
----------
Paddle's CPU ``mean``/``sum`` kernels evaluate Eigen reductions on ``Eigen::DefaultDevice``
(x86-64 wheels built with AVX, so one packet is 8 float32 lanes). Two shapes of summation
occur and both are reproduced here bit for bit (measured on Paddle 3.3.1 CPU, sizes 5..20000):

* ``mean`` (a *stateful* reducer, no tree): one 8-lane packet accumulator over the leading
  ``8*floor(n/8)`` elements in order, a scalar accumulator over the tail, then
  ``tail + predux(packet)`` and one division by ``n``. ``predux`` of an 8-lane packet adds
  the halves ``p[i] + p[i+4]``, then ``(q0 + q2) + (q1 + q3)``.
* ``sum`` (Eigen's tree reducer): ranges longer than ``8 * 1024`` elements are split in two
  (the split rounded up to a packet boundary) and the halves' sums added; a leaf uses two
  packet accumulators over alternating packets, a last odd packet into the first, the two
  packets added, a scalar tail, and ``tail + predux(packets)``.

Partial reductions (``paddle.sum(x, axis=1)`` or ``axis=0`` of a 2-D tensor, ``paddle.mean``
likewise) are plain sequential float32 accumulation per output element (measured).

``paddle.pow(x, 2)`` (inside ``paddle.std``) is not ``fl(x*x)``: it runs Eigen's vectorised
``generic_pow``, emulated in :mod:`._eigen_pow`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from .._validation import as_float_array, check_choice
from ..kernels._rounding import round_half_away
from ._eigen_pow import eigen_square

__all__ = [
    "Profile",
    "PROFILES",
    "QuanterBase",
    "eigen_mean",
    "eigen_sum",
    "eigen_sum_rows",
    "eigen_mean_rows",
    "sequential_sum",
    "paddle_abs_max",
    "paddle_qdq_round1",
    "moving_average_update",
]

Profile = Literal["canonical", "paddleslim"]
PROFILES: tuple[str, ...] = ("canonical", "paddleslim")

F32 = np.float32
_LANES = 8
_LEAF = 1024


# -- Eigen reductions ----------------------------------------------------------------------
def _predux(packet: np.ndarray) -> np.float32:
    """Horizontal add of an 8-lane packet: halves first, then ``(q0+q2)+(q1+q3)``."""
    q = (packet[:4] + packet[4:]).astype(F32)
    t = (q[:2] + q[2:]).astype(F32)
    return F32(t[0] + t[1])


def _packets(v: np.ndarray, count: int) -> np.ndarray:
    """Row-by-row float32 accumulation of ``count`` consecutive 8-lane packets of ``v``."""
    if count == 0:
        return np.zeros(_LANES, F32)
    # np.add.reduce over axis 0 of a (count, 8) array adds whole rows in order.
    return np.add.reduce(v[: count * _LANES].reshape(count, _LANES), axis=0, dtype=F32)


def _tail(v: np.ndarray, start: int) -> np.float32:
    """Scalar accumulation ``((0 + v[start]) + ...)`` (``add.accumulate`` is sequential)."""
    if start >= v.size:
        return F32(0.0)
    return F32(np.add.accumulate(v[start:], dtype=F32)[-1] + F32(0.0))


def sequential_sum(x: np.ndarray) -> np.float32:
    """``((0 + x0) + x1) + ...`` in float32: Paddle's CPU reduction of a broadcast gradient
    (``subtract_grad`` onto a ``[1]`` operand), measured bit-exact."""
    return _tail(np.ascontiguousarray(x, dtype=F32).ravel(), 0)


def _mean_1d(v: np.ndarray) -> np.float32:
    n = v.size
    full = n // _LANES
    packet = _packets(v, full)
    total = F32(_tail(v, full * _LANES) + _predux(packet))
    return F32(total / F32(n))


def _tree_sum_1d(v: np.ndarray) -> np.float32:
    n = v.size
    if n > _LANES * _LEAF:
        split = _LANES * -(-((n + 1) // 2) // _LANES)
        left = _tree_sum_1d(v[:split])
        acc = F32(F32(0.0) + left)
        if split < n:
            acc = F32(acc + _tree_sum_1d(v[split:]))
        return acc
    full = n // _LANES
    pairs = full // 2
    if pairs:
        blocks = v[: pairs * 2 * _LANES].reshape(pairs, 2, _LANES)
        p1 = np.add.reduce(blocks[:, 0, :], axis=0, dtype=F32)
        p2 = np.add.reduce(blocks[:, 1, :], axis=0, dtype=F32)
    else:
        p1 = np.zeros(_LANES, F32)
        p2 = np.zeros(_LANES, F32)
    if full % 2:
        p1 = (p1 + v[pairs * 2 * _LANES : full * _LANES]).astype(F32)
    p1 = (p1 + p2).astype(F32)
    return F32(_tail(v, full * _LANES) + _predux(p1))


def eigen_mean(x: np.ndarray) -> np.float32:
    """``paddle.mean(x)`` of a float32 tensor on CPU (see the module docstring)."""
    return _mean_1d(np.ascontiguousarray(x, dtype=F32).ravel())


def eigen_sum(x: np.ndarray) -> np.float32:
    """``paddle.sum(x)`` of a float32 tensor on CPU: Eigen's 8-lane tree reduction."""
    return _tree_sum_1d(np.ascontiguousarray(x, dtype=F32).ravel())


def _seq_rows(rows: np.ndarray) -> np.ndarray:
    """Float32 sum of each row, adding the columns one by one from 0."""
    if rows.shape[1] == 0:
        return np.zeros(rows.shape[0], F32)
    return (np.add.accumulate(rows, axis=1, dtype=F32)[:, -1] + F32(0.0)).astype(F32)


def eigen_sum_rows(x2d: np.ndarray) -> np.ndarray:
    """``paddle.sum(x2d, axis=1)``: a partial reduction, plain sequential float32 per row."""
    return _seq_rows(np.asarray(x2d, dtype=F32))


def eigen_mean_rows(x2d: np.ndarray) -> np.ndarray:
    """``paddle.mean(x2d, axis=1)``: sequential float32 row sums, then ``/ columns``."""
    x = np.asarray(x2d, dtype=F32)
    return (_seq_rows(x) / F32(x.shape[1])).astype(F32)


def eigen_mean_cols(x2d: np.ndarray) -> np.ndarray:
    """``paddle.mean(x2d, axis=0)``: row-by-row float32 accumulation, then ``/ rows``."""
    x = np.asarray(x2d, dtype=F32)
    return (_seq_rows(x.T) / F32(x.shape[0])).astype(F32)


def eigen_sum_cols(x2d: np.ndarray) -> np.ndarray:
    """``paddle.sum(x2d, axis=0)``: row-by-row float32 accumulation."""
    return _seq_rows(np.asarray(x2d, dtype=F32).T)


def paddle_std(x2d: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(paddle.mean(x, axis), paddle.std(x, axis))`` of a float32 tensor on CPU.

    ``paddle.std`` on a CPU build is ``sqrt(sum(pow(x - mean(x, keepdim), 2)) / (n - 1))``:
    the same mean, Eigen's ``pow`` (:func:`._eigen_pow.eigen_square`, not ``fl(d*d)``), the
    tree (full) or sequential (per-row / per-column) sum, one float32 division by
    ``fl32(n) - 1`` and a float32 ``sqrt``. ``axis`` is ``None`` (all elements) or 0/1 of a
    2-D array.

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
        return np.asarray(m0, F32), np.sqrt(F32(t0 / F32(F32(x.size) - F32(1.0)))).astype(F32)
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
    """Paddle CPU ``FindAbsMaxFunctor``: ``|x_k|`` with ``k = std::max_element`` by ``|x|``.

    A NaN at flat index 0 makes the result NaN; NaNs elsewhere never win a comparison and are
    skipped.
    """
    flat = np.asarray(x, dtype=F32).ravel()
    if np.isnan(flat[0]):
        return F32(np.nan)
    finite = flat[~np.isnan(flat)]
    return F32(np.max(np.abs(finite)))


def _inverse(scale: np.ndarray) -> np.ndarray:
    """Paddle's guarded reciprocal: ``s <= 1e-30 ? 1 / (s + 1e-6) : 1 / s`` in float32."""
    s = np.asarray(scale, dtype=F32)
    with np.errstate(divide="ignore"):
        return np.where(
            s <= F32(1e-30), F32(1.0) / (s + F32(1e-6)), F32(1.0) / s
        ).astype(F32)


def flush_denormals(a: np.ndarray) -> np.ndarray:
    """x86 FTZ/DAZ: float32 subnormals become a zero of the same sign."""
    a = np.asarray(a, dtype=F32)
    with np.errstate(invalid="ignore"):
        sub = (np.abs(a) < np.finfo(F32).tiny) & (a != 0)
    return np.where(sub, np.copysign(F32(0.0), a), a).astype(F32)


def paddle_qdq_round1(x: np.ndarray, scale: np.ndarray, bin_cnt: int,
                      flush: bool = False) -> np.ndarray:
    """Paddle's quantize-dequantize with ``round_type=1`` (``ClipAndFakeQuantDequantFunctor``).

    Per element, in float32 (``scale`` broadcasts against ``x``)::

        xc = x < -S ? -S : (x > S ? S : x)        # clip first
        q  = round_half_away(fl(fl(bin_cnt * inv(S)) * xc))
        y  = fl(fl(q * S) / bin_cnt)

    Matches ``phi/kernels/funcs/fake_quantize_functor.cc`` (CPU). ``flush=True`` runs it in
    the FTZ/DAZ mode of Paddle's legacy dygraph tracer (``paddle._legacy_C_ops``): every
    operand and every arithmetic result is flushed (:func:`flush_denormals`).
    """
    fz = flush_denormals if flush else (lambda a: np.asarray(a, dtype=F32))
    s = fz(scale)
    xf = fz(x)
    with np.errstate(invalid="ignore", over="ignore"):
        xc = np.where(xf < -s, -s, np.where(xf > s, s, xf)).astype(F32)
        c = fz((F32(bin_cnt) * fz(_inverse(s))).astype(F32))
        q = round_half_away(fz((c * xc).astype(F32)))
        return fz((fz((q * s).astype(F32)) / F32(bin_cnt)).astype(F32))


def moving_average_update(
    state: np.float32, accum: np.float32, cur: np.float32, rate: np.float32
) -> tuple[np.float32, np.float32, np.float32]:
    """Paddle's moving-average abs-max update (``FindMovingAverageAbsMaxFunctor``)::

        state = fl(fl(rate * state) + 1);  accum = fl(fl(rate * accum) + cur);
        scale = fl(accum / state)
    """
    new_state = F32(F32(rate * state) + F32(1.0))
    new_accum = F32(F32(rate * accum) + cur)
    return new_state, new_accum, F32(new_accum / new_state)


# -- rounding helpers ----------------------------------------------------------------------
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
class QuanterBase:  # noqa: B024 - an interface with shared plumbing, not an ABC
    """Common constructor checks and the ``state`` / ``load_state`` protocol.

    Subclasses keep their running state in ``self._state`` (a dict of NumPy arrays and Python
    scalars) and implement ``forward(x)``, ``backward(x, grad_y)`` and ``qparams()``.
    """

    _STATE_KEYS: tuple[str, ...] = ()

    def __init__(self, profile: Profile = "canonical") -> None:
        self.profile: Profile = check_choice(profile, "profile", PROFILES)
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
        """Replace the running state with ``state`` (as returned by :attr:`state`)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        missing = set(self._state) - set(state)
        extra = set(state) - set(self._state)
        if missing or extra:
            raise ValueError(
                f"state keys do not match: missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        new: dict[str, Any] = {}
        for key, value in state.items():
            old = self._state[key]
            if isinstance(old, np.ndarray) or (old is None and isinstance(value, np.ndarray)):
                new[key] = None if value is None else np.array(value, dtype=_dtype_of(old))
            else:
                new[key] = value
        self._state = new

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
        """``x`` as a float32 array (a fresh array; the caller's is never modified)."""
        arr = as_float_array(x, name, allow_nonfinite=allow_nonfinite, min_ndim=min_ndim)
        return np.array(arr, dtype=F32)

    def _check_grad(self, x: np.ndarray, grad_y: Any) -> np.ndarray:
        g = self._check_x(grad_y, "grad_y")
        if g.shape != x.shape:
            raise ValueError(f"grad_y must have the shape of x {x.shape}, got shape {g.shape}")
        return g

    def __repr__(self) -> str:
        return f"{type(self).__name__}(profile={self.profile!r})"


def _dtype_of(old: Any) -> Any:
    return old.dtype if isinstance(old, np.ndarray) else F32


def f32_of_double(value: float) -> np.float32:
    """Round a Python float (double) to float32 once, as ``paddle.to_tensor(value)`` does."""
    return F32(value)


def inv_sqrt_f32(n: int, qp: int) -> np.float32:
    """``fl32(1.0 / math.sqrt(n * qp))`` evaluated in double first (PaddleSlim's ``g``)."""
    return F32(1.0 / math.sqrt(n * qp))
