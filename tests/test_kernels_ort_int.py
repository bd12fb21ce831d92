"""refquant.kernels.onnxruntime: the integer GEMM core, MatMulInteger, MatMulIntegerToFloat,
QLinearMatMul, ConvInteger, QLinearConv and DynamicQuantizeLinear.

Expected values come from ONNX Runtime itself (tiny single-node models built with
``onnx.helper``, run in ORT's default CPU session), compared with ``isa="host"`` — the
variant ORT runs on this machine, whichever CPU the test runs on — bit for bit. The
saturating ``vpmaddubsw`` variants (``isa="avx2"`` / ``"avx512"``), which a VNNI or AMX CPU
cannot run, are checked against hand-worked cases and an independent pair-by-pair
formulation of the instruction written in this file.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant.kernels import onnxruntime as rk
from refquant.kernels.onnxruntime import _dispatch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as TP  # noqa: E402

from refquant.conformance.targets.onnxruntime_int8 import one_node_session  # noqa: E402

F32 = np.float32
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_TP = {np.dtype(np.uint8): TP.UINT8, np.dtype(np.int8): TP.INT8,
       np.dtype(np.float32): TP.FLOAT, np.dtype(np.int32): TP.INT32}
MS = "com.microsoft"


def ort_run(op, inputs, out_types, *, attrs=None, domain="", consts=(), n_out=1, config=None):
    """Run one ONNX node in ORT's default CPU session. ``inputs``: arrays or None (absent
    optional input); indices in ``consts`` become initializers (constant weights)."""
    assert len(out_types) == n_out
    sess, feeds = one_node_session(op, inputs, list(out_types), attrs=attrs, domain=domain,
                                   consts=tuple(consts), config=config)
    res = sess.run(None, feeds)
    return res if n_out > 1 else res[0]


def bits(x):
    return np.asarray(x, F32).view(np.uint32)


def _codes(dtype):
    """Codes biased toward the saturation edges (0, 1, 127, 128, 254, 255 / -128, 127)."""
    if np.dtype(dtype) == np.uint8:
        edge = st.sampled_from([0, 1, 127, 128, 129, 254, 255])
        return st.one_of(edge, st.integers(0, 255), st.integers(200, 255))
    edge = st.sampled_from([-128, -127, -64, -1, 0, 1, 64, 126, 127])
    return st.one_of(edge, st.integers(-128, 127), st.integers(100, 127), st.integers(-128, -100))


@st.composite
def code_array(draw, dtype, shape):
    return draw(hnp.arrays(dtype, shape, elements=_codes(dtype)))


@st.composite
def zp_of(draw, dtype, n=None):
    lo, hi = (0, 255) if np.dtype(dtype) == np.uint8 else (-128, 127)
    vals = st.one_of(st.sampled_from([0, lo, hi, (lo + hi + 1) // 2]), st.integers(lo, hi))
    if n is None:
        return np.array(draw(vals), dtype)
    return np.array(draw(st.lists(vals, min_size=n, max_size=n)), dtype)


scales = st.floats(2.0**-12, 2.0, allow_subnormal=False).map(F32)


def _draw_scales(data, n):
    return np.array(data.draw(st.lists(scales, min_size=n, max_size=n)), F32)
KINDS = [(np.uint8, np.int8), (np.uint8, np.uint8), (np.int8, np.int8)]


# -- dispatch ---------------------------------------------------------------------------------


def test_isa_names_and_saturating_variants():
    assert set(_dispatch.ISAS) == {"avx2", "avx2-vnni", "avx512", "avx512-vnni", "amx", "neon"}
    assert rk.check_isa("host") == rk.host_isa() in _dispatch.ISAS
    assert rk.saturates("avx2", False, True) and rk.saturates("avx512", False, True)
    assert not rk.saturates("avx2", False, False)  # u8 x u8: 16-bit operands
    assert not rk.saturates("avx2", True, True)  # s8 x s8: portable C++ kernel
    for isa in ("avx2-vnni", "avx512-vnni", "amx", "neon"):
        assert not rk.saturates(isa, False, True)


def test_host_isa_follows_platform_cpp_order(monkeypatch):
    def with_flags(*flags):
        monkeypatch.setattr(_dispatch, "_cpu", lambda: ("", frozenset(flags)))
        monkeypatch.setattr(_dispatch.platform, "machine", lambda: "x86_64")
        return _dispatch.host_isa()

    core = ("avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl")
    assert with_flags("avx2", "fma") == "avx2"  # AMD Zen 1-3
    assert with_flags("avx2", "avx_vnni") == "avx2-vnni"
    assert with_flags(*core) == "avx512"  # Skylake-SP
    assert with_flags(*core, "avx_vnni") == "avx512"  # the AVX-512 kernel replaces AVX-VNNI
    assert with_flags(*core, "avx512_vnni") == "avx512-vnni"
    assert with_flags(*core, "avx512_vnni", "amx_tile", "amx_int8") == "amx"
    with pytest.raises(ValueError, match="no AVX2"):
        with_flags("sse4_2")


# -- the saturating pair sum: hand-worked cases --------------------------------------------------


def _u8(*v):
    return np.array(v, np.uint8)


def _s8(*v):
    return np.array(v, np.int8)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_pair_saturation_hand_worked(isa):
    mi = rk.matmul_integer
    a, b = _u8(255, 255)[None], _s8(127, 127)[:, None]
    assert mi(a, b, isa=isa)[0, 0] == 32767  # 255*127*2 = 64770 saturates in int16
    assert mi(a, b, isa="avx512-vnni")[0, 0] == 64770
    assert mi(a, _s8(-128, -128)[:, None], isa=isa)[0, 0] == -32768  # -65280
    # the zero point is applied after the saturated dot product, with column sums:
    # 32767 - 128 * (127 + 127) = 255, where sum (a - 128) * b = 2 * 127 * 127 = 32258
    assert mi(a, b, np.uint8(128), isa=isa)[0, 0] == 255
    assert mi(a, b, np.uint8(128), isa="amx")[0, 0] == 32258
    # odd K: the last product has no partner and is exact
    assert mi(_u8(255, 255, 255)[None], _s8(127, 127, 127)[:, None], isa=isa)[0, 0] == 32767 + 32385
    # pairs are (0, 1), (2, 3): the adjacent 255s at k = 1, 2 are not summed together
    assert mi(_u8(0, 255, 255, 0)[None], _s8(0, 127, 127, 0)[:, None], isa=isa)[0, 0] == 64770
    # mixed signs cancel before saturation: 255*127 - 255*128 = -255
    assert mi(a, _s8(127, -128)[:, None], isa=isa)[0, 0] == -255
    # u8 x u8 and s8 x s8 never saturate
    assert mi(a, _u8(255, 255)[:, None], isa=isa)[0, 0] == 130050
    assert mi(_s8(-128, -128)[None], _s8(-128, -128)[:, None], isa=isa)[0, 0] == 32768


def test_pair_saturation_counts_and_limit_of_64():
    a = np.full((2, 6), 255, np.uint8)
    b = np.array([[127, 64], [127, 64], [1, 64], [1, 65], [-128, -64], [-1, -64]], np.int8)
    y, nsat = rk.gemm_s32(a, b, np.int64(0), np.int64(0), "avx2", return_saturation=True)
    # column 0: pairs (127, 127) and (-128, -1) (255 * -129 < -32768); column 1: only (64, 65)
    assert nsat.tolist() == [[2, 1], [2, 1]]
    assert rk.pair_saturation(a, b).tolist() == nsat.tolist()
    w = np.random.default_rng(0).integers(-64, 65, (33, 7)).astype(np.int8)
    x = np.full((3, 33), 255, np.uint8)
    assert rk.pair_saturation(x, w).sum() == 0  # |w| <= 64 never saturates
    assert np.array_equal(rk.matmul_integer(x, w, isa="avx2"), rk.matmul_integer(x, w, isa="amx"))


def test_x64quantprecision_weight_rewrite_is_exact():
    rng = np.random.default_rng(3)
    a = rng.integers(200, 256, (4, 40)).astype(np.uint8)
    w = rng.choice(np.array([127, -128, 100, -3], np.int8), (40, 5))
    wu, zu = rk.weight_s8_to_u8(w, np.int8(-3))
    assert wu.dtype == zu.dtype == np.uint8 and zu == 125 and wu[w == 127].max() == 255
    exact = rk.matmul_integer(a, w, np.uint8(128), np.int8(-3), isa="amx")
    saturated = rk.matmul_integer(a, w, np.uint8(128), np.int8(-3), isa="avx2")
    assert not np.array_equal(saturated, exact)
    assert np.array_equal(rk.matmul_integer(a, wu, np.uint8(128), zu, isa="avx2"), exact)
    assert rk.weight_s8_to_u8(np.array([[64, -64]], np.int8)) is None  # ORT keeps these


def test_x64quantprecision_session_gives_the_exact_result():
    """With the option ORT converts the constant int8 weights and runs the exact kernel on
    every CPU, so its output equals the exact variant on any machine."""
    a = np.full((3, 8), 255, np.uint8)
    w = np.full((8, 2), 127, np.int8)
    one = F32(1.0)
    args = [a, w, one, one, np.uint8(128), np.int8(0)]
    want = ort_run("MatMulIntegerToFloat", args, [TP.FLOAT], domain=MS, consts=(1, 5),
                   config={"session.x64quantprecision": "1"})
    assert np.array_equal(bits(want), bits(rk.matmul_integer_to_float(*args, isa="amx")))
    assert want[0, 0] == 4 * 127 * 127 * 2


def _pairwise_reference(a, b, a_zp, b_zp):
    """vpmaddubsw written out: raw u8 x s8 products summed per K pair, clipped to int16,
    widened and summed; then MLAS's zero-point correction with row and column sums."""
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    m, k = a64.shape
    n = b64.shape[1]
    out = np.zeros((m, n), np.int64)
    for j in range(0, k, 2):
        p = a64[:, j:j + 1] * b64[j:j + 1, :]
        if j + 1 < k:
            p = p + a64[:, j + 1:j + 2] * b64[j + 1:j + 2, :]
        out += np.clip(p, -32768, 32767)
    out += -b_zp * a64.sum(1, keepdims=True) - a_zp * b64.sum(0, keepdims=True) + k * a_zp * b_zp
    return out.astype(np.int32)


