"""``refquant demo``: the main job on the embedded default.

With Paddle installed (the ``paddle`` or ``test`` extra) the demo is the end-to-end PTQ run
of :func:`refquant.adapters.paddle.demo.run_ptq_demo`: a small CNN trained on scikit-learn's
bundled digits, calibrated with every activation observer in both profiles, converted,
exported to ONNX QDQ and evaluated in Paddle and ONNX Runtime (``report.md``,
``report.json``, plots). Either way it also runs the reference walkthrough below into
``<out>/reference`` (or ``<out>`` itself without Paddle):

1. every observer, in both profiles, calibrates four embedded activation tensors; the
   report gives the scale, the decision margin, the quantization SQNR and the time;
2. the conformance suite runs against every real implementation installed (Paddle,
   PaddleSlim, ONNX Runtime, onnx.reference, PyTorch), bit for bit;
3. a histogram plot with each observer's threshold.

The exit code is 1 when a conformance case fails or the best int8 accuracy is more than one
point below float.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._stderr import drop_stderr_lines
from .qparams import QParams

__all__ = ["embedded_tensors", "run_demo"]

#: What importing Paddle prints where OpenCV was built for NumPy 1.x: ``paddle/dataset/
#: image.py`` (PaddlePaddle/Paddle) imports ``cv2`` inside ``try/except ImportError``, and
#: NumPy's C import check prints this line before raising. Paddle works without OpenCV.
_CV2_ABI = (r"^RuntimeError: module compiled against ABI version 0x[0-9a-fA-F]+ "
            r"but this version of numpy is")
#: Paddle's warning at import when ``ccache`` is absent (only C++ extension builds use it).
_CCACHE = "No ccache found"
#: glog line of Paddle's ``paddle.var`` / ``paddle.std`` on a CPU build (an int64 true
#: division inside ``python/paddle/tensor/stat.py``), logged once per process. PaddleSlim's
#: EMD observer and LSQ+ quanters call ``paddle.std``; refquant's adapter does not.
_PADDLE_STD_PROMOTION = r"Got different data type, run type promotion automatically"


def embedded_tensors(quick: bool = False) -> dict[str, list[np.ndarray]]:
    """The embedded default: four activation-like tensors, each as 4 calibration batches
    of shape ``(32, features)`` (samples first, as observers expect).

    Generated from fixed seeds with NumPy's PCG64, so every machine sees the same bits.
    """
    rng = np.random.default_rng(20261125)
    n = 64 if quick else 1_024
    shape = (4, 32, n)
    normal = rng.standard_normal(shape).astype(np.float32)
    heavy = rng.standard_t(3, shape).astype(np.float32)
    relu = np.maximum(rng.standard_normal(shape) * 2.0 + 0.5, 0.0).astype(np.float32)
    outlier = rng.standard_normal(shape).astype(np.float32)
    outlier[:, :, :: max(n // 10, 1)] *= 40.0
    return {
        "normal": list(normal),
        "student_t3": list(heavy),
        "post_relu": list(relu),
        "outliers": list(outlier),
    }


def _sqnr_db(x: np.ndarray, qp: QParams) -> float:
    """Signal-to-quantization-noise ratio of ``x`` on ``qp``'s grid.

    Textbook affine fake quantization in float64 (``q = clip(rint(x / step) + zp, qmin,
    qmax)``, ``y = (q - zp) * step``), so every observer is judged on the same footing
    whatever kernel later runs its parameters.
    """
    step = np.asarray(qp.step, dtype=np.float64)
    zp = np.asarray(qp.zero_point, dtype=np.float64)
    x64 = x.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(np.rint(np.where(step > 0, x64 / np.where(step > 0, step, 1.0), 0.0)) + zp,
                    qp.qmin, qp.qmax)
    y = (q - zp) * step
    noise = float(np.sum((x64 - y) ** 2))
    signal = float(np.sum(x64**2))
    return float("inf") if noise == 0 else float(10.0 * np.log10(signal / noise))


def _calibrate_all(
    tensors: dict[str, list[np.ndarray]], progress: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    from . import observers

    rows: list[dict[str, Any]] = []
    per_tensor = [
        name for name in getattr(observers, "ACTIVATION_OBSERVERS", ())
    ]
    jobs = [(t, o, p) for t in tensors for o in per_tensor for p in ("canonical", "paddleslim")]
    for tname, oname, profile in progress(jobs):
        cls = getattr(observers, oname)
        obs = cls(quant_bits=8, profile=profile)
        start = time.perf_counter()
        try:
            for batch in tensors[tname]:
                obs.observe(batch)
            qp = obs.compute()
        except (ValueError, TypeError, ZeroDivisionError, AssertionError) as exc:
            rows.append({"tensor": tname, "observer": oname, "profile": profile,
                         "error": f"{type(exc).__name__}: {exc}"})
            continue
        seconds = time.perf_counter() - start
        x = np.concatenate(tensors[tname])
        rows.append({
            "tensor": tname, "observer": oname, "profile": profile,
            "scale": float(np.asarray(qp.scale).ravel()[0]), "convention": qp.convention,
            "zero_point": int(np.asarray(qp.zero_point).ravel()[0]),
            "margin": None if qp.margin is None else float(np.asarray(qp.margin).ravel()[0]),
            "sqnr_db": round(_sqnr_db(x, qp), 3), "calib_seconds": round(seconds, 4),
        })
    return rows


def _progress() -> Callable[[Any], Any]:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the plot/test extras
        return lambda it: it
    return lambda it: tqdm(it, desc="calibrating", unit="run")


def _plot(tensors: dict[str, list[np.ndarray]], rows: list[dict[str, Any]], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    fig, axes = plt.subplots(len(tensors), 1, figsize=(9, 3.2 * len(tensors)))
    for ax, (tname, batches) in zip(np.atleast_1d(axes), tensors.items(), strict=True):
        x = np.abs(np.concatenate(batches)).ravel()
        ax.hist(x, bins=200, color="0.75", log=True)
        mine = [r for r in rows if r["tensor"] == tname and r["profile"] == "canonical"
                and "scale" in r and r["convention"] == "threshold"]
        for i, row in enumerate(mine):
            ax.axvline(row["scale"], lw=1.2, color=f"C{i}", ls=("-", "--", ":")[i % 3],
                       label=row["observer"].removesuffix("Observer"))
        ax.set_title(f"|x| of '{tname}' with each canonical observer's threshold")
        ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    path = out / "thresholds.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path.name)
    return written


def _write_markdown(report: dict[str, Any], out: Path) -> None:
    lines = ["# refquant demo report", "", "## Observers on the embedded tensors", "",
             "| tensor | observer | profile | scale | margin | SQNR dB | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in report["observers"]:
        if "error" in r:
            lines.append(f"| {r['tensor']} | {r['observer']} | {r['profile']} | "
                         f"{r['error']} | | | |")
        else:
            margin = "" if r["margin"] is None else f"{r['margin']:.3g}"
            lines.append(f"| {r['tensor']} | {r['observer']} | {r['profile']} | "
                         f"{r['scale']:.9g} | {margin} | {r['sqnr_db']} | {r['calib_seconds']} |")
    lines += ["", "## Kernel cross-check against installed implementations", ""]
    checks = report.get("kernel_checks", {})
    if not checks:
        lines.append("(no conformance suite in this build)")
    for target, summary in checks.items():
        lines.append(f"- **{target}**: {summary}")
    lines += ["", *[f"![plot]({p})" for p in report.get("plots", [])]]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _kernel_checks() -> dict[str, str]:
    """Run the conformance suite against every target whose package is installed."""
    from .conformance import default_fixture_dir, get_target, load_suite, run_suite

    suite = load_suite(default_fixture_dir())
    results: dict[str, str] = {}
    for name in ("reference", "paddle", "paddleslim", "onnxruntime", "onnx-reference", "torch"):
        target = get_target(name)
        missing = target.missing()
        if missing is not None:
            results[name] = f"not run: {missing}"
            continue
        # PaddleSlim's own observers run here (a Paddle log line, see _PADDLE_STD_PROMOTION)
        quiet = drop_stderr_lines(_PADDLE_STD_PROMOTION) if name == "paddleslim" \
            else contextlib.nullcontext()
        with quiet:
            rep = run_suite(suite, target)
        results[name] = (f"{rep['passed']} passed, {rep['failed']} failed, "
                         f"{rep['expected_divergences']} expected divergences, "
                         f"{rep['skipped']} not applicable, of {rep['total']} cases")
    return results


def run_reference_walkthrough(out: Path, quick: bool = False) -> dict[str, Any]:
    """Observers on the embedded tensors plus the conformance cross-check; writes ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = embedded_tensors(quick)
    rows = _calibrate_all(tensors, _progress())
    report: dict[str, Any] = {"observers": rows, "kernel_checks": _kernel_checks()}
    report["plots"] = _plot(tensors, rows, out)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    _write_markdown(report, out)
    return report


