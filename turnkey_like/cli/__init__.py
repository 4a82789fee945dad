"""The ``tk`` command line: one dispatcher, one module per group of commands.

Imports go down, and a command module never imports another:

- ``*_commands.py``: each registers its commands' parsers; a handler turns ``args`` into its typed
  option record first (``options.parse_<command>``), and nothing below the handler sees ``args``;
- ``run.py``: the one place a pipeline runs, and the one exit-code rule;
- ``outputs.py``: ``--json``, ``--visualize``, ``--roofline``, ``--html``, and the terminal's consoles;
- ``options.py``: the typed option records, every value and output path checked before anything runs;
- ``arguments.py``: the argparse groups several commands share.

``tk INPUTS...`` is shorthand for ``tk benchmark INPUTS...``. Every :class:`~turnkey_like.errors.TkError`
becomes ``error: <message>`` (and ``hint: <hint>``) on stderr with exit code 1; ``--traceback`` shows
the full trace. ``--traceback``, ``-q/--quiet`` and ``-v/--verbose`` are accepted before or after the
command. Exit codes (``docs/exit_codes.md``): 0 all went well, 1 something failed (the others still
ran), 2 the command line itself is wrong (an option typo gets the closest option), 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM, handled as Ctrl-C is).
No other module imports the CLI.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import logging
import os
import sys

from turnkey_like import __version__
from turnkey_like.cli.arguments import common_options, unrecognized_message
from turnkey_like.cli.options import UsageError
from turnkey_like.cli.outputs import print_error, stderr_console
from turnkey_like.cli.run import (  # noqa: F401 - re-exported
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
)
from turnkey_like.errors import TkError
from turnkey_like.events import Terminated

COMMANDS = ("benchmark", "profile", "cache", "report", "discover-models", "explore", "view", "compare", "hardware",
            "version")


def _looks_like_input(token: str) -> bool:
    """True when a first argument that is not a command is meant as an input (path, glob, ::hash)."""
    if "::" in token or os.path.exists(token) or glob.glob(token):
        return True
    return token.lower().endswith((".py", ".onnx", ".txt")) or os.sep in token


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and docs)."""
    from turnkey_like.cli import (benchmark_commands, cache_commands, compare_commands, hardware_commands,
                                  model_commands, view_commands)

    parser = argparse.ArgumentParser(
        prog="tk",
        parents=[common_options(suppress=False)],
        description=(
            "Discover the PyTorch models a script runs, characterize them (MACs, FLOPs, memory traffic, "
            "roofline), build them to ONNX and benchmark them. `tk INPUTS...` means `tk benchmark INPUTS...`."
        ),
        epilog="Exit codes: 0 success, 1 something failed (other inputs still ran), 2 bad command line, "
               "130 interrupted (Ctrl-C), 143 terminated (SIGTERM). See docs/exit_codes.md.",
    )
    parser.add_argument("--version", action="version", version=f"tk {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parent = common_options(suppress=True)
    benchmark_commands.register(subparsers, parent)
    cache_commands.register(subparsers, parent)
    model_commands.register(subparsers, parent)
    view_commands.register(subparsers, parent)
    compare_commands.register(subparsers, parent)
    hardware_commands.register(subparsers, parent)
    version = subparsers.add_parser("version", parents=[parent], help="print the versions of tk and its runtimes")
    version.set_defaults(func=_version, parser=version)
    return parser


def configure_logging(verbose: int) -> None:
    """Send tk's log records to stderr: warnings always, info with ``-v``, debug with ``-vv``.

    Without ``-v`` nothing is configured: Python's last-resort handler already prints warnings to
    stderr, and every command starts faster without importing rich's logging handler.
    """
    if not verbose:
        return
    from rich.logging import RichHandler

    level = logging.INFO if verbose == 1 else logging.DEBUG
    logger = logging.getLogger("turnkey_like")
    logger.handlers[:] = []
    handler = RichHandler(console=stderr_console(), show_path=verbose > 1, markup=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _version(args: argparse.Namespace) -> int:
    from turnkey_like.system import package_version
    from turnkey_like.zoo import source_packages

    print(f"tk {__version__}")
    for name in ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", *source_packages()):
        version = package_version(name)
        if version:
            print(f"  {name} {version}")
    return 0


def _normalise_argv(argv: list[str]) -> list[str]:
    """Insert ``benchmark`` for the ``tk INPUTS...`` and ``tk --model NAME`` shorthands; raise a
    did-you-mean for typos."""
    first = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    named = any(a.startswith("--model=") for a in argv[:first]) or (first and argv[first - 1] == "--model")
    if named:  # `tk --model resnet50` is `tk benchmark --model resnet50`
        return ["benchmark", *argv]
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


def _terminate(signum, frame) -> None:
    """SIGTERM handler: stop as Ctrl-C does (:class:`~turnkey_like.events.Terminated`)."""
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run ``tk`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    SIGTERM is handled as Ctrl-C is (the run stops, what was measured is kept, ``--json`` and the
    summary are written), with exit code 143; the previous handler is back when this returns.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in argv
    try:
        parser = build_parser()
        if not argv:
            parser.print_help()
            return EXIT_USAGE
        args, extras = parser.parse_known_args(_normalise_argv(argv))
        command = args.parser if "parser" in args else parser  # the command's own parser, for its usage
        if extras:
            parser.error(unrecognized_message(extras, command))  # exit 2, as parse_args would
        if "func" not in args:
            parser.print_help()
            return EXIT_USAGE
        configure_logging(args.verbose)
        try:
            return int(args.func(args) or 0)
        except UsageError as e:  # the command line contradicts itself: the command's usage, exit 2
            command.error(e.message + (f"\nhint: {e.hint}" if e.hint else ""))
    except TkError as e:
        if show_traceback:
            import traceback

            traceback.print_exc()
        print_error(e)
        return EXIT_FAILED
    except KeyboardInterrupt as stop:  # a second Ctrl-C (or SIGTERM), or one before any input ran
        terminated = isinstance(stop, Terminated)
        print(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: records written so far are kept in "
              "the cache", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def entry_point() -> None:
    """Console-script entry point (``tk``).

    The objects of torch and its kind (about 300k) are moved out of the collector's view before the
    interpreter exits: its final collection over them otherwise adds about half a second to every
    command that imported torch (measured by ``benchmarks/discovery_overhead.py``).
    """
    import faulthandler

    if not faulthandler.is_enabled():  # a crash of tk itself prints where it was (the Python stacks)
        faulthandler.enable()
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `tk ... | head`: the reader left; say nothing more (Python's docs recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_FAILED
    import gc

    gc.freeze()
    sys.exit(code)
