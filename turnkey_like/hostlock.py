"""A host-wide reader/writer lock, so a benchmark has its host to itself.

While one tk process benchmarks, no other tk task on the same host runs: not another benchmark,
and not a discovery, characterization or build either (each would steal cores and memory bandwidth
from the timed runs and spoil their latency). Discovery, characterization and build take the lock
*shared* (:func:`shared`): any number run together. A benchmark takes it *exclusive*
(:func:`exclusive`): it waits for the running readers to finish, and new readers wait for it.

Why a file lock and not Dask resources: Dask resources are per worker, and several workers (of one
or several clusters, or a serial ``tk`` next to them) share a host. The lock is :func:`fcntl.flock`
on a file in :func:`lock_dir`, which is host-local on purpose and outside the tk cache: two caches
on one host must still exclude each other, and a cache on a network filesystem would turn the lock
into a cluster-wide one (every benchmark on every node would wait for every other node), which is
the opposite of what a benchmark needs. ``flock`` locks belong to the open file: a process killed
with SIGKILL releases its lock at once (the kernel closes its files), so a crash never leaves the
host locked.

Writer preference (no starvation): a second lock file, the *gate*, is taken exclusive by a writer
until it holds the data lock, and briefly by each reader before it takes its shared lock. A
benchmark waiting for the lock therefore stops new discoveries and builds from starting, and gets
the host as soon as the running ones finish. Without the gate, two workers that keep starting
discoveries would keep a shared lock held forever.

Only for POSIX hosts (Linux, macOS); elsewhere the lock is a no-op (tk runs inline there anyway).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

#: environment variable naming the folder that holds the lock files (default: the temp folder)
ENV_VAR = "TK_HOST_LOCK_DIR"
#: the lock files' names inside :func:`lock_dir`
DATA_FILE = "tk-host.lock"
GATE_FILE = "tk-host.gate"
#: stages that need the host to themselves (the rest take the lock shared)
EXCLUSIVE_STAGES = frozenset({"benchmark"})


def lock_dir() -> Path:
    """The host-local folder of the lock files: ``$TK_HOST_LOCK_DIR``, else the temp folder (``/tmp``).

    Every tk process on the host must agree on it, whatever its cache; the temp folder is the one
    place they all share and which is never on a network filesystem by default.
    """
    return Path(os.environ.get(ENV_VAR) or tempfile.gettempdir())


def _open(name: str) -> int:
    """Open (creating, mode 0666 so every user's tk shares it) a lock file, never through a symlink.

    Read-only is enough for ``flock``, so a file another user created is usable.
    """
    path = lock_dir() / name
    flags = os.O_RDONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    old = os.umask(0)
    try:
        return os.open(path, flags, 0o666)
    finally:
        os.umask(old)


@contextlib.contextmanager
def _held(name: str, mode: int):
    import fcntl

    fd = _open(name)
    try:
        fcntl.flock(fd, mode)
        yield fd
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)  # explicit: a forked child may hold a copy of the fd
        finally:
            os.close(fd)


@contextlib.contextmanager
def shared():
    """Hold the host lock shared (discovery, characterization, build): blocks while a benchmark runs
    or waits for the host."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no host lock
        yield
        return
    with _held(GATE_FILE, fcntl.LOCK_EX):
        data = _held(DATA_FILE, fcntl.LOCK_SH)
        data.__enter__()
    try:
        yield
    finally:
        data.__exit__(None, None, None)


@contextlib.contextmanager
def exclusive():
    """Hold the host lock exclusive (a benchmark): waits for every running reader and writer, and keeps
    new ones from starting meanwhile."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with _held(GATE_FILE, fcntl.LOCK_EX):
        data = _held(DATA_FILE, fcntl.LOCK_EX)
        data.__enter__()
    try:
        yield
    finally:
        data.__exit__(None, None, None)


def stage_guard(stage_name: str):
    """The lock for one pipeline stage (``Pipeline.stage_guard``): exclusive for a benchmark, else shared."""
    return exclusive() if stage_name in EXCLUSIVE_STAGES else shared()
