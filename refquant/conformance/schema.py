"""Schema of a fixture manifest (refquant/_fixtures/SPEC.md, section 2), checked before any file
is read.

:func:`validate_manifest` checks the type and value of every key of the parsed manifest:
an unknown key, a missing key, a wrong type, an operation this refquant does not know, an
output set that is not the operation's, a file name that is not the case's own, or a
comparison rule whose ``margin`` / ``bound`` are not numbers of the stated form all raise
:class:`~refquant.conformance.format.FixtureError` naming the case and the key. The writer
runs the same check on what it is about to write, so refquant never writes a manifest its
reader refuses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from ..profiles import get_profile
from . import cases  # noqa: F401  (registers every operation the schema accepts)
from .format import (
    ALLOWED_DTYPES,
    COMPARE_RULES,
    FORMAT_NAME,
    FORMAT_VERSION,
    ID_RE,
    NAME_RE,
    FixtureError,
    set_schema_check,
)
from .registry import OPS
from .targets import TARGET_NAMES

__all__ = ["KINDS", "PROFILES", "validate_manifest"]

KINDS = ("kernel", "qparams", "observer", "quanter")
#: the profiles of PaddleSlim's families; observer cases of other frameworks' families carry
#: their own registered profile (``"torch"``, ...)
PROFILES = ("canonical", "paddleslim")


def _known_profile(profile: Any) -> bool:
    if not isinstance(profile, str):
        return False
    try:
        get_profile(profile)
    except ValueError:
        return False
    return True
TOP_KEYS = frozenset({"format", "version", "generator", "manifest_sha256", "num_cases",
                      "cases"})
CASE_KEYS = frozenset({"id", "kind", "family", "op", "params", "inputs", "outputs",
                       "primary", "compare", "profile", "tags", "description"})
CASE_OPTIONAL = frozenset({"expected_divergence"})
ARRAY_KEYS = frozenset({"file", "dtype", "shape", "sha256"})
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FAMILY_RE = re.compile(r"^[a-z][a-z0-9._-]{0,60}$")


def _fail(msg: str) -> NoReturn:
    raise FixtureError(msg)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _keys(obj: Any, required: frozenset[str], optional: frozenset[str], where: str) -> None:
    if not isinstance(obj, dict):
        _fail(f"{where} must be a JSON object, got {type(obj).__name__}")
    missing = required - set(obj)
    if missing:
        _fail(f"{where} lacks {sorted(missing)}")
    unknown = set(obj) - required - optional
    if unknown:
        _fail(f"{where} has unknown keys {sorted(unknown)}")


def _arrays(case: dict[str, Any], section: str, where: str) -> dict[str, list[int]]:
    block = case[section]
    if not isinstance(block, dict):
        _fail(f"{where}: '{section}' must be a JSON object, got {type(block).__name__}")
    shapes: dict[str, list[int]] = {}
    tag = "in" if section == "inputs" else "out"
    for name, meta in block.items():
        if not NAME_RE.match(name):
            _fail(f"{where}: {section} name {name!r} must match {NAME_RE.pattern}")
        at = f"{where}: {section}[{name!r}]"
        _keys(meta, ARRAY_KEYS, frozenset(), at)
        want = f"data/{case['id']}.{tag}.{name}.npy"
        if meta["file"] != want:
            _fail(f"{at}: 'file' must be {want!r}, got {meta['file']!r}")
        if meta["dtype"] not in ALLOWED_DTYPES:
            _fail(f"{at}: 'dtype' must be one of {ALLOWED_DTYPES}, got {meta['dtype']!r}")
        shape = meta["shape"]
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            _fail(f"{at}: 'shape' must be a list of non-negative integers, got {shape!r}")
        if not isinstance(meta["sha256"], str) or not _HEX64.match(meta["sha256"]):
            _fail(f"{at}: 'sha256' must be 64 lowercase hex digits, got {meta['sha256']!r}")
        shapes[name] = shape
    return shapes


def _margin_ok(v: Any) -> bool:
    return v is None or (_is_number(v) and v >= 0)


def _compare(case: dict[str, Any], primary_size: int, where: str) -> None:
    cmp = case["compare"]
    if not isinstance(cmp, dict):
        _fail(f"{where}: 'compare' must be a JSON object, got {type(cmp).__name__}")
    rule = cmp.get("rule")
    if rule not in COMPARE_RULES:
        _fail(f"{where}: compare 'rule' must be one of {COMPARE_RULES}, got {rule!r}")
    if rule == "bits":
        _keys(cmp, frozenset({"rule"}), frozenset(), f"{where}: 'compare' (rule bits)")
        return
    _keys(cmp, frozenset({"rule", "margin", "bound"}), frozenset(),
          f"{where}: 'compare' (rule decision)")
    bound, margin = cmp["bound"], cmp["margin"]
    if not _is_number(bound) or bound <= 0:
        _fail(f"{where}: compare 'bound' must be a finite number > 0, got {bound!r}")
    if isinstance(margin, list):
        if len(margin) != primary_size or not all(_margin_ok(m) for m in margin):
            _fail(f"{where}: compare 'margin' as a list must hold {primary_size} entries "
                  f"(one per element of the primary output), each null or a finite number "
                  f">= 0, got {margin!r}")
    elif not _margin_ok(margin):
        _fail(f"{where}: compare 'margin' must be null, a finite number >= 0 or a list of "
              f"them, got {margin!r}")


def _params(case: dict[str, Any], where: str) -> None:
    params = case["params"]
    if not isinstance(params, dict):
        _fail(f"{where}: 'params' must be a JSON object, got {type(params).__name__}")
    for k, v in params.items():
        if not NAME_RE.match(k):
            _fail(f"{where}: params name {k!r} must match {NAME_RE.pattern}")
        if not (v is None or isinstance(v, (bool, str)) or _is_number(v)):
            _fail(f"{where}: params[{k!r}] must be null, a boolean, a string or a finite "
                  f"number, got {v!r}")


def _validate_case(i: int, case: Any, ops: Mapping[str, Any], targets: tuple[str, ...]
                   ) -> str:
    if not isinstance(case, dict):
        _fail(f"case #{i} must be a JSON object, got {type(case).__name__}")
    cid = case.get("id")
    if not isinstance(cid, str) or not ID_RE.match(cid):
        _fail(f"case #{i}: 'id' must match {ID_RE.pattern}, got {cid!r}")
    where = f"case {cid}"
    _keys(case, CASE_KEYS, CASE_OPTIONAL, where)
    for key in ("kind", "family", "op", "primary", "description"):
        if not isinstance(case[key], str):
            _fail(f"{where}: {key!r} must be a string, got {case[key]!r}")
    if case["kind"] not in KINDS:
        _fail(f"{where}: 'kind' must be one of {KINDS}, got {case['kind']!r}")
    if not _FAMILY_RE.match(case["family"]):
        _fail(f"{where}: 'family' must match {_FAMILY_RE.pattern}, got {case['family']!r}")
    spec = ops.get(case["op"])
    if spec is None:
        _fail(f"{where}: unknown op {case['op']!r}: this refquant knows {len(ops)} "
              f"operations (SPEC.md section 4), and a case it cannot run is an error, "
              f"not a skip")
    if spec.kind != case["kind"]:
        _fail(f"{where}: op {case['op']!r} is of kind {spec.kind!r}, the case says "
              f"{case['kind']!r}")
    _params(case, where)
    _arrays(case, "inputs", where)
    outputs = _arrays(case, "outputs", where)
    if set(outputs) != set(spec.outputs):
        _fail(f"{where}: outputs {sorted(outputs)} are not op {case['op']!r}'s outputs "
              f"{sorted(spec.outputs)}")
    if case["primary"] not in outputs:
        _fail(f"{where}: 'primary' {case['primary']!r} is not among its outputs "
              f"{sorted(outputs)}")
    _compare(case, math.prod(outputs[case["primary"]]), where)
    profile = case["profile"]
    if case["kind"] in ("observer", "quanter"):
        if not _known_profile(profile):
            _fail(f"{where}: 'profile' of a {case['kind']} case must be one of {PROFILES} "
                  f"or another registered profile (refquant.profiles), got {profile!r}")
        if case["params"].get("profile", profile) != profile:
            _fail(f"{where}: params profile {case['params']['profile']!r} differs from the "
                  f"case's 'profile' {profile!r}")
    elif profile is not None:
        _fail(f"{where}: 'profile' of a {case['kind']} case must be null, got {profile!r}")
    tags = case["tags"]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        _fail(f"{where}: 'tags' must be a list of strings, got {tags!r}")
    div = case.get("expected_divergence", {})
    if not isinstance(div, dict) or not all(
            k in targets and isinstance(v, str) and v for k, v in div.items()):
        _fail(f"{where}: 'expected_divergence' must map target names {targets} to "
              f"non-empty reasons, got {div!r}")
    return cid


def validate_manifest(manifest: Any, where: str = "manifest.json") -> None:
    """Check every key of a parsed manifest; raise :class:`FixtureError` at the first
    violation (``where`` names the file in the message)."""
    _keys(manifest, TOP_KEYS, frozenset(), where)
    if manifest["format"] != FORMAT_NAME:
        _fail(f"{where}: 'format' must be {FORMAT_NAME!r}, got {manifest['format']!r}")
    if not _is_int(manifest["version"]) or manifest["version"] != FORMAT_VERSION:
        _fail(f"{where}: format version {manifest['version']!r} is not supported (this "
              f"reader: {FORMAT_VERSION})")
    if not isinstance(manifest["generator"], str):
        _fail(f"{where}: 'generator' must be a string, got {manifest['generator']!r}")
    if not isinstance(manifest["manifest_sha256"], str) or not _HEX64.match(
            manifest["manifest_sha256"]):
        _fail(f"{where}: 'manifest_sha256' must be 64 lowercase hex digits, got "
              f"{manifest['manifest_sha256']!r}")
    cases_ = manifest["cases"]
    if not isinstance(cases_, list):
        _fail(f"{where}: 'cases' must be a list, got {type(cases_).__name__}")
    seen: set[str] = set()
    for i, case in enumerate(cases_):
        try:
            cid = _validate_case(i, case, OPS, TARGET_NAMES)
        except FixtureError as exc:
            raise FixtureError(f"{where}: {exc}") from None
        if cid in seen:
            _fail(f"{where}: duplicate case id {cid!r}")
        seen.add(cid)
    num = manifest["num_cases"]
    if not _is_int(num) or num != len(cases_):
        _fail(f"{where}: num_cases says {num!r}, the manifest lists {len(cases_)}")


set_schema_check(validate_manifest)
