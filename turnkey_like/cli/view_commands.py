"""``tk explore`` and ``tk view``, and ``tk profile --visualize``: views of the one pipeline's records.

``tk explore INPUT`` and ``tk view INPUT`` run the pipeline in analyze-only mode (discovery and
characterization; nothing is built or benchmarked) on the inputs, then render the characterization
of one invocation: the first one characterized, or the one ``INPUT::HASH`` selects; the others are
listed. Pipeline progress and the scripts' status go to stderr, the view to stdout (or ``--output``).
"""

from __future__ import annotations

import argparse
import sys

from turnkey_like.errors import InputError


def add_visualize_arguments(group) -> None:
    """``--visualize PATH`` and ``--collapse DEPTH`` (``tk profile``)."""
    group.add_argument("--visualize", metavar="PATH",
                       help="draw each characterized invocation's dataflow graph, coloured by bound: .svg, .png, "
                            ".pdf (need Graphviz's dot) or .dot; with several invocations each file gets "
                            "_<invocation hash> before the extension")
    group.add_argument("--collapse", type=int, metavar="DEPTH",
                       help="in --visualize pictures, draw each module at depth DEPTH (1 = the model's children) "
                            "as one node holding everything below it")
    group.add_argument("--no-fold", action="store_true",
                       help="in --visualize pictures, draw every block of a run of identical blocks instead of "
                            "the first one marked ×N")


def write_views(args, summary, console) -> None:
    """Write the ``--visualize`` pictures of every characterized invocation in ``summary`` (one line each).

    Raises:
        TkError: Graphviz's ``dot`` is missing (one line saying how to install it) or failed.
        InputError: an unknown picture extension or a negative ``--collapse``.
    """
    path = getattr(args, "visualize", None)
    if not path:
        return
    from turnkey_like.views import characterized, output_path_for
    from turnkey_like.views.graph import render_graph

    calls = characterized(summary.results)
    if not calls:
        console.print("[dim]--visualize: no invocation was characterized, so there is no graph to draw[/]")
    for call in calls:
        target = output_path_for(path, call.inv.hash, len(calls) > 1)
        render_graph(call.char, target, collapse=args.collapse, fold_repeats=not getattr(args, "no_fold", False),
                     title=call.label)
        console.print(f"[dim]graph of {call.label} written to {target}[/]")


def register(subparsers, parent: argparse.ArgumentParser) -> None:
    """Add the ``explore`` and ``view`` commands (``parent``: the options every command takes)."""
    explore = _analysis_command(
        subparsers, parent, "explore", "walk a model's dataflow graph in the terminal, one line per node",
        "print one invocation's dataflow graph in execution order: node number (from 1), op, module path, "
        "output shape, fusion group, MACs, FLOPs (1 MAC = 2 FLOPs), arithmetic intensity (FLOPs/byte) and "
        "bound. Without a range or filter: a summary. Give one range form at a time.")
    group = explore.add_argument_group("range (node numbers start at 1; one form at a time)")
    group.add_argument("--start", type=int, metavar="N", help="first node to show (1-based; default 1)")
    group.add_argument("--end", type=int, metavar="M", help="last node to show (1-based, inclusive; default the last)")
    group.add_argument("--around", type=int, metavar="N", help="show node N (1-based) and --context nodes on each side")
    group.add_argument("--context", type=int, metavar="K", help="nodes on each side of --around (default 5)")
    group.add_argument("--max-nodes", type=int, metavar="N", help="show the first N nodes (1-based count)")
    group.add_argument("--filter", metavar="TEXT",
                       help="keep nodes whose op or module path contains TEXT (case-insensitive; within the range)")
    group = explore.add_argument_group("output")
    group.add_argument("--output", metavar="FILE", help="write the text to FILE instead of stdout")
    explore.set_defaults(func=run_explore, parser=explore)

    view = _analysis_command(
        subparsers, parent, "view", "browse a model's dataflow graph in Model Explorer on localhost",
        "serve one invocation's dataflow graph in Google's Model Explorer on localhost (offline), nested by "
        "module, with MACs, bytes, arithmetic intensity and bound as node-data overlays. Ctrl-C stops the server.")
    group = view.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    group.add_argument("--port", type=int, metavar="N", help="port (default: a free one)")
    group.add_argument("--no-browser", action="store_true", help="do not open a browser tab; just print the address")
    view.set_defaults(func=run_view, parser=view)


