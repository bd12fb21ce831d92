"""Kernel diagnosis (refquant.diagnose): the catalogue, the discriminating fixtures, the
matcher, ``refquant diagnose`` and ``refquant.testing.diagnose``.

Independent sources: each named reference of the catalogue is checked bit for bit against
the refquant kernel it names (themselves checked against the real frameworks in
tests/test_kernels_*.py), the real frameworks are diagnosed directly, and the per-variant
tests feed every catalogued variant through the matcher and expect it to be named.
"""

from __future__ import annotations

import json
import re
import warnings
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from refquant import testing as rqt
from refquant.cli import main
from refquant.conformance.format import load_suite
from refquant.conformance.suite import default_fixture_dir
from refquant.diagnose.catalogue import BASE, FAMILIES, REFERENCES, emulate, single_deviations
from refquant.diagnose.implementations import IMPLEMENTATIONS
from refquant.diagnose.match import (
    DiagnoseError,
    cases_of,
    diagnose_callable,
    diagnose_results,
    format_report,
    table_row,
)
from refquant.kernels import onnx as ok
from refquant.kernels import paddle as pk
from refquant.kernels import torch as tk

DOCS = Path(__file__).resolve().parents[1] / "docs" / "kernels.md"


@pytest.fixture(scope="module")
def suite():  # type: ignore[no-untyped-def]
    return load_suite(default_fixture_dir())


def _kernel(family: str, variant: dict[str, str]):  # type: ignore[no-untyped-def]
    if family == "dequantize":
        return lambda q, s, z: emulate(family, variant, q, s, z)
    if family == "quantize":
        # integer codes where the variant has no NaN, as a real kernel returns them
        def q(x, s, z, lo, hi):  # type: ignore[no-untyped-def]
            out = emulate(family, variant, x, s, z, lo, hi)
            return out if np.isnan(out).any() else out.astype(np.int32)
        return q
    return lambda x, s, z, lo, hi: emulate(family, variant, x, s, z, lo, hi)


_DEVIATIONS = [(f, a, c, v) for f in FAMILIES for a, c, v in single_deviations(f)]


@pytest.mark.parametrize("family,axis,choice,variant", _DEVIATIONS,
                         ids=[f"{f}-{a}-{c}" for f, a, c, _ in _DEVIATIONS])
def test_every_catalogued_variant_is_named(suite, family, axis, choice, variant):
    # the emulation takes a float zero point: it runs the float zero-point case too
    report = diagnose_callable(_kernel(family, variant), family, fixtures=suite,
                               float_zero_point_ok=True)
    assert report["explained"], format_report(report)
    assert report["axes"][axis]["variant"] == choice, format_report(report)
    for other, info in report["axes"].items():
        assert variant[other] in info["candidates"], (other, format_report(report))
    differs = {a for a in FAMILIES[family].axes if variant[a] != BASE[family][a]}
    assert {d["axis"] for d in report["deviations"]} == differs
    assert report["matches_reference"] == (not differs)


def test_discriminating_cases_tell_every_pair_apart(suite):
    """Over each axis's cases, the manifest's variant outputs differ pairwise (and from the
    base), element by element, as SPEC.md promises."""
    for family, spec in FAMILIES.items():
        for axis in spec.axes:
            cases = [c for c in suite.cases if c.op == f"diagnose.{family}.{axis}"]
            assert len(cases) >= 2, (family, axis)
            primary = cases[0].primary
            names = [primary, *sorted(set(cases[0].outputs) - {primary})]
            assert set(names[1:]) == set(spec.choices(axis)) - {BASE[family][axis]}
            outs = [dict(c.outputs) for c in cases]
            if axis == "clamp_order":  # the variant is stored with truncation
                for c, o in zip(cases, outs, strict=True):
                    data = c.inputs["q" if family == "dequantize" else "x"]
                    o[primary] = emulate(family, dict(BASE[family], rounding="trunc"), data,
                                         c.inputs["scale"], c.inputs["zero_point"],
                                         c.params.get("qmin"), c.params.get("qmax"))
            for a, b in combinations(names, 2):
                told = False
                for o in outs:
                    ya, yb = (np.asarray(o[n], np.float64) for n in (a, b))
                    differ = ~((ya == yb) | (np.isnan(ya) & np.isnan(yb)))
                    told |= bool(differ.any())
                assert told, (family, axis, a, b)


