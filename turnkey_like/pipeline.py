"""The one pipeline every command runs: inputs → discovery → characterize → build → benchmark → cache.

Each input is handled on its own: its script runs (discovery), its invocations are selected, then every
selected invocation goes through the :data:`STAGE_ORDER` stages in order, and its
:class:`~turnkey_like.records.BuildRecord` is saved to the cache before and after each stage, so a
crash or kill loses nothing already measured. One bad script, model or stage never stops the
others; failures are recorded and counted, and the command exits non-zero when there were any.

A stage is an object with three questions (:class:`Stage`): should it be skipped here and why, can
an earlier outcome be reused, and how to run it. The pipeline owns everything else: the record,
saving, timing, keeping earlier outcomes, and turning a crash into an ``error`` outcome.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from turnkey_like import __version__
from turnkey_like.errors import ScriptError, SelectionError, TkError, one_line
from turnkey_like.inputs import InputSpec
from turnkey_like.records import (
    BuildRecord,
    Invocation,
    ModelInfo,
    ScriptResult,
    StageResult,
    Status,
    now_utc,
)

if TYPE_CHECKING:
    from turnkey_like.build import BuildOptions
    from turnkey_like.cache import Cache
    from turnkey_like.discovery import LiveInvocation
    from turnkey_like.records import HardwareProfile
    from turnkey_like.runtimes import BenchmarkOptions

log = logging.getLogger(__name__)

KEPT_REASON = "kept from an earlier run"
CHARACTERIZE_LOG = "characterize.log"
REUSED_REASON = "reused from cache"


def _default_build_options() -> BuildOptions:
    from turnkey_like.build import BuildOptions

    return BuildOptions()


def _default_benchmark_options() -> BenchmarkOptions:
    from turnkey_like.runtimes import BenchmarkOptions

    return BenchmarkOptions()


@dataclass
class RunOptions:
    """Options of one pipeline run (what the command line asked for).

    Attributes:
        analyze_only: stop after characterization (no ONNX build, no benchmark).
        build_only: stop after the ONNX build.
        characterize: run the characterization stage (``tk benchmark`` and ``tk profile`` do).
        max_depth: discover submodules down to this depth (0 = the models the script calls).
        script_args: the scripts' command-line arguments (``--script-args``).
        cache_dir: cache root (``None``: ``TK_CACHE_DIR`` or ``~/.cache/turnkey_like``).
        hardware: hardware profile name for the roofline (``None``: ``local``, this machine).
        no_weights: characterize on meta tensors (no real weights or compute).
        build: how to build (opset, precision, reuse policy, time limit, exporter).
        benchmark: how to benchmark (runtime, device, iterations, warm-up, threads, time limit).
        lean_cache: delete ONNX files and other large artifacts once a build is benchmarked.
        input_shapes: ``--input-shape`` overrides for ``.onnx`` inputs, name → shape.
        trace: also trace each model with FX/export while characterizing (``tk profile --trace``:
            the traceability line and attempts); otherwise only the ONNX build traces, once.
        timeout_s: time limit, seconds, for each input's discovery (running the script) and for each
            invocation's characterization; build and benchmark take theirs from ``build`` and
            ``benchmark``.
        isolate: run each input (its discovery and its stages) in a child process of its own
            (:class:`~turnkey_like.launcher.StreamingChild`), so a crash, ``os._exit``, hang or
            leaked global state in one script never reaches tk or the next script. ``False`` runs
            everything in this process (no protection, no discovery or characterization time limit).
    """

    analyze_only: bool = False
    build_only: bool = False
    characterize: bool = True
    max_depth: int = 0
    script_args: str = ""
    cache_dir: str | None = None
    hardware: str | None = None
    no_weights: bool = False
    build: BuildOptions = field(default_factory=_default_build_options)
    benchmark: BenchmarkOptions = field(default_factory=_default_benchmark_options)
    lean_cache: bool = False
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    trace: bool = False
    timeout_s: float = 3600.0
    isolate: bool = True


@dataclass
class RunSummary:
    """What a pipeline run produced: one :class:`ScriptResult` per input, and the failures.

    Attributes:
        results: one record per input, in the order run.
        errors: one error per bad input, failed script or unmatched selector.
        run_id: this run's id (``<started-at>-<pid>``), stamped on every outcome it produced.
        interrupted: the run was stopped by Ctrl-C; ``results`` holds what was done until then
            (the input being run included, as far as it got).
    """

    results: list[ScriptResult] = field(default_factory=list)
    errors: list[TkError] = field(default_factory=list)
    run_id: str = ""
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        """True when any input, script or stage failed (the command then exits non-zero)."""
        if self.errors:
            return True
        return any(result.status == Status.ERROR or any(inv.failed for _m, inv in result.invocations())
                   for result in self.results)


class Listener:
    """Receives pipeline events; the CLI's renderer subclasses it. Every method is optional."""

    def run_started(self, specs: list[InputSpec]) -> None: ...

    def script_started(self, spec: InputSpec, index: int) -> None: ...

    def stage_started(self, result: ScriptResult, model: ModelInfo, inv: Invocation, stage: str) -> None: ...

    def stage_finished(self, result: ScriptResult, model: ModelInfo, inv: Invocation, stage: str) -> None: ...

    def script_finished(self, result: ScriptResult, error: TkError | None) -> None: ...


