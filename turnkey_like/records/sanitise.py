"""The one sanitiser: whatever a script or a model hands tk, the record that holds it can be written.

Records are built from facts a user's code controls: a model's parameter count (a tensor while
``torch.jit.trace`` runs), its class name, a script's path (bytes that are not UTF-8), an exception's
message. :func:`sanitise` makes a record hold only what its schema and the JSON codec accept, in
place, and says what it changed; the codec (:func:`~turnkey_like.records.codec.encode`,
:func:`~turnkey_like.records.codec.to_builtins`) calls it when a record does not encode, and the
cache calls it before every write, so no record is lost to one odd value.

What it changes (each change is one note, ``path: what was there -> what was recorded``):

- text that is not valid UTF-8 (surrogate escapes: the bytes of a file name that is not UTF-8, as
  Python decodes it; lone surrogates) becomes valid text, the bytes written as ``\\xNN``
  (:func:`clean_text`); NUL, newlines and very long text are valid JSON and kept;
- a 0-d tensor or numpy scalar in a numeric field becomes its Python number (``tensor(10)`` -> 10);
  an integral float in an integer field its int;
- a non-finite float (NaN, inf) stays where the field may be ``None`` (the codec writes ``null``,
  read back as ``None``) and becomes the field's default elsewhere;
- any other value the field's type cannot hold becomes its ``repr`` where the field holds text (or
  anything), else ``None`` when the field may be ``None``, else the field's default; a ``repr``
  that raises is replaced by ``<Type object (repr raised Error)>``;
- builtins nested deeper than :data:`MAX_DEPTH` (or a list that holds itself) become their ``repr``.

A note goes to the nearest enclosing record with a ``notes: list[str]`` field
(:class:`~turnkey_like.records.ScriptResult`, :class:`~turnkey_like.records.BuildRecord`) and is
returned. Iterables of unknown kind are never iterated (a generator would be consumed).
"""

from __future__ import annotations

import math
import operator
import typing
from typing import Any

import msgspec
import msgspec.inspect as mi

#: Builtins (lists, dicts) nested deeper than this in a field typed ``Any`` are recorded as their repr.
MAX_DEPTH = 64
#: A repr kept in a record or a note is cut to this many characters.
REPR_CHARS = 200

_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError)  # UnicodeEncodeError is a ValueError
_JSON = msgspec.json.Encoder()
_DECODERS: dict[type, msgspec.json.Decoder] = {}
_INFO: dict[type, Any] = {}


