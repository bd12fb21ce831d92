"""The ``refquant`` command.

Exit codes follow the usual convention: 0 success, 1 the command ran and found a failure
(e.g. a conformance mismatch), 2 bad usage or bad input (one-line message on stderr, no
traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit code 2."""


def _observer_classes() -> dict[str, type]:
    from . import observers

    names = getattr(observers, "OBSERVERS", {})
    return dict(names)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    classes = _observer_classes()
    key = args.observer.lower().removesuffix("observer")
    lookup = {k.lower().removesuffix("observer"): v for k, v in classes.items()}
    if key not in lookup:
        raise UsageError(
            f"--observer must be one of {sorted(classes)}, got {args.observer!r}"
        )
    data = _load_npy(args.file)
    kwargs: dict[str, Any] = {"quant_bits": args.bits, "profile": args.profile}
    if args.axis is not None:
        kwargs["axis"] = args.axis
    try:
        obs = lookup[key](**kwargs)
        batches = list(data) if args.batches else [data]
        for batch in batches:
            obs.observe(batch)
        qp = obs.compute()
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if args.json:
        print(json.dumps({"observer": type(obs).__name__, **qp.to_dict()}))
    else:
        print(f"observer    {type(obs).__name__} (profile={args.profile}, bits={args.bits})")
        print(f"scale       {qp.scale.tolist()}  [{qp.convention}]")
        print(f"zero_point  {qp.zero_point.tolist()}")
        print(f"range       [{qp.qmin}, {qp.qmax}]")
        if qp.margin is not None:
            print(f"margin      {qp.margin}")
    return EXIT_OK


def _load_npy(file: str) -> Any:
    import numpy as np

    path = Path(file)
    if not path.is_file():
        raise UsageError(f"FILE {str(path)!r} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - report any loader failure as bad input
        raise UsageError(f"FILE {str(path)!r} is not a readable .npy array: {exc}") from exc


def _cmd_plot(args: argparse.Namespace) -> int:
    import numpy as np

    from .observers import ACTIVATION_OBSERVERS, OBSERVERS
    from .plotting import plot_thresholds

    data = _load_npy(args.file)
    batches = list(data) if args.batches else [data]
    qparams = {}
    for name in ACTIVATION_OBSERVERS:
        obs = OBSERVERS[name](quant_bits=args.bits, profile=args.profile)
        try:
            for batch in batches:
                obs.observe(batch)
            qparams[name.removesuffix("Observer")] = obs.compute()
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        except (ArithmeticError, AssertionError, RuntimeError) as exc:
            # the paddleslim profile reproduces PaddleSlim's own failures: skip that observer
            print(f"refquant plot: {name} ({args.profile}) fails on this input as PaddleSlim "
                  f"does: {type(exc).__name__}: {exc}", file=sys.stderr)
    try:
        path = plot_thresholds(np.asarray(data), qparams, args.out,
                               title=f"{Path(args.file).name} ({args.profile}, {args.bits} bits)")
    except ImportError as exc:
        raise UsageError(f"plotting needs matplotlib (pip install 'refquant[plot]'): {exc}"
                         ) from exc
    print(f"wrote {path}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``refquant`` (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="refquant",
        description="Reference implementation of post-training quantization math.",
    )
    parser.add_argument("--version", action="version", version=f"refquant {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="run the main job on the embedded default and write a report",
        description="Run refquant's main job on its embedded default data and write "
        "report.json, report.md and plots to --out.",
    )
    demo.add_argument("--out", default="demo-out", help="output directory (default: demo-out)")
    demo.add_argument("--quick", action="store_true", help="smaller inputs, for smoke tests")
    demo.set_defaults(func=_cmd_demo)

    cal = sub.add_parser(
        "calibrate", help="compute QParams of a .npy array with one observer",
        description="Feed FILE.npy to an observer and print the QParams it decides.",
    )
    cal.add_argument("file", metavar="FILE.npy")
    cal.add_argument("--observer", default="AbsmaxObserver", help="observer class name")
    cal.add_argument("--bits", type=int, default=8, help="quantization bits (2..16)")
    cal.add_argument("--profile", default="canonical", choices=("canonical", "paddleslim"))
    cal.add_argument("--axis", type=int, default=None, help="channel axis (channel-wise only)")
    cal.add_argument("--batches", action="store_true",
                     help="treat the first axis of FILE as a sequence of batches")
    cal.add_argument("--json", action="store_true", help="print JSON")
    cal.set_defaults(func=_cmd_calibrate)

    plot = sub.add_parser(
        "plot", help="draw the histogram of a .npy array with every observer's threshold",
        description="Calibrate every activation observer on FILE.npy and draw |x| with each "
        "observer's clipping threshold (PNG, headless).",
    )
    plot.add_argument("file", metavar="FILE.npy")
    plot.add_argument("--out", default="hist.png", help="output PNG (default: hist.png)")
    plot.add_argument("--bits", type=int, default=8, help="quantization bits (2..16)")
    plot.add_argument("--profile", default="canonical", choices=("canonical", "paddleslim"))
    plot.add_argument("--batches", action="store_true",
                      help="treat the first axis of FILE as a sequence of batches")
    plot.set_defaults(func=_cmd_plot)

    try:
        from .conformance.cli import add_conformance_parser
    except ImportError:  # conformance suite not available in this build
        pass
    else:
        add_conformance_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``refquant`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"refquant {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