def _onnx_type(qmin: int, qmax: int) -> str | None:
    return {(-128, 127): "int8", (0, 255): "uint8", (-32768, 32767): "int16"}.get((qmin, qmax))


def test_onnx_reference_is_refquant_onnx_kernel(suite):
    v = REFERENCES["quantize"]["onnx"][0]
    n = 0
    for c in cases_of("quantize", suite):
        x, s, z = c.inputs["x"], c.inputs["scale"], int(c.inputs["zero_point"])
        t = _onnx_type(c.params["qmin"], c.params["qmax"])
        if t is None:
            continue
        want = ok.quantize_linear(x, s, np.array(z, t)).astype(np.int64)
        got = emulate("quantize", v, x, s, z, c.params["qmin"], c.params["qmax"])
        np.testing.assert_array_equal(got.astype(np.int64), want, err_msg=c.id)
        n += 1
    assert n >= 40
    vd = REFERENCES["dequantize"]["onnx"][0]
    for c in cases_of("dequantize", suite):
        q, s, z = c.inputs["q"], c.inputs["scale"], int(c.inputs["zero_point"])
        got = emulate("dequantize", vd, q, s, z)
        for t in ("int8", "uint8", "int16"):
            info = np.iinfo(t)
            if q.min() >= info.min and q.max() <= info.max and info.min <= z <= info.max:
                want = ok.dequantize_linear(q.astype(t), s, np.array(z, t))
                assert (got.view(np.uint32) == want.view(np.uint32)).all(), c.id
                break


def test_torch_references_are_refquant_torch_kernels(suite):
    vq = REFERENCES["quantize"]["torch"][0]
    vf = REFERENCES["fake_quant"]["torch"][0]
    types = {(0, 255): "quint8", (-128, 127): "qint8"}
    n = 0
    for c in cases_of("quantize", suite):
        lo, hi = c.params["qmin"], c.params["qmax"]
        x, s, z = c.inputs["x"], float(c.inputs["scale"]), int(c.inputs["zero_point"])
        if (lo, hi) in types:
            with np.errstate(all="ignore"):
                want = tk.quantize_per_tensor(x, s, z, types[(lo, hi)]).astype(np.int64)
            got = emulate("quantize", vq, x, np.float32(s), z, lo, hi).astype(np.int64)
            np.testing.assert_array_equal(got, want, err_msg=c.id)
            n += 1
    for c in cases_of("fake_quant", suite):
        lo, hi = c.params["qmin"], c.params["qmax"]
        x, s, z = c.inputs["x"], float(c.inputs["scale"]), int(c.inputs["zero_point"])
        want = tk.fake_quantize_per_tensor_affine(x, s, z, lo, hi)
        got = emulate("fake_quant", vf, x, np.float32(s), z, lo, hi)
        assert (got.view(np.uint32) == want.view(np.uint32)).all(), c.id
        n += 1
    assert n >= 80


def test_paddle_reference_is_refquant_paddle_kernel(suite):
    v = REFERENCES["quantize"]["paddle"][0]
    n = 0
    for c in cases_of("quantize", suite):
        lo, hi = c.params["qmin"], c.params["qmax"]
        x, s, z = c.inputs["x"], c.inputs["scale"], int(c.inputs["zero_point"])
        if z != 0 or lo != -hi - 1:
            continue
        big = np.array([np.float32(hi) * s], np.float32)
        want = pk.quantize_linear(x, big, quant_axis=-1, bit_length=(hi + 1).bit_length(),
                                  qmin=lo, qmax=hi, round_type=0)
        got = emulate("quantize", v, x, s, z, lo, hi)
        np.testing.assert_array_equal(got, want.astype(np.float64), err_msg=c.id)
        n += 1
    assert n >= 15


