"""Keep known lines of the environment's own noise off the user's terminal.

Native libraries write to file descriptor 2 directly (glog in Paddle's C++ core, NumPy's C
import check in an extension module), past ``sys.stderr`` and ``warnings``. The context
manager below redirects descriptor 2 to a temporary file for the duration of a block, then
writes back every captured line except those matching the given patterns, so anything else
(a real error, a traceback) still reaches the user, in order, after the block.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["CV2_ABI", "drop_stderr_lines"]

#: What importing Paddle prints where OpenCV was built for NumPy 1.x: ``paddle/dataset/
#: image.py`` (PaddlePaddle/Paddle) imports ``cv2`` inside ``try/except ImportError``, and
#: NumPy's C import check prints this line before raising. Paddle works without OpenCV.
CV2_ABI = (r"^RuntimeError: module compiled against ABI version 0x[0-9a-fA-F]+ "
           r"but this version of numpy is")


@contextlib.contextmanager
def drop_stderr_lines(*patterns: str) -> Iterator[None]:
    """Run the block with descriptor 2 captured; re-emit the lines no pattern matches.

    ``patterns`` are regular expressions searched in each line (``re.search``). Where
    descriptor 2 cannot be redirected (no such descriptor, e.g. an embedded interpreter),
    the block runs unchanged.
    """
    compiled = [re.compile(p) for p in patterns]
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        _flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            _flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if not any(p.search(line) for p in compiled)]
            if kept and sys.stderr is not None:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _flush() -> None:
    if sys.stderr is not None:
        sys.stderr.flush()
