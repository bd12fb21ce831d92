"""The matcher: which catalogued variant explains a kernel's outputs on the ``diagnose``
conformance cases.

Outputs come from a Python callable (:func:`observe_callable`) or a results directory in the
format ``refquant conformance check --results`` reads (:func:`observe_results`).
:func:`diagnose_observations` then searches the catalogue: all cases are stacked into one
vector (one scale, zero point and range per element, so one emulation runs every case), and
a coordinate search changes one axis at a time to the variant that matches the most
elements, from the family's base and from every named reference, until nothing improves.
The best combination found is checked against every case. Per axis the report names the
variant, or every variant that explains the same elements when the cases cannot tell them
apart for this kernel (``clamp_order`` under round-to-nearest). When no combination
explains every case, the cases the best one fails are listed with their first differing
element: no catalogued variant explains them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..conformance.format import Case, FixtureError, Suite, load_suite, read_npy
from .catalogue import AXES, BASE, FAMILIES, REFERENCES, emulate, is_valid
from .search import same, with_choice

__all__ = ["DiagnoseError", "Observation", "cases_of", "float_zero_point",
           "observe_callable", "observe_results",
           "table_header", "table_row", "TABLE_AXES",
           "diagnose_observations", "diagnose_callable", "diagnose_results", "format_report"]


class DiagnoseError(ValueError):
    """Bad input to diagnose: a malformed results directory, a kernel that raised or
    returned the wrong shape or dtype, an unknown family or reference."""


@dataclass
class Observation:
    """One case and what the kernel returned for it."""

    case: Case
    actual: np.ndarray

    @property
    def data(self) -> np.ndarray:
        return self.case.inputs["q" if "q" in self.case.inputs else "x"]


def _family(family: Any) -> str:
    if family not in FAMILIES:
        raise DiagnoseError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    return str(family)


def _suite(fixtures: str | os.PathLike[str] | Suite | None) -> Suite:
    if isinstance(fixtures, Suite):
        return fixtures
    from ..conformance.suite import default_fixture_dir

    return load_suite(Path(fixtures) if fixtures is not None else default_fixture_dir())


def cases_of(family: str, fixtures: str | os.PathLike[str] | Suite | None = None
             ) -> list[Case]:
    """The ``diagnose`` cases of ``family`` in the fixtures (default: the shipped ones)."""
    fam = _family(family)
    cases = [c for c in _suite(fixtures).cases if c.op.startswith(f"diagnose.{fam}.")]
    if not cases:
        raise DiagnoseError(f"the fixtures hold no diagnose.{fam}.* case (regenerate them "
                            f"with `refquant conformance generate`)")
    return cases


def _check_output(case: Case, family: str, out: Any, what: str) -> np.ndarray:
    shape = case.inputs["q" if family == "dequantize" else "x"].shape
    try:
        arr = np.asarray(out)
    except Exception as exc:  # an object NumPy cannot convert
        raise DiagnoseError(f"case {case.id}: {what} is not an array ({exc})") from None
    if arr.shape != shape:
        raise DiagnoseError(f"case {case.id}: {what} has shape {arr.shape}, expected "
                            f"{shape} (the input's shape)")
    if family == "quantize":
        if arr.dtype.kind not in "iuf" or arr.dtype == np.float16:
            raise DiagnoseError(f"case {case.id}: {what} has dtype {arr.dtype}, expected "
                                f"integer codes (any integer dtype, or float32/float64)")
        return arr.astype(np.float64)
    if arr.dtype != np.float32:
        raise DiagnoseError(f"case {case.id}: {what} has dtype {arr.dtype}, expected "
                            f"float32")
    return np.array(arr, dtype=np.float32)


def float_zero_point(case: Case) -> bool:
    """True for a case whose zero point is not an integer (``diag.fq.zero_point.i8fzp``):
    only kernels that take a float zero point run it."""
    z = np.asarray(case.inputs.get("zero_point", 0))
    return z.dtype.kind == "f" and not float(z).is_integer()


def observe_callable(fn: Callable[..., Any], family: str,
                     fixtures: str | os.PathLike[str] | Suite | None = None,
                     float_zero_point_ok: bool = False
                     ) -> tuple[list[Observation], list[str]]:
    """Run ``fn`` on every ``diagnose.<family>.*`` case.

    ``fn(x, scale, zero_point, qmin, qmax)`` for quantize and fake_quant (``x`` a float32
    1-D array, ``scale`` ``np.float32``, the others ``int``), ``fn(q, scale, zero_point)``
    for dequantize (``q`` int32). It returns the output (integer codes, or float32), or
    None for a case it does not support (skipped). Returns the observations and the ids of
    the skipped cases. A case with a non-integer zero point is passed (``zero_point`` an
    ``np.float32``) only when ``float_zero_point_ok``, and skipped otherwise. A kernel that
    raises, or returns the wrong shape or dtype, raises :class:`DiagnoseError` naming the
    case.
    """
    fam = _family(family)
    if not callable(fn):
        raise DiagnoseError(f"fn must be callable, got {type(fn).__name__}")
    obs, skipped = [], []
    for case in cases_of(fam, fixtures):
        data = case.inputs["q" if fam == "dequantize" else "x"]
        fzp = float_zero_point(case)
        if fzp and not float_zero_point_ok:
            skipped.append(case.id)
            continue
        zp = np.float32(case.inputs["zero_point"]) if fzp else int(case.inputs["zero_point"])
        args: tuple[Any, ...] = (np.array(data), np.float32(case.inputs["scale"]), zp)
        if fam != "dequantize":
            args += (int(case.params["qmin"]), int(case.params["qmax"]))
        try:
            out = fn(*args)
        except Exception as exc:
            raise DiagnoseError(f"case {case.id}: the kernel raised "
                                f"{type(exc).__name__}: {exc}") from exc
        if out is None:
            skipped.append(case.id)
            continue
        obs.append(Observation(case, _check_output(case, fam, out, "the kernel's output")))
    if not obs:
        raise DiagnoseError(f"the kernel returned None for all {len(skipped)} "
                            f"diagnose.{fam} cases: nothing to diagnose")
    return obs, skipped


def observe_results(results_dir: str | os.PathLike[str], family: str,
                    fixtures: str | os.PathLike[str] | Suite | None = None
                    ) -> list[Observation]:
    """Read ``<case-id>.npy`` for every ``diagnose.<family>.*`` case from ``results_dir``.

    Files of other cases of the fixtures (and ``<case-id>.<output>.npy`` files) are
    ignored; a case with a non-integer zero point is optional (used when its file is
    there). :class:`DiagnoseError` for a missing directory, an entry that is not a
    ``.npy`` file or names no case, a missing result, a wrong shape or dtype, or a file that
    is not a valid NPY array.
    """
    fam = _family(family)
    root = Path(results_dir)
    if not root.is_dir():
        raise DiagnoseError(f"results directory {root} does not exist or is not a directory")
    suite = _suite(fixtures)
    known = suite.by_id()
    wanted = {c.id: c for c in cases_of(fam, suite)}
    found: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if not p.is_file() or not p.name.endswith(".npy"):
            raise DiagnoseError(f"{p}: unexpected entry; a results directory holds only "
                                f"<case-id>.npy files")
        stem = p.name[:-4]
        if stem in wanted:
            found[stem] = p
        elif stem not in known and stem.rpartition(".")[0] not in known:
            raise DiagnoseError(f"{p}: no case named {stem!r} in the fixtures")
    missing = [cid for cid, c in wanted.items()
               if cid not in found and not float_zero_point(c)]
    if missing:
        raise DiagnoseError(f"{root}: no result for {len(missing)} of the {len(wanted)} "
                            f"diagnose.{fam} cases, e.g. {missing[0]}.npy")
    obs = []
    for cid, case in wanted.items():
        if cid not in found:
            continue
        try:
            arr = read_npy(found[cid].read_bytes(), str(found[cid]))
        except FixtureError as exc:
            raise DiagnoseError(f"case {cid}: {exc}") from None
        obs.append(Observation(case, _check_output(case, fam, arr, str(found[cid]))))
    return obs


# -- the search --------------------------------------------------------------------------


class _Stack:
    """Every observation's elements in one vector."""

    def __init__(self, family: str, obs: list[Observation]) -> None:
        self.family = family
        self.obs = obs
        self.data = np.concatenate([o.data.ravel() for o in obs])
        self.sizes = [o.data.size for o in obs]

        def per(key: str, src: str, dtype: Any) -> np.ndarray:
            vals = [(o.case.inputs[key] if src == "in" else o.case.params.get(key, 0))
                    for o in obs]
            return np.repeat(np.array([np.asarray(v).item() for v in vals], dtype=dtype),
                             self.sizes)

        self.scale = per("scale", "in", np.float32)
        self.zp = per("zero_point", "in", np.float64)
        #: no non-integer zero point observed: ``float`` is ``before`` for these cases
        self.integer_zp = bool(np.all(self.zp == np.round(self.zp)))
        self.qmin = per("qmin", "params", np.int64)
        self.qmax = per("qmax", "params", np.int64)
        self.actual = np.concatenate([o.actual.ravel() for o in obs])
        self.starts = np.cumsum([0, *self.sizes])[:-1]
        self._cache: dict[tuple[tuple[str, str], ...], np.ndarray] = {}

    def choices(self, axis: str) -> tuple[str, ...]:
        """The axis's variants in this family that these cases can tell apart."""
        out = FAMILIES[self.family].choices(axis)
        return tuple(c for c in out if not (c == "float" and self.integer_zp))

    def predict(self, variant: Mapping[str, str]) -> np.ndarray:
        return emulate(self.family, variant, self.data, self.scale, self.zp, self.qmin,
                       self.qmax)

    def match(self, variant: Mapping[str, str]) -> np.ndarray:
        key = tuple(sorted(variant.items()))
        if key not in self._cache:
            self._cache[key] = same(self.predict(variant), self.actual)
        return self._cache[key]

    def per_case(self, mask: np.ndarray) -> np.ndarray:
        return np.logical_and.reduceat(mask, self.starts)


