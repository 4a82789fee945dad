"""The one pipeline every command runs: inputs → discovery → characterize → build → benchmark → cache.

Each input is handled on its own: its script runs (discovery), its invocations are selected, then every
selected invocation goes through the :data:`STAGE_ORDER` stages in order, and its
:class:`~turnkey_like.records.BuildRecord` is saved to the cache before and after each stage, so a
crash or kill loses nothing already measured. One bad script, model or stage never stops the
others; failures are recorded and counted, and the command exits non-zero when there were any.

A stage is an object with three questions (:class:`Stage`): should it be skipped here and why, can
an earlier outcome be reused, and how to run it. The pipeline owns everything else: the record,
saving, timing, keeping earlier outcomes, and turning a crash into an ``error`` outcome.

The package, by concept (each module imports only those above it)::

    options    RunOptions: what the command line asked for
    failures   one-line errors of an input: unmatched ::HASH selectors, a script's failure, the run's
    stages     Stage and its three stages, InvocationContext, settle (what a stage's slot holds)
    channel    both ends of an input's channel: Events (where a running input's events go) and
               InputMirror (the parent's copy of what the child sends)
    runner     Pipeline: inputs, children, invocations, the cache
    survey     one zoo model through build, run, the tracing ladder and export, in its own child
               (``tk discover-models``)

Every name below is importable from ``turnkey_like.pipeline`` itself.
"""

from __future__ import annotations

from turnkey_like.events import Listener, RunSummary
from turnkey_like.pipeline.channel import SILENCE_GRACE_S, InputMirror
from turnkey_like.pipeline.failures import apply_selection, input_error, run_failure, script_failure
from turnkey_like.pipeline.options import RunOptions
from turnkey_like.pipeline.runner import Pipeline, preload_for_children
from turnkey_like.pipeline.stages import (
    CHARACTERIZE_LOG,
    KEPT_REASON,
    REUSED_REASON,
    BenchmarkStage,
    BuildStage,
    CharacterizeStage,
    InvocationContext,
    Stage,
    eval_mode,
    settle,
)

__all__ = [
    "Listener", "RunSummary", "RunOptions", "Pipeline", "preload_for_children", "InputMirror", "SILENCE_GRACE_S",
    "apply_selection", "input_error", "run_failure", "script_failure", "Stage", "CharacterizeStage", "BuildStage",
    "BenchmarkStage", "InvocationContext", "eval_mode", "settle", "KEPT_REASON", "REUSED_REASON",
    "CHARACTERIZE_LOG",
]