def _analysis_command(subparsers, parent, name: str, help_text: str, what: str) -> argparse.ArgumentParser:
    """A command that runs the pipeline analyze-only on inputs: its parser with the input,
    characterization and cache options; ``what`` completes its description."""
    from turnkey_like.cli.benchmark_commands import _add_analysis_arguments, _add_input_arguments

    parser = subparsers.add_parser(name, parents=[parent], help=help_text,
                                   description=f"Run scripts (discovery and characterization only), then {what}")
    _add_input_arguments(parser)
    group = parser.add_argument_group("characterization")
    _add_analysis_arguments(group)
    group.add_argument("--cache-dir", metavar="DIR", help="cache root (default: $TK_CACHE_DIR or ~/.cache/turnkey_like)")
    return parser


def _node_range(args):
    from turnkey_like.views.explore import NodeRange

    return NodeRange(start=args.start, end=args.end, around=args.around, context=args.context,
                     max_nodes=args.max_nodes, text=args.filter)


def _characterize(args):
    """Run the pipeline analyze-only on the inputs; return (calls, exit code). Status goes to stderr."""
    from rich.console import Console

    from turnkey_like.cli.benchmark_commands import _check_args, _options, _resolve
    from turnkey_like.pipeline import Pipeline
    from turnkey_like.report.listener import ConsoleListener
    from turnkey_like.views import characterized

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    _check_args(args)
    specs, input_errors = _resolve(args, err)
    pipeline = Pipeline(_options(args, analyze_only=True))
    listener = ConsoleListener(err, cache_root=str(pipeline.cache.root), quiet=args.quiet,
                               show_traceback=args.traceback, progress_console=err)
    pipeline.listener = listener
    with listener:
        summary = pipeline.run(specs)
    code = 130 if summary.interrupted else (1 if summary.failed or input_errors or not specs else 0)
    calls = characterized(summary.results)
    if not calls and not summary.interrupted:
        print("error: no invocation was characterized, so there is no graph to show", file=sys.stderr)
        code = code or 1
    return calls, code


def _pick(calls):
    """The first call, and the lines listing the others (with how to pick one)."""
    if len(calls) < 2:
        return calls[0], []
    lines = [f"{len(calls) - 1} other invocation(s) characterized; pick one with INPUT::HASH:"]
    lines += [f"  {c.label}" for c in calls[1:]]
    return calls[0], lines


def run_explore(args) -> int:
    """``tk explore``: the graph as text (a range of nodes, or the summary)."""
    from pathlib import Path

    from turnkey_like.files import write_atomic
    from turnkey_like.views.explore import explore_text

    rng = _node_range(args)
    try:
        rng.check()
    except InputError as e:
        args.parser.error(e.message)  # exit 2: the command line itself is wrong
    calls, code = _characterize(args)
    if not calls:
        return code
    call, others = _pick(calls)
    text = explore_text(call.char, rng, label=call.label)
    if others:
        text += "\n" + "\n".join(others) + "\n"
    if args.output:
        target = Path(args.output)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, text.encode(), fsync=False)
        except OSError as e:
            raise InputError(f"--output {args.output}: cannot write ({e.strerror})") from e
        print(f"written to {target}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return code


def run_view(args) -> int:
    """``tk view``: serve the graph in Model Explorer until Ctrl-C."""
    import tempfile

    from turnkey_like.views import model_explorer

    model_explorer.require()  # a missing package is an error before any model runs
    calls, code = _characterize(args)
    if not calls:
        return code
    call, others = _pick(calls)
    for line in others:
        print(line, file=sys.stderr)
    print(f"showing {call.label}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tk-view-") as folder:
        model_explorer.serve(call.char, folder, name=f"{call.model.name}_{call.inv.hash}", host=args.host,
                             port=args.port, open_browser=not args.no_browser,
                             announce=lambda line: print(line, flush=True))
    return code
