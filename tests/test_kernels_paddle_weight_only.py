"""refquant.kernels.paddle_weight_only vs Paddle 3.3.1's CPU ``weight_quantize``, bit for bit.

Expected values come from ``paddle.nn.quant.weight_quantize`` run on CPU inside the test
(codes and scales compared as bytes), from hand-worked layouts, and from a direct formula for
the codes (``round_half_away(x / scale)`` with Paddle's own scale) that is independent of
the layout code. Only shapes Paddle handles without corrupting its heap are sent to Paddle
(docs/lowbit.md, "Paddle weight-only quantization").
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.kernels import paddle_weight_only as wo
from refquant.observers.groupwise import GroupWiseWeightObserver

paddle = pytest.importorskip("paddle")
ml_dtypes = pytest.importorskip("ml_dtypes")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from paddle.nn.quant import weight_quantize as paddle_wq

paddle.set_device("cpu")

BF16 = np.dtype(ml_dtypes.bfloat16)
SETTINGS = settings(max_examples=120, deadline=None, derandomize=True)

# (algo, arch) pairs Paddle's CPU kernel runs correctly
_WO = ("weight_only_int8", "weight_only_int4")
COMBOS = [(a, r) for a in _WO for r in (70, 75, 80, 86, 89, 90)]
COMBOS += [("llm.int8", r) for r in (75, 80, 86, 89, 90, 100)]


def _paddle(x, algo, arch, group_size):
    if x.dtype == np.float16:
        t = paddle.to_tensor(np.ascontiguousarray(x))
    else:
        t = paddle.to_tensor(np.ascontiguousarray(x).view(np.uint16)).view("bfloat16")
    out, scale = paddle_wq(t, algo=algo, arch=arch, group_size=group_size)
    if scale.dtype == paddle.bfloat16:
        s = scale.view("uint16").numpy().view(BF16)
    else:
        s = scale.numpy()
    return out.numpy(), s


def assert_bytes(a, e, what):
    a, e = np.asarray(a), np.asarray(e)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != {e.dtype}"
    ab = np.ascontiguousarray(a).view(np.uint8)
    eb = np.ascontiguousarray(e).view(np.uint8)
    bad = np.flatnonzero(ab.reshape(-1) != eb.reshape(-1))
    assert bad.size == 0, f"{what}: {bad.size} bytes differ, first at byte {bad[0]}"


def _check_against_paddle(x, algo, arch, gs):
    before = x.copy()
    out, scale = wo.weight_quantize(x, algo, arch, gs)
    p_out, p_scale = _paddle(x, algo, arch, gs)
    assert_bytes(scale, p_scale, f"scale {algo} arch={arch} gs={gs}")
    assert_bytes(out, p_out, f"out {algo} arch={arch} gs={gs}")
    assert_bytes(x, before, "x modified")
    return p_out, p_scale


# ------------------------------------------------------------------ differential (Hypothesis)

_SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf]


@st.composite
def weights(draw):
    algo, arch = draw(st.sampled_from(COMBOS))
    gs = draw(st.sampled_from([-1, 64, 128]))
    dtype = draw(st.sampled_from([np.dtype(np.float16), BF16]))
    if algo != "llm.int8" and arch != 70:
        m = 64 * draw(st.integers(1, 3))
    else:
        m = draw(st.integers(1, 150))
    n = 16 * draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    big = 60000.0 if dtype == np.float16 else 1e38
    tiny = 6e-8 if dtype == np.float16 else 1e-38
    col_mag = rng.choice([tiny, 1e-3, 1.0, 100.0, big], size=(1, n))
    with np.errstate(over="ignore"):
        x = (rng.standard_normal((m, n)) * col_mag).astype(np.float32)
    bound = 7 if algo == "weight_only_int4" else 127
    kind = draw(st.sampled_from(["plain", "ties", "specials", "zero_cols"]))
    if kind == "ties":  # half-integer multiples of the scale, led by the abs-max
        x = (rng.integers(-2 * bound, 2 * bound + 1, size=(m, n)) / 2).astype(np.float32)
        x[0] = bound * rng.choice([1.0, -1.0], size=n)
        x *= np.float32(2.0) ** rng.integers(-20, 10, size=(1, n))
    elif kind == "specials":
        idx = rng.integers(0, x.size, size=max(1, x.size // 20))
        x.reshape(-1)[idx] = rng.choice(_SPECIAL, size=idx.size)
    elif kind == "zero_cols":
        cols = rng.integers(0, n, size=max(1, n // 4))
        x[:, cols] = rng.choice([0.0, -0.0], size=(m, cols.size))
    with np.errstate(over="ignore"):
        return x.astype(dtype), algo, arch, gs


@SETTINGS
@given(weights())
def test_weight_quantize_matches_paddle(case):
    x, algo, arch, gs = case
    _check_against_paddle(x, algo, arch, gs)


@SETTINGS
@given(weights())
def test_unpack_inverts_paddle_layout(case):
    """Paddle's ``out`` unpacks to ``round_half_away(x / scale)`` clipped (a direct formula)."""
    x, algo, arch, gs = case
    p_out, p_scale = _paddle(x, algo, arch, gs)
    codes = wo.unpack_weight(p_out, x.shape[0], algo, arch)
    b = 7 if algo == "weight_only_int4" else 127
    xf = x.astype(np.float64).astype(np.float32)
    s = p_scale.astype(np.float32)
    s = s[None, :] if gs == -1 else s[np.arange(x.shape[0]) // gs]
    with np.errstate(all="ignore"):
        v = (xf / s).astype(np.float64)
        r = np.sign(v) * np.floor(np.abs(v) + 0.5)
        exp = np.clip(r, -b, b)
        bad = ~np.isfinite(r)  # NaN / +-inf: int8 clips in float, int4 converts to int first
        exp = np.where(bad & (b == 127), np.where(np.isnan(r), 127, np.clip(r, -b, b)), exp)
        exp = np.where(bad & (b == 7), -7, exp)
    np.testing.assert_array_equal(codes, exp.astype(np.int8))
    repacked, _ = wo.weight_quantize(x, algo, arch, gs)
    assert_bytes(repacked, p_out, "round trip")


# ------------------------------------------------------------------ hand-worked cases


def _two_rows(first, second, dtype=np.float16):
    return np.array([first, second], dtype=np.float32).astype(dtype)


def test_arch70_int8_layout_by_hand():
    # scale 127/127 = 1: codes row 0 = 127, row 1 = 0..15; +128, bytes 1 and 2 of 4 swapped
    x = _two_rows([127.0] * 16, list(range(16)))
    out, scale = wo.weight_quantize(x, "weight_only_int8", 70)
    order = [0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15]
    expected = np.array([-1] * 16 + [j - 128 for j in order], np.int8).reshape(16, 2)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(scale, np.ones(16, np.float16))
    np.testing.assert_array_equal(_paddle(x, "weight_only_int8", 70, -1)[0], expected)


def test_arch70_int4_layout_by_hand():
    # scale 7/7 = 1: row 1 codes -7..7, 0; nibbles +8 = 1..15, 8; per word 0,2,4,6,1,3,5,7
    x = _two_rows([7.0] * 16, list(range(-7, 8)) + [0.0])
    out, _ = wo.weight_quantize(x, "weight_only_int4", 70)
    row1 = [0x31, 0x75, 0x42, 0x86, 0xB9, 0xFD, 0xCA, 0x8E]
    expected = np.array([0xFF] * 8 + row1, np.uint8).view(np.int8).reshape(8, 2)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(_paddle(x, "weight_only_int4", 70, -1)[0], expected)


def test_ties_round_half_away_from_zero():
    # scale fp16(127 / 127) = 1: x = +-0.5, +-2.5, +-126.5 -> +-1, +-3, +-127
    vals = [0.5, -0.5, 2.5, -2.5, 126.5, -126.5, 1.5, -1.5] * 2
    x = _two_rows([127.0] * 16, vals)
    x = np.concatenate([x, np.zeros((14, 16), np.float16)])  # 16 x 16 for llm.int8 below
    expected = [1, -1, 3, -3, 127, -127, 2, -2]
    codes, _ = wo.quantize_codes(x, "weight_only_int8")
    np.testing.assert_array_equal(codes[1, :8], expected)
    p_out, _ = _paddle(x, "llm.int8", 80, -1)  # llm.int8's layout is a plain transpose
    np.testing.assert_array_equal(p_out.T[1, :8], expected)


def test_special_codes_by_hand():
    """Zero column: 0/0 -> int8 127, int4 -7 (x86 int conversion); NaN scale from row 0."""
    x = np.zeros((2, 16), np.float32)
    x[:, 1] = [np.nan, 1.0]
    x[:, 2] = [1.0, np.nan]
    x = x.astype(np.float16)
    for algo, zero_code in (("weight_only_int8", 127), ("weight_only_int4", -7)):
        codes, scale = wo.quantize_codes(x, algo)
        assert codes[0, 0] == zero_code and codes[1, 0] == zero_code
        assert np.isnan(scale[1]) and not np.isnan(scale[2])
        _check_against_paddle(x, algo, 70, -1)
    # -0.0 in row 0 of a zero column gives the scale -0.0 (per-channel only)
    x2 = np.zeros((2, 16), np.float16)
    x2[0, 3] = np.float16(-0.0)
    _, s = wo.quantize_codes(x2, "weight_only_int8")
    assert np.signbit(s[3]) and not np.signbit(s[4])
    _check_against_paddle(x2, "weight_only_int8", 70, -1)
    _check_against_paddle(x2, "weight_only_int8", 70, 64)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"algo": "w4a8"}, "algo"),
        ({"algo": "bogus"}, "algo"),
        ({"arch": 69}, "arch"),
        ({"arch": True}, "arch"),
        ({"group_size": 32}, "group_size"),
        ({"algo": "weight_only_int8", "arch": 100}, "arch=100"),
    ],
)
def test_bad_arguments(kwargs, word):
    x = np.ones((64, 16), np.float16)
    with pytest.raises(ValueError, match=word):
        wo.weight_quantize(x, **kwargs)