@SETTINGS
@given(data=st.data(), m=st.integers(1, 5), k=st.integers(1, 70), n=st.integers(1, 6))
def test_saturating_gemm_matches_pairwise_formulation(data, m, k, n):
    a = data.draw(code_array(np.uint8, (m, k)))
    b = data.draw(code_array(np.int8, (k, n)))
    azp, bzp = data.draw(zp_of(np.uint8)), data.draw(zp_of(np.int8, n))
    want = _pairwise_reference(a, b, int(azp), bzp.astype(np.int64))
    for isa in ("avx2", "avx512"):
        assert np.array_equal(rk.matmul_integer(a, b, azp, bzp, isa=isa), want)


def test_saturating_gemm_large_k_and_chunking():
    rng = np.random.default_rng(1)
    a = rng.integers(180, 256, (70, 1001)).astype(np.uint8)  # K spans MLAS's 128/384 strides
    b = rng.choice(np.array([-128, -100, 100, 127, 3], np.int8), (1001, 9))
    want = _pairwise_reference(a, b, 128, np.zeros(9, np.int64))
    got, nsat = rk.gemm_s32(a, b, np.int64(128), np.int64(0), "avx2", return_saturation=True)
    assert np.array_equal(got, want) and nsat.sum() > 1000


def test_int32_wraparound():
    a = np.full((1, 70000), 255, np.uint8)
    b = np.full((70000, 1), 255, np.uint8)
    want = (255 * 255 * 70000 + 2**31) % 2**32 - 2**31
    assert rk.matmul_integer(a, b)[0, 0] == want
    assert ort_run("MatMulInteger", [a, b], [TP.INT32])[0, 0] == want


