"""The processes tk starts: a forked child (:class:`ForkedProcess`) that behaves as ``python SCRIPT``
would (signals, stack dumps, ``multiprocessing``), and what every child shares (the one line of a
failure, the tail of a log, a signal's name).

Forked children are made with ``os.fork`` (:class:`ForkedProcess`), not ``multiprocessing.Process``:
``multiprocessing`` refuses to start a child from a daemonic process, and a Dask worker started the
standard way (``dask worker ADDRESS``, whose nanny starts it daemonic) is one. A forked child is
marked non-daemonic for ``multiprocessing`` (:func:`_may_start_children`), so that a script's own
``multiprocessing`` pool, and a ``spawn`` child of a stage, start there as they do under ``python``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn

from turnkey_like.errors import one_line

LOG_EXCERPT_LINES = 20
#: characters kept of a stage's one-line error (a failed export names each exporter's error)
ERROR_LIMIT = 500


def log_tail(log_path: str | Path | None, lines: int = LOG_EXCERPT_LINES) -> str | None:
    """Return the last ``lines`` lines of a log file, or ``None`` when it is missing or empty."""
    if log_path is None:
        return None
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    tail = "\n".join(text.splitlines()[-lines:]).strip()
    return tail or None


#: signals that end a process by default and that :mod:`faulthandler` can dump a stack for without
#: ``enable``'s own (SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL): a script that ends by one of them
#: (``os.kill(os.getpid(), SIGTERM)``, a ``timeout`` command, a CPU limit) still says where
DUMPED_SIGNALS = tuple(getattr(signal, name) for name in
                       ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGXCPU")
                       if hasattr(signal, name))


def signals_as_under_python(stack_file, all_threads: bool = True) -> None:
    """Give this forked child the signal handling of ``python SCRIPT``, and a stack dump when one ends it.

    A fork inherits its parent's Python signal handlers and wake-up fd; in a Dask worker these are
    its event loop's, so a SIGTERM in the child would wake the *worker's* loop instead of ending
    the child. Every Python-level handler but SIGINT's goes back to the default and the wake-up fd
    is dropped; then :mod:`faulthandler` writes the Python stack to ``stack_file`` (a file object
    or a file descriptor) when the child dies of a fatal signal or of one of
    :data:`DUMPED_SIGNALS` (chained to the default action, so the child still dies by it; a
    handler the script installs replaces the dump, as it would under ``python``).
    """
    import faulthandler

    with contextlib.suppress(ValueError):  # only the main thread may; after a fork, the forking one is
        signal.set_wakeup_fd(-1)
        for signum in signal.valid_signals():
            if signum != signal.SIGINT and callable(signal.getsignal(signum)):
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(signum, signal.SIG_DFL)
    faulthandler.enable(file=stack_file, all_threads=all_threads)
    for signum in DUMPED_SIGNALS:
        if signal.getsignal(signum) == signal.SIG_DFL:
            faulthandler.register(signum, file=stack_file, all_threads=all_threads, chain=True)


@dataclass
class Returned:
    """What a child's ``fn`` returned (sent to the parent by :func:`run_isolated`'s child, pickled)."""

    value: Any


@dataclass
class Raised:
    """The one line of what a child's ``fn`` raised (its traceback is in the child's log)."""

    error: str


def _call_in_fresh_thread(fn, args, kwargs) -> Returned | Raised:
    """Run ``fn`` in a new thread of this (forked) process and return what it returned or raised.

    Why a new thread: GNU OpenMP (libgomp, which torch's CPU kernels use) keeps its worker pool in the
    thread-local state of the thread that opened the parallel region. After ``fork`` the child's main
    thread still points at the parent's pool, whose worker threads do not exist in the child, so the
    first multi-threaded torch op waits forever at ``gomp_team_barrier_wait``. A thread created in the
    child has no pool yet, so libgomp builds a fresh one and torch keeps its intra-op parallelism.
    """
    import threading

    box: list = []
    old_size = threading.stack_size()
    try:
        threading.stack_size(64 * 2**20)  # exporters recurse deeply; the default 8 MiB can overflow
    except (ValueError, RuntimeError):
        pass
    with _ending_signals_blocked() as unblocked:  # they go to the work thread (see the function)
        def target():
            if unblocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            try:
                box.append(Returned(fn(*args, **kwargs)))
            except BaseException as exc:  # noqa: BLE001 - every failure is reported, never raised across
                traceback.print_exc()
                box.append(Raised(one_line(exc, ERROR_LIMIT)))

        worker = threading.Thread(target=target, name="tk-isolated", daemon=True)
        worker.start()
        threading.stack_size(old_size)
        worker.join()
    return box[0] if box else Raised("the work thread ended without a result")


#: signals that end a process (and that :func:`signals_as_under_python` dumps a stack for)
ENDING_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGFPE, signal.SIGABRT, signal.SIGBUS, signal.SIGILL,
                            *DUMPED_SIGNALS})


@contextlib.contextmanager
def _ending_signals_blocked():
    """Block :data:`ENDING_SIGNALS` in this thread (the one waiting for the work thread); yield the
    mask the work thread restores as it starts (``None`` where threads have no signal masks).

    Blocked here from before the work thread starts until it ended, a signal sent to the process
    (``os.kill(os.getpid(), SIGSEGV)``, a ``kill PID`` from outside) lands on the work thread: it
    stops there at once, and its stack is the one dumped. Delivered to the waiting thread instead,
    the work would run on while the signal's handler ran, and could send its result before the
    process died."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, ENDING_SIGNALS)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask here: delivery as it comes
        yield None
        return
    try:
        yield old
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``), so a
    child never outlives tk, even after ``kill -9`` of tk. A no-op where ``prctl`` is unavailable."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1  # <linux/prctl.h>
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect: we were re-parented to init
        os._exit(1)


