"""refquant.kernels.onnxruntime: QLinearAdd / QLinearMul, the quantized pools, the lookup-table
activations, QGemm and the code pass-through operators, against ONNX Runtime.

Expected values come from single-node models run in ORT's default CPU session (these
kernels are the same on every x86-64 CPU with AVX2); codes are compared exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant.kernels import onnxruntime as rk
from refquant.kernels.onnxruntime._common import fma32

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as TP  # noqa: E402

from refquant.conformance.targets.onnxruntime_int8 import one_node_session  # noqa: E402

F32 = np.float32
MS = "com.microsoft"
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_TP = {np.dtype(np.uint8): TP.UINT8, np.dtype(np.int8): TP.INT8,
       np.dtype(np.float32): TP.FLOAT, np.dtype(np.int32): TP.INT32}


def ort_run(op, inputs, out_types, *, attrs=None, domain="", consts=()):
    """Run one ONNX node (output type ``out_types``) in ORT's default CPU session."""
    sess, feeds = one_node_session(op, inputs, [out_types], attrs=attrs, domain=domain,
                                   consts=tuple(consts))
    return sess.run(None, feeds)[0]


def f32_hex(h):
    return np.array(int(h, 16), np.uint32).view(F32)[()]


def codes(dtype):
    if np.dtype(dtype) == np.uint8:
        return st.one_of(st.sampled_from([0, 1, 127, 128, 255]), st.integers(0, 255))
    return st.one_of(st.sampled_from([-128, -1, 0, 1, 127]), st.integers(-128, 127))


def zp(dtype):
    lo, hi = (0, 255) if np.dtype(dtype) == np.uint8 else (-128, 127)
    return st.integers(lo, hi).map(lambda v: np.array(v, dtype))


log_scales = st.floats(-7, 2).map(lambda e: F32(2.0**e * 1.37))
DTYPES = st.sampled_from([np.uint8, np.int8])
BROADCAST = [((37,), (37,)), ((5, 9), (9,)), ((5, 9), (5, 1)), ((1,), (40,)), ((40,), ()),
             ((3, 1, 7), (1, 4, 7)), ((3, 4, 1), (3, 4, 7)), ((2, 3, 5), (2, 3, 5)),
             ((4, 1), (1, 6)), ((1, 1), (3, 3))]


# -- QLinearAdd / QLinearMul -------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), dtype=DTYPES, shapes=st.sampled_from(BROADCAST),
       op=st.sampled_from(["QLinearAdd", "QLinearMul"]))
def test_qlinear_binary_matches_ort(data, dtype, shapes, op):
    a = data.draw(hnp.arrays(dtype, shapes[0], elements=codes(dtype)))
    b = data.draw(hnp.arrays(dtype, shapes[1], elements=codes(dtype)))
    params = [data.draw(log_scales), data.draw(zp(dtype)), data.draw(log_scales),
              data.draw(zp(dtype)), data.draw(log_scales), data.draw(zp(dtype))]
    args = [a, params[0], params[1], b, params[2], params[3], params[4], params[5]]
    want = ort_run(op, args, _TP[np.dtype(dtype)], domain=MS)
    fn = rk.qlinear_add if op == "QLinearAdd" else rk.qlinear_mul
    got = fn(*args)
    assert got.dtype == dtype and got.shape == want.shape and np.array_equal(got, want)


def _plain_add(a, sa, za, b, sb, zb, sc, zc):
    """QLinearAdd with every product and sum rounded separately (no fused multiply-add)."""
    ra, rb = F32(sa / sc), F32(sb / sc)
    fixed = F32(F32(zc) - F32(F32(ra * F32(za)) + F32(rb * F32(zb))))
    v = (fixed + (b.astype(F32) * rb).astype(F32)).astype(F32) + (a.astype(F32) * ra).astype(F32)
    return np.clip(np.rint(v.astype(F32)), 0, 255).astype(np.uint8)


# scales (float32 bit patterns) and zero points where the fused and the separately rounded
# readings of MLAS's AVX2 QLinearAdd give different codes (found by search)
FUSED_BOTH = [(("0x3f09b396", "0x3d4915df", "0x3f0706e0"), (129, 254, 216)),
              (("0x3d0dafc0", "0x3e173e73", "0x3cada60f"), (163, 99, 87)),
              (("0x40076fac", "0x3ef03a51", "0x3d12b177"), (87, 186, 140))]
FUSED_SCALAR = [(("0x3ca54217", "0x3f9e481e", "0x3fcfcbfa"), (217, 132, 78)),
                (("0x3d818e5c", "0x3ecf0e4a", "0x3caf6144"), (92, 170, 108))]


