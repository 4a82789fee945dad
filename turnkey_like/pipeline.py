"""The one pipeline every command runs: inputs → discovery → characterize → build → benchmark → cache.

Each input is handled on its own: its script runs (discovery), its invocations are selected, then every
selected invocation goes through the stages in order, and its :class:`~turnkey_like.records.BuildRecord`
is saved to the cache before and after each stage, so a crash or kill loses nothing already measured.
One bad script, model or stage never stops the others; failures are recorded and counted, and the
command exits non-zero when there were any.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from turnkey_like import __version__
from turnkey_like.errors import ScriptError, SelectionError, TkError
from turnkey_like.inputs import InputSpec
from turnkey_like.records import (
    BuildRecord,
    Invocation,
    ModelInfo,
    ScriptResult,
    StageResult,
    Status,
)

STAGES = ("characterization", "build", "benchmark")
#: Outcomes worth keeping in the record when a later run does not redo the stage.
FINAL_STATUSES = (Status.SUCCESSFUL, Status.ERROR, Status.TIMEOUT, Status.KILLED)
KEPT_REASON = "kept from an earlier run"


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
        hardware: hardware profile name for the roofline (``None``: this machine).
        no_weights: characterize on meta tensors (no real weights or compute).
        build: ``turnkey_like.build.BuildOptions`` (``None``: defaults).
        benchmark: ``turnkey_like.runtimes.BenchmarkOptions`` (``None``: defaults).
        lean_cache: delete ONNX files and other large artifacts once a build is benchmarked.
        input_shapes: ``--input-shape`` overrides for ``.onnx`` inputs, name → shape.
    """

    analyze_only: bool = False
    build_only: bool = False
    characterize: bool = True
    max_depth: int = 0
    script_args: str = ""
    cache_dir: str | None = None
    hardware: str | None = None
    no_weights: bool = False
    build: Any = None
    benchmark: Any = None
    lean_cache: bool = False
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass
class RunSummary:
    """What a pipeline run produced: one :class:`ScriptResult` per input, and the failures."""

    results: list[ScriptResult] = field(default_factory=list)
    errors: list[TkError] = field(default_factory=list)  # input/selection errors, one per bad input

    @property
    def failed(self) -> bool:
        """True when any input, script or stage failed (the command then exits non-zero)."""
        if self.errors:
            return True
        for result in self.results:
            if result.status == Status.ERROR:
                return True
            for _model, inv in result.invocations():
                if any(s.status in (Status.ERROR, Status.TIMEOUT, Status.KILLED) for s in inv.stages().values()):
                    return True
        return False


class Listener:
    """Receives pipeline events; the CLI's renderer subclasses it. Every method is optional."""

    def script_started(self, spec: InputSpec) -> None: ...

    def stage_started(self, result: ScriptResult, model: ModelInfo, inv: Invocation, stage: str) -> None: ...

    def script_finished(self, result: ScriptResult, error: TkError | None) -> None: ...


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
    name = os.path.basename(result.path)
    listing = "; ".join(found) if found else "none (the script called no model)"
    return SelectionError(
        f"{name}::{','.join(missing)}: no model or invocation has this hash",
        hint=f"hashes found in {name}: {listing}",
    )


def script_failure(result: ScriptResult, script_args: str = "") -> ScriptError:
    """The one-line error (with a hint saying what to do) for a script that failed."""
    name = os.path.basename(result.path)
    error = result.error or "failed"
    if error.startswith("syntax error"):
        hint = f"fix the syntax error in {name}, then rerun"
    elif result.exit_code == 2 and script_args:
        hint = f"{name} rejected --script-args {script_args!r}: pass the arguments it accepts (python {name} --help)"
    elif result.exit_code is not None:
        hint = f"{name} called sys.exit({result.exit_code}); models it ran before exiting are reported above"
    else:
        hint = f"models {name} ran before the error are reported above; run `python {name}` to debug it"
    return ScriptError(f"{name}: {error}", hint=hint)


