"""Smoke test of bench/observers_xframework.py: the quick run exits 0 and every bug-for-bug
observer it benchmarks gives the installed framework's result bit for bit
(``identical=True``). Timings are never asserted."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "observers_xframework.py"

#: bug-for-bug rows the quick run prints per installed framework
ROWS = {"torch": 5, "onnxruntime": 5, "nncf": 5}


def test_quick_run_is_identical_everywhere():
    proc = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "identical=" in line]
    assert rows and all(line.rstrip().endswith("identical=True") for line in rows), \
        proc.stdout
    expected = sum(n for mod, n in ROWS.items() if importlib.util.find_spec(mod) is not None)
    assert len(rows) == expected, proc.stdout
    assert "modelopt:" in proc.stdout
