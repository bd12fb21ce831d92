"""Differential tests of refquant.kernels.onnx against ONNX Runtime (CPU) and onnx.reference.

Every expected value comes from running a tiny ONNX model (built with ``onnx.helper``) in
ONNX Runtime and in ``onnx.reference.ReferenceEvaluator``, or from a hand-worked case.
Integers are compared exactly, floats by bit pattern. Where onnx.reference disagrees with
the spec (and refquant), the test asserts the documented divergent value instead.
"""

from __future__ import annotations

import functools
import math
import platform
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refquant.kernels import _fp8
from refquant.kernels import onnx as ok

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
INT32_MIN = -(2**31)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_NP_TO_TP = {
    np.dtype(np.float32): TP.FLOAT,
    np.dtype(np.float16): TP.FLOAT16,
    np.dtype(np.int8): TP.INT8,
    np.dtype(np.uint8): TP.UINT8,
    np.dtype(np.int16): TP.INT16,
    np.dtype(np.uint16): TP.UINT16,
    np.dtype(np.int32): TP.INT32,
}
# ONNX type name -> (TensorProto code, dtype of the array fed to / read from the session)
_QT = {
    "int8": (TP.INT8, np.int8),
    "uint8": (TP.UINT8, np.uint8),
    "int16": (TP.INT16, np.int16),
    "uint16": (TP.UINT16, np.uint16),
    "int4": (TP.INT4, np.int8),
    "uint4": (TP.UINT4, np.uint8),
    "float8e4m3fn": (TP.FLOAT8E4M3FN, np.uint8),
    "float8e5m2": (TP.FLOAT8E5M2, np.float16),  # ORT cannot return e5m2: cast to fp16
}
_RANGE = {
    "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
    "int4": (-8, 7), "uint4": (0, 15),
}
_INT_TYPES = tuple(_RANGE)


# -- model building (sessions cached per configuration) -------------------------------------


def _model(nodes, inputs, outputs, opset):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


@functools.cache
def _quant_runners(opset, xdtype, rank, scale_rank, qname, axis, block, sat, has_zp):
    """(ort_run, ref_run) for QuantizeLinear with x, scale (and zero point) as inputs."""
    xt = _NP_TO_TP[np.dtype(xdtype)]
    st_ = xt if opset >= 19 else TP.FLOAT
    code, _ = _QT[qname]
    inputs = [
        helper.make_tensor_value_info("x", xt, [None] * rank),
        helper.make_tensor_value_info("s", st_, [None] * scale_rank),
    ]
    nodes = []
    names = ["x", "s"]
    attrs = {}
    if opset >= 13:
        attrs["axis"] = axis
    if block:
        attrs["block_size"] = block
    if qname.startswith("float8"):
        attrs["saturate"] = int(sat)
        if opset >= 21:
            attrs["output_dtype"] = code
        else:  # opset 19: an FP8 zero point initializer names the type
            zp_init = helper.make_tensor("zp", code, [], [0.0])
            nodes.append(helper.make_node("Constant", [], ["zp"], value=zp_init))
            names.append("zp")
    elif has_zp:
        zdt = TP.INT8 if qname == "int4" else TP.UINT8 if qname == "uint4" else code
        inputs.append(helper.make_tensor_value_info("zp_in", zdt, [None] * scale_rank))
        if qname in ("int4", "uint4"):
            nodes.append(helper.make_node("Cast", ["zp_in"], ["zp"], to=code))
        else:
            nodes.append(helper.make_node("Identity", ["zp_in"], ["zp"]))
        names.append("zp")
    elif qname != "uint8":
        assert opset >= 21
        attrs["output_dtype"] = code
    nodes.append(helper.make_node("QuantizeLinear", names, ["q"], **attrs))
    out_code = code
    if qname in ("int4", "uint4"):
        out_code = TP.INT8 if qname == "int4" else TP.UINT8
        nodes.append(helper.make_node("Cast", ["q"], ["y"], to=out_code))
    elif qname == "float8e5m2":
        out_code = TP.FLOAT16
        nodes.append(helper.make_node("Cast", ["q"], ["y"], to=out_code))
    else:
        nodes.append(helper.make_node("Identity", ["q"], ["y"]))
    model = _model(nodes, inputs, [helper.make_tensor_value_info("y", out_code, None)], opset)
    return _runners(model)


@functools.cache
def _dequant_runners(opset, in_name, rank, scale_rank, scale_dtype, axis, block, has_zp):
    """(ort_run, ref_run) for DequantizeLinear; int4/uint4/FP8 inputs are Cast in-graph."""
    s_t = _NP_TO_TP[np.dtype(scale_dtype)]
    nodes = []
    if in_name in ("int4", "uint4", "float8e4m3fn", "float8e5m2"):
        code = _QT[in_name][0]
        feed_t = {"int4": TP.INT8, "uint4": TP.UINT8}.get(in_name, TP.FLOAT)
        # saturate=0 so the inf codes of float8e5m2 reach DequantizeLinear as inf (the
        # default saturate=1 would turn them into +-57344 before the operator under test)
        kw = {"saturate": 0} if in_name.startswith("float8") else {}
        nodes.append(helper.make_node("Cast", ["x_in"], ["x"], to=code, **kw))
    else:
        feed_t = _NP_TO_TP[np.dtype(in_name)]
        nodes.append(helper.make_node("Identity", ["x_in"], ["x"]))
    inputs = [
        helper.make_tensor_value_info("x_in", feed_t, [None] * rank),
        helper.make_tensor_value_info("s", s_t, [None] * scale_rank),
    ]
    names = ["x", "s"]
    if has_zp:
        inputs.append(helper.make_tensor_value_info("zp_in", feed_t, [None] * scale_rank))
        if in_name in ("int4", "uint4"):
            nodes.append(helper.make_node("Cast", ["zp_in"], ["zp"], to=_QT[in_name][0]))
        else:
            nodes.append(helper.make_node("Identity", ["zp_in"], ["zp"]))
        names.append("zp")
    attrs = {}
    if opset >= 13:
        attrs["axis"] = axis
    if block:
        attrs["block_size"] = block
    nodes.append(helper.make_node("DequantizeLinear", names, ["y"], **attrs))
    model = _model(nodes, inputs, [helper.make_tensor_value_info("y", s_t, None)], opset)
    return _runners(model)


