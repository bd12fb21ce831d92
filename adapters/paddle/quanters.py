"""Quanter factories for QAT on Paddle, matching ``refquant.quanters`` forward and backward.

Each factory is a ``paddle.quantization.factory.QuanterFactory`` (usable in Paddle's
``QuantConfig`` too) building ``<FactoryName>Layer``. Fake quantization runs Paddle's own
kernels, with the parameters the reference kernels reproduce bit for bit:

* :class:`FakeQuanterWithAbsMaxObserver` -- ``fake_quantize_dequantize_moving_average_abs_max``
  (``round_type=1``), the moving-average state in the layer; ``profile="paddleslim"`` starts
  ``state = accum = 1`` like PaddleSlim/Paddle, ``"canonical"`` starts them at 0 (so the first
  scale is exactly the first abs-max, the bias-corrected EMA of
  :class:`refquant.quanters.FakeQuanterWithAbsMaxObserver`). Gradient: straight-through.
* :class:`FakeQuanterChannelWiseAbsMaxObserver` -- ``fake_channel_wise_quantize_dequantize_abs_max``
  (``round_type=1``); the axis comes from the layer (:func:`..layers.weight_axis`) or
  ``quant_axis=``; the kernel accepts axis 0 or 1 only. ``paddleslim`` runs the op through
  ``paddle._legacy_C_ops`` as PaddleSlim does (flush-to-zero floating-point mode), canonical
  through ``paddle._C_ops``.
* :class:`PACTQuanter` -- the inner ``quanter`` is a factory of this module, or Paddle's /
  PaddleSlim's factory of the same name (``paddle.quantization.quanters.
  FakeQuanterWithAbsMaxObserver``, ``paddleslim.quant.quanters.ActLSQplusQuanter``, ...),
  rebuilt as this module's with the same arguments and PACT's profile; a class (a factory
  class or its layer class, as PaddleSlim's test_quanters.py passes) is a ``TypeError``
  naming the factory to pass. ``paddleslim``: PaddleSlim's clip ``x - relu(x - a) + relu(-a - x)``
  with Paddle's autograd (so ``d alpha`` is Paddle's own reduction), then the inner quanter;
  ``canonical``: the exact clip to ``[0, a]`` (``[-a, a]`` with ``signed=True``) with the
  reference's gradients (``dx`` = upstream gradient strictly inside, 0 outside; ``d alpha`` =
  float64 sum over the clipped elements, rounded once), then the inner quanter or, without
  one, the paper's quantizer ``round(x * qmax / a) * a / qmax`` in float32 operations.

* :class:`WeightLSQplusQuanter` / :class:`ActLSQplusQuanter` -- LSQ+ with a learnable step
  (and offset). ``paddleslim``: PaddleSlim's ``LsqFunc`` / ``LsqPlusActFunc`` expressions
  evaluated with Paddle ops in PaddleSlim's order (``round`` is ``sign(v) * floor(|v| +
  0.5)``, the gradient sums are Paddle's own reductions), the statistics updated like
  PaddleSlim's (docs/divergences.md, Q41-Q50; the per-tensor step is written as a ``[1]``
  tensor, which is what PaddleSlim computes once its 0-D ``set_value`` crash is worked
  around, Q42).
  ``canonical``: the papers' method as :mod:`refquant.quanters.lsq` defines it -- round half
  to even, gradient scale ``1 / sqrt(numel_per_scale * Qp)``, gradient sums in float64 rounded
  once (a ``PyLayer``), statistics updated only in training mode. The fake quantization here
  is elementwise Paddle ops (there is no Paddle kernel for LSQ).

Tracing (``paddle.jit.save`` / ``paddle.jit.to_static`` before ``convert``): while Paddle
builds a static program, every layer emits its evaluation-mode forward on its current
parameters -- the abs-max quanter Paddle's own op with ``is_test=True`` (the op Paddle's
``FakeQuanterWithAbsMaxObserver`` emits), the channel-wise quanter its op on the weight, PACT
and LSQ+ the same elementwise operations their dygraph forward runs, without the autograd
functions (``PyLayer``) that only shape the gradients. A loaded program therefore computes the
dygraph evaluation-mode output bit for bit (tests/test_paddle_compat.py), with the statistics
frozen: a program never updates moving averages or LSQ+ initialisation, whatever the layer's
``training`` flag. What needs the data cannot be checked while tracing (NaN/Inf input, PACT's
``alpha > 0``); the dtype is. The ``paddleslim`` channel-wise quanter runs the PIR op in a
program, not the legacy op it runs in dygraph (where the floating-point mode is FTZ/DAZ); the
two agreed on the subnormal weights tried, but that case is not covered by a test. An LSQ+
layer that has not run a training forward has no step size to trace (``ValueError`` naming
the layer).

Profiles: every layer wraps its reference quanter (``layer.reference``) and reads that quanter's
rules (:class:`refquant.profiles.ProfileRules`) for each decision the two share -- the
initial moving-average state, the per-tensor parameter shape, the FTZ/DAZ op, the zero points,
eval-mode updates. Layers of profiles whose rules drop non-finite values from the statistics
(``drops_nonfinite``: canonical) refuse NaN/Inf input, which Paddle's kernels cannot drop;
the others pass it through as PaddleSlim does. Where the Paddle computation itself differs
(PACT's clip, LSQ+'s statistics and functions), the layer holds a small ops object with one
variant per profile (:class:`refquant.profiles.ProfileVariants`), built from the same rules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import paddle
from paddle import _C_ops, _legacy_C_ops
from paddle.autograd import PyLayer
from paddle.quantization.base_quanter import BaseQuanter
from paddle.quantization.factory import QuanterFactory

from refquant.profiles import (
    CANONICAL,
    PADDLESLIM,
    Profile,
    ProfileRules,
    ProfileVariants,
    get_profile,
)
from refquant.qparams import QParams
from refquant.quanters import ActLSQplusQuanter as _RefActLSQ
from refquant.quanters import FakeQuanterChannelWiseAbsMaxObserver as _RefCW
from refquant.quanters import FakeQuanterWithAbsMaxObserver as _RefMA
from refquant.quanters import PACTQuanter as _RefPACT
from refquant.quanters import WeightLSQplusQuanter as _RefWeightLSQ

from . import _device as dev
from .config import class_instead_of_factory
from .layers import check_signature, layer_label, weight_axis

__all__ = [
    "FakeQuanterWithAbsMaxObserver",
    "FakeQuanterChannelWiseAbsMaxObserver",
    "PACTQuanter",
    "WeightLSQplusQuanter",
    "ActLSQplusQuanter",
    "FakeQuanterWithAbsMaxObserverLayer",
    "FakeQuanterChannelWiseAbsMaxObserverLayer",
    "PACTQuanterLayer",
    "WeightLSQplusQuanterLayer",
    "ActLSQplusQuanterLayer",
]


def _check_input(x: Any, who: str) -> None:
    if not isinstance(x, paddle.Tensor):
        raise TypeError(f"input of {who} must be a paddle.Tensor, got {type(x).__name__}")
    if x.dtype != paddle.float32:
        raise TypeError(f"input of {who} must be float32 (Paddle's fake-quant kernels), "
                        f"got {x.dtype}")
    if x.size == 0:  # Paddle's abs-max kernels crash the process on an empty tensor
        raise ValueError(f"input of {who} must not be empty, got shape {list(x.shape)}")


def _tracing() -> bool:
    """``True`` while ``paddle.jit.to_static`` / ``paddle.jit.save`` builds a program: the
    input is a static ``Value`` (no data), so the layer emits its frozen computation."""
    return not paddle.in_dynamic_mode()


def _check_traced_input(x: Any, who: str) -> None:
    """What can be checked of a static ``Value`` (its dtype; the data does not exist yet)."""
    if x.dtype != paddle.float32:
        raise TypeError(f"input of {who} must be float32 (Paddle's fake-quant kernels), "
                        f"got {x.dtype}")


def _run(fn: Any, value: Any, *args: Any) -> paddle.Tensor:
    """``fn.apply(*args)`` (a ``PyLayer``: custom gradients) in dygraph; while tracing,
    ``value(*args)``: the same forward operations that ``fn.forward`` runs, without the
    autograd function, so the program computes the dygraph forward's numbers."""
    if _tracing():
        return value(*args)
    return fn.apply(*args)


