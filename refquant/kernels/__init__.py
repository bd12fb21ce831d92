"""Exact float32 emulations of real quantize / dequantize / fake-quant kernels.

One module per family; each function's docstring states the float32 operation sequence,
rounding, clip order and bounds, scale guard, NaN/Inf/-0.0 behaviour and the source it
matches:

* :mod:`refquant.kernels.paddle`: Paddle 3.3.1 phi kernels (CPU);
* :mod:`refquant.kernels.onnx`: ONNX QuantizeLinear / DequantizeLinear (spec, ONNX Runtime);
* :mod:`refquant.kernels.torch`: PyTorch fake-quant and quantize_per_* kernels (CPU measured,
  CUDA from source);
* :mod:`refquant.kernels.nvidia`: pytorch-quantization / ModelOpt ``amax`` convention (from
  source);
* :mod:`refquant.kernels.slim`: PaddleSlim's Python-side quant-dequant used in its searches;
* :mod:`refquant.kernels.formats`, :mod:`refquant.kernels.mx`, :mod:`refquant.kernels.nvfp4`:
  low-bit element casts and block-scaled formats (docs/lowbit.md);
* :mod:`refquant.kernels.onnxruntime`: ONNX Runtime's CPU integer kernels (MLAS), per
  instruction set (docs/deploy.md);
* :mod:`refquant.kernels.tflite`, :mod:`refquant.kernels.tosa`: TFLite's integer
  requantization (double / single rounding) and TOSA RESCALE (docs/deploy.md);
* :mod:`refquant.kernels.tensorflow`, :mod:`refquant.kernels.litert`,
  :mod:`refquant.kernels.openvino`: TensorFlow's fake-quant ops (eager and XLA), LiteRT's
  QUANTIZE / DEQUANTIZE and OpenVINO's FakeQuantize (docs/kernels.md).

One input rule holds for every family (each module docstring gives the details): an empty
array gives an empty result from an elementwise function and a ``ValueError`` from a
reduction (an abs-max or a mean of nothing); a finite float64 value beyond float32's range is
never narrowed to ``inf`` (``ValueError``); big-endian arrays give the bits native ones give;
complex, bool, object and string input, non-integer or out-of-range integer arguments and
non-bool flags raise ``TypeError`` / ``ValueError`` naming the argument; nothing the caller
passed is modified.
"""
