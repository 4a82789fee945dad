"""The :class:`Cache`: a cache folder, its build folders, and one record per build, written atomically
under the build's lock and read without one.

- Writes are atomic (``turnkey_like.files.write_atomic``): the record goes to a temporary file in the
  build folder, is flushed and ``fsync``-ed, then renamed over ``record.json``; a reader sees the old
  or the new record, never half of one, so readers take no lock. Files get 0666 less the umask, so a
  shared cache stays readable; a symlink where tk writes is refused.
- Writers of one build serialise on that build's own lock file (``filelock``); two processes writing
  different builds never wait for each other.
- Every write also writes the record's ``.summary.json`` and its row of the cache index
  (:mod:`turnkey_like.cache_index`), both only speed-ups: readers fall back to ``record.json``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Callable

from turnkey_like.cache.cleanup import CleanupMixin
from turnkey_like.cache.layout import (
    BUILD_MARKER,
    LOCK_FILE,
    RECORD_FILE,
    ROOT_MARKER,
    SUMMARY_FILE,
    build_name,
    build_namer,
    check_build_name,
    resolve_root,
)
from turnkey_like.cache.listing import ListingMixin
from turnkey_like.cache.stale import WriterFacts, apply_stale, writer_facts
from turnkey_like.cache.stored import (
    CacheProblem,
    bulk_load,
    decode_stored,
    decode_summary,
    indexable_row,
    summarize,
    summary_stamp,
    wrap_stored,
)
from turnkey_like.cache_index import CacheIndex, folder_bytes
from turnkey_like.errors import CacheError
from turnkey_like.files import refuse_symlink, write_record
from turnkey_like.records import SCHEMA_VERSION, BuildRecord, now_utc, sanitise


class _BuildGone(CacheError):
    """A build folder removed (``tk cache prune`` or ``delete``) while tk waited for its lock."""


class Cache(ListingMixin, CleanupMixin):
    """A tk cache folder: build folders with one :class:`BuildRecord` each.

    Args:
        root: the cache folder; ``None`` uses ``$TK_CACHE_DIR``, else ``~/.cache/turnkey_like``
            (:func:`resolve_root`).
        create: create the folder (and its marker) when missing, and require it to be writable.
            Readers (``tk cache list``, ``tk report``) pass ``False``: a read-only cache is then fine,
            and a missing one is an error.
        lock_timeout_s: how long a writer waits for another process's lock on the same build, seconds.

    Listing (:meth:`entries`, :meth:`reindex`, sizes) comes from :class:`ListingMixin`
    (``cache/listing.py``); removal (:meth:`delete`, :meth:`clean`, :meth:`prune`) from
    :class:`CleanupMixin` (``cache/cleanup.py``).

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
    #: ``<script-stem>[_<author>]_<invocation-hash>`` (:func:`turnkey_like.cache.layout.build_name`).
    build_name = staticmethod(build_name)
    #: the same for many invocations of one script (:func:`turnkey_like.cache.layout.build_namer`).
    build_namer = staticmethod(build_namer)

    def _folder(self, build_name: str) -> Path:
        check_build_name(build_name)
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
    def _write(self, folder: Path, record: BuildRecord, valid: bool = False) -> None:
        now = now_utc()
        if not record.created_at:
            record.created_at = now
        record.updated_at = now
        if not record.tk_version:
            from turnkey_like import __version__

            record.tk_version = __version__
        record.schema_version = SCHEMA_VERSION  # written in this tk's layout, whatever the object said
        if not valid:
            sanitise(record)  # a value the schema cannot hold (a tensor, a path that is not UTF-8): noted, not lost
        facts = writer_facts(record)
        path = folder / RECORD_FILE
        try:
            write_record(path, wrap_stored(record, writer=facts), check=False)  # sanitised above
            st = os.stat(path)
        except OSError as e:
            raise CacheError(
                f"cannot write the record of build {record.build_name}: {e.strerror or e}",
                hint="check free disk space and the cache's permissions",
            ) from None
        try:
            summary = wrap_stored(summarize(record), writer=facts, summary_of=summary_stamp(st))
            write_record(folder / SUMMARY_FILE, summary, fsync=False, check=False)
        except Exception:  # noqa: BLE001 - only a speed-up: readers fall back to record.json
            pass
        # only a speed-up too: a row that is not written is stale, and readers then read the record
        row = indexable_row(record.build_name, st, record, folder_bytes(folder))
        if row is not None:
            self.index.put([row])

    def save(self, record: BuildRecord, *, valid: bool = False) -> None:
        """Write ``record`` to its build folder atomically, under the build's lock.

        Sets ``record.created_at`` (first save), ``record.updated_at`` (``records.now_utc``) and an
        empty ``tk_version``. ``valid``: the record was just made by the typed decoder (an input's
        child sent it), so the sanitiser's check (an encode and a validating decode: 20 ms for a
        70B model's record) is skipped.

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
                    self._write(folder, record, valid)
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
                        got = decode_summary(f.read(), st)
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
        return apply_stale(record, facts)

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
                records.append(apply_stale(record, facts))
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
