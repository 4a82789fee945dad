"""What a script leaves behind when it ends, in the child that ran it: its ``atexit`` handlers and the
processes it started.

A script runs in a forked child of tk (an input's :class:`~turnkey_like.launcher.StreamingChild`)
that ends with ``os._exit``, so Python's own exit never runs there. This module gives the script
what ``python SCRIPT`` gives it, with one deliberate difference:

- ``atexit`` handlers the script (or a library it imported) registered run once, when the child's
  work is done (:func:`run_exit_handlers`), as Python runs them at exit: last registered first,
  an exception printed as ``Exception ignored in atexit callback`` and the next one run. Handlers
  the child inherited from tk's own process are dropped as the child starts
  (:func:`forget_inherited_exit_handlers`): they belong to tk (or to a Dask worker), never to the
  script.
- Unlike Python, which leaves a script's children running after it exits, tk ends them when the
  script (and later each stage) ends (:func:`end_leftover_processes`): a forgotten ``os.fork``, a
  ``multiprocessing`` child never joined, a ``subprocess`` in a new session. Left running they would
  share the CPU with the benchmark that follows and outlive tk. The child is made a *child
  subreaper* (:func:`adopt_orphans`), so a process that daemonized (double fork, ``setsid``) is
  still found.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys

from turnkey_like.launcher.process import hold_standard_fds

#: seconds a leftover process has, after SIGTERM, to end before SIGKILL
LEFTOVER_GRACE_S = 1.0
#: ``PR_SET_CHILD_SUBREAPER`` of ``<linux/prctl.h>``
_PR_SET_CHILD_SUBREAPER = 36


def forget_inherited_exit_handlers() -> None:
    """Drop the ``atexit`` handlers this forked child inherited from its parent (tk, or a Dask
    worker): they are the parent's, and must not run in a child (a worker's would close its client)."""
    atexit._clear()


def run_exit_handlers() -> None:
    """Run the ``atexit`` handlers registered in this child since it started, as Python does at exit
    (last registered first; an exception is printed to stderr and the next handler runs); none are
    left afterwards. Then flush ``sys.stdout`` and ``sys.stderr``, as Python's exit does."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a script may have closed or replaced them
            stream.flush()


def adopt_orphans() -> None:
    """Make this process a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``): a process started
    below it whose parent ended is re-parented here rather than to init, so that
    :func:`end_leftover_processes` still finds it. A no-op where ``prctl`` is unavailable."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        return


def end_leftover_processes(grace_s: float = LEFTOVER_GRACE_S) -> int:
    """End every process below this one: SIGTERM, then SIGKILL for those still there after
    ``grace_s`` seconds; reap them. Returns how many there were.

    Called in an input's child when its script ended and after each stage, where no process below
    it is tk's own (each stage's child has been reaped by then). Never call it in tk's own process
    (its Dask workers, its resource tracker are below it).
    """
    import psutil

    try:
        leftovers = psutil.Process().children(recursive=True)
    except psutil.Error:
        return 0
    if not leftovers:
        return 0
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    _gone, alive = psutil.wait_procs(leftovers, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    _reap_orphans()
    return len(leftovers)


def script_ended() -> int:
    """What the child does when the script it ran ended: hold fds 0-2 again (the script may have
    closed them; see :func:`~turnkey_like.launcher.process.hold_standard_fds`) and end the processes
    it left running (:func:`end_leftover_processes`). Returns how many it left."""
    hold_standard_fds()
    return end_leftover_processes()


def _reap_orphans() -> None:
    """Collect the exit status of every child of this process that ended (orphans re-parented here
    by :func:`adopt_orphans` are not waited for by anyone else)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
