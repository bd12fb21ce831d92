"""``refquant calibrate --observer family.Class``: other frameworks' observers from the CLI.

Expected values come from the real framework (torch.ao) run on the same file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from refquant.cli import main
from refquant.observers.families import FAMILIES, observer_classes, resolve_observer


@pytest.fixture()
def batches(tmp_path):
    x = np.random.default_rng(0).normal(0, 2, size=(3, 50)).astype(np.float32)
    x[1] *= 4
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path, x


def test_torch_observer_from_the_cli_equals_torch(batches, capsys):
    torch = pytest.importorskip("torch")
    path, x = batches
    argv = ["calibrate", str(path), "--observer", "torch.MovingAverageMinMax", "--batches",
            "--option", "dtype=qint8", "--option", "averaging_constant=0.25", "--json"]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out)
    real = torch.ao.quantization.MovingAverageMinMaxObserver(averaging_constant=0.25,
                                                             dtype=torch.qint8)
    for b in x:
        real(torch.from_numpy(b))
    s, z = real.calculate_qparams()
    assert got["observer"] == "torch.MovingAverageMinMaxObserver"
    assert np.ravel(got["scale_bits"]).tolist() == s.numpy().astype(np.float32).view(
        np.uint32).reshape(-1).tolist()
    assert np.ravel(got["zero_point"]).tolist() == z.numpy().reshape(-1).tolist()


def test_bare_names_stay_paddleslim_observers(batches, capsys):
    path, x = batches
    assert main(["calibrate", str(path), "--observer", "absmax", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["observer"] == "AbsmaxObserver"
    assert np.float32(got["scale"]) == np.abs(x).max()


@pytest.mark.parametrize("argv, message", [
    (["--observer", "torch.MinMax", "--bits", "4"], "--bits apply to PaddleSlim"),
    (["--observer", "torch.MinMax", "--option", "dtype"], "NAME=VALUE"),
    (["--observer", "torch.MinMax", "--option", "dtype=a", "--option", "dtype=b"], "twice"),
    (["--observer", "torch.MinMax", "--option", "dtype=int3"], "dtype must be one of"),
    (["--observer", "torch.MinMax", "--option", "bogus=1"], "bogus"),
    (["--observer", "nope.X"], "--observer family must be one of"),
    (["--observer", "torch.Nope"], "--observer must be one of"),
])
def test_bad_family_arguments_exit_2_with_one_line(batches, capsys, argv, message):
    path, _ = batches
    assert main(["calibrate", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_every_family_that_ships_lists_its_observers():
    shipped = 0
    for family in FAMILIES:
        try:
            classes = observer_classes(family)
        except ImportError:
            continue
        shipped += 1
        assert classes, family
        for name, cls in classes.items():
            assert resolve_observer(f"{family}.{name}") == (family, cls)
    assert shipped >= 2  # PaddleSlim's and torch.ao's are part of every build
