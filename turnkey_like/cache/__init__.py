"""The build cache: one folder per invocation, holding its record (JSON), ONNX files and logs.

The public names are all here (``from turnkey_like.cache import Cache, RECORD_FILE, ...``); each
concept is one module of this package:

- :mod:`~turnkey_like.cache.layout`: the root (:func:`resolve_root`, the one place it is decided),
  the marker, record and lock file names, and how a build folder is named.
- :mod:`~turnkey_like.cache.stored`: ``record.json`` and ``.summary.json`` as bytes and back
  (:func:`decode_stored`, :data:`SUMMARY_OMITS`), unreadable records as :class:`CacheProblem`.
- :mod:`~turnkey_like.cache.stale`: what a writer stores so a reader can tell a live ``running``
  stage from a dead one (:class:`WriterFacts`), and the check that reads a dead one as ``killed``.
- :mod:`~turnkey_like.cache.store`: the :class:`Cache` (root checks, build folders, per-build locks,
  atomic writes, ``save``/``update``/``load``/``records``/``files``).
- :mod:`~turnkey_like.cache.listing`: the listing through the cache index (``Cache.entries``,
  ``reindex``, sizes).
- :mod:`~turnkey_like.cache.cleanup`: ``Cache.delete``, ``clean`` (:class:`Removal`) and ``prune``
  (:class:`PruneResult`), each skipping a build whose stage is running in a live process.

Safety rules (DESIGN.md, "Cache"): writes are atomic and serialised per build on the build's own
lock; readers take no lock; a stage left ``running`` by a process that is gone reads as ``killed``
(reading never rewrites a record); a record that cannot be read is named in one line and skipped;
the index is never trusted over a record; only real folders carrying the build marker, inside a
folder carrying the cache marker, are ever removed. Each module's docstring says how.
"""

from __future__ import annotations

from turnkey_like.cache.cleanup import PrunedBuild, PruneResult, Removal
from turnkey_like.cache.layout import (
    BUILD_MARKER,
    DEFAULT_ROOT,
    ENV_VAR,
    LOCK_FILE,
    LOG_DIR,
    LOG_SUFFIXES,
    RECORD_FILE,
    ROOT_MARKER,
    SUMMARY_FILE,
    resolve_root,
)
from turnkey_like.cache.stale import RunningProcess, WriterFacts
from turnkey_like.cache.store import Cache
from turnkey_like.cache.stored import SUMMARY_OMITS, CacheProblem, bulk_load, decode_stored

__all__ = [
    "BUILD_MARKER", "DEFAULT_ROOT", "ENV_VAR", "LOCK_FILE", "LOG_DIR", "LOG_SUFFIXES", "RECORD_FILE", "ROOT_MARKER",
    "SUMMARY_FILE", "SUMMARY_OMITS", "Cache", "CacheProblem", "PruneResult", "PrunedBuild", "Removal",
    "RunningProcess", "WriterFacts", "bulk_load", "decode_stored", "resolve_root",
]
