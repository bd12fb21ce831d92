"""Quantized tensor-parallel linears: fleet's Column/RowParallelLinear with observers/quanters.

``QuantedColumnParallelLinear`` and ``QuantedRowParallelLinear`` take the place of
``paddle.distributed.fleet.meta_parallel.ColumnParallelLinear`` / ``RowParallelLinear`` in
``PTQ.quantize`` / ``QAT.quantize`` (register them with :func:`register_parallel_layers`, or
by default once the config's mapping lists them). They compute exactly what the fleet layer
computes (the same ``c_identity`` / ``c_concat`` / ``c_split`` / ``mp_allreduce`` collectives,
the same bias placement), with the input and the local weight shard fake-quantized (or, during
PTQ, observed), and they keep the sharding: every rank holds and quantizes only its shard.

Where the statistics live (``mp`` = the model-parallel group, fleet's ``mp_group``):

=========================  ==================================  ==================================
                           ColumnParallelLinear                RowParallelLinear
=========================  ==================================  ==================================
weight shard               ``[in, out/mp]`` (split axis 1)     ``[in/mp, out]`` (split axis 0)
per-output-channel scale   axis 1: the shard's own channels,   axis 1: every shard has every
(``[in, out]`` -> axis 1)  ``local`` (no exchange; the scales  channel, partial rows: merged over
                           are the shard's slice of the full   ``mp`` (MAX: the full weight's
                           weight's scales)                    abs-max per channel)
per-tensor weight scale    merged over ``mp``                  merged over ``mp``
group-wise weight scale    ``local`` (groups along axis 0,     ``local`` (groups of rows inside a
                           scale columns are the shard's)      shard: ``in/mp`` is a multiple of
                                                               the group size)
activation (the input)     replicated on every ``mp`` rank:    ``input_is_parallel=True``: the
                           ``check`` (must agree)              shard of the last dim, merged over
                                                               ``mp``; else replicated: ``check``
=========================  ==================================  ==================================

:func:`refquant.adapters.paddle.distributed.sync_observers` reads these modes from
:meth:`mp_sync_modes` and merges over ``model_parallel_group`` after the data-parallel merge,
so every observer ends with what one process would compute from the full (unsharded) weight
and the full activation. ``convert`` then stores each shard's integer codes with the shard's
scales (Column: the shard's slice of the per-channel scales; Row: the full per-channel
scales) -- the converted model is sharded exactly like the float one.

With ``mp_degree=1`` (one process) the layers are plain quantized linears. Paddle 3.3.1 has no
CPU kernel for ``c_identity``, so more than one model-parallel rank needs GPUs.

PaddleSlim's ``QuantizedColumnParallelLinear`` / ``QuantizedRowParallelLinear``
(``paddleslim/quant/layers/parallel_linear.py``) do the same forward but never exchange
statistics: each rank's observers see only their shard (a Row layer's per-channel weight scale
is then the shard's, not the weight's).
"""

from __future__ import annotations

from typing import Any

import paddle
from paddle.nn import functional as F

from refquant.observers.groupwise import GroupWiseWeightObserver as _RefGroupWise

from .layers import QuantedLinear

__all__ = [
    "QuantedColumnParallelLinear",
    "QuantedRowParallelLinear",
    "register_parallel_layers",
    "PARALLEL_LAYER_MAPPING",
]


def _mp_ops() -> Any:
    from paddle.distributed.fleet.layers.mpu import mp_ops

    return mp_ops


def _weight_mode(quanter: Any, split_axis: int) -> str:
    """``local`` | ``merge`` for a weight quanter of a weight split along ``split_axis``."""
    if quanter is None:
        return "local"
    ref = getattr(quanter, "reference", None)
    if isinstance(ref, _RefGroupWise) or (ref is None and "GroupWise" in type(quanter).__name__):
        return "local"  # a refquant group-wise observer, or a foreign one by its name
    axis = getattr(quanter, "_axis", None)
    if ref is None and hasattr(quanter, "quant_axis"):
        axis = quanter.quant_axis()
    if axis is not None and axis >= 0 and int(axis) == split_axis:
        return "local"
    return "merge"


