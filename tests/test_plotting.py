"""``refquant.plotting``: threshold histograms and accuracy charts (headless, framework-free)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from refquant.plotting import (  # noqa: E402
    FORMATS,
    check_output_path,
    clip_range,
    plot_accuracy,
    plot_thresholds,
)
from refquant.qparams import QParams, asymmetric_qparams, symmetric_qparams  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    """Width and height from the IHDR chunk (PNG spec: bytes 16..24, big-endian)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _report(rows):
    return {"observers": {name: dict(zip(("float_acc", "int8_acc", "ort_acc"), accs,
                                         strict=True)) for name, accs in rows.items()}}


def test_plot_thresholds_writes_a_png_and_leaves_x_alone(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32)).astype(np.float32)
    before = x.copy()
    qps = {"absmax": symmetric_qparams(-3.5, 3.5), "tight": symmetric_qparams(0, 2.0),
           "asym": asymmetric_qparams(-1.0, 3.0, signed=True)}
    path = plot_thresholds(x, qps, tmp_path / "t.png", title="test")
    assert path == tmp_path / "t.png"
    w, h = _png_size(path)
    assert w > 100 and h > 100
    np.testing.assert_array_equal(x.view(np.uint32), before.view(np.uint32))


def test_plot_thresholds_many_observers_and_str_path(tmp_path):
    x = np.linspace(-5, 5, 1001)
    qps = {f"obs{k}": symmetric_qparams(0, 0.5 + k) for k in range(12)}
    path = plot_thresholds(x, qps, str(tmp_path / "many.png"), bins=50)
    assert _png_size(path)[0] > 100


def test_clip_range_hand_worked():
    # S = 1.27 (float32 0x3FA28F5C), qmax = 127: step = fl32(1.27f / 127)
    qp = symmetric_qparams(-1.27, 1.27)
    step = float(np.float32(np.float32(1.27) / np.float32(127)))
    assert clip_range(qp) == (-128 * step, 127 * step)
    # asymmetric, step convention: [-1, 3] on [-128, 127] -> step 4/255, zp -128 - rint(-1/step)
    qa = asymmetric_qparams(-1.0, 3.0, signed=True)
    s = float(np.float32(4.0 / 255.0))
    zp = -128 - round(-1.0 / (4.0 / 255.0))
    assert int(qa.zero_point) == zp == -64
    assert clip_range(qa) == ((-128 - zp) * s, (127 - zp) * s)


