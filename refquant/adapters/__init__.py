"""Framework adapters: ``refquant.adapters.paddle``.

The adapter's source lives in the repository's top-level ``adapters/`` directory, outside the
framework-free core (``refquant/`` imports no framework at module level). An installed wheel
ships it as ``refquant/adapters/paddle``. In a source checkout this package's search path is
extended to that checkout's own ``adapters/`` directory, so ``refquant.adapters.paddle``
always comes from the same tree as the ``refquant`` that was imported — never from another
checkout's editable install (``tests/test_packaging.py`` checks both cases).
"""

from pathlib import Path

_checkout = Path(__file__).resolve().parents[2]
if (_checkout / "pyproject.toml").is_file() and (_checkout / "adapters" / "paddle").is_dir():
    __path__.append(str(_checkout / "adapters"))  # noqa: F821 (the package's own __path__)
