"""Differential tests: refquant.kernels.openvino against OpenVINO 2026.4's CPU plugin.

Each example compiles a single FakeQuantize node (``SNIPPETS_MODE=DISABLE``,
``LP_TRANSFORMS_MODE=NO``, f32 precision) and compares float32 bit patterns with the variant
:func:`refquant.kernels.openvino.cpu_plugin_variant` names for the shapes; hand-worked cases
spell out the formula.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from refquant.conformance.targets.openvino import run_fake_quantize  # noqa: E402
from refquant.kernels import openvino as ok  # noqa: E402

F32 = np.float32
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
SHAPES = [((301,), ()), ((7, 43), ()), ((7, 43), (1, 43)), ((6, 4, 13), (1, 4, 1)),
          ((6, 4, 13), (6, 1, 1)), ((2, 3, 5, 7), (1, 3, 1, 1)), ((2, 3, 5, 7), ()),
          ((2, 3, 2, 2, 3), (1, 3, 1, 1, 1)), ((1, 2, 1, 2, 3, 5), ())]


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    a, b = np.ascontiguousarray(a, F32), np.ascontiguousarray(b, F32)
    assert a.shape == b.shape
    diff = a.view(np.uint32) != b.view(np.uint32)
    if diff.any():
        i = int(np.flatnonzero(diff.ravel())[0])
        raise AssertionError(f"{int(diff.sum())} of {diff.size} differ; first at {i}: "
                             f"got {a.ravel()[i]!r}, OpenVINO {b.ravel()[i]!r}")


@st.composite
def fq_case(draw: st.DrawFn) -> tuple:
    shape, rshape = draw(st.sampled_from(SHAPES))
    levels = draw(st.sampled_from([2, 3, 4, 15, 16, 255, 256, 1023, 65535, 65536]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale_exp = draw(st.integers(-4, 4))
    size = int(np.prod(rshape)) if rshape else 1
    il = (-rng.uniform(0.0, 2.0, size) * 10.0**scale_exp).astype(F32).reshape(rshape)
    ih = (rng.uniform(0.1, 2.0, size) * 10.0**scale_exp).astype(F32).reshape(rshape)
    out_kind = draw(st.sampled_from(["same", "other", "inverted"]))
    if out_kind == "same":
        ol, oh = il, ih
    else:
        ol = rng.normal(size=size).astype(F32).reshape(rshape)
        oh = (ol + rng.uniform(0.1, 3.0, size).astype(F32).reshape(rshape)).astype(F32)
        if out_kind == "inverted":
            ol, oh = oh, ol
    n = int(np.prod(shape))
    lo, hi = np.broadcast_to(il, shape), np.broadcast_to(ih, shape)
    k = rng.integers(-1, levels + 1, size=n).reshape(shape)
    ties = (lo + (k + 0.5) / (levels - 1) * (hi.astype(np.float64) - lo)).astype(F32)
    rand = rng.uniform(-1.3, 1.3, size=shape).astype(F32) * np.maximum(-lo, hi)
    x = np.where(rng.random(shape) < 0.6, ties, rand).astype(F32)
    step = rng.integers(-1, 2, size=shape)
    x = np.where(step > 0, np.nextafter(x, F32(np.inf)),
                 np.where(step < 0, np.nextafter(x, F32(-np.inf)), x)).astype(F32)
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-42], F32)
    pick = rng.random(shape) < 0.05
    x[pick] = rng.choice(specials, size=int(pick.sum()))
    x = np.where(rng.random(shape) < 0.05, lo, x).astype(F32)  # exactly at input_low
    return x, il, ih, ol, oh, levels


@SETTINGS
@given(case=fq_case())
def test_fake_quantize_matches_openvino_cpu(case: tuple) -> None:
    x, il, ih, ol, oh, levels = case
    ref = run_fake_quantize(x, il, ih, ol, oh, levels)
    variant = ok.cpu_plugin_variant(x.shape, il.shape, ih.shape, ol.shape, oh.shape)
    got = ok.fake_quantize(x, il, ih, ol, oh, levels, variant=variant, identity_65536=True)
    _same_bits(got, ref)


def test_formula_by_hand() -> None:
    """il = -1, ih = 2, 256 levels, output = input range. x = 0: reference
    (0 + 1) / 3 * 255 = 85 exactly -> 85 / 255 * 3 - 1 = fl(fl(0.33333334) * 3) - 1 = 0;
    the JIT kernel: isc = 85, ish = 85, osc = fl(3 / 255) = 0.011764706;
    fma(85, osc, -1) = 85 * 0.0117647061124444 - 1 = 1.9557774e-08 (zero is not on its grid)."""
    x = np.array([0.0], F32)
    osc = F32(F32(3) / F32(255))
    jit_zero = F32(85 * np.float64(osc) - 1)  # one rounding of an exact product and sum
    assert jit_zero == F32(1.9557774e-08)
    assert ok.fake_quantize(x, -1, 2, -1, 2, 256)[0] == 0.0
    assert ok.fake_quantize(x.reshape(1, 1), -1, 2, -1, 2, 256, variant="jit")[0, 0] == jit_zero
    _same_bits(ok.fake_quantize(x, -1, 2, -1, 2, 256), run_fake_quantize(x, -1, 2, -1, 2, 256))
    x2 = x.reshape(1, 1)
    _same_bits(ok.fake_quantize(x2, -1, 2, -1, 2, 256, variant="jit"),
               run_fake_quantize(x2, -1, 2, -1, 2, 256))


def test_edges_and_nan_by_hand() -> None:
    """x <= input_low gives output_low, x > input_high gives output_high (reference); NaN
    stays NaN in the reference; the JIT kernel's clamp turns it into input_high (here
    giving exactly output_high: fma(15, fl(12 / 15), -7) = 5)."""
    x = np.array([-1.0, -1.5, 2.0, 2.5, np.nan], F32)
    want_ref = np.array([-7.0, -7.0, 5.0, 5.0, np.nan], F32)
    _same_bits(ok.fake_quantize(x, -1, 2, -7, 5, 16), want_ref)
    _same_bits(run_fake_quantize(x, -1, 2, -7, 5, 16), want_ref)
    want_jit = np.array([-7.0, -7.0, 5.0, 5.0, 5.0], F32).reshape(1, 5)
    _same_bits(ok.fake_quantize(x.reshape(1, 5), -1, 2, -7, 5, 16, variant="jit"), want_jit)
    _same_bits(run_fake_quantize(x.reshape(1, 5), -1, 2, -7, 5, 16), want_jit)


def test_plugin_removes_a_65536_level_identity() -> None:
    """Measured: with 65536 levels and equal input / output ranges the plugin drops the node
    (y = x), whatever the formula would give; 65535 levels or other output ranges keep it."""
    x = np.array([-0.96, 0.123456, 1.7], F32)
    ref = run_fake_quantize(x, -1, 2, -1, 2, 65536)
    _same_bits(ref, x)
    _same_bits(ok.fake_quantize(x, -1, 2, -1, 2, 65536, identity_65536=True), ref)
    assert not np.array_equal(ok.fake_quantize(x, -1, 2, -1, 2, 65536), x)
    _same_bits(ok.fake_quantize(x, -1, 2, -1, 2, 65535, identity_65536=True),
               run_fake_quantize(x, -1, 2, -1, 2, 65535))


def test_plugin_variant_choice() -> None:
    assert ok.cpu_plugin_variant((5,), ()) == "reference"
    assert ok.cpu_plugin_variant((2, 3, 4, 5), (1, 3, 1, 1)) == "jit"
    assert ok.cpu_plugin_variant((6, 4, 13), (6, 1, 1)) == "reference"
    with pytest.raises(ValueError, match="axes"):
        ok.cpu_plugin_variant((2, 3, 4), (1, 1, 4))


def test_bad_arguments() -> None:
    x = np.zeros((2, 3), F32)
    with pytest.raises(ValueError, match="levels"):
        ok.fake_quantize(x, -1, 1, -1, 1, 1)
    with pytest.raises(TypeError, match="levels"):
        ok.fake_quantize(x, -1, 1, -1, 1, 255.0)
    with pytest.raises(ValueError, match="input_low"):
        ok.fake_quantize(x, np.nan, 1, -1, 1, 256)
    with pytest.raises(ValueError, match="broadcast"):
        ok.fake_quantize(x, np.zeros(4, F32), 1, -1, 1, 256)
    with pytest.raises(TypeError, match="x"):
        ok.fake_quantize(x.astype(np.float64), -1, 1, -1, 1, 256)
    with pytest.raises(ValueError, match="variant"):
        ok.fake_quantize(x, -1, 1, -1, 1, 256, variant="gpu")
    lo = np.array([-1.0, -2.0, -3.0], F32)
    ok.fake_quantize(x, lo, 1, -1, 1, 256)
    assert lo.tolist() == [-1.0, -2.0, -3.0]


def test_openvino_target_passes_the_openvino_cases() -> None:
    """The ``openvino`` target runs every ``kernels.openvino`` fixture whose variant is the
    one the plugin picks for its shapes (all of them): identical to the emulation on each;
    torch cases are not run."""
    from refquant.conformance.format import load_suite
    from refquant.conformance.runner import run_suite
    from refquant.conformance.suite import default_fixture_dir
    from refquant.conformance.targets import get_target

    rep = run_suite(load_suite(default_fixture_dir()), get_target("openvino"))
    ran = [c for c in rep["cases"] if c["status"] != "skipped"]
    assert len(ran) >= 24 and {c["op"] for c in ran} == {"openvino.fake_quantize"}
    assert rep["passed"] == len(ran), [c for c in ran if c["status"] != "passed"][:3]
    assert {c["id"].split(".")[2] for c in ran} == {"reference", "jit"}


def test_openvino_target_skips_a_variant_the_plugin_would_not_run() -> None:
    from refquant.conformance.format import Case
    from refquant.conformance.targets import Unsupported, get_target

    x = np.zeros((1, 4), F32)
    ranges = {n: np.array(v, F32) for n, v in (("input_low", -1), ("input_high", 1),
                                                ("output_low", -1), ("output_high", 1))}
    case = Case(id="t", op="openvino.fake_quantize", kind="kernel", family="hand",
                params={"levels": 256, "variant": "reference", "identity_65536": False},
                inputs={"x": x, **ranges}, outputs={"y": x}, compare={"rule": "bits"},
                profile=None, tags=[], description="", expected_divergence={})
    with pytest.raises(Unsupported, match="runs the 'jit' kernel"):
        get_target("openvino").run(case)
