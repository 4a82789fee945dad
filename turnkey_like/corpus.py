"""Corpus runs: many inputs at once on a Dask cluster, and ``--resume`` for any run.

:func:`run_corpus` is the one entry point of ``tk benchmark``: serial (``Pipeline.run``, exactly as
without this module) unless :class:`CorpusOptions` asks for workers, and in both cases it skips
inputs that ``--resume`` finds complete and records each input's fingerprint when it ends.

On Dask (``--workers N``: an embedded ``LocalCluster``; ``--scheduler ADDRESS``: an existing
cluster), the unit of work is one input (script): one Dask task, which runs
:class:`~turnkey_like.launcher.StreamingChild` with ``Pipeline.child_body`` *on the worker* (the
script's discovery, then every stage, each in a further fork, exactly as on one machine; a model class
defined in a script cannot be pickled, so all of an input's work stays on one worker). The task relays
every message of that child to the client through a ``distributed.Queue`` of its own; on the client a
:class:`~turnkey_like.dask_task.DaskChannel` (the same ``receive``/``kill``/``wait`` interface as a local
child) feeds ``Pipeline.consume``, which writes each record to the *client's* cache and turns a dead
or hung child into the input's one-line error, as for a local run. No shared filesystem is needed for
records. Both ends of the task are in :mod:`turnkey_like.dask_task`; this module submits the tasks.

Where files live: a worker uses the client's cache folder when it sees the same folder (the
client's ``.corpus/cache-id`` token is readable at the same path: same host, or a shared
filesystem); otherwise its own cache (``TK_CACHE_DIR`` on the worker, else its default), into which
the client first ships the input's earlier records (so reuse and kept outcomes work as in a serial
run). ONNX files stay where they were built: ``BuildResult.onnx_path`` is absolute on the worker, and
``record.system["host"]`` names the machine; ``--collect`` copies them into the client's cache.

Failures: ``--timeout`` applies on the workers (each stage's fork; the client stops a discovery that
runs past it). A worker that dies mid-task (killed, out of memory) has its task retried once on another
worker, then the input is recorded ``killed``; the rest of the corpus goes on. A worker that cannot run
tk's task (another tk, or none) fails each input with the reason and the fix, and stays up.

A benchmark has its host to itself: each worker's input child holds :mod:`turnkey_like.hostlock`
shared during discovery, characterization and build, and exclusive during a benchmark.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import pickle
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from turnkey_like.errors import InputError, TkError, one_line
from turnkey_like.dask_task import (
    CACHE_ID_FILE,
    CORPUS_DIR,
    DaskChannel,
    InputTask,
    TaskCall,
    prepare_worker,
    read_build_files,
)
from turnkey_like.launcher import TK_BUG_HINT, ChildEnded
from turnkey_like.records import (
    CorpusInput,
    ScriptResult,
    Status,
    decode,
    encode,
    now_utc,
)

if TYPE_CHECKING:
    from turnkey_like.inputs import InputSpec
    from turnkey_like.pipeline import Pipeline, RunOptions, RunSummary

log = logging.getLogger(__name__)

#: per-input fingerprints (``--resume``), one record per input
INPUTS_DIR = "inputs"
#: outcomes that do not finish a stage: an input with one of them in a requested stage is not complete
UNFINISHED = frozenset({Status.NOT_STARTED, Status.RUNNING, Status.INTERRUPTED})
#: Dask configuration of an embedded LocalCluster: tk's isolation forks children, which a daemonic
#: process may not; a task whose worker dies is retried once, then fails with ``KilledWorker``; and the
#: workers get this process's environment unchanged (Dask's nanny otherwise sets OMP_NUM_THREADS=1 and
#: MALLOC_TRIM_THRESHOLD_, which change torch's threads and the allocator under a benchmark: measured
#: 1.2x the serial ORT latency with them)
LOCAL_CLUSTER_CONFIG = {"distributed.worker.daemon": False, "distributed.scheduler.allowed-failures": 1,
                        "distributed.nanny.pre-spawn-environ": {},
                        # quiet servers: each worker's statistical profiler samples every thread's stack
                        # every 10 ms, every server's event loop ticks every 20 ms and polls psutil
                        # twice a second, memory monitors every 100 ms: on a small host each wake-up
                        # takes a core from the benchmark that has the host to itself
                        "distributed.worker.profile.enabled": False,
                        "distributed.admin.system-monitor.interval": "10s",
                        "distributed.admin.tick.interval": "1s",
                        "distributed.worker.memory.monitor-interval": "1s",
                        # each worker imports torch and torch._dynamo as it starts (:func:`dask_setup`),
                        # not in its first task
                        "distributed.worker.preload": [__name__]}


@dataclass
class CorpusOptions:
    """How a corpus runs (the command line's ``--workers`` ... ``--retry-failed``).

    Attributes:
        workers: start an embedded ``LocalCluster`` with this many worker processes, one thread each.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``); exclusive with ``workers``.
        upload: send each script's text with its task (workers that cannot read the client's files).
        collect: copy ONNX files built in a worker's own cache into the client's cache.
        resume: skip inputs whose content, arguments and requested stages are unchanged and complete.
        retry_failed: with ``resume``, rerun the inputs that failed (script or any stage).
        in_flight: inputs submitted ahead of the free worker threads (``None``: one per thread), so a
            worker never waits for the client between inputs.
    """

    workers: int | None = None
    scheduler: str | None = None
    upload: bool = False
    collect: bool = False
    resume: bool = False
    retry_failed: bool = False
    in_flight: int | None = None

    @property
    def on_dask(self) -> bool:
        return bool(self.workers) or bool(self.scheduler)

    def validate(self) -> None:
        """Raises :class:`InputError` for contradictory or out-of-range options."""
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers {self.workers}: must be at least 1")
        if self.workers and self.scheduler:
            raise InputError("--workers and --scheduler exclude each other",
                             hint="--workers N starts a cluster on this machine; --scheduler ADDRESS uses yours")
        if (self.upload or self.collect) and not self.on_dask:
            flag = "--upload" if self.upload else "--collect"
            raise InputError(f"{flag} needs --workers or --scheduler", hint="without them every input runs here")
        if self.retry_failed and not self.resume:
            self.resume = True  # --retry-failed alone means: resume, rerunning failures


# --------------------------------------------------------------------------------------------------
# Fingerprints and --resume
# --------------------------------------------------------------------------------------------------


def requested_stages(options: RunOptions) -> list[str]:
    """The stages a run with ``options`` asks for, in order."""
    stages = ["characterization"] if options.characterize else []
    if not options.analyze_only:
        stages.append("build")
        if not options.build_only:
            stages.append("benchmark")
    return stages


def input_key(spec: InputSpec) -> str:
    """The identity of an input across runs: its path (or named model) and selectors (16 hex chars)."""
    identity = [str(spec.path), sorted(spec.selectors), spec.model]
    return hashlib.sha256(encode(identity)).hexdigest()[:16]


def input_fingerprint(spec: InputSpec, options: RunOptions) -> str:
    """What decides whether an earlier outcome of ``spec`` still answers this run (sha256 hex).

    It covers the input's bytes (script or ``.onnx`` file; a named model's request), the scripts'
    arguments, the discovery depth, ``--input-shape`` overrides and the requested stages.

    Raises:
        InputError: the input file cannot be read.
    """
    digest = hashlib.sha256()
    if spec.model is None:
        try:
            with open(spec.path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError as e:
            raise InputError(f"{spec.path}: cannot read ({e.strerror})") from None
    digest.update(encode([spec.model, options.script_args, options.max_depth, requested_stages(options),
                          sorted(spec.selectors), {k: list(v) for k, v in options.input_shapes.items()}]))
    return digest.hexdigest()


def _strip_results(result: ScriptResult) -> ScriptResult:
    """``result`` without the stage payloads (they live in the build records); small enough to keep."""
    copy = decode(encode(result), ScriptResult, what="script result")
    for _model, inv in copy.invocations():
        for name, stage in inv.stages().items():
            setattr(inv, name, msgspec.structs.replace(stage, result=None, kept=None))
    return copy


class InputBook:
    """The client's record of each input's last outcome, for ``--resume`` (``<cache>/.corpus/inputs``).

    One :class:`~turnkey_like.records.CorpusInput` per input (by :func:`input_key`), written with
    :func:`turnkey_like.files.write_record` when the input ends, whatever the run (serial or Dask).
    """

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.folder = pipeline.cache.root / CORPUS_DIR / INPUTS_DIR

    def _path(self, spec: InputSpec) -> Path:
        return self.folder / f"{input_key(spec)}.json"

    def record(self, spec: InputSpec, result: ScriptResult) -> None:
        """Remember how ``spec`` ended in this run (a failure to write is logged, never raised)."""
        from turnkey_like.files import write_record

        try:
            entry = CorpusInput(key=input_key(spec), entry=spec.entry or str(spec.path),
                                fingerprint=input_fingerprint(spec, self.pipeline.options),
                                run_id=self.pipeline.run_id, finished_at=now_utc(), result=_strip_results(result))
            self.folder.mkdir(parents=True, exist_ok=True)
            write_record(self._path(spec), entry, fsync=False)
        except (OSError, TkError) as e:
            log.warning("%s: could not record the input for --resume: %s", spec.entry or spec.path, one_line(e))

    def finished(self, spec: InputSpec, retry_failed: bool) -> ScriptResult | None:
        """The input's result rebuilt from the cache when it needs no work, else ``None``.

        Needs no work: the fingerprint is unchanged, and every selected invocation has a final outcome
        in the cache for every requested stage (failures included, unless ``retry_failed``).
        """
        try:
            entry = decode(self._path(spec).read_bytes(), CorpusInput, what="corpus input record")
            if entry.fingerprint != input_fingerprint(spec, self.pipeline.options):
                return None
        except (OSError, TkError):
            return None
        result = entry.result
        if result.status in UNFINISHED or (retry_failed and result.status == Status.ERROR):
            return None
        stages = requested_stages(self.pipeline.options)
        for _model, inv in result.invocations():
            if not inv.selected:
                continue
            try:
                record = self.pipeline.cache.load(inv.build_name)
            except TkError:
                return None
            for name in stages:
                stage = getattr(record.invocation, name)
                if stage.status in UNFINISHED or (retry_failed and stage.failed):
                    return None
                setattr(inv, name, stage)
        return result


class _Recording:
    """Wraps a listener: writes each input's fingerprint when it ends (serial runs)."""

    def __init__(self, inner, book: InputBook):
        self.inner, self.book = inner, book
        self._spec: InputSpec | None = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def script_started(self, spec, index):
        self._spec = spec
        self.inner.script_started(spec, index)

    def script_finished(self, result, error):
        if self._spec is not None:
            self.book.record(self._spec, result)
        self.inner.script_finished(result, error)