def _descend(stack: _Stack, start: dict[str, str]) -> dict[str, str]:
    cur = dict(start)
    axes = FAMILIES[stack.family].axes
    for _ in range(6):
        changed = False
        for axis in axes:
            best, best_n = cur, int(stack.match(cur).sum())
            for choice in stack.choices(axis):
                v = with_choice(cur, axis, choice)
                if v is None or v == cur:
                    continue
                n = int(stack.match(v).sum())
                if n > best_n:
                    best, best_n = v, n
            if best != cur:
                cur, changed = best, True
        if not changed:
            break
    return cur


def _neighbours2(stack: _Stack, cur: dict[str, str]) -> list[dict[str, str]]:
    """Every valid variant that differs from ``cur`` on exactly two axes."""
    out = []
    axes = FAMILIES[stack.family].axes
    for i, a1 in enumerate(axes):
        for a2 in axes[i + 1:]:
            for c1 in stack.choices(a1):
                for c2 in stack.choices(a2):
                    if c1 == cur[a1] or c2 == cur[a2]:
                        continue
                    v = {**cur, a1: c1, a2: c2}
                    if is_valid(v):
                        out.append(v)
    return out


def _search(stack: _Stack, starts: list[dict[str, str]]) -> dict[str, str]:
    """Coordinate descent from each start; when the best leaves cases unexplained, a move
    on two axes at once, then descent again (at most three times)."""
    def score(v: dict[str, str]) -> int:
        return int(stack.match(v).sum())

    best = max((_descend(stack, s) for s in starts), key=score)
    for _ in range(3):
        if bool(stack.match(best).all()):
            break
        cand = max(_neighbours2(stack, best), key=score, default=best)
        if score(cand) <= score(best):
            break
        best = _descend(stack, cand)
    return best