def _may_start_children() -> None:
    """Tell ``multiprocessing`` that this forked child is an ordinary process, not the daemonic one
    it was forked from (a Dask worker's), so that ``multiprocessing.Process.start`` works here.

    ``multiprocessing`` refuses children to a daemonic process because its parent terminates it at
    exit, orphaning them; tk's children die with their parent instead (:func:`die_with_parent`) and
    tk kills each child's whole process group when it ends.
    """
    current = multiprocessing.current_process()
    if current.daemon:
        with contextlib.suppress(AssertionError):  # the setter refuses only a process it started itself
            current.daemon = False


class ForkedProcess:
    """A child made with ``os.fork`` that runs ``target(*args)`` and exits: what the launcher needs of
    ``multiprocessing.Process`` (``pid``, :meth:`is_alive`, :meth:`join`, :meth:`kill`,
    :attr:`exitcode`), without its refusal to start a child from a daemonic process.

    The child's stdin is ``/dev/null``; its exit code is 0 when ``target`` returns, ``SystemExit``'s
    code, or 1 when ``target`` raised (the traceback printed to its stderr). :attr:`exitcode` is
    ``None`` while it runs, then as ``multiprocessing`` gives it: negative for a signal (-9: SIGKILL).

    Raises:
        OSError: the fork failed (no memory, process limit).
    """

    def __init__(self, target: Callable[..., None], args: tuple = ()):
        self.exitcode: int | None = None
        self._reaped = False
        with warnings.catch_warnings():
            # Python 3.12+ warns that fork() in a multi-threaded process may deadlock; torch's and ORT's
            # pools are fork-aware (torch re-creates its intra-op pool in the child), and the tests check it.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            _run_forked(target, args)
        self.pid = pid

    def _reap(self, flags: int) -> bool:
        """Collect the child's exit status if it ended; return whether it has."""
        if self._reaped:
            return True
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): gone, its status unknown
            self._reaped = True
            return True
        if pid == 0:
            return False
        self._reaped = True
        self.exitcode = os.waitstatus_to_exitcode(status)
        return True

    def is_alive(self) -> bool:
        """Whether the child still runs (a child that ended is reaped here)."""
        return not self._reap(os.WNOHANG)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the child to end, at most ``timeout`` seconds (``None``: no limit)."""
        if timeout is None:
            self._reap(0)
            return
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not self._reap(os.WNOHANG):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(delay, remaining))
            delay = min(2 * delay, 0.05)

    def kill(self) -> None:
        """SIGKILL the child (not its group) unless it was reaped already."""
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _run_forked(target: Callable[..., None], args: tuple) -> NoReturn:
    """The forked child of :class:`ForkedProcess`: run ``target(*args)``, then ``os._exit`` (never
    the parent's ``atexit`` handlers or finalizers, nor a return into the parent's code).
    """
    code = 1
    try:
        _may_start_children()
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
        target(*args)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except BaseException:  # noqa: BLE001 - printed to the child's stderr; its exit code says it failed
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)



def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"




def hold_standard_fds() -> None:
    """Open ``/dev/null`` on whichever of fds 0, 1 and 2 is closed in this process.

    A script may close its stdout or stderr (``os.close(1)``). The next file or pipe opened in that
    process would then get the free number, and a child that points its fd 1 at its log
    (``dup2``) would close tk's own pipe to its parent: the result sent to tk lands in the log. With
    the numbers held, every pipe and file tk opens gets a number above 2, whatever the script did
    with its own streams. Called before tk opens a channel, and after a script ran.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:  # a lower number was free too: it is held on its own turn
                os.dup2(null, fd)
                os.close(null)
