"""Benchmark: refquant.kernels.onnxruntime's integer-kernel emulations against a plain NumPy
integer matmul of the same shape and against ONNX Runtime on the same input, in one run.

    python bench/deploy_kernels.py

Per kernel and variant: the emulation's time (best of 3), the ratio to ``a.astype(int32) @
b.astype(int32)`` of the GEMM's shape (the floor any NumPy emulation is measured against),
the ratio to ONNX Runtime's default CPU session (one node, inputs fed, weights constant),
and whether the host variant's output equals ORT's bit for bit. ``isa="avx2"`` adds the
int16 pair-saturation correction; its inputs are uint8 codes around zero point 128 with
weights up to +-127, as an exported QDQ model gives after ORT's s8 -> u8 rewrite.
"""

from __future__ import annotations

import time

import numpy as np

from refquant.kernels import onnxruntime as rk

F32 = np.float32


def _best(fn, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _session(op, inputs, out_type, attrs=None, domain="", consts=()):
    """A closure running one node in ORT's default CPU session (built once, outside the
    timing)."""
    from onnx import TensorProto as TP

    from refquant.conformance.targets.onnxruntime_int8 import one_node_session

    onnx_type = {np.dtype(np.uint8): TP.UINT8, np.dtype(np.int8): TP.INT8,
                 np.dtype(np.float32): TP.FLOAT, np.dtype(np.int32): TP.INT32}
    sess, feeds = one_node_session(op, inputs, [onnx_type[np.dtype(out_type)]], attrs=attrs,
                                   domain=domain, consts=tuple(consts))
    return lambda: sess.run(None, feeds)[0]


def main() -> None:
    rng = np.random.default_rng(0)
    host = rk.host_isa()
    m, k, n = 784, 576, 64  # a 3x3 convolution of 64 channels on a 28x28 image, as a GEMM
    a = np.clip(rng.normal(128, 40, (m, k)), 0, 255).astype(np.uint8)
    b = np.clip(rng.normal(0, 45, (k, n)), -128, 127).astype(np.int8)
    x = np.clip(rng.normal(128, 40, (1, 64, 28, 28)), 0, 255).astype(np.uint8)
    w = np.clip(rng.normal(0, 45, (64, 64, 3, 3)), -128, 127).astype(np.int8)
    sa, sb, sy = F32(0.02), rng.uniform(0.001, 0.01, n).astype(F32), F32(0.5)
    zp_a, zp_b, zp_y = np.uint8(128), np.int8(0), np.uint8(128)
    bias = rng.integers(-1000, 1000, n).astype(np.int32)
    bias_f = rng.normal(size=n).astype(F32)
    t_np, _ = _best(lambda: a.astype(np.int32) @ b.astype(np.int32))

    cases = [
        ("MatMulInteger", lambda isa: rk.matmul_integer(a, b, zp_a, zp_b, isa=isa),
         _session("MatMulInteger", [a, b, zp_a, zp_b], np.int32, consts=(1, 3))),
        ("MatMulIntegerToFloat",
         lambda isa: rk.matmul_integer_to_float(a, b, sa, sb, zp_a, zp_b, bias_f, isa=isa),
         _session("MatMulIntegerToFloat", [a, b, sa, sb, zp_a, zp_b, bias_f], np.float32,
                  domain="com.microsoft", consts=(1, 3, 5, 6))),
        ("QLinearMatMul",
         lambda isa: rk.qlinear_matmul(a, sa, zp_a, b, sb, zp_b, sy, zp_y, isa=isa),
         _session("QLinearMatMul", [a, sa, zp_a, b, sb, zp_b, sy, zp_y], np.uint8,
                  consts=(3, 4, 5))),
        ("QLinearConv 3x3",
         lambda isa: rk.qlinear_conv(x, sa, zp_a, w, sb, zp_b, sy, zp_y, bias, pads=[1] * 4,
                                     isa=isa),
         _session("QLinearConv", [x, sa, zp_a, w, sb, zp_b, sy, zp_y, bias], np.uint8,
                  attrs={"pads": [1] * 4}, consts=(3, 4, 5, 8))),
        ("QGemm (float out)",
         lambda isa: rk.qgemm(a, sa, zp_a, b, sb, np.zeros(n, np.int8), isa=isa),
         _session("QGemm", [a, sa, zp_a, b, sb, np.zeros(n, np.int8)], np.float32,
                  domain="com.microsoft", consts=(3, 4, 5))),
    ]
    ea = np.clip(rng.normal(128, 40, (64, 56, 56)), 0, 255).astype(np.uint8)
    eb = np.clip(rng.normal(128, 40, (64, 56, 56)), 0, 255).astype(np.uint8)
    elementwise = [
        ("QLinearAdd (64x56x56)",
         lambda isa: rk.qlinear_add(ea, sa, zp_a, eb, F32(0.03), zp_a, sy, zp_y, isa=isa),
         _session("QLinearAdd", [ea, sa, zp_a, eb, F32(0.03), zp_a, sy, zp_y], np.uint8,
                  domain="com.microsoft")),
        ("QLinearGlobalAveragePool",
         lambda isa: rk.qlinear_global_average_pool(ea[None], sa, zp_a, sy, zp_y, isa=isa),
         _session("QLinearGlobalAveragePool", [ea[None], sa, zp_a, sy, zp_y], np.uint8,
                  domain="com.microsoft")),
    ]

    print(f"host variant: {host}; NumPy int32 matmul {m}x{k}x{n}: {t_np * 1e3:.2f} ms")
    print(f"{'kernel':28s} {'isa':12s} {'ms':>8s} {'/numpy':>8s} {'/ORT':>8s}  bit-exact vs ORT")
    for name, fn, ort_fn in cases + elementwise:
        t_ort, want = _best(ort_fn)
        for isa in dict.fromkeys((host, "avx2")):
            t, got = _best(lambda fn=fn, isa=isa: fn(isa))
            same = np.array_equal(np.asarray(got).view(np.uint8), np.asarray(want).view(np.uint8))
            exact = ("yes" if same else "NO") if isa == host else "-"
            ratio_np = f"{t / t_np:8.1f}" if (name, fn, ort_fn) in cases else "       -"
            print(f"{name:28s} {isa:12s} {t * 1e3:8.2f} {ratio_np} {t / t_ort:8.1f}  {exact}")


if __name__ == "__main__":
    main()
