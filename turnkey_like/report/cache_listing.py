"""What ``tk cache ...`` prints: the build listing, one build's stats, and what prune, delete and clean did.

Every figure comes from the cache (:class:`turnkey_like.cache.Cache`: its entries, records, file
sizes and :class:`~turnkey_like.cache.PruneResult`); this module lays them out. Sizes are bytes with
decimal SI prefixes (``1 MB`` = 10^6 bytes), latencies in ms (:mod:`turnkey_like.units`).

The listing prints as a rich table up to :data:`RICH_MAX_ROWS` builds, as a plain aligned table
(same columns) above that: rich lays out ~3 ms per row, the plain table prints 10,000 builds at once.
Statuses are coloured (rich markup, or ANSI codes when stdout is a terminal and ``NO_COLOR`` is unset).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from turnkey_like.units import format_bytes, format_count, format_ms

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from turnkey_like.cache import PruneResult
    from turnkey_like.cache_index import BuildEntry
    from turnkey_like.records import BuildRecord

#: The style of each stage status in tables.
STATUS_STYLE = {
    "successful": "green",
    "error": "bold red",
    "killed": "bold red",
    "interrupted": "bold red",
    "out_of_memory": "bold red",
    "timeout": "yellow",
    "running": "cyan",
    "skipped": "dim",
    "not_started": "dim",
}
#: The ANSI codes of those styles, for the plain table on a terminal.
ANSI = {"green": "32", "bold red": "1;31", "yellow": "33", "cyan": "36", "dim": "2"}
#: Builds listed as a rich table at most; more print as a plain aligned table.
RICH_MAX_ROWS = 200
LIST_HEADERS = ["Build", "Script", "Model", "Class", "Characterize", "Build", "Benchmark", "Latency mean", "Size"]
RIGHT_COLUMNS = (7, 8)
#: Row keys ``tk cache stats`` leaves out of a build's facts (the system table shows the machine).
STATS_HIDDEN = ("build_name", "cpu", "os", "torch", "onnxruntime")


def status_markup(value: str) -> str:
    """A stage status in rich markup, coloured by :data:`STATUS_STYLE`."""
    style = STATUS_STYLE.get(value, "")
    return f"[{style}]{value}[/{style}]" if style else value


def print_plain(title: str, headers: list[str], lines: list[list[str]], status_cols=(), right_cols=()) -> None:
    """Print an aligned plain-text table on stdout (ANSI colours for statuses only on a terminal)."""
    columns = list(zip(*lines)) or [()] * len(headers)
    widths = [max(len(h), max(map(len, col), default=0)) for h, col in zip(headers, columns)]
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
    if color:
        parts.extend(fmt(line) for line in lines)
    else:  # one format string for every line: 10,000 lines in a few ms
        template = "  ".join(f"{{:{'>' if i in right_cols else '<'}{w}}}" for i, w in enumerate(widths))
        parts.extend(template.format(*line).rstrip() for line in lines)
    sys.stdout.write("\n".join(parts) + "\n")


def listing_lines(entries: list[BuildEntry]) -> list[list[str]]:
    """One line of text cells per build (:data:`LIST_HEADERS`), from the index's listing values."""
    lines = []
    for entry in entries:  # listing: script, model, class, 3 statuses, mean latency (cache_index.LISTING_KEYS)
        script, model, class_, char, build, bench, latency = entry.listing
        lines.append([entry.name, script or "", model or "", class_ or "", char, build, bench,
                      "" if latency is None else format_ms(latency), format_bytes(entry.bytes)])
    return lines


def render_cache_list(entries: list[BuildEntry], root: Path, total_bytes: int, console: Console) -> None:
    """Print ``tk cache list``: a title (builds, folder, their total size in bytes), then one line per
    build: build, script, model, class, status per stage, mean latency, size."""
    lines = listing_lines(entries)
    title = f"{len(entries)} build(s) in {root}: {format_bytes(total_bytes)} (records and artifacts)"
    if len(lines) > RICH_MAX_ROWS:
        print_plain(title, LIST_HEADERS, lines, status_cols=(4, 5, 6), right_cols=RIGHT_COLUMNS)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    for i, h in enumerate(LIST_HEADERS):
        table.add_column(h, justify="right" if i in RIGHT_COLUMNS else "left", no_wrap=i == 0)
    for line in lines:
        table.add_row(*(escape(v) for v in line[:4]), *(status_markup(v) for v in line[4:7]), *line[7:])
    console.print(table)


