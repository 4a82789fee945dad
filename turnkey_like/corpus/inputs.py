"""The inputs of ``tk benchmark`` on Dask, the client's side: :class:`InputJob` (the one Dask runner's
job for pipeline inputs), the corpus progress line, and :func:`run_on_dask`.

Each input is one task (:class:`~turnkey_like.corpus.input_task.InputTask`, run on a worker by
:func:`~turnkey_like.corpus.worker.run_task`); its messages are read here by ``Pipeline.consume``,
which writes each record to the *client's* cache and turns a dead or hung child into the input's
one-line error, as for a local run. With ``--collect``, ONNX files built in a worker's own cache are
copied here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from turnkey_like.corpus.dask_runner import DaskRunner
from turnkey_like.corpus.input_task import CACHE_ID_FILE, InputTask, read_build_files
from turnkey_like.corpus.resume import CORPUS_DIR, InputBook
from turnkey_like.errors import InputError, TkError, one_line
from turnkey_like.events import RunSummary
from turnkey_like.launcher import TK_BUG_HINT, ChildEnded
from turnkey_like.pipeline import InputMirror, input_error, run_failure
from turnkey_like.records import ScriptResult, Status, encode

if TYPE_CHECKING:
    from turnkey_like.corpus import CorpusOptions
    from turnkey_like.corpus.channel import DaskChannel
    from turnkey_like.inputs import InputSpec
    from turnkey_like.pipeline import Pipeline

log = logging.getLogger(__name__)

#: what :class:`InputJob` gives for one input: its record, and the error it reports
InputOutcome = tuple[ScriptResult, "TkError | None"]


def run_on_dask(pipeline: Pipeline, corpus: CorpusOptions, book: InputBook, specs: list[InputSpec]) -> RunSummary:
    """Run every input on the cluster, several at once; never raises for a bad input or script.

    Ctrl-C (or SIGTERM) stops every running input (its running stage is recorded ``interrupted``)
    and returns what was done, with ``interrupted`` set: each input that ran, the interrupted ones as
    far as they got (their records, as the cache has them); the inputs not begun are left out, as in
    a serial run.

    Raises:
        InputError: Dask's ``distributed`` package is not installed.
        TkError: the cluster could not be started or reached.
    """
    summary = RunSummary(run_id=pipeline.run_id)
    listener = pipeline.listener
    listener.run_started(specs)
    if corpus.workers:  # tk's LocalCluster: --memory-limit's default divided among its workers here
        pipeline.options = pipeline.options.with_memory_default(corpus.workers)
    job = InputJob(pipeline, corpus, CorpusProgress(listener, len(specs), book))
    if pipeline.options.characterize and any(not s.is_onnx for s in specs):
        # measured once here, before any thread of Dask's exists (a fork beside a thread that
        # holds the import lock hangs); workers sharing the cache read it
        pipeline.profile  # noqa: B018
    runner = DaskRunner(job, workers=corpus.workers, scheduler=corpus.scheduler, in_flight=corpus.in_flight,
                        progress_line=lambda text: progress_line(listener, text))
    pipeline.listener = ThreadListener()
    try:
        results, stop = runner.run(specs)
    finally:
        pipeline.listener = listener
    if stop is not None:
        summary.stopped_by(stop)
    for index in sorted(results):
        result, error = results[index]
        if error is not None:
            summary.errors.append(error)
        summary.results.append(result)
    return summary


def cache_token(root: Path) -> str:
    """The cache at ``root``'s id (created once): a worker that reads the same token at the same path
    shares the cache."""
    from turnkey_like.files import write_atomic

    path = root / CORPUS_DIR / CACHE_ID_FILE
    try:
        return path.read_text().strip()
    except OSError:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, uuid.uuid4().hex.encode())
        return path.read_text().strip()


def _failed_input(spec: InputSpec, message: str) -> ScriptResult:
    return ScriptResult(path=str(spec.path), labels=spec.labels, selectors=list(spec.selectors),
                        entry=spec.entry or None, status=Status.ERROR, error=message)


class InputJob:
    """The inputs of a ``tk benchmark`` corpus as a :class:`~turnkey_like.corpus.dask_runner.DaskJob`:
    one :class:`InputTask` each, consumed by ``Pipeline.consume``; the outcome of an input is its
    record and the error it reports (:func:`~turnkey_like.pipeline.input_error`), as a serial run's."""

    def __init__(self, pipeline: Pipeline, corpus: CorpusOptions, progress: CorpusProgress):
        self.pipeline, self.corpus, self.progress = pipeline, corpus, progress
        self.client = None
        self.cache_id = cache_token(pipeline.cache.root)
        self._previous: dict[str, list[str]] = {}
        self._threads_per_host: dict[str, int] = {}
        self._stopped: dict[int, ScriptResult] = {}  # input index -> its record when Ctrl-C stopped it

    def connected(self, client) -> None:
        """Worker threads per host (each input's share of its host's cores), and with
        ``--scheduler`` the builds of each script in this cache (shipped to workers that may not see it)."""
        self.client = client
        self._previous = self._previous_index() if self.corpus.scheduler else {}
        for worker in client.scheduler_info()["workers"].values():
            host = worker.get("host") or ""
            self._threads_per_host[host] = self._threads_per_host.get(host, 0) + worker.get("nthreads", 1)

    def label(self, spec: InputSpec) -> str:
        return str(spec.path)

    def consume(self, index: int, spec: InputSpec, channel: DaskChannel) -> InputOutcome:
        """``Pipeline.consume``'s mirror of the input's child; after Ctrl-C its record so far is kept
        for :meth:`interrupted`."""
        self.pipeline.listener.local.events = self.progress.listener_for(index)
        mirror = InputMirror(self.pipeline, spec)
        try:
            return mirror.consume(channel)
        except KeyboardInterrupt:
            self._stopped[index] = mirror.result
            raise

    def refused(self, spec: InputSpec, error: TkError) -> InputOutcome:
        return _failed_input(spec, error.message), error

    def failed(self, spec: InputSpec, ended: ChildEnded) -> InputOutcome:
        result = _failed_input(spec, ended.error)
        result.traceback = ended.stack
        return result, run_failure(result, ended.hint or TK_BUG_HINT)

    def interrupted(self, index: int, spec: InputSpec) -> InputOutcome | None:
        """The record of an input stopped while it ran, as far as it got (``None`` before it began)."""
        result = self._stopped.pop(index, None)
        return None if result is None else (result, None)

    def started(self, index: int, spec: InputSpec, where: str) -> None:
        self.progress.started(index, spec, where)

    def finished(self, index: int, spec: InputSpec, outcome: InputOutcome) -> InputOutcome:
        """Collect the input's ONNX files (``--collect``), then report it as a serial run would."""
        result, error = outcome
        if self.corpus.collect:
            self.collect(result)
        error = input_error(result, error, self.pipeline.options.script_args)
        self.progress.finished(index, spec, result, error)
        return result, error

    def task(self, spec: InputSpec, name: str) -> InputTask:
        """The worker's task for ``spec`` (its script's bytes with ``--upload``; its earlier records
        when the workers may not share this cache).

        Raises:
            InputError: ``--upload`` and the script cannot be read.
        """
        script = None
        if self.corpus.upload and spec.model is None:
            try:
                script = Path(spec.path).read_bytes()
            except OSError as e:
                raise InputError(f"{spec.path}: cannot read ({e.strerror})") from None
        previous = [encode(r) for r in self._previous_records(spec)] if self.corpus.scheduler else []
        return InputTask(spec=spec, options=self.pipeline.options, run_id=self.pipeline.run_id, queue=f"{name}-q",
                         stop=f"{name}-stop", cache_root=str(self.pipeline.cache.root), cache_id=self.cache_id,
                         script=script, previous=previous, threads_per_host=self._threads_per_host)

    def _previous_index(self) -> dict[str, list[str]]:
        """Build names by script path in the client's cache (to ship earlier records to workers)."""
        names: dict[str, list[str]] = {}
        records, _problems = self.pipeline.cache.records()
        for record in records:
            names.setdefault(record.script, []).append(record.build_name)
        return names

    def _previous_records(self, spec: InputSpec):
        for build_name in self._previous.get(str(spec.path), []):
            with contextlib.suppress(TkError):
                yield self.pipeline.cache.load(build_name)

    def collect(self, result: ScriptResult) -> None:
        """``--collect``: copy the ONNX files a worker built in its own cache into the client's cache."""
        cache = self.pipeline.cache
        for _model, inv in result.invocations():
            build = inv.build.result
            if build is None or not inv.build_name:
                continue
            here = cache.root / inv.build_name
            files = [p for p in (build.onnx_path, build.optimized_path, build.exported_path) if p]
            if all(Path(p).is_file() and Path(p).parent == here for p in files):
                continue  # built in this cache (shared folder): nothing to collect
            try:
                record = cache.load(inv.build_name)
                where = record.system.dask_worker or None
                data = self.client.submit(read_build_files, files, build.data_files, pure=False,
                                          workers=[where] if where else None,
                                          allow_other_workers=False).result(timeout=600)
            except Exception as e:  # noqa: BLE001 - a failed copy leaves the files on the worker
                log.warning("%s: --collect failed: %s", inv.build_name, one_line(e))
                continue
            folder = cache.build_dir(inv.build_name)
            from turnkey_like.files import write_atomic

            moved = {}
            for old, content in data.items():
                new = folder / Path(old).name
                write_atomic(new, content)
                moved[old] = str(new)
            build.onnx_path = moved.get(build.onnx_path, build.onnx_path)
            build.optimized_path = moved.get(build.optimized_path, build.optimized_path)
            build.exported_path = moved.get(build.exported_path, build.exported_path)
            record.invocation.build = inv.build
            record.system = msgspec.structs.replace(record.system, collected_from=record.system.host)
            self.pipeline.save(record)


