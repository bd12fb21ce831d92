"""Observers of torch.ao (``torch/ao/quantization/observer.py``), bug for bug as torch 2.13
computes them on CPU, in NumPy (no torch import).

``from refquant.observers import torch as tobs``; ``tobs.MinMaxObserver(dtype="quint8",
qscheme="per_tensor_affine")``, ``observe(x)``, ``compute()`` -> ``QParams`` in torch's step
convention, scale and zero point bit-identical to torch's ``calculate_qparams()``.
``HistogramObserver(version="2.13" | "torchao-0.18")``; ``PlaceholderObserver`` /
``NoopObserver`` pass through; ``Canonical*Observer`` (``canonical.py``) are the order-free,
mergeable counterparts. The only profile is ``"torch"`` (:data:`refquant.profiles.TORCH`).
Where torch raises
``AssertionError`` / ``NotImplementedError`` for a rejected combination, these raise
:class:`TorchAssertionError` / :class:`TorchNotImplementedError`, subclasses of those and of
``ValueError``.
"""

from refquant.observers.torch._qparams import (
    DTYPES,
    QSCHEMES,
    TorchAssertionError,
    TorchIndexError,
    TorchNotImplementedError,
    TorchRuntimeError,
)
from refquant.observers.torch.canonical import (
    CanonicalHistogramObserver,
    CanonicalMinMaxObserver,
    CanonicalPerChannelMinMaxObserver,
)
from refquant.observers.torch.fixed import FixedQParamsObserver
from refquant.observers.torch.histogram import HistogramObserver
from refquant.observers.torch.minmax import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from refquant.observers.torch.placeholder import (
    CalculateQParamsError,
    NoopObserver,
    PlaceholderObserver,
)

__all__ = [
    "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver", "FixedQParamsObserver", "HistogramObserver",
    "PlaceholderObserver", "NoopObserver", "CalculateQParamsError",
    "CanonicalMinMaxObserver", "CanonicalPerChannelMinMaxObserver",
    "CanonicalHistogramObserver",
    "TorchAssertionError",
    "TorchNotImplementedError", "TorchIndexError", "TorchRuntimeError", "DTYPES", "QSCHEMES",
]
