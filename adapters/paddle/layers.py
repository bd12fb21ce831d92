"""Quantized layers of the Paddle adapter: simulated-quantization wrappers and the converted QDQ.

* :class:`QuantedLinear`, :class:`QuantedConv2D`, :class:`QuantedConv2DTranspose`,
  :class:`QuantedConv1D`: the float layer's computation with an activation quanter on the
  input and a weight quanter on the weight (``paddle.nn.quant.format.ConvertibleQuantedLayer``
  protocol: ``weights_to_quanters()`` / ``activation_quanters()``, so ``convert`` also
  handles Paddle's and PaddleSlim's own quanted layers). ``QuantedLinear`` accepts any layer
  with a ``[in, out]`` ``weight`` and a ``bias`` (custom layers mapped with
  ``add_qat_layer_mapping``).
* :class:`ObserveWrapper`: an observer on the input of a leaf layer (ReLU, pooling, ...).
* :class:`QuantDequant`: the converted form. Quantize with Paddle's ``quantize_linear`` kernel
  (``round_type=0``: ``RNE(fl(qmax * inv(S)) * x)`` clipped to ``[-qmax-1, qmax]``, the
  exact sequence of :func:`refquant.kernels.paddle.quantize_linear`), dequantize
  ``fl(fl(q * S) / qmax)`` (:func:`refquant.kernels.paddle.dequantize_linear`). In dygraph
  both run Paddle's kernels; in a static program (``paddle.jit.save``) quantize runs
  ``pd_op.quantize_linear`` and dequantize runs the same two float32 operations as
  elementwise ops, because Paddle 3.3.1's ``pd_op.dequantize_linear`` re-quantizes its input
  on CPU instead of dequantizing it (measured: ``dequantize_linear(q, S=2)`` of ``q = -95``
  returns ``-128``). No tensor shape is baked into the program, so a saved model accepts any
  batch size (Paddle's own ``LinearQuanter`` creates a persistable value of the input's
  shape, and a ``-1`` batch dimension makes ``jit.save`` fail).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import paddle
from paddle import _C_ops, _legacy_C_ops
from paddle.framework import in_dynamic_mode
from paddle.nn import functional as F
from paddle.nn.quant.format import ConvertibleQuantedLayer, LinearQuanterDequanter
from paddle.quantization.base_observer import BaseObserver
from paddle.quantization.base_quanter import BaseQuanter

from refquant._validation import as_real_array, check_bits, check_flag, to_float_dtype

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
        """Integer codes of ``x`` (float32) by Paddle's ``quantize_linear`` kernel, as the
        quantize half of ``forward`` computes them (codes stored as float32)."""
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
