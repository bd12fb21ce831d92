"""Packaging invariants: the package list is complete and refquant/ imports no framework."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = {"paddle", "paddleslim", "onnx", "onnxruntime", "torch", "paddle2onnx", "tensorflow"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_source_package_is_listed():
    tool = _pyproject()["tool"]["setuptools"]
    # the only mapping: the adapter's source sits outside the framework-free core
    assert tool.get("package-dir", {}) == {"refquant.adapters.paddle": "adapters/paddle"}
    listed = set(tool["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for init in (ROOT / "refquant").rglob("__init__.py")}
    found |= {".".join(("refquant", *init.parent.relative_to(ROOT).parts))
              for init in (ROOT / "adapters").rglob("__init__.py")}
    assert found == listed, (f"missing from pyproject: {sorted(found - listed)}; "
                             f"listed but absent: {sorted(listed - found)}")


def _copy_tracked(dst: Path) -> Path:
    """A copy of the repository's tracked files (a second checkout)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return dst


def test_a_second_checkout_resolves_its_own_adapter(tmp_path):
    """Imported from a second source tree while this one is installed (editable during
    development, a wheel in CI), refquant and refquant.adapters.paddle both come from the
    second tree: the adapter is never picked up from another checkout."""
    other = _copy_tracked(tmp_path / "other")
    code = ("import refquant.adapters.paddle.config as c, refquant; "
            "print(c.__file__); print(refquant.__file__)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    res = subprocess.run([sys.executable, "-c", code], cwd=other, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    adapter, core = (Path(p) for p in res.stdout.strip().splitlines()[-2:])
    assert adapter.resolve() == (other / "adapters" / "paddle" / "config.py").resolve()
    assert core.resolve() == (other / "refquant" / "__init__.py").resolve()


_PROBE = """
import json, sys, refquant, refquant.adapters, refquant.adapters.paddle.config as cfg
import refquant._fixtures
from refquant.conformance.suite import default_fixture_dir
print(json.dumps({"refquant": refquant.__file__, "adapters": refquant.adapters.__file__,
                  "config": cfg.__file__, "fixtures": str(default_fixture_dir())}))
"""


def test_installed_copy_resolves_everything_inside_itself(tmp_path):
    """Install a copy of the tracked tree into a fresh virtual environment and import it
    from outside any checkout: refquant, refquant.adapters and the fixtures all come from
    that environment's site-packages, never from this (or another) source tree."""
    src = _copy_tracked(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    # dependencies (NumPy, SciPy, Paddle) come from the test environment, behind the copy
    deps = sysconfig.get_paths()["purelib"]
    (site / "zz_test_deps.pth").write_text(deps + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(src)], check=True,
                   cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    res = subprocess.run([str(py), "-c", _PROBE], cwd=elsewhere, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    paths = json.loads(res.stdout.strip().splitlines()[-1])
    for name, path in paths.items():
        assert Path(path).resolve().is_relative_to(site.resolve()), (name, path)
    assert (Path(paths["fixtures"]) / "manifest.json").is_file()


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body:  # module level only; lazy imports inside functions are allowed
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in sub.names)
                elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                    names.add(sub.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "path", sorted((ROOT / "refquant").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)),
)
def test_core_module_imports_no_framework(path):
    assert not (_module_level_imports(path) & FRAMEWORKS)


def test_importing_refquant_loads_no_framework():
    core = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for p in (ROOT / "refquant").rglob("*.py")
                  if not {"adapters", "_fixtures"} & set(p.relative_to(ROOT).parts))
    code = (
        "import sys, importlib\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(set(sys.modules) & set({sorted(FRAMEWORKS)!r}))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