def _runners(model):
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    sess = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    try:
        ref = ReferenceEvaluator(model)
    except RuntimeError:  # onnx.reference 1.17 has no DequantizeLinear before version 19
        ref = None

    def run_ort(feed):
        return sess.run(None, feed)[0]

    def run_ref(feed):
        if ref is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN/inf -> int32 casts
            return np.asarray(ref.run(None, feed)[0])

    return run_ort, run_ref


def _run_quant(x, scale, zp, qname, *, opset=21, axis=1, block=0, sat=True):
    runs = _quant_runners(
        opset, x.dtype.type, x.ndim, scale.ndim, qname, axis, block, sat, zp is not None
    )
    feed = {"x": x, "s": scale}
    if zp is not None and not qname.startswith("float8"):
        feed["zp_in"] = zp
    return runs[0](feed), runs[1](feed)


def _fp8_feed(bits, fmt):
    return _fp8.fp8_to_float32(bits, fmt)


# -- strategies -----------------------------------------------------------------------------


def _scales(dtype=np.float32, tiny=True):
    """Positive finite scales: powers of two (exact ties), random, tiny and subnormal."""
    info = np.finfo(dtype)
    pow2 = st.integers(-12, 6).map(lambda e: 2.0**e)
    plain = st.floats(1e-3, 10.0)
    small = st.floats(float(info.tiny), float(info.tiny) * 1e3) if tiny else plain
    sub = st.sampled_from([float(info.smallest_subnormal) * k for k in (1, 3, 1000)])
    choices = [pow2, plain, small, st.sampled_from([0.00214854861, 0.53125, 1 / 127])]
    if tiny:
        choices.append(sub)
    return st.one_of(*choices).map(lambda v: dtype(v)).filter(
        lambda v: np.isfinite(v) and v > 0
    )


_SPECIALS32 = np.array(
    [0.0, -0.0, np.nan, np.inf, -np.inf, 3e9, -3e9, 3.4e38, -3.4e38, 1e-45, -1e-45, 1e-39],
    np.float32,
)
_SPECIALS16 = np.array(
    [0.0, -0.0, np.nan, np.inf, -np.inf, 65504, -65504, 6e-8, -6e-8, 1e-5], np.float16
)


@st.composite
def _values_for(draw, scale, n, dtype=np.float32, zp_max=300):
    """``n`` values of ``dtype`` aimed at quantization edges for ``scale`` (per element).

    Targets ``t`` for ``x / s``: exact ties k + 0.5, integers, saturation edges (qmin - zp,
    qmax - zp for 4/8/16-bit grids, +-0.5), random; ``x = fl(t * s)`` then nudged by
    -1/0/+1 ulp; plus specials (+-0, NaN, +-inf, huge, subnormal).
    """
    s = np.asarray(scale, np.float64)
    flat = np.broadcast_to(s, (n,)).astype(np.float64) if s.ndim == 0 else s.ravel()[:n]
    edges = [127.5, 128.5, 255.5, 7.5, 8.5, 15.5, 32767.5, 32768.5, 65535.5, 0.5, 1.5, 2.5]
    out = np.empty(n, dtype)
    specials = _SPECIALS32 if dtype == np.float32 else _SPECIALS16
    for i in range(n):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            out[i] = specials[draw(st.integers(0, len(specials) - 1))]
            continue
        if kind <= 3:
            t = draw(st.integers(-400, 400)) + 0.5
        elif kind <= 5:
            t = draw(st.sampled_from(edges)) * draw(st.sampled_from([1, -1])) + draw(
                st.integers(-zp_max, zp_max)
            ) * (kind == 5)
        elif kind == 6:
            t = float(draw(st.integers(-70000, 70000)))
        else:
            t = draw(st.floats(-70000, 70000))
        with np.errstate(over="ignore"):
            v = dtype(t * flat[i % len(flat)])
        nudge = draw(st.integers(-1, 1))
        if nudge and np.isfinite(v):
            v = np.nextafter(v, dtype(np.inf) * nudge, dtype=dtype)
        out[i] = v
    return out


def _zp_for(draw, qname, shape):
    lo, hi = _RANGE[qname]
    small = st.integers(max(lo, -300), min(hi, 300))
    elem = st.one_of(small, st.integers(lo, hi), st.sampled_from([lo, hi]))
    size = int(np.prod(shape))
    vals = draw(st.lists(elem, min_size=size, max_size=size))
    return np.array(vals, dtype=_QT[qname][1]).reshape(shape)