@pytest.mark.parametrize("case", FUSED_BOTH + FUSED_SCALAR)
@pytest.mark.parametrize("layout", ["both", "b per row", "a per row"])
def test_qlinear_add_fused_rounding_cases(case, layout):
    """Every (a, b) pair of uint8 codes: the full table, in the three broadcast layouts
    (ORT calls MLAS once per span with a scalar operand for the last two)."""
    (sa, sb, sc), (za, zb, zc) = [f32_hex(h) for h in case[0]], case[1]
    grid = np.arange(256, dtype=np.uint8)
    if layout == "both":
        a, b = np.repeat(grid, 256).reshape(256, 256), np.tile(grid, 256).reshape(256, 256)
    elif layout == "b per row":
        a, b = np.tile(grid, 256).reshape(256, 256), grid.reshape(256, 1)
    else:
        a, b = grid.reshape(256, 1), np.tile(grid, 256).reshape(256, 256)
    args = [a, sa, np.uint8(za), b, sb, np.uint8(zb), sc, np.uint8(zc)]
    want = ort_run("QLinearAdd", args, TP.UINT8, domain=MS)
    assert np.array_equal(rk.qlinear_add(*args), want)
    if layout == "both" and case in FUSED_BOTH:  # the case discriminates the readings
        assert not np.array_equal(_plain_add(*args), want)
    if layout == "b per row" and case in FUSED_SCALAR:  # b * rb + F rounded twice
        ra, rb = F32(sa / sc), F32(sb / sc)
        fixed = F32(F32(zc) - fma32(ra, F32(za), F32(rb * F32(zb))))
        term = (fixed + (b.astype(F32) * rb).astype(F32)).astype(F32)
        v = fma32(a.astype(F32), ra, term)
        assert not np.array_equal(np.clip(np.rint(v), 0, 255).astype(np.uint8), want)


def test_qlinear_add_hand_worked():
    # sa = sb = sc = 1, zero points 0: plain saturating addition of codes
    a = np.array([100, 200, 255], np.uint8)
    b = np.array([100, 100, 255], np.uint8)
    assert rk.qlinear_add(a, 1.0, 0, b, 1.0, 0, 1.0, np.uint8(0)).tolist() == [200, 255, 255]
    # 0.5 * (1 + 2) = 1.5 -> 2 (ties to even); 0.5 * (1 + 4) = 2.5 -> 2
    assert rk.qlinear_add(np.array([1, 1], np.uint8), 1.0, 0, np.array([2, 4], np.uint8), 1.0,
                          0, 2.0, np.uint8(0)).tolist() == [2, 2]
    assert rk.qlinear_mul(np.array([-128, 3], np.int8), 1.0, np.int8(0),
                          np.array([-128, -5], np.int8), 1.0, np.int8(0), 1.0,
                          np.int8(0)).tolist() == [127, -15]


def test_fma32_rounds_once():
    one_plus = F32(1 + 2.0**-12)  # (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: the last term is lost
    assert fma32(one_plus, one_plus, F32(-1)) == F32(2.0**-11 + 2.0**-24)  # by a separate product
    assert F32(one_plus * one_plus) - F32(1) == F32(2.0**-11)


# -- pools -----------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), dtype=DTYPES, rank=st.integers(1, 3), channels_last=st.booleans())
def test_qlinear_global_average_pool_matches_ort(data, dtype, rank, channels_last):
    sp = tuple(data.draw(st.integers(1, 9)) for _ in range(rank))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 5)))
    shape = (shape[0],) + sp + (shape[1],) if channels_last else shape + sp
    x = data.draw(hnp.arrays(dtype, shape, elements=codes(dtype)))
    sx, sy = data.draw(log_scales), F32(data.draw(log_scales) * F32(2.0**-4))
    s = F32(sx / F32(sy * F32(np.prod(sp))))
    if not F32(2.0**-32) <= s < 256:
        with pytest.raises(ValueError, match="outside"):
            rk.qlinear_global_average_pool(x, sx, None, sy, None, channels_last=int(channels_last))
        return
    args = [x, sx, data.draw(zp(dtype)), sy, data.draw(zp(dtype))]
    want = ort_run("QLinearGlobalAveragePool", args, _TP[np.dtype(dtype)], domain=MS,
                   attrs={"channels_last": int(channels_last)})
    got = rk.qlinear_global_average_pool(*args, channels_last=int(channels_last))
    assert got.shape == want.shape and np.array_equal(got, want)


