"""The client's end of one corpus task: :class:`DaskChannel`, what ``Pipeline.consume`` (and the
survey's ``consume_survey``) read, as they read a local :class:`~turnkey_like.launcher.StreamingChild`.

The task's worker (:func:`turnkey_like.corpus.worker.run_task`) puts batches of messages (the one
channel protocol, :data:`~turnkey_like.records.Message`) in the task's ``distributed.Queue``; this
channel decodes and validates them, writes what the child printed, hands the child's own messages
on, and turns the task's end (a child that ended early, a worker that died, a task Dask dropped)
into :class:`~turnkey_like.launcher.ChildEnded`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from typing import TextIO

from turnkey_like.corpus.worker import decode_batch, worker_hint
from turnkey_like.errors import TkError, one_line
from turnkey_like.launcher import TK_BUG_HINT, ChildEnded
from turnkey_like.records import (
    LAST,
    Attempt,
    Discovered,
    Done,
    Ended,
    FoundCall,
    Message,
    Output,
    Save,
    Status,
    Tick,
    Wake,
    encode,
)

#: attempts of one task (the first, and one retry after a worker died)
MAX_ATTEMPTS = 2


class DaskChannel:
    """The client's end of one input's Dask task: what ``Pipeline.consume`` reads.

    Same interface as :class:`~turnkey_like.launcher.StreamingChild`: ``receive(timeout_s)`` returns
    the child's next message or raises :class:`~turnkey_like.launcher.ChildEnded`; ``kill()`` stops
    the child on its worker; ``wait()`` after the last message. What the child prints is written to
    :attr:`outputs` (this process's stdout/stderr unless set) as it arrives.

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
        #: the text streams that receive the child's stdout and stderr (``None``: this process's)
        self.outputs: tuple[TextIO, TextIO] | None = None

    def __enter__(self) -> DaskChannel:
        return self

    def __exit__(self, *exc) -> None:
        if not self.finished and not self.retry:
            self.kill()

    def successor(self) -> DaskChannel:
        """The channel of the attempt that follows a lost worker (same task, same queue)."""
        successor = DaskChannel(self.future, self.queue, self.stop, client_path=self.client_path,
                                buffer=self.buffer, attempt=self.attempt)
        successor.outputs = self.outputs
        return successor

    def start(self) -> None:
        """Wait (without a limit: the task may queue behind others) for the task's attempt to begin.

        Raises:
            ChildEnded: the task failed before it began (the worker could not run it).
        """
        while self.token is None:
            self._fill()
            while self.buffer and isinstance(self.buffer[0], (Tick, Wake)):
                self.buffer.popleft()
            if self.buffer and isinstance(self.buffer[0], Attempt):
                self._begin(self.buffer.popleft())

    def _begin(self, message: Attempt) -> None:
        self.attempt += 1
        self.token, self.where = message.token, message.where
        if message.uploaded:  # an uploaded script: records name the client's file, not the worker's copy
            self.paths = {message.uploaded: self.client_path}
        if self.attempt > MAX_ATTEMPTS:  # a cluster allowing more retries than tk does: stop here
            self.kill()
            raise self._workers_died()

    def _fill(self) -> None:
        """Move the next queued batch into the buffer (waiting for it: the worker ticks every
        :data:`TICK_S` seconds, and the task's end puts a ``wake``); raise when the task ended.

        Raises:
            ChildEnded: the task ended (failed, cancelled, lost) with no more messages queued, or
                sent something that is not a batch of messages (another tk on the worker).
        """
        if not self.future.done():
            self.buffer.extend(self._decode(self.queue.get()))
            return
        late = self.queue.get(batch=True)  # the task ended: what it sent last, without waiting
        for batch in late:
            self.buffer.extend(self._decode(batch))
        if any(not isinstance(message, (Tick, Wake)) for message in self.buffer):
            return
        status = self.future.status
        if status == "finished":
            raise ChildEnded(Status.ERROR, f"the task on {self.where} ended without its last message",
                             hint=TK_BUG_HINT)
        raise self._task_failed(status)

    def _decode(self, data: bytes) -> list[Message]:
        try:
            return decode_batch(data)
        except TkError as e:
            self.kill()
            raise ChildEnded(Status.ERROR, f"the task on {self.where} sent what this tk cannot read: {e.message}",
                             hint=worker_hint(ImportError())) from None

    def wake(self) -> None:
        """Put a ``Wake`` in the queue, so a :meth:`receive` waiting on it looks at the task again."""
        with contextlib.suppress(Exception):
            self.queue.put(encode([Wake()]))

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

    def receive(self, timeout_s: float | None) -> Message:
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
                match message:
                    case Attempt() if self.token is None:
                        self._begin(message)
                    case Attempt():
                        self.buffer.appendleft(message)
                        self.retry = True
                        raise ChildEnded(Status.KILLED, f"the Dask worker {self.where} died (killed, or out of "
                                                        "memory); the input is retried on another worker")
                    case Tick() | Wake():
                        pass
                    case Output(stream=name, text=text):
                        self._write(name, text)
                    case Ended(status=status, error=error, stack=stack, hint=hint):
                        self.finished = True
                        raise ChildEnded(status, error, stack, hint)
                    case _:
                        self.finished = self.finished or isinstance(message, LAST)
                        return self._local_paths(message)
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                raise ChildEnded(Status.TIMEOUT, f"timed out after {timeout_s:g} s (child killed)")
            self._fill()

    def _write(self, name: str, text: str) -> None:
        """Write what the child printed to its stream here (a closed stream drops it)."""
        out, err = self.outputs or (sys.stdout, sys.stderr)
        stream = out if name == "stdout" else err
        with contextlib.suppress(OSError, ValueError):
            stream.write(text)
            stream.flush()

    def _local_paths(self, message: Message) -> Message:
        """Uploaded scripts: name the client's file in the records, not the worker's copy."""
        if not self.paths:
            return message
        match message:
            case Save(record=record) if record.script in self.paths:
                record.script = self.paths[record.script]
                record.model.source_file = self.paths.get(record.model.source_file, record.model.source_file)
            case FoundCall(model=model) if model is not None:
                model.source_file = self.paths.get(model.source_file, model.source_file)
            case Discovered(result=result) | Done(result=result):
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