# -- comparison helpers ---------------------------------------------------------------------


def _ref_divergent_int(x, scale_b, zp_b, qname):
    """onnx.reference's documented divergences for integer outputs.

    It divides in x's dtype, then ``np.rint(v).astype(int32)``: on x86, NaN and anything
    outside int32 (e.g. +inf) become INT32_MIN, then ``+= zp`` wraps in int32, then clip.
    Returns (mask of elements where the reference differs from the spec path, its value).
    """
    lo, hi = _RANGE[qname]
    with np.errstate(all="ignore"):
        v_ref = np.rint(x / scale_b.astype(x.dtype)).astype(np.float64)
        v_spec = np.rint(x.astype(np.float32) / scale_b.astype(np.float32)).astype(np.float64)
    out_of_int32 = ~np.isfinite(v_ref) | (v_ref >= 2.0**31) | (v_ref < -(2.0**31))
    differs = out_of_int32 | (v_ref != v_spec)
    wrapped = np.where(out_of_int32, INT32_MIN, np.where(np.isfinite(v_ref), v_ref, 0)) + zp_b
    wrapped = (wrapped + 2**31) % 2**32 - 2**31  # int32 wrap-around of "xi += zp"
    return differs, np.clip(wrapped, lo, hi)


def _expand_param(p, shape, axis, block):
    p = np.asarray(p)
    if p.ndim == 0 or p.size == 1:
        return np.broadcast_to(p.reshape(()), shape)
    if not block:
        dims = [1] * len(shape)
        dims[axis] = p.size
        return np.broadcast_to(p.reshape(dims), shape)
    rep = np.repeat(p, block, axis=axis)
    return np.take(rep, np.arange(shape[axis]), axis=axis)


def _check_int_quant(x, scale, zp, qname, *, opset=21, axis=1, block=0):
    """refquant == ORT everywhere; == onnx.reference except the documented divergences."""
    x_before, s_before = x.copy(), scale.copy()
    zp_before = None if zp is None else zp.copy()
    kw = {"output_dtype": qname} if qname in ("int4", "uint4") or zp is None else {}
    got = ok.quantize_linear(x, scale, zp, axis=axis, block_size=block, opset=opset, **kw)
    a, b = _run_quant(x, scale, zp, qname, opset=opset, axis=axis, block=block)
    assert got.dtype == a.dtype, (got.dtype, a.dtype)
    np.testing.assert_array_equal(got, a)
    # inputs untouched
    assert x.tobytes() == x_before.tobytes() and scale.tobytes() == s_before.tobytes()
    if zp is not None:
        assert np.array_equal(zp, zp_before)
    ax = axis % x.ndim if x.ndim else 0
    sb = _expand_param(scale, x.shape, ax, block)
    zb = np.zeros(x.shape, np.int64) if zp is None else _expand_param(zp, x.shape, ax, block)
    differs, div_val = _ref_divergent_int(x, sb, zb.astype(np.int64), qname)
    b = b.astype(np.int64)
    np.testing.assert_array_equal(b[~differs], got[~differs])
    if X86:
        np.testing.assert_array_equal(b[differs], div_val[differs])
    return got, differs


def _fp8_same(a_bits_or_f16, got_bits, qname):
    """Compare FP8 results: e4m3fn by bit pattern; e5m2 (read back through float16,
    which canonicalises NaN payloads) by the float16 bit pattern, NaNs by sign only."""
    if qname == "float8e4m3fn":
        np.testing.assert_array_equal(np.asarray(a_bits_or_f16).view(np.uint8), got_bits)
        return
    f16 = np.asarray(a_bits_or_f16, np.float16)
    ours = (got_bits.astype(np.uint16) << 8).view(np.float16)
    nan = np.isnan(ours)
    np.testing.assert_array_equal(np.isnan(f16), nan)
    np.testing.assert_array_equal(np.signbit(f16[nan]), np.signbit(ours[nan]))
    np.testing.assert_array_equal(f16[~nan].view(np.uint16), ours[~nan].view(np.uint16))


# -- hand-worked cases ----------------------------------------------------------------------


def test_hand_case_division_not_reciprocal():
    """docs/kernels/onnx.md, hand-worked case 1: x / s = 127.49999 -> 127 (x * fl(1/s) -> 128)."""
    x = np.array([0.273939937], np.float32)
    s = np.array(0.00214854861, np.float32)
    assert float(x[0]) * (1.0 / float(np.float32(1.0) / s)) != float(x[0]) / float(s)
    got = ok.quantize_linear(x, s)
    a, b = _run_quant(x, s, None, "uint8")
    assert got.tolist() == [127] and a.tolist() == [127] and b.tolist() == [127]
    recip = np.rint(x * (np.float32(1) / s))  # the FBGEMM / torch CPU formulation
    assert recip.tolist() == [128.0]


def test_hand_case_fp16_division():
    """docs/kernels/onnx.md, hand-worked case 2: fp16 x=34.28125, s=0.53125.

    float32: 34.28125 / 0.53125 = 64.529..., rounds to 65 (ORT, refquant);
    float16: the quotient rounds to exactly 64.5, then ties-to-even gives 64 (onnx.reference).
    """
    x = np.array([34.28125], np.float16)
    s = np.array(0.53125, np.float16)
    assert float(x[0]) / float(s) == pytest.approx(64.5294117647)
    assert float(np.float16(x[0]) / s) == 64.5
    got = ok.quantize_linear(x, s, np.int8(0))
    a, b = _run_quant(x, s, np.array(0, np.int8), "int8", opset=19)
    assert got.tolist() == [65] and a.tolist() == [65]
    assert b.tolist() == [64]  # documented onnx.reference divergence


