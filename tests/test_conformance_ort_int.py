"""The ``ort.*`` integer-kernel fixtures and the ``onnxruntime-int8`` target.

The target runs ONNX Runtime's default CPU session on the cases of this CPU's MLAS variant
(detected by ``refquant.kernels.onnxruntime.host_isa``) and skips the others, naming both
variants: the test asserts that split, not which variant this CPU has. The fixtures of the
saturating variants, which ORT can check only on such a CPU, are checked on every machine
against an independent pair-by-pair statement of ``vpmaddubsw`` written here.
"""

from __future__ import annotations

import numpy as np
import pytest

from refquant.conformance import default_fixture_dir, get_target, load_suite, run_suite
from refquant.conformance.cases.ort_int_cases import X86_ISAS
from refquant.kernels.onnxruntime import host_isa

EXACT = ("avx2-vnni", "avx512-vnni", "amx")
SATURATING = ("avx2", "avx512")


@pytest.fixture(scope="module")
def cases():
    suite = load_suite(default_fixture_dir())
    found = [c for c in suite.cases if c.op.startswith("ort.")]
    assert found
    return found


def _by_id(cases):
    return {c.id: c for c in cases}


def test_every_case_names_an_x86_variant_and_exists_for_each(cases):
    stems = {c.id.rsplit(".", 1)[0] for c in cases}
    ids = _by_id(cases)
    for stem in stems:
        for isa in X86_ISAS:
            case = ids[f"{stem}.{isa}"]
            assert case.params["isa"] == isa and case.id.endswith(isa)


def test_target_runs_this_cpus_variant_and_skips_the_others(cases):
    """Against the installed ONNX Runtime: every case of the host's variant passes bit for bit,
    every other ``ort.*`` case is skipped with a reason naming both variants."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    suite = load_suite(default_fixture_dir())
    report = run_suite(suite, get_target("onnxruntime-int8"), "ort.*")
    host = host_isa()
    by_status: dict[str, list[dict]] = {}
    for r in report["cases"]:
        by_status.setdefault(r["status"], []).append(r)
    ids = _by_id(cases)
    mine = {c.id for c in cases if c.params["isa"] == host}
    assert {r["id"] for r in by_status.get("passed", [])} == mine
    assert not by_status.get("failed") and not by_status.get("expected-divergence")
    for r in by_status["skipped"]:
        isa = ids[r["id"]].params["isa"]
        assert isa != host
        assert f"isa {isa!r}" in r["reason"] and f"isa {host!r}" in r["reason"], r


def _sat16(v: np.ndarray) -> np.ndarray:
    return np.clip(v, -32768, 32767)


def _vpmaddubsw_matmul(a: np.ndarray, b: np.ndarray, za: int, zb: np.ndarray) -> np.ndarray:
    """MLAS's u8 x s8 product on AVX2 without VNNI, stated element by element: each K pair of
    raw-code products summed in int16 with saturation (odd K: the last product alone), the
    pairs summed in int32, then the zero points applied with row and column sums."""
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    m, k = a64.shape
    n = b64.shape[1]
    acc = np.zeros((m, n), np.int64)
    for j in range(0, k - 1, 2):
        acc += _sat16(np.outer(a64[:, j], b64[j]) + np.outer(a64[:, j + 1], b64[j + 1]))
    if k % 2:
        acc += np.outer(a64[:, -1], b64[-1])
    acc -= zb[None, :] * a64.sum(1)[:, None] + za * b64.sum(0)[None, :] - k * za * zb[None, :]
    return ((acc + 2**31) % 2**32 - 2**31).astype(np.int32)


def test_saturating_matmul_integer_fixtures_follow_vpmaddubsw(cases):
    """The ``avx2`` / ``avx512`` MatMulInteger fixtures of u8 x s8 equal the pair-by-pair
    formulation; the exact variants equal plain integer arithmetic; and the inputs do reach
    saturation (the two differ for every u8 x s8 case)."""
    checked = 0
    for c in cases:
        if c.op != "ort.matmul_integer":
            continue
        a, b = c.inputs["a"], c.inputs["b"]
        za = int(c.inputs["a_zero_point"])
        zb = np.broadcast_to(c.inputs["b_zero_point"].astype(np.int64), (b.shape[1],))
        exact = (a.astype(np.int64) - za) @ (b.astype(np.int64) - zb[None, :])
        y = c.outputs["y"]
        if c.params["isa"] in SATURATING and a.dtype == np.uint8 and b.dtype == np.int8:
            expected = _vpmaddubsw_matmul(a, b, za, zb)
            assert not np.array_equal(expected, exact.astype(np.int32)), c.id
            checked += 1
        else:
            expected = exact.astype(np.int32)
        np.testing.assert_array_equal(y, expected, err_msg=c.id)
    assert checked == 2 * 4


def test_saturation_shows_only_in_u8_s8_gemm_cases(cases):
    """Exact variants agree with each other on every case; the saturating ones differ from
    them exactly where a u8 x s8 GEMM forms pairs; the element-wise kernels never."""
    ids = _by_id(cases)
    for stem in sorted({c.id.rsplit(".", 1)[0] for c in cases}):
        outs = {isa: ids[f"{stem}.{isa}"].outputs for isa in X86_ISAS}
        for isa in X86_ISAS:
            for name, ref in outs["amx"].items():
                same = outs[isa][name].tobytes() == ref.tobytes()
                # u8 x s8 GEMM cases with K >= 2 (the K = 1 case has no pair to saturate)
                gemm_u8s8 = ".u8s8" in stem and not stem.endswith(".k1")
                assert same == (isa in EXACT or not gemm_u8s8), (stem, isa, name)
