"""GPU check of the Paddle adapter (never part of CI): correctness on the device, then speed.

Run on a machine with a CUDA build of Paddle::

    python bench/gpu_check.py              # checks + benchmark on gpu:0
    python bench/gpu_check.py --no-bench   # checks only

1. **Adapter vs reference on the GPU.** A small conv/linear model is calibrated on the GPU
   through ``refquant.adapters.paddle.PTQ`` with every observer in both profiles; the inputs
   each observer saw are captured and fed to the NumPy reference observers on the host. The
   exact families (abs-max, AVG, histogram counts, channel-wise, group-wise) must agree bit
   for bit; the PaddleSlim-profile MSE/EMD searches (float sums in the GPU's reduction
   order) must agree unless the reference's decision margin is inside its bound.
2. **Converted model on the GPU** equals the reference kernels layer by layer
   (``quantize_linear`` / ``dequantize_linear``), and survives ``paddle.jit.save`` /
   ``paddle.jit.load`` with a dynamic batch.
3. **Benchmark**: ``bench/ptq_mobilenet.py`` on ``gpu:0`` (ratios vs PaddleSlim).

Prints one line per check (``PASS`` / ``FAIL`` / ``SKIP`` with the reason) and exits non-zero
on any failure. Without a GPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import paddle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _bits(a: Any) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


class Net(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.relu = paddle.nn.ReLU()
        self.fc = paddle.nn.Linear(8 * 16 * 16, 128)

    def forward(self, x: Any) -> Any:
        return self.fc(self.relu(self.conv(x)).flatten(1))


def _model() -> Net:
    paddle.seed(0)
    m = Net()
    m.eval()
    return m


def _capture(model: Net, batches: list) -> dict[str, list[np.ndarray]]:
    seen: dict[str, list[np.ndarray]] = {"conv": [], "relu": [], "fc": []}
    hooks = [getattr(model, k).register_forward_pre_hook(
        lambda layer, inp, k=k: seen[k].append(inp[0].numpy().copy())) for k in seen]
    for b in batches:
        model(b)
    for h in hooks:
        h.remove()
    return seen


def check_observers(batches: list) -> list[tuple[str, bool, str]]:
    from refquant.adapters.paddle import PTQ, QuantConfig
    from refquant.adapters.paddle import observers as A

    from refquant import observers as _  # noqa: F401
    from refquant.observers.absmax import AbsmaxObserver
    from refquant.observers.avg import AVGObserver
    from refquant.observers.channel_wise import (
        AbsMaxChannelWiseWeightObserver,
        MSEChannelWiseWeightObserver,
    )
    from refquant.observers.emd import EMDObserver
    from refquant.observers.hist import HistObserver
    from refquant.observers.kl import KLObserver
    from refquant.observers.mse import MSEObserver

    acts = [("AbsmaxObserver", AbsmaxObserver, {}), ("AVGObserver", AVGObserver, {}),
            ("MSEObserver", MSEObserver, {}), ("EMDObserver", EMDObserver, {}),
            ("HistObserver", HistObserver, {}), ("KLObserver", KLObserver, {})]
    weights = [("AbsMaxChannelWiseWeightObserver", AbsMaxChannelWiseWeightObserver),
               ("MSEChannelWiseWeightObserver", MSEChannelWiseWeightObserver)]
    seen = _capture(_model(), batches)
    out = []
    for profile in ("canonical", "paddleslim"):
        for (name, ref_cls, kw), (wname, wref_cls) in zip(
                acts, weights * 3, strict=True):
            model = _model()
            cfg = QuantConfig(activation=getattr(A, name)(profile=profile, **kw),
                              weight=getattr(A, wname)(profile=profile))
            q = PTQ(cfg).quantize(model)
            for b in batches:
                q(b)
            ok, why = True, ""
            for key, layer in (("conv", q.conv.activation_quanter),
                               ("relu", q.relu._observer), ("fc", q.fc.activation_quanter)):
                ref = ref_cls(profile=profile, **kw)
                for arr in seen[key]:
                    ref.observe(arr)
                ours, want = layer.qparams(), ref.compute()
                if not np.array_equal(_bits(ours.scale), _bits(want.scale)):
                    bound = want.extra.get("bound")
                    inside = name in ("MSEObserver", "EMDObserver") and want.margin is not None \
                        and bound is not None and float(np.min(want.margin)) <= 2 * bound
                    if not inside:
                        ok, why = False, f"{key}: {ours.scale} vs {want.scale}"
            for key, axis in (("conv", 0), ("fc", 1)):
                wref = wref_cls(profile=profile, axis=axis)
                wref.observe(getattr(model, key).weight.numpy())
                got = getattr(q, key).weight_quanter.qparams().scale
                if not np.array_equal(_bits(got), _bits(wref.compute().scale)):
                    ok, why = False, f"{key} weight ({wname})"
            out.append((f"observers {name} + {wname} [{profile}]", ok, why))
    return out


def check_convert(batches: list) -> list[tuple[str, bool, str]]:
    from refquant.adapters.paddle import PTQ, QuantConfig
    from refquant.adapters.paddle import observers as A

    from refquant.kernels import paddle as pk

    F = paddle.nn.functional
    model = _model()
    ptq = PTQ(QuantConfig(activation=A.KLObserver(),
                          weight=A.AbsMaxChannelWiseWeightObserver()))
    q = ptq.quantize(model)
    for b in batches:
        q(b)
    sc = {k: np.asarray(v.qparams().scale) for k, v in (
        ("ca", q.conv.activation_quanter), ("cw", q.conv.weight_quanter),
        ("r", q.relu._observer), ("fa", q.fc.activation_quanter), ("fw", q.fc.weight_quanter))}
    c = ptq.convert(q)
    x = batches[0]
    got = c(x).numpy()

    def qdq(v: np.ndarray, s: np.ndarray, axis: int = -1) -> np.ndarray:
        z = np.zeros_like(np.asarray(s, np.float32))
        return pk.dequantize_linear(pk.quantize_linear(v, s, z, quant_axis=axis), s, z,
                                    quant_axis=axis)

    h = qdq(x.numpy(), sc["ca"])
    h = F.conv2d(paddle.to_tensor(h), paddle.to_tensor(qdq(model.conv.weight.numpy(), sc["cw"],
                                                           0)),
                 bias=model.conv.bias, padding=1).numpy()
    h = F.relu(paddle.to_tensor(qdq(h, sc["r"]))).numpy().reshape(h.shape[0], -1)
    want = F.linear(paddle.to_tensor(qdq(h, sc["fa"])),
                    paddle.to_tensor(qdq(model.fc.weight.numpy(), sc["fw"], 1)),
                    model.fc.bias).numpy()
    out = [("convert == reference kernels layer by layer (GPU matmul/conv on both sides)",
            bool(np.array_equal(_bits(got), _bits(want))), "")]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "m")
        paddle.jit.save(c, path,
                        input_spec=[paddle.static.InputSpec([None, 3, 16, 16], "float32")])
        loaded = paddle.jit.load(path)
        same = all(np.array_equal(_bits(c(b[:n]).numpy()), _bits(loaded(b[:n]).numpy()))
                   for b in batches[:1] for n in (1, 3))
    out.append(("jit.save / jit.load, dynamic batch, same bits", same, ""))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-bench", action="store_true")
    args = parser.parse_args()
    if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
        print("SKIP: no CUDA device (this Paddle build or machine has no GPU)")
        return 0
    paddle.set_device("gpu:0")
    rng = np.random.default_rng(0)
    batches = [paddle.to_tensor(rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
                               * (1 + i)) for i in range(3)]
    results: list[tuple[str, bool, str]] = []
    for check in (check_observers, check_convert):
        try:
            results.extend(check(batches))
        except Exception:  # noqa: BLE001 - report and continue
            results.append((check.__name__, False, traceback.format_exc(limit=3)))
    for name, ok, why in results:
        print(f"{'PASS' if ok else 'FAIL'}: {name}" + (f" -- {why}" if why else ""))
    failed = sum(not ok for _, ok, _ in results)
    if not args.no_bench:
        sys.path.insert(0, str(HERE))
        import ptq_mobilenet

        ptq_mobilenet.run(list(ptq_mobilenet.OBSERVERS), 4, "gpu:0")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
