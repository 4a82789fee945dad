"""Listing a cache: every build as ``tk cache list``, ``tk report`` and ``tk cache prune`` see it,
read through the cache index.

``tk cache list``, ``tk report`` and ``tk cache prune`` read :meth:`ListingMixin.entries`: one index
at the cache root (:mod:`turnkey_like.cache_index`) holding each build's report row, last use and
size, kept in step by every write under the build's lock. A row is used only while its
``record.json`` has the stamp stored with it (inode, size, mtime, ctime: one ``stat`` per build); any
other build (changed behind the index's back, new, running) is read from its record and its row
rewritten, so a missing or damaged index is rebuilt as a side effect (``tk cache reindex`` does it at
once).
"""

from __future__ import annotations

import os

from turnkey_like.cache.layout import BUILD_MARKER, RECORD_FILE
from turnkey_like.cache.stale import apply_stale
from turnkey_like.cache.stored import CacheProblem, bulk_load, indexable_row
from turnkey_like.cache_index import (
    AT_BYTES,
    AT_EXTRA,
    AT_LISTING,
    AT_LIVE,
    AT_STAMP,
    AT_UPDATED,
    LISTING_KEYS,
    BuildEntry,
    decode_rows,
    folder_bytes,
)
from turnkey_like.cache_index import stamp as _index_stamp
from turnkey_like.errors import CacheError
from turnkey_like.records import csv_line, report_row


class ListingMixin:
    """The listing methods of :class:`~turnkey_like.cache.Cache` (mixed into it: they use its
    ``root``, ``index`` and ``_read``)."""

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
        stored = None if known_bytes is not None else indexable_row(name, st, record, folder_bytes(folder), row=row)
        if stored is not None:
            new_rows.append(stored)
            nbytes, live, line = stored[AT_BYTES], stored[AT_LIVE], stored[-1]  # an IndexRow starts as READ_COLUMNS
        elif known_bytes is None:  # not indexable (see indexable_row): read from its record every time
            nbytes, live, line = folder_bytes(folder), True, None
        else:
            nbytes, live, line = known_bytes, True, None
        if live:  # a stage is running: its process may be gone since (so a stored row is never used)
            row = report_row(apply_stale(record, facts))
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

    def total_bytes(self, entries: list[BuildEntry], problems: list[CacheProblem]) -> int:
        """Total size of the build folders of a listing (:meth:`entries`), bytes: the index's size of
        each readable build, a walk of each unreadable one's folder (the title of ``tk cache list``)."""
        return sum(e.bytes for e in entries) + sum(self.folder_bytes(p.build_name) for p in problems)

    def folder_bytes(self, build_name: str) -> int:
        """Total size of the files in a build's folder, bytes (0 when it is gone).

        Raises:
            CacheError: ``build_name`` is not a folder name (a path, ``.``, ``..``).
        """
        if not build_name or build_name in (".", "..") or "/" in build_name or os.sep in build_name:
            raise CacheError(f"invalid build name {build_name!r}", hint="`tk cache list` shows the builds")
        return folder_bytes(self.root / build_name)