def clean_text(text: str) -> str:
    """``text`` as valid UTF-8 text: the bytes Python decoded as surrogate escapes (a file name that is
    not UTF-8, ``os.fsdecode``) are written ``\\xNN``, any other lone surrogate ``\\udNNN``; text that is
    already valid is returned as it is (the same object)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: one undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def one_line_text(text: str) -> str:
    """``text`` for a one-line message: :func:`clean_text`, and every character that is not printable
    (newline, tab, NUL, the escape that starts a terminal control sequence) written as Python writes
    it in a string (``\\n``, ``\\x1b``). Printable text, accents and CJK included, is kept."""
    text = clean_text(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def safe_repr(value: Any, limit: int = REPR_CHARS) -> str:
    """``repr(value)`` as valid text cut to ``limit`` characters; never raises (a ``__repr__`` that
    raises or returns a non-string gives ``<Type object (repr raised Error)>``)."""
    try:
        text = repr(value)
        if not isinstance(text, str):
            raise TypeError("__repr__ returned a non-string")
    except Exception as e:  # noqa: BLE001 - any user __repr__ may fail
        text = f"<{_type_name(value)} object (repr raised {type(e).__name__})>"
    text = clean_text(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    try:
        return clean_text(str(type(value).__qualname__))
    except Exception:  # noqa: BLE001 - a metaclass may make even this fail
        return "object"


def decoder_for(type_: type) -> msgspec.json.Decoder:
    """The validating JSON decoder of ``type_``, made once per type (the codec's ``decode`` uses it too)."""
    decoder = _DECODERS.get(type_)
    if decoder is None:
        decoder = _DECODERS[type_] = msgspec.json.Decoder(type_)
    return decoder


def is_valid(record: Any) -> bool:
    """True when ``record`` encodes to JSON and (for a record) reads back as its own type."""
    try:
        data = _JSON.encode(record)
    except _ENCODE_ERRORS:
        return False
    if not isinstance(record, msgspec.Struct):
        return True
    try:
        decoder_for(type(record)).decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False
    return True


def sanitise(record: Any) -> list[str]:
    """Make ``record`` (a record, or builtins holding records) encodable and valid, in place.

    Returns one note per value changed (``[]`` when nothing was, the common case: one encode and
    one validating decode, about 0.4 ms for a 100 kB record). Notes are also appended to the
    nearest enclosing record with a ``notes`` list (see the module doc).

    Raises:
        TypeError: ``record`` is a bare value that cannot be changed in place (a tensor on its own).
    """
    if is_valid(record):
        return []
    walker = _Walker()
    if isinstance(record, msgspec.Struct):
        walker.struct(record, _info(type(record)), "", 0)
    elif isinstance(record, (list, dict)):
        new = walker.value(record, mi.AnyType(), "", 0)
        if isinstance(new, list):
            record[:] = new
        elif isinstance(new, dict):
            record.clear()
            record.update(new)
    else:
        raise TypeError(f"cannot sanitise a bare {_type_name(record)} in place")
    return walker.all_notes


def _info(cls: type):
    info = _INFO.get(cls)
    if info is None:
        info = _INFO[cls] = mi.type_info(cls)
    return info


_SAME = object()  # "unchanged"
_FAIL = object()  # "cannot be converted to this type"
_NONE = object()  # "the field has no default"


def _struct_class(t: mi.StructType) -> type:
    return typing.get_origin(t.cls) or t.cls


def _scalar(value: Any) -> Any:
    """The Python number of a 0-d tensor or numpy scalar (anything with ``item()`` and shape ``()``),
    else ``_FAIL``."""
    if isinstance(value, (bool, int, float, str)):
        return _FAIL
    try:
        item = getattr(value, "item", None)
        if item is None or tuple(getattr(value, "shape", (None,))) != ():
            return _FAIL
        number = item()
    except Exception:  # noqa: BLE001 - a user object's item() may do anything
        return _FAIL
    return number if isinstance(number, (bool, int, float)) else _FAIL


def _fits(value: Any, t) -> bool:
    """Whether ``value`` is already of type ``t`` at its top level (its contents not checked)."""
    if isinstance(t, mi.AnyType):
        return True
    if isinstance(t, mi.NoneType):
        return value is None
    if isinstance(t, mi.BoolType):
        return isinstance(value, bool)
    if isinstance(t, mi.IntType):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(t, mi.FloatType):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(t, mi.StrType):
        return isinstance(value, str)
    if isinstance(t, mi.EnumType):
        return isinstance(value, t.cls)
    if isinstance(t, mi.LiteralType):
        return any(value == v and type(value) is type(v) for v in t.values)
    if isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        return isinstance(value, (list, tuple))
    if isinstance(t, mi.TupleType):
        return isinstance(value, (list, tuple)) and len(value) == len(t.item_types)
    if isinstance(t, mi.DictType):
        return isinstance(value, dict)
    if isinstance(t, mi.StructType):
        return isinstance(value, _struct_class(t))
    if isinstance(t, mi.UnionType):
        return any(_fits(value, m) for m in t.types)
    return True  # a kind tk's records do not use: left to the codec


def _rank(t) -> int:
    """Which member of a union a value that fits none is converted to first: numbers, then text."""
    order = (mi.IntType, mi.FloatType, mi.BoolType, mi.EnumType, mi.StrType, mi.AnyType, mi.NoneType)
    for i, kind in enumerate(order):
        if isinstance(t, kind):
            return i
    return len(order)


class _Walker:
    """One walk over a record and its field types: repairs values, collects notes."""

    def __init__(self):
        self.all_notes: list[str] = []
        self.notes: list[str] = []  # the notes of the innermost record with a ``notes`` field
        self.open: set[int] = set()  # ids of the containers being walked: one met again holds itself

    def note(self, path: str, text: str) -> None:
        line = f"{path.lstrip('.') or 'value'}: {text}"
        self.notes.append(line)
        self.all_notes.append(line)

    # -- records ---------------------------------------------------------------------------
    def struct(self, obj: msgspec.Struct, info: mi.StructType, path: str, depth: int) -> None:
        fields = info.fields
        holder = next((f for f in fields if f.name == "notes" and isinstance(f.type, mi.ListType)), None)
        outer, self.notes = self.notes, ([] if holder is not None else self.notes)
        for f in fields:
            value = getattr(obj, f.name)
            default = f.default if f.default is not msgspec.NODEFAULT else (
                f.default_factory() if f.default_factory is not msgspec.NODEFAULT else _NONE)
            new = self.value(value, f.type, f"{path}.{f.name}", depth + 1, default)
            if new is not _SAME:
                msgspec.structs.force_setattr(obj, f.name, new)  # frozen records too
        if holder is not None:
            mine, self.notes = self.notes, outer
            if mine:
                current = [clean_text(str(n)) for n in (getattr(obj, "notes", None) or []) if isinstance(n, str)]
                msgspec.structs.force_setattr(obj, "notes", current + [n for n in mine if n not in current])

    # -- one value -------------------------------------------------------------------------
    def value(self, value: Any, t, path: str, depth: int, default: Any = _NONE) -> Any:
        """``value`` made to fit ``t`` (a type or a union of types): ``_SAME`` when it already does
        (contents repaired in place where they are records), else the new value (the change noted).
        A value that fits no member is converted to the first that takes it (numbers, then text), else
        replaced (:meth:`_fallback`)."""
        members = t.types if isinstance(t, mi.UnionType) else (t,)
        nullable = any(isinstance(m, mi.NoneType) for m in members)
        if value is None and nullable:
            return _SAME
        for member in members:
            if not isinstance(member, mi.NoneType) and _fits(value, member):
                return self._inside(value, member, path, depth, nullable, default)
        for member in sorted(members, key=_rank):
            if isinstance(member, mi.NoneType):
                break
            converted = self._convert(value, member)
            if converted is not _FAIL:
                again = self._inside(converted, member, path, depth, nullable, default)
                new = converted if again is _SAME else again
                self.note(path, f"{safe_repr(value, 80)} ({_type_name(value)}) recorded as {safe_repr(new, 80)}")
                return new
        return self._fallback(value, t, path, nullable, default)

    def _fallback(self, value, t, path, nullable, default):
        """The value recorded in place of one that fits nothing: ``None``, else the default, else the
        type's zero."""
        if nullable:
            new = None
        elif default is not _NONE:
            new = default
        else:
            new = _zero(t, value)
        self.note(path, f"{safe_repr(value, 80)} ({_type_name(value)}) cannot be recorded here; "
                        f"recorded as {safe_repr(new, 80)}")
        return new

    def _inside(self, value, t, path, depth, nullable, default):
        """Repair what a value that fits ``t`` holds (text, floats, items, fields)."""
        if isinstance(value, str):
            cleaned = clean_text(value)
            if cleaned is value:
                return _SAME
            if not path.endswith(".notes") and ".notes[" not in path:  # no note about a note
                self.note(path, f"text that is not valid UTF-8 recorded as {safe_repr(cleaned, 80)} (bytes as \\xNN)")
            return cleaned
        if isinstance(value, float) and not math.isfinite(value):
            if nullable or isinstance(t, mi.AnyType):
                return _SAME  # written as null, read back as None
            new = default if default is not _NONE else 0.0
            self.note(path, f"{value!r} (not a finite number) recorded as {new!r}")
            return new
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(t, mi.FloatType):
            try:
                float(value)
            except OverflowError:
                new = None if nullable else (default if default is not _NONE else 0.0)
                self.note(path, f"an integer too large for a float recorded as {new!r}")
                return new
            return _SAME
        if isinstance(value, msgspec.Struct):
            if depth > MAX_DEPTH * 4:
                return _SAME
            self.struct(value, _info(type(value)) if isinstance(t, mi.AnyType) else t, path, depth)
            return _SAME
        if isinstance(value, (list, tuple, dict)):
            if id(value) in self.open:
                self.note(path, f"{_type_name(value)} that holds itself recorded as its repr")
                return safe_repr(value) if isinstance(t, (mi.StrType, mi.AnyType)) else _zero(t)
            self.open.add(id(value))
            try:
                return (self._dict if isinstance(value, dict) else self._items)(value, t, path, depth)
            finally:
                self.open.discard(id(value))
        if isinstance(t, mi.AnyType) and not isinstance(value, (type(None), bool, int, float)):
            return self._any_leaf(value, path)
        return _SAME

    def _items(self, value, t, path, depth):
        if isinstance(t, mi.AnyType) and depth > MAX_DEPTH:
            self.note(path, f"nested deeper than {MAX_DEPTH} levels; recorded as its repr")
            return safe_repr(value)
        if isinstance(t, mi.TupleType):
            types = t.item_types
        else:
            item = t.item_type if hasattr(t, "item_type") else mi.AnyType()
            types = (item,) * len(value)
        changed, out = False, list(value)
        for i, (element, item_type) in enumerate(zip(value, types)):
            new = self.value(element, item_type, f"{path}[{i}]", depth + 1)
            if new is not _SAME:
                out[i], changed = new, True
        if not changed:
            return _SAME
        return out if isinstance(value, list) else tuple(out)  # new: the old may be shared, or hold itself

    def _dict(self, value: dict, t, path, depth):
        if isinstance(t, mi.AnyType) and depth > MAX_DEPTH:
            self.note(path, f"nested deeper than {MAX_DEPTH} levels; recorded as its repr")
            return safe_repr(value)
        key_type = getattr(t, "key_type", mi.AnyType())
        value_type = getattr(t, "value_type", mi.AnyType())
        changed, out = False, {}
        for key, element in list(value.items()):
            new_key = key
            if not isinstance(key, str) and (isinstance(key_type, mi.StrType) or not (
                    isinstance(key, int) and not isinstance(key, bool))):
                new_key = str(key) if isinstance(key, (int, float, bool)) else safe_repr(key)
                self.note(f"{path}[{safe_repr(key, 40)}]", "a key that is not text recorded as text")
            elif isinstance(key, str):
                new_key = clean_text(key)
                if new_key is not key:
                    self.note(f"{path}[{new_key!r}]", "a key that is not valid UTF-8 (bytes written as \\xNN)")
            new = self.value(element, value_type, f"{path}[{safe_repr(new_key, 40)}]", depth + 1)
            out[new_key] = element if new is _SAME else new
            changed = changed or new is not _SAME or new_key is not key
        return out if changed else _SAME

    def _any_leaf(self, value, path):
        """A value in a field typed ``Any`` that is not a JSON builtin: its number, else its repr."""
        try:
            _JSON.encode(value)
            return _SAME  # an enum, a datetime, ... the codec writes
        except _ENCODE_ERRORS:
            pass
        number = _scalar(value)
        new = safe_repr(value) if number is _FAIL else number
        self.note(path, f"{safe_repr(value, 80)} ({_type_name(value)}) recorded as {safe_repr(new, 80)}")
        return new

    @staticmethod
    def _convert(value, t):
        """``value`` converted to ``t`` when that is exact (a 0-d tensor to its number, an integral
        float to int, a repr to text), else ``_FAIL``. Never iterates ``value``."""
        if isinstance(t, (mi.IntType, mi.FloatType, mi.BoolType)):
            number = value if isinstance(value, (bool, int, float)) else _scalar(value)
            if number is _FAIL:
                try:
                    number = operator.index(value)  # numpy ints, SymInts with a hint
                except Exception:  # noqa: BLE001
                    return _FAIL
            if isinstance(t, mi.BoolType):
                return number if isinstance(number, bool) else _FAIL
            if isinstance(t, mi.FloatType):
                return float(number) if not isinstance(number, bool) else _FAIL
            if isinstance(number, float):
                return int(number) if math.isfinite(number) and number.is_integer() else _FAIL
            return int(number) if not isinstance(number, bool) else _FAIL
        if isinstance(t, mi.StrType):
            if isinstance(value, bytes):
                return value.decode("utf-8", "backslashreplace")
            return safe_repr(value)
        if isinstance(t, mi.AnyType):
            number = _scalar(value)
            return safe_repr(value) if number is _FAIL else number
        if isinstance(t, mi.EnumType):
            try:
                return t.cls(value)
            except Exception:  # noqa: BLE001
                return _FAIL
        return _FAIL


def _zero(t, value=_NONE):
    """The value recorded for a field with no default when nothing else fits: the type's zero (text:
    the value's repr; a record: one with every required field at its zero)."""
    if isinstance(t, mi.IntType):
        return 0
    if isinstance(t, mi.FloatType):
        return 0.0
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, (mi.StrType, mi.AnyType)):
        return "" if value is _NONE else safe_repr(value)
    if isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        return []
    if isinstance(t, mi.DictType):
        return {}
    if isinstance(t, mi.EnumType):
        return next(iter(t.cls))
    if isinstance(t, mi.StructType):
        cls = _struct_class(t)
        return cls(**{f.name: _zero(f.type) for f in t.fields if f.required})
    if isinstance(t, mi.UnionType):
        return _zero(sorted(t.types, key=_rank)[0], value)
    return None