# -- MatMulInteger / MatMulIntegerToFloat / QLinearMatMul vs ORT --------------------------------


@st.composite
def gemm_case(draw, per_column=True):
    ad, bd = draw(st.sampled_from(KINDS))
    batch = draw(st.sampled_from([(), (), (2,)]))
    m, k, n = draw(st.integers(1, 6)), draw(st.integers(1, 40)), draw(st.integers(1, 9))
    a = draw(code_array(ad, batch + (m, k)))
    b = draw(code_array(bd, (k, n)))
    col = per_column and draw(st.booleans())
    azp = draw(zp_of(ad))
    bzp = draw(zp_of(bd, n)) if col else draw(zp_of(bd))
    const_b = draw(st.booleans())
    return a, b, azp, bzp, col, const_b


@SETTINGS
@given(case=gemm_case())
def test_matmul_integer_matches_ort(case):
    a, b, azp, bzp, _, const_b = case
    want = ort_run("MatMulInteger", [a, b, azp, bzp], [TP.INT32], consts=(1,) if const_b else ())
    got = rk.matmul_integer(a, b, azp, bzp)
    assert got.dtype == np.int32 and np.array_equal(got, want)


def test_matmul_integer_vector_operands():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, 9).astype(np.uint8)
    b = rng.integers(-128, 128, (9, 4)).astype(np.int8)
    assert np.array_equal(rk.matmul_integer(a, b), ort_run("MatMulInteger", [a, b], [TP.INT32]))
    bv = rng.integers(-128, 128, 9).astype(np.int8)
    assert rk.matmul_integer(a, bv).shape == ()


