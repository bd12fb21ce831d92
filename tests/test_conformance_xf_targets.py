"""The ``onnxruntime`` and ``nncf`` conformance targets on the other frameworks' observer
cases (``observer.<family>.<Class>``): the installed package's result equals refquant's
reference bit for bit (dtype, shape and bytes of every output).

The onnxruntime cases are fixtures; NNCF's estimators carry no registered profile yet, so
their cases are built here from the same drafts the fixtures would hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from refquant.conformance.cases import xf_observer_cases as X
from refquant.conformance.format import load_suite
from refquant.conformance.registry import build_case
from refquant.conformance.runner import run_suite
from refquant.conformance.suite import default_fixture_dir
from refquant.conformance.targets import get_target


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_onnxruntime_target_runs_every_calibrator_fixture():
    pytest.importorskip("onnxruntime")
    suite = load_suite(default_fixture_dir())
    rep = run_suite(suite, get_target("onnxruntime"), "xfobs.onnxruntime.*")
    ran = {c["op"] for c in rep["cases"] if c["status"] != "skipped"}
    assert ran == {f"observer.onnxruntime.{n}" for n in X.PARAMS["onnxruntime"]}
    assert rep["failed"] == 0 and rep["skipped"] == 0 and rep["total"] >= 30, rep["total"]


def test_nncf_target_matches_the_reference_on_every_draft():
    pytest.importorskip("nncf")
    target = get_target("nncf")
    cases = [build_case(d, "xf_observers") for d in X.drafts(("nncf",))]
    assert {c.op for c in cases} == {f"observer.nncf.{n}" for n in X.PARAMS["nncf"]}
    for case in cases:
        out = target.run(case)
        assert set(out) == set(case.outputs)
        bad = [k for k in case.outputs if not _same(out[k], case.outputs[k])]
        assert not bad, (case.id, {k: (out[k], case.outputs[k]) for k in bad})
