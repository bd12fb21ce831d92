"""Moving-average abs-max fake quanter (Paddle's ``FakeQuanterWithAbsMaxObserver``).

Matches PaddlePaddle/Paddle ``python/paddle/quantization/quanters/abs_max.py``
(``FakeQuanterWithAbsMaxObserverLayer``), which runs the
``fake_quantize_dequantize_moving_average_abs_max`` kernel with ``round_type=1``. Per
training call, in float32::

    cur   = max|x|                                   (CPU max_element semantics)
    state = fl(fl(rate * state) + 1)
    accum = fl(fl(rate * accum) + cur)
    S     = fl(accum / state)
    y     = paddle_qdq_round1(x, S, 2^(bits-1) - 1)  (clip to [-S, S], then quantize)

In evaluation mode the stored ``S`` is used and nothing is updated (canonical: an error before
the first training call, when there is no observed ``S``). The gradient is the
straight-through estimator: ``dx = dy`` everywhere (measured: no mask at saturation).

Profiles
--------
One class for every profile; the rules (:class:`refquant.profiles.ProfileRules`) decide:

``moving_average_init``
    ``paddleslim``: the layer's initial values ``scale = 0.001, state = 1, accum = 1``. The
    first scale is therefore ``(0.9 + max|x|) / 1.9``, not ``max|x|``. ``canonical``:
    ``state = accum = 0`` initially, so after ``n`` steps ``S`` is the bias-corrected
    exponential moving average ``sum(r^(n-i) a_i) / sum(r^(n-i))`` of the abs-max values (the
    first scale is exactly ``max|x|``).
``drops_nonfinite``
    With ``ignore_nonfinite=True``: canonical drops NaN/Inf from the statistic; paddleslim
    runs Paddle's ``FindAbsMaxFunctor`` on them.
``requires_observed_scale``
    canonical: the scale cannot be read (``scales()``, ``qparams()``, an evaluation-mode
    ``forward``) before the first training ``forward``.
``symmetric_zero_points_none``
    paddleslim: ``zero_points()`` is ``None``, as Paddle's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_bits, check_flag
from ..profiles import ProfileRules
from ..qparams import QParams
from ._common import (
    F32,
    Profile,
    QuanterBase,
    check_dtype_arg,
    check_name_arg,
    check_real_arg,
    moving_average_update,
    paddle_abs_max,
    paddle_qdq_round1,
    state_array,
)

__all__ = ["FakeQuanterWithAbsMaxObserver"]


class FakeQuanterWithAbsMaxObserver(QuanterBase):
    """Moving-average abs-max quantize-dequantize with a straight-through gradient.

    Parameters
    ----------
    moving_rate, bit_length, dtype, name:
        As in Paddle (``dtype`` must be ``'float32'``; ``name`` is kept for reference).
    profile:
        ``"canonical"`` (default) or ``"paddleslim"`` (see the module docstring).
    ignore_nonfinite:
        NaN/Inf in ``x`` raise ``ValueError`` by default. With ``True``: canonical drops them
        from the abs-max (NaN outputs stay NaN, +-Inf saturate); paddleslim reproduces the
        CPU kernel (a NaN at flat index 0 makes ``S`` NaN, other NaNs are skipped).
    """

    def __init__(
        self,
        moving_rate: float = 0.9,
        bit_length: int = 8,
        dtype: str = "float32",
        name: str | None = None,
        *,
        profile: Profile | ProfileRules = "canonical",
        ignore_nonfinite: bool = False,
    ) -> None:
        super().__init__(profile)
        rate = check_real_arg(moving_rate, "moving_rate", 0.0, 1.0, low_open=True,
                              high_open=True)
        check_dtype_arg(dtype)
        self.moving_rate = F32(rate)
        self.bit_length = check_bits(bit_length, "bit_length")
        self.name = check_name_arg(name)
        self.ignore_nonfinite = check_flag(ignore_nonfinite, "ignore_nonfinite")
        init = self.rules.moving_average_init
        self._state = {
            "scale": np.array([0.001], F32),
            "state": np.array([init], F32),
            "accum": np.array([init], F32),
        }

    @property
    def bin_cnt(self) -> int:
        """``2^(bit_length-1) - 1``, the kernel's ``qmax``."""
        return 2 ** (self.bit_length - 1) - 1

    def _abs_max(self, x: np.ndarray) -> np.float32:
        if not self.rules.drops_nonfinite:
            return paddle_abs_max(x)
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            raise ValueError("x has no finite values to take the abs-max of")
        return F32(np.max(np.abs(finite)))

    def forward(self, x: Any) -> np.ndarray:
        """Quantize-dequantize ``x`` (updating ``state``/``accum``/``scale`` when training)."""
        arr = self._check_x(x, allow_nonfinite=self.ignore_nonfinite)
        if not self.training:
            self._require_forward("forward")  # eval mode: canonical needs an observed scale
        if self.training:
            st = self._state
            state, accum, scale = moving_average_update(
                st["state"][0], st["accum"][0], self._abs_max(arr), self.moving_rate
            )
            self._state = {
                "scale": np.array([scale], F32),
                "state": np.array([state], F32),
                "accum": np.array([accum], F32),
            }
        return paddle_qdq_round1(arr, self._state["scale"][0], self.bin_cnt)

    __call__ = forward

    def backward(self, x: Any, grad_y: Any) -> dict[str, np.ndarray]:
        """Straight-through gradient: ``{"x": grad_y}`` (float32 copy)."""
        arr = self._check_x(x, allow_nonfinite=self.ignore_nonfinite)
        return {"x": self._check_grad(arr, grad_y)}

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """``scale``, ``state``, ``accum``: float32 of shape ``(1,)``, finite and ``>= 0``
        (paddleslim with ``ignore_nonfinite``: NaN / +inf allowed, as its kernel makes them)."""
        loose = self.ignore_nonfinite and not self.rules.drops_nonfinite
        return {k: state_array(state[k], k, (1,), allow_nonfinite=loose)
                for k in ("scale", "state", "accum")}

    def _require_forward(self, method: str) -> None:
        """``ValueError`` before the first training ``forward`` (``state == 0``) where the
        rules have ``requires_observed_scale`` (canonical): the initial 0.001 is Paddle's
        placeholder, not a scale of any data."""
        if self.rules.requires_observed_scale and not self._state["state"][0] > 0:
            raise ValueError(f"{self.public_name}.{method}() called before forward(): no "
                             "scale has been observed yet")

    def scales(self) -> np.ndarray:
        """Paddle's ``scales()``: the threshold ``S`` (shape ``(1,)``). canonical: raises
        ``ValueError`` before the first training ``forward``."""
        self._require_forward("scales")
        return self._state["scale"].copy()

    def zero_points(self) -> np.ndarray | None:
        """Paddle returns ``None`` (paddleslim); canonical: the zero point 0 as an array."""
        return None if self.rules.symmetric_zero_points_none else np.zeros(1, np.int64)

    def qparams(self) -> QParams:
        """Symmetric threshold parameters: ``S``, zero point 0, grid ``[-qmax, qmax]``.

        Paddle's ``zero_points()`` returns ``None``; the grid's lower bound is ``-qmax``
        because ``round_type=1`` clips before rounding. canonical: ``ValueError`` before the
        first training ``forward`` (paddleslim reports Paddle's initial 0.001).
        """
        self._require_forward("qparams")
        qmax = self.bin_cnt
        return QParams(self._state["scale"].reshape(()), np.zeros((), np.int64), -qmax, qmax,
                       self.bit_length, None, convention="threshold")