class Pipeline:
    """Runs inputs through the stages, saving every step to the cache.

    Args:
        options: :class:`RunOptions`.
        listener: receives progress events (the CLI prints from them).
    """

    def __init__(self, options: RunOptions, listener: Listener | None = None):
        from turnkey_like.cache import Cache

        self.options = options
        self.listener = listener or Listener()
        self.cache = Cache(options.cache_dir)

    # -- inputs -------------------------------------------------------------------------------
    def run(self, specs: list[InputSpec]) -> RunSummary:
        """Run every input in order; never raises for a bad input, script, model or stage."""
        summary = RunSummary()
        for spec in specs:
            self.listener.script_started(spec)
            try:
                result, error = self.run_input(spec)
            except TkError as e:  # a problem with this input only (e.g. an unreadable ONNX file)
                result = ScriptResult(path=str(spec.path), labels=spec.labels, selectors=spec.selectors,
                                      status=Status.ERROR, error=e.message)
                error = e
            if error is None and result.status == Status.ERROR:
                error = script_failure(result, self.options.script_args)
            if error is not None:
                summary.errors.append(error)
            summary.results.append(result)
            self.listener.script_finished(result, error)
        return summary

    def run_input(self, spec: InputSpec) -> tuple[ScriptResult, SelectionError | None]:
        """Discover (or describe, for ``.onnx``) one input, then run its selected invocations.

        Returns the input's record and the selection error for ``::HASH`` values that matched nothing.
        """
        if spec.is_onnx:
            return self._run_onnx(spec)
        from turnkey_like.discovery import discover

        discovery = discover(spec, max_depth=self.options.max_depth, script_args=self.options.script_args)
        result = discovery.result
        selection_error = apply_selection(result)
        for model, inv in result.invocations():
            live = discovery.live.get(inv.hash)
            self._run_invocation(result, model, inv, live)
        discovery.live.clear()
        return result, selection_error

    def _run_onnx(self, spec: InputSpec) -> tuple[ScriptResult, SelectionError | None]:
        from turnkey_like.onnx_file import describe_onnx

        start = time.perf_counter()
        facts = describe_onnx(spec.path, self.options.input_shapes or None)
        model = ModelInfo(
            name=spec.path.stem, class_name="ONNX model", qualified_class="onnx.ModelProto",
            model_hash=facts.model_hash, model_type="onnx", source_file=str(spec.path), source_line=None,
            location_kind="file", params=facts.params, param_bytes=facts.param_bytes,
        )
        from turnkey_like.hashing import invocation_hash

        inv_hash, note = invocation_hash(facts.model_hash, None, facts.inputs)
        inv = Invocation(hash=inv_hash, parent_hash=None, signature=facts.inputs, executed=0, hash_note=note)
        model.invocations.append(inv)
        result = ScriptResult(path=str(spec.path), labels=spec.labels, selectors=spec.selectors,
                              status=Status.SUCCESSFUL, models=[model], duration_s=time.perf_counter() - start)
        selection_error = apply_selection(result)
        self._run_invocation(result, model, inv, None, onnx_path=spec.path)
        return result, selection_error

    # -- one invocation ------------------------------------------------------------------------
    def _run_invocation(self, result: ScriptResult, model: ModelInfo, inv: Invocation, live, onnx_path=None) -> None:
        from turnkey_like.system import system_info

        build_name = self.cache.build_name(result.path, result.labels, inv.hash)
        inv.build_name = build_name
        previous = self._previous(build_name)
        if not inv.selected:
            for name in STAGES:
                inv.stages()[name].status = Status.SKIPPED
                inv.stages()[name].reason = "not selected"
            return
        record = BuildRecord(
            build_name=build_name, script=result.path, labels=result.labels, model=model.summary(),
            invocation=inv, system=system_info(), tk_version=__version__,
            created_at=(previous.created_at if previous else None) or _now(),
        )
        # Results of earlier runs stay in the record until this run redoes that stage: an
        # --analyze-only rerun must not erase a benchmark measured before.
        if previous is not None:
            for name in STAGES:
                earlier = previous.invocation.stages()[name]
                if earlier.status in FINAL_STATUSES:
                    setattr(inv, name, earlier)
        build_dir = self.cache.build_dir(build_name)
        opts = self.options
        model_obj, args, kwargs = self._live_inputs(live)
        plan: list[tuple[str, Callable[[], StageResult] | None, str | None]] = []
        if onnx_path is not None:
            plan.append(("characterization", None, "ONNX input: characterization needs the PyTorch model"))
        elif not opts.characterize:
            plan.append(("characterization", None, "not requested"))
        else:
            plan.append(("characterization", lambda: self._characterize(model_obj, args, kwargs, live), None))
        if opts.analyze_only:
            plan.append(("build", None, "--analyze-only"))
            plan.append(("benchmark", None, "--analyze-only"))
        else:
            plan.append(("build", lambda: self._build(model_obj, args, kwargs, build_dir, previous, onnx_path), None))
            if opts.build_only:
                plan.append(("benchmark", None, "--build-only"))
            else:
                plan.append(("benchmark", lambda: self._benchmark(model_obj, args, kwargs, inv, build_dir), None))
        # The record is saved when a stage starts (as `running`) and when it ends; if no stage runs
        # (everything reused or skipped), once at the end.
        unsaved = True
        for stage_name, run_stage, skip_reason in plan:
            if run_stage is None:
                if getattr(inv, stage_name).status in FINAL_STATUSES:
                    getattr(inv, stage_name).reason = KEPT_REASON
                else:
                    setattr(inv, stage_name, StageResult(status=Status.SKIPPED, reason=skip_reason))
                unsaved = True
                continue
            if stage_name == "benchmark" and inv.build.status != Status.SUCCESSFUL:
                setattr(inv, stage_name, StageResult(status=Status.SKIPPED, reason="build did not succeed"))
                unsaved = True
                continue
            if stage_name == "characterization":
                reused = self._reusable_characterization(previous)
                if reused is not None:
                    inv.characterization = reused
                    unsaved = True
                    continue
            self.listener.stage_started(result, model, inv, stage_name)
            setattr(inv, stage_name, StageResult(status=Status.RUNNING, started_at=_now(), pid=os.getpid()))
            self._save(record)
            start = time.perf_counter()
            try:
                outcome = run_stage()
            except TkError:
                raise  # an option the user must fix (e.g. --device cuda without CUDA): stop the run
            except Exception as e:  # noqa: BLE001 - one model's failure never stops the others
                outcome = StageResult(status=Status.ERROR, error=_one_line(e),
                                      log_excerpt="".join(traceback.format_exception(e)[-6:]))
            outcome.started_at = outcome.started_at or getattr(inv, stage_name).started_at
            if outcome.duration_s is None:
                outcome.duration_s = time.perf_counter() - start
            outcome.pid = None
            setattr(inv, stage_name, outcome)
            self._save(record)
            unsaved = False
        if unsaved:
            self._save(record)
        if opts.lean_cache and inv.benchmark.status == Status.SUCCESSFUL:
            self.cache.clean([build_name])

    def _previous(self, build_name: str) -> BuildRecord | None:
        try:
            return self.cache.load(build_name)
        except TkError:
            return None

    def _save(self, record: BuildRecord) -> None:
        record.updated_at = _now()
        self.cache.save(record)

    @staticmethod
    def _live_inputs(live):
        """The model and first-call inputs, with inference-mode tensors cloned into normal tensors."""
        if live is None:
            return None, (), {}
        import torch

        def normal(value):
            if isinstance(value, torch.Tensor) and value.is_inference():
                return value.clone()
            if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
                return type(value)(normal(v) for v in value)
            if isinstance(value, dict):
                return {k: normal(v) for k, v in value.items()}
            return value

        return live.model, normal(live.args), normal(live.kwargs)

    # -- the stages -------------------------------------------------------------------------------
    def _reusable_characterization(self, previous: BuildRecord | None) -> StageResult | None:
        """The cached characterization when it still applies (same tk, hardware and weights mode).

        Counts depend only on the architecture and input signature (both in the invocation hash),
        so a successful earlier result is reused unless ``--rebuild always`` asks for fresh work.
        """
        if previous is None or previous.tk_version != __version__ or self._rebuild_always():
            return None
        old = previous.invocation.characterization
        if old.status != Status.SUCCESSFUL or not old.result:
            return None
        hardware = old.result.get("hardware", {})
        name = hardware.get("name") if isinstance(hardware, dict) else hardware
        if name != self._hardware_name() or bool(old.result.get("no_weights")) != bool(self.options.no_weights):
            return None
        return StageResult(status=Status.SUCCESSFUL, duration_s=0.0, started_at=_now(), result=old.result,
                           reason="reused from cache")

    def _characterize(self, model, args, kwargs, live) -> StageResult:
        import torch

        from turnkey_like.characterize import characterize_call

        opts = self.options
        grad_context = torch.inference_mode() if (live and live.inference_mode) else torch.no_grad()
        with grad_context:
            char = characterize_call(model, args, kwargs, hardware=opts.hardware, no_weights=opts.no_weights)
        return StageResult(status=Status.SUCCESSFUL, result=char.to_dict())

    def _hardware_name(self) -> str:
        from turnkey_like.characterize.hardware import get_profile

        return get_profile(self.options.hardware).name

    def _rebuild_always(self) -> bool:
        return getattr(self.options.build, "rebuild", "if_needed") == "always"

    @staticmethod
    @contextlib.contextmanager
    def _eval_mode(model):
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

    def _build(self, model, args, kwargs, build_dir, previous: BuildRecord | None, onnx_path) -> StageResult:
        from turnkey_like.build import BuildOptions, build_invocation

        options = self.options.build or BuildOptions()
        prev = previous.invocation.build.result if previous is not None else None
        if onnx_path is not None:
            from turnkey_like.onnx_file import build_onnx_file

            return build_onnx_file(onnx_path, build_dir, options, input_shapes=self.options.input_shapes or None,
                                   previous=prev)
        with self._eval_mode(model):
            return build_invocation(model, args, kwargs, build_dir, options, previous=prev)

    def _benchmark(self, model, args, kwargs, inv: Invocation, build_dir) -> StageResult:
        from turnkey_like.runtimes import BenchmarkOptions, benchmark_invocation

        options = self.options.benchmark or BenchmarkOptions()
        with self._eval_mode(model):
            return benchmark_invocation(model, args, kwargs, inv.build.result, build_dir, options)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__

