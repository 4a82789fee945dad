"""One input as a Dask task: what runs on the worker, and the client's channel to it.

The worker's side (:func:`_run_task`, sent as :class:`TaskCall`) runs the input in a
:class:`~turnkey_like.launcher.StreamingChild` with ``Pipeline.child_body``, exactly as on one
machine, and relays every message of that child to the client through a ``distributed.Queue`` of
its own; the client's :class:`DaskChannel` reads them with the same ``receive``/``kill``/``wait``
interface as a local child, for ``Pipeline.consume``. :mod:`turnkey_like.corpus` submits the tasks
and runs the corpus (see its module doc for where files live and how failures are retried).

A worker may be started any way: ``dask worker ADDRESS`` with no options gives daemonic worker
processes (tk forks with ``os.fork``, which ``multiprocessing``'s refusal does not concern), a
thread per core (one input's setup and fork at a time per process, :data:`_SETUP_LOCK`) and no
preload (:func:`prepare_worker` runs in the first task).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import pickle
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from turnkey_like.errors import TkError, one_line
from turnkey_like.launcher import TK_BUG_HINT, ChildEnded
from turnkey_like.records import ScriptResult, Status, decode

#: folder of the cache root that holds corpus bookkeeping (never a build: build names start with a
#: letter or digit)
CORPUS_DIR = ".corpus"
#: scripts shipped to a worker with ``--upload`` (in the worker's cache)
UPLOADS_DIR = "uploads"
#: the token that tells a worker it sees the client's cache folder
CACHE_ID_FILE = "cache-id"
#: attempts of one input (the first, and one retry after a worker died)
MAX_ATTEMPTS = 2


# --------------------------------------------------------------------------------------------------
# The worker side
# --------------------------------------------------------------------------------------------------


@dataclass
class InputTask:
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


def _worker_cache(task: InputTask) -> tuple[str | None, bool]:
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


def _worker_pipeline(task: InputTask, cache_dir: str | None, shared: bool):
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


def _share_cores(task: InputTask) -> int | None:
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


def _run_task(task: InputTask) -> str:
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


class TaskCall:
    """One input's Dask task as bytes that *call* :func:`_run_task` when unpickled.

    The task Dask runs is ``pickle.loads(payload)``: Dask's own message then names only ``pickle``,
    so a worker without tk (or with a tk that lacks what this client sends) receives it, and the
    ``ImportError`` of unpickling is the task's error, reported for the input with the fix
    (:func:`worker_hint`). Were ``_run_task`` and its arguments Dask's message, the worker would fail
    to deserialize it, take that for a broken connection and close, leaving the input waiting.
    """

    def __init__(self, task: InputTask):
        self.task = task

    def __reduce__(self):
        return _run_task, (self.task,)

    @staticmethod
    def payload(task: InputTask) -> bytes:
        return pickle.dumps(TaskCall(task), protocol=pickle.HIGHEST_PROTOCOL)


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


def read_build_files(files: list[str], data_files: list[str]) -> dict[str, bytes]:
    """On the worker that built them: the bytes of a build's ONNX files (and external data), by path."""
    out: dict[str, bytes] = {}
    folders = {str(Path(f).parent) for f in files}
    for path in [*files, *(str(Path(folder) / name) for folder in folders for name in data_files)]:
        if os.path.isfile(path) and path not in out:
            with open(path, "rb") as f:
                out[path] = f.read()
    return out
