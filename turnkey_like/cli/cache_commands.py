"""`tk cache ...` and `tk report ...`: read (and prune) what the pipeline recorded in the cache.

``register(subparsers)`` adds the parsers; each sets ``func=handler`` where ``handler(args) -> int``
is the exit code. A handler turns ``args`` into its option record (``turnkey_like.cli.options``)
first, asks the cache (:class:`turnkey_like.cache.Cache`) and hands what it got to the renderers of
:mod:`turnkey_like.report.cache_listing`. Handlers raise :class:`~turnkey_like.errors.TkError` for
user errors; the main CLI prints them as ``error: ...`` / ``hint: ...``. Nothing here imports torch.
"""

from __future__ import annotations

import argparse

from turnkey_like.cli import options
from turnkey_like.cli.outputs import print_problems, table_console, write_cache_html
from turnkey_like.cli.run import EXIT_FAILED
from turnkey_like.errors import InputError
from turnkey_like import units
from turnkey_like.units import format_bytes


def _cache(command: options.CacheCommand | options.PruneCommand):
    from turnkey_like.cache import Cache

    return Cache(command.cache_dir, create=False)


def _print_json(doc) -> None:
    """Print ``doc`` (records and builtins) as indented JSON through the records codec."""
    import msgspec

    from turnkey_like.records import encode

    print(msgspec.json.format(encode(doc), indent=1).decode("utf-8"))


#: Exit code of `tk cache list` and `tk report` when records were skipped as unreadable (the rest was
#: listed/reported): "something failed, the others still ran" (docs/exit_codes.md).
EXIT_SKIPPED = EXIT_FAILED


# --------------------------------------------------------------------------------------------- list
def cache_list(args) -> int:
    """Print one line per build: build, script, model, class, status per stage, mean latency, size;
    the title gives the number of builds and their total size (records and artifacts).

    Reads the cache index (``Cache.entries``); ``report.cache_listing.render_cache_list`` prints it.
    Unreadable records are named on stderr, one line each, and skipped (exit code
    :data:`EXIT_SKIPPED`). ``--json`` prints
    ``{"schema_version", "cache", "total_bytes", "builds": [record summaries], "problems": [...]}``
    (the summaries are read from each build's ``.summary.json``).
    """
    from turnkey_like.cache import bulk_load

    command = options.parse_cache_list(args)
    with bulk_load():
        return _cache_list(command)


def _cache_list(command: options.CacheCommand) -> int:
    from turnkey_like.report.cache_listing import render_cache_list

    cache = _cache(command)
    entries, problems = cache.entries()
    total = cache.total_bytes(entries, problems)
    if command.json:
        from turnkey_like.records import SCHEMA_VERSION

        records, problems = cache.records()
        _print_json({"schema_version": SCHEMA_VERSION, "cache": str(cache.root), "total_bytes": total,
                     "builds": records, "problems": problems})
        print_problems(problems)
        return EXIT_SKIPPED if problems else 0
    render_cache_list(entries, cache.root, total, table_console())
    print_problems(problems)
    return EXIT_SKIPPED if problems else 0


# --------------------------------------------------------------------------------------------- stats
def cache_stats(args) -> int:
    """Print one build's record (its report row, or all of it with ``--json``), its files and sizes,
    and the system it ran on.

    A record that cannot be read is an error naming the build in one line (exit code 1);
    ``--json`` prints ``{"schema_version", "record", "folder", "files": [{"path", "bytes"}]}``.
    """
    from turnkey_like.records import SCHEMA_VERSION
    from turnkey_like.report.cache_listing import render_cache_stats

    command = options.parse_cache_stats(args)
    (build,) = command.builds
    cache = _cache(command)
    record = cache.load(build)
    files = cache.files(build)
    if command.json:
        _print_json({"schema_version": SCHEMA_VERSION, "record": record, "folder": str(cache.root / build),
                     "files": [{"path": p, "bytes": s} for p, s in files]})
        return 0
    render_cache_stats(record, cache.root / record.build_name, files, table_console())
    return 0


# --------------------------------------------------------------------------------------------- delete / clean
def _names(command: options.CacheCommand, cache) -> list[str]:
    """The builds ``tk cache delete|clean`` acts on: every build with ``--all``, else those named."""
    return cache.builds() if command.all else list(command.builds)


def _print_lines(lines: list[str]) -> None:
    """Print each of ``lines`` on stdout."""
    for line in lines:
        print(line)


