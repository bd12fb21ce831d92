"""Plots for reports: activation histograms with observer thresholds, accuracy per observer.

Matplotlib is imported lazily, inside each function, and only its object-oriented API is
used (``matplotlib.figure.Figure`` on an Agg canvas; ``Figure.savefig`` picks the writer
for the format): no ``pyplot``, no global backend switch, no display needed. No framework is
imported. Each function writes the format its path's suffix names (:data:`FORMATS`: PNG,
PDF, SVG, EPS, ...; any other suffix is refused before anything is drawn) and returns the
path. The image is rendered in memory first, so a failure leaves no partial file.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import as_float_array
from .qparams import QParams

__all__ = ["plot_thresholds", "plot_accuracy", "clip_range", "check_output_path", "FORMATS"]

#: file suffix (lower case) -> the ``format`` given to matplotlib's ``Figure.savefig``
FORMATS: dict[str, str] = {
    ".png": "png", ".pdf": "pdf", ".svg": "svg", ".svgz": "svgz", ".eps": "eps", ".ps": "ps",
    ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".webp": "webp",
}


def clip_range(qp: QParams) -> tuple[float, float]:
    """The real interval ``[lo, hi]`` that ``qp``'s grid represents (per-tensor only).

    ``lo = (qmin - zp) * step``, ``hi = (qmax - zp) * step`` in float64, with ``step`` from
    :attr:`QParams.step` (``fl32(S / qmax)`` for thresholds). For a symmetric signed grid
    ``hi`` is the threshold ``S`` (to float32 rounding of the step) and ``lo = -S - step``.
    """
    if not isinstance(qp, QParams):
        raise TypeError(f"qparams values must be QParams, got {type(qp).__name__}")
    if qp.scale.size != 1:
        raise ValueError(
            f"only per-tensor QParams can be drawn on one histogram, got scale of shape "
            f"{qp.scale.shape}"
        )
    step = float(np.asarray(qp.step, np.float64).reshape(()))
    zp = int(np.asarray(qp.zero_point).reshape(()))
    return (qp.qmin - zp) * step, (qp.qmax - zp) * step


def _threshold(qp: QParams) -> float:
    """Where ``|x|`` starts to clip: ``S`` for thresholds, ``max(|lo|, hi)`` for steps."""
    if not isinstance(qp, QParams):
        raise TypeError(f"qparams values must be QParams, got {type(qp).__name__}")
    if qp.convention == "threshold":
        if qp.scale.size != 1:
            clip_range(qp)  # raises the per-tensor error
        return float(np.asarray(qp.scale, np.float64).reshape(()))
    lo, hi = clip_range(qp)
    return max(abs(lo), abs(hi))


def check_output_path(path: Any, name: str = "path") -> tuple[Path, str]:
    """Validate an output file path before anything is computed; returns ``(path, format)``.

    The suffix must be one of :data:`FORMATS` (case-insensitive); the path must not be a
    directory or another non-regular file; its directory must exist and be writable.
    ``ValueError`` (``TypeError`` for a non-path) names ``name`` and the value.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str path, got {text!r}")
    if text == "":
        raise ValueError(f"{name} must name a file, got an empty string")
    p = Path(text)
    if p.is_dir():
        raise ValueError(f"{name} {text!r} is a directory; expected a file name such as "
                         f"{str(p / 'plot.png')!r}")
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"{name} {text!r}: suffix {p.suffix or '(none)'!r} names no format "
                         f"that can be written; use one of {', '.join(FORMATS)}")
    parent = p.parent
    if not parent.is_dir():
        what = "is a file, not a directory" if parent.exists() else "does not exist"
        raise ValueError(f"{name} {text!r}: directory {str(parent)!r} {what}")
    if p.exists() and not p.is_file():
        raise ValueError(f"{name} {text!r} exists and is not a regular file")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"{name} {text!r} is not writable (permission denied)")
    return p, fmt