@SETTINGS
@given(case=gemm_case(), data=st.data())
def test_matmul_integer_to_float_matches_ort(case, data):
    a, b, azp, bzp, col, const_b = case
    n = b.shape[1]
    sa = data.draw(scales)
    sb = _draw_scales(data, n) if col else data.draw(scales)
    bias = data.draw(st.none() | hnp.arrays(F32, (n,), elements=st.floats(-100, 100, width=32)))
    want = ort_run("MatMulIntegerToFloat", [a, b, sa, sb, azp, bzp, bias], [TP.FLOAT],
                   domain=MS, consts=(1,) if const_b else ())
    got = rk.matmul_integer_to_float(a, b, sa, sb, azp, bzp, bias)
    assert got.dtype == F32 and np.array_equal(bits(got), bits(want))


@SETTINGS
@given(case=gemm_case(), data=st.data())
def test_qlinear_matmul_matches_ort(case, data):
    a, b, azp, bzp, col, const_b = case
    n = b.shape[1]
    sa, sy = data.draw(scales), data.draw(st.floats(2.0**-4, 2.0**8).map(F32))
    sb = _draw_scales(data, n) if col else data.draw(scales)
    yzp = data.draw(zp_of(a.dtype))
    want = ort_run("QLinearMatMul", [a, sa, azp, b, sb, bzp, sy, yzp], [_TP[a.dtype]],
                   consts=(3,) if const_b else ())
    got = rk.qlinear_matmul(a, sa, azp, b, sb, bzp, sy, yzp)
    assert got.dtype == a.dtype and np.array_equal(got, want)


