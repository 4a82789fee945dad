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
:class:`DaskChannel` (the same ``receive``/``kill``/``wait`` interface as a local child) feeds
``Pipeline.consume``, which writes each record to the *client's* cache and turns a dead or hung child
into the input's one-line error, as for a local run. No shared filesystem is needed for records.

Where files live: a worker uses the client's cache folder when it sees the same folder (the
client's ``.corpus/cache-id`` token is readable at the same path: same host, or a shared
filesystem); otherwise its own cache (``TK_CACHE_DIR`` on the worker, else its default), into which
the client first ships the input's earlier records (so reuse and kept outcomes work as in a serial
run). ONNX files stay where they were built: ``BuildResult.onnx_path`` is absolute on the worker, and
``record.system["host"]`` names the machine; ``--collect`` copies them into the client's cache.

Failures: ``--timeout`` applies on the workers (each stage's fork; the client stops a discovery that
runs past it). A worker that dies mid-task (killed, out of memory) has its task retried once on another
worker, then the input is recorded ``killed``; the rest of the corpus goes on.

A benchmark has its host to itself: each worker's input child holds :mod:`turnkey_like.hostlock`
shared during discovery, characterization and build, and exclusive during a benchmark.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import pickle
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from turnkey_like.errors import InputError, TkError, one_line
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

#: folder of the cache root that holds corpus bookkeeping (never a build: build names start with a
#: letter or digit)
CORPUS_DIR = ".corpus"
#: per-input fingerprints (``--resume``), one record per input
INPUTS_DIR = "inputs"
#: scripts shipped to a worker with ``--upload`` (in the worker's cache)
UPLOADS_DIR = "uploads"
#: the token that tells a worker it sees the client's cache folder
CACHE_ID_FILE = "cache-id"
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
#: attempts of one input (the first, and one retry after a worker died)
MAX_ATTEMPTS = 2


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


def _progress_line(listener, text: str) -> None:
    """One dim line on the listener's progress console (stderr), unless quiet."""
    console = getattr(listener, "progress_console", None)
    if console is not None and not getattr(listener, "quiet", False):
        console.print(f"[dim]{text}[/]")


# --------------------------------------------------------------------------------------------------
# The worker side
# --------------------------------------------------------------------------------------------------


@dataclass
class _Task:
    """What the client sends a worker for one input (pickled by Dask)."""

    spec: Any
    options: Any
    run_id: str
    queue: str
    stop: str
    cache_root: str
    cache_id: str
    script: bytes | None = None
    previous: list[bytes] = field(default_factory=list)
    threads_per_host: dict[str, int] = field(default_factory=dict)


#: hardware profiles resolved in this worker process, by (hardware, cache root)
_PROFILES: dict = {}


def _worker_cache(task: _Task) -> tuple[str | None, bool]:
    """The cache folder this worker uses for ``task``, and whether it is the client's.

    The worker's own ``TK_CACHE_DIR`` when set (its operator chose it); else the client's folder when
    the worker sees it (the client's token at the same path: same host, or a shared filesystem);
    else the worker's default cache. Shared means the client's token is in the chosen folder.
    """
    from turnkey_like.cache import ENV_VAR

    root = os.environ.get(ENV_VAR) or task.cache_root
    try:
        shared = (Path(root) / CORPUS_DIR / CACHE_ID_FILE).read_text().strip() == task.cache_id
    except OSError:
        shared = False
    return (root if shared or os.environ.get(ENV_VAR) else None), shared


#: seconds of silence after which a task sends a ``tick``: the client waits on its queue without a
#: timeout (a timed-out ``Queue.get`` is logged as an error by the scheduler), and ticks let it check
#: its own time limits
TICK_S = 2.0


class _Relay:
    """Sends messages to the client's queue in pickled batches (one queue item per ``send``)."""

    def __init__(self, queue):
        self.queue = queue
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def send(self, *messages) -> None:
        with self.lock:
            self.queue.put(pickle.dumps(list(messages), protocol=pickle.HIGHEST_PROTOCOL))
            self.last = time.monotonic()

    def tick(self) -> None:
        """Send a ``tick`` when nothing was sent for :data:`TICK_S` seconds."""
        if time.monotonic() - self.last >= TICK_S:
            self.send(("tick",))


