"""The codec: the only place records become bytes or builtins and back, and the schema's version.

:func:`encode`, :func:`decode`, :func:`to_builtins` and :func:`convert` are used at the boundaries
(the cache, ``--json``, a child process's report) and validate every field against the record types;
a record that fails validation raises :class:`RecordError` naming the field, never a traceback from
deep inside a renderer. :func:`migrate` brings a cached record of an older layout up to
:data:`SCHEMA_VERSION` before it is validated. msgspec was chosen over pydantic v2 because it decodes
and validates JSON straight into the record classes several times faster (the cache reads thousands
of records for ``tk report``), has no runtime dependencies, and its Structs are plain attribute
classes with no validation cost when the code builds them (see ``docs/architecture.md``).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from turnkey_like.collector import collector_paused
from turnkey_like.errors import TkError
from turnkey_like.records.sanitise import decoder_for, sanitise

#: Version of the record layout written by this tk. 1: plain dataclass dicts (tk 0.1); 2: typed
#: msgspec records (stage results typed, op rows typed, hardware profile and trace as records).
SCHEMA_VERSION = 2
#: Oldest layout :func:`migrate` can bring up to :data:`SCHEMA_VERSION`.
OLDEST_READABLE_SCHEMA = 1


class RecordError(TkError):
    """A record that does not match its schema (a wrong type, a missing field, an unknown version)."""


_ENCODER = msgspec.json.Encoder()

R = TypeVar("R")


#: What msgspec raises for a value it cannot encode (a tensor, text that is not UTF-8, a list that
#: holds itself); ``UnicodeEncodeError`` is a ``ValueError``.
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError)


def encode(record: Any, *, check: bool = True) -> bytes:
    """Encode a record (or builtins holding records) as compact JSON bytes.

    Non-finite floats become ``null`` (JSON has no infinity); fields typed ``float | None`` read
    them back as ``None``. A record is checked to read back as its own type (one validating decode,
    about 0.3 ms for a 100 kB record, 10 ms for a 70B model's 2.4 MB one); one holding a value its
    schema or JSON cannot hold (a tensor, text that is not UTF-8, ``None`` where text goes) is
    repaired in place first by the one sanitiser (:func:`turnkey_like.records.sanitise`), which notes
    what it changed in the record. Builtins holding records are repaired only where JSON cannot hold
    a value. ``check=False`` skips the read-back for a record the caller has just sanitised (JSON
    that cannot be written is still repaired).

    Raises:
        RecordError: the record cannot be encoded even so (a bare value that is not a record).
    """
    try:
        data = _ENCODER.encode(record)
    except _ENCODE_ERRORS:
        return _after_sanitising(_ENCODER.encode, record)
    if check and isinstance(record, msgspec.Struct):
        try:
            decoder_for(type(record)).decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return _after_sanitising(_ENCODER.encode, record)
    return data


def to_builtins(record: Any) -> Any:
    """Plain dicts, lists, strings and numbers of a record (enums by value, tuples as lists); a value
    they cannot hold is repaired first, as for :func:`encode`.

    Raises:
        RecordError: as for :func:`encode`.
    """
    try:
        return msgspec.to_builtins(record)
    except _ENCODE_ERRORS:
        return _after_sanitising(msgspec.to_builtins, record)


def _after_sanitising(fn, record: Any) -> Any:
    """``fn(record)`` once :func:`~turnkey_like.records.sanitise.sanitise` has repaired ``record``."""
    try:
        sanitise(record)
        return fn(record)
    except _ENCODE_ERRORS as e:
        raise RecordError(f"a {type(record).__name__} cannot be written: {e}",
                          hint="this is a bug in tk: rerun with --traceback and report it") from None


def decode(data: bytes | str, type_: type[R], *, what: str = "record") -> R:
    """Decode JSON ``data`` into ``type_``, validating every field.

    The garbage collector is paused while it runs (:func:`turnkey_like.collector.collector_paused`).

    Raises:
        RecordError: the data is not JSON or does not match the type; the message names ``what``
            and the offending field (``$.invocation.executed: Expected int, got str``).
    """
    with collector_paused():
        return _decode(data, type_, what)


def _decode(data: bytes | str, type_: type[R], what: str) -> R:
    """The body of :func:`decode`."""
    try:
        return decoder_for(type_).decode(data)
    except msgspec.ValidationError as e:
        raise RecordError(f"{what} does not match the tk schema: {e}",
                          hint="delete it (tk cache delete NAME) or rerun to rewrite it") from None
    except msgspec.DecodeError as e:
        raise RecordError(f"{what} is not valid JSON: {e}",
                          hint="delete it (tk cache delete NAME) or rerun to rewrite it") from None


def convert(obj: Any, type_: type[R], *, what: str = "record") -> R:
    """Validate builtins ``obj`` (as :func:`to_builtins` returns) into ``type_``.

    Raises:
        RecordError: ``obj`` does not match the type; the message names ``what`` and the field.
    """
    try:
        return msgspec.convert(obj, type_)
    except msgspec.ValidationError as e:
        raise RecordError(f"{what} does not match the tk schema: {e}") from None


def migrate(data: dict, *, what: str = "record") -> dict:
    """Bring a cached record's builtins up to :data:`SCHEMA_VERSION`, in place, and return it.

    Version 1 records hold the same fields as version 2, as untyped dicts; what changed is typing,
    which :func:`convert` then checks. The one v1 shape v2 does not accept: a build result with no
    tolerance wrote ``{}`` where v2 writes ``null``. (v1 stage results have no ``run_id``; it reads
    as ``None``.)

    Raises:
        RecordError: the record is newer than this tk, or older than :data:`OLDEST_READABLE_SCHEMA`.
    """
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RecordError(f"{what} has schema version {version!r}, newer than this tk reads ({SCHEMA_VERSION})",
                          hint="upgrade tk (pip install -U turnkey_like) to read it")
    if version < OLDEST_READABLE_SCHEMA:
        raise RecordError(f"{what} has outdated schema version {version}",
                          hint="delete it (tk cache delete NAME) and rerun to rebuild it")
    if version == 1:
        build = ((data.get("invocation") or {}).get("build") or {}).get("result")
        if isinstance(build, dict) and build.get("tolerance") == {}:
            build["tolerance"] = None
        data["schema_version"] = SCHEMA_VERSION
    return data