class _ParallelBase(QuantedLinear):
    """Shared part: the fleet layer's attributes, the quanters, the sync modes."""

    #: axis along which the fleet layer splits its ``[in, out]`` weight
    split_axis = 1

    def __init__(self, layer: Any, q_config: Any) -> None:
        super().__init__(layer, q_config)
        self._name = getattr(layer, "_name", None)
        self.is_mp = bool(getattr(layer, "is_mp", False))
        self.model_parallel_group = getattr(layer, "model_parallel_group", None)
        self.world_size = int(getattr(layer, "world_size", 1))

    def mp_sync_modes(self) -> dict[str, str]:
        """``{quanter attribute: "merge" | "check" | "local"}`` over the model-parallel group."""
        return {
            "weight_quanter": _weight_mode(self.weight_quanter, self.split_axis),
            "activation_quanter": self._activation_mode(),
        }

    def _activation_mode(self) -> str:
        return "check"


class QuantedColumnParallelLinear(_ParallelBase):
    """Quantized ``ColumnParallelLinear``: ``y_shard = q(x) @ q(W_shard) + b_shard``.

    The weight shard is ``[in, out/mp]``; its per-output-channel scales (axis 1) are the
    shard's own. The input is replicated on every model-parallel rank (``c_identity``); with
    ``gather_output`` the shards' outputs are concatenated (``c_concat``).
    """

    split_axis = 1

    def __init__(self, layer: Any, q_config: Any) -> None:
        super().__init__(layer, q_config)
        self.gather_output = bool(getattr(layer, "gather_output", True))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        qx, qw = self._quant_inputs(x)
        if self.is_mp:
            qx = _mp_ops()._c_identity(qx, group=self.model_parallel_group)
        out = F.linear(qx, qw, self.bias, name=self._name)
        if self.gather_output and self.is_mp:
            out = _mp_ops()._c_concat(out, group=self.model_parallel_group)
        return out


class QuantedRowParallelLinear(_ParallelBase):
    """Quantized ``RowParallelLinear``: ``y = mp_allreduce(q(x_shard) @ q(W_shard)) + b``.

    The weight shard is ``[in/mp, out]``: every shard has every output channel, so the
    per-channel scales are merged over the model-parallel group. The activation observer sees
    the layer's input: the local shard of the last dimension when ``input_is_parallel``
    (merged over the group), else the full replicated input (split after quantization, which
    commutes with a per-tensor quantizer).
    """

    split_axis = 0

    def __init__(self, layer: Any, q_config: Any) -> None:
        super().__init__(layer, q_config)
        self.input_is_parallel = bool(getattr(layer, "input_is_parallel", False))

    def _activation_mode(self) -> str:
        return "merge" if self.input_is_parallel else "check"

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        qx, qw = self._quant_inputs(x)
        if self.is_mp and not self.input_is_parallel:
            qx = _mp_ops()._c_split(qx, group=self.model_parallel_group)
        if not self.is_mp:
            return F.linear(qx, qw, self.bias, name=self._name)
        out = F.linear(qx, qw, name=self._name)
        out = _mp_ops()._mp_allreduce(out, group=self.model_parallel_group,
                                      use_calc_stream=True, use_model_parallel=True)
        return out + self.bias if self.bias is not None else out


def _fleet_layers() -> tuple[type, type]:
    from paddle.distributed.fleet.meta_parallel import ColumnParallelLinear, RowParallelLinear

    return ColumnParallelLinear, RowParallelLinear


def _mapping() -> dict[type, type]:
    col, row = _fleet_layers()
    return {col: QuantedColumnParallelLinear, row: QuantedRowParallelLinear}


#: fleet layer -> quantized layer (what the QuantConfig default mapping should list)
PARALLEL_LAYER_MAPPING: dict[type, type] = _mapping()


def register_parallel_layers(config: Any) -> Any:
    """Map fleet's Column/RowParallelLinear to the quantized layers in ``config``.

    ``config`` is a :class:`refquant.adapters.paddle.QuantConfig` (or Paddle's): calls its
    ``add_qat_layer_mapping`` for both layers and returns it.
    """
    if not hasattr(config, "add_qat_layer_mapping"):
        raise TypeError(f"config must be a QuantConfig, got {type(config).__name__}")
    for src, dst in PARALLEL_LAYER_MAPPING.items():
        config.add_qat_layer_mapping(src, dst)
    return config
