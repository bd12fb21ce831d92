"""Channel-wise abs-max fake quanter (PaddleSlim's ``FakeQuanterChannelWiseAbsMaxObserver``).

Matches PaddlePaddle/PaddleSlim ``paddleslim/quant/quanters/channel_wise_abs_max.py``, which
runs Paddle's ``fake_channel_wise_quantize_dequantize_abs_max`` kernel (``round_type=1``).
Per call::

    S_c = max |x[..., c, ...]|                 (per channel along quant_axis)
    y   = paddle_qdq_round1(x, S_c, 2^(bits-1) - 1)

and the layer's scale parameter (initialised to 0.001) is *overwritten* by ``S_c`` on every
call: no averaging, although PaddleSlim's docstring says "average". A zero channel gets
``S = 0`` and outputs 0 (the kernel clips x to ``[-0, 0]`` first). The gradient is the
straight-through estimator ``dx = dy``.

Profiles
--------
One class for every profile; the rules (:class:`refquant.profiles.ProfileRules`) decide.
``paddleslim``: ``quant_axis`` 0 (Conv2D weights) or 1 (Linear weights) only, as the kernel
(``channel_axes``); input rank >= 2 (``channel_min_ndim``); the op runs in the FTZ/DAZ mode
of ``paddle._legacy_C_ops`` (``flush_subnormal_scales``: subnormal inputs act as zeros,
subnormal results and scales are flushed); ``zero_points()`` is ``None``. ``canonical``: any
axis of any rank >= 1, no flushing; the same current-abs-max scale (the right statistic for
weights, which is what this quanter is for); non-finite values can be dropped from the
statistic with ``ignore_nonfinite=True`` (``drops_nonfinite``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_axis, check_bits, check_flag, check_int
from ..kernels.paddle import channel_abs_max
from ..profiles import ProfileRules
from ..qparams import QParams
from ._common import (
    F32,
    Profile,
    QuanterBase,
    check_dtype_arg,
    check_name_arg,
    paddle_qdq_round1,
    state_array,
)

__all__ = ["FakeQuanterChannelWiseAbsMaxObserver"]


class FakeQuanterChannelWiseAbsMaxObserver(QuanterBase):
    """Per-channel abs-max quantize-dequantize with a straight-through gradient.

    Parameters
    ----------
    bit_length, dtype, name:
        As in PaddleSlim (``dtype`` must be ``'float32'``).
    quant_axis:
        The channel axis. PaddleSlim derives it from the layer (Conv2D: 0, Linear: 1); here it
        is given directly. ``paddleslim`` accepts 0 or 1 only.
    profile, ignore_nonfinite:
        See the module docstring and :class:`FakeQuanterWithAbsMaxObserver`.
    """

    def __init__(
        self,
        bit_length: int = 8,
        dtype: str = "float32",
        name: str | None = None,
        *,
        quant_axis: int = 0,
        profile: Profile | ProfileRules = "canonical",
        ignore_nonfinite: bool = False,
    ) -> None:
        super().__init__(profile)
        check_dtype_arg(dtype)
        self.bit_length = check_bits(bit_length, "bit_length")
        axis = check_int(quant_axis, "quant_axis")
        axes = self.rules.channel_axes
        if axes is not None and axis not in axes:
            raise ValueError(f"quant_axis must be {' or '.join(map(str, axes))} for "
                             f"profile={self.profile!r}, got {quant_axis}")
        self.quant_axis = axis
        self.name = check_name_arg(name)
        self.ignore_nonfinite = check_flag(ignore_nonfinite, "ignore_nonfinite")
        # The channel count is fixed by the first forward (PaddleSlim: by the layer's weight).
        self._state = {"scale": np.zeros(0, F32)}

    @property
    def bin_cnt(self) -> int:
        return 2 ** (self.bit_length - 1) - 1

    def _checked(self, x: Any) -> tuple[np.ndarray, int]:
        arr = self._check_x(x, allow_nonfinite=self.ignore_nonfinite,
                            min_ndim=self.rules.channel_min_ndim)
        axis = check_axis(self.quant_axis, arr.ndim, "quant_axis")
        return arr, axis

    def _channel_abs_max(self, arr: np.ndarray, axis: int) -> np.ndarray:
        """``max |x|`` per channel along ``axis``.

        Rules without ``drops_nonfinite`` (paddleslim): Paddle's CPU
        ``FindChannelAbsMaxFunctor`` (:func:`refquant.kernels.paddle.channel_abs_max`). Axis
        0: one ``max_element`` per channel over its contiguous block. Axis 1: one
        ``max_element`` per ``(i, j)`` block, folded into channel ``j`` with
        ``std::max(acc, m)`` from ``acc = 0`` (a NaN block never replaces ``acc``). With
        ``flush_subnormal_scales`` it runs under FTZ/DAZ as PaddleSlim's
        ``paddle._legacy_C_ops`` call does, so comparisons see subnormals as 0 (measured: a
        channel of only subnormals and zeros gets scale 0). Otherwise: the largest finite
        magnitude (0 for a channel without any).
        """
        if not self.rules.drops_nonfinite:  # Paddle's kernel, NaN and flushing included
            return channel_abs_max(arr, axis, flush=self.rules.flush_subnormal_scales)
        moved = np.moveaxis(arr, axis, 0).reshape(arr.shape[axis], -1)
        mags = np.where(np.isfinite(moved), np.abs(moved), F32(0.0))
        return np.max(mags, axis=1).astype(F32)

    def forward(self, x: Any) -> np.ndarray:
        """Quantize-dequantize ``x`` per channel; the scale becomes the current abs-max."""
        arr, axis = self._checked(x)
        channels = arr.shape[axis]
        old = self._state["scale"]
        if old.size and old.size != channels:
            raise ValueError(
                f"x has {channels} channels along quant_axis={self.quant_axis}, but this "
                f"quanter holds {old.size} scales"
            )
        # Training or not, the kernel overwrites the scale with the current abs-max.
        scale = self._channel_abs_max(arr, axis)
        self._state = {"scale": scale}
        shape = [1] * arr.ndim
        shape[axis] = channels
        # PaddleSlim runs the op through paddle._legacy_C_ops: FTZ/DAZ floating-point mode.
        return paddle_qdq_round1(arr, scale.reshape(shape), self.bin_cnt,
                                 flush=self.rules.flush_subnormal_scales)

    __call__ = forward

    def backward(self, x: Any, grad_y: Any) -> dict[str, np.ndarray]:
        """Straight-through gradient: ``{"x": grad_y}`` (float32 copy)."""
        arr, _ = self._checked(x)
        return {"x": self._check_grad(arr, grad_y)}

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """``scale``: a 1-D float32 array, finite and ``>= 0`` (a zero channel has scale 0;
        paddleslim with ``ignore_nonfinite``: NaN / +inf allowed), with the channel count
        of the current scales once there are any."""
        loose = self.ignore_nonfinite and not self.rules.drops_nonfinite
        scale = state_array(state["scale"], "scale", None, allow_nonfinite=loose)
        old = self._state["scale"]
        if scale.ndim != 1:
            raise ValueError(f"state['scale'] must be 1-D (one scale per channel), got shape "
                             f"{scale.shape}")
        if old.size and scale.size and scale.shape != old.shape:
            raise ValueError(f"state['scale'] must have shape {old.shape} (this quanter's "
                             f"channels), got shape {scale.shape}")
        return {"scale": scale}

    def scales(self) -> np.ndarray:
        """The per-channel thresholds (empty before the first forward)."""
        return self._state["scale"].copy()

    def zero_points(self) -> np.ndarray | None:
        """PaddleSlim returns ``None`` (so ``PTQ.convert`` fails); canonical: zeros."""
        if self.rules.symmetric_zero_points_none:
            return None
        return np.zeros(self._state["scale"].shape, np.int64)

    def qparams(self) -> QParams:
        """Per-channel threshold parameters, zero point 0 (PaddleSlim: ``None``)."""
        if not self._state["scale"].size:
            raise ValueError("qparams() called before forward(): no scale yet")
        qmax = self.bin_cnt
        scale = self._state["scale"]
        return QParams(scale, np.zeros(scale.shape, np.int64), -qmax, qmax, self.bit_length,
                       self.quant_axis,
                       convention="threshold")
