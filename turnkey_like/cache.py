"""The build cache: one folder per invocation, holding its record (JSON), ONNX files and logs.

Layout::

    <root>/                         --cache-dir, else $TK_CACHE_DIR, else ~/.cache/turnkey_like
      .tk-cache                     marker: this folder is a tk cache (JSON)
      <script-stem>[_<author>]_<invocation-hash>/
        .tk-build                   marker: this folder is a tk build (JSON)
        .lock                       file lock taken by writers of this build only
        record.json                 the BuildRecord (JSON, never pickle), written atomically
        .summary.json               the record without bulky detail, for fast listing (see below)
        *.onnx, *.onnx.data, ...    artifacts (dropped by ``clean``)
        *.log, logs/                logs (kept by ``clean``)

Safety rules (DESIGN.md, "Cache"):

- Writes are atomic: the record goes to a temporary file in the build folder, is flushed and
  ``fsync``-ed, then ``os.replace``-d over ``record.json``; a reader sees the old or the new record,
  never half of one, so readers take no lock.
- Writers of one build serialise on that build's own lock file (``filelock``); two processes writing
  different builds never wait for each other.
- A stage left ``running`` by a process that is gone (killed, crashed, machine restarted) reads as
  ``killed``. The writer's host name, boot time and the running process's create time are stored next
  to the record (key ``_cache``) so that a reused pid is not mistaken for the original process.
  Records written on another host keep ``running``: tk cannot see that host's processes.
- A record that cannot be read (truncated, not JSON, missing fields, newer schema) is reported by
  name as a :class:`CacheProblem` and skipped; the rest of the cache stays readable.
- ``records()`` (used by ``tk cache list`` and ``tk report``) reads ``.summary.json``: the record with
  list-valued detail (per-node rows, ...) left out of the stage results, about 3 KB instead of tens of
  KB, written after ``record.json`` under the same lock. It names the ``record.json`` it summarises
  (inode, size, mtime in ns); when that does not match, or the summary is missing or unreadable, the
  full record is read instead, so ``record.json`` stays the single source of truth.
- ``delete`` removes only folders carrying the build marker, inside a folder carrying the cache marker.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import json
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from turnkey_like.errors import CacheError
from turnkey_like.records import SCHEMA_VERSION, BuildRecord, Status

ENV_VAR = "TK_CACHE_DIR"
DEFAULT_ROOT = Path("~/.cache/turnkey_like")
ROOT_MARKER = ".tk-cache"
BUILD_MARKER = ".tk-build"
RECORD_FILE = "record.json"
SUMMARY_FILE = ".summary.json"
SUMMARY_MAX_DICT = 100
LOCK_FILE = ".lock"
LOG_SUFFIXES = (".log",)
LOG_DIR = "logs"
STAGES = ("characterization", "build", "benchmark")

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass
class CacheProblem:
    """A build folder whose record could not be read; it is skipped, and named to the user.

    Attributes:
        build_name: the folder name.
        path: the record file (or folder) concerned.
        message: one line saying what is wrong (``truncated or not JSON: ...``, ``no record``, ...).
    """

    build_name: str
    path: str
    message: str

    def to_dict(self) -> dict:
        """The problem as plain JSON-able data."""
        return dataclasses.asdict(self)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def resolve_root(root: str | Path | None = None) -> Path:
    """Return the cache root: ``root`` if given, else ``$TK_CACHE_DIR``, else ``~/.cache/turnkey_like``.

    The path is made absolute (``~`` expanded); nothing is created.
    """
    if root is None or str(root) == "":
        env = os.environ.get(ENV_VAR, "")
        root = env if env else DEFAULT_ROOT
    return Path(root).expanduser().absolute()


_UMASK = os.umask(0)
os.umask(_UMASK)


def _write_json_atomic(path: Path, data: dict, fsync: bool = True) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file in the same folder, fsync, replace).

    Compact JSON through ``json.dumps`` (its C encoder; ``json.dump`` to a file, or any ``indent``,
    falls back to the pure-Python encoder, about 10x slower on records with per-op rows); pretty
    output is ``tk cache stats BUILD --json``. The file gets the usual permissions (0666 less the
    umask), not ``mkstemp``'s 0600, so a shared cache stays readable. ``fsync=False`` skips the flush
    to disk (for files that are only a speed-up, like the summary).
    """
    text = json.dumps(data, separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.write("\n")
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
        if cls._boot is None:
            import psutil

            cls._boot = float(psutil.boot_time())
        return cls._boot


def _create_time(pid: int) -> float | None:
    """The create time (epoch s) of a live, non-zombie process, ``None`` when it is gone."""
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


def _writer_facts(record: BuildRecord) -> dict:
    """What a later reader needs to tell a live ``running`` stage from a dead one (see module doc)."""
    running = {}
    for name, stage in record.invocation.stages().items():
        if stage.status == Status.RUNNING and stage.pid is not None:
            running[name] = {"pid": stage.pid, "create_time": _create_time(stage.pid)}
    facts: dict = {"host": _HostFacts.host()}
    if running:
        facts["boot_time"] = _HostFacts.boot_time()
        facts["running"] = running
    return facts


def _stale_reason(stage_name: str, record: BuildRecord, facts: dict) -> str | None:
    """Why a ``running`` stage is known dead, or ``None`` when it may still be running."""
    stage = getattr(record.invocation, stage_name)
    if stage.status != Status.RUNNING or stage.pid is None:
        return None
    host = facts.get("host")
    if host is not None and host != _HostFacts.host():
        return None  # another machine's process: cannot be checked from here
    boot = facts.get("boot_time")
    if boot is not None and abs(float(boot) - _HostFacts.boot_time()) > 2.0:
        return f"the machine restarted after process {stage.pid} started it"
    now_ct = _create_time(stage.pid)
    if now_ct is None:
        return f"process {stage.pid} that was running it is gone"
    stored = (facts.get("running") or {}).get(stage_name) or {}
    stored_ct = stored.get("create_time") if stored.get("pid") == stage.pid else None
    if stored_ct is not None:
        if abs(now_ct - float(stored_ct)) > 0.05:
            return f"process {stage.pid} that was running it is gone (pid reused)"
        return None
    started = _parse_time(stage.started_at)
    if started is not None and now_ct > started + 1.0:
        return f"process {stage.pid} that was running it is gone (pid reused)"
    return None


def _apply_stale(record: BuildRecord, facts: dict) -> BuildRecord:
    """Mark ``running`` stages whose process is gone as ``killed`` (in memory only)."""
    for name in STAGES:
        reason = _stale_reason(name, record, facts)
        if reason is not None:
            stage = getattr(record.invocation, name)
            stage.status = Status.KILLED
            if not stage.error:
                stage.error = f"stopped while running: {reason}"
    return record


def _trim(value, depth: int = 0):
    """A stage result without bulky detail: lists dropped, dicts over SUMMARY_MAX_DICT keys dropped."""
    if isinstance(value, dict):
        if depth > 0 and len(value) > SUMMARY_MAX_DICT:
            return None
        out = {}
        for k, v in value.items():
            if isinstance(v, (list, tuple)):
                continue
            t = _trim(v, depth + 1)
            if t is not None or v is None:
                out[k] = t
        return out
    return value


def _summary_of(data: dict) -> dict:
    """The record's JSON with each stage's ``result`` trimmed (see :func:`_trim`)."""
    out = dict(data)
    inv = dict(out["invocation"])
    for name in STAGES:
        stage = inv.get(name)
        if isinstance(stage, dict) and isinstance(stage.get("result"), dict):
            inv[name] = {**stage, "result": _trim(stage["result"])}
    out["invocation"] = inv
    return out


def _stamp(st: os.stat_result) -> list:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


class Cache:
    """A tk cache folder: build folders with one :class:`BuildRecord` each.

    Args:
        root: the cache folder; ``None`` uses ``$TK_CACHE_DIR``, else ``~/.cache/turnkey_like``.
        create: create the folder (and its marker) when missing, and require it to be writable.
            Readers (``tk cache list``, ``tk report``) pass ``False``: a read-only cache is then fine,
            and a missing one is an error.
        lock_timeout_s: how long a writer waits for another process's lock on the same build.

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

                _write_json_atomic(marker, {"tool": "turnkey_like", "kind": "cache", "tk_version": __version__})
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
    def build_name(script: str | Path, labels: dict[str, list[str]], invocation_hash: str) -> str:
        """Return ``<script-stem>[_<author>]_<invocation-hash>``; the author is ``labels["author"][0]``.

        Characters other than letters, digits, ``. _ + -`` become ``_`` so the name is a safe folder name.
        """
        parts = [Path(str(script)).stem]
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
            CacheError: invalid name, or the folder cannot be created (read-only cache).
        """
        folder = self._folder(build_name)
        if self._is_build(folder):
            return folder
        try:
            folder.mkdir(exist_ok=True)
            _write_json_atomic(folder / BUILD_MARKER, {"tool": "turnkey_like", "kind": "build", "build_name": build_name})
        except OSError as e:
            raise CacheError(
                f"cannot create build folder {folder}: {e.strerror or e}",
                hint="fix the cache's permissions, or pass --cache-dir (or set TK_CACHE_DIR) to a writable folder",
            ) from None
        return folder

    def _lock(self, folder: Path):
        from filelock import FileLock

        return FileLock(str(folder / LOCK_FILE), timeout=self.lock_timeout_s)

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
            raise CacheError(
                f"cannot lock build {build_name}: {e.strerror or e}",
                hint="fix the cache's permissions, or pass --cache-dir to a writable folder",
            ) from None
        return lock

    # ----------------------------------------------------------------------------- records
    def _write(self, folder: Path, record: BuildRecord) -> None:
        if not record.created_at:
            record.created_at = _now()
        record.updated_at = _now()
        if not record.tk_version:
            from turnkey_like import __version__

            record.tk_version = __version__
        from turnkey_like.records import to_dict

        data = to_dict(record)
        data["_cache"] = _writer_facts(record)
        try:
            _write_json_atomic(folder / RECORD_FILE, data)
        except OSError as e:
            raise CacheError(
                f"cannot write the record of build {record.build_name}: {e.strerror or e}",
                hint="check free disk space and the cache's permissions",
            ) from None
        try:
            summary = _summary_of(data)
            summary["_summary_of"] = _stamp(os.stat(folder / RECORD_FILE))
            _write_json_atomic(folder / SUMMARY_FILE, summary, fsync=False)
        except OSError:
            pass  # only a speed-up: readers fall back to record.json

    def save(self, record: BuildRecord) -> None:
        """Write ``record`` to its build folder atomically, under the build's lock.

        Sets ``record.created_at`` (first save), ``record.updated_at`` and an empty ``tk_version``.

        Raises:
            CacheError: invalid build name, read-only cache, lock timeout, disk full.
        """
        folder = self.build_dir(record.build_name)
        lock = self._locked(folder, record.build_name)
        try:
            self._write(folder, record)
        finally:
            lock.release()

    def update(self, build_name: str, fn: Callable[[BuildRecord], None]) -> BuildRecord:
        """Read, change (``fn(record)`` mutates it in place) and write one record, all under its lock.

        Returns the record as written. Another process's update of the same build waits for this one,
        so no change is lost. ``fn`` sees the stored statuses (no ``killed`` rewriting).

        Raises:
            CacheError: no such build (with the closest names), corrupt record, lock timeout.
        """
        folder = self._folder(build_name)
        if not self._is_build(folder):
            raise self._unknown(build_name)
        lock = self._locked(folder, build_name)
        try:
            record, _ = self._read(folder)
            fn(record)
            self._write(folder, record)
        finally:
            lock.release()
        return record

    def _read_summary(self, folder: Path) -> tuple[BuildRecord, dict] | None:
        """The build's summary when it matches the current record.json, else ``None``."""
        try:
            st = os.stat(folder / RECORD_FILE)
            with open(folder / SUMMARY_FILE, encoding="utf-8") as f:
                data = json.loads(f.read())
            if data.get("_summary_of") != _stamp(st):
                return None
            version = data.get("schema_version", SCHEMA_VERSION)
            if isinstance(version, int) and version > SCHEMA_VERSION:
                return None
            return BuildRecord.from_dict(data), data.get("_cache") or {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _read(self, folder: Path, summary: bool = False) -> tuple[BuildRecord, dict]:
        """Parse a folder's record (its summary when ``summary`` and fresh); raises CacheError with a reason."""
        if summary:
            got = self._read_summary(folder)
            if got is not None:
                return got
        path = folder / RECORD_FILE
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise CacheError(f"build {folder.name} has no record yet ({path})", hint="it may still be starting; run it again") from None
        except OSError as e:
            raise CacheError(f"cannot read the record of build {folder.name}: {e.strerror or e}", hint="check the cache's permissions") from None
        try:
            data = json.loads(text)
        except ValueError as e:
            raise CacheError(
                f"record of build {folder.name} is corrupt (truncated or not JSON: {e.msg} at byte {e.pos})",
                hint=f"`tk cache delete {folder.name}` removes it; run the build again",
            ) from None
        if not isinstance(data, dict):
            raise CacheError(f"record of build {folder.name} is corrupt (not a JSON object)", hint=f"`tk cache delete {folder.name}` removes it")
        version = data.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise CacheError(
                f"record of build {folder.name} has schema version {version}, newer than this tk reads ({SCHEMA_VERSION})",
                hint="upgrade tk to read it",
            )
        try:
            record = BuildRecord.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CacheError(
                f"record of build {folder.name} is corrupt (bad or missing field: {e})",
                hint=f"`tk cache delete {folder.name}` removes it; run the build again",
            ) from None
        return record, data.get("_cache") or {}

    def load(self, build_name: str) -> BuildRecord:
        """Return one build's record; a ``running`` stage whose process is gone reads as ``killed``.

        Raises:
            CacheError: no such build (the message suggests the closest names), no record yet, or a
                corrupt/truncated record.
        """
        folder = self._folder(build_name)
        if not self._is_build(folder):
            raise self._unknown(build_name)
        record, facts = self._read(folder)
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

        With ``full=False`` (the default, what listings and reports need) each stage ``result`` lacks
        its list-valued detail (per-node rows, per-module lists, ...): scalars and small dicts such as
        ``totals``, ``hardware`` and ``latency_ms`` are all there. ``full=True`` (or :meth:`load`) reads
        everything; it is ~20x slower on large caches. Stale ``running`` stages read as ``killed``.
        Unreadable records are skipped, each named in a :class:`CacheProblem`.
        """
        records: list[BuildRecord] = []
        problems: list[CacheProblem] = []
        for name in self.builds():
            folder = self.root / name
            try:
                record, facts = self._read(folder, summary=not full)
            except CacheError as e:
                problems.append(CacheProblem(name, str(folder / RECORD_FILE), e.message))
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

    def delete(self, names: Iterable[str]) -> list[str]:
        """Remove whole build folders; returns the names removed.

        Every name is checked before anything is removed.

        Raises:
            CacheError: a name is not a build here (closest names suggested), or removal failed.
        """
        names = self._check_names(names)
        for name in names:
            try:
                shutil.rmtree(self.root / name)
            except OSError as e:
                raise CacheError(f"cannot delete build {name}: {e.strerror or e}", hint="check the cache's permissions") from None
        return names

    @staticmethod
    def _keep(rel: Path) -> bool:
        """Whether ``clean`` keeps a file: the record, markers, lock and logs."""
        if rel.parts and rel.parts[0] == LOG_DIR:
            return True
        return rel.name in (RECORD_FILE, SUMMARY_FILE, BUILD_MARKER, LOCK_FILE) or rel.name.endswith(LOG_SUFFIXES)

    def clean(self, names: Iterable[str]) -> dict[str, int]:
        """Drop the artifacts (ONNX files, raw data, leftovers) of builds, keeping records and logs.

        Returns bytes freed per build name. Each build is cleaned under its lock.

        Raises:
            CacheError: a name is not a build here (closest names suggested), or removal failed.
        """
        names = self._check_names(names)
        freed: dict[str, int] = {}
        for name in names:
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
                            total += p.stat().st_size
                            p.unlink()
                        except OSError as e:
                            raise CacheError(f"cannot clean build {name}: {e.strerror or e}", hint="check the cache's permissions") from None
                    for d in dirs:
                        sub = Path(dirpath) / d
                        if not any(sub.iterdir()):
                            sub.rmdir()
                freed[name] = total
            finally:
                lock.release()
        return freed
