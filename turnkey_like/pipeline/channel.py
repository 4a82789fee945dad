"""Both ends of an input's channel: where a running input's events go (:class:`Events`: this
process, or messages to the parent), and the parent's mirror of what its child sends
(:class:`InputMirror`, behind ``Pipeline.consume``).

The messages are the one channel protocol (:data:`turnkey_like.records.Message`): ``FoundCall``
(each new invocation, streamed), ``Discovered`` (the script's record without its invocations, and
each one's tally), ``Save`` (a build record), ``StageStarted`` and ``StageFinished``, then ``Done``
(the record without its invocations again), or ``InputFailed`` / ``Crash``: no message holds every
invocation, so what one costs does not grow with a sweep of thousands. A channel is a local
:class:`~turnkey_like.launcher.StreamingChild` or the relay of a Dask task
(``turnkey_like.corpus.channel.DaskChannel``); the mirror reads both alike.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

import msgspec

from turnkey_like.errors import SelectionError, TkError
from turnkey_like.events import interrupted_error
from turnkey_like.pipeline.failures import run_failure, script_line
from turnkey_like.pipeline.stages import PipelineRun, settle, skip_unselected
from turnkey_like.records import (
    BuildRecord,
    Crash,
    Discovered,
    Done,
    FoundCall,
    InputFailed,
    Invocation,
    Message,
    ModelInfo,
    Save,
    ScriptResult,
    StageFinished,
    StageResult,
    StageStarted,
    Status,
    Tally,
)

if TYPE_CHECKING:
    from turnkey_like.inputs import InputSpec
    from turnkey_like.launcher import ChildEnded

log = logging.getLogger(__name__)

#: seconds a child may stay silent beyond the stage time limit before tk takes it for hung
SILENCE_GRACE_S = 60.0


class Events:
    """Where a running input's progress and records go (the parent's pipeline, or a pipe to it)."""

    def found_call(self, result: ScriptResult, path: tuple[str, ...], model: ModelInfo | None,
                   inv: Invocation) -> None:
        """Discovery found a new invocation (see :func:`turnkey_like.discovery.discover`'s ``on_found``)."""

    def discovered(self, result: ScriptResult) -> None:
        """Discovery ended: the script's whole record, selection applied."""

    def save(self, record: BuildRecord) -> None: ...

    def stage_started(self, result: ScriptResult, model: ModelInfo, inv: Invocation, stage: str) -> None: ...

    def stage_finished(self, result: ScriptResult, model: ModelInfo, inv: Invocation, stage: str) -> None: ...


class LocalEvents(Events):
    """In-process: save to the cache and tell the listener directly."""

    def __init__(self, pipeline: PipelineRun):
        self.pipeline = pipeline

    def found_call(self, result, path, model, inv):
        self.pipeline.current = result

    def discovered(self, result):
        self.pipeline.current = result

    def save(self, record):
        self.pipeline.save(record)

    def stage_started(self, result, model, inv, stage):
        self.pipeline.listener.stage_started(result, model, inv, stage)

    def stage_finished(self, result, model, inv, stage):
        self.pipeline.listener.stage_finished(result, model, inv, stage)


class PipeEvents(Events):
    """In an input's child process: every event becomes a message to the parent, sent at once."""

    def __init__(self, send: Callable[[Message], None]):
        self.send = send

    def found_call(self, result, path, model, inv):
        if model is not None:  # its invocations and children follow in their own messages
            model = msgspec.structs.replace(model, invocations=[], children=[])
        self.send(FoundCall(path=list(path), model=model, invocation=inv))

    def discovered(self, result):
        tallies = [Tally(inv.hash, inv.executed, inv.time_s, inv.selected, inv.build_name)
                   for _model, inv in result.invocations()]
        self.send(Discovered(result=result.without_invocations(), tallies=tallies))

    def save(self, record):
        self.send(Save(record=record))

    def stage_started(self, result, model, inv, stage):
        self.send(StageStarted(invocation=inv.hash, stage=stage))

    def stage_finished(self, result, model, inv, stage):
        self.send(StageFinished(invocation=inv.hash, stage=stage))


class InputMirror:
    """The parent's copy of one input while its child runs: it writes the records the child sends to
    the cache (the pipeline's ``save``, the only writer),
    tells the listener, and turns a child that ended early into the input's one-line error.

    Args:
        pipeline: the run (its options, cache, listener and run id).
        spec: the input.
    """

    def __init__(self, pipeline: PipelineRun, spec: InputSpec):
        self.pipeline, self.spec = pipeline, spec
        self.result = ScriptResult(path=str(spec.path), labels=spec.labels, selectors=list(spec.selectors),
                                   entry=spec.entry or None, status=Status.RUNNING, model_request=spec.model)
        pipeline.current = self.result
        self.invocations: dict[str, tuple[ModelInfo, Invocation]] = {}
        self.models: dict[tuple[str, ...], ModelInfo] = {}  # streamed models by their path of model hashes
        self.saved: dict[str, BuildRecord] = {}
        self.running: tuple[str, str] | None = None  # (invocation hash, stage) of the stage in progress
        self.save_error: TkError | None = None  # the first record that could not be written
        self.discovering = True

    def consume(self, channel) -> tuple[ScriptResult, TkError | None]:
        """Read ``channel`` until the input's last message or its end; see ``Pipeline.consume``."""
        from turnkey_like.launcher import ChildEnded

        options = self.pipeline.options
        started = time.monotonic()
        silence_limit = max(options.timeout_s, options.build.timeout_s, options.benchmark.timeout_s) + SILENCE_GRACE_S
        with channel as child:
            try:
                while True:
                    limit = (options.timeout_s - (time.monotonic() - started)) if self.discovering else silence_limit
                    outcome = self._take(child.receive(max(limit, 0.001)), child)
                    if outcome is not None:
                        return outcome
            except ChildEnded as ended:
                phase = "discovery" if self.discovering else "stage" if self.running else "run"
                self._child_failed(ended, phase)
                # the channel's own hint (tk failed, a worker could not run it), else the script's failure
                return self.result, None if ended.hint is None else run_failure(self.result, ended.hint)
            except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM in tk: what was sent stays
                child.kill()
                if self.running is not None:
                    self._end_running(StageResult(status=Status.INTERRUPTED, error=interrupted_error(stop),
                                                  run_id=self.pipeline.run_id))
                if self.discovering:
                    self.result.status, self.result.error = Status.INTERRUPTED, interrupted_error(stop)
                raise

    def _take(self, message: Message, child) -> tuple[ScriptResult, TkError | None] | None:
        """Act on one message; return the input's outcome when it was the last."""
        from turnkey_like.launcher import TK_BUG_HINT, ChildEnded

        match message:
            case FoundCall(path=path, model=model, invocation=inv):
                self._add_call(tuple(path), model, inv)
            case Discovered(result=result, tallies=tallies):
                self._adopt(result, tallies)
                self.discovering = False
            case Save(record=record):
                self._save(record)
            case StageStarted(invocation=inv_hash, stage=stage):
                model, inv = self.invocations[inv_hash]
                self.running = (inv_hash, stage)
                self.pipeline.listener.stage_started(self.result, model, inv, stage)
            case StageFinished(invocation=inv_hash, stage=stage):
                model, inv = self.invocations[inv_hash]
                self.running = None
                self.pipeline.listener.stage_finished(self.result, model, inv, stage)
            case Done(result=result, error=error, hint=hint):
                child.wait()
                self._adopt(result)
                return result, (SelectionError(error, hint=hint) if error is not None else None) or self.save_error
            case InputFailed(error=error, hint=hint):  # a problem with this input (e.g. an unreadable .onnx file)
                child.wait()
                self.result.status, self.result.error = Status.ERROR, error
                return self.result, TkError(error, hint=hint)
            case Crash(error=error, stack=stack):
                raise ChildEnded(Status.ERROR, f"tk failed: {error}", stack, TK_BUG_HINT)
        return None

    def _add_call(self, path: tuple[str, ...], model: ModelInfo | None, inv: Invocation) -> None:
        """Add one streamed invocation (and its model, on its first) to the mirrored record."""
        if model is not None:
            parent = self.models.get(path[:-1])
            (parent.children if parent is not None else self.result.models).append(model)
            self.models[path] = model
        owner = self.models.get(path)
        if owner is None:  # a model never announced: a child of another version; keep what is known
            return
        owner.invocations.append(inv)
        self.invocations[inv.hash] = (owner, inv)

    def _adopt(self, result: ScriptResult, tallies: list[Tally] | None = None) -> None:
        """Take the record the child sent (without its invocations) as the input's, each model holding
        the invocations mirrored so far; with ``tallies`` (``Discovered``), bring those up to date.

        Raises:
            ChildEnded: the child's models or invocations are not those it streamed (a bug in tk).
        """
        from turnkey_like.launcher import TK_BUG_HINT, ChildEnded

        models = list(result.walk_models())
        mirrored = list(self.result.walk_models())
        streamed = [inv for model in mirrored for inv in model.invocations]
        if ([m.model_hash for m in models] != [m.model_hash for m in mirrored]
                or (tallies is not None and [t.hash for t in tallies] != [inv.hash for inv in streamed])):
            raise ChildEnded(Status.ERROR, "tk failed: the child's record holds other models or invocations "
                                           "than it streamed", hint=TK_BUG_HINT)
        for model, earlier in zip(models, mirrored):
            model.invocations = earlier.invocations
        for inv, tally in zip(streamed, tallies or ()):
            inv.executed, inv.time_s, inv.selected, inv.build_name = (tally.executed, tally.time_s, tally.selected,
                                                                       tally.build_name)
            if not inv.selected:
                skip_unselected(inv)
        result.entry = self.spec.entry or None
        result.model_request = result.model_request or self.spec.model
        self.result = self.pipeline.current = result
        self.invocations.clear()
        for model, inv in result.invocations():
            self.invocations[inv.hash] = (model, inv)

    def _save(self, record: BuildRecord) -> None:
        self.saved[record.invocation.hash] = record
        try:
            self.pipeline.save(record, valid=True)  # read back by the typed decoder just now
        except TkError as e:  # e.g. a full disk: the run goes on, the input reports it
            self.save_error = self.save_error or e
        _model, inv = self.invocations.get(record.invocation.hash, (None, None))
        if inv is not None:
            copy_stages(record.invocation, inv)

    def _end_running(self, outcome: StageResult) -> None:
        """Record how the stage that was running in a dead or killed child ended, keeping earlier results."""
        inv_hash, stage_name = self.running
        record = self.saved.get(inv_hash)
        if record is None:
            return
        current = getattr(record.invocation, stage_name)
        outcome.started_at = current.started_at
        outcome.run_id = self.pipeline.run_id
        if current.started_at:
            outcome.duration_s = _seconds_since(current.started_at)
        setattr(record.invocation, stage_name, settle(current.kept, outcome))
        try:
            self.pipeline.save(record)
        except TkError as e:
            log.warning("%s: %s", record.build_name, e.message)
        model, inv = self.invocations.get(inv_hash, (None, None))
        if inv is not None:
            copy_stages(record.invocation, inv)
            self.pipeline.listener.stage_finished(self.pipeline.current, model, inv, stage_name)

    def _child_failed(self, ended: ChildEnded, phase: str) -> None:
        """Turn a child that ended early into this input's one-line error; keep all it sent."""
        options = self.pipeline.options
        what = {"discovery": "the script", "stage": "a stage", "run": "the input's process"}[phase]
        mirror = self.result
        mirror.status = Status.OUT_OF_MEMORY if ended.status == Status.OUT_OF_MEMORY else Status.ERROR
        if phase == "discovery" and ended.status == Status.TIMEOUT:
            mirror.error = (f"the script ran longer than --timeout {options.timeout_s:g} s "
                            "(its process was killed)")
        elif ended.hint is not None:  # not the script's end (tk failed, a worker could not run it)
            mirror.error = ended.error
        else:
            mirror.error = f"{what}: {ended.error}{script_line(ended.stack, mirror.path)}"
        if ended.stack:  # the crashing thread's stack down to the script's frames (tk's own cut)
            kept = []
            for line in ended.stack.splitlines():
                if "<frozen runpy>" in line or line.startswith("Extension modules"):
                    break
                kept.append(line)
            mirror.traceback = "\n".join(kept).strip()
        if self.running is not None:
            status = ended.status if ended.status in (Status.TIMEOUT, Status.OUT_OF_MEMORY) else Status.KILLED
            self._end_running(StageResult(status=status, error=ended.error))
        not_requested = {"characterization": None if options.characterize else "not requested",
                         "build": "--analyze-only" if options.analyze_only else None,
                         "benchmark": "--analyze-only" if options.analyze_only else
                         "--build-only" if options.build_only else None}
        for _model, inv in mirror.invocations():
            for name, stage in inv.stages().items():
                if stage.status in (Status.NOT_STARTED, Status.RUNNING):
                    stage.status = Status.SKIPPED
                    stage.reason = not_requested[name] or f"not run: {what} ended the input's process"


def copy_stages(source: Invocation, target: Invocation) -> None:
    """Copy the stage outcomes (and build name) of a record's invocation onto the mirrored one."""
    target.build_name = source.build_name
    for name, stage in source.stages().items():
        setattr(target, name, stage)


def _seconds_since(iso: str) -> float | None:
    from datetime import datetime, timezone

    try:
        return max(0.0, (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds())
    except ValueError:
        return None
