"""``refquant demo``: the main job on sklearn's digits (quick mode), as a user runs it.

One run of the command line (module fixture, a subprocess) is checked for what it prints
(progress bars and results only), the report's layout, types and ranges, valid PNG plots
and ONNX models. The exported models are checked against Paddle with ONNX Runtime's graph
optimizations off (``ORT_DISABLE_ALL``: QuantizeLinear / DequantizeLinear run as float ops):

(a) structure: codes, scales, axes and zero points in the ONNX graph are Paddle's;
(b) at every QuantizeLinear, ORT's codes are ``refquant.kernels.onnx.quantize_linear`` of
    ORT's own float input, bit for bit (intermediate tensors exposed as graph outputs);
(c) Paddle's ``quantize_linear`` kernel on that same input differs from ORT only at ties;
(d) with ORT's dequantized activations injected into Paddle, the logits agree within the
    float32 error bound of the last layer, and so does the argmax.

ORT's default session fuses QDQ into integer kernels whose results depend on the CPU's
instruction set (``docs/demo.md``); its accuracy is not bounded, but refquant's emulation of
this CPU's variant must predict it exactly (``isa="host"``, detected, not assumed). Nothing
here depends on which CPU it is or on the clock.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

# the module's tests share one `refquant demo --quick` subprocess (about 13 s on 2 cores)
pytestmark = pytest.mark.slow(reason="runs the demo's command line once (train, calibrate, "
                                     "export, ONNX Runtime)")

paddle = pytest.importorskip("paddle")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("paddle2onnx")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from refquant.adapters.paddle import demo  # noqa: E402

from refquant.kernels import onnx as ok  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROW_KEYS = {"observer", "profile", "float_acc", "int8_acc", "ort_qdq_acc",
            "paddle_ort_qdq_agreement", "ort_acc", "paddle_ort_agreement", "calib_seconds",
            "thresholds", "onnx", "ort_predicted"}
LAYERS = ("conv1", "conv2", "fc1", "fc2")
F32_U = 2.0**-24  # unit roundoff of float32
FRACTIONS = ("float_acc", "int8_acc", "ort_qdq_acc", "ort_acc", "paddle_ort_qdq_agreement",
             "paddle_ort_agreement")


# ---------------------------------------------------------------------------------------
# fixtures: one command-line run, the same model rebuilt in this process, ORT's tensors
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [sys.executable, "-m", "refquant.cli", "demo", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=900, check=False)
    return out, proc


@pytest.fixture(scope="module")
def run(cli_run):
    out, proc = cli_run
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return out, json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def digits():
    return demo.load_digits_split()


@pytest.fixture(scope="module")
def trained(run, digits):
    """The demo's float model, trained again here (training is deterministic)."""
    _, report = run
    x_train, y_train, _, _ = digits
    paddle.seed(demo.SEED)
    model = demo.DigitsCNN()
    demo.train(model, x_train, y_train, report["train"]["epochs"])
    return model


@pytest.fixture(scope="module")
def converted(run, trained, digits):
    """Every converted model of the report, calibrated again here on the same batches."""
    _, report = run
    batches = demo.calibration_batches(digits[0], report["dataset"]["calibration"])
    return {key: demo.calibrate(trained, row["observer"], row["profile"], batches)[0]
            for key, row in report["observers"].items()}


def _inits(proto) -> dict[str, np.ndarray]:
    return {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}


def _scale(qdq):
    """A converted QDQ's scale (threshold): Paddle's form keeps it on the dequantize half."""
    part = getattr(qdq, "_dequanter", None)
    return part._scales if part is not None else qdq.scale


def _axis(qdq) -> int:
    part = getattr(qdq, "_dequanter", None)
    return int(part._quant_axis) if part is not None else qdq.axis


def _codes(qdq, x):
    """The integer codes a converted activation QDQ produces for ``x``."""
    quanter = getattr(qdq, "_quanter", None)
    return quanter(x) if quanter is not None else qdq.quantize(x)


