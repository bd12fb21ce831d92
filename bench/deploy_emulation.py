"""Benchmark: refquant.deploy.onnxruntime's model-level emulation against ONNX Runtime, in
one run, on QDQ models built here with ``onnx.helper`` (no downloads).

    python bench/deploy_emulation.py [--quick]

Models: the digits demo's CNN (conv 1->16, conv 16->32 stride 2, fc 512->64, fc 64->10 on
8x8 images, batch 450) in two layouts — as the Paddle adapter exports it (Q/DQ on layer
inputs only: float convolutions, ``MatMulIntegerToFloat``) and fully quantized (every
compute op an integer kernel) — and a ResNet-18 (224x224, batch 1, BatchNormalization
folded, uint8 activations, int8 per-channel weights, as ``onnxruntime.quantization``
writes it). Printed per model: ONNX Runtime's default CPU session time, the emulator's time
(``isa="host"``), their ratio, and whether the outputs are bit-identical. Then, per integer
GEMM node of the ResNet-18: the emulator's time for the node against a plain NumPy int32
matmul ``a.astype(int32) @ b.astype(int32)`` of the node's GEMM shape, on this machine's
variant and on the saturating ``avx2`` variant.

Both sides run on one thread (``OPENBLAS_NUM_THREADS=1`` unless set, ORT's
``intra_op_num_threads=1``): on a shared machine, BLAS and ORT thread pools waiting for
busy cores make multi-threaded timings vary by an order of magnitude.
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from refquant.deploy.onnxruntime import InferenceSession  # noqa: E402

F32 = np.float32


class _Builder:
    def __init__(self, seed: int, act: type) -> None:
        from onnx import helper, numpy_helper

        self.h, self.nh = helper, numpy_helper
        self.rng = np.random.default_rng(seed)
        self.act = np.dtype(act)
        self.inits: list = []
        self.nodes: list = []
        self.k = 0

    def const(self, arr, base="c"):
        self.k += 1
        name = f"{base}{self.k}"
        self.inits.append(self.nh.from_array(np.asarray(arr), name))
        return name

    def qdq(self, x, scale, zp=None):
        zp = (0 if self.act == np.int8 else 128) if zp is None else zp
        s, z = self.const(F32(scale), "s"), self.const(np.asarray(zp, self.act), "z")
        self.k += 1
        q, d = f"q{self.k}", f"d{self.k}"
        self.nodes += [self.h.make_node("QuantizeLinear", [x, s, z], [q], name=q),
                       self.h.make_node("DequantizeLinear", [q, s, z], [d], name=d)]
        return d

    def weight(self, shape, axis, std=40.0):
        w = np.clip(np.rint(self.rng.normal(0, std, shape)), -127, 127).astype(np.int8)
        s = self.rng.uniform(0.002, 0.01, shape[axis]).astype(F32)
        names = [self.const(w, "w"), self.const(s, "ws"),
                 self.const(np.zeros(shape[axis], np.int8), "wz")]
        self.k += 1
        out = f"wd{self.k}"
        self.nodes.append(self.h.make_node("DequantizeLinear", names, [out], name=out,
                                           axis=axis))
        return out, s

    def bias(self, sx, sw):
        b = self.rng.integers(-2000, 2000, len(sw)).astype(np.int32)
        names = [self.const(b, "b"), self.const((F32(sx) * sw).astype(F32), "bs")]
        self.k += 1
        out = f"bd{self.k}"
        self.nodes.append(self.h.make_node("DequantizeLinear", names, [out], name=out,
                                           axis=0))
        return out

    def op(self, op, ins, **attrs):
        self.k += 1
        out = f"{op.lower()}{self.k}"
        self.nodes.append(self.h.make_node(op, ins, [out], name=out, **attrs))
        return out

    def model(self, shape, out) -> bytes:
        from onnx import TensorProto

        h = self.h
        g = h.make_graph(self.nodes, "g", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                    shape)],
                         [h.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                         initializer=self.inits)
        m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
        m.ir_version = 8
        return m.SerializeToString()


def digits(fused: bool, batch: int) -> bytes:
    b = _Builder(0, np.uint8 if fused else np.int8)
    relu_zp = 0 if fused else None  # fused: uint8 after ReLU (the quantizer drops the ReLU)
    x = b.qdq("x", 16 / 255 if fused else 16 / 127)
    w, sw = b.weight((16, 1, 3, 3), 0)
    if fused:
        y = b.op("Relu", [b.op("Conv", [x, w, b.bias(16 / 255, sw)], pads=[1, 1, 1, 1])])
        x = b.qdq(y, 0.05, relu_zp)
        w, sw = b.weight((32, 16, 3, 3), 0)
        y = b.op("Relu", [b.op("Conv", [x, w, b.bias(0.05, sw)], pads=[1, 1, 1, 1],
                               strides=[2, 2])])
        x = b.qdq(y, 0.05, relu_zp)
        x = b.qdq(b.op("Flatten", [x]), 0.05, relu_zp)
        w, sw = b.weight((64, 512), 0, 30)
        y = b.op("Relu", [b.op("Gemm", [x, w, b.bias(0.05, sw)], transB=1)])
        x = b.qdq(y, 0.08, relu_zp)
        w, sw = b.weight((10, 64), 0)
        return b.model([batch, 1, 8, 8], b.op("Gemm", [x, w, b.bias(0.08, sw)], transB=1))
    bias = [b.const(b.rng.normal(0, 0.1, s).astype(F32)) for s in ((1, 16, 1, 1),
                                                                    (1, 32, 1, 1), 64, 10)]
    y = b.op("Relu", [b.op("Add", [b.op("Conv", [x, w], pads=[1, 1, 1, 1]), bias[0]])])
    x = b.qdq(y, 0.05)
    w, _ = b.weight((32, 16, 3, 3), 0)
    y = b.op("Relu", [b.op("Add", [b.op("Conv", [x, w], pads=[1, 1, 1, 1], strides=[2, 2]),
                                   bias[1]])])
    shape = b.op("Concat", [b.op("Slice", [b.op("Shape", [y]), b.const(np.array([0])),
                                          b.const(np.array([1]))]),
                            b.const(np.array([-1]))], axis=0)
    x = b.qdq(b.op("Reshape", [y, shape]), 0.05)
    w, _ = b.weight((512, 64), 1, 30)
    y = b.op("Relu", [b.op("Add", [b.op("MatMul", [x, w]), bias[2]])])
    x = b.qdq(y, 0.08)
    w, _ = b.weight((64, 10), 1)
    return b.model([None, 1, 8, 8], b.op("Add", [b.op("MatMul", [x, w]), bias[3]]))


def resnet18(batch: int = 1, size: int = 224) -> bytes:
    b = _Builder(1, np.uint8)

    def conv(x, sx, cin, cout, k, stride, relu=True, scale_out=0.05):
        w, sw = b.weight((cout, cin, k, k), 0, 30)
        y = b.op("Conv", [x, w, b.bias(sx, sw)], pads=[k // 2] * 4, strides=[stride] * 2)
        if relu:
            y = b.op("Relu", [y])
        return b.qdq(y, scale_out, 0 if relu else 128), scale_out

    x, sx = b.qdq("x", 0.03), 0.03
    x, sx = conv(x, sx, 3, 64, 7, 2)
    x = b.qdq(b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4), sx, 0)
    cin = 64
    for cout, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                         (512, 1)):
        # the block input is read by the first conv and by the shortcut: one DQ each
        q_in = x.replace("d", "q", 1)
        s_name, z_name = b.nodes[-1].input[1], b.nodes[-1].input[2]
        b.k += 1
        short = f"d{b.k}"
        b.nodes.append(b.h.make_node("DequantizeLinear", [q_in, s_name, z_name], [short],
                                     name=short))
        y, sy = conv(x, sx, cin, cout, 3, stride)
        y, sy = conv(y, sy, cout, cout, 3, 1, relu=False)
        if stride != 1 or cin != cout:
            short, _ = conv(short, sx, cin, cout, 1, stride, relu=False)
        x = b.qdq(b.op("Relu", [b.op("Add", [y, short])]), 0.05, 0)
        sx, cin = 0.05, cout
    x = b.qdq(b.op("GlobalAveragePool", [x]), 0.05, 0)
    x = b.qdq(b.op("Flatten", [x]), 0.05, 0)
    w, sw = b.weight((1000, 512), 0, 30)
    return b.model([batch, 3, size, size], b.op("Gemm", [x, w, b.bias(0.05, sw)], transB=1))


def _best(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def compare(name: str, model: bytes, x: np.ndarray, repeat: int) -> InferenceSession:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    ref = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    ref.run(None, {"x": x})
    t_ort, want = _best(lambda: ref.run(None, {"x": x})[0], repeat)
    sess = InferenceSession(model)
    t_emu, got = _best(lambda: sess.run(None, {"x": x})[0], repeat)
    same = int(np.sum(np.asarray(got, F32).view(np.uint32) == np.asarray(want, F32).view(
        np.uint32)))
    ints = [e.op for e in sess.plan().integer_nodes()]
    print(f"{name:<28} ORT {t_ort * 1e3:8.2f} ms  emulator {t_emu * 1e3:9.1f} ms  "
          f"ratio {t_emu / t_ort:7.1f}x  bit-identical {same}/{want.size}  "
          f"integer kernels {len(ints)}, float compute nodes "
          f"{len(sess.plan().float_nodes())}")
    return sess


def per_kernel(sess: InferenceSession, x: np.ndarray, isa: str) -> None:
    from refquant.kernels.onnxruntime._conv import conv_geometry

    times: list[tuple[object, list, float]] = []
    last = [time.perf_counter()]

    def observe(node, vals, outs):
        now = time.perf_counter()
        times.append((node, vals, now - last[0]))
        last[0] = now

    sess.run(None, {"x": x}, isa=isa, observe=observe)
    rng = np.random.default_rng(0)
    total_k, total_np = 0.0, 0.0
    print(f"\nper integer GEMM node, isa={isa!r}: emulator time vs NumPy int32 matmul of the "
          "same shape")
    for node, vals, t in times:
        if node.op not in ("QLinearConv", "QGemm", "QLinearMatMul", "MatMulIntegerToFloat"):
            continue
        if node.op == "QLinearConv":
            w = vals[3]
            geo = conv_geometry(vals[0].shape, w.shape, auto_pad=node.attrs.get(
                "auto_pad", "NOTSET"), dilations=node.attrs.get("dilations"),
                group=node.attrs.get("group", 1), kernel_shape=None,
                pads=node.attrs.get("pads"), strides=node.attrs.get("strides"))
            m, k, n = vals[0].shape[0] * int(np.prod(geo.out)), int(np.prod(w.shape[1:])), \
                w.shape[0]
        else:
            a, bb = vals[0], vals[3] if node.op != "MatMulIntegerToFloat" else vals[1]
            m, k = a.shape[-2], a.shape[-1]
            n = bb.shape[0] if node.attrs.get("transB", 0) else bb.shape[-1]
        a8 = rng.integers(0, 256, (m, k)).astype(np.uint8)
        b8 = rng.integers(-128, 128, (k, n)).astype(np.int8)
        t_np, _ = _best(lambda a8=a8, b8=b8: a8.astype(np.int32) @ b8.astype(np.int32), 2)
        total_k, total_np = total_k + t, total_np + t_np
        print(f"  {node.name:<12} {node.op:<14} M={m:<6} K={k:<5} N={n:<5} "
              f"{t * 1e3:8.2f} ms  numpy int32 {t_np * 1e3:8.2f} ms  ratio {t / t_np:5.2f}")
    print(f"  all GEMM nodes: {total_k * 1e3:.1f} ms vs numpy int32 {total_np * 1e3:.1f} ms "
          f"(ratio {total_k / total_np:.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller batch and image")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    batch = 64 if args.quick else 450
    xd = rng.uniform(0, 16, (batch, 1, 8, 8)).astype(F32)
    compare("digits, export layout", digits(False, batch), xd, 5)
    compare("digits, fully quantized", digits(True, batch), xd, 5)
    size = 64 if args.quick else 224
    xr = rng.normal(0, 1, (1, 3, size, size)).astype(F32)
    sess = compare(f"resnet18 {size}x{size}, quantized", resnet18(1, size), xr, 3)
    per_kernel(sess, xr, "host")
    per_kernel(sess, xr, "avx2")


if __name__ == "__main__":
    main()