@SETTINGS
@given(data=st.data(), dtype=DTYPES, rank=st.integers(1, 3), channels_last=st.booleans())
def test_qlinear_average_pool_matches_ort(data, dtype, rank, channels_last):
    sp = tuple(data.draw(st.integers(2, 7)) for _ in range(rank))
    k = [data.draw(st.integers(1, s)) for s in sp]
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)))
    shape = (shape[0],) + sp + (shape[1],) if channels_last else shape + sp
    x = data.draw(hnp.arrays(dtype, shape, elements=codes(dtype)))
    attrs = {"kernel_shape": k, "strides": [data.draw(st.integers(1, 3)) for _ in sp],
             "count_include_pad": int(data.draw(st.booleans())),
             "ceil_mode": int(data.draw(st.booleans())), "channels_last": int(channels_last)}
    if data.draw(st.booleans()):
        attrs["pads"] = [data.draw(st.integers(0, kk - 1)) for kk in k + k]
    else:
        attrs["auto_pad"] = data.draw(st.sampled_from(["VALID", "SAME_UPPER", "SAME_LOWER"]))
    args = [x, data.draw(log_scales), data.draw(zp(dtype)), data.draw(log_scales),
            data.draw(zp(dtype))]
    want = ort_run("QLinearAveragePool", args, _TP[np.dtype(dtype)], domain=MS, attrs=attrs)
    got = rk.qlinear_average_pool(*args, **attrs)
    assert got.shape == want.shape and np.array_equal(got, want)


def test_average_pool_hand_worked():
    x = np.array([[[1, 2, 3, 4]]], np.uint8)  # [N, C, W]
    # windows [1, 2], [3, 4] -> 1.5 -> 2, 3.5 -> 4 (ties to even)
    y = rk.qlinear_average_pool(x, 1.0, None, 1.0, None, kernel_shape=[2], strides=[2])
    assert y.tolist() == [[[2, 4]]]
    # global: (1 + 2 + 3 + 4) / 4 = 2.5 -> 2
    assert rk.qlinear_global_average_pool(x, 1.0, None, 1.0, None).tolist() == [[[2]]]


# -- lookup tables ------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), dtype=DTYPES, op=st.sampled_from(["QLinearSigmoid", "QLinearLeakyRelu"]),
       const=st.booleans())
def test_qlinear_lookup_matches_ort(data, dtype, op, const):
    x = np.arange(256, dtype=np.uint8).view(dtype)  # every code once
    sx = data.draw(st.floats(-8, 1).map(lambda e: F32(2.0**e * 1.21)))
    sy = data.draw(st.sampled_from([F32(1 / 256), F32(1 / 255)]) | log_scales)
    args = [x, sx, data.draw(zp(dtype)), sy, data.draw(zp(dtype))]
    attrs = {"alpha": data.draw(st.floats(0, 1, width=32))} if op == "QLinearLeakyRelu" else {}
    want = ort_run(op, args, _TP[np.dtype(dtype)], domain=MS, attrs=attrs,
                   consts=(1, 2, 3, 4) if const else ())
    fn = rk.qlinear_sigmoid if op == "QLinearSigmoid" else rk.qlinear_leaky_relu
    assert np.array_equal(fn(*args, **attrs), want)


