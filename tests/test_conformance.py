"""The conformance suite: fixtures, regeneration, runner, targets, CLI and bad input.

Expected values come from the real implementations (the paddle / onnxruntime / torch
targets run the frameworks' own kernels on every fixture) and from hand-worked numbers
(the kernel semantics in docs/kernels/paddle.md, onnx.md and torch.md); never from
refquant's own output. The manifest checksum is recomputed here as refquant/_fixtures/SPEC.md
states it, not with refquant's function.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from refquant.cli import main as cli
from refquant.conformance.compare import compare_outputs, first_mismatch
from refquant.conformance.format import (
    Case,
    FixtureError,
    load_suite,
    npy_bytes,
    write_suite,
)
from refquant.conformance.runner import run_suite
from refquant.conformance.suite import default_fixture_dir, generate
from refquant.conformance.targets import TARGET_NAMES, get_target
from refquant.testing import DISTRIBUTIONS

FIXTURES = default_fixture_dir()


@pytest.fixture(scope="module")
def suite():
    return load_suite(FIXTURES)


def _case(suite, cid: str) -> Case:
    return suite.by_id()[cid]


# ONNX QuantizeLinear by hand (docs/kernels/onnx.md): y = saturate(RNE(x / 1.0) + 0) on int8
HAND_X = np.array([0.5, 1.5, 2.5, -2.5, 300.0, -0.0], np.float32)
HAND_Y = np.array([0, 2, 2, -2, 127, 0], np.int8)


def _hand_case(cid: str, y: np.ndarray = HAND_Y, **extra) -> Case:
    return Case(id=cid, op="onnx.quantize_linear", kind="kernel", family="hand",
                params={"axis": 1, "block_size": 0, "opset": 21, "output_dtype": "int8",
                        "saturate": True},
                inputs={"x": HAND_X, "y_scale": np.array(1.0, np.float32),
                        "y_zero_point": np.array(0, np.int8)},
                outputs={"y": np.asarray(y, np.int8)}, **extra)


def _dump(manifest: dict) -> bytes:
    """The manifest text as SPEC.md section 2 formats it."""
    return (json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def _reseal(manifest: dict) -> bytes:
    """Serialise with a correct manifest_sha256, computed as SPEC.md section 2.1 states."""
    text = _dump({**manifest, "manifest_sha256": "0" * 64})
    return text.replace(b"0" * 64, hashlib.sha256(text).hexdigest().encode(), 1)


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


# Hand-worked numbers from docs/kernels/*.md (independent of refquant's code)


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
    assert ops == {"onnx.quantize_linear", "onnx.dequantize_linear"} | {
        f"observer.onnxruntime.{c}Calibrater" for c in ("MinMax", "Entropy", "Percentile",
                                                         "Distribution")}


# ----------------------------------------------------------------------------- targets


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


def test_runner_separates_expected_divergence_and_failure(tmp_path):
    wrong = HAND_Y.copy()
    wrong[0] += 1
    cases = [
        _hand_case("t.diverges", wrong,
                   expected_divergence={"reference": "a test of the runner"}),
        _hand_case("t.fails", wrong),
        _hand_case("t.passes"),
    ]
    write_suite(cases, tmp_path, "test")
    rep = run_suite(load_suite(tmp_path), get_target("reference"))
    status = {c["id"]: c["status"] for c in rep["cases"]}
    assert status == {"t.diverges": "expected-divergence", "t.fails": "failed",
                      "t.passes": "passed"}
    assert (rep["failed"], rep["passed"], rep["expected_divergences"]) == (1, 1, 1)
    mm = rep["cases"][1]["mismatch"]
    assert mm["index"] == [0] and mm["actual"] == mm["expected"] - 1 == 0


def test_unknown_target_is_rejected(capsys):
    with pytest.raises(ValueError, match="unknown target 'tensorrt'"):
        get_target("tensorrt")
    assert cli(["conformance", "run", "--target", "tensorrt"]) == 2
    assert "unknown target 'tensorrt'" in capsys.readouterr().err
    assert set(TARGET_NAMES) == {"reference", "paddle", "paddleslim", "onnxruntime",
                                 "onnx-reference", "torch", "torchao", "tensorflow",
                                 "litert", "openvino", "onnxruntime-int8", "nncf"}


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


def _fixture_manifest(tmp_path: Path) -> tuple[Path, dict]:
    """A fixture directory with its own manifest.json and the shipped data/ (linked: the
    tests here change only the manifest)."""
    fx = tmp_path / "fx"
    fx.mkdir()
    (fx / "data").symlink_to(FIXTURES / "data", target_is_directory=True)
    raw = (FIXTURES / "manifest.json").read_bytes()
    (fx / "manifest.json").write_bytes(raw)
    manifest = json.loads(raw)
    assert _dump(manifest) == raw  # re-serialising changes no byte: tampering is surgical
    return fx, manifest


def _by_id(manifest: dict, cid: str) -> dict:
    return next(c for c in manifest["cases"] if c["id"] == cid)


def test_shipped_manifest_checksum_follows_the_spec():
    raw = (FIXTURES / "manifest.json").read_bytes()
    stored = json.loads(raw)["manifest_sha256"]
    assert raw.count(stored.encode()) == 1
    assert hashlib.sha256(raw.replace(stored.encode(), b"0" * 64)).hexdigest() == stored


ONNX_CASE = "onnx.q.ties.int8.s0"
DECISION_CASE = "obs.mseobserver.canonical.normal.n3"
CHANNEL_CASE = "obs.msechannelwiseweightobserver.canonical.normal.n2"

TAMPERINGS = {
    "inputs type": (ONNX_CASE, lambda c: c.update(inputs=[1, 2])),
    "primary type": (ONNX_CASE, lambda c: c.update(primary=0)),
    "tags type": (ONNX_CASE, lambda c: c.update(tags="onnx")),
    "shape type": (ONNX_CASE, lambda c: c["inputs"]["x"].update(shape="400")),
    "shape value": (ONNX_CASE, lambda c: c["inputs"]["x"].update(shape=[999])),
    "margin": (DECISION_CASE, lambda c: c["compare"].update(margin=0.0)),
    "bound": (DECISION_CASE, lambda c: c["compare"].update(bound=1e9)),
    "op renamed": (ONNX_CASE, lambda c: c.update(op="onnx.quantize_linear_v2")),
    "description": (ONNX_CASE, lambda c: c.update(description=c["description"] + ".")),
    "file sha256": (ONNX_CASE, lambda c: c["outputs"]["y"].update(sha256="0" * 64)),
}


@pytest.mark.parametrize("what", sorted(TAMPERINGS))
def test_every_manifest_tampering_is_a_checksum_mismatch(tmp_path, what, capsys):
    fx, manifest = _fixture_manifest(tmp_path)
    cid, mutate = TAMPERINGS[what]
    mutate(_by_id(manifest, cid))
    (fx / "manifest.json").write_bytes(_dump(manifest))
    with pytest.raises(FixtureError, match="checksum mismatch: manifest_sha256 says"):
        load_suite(fx)
    assert cli(["conformance", "run", "--target", "reference", "--fixtures", str(fx)]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "Traceback" not in err


def test_tampered_bound_cannot_make_a_wrong_result_pass(tmp_path, suite, capsys):
    case = _case(suite, DECISION_CASE)
    res = tmp_path / "res"
    res.mkdir()
    np.save(res / f"{case.id}.npy", case.outputs["scale"] * np.float32(2))
    assert cli(["conformance", "check", "--results", str(res)]) == 1  # honest fixtures
    fx, manifest = _fixture_manifest(tmp_path)
    _by_id(manifest, DECISION_CASE)["compare"]["bound"] = 1e9
    (fx / "manifest.json").write_bytes(_dump(manifest))
    capsys.readouterr()
    assert cli(["conformance", "check", "--results", str(res), "--fixtures", str(fx)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


SCHEMA_VIOLATIONS = [
    (ONNX_CASE, lambda c: c.update(inputs=[1, 2]), "'inputs' must be a JSON object"),
    (ONNX_CASE, lambda c: c.update(primary=0), "'primary' must be a string"),
    (ONNX_CASE, lambda c: c.update(primary="z"), "'primary' 'z' is not among its outputs"),
    (ONNX_CASE, lambda c: c.update(tags="onnx"), "'tags' must be a list of strings"),
    (ONNX_CASE, lambda c: c["inputs"]["x"].update(shape="400"),
     "'shape' must be a list of non-negative integers"),
    (ONNX_CASE, lambda c: c["inputs"]["x"].update(shape=[True]),
     "'shape' must be a list of non-negative integers"),
    (ONNX_CASE, lambda c: c["inputs"]["x"].update(dtype="complex64"), "'dtype' must be one of"),
    (ONNX_CASE, lambda c: c["inputs"]["x"].update(file="../x.npy"), "'file' must be"),
    (ONNX_CASE, lambda c: c["outputs"]["y"].update(sha256="XYZ"), "'sha256' must be 64"),
    (ONNX_CASE, lambda c: c.update(op="onnx.quantize_linear_v2"),
     "unknown op 'onnx.quantize_linear_v2'"),
    (ONNX_CASE, lambda c: c.update(op="paddle.fake_quantize_abs_max"),
     "outputs ['y'] are not op 'paddle.fake_quantize_abs_max'"),
    (ONNX_CASE, lambda c: c.update(kind="observer"), "is of kind 'kernel'"),
    (ONNX_CASE, lambda c: c.update(profile="canonical"), "'profile' of a kernel case must be"),
    (ONNX_CASE, lambda c: c["params"].update(axis=[1]), "params['axis'] must be"),
    (ONNX_CASE, lambda c: c.update(extra=1), "unknown keys ['extra']"),
    (ONNX_CASE, lambda c: c.pop("outputs"), "lacks ['outputs']"),
    (ONNX_CASE, lambda c: c.update(expected_divergence={"tensorrt": "x"}),
     "'expected_divergence' must map target names"),
    (ONNX_CASE, lambda c: c.update(compare={"rule": "bits", "bound": 1.0}), "unknown keys"),
    (DECISION_CASE, lambda c: c["compare"].update(margin="0.5"), "'margin' must be null"),
    (DECISION_CASE, lambda c: c["compare"].update(margin=-1.0), "'margin' must be null"),
    (DECISION_CASE, lambda c: c["compare"].update(bound=-1), "'bound' must be a finite"),
    (DECISION_CASE, lambda c: c["compare"].update(bound="1e9"), "'bound' must be a finite"),
    (DECISION_CASE, lambda c: c["compare"].update(rule="close"), "'rule' must be one of"),
    (DECISION_CASE, lambda c: c.update(profile="no-such-profile"), "'profile' of a observer case"),
    (CHANNEL_CASE, lambda c: c["compare"]["margin"].pop(), "as a list must hold"),
]


@pytest.mark.parametrize("cid, mutate, message", SCHEMA_VIOLATIONS)
def test_resealed_schema_violation_is_a_clear_error(tmp_path, cid, mutate, message, capsys):
    fx, manifest = _fixture_manifest(tmp_path)
    mutate(_by_id(manifest, cid))
    (fx / "manifest.json").write_bytes(_reseal(manifest))
    with pytest.raises(FixtureError, match=f"case {re.escape(cid)}[: ].*{re.escape(message)}"):
        load_suite(fx)
    report = tmp_path / "r.json"
    assert cli(["conformance", "run", "--target", "reference", "--fixtures", str(fx),
                "--report", str(report)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not report.exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m.update(version=1), "version 1 is not supported"),
    (lambda m: m.update(version=True), "version True is not supported"),
    (lambda m: m.update(format="other"), "'format' must be"),
    (lambda m: m.update(num_cases=1), "num_cases says 1"),
    (lambda m: m.update(cases={}), "'cases' must be a list"),
    (lambda m: m.update(generator=None), "'generator' must be a string"),
    (lambda m: m.update(extra=1), "unknown keys ['extra']"),
    (lambda m: m["cases"].append(m["cases"][0]), "duplicate case id"),
])
def test_resealed_top_level_violation_is_a_clear_error(tmp_path, mutate, message):
    fx, manifest = _fixture_manifest(tmp_path)
    mutate(manifest)
    (fx / "manifest.json").write_bytes(_reseal(manifest))
    with pytest.raises(FixtureError, match=re.escape(message)):
        load_suite(fx)


def test_manifest_checksum_must_be_present_and_unique(tmp_path):
    fx, manifest = _fixture_manifest(tmp_path)
    stored = manifest.pop("manifest_sha256")
    (fx / "manifest.json").write_bytes(_dump(manifest))
    with pytest.raises(FixtureError, match="'manifest_sha256' must be 64 lowercase hex"):
        load_suite(fx)
    manifest["manifest_sha256"] = stored
    _by_id(manifest, ONNX_CASE)["description"] = stored  # the value now occurs twice
    (fx / "manifest.json").write_bytes(_dump(manifest))
    with pytest.raises(FixtureError, match="occurs 2 times"):
        load_suite(fx)
    text = re.sub(rb'"bound": [0-9.e+-]+', b'"bound": NaN', _reseal(manifest), count=1)
    (fx / "manifest.json").write_bytes(text)
    with pytest.raises(FixtureError, match="not valid JSON"):
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


def test_failed_generation_writes_nothing(tmp_path):
    out = tmp_path / "gen"
    out.mkdir()
    c = _hand_case("t.one")
    with pytest.raises(ValueError, match="duplicate case id"):
        write_suite([c, c], out, "test")
    bad = _hand_case("Bad Id")
    with pytest.raises(ValueError, match="case id must match"):
        write_suite([bad], out, "test")
    with pytest.raises(FixtureError, match="unknown op"):
        write_suite([Case(**{**c.__dict__, "op": "no.such.op"})], out, "test")
    with pytest.raises(TypeError, match="dtype"):
        npy_bytes(np.array(["a"]))
    assert list(out.iterdir()) == []
    write_suite([c], out, "test")  # an existing empty directory is a valid destination
    assert load_suite(out).cases[0].outputs["y"].tolist() == HAND_Y.tolist()


def _user_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_generate_refuses_a_non_empty_directory_and_keeps_its_files(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "data").mkdir(parents=True)
    (out / "data" / "results.npy").write_bytes(npy_bytes(np.arange(3.0)))
    (out / "notes.txt").write_text("mine")
    before = _user_files(out)
    assert cli(["conformance", "generate", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "not empty" in err and "Traceback" not in err
    assert _user_files(out) == before
    with pytest.raises(FileExistsError, match="not empty"):
        write_suite([_hand_case("t.one")], out, "test")
    assert _user_files(out) == before
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    assert cli(["conformance", "generate", "--out", str(afile)]) == 2
    assert "not a directory" in capsys.readouterr().err and afile.read_text() == "x"
    assert cli(["conformance", "generate", "--out", ""]) == 2
    assert "argument --out" in capsys.readouterr().err


def test_regenerating_in_place_replaces_only_refquant_files(tmp_path, monkeypatch):
    from refquant.conformance import suite as suite_module

    repo = tmp_path / "repo"
    fx = repo / "refquant" / "_fixtures"
    shutil.copytree(FIXTURES, fx, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "pyproject.toml").write_text("")
    monkeypatch.setattr(suite_module, "_source_checkout_dir", lambda: fx)
    stray = fx / "data" / "my-results.npy"
    stray.write_bytes(b"mine")
    manifest = (fx / "manifest.json").read_bytes()
    with pytest.raises(FileExistsError, match="my-results.npy"):
        generate()
    assert stray.read_bytes() == b"mine" and (fx / "manifest.json").read_bytes() == manifest
    stray.unlink()
    assert generate() == fx
    assert (fx / "manifest.json").read_bytes() == (FIXTURES / "manifest.json").read_bytes()
    assert (fx / "SPEC.md").read_bytes() == (FIXTURES / "SPEC.md").read_bytes()
    (repo / "pyproject.toml").unlink()  # not a source checkout: an output directory is needed
    with pytest.raises(ValueError, match="--out"):
        generate()


# ----------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("sub", [[], ["generate"], ["run"], ["export"], ["check"]])
def test_help(sub, capsys):
    assert cli(["conformance", *sub, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_run_exit_codes_and_report(tmp_path, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    write_suite([_hand_case("hand.a"), _hand_case("hand.b")], good, "test")
    wrong = HAND_Y.copy()
    wrong[2] = 3  # 2.5 rounds half to even: 2
    write_suite([_hand_case("hand.a"), _hand_case("hand.b", wrong)], bad, "test")
    report = tmp_path / "r.json"
    assert cli(["conformance", "run", "--target", "reference", "--fixtures", str(good),
                "--report", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert {"target", "total", "passed", "failed", "skipped", "cases"} <= set(rep)
    assert (rep["total"], rep["passed"]) == (2, 2)
    assert "target reference: 2 cases, 2 passed, 0 failed" in capsys.readouterr().out
    assert cli(["conformance", "run", "--target", "reference", "--fixtures", str(bad),
                "--filter", "hand.b", "--report", str(report)]) == 1
    rep = json.loads(report.read_text())
    assert rep["total"] == rep["failed"] == 1 and rep["cases"][0]["mismatch"]["index"] == [2]
    assert cli(["conformance", "run", "--target", "reference", "--fixtures", str(good),
                "--filter", "nothing*"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["run", "--target", "reference", "--report", "{tmp}"], "--report"),
    (["run", "--target", "reference", "--report", "{tmp}/afile/r.json"], "--report"),
    (["run", "--target", "reference", "--report", ""], "argument --report"),
    (["run", "--target", "reference", "--fixtures", "{tmp}/none"], "no manifest.json"),
    (["run", "--target", "tensorrt"], "--target"),
    (["run"], "--target"),
    (["check", "--results", "{tmp}/none"], "does not exist"),
    (["check", "--results", "{tmp}", "--report", "{tmp}"], "--report"),
    (["export", ""], "argument dir"),
    (["export", "{tmp}/afile"], "not empty"),
    (["generate", "--out", "{tmp}"], "--out"),
])
def test_conformance_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "afile").write_text("x")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert cli(["conformance", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert (tmp_path / "afile").read_text() == "x"


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


def test_the_refquant_command_dispatches_to_conformance(tmp_path, capsys):
    rq_cli = pytest.importorskip("refquant.cli")
    write_suite([_hand_case("hand.a")], tmp_path / "fx", "test")
    assert rq_cli.main(["conformance", "run", "--target", "reference", "--fixtures",
                        str(tmp_path / "fx")]) == 0
    assert "1 passed" in capsys.readouterr().out
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
