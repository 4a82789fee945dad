"""Writing files safely: atomically, never through a symlink, and with a clear full-disk error.

Every record, summary and raw-data file tk writes goes through :func:`write_atomic`, so a reader
sees either the old file or the new one, never a half-written one, and a symlink planted where tk
writes (``record.json -> ~/.bashrc``) is refused instead of followed.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from turnkey_like.errors import CacheError

_UMASK = os.umask(0)
os.umask(_UMASK)
#: Mode of files tk creates: 0666 less the umask (``mkstemp`` alone would give 0600, and a shared
#: cache would become unreadable to the rest of a team).
FILE_MODE = 0o666 & ~_UMASK


def refuse_symlink(path: str | Path) -> None:
    """Raise :class:`CacheError` when ``path`` is a symbolic link (tk never writes through one)."""
    if os.path.islink(path):
        raise CacheError(f"refusing to write {path}: it is a symbolic link",
                         hint="remove the link; tk writes only real files inside its cache")


def no_space_error(path: str | Path) -> CacheError:
    """The one-line error for a full disk while writing ``path``."""
    return CacheError(f"no space left on device while writing {path}",
                      hint="free some space (tk cache clean --all removes ONNX files), then rerun")


def write_atomic(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, then rename.

    Args:
        path: destination; its folder must exist.
        data: the bytes to write, as they are (binary files such as PNG stay byte-exact).
        fsync: flush to disk before the rename (off for files that are only a speed-up).

    Raises:
        CacheError: ``path`` is a symlink, or the disk is full (the temp file is removed; the old
            file, if any, is left as it was).
    """
    path = Path(path)
    refuse_symlink(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space_error(path) from None
        raise


def reset_log(path: str | Path) -> None:
    """Create ``path`` empty (or empty it) for a stage's log, never through a symlink.

    Raises:
        CacheError: ``path`` is a symlink, or the disk is full.
    """
    refuse_symlink(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space_error(path) from None
        if e.errno == errno.ELOOP:  # a link planted between the check and the open
            refuse_symlink(path)
        raise
    os.close(fd)


def write_record(path: str | Path, record, *, fsync: bool = True, check: bool = True) -> None:
    """Encode ``record`` (a :mod:`turnkey_like.records` record or builtins) as JSON, one line ending
    in a newline, and :func:`write_atomic` it (``check``: as for :func:`turnkey_like.records.encode`)."""
    from turnkey_like.records import encode

    write_atomic(path, encode(record, check=check) + b"\n", fsync=fsync)
