"""Suite-wide hooks.

``REFQUANT_REQUIRE_OPTIONAL=1`` (set by ``.ci/run``): a test or module skipped because an
optional package is missing fails instead. CI installs every optional package the tests use,
so a skip of that kind there means a differential test silently did not run. Recognised
skip reasons (:func:`is_missing_dependency`):

* ``pytest.importorskip``'s ``could not import 'mod': ...``;
* ``No module named ...`` (an ``ImportError`` message used as the reason);
* any reason containing ``not installed`` or ``not importable``;
* any reason starting with :data:`OPTIONAL_PREFIX` (``"optional dependency"``), the
  convention for an explicit ``pytest.skip`` / ``skipif`` on a missing optional package.

Other skips (and ``xfail``) are left as they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from typing import Any

import pytest

ENV = "REFQUANT_REQUIRE_OPTIONAL"
OPTIONAL_PREFIX = "optional dependency"

_MISSING = re.compile(
    r"could not import|no module named|not installed|not importable|^optional dependency",
    re.IGNORECASE,
)


def _required() -> bool:
    return os.environ.get(ENV, "").strip() not in ("", "0")


def is_missing_dependency(reason: str) -> bool:
    """Whether a skip ``reason`` says that an optional package is missing."""
    reason = reason.strip()
    if reason.startswith("Skipped:"):
        reason = reason[len("Skipped:"):].strip()
    return bool(_MISSING.search(reason))


def _skip_reason(report: Any) -> str | None:
    """The reason of a skipped (not xfailed) report, or None."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_if_missing(report: Any) -> None:
    reason = _skip_reason(report)
    if reason is not None and _required() and is_missing_dependency(reason):
        report.outcome = "failed"
        report.longrepr = (
            f"{ENV} is set: a skip caused by a missing optional package is a failure "
            f"({reason})"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator:
    outcome = yield
    _fail_if_missing(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator:
    outcome = yield
    _fail_if_missing(outcome.get_result())
