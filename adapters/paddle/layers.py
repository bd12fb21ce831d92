"""Quantized layers of the Paddle adapter: simulated-quantization wrappers and the converted QDQ.

* :class:`QuantedLinear`, :class:`QuantedConv2D`, :class:`QuantedConv2DTranspose`,
  :class:`QuantedConv1D`: the float layer's computation with an activation quanter on the
  input and a weight quanter on the weight (``paddle.nn.quant.format.ConvertibleQuantedLayer``
  protocol: ``weights_to_quanters()`` / ``activation_quanters()``, so ``convert`` also
  handles Paddle's and PaddleSlim's own quanted layers). ``QuantedLinear`` accepts any layer
  with a ``[in, out]`` ``weight`` and a ``bias`` (custom layers mapped with
  ``add_qat_layer_mapping``).
* :class:`ObserveWrapper`: an observer on the input of a leaf layer (ReLU, pooling, ...).
* the converted forms (:class:`QDQSpec` says which arithmetic each parameter set uses):
  :func:`standard_qdq` builds Paddle's standard form, a ``LinearQuanterDequanter`` holding
  a :class:`Quanter` and a :class:`Dequanter` (instances of Paddle's ``LinearQuanter`` /
  ``LinearDequanter``; ``paddle.jit.save`` writes ``quantize_linear`` +
  ``dequantize_linear`` op pairs); :class:`QuantDequant` is the portable form, whose saved
  dequantize is the same two float32 operations as elementwise ops
  (``fl(fl(q * S) / qmax)``), because Paddle 3.3.1's ``pd_op.dequantize_linear`` re-quantizes
  its input on CPU instead of dequantizing it (measured: ``dequantize_linear(q, S=2)`` of
  ``q = -95`` returns ``-128``; docs/adapter.md). Both bake no tensor shape into the program,
  so a saved model accepts any batch size (Paddle's own ``LinearQuanter`` creates a
  persistable value of the input's shape, and a ``-1`` batch dimension makes ``jit.save``
  fail).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import paddle
from paddle import _C_ops, _legacy_C_ops
from paddle.framework import in_dynamic_mode
from paddle.nn import functional as F
from paddle.nn.quant.format import (
    ConvertibleQuantedLayer,
    LinearDequanter,
    LinearQuanter,
    LinearQuanterDequanter,
)
from paddle.quantization.base_observer import BaseObserver
from paddle.quantization.base_quanter import BaseQuanter

from refquant._validation import as_real_array, check_bits, check_flag, to_float_dtype
from refquant.qparams import QParams

__all__ = [
    "layer_label",
    "check_signature",
    "weight_axis",
    "QuantedLinear",
    "QuantedConv2D",
    "QuantedConv2DTranspose",
    "QuantedConv1D",
    "ObserveWrapper",
    "QuantDequant",
    "QDQSpec",
    "qdq_spec",
    "Quanter",
    "Dequanter",
    "standard_qdq",
    "quantize_weight",
    "converted_types",
    "quantization_layers",
]

_PARALLEL_LINEAR = ("ColumnParallelLinear", "RowParallelLinear")


def check_signature(owner: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                    ) -> None:
    """``TypeError`` naming ``owner`` when ``fn`` cannot take these arguments (an unknown
    keyword, too many positional arguments, one argument given twice).

    A class is checked against its ``__init__`` (a placeholder stands for ``self``): the
    signature of a class whose ``__new__`` takes ``*args, **kwargs``
    (:class:`refquant.profiles.ProfileVariants`) would accept anything."""
    if isinstance(fn, type):
        fn, args = fn.__init__, (None, *args)  # type: ignore[misc]
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{owner}: {exc}") from None


def layer_label(layer: Any) -> str:
    """``"Conv2D 'conv2d_3'"``: the layer's type and Paddle full name, for messages."""
    if layer is None:
        return "<no layer>"
    try:
        return f"{type(layer).__name__} '{layer.full_name()}'"
    except Exception:  # pragma: no cover - layers without full_name
        return type(layer).__name__


def _is_transposed(layer: Any) -> bool:
    return bool(getattr(layer, "_transposed", False)) or isinstance(
        layer, (paddle.nn.Conv1DTranspose, paddle.nn.Conv2DTranspose, paddle.nn.Conv3DTranspose)
    )