def test_mlas_logistic_matches_ort_sigmoid_bits():
    """ORT's float Sigmoid runs the same MLAS routine: compare on 200k floats, including the
    clamp at +-18 and inputs where it differs from the correctly rounded logistic."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 4, 200_000), [-30, -18, -17.9, 0, 17.9, 18, 30, 1e-8]])
    x = x.astype(F32)
    want = ort_run("Sigmoid", [x], TP.FLOAT)
    got = rk.mlas_logistic(x)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    exact = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(F32)
    assert np.count_nonzero(got != exact) > 1000  # the test can tell the two apart


# -- QGemm --------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), kind=st.sampled_from([(np.uint8, np.int8), (np.uint8, np.uint8),
                                             (np.int8, np.int8)]),
       ta=st.booleans(), tb=st.booleans(), requant=st.booleans())
def test_qgemm_matches_ort(data, kind, ta, tb, requant):
    ad, bd = kind
    m, k, n = (data.draw(st.integers(1, 7)) for _ in range(3))
    a = data.draw(hnp.arrays(ad, (k, m) if ta else (m, k), elements=codes(ad)))
    b = data.draw(hnp.arrays(bd, (n, k) if tb else (k, n), elements=codes(bd)))
    per = data.draw(st.booleans())
    sb = np.array([data.draw(log_scales) for _ in range(n)], F32) if per else data.draw(log_scales)
    bzp = np.array([data.draw(zp(bd)) for _ in range(n)], bd) if per else data.draw(zp(bd))
    cshape = data.draw(st.sampled_from([None, (), (n,), (1, n), (m, 1), (m, n)]))
    c = None if cshape is None else data.draw(
        hnp.arrays(np.int32, cshape, elements=st.integers(-2**31, 2**31 - 1)))
    attrs = {"alpha": data.draw(st.floats(0.25, 4, width=32)), "transA": int(ta), "transB": int(tb)}
    args = [a, data.draw(log_scales), data.draw(zp(ad)), b, sb, bzp, c]
    if requant:
        args += [data.draw(log_scales), data.draw(zp(ad))]
    want = ort_run("QGemm", args, TP.FLOAT if not requant else _TP[np.dtype(ad)], domain=MS,
                   attrs=attrs, consts=(3,) if data.draw(st.booleans()) else ())
    got = rk.qgemm(*args, **attrs)
    if requant:
        assert np.array_equal(got, want)
    else:
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


# -- pass-through operators ---------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), dtype=DTYPES, rank=st.integers(1, 3))
def test_max_pool_matches_ort(data, dtype, rank):
    sp = tuple(data.draw(st.integers(3, 7)) for _ in range(rank))
    x = data.draw(hnp.arrays(dtype, (2, 3) + sp, elements=codes(dtype)))
    k = [data.draw(st.integers(1, 3)) for _ in sp]
    attrs = {"kernel_shape": k, "strides": [data.draw(st.integers(1, 2)) for _ in sp],
             "pads": [data.draw(st.integers(0, kk - 1)) for kk in k + k],
             "ceil_mode": int(data.draw(st.booleans()))}
    if data.draw(st.booleans()) and all(2 * (kk - 1) + 1 <= s for kk, s in zip(k, sp, strict=True)):
        attrs["dilations"] = [2] * rank
    want = ort_run("MaxPool", [x], _TP[np.dtype(dtype)], attrs=attrs)
    got = rk.max_pool(x, **attrs)
    assert got.shape == want.shape and np.array_equal(got, want)


def test_reshape_and_transpose():
    x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(rk.reshape(x, np.array([0, -1])), x.reshape(2, 12))
    assert np.array_equal(rk.transpose(x, perm=[2, 0, 1]), x.transpose(2, 0, 1))
    with pytest.raises(ValueError, match="perm must be a permutation"):
        rk.transpose(x, perm=[0, 0, 1])


# -- bad input -----------------------------------------------------------------------------------


def test_bad_input_elementwise():
    a = np.zeros(4, np.uint8)
    with pytest.raises(TypeError, match="a and b must have the same dtype"):
        rk.qlinear_add(a, 1.0, 0, a.view(np.int8), 1.0, 0, 1.0, 0)
    with pytest.raises(TypeError, match="c_zero_point must have the dtype of a"):
        rk.qlinear_mul(a, 1.0, 0, a, 1.0, 0, 1.0, np.int8(0))
    with pytest.raises(ValueError, match="c_scale must be finite and > 0, got -1.0"):
        rk.qlinear_add(a, 1.0, 0, a, 1.0, 0, -1.0, 0)
    with pytest.raises(ValueError, match=r"b_scale must be a scalar or shape \(1,\), got shape"):
        rk.qlinear_add(a, 1.0, 0, a, np.ones(4, F32), 0, 1.0, 0)
    with pytest.raises(ValueError, match="do not broadcast"):
        rk.qlinear_add(a, 1.0, 0, np.zeros(3, np.uint8), 1.0, 0, 1.0, 0)
    with pytest.raises(ValueError, match="isa='neon'"):
        rk.qlinear_add(a, 1.0, 0, a, 1.0, 0, 1.0, 0, isa="neon")
    x = np.zeros((1, 2, 4, 4), np.uint8)
    with pytest.raises(TypeError, match="x_zero_point must have the dtype of x"):
        rk.qlinear_average_pool(x, 1.0, np.int8(0), 1.0, None, kernel_shape=[2, 2])
    with pytest.raises(ValueError, match="kernel_shape must have 2 entries"):
        rk.qlinear_average_pool(x, 1.0, None, 1.0, None, kernel_shape=[2])
    with pytest.raises(ValueError, match="y_scale must be finite and > 0"):
        rk.qlinear_sigmoid(x, 1.0, None, 0.0, None)
    b = np.zeros((3, 2), np.int8)
    with pytest.raises(ValueError, match="b_scale and b_zero_point must have the same shape"):
        rk.qgemm(np.zeros((1, 3), np.uint8), 1.0, 0, b, np.ones(2, F32), np.int8(0))
    with pytest.raises(ValueError, match=r"c must have shape"):
        rk.qgemm(np.zeros((1, 3), np.uint8), 1.0, 0, b, 1.0, 0, np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="y_scale and y_zero_point must be given together"):
        rk.qgemm(np.zeros((1, 3), np.uint8), 1.0, 0, b, 1.0, 0, None, 1.0)