# --------------------------------------------------------------------------------------------------
# Selection and script failures
# --------------------------------------------------------------------------------------------------


def apply_selection(result: ScriptResult) -> SelectionError | None:
    """Mark invocations selected by ``result.selectors`` (invocation or model hashes).

    Returns a :class:`SelectionError` naming the selectors that matched nothing (with the hashes that
    were found), or ``None``. Unmatched selectors never un-select the invocations others matched.
    """
    if not result.selectors:
        return None
    selectors = set(result.selectors)
    found: list[str] = []
    matched: set[str] = set()
    for model, inv in result.invocations():
        inv.selected = inv.hash in selectors or model.model_hash in selectors
        matched.update({inv.hash, model.model_hash} & selectors)
        found.append(f"{inv.hash} ({model.name}, model {model.model_hash})")
    missing = sorted(selectors - matched)
    if not missing:
        return None
    name = _given_path(result)
    listing = "; ".join(found) if found else "none (the script called no model)"
    return SelectionError(
        f"{name}::{','.join(missing)}: no model or invocation has this hash",
        hint=f"the hashes found in {name} are: {listing}",
    )


def _given_path(result: ScriptResult) -> str:
    """The input's path as the user gave it (without ``::HASH``), else relative to the working folder."""
    if result.entry:
        return result.entry.split("::", 1)[0]
    try:
        return os.path.relpath(result.path)
    except ValueError:
        return result.path


def script_failure(result: ScriptResult, script_args: str = "") -> ScriptError:
    """The one-line error, with a hint that says what to do, for a script that failed.

    The hint names the script as the user gave it and suggests a command that works: ``python
    SCRIPT`` only where the script runs without tk (not for TurnkeyML scripts, whose
    ``turnkeyml.parser`` exists only inside tk). It says that the models which ran are reported
    above only when some did.
    """
    name = _given_path(result)
    error = result.error or "failed (no reason was recorded)"
    if result.model_request is not None:  # a named model (--model): no script to run by hand
        return ScriptError(f"{name}: {error}", hint=f"rerun with --traceback to see where {name} failed; "
                                                    "its options (--imgsz, --batch-size, --seq-len, "
                                                    "--input-shape) may not suit it")
    ran = f"the models that {name} ran before it failed are reported above; " if result.models else ""
    debug = (f"rerun with `tk benchmark {name} --analyze-only --traceback` to see where it failed"
             if result.uses_turnkeyml_parser else
             f"run `python {name}` (or rerun tk with --traceback) to see where it failed")
    if error.startswith("syntax error"):
        hint = f"fix the syntax error in {name}, then rerun"
    elif "longer than --timeout" in error:
        hint = f"{ran}raise --timeout if {name} needs longer"
    elif "killed by SIGKILL" in error:
        hint = (f"{ran}a SIGKILL (from outside, or the out-of-memory killer) leaves no Python stack: "
                f"run `python {name}` and watch its memory")
    elif "process killed by" in error or "before tk finished" in error:
        hint = f"{ran}rerun with --traceback for the Python stack where it ended, or run `python {name}`"
    elif result.exit_code == 2 and script_args:
        hint = f"{name} rejected --script-args {script_args!r}: pass arguments that it accepts"
    elif result.exit_code is not None:
        hint = f"{ran}{name} called sys.exit({result.exit_code})"
    else:
        hint = f"{ran}{debug}"
    return ScriptError(f"{name}: {error}", hint=hint)


