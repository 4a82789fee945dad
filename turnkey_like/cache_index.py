"""The cache index: one SQLite file at the cache root holding, per build, what listing, reporting and
pruning need, so `tk cache list` and `tk report` read one file instead of one record per build.

File: ``<root>/.tk-index.sqlite`` (SQLite from Python's standard library, write-ahead log: its
``-wal`` and ``-shm`` files sit next to it while a process has it open). Table ``builds``, one row
per build folder:

- ``name``: the build folder's name (primary key).
- ``ino``, ``size``, ``mtime_ns``, ``ctime_ns``: the stamp (``os.stat``) of the ``record.json`` the
  row was made from.
- ``updated_at``: the record's ``updated_at`` (ISO-8601 UTC), the last time a run wrote it; every run
  writes the record of each invocation it selects, reused or not, so this is the last use.
- ``bytes``: total size of the files in the build folder (bytes, ``lstat``) when the row was written.
- ``live``: 1 when a stage was ``running``; such a row is never used as stored (its process may be
  gone since, see ``Cache``): the record is read.
- ``format``: :func:`row_format` of the writer; rows of another format are ignored.
- ``script``, ``model``, ``class``, the three ``*_status``, ``latency_mean_ms``: the report row's
  values `tk cache list` shows (:data:`LISTING_KEYS`), so listing decodes nothing.
- ``row``: the record's :class:`~turnkey_like.records.ReportRow` (``records.report_row``), encoded
  by msgspec (MessagePack) and decoded, validated, back into that type.
- ``csv``: the row as one CSV line (``records.csv_line``), so that `tk report` writes CSV without
  encoding a row again.

Version 2 of the layout (``PRAGMA user_version``) stores the typed row; version 1 (tk 0.3.0 and
earlier) stored an untyped msgpack array of the values. A file of another layout is emptied and
rebuilt from the records by the first process that can write it, and a row that does not decode
into a ``ReportRow`` is read from its record instead (never trusted over the record).

Rules (the record stays the single source of truth):

- A row is used only when ``record.json``'s stamp still equals the one stored with it; otherwise the
  record is read (its ``.summary.json`` when fresh) and the row is rewritten. A stamp is taken from
  the very file the row was derived from (``fstat`` of the open file, or the stamp the summary names),
  so a row never carries a newer stamp than its content.
- Writers update their build's row under that build's lock (``Cache.save``, ``update``, ``clean``,
  ``delete``, ``prune``); SQLite serialises the writes of different processes itself (WAL journal,
  5 s busy timeout), and readers never wait for writers.
- The index is only a speed-up: a missing, unreadable, locked or read-only index never fails a
  command. Reads then fall back to the records, and writes are skipped (the next reader that can
  write repairs the rows).

``CacheIndex`` is the file; the logic of when a row is fresh lives in :meth:`Cache.entries
<turnkey_like.cache.Cache.entries>`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import zlib
from pathlib import Path
from typing import Iterable

import msgspec

from turnkey_like.errors import CacheError
from turnkey_like.files import FILE_MODE
from turnkey_like.records import REPORT_KEYS, ROW_VERSION, SCHEMA_VERSION, STAGES, ReportRow, Status, csv_line, report_row

log = logging.getLogger(__name__)

INDEX_FILE = ".tk-index.sqlite"
#: Layout of the file (``PRAGMA user_version``); a file with another layout is emptied and rebuilt.
INDEX_VERSION = 2
#: How long a writer waits for another process's write transaction, seconds.
BUSY_TIMEOUT_S = 5.0

#: The report row's values kept as columns of their own for `tk cache list` (no blob decoded).
LISTING_KEYS = ("script", "model", "class", "characterization_status", "build_status", "benchmark_status",
                "latency_mean_ms")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    name TEXT PRIMARY KEY NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    updated_at TEXT,
    bytes INTEGER NOT NULL,
    live INTEGER NOT NULL,
    format TEXT NOT NULL,
    script TEXT,
    model TEXT,
    class TEXT,
    characterization_status TEXT,
    build_status TEXT,
    benchmark_status TEXT,
    latency_mean_ms REAL,
    row BLOB NOT NULL,
    csv TEXT NOT NULL
)
"""
_COLUMNS = ("name", "ino", "size", "mtime_ns", "ctime_ns", "updated_at", "bytes", "live", "format",
            *LISTING_KEYS, "row", "csv")
_UPSERT = f"INSERT OR REPLACE INTO builds ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
#: What :meth:`CacheIndex.read` returns per build, by position (then the extra columns asked for).
READ_COLUMNS = ("name", "ino", "size", "mtime_ns", "ctime_ns", "updated_at", "bytes", "live", *LISTING_KEYS)
AT_STAMP = slice(1, 5)  #: the stamp (see :func:`stamp`) in a tuple of READ_COLUMNS
AT_UPDATED, AT_BYTES, AT_LIVE = 5, 6, 7
AT_LISTING = slice(8, 8 + len(LISTING_KEYS))
AT_EXTRA = len(READ_COLUMNS)  #: the first extra column
assert READ_COLUMNS[AT_STAMP] == ("ino", "size", "mtime_ns", "ctime_ns") and READ_COLUMNS[AT_LISTING] == LISTING_KEYS
assert _COLUMNS[: AT_LIVE + 1] == READ_COLUMNS[: AT_LIVE + 1] and _COLUMNS[-1] == "csv"