def _save(fig: Any, out: Path, fmt: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    out.write_bytes(buf.getvalue())


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_thresholds(
    x: np.ndarray,
    qparams: Mapping[str, QParams],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    bins: int = 200,
) -> Path:
    """Histogram of ``|x|`` (log counts) with each observer's clipping threshold drawn on it.

    ``qparams`` maps a label (the observer's name) to its per-tensor :class:`QParams`; the
    line is at the threshold ``S`` (threshold convention) or at ``max(|lo|, hi)`` of the
    grid's range (step convention), and the legend gives its value and the fraction of
    ``|x|`` above it (the clipped fraction). ``x`` is not modified.
    """
    arr = as_float_array(x, "x")
    if not np.isfinite(arr).all():
        raise ValueError("x must be finite to plot its histogram, got NaN or Inf values")
    if not isinstance(qparams, Mapping):
        raise TypeError(f"qparams must be a mapping of label -> QParams, got "
                        f"{type(qparams).__name__}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    lines = {str(k): _threshold(v) for k, v in qparams.items()}
    out, fmt = check_output_path(path)

    mag = np.abs(arr.astype(np.float64).ravel())
    top = max([float(mag.max()), *lines.values()]) or 1.0
    fig = _figure(9.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(mag, bins=bins, range=(0.0, top * 1.02), color="0.7", log=True, label="|x|")
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    styles = ["-", "--", "-.", ":"]
    for k, (label, thr) in enumerate(lines.items()):
        clipped = float(np.count_nonzero(mag > thr)) / mag.size
        ax.axvline(thr, color=cmap(k % 20), lw=1.3, ls=styles[(k // 10) % len(styles)],
                   label=f"{label}: {thr:.4g} (clips {100 * clipped:.3g}%)")
    ax.set_xlabel("|x|")
    ax.set_ylabel("count (log)")
    ax.set_title(title or "|x| and each observer's threshold")
    ax.legend(fontsize=7, loc="upper right", ncol=1 if len(lines) <= 8 else 2)
    fig.tight_layout()
    _save(fig, out, fmt)
    return out


def _accuracy_rows(report: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(report, Mapping) or not isinstance(report.get("observers"), Mapping) \
            or not report["observers"]:
        raise ValueError("report must be a mapping with a non-empty 'observers' mapping "
                         "(name -> {'float_acc', 'int8_acc', 'ort_acc', ...})")
    rows = []
    for name, row in report["observers"].items():
        if not isinstance(row, Mapping):
            raise ValueError(f"report['observers'][{name!r}] must be a mapping, got {row!r}")
        for key in ("float_acc", "int8_acc"):
            v = row.get(key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (0 <= v <= 1):
                raise ValueError(
                    f"report['observers'][{name!r}][{key!r}] must be a fraction in [0, 1], "
                    f"got {v!r}"
                )
        ort = row.get("ort_acc")
        if ort is not None and (not isinstance(ort, (int, float)) or isinstance(ort, bool)
                                or not (0 <= ort <= 1)):
            raise ValueError(
                f"report['observers'][{name!r}]['ort_acc'] must be a fraction in [0, 1] or "
                f"None, got {ort!r}"
            )
        rows.append((str(name), dict(row)))
    return rows


def plot_accuracy(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Bar chart of int8 accuracy per observer (Paddle simulation and ONNX Runtime).

    ``report`` is :func:`refquant.adapters.paddle.demo.run_ptq_demo`'s: ``report
    ["observers"]`` maps each observer's name to fractions ``float_acc``, ``int8_acc`` and
    ``ort_acc`` (``None`` when not measured). The float accuracy is drawn as a line, the
    y axis zoomed to the data.
    """
    rows = _accuracy_rows(report)
    out, fmt = check_output_path(path)
    names = [n for n, _ in rows]
    int8 = np.array([r["int8_acc"] for _, r in rows], np.float64) * 100
    ort = np.array([np.nan if r.get("ort_acc") is None else r["ort_acc"] for _, r in rows],
                   np.float64) * 100
    flt = np.array([r["float_acc"] for _, r in rows], np.float64) * 100

    fig = _figure(max(6.0, 0.75 * len(rows) + 2.0), 4.8)
    ax = fig.add_subplot(1, 1, 1)
    pos = np.arange(len(rows), dtype=np.float64)
    width = 0.38
    ax.bar(pos - width / 2, int8, width, label="int8 (Paddle simulation)", color="tab:blue")
    ax.bar(pos + width / 2, np.nan_to_num(ort, nan=0.0), width, label="int8 (ONNX Runtime)",
           color="tab:orange")
    for k, f in enumerate(flt):
        ax.hlines(f, pos[k] - 0.45, pos[k] + 0.45, colors="k", lw=1.2,
                  label="float" if k == 0 else None)
    values = np.concatenate([int8, ort[np.isfinite(ort)], flt])
    lo = math.floor(float(values.min()) - 2.0)
    ax.set_ylim(max(0.0, lo), math.ceil(float(values.max()) + 1.5))
    ax.set_xticks(pos)
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Held-out accuracy per activation observer")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.tight_layout()
    _save(fig, out, fmt)
    return out