def test_paddle_rejects_what_refquant_rejects():
    x = np.ones((64, 16), np.float16)
    for kw in ({"algo": "bogus"}, {"arch": 69}, {"group_size": 32}):
        args = {"algo": "weight_only_int8", "arch": 80, "group_size": -1, **kw}
        with pytest.raises((ValueError, AssertionError)):
            paddle_wq(paddle.to_tensor(x), **args)
    with pytest.raises(ValueError, match="16"):
        paddle_wq(paddle.to_tensor(np.ones((64, 8), np.float16)), arch=80)
    with pytest.raises(RuntimeError, match="not registered"):
        paddle_wq(paddle.to_tensor(np.ones((64, 16), np.float32)), arch=80)


@pytest.mark.parametrize(
    ("x", "algo", "arch", "exc", "word"),
    [
        (np.ones((64, 16), np.float32), "weight_only_int8", 80, TypeError, "float16"),
        (np.ones((64, 8), np.float16), "weight_only_int8", 80, ValueError, "multiple of 16"),
        (np.ones((100, 16), np.float16), "weight_only_int8", 80, ValueError, "multiple of 64"),
        (np.ones((100, 16), np.float16), "llm.int8", 70, ValueError, "square"),
        (np.ones((0, 16), np.float16), "weight_only_int8", 70, ValueError, "empty"),
        (np.ones((4, 4, 16), np.float16), "weight_only_int8", 70, ValueError, "2-D"),
        ([[1.0] * 16], "weight_only_int8", 70, TypeError, "NumPy"),
    ],
)
def test_bad_x(x, algo, arch, exc, word):
    with pytest.raises(exc, match=word):
        wo.weight_quantize(x, algo, arch)


