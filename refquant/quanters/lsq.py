"""LSQ / LSQ+ quanters (Esser et al. 2019, arXiv:1902.08153; Bhalgat et al. 2020,
arXiv:2004.09576): PaddleSlim's ``WeightLSQplusQuanter`` and ``ActLSQplusQuanter``.

Each quanter has one variant per profile (:class:`refquant.profiles.ProfileVariants`:
``WeightLSQplusQuanter(..., profile=p)`` builds it), as the two algorithms share little
beyond the constructor; the rules decide the per-tensor shapes (``per_tensor_scale_shape``),
whether the statistics update in evaluation mode (``updates_state_in_eval``), whether the
step can be read before the first ``forward`` (``requires_observed_scale``) and whether
``quant_axis=`` is accepted (``lsq_axis_from_quant_linear``).

``paddleslim`` profile: bit for bit PaddlePaddle/PaddleSlim
``paddleslim/quant/quanters/lsq_weight.py``, ``lsq_act.py`` and ``lsq_func.py`` on Paddle
3.3.1 (CPU), quirks included:

* ``quant_bits`` and ``sign`` are ignored (8-bit signed grid ``[-128, 127]``); the weight
  quanter also ignores ``symmetric``. Initial step ``max(|mu +- 3 sigma|) / 255`` against
  ``Qp = 127``; ``g = fl32(1 / sqrt(numel * 127))`` with the total ``numel`` even per channel.
* Per-tensor ``collect_gaussian``: ``s = fl(fl(s * 0.9) + fl(fl(0.1 * m) / 255))``.
  Per-channel: ``s = fl(fl(m * 0.9) + fl(fl(0.1 * m) / 255))`` from the *raw* bound ``m``
  (no EMA, no division by 255 of the main term).
* The activation quanter's beta update uses the scale:
  ``beta = fl(fl(s * 0.9) + fl(0.1 * fl(min - fl(s * qmin))))`` with the new ``s``.
* Per-channel ``LsqFunc`` groups the flat weight as ``reshape(shape[quant_axis], -1)``
  without moving the axis first (wrong for ``quant_axis=1``).
* ``round(v) = sign(v) * floor(fl(|v| + 0.5))`` (half away from zero, but ``0.49999997 -> 1``).
* ``zero_points()`` of the asymmetric activation quanter is
  ``clip(qmin - round(fl(qmin / s)), qmin, qmax)``, computed once and cached.
* The statistics are updated during the first ``batch_init`` calls whatever the layer's
  ``training`` flag (the layers never read it).
* On Paddle 3.3.1 the per-tensor quanters crash on their first call (a 0-D value is
  ``set_value``'d into a ``[1]`` parameter). refquant computes what they compute once that
  value is reshaped to ``[1]`` (the "set_value-shim").

The float32 operation order of every step is given in the function docstrings; the sums in
the gradients follow Paddle's CPU (Eigen) reduction order (:mod:`._common`), and
``paddle.std``'s ``pow(d, 2)`` is Eigen's vectorised ``pow`` (:mod:`._eigen_pow`). One part is
not bit-exact: the per-channel weight statistics when ``paddle.std`` returns 8 or more values,
whose packet ``sqrt`` is a hardware-dependent ``rsqrtps`` approximation (see
:func:`._common.paddle_std`); the step then differs by a few ulp (max 4 measured).
Paddle's division of two same-shape tensors (``LsqFunc`` per channel, ``paddle.std``'s last
step, ``zero_points()``) depends on the CPU: it is exact for the variant named by ``isa``
(``"avx2"``, the default, or ``"avx512"``; :mod:`refquant.kernels._paddle_divide`).

``canonical`` profile: the papers' method. Grid ``[Qn, Qp]`` from ``quant_bits`` and
``sign``; per-channel along any axis; weight init ``max(|mu +- 3 sigma|) / 2^(b-1)``
(LSQ+), activation init ``s = (max - min) / (Qp - Qn)``, ``beta = min - s * Qn``
(asymmetric) or ``s = max|x| / Qp`` (symmetric); ``batch_init`` steps of exponential
moving average (0.9 / 0.1) of those estimates, beta included, in training mode only
(``eval()`` freezes them); round half to even; gradient
scale ``g = 1 / sqrt(numel_per_scale * Qp)``; sums in float64, rounded once to float32.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._validation import check_axis, check_bits, check_flag, check_int
from ..kernels._isa import check_isa
from ..kernels._paddle_divide import paddle_divide
from ..profiles import CANONICAL, PADDLESLIM, ProfileRules
from ..qparams import QParams, integer_range
from ._common import (
    F32,
    Profile,
    QuanterBase,
    check_dtype_arg,
    check_name_arg,
    eigen_sum,
    eigen_sum_rows,
    inv_sqrt_f32,
    lsq_round,
    paddle_std,
    state_array,
)

__all__ = [
    "WeightLSQplusQuanter",
    "ActLSQplusQuanter",
    "lsq_forward_paddleslim",
    "lsq_backward_paddleslim",
    "lsq_plus_forward_paddleslim",
    "lsq_plus_backward_paddleslim",
]

_SLIM_QMIN, _SLIM_QMAX, _SLIM_DIV = -128, 127, 255


# -- PaddleSlim's LsqFunc / LsqPlusActFunc -------------------------------------------------
def _rows(w: np.ndarray, per_channel: bool, quant_axis: int) -> np.ndarray:
    """The layout LsqFunc divides in: ``w.reshape(shape[quant_axis], -1)`` per channel."""
    return w.reshape(w.shape[quant_axis], -1) if per_channel else w


def _div(w: np.ndarray, alpha: np.ndarray, per_channel: bool, quant_axis: int,
         isa: str = "avx2") -> np.ndarray:
    """LsqFunc's ``paddle.divide``: per channel the rows by ``broadcast_to(alpha)`` (equal
    shapes, so MKL's ``vsDiv`` in the CPU variant ``isa``), per tensor ``w`` by the ``[1]``
    parameter (``vsDiv`` only when ``w`` has shape ``(1,)``); see
    :func:`refquant.kernels._paddle_divide.paddle_divide`."""
    rows = _rows(w, per_channel, quant_axis)
    if per_channel:
        return paddle_divide(rows, np.broadcast_to(alpha.reshape(-1, 1), rows.shape), isa)
    return paddle_divide(rows, alpha.reshape(1), isa)


def lsq_forward_paddleslim(w: np.ndarray, alpha: np.ndarray, qn: int, qp: int,
                           per_channel: bool = False, quant_axis: int = 0,
                           isa: str = "avx2") -> np.ndarray:
    """``LsqFunc.forward``: ``y = fl(clip(round(fl(w / a)), Qn, Qp) * a)`` (float32).

    Per channel, ``a[c]`` applies to row ``c`` of ``w.reshape(shape[quant_axis], -1)``.
    ``w / a`` is Paddle's CPU divide, whose result depends on the CPU variant ``isa``
    (``"avx2"``, the default, ``"avx512"`` or ``"host"``; see :func:`_div`).
    """
    v = _div(w, alpha, per_channel, quant_axis, isa)
    q = np.clip(lsq_round(v), F32(qn), F32(qp))
    a = alpha.reshape(-1, 1) if per_channel else alpha.reshape(())
    return (q * a).astype(F32).reshape(w.shape)


def _alpha_terms(v: np.ndarray, grad: np.ndarray, g: np.float32, qn: int, qp: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Elementwise ``((lower*Qn + upper*Qp + middle*round(v)) - middle*v) * grad * g``."""
    lower = (v < qn).astype(F32)
    upper = (v > qp).astype(F32)
    middle = ((F32(1.0) - lower).astype(F32) - upper).astype(F32)
    t = ((lower * F32(qn)).astype(F32) + (upper * F32(qp)).astype(F32)).astype(F32)
    t = (t + (middle * lsq_round(v)).astype(F32)).astype(F32)
    t = (t - (middle * v).astype(F32)).astype(F32)
    t = ((t * grad).astype(F32) * g).astype(F32)
    return t, lower, upper, middle


