"""The worker's side of every corpus task: start the task's child, relay each of its messages to the
client, stop it when the client asks.

A task (an input of ``tk benchmark``: :class:`~turnkey_like.corpus.input_task.InputTask`; a zoo model
of ``tk discover-models``: :class:`~turnkey_like.corpus.survey.SurveyTask`) says what its child runs
(:meth:`WorkerTask.prepare` gives a :class:`ChildWork`); :func:`run_task` runs it in a
:class:`~turnkey_like.launcher.StreamingChild` on the worker, exactly as on one machine, and puts
every message of that child (the one channel protocol, :data:`~turnkey_like.records.Message`,
encoded with the one codec) in a ``distributed.Queue`` of the task's own, which the client's
:class:`~turnkey_like.corpus.channel.DaskChannel` reads.

A worker may be started any way: ``dask worker ADDRESS`` with no options gives daemonic worker
processes (tk forks with ``os.fork``, which ``multiprocessing``'s refusal does not concern), a
thread per core (one task's setup and fork at a time per process, :data:`_SETUP_LOCK`) and no
preload (:func:`prepare_worker` runs in the first task).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from turnkey_like.errors import TkError, one_line
from turnkey_like.launcher import ChildEnded
from turnkey_like.records import LAST, Attempt, Batch, Ended, Message, Output, Status, Tick, decode, encode

#: seconds of silence after which a task sends a ``Tick``: the client waits on its queue without a
#: timeout (a timed-out ``Queue.get`` is logged as an error by the scheduler), and ticks let it check
#: its own time limits
TICK_S = 2.0


@dataclass
class ChildWork:
    """What a task's child runs: ``fn(send, *args)`` in a :class:`~turnkey_like.launcher.StreamingChild`.

    Attributes:
        uploaded: the worker's copy of a script the client uploaded (``--upload``), else ``None``.
        fresh_thread: run ``fn`` on a fresh thread of the child (``StreamingChild``'s option).
        memory_limit: the cap on the child's resident memory, bytes (``StreamingChild``'s option).
    """

    fn: Callable[..., None]
    args: tuple = ()
    uploaded: str | None = None
    fresh_thread: bool | None = None
    memory_limit: int | None = None


class WorkerTask(Protocol):
    """A corpus task as the worker sees it (pickled by Dask with :class:`TaskCall`).

    Attributes:
        queue, stop: the names of the task's ``distributed.Queue`` (its messages) and of the
            client's ``distributed.Event`` that stops it.
    """

    queue: str
    stop: str

    def prepare(self, host: str, address: str) -> ChildWork:
        """Get this worker ready for the task (in its process, under :data:`_SETUP_LOCK`) and say
        what the task's child runs. Raises anything: the task's input then fails with the reason."""


def decode_batch(data: bytes) -> list[Message]:
    """The messages of one queue item (:meth:`_Relay.send`), validated.

    Raises:
        RecordError: the item is not a batch of messages (another tk on the worker).
    """
    return decode(data, Batch, what="a batch of messages from a Dask task")


class _Relay:
    """Sends messages to the client's queue in batches (one queue item per ``send``)."""

    def __init__(self, queue):
        self.queue = queue
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def send(self, *messages: Message) -> None:
        with self.lock:
            self.queue.put(encode(list(messages)))
            self.last = time.monotonic()

    def tick(self) -> None:
        """Send a ``Tick`` when nothing was sent for :data:`TICK_S` seconds."""
        if time.monotonic() - self.last >= TICK_S:
            self.send(Tick())


class _RelayStream(io.TextIOBase):
    """A text stream whose writes become ``Output`` messages (what the child prints)."""

    def __init__(self, relay: _Relay, name: str):
        self.relay, self.name = relay, name

    def write(self, text: str) -> int:
        if text:
            self.relay.send(Output(stream=self.name, text=text))
        return len(text)

    def writable(self) -> bool:
        return True


#: the exit hook of :func:`prepare_worker` is registered in this worker process
_EXIT_HOOK_REGISTERED = False


def prepare_worker(characterize: bool = True) -> None:
    """Make this worker process ready for inputs: import what every input child would otherwise
    import again (:func:`turnkey_like.pipeline.preload_for_children`: torch, and torch._dynamo for
    the ONNX export; the children inherit them through the fork; a dictionary look-up once imported), and
    freeze the garbage collector at exit, as tk's own exit does (collecting torch's objects took a
    worker 1.0 s to exit, 0.2 s frozen)."""
    global _EXIT_HOOK_REGISTERED
    from turnkey_like.pipeline import preload_for_children

    preload_for_children(dynamo=characterize)
    if not _EXIT_HOOK_REGISTERED:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _EXIT_HOOK_REGISTERED = True


