"""Benchmark: refquant's block-scaled casts against torchao 0.18's CPU reference of the same
cast, side by side in one run, on one (4096, 4096) float32 matrix.

    python bench/lowbit.py            # every MX element x scale mode, NVFP4 (~1-2 min)
    python bench/lowbit.py --quick    # MXFP4 / MXFP8 floor and rceil, NVFP4 only

Per cast: torchao's time (``to_mx`` / ``NVFP4Tensor.to_nvfp4``, quantization only, one
run), refquant's (``mx.quantize`` / ``nvfp4.quantize``), the ratio torchao / refquant
(target >= 1: no slower), and whether scales, element codes and the dequantized float32
(each side dequantizing its own output) are bit-identical. The input is standard normal
data with one block per row scaled by 2^(-100..100), a NaN block and an inf block. torch's
intra-op threads are left as they are (refquant's NumPy code is single-threaded).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np

from refquant.kernels import mx, nvfp4


def _torchao():
    logging.getLogger("torchao").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        from torchao.prototype.mx_formats.config import ScaleCalculationMode
        from torchao.prototype.mx_formats.mx_tensor import to_dtype, to_mx
        from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor
    return torch, ScaleCalculationMode, to_mx, to_dtype, NVFP4Tensor


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _unpack(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.stack([p & 0xF, p >> 4], axis=-1).reshape(shape)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def _input(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(np.float32)
    x[:, :32] *= np.exp2(rng.integers(-100, 101, (n, 1))).astype(np.float32)
    x[0, 5], x[1, 7] = np.nan, np.inf
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few casts only")
    ap.add_argument("--n", type=int, default=4096, help="matrix side (default 4096)")
    args = ap.parse_args()
    torch, scm, to_mx, to_dtype, nvt = _torchao()
    x = _input(args.n)
    tx = torch.from_numpy(x)
    dtypes = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2,
              "fp6_e3m2": "fp6_e3m2", "fp6_e2m3": "fp6_e2m3",
              "fp4_e2m1": torch.float4_e2m1fn_x2}
    elems = ("fp4_e2m1", "fp8_e4m3fn") if args.quick else tuple(dtypes)
    modes = ("floor", "rceil") if args.quick else mx.SCALE_MODES
    print(f"input ({args.n}, {args.n}) float32; torch threads {torch.get_num_threads()}")
    print(f"{'cast':28s} {'torchao s':>9s} {'refquant s':>10s} {'ratio':>6s}  identical "
          "(scale, codes, dequantized)")
    ratios = []
    for elem in elems:
        for mode in modes:
            t_ao, (s_ao, d_ao) = _timed(lambda e=elem, m=mode: to_mx(tx, dtypes[e], 32, scm(m)))
            t_rq, (s_rq, c_rq) = _timed(lambda e=elem, m=mode: mx.quantize(x, e, 32, m))
            s_np = s_ao.view(torch.uint8).numpy()
            if elem == "fp4_e2m1":
                c_np = _unpack(d_ao.view(torch.uint8).numpy(), x.shape)
            elif elem.startswith("fp8"):
                c_np = d_ao.view(torch.uint8).numpy()
            else:
                c_np = d_ao.numpy()
            y_ao = to_dtype(d_ao, s_ao, dtypes[elem], 32, torch.float32).numpy()
            y_rq = mx.dequantize(s_rq, c_rq, elem, 32)
            same = (_same(s_np, s_rq), _same(c_np, c_rq), _same(y_ao, y_rq))
            ratios.append(t_ao / t_rq)
            print(f"{'mx ' + elem + ' ' + mode:28s} {t_ao:9.3f} {t_rq:10.3f} "
                  f"{t_ao / t_rq:6.2f}  {same}")
    for name, pts in (("nvfp4", None), ("nvfp4 per-tensor", np.float32(0.0123))):
        tp = None if pts is None else torch.tensor(pts)
        t_ao, q = _timed(lambda p=tp: nvt.to_nvfp4(tx, per_tensor_scale=p))
        t_rq, (s_rq, c_rq) = _timed(lambda p=pts: nvfp4.quantize(x, p))
        s_np = q.scale.view(torch.uint8).numpy()
        c_np = _unpack(q.qdata.view(torch.uint8).numpy(), x.shape)
        y_ao = q.dequantize(torch.float32).numpy()
        y_rq = nvfp4.dequantize(s_rq, c_rq, pts)
        same = (_same(s_np, s_rq), _same(c_np, c_rq), _same(y_ao, y_rq))
        ratios.append(t_ao / t_rq)
        print(f"{name:28s} {t_ao:9.3f} {t_rq:10.3f} {t_ao / t_rq:6.2f}  {same}")
    print(f"min ratio {min(ratios):.2f} (target >= 1)")


if __name__ == "__main__":
    main()
