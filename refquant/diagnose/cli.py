"""``refquant diagnose``: name the variant a kernel implements.

``refquant/cli.py`` calls :func:`add_diagnose_parser` on its subparsers. The kernel is a
results directory (``--results DIR``, the format ``refquant conformance check --results``
reads), a Python callable (``--kernel module:function``) or an installed implementation
(``--implementation NAME``). Exit status: 0 when the kernel matches the named reference
(``--reference``, default: the family's first, ``onnx``), 1 when it does not, 2 for bad
input (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_diagnose_parser"]

EXIT_OK, EXIT_DIFFERS, EXIT_USAGE = 0, 1, 2


def _err(msg: str) -> int:
    print(f"refquant diagnose: error: {msg}".replace("\n", " "), file=sys.stderr)
    return EXIT_USAGE


def _load_callable(spec: str) -> Any:
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"--kernel must be MODULE:FUNCTION, got {spec!r}")
    try:
        obj: Any = importlib.import_module(mod)
    except ImportError as exc:
        raise ValueError(f"--kernel {spec!r}: cannot import {mod!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--kernel {spec!r}: {mod!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"--kernel {spec!r} is not callable")
    return obj


def _cmd(args: argparse.Namespace) -> int:
    from ..conformance.format import FixtureError
    from .implementations import get_implementation
    from .match import DiagnoseError, diagnose_callable, diagnose_results, format_report

    given = [a for a in ("results", "kernel", "implementation") if getattr(args, a)]
    if len(given) != 1:
        return _err("give exactly one of --results DIR, --kernel MODULE:FUNCTION, "
                    "--implementation NAME")
    if args.family in ("cast", "mx") or args.implementation in _cast_names():
        return _cast_cmd(args)
    if args.report is not None and (Path(args.report).is_dir()
                                    or not Path(args.report).parent.is_dir()):
        return _err(f"--report {args.report!r}: not a writable file path")
    family, reference = args.family, args.reference
    try:
        if args.results:
            report = diagnose_results(args.results, family or "quantize", reference,
                                      args.fixtures)
        elif args.kernel:
            report = diagnose_callable(_load_callable(args.kernel), family or "quantize",
                                       reference, args.fixtures, source=args.kernel,
                                       float_zero_point_ok=args.float_zero_point)
        else:
            impl = get_implementation(args.implementation)
            why = impl.missing()
            if why:
                return _err(why)
            if family is not None and family != impl.family:
                return _err(f"--implementation {impl.name} is a {impl.family} kernel, not "
                            f"{family}")
            report = diagnose_callable(impl.factory(), impl.family,
                                       reference or impl.reference, args.fixtures,
                                       source=impl.name,
                                       float_zero_point_ok=impl.float_zero_point)
    except (DiagnoseError, FixtureError, ValueError, TypeError) as exc:
        return _err(str(exc))
    text = json.dumps(report, indent=1) if args.json else format_report(report)
    print(text)
    if args.report:
        try:
            Path(args.report).write_text(json.dumps(report, indent=1) + "\n",
                                         encoding="utf-8")
        except OSError as exc:
            return _err(f"--report: cannot write {args.report}: {exc}")
    return EXIT_OK if report["matches_reference"] else EXIT_DIFFERS


def _cast_names() -> set[str]:
    from .cast import CAST_IMPLEMENTATIONS

    return set(CAST_IMPLEMENTATIONS)


def _cast_cmd(args: argparse.Namespace) -> int:
    """Families ``cast`` and ``mx`` (:mod:`refquant.diagnose.cast`): exit 0 when one
    catalogued variant explains every probe, 1 otherwise."""
    import importlib.util

    from .cast import (
        CAST_IMPLEMENTATIONS,
        diagnose_cast,
        diagnose_implementation,
        diagnose_mx,
        format_cast_report,
    )

    try:
        if args.results:
            raise ValueError(f"--family {args.family} takes --kernel or --implementation, "
                             f"not --results")
        if args.implementation:
            family, fmt, package, _ = CAST_IMPLEMENTATIONS[args.implementation]
            if importlib.util.find_spec(package) is None:
                raise ValueError(f"implementation {args.implementation!r} needs the Python "
                                 f"package {package!r}")
            report = diagnose_implementation(args.implementation)
            source = args.implementation
        else:
            if args.format is None:
                raise ValueError(f"--family {args.family} needs --format")
            fn = _load_callable(args.kernel)
            report = (diagnose_cast(fn, args.format) if args.family == "cast"
                      else diagnose_mx(fn, args.format))
            source = args.kernel
    except (ValueError, TypeError) as exc:
        return _err(str(exc))
    print(json.dumps(report, indent=1) if args.json else format_cast_report(report, source))
    if args.report:
        try:
            Path(args.report).write_text(json.dumps(report, indent=1) + "\n",
                                         encoding="utf-8")
        except OSError as exc:
            return _err(f"--report: cannot write {args.report}: {exc}")
    ok = report["explained"] and all(i["variant"] for i in report["axes"].values())
    return EXIT_OK if ok else EXIT_DIFFERS


def _nonempty(value: str) -> str:
    if value == "":
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def add_diagnose_parser(subparsers: Any) -> None:
    """Register ``diagnose`` on an argparse subparsers object."""
    from .cast import CAST_IMPLEMENTATIONS
    from .catalogue import FAMILIES, REFERENCES
    from .implementations import IMPLEMENTATIONS

    refs = sorted({r for f in REFERENCES.values() for r in f})
    p = subparsers.add_parser(
        "diagnose", help="name the variant (rounding, scale order, ...) a kernel implements",
        description="Run a kernel on the diagnose conformance cases and name, per axis, the "
                    "catalogued variant that explains its outputs. Exit 0 when it matches "
                    "the reference, 1 when it does not, 2 for bad input.")
    p.add_argument("--results", type=_nonempty, metavar="DIR",
                   help="directory of <case-id>.npy results (as for conformance check)")
    p.add_argument("--kernel", type=_nonempty, metavar="MODULE:FUNCTION",
                   help="a Python callable with the family's signature")
    p.add_argument("--implementation", type=_nonempty, metavar="NAME",
                   help=f"an installed implementation: {', '.join(IMPLEMENTATIONS)}, "
                        f"{', '.join(CAST_IMPLEMENTATIONS)}")
    p.add_argument("--family", choices=[*sorted(FAMILIES), "cast", "mx"], default=None,
                   help="kernel family (default: quantize, or the implementation's); cast: "
                        "fn(x float32) -> x cast to --format and back; mx: MX quantize-"
                        "dequantize, blocks of 32, element --format")
    p.add_argument("--format", default=None, metavar="NAME",
                   help="element format of --family cast / mx (fp8_e4m3fn, fp8_e5m2, "
                        "fp6_e3m2, fp6_e2m3, fp4_e2m1, ...)")
    p.add_argument("--reference", choices=refs, default=None,
                   help="the reference to match (default: onnx, or the implementation's)")
    p.add_argument("--fixtures", type=_nonempty, default=None, metavar="DIR",
                   help="fixture directory (default: the installed fixtures)")
    p.add_argument("--float-zero-point", action="store_true",
                   help="--kernel takes a non-integer zero point (np.float32): run the "
                        "fake_quant case that tells a float zero point from an integer one")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report", type=_nonempty, default=None, metavar="FILE.json",
                   help="also write the JSON report to a file")
    p.set_defaults(func=_cmd)