def _attr(node, name):
    values = (onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)
    return next(values, None)


def _qdq_run(path, x: np.ndarray) -> dict:
    """ORT with optimizations off on ``path``, every QuantizeLinear's input, codes and
    dequantized output exposed as extra graph outputs."""
    proto = onnx.load(str(path))
    inits = _inits(proto)
    taps = {}
    for q in (n for n in proto.graph.node if n.op_type == "QuantizeLinear"):
        dq = next(n for n in proto.graph.node
                  if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
        taps[q.name.removesuffix("/QuantizeLinear")] = (q, dq)
        f32, i8 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT8
        for name, elem in ((q.input[0], f32), (q.output[0], i8), (dq.output[0], f32)):
            proto.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(None, {"image": x}), strict=True))
    quantizers = {}
    for base, (q, dq) in taps.items():
        quantizers[base] = {"x": values[q.input[0]], "scale": inits[q.input[1]],
                            "zero_point": inits[q.input[2]], "codes": values[q.output[0]],
                            "dequantized": values[dq.output[0]]}
    return {"logits": values[names[0]], "quantizers": quantizers}


@pytest.fixture(scope="module")
def ort_qdq(run, digits):
    out, report = run
    x_test = digits[2]
    return {key: _qdq_run(out / row["onnx"], x_test) for key, row in report["observers"].items()}


def _is_fraction(v) -> bool:
    return isinstance(v, float) and 0.0 <= v <= 1.0


# ---------------------------------------------------------------------------------------
# what the user sees
# ---------------------------------------------------------------------------------------
_BAR = re.compile(r"^(training|calibrating|other frameworks): +\d+%\|")
_RESULT = re.compile(
    r"^(float accuracy \d\.\d{4}; best int8 \S+ \d\.\d{4} \(drop -?\d+\.\d\d points\)"
    r"|best int8 accuracy is more than 1 point below float"
    r"|wrote \S.*"
    r"|conformance [\w-]+: .*"
    r"|conformance failures against: .*)$")


def test_first_run_prints_progress_and_results_only(cli_run):
    """No traceback, no Paddle log line, no environment noise (OpenCV's NumPy ABI message,
    Paddle's ccache warning): stderr holds progress bars only, stdout results only."""
    _, proc = cli_run
    noise = [s for s in re.split(r"[\r\n]", proc.stderr) if s.strip() and not _BAR.match(s)]
    assert not noise, "unexpected stderr:\n" + "\n".join(noise[:30])
    lines = proc.stdout.splitlines()
    assert lines and all(_RESULT.match(line) for line in lines), proc.stdout


def test_stdout_summarises_report_and_exit_code(run, cli_run):
    out, report = run
    _, proc = cli_run
    best = report["best"]
    assert proc.stdout.splitlines()[0] == (
        f"float accuracy {report['float_acc']:.4f}; best int8 {best['name']} "
        f"{best['int8_acc']:.4f} (drop {100 * best['drop']:.2f} points)")
    conformance_failed = "conformance failures against" in proc.stdout
    assert proc.returncode == (0 if best["within_1_point"] and not conformance_failed else 1)
    written = [p for line in proc.stdout.splitlines() if line.startswith("wrote ")
               for p in line.removeprefix("wrote ").split(", ")]
    assert str(out / "report.json") in written and str(out / "report.md") in written
    assert all((out / p).is_file() for p in written)


# ---------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------
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
        for k in FRACTIONS:
            assert _is_fraction(row[k]), (key, k, row[k])
        # a duration, reported only: its size is the machine's business
        assert isinstance(row["calib_seconds"], float) and row["calib_seconds"] >= 0
        assert row["float_acc"] == report["float_acc"]
        assert set(row["thresholds"]) == set(report["layers"]) == set(LAYERS)
        assert all(isinstance(t, float) and t > 0 for t in row["thresholds"].values())


