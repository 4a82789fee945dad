"""The stages of the pipeline, one object each (:class:`Stage`: skip, reuse, run), the one rule
for what a stage's slot holds after an attempt (:func:`settle`), and the one for an invocation the
selection left out (:func:`skip_unselected`).

A stage answers three questions about one invocation (:class:`InvocationContext`): should it be
skipped here and why, can an earlier outcome be reused, and how to run it. The pipeline
(``turnkey_like.pipeline.runner``) does the rest for all of them alike.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import msgspec

from turnkey_like import __version__
from turnkey_like.events import Listener
from turnkey_like.pipeline.options import RunOptions
from turnkey_like.records import BuildRecord, Invocation, ModelInfo, ScriptResult, StageResult, Status

if TYPE_CHECKING:
    from turnkey_like.discovery import LiveInvocation
    from turnkey_like.records import HardwareProfile

class PipelineRun(Protocol):
    """What the stages, and the parent's mirror of an input's child, use of the run they belong to
    (``turnkey_like.pipeline.runner.Pipeline`` is one).

    Attributes:
        options: the run's options.
        run_id: stamped on every outcome the run produces.
        listener: receives the run's events.
        current: the record of the input being run (what Ctrl-C reports as far as it got).
        profile: the hardware profile for the roofline, resolved once per run.
    """

    options: RunOptions
    run_id: str
    listener: Listener
    current: ScriptResult | None

    @property
    def profile(self) -> HardwareProfile: ...

    def save(self, record: BuildRecord) -> None:
        """Write ``record`` to the run's cache (the only writer of records)."""


KEPT_REASON = "kept from an earlier run"
CHARACTERIZE_LOG = "characterize.log"
REUSED_REASON = "reused from cache"


@dataclass
class InvocationContext:
    """Everything a stage needs about one invocation.

    Attributes:
        result, model, inv: the input's record, the model and the invocation being run.
        live: the model object and its first call's inputs (``None`` for ``.onnx`` inputs).
        build_dir: the invocation's cache folder.
        previous: the record an earlier run saved for this build folder, if any (and readable).
        onnx_path: the ``.onnx`` file for ONNX inputs, else ``None``.
    """

    result: ScriptResult
    model: ModelInfo
    inv: Invocation
    live: LiveInvocation | None
    build_dir: Path
    previous: BuildRecord | None
    onnx_path: Path | None = None

    @cached_property
    def call(self) -> tuple:
        """``(model, args, kwargs)`` of the first call, inference-mode tensors cloned into normal ones."""
        if self.live is None:
            return None, (), {}
        from turnkey_like.calls import map_tensors

        def normal(t):
            return t.clone() if t.is_inference() else t

        return self.live.model, map_tensors(normal, self.live.args), map_tensors(normal, self.live.kwargs)


class Stage:
    """One step of the pipeline for one invocation.

    Subclasses set :attr:`name` (one of ``records.STAGES``) and implement :meth:`run`; they may
    override :meth:`skip_reason` and :meth:`reuse`.
    """

    name: str = ""

    def __init__(self, pipeline: PipelineRun):
        self.pipeline = pipeline
        self.options = pipeline.options

    def skip_reason(self, ctx: InvocationContext) -> str | None:
        """Why this stage does not run for ``ctx`` (``None``: it runs)."""
        return None

    def reuse(self, ctx: InvocationContext) -> StageResult | None:
        """An earlier outcome that still applies (``None``: run the stage)."""
        return None

    def run(self, ctx: InvocationContext) -> StageResult:
        """Do the work; return the stage's outcome. Exceptions (tk's own included) become an
        ``error`` outcome of this stage; the run goes on."""
        raise NotImplementedError


