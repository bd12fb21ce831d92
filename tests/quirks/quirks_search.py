"""Quirk registry: abs-max, AVG, MSE, EMD, channel-wise and group-wise observers.

Q1-Q20 and Q32-Q37, and the deliberate divergence Q62. Imports only numpy and refquant at
module level; ``real`` callables import paddle / paddleslim when they run.
``paddleslim_value`` literals were measured by running PaddleSlim 2.6.0 on Paddle 3.3.1.
"""

from __future__ import annotations

import math
import types

import numpy as np

from refquant.kernels import slim
from refquant.observers import OBSERVERS
from refquant.observers.absmax import AbsmaxObserver, slim_qmin_qmax, slim_uniform_scale_zp
from refquant.observers.avg import AVGObserver
from refquant.observers.channel_wise import (
    AbsMaxChannelWiseWeightObserver,
    MSEChannelWiseWeightObserver,
    infer_axis,
)
from refquant.observers.emd import EMDObserver
from refquant.observers.groupwise import GroupWiseWeightObserver
from refquant.observers.mse import MSEObserver
from refquant.observers.search import CANONICAL_FACTORS
from refquant.qparams import asymmetric_qparams, integer_range, symmetric_qparams
from refquant.testing import import_paddleslim

F32 = np.float32


# -- helpers -----------------------------------------------------------------------------
def _slim():
    """Import paddleslim's observer modules (see refquant.testing.import_paddleslim)."""
    import paddle

    import_paddleslim("paddleslim")
    import paddleslim.quant.observers.abs_max as am
    import paddleslim.quant.observers.abs_max_weight as amw
    import paddleslim.quant.observers.avg as avg
    import paddleslim.quant.observers.emd as emd
    import paddleslim.quant.observers.groupwise as gw
    import paddleslim.quant.observers.mse as mse
    import paddleslim.quant.observers.mse_weight as msew

    return types.SimpleNamespace(paddle=paddle, Abs=am.AbsmaxObserverLayer,
                                 AVG=avg.AVGObserverLayer, MSE=mse.MSEObserverLayer,
                                 EMD=emd.EMDObserverLayer,
                                 AbsCW=amw.AbsMaxChannelWiseWeightObserverLayer,
                                 MSECW=msew.MSEChannelWiseWeightObserverLayer,
                                 Group=gw.GroupWiseWeightObserverLayer)


def _real(layer_name, batches, *, layer="linear", peek=None, **kw):
    s = _slim()
    dummy = s.paddle.nn.Linear(2, 2) if layer == "linear" else s.paddle.nn.Conv2D(1, 1, 1)
    obs = getattr(s, layer_name)(dummy, **kw)
    for i, b in enumerate(batches):
        obs.forward(s.paddle.to_tensor(b))
        if peek == i:
            obs.scales()
    v = obs.scales()
    return v.numpy() if hasattr(v, "numpy") else v


def _ours(cls, batches, profile="paddleslim", peek=None, **kw):
    obs = cls(profile=profile, **kw)
    for i, b in enumerate(batches):
        obs.observe(b)
        if peek == i:
            obs.compute()
    return obs.compute()