def test_accuracies_are_counts_and_sane(run):
    """Accuracies are counts over the 450 held-out images. The floors are far below what
    the demo reaches (quick mode: float ~0.94) and far above chance (0.1): they catch a
    broken pipeline, not a CPU's rounding."""
    _, report = run
    n_test = report["dataset"]["test"]
    assert n_test == 450 and report["dataset"]["train"] == 1347
    assert report["float_acc"] >= 0.85
    for key, row in report["observers"].items():
        for k in ("float_acc", "int8_acc", "ort_qdq_acc", "ort_acc"):
            assert abs(row[k] * n_test - round(row[k] * n_test)) < 1e-9, (key, k)
        assert row["int8_acc"] >= 0.6, key
    best = report["best"]
    assert best["name"] in report["observers"]
    assert best["int8_acc"] == max(r["int8_acc"] for r in report["observers"].values())
    assert best["drop"] == report["float_acc"] - best["int8_acc"]
    assert best["within_1_point"] == (best["drop"] <= 0.01)


def test_reported_ort_numbers_reproduce(run, converted, ort_qdq, digits):
    """Recomputed from the written ONNX files and the rebuilt Paddle models, on this machine:
    both ORT accuracies and both Paddle/ORT agreements (values reported, not bounded)."""
    out, report = run
    _, _, x_test, y_test = digits
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    for key, row in report["observers"].items():
        with paddle.no_grad():
            paddle_pred = np.argmax(converted[key](paddle.to_tensor(x_test)).numpy(), 1)
        assert float(np.mean(paddle_pred == y_test)) == row["int8_acc"], key
        qdq_pred = np.argmax(ort_qdq[key]["logits"], 1)
        assert float(np.mean(qdq_pred == y_test)) == row["ort_qdq_acc"], key
        assert float(np.mean(paddle_pred == qdq_pred)) == row["paddle_ort_qdq_agreement"], key
        sess = ort.InferenceSession(str(out / row["onnx"]), opts,
                                    providers=["CPUExecutionProvider"])
        pred = np.argmax(sess.run(None, {"image": x_test})[0], 1)
        assert float(np.mean(pred == y_test)) == row["ort_acc"], key
        assert float(np.mean(paddle_pred == pred)) == row["paddle_ort_agreement"], key


def test_refquant_predicts_ort_int8_accuracy(run, digits):
    """refquant.deploy.onnxruntime on this CPU's variant (``isa="host"``) predicts the accuracy
    of ORT's default session. Its logits are compared bit for bit with ORT's, run again
    here: all identical where every compute node is an integer kernel; the demo's export
    keeps its convolutions in float32 (``docs/deploy.md``), whose summation order NumPy does
    not reproduce, so there a near-tie after a float Conv may move a code: at least 99 % of
    the logits must be identical, and the predicted accuracy must equal ORT's except for
    images whose logits moved by more than half their top-2 margin (measured on this
    project's Intel machine: equal for all 12 models). The prediction on the variant of the
    same saturation class as this CPU (``avx2`` for an AVX2 CPU without VNNI, the exact
    ``avx512-vnni`` for a VNNI/AMX one) equals the host prediction."""
    from refquant.deploy.onnxruntime import InferenceSession
    from refquant.kernels.onnxruntime import SATURATING_ISAS, host_isa

    out, report = run
    _, _, x_test, y_test = digits
    host = host_isa()
    same_class = next(i for i in demo.PREDICTED_ISAS
                      if (i in SATURATING_ISAS) == (host in SATURATING_ISAS))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    for key, row in report["observers"].items():
        pred = row["ort_predicted"]
        assert pred["host_isa"] == host, key
        sess = ort.InferenceSession(str(out / row["onnx"]), opts,
                                    providers=["CPUExecutionProvider"])
        ort_logits = sess.run(None, {"image": x_test})[0]
        assert float(np.mean(np.argmax(ort_logits, 1) == y_test)) == row["ort_acc"], key
        emulated = InferenceSession(str(out / row["onnx"])).run(None, {"image": x_test})[0]
        same = emulated.view(np.uint32) == ort_logits.view(np.uint32)
        assert int(same.sum()) == pred["identical_logits"] and same.size == pred["logits"], key
        assert int(same.all(axis=1).sum()) == pred["identical_images"], key
        if pred["fully_integer"]:
            assert same.all(), key
        else:
            assert pred["float_nodes"] and same.mean() >= 0.99, key
        # the prediction is ORT's accuracy, except where a moved code turns a near-tie:
        # an image scored differently must have logits that differ by at least its top-2
        # margin (none did on this project's machines)
        flipped = np.flatnonzero((np.argmax(emulated, 1) == y_test)
                                 != (np.argmax(ort_logits, 1) == y_test))
        top2 = np.sort(ort_logits[flipped], axis=1)[:, -2:]
        moved = np.abs(emulated[flipped] - ort_logits[flipped]).max(axis=1, initial=0.0)
        assert np.all(2 * moved >= top2[:, 1] - top2[:, 0]), (key, flipped)
        n = len(y_test)
        gained = int(np.sum(np.argmax(emulated[flipped], 1) == y_test[flipped])
                     - np.sum(np.argmax(ort_logits[flipped], 1) == y_test[flipped]))
        assert round(pred["acc"] * n) == round(row["ort_acc"] * n) + gained, key
        assert set(pred["isa"]) == set(demo.PREDICTED_ISAS)
        assert pred["isa"][same_class]["acc"] == pred["acc"], key
        assert pred["isa"][same_class]["identical_to_host"] == pred["logits"], key
        for entry in pred["isa"].values():
            assert _is_fraction(entry["acc"]) and 0 <= entry["identical_to_host"] <= 4500