def lsq_backward_paddleslim(w: np.ndarray, alpha: np.ndarray, grad: np.ndarray, g: np.float32,
                            qn: int, qp: int, per_channel: bool = False, quant_axis: int = 0,
                            isa: str = "avx2") -> tuple[np.ndarray, np.ndarray]:
    """``LsqFunc.backward`` -> ``(grad_w, grad_alpha)``.

    ``v = fl(w / a)``; ``lower = v < Qn``, ``upper = v > Qp``, ``middle = 1 - lower - upper``;
    ``grad_w = middle * grad``; ``grad_alpha`` sums the elementwise terms of
    :func:`_alpha_terms` with Paddle's tree sum (per channel: per row of
    ``reshape(shape[quant_axis], -1)``). Per tensor it is 0-D, as ``alpha.grad`` is in Paddle.
    ``isa``: the CPU variant of ``w / a`` (:func:`_div`).
    """
    v = _div(w, alpha, per_channel, quant_axis, isa).reshape(w.shape)
    t, _, _, middle = _alpha_terms(v, grad, g, qn, qp)
    if per_channel:
        grad_alpha = eigen_sum_rows(t.reshape(w.shape[quant_axis], -1))
    else:
        # 0-D, and Paddle stores it as the [1]-shaped parameter's .grad unchanged (0-D).
        grad_alpha = np.array(eigen_sum(t), F32)
    return (middle * grad).astype(F32), grad_alpha


def _plus_div(x: np.ndarray, alpha: np.float32, beta: np.float32, isa: str) -> np.ndarray:
    """``fl(fl(x - b) / a)`` with ``a`` the ``[1]`` parameter: MKL's ``vsDiv`` (CPU variant
    ``isa``) when ``x`` has shape ``(1,)``, the IEEE quotient otherwise."""
    d = (x - beta).astype(F32)
    return paddle_divide(d, np.full((1,), alpha, F32), isa).reshape(d.shape)


def lsq_plus_forward_paddleslim(x: np.ndarray, alpha: np.float32, beta: np.float32,
                                qn: int, qp: int, isa: str = "avx2") -> np.ndarray:
    """``LsqPlusActFunc.forward``: ``y = fl(fl(clip(round(fl(fl(x - b) / a))) * a) + b)``
    (``isa``: :func:`_plus_div`)."""
    v = _plus_div(x, alpha, beta, isa)
    q = np.clip(lsq_round(v), F32(qn), F32(qp))
    return ((q * alpha).astype(F32) + beta).astype(F32)