def weight_axis(layer: Any, axis: int | None = None) -> int:
    """Output-channel axis of ``layer.weight`` for channel-wise weight quantization.

    * ``axis`` given: checked against the weight's rank and returned (negative counts from
      the end);
    * Conv1D/2D/3D ``[out, in, k...]`` -> 0; the transposed convolutions ``[in, out/groups,
      k...]`` -> 1; Linear and fleet Column/RowParallelLinear ``[in, out]`` -> 1 (subclasses
      included);
    * any other layer (e.g. a custom one mapped with ``add_qat_layer_mapping``): from the
      weight layout -- a 3-D to 5-D weight is a convolution (0, or 1 when the layer has
      ``_transposed = True``), a 2-D weight is ``[in, out]`` (1).

    Raises ``ValueError`` naming the layer when the layer has no ``weight`` or the layout
    gives no answer (pass ``axis=``).
    """
    w = getattr(layer, "weight", None)
    if w is None or not hasattr(w, "shape"):
        raise ValueError(
            f"channel-wise weight observer/quanter built for {layer_label(layer)}, which has no "
            "weight tensor (used as an activation observer?); use a per-tensor one there"
        )
    ndim = len(w.shape)
    if axis is not None:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an integer or None, got {axis!r}")
        if not -ndim <= int(axis) < ndim:
            raise ValueError(
                f"axis={axis} is out of range for the {ndim}-D weight of {layer_label(layer)}"
            )
        return int(axis) % ndim
    names = {c.__name__ for c in type(layer).__mro__}
    if isinstance(layer, paddle.nn.Linear) or names & set(_PARALLEL_LINEAR):
        return 1
    if 3 <= ndim <= 5:
        return 1 if _is_transposed(layer) else 0
    if ndim == 2:
        return 1
    raise ValueError(
        f"cannot infer the channel axis of {layer_label(layer)}: its weight has shape "
        f"{list(w.shape)} (expected a 2-D [in, out] or a 3-D..5-D convolution weight); pass "
        "axis= to the weight observer/quanter"
    )