class _RelayStream(io.TextIOBase):
    """A text stream whose writes become ``("output", name, text)`` messages (the script's prints)."""

    def __init__(self, relay: _Relay, name: str):
        self.relay, self.name = relay, name

    def write(self, text: str) -> int:
        if text:
            self.relay.send(("output", self.name, text))
        return len(text)

    def writable(self) -> bool:
        return True


def _worker_pipeline(task: _Task, cache_dir: str | None, shared: bool):
    """The pipeline that runs ``task`` on this worker: the client's options, run id and (when this
    worker sees it) cache; the host lock around each stage; the hardware profile resolved once."""
    from turnkey_like.pipeline import Pipeline

    options = replace(task.options, cache_dir=cache_dir)
    prepare_worker(options.characterize)  # the first task of a worker started without --preload
    pipeline = Pipeline(options)
    pipeline.run_id = task.run_id
    default_threads = _share_cores(task)
    pipeline.stage_guard = functools.partial(_stage_guard, default_threads=default_threads)
    if not shared:
        _adopt_previous(pipeline.cache, task.previous)
    if options.characterize and not task.spec.is_onnx:
        key = (options.hardware, str(pipeline.cache.root))
        if key not in _PROFILES:
            # measuring this machine's peaks is a benchmark too: the host to itself, and torch's
            # default threads, so the profile is the one a serial run uses (and, with the client's
            # cache, the client's own, read instead of measured again)
            with _stage_guard("benchmark", default_threads):
                _PROFILES[key] = pipeline.profile
        pipeline.__dict__["profile"] = _PROFILES[key]  # the cached_property's slot: resolved once
    return pipeline


def dask_setup(worker) -> None:
    """Dask's preload hook (``distributed.worker.preload`` names this module): run as each worker of
    an embedded ``LocalCluster`` starts, or of a cluster started with ``dask worker ADDRESS
    --preload turnkey_like.corpus``: :func:`prepare_worker` as the worker starts rather than in its
    first task. Optional: a worker started without it prepares in its first task."""
    prepare_worker()


#: the exit hook of :func:`prepare_worker` is registered in this worker process
_EXIT_HOOK_REGISTERED = False


def prepare_worker(characterize: bool = True) -> None:
    """Make this worker process ready for inputs: import what every input child would otherwise
    import again (:func:`turnkey_like.pipeline.preload_for_children`: torch, and torch._dynamo for
    counting; the children inherit them through the fork; a dictionary look-up once imported), and
    freeze the garbage collector at exit, as tk's own exit does (collecting torch's objects took a
    worker 1.0 s to exit, 0.2 s frozen)."""
    global _EXIT_HOOK_REGISTERED
    from turnkey_like.pipeline import preload_for_children

    preload_for_children(characterize)
    if not _EXIT_HOOK_REGISTERED:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _EXIT_HOOK_REGISTERED = True


def _share_cores(task: _Task) -> int | None:
    """Give this worker's inputs their share of the host's cores for torch; return torch's default.

    Several tk workers on one host each running torch with every core (torch's default) oversubscribe
    it, and OpenMP's spinning threads then slow everything several-fold (3 scripts: 27 s instead of
    13 s on 2 cores with 2 workers). Discovery, characterization and build run with
    ``cores // (worker threads on this host)`` threads (at least 1); a benchmark, which has the host
    to itself, gets torch's default back (:func:`_stage_guard`), so its latency is a serial run's.
    torch is imported here, once per worker, so the input children inherit it instead of importing it.
    """
    import torch

    if "default" not in _THREADS:
        _THREADS["default"] = torch.get_num_threads()
    host = urlsplit(get_worker_address()).hostname or ""
    sharing = task.threads_per_host.get(host)
    if sharing:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // sharing))
    return _THREADS["default"]


#: torch's default intra-op thread count in this worker process, before :func:`_share_cores`
_THREADS: dict[str, int] = {}


def get_worker_address() -> str:
    """This Dask worker's address (``tcp://host:port``)."""
    from distributed import get_worker

    return get_worker().address


