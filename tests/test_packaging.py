"""Packaging invariants: the package list is complete and refquant/ imports no framework."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = {"paddle", "paddleslim", "onnx", "onnxruntime", "torch", "paddle2onnx", "tensorflow"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_source_package_is_listed():
    tool = _pyproject()["tool"]["setuptools"]
    listed = set(tool["packages"])
    mapping = tool["package-dir"]
    found = set()
    for pkg, src in mapping.items():
        base = ROOT / src
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            name = ".".join([pkg, *rel.parts]) if rel.parts else pkg
            # sub-directories of a mapped directory that are themselves mapped are counted once
            if not any(name.startswith(other + ".") or name == other
                       for other in mapping if other != pkg and other.startswith(pkg + ".")):
                found.add(name)
    assert found <= listed, f"packages missing from pyproject: {sorted(found - listed)}"


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
    "path", sorted((ROOT / "refquant").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_core_module_imports_no_framework(path):
    assert not (_module_level_imports(path) & FRAMEWORKS)


def test_importing_refquant_loads_no_framework():
    code = (
        "import sys, pkgutil, importlib, refquant\n"
        "for m in pkgutil.walk_packages(refquant.__path__, 'refquant.'):\n"
        "    if m.name.startswith(('refquant.adapters', 'refquant._fixtures')):\n"
        "        continue\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(set(sys.modules) & set({sorted(FRAMEWORKS)!r}))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