class CharacterizeStage(Stage):
    """Count MACs/FLOPs and memory traffic per op, roll up per module, place on the roofline."""

    name = "characterization"

    def skip_reason(self, ctx: InvocationContext) -> str | None:
        if ctx.onnx_path is not None:
            return "ONNX input: characterization needs the PyTorch model"
        if not self.options.characterize:
            return "not requested"
        return None

    def reuse(self, ctx: InvocationContext) -> StageResult | None:
        """The cached characterization when it still applies (same tk, hardware, weights mode and
        model dtype).

        Counts depend on the architecture and input signature (both in the invocation hash) and on
        the dtype of the weights, which the hash leaves out (TurnkeyML's hashes: ``--dtype bf16``
        and ``model.half()`` name the same build as float32), so a successful earlier result is
        reused when its dtype is the live model's, unless ``--rebuild always`` asks for fresh work.
        """
        previous = ctx.previous
        if previous is None or previous.tk_version != __version__ or self.options.build.rebuild == "always":
            return None
        old = previous.invocation.characterization
        if old.status != Status.SUCCESSFUL or old.result is None:
            return None
        if old.result.hardware.name != self.pipeline.profile.name or old.result.no_weights != self.options.no_weights:
            return None
        if self.options.trace and old.result.trace.method == "not traced":  # --trace asks for what it lacks
            return None
        if ctx.live is not None:
            from turnkey_like.characterize.assemble import main_dtype

            if old.result.dtype != main_dtype(*ctx.call):  # --dtype, model.half(): not in the hash
                return None
        trace = ctx.live.generation if ctx.live is not None else None
        if trace is not None and not _same_generation(old.result.generation, trace):
            return None
        return StageResult(status=Status.SUCCESSFUL, duration_s=0.0, started_at=old.started_at,
                           run_id=old.run_id, result=old.result, reason=REUSED_REASON)

    def run(self, ctx: InvocationContext) -> StageResult:
        """Characterize in a fork of the discovering process under ``--timeout`` (in this process when
        the pipeline does not isolate, or when the model sits on CUDA, which a fork cannot use)."""
        from turnkey_like.launcher import run_isolated

        if not self.pipeline.options.isolate:
            return StageResult(status=Status.SUCCESSFUL, result=self._characterize(ctx))
        outcome = run_isolated(self._characterize, ctx, timeout_s=self.options.timeout_s,
                               log_path=ctx.build_dir / CHARACTERIZE_LOG,
                               start_method=_start_method_for(ctx))
        return outcome.stage_result(None, outcome.duration_s)

    def _characterize(self, ctx: InvocationContext):
        import torch

        from turnkey_like.characterize import characterize_call

        model, args, kwargs = ctx.call
        no_weights = self.options.no_weights or _on_meta(ctx)

        def count(call_args, call_kwargs, trace=False):
            with torch.inference_mode() if (ctx.live and ctx.live.inference_mode) else torch.no_grad():
                return characterize_call(model, call_args, call_kwargs, hardware=self.pipeline.profile,
                                         no_weights=no_weights, trace=trace)

        char = count(args, kwargs, self.options.trace)
        generation = ctx.live.generation if ctx.live is not None else None
        if generation is not None:  # a prefill: count its generation (the call above filled its cache)
            from turnkey_like.pipeline.generation import generation_of

            char.generation = generation_of(model, args, kwargs, ctx.result.model_request, generation, char, count)
        return char


def _same_generation(recorded, trace) -> bool:
    """Whether a cached characterization's generation is the one the script ran now (same prompt and
    number of new tokens)."""
    return (recorded is not None and recorded.prompt_tokens == trace.prompt_tokens
            and recorded.new_tokens == trace.new_tokens)


def _on_meta(ctx: InvocationContext) -> bool:
    """The named model was built on the meta device (too large, or ``--no-weights``)."""
    request = ctx.result.model_request
    return bool(request is not None and request.no_weights)


def _start_method_for(ctx: InvocationContext):
    """``fork`` for a CPU model; in-process for a model on CUDA (a forked child cannot use CUDA)."""
    from turnkey_like.calls import tensor_leaves
    from turnkey_like.launcher import choose_start_method

    model, args, kwargs = ctx.call
    on_cuda = any(getattr(t, "is_cuda", False) for t in tensor_leaves((args, kwargs)))
    if not on_cuda and model is not None and hasattr(model, "parameters"):
        first = next(iter(model.parameters()), None)
        on_cuda = first is not None and first.is_cuda
    return choose_start_method("cpu", on_cuda)


class BuildStage(Stage):
    """Export to ONNX (or take the ``.onnx`` input), check, optimize and validate against PyTorch."""

    name = "build"

    def skip_reason(self, ctx: InvocationContext) -> str | None:
        if self.options.analyze_only:
            return "--analyze-only"
        if _on_meta(ctx):
            return "built on meta tensors (no weights): nothing to export"
        return None

    def run(self, ctx: InvocationContext) -> StageResult:
        previous = ctx.previous.invocation.build.result if ctx.previous is not None else None
        if ctx.onnx_path is not None:
            from turnkey_like.onnx_file import build_onnx_file

            return build_onnx_file(ctx.onnx_path, ctx.build_dir, self.options.build,
                                   input_shapes=self.options.input_shapes or None, previous=previous)
        from turnkey_like.build import build_invocation

        model, args, kwargs = ctx.call
        with eval_mode(model):
            return build_invocation(model, args, kwargs, ctx.build_dir, self.options.build, previous=previous)