def run_corpus(pipeline: Pipeline, specs: list[InputSpec], corpus: CorpusOptions | None = None) -> RunSummary:
    """Run ``specs`` serially (``Pipeline.run``) or on Dask; skip what ``--resume`` finds complete.

    Returns the :class:`~turnkey_like.pipeline.RunSummary` of every input in the order given
    (resumed inputs included, rebuilt from the cache). Never raises for a bad input or script.

    Raises:
        InputError: bad corpus options, or ``distributed`` is not installed while Dask was asked for.
        TkError: the Dask cluster could not be started or reached.
    """
    from turnkey_like.pipeline import RunSummary

    corpus = corpus or CorpusOptions()
    corpus.validate()
    book = InputBook(pipeline)
    resumed: dict[int, ScriptResult] = {}
    if corpus.resume:
        for index, spec in enumerate(specs):
            done = book.finished(spec, corpus.retry_failed)
            if done is not None:
                resumed[index] = done
        if resumed:
            _progress_line(pipeline.listener, f"--resume: {len(resumed)} of {len(specs)} input(s) unchanged "
                                              "and complete in the cache, not run again")
    todo = [spec for index, spec in enumerate(specs) if index not in resumed]
    if corpus.on_dask and todo:
        summary = DaskRun(pipeline, corpus, book).run(todo)
    else:
        listener = pipeline.listener
        pipeline.listener = _Recording(listener, book)
        try:
            summary = pipeline.run(todo) if todo else RunSummary(run_id=pipeline.run_id)
        finally:
            pipeline.listener = listener
    if not resumed:
        return summary
    ran = iter(summary.results)
    merged = [resumed[i] if i in resumed else next(ran, None) for i in range(len(specs))]
    summary.results = [r for r in merged if r is not None]
    return summary