def _facts_table(record: BuildRecord, folder: Path):
    """One build's report row as a two-column table (``Folder`` and ``Script path`` first)."""
    from rich.markup import escape
    from rich.table import Table

    from turnkey_like.report.table import COLUMNS, human, report_row

    row = report_row(record)
    facts = Table(title=f"Build {escape(record.build_name)}", title_justify="left", show_header=False)
    facts.add_column("field")
    facts.add_column("value")
    facts.add_row("Folder", escape(str(folder)))
    facts.add_row("Script path", escape(record.script))
    for key, column in COLUMNS.items():
        value = row[key]
        if key in STATS_HIDDEN or value is None or value == "":
            continue
        if key.endswith("_status"):
            text = status_markup(value)
        else:
            shown = human(key, value)
            if column.kind == "count" and isinstance(value, int) and value >= 1000:
                shown += f" ({format_count(value)})"
            text = escape(shown)
        facts.add_row(column.title, text)
    facts.add_row("Created (UTC)", escape(record.created_at or ""))
    return facts


def render_cache_stats(record: BuildRecord, folder: Path, files: list[tuple[str, int]], console: Console) -> None:
    """Print ``tk cache stats``: the build's report row, its files (path, size, bytes, and the total of
    the listed sizes), the system it ran on, and how to see the whole record."""
    from rich.markup import escape
    from rich.table import Table

    console.print(_facts_table(record, folder))
    ftable = Table(title="Files", title_justify="left")
    ftable.add_column("File")
    ftable.add_column("Size", justify="right")
    ftable.add_column("Bytes", justify="right")
    for path, size in files:
        ftable.add_row(escape(path), format_bytes(size), str(size))
    total = sum(s for _, s in files)  # the total row of the column above
    ftable.add_row("[bold]total[/bold]", format_bytes(total), str(total))
    console.print(ftable)

    stable = Table(title="System (where it ran)", title_justify="left", show_header=False)
    stable.add_column("key")
    stable.add_column("value")
    for key, value in record.system.items():
        stable.add_row(escape(str(key)), escape(", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    console.print(stable)
    console.print("Full record: [bold]tk cache stats --json " + escape(record.build_name) + "[/bold]")


def deleted_lines(root: Path, removed: list[str]) -> list[str]:
    """What ``tk cache delete`` did: how many builds were removed from ``root``, then their names."""
    return [f"deleted {len(removed)} build(s) from {root}", *(f"  {name}" for name in removed)]


def cleaned_lines(root: Path, freed: dict[str, int]) -> list[str]:
    """What ``tk cache clean`` did: the bytes freed in all (the sum of the lines below), then per build."""
    total = sum(freed.values())
    return [f"cleaned {len(freed)} build(s) in {root}: freed {format_bytes(total)} ({total} bytes)",
            *(f"  {name}: {format_bytes(n)}" for name, n in freed.items())]


def pruned_lines(root: Path, result: PruneResult) -> list[str]:
    """What ``tk cache prune`` did (or, with ``--dry-run``, would do): the builds removed with their
    last use and size, the bytes freed and left, and the builds chosen but kept with the reason."""
    verb, freed = ("would prune", "would free") if result.dry_run else ("pruned", "freed")
    lines = [f"{verb} {len(result.removed)} build(s) from {root}: {freed} {format_bytes(result.freed_bytes)} "
             f"({result.freed_bytes} bytes); {result.kept_builds} build(s) left, {format_bytes(result.kept_bytes)}"]
    width = max([len(b.build_name) for b in result.removed + result.skipped] or [0])
    for b in result.removed:
        note = "  (unreadable record)" if b.unreadable else ""
        lines.append(f"  {b.build_name:<{width}}  last used {b.last_used or '?'}  {format_bytes(b.bytes):>9}{note}")
    if result.skipped:
        lines.append(f"kept {len(result.skipped)} chosen build(s):")
        lines.extend(f"  {b.build_name:<{width}}  {b.kept_because}" for b in result.skipped)
    return lines