def run_failure(result: ScriptResult, hint: str) -> TkError:
    """The error of an input that the run, not the script, failed (tk itself failed, a Dask worker
    could not run it): the input as the user gave it, the record's one-line reason, and ``hint``."""
    return TkError(f"{_given_path(result)}: {result.error}", hint=hint)


def input_error(result: ScriptResult, error: TkError | None, script_args: str = "") -> TkError | None:
    """The error to report for an input that ended: ``error`` when the run gave one (a ``::HASH`` that
    matched nothing, a problem with the input, a worker that could not run it), else the script's
    own failure (:func:`script_failure`) when it failed, else ``None``. Serial and Dask runs alike."""
    if error is None and result.status == Status.ERROR:
        return script_failure(result, script_args)
    return error


# --------------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------------


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

    def __init__(self, pipeline: Pipeline):
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
        """The cached characterization when it still applies (same tk, hardware and weights mode).

        Counts depend only on the architecture and input signature (both in the invocation hash),
        so a successful earlier result is reused unless ``--rebuild always`` asks for fresh work.
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
        grad = torch.inference_mode() if (ctx.live and ctx.live.inference_mode) else torch.no_grad()
        with grad:
            return characterize_call(model, args, kwargs, hardware=self.pipeline.profile,
                                     no_weights=self.options.no_weights or _on_meta(ctx), trace=self.options.trace)


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
        if ctx.inv.build.status != Status.SUCCESSFUL:
            return StageResult(status=Status.SKIPPED, reason="build did not succeed")
        from turnkey_like.runtimes import benchmark_invocation

        model, args, kwargs = ctx.call
        with eval_mode(model):
            return benchmark_invocation(model, args, kwargs, ctx.inv.build.result, ctx.build_dir,
                                        self.options.benchmark, characterization=ctx.inv.characterization.result,
                                        cache_dir=self.options.cache_dir)


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


# --------------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------------


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


class _Events:
    """Where a running input's progress and records go (the parent's pipeline, or a pipe to it)."""

    def found(self, result: ScriptResult, done: bool) -> None: ...

    def save(self, record: BuildRecord) -> None: ...

    def stage_started(self, result: ScriptResult, model: ModelInfo, inv: Invocation, stage: str) -> None: ...

    def stage_finished(self, result: ScriptResult, model: ModelInfo, inv: Invocation, stage: str) -> None: ...


class _LocalEvents(_Events):
    """In-process: save to the cache and tell the listener directly."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def found(self, result, done):
        self.pipeline._current = result

    def save(self, record):
        self.pipeline.save(record)

    def stage_started(self, result, model, inv, stage):
        self.pipeline.listener.stage_started(result, model, inv, stage)

    def stage_finished(self, result, model, inv, stage):
        self.pipeline.listener.stage_finished(result, model, inv, stage)


class _PipeEvents(_Events):
    """In an input's child process: every event becomes a message to the parent, sent at once."""

    def __init__(self, send):
        self.send = send

    def found(self, result, done):
        self.send(("discovered" if done else "found", result))

    def save(self, record):
        self.send(("save", record))

    def stage_started(self, result, model, inv, stage):
        self.send(("stage_started", inv.hash, stage))

    def stage_finished(self, result, model, inv, stage):
        self.send(("stage_finished", inv.hash, stage))


#: seconds a child may stay silent beyond the stage time limit before tk takes it for hung
SILENCE_GRACE_S = 60.0


def preload_for_children(characterize: bool = True) -> None:
    """Import, once in this process, what every input's forked child would otherwise import again.

    torch itself; and, when characterizing, ``torch._dynamo``: the counter's first module call goes
    through ``torch._disable_dynamo``, which imports it lazily (about 1.2 s on this 2-core machine,
    measured with ``python -c "import torch; import torch._dynamo"``). Imported in a child, that cost
    is paid again by every input; imported here, the children inherit it through ``fork``. Nothing
    is run here: torch kernels stay out of this process (see :mod:`turnkey_like.launcher`).
    """
    import torch  # noqa: F401

    if characterize:
        import torch._dynamo  # noqa: F401