def _value(a: Any) -> Any:
    v = np.asarray(a).item()
    if isinstance(v, float) and not np.isfinite(v):
        return repr(v)
    return v


def diagnose_observations(family: str, obs: list[Observation], reference: str | None = None,
                          source: str = "", skipped: list[str] | None = None
                          ) -> dict[str, Any]:
    """Diagnose a kernel from its observations; returns the report (see
    :func:`format_report`; JSON-serialisable)."""
    fam = _family(family)
    refs = REFERENCES[fam]
    ref_name = reference if reference is not None else next(iter(refs))
    if ref_name not in refs:
        raise DiagnoseError(f"reference for family {fam!r} must be one of {sorted(refs)}, "
                            f"got {reference!r}")
    stack = _Stack(fam, obs)
    starts = [BASE[fam], *(v for v, _ in refs.values())]
    best = _search(stack, starts)
    mask = stack.match(best)
    ok_cases = stack.per_case(mask)
    explained = bool(ok_cases.all())
    axes: dict[str, Any] = {}
    for axis in FAMILIES[fam].axes:
        cands = []
        for choice in stack.choices(axis):
            v = with_choice(best, axis, choice)
            if v is not None and bool(np.all(stack.match(v) >= mask)):
                cands.append(choice)
        axes[axis] = {"variant": best[axis] if len(cands) == 1 else None,
                      "candidates": cands, "meaning": AXES[axis][best[axis]],
                      "reference": refs[ref_name][0][axis]}
    if explained:  # another combination two axes away that explains every element too
        for v in _neighbours2(stack, best):
            if bool(stack.match(v).all()):
                for axis, choice in v.items():
                    if choice not in axes[axis]["candidates"]:
                        axes[axis]["candidates"].append(choice)
                        axes[axis]["variant"] = None
    unexplained = []
    pred = stack.predict(best)
    for i in np.flatnonzero(~ok_cases):
        o, s0 = obs[i], int(stack.starts[i])
        bad = np.flatnonzero(~mask[s0:s0 + stack.sizes[i]])
        j = int(bad[0])
        unexplained.append({"id": o.case.id, "index": j,
                            "input": _value(o.data.ravel()[j]),
                            "best_variant_gives": _value(pred[s0 + j]),
                            "actual": _value(o.actual.ravel()[j]),
                            "mismatches": int(bad.size)})
    matches = [name for name, (v, _) in refs.items() if bool(stack.per_case(stack.match(v)).all())]
    ref_variant = refs[ref_name][0]
    deviations = [{"axis": a, "reference": ref_variant[a], "actual": best[a]}
                  for a in FAMILIES[fam].axes
                  if best[a] != ref_variant[a] and ref_variant[a] not in axes[a]["candidates"]]
    return {
        "family": fam,
        "source": source,
        "cases": len(obs),
        "skipped": list(skipped or []),
        "reference": ref_name,
        "reference_kernel": refs[ref_name][1],
        "matches_reference": ref_name in matches,
        "matches": matches,
        "explained": explained,
        "variant": best if explained else None,
        "best_variant": best,
        "axes": axes,
        "deviations": deviations,
        "unexplained": unexplained,
    }


