"""The fixture format: a JSON manifest plus one ``.npy`` file per array (see conformance/SPEC.md).

Writer and reader. Every array is stored with :func:`numpy.lib.format.write_array`
(format version 1.0, ``allow_pickle=False``), so files are byte-stable and readable from C.
The manifest records, per file, its dtype, shape and SHA-256; the reader verifies all three
before returning anything, and refuses a manifest whose major version it does not know.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
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
]

FORMAT_NAME = "refquant-conformance"
#: Major version: a reader refuses manifests with another major version.
FORMAT_VERSION = 1
ALLOWED_DTYPES = (
    "float16", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "int64",
    "bool",
)
COMPARE_RULES = ("bits", "decision")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,150}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class FixtureError(ValueError):
    """A fixture directory or file is missing, malformed or fails its checksum."""


def check_case_id(case_id: str) -> str:
    """Case ids are lowercase ``[a-z0-9._-]``, at most 151 characters (they are file names)."""
    if not isinstance(case_id, str) or not _ID_RE.match(case_id):
        raise ValueError(f"case id must match {_ID_RE.pattern}, got {case_id!r}")
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
            if not _NAME_RE.match(name):
                raise ValueError(f"case {case.id}: array name must match {_NAME_RE.pattern}, "
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


def manifest_bytes(cases: Iterable[Case], generator: str) -> tuple[bytes, dict[str, bytes]]:
    """Serialise ``cases``: returns the manifest bytes and ``{relative path: file bytes}``."""
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
    text = json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False) + "\n"
    return text.encode("utf-8"), files


def write_suite(cases: Iterable[Case], out_dir: str | os.PathLike[str], generator: str) -> Path:
    """Write ``manifest.json`` and ``data/*.npy`` under ``out_dir``.

    Everything is serialised in memory first and written to a temporary directory beside
    the target, so a failure leaves ``out_dir`` untouched. Then ``data/`` is replaced as a
    whole and ``manifest.json`` last. Other files in ``out_dir`` (SPEC.md, ``__init__.py``)
    are kept.
    """
    out = Path(out_dir)
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


def _load_array(root: Path, case_id: str, name: str, meta: Mapping[str, Any]) -> np.ndarray:
    _require(isinstance(meta, Mapping) and {"file", "dtype", "shape", "sha256"} <= set(meta),
             f"case {case_id}: array {name!r} entry must have file, dtype, shape, sha256")
    rel = str(meta["file"])
    _require(rel.startswith("data/") and ".." not in rel and "/" not in rel[5:],
             f"case {case_id}: array {name!r} file {rel!r} must be a file directly under data/")
    path = root / rel
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

    Raises :class:`FixtureError` naming the case and file for a missing file, a checksum,
    dtype or shape mismatch, a malformed manifest or an unknown major version.
    """
    base = Path(root)
    mpath = base / "manifest.json"
    _require(mpath.is_file(), f"no manifest.json in fixture directory {base}")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FixtureError(f"{mpath}: not valid JSON ({exc})") from exc
    _require(isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME,
             f"{mpath}: 'format' must be {FORMAT_NAME!r}")
    version = manifest.get("version")
    _require(version == FORMAT_VERSION,
             f"{mpath}: format version {version!r} is not supported (this reader: "
             f"{FORMAT_VERSION})")
    raw_cases = manifest.get("cases")
    _require(isinstance(raw_cases, list), f"{mpath}: 'cases' must be a list")
    cases: list[Case] = []
    seen: set[str] = set()
    for i, c in enumerate(raw_cases):
        _require(isinstance(c, dict), f"{mpath}: case #{i} is not an object")
        missing = {"id", "op", "kind", "family", "params", "inputs", "outputs", "compare"} - set(c)
        _require(not missing, f"{mpath}: case #{i} lacks {sorted(missing)}")
        cid = c["id"]
        _require(isinstance(cid, str) and bool(_ID_RE.match(cid)),
                 f"{mpath}: case #{i} has a bad id {cid!r}")
        _require(cid not in seen, f"{mpath}: duplicate case id {cid!r}")
        seen.add(cid)
        _require(isinstance(c["compare"], dict) and c["compare"].get("rule") in COMPARE_RULES,
                 f"case {cid}: compare rule must be one of {COMPARE_RULES}")
        _require(isinstance(c["outputs"], dict) and len(c["outputs"]) > 0,
                 f"case {cid}: needs at least one output")
        primary = c.get("primary", "")
        _require(primary in c["outputs"],
                 f"case {cid}: primary output {primary!r} is not among its outputs")
        inputs = {k: _load_array(base, cid, k, v) for k, v in c["inputs"].items()}
        outputs = {k: _load_array(base, cid, k, v) for k, v in c["outputs"].items()}
        cases.append(Case(
            id=cid, op=c["op"], kind=c["kind"], family=c["family"], params=c["params"],
            inputs=inputs, outputs=outputs, compare=c["compare"], profile=c.get("profile"),
            tags=list(c.get("tags", [])), description=c.get("description", ""),
            expected_divergence=dict(c.get("expected_divergence", {})), primary=primary,
        ))
    declared = manifest.get("num_cases")
    _require(declared == len(cases),
             f"{mpath}: num_cases says {declared}, the manifest lists {len(cases)}")
    return Suite(root=base, version=int(version), generator=str(manifest.get("generator", "")),
                 cases=cases)