def test_gpu_only_ops_are_not_registered_on_cpu():
    """weight_dequantize / weight_only_linear / llm_int8_linear have no CPU kernel in 3.3.1."""
    from paddle.nn.quant import llm_int8_linear, weight_dequantize, weight_only_linear

    w = paddle.to_tensor(np.ones((64, 16), np.float16))
    q, s = paddle_wq(w, arch=80)
    x = paddle.to_tensor(np.ones((2, 64), np.float16))
    calls = [
        ("weight_dequantize", lambda: weight_dequantize(q, s)),
        ("weight_only_linear", lambda: weight_only_linear(x, q, weight_scale=s, arch=80)),
        ("llm_int8_linear", lambda: llm_int8_linear(x, q, weight_scale=s.astype("float32"))),
    ]
    for name, call in calls:
        with pytest.raises(RuntimeError, match=f"kernel `{name}` is not registered"):
            call()


# ------------------------------------------------------------------ the seed's observer


@pytest.mark.parametrize("gs", [64, 128])
@pytest.mark.parametrize("algo", ["weight_only_int4", "weight_only_int8"])
def test_groupwise_observer_scales_relate_to_paddle(gs, algo):
    """Paddle's group scale = ScaleT(fl32(observer abs-max) / bound), same [in/G, out] grid."""
    rng = np.random.default_rng(gs)
    x = rng.standard_normal((256, 32)).astype(np.float16)
    obs = GroupWiseWeightObserver(4 if algo.endswith("4") else 8, gs, profile="canonical")
    obs.observe(x)
    amax = obs.compute().scale.astype(np.float32)
    bound = np.float32(7 if algo.endswith("4") else 127)
    _, p_scale = _paddle(x, algo, 80, gs)
    assert_bytes((amax / bound).astype(np.float16), p_scale, "observer / bound")
    # a zero group: Paddle's scale is 0, the paddleslim profile's abs-max is 1e-8
    x[:gs, 0] = 0
    slim = GroupWiseWeightObserver(4, gs, profile="paddleslim")
    slim.observe(x.astype(np.float32))
    assert slim.compute().scale[0, 0] == np.float32(1e-8)
    assert _paddle(x, algo, 80, gs)[1][0, 0] == 0


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16])
def test_llm_int8_arch70_square(dtype):
    """arch=70 with llm.int8 only works for square weights (else Paddle corrupts its heap)."""
    x = np.random.default_rng(7).standard_normal((48, 48)).astype(dtype)
    _check_against_paddle(x, "llm.int8", 70, -1)
    _check_against_paddle(x, "llm.int8", 70, 64)


