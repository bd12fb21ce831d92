"""PACT: parameterized clipping activation (Choi et al., 2018, arXiv:1805.06085).

One variant per profile (:class:`refquant.profiles.ProfileVariants`; ``PACTQuanter(...,
profile=p)`` builds it); the rules decide the shape of ``alpha`` (``per_tensor_scale_shape``)
and whether it must be positive (``requires_positive_init``).

``paddleslim`` profile: PaddlePaddle/PaddleSlim ``paddleslim/quant/quanters/pact.py``
(``PACTQuanterLayer``). The clip is symmetric and built from two ReLUs, evaluated in float32
as::

    L  = relu(fl(x - a));  R = relu(fl(fl(-a) - x))
    xc = fl(fl(x - L) + R)                    # == clip(x, -a, a) up to float32 rounding
    y  = inner_quanter(xc)

Autograd through those ops gives, with ``d = inner.backward(xc, dy)["x"]``::

    up = fl(x - a) > 0;  lo = fl(-a - x) > 0  (both can hold when a < 0)
    dx = -d where up and lo, +0 where exactly one holds, else d  (then -0.0 -> +0.0)
    da = seq(d * up) - seq(d * lo)            (seq: sequential float32 sum from +0, the
                                               order of Paddle's broadcast-gradient reduction)

``canonical`` profile: PACT as published. Unsigned activations (the default) are clipped to
``[0, a]``, signed ones (``signed=True``) to ``[-a, a]``, both exactly (``np.clip``), and
``a <= 0`` is an error. Without an inner quanter the clipped value is quantized with ``a`` as
the threshold on a ``quant_bits`` grid (``qmax = 2^b - 1`` unsigned, ``2^(b-1) - 1``
signed)::

    q  = round_half_even(fl(fl(xc * qmax) / a));   y = fl(fl(q * a) / qmax)

Gradients (straight-through through the rounding): ``dx = d`` strictly inside the clip
range and 0 outside; ``da = sum(d[x >= a]) - sum(d[x <= -a])`` (signed) in float64, rounded
once to float32.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._validation import check_bits, check_flag
from ..profiles import CANONICAL, PADDLESLIM, ProfileRules
from ..qparams import QParams
from ._common import (
    F32,
    Profile,
    QuanterBase,
    check_dtype_arg,
    check_name_arg,
    check_real_arg,
    sequential_sum,
    state_array,
)

__all__ = ["PACTQuanter"]


class PACTQuanter(QuanterBase):
    """PACT clipping in front of an inner quanter, with a learnable clip value ``alpha``.

    Parameters
    ----------
    quanter:
        The inner refquant quanter (e.g. :class:`FakeQuanterWithAbsMaxObserver`). Required by
        ``paddleslim``; ``None`` in ``canonical`` selects the paper's quantizer on
        ``[0, alpha]``.
    init_value:
        Initial alpha. PaddleSlim's factory default is 100 (its layer class alone defaults to
        1000; the factory is what users call).
    learning_rate, dtype, name:
        Kept for API compatibility (``learning_rate`` is an optimiser multiplier: it does not
        change gradients). ``dtype`` must be ``'float32'``.
    signed, quant_bits:
        Canonical only: symmetric clip for signed activations; bit width of the paper's
        quantizer.
    """

    #: the variant needs an inner quanter (it has no quantizer of its own)
    requires_quanter: ClassVar[bool]

    def __init__(
        self,
        quanter: QuanterBase | None = None,
        init_value: float = 100.0,
        learning_rate: float = 1000.0,
        dtype: str = "float32",
        name: str | None = None,
        *,
        profile: Profile | ProfileRules = "canonical",
        signed: bool = False,
        quant_bits: int = 8,
    ) -> None:
        super().__init__(profile)
        if quanter is not None and not isinstance(quanter, QuanterBase):
            raise TypeError(f"quanter must be a refquant quanter, got {type(quanter).__name__}")
        if quanter is None and self.requires_quanter:
            raise TypeError(f"quanter is required for profile={self.profile!r}")
        if quanter is not None and quanter.rules is not self.rules:
            raise ValueError(
                f"quanter has profile={quanter.profile!r}, this PACTQuanter {self.profile!r}"
            )
        positive = self.rules.requires_positive_init
        init = check_real_arg(init_value, "init_value", 0.0 if positive else None,
                              low_open=True)
        with np.errstate(over="ignore"):
            if not np.isfinite(F32(init)):
                raise ValueError(f"init_value={init_value!r} is beyond the float32 range")
        self.learning_rate = check_real_arg(learning_rate, "learning_rate", 0.0)
        check_dtype_arg(dtype)
        self.quanter = quanter
        self.name = check_name_arg(name)
        self.signed = check_flag(signed, "signed")
        self.quant_bits = check_bits(quant_bits, "quant_bits")
        self._state = {"alpha": np.full(self.rules.per_tensor_scale_shape, init, F32)}

    # -- state (alpha plus the inner quanter's, prefixed "quanter.") -----------------
    @property
    def state(self) -> dict[str, Any]:
        out = {"alpha": self._state["alpha"].copy()}
        if self.quanter is not None:
            out.update({f"quanter.{k}": v for k, v in self.quanter.state.items()})
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace ``alpha`` (float32 of the current shape, finite; ``> 0`` canonical) and the
        inner quanter's state (keys ``quanter.<key>``). Nothing changes on an error."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        if "alpha" not in state:
            raise ValueError(f"state must have an 'alpha' entry, got keys {sorted(state)}")
        extra = [k for k in state if k != "alpha" and not (
            self.quanter is not None and isinstance(k, str) and k.startswith("quanter."))]
        if extra:
            raise ValueError(f"state keys do not match: unexpected {sorted(map(str, extra))}")
        inner = {k[len("quanter."):]: v for k, v in state.items() if k != "alpha"}
        alpha = state_array(state["alpha"], "alpha", self._state["alpha"].shape,
                            sign="positive" if self.rules.requires_positive_init else "any")
        if self.quanter is not None:
            self.quanter.load_state(inner)
        self._state = {"alpha": alpha}

    def train(self) -> None:
        super().train()
        if self.quanter is not None:
            self.quanter.train()

    def eval(self) -> None:
        super().eval()
        if self.quanter is not None:
            self.quanter.eval()

    # -- clip and grid ---------------------------------------------------------------
    @property
    def alpha(self) -> np.float32:
        return F32(self._state["alpha"].reshape(()))

    @property
    def _grid_qmax(self) -> int:
        return 2 ** (self.quant_bits - 1) - 1 if self.signed else 2**self.quant_bits - 1

    def _clip(self, x: np.ndarray) -> np.ndarray:
        """The clipped activation (the profile's variant)."""
        raise NotImplementedError

    def _clip_grads(self, x: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(dx, d alpha)`` of the clip for the gradient ``d`` of its output."""
        raise NotImplementedError

    def _paper_quantize(self, xc: np.ndarray) -> np.ndarray:
        a, qmax = self.alpha, F32(self._grid_qmax)
        q = np.rint(((xc * qmax).astype(F32) / a).astype(F32))
        return ((q * a).astype(F32) / qmax).astype(F32)

    # -- API -------------------------------------------------------------------------
    def clip(self, x: Any) -> np.ndarray:
        """The clipped activation the inner quanter receives (see the module docstring)."""
        return self._clip(self._check_x(x))

    def forward(self, x: Any) -> np.ndarray:
        """Clip ``x`` with alpha, then quantize it (the inner quanter updates its state)."""
        arr = self._check_x(x)
        xc = self._clip(arr)
        if self.quanter is None:
            return self._paper_quantize(xc)
        return self.quanter.forward(xc)

    __call__ = forward

    def backward(self, x: Any, grad_y: Any) -> dict[str, np.ndarray]:
        """Gradients ``{"x", "alpha", "quanter.<name>"...}`` for upstream gradient ``grad_y``."""
        arr = self._check_x(x)
        g = self._check_grad(arr, grad_y)
        xc = self._clip(arr)
        out: dict[str, np.ndarray] = {}
        if self.quanter is None:
            d = g
        else:
            inner = self.quanter.backward(xc, g)
            d = inner.pop("x")
            out.update({f"quanter.{k}": v for k, v in inner.items()})
        dx, out["alpha"] = self._clip_grads(arr, d)
        out["x"] = dx
        return out

    def scales(self) -> np.ndarray:
        """PaddleSlim: the inner quanter's scales (not alpha). Canonical without an inner
        quanter: alpha."""
        if self.quanter is None:
            return self._state["alpha"].copy()
        return self.quanter.scales()

    def qparams(self) -> QParams:
        """The inner quanter's parameters (PaddleSlim) or alpha as the threshold."""
        if self.quanter is not None:
            return self.quanter.qparams()  # type: ignore[no-any-return]
        qmax = self._grid_qmax
        qmin = -qmax if self.signed else 0
        return QParams(self._state["alpha"], np.zeros((), np.int64), qmin, qmax,
                       self.quant_bits, None, convention="threshold")


class _SlimPACT(PACTQuanter, profile=PADDLESLIM):
    requires_quanter = True  # PaddleSlim's layer has no quantizer of its own

    def _clip(self, x: np.ndarray) -> np.ndarray:
        """``fl(fl(x - L) + R)`` with ``L = relu(fl(x - a))``, ``R = relu(fl(fl(-a) - x))``."""
        a = self.alpha
        left = np.maximum((x - a).astype(F32), F32(0.0))
        right = np.maximum((F32(-a) - x).astype(F32), F32(0.0))
        return ((x - left).astype(F32) + right).astype(F32)

    def _clip_grads(self, x: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Paddle's autograd through the two ReLUs (module docstring)."""
        a = self.alpha
        zero = F32(0.0)
        upper = (x - a).astype(F32) > 0  # relu(x - a) active
        lower = (F32(-a) - x).astype(F32) > 0  # relu(-a - x) active
        # Three autograd paths into x: d, -d (upper), -d (lower); +0.0 maps -0.0 to +0.0.
        dx = np.where(upper & lower, -d, np.where(upper | lower, zero, d))
        dx = (dx + zero).astype(F32)
        s_up = sequential_sum(np.where(upper, d, zero))
        s_lo = sequential_sum(np.where(lower, d, zero))
        return dx, np.array([F32(s_up + F32(-s_lo))], F32)


class _CanonicalPACT(PACTQuanter, profile=CANONICAL):
    requires_quanter = False  # without one, the paper's quantizer on [0, alpha]

    def _clip(self, x: np.ndarray) -> np.ndarray:
        """``clip(x, lo, a)`` exactly, ``lo = -a`` signed, else 0 (``a > 0`` required)."""
        a = self.alpha
        if not a > 0:
            raise ValueError(f"alpha must be > 0 for profile={self.profile!r}, got {a!r}")
        lo = -a if self.signed else F32(0.0)
        return np.minimum(np.maximum(x, lo), a).astype(F32)

    def _clip_grads(self, x: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``dx = d`` strictly inside, 0 outside; ``d alpha`` summed in float64, rounded once."""
        a = self.alpha
        lo = -a if self.signed else F32(0.0)
        upper = x >= a
        lower = x <= lo
        dx = np.where(upper | lower, F32(0.0), d).astype(F32)
        total = np.sum(d[upper], dtype=np.float64)
        if self.signed:
            total -= np.sum(d[lower], dtype=np.float64)
        return dx, np.array(total, F32)
