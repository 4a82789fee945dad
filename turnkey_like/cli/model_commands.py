"""`tk discover-models`: a model zoo through the tracing ladder, one child process per model.

``register(subparsers, parent)`` adds the parser; the handler returns the exit code. The survey itself
lives in :mod:`turnkey_like.corpus.survey`; this module parses options and hands its records to the
renderers of :mod:`turnkey_like.report.survey`. Nothing here imports torch; a run served from the
cache imports no model library at all.

Exit codes: 0 when the survey ran (models that fail to build, run or trace are results, listed, not
failures of the command); 1 with ``--test-model`` when that model did not build and run, or on a
usage problem (unknown source, ``--family`` matching nothing).
"""

from __future__ import annotations

import argparse
import sys

from turnkey_like.cli import options
from turnkey_like.cli.arguments import CACHE_DIR_HELP
from turnkey_like.cli.outputs import table_console


def register(subparsers, parent: argparse.ArgumentParser) -> None:
    """Add the ``discover-models`` command (``parent``: the options every command takes; its
    ``-v/--verbose`` lists every failed rung of every model)."""
    from turnkey_like.records import DEFAULT_TIMEOUT_S
    from turnkey_like.zoo import source_names

    p = subparsers.add_parser(
        "discover-models", parents=[parent],
        help="take every model of a zoo through the tracing ladder (FX, export non-strict, export strict)",
        description="Build each model of a source without weights (on meta where large), run it once, walk the "
                    "tracing ladder (fx.symbolic_trace, torch.export non-strict, then strict) and record the "
                    "method that worked, why each other failed, parameters, MACs (1 MAC = 2 FLOPs) and time; "
                    "with --export also whether it exports to ONNX. Each model runs in its own child process "
                    "with a time limit. Results are cached per library versions: a second run is instant. "
                    "-v also lists every failed rung of every model.")
    group = p.add_argument_group("models")
    group.add_argument("--source", choices=source_names(), default="torchvision",
                       help="the zoo to survey (default torchvision); factory needs --models pkg.mod:factory")
    group.add_argument("--family", metavar="SUBSTRING",
                       help="only models whose name or family contains SUBSTRING (case-insensitive)")
    group.add_argument("--skip-patterns", nargs="+", default=[], metavar="SUBSTRING",
                       help="skip models whose name contains one of these (listed as skipped; default none)")
    group.add_argument("--models", nargs="+", default=None, metavar="NAME",
                       help="survey these names instead of the source's list (hub names, .yaml files, "
                            "pkg.mod:factory with --source factory)")
    group.add_argument("--test-model", metavar="NAME",
                       help="survey this one model afresh, trying every rung, and print each rung's outcome")
    group = p.add_argument_group("survey")
    group.add_argument("--export", action="store_true", help="also export each model to ONNX (and check it on ORT)")
    group.add_argument("--workers", type=int, default=1, metavar="N",
                       help="models surveyed at once on a Dask LocalCluster of N workers, each model in its "
                            "own child process (default 1: one at a time, no Dask)")
    group.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                       help=f"time limit for each model's child process (default {DEFAULT_TIMEOUT_S:g})")
    group.add_argument("--refresh", action="store_true", help="survey again instead of reading cached results")
    group.add_argument("--full-depth", action="store_true",
                       help="trace models built on meta at their full depth (default: a shallow copy keeping "
                            "every distinct kind of layer, e.g. Llama 2 of 32 layers; MACs are always the "
                            "full model's)")
    group = p.add_argument_group("results")
    group.add_argument("--generate-code", action="store_true",
                       help="print a Python MODEL_REGISTRY = {...} of the models that traced, grouped by family")
    group.add_argument("--json", metavar="FILE", help="also write every result as JSON (a SurveyReport)")
    group.add_argument("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)
    p.set_defaults(func=discover_models, parser=p)


def _progress(quiet: bool):
    """A callback printing one line per finished model on stderr (nothing with ``-q``)."""
    if quiet:
        return None
    from turnkey_like.report.survey import progress_line

    def line(survey, done: int, total: int) -> None:
        print(progress_line(survey, done, total), file=sys.stderr, flush=True)

    return line


def discover_models(args: argparse.Namespace) -> int:
    """Handler of ``tk discover-models``."""
    from turnkey_like.corpus import survey as dm
    from turnkey_like.files import write_record
    from turnkey_like.report.survey import render_ladder, render_report
    from turnkey_like.zoo.survey import generate_code

    command = options.parse_discover_models(args)
    if command.test_model:
        survey = dm.try_model(command.test_model, command.source, export=command.export, timeout_s=command.timeout_s,
                              full_depth=command.full_depth, cache_dir=command.cache_dir)
        render_ladder(survey, table_console())
        if command.json:
            write_record(command.json, survey, fsync=False)
        return 0 if survey.status.value == "successful" else 1
    report = dm.discover(command.source, family=command.family, skip_patterns=list(command.skip_patterns),
                         export=command.export, workers=command.workers, timeout_s=command.timeout_s,
                         refresh=command.refresh, full_depth=command.full_depth, cache_dir=command.cache_dir,
                         models=list(command.models) if command.models is not None else None,
                         on_result=_progress(command.common.quiet))
    if command.json:
        write_record(command.json, report, fsync=False)
    if command.generate_code:
        sys.stdout.write(generate_code(report))
        return 0
    render_report(report, table_console(), verbose=command.common.verbose > 0)
    return 0
