"""The fixture format: a JSON manifest plus one ``.npy`` file per array
(see refquant/_fixtures/SPEC.md).

Writer and reader. Every array is stored with :func:`numpy.lib.format.write_array`
(format version 1.0, ``allow_pickle=False``), so files are byte-stable and readable from C.
The manifest records, per file, its dtype, shape and SHA-256, and its own checksum
(``manifest_sha256``, see :func:`manifest_checksum`). The reader verifies the manifest's
checksum, then its schema (:mod:`refquant.conformance.schema`), then every file's
checksum, dtype and shape, before returning anything, and refuses a manifest whose major
version it does not know.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ALLOWED_DTYPES",
    "COMPARE_RULES",
    "Case",
    "Suite",
    "FixtureError",
    "npy_bytes",
    "read_npy",
    "sha256_bytes",
    "write_suite",
    "load_suite",
    "check_case_id",
    "manifest_checksum",
    "check_destination",
    "seal_manifest",
]

FORMAT_NAME = "refquant-conformance"
#: Major version: a reader refuses manifests with another major version. Version 2 added the
#: required ``manifest_sha256`` and the strict schema.
FORMAT_VERSION = 2
ALLOWED_DTYPES = (
    "float16", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "int64",
    "bool",
)
COMPARE_RULES = ("bits", "decision")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,150}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
#: the key of the manifest's own checksum, and the placeholder its value is hashed as
CHECKSUM_KEY = "manifest_sha256"
_PLACEHOLDER = "0" * 64


class FixtureError(ValueError):
    """A fixture directory or file is missing, malformed or fails its checksum."""


def check_case_id(case_id: str) -> str:
    """Case ids are lowercase ``[a-z0-9._-]``, at most 151 characters (they are file names)."""
    if not isinstance(case_id, str) or not ID_RE.match(case_id):
        raise ValueError(f"case id must match {ID_RE.pattern}, got {case_id!r}")
    return case_id


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npy_bytes(arr: np.ndarray) -> bytes:
    """The exact bytes refquant writes for ``arr``: NPY 1.0, C order, little-endian, no pickle."""
    a = np.array(arr, order="C", copy=True)  # keeps 0-d shape (ascontiguousarray does not)
    if a.dtype.name not in ALLOWED_DTYPES:
        raise TypeError(f"array dtype must be one of {ALLOWED_DTYPES}, got {a.dtype}")
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def read_npy(data: bytes, what: str) -> np.ndarray:
    """Parse NPY bytes without ever unpickling; ``what`` names the file in errors."""
    try:
        arr = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # ValueError, EOFError, ... from a damaged file
        raise FixtureError(f"{what}: not a valid .npy file ({exc})") from exc
    if arr.dtype.name not in ALLOWED_DTYPES:
        raise FixtureError(f"{what}: dtype {arr.dtype} is not one of {ALLOWED_DTYPES}")
    return arr


@dataclass
class Case:
    """One conformance case, in memory (arrays loaded)."""

    id: str
    op: str
    kind: str
    family: str
    params: dict[str, Any]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    compare: dict[str, Any] = field(default_factory=lambda: {"rule": "bits"})
    profile: str | None = None
    tags: list[str] = field(default_factory=list)
    description: str = ""
    expected_divergence: dict[str, str] = field(default_factory=dict)
    #: the output a results directory stores as ``<case-id>.npy`` (default: the first)
    primary: str = ""

    def __post_init__(self) -> None:
        if not self.primary and self.outputs:
            self.primary = next(iter(self.outputs))


@dataclass
class Suite:
    """A loaded fixture set."""

    root: Path
    version: int
    generator: str
    cases: list[Case]

    def by_id(self) -> dict[str, Case]:
        return {c.id: c for c in self.cases}


def _array_entry(rel: str, data: bytes, arr: np.ndarray) -> dict[str, Any]:
    return {"file": rel, "dtype": arr.dtype.name, "shape": list(arr.shape),
            "sha256": sha256_bytes(data)}


def _case_json(case: Case, files: dict[str, bytes]) -> dict[str, Any]:
    check_case_id(case.id)
    entry: dict[str, Any] = {
        "id": case.id,
        "kind": case.kind,
        "family": case.family,
        "op": case.op,
        "params": case.params,
        "profile": case.profile,
        "compare": case.compare,
        "tags": list(case.tags),
        "description": case.description,
        "primary": case.primary,
    }
    if case.compare.get("rule") not in COMPARE_RULES:
        raise ValueError(f"case {case.id}: compare rule must be one of {COMPARE_RULES}, "
                         f"got {case.compare!r}")
    for section, arrays in (("inputs", case.inputs), ("outputs", case.outputs)):
        block: dict[str, Any] = {}
        for name, arr in arrays.items():
            if not NAME_RE.match(name):
                raise ValueError(f"case {case.id}: array name must match {NAME_RE.pattern}, "
                                 f"got {name!r}")
            rel = f"data/{case.id}.{'in' if section == 'inputs' else 'out'}.{name}.npy"
            data = npy_bytes(np.asarray(arr))
            files[rel] = data
            block[name] = _array_entry(rel, data, np.asarray(arr))
        entry[section] = block
    if case.primary not in case.outputs:
        raise ValueError(f"case {case.id}: primary output {case.primary!r} is not an output")
    if case.expected_divergence:
        entry["expected_divergence"] = dict(sorted(case.expected_divergence.items()))
    return entry


def manifest_checksum(data: bytes) -> str:
    """The checksum a manifest's ``manifest_sha256`` must hold (refquant/_fixtures/SPEC.md, 2.1).

    ``data`` is the manifest file's bytes. Its stored value ``d`` (64 lowercase hex digits)
    must occur exactly once in ``data``; the checksum is the lowercase hex SHA-256 of
    ``data`` with that occurrence replaced by 64 ASCII ``0``. Raises :class:`FixtureError`
    when the value is missing, malformed or not unique.
    """
    try:
        stored = json.loads(data.decode("utf-8")).get(CHECKSUM_KEY)
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise FixtureError(f"manifest is not a UTF-8 JSON object ({exc})") from exc
    return _checksum(data, stored)


def _checksum(data: bytes, stored: Any) -> str:
    if not isinstance(stored, str) or not re.fullmatch(r"[0-9a-f]{64}", stored):
        raise FixtureError(f"manifest {CHECKSUM_KEY!r} must be 64 lowercase hex digits, got "
                           f"{stored!r}")
    raw = stored.encode("ascii")
    count = data.count(raw)
    if count != 1:
        raise FixtureError(f"manifest {CHECKSUM_KEY!r} value occurs {count} times in the "
                           f"file, expected exactly once")
    return sha256_bytes(data.replace(raw, _PLACEHOLDER.encode("ascii")))


def _dumps(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False) + "\n"
            ).encode("utf-8")


def seal_manifest(manifest: dict[str, Any]) -> bytes:
    """Serialise ``manifest`` (sorted keys, one-space indent, UTF-8, final newline) with its
    ``manifest_sha256`` filled in; ``manifest`` itself is not modified."""
    text = _dumps({**manifest, CHECKSUM_KEY: _PLACEHOLDER})
    if text.count(_PLACEHOLDER.encode("ascii")) != 1:
        raise ValueError("a manifest value contains 64 zeros, the checksum placeholder")
    return text.replace(_PLACEHOLDER.encode("ascii"), sha256_bytes(text).encode("ascii"))


#: the manifest schema check; refquant.conformance.schema installs it when the package is
#: imported (the schema needs the registered operations, which need this module)
_SCHEMA_CHECK: Callable[[Any, str], None] | None = None


def set_schema_check(check: Callable[[Any, str], None]) -> None:
    """Install the manifest schema check that :func:`load_suite` and :func:`manifest_bytes`
    run (done once by :mod:`refquant.conformance.schema`)."""
    global _SCHEMA_CHECK
    _SCHEMA_CHECK = check


def _validate_manifest(manifest: Any, where: str = "manifest.json") -> None:
    if _SCHEMA_CHECK is None:  # only if this module is loaded without its package
        raise RuntimeError("no manifest schema installed: import refquant.conformance")
    _SCHEMA_CHECK(manifest, where)


def manifest_bytes(cases: Iterable[Case], generator: str) -> tuple[bytes, dict[str, bytes]]:
    """Serialise ``cases``: returns the manifest bytes and ``{relative path: file bytes}``.

    The manifest passes the reader's schema check before it is returned (a case the reader
    would refuse raises :class:`FixtureError` here, before anything is written)."""

    files: dict[str, bytes] = {}
    seen: set[str] = set()
    entries = []
    for case in cases:
        if case.id in seen:
            raise ValueError(f"duplicate case id {case.id!r}")
        seen.add(case.id)
        entries.append(_case_json(case, files))
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "generator": generator,
        "num_cases": len(entries),
        "cases": entries,
    }
    data = seal_manifest(manifest)
    _validate_manifest(_parse(data, "the manifest being written"), "the manifest being written")
    return data, files


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _generated_files(out: Path) -> set[str]:
    """Names under ``out/data`` that ``out/manifest.json`` says refquant wrote (empty set
    when the manifest is missing or not refquant's)."""
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return set()
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        return set()
    names: set[str] = set()
    cases = manifest.get("cases")
    for case in cases if isinstance(cases, list) else []:
        for section in ("inputs", "outputs"):
            block = case.get(section) if isinstance(case, dict) else None
            if not isinstance(block, dict):
                continue
            for meta in block.values():
                rel = meta.get("file") if isinstance(meta, dict) else None
                if isinstance(rel, str) and rel.startswith("data/") and "/" not in rel[5:]:
                    names.add(rel[5:])
    return names


def check_destination(out_dir: str | os.PathLike[str], replace_fixtures: bool = False) -> Path:
    """Refuse a destination whose writing would delete or overwrite anything not refquant's.

    A new or empty directory is always accepted. A non-empty one only with
    ``replace_fixtures=True`` and only when it is a refquant fixture directory: its
    ``manifest.json`` is refquant's and every entry of its ``data/`` is a file that manifest
    names (writing replaces exactly ``data/`` and ``manifest.json``; other files such as
    SPEC.md are kept). Raises ``FileExistsError`` naming the directory otherwise.
    """
    out = Path(out_dir)
    if os.fspath(out_dir) == "":
        raise ValueError("output directory must be a path, got an empty string")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if not out.exists() or _is_empty_dir(out):
        return out
    if not replace_fixtures:
        raise FileExistsError(f"directory {out} exists and is not empty; refusing to write "
                              f"fixtures into it (nothing in it is deleted or overwritten): "
                              f"choose a new or empty directory")
    known = _generated_files(out)
    if not known:
        raise FileExistsError(f"{out} is not empty and holds no refquant manifest.json; "
                              f"refusing to replace anything in it")
    data = out / "data"
    if data.exists():
        if not data.is_dir():
            raise FileExistsError(f"{data} is not a directory; refusing to replace it")
        for entry in sorted(data.iterdir()):
            if entry.name not in known or not entry.is_file() or entry.is_symlink():
                raise FileExistsError(f"{entry} is not a fixture file that {out}/manifest.json "
                                      f"names; refusing to delete it (move it away first)")
    return out


def write_suite(cases: Iterable[Case], out_dir: str | os.PathLike[str], generator: str,
                *, replace_fixtures: bool = False) -> Path:
    """Write ``manifest.json`` and ``data/*.npy`` under ``out_dir``.

    ``out_dir`` must be new or empty, or (``replace_fixtures=True``) a refquant fixture
    directory as :func:`check_destination` defines it. Everything is serialised in memory
    first and written to a temporary directory beside the target, so a failure leaves
    ``out_dir`` untouched. Then ``data/`` is replaced as a whole and ``manifest.json`` last.
    """
    out = check_destination(out_dir, replace_fixtures)
    manifest, files = manifest_bytes(cases, generator)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".rq-gen-", dir=out))
    try:
        (tmp / "data").mkdir()
        for rel, data in files.items():
            (tmp / rel).write_bytes(data)
        (tmp / "manifest.json").write_bytes(manifest)
        old = out / "data"
        if old.exists():
            trash = out / f".rq-old-{os.getpid()}"
            old.rename(trash)
            shutil.rmtree(trash)
        (tmp / "data").rename(out / "data")
        os.replace(tmp / "manifest.json", out / "manifest.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise FixtureError(msg)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse(data: bytes, where: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FixtureError(f"{where}: not valid JSON ({exc})") from exc


def _load_array(root: Path, case_id: str, name: str, meta: Mapping[str, Any]) -> np.ndarray:
    path = root / meta["file"]
    _require(path.is_file(), f"case {case_id}: missing fixture file {path}")
    data = path.read_bytes()
    digest = sha256_bytes(data)
    _require(digest == meta["sha256"],
             f"case {case_id}: checksum mismatch for {path}: manifest says {meta['sha256']}, "
             f"file has {digest} (corrupt or tampered fixture; regenerate with "
             f"`refquant conformance generate`)")
    arr = read_npy(data, str(path))
    _require(arr.dtype.name == meta["dtype"] and list(arr.shape) == list(meta["shape"]),
             f"case {case_id}: {path} holds {arr.dtype}{list(arr.shape)}, manifest says "
             f"{meta['dtype']}{list(meta['shape'])}")
    arr.setflags(write=False)
    return arr


def load_suite(root: str | os.PathLike[str]) -> Suite:
    """Read and verify a fixture directory (``manifest.json`` + ``data/``).

    In order: the manifest parses as JSON with refquant's ``format`` and this reader's
    ``version``; its ``manifest_sha256`` matches (:func:`manifest_checksum`); every key
    passes the schema (:func:`refquant.conformance.schema.validate_manifest`); then every
    file's SHA-256, dtype and shape. Raises :class:`FixtureError` naming the file, case and
    key at the first failure; nothing is returned from a manifest that fails any check.
    """

    base = Path(root)
    mpath = base / "manifest.json"
    _require(mpath.is_file(), f"no manifest.json in fixture directory {base}")
    raw = mpath.read_bytes()
    manifest = _parse(raw, str(mpath))
    _require(isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME,
             f"{mpath}: 'format' must be {FORMAT_NAME!r}")
    version = manifest.get("version")
    _require(version == FORMAT_VERSION and not isinstance(version, bool),
             f"{mpath}: format version {version!r} is not supported (this reader: "
             f"{FORMAT_VERSION})")
    try:
        digest = _checksum(raw, manifest.get(CHECKSUM_KEY))
    except FixtureError as exc:
        raise FixtureError(f"{mpath}: {exc}") from None
    _require(digest == manifest[CHECKSUM_KEY],
             f"{mpath}: checksum mismatch: {CHECKSUM_KEY} says {manifest[CHECKSUM_KEY]}, the "
             f"file hashes to {digest} (edited or corrupt manifest; regenerate with "
             f"`refquant conformance generate`)")
    _validate_manifest(manifest, str(mpath))
    cases: list[Case] = []
    for c in manifest["cases"]:
        cid = c["id"]
        inputs = {k: _load_array(base, cid, k, v) for k, v in c["inputs"].items()}
        outputs = {k: _load_array(base, cid, k, v) for k, v in c["outputs"].items()}
        cases.append(Case(
            id=cid, op=c["op"], kind=c["kind"], family=c["family"], params=c["params"],
            inputs=inputs, outputs=outputs, compare=c["compare"], profile=c["profile"],
            tags=list(c["tags"]), description=c["description"],
            expected_divergence=dict(c.get("expected_divergence", {})), primary=c["primary"],
        ))
    return Suite(root=base, version=int(version), generator=manifest["generator"],
                 cases=cases)