class Pipeline:
    """Runs inputs through the stages, saving every step to the cache.

    With ``options.isolate`` (the default) each input runs in a child process of its own: the
    script's discovery, then each selected invocation's stages, each stage in a further fork of that
    child under the time limit. The child streams what it finds and every record to this process,
    which alone writes the user's records; a child that crashes, exits or hangs becomes a one-line
    error for its input, and what it sent before stays.

    Args:
        options: :class:`RunOptions`.
        listener: receives progress events (the CLI prints from them).
        stages: the stage classes, in order (default: characterize, build, benchmark).
    """

    STAGE_ORDER = (CharacterizeStage, BuildStage, BenchmarkStage)

    def __init__(self, options: RunOptions, listener: Listener | None = None, stages=None):
        from turnkey_like.cache import Cache

        self.options = options
        self.listener = listener or Listener()
        self.cache: Cache = Cache(options.cache_dir)
        self.stages: list[Stage] = [cls(self) for cls in (stages or self.STAGE_ORDER)]
        self.run_id = f"{now_utc()}-{os.getpid()}"
        self._current: ScriptResult | None = None
        #: ``stage_guard(stage_name)`` is entered around each stage's work in the process doing it:
        #: none by default; corpus runs on Dask set a host-wide lock so a benchmark has its host alone.
        self.stage_guard = lambda stage_name: contextlib.nullcontext()

    @cached_property
    def profile(self) -> HardwareProfile:
        """The hardware profile for the roofline, resolved once per run (``local`` is measured once
        per machine and kept in this run's cache).

        With isolation it is resolved in a child: measuring ``local`` runs multi-threaded torch
        kernels, and a process that has done so cannot fork a script child that uses them.
        """
        from turnkey_like.characterize.hardware import get_profile

        if not self.options.isolate:
            return get_profile(self.options.hardware, cache_dir=self.options.cache_dir)
        from turnkey_like.launcher import run_isolated

        outcome = run_isolated(get_profile, self.options.hardware, cache_dir=self.options.cache_dir,
                               timeout_s=600, log_path=None)
        if outcome.status != Status.SUCCESSFUL:
            raise TkError(f"hardware profile {self.options.hardware or 'local'}: {outcome.error}",
                          hint="pass --hardware with a datasheet profile (e.g. a100) to skip measuring this machine")
        return outcome.value

    # -- inputs -------------------------------------------------------------------------------
    def run(self, specs: list[InputSpec]) -> RunSummary:
        """Run every input in order; never raises for a bad input, script, model or stage.

        The first Ctrl-C stops the stage running (its earlier outcome, if any, is kept; else it is
        recorded ``interrupted``) and returns what was done, with ``interrupted`` set.
        """
        summary = RunSummary(run_id=self.run_id)
        self.listener.run_started(specs)
        self._current = None
        try:
            if self.options.isolate and any(not s.is_onnx for s in specs):
                preload_for_children(self.options.characterize)
                if self.options.characterize:
                    self.profile  # noqa: B018 - resolved before the first fork, so children inherit it
            for index, spec in enumerate(specs):
                self.listener.script_started(spec, index)
                try:
                    result, error = self.run_input(spec)
                except TkError as e:  # a problem with this input only (e.g. an unreadable ONNX file)
                    result = ScriptResult(path=str(spec.path), labels=spec.labels, selectors=spec.selectors,
                                          entry=spec.entry or None, status=Status.ERROR, error=e.message,
                                          model_request=spec.model)
                    error = e
                error = input_error(result, error, self.options.script_args)
                if error is not None:
                    summary.errors.append(error)
                summary.results.append(result)
                self._current = None
                self.listener.script_finished(result, error)
        except KeyboardInterrupt:
            summary.interrupted = True
            if self._current is not None:
                summary.results.append(self._current)
        return summary

    def run_input(self, spec: InputSpec) -> tuple[ScriptResult, TkError | None]:
        """Discover (or describe, for ``.onnx``) one input, then run its selected invocations.

        Returns the input's record and its error: a ``::HASH`` value that matched nothing, or (in a
        child) a problem with the input itself, such as an unreadable ``.onnx`` file, or a failure
        of tk's own. A script's own failure is in the record (:func:`input_error` makes its error).

        Raises:
            TkError: in-process (``isolate=False``), a problem with the input itself.
        """
        if self.options.isolate:
            return self._run_input_in_child(spec)
        return self._run_input_here(spec, _LocalEvents(self))

    def _run_input_here(self, spec: InputSpec, events: _Events) -> tuple[ScriptResult, SelectionError | None]:
        """The work of one input, in the process that calls it (the input's child, or tk itself)."""
        if spec.is_onnx:
            return self._run_onnx(spec, events)
        from turnkey_like.discovery import discover, discover_named

        found = lambda result: events.found(result, False)  # noqa: E731
        if spec.model is not None:
            discovery = discover_named(spec, max_depth=self.options.max_depth, on_found=found)
        else:
            discovery = discover(spec, max_depth=self.options.max_depth, script_args=self.options.script_args,
                                 on_found=found)
        result = discovery.result
        result.entry = spec.entry or None
        selection_error = apply_selection(result)
        events.found(result, True)
        for model, inv in result.invocations():
            self.run_invocation(result, model, inv, discovery.live.get(inv.hash), events=events)
        discovery.live.clear()
        return result, selection_error

    def _run_onnx(self, spec: InputSpec, events: _Events) -> tuple[ScriptResult, SelectionError | None]:
        from turnkey_like.hashing import invocation_hash
        from turnkey_like.onnx_file import describe_onnx

        start = time.perf_counter()
        facts = describe_onnx(spec.path, self.options.input_shapes or None)
        model = ModelInfo(
            name=spec.path.stem, class_name="ONNX model", qualified_class="onnx.ModelProto",
            model_hash=facts.model_hash, model_type="onnx", source_file=str(spec.path), source_line=None,
            location_kind="file", params=facts.params, param_bytes=facts.param_bytes,
        )
        inv_hash, note = invocation_hash(facts.model_hash, None, facts.inputs)
        inv = Invocation(hash=inv_hash, parent_hash=None, signature=facts.inputs, executed=0, hash_note=note)
        model.invocations.append(inv)
        result = ScriptResult(path=str(spec.path), labels=spec.labels, selectors=spec.selectors,
                              entry=spec.entry or None, status=Status.SUCCESSFUL, models=[model],
                              duration_s=time.perf_counter() - start)
        selection_error = apply_selection(result)
        events.found(result, True)
        self.run_invocation(result, model, inv, None, onnx_path=spec.path, events=events)
        return result, selection_error

    # -- one input in a child process ----------------------------------------------------------
    def child_body(self, send, spec: InputSpec) -> None:
        """What an input's child does: the work, sending every event with ``send(message)`` (see
        :meth:`consume`), then ``done`` (or the input's error)."""
        try:
            result, selection_error = self._run_input_here(spec, _PipeEvents(send))
        except TkError as e:
            send(("tk_error", e.message, e.hint))
            return
        except BaseException as e:  # noqa: BLE001 - reported to the parent as this input's error
            send(("crash", one_line(e), "".join(traceback.format_exception(e)[-6:])))
            return
        send(("done", result, selection_error))

    def _run_input_in_child(self, spec: InputSpec) -> tuple[ScriptResult, TkError | None]:
        """Run one input in a :class:`~turnkey_like.launcher.StreamingChild` on this machine."""
        from turnkey_like.launcher import StreamingChild

        return self.consume(spec, StreamingChild(self.child_body, spec))

    def consume(self, spec: InputSpec, channel) -> tuple[ScriptResult, TkError | None]:
        """Mirror what an input's child sends: write its records to the cache, tell the listener.

        ``channel`` is where the child's messages arrive: a
        :class:`~turnkey_like.launcher.StreamingChild` here, or a relay from a Dask worker running
        one. It is a context manager with ``receive(timeout_s)`` (raising
        :class:`~turnkey_like.launcher.ChildEnded` when the child ended early or timed out),
        ``kill()`` and ``wait()``.

        The child's messages: ``found``/``discovered`` (the script's record so far), ``save`` (a
        build record: written to the cache here), ``stage_started``/``stage_finished``, then
        ``done`` (or ``tk_error``/``crash``, the input's problem or tk's own failure). Discovery
        must end within ``options.timeout_s``; after it, a child silent for longer than the stage
        limits plus :data:`SILENCE_GRACE_S` is taken for hung.

        Returns the input's record and the error the run gave it (see :meth:`run_input`): a child
        that ended early is the script's failure (record's ``error``, with the signal's stack as
        its ``traceback``), unless the channel gave a hint (``ChildEnded.hint``: tk failed, a worker
        could not run it), which the returned error then carries.
        """
        from turnkey_like.launcher import TK_BUG_HINT, ChildEnded

        mirror = ScriptResult(path=str(spec.path), labels=spec.labels, selectors=list(spec.selectors),
                              entry=spec.entry or None, status=Status.RUNNING, model_request=spec.model)
        self._current = mirror
        invocations: dict[str, tuple[ModelInfo, Invocation]] = {}
        saved: dict[str, BuildRecord] = {}
        running: tuple[str, str] | None = None  # (invocation hash, stage) of the stage in progress
        save_error: TkError | None = None  # the first record that could not be written
        discovering = True
        started = time.monotonic()
        silence_limit = max(self.options.timeout_s, self.options.build.timeout_s,
                            self.options.benchmark.timeout_s) + SILENCE_GRACE_S

        def adopt(result: ScriptResult) -> None:
            nonlocal mirror
            result.entry = spec.entry or None
            result.model_request = result.model_request or spec.model
            mirror = self._current = result
            invocations.clear()
            for model, inv in result.invocations():
                invocations[inv.hash] = (model, inv)

        with channel as child:
            try:
                while True:
                    limit = (self.options.timeout_s - (time.monotonic() - started)) if discovering else silence_limit
                    message = child.receive(max(limit, 0.001))
                    kind = message[0]
                    if kind in ("found", "discovered"):
                        adopt(message[1])
                        discovering = kind == "found"
                    elif kind == "save":
                        record: BuildRecord = message[1]
                        saved[record.invocation.hash] = record
                        try:
                            self.save(record)
                        except TkError as e:  # e.g. a full disk: the run goes on, the input reports it
                            save_error = save_error or e
                        model, inv = invocations.get(record.invocation.hash, (None, None))
                        if inv is not None:
                            _copy_stages(record.invocation, inv)
                    elif kind in ("stage_started", "stage_finished"):
                        model, inv = invocations[message[1]]
                        running = (message[1], message[2]) if kind == "stage_started" else None
                        getattr(self.listener, kind)(mirror, model, inv, message[2])
                    elif kind == "done":
                        child.wait()
                        adopt(message[1])
                        return message[1], message[2] or save_error
                    elif kind == "tk_error":  # a problem with this input (e.g. an unreadable .onnx file)
                        child.wait()
                        mirror.status, mirror.error = Status.ERROR, message[1]
                        return mirror, TkError(message[1], hint=message[2])
                    elif kind == "crash":
                        raise ChildEnded(Status.ERROR, f"tk failed: {message[1]}", message[2], TK_BUG_HINT)
            except ChildEnded as ended:
                phase = "discovery" if discovering else "stage" if running else "run"
                self._child_failed(mirror, ended, phase, running, saved, invocations)
                # the channel's own hint (tk failed, a worker could not run it), else the script's failure
                return mirror, None if ended.hint is None else run_failure(mirror, ended.hint)
            except KeyboardInterrupt:
                child.kill()
                if running is not None:
                    self._end_running(running, saved, invocations, StageResult(
                        status=Status.INTERRUPTED, error="interrupted (Ctrl-C)", run_id=self.run_id))
                raise

    def _end_running(self, running: tuple[str, str], saved: dict[str, BuildRecord],
                     invocations: dict, outcome: StageResult) -> None:
        """Record how the stage that was running in a dead or killed child ended, keeping earlier results."""
        inv_hash, stage_name = running
        record = saved.get(inv_hash)
        if record is None:
            return
        current = getattr(record.invocation, stage_name)
        outcome.started_at = current.started_at
        outcome.run_id = self.run_id
        if current.started_at:
            outcome.duration_s = _seconds_since(current.started_at)
        setattr(record.invocation, stage_name, settle(current.kept, outcome))
        try:
            self.save(record)
        except TkError as e:
            log.warning("%s: %s", record.build_name, e.message)
        model, inv = invocations.get(inv_hash, (None, None))
        if inv is not None:
            _copy_stages(record.invocation, inv)
            self.listener.stage_finished(self._current, model, inv, stage_name)

    def _child_failed(self, mirror: ScriptResult, ended, phase: str, running, saved, invocations) -> None:
        """Turn a child that ended early into this input's one-line error; keep all it sent."""
        what = {"discovery": "the script", "stage": "a stage", "run": "the input's process"}[phase]
        mirror.status = Status.ERROR
        if phase == "discovery" and ended.status == Status.TIMEOUT:
            mirror.error = (f"the script ran longer than --timeout {self.options.timeout_s:g} s "
                            "(its process was killed)")
        elif ended.hint is not None:  # not the script's end (tk failed, a worker could not run it)
            mirror.error = ended.error
        else:
            where = _script_line(ended.stack, mirror.path)
            mirror.error = f"{what}: {ended.error}{where}"
        if ended.stack:  # the crashing thread's stack down to the script's frames (tk's own cut)
            kept = []
            for line in ended.stack.splitlines():
                if "<frozen runpy>" in line or line.startswith("Extension modules"):
                    break
                kept.append(line)
            mirror.traceback = "\n".join(kept).strip()
        if running is not None:
            status = Status.TIMEOUT if ended.status == Status.TIMEOUT else Status.KILLED
            self._end_running(running, saved, invocations, StageResult(status=status, error=ended.error))
        not_requested = {"characterization": None if self.options.characterize else "not requested",
                         "build": "--analyze-only" if self.options.analyze_only else None,
                         "benchmark": "--analyze-only" if self.options.analyze_only else
                         "--build-only" if self.options.build_only else None}
        for _model, inv in mirror.invocations():
            for name, stage in inv.stages().items():
                if stage.status in (Status.NOT_STARTED, Status.RUNNING):
                    stage.status = Status.SKIPPED
                    stage.reason = not_requested[name] or f"not run: {what} ended the input's process"

    # -- one invocation ------------------------------------------------------------------------
    def run_invocation(self, result: ScriptResult, model: ModelInfo, inv: Invocation,
                       live: LiveInvocation | None, onnx_path: Path | None = None,
                       events: _Events | None = None) -> None:
        """Run every stage for one invocation, saving its record before and after each stage.

        A stage that does not run keeps the final outcome an earlier run saved (marked
        :data:`KEPT_REASON`): an ``--analyze-only`` rerun never erases a benchmark measured before.
        """
        from turnkey_like.system import system_info

        events = events or _LocalEvents(self)
        stem = None
        if result.model_request is not None:
            from turnkey_like.zoo import stem as named_stem

            stem = named_stem(result.model_request)
        inv.build_name = self.cache.build_name(result.path, result.labels, inv.hash, stem=stem)
        if not inv.selected:
            for stage in inv.stages().values():
                stage.status, stage.reason = Status.SKIPPED, "not selected"
            return
        previous = self._previous(inv.build_name)
        record = BuildRecord(
            build_name=inv.build_name, script=result.path, labels=result.labels, model=model.summary(),
            invocation=inv, system=system_info(), tk_version=__version__,
            created_at=(previous.created_at if previous else None) or now_utc(),
            model_request=result.model_request,
        )
        if previous is not None:
            for name, earlier in previous.invocation.stages().items():
                if earlier.final:
                    setattr(inv, name, earlier)
        ctx = InvocationContext(result=result, model=model, inv=inv, live=live,
                                build_dir=self.cache.build_dir(inv.build_name), previous=previous,
                                onnx_path=onnx_path)
        saved = False
        for stage in self.stages:
            saved = self._run_stage(stage, ctx, record, events)
        if not saved:
            events.save(record)
        if self.options.lean_cache and inv.benchmark.status == Status.SUCCESSFUL:
            self.cache.clean([inv.build_name])

    def _run_stage(self, stage: Stage, ctx: InvocationContext, record: BuildRecord, events: _Events) -> bool:
        """Run (or skip, or reuse) one stage; return True when the record was saved after it."""
        inv = ctx.inv
        reason = stage.skip_reason(ctx)
        if reason is not None:
            earlier = getattr(inv, stage.name)
            if earlier.final:
                earlier.reason = KEPT_REASON
            else:
                setattr(inv, stage.name, StageResult(status=Status.SKIPPED, reason=reason, run_id=self.run_id))
            return False
        reused = stage.reuse(ctx)
        if reused is not None:
            setattr(inv, stage.name, reused)
            return False
        events.stage_started(ctx.result, ctx.model, inv, stage.name)
        started = now_utc()
        earlier = getattr(inv, stage.name)
        earlier = msgspec.structs.replace(earlier, kept=earlier.kept) if earlier.final else None
        setattr(inv, stage.name, StageResult(status=Status.RUNNING, started_at=started, pid=os.getpid(),
                                             run_id=self.run_id, kept=_without_nesting(earlier)))
        events.save(record)
        log.info("%s %s (%s): started", stage.name, ctx.model.name, inv.hash)
        t0 = time.perf_counter()
        try:
            with self.stage_guard(stage.name):
                outcome = stage.run(ctx)
        except KeyboardInterrupt:
            # Ctrl-C never erases what an earlier run measured: keep its outcome, else say interrupted.
            setattr(inv, stage.name, settle(earlier, StageResult(
                status=Status.INTERRUPTED, started_at=started, duration_s=time.perf_counter() - t0,
                run_id=self.run_id, error="interrupted (Ctrl-C)")))
            events.save(record)
            raise
        except Exception as e:  # noqa: BLE001 - one model's failure never stops the others
            # tk's own errors too (a refused symlink, a full disk): the stage failed, the run goes on
            outcome = StageResult(status=Status.ERROR, error=one_line(e),
                                  log_excerpt=None if isinstance(e, TkError) else
                                  "".join(traceback.format_exception(e)[-6:]))
        outcome.started_at = outcome.started_at or started
        if outcome.duration_s is None:
            outcome.duration_s = time.perf_counter() - t0
        outcome.pid = None
        outcome.run_id = outcome.run_id or self.run_id
        setattr(inv, stage.name, settle(earlier, outcome))
        events.save(record)
        log.info("%s %s (%s): %s in %.2f s", stage.name, ctx.model.name, inv.hash, outcome.status.value,
                 outcome.duration_s)
        events.stage_finished(ctx.result, ctx.model, inv, stage.name)
        return True

    def _previous(self, build_name: str) -> BuildRecord | None:
        """The record an earlier run saved, or ``None`` (none, or unreadable: then it is rewritten)."""
        try:
            return self.cache.load(build_name)
        except TkError as e:
            from turnkey_like.cache import RECORD_FILE

            if (self.cache.root / build_name / RECORD_FILE).exists():
                log.warning("%s: earlier record not readable (%s); it will be rewritten", build_name, e.message)
            return None

    def save(self, record: BuildRecord) -> None:
        """Write ``record`` to this run's cache (``updated_at`` stamped); the only writer of records.

        Raises:
            CacheError: the cache cannot be written (read-only, full disk, a planted symlink).
        """
        record.updated_at = now_utc()
        self.cache.save(record)


def _without_nesting(stage: StageResult | None) -> StageResult | None:
    """``stage`` as a :attr:`StageResult.kept` value: its own success, else the success it kept."""
    if stage is None:
        return None
    if stage.status != Status.SUCCESSFUL and stage.kept is not None:
        return msgspec.structs.replace(stage.kept, kept=None)
    return msgspec.structs.replace(stage, kept=None)


def _copy_stages(source: Invocation, target: Invocation) -> None:
    """Copy the stage outcomes (and build name) of a record's invocation onto the mirrored one."""
    target.build_name = source.build_name
    for name, stage in source.stages().items():
        setattr(target, name, stage)


def _script_line(fault_dump: str | None, script: str) -> str:
    """`` at line N`` of ``script`` in a faulthandler dump (innermost frame of the script), else ``""``."""
    import re

    if not fault_dump:
        return ""
    lines = re.findall(r'File "([^"]+)", line (\d+)', fault_dump)
    for filename, line in lines:  # faulthandler lists the innermost frame first
        if os.path.abspath(filename) == os.path.abspath(script):
            return f" at line {line}"
    return ""


def _seconds_since(iso: str) -> float | None:
    from datetime import datetime, timezone

    try:
        return max(0.0, (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds())
    except ValueError:
        return None