def test_dequantize_codes_by_hand():
    q = np.array([[1, -7], [3, 0]], np.int8)
    s = np.array([0.5, 2.0], np.float16)
    np.testing.assert_array_equal(wo.dequantize_codes(q, s), [[0.5, -14.0], [1.5, 0.0]])


def test_bfloat16_bits_equal_ml_dtypes_path():
    x = np.random.default_rng(9).standard_normal((64, 32)).astype(BF16)
    for algo in ("weight_only_int8", "weight_only_int4", "llm.int8"):
        out, scale = wo.weight_quantize(x, algo, 80, 64)
        out_b, scale_b = wo.weight_quantize(x.view(np.uint16), algo, 80, 64, bfloat16_bits=True)
        assert_bytes(out_b, out, algo)
        assert_bytes(scale_b, scale.view(np.uint16) if algo != "llm.int8" else scale, algo)
    with pytest.raises(TypeError, match="uint16"):
        wo.weight_quantize(x.astype(np.float16), bfloat16_bits=True)


def test_dequantize_codes_bad_shapes():
    q = np.zeros((128, 16), np.int8)
    with pytest.raises(ValueError, match="scale"):
        wo.dequantize_codes(q, np.ones(15, np.float16))
    with pytest.raises(ValueError, match="group_size"):
        wo.dequantize_codes(q, np.ones((4, 16), np.float16), group_size=32)
    assert wo.dequantize_codes(q, np.ones((1, 16), np.float16), group_size=128).shape == q.shape
