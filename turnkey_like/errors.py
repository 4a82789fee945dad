"""The exception hierarchy of tk.

Every error a user can cause derives from :class:`TkError`. The CLI prints it as one line,
``error: <message>`` followed by ``hint: <hint>`` when there is one, and exits non-zero; the full
traceback is shown only with ``--traceback``.
"""

from __future__ import annotations

import re


class TkError(Exception):
    """Base class of tk's own errors.

    Args:
        message: what went wrong, naming the file/model/option concerned.
        hint: what the user can do about it (optional).
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        # pickles with its hint (an input's child process sends its errors to tk this way)
        return (type(self), (self.message, self.hint))


class InputError(TkError):
    """A command-line input (path, glob, `.txt` list, `::hash`, label filter, option) is invalid."""


class ScriptError(TkError):
    """A user script could not be run to completion (syntax error, exception, rejected arguments)."""


class SelectionError(TkError):
    """A `::HASH` selector matched no discovered model or invocation."""


class CharacterizationError(TkError):
    """A model could not be characterized (counting failed)."""


class BuildError(TkError):
    """A model could not be exported to ONNX."""


class BenchmarkError(TkError):
    """A model could not be benchmarked (runtime or device unavailable, session failed)."""


class CacheError(TkError):
    """The cache could not be read or written (permissions, corrupt record, unknown build)."""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
ONE_LINE_LIMIT = 300


def one_line(exc: BaseException, limit: int = ONE_LINE_LIMIT) -> str:
    """One line naming an exception, for records and terminal output: ``ValueError: bad shape``.

    The first non-blank line of ``Type: message``, terminal colour codes removed, cut to ``limit``
    characters (ending ``...``). A :class:`TkError` is given by its message alone.
    """
    message = _ANSI.sub("", str(exc)).strip()
    if isinstance(exc, TkError):
        text = message or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."
