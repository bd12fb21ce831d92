"""Bit-exact emulations of ONNX Runtime 1.32's CPU integer kernels (MLAS), per instruction set.

A deployed int8 ONNX model runs integer kernels, not the float QDQ math of
:mod:`refquant.kernels.onnx`. This package computes what those kernels output, bit for bit:
exact int32 accumulation (wrap-around included), the float32 requantization of each kernel in
its own operation order, and the instruction-set variant that MLAS picks when it starts
(``isa=``, see :mod:`._dispatch`): on x86-64 CPUs without VNNI, ``vpmaddubsw`` sums the
products of adjacent K pairs of uint8 activations and int8 weights into a *saturating* int16.

Kernels (one module per family; ``docs/deploy.md`` lists each formula and source file):

* :func:`matmul_integer`, :func:`conv_integer`: int32 outputs;
* :func:`qlinear_matmul`, :func:`qlinear_conv`, :func:`qgemm`: requantized outputs
  (``MlasRequantizeOutput``);
* :func:`matmul_integer_to_float`: ``com.microsoft.MatMulIntegerToFloat`` (float32 output);
* :func:`dynamic_quantize_linear`;
* :func:`qlinear_add`, :func:`qlinear_mul`, :func:`qlinear_concat`;
  :func:`qlinear_global_average_pool`, :func:`qlinear_average_pool`;
  :func:`qlinear_leaky_relu`, :func:`qlinear_sigmoid`;
* :func:`max_pool`, :func:`reshape`, :func:`transpose` on codes.

Inputs are NumPy arrays of the ONNX types (``uint8`` / ``int8`` codes, ``float32`` scales,
zero points of their tensor's dtype, ``int32`` biases); argument order follows the ONNX
operator's inputs, attributes are keyword arguments. ``isa="host"`` (default) emulates this
machine's ONNX Runtime; ``"avx2"``, ``"avx2-vnni"``, ``"avx512"``, ``"avx512-vnni"``,
``"amx"`` and ``"neon"`` select a variant. Bad input raises ``TypeError`` / ``ValueError``
naming the argument; caller arrays are never modified.
"""

from ._dispatch import ISAS, SATURATING_ISAS, check_isa, host_isa, saturates
from ._gemm import gemm_s32, pair_saturation, weight_s8_to_u8
from .conv_integer import conv_integer
from .dynamic_quantize_linear import dynamic_quantize_linear
from .matmul_integer import matmul_integer
from .matmul_integer_to_float import matmul_integer_to_float
from .passthrough import max_pool, reshape, transpose
from .qgemm import qgemm
from .qlinear_binary import qlinear_add, qlinear_mul
from .qlinear_conv import qlinear_conv
from .qlinear_lookup import mlas_logistic, qlinear_concat, qlinear_leaky_relu, qlinear_sigmoid
from .qlinear_matmul import qlinear_matmul
from .qlinear_pool import qlinear_average_pool, qlinear_global_average_pool

__all__ = [
    "ISAS",
    "SATURATING_ISAS",
    "check_isa",
    "conv_integer",
    "dynamic_quantize_linear",
    "gemm_s32",
    "host_isa",
    "matmul_integer",
    "matmul_integer_to_float",
    "max_pool",
    "mlas_logistic",
    "pair_saturation",
    "qgemm",
    "qlinear_add",
    "qlinear_average_pool",
    "qlinear_concat",
    "qlinear_conv",
    "qlinear_global_average_pool",
    "qlinear_leaky_relu",
    "qlinear_matmul",
    "qlinear_mul",
    "qlinear_sigmoid",
    "reshape",
    "saturates",
    "transpose",
    "weight_s8_to_u8",
]
