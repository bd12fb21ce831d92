"""The main job, end to end, on an embedded default: PTQ of a small CNN on sklearn's digits.

:func:`run_ptq_demo` needs no network and no files: scikit-learn ships the digits data set
(1797 8x8 grey images, ``sklearn.datasets.load_digits``). It

1. trains a small CNN in Paddle (seeded, deterministic; a few seconds on 2 CPU cores);
2. calibrates it with every activation observer of :mod:`refquant.adapters.paddle.observers`
   in both profiles (``canonical`` and ``paddleslim``), with channel-wise abs-max weights,
   through :class:`refquant.adapters.paddle.PTQ`, and times the calibration of each;
3. converts each calibrated model (Paddle's ``quantize_linear`` / ``dequantize_linear``
   simulation) and exports it to ONNX in QDQ form (:func:`export_onnx`);
4. evaluates float, Paddle int8 and ONNX Runtime int8 accuracy on a held-out split, ONNX
   Runtime both with its default session and with graph optimizations off (see below);
5. writes ``report.json``, ``report.md``, the ONNX models and PNG plots (the input
   histogram of a few layers with each observer's threshold; accuracy per observer).

Held-out split: a stratified 75/25 split with a fixed seed (1347 train / 450 test). Pixel
values are scaled to ``[0, 1]``. Calibration uses training images only.

The two ONNX Runtime numbers measure different things. With graph optimizations off
(``ORT_DISABLE_ALL``), ``QuantizeLinear`` / ``DequantizeLinear`` run as float ops, so the
model computes what Paddle's simulation computes up to float summation order and ties
(``ort_qdq_acc``, ``paddle_ort_qdq_agreement``). ORT's default session fuses
``DequantizeLinear -> MatMul`` into integer kernels (``MatMulIntegerToFloat``) whose result
depends on the CPU: MLAS's u8 x s8 kernel for AVX2 without VNNI adds adjacent products in
int16 with saturation (``vpmaddubsw``), VNNI does not (onnxruntime
``onnxruntime/core/mlas/lib/x86_64/QgemmU8X8KernelAvx2.S``; ``docs/demo.md``). So
``ort_acc`` and ``paddle_ort_agreement`` are information about this machine's deployment,
not a property of the exported model.

refquant predicts that number without running ONNX Runtime (``ort_predicted``):
:class:`refquant.deploy.onnxruntime.InferenceSession` applies the default session's rewrites
and runs its integer kernels bit for bit for an instruction set, on this CPU's variant
(``isa="host"``: the accuracy and the count of bit-identical logits against ORT's) and on
:data:`PREDICTED_ISAS`; :func:`refquant.deploy.onnxruntime.check` reports the int16 pair
saturation per layer on :data:`SATURATION_ISA` (``docs/deploy.md``).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from refquant.demo import (
    ACTIVATION_OBSERVERS,
    PROFILES,
    SEED,
    markdown_table,
    progress,
    write_report,
)
from refquant.qparams import QParams

from .export import QDQEntry, export_onnx_many

__all__ = [
    "ACTIVATION_OBSERVERS",
    "PROFILES",
    "DigitsCNN",
    "load_digits_split",
    "train",
    "accuracy",
    "calibrate",
    "calibration_batches",
    "run_ptq_demo",
]

#: Layers whose input histogram is plotted with every observer's threshold.
PLOTTED_LAYERS = ("conv2", "fc1", "fc2")
#: Images per calibration batch.
CALIB_BATCH = 32


# ---------------------------------------------------------------------------------------
# data and model
# ---------------------------------------------------------------------------------------
def load_digits_split(seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: digits as float32 ``[N, 1, 8, 8]`` in [0, 1].

    Stratified: in each class, a seeded permutation puts 25% of the images (rounded) in the
    test split. Labels are int64.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (np.asarray(data.images, np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = np.asarray(data.target, np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: int(round(0.25 * len(idx)))]] = True
    train_idx = rng.permutation(np.flatnonzero(~test))
    return x[train_idx], y[train_idx], x[test], y[test]


class DigitsCNN(paddle.nn.Layer):
    """The demo's CNN for 1x8x8 images.

    conv(1->16, 3x3) - ReLU - conv(16->32, 3x3, stride 2) - ReLU - fc(512->64) - ReLU -
    fc(64->10).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = paddle.nn.Conv2D(1, 16, 3, padding=1)
        self.relu1 = paddle.nn.ReLU()
        self.conv2 = paddle.nn.Conv2D(16, 32, 3, stride=2, padding=1)
        self.relu2 = paddle.nn.ReLU()
        self.fc1 = paddle.nn.Linear(32 * 4 * 4, 64)
        self.relu3 = paddle.nn.ReLU()
        self.fc2 = paddle.nn.Linear(64, 10)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = paddle.flatten(x, 1)
        return self.fc2(self.relu3(self.fc1(x)))