def _same(value, expected) -> bool:
    """Bit-exact float32 comparison (scalars or arrays); QParams compare by scale."""
    value = getattr(value, "scale", value)
    a, b = np.asarray(value, dtype=F32), np.asarray(expected, dtype=F32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _raises(fn, exc) -> bool:
    try:
        fn()
    except exc:
        return True
    return False


def _q(id_, title, input_, value, ours, canonical, check, real=None):
    q = {"id": id_, "title": title, "input": input_, "paddleslim_value": value,
         "refquant_paddleslim": ours, "refquant_canonical": canonical, "check": check}
    if real is not None:
        q["real"] = real
    return q


def _qdq_real(x, scale, qmax):
    p = _slim().paddle
    t = p.to_tensor(x)
    return (p.clip(p.round(t / scale * qmax), -qmax - 1, qmax) / qmax * scale).numpy()


# -- inputs --------------------------------------------------------------------------------
_RNG = np.random.default_rng(0)
SQUARES = (_RNG.standard_normal((64, 1000)) ** 2).astype(F32)
_N = np.random.default_rng(1).standard_normal(256).astype(F32)
BIG_SMALL = [(np.random.default_rng(2).standard_normal(256) * 10).astype(F32),
             (_N * F32(0.01)).astype(F32)]
W = np.array([[1, -5, 0], [-2, 0.5, 0]], F32)
BEYOND_F32 = np.array([1.0, -1e39])  # float64
A = np.array  # shorthand

QUIRKS = [
    _q("Q1", "The search grid is an accumulated float: 35 factors, drifting, 1.0 never tried",
       "s = 0.3; while s <= 1.0: s += 0.02", "35 factors, last 0.9800000000000005",
       lambda: (len(slim.SEARCH_FACTORS), slim.SEARCH_FACTORS[-1]),
       lambda: (len(CANONICAL_FACTORS), CANONICAL_FACTORS[-1]),
       lambda: len(slim.SEARCH_FACTORS) == 35 and slim.SEARCH_FACTORS[-1] == 0.9800000000000005
       and slim.SEARCH_FACTORS[3] == 0.36000000000000004 and 1.0 not in slim.SEARCH_FACTORS),
    _q("Q2", "A Python float scale is cast to float32 before the tensor division",
       "qdq(x=[0.0123], scale=0.1/3, qmax=127)", 0.012335958890616894,
       lambda: slim.quant_dequant(A([0.0123], F32), 0.1 / 3, 127)[0],
       lambda: F32(min(round(0.0123 / (0.1 / 3) * 127), 127) * (0.1 / 3) / 127),
       lambda: _same(slim.quant_dequant(A([0.0123], F32), 0.1 / 3, 127)[0],
                     0.012335958890616894),
       lambda: _qdq_real(A([0.0123], F32), 0.1 / 3, 127)[0]),
    _q("Q3", "paddle.round rounds half to even in the search's quant-dequant",
       "qdq([0.5,1.5,2.5,3.5,-0.5,-1.5,-2.5], scale=4, qmax=4)", "[0, 2, 2, 4, 0, -2, -2]",
       lambda: slim.quant_dequant(A([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5], F32), 4.0, 4),
       lambda: symmetric_qparams(-4, 4, 3),
       lambda: _same(slim.quant_dequant(A([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5], F32), 4.0, 4),
                     [0, 2, 2, 4, 0, -2, -2]),
       lambda: _qdq_real(A([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5], F32), 4.0, 4)),
    _q("Q4", "paddle.mean's float32 order: 8 sequential lanes, tail, halving fold "
             "(deterministic, so refquant reproduces it)",
       "mean of squares of N(0,1), shape (64,1000), default_rng(0)", 0.9995943307876587,
       lambda: slim.paddle_mean(SQUARES),
       lambda: F32(math.fsum(SQUARES.astype(float).ravel()) / SQUARES.size),
       lambda: _same(slim.paddle_mean(SQUARES), 0.9995943307876587),
       lambda: _slim().paddle.mean(_slim().paddle.to_tensor(SQUARES)).numpy()),
    _q("Q5", "Unsigned qmax is 2**bits instead of 2**bits - 1", "qmin_qmax, 8 bits, sign=False",
       "(0, 256)", lambda: slim_qmin_qmax(8, sign=False),
       lambda: integer_range(8, signed=False),
       lambda: slim_qmin_qmax(8, sign=False) == (0, 256) and slim_qmin_qmax(4, False) == (0, 16),
       lambda: _real_qminmax()),
    _q("Q6", "Symmetric scale is an abs-max threshold; unsigned zero point is the float 128.0",
       "AbsmaxObserver, x=[0.5,-3,2,1], sign=False", "(3.0, 128.0)",
       lambda: slim_uniform_scale_zp(0, _ours(AbsmaxObserver, [A([0.5, -3, 2, 1], F32)])
                                     .scale.item(), 8, sign=False),
       lambda: symmetric_qparams(-3, 2, 8, signed=False),
       lambda: slim_uniform_scale_zp(0, 3.0, 8, sign=False) == (3.0, 128.0)
       and isinstance(slim_uniform_scale_zp(0, 3.0, 8, sign=False)[1], float),
       lambda: _real_unsigned()),
    _q("Q7", "The asymmetric branch returns a step, with Python round and np.clip",
       "(min, max) = (-1, 3), 8 bits, signed", "(0.01568627450980392, -64)",
       lambda: slim_uniform_scale_zp(-1.0, 3.0, 8, True, False),
       lambda: asymmetric_qparams(-1, 3, 8, signed=True),
       lambda: slim_uniform_scale_zp(-1.0, 3.0, 8, True, False) == (0.01568627450980392, -64),
       lambda: _real_asym(-1.0, 3.0)),
    _q("Q7a", "The asymmetric branch divides by zero on a zero range", "(min, max) = (0, 0)",
       "raises ZeroDivisionError",
       lambda: slim_uniform_scale_zp(0.0, 0.0, 8, True, False),
       lambda: asymmetric_qparams(0, 0, 8, signed=True),
       lambda: _raises(lambda: slim_uniform_scale_zp(0.0, 0.0, 8, True, False),
                       ZeroDivisionError),
       lambda: _real_asym(0.0, 0.0)),
    _q("Q8", "The asymmetric branch fails when max is a Tensor (no __round__)",
       "AbsmaxObserver state max=Tensor(3.0), symmetric=False", "raises TypeError",
       lambda: slim_uniform_scale_zp(0, np.asarray(F32(3.0)), 8, True, False),
       lambda: asymmetric_qparams(0, 3, 8),
       lambda: _raises(lambda: slim_uniform_scale_zp(0, np.asarray(F32(3.0)), 8, True, False),
                       TypeError),
       lambda: _real_asym(0, "tensor")),
    _q("Q9", "A NaN running max becomes Python int 0 through Python's max",
       "AbsmaxObserver on [1, nan]", "0 (int)",
       lambda: _ours(AbsmaxObserver, [A([1, np.nan], F32)], ignore_nonfinite=True),
       lambda: _ours(AbsmaxObserver, [A([1, np.nan], F32)], "canonical", ignore_nonfinite=True),
       lambda: _same(_ours(AbsmaxObserver, [A([1, np.nan], F32)], ignore_nonfinite=True), 0.0),
       lambda: _real("Abs", [A([1, np.nan], F32)])),
    _q("Q9a", "AVG on all-zero input returns int 0", "AVGObserver on [[0,0],[0,0]]", "0 (int)",
       lambda: _ours(AVGObserver, [np.zeros((2, 2), F32)]),
       lambda: _ours(AVGObserver, [np.zeros((2, 2), F32)], "canonical"),
       lambda: _same(_ours(AVGObserver, [np.zeros((2, 2), F32)]), 0.0),
       lambda: _real("AVG", [np.zeros((2, 2), F32)])),
    _q("Q9b", "EMD on negative-only input returns int 0", "EMDObserver on [-1,-2,-3]",
       "0 (int)", lambda: _ours(EMDObserver, [A([-1, -2, -3], F32)]),
       lambda: _ours(EMDObserver, [A([-1, -2, -3], F32)], "canonical"),
       lambda: _same(_ours(EMDObserver, [A([-1, -2, -3], F32)]), 0.0),
       lambda: _real("EMD", [A([-1, -2, -3], F32)])),
    _q("Q10", "AbsMax's scales() cache never resets: later batches are ignored",
       "[1,-2], scales(), then [10]", 2.0,
       lambda: _ours(AbsmaxObserver, [A([1, -2], F32), A([10], F32)], peek=0),
       lambda: _ours(AbsmaxObserver, [A([1, -2], F32), A([10], F32)], "canonical", peek=0),
       lambda: _same(_ours(AbsmaxObserver, [A([1, -2], F32), A([10], F32)], peek=0), 2.0),
       lambda: _real("Abs", [A([1, -2], F32), A([10], F32)], peek=0)),
    _q("Q11", "AbsMax's running max starts at float32(1e-7)", "[3e-8, -5e-8]", 1e-07,
       lambda: _ours(AbsmaxObserver, [A([3e-8, -5e-8], F32)]),
       lambda: _ours(AbsmaxObserver, [A([3e-8, -5e-8], F32)], "canonical"),
       lambda: _same(_ours(AbsmaxObserver, [A([3e-8, -5e-8], F32)]), F32(1e-7)),
       lambda: _real("Abs", [A([3e-8, -5e-8], F32)])),
    _q("Q11a", "AbsMax casts to float32 first: fp16 input is exact", "fp16 [1.5, -4.25]", 4.25,
       lambda: _ours(AbsmaxObserver, [A([1.5, -4.25], np.float16)]),
       lambda: _ours(AbsmaxObserver, [A([1.5, -4.25], np.float16)], "canonical"),
       lambda: _same(_ours(AbsmaxObserver, [A([1.5, -4.25], np.float16)]), 4.25),
       lambda: _real("Abs", [A([1.5, -4.25], np.float16)])),
    _q("Q11b", "AbsMax passes -inf through as an infinite scale", "[1, -inf]", "inf",
       lambda: _ours(AbsmaxObserver, [A([1, -np.inf], F32)], ignore_nonfinite=True),
       lambda: _ours(AbsmaxObserver, [A([1, -np.inf], F32)], "canonical", ignore_nonfinite=True),
       lambda: _same(_ours(AbsmaxObserver, [A([1, -np.inf], F32)], ignore_nonfinite=True),
                     np.inf),
       lambda: _real("Abs", [A([1, -np.inf], F32)])),
    _q("Q12", "AVG weighs every batch equally (mean of per-batch means)",
       "batches [[1,-4],[2,.5]] then [[10,0]]", 6.5,
       lambda: _ours(AVGObserver, [A([[1, -4], [2, .5]], F32), A([[10, 0]], F32)]),
       lambda: _ours(AVGObserver, [A([[1, -4], [2, .5]], F32), A([[10, 0]], F32)], "canonical"),
       lambda: _same(_ours(AVGObserver, [A([[1, -4], [2, .5]], F32), A([[10, 0]], F32)]), 6.5),
       lambda: _real("AVG", [A([[1, -4], [2, .5]], F32), A([[10, 0]], F32)])),
    _q("Q13", "AVG on a 1-D input treats every element as a sample", "[1, -3, .5, .5]", 1.25,
       lambda: _ours(AVGObserver, [A([1, -3, .5, .5], F32)]),
       lambda: _ours(AVGObserver, [A([1, -3, .5, .5], F32)], "canonical"),
       lambda: _same(_ours(AVGObserver, [A([1, -3, .5, .5], F32)]), 1.25),
       lambda: _real("AVG", [A([1, -3, .5, .5], F32)])),
    _q("Q13a", "AVG on a 0-D input raises IndexError", "0-D 7.0", "raises IndexError",
       lambda: _ours(AVGObserver, [A(7.0, F32)]),
       lambda: _ours(AVGObserver, [A(7.0, F32)], "canonical"),
       lambda: _raises(lambda: _ours(AVGObserver, [A(7.0, F32)]), IndexError),
       lambda: _real("AVG", [A(7.0, F32)])),
    _q("Q14", "AVG averages float values again in float32", "batches [0.1], [0.2], [0.4]",
       0.23333335,
       lambda: _ours(AVGObserver, [A([0.1], F32), A([0.2], F32), A([0.4], F32)]),
       lambda: _ours(AVGObserver, [A([0.1], F32), A([0.2], F32), A([0.4], F32)], "canonical"),
       lambda: _same(_ours(AVGObserver, [A([0.1], F32), A([0.2], F32), A([0.4], F32)]),
                     F32(0.23333335)),
       lambda: _real("AVG", [A([0.1], F32), A([0.2], F32), A([0.4], F32)])),
    _q("Q15", "MSE carries calibration_loss across batches; only the last batch's choice "
              "survives", "256 x 10 N(0,1) (rng 2) then 256 x 0.01 N(0,1) (rng 1)",
       0.028141358532011523,
       lambda: _ours(MSEObserver, BIG_SMALL),
       lambda: _ours(MSEObserver, BIG_SMALL, "canonical"),
       lambda: _same(_ours(MSEObserver, BIG_SMALL), 0.028141358532011523),
       lambda: _real("MSE", BIG_SMALL)),
    _q("Q16", "MSE never tries factor 1.0", "[[3]]", 2.9400000000000017,
       lambda: _ours(MSEObserver, [A([[3]], F32)]),
       lambda: _ours(MSEObserver, [A([[3]], F32)], "canonical"),
       lambda: _same(_ours(MSEObserver, [A([[3]], F32)]), 2.9400000000000017),
       lambda: _real("MSE", [A([[3]], F32)])),
    _q("Q17", "MSE ties go to the later factor (<=); zeros are floored to 1e-8", "zeros(4)",
       9.800000000000005e-09, lambda: _ours(MSEObserver, [np.zeros(4, F32)]),
       lambda: _ours(MSEObserver, [np.zeros(4, F32)], "canonical"),
       lambda: _same(_ours(MSEObserver, [np.zeros(4, F32)]), 9.800000000000005e-09),
       lambda: _real("MSE", [np.zeros(4, F32)])),
    _q("Q18", "MSE's NaN scale becomes int 0", "[1, nan]", "0 (int)",
       lambda: _ours(MSEObserver, [A([1, np.nan], F32)], ignore_nonfinite=True),
       lambda: _ours(MSEObserver, [A([1, np.nan], F32)], "canonical", ignore_nonfinite=True),
       lambda: _same(_ours(MSEObserver, [A([1, np.nan], F32)], ignore_nonfinite=True), 0.0),
       lambda: _real("MSE", [A([1, np.nan], F32)])),
    _q("Q18a", "Float16 input fails on CPU: Paddle has no float16 abs kernel (AbsMax "
               "alone casts to float32 first)", "MSEObserver on fp16 [1, -2]",
       "raises RuntimeError",
       lambda: _ours(MSEObserver, [A([1, -2], np.float16)]),
       lambda: _ours(MSEObserver, [A([1, -2], np.float16)], "canonical"),
       lambda: _raises(lambda: _ours(MSEObserver, [A([1, -2], np.float16)]), RuntimeError),
       lambda: _real("MSE", [A([1, -2], np.float16)])),
    _q("Q19", "EMD searches below the signed max: negative values get clipped",
       "[-4, -2, .5, 1]", 0.9800000000000005,
       lambda: _ours(EMDObserver, [A([-4, -2, .5, 1], F32)]),
       lambda: _ours(EMDObserver, [A([-4, -2, .5, 1], F32)], "canonical"),
       lambda: _same(_ours(EMDObserver, [A([-4, -2, .5, 1], F32)]), 0.9800000000000005),
       lambda: _real("EMD", [A([-4, -2, .5, 1], F32)])),
    _q("Q20", "EMD's loss is |dmean| + |dstd|: a constant input picks 0.98 x max",
       "[2, 2, 2, 2]", 1.960000000000001,
       lambda: _ours(EMDObserver, [A([2, 2, 2, 2], F32)]),
       lambda: _ours(EMDObserver, [A([2, 2, 2, 2], F32)], "canonical"),
       lambda: _same(_ours(EMDObserver, [A([2, 2, 2, 2], F32)]), 1.960000000000001),
       lambda: _real("EMD", [A([2, 2, 2, 2], F32)])),
    _q("Q20a", "EMD on one element: std is NaN, nothing is accepted, the max stays",
       "[2.0]", 2.0, lambda: _ours(EMDObserver, [A([2.0], F32)]),
       lambda: _ours(EMDObserver, [A([2.0], F32)], "canonical"),
       lambda: _same(_ours(EMDObserver, [A([2.0], F32)]), 2.0),
       lambda: _real("EMD", [A([2.0], F32)])),
    _q("Q32", "Channel axis comes from the exact layer type: Linear [in,out] -> axis 1",
       "Linear weight [[1,-5,0],[-2,.5,0]]", "[2, 5, 1e-08] on axis 1",
       lambda: _ours(AbsMaxChannelWiseWeightObserver, [W]),
       lambda: _ours(AbsMaxChannelWiseWeightObserver, [W], "canonical"),
       lambda: _ours(AbsMaxChannelWiseWeightObserver, [W]).axis == 1 == infer_axis(2)
       and infer_axis(4) == 0 and _raises(lambda: infer_axis(3), ValueError),
       lambda: _real("AbsCW", [W])),
    _q("Q32a", "Any other layer type (Conv2DTranspose, subclasses) raises KeyError; refquant "
               "raises ValueError for an axis PaddleSlim never uses",
       "channel axis 2", "raises KeyError",
       lambda: _ours(AbsMaxChannelWiseWeightObserver, [np.ones((2, 2, 2), F32)], axis=2),
       lambda: _ours(AbsMaxChannelWiseWeightObserver, [np.ones((2, 2, 2), F32)], "canonical",
                     axis=2),
       lambda: _raises(lambda: _ours(AbsMaxChannelWiseWeightObserver,
                                     [np.ones((2, 2, 2), F32)], axis=2), ValueError)),
    _q("Q33", "AbsMax channel-wise computes on the first forward only; zero channel -> 1e-8",
       "w=[[1,-5,0],[-2,.5,0]] then 10*w", "[2, 5, 1e-08]",
       lambda: _ours(AbsMaxChannelWiseWeightObserver, [W, 10 * W]),
       lambda: _ours(AbsMaxChannelWiseWeightObserver, [W, 10 * W], "canonical"),
       lambda: _same(_ours(AbsMaxChannelWiseWeightObserver, [W, 10 * W]), [2, 5, F32(1e-8)]),
       lambda: _real("AbsCW", [W, 10 * W])),
    _q("Q33a", "Paddle's float == is tolerant: channels with abs-max < 1e-15 also get 1e-8",
       "w = 1e-20 * ones((2, 3))", "[1e-08, 1e-08, 1e-08]",
       lambda: _ours(AbsMaxChannelWiseWeightObserver, [np.full((2, 3), 1e-20, F32)]),
       lambda: _ours(AbsMaxChannelWiseWeightObserver, [np.full((2, 3), 1e-20, F32)],
                     "canonical"),
       lambda: _same(_ours(AbsMaxChannelWiseWeightObserver, [np.full((2, 3), 1e-20, F32)]),
                     [F32(1e-8)] * 3),
       lambda: _real("AbsCW", [np.full((2, 3), 1e-20, F32)])),
    _q("Q34", "MSE channel-wise uses strict < (first factor wins ties): zero column -> "
              "0.3 x 1e-8", "Linear weight zeros((3, 2))", 3.000000026176508e-09,
       lambda: _ours(MSEChannelWiseWeightObserver, [np.zeros((3, 2), F32)]),
       lambda: _ours(MSEChannelWiseWeightObserver, [np.zeros((3, 2), F32)], "canonical"),
       lambda: _same(_ours(MSEChannelWiseWeightObserver, [np.zeros((3, 2), F32)]),
                     [3.000000026176508e-09] * 2),
       lambda: _real("MSECW", [np.zeros((3, 2), F32)])),
    _q("Q34a", "MSE channel-wise never tries 1.0", "Linear weight [[3, 1]]", "[2.94, 0.98]",
       lambda: _ours(MSEChannelWiseWeightObserver, [A([[3, 1]], F32)]),
       lambda: _ours(MSEChannelWiseWeightObserver, [A([[3, 1]], F32)], "canonical"),
       lambda: _same(_ours(MSEChannelWiseWeightObserver, [A([[3, 1]], F32)]),
                     [F32(0.98) * F32(3), F32(0.98)]),
       lambda: _real("MSECW", [A([[3, 1]], F32)])),
    {**_q("Q35", "Group-wise accepts only 2-D weights, group 64/128, rows divisible",
          "4-D weight ones((64, 2, 3, 3)), group 128", "raises AssertionError",
          lambda: _ours(GroupWiseWeightObserver, [np.ones((64, 2, 3, 3), F32)]),
          lambda: _ours(GroupWiseWeightObserver, [np.ones((64, 2, 3, 3), F32)], "canonical"),
          lambda: _raises(lambda: _ours(GroupWiseWeightObserver,
                                        [np.ones((64, 2, 3, 3), F32)]), AssertionError),
          lambda: _real("Group", [np.ones((64, 2, 3, 3), F32)])),
     "canonical_raises": "ValueError"},
    _q("Q35a", "Group-wise scales are [in/group, out]", "ones((128, 3)) * column index, "
               "group 64", "shape (2, 3): [[1e-08, 1, 2], [1e-08, 1, 2]]",
       lambda: _ours(GroupWiseWeightObserver, [np.ones((128, 3), F32) * A([0, 1, 2], F32)],
                     group_size=64),
       lambda: _ours(GroupWiseWeightObserver, [np.ones((128, 3), F32) * A([0, 1, 2], F32)],
                     "canonical", group_size=64),
       lambda: _same(_ours(GroupWiseWeightObserver, [np.ones((128, 3), F32) *
                                                     A([0, 1, 2], F32)], group_size=64),
                     [[F32(1e-8), 1, 2]] * 2),
       lambda: _real("Group", [np.ones((128, 3), F32) * A([0, 1, 2], F32)], group_size=64)),
    _q("Q36", "Group-wise recomputes per forward but scales() caches the first value",
       "ones((64, 2)), scales(), then 5 * ones((64, 2)), group 64", "[[1, 1]]",
       lambda: _ours(GroupWiseWeightObserver, [np.ones((64, 2), F32), 5 * np.ones((64, 2), F32)],
                     peek=0, group_size=64),
       lambda: _ours(GroupWiseWeightObserver, [np.ones((64, 2), F32), 5 * np.ones((64, 2), F32)],
                     "canonical", peek=0, group_size=64),
       lambda: _same(_ours(GroupWiseWeightObserver, [np.ones((64, 2), F32),
                                                     5 * np.ones((64, 2), F32)],
                           peek=0, group_size=64), [[1, 1]]),
       lambda: _real("Group", [np.ones((64, 2), F32), 5 * np.ones((64, 2), F32)], peek=0,
                     group_size=64)),
    _q("Q37", "Export drops group_size (LinearQuanter.from_quanter uses 128): refquant's "
              "QParams carries group_size so an exporter cannot lose it (export itself is "
              "the adapter's, not reproduced here)",
       "group 64, weight [128, 2]", "export raises ValueError (X=[128,2] vs Y=[256,2])",
       lambda: _ours(GroupWiseWeightObserver, [np.ones((128, 2), F32)], group_size=64)
       .extra["group_size"],
       lambda: _ours(GroupWiseWeightObserver, [np.ones((128, 2), F32)], "canonical",
                     group_size=64).extra["group_size"],
       lambda: _ours(GroupWiseWeightObserver, [np.ones((128, 2), F32)], group_size=64)
       .extra["group_size"] == 64),
    {**_q("Q62", "Deliberate divergence: float64 input beyond float32's range is refused "
                 "(ValueError naming x and the value); PaddleSlim's abs-max scale is inf",
          "AbsmaxObserver on float64 [1.0, -1e39]", F32(np.inf),
          lambda: _ours(AbsmaxObserver, [BEYOND_F32]),
          lambda: _ours(AbsmaxObserver, [BEYOND_F32], "canonical"),
          lambda: _refuses_beyond_float32(),
          lambda: _real("Abs", [BEYOND_F32])),
     "canonical_raises": "ValueError",
     "divergence": "no float32 scale represents 1e39: PaddleSlim's abs-max observer casts the "
                   "batch to float32 and reports scale inf, which quantizes every finite value "
                   "to 0. Every observer of the paddleslim profile (and of the canonical one) "
                   "raises ValueError instead, naming the argument and the value, and leaves "
                   "the batch unchanged."},
]


def _real_qminmax():
    s = _slim()
    o = s.Abs(s.paddle.nn.Linear(2, 2))
    o._sign = False
    return o.qmin_qmax


def _real_unsigned():
    s = _slim()
    o = s.Abs(s.paddle.nn.Linear(2, 2))
    o._sign = False
    o.forward(s.paddle.to_tensor(A([0.5, -3, 2, 1], F32)))
    return float(o.scales()), o.zero_points()


def _real_asym(lo, hi):
    s = _slim()
    if hi == "tensor":  # AbsmaxObserverLayer keeps its max as a Tensor
        o = s.Abs(s.paddle.nn.Linear(2, 2))
        o.forward(s.paddle.to_tensor(A([3.0], F32)))
        o._symmetric = False
        return o.scales()
    o = s.MSE(s.paddle.nn.Linear(2, 2))  # MSEObserverLayer keeps Python floats
    o._symmetric = False
    o._scale = None
    o._mse_min, o._mse_max = lo, hi
    o.cal_thresholds()
    return o._scale, o._zero_point


def _refuses_beyond_float32() -> bool:
    """Q62: every observer of the paddleslim profile, with ``ignore_nonfinite`` off and on,
    raises ``ValueError`` naming ``x`` and the value for a float64 batch holding ``-1e39``
    (shape (128, 2): valid for the channel-wise and group-wise observers), and leaves the
    batch unchanged."""
    x = np.ones((128, 2))
    x[5, 1] = -1e39
    before = x.copy()
    for name, cls in OBSERVERS.items():
        kw = {"group_size": 64} if name == "GroupWiseWeightObserver" else {}
        for ignore in (False, True):
            obs = cls(profile="paddleslim", ignore_nonfinite=ignore, **kw)
            try:
                obs.observe(x)
            except ValueError as exc:
                if not ("x " in str(exc) and "-1e+39" in str(exc)):
                    return False
            else:
                return False
    return bool(np.array_equal(x, before))