def _skipped_lines(skipped: dict[str, str]) -> list[str]:
    """One line per build ``delete``/``clean`` left alone: ``skipped NAME: why`` (in use by a live tk
    process, a symbolic link)."""
    return [f"skipped {name}: {why}" for name, why in skipped.items()]


def cache_delete(args) -> int:
    """Remove build folders (record, ONNX files, logs); builds in use by a live tk process and symbolic
    links are skipped, one line each."""
    from turnkey_like.report.cache_listing import deleted_lines

    command = options.parse_cache_selection(args)
    cache = _cache(command)
    result = cache.delete(_names(command, cache))
    _print_lines(deleted_lines(cache.root, result.removed) + _skipped_lines(result.skipped))
    return 0


def cache_clean(args) -> int:
    """Drop ONNX files and other artifacts of builds, keeping their records and logs; builds in use by
    a live tk process and symbolic links are skipped, one line each."""
    from turnkey_like.report.cache_listing import cleaned_lines

    command = options.parse_cache_selection(args)
    cache = _cache(command)
    result = cache.clean(_names(command, cache))
    _print_lines(cleaned_lines(cache.root, result.freed) + _skipped_lines(result.skipped))
    return 0


def cache_reindex(args) -> int:
    """Rebuild the cache index from the records; names unreadable records (exit code :data:`EXIT_SKIPPED`)."""
    import time

    from turnkey_like.cache import bulk_load
    from turnkey_like.cache_index import INDEX_FILE

    cache = _cache(options.parse_cache_folder(args))
    t0 = time.perf_counter()
    with bulk_load():
        entries, problems = cache.reindex()
    total = cache.total_bytes(entries, problems)
    print(f"indexed {len(entries)} build(s) in {cache.root} ({format_bytes(total)}) in "
          f"{time.perf_counter() - t0:.2f} s: {cache.root / INDEX_FILE}")
    print_problems(problems)
    return EXIT_SKIPPED if problems else 0


def parse_size(text: str) -> int:
    """Bytes from a size as people write it (:func:`turnkey_like.units.parse_size`: ``500MB``, ``2GB``;
    decimal SI, binary only as ``GiB``).

    Raises:
        InputError: not a size.
    """
    try:
        return units.parse_size(text)
    except ValueError as e:
        raise InputError(str(e), hint="write it like 500MB, 2GB or 750kB (1 MB = 10^6 bytes)") from None


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if days < 0 or days != days:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}")
    return days


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(e.message) from None


def cache_prune(args) -> int:
    """Remove the least recently used builds: older than ``--older-than DAYS``, then oldest first
    until the builds total ``--max-size SIZE`` at most; ``--dry-run`` lists them without removing.

    Prints what was removed (last use, size) and the space freed; builds chosen but kept (a stage
    running in a live tk process, locked by one, written since the listing) are named with the reason.
    """
    from turnkey_like.cache import bulk_load
    from turnkey_like.report.cache_listing import pruned_lines

    command = options.parse_prune(args)
    cache = _cache(command)
    with bulk_load():
        result = cache.prune(older_than_days=command.older_than_days, max_bytes=command.max_bytes,
                             dry_run=command.dry_run)
    _print_lines(pruned_lines(cache.root, result))
    return 0


def cache_location(args) -> int:
    """Print the cache folder tk uses (``--cache-dir``, else ``$TK_CACHE_DIR``, else the default)."""
    from turnkey_like.cache import resolve_root

    print(resolve_root(options.parse_cache_folder(args).cache_dir))
    return 0


# --------------------------------------------------------------------------------------------- report
def report(args) -> int:
    """Write one row per evaluation from one or more caches (merged, no duplicates) to CSV/JSON/Markdown.

    Unreadable records are named on stderr, one line each, and left out; the report is still written,
    and the exit code is then :data:`EXIT_SKIPPED`.
    """
    from turnkey_like.cache import bulk_load

    command = options.parse_report(args)
    with bulk_load():
        return _report(command)


