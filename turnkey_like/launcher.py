"""Run one stage's work in a child process, so a crash, hang or out-of-memory kill never takes tk down.

:func:`run_isolated` runs ``fn(*args, **kwargs)`` in a child (forked by default: the model lives in the
parent's memory, so the child inherits it without pickling), sends the child's stdout/stderr to a log
file, and returns an :class:`IsolatedOutcome` saying how the child ended:

- ``successful``: ``fn`` returned; its value came back through a pipe (pickled: plain data or
  :mod:`turnkey_like.records` records, which are msgspec Structs and pickle as such).
- ``error``: ``fn`` raised; ``error`` is the exception's one line (:func:`turnkey_like.errors.one_line`),
  the full traceback is in the log.
- ``timeout``: the child ran past ``timeout_s`` and was killed (SIGKILL).
- ``killed``: the child died by a signal it did not ask for (the kernel's OOM killer's SIGKILL, a
  segfault's SIGSEGV, ...).

:class:`StreamingChild` is the long-lived kind: a forked child in its own process group that sends
messages (records, progress events: the one channel protocol, ``records.Message``, encoded and
validated by the one codec) to the parent while it works, so what it found before it crashed is not
lost. The pipeline runs each input's discovery and stages in one, the zoo survey each model.

Forked children are made with ``os.fork`` (:class:`ForkedProcess`), not ``multiprocessing.Process``:
``multiprocessing`` refuses to start a child from a daemonic process, and a Dask worker started the
standard way (``dask worker ADDRESS``, whose nanny starts it daemonic) is one. A forked child is
marked non-daemonic for ``multiprocessing`` (:func:`_may_start_children`), so that a script's own
``multiprocessing`` pool, and a ``spawn`` child of a stage, start there as they do under ``python``.

Isolation is a launcher choice, not a special path (as in optimum-benchmark's ``process`` launcher).
:func:`choose_start_method` is the one place that picks it, for builds and benchmarks alike:

- ``fork``: the default where the OS has it; the child sees the live model.
- ``spawn``: a fresh interpreter (``fn`` and its arguments must pickle). CUDA work that needs no live
  model (ONNX Runtime on CUDA) runs here, because a forked child of a process that has used CUDA
  cannot use the GPU.
- ``inline``: ``fn`` runs in this process (no protection, no timeout) and returns the same outcome
  record. CUDA work that needs the live model (a CUDA model's export, torch on CUDA) runs here: a
  forked child could not use CUDA and a spawned one cannot receive the model.
"""

from __future__ import annotations

import codecs
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
from typing import Any, Callable, Generic, Literal, NoReturn, TextIO, TypeVar

from turnkey_like.errors import TkError, one_line
from turnkey_like.records import Message, StageResult, Status, decode, encode

LOG_EXCERPT_LINES = 20
#: characters kept of a stage's one-line error (a failed export names each exporter's error)
ERROR_LIMIT = 500
#: the hint for a failure of tk itself in a child (not of the script, its models or the machine)
TK_BUG_HINT = "this is a bug in tk: rerun with --traceback and report the trace"

StartMethod = Literal["fork", "spawn", "inline"]
T = TypeVar("T")


@dataclass
class IsolatedOutcome(Generic[T]):
    """How a child process running one piece of work ended.

    Attributes:
        status: ``Status.SUCCESSFUL``, ``ERROR``, ``TIMEOUT`` or ``KILLED``.
        value: what ``fn`` returned (plain data or a record), ``None`` unless successful.
        error: one-line reason when not successful (the exception's :func:`one_line`, the signal
            name, or the timeout).
        log_excerpt: the last :data:`LOG_EXCERPT_LINES` lines of the child's log when not successful.
        duration_s: wall time from start to the child's end (or kill), seconds.
    """

    status: Status
    value: T | None = None
    error: str | None = None
    log_excerpt: str | None = None
    duration_s: float = 0.0

    def stage_result(self, started_at: str | None, duration_s: float) -> StageResult[T]:
        """This outcome as a pipeline :class:`StageResult` (``result`` is the value when successful)."""
        return StageResult(
            status=self.status,
            duration_s=duration_s,
            started_at=started_at,
            error=self.error,
            log_excerpt=self.log_excerpt,
            result=self.value if self.status is Status.SUCCESSFUL else None,
        )


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