#: one task's setup and fork at a time in a worker process: a worker with several threads (``dask
#: worker``'s default: one per core) would otherwise fork one task's child while another task's
#: thread imports a module, and the child would inherit that module's import lock, held by a thread
#: that does not exist there (its first import of the module then waits forever)
_SETUP_LOCK = threading.Lock()


def run_task(task: WorkerTask) -> str:
    """The Dask task: run the task's child in a :class:`StreamingChild` here, relay every message.

    The first message of an attempt is ``Attempt`` (a token, where, the uploaded script); the
    child's messages follow in order; an early end becomes ``Ended`` (the fields of
    :class:`~turnkey_like.launcher.ChildEnded`). The client's stop event (its timeout or Ctrl-C)
    kills the child's process group. Returns how the attempt ended (a word).
    """
    from distributed import Event, Queue, get_client, get_worker

    from turnkey_like.launcher import StreamingChild

    client = get_client()
    relay = _Relay(Queue(task.queue, client=client))
    stop = Event(task.stop, client=client)
    worker = get_worker()
    host = socket.gethostname()
    where = f"{host} ({worker.address})"
    outputs = (_RelayStream(relay, "stdout"), _RelayStream(relay, "stderr"))  # the child's prints, to the client
    try:
        with _SETUP_LOCK:
            work = task.prepare(host, worker.address)
            child = StreamingChild(work.fn, *work.args, outputs=outputs, fresh_thread=work.fresh_thread,
                                   memory_limit=work.memory_limit)
    except BaseException as e:  # noqa: BLE001 - reported as this task's error, never a worker crash
        import traceback

        relay.send(Attempt(token=uuid.uuid4().hex, where=where),
                   Ended(status=Status.ERROR, error=f"tk failed on worker {host}: {one_line(e)}",
                         stack="".join(traceback.format_exception(e)), hint=worker_hint(e)))
        return "error"
    relay.send(Attempt(token=uuid.uuid4().hex, where=where, uploaded=work.uploaded))
    finished = threading.Event()
    watcher = threading.Thread(target=_watch_stop, args=(stop, finished, child.pid, relay),
                               name="tk-stop-watch", daemon=True)
    watcher.start()
    try:
        return _relay_child(child, relay)
    finally:
        # the task's own stop wakes the watcher at once (waiting out its 1 s wait cost every task up
        # to that second: 20 small scripts took 20 s instead of 6 s); it then kills nothing
        finished.set()
        with contextlib.suppress(Exception):
            stop.set()
        watcher.join(timeout=5.0)


def _relay_child(child, relay: _Relay) -> str:
    """Relay every message of ``child`` until its last one (or its end); return how it ended."""
    with child:
        while True:
            try:
                message = child.receive(None)
            except ChildEnded as ended:
                relay.send(Ended(status=ended.status, error=ended.error, stack=ended.stack, hint=ended.hint))
                return ended.status.value
            relay.send(message)
            if isinstance(message, LAST):
                child.wait()
                return type(message).__name__


def _watch_stop(stop, finished: threading.Event, pid: int, relay: _Relay) -> None:
    """The client's stop (its time limit, Ctrl-C) kills the child's group; idle ticks meanwhile."""
    while not finished.is_set():
        try:
            if stop.wait(timeout=1.0):
                if not finished.is_set():
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
                return
            if not finished.is_set():
                relay.tick()
        except Exception:  # noqa: BLE001 - the scheduler is unreachable: try again
            time.sleep(1.0)


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
    """One task as bytes that *call* :func:`run_task` when unpickled.

    The task Dask runs is ``pickle.loads(payload)``: Dask's own message then names only ``pickle``,
    so a worker without tk (or with a tk that lacks what this client sends) receives it, and the
    ``ImportError`` of unpickling is the task's error, reported for the input with the fix
    (:func:`worker_hint`). Were ``run_task`` and its arguments Dask's message, the worker would fail
    to deserialize it, take that for a broken connection and close, leaving the input waiting.
    """

    def __init__(self, task: Any):
        self.task = task

    def __reduce__(self):
        return run_task, (self.task,)

    @staticmethod
    def payload(task: Any) -> bytes:
        """The pickled call of ``run_task(task)`` (what the client submits to ``pickle.loads``)."""
        return pickle.dumps(TaskCall(task), protocol=pickle.HIGHEST_PROTOCOL)