def test_hand_case_saturation_and_specials_int8():
    """Spec: saturate; ORT: NaN -> qmin; onnx.reference: +inf -> INT32_MIN -> -128 (x86)."""
    x = np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, -0.0, 1.0, -1.0], np.float32)
    s = np.array(0.5, np.float32)
    zp = np.array(0, np.int8)
    got = ok.quantize_linear(x, s, zp)
    assert got.tolist() == [-128, 127, -128, 127, -128, 0, 2, -2]
    a, b = _run_quant(x, s, zp, "int8")
    assert a.tolist() == got.tolist()
    if X86:
        assert b.tolist() == [-128, -128, -128, -128, -128, 0, 2, -2]


def test_hand_case_reference_wraps_with_negative_zero_point():
    """onnx.reference: INT32_MIN + (-1) wraps to INT32_MAX, so -inf and NaN give qmax."""
    x = np.array([np.nan, -np.inf, np.inf, 1.0], np.float32)
    s = np.array(1.0, np.float32)
    zp = np.array(-1, np.int8)
    got = ok.quantize_linear(x, s, zp)
    a, b = _run_quant(x, s, zp, "int8")
    assert got.tolist() == a.tolist() == [-128, -128, 127, 0]
    if X86:
        assert b.tolist() == [127, 127, 127, 0]


def test_hand_case_fp16_quotient_overflow():
    """fp16 x=60000, s=0.5: the f32 quotient 120000 saturates (ORT, refquant); onnx.reference's
    fp16 quotient is inf -> INT32_MIN -> qmin (x86)."""
    x = np.array([60000.0, -60000.0], np.float16)
    s = np.array(0.5, np.float16)
    zp = np.array(0, np.int16)
    got = ok.quantize_linear(x, s, zp)
    a, b = _run_quant(x, s, zp, "int16")
    assert got.tolist() == a.tolist() == [32767, -32768]
    if X86:
        assert b.tolist() == [-32768, -32768]


def test_hand_case_ties_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5], np.float32)
    got = ok.quantize_linear(x, np.float32(1), np.int8(0))
    assert got.tolist() == [0, 2, 2, 0, -2, -2, 126, 127]
    a, _ = _run_quant(x, np.array(1, np.float32), np.array(0, np.int8), "int8")
    assert a.tolist() == got.tolist()


def test_dequantize_hand_case():
    x = np.array([0, 128, 255], np.uint8)
    got = ok.dequantize_linear(x, np.float32(0.5), np.uint8(128))
    assert got.tolist() == [-64.0, 0.0, 63.5] and got.dtype == np.float32


# -- Hypothesis differential tests: quantize ------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_per_tensor_matches_ort_and_reference(data):
    opset = data.draw(st.sampled_from([10, 13, 19, 21]))
    qnames = ["int8", "uint8"] + (["int16", "uint16", "int4", "uint4"] if opset >= 21 else [])
    qname = data.draw(st.sampled_from(qnames))
    scale = np.array(data.draw(_scales()), np.float32)
    n = data.draw(st.integers(1, 24))
    x = data.draw(_values_for(scale, n))
    zp = None if qname == "uint8" and data.draw(st.booleans()) else np.array(
        _zp_for(data.draw, qname, ()), _QT[qname][1]
    )
    _check_int_quant(x, scale, zp, qname, opset=opset)


@SETTINGS
@given(data=st.data())
def test_per_axis_matches_ort_and_reference(data):
    opset = data.draw(st.sampled_from([13, 19, 21]))
    qname = data.draw(st.sampled_from(_INT_TYPES if opset >= 21 else ("int8", "uint8")))
    rank = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    axis = data.draw(st.integers(-rank, rank - 1))
    c = shape[axis]
    if c == 1:  # 1-element scale would be per-tensor; make the axis longer
        shape = shape[: axis % rank] + (3,) + shape[axis % rank + 1:]
        c = 3
    scale = np.array([data.draw(_scales()) for _ in range(c)], np.float32)
    n = int(np.prod(shape))
    sb = _expand_param(scale, shape, axis % rank, 0).ravel()
    x = np.array(data.draw(_values_for(sb, n)), np.float32).reshape(shape)
    zp = _zp_for(data.draw, qname, (c,))
    _check_int_quant(x, scale, zp, qname, opset=opset, axis=axis)