Stamp = tuple[int, int, int, int]
#: One row of ``builds``, in column order (what :meth:`CacheIndex.put` takes; :func:`index_row`).
IndexRow = tuple


class BuildEntry(msgspec.Struct):
    """One build as `tk cache list`, `tk report` and `tk cache prune` see it.

    Attributes:
        name: the build folder's name.
        updated_at: the record's ``updated_at`` (ISO-8601 UTC): when a run last wrote it (last use).
        bytes: total size of the files in the build folder, bytes (decimal units when shown).
        listing: the report row's values of :data:`LISTING_KEYS`, in that order.
        row: the record's report row (``records.report_row``), when asked for
            (``Cache.entries(rows=True)``).
        csv: the report row as one CSV line (``records.csv_line``), when asked for.
    """

    name: str
    updated_at: str | None
    bytes: int
    listing: tuple
    row: ReportRow | None = None
    csv: str | None = None


def stamp(st: os.stat_result) -> Stamp:
    """The stamp of a ``record.json``: (inode, size in bytes, mtime ns, ctime ns), as SQLite integers.

    The ctime catches a file whose modification time was set back (``touch -d``); an inode number
    above 2^63 is stored as its two's-complement (SQLite integers are signed 64-bit).
    """
    ino = st.st_ino
    if ino >= 1 << 63:
        ino -= 1 << 64
    return (ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def folder_bytes(folder: str | os.PathLike) -> int:
    """Total size in bytes of the files under ``folder`` (``lstat``: links are not followed)."""
    total = 0
    stack = [os.fspath(folder)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total


_FORMAT: str | None = None


def row_format() -> str:
    """What a row's content depends on: index layout, record schema, tk version and the report row.

    ``INDEX_VERSION:SCHEMA_VERSION:tk version:records.ROW_VERSION:crc32 of the row's keys``. A row
    written with another format (an older tk sharing the cache, a changed row) is not used.
    """
    global _FORMAT
    if _FORMAT is None:
        from turnkey_like import __version__

        crc = zlib.crc32(",".join(REPORT_KEYS).encode())
        _FORMAT = f"{INDEX_VERSION}:{SCHEMA_VERSION}:{__version__}:{ROW_VERSION}:{crc:08x}"
    return _FORMAT


#: The ``row`` column's codec: a ReportRow as MessagePack (a map of its encoded field names), and back.
_ROW_ENCODER = msgspec.msgpack.Encoder()
_ROWS_DECODER = msgspec.msgpack.Decoder(list[ReportRow])
_ROW_DECODER = msgspec.msgpack.Decoder(ReportRow)


def index_row(name: str, st: os.stat_result, record, nbytes: int, row: ReportRow | None = None) -> IndexRow:
    """The ``builds`` row for ``record`` (a :class:`~turnkey_like.records.BuildRecord` or its summary)
    read from, or written to, the ``record.json`` with stat ``st``; ``nbytes``: the folder's size.
    ``row``: ``records.report_row(record)`` when the caller has it."""
    if row is None:
        row = report_row(record)
    inv = record.invocation
    live = any(getattr(inv, s).status == Status.RUNNING for s in STAGES)
    return (name, *stamp(st), record.updated_at, nbytes, int(live), row_format(),
            *(row[k] for k in LISTING_KEYS), _ROW_ENCODER.encode(row), csv_line(row))


def decode_rows(blobs: list[bytes]) -> list[ReportRow | None]:
    """The report rows of ``row`` blobs (MessagePack of :class:`~turnkey_like.records.ReportRow`s),
    validated, one ``msgspec`` call for all; ``None`` for a blob that does not decode into a row."""
    try:
        return _ROWS_DECODER.decode(b"\xdd" + len(blobs).to_bytes(4, "big") + b"".join(blobs))
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        pass
    rows: list[ReportRow | None] = []
    for blob in blobs:
        try:
            rows.append(_ROW_DECODER.decode(blob))
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
            rows.append(None)
    return rows


class CacheIndex:
    """The index file of one cache (see the module doc). Safe to share between threads; a forked
    child opens its own connection.

    Args:
        root: the cache folder.
        writable: whether this process may create and change the file (a reader of a read-only
            cache passes ``False``: the index is then opened read-only, if at all).
    """

    def __init__(self, root: Path, writable: bool):
        self.path = Path(root) / INDEX_FILE
        self.writable = writable
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._rlock = threading.RLock()
        self._rlock_pid = os.getpid()

    @property
    def _lock(self) -> threading.RLock:
        """This process's lock: a child forked while another thread held the parent's gets a new one."""
        if self._rlock_pid != os.getpid():
            self._rlock, self._rlock_pid = threading.RLock(), os.getpid()
        return self._rlock

    # ------------------------------------------------------------------------- connection
    def _connect(self) -> sqlite3.Connection | None:
        """The connection, opened (and the file created, when writable) on first use; ``None`` when
        there is no usable index. Raises ``sqlite3.Error``/``OSError`` only for a damaged file."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a connection inherited over fork() is never used (SQLite forbids it)
        path = str(self.path)
        if os.path.islink(path):
            raise CacheError(f"refusing to open {path}: it is a symbolic link", hint="remove the link")
        existed = os.path.exists(path)
        if not existed and not self.writable:
            return None
        uri = "file:" + _quote(path) + ("?mode=rwc" if self.writable else "?mode=ro")
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        try:
            if not existed:
                with contextlib.suppress(OSError):
                    os.chmod(path, FILE_MODE)  # SQLite's 0644 would keep a shared cache's team out
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != INDEX_VERSION:
                if not self.writable:
                    conn.close()
                    return None
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                if conn.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
                    conn.execute("DROP TABLE IF EXISTS builds")
                    conn.execute(_SCHEMA)
                    conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
                conn.execute("COMMIT")
            if self.writable:
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints; a lost row is only stale
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _discard(self, exc: BaseException) -> None:
        """Forget the connection after an error; a damaged file (not a database) is removed when
        writable, so that the next use starts a new one."""
        log.debug("cache index %s: %s", self.path, exc)
        if self._conn is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None
        if self.writable and type(exc) is sqlite3.DatabaseError:  # SQLITE_NOTADB, SQLITE_CORRUPT
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(str(self.path) + suffix)

    def close(self) -> None:
        """Close the connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------------- reading
    def read(self, extra: tuple[str, ...] = ()) -> dict[str, tuple]:
        """Every usable row: name -> the values of :data:`READ_COLUMNS`, then those of ``extra``
        (``"row"``: the report row blob, see :func:`decode_rows`; ``"csv"``: the CSV line).

        Rows of another :func:`row_format` are left out. An index that is missing, unreadable or
        busy beyond the timeout gives ``{}`` (everything is then read from the records).
        """
        if not set(extra) <= {"row", "csv"}:
            raise ValueError(f"unknown index columns {extra}")
        columns = ", ".join(READ_COLUMNS + tuple(extra))
        with self._lock:
            try:
                conn = self._connect()
                if conn is None:
                    return {}
                rows = conn.execute(f"SELECT {columns} FROM builds WHERE format = ?", (row_format(),)).fetchall()
            except (sqlite3.Error, OSError, CacheError) as e:
                self._discard(e)
                return {}
        return {r[0]: r for r in rows}

    # ------------------------------------------------------------------------- writing
    def _write(self, fn, strict: bool) -> bool:
        """Run ``fn(conn)`` in one write transaction; True when it committed.

        Errors (read-only file, a lock held beyond the timeout, a damaged file, a full disk) are
        logged and swallowed, unless ``strict``: then they raise :class:`CacheError`.
        """
        if not self.writable:
            if strict:
                raise CacheError(f"cannot write the cache index {self.path}: the cache is opened read-only")
            return False
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return True
            except (sqlite3.Error, OSError, CacheError) as e:
                self._discard(e)
                if strict:
                    raise CacheError(f"cannot write the cache index {self.path}: {e}",
                                     hint="check the cache's permissions and free disk space") from None
                return False

    def put(self, rows: Iterable[IndexRow]) -> bool:
        """Insert or replace rows (:func:`index_row`); True when written."""
        rows = list(rows)
        if not rows:
            return True
        return self._write(lambda c: c.executemany(_UPSERT, rows), False)

    def replace_all(self, rows: Iterable[IndexRow]) -> None:
        """Make ``rows`` the whole index, in one transaction (readers see the old index or the new).

        Raises:
            CacheError: the index cannot be written.
        """
        rows = list(rows)

        def fn(conn):
            conn.execute("DELETE FROM builds")
            conn.executemany(_UPSERT, rows)

        self._write(fn, strict=True)

    def remove(self, names: Iterable[str]) -> bool:
        """Drop the rows of ``names``; True when written."""
        names = [(n,) for n in names]
        if not names:
            return True
        return self._write(lambda c: c.executemany("DELETE FROM builds WHERE name = ?", names), False)

    def set_bytes(self, sizes: dict[str, int]) -> bool:
        """Set the folder size of builds (after ``clean``); True when written."""
        args = [(n, name) for name, n in sizes.items()]
        if not args:
            return True
        return self._write(lambda c: c.executemany("UPDATE builds SET bytes = ? WHERE name = ?", args), False)


def _quote(path: str) -> str:
    """``path`` for an SQLite ``file:`` URI (``?`` and ``#`` and ``%`` escaped)."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