@contextlib.contextmanager
def _stage_guard(stage_name: str, default_threads: int | None = None):
    """``Pipeline.stage_guard`` on a worker: the host lock (:func:`turnkey_like.hostlock.stage_guard`),
    and torch's default thread count back for a benchmark (see :func:`_share_cores`)."""
    from turnkey_like import hostlock

    with hostlock.stage_guard(stage_name):
        if stage_name not in hostlock.EXCLUSIVE_STAGES or not default_threads:
            yield
            return
        import torch

        shared_threads = torch.get_num_threads()
        torch.set_num_threads(default_threads)
        try:
            yield
        finally:
            torch.set_num_threads(shared_threads)


def _adopt_previous(cache, previous: list[bytes]) -> None:
    """Write the client's earlier records of this input into this worker's own cache, unless the
    worker's copy is as new (so reuse and kept outcomes work as in a serial run)."""
    from turnkey_like.records import BuildRecord

    for data in previous:
        record = decode(data, BuildRecord, what="earlier record")
        try:
            mine = cache.load(record.build_name)
        except TkError:
            mine = None
        if mine is None or (mine.updated_at or "") < (record.updated_at or ""):
            cache.build_dir(record.build_name)
            cache.save(record)


def _upload_path(cache_root: Path, spec, script: bytes) -> Path:
    """Write an uploaded script into ``<cache>/.corpus/uploads/<sha>/<name>``; return its path."""
    from turnkey_like.files import write_atomic

    folder = cache_root / CORPUS_DIR / UPLOADS_DIR / hashlib.sha256(script).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(str(spec.path)).name
    if not path.is_file():
        write_atomic(path, script)
    return path


def _guarded_body(pipeline, send, spec) -> None:
    """``Pipeline.child_body`` with the host lock held shared from the start until discovery ended
    (the first ``discovered``, or the input's last message); each stage then takes its own."""
    from turnkey_like import hostlock

    lock = hostlock.shared()
    lock.__enter__()
    held = True

    def guarded(message):
        nonlocal held
        if held and message[0] in ("discovered", "done", "tk_error", "crash"):
            held = False
            lock.__exit__(None, None, None)
        send(message)

    try:
        pipeline.child_body(guarded, spec)
    finally:
        if held:
            lock.__exit__(None, None, None)


#: one input's setup and fork at a time in a worker process: a worker with several threads (``dask
#: worker``'s default: one per core) would otherwise fork one input's child while another task's
#: thread imports a module, and the child would inherit that module's import lock, held by a thread
#: that does not exist there (its first import of the module then waits forever)
_SETUP_LOCK = threading.Lock()


