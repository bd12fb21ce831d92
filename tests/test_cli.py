"""The refquant command: outputs, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refquant.cli import main


@pytest.fixture()
def npy(tmp_path):
    x = np.random.default_rng(3).standard_normal((3, 40, 50)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path, x


def test_calibrate_json_absmax_matches_numpy(npy, capsys):
    path, x = npy
    assert main(["calibrate", str(path), "--observer", "AbsmaxObserver", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = np.float32(np.abs(x).max())
    assert out["scale_bits"] == int(expected.view(np.uint32))
    assert (out["qmin"], out["qmax"], out["zero_point"]) == (-128, 127, 0)


def test_calibrate_batches_equals_concatenation_for_canonical_avg(npy, capsys):
    path, x = npy
    assert main(["calibrate", str(path), "--observer", "avg", "--batches", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # canonical AVG: correctly rounded mean of every sample's abs-max over all batches
    per_sample = np.abs(x.reshape(-1, x.shape[-1])).max(axis=1).astype(np.float64)
    from fractions import Fraction

    exact = sum(Fraction(float(v)) for v in per_sample) / len(per_sample)
    assert out["scale"] == float(np.float32(float(exact)))


def test_calibrate_channel_wise_axis(npy, capsys):
    path, x = npy
    code = main(["calibrate", str(path), "--observer", "AbsMaxChannelWiseWeightObserver",
                 "--axis", "1", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scale"] == np.abs(x).max(axis=(0, 2)).astype(np.float32).tolist()


def test_calibrate_human_output_and_profile(npy, capsys):
    path, _ = npy
    assert main(["calibrate", str(path), "--observer", "MSEObserver", "--profile",
                 "paddleslim", "--bits", "4"]) == 0
    text = capsys.readouterr().out
    assert "MSEObserver (profile=paddleslim, bits=4)" in text and "margin" in text


def _bad_files(tmp_path):
    files = {}
    files["text"] = tmp_path / "notes.npy"
    files["text"].write_text("1.0, 2.0, 3.0\n")
    files["npz"] = tmp_path / "arrays.npz"
    np.savez(files["npz"], a=np.ones(3, np.float32))
    files["objects"] = tmp_path / "objects.npy"
    np.save(files["objects"], np.array([object()]), allow_pickle=True)
    files["ints"] = tmp_path / "ints.npy"
    np.save(files["ints"], np.arange(4))
    files["empty"] = tmp_path / "empty.npy"
    files["empty"].write_bytes(b"")
    files["truncated"] = tmp_path / "truncated.npy"
    np.save(files["truncated"], np.ones(100, np.float32))
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:200])
    files["scalar"] = tmp_path / "scalar.npy"
    np.save(files["scalar"], np.float32(2.0))
    files["nobatch"] = tmp_path / "nobatch.npy"
    np.save(files["nobatch"], np.zeros((0, 4), np.float32))
    files["zeros"] = tmp_path / "zeros.npy"
    np.save(files["zeros"], np.zeros((4, 10), np.float32))
    files["half"] = tmp_path / "half.npy"
    np.save(files["half"], np.ones((4, 10), np.float16))
    files["afile"] = tmp_path / "afile.txt"
    files["afile"].write_text("mine")
    files["dir"] = tmp_path / "adir"
    files["dir"].mkdir()
    return files


BAD_INPUT = [
    (["calibrate", "missing.npy"], "FILE 'missing.npy' does not exist"),
    (["calibrate", "{dir}"], "is a directory"),
    (["calibrate", "{text}"], "is a text file"),
    (["calibrate", "{npz}"], "zip archive (an .npz"),
    (["calibrate", "{objects}"], "array of Python objects"),
    (["calibrate", "{ints}"], "holds a int64 array"),
    (["calibrate", "{empty}"], "is empty"),
    (["calibrate", "{truncated}"], "FILE"),
    (["calibrate", ""], "argument FILE.npy"),
    (["calibrate", "{npy}", "--observer", "Nope"], "--observer must be one of"),
    (["calibrate", "{npy}", "--bits", "1"], "argument --bits: must be an integer in [2, 16]"),
    (["calibrate", "{npy}", "--bits", "99"], "argument --bits"),
    (["calibrate", "{npy}", "--bits", "8.5"], "argument --bits"),
    (["calibrate", "{npy}", "--observer", "HistObserver", "--bits", "16"], "--bits 16"),
    (["calibrate", "{npy}", "--observer", "AbsMaxChannelWiseWeightObserver", "--axis", "7"],
     "axis"),
    (["calibrate", "{npy}", "--axis", "a"], "argument --axis"),
    (["calibrate", "{scalar}", "--batches"], "--batches"),
    (["calibrate", "{nobatch}", "--batches"], "--batches"),
    (["calibrate", "{scalar}", "--observer", "AVGObserver", "--profile", "paddleslim"],
     "--profile paddleslim: AVGObserver fails"),
    (["calibrate", "{zeros}", "--observer", "KLObserver", "--profile", "paddleslim"],
     "--profile paddleslim: KLObserver fails"),
    (["calibrate", "{half}", "--observer", "MSEObserver", "--profile", "paddleslim"],
     "--profile paddleslim: MSEObserver fails"),
    (["plot", "{npy}", "--bits", "99"], "argument --bits"),
    (["plot", "{npy}", "--bits", "16", "--out", "{tmp}/h.png"], "--bits 16"),
    (["plot", "{scalar}", "--batches", "--out", "{tmp}/h.png"], "--batches"),
    (["plot", "{text}", "--out", "{tmp}/h.png"], "is a text file"),
    (["plot", "{npy}", "--out", "{dir}"], "--out"),
    (["plot", "{npy}", "--out", "{afile}/h.png"], "--out"),
    (["plot", "{npy}", "--out", "{tmp}/none/h.png"], "--out"),
    (["plot", "{npy}", "--out", ""], "--out"),
    (["plot", "{npy}", "--out", "{tmp}/h.xyz"], "--out"),
    (["plot", "{npy}", "--out", "{tmp}/h"], "--out"),
    (["demo", "--out", "{afile}"], "--out"),
    (["demo", "--out", "{afile}/sub"], "--out"),
    (["demo", "--out", ""], "argument --out"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(npy, tmp_path, capsys, argv, message):
    path, x = npy
    files = _bad_files(tmp_path)
    before = {p: p.read_bytes() for p in files.values() if p.is_file()}
    argv = [a.format(npy=path, tmp=tmp_path, **files) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "allow_pickle" not in err and "dtype <U" not in err
    assert not (tmp_path / "h.png").exists()
    assert {p: p.read_bytes() for p in files.values() if p.is_file()} == before
    assert np.array_equal(np.load(path), x)


def test_unwritable_out_directory_is_exit_2(npy, tmp_path, capsys):
    path, _ = npy
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running with privileges that ignore directory permissions")
        assert main(["plot", str(path), "--out", str(ro / "h.png")]) == 2
        assert main(["demo", "--out", str(ro / "sub")]) == 2
        err = capsys.readouterr().err
        assert err.count("--out") == 2 and "Traceback" not in err
    finally:
        ro.chmod(0o700)


def test_a_write_that_fails_late_is_exit_2(npy, tmp_path, capsys, monkeypatch):
    path, _ = npy
    out = tmp_path / "h.png"

    def refuse(self, data):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    assert main(["plot", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "Permission denied" in err and "Traceback" not in err


def test_usage_errors_exit_2_and_help_exits_0(capsys):
    assert main([]) == 2
    assert main(["calibrate"]) == 2  # missing FILE: argparse usage error
    assert main(["--help"]) == 0
    assert "calibrate" in capsys.readouterr().out


def test_plot_writes_png(npy, tmp_path):
    path, x = npy
    before = x.copy()
    out = tmp_path / "h.png"
    assert main(["plot", str(path), "--out", str(out), "--batches"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.load(path), before)


@pytest.mark.parametrize(("suffix", "magic"), [
    (".pdf", b"%PDF-"),
    (".PDF", b"%PDF-"),
    (".svg", b"<?xml"),
    (".eps", b"%!PS-Adobe-3.0 EPSF"),
    (".jpg", b"\xff\xd8\xff"),
])
def test_plot_writes_the_format_its_suffix_names(npy, tmp_path, suffix, magic):
    path, _ = npy
    out = tmp_path / f"h{suffix}"
    assert main(["plot", str(path), "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data.startswith(magic) and not data.startswith(b"\x89PNG")
    if suffix == ".svg":
        assert b"<svg" in data[:2000]


def test_plot_paddleslim_failure_skips_that_observer(tmp_path, capsys):
    zeros = tmp_path / "zeros.npy"
    np.save(zeros, np.zeros((4, 10), np.float32))
    out = tmp_path / "z.png"
    assert main(["plot", str(zeros), "--profile", "paddleslim", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipping KLObserver" in err and "Traceback" not in err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_script_runs_as_a_process(npy, tmp_path):
    path, _ = npy
    for argv in (["calibrate", str(path), "--bits", "99"],
                 ["plot", str(path), "--out", str(tmp_path)]):
        res = subprocess.run([sys.executable, "-m", "refquant.cli", *argv],
                             capture_output=True, text=True)
        assert res.returncode == 2
        assert res.stderr.startswith(f"refquant {argv[0]}: error: ")
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def _fake_walkthrough(checks):
    def run(out, quick=False):
        out.mkdir(parents=True, exist_ok=True)
        return {"observers": [], "kernel_checks": checks, "plots": []}
    return run


@pytest.mark.parametrize(("checks", "code"), [
    ({"a": {"total": 3, "passed": 3, "failed": 0, "expected_divergences": 0, "skipped": 0}}, 0),
    ({"a": {"total": 3, "passed": 2, "failed": 1, "expected_divergences": 0, "skipped": 0}}, 1),
    # a reason that mentions failures is not a failure: only the counts decide
    ({"a": {"not_run": "target 'a' needs 'x' (import failed, 2 failed)"}}, 0),
])
def test_demo_exit_code_comes_from_the_counts(tmp_path, capsys, monkeypatch, checks, code):
    import refquant.cli as cli
    import refquant.demo as demo

    monkeypatch.setattr(cli, "_ptq_demo", lambda: None)
    monkeypatch.setattr(demo, "run_reference_walkthrough", _fake_walkthrough(checks))
    assert main(["demo", "--out", str(tmp_path / "d")]) == code
    out = capsys.readouterr().out
    assert ("conformance failures against: a" in out) == (code == 1)


@pytest.mark.parametrize(("drop", "code"), [(0.01, 0), (0.0101, 1)])
def test_demo_exit_code_follows_the_best_int8_drop(tmp_path, capsys, monkeypatch, drop, code):
    import refquant.cli as cli
    import refquant.demo as demo

    def ptq(out, quick=False):
        return {"float_acc": 0.9, "plots": [],
                "best": {"name": "X/canonical", "int8_acc": 0.9 - drop, "drop": drop,
                         "within_1_point": drop <= 0.01}}

    monkeypatch.setattr(cli, "_ptq_demo", lambda: ptq)
    monkeypatch.setattr(demo, "run_reference_walkthrough", _fake_walkthrough({}))
    assert main(["demo", "--out", str(tmp_path / "d")]) == code
    assert ("more than 1 point below float" in capsys.readouterr().out) == (code == 1)
