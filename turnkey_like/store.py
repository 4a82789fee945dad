"""A folder of typed records under the cache root, one JSON file per key: :class:`RecordStore`.

The build cache (``turnkey_like.cache``) keeps one :class:`~turnkey_like.records.BuildRecord` per
build folder, with its index and locks. Other results tk keeps beside the builds (a corpus input's
last outcome for ``--resume``, a zoo model's survey for ``tk discover-models``) are one record per
key and are only ever written whole; they go through this one small store, on the same helpers as
the cache: ``files.write_record`` (atomic, never through a symlink, a clear full-disk error) and the
one codec's ``records.decode`` (every field validated). No lock is needed: a write replaces the
whole file atomically, so a reader sees the old or the new record, and of two writers the last one
wins with a complete record.
"""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path
from typing import Generic

from turnkey_like.errors import TkError, one_line
from turnkey_like.records import R, decode

log = logging.getLogger(__name__)


class RecordStore(Generic[R]):
    """Records of one type, each in ``<folder>/<key>.json`` (the key percent-encoded).

    Args:
        folder: where the records live (created on the first :meth:`put`).
        type_: the record type (a :mod:`turnkey_like.records` record).
        what: what one record is, for messages (``survey of``, ``corpus input``).
    """

    def __init__(self, folder: str | Path, type_: type[R], what: str):
        self.folder = Path(folder)
        self.type = type_
        self.what = what

    def path(self, key: str) -> Path:
        """The file of ``key``'s record (which may not exist)."""
        return self.folder / (key_file_name(key) + ".json")

    def get(self, key: str) -> R | None:
        """``key``'s record, or ``None`` when there is none, or it cannot be read or does not match
        the type (logged, and rewritten by the next :meth:`put`)."""
        try:
            data = self.path(key).read_bytes()
        except OSError:
            return None
        try:
            return decode(data, self.type, what=f"{self.what} {key}")
        except TkError as e:
            log.warning("%s", one_line(e))
            return None

    def put(self, key: str, record: R, *, fsync: bool = True) -> None:
        """Write ``key``'s record atomically.

        Raises:
            CacheError: the path is a symlink, or the disk is full.
            OSError: the folder cannot be created or written (permissions).
        """
        from turnkey_like.files import write_record

        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_record(path, record, fsync=fsync)


def key_file_name(key: str) -> str:
    """``key`` as a file name: percent-encoded (no ``/``), ``_`` when empty."""
    return urllib.parse.quote(key, safe="") or "_"