def test_saturation_per_layer_is_consistent(run):
    """The avx2 saturation table: fc1 and fc2 are u8 x s8 MatMulIntegerToFloat nodes; counts
    within their totals (fc1: 450 x 64 outputs of K = 512, 256 pairs each; fc2: 450 x 10,
    K = 64); an output changes against the exact variant only if one of its pairs
    saturates, and the avx2 prediction differs from the exact one only if some pair does."""
    _, report = run
    totals = {"fc1": (450 * 64 * 256, 450 * 64), "fc2": (450 * 10 * 32, 450 * 10)}
    for key, row in report["observers"].items():
        sat = row["ort_predicted"]["saturation"]
        assert sat["isa"] == demo.SATURATION_ISA == "avx2"
        assert set(sat["layers"]) == set(totals), key
        for layer, e in sat["layers"].items():
            assert e["kernel"] == "MatMulIntegerToFloat" and e["operands"] == "u8 x s8"
            assert (e["pairs"], e["outputs"]) == totals[layer], (key, layer)
            assert 0 <= e["saturated"] <= e["pairs"]
            assert 0 <= e["outputs_changed"] <= min(e["outputs"], e["saturated"])
            if e["outputs_changed"] == 0:
                assert e["max_abs_error"] == 0
        if not any(e["saturated"] for e in sat["layers"].values()):
            isa = row["ort_predicted"]["isa"]
            assert isa["avx2"] == isa["avx512-vnni"], key


def test_absmax_threshold_is_the_calibration_abs_max(run, trained, digits):
    """Independent check of one threshold: abs-max of fc2's input over the calibration set."""
    _, report = run
    x_train = digits[0]
    seen = []
    hook = trained.fc2.register_forward_pre_hook(lambda _l, inp: seen.append(inp[0].numpy()))
    with paddle.no_grad():
        trained(paddle.to_tensor(x_train[: report["dataset"]["calibration"]]))
    hook.remove()
    expected = float(np.float32(np.abs(np.concatenate(seen)).max()))
    for prof in demo.PROFILES:
        assert report["observers"][f"AbsmaxObserver/{prof}"]["thresholds"]["fc2"] == expected


# ---------------------------------------------------------------------------------------
# the exported models against Paddle, ORT's optimizations off
# ---------------------------------------------------------------------------------------
def _onnx_scale(threshold: np.ndarray) -> np.ndarray:
    """ONNX y_scale of a Paddle threshold S: one float32 division, ``fl32(S / 127)``."""
    return (np.asarray(threshold, np.float32) / np.float32(127)).astype(np.float32)


