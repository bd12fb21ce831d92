"""refquant: the reference implementation of post-training quantization math.

Pure NumPy/SciPy: exact float32 emulations of real quantize kernels (``refquant.kernels``),
PaddleSlim-compatible and canonical observers (``refquant.observers``), QAT quanters
(``refquant.quanters``) and a conformance suite (``refquant.conformance``). The Paddle
adapter lives in ``refquant.adapters.paddle`` and is the only part that imports a framework.
"""

from .qparams import QParams, asymmetric_qparams, integer_range, symmetric_qparams

__version__ = "0.1.0"

__all__ = ["QParams", "integer_range", "symmetric_qparams", "asymmetric_qparams", "__version__"]
