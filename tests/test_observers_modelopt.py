"""ModelOpt 0.47's calibrators: refquant.observers.modelopt against a recording of the real
package (tests/data/modelopt_0.47.npz, made by tests/data/record_modelopt.py in a scratch
environment: ModelOpt cannot be installed next to PaddleSlim), and the torch primitives it
uses against the installed torch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.observers import modelopt as mo

DATA = Path(__file__).resolve().parent / "data" / "modelopt_0.47.npz"
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)
F32S = st.floats(float(np.float32(1e-30)), float(np.float32(1e30)), width=32)


def _load():
    z = np.load(DATA)
    return z, json.loads(str(z["manifest"]))


Z, MANIFEST = _load()
CASES = MANIFEST["cases"]


def _of(kind):
    return [c for c in CASES if c["kind"] == kind]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _bits(v):
    return None if v is None else np.asarray(v, np.float32)


def test_recording_is_of_the_stated_versions():
    assert MANIFEST["modelopt"] == "0.47.0" and MANIFEST["torch"].startswith("2.13.0")
    assert len(CASES) >= 30


# -- histogram calibrator -----------------------------------------------------------------
@pytest.mark.parametrize("case", _of("hist"), ids=lambda c: f"{c['name']}-{c['data']}")
def test_histogram_calibrator_matches_the_recording(case):
    bits = tuple(case["num_bits"]) if isinstance(case["num_bits"], list) else case["num_bits"]
    cal = mo.HistogramCalibrator(num_bits=bits, unsigned=case["unsigned"],
                                 num_bins=case["num_bins"], skip_zeros=case["skip_zeros"])
    for key in case["batches"]:
        cal.observe(Z[key])
    assert same_bits(cal.hist, Z[case["hist"]])
    assert same_bits(cal.edges, Z[case["edges"]])
    for res in case["results"]:
        try:
            got = cal.compute_amax(res["method"], **res["kwargs"])
        except Exception as exc:  # noqa: BLE001 - compared with the recorded exception
            assert res.get("raises") == type(exc).__name__, (res, exc)
            continue
        assert "raises" not in res, (res, got)
        assert same_bits(_bits(got), Z[res["amax"]]), (res, got, Z[res["amax"]])


def test_histogram_counts_equal_a_plain_count_of_abs_values():
    # independent check of the first batch: np.histogram on the same float32 edges agrees
    # with torch.histc's division rule away from the edges
    rng = np.random.default_rng(3)
    x = rng.standard_normal(5000).astype(np.float32)
    cal = mo.HistogramCalibrator(num_bins=64)
    cal.observe(x)
    ref, _ = np.histogram(np.abs(x), bins=64, range=(0.0, float(np.abs(x).max())))
    assert int(cal.hist.sum()) == x.size
    assert np.abs(cal.hist - ref).sum() <= 4  # only values within an ulp of an edge may move


# -- max calibrator -----------------------------------------------------------------------
@pytest.mark.parametrize("case", _of("max"), ids=lambda c: c["name"])
def test_max_calibrator_matches_the_recording(case):
    axis = tuple(case["axis"]) if isinstance(case["axis"], list) else case["axis"]
    cal = mo.MaxCalibrator(axis=axis)
    for key in case["batches"]:
        cal.observe(Z[key])
    assert same_bits(cal.compute_amax(), Z[case["amax"]])


@pytest.mark.parametrize("case", _of("max_raises"), ids=lambda c: c["name"])
def test_max_calibrator_raises_as_recorded(case):
    cal = mo.MaxCalibrator()
    with pytest.raises(AssertionError):
        cal.observe(Z[case["batches"][0]])
    assert case["raises"] == "AssertionError"


# -- mse sweep ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", _of("mse"), ids=lambda c: f"{c['name']}-{c['quant']}")
def test_mse_calibrator_matches_the_recording(case):
    bits = (4, 3) if case["quant"] == "fp8" else 8
    cal = mo.MseCalibrator(Z[case["amax0"]], axis=case["axis"], num_bits=bits,
                           narrow_range=case["quant"] == "int8narrow", **case["kwargs"])
    for key in case["batches"]:
        cal.observe(Z[key])
    got = cal.compute_amax()
    assert same_bits(got, Z[case["amax"]])
    # float32 loss sums (torch) against float64 here: the decision is the same whenever the
    # margin exceeds float32 summation error, which every recorded case does
    assert cal.margin > 1e-4


# -- quantizers ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", _of("int_quant"), ids=lambda c: c["name"])
def test_fake_tensor_quant_matches_the_recording(case):
    got = mo.fake_tensor_quant(Z[case["x"]], np.float32(case["amax"]), case["num_bits"],
                               case["unsigned"], case["narrow"])
    assert same_bits(got, Z[case["out"]])


@pytest.mark.parametrize("case", _of("fp8_quant"), ids=lambda c: c["name"])
def test_fp8_fake_quant_matches_the_recording(case):
    assert same_bits(mo.fake_e4m3(Z[case["x"]], np.float32(case["amax"])), Z[case["out"]])


def test_fp8_scale_hand_worked():
    scale, inv = mo.fp8_scale(np.float32(448.0))
    assert scale == 1.0 and inv == 1.0
    scale, inv = mo.fp8_scale(np.float32(0.0))  # amax <= 2^-24 -> treated as 1
    assert scale == 448.0 and inv == np.float32(1 / 448)
    scale, inv = mo.fp8_scale(np.float32(3.0))
    assert scale == np.float32(448 / 3) and inv == np.float32(1) / np.float32(448 / 3)


def test_histogram_mse_quantizer_is_the_argument_shift_hand_worked():
    # fake_tensor_quant(centers, amax=1, 8, False): bias=8, num_bits=False -> maxbound -0.5;
    # every centre becomes -0.5 / (-0.5 / 1) + 8 = 9
    c = np.float32([0.1, 0.5, 1.0, 2.0])
    assert mo._hist_mse_quant(c, np.float32(1.0), 8, False).tolist() == [9.0] * 4
    assert np.isnan(mo._hist_mse_quant(c, np.float32(1.0), 8, True)).all()
    with pytest.raises(TypeError):
        mo._hist_mse_quant(c, np.float32(1.0), (4, 3), False)


# -- torch primitives against the installed torch ------------------------------------------
def _torch():
    return pytest.importorskip("torch")


@SETTINGS
@given(end=F32S, steps=st.integers(1, 5000),
       start=st.sampled_from([0.0, -1.5, 0.25]))
def test_torch_linspace(end, steps, start):
    torch = _torch()
    real = torch.linspace(start, torch.tensor(end, dtype=torch.float32), steps).numpy()
    assert same_bits(real, mo.torch_linspace(start, end, steps))


@SETTINGS
@given(end=F32S, n=st.integers(1, 5000))
def test_torch_arange(end, n):
    torch = _torch()
    step = np.float32(np.float32(end) / np.float32(n))
    if not step > 0:
        return
    stop = np.float32(np.float32(end) + step)
    real = torch.arange(0, torch.tensor(stop), torch.tensor(step)).numpy()
    assert same_bits(real, mo.torch_arange(float(stop), float(step)))


@SETTINGS
@given(seed=st.integers(0, 10**6), n=st.integers(1, 3000), bins=st.integers(1, 3000),
       scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e4, 1e30]), zeros=st.booleans(),
       shrink=st.sampled_from([1.0, 0.7, 0.0]))
def test_torch_histc(seed, n, bins, scale, zeros, shrink):
    torch = _torch()
    x = np.abs(np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)
    if zeros:
        x[: n // 2] = 0
    high = np.float32(x.max() * np.float32(shrink))
    real = torch.histc(torch.from_numpy(x), bins=bins, min=0, max=float(high)).numpy()
    assert same_bits(real, mo.torch_histc(x, bins, 0.0, float(high)))


# -- canonical ----------------------------------------------------------------------------
def _grow_batches():
    rng = np.random.default_rng(11)
    return [rng.standard_normal(700).astype(np.float32) * s for s in (0.5, 4.0, 1.0, 9.0)]


class _Percentile:
    """A HistogramCalibrator whose ``compute`` decides by the percentile method."""

    def __init__(self) -> None:
        self.cal = mo.HistogramCalibrator(num_bins=256)

    def observe(self, x):
        self.cal.observe(x)

    def compute(self):
        return self.cal.compute("percentile")


def test_histogram_calibrator_is_order_dependent():
    from refquant.observers.order import batch_order_sensitivity

    res = batch_order_sensitivity(_Percentile, _grow_batches())
    assert res.distinct_scales > 1 and res.spread > 0  # the first batch fixes the bin width


@pytest.mark.parametrize("method", ["percentile", "mse", "entropy"])
def test_canonical_histogram_is_order_free_and_merges(method):
    b = _grow_batches()
    whole = mo.CanonicalHistogramCalibrator(num_bins=256)
    for x in b:
        whole.observe(x)
    want = whole.compute_amax(method, start_bin=64)
    for order, cut in (([3, 1, 0, 2], 1), ([2, 0, 3, 1], 3)):
        a, c = mo.CanonicalHistogramCalibrator(num_bins=256), mo.CanonicalHistogramCalibrator(
            num_bins=256)
        for i in order[:cut]:
            a.observe(b[i])
        for i in order[cut:]:
            c.observe(b[i])
        c.merge(a)
        assert same_bits(c.compute_amax(method, start_bin=64), want)


def test_canonical_percentile_hand_worked():
    # values 1..8 (exact bins of width 1/256 on [0, 8)); 50% of 8 values -> the 4th value's
    # bin: its right edge 4 + 1/256 clips none of the lower half
    cal = mo.CanonicalHistogramCalibrator(num_bins=2048)
    cal.observe(np.arange(1, 9, dtype=np.float32))
    amax = float(cal.compute_amax("percentile", percentile=50.0))
    assert 4.0 < amax <= 4.0 + 8 / 2048 * 2
    assert float(cal.compute_amax("percentile", percentile=100.0)) >= 8.0


def test_canonical_max_merges_exactly():
    b = _grow_batches()
    whole = mo.CanonicalMaxCalibrator()
    for x in b:
        whole.observe(x)
    a, c = mo.CanonicalMaxCalibrator(), mo.CanonicalMaxCalibrator()
    a.observe(b[3])
    for x in b[:3]:
        c.observe(x)
    c.merge(a)
    assert same_bits(c.compute_amax(), whole.compute_amax())
    assert float(whole.compute_amax()) == float(max(np.abs(x).max() for x in b))


# -- bad input ----------------------------------------------------------------------------
def test_bad_input():
    with pytest.raises(TypeError, match="x must be"):
        mo.MaxCalibrator().observe(np.int32([1]))
    with pytest.raises(ValueError, match="empty"):
        mo.HistogramCalibrator().observe(np.zeros(0, np.float32))
    with pytest.raises(NotImplementedError):
        mo.HistogramCalibrator(axis=0)
    with pytest.raises(ValueError, match="num_bits"):
        mo.HistogramCalibrator(num_bits=1)
    with pytest.raises(ValueError, match="non-finite"):
        mo.CanonicalMaxCalibrator().observe(np.float32([np.nan]))
    with pytest.raises(ValueError, match="non-finite"):
        mo.CanonicalHistogramCalibrator().observe(np.float32([np.inf]))
    with pytest.raises(ValueError, match="no batch"):
        mo.CanonicalHistogramCalibrator().compute_amax("percentile")
    with pytest.raises(ValueError, match="axis"):
        mo.MaxCalibrator(axis=3).observe(np.float32([[1.0]]))
    assert mo.HistogramCalibrator().compute_amax("mse") is None
    with pytest.raises(ValueError, match="non-finite"):
        mo.HistogramCalibrator().observe(np.float32([1.0, np.nan]))
    with pytest.raises(ValueError, match="non-finite"):
        mo.MseCalibrator(np.float32(1.0)).observe(np.float32([np.inf]))
    x = np.float32([-3.0, 1.0])
    keep = x.copy()
    mo.HistogramCalibrator(num_bins=8).observe(x)
    assert same_bits(x, keep) and math.isfinite(float(keep[0]))