def test_onnx_structure_is_paddles(run, converted):
    """(a) Every QDQ of the graph, compared with the rebuilt converted Paddle model: int8
    weight codes, per-channel scales and axis, per-tensor activation scales, zero points."""
    out, report = run
    for key, row in report["observers"].items():
        proto = onnx.load(str(out / row["onnx"]))
        onnx.checker.check_model(proto, full_check=True)
        inits = _inits(proto)
        nodes = {n.name: n for n in proto.graph.node}
        ops = [n.op_type for n in proto.graph.node]
        assert ops.count("QuantizeLinear") == 4 and ops.count("DequantizeLinear") == 8, key
        model = converted[key]
        for layer in LAYERS:
            where = f"{key} {layer}"
            sub = getattr(model, layer)
            # activation: per tensor
            act = sub.activation_quanter
            threshold = np.asarray(_scale(act).numpy(), np.float32).reshape(())
            assert row["thresholds"][layer] == float(threshold), where
            q = nodes[f"{layer}.activation_quanter/QuantizeLinear"]
            dq = nodes[f"{layer}.activation_quanter/DequantizeLinear"]
            assert dq.input[0] == q.output[0] and list(dq.input[1:]) == list(q.input[1:])
            scale, zp = inits[q.input[1]], inits[q.input[2]]
            assert scale.dtype == np.float32 and scale.shape == (), where
            assert scale.view(np.uint32) == _onnx_scale(threshold).view(np.uint32), where
            assert zp.dtype == np.int8 and zp.shape == () and zp == 0, where
            assert _attr(q, "axis") is None and _attr(dq, "axis") is None, where
            # weight: int8 codes, per output channel
            wq = sub.weight_quanter
            w_dq = nodes[f"{layer}.weight/DequantizeLinear"]
            codes = inits[w_dq.input[0]]
            paddle_codes = sub.weight.numpy()
            assert codes.dtype == np.int8 and codes.shape == paddle_codes.shape, where
            np.testing.assert_array_equal(codes.astype(np.float32), paddle_codes, err_msg=where)
            assert _attr(w_dq, "axis") == _axis(wq) == (0 if layer.startswith("conv") else 1)
            w_thr = np.asarray(_scale(wq).numpy(), np.float32)
            w_scale, w_zp = inits[w_dq.input[1]], inits[w_dq.input[2]]
            assert w_scale.dtype == np.float32 and w_scale.shape == (codes.shape[_axis(wq)],)
            np.testing.assert_array_equal(w_scale.view(np.uint32),
                                          _onnx_scale(w_thr).view(np.uint32), err_msg=where)
            assert w_zp.dtype == np.int8 and w_zp.shape == w_scale.shape and not w_zp.any()


def test_ort_codes_are_the_onnx_kernel_bit_for_bit(ort_qdq):
    """(b) ORT's QuantizeLinear / DequantizeLinear outputs are refquant's ONNX kernels on
    ORT's own float input, at every quantizer of every model."""
    for key, run in ort_qdq.items():
        assert len(run["quantizers"]) == 4, key
        for base, t in run["quantizers"].items():
            expected = ok.quantize_linear(t["x"], t["scale"], t["zero_point"], opset=13)
            assert t["codes"].dtype == expected.dtype == np.int8, (key, base)
            np.testing.assert_array_equal(t["codes"], expected, err_msg=f"{key} {base}")
            deq = ok.dequantize_linear(t["codes"], t["scale"], t["zero_point"], opset=13)
            np.testing.assert_array_equal(t["dequantized"].view(np.uint32),
                                          deq.view(np.uint32), err_msg=f"{key} {base}")


