"""The files of a build's record: ``record.json`` and its ``.summary.json``, encoded and decoded.

This is the boundary where records become files and back: :class:`~turnkey_like.cache.Cache`
writes a :class:`~turnkey_like.records.BuildRecord` wrapped in a ``_Stored`` (the record plus the
cache's own keys) with the one codec (``records.encode`` through ``files.write_record``), and reads it
back through :func:`decode_stored` (``records.decode``). Nothing else in tk reads or writes
``record.json``.

- A record that cannot be read is named (a :class:`CacheProblem`, or a ``CacheError``) in one line
  and skipped; the rest of the cache stays readable. That covers a truncated file or one that is not
  JSON, a field of the wrong type or missing (the message names it: ``$.invocation.executed``), a
  record from a newer tk (hint: upgrade) and an older record that cannot be migrated. Records of
  schema version 1 (tk 0.1: plain ``json.dumps`` of the same layout, which may hold
  ``Infinity``/``NaN``) are read with the standard ``json`` module, brought up to date by
  ``records.migrate`` and validated by ``records.convert``.
- ``.summary.json`` is the same record with the bulky detail of :data:`SUMMARY_OMITS` left empty (a
  few KB instead of hundreds). It names the ``record.json`` it summarises (inode, size, mtime in ns,
  :func:`summary_stamp`); when that does not match, or the summary is missing, unreadable or of
  another schema version, the full record is read instead, so ``record.json`` stays the single
  source of truth. Version-1 summaries (tk 0.1) are migrated the same way as version-1 records.
"""

from __future__ import annotations

import contextlib
import json
import os

import msgspec

from turnkey_like.cache.stale import WriterFacts
from turnkey_like.collector import collector_paused
from turnkey_like.errors import CacheError, one_line
from turnkey_like.records import (
    SCHEMA_VERSION,
    Breakdown,
    BuildRecord,
    FusionResult,
    Record,
    RecordError,
    convert,
    decode,
    encode,
    migrate,
)

#: What a summary (``.summary.json``, what :meth:`Cache.records` returns by default) leaves empty,
#: per stage result type; everything else is the full record.
SUMMARY_OMITS = {
    "Characterization": ("rows", "modules", "top_ops", "breakdown", "fusion.groups", "hardware.sources"),
    "BuildResult": ("input_names", "output_names", "input_specs", "onnx_op_counts", "faithfulness",
                    "exporter_errors", "fingerprint"),
}


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


class _Stored(BuildRecord, kw_only=True):
    """``record.json`` / ``.summary.json``: a :class:`BuildRecord` plus the cache's own keys.

    ``_cache`` holds the :class:`WriterFacts`; ``_summary_of`` (summaries only) the
    ``[inode, size, mtime_ns]`` of the ``record.json`` summarised. Readers get a plain
    :class:`BuildRecord` back (:func:`unwrap_stored`).
    """

    writer: WriterFacts | None = msgspec.field(default=None, name="_cache")
    summary_of: list[int] | None = msgspec.field(default=None, name="_summary_of")


_RECORD_FIELDS = BuildRecord.__struct_fields__


def wrap_stored(record: BuildRecord, **extra) -> _Stored:
    """A shallow :class:`_Stored` of ``record`` (no field is copied deeply)."""
    return _Stored(**{f: getattr(record, f) for f in _RECORD_FIELDS}, **extra)


def unwrap_stored(stored: _Stored) -> BuildRecord:
    """The :class:`BuildRecord` inside a stored record (shallow)."""
    return BuildRecord(**{f: getattr(stored, f) for f in _RECORD_FIELDS})


def summarize(record: BuildRecord) -> BuildRecord:
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


def indexable_row(name: str, st: os.stat_result, record: BuildRecord, nbytes: int, row=None):
    """The cache index's row of ``record`` (``cache_index.index_row``), or ``None`` when the index
    cannot hold it (a count beyond the 64-bit integers SQLite and MessagePack store) or it cannot be
    made: the row is only a speed-up, and such a build is read from its record, which holds any
    integer."""
    from turnkey_like.cache_index import index_row

    try:
        return index_row(name, st, record, nbytes, row=row)
    except Exception:  # noqa: BLE001 - only a speed-up: readers fall back to record.json
        return None


def summary_stamp(st: os.stat_result) -> list[int]:
    """``[inode, size, mtime_ns]`` of a ``record.json``: what its summary names (``_summary_of``)."""
    return [st.st_ino, st.st_size, st.st_mtime_ns]


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
            return unwrap_stored(stored), stored.writer
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
    return unwrap_stored(stored), stored.writer


def decode_summary(data: bytes, record_stat: os.stat_result) -> tuple[BuildRecord, WriterFacts | None] | None:
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
    if stored is None or stored.summary_of != summary_stamp(record_stat):
        return None
    return unwrap_stored(stored), stored.writer


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
    with collector_paused():
        yield