def _run_task(task: _Task) -> str:
    """The Dask task of one input: run it in a :class:`StreamingChild` here, relay every message.

    The first message of an attempt is ``("attempt", token, where, uploaded)``; the child's messages
    follow in order; an early end becomes ``("ended", status, error, stack, hint)`` (the fields of
    :class:`~turnkey_like.launcher.ChildEnded`). The client's stop event (its timeout or Ctrl-C)
    kills the child's process group. Returns how the attempt ended (a word).

    The worker may be started any way: daemonic (``dask worker``'s default; tk forks with
    ``os.fork``, which ``multiprocessing``'s refusal does not concern), with several threads, and
    without ``--preload turnkey_like.corpus`` (torch is then imported by its first task).
    """
    from distributed import Event, Queue, get_client, get_worker

    from turnkey_like.launcher import StreamingChild

    client = get_client()
    relay = _Relay(Queue(task.queue, client=client))
    stop = Event(task.stop, client=client)
    worker = get_worker()
    host = socket.gethostname()
    where = f"{host} ({worker.address})"
    cache_dir, shared = _worker_cache(task)
    spec = task.spec
    outputs = (_RelayStream(relay, "stdout"), _RelayStream(relay, "stderr"))  # the child's prints, to the client
    try:
        with _SETUP_LOCK:
            pipeline = _worker_pipeline(task, cache_dir, shared)
            if task.script is not None:
                spec = replace(spec, path=_upload_path(pipeline.cache.root, spec, task.script))
            body = _StampedSend(pipeline, host, worker.address, shared)
            child = StreamingChild(body.run, spec, outputs=outputs)
    except BaseException as e:  # noqa: BLE001 - reported as this input's error, never a worker crash
        import traceback

        relay.send(("attempt", uuid.uuid4().hex, where, None),
                   ("ended", Status.ERROR, f"tk failed on worker {host}: {one_line(e)}",
                    "".join(traceback.format_exception(e)), worker_hint(e)))
        return "error"
    relay.send(("attempt", uuid.uuid4().hex, where, str(spec.path) if task.script is not None else None))
    finished = threading.Event()

    def watch_stop():  # the client's stop (its time limit, Ctrl-C) kills the child; idle ticks
        while not finished.is_set():
            try:
                if stop.wait(timeout=1.0):
                    if not finished.is_set():
                        with contextlib.suppress(OSError):
                            os.killpg(child.pid, signal.SIGKILL)
                    return
                if not finished.is_set():
                    relay.tick()
            except Exception:  # noqa: BLE001 - the scheduler is unreachable: try again
                time.sleep(1.0)

    watcher = threading.Thread(target=watch_stop, name="tk-stop-watch", daemon=True)
    watcher.start()
    try:
        with child:
            while True:
                try:
                    message = child.receive(None)
                except ChildEnded as ended:
                    relay.send(("ended", ended.status, ended.error, ended.stack, ended.hint))
                    return ended.status.value
                relay.send(message)
                if message[0] in ("done", "tk_error", "crash"):
                    child.wait()
                    return message[0]
    finally:
        # the task's own stop wakes the watcher at once (waiting out its 1 s wait cost every task up
        # to that second: 20 small scripts took 20 s instead of 6 s); it then kills nothing
        finished.set()
        with contextlib.suppress(Exception):
            stop.set()
        watcher.join(timeout=5.0)


def worker_hint(exc: BaseException) -> str:
    """What to do when a Dask worker could not run tk's task for an input, from the exception."""
    from turnkey_like import __version__

    if isinstance(exc, TkError) and exc.hint:  # tk's own error on the worker (an unwritable cache) says
        return exc.hint
    if isinstance(exc, ImportError):
        return (f"install turnkey_like {__version__} (this client's version) on every worker, with the "
                "packages the scripts import, then restart the workers")
    if isinstance(exc, OSError):
        return ("the worker could not start the input's process (memory, process limit, or a full "
                "disk): check the worker's machine, or run the input without --scheduler")
    return ("the worker could not prepare the input: rerun with --traceback for where it failed, and "
            f"check that the workers run turnkey_like {__version__} as this client does")


class _TaskCall:
    """One input's Dask task as bytes that *call* :func:`_run_task` when unpickled.

    The task Dask runs is ``pickle.loads(payload)``: Dask's own message then names only ``pickle``,
    so a worker without tk (or with a tk that lacks what this client sends) receives it, and the
    ``ImportError`` of unpickling is the task's error, reported for the input with the fix
    (:func:`worker_hint`). Were ``_run_task`` and its arguments Dask's message, the worker would fail
    to deserialize it, take that for a broken connection and close, leaving the input waiting.
    """

    def __init__(self, task: _Task):
        self.task = task

    def __reduce__(self):
        return _run_task, (self.task,)

    @staticmethod
    def payload(task: _Task) -> bytes:
        return pickle.dumps(_TaskCall(task), protocol=pickle.HIGHEST_PROTOCOL)


class _StampedSend:
    """The child's body on a worker: the guarded ``child_body``, with each record stamped with the
    host it was built on (and written to the worker's own cache when it has one)."""

    def __init__(self, pipeline, host: str, address: str, shared: bool):
        self.pipeline, self.host, self.address, self.shared = pipeline, host, address, shared

    def run(self, send, spec) -> None:
        def stamped(message):
            if message[0] == "save":
                record = message[1]
                record.system = {**record.system, "host": self.host, "dask_worker": self.address}
                if not self.shared:
                    with contextlib.suppress(TkError, OSError):
                        self.pipeline.save(record)  # the worker's own cache: its ONNX files' record
            send(message)

        _guarded_body(self.pipeline, stamped, spec)