def test_paddle_kernel_differs_from_ort_only_at_ties(ort_qdq, converted):
    """(c) Paddle's quantize_linear on ORT's input: ``RNE(fl(fl(127 * fl(1/S)) * x))``
    against ORT's ``RNE(fl(x / fl(S / 127)))``. The two products are within 3 and 2 float32
    roundings of ``v = x * 127 / S``, so a code can differ (by one) only where a half
    integer lies within ``3u|v|`` of ``v``; here ``4u|v|`` with ``v`` in float64."""
    compared = 0
    for key, run in ort_qdq.items():
        model = converted[key]
        for base, t in run["quantizers"].items():
            act = getattr(model, base.removesuffix(".activation_quanter")).activation_quanter
            with paddle.no_grad():
                paddle_codes = _codes(act, paddle.to_tensor(t["x"])).numpy()
            ort_codes = t["codes"].astype(np.float32)
            differ = paddle_codes != ort_codes
            s = float(np.asarray(_scale(act).numpy(), np.float32).reshape(()))
            v = t["x"].astype(np.float64) * 127.0 / s
            near_tie = np.abs(v - np.floor(v) - 0.5) <= 4 * F32_U * np.abs(v)
            where = f"{key} {base}: x={t['x'][differ & ~near_tie][:5]}"
            assert np.all(near_tie[differ]), where
            assert np.all(np.abs(paddle_codes - ort_codes)[differ] == 1), where
            compared += 1
    assert compared == 4 * len(ort_qdq)


def test_injected_ort_activations_give_ort_logits(ort_qdq, converted, digits):
    """(d) Paddle's model with every activation quant-dequant output replaced by ORT's
    dequantized tensor: the logits differ from ORT's only by float32 rounding in fc2 (two
    dot products of 64 terms, weights dequantized in two roundings each way), bounded by
    ``(2 * 64 + 16) u (|a| |W| + |b|)``; the argmax agrees wherever ORT's top two logits
    are further apart than twice that bound."""
    x_test = digits[2]
    for key, run in ort_qdq.items():
        model = converted[key]
        hooks = []
        for layer in LAYERS:
            dq = run["quantizers"][f"{layer}.activation_quanter"]["dequantized"]
            hooks.append(getattr(model, layer).activation_quanter.register_forward_post_hook(
                lambda _l, _i, _o, dq=dq: paddle.to_tensor(dq)))
        try:
            with paddle.no_grad():
                logits = model(paddle.to_tensor(x_test)).numpy()
        finally:
            for h in hooks:
                h.remove()
        ort_logits = run["logits"]
        fc2 = model.fc2
        a = run["quantizers"]["fc2.activation_quanter"]["dequantized"].astype(np.float64)
        w = fc2.weight.numpy().astype(np.float64) * (
            np.asarray(_scale(fc2.weight_quanter).numpy(), np.float64) / 127.0)
        magnitude = np.abs(a) @ np.abs(w) + np.abs(fc2.bias.numpy().astype(np.float64))
        bound = (2 * a.shape[1] + 16) * F32_U * magnitude
        err = np.abs(logits.astype(np.float64) - ort_logits)
        assert np.all(err <= bound), (key, float(np.max(err / bound)))
        top2 = np.sort(ort_logits, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * bound.max(axis=1)
        np.testing.assert_array_equal(np.argmax(logits, 1)[clear],
                                      np.argmax(ort_logits, 1)[clear], err_msg=key)


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------
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
        pred = row["ort_predicted"]
        assert (f"| {row['observer']} | {row['profile']} | {100 * row['ort_acc']:.2f} | "
                f"{100 * pred['acc']:.2f} | {pred['identical_logits']}/{pred['logits']} |"
                ) in text
    for name in report["plots"]:
        assert f"]({name})" in text


# ---------------------------------------------------------------------------------------
# data and training
# ---------------------------------------------------------------------------------------
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


def test_calibration_batches_are_the_first_images_in_order(digits):
    x_train = digits[0]
    batches = demo.calibration_batches(x_train, 70)
    assert [len(b) for b in batches] == [32, 32, 6]
    np.testing.assert_array_equal(np.concatenate(batches), x_train[:70])


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