def lsq_plus_backward_paddleslim(x: np.ndarray, alpha: np.float32, beta: np.float32,
                                 grad: np.ndarray, g: np.float32, qn: int, qp: int,
                                 isa: str = "avx2") -> tuple[np.ndarray, np.float32, np.float32]:
    """``LsqPlusActFunc.backward`` -> ``(grad_x, grad_alpha, grad_beta)``.

    As :func:`lsq_backward_paddleslim` with ``v = fl(fl(x - b) / a)``, plus
    ``grad_beta = tree_sum(fl(fl((lower + upper) * grad) * g))`` (``isa``: :func:`_plus_div`).
    """
    v = _plus_div(x, alpha, beta, isa)
    t, lower, upper, middle = _alpha_terms(v, grad, g, qn, qp)
    tb = ((((lower + upper).astype(F32)) * grad).astype(F32) * g).astype(F32)
    return (middle * grad).astype(F32), eigen_sum(t), eigen_sum(tb)


# -- canonical LSQ / LSQ+ -------------------------------------------------------------------
def lsq_forward_canonical(x: np.ndarray, step: np.ndarray,
                          beta: np.ndarray | np.float32 | float, qn: int, qp: int
                          ) -> tuple[np.ndarray, np.ndarray]:
    """``v = fl(fl(x - beta) / s)``, ``q = clip(round_half_even(v), Qn, Qp)``,
    ``y = fl(fl(q * s) + beta)`` (``beta = 0``: plain LSQ). Returns ``(y, v)``."""
    b = np.asarray(beta, F32)
    v = ((x - b).astype(F32) / step).astype(F32)
    q = np.clip(np.rint(v), F32(qn), F32(qp))
    return ((q * step).astype(F32) + b).astype(F32), v