def _redirect_output(log_path: str | Path | None) -> None:
    """Point this process's fd 1 and 2 (and sys.stdout/err) at the log file (or /dev/null)."""
    target = os.fspath(log_path) if log_path is not None else os.devnull
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or odd stream must not stop the child
            pass
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    signals_as_under_python(sys.stderr)  # a crash's Python stack goes to the log, not the terminal


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
    the parent's ``atexit`` handlers or finalizers, nor a return into the parent's code)."""
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


def _child_main(conn, fn, args, kwargs, log_path, fresh_thread) -> None:
    """Body of the child: redirect output, run ``fn``, send :class:`Returned` or :class:`Raised`."""
    die_with_parent()
    _redirect_output(log_path)
    if fresh_thread:
        message = _call_in_fresh_thread(fn, args, kwargs)
    else:
        try:
            message = Returned(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - every failure is reported, never raised across
            traceback.print_exc()
            message = Raised(one_line(exc, ERROR_LIMIT))
    try:
        conn.send(message)
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable return value
        print(f"tk: could not send the result to the parent: {exc!r}", file=sys.stderr)
        conn.send(Raised(f"result could not be sent to the parent: {one_line(exc, ERROR_LIMIT)}"))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        conn.close()


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _run_inline(fn, args, kwargs, log_path, start) -> IsolatedOutcome:
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        if log_path is not None:
            with open(log_path, "a", encoding="utf-8") as f:
                traceback.print_exc(file=f)
        return IsolatedOutcome(
            Status.ERROR, error=one_line(exc, ERROR_LIMIT), log_excerpt=log_tail(log_path),
            duration_s=time.perf_counter() - start,
        )
    return IsolatedOutcome(Status.SUCCESSFUL, value=value, duration_s=time.perf_counter() - start)


def default_start_method() -> StartMethod:
    """``fork`` where the OS has it (Linux, macOS), else ``inline`` (Windows: no isolation)."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "inline"


def choose_start_method(device: str, model_on_cuda: bool, *, needs_live_model: bool = True) -> StartMethod:
    """Where a stage's work runs: the one rule for builds, benchmarks and any later stage.

    Args:
        device: the device the work runs on (``cpu`` or ``cuda``).
        model_on_cuda: the live model (or its inputs) sits on a CUDA device.
        needs_live_model: the work cannot run without the live model (an export, a torch runtime);
            ``False`` when everything it needs pickles (an ONNX file, numpy inputs and reference).

    Returns:
        :func:`default_start_method` (``fork``) when no CUDA is involved; otherwise ``inline`` when the
        work needs the live model (a forked child of a CUDA process cannot use CUDA and a spawned one
        cannot receive the model) and ``spawn`` when it does not.
    """
    if device != "cuda" and not model_on_cuda:
        return default_start_method()
    return "inline" if needs_live_model else "spawn"


def run_isolated(
    fn: Callable[..., T],
    *args: Any,
    timeout_s: float,
    log_path: str | Path | None,
    start_method: StartMethod | None = None,
    **kwargs: Any,
) -> IsolatedOutcome[T]:
    """Run ``fn(*args, **kwargs)`` in a child process and return how it ended.

    Args:
        fn: the work; with ``fork`` it may be a closure and use anything in this process's memory; with
            ``spawn`` it and its arguments must pickle. Its return value must pickle.
        timeout_s: seconds after which the child is killed with SIGKILL (status ``timeout``); not
            enforced with ``inline``.
        log_path: file that receives the child's stdout and stderr (appended), ``None`` to discard.
        start_method: ``fork`` (default on Linux/macOS), ``spawn`` or ``inline``; usually
            :func:`choose_start_method`'s answer (see the module doc).
        *args, **kwargs: passed to ``fn``.

    Returns:
        :class:`IsolatedOutcome`. Never raises for failures inside ``fn`` or the child.
    """
    start = time.perf_counter()
    method = start_method or default_start_method()
    if method == "inline":
        return _run_inline(fn, args, kwargs, log_path, start)
    reader, writer = multiprocessing.Pipe(duplex=False)
    child_args = (writer, fn, args, kwargs, log_path, method == "fork")
    try:
        if method == "fork":
            proc = ForkedProcess(_child_main, child_args)
        else:
            proc = multiprocessing.get_context(method).Process(target=_child_main, args=child_args, daemon=True)
            proc.start()
    finally:
        writer.close()
    message = None
    status = None
    deadline = start + timeout_s
    try:
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                status = Status.TIMEOUT
                break
            if reader.poll(min(remaining, 0.5)):
                try:
                    message = reader.recv()
                except (EOFError, OSError):
                    message = None  # the child closed the pipe without a result: it died
                break
            if not proc.is_alive() and not reader.poll(0):
                break
    except BaseException:  # Ctrl-C (or any error) in the parent: the child goes at once, never later
        if proc.is_alive():
            proc.kill()
        raise
    finally:
        if status is Status.TIMEOUT and proc.is_alive():
            proc.kill()
        proc.join(timeout=30)
        if proc.is_alive():  # sent its result but hangs on exit (e.g. a stuck thread pool)
            proc.kill()
            proc.join(timeout=30)
        reader.close()
    duration = time.perf_counter() - start
    if status is Status.TIMEOUT:
        return IsolatedOutcome(
            Status.TIMEOUT, error=f"timed out after {timeout_s:g} s (child killed)",
            log_excerpt=log_tail(log_path), duration_s=duration,
        )
    if isinstance(message, Returned):
        return IsolatedOutcome(Status.SUCCESSFUL, value=message.value, duration_s=duration)
    if isinstance(message, Raised):
        return IsolatedOutcome(Status.ERROR, error=message.error, log_excerpt=log_tail(log_path), duration_s=duration)
    code = proc.exitcode
    if code is not None and code < 0:
        name = _signal_name(-code)
        hint = " (likely out of memory)" if -code == signal.SIGKILL else ""
        return IsolatedOutcome(
            Status.KILLED, error=f"child process killed by {name}{hint}",
            log_excerpt=log_tail(log_path), duration_s=duration,
        )
    return IsolatedOutcome(
        Status.ERROR, error=f"child process exited with code {code} without a result",
        log_excerpt=log_tail(log_path), duration_s=duration,
    )


