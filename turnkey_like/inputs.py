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
good entries, so one bad entry never stops the others.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from turnkey_like.errors import InputError
from turnkey_like.records import ModelRequest

SCRIPT_SUFFIXES = (".py",)
MODEL_SUFFIXES = (".onnx",)
LIST_SUFFIXES = (".txt",)
SELECTOR_SEPARATOR = "::"
_GLOB_CHARS = set("*?[")


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
            first = f.readline().strip()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from e
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


def _resolve(entries, base_dir: Path, specs, errors, seen_lists) -> None:
    for raw in entries:
        entry = raw.strip()
        path_text, selectors = _split_selector(entry)
        bad_hashes = [h for h in selectors if not all(c in "0123456789abcdef" for c in h)]
        if bad_hashes or (SELECTOR_SEPARATOR in entry and not selectors):
            errors.append(InputError(
                f"{entry}: malformed hash selector {', '.join(bad_hashes) or '(empty)'}",
                hint="use script.py::HASH[,HASH] with the 8-hex-digit hashes tk prints",
            ))
            continue
        expanded = os.path.expanduser(path_text)
        candidate = Path(expanded) if os.path.isabs(expanded) else base_dir / expanded
        if any(c in _GLOB_CHARS for c in path_text) and not candidate.exists():
            matches = sorted(glob.glob(str(candidate), recursive=True))
            if not matches:
                errors.append(InputError(f"{entry}: glob matched no file", hint="check the pattern and the current folder"))
                continue
            paths = [Path(m) for m in matches]
        else:
            paths = [candidate]
        for path in paths:
            _add_path(entry, path.resolve(), selectors, specs, errors, seen_lists)


def _add_path(entry: str, path: Path, selectors, specs, errors, seen_lists) -> None:
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
            errors.append(InputError(f"{entry}: cannot read list ({e})"))
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
