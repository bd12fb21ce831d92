"""What keeps a first run's output clean: the stderr line filter, and the adapter's
``paddle.std`` without Paddle's type-promotion log line (``docs/demo.md``).

The whole command's output is checked in ``tests/test_demo.py``.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from refquant._stderr import drop_stderr_lines


def test_drop_stderr_lines_drops_only_matching_lines_written_to_fd_2(capfd):
    with drop_stderr_lines(r"^RuntimeError: module compiled against ABI", "type promotion"):
        os.write(2, b"RuntimeError: module compiled against ABI version 0x1000009 but ...\n")
        os.write(2, b"W1204 12:00:00.0 x.cc:1] Got different data type, run type promotion\n")
        os.write(2, b"Traceback (most recent call last):\n")
        sys.stderr.write("a real warning\n")
        print("a result")
    out, err = capfd.readouterr()
    assert out == "a result\n"
    # (under capfd, sys.stderr is pytest's own file, not descriptor 2: order not compared)
    assert sorted(err.splitlines()) == ["Traceback (most recent call last):", "a real warning"]


def test_drop_stderr_lines_restores_fd_2_when_the_block_raises(capfd):
    with pytest.raises(ValueError, match="boom"), drop_stderr_lines("noise"):
        os.write(2, b"noise\nkept\n")
        raise ValueError("boom")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "kept\nafter\n"


def test_adapter_std_is_paddle_std_bit_for_bit():
    paddle = pytest.importorskip("paddle")
    from refquant.adapters.paddle import _device as dev

    rng = np.random.default_rng(7)
    for dtype in ("float32", "float64"):
        for shape in [(2,), (9,), (3, 5), (16, 48), (33, 1000), (4, 3, 2, 2), (5, 70001)]:
            for axis in [None, *([0, 1] if len(shape) == 2 else [])]:
                x = (rng.standard_normal(shape) * rng.uniform(0.01, 100)
                     + rng.uniform(-5, 5)).astype(dtype)
                t = paddle.to_tensor(x)
                expected = paddle.std(t, axis=axis).numpy().reshape(-1)
                got = dev.std(t, axis).numpy().reshape(-1)
                assert got.dtype == expected.dtype == np.dtype(dtype)
                np.testing.assert_array_equal(
                    got.view(np.uint8), expected.view(np.uint8), err_msg=f"{dtype} {shape} {axis}")