def test_matmul_integer_to_float_saturation_hand_worked():
    a, b = _u8(255, 255)[None], _s8(127, 127)[:, None]
    one = F32(1.0)
    y = rk.matmul_integer_to_float(a, b, one, one, np.uint8(128), isa="avx2")
    assert bits(y)[0, 0] == bits(F32(255.0))  # exact: 32258
    assert rk.matmul_integer_to_float(a, b, one, one, np.uint8(128), isa="avx2-vnni")[0, 0] == 32258


def test_qlinear_matmul_requantization_edges():
    # float32(acc) rounds above 2^24; clip before rounding; +-inf scale products saturate
    a = np.full((1, 700), 255, np.uint8)
    b = np.full((700, 3), 255, np.uint8)
    for sy in (F32(1.0), F32(3e4), F32(4.6e7), F32(1e-30)):
        want = ort_run("QLinearMatMul", [a, F32(1), np.uint8(0), b, F32(1), np.uint8(3), sy,
                                         np.uint8(7)], [TP.UINT8])
        assert np.array_equal(rk.qlinear_matmul(a, F32(1), np.uint8(0), b, F32(1),
                                                np.uint8(3), sy, np.uint8(7)), want)


# -- ConvInteger / QLinearConv vs ORT ------------------------------------------------------------