# --------------------------------------------------------------------------------------------------
# The client side
# --------------------------------------------------------------------------------------------------


class DaskChannel:
    """The client's end of one input's Dask task: what ``Pipeline.consume`` reads.

    Same interface as :class:`~turnkey_like.launcher.StreamingChild`: ``receive(timeout_s)`` returns
    the child's next message or raises :class:`~turnkey_like.launcher.ChildEnded`; ``kill()`` stops
    the child on its worker; ``wait()`` after the last message. The script's output is written to
    this process's stdout/stderr as it arrives.

    A new attempt (the worker died; Dask started the task again elsewhere) ends this channel with
    ``ChildEnded(KILLED)`` and :attr:`retry` set; :meth:`successor` continues with that attempt.
    """

    def __init__(self, future, queue, stop, *, client_path: str = "", buffer: deque | None = None,
                 attempt: int = 0):
        self.future, self.queue, self.stop = future, queue, stop
        self.client_path = client_path
        self.paths: dict[str, str] = {}
        self.interrupted = False
        self.buffer: deque = buffer if buffer is not None else deque()
        self.attempt = attempt
        self.token: str | None = None
        self.where = "a Dask worker"
        self.retry = False
        self.finished = False

    def __enter__(self) -> DaskChannel:
        return self

    def __exit__(self, *exc) -> None:
        if not self.finished and not self.retry:
            self.kill()

    def successor(self) -> DaskChannel:
        """The channel of the attempt that follows a lost worker (same task, same queue)."""
        return DaskChannel(self.future, self.queue, self.stop, client_path=self.client_path, buffer=self.buffer,
                           attempt=self.attempt)

    def start(self) -> None:
        """Wait (without a limit: the task may queue behind others) for the task's attempt to begin.

        Raises:
            ChildEnded: the task failed before it began (the worker could not run it).
        """
        while self.token is None:
            self._fill()
            while self.buffer and self.buffer[0][0] in ("tick", "wake"):
                self.buffer.popleft()
            if self.buffer and self.buffer[0][0] == "attempt":
                self._begin(self.buffer.popleft())

    def _begin(self, message) -> None:
        self.attempt += 1
        self.token, self.where = message[1], message[2]
        if message[3]:  # an uploaded script: records name the client's file, not the worker's copy
            self.paths = {message[3]: self.client_path}
        if self.attempt > MAX_ATTEMPTS:  # a cluster allowing more retries than tk does: stop here
            self.kill()
            raise self._workers_died()

    def _fill(self) -> None:
        """Move the next queued batch into the buffer (waiting for it: the worker ticks every
        :data:`TICK_S` seconds, and the task's end puts a ``wake``); raise when the task ended.

        Raises:
            ChildEnded: the task ended (failed, cancelled, lost) with no more messages queued.
        """
        if not self.future.done():
            self.buffer.extend(pickle.loads(self.queue.get()))
            return
        late = self.queue.get(batch=True)  # the task ended: what it sent last, without waiting
        for batch in late:
            self.buffer.extend(pickle.loads(batch))
        if any(message[0] not in ("tick", "wake") for message in self.buffer):
            return
        status = self.future.status
        if status == "finished":
            raise ChildEnded(Status.ERROR, f"the task on {self.where} ended without its last message",
                             hint=TK_BUG_HINT)
        raise self._task_failed(status)

    def wake(self) -> None:
        """Put a ``wake`` in the queue, so a :meth:`receive` waiting on it looks at the task again."""
        with contextlib.suppress(Exception):
            self.queue.put(pickle.dumps([("wake",)]))

    def _task_failed(self, status: str) -> ChildEnded:
        """How the task ended when it failed as a Dask task (not as a script): reason, stack, hint."""
        if status != "error":
            return ChildEnded(Status.KILLED, f"the Dask task was {status}",
                              hint="the cluster dropped the task (a restarted or closing cluster): rerun the input")
        exc = self.future.exception()
        if type(exc).__name__ == "KilledWorker":
            return self._workers_died()
        import traceback

        stack = "".join(traceback.format_exception(type(exc), exc, self.future.traceback()))
        return ChildEnded(Status.ERROR, f"the Dask task failed on {self.where}: {one_line(exc)}", stack,
                          worker_hint(exc))

    def _workers_died(self) -> ChildEnded:
        return ChildEnded(Status.KILLED, f"the Dask worker running it died {MAX_ATTEMPTS} times "
                                         "(killed, or out of memory)",
                          hint=f"run `python {self.client_path}` alone to see whether it needs more memory than "
                               "a worker may use (`dask worker --memory-limit`); the workers' logs say why they died")

    def receive(self, timeout_s: float | None) -> Any:
        """The child's next message, waiting at most ``timeout_s`` seconds (``None``: no limit).

        Raises:
            ChildEnded: the child ended early on its worker, its worker died, or ``timeout_s``
                passed (then the child is killed; status ``timeout``).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if self.interrupted:
                self.kill()
                raise KeyboardInterrupt
            while self.buffer:
                message = self.buffer.popleft()
                kind = message[0]
                if kind == "attempt":
                    if self.token is None:
                        self._begin(message)
                        continue
                    self.buffer.appendleft(message)
                    self.retry = True
                    raise ChildEnded(Status.KILLED, f"the Dask worker {self.where} died (killed, or out of "
                                                    "memory); the input is retried on another worker")
                if kind in ("tick", "wake"):
                    continue
                if kind == "output":
                    stream = sys.stdout if message[1] == "stdout" else sys.stderr
                    with contextlib.suppress(OSError, ValueError):
                        stream.write(message[2])
                        stream.flush()
                    continue
                if kind == "ended":
                    self.finished = True
                    raise ChildEnded(*message[1:])
                if kind in ("done", "tk_error", "crash"):
                    self.finished = True
                return self._local_paths(message)
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                raise ChildEnded(Status.TIMEOUT, f"timed out after {timeout_s:g} s (child killed)")
            self._fill()

    def _local_paths(self, message):
        """Uploaded scripts: name the client's file in the records, not the worker's copy."""
        if not self.paths:
            return message
        for value in message[1:]:
            results = [value] if isinstance(value, ScriptResult) else []
            if hasattr(value, "script") and value.script in self.paths:
                value.script = self.paths[value.script]
                value.model.source_file = self.paths.get(value.model.source_file, value.model.source_file)
            for result in results:
                result.path = self.paths.get(result.path, result.path)
                for model in result.walk_models():
                    model.source_file = self.paths.get(model.source_file, model.source_file)
        return message

    def kill(self) -> None:
        """Stop the child on its worker (its whole process group) and forget the task."""
        self.finished = True
        with contextlib.suppress(Exception):
            self.stop.set()
        with contextlib.suppress(Exception):
            self.future.cancel()

    def wait(self) -> None:
        """The child sent its last message: nothing to wait for here (the worker reaps it)."""
        self.finished = True

    def interrupt(self) -> None:
        """Ctrl-C on the client: the next :meth:`receive` kills the child and raises KeyboardInterrupt
        in the thread consuming this channel (which records the running stage ``interrupted``)."""
        self.interrupted = True
        self.wake()


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
        future = self.client.submit(pickle.loads, _TaskCall.payload(task), key=name, pure=False)
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

    def _task(self, spec: InputSpec, name: str) -> _Task:
        script = None
        if self.corpus.upload and spec.model is None:
            try:
                script = Path(spec.path).read_bytes()
            except OSError as e:
                raise InputError(f"{spec.path}: cannot read ({e.strerror})") from None
        previous = [encode(r) for r in self._previous_records(spec)] if self.corpus.scheduler else []
        return _Task(spec=spec, options=self.pipeline.options, run_id=self.pipeline.run_id, queue=f"{name}-q",
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
                data = self.client.submit(_read_build_files, files, build.data_files, pure=False,
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


def _read_build_files(files: list[str], data_files: list[str]) -> dict[str, bytes]:
    """On the worker that built them: the bytes of a build's ONNX files (and external data), by path."""
    out: dict[str, bytes] = {}
    folders = {str(Path(f).parent) for f in files}
    for path in [*files, *(str(Path(folder) / name) for folder in folders for name in data_files)]:
        if os.path.isfile(path) and path not in out:
            with open(path, "rb") as f:
                out[path] = f.read()
    return out
