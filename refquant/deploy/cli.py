"""``refquant deploy check MODEL.onnx INPUT.npy --isa avx2 [--json]`` and
``refquant deploy plan MODEL.onnx [--isa ...] [--json]``.

``refquant/cli.py`` calls :func:`add_deploy_parser` on its subparsers. ``check`` runs the
model with :mod:`refquant.deploy.onnxruntime` on the instruction-set variant and prints, per
fused integer GEMM node, how many int16 pairs saturate, how many outputs that changes
against the exact variant and the remedies. Exit status: 0 when no pair saturates, 1 when
some do, 2 on bad input (one line on stderr, no traceback). ``plan`` prints which node
became which kernel (exit 0, or 2 on bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_deploy_parser"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _err(msg: str) -> int:
    print(f"refquant deploy: error: {' '.join(msg.splitlines())}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_check(args: argparse.Namespace) -> int:
    import numpy as np

    from .onnxruntime import check

    model, data = Path(args.model), Path(args.input)
    if not data.is_file():
        return _err(f"INPUT {str(data)!r} is not a file")
    try:
        x = np.load(data, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return _err(f"INPUT {str(data)!r} is not a readable .npy file: {exc}")
    sess = _session(args)
    if isinstance(sess, str):
        return _err(sess)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        return _err(f"MODEL has {len(inputs)} inputs ({[i.name for i in inputs]}); "
                    "check takes models with one input")
    if x.dtype != inputs[0].type:
        return _err(f"INPUT has dtype {x.dtype}, the model's input {inputs[0].name!r} "
                    f"expects {inputs[0].type}")
    try:
        report = check(sess, {inputs[0].name: x})
    except (TypeError, ValueError) as exc:
        return _err(str(exc))
    if args.json:
        out: Any = report.to_dict()
        out["model"] = str(model)
        print(json.dumps(out, indent=1))
    else:
        print(report)
    return EXIT_FAIL if report.saturating else EXIT_OK


def _session(args: argparse.Namespace) -> Any:
    """The session for ``args.model`` or an error message (str)."""
    from ..kernels.onnxruntime import ISAS
    from .onnxruntime import InferenceSession

    if args.isa not in ISAS + ("host",):
        return f"--isa must be one of {', '.join(ISAS + ('host',))}, got {args.isa!r}"
    if not Path(args.model).is_file():
        return f"MODEL {args.model!r} is not a file"
    try:
        return InferenceSession(str(args.model), isa=args.isa,
                                x64quantprecision=args.x64quantprecision)
    except ImportError as exc:
        return f"reading ONNX models needs the 'onnx' package ({exc})"
    except Exception as exc:  # a malformed model: onnx raises its own error types
        return f"MODEL {args.model!r}: {exc}"


def _cmd_plan(args: argparse.Namespace) -> int:
    sess = _session(args)
    if isinstance(sess, str):
        return _err(sess)
    plan = sess.plan()
    if args.json:
        print(json.dumps(plan.to_dict(), indent=1))
    else:
        print(plan)
    return EXIT_OK


def add_deploy_parser(subparsers: Any) -> None:
    """Register ``deploy`` and its subcommands on an argparse subparsers object."""
    p = subparsers.add_parser(
        "deploy", help="emulate a deployed int8 model (ONNX Runtime's CPU kernels)",
        description="Emulate how ONNX Runtime's CPU session runs a QDQ model.")
    sub = p.add_subparsers(dest="deploy_command", metavar="COMMAND")
    sub.required = True
    c = sub.add_parser(
        "check", help="int16 pair saturation per fused node on an instruction-set variant",
        description="Run MODEL on INPUT with the kernels of --isa and report, per fused "
                    "integer GEMM node, the saturated int16 pairs, the outputs they change "
                    "against the exact variant, and the remedies. Exit 0 when nothing "
                    "saturates, 1 when something does, 2 for bad input.")
    c.add_argument("model", metavar="MODEL.onnx")
    c.add_argument("input", metavar="INPUT.npy", help="the model's (only) input")
    c.add_argument("--isa", default="avx2",
                   help="avx2 (default), avx2-vnni, avx512, avx512-vnni, amx, neon or host")
    c.add_argument("--x64quantprecision", action="store_true",
                   help="emulate session.x64quantprecision=1")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=_cmd_check)
    pl = sub.add_parser(
        "plan", help="which node of a QDQ model becomes which integer kernel",
        description="Rewrite MODEL as ONNX Runtime's CPU session does and list every node "
                    "with its kind and the rewrite that made it. Exit 0, or 2 for bad input.")
    pl.add_argument("model", metavar="MODEL.onnx")
    pl.add_argument("--isa", default="host",
                    help="avx2, avx2-vnni, avx512, avx512-vnni, amx, neon or host (default)")
    pl.add_argument("--x64quantprecision", action="store_true",
                    help="emulate session.x64quantprecision=1")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=_cmd_plan)
