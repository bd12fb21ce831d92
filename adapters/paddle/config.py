"""QuantConfig: which quanter/observer each layer gets, with a fixed priority order.

Resolution, for every layer of the model (the root included), highest priority first:

1. **layer** -- ``add_layer_config(layer, ...)``: that very layer object;
2. **name** -- ``add_name_config(name, ...)``: the layer's Paddle ``full_name()``
   (``"linear_3"``) *or* its attribute path in the model (``"features.0"``, as in
   ``model.named_sublayers()``), whichever matches;
3. **type** -- ``add_type_config(T, ...)``: ``isinstance(layer, T)``, so **subclasses of T
   match too** (Paddle matches the exact type only); when several configured types match,
   the most derived one wins (the first in the layer's MRO);
4. **parent** -- the configuration its parent layer resolved to (so a config given to a
   block applies to everything inside it unless something more specific says otherwise);
5. **global** -- ``QuantConfig(activation, weight)``.

The order does not depend on the order of the ``add_*`` calls: a later ``add_name_config``
never overrides an ``add_layer_config`` (in Paddle 3.3.1 ``add_layer_config`` is stored as a
name config and the last call wins, quirk 54). A configuration whose activation and weight
are both ``None`` means "do not quantize this layer" and is inherited like any other.

Factories are any ``paddle.quantization.factory.QuanterFactory`` (this package's observers
and quanters, Paddle's, PaddleSlim's); a class passed instead (``AbsmaxObserver`` or a layer
class such as ``HistObserverLayer``) is a ``TypeError`` naming the factory to call.

``PTQ(config)`` / ``QAT(config)`` keep a :meth:`QuantConfig.snapshot` of the config, as
Paddle keeps a deep copy: configuring ``config`` afterwards does not change them. A
``paddle.nn.quant.Stub(observer)`` that the config quantizes is observed by its own
``observer`` (Paddle's ``QuanterStub``), else by the resolved activation factory.

``QuantConfig(..., profile="paddleslim")`` reproduces Paddle 3.3.1's ``QuantConfig`` bug for
bug instead (docs/divergences.md Q54-Q56): ``add_layer_config`` is a name config on
``full_name()`` and the last ``add_layer_config``/``add_name_config`` call for a name wins;
type configs match the exact type only; names match ``full_name()`` only; each child starts
from its parent's resolved config (the global one below the root); the root model is never
configured; a config with both factories ``None`` still makes a layer "quantifiable" (a
mapped layer is replaced by a quanted layer without quanters); only Paddle's default
mapping (Linear, Conv2D) and leaves apply, by exact type. PTQ/QAT/convert then follow
Paddle too (Q57, Q59-Q61; see :mod:`.quantize`). The choice is the profile's
``paddle_api_quirks`` rule (:class:`refquant.profiles.ProfileRules`), so a profile registered
later gets the adapter's own rules unless it asks for Paddle's.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import paddle
from paddle import nn

from refquant.profiles import ProfileRules, get_profile

from . import layers as ql
from .parallel import PARALLEL_LAYER_MAPPING

__all__ = ["QuantConfig", "SingleLayerConfig", "DEFAULT_QAT_LAYER_MAPPING",
           "SLIM_QAT_LAYER_MAPPING", "class_instead_of_factory"]

#: float layer type -> quantized layer type (exact type first, then the nearest base class)
DEFAULT_QAT_LAYER_MAPPING: dict[type, type] = {
    nn.Linear: ql.QuantedLinear,
    nn.Conv2D: ql.QuantedConv2D,
    nn.Conv2DTranspose: ql.QuantedConv2DTranspose,
    nn.Conv1D: ql.QuantedConv1D,
    # fleet's ColumnParallelLinear / RowParallelLinear -> QuantedColumn/RowParallelLinear
    **PARALLEL_LAYER_MAPPING,
}
#: Paddle 3.3.1's default mapping (``profile="paddleslim"``)
SLIM_QAT_LAYER_MAPPING: dict[type, type] = {
    nn.Linear: ql.QuantedLinear,
    nn.Conv2D: ql.QuantedConv2D,
}


class SingleLayerConfig:
    """The ``(activation, weight)`` factories of one layer (Paddle's class of that name)."""

    def __init__(self, activation: Any, weight: Any) -> None:
        self._activation = activation
        self._weight = weight

    @property
    def activation(self) -> Any:
        return self._activation

    @property
    def weight(self) -> Any:
        return self._weight

    @property
    def empty(self) -> bool:
        return self._activation is None and self._weight is None

    def __str__(self) -> str:
        return f"activation: {self._activation}\nweight: {self._weight}"

    __repr__ = __str__


#: layer classes whose factory's name is not the layer's name without ``Layer``
_FACTORY_OF_LAYER = {"PercentHistObserverLayer": "HistObserver"}


def _factory_name(cls: type) -> str:
    """The factory that builds layers of class ``cls`` (``cls`` itself if it is a factory)."""
    if not issubclass(cls, paddle.nn.Layer):
        return cls.__name__
    module = sys.modules.get(cls.__module__)  # loaded: it defines cls
    for attr in getattr(module, "__all__", ()):
        if getattr(getattr(module, attr), "_layer", None) is cls:
            return attr
    name = cls.__name__
    return _FACTORY_OF_LAYER.get(name, name[:-len("Layer")] if name.endswith("Layer") else name)


def class_instead_of_factory(name: str, cls: type, kind: str = "a factory instance"
                             ) -> TypeError:
    """The ``TypeError`` for a class passed as argument ``name`` where a factory *instance*
    (``kind``) is expected; it names the class and the factory to call instead."""
    factory = _factory_name(cls)
    if factory == cls.__name__:
        return TypeError(f"{name} must be {kind}, got the class {cls.__name__}: "
                         f"write {factory}() with its arguments")
    return TypeError(f"{name} must be {kind}, got the layer class {cls.__name__}: "
                     f"pass its factory {factory}() with its arguments (it builds the "
                     f"{cls.__name__} of each layer)")


def _check_factory(value: Any, name: str) -> Any:
    """``value`` if it is a factory instance (Paddle's ``QuanterFactory`` protocol: a
    ``_instance(layer)`` method) or ``None``; else ``TypeError`` naming ``name``."""
    if value is None:
        return None
    if isinstance(value, type):
        raise class_instead_of_factory(name, value)
    if not callable(getattr(value, "_instance", None)):
        raise TypeError(
            f"{name} must be a quanter/observer factory (paddle.quantization.factory."
            f"QuanterFactory) or None, got {type(value).__name__}"
        )
    return value


def _check_layer_type(t: Any, name: str) -> type:
    if not (isinstance(t, type) and issubclass(t, paddle.nn.Layer)):
        raise TypeError(f"{name} must be a subclass of paddle.nn.Layer, got {t!r}")
    return t


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class QuantConfig:
    """How to quantize a model: global, per-type, per-name and per-layer factories.

    See the module docstring for the priority rule (layer > name > type > parent >
    global, independent of call order; type configs match subclasses). ``profile`` is a
    registered profile's name (or its :class:`~refquant.profiles.ProfileRules`); with
    ``rules.paddle_api_quirks`` the config resolves as Paddle 3.3.1's does.
    """

    def __init__(self, activation: Any = None, weight: Any = None, *,
                 profile: str | ProfileRules = "canonical") -> None:
        self._rules = get_profile(profile)
        a = _check_factory(activation, "activation")
        w = _check_factory(weight, "weight")
        self._global = None if (a is None and w is None) else SingleLayerConfig(a, w)
        self._by_layer: dict[int, tuple[Any, SingleLayerConfig]] = {}
        self._by_name: dict[str, SingleLayerConfig] = {}
        self._by_type: dict[type, SingleLayerConfig] = {}
        self._mapping: dict[type, type] = self.default_qat_layer_mapping
        self._custom_mapping: dict[type, type] = {}
        self._leaves: list[type] = []
        self._resolved: dict[str, SingleLayerConfig | None] = {}
        self._model: Any = None

    def snapshot(self) -> QuantConfig:
        """An independent copy of the settings, as ``PTQ(config)`` / ``QAT(config)`` keep
        (Paddle deep-copies the config there): later ``add_*`` calls on either object do not
        change the other. The configured layer objects and the factories are shared, not
        copied (a layer config keeps matching the caller's layers)."""
        out = copy.copy(self)
        out._by_layer = dict(self._by_layer)
        out._by_name = dict(self._by_name)
        out._by_type = dict(self._by_type)
        out._mapping = dict(self._mapping)
        out._custom_mapping = dict(self._custom_mapping)
        out._leaves = list(self._leaves)
        out._resolved = {}
        out._model = None
        return out

    @property
    def rules(self) -> ProfileRules:
        """The profile's rules this config follows."""
        return self._rules

    @property
    def profile(self) -> str:
        """The profile's name (``"canonical"``, ``"paddleslim"``, ...)."""
        return self._rules.name

    # -- configuration ------------------------------------------------------------------
    def add_layer_config(self, layer: Any, activation: Any = None, weight: Any = None) -> None:
        """Configure these layer objects (a layer or a list of layers); highest priority."""
        cfg = SingleLayerConfig(_check_factory(activation, "activation"),
                                _check_factory(weight, "weight"))
        items = _as_list(layer)
        for item in items:  # every item is checked before any is configured
            if not isinstance(item, paddle.nn.Layer):
                raise TypeError(f"layer must be a paddle.nn.Layer or a list of them, "
                                f"got {type(item).__name__}")
        for item in items:
            if self._rules.paddle_api_quirks:  # Paddle: a name config on full_name (Q54)
                self._by_name[item.full_name()] = cfg
            else:
                self._by_layer[id(item)] = (item, cfg)

    def add_name_config(self, layer_name: Any, activation: Any = None,
                        weight: Any = None) -> None:
        """Configure layers by ``full_name()`` or attribute path (a name or a list)."""
        cfg = SingleLayerConfig(_check_factory(activation, "activation"),
                                _check_factory(weight, "weight"))
        items = _as_list(layer_name)
        for item in items:
            if not isinstance(item, str) or not item:
                raise TypeError(f"layer_name must be a non-empty str or a list of them, "
                                f"got {item!r}")
        for item in items:
            self._by_name[item] = cfg

    def add_type_config(self, layer_type: Any, activation: Any = None,
                        weight: Any = None) -> None:
        """Configure every layer that is an instance of these types (subclasses included)."""
        cfg = SingleLayerConfig(_check_factory(activation, "activation"),
                                _check_factory(weight, "weight"))
        types = [_check_layer_type(item, "layer_type") for item in _as_list(layer_type)]
        for t in types:
            self._by_type[t] = cfg

    def add_qat_layer_mapping(self, source: Any, target: Any) -> None:
        """Replace layers of type ``source`` with ``target(layer, q_config)`` when quantized.

        ``target`` follows Paddle's quanted-layer protocol: its constructor takes the float
        layer and a config with ``.activation`` / ``.weight`` factories; for ``convert`` it
        lists ``weights_to_quanters()`` and ``activation_quanters()``.
        :class:`refquant.adapters.paddle.layers.QuantedLinear` serves any layer with an
        ``[in, out]`` weight (e.g. a ColumnParallelLinear stand-in).
        """
        _check_layer_type(source, "source")
        _check_layer_type(target, "target")
        if not all(callable(getattr(target, m, None))
                   for m in ("weights_to_quanters", "activation_quanters")):
            raise TypeError(
                f"target must be a quantized layer class (weights_to_quanters() and "
                f"activation_quanters(), e.g. layers.QuantedLinear), got {target.__name__}")
        self._mapping[source] = target
        self._custom_mapping[source] = target

    def add_customized_leaf(self, layer_type: Any) -> None:
        """Treat layers of this type as leaves: observed as a whole, children untouched."""
        self._leaves.append(_check_layer_type(layer_type, "layer_type"))

    @property
    def customized_leaves(self) -> list[type]:
        return list(self._leaves)

    @property
    def qat_layer_mappings(self) -> dict[type, type]:
        return dict(self._mapping)

    @property
    def default_qat_layer_mapping(self) -> dict[type, type]:
        if self._rules.paddle_api_quirks:
            return dict(SLIM_QAT_LAYER_MAPPING)
        return dict(DEFAULT_QAT_LAYER_MAPPING)

    @property
    def global_config(self) -> SingleLayerConfig | None:
        return self._global

    # -- resolution ---------------------------------------------------------------------
    def _type_config(self, layer: Any) -> SingleLayerConfig | None:
        for cls in type(layer).__mro__:
            if cls in self._by_type:
                return self._by_type[cls]
        return None

    def config_for(self, layer: Any, path: str, parent: SingleLayerConfig | None
                   ) -> SingleLayerConfig | None:
        """The configuration ``layer`` (at attribute path ``path``) resolves to."""
        if self._rules.paddle_api_quirks:  # exact type, then full name (Q55)
            cfg = self._by_type.get(type(layer), parent)
            return self._by_name.get(layer.full_name(), cfg)
        hit = self._by_layer.get(id(layer))
        if hit is not None and hit[0] is layer:
            return hit[1]
        for key in (path, layer.full_name()):
            if key and key in self._by_name:
                return self._by_name[key]
        by_type = self._type_config(layer)
        if by_type is not None:
            return by_type
        return parent

    def _specify(self, model: Any) -> dict[str, SingleLayerConfig | None]:
        """Resolve every layer of ``model`` (pre-order); returns ``{path: config}``.

        Paths (``""`` for the root, ``"features.0"``) identify layers across a deep copy.
        """
        self._model = model
        self._resolved = {}

        slim = self._rules.paddle_api_quirks

        def walk(layer: Any, path: str, parent: SingleLayerConfig | None) -> None:
            if slim and not path:
                cfg = None  # Paddle never configures the root (Q56)
            else:
                cfg = self.config_for(layer, path, parent)
            self._resolved[path] = cfg
            start = cfg if (cfg is not None or not slim) else self._global
            for name, child in layer.named_children():
                walk(child, f"{path}.{name}" if path else name, start)

        walk(model, "", None if slim else self._global)
        return dict(self._resolved)

    def resolved(self, path: str) -> SingleLayerConfig | None:
        """The resolved config at ``path`` in the last specified model (``None``: none)."""
        cfg = self._resolved.get(path)
        if self._rules.paddle_api_quirks:
            return cfg  # an empty config still counts as quantifiable (Q56)
        return None if cfg is None or cfg.empty else cfg

    def is_leaf(self, layer: Any) -> bool:
        """No sublayers, or a type declared with :meth:`add_customized_leaf`."""
        if not layer._sub_layers:
            return True
        if self._rules.paddle_api_quirks:
            return type(layer) in self._leaves or type(layer) in (nn.ReLU, nn.AvgPool2D)
        return bool(self._leaves) and isinstance(layer, tuple(self._leaves))

    def target_type(self, layer: Any) -> type | None:
        """The quanted type ``layer`` maps to: its exact type, else its nearest base class."""
        if self._rules.paddle_api_quirks:
            return self._custom_mapping.get(type(layer), self._mapping.get(type(layer)))
        for cls in type(layer).__mro__:
            if cls in self._custom_mapping:
                return self._custom_mapping[cls]
            if cls in self._mapping:
                return self._mapping[cls]
        return None

    # -- reporting ----------------------------------------------------------------------
    def details(self) -> str:
        """The resolved configuration of each layer of the last model (or the settings)."""
        if self._model is None:
            return str(self)
        lines: list[str] = []

        def walk(layer: Any, path: str, depth: int) -> None:
            cfg = self.resolved(path)
            desc = "not quantized" if cfg is None else (
                f"activation={cfg.activation}, weight={cfg.weight}")
            lines.append(f"{'  ' * depth}{path or '<root>'}: {type(layer).__name__} -- {desc}")
            for name, child in layer.named_children():
                walk(child, f"{path}.{name}" if path else name, depth + 1)

        walk(self._model, "", 0)
        return "\n".join(lines)

    def __str__(self) -> str:
        out = [f"Global config:\n{self._global}"]
        if self._by_type:
            out.append("Layer type config:\n" + "\n".join(
                f"  {t.__name__}: {c.activation} / {c.weight}" for t, c in self._by_type.items()))
        if self._by_name:
            out.append("Layer name config:\n" + "\n".join(
                f"  {n}: {c.activation} / {c.weight}" for n, c in self._by_name.items()))
        if self._by_layer:
            out.append("Layer config:\n" + "\n".join(
                f"  {ql.layer_label(layer)}: {c.activation} / {c.weight}"
                for layer, c in self._by_layer.values()))
        return "\n".join(out)

    __repr__ = __str__
