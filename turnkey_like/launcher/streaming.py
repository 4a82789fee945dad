"""A child that streams messages while it works (:class:`StreamingChild`), and how such a child ended
(:class:`ChildEnded`).

:class:`StreamingChild` is the long-lived kind: a forked child in its own process group that sends
messages (records, progress events: the one channel protocol, ``records.Message``, encoded and
validated by the one codec) to the parent while it works, so what it found before it crashed is not
lost. The pipeline runs each input's discovery and stages in one, the zoo survey each model.
"""

from __future__ import annotations

import codecs
import contextlib
import multiprocessing
import os
import select
import signal
import sys
import time
from typing import Any, Callable, TextIO

from turnkey_like.errors import TkError
from turnkey_like.launcher.process import (
    ForkedProcess,
    Raised,
    _call_in_fresh_thread,
    die_with_parent,
    hold_standard_fds,
    signal_name,
    signals_as_under_python,
)
from turnkey_like.launcher.leftovers import adopt_orphans, forget_inherited_exit_handlers
from turnkey_like.launcher.memory import MemoryWatch
from turnkey_like.records import Discovered, Message, Status, decode, encode

#: the hint for a failure of tk itself in a child (not of the script, its models or the machine)
TK_BUG_HINT = "this is a bug in tk: rerun with --traceback and report the trace"


#: seconds :meth:`StreamingChild.receive` lets messages gather after it woke for one, when it had
#: read all those before: a child sending many (a shape sweep's found calls, one each) is read in
#: at most 100 wake-ups a second, not one per message, each of which takes a core from the script's
#: torch threads on a small machine; a message is read at most this late
GATHER_S = 0.01
#: bytes asked for the message pipe (Linux ``F_SETPIPE_SZ``, up to ``/proc/sys/fs/pipe-max-size``,
#: 1 MiB by default): what a child can write while tk lets messages gather, without waiting (about
#: 1,100 found calls); with the default 64 KiB, tk does not let them gather
PIPE_BYTES = 1 << 20


def _widen_pipe(fd: int) -> bool:
    """Ask for a :data:`PIPE_BYTES` pipe buffer on ``fd``; True when the pipe holds that much."""
    import fcntl

    try:
        return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES) >= PIPE_BYTES
    except (AttributeError, OSError):  # not Linux, or over pipe-max-size for this user
        return False