def diagnose_callable(fn: Callable[..., Any], family: str = "quantize",
                      reference: str | None = None,
                      fixtures: str | os.PathLike[str] | Suite | None = None,
                      source: str = "", float_zero_point_ok: bool = False
                      ) -> dict[str, Any]:
    """:func:`observe_callable` then :func:`diagnose_observations`."""
    obs, skipped = observe_callable(fn, family, fixtures, float_zero_point_ok)
    name = source or getattr(fn, "__qualname__", repr(fn))
    return diagnose_observations(family, obs, reference, source=name, skipped=skipped)


def diagnose_results(results_dir: str | os.PathLike[str], family: str = "quantize",
                     reference: str | None = None,
                     fixtures: str | os.PathLike[str] | Suite | None = None) -> dict[str, Any]:
    """:func:`observe_results` then :func:`diagnose_observations`."""
    obs = observe_results(results_dir, family, fixtures)
    return diagnose_observations(family, obs, reference, source=f"results:{results_dir}")


def format_report(report: Mapping[str, Any]) -> str:
    """The report as text: one line per axis, the unexplained cases, then the verdict."""
    n_bad = len(report["unexplained"])
    head = (f"diagnose {report['family']} kernel {report['source']}: {report['cases']} cases"
            + (f", {len(report['skipped'])} skipped" if report["skipped"] else ""))
    lines = [head if not n_bad else
             f"{head}; closest catalogued variant (explains {report['cases'] - n_bad}):"]
    w = max(len(a) for a in report["axes"])
    for axis, info in report["axes"].items():
        if info["variant"] is not None:
            what = f"{info['variant']:<17} {info['meaning']}"
        else:
            what = f"{' | '.join(info['candidates']):<17} not told apart by these cases"
        mark = "" if info["reference"] in info["candidates"] else \
            f"   (reference: {info['reference']})"
        lines.append(f"  {axis.ljust(w)}  {what}{mark}")
    if n_bad:
        lines.append(f"no catalogued variant explains these {n_bad} case(s):")
        for u in report["unexplained"]:
            lines.append(f"  {u['id']}  element {u['index']}, input {u['input']!r}: closest "
                         f"variant gives {u['best_variant_gives']!r}, kernel gives "
                         f"{u['actual']!r}; {u['mismatches']} differ")
    ref = f"{report['reference']} ({report['reference_kernel']})"
    devs = "; ".join(f"{d['axis']}: {d['actual']} instead of {d['reference']}"
                     for d in report["deviations"])
    if report["matches_reference"]:
        lines.append(f"verdict: matches {ref}")
    elif n_bad:
        lines.append(f"verdict: differs from {ref}; no catalogued variant explains it"
                     + (f" (closest differs on {devs})" if devs else ""))
    else:
        lines.append(f"verdict: differs from {ref}: {devs}")
    if report["matches"] and not report["matches_reference"]:
        lines.append(f"matches the named reference(s): {', '.join(report['matches'])}")
    return "\n".join(lines)


