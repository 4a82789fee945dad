"""The build cache: one folder per invocation, holding its record (JSON), ONNX files and logs.

Layout::

    <root>/                         --cache-dir, else $TK_CACHE_DIR, else ~/.cache/turnkey_like
      .tk-cache                     marker: this folder is a tk cache (JSON)
      .tk-index.sqlite              the index: one row per build for list/report/prune (cache_index)
      <script-stem>[_<author>]_<invocation-hash>/
        .tk-build                   marker: this folder is a tk build (JSON)
        .lock                       file lock taken by writers of this build only
        record.json                 the BuildRecord (JSON, never pickle), written atomically
        .summary.json               the record without bulky detail, for fast listing (see below)
        *.onnx, *.onnx.data, ...    artifacts (dropped by ``clean``)
        *.log, logs/                logs (kept by ``clean``)

This module is the boundary where records become files and back: :meth:`Cache.save` encodes a
:class:`~turnkey_like.records.BuildRecord` with the one codec (``records.encode`` through
``files.write_record``), and :meth:`Cache.load` / :meth:`Cache.records` decode and validate it with
``records.decode``. Nothing else in tk reads or writes ``record.json``. :func:`resolve_root` is the one
place the cache root is decided; every part of tk that writes under the cache (hardware profiles,
...) asks it.

Safety rules (DESIGN.md, "Cache"):

- Writes are atomic (``turnkey_like.files.write_atomic``): the record goes to a temporary file in the
  build folder, is flushed and ``fsync``-ed, then renamed over ``record.json``; a reader sees the old
  or the new record, never half of one, so readers take no lock. Files get 0666 less the umask, so a
  shared cache stays readable; a symlink where tk writes is refused.
- Writers of one build serialise on that build's own lock file (``filelock``); two processes writing
  different builds never wait for each other.
- A stage left ``running`` by a process that is gone (killed, crashed, machine restarted) reads as
  ``killed``. The writer's host name, boot time and the running process's create time are stored next
  to the record (key ``_cache``, a :class:`WriterFacts`) so that a reused pid is not mistaken for the
  original process. Records written on another host keep ``running``: tk cannot see that host's
  processes. Reading never rewrites a record.
- A record that cannot be read is named (a :class:`CacheProblem`, or a :class:`CacheError` from
  :meth:`Cache.load`) in one line and skipped; the rest of the cache stays readable. That covers a
  truncated file or one that is not JSON, a field of the wrong type or missing (the message names
  it: ``$.invocation.executed``), a record from a newer tk (hint: upgrade) and an older record that
  cannot be migrated. Records of schema version 1 (tk 0.1: plain ``json.dumps`` of the same layout,
  which may hold ``Infinity``/``NaN``) are read with the standard ``json`` module, brought up to date
  by ``records.migrate`` and validated by ``records.convert``.
- ``records()`` (used by ``tk cache list`` and ``tk report``) reads ``.summary.json``: the same
  :class:`BuildRecord` with the bulky detail of :data:`SUMMARY_OMITS` left empty (a few KB instead
  of hundreds), written after ``record.json`` under the same lock. It names the ``record.json`` it
  summarises (inode, size, mtime in ns); when that does not match, or the summary is missing,
  unreadable or of another schema version, the full record is read instead, so ``record.json`` stays
  the single source of truth. Version-1 summaries (written by tk 0.1) are migrated the same way as
  version-1 records, so an existing cache lists as fast as before without being rewritten.
- ``tk cache list``, ``tk report`` and ``tk cache prune`` read :meth:`Cache.entries`: one index at the
  cache root (:mod:`turnkey_like.cache_index`) holding each build's report row, last use and size,
  kept in step by every write under the build's lock. A row is used only while its ``record.json``
  has the stamp stored with it (inode, size, mtime, ctime: one ``stat`` per build); any other build
  (changed behind the index's back, new, running) is read from its record and its row rewritten, so
  a missing or damaged index is rebuilt as a side effect (``tk cache reindex`` does it at once).
- ``delete`` and ``prune`` remove only real folders (never symbolic links) carrying the build marker,
  inside a folder carrying the cache marker; ``prune`` skips a build whose lock another process holds.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import gc
import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Callable, Iterable

import msgspec

from turnkey_like.cache_index import (
    AT_BYTES,
    AT_EXTRA,
    AT_LISTING,
    AT_LIVE,
    AT_STAMP,
    AT_UPDATED,
    LISTING_KEYS,
    BuildEntry,
    CacheIndex,
    decode_rows,
    folder_bytes,
    index_row,
)
from turnkey_like.cache_index import stamp as _index_stamp
from turnkey_like.errors import CacheError, InputError, one_line
from turnkey_like.files import refuse_symlink, write_record
from turnkey_like.records import (
    SCHEMA_VERSION,
    STAGES,
    Breakdown,
    BuildRecord,
    FusionResult,
    Record,
    RecordError,
    Status,
    convert,
    csv_line,
    decode,
    encode,
    migrate,
    now_utc,
    report_row,
)

ENV_VAR = "TK_CACHE_DIR"
DEFAULT_ROOT = Path("~/.cache/turnkey_like")
ROOT_MARKER = ".tk-cache"
BUILD_MARKER = ".tk-build"
RECORD_FILE = "record.json"
SUMMARY_FILE = ".summary.json"
LOCK_FILE = ".lock"
LOG_SUFFIXES = (".log",)
LOG_DIR = "logs"

#: What a summary (``.summary.json``, what :meth:`Cache.records` returns by default) leaves empty,
#: per stage result type; everything else is the full record.
SUMMARY_OMITS = {
    "Characterization": ("rows", "modules", "top_ops", "breakdown", "fusion.groups", "hardware.sources"),
    "BuildResult": ("input_names", "output_names", "input_specs", "onnx_op_counts", "faithfulness",
                    "exporter_errors", "fingerprint"),
}

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def resolve_root(root: str | Path | None = None) -> Path:
    """Return the tk cache root: ``root`` if given, else ``$TK_CACHE_DIR``, else ``~/.cache/turnkey_like``.

    The one place the cache root is decided: the CLI's ``--cache-dir``, the pipeline, hardware
    profiles measured on this machine (``local``) and anything else tk stores all pass what the user
    gave (``None`` when nothing) through here. An empty string counts as not given. The path is made
    absolute (``~`` expanded); nothing is created or checked (:class:`Cache` does that).
    """
    if root is None or str(root) == "":
        env = os.environ.get(ENV_VAR, "")
        root = env if env else DEFAULT_ROOT
    return Path(root).expanduser().absolute()


class CacheProblem(Record, frozen=True):
    """A build folder whose record could not be read; it is skipped, and named to the user.

    Attributes:
        build_name: the folder name.
        path: the record file concerned.
        message: one line saying what is wrong (``record of build X is corrupt (truncated or not
            JSON: ...)``, ``... does not match the tk schema: Expected `int`, got `str` - at
            `$.invocation.executed```, ``build X has no record yet``, ...).
    """

    build_name: str
    path: str
    message: str


class _BuildGone(CacheError):
    """A build folder removed (``tk cache prune`` or ``delete``) while tk waited for its lock."""


class PrunedBuild(Record, frozen=True):
    """A build ``tk cache prune`` removed (or, with ``--dry-run``, would remove), or chose but kept.

    Attributes:
        build_name: the folder name.
        last_used: the record's ``updated_at`` (ISO-8601 UTC); for an unreadable record, its file's
            modification time.
        bytes: size of the folder's files, bytes (measured).
        unreadable: the record could not be read (it is pruned by its file's age).
        kept_because: why a chosen build was not removed (its lock is held, it was written since the
            listing, it is not a real folder); ``None`` for a removed one.
    """

    build_name: str
    last_used: str | None
    bytes: int
    unreadable: bool = False
    kept_because: str | None = None


class PruneResult(Record):
    """What :meth:`Cache.prune` did.

    Attributes:
        removed: the builds removed (with ``dry_run``: that would be), least recently used first.
        skipped: builds chosen but kept (see :attr:`PrunedBuild.kept_because`).
        freed_bytes: bytes freed (with ``dry_run``: that would be).
        kept_builds, kept_bytes: the builds left and their total size, bytes.
        dry_run: nothing was removed.
    """

    removed: list[PrunedBuild] = []
    skipped: list[PrunedBuild] = []
    freed_bytes: int = 0
    kept_builds: int = 0
    kept_bytes: int = 0
    dry_run: bool = False


# --------------------------------------------------------------------------------------------------
# What record.json holds besides the BuildRecord
# --------------------------------------------------------------------------------------------------


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


class _Stored(BuildRecord, kw_only=True):
    """``record.json`` / ``.summary.json``: a :class:`BuildRecord` plus the cache's own keys.

    ``_cache`` holds the :class:`WriterFacts`; ``_summary_of`` (summaries only) the
    ``[inode, size, mtime_ns]`` of the ``record.json`` summarised. Readers get a plain
    :class:`BuildRecord` back (:func:`_unwrap`).
    """

    writer: WriterFacts | None = msgspec.field(default=None, name="_cache")
    summary_of: list[int] | None = msgspec.field(default=None, name="_summary_of")


_RECORD_FIELDS = BuildRecord.__struct_fields__


def _wrap(record: BuildRecord, **extra) -> _Stored:
    """A shallow :class:`_Stored` of ``record`` (no field is copied deeply)."""
    return _Stored(**{f: getattr(record, f) for f in _RECORD_FIELDS}, **extra)


def _unwrap(stored: _Stored) -> BuildRecord:
    """The :class:`BuildRecord` inside a stored record (shallow)."""
    return BuildRecord(**{f: getattr(stored, f) for f in _RECORD_FIELDS})


def _summary(record: BuildRecord) -> BuildRecord:
    """``record`` with the detail named in :data:`SUMMARY_OMITS` left empty (shallow copies)."""
    replace = msgspec.structs.replace
    inv = record.invocation
    changes = {}
    char = inv.characterization.result
    if char is not None:
        slim = replace(char, rows=[], modules=[], top_ops=[], breakdown=Breakdown(),
                       fusion=FusionResult(summary=char.fusion.summary),
                       hardware=replace(char.hardware, sources={}))
        changes["characterization"] = replace(inv.characterization, result=slim)
    build = inv.build.result
    if build is not None:
        slim = replace(build, input_names=[], output_names=[], input_specs=[], onnx_op_counts={},
                       faithfulness={}, exporter_errors={}, fingerprint={})
        changes["build"] = replace(inv.build, result=slim)
    if not changes:
        return record
    return replace(record, invocation=replace(inv, **changes))


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


# --------------------------------------------------------------------------------------------------
# Stale `running` stages
# --------------------------------------------------------------------------------------------------


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


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        t = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


def _iso(epoch_s: float) -> str:
    """Epoch seconds as ISO-8601 UTC text with seconds, like ``records.now_utc``."""
    return _dt.datetime.fromtimestamp(epoch_s, _dt.timezone.utc).isoformat(timespec="seconds")


def _writer_facts(record: BuildRecord) -> WriterFacts:
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
    started = _parse_time(stage.started_at)
    if started is not None and now_ct > started + 1.0:
        return f"process {stage.pid} that was running it is gone (pid reused)"
    return None


def _apply_stale(record: BuildRecord, facts: WriterFacts | None) -> BuildRecord:
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


# --------------------------------------------------------------------------------------------------
# Decoding one record file
# --------------------------------------------------------------------------------------------------


def _delete_hint(build_name: str) -> str:
    return f"`tk cache delete {build_name}` removes it; run the build again to rewrite it"


def _parse_json(data: bytes):
    """Untyped JSON (dicts, lists, ...): msgspec's parser, else the standard one, which also accepts
    the ``Infinity``/``NaN`` version 1 could write. Raises ``ValueError`` (``json.JSONDecodeError``)."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return json.loads(data)


def _convert_stored(obj: dict, what: str) -> _Stored:
    """Validate migrated builtins into a :class:`_Stored` (``records.convert``).

    Re-encoding and decoding is tried first: ``msgspec.convert`` from dicts is about 10x slower than
    decoding JSON, and this runs for every record of a version-1 cache. Where that fails (a value only
    ``convert`` accepts, such as an infinite float), ``records.convert`` decides, and names the field.
    Raises :class:`RecordError`.
    """
    try:
        return decode(encode(obj), _Stored, what=what)
    except RecordError:
        return convert(obj, _Stored, what=what)


def decode_stored(data: bytes, build_name: str) -> tuple[BuildRecord, WriterFacts | None]:
    """Decode the bytes of a ``record.json`` into a validated, current :class:`BuildRecord`.

    Current records (:data:`~turnkey_like.records.SCHEMA_VERSION`) take one ``records.decode``.
    Anything else is read as plain JSON (``json.loads`` accepts the ``Infinity``/``NaN`` of version 1)
    to say why: older versions are brought up to date with ``records.migrate`` and validated with
    ``records.convert``.

    Returns:
        the record and the writer facts stored with it (``None`` when there are none).

    Raises:
        CacheError: one line naming the build: not JSON (truncated), not an object, a field that
            does not match the schema (named, ``$.invocation.executed``), a newer schema version
            (hint: upgrade tk), or an outdated record that cannot be migrated.
    """
    what = f"record of build {build_name}"
    first: RecordError | None = None
    try:
        stored = decode(data, _Stored, what=what)
    except RecordError as e:
        first = e
    else:
        if stored.schema_version == SCHEMA_VERSION:
            return _unwrap(stored), stored.writer
    try:
        obj = _parse_json(data)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        where = f"{e.msg} at byte {e.pos}" if isinstance(e, json.JSONDecodeError) else one_line(e)
        raise CacheError(f"{what} is corrupt (truncated or not JSON: {where})", hint=_delete_hint(build_name)) from None
    if not isinstance(obj, dict):
        raise CacheError(f"{what} is corrupt (not a JSON object)", hint=_delete_hint(build_name))
    version = obj.get("schema_version", 1)
    if version == SCHEMA_VERSION and first is not None:
        raise CacheError(one_line(first), hint=_delete_hint(build_name))
    try:
        migrate(obj, what=what)
    except RecordError as e:
        raise CacheError(one_line(e), hint=e.hint) from None
    try:
        stored = _convert_stored(obj, what)
    except RecordError as e:
        detail = e.message.split(" does not match the tk schema: ", 1)[-1]
        raise CacheError(one_line(RecordError(f"{what} has outdated schema version {version} and could not be "
                                              f"migrated: {detail}")), hint=_delete_hint(build_name)) from None
    return _unwrap(stored), stored.writer


def _decode_summary(data: bytes, record_stat: os.stat_result) -> tuple[BuildRecord, WriterFacts | None] | None:
    """A summary's record when it summarises the ``record.json`` with ``record_stat``, else ``None``.

    Summaries of the current version take one ``records.decode``; version-1 summaries (tk 0.1) are
    migrated (:func:`_migrate_v1_summary`), so a cache written by the previous tk lists as fast as
    before without being rewritten.
    """
    try:
        stored = decode(data, _Stored, what="summary")
    except RecordError:
        stored = None
    if stored is None or stored.schema_version != SCHEMA_VERSION:
        stored = _migrate_v1_summary(data)
    if stored is None or stored.summary_of != _stamp(record_stat):
        return None
    return _unwrap(stored), stored.writer


def _migrate_v1_summary(data: bytes) -> _Stored | None:
    """A version-1 ``.summary.json`` brought up to date, or ``None`` when it is not one or cannot be.

    Version 1 summaries dropped every list, and every dict of over 100 keys, from the stage results;
    the fields of that kind a version-2 :class:`~turnkey_like.records.Characterization` requires are
    filled in empty (as a version-2 summary has them, see :data:`SUMMARY_OMITS`), including the
    shape of each characterized input (the report reads shapes from the invocation's signature).
    """
    try:
        obj = _parse_json(data)
        if not isinstance(obj, dict) or obj.get("schema_version", 1) != 1:
            return None
        migrate(obj)
        char = ((obj.get("invocation") or {}).get("characterization") or {}).get("result")
        if isinstance(char, dict):
            for key, empty in (("rows", []), ("modules", []), ("top_ops", []), ("uncounted", {}), ("inputs", {})):
                char.setdefault(key, empty)
            for desc in char["inputs"].values():
                if isinstance(desc, dict):
                    desc.setdefault("shape", [])
        return _convert_stored(obj, "summary")
    except (ValueError, AttributeError, RecordError):
        return None


@contextlib.contextmanager
def bulk_load():
    """Pause Python's cyclic garbage collector while many records are decoded and kept (a context).

    Each record is a tree of ~25 msgspec objects with no reference cycles (nothing to collect), but
    every new object counts towards the collector's next pass, which then walks all the records
    decoded so far: on 10,000 builds that made ``records()`` 2.5x slower (1.1 s vs 0.45 s,
    ``benchmarks/cache_scale.py``). Reference counting still frees everything as usual. Used by
    :meth:`Cache.records`, and by ``tk cache list`` / ``tk report`` around their whole work.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Cache:
    """A tk cache folder: build folders with one :class:`BuildRecord` each.

    Args:
        root: the cache folder; ``None`` uses ``$TK_CACHE_DIR``, else ``~/.cache/turnkey_like``
            (:func:`resolve_root`).
        create: create the folder (and its marker) when missing, and require it to be writable.
            Readers (``tk cache list``, ``tk report``) pass ``False``: a read-only cache is then fine,
            and a missing one is an error.
        lock_timeout_s: how long a writer waits for another process's lock on the same build, seconds.

    Raises:
        CacheError: the folder cannot be created or written (with ``create``), does not exist
            (without), is not a folder, or is a non-empty folder that is not a tk cache.
    """

    def __init__(self, root: str | Path | None = None, *, create: bool = True, lock_timeout_s: float = 120.0):
        self.root: Path = resolve_root(root)
        self.lock_timeout_s = lock_timeout_s
        self.writable = create
        if create:
            self._ensure_root()
        else:
            self._check_root()
        self._index: CacheIndex | None = None

    @property
    def index(self) -> CacheIndex:
        """The cache's index (:mod:`turnkey_like.cache_index`), opened on first use; written only when
        this process may write the cache folder."""
        if self._index is None:
            writable = self.writable or os.access(self.root, os.W_OK | os.X_OK)
            self._index = CacheIndex(self.root, writable=writable)
        return self._index

    # ----------------------------------------------------------------------------- root
    def _check_root(self) -> None:
        if not self.root.exists():
            raise CacheError(
                f"no tk cache at {self.root}",
                hint="run `tk benchmark ...` first, or pass --cache-dir (or set TK_CACHE_DIR) to an existing cache",
            )
        if not self.root.is_dir():
            raise CacheError(f"cache path {self.root} is not a folder", hint="pass --cache-dir with a folder")
        if not (self.root / ROOT_MARKER).is_file():
            raise CacheError(
                f"{self.root} is not a tk cache (no {ROOT_MARKER} marker)",
                hint="pass --cache-dir (or set TK_CACHE_DIR) to a folder tk created",
            )

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise CacheError(f"cache path {self.root} is not a folder", hint="pass --cache-dir with a folder") from None
        except OSError as e:
            raise CacheError(
                f"cannot create the cache folder {self.root}: {e.strerror or e}",
                hint="pass --cache-dir (or set TK_CACHE_DIR) to a writable folder",
            ) from None
        marker = self.root / ROOT_MARKER
        if not marker.is_file():
            if any(entry.name != ROOT_MARKER and not entry.name.startswith(f".{ROOT_MARKER}.") for entry in os.scandir(self.root)):
                raise CacheError(
                    f"{self.root} is not empty and is not a tk cache (no {ROOT_MARKER} marker)",
                    hint="pass --cache-dir (or set TK_CACHE_DIR) to a new or empty folder",
                )
            try:
                from turnkey_like import __version__

                write_record(marker, {"tool": "turnkey_like", "kind": "cache", "tk_version": __version__})
            except OSError as e:
                raise CacheError(
                    f"cache folder {self.root} is not writable: {e.strerror or e}",
                    hint="fix its permissions, or pass --cache-dir (or set TK_CACHE_DIR) to a writable folder",
                ) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise CacheError(
                f"cache folder {self.root} is not writable",
                hint="fix its permissions, or pass --cache-dir (or set TK_CACHE_DIR) to a writable folder",
            )

    # ----------------------------------------------------------------------------- names
    @staticmethod
    def build_name(script: str | Path, labels: dict[str, list[str]], invocation_hash: str,
                   stem: str | None = None) -> str:
        """Return ``<script-stem>[_<author>]_<invocation-hash>``; the author is ``labels["author"][0]``.

        ``stem`` replaces the script's stem (a named model's ``<name>_<source>``, so it never
        collides with a script's build). Characters other than letters, digits, ``. _ + -`` become
        ``_`` so the name is a safe folder name.
        """
        parts = [stem or Path(str(script)).stem]
        authors = (labels or {}).get("author") or []
        if authors and authors[0]:
            parts.append(str(authors[0]))
        parts.append(invocation_hash)
        name = "_".join(_NAME_UNSAFE.sub("_", p).strip("_") or "_" for p in parts)
        return name if _NAME_OK.match(name) else f"b{name}"

    def _folder(self, build_name: str) -> Path:
        if not isinstance(build_name, str) or not _NAME_OK.match(build_name) or build_name in (".", ".."):
            raise CacheError(
                f"invalid build name {build_name!r}",
                hint="build names are <script-stem>[_<author>]_<hash>; `tk cache list` shows them",
            )
        return self.root / build_name

    def _is_build(self, folder: Path) -> bool:
        return (folder / BUILD_MARKER).is_file()

    def suggestions(self, build_name: str, limit: int = 3) -> list[str]:
        """Return up to ``limit`` existing build names closest to ``build_name`` (substring matches first)."""
        names = self.builds()
        contains = [n for n in names if build_name and build_name.lower() in n.lower()]
        close = difflib.get_close_matches(build_name, names, n=limit, cutoff=0.5)
        out: list[str] = []
        for n in contains + close:
            if n not in out:
                out.append(n)
        return out[:limit]

    def _unknown(self, build_name: str) -> CacheError:
        close = self.suggestions(build_name)
        hint = f"did you mean: {', '.join(close)}?" if close else "`tk cache list` shows the builds in this cache"
        return CacheError(f"no build named {build_name!r} in cache {self.root}", hint=hint)

    # ----------------------------------------------------------------------------- folders
    def build_dir(self, build_name: str) -> Path:
        """Return the build's folder, creating it and its marker when missing.

        Raises:
            CacheError: invalid name, or the folder cannot be created (read-only cache, full disk).
        """
        folder = self._folder(build_name)
        if self._is_build(folder):
            return folder
        try:
            folder.mkdir(exist_ok=True)
            write_record(folder / BUILD_MARKER, {"tool": "turnkey_like", "kind": "build", "build_name": build_name})
        except OSError as e:
            raise CacheError(
                f"cannot create build folder {folder}: {e.strerror or e}",
                hint="fix the cache's permissions, or pass --cache-dir (or set TK_CACHE_DIR) to a writable folder",
            ) from None
        return folder

    def _lock(self, folder: Path, timeout_s: float | None = None):
        from filelock import FileLock

        path = folder / LOCK_FILE
        refuse_symlink(path)  # filelock opens with O_TRUNC: a planted link would truncate its target
        return FileLock(str(path), timeout=self.lock_timeout_s if timeout_s is None else timeout_s)

    def _locked(self, folder: Path, build_name: str):
        from filelock import Timeout

        lock = self._lock(folder)
        try:
            lock.acquire()
        except Timeout:
            raise CacheError(
                f"build {build_name} is locked by another tk process (waited {self.lock_timeout_s:.0f} s)",
                hint=f"wait for it to finish, or remove {folder / LOCK_FILE} if no tk process is running",
            ) from None
        except OSError as e:
            if isinstance(e, FileNotFoundError) and not folder.is_dir():
                raise _BuildGone(f"build folder {folder} was removed while tk was waiting to write it",
                                 hint="another tk process is deleting builds (`tk cache prune`); run again") from None
            raise CacheError(
                f"cannot lock build {build_name}: {e.strerror or e}",
                hint="fix the cache's permissions, or pass --cache-dir to a writable folder",
            ) from None
        return lock

    # ----------------------------------------------------------------------------- records
    def _write(self, folder: Path, record: BuildRecord) -> None:
        now = now_utc()
        if not record.created_at:
            record.created_at = now
        record.updated_at = now
        if not record.tk_version:
            from turnkey_like import __version__

            record.tk_version = __version__
        facts = _writer_facts(record)
        path = folder / RECORD_FILE
        try:
            write_record(path, _wrap(record, writer=facts))
            st = os.stat(path)
        except OSError as e:
            raise CacheError(
                f"cannot write the record of build {record.build_name}: {e.strerror or e}",
                hint="check free disk space and the cache's permissions",
            ) from None
        try:
            summary = _wrap(_summary(record), writer=facts, summary_of=_stamp(st))
            write_record(folder / SUMMARY_FILE, summary, fsync=False)
        except (OSError, CacheError):
            pass  # only a speed-up: readers fall back to record.json
        # only a speed-up too: a row that is not written is stale, and readers then read the record
        self.index.put([index_row(record.build_name, st, record, folder_bytes(folder))])

    def save(self, record: BuildRecord) -> None:
        """Write ``record`` to its build folder atomically, under the build's lock.

        Sets ``record.created_at`` (first save), ``record.updated_at`` (``records.now_utc``) and an
        empty ``tk_version``.

        Raises:
            CacheError: invalid build name, read-only cache, lock timeout, disk full, a symlink in
                place of ``record.json``.
        """
        for attempt in range(3):  # a folder pruned or deleted while this waited for its lock is made again
            folder = self.build_dir(record.build_name)
            try:
                lock = self._locked(folder, record.build_name)
            except _BuildGone:
                if attempt == 2:
                    raise
                continue
            try:
                if self._is_build(folder):
                    self._write(folder, record)
                    return
            finally:
                lock.release()
        raise _BuildGone(f"build folder {folder} was removed while tk was writing it",
                         hint="another tk process is deleting builds (`tk cache prune/delete`); run again")

    def update(self, build_name: str, fn: Callable[[BuildRecord], None]) -> BuildRecord:
        """Read, change (``fn(record)`` mutates it in place) and write one record, all under its lock.

        Returns the record as written. Another process's update of the same build waits for this one,
        so no change is lost. ``fn`` sees the stored statuses (no ``killed`` rewriting).

        Raises:
            CacheError: no such build (with the closest names), unreadable record, lock timeout.
        """
        folder = self._folder(build_name)
        if not self._is_build(folder):
            raise self._unknown(build_name)
        lock = self._locked(folder, build_name)
        try:
            record, _, _ = self._read(folder)
            fn(record)
            self._write(folder, record)
        finally:
            lock.release()
        return record

    def _read(self, folder: Path | str,
              summary: bool = False) -> tuple[BuildRecord, WriterFacts | None, os.stat_result]:
        """Read a folder's record (its summary when ``summary`` and fresh); raises CacheError with a reason.

        Returns the record, its writer facts and the ``stat`` of the very ``record.json`` it came from
        (the one the summary names, or ``fstat`` of the file read), for the index's stamps.
        ``folder`` may be a plain string: :meth:`records` passes one per build, and ``pathlib`` joins
        cost more than the decoding on a large cache.
        """
        folder = os.fspath(folder)
        name = os.path.basename(folder)
        path = os.path.join(folder, RECORD_FILE)
        try:
            if summary:
                st = os.stat(path)
                try:
                    with open(os.path.join(folder, SUMMARY_FILE), "rb") as f:
                        got = _decode_summary(f.read(), st)
                except OSError:
                    got = None
                if got is not None:
                    return (*got, st)
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            raise CacheError(f"build {name} has no record yet ({path})", hint="it may still be starting; run it again") from None
        except OSError as e:
            raise CacheError(f"cannot read the record of build {name}: {e.strerror or e}", hint="check the cache's permissions") from None
        return (*decode_stored(data, name), st)

    def load(self, build_name: str) -> BuildRecord:
        """Return one build's full record; a ``running`` stage whose process is gone reads as ``killed``.

        Raises:
            CacheError: no such build (the message suggests the closest names), no record yet, or a
                record that cannot be read (one line naming the build and, for a schema mismatch,
                the field; see :func:`decode_stored`).
        """
        folder = self._folder(build_name)
        if not self._is_build(folder):
            raise self._unknown(build_name)
        record, facts, _ = self._read(folder)
        return _apply_stale(record, facts)

    def builds(self) -> list[str]:
        """Return the names of all build folders (those with the build marker), sorted."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(e.name for e in entries if e.is_dir() and os.path.isfile(os.path.join(e.path, BUILD_MARKER)))

    def records(self, full: bool = False) -> tuple[list[BuildRecord], list[CacheProblem]]:
        """Return every readable record (sorted by build name) and the builds that could not be read.

        With ``full=False`` (the default, what listings and reports need) the records are summaries:
        the fields named in :data:`SUMMARY_OMITS` (per-op rows, per-module roll-up, ...) are empty;
        totals, hardware profile name, build and benchmark figures are all there. ``full=True`` (or
        :meth:`load`) reads everything, at the cost of reading every ``record.json`` whole. Stale
        ``running`` stages read as ``killed``. Unreadable records are skipped, each named in a
        :class:`CacheProblem`.
        """
        records: list[BuildRecord] = []
        problems: list[CacheProblem] = []
        root = str(self.root)
        with bulk_load():
            for name in self.builds():
                folder = os.path.join(root, name)
                try:
                    record, facts, _ = self._read(folder, summary=not full)
                except CacheError as e:
                    problems.append(CacheProblem(build_name=name, path=os.path.join(folder, RECORD_FILE),
                                                 message=e.message))
                    continue
                records.append(_apply_stale(record, facts))
        return records, problems

    # ----------------------------------------------------------------------------- files
    def files(self, build_name: str) -> list[tuple[str, int]]:
        """Return ``(path relative to the build folder, size in bytes)`` for every file of a build, sorted.

        Raises:
            CacheError: no such build (with the closest names).
        """
        folder = self._folder(build_name)
        if not self._is_build(folder):
            raise self._unknown(build_name)
        out = []
        for dirpath, _dirs, names in os.walk(folder):
            for n in names:
                p = Path(dirpath) / n
                try:
                    out.append((str(p.relative_to(folder)), p.stat().st_size))
                except OSError:
                    continue
        return sorted(out)

    def _check_names(self, names: Iterable[str]) -> list[str]:
        names = list(dict.fromkeys(names))
        for name in names:
            folder = self._folder(name)
            if not folder.exists():
                raise self._unknown(name)
            if not self._is_build(folder):
                raise CacheError(
                    f"{folder} is not a tk build folder (no {BUILD_MARKER} marker); not touched",
                    hint="remove it by hand if it is yours",
                )
        return names

    def links(self, names: Iterable[str]) -> list[str]:
        """The names among ``names`` whose build folder is a symbolic link (which :meth:`delete` and
        :meth:`clean` skip: tk never follows a link out of its cache)."""
        return [name for name in names if (self.root / name).is_symlink()]

    def delete(self, names: Iterable[str]) -> list[str]:
        """Remove whole build folders; returns the names removed.

        Every name is checked before anything is removed. A build folder that is a symbolic link is
        skipped (see :meth:`links`), never followed.

        Raises:
            CacheError: a name is not a build here (closest names suggested), or removal failed.
        """
        names = self._check_names(names)
        skip = set(self.links(names))
        names = [name for name in names if name not in skip]
        removed: list[str] = []
        try:
            for name in names:
                try:
                    shutil.rmtree(self.root / name)
                except OSError as e:
                    raise CacheError(f"cannot delete build {name}: {e.strerror or e}",
                                     hint="check the cache's permissions") from None
                removed.append(name)
        finally:
            self.index.remove(removed)
        return names

    @staticmethod
    def _keep(rel: Path) -> bool:
        """Whether ``clean`` keeps a file: the record, markers, lock and logs."""
        if rel.parts and rel.parts[0] == LOG_DIR:
            return True
        return rel.name in (RECORD_FILE, SUMMARY_FILE, BUILD_MARKER, LOCK_FILE) or rel.name.endswith(LOG_SUFFIXES)

    def clean(self, names: Iterable[str]) -> dict[str, int]:
        """Drop the artifacts (ONNX files, raw data, leftovers) of builds, keeping records and logs.

        Returns bytes freed per build name. Each build is cleaned under its lock. A build folder that
        is a symbolic link is skipped (see :meth:`links`); links inside a build are removed, never
        followed.

        Raises:
            CacheError: a name is not a build here (closest names suggested), or removal failed.
        """
        names = self._check_names(names)
        skip = set(self.links(names))
        freed: dict[str, int] = {}
        for name in (n for n in names if n not in skip):
            folder = self.root / name
            lock = self._locked(folder, name)
            try:
                total = 0
                for dirpath, dirs, files in os.walk(folder, topdown=False):
                    for n in files:
                        p = Path(dirpath) / n
                        if self._keep(p.relative_to(folder)):
                            continue
                        try:
                            total += p.lstat().st_size
                            p.unlink()
                        except OSError as e:
                            raise CacheError(f"cannot clean build {name}: {e.strerror or e}", hint="check the cache's permissions") from None
                    for d in dirs:
                        sub = Path(dirpath) / d
                        if sub.is_symlink():  # a link to a folder: removed, its target untouched
                            sub.unlink()
                        elif not any(sub.iterdir()):
                            sub.rmdir()
                freed[name] = total
                self.index.set_bytes({name: folder_bytes(folder)})
            finally:
                lock.release()
        return freed

    # ----------------------------------------------------------------------------- the index
    def entries(self, *, rows: bool = False, csv: bool = False,
                rebuild: bool = False) -> tuple[list[BuildEntry], list[CacheProblem]]:
        """Return every readable build as listing, reporting and pruning see it (name, last use, size,
        listing values; sorted by name), and the builds whose record cannot be read.

        Reads the index (:mod:`turnkey_like.cache_index`) plus one ``stat`` of ``record.json`` per
        build. A build whose row is missing, of another format or marked running, or whose
        ``record.json`` no longer has the stamp stored with its row, is read from its record (its
        summary when fresh) instead; when this process may write the cache, such rows are then
        rewritten and the rows of builds that are gone or unreadable dropped, so a missing or stale
        index is rebuilt on the way. A stale ``running`` stage reads ``killed``, as in :meth:`records`.

        Args:
            rows: fill each entry's report row (``records.report_row``).
            csv: fill each entry's report row as a CSV line (``records.csv_line``).
            rebuild: ignore the index, read every record and make what was read the whole index, in
                one transaction (``tk cache reindex``).

        Raises:
            CacheError: with ``rebuild``, the index cannot be written.
        """
        extra = ("row",) * rows + ("csv",) * csv
        at_row, at_csv = AT_EXTRA, AT_EXTRA + rows  # positions of the extra columns in what the index returns
        indexed = {} if rebuild else self.index.read(extra)
        root = str(self.root)
        sep = os.sep
        entries: list[BuildEntry] = []
        blobs: list[tuple[BuildEntry, bytes]] = []  # fresh report rows, decoded together below
        problems: list[CacheProblem] = []
        new_rows: list[tuple] = []
        drop: list[str] = []
        with bulk_load():
            try:
                with os.scandir(root) as it:
                    names = sorted(e.name for e in it if e.is_dir())
            except FileNotFoundError:
                names = []
            for name in names:
                got = indexed.pop(name, None)
                known = None
                if got is not None:
                    try:
                        fresh = got[AT_STAMP] == _index_stamp(os.stat(root + sep + name + sep + RECORD_FILE))
                    except OSError:
                        fresh = False
                    if fresh and not got[AT_LIVE] and (not csv or got[at_csv].startswith(name + ",")):
                        entry = BuildEntry(name, got[AT_UPDATED], got[AT_BYTES], got[AT_LISTING],
                                           csv=got[at_csv] if csv else None)
                        entries.append(entry)
                        if rows:
                            blobs.append((entry, got[at_row]))
                        continue
                    if fresh and got[AT_LIVE]:  # running when written, record unchanged: only the row is re-derived
                        known = got[AT_BYTES]
                entry = self._entry_from_record(name, new_rows, problems, rows, csv, known)
                if entry is not None:
                    entries.append(entry)
                elif got is not None:
                    drop.append(name)
            if blobs:
                self._fill_rows(blobs, entries, new_rows, problems, csv)
        drop.extend(indexed)  # rows of folders that are gone
        if rebuild:
            self.index.replace_all(new_rows)
        elif new_rows or drop:
            self.index.put(new_rows)
            self.index.remove(drop)
        return entries, problems

    def _entry_from_record(self, name: str, new_rows: list, problems: list[CacheProblem], rows: bool = False,
                           csv: bool = False, known_bytes: int | None = None) -> BuildEntry | None:
        """A build read from its record (summary when fresh), its index row appended to ``new_rows``;
        or ``None``: not a build folder, or an unreadable record (appended to ``problems``).
        ``rows``/``csv``: fill the entry's report row / CSV line. ``known_bytes``: the folder's size
        from an index row still fresh (a running build's): the folder is then not walked, nor the
        row stored again."""
        folder = os.path.join(str(self.root), name)
        if not os.path.isfile(os.path.join(folder, BUILD_MARKER)):
            return None
        try:
            record, facts, st = self._read(folder, summary=True)
        except CacheError as e:
            problems.append(CacheProblem(build_name=name, path=os.path.join(folder, RECORD_FILE), message=e.message))
            return None
        row = report_row(record)
        if known_bytes is None:
            stored = index_row(name, st, record, folder_bytes(folder), row=row)
            new_rows.append(stored)
            nbytes, live, line = stored[AT_BYTES], stored[AT_LIVE], stored[-1]  # an IndexRow starts as READ_COLUMNS
        else:
            nbytes, live, line = known_bytes, True, None
        if live:  # a stage is running: its process may be gone since (so a stored row is never used)
            row = report_row(_apply_stale(record, facts))
            line = None
        if csv and line is None:
            line = csv_line(row)
        return BuildEntry(name, record.updated_at, nbytes, tuple(row[k] for k in LISTING_KEYS),
                          row=row if rows else None, csv=line if csv else None)

    def _fill_rows(self, blobs: list[tuple[BuildEntry, bytes]], entries: list[BuildEntry], new_rows: list,
                   problems: list[CacheProblem], csv: bool) -> None:
        """Decode the report rows of fresh index entries (one call for all); an entry whose row does
        not decode, or names another build, is read from its record instead: a damaged index is
        never trusted over a record."""
        decoded = decode_rows([b for _, b in blobs])
        bad = []
        for (entry, _), row in zip(blobs, decoded):
            if row is not None and row.build_name == entry.name:
                entry.row = row
            else:
                bad.append(entry.name)
        if bad:
            bad_set = set(bad)
            entries[:] = [e for e in entries if e.name not in bad_set]
            for name in bad:
                entry = self._entry_from_record(name, new_rows, problems, True, csv)
                if entry is not None:
                    entries.append(entry)
            entries.sort(key=lambda e: e.name)

    def reindex(self) -> tuple[list[BuildEntry], list[CacheProblem]]:
        """Rebuild the index from the records (``tk cache reindex``); returns :meth:`entries`.

        Raises:
            CacheError: the index cannot be written (read-only cache, full disk).
        """
        return self.entries(rebuild=True)

    def folder_bytes(self, build_name: str) -> int:
        """Total size of the files in a build's folder, bytes (0 when it is gone).

        Raises:
            CacheError: ``build_name`` is not a folder name (a path, ``.``, ``..``).
        """
        if not build_name or build_name in (".", "..") or "/" in build_name or os.sep in build_name:
            raise CacheError(f"invalid build name {build_name!r}", hint="`tk cache list` shows the builds")
        return folder_bytes(self.root / build_name)

    def prune(self, *, older_than_days: float | None = None, max_bytes: int | None = None,
              dry_run: bool = False) -> PruneResult:
        """Remove the least recently used builds (``tk cache prune``).

        First every build last used more than ``older_than_days`` days ago, then, oldest first, as
        many as it takes to bring the total size of the build folders to ``max_bytes`` or less. Last
        use is the record's ``updated_at`` (every run writes its record, reused or not); an
        unreadable record's is the modification time of its ``record.json`` (of its build marker when
        it has none). Sizes are measured (a walk of every build folder: the index's sizes date from
        each build's last write), so what is freed and what is left are exact.

        Only real folders (not symbolic links) carrying the build marker are removed, each under its
        lock, taken without waiting: a build whose lock another process holds, or whose record was
        written after the listing, is kept and named in ``skipped`` (and, for ``max_bytes``, the
        next least recently used is taken instead). Nothing is removed with ``dry_run``.

        Raises:
            InputError: no limit given, or a negative one.
        """
        import time

        if older_than_days is None and max_bytes is None:
            raise InputError("give --older-than DAYS, --max-size SIZE or both", hint="`tk cache prune --help`")
        if (older_than_days is not None and older_than_days < 0) or (max_bytes is not None and max_bytes < 0):
            raise InputError("prune limits cannot be negative")
        started = time.time()
        entries, problems = self.entries()
        builds: list[tuple[float, str, int, str | None, bool]] = []  # (last use, name, bytes, text, unreadable)
        measured: dict[str, int] = {}
        for e in entries:
            when = _parse_time(e.updated_at)
            if when is None:
                when = self._mtime(e.name)
            nbytes = folder_bytes(os.path.join(self.root, e.name))
            if nbytes != e.bytes:
                measured[e.name] = nbytes
            builds.append((when, e.name, nbytes, e.updated_at, False))
        self.index.set_bytes(measured)  # files added since a build's last write: the listing's sizes follow
        for p in problems:
            when = self._mtime(p.build_name)
            builds.append((when, p.build_name, folder_bytes(os.path.join(self.root, p.build_name)), _iso(when), True))
        builds.sort()  # least recently used first
        left = sum(b[2] for b in builds)
        cutoff = None if older_than_days is None else started - older_than_days * 86400.0
        result = PruneResult(dry_run=dry_run)
        for when, name, nbytes, text, unreadable in builds:
            old = cutoff is not None and when < cutoff
            if not old and (max_bytes is None or left <= max_bytes):
                result.kept_builds += 1
                result.kept_bytes += nbytes
                continue
            why, freed = (None, nbytes) if dry_run else self._remove_build(name, started)
            pruned = PrunedBuild(build_name=name, last_used=text, bytes=nbytes if why else freed,
                                 unreadable=unreadable, kept_because=why)
            if why is None:
                result.removed.append(pruned)
                result.freed_bytes += freed
                left -= nbytes
            else:  # the next least recently used is taken instead, where a size is to be reached
                result.skipped.append(pruned)
                result.kept_builds += 1
                result.kept_bytes += nbytes
        if not dry_run:
            self.index.remove([b.build_name for b in result.removed])
        return result

    def _mtime(self, build_name: str) -> float:
        """Modification time (epoch s) of a build's ``record.json``, else of its marker, else 0."""
        folder = self.root / build_name
        for name in (RECORD_FILE, BUILD_MARKER):
            with contextlib.suppress(OSError):
                return os.stat(folder / name).st_mtime
        return 0.0

    def _remove_build(self, build_name: str, listed_at: float) -> tuple[str | None, int]:
        """Remove one build folder for :meth:`prune`: ``(None, bytes freed)``, or ``(why it was kept, 0)``.

        Removed only when it is a real folder (``lstat``: not a symbolic link) with a regular build
        marker file, its lock is free (taken without waiting, held while removing) and its record
        was not written after ``listed_at`` (epoch s). ``shutil.rmtree`` never follows symbolic links
        inside the folder (it removes the links themselves).
        """
        import stat as _stat

        from filelock import Timeout

        try:
            folder = self._folder(build_name)
        except CacheError:
            return "not a tk build name; not touched", 0
        try:
            if not _stat.S_ISDIR(os.lstat(folder).st_mode):
                return "not a real folder (a symbolic link or a file); not touched", 0
            if not _stat.S_ISREG(os.lstat(folder / BUILD_MARKER).st_mode):
                return f"its {BUILD_MARKER} marker is not a regular file; not touched", 0
        except FileNotFoundError:
            return "not a tk build folder (gone, or no marker); not touched", 0
        try:
            lock = self._lock(folder, timeout_s=0)
            lock.acquire()
        except Timeout:
            return "in use: another tk process holds its lock", 0
        except (OSError, CacheError) as e:
            return f"cannot lock it: {e.strerror if isinstance(e, OSError) else e.message}", 0
        try:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(folder / RECORD_FILE).st_mtime > listed_at:
                    return "written by a run since the listing", 0
            freed = folder_bytes(folder)
            try:
                shutil.rmtree(folder)
            except OSError as e:
                return f"cannot remove it: {e.strerror or e}", 0
            return None, freed
        finally:
            with contextlib.suppress(OSError):
                lock.release()