def progress_line(listener, text: str) -> None:
    """One dim line on the listener's progress console (stderr), unless quiet."""
    console = getattr(listener, "progress_console", None)
    if console is not None and not getattr(listener, "quiet", False):
        console.print(f"[dim]{text}[/]")


class CorpusProgress:
    """The listener of a Dask run: serializes the pipeline's events from several consuming threads,
    keeps one line of corpus progress (done / failed / running per stage), and prints each input's
    report as it ends (through the wrapped listener, one at a time)."""

    def __init__(self, inner, total: int, book: InputBook):
        self.inner, self.total, self.book = inner, total, book
        self.lock = threading.RLock()
        self.done = self.failed = 0
        self.phase: dict[int, str] = {}  # input index -> discovery | stage name
        self._task = None
        progress = getattr(inner, "progress", None)
        if progress is not None:
            self._task = progress.add_task(self._text(), total=max(total, 1))

    def _text(self) -> str:
        from turnkey_like.records import STAGES

        running = {name: 0 for name in ("discovery", *STAGES)}
        for phase in self.phase.values():
            running[phase] = running.get(phase, 0) + 1
        parts = " · ".join(f"{name} {count}" for name, count in running.items())
        return (f"corpus: {self.done} of {self.total} done, {self.failed} failed, {len(self.phase)} running "
                f"({parts})")

    def _update(self) -> None:
        progress = getattr(self.inner, "progress", None)
        if progress is not None and self._task is not None:
            progress.update(self._task, completed=self.done, description=self._text())

    def started(self, index: int, spec, where: str) -> None:
        with self.lock:
            self.phase[index] = "discovery"
            self._update()
            if getattr(self.inner, "progress", None) is None:
                from turnkey_like.report.status import relative_path

                progress_line(self.inner, f"── input {index + 1} of {self.total} on {where}: "
                                           f"{relative_path(str(spec.path))} ──")

    def listener_for(self, index: int):
        return _InputEvents(self, index)

    def finished(self, index: int, spec, result: ScriptResult, error) -> None:
        with self.lock:
            self.phase.pop(index, None)
            self.done += 1
            if error is not None or result.status in (Status.ERROR, Status.OUT_OF_MEMORY) or any(
                    inv.failed for _m, inv in result.invocations()):
                self.failed += 1
            self.book.record(spec, result)
            self.inner.script_finished(result, error)
            self._update()


class _InputEvents:
    """The stage events of one input of a Dask run (what ``Pipeline.consume`` calls)."""

    def __init__(self, progress: CorpusProgress, index: int):
        self.progress, self.index = progress, index

    def stage_started(self, result, model, inv, stage) -> None:
        with self.progress.lock:
            self.progress.phase[self.index] = stage
            self.progress._update()

    def stage_finished(self, result, model, inv, stage) -> None:
        pass


class ThreadListener:
    """``pipeline.listener`` during a Dask run: routes each consuming thread's events to its input."""

    def __init__(self):
        self.local = threading.local()

    def __getattr__(self, name):
        events = getattr(self.local, "events", None)
        method = getattr(events, name, None) if events is not None else None
        return method if method is not None else (lambda *a, **k: None)
