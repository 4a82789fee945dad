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

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Literal, TypeVar

from turnkey_like.errors import one_line
from turnkey_like.launcher.memory import MemoryWatch, child_memory_limit
from turnkey_like.launcher.process import (
    ERROR_LIMIT,
    ForkedProcess,
    Raised,
    Returned,
    _call_in_fresh_thread,
    die_with_parent,
    hold_standard_fds,
    log_tail,
    signal_name,
    signals_as_under_python,
)
from turnkey_like.records import StageResult, Status

StartMethod = Literal["fork", "spawn", "inline"]
T = TypeVar("T")


@dataclass
class IsolatedOutcome(Generic[T]):
    """How a child process running one piece of work ended.

    Attributes:
        status: ``Status.SUCCESSFUL``, ``ERROR``, ``TIMEOUT``, ``KILLED`` or ``OUT_OF_MEMORY`` (the
            child went over the cap :func:`~turnkey_like.launcher.memory.limit_children_memory` set
            for this process's children, and was killed).
        value: what ``fn`` returned (plain data or a record), ``None`` unless successful.
        error: one-line reason when not successful (the exception's :func:`one_line`, the signal
            name, or the timeout).
        log_excerpt: the last :data:`LOG_EXCERPT_LINES` lines of the child's log when not successful.
        duration_s: wall time from start to the child's end (or kill), seconds.
        peak_memory_bytes: the most resident memory the child's process tree used (bytes), when a
            cap watched it; else ``None``.
    """

    status: Status
    value: T | None = None
    error: str | None = None
    log_excerpt: str | None = None
    duration_s: float = 0.0
    peak_memory_bytes: int | None = None

    def stage_result(self, started_at: str | None, duration_s: float) -> StageResult[T]:
        """This outcome as a pipeline :class:`StageResult` (``result`` is the value when successful)."""
        return StageResult(
            status=self.status,
            duration_s=duration_s,
            started_at=started_at,
            error=self.error,
            log_excerpt=self.log_excerpt,
            result=self.value if self.status is Status.SUCCESSFUL else None,
            peak_memory_bytes=self.peak_memory_bytes,
        )


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
    hold_standard_fds()  # a script that closed fd 1 would otherwise get the result pipe sent to the log
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
    limit = child_memory_limit()
    watch = MemoryWatch(proc.pid, limit) if limit else None
    with watch or contextlib.nullcontext():
        message, timed_out = _wait(proc, reader, start + timeout_s)
    outcome = _outcome(proc, message, timed_out, timeout_s, watch, log_path)
    outcome.duration_s = time.perf_counter() - start
    outcome.peak_memory_bytes = watch.peak_bytes if watch is not None else None
    return outcome


def _wait(proc, reader, deadline: float) -> tuple[Any, bool]:
    """Wait for the child's result until ``deadline`` (``time.perf_counter``); return it (``None`` when
    the child died without one) and whether the deadline passed. The child is reaped (killed when it
    ran past the deadline, hangs after its result, or this process is interrupted)."""
    message, timed_out = None, False
    try:
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                timed_out = True
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
        if timed_out and proc.is_alive():
            proc.kill()
        proc.join(timeout=30)
        if proc.is_alive():  # sent its result but hangs on exit (e.g. a stuck thread pool)
            proc.kill()
            proc.join(timeout=30)
        reader.close()
    return message, timed_out


def _outcome(proc, message, timed_out: bool, timeout_s: float, watch: MemoryWatch | None,
             log_path) -> IsolatedOutcome:
    """How the child ended, from its result, its exit code and the memory watch."""
    if timed_out:
        return IsolatedOutcome(Status.TIMEOUT, error=f"timed out after {timeout_s:g} s (child killed)",
                               log_excerpt=log_tail(log_path))
    if isinstance(message, Returned):
        return IsolatedOutcome(Status.SUCCESSFUL, value=message.value)
    if isinstance(message, Raised):
        return IsolatedOutcome(Status.ERROR, error=message.error, log_excerpt=log_tail(log_path))
    if watch is not None and watch.exceeded:
        return IsolatedOutcome(Status.OUT_OF_MEMORY, error=watch.error("its child process"),
                               log_excerpt=log_tail(log_path))
    code = proc.exitcode
    if code is not None and code < 0:
        name = signal_name(-code)
        hint = " (likely out of memory)" if -code == signal.SIGKILL else ""
        return IsolatedOutcome(Status.KILLED, error=f"child process killed by {name}{hint}",
                               log_excerpt=log_tail(log_path))
    return IsolatedOutcome(Status.ERROR, error=f"child process exited with code {code} without a result",
                           log_excerpt=log_tail(log_path))
