"""Differential tests: refquant.kernels.tensorflow against TensorFlow 2.21 CPU, bit for bit.

Expected values come from TensorFlow run in the test (eager and ``jit_compile=True``) or from
hand-worked float32 arithmetic written out in the test.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from refquant.kernels import tensorflow as tk  # noqa: E402

F32 = np.float32
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
SPECIALS = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-40, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan],
                    F32)


def assert_same_bits(got: np.ndarray, ref: np.ndarray) -> None:
    got, ref = np.ascontiguousarray(got, F32), np.ascontiguousarray(ref, F32)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    diff = got.view(np.uint32) != ref.view(np.uint32)
    if diff.any():
        i = int(np.flatnonzero(diff.ravel())[0])
        raise AssertionError(f"{int(diff.sum())} of {diff.size} differ; first at {i}: "
                             f"got {got.ravel()[i]!r}, TensorFlow {ref.ravel()[i]!r}")


@st.composite
def fq_case(draw: st.DrawFn) -> tuple[np.ndarray, F32, F32, int, bool]:
    """A range (mostly around 0, sometimes excluding it), and inputs on the exact .5 ties of
    the scaled value, their float32 neighbours, both range ends, random values, specials."""
    bits = draw(st.integers(2, 16))
    narrow = draw(st.booleans())
    e_lo, e_hi = draw(st.integers(-6, 6)), draw(st.integers(-6, 6))
    mn = F32(-draw(st.floats(1.0, 10.0)) * 10.0**e_lo)
    mx = F32(draw(st.floats(1.0, 10.0)) * 10.0**e_hi)
    kind = draw(st.sampled_from(["around0", "around0", "around0", "zero_min", "positive",
                                 "negative"]))
    if kind == "zero_min":
        mn = F32(0.0)
    elif kind == "positive":
        mn = F32(mx * F32(draw(st.floats(0.01, 0.9))))
    elif kind == "negative":
        mx = F32(mn * F32(draw(st.floats(0.01, 0.9))))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    qmax = (1 << bits) - 1
    step = (float(mx) - float(mn)) / (qmax - (1 if narrow else 0))
    k = rng.integers(-2, qmax + 2, size=48)
    ties = (float(mn) + (k + 0.5) * step).astype(F32)
    rand = rng.uniform(float(mn) * 1.2, float(mx) * 1.2, size=48).astype(F32)
    base = np.concatenate([ties, rand, np.array([mn, mx], F32)])
    x = np.concatenate([base, np.nextafter(base, F32(np.inf)), np.nextafter(base, F32(-np.inf)),
                        SPECIALS]).astype(F32)
    return x, mn, mx, bits, narrow


def _tf_args(x: np.ndarray, mn: F32, mx: F32, bits: int, narrow: bool, jit: bool) -> np.ndarray:
    fn = tf.function(lambda a: tf.quantization.fake_quant_with_min_max_args(
        a, min=float(mn), max=float(mx), num_bits=bits, narrow_range=narrow), jit_compile=jit)
    return fn(tf.constant(x)).numpy()


def _tf_vars(x: np.ndarray, mn: F32, mx: F32, bits: int, narrow: bool, jit: bool) -> np.ndarray:
    fn = tf.function(lambda a, b, c: tf.quantization.fake_quant_with_min_max_vars(
        a, b, c, num_bits=bits, narrow_range=narrow), jit_compile=jit)
    return fn(tf.constant(x), tf.constant(mn), tf.constant(mx)).numpy()


def _tf_pc(x: np.ndarray, mns: np.ndarray, mxs: np.ndarray, bits: int, narrow: bool,
           jit: bool) -> np.ndarray:
    fn = tf.function(lambda a, b, c: tf.quantization.fake_quant_with_min_max_vars_per_channel(
        a, b, c, num_bits=bits, narrow_range=narrow), jit_compile=jit)
    return fn(tf.constant(x), tf.constant(mns), tf.constant(mxs)).numpy()


@pytest.mark.parametrize("variant", ["eager", "xla"])
@SETTINGS
@given(case=fq_case())
def test_args_vars_match_tensorflow(variant: str, case: tuple) -> None:
    x, mn, mx, bits, narrow = case
    jit = variant == "xla"
    assert_same_bits(tk.fake_quant_with_min_max_args(x, mn, mx, bits, narrow, variant=variant),
                     _tf_args(x, mn, mx, bits, narrow, jit))
    assert_same_bits(tk.fake_quant_with_min_max_vars(x, mn, mx, bits, narrow, variant=variant),
                     _tf_vars(x, mn, mx, bits, narrow, jit))


@pytest.mark.parametrize("variant", ["eager", "xla"])
@pytest.mark.parametrize("channels", [1, 3])
@SETTINGS
@given(case=fq_case(), factor=st.floats(0.3, 3.0))
def test_per_channel_matches_tensorflow(variant: str, channels: int, case: tuple,
                                        factor: float) -> None:
    x, mn, mx, bits, narrow = case
    x = x[: x.size // channels * channels].reshape(-1, channels)
    mns = np.array([mn, F32(mn * F32(factor)), F32(0.0)], F32)[:channels]
    mxs = np.array([mx, F32(mx * F32(factor)), max(mx, -mn)], F32)[:channels]
    got = tk.fake_quant_with_min_max_vars_per_channel(x, mns, mxs, bits, narrow,
                                                      variant=variant)
    assert_same_bits(got, _tf_pc(x, mns, mxs, bits, narrow, variant == "xla"))


@pytest.mark.parametrize("variant", ["eager", "xla"])
@settings(max_examples=10, deadline=None, derandomize=True)
@given(case=fq_case(), seed=st.integers(0, 2**32 - 1))
def test_gradients_match_tensorflow(variant: str, case: tuple, seed: int) -> None:
    """d(fake_quant)/dx: the gradient inside the nudged range, else zero; subnormal, negative
    and infinite incoming gradients included (eager multiplies by the mask with FTZ, XLA
    selects)."""
    x, mn, mx, bits, narrow = case
    x = x[: x.size // 2 * 2]
    g = np.random.default_rng(seed).normal(size=x.shape).astype(F32)
    g[::7], g[1::7], g[2::11] = F32(1e-41), F32(-1e-41), F32(np.inf)
    mns, mxs = np.array([mn, mn], F32), np.array([mx, max(mx, -mn)], F32)

    def grad_of(fn, *args):  # type: ignore[no-untyped-def]
        def run(a, *rest):  # type: ignore[no-untyped-def]
            with tf.GradientTape() as tape:
                tape.watch(a)
                y = fn(a, *rest)
            return tape.gradient(y, a, output_gradients=tf.constant(g.reshape(a.shape)))
        return tf.function(run, jit_compile=variant == "xla")(*args).numpy()

    q = tf.quantization
    ref_args = grad_of(lambda a: q.fake_quant_with_min_max_args(
        a, min=float(mn), max=float(mx), num_bits=bits, narrow_range=narrow), tf.constant(x))
    ref_vars = grad_of(lambda a, b, c: q.fake_quant_with_min_max_vars(
        a, b, c, num_bits=bits, narrow_range=narrow), tf.constant(x), tf.constant(mn),
        tf.constant(mx))
    ref_pc = grad_of(lambda a, b, c: q.fake_quant_with_min_max_vars_per_channel(
        a, b, c, num_bits=bits, narrow_range=narrow), tf.constant(x.reshape(-1, 2)),
        tf.constant(mns), tf.constant(mxs))
    kw = {"num_bits": bits, "narrow_range": narrow, "variant": variant}
    assert_same_bits(tk.fake_quant_gradient(g, x, mn, mx, op="args", **kw), ref_args)
    assert_same_bits(tk.fake_quant_gradient(g, x, mn, mx, op="vars", **kw), ref_vars)
    assert_same_bits(tk.fake_quant_gradient(g.reshape(-1, 2), x.reshape(-1, 2), mns, mxs,
                                            op="per_channel", **kw), ref_pc)


@pytest.mark.parametrize("jit", [False, True])
def test_gradient_reads_a_subnormal_input_as_zero(jit: bool) -> None:
    """min = 0: x = -1e-45 is below nudged_min = 0, but TensorFlow compares with denormals
    read as zero (eager and XLA), so the gradient passes (2.0, not 0)."""
    x = np.array([-1e-45, -1e-3], F32)

    def run(a):  # type: ignore[no-untyped-def]
        with tf.GradientTape() as tape:
            tape.watch(a)
            y = tf.quantization.fake_quant_with_min_max_args(a, min=0.0, max=1.0)
        return tape.gradient(y, a, output_gradients=tf.constant([2.0, 2.0]))

    ref = tf.function(run, jit_compile=jit)(tf.constant(x)).numpy()
    assert ref.tolist() == [2.0, 0.0]
    variant = "xla" if jit else "eager"
    assert_same_bits(tk.fake_quant_gradient(np.full(2, 2.0, F32), x, 0.0, 1.0,
                                            variant=variant), ref)


def test_eager_and_xla_differ_on_an_ordinary_value() -> None:
    """tensorflow#117962: x = 0.1 in [-1, 2] at 8 bits gives 0.105882354 (bits 0x3DD8D8D9)
    eagerly and 0.10588238 (0x3DD8D8DC) under XLA, three ulps apart."""
    x = np.array([0.1], F32)
    eager = _tf_args(x, F32(-1), F32(2), 8, False, False)
    xla = _tf_args(x, F32(-1), F32(2), 8, False, True)
    assert eager.view(np.uint32)[0] == 0x3DD8D8D9 and xla.view(np.uint32)[0] == 0x3DD8D8DC
    assert_same_bits(tk.fake_quant_with_min_max_args(x, -1.0, 2.0), eager)
    assert_same_bits(tk.fake_quant_with_min_max_args(x, -1.0, 2.0, variant="xla"), xla)


def test_nudge_by_hand() -> None:
    """min=-0.1, max=1 at 8 bits: scale = fl(1.1/255); zero point from min = 0.1/scale =
    23.18... -> 23; nudged_max = (255 - 23) * scale = 1.0007843 > max: the output can exceed
    ``max`` although the documentation says outputs lie in [min; max]."""
    scale = F32(F32(F32(1.0) - F32(-0.1)) / F32(255))
    nmin, nmax, s, _ = tk.nudge(-0.1, 1.0, 0, 255, op="args")
    assert s == scale and nmin == F32(F32(-23) * scale) and nmax == F32(F32(232) * scale)
    y = _tf_args(np.array([1.0005], F32), F32(-0.1), F32(1.0), 8, False, False)
    assert y[0] > F32(1.0)
    assert_same_bits(tk.fake_quant_with_min_max_args(np.array([1.0005], F32), -0.1, 1.0), y)


def test_zero_range_gives_zeros() -> None:
    x = np.array([1.5, -2.0, np.nan], F32)
    ref = _tf_vars(x, F32(0), F32(0), 8, False, False)
    assert_same_bits(tk.fake_quant_with_min_max_vars(x, 0.0, 0.0), ref)


@SETTINGS
@given(case=fq_case(), signed=st.booleans(), given_range=st.booleans(),
       mode=st.sampled_from(["HALF_TO_EVEN", "HALF_UP"]))
def test_quantize_and_dequantize_v4_matches_tensorflow(case: tuple, signed: bool,
                                                       given_range: bool, mode: str) -> None:
    x, mn, mx, bits, narrow = case
    x = x[np.isfinite(x)] if not given_range else x  # the min/max reduction of NaN is not emulated
    if not signed:
        x = np.abs(x)
    ref = tf.raw_ops.QuantizeAndDequantizeV4(
        input=x, input_min=mn, input_max=mx, signed_input=signed, num_bits=bits,
        range_given=given_range, round_mode=mode, narrow_range=narrow).numpy()
    got = tk.quantize_and_dequantize_v4(x, mn, mx, signed_input=signed, num_bits=bits,
                                        range_given=given_range, round_mode=mode,
                                        narrow_range=narrow)
    assert_same_bits(got, ref)


def test_subnormal_scale_is_flushed() -> None:
    """Unsigned 2-bit range from x = [3.4e38, 1]: scale = 3 / 3.4e38 is subnormal; TensorFlow
    flushes it to zero (FTZ / DAZ), so every output is 0 (without the flush: 3.4e38, 0)."""
    x = np.array([3.4e38, 1.0], F32)
    ref = tf.raw_ops.QuantizeAndDequantizeV4(input=x, input_min=0.0, input_max=0.0,
                                             signed_input=False, num_bits=2).numpy()
    assert_same_bits(ref, np.zeros(2, F32))
    assert_same_bits(tk.quantize_and_dequantize_v4(x, 0.0, 0.0, signed_input=False,
                                                   num_bits=2), ref)


def test_round_modes_by_hand() -> None:
    """Range [-1, 1], 8 bits signed: scale = 127 (max side), inverse = 1/127. x = 2.5/127
    scales to 2.5 (or its float32 neighbour): HALF_TO_EVEN and HALF_UP differ by one step."""
    x = np.array([-2.5 / 127, 2.5 / 127], F32)
    v = (x * F32(127)).astype(F32)
    inv = F32(F32(1) / F32(127))
    even = (np.rint(v) * inv).astype(F32)
    up = (np.floor(v + F32(0.5)) * inv).astype(F32)
    assert_same_bits(tk.quantize_and_dequantize_v4(x, -1.0, 1.0, range_given=True), even)
    assert_same_bits(tk.quantize_and_dequantize_v4(x, -1.0, 1.0, range_given=True,
                                                   round_mode="HALF_UP"), up)


@pytest.mark.parametrize("kwargs, exc", [
    ({"num_bits": 1}, ValueError), ({"num_bits": 8.0}, TypeError),
    ({"narrow_range": "yes"}, TypeError), ({"variant": "gpu"}, ValueError),
    ({"min": 1.0, "max": 1.0}, ValueError), ({"min": float("nan")}, ValueError),
])
def test_bad_arguments(kwargs: dict, exc: type) -> None:
    args = {"min": -1.0, "max": 1.0, **kwargs}
    with pytest.raises(exc):
        tk.fake_quant_with_min_max_args(np.zeros(3, F32), **args)


def test_bad_input_and_no_mutation() -> None:
    with pytest.raises(TypeError):
        tk.fake_quant_with_min_max_vars(np.zeros(3, np.float64), -1.0, 1.0)
    with pytest.raises(ValueError, match="min"):
        tk.fake_quant_with_min_max_vars_per_channel(np.zeros((2, 3), F32), [-1.0], [1.0])
    with pytest.raises(ValueError, match="axis"):
        tk.quantize_and_dequantize_v4(np.zeros(3, F32), -1.0, 1.0, axis=0)
    x = np.array([0.3, -0.7], F32)
    before = x.copy()
    tk.fake_quant_with_min_max_args(x, -1.0, 1.0, variant="xla")
    tk.quantize_and_dequantize_v4(x, -1.0, 1.0)
    assert_same_bits(x, before)


def test_tensorflow_target_passes_the_tensorflow_cases() -> None:
    """The ``tensorflow`` target runs every ``kernels.tensorflow`` fixture in TensorFlow
    (eager cases eagerly, XLA cases with ``jit_compile=True``): identical to the emulation on
    each; it does not run other families' fake-quant cases."""
    from refquant.conformance.format import load_suite
    from refquant.conformance.runner import run_suite
    from refquant.conformance.suite import default_fixture_dir
    from refquant.conformance.targets import get_target

    rep = run_suite(load_suite(default_fixture_dir()), get_target("tensorflow"))
    ran = [c for c in rep["cases"] if c["status"] != "skipped"]
    assert len(ran) >= 60 and {c["op"].split(".")[0] for c in ran} == {"tensorflow"}
    assert rep["passed"] == len(ran), [c for c in ran if c["status"] != "passed"][:3]
    assert {"eager", "xla"} <= {c["id"].split(".")[2] for c in ran}