def dask_setup(worker) -> None:
    """Dask's preload hook (``distributed.worker.preload`` names this module): run as each worker of
    an embedded ``LocalCluster`` starts, or of a cluster started with ``dask worker ADDRESS
    --preload turnkey_like.corpus``: :func:`~turnkey_like.dask_task.prepare_worker` as the worker starts rather than in its
    first task. Optional: a worker started without it prepares in its first task."""
    prepare_worker()


def _progress_line(listener, text: str) -> None:
    """One dim line on the listener's progress console (stderr), unless quiet."""
    console = getattr(listener, "progress_console", None)
    if console is not None and not getattr(listener, "quiet", False):
        console.print(f"[dim]{text}[/]")


class _CorpusProgress:
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

                _progress_line(self.inner, f"── input {index + 1} of {self.total} on {where}: "
                                           f"{relative_path(str(spec.path))} ──")

    def listener_for(self, index: int):
        return _InputEvents(self, index)

    def finished(self, index: int, spec, result: ScriptResult, error) -> None:
        with self.lock:
            self.phase.pop(index, None)
            self.done += 1
            if error is not None or result.status == Status.ERROR or any(
                    inv.failed for _m, inv in result.invocations()):
                self.failed += 1
            self.book.record(spec, result)
            self.inner.script_finished(result, error)
            self._update()