def _check_finite(x: paddle.Tensor, who: str) -> None:
    if not bool(paddle.isfinite(x).all()):
        raise ValueError(f"input of {who} holds NaN or Inf values (shape {list(x.shape)})")


def _check_finite_for(rules: ProfileRules, x: paddle.Tensor, who: str) -> None:
    """Refuse NaN/Inf where the rules drop them from the statistics: Paddle's kernels
    cannot, so such input has no result in that profile."""
    if rules.drops_nonfinite:
        _check_finite(x, who)


class _RefquantQuanterLayer(BaseQuanter):
    _ref: Any

    @property
    def reference(self) -> Any:
        """The wrapped reference quanter (``refquant.quanters``), whose rules this layer
        follows; its state is synchronised from the layer's parameters by ``qparams()``."""
        return self._ref

    def qparams(self) -> QParams:  # pragma: no cover - abstract
        raise NotImplementedError


class FakeQuanterWithAbsMaxObserverLayer(_RefquantQuanterLayer):
    """Moving-average abs-max fake quanter (Paddle kernel; see the module docstring)."""

    def __init__(self, layer: Any = None, moving_rate: float = 0.9, bit_length: int = 8,
                 dtype: str = "float32", name: str | None = None, *,
                 profile: Profile | ProfileRules = "canonical") -> None:
        super().__init__()
        self._ref = _RefMA(moving_rate, bit_length, dtype, name, profile=profile)
        self._who = f"{type(self).__name__} of {layer_label(layer)}"
        self._rate = float(moving_rate)
        self._bits = int(bit_length)
        init = self._ref.rules.moving_average_init
        attr = paddle.ParamAttr(trainable=False)
        self._scale = self.create_parameter(
            [1], attr=attr, dtype="float32",
            default_initializer=paddle.nn.initializer.Constant(0.001))
        self._scale.stop_gradient = True
        self.register_buffer("_state", paddle.full([1], init, "float32"))
        self.register_buffer("_accum", paddle.full([1], init, "float32"))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if _tracing():
            return self._traced(x)
        _check_input(x, self._who)
        _check_finite_for(self._ref.rules, x, self._who)
        out, scale, state, accum = _C_ops.fake_quantize_dequantize_moving_average_abs_max(
            x, self._scale, self._accum, self._state, self._rate, self._bits,
            not self.training, 1)
        if self.training:
            with paddle.no_grad():
                paddle.assign(scale, self._scale)
                paddle.assign(state, self._state)
                paddle.assign(accum, self._accum)
        return out

    def _traced(self, x: Any) -> Any:
        """The evaluation-mode kernel (``is_test=True``) on the current scale: the op Paddle's
        own quanter emits, with the moving-average state frozen."""
        _check_traced_input(x, self._who)
        # no state in evaluation mode (None, as Paddle's own quanter passes)
        out, _, _, _ = _C_ops.fake_quantize_dequantize_moving_average_abs_max(
            x, self._scale, None, None,  # type: ignore[arg-type]
            self._rate, self._bits, True, 1)
        return out

    def _sync(self) -> Any:
        self._ref.load_state({"scale": self._scale.numpy(), "state": self._state.numpy(),
                              "accum": self._accum.numpy()})
        return self._ref

    def qparams(self) -> QParams:
        return self._sync().qparams()

    def scales(self) -> paddle.Tensor:
        return self._scale

    def zero_points(self) -> Any:
        if self._ref.rules.symmetric_zero_points_none:
            return None
        return paddle.zeros([1], "float32")

    def quant_axis(self) -> int:
        return -1

    def bit_length(self) -> int:
        return self._bits