@SETTINGS
@given(data=st.data())
def test_blocked_matches_ort_and_reference(data):
    qname = data.draw(st.sampled_from(_INT_TYPES))
    rank = data.draw(st.integers(1, 3))
    shape = list(data.draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
    axis = data.draw(st.integers(-rank, rank - 1))
    ax = axis % rank
    shape[ax] = data.draw(st.integers(2, 9))
    block = data.draw(st.integers(1, shape[ax] - 1))  # >= 2 blocks: ORT rejects 1 scale
    sshape = list(shape)
    sshape[ax] = math.ceil(shape[ax] / block)
    scale = np.array(
        [data.draw(_scales()) for _ in range(int(np.prod(sshape)))], np.float32
    ).reshape(sshape)
    sb = _expand_param(scale, tuple(shape), ax, block)
    x = np.array(data.draw(_values_for(sb.ravel(), int(np.prod(shape)))), np.float32)
    x = x.reshape(shape)
    zp = _zp_for(data.draw, qname, tuple(sshape)) if data.draw(st.booleans()) else None
    _check_int_quant(x, scale, zp, qname, opset=21, axis=axis, block=block)


@SETTINGS
@given(data=st.data())
def test_float16_input_matches_ort(data):
    """fp16 x and scale: ORT divides in float32 (refquant too); onnx.reference in float16."""
    opset = data.draw(st.sampled_from([19, 21]))
    qname = data.draw(st.sampled_from(_INT_TYPES if opset >= 21 else ("int8", "uint8")))
    per_axis = data.draw(st.booleans())
    if per_axis:
        scale = np.array([data.draw(_scales(np.float16)) for _ in range(3)], np.float16)
        shape = (2, 3)
    else:
        scale = np.array(data.draw(_scales(np.float16)), np.float16)
        shape = (data.draw(st.integers(1, 16)),)
    sb = _expand_param(scale, shape, 1 if per_axis else 0, 0).ravel()
    x = data.draw(_values_for(sb, int(np.prod(shape)), np.float16)).reshape(shape)
    zp = _zp_for(data.draw, qname, scale.shape)
    _check_int_quant(x, scale, zp, qname, opset=opset, axis=1)


def test_float16_reference_divergence_is_common():
    """On a grid of fp16 inputs, refquant == ORT everywhere and onnx.reference differs only
    where the fp16 quotient rounds differently (and there it equals rint(fp16 quotient))."""
    x = (np.arange(-3000, 3000, dtype=np.float32) * np.float32(0.0371)).astype(np.float16)
    s = np.array(0.03125 * 1.0625, np.float16)
    got, differs = _check_int_quant(x, s, np.array(0, np.int16), "int16")
    assert 0 < differs.sum() < x.size // 2  # 1380 of 6000 here


@SETTINGS
@given(data=st.data())
def test_fp8_matches_ort_and_reference(data):
    qname = data.draw(st.sampled_from(["float8e4m3fn", "float8e5m2"]))
    opset = data.draw(st.sampled_from([19, 21]))
    sat = data.draw(st.booleans())
    scale = np.array(data.draw(_scales()), np.float32)
    fmt = _fp8.FP8_FORMATS[qname]
    grid = _fp8.fp8_to_float32(np.arange(256, dtype=np.uint8), fmt)
    grid = grid[np.isfinite(grid)]
    n = data.draw(st.integers(1, 24))
    vals = []
    for _ in range(n):
        kind = data.draw(st.integers(0, 5))
        if kind == 0:
            vals.append(data.draw(st.sampled_from(list(_SPECIALS32) + [464, 480, 495, 496, 61440])))
            continue
        i = data.draw(st.integers(0, len(grid) - 2))
        lo, hi = sorted((float(grid[i]), float(grid[i + 1])))
        t = {1: lo, 2: (lo + hi) / 2, 3: data.draw(st.floats(lo, hi)),
             4: data.draw(st.floats(-1e6, 1e6)), 5: (lo + hi) / 2}[kind]
        v = np.float32(t * float(scale))
        if kind == 5 and np.isfinite(v):
            v = np.nextafter(v, np.float32(data.draw(st.sampled_from([np.inf, -np.inf]))))
        vals.append(v)
    x = np.array(vals, np.float32)
    got = ok.quantize_linear(x, scale, None, saturate=sat, output_dtype=qname, opset=opset)
    assert got.dtype == np.uint8
    a, b = _run_quant(x, scale, None, qname, opset=opset, sat=sat)
    _fp8_same(a, got, qname)
    if qname == "float8e4m3fn":
        np.testing.assert_array_equal(b.view(np.uint8), got)
    else:
        _fp8_same(b, got, qname)


def test_fp8_saturate_false_quirks_follow_ort():
    """Spec table: [x] > FLT_MAX -> NaN (e4m3fn) / inf (e5m2). ORT (and onnx.reference)
    instead: e4m3fn 480 <= x < 496 -> 448; e5m2 61440 <= x < 65536 -> NaN."""
    x = np.array([464, 465, 479, 480, 495.5, 496, 512], np.float32)
    got = ok.quantize_linear(x, np.float32(1), saturate=False, output_dtype="float8e4m3fn")
    a, b = _run_quant(x, np.array(1, np.float32), None, "float8e4m3fn", sat=False)
    expected = [0x7E, 0x7F, 0x7F, 0x7E, 0x7E, 0x7F, 0x7F]  # 448, NaN, NaN, 448 (!), ...
    assert got.tolist() == a.view(np.uint8).tolist() == expected
    assert b.view(np.uint8).tolist() == expected
    y = np.array([57344, 61439, 61440, 65535, 65536, np.inf], np.float32)
    got = ok.quantize_linear(y, np.float32(1), saturate=False, output_dtype="float8e5m2")
    a, _ = _run_quant(y, np.array(1, np.float32), None, "float8e5m2", sat=False)
    assert got.tolist() == [0x7B, 0x7B, 0x7F, 0x7F, 0x7C, 0x7C]
    assert np.isnan(a[2:4]).all() and np.isinf(a[4:]).all()


def test_fp8_float16_input_ort_converts_float32_quotient():
    x = (np.arange(-500, 500, dtype=np.float32) * np.float32(0.37)).astype(np.float16)
    s = np.array(0.3, np.float16)
    got = ok.quantize_linear(x, s, output_dtype="float8e4m3fn")
    a, b = _run_quant(x, s, None, "float8e4m3fn")
    np.testing.assert_array_equal(a.view(np.uint8), got)
    # onnx.reference converts its float16 quotient instead
    q16 = (x / s).astype(np.float32)
    via16 = ok.quantize_linear(q16, np.float32(1), output_dtype="float8e4m3fn")
    np.testing.assert_array_equal(b.view(np.uint8), via16)


def test_fp8_codes_roundtrip_through_ort_cast():
    """Every FP8 code decodes to the float32 ONNX Runtime's Cast gives."""
    for qname in ("float8e4m3fn", "float8e5m2"):
        fmt = _fp8.FP8_FORMATS[qname]
        vals = _fp8.fp8_to_float32(np.arange(256, dtype=np.uint8), fmt)
        a, _ = _run_quant(vals, np.array(1, np.float32), None, qname, sat=False)
        got = ok.quantize_linear(vals, np.float32(1), saturate=False, output_dtype=qname)
        _fp8_same(a, got, qname)
        fin = np.isfinite(vals)
        np.testing.assert_array_equal(got[fin], np.arange(256, dtype=np.uint8)[fin])


# -- Hypothesis differential tests: dequantize ----------------------------------------------


@SETTINGS
@given(data=st.data())
def test_dequantize_matches_ort_and_reference(data):
    opset = data.draw(st.sampled_from([10, 13, 19, 21]))
    names = ["int8", "uint8", "int32"]
    if opset >= 21:
        names += ["int16", "uint16", "int4", "uint4"]
    in_name = data.draw(st.sampled_from(names))
    mode = data.draw(st.sampled_from(
        ["tensor"] + (["axis"] if opset >= 13 else []) + (["block"] if opset >= 21 else [])
    ))
    if in_name == "int32":
        mode = "tensor" if opset < 13 else mode
    sdtype = np.float16 if opset >= 19 and data.draw(st.booleans()) else np.float32
    rank = data.draw(st.integers(1, 3))
    shape = list(data.draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    axis = data.draw(st.integers(-rank, rank - 1))
    ax = axis % rank
    block = 0
    if mode == "tensor":
        sshape: list[int] = []
    elif mode == "axis":
        shape[ax] = max(shape[ax], 2)
        sshape = [shape[ax]]
    else:
        shape[ax] = data.draw(st.integers(2, 8))
        block = data.draw(st.integers(1, shape[ax] - 1))
        sshape = list(shape)
        sshape[ax] = math.ceil(shape[ax] / block)
    scale = np.array(
        [data.draw(_scales(sdtype, tiny=False)) for _ in range(int(np.prod(sshape)))], sdtype
    ).reshape(sshape)
    if in_name == "int32":
        lo, hi = -(2**31), 2**31 - 1
        container = np.int32
    else:
        lo, hi = _RANGE[in_name]
        container = _QT[in_name][1]
    n = int(np.prod(shape))
    x = np.array(data.draw(st.lists(
        st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, 2**24 + 1]).filter(
            lambda v: lo <= v <= hi)), min_size=n, max_size=n)), container).reshape(shape)
    has_zp = in_name != "int32" and data.draw(st.booleans())
    zp = _zp_for(data.draw, in_name, tuple(sshape)) if has_zp else None
    x_before = x.copy()
    x_dtype = in_name if in_name in ("int4", "uint4") else None
    got = ok.dequantize_linear(x, scale, zp, axis=axis, block_size=block, x_dtype=x_dtype,
                               opset=opset)
    assert np.array_equal(x, x_before)
    runs = _dequant_runners(opset, in_name, rank, len(sshape), sdtype, axis, block, has_zp)
    feed = {"x_in": x, "s": scale}
    if has_zp:
        feed["zp_in"] = zp
    a, b = runs[0](feed), runs[1](feed)
    assert got.dtype == a.dtype == np.dtype(sdtype)
    uint = np.uint16 if sdtype == np.float16 else np.uint32
    np.testing.assert_array_equal(got.view(uint), a.view(uint))
    if opset >= 19:
        np.testing.assert_array_equal(got.view(uint), b.view(uint))
    else:
        assert b is None


