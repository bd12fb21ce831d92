"""Model-level emulation of deployed integer inference.

:mod:`refquant.deploy.onnxruntime` rewrites an ONNX QDQ model the way ONNX Runtime's CPU
session does and runs it with the bit-exact kernels of :mod:`refquant.kernels.onnxruntime`.
"""
