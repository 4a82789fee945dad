"""Command-line inputs: scripts, ``.onnx`` files, globs, ``::HASH`` selectors, ``.txt`` lists, labels.

Accepted entries (TurnkeyML-compatible):

- ``path/to/script.py`` and ``model.onnx``;
- shell globs (``examples/scripts/*.py``), expanded here too when the shell did not;
- ``script.py::HASH[,HASH...]``: select invocations by invocation hash or model hash;
- ``list.txt``: one entry a line, blank lines and ``#`` comments skipped, globs and ``::HASH``
  allowed, nested ``.txt`` allowed, relative paths resolved against the list file's folder.

Labels come from the script's first line, ``# labels: key::v1,v2 key2::v3``. ``--labels key::a,b``
keeps scripts whose ``key`` has at least one of ``a``/``b``; several ``--labels`` keys must all match;
scripts without a pragma never match. (TurnkeyML required *all* of a script's values to be listed.)

Every problem with one entry becomes a :class:`~turnkey_like.errors.InputError` collected next to the
good entries, so one bad entry never stops the others: a missing file, a name the operating system
refuses (longer than 255 bytes, a symbolic link loop, no permission, a NUL character) and a name that
is not valid UTF-8 (tk records paths as text; rename such a file) alike. Messages show the entry
with its undecodable bytes as ``\\xNN`` and its control characters escaped, on one line.
"""

from __future__ import annotations

import errno
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from turnkey_like.errors import InputError
from turnkey_like.records import ModelRequest, clean_text, one_line_text

SCRIPT_SUFFIXES = (".py",)
MODEL_SUFFIXES = (".onnx",)
LIST_SUFFIXES = (".txt",)
SELECTOR_SEPARATOR = "::"
_GLOB_CHARS = set("*?[")
#: Line 1 is read up to this many characters for the labels pragma (a script whose first line is
#: a megabyte of data is not read whole).
MAX_PRAGMA_CHARS = 64 * 1024


@dataclass
class InputSpec:
    """One resolved input: a script, an ONNX file or a named model, with its selectors and labels.

    Attributes:
        path: absolute path of the ``.py`` or ``.onnx`` file; for a named model, its name as given.
        selectors: the ``::HASH`` values given for it (empty = every invocation is selected).
        labels: its line-1 labels pragma (``{}`` when it has none or for ONNX files).
        entry: the text the user gave that produced it (for messages).
        model: the named model (``--model NAME``, one sweep point) this input builds, else ``None``.
    """

    path: Path
    selectors: list[str] = field(default_factory=list)
    labels: dict[str, list[str]] = field(default_factory=dict)
    entry: str = ""
    model: ModelRequest | None = None

    @property
    def is_onnx(self) -> bool:
        return self.model is None and self.path.suffix.lower() in MODEL_SUFFIXES


def named_model_specs(requests: list[ModelRequest]) -> list[InputSpec]:
    """One :class:`InputSpec` per named-model request (sweep points already expanded), in order."""
    return [InputSpec(path=Path(r.name), entry=r.name, model=r) for r in requests]


def parse_labels_pragma(path: Path) -> dict[str, list[str]]:
    """Return the labels pragma on a script's first line as ``{key: [values]}`` (``{}`` without one).

    Raises:
        InputError: a token is not ``key::value[,value]`` (names the file and the bad token).
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline(MAX_PRAGMA_CHARS).strip()
    except (OSError, ValueError) as e:
        raise path_error(str(path), e) from None
    if not first.startswith("#"):
        return {}
    body = first[1:].strip()
    if not body.lower().startswith("labels:"):
        return {}
    labels: dict[str, list[str]] = {}
    for token in body[len("labels:"):].split():
        key, values = _split_label_token(token)
        if key is None:
            raise InputError(
                f"{path}: malformed labels token {token!r} on line 1",
                hint="write labels as '# labels: key::value1,value2 key2::value' (spaces between tokens)",
            )
        labels.setdefault(key, []).extend(v for v in values if v not in labels.get(key, []))
    return labels


def _split_label_token(token: str) -> tuple[str | None, list[str]]:
    key, sep, rest = token.partition(SELECTOR_SEPARATOR)
    values = [v for v in rest.split(",") if v]
    if not sep or not key or not values or SELECTOR_SEPARATOR in rest:
        return None, []
    return key, values


def parse_label_filters(tokens: list[str] | None) -> dict[str, set[str]]:
    """Parse ``--labels`` values (``key::v1,v2``) into ``{key: {values}}``.

    Raises:
        InputError: a token is malformed (the run cannot continue: the filter is ambiguous).
    """
    filters: dict[str, set[str]] = {}
    for token in tokens or []:
        for part in token.split():
            key, values = _split_label_token(part)
            if key is None:
                raise InputError(
                    f"malformed --labels value {part!r}",
                    hint="use --labels key::value[,value] (e.g. --labels test_group::a)",
                )
            filters.setdefault(key, set()).update(values)
    return filters


def labels_match(labels: dict[str, list[str]], filters: dict[str, set[str]]) -> bool:
    """True when every filter key is in ``labels`` with at least one of the filter's values."""
    return all(key in labels and filters[key] & set(labels[key]) for key in filters)