@st.composite
def conv_case(draw):
    xd, wd = draw(st.sampled_from(KINDS))
    rank = draw(st.sampled_from([1, 2, 2, 2]))
    shape_kind = draw(st.sampled_from(["dense", "dense", "depthwise", "group", "sym"]))
    if shape_kind == "depthwise":
        c = draw(st.sampled_from([3, 16]))
        g, m = c, c
    elif shape_kind == "group":
        g = 2
        c, m = 2 * draw(st.integers(1, 3)), 2 * draw(st.integers(1, 3))
    elif shape_kind == "sym":  # MlasConvSym: C % 4 == 0, M >= 16 and a multiple of 8
        g, c, m = 1, draw(st.sampled_from([4, 8])), draw(st.sampled_from([16, 24]))
    else:
        g, c, m = 1, draw(st.integers(1, 5)), draw(st.integers(1, 6))
    ks = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    sp = tuple(draw(st.integers(k, k + 4)) for k in ks)
    x = draw(code_array(xd, (draw(st.integers(1, 2)), c) + sp))
    w = draw(code_array(wd, (m, c // g) + ks))
    attrs = {"group": g,
             "strides": [draw(st.integers(1, 2)) for _ in ks],
             "dilations": [draw(st.sampled_from([1, 1, 2])) for _ in ks]}
    if draw(st.booleans()):
        attrs["pads"] = [draw(st.integers(0, k - 1)) for k in ks + ks]
    else:
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
        if attrs["auto_pad"] != "VALID":  # ORT: no dilation with SAME_*
            attrs["dilations"] = [1] * rank
            # a kernel smaller than the stride asks for negative padding (refused)
            attrs["strides"] = [s if k >= s else 1 for s, k in zip(attrs["strides"], ks,
                                                                    strict=True)]
    dk = [d * (k - 1) + 1 for d, k in zip(attrs["dilations"], ks, strict=True)]
    if any(s < k for s, k in zip(sp, dk, strict=True)):
        attrs["dilations"] = [1] * rank
    return x, w, attrs, shape_kind


@SETTINGS
@given(case=conv_case(), data=st.data())
def test_qlinear_conv_matches_ort(case, data):
    x, w, attrs, kind = case
    m = w.shape[0]
    sx, sy = data.draw(scales), data.draw(st.floats(2.0**-4, 2.0**6).map(F32))
    per = data.draw(st.booleans())
    sw = _draw_scales(data, m) if per else data.draw(scales)
    xzp, yzp = data.draw(zp_of(x.dtype)), data.draw(zp_of(x.dtype))
    if kind == "sym" or data.draw(st.booleans()):
        wzp = np.zeros((), w.dtype)
    else:
        wzp = data.draw(zp_of(w.dtype))
    if per and data.draw(st.booleans()):
        wzp = np.full(m, wzp, w.dtype)  # per-channel zero points, all equal (ORT's rule)
    bias = data.draw(st.none() | hnp.arrays(np.int32, (m,), elements=st.integers(-2**20, 2**20)))
    const = data.draw(st.booleans())  # constant weights: ORT prepacks (and may use MlasConvSym)
    want = ort_run("QLinearConv", [x, sx, xzp, w, sw, wzp, sy, yzp, bias], [_TP[x.dtype]],
                   attrs=attrs, consts=(1, 2, 3, 4, 5, 8) if const else ())
    got = rk.qlinear_conv(x, sx, xzp, w, sw, wzp, sy, yzp, bias, **attrs)
    assert got.dtype == x.dtype and got.shape == want.shape and np.array_equal(got, want)


@SETTINGS
@given(case=conv_case(), data=st.data())
def test_conv_integer_matches_ort(case, data):
    x, w, attrs, _ = case
    if x.dtype != np.uint8:
        x = x.view(np.uint8)
    xzp, wzp = data.draw(zp_of(np.uint8)), data.draw(zp_of(w.dtype))
    want = ort_run("ConvInteger", [x, w, xzp, wzp], [TP.INT32], attrs=attrs)
    got = rk.conv_integer(x, w, xzp, wzp, **attrs)
    assert got.dtype == np.int32 and np.array_equal(got, want)


def _im2col_reference(x, kh, kw, pad_value):
    """Rows: output pixels of a stride-1, unpadded-by-caller 2-D conv; columns (ky, kx, c)."""
    n, c, h, w = x.shape
    rows = []
    for i in range(h - kh + 1):
        for j in range(w - kw + 1):
            rows.append(np.concatenate([x[0, :, i + dy, j + dx] for dy in range(kh)
                                        for dx in range(kw)]))
    return np.array(rows)


@pytest.mark.parametrize("c", [1, 3, 4])
def test_qlinear_conv_saturating_variant_pairs_along_im2col_order(c):
    """On "avx2", K pairs run over (kernel position, channel), channels innermost: with an
    odd channel count a pair spans two kernel positions."""
    rng = np.random.default_rng(c)
    x = rng.integers(230, 256, (1, c, 5, 6)).astype(np.uint8)
    w = rng.choice(np.array([127, 120, -128, 90], np.int8), (4, c, 3, 2))
    one = F32(1.0)
    w_cols = np.ascontiguousarray(w.reshape(4, c, 6).transpose(2, 1, 0).reshape(6 * c, 4))
    acc = _pairwise_reference(_im2col_reference(x, 3, 2, 0), w_cols, 0, np.zeros(4, np.int64))
    y = rk.conv_integer(x, w, isa="avx2")
    assert np.array_equal(y[0].reshape(4, -1).T, acc)
    assert not np.array_equal(y, rk.conv_integer(x, w, isa="avx512-vnni"))
    q = rk.qlinear_conv(x, one, np.uint8(0), w, one, np.int8(0), F32(1024.0), np.uint8(0),
                        isa="avx2")
    assert np.array_equal(q[0].reshape(4, -1).T,
                          np.clip(np.rint(acc.astype(F32) / F32(1024)), 0, 255).astype(np.uint8))


def test_depthwise_conv_never_saturates():
    x = np.full((1, 4, 3, 3), 255, np.uint8)
    w = np.full((4, 1, 3, 3), 127, np.int8)
    y = rk.conv_integer(x, w, group=4, isa="avx2")
    assert np.all(y == 9 * 255 * 127)


# -- DynamicQuantizeLinear ---------------------------------------------------------------------


finite32 = st.floats(-float(F32(1e30)), float(F32(1e30)), width=32)


@SETTINGS
@given(x=hnp.arrays(F32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=40),
                    elements=st.one_of(finite32, st.floats(-3, 3, width=32),
                                       st.sampled_from([0.0, -0.0, 1e-30, 255.0, -1.0]))))
def test_dynamic_quantize_linear_matches_ort(x):
    y, s, zp = ort_run("DynamicQuantizeLinear", [x], [TP.UINT8, TP.FLOAT, TP.UINT8], n_out=3)
    gy, gs, gzp = rk.dynamic_quantize_linear(x)
    assert np.array_equal(gy, y) and bits(gs) == bits(s) and gzp == zp


def test_dynamic_quantize_linear_hand_worked():
    # range [-0.5, 127]: scale 127.5 / 255 = 0.5, zero point 0.5 / 0.5 = 1
    y, s, zp = rk.dynamic_quantize_linear(np.array([-0.5, 0.25, 0.75, 1.25, 127.0], F32))
    assert s == 0.5 and zp == 1
    assert y.tolist() == [0, 1, 3, 3, 255]  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2 (ties to even), + 1
    y, s, zp = rk.dynamic_quantize_linear(np.zeros(3, F32))
    assert s == 1 and zp == 0 and y.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="x must be finite"):
        rk.dynamic_quantize_linear(np.array([1.0, np.nan], F32))


# -- bad input --------------------------------------------------------------------------------


def test_bad_zero_point_dtypes_and_shapes():
    a = np.zeros((2, 3), np.uint8)
    b = np.zeros((3, 4), np.int8)
    with pytest.raises(TypeError, match="a_zero_point must have the dtype of a .uint8., got dt"):
        rk.matmul_integer(a, b, np.int8(0))
    with pytest.raises(TypeError, match="b_zero_point must have the dtype of b"):
        rk.matmul_integer(a, b, None, np.uint8(0))
    with pytest.raises(ValueError, match=r"b_zero_point must be a scalar, shape \(1,\) or \(4,"):
        rk.matmul_integer(a, b, None, np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="a_zero_point must be a scalar"):
        rk.matmul_integer(a, b, np.zeros(2, np.uint8))
    with pytest.raises(TypeError, match="y_zero_point must have the dtype of a"):
        rk.qlinear_matmul(a, 1.0, 0, b, 1.0, 0, 1.0, np.int8(0))
    with pytest.raises(ValueError, match=r"a_zero_point must be in \[0, 255\]"):
        rk.matmul_integer(a, b, 300)


def test_bad_scales():
    a = np.zeros((2, 3), np.uint8)
    b = np.zeros((3, 4), np.int8)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="a_scale must be finite and > 0"):
            rk.matmul_integer_to_float(a, b, bad, 1.0)
    with pytest.raises(ValueError, match=r"b_scale must be .* or \(4,\), got shape \(2, 2\)"):
        rk.matmul_integer_to_float(a, b, 1.0, np.ones((2, 2), F32))
    with pytest.raises(ValueError, match=r"w_scale must be .* or \(5,\)"):
        rk.qlinear_conv(np.zeros((1, 1, 3, 3), np.uint8), 1.0, 0, np.zeros((5, 1, 1, 1), np.int8),
                        np.ones(4, F32), 0, 1.0, 0)
    with pytest.raises(TypeError, match="y_scale must have dtype float32, got dtype float64"):
        rk.qlinear_matmul(a, 1.0, 0, b, 1.0, 0, np.float64(1.0), 0)
    with pytest.raises(ValueError, match=r"b_scale must be finite and > 0, got 0.0 at flat ind"):
        rk.qlinear_matmul(a, 1.0, 0, b, np.array([1, 1, 0, 1], F32), 0, 1.0, 0)


