"""Export the fixtures for implementations outside Python, and check their results.

``export(dir)`` writes ``manifest.json``, ``data/*.npy``, ``SPEC.md`` and a ``README.md``
for implementers into a new (or empty) directory. ``check_results(results_dir)``
compares a directory of ``<case-id>.npy`` files (the case's primary output; optionally
``<case-id>.<output>.npy`` for the others) with the expected outputs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .compare import Mismatch, compare_outputs
from .format import FixtureError, Suite, load_suite, read_npy, write_suite

__all__ = ["export", "check_results", "ResultsError", "README_TEXT"]


class ResultsError(ValueError):
    """A results directory is missing or malformed."""


README_TEXT = """\
# refquant conformance fixtures

This directory is a self-contained copy of refquant's conformance suite (format version
{version}, {n} cases). SPEC.md defines the format; this README is the short version.

## Layout

* `manifest.json`: `format`, `version`, `generator`, `num_cases`, `manifest_sha256` and
  `cases`, one entry per case: `id`, `kind` (kernel / observer / quanter /
  qparams), `op`, `params`, `inputs` and `outputs` (each `{{file, dtype, shape, sha256}}`),
  `primary`, `compare` (`{{"rule": "bits"}}` or `{{"rule": "decision", "margin": m,
  "bound": b}}`), `profile`, `tags`, `description`, optional `expected_divergence`.
* `data/*.npy`: NumPy NPY 1.0 files (little-endian, C order, no pickle): a 10-byte magic
  and length, an ASCII header dict, then raw data. Any C/C++ program can read them.

## Checking an implementation

1. For every case whose `op` your implementation provides, read the inputs, apply the
   operation with `params` (SPEC.md defines each operation), and write the primary
   output to `RESULTS/<case-id>.npy` with the same dtype and shape as the expected
   output (other outputs may be written as `RESULTS/<case-id>.<output>.npy`).
2. Run `refquant conformance check --results RESULTS [--fixtures THIS_DIR]`.
   Missing result files count as skipped; exit status 0 means nothing failed.

Rule `bits`: float outputs must be bit-identical (compare as unsigned integers of the
same width; -0.0 differs from 0.0; any NaN matches any NaN); integers exactly.
Rule `decision`: as `bits`, but a mismatch is accepted when the recorded `margin`
(relative gap between the best and second-best candidate) is below `bound`.
Before using anything, verify the manifest's own checksum: `manifest_sha256` is the
SHA-256 of manifest.json's bytes with those 64 hex digits replaced by 64 `0` characters
(SPEC.md section 2.1). Then verify each file's SHA-256 against the manifest.
"""


def export(out_dir: str | os.PathLike[str], suite: Suite | None = None) -> Path:
    """Write the fixtures, SPEC.md and README.md to ``out_dir`` (must be new or empty)."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"export directory {out} exists and is not empty; "
                              f"refusing to overwrite it")
    if suite is None:
        from .suite import default_fixture_dir
        suite = load_suite(default_fixture_dir())
    write_suite(suite.cases, out, suite.generator)
    spec = suite.root / "SPEC.md"
    if spec.is_file():
        (out / "SPEC.md").write_bytes(spec.read_bytes())
    (out / "README.md").write_text(README_TEXT.format(version=suite.version,
                                                      n=len(suite.cases)), encoding="utf-8")
    return out


_RESULT_RE = re.compile(r"^(?P<stem>[a-z0-9][a-z0-9._-]*)\.npy$")


def _load_results(results_dir: Path, suite: Suite) -> dict[str, dict[str, Any]]:
    if not results_dir.is_dir():
        raise ResultsError(f"results directory {results_dir} does not exist or is not a "
                           f"directory")
    ids = suite.by_id()
    found: dict[str, dict[str, Any]] = {}
    for p in sorted(results_dir.iterdir()):
        if p.name.startswith("."):
            continue
        m = _RESULT_RE.match(p.name)
        if not p.is_file() or m is None:
            raise ResultsError(f"{p}: unexpected entry; a results directory holds only "
                               f"<case-id>.npy or <case-id>.<output>.npy files")
        stem = m.group("stem")
        if stem in ids:
            cid, out = stem, ids[stem].primary
        else:
            cid, _, out = stem.rpartition(".")
            if cid not in ids or out not in ids[cid].outputs:
                raise ResultsError(f"{p}: no case (or case output) named {stem!r} in the "
                                   f"fixtures")
        try:
            arr = read_npy(p.read_bytes(), str(p))
        except FixtureError as exc:
            raise ResultsError(str(exc)) from exc
        found.setdefault(cid, {})[out] = arr
    if not found:
        raise ResultsError(f"results directory {results_dir} holds no .npy results")
    return found


def check_results(results_dir: str | os.PathLike[str], suite: Suite,
                  pattern: str | None = None) -> dict[str, Any]:
    """Compare ``<case-id>.npy`` results with the expected outputs; returns a report
    with the same keys as :func:`refquant.conformance.runner.run_suite` (target
    ``"results:<dir>"``). Outputs not provided are not compared; cases with no result
    file are skipped. Raises :class:`ResultsError` for a malformed directory."""
    from .runner import select

    found = _load_results(Path(results_dir), suite)
    results = []
    for case in select(suite.cases, pattern):
        entry: dict[str, Any] = {"id": case.id, "op": case.op}
        got = found.get(case.id)
        if got is None:
            entry.update(status="skipped", reason="no result file")
            results.append(entry)
            continue
        expected = {k: v for k, v in case.outputs.items() if k in got}
        ok, mm, note = compare_outputs(expected, got, case.compare)
        if mm is not None:
            entry["mismatch"] = Mismatch.to_dict(mm)
        if note:
            entry["note"] = note
        entry["status"] = "passed" if ok else "failed"
        results.append(entry)
    counts = {s: sum(r["status"] == s for r in results) for s in ("passed", "failed", "skipped")}
    return {
        "target": f"results:{results_dir}",
        "fixtures": str(suite.root),
        "filter": pattern,
        "total": len(results),
        "passed": counts["passed"],
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "expected_divergences": 0,
        "target_missing": None,
        "cases": results,
        "divergences": [],
    }