# ---------------------------------------------------------------------------------------
# simulated-quantization layers
# ---------------------------------------------------------------------------------------
class _QuantedWeightLayer(ConvertibleQuantedLayer):
    """Common part: ``weight``/``bias`` shared with the float layer, two quanters.

    ``observe_weight_once`` (set by ``PTQ``): in evaluation mode an *observer* on the weight
    sees it on the first forward only -- the weight is constant during calibration, and
    observing it again would only repeat the same values.
    """

    #: ranks of ``weight`` that ``forward`` supports, and the layout named in errors
    weight_ranks: tuple[int, ...] = (2,)
    weight_layout = "[in, out]"
    #: attributes of the float layer that ``forward`` needs
    required_attrs: tuple[str, ...] = ()

    @classmethod
    def _out_channels(cls, layer: Any, shape: list[int]) -> int:
        """Number of output channels (the size a bias must have)."""
        return shape[1]

    @classmethod
    def check_layer(cls, layer: Any, where: str | None = None) -> None:
        """Raise unless ``layer`` can be quantized as this class: a floating-point ``weight``
        of a supported rank, the attributes ``forward`` reads, a bias of one value per
        output channel (or none). ``where`` names the layer in messages (default: its type
        and full name)."""
        where = where or layer_label(layer)
        name = cls.__name__
        if not isinstance(layer, paddle.nn.Layer):
            raise TypeError(f"layer must be a paddle.nn.Layer, got {type(layer).__name__}")
        w = getattr(layer, "weight", None)
        if not isinstance(w, paddle.Tensor):
            raise TypeError(
                f"cannot quantize {where} as {name}: its weight must be a paddle.Tensor, got "
                f"{type(w).__name__}")
        shape = [int(d) for d in w.shape]
        if len(shape) not in cls.weight_ranks:
            ranks = " or ".join(f"{r}-D" for r in cls.weight_ranks)
            raise ValueError(
                f"cannot quantize {where} as {name}: its weight has shape {shape}, but {name} "
                f"needs a {ranks} {cls.weight_layout} weight (map this layer type to a "
                "quantized layer that computes with such a weight, or leave it unquantized)")
        if not paddle.is_floating_point(w):
            raise ValueError(f"cannot quantize {where} as {name}: its weight has dtype {w.dtype}, "
                             "not a floating-point type")
        missing = [a for a in cls.required_attrs if not hasattr(layer, a)]
        if missing:
            raise ValueError(f"cannot quantize {where} as {name}: the layer lacks the "
                             f"attributes {', '.join(missing)} that {name}.forward reads")
        bias = getattr(layer, "bias", None)
        if bias is not None:
            out = cls._out_channels(layer, shape)
            if not isinstance(bias, paddle.Tensor) or [int(d) for d in bias.shape] != [out]:
                got = list(bias.shape) if isinstance(bias, paddle.Tensor) else type(bias).__name__
                raise ValueError(
                    f"cannot quantize {where} as {name}: its bias must be None or of shape "
                    f"[{out}] (one value per output channel of the weight {shape}), got {got}")

    def __init__(self, layer: Any, q_config: Any) -> None:
        type(self).check_layer(layer)
        super().__init__()
        self.weight = layer.weight
        self.bias = getattr(layer, "bias", None)
        self.weight_quanter = None
        self.activation_quanter = None
        self.observe_weight_once = True
        self._weight_observed = False
        self._source = layer_label(layer)
        if q_config is not None and q_config.weight is not None:
            self.weight_quanter = q_config.weight._instance(layer)
        if q_config is not None and q_config.activation is not None:
            self.activation_quanter = q_config.activation._instance(layer)

    def _quant_inputs(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        qx = x if self.activation_quanter is None else self.activation_quanter(x)
        wq = self.weight_quanter
        if wq is None:
            return qx, self.weight
        if isinstance(wq, BaseObserver) and not self.training and self.observe_weight_once:
            if not self._weight_observed:
                wq(self.weight)
                self._weight_observed = True
            return qx, self.weight
        return qx, wq(self.weight)

    def weights_to_quanters(self) -> list[tuple[str, str]]:
        return [("weight", "weight_quanter")]

    def activation_quanters(self) -> list[str]:
        return ["activation_quanter"]


class QuantedLinear(_QuantedWeightLayer):
    """``y = x @ W + b`` with quantized ``x`` and ``W`` (``W`` is ``[in, out]``)."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        qx, qw = self._quant_inputs(x)
        return F.linear(qx, qw, self.bias)


class _ConvBase(_QuantedWeightLayer):
    weight_layout = "[out, in/groups, k...] convolution"
    required_attrs = ("_stride", "_padding", "_dilation", "_groups", "_data_format")

    @classmethod
    def _out_channels(cls, layer: Any, shape: list[int]) -> int:
        return shape[0]

    @classmethod
    def check_layer(cls, layer: Any, where: str | None = None) -> None:
        groups = getattr(layer, "_groups", 1)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"cannot quantize {where or layer_label(layer)} as {cls.__name__}: "
                             f"its _groups must be a positive integer, got {groups!r}")
        super().check_layer(layer, where)
        if getattr(layer, "_padding_mode", "zeros") != "zeros" and \
                not hasattr(layer, "_reversed_padding_repeated_twice"):
            raise ValueError(
                f"cannot quantize {where or layer_label(layer)} as {cls.__name__}: padding mode "
                f"{layer._padding_mode!r} needs the attribute _reversed_padding_repeated_twice")

    def __init__(self, layer: Any, q_config: Any) -> None:
        super().__init__(layer, q_config)
        for attr in ("_groups", "_stride", "_padding", "_padding_mode", "_dilation",
                     "_data_format", "_output_padding", "_reversed_padding_repeated_twice",
                     "_updated_padding", "_padding_algorithm"):
            if hasattr(layer, attr):
                setattr(self, attr, getattr(layer, attr))

    def _pad(self, x: paddle.Tensor) -> tuple[paddle.Tensor, Any]:
        mode = getattr(self, "_padding_mode", "zeros")
        if mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=mode,  # type: ignore[arg-type]
                      data_format=self._data_format)
            return x, 0
        return x, self._padding


class QuantedConv2D(_ConvBase):
    """Conv2D with quantized input and weight (weight ``[out, in/g, kh, kw]``, axis 0)."""

    weight_ranks = (4,)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        qx, qw = self._quant_inputs(x)
        qx, pad = self._pad(qx)
        return F.conv2d(qx, qw, bias=self.bias, padding=pad, stride=self._stride,
                        dilation=self._dilation, groups=self._groups,
                        data_format=self._data_format)


class QuantedConv1D(_ConvBase):
    """Conv1D with quantized input and weight (weight ``[out, in/g, k]``, axis 0)."""

    weight_ranks = (3,)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        qx, qw = self._quant_inputs(x)
        qx, pad = self._pad(qx)
        return F.conv1d(qx, qw, bias=self.bias, padding=pad, stride=self._stride,
                        dilation=self._dilation, groups=self._groups,
                        data_format=self._data_format)


class QuantedConv2DTranspose(_ConvBase):
    """Conv2DTranspose with quantized input and weight (weight ``[in, out/g, kh, kw]``, axis 1)."""

    weight_ranks = (4,)
    weight_layout = "[in, out/groups, kh, kw] transposed-convolution"

    @classmethod
    def _out_channels(cls, layer: Any, shape: list[int]) -> int:
        return shape[1] * int(getattr(layer, "_groups", 1))

    def forward(self, x: paddle.Tensor, output_size: Any = None) -> paddle.Tensor:
        qx, qw = self._quant_inputs(x)
        out_pad = 0 if output_size is not None else getattr(self, "_output_padding", 0)
        return F.conv2d_transpose(qx, qw, bias=self.bias, padding=self._padding,
                                  output_padding=out_pad, stride=self._stride,
                                  dilation=self._dilation, groups=self._groups,
                                  output_size=output_size, data_format=self._data_format)


class ObserveWrapper(paddle.nn.Layer):
    """Run ``observer`` on the first input of ``observed``, then ``observed`` itself."""

    def __init__(self, observer: paddle.nn.Layer, observed: paddle.nn.Layer) -> None:
        for name, value in (("observer", observer), ("observed", observed)):
            if not isinstance(value, paddle.nn.Layer):
                raise TypeError(f"{name} must be a paddle.nn.Layer, got {type(value).__name__}")
        super().__init__()
        self._observer = observer
        self._observed = observed

    @property
    def observer(self) -> paddle.nn.Layer:
        """The observer (after ``convert``: its quant-dequant), sublayer ``_observer``."""
        return self._observer

    @property
    def observed(self) -> paddle.nn.Layer:
        """The wrapped layer, sublayer ``_observed``."""
        return self._observed

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if inputs:
            inputs = (self._observer(inputs[0]),) + tuple(inputs[1:])
        return self._observed(*inputs, **kwargs)


# ---------------------------------------------------------------------------------------
# converted form
# ---------------------------------------------------------------------------------------
def _grid(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def quantize_weight(w: paddle.Tensor, scale: np.ndarray, axis: int, bits: int) -> paddle.Tensor:
    """Integer-valued float32 codes of ``w`` from Paddle's ``quantize_linear`` kernel.

    ``scale``: one threshold (``axis=-1``) or one per channel along ``axis`` (0 or 1),
    finite and >= 0."""
    sv = to_float_dtype(as_real_array(scale, "scale", allow_empty=False), np.float32, "scale")
    if not np.all(np.isfinite(sv)) or np.any(sv < 0):
        raise ValueError(f"scale must be finite (in float32) and >= 0, got {sv!r}")
    if sv.ndim > 1 or (sv.ndim == 1 and (axis not in (0, 1) or len(w.shape) <= axis
                                         or w.shape[axis] != sv.size)):
        raise ValueError(f"scale of shape {list(sv.shape)} does not fit a weight of shape "
                         f"{list(w.shape)} along axis {axis!r} (0 or 1 per channel)")
    qmin, qmax = _grid(check_bits(bits, "bits"))
    s = paddle.to_tensor(sv)
    zp = paddle.zeros(s.shape, "float32")
    return _legacy_C_ops.quantize_linear(  # type: ignore[attr-defined]
        w.astype("float32"), s, zp, "quant_axis", axis, "bit_length", bits,
        "qmin", qmin, "qmax", qmax)


@dataclass(frozen=True)
class QDQSpec:
    """Fixed parameters of one converted quant-dequant, and which arithmetic runs them.

    ``kind``:

    * ``"linear"``: symmetric, signed (zero point 0, ``qmax = 2^(b-1) - 1``); ``scale`` is
      Paddle's threshold ``S`` (shape ``()`` or ``(C,)`` along ``axis``), run by Paddle's
      ``quantize_linear`` / ``dequantize_linear`` kernels
      (:func:`refquant.kernels.paddle.quantize_linear`: ``RNE(fl(qmax * inv(S)) * x)``
      clipped to ``[-qmax - 1, qmax]``; ``fl(fl(q * S) / qmax)``);
    * ``"group"``: group-wise weights, ``scale`` the thresholds of shape
      ``[rows / group_size, cols]`` (refquant's and Paddle's ``GroupWiseWeightObserver``);
      the arithmetic of Paddle 3.3.1's ``LinearQuanter`` / ``LinearDequanter`` for 2-D
      scales (PaddlePaddle/Paddle ``python/paddle/nn/quant/format.py``):
      ``q = clip(RNE(fl(fl(x / S_g) * qmax)) + 0, qmin, qmax)``,
      ``y = fl(fl((q - 0) / qmax) * S_g)`` with ``S_g`` each row's group threshold;
    * ``"affine"``: a zero point or an unsigned grid; ``scale`` is the step ``s``
      (``QParams.step``), ``zero_point`` the integer zero point, run as ONNX
      ``QuantizeLinear`` / ``DequantizeLinear`` (onnx/onnx ``docs/Operators.md``):
      ``q = clip(RNE(fl(x / s)) + zp, qmin, qmax)``, ``y = fl((q - zp) * s)``
      (:func:`refquant.kernels.onnx.quantize_linear`). Paddle's ``quantize_linear`` op
      ignores the zero point and clips to signed bounds, so this kind has no Paddle op.

    ``where`` names the quanter in messages (``"'fc.activation_quanter' (AbsmaxObserverLayer)"``).
    """

    kind: str
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    bits: int
    qmin: int
    qmax: int
    group_size: int = 0
    where: str = "<quant-dequant>"


def qdq_spec(qp: QParams, where: str = "<quant-dequant>") -> QDQSpec:
    """The :class:`QDQSpec` that applies ``qp`` (see its ``kind``); ``ValueError`` naming
    ``where`` for parameters no converted form expresses (group-wise with a zero point,
    group-wise scales that do not fit ``extra['group_size']``)."""
    bits = int(qp.bits)
    signed_max = (1 << (bits - 1)) - 1
    zp = np.asarray(qp.zero_point)
    symmetric = not np.any(zp != 0) and qp.qmax == signed_max and \
        qp.qmin in (-signed_max - 1, -signed_max)
    scale = np.asarray(qp.scale, np.float32)
    if scale.ndim == 2:
        group = int(qp.extra.get("group_size", 0) or 0)
        if not symmetric or qp.convention != "threshold" or group < 1:
            raise ValueError(
                f"cannot convert {where}: group-wise parameters must be symmetric, signed "
                f"thresholds with extra['group_size'] (got qmin={qp.qmin}, qmax={qp.qmax}, "
                f"convention={qp.convention!r}, group_size={group})")
        return QDQSpec("group", scale, np.zeros(scale.shape, np.float32), -1, bits,
                       -signed_max - 1, signed_max, group, where)
    axis = -1 if qp.axis is None else int(qp.axis)
    if scale.ndim == 1 and scale.size == 1 and axis < 0:
        scale = scale.reshape(())
    if symmetric:
        return QDQSpec("linear", np.asarray(qp.threshold, np.float32).reshape(scale.shape),
                       np.zeros(scale.shape, np.float32), axis, bits, -signed_max - 1,
                       signed_max, 0, where)
    step = np.asarray(qp.step, np.float32).reshape(scale.shape)
    zpf = np.broadcast_to(zp, scale.shape).astype(np.float32)
    return QDQSpec("affine", step, zpf, axis, bits, int(qp.qmin), int(qp.qmax), 0, where)


def _broadcast(v: paddle.Tensor, x: paddle.Tensor, axis: int, group_size: int
               ) -> paddle.Tensor:
    """A parameter shaped to broadcast against ``x``: each group's value repeated over its
    rows (``group_size``), or laid along ``axis``, or as it is (per tensor)."""
    if group_size:
        return paddle.repeat_interleave(v, group_size, 0)
    if axis >= 0 and len(v.shape) == 1:
        shape = [1] * len(x.shape)
        shape[axis] = -1
        return v.reshape(shape)
    return v


def _elementwise_quantize(x: paddle.Tensor, spec: QDQSpec, scale: paddle.Tensor,
                          zero_point: paddle.Tensor) -> paddle.Tensor:
    """Quantize half of the ``group`` and ``affine`` kinds (Paddle tensor operations, the
    same in dygraph and in a static program); see :class:`QDQSpec`."""
    s = _broadcast(scale, x, spec.axis, spec.group_size)
    zp = _broadcast(zero_point, x, spec.axis, spec.group_size)
    if spec.kind == "group":
        # Paddle's ``x / s * qmax``: a division, then its ``scale`` kernel (x * qmax + 0.0)
        t = paddle.scale(paddle.divide(x, s), scale=float(spec.qmax), bias=0.0)
        return paddle.clip(paddle.round(t) + zp, spec.qmin, spec.qmax)
    return paddle.clip(paddle.round(paddle.divide(x, s)) + zp, spec.qmin, spec.qmax)


def _elementwise_dequantize(q: paddle.Tensor, spec: QDQSpec, scale: paddle.Tensor,
                            zero_point: paddle.Tensor) -> paddle.Tensor:
    """Dequantize half of the ``group`` and ``affine`` kinds; see :class:`QDQSpec`."""
    s = _broadcast(scale, q, spec.axis, spec.group_size)
    zp = _broadcast(zero_point, q, spec.axis, spec.group_size)
    if spec.kind == "group":
        # Paddle's ``(q - zp) / qmax * s`` with a true division by qmax: a static program
        # would otherwise turn ``/ qmax`` into a multiplication by fl(1 / qmax)
        qmax = paddle.full([], float(spec.qmax), "float32")
        return paddle.multiply(paddle.divide(paddle.subtract(q, zp), qmax), s)
    return paddle.multiply(paddle.subtract(q, zp), s)


def _check_input(x: Any, owner: str, spec: QDQSpec, scale: paddle.Tensor) -> paddle.Tensor:
    """``x`` as float32 (the kernels' dtype), checked against the parameters' shape."""
    if in_dynamic_mode() and not isinstance(x, paddle.Tensor):
        raise TypeError(f"input of {owner} must be a paddle.Tensor, got {type(x).__name__}")
    if x.dtype not in (paddle.float16, paddle.bfloat16, paddle.float32, paddle.float64):
        raise TypeError(f"input of {owner} must be a floating-point tensor, got {x.dtype}")
    if in_dynamic_mode():
        shape = [int(d) for d in x.shape]
        sshape = [int(d) for d in scale.shape]
        if spec.group_size and (len(shape) != 2 or shape[0] != sshape[0] * spec.group_size
                                or shape[1] != sshape[1]):
            raise ValueError(
                f"input of {owner} has shape {shape}, but its group-wise scales {sshape} "
                f"with group_size={spec.group_size} fit a [{sshape[0] * spec.group_size}, "
                f"{sshape[1]}] weight")
        if not spec.group_size and spec.axis >= 0 and (
                len(shape) <= spec.axis or shape[spec.axis] != sshape[0]):
            raise ValueError(f"input of {owner} has shape {shape}, but its {sshape[0]} scales "
                             f"are along axis {spec.axis}")
    return x.astype("float32") if x.dtype != paddle.float32 else x


class QuantDequant(paddle.nn.Layer):
    """Converted quantize-dequantize (QDQ) with fixed parameters (see the module docstring).

    Parameters: ``scale`` (float32 threshold, shape ``[]`` or ``[C]``), ``axis`` (-1 per
    tensor, else the channel axis: 0 or 1, as the kernel allows), ``bits``;
    ``quantize=False`` keeps only the dequantize half (for weights already stored as codes).
    ``scale`` and ``zero_point`` are non-trainable parameters, saved with the model.
    """

    def __init__(self, scale: Any, axis: int = -1, bits: int = 8, quantize: bool = True,
                 dequantize: bool = True) -> None:
        super().__init__()
        s = np.array(to_float_dtype(as_real_array(scale, "scale", allow_empty=False),
                                    np.float32, "scale"))
        if s.ndim > 1:
            raise ValueError(f"scale must be 0-D or 1-D, got shape {s.shape}")
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an integer, got {axis!r}")
        if s.ndim == 1 and axis not in (0, 1):
            raise ValueError(
                f"per-channel axis must be 0 or 1 (Paddle's quantize_linear), got {axis!r}")
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError(f"scale must be finite (in float32) and >= 0, got {s!r}")
        self._axis = int(axis) if s.ndim == 1 else -1
        self._bits = check_bits(bits, "bits")
        self._qmin, self._qmax = _grid(self._bits)
        self._do_q = check_flag(quantize, "quantize")
        self._do_dq = check_flag(dequantize, "dequantize")
        attr = paddle.ParamAttr(trainable=False)
        self.scale = self.create_parameter(
            list(s.shape), attr=attr, dtype="float32",
            default_initializer=paddle.nn.initializer.Assign(s))
        self.zero_point = self.create_parameter(
            list(s.shape), attr=paddle.ParamAttr(trainable=False), dtype="float32",
            default_initializer=paddle.nn.initializer.Constant(0.0))
        self.scale.stop_gradient = True
        self.zero_point.stop_gradient = True
        # moving-average state inputs of pd_op.quantize_linear (unused with is_test=True)
        self.register_buffer("_accum", paddle.zeros([1], "float32"))
        self.register_buffer("_state", paddle.zeros([1], "float32"))
        self._spec = QDQSpec("linear", s, np.zeros(s.shape, np.float32), self._axis,
                             self._bits, self._qmin, self._qmax)

    @classmethod
    def from_spec(cls, spec: QDQSpec, quantize: bool = True, dequantize: bool = True
                  ) -> QuantDequant:
        """The portable layer of any :class:`QDQSpec` kind: ``"linear"`` as the
        constructor builds it; ``"group"`` and ``"affine"`` with ``scale`` and
        ``zero_point`` of the spec's shape, computed by the same Paddle tensor operations in
        dygraph and in a static program (see :class:`QDQSpec`)."""
        if not isinstance(spec, QDQSpec):
            raise TypeError(f"spec must be a QDQSpec, got {type(spec).__name__}")
        if spec.kind == "linear":
            out = cls(spec.scale, spec.axis, spec.bits, quantize, dequantize)
        else:
            out = cls(1.0, -1, spec.bits, quantize, dequantize)
        out._adopt(spec)
        return out

    def _adopt(self, spec: QDQSpec) -> None:
        """Take ``spec``'s kind and grid; for the ``"group"`` and ``"affine"`` kinds also
        its ``scale`` and ``zero_point`` (new parameters of the spec's shapes)."""
        if spec.kind != "linear":
            attr = paddle.ParamAttr(trainable=False)
            for name, value in (("scale", spec.scale), ("zero_point", spec.zero_point)):
                v = np.asarray(value, np.float32)
                param = self.create_parameter(
                    list(v.shape), attr=attr, dtype="float32",
                    default_initializer=paddle.nn.initializer.Assign(v))
                param.stop_gradient = True
                setattr(self, name, param)
            self._axis, self._qmin, self._qmax = spec.axis, spec.qmin, spec.qmax
        self._spec = spec

    @property
    def spec(self) -> QDQSpec:
        """The fixed parameters and the arithmetic kind (:class:`QDQSpec`)."""
        return self._spec

    # -- read-only view of the fixed parameters ------------------------------------------
    @property
    def axis(self) -> int:
        """Channel axis of ``scale`` (0 or 1), or -1 for one per-tensor scale."""
        return self._axis

    @property
    def bits(self) -> int:
        """Bit width of the integer grid."""
        return self._bits

    @property
    def qmin(self) -> int:
        """Smallest integer code (``-2**(bits-1)``)."""
        return self._qmin

    @property
    def qmax(self) -> int:
        """Largest integer code (``2**(bits-1) - 1``); Paddle's ``bin_cnt``."""
        return self._qmax

    @property
    def quantizes(self) -> bool:
        """Whether ``forward`` runs the quantize half (``quantize=`` of the constructor)."""
        return self._do_q

    @property
    def dequantizes(self) -> bool:
        """Whether ``forward`` runs the dequantize half (``dequantize=``)."""
        return self._do_dq

    def quantize(self, x: paddle.Tensor) -> paddle.Tensor:
        """Integer codes of ``x`` (float32), as the quantize half of ``forward`` computes
        them (codes stored as float32): Paddle's ``quantize_linear`` kernel for the
        ``"linear"`` kind, the :class:`QDQSpec` arithmetic otherwise."""
        if self._spec.kind != "linear":
            y = _check_input(x, "QuantDequant", self._spec, self.scale)
            return _elementwise_quantize(y, self._spec, self.scale, self.zero_point)
        return self._quantize(x)

    def extra_repr(self) -> str:
        return (f"axis={self._axis}, bits={self._bits}, quantize={self._do_q}, "
                f"dequantize={self._do_dq}")

    def _quantize(self, x: paddle.Tensor) -> paddle.Tensor:
        if in_dynamic_mode():
            return _legacy_C_ops.quantize_linear(  # type: ignore[attr-defined]
                x, self.scale, self.zero_point, "quant_axis", self._axis, "bit_length",
                self._bits, "qmin", self._qmin, "qmax", self._qmax)
        out = _C_ops.quantize_linear(x, self.scale, self.zero_point, self._accum, self._state,
                                     self._axis, self._bits, self._qmin, self._qmax, 0, True,
                                     False)
        return out[0] if isinstance(out, (list, tuple)) else out

    def _dequantize(self, q: paddle.Tensor) -> paddle.Tensor:
        if in_dynamic_mode():
            return _legacy_C_ops.dequantize_linear(  # type: ignore[attr-defined]
                q, self.scale, self.zero_point, "quant_axis", self._axis, "bit_length",
                self._bits, "qmin", self._qmin, "qmax", self._qmax)
        s = self.scale
        if self._axis >= 0:
            shape = [1] * len(q.shape)
            shape[self._axis] = -1
            s = s.reshape(shape)
        # fl(fl(q * S) / qmax): the dequantize_linear kernel's two float32 operations
        return (q * s) / paddle.full([], float(self._qmax), "float32")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self._spec.kind != "linear":
            y = _check_input(x, "QuantDequant", self._spec, self.scale)
            if self._do_q:
                y = _elementwise_quantize(y, self._spec, self.scale, self.zero_point)
            if self._do_dq:
                y = _elementwise_dequantize(y, self._spec, self.scale, self.zero_point)
            return y.astype(x.dtype) if x.dtype != paddle.float32 else y
        if in_dynamic_mode() and not isinstance(x, paddle.Tensor):
            raise TypeError(f"input of QuantDequant must be a paddle.Tensor, got "
                            f"{type(x).__name__}")
        dtype = x.dtype
        if dtype not in (paddle.float16, paddle.bfloat16, paddle.float32, paddle.float64):
            raise TypeError(f"input of QuantDequant must be a floating-point tensor, got {dtype}")
        if self._axis >= 0 and in_dynamic_mode():
            if len(x.shape) <= self._axis or x.shape[self._axis] != self.scale.shape[0]:
                raise ValueError(
                    f"input of QuantDequant has shape {list(x.shape)}, but its "
                    f"{self.scale.shape[0]} scales are along axis {self._axis}")
        y = x.astype("float32") if dtype != paddle.float32 else x
        if self._do_q:
            y = self._quantize(y)
        if self._do_dq:
            y = self._dequantize(y)
        return y.astype(dtype) if dtype != paddle.float32 else y


class _StandardPart:
    """What :class:`Quanter` and :class:`Dequanter` share: refquant's parameters in the
    attributes of Paddle's ``LinearQuanter`` / ``LinearDequanter`` (``_scales``,
    ``_zero_point``, ``_quant_axis``, ``_bit_length``, ``_qmin``, ``_qmax``,
    ``_group_size``), read by tools that inspect Paddle's converted layers."""

    _spec: QDQSpec
    _scales: paddle.Tensor
    _zero_point: paddle.Tensor

    def _setup(self, spec: QDQSpec) -> None:
        if not isinstance(spec, QDQSpec):
            raise TypeError(f"spec must be a QDQSpec, got {type(spec).__name__}")
        self._spec = spec
        self._qmin, self._qmax = spec.qmin, spec.qmax
        self._group_size = spec.group_size or 128
        self._scales.stop_gradient = True
        self._zero_point.stop_gradient = True

    @property
    def spec(self) -> QDQSpec:
        """The fixed parameters and the arithmetic kind (:class:`QDQSpec`)."""
        return self._spec

    def _static_check(self) -> None:
        if self._spec.kind == "affine" and not in_dynamic_mode():
            raise ValueError(
                f"cannot save {self._spec.where} in Paddle's quantize_linear / "
                f"dequantize_linear form: its zero point / unsigned grid (qmin="
                f"{self._spec.qmin}, qmax={self._spec.qmax}) is ignored by those ops "
                "(they clip to signed bounds and drop the zero point). Convert with "
                "format='portable' to save this model")


class Quanter(_StandardPart, LinearQuanter):
    """Quantize half of Paddle's standard converted form (an instance of Paddle's
    ``paddle.nn.quant.format.LinearQuanter``) with refquant's parameters (:class:`QDQSpec`).

    ``"linear"`` kind: Paddle's ``quantize_linear`` kernel, in dygraph (legacy op, as
    Paddle's ``LinearQuanter``) and as ``pd_op.quantize_linear`` in a static program (unlike
    Paddle's ``LinearQuanter``, no persistable value of the input's shape is created, so a
    saved model accepts any batch size). ``"group"``: Paddle's ``LinearQuanter`` arithmetic
    for 2-D scales. ``"affine"``: ONNX ``QuantizeLinear`` arithmetic in dygraph; saving it
    with ``paddle.jit.save`` raises ``ValueError`` naming the layer (no Paddle op honours a
    zero point).
    """

    def __init__(self, spec: QDQSpec) -> None:
        if not isinstance(spec, QDQSpec):
            raise TypeError(f"spec must be a QDQSpec, got {type(spec).__name__}")
        LinearQuanter.__init__(self, spec.scale, zero_point=spec.zero_point,
                               quant_axis=spec.axis, bit_length=spec.bits,
                               group_size=spec.group_size or 128)
        self._setup(spec)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        spec = self._spec
        y = _check_input(x, "Quanter", spec, self._scales)
        if spec.kind != "linear":
            self._static_check()
            q = _elementwise_quantize(y, spec, self._scales, self._zero_point)
        elif in_dynamic_mode():
            q = _legacy_C_ops.quantize_linear(  # type: ignore[attr-defined]
                y, self._scales, self._zero_point, "quant_axis", spec.axis, "bit_length",
                spec.bits, "qmin", spec.qmin, "qmax", spec.qmax)
        else:
            out = _C_ops.quantize_linear(y, self._scales, self._zero_point, self.in_accum,
                                         self.in_state, spec.axis, spec.bits, spec.qmin,
                                         spec.qmax, 0, True, False)
            q = out[0] if isinstance(out, (list, tuple)) else out
        return q.astype(x.dtype) if x.dtype != paddle.float32 else q


class Dequanter(_StandardPart, LinearDequanter):
    """Dequantize half of Paddle's standard converted form (an instance of Paddle's
    ``paddle.nn.quant.format.LinearDequanter``); see :class:`Quanter`.

    ``"linear"`` kind: Paddle's ``dequantize_linear`` kernel in dygraph
    (``fl(fl(q * S) / qmax)``) and ``pd_op.dequantize_linear`` in a static program --
    which Paddle 3.3.1 runs *wrongly* on CPU (it re-quantizes its input; docs/adapter.md
    has the reproduction), exactly as it runs Paddle's own converted models.
    """

    def __init__(self, spec: QDQSpec) -> None:
        if not isinstance(spec, QDQSpec):
            raise TypeError(f"spec must be a QDQSpec, got {type(spec).__name__}")
        LinearDequanter.__init__(self, spec.scale, zero_point=spec.zero_point,
                                 quant_axis=spec.axis, bit_length=spec.bits,
                                 group_size=spec.group_size or 128)
        self._setup(spec)

    def forward(self, q: paddle.Tensor) -> paddle.Tensor:
        spec = self._spec
        y = _check_input(q, "Dequanter", spec, self._scales)
        if spec.kind != "linear":
            self._static_check()
            out = _elementwise_dequantize(y, spec, self._scales, self._zero_point)
        elif in_dynamic_mode():
            out = _legacy_C_ops.dequantize_linear(  # type: ignore[attr-defined]
                y, self._scales, self._zero_point, "quant_axis", spec.axis, "bit_length",
                spec.bits, "qmin", spec.qmin, "qmax", spec.qmax)
        else:
            res = _C_ops.dequantize_linear(y, self._scales, self._zero_point, self.in_accum,
                                           self.in_state, spec.axis, spec.bits, spec.qmin,
                                           spec.qmax, 0, True, False)
            out = res[0] if isinstance(res, (list, tuple)) else res
        return out.astype(q.dtype) if q.dtype != paddle.float32 else out


def standard_qdq(spec: QDQSpec, quantize: bool = True) -> LinearQuanterDequanter:
    """Paddle's ``LinearQuanterDequanter`` holding a :class:`Quanter` (``None`` when
    ``quantize`` is False: a weight already stored as integer codes, as Paddle's
    ``ConvertibleQuantedLayer._convert`` leaves it) and a :class:`Dequanter`."""
    return LinearQuanterDequanter(Quanter(spec) if check_flag(quantize, "quantize") else None,
                                  Dequanter(spec))


def converted_types() -> tuple[type, ...]:
    """Layer types of a converted quant-dequant: this adapter's and Paddle's."""
    return (QuantDequant, LinearQuanterDequanter)


def quantization_layers(model: paddle.nn.Layer) -> list[tuple[str, paddle.nn.Layer]]:
    """``(path, layer)`` of every layer of ``model`` (the root included, path ``""``) that
    quantization put there: quantized layers (Paddle's ``ConvertibleQuantedLayer`` protocol),
    :class:`ObserveWrapper`, observers and quanters (``BaseQuanter``), converted
    quant-dequant layers. Sublayers of those are not listed separately."""
    kinds = (ConvertibleQuantedLayer, ObserveWrapper, BaseQuanter, *converted_types())
    found: list[tuple[str, paddle.nn.Layer]] = []

    def walk(layer: paddle.nn.Layer, path: str) -> None:
        if isinstance(layer, kinds):
            found.append((path, layer))
            return
        for name, child in layer.named_children():
            walk(child, f"{path}.{name}" if path else name)

    walk(model, "")
    return found