def _split_selector(entry: str) -> tuple[str, list[str]]:
    if SELECTOR_SEPARATOR not in entry:
        return entry, []
    path, _, hashes = entry.rpartition(SELECTOR_SEPARATOR)
    return path, [h.strip().lower() for h in hashes.split(",") if h.strip()]


def resolve_inputs(entries: list[str], base_dir: Path | None = None) -> tuple[list[InputSpec], list[InputError]]:
    """Expand command-line entries into input specs, collecting one error per bad entry.

    Args:
        entries: the positional arguments as typed (paths, globs, ``::HASH``, ``.txt`` lists).
        base_dir: folder relative paths are resolved against (default: the current directory).

    Returns:
        ``(specs, errors)``: specs in the order given, duplicates merged (a path given once with and
        once without selectors runs every invocation); errors for entries that could not be used
        (missing path, glob with no match, wrong extension, empty or unreadable ``.txt``, selector on
        a ``.txt``, malformed labels pragma).
    """
    specs: dict[Path, InputSpec] = {}
    errors: list[InputError] = []
    _resolve(entries, base_dir or Path.cwd(), specs, errors, seen_lists=())
    return list(specs.values()), errors


def path_error(entry: str, error: BaseException) -> InputError:
    """The one-line :class:`InputError` for an entry whose path the operating system refused.

    ``error`` is what a path operation raised: an ``OSError`` (name too long, symbolic link loop,
    permission denied, ...), ``RuntimeError`` (``pathlib``'s "Symlink loop" before Python 3.13) or
    ``ValueError`` (a NUL character in the path). The message shows ``entry`` on one line
    (:func:`~turnkey_like.records.one_line_text`).
    """
    shown = one_line_text(entry)
    code = getattr(error, "errno", None)
    if code == errno.ENAMETOOLONG:
        return InputError(f"{shown}: a name in this path is longer than the file system allows (255 bytes)",
                          hint="shorten the file or folder name")
    if code == errno.ELOOP or (isinstance(error, RuntimeError) and "loop" in str(error).lower()):
        return InputError(f"{shown}: symbolic link loop (the link points back to itself)",
                          hint="fix the link: `ls -l` shows where each one points")
    if code in (errno.EACCES, errno.EPERM):
        return InputError(f"{shown}: permission denied", hint="check the permissions of the file and its folders")
    if isinstance(error, ValueError):
        return InputError(f"{shown}: the path holds a NUL character", hint="check how the path was written")
    reason = getattr(error, "strerror", None) or type(error).__name__
    return InputError(f"{shown}: cannot use this path ({one_line_text(str(reason))})", hint="check the path")


def resolve_path(text: str, base_dir: Path | None = None, *, shown: str | None = None) -> Path:
    """The absolute, resolved path of one path as typed (``~`` expanded, relative to ``base_dir``, by
    default the current folder); it need not exist. Messages name ``shown`` (default: ``text``).

    Raises:
        InputError: the operating system refuses the path (:func:`path_error`), or it is not valid
            UTF-8 once resolved (:func:`check_decodable`).
    """
    try:
        expanded = os.path.expanduser(text)
        candidate = Path(expanded) if os.path.isabs(expanded) else (base_dir or Path.cwd()) / expanded
        path = candidate.resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise path_error(shown or text, e) from None
    check_decodable(shown or text, path)
    return path


