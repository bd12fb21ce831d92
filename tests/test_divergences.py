"""The quirk registries (tests/quirks/quirks_*.py), checked in one place.

For every entry: refquant's ``paddleslim`` profile shows the quirk (``check``); the canonical
profile answers, or refuses with the exception the entry names (``canonical_raises``); where
PaddleSlim is installed, the real PaddleSlim run on the entry's input gives the paddleslim
profile's outcome -- except for deliberate divergences, where it gives ``paddleslim_value``
and the paddleslim profile refuses the input. docs/divergences.md is generated from the same
registries and must not go stale.
"""

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
REAL = [q for q in QUIRKS if "real" in q]
HAVE_SLIM = (importlib.util.find_spec("paddleslim") is not None
             and importlib.util.find_spec("paddle") is not None)


def _ids(quirks):
    return [q["id"] for q in quirks]


def test_registry_ids_are_unique_and_well_formed():
    ids = _ids(QUIRKS)
    assert len(ids) == len(set(ids)), "duplicate quirk ids"
    for q in QUIRKS:
        number = render["item_number"](q["id"])
        for key in ("title", "input", "paddleslim_value", "refquant_paddleslim",
                    "refquant_canonical", "check"):
            assert key in q, f"{q['id']} lacks {key!r}"
        assert isinstance(q.get("canonical_raises", ""), str), q["id"]
        if "divergence" in q:  # a deliberate divergence is measured against PaddleSlim
            assert "real" in q and number not in render["ALL_ITEMS"], q["id"]


@pytest.mark.parametrize("quirk", QUIRKS, ids=_ids(QUIRKS))
def test_paddleslim_profile_reproduces_the_quirk(quirk):
    assert quirk["check"]() is True


