"""`tk cache ...` and `tk report ...`: read (and prune) what the pipeline recorded in the cache.

``register(subparsers)`` adds the parsers; each sets ``func=handler`` where ``handler(args) -> int``
is the exit code. Handlers raise :class:`~turnkey_like.errors.TkError` for user errors; the main
CLI prints them as ``error: ...`` / ``hint: ...``. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from pathlib import Path

from turnkey_like.errors import InputError

STATUS_STYLE = {
    "successful": "green",
    "error": "bold red",
    "killed": "bold red",
    "timeout": "yellow",
    "running": "cyan",
    "skipped": "dim",
    "not_started": "dim",
}


def _console(stderr: bool = False):
    """A rich console on the *current* stdout/stderr; wide when not a terminal (files, pipes, tests)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "200"))
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def _cache(args, create: bool = False):
    from turnkey_like.cache import Cache

    return Cache(getattr(args, "cache_dir", None), create=create)


def _status(value: str) -> str:
    style = STATUS_STYLE.get(value, "")
    return f"[{style}]{value}[/{style}]" if style else value


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


RICH_MAX_ROWS = 200
ANSI = {"green": "32", "bold red": "1;31", "yellow": "33", "cyan": "36", "dim": "2"}


def _print_plain(title: str, headers: list[str], lines: list[list[str]], status_cols=(), right_cols=()) -> None:
    """Print an aligned plain-text table (ANSI colours for statuses only on a terminal)."""
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(headers)]
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def fmt(cells, is_header=False):
        out = []
        for i, cell in enumerate(cells):
            text = cell.rjust(widths[i]) if i in right_cols else cell.ljust(widths[i])
            if color and not is_header and i in status_cols and STATUS_STYLE.get(cell) in ANSI:
                text = f"\x1b[{ANSI[STATUS_STYLE[cell]]}m{text}\x1b[0m"
            out.append(text)
        return "  ".join(out).rstrip()

    parts = [title, fmt(headers, True), "  ".join("-" * w for w in widths)]
    parts.extend(fmt(line) for line in lines)
    sys.stdout.write("\n".join(parts) + "\n")


def _print_problems(problems) -> None:
    if not problems:
        return
    err = _console(stderr=True)
    err.print(f"[yellow]warning:[/yellow] skipped {len(problems)} unreadable record(s):", markup=True)
    for p in problems:
        err.print(f"  {p.build_name}: {p.message}", markup=False)


# --------------------------------------------------------------------------------------------- list
def cache_list(args) -> int:
    """Print one line per build: build, script, model, class, status per stage, mean latency (ms).

    Up to :data:`RICH_MAX_ROWS` builds print as a rich table, more as a plain aligned table (same columns).
    """
    from turnkey_like.records import to_dict
    from turnkey_like.report.table import report_row

    cache = _cache(args)
    records, problems = cache.records()
    if getattr(args, "json", False):
        print(json.dumps({"cache": str(cache.root), "builds": [to_dict(r) for r in records],
                          "problems": [p.to_dict() for p in problems]}, indent=1))
        return 0
    headers = ["Build", "Script", "Model", "Class", "Characterize", "Build", "Benchmark", "Latency mean (ms)"]
    lines = []
    for record in records:
        row = report_row(record)
        latency = row["latency_mean_ms"]
        lines.append([
            row["build_name"], row["script"], str(row["model"]), str(row["class"]), row["characterization_status"],
            row["build_status"], row["benchmark_status"], f"{latency:.3f}" if isinstance(latency, (int, float)) else "",
        ])
    title = f"{len(records)} build(s) in {cache.root}"
    if len(lines) <= RICH_MAX_ROWS:
        from rich.markup import escape
        from rich.table import Table

        console = _console()
        table = Table(title=escape(title), title_justify="left")
        for h in headers:
            table.add_column(h, justify="right" if h.startswith("Latency") else "left", no_wrap=h == "Build")
        for line in lines:
            table.add_row(*(escape(v) for v in line[:4]), *(_status(v) for v in line[4:7]), line[7])
        console.print(table)
    else:  # rich lays out ~3 ms per row; a plain aligned table prints 1,000 builds at once
        _print_plain(title, headers, lines, status_cols=(4, 5, 6), right_cols=(7,))
    _print_problems(problems)
    return 0


# --------------------------------------------------------------------------------------------- stats
def cache_stats(args) -> int:
    """Print one build's record (summary, or all of it with ``--json``), its files and sizes, and system."""
    from rich.markup import escape
    from rich.table import Table

    from turnkey_like.records import to_dict
    from turnkey_like.report.table import COLUMNS, report_row

    cache = _cache(args)
    record = cache.load(args.build)
    files = cache.files(args.build)
    if getattr(args, "json", False):
        print(json.dumps({"record": to_dict(record), "folder": str(cache.root / args.build),
                          "files": [{"path": p, "bytes": s} for p, s in files]}, indent=1))
        return 0
    console = _console()
    row = report_row(record)
    facts = Table(title=f"Build {escape(record.build_name)}", title_justify="left", show_header=False)
    facts.add_column("field")
    facts.add_column("value")
    facts.add_row("Folder", escape(str(cache.root / record.build_name)))
    facts.add_row("Script path", escape(record.script))
    for key, title in COLUMNS.items():
        if key in ("build_name", "cpu", "os", "torch", "onnxruntime"):
            continue
        value = row[key]
        if value == "" or value is None:
            continue
        if key.endswith("_status"):
            text = _status(value)
        else:
            text = escape(f"{value:.6g}" if isinstance(value, float) else str(value))
        facts.add_row(title, text)
    facts.add_row("Created (UTC)", escape(record.created_at or ""))
    console.print(facts)

    ftable = Table(title="Files", title_justify="left")
    ftable.add_column("File")
    ftable.add_column("Size", justify="right")
    ftable.add_column("Bytes", justify="right")
    for path, size in files:
        ftable.add_row(escape(path), _human_bytes(size), str(size))
    ftable.add_row("[bold]total[/bold]", _human_bytes(sum(s for _, s in files)), str(sum(s for _, s in files)))
    console.print(ftable)

    stable = Table(title="System (where it ran)", title_justify="left", show_header=False)
    stable.add_column("key")
    stable.add_column("value")
    for key, value in (record.system or {}).items():
        stable.add_row(escape(str(key)), escape(", ".join(value) if isinstance(value, list) else str(value)))
    console.print(stable)
    console.print("Full record: [bold]tk cache stats --json " + escape(record.build_name) + "[/bold]")
    return 0


