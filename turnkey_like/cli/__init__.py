"""The ``tk`` command line: one dispatcher, one module per group of commands.

``tk INPUTS...`` is shorthand for ``tk benchmark INPUTS...``. Every :class:`~turnkey_like.errors.TkError`
becomes ``error: <message>`` (and ``hint: <hint>``) on stderr with exit code 1; ``--traceback`` shows
the full trace. No other module imports the CLI.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import os
import sys

from turnkey_like import __version__
from turnkey_like.errors import TkError

COMMANDS = ("benchmark", "profile", "cache", "report", "version")


def _looks_like_input(token: str) -> bool:
    """True when a first argument that is not a command is meant as an input (path, glob, ::hash)."""
    if "::" in token or os.path.exists(token) or glob.glob(token):
        return True
    return token.lower().endswith((".py", ".onnx", ".txt")) or os.sep in token


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and docs)."""
    from turnkey_like.cli import benchmark_commands, cache_commands

    parser = argparse.ArgumentParser(
        prog="tk",
        description=(
            "Discover the PyTorch models a script runs, characterize them (MACs, FLOPs, memory traffic, "
            "roofline), build them to ONNX and benchmark them. `tk INPUTS...` means `tk benchmark INPUTS...`."
        ),
    )
    parser.add_argument("--traceback", action="store_true", help="show the full Python traceback on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    benchmark_commands.register(subparsers)
    cache_commands.register(subparsers)
    version = subparsers.add_parser("version", help="print the versions of tk and its runtimes")
    version.set_defaults(func=_version)
    return parser


def _version(args) -> int:
    from turnkey_like.system import package_version

    print(f"tk {__version__}")
    for name in ("torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu", "transformers", "ultralytics"):
        version = package_version(name)
        if version:
            print(f"  {name} {version}")
    return 0


def _normalise_argv(argv: list[str]) -> list[str]:
    """Insert ``benchmark`` for the ``tk INPUTS...`` shorthand; raise a did-you-mean for typos."""
    first = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if first is None:
        return argv
    token = argv[first]
    if token in COMMANDS:
        return argv
    if _looks_like_input(token):
        return argv[:first] + ["benchmark"] + argv[first:]
    close = difflib.get_close_matches(token, COMMANDS, n=1, cutoff=0.6)
    hint = f"did you mean 'tk {close[0]}'?" if close else f"commands are: {', '.join(COMMANDS)}; inputs are .py, .onnx or .txt files"
    raise TkError(f"unknown command or input '{token}'", hint=hint)


def main(argv: list[str] | None = None) -> int:
    """Run ``tk`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in argv
    try:
        parser = build_parser()
        if not argv:
            parser.print_help()
            return 2
        args = parser.parse_args(_normalise_argv(argv))
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except TkError as e:
        if show_traceback:
            import traceback

            traceback.print_exc()
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: records written so far are kept in the cache", file=sys.stderr)
        return 130


def entry_point() -> None:
    """Console-script entry point (``tk``)."""
    sys.exit(main())
