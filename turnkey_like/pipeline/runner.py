"""The pipeline itself (:class:`Pipeline`): runs inputs through the stages, each input in a child of
its own, saving every step to the cache."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
import time
import traceback
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from turnkey_like import __version__
from turnkey_like.collector import existing_frozen
from turnkey_like.errors import SelectionError, TkError, one_line
from turnkey_like.events import Listener, RunSummary, interrupted_error
from turnkey_like.inputs import InputSpec
from turnkey_like.pipeline.channel import Events, InputMirror, LocalEvents, PipeEvents
from turnkey_like.pipeline.failures import apply_selection, input_error
from turnkey_like.pipeline.options import RunOptions
from turnkey_like.pipeline.reuse import adopt_cached
from turnkey_like.pipeline.stages import (
    KEPT_REASON,
    BenchmarkStage,
    BuildStage,
    CharacterizeStage,
    InvocationContext,
    Stage,
    settle,
    skip_unselected,
    without_nesting,
)
from turnkey_like.records import (
    BuildRecord,
    Crash,
    Done,
    InputFailed,
    Invocation,
    ModelInfo,
    ScriptResult,
    StageResult,
    Status,
    now_utc,
)

if TYPE_CHECKING:
    from turnkey_like.cache import Cache
    from turnkey_like.discovery import LiveInvocation
    from turnkey_like.records import HardwareProfile

log = logging.getLogger(__name__)


def preload_for_children(dynamo: bool = True, requests: list | None = None) -> None:
    """Import, once in this process, what every input's forked child would otherwise import again.

    torch itself; with ``dynamo``, ``torch._dynamo``, which ``torch.export`` (the ONNX build,
    ``--trace``), fake tensors and transformers import on first use (1.0-1.6 s on this 2-core machine, measured
    with ``python -c "import torch; import torch._dynamo"``); and the library of each model source
    with two or more of the named-model ``requests`` (:func:`turnkey_like.zoo.preload`:
    transformers' auto classes and the model's modeling module, about 1.8 s). Imported in a child,
    that cost is paid again by every input; imported here, the children inherit it through
    ``fork``. A run that only characterizes scripts on real tensors needs no Dynamo (the counter
    imports nothing of it: ``characterize.counter``), so it does not wait for it before its first
    script starts. Nothing is run here: torch kernels stay out of this process (see
    :mod:`turnkey_like.launcher`).
    """
    import torch  # noqa: F401

    if dynamo:
        import torch._dynamo  # noqa: F401
    if requests:
        from turnkey_like import zoo

        zoo.preload(requests)


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
        self.current: ScriptResult | None = None
        #: ``stage_guard(stage_name)`` is entered around each stage's work in the process doing it:
        #: none by default; corpus runs on Dask set a host-wide lock so a benchmark has its host alone.
        self.stage_guard = lambda stage_name: contextlib.nullcontext()

    @cached_property
    def profile(self) -> HardwareProfile:
        """The hardware profile for the roofline, resolved once per run (``local`` is measured once
        per machine and kept in this run's cache).

        With isolation, ``local`` is resolved in a child: measuring it runs multi-threaded torch
        kernels, and a process that has done so cannot fork a script child that uses them. A
        datasheet profile (``a100``) is a table look-up, done here (a child cost 30-60 ms).
        """
        from turnkey_like.characterize.hardware import BUILTIN, get_profile

        hardware = self.options.hardware
        if not self.options.isolate or (hardware is not None and hardware.lower() in BUILTIN):
            return get_profile(hardware, cache_dir=self.options.cache_dir)
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

        The first Ctrl-C (or SIGTERM, raised as ``events.Terminated`` by the CLI) stops the stage
        running (its earlier outcome, if any, is kept; else it is recorded ``interrupted``) and
        returns what was done, with ``interrupted`` (and ``terminated``) set.
        """
        summary = RunSummary(run_id=self.run_id)
        self.listener.run_started(specs)
        self.current = None
        self.options = self.options.with_memory_default()  # one input at a time
        try:
            if adopt_cached(self, specs, summary):  # every input a named model characterized before (reuse.py)
                return summary
            if self.options.isolate and any(not s.is_onnx for s in specs):
                options = self.options  # transformers (named models) imports Dynamo as it loads
                named = [s.model for s in specs if s.model is not None]
                preload_for_children(dynamo=not options.analyze_only or options.trace or options.no_weights
                                     or bool(named), requests=named)
                if self.options.characterize:
                    self.profile  # noqa: B018 - resolved before the first fork, so children inherit it
            # torch's objects (imported above) are left out of the collector's passes while each
            # input's records are made, mirrored and kept (turnkey_like.collector)
            with existing_frozen():
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
                    self.current = None
                    self.listener.script_finished(result, error)
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (events.Terminated)
            summary.stopped_by(stop)
            if self.current is not None:
                summary.results.append(self.current)
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
        return self._run_input_here(spec, LocalEvents(self))

    def _run_input_here(self, spec: InputSpec, events: Events) -> tuple[ScriptResult, SelectionError | None]:
        """The work of one input, in the process that calls it (the input's child, or tk itself)."""
        if spec.is_onnx:
            return self._run_onnx(spec, events)
        from turnkey_like.discovery import discover
        from turnkey_like.zoo.named import discover_named

        found = events.found_call
        if spec.model is not None:
            discovery = discover_named(spec, max_depth=self.options.max_depth, on_found=found)
        else:
            discovery = discover(spec, max_depth=self.options.max_depth, script_args=self.options.script_args,
                                 on_found=found)
        if self.options.isolate:  # this is the input's own child: what the script left running ends here
            from turnkey_like.launcher import script_ended

            left = script_ended()
            if left:
                log.info("%s: ended %d process(es) the script left running", spec.path, left)
        result = discovery.result
        result.entry = spec.entry or None
        selection_error = apply_selection(result)
        self.name_builds(result)
        events.discovered(result)
        for model, inv in result.invocations():
            if inv.selected:
                self.run_invocation(result, model, inv, discovery.live.get(inv.hash), events=events)
        discovery.live.clear()
        return result, selection_error

    def _run_onnx(self, spec: InputSpec, events: Events) -> tuple[ScriptResult, SelectionError | None]:
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
        self.name_builds(result)
        events.found_call(result, (model.model_hash,), model, inv)
        events.discovered(result)
        self.run_invocation(result, model, inv, None, onnx_path=spec.path, events=events)
        return result, selection_error

    # -- one input in a child process ----------------------------------------------------------
    def child_body(self, send, spec: InputSpec) -> None:
        """What an input's child does: the work, sending every event with ``send(message)`` (see
        :meth:`consume`), then the ``atexit`` handlers the script registered (as Python runs them at
        exit: the script's process ends here), then ``Done`` (or the input's error)."""
        from turnkey_like.launcher import limit_children_memory, run_exit_handlers

        limit_children_memory(self.options.memory_limit_bytes)  # each stage's child, under the same cap
        events = PipeEvents(send)
        try:
            with existing_frozen():  # collections over torch's objects while the records are made and sent
                result, selection = self._run_input_here(spec, events)
            last = Done(result=result.without_invocations(), error=selection.message if selection else None,
                        hint=selection.hint if selection else None)
        except TkError as e:
            last = InputFailed(error=e.message, hint=e.hint)
        except BaseException as e:  # noqa: BLE001 - reported to the parent as this input's error
            last = Crash(error=one_line(e), stack="".join(traceback.format_exception(e)[-6:]))
        if spec.model is None and not spec.is_onnx:  # the handlers see the script's sys.argv, as at its exit
            with contextlib.suppress(ValueError):
                sys.argv = [str(spec.path), *shlex.split(self.options.script_args or "")]
        run_exit_handlers()
        send(last)

    def _run_input_in_child(self, spec: InputSpec) -> tuple[ScriptResult, TkError | None]:
        """Run one input in a :class:`~turnkey_like.launcher.StreamingChild` on this machine."""
        from turnkey_like.launcher import StreamingChild

        return self.consume(spec, StreamingChild(self.child_body, spec, memory_limit=self.options.memory_limit_bytes))

    def consume(self, spec: InputSpec, channel) -> tuple[ScriptResult, TkError | None]:
        """Mirror what an input's child sends: write its records to the cache, tell the listener
        (:class:`~turnkey_like.pipeline.channel.InputMirror`).

        ``channel`` is where the child's messages arrive: a
        :class:`~turnkey_like.launcher.StreamingChild` here, or a relay from a Dask worker running
        one. It is a context manager with ``receive(timeout_s)`` (raising
        :class:`~turnkey_like.launcher.ChildEnded` when the child ended early or timed out),
        ``kill()`` and ``wait()``.

        The child's messages (:data:`~turnkey_like.records.Message`): ``FoundCall``/``Discovered`` (the
        script's record so far), ``Save`` (a build record: written to the cache here),
        ``StageStarted``/``StageFinished``, then ``Done`` (or ``InputFailed``/``Crash``, the input's
        problem or tk's own failure). Discovery must end within ``options.timeout_s``; after it, a
        child silent for longer than the stage limits plus
        :data:`~turnkey_like.pipeline.channel.SILENCE_GRACE_S` is taken for hung.

        Returns the input's record and the error the run gave it (see :meth:`run_input`): a child
        that ended early is the script's failure (record's ``error``, with the signal's stack as
        its ``traceback``), unless the channel gave a hint (``ChildEnded.hint``: tk failed, a worker
        could not run it), which the returned error then carries.
        """
        return InputMirror(self, spec).consume(channel)

    # -- one invocation ------------------------------------------------------------------------
    def run_invocation(self, result: ScriptResult, model: ModelInfo, inv: Invocation,
                       live: LiveInvocation | None, onnx_path: Path | None = None,
                       events: Events | None = None) -> None:
        """Run every stage for one invocation, saving its record before and after each stage.

        A stage that does not run keeps the final outcome an earlier run saved (marked
        :data:`KEPT_REASON`): an ``--analyze-only`` rerun never erases a benchmark measured before.
        """
        from turnkey_like.system import system_record

        events = events or LocalEvents(self)
        self.name_builds(result, [inv])
        if not inv.selected:
            return
        previous = self._previous(inv.build_name)
        record = BuildRecord(
            build_name=inv.build_name, script=result.path, labels=result.labels, model=model.summary(),
            invocation=inv, system=system_record(), tk_version=__version__,
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

    def name_builds(self, result: ScriptResult, invocations: list[Invocation] | None = None) -> None:
        """Give each invocation of ``result`` (or each of ``invocations``) its cache folder
        (``build_name``), and mark those the ``::HASH`` selection left out skipped."""
        stem = None
        if result.model_request is not None:
            from turnkey_like.zoo import stem as named_stem

            stem = named_stem(result.model_request)
        name = self.cache.build_namer(result.path, result.labels, stem=stem)
        for inv in invocations if invocations is not None else (inv for _model, inv in result.invocations()):
            inv.build_name = name(inv.hash)
            if not inv.selected:
                skip_unselected(inv)

    def _run_stage(self, stage: Stage, ctx: InvocationContext, record: BuildRecord, events: Events) -> bool:
        """Run (or skip, or reuse) one stage; return True when the record was saved after it."""
        inv = ctx.inv
        # a call every stage would replay but cannot (its inputs were a generator, used up by the script)
        reason = (ctx.live.replay_problem if ctx.live is not None else None) or stage.skip_reason(ctx)
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
                                             run_id=self.run_id, kept=without_nesting(earlier)))
        events.save(record)
        log.info("%s %s (%s): started", stage.name, ctx.model.name, inv.hash)
        t0 = time.perf_counter()
        try:
            with self.stage_guard(stage.name):
                outcome = stage.run(ctx)
            if self.options.isolate:  # the input's child: what the stage's model left running ends here
                from turnkey_like.launcher import end_leftover_processes

                end_leftover_processes()
        except KeyboardInterrupt as stop:
            # Ctrl-C never erases what an earlier run measured: keep its outcome, else say interrupted.
            setattr(inv, stage.name, settle(earlier, StageResult(
                status=Status.INTERRUPTED, started_at=started, duration_s=time.perf_counter() - t0,
                run_id=self.run_id, error=interrupted_error(stop))))
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

    def save(self, record: BuildRecord, *, valid: bool = False) -> None:
        """Write ``record`` to this run's cache (``updated_at`` stamped); the only writer of records.
        ``valid``: as for :meth:`turnkey_like.cache.Cache.save`.

        Raises:
            CacheError: the cache cannot be written (read-only, full disk, a planted symlink).
        """
        record.updated_at = now_utc()
        self.cache.save(record, valid=valid)

