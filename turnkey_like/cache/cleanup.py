"""Removing builds: ``tk cache delete`` (whole folders), ``clean`` (artifacts, keeping records and
logs) and ``prune`` (the least recently used, by age or down to a total size).

``delete`` and ``prune`` remove only real folders (never symbolic links) carrying the build marker,
inside a folder carrying the cache marker; ``prune`` skips a build whose lock another process holds.
Nothing outside the cache is ever touched: a build folder that is a symbolic link is skipped and
named, links inside a build are removed, never followed.

Builds in use are safe: ``delete``, ``clean`` and ``prune`` skip (and name, with the reason) a build
whose record says a stage is ``running`` in a live process (:meth:`CleanupMixin.in_use`), checked
under the build's lock, where the pipeline writes ``running`` before a stage starts. Liveness is
what readers use to read a dead ``running`` as ``killed`` (:mod:`turnkey_like.cache.stale`: the pid
and its create time, host name and boot time stored with the record); a stage running on another
host cannot be checked from here and counts as in use.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterable

from turnkey_like.cache.layout import BUILD_MARKER, LOCK_FILE, LOG_DIR, LOG_SUFFIXES, RECORD_FILE, SUMMARY_FILE
from turnkey_like.cache.stale import apply_stale, host_name, iso_utc, parse_time
from turnkey_like.cache_index import folder_bytes
from turnkey_like.errors import CacheError, InputError
from turnkey_like.records import STAGES, Record, Status


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


#: Why ``delete`` and ``clean`` skip a build folder that is a symbolic link.
LINK_REASON = "a symbolic link (not followed: tk touches nothing outside its cache)"


class Removal(Record):
    """What :meth:`Cache.delete` or :meth:`Cache.clean` did.

    Attributes:
        removed: the builds deleted, or cleaned, in the order given.
        freed: bytes freed per build (``clean``; ``delete`` frees whole folders and leaves it empty).
        skipped: build name -> why it was left alone (a stage running in a live tk process, a
            symbolic link), one line each.
    """

    removed: list[str] = []
    freed: dict[str, int] = {}
    skipped: dict[str, str] = {}


class CleanupMixin:
    """The removal methods of :class:`~turnkey_like.cache.Cache` (mixed into it: they use its
    ``root``, ``index``, ``entries``, ``_folder``, ``_is_build``, ``_unknown``, ``_lock`` and
    ``_locked``)."""

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

    def in_use(self, build_name: str) -> str | None:
        """Why a build must not be removed now, or ``None``: a stage of its record is ``running`` in a
        process that is alive (read as :func:`~turnkey_like.cache.stale.apply_stale` reads it: the
        pid with its create time, on this host since its last boot), or on another host, which cannot
        be checked from here. A stage run by this very process does not count (a run cleaning its
        own build). A build whose record cannot be read is not in use (it is being created, or broken).
        """
        try:
            record, facts, _ = self._read(self.root / build_name, summary=True)
        except CacheError:
            return None
        record = apply_stale(record, facts)  # a dead process's ``running`` reads ``killed``
        for stage_name in STAGES:
            stage = getattr(record.invocation, stage_name)
            if stage.status != Status.RUNNING or stage.pid == os.getpid():
                continue
            host = facts.host if facts is not None else None
            since = f" since {stage.started_at}" if stage.started_at else ""
            if host is not None and host != host_name():
                return (f"in use: its {stage_name} stage is running on host {host} (pid {stage.pid}{since}), "
                        "which tk cannot check from here; remove the folder by hand once that run is gone")
            return f"in use: its {stage_name} stage is running in tk process {stage.pid}{since}"
        return None

    def delete(self, names: Iterable[str]) -> Removal:
        """Remove whole build folders; returns what was removed and what was skipped, and why.

        Every name is checked before anything is removed. A build folder that is a symbolic link is
        skipped (see :meth:`links`), never followed; so is a build in use (:meth:`in_use`, checked
        under the build's lock).

        Raises:
            CacheError: a name is not a build here (closest names suggested), a lock cannot be taken
                in time, or removal failed.
        """
        names = self._check_names(names)
        result = Removal(skipped={name: LINK_REASON for name in self.links(names)})
        try:
            for name in (n for n in names if n not in result.skipped):
                folder = self.root / name
                lock = self._locked(folder, name)
                try:
                    why = self.in_use(name)
                    if why is not None:
                        result.skipped[name] = why
                        continue
                    try:
                        shutil.rmtree(folder)
                    except OSError as e:
                        raise CacheError(f"cannot delete build {name}: {e.strerror or e}",
                                         hint="check the cache's permissions") from None
                    result.removed.append(name)
                finally:
                    with contextlib.suppress(OSError):
                        lock.release()
        finally:
            self.index.remove(result.removed)
        return result

    @staticmethod
    def _keep(rel: Path) -> bool:
        """Whether ``clean`` keeps a file: the record, markers, lock and logs."""
        if rel.parts and rel.parts[0] == LOG_DIR:
            return True
        return rel.name in (RECORD_FILE, SUMMARY_FILE, BUILD_MARKER, LOCK_FILE) or rel.name.endswith(LOG_SUFFIXES)

    def clean(self, names: Iterable[str]) -> Removal:
        """Drop the artifacts (ONNX files, raw data, leftovers) of builds, keeping records and logs.

        Returns the builds cleaned with the bytes freed per build, and those skipped with why. Each
        build is cleaned under its lock. A build folder that is a symbolic link is skipped (see
        :meth:`links`), and so is a build in use (:meth:`in_use`); links inside a build are removed,
        never followed.

        Raises:
            CacheError: a name is not a build here (closest names suggested), or removal failed.
        """
        names = self._check_names(names)
        result = Removal(skipped={name: LINK_REASON for name in self.links(names)})
        freed = result.freed
        for name in (n for n in names if n not in result.skipped):
            folder = self.root / name
            lock = self._locked(folder, name)
            try:
                why = self.in_use(name)
                if why is not None:
                    result.skipped[name] = why
                    continue
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
                result.removed.append(name)
                self.index.set_bytes({name: folder_bytes(folder)})
            finally:
                lock.release()
        return result

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
        lock, taken without waiting: a build whose lock another process holds, whose record was
        written after the listing, or whose stage is running in a live process (:meth:`in_use`), is
        kept and named in ``skipped`` (and, for ``max_bytes``, the
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
            when = parse_time(e.updated_at)
            if when is None:
                when = self._mtime(e.name)
            nbytes = folder_bytes(os.path.join(self.root, e.name))
            if nbytes != e.bytes:
                measured[e.name] = nbytes
            builds.append((when, e.name, nbytes, e.updated_at, False))
        self.index.set_bytes(measured)  # files added since a build's last write: the listing's sizes follow
        for p in problems:
            when = self._mtime(p.build_name)
            builds.append((when, p.build_name, folder_bytes(os.path.join(self.root, p.build_name)), iso_utc(when), True))
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
            why = self.in_use(build_name)
            if why is not None:
                return why, 0
            freed = folder_bytes(folder)
            try:
                shutil.rmtree(folder)
            except OSError as e:
                return f"cannot remove it: {e.strerror or e}", 0
            return None, freed
        finally:
            with contextlib.suppress(OSError):
                lock.release()
