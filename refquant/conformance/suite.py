"""Locate the shipped fixtures and (re)generate them."""

from __future__ import annotations

import importlib.resources
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from .format import Case, check_destination, write_suite
from .registry import build_case, iter_families

__all__ = ["default_fixture_dir", "generate_cases", "generate", "GENERATOR"]

GENERATOR = "refquant conformance generate (format 2)"


def _source_checkout_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "_fixtures"


def default_fixture_dir() -> Path:
    """The fixture directory: package data ``refquant._fixtures`` (``refquant/_fixtures/``
    in a source checkout)."""
    try:
        root = importlib.resources.files("refquant._fixtures")
    except ModuleNotFoundError:
        root = None
    if root is not None and isinstance(root, Path) and (root / "manifest.json").is_file():
        return root
    if root is not None and not isinstance(root, Path):
        # a namespace / multiplexed traversable: use its first real directory
        for cand in getattr(root, "_paths", []):
            if (Path(cand) / "manifest.json").is_file():
                return Path(cand)
    return _source_checkout_dir()


def generate_cases(log: bool = False) -> list[Case]:
    """Every case of every family whose requirements import, in a deterministic order."""
    out: list[Case] = []
    for fam, ok in iter_families():
        if not ok:
            if log:
                print(f"skipping family {fam.name}: requires {', '.join(fam.requires)}",
                      file=sys.stderr)
            continue
        n0 = len(out)
        for draft in fam.generate():
            out.append(build_case(draft, fam.name))
        if log:
            print(f"family {fam.name}: {len(out) - n0} cases", file=sys.stderr)
    return out


def source_fixture_dir() -> Path | None:
    """The repository's ``refquant/_fixtures/`` when refquant runs from a source checkout (a
    ``pyproject.toml`` two levels up and a ``manifest.json`` in it), else None."""
    d = _source_checkout_dir()
    if (d.parents[1] / "pyproject.toml").is_file() and (d / "manifest.json").is_file():
        return d
    return None


def generate(out_dir: str | os.PathLike[str] | None = None, log: bool = False,
             cases: Iterable[Case] | None = None) -> Path:
    """Generate every case and write the fixture set.

    ``out_dir`` must be a new or empty directory: a non-empty one raises
    ``FileExistsError`` before anything is generated, and nothing in it changes. Without
    ``out_dir`` the source checkout's ``refquant/_fixtures/`` is regenerated in place: its
    ``data/`` and ``manifest.json`` are replaced, which is refused unless every file in
    ``data/`` is one its manifest names (:func:`~refquant.conformance.format.
    check_destination`); outside a source checkout ``out_dir`` is required.
    """
    if out_dir is None:
        target = source_fixture_dir()
        if target is None:
            raise ValueError("this refquant is not a source checkout (no refquant/_fixtures/ "
                             "under a pyproject.toml): give an output directory (--out DIR)")
        replace = True
    else:
        target, replace = Path(out_dir), False
    check_destination(target, replace_fixtures=replace)
    all_cases = list(cases) if cases is not None else generate_cases(log=log)
    return write_suite(all_cases, target, GENERATOR, replace_fixtures=replace)
