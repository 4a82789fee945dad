"""The one place the command line runs the pipeline, and the one rule for its exit code.

:func:`run_pipeline` resolves a command's inputs, builds the pipeline's
:class:`~turnkey_like.pipeline.RunOptions`, renders progress and reports through the
:class:`~turnkey_like.report.listener.ConsoleListener`, runs the inputs with
:func:`~turnkey_like.corpus.run_corpus` (serially, or on Dask with ``--workers``/``--scheduler``)
and returns the summary with its exit code. ``tk benchmark``, ``tk profile``, ``tk explore``,
``tk view`` and ``tk compare --model`` all run through it.

Exit codes (docs/exit_codes.md): :data:`EXIT_OK` every input ran and every requested stage of
every selected invocation succeeded (skipped stages are not failures, nor are failures kept from an
earlier run); :data:`EXIT_FAILED` something this run did failed (a bad input, a script, a stage
ending ``error``/``timeout``/``killed``) while the others still ran, or a tk error before anything ran; :data:`EXIT_USAGE` the command line
itself is wrong; :data:`EXIT_INTERRUPTED` Ctrl-C; :data:`EXIT_TERMINATED` SIGTERM (handled as Ctrl-C is).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from turnkey_like.cli.outputs import print_error

if TYPE_CHECKING:
    from rich.console import Console

    from turnkey_like.cli.options import InputOptions, PipelineRun, TableOptions
    from turnkey_like.errors import TkError
    from turnkey_like.inputs import InputSpec
    from turnkey_like.pipeline import RunOptions, RunSummary

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: SIGTERM (128 + 15, as a shell reports a process killed by it): handled as Ctrl-C is
EXIT_TERMINATED = 143
#: the exit codes of a run stopped before it ended (Ctrl-C, SIGTERM)
STOPPED_CODES = frozenset({EXIT_INTERRUPTED, EXIT_TERMINATED})


@dataclass
class RunOutcome:
    """What :func:`run_pipeline` returns: the run's summary (input errors first in ``errors``),
    the inputs it ran, the cache folder, and the exit code (:func:`exit_code`)."""

    summary: RunSummary
    specs: list[InputSpec]
    cache_root: str
    exit_code: int


def exit_code(summary: RunSummary, specs: list[InputSpec]) -> int:
    """The exit code of a run (docs/exit_codes.md): :data:`EXIT_INTERRUPTED` after Ctrl-C
    (:data:`EXIT_TERMINATED` after SIGTERM), else
    :data:`EXIT_FAILED` when something this run did failed (:attr:`RunSummary.failed`: a bad input,
    a script, a stage it ran) or there was nothing to run, else :data:`EXIT_OK`."""
    if summary.interrupted:
        return EXIT_TERMINATED if summary.terminated else EXIT_INTERRUPTED
    return EXIT_FAILED if summary.failed or not specs else EXIT_OK


def resolve(inputs: InputOptions, console: Console) -> tuple[list[InputSpec], list[TkError]]:
    """The input specs of ``inputs`` (scripts, ``.onnx`` files and lists, then the ``--model``
    sweep points) and one error per bad entry, each printed on stderr in one line; inputs whose
    labels do not match ``--labels`` are dropped, with one dim line on ``console``."""
    from turnkey_like.errors import InputError
    from turnkey_like.inputs import labels_match, named_model_specs, resolve_inputs

    specs, errors = resolve_inputs(list(inputs.inputs))
    if inputs.label_filters:
        kept = [s for s in specs if not s.is_onnx and labels_match(s.labels, inputs.label_filters)]
        dropped = len(specs) - len(kept)
        if dropped:
            console.print(f"[dim]{dropped} input(s) skipped: labels do not match {' '.join(inputs.labels)}[/]")
        if specs and not kept:
            errors.append(InputError(f"no input matches --labels {' '.join(inputs.labels)}",
                                     hint="check the '# labels:' line 1 of your scripts (tk cache list shows labels)"))
        specs = kept
    specs += named_model_specs(list(inputs.named.requests))  # no labels pragma: --labels filters scripts only
    for error in errors:
        print_error(error)
    return specs, list(errors)


def run_options(run: PipelineRun) -> RunOptions:
    """The pipeline's typed :class:`~turnkey_like.pipeline.RunOptions` for ``run``."""
    from turnkey_like.pipeline import RunOptions

    stages, inputs = run.stages, run.inputs
    policies = {"build": stages.build, "benchmark": stages.benchmark}
    return RunOptions(
        analyze_only=stages.analyze_only, build_only=stages.build_only, max_depth=inputs.max_depth,
        script_args=inputs.script_args, cache_dir=run.cache_dir, hardware=run.analysis.profile,
        no_weights=run.analysis.no_weights, lean_cache=stages.lean_cache, input_shapes=dict(inputs.input_shapes),
        trace=stages.trace, timeout_s=inputs.timeout_s, memory_limit_bytes=run.memory_limit_bytes,
        **{name: value for name, value in policies.items() if value is not None})


def run_pipeline(run: PipelineRun, console: Console, *, progress_console: Console | None = None,
                 tables: TableOptions | None = None, quiet: bool | None = None) -> RunOutcome:
    """Run the pipeline on ``run``'s inputs; return the summary and the exit code.

    Args:
        console: where each input's report goes (stdout for ``tk benchmark``/``tk profile``;
            stderr where stdout holds a view).
        progress_console: where progress goes (default: stderr).
        tables: print ``tk profile``'s per-module tables (shapes, top ops) after each input.
        quiet: no progress (default: ``-q``).

    Bad inputs are printed on stderr, one line each, and the others still run; after Ctrl-C one
    line on stderr says the records so far are kept.

    Raises:
        TkError: the cache cannot be opened, or a Dask cluster cannot be started or reached.
    """
    from turnkey_like.corpus import run_corpus
    from turnkey_like.pipeline import Pipeline
    from turnkey_like.cli.whatif import WhatIfListener

    specs, input_errors = resolve(run.inputs, console)
    pipeline = Pipeline(run_options(run))
    cache_root = str(pipeline.cache.root)
    listener = WhatIfListener(console, whatif=run.whatif, hardware=run.analysis.hardware, cache_dir=run.cache_dir,
                              cache_root=cache_root, profile=tables is not None,
                               showshape=tables.showshape if tables else False, top=tables.top if tables else 10,
                               runtime=tables.runtime if tables else None, phase=tables.phase if tables else None,
                               fold=tables.fold if tables else True,
                               quiet=run.common.quiet if quiet is None else quiet,
                               show_traceback=run.common.traceback, progress_console=progress_console)
    pipeline.listener = listener
    with listener:
        summary = run_corpus(pipeline, specs, run.corpus)  # serial Pipeline.run unless --workers/--scheduler
    summary.errors[:0] = input_errors
    if summary.interrupted:
        print(f"{'terminated (SIGTERM)' if summary.terminated else 'interrupted'}: results measured so far are "
              "kept in the cache (press Ctrl-C again to exit at once)", file=sys.stderr)
    return RunOutcome(summary=summary, specs=specs, cache_root=cache_root, exit_code=exit_code(summary, specs))
