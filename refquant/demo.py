"""The reference walkthrough of ``refquant demo``, and what the demos share.

:func:`run_reference_walkthrough` needs only the core (NumPy; matplotlib and tqdm when
installed) and writes ``report.json``, ``report.md`` and a plot:

1. every activation observer, in both profiles, calibrates four embedded activation
   tensors; the report gives the scale, the decision margin, the quantization SQNR and the
   time;
   next to them, one observer of each other framework's family (torch.ao, ONNX Runtime,
   NNCF, ModelOpt; :data:`FAMILY_OBSERVERS`) with the spread of its scale over the orders
   of the batches (:mod:`refquant.observers.order`);
2. the conformance suite runs against every real implementation installed (Paddle,
   PaddleSlim, ONNX Runtime, onnx.reference, PyTorch), bit for bit; the report keeps the
   counts of each run (:func:`check_summary` words them);
3. a histogram plot with each observer's threshold.

The ``refquant demo`` command (``refquant/cli.py``) composes this walkthrough with the Paddle
adapter's end-to-end PTQ demo (``adapters/paddle/demo.py``) and derives its exit
code from the counts both return. The pieces both demos use live here: :data:`SEED`,
:data:`PROFILES`, :data:`ACTIVATION_OBSERVERS`, :func:`progress`, :func:`markdown_table` and
:func:`write_report`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from ._stderr import drop_stderr_lines
from .observers import ACTIVATION_OBSERVERS
from .profiles import Profile
from .qparams import QParams

__all__ = [
    "ACTIVATION_OBSERVERS",
    "PROFILES",
    "SEED",
    "KERNEL_CHECK_TARGETS",
    "check_summary",
    "conformance_failures",
    "embedded_tensors",
    "markdown_table",
    "progress",
    "run_reference_walkthrough",
    "write_report",
]

#: Seed of every random draw of the demos (NumPy's PCG64 and Paddle's generator).
SEED = 20261125
#: The profiles the demos compare, in report order.
PROFILES: tuple[Profile, ...] = ("canonical", "paddleslim")
#: The conformance targets the walkthrough runs, where their packages are installed.
KERNEL_CHECK_TARGETS = ("reference", "paddle", "paddleslim", "onnxruntime", "onnx-reference",
                        "torch", "onnxruntime-int8")

#: glog line of Paddle's ``paddle.var`` / ``paddle.std`` on a CPU build (an int64 true
#: division inside PaddlePaddle/Paddle ``python/paddle/tensor/stat.py``), logged once per
#: process. PaddleSlim's EMD observer and LSQ+ quanters call ``paddle.std``; refquant's
#: adapter does not (``docs/demo.md``).
_PADDLE_STD_PROMOTION = r"Got different data type, run type promotion automatically"


# ---------------------------------------------------------------------------------------
# shared by both demos
# ---------------------------------------------------------------------------------------
class ProgressBar(Protocol):
    """What the demos use of a progress bar (a ``tqdm`` bar has it)."""

    def update(self, n: float = 1) -> Any: ...

    def close(self) -> None: ...

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Any: ...


class _NoBar:
    """The stand-in where tqdm is not installed: counts nothing, prints nothing."""

    def update(self, n: float = 1) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None


def progress(total: int, desc: str, unit: str = "step", leave: bool = True) -> ProgressBar:
    """A progress bar of ``total`` steps on stderr (``tqdm``, in the plot and test extras),
    or a silent stand-in without tqdm. Use it as a context manager and call ``update()``
    after each step."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the plot/test extras
        return _NoBar()
    bar: ProgressBar = tqdm(total=total, desc=desc, unit=unit, leave=leave)
    return bar


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table: ``| a | b |``, ``|---|---|``, then one line per row
    (cells formatted with ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def write_report(out: Path, report: Mapping[str, Any], markdown: Sequence[str]) -> None:
    """Write ``report.json`` (``report``, one-space indent) and ``report.md`` (the
    ``markdown`` lines, newline-terminated) into ``out``."""
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text("\n".join(markdown) + "\n")


# ---------------------------------------------------------------------------------------
# the reference walkthrough
# ---------------------------------------------------------------------------------------
def embedded_tensors(quick: bool = False) -> dict[str, list[np.ndarray]]:
    """The embedded default: four activation-like tensors, each as 4 calibration batches
    of shape ``(32, features)`` (samples first, as observers expect).

    Generated from :data:`SEED` with NumPy's PCG64, so every machine sees the same bits.
    """
    rng = np.random.default_rng(SEED)
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


def _calibrate_one(tname: str, batches: list[np.ndarray], oname: str, profile: Profile
                   ) -> dict[str, Any]:
    """One observer on one tensor: its QParams, margin, SQNR and time (or the error)."""
    from . import observers

    row: dict[str, Any] = {"tensor": tname, "observer": oname, "profile": profile}
    obs = observers.OBSERVERS[oname](quant_bits=8, profile=profile)
    start = time.perf_counter()
    try:
        for batch in batches:
            obs.observe(batch)
        qp = obs.compute()
    except (ValueError, TypeError, ZeroDivisionError, AssertionError) as exc:
        return {**row, "error": f"{type(exc).__name__}: {exc}"}
    seconds = time.perf_counter() - start
    return {
        **row,
        "scale": float(np.asarray(qp.scale).ravel()[0]), "convention": qp.convention,
        "zero_point": int(np.asarray(qp.zero_point).ravel()[0]),
        "margin": None if qp.margin is None else float(np.asarray(qp.margin).ravel()[0]),
        "sqnr_db": round(_sqnr_db(np.concatenate(batches), qp), 3),
        "calib_seconds": round(seconds, 4),
    }


#: one observer of each other framework's family, next to PaddleSlim's: (family, class,
#: constructor arguments); a family that is not part of this build is left out
FAMILY_OBSERVERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("torch", "HistogramObserver", {"dtype": "qint8", "qscheme": "per_tensor_symmetric"}),
    ("onnxruntime", "EntropyCalibrater", {}),
    ("nncf", "MinMaxRangeEstimator", {}),
    ("modelopt", "HistogramCalibrator", {}),
)


