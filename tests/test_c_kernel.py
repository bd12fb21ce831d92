"""The cross-language path: examples/c_kernel/ (ONNX QuantizeLinear in C, and a ties-away
variant) is built with the system C compiler, run on the exported conformance cases by its
harness, checked with ``refquant conformance check --results`` and diagnosed with
``refquant diagnose --results``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from refquant.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "c_kernel"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


@pytest.fixture(scope="module")
def built(tmp_path_factory):  # type: ignore[no-untyped-def]
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler on PATH (cc, gcc or clang): the C kernel cannot be built")
    root = tmp_path_factory.mktemp("c_kernel")
    subprocess.run(["sh", str(EXAMPLE / "build.sh"), str(root / "build")], check=True,
                   env={**os.environ, "CC": cc}, capture_output=True)
    assert main(["conformance", "export", str(root / "cases")]) == 0
    return root


def _run(built: Path, name: str, *flags: str) -> Path:
    out = built / name
    subprocess.run([sys.executable, str(EXAMPLE / "run_cases.py"), str(built / "cases"),
                    str(out), "--binary", str(built / "build" / "quantize_linear"), *flags],
                   check=True, capture_output=True)
    return out


def test_c_kernel_passes_conformance_and_is_named_onnx(built, capsys):
    res = _run(built, "results")
    capsys.readouterr()
    report = built / "check.json"
    assert main(["conformance", "check", "--results", str(res), "--fixtures",
                 str(built / "cases"), "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    ops = {c["op"] for c in r["cases"] if c["status"] == "passed"}
    assert r["failed"] == 0 and r["passed"] >= 150
    assert "onnx.quantize_linear" in ops and "diagnose.quantize.rounding" in ops
    capsys.readouterr()
    assert main(["diagnose", "--results", str(res), "--fixtures", str(built / "cases"),
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["matches_reference"] and d["axes"]["rounding"]["variant"] == "rne"


def test_c_ties_away_variant_is_named(built, capsys):
    res = _run(built, "results-away", "--ties-away")
    capsys.readouterr()
    assert main(["conformance", "check", "--results", str(res), "--fixtures",
                 str(built / "cases")]) == 1
    capsys.readouterr()
    assert main(["diagnose", "--results", str(res), "--fixtures", str(built / "cases"),
                 "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["explained"]
    assert d["deviations"] == [{"axis": "rounding", "reference": "rne", "actual": "half_away"}]
    assert main(["diagnose", "--results", str(res), "--fixtures", str(built / "cases")]) == 1
    assert "rounding: half_away instead of rne" in capsys.readouterr().out