class FakeQuanterChannelWiseAbsMaxObserverLayer(_RefquantQuanterLayer):
    """Per-channel abs-max fake quanter (Paddle kernel; see the module docstring)."""

    def __init__(self, layer: Any = None, bit_length: int = 8, dtype: str = "float32",
                 name: str | None = None, *, quant_axis: int | None = None,
                 profile: Profile | ProfileRules = "canonical") -> None:
        super().__init__()
        self._who = f"{type(self).__name__} of {layer_label(layer)}"
        if quant_axis is not None and (isinstance(quant_axis, bool)
                                       or not isinstance(quant_axis, (int, np.integer))):
            raise TypeError(f"quant_axis must be an integer or None, got {quant_axis!r}")
        axis = weight_axis(layer, quant_axis) if layer is not None else (
            0 if quant_axis is None else int(quant_axis))
        if axis not in (0, 1):
            raise ValueError(
                f"quant_axis={axis} for {layer_label(layer)}: Paddle's "
                "fake_channel_wise_quantize_dequantize_abs_max kernel supports axis 0 or 1 only"
            )
        self._ref = _RefCW(bit_length, dtype, name, quant_axis=axis, profile=profile)
        self._axis = axis
        self._bits = int(bit_length)
        self.register_buffer("_scales", paddle.zeros([0], "float32"))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if _tracing():
            _check_traced_input(x, self._who)
            out, _ = _C_ops.fake_channel_wise_quantize_dequantize_abs_max(
                x, self._bits, 1, self._axis)
            return out
        _check_input(x, self._who)
        if x.ndim <= self._axis:
            raise ValueError(f"input of {self._who} has shape {list(x.shape)}: it has no axis "
                             f"quant_axis={self._axis} to take channels along")
        _check_finite_for(self._ref.rules, x, self._who)
        if self._ref.rules.flush_subnormal_scales:  # legacy op: FTZ/DAZ, as PaddleSlim calls it
            out = paddle.empty_like(x)
            scale = paddle.empty([x.shape[self._axis]], "float32")
            out, scale = _legacy_C_ops.fake_channel_wise_quantize_dequantize_abs_max(  # type: ignore[attr-defined]
                x, out, scale, "bit_length", self._bits, "round_type", 1,
                "quant_axis", self._axis)
        else:
            out, scale = _C_ops.fake_channel_wise_quantize_dequantize_abs_max(
                x, self._bits, 1, self._axis)
        self._scales = scale.detach()
        return out

    def qparams(self) -> QParams:
        self._ref.load_state({"scale": self._scales.numpy()})
        return self._ref.qparams()

    def scales(self) -> paddle.Tensor:
        return self._scales

    def zero_points(self) -> Any:
        if self._ref.rules.symmetric_zero_points_none:
            return None
        return paddle.zeros(self._scales.shape, "float32")

    def quant_axis(self) -> int:
        return self._axis

    def bit_length(self) -> int:
        return self._bits


def _clip_value(x: paddle.Tensor, alpha: paddle.Tensor, signed: bool) -> paddle.Tensor:
    """Clip to ``[-a, a]`` (``signed``) or ``[0, a]``: ``min(max(x, lo), a)``."""
    lo = -alpha if signed else paddle.zeros_like(alpha)
    return paddle.minimum(paddle.maximum(x, lo), alpha)


