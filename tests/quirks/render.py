"""Render docs/divergences.md from the quirk registries ``tests/quirks/quirks_*.py``.

Each registry defines ``QUIRKS``: a list of dicts (id, title, input, paddleslim_value,
refquant_paddleslim, refquant_canonical, check; optional: real, the same input run through
the real PaddleSlim; canonical_raises, the name of the exception the canonical profile
raises, where it refuses the input; divergence, the reason where the paddleslim profile
deliberately does not reproduce PaddleSlim). A registry may define ``same_outcome(real,
ours)``, how ``real`` and ``refquant_paddleslim`` outcomes are compared (tests/
test_divergences.py has the default). The document is generated from them, so what it says
is what the tests check:

    python tests/quirks/render.py > docs/divergences.md

The other frameworks' registries ``tests/quirks/xf_<family>.py`` (torch, onnxruntime,
modelopt, nncf) follow the shared format: ``FRAMEWORK`` (name and version checked on),
``REQUIRES`` (the module ``real`` imports), optionally ``REAL_NOTE`` (how ``real`` is
obtained, where it is not by running ``REQUIRES``: a recording) and ``QUIRKS``, dicts with
id (T torch, O onnxruntime, M modelopt, N nncf, then a number), title, input, documented,
and the callables real, bugforbug, canonical. Each renders as one section after the
PaddleSlim items; the section shows refquant's bug-for-bug outcome (equal to the real one
bit for bit, which tests/test_divergences.py checks where the framework is installed), so
the document does not depend on which frameworks are installed here.
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
#: the catalogued quirks of PaddleSlim 2.6.0 / Paddle 3.3.1, each needing an entry (Q1-Q37:
#: observers, Q38-Q53: quanters, Q54-Q61: QuantConfig / PTQ / convert, reproduced by the
#: Paddle adapter's paddleslim profile); deliberate divergences are numbered from Q62 on
ALL_ITEMS = range(1, 62)


def load_quirks() -> list[dict[str, Any]]:
    quirks: list[dict[str, Any]] = []
    for path in sorted(HERE.glob("quirks_*.py")):
        module = runpy.run_path(str(path))
        for q in module["QUIRKS"]:
            quirks.append({**q, "_source": path.name,
                           "_same_outcome": module.get("same_outcome")})
    return quirks


#: the cross-framework registries, in this order; any other xf_*.py follows alphabetically
XF_ORDER = ("torch", "onnxruntime", "modelopt", "nncf")
XF_KEYS = ("id", "title", "input", "documented", "real", "bugforbug", "canonical")
XF_ID = re.compile(r"[TOMN](\d+)[a-z]?")


def load_xf() -> list[dict[str, Any]]:
    """Each ``tests/quirks/xf_*.py`` registry: {family, framework, requires, quirks}."""
    paths = sorted(HERE.glob("xf_*.py"), key=lambda p: (
        XF_ORDER.index(p.stem[3:]) if p.stem[3:] in XF_ORDER else len(XF_ORDER), p.stem))
    out = []
    for path in paths:
        module = runpy.run_path(str(path))
        note = module.get("REAL_NOTE") or (
            f"the test suite runs the real `{module['REQUIRES']}` on each input and checks")
        out.append({"family": path.stem[3:], "framework": module["FRAMEWORK"],
                    "requires": module["REQUIRES"], "quirks": list(module["QUIRKS"]),
                    "note": note, "_source": path.name})
    return out


def xf_outcome(value: Any) -> Any:
    """A comparable form of a cross-framework outcome, exact to the bit.

    Floats become (shape, float64 bit patterns): float32 widens to float64 exactly, so two
    float32 results compare by their float32 bits, and a float64 result keeps all its bits.
    Integers and booleans become (shape, exact Python ints); the string "raises X" stays as
    is; tuples and lists compare element by element. Anything else is refused (TypeError).
    """
    if isinstance(value, str):
        if not value.startswith("raises "):
            raise TypeError(f"an outcome string must read 'raises <Name>', got {value!r}")
        return value
    if isinstance(value, (tuple, list)):
        return ("seq", tuple(xf_outcome(v) for v in value))
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return ("f", arr.shape, arr.astype(np.float64).view(np.uint64).tolist())
    if arr.dtype.kind in "iub":
        return ("i", arr.shape, arr.astype(object).tolist())
    raise TypeError(f"not a comparable outcome: {value!r}")


def xf_show(value: Any) -> str:
    """:func:`show` for a cross-framework outcome; tuples element by element."""
    if callable(value):
        value = value()
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(xf_show(v) for v in value) + ")"
    if isinstance(value, np.generic):
        value = np.asarray(value)
    return show(value)


def _xf_section(reg: dict[str, Any]) -> list[str]:
    fw = reg["framework"]
    lines = [
        "",
        f"## {fw}",
        "",
        f"From `tests/quirks/{reg['_source']}`. Each row is one behaviour of {fw} with",
        "the input that shows it, what its documentation or the canonical math says instead,",
        "the framework's outcome (refquant's bug-for-bug class returns it bit for bit;",
        f"{reg['note']}) and refquant's canonical counterpart, which differs.",
        "",
        "| # | quirk | input | documented / canonical math | framework (= refquant bug-for-bug) "
        "| refquant canonical |",
        "|---|---|---|---|---|---|",
    ]
    def key(q: dict[str, Any]) -> tuple[int, str]:
        m = XF_ID.fullmatch(q["id"])
        return (int(m.group(1)) if m else 0, q["id"])
    for q in sorted(reg["quirks"], key=key):
        lines.append("| " + " | ".join(_cell(c) for c in (
            q["id"], q["title"], q["input"], q["documented"], xf_show(q["bugforbug"]),
            xf_show(q["canonical"]))) + " |")
    return lines


def item_number(quirk_id: str) -> int:
    m = re.fullmatch(r"Q(\d+)[a-z]?", quirk_id)
    if not m:
        raise ValueError(f"quirk id must look like 'Q12' or 'Q12a', got {quirk_id!r}")
    return int(m.group(1))


def _sort_key(q: dict[str, Any]) -> tuple[int, str]:
    return item_number(q["id"]), q["id"]


def show(value: Any) -> str:
    """A short, stable text for a value (float32 values as decimal plus bit pattern)."""
    if callable(value):
        try:
            value = value()
        except Exception as exc:  # noqa: BLE001 - the document shows what is raised
            return f"raises {type(exc).__name__}"
    if hasattr(value, "scale") and hasattr(value, "zero_point"):  # QParams
        return f"scale {show(value.scale)}, zp {show(value.zero_point)}"
    if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.size <= 8:
        text = np.array2string(value, precision=9, separator=", ")
        return text if value.ndim else f"{float(value)!r} (0x{int(value.view(np.uint32)):08x})"
    if isinstance(value, np.ndarray):
        text = np.array2string(value, precision=9, separator=", ", threshold=8)
    elif isinstance(value, (np.floating, float)) and not isinstance(value, bool):
        f32 = np.float32(value)
        text = f"{float(value)!r}" + (f" (f32 0x{int(f32.view(np.uint32)):08x})"
                                      if isinstance(value, np.float32) else "")
    else:
        text = repr(value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    quirks = sorted(load_quirks(), key=_sort_key)
    covered = {item_number(q["id"]) for q in quirks}
    lines = [
        "# Divergences: PaddleSlim 2.6.0 versus refquant's canonical profile",
        "",
        "<!-- Generated by tests/quirks/render.py from tests/quirks/quirks_*.py;",
        "     tests/test_divergences.py fails when this file is stale. Do not edit by hand. -->",
        "",
        "Each row is one behaviour of PaddleSlim 2.6.0 (on Paddle 3.3.1) with a concrete input:",
        "the value the real PaddleSlim returns, what refquant's `paddleslim` profile returns and",
        "what the `canonical` profile returns instead. Q1-Q61 are PaddleSlim's quirks (Q1-Q37",
        "observers, Q38-Q53 quanters, Q54-Q61 QuantConfig / PTQ / convert); the `paddleslim`",
        "profile reproduces each of them. The `reproduced` column is checked by the test suite,",
        "which also runs the real PaddleSlim on each input where it is installed",
        "(`tests/test_divergences.py`). Rows marked *deliberate* are the exceptions: there the",
        "`paddleslim` profile refuses an input on which PaddleSlim returns a value nobody can",
        "use; the reasons follow the table. The sections after the PaddleSlim items cover the",
        "other frameworks' observers (torch.ao, ONNX Runtime, ModelOpt, NNCF).",
        "",
        "| # | quirk | input | PaddleSlim 2.6.0 | refquant `paddleslim` | reproduced | refquant "
        "`canonical` |",
        "|---|---|---|---|---|---|---|",
    ]
    for q in quirks:
        try:
            ok = bool(q["check"]())
        except Exception as exc:  # noqa: BLE001
            ok = False
            print(f"check of {q['id']} raised {exc!r}", file=sys.stderr)
        done = ("no: *deliberate*" if "divergence" in q else "yes") if ok else "**NO**"
        lines.append("| " + " | ".join(_cell(c) for c in (
            q["id"], q["title"], q["input"], show(q["paddleslim_value"]),
            show(q["refquant_paddleslim"]), done, show(q["refquant_canonical"]),
        )) + " |")
    deliberate = [q for q in quirks if "divergence" in q]
    if deliberate:
        lines += ["", "## Deliberate divergences", ""]
        lines += [f"- **{q['id']}**: {q['divergence']}" for q in deliberate]
    missing = [i for i in ALL_ITEMS if i not in covered]
    if missing:
        lines += [
            "",
            "## Not yet covered",
            "",
            "Catalogued quirks without a registry entry yet: "
            + ", ".join(f"Q{i}" for i in missing) + ".",
        ]
    for reg in load_xf():
        lines += _xf_section(reg)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