def test_bad_operands_and_attributes():
    a = np.zeros((2, 3), np.uint8)
    with pytest.raises(TypeError, match="a must be a NumPy array of dtype uint8/int8"):
        rk.matmul_integer([[1, 2, 3]], np.zeros((3, 1), np.int8))
    with pytest.raises(TypeError, match="b must have dtype uint8/int8, got dtype float32"):
        rk.matmul_integer(a, np.zeros((3, 1), F32))
    with pytest.raises(TypeError, match="b must be int8 when a is int8"):
        rk.matmul_integer(a.view(np.int8), np.zeros((3, 1), np.uint8))
    with pytest.raises(ValueError, match="do not match for MatMul"):
        rk.matmul_integer(a, np.zeros((4, 1), np.int8))
    with pytest.raises(ValueError, match="isa must be one of"):
        rk.matmul_integer(a, np.zeros((3, 1), np.int8), isa="sse4")
    x = np.zeros((1, 4, 5, 5), np.uint8)
    w = np.zeros((8, 4, 3, 3), np.int8)
    with pytest.raises(ValueError, match="w_zero_point must hold one value for all output chan"):
        rk.qlinear_conv(x, 1.0, 0, w, np.ones(8, F32), np.arange(8, dtype=np.int8), 1.0, 0)
    with pytest.raises(TypeError, match="bias must have dtype int32"):
        rk.qlinear_conv(x, 1.0, 0, w, 1.0, 0, 1.0, 0, np.zeros(8, F32))
    with pytest.raises(ValueError, match=r"bias must have shape \(8,\)"):
        rk.qlinear_conv(x, 1.0, 0, w, 1.0, 0, 1.0, 0, np.zeros(7, np.int32))
    with pytest.raises(ValueError, match="x has 4 channels but w shape"):
        rk.qlinear_conv(x, 1.0, 0, w, 1.0, 0, 1.0, 0, group=2)
    with pytest.raises(ValueError, match="asks for negative padding"):
        rk.conv_integer(np.zeros((1, 1, 8, 8), np.uint8), np.zeros((1, 1, 1, 1), np.int8),
                        strides=[4, 4], auto_pad="SAME_UPPER")
    with pytest.raises(ValueError, match="no dilation with SAME padding"):
        rk.conv_integer(x, w, dilations=[2, 2], auto_pad="SAME_LOWER")
    with pytest.raises(ValueError, match="strides must have 2 entries"):
        rk.conv_integer(x, w, strides=[1])
    with pytest.raises(TypeError, match="w must be int8 when x is int8"):
        rk.qlinear_conv(x.view(np.int8), 1.0, 0, w.view(np.uint8), 1.0, 0, 1.0, 0)
    with pytest.raises(ValueError, match="bias must have shape"):
        rk.matmul_integer_to_float(a, np.zeros((3, 2), np.int8), 1.0, 1.0, bias=np.zeros(3, F32))


