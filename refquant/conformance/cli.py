"""``refquant conformance {generate,run,export,check}``.

``refquant/cli.py`` calls :func:`add_conformance_parser` on its subparsers; each
subcommand stores a handler in ``func`` that returns the exit status: 0 ok, 1 failures
found, 2 usage error or bad input (unknown target, corrupt fixture, malformed results
directory). Nothing is overwritten on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_conformance_parser"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _err(msg: str) -> int:
    print(f"refquant conformance: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _load(fixtures: str | None) -> Any:
    from .format import load_suite
    from .suite import default_fixture_dir

    return load_suite(Path(fixtures) if fixtures else default_fixture_dir())


def _path_arg(value: str) -> str:
    """argparse type of path arguments: an empty string is refused (it would mean '.')."""
    if value == "":
        raise argparse.ArgumentTypeError("must be a path, got an empty string")
    return value


def _check_report(path: str | None) -> str | None:
    """Why ``--report path`` cannot be written (checked before anything runs), or None."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        return f"--report {path!r} is a directory; expected a file name such as {p / 'report.json'}"
    if not p.parent.is_dir():
        what = "is a file, not a directory" if p.parent.exists() else "does not exist"
        return f"--report {path!r}: directory {str(p.parent)!r} {what}"
    return None


def _write_report(path: str | None, report: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=1, sort_keys=False) + "\n",
                              encoding="utf-8")


def _cmd_generate(args: argparse.Namespace) -> int:
    from .suite import generate

    try:
        out = generate(args.out, log=not args.quiet)
    except FileExistsError as exc:
        return _err(f"--out: {exc}")
    except (ValueError, TypeError, OSError) as exc:
        return _err(f"generation failed, nothing written: {exc}")
    if not args.quiet:
        print(f"wrote fixtures to {out}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from .format import FixtureError
    from .runner import format_table, run_suite
    from .targets import get_target

    try:
        target = get_target(args.target)
    except ValueError as exc:
        return _err(f"--target: {exc}")
    bad_report = _check_report(args.report)
    if bad_report:
        return _err(bad_report)
    try:
        suite = _load(args.fixtures)
    except FixtureError as exc:
        return _err(str(exc))
    report = run_suite(suite, target, args.filter)
    if report["total"] == 0:
        return _err(f"no case matches filter {args.filter!r}")
    print(format_table(report, verbose=args.verbose))
    try:
        _write_report(args.report, report)
    except OSError as exc:
        return _err(f"--report: cannot write {args.report}: {exc}")
    return EXIT_FAIL if report["failed"] else EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export
    from .format import FixtureError

    try:
        suite = _load(args.fixtures)
        out = export(args.dir, suite)
    except (FixtureError, FileExistsError, OSError) as exc:
        return _err(str(exc))
    print(f"exported {len(suite.cases)} cases to {out}")
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    from .export import ResultsError, check_results
    from .format import FixtureError
    from .runner import format_table

    bad_report = _check_report(args.report)
    if bad_report:
        return _err(bad_report)
    try:
        suite = _load(args.fixtures)
        report = check_results(args.results, suite, args.filter)
    except (FixtureError, ResultsError) as exc:
        return _err(str(exc))
    print(format_table(report, verbose=args.verbose))
    try:
        _write_report(args.report, report)
    except OSError as exc:
        return _err(f"--report: cannot write {args.report}: {exc}")
    return EXIT_FAIL if report["failed"] else EXIT_OK


def add_conformance_parser(subparsers: Any) -> None:
    """Register ``conformance`` and its subcommands on an argparse subparsers object."""
    from .targets import TARGET_NAMES

    p = subparsers.add_parser(
        "conformance", help="conformance fixtures: generate, run a target, export, check",
        description="Check quantization implementations against refquant's fixtures.")
    sub = p.add_subparsers(dest="conformance_command", metavar="COMMAND")
    sub.required = True

    g = sub.add_parser("generate", help="regenerate the fixtures deterministically",
                       description="Regenerate every case with the reference implementation.")
    g.add_argument("--out", default=None, type=_path_arg,
                   help="a new or empty output directory (default: regenerate the source "
                        "checkout's conformance/ in place)")
    g.add_argument("--quiet", action="store_true", help="print nothing on success")
    g.set_defaults(func=_cmd_generate)

    r = sub.add_parser("run", help="run an implementation (target) on the fixtures",
                       description="Run a target on the fixtures. Exit 0 when no case failed, "
                                   "1 when some failed, 2 for bad input.")
    r.add_argument("--target", required=True, help=f"one of: {', '.join(TARGET_NAMES)}")
    r.add_argument("--filter", default=None, metavar="GLOB", help="only case ids matching GLOB")
    r.add_argument("--report", default=None, metavar="FILE.json", type=_path_arg,
                   help="write a JSON report")
    r.add_argument("--fixtures", default=None, metavar="DIR", type=_path_arg,
                   help="fixture directory (default: the installed fixtures)")
    r.add_argument("-v", "--verbose", action="store_true", help="list every case")
    r.set_defaults(func=_cmd_run)

    e = sub.add_parser("export", help="write the fixtures and a README for implementers",
                       description="Export the fixtures to a new or empty directory.")
    e.add_argument("dir", type=_path_arg, help="destination directory (must not exist or be empty)")
    e.add_argument("--fixtures", default=None, metavar="DIR", type=_path_arg,
                   help="source fixture directory")
    e.set_defaults(func=_cmd_export)

    c = sub.add_parser("check", help="compare a directory of <case-id>.npy results",
                       description="Compare results written by any implementation.")
    c.add_argument("--results", required=True, metavar="DIR", type=_path_arg,
                   help="directory of results")
    c.add_argument("--fixtures", default=None, metavar="DIR", type=_path_arg,
                   help="fixture directory")
    c.add_argument("--filter", default=None, metavar="GLOB", help="only case ids matching GLOB")
    c.add_argument("--report", default=None, metavar="FILE.json", type=_path_arg,
                   help="write a JSON report")
    c.add_argument("-v", "--verbose", action="store_true", help="list every case")
    c.set_defaults(func=_cmd_check)

