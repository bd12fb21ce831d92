"""docs/divergences.md is generated from the quirk registries and must not go stale."""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
render = runpy.run_path(str(HERE / "quirks" / "render.py"))
QUIRKS = render["load_quirks"]()
HAVE_SLIM = importlib.util.find_spec("paddleslim") is not None


def test_registry_ids_are_unique_and_well_formed():
    ids = [q["id"] for q in QUIRKS]
    assert len(ids) == len(set(ids)), "duplicate quirk ids"
    for q in QUIRKS:
        render["item_number"](q["id"])
        for key in ("title", "input", "paddleslim_value", "refquant_paddleslim",
                    "refquant_canonical", "check"):
            assert key in q, f"{q['id']} lacks {key!r}"


@pytest.mark.parametrize("quirk", QUIRKS, ids=[q["id"] for q in QUIRKS])
def test_paddleslim_profile_reproduces_the_quirk(quirk):
    assert quirk["check"]() is True


def _as_comparable(value):
    if isinstance(value, BaseException):
        return type(value).__name__
    if hasattr(value, "scale") and hasattr(value, "zero_point"):
        value = value.scale
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return repr(value)
    return arr.shape, arr.view(np.uint32).tolist()


def _call(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - an exception is a comparable outcome
        return exc


@pytest.mark.skipif(not HAVE_SLIM, reason="paddleslim is not installed")
@pytest.mark.parametrize("quirk", [q for q in QUIRKS if "real" in q],
                         ids=[q["id"] for q in QUIRKS if "real" in q])
def test_real_paddleslim_agrees_with_paddleslim_profile(quirk):
    real = _as_comparable(_call(quirk["real"]))
    ours = _as_comparable(_call(quirk["refquant_paddleslim"]))
    assert real == ours


def test_document_is_up_to_date():
    doc = ROOT / "docs" / "divergences.md"
    expected = render["render"]()
    assert doc.exists(), "run: python tests/quirks/render.py > docs/divergences.md"
    assert doc.read_text() == expected, "stale: python tests/quirks/render.py > docs/divergences.md"


def test_every_item_of_the_quirks_reference_is_covered():
    covered = {render["item_number"](q["id"]) for q in QUIRKS}
    required = set(render["ALL_ITEMS"])
    assert not required - covered, f"quirks without an entry: {sorted(required - covered)}"
