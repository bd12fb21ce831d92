"""Conformance fixtures: reader, writer, targets and runner.

The fixture format is specified in ``refquant/_fixtures/SPEC.md`` (shipped as package data in
``refquant._fixtures``); docs/conformance.md shows the end-to-end use. Main entry points::

    from refquant.conformance import load_suite, default_fixture_dir, get_target, run_suite
    report = run_suite(load_suite(default_fixture_dir()), get_target("onnxruntime"))

Nothing here imports a framework; each target imports its own only when it runs. Importing
the package registers every case family (``cases``) and installs the manifest schema check
(``schema``) that the reader and writer run.
"""

from . import schema as _schema  # noqa: F401  (registers the families, installs the check)
from .compare import compare_outputs, first_mismatch
from .export import check_results, export
from .format import FORMAT_VERSION, Case, FixtureError, Suite, load_suite, write_suite
from .runner import format_table, run_suite
from .suite import default_fixture_dir, generate, generate_cases
from .targets import TARGET_NAMES, get_target

__all__ = [
    "FORMAT_VERSION",
    "Case",
    "Suite",
    "FixtureError",
    "load_suite",
    "write_suite",
    "compare_outputs",
    "first_mismatch",
    "run_suite",
    "format_table",
    "export",
    "check_results",
    "default_fixture_dir",
    "generate",
    "generate_cases",
    "TARGET_NAMES",
    "get_target",
]
