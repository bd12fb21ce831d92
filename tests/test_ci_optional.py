"""The REFQUANT_REQUIRE_OPTIONAL hook of tests/conftest.py, run on throwaway test files.

Each check runs pytest in a subprocess on files in ``tmp_path`` next to a copy of the real
``tests/conftest.py``, with and without the variable, and reads the outcome of every test
from pytest's JUnit XML report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

TESTS = '''
import pytest

def test_importorskip():
    pytest.importorskip("refquant_no_such_module_a")

@pytest.mark.skipif(True, reason="paddleslim is not installed")
def test_skipif_not_installed():
    pass

def test_explicit_optional():
    pytest.skip("optional dependency: torch")

def test_import_error_reason():
    try:
        import refquant_no_such_module_b  # noqa: F401
    except ImportError as exc:
        pytest.skip(str(exc))

def test_other_skip():
    pytest.skip("needs a GPU")

@pytest.mark.xfail(reason="could not import something, but this is an xfail")
def test_xfail():
    assert False

def test_passes():
    pass
'''

MODULE_SKIP = '''
import pytest
pytest.importorskip("refquant_no_such_module_c")

def test_never_runs():
    pass
'''


def _run(tmp_path: Path, files: dict[str, str], required: bool
         ) -> tuple[int, str, dict[str, str]]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = dict(os.environ)
    env.pop("REFQUANT_REQUIRE_OPTIONAL", None)
    if required:
        env["REFQUANT_REQUIRE_OPTIONAL"] = "1"
    xml = tmp_path / "report.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", f"--junitxml={xml}",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr, _outcomes(xml)


def _outcomes(xml: Path) -> dict[str, str]:
    """``{test name: passed | failed | error | skipped}`` (an xfail reads as skipped)."""
    found = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[case.get("name", "")] = kinds[0] if kinds else "passed"
    return found


def test_missing_optional_skips_fail_when_required(tmp_path):
    rc, out, got = _run(tmp_path, {"test_t.py": TESTS}, required=True)
    assert rc == 1, out
    # a skip in the call phase becomes a failure, one in setup (skipif) an error
    for name in ("test_importorskip", "test_explicit_optional", "test_import_error_reason"):
        assert got.get(name) == "failure", (name, out)
    assert got.get("test_skipif_not_installed") == "error", out
    assert got.get("test_other_skip") == "skipped", out
    assert got.get("test_xfail") == "skipped" and "1 xfailed" in out, out
    assert got.get("test_passes") == "passed", out
    assert out.count("REFQUANT_REQUIRE_OPTIONAL is set") >= 4, out


def test_missing_optional_skips_stay_skips_otherwise(tmp_path):
    rc, out, got = _run(tmp_path, {"test_t.py": TESTS}, required=False)
    assert rc == 0, out
    for name in ("test_importorskip", "test_skipif_not_installed", "test_explicit_optional",
                 "test_import_error_reason", "test_other_skip"):
        assert got.get(name) == "skipped", (name, out)
    assert "REFQUANT_REQUIRE_OPTIONAL is set" not in out


@pytest.mark.parametrize("required", [True, False])
def test_module_level_importorskip(tmp_path, required):
    rc, out, _ = _run(tmp_path, {"test_m.py": MODULE_SKIP}, required=required)
    if required:  # a failed collection: pytest reports an error and exits 2
        assert rc == 2 and "REFQUANT_REQUIRE_OPTIONAL is set" in out, out
        assert "refquant_no_such_module_c" in out and "1 error" in out, out
    else:  # everything skipped, nothing run: pytest's exit code 5
        assert rc == 5 and "1 skipped" in out, out