def _ptq_demo() -> Callable[..., dict[str, Any]] | None:
    import warnings

    with drop_stderr_lines(_CV2_ABI), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CCACHE, category=UserWarning)
        try:
            from .adapters.paddle.demo import run_ptq_demo
        except ImportError:  # Paddle (or the adapter's dependencies) not installed
            return None
    return run_ptq_demo


def run_demo(out: Path, quick: bool = False) -> int:
    """Run the demo, write the reports into ``out``; returns the process exit code."""
    out.mkdir(parents=True, exist_ok=True)
    ptq = _ptq_demo()
    code = 0
    if ptq is None:
        print("Paddle is not installed: running the reference walkthrough only "
              "(pip install 'refquant[test]' for the end-to-end PTQ demo)")
        ref_dir = out
    else:
        report = ptq(out, quick=quick)
        best = report["best"]
        print(f"float accuracy {report['float_acc']:.4f}; best int8 {best['name']} "
              f"{best['int8_acc']:.4f} (drop {100 * best['drop']:.2f} points)")
        if not best["within_1_point"]:
            print("best int8 accuracy is more than 1 point below float")
            code = 1
        print(f"wrote {out / 'report.md'}, {out / 'report.json'}"
              + "".join(f", {out / p}" for p in report.get("plots", [])))
        ref_dir = out / "reference"
    walk = run_reference_walkthrough(ref_dir, quick=quick)
    print(f"wrote {ref_dir / 'report.md'}, {ref_dir / 'report.json'}"
          + "".join(f", {ref_dir / p}" for p in walk["plots"]))
    for target, summary in walk["kernel_checks"].items():
        print(f"conformance {target}: {summary}")
    failed = [t for t, summary in walk["kernel_checks"].items()
              if "failed" in summary and ", 0 failed" not in summary]
    if failed:
        print(f"conformance failures against: {', '.join(failed)}")
        code = 1
    return code