def lsq_backward_canonical(x: np.ndarray, step: np.ndarray,
                           beta: np.ndarray | np.float32 | float, grad: np.ndarray,
                           gscale: float, qn: int, qp: int,
                           reduce_axes: tuple[int, ...] | None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LSQ / LSQ+ gradients with the straight-through estimator for ``round``.

    With ``v`` the float32 quotient of the forward (used for the in-range test) and
    ``u = (x - beta) / s`` in float64 (used for the continuous part)::

        dx    = grad                       where Qn <= v <= Qp, else 0
        ds    = g * sum(grad * (round(v) - u   inside
                                Qn             where v < Qn
                                Qp             where v > Qp))
        dbeta = g * sum(grad * [v < Qn or v > Qp])

    Sums in float64 over ``reduce_axes`` (``None``: everything), rounded once to float32.
    """
    b = np.asarray(beta, F32)
    v = ((x - b).astype(F32) / step).astype(F32)
    u = (x.astype(np.float64) - b.astype(np.float64)) / step.astype(np.float64)
    lower, upper = v < qn, v > qp
    inside = ~(lower | upper)
    g64 = grad.astype(np.float64)
    term = np.where(lower, float(qn), np.where(upper, float(qp), np.rint(v) - u)) * g64
    outside = np.where(inside, 0.0, g64)
    ds = np.sum(term, axis=reduce_axes) * gscale
    db = np.sum(outside, axis=reduce_axes) * gscale
    dx = np.where(inside, grad, F32(0.0)).astype(F32)
    return dx, np.asarray(ds, F32), np.asarray(db, F32)


def _check_batch_init(batch_init: Any) -> int:
    return check_int(batch_init, "batch_init", low=1)


class _LSQBase(QuanterBase):
    """What both LSQ+ quanters share: constructor checks, the grid and the update schedule.

    The grid comes from the variant (:meth:`_grid`); when the statistics are updated, whether
    the step can be read before the first ``forward`` and the per-tensor shapes come from the
    rules (``updates_state_in_eval``, ``requires_observed_scale``,
    ``per_tensor_scale_shape``).
    """

    #: the sign a step must have (``state_array``'s ``sign``)
    _step_sign: ClassVar[str]

    def __init__(self, quant_bits: int, sign: bool, symmetric: bool, batch_init: int,
                 quant_linear: bool, reduce_type: str | None, dtype: str, name: str | None,
                 profile: Profile | ProfileRules) -> None:
        super().__init__(profile)
        self.quant_bits = check_bits(quant_bits, "quant_bits")
        self.sign = check_flag(sign, "sign")
        self.symmetric = check_flag(symmetric, "symmetric")
        self.batch_init = _check_batch_init(batch_init)
        self.quant_linear = check_flag(quant_linear, "quant_linear")
        if reduce_type is not None and not isinstance(reduce_type, str):
            raise TypeError(f"reduce_type must be None or 'max', got {reduce_type!r}")
        if reduce_type not in (None, "max"):
            raise ValueError(f"reduce_type must be None or 'max', got {reduce_type!r}")
        self.reduce_type = reduce_type  # "max" all-reduces across ranks: a no-op in one process
        check_dtype_arg(dtype)
        self.name = check_name_arg(name)
        self.qmin, self.qmax, self.bits = self._grid(self.quant_bits, self.sign)

    def _grid(self, quant_bits: int, sign: bool) -> tuple[int, int, int]:
        """``(qmin, qmax, bits)`` of the integer grid."""
        raise NotImplementedError

    def _check_config(self) -> None:
        """Refuse argument combinations the variant does not implement (none by default)."""

    def _gscale(self, numel: int) -> np.float32:
        """The gradient scale ``fl32(1 / sqrt(numel * Qp))``, evaluated in double first."""
        return inv_sqrt_f32(numel, self.qmax)

    def _updates(self) -> bool:
        """Whether this forward updates the statistics: during the first ``batch_init``
        calls, in training mode or, where the rules have ``updates_state_in_eval``
        (PaddleSlim's LSQ+ layers never look at ``training``), in either mode."""
        if self._state["init_state"] >= self.batch_init:
            return False
        return self.training or self.rules.updates_state_in_eval

    def _require_init(self, method: str = "backward") -> None:
        if self._state["g"] is None:
            raise ValueError(f"{self.public_name}.{method}() called before forward(): the "
                             "step is not initialised yet")

    def _require_observed(self, method: str) -> None:
        """Where the rules have ``requires_observed_scale`` (canonical) the initial step 1 is
        a placeholder, so reading it before the first ``forward`` raises ``ValueError``
        (paddleslim reports it, as PaddleSlim does)."""
        if self.rules.requires_observed_scale:
            self._require_init(method)

    def _checked_g_init(self, state: dict[str, Any]) -> tuple[np.ndarray | None, int]:
        """``g`` (None, or a finite float32 scalar > 0) and ``init_state`` (an integer >= 0);
        ``g`` is None exactly when ``init_state`` is 0 (the first forward sets both)."""
        g = state["g"]
        if g is not None:
            g = state_array(g, "g", (), sign="positive")
        init = check_int(state["init_state"], "state['init_state']", low=0)
        if (g is None) != (init == 0):
            raise ValueError(f"state['g'] must be None exactly when state['init_state'] is 0 "
                             f"(the first forward sets both), got g={state['g']!r}, "
                             f"init_state={init}")
        return g, init

    def scales(self) -> np.ndarray:
        """The LSQ step(s) (PaddleSlim's ``scales()``; canonical: ``ValueError`` before the
        first forward)."""
        self._require_observed("scales")
        return self._state["scale"].copy()

    def qparams(self) -> QParams:
        """Step ``scale`` and zero point.

        canonical: step convention, ``ValueError`` before the first forward (no step is
        learned yet). paddleslim labels the step ``"threshold"``: PaddleSlim's ``scales()``
        returns the LSQ step while its consumers (``LinearQuanter``) treat it as an abs-max
        threshold.
        """
        self._require_observed("qparams")
        return self._qparams()

    def _qparams(self) -> QParams:
        raise NotImplementedError


class _SlimLSQ:
    """PaddleSlim's LSQ+ (both quanters): ``quant_bits`` and ``sign`` are ignored, the grid
    is 8-bit signed ``[-128, 127]``; a step may be 0."""

    _step_sign: ClassVar[str] = "nonnegative"

    def _grid(self, quant_bits: int, sign: bool) -> tuple[int, int, int]:
        return _SLIM_QMIN, _SLIM_QMAX, 8


class _CanonicalLSQ:
    """The papers' LSQ / LSQ+ (both quanters): grid ``[Qn, Qp]`` from ``quant_bits`` and
    ``sign``; steps are > 0 (an all-zero batch raises)."""

    _step_sign: ClassVar[str] = "positive"

    def _grid(self, quant_bits: int, sign: bool) -> tuple[int, int, int]:
        qmin, qmax = integer_range(quant_bits, signed=sign)
        return qmin, qmax, quant_bits


class WeightLSQplusQuanter(_LSQBase):
    """LSQ+ weight quanter: learnable step ``scale`` (per tensor or per channel).

    Constructor arguments are PaddleSlim's; ``quant_axis`` (canonical only) overrides the
    channel axis, which PaddleSlim fixes to ``1 if quant_linear else 0``.

    ``state``: ``scale`` (float32, shape ``(1,)`` per tensor in ``paddleslim`` / ``()`` in
    ``canonical``, ``(C,)`` per channel; empty until the first forward when the channel
    count is not known), ``g`` (float32 0-D array or ``None`` before the first forward),
    ``init_state`` (int: forwards that updated the scale so far).

    ``isa`` (``paddleslim`` only): the CPU variant of Paddle's divide that the statistics and
    ``LsqFunc`` go through -- ``"avx2"`` (default), ``"avx512"`` or ``"host"`` (resolved
    once, here); see :mod:`refquant.kernels._paddle_divide`.
    """

    def __init__(
        self,
        quant_bits: int = 8,
        sign: bool = True,
        symmetric: bool = True,
        per_channel: bool = False,
        batch_init: int = 20,
        quant_linear: bool = False,
        channel_num: int | None = None,
        reduce_type: str | None = None,
        dtype: str = "float32",
        name: str | None = None,
        *,
        quant_axis: int | None = None,
        profile: Profile | ProfileRules = "canonical",
        isa: str = "avx2",
    ) -> None:
        super().__init__(quant_bits, sign, symmetric, batch_init, quant_linear, reduce_type,
                         dtype, name, profile)
        self.isa = check_isa(isa)
        self._check_config()
        if self.rules.lsq_axis_from_quant_linear and quant_axis is not None:
            raise ValueError(f"quant_axis is fixed by quant_linear for profile={self.profile!r}")
        self.per_channel = check_flag(per_channel, "per_channel")
        self.quant_axis = (1 if self.quant_linear else 0) if quant_axis is None \
            else check_int(quant_axis, "quant_axis")
        self._collect_axis = 0 if self.quant_linear else 1
        if channel_num is not None:
            channel_num = check_int(channel_num, "channel_num", low=1)
        self.channel_num = channel_num
        if self.per_channel:
            scale = np.ones(channel_num or 0, F32)
        else:
            scale = np.ones(self.rules.per_tensor_scale_shape, F32)
        self._state = {"scale": scale, "g": None, "init_state": 0}

    # -- checks ----------------------------------------------------------------------
    def _checked(self, w: Any) -> tuple[np.ndarray, int | None]:
        arr = self._check_x(w, "x", min_ndim=2 if self.per_channel else 0)
        if not self.per_channel:
            return arr, None
        axis = check_axis(self.quant_axis, arr.ndim, "quant_axis")
        channels = arr.shape[axis]
        known = self._state["scale"].size or self.channel_num
        if known and known != channels:
            raise ValueError(
                f"x has {channels} channels along quant_axis={self.quant_axis}, but this "
                f"quanter holds {known} scales"
            )
        return arr, axis

    # -- variant steps ---------------------------------------------------------------
    def _update(self, w: np.ndarray, axis: int | None) -> None:
        """Update ``scale`` (and set ``g`` on the first call) from the weight ``w``."""
        raise NotImplementedError

    def _quantize(self, w: np.ndarray, axis: int | None) -> np.ndarray:
        raise NotImplementedError

    def _gradients(self, w: np.ndarray, axis: int | None, grad: np.ndarray, g: np.float32
                   ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    # -- API -------------------------------------------------------------------------
    def forward(self, x: Any) -> np.ndarray:
        """Fake-quantize weight ``x``; updates the step while ``init_state < batch_init``."""
        w, axis = self._checked(x)
        if self._updates():
            self._update(w, axis)
        elif self._state["g"] is None:
            raise ValueError("forward() in eval mode before any training forward")
        return self._quantize(w, axis)

    __call__ = forward

    def backward(self, x: Any, grad_y: Any) -> dict[str, np.ndarray]:
        """``{"x": dL/dx, "scale": dL/dscale}`` at the current state."""
        w, axis = self._checked(x)
        grad = self._check_grad(w, grad_y)
        self._require_init()
        return self._gradients(w, axis, grad, F32(self._state["g"]))

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """``scale`` (float32 of the current shape -- per channel: 1-D with the known channel
        count, if any -- finite, ``> 0`` canonical / ``>= 0`` paddleslim), ``g`` and
        ``init_state`` (:meth:`_checked_g_init`)."""
        old = self._state["scale"]
        if self.per_channel:
            scale = state_array(state["scale"], "scale", None, sign=self._step_sign)
            known = old.size or self.channel_num
            if scale.ndim != 1 or (known and scale.size != known):
                want = f"({known},)" if known else "1-D"
                raise ValueError(f"state['scale'] must have shape {want} (one step per "
                                 f"channel), got shape {scale.shape}")
        else:
            scale = state_array(state["scale"], "scale", old.shape, sign=self._step_sign)
        g, init = self._checked_g_init(state)
        return {"scale": scale, "g": g, "init_state": init}

    def zero_points(self) -> Any:
        """PaddleSlim: the Python int 0 (the weight quanter is always symmetric/signed);
        canonical: ``qparams().zero_point``."""
        raise NotImplementedError


class _SlimWeightLSQ(_SlimLSQ, WeightLSQplusQuanter, profile=PADDLESLIM):
    def _bound(self, w: np.ndarray) -> np.ndarray:
        """``max(|mean - 3 std|, |mean + 3 std|)`` exactly as PaddleSlim evaluates it."""
        if self.per_channel:
            mean, std = paddle_std(w.reshape(w.shape[0], -1), self._collect_axis, self.isa)
        else:
            mean, std = paddle_std(w, None, self.isa)
        three = (F32(3.0) * std).astype(F32)
        lo = np.abs((mean - three).astype(F32))
        hi = np.abs((mean + three).astype(F32))
        if self.per_channel:
            return np.maximum(lo, hi).astype(F32)
        # Python max([lo, hi]) keeps the first unless the second is strictly greater.
        return np.asarray(hi if hi > lo else lo, F32)

    def _update(self, w: np.ndarray, axis: int | None) -> None:
        """``collect_gaussian``: first ``m / 255``; then per tensor
        ``fl(fl(s * 0.9) + fl(fl(0.1 * m) / 255))``, per channel the same with the raw bound
        ``m`` in place of ``s``; ``g`` from the total ``numel``."""
        st = dict(self._state)
        first = st["init_state"] == 0
        if first:
            st["g"] = np.asarray(self._gscale(w.size), F32)
        m = self._bound(w)
        if self.per_channel and m.size != w.shape[self.quant_axis]:
            raise ValueError(
                f"PaddleSlim computes {m.size} channel statistics for x of shape "
                f"{w.shape} but has {w.shape[self.quant_axis]} scales"
            )
        div = F32(_SLIM_DIV)
        if first:
            new = (m / div).astype(F32)
        elif self.per_channel:
            new = ((m * F32(0.9)).astype(F32)
                   + ((F32(0.1) * m).astype(F32) / div).astype(F32)).astype(F32)
        else:
            old = st["scale"].reshape(())
            new = ((old * F32(0.9)).astype(F32)
                   + ((F32(0.1) * m).astype(F32) / div).astype(F32)).astype(F32)
        st["scale"] = np.asarray(new, F32).reshape(-1 if self.per_channel else (1,))
        st["init_state"] = int(st["init_state"]) + 1
        self._state = st

    def _quantize(self, w: np.ndarray, axis: int | None) -> np.ndarray:
        return lsq_forward_paddleslim(w, self._state["scale"], self.qmin, self.qmax,
                                      self.per_channel, self.quant_axis, self.isa)

    def _gradients(self, w: np.ndarray, axis: int | None, grad: np.ndarray, g: np.float32
                   ) -> dict[str, np.ndarray]:
        dx, ds = lsq_backward_paddleslim(w, self._state["scale"], grad, g, self.qmin,
                                         self.qmax, self.per_channel, self.quant_axis, self.isa)
        return {"x": dx, "scale": ds}

    def zero_points(self) -> Any:
        return 0

    def _qparams(self) -> QParams:
        axis = self.quant_axis if self.per_channel else None
        s = self._state["scale"]
        s = s if self.per_channel else s.reshape(())
        return QParams(s, np.zeros(s.shape, np.int64), self.qmin, self.qmax, 8, axis,
                       convention="threshold")


class _CanonicalWeightLSQ(_CanonicalLSQ, WeightLSQplusQuanter, profile=CANONICAL):
    def _check_config(self) -> None:
        if not self.symmetric:
            raise ValueError("symmetric=False is not supported for weights: LSQ+ learns no "
                             "weight offset")

    def _bound(self, w: np.ndarray, axis: int | None) -> np.ndarray:
        """The step estimate ``max(|mu - 3 sigma|, |mu + 3 sigma|) / 2^(b-1)`` in float64
        (per channel along ``axis``; sample std)."""
        w64 = w.astype(np.float64)
        if axis is None:
            flat = w64.reshape(1, -1)
        else:
            flat = np.moveaxis(w64, axis, 0).reshape(w.shape[axis], -1)
        if flat.shape[1] < 2:
            raise ValueError("x needs at least 2 elements per scale to estimate a std")
        mean = flat.mean(axis=1)
        std = flat.std(axis=1, ddof=1)
        bound = np.maximum(np.abs(mean - 3 * std), np.abs(mean + 3 * std))
        if np.any(bound == 0):
            raise ValueError("cannot initialise the step size: a channel of x is constant 0")
        est = bound / 2 ** (self.quant_bits - 1)
        return est if axis is not None else est.reshape(())

    def _update(self, w: np.ndarray, axis: int | None) -> None:
        """First the estimate, then ``0.9 * s + 0.1 * estimate`` in float64, rounded once;
        ``g`` from the elements per scale."""
        st = dict(self._state)
        est = self._bound(w, axis)
        if st["init_state"] == 0:
            numel = w.size // (w.shape[axis] if axis is not None else 1)
            st["g"] = np.asarray(self._gscale(numel), F32)
            new64 = est
        else:
            new64 = 0.9 * st["scale"].astype(np.float64) + 0.1 * est
        st["scale"] = np.asarray(new64, F32)
        st["init_state"] = int(st["init_state"]) + 1
        self._state = st

    def _step(self, w: np.ndarray, axis: int | None) -> np.ndarray:
        """The step broadcastable against ``w``."""
        s = self._state["scale"]
        if axis is None:
            return s
        shape = [1] * w.ndim
        shape[axis] = s.size
        return s.reshape(shape)

    def _quantize(self, w: np.ndarray, axis: int | None) -> np.ndarray:
        y, _ = lsq_forward_canonical(w, self._step(w, axis), 0.0, self.qmin, self.qmax)
        return y

    def _gradients(self, w: np.ndarray, axis: int | None, grad: np.ndarray, g: np.float32
                   ) -> dict[str, np.ndarray]:
        axes = None if axis is None else tuple(i for i in range(w.ndim) if i != axis)
        dx, ds, _ = lsq_backward_canonical(w, self._step(w, axis), 0.0, grad, float(g),
                                           self.qmin, self.qmax, axes)
        return {"x": dx, "scale": ds.reshape(self._state["scale"].shape)}

    def zero_points(self) -> Any:
        return self.qparams().zero_point

    def _qparams(self) -> QParams:
        axis = self.quant_axis if self.per_channel else None
        s = self._state["scale"]
        return QParams(s, np.zeros(s.shape, np.int64), self.qmin, self.qmax, self.bits, axis,
                       convention="step")


class ActLSQplusQuanter(_LSQBase):
    """LSQ+ activation quanter: learnable step ``scale`` and, when asymmetric, offset ``beta``.

    ``state``: ``scale`` and ``beta`` (float32, shape ``(1,)`` in ``paddleslim``, ``()`` in
    ``canonical``; ``beta`` is 0 and unused when symmetric), ``g``, ``init_state`` and, in
    ``paddleslim``, ``zero_point`` (``zero_points()``'s cached value or ``None``).

    ``isa`` (``paddleslim`` only): the CPU variant of Paddle's divide (``"avx2"``, default,
    ``"avx512"`` or ``"host"``); it matters where both operands have one shape: ``x`` of
    shape ``(1,)`` and ``zero_points()``'s ``qmin / scale``.
    """

    def __init__(
        self,
        quant_bits: int = 8,
        sign: bool = True,
        symmetric: bool = True,
        per_channel: bool = False,
        batch_init: int = 20,
        quant_linear: bool = False,
        reduce_type: str | None = None,
        dtype: str = "float32",
        name: str | None = None,
        *,
        profile: Profile | ProfileRules = "canonical",
        isa: str = "avx2",
    ) -> None:
        super().__init__(quant_bits, sign, symmetric, batch_init, quant_linear, reduce_type,
                         dtype, name, profile)
        self.isa = check_isa(isa)
        self.per_channel = check_flag(per_channel, "per_channel")
        self._check_config()
        self._state = self._initial_state(self.rules.per_tensor_scale_shape)

    def _initial_state(self, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"scale": np.ones(shape, F32), "beta": np.zeros(shape, F32), "g": None,
                "init_state": 0}

    # -- variant steps ---------------------------------------------------------------
    def _update_params(self, st: dict[str, Any], lo: np.float32, hi: np.float32,
                       first: bool) -> None:
        """Set ``st["scale"]`` and ``st["beta"]`` from the batch's ``min`` / ``max``."""
        raise NotImplementedError

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _gradients(self, x: np.ndarray, grad: np.ndarray, g: np.float32
                   ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    # -- API -------------------------------------------------------------------------
    def _update(self, x: np.ndarray) -> None:
        st = dict(self._state)
        first = st["init_state"] == 0
        if first:
            st["g"] = np.asarray(self._gscale(x.size), F32)
        self._update_params(st, F32(np.min(x)), F32(np.max(x)), first)
        st["init_state"] = int(st["init_state"]) + 1
        self._state = st

    def forward(self, x: Any) -> np.ndarray:
        """Fake-quantize activation ``x``; updates scale/beta while ``init_state <
        batch_init``."""
        arr = self._check_x(x)
        if self._updates():
            self._update(arr)
        elif self._state["g"] is None:
            raise ValueError("forward() in eval mode before any training forward")
        return self._quantize(arr)

    __call__ = forward

    def backward(self, x: Any, grad_y: Any) -> dict[str, np.ndarray]:
        """``{"x", "scale"}`` plus ``"beta"`` when asymmetric, at the current state."""
        arr = self._check_x(x)
        grad = self._check_grad(arr, grad_y)
        self._require_init()
        return self._gradients(arr, grad, F32(self._state["g"]))

    def _step_offset(self) -> tuple[np.float32, np.float32]:
        return F32(self._state["scale"].reshape(())), F32(self._state["beta"].reshape(()))

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """``scale`` (float32 of the current shape, finite, ``> 0`` canonical / ``>= 0``
        paddleslim), ``beta`` (same shape, finite), ``g``, ``init_state``
        (:meth:`_checked_g_init`) and, paddleslim, ``zero_point`` (None, an integer, or a
        float32 array of integer values, in ``[qmin, qmax]``)."""
        shape = self._state["scale"].shape
        out: dict[str, Any] = {
            "scale": state_array(state["scale"], "scale", shape, sign=self._step_sign),
            "beta": state_array(state["beta"], "beta", shape, sign="any"),
        }
        out["g"], out["init_state"] = self._checked_g_init(state)
        return out

    def zero_points(self) -> Any:
        """PaddleSlim's ``zero_points()`` (paddleslim: cached on first call); canonical:
        ``qparams().zero_point``."""
        raise NotImplementedError


class _SlimActLSQ(_SlimLSQ, ActLSQplusQuanter, profile=PADDLESLIM):
    def _initial_state(self, shape: tuple[int, ...]) -> dict[str, Any]:
        state = super()._initial_state(shape)
        state["zero_point"] = None
        return state

    def _update_params(self, st: dict[str, Any], lo: np.float32, hi: np.float32,
                       first: bool) -> None:
        """``s = (max - min) / 255`` then ``fl(fl(s * 0.9) + fl(fl(0.1 * range) / 255))``;
        asymmetric: ``beta = min - s * qmin`` then the scale-seeded
        ``fl(fl(s * 0.9) + fl(0.1 * fl(min - fl(s * qmin))))`` with the new ``s``."""
        shape = st["scale"].shape
        width = F32(self.qmax - self.qmin)
        rng = F32(hi - lo)
        qmin = F32(self.qmin)
        if first:
            s = F32(rng / width)
        else:
            s = F32(F32(st["scale"].reshape(()) * F32(0.9)) + F32(F32(F32(0.1) * rng) / width))
        if not self.symmetric:
            if first:
                b = F32(lo - F32(s * qmin))
            else:
                b = F32(F32(s * F32(0.9)) + F32(F32(0.1) * F32(lo - F32(s * qmin))))
            st["beta"] = np.full(shape, b, F32)
        st["scale"] = np.full(shape, s, F32)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self.symmetric:
            return lsq_forward_paddleslim(x, self._state["scale"], self.qmin, self.qmax,
                                          isa=self.isa)
        s, b = self._step_offset()
        return lsq_plus_forward_paddleslim(x, s, b, self.qmin, self.qmax, self.isa)

    def _gradients(self, x: np.ndarray, grad: np.ndarray, g: np.float32
                   ) -> dict[str, np.ndarray]:
        if self.symmetric:
            dx, ds = lsq_backward_paddleslim(x, self._state["scale"], grad, g, self.qmin,
                                             self.qmax, isa=self.isa)
            return {"x": dx, "scale": ds}
        s, b = self._step_offset()
        dx, ds0, db0 = lsq_plus_backward_paddleslim(x, s, b, grad, g, self.qmin, self.qmax,
                                                    self.isa)
        return {"x": dx, "scale": np.array(ds0, F32), "beta": np.array(db0, F32)}

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        out = super()._checked_state(state)
        out["zero_point"] = self._checked_zero_point(state["zero_point"])
        return out

    def _checked_zero_point(self, zp: Any) -> Any:
        if zp is None:
            return None
        if isinstance(zp, (int, np.integer)) and not isinstance(zp, bool):
            arr: Any = int(zp)
            vals = np.array([arr])
        else:
            arr = state_array(zp, "zero_point", None, sign="any")
            vals = arr
            if arr.size != 1 or np.any(arr != np.round(arr)):
                raise ValueError(f"state['zero_point'] must be one integer value, got "
                                 f"{arr.tolist()!r}")
        if np.any((vals < self.qmin) | (vals > self.qmax)):
            raise ValueError(f"state['zero_point'] must be in [{self.qmin}, {self.qmax}], got "
                             f"{np.asarray(vals).tolist()!r}")
        return arr

    def zero_points(self) -> Any:
        """``0`` symmetric, else ``clip(qmin - round(fl(qmin / s)), qmin, qmax)``; computed
        once and cached in the state."""
        if self._state["zero_point"] is None:
            if self.symmetric:
                zp: Any = 0
            else:
                s = self._state["scale"]
                # Python number / [1] parameter: a [1] tensor of qmin, so MKL's vsDiv
                r = lsq_round(paddle_divide(np.full(s.shape, self.qmin, F32), s, self.isa))
                zp = np.clip((F32(self.qmin) - r).astype(F32), F32(self.qmin), F32(self.qmax))
            self._state["zero_point"] = zp
        return self._state["zero_point"]

    def _qparams(self) -> QParams:
        """``scales()`` and ``zero_points()`` as PaddleSlim reports them (the latter
        cached)."""
        s = self._state["scale"].reshape(())
        zp = np.asarray(self.zero_points(), dtype=np.float64).reshape(())
        return QParams(s, zp, self.qmin, self.qmax, 8, None, convention="threshold")


class _CanonicalActLSQ(_CanonicalLSQ, ActLSQplusQuanter, profile=CANONICAL):
    def _check_config(self) -> None:
        if self.per_channel:
            raise ValueError("per_channel=True is not supported for activations "
                             "(PaddleSlim ignores it)")

    def _update_params(self, st: dict[str, Any], lo: np.float32, hi: np.float32,
                       first: bool) -> None:
        """Asymmetric ``s = (max - min) / (Qp - Qn)``, ``beta = min - s * Qn``; symmetric
        ``s = max|x| / Qp``, ``beta = 0``; then ``0.9 * old + 0.1 * new`` (float64, rounded
        once)."""
        lo64, hi64 = float(lo), float(hi)
        if self.symmetric:
            s_new = max(abs(lo64), abs(hi64)) / self.qmax
            b_new = 0.0
        else:
            s_new = (hi64 - lo64) / (self.qmax - self.qmin)
            b_new = lo64 - s_new * self.qmin
        if s_new == 0.0:
            raise ValueError("cannot initialise the step size: x is all zeros")
        if first:
            s64, b64 = s_new, b_new
        else:
            s64 = 0.9 * float(st["scale"]) + 0.1 * s_new
            b64 = 0.9 * float(st["beta"]) + 0.1 * b_new
        st["scale"] = np.asarray(s64, F32)
        st["beta"] = np.asarray(b64, F32)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        s, b = self._step_offset()
        y, _ = lsq_forward_canonical(x, np.asarray(s), b, self.qmin, self.qmax)
        return y

    def _gradients(self, x: np.ndarray, grad: np.ndarray, g: np.float32
                   ) -> dict[str, np.ndarray]:
        s, b = self._step_offset()
        dx, ds, db = lsq_backward_canonical(x, np.asarray(s), b, grad, float(g), self.qmin,
                                            self.qmax, None)
        out = {"x": dx, "scale": ds}
        if not self.symmetric:
            out["beta"] = db
        return out

    def zero_points(self) -> Any:
        return self.qparams().zero_point

    def _qparams(self) -> QParams:
        """``zp = -round_half_even(beta / s)`` (0 when symmetric), step convention."""
        s = self._state["scale"].reshape(())
        if self.symmetric:
            zp64 = 0.0
        else:
            zp64 = -float(np.rint(float(self._state["beta"]) / float(s)))
        return QParams(s, np.asarray(int(zp64), np.int64), self.qmin, self.qmax, self.bits,
                       None, convention="step")
