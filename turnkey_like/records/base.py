"""What every record shares: the :class:`Record` base, the stages and their statuses, one stage's
outcome (:class:`StageResult`), UTC timestamps and tensor dimensions.
"""

from __future__ import annotations

import datetime as _dt
import enum
from typing import Generic, TypeVar

import msgspec

from turnkey_like.records.codec import to_builtins

#: The pipeline's stages, in order; also the names of ``Invocation``'s stage fields.
STAGES = ("characterization", "build", "benchmark")


class Record(msgspec.Struct, kw_only=True):
    """Base of every record: keyword-only fields, encoded and validated by msgspec."""

    def to_dict(self) -> dict:
        """Plain JSON-able data of this record (what ``--json`` and the cache hold)."""
        return to_builtins(self)


def now_utc() -> str:
    """The current time as ISO-8601 UTC text with seconds (``2026-11-29T00:31:01+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


Dim = int | str
"""One tensor dimension: an int, or the name of a symbolic dimension (``"s0"``), never taken as 1."""


# --------------------------------------------------------------------------------------------------
# Status of a stage
# --------------------------------------------------------------------------------------------------


class Status(str, enum.Enum):
    """State of one pipeline stage for one invocation.

    ``running`` is written when a stage starts, with the pid of the process doing it; a reader that
    finds ``running`` whose process is gone reports it as ``killed`` (see ``turnkey_like.cache``).
    ``interrupted`` is a stage stopped by Ctrl-C (or SIGTERM). ``out_of_memory`` is a child killed by
    tk because its resident memory went over ``--memory-limit`` (``StageResult.peak_memory_bytes``
    holds the peak), distinct from ``killed`` (a signal tk did not send: a crash, the kernel's
    out-of-memory killer, a kill from outside).
    """

    NOT_STARTED = "not_started"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    ERROR = "error"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    KILLED = "killed"
    INTERRUPTED = "interrupted"
    OUT_OF_MEMORY = "out_of_memory"


#: Outcomes that end a stage and are kept in the record until a later run gives a new final one.
FINAL_STATUSES = frozenset({Status.SUCCESSFUL, Status.ERROR, Status.TIMEOUT, Status.KILLED, Status.OUT_OF_MEMORY})
#: Outcomes that count as a failure (the command exits non-zero).
FAILURE_STATUSES = frozenset({Status.ERROR, Status.TIMEOUT, Status.KILLED, Status.INTERRUPTED, Status.OUT_OF_MEMORY})


# --------------------------------------------------------------------------------------------------
# The outcome of one stage
# --------------------------------------------------------------------------------------------------

T = TypeVar("T")


class StageResult(Record, Generic[T]):
    """Outcome of one stage (characterization, build or benchmark) for one invocation.

    Attributes:
        status: see :class:`Status`.
        duration_s: wall time of the stage in seconds (``None`` until it ends).
        started_at: ISO-8601 UTC time the stage started.
        pid: process id doing the stage while ``status`` is ``running``.
        run_id: the tk run that produced this outcome (``<started-at>-<pid>`` of that run).
        error: one-line error message when the stage did not succeed.
        log_excerpt: the last lines of the stage's log when it failed.
        result: the stage's own record (:class:`Characterization`, :class:`BuildResult`,
            :class:`BenchmarkResult`), ``None`` until successful.
        reason: why the stage was skipped (e.g. ``not selected``, ``--analyze-only``), or where a
            result came from when this run did not compute it (``reused from cache``,
            ``kept from an earlier run``).
        kept: the last final outcome of an earlier run, held while this stage runs (so a run killed
            mid-stage is read back as that outcome, never as ``killed`` over a measurement), and
            after a failed attempt (``error``/``timeout``) of this run, so the earlier successful
            result is never erased. ``None`` when there was none. Never nested more than one level.
        peak_memory_bytes: the most resident memory (RSS, bytes) the stage's child process and the
            processes below it used together, sampled every 0.1 s under ``--memory-limit``
            (``turnkey_like.launcher.memory``); ``None`` when no cap watched it (the stage ran in
            tk's own process, or was reused).
    """

    status: Status = Status.NOT_STARTED
    duration_s: float | None = None
    started_at: str | None = None
    pid: int | None = None
    run_id: str | None = None
    error: str | None = None
    log_excerpt: str | None = None
    result: T | None = None
    reason: str | None = None
    kept: StageResult[T] | None = None
    peak_memory_bytes: int | None = None

    @property
    def failed(self) -> bool:
        """True when the stage ended in a failure (error, timeout, killed, interrupted, out of memory)."""
        return self.status in FAILURE_STATUSES

    @property
    def final(self) -> bool:
        """True when the stage has a final outcome worth keeping (success or failure)."""
        return self.status in FINAL_STATUSES