class _CanonicalClip(PyLayer):
    """Exact clip to ``[lo, a]`` with the reference PACT gradients (float64 ``d alpha``)."""

    @staticmethod
    def forward(ctx: Any, x: paddle.Tensor, alpha: paddle.Tensor, signed: bool) -> paddle.Tensor:
        ctx.save_for_backward(x, alpha)
        ctx.signed = signed
        ctx.needs = _needs(x, alpha)
        return _clip_value(x, alpha, signed)

    @staticmethod
    def backward(ctx: Any, dy: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        x, alpha = ctx.saved_tensor()
        lo = -alpha if ctx.signed else paddle.zeros_like(alpha)
        upper = x >= alpha
        lower = x <= lo
        zero = paddle.zeros_like(dy)
        dx = paddle.where(upper | lower, zero, dy)
        d64 = dy.astype("float64")
        total = paddle.where(upper, d64, paddle.zeros_like(d64)).sum()
        if ctx.signed:
            total = total - paddle.where(lower, d64, paddle.zeros_like(d64)).sum()
        return _masked((dx, total.astype("float32").reshape(alpha.shape)), ctx.needs)


def _paper_pact_value(x: paddle.Tensor, alpha: paddle.Tensor, signed: bool, qmax: int
                      ) -> paddle.Tensor:
    """PACT's paper quantizer: ``round(clip(x) * qmax / a) * a / qmax``."""
    xc = _clip_value(x, alpha, signed)
    qm = paddle.full([], float(qmax), "float32")
    q = paddle.round((xc * qm) / alpha)  # paddle.round: half to even (3.3.1)
    return (q * alpha) / qm


class _CanonicalPaperPACT(PyLayer):
    """Clip, then ``round(xc * qmax / a) * a / qmax``; reference gradients (STE)."""

    @staticmethod
    def forward(ctx: Any, x: paddle.Tensor, alpha: paddle.Tensor, signed: bool,
                qmax: int) -> paddle.Tensor:
        ctx.save_for_backward(x, alpha)
        ctx.signed = signed
        ctx.needs = _needs(x, alpha)
        return _paper_pact_value(x, alpha, signed, qmax)

    @staticmethod
    def backward(ctx: Any, dy: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        return _CanonicalClip.backward(ctx, dy)


class PACTQuanterLayer(_RefquantQuanterLayer):
    """PACT clip with a learnable ``alpha`` in front of an inner quanter."""

    def __init__(self, layer: Any = None, quanter: Any = None, init_value: float = 100.0,
                 learning_rate: float = 1000.0, dtype: str = "float32",
                 name: str | None = None, *, profile: Profile | ProfileRules = "canonical",
                 signed: bool = False, quant_bits: int = 8) -> None:
        super().__init__()
        self._who = f"{type(self).__name__} of {layer_label(layer)}"
        quanter = _inner_factory(quanter, profile)
        self.quanter = None if quanter is None else quanter._instance(layer)
        inner_ref = getattr(self.quanter, "_ref", None)
        self._ref = _RefPACT(inner_ref, init_value, learning_rate, dtype, name,
                             profile=profile, signed=signed, quant_bits=quant_bits)
        self._ops = _PACTOps(profile=self._ref.rules)
        self.alpha = self.create_parameter(
            list(self._ref.rules.per_tensor_scale_shape), dtype="float32",
            attr=paddle.ParamAttr(learning_rate=float(learning_rate)),
            default_initializer=paddle.nn.initializer.Constant(float(init_value)))
        self._signed = bool(signed)
        self._qbits = int(quant_bits)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if _tracing():
            _check_traced_input(x, self._who)
            return self._ops.forward(self, x)
        _check_input(x, self._who)
        _check_finite_for(self._ref.rules, x, self._who)
        return self._ops.forward(self, x)

    def qparams(self) -> QParams:
        if self.quanter is not None:
            return self.quanter.qparams()
        self._ref.load_state({"alpha": self.alpha.numpy()})
        return self._ref.qparams()

    def scales(self) -> paddle.Tensor:
        return self.alpha if self.quanter is None else self.quanter.scales()

    def zero_points(self) -> Any:
        return None if self.quanter is None else self.quanter.zero_points()

    def quant_axis(self) -> int:
        return -1 if self.quanter is None else self.quanter.quant_axis()

    def bit_length(self) -> int:
        return self._qbits if self.quanter is None else self.quanter.bit_length()


class _PACTOps(ProfileVariants):
    """:class:`PACTQuanterLayer`'s clip and quantization in Paddle ops, one variant per
    profile (built from the reference quanter's rules)."""

    def __init__(self, *, profile: ProfileRules) -> None:
        pass  # stateless: the variant is the whole choice

    def forward(self, layer: PACTQuanterLayer, x: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError


class _SlimPACTOps(_PACTOps, profile=PADDLESLIM):
    def forward(self, layer: PACTQuanterLayer, x: paddle.Tensor) -> paddle.Tensor:
        """PaddleSlim's ``x - relu(x - a) + relu(-a - x)`` (Paddle's autograd), then the
        inner quanter."""
        left = paddle.nn.functional.relu(x - layer.alpha)
        right = paddle.nn.functional.relu(-layer.alpha - x)
        assert layer.quanter is not None  # required by the reference for this profile
        return layer.quanter(x - left + right)


class _CanonicalPACTOps(_PACTOps, profile=CANONICAL):
    def forward(self, layer: PACTQuanterLayer, x: paddle.Tensor) -> paddle.Tensor:
        """The exact clip with the reference's gradients, then the inner quanter or the
        paper's quantizer."""
        alpha = layer.alpha
        if not _tracing() and not float(alpha) > 0:
            raise ValueError(f"alpha of {layer._who} must be > 0 for profile={self.profile!r}, "
                             f"got {float(alpha)!r}")
        if layer.quanter is None:
            bits = layer._qbits
            qmax = 2 ** (bits - 1) - 1 if layer._signed else 2**bits - 1
            return _run(_CanonicalPaperPACT, _paper_pact_value, x, alpha, layer._signed, qmax)
        return layer.quanter(_run(_CanonicalClip, _clip_value, x, alpha, layer._signed))


# ---------------------------------------------------------------------------------------
# LSQ+
# ---------------------------------------------------------------------------------------
def _needs(*tensors: paddle.Tensor) -> tuple[bool, ...]:
    return tuple(not t.stop_gradient for t in tensors)


def _masked(grads: tuple[Any, ...], needs: tuple[bool, ...]) -> tuple[Any, ...]:
    """PyLayer must return ``None`` for inputs that do not require a gradient."""
    return tuple(g if n else None for g, n in zip(grads, needs, strict=True))


def _slim_round(v: paddle.Tensor) -> paddle.Tensor:
    """PaddleSlim's ``lsq_func.round``: ``sign(v) * floor(|v| + 0.5)``."""
    return paddle.sign(v) * paddle.floor(paddle.abs(v) + 0.5)


def _slim_alpha_terms(v: paddle.Tensor, grad: paddle.Tensor, g: paddle.Tensor, qn: int,
                      qp: int) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """``(((lower*Qn + upper*Qp) + middle*round(v)) - middle*v) * grad * g`` and the flags."""
    lower = paddle.cast(v < qn, "float32")
    upper = paddle.cast(v > qp, "float32")
    middle = 1.0 - lower - upper
    t = lower * qn + upper * qp + middle * _slim_round(v) - middle * v
    return t * grad * g, lower + upper, middle


def _slim_lsq_value(w: paddle.Tensor, alpha: paddle.Tensor, g: Any, qn: int, qp: int,
                    per_channel: bool, axis: int) -> paddle.Tensor:
    """PaddleSlim ``LsqFunc`` forward: ``clip(round(w / a), Qn, Qp) * a`` (``round`` half
    away from zero; per channel on ``reshape(shape[axis], -1)``)."""
    if per_channel:
        rows = w.reshape([w.shape[axis], -1])
        a = alpha.reshape([-1, 1])
        q = _slim_round(rows / a).clip(qn, qp)
        return (q * a).reshape(w.shape)
    return _slim_round(w / alpha).clip(qn, qp) * alpha


class _SlimLsq(PyLayer):
    """PaddleSlim's ``LsqFunc`` (per tensor, or per row of ``reshape(shape[axis], -1)``)."""

    @staticmethod
    def forward(ctx: Any, w: paddle.Tensor, alpha: paddle.Tensor, g: paddle.Tensor, qn: int,
                qp: int, per_channel: bool, axis: int) -> paddle.Tensor:
        ctx.save_for_backward(w, alpha, g)
        ctx.other = (qn, qp, per_channel, axis)
        ctx.needs = _needs(w, alpha, g)
        return _slim_lsq_value(w, alpha, g, qn, qp, per_channel, axis)

    @staticmethod
    def backward(ctx: Any, grad: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        w, alpha, g = ctx.saved_tensor()
        qn, qp, per_channel, axis = ctx.other
        if per_channel:
            v = (w.reshape([w.shape[axis], -1]) / alpha.reshape([-1, 1])).reshape(w.shape)
        else:
            v = w / alpha
        t, _, middle = _slim_alpha_terms(v, grad, g, qn, qp)
        if per_channel:
            d_alpha = t.reshape([t.shape[axis], -1]).sum(axis=1)
        else:
            d_alpha = t.sum().reshape(alpha.shape)
        return _masked((middle * grad, d_alpha, None), ctx.needs)


def _slim_lsq_plus_value(x: paddle.Tensor, alpha: paddle.Tensor, beta: paddle.Tensor, g: Any,
                         qn: int, qp: int) -> paddle.Tensor:
    """PaddleSlim ``LsqPlusActFunc`` forward: ``clip(round((x - b) / a), Qn, Qp) * a + b``."""
    return _slim_round((x - beta) / alpha).clip(qn, qp) * alpha + beta


class _SlimLsqPlus(PyLayer):
    """PaddleSlim's ``LsqPlusActFunc``: ``round((x - b) / a).clip() * a + b``."""

    @staticmethod
    def forward(ctx: Any, x: paddle.Tensor, alpha: paddle.Tensor, beta: paddle.Tensor,
                g: paddle.Tensor, qn: int, qp: int) -> paddle.Tensor:
        ctx.save_for_backward(x, alpha, beta, g)
        ctx.other = (qn, qp)
        ctx.needs = _needs(x, alpha, beta, g)
        return _slim_lsq_plus_value(x, alpha, beta, g, qn, qp)

    @staticmethod
    def backward(ctx: Any, grad: paddle.Tensor) -> tuple[paddle.Tensor, ...]:
        x, alpha, beta, g = ctx.saved_tensor()
        qn, qp = ctx.other
        t, outside, middle = _slim_alpha_terms((x - beta) / alpha, grad, g, qn, qp)
        d_beta = (outside * grad * g).sum().reshape(beta.shape)
        return _masked((middle * grad, t.sum().reshape(alpha.shape), d_beta, None), ctx.needs)


def _canonical_lsq_value(x: paddle.Tensor, s: paddle.Tensor, b: paddle.Tensor, qn: int, qp: int,
                         gscale: float, axes: Any) -> paddle.Tensor:
    """Canonical LSQ+ forward: ``clip(rint((x - b) / s), Qn, Qp) * s + b`` (half to even)."""
    return paddle.round((x - b) / s).clip(qn, qp) * s + b


class _CanonicalLsq(PyLayer):
    """Canonical LSQ/LSQ+: round half to even; STE; float64 gradient sums, rounded once.

    ``v = fl(fl(x - b) / s)``, ``y = fl(fl(clip(rint(v)) * s) + b)``; with ``u = (x - b) / s``
    in float64: ``dx = grad`` where ``Qn <= v <= Qp`` else 0, ``ds = g * sum(grad * (rint(v) -
    u | Qn | Qp))``, ``db = g * sum(grad * [v outside])`` over ``axes``.
    """

    @staticmethod
    def forward(ctx: Any, x: paddle.Tensor, s: paddle.Tensor, b: paddle.Tensor, qn: int,
                qp: int, gscale: float, axes: Any) -> paddle.Tensor:
        ctx.save_for_backward(x, s, b)
        ctx.other = (qn, qp, gscale, axes)
        ctx.needs = _needs(x, s, b)
        return _canonical_lsq_value(x, s, b, qn, qp, gscale, axes)

    @staticmethod
    def backward(ctx: Any, grad: paddle.Tensor) -> tuple[paddle.Tensor, ...]:
        x, s, b = ctx.saved_tensor()
        qn, qp, gscale, axes = ctx.other
        v = (x - b) / s
        lower, upper = v < qn, v > qp
        inside = paddle.logical_not(lower | upper)
        u = (x.astype("float64") - b.astype("float64")) / s.astype("float64")
        g64 = grad.astype("float64")
        inner = paddle.round(v).astype("float64") - u
        term = paddle.where(lower, paddle.full_like(u, float(qn)),
                            paddle.where(upper, paddle.full_like(u, float(qp)), inner)) * g64
        ds = (term.sum(axis=axes) * gscale).astype("float32").reshape(s.shape)
        db = None
        if ctx.needs[2]:
            outside = paddle.where(inside, paddle.zeros_like(g64), g64)
            db = (outside.sum(axis=axes) * gscale).astype("float32").reshape(b.shape)
        dx = paddle.where(inside, grad, paddle.zeros_like(grad))
        return _masked((dx, ds, db), ctx.needs)


class _LSQLayer(_RefquantQuanterLayer):
    """Shared state handling: parameters on the device, the reference for ``qparams``."""

    _ref: Any

    def _init_common(self) -> None:
        self._init_state = 0
        self._g: paddle.Tensor | None = None
        self._gscale = 0.0

    def _updates(self) -> bool:
        if self._init_state >= self._ref.batch_init:
            return False
        return self.training or self._ref.rules.updates_state_in_eval

    def _traced(self, x: Any) -> Any:
        """The fake quantization on the current step (and offset), statistics frozen."""
        _check_traced_input(x, self._who)
        if self._g is None:
            raise ValueError(f"{self._who}: cannot be traced before a training forward has "
                             "initialised its step size")
        return self._ops.quantize(self, x)

    def _set(self, param: paddle.Tensor, value: paddle.Tensor) -> None:
        with paddle.no_grad():
            param.set_value(value.astype(param.dtype).reshape(param.shape))

    def _ref_state(self) -> dict[str, Any]:
        st = {"scale": self.scale.numpy(), "init_state": self._init_state,
              "g": None if self._g is None else self._g.numpy()}
        return st

    def qparams(self) -> QParams:
        state = dict(self._ref.state)
        state.update(self._ref_state())
        self._ref.load_state(state)
        return self._ref.qparams()

    def scales(self) -> paddle.Tensor:
        return self.scale

    def bit_length(self) -> int:
        return int(self._ref.bits)


class WeightLSQplusQuanterLayer(_LSQLayer):
    """LSQ+ weight quanter (see the module docstring)."""

    def __init__(self, layer: Any = None, quant_bits: int = 8, sign: bool = True,
                 symmetric: bool = True, per_channel: bool = False, batch_init: int = 20,
                 quant_linear: bool = False, channel_num: int | None = None,
                 reduce_type: str | None = None, dtype: str = "float32",
                 name: str | None = None, *, quant_axis: int | None = None,
                 profile: Profile | ProfileRules = "canonical") -> None:
        super().__init__()
        self._who = f"{type(self).__name__} of {layer_label(layer)}"
        axis: int | None
        ref_axis: int | None
        if get_profile(profile).lsq_axis_from_quant_linear:
            # the reference fixes the axis; the layer's own axis is not used
            axis, ref_axis = (1 if quant_linear else 0), None
        else:
            axis = quant_axis
            if per_channel and axis is None and layer is not None:
                axis = weight_axis(layer)
            if per_channel and axis is None:
                axis = 1 if quant_linear else 0
            ref_axis = axis
        if per_channel and channel_num is None and layer is not None:
            channel_num = int(layer.weight.shape[axis])
        self._ref = _RefWeightLSQ(quant_bits, sign, symmetric, per_channel, batch_init,
                                  quant_linear, channel_num, reduce_type, dtype, name,
                                  quant_axis=ref_axis, profile=profile)
        self._ops = _WeightLSQOps(profile=self._ref.rules)
        self._axis = int(self._ref.quant_axis)
        if per_channel:  # the channel count comes from the layer (or channel_num)
            shape = [int(channel_num) if channel_num else 1]
        else:
            shape = list(self._ref.rules.per_tensor_scale_shape)
        self.scale = self.create_parameter(
            shape, dtype="float32", default_initializer=paddle.nn.initializer.Constant(1.0))
        self._init_common()

    @property
    def weight_axis(self) -> int:
        """The weight's channel axis (read by the per-profile helper objects)."""
        return self._axis

    def forward(self, w: paddle.Tensor) -> paddle.Tensor:
        if _tracing():
            return self._traced(w)
        _check_input(w, self._who)
        _check_finite_for(self._ref.rules, w, self._who)
        if self._updates():
            self._ops.update(self, w.detach(), self._init_state == 0)
            self._init_state += 1
        elif self._g is None:
            raise ValueError(f"{self._who}: forward() in eval mode before any training forward")
        return self._ops.quantize(self, w)

    def zero_points(self) -> Any:
        return self._ops.zero_points(self)

    def quant_axis(self) -> int:
        return self._axis if self._ref.per_channel else -1


class _WeightLSQOps(ProfileVariants):
    """:class:`WeightLSQplusQuanterLayer`'s statistics, fake quantization and zero points in
    Paddle ops, one variant per profile (built from the reference quanter's rules)."""

    def __init__(self, *, profile: ProfileRules) -> None:
        pass  # stateless: the variant is the whole choice

    def update(self, layer: WeightLSQplusQuanterLayer, x: paddle.Tensor, first: bool) -> None:
        """Update ``layer.scale`` (and set ``layer._g`` on the first call) from weight ``x``."""
        raise NotImplementedError

    def quantize(self, layer: WeightLSQplusQuanterLayer, w: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError

    def zero_points(self, layer: WeightLSQplusQuanterLayer) -> Any:
        raise NotImplementedError


class _SlimWeightLSQOps(_WeightLSQOps, profile=PADDLESLIM):
    def update(self, layer: WeightLSQplusQuanterLayer, x: paddle.Tensor, first: bool) -> None:
        """PaddleSlim's ``collect_gaussian`` (:mod:`refquant.quanters.lsq`)."""
        ref = layer.reference
        if first:
            layer._g = paddle.to_tensor(1.0 / math.sqrt(int(x.size) * ref.qmax),
                                        dtype="float32")
        div = 2**8 - 1
        if ref.per_channel:
            rows = x.reshape([x.shape[0], -1])
            mean = paddle.mean(rows, axis=ref._collect_axis)
            std = dev.std(rows, axis=ref._collect_axis)
            m = paddle.max(paddle.stack([paddle.abs(mean - 3 * std),
                                         paddle.abs(mean + 3 * std)]), axis=0)
            new = m / div if first else m * 0.9 + 0.1 * m / div
        else:
            mean, std = paddle.mean(x), dev.std(x)
            lo, hi = paddle.abs(mean - 3 * std), paddle.abs(mean + 3 * std)
            m = hi if bool(hi > lo) else lo  # Python max([lo, hi])
            new = m / div if first else layer.scale * 0.9 + 0.1 * m / div
        layer._set(layer.scale, new)

    def quantize(self, layer: WeightLSQplusQuanterLayer, w: paddle.Tensor) -> paddle.Tensor:
        ref = layer.reference
        return _run(_SlimLsq, _slim_lsq_value, w, layer.scale, layer._g, ref.qmin, ref.qmax,
                    ref.per_channel, layer.weight_axis)

    def zero_points(self, layer: WeightLSQplusQuanterLayer) -> Any:
        return 0


class _CanonicalWeightLSQOps(_WeightLSQOps, profile=CANONICAL):
    def update(self, layer: WeightLSQplusQuanterLayer, x: paddle.Tensor, first: bool) -> None:
        """The 3-sigma estimate in float64, then its moving average (the reference's)."""
        ref, axis = layer.reference, layer.weight_axis
        x64 = x.astype("float64")
        if ref.per_channel:
            perm = [axis] + [d for d in range(x.ndim) if d != axis]
            flat = x64.transpose(perm).reshape([x.shape[axis], -1])
        else:
            flat = x64.reshape([1, -1])
        if flat.shape[1] < 2:
            raise ValueError(f"{layer._who}: x needs at least 2 elements per scale")
        mean = flat.mean(axis=1)
        std = dev.std(flat, axis=1)
        bound = paddle.maximum(paddle.abs(mean - 3 * std), paddle.abs(mean + 3 * std))
        if bool((bound == 0).any()):
            raise ValueError(f"{layer._who}: cannot initialise the step size: a channel "
                             "is constant 0")
        est = bound / 2 ** (ref.quant_bits - 1)
        if first:
            numel = int(x.size) // (int(x.shape[axis]) if ref.per_channel else 1)
            layer._gscale = 1.0 / math.sqrt(numel * ref.qmax)
            layer._g = paddle.to_tensor(layer._gscale, dtype="float32")
            new64 = est
        else:
            new64 = 0.9 * layer.scale.astype("float64").reshape([-1]) + 0.1 * est
        layer._set(layer.scale, new64)

    def quantize(self, layer: WeightLSQplusQuanterLayer, w: paddle.Tensor) -> paddle.Tensor:
        ref = layer.reference
        if ref.per_channel:
            shape = [1] * w.ndim
            shape[layer.weight_axis] = -1
            s = layer.scale.reshape(shape)
            axes = [d for d in range(w.ndim) if d != layer.weight_axis]
        else:
            s, axes = layer.scale, None
        zero = paddle.zeros([], "float32")
        return _run(_CanonicalLsq, _canonical_lsq_value, w, s, zero, ref.qmin, ref.qmax,
                    float(np.float32(layer._gscale)), axes)

    def zero_points(self, layer: WeightLSQplusQuanterLayer) -> Any:
        return paddle.zeros(layer.scale.shape)


class ActLSQplusQuanterLayer(_LSQLayer):
    """LSQ+ activation quanter (see the module docstring)."""

    def __init__(self, layer: Any = None, quant_bits: int = 8, sign: bool = True,
                 symmetric: bool = True, per_channel: bool = False, batch_init: int = 20,
                 quant_linear: bool = False, reduce_type: str | None = None,
                 dtype: str = "float32", name: str | None = None, *,
                 profile: Profile | ProfileRules = "canonical") -> None:
        super().__init__()
        self._who = f"{type(self).__name__} of {layer_label(layer)}"
        self._ref = _RefActLSQ(quant_bits, sign, symmetric, per_channel, batch_init,
                               quant_linear, reduce_type, dtype, name, profile=profile)
        self._ops = _ActLSQOps(profile=self._ref.rules)
        shape = list(self._ref.rules.per_tensor_scale_shape)
        self.scale = self.create_parameter(
            shape, dtype="float32", default_initializer=paddle.nn.initializer.Constant(1.0))
        self.beta = self.create_parameter(
            shape, dtype="float32", default_initializer=paddle.nn.initializer.Constant(0.0))
        if symmetric:
            self.beta.stop_gradient = True
        self._init_common()

    def _update(self, x: paddle.Tensor) -> None:
        first = self._init_state == 0
        if first:
            self._gscale = 1.0 / math.sqrt(int(x.size) * self._ref.qmax)
            self._g = paddle.to_tensor(self._gscale, dtype="float32")
        lo, hi = paddle.min(x.detach()), paddle.max(x.detach())
        self._ops.update(self, lo, hi, first)
        self._init_state += 1

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if _tracing():
            return self._traced(x)
        _check_input(x, self._who)
        _check_finite_for(self._ref.rules, x, self._who)
        if self._updates():
            self._update(x)
        elif self._g is None:
            raise ValueError(f"{self._who}: forward() in eval mode before any training forward")
        return self._ops.quantize(self, x)

    def _ref_state(self) -> dict[str, Any]:
        st = super()._ref_state()
        st["beta"] = self.beta.numpy()
        return st

    def zero_points(self) -> Any:
        return self._ops.zero_points(self)

    def quant_axis(self) -> int:
        return -1


class _ActLSQOps(ProfileVariants):
    """:class:`ActLSQplusQuanterLayer`'s statistics, fake quantization and zero points in
    Paddle ops, one variant per profile (built from the reference quanter's rules)."""

    def __init__(self, *, profile: ProfileRules) -> None:
        pass  # stateless: the variant is the whole choice

    def update(self, layer: ActLSQplusQuanterLayer, lo: paddle.Tensor, hi: paddle.Tensor,
               first: bool) -> None:
        """Set ``layer.scale`` and ``layer.beta`` from the batch's ``min`` / ``max``."""
        raise NotImplementedError

    def quantize(self, layer: ActLSQplusQuanterLayer, x: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError

    def zero_points(self, layer: ActLSQplusQuanterLayer) -> Any:
        raise NotImplementedError


class _SlimActLSQOps(_ActLSQOps, profile=PADDLESLIM):
    def update(self, layer: ActLSQplusQuanterLayer, lo: paddle.Tensor, hi: paddle.Tensor,
               first: bool) -> None:
        """PaddleSlim's float32 updates; the beta EMA is seeded with the new scale."""
        ref = layer.reference
        width = ref.qmax - ref.qmin
        if first:
            s = (hi - lo) / width
        else:
            s = layer.scale.reshape([]) * 0.9 + 0.1 * (hi - lo) / width
        layer._set(layer.scale, s)
        if not ref.symmetric:
            s_now = layer.scale.reshape([])
            if first:
                b = lo - s_now * ref.qmin
            else:
                b = s_now * 0.9 + 0.1 * (lo - s_now * ref.qmin)
            layer._set(layer.beta, b)

    def quantize(self, layer: ActLSQplusQuanterLayer, x: paddle.Tensor) -> paddle.Tensor:
        ref = layer.reference
        if ref.symmetric:
            return _run(_SlimLsq, _slim_lsq_value, x, layer.scale, layer._g, ref.qmin,
                        ref.qmax, False, 0)
        return _run(_SlimLsqPlus, _slim_lsq_plus_value, x, layer.scale, layer.beta, layer._g,
                    ref.qmin, ref.qmax)

    def zero_points(self, layer: ActLSQplusQuanterLayer) -> Any:
        layer.qparams()  # brings the reference up to date
        return layer.reference.zero_points()


class _CanonicalActLSQOps(_ActLSQOps, profile=CANONICAL):
    def update(self, layer: ActLSQplusQuanterLayer, lo: paddle.Tensor, hi: paddle.Tensor,
               first: bool) -> None:
        """The reference's estimates and moving average, in float64."""
        ref = layer.reference
        lo64, hi64 = float(lo), float(hi)
        if ref.symmetric:
            s_new, b_new = max(abs(lo64), abs(hi64)) / ref.qmax, 0.0
        else:
            s_new = (hi64 - lo64) / (ref.qmax - ref.qmin)
            b_new = lo64 - s_new * ref.qmin
        if s_new == 0.0:
            raise ValueError(f"{layer._who}: cannot initialise the step size: x is all zeros")
        if not first:
            s_new = 0.9 * float(layer.scale) + 0.1 * s_new
            b_new = 0.9 * float(layer.beta) + 0.1 * b_new
        layer._set(layer.scale, paddle.to_tensor(s_new, dtype="float64"))
        layer._set(layer.beta, paddle.to_tensor(b_new, dtype="float64"))

    def quantize(self, layer: ActLSQplusQuanterLayer, x: paddle.Tensor) -> paddle.Tensor:
        ref = layer.reference
        return _run(_CanonicalLsq, _canonical_lsq_value, x, layer.scale, layer.beta, ref.qmin,
                    ref.qmax, float(np.float32(layer._gscale)), None)

    def zero_points(self, layer: ActLSQplusQuanterLayer) -> Any:
        return paddle.to_tensor(np.asarray(layer.qparams().zero_point, np.float32))


def _inner_factory(quanter: Any, profile: Profile | ProfileRules) -> _Factory | None:
    """PACT's inner quanter factory: one of this module's, or Paddle's / PaddleSlim's factory
    of the same name (``paddle.quantization.quanters.FakeQuanterWithAbsMaxObserver``,
    ``paddleslim.quant.quanters.ActLSQplusQuanter``, ...) rebuilt as this module's with the
    same arguments and PACT's profile."""
    if quanter is None:
        return None
    if isinstance(quanter, type):
        raise class_instead_of_factory("quanter", quanter, _INNER_KIND)
    if isinstance(quanter, _Factory):
        return quanter
    cls = type(quanter)
    same = _FOREIGN_INNER.get(cls.__name__)
    if same is not None and cls.__module__.startswith(("paddle.quantization.",
                                                        "paddleslim.quant.")):
        return same(*quanter.args, **quanter.kwargs, profile=profile)
    raise TypeError(f"quanter must be {_INNER_KIND} or None, got {cls.__module__}."
                    f"{cls.__name__} ({quanter!r})")


class _Factory(QuanterFactory):
    _layer: type = _RefquantQuanterLayer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_signature(type(self).__name__, self._layer, (None, *args), kwargs)
        self._layer(None, *args, **kwargs)  # validates the arguments now

    def _get_class(self) -> type:
        return self._layer

    def _instance(self, layer: Any) -> Any:
        return self._layer(layer, *self.args, **self.kwargs)


class FakeQuanterWithAbsMaxObserver(_Factory):
    """FakeQuanterWithAbsMaxObserver(moving_rate=0.9, bit_length=8, *, profile='canonical')."""

    _layer = FakeQuanterWithAbsMaxObserverLayer


class FakeQuanterChannelWiseAbsMaxObserver(_Factory):
    """FakeQuanterChannelWiseAbsMaxObserver(bit_length=8, *, quant_axis=None, profile=...)."""

    _layer = FakeQuanterChannelWiseAbsMaxObserverLayer


class PACTQuanter(_Factory):
    """PACTQuanter(quanter=None, init_value=100., learning_rate=1000., *, profile=...)."""

    _layer = PACTQuanterLayer


class WeightLSQplusQuanter(_Factory):
    """WeightLSQplusQuanter(quant_bits=8, sign=True, symmetric=True, per_channel=False,
    batch_init=20, quant_linear=False, channel_num=None, ..., *, quant_axis=None, profile=...).
    """

    _layer = WeightLSQplusQuanterLayer


class ActLSQplusQuanter(_Factory):
    """ActLSQplusQuanter(quant_bits=8, sign=True, symmetric=True, per_channel=False,
    batch_init=20, ..., *, profile=...)."""

    _layer = ActLSQplusQuanterLayer


#: PACT's inner quanters: Paddle's / PaddleSlim's factories by name -> this module's
_INNER_KIND = ("a refquant.adapters.paddle.quanters factory instance (or Paddle's / "
               "PaddleSlim's FakeQuanterWithAbsMaxObserver, FakeQuanterChannelWiseAbsMaxObserver,"
               " WeightLSQplusQuanter, ActLSQplusQuanter)")
_FOREIGN_INNER: dict[str, type[_Factory]] = {
    f.__name__: f for f in (FakeQuanterWithAbsMaxObserver, FakeQuanterChannelWiseAbsMaxObserver,
                            WeightLSQplusQuanter, ActLSQplusQuanter)
}
