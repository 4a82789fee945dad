"""A memory cap for each child tk starts (``--memory-limit``): the child is killed when its resident
memory goes over it, and its outcome is ``out of memory`` with the peak, not a machine-wide
out-of-memory kill that takes other processes with it.

What is capped is the **resident set size** (RSS) of the child and of every process below it, summed:
what the kernel's out-of-memory killer weighs. Capping the address space instead (``RLIMIT_AS``)
breaks torch, which reserves far more address space than it touches. A forked child's RSS includes
the pages it shares with the process it was forked from as soon as it touches them (the live model
of the script, for a stage's child): the cap is for the child's whole resident memory, not only
what it added.

How (:func:`memory_backend`): a cgroup v2 ``memory.max`` would let the kernel enforce it; it is
used where the cgroup v2 memory controller is available and delegated to tk (checked, never
assumed). Elsewhere (a cgroup v1 host such as this one, or a container without delegation) a
:class:`MemoryWatch` thread in the parent polls the child's tree every :data:`POLL_S` seconds
(``/proc/PID/statm``, about 0.1 ms a process; the tree is read again every :data:`TREE_EVERY`
polls) and kills the tree when the sum is over the cap. An allocation faster than a poll can
overshoot by what it allocates in :data:`POLL_S` (about 0.3-0.5 GB at the few GB/s a fill runs).

The default cap (:func:`default_memory_limit`) is :data:`DEFAULT_FRACTION` of the memory available
when the run starts, divided among the children that run at once on the host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from turnkey_like.units import format_bytes, parse_size

#: seconds between two reads of a watched child's memory
POLL_S = 0.1
#: polls between two reads of the watched child's process tree (new processes below it)
TREE_EVERY = 10
#: the share of the memory available when a run starts that its children may use together
DEFAULT_FRACTION = 0.75

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: the cap run_isolated applies to the stage children of this process (set in an input's child)
_CHILD_LIMIT: int | None = None


def parse_memory_size(text: str) -> int:
    """``--memory-limit``'s value in bytes: ``4G``, ``512M``, ``1.5GB`` (decimal SI, as tk prints
    sizes: 4G = 4 x 10^9 bytes), ``4GiB`` (binary), ``2000000000`` (bytes); see
    :func:`turnkey_like.units.parse_size`.

    Raises:
        ValueError: not a size, or not more than 0 bytes.
    """
    size = parse_size(text)
    if size <= 0:
        raise ValueError(f"{text!r}: a memory limit must be more than 0 bytes")
    return size


def default_memory_limit(children: int = 1) -> int | None:
    """:data:`DEFAULT_FRACTION` of the memory available now (``psutil.virtual_memory().available``),
    divided among ``children`` running at once on this host; ``None`` where it cannot be read."""
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:  # noqa: BLE001 - no figure: no default cap
        return None
    return int(available * DEFAULT_FRACTION) // max(1, children)


def limit_children_memory(limit_bytes: int | None) -> None:
    """Cap the stage children this process starts from now on (``run_isolated``) at ``limit_bytes``
    (``None`` or 0: no cap). Set once in an input's child, which runs nothing else."""
    global _CHILD_LIMIT
    _CHILD_LIMIT = limit_bytes or None


def child_memory_limit() -> int | None:
    """The cap :func:`limit_children_memory` set for this process's children, or ``None``."""
    return _CHILD_LIMIT


def memory_backend() -> str:
    """How caps are enforced here: ``watch`` (:class:`MemoryWatch`), with the reason the cgroup v2
    memory controller is not used (``watch: cgroup v1 host``). The cgroup v2 enforcement itself is
    not built yet: tk has no delegated cgroup v2 host to test it on, so every host watches."""
    if not os.path.isfile("/sys/fs/cgroup/cgroup.controllers"):
        return "watch: not a cgroup v2 host"
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            controllers = f.read().split()
    except OSError:
        return "watch: cgroup v2 controllers unreadable"
    if "memory" not in controllers:
        return "watch: cgroup v2 without the memory controller"
    return "watch: cgroup v2 enforcement not built"


def _rss(pid: int) -> int:
    """Resident bytes of process ``pid`` (``/proc/PID/statm``'s second field); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


class MemoryWatch:
    """Watch the resident memory of process ``pid`` (and, with ``tree``, every process below it) in
    a thread; over ``limit_bytes``, SIGKILL them all and remember it.

    Use as a context manager around the wait for the child. Afterwards :attr:`exceeded` says whether
    the watch killed it and :attr:`peak_bytes` is the most it saw (bytes, summed over the tree).

    Args:
        pid: the child.
        limit_bytes: the cap.
        tree: count the processes below the child too (its descendants, read every
            :data:`TREE_EVERY` polls); set :attr:`tree` to False later to watch the child alone.
        kill: how to end the child and its tree (default: SIGKILL to each process seen).
    """

    def __init__(self, pid: int, limit_bytes: int, *, tree: bool = True, kill=None):
        self.pid, self.limit_bytes, self.tree = pid, limit_bytes, tree
        self.exceeded = False
        self.peak_bytes = 0
        self._kill = kill
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tk-memory-watch", daemon=True)
        self._pids: list[int] = [pid]

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _descendants(self) -> list[int]:
        import psutil

        try:
            return [self.pid, *(p.pid for p in psutil.Process(self.pid).children(recursive=True))]
        except psutil.Error:
            return [self.pid]

    def _run(self) -> None:
        polls = 0
        while not self._stop.wait(POLL_S):
            if self.tree and polls % TREE_EVERY == 0:
                self._pids = self._descendants()
            polls += 1
            used = sum(_rss(pid) for pid in (self._pids if self.tree else [self.pid]))
            if used == 0:
                return  # the child is gone
            self.peak_bytes = max(self.peak_bytes, used)
            if used > self.limit_bytes:
                if self.tree:  # what started since the last read of the tree goes too
                    self._pids = self._descendants()
                self.exceeded = True
                self._end()
                return

    def _end(self) -> None:
        if self._kill is not None:
            self._kill()
            return
        for pid in self._pids if self.tree else [self.pid]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def error(self, what: str) -> str:
        """The one-line error of a child this watch killed, ``what`` naming it: ``its child process used
        1.1 GB of resident memory, over --memory-limit 1 GB (killed)``."""
        return (f"{what} used {format_bytes(self.peak_bytes, 4)} of resident memory, over --memory-limit "
                f"{format_bytes(self.limit_bytes, 4)} (killed)")