def test_plot_thresholds_errors(tmp_path):
    x = np.ones(10, np.float32)
    qp = symmetric_qparams(0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        plot_thresholds(np.array([1.0, np.nan]), {"a": qp}, tmp_path / "a.png")
    with pytest.raises(TypeError, match="x"):
        plot_thresholds(np.arange(4), {"a": qp}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="x"):
        plot_thresholds(np.zeros(0, np.float32), {"a": qp}, tmp_path / "a.png")
    with pytest.raises(TypeError, match="qparams"):
        plot_thresholds(x, [qp], tmp_path / "a.png")
    with pytest.raises(TypeError, match="QParams"):
        plot_thresholds(x, {"a": 1.0}, tmp_path / "a.png")
    per_channel = symmetric_qparams(np.zeros(3), np.ones(3), axis=0)
    with pytest.raises(ValueError, match="per-tensor"):
        plot_thresholds(x, {"a": per_channel}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="bins"):
        plot_thresholds(x, {"a": qp}, tmp_path / "a.png", bins=1)
    with pytest.raises(ValueError, match="directory"):
        plot_thresholds(x, {"a": qp}, tmp_path / "missing" / "a.png")
    with pytest.raises(TypeError, match="path"):
        plot_thresholds(x, {"a": qp}, 3)
    assert not list(tmp_path.iterdir())


def test_plot_accuracy_writes_a_png(tmp_path):
    report = _report({"A/canonical": (0.97, 0.965, 0.965), "B/paddleslim": (0.97, 0.9, None)})
    path = plot_accuracy(report, tmp_path / "acc.png")
    w, h = _png_size(path)
    assert w > 100 and h > 100


@pytest.mark.parametrize("bad", [
    {},
    {"observers": {}},
    {"observers": []},
    {"observers": {"a": 1}},
    {"observers": {"a": {"float_acc": 0.9, "int8_acc": 1.5, "ort_acc": 0.9}}},
    {"observers": {"a": {"float_acc": True, "int8_acc": 0.5, "ort_acc": 0.9}}},
    {"observers": {"a": {"float_acc": 0.9, "int8_acc": 0.5, "ort_acc": "0.9"}}},
    {"observers": {"a": {"float_acc": 0.9}}},
])
def test_plot_accuracy_rejects_bad_reports(tmp_path, bad):
    with pytest.raises(ValueError, match="report"):
        plot_accuracy(bad, tmp_path / "acc.png")
    assert not (tmp_path / "acc.png").exists()


def test_plotting_imports_no_framework_and_no_pyplot(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from refquant.plotting import plot_thresholds, plot_accuracy\n"
        "from refquant.qparams import symmetric_qparams\n"
        f"plot_thresholds(np.ones(8, np.float32), {{'a': symmetric_qparams(0, 1.0)}}, "
        f"{str(tmp_path / 'p.png')!r})\n"
        "bad = [m for m in ('paddle', 'paddleslim', 'onnx', 'onnxruntime', 'torch', "
        "'matplotlib.pyplot') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == ""
    assert _png_size(tmp_path / "p.png")[0] > 0


def test_qparams_are_not_modified(tmp_path):
    qp = QParams(np.float32(2.0), 0, -128, 127, 8)
    plot_thresholds(np.arange(10, dtype=np.float64), {"a": qp}, tmp_path / "q.png")
    assert qp.scale.view(np.uint32) == np.float32(2.0).view(np.uint32)


# File signatures from each format's specification (PDF 1.7 section 7.5.2, EPS 3.0, JPEG
# SOI marker, XML declaration for SVG), not from refquant.
MAGIC = {".pdf": b"%PDF-", ".eps": b"%!PS-Adobe-3.0 EPSF", ".ps": b"%!PS-Adobe-3.0",
         ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff", ".svg": b"<?xml",
         ".png": PNG_SIGNATURE, ".tif": b"II*\x00", ".webp": b"RIFF"}


@pytest.mark.parametrize("suffix", sorted(MAGIC))
def test_the_suffix_picks_the_format(tmp_path, suffix):
    qp = {"a": symmetric_qparams(0, 1.0)}
    path = plot_thresholds(np.linspace(-1, 1, 101), qp, tmp_path / f"t{suffix.upper()}")
    assert path.read_bytes().startswith(MAGIC[suffix])
    acc = plot_accuracy(_report({"A": (0.9, 0.8, None)}), tmp_path / f"a{suffix}")
    assert acc.read_bytes().startswith(MAGIC[suffix])


def test_every_listed_format_is_writable(tmp_path):
    x = np.linspace(-1, 1, 11)
    for suffix in FORMATS:
        out = plot_thresholds(x, {"a": symmetric_qparams(0, 1.0)}, tmp_path / f"f{suffix}")
        assert out.stat().st_size > 0, suffix


@pytest.mark.parametrize("make, message", [
    (lambda d: "", "empty string"),
    (lambda d: d, "is a directory"),
    (lambda d: d / "t.xyz", "suffix '.xyz'"),
    (lambda d: d / "t", r"suffix '\(none\)'"),
    (lambda d: d / "missing" / "t.png", "does not exist"),
    (lambda d: d / "afile" / "t.png", "is a file, not a directory"),
])
def test_bad_output_paths_are_refused_before_drawing(tmp_path, make, message):
    (tmp_path / "afile").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=message):
        check_output_path(make(tmp_path), "out")
    with pytest.raises(ValueError, match=message):
        plot_thresholds(np.ones(4), {"a": symmetric_qparams(0, 1.0)}, make(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "afile").read_text() == "x"


def test_check_output_path_names_the_argument(tmp_path):
    with pytest.raises(ValueError, match="^--out "):
        check_output_path(tmp_path / "t.bmp", "--out")
    with pytest.raises(TypeError, match="--out"):
        check_output_path(b"t.png", "--out")
    assert check_output_path(tmp_path / "T.SVG") == (tmp_path / "T.SVG", "svg")
