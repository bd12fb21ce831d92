"""Importing PaddleSlim 2.6.0 where its package ``__init__`` cannot run.

A leaf module (standard library and NumPy only). Used by the ``paddleslim`` conformance
target, by :mod:`refquant.testing` (which re-exports both functions) and by the tests and
benchmarks that compare refquant's ``paddleslim`` profile with the installed PaddleSlim.
Nothing here is imported at module level: PaddleSlim (and Paddle) are imported only when a
function is called.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from types import ModuleType

import numpy as np

__all__ = ["import_paddleslim", "paddleslim_hist_module"]


def import_paddleslim(module: str = "paddleslim") -> ModuleType:
    """Import PaddleSlim 2.6.0, or one of its modules (``"paddleslim.quant.observers.kl"``).

    PaddleSlim's package ``__init__`` imports ``pkg_resources`` (PaddlePaddle/PaddleSlim
    ``paddleslim/common/load_model.py``, ``paddleslim/prune/__init__.py``), which
    setuptools >= 80 no longer ships; refquant's ``slim`` extra pins ``setuptools<80``.
    Where ``pkg_resources`` is missing anyway, the quantization modules are imported without
    running PaddleSlim's package ``__init__``: ``paddleslim`` and ``paddleslim.quant`` are
    registered as bare packages over the installed directories (nothing on disk changes),
    which is all ``paddleslim.quant.*`` needs. Raises ``ImportError`` when PaddleSlim is not
    installed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            if "pkg_resources" not in str(exc) and getattr(exc, "name", "") != "pkg_resources":
                raise
        for key in [k for k in sys.modules if k == "paddleslim" or k.startswith("paddleslim.")]:
            del sys.modules[key]
        spec = importlib.util.find_spec("paddleslim")
        if spec is None or spec.origin is None:
            raise ImportError("paddleslim is not installed")
        root = os.path.dirname(spec.origin)
        for name, path in (("paddleslim", root), ("paddleslim.quant", os.path.join(root, "quant"))):
            package = ModuleType(name)
            package.__path__ = [path]
            sys.modules[name] = package
        return importlib.import_module(module)


def paddleslim_hist_module() -> ModuleType:
    """``paddleslim.quant.observers.hist`` with its NumPy 2 crash worked around.

    ``PercentHistObserverLayer`` (PaddlePaddle/PaddleSlim
    ``paddleslim/quant/observers/hist.py``) computes ``float(v)`` of a 1-element array,
    which NumPy 2 refuses: its ``scales()`` always raises ``TypeError`` (quirk Q25 of
    ``docs/divergences.md``). The module's ``float`` is replaced by one that accepts a
    1-element array, as NumPy 1.x did, so the real observer can be compared with refquant's
    ``paddleslim`` profile. Only that module's global name is patched, for the rest of the
    process (``del mod.float`` undoes it); no file changes.
    """
    import builtins

    mod = import_paddleslim("paddleslim.quant.observers.hist")
    mod.float = lambda v: builtins.float(np.asarray(v).reshape(()))  # type: ignore[attr-defined]
    return mod
