"""Stale ``running`` stages: what a writer stores to tell a live ``running`` stage from a dead one,
and the check a reader makes.

A stage left ``running`` by a process that is gone (killed, crashed, machine restarted) reads as
``killed``. The writer's host name, boot time and the running process's create time are stored next
to the record (key ``_cache``, a :class:`WriterFacts`) so that a reused pid is not mistaken for the
original process. Records written on another host keep ``running``: tk cannot see that host's
processes. Reading never rewrites a record.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import sys

import msgspec

from turnkey_like.records import STAGES, BuildRecord, Status


class RunningProcess(msgspec.Struct, kw_only=True):
    """The process a ``running`` stage was started by: pid and create time (epoch s, psutil)."""

    pid: int
    create_time: float | None = None


class WriterFacts(msgspec.Struct, kw_only=True):
    """What a later reader needs to tell a live ``running`` stage from a dead one.

    Attributes:
        host: host name of the machine that wrote the record.
        boot_time: that machine's boot time (epoch s), stored only while a stage is running.
        running: stage name -> the process running it.
    """

    host: str | None = None
    boot_time: float | None = None
    running: dict[str, RunningProcess] = {}


#: Linux: process facts come straight from procfs, as psutil reads them there (``psutil._pslinux``),
#: without importing psutil (15-50 ms; `tk cache list` checks every build left ``running``).
_PROCFS = sys.platform.startswith("linux") and os.path.isfile("/proc/stat")


class _HostFacts:
    """This machine's host name and boot time, read once per process (psutil is imported lazily)."""

    _host: str | None = None
    _boot: float | None = None

    @classmethod
    def host(cls) -> str:
        if cls._host is None:
            cls._host = socket.gethostname()
        return cls._host

    @classmethod
    def boot_time(cls) -> float:
        """Boot time (epoch s): ``btime`` of ``/proc/stat`` on Linux (what ``psutil.boot_time`` reads)."""
        if cls._boot is None:
            if _PROCFS:
                with open("/proc/stat", "rb") as f:
                    cls._boot = next(float(line.split()[1]) for line in f if line.startswith(b"btime"))
            else:
                import psutil

                cls._boot = float(psutil.boot_time())
        return cls._boot


def host_name() -> str:
    """This machine's host name, as writers store it (:attr:`WriterFacts.host`)."""
    return _HostFacts.host()


def _create_time(pid: int) -> float | None:
    """The create time (epoch s) of a live, non-zombie process, ``None`` when it is gone.

    On Linux: boot time + field 22 of ``/proc/PID/stat`` (start time, clock ticks since boot) /
    ``SC_CLK_TCK``, a zombie by the state letter of field 3: psutil's own formula
    (``psutil._pslinux.Process.create_time``), so times written by either agree.
    """
    if _PROCFS:
        try:
            with open(f"/proc/{int(pid)}/stat", "rb") as f:
                data = f.read()
            fields = data[data.rfind(b")") + 2:].split()
            if fields[0] == b"Z":
                return None
            return _HostFacts.boot_time() + float(fields[19]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of an ISO-8601 time (UTC when it names no zone), ``None`` when empty or not a time."""
    if not text:
        return None
    try:
        t = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


def iso_utc(epoch_s: float) -> str:
    """Epoch seconds as ISO-8601 UTC text with seconds, like ``records.now_utc``."""
    return _dt.datetime.fromtimestamp(epoch_s, _dt.timezone.utc).isoformat(timespec="seconds")


def writer_facts(record: BuildRecord) -> WriterFacts:
    """What a later reader needs to tell a live ``running`` stage from a dead one (see module doc)."""
    running = {}
    for name in STAGES:
        stage = getattr(record.invocation, name)
        if stage.status == Status.RUNNING and stage.pid is not None:
            running[name] = RunningProcess(pid=stage.pid, create_time=_create_time(stage.pid))
    if not running:
        return WriterFacts(host=_HostFacts.host())
    return WriterFacts(host=_HostFacts.host(), boot_time=_HostFacts.boot_time(), running=running)


def _stale_reason(stage_name: str, record: BuildRecord, facts: WriterFacts | None) -> str | None:
    """Why a ``running`` stage is known dead, or ``None`` when it may still be running."""
    stage = getattr(record.invocation, stage_name)
    if stage.status != Status.RUNNING or stage.pid is None:
        return None
    facts = facts or WriterFacts()
    if facts.host is not None and facts.host != _HostFacts.host():
        return None  # another machine's process: cannot be checked from here
    if facts.boot_time is not None and abs(facts.boot_time - _HostFacts.boot_time()) > 2.0:
        return f"the machine restarted after process {stage.pid} started it"
    now_ct = _create_time(stage.pid)
    if now_ct is None:
        return f"process {stage.pid} that was running it is gone"
    stored = facts.running.get(stage_name)
    stored_ct = stored.create_time if stored is not None and stored.pid == stage.pid else None
    if stored_ct is not None:
        if abs(now_ct - stored_ct) > 0.05:
            return f"process {stage.pid} that was running it is gone (pid reused)"
        return None
    started = parse_time(stage.started_at)
    if started is not None and now_ct > started + 1.0:
        return f"process {stage.pid} that was running it is gone (pid reused)"
    return None


def apply_stale(record: BuildRecord, facts: WriterFacts | None) -> BuildRecord:
    """Mark ``running`` stages whose process is gone as ``killed`` (in memory only); an earlier
    success the stage held while running stays in its ``kept`` field."""
    for name in STAGES:
        reason = _stale_reason(name, record, facts)
        if reason is not None:
            stage = getattr(record.invocation, name)
            stage.status = Status.KILLED
            if not stage.error:
                stage.error = f"stopped while running: {reason}"
            if stage.kept is not None and stage.kept.status != Status.SUCCESSFUL:
                stage.kept = None  # only an earlier success rides along with a failure
    return record