@SETTINGS
@given(data=st.data())
def test_dequantize_fp8_matches_ort_and_reference(data):
    qname = data.draw(st.sampled_from(["float8e4m3fn", "float8e5m2"]))
    fmt = _fp8.FP8_FORMATS[qname]
    sdtype = data.draw(st.sampled_from([np.float32, np.float16]))
    scale = np.array(data.draw(_scales(sdtype, tiny=False)), sdtype)
    codes = np.array(data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=40)), np.uint8)
    got = ok.dequantize_linear(codes, scale, x_dtype=qname)
    runs = _dequant_runners(21, qname, 1, 0, sdtype, 1, 0, False)
    feed = {"x_in": _fp8_feed(codes, fmt), "s": scale}
    a, b = runs[0](feed), runs[1](feed)
    uint = np.uint16 if sdtype == np.float16 else np.uint32
    nan = np.isnan(got)
    np.testing.assert_array_equal(np.isnan(a), nan)
    np.testing.assert_array_equal(np.isnan(b), nan)
    np.testing.assert_array_equal(got[~nan].view(uint), a[~nan].view(uint))
    np.testing.assert_array_equal(got[~nan].view(uint), b[~nan].view(uint))


def test_dequantize_order_differs_from_distributed_form():
    """(x - zp) * s in one multiply, not x*s - zp*s: ORT agrees with refquant, and the
    distributed form differs on some codes (so the test can tell them apart)."""
    x = np.arange(256, dtype=np.uint8)
    s = np.array(0.0123, np.float32)
    zp = np.array(131, np.uint8)
    got = ok.dequantize_linear(x, s, zp)
    runs = _dequant_runners(21, "uint8", 1, 0, np.float32, 1, 0, True)
    a = runs[0]({"x_in": x, "s": s, "zp_in": zp})
    np.testing.assert_array_equal(got.view(np.uint32), a.view(np.uint32))
    dist = x.astype(np.float32) * s - np.float32(131) * s
    assert not np.array_equal(dist.view(np.uint32), got.view(np.uint32))