def test_handwritten_kernels(suite):
    """Kernels written here from their textbook formulas are named."""
    def ties_away(x, s, z, lo, hi):  # type: ignore[no-untyped-def]
        v = x / s
        r = np.trunc(v) + np.where(np.abs(v - np.trunc(v)) >= 0.5, np.sign(v), 0)
        return np.where(np.isnan(v), lo, np.clip(r + z, lo, hi)).astype(np.int32)

    def reciprocal(x, s, z, lo, hi):  # type: ignore[no-untyped-def]
        with np.errstate(all="ignore"):
            v = x * (np.float32(1) / s)
        return np.where(np.isnan(v), lo, np.clip(np.rint(v) + z, lo, hi)).astype(np.int32)

    def narrow(x, s, z, lo, hi):  # type: ignore[no-untyped-def]
        with np.errstate(all="ignore"):
            v = np.rint(x / s)
        return np.where(np.isnan(v), lo + 1, np.clip(v + z, lo + 1, hi)).astype(np.int32)

    with np.errstate(all="ignore"):
        r = rqt.diagnose(ties_away, fixtures=suite)
        assert r["axes"]["rounding"]["variant"] == "half_away"
        assert [d["axis"] for d in r["deviations"]] == ["rounding"]
        r = rqt.diagnose(reciprocal, fixtures=suite)
        assert r["axes"]["scale"]["variant"] == "recip32"
        r = rqt.diagnose(narrow, fixtures=suite)
        assert r["axes"]["clamp_range"]["variant"] == "narrow"
        assert not r["matches_reference"]


def test_unexplained_cases_are_listed(suite):
    """A kernel outside the catalogue (the ONNX base, but 0.5 becomes 2) is not explained;
    the report lists exactly the cases where it misbehaves."""
    base = _kernel("quantize", BASE["quantize"])

    def odd(x, s, z, lo, hi):  # type: ignore[no-untyped-def]
        out = base(x, s, z, lo, hi)
        with np.errstate(all="ignore"):
            return np.where(x / s == np.float32(0.5), np.clip(2 + z, lo, hi), out)

    report = rqt.diagnose(odd, fixtures=suite)
    assert not report["explained"] and not report["matches_reference"]
    with np.errstate(all="ignore"):
        hit = {c.id for c in cases_of("quantize", suite)
               if np.any(c.inputs["x"] / c.inputs["scale"] == np.float32(0.5))}
    assert hit and {u["id"] for u in report["unexplained"]} == hit
    assert "no catalogued variant explains" in format_report(report)


# -- the C kernel's path, from a results directory ---------------------------------------------


def _write_results(tmp: Path, suite, variant: dict[str, str]) -> Path:  # type: ignore[no-untyped-def]
    out = tmp / "results"
    out.mkdir()
    for c in cases_of("quantize", suite):
        q = emulate("quantize", variant, c.inputs["x"], c.inputs["scale"],
                    int(c.inputs["zero_point"]), c.params["qmin"], c.params["qmax"])
        np.save(out / f"{c.id}.npy", q.astype(np.int32))
    return out


