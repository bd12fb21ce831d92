"""The conformance suite: fixtures, regeneration, runner, targets, CLI and bad input.

Expected values come from the real implementations (the paddle / onnxruntime / torch
targets run the frameworks' own kernels on every fixture) and from hand-worked numbers in
/work/shared/references/kernel-semantics.md; never from refquant's own output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from refquant.conformance.cli import main as cli
from refquant.conformance.compare import compare_outputs, first_mismatch
from refquant.conformance.format import (
    Case,
    FixtureError,
    load_suite,
    npy_bytes,
    write_suite,
)
from refquant.conformance.runner import run_suite
from refquant.conformance.suite import default_fixture_dir
from refquant.conformance.targets import TARGET_NAMES, get_target
from refquant.testing import DISTRIBUTIONS

FIXTURES = default_fixture_dir()


@pytest.fixture(scope="module")
def suite():
    return load_suite(FIXTURES)


def _case(suite, cid: str) -> Case:
    return suite.by_id()[cid]


# ----------------------------------------------------------------------------- fixtures


def test_fixture_set_is_large_small_and_covers_the_families(suite):
    assert len(suite.cases) >= 300
    fams = {c.family for c in suite.cases}
    assert {"kernels.paddle", "kernels.onnx", "kernels.slim", "kernels.torch", "qparams",
            "observers", "quanters"} <= fams
    profiles = {(c.kind, c.profile) for c in suite.cases}
    for kind in ("observer", "quanter"):
        assert {(kind, "canonical"), (kind, "paddleslim")} <= profiles
    size = sum(p.stat().st_size for p in (FIXTURES / "data").iterdir())
    assert size < 4 * 2**20, f"fixtures take {size} bytes"
    tags = {t for c in suite.cases for t in c.tags}
    for needed in ("ties", "saturation", "special", "tiny-scale", "per-channel", "blocked",
                   "fp8", "float16", "b4", "b8", "b16", "axis0", "axis1", "batches1",
                   "batches2", "batches3", "steps1", "steps3", *DISTRIBUTIONS):
        assert needed in tags, needed


def test_regeneration_reproduces_every_byte(tmp_path):
    out = tmp_path / "regen"
    assert cli(["conformance", "generate", "--out", str(out), "--quiet"]) == 0
    ref_manifest = (FIXTURES / "manifest.json").read_bytes()
    new_manifest = (out / "manifest.json").read_bytes()
    assert new_manifest == ref_manifest, "manifest.json drifted: run refquant conformance generate"
    ours = sorted(p.name for p in (FIXTURES / "data").iterdir())
    theirs = sorted(p.name for p in (out / "data").iterdir())
    assert ours == theirs
    drift = [n for n in ours
             if (FIXTURES / "data" / n).read_bytes() != (out / "data" / n).read_bytes()]
    assert not drift, f"{len(drift)} fixture files drifted, first {drift[:3]}"


def test_npy_files_are_plain_version_1(suite):
    raw = (FIXTURES / "data" / "paddle.ql.special.b8.rt0.in.x.npy").read_bytes()
    assert raw[:8] == b"\x93NUMPY\x01\x00"
    header_len = int.from_bytes(raw[8:10], "little")
    header = raw[10:10 + header_len].decode("ascii")
    assert "'descr': '<f4'" in header and "'fortran_order': False" in header
    assert (10 + header_len) % 64 == 0
    data = np.frombuffer(raw[10 + header_len:], dtype="<f4")
    x = _case(suite, "paddle.ql.special.b8.rt0").inputs["x"]
    assert data.view(np.uint32).tolist() == x.view(np.uint32).tolist()


# Hand-worked numbers from kernel-semantics.md (independent of refquant's code)


def _out_at(case: Case, x_value: float, output: str = "y"):
    x = case.inputs["x"]
    idx = np.flatnonzero(x.view(np.uint32) == np.float32(x_value).view(np.uint32))
    assert idx.size, f"{x_value} not among {case.id}'s inputs"
    return case.outputs[output].ravel()[idx[0]]


def test_hand_worked_paddle_values(suite):
    # S = 0: rt0 uses inv = 1/1e-6, so x = 1e-7 -> 13; rt1 clips x to 0 first -> 0
    assert _out_at(_case(suite, "paddle.ql.scale_zero.rt0"), 1e-7) == 13
    assert _out_at(_case(suite, "paddle.ql.scale_zero.rt1"), 1e-7) == 0
    # S = 1.1e-30 is above the guard: saturates
    assert _out_at(_case(suite, "paddle.ql.scale_1p1em30.rt0"), 1e-7) == 127
    # tie at S = 128: x = 2.519685 -> v = 2.5: rt0 2, rt1 3
    assert _out_at(_case(suite, "paddle.ql.ties.s128.b8.rt0"), 2.519685) == 2
    assert _out_at(_case(suite, "paddle.ql.ties.s128.b8.rt1"), 2.519685) == 3
    # lower saturation at S = 1: x = -1.003937 -> rt0 -128, rt1 -127
    assert _out_at(_case(suite, "paddle.ql.saturate.b8.rt0"), -1.003937) == -128
    assert _out_at(_case(suite, "paddle.ql.saturate.b8.rt1"), -1.003937) == -127
    # S = 0.5: c = 127 * (1/0.5) = 254; -0.3 -> fl(-76.2) -> -76; -0.0 and -1e-45 keep the sign
    special = _case(suite, "paddle.ql.special.b8.rt0")
    assert _out_at(special, -0.3) == -76
    for v in (-0.0, -1e-45):
        assert np.float32(_out_at(special, v)).view(np.uint32) == 0x80000000
    # fp8 e4m3: 465 -> NaN, 480 -> 448, NaN -> 448
    fp8 = _case(suite, "paddle.ql.fp8_q448.rt0")
    assert np.isnan(_out_at(fp8, 465.0))
    assert _out_at(fp8, 480.0) == 448
    x = fp8.inputs["x"]
    assert fp8.outputs["y"][np.flatnonzero(np.isnan(x))[0]] == 448
    # NaN at index 0 poisons the CPU abs-max; elsewhere it is skipped
    assert np.isnan(_case(suite, "paddle.fq.nan_first.rt0").outputs["scale"][0])
    assert _case(suite, "paddle.fq.nan_later.rt0").outputs["scale"][0] == 2.0


def test_hand_worked_onnx_and_torch_values(suite):
    # fp16: x = 34.28125, s = 0.53125: ORT (f32 division) 65, onnx.reference 64
    c = _case(suite, "onnx.q.fp16.int8.opset19")
    assert c.inputs["x"][0] == np.float16(34.28125) and c.outputs["y"][0] == 65
    assert c.expected_divergence["onnx-reference"]
    # threshold -> ONNX step is one float32 division
    c = _case(suite, "qparams.to_onnx.threshold.b8s")
    want = np.float32(c.inputs["scale"]) / np.float32(127)
    assert c.outputs["y_scale"].view(np.uint32).tolist() == want.view(np.uint32).tolist()
    # FBGEMM example: s = 0.00214854861, x = 0.273939937 gives 128 (x * inv = 127.5)
    c = _case(suite, "torch.q.ties.fbgemm.quint8.zp0")
    assert c.inputs["x"][0] == np.float32(0.273939937) and c.outputs["q"][0] == 128


def test_hand_worked_extended_onnx_values(suite):
    # subnormal scale 2^-148, x = k * 2^-149: x / s = k / 2 exactly, ties to even
    c = _case(suite, "onnx.q.scale_min_subnormal.int8")
    k = np.rint(c.inputs["x"].astype(np.float64) / 2.0 ** -149)
    for kk, want in ((3, 2), (5, 2), (7, 4), (-1, 0), (-3, -2)):
        assert c.outputs["y"][np.flatnonzero(k == kk)[0]] == want
    # int32 -> float32 rounds ties to even above 2^24, then a multiply by 1.0
    c = _case(suite, "onnx.dq.codes.int32.one")
    got = dict(zip(c.inputs["x"].tolist(), c.outputs["y"].tolist(), strict=True))
    assert got[2**24 + 1] == 2.0**24 and got[2**24 + 3] == 2.0**24 + 4
    assert got[2**30 + 64] == 2.0**30 and got[2**30 + 192] == 2.0**30 + 256
    # uint8 zero point 255 with NaN / -inf: qmin (0), not INT32_MIN + zp
    c = _case(suite, "onnx.q.edges.uint8.zp255.opset10")
    x = c.inputs["x"]
    assert c.outputs["y"][np.isnan(x)].tolist() == [0]
    assert c.outputs["y"][np.isneginf(x)].tolist() == [0]
    # e4m3fn ties to even: 17 -> 16 (0x58), 19 -> 20 (0x5A), 464 -> 448 (0x7E, even
    # mantissa) with saturate on or off; one ulp above 464 is 448 / NaN (0x7F); the sign
    # bit follows x
    above = np.nextafter(np.float32(464), np.float32(np.inf))
    for sat, want_above in ((1, 0x7E), (0, 0x7F)):
        c = _case(suite, f"onnx.q.float8e4m3fn.mids.sat{sat}")
        x, y = c.inputs["x"], c.outputs["y"]
        for value, want in ((17, 0x58), (19, 0x5A), (464, 0x7E), (above, want_above)):
            i = np.flatnonzero(np.abs(x) == value)[0]  # signs alternate in this case
            assert y[i] & 0x7F == want and y[i] >> 7 == int(x[i] < 0), value


def test_onnxruntime_executes_at_least_300_cases(suite):
    pytest.importorskip("onnxruntime")
    rep = run_suite(suite, get_target("onnxruntime"))
    executed = rep["total"] - rep["skipped"]
    assert executed >= 300, executed
    assert rep["failed"] == 0
    ops = {c["op"] for c in rep["cases"] if c["status"] != "skipped"}
    assert ops == {"onnx.quantize_linear", "onnx.dequantize_linear"}


# ----------------------------------------------------------------------------- targets


def test_reference_target_passes_everything(suite):
    rep = run_suite(suite, get_target("reference"))
    assert rep["failed"] == 0 and rep["passed"] == rep["total"] == len(suite.cases)


@pytest.mark.parametrize("name, module, minimum", [
    ("paddle", "paddle", 300),
    ("onnxruntime", "onnxruntime", 300),
    ("torch", "torch", 40),
    ("paddleslim", "paddle", 90),
])
def test_real_implementations_agree(suite, name, module, minimum):
    pytest.importorskip(module)
    rep = run_suite(suite, get_target(name))
    bad = [c for c in rep["cases"] if c["status"] == "failed"][:3]
    assert rep["failed"] == 0, bad
    assert rep["passed"] >= minimum
    assert rep["passed"] + rep["skipped"] + rep["expected_divergences"] == rep["total"]


def test_onnx_reference_divergences_are_reported_not_failed(suite):
    pytest.importorskip("onnx")
    rep = run_suite(suite, get_target("onnx-reference"))
    assert rep["failed"] == 0, [c for c in rep["cases"] if c["status"] == "failed"][:3]
    assert rep["expected_divergences"] >= 10
    by_id = suite.by_id()
    for d in rep["divergences"]:
        case = by_id[d["id"]]
        assert case.expected_divergence["onnx-reference"] == d["reason"]
        if "error" in d:  # onnx 1.17 has no DequantizeLinear before version 19
            assert case.op == "onnx.dequantize_linear" and case.params["opset"] < 19
            assert "DequantizeLinear" in d["error"], d["error"]
        else:
            assert d["mismatch"]["index"] is not None
    ids = {d["id"] for d in rep["divergences"]}
    assert "onnx.q.special.int8" in ids and "onnx.q.fp16.int8.opset19" in ids


def test_runner_separates_expected_divergence_and_failure(tmp_path, suite):
    good = _case(suite, "paddle.ql.scale_zero.rt0")
    wrong = {"y": good.outputs["y"] + np.float32(1)}
    cases = [
        Case(id="t.diverges", op=good.op, kind="kernel", family="t", params=good.params,
             inputs=good.inputs, outputs=wrong,
             expected_divergence={"reference": "a test of the runner"}),
        Case(id="t.fails", op=good.op, kind="kernel", family="t", params=good.params,
             inputs=good.inputs, outputs=wrong),
        Case(id="t.passes", op=good.op, kind="kernel", family="t", params=good.params,
             inputs=good.inputs, outputs=dict(good.outputs)),
    ]
    write_suite(cases, tmp_path, "test")
    rep = run_suite(load_suite(tmp_path), get_target("reference"))
    status = {c["id"]: c["status"] for c in rep["cases"]}
    assert status == {"t.diverges": "expected-divergence", "t.fails": "failed",
                      "t.passes": "passed"}
    assert (rep["failed"], rep["passed"], rep["expected_divergences"]) == (1, 1, 1)
    mm = rep["cases"][1]["mismatch"]
    assert mm["index"] == [0] and mm["actual"] == mm["expected"] - 1


def test_unknown_target_is_rejected(capsys):
    with pytest.raises(ValueError, match="unknown target 'tensorrt'"):
        get_target("tensorrt")
    assert cli(["conformance", "run", "--target", "tensorrt"]) == 2
    assert "unknown target 'tensorrt'" in capsys.readouterr().err
    assert set(TARGET_NAMES) == {"reference", "paddle", "paddleslim", "onnxruntime",
                                 "onnx-reference", "torch"}


def test_missing_package_skips_with_a_message(suite, monkeypatch):
    target = get_target("torch")
    monkeypatch.setattr(type(target), "requires", ("refquant_no_such_package",))
    rep = run_suite(suite, target, "torch.*")
    assert rep["failed"] == 0 and rep["skipped"] == rep["total"] > 0
    assert "refquant_no_such_package" in rep["target_missing"]


# ----------------------------------------------------------------------------- comparison


def test_bits_rule_is_bit_exact():
    a = np.array([0.0, 1.0, np.nan], np.float32)
    assert first_mismatch("y", a, a.copy()) is None
    neg = np.array([-0.0, 1.0, -np.nan], np.float32)
    mm = first_mismatch("y", a, neg)
    assert mm.index == (0,) and mm.count == 1
    assert (mm.expected_bits, mm.actual_bits) == ("0x00000000", "0x80000000")
    ulp = np.array([0.0, np.nextafter(np.float32(1), np.float32(2)), np.nan], np.float32)
    assert first_mismatch("y", a, ulp).index == (1,)
    assert "dtype" in first_mismatch("y", a, a.astype(np.float64)).reason
    assert "shape" in first_mismatch("y", a, a[:2]).reason


def test_decision_rule_accepts_only_below_the_bound():
    exp = {"scale": np.array(2.0, np.float32)}
    act = {"scale": np.array(2.5, np.float32)}
    ok, mm, note = compare_outputs(exp, act, {"rule": "decision", "margin": 1e-7, "bound": 1e-5})
    assert ok and mm is not None and "below the bound" in note
    ok, _, _ = compare_outputs(exp, act, {"rule": "decision", "margin": 1e-3, "bound": 1e-5})
    assert not ok
    ok, _, _ = compare_outputs(exp, act, {"rule": "decision", "margin": None, "bound": 1e-5})
    assert not ok


def test_decision_rule_per_channel_margins():
    exp = {"scale": np.array([1.0, 2.0, 3.0], np.float32)}
    rule = {"rule": "decision", "margin": [0.5, 1e-9, None], "bound": 1e-6}
    ok, mm, _ = compare_outputs(exp, {"scale": np.array([1.0, 2.5, 3.0], np.float32)}, rule)
    assert ok and mm.index == (1,)
    ok, _, _ = compare_outputs(exp, {"scale": np.array([1.0, 2.5, 3.5], np.float32)}, rule)
    assert not ok


def test_searching_observers_record_margin_and_bound(suite):
    searching = [c for c in suite.cases if c.op in (
        "observer.MSEObserver", "observer.EMDObserver", "observer.KLObserver",
        "observer.MSEChannelWiseWeightObserver")]
    assert len(searching) >= 40
    for c in searching:
        assert c.compare["rule"] == "decision" and c.compare["bound"] > 0
    assert any(c.compare["margin"] is not None for c in searching)
    plain = [c for c in suite.cases if c.op == "observer.AbsmaxObserver"]
    assert plain and all(c.compare == {"rule": "bits"} for c in plain)


# ----------------------------------------------------------------------------- bad input


def _copy_fixtures(tmp_path: Path) -> Path:
    dst = tmp_path / "fx"
    shutil.copytree(FIXTURES, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_tampered_fixture_is_refused(tmp_path, capsys):
    fx = _copy_fixtures(tmp_path)
    victim = fx / "data" / "onnx.q.special.int8.out.y.npy"
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 1
    victim.write_bytes(bytes(raw))
    with pytest.raises(FixtureError, match="checksum mismatch"):
        load_suite(fx)
    report = tmp_path / "report.json"
    assert cli(["conformance", "run", "--target", "reference", "--fixtures", str(fx),
                "--report", str(report)]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "onnx.q.special.int8" in err
    assert not report.exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m.update(version=2), "version 2 is not supported"),
    (lambda m: m.update(format="other"), "'format' must be"),
    (lambda m: m["cases"][0].pop("outputs"), "lacks"),
    (lambda m: m["cases"][0]["inputs"]["x"].update(file="../x.npy"), "directly under data/"),
    (lambda m: m["cases"][0]["inputs"]["x"].update(shape=[999]), "manifest says"),
    (lambda m: m.update(num_cases=1), "num_cases"),
])
def test_malformed_manifest_is_refused(tmp_path, mutate, message):
    fx = _copy_fixtures(tmp_path)
    manifest = json.loads((fx / "manifest.json").read_text())
    # make case 0 one with an input named x
    manifest["cases"].sort(key=lambda c: "x" not in c["inputs"])
    mutate(manifest)
    (fx / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FixtureError, match=message):
        load_suite(fx)


def test_missing_data_file_and_bad_json(tmp_path):
    fx = _copy_fixtures(tmp_path)
    (fx / "data" / "paddle.ql.scale_zero.rt0.in.x.npy").unlink()
    with pytest.raises(FixtureError, match="missing fixture file"):
        load_suite(fx)
    (fx / "manifest.json").write_text("{not json")
    with pytest.raises(FixtureError, match="not valid JSON"):
        load_suite(fx)
    with pytest.raises(FixtureError, match="no manifest.json"):
        load_suite(tmp_path / "nowhere")


def test_failed_generation_writes_nothing(tmp_path, suite):
    out = tmp_path / "gen"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    c = _case(suite, "paddle.ql.scale_zero.rt0")
    with pytest.raises(ValueError, match="duplicate case id"):
        write_suite([c, c], out, "test")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    bad = Case(id="Bad Id", op=c.op, kind="kernel", family="t", params={}, inputs={},
               outputs=dict(c.outputs))
    with pytest.raises(ValueError, match="case id must match"):
        write_suite([bad], out, "test")
    with pytest.raises(TypeError, match="dtype"):
        npy_bytes(np.array(["a"]))
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


# ----------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("sub", [[], ["generate"], ["run"], ["export"], ["check"]])
def test_help(sub, capsys):
    assert cli(["conformance", *sub, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_run_with_filter_writes_the_report(tmp_path, capsys):
    report = tmp_path / "r.json"
    rc = cli(["conformance", "run", "--target", "reference", "--filter", "qparams.to_onnx.*",
              "--report", str(report)])
    assert rc == 0
    rep = json.loads(report.read_text())
    assert {"target", "total", "passed", "failed", "skipped", "cases"} <= set(rep)
    assert rep["total"] == rep["passed"] == 4
    assert all(c["id"].startswith("qparams.to_onnx.") for c in rep["cases"])
    assert "target reference: 4 cases, 4 passed, 0 failed" in capsys.readouterr().out
    assert cli(["conformance", "run", "--target", "reference", "--filter", "nothing*"]) == 2


def test_export_then_check(tmp_path, suite, capsys):
    out = tmp_path / "export"
    assert cli(["conformance", "export", str(out)]) == 0
    assert {"manifest.json", "README.md", "SPEC.md", "data"} <= {p.name for p in out.iterdir()}
    assert len(load_suite(out).cases) == len(suite.cases)
    # exporting again over a non-empty directory is refused and changes nothing
    before = (out / "README.md").read_bytes()
    assert cli(["conformance", "export", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "README.md").read_bytes() == before

    # an "implementation" that writes the true Paddle answers for two cases
    res = tmp_path / "results"
    res.mkdir()
    a = _case(suite, "paddle.ql.ties.s128.b8.rt0")
    b = _case(suite, "onnx.q.ties.int8.s1")
    np.save(res / f"{a.id}.npy", a.outputs["y"])
    np.save(res / f"{b.id}.y.npy", b.outputs["y"])
    report = tmp_path / "check.json"
    assert cli(["conformance", "check", "--results", str(res), "--report", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert (rep["passed"], rep["failed"]) == (2, 0)
    assert rep["skipped"] == len(suite.cases) - 2

    # a one-ulp error is found, with both bit patterns
    y = a.outputs["y"].copy()
    k = int(np.flatnonzero(y != 0)[0])
    y[k] = np.nextafter(y[k], np.float32(np.inf))
    np.save(res / f"{a.id}.npy", y)
    assert cli(["conformance", "check", "--results", str(res), "--report", str(report)]) == 1
    rep = json.loads(report.read_text())
    bad = [c for c in rep["cases"] if c["status"] == "failed"]
    assert len(bad) == 1 and bad[0]["mismatch"]["index"] == [k]
    assert bad[0]["mismatch"]["expected_bits"] != bad[0]["mismatch"]["actual_bits"]


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "does not exist"),
    (lambda d: d.mkdir(), "holds no .npy results"),
    (lambda d: (d.mkdir(), (d / "paddle.ql.scale_zero.rt0.npy").write_bytes(b"junk")),
     "not a valid .npy"),
    (lambda d: (d.mkdir(), np.save(d / "no.such.case.npy", np.zeros(2))), "no case"),
    (lambda d: (d.mkdir(), (d / "notes.txt").write_text("x")), "unexpected entry"),
    (lambda d: (d.mkdir(), np.save(d / "paddle.ql.scale_zero.rt0.npy",
                                   np.array([object()]), allow_pickle=True)),
     "not a valid .npy"),
])
def test_malformed_results_directory(tmp_path, setup, message, capsys):
    res = tmp_path / "res"
    setup(res)
    report = tmp_path / "r.json"
    assert cli(["conformance", "check", "--results", str(res), "--report", str(report)]) == 2
    assert message in capsys.readouterr().err
    assert not report.exists()


def test_check_reports_wrong_dtype_as_failure(tmp_path, suite):
    res = tmp_path / "res"
    res.mkdir()
    c = _case(suite, "paddle.ql.scale_zero.rt0")
    np.save(res / f"{c.id}.npy", c.outputs["y"].astype(np.float64))
    assert cli(["conformance", "check", "--results", str(res)]) == 1


def test_runner_does_not_modify_inputs(suite):
    c = _case(suite, "onnx.q.ties.int8.s1")
    before = c.inputs["x"].copy()
    run_suite(suite, get_target("reference"), c.id)
    assert not c.inputs["x"].flags.writeable
    assert np.array_equal(before.view(np.uint32), c.inputs["x"].view(np.uint32))


def test_installed_fixtures_are_found_through_package_data(tmp_path, monkeypatch):
    import importlib.resources

    fx = _copy_fixtures(tmp_path)
    real = importlib.resources.files

    def files(pkg):
        return fx if pkg == "refquant._fixtures" else real(pkg)

    monkeypatch.setattr(importlib.resources, "files", files)
    assert default_fixture_dir() == fx
    monkeypatch.setattr(importlib.resources, "files", lambda pkg: tmp_path / "empty")
    # without package data, the fallback is the conformance/ directory beside the package
    # (the repository's when refquant runs from a source checkout)
    from refquant.conformance import suite as suite_module

    assert default_fixture_dir() == suite_module._source_checkout_dir()


def test_the_refquant_command_dispatches_to_conformance(capsys):
    rq_cli = pytest.importorskip("refquant.cli")
    assert rq_cli.main(["conformance", "run", "--target", "reference", "--filter",
                        "qparams.to_onnx.*"]) == 0
    assert "4 passed" in capsys.readouterr().out
    assert rq_cli.main(["conformance", "run", "--target", "nope"]) == 2


def test_no_framework_imported_by_the_package():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import refquant.conformance.cli, refquant.conformance.runner, refquant.testing\n"
        "from refquant.conformance.targets import get_target, TARGET_NAMES\n"
        "from refquant.conformance.suite import generate_cases\n"
        "[get_target(t) for t in TARGET_NAMES]\n"
        "generate_cases()\n"
        "bad = [m for m in ('paddle', 'paddleslim', 'onnx', 'onnxruntime', 'torch',"
        " 'hypothesis') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
