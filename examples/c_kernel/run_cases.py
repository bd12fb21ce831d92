"""Run the C QuantizeLinear kernel on exported conformance cases, the way a kernel vendor's
harness would.

    refquant conformance export ./cases
    sh build.sh ./build
    python run_cases.py ./cases ./results --binary ./build/quantize_linear [--ties-away]
    refquant conformance check --results ./results --fixtures ./cases
    refquant diagnose --results ./results --fixtures ./cases

It verifies the manifest's own checksum and each input file's SHA-256 (SPEC.md section 2),
then runs the binary on every case it supports: the ``diagnose.quantize.*`` cases and the
per-tensor float32 ``onnx.quantize_linear`` cases with an 8/16/4-bit integer output. Each
result is written as ``RESULTS/<case-id>.npy`` in the expected output's dtype. Needs only
NumPy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
          "uint16": (0, 65535), "int4": (-8, 7), "uint4": (0, 15)}


def load_manifest(cases: Path) -> dict:
    raw = (cases / "manifest.json").read_bytes()
    digest = json.loads(raw)["manifest_sha256"]
    if raw.count(digest.encode()) != 1 or hashlib.sha256(
            raw.replace(digest.encode(), b"0" * 64)).hexdigest() != digest:
        raise SystemExit("manifest.json: checksum mismatch")
    return json.loads(raw)


def load_input(cases: Path, meta: dict) -> np.ndarray:
    data = (cases / meta["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise SystemExit(f"{meta['file']}: checksum mismatch")
    return np.load(cases / meta["file"], allow_pickle=False)


def job(case: dict, cases: Path) -> tuple[np.ndarray, float, int, int, int, str] | None:
    """``(x, scale, zero_point, qmin, qmax, output dtype)`` for a supported case."""
    ins, p = case["inputs"], case["params"]
    if case["op"].startswith("diagnose.quantize."):
        return (load_input(cases, ins["x"]), float(load_input(cases, ins["scale"])),
                int(load_input(cases, ins["zero_point"])), p["qmin"], p["qmax"], "int32")
    if case["op"] != "onnx.quantize_linear" or p.get("block_size", 0) != 0:
        return None
    out_type = p.get("output_dtype") or "uint8"
    if out_type not in RANGES or ins["x"]["dtype"] != "float32":
        return None
    if ins["y_scale"]["shape"] not in ([], [1]):
        return None
    zp = int(load_input(cases, ins["y_zero_point"]).reshape(-1)[0]) \
        if "y_zero_point" in ins else 0
    qmin, qmax = RANGES[out_type]
    dtype = case["outputs"][case["primary"]]["dtype"]
    return (load_input(cases, ins["x"]), float(load_input(cases, ins["y_scale"]).reshape(-1)[0]),
            zp, qmin, qmax, dtype)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", type=Path, help="directory written by `refquant conformance export`")
    ap.add_argument("results", type=Path, help="new or empty results directory")
    ap.add_argument("--binary", type=Path, required=True, help="the built quantize_linear")
    ap.add_argument("--ties-away", action="store_true", help="run the deliberately wrong variant")
    args = ap.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(args.cases)
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in manifest["cases"]:
            spec = job(case, args.cases)
            if spec is None:
                continue
            x, scale, zp, qmin, qmax, dtype = spec
            src, dst = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
            np.save(src, np.ascontiguousarray(x, dtype="<f4"))
            cmd = [str(args.binary), *(["--ties-away"] if args.ties_away else []), str(src),
                   float(np.float32(scale)).hex(), str(zp), str(qmin), str(qmax), str(dst)]
            subprocess.run(cmd, check=True)
            y = np.load(dst, allow_pickle=False)
            np.save(args.results / f"{case['id']}.npy", y.astype(dtype))
            n += 1
    print(f"wrote {n} results to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