def train(
    model: paddle.nn.Layer, x: np.ndarray, y: np.ndarray, epochs: int, seed: int = SEED,
    batch_size: int = 32, lr: float = 3e-3,
) -> list[float]:
    """Adam, cross-entropy, seeded shuffles; returns the mean loss of each epoch."""
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    opt = paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters())
    steps = (len(x) + batch_size - 1) // batch_size
    losses = []
    model.train()
    with progress(epochs * steps, "training", leave=False) as bar:
        for _ in range(epochs):
            order = rng.permutation(len(x))
            total = 0.0
            for k in range(steps):
                idx = order[k * batch_size: (k + 1) * batch_size]
                logits = model(paddle.to_tensor(x[idx]))
                loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(y[idx]))
                loss.backward()
                opt.step()
                opt.clear_grad()
                total += float(loss) * len(idx)
                bar.update()
            losses.append(total / len(x))
    model.eval()
    return losses


def _logits(model: Callable[[paddle.Tensor], paddle.Tensor], x: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        return np.asarray(model(paddle.to_tensor(x)).numpy())


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose argmax is the label."""
    return float(np.mean(np.argmax(logits, axis=1) == y))


# ---------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------
def calibration_batches(x_train: np.ndarray, n_calib: int) -> list[np.ndarray]:
    """The first ``n_calib`` training images in batches of :data:`CALIB_BATCH`, in order."""
    return [x_train[k: min(k + CALIB_BATCH, n_calib)] for k in range(0, n_calib, CALIB_BATCH)]


def calibrate(
    model: paddle.nn.Layer, observer: str, profile: str, batches: Iterable[np.ndarray]
) -> tuple[paddle.nn.Layer, float]:
    """PTQ with ``observer`` on the inputs of every Conv2D / Linear, channel-wise weights.

    Returns ``(converted model, seconds)``; the time covers ``quantize``, the calibration
    forwards and ``convert`` (where the observers decide).
    """
    from . import PTQ, QuantConfig, observers

    act = getattr(observers, observer)(quant_bits=8, profile=profile)
    weight = observers.AbsMaxChannelWiseWeightObserver(quant_bits=8, profile=profile)
    cfg = QuantConfig(activation=None, weight=None)
    cfg.add_type_config([paddle.nn.Conv2D, paddle.nn.Linear], activation=act, weight=weight)
    start = time.perf_counter()
    ptq = PTQ(cfg)
    qmodel = ptq.quantize(model)
    with paddle.no_grad():
        for batch in batches:
            qmodel(paddle.to_tensor(batch))
    converted = ptq.convert(qmodel)
    return converted, time.perf_counter() - start


def _layer_inputs(model: paddle.nn.Layer, names: Sequence[str],
                  batches: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs of the named sub-layers over ``batches`` (forward pre-hooks)."""
    seen: dict[str, list[np.ndarray]] = {n: [] for n in names}
    layers = dict(model.named_sublayers())
    hooks = []
    for n in names:
        def hook(_layer: Any, inputs: Any, n: str = n) -> None:
            seen[n].append(np.asarray(inputs[0].numpy()))
        hooks.append(layers[n].register_forward_pre_hook(hook))  # type: ignore[arg-type]
    try:
        with paddle.no_grad():
            for b in batches:
                model(paddle.to_tensor(b))
    finally:
        for h in hooks:
            h.remove()
    return {n: np.concatenate(v) for n, v in seen.items()}


#: instruction-set variants on which refquant predicts ONNX Runtime's int8 accuracy, besides
#: this machine's (``isa="host"``): a saturating and an exact x86-64 variant.
PREDICTED_ISAS = ("avx2", "avx512-vnni")
#: the variant whose int16 pair saturation is reported per layer
SATURATION_ISA = "avx2"


def _emulated_ort(path: Path, x: np.ndarray, y: np.ndarray, ort_logits: np.ndarray,
                  layer_of: dict[str, str]) -> dict[str, Any]:
    """refquant's prediction of ONNX Runtime's default session on ``path``.

    :class:`refquant.deploy.onnxruntime.InferenceSession` rewrites the QDQ graph as ORT's
    default session does and runs the integer kernels bit for bit for an instruction set:
    ``isa="host"`` (this CPU, compared with ``ort_logits`` bit for bit) and each of
    :data:`PREDICTED_ISAS`. :func:`refquant.deploy.onnxruntime.check` gives the int16 pair
    saturation of each integer GEMM node on :data:`SATURATION_ISA` (``layer_of`` maps the
    name of the ONNX node a fused kernel replaced to the demo's layer name).
    """
    from refquant.deploy.onnxruntime import InferenceSession, check
    from refquant.kernels.onnxruntime import host_isa

    feeds = {"image": x}
    host = InferenceSession(str(path), isa="host")
    plan = host.plan()
    logits = np.asarray(host.run(None, feeds)[0])
    same = logits.view(np.uint32) == np.asarray(ort_logits, np.float32).view(np.uint32)
    by_isa = {}
    for isa in PREDICTED_ISAS:
        other = np.asarray(InferenceSession(str(path), isa=isa).run(None, feeds)[0])
        by_isa[isa] = {"acc": accuracy(other, y),
                       "identical_to_host": int(np.sum(other.view(np.uint32)
                                                       == logits.view(np.uint32)))}
    sat = check(str(path), feeds, isa=SATURATION_ISA)
    layers = {}
    for node in sat.nodes:
        name = next((layer_of[f] for f in node.fused if f in layer_of), node.name)
        layers[name] = {"node": node.name, "kernel": node.op, "operands": node.operands,
                        "pairs": node.pairs, "saturated": node.saturated,
                        "outputs": node.outputs, "outputs_changed": node.outputs_changed,
                        "max_abs_error": node.max_abs_error}
    return {
        "host_isa": host_isa(),
        "acc": accuracy(logits, y),
        "identical_logits": int(same.sum()),
        "logits": int(same.size),
        "identical_images": int(np.sum(same.all(axis=1))),
        "fully_integer": not plan.float_nodes(),
        "integer_nodes": [e.op for e in plan.integer_nodes()],
        "float_nodes": [e.op for e in plan.float_nodes()],
        "isa": by_isa,
        "saturation": {"isa": SATURATION_ISA, "layers": layers},
    }


def _onnx_layers(path: Path) -> dict[str, str]:
    """ONNX node name of each Conv / MatMul / Gemm -> the demo's layer name (in order)."""
    import onnx

    names = ("conv1", "conv2", "fc1", "fc2")
    nodes = [n.name for n in onnx.load(str(path), load_external_data=False).graph.node
             if n.op_type in ("Conv", "MatMul", "Gemm")]
    return dict(zip(nodes, names, strict=False))


def _ort_logits(path: Path, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    """ONNX Runtime's CPU logits: the default session, or with graph optimizations off."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.asarray(sess.run(None, {name: x})[0])


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def _markdown(report: dict[str, Any]) -> list[str]:
    pct = "{:.2f}".format
    lines = [
        "# refquant PTQ demo: small CNN on sklearn digits",
        "",
        f"Float accuracy: **{pct(100 * report['float_acc'])}%** on {report['dataset']['test']} "
        f"held-out images ({report['dataset']['train']} for training, "
        f"{report['dataset']['calibration']} of them for calibration). "
        f"Training: {report['train']['epochs']} epochs in {report['train']['seconds']:.1f} s.",
        "",
        "Weights: channel-wise abs-max (same profile as the activation observer). "
        "int8 = Paddle's quantize_linear/dequantize_linear simulation of the converted model; "
        "ORT QDQ = ONNX Runtime on the exported QDQ model with graph optimizations off "
        "(QuantizeLinear/DequantizeLinear as float ops); ORT default = its default session, "
        "which fuses QDQ into integer kernels whose results depend on the CPU's instruction "
        "set (information about this machine, not a property of the model).",
        "",
        *markdown_table(
            ("observer", "profile", "float %", "int8 %", "ORT QDQ %",
             "Paddle/ORT QDQ argmax agree %", "ORT default %",
             "Paddle/ORT default argmax agree %", "calibration s"),
            [(row["observer"], row["profile"], pct(100 * row["float_acc"]),
              pct(100 * row["int8_acc"]), pct(100 * row["ort_qdq_acc"]),
              pct(100 * row["paddle_ort_qdq_agreement"]), pct(100 * row["ort_acc"]),
              pct(100 * row["paddle_ort_agreement"]), f"{row['calib_seconds']:.3f}")
             for row in report["observers"].values()]),
    ]
    lines += _prediction_markdown(report)
    best = report["best"]
    lines += [
        "",
        f"Best int8: **{best['name']}** at {pct(100 * best['int8_acc'])}% "
        f"({pct(100 * best['drop'])} points below float; "
        f"{'within' if best['within_1_point'] else 'NOT within'} 1 point).",
        "",
        "## Activation thresholds (Paddle threshold convention, S)",
        "",
        *markdown_table(
            ("observer", *report["layers"]),
            [(name, *(f"{row['thresholds'][layer]:.6g}" for layer in report["layers"]))
             for name, row in report["observers"].items()]),
    ]
    return lines + ["", "## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]]


def _prediction_markdown(report: dict[str, Any]) -> list[str]:
    """The table of refquant's predictions of ORT's int8 accuracy, and the saturation table."""
    pct = "{:.2f}".format
    rows = report["observers"].values()
    first = next(iter(rows))["ort_predicted"]
    isas = list(first["isa"])
    layers = list(first["saturation"]["layers"])
    sat_isa = first["saturation"]["isa"]
    return [
        "",
        "## ONNX Runtime int8, predicted by refquant",
        "",
        "refquant.deploy.onnxruntime emulates ONNX Runtime's default session (its QDQ "
        "rewrites and integer kernels, per instruction set). \"predicted (host)\" runs the "
        f"variant of this CPU ({first['host_isa']}); identical logits are counted bit for bit "
        "against ORT's. The other columns predict the same model on other CPUs.",
        "",
        *markdown_table(
            ("observer", "profile", "ORT default %", "predicted (host) %",
             "identical logits", *(f"predicted {i} %" for i in isas)),
            [(r["observer"], r["profile"], pct(100 * r["ort_acc"]),
              pct(100 * r["ort_predicted"]["acc"]),
              f"{r['ort_predicted']['identical_logits']}/{r['ort_predicted']['logits']}",
              *(pct(100 * r["ort_predicted"]["isa"][i]["acc"]) for i in isas))
             for r in rows]),
        "",
        f"### Saturated int16 pairs per layer on {sat_isa} (outputs changed vs VNNI)",
        "",
        *markdown_table(
            ("observer", "profile", *layers),
            [(r["observer"], r["profile"],
              *(_sat_cell(r["ort_predicted"]["saturation"]["layers"].get(layer))
                for layer in layers))
             for r in rows]),
    ]


def _sat_cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "float"
    return (f"{entry['saturated']:,}/{entry['pairs']:,} "
            f"({entry['outputs_changed']:,}/{entry['outputs']:,} outputs)")


def _activation_qparams(entries: list[QDQEntry]) -> dict[str, QParams]:
    """Layer name (``conv1``) -> activation QParams of its input."""
    out = {}
    for e in entries:
        if e.kind == "activation":
            out[e.layer.removesuffix(".activation_quanter")] = e.qparams
    return out


def run_ptq_demo(out: Path, quick: bool = False) -> dict:
    """Run the demo, write its files into ``out``; returns the report (also ``report.json``).

    ``quick=True`` trains 2 epochs and calibrates on 64 images (for tests); the default
    trains 15 epochs and calibrates on 256 images. Report layout::

        {"observers": {"<Observer>/<profile>": {"observer", "profile", "float_acc",
                       "int8_acc", "ort_qdq_acc", "paddle_ort_qdq_agreement", "ort_acc",
                       "paddle_ort_agreement", "calib_seconds",
                       "ort_predicted": {"host_isa", "acc", "identical_logits", "logits",
                                         "identical_images", "fully_integer",
                                         "integer_nodes", "float_nodes",
                                         "isa": {isa: {"acc", "identical_to_host"}},
                                         "saturation": {"isa", "layers": {layer: {...}}}},
                       "thresholds": {layer: S}, "onnx"}},
         "float_acc", "best": {...}, "dataset": {...}, "train": {...}, "layers", "plots",
         "environment": {...}}

    Accuracies are fractions in [0, 1]. ``ort_qdq_acc`` / ``paddle_ort_qdq_agreement``:
    ONNX Runtime with graph optimizations off; ``ort_acc`` / ``paddle_ort_agreement``: its
    default session (CPU-dependent integer kernels, see the module docstring);
    ``ort_predicted``: refquant's emulation of that session (:func:`_emulated_ort`).
    """
    from refquant.plotting import plot_accuracy, plot_thresholds

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "onnx").mkdir(exist_ok=True)
    start = time.perf_counter()

    x_train, y_train, x_test, y_test = load_digits_split()
    epochs = 2 if quick else 15
    n_calib = 64 if quick else 256
    calib = calibration_batches(x_train, n_calib)

    paddle.seed(SEED)
    model = DigitsCNN()
    t0 = time.perf_counter()
    losses = train(model, x_train, y_train, epochs)
    train_seconds = time.perf_counter() - t0
    float_acc = accuracy(_logits(model, x_test), y_test)

    layers = [name for name, sub in model.named_sublayers()
              if isinstance(sub, (paddle.nn.Conv2D, paddle.nn.Linear))]
    inputs = _layer_inputs(model, PLOTTED_LAYERS, calib)

    runs = [(o, p) for p in PROFILES for o in ACTIVATION_OBSERVERS]
    rows: dict[str, dict[str, Any]] = {}
    converted: dict[str, paddle.nn.Layer] = {}
    with progress(len(runs), "calibrating", leave=False) as bar:
        for obs, prof in runs:
            key = f"{obs}/{prof}"
            qmodel, seconds = calibrate(model, obs, prof, calib)
            converted[key] = qmodel
            rows[key] = {"observer": obs, "profile": prof, "float_acc": float_acc,
                         "int8_acc": accuracy(_logits(qmodel, x_test), y_test),
                         "calib_seconds": seconds}
            bar.update()

    spec = [paddle.static.InputSpec([None, 1, 8, 8], "float32", "image")]
    paths = {key: out / "onnx" / f"{key.replace('/', '_')}.onnx" for key in converted}
    all_entries = export_onnx_many([(converted[k], paths[k]) for k in converted], spec)
    for key, entries in zip(converted, all_entries, strict=True):
        paddle_pred = np.argmax(_logits(converted[key], x_test), 1)
        ort_logits = _ort_logits(paths[key], x_test)
        qdq_logits = _ort_logits(paths[key], x_test, optimize=False)
        acts = _activation_qparams(entries)
        rows[key].update({
            "ort_qdq_acc": accuracy(qdq_logits, y_test),
            "paddle_ort_qdq_agreement": float(np.mean(paddle_pred == np.argmax(qdq_logits, 1))),
            "ort_acc": accuracy(ort_logits, y_test),
            "paddle_ort_agreement": float(np.mean(paddle_pred == np.argmax(ort_logits, 1))),
            "ort_predicted": _emulated_ort(paths[key], x_test, y_test, ort_logits,
                                           _onnx_layers(paths[key])),
            "thresholds": {layer: float(acts[layer].threshold) for layer in layers},
            "onnx": str(paths[key].relative_to(out)),
        })
        rows[key]["_qparams"] = acts

    plots = []
    for layer in PLOTTED_LAYERS:
        qps = {k: r["_qparams"][layer] for k, r in rows.items()}
        p = plot_thresholds(inputs[layer], qps, out / f"thresholds_{layer}.png",
                            title=f"|input| of {layer} ({len(inputs[layer])} calibration "
                                  "images) and each observer's threshold")
        plots.append(p.name)
    for r in rows.values():
        del r["_qparams"]

    best_key = max(rows, key=lambda k: (rows[k]["int8_acc"], rows[k]["ort_acc"]))
    drop = float_acc - rows[best_key]["int8_acc"]
    report: dict[str, Any] = {
        "observers": rows,
        "float_acc": float_acc,
        "best": {"name": best_key, "int8_acc": rows[best_key]["int8_acc"],
                 "drop": drop, "within_1_point": bool(drop <= 0.01)},
        "dataset": {"name": "sklearn digits (8x8)", "train": int(len(x_train)),
                    "test": int(len(x_test)), "calibration": int(n_calib)},
        "train": {"epochs": epochs, "seconds": train_seconds,
                  "loss_per_epoch": [float(v) for v in losses]},
        "layers": layers,
        "quick": bool(quick),
        "environment": {"paddle": paddle.__version__, "python": platform.python_version()},
    }
    acc_plot = plot_accuracy(report, out / "accuracy.png")
    plots.append(acc_plot.name)
    report["plots"] = plots
    report["seconds"] = time.perf_counter() - start
    write_report(out, report, _markdown(report))
    return report
