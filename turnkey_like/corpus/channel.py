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

#: deaths of a worker, each while it ran the input alone, after which the input is recorded ``killed``
MAX_ATTEMPTS = 2


class DaskChannel:
    """The client's end of one attempt of an input's Dask task: what ``Pipeline.consume`` reads.

    Same interface as :class:`~turnkey_like.launcher.StreamingChild`: ``receive(timeout_s)`` returns
    the child's next message or raises :class:`~turnkey_like.launcher.ChildEnded`; ``kill()`` stops
    the child on its worker; ``wait()`` after the last message. What the child prints is written to
    :attr:`outputs` (this process's stdout/stderr unless set) as it arrives.

    The task is pinned to the worker at :attr:`address` (the runner's
    :class:`~turnkey_like.corpus.dask_runner.WorkerSlots` chose it). When that worker is lost (Dask
    reports ``KilledWorker``, or the runner's watch finds it gone: :meth:`lose`), the channel ends
    with ``ChildEnded(KILLED)`` and :attr:`lost` set; :attr:`charged` says whether the death counts
    against this input (it ran alone on the worker, so it is the likely cause) and :attr:`retry`
    whether the runner starts another attempt (always, until :data:`MAX_ATTEMPTS` charged deaths).
    An attempt that had not begun (queued behind another task) is never charged.

    Args:
        future, queue, stop: the task's Dask future, message queue and stop event.
        client_path: the input as the user named it (messages, hints).
        address: the worker the task is pinned to.
        alone: nothing else runs on that worker during this attempt.
        deaths: charged deaths of this input's earlier attempts.
    """

    def __init__(self, future, queue, stop, *, client_path: str = "", address: str = "", alone: bool = False,
                 deaths: int = 0):
        self.future, self.queue, self.stop = future, queue, stop
        self.client_path, self.address, self.alone, self.deaths = client_path, address, alone, deaths
        self.paths: dict[str, str] = {}
        self.interrupted: KeyboardInterrupt | None = None
        self.buffer: deque = deque()
        self.token: str | None = None
        self.where = "a Dask worker"
        self.lost = False
        self.charged = False
        self.retry = False
        self.finished = False
        self._worker_gone = False
        self.closed = False
        #: the text streams that receive the child's stdout and stderr (``None``: this process's)
        self.outputs: tuple[TextIO, TextIO] | None = None

    def __enter__(self) -> DaskChannel:
        return self

    def __exit__(self, *exc) -> None:
        if not self.finished and not self.lost:
            self.kill()

    @property
    def began(self) -> bool:
        """The attempt began on its worker (its ``Attempt`` arrived)."""
        return self.token is not None

    def start(self) -> None:
        """Wait for the attempt to begin (the worker was free when it was submitted: a moment).

        Raises:
            ChildEnded: the task failed before it began (the worker could not run it, or was lost:
                then :attr:`lost` is set and the attempt was not charged).
            KeyboardInterrupt: :meth:`interrupt` was called (Ctrl-C or SIGTERM on the client).
        """
        while self.token is None:
            self._check_interrupted()
            self._fill()
            while self.buffer and isinstance(self.buffer[0], (Tick, Wake)):
                self.buffer.popleft()
            if self.buffer and isinstance(self.buffer[0], Attempt):
                self._begin(self.buffer.popleft())

    def _begin(self, message: Attempt) -> None:
        self.token, self.where = message.token, message.where
        if message.uploaded:  # an uploaded script: records name the client's file, not the worker's copy
            self.paths = {message.uploaded: self.client_path}

    def _check_interrupted(self) -> None:
        if self.interrupted is not None:
            self.kill()
            raise type(self.interrupted)()

    def _fill(self) -> None:
        """Move the next queued batch into the buffer (waiting for it: the worker ticks every
        :data:`TICK_S` seconds, and the task's end, a lost worker or an interrupt put a ``wake``);
        raise when the task ended.

        Raises:
            ChildEnded: the task ended (failed, cancelled, its worker lost) with no more messages
                queued, or sent something that is not a batch of messages (another tk on the worker).
        """
        if not self.future.done() and not self._worker_gone:
            self.buffer.extend(self._decode(self.queue.get()))
            return
        late = self.queue.get(batch=True)  # the task ended: what it sent last, without waiting
        for batch in late:
            self.buffer.extend(self._decode(batch))
        if any(not isinstance(message, (Tick, Wake)) for message in self.buffer):
            return
        if self._worker_gone:
            raise self._lost()
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
        """Put a ``Wake`` in the queue, so a :meth:`receive` waiting on it looks at the task again
        (nothing once :meth:`close` closed the queue)."""
        if self.closed:
            return
        with contextlib.suppress(Exception):
            self.queue.put(encode([Wake()]))

    def close(self) -> None:
        """Close the task's queue (the attempt is over)."""
        self.closed = True
        with contextlib.suppress(Exception):
            self.queue.close()

    def lose(self) -> None:
        """The runner found the worker of this attempt gone: end the attempt once what it sent is read."""
        self._worker_gone = True
        self.wake()

    def _task_failed(self, status: str) -> ChildEnded:
        """How the task ended when it failed as a Dask task (not as a script): reason, stack, hint."""
        if status != "error":
            return ChildEnded(Status.KILLED, f"the Dask task was {status}",
                              hint="the cluster dropped the task (a restarted or closing cluster): rerun the input")
        exc = self.future.exception()
        if type(exc).__name__ == "KilledWorker":  # its worker died (Dask gave up on a task pinned there)
            return self._lost()
        import traceback

        stack = "".join(traceback.format_exception(type(exc), exc, self.future.traceback()))
        return ChildEnded(Status.ERROR, f"the Dask task failed on {self.where}: {one_line(exc)}", stack,
                          worker_hint(exc))

    def _lost(self) -> ChildEnded:
        """The worker of this attempt died: charge the input when it ran alone there, and say whether
        it is retried (alone, on another worker) or recorded ``killed`` after its last charged death."""
        self.lost = self.finished = True
        self.charged = self.began and self.alone
        deaths = self.deaths + self.charged
        self.retry = deaths < MAX_ATTEMPTS
        if self.retry:
            return ChildEnded(Status.KILLED, f"the Dask worker {self.where} died (killed, or out of memory); "
                                             "the input is retried alone on another worker")
        return ChildEnded(Status.KILLED, f"the Dask worker running it died {MAX_ATTEMPTS} times "
                                         "(killed, or out of memory)",
                          hint=f"run `python {self.client_path}` alone to see whether it needs more memory than "
                               "a worker may use (`dask worker --memory-limit`); the workers' logs say why they died")

    def receive(self, timeout_s: float | None) -> Message:
        """The child's next message, waiting at most ``timeout_s`` seconds (``None``: no limit).

        Raises:
            ChildEnded: the child ended early on its worker, its worker died, or ``timeout_s``
                passed (then the child is killed; status ``timeout``).
            KeyboardInterrupt: :meth:`interrupt` was called (Ctrl-C or SIGTERM on the client).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self._check_interrupted()
            while self.buffer:
                message = self.buffer.popleft()
                match message:
                    case Attempt() if self.token is None:
                        self._begin(message)
                    case Attempt():  # the task ran again (its worker came back at the same address)
                        self.kill()
                        raise self._lost()
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
        """Stop the child on its worker (its whole process group: the task then ends by itself), and
        cancel the task if it had not begun."""
        self.finished = True
        with contextlib.suppress(Exception):
            self.stop.set()
        if not self.began:
            with contextlib.suppress(Exception):
                self.future.cancel()

    def wait(self) -> None:
        """The child sent its last message: nothing to wait for here (the worker reaps it)."""
        self.finished = True

    def interrupt(self, stop: KeyboardInterrupt) -> None:
        """Ctrl-C (or SIGTERM: ``stop`` is the exception tk's main thread got) on the client: the child
        is stopped at once, and the next :meth:`receive` (or :meth:`start`) raises ``stop``'s kind in
        the thread consuming this channel (which records the running stage ``interrupted``)."""
        self.interrupted = stop
        self.kill()
        self.wake()
