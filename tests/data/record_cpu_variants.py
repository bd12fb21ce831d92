"""Record real Paddle's CPU outputs whose bits depend on the CPU variant (see README.md).

``python tests/data/record_cpu_variants.py OUT.npz`` on a machine whose Paddle takes the
variant being recorded (``refquant.kernels._isa.host_isa()``); the file stores the inputs,
Paddle's outputs and the variant name. Inputs are chosen with Paddle and NumPy only: pairs
whose Paddle quotient differs from the IEEE one are kept first, so that the record tells
the variants apart.
"""

from __future__ import annotations

import sys
import types
import warnings

import numpy as np

F32 = np.float32


def _divide(paddle, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = 1 << 18
    a = (rng.standard_normal(n) * 10.0 ** rng.integers(-6, 7, n)).astype(F32)
    b = (rng.standard_normal(n) * 10.0 ** rng.integers(-6, 7, n)).astype(F32)
    got = paddle.divide(paddle.to_tensor(a), paddle.to_tensor(b)).numpy()
    differ = np.flatnonzero(got.view(np.uint32) != (a / b).astype(F32).view(np.uint32))
    pick = np.concatenate([differ[:1536], np.arange(1024)])
    # quotients near overflow / in the subnormal range, and every pair of special values
    big = (rng.standard_normal(256) * 1e30).astype(F32)
    tiny = (rng.standard_normal(256) * 1e-30).astype(F32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40,
                        1.1754942e-38, 1.1754944e-38, 3.4028235e38, -3.4e38, 1.0, -1.0, 2.0,
                        3.0, 0.1, 7e-39], F32)
    xa = np.concatenate([a[pick], big, tiny, np.repeat(special, special.size)])
    xb = np.concatenate([b[pick], tiny[::-1], big[::-1], np.tile(special, special.size)])
    out = paddle.divide(paddle.to_tensor(xa), paddle.to_tensor(xb)).numpy()
    return {"divide_x": xa, "divide_y": xb, "divide_out": out}


def _std(paddle, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Full ``paddle.std`` of 480-element tensors (0-D by 0-D division inside): up to 32 whose
    result differs from the one with an IEEE division (found with refquant's ``avx2``
    variant; the recorded values are Paddle's), then 32 more."""
    from refquant.quanters._common import paddle_std

    x = (rng.standard_normal((8000, 480)) * 0.3).astype(F32)
    out = np.array([paddle.std(paddle.to_tensor(r)).numpy() for r in x], F32)
    ieee = np.array([paddle_std(r, None, "avx2")[1] for r in x], F32)
    differ = np.flatnonzero(out.view(np.uint32) != ieee.view(np.uint32))[:32]
    pick = np.concatenate([differ, np.arange(32)])
    return {"std_x": x[pick], "std_out": out[pick]}


def _lsq(paddle, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """PaddleSlim's per-channel ``LsqFunc`` forward / backward at a fixed step."""
    from refquant.testing import import_paddleslim

    import_paddleslim("paddleslim")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from paddleslim.quant.quanters import WeightLSQplusQuanter
    rec: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "g", "scale", "y", "dx", "ds")}
    shape = (16, 3, 10)
    for _ in range(8):
        lay = types.SimpleNamespace(weight=paddle.zeros(shape))
        q = WeightLSQplusQuanter(per_channel=True, batch_init=1)._instance(lay)
        x = (rng.standard_normal(shape) * 0.3).astype(F32)
        q(paddle.to_tensor(x))  # the one statistics update
        scale = (np.abs(rng.standard_normal(16)) * 0.01 + 1e-3).astype(F32)
        q._scale.set_value(scale)
        g = rng.standard_normal(shape).astype(F32)
        xt = paddle.to_tensor(x, stop_gradient=False)
        y = q(xt)
        y.backward(paddle.to_tensor(g))
        for k, v in (("x", x), ("g", g), ("scale", scale), ("y", y.numpy()),
                     ("dx", xt.grad.numpy()), ("ds", q._scale.grad.numpy())):
            rec[k].append(np.asarray(v, F32))
    return {f"lsq_{k}": np.stack(v) for k, v in rec.items()}


def main(path: str) -> None:
    import paddle

    from refquant.kernels._isa import host_isa

    rng = np.random.default_rng(20261204)
    data = {**_divide(paddle, rng), **_std(paddle, rng), **_lsq(paddle, rng)}
    np.savez_compressed(path, isa=np.array(host_isa()), paddle_version=np.array(paddle.__version__),
             **data)


if __name__ == "__main__":
    main(sys.argv[1])