#: the columns of :func:`table_row` (docs/kernels.md, "Diagnosis of the installed
#: implementations")
TABLE_AXES = ("rounding", "scale", "zero_point", "scale_precision", "clamp_range",
              "clamp_order", "nan", "overflow", "subnormal", "dequant_order")


def table_header() -> str:
    """The header and separator lines of the diagnosis table (Markdown)."""
    cols = ["implementation", "family", *TABLE_AXES, "verdict"]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def table_row(name: str, report: Mapping[str, Any]) -> str:
    """One Markdown row: per axis the variant, ``a / b`` when the cases cannot tell them
    apart, ``-`` when the family has no such axis; the verdict names the reference."""
    cells = [f"`{name}`", report["family"]]
    for axis in TABLE_AXES:
        info = report["axes"].get(axis)
        cells.append("-" if info is None else " / ".join(info["candidates"] or
                                                         [str(report["best_variant"][axis])]))
    n_bad = len(report["unexplained"])
    ref = report["reference"]
    if report["matches_reference"]:
        verdict = f"matches {ref}"
    elif n_bad:
        verdict = (f"not explained: {n_bad} of {report['cases']} cases (closest variant "
                   f"shown)")
    else:
        verdict = f"differs from {ref}: " + ", ".join(d["axis"] for d in report["deviations"])
    cells.append(verdict)
    return "| " + " | ".join(cells) + " |"
