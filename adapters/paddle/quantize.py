"""PTQ and QAT: insert observers/quanters into a model, then convert it to QDQ form.

``PTQ(config).quantize(model, inplace=False)`` returns the model (a deep copy unless
``inplace``) in evaluation mode with

* each layer whose type has a quantized counterpart (``config.target_type``: Linear,
  Conv2D, Conv2DTranspose, Conv1D and the ``add_qat_layer_mapping`` ones) and a non-empty
  resolved config replaced by that counterpart (weight quanter + activation quanter);
* each other *leaf* layer (no sublayers, or a customized leaf) whose resolved config has an
  activation factory wrapped in :class:`~refquant.adapters.paddle.layers.ObserveWrapper`
  (the observer sees the leaf's input, like Paddle).

Unlike Paddle 3.3.1 the root model is configured too (a bare ``Linear`` is quantized), and
``quantize`` never asserts on the caller's ``training`` flag: the returned model is put in
evaluation mode (quirks 56, 57). Always use the returned model: when the root itself is
replaced, ``inplace=True`` cannot replace the caller's object.

``quantize`` checks everything before it changes anything: a model that already holds
quantization layers (observers, quanters, quantized or converted layers) is refused with a
``ValueError`` (Paddle 3.3.1 returns it unchanged, silently ignoring the new config), and a
layer whose weight does not fit the quantized layer it maps to (e.g. a custom layer with a
3-D weight mapped to ``QuantedLinear``) raises a ``ValueError`` naming the layer and the
weight shape; with ``inplace=True`` the caller's model is then left as it was.

``convert(model, inplace=False, remain_weight=False, format="paddle")`` replaces every
observer/quanter by a quant-dequant with the parameters it decided: by default Paddle's
standard form (``LinearQuanterDequanter`` holding the adapter's ``Quanter`` /
``Dequanter``, instances of Paddle's ``LinearQuanter`` / ``LinearDequanter``; saved as
``quantize_linear`` + ``dequantize_linear`` op pairs), or with ``format="portable"``
:class:`~refquant.adapters.paddle.layers.QuantDequant` (dequantize saved as a multiply and
a divide, which Paddle's CPU executor runs correctly). The weights are stored as integer
codes followed by a dequantize, or left in float with a full QDQ when ``remain_weight``.
Group-wise weights and (canonical profile) asymmetric / unsigned parameters convert too
(``layers.QDQSpec``). An observer that saw no data raises
:class:`~refquant.adapters.paddle.observers.NotCalibratedError` naming the layer. The result
runs in dygraph and survives ``paddle.jit.save`` with a dynamic batch dimension (see
docs/adapter.md for Paddle 3.3.1's CPU ``dequantize_linear`` bug in the static program).

``convert`` of a model that is already converted (wholly or in part) leaves the converted
layers as they are, like Paddle's ``PTQ.convert``: converting twice gives the same model.
A model that holds no observer, quanter or quant-dequant layer at all (a float model) is
refused with a ``ValueError`` (Paddle returns it unchanged). All parameters are decided
before anything is modified, so an error (e.g. an uncalibrated observer) leaves even an
``inplace=True`` model as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import paddle
from paddle.nn.quant.format import ConvertibleQuantedLayer
from paddle.quantization.base_quanter import BaseQuanter

from .config import QuantConfig, class_instead_of_factory
from .layers import (
    ObserveWrapper,
    QDQSpec,
    QuantDequant,
    Quanter,
    converted_types,
    layer_label,
    qdq_spec,
    quantization_layers,
    standard_qdq,
)
from .observers import NotCalibratedError

__all__ = ["PTQ", "QAT", "NotCalibratedError"]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check_model(model: Any) -> None:
    if not isinstance(model, paddle.nn.Layer):
        raise TypeError(f"model must be a paddle.nn.Layer, got {type(model).__name__}")


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_float_model(model: Any, inplace: Any) -> bool:
    """The checks of ``quantize``: a float ``paddle.nn.Layer`` and a bool; returns inplace."""
    _check_model(model)
    flag = _check_flag(inplace, "inplace")
    found = quantization_layers(model)
    if found:
        path, layer = found[0]
        raise ValueError(
            f"model is already quantized: layer {path or '<root>'!r} is a "
            f"{type(layer).__name__}. quantize takes a float model: calibrate or train the "
            "quantized model and call convert, or quantize the original float model again"
        )
    return flag


class _Quantization:
    def __init__(self, config: QuantConfig) -> None:
        if not isinstance(config, QuantConfig):
            raise TypeError(
                f"config must be a refquant.adapters.paddle.QuantConfig, got "
                f"{type(config).__name__}"
            )
        self._config = config.snapshot()  # later add_* calls do not change this (Paddle)

    # -- quantize -----------------------------------------------------------------------
    def _prepare(self, model: Any, inplace: bool) -> Any:
        self._config._specify(model)
        target = model if inplace else copy.deepcopy(model)
        swaps: list[tuple[Any, str, Any]] = []
        root = self._replace(target, "", swaps)  # builds every new layer first
        for parent, name, new in swaps:
            parent.add_sublayer(name, new)  # Paddle: _sub_layers[name] = new
        return root

    def _replace(self, layer: Any, path: str, swaps: list[tuple[Any, str, Any]]) -> Any:
        """The layer that replaces ``layer``; replacements below it go to ``swaps``."""
        conf = self._config
        cfg = conf.resolved(path)  # None: not quantized (the config's rules say when)
        if cfg is not None:
            target = conf.target_type(layer)
            if target is not None:
                check = getattr(target, "check_layer", None)
                if check is not None:
                    check(layer, f"layer {path or '<root>'!r} ({layer_label(layer)})")
                new = target(layer, cfg)
                if conf.rules.paddle_api_quirks and hasattr(new, "observe_weight_once"):
                    new.observe_weight_once = False  # Paddle observes weights every forward
                return new
        if isinstance(layer, paddle.nn.quant.Stub):
            # Paddle's QuanterStub: the stub's own observer, else the config's activation
            own = getattr(layer, "_observer", None)
            if isinstance(own, type):
                raise class_instead_of_factory(f"the observer of Stub {path or '<root>'!r}", own)
            factory = own if (cfg is not None and own is not None) else (
                None if cfg is None else cfg.activation)
            return layer if factory is None else ObserveWrapper(factory._instance(layer), layer)
        if conf.is_leaf(layer):
            if cfg is not None and cfg.activation is not None:
                return ObserveWrapper(cfg.activation._instance(layer), layer)
            return layer
        for name, child in list(layer.named_children()):
            new = self._replace(child, _join(path, name), swaps)
            if new is not child:
                swaps.append((layer, name, new))
        return layer

    # -- convert ------------------------------------------------------------------------
    def convert(self, model: Any, inplace: bool = False, remain_weight: bool = False,
                format: str = "paddle") -> Any:
        """QDQ form of a calibrated/trained model (see the module docstring).

        ``format``: ``"paddle"`` (default) Paddle's standard form, ``LinearQuanterDequanter``
        layers holding :class:`~refquant.adapters.paddle.layers.Quanter` /
        :class:`~refquant.adapters.paddle.layers.Dequanter` (instances of Paddle's
        ``LinearQuanter`` / ``LinearDequanter``), saved by ``paddle.jit.save`` as
        ``quantize_linear`` + ``dequantize_linear`` op pairs; ``"portable"``
        :class:`~refquant.adapters.paddle.layers.QuantDequant` layers whose saved dequantize
        is a multiply and a divide (correct under Paddle 3.3.1's CPU executor, whose
        ``dequantize_linear`` re-quantizes; docs/adapter.md says which consumer needs
        which). Both compute the same numbers in dygraph.

        Already converted layers are left as they are (converting twice is a no-op); a model
        without any observer, quanter or quant-dequant layer raises ``ValueError``.
        """
        _check_model(model)
        inplace = _check_flag(inplace, "inplace")
        remain_weight = _check_flag(remain_weight, "remain_weight")
        build = _check_format(format)
        if not quantization_layers(model):
            raise ValueError(
                "model holds no observer, quanter or quant-dequant layer, so there is nothing "
                "to convert: pass the model returned by PTQ.quantize / QAT.quantize after "
                "calibration (or check that the QuantConfig quantizes some layer)"
            )
        out = model if inplace else copy.deepcopy(model)
        slim = self._config.rules.paddle_api_quirks
        edits: list[Callable[[], object]] = []
        root = _plan_convert(out, "", remain_weight, slim, edits, build)  # decisions first
        for edit in edits:
            edit()
        return root

    def __str__(self) -> str:
        return self._config.details()


def _describe(path: str, quanter: Any) -> str:
    return f"'{path or '<root>'}' ({type(quanter).__name__})"


_Build = Callable[[QDQSpec, bool], Any]


def _portable(spec: QDQSpec, quantize: bool = True) -> QuantDequant:
    return QuantDequant.from_spec(spec, quantize=quantize)


#: ``convert(format=...)``: the layer built for each quant-dequant (spec, quantize half?)
_FORMATS: dict[str, _Build] = {"paddle": standard_qdq, "portable": _portable}


def _check_format(format: Any) -> _Build:
    if not isinstance(format, str) or format not in _FORMATS:
        raise ValueError(
            f"format must be one of {sorted(_FORMATS)} ('paddle': Paddle's "
            f"LinearQuanterDequanter form, 'portable': multiply/divide dequantize), got "
            f"{format!r}")
    return _FORMATS[format]


def _group_size_of(quanter: Any, qp: Any = None) -> int:
    extra = getattr(qp, "extra", None) or {}
    size = extra.get("group_size", getattr(quanter, "group_size", 128))
    return int(size)


def _spec_of(quanter: Any, path: str, slim: bool = False, weight: bool = False) -> QDQSpec:
    """The :class:`QDQSpec` of a quanter (see ``layers.qdq_spec`` for the kinds).

    ``slim`` (the config's ``rules.paddle_api_quirks``): Paddle's
    ``LinearQuanter.from_quanter`` -- the quanter's own ``scales()`` exceptions propagate
    (Q59), and whatever ``scales()`` returns is used as a signed threshold with the zero
    point ignored (Q61). Canonical refquant quanters: asymmetric / unsigned parameters
    convert to the ``"affine"`` kind (zero point honoured). Group-wise scales convert for
    weights only (``weight``); a ``ValueError`` names the quanter otherwise.
    """
    where = _describe(path, quanter)
    if slim and hasattr(quanter, "qparams"):
        qp = quanter.qparams()  # raises PaddleSlim's exception type when uncalibrated
        scale = np.asarray(qp.scale, np.float32)
        axis = -1 if qp.axis is None else int(qp.axis)
        bits = int(qp.bits)
        group = _group_size_of(quanter, qp) if scale.ndim == 2 else 0
    elif hasattr(quanter, "qparams"):
        try:
            qp = quanter.qparams()
        except NotCalibratedError as exc:
            raise NotCalibratedError(
                f"cannot convert {where}: it has observed no data -- run calibration "
                f"batches through the quantized model first ({exc})"
            ) from None
        if np.asarray(qp.scale).ndim == 2 and not weight:
            raise ValueError(f"cannot convert {where}: group-wise scales quantize weights "
                             "only, and this quanter is on an activation")
        return qdq_spec(qp, where)
    else:  # a foreign (Paddle / PaddleSlim) quanter
        s = quanter.scales()
        if s is None:
            raise NotCalibratedError(f"cannot convert {where}: scales() is None (not "
                                     "calibrated)")
        scale = np.asarray(s.numpy() if hasattr(s, "numpy") else s, np.float32)
        ax = quanter.quant_axis()
        axis = -1 if ax is None else int(ax)
        bits = int(quanter.bit_length())
        zp = quanter.zero_points()
        zpv = None if zp is None else np.asarray(zp.numpy() if hasattr(zp, "numpy") else zp)
        if zpv is not None and np.any(zpv != 0) and not slim:
            raise NotImplementedError(
                f"cannot convert {where}: non-zero zero point of a Paddle quanter (Paddle's "
                "quantize_linear ignores it, so its meaning is unknown); use a refquant "
                "observer for asymmetric ranges")
        group = _group_size_of(quanter) if scale.ndim == 2 else 0
    if scale.ndim == 2 and not weight:
        raise ValueError(f"cannot convert {where}: group-wise scales quantize weights only, "
                         "and this quanter is on an activation")
    if scale.ndim > 2:
        raise ValueError(f"cannot convert {where}: scales of shape {list(scale.shape)}")
    signed_max = (1 << (bits - 1)) - 1
    zeros = np.zeros(scale.shape, np.float32)
    if scale.ndim == 2:
        return QDQSpec("group", scale, zeros, -1, bits, -signed_max - 1, signed_max, group,
                       where)
    if scale.ndim == 1 and scale.size == 1 and axis < 0:
        scale, zeros = scale.reshape(()), zeros.reshape(())
    return QDQSpec("linear", scale, zeros, axis, bits, -signed_max - 1, signed_max, 0, where)


def _plan_convert(layer: Any, path: str, remain_weight: bool, slim: bool,
                  edits: list[Callable[[], object]], build: _Build = standard_qdq) -> Any:
    """The converted form of ``layer``: decides every parameter now, and appends to ``edits``
    what is to change inside the model (run only once every decision succeeded)."""
    if isinstance(layer, converted_types()):
        return layer  # already converted
    if isinstance(layer, ObserveWrapper):
        if not isinstance(layer.observer, converted_types()):
            qdq = build(_spec_of(layer.observer, _join(path, "_observer"), slim), True)
            edits.append(partial(layer.add_sublayer, "_observer", qdq))
        return layer
    if isinstance(layer, ConvertibleQuantedLayer):
        if not getattr(layer, "converted", False):
            edits += _plan_quanted(layer, path, remain_weight, slim, build)
        return layer
    if isinstance(layer, BaseQuanter):
        return build(_spec_of(layer, path, slim), True)
    for name, child in list(layer.named_children()):
        new = _plan_convert(child, _join(path, name), remain_weight, slim, edits, build)
        if new is not child:
            edits.append(partial(layer.add_sublayer, name, new))  # Paddle: _sub_layers[name]
    return layer


def _plan_quanted(layer: Any, path: str, remain_weight: bool, slim: bool = False,
                  build: _Build = standard_qdq) -> list[Callable[[], object]]:
    """The edits that convert a quantized layer: each weight quanter becomes a quant-dequant
    pair without its quantize half, the weight holding the integer codes that quantize half
    computes (Paddle's ``ConvertibleQuantedLayer._convert``), or a full pair over the float
    weight with ``remain_weight``; each activation quanter a full pair."""
    if slim:
        # Paddle skips a quanted layer without a weight quanter entirely, leaving its
        # activation observer in place (Q60); scales() errors propagate (Q59)
        wq = getattr(layer, "weight_quanter", None)
        if wq is None or wq.scales() is None:
            return []
    qdqs: list[tuple[str, Any]] = []
    codes: list[tuple[Any, paddle.Tensor]] = []
    for weight_name, quanter_name in layer.weights_to_quanters():
        quanter = getattr(layer, quanter_name, None)
        if quanter is None:
            continue
        spec = _spec_of(quanter, _join(path, quanter_name), slim, weight=True)
        if remain_weight:
            qdqs.append((quanter_name, build(spec, True)))
        else:
            weight = getattr(layer, weight_name)
            with paddle.no_grad():
                codes.append((weight, Quanter(spec)(weight.astype("float32"))))
            qdqs.append((quanter_name, build(spec, False)))
    for quanter_name in layer.activation_quanters():
        quanter = getattr(layer, quanter_name, None)
        if quanter is None:
            continue
        qdqs.append((quanter_name, build(_spec_of(quanter, _join(path, quanter_name), slim),
                                         True)))

    def apply() -> None:
        with paddle.no_grad():
            for weight, ints in codes:
                weight.set_value(ints.astype(weight.dtype))
        for name, qdq in qdqs:
            setattr(layer, name, qdq)
        layer.converted = True

    return [apply]


class PTQ(_Quantization):
    """Post-training quantization: ``quantize`` inserts observers, ``convert`` makes QDQ."""

    def quantize(self, model: Any, inplace: bool = False) -> Any:
        """Observers in place of the configured layers; the result is in eval mode.

        Configs whose rules have ``paddle_api_quirks`` (``profile="paddleslim"``): like
        Paddle, the copy is put in eval mode and then ``AssertionError`` is raised if the
        *caller's* model is in training mode (Q57).
        """
        inplace = _check_float_model(model, inplace)
        if self._config.rules.paddle_api_quirks:
            out = model if inplace else copy.deepcopy(model)
            if not inplace:
                out.eval()
            if model.training:
                raise AssertionError(
                    "Post-Training Quantization should not work on training models "
                    "(Paddle 3.3.1 checks the caller's model, quirk 57): call model.eval()")
            return self._prepare(out, True)
        out = self._prepare(model, inplace)
        out.eval()
        return out

    def sync(self, model: Any, group: Any = None, timeout: float = 600.0,
             allow_empty_ranks: bool = False) -> Any:
        """Merge every observer's statistics across the data-parallel group (a collective:
        every rank must call it, after calibration and before :meth:`convert`).

        Canonical observers end bit-identical to one process calibrating on all the data;
        ``profile="paddleslim"`` observers take the MAX of the ranks' scales, as PaddleSlim's
        quanters do. See :func:`refquant.adapters.paddle.distributed.sync_observers` and
        docs/distributed.md.
        """
        from .distributed import sync_observers

        return sync_observers(model, group=group, timeout=timeout,
                              allow_empty_ranks=allow_empty_ranks)


class QAT(_Quantization):
    """Quantization-aware training: ``quantize`` inserts fake quanters, ``convert`` makes QDQ."""

    def quantize(self, model: Any, inplace: bool = False) -> Any:
        """Fake quanters in place of the configured layers; the training flag is kept.

        Configs whose rules have ``paddle_api_quirks`` (``profile="paddleslim"``): like
        Paddle, ``AssertionError`` unless the model is in training mode.
        """
        inplace = _check_float_model(model, inplace)
        if self._config.rules.paddle_api_quirks and not model.training:
            raise AssertionError("Quantization-Aware Training should work on training models "
                                 "(Paddle 3.3.1): call model.train()")
        return self._prepare(model, inplace)


def _label(layer: Any) -> str:  # pragma: no cover - kept for messages in subclasses
    return layer_label(layer)
