"""Distributed calibration: data-parallel merge across 2 processes, faults, tensor parallel.

The data-parallel test launches ``tests/dist/dp_worker.py`` with
``python -m paddle.distributed.launch --nproc_per_node 2`` (gloo on CPU); each rank
calibrates on its shard, calls ``sync_observers`` and saves its QParams. The expected values
come from one process calibrating on all the data (the adapter with no distributed code at
all) and, for the first layer's input, from refquant's NumPy observers fed the raw batches.
The paddleslim-profile expectation is computed shard by shard in this process and reduced
with ``np.maximum`` (PaddleSlim's cross-rank rule).

The dead-rank tests start two processes themselves (Paddle's environment variables, free
ports) so that Paddle's launcher does not kill the survivor; the tensor-parallel test runs
``tests/dist/tp_worker.py`` in one process (``mp_degree=1``). The Hypothesis tests run the
real sync code over 2-3 simulated ranks (threads, ``tests/dist/fakedist.py``) on random data
split at random.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

HERE = Path(__file__).resolve().parent
DIST = HERE / "dist"
sys.path.insert(0, str(DIST))
import common  # noqa: E402
from refquant.adapters.paddle import observers as O  # noqa: E402
from refquant.adapters.paddle.distributed import (  # noqa: E402
    SyncError,
    observer_entries,
    sync_observers,
)

from refquant import observers as ref_obs  # noqa: E402

# Guards that end a hung subprocess; no test measures or asserts how long anything took.
LAUNCH_TIMEOUT = 600


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PADDLE_", "FLAGS_selected", "MASTER_"))}
    env.update(PADDLE_DISTRI_BACKEND="gloo", OMP_NUM_THREADS="1")
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # pragma: no cover - already gone
            pass
    proc.wait(10)


def _launch(script: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(out / "log"), str(script), str(out), *args]
    proc = subprocess.Popen(cmd, env=_env(), cwd=str(out), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    finally:
        _kill_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, "")


def _logs(out: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:]
                     for p in sorted((out / "log").glob("workerlog.*")))


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray], what: str) -> None:
    assert sorted(got) == sorted(want), what
    for k in want:
        g, w = got[k], want[k]
        assert g.shape == w.shape, f"{what} {k}: shape {g.shape} != {w.shape}"
        if k.endswith("|scale"):
            diff = np.flatnonzero(_bits(g).ravel() != _bits(w).ravel())
            assert diff.size == 0, (f"{what} {k}: first differing element {diff[0]}: "
                                    f"{g.ravel()[diff[0]]!r} != {w.ravel()[diff[0]]!r}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{what} {k}")


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.split("|")[0] == prefix}


def _one_process(name: str, data: list[np.ndarray]) -> dict[str, np.ndarray]:
    facs = {**common.CANONICAL, **common.SLIM}[name]()
    _, qm = common.quantized(facs)
    common.calibrate(qm, data)
    return {k[1:]: v for k, v in common.flatten(common.observer_qparams(qm), "").items()}


# ---------------------------------------------------------------------------------------
# the 2-process data-parallel run (once per module)
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dp_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("dp")
    res = _launch(DIST / "dp_worker.py", out)
    assert res.returncode == 0, f"launch failed ({res.returncode}):\n{res.stdout[-3000:]}" \
                                f"\n{_logs(out)}"
    ranks = []
    for r in range(2):
        with np.load(out / f"rank{r}.npz") as z:
            arrays = dict(z.items())
        report = json.loads((out / f"rank{r}.json").read_text())
        ranks.append((arrays, report))
    return {"ranks": ranks, "data": common.batches()}


def _calibrate_and_sync_simulated(factory, shards: list) -> list:
    """One model per shard, calibrated on it, then synced over simulated ranks (threads)."""
    n = len(shards)
    models = []
    for data in shards:
        _, qm = common.quantized(factory())
        common.calibrate(qm, data)
        models.append(qm)
    world = fakedist.World(n)
    with fakedist.patched(initialized=True):
        out = fakedist.run_ranks(n, lambda r: sync_observers(
            models[r], group=fakedist.Group(r, world), timeout=60, allow_empty_ranks=True))
    for r, res in enumerate(out):
        assert not isinstance(res, Exception), f"rank {r}: {res!r}"
    return models


@pytest.mark.parametrize("name", sorted(common.CANONICAL))
def test_dp_canonical_equals_one_process(dp_run: dict, name: str) -> None:
    """Every rank ends with the QParams of one process calibrated on all the data."""
    want = _one_process(name, dp_run["data"])
    assert want, "the reference calibrated nothing"
    for r, (arrays, _) in enumerate(dp_run["ranks"]):
        _assert_same(_prefixed(arrays, name), want, f"rank {r}, case {name}")


@pytest.mark.parametrize("name", sorted(common.CANONICAL))
def test_dp_merge_was_needed(dp_run: dict, name: str) -> None:
    """The shards disagree before the sync (so the test above checks a real merge)."""
    local = [_prefixed(a, f"local_{name}") for a, _ in dp_run["ranks"]]
    synced = _prefixed(dp_run["ranks"][0][0], name)
    acts = [k for k in synced if k.endswith("|scale") and "weight" not in k]
    differs = [k for k in acts if any(not np.array_equal(_bits(loc[k]), _bits(synced[k]))
                                      for loc in local)]
    assert differs, f"{name}: every activation scale was already equal before the sync"


_NUMPY_REF = {
    "absmax": lambda: ref_obs.AbsmaxObserver(),
    "avg": lambda: ref_obs.AVGObserver(),
    "mse": lambda: ref_obs.MSEObserver(),
    "emd": lambda: ref_obs.EMDObserver(),
    "hist": lambda: ref_obs.HistObserver(percent=0.99),
    "hist_asym": lambda: ref_obs.HistObserver(percent=0.99, symmetric=False),
    "kl": lambda: ref_obs.KLObserver(bins_count=512),
}


@pytest.mark.parametrize("name", sorted(_NUMPY_REF))
def test_dp_first_input_equals_numpy_reference(dp_run: dict, name: str) -> None:
    """The first layer's input observer equals refquant's NumPy observer on every batch."""
    obs = _NUMPY_REF[name]()
    for x in dp_run["data"]:
        obs.observe(x)
    qp = obs.compute()
    for r, (arrays, _) in enumerate(dp_run["ranks"]):
        got = arrays[f"{name}|0.activation_quanter|scale"]
        assert _bits(got) == _bits(np.asarray(qp.scale, np.float32)), (r, got, qp.scale)
        assert arrays[f"{name}|0.activation_quanter|zero_point"] == qp.zero_point


@pytest.mark.parametrize("name", sorted(common.SLIM))
def test_dp_paddleslim_profile_is_max_of_rank_scales(dp_run: dict, name: str) -> None:
    """paddleslim profile: each rank decides on its shard, then MAX of the scales."""
    shards = [_one_process(name, common.shard(dp_run["data"], r, 2)) for r in range(2)]
    for r, (arrays, _) in enumerate(dp_run["ranks"]):
        _assert_same(_prefixed(arrays, f"local_{name}"), shards[r], f"rank {r} local {name}")
    want = {}
    for k, v in shards[0].items():
        want[k] = np.maximum(v, shards[1][k]) if k.endswith("|scale") else v
    assert any(not np.array_equal(shards[0][k], shards[1][k]) for k in want), \
        "the shards already agree: MAX is not exercised"
    for r, (arrays, _) in enumerate(dp_run["ranks"]):
        _assert_same(_prefixed(arrays, name), want, f"rank {r} synced {name}")


def test_dp_modes(dp_run: dict) -> None:
    modes = dp_run["ranks"][0][1]["modes_absmax"]
    assert modes == {"0.weight_quanter": "check", "0.activation_quanter": "merge",
                     "1._observer": "merge", "2.weight_quanter": "check",
                     "2.activation_quanter": "merge"}


def test_dp_second_sync_changes_nothing(dp_run: dict) -> None:
    for arrays, _ in dp_run["ranks"]:
        _assert_same(_prefixed(arrays, "mse_twice"), _prefixed(arrays, "mse"), "twice")


@pytest.mark.parametrize("case, error, phrase", [
    ("empty", "EmptyRankError", "observed no data on rank(s) [1]"),
    ("config", "SyncMismatchError", "rank 1 has KLObserverLayer"),
    ("bits", "SyncMismatchError", "quant_bits=4"),
    ("weights", "SyncMismatchError", "ranks hold different weights"),
    ("stale", "SyncError", "observed more data after an earlier sync_observers call"),
])
def test_dp_faults_raise_the_same_error_on_every_rank(dp_run: dict, case: str, error: str,
                                                      phrase: str) -> None:
    got = [rep[case] for _, rep in dp_run["ranks"]]
    for g in got:
        assert g["error"] == error, g
        assert phrase in g["message"], g["message"]
    assert got[0]["message"] == got[1]["message"]


def test_dp_empty_rank_allowed_equals_the_data_of_the_other_rank(dp_run: dict) -> None:
    want = _one_process("kl", common.shard(dp_run["data"], 0, 2))
    for r, (arrays, rep) in enumerate(dp_run["ranks"]):
        assert rep["empty_allowed"]["error"] is None
        _assert_same(_prefixed(arrays, "empty_allowed"), want, f"rank {r}")


def test_dp_group_usable_after_refused_syncs(dp_run: dict) -> None:
    want = _one_process("absmax", dp_run["data"])
    for r, (arrays, rep) in enumerate(dp_run["ranks"]):
        assert rep["after_faults"]["error"] is None
        _assert_same(_prefixed(arrays, "after_faults"), want, f"rank {r}")


# ---------------------------------------------------------------------------------------
# a rank that hangs or dies: two processes started here
# ---------------------------------------------------------------------------------------
def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _spawn_pair(out: Path, mode: str) -> dict:
    master, p0, p1 = _free_ports(3)
    eps = f"127.0.0.1:{p0},127.0.0.1:{p1}"
    procs = []
    for r, port in enumerate((p0, p1)):
        env = _env()
        env.update(PADDLE_TRAINER_ID=str(r), PADDLE_TRAINERS_NUM="2",
                   PADDLE_CURRENT_ENDPOINT=f"127.0.0.1:{port}", PADDLE_TRAINER_ENDPOINTS=eps,
                   PADDLE_MASTER=f"127.0.0.1:{master}", PADDLE_GLOBAL_RANK=str(r),
                   PADDLE_LOCAL_RANK=str(r), PADDLE_GLOBAL_SIZE="2", PADDLE_LOCAL_SIZE="2")
        log = open(out / f"worker{r}.log", "w")
        procs.append((subprocess.Popen(
            [sys.executable, str(DIST / "fault_worker.py"), str(out), mode], env=env,
            cwd=str(out), stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log))
    try:
        procs[0][0].wait(LAUNCH_TIMEOUT)
    finally:
        for p, log in procs:
            _kill_group(p)
            log.close()
    path = out / "rank0.json"
    assert path.exists(), (out / "worker0.log").read_text()[-3000:]
    return json.loads(path.read_text())


def test_hung_rank_times_out_with_a_clear_error(tmp_path: Path) -> None:
    rec = _spawn_pair(tmp_path, "hang")
    assert rec["error"] == "SyncTimeoutError", rec
    assert "TimeoutError" in rec["mro"]
    assert "did not complete within" in rec["message"]
    assert "never called sync_observers: 1" in rec["message"], rec["message"]
    assert f"within {rec['timeout']:g} s" in rec["message"], rec["message"]


def test_rank_dying_mid_sync_gives_a_clear_error(tmp_path: Path) -> None:
    rec = _spawn_pair(tmp_path, "die")
    assert rec["error"] in ("SyncError", "SyncTimeoutError"), rec
    assert "SyncError" in rec["mro"]
    assert "collective 'all_reduce max'" in rec["message"], rec["message"]


# ---------------------------------------------------------------------------------------
# one process
# ---------------------------------------------------------------------------------------
def test_single_process_sync_is_a_local_no_op() -> None:
    data = common.batches()
    _, qm = common.quantized(common.CANONICAL["mse"]())
    common.calibrate(qm, data)
    before = common.observer_qparams(qm)
    res = sync_observers(qm)
    assert res.world_size == 1
    assert sorted(res.qparams) == sorted(before)
    _assert_same(common.flatten(common.observer_qparams(qm), "x"),
                 common.flatten(before, "x"), "after")


def test_argument_errors() -> None:
    _, qm = common.quantized(common.CANONICAL["absmax"]())
    with pytest.raises(ValueError, match="timeout must be a positive.*-1"):
        sync_observers(qm, timeout=-1)
    with pytest.raises(TypeError, match="timeout must be a number.*'10'"):
        sync_observers(qm, timeout="10")
    with pytest.raises(TypeError, match="model must be a paddle.nn.Layer, got list"):
        sync_observers([qm])


def test_foreign_observers_are_refused() -> None:
    from paddle.quantization.observers import AbsmaxObserver as PaddleAbsmax
    from refquant.adapters.paddle import PTQ, QuantConfig

    cfg = QuantConfig(activation=PaddleAbsmax(), weight=None)
    qm = PTQ(cfg).quantize(common.build_model())
    with pytest.raises(TypeError, match=r"not: 0.activation_quanter \(AbsmaxObserverLayer\)"):
        observer_entries(qm)
    with pytest.raises(TypeError, match="sync_observers merges refquant observers only"):
        sync_observers(qm)


def test_entries_roles() -> None:
    _, qm = common.quantized((O.KLObserver(), O.AbsMaxChannelWiseWeightObserver()))
    roles = {e.path: e.role for e in observer_entries(qm)}
    assert roles == {"0.weight_quanter": "weight", "0.activation_quanter": "activation",
                     "1._observer": "activation", "2.weight_quanter": "weight",
                     "2.activation_quanter": "activation"}


def test_sync_error_hierarchy() -> None:
    from refquant.adapters.paddle import distributed as rd

    assert issubclass(rd.SyncTimeoutError, TimeoutError)
    assert issubclass(rd.SyncMismatchError, ValueError)
    assert issubclass(rd.EmptyRankError, SyncError)


# ---------------------------------------------------------------------------------------
# tensor parallel (one process, mp_degree=1, plus two simulated model-parallel ranks)
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tp_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("tp")
    proc = subprocess.run([sys.executable, str(DIST / "tp_worker.py"), str(out)], env=_env(),
                          cwd=str(out), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with np.load(out / "tp.npz") as z:
        arrays = dict(z.items())
    return {"a": arrays, "r": json.loads((out / "tp.json").read_text())}


def _tp_data() -> tuple:
    import tp_worker

    return tp_worker.data()


def test_tp_layers_are_mapped(tp_run: dict) -> None:
    assert tp_run["r"]["types"] == ["QuantedColumnParallelLinear", "QuantedRowParallelLinear"]
    assert tp_run["r"]["modes"] == [{"weight_quanter": "local", "activation_quanter": "check"},
                                    {"weight_quanter": "merge", "activation_quanter": "merge"}]


def test_tp_weight_scales_equal_reference_on_full_weight(tp_run: dict) -> None:
    a = tp_run["a"]
    w1, w2, _ = _tp_data()
    # per-output-channel abs-max of the [in, out] weight: axis 1 (hand formula)
    assert _bits(a["col_wscale"]).tolist() == _bits(np.abs(w1).max(axis=0)).tolist()
    assert _bits(a["row_wscale"]).tolist() == _bits(np.abs(w2).max(axis=0)).tolist()
    assert int(a["col_waxis"]) == 1 and int(a["row_waxis"]) == 1
    assert _bits(a["col_wscale_after_sync"]).tolist() == _bits(a["col_wscale"]).tolist()


def test_tp_activation_scales_equal_reference(tp_run: dict) -> None:
    a = tp_run["a"]
    _, _, xs = _tp_data()
    obs = ref_obs.MSEObserver()
    for x in xs:
        obs.observe(x)
    assert _bits(a["col_ascale"]) == _bits(np.asarray(obs.compute().scale, np.float32))
    obs = ref_obs.MSEObserver()
    obs.observe(a["hidden"])
    assert _bits(a["row_ascale"]) == _bits(np.asarray(obs.compute().scale, np.float32))


def test_tp_forward_and_convert_keep_the_layer(tp_run: dict) -> None:
    from refquant.kernels import paddle as pk

    a = tp_run["a"]
    w1, w2, _ = _tp_data()
    for i in range(3):  # observers do not change the computation
        assert np.array_equal(_bits(a[f"obs_out{i}"]), _bits(a[f"float_out{i}"]))
    assert tp_run["r"]["conv_shapes"] == [list(w1.shape), list(w2.shape)]
    for name, w in (("col", w1), ("row", w2)):
        s = a[f"{name}_wscale"]
        want = pk.quantize_linear(w, s, np.zeros_like(s), quant_axis=1, bit_length=8)
        assert np.array_equal(a[f"{name}_codes"], np.asarray(want, np.float32)), name


def test_tp_two_simulated_ranks_merge_to_the_full_layer(tp_run: dict) -> None:
    a = tp_run["a"]
    assert tp_run["r"]["mp_errors"] == [None, None]
    w1, w2, xs = _tp_data()
    for r in range(2):
        # column, per-tensor weight observer: merged over the shards -> full weight
        assert _bits(a[f"mp{r}_col_w"]) == _bits(np.abs(w1).max())
        # column input: replicated, checked, unchanged
        assert _bits(a[f"mp{r}_col_a"]) == _bits(max(np.abs(x).max() for x in xs))
        # row, per-channel weight: every shard has every channel -> MAX over the shards
        assert _bits(a[f"mp{r}_row_w"]).tolist() == _bits(np.abs(w2).max(axis=0)).tolist()
        # row input is parallel: the shards of the activation merge to the full one
        obs = ref_obs.MSEObserver()
        obs.observe(a["mp_hidden"])
        assert _bits(a[f"mp{r}_row_a"]) == _bits(np.asarray(obs.compute().scale, np.float32))


# ---------------------------------------------------------------------------------------
# Hypothesis: 2-3 simulated ranks (threads) running the real sync code, random shards
# ---------------------------------------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
import fakedist  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from refquant.testing import distributions  # noqa: E402

_shards = st.lists(st.lists(distributions((3, 16)), min_size=0, max_size=2),
                   min_size=2, max_size=3)


@pytest.mark.parametrize("name", sorted(common.CANONICAL))
@settings(max_examples=15, deadline=None, derandomize=True)
@given(shards=_shards)
def test_simulated_ranks_equal_one_process(name: str, shards: list) -> None:
    """Any split of any data over 2-3 ranks (some possibly empty) merges to one process."""
    n = len(shards)
    models = _calibrate_and_sync_simulated(common.CANONICAL[name], shards)
    everything = [x for data in shards for x in data]
    want = _one_process(name, everything) if everything else {}
    for r, qm in enumerate(models):
        got = {k[1:]: v for k, v in common.flatten(common.observer_qparams(qm), "").items()}
        _assert_same(got, want, f"simulated rank {r} of {n}, case {name}")


@pytest.mark.parametrize("name", sorted(common.SLIM))
@settings(max_examples=10, deadline=None, derandomize=True)
@given(shards=_shards)
def test_simulated_ranks_paddleslim_max(name: str, shards: list) -> None:
    """paddleslim profile: MAX over the non-empty shards' own decisions, on every rank."""
    n = len(shards)
    models = _calibrate_and_sync_simulated(common.SLIM[name], shards)
    own = [_one_process(name, data) for data in shards if data]
    want: dict[str, np.ndarray] = {}
    for d in own:
        for k, v in d.items():
            want[k] = np.maximum(want[k], v) if k in want and k.endswith("|scale") else v
    for r, qm in enumerate(models):
        got = {k[1:]: v for k, v in common.flatten(common.observer_qparams(qm), "").items()}
        _assert_same(got, want, f"simulated rank {r} of {n}, case {name}")


def test_paddleslim_has_no_cross_rank_code_in_its_observers() -> None:
    """The claim docs/distributed.md makes about PaddleSlim 2.6.0, read off its source."""
    import importlib.util

    spec = importlib.util.find_spec("paddleslim")
    if spec is None or spec.origin is None:
        pytest.skip("paddleslim is not installed")
    root = Path(spec.origin).parent / "quant"
    observers = "".join(p.read_text() for p in sorted((root / "observers").glob("*.py")))
    assert "all_reduce" not in observers and "all_gather" not in observers
    # the only paddle.distributed names they use are the parallel layer classes
    assert set(re.findall(r"paddle\.distributed\.[\w.]+", observers)) <= {
        "paddle.distributed.fleet.meta_parallel.ColumnParallelLinear",
        "paddle.distributed.fleet.meta_parallel.RowParallelLinear"}
    quanter = (root / "quanters" / "channel_wise_abs_max.py").read_text()
    assert "all_reduce(" in quanter and "ReduceOp.MAX" in quanter
    for name in ("lsq_act.py", "lsq_weight.py"):
        assert "ReduceOp.MAX" in (root / "quanters" / name).read_text()