def check_decodable(entry: str, path: Path) -> None:
    """Raise :class:`InputError` when ``path`` is not valid UTF-8 text (a name in it held bytes that are
    not UTF-8, which Python keeps as surrogate escapes): tk records, prints and reports paths as text.
    """
    text = str(path)
    if clean_text(text) is not text:
        raise InputError(f"{one_line_text(entry)}: the file name is not valid UTF-8 (its bytes are shown as \\xNN)",
                         hint="rename it to a UTF-8 name, e.g. `convmv -f latin1 -t utf8 FILE`")


def _resolve(entries, base_dir: Path, specs, errors, seen_lists) -> None:
    for raw in entries:
        entry = raw.strip()
        try:
            _resolve_entry(entry, base_dir, specs, errors, seen_lists)
        except InputError as e:
            errors.append(e)
        except (OSError, RuntimeError, ValueError) as e:  # a path the OS refused, wherever it was used
            errors.append(path_error(entry, e))


def _resolve_entry(entry: str, base_dir: Path, specs, errors, seen_lists) -> None:
    """Add the specs of one entry (errors of entries inside a ``.txt`` list go to ``errors``).

    Raises:
        InputError, OSError, RuntimeError, ValueError: this entry cannot be used.
    """
    path_text, selectors = _split_selector(entry)
    bad_hashes = [h for h in selectors if not all(c in "0123456789abcdef" for c in h)]
    if bad_hashes or (SELECTOR_SEPARATOR in entry and not selectors):
        raise InputError(
            f"{one_line_text(entry)}: malformed hash selector {one_line_text(', '.join(bad_hashes)) or '(empty)'}",
            hint="use script.py::HASH[,HASH] with the 8-hex-digit hashes tk prints",
        )
    expanded = os.path.expanduser(path_text)
    candidate = Path(expanded) if os.path.isabs(expanded) else base_dir / expanded
    if any(c in _GLOB_CHARS for c in path_text) and not candidate.exists():
        matches = sorted(glob.glob(str(candidate), recursive=True))
        if not matches:
            raise InputError(f"{one_line_text(entry)}: glob matched no file",
                             hint="check the pattern and the current folder")
        paths = [Path(m) for m in matches]
    else:
        paths = [candidate]
    for path in paths:  # one match the OS refuses (a link loop) never hides the others
        shown = entry if len(paths) == 1 else str(path)
        try:
            resolved = resolve_path(str(path), shown=shown)
            _add_path(entry, resolved, selectors, specs, errors, seen_lists)
        except InputError as e:
            errors.append(e)
        except (OSError, RuntimeError, ValueError) as e:
            errors.append(path_error(shown, e))


def _add_path(raw_entry: str, path: Path, selectors, specs, errors, seen_lists) -> None:
    entry = one_line_text(raw_entry)
    if not path.exists():
        errors.append(InputError(f"{entry}: no such file", hint="check the path (relative paths in a .txt list are relative to the list's folder)"))
        return
    if path.is_dir():
        errors.append(InputError(f"{entry}: is a folder, not a script", hint=f"use a glob such as {path}/*.py"))
        return
    suffix = path.suffix.lower()
    if suffix in LIST_SUFFIXES:
        if selectors:
            errors.append(InputError(f"{entry}: ::HASH cannot follow a .txt list", hint="put the ::HASH on the script lines inside the list"))
            return
        if path in seen_lists:
            errors.append(InputError(f"{entry}: .txt list includes itself (cycle)", hint="remove the nested reference"))
            return
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            errors.append(InputError(f"{entry}: cannot read list ({one_line_text(str(e))})"))
            return
        items = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        if not items:
            errors.append(InputError(f"{entry}: input list is empty", hint="put one script, glob or script.py::HASH per line"))
            return
        _resolve(items, path.parent, specs, errors, seen_lists + (path,))
        return
    if suffix not in SCRIPT_SUFFIXES + MODEL_SUFFIXES:
        errors.append(InputError(
            f"{entry}: unsupported file type {suffix or '(none)'}",
            hint="give Python scripts (.py), ONNX models (.onnx) or input lists (.txt)",
        ))
        return
    labels: dict[str, list[str]] = {}
    if suffix in SCRIPT_SUFFIXES:
        try:
            labels = parse_labels_pragma(path)
        except InputError as e:
            errors.append(e)
            return
    existing = specs.get(path)
    if existing is None:
        specs[path] = InputSpec(path=path, selectors=list(selectors), labels=labels, entry=entry)
    elif existing.selectors and selectors:
        existing.selectors.extend(h for h in selectors if h not in existing.selectors)
    else:  # one mention without selectors: everything is selected
        existing.selectors = []
