"""The refquant command: outputs, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calibrate", "missing.npy"], "does not exist"),
        (["calibrate", "{npy}", "--observer", "Nope"], "--observer must be one of"),
        (["calibrate", "{npy}", "--bits", "1"], "quant_bits must be in [2, 16]"),
        (["calibrate", "{npy}", "--observer", "AbsMaxChannelWiseWeightObserver", "--axis", "7"],
         "axis"),
        (["calibrate", "{bad}"], "not a readable .npy"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(npy, tmp_path, capsys, argv, message):
    path, _ = npy
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    argv = [a.format(npy=path, bad=bad) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


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


def test_console_script_runs_as_a_process(npy):
    path, _ = npy
    res = subprocess.run([sys.executable, "-m", "refquant.cli", "calibrate", str(path),
                          "--bits", "99"], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("refquant calibrate: error: quant_bits")
