"""``tk explore`` and ``tk view``: views of the one pipeline's records.

``tk explore INPUT`` and ``tk view INPUT`` run the pipeline in analyze-only mode (discovery and
characterization; nothing is built or benchmarked) on the inputs, then render the characterization
of one invocation: the first one characterized, or the one ``INPUT::HASH`` selects; the others are
listed. Pipeline progress and the scripts' status go to stderr, the view to stdout (or ``--output``).
"""

from __future__ import annotations

import argparse
import sys

from turnkey_like.cli import options, outputs
from turnkey_like.cli.arguments import (CACHE_DIR_HELP, add_analysis_arguments, add_input_arguments,
                                        add_measured_run_argument)
from turnkey_like.cli.run import EXIT_FAILED, STOPPED_CODES, run_pipeline


def register(subparsers, parent: argparse.ArgumentParser) -> None:
    """Add the ``explore`` and ``view`` commands (``parent``: the options every command takes)."""
    explore = _analysis_command(
        subparsers, parent, "explore", "walk a model's dataflow graph in the terminal, one line per node",
        "print one invocation's dataflow graph in execution order: node number (from 0, as tk profile and the "
        "HTML page number it), op, module path, output shape, fusion group, MACs, FLOPs (1 MAC = 2 FLOPs), "
        "bytes, arithmetic intensity (FLOPs/byte), bound, roofline time and the nodes it reads; after "
        "`tk benchmark --per-layer`, each node's measured time and share. Without a range or filter: a summary. "
        "Give one range form at a time.")
    group = explore.add_argument_group("range (node numbers start at 0; one form at a time)")
    group.add_argument("--start", type=int, metavar="N", help="first node to show (default 0)")
    group.add_argument("--end", type=int, metavar="M", help="last node to show (inclusive; default the last)")
    group.add_argument("--around", type=int, metavar="N", help="show node N and --context nodes on each side")
    group.add_argument("--context", type=int, metavar="K", help="nodes on each side of --around (default 5)")
    group.add_argument("--max-nodes", type=int, metavar="N", help="show the first N nodes")
    group.add_argument("--filter", metavar="TEXT",
                       help="keep nodes whose op or module path contains TEXT (case-insensitive; within the range)")
    group = explore.add_argument_group("output")
    group.add_argument("--groups", action="store_true",
                       help="list the fusion groups of several ops instead of nodes: their nodes and ops, MACs, "
                            "bytes, internal and external bytes, the fused group's arithmetic intensity and bound, "
                            "and why each group ended (with a range or --filter: the groups holding those nodes)")
    group.add_argument("--output", metavar="FILE", help="write the text to FILE instead of stdout")
    add_measured_run_argument(group)
    explore.set_defaults(func=run_explore, parser=explore)

    view = _analysis_command(
        subparsers, parent, "view", "browse a model's dataflow graph in Model Explorer on localhost",
        "serve one invocation's dataflow graph in Google's Model Explorer on localhost (offline), nested by "
        "module, with MACs, bytes, arithmetic intensity, bound, roofline time and (after `tk benchmark "
        "--per-layer`) measured time as node-data overlays. Ctrl-C stops the server.")
    group = view.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    group.add_argument("--port", type=int, metavar="N", help="port (default: a free one)")
    group.add_argument("--no-browser", action="store_true", help="do not open a browser tab; just print the address")
    add_measured_run_argument(group)
    view.set_defaults(func=run_view, parser=view)


def _analysis_command(subparsers, parent, name: str, help_text: str, what: str) -> argparse.ArgumentParser:
    """A command that runs the pipeline analyze-only on inputs: its parser with the input,
    characterization and cache options; ``what`` completes its description."""
    parser = subparsers.add_parser(name, parents=[parent], help=help_text,
                                   description=f"Run scripts (discovery and characterization only), then {what}")
    add_input_arguments(parser)
    group = parser.add_argument_group("characterization")
    add_analysis_arguments(group)
    group.add_argument("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)
    return parser


def _characterize(run: options.PipelineRun):
    """Run the pipeline analyze-only on the inputs, status and progress on stderr; return the
    characterized calls and the exit code (:func:`turnkey_like.cli.run.exit_code`; 1 too when
    nothing was characterized, so there is nothing to show)."""
    from turnkey_like.views import characterized

    err = outputs.stderr_console()
    outcome = run_pipeline(run, err, progress_console=err)
    calls = characterized(outcome.summary.results)
    code = outcome.exit_code
    if not calls and code not in STOPPED_CODES:
        print("error: no invocation was characterized, so there is no graph to show", file=sys.stderr)
        code = code or EXIT_FAILED
    return calls, code


def _pick(calls):
    """The first call, and the lines listing the others (with how to pick one)."""
    if len(calls) < 2:
        return calls[0], []
    lines = [f"{len(calls) - 1} other invocation(s) characterized; pick one with INPUT::HASH:"]
    lines += [f"  {c.label}" for c in calls[1:]]
    return calls[0], lines


def _say_unmeasured(call, runtime: str | None, measured) -> None:
    """One line on stderr when ``--runtime`` asks for measured figures of an invocation with no
    per-layer run at all (``measured`` is ``None``), instead of showing the roofline alone silently."""
    if runtime is not None and measured is None:
        print(f"--runtime {runtime}: {call.label} has no per-layer run, so no measured figures are shown "
              "(`tk benchmark --per-layer` measures one)", file=sys.stderr)


def run_explore(args: argparse.Namespace) -> int:
    """``tk explore``: the graph as text (a range of nodes, or the summary)."""
    from turnkey_like.files import write_atomic
    from turnkey_like.report.explore import explore_text
    from turnkey_like.report.measured import measured_run

    command = options.parse_explore(args)
    calls, code = _characterize(command.run)
    if not calls:
        return code
    call, others = _pick(calls)
    measured = measured_run(call.inv, command.runtime)
    _say_unmeasured(call, command.runtime, measured)
    text = explore_text(call.char, command.nodes, label=call.label, measured=measured, groups=command.groups)
    if others:
        text += "\n" + "\n".join(others) + "\n"
    if command.output:
        target = outputs.write_file("--output", command.output, lambda path: write_atomic(path, text.encode(), fsync=False))
        print(f"written to {target}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return code


def run_view(args: argparse.Namespace) -> int:
    """``tk view``: serve the graph in Model Explorer until Ctrl-C (nothing is served when the
    run was interrupted)."""
    import tempfile

    from turnkey_like.report.measured import measured_run
    from turnkey_like.views import model_explorer

    command = options.parse_view(args)
    model_explorer.require()  # a missing package is an error before any model runs
    calls, code = _characterize(command.run)
    if not calls or code in STOPPED_CODES:
        return code
    call, others = _pick(calls)
    for line in others:
        print(line, file=sys.stderr)
    print(f"showing {call.label}", file=sys.stderr)
    measured = measured_run(call.inv, command.runtime)
    _say_unmeasured(call, command.runtime, measured)
    if measured is not None:
        print(f"measured: {measured.note()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tk-view-") as folder:
        model_explorer.serve(call.char, folder, name=f"{call.model.name}_{call.inv.hash}", host=command.host,
                             per_layer=measured.per_layer if measured is not None else None,
                             port=command.port, open_browser=command.open_browser,
                             announce=lambda line: print(line, flush=True))
    return code