class _InputEvents:
    """The stage events of one input of a Dask run (what ``Pipeline.consume`` calls)."""

    def __init__(self, progress: _CorpusProgress, index: int):
        self.progress, self.index = progress, index

    def stage_started(self, result, model, inv, stage) -> None:
        with self.progress.lock:
            self.progress.phase[self.index] = stage
            self.progress._update()

    def stage_finished(self, result, model, inv, stage) -> None:
        pass


class _ThreadListener:
    """``pipeline.listener`` during a Dask run: routes each consuming thread's events to its input."""

    def __init__(self):
        self.local = threading.local()

    def __getattr__(self, name):
        events = getattr(self.local, "events", None)
        method = getattr(events, name, None) if events is not None else None
        return method if method is not None else (lambda *a, **k: None)


def _has_dashboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _import_distributed():
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError:
        raise InputError("--workers and --scheduler need Dask's `distributed` package",
                         hint='pip install "turnkey_like[dask]"') from None
    return distributed


def connect_scheduler(address: str):
    """A Dask ``Client`` of the existing cluster at ``address`` (``tcp://host:8786``).

    Raises:
        InputError: Dask's ``distributed`` package is not installed.
        TkError: the scheduler cannot be reached within 30 s.
    """
    distributed = _import_distributed()
    try:
        return distributed.Client(address, timeout=30)
    except (OSError, TimeoutError, RuntimeError) as e:
        raise TkError(f"cannot reach the Dask scheduler at {address}: {one_line(e)}",
                      hint="start one with `dask scheduler` and `dask worker ADDRESS` (see docs/corpus.md)") from None