def _family_observers() -> list[tuple[str, Any]]:
    from .observers.families import observer_classes

    found = []
    for family, name, kwargs in FAMILY_OBSERVERS:
        try:
            cls = observer_classes(family).get(name)
        except ImportError:
            cls = None
        if cls is not None:
            found.append((f"{family}.{name}", lambda cls=cls, kwargs=kwargs: cls(**kwargs)))
    return found


def _calibrate_families(tensors: dict[str, list[np.ndarray]]) -> list[dict[str, Any]]:
    """Each other framework's observer on each tensor: its QParams (in its own convention),
    the SQNR, and how many distinct scales the 24 orders of the batches give."""
    import warnings

    from .observers.order import batch_order_sensitivity

    makers = _family_observers()
    rows: list[dict[str, Any]] = []
    if not makers:
        return rows
    with progress(len(makers) * len(tensors), "other frameworks", unit="run") as bar, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the frameworks' deprecation warnings, reproduced
        for label, make in makers:
            for tname, batches in tensors.items():
                row: dict[str, Any] = {"tensor": tname, "observer": label}
                try:
                    obs = make()
                    for batch in batches:
                        obs.observe(batch)
                    qp = obs.compute()
                    orders = batch_order_sensitivity(make, batches)
                except (ValueError, TypeError, ArithmeticError) as exc:
                    rows.append({**row, "error": f"{type(exc).__name__}: {exc}"})
                else:
                    rows.append({
                        **row, "profile": getattr(obs, "profile", ""),
                        "scale": float(np.asarray(qp.scale).ravel()[0]),
                        "convention": qp.convention,
                        "zero_point": int(np.asarray(qp.zero_point).ravel()[0]),
                        "sqnr_db": round(_sqnr_db(np.concatenate(batches), qp), 3),
                        "orders": len(orders.orders),
                        "distinct_scales": orders.distinct_scales,
                        "order_spread": orders.spread,
                    })
                bar.update()
    return rows


def _calibrate_all(tensors: dict[str, list[np.ndarray]]) -> list[dict[str, Any]]:
    jobs = [(t, o, p) for t in tensors for o in ACTIVATION_OBSERVERS for p in PROFILES]
    rows = []
    with progress(len(jobs), "calibrating", unit="run") as bar:
        for tname, oname, profile in jobs:
            rows.append(_calibrate_one(tname, tensors[tname], oname, profile))
            bar.update()
    return rows


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
        mine = [r for r in rows if r["tensor"] == tname and r["profile"] == PROFILES[0]
                and "scale" in r and r["convention"] == "threshold"]
        for i, row in enumerate(mine):
            ax.axvline(row["scale"], lw=1.2, color=f"C{i}", ls=("-", "--", ":")[i % 3],
                       label=row["observer"].removesuffix("Observer"))
        ax.set_title(f"|x| of '{tname}' with each {PROFILES[0]} observer's threshold")
        ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    path = out / "thresholds.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path.name)
    return written