def test_dequantize_float16_scale_rounds_twice_like_ort():
    """fp16 scale: float32 product, then one rounding to float16 (ORT and onnx.reference)."""
    x = np.arange(-128, 128, dtype=np.int8)
    s = np.array(0.0007, np.float16)
    got = ok.dequantize_linear(x, s)
    runs = _dequant_runners(21, "int8", 1, 0, np.float16, 1, 0, False)
    a = runs[0]({"x_in": x, "s": s})
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got.view(np.uint16), a.view(np.uint16))


# -- scale <= 0 policy ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0.0, -0.5, np.inf, np.nan])
def test_bad_scale_rejected_where_ort_would_saturate(bad):
    x = np.array([1.0, 0.0, -1.0], np.float32)
    s = np.array(bad, np.float32)
    with pytest.raises(ValueError, match="y_scale"):
        ok.quantize_linear(x, s, np.int8(0))
    with pytest.raises(ValueError, match="x_scale"):
        ok.dequantize_linear(np.int8([1, 2]), s)
    if bad == 0.0:  # the documented ORT behaviour refquant refuses to reproduce
        a, _ = _run_quant(x, s, np.array(0, np.int8), "int8")
        assert a.tolist() == [127, -128, -128]  # x/0 = +-inf saturates; 0/0 = NaN -> qmin


# -- validation -----------------------------------------------------------------------------

_X = np.zeros((2, 3), np.float32)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"x": np.zeros(3, np.float64), "y_scale": np.float32(1)}, TypeError, "x"),
        ({"x": np.zeros(3, np.int32), "y_scale": np.float32(1)}, TypeError, "x"),
        ({"x": "abc", "y_scale": 1.0}, TypeError, "x"),
        ({"x": _X, "y_scale": np.float64(1)}, TypeError, "y_scale"),
        ({"x": _X.astype(np.float16), "y_scale": np.float32(1)}, TypeError, "y_scale"),
        ({"x": _X.astype(np.float16), "y_scale": np.float16(1), "opset": 13}, TypeError, "x"),
        ({"x": _X, "y_scale": np.float32([1, 2])}, ValueError, "y_scale"),
        ({"x": _X, "y_scale": np.ones((2, 3), np.float32)}, ValueError, "y_scale"),
        ({"x": _X, "y_scale": np.ones(3, np.float32), "opset": 10}, ValueError, "opset"),
        ({"x": _X, "y_scale": np.ones(3, np.float32), "axis": 2}, ValueError, "axis"),
        ({"x": _X, "y_scale": np.ones(3, np.float32), "axis": 1.0}, TypeError, "axis"),
        ({"x": _X, "y_scale": np.ones(3, np.float32), "y_zero_point": np.int8([0, 0])},
         ValueError, "y_zero_point"),
        ({"x": _X, "y_scale": np.float32(1), "y_zero_point": 3}, TypeError, "y_zero_point"),
        ({"x": _X, "y_scale": np.float32(1), "y_zero_point": np.float32(0)}, TypeError,
         "y_zero_point"),
        ({"x": _X, "y_scale": np.float32(1), "y_zero_point": np.int8(0),
          "output_dtype": "uint8"}, ValueError, "output_dtype"),
        ({"x": _X, "y_scale": np.float32(1), "y_zero_point": np.int8(9),
          "output_dtype": "int4"}, ValueError, "y_zero_point"),
        ({"x": _X, "y_scale": np.float32(1), "output_dtype": "int4", "opset": 19},
         ValueError, "opset"),
        ({"x": _X, "y_scale": np.float32(1), "output_dtype": "float8e4m3fn", "opset": 13},
         ValueError, "opset"),
        ({"x": _X, "y_scale": np.float32(1), "output_dtype": "int3"}, ValueError,
         "output_dtype"),
        ({"x": _X, "y_scale": np.float32(1), "output_dtype": 1}, ValueError, "output_dtype"),
        ({"x": _X, "y_scale": np.float32(1), "output_dtype": "float8e4m3fn",
          "y_zero_point": np.uint8(3)}, ValueError, "y_zero_point"),
        ({"x": _X, "y_scale": np.ones((2, 2), np.float32), "block_size": 4},
         ValueError, "y_scale"),
        ({"x": _X, "y_scale": np.ones((2, 2), np.float32), "block_size": 1},
         ValueError, "y_scale"),
        ({"x": _X, "y_scale": np.ones((2, 1), np.float32), "block_size": -1},
         ValueError, "block_size"),
        ({"x": _X, "y_scale": np.ones((2, 1), np.float32), "block_size": 2.0},
         TypeError, "block_size"),
        ({"x": _X, "y_scale": np.ones((2, 1), np.float32), "block_size": 3, "opset": 19},
         ValueError, "block_size"),
        ({"x": _X, "y_scale": np.ones(3, np.float32), "block_size": 3},
         ValueError, "y_scale"),
        ({"x": _X, "y_scale": np.float32(1), "saturate": "yes"}, TypeError, "saturate"),
        ({"x": _X, "y_scale": np.float32(1), "opset": 9}, ValueError, "opset"),
        ({"x": _X, "y_scale": np.float32(1), "opset": 23}, ValueError, "opset"),
        ({"x": _X, "y_scale": np.float32([])}, ValueError, "y_scale"),
    ],
)
def test_quantize_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ok.quantize_linear(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"x": [1, 2], "x_scale": np.float32(1)}, TypeError, "x"),
        ({"x": np.zeros(3, np.float32), "x_scale": np.float32(1)}, TypeError, "x"),
        ({"x": np.zeros(3, np.int8), "x_scale": np.float64(1)}, TypeError, "x_scale"),
        ({"x": np.zeros(3, np.int8), "x_scale": np.float16(1), "opset": 13}, TypeError,
         "x_scale"),
        ({"x": np.zeros(3, np.int8), "x_scale": np.float32(1),
          "x_zero_point": np.uint8(0)}, TypeError, "x_zero_point"),
        ({"x": np.zeros(3, np.int32), "x_scale": np.float32(1),
          "x_zero_point": np.int32(2)}, ValueError, "x_zero_point"),
        ({"x": np.zeros(3, np.int16), "x_scale": np.float32(1), "opset": 19}, ValueError,
         "opset"),
        ({"x": np.int8([9]), "x_scale": np.float32(1), "x_dtype": "int4"}, ValueError, "x"),
        ({"x": np.uint8([1]), "x_scale": np.float32(1), "x_dtype": "int4"}, TypeError,
         "x_dtype"),
        ({"x": np.zeros((2, 3), np.int8), "x_scale": np.ones(2, np.float32)}, ValueError,
         "x_scale"),
        ({"x": np.zeros((2, 3), np.int8), "x_scale": np.ones((1, 3), np.float32),
          "block_size": 1, "axis": 0}, ValueError, "x_scale"),
        ({"x": np.uint8([1]), "x_scale": np.float32(1), "x_dtype": "float8e5m2",
          "x_zero_point": np.uint8(1)}, ValueError, "x_zero_point"),
    ],
)
def test_dequantize_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ok.dequantize_linear(**kwargs)