def _report(command: options.ReportCommand) -> int:
    from turnkey_like.cache import Cache
    from turnkey_like.report.table import csv_sort_key, merge_rows, write_csv_lines, write_report

    dirs, path, fmt = command.cache_dirs, command.path, command.format
    if fmt == "html":  # one self-contained page of the full records (turnkey_like.views.html)
        return EXIT_SKIPPED if write_cache_html(dirs, path) else 0
    # one cache to CSV (the default): the index's ready-made CSV lines, sorted as merge_rows sorts rows
    lines_only = len(dirs) == 1 and fmt == "csv"
    lists = []
    skipped = 0
    for d in dirs:
        cache = Cache(d, create=False)
        entries, problems = cache.entries(rows=not lines_only, csv=lines_only)  # records only where stale
        print_problems(problems)
        skipped += len(problems)
        lists.append(entries)
    try:
        if lines_only:
            entries = sorted(lists[0], key=lambda e: csv_sort_key(e.listing[0], e.listing[1], e.name, e.updated_at))
            write_csv_lines([e.csv for e in entries], path)
            count = len(entries)
        else:
            rows = merge_rows(*([e.row for e in entries] for entries in lists))
            write_report(rows, path, fmt)
            count = len(rows)
    except OSError as e:
        raise InputError(f"cannot write report {path}: {e.strerror or e}", hint="pass -o with a writable path") from None
    print(f"wrote {count} row(s) from {len(dirs)} cache(s) to {path}")
    return EXIT_SKIPPED if skipped else 0


# --------------------------------------------------------------------------------------------- parsers
def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir", metavar="DIR",
        help="cache folder (default: $TK_CACHE_DIR, else ~/.cache/turnkey_like)",
    )


def register(subparsers, parent: argparse.ArgumentParser | None = None) -> None:
    """Add the ``cache`` (list, stats, delete, clean, prune, reindex, location) and ``report`` parsers
    to ``subparsers``.

    ``parent``: the options every command takes (``--traceback``, ``-q``, ``-v``; see
    ``turnkey_like.cli.arguments.common_options``), accepted after the command name too.
    """
    parents = [parent] if parent is not None else []
    cache_p = subparsers.add_parser("cache", parents=parents, help="list, inspect and prune the builds in the cache")
    cache_sub = cache_p.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)

    p = cache_sub.add_parser("list", parents=parents, help="one line per build: script, model, status per stage, latency")
    _add_cache_dir(p)
    p.add_argument("--json", action="store_true", help="print the records (summaries, no per-op rows) as JSON")
    p.set_defaults(func=cache_list, parser=p)

    p = cache_sub.add_parser("stats", parents=parents, help="one build's record, files with sizes, and system")
    p.add_argument("build", metavar="BUILD", help="build name (see `tk cache list`)")
    _add_cache_dir(p)
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.set_defaults(func=cache_stats, parser=p)

    for name, func, what in (("delete", cache_delete, "remove builds entirely"),
                             ("clean", cache_clean, "drop ONNX files and artifacts, keep records and logs")):
        p = cache_sub.add_parser(name, parents=parents, help=what)
        p.add_argument("builds", nargs="*", metavar="BUILD", help="build names (see `tk cache list`)")
        p.add_argument("--all", action="store_true", help="every build in the cache")
        _add_cache_dir(p)
        p.set_defaults(func=func, parser=p)

    p = cache_sub.add_parser("prune", parents=parents,
                             help="remove the least recently used builds, by age or down to a total size")
    p.add_argument("--older-than", type=_days, metavar="DAYS",
                   help="remove builds last used more than DAYS days ago (fractions allowed)")
    p.add_argument("--max-size", type=_size, metavar="SIZE",
                   help="then remove least recently used builds until all builds total SIZE at most "
                        "(500MB, 2GB: decimal, 1 MB = 10^6 bytes)")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    _add_cache_dir(p)
    p.set_defaults(func=cache_prune, parser=p)

    p = cache_sub.add_parser("reindex", parents=parents,
                             help="rebuild the cache index (what list and report read) from the records")
    _add_cache_dir(p)
    p.set_defaults(func=cache_reindex, parser=p)

    p = cache_sub.add_parser("location", parents=parents, help="print the cache folder")
    _add_cache_dir(p)
    p.set_defaults(func=cache_location, parser=p)

    p = subparsers.add_parser("report", parents=parents,
                              help="write a CSV/JSON/Markdown table of every evaluation in the cache(s)")
    p.add_argument("--cache-dir", dest="cache_dirs", action="append", metavar="DIR",
                   help="cache folder; repeat to merge several caches (default: $TK_CACHE_DIR, else ~/.cache/turnkey_like)")
    p.add_argument("-o", "--output", metavar="PATH", help="output file (default: tk_report_<time>.<format> here)")
    p.add_argument("--format", choices=["csv", "json", "md", "html"],
                   help="output format (default: from -o's extension, else csv); html: one self-contained page "
                        "with every build's tables, graph and roofline")
    p.set_defaults(func=report, parser=p)
