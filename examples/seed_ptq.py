"""The example of PaddleSlim's dygraph PTQ guide, on refquant's Paddle adapter.

Differences from the guide's code:

* imports: ``refquant.adapters.paddle`` instead of ``paddle.quantization`` and
  ``paddleslim.quant.observers`` (same names, same calls);
* ``ColumnParallelLinear`` / ``RowParallelLinear`` need a distributed (fleet) environment, so
  a custom ``[in, out]`` layer, :class:`ColumnParallelLinearStandIn`, stands in for them and is
  mapped with ``add_qat_layer_mapping`` to the adapter's ``QuantedLinear`` (the channel axis
  of its weight, 1, is inferred from the ``[in, out]`` layout);
* the guide passes undefined ``activation``/``weight`` names to ``add_type_config``; here they
  are the MSE observers it creates;
* calibration uses random data (``paddle.vision.models.mobilenet_v1`` with random weights);
* the guide quantizes a model left in training mode with ``inplace=True``, which Paddle's PTQ
  rejects (``AssertionError``, quirk 57); the adapter puts the model in evaluation mode.

Run: ``python examples/seed_ptq.py`` (about a minute on 2 CPU cores at full size;
``--small`` for a few seconds).
"""

from __future__ import annotations

import argparse

import numpy as np
import paddle
from paddle.vision.models import mobilenet_v1
from refquant.adapters.paddle import PTQ, QuantConfig
from refquant.adapters.paddle.layers import QuantedLinear
from refquant.adapters.paddle.observers import (  # noqa: F401  (the guide's import list)
    AbsMaxChannelWiseWeightObserver,
    AVGObserver,
    EMDObserver,
    HistObserver,
    KLObserver,
    MSEChannelWiseWeightObserver,
    MSEObserver,
)


class ColumnParallelLinearStandIn(paddle.nn.Layer):
    """A linear layer with its own class (weight ``[in, out]``), like ColumnParallelLinear."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = self.create_parameter([in_features, out_features])
        self.bias = self.create_parameter([out_features], is_bias=True)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.nn.functional.linear(x, self.weight, self.bias)


class MobileNetWithHead(paddle.nn.Layer):
    """mobilenet_v1 followed by the custom linear head."""

    def __init__(self, scale: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        self.backbone = mobilenet_v1(scale=scale, num_classes=num_classes)
        self.head = ColumnParallelLinearStandIn(num_classes, 10)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.backbone(x))


def main(scale: float = 1.0, resolution: int = 224, batch: int = 4, ptq_step: int = 4,
         seed: int = 0) -> paddle.nn.Layer:
    """Quantize, calibrate on random data, convert; returns the converted model."""
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    # create the model
    model = MobileNetWithHead(scale=scale)
    # define QuantConfig
    q_config = QuantConfig(activation=None, weight=None)
    # define act_quanter and weight_quanter
    act_quanter = MSEObserver()
    weight_quanter = MSEObserver()
    # map the ColumnParallelLinear stand-in to a quantized linear layer
    q_config.add_qat_layer_mapping(ColumnParallelLinearStandIn, QuantedLinear)
    # for each layer of these types make them quantizable
    q_config.add_type_config(
        [paddle.nn.Linear, ColumnParallelLinearStandIn],
        activation=act_quanter,
        weight=weight_quanter,
    )
    ptq = PTQ(q_config)
    model = ptq.quantize(model, inplace=True)
    # ptq sample
    for step in range(ptq_step + 1):
        data = rng.standard_normal((batch, 3, resolution, resolution)).astype(np.float32)
        model(paddle.to_tensor(data))
        if step == ptq_step:
            break
    # convert to quant model that can evaluate and export
    model = ptq.convert(model, inplace=True)
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true",
                        help="mobilenet_v1(scale=0.25) on 32x32 inputs")
    args = parser.parse_args()
    if args.small:
        converted = main(scale=0.25, resolution=32, batch=2, ptq_step=2)
    else:
        converted = main()
    print(converted.head)
    print(converted.backbone.fc)