def test_single_block_ort_rejects_spec_allows():
    """One block (block_size >= D): the spec allows it and onnx.reference computes it;
    ORT 1.32 refuses ("block_size must be 0 for per-tensor quantization"). refquant follows
    the spec: the result equals per-tensor quantization with that scale."""
    x = np.array([0.3, -1.7, 2.5, 9.0], np.float32)
    s = np.array([0.5], np.float32)
    zp = np.array([1], np.int8)
    got = ok.quantize_linear(x, s, zp, axis=0, block_size=4)
    per_tensor = ok.quantize_linear(x, np.float32(0.5), np.int8(1))
    np.testing.assert_array_equal(got, per_tensor)
    a, _ = _run_quant(x, np.array(0.5, np.float32), np.array(1, np.int8), "int8")
    np.testing.assert_array_equal(got, a)
    runs = _quant_runners(21, np.float32, 1, 1, "int8", 0, 4, True, True)
    with pytest.raises(Exception, match="block_size must be 0"):
        runs[0]({"x": x, "s": s, "zp_in": zp})
    np.testing.assert_array_equal(runs[1]({"x": x, "s": s, "zp_in": zp}), got)


def test_negative_axis_equals_positive_axis():
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4)
    s = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    a = ok.quantize_linear(x, s, np.int8([0, 1, 2, 3]), axis=-1)
    b = ok.quantize_linear(x, s, np.int8([0, 1, 2, 3]), axis=2)
    np.testing.assert_array_equal(a, b)
    ort_out, _ = _run_quant(x, s, np.int8([0, 1, 2, 3]), "int8", axis=-1)
    np.testing.assert_array_equal(a, ort_out)


def test_opset_rules():
    assert ok.op_version(10) == 10 and ok.op_version(12) == 10 and ok.op_version(18) == 13
    assert ok.op_version(20) == 19 and ok.op_version(22) == 21
    x = np.array([1.0, 2.0], np.float32)
    # a 1-element 1-D scale is per-tensor, also in opset 10 (as in ORT)
    got = ok.quantize_linear(x, np.float32([0.5]), np.int8([1]), opset=10)
    a, _ = _run_quant(x, np.array([0.5], np.float32), np.array([1], np.int8), "int8", opset=10)
    assert got.tolist() == a.tolist() == [3, 5]


def test_python_number_inputs():
    got = ok.quantize_linear([0.5, 1.5, 2.5], 1.0, np.int8(0))
    assert got.tolist() == [0, 2, 2] and got.dtype == np.int8
    got = ok.quantize_linear([1.0], 0.5, 3, output_dtype="uint4")
    assert got.tolist() == [5] and got.dtype == np.uint8