# --------------------------------------------------------------------------------------------------
# A child that streams messages while it works
# --------------------------------------------------------------------------------------------------


class ChildEnded(Exception):
    """A :class:`StreamingChild` ended (or was killed) before it sent its last message.

    Attributes:
        status: ``Status.KILLED`` (a signal: segfault, OOM killer), ``Status.TIMEOUT`` (killed by
            the parent at its deadline) or ``Status.ERROR`` (it exited, e.g. ``os._exit(0)``).
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
    are fresh writers on them, never the parent's (possibly locked) rich console proxies.
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
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    signals_as_under_python(fault_fd, all_threads=False)  # a crash's Python stack goes to tk

    def send(message: Message) -> None:
        conn.send_bytes(encode(message))

    try:
        if fresh_thread:
            outcome = _call_in_fresh_thread(fn, (send, *args), {})
            if isinstance(outcome, Raised):
                print(f"tk: {outcome.error}", file=sys.stderr)
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

    Raises:
        OSError: the child could not be started (no memory, process limit).
    """

    def __init__(self, fn: Callable[..., None], *args: Any, outputs: tuple[TextIO, TextIO] | None = None,
                 fresh_thread: bool | None = None):
        self._reader, writer = multiprocessing.Pipe(duplex=False)
        self._faults, fault_writer = os.pipe()
        out_reader, out_writer = os.pipe()
        err_reader, err_writer = os.pipe()
        for fd in (self._faults, out_reader, err_reader):
            os.set_blocking(fd, False)
        out, err = outputs or (sys.stdout, sys.stderr)
        self._outputs = {out_reader: (out, codecs.getincrementaldecoder("utf-8")("replace")),
                         err_reader: (err, codecs.getincrementaldecoder("utf-8")("replace"))}
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
        from multiprocessing.connection import wait as wait_for

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                self.kill()
                raise ChildEnded(Status.TIMEOUT, f"timed out after {timeout_s:g} s (child killed)")
            ready = wait_for([self._reader, *self._outputs], wait)
            self._forward_output(fd for fd in ready if fd is not self._reader)
            if self._reader in ready:
                try:
                    data = self._reader.recv_bytes()
                except (EOFError, OSError):
                    raise self._ended() from None
                try:
                    return decode(data, Message, what="a message of the child")
                except TkError as e:
                    self.kill()
                    raise ChildEnded(Status.ERROR, f"tk failed: {e.message}", hint=TK_BUG_HINT) from None
            if not self.process.is_alive() and not self._reader.poll(0):
                raise self._ended()

    def _forward_output(self, fds=None) -> None:
        """Copy what the child wrote to its stdout/stderr onto this process's (all pipes if ``fds`` is None)."""
        for fd in list(self._outputs if fds is None else fds):
            stream, decoder = self._outputs[fd]
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except (BlockingIOError, OSError):
                    break
                if not chunk:
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
        if code is not None and code < 0:
            name = _signal_name(-code)
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

    def kill(self) -> None:
        """SIGKILL the child's process group (the child and everything it started); reap the child."""
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