def start_local_cluster(workers: int, *, dashboard: bool = False):
    """Start tk's embedded Dask ``LocalCluster``: ``workers`` worker processes of one thread each,
    configured by :data:`LOCAL_CLUSTER_CONFIG` (non-daemonic, one retry, quiet servers, torch
    preloaded). Used by ``tk benchmark --workers N`` and ``tk discover-models --workers N``.

    Args:
        dashboard: serve Dask's dashboard on a free port when ``bokeh`` is installed.

    Returns:
        ``(client, stop)``: ``stop()`` closes the client and the cluster (its workers exit) and puts
        Dask's configuration back; it never raises.

    Raises:
        InputError: Dask's ``distributed`` package is not installed.
        TkError: the cluster could not start.
    """
    import dask

    distributed = _import_distributed()
    # held until the cluster closes: a nanny restarting a dead worker reads it again
    config = dask.config.set(LOCAL_CLUSTER_CONFIG)
    cluster = client = None

    def stop() -> None:
        for thing in (client, cluster):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        config.__exit__(None, None, None)

    try:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=":0" if dashboard and _has_dashboard() else None)
        client = distributed.Client(cluster)
    except (OSError, TimeoutError, RuntimeError) as e:
        stop()
        raise TkError(f"cannot start a Dask LocalCluster of {workers} workers: {one_line(e)}",
                      hint="run without --workers, or see docs/corpus.md") from None
    return client, stop


