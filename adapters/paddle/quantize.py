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

``convert(model, inplace=False, remain_weight=False)`` replaces every observer/quanter by a
:class:`~refquant.adapters.paddle.layers.QuantDequant` with the parameters it decided; the
weights are stored as integer codes (Paddle's ``quantize_linear`` kernel) followed by a
dequantize, or left in float with a full QDQ when ``remain_weight``. An observer that saw no
data raises :class:`~refquant.adapters.paddle.observers.NotCalibratedError` naming the
layer. The result runs in dygraph and survives ``paddle.jit.save`` / ``paddle.jit.load``
with a dynamic batch dimension.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import paddle
from paddle.nn.quant.format import ConvertibleQuantedLayer
from paddle.quantization.base_quanter import BaseQuanter

from .config import QuantConfig, SingleLayerConfig
from .layers import ObserveWrapper, QuantDequant, layer_label, quantize_weight
from .observers import NotCalibratedError

__all__ = ["PTQ", "QAT", "NotCalibratedError"]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Quantization:
    def __init__(self, config: QuantConfig) -> None:
        if not isinstance(config, QuantConfig):
            raise TypeError(
                f"config must be a refquant.adapters.paddle.QuantConfig, got "
                f"{type(config).__name__}"
            )
        self._config = config

    # -- quantize -----------------------------------------------------------------------
    def _prepare(self, model: Any, inplace: bool) -> Any:
        if not isinstance(model, paddle.nn.Layer):
            raise TypeError(f"model must be a paddle.nn.Layer, got {type(model).__name__}")
        cfgs = self._config._specify(model)
        target = model if inplace else copy.deepcopy(model)
        return self._replace(target, "", cfgs)

    def _replace(self, layer: Any, path: str, cfgs: dict[str, SingleLayerConfig | None]
                 ) -> Any:
        conf = self._config
        cfg = cfgs.get(path)
        if cfg is not None and cfg.empty and conf.profile != "paddleslim":
            cfg = None  # canonical: an empty config means "not quantized"
        if isinstance(layer, (ConvertibleQuantedLayer, ObserveWrapper, BaseQuanter)):
            return layer  # already quantized
        if cfg is not None:
            target = conf.target_type(layer)
            if target is not None:
                new = target(layer, cfg)
                if conf.profile == "paddleslim" and hasattr(new, "observe_weight_once"):
                    new.observe_weight_once = False  # Paddle observes weights every forward
                return new
        if conf.is_leaf(layer):
            if cfg is not None and cfg.activation is not None:
                return ObserveWrapper(cfg.activation._instance(layer), layer)
            return layer
        for name, child in list(layer.named_children()):
            new = self._replace(child, _join(path, name), cfgs)
            if new is not child:
                layer.add_sublayer(name, new)  # Paddle: _sub_layers[name] = new
        return layer

    # -- convert ------------------------------------------------------------------------
    def convert(self, model: Any, inplace: bool = False, remain_weight: bool = False) -> Any:
        """QDQ form of a calibrated/trained model (see the module docstring)."""
        if not isinstance(model, paddle.nn.Layer):
            raise TypeError(f"model must be a paddle.nn.Layer, got {type(model).__name__}")
        out = model if inplace else copy.deepcopy(model)
        self._slim = self._config.profile == "paddleslim"
        root = self._convert_layer(out, "", bool(remain_weight))
        return root

    def _convert_layer(self, layer: Any, path: str, remain_weight: bool) -> Any:
        slim = getattr(self, "_slim", False)
        if isinstance(layer, ObserveWrapper):
            layer.add_sublayer("_observer", _qdq_of(layer.observer, _join(path, "_observer"),
                                                    slim))
            return layer
        if isinstance(layer, ConvertibleQuantedLayer):
            if not getattr(layer, "converted", False):
                _convert_quanted(layer, path, remain_weight, slim)
            return layer
        if isinstance(layer, BaseQuanter):
            return _qdq_of(layer, path, slim)
        for name, child in list(layer.named_children()):
            new = self._convert_layer(child, _join(path, name), remain_weight)
            if new is not child:
                layer.add_sublayer(name, new)  # Paddle: _sub_layers[name] = new
        return layer

    def __str__(self) -> str:
        return self._config.details()


def _describe(path: str, quanter: Any) -> str:
    return f"'{path or '<root>'}' ({type(quanter).__name__})"


def _params_of(quanter: Any, path: str, slim: bool = False) -> tuple[np.ndarray, int, int]:
    """``(scale, axis, bits)`` of a quanter, checked to be symmetric and signed.

    ``slim`` (``profile="paddleslim"``): Paddle's ``LinearQuanter.from_quanter`` -- the
    quanter's own ``scales()`` exceptions propagate (item 59), and whatever ``scales()``
    returns is used as a signed threshold with the zero point ignored (item 61).
    """
    if slim and hasattr(quanter, "qparams"):
        qp = quanter.qparams()  # raises PaddleSlim's exception type when uncalibrated
        scale = np.asarray(qp.scale, np.float32)
        axis = -1 if qp.axis is None else int(qp.axis)
        if scale.ndim > 1:
            raise NotImplementedError(
                f"cannot convert {_describe(path, quanter)}: group-wise scales")
        return scale, axis, int(qp.bits)
    if hasattr(quanter, "qparams"):
        try:
            qp = quanter.qparams()
        except NotCalibratedError as exc:
            raise NotCalibratedError(
                f"cannot convert {_describe(path, quanter)}: it has observed no data -- run "
                f"calibration batches through the quantized model first ({exc})"
            ) from None
        signed_max = (1 << (qp.bits - 1)) - 1
        if np.any(qp.zero_point != 0) or \
                qp.qmax != signed_max or qp.qmin not in (-signed_max - 1, -signed_max):
            raise NotImplementedError(
                f"cannot convert {_describe(path, quanter)}: its parameters are asymmetric or "
                f"unsigned (qmin={qp.qmin}, qmax={qp.qmax}, zero point "
                f"{np.unique(qp.zero_point).tolist()}); Paddle's quantize_linear ignores the "
                "zero point and hard-codes signed bounds (quirk 61), so the QDQ form would be "
                "wrong. Use a symmetric, signed observer."
            )
        # a symmetric step-convention result (LSQ) becomes the threshold fl32(s * qmax)
        scale = np.asarray(qp.threshold, np.float32)
        axis = -1 if qp.axis is None else int(qp.axis)
        bits = int(qp.bits)
    else:  # a foreign (Paddle / PaddleSlim) quanter
        s = quanter.scales()
        if s is None:
            raise NotCalibratedError(f"cannot convert {_describe(path, quanter)}: scales() is "
                                     "None (not calibrated)")
        scale = np.asarray(s.numpy() if hasattr(s, "numpy") else s, np.float32)
        ax = quanter.quant_axis()
        axis = -1 if ax is None else int(ax)
        bits = int(quanter.bit_length())
        zp = quanter.zero_points()
        zpv = None if zp is None else np.asarray(zp.numpy() if hasattr(zp, "numpy") else zp)
        if zpv is not None and np.any(zpv != 0) and not slim:
            raise NotImplementedError(f"cannot convert {_describe(path, quanter)}: non-zero "
                                      "zero point (Paddle's quantize_linear ignores it)")
    if scale.ndim > 1:
        raise NotImplementedError(
            f"cannot convert {_describe(path, quanter)}: group-wise scales of shape "
            f"{scale.shape} have no quantize_linear form"
        )
    if scale.ndim == 1 and scale.size == 1 and axis < 0:
        scale = scale.reshape(())
    return scale, axis, bits


def _qdq_of(quanter: Any, path: str, slim: bool = False) -> QuantDequant:
    scale, axis, bits = _params_of(quanter, path, slim)
    return QuantDequant(scale, axis, bits)


def _convert_quanted(layer: Any, path: str, remain_weight: bool, slim: bool = False) -> None:
    if slim:
        # Paddle skips a quanted layer without a weight quanter entirely, leaving its
        # activation observer in place (item 60); scales() errors propagate (item 59)
        wq = getattr(layer, "weight_quanter", None)
        if wq is None or wq.scales() is None:
            return
    for weight_name, quanter_name in layer.weights_to_quanters():
        quanter = getattr(layer, quanter_name, None)
        if quanter is None:
            continue
        qpath = _join(path, quanter_name)
        scale, axis, bits = _params_of(quanter, qpath, slim)
        if remain_weight:
            qdq = QuantDequant(scale, axis, bits)
        else:
            weight = getattr(layer, weight_name)
            with paddle.no_grad():
                codes = quantize_weight(weight, scale, axis, bits)
                weight.set_value(codes.astype(weight.dtype))
            qdq = QuantDequant(scale, axis, bits, quantize=False)
        setattr(layer, quanter_name, qdq)
    for quanter_name in layer.activation_quanters():
        quanter = getattr(layer, quanter_name, None)
        if quanter is None:
            continue
        setattr(layer, quanter_name, _qdq_of(quanter, _join(path, quanter_name), slim))
    layer.converted = True


class PTQ(_Quantization):
    """Post-training quantization: ``quantize`` inserts observers, ``convert`` makes QDQ."""

    def quantize(self, model: Any, inplace: bool = False) -> Any:
        """Observers in place of the configured layers; the result is in eval mode.

        ``profile="paddleslim"`` configs: like Paddle, the copy is put in eval mode and then
        ``AssertionError`` is raised if the *caller's* model is in training mode (item 57).
        """
        if self._config.profile == "paddleslim":
            out = model if inplace else copy.deepcopy(model)
            if not inplace:
                out.eval()
            if model.training:
                raise AssertionError(
                    "Post-Training Quantization should not work on training models "
                    "(Paddle 3.3.1 checks the caller's model, quirk 57): call model.eval()")
            return self._prepare(out, True)
        out = self._prepare(model, bool(inplace))
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

        ``profile="paddleslim"`` configs: like Paddle, ``AssertionError`` unless the model is
        in training mode.
        """
        if self._config.profile == "paddleslim" and not model.training:
            raise AssertionError("Quantization-Aware Training should work on training models "
                                 "(Paddle 3.3.1): call model.train()")
        return self._prepare(model, bool(inplace))


def _label(layer: Any) -> str:  # pragma: no cover - kept for messages in subclasses
    return layer_label(layer)