def _call(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - an exception is a comparable outcome
        return exc


@pytest.mark.parametrize("quirk", QUIRKS, ids=_ids(QUIRKS))
def test_canonical_profile_answers_or_refuses_as_registered(quirk):
    out = _call(quirk["refquant_canonical"])
    want = quirk.get("canonical_raises")
    if want is None:
        assert not isinstance(out, BaseException), f"canonical raises {out!r}"
    else:
        assert type(out).__name__ == want, f"expected {want}, got {out!r}"
        assert str(out).strip(), "the error has no message"


def _as_comparable(value):
    """The default outcome: an exception's type name, or the value (a QParams' scale) as
    float32 bit patterns with its shape; what is not numeric by its repr."""
    if isinstance(value, BaseException):
        return type(value).__name__
    if hasattr(value, "scale") and hasattr(value, "zero_point"):
        value = value.scale
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return repr(value)
    return arr.shape, arr.view(np.uint32).tolist()


@pytest.mark.skipif(not HAVE_SLIM, reason="paddle / paddleslim not installed")
@pytest.mark.parametrize("quirk", REAL, ids=_ids(REAL))
def test_real_paddleslim_agrees_with_paddleslim_profile(quirk):
    real = _call(quirk["real"])
    ours = _call(quirk["refquant_paddleslim"])
    if "divergence" in quirk:
        assert _as_comparable(real) == _as_comparable(quirk["paddleslim_value"]), real
        assert isinstance(ours, ValueError), f"the paddleslim profile gave {ours!r}"
        return
    same = quirk["_same_outcome"]
    if same is not None:
        assert same(real, ours), (real, ours)
    else:
        assert _as_comparable(real) == _as_comparable(ours)


def test_document_is_up_to_date():
    doc = ROOT / "docs" / "divergences.md"
    expected = render["render"]()
    assert doc.exists(), "run: python tests/quirks/render.py > docs/divergences.md"
    assert doc.read_text() == expected, "stale: python tests/quirks/render.py > docs/divergences.md"


def test_every_catalogued_quirk_is_covered():
    covered = {render["item_number"](q["id"]) for q in QUIRKS}
    required = set(render["ALL_ITEMS"])
    assert not required - covered, f"quirks without an entry: {sorted(required - covered)}"


def test_outcome_comparisons_hand_worked():
    hist = runpy.run_path(str(HERE / "quirks" / "quirks_hist.py"))["same_outcome"]
    quanters = runpy.run_path(str(HERE / "quirks" / "quirks_quanters.py"))["same_outcome"]
    one_up = float(np.nextafter(1.0, 2.0))
    assert hist(1.0, 1.0) and not hist(1.0, one_up)  # float64 bits, not float32
    assert not hist(np.float32([1, 2]), np.float64([1, 2]))  # dtype counts
    assert hist(AssertionError("a"), AssertionError("b")) and not hist(IndexError(), 0.0)
    assert hist(IndexError(), "raises IndexError")  # both spellings of an exception
    assert quanters([0.5, 1.0], np.float32([0.5, 1.0])) and not quanters(0.5, 0.5000001)
    assert not quanters(TypeError(), TypeError())  # an escaped exception is a failure
    f32_up = np.nextafter(np.float32(1.0), np.float32(2.0))
    assert _as_comparable(np.float32(1.0)) != _as_comparable(f32_up)  # float32 bits
    assert _as_comparable(ValueError("x")) == "ValueError"


# -- the other frameworks' registries (tests/quirks/xf_*.py) ------------------------------
XF = render["load_xf"]()
XF_QUIRKS = [(reg, q) for reg in XF for q in reg["quirks"]]
_outcome = render["xf_outcome"]


def _xf_ids(pairs):
    return [q["id"] for _, q in pairs]


def test_xf_registries_are_well_formed():
    ids = [q["id"] for _, q in XF_QUIRKS]
    assert len(ids) == len(set(ids)), "duplicate cross-framework quirk ids"
    letters = {"torch": "T", "onnxruntime": "O", "modelopt": "M", "nncf": "N"}
    for reg in XF:
        assert isinstance(reg["framework"], str) and reg["framework"].strip()
        assert isinstance(reg["requires"], str) and reg["requires"].strip()
        for q in reg["quirks"]:
            assert render["XF_ID"].fullmatch(q["id"]), q["id"]
            if reg["family"] in letters:
                assert q["id"][0] == letters[reg["family"]], q["id"]
            for key in render["XF_KEYS"]:
                assert key in q, f"{q['id']} lacks {key!r}"
            for key in ("real", "bugforbug", "canonical"):
                assert callable(q[key]), f"{q['id']}: {key} is not callable"


@pytest.mark.parametrize("pair", XF_QUIRKS, ids=_xf_ids(XF_QUIRKS))
def test_xf_real_framework_equals_bugforbug(pair):
    reg, quirk = pair
    pytest.importorskip(reg["requires"])
    real = _outcome(quirk["real"]())
    assert real == _outcome(quirk["bugforbug"]()), quirk["id"]


@pytest.mark.parametrize("pair", XF_QUIRKS, ids=_xf_ids(XF_QUIRKS))
def test_xf_canonical_differs(pair):
    reg, quirk = pair
    canonical = _outcome(quirk["canonical"]())
    assert canonical != _outcome(quirk["bugforbug"]()), f"{quirk['id']} is not a quirk"
    pytest.importorskip(reg["requires"])
    assert canonical != _outcome(quirk["real"]()), f"{quirk['id']} is not a quirk"


def test_xf_outcome_comparison_hand_worked():
    f32_up = np.nextafter(np.float32(1.0), np.float32(2.0))
    assert _outcome(np.float32(1.0)) == _outcome(1.0)  # float32 widens exactly
    assert _outcome(np.float32(1.0)) != _outcome(f32_up)
    assert _outcome(0.1) != _outcome(np.float32(0.1))  # float64 keeps all its bits
    assert _outcome(np.float32([0.0])) != _outcome(np.float32([-0.0]))  # sign of zero
    assert _outcome(np.float32([1, 2])) != _outcome(np.float32([[1, 2]]))  # shape counts
    assert _outcome(np.int8(-3)) == _outcome(-3) and _outcome(3) != _outcome(4)
    assert _outcome(2**63 + 1) != _outcome(2**63)  # exact, beyond float64
    assert _outcome((1.0, "raises ValueError")) == _outcome([np.float32(1.0), "raises ValueError"])
    assert _outcome("raises ValueError") != _outcome("raises TypeError")
    with pytest.raises(TypeError):
        _outcome("1.0")
    with pytest.raises(TypeError):
        _outcome(object())