class BenchmarkStage(Stage):
    """Time the build (or the eager/compiled model) on the chosen runtime and device."""

    name = "benchmark"

    def skip_reason(self, ctx: InvocationContext) -> str | None:
        if self.options.analyze_only:
            return "--analyze-only"
        if self.options.build_only:
            return "--build-only"
        if _on_meta(ctx):
            return "built on meta tensors (no weights): nothing to time"
        return None

    def reuse(self, ctx: InvocationContext) -> StageResult | None:
        """The cached benchmark when ``--rebenchmark`` allows it (see ``runtimes.harness.reuse_benchmark``).

        ``if_needed`` reuses a successful benchmark whose fingerprint (the current build's
        fingerprint, runtime, device, precision, threads, iterations, warm-up, per-layer, tk version,
        machine) equals this run's; ``never`` reuses any successful one. The outcome keeps the
        ``run_id`` and ``started_at`` of the run that measured it.
        """
        build = ctx.inv.build
        if ctx.previous is None or build.status != Status.SUCCESSFUL or build.result is None:
            return None
        from turnkey_like.runtimes import benchmark_fingerprint, reuse_benchmark

        old = ctx.previous.invocation.benchmark
        options = self.options.benchmark
        options.validate()
        result = reuse_benchmark(old, benchmark_fingerprint(build.result, options), options.rebenchmark)
        if result is None:
            return None
        return StageResult(status=Status.SUCCESSFUL, duration_s=0.0, started_at=old.started_at,
                           run_id=old.run_id, result=result, reason=REUSED_REASON)

    def run(self, ctx: InvocationContext) -> StageResult:
        measure_generation_of(ctx, self.options)
        if ctx.inv.build.status != Status.SUCCESSFUL:
            return StageResult(status=Status.SKIPPED, reason="build did not succeed")
        from turnkey_like.runtimes import benchmark_invocation

        model, args, kwargs = ctx.call
        with eval_mode(model):
            outcome = benchmark_invocation(model, args, kwargs, ctx.inv.build.result, ctx.build_dir,
                                           self.options.benchmark, characterization=ctx.inv.characterization.result,
                                           cache_dir=self.options.cache_dir)
        if outcome.result is not None and ctx.previous is not None:  # keep the other runtimes' per-layer runs
            old = ctx.previous.invocation.benchmark
            earlier = old.result if old.status == Status.SUCCESSFUL else (old.kept.result if old.kept else None)
            if isinstance(earlier, type(outcome.result)):
                outcome.result = outcome.result.with_earlier(earlier)
        return outcome


def measure_generation_of(ctx: InvocationContext, options: RunOptions) -> None:
    """For a prefill whose characterization holds its generation: time that generation on torch eager
    and ONNX Runtime and put the figures beside the prediction (``Generation.measured``, see
    ``runtimes.generation``); the record is saved with the benchmark stage's outcome."""
    char = ctx.inv.characterization.result
    if ctx.live is None or ctx.live.generation is None or char is None or char.generation is None:
        return
    from turnkey_like.runtimes.generation import measure_generation

    model, args, kwargs = ctx.call
    with eval_mode(model):
        char.generation = measure_generation(model, args, kwargs, char.generation, ctx.build_dir, options.benchmark,
                                             opset=options.build.opset)


@contextlib.contextmanager
def eval_mode(model):
    """Put ``model`` in eval mode for an inference build/benchmark; restore every module's mode after."""
    if model is None or not hasattr(model, "modules"):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training



def skip_unselected(inv: Invocation) -> None:
    """Mark every stage of ``inv`` skipped because the ``::HASH`` selection left it out (reason
    ``not selected``): done in the input's child, and by tk's mirror of it, which learns the
    selection from the child's ``Discovered`` (``pipeline.channel``)."""
    for stage in inv.stages().values():
        stage.status, stage.reason = Status.SKIPPED, "not selected"


def settle(earlier: StageResult | None, outcome: StageResult) -> StageResult:
    """The stage's outcome once an attempt ended, such that no earlier measurement is ever erased.

    - A success replaces whatever was there.
    - An ``interrupted`` attempt (Ctrl-C) leaves the earlier final outcome in place, its reason
      saying this run was interrupted; with none, the outcome is ``interrupted``.
    - Any other failure (``error``, ``timeout``, ``killed``) is the outcome, and the last earlier
      success rides along in :attr:`~turnkey_like.records.StageResult.kept`.

    Args:
        earlier: the stage's last final outcome before this attempt (``None`` when none).
        outcome: how this attempt ended.
    """
    if outcome.status == Status.SUCCESSFUL or earlier is None or not earlier.final:
        return outcome
    if outcome.status == Status.INTERRUPTED:
        earlier.reason = f"{KEPT_REASON}; this run was interrupted"
        return earlier
    success = earlier if earlier.status == Status.SUCCESSFUL else earlier.kept
    if success is not None and success.status == Status.SUCCESSFUL:
        outcome.kept = msgspec.structs.replace(success, kept=None)
    return outcome


def without_nesting(stage: StageResult | None) -> StageResult | None:
    """``stage`` as a :attr:`StageResult.kept` value: its own success, else the success it kept."""
    if stage is None:
        return None
    if stage.status != Status.SUCCESSFUL and stage.kept is not None:
        return msgspec.structs.replace(stage.kept, kept=None)
    return msgspec.structs.replace(stage, kept=None)
