"""Pure quantization-aware-training quanters (forward, gradients, state).

Each quanter takes the constructor arguments of its PaddleSlim / Paddle original plus
``profile=`` (``"canonical"`` default, or ``"paddleslim"`` for bit-for-bit PaddleSlim 2.6.0 on
Paddle 3.3.1) and offers ``forward(x)``, ``backward(x, grad_y) -> dict``, ``state`` /
``load_state(dict)`` and ``qparams()``.
"""

from .abs_max import FakeQuanterWithAbsMaxObserver
from .channel_wise_abs_max import FakeQuanterChannelWiseAbsMaxObserver
from .lsq import (
    ActLSQplusQuanter,
    WeightLSQplusQuanter,
    lsq_backward_paddleslim,
    lsq_forward_paddleslim,
    lsq_plus_backward_paddleslim,
    lsq_plus_forward_paddleslim,
)
from .pact import PACTQuanter

__all__ = [
    "PACTQuanter",
    "WeightLSQplusQuanter",
    "ActLSQplusQuanter",
    "FakeQuanterWithAbsMaxObserver",
    "FakeQuanterChannelWiseAbsMaxObserver",
    "lsq_forward_paddleslim",
    "lsq_backward_paddleslim",
    "lsq_plus_forward_paddleslim",
    "lsq_plus_backward_paddleslim",
]
