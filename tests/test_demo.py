"""``refquant.adapters.paddle.demo.run_ptq_demo``: the main job on sklearn's digits (quick mode).

One quick run (module fixture) is checked for the report's layout, types and ranges, valid
PNG plots and ONNX models, and sane int8 accuracy. Accuracies are recomputed independently
where cheap: ONNX Runtime on the written model, and thresholds against the exported QDQ
scales.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("paddle2onnx")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from refquant.adapters.paddle import demo  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROW_KEYS = {"observer", "profile", "float_acc", "int8_acc", "ort_acc", "calib_seconds",
            "paddle_ort_agreement", "thresholds", "onnx"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    report = demo.run_ptq_demo(out, quick=True)
    return out, report


def _is_fraction(v) -> bool:
    return isinstance(v, float) and 0.0 <= v <= 1.0


def test_report_json_is_the_returned_report(run):
    out, report = run
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))


def test_every_observer_in_both_profiles(run):
    _, report = run
    rows = report["observers"]
    expected = {f"{o}/{p}" for o in demo.ACTIVATION_OBSERVERS for p in demo.PROFILES}
    assert set(rows) == expected
    assert {"AbsmaxObserver", "AVGObserver", "MSEObserver", "EMDObserver", "HistObserver",
            "KLObserver"} == set(demo.ACTIVATION_OBSERVERS)
    for key, row in rows.items():
        assert ROW_KEYS <= set(row), key
        assert f"{row['observer']}/{row['profile']}" == key
        assert row["profile"] in ("canonical", "paddleslim")
        for k in ("float_acc", "int8_acc", "ort_acc", "paddle_ort_agreement"):
            assert _is_fraction(row[k]), (key, k, row[k])
        assert isinstance(row["calib_seconds"], float)
        assert math.isfinite(row["calib_seconds"]) and row["calib_seconds"] > 0
        assert row["float_acc"] == report["float_acc"]
        assert set(row["thresholds"]) == set(report["layers"]) == {"conv1", "conv2", "fc1",
                                                                     "fc2"}
        assert all(isinstance(t, float) and t > 0 for t in row["thresholds"].values())


def test_accuracies_are_sane(run):
    _, report = run
    n_test = report["dataset"]["test"]
    assert n_test == 450 and report["dataset"]["train"] == 1347
    # 2 epochs already learn the digits well; 10 classes make chance 0.1
    assert report["float_acc"] >= 0.85
    for key, row in report["observers"].items():
        # accuracies are counts over the held-out split
        for k in ("float_acc", "int8_acc", "ort_acc"):
            assert abs(row[k] * n_test - round(row[k] * n_test)) < 1e-9, (key, k)
        assert row["int8_acc"] >= 0.6, key
        # Paddle's simulation and ORT differ at most at near-ties
        assert row["paddle_ort_agreement"] >= 0.98, key
        assert abs(row["int8_acc"] - row["ort_acc"]) <= 0.02, key
    best = report["best"]
    assert best["name"] in report["observers"]
    assert best["int8_acc"] == max(r["int8_acc"] for r in report["observers"].values())
    assert best["int8_acc"] >= report["float_acc"] - 0.02
    assert best["within_1_point"] == (report["float_acc"] - best["int8_acc"] <= 0.01)


def test_absmax_threshold_is_the_calibration_abs_max(run):
    """Independent check of one threshold: abs-max of fc2's input over the calibration set."""
    _, report = run
    # the same data, model and training as the demo's (deterministic)
    x_train, y_train, _, _ = demo.load_digits_split()
    paddle.seed(demo.SEED)
    model = demo.DigitsCNN()
    demo.train(model, x_train, y_train, report["train"]["epochs"])
    seen = []
    hook = model.fc2.register_forward_pre_hook(lambda _l, inp: seen.append(inp[0].numpy()))
    with paddle.no_grad():
        model(paddle.to_tensor(x_train[: report["dataset"]["calibration"]]))
    hook.remove()
    expected = float(np.float32(np.abs(np.concatenate(seen)).max()))
    for prof in demo.PROFILES:
        assert report["observers"][f"AbsmaxObserver/{prof}"]["thresholds"]["fc2"] == expected


def test_onnx_models_are_valid_and_reproduce_ort_acc(run):
    out, report = run
    _, _, x_test, y_test = demo.load_digits_split()
    for row in report["observers"].values():
        path = out / row["onnx"]
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
        ops = [n.op_type for n in proto.graph.node]
        assert ops.count("QuantizeLinear") == 4  # inputs of conv1, conv2, fc1, fc2
        assert ops.count("DequantizeLinear") == 8
        if row["profile"] == "canonical" and row["observer"] in ("AbsmaxObserver", "KLObserver"):
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            logits = sess.run(None, {"image": x_test})[0]
            assert float(np.mean(np.argmax(logits, 1) == y_test)) == row["ort_acc"]


def test_pngs_are_valid(run):
    from PIL import Image

    out, report = run
    assert set(report["plots"]) == {"accuracy.png", *(f"thresholds_{n}.png"
                                                     for n in demo.PLOTTED_LAYERS)}
    for name in report["plots"]:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE
        with Image.open(out / name) as im:
            im.verify()
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


def test_markdown_lists_every_run(run):
    out, report = run
    text = (out / "report.md").read_text()
    for row in report["observers"].values():
        assert f"| {row['observer']} | {row['profile']} |" in text
    for name in report["plots"]:
        assert f"]({name})" in text


def test_training_is_deterministic():
    x, y, _, _ = demo.load_digits_split()
    weights = []
    for _ in range(2):
        paddle.seed(demo.SEED)
        model = demo.DigitsCNN()
        demo.train(model, x[:256], y[:256], epochs=1)
        weights.append({k: v.numpy().copy() for k, v in model.state_dict().items()})
    for k in weights[0]:
        np.testing.assert_array_equal(weights[0][k].view(np.uint32), weights[1][k].view(np.uint32))


def test_split_is_stratified_disjoint_and_fixed():
    from sklearn.datasets import load_digits

    a = demo.load_digits_split()
    b = demo.load_digits_split()
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    x_train, y_train, x_test, y_test = a
    assert x_train.shape == (1347, 1, 8, 8) and x_test.shape == (450, 1, 8, 8)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    # disjoint and complete: the (image, label) pairs are exactly the data set's, as a multiset
    data = load_digits()

    def rows(x, y):
        return sorted(xi.tobytes() + bytes([yi]) for xi, yi in zip(
            (np.asarray(x, np.float32).reshape(len(y), -1) * 16).astype(np.uint8), y,
            strict=True))

    assert rows(np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])) == \
        rows(data.images / 16, data.target)
    for c in range(10):
        n = int(np.sum(data.target == c))
        assert int(np.sum(y_test == c)) == round(0.25 * n)