# --------------------------------------------------------------------------------------------- delete / clean
def _names(args, cache) -> list[str]:
    if args.all and args.builds:
        raise InputError("give build names or --all, not both", hint="`tk cache list` shows the builds")
    if args.all:
        return cache.builds()
    if not args.builds:
        raise InputError(f"`tk cache {args.cache_command}` needs build names or --all", hint="`tk cache list` shows the builds")
    return args.builds


def cache_delete(args) -> int:
    """Remove build folders (record, ONNX files, logs)."""
    cache = _cache(args)
    removed = cache.delete(_names(args, cache))
    print(f"deleted {len(removed)} build(s) from {cache.root}")
    for name in removed:
        print(f"  {name}")
    return 0


def cache_clean(args) -> int:
    """Drop ONNX files and other artifacts of builds, keeping their records and logs."""
    cache = _cache(args)
    freed = cache.clean(_names(args, cache))
    total = sum(freed.values())
    print(f"cleaned {len(freed)} build(s) in {cache.root}: freed {_human_bytes(total)} ({total} bytes)")
    for name, n in freed.items():
        print(f"  {name}: {_human_bytes(n)}")
    return 0


def cache_location(args) -> int:
    """Print the cache folder tk uses (``--cache-dir``, else ``$TK_CACHE_DIR``, else the default)."""
    from turnkey_like.cache import resolve_root

    print(resolve_root(getattr(args, "cache_dir", None)))
    return 0


# --------------------------------------------------------------------------------------------- report
def report(args) -> int:
    """Write one row per evaluation from one or more caches (merged, no duplicates) to CSV/JSON/Markdown."""
    from turnkey_like.cache import Cache
    from turnkey_like.report.table import FORMATS, format_from_path, merge_rows, report_rows, write_report

    dirs = args.cache_dirs or [None]
    lists = []
    for d in dirs:
        cache = Cache(d, create=False)
        records, problems = cache.records()
        _print_problems(problems)
        lists.append(report_rows(records))
    rows = merge_rows(*lists)
    if args.output:
        path = Path(args.output)
        fmt = args.format or format_from_path(path)
    else:
        fmt = args.format or "csv"
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path.cwd() / f"tk_report_{stamp}.{fmt}"
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}", hint=f"use --format with one of: {', '.join(FORMATS)}")
    try:
        write_report(rows, path, fmt)
    except OSError as e:
        raise InputError(f"cannot write report {path}: {e.strerror or e}", hint="pass -o with a writable path") from None
    print(f"wrote {len(rows)} row(s) from {len(dirs)} cache(s) to {path}")
    return 0


# --------------------------------------------------------------------------------------------- parsers
def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir", default=argparse.SUPPRESS, metavar="DIR",
        help="cache folder (default: $TK_CACHE_DIR, else ~/.cache/turnkey_like)",
    )


def register(subparsers) -> None:
    """Add the ``cache`` (list, stats, delete, clean, location) and ``report`` parsers to ``subparsers``."""
    cache_p = subparsers.add_parser("cache", help="list, inspect and prune the builds in the cache")
    cache_sub = cache_p.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)

    p = cache_sub.add_parser("list", help="one line per build: script, model, status per stage, latency")
    _add_cache_dir(p)
    p.add_argument("--json", action="store_true", help="print the records as JSON")
    p.set_defaults(func=cache_list)

    p = cache_sub.add_parser("stats", help="one build's record, files with sizes, and system")
    p.add_argument("build", metavar="BUILD", help="build name (see `tk cache list`)")
    _add_cache_dir(p)
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.set_defaults(func=cache_stats)

    for name, func, what in (("delete", cache_delete, "remove builds entirely"),
                             ("clean", cache_clean, "drop ONNX files and artifacts, keep records and logs")):
        p = cache_sub.add_parser(name, help=what)
        p.add_argument("builds", nargs="*", metavar="BUILD", help="build names (see `tk cache list`)")
        p.add_argument("--all", action="store_true", help="every build in the cache")
        _add_cache_dir(p)
        p.set_defaults(func=func)

    p = cache_sub.add_parser("location", help="print the cache folder")
    _add_cache_dir(p)
    p.set_defaults(func=cache_location)

    p = subparsers.add_parser("report", help="write a CSV/JSON/Markdown table of every evaluation in the cache(s)")
    p.add_argument("--cache-dir", dest="cache_dirs", action="append", metavar="DIR",
                   help="cache folder; repeat to merge several caches (default: $TK_CACHE_DIR, else ~/.cache/turnkey_like)")
    p.add_argument("-o", "--output", metavar="PATH", help="output file (default: tk_report_<time>.<format> here)")
    p.add_argument("--format", choices=["csv", "json", "md"], help="output format (default: from -o's extension, else csv)")
    p.set_defaults(func=report)