def check_summary(counts: Mapping[str, Any]) -> str:
    """One conformance run in words: ``"N passed, F failed, ... of T cases"``, or
    ``"not run: <why>"``."""
    if "not_run" in counts:
        return f"not run: {counts['not_run']}"
    return (f"{counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['expected_divergences']} expected divergences, "
            f"{counts['skipped']} not applicable, of {counts['total']} cases")


def conformance_failures(report: Mapping[str, Any]) -> dict[str, int]:
    """Target -> number of failed conformance cases, for the targets with failures."""
    checks = report.get("kernel_checks", {})
    return {t: int(c.get("failed", 0)) for t, c in checks.items() if c.get("failed", 0)}


def _markdown(report: dict[str, Any]) -> list[str]:
    rows = []
    for r in report["observers"]:
        if "error" in r:
            rows.append((r["tensor"], r["observer"], r["profile"], r["error"], "", "", ""))
        else:
            margin = "" if r["margin"] is None else f"{r['margin']:.3g}"
            rows.append((r["tensor"], r["observer"], r["profile"], f"{r['scale']:.9g}", margin,
                         r["sqnr_db"], r["calib_seconds"]))
    lines = ["# refquant demo report", "", "## Observers on the embedded tensors", "",
             *markdown_table(("tensor", "observer", "profile", "scale", "margin", "SQNR dB",
                              "seconds"), rows)]
    fam = report.get("family_observers", [])
    if fam:
        frows: list[tuple[Any, ...]] = []
        for r in fam:
            if "error" in r:
                frows.append((r["tensor"], r["observer"], r["error"], "", "", ""))
            else:
                frows.append((r["tensor"], r["observer"], f"{r['scale']:.9g} [{r['convention']}]",
                             r["zero_point"], r["sqnr_db"],
                             f"{r['distinct_scales']} of {r['orders']} ({r['order_spread']:.2e})"))
        lines += ["", "## Other frameworks' observers (bug for bug) on the same tensors", "",
                  "Scale in the framework's own convention; the last column: distinct scales "
                  "over every order of the 4 batches (spread (max - min) / min), see "
                  "docs/batch-order.md.", "",
                  *markdown_table(("tensor", "observer", "scale", "zero point", "SQNR dB",
                                   "distinct scales over batch orders"), frows)]
    lines += ["", "## Kernel cross-check against installed implementations", ""]
    checks = report.get("kernel_checks", {})
    if not checks:
        lines.append("(no conformance suite in this build)")
    for target, counts in checks.items():
        lines.append(f"- **{target}**: {check_summary(counts)}")
    lines += ["", *[f"![plot]({p})" for p in report.get("plots", [])]]
    return lines


def _kernel_checks() -> dict[str, dict[str, Any]]:
    """Run the conformance suite against every target of :data:`KERNEL_CHECK_TARGETS`
    whose package is installed: target -> its counts, or ``{"not_run": why}``."""
    from .conformance import TARGET_NAMES, default_fixture_dir, get_target, load_suite, run_suite

    suite = load_suite(default_fixture_dir())
    results: dict[str, dict[str, Any]] = {}
    for name in KERNEL_CHECK_TARGETS:
        if name not in TARGET_NAMES:
            results[name] = {"not_run": f"no target {name!r} is installed"}
            continue
        target = get_target(name)
        missing = target.missing()
        if missing is not None:
            results[name] = {"not_run": missing}
            continue
        quiet = (drop_stderr_lines(_PADDLE_STD_PROMOTION) if name == "paddleslim"
                 else contextlib.nullcontext())
        with quiet:
            rep = run_suite(suite, target)
        results[name] = {k: rep[k] for k in ("total", "passed", "failed",
                                             "expected_divergences", "skipped")}
    return results


def run_reference_walkthrough(out: Path, quick: bool = False) -> dict[str, Any]:
    """Observers on the embedded tensors plus the conformance cross-check; writes ``out``.

    Returns the report (also ``report.json``): ``{"observers": [row, ...],
    "family_observers": [row, ...] (one observer of each other framework's family),
    "kernel_checks": {target: {"total", "passed", "failed", "expected_divergences",
    "skipped"} or {"not_run": why}}, "plots": [file name, ...]}``.
    """
    out.mkdir(parents=True, exist_ok=True)
    tensors = embedded_tensors(quick)
    rows = _calibrate_all(tensors)
    report: dict[str, Any] = {"observers": rows,
                              "family_observers": _calibrate_families(tensors),
                              "kernel_checks": _kernel_checks()}
    report["plots"] = _plot(tensors, rows, out)
    write_report(out, report, _markdown(report))
    return report
