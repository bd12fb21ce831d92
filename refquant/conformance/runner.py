"""Run a target over the fixtures and build the report.

Report (JSON) keys: ``target``, ``total``, ``passed``, ``failed``, ``skipped``,
``expected_divergences``, ``cases`` (one entry per selected case: ``id``, ``op``,
``status``, and for mismatches ``mismatch`` = first differing output / index / values / bit
patterns) and ``divergences`` (the cases that differ as the manifest says they should).

Statuses: ``passed``; ``failed`` (outputs differ, or the implementation raised);
``skipped`` (the target cannot express the case, or its package is missing);
``expected-divergence`` (differs, and the manifest records this target's known
disagreement with the reason: neither a failure nor hidden).
"""

from __future__ import annotations

import fnmatch
import traceback
from typing import Any

from .compare import compare_outputs
from .format import Case, Suite
from .targets import Target, Unsupported

__all__ = ["run_suite", "format_table", "select"]


def select(cases: list[Case], pattern: str | None) -> list[Case]:
    """Cases whose id matches the glob ``pattern`` (all when None)."""
    if not pattern:
        return list(cases)
    return [c for c in cases if fnmatch.fnmatchcase(c.id, pattern)]


def _run_one(target: Target, case: Case) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": case.id, "op": case.op}
    known = case.expected_divergence.get(target.name)
    if not target.supports(case):
        entry.update(status="skipped", reason=f"{target.name} does not implement {case.op}")
        return entry
    try:
        actual = target.run(case)
    except Unsupported as exc:
        entry.update(status="skipped", reason=str(exc))
        return entry
    except Exception as exc:  # the implementation under test raised
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        if known:
            entry.update(status="expected-divergence", reason=known, error=last)
        else:
            entry.update(status="failed", error=last)
        return entry
    ok, mm, note = compare_outputs(case.outputs, actual, case.compare)
    if mm is not None:
        entry["mismatch"] = mm.to_dict()
    if note:
        entry["note"] = note
    if ok:
        entry["status"] = "passed"
        if known:
            entry["note"] = (f"manifest expects {target.name} to diverge ({known}) but it "
                             f"matched")
    elif known:
        entry.update(status="expected-divergence", reason=known)
    else:
        entry["status"] = "failed"
    return entry


def run_suite(suite: Suite, target: Target, pattern: str | None = None) -> dict[str, Any]:
    """Run ``target`` on the selected cases; never raises for a failing implementation."""
    cases = select(suite.cases, pattern)
    missing = target.missing()
    results: list[dict[str, Any]] = []
    if missing is not None:
        results = [{"id": c.id, "op": c.op, "status": "skipped", "reason": missing}
                   for c in cases]
    else:
        target.load()
        results = [_run_one(target, c) for c in cases]
    counts = {s: sum(r["status"] == s for r in results)
              for s in ("passed", "failed", "skipped", "expected-divergence")}
    return {
        "target": target.name,
        "fixtures": str(suite.root),
        "filter": pattern,
        "total": len(results),
        "passed": counts["passed"],
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "expected_divergences": counts["expected-divergence"],
        "target_missing": missing,
        "cases": results,
        "divergences": [r for r in results if r["status"] == "expected-divergence"],
    }


def _detail(r: dict[str, Any]) -> str:
    mm = r.get("mismatch")
    if r.get("error"):
        return r["error"]
    if mm and mm.get("index") is not None:
        eb = f" ({mm['expected_bits']})" if mm.get("expected_bits") else ""
        ab = f" ({mm['actual_bits']})" if mm.get("actual_bits") else ""
        return (f"{mm['output']}{mm['index']}: expected {mm['expected']}{eb}, got "
                f"{mm['actual']}{ab}; {mm['mismatches']} differ")
    if mm:
        return f"{mm['output']}: {mm['reason']}"
    return r.get("reason", "")


def format_table(report: dict[str, Any], verbose: bool = False) -> str:
    """Human-readable summary: failures and expected divergences, then the totals."""
    lines: list[str] = []
    if report.get("target_missing"):
        lines.append(f"SKIPPED: {report['target_missing']}")
    shown = [r for r in report["cases"]
             if verbose or r["status"] in ("failed", "expected-divergence")]
    if shown:
        w = max(len(r["id"]) for r in shown)
        lines.append(f"{'case'.ljust(w)}  {'status':<19}  detail")
        lines.append(f"{'-' * w}  {'-' * 19}  {'-' * 40}")
        for r in shown:
            detail = _detail(r)
            if r["status"] == "expected-divergence":
                detail = f"{r.get('reason', '')} | {detail}"
            lines.append(f"{r['id'].ljust(w)}  {r['status']:<19}  {detail}")
        lines.append("")
    lines.append(
        f"target {report['target']}: {report['total']} cases, {report['passed']} passed, "
        f"{report['failed']} failed, {report['skipped']} skipped, "
        f"{report['expected_divergences']} expected divergences"
    )
    return "\n".join(lines)