def test_results_directory_and_cli(tmp_path, suite, capsys):
    v = dict(BASE["quantize"], scale="recip32")
    res = _write_results(tmp_path, suite, v)
    report = diagnose_results(res)
    assert report["axes"]["scale"]["variant"] == "recip32"
    assert main(["diagnose", "--results", str(res), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["deviations"] == [{"axis": "scale", "reference": "div", "actual": "recip32"}]
    assert main(["diagnose", "--results", str(res), "--report", str(tmp_path / "r.json")]) == 1
    text = capsys.readouterr().out
    assert "scale: recip32 instead of div" in text
    assert json.loads((tmp_path / "r.json").read_text())["family"] == "quantize"


def test_cli_kernel_and_implementation(tmp_path, monkeypatch, capsys):
    mod = tmp_path / "my_rq_kernel.py"
    mod.write_text("import numpy as np\n"
                   "def q(x, s, z, lo, hi):\n"
                   "    with np.errstate(all='ignore'):\n"
                   "        v = np.rint(x / s)\n"
                   "    return np.where(np.isnan(v), lo, np.clip(v + z, lo, hi))"
                   ".astype(np.int32)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["diagnose", "--kernel", "my_rq_kernel:q"]) == 0
    assert "verdict: matches onnx" in capsys.readouterr().out
    assert main(["diagnose", "--kernel", "my_rq_kernel:q", "--reference", "torch"]) == 1
    capsys.readouterr()


# -- bad input --------------------------------------------------------------------------------


def _cli_error(capsys, argv: list[str], *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "Traceback" not in cap.err
    assert len(cap.err.strip().splitlines()) == 1, cap.err
    for n in needles:
        assert n in cap.err, cap.err


def test_bad_results_directories(tmp_path, suite, capsys):
    res = _write_results(tmp_path, suite, BASE["quantize"])
    ids = [c.id for c in cases_of("quantize", suite)]
    argv = ["diagnose", "--results", str(res)]
    assert main(argv) == 0
    capsys.readouterr()

    gone = res / f"{ids[3]}.npy"
    kept = gone.read_bytes()
    gone.unlink()
    with pytest.raises(DiagnoseError, match=re.escape(ids[3])):
        diagnose_results(res)
    _cli_error(capsys, argv, ids[3], "no result")
    gone.write_bytes(kept)

    extra = res / "not-a-case.npy"
    np.save(extra, np.zeros(3, np.int32))
    _cli_error(capsys, argv, "not-a-case", "no case named")
    extra.unlink()

    target = res / f"{ids[0]}.npy"
    good = target.read_bytes()
    np.save(target, np.zeros(5, np.int32))
    _cli_error(capsys, argv, ids[0], "shape (5,)")
    np.save(target, np.zeros(np.load(io_bytes(good)).shape, np.float16))
    _cli_error(capsys, argv, ids[0], "float16")
    np.save(target, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _cli_error(capsys, argv, ids[0], "not a valid .npy")
    target.write_bytes(b"garbage")
    _cli_error(capsys, argv, ids[0], "not a valid .npy")
    target.write_bytes(good)

    (res / "sub").mkdir()
    _cli_error(capsys, argv, "unexpected entry")
    (res / "sub").rmdir()
    (res / "notes.txt").write_text("x")
    _cli_error(capsys, argv, "notes.txt")
    (res / "notes.txt").unlink()

    _cli_error(capsys, ["diagnose", "--results", str(tmp_path / "missing")], "does not exist")
    _cli_error(capsys, ["diagnose", "--results", str(res), "--kernel", "a:b"], "exactly one")
    _cli_error(capsys, ["diagnose", "--kernel", "nomodule_rq_xyz:f"], "cannot import")
    _cli_error(capsys, ["diagnose", "--kernel", "numpy"], "MODULE:FUNCTION")
    _cli_error(capsys, ["diagnose", "--implementation", "nope"], "nope")
    assert main(["diagnose", "--results", str(res)]) == 0  # nothing was modified
    capsys.readouterr()


def io_bytes(data: bytes):  # type: ignore[no-untyped-def]
    import io

    return io.BytesIO(data)


def test_bad_callables(suite):
    first = cases_of("quantize", suite)[0].id

    def raises(x, s, z, lo, hi):  # type: ignore[no-untyped-def]
        raise RuntimeError("kernel exploded")

    with pytest.raises(DiagnoseError, match=rf"case {re.escape(first)}: the kernel raised "
                                            r"RuntimeError: kernel exploded"):
        rqt.diagnose(raises, fixtures=suite)
    with pytest.raises(DiagnoseError, match=rf"case {re.escape(first)}: .*shape \(3,\)"):
        rqt.diagnose(lambda x, s, z, lo, hi: np.zeros(3, np.int32), fixtures=suite)
    with pytest.raises(DiagnoseError, match=rf"case {re.escape(first)}: .*dtype bool"):
        rqt.diagnose(lambda x, s, z, lo, hi: np.zeros(x.shape, bool), fixtures=suite)
    fq_first = cases_of("fake_quant", suite)[0].id
    with pytest.raises(DiagnoseError, match=rf"case {re.escape(fq_first)}: .*float64.*"
                                            r"expected float32"):
        rqt.diagnose(lambda x, s, z, lo, hi: x.astype(np.float64), "fake_quant",
                     fixtures=suite)
    with pytest.raises(DiagnoseError, match="returned None for all"):
        rqt.diagnose(lambda x, s, z, lo, hi: None, fixtures=suite)
    with pytest.raises(ValueError, match="family must be one of"):
        rqt.diagnose(lambda *a: None, "requantize", fixtures=suite)
    with pytest.raises(ValueError, match="reference for family 'quantize' must be one of"):
        rqt.diagnose(_kernel("quantize", BASE["quantize"]), reference="tflite",
                     fixtures=suite)
    with pytest.raises(ValueError, match="fn must be callable"):
        rqt.diagnose(42, fixtures=suite)

    def mutates(x, s, z, lo, hi):  # type: ignore[no-untyped-def]
        out = _kernel("quantize", BASE["quantize"])(x, s, z, lo, hi)
        x[...] = 0
        return out

    before = {c.id: c.inputs["x"].copy() for c in cases_of("quantize", suite)}
    assert rqt.diagnose(mutates, fixtures=suite)["matches_reference"]
    for c in cases_of("quantize", suite):
        assert (c.inputs["x"].view(np.uint32) == before[c.id].view(np.uint32)).all()


# -- the real implementations and the table of docs/kernels.md --------------------------------

#: rows the table test compares with docs/kernels.md: implementations whose kernels refquant
#: emulates bit for bit on every supported CPU (tests/test_kernels_*.py)
_ASSERTED = ("onnxruntime", "onnx-reference", "onnxruntime-qdq", "torch.quantize_per_tensor",
             "torch.fake_quantize_per_tensor_affine", "paddle.quantize_linear",
             "paddle.quantize_linear.rt1", "onnxruntime.DequantizeLinear", "torch.dequantize",
             "paddle.fake_quantize_dequantize_moving_average_abs_max",
             "torch._fake_quantize_learnable_per_tensor_affine")


def _table_lines() -> set[str]:
    text = DOCS.read_text(encoding="utf-8")
    return {line.strip() for line in text.splitlines() if line.startswith("| `")}


@pytest.mark.parametrize("name", list(IMPLEMENTATIONS))
def test_real_implementation_diagnosis_table(suite, name):
    impl = IMPLEMENTATIONS[name]
    pytest.importorskip(impl.package)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = diagnose_callable(impl.factory(), impl.family, impl.reference,
                                   fixtures=suite, source=name,
                                   float_zero_point_ok=impl.float_zero_point)
    row = table_row(name, report)
    if name in _ASSERTED:
        assert row in _table_lines(), row
        if not name.startswith("paddle.fake"):  # its dequantize is outside the catalogue
            assert report["explained"], format_report(report)
    else:  # measured on one machine; the row's presence is asserted, not its values
        assert any(line.startswith(f"| `{name}` |") for line in _table_lines())
    if name == "onnx-reference":  # its known divergence (docs/conformance.md)
        assert {d["axis"] for d in report["deviations"]} == {"nan", "overflow"}
    if name in ("onnxruntime", "onnxruntime-qdq", "onnxruntime.DequantizeLinear"):
        assert report["matches_reference"]
    if name == "torch.fake_quantize_per_channel_affine.float_zp":  # lrint(z + x * (1/s))
        assert report["explained"], format_report(report)
        assert report["axes"]["zero_point"]["variant"] == "float"
    if name == "torch._fake_quantize_learnable_per_tensor_affine":  # nearbyint(z) first
        assert report["axes"]["zero_point"]["variant"] == "after"
        assert report["matches_reference"] and not report["skipped"]
    if name == "paddle.quantize_linear.rt1":  # clip x to [-S, S], round half away
        assert report["axes"]["rounding"]["variant"] == "half_away"
        assert report["axes"]["clamp_range"]["variant"] == "narrow"


def test_two_deviations_are_never_misnamed(suite):
    """A kernel with two axes off the base: every axis's true variant is among the
    candidates the report gives (named, or reported as not told apart), and it is explained.
    A deterministic sample: every fifth valid pair of quantize deviations."""
    from refquant.diagnose.search import with_choice

    devs = [(a, c) for a in FAMILIES["quantize"].axes for c in FAMILIES["quantize"].choices(a)
            if c != BASE["quantize"][a]]
    pairs = []
    for (a1, c1), (a2, c2) in combinations(devs, 2):
        v = with_choice(BASE["quantize"], a1, c1) if a1 != a2 else None
        v = with_choice(v, a2, c2) if v is not None else None
        if v is not None and v[a1] == c1 and v[a2] == c2:
            pairs.append(v)
    assert len(pairs) > 200
    for v in pairs[::5]:
        report = rqt.diagnose(_kernel("quantize", v), fixtures=suite)
        assert report["explained"], v
        for axis, info in report["axes"].items():
            assert v[axis] in info["candidates"], (v, axis, info)
            assert info["variant"] in (None, v[axis]), (v, axis, info)


def test_emulate_and_variant_of_reject_bad_input():
    from refquant.diagnose.catalogue import variant_of

    x = np.array([1.0, 2.0], np.float32)
    with pytest.raises(ValueError, match=r"variant\['rounding'\] must be one of"):
        emulate("quantize", dict(BASE["quantize"], rounding="bogus"), x, 1.0, 0, -128, 127)
    with pytest.raises(ValueError, match="lacks the axes"):
        emulate("quantize", {"rounding": "rne"}, x, 1.0, 0, -128, 127)
    with pytest.raises(ValueError, match="family must be one of"):
        emulate("requantize", BASE["quantize"], x, 1.0, 0, -128, 127)
    with pytest.raises(ValueError, match="invalid combination"):
        emulate("quantize", dict(BASE["quantize"], scale="fma"), x, 1.0, 0, -128, 127)
    with pytest.raises(ValueError, match="has no axis 'dequant_order'"):
        variant_of("quantize", dequant_order="fma")
    assert variant_of("quantize", scale="fma")["zero_point"] == "before"
    before = x.copy()
    emulate("quantize", BASE["quantize"], x, 1.0, 0, -128, 127)
    assert (x == before).all()


# -- element casts and MX block quantizers (refquant.diagnose.cast) ----------------------------

from refquant.diagnose import cast as dc  # noqa: E402
from refquant.kernels import formats as fm  # noqa: E402

_FORMATS = tuple(fm.FLOAT_FORMATS)


@pytest.mark.parametrize("fmt", _FORMATS)
def test_cast_emulation_is_the_format_encoder(fmt):
    """rne is refquant's bit-level encoder (an independent formulation): saturating
    (fnuz: +-inf to NaN even then, the ONNX rule, i.e. sat_inf) and not."""
    x = dc.cast_probes(fmt)
    f = fm.FLOAT_FORMATS[fmt]
    sat = "sat_inf" if f.specials == "fnuz" else "satfinite"
    runs = [(True, sat)] + ([(False, "inf_nan")] if f.specials != "none" else [])
    for saturate, mode in runs:
        want = fm.decode(fm.encode(x, fmt, saturate=saturate), fmt)
        got = dc.emulate_cast(x, fmt, {"rounding": "rne", "saturation": mode,
                                       "subnormal": "keep"})
        assert dc._same(got, want).all(), (fmt, mode)


@pytest.mark.parametrize("fmt", _FORMATS)
def test_cast_probes_tell_variants_apart_and_each_is_named(fmt):
    variants = dc.cast_variants(fmt)
    x = dc.cast_probes(fmt)
    outs = [dc.emulate_cast(x, fmt, v) for v in variants]
    for (a, oa), (b, ob) in combinations(zip(variants, outs, strict=True), 2):
        collapsed = a["rounding"] == b["rounding"] == "trunc" and a["subnormal"] == \
            b["subnormal"] and {a["saturation"], b["saturation"]} == {"sat_inf", "inf_nan"}
        assert collapsed or not dc._same(oa, ob).all(), (a, b)
    for v in variants:
        r = dc.diagnose_cast(lambda x, v=v: dc.emulate_cast(x, fmt, v), fmt)
        assert r["explained"]
        for axis, info in r["axes"].items():
            assert v[axis] in info["candidates"]
            assert info["variant"] in (None, v[axis])
        assert r["axes"]["rounding"]["variant"] == v["rounding"]
        assert r["axes"]["subnormal"]["variant"] == v["subnormal"]


def test_cast_handwritten_ties_away_kernel_is_named():
    """E4M3FN written from its definition (3 mantissa bits, min exponent -6, max 448),
    rounding floor(a / ulp + 0.5): ties away from zero, saturating."""
    def away(x):  # type: ignore[no-untyped-def]
        a = np.abs(x.astype(np.float64))
        with np.errstate(all="ignore"):
            e = np.maximum(np.floor(np.log2(np.where(a > 0, a, 1.0))), -6)
            ulp = 2.0 ** (e - 3)
            r = np.minimum(np.floor(a / ulp + 0.5) * ulp, 448.0)
        r = np.where(np.isinf(a), 448.0, r)
        return np.copysign(r, x).astype(np.float32)

    r = dc.diagnose_cast(away, "fp8_e4m3fn")
    assert r["explained"], dc.format_cast_report(r)
    assert {a: i["variant"] for a, i in r["axes"].items()} == {
        "rounding": "half_away", "saturation": "satfinite", "subnormal": "keep"}


@pytest.mark.parametrize("elem", ("fp8_e4m3fn", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1"))
def test_mx_probes_name_every_scale_mode(elem):
    x = dc.mx_probes(elem)
    modes = list(dc.MX_AXES["scale_mode"])
    outs = [dc.emulate_mx(x, elem, {"scale_mode": m}) for m in modes]
    for a, b in combinations(range(len(modes)), 2):
        assert not dc._same(outs[a], outs[b]).all(), (modes[a], modes[b])
    for m in modes:
        r = dc.diagnose_mx(lambda x, m=m: dc.emulate_mx(x, elem, {"scale_mode": m}), elem)
        assert r["axes"]["scale_mode"]["variant"] == m


@pytest.mark.parametrize("name", list(dc.CAST_IMPLEMENTATIONS))
def test_cast_implementation_table(name):
    """The rows of docs/kernels.md's cast table, recomputed from the installed packages."""
    family, fmt, package, _ = dc.CAST_IMPLEMENTATIONS[name]
    pytest.importorskip(package)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = dc.diagnose_implementation(name)
    assert dc.cast_table_row(name, report) in _table_lines()
    assert report["explained"], dc.format_cast_report(report, name)
    if family == "mx":  # torchao's ScaleCalculationMode is named as itself
        assert report["axes"]["scale_mode"]["variant"] == name.rsplit(".", 1)[1]
    else:
        assert report["axes"]["rounding"]["variant"] == "rne"
    if name == "torch.fp8_e4m3fn":
        assert report["axes"]["saturation"]["variant"] == "satfinite"
    if name.startswith("ml_dtypes.fp8"):
        assert report["axes"]["saturation"]["variant"] == "inf_nan"


def test_cast_cli_and_bad_input(tmp_path, monkeypatch, capsys):
    mod = tmp_path / "my_rq_cast.py"
    mod.write_text("import numpy as np\n"
                   "def ident(x):\n"
                   "    return x.copy()\n"
                   "def bad(x):\n"
                   "    return x[:3]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["diagnose", "--family", "cast", "--format", "fp4_e2m1", "--kernel",
                 "my_rq_cast:ident"]) == 1
    assert "not explained" in capsys.readouterr().out
    pytest.importorskip("ml_dtypes")
    assert main(["diagnose", "--implementation", "ml_dtypes.fp4_e2m1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["axes"]["rounding"]["variant"] == "rne"
    _cli_error(capsys, ["diagnose", "--family", "cast", "--kernel", "my_rq_cast:ident"],
               "--format")
    _cli_error(capsys, ["diagnose", "--family", "cast", "--format", "fp9", "--kernel",
                        "my_rq_cast:ident"], "fp9")
    _cli_error(capsys, ["diagnose", "--family", "mx", "--format", "fp4_e2m1", "--kernel",
                        "my_rq_cast:bad"], "expected float32")
    _cli_error(capsys, ["diagnose", "--family", "cast", "--format", "fp4_e2m1", "--results",
                        str(tmp_path)], "--results")


def test_float_zero_point_kernel_cli_and_results(tmp_path, monkeypatch, capsys, suite):
    """A fake-quant kernel written here with a float zero point added before rounding is
    named ``float`` only when it runs the float zero-point case; without it (or from a
    results directory without that file) ``float`` and ``before`` are one function and the
    case is skipped."""
    mod = tmp_path / "my_rq_fzp.py"
    mod.write_text(
        "import numpy as np\n"
        "def fq(x, s, z, lo, hi):\n"
        "    with np.errstate(all='ignore'):\n"
        "        v = (x * (np.float32(1) / s)).astype(np.float32) + np.float32(z)\n"
        "        q = np.where(np.isnan(v), lo, np.clip(np.rint(v), lo, hi)).astype(np.int64)\n"
        "        return ((q - np.float64(z)) * np.float64(s)).astype(np.float32)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["diagnose", "--family", "fake_quant", "--kernel", "my_rq_fzp:fq", "--json"]
    assert main([*argv, "--float-zero-point"]) == 1
    r = json.loads(capsys.readouterr().out)
    assert r["explained"] and not r["skipped"]
    assert r["axes"]["zero_point"]["variant"] == "float"
    assert r["axes"]["scale"]["variant"] == "recip32"
    assert main(argv) == 1
    r = json.loads(capsys.readouterr().out)
    assert r["skipped"] == ["diag.fq.zero_point.i8fzp"]
    assert r["axes"]["zero_point"]["variant"] == "before"
    import my_rq_fzp  # type: ignore[import-not-found]

    res = tmp_path / "res"
    res.mkdir()
    for c in cases_of("fake_quant", suite):
        if c.id != "diag.fq.zero_point.i8fzp":
            np.save(res / f"{c.id}.npy", my_rq_fzp.fq(
                c.inputs["x"], np.float32(c.inputs["scale"]), int(c.inputs["zero_point"]),
                c.params["qmin"], c.params["qmax"]))
    r = diagnose_results(res, "fake_quant", fixtures=suite)
    assert r["explained"] and r["cases"] == len(cases_of("fake_quant", suite)) - 1
    c = next(c for c in cases_of("fake_quant", suite) if c.id == "diag.fq.zero_point.i8fzp")
    np.save(res / f"{c.id}.npy", my_rq_fzp.fq(c.inputs["x"], np.float32(c.inputs["scale"]),
                                              np.float32(c.inputs["zero_point"]),
                                              c.params["qmin"], c.params["qmax"]))
    r = diagnose_results(res, "fake_quant", fixtures=suite)
    assert r["axes"]["zero_point"]["variant"] == "float"