class DaskRun:
    """One corpus run on a Dask cluster (see the module doc); :meth:`run` returns the summary."""

    def __init__(self, pipeline: Pipeline, corpus: CorpusOptions, book: InputBook):
        self.pipeline, self.corpus, self.book = pipeline, corpus, book
        self.client = None
        self._stop_cluster = None
        self.cache_id = ""
        self._lock = threading.Lock()
        self._channels: dict[str, DaskChannel] = {}
        self._previous: dict[str, list[str]] = {}
        self._threads_per_host: dict[str, int] = {}
        self._futures: list = []

    # -- the cluster ---------------------------------------------------------------------------
    def _connect(self) -> None:
        if self.corpus.scheduler:
            self.client = connect_scheduler(self.corpus.scheduler)
        else:
            self.client, self._stop_cluster = start_local_cluster(self.corpus.workers, dashboard=True)
        if getattr(self.client, "dashboard_link", None) and _has_dashboard():
            _progress_line(self.pipeline.listener, f"Dask dashboard: {self.client.dashboard_link}")

    def _close(self) -> None:
        if self._stop_cluster is not None:
            self._stop_cluster()
            self._stop_cluster = None
        elif self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()

    def _cache_token(self) -> str:
        """This cache's id (created once): a worker that reads the same token at the same path shares it."""
        from turnkey_like.files import write_atomic

        path = self.pipeline.cache.root / CORPUS_DIR / CACHE_ID_FILE
        try:
            return path.read_text().strip()
        except OSError:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, uuid.uuid4().hex.encode())
            return path.read_text().strip()

    # -- the run -------------------------------------------------------------------------------
    def run(self, specs: list[InputSpec]) -> RunSummary:
        """Run every input on the cluster, several at once; never raises for a bad input or script.

        Ctrl-C stops every running input (its running stage is recorded ``interrupted``) and returns
        what was done, with ``interrupted`` set.
        """
        from turnkey_like.pipeline import RunSummary

        pipeline = self.pipeline
        summary = RunSummary(run_id=pipeline.run_id)
        listener = pipeline.listener
        listener.run_started(specs)
        self.cache_id = self._cache_token()
        if pipeline.options.characterize and any(not s.is_onnx for s in specs):
            # measured once here, before any thread of Dask's exists (a fork beside a thread that
            # holds the import lock hangs); workers sharing the cache read it
            pipeline.profile  # noqa: B018
        self._connect()
        progress = _CorpusProgress(listener, len(specs), self.book)
        pipeline.listener = _ThreadListener()
        results: dict[int, tuple[ScriptResult, TkError | None]] = {}
        try:
            self._previous = self._previous_index() if self.corpus.scheduler else {}
            for worker in self.client.scheduler_info()["workers"].values():
                host = worker.get("host") or ""
                self._threads_per_host[host] = self._threads_per_host.get(host, 0) + worker.get("nthreads", 1)
            threads = sum(self._threads_per_host.values()) or 1
            pool = ThreadPoolExecutor(max_workers=self.corpus.in_flight or 2 * threads,
                                      thread_name_prefix="tk-corpus")
            futures = {pool.submit(self._one, index, spec, progress): index for index, spec in enumerate(specs)}
            try:
                for future, index in futures.items():
                    results[index] = future.result()
            except KeyboardInterrupt:
                summary.interrupted = True
                pool.shutdown(wait=False, cancel_futures=True)
                with self._lock:
                    for channel in self._channels.values():
                        channel.interrupt()
                for future, index in futures.items():
                    if not future.cancelled():
                        with contextlib.suppress(Exception):
                            results[index] = future.result(timeout=30)
            pool.shutdown(wait=False)
        finally:
            pipeline.listener = listener
            with contextlib.suppress(Exception):  # let finished tasks end before the cluster goes
                from distributed import wait

                wait(self._futures, timeout=10)
            self._close()
        for index in sorted(results):
            result, error = results[index]
            if error is not None:
                summary.errors.append(error)
            summary.results.append(result)
        return summary

    def _failed_input(self, spec: InputSpec, message: str, status: Status = Status.ERROR) -> ScriptResult:
        return ScriptResult(path=str(spec.path), labels=spec.labels, selectors=list(spec.selectors),
                            entry=spec.entry or None, status=status, error=message)

    def _one(self, index: int, spec: InputSpec, progress: _CorpusProgress):
        """Submit one input's task and consume its messages (a retry after a lost worker included);
        runs in a thread of its own. Returns ``(result, error)``, the error being the one the input
        reports (:func:`~turnkey_like.pipeline.input_error`), as a serial run reports it."""
        from distributed import Event, Queue

        from turnkey_like.pipeline import input_error, run_failure

        pipeline = self.pipeline
        name = f"tk-{uuid.uuid4().hex}"
        try:
            task = self._task(spec, name)
        except TkError as e:
            result = self._failed_input(spec, e.message)
            progress.finished(index, spec, result, e)
            return result, e
        queue = Queue(f"{name}-q", client=self.client)
        stop = Event(f"{name}-stop", client=self.client)
        future = self.client.submit(pickle.loads, TaskCall.payload(task), key=name, pure=False)
        channel = DaskChannel(future, queue, stop, client_path=str(spec.path))
        future.add_done_callback(lambda _f: channel.wake())  # a failed task wakes its waiting consumer
        self._futures.append(future)
        with self._lock:
            self._channels[name] = channel
        pipeline.listener.local.events = progress.listener_for(index)
        try:
            channel.start()
            progress.started(index, spec, channel.where)
            while True:
                result, error = pipeline.consume(spec, channel)
                if not channel.retry:
                    break
                log.warning("%s: %s", spec.entry or spec.path, result.error)
                channel = channel.successor()
                with self._lock:
                    self._channels[name] = channel
                channel.start()
                progress.started(index, spec, channel.where)
            if self.corpus.collect:
                self._collect(result)
        except ChildEnded as ended:  # the task failed before it began (e.g. tk not importable there)
            result = self._failed_input(spec, ended.error)
            result.traceback = ended.stack
            error = run_failure(result, ended.hint or TK_BUG_HINT)
        except KeyboardInterrupt:
            return self._failed_input(spec, "interrupted (Ctrl-C)", Status.INTERRUPTED), None
        finally:
            with self._lock:
                self._channels.pop(name, None)
            with contextlib.suppress(Exception):
                queue.close()
        error = input_error(result, error, pipeline.options.script_args)
        progress.finished(index, spec, result, error)
        return result, error

    def _task(self, spec: InputSpec, name: str) -> InputTask:
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

    def _collect(self, result: ScriptResult) -> None:
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
                where = record.system.get("dask_worker")
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
            record.system = {**record.system, "collected_from": record.system.get("host")}
            self.pipeline.save(record)
