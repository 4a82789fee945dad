"""The cache's layout: where the root is, what its files are called, and how a build folder is named.

Layout::

    <root>/                         --cache-dir, else $TK_CACHE_DIR, else ~/.cache/turnkey_like
      .tk-cache                     marker: this folder is a tk cache (JSON)
      .tk-index.sqlite              the index: one row per build for list/report/prune (cache_index)
      <script-stem>[_<author>]_<invocation-hash>/
        .tk-build                   marker: this folder is a tk build (JSON)
        .lock                       file lock taken by writers of this build only
        record.json                 the BuildRecord (JSON, never pickle), written atomically
        .summary.json               the record without bulky detail, for fast listing
        *.onnx, *.onnx.data, ...    artifacts (dropped by ``clean``)
        *.log, logs/                logs (kept by ``clean``)

:func:`resolve_root` is the one place the cache root is decided; every part of tk that writes under
the cache (hardware profiles, ...) asks it. :func:`build_name` is the one place a build folder is named.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from turnkey_like.errors import CacheError

ENV_VAR = "TK_CACHE_DIR"
DEFAULT_ROOT = Path("~/.cache/turnkey_like")
ROOT_MARKER = ".tk-cache"
BUILD_MARKER = ".tk-build"
RECORD_FILE = "record.json"
SUMMARY_FILE = ".summary.json"
LOCK_FILE = ".lock"
LOG_SUFFIXES = (".log",)
LOG_DIR = "logs"

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def resolve_root(root: str | Path | None = None) -> Path:
    """Return the tk cache root: ``root`` if given, else ``$TK_CACHE_DIR``, else ``~/.cache/turnkey_like``.

    The one place the cache root is decided: the CLI's ``--cache-dir``, the pipeline, hardware
    profiles measured on this machine (``local``) and anything else tk stores all pass what the user
    gave (``None`` when nothing) through here. An empty string counts as not given. The path is made
    absolute (``~`` expanded); nothing is created or checked (:class:`Cache` does that).
    """
    if root is None or str(root) == "":
        env = os.environ.get(ENV_VAR, "")
        root = env if env else DEFAULT_ROOT
    return Path(root).expanduser().absolute()


#: The longest build folder name tk makes (file systems allow 255 bytes per name; a longer stem or
#: author is cut, see :func:`build_name`).
MAX_BUILD_NAME = 160


def build_name(script: str | Path, labels: dict[str, list[str]], invocation_hash: str,
               stem: str | None = None) -> str:
    """Return ``<script-stem>[_<author>]_<invocation-hash>``; the author is ``labels["author"][0]``.

    ``stem`` replaces the script's stem (a named model's ``<name>_<source>``, so it never
    collides with a script's build). Characters other than letters, digits, ``. _ + -`` become
    ``_`` (the bytes of a name that is not UTF-8 too) so the name is a safe folder name. A name
    longer than :data:`MAX_BUILD_NAME` keeps the start of its stem and author, then the first 8 hex
    digits of the sha256 of the full stem and author (so two long names that start alike differ),
    then the invocation hash.
    """
    return build_namer(script, labels, stem)(invocation_hash)


def build_namer(script: str | Path, labels: dict[str, list[str]], stem: str | None = None):
    """:func:`build_name` for one script, as a function of the invocation hash: the stem and author
    are read once (a shape sweep names 10,000 builds of one script: 18 -> 2 µs a name)."""
    parts = [stem or Path(str(script)).stem]
    authors = (labels or {}).get("author") or []
    if authors and authors[0]:
        parts.append(str(authors[0]))
    full_head = "_".join(_NAME_UNSAFE.sub("_", p).strip("_") or "_" for p in parts)

    def name(invocation_hash: str) -> str:
        head = full_head
        tail = _NAME_UNSAFE.sub("_", str(invocation_hash)).strip("_") or "_"
        if len(head) + 1 + len(tail) > MAX_BUILD_NAME:
            import hashlib

            digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:8]
            head = head[: MAX_BUILD_NAME - len(tail) - len(digest) - 2].rstrip("_") + "_" + digest
        built = f"{head}_{tail}"
        return built if _NAME_OK.match(built) else f"b{built}"

    return name


def check_build_name(build_name: str) -> None:
    """Raise :class:`CacheError` unless ``build_name`` is a safe folder name (letters, digits and
    ``. _ + -``, not starting with a punctuation mark): never a path, ``.`` or ``..``."""
    if (not isinstance(build_name, str) or not _NAME_OK.match(build_name) or build_name in (".", "..")
            or len(build_name) > 255):
        raise CacheError(
            f"invalid build name {build_name!r}",
            hint="build names are <script-stem>[_<author>]_<hash>; `tk cache list` shows them",
        )