class ChildEnded(Exception):
    """A :class:`StreamingChild` ended (or was killed) before it sent its last message.

    Attributes:
        status: ``Status.KILLED`` (a signal: segfault, OOM killer), ``Status.TIMEOUT`` (killed by
            the parent at its deadline), ``Status.OUT_OF_MEMORY`` (killed by the parent over its
            memory cap) or ``Status.ERROR`` (it exited, e.g. ``os._exit(0)``).
        error: one line saying how it ended, naming the signal or exit code.
        stack: where it ended, when known: what :mod:`faulthandler` wrote when the child died of a
            signal (the Python stack of the thread it hit), or the traceback of tk's own failure.
        hint: what to do, when the channel knows better than the script's failure would say (a Dask
            worker that could not run tk); ``None`` for a script's own end.
    """

    def __init__(self, status: Status, error: str, stack: str | None = None, hint: str | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.stack = stack
        self.hint = hint


_MAIN_THREAD_POISONED = False


def main_thread_forks_clean(timeout_s: float = 3.0) -> bool:
    """Whether a child forked from this thread can run multi-threaded torch kernels on its main thread.

    GNU OpenMP keeps its worker pool in the thread-local state of the thread that first ran a
    parallel region; a child forked from that thread inherits a pool whose workers do not exist in
    it, and hangs at its first parallel op (see :func:`_call_in_fresh_thread`). A ``tk`` process
    never runs torch kernels itself, but a notebook or a test process that calls the pipeline may
    have. So a probe child is forked that runs one parallel op on its main thread: it ends within
    ``timeout_s`` (clean) or hangs and is killed (not clean; remembered, since the pool stays).
    Costs one fork (about 10-30 ms) when torch is imported; nothing otherwise.
    """
    global _MAIN_THREAD_POISONED
    if _MAIN_THREAD_POISONED:
        return False
    torch = sys.modules.get("torch")
    if torch is None or torch.get_num_threads() < 2:
        return True
    pid = os.fork()
    if pid == 0:  # the probe: one op large enough for at::parallel_for to use the pool
        try:
            torch.ones(1 << 18).add_(1)
        finally:
            os._exit(0)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    _MAIN_THREAD_POISONED = True
    return False


def _streaming_main(conn, fault_fd, out_fd, err_fd, fresh_thread, fn, args) -> None:
    """Body of a :class:`StreamingChild`: own process group, dies with its parent, then ``fn(send, *args)``
    where ``send(message)`` encodes a :data:`~turnkey_like.records.Message` with the one codec.

    The child leaves the terminal's foreground group, so a Ctrl-C reaches tk alone (which then
    kills the child's whole group); stdin is ``/dev/null`` (:func:`_run_forked`: a background process
    reading the terminal would stop); fd 1 and 2 are pipes that tk forwards to its own stdout and stderr (so
    the script's output passes through tk's progress display), and ``sys.stdout``/``sys.stderr``
    are fresh writers on them, never the parent's (possibly locked) rich console proxies. tk's own
    lines go to a copy of the stderr pipe, so a script that closes fd 2 does not silence them.

    As under ``python``: SIGINT is delivered (a Dask worker's children inherit it blocked), and the
    ``atexit`` handlers inherited from the parent are dropped (the script's own run when the work is
    done, :func:`~turnkey_like.launcher.leftovers.run_exit_handlers`). The child adopts the
    orphans of the processes below it (:func:`~turnkey_like.launcher.leftovers.adopt_orphans`).
    """
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    die_with_parent()
    adopt_orphans()
    forget_inherited_exit_handlers()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    tk_stderr = os.dup(2)  # above 2: the parent held fds 0-2 (hold_standard_fds) before the pipes
    signals_as_under_python(fault_fd, all_threads=False)  # a crash's Python stack goes to tk

    def send(message: Message) -> None:
        conn.send_bytes(encode(message))

    try:
        if fresh_thread:
            outcome = _call_in_fresh_thread(fn, (send, *args), {})
            if isinstance(outcome, Raised):
                with contextlib.suppress(OSError):
                    os.write(tk_stderr, f"tk: {outcome.error}\n".encode("utf-8", "replace"))
        else:
            fn(send, *args)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a script may have closed or replaced them
                pass
        conn.close()


class StreamingChild:
    """Run ``fn(send, *args)`` in a forked child that streams messages back while it works.

    ``send(message)`` sends one :data:`~turnkey_like.records.Message` to the parent, encoded with the
    one codec (``records.encode``); :meth:`receive` decodes and validates it. The child is forked, so ``fn`` and ``args`` may be anything in this process's memory (the
    module objects of a script it will run, a live model). It runs in its own process group with
    ``PR_SET_PDEATHSIG`` (:func:`die_with_parent`): :meth:`kill` takes the child and every process it
    started, and a ``kill -9`` of tk takes the child too.

    ``fn`` runs on the child's main thread (a script's signal handlers then work as under
    ``python``), unless this thread has run multi-threaded torch kernels before
    (:func:`main_thread_forks_clean`, as in a notebook or a test process), or ``fresh_thread`` asks
    for it: then on a fresh thread, where GNU OpenMP can start a pool of its own and the stack is
    64 MiB (exporters recurse deeply; see :func:`_call_in_fresh_thread`).

    Use as a context manager; leaving it kills whatever is left of the group.

    Args:
        fn, args: the child's work, called as ``fn(send, *args)``.
        outputs: the text streams that receive what the child writes to its stdout and stderr
            (default: this process's ``sys.stdout`` and ``sys.stderr``, read when the child starts).
        fresh_thread: run ``fn`` on a fresh thread of the child (``None``: only when this thread
            cannot fork a clean one).
        memory_limit: cap the resident memory of the child, bytes (``None`` or 0: no cap; see
            :mod:`turnkey_like.launcher.memory`): the child and the processes below it together
            until its first ``Discovered`` message (the script's run, with whatever it started), the
            child alone afterwards (each stage then runs in a child of its own, under its own cap).
            Over it, the child's group is killed and :meth:`receive` raises ``ChildEnded`` with
            status ``out_of_memory``.

    Raises:
        OSError: the child could not be started (no memory, process limit).
    """

    def __init__(self, fn: Callable[..., None], *args: Any, outputs: tuple[TextIO, TextIO] | None = None,
                 fresh_thread: bool | None = None, memory_limit: int | None = None):
        hold_standard_fds()  # no pipe of the child's lands on 0-2, which the child points elsewhere
        self._reader, writer = multiprocessing.Pipe(duplex=False)
        self._faults, fault_writer = os.pipe()
        out_reader, out_writer = os.pipe()
        err_reader, err_writer = os.pipe()
        for fd in (self._faults, out_reader, err_reader):
            os.set_blocking(fd, False)
        out, err = outputs or (sys.stdout, sys.stderr)
        self._outputs = {out_reader: (out, codecs.getincrementaldecoder("utf-8")("replace")),
                         err_reader: (err, codecs.getincrementaldecoder("utf-8")("replace"))}
        # one poll set for the child's life: a message costs one poll() call, not a selector made for
        # it (multiprocessing.connection.wait: 10.7 µs against 1.2 µs, the difference times 10,000
        # invocations of a shape sweep)
        self._poll = select.poll()
        self._gather_s = GATHER_S if _widen_pipe(writer.fileno()) else 0.0
        for fd in (self._reader.fileno(), out_reader, err_reader):
            self._poll.register(fd, select.POLLIN)
        try:
            self.process = ForkedProcess(
                _streaming_main,
                (writer, fault_writer, out_writer, err_writer,
                 fresh_thread or not main_thread_forks_clean(), fn, args))
        finally:
            writer.close()
            for fd in (fault_writer, out_writer, err_writer):
                os.close(fd)
        self.pid = self.process.pid
        try:
            os.setpgid(self.pid, self.pid)  # also from the parent: no race with the first kill
        except OSError:
            pass
        self._watch = MemoryWatch(self.pid, memory_limit).__enter__() if memory_limit else None

    def __enter__(self) -> StreamingChild:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def receive(self, timeout_s: float | None) -> Message:
        """The next message, waiting at most ``timeout_s`` seconds (``None``: no limit).

        Raises:
            ChildEnded: the child ended without sending more (status and signal or exit code
                named), ``timeout_s`` passed (then the child's group is killed, status
                ``timeout``), or it sent something that is not a valid message (a bug in tk).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        reader = self._reader.fileno()
        wait = 0.0  # first, what has come already
        while True:
            ready = [fd for fd, _event in self._poll.poll(wait * 1000)]
            self._forward_output(fd for fd in ready if fd != reader)
            if reader in ready:
                if wait and self._gather_s:  # all earlier messages were read: let the next ones gather
                    left = self._gather_s if deadline is None else deadline - time.monotonic()
                    time.sleep(max(0.0, min(self._gather_s, left)))
                return self._read_message()
            if not self.process.is_alive() and not self._reader.poll(0):
                raise self._ended()
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                self.kill()
                raise ChildEnded(Status.TIMEOUT, f"timed out after {timeout_s:g} s (child killed)")

    def _read_message(self) -> Message:
        """Read and decode the message waiting on the pipe (see :meth:`receive` for what it raises)."""
        try:
            data = self._reader.recv_bytes()
        except (EOFError, OSError):
            raise self._ended() from None
        try:
            message = decode(data, Message, what="a message of the child")
        except TkError as e:
            self.kill()
            raise ChildEnded(Status.ERROR, f"tk failed: {e.message}", hint=TK_BUG_HINT) from None
        if isinstance(message, Discovered) and self._watch is not None:
            self._watch.tree = False  # the script ended (and what it left running with it)
        return message

    def _forward_output(self, fds=None) -> None:
        """Copy what the child wrote to its stdout/stderr onto this process's (all pipes if ``fds`` is None)."""
        for fd in list(self._outputs if fds is None else fds):
            stream, decoder = self._outputs[fd]
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except (BlockingIOError, OSError):
                    break
                if not chunk:  # the child closed it: no more polling it (it would be ready forever)
                    with contextlib.suppress(KeyError, ValueError):
                        self._poll.unregister(fd)
                    break
                text = decoder.decode(chunk)
                try:
                    stream.write(text)
                    stream.flush()
                except (OSError, ValueError):  # our own stdout closed (a pipe to `head`): drop it
                    pass

    def _ended(self) -> ChildEnded:
        self.process.join(timeout=10)
        code = self.process.exitcode
        dump = self._read_fault_dump()
        self.kill()
        if self._watch is not None and self._watch.exceeded:
            return ChildEnded(Status.OUT_OF_MEMORY, f"out of memory: {self._watch.error('its process')}", dump)
        if code is not None and code < 0:
            name = signal_name(-code)
            hint = {signal.SIGKILL: " (killed from outside, or out of memory)",
                    signal.SIGSEGV: " (segmentation fault)", signal.SIGABRT: " (aborted)",
                    signal.SIGBUS: " (bus error)"}.get(-code, "")
            return ChildEnded(Status.KILLED, f"process killed by {name}{hint}", dump)
        return ChildEnded(Status.ERROR, f"process exited with code {code} before tk finished "
                                        "(os._exit() or a library ending the process)")

    def _read_fault_dump(self) -> str | None:
        if self._faults is None:
            return None
        chunks = []
        try:
            while chunk := os.read(self._faults, 65536):
                chunks.append(chunk)
        except (BlockingIOError, OSError):
            pass
        text = b"".join(chunks).decode("utf-8", errors="replace").strip()
        return text or None

    @property
    def peak_memory_bytes(self) -> int | None:
        """The most resident memory the child used (with the processes below it while they were
        counted), bytes; ``None`` without a cap."""
        return self._watch.peak_bytes if self._watch is not None else None

    def kill(self) -> None:
        """SIGKILL the child's process group (the child and everything it started); reap the child."""
        if self._watch is not None:
            self._watch.__exit__(None, None, None)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self._reader.close()
        if self._faults is not None:
            self._forward_output()
            for fd in (self._faults, *self._outputs):
                os.close(fd)
            self._faults = None
            self._outputs = {}

    def wait(self, timeout_s: float = 10.0) -> None:
        """Wait for a child that sent its last message to exit; kill its group if it lingers."""
        self.process.join(timeout=timeout_s)
        self.kill()