def test_vnni_gemv_int32_saturation_is_refused():
    a = np.full((1, 70000), 255, np.uint8)
    b = np.full((70000, 1), 127, np.int8)
    for isa in ("avx2-vnni", "avx512-vnni", "amx"):
        with pytest.raises(ValueError, match="K = 70000 > 65793 with zero points 0"):
            rk.matmul_integer(a, b, isa=isa)
    small = np.ones((70000, 1), np.int8)  # 255 * 70000 fits int32: nothing to clip
    assert rk.matmul_integer(a, small, isa="amx")[0, 0] == 255 * 70000
    assert rk.matmul_integer(a, b, np.uint8(1), isa="amx")[0, 0] == 254 * 127 * 70000 - 2**32


def test_inputs_not_modified():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (1, 4, 5, 5)).astype(np.uint8)
    w = rng.integers(-128, 128, (16, 4, 3, 3)).astype(np.int8)
    sw = rng.uniform(0.01, 0.1, 16).astype(F32)
    bias = rng.integers(-100, 100, 16).astype(np.int32)
    copies = [v.copy() for v in (x, w, sw, bias)]
    for isa in ("avx2", "host"):
        rk.qlinear_conv(x, 0.1, np.uint8(3), w, sw, np.int8(0), 0.5, np.uint8(1), bias,
                        pads=[1] * 4, isa=isa)
    assert all(np.array_equal(a, b) for a, b in zip((x, w, sw, bias), copies, strict=True))
