"""One zoo model through the tracing ladder, in a child of its own (``tk discover-models``).

:func:`survey_model` does the work, in the model's child (:func:`survey_body`):

1. builds it with the one zoo loader (:func:`turnkey_like.zoo.load`: no weights; on ``meta`` where
   the loader decides the model is large);
2. runs it once: the dispatch-level count of :func:`turnkey_like.characterize.characterize_call`
   gives the parameter count and MACs (1 MAC = 2 FLOPs);
3. walks the tracing ladder of :func:`turnkey_like.tracing.trace_model` (``fx.symbolic_trace``,
   then ``torch.export`` non-strict, then strict), one ``trace_model`` call per rung, and stops at
   the first rung that works. Every failed rung is recorded with its exception type and first line
   (``errors.one_line``). With ``all_rungs`` (``--test-model``) the rungs after the one that worked
   are tried too. A model built on meta (above the loader's parameter threshold: 30 to 90 layers,
   whose ``torch.export`` takes one to several minutes) is traced as a shallow copy that keeps every
   distinct kind of layer in order (:func:`turnkey_like.zoo.shallow`: Llama 2 of 32 layers,
   Qwen3-Next 4 of 48, Jamba 9 of 32), recorded in ``traced_depth``; its parameters and MACs are
   still counted on the full model. ``full_depth`` (``--full-depth``) traces the model itself;
4. with ``export``, builds it to ONNX with the ONNX build's own child body
   (``turnkey_like.build.build_here``: export, check, optimize, compare with eager PyTorch on ONNX
   Runtime), into a temporary folder that is deleted afterwards. Models on ``meta`` have no weights
   to export: their export is ``skipped``.

The child is a :class:`~turnkey_like.launcher.StreamingChild`, as an input's child is, and speaks
the one channel protocol: before each step it sends its record so far and the step it starts
(``SurveyStep``), and at the end the whole record (``SurveyDone``). :func:`consume_survey` reads
that channel, whether the child runs here (:func:`survey_in_child`) or on a Dask worker (the corpus
runner, ``turnkey_like.corpus.survey``). A crash, hang or out-of-memory kill ends only that model's
child: its record is what the child had sent (parameters, MACs, the rungs that failed), with the
step that never ended. When the model had built, run and traced, a later step that never ends (a
rung tried with ``all_rungs``, the export) is that step's failure, not the model's: the record stays
``successful`` and names it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import msgspec

from turnkey_like.errors import one_line
from turnkey_like.launcher import TK_BUG_HINT, ChildEnded
from turnkey_like.records import (
    DEFAULT_TIMEOUT_S,
    LADDER,
    Crash,
    ExportOutcome,
    Message,
    ModelSurvey,
    Status,
    SurveyDone,
    SurveyStep,
    TraceAttempt,
    now_utc,
)
from turnkey_like.zoo.survey import constructor_of, family_of

#: Hardware profile the MAC count is computed against: a datasheet profile, so no child measures this
#: machine (the survey reports MACs and parameters, not roofline times).
PROFILE = "a100"


@dataclass(frozen=True)
class SurveyRequest:
    """One model to survey, and how (what a child, local or on a Dask worker, is given).

    Attributes:
        name, source, family: the model (see :func:`turnkey_like.zoo.load`) and its family.
        export: also export it to ONNX.
        all_rungs: try every rung of the ladder, not only up to the first that works.
        full_depth: trace a model built on meta itself, not its shallow copy.
        timeout_s: seconds the model's child may run.
        threads: torch's intra-op threads in the child (``None``: torch's default).
    """

    name: str
    source: str
    family: str
    export: bool = False
    all_rungs: bool = False
    full_depth: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    threads: int | None = None


# --------------------------------------------------------------------------------------------------
# One model (runs in the child)
# --------------------------------------------------------------------------------------------------


def _load(name: str, source: str):
    """Build ``name`` of ``source`` with the one zoo loader: a ``LoadedModel``."""
    from turnkey_like.records import ModelRequest
    from turnkey_like.zoo import load

    return load(ModelRequest(name=name, source=source))


def _trace_rungs(model, args, kwargs, on_meta: bool, methods: tuple[str, ...]):
    """Walk ``methods`` of the tracing ladder (``tracing.trace_model``, no warm-up), on meta tensors
    when the model is on meta; returns the :class:`~turnkey_like.tracing.TraceResult`."""
    from turnkey_like.calls import map_tensors
    from turnkey_like.characterize.assemble import meta_weights
    from turnkey_like.tracing import trace_model

    if on_meta:
        args, kwargs = map_tensors(lambda t: t.to("meta"), (tuple(args), dict(kwargs)))
    with meta_weights(model) if on_meta else contextlib.nullcontext():
        return trace_model(model, tuple(args), dict(kwargs), warmup=False, methods=methods)


def _export(model, args, kwargs, on_meta: bool) -> ExportOutcome:
    """Export the model to ONNX with the build's own child body, in a temporary folder."""
    if on_meta:
        return ExportOutcome(status=Status.SKIPPED, error="built on meta: no weights to export")
    from turnkey_like.build import BuildOptions, build_here

    folder = tempfile.mkdtemp(prefix="tk-discover-export-")
    t0 = time.perf_counter()
    try:
        result = build_here(model, tuple(args), dict(kwargs), folder, BuildOptions(), {})
    except Exception as exc:  # noqa: BLE001 - a failed export is an outcome, recorded
        return ExportOutcome(status=Status.ERROR, error=one_line(exc, 500), duration_s=time.perf_counter() - t0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ok = result.faithful is not False
    return ExportOutcome(
        status=Status.SUCCESSFUL if ok else Status.ERROR, exporter=result.exporter, faithful=result.faithful,
        opset=result.opset, size_bytes=result.size_bytes, duration_s=time.perf_counter() - t0,
        error=None if ok else "the ONNX model's outputs differ from eager PyTorch beyond the fp32 tolerance",
    )


class _Survey:
    """One model's survey as it goes: the record so far, the seconds per step, and where each step's
    start is announced (``on_step(record, step)``)."""

    def __init__(self, name: str, source: str, family: str | None, timeout_s: float,
                 on_step: Callable[[ModelSurvey, str], None] | None):
        self.record = ModelSurvey(name=name, source=source, family=family or family_of(source, name),
                                  timeout_s=timeout_s)
        self.durations: dict[str, float] = {}
        self.started = time.perf_counter()
        self.on_step = on_step

    def update(self, **fields) -> ModelSurvey:
        """The record with ``fields`` changed, its times stamped (and kept as the record so far)."""
        self.record = msgspec.structs.replace(
            self.record, durations={k: round(v, 4) for k, v in self.durations.items()},
            duration_s=time.perf_counter() - self.started, surveyed_at=now_utc(), **fields)
        return self.record

    def step(self, name: str) -> None:
        """Announce that step ``name`` starts (its record so far goes with it)."""
        if self.on_step is not None:
            self.on_step(self.update(), name)

    def build(self):
        """Step 1: the loaded model, or ``None`` when it did not build (recorded)."""
        self.step("build")
        t0 = time.perf_counter()
        try:
            loaded = _load(self.record.name, self.record.source)
        except Exception as exc:  # noqa: BLE001 - recorded as the model's outcome
            self.durations["build"] = time.perf_counter() - t0
            self.update(status=Status.ERROR, failed_step="build", error=one_line(exc, 500))
            return None
        self.durations["build"] = time.perf_counter() - t0
        import torch

        model = loaded.model
        if isinstance(model, torch.nn.Module):
            model.eval()
        try:
            constructor, imports = constructor_of(self.record.source, self.record.name, model)
        except Exception:  # noqa: BLE001 - the registry entry is a convenience; the survey goes on
            constructor, imports = None, []
        self.update(on_meta=bool(loaded.on_meta), model_class=type(model).__name__, constructor=constructor,
                    imports=imports, notes=list(loaded.notes or []))
        return loaded

    def count(self, model, args, kwargs) -> bool:
        """Step 2: run the model once, counted; False when its call failed (recorded, the ladder
        is still walked)."""
        import torch

        from turnkey_like.characterize import characterize_call

        self.step("run")
        t0 = time.perf_counter()
        try:
            with torch.no_grad():  # inference, as the pipeline counts: autograd would keep every activation
                char = characterize_call(model, args, kwargs, hardware=PROFILE, no_weights=self.record.on_meta,
                                         warmup=True)
        except Exception as exc:  # noqa: BLE001 - the model's own call failed: still walk the ladder
            self.durations["run"] = time.perf_counter() - t0
            self.update(status=Status.ERROR, failed_step="run", error=one_line(exc, 500))
            return False
        self.durations["run"] = time.perf_counter() - t0
        self.update(params=char.totals.params, macs=char.totals.macs, uncounted_ops=char.totals.uncounted_ops,
                    inputs=char.inputs, on_meta=char.no_weights)
        return True

    def shallow_target(self, loaded, target: tuple, full_depth: bool) -> tuple:
        """What the ladder walks: the model, or for a model on meta (unless ``full_depth``) its
        shallow copy (:func:`turnkey_like.zoo.shallow`), with a note saying which."""
        if not self.record.on_meta or full_depth:
            return target
        self.step("shallow copy")
        from turnkey_like.zoo import shallow

        try:
            copy = shallow(loaded)
        except Exception as exc:  # noqa: BLE001 - the model itself is traced instead, and that is said
            self.update(notes=self.record.notes + [
                f"traced at full depth: its shallow copy did not build ({one_line(exc, 200)})"])
            return target
        if copy is None:
            return target
        shallow_model, cuts = copy
        cut_text = ", ".join(f"{key} {kept} of {of}" for key, (kept, of) in cuts.items())
        self.update(traced_depth=cuts, notes=self.record.notes + [
            f"traced a shallow copy ({cut_text}: every distinct layer kept; --full-depth traces the model itself)"])
        return shallow_model.model, tuple(shallow_model.args), dict(shallow_model.kwargs)

    def ladder(self, target: tuple, all_rungs: bool) -> None:
        """Step 3: the rungs of the ladder, one ``trace_model`` call each, up to the first that
        works (every rung with ``all_rungs``)."""
        t0 = time.perf_counter()
        for rung in LADDER:
            if self.record.traced and not all_rungs:
                break
            self.step(rung)
            traced = _trace_rungs(*target, self.record.on_meta, (rung,))
            self.update(attempts=self.record.attempts + traced.attempts)
            if traced.ok and not self.record.traced:
                self.update(trace_method=traced.method, node_count=traced.node_count)
            self.durations["trace"] = time.perf_counter() - t0
            del traced
        if not self.record.traced:
            self.update(trace_method="none")

    def export(self, model, args, kwargs, ran: bool) -> None:
        """Step 4 (``--export``): the ONNX export's outcome."""
        self.step("export")
        t0 = time.perf_counter()
        outcome = (_export(model, args, kwargs, self.record.on_meta) if ran else
                   ExportOutcome(status=Status.SKIPPED, error="the model's own call failed"))
        self.durations["export"] = time.perf_counter() - t0
        self.update(export=outcome)


def survey_model(name: str, source: str, *, export: bool = False, all_rungs: bool = False,
                 full_depth: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S, family: str | None = None,
                 threads: int | None = None,
                 on_step: Callable[[ModelSurvey, str], None] | None = None) -> ModelSurvey:
    """Build, run, trace (and with ``export`` export) one model; return its :class:`ModelSurvey`.

    Runs in the model's child process (it may crash or hang: the parent's :func:`consume_survey`
    records that). A failed build or run is returned as a record (``status=error``, ``failed_step``),
    never raised. When the counted run fails, the ladder is still walked, so the record says whether
    the model traces at all. The rungs are tried one :func:`~turnkey_like.tracing.trace_model` call
    each (in the ladder's order, stopping at the first that works unless ``all_rungs``) so that
    progress can be sent between them.

    Args:
        name, source: the model (see :func:`turnkey_like.zoo.load`).
        export: also export it to ONNX (``ExportOutcome``).
        all_rungs: try every rung of the ladder, not only up to the first that works.
        full_depth: trace a model built on meta itself, not its shallow copy (module doc, step 3).
        timeout_s: recorded as the limit the child ran under.
        family: the family (computed with ``zoo.survey.family_of`` when ``None``).
        threads: torch's intra-op threads in this process (``None`` keeps torch's default).
        on_step: called before each step with the record so far and the step about to run
            (``build``, ``run``, ``shallow copy``, a rung of :data:`LADDER`, ``export``), so that the
            parent can say what a killed child had found and where it stopped.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    survey = _Survey(name, source, family, timeout_s, on_step)
    loaded = survey.build()
    if loaded is None:
        return survey.record
    model, args, kwargs = loaded.model, tuple(loaded.args), dict(loaded.kwargs)
    ran = survey.count(model, args, kwargs)
    survey.ladder(survey.shallow_target(loaded, (model, args, kwargs), full_depth), all_rungs)
    if export:
        survey.export(model, args, kwargs, ran)
    return survey.update()


def survey_body(send: Callable[[Message], None], request: SurveyRequest) -> None:
    """The model's child: :func:`survey_model`, sending ``SurveyStep`` before each step and
    ``SurveyDone`` at the end (``Crash`` if tk itself failed)."""
    import traceback

    try:
        survey = survey_model(request.name, request.source, export=request.export, all_rungs=request.all_rungs,
                              full_depth=request.full_depth, timeout_s=request.timeout_s, family=request.family,
                              threads=request.threads,
                              on_step=lambda record, step: send(SurveyStep(survey=record, step=step)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as this model's failure
        send(Crash(error=one_line(e), stack="".join(traceback.format_exception(e)[-6:])))
        return
    send(SurveyDone(survey=survey))


# --------------------------------------------------------------------------------------------------
# The parent's side
# --------------------------------------------------------------------------------------------------


def consume_survey(channel, request: SurveyRequest, *, log: TextIO | None = None,
                   log_path: str | Path | None = None) -> ModelSurvey:
    """Read a model's child from ``channel`` (a local :class:`~turnkey_like.launcher.StreamingChild`
    or a Dask task's channel) and return its record; never raises for the model's failures.

    The child must end within ``request.timeout_s`` of the first read. Its own record, with the
    child's wall time and (when not successful) the log's last lines; or, when it ended first
    (timeout, crash, kill, a lost worker), the record :func:`_ended` makes of what it had sent.

    Args:
        log: where the child's output goes (the stack of a crash is added to it).
        log_path: that log's file (its last lines become ``log_excerpt``).
    """
    from turnkey_like.launcher import log_tail

    started = time.monotonic()
    partial, step, step_started = ModelSurvey(name=request.name, source=request.source, family=request.family,
                                              timeout_s=request.timeout_s), "build", started
    with channel as child:
        try:
            while True:
                message = child.receive(max(request.timeout_s - (time.monotonic() - started), 0.001))
                if isinstance(message, SurveyStep):
                    partial, step, step_started = message.survey, message.step, time.monotonic()
                elif isinstance(message, SurveyDone):
                    child.wait()
                    survey = message.survey
                    break
                elif isinstance(message, Crash):
                    raise ChildEnded(Status.ERROR, f"tk failed: {message.error}", message.stack, TK_BUG_HINT)
        except ChildEnded as ended:
            if ended.stack and log is not None:
                with contextlib.suppress(OSError, ValueError):
                    log.write(ended.stack + "\n")
                    log.flush()
            error = (f"timed out after {request.timeout_s:g} s (child killed)" if ended.status is Status.TIMEOUT
                     else ended.error)
            return _ended(partial, step, ended.status, error, request, log_tail(log_path),
                          time.monotonic() - started, time.monotonic() - step_started)
    if survey.status is not Status.SUCCESSFUL:
        survey = msgspec.structs.replace(survey, log_excerpt=log_tail(log_path))
    return msgspec.structs.replace(survey, duration_s=time.monotonic() - started)


def _ended(partial: ModelSurvey, step: str, status: Status, error: str, request: SurveyRequest,
           log_excerpt: str | None, duration_s: float, step_s: float) -> ModelSurvey:
    """The record of a model whose child ended during ``step`` without its last message.

    When the model had built, run and traced and ``step`` came after (a further rung, the export),
    the step failed, not the model: the rung is recorded as a failed attempt (``timeout: ...`` or
    ``killed: ...``), or the export as ``timeout``/``killed``, the record stays ``successful``, and a
    note says the steps after it did not run. Otherwise the record is ``status`` (``timeout``,
    ``killed``, ``error``) with ``failed_step`` and ``error`` naming the step (``... during
    torch.export(strict=True)``), and keeps what the child had found before.
    """
    export = None
    if request.export:
        export = partial.export or ExportOutcome(status=Status.SKIPPED, error="the model's child did not finish")
    common = dict(log_excerpt=log_excerpt, duration_s=duration_s, timeout_s=request.timeout_s, surveyed_at=now_utc())
    if partial.status is Status.SUCCESSFUL and partial.traced and step in (*LADDER, "export"):
        attempts = partial.attempts
        if step == "export":
            export = ExportOutcome(status=status, error=error, duration_s=step_s)
        else:
            attempts = attempts + [TraceAttempt(method=step, ok=False, error=f"{status.value}: {error}",
                                                duration_s=step_s)]
        note = f"{step} did not end ({error}): the steps after it did not run"
        return msgspec.structs.replace(partial, attempts=attempts, export=export, notes=partial.notes + [note],
                                       **common)
    return msgspec.structs.replace(
        partial, status=status, failed_step=step, error=f"{error} during {step}",
        trace_method=partial.trace_method if partial.traced else "not traced", export=export, **common)


def survey_in_child(request: SurveyRequest, log_path: str | Path) -> ModelSurvey:
    """Survey one model in a child of this process (a :class:`~turnkey_like.launcher.StreamingChild`,
    its output in ``log_path``) and return its record (:func:`consume_survey`). Never raises for the
    model's failures."""
    from turnkey_like.launcher import StreamingChild

    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        child = StreamingChild(survey_body, request, outputs=(log, log), fresh_thread=True)
        return consume_survey(child, request, log=log, log_path=log_path)


#: (source, export) pairs this process has warmed (:func:`warm_once`), so a Dask worker warms once
_WARMED: set[tuple[str, bool]] = set()


def warm_once(source: str, export: bool) -> None:
    """:func:`warm_parent` unless this process did so for ``(source, export)`` already."""
    if (source, export) not in _WARMED:
        warm_parent(source, export)
        _WARMED.add((source, export))


def warm_parent(source: str, export: bool) -> None:
    """Pay once, in the parent before forking, what every child would pay on its first model: import
    torch, the source's library and loader, counting, tracing (and with ``export`` the build), then
    count and trace a one-layer model, which initialises the dispatch counter and ``torch.export``
    (2.5 s and 1 s on their first call here; a few ms after). A small model's child then takes
    about 0.1 s."""
    import importlib

    from turnkey_like.zoo import sources as zoo_sources

    modules = ["torch", "turnkey_like.characterize.assemble", "turnkey_like.characterize.counter", "turnkey_like.tracing"]
    if source in zoo_sources.SOURCES:  # its library (imported by its package's name) and its module
        package = zoo_sources.get(source).package
        modules += ([package] if package else []) + [zoo_sources.SOURCES[source]]
    modules += ["turnkey_like.zoo", "turnkey_like.zoo.inputs", "turnkey_like.zoo.factory"] + (
        ["turnkey_like.build", "onnxscript"] if export else [])
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a missing library fails each model's build, with its reason
            pass
    import torch

    from turnkey_like.characterize import characterize_call
    from turnkey_like.tracing import trace_model

    model, x = torch.nn.Sequential(torch.nn.Linear(2, 2)), torch.zeros(1, 2)
    try:
        characterize_call(model, (x,), {}, hardware=PROFILE)
        trace_model(model, (x,), {}, warmup=False, methods=LADDER[1:])
    except Exception:  # noqa: BLE001 - only a warm-up: each child does the real work and records it
        pass
