"""Differential tests: refquant.kernels.litert against the ai-edge-litert 2.3 interpreter.

Each example builds a one-operator QUANTIZE / DEQUANTIZE model and runs it with the op
resolver whose kernel the variant emulates; integer codes and float32 bit patterns must be
identical. Hand-worked cases spell out the expected codes.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("flatbuffers")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from refquant.conformance.targets.litert import build_model, run_model  # noqa: E402
from refquant.kernels import litert as lk  # noqa: E402

F32 = np.float32
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
RESOLVERS = {"xnnpack": "AUTO", "optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
             "reference": "BUILTIN_REF"}
RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


@st.composite
def quantize_case(draw: st.DrawFn) -> tuple[np.ndarray, F32, int, str]:
    dtype = draw(st.sampled_from(sorted(RANGES)))
    lo, hi = RANGES[dtype]
    scale = F32(draw(st.floats(1.0, 2.0)) * 10.0 ** draw(st.integers(-7, 6)))
    zp = 0 if dtype == "int16" else draw(st.integers(lo, hi))
    n = draw(st.integers(1, 41))  # sizes around the 8-element blocks
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = rng.integers(lo - zp - 3, hi - zp + 3, size=n)
    x = ((k + 0.5) * np.float64(scale)).astype(F32)  # ties of x / scale (or next to them)
    move = rng.integers(-1, 2, size=n)
    x = np.where(move > 0, np.nextafter(x, F32(np.inf)),
                 np.where(move < 0, np.nextafter(x, F32(-np.inf)), x)).astype(F32)
    specials = np.array([0.0, -0.0, 1e-40, np.nan, np.inf, -np.inf, 3e38, -3e38], F32)
    pick = rng.random(n) < 0.1
    x[pick] = rng.choice(specials, size=int(pick.sum()))
    return x, scale, zp, dtype


@pytest.mark.parametrize("variant", sorted(RESOLVERS))
@SETTINGS
@given(case=quantize_case())
def test_quantize_matches_litert(variant: str, case: tuple) -> None:
    x, scale, zp, dtype = case
    if variant == "xnnpack":  # NaN handling measured with XNNPACK's AVX-512 kernels only
        x = np.where(np.isnan(x), F32(0), x).astype(F32)
    ref = run_model(build_model("quantize", "float32", dtype, x.shape, float(scale), zp), x,
                    RESOLVERS[variant])
    got = lk.quantize(x, scale, zp, dtype, variant=variant)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("variant", sorted(RESOLVERS))
@SETTINGS
@given(dtype=st.sampled_from(sorted(RANGES)), mant=st.floats(1.0, 2.0),
       exp=st.integers(-30, 30), zp_frac=st.floats(0.0, 1.0), n=st.integers(1, 300),
       seed=st.integers(0, 2**32 - 1))
def test_dequantize_matches_litert(variant: str, dtype: str, mant: float, exp: int,
                                   zp_frac: float, n: int, seed: int) -> None:
    lo, hi = RANGES[dtype]
    scale = F32(mant * 2.0**exp * 1.2345)
    zp = 0 if dtype == "int16" else int(lo + round(zp_frac * (hi - lo)))
    q = np.random.default_rng(seed).integers(lo, hi + 1, size=n).astype(dtype)
    ref = run_model(build_model("dequantize", dtype, "float32", q.shape, float(scale), zp), q,
                    RESOLVERS[variant])
    got = lk.dequantize(q, scale, zp, variant=variant)
    assert np.array_equal(_bits(got), _bits(ref))


def test_position_dependent_rounding_by_hand() -> None:
    """Nine exact ties x / scale = 0.5: the optimized kernel rounds the first 8 (one vector
    block) half to even (0) and the ninth, in the scalar tail, half away from zero (1)."""
    x = np.full(9, 0.5, F32)
    want = {"optimized": [0] * 8 + [1], "xnnpack": [0] * 9, "reference": [1] * 9}
    for variant, codes in want.items():
        ref = run_model(build_model("quantize", "float32", "int8", x.shape, 1.0, 0), x,
                        RESOLVERS[variant])
        assert ref.tolist() == codes, variant
        assert lk.quantize(x, 1.0, 0, "int8", variant=variant).tolist() == codes


def test_reciprocal_multiply_by_hand() -> None:
    """scale = fl(0.1): fl(1 / scale) = 10.0. x = 0.25: x / s and x * 10 both round to 2.5;
    the optimized kernel rounds the tie to even (2), the reference away from zero (3).
    x = 0.65: x / s = 6.4999995 but x * 10 = 6.5, two different floats (both round to 6)."""
    s = F32(0.1)
    assert F32(F32(0.65) / s) == F32(6.4999995) and F32(F32(0.65) * F32(F32(1) / s)) == 6.5
    x = np.array([0.25, 0.35, 0.65, -0.25] * 2, F32)  # one full block of 8
    assert lk.quantize(x, 0.1, 0, "int8", variant="optimized").tolist() == [2, 4, 6, -2] * 2
    assert lk.quantize(x, 0.1, 0, "int8", variant="reference").tolist() == [3, 4, 6, -3] * 2
    for variant in ("optimized", "reference"):
        ref = run_model(build_model("quantize", "float32", "int8", x.shape, 0.1, 0), x,
                        RESOLVERS[variant])
        np.testing.assert_array_equal(lk.quantize(x, 0.1, 0, "int8", variant=variant), ref)


def test_nan_and_inf_by_hand() -> None:
    """NaN: XNNPACK clamps to qmax; the builtin kernels convert to INT32_MIN, add the zero
    point with int32 wrap-around and clamp: qmin for zp >= 0, qmax for zp < 0."""
    x = np.array([np.nan, np.inf, -np.inf, 1.0], F32)
    assert lk.quantize(x, 0.1, 0, "int8", variant="xnnpack").tolist() == [127, 127, -128, 10]
    assert lk.quantize(x, 0.1, 0, "int8", variant="optimized").tolist() == [-128, -128, -128, 10]
    assert lk.quantize(x, 0.1, -5, "int8", variant="reference").tolist() == [127, 127, 127, 5]
    for variant, zp in (("xnnpack", 0), ("optimized", 0), ("reference", -5)):
        xs = x[1:] if variant == "xnnpack" else x  # XNNPACK's NaN: measured on AVX-512 only
        ref = run_model(build_model("quantize", "float32", "int8", xs.shape, 0.1, zp), xs,
                        RESOLVERS[variant])
        np.testing.assert_array_equal(lk.quantize(xs, 0.1, zp, "int8", variant=variant), ref)


def test_bad_arguments() -> None:
    x = np.zeros(4, F32)
    with pytest.raises(ValueError, match="scale"):
        lk.quantize(x, 0.0, 0, "int8")
    with pytest.raises(ValueError, match="subnormal"):
        lk.quantize(x, 1e-39, 0, "int8", variant="xnnpack")
    with pytest.raises(ValueError, match="zero_point"):
        lk.quantize(x, 1.0, 300, "int8")
    with pytest.raises(ValueError, match="zero_point"):
        lk.quantize(x, 1.0, 3, "int16")
    with pytest.raises(ValueError, match="dtype"):
        lk.quantize(x, 1.0, 0, "int4")
    with pytest.raises(TypeError, match="x"):
        lk.quantize(x.astype(np.float64), 1.0, 0, "int8")
    with pytest.raises(TypeError, match="q"):
        lk.dequantize(np.zeros(3, np.int32), 1.0, 0)
    with pytest.raises(ValueError, match="variant"):
        lk.dequantize(np.zeros(3, np.int8), 1.0, 0, variant="gpu")
    q = np.array([1, -2], np.int8)
    lk.dequantize(q, 0.5, 1)
    assert q.tolist() == [1, -2]


def test_litert_target_passes_the_litert_cases() -> None:
    """The ``litert`` target runs every ``kernels.litert`` fixture with the op resolver of
    its variant: identical to the emulation on each; ONNX cases are not run."""
    from refquant.conformance.format import load_suite
    from refquant.conformance.runner import run_suite
    from refquant.conformance.suite import default_fixture_dir
    from refquant.conformance.targets import get_target

    rep = run_suite(load_suite(default_fixture_dir()), get_target("litert"))
    ran = [c for c in rep["cases"] if c["status"] != "skipped"]
    assert len(ran) >= 30 and {c["op"] for c in ran} == {"litert.quantize", "litert.dequantize"}
    assert rep["passed"] == len(ran), [c for c in ran if c["status"] != "passed"][:3]
    assert {c["id"].split(".")[2] for c in ran} == set(RESOLVERS)
