"""The report table: CSV, JSON and Markdown renderings of :class:`~turnkey_like.records.ReportRow`s.

A row is computed once from its cached record by :func:`turnkey_like.records.report_row` (and kept
in the cache index); this module only lays rows out: :data:`COLUMNS` gives each row key its title
for people and its kind, :func:`report_rows` sorts, :func:`merge_rows` combines rows from several
caches without duplicates, and :func:`write_report`, :func:`render_csv`, :func:`render_json` and
:func:`render_markdown` render. They format, never compute; a value the record lacks is ``None`` (an
empty CSV cell, ``null`` in JSON, blank in Markdown), never a guess.

Units: a row holds plain numbers in base units, as the records do: MACs are multiply-accumulates and
``1 MAC = 2 FLOPs``; arithmetic intensity is FLOPs per byte of memory traffic; latencies are
milliseconds (``*_ms``); throughput is inferences per second counting the batch; durations are seconds
(``*_s``); parameters are counts. CSV and JSON keep those numbers; the Markdown table (for people)
formats them with :mod:`turnkey_like.units` (decimal SI prefixes: ``4.09 G`` MACs, ``38.5 ms``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, NamedTuple

from turnkey_like import units
from turnkey_like.records import SCHEMA_VERSION, STAGES, BuildRecord, now_utc
from turnkey_like.records.report import (  # noqa: F401 - report_row, format_labels, csv_line: also imported from here
    LATENCY_STATS,
    REPORT_KEYS,
    ReportRow,
    csv_line,
    format_labels,
    report_row,
)


class Column(NamedTuple):
    """One report column: its row key (CSV header, JSON key), its title for people, and its kind.

    ``kind`` decides how :func:`human` shows a value: ``text`` and ``int`` as they are, ``count`` with
    a decimal SI prefix (``25.6 M``), ``intensity`` in FLOPs/byte (3 significant digits), ``ms`` and
    ``s`` with their unit (``38.5 ms``, ``12.4 s``), ``rate`` (per second, the unit in the title) with an
    SI prefix, ``fraction`` (0-1) as a percentage.
    """

    key: str
    title: str
    kind: str = "text"


#: The report's columns, in order.
COLUMN_LIST: tuple[Column, ...] = (
    Column("build_name", "Build"),
    Column("script", "Script"),
    Column("model", "Model"),
    Column("class", "Class"),
    Column("labels", "Labels"),
    Column("author", "Author"),
    Column("task", "Task"),
    Column("params", "Params", "count"),
    Column("model_hash", "Model hash"),
    Column("invocation_hash", "Invocation hash"),
    Column("input_shapes", "Inputs"),
    Column("macs", "MACs", "count"),
    Column("flops", "FLOPs (1 MAC = 2 FLOPs)", "count"),
    Column("arithmetic_intensity", "Arithmetic intensity (FLOPs/byte)", "intensity"),
    Column("hardware", "Hardware profile"),
    Column("bound", "Bound"),
    Column("runtime", "Runtime"),
    Column("runtime_version", "Runtime version"),
    Column("execution_provider", "Execution provider"),
    Column("device", "Device"),
    Column("device_name", "Device name"),
    Column("precision", "Precision"),
    Column("opset", "Opset", "int"),
    Column("exporter", "Exporter"),
    Column("batch_size", "Batch", "int"),
    *(Column(f"latency_{s}_ms", f"Latency {s}", "ms") for s in LATENCY_STATS),
    Column("throughput_ips", "Throughput (inferences/s)", "rate"),
    Column("top_layers", "Top layers by measured time"),
    Column("efficiency", "Efficiency (roofline ÷ latency)", "fraction"),
    Column("unattributed_share", "Unattributed time (per-layer run)", "fraction"),
    Column("benchmark_reused", "Benchmark reused"),
    Column("benchmark_run_id", "Benchmark measured by run"),
    *(c for s in STAGES for c in (Column(f"{s}_status", f"{s.capitalize()} status"),
                                  Column(f"{s}_duration_s", f"{s.capitalize()} duration", "s"))),
    Column("error", "Error"),
    Column("tk_version", "tk version"),
    Column("cpu", "CPU"),
    Column("os", "OS"),
    Column("torch", "torch"),
    Column("onnxruntime", "onnxruntime"),
    Column("updated_at", "Updated (UTC)"),
)

#: Row key -> column, in column order.
COLUMNS: dict[str, Column] = {c.key: c for c in COLUMN_LIST}

#: Row keys (CSV header, JSON keys), in column order: the row's own (``records.REPORT_KEYS``).
ROW_KEYS: tuple[str, ...] = REPORT_KEYS
if tuple(COLUMNS) != ROW_KEYS:  # a row field without a column, or a column without a field
    raise ImportError(f"report columns {tuple(COLUMNS)} do not match ReportRow's fields {ROW_KEYS}")

FORMATS = ("csv", "json", "md")
MARKDOWN_NOTE = ("MACs are multiply-accumulates (1 MAC = 2 FLOPs); counts use decimal SI prefixes "
                 "(k = 10^3, M = 10^6, G = 10^9, T = 10^12); arithmetic intensity in FLOPs/byte; "
                 "throughput in inferences/s counting the batch.")

#: Row keys that, with ``build_name``, identify one evaluation whatever cache it was read from.
IDENTITY_KEYS = ("build_name", "invocation_hash", "model_hash", "cpu", "os", "torch", "onnxruntime",
                 "runtime", "runtime_version", "execution_provider", "device", "precision")

#: One report row (see :class:`~turnkey_like.records.ReportRow`).
Row = ReportRow


def csv_sort_key(script: str | None, model: str | None, build_name: str | None, updated_at: str | None) -> tuple:
    """The key :func:`report_rows` and :func:`merge_rows` sort rows by, from those four values."""
    return (script or "", model or "", build_name or "", updated_at or "")


def _sort_key(row: Row) -> tuple:
    return csv_sort_key(row.script, row.model, row.build_name, row.updated_at)


def report_rows(records: Iterable[BuildRecord]) -> list[Row]:
    """Return one row per record (:func:`~turnkey_like.records.report_row`), sorted by script, model,
    build name."""
    rows = [report_row(r) for r in records]
    rows.sort(key=_sort_key)
    return rows


def row_identity(row: Row) -> tuple:
    """The key that makes two rows the same evaluation: build name + invocation, system and runtime."""
    return tuple("" if row[k] is None else str(row[k]) for k in IDENTITY_KEYS)


def merge_rows(*row_lists: Iterable[Row]) -> list[Row]:
    """Merge rows from several caches: one row per :func:`row_identity`, the most recently updated kept.

    On equal ``updated_at`` the row from the later list wins (``tk report --cache-dir A --cache-dir B``:
    B's). The result is sorted like :func:`report_rows`. One list (one cache, where build names are
    unique) is only sorted.
    """
    if len(row_lists) == 1:
        out = list(row_lists[0])
        out.sort(key=_sort_key)
        return out
    best: dict[tuple, Row] = {}
    for rows in row_lists:
        for row in rows:
            key = row_identity(row)
            if key not in best or (row.updated_at or "") >= (best[key].updated_at or ""):
                best[key] = row
    out = list(best.values())
    out.sort(key=_sort_key)
    return out


def human(key: str, value: Any) -> str:
    """A row value as people read it (the Markdown table, ``tk cache stats``), per its column's kind.

    ``None`` is ``""``. Numbers go through :mod:`turnkey_like.units` (decimal SI prefixes).
    """
    if value is None:
        return ""
    kind = COLUMNS[key].kind if key in COLUMNS else "text"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if kind == "count":
        return units.si(value)
    if kind == "intensity":
        return units.format_intensity(value)
    if kind == "ms":
        return units.format_ms(value)
    if kind == "s":
        return units.format_seconds(value)
    if kind == "rate":
        return units.si(value)
    if kind == "fraction":
        return f"{value:.1%}"
    return str(value) if isinstance(value, int) else f"{value:.6g}"


#: Characters a Markdown table cell escapes: HTML's (a label ``<script>`` or ``<img onerror=...>`` is
#: shown, never run: GitHub-flavoured Markdown passes raw HTML through), the table's pipe, and the
#: brackets of a link (``[text](javascript:...)``) and the backslash that would escape them.
_MD_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\\": "\\\\",
                             "|": "\\|", "[": "\\[", "]": "\\]", "`": "\\`", "\r": " ", "\n": " "})


def md_text(text: str) -> str:
    """``text`` as one Markdown table cell that shows exactly that text: HTML escaped (``&lt;script&gt;``),
    pipes, link brackets, backticks and backslashes escaped with a backslash, line breaks as spaces."""
    return text.translate(_MD_ESCAPES)


def _md_cell(key: str, value: Any) -> str:
    return md_text(human(key, value))


def render_markdown(rows: list[Row]) -> str:
    """Return the rows as a GitHub-flavoured Markdown table (titles from :data:`COLUMNS`, values by
    :func:`human`, each escaped by :func:`md_text`) under a line stating the units."""
    keys = list(COLUMNS)
    lines = [
        MARKDOWN_NOTE,
        "",
        "| " + " | ".join(COLUMNS[k].title for k in keys) + " |",
        "|" + "|".join("---" for _ in keys) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(k, v) for k, v in zip(keys, row.values())) + " |")
    return "\n".join(lines) + "\n"


def render_csv(rows: list[Row]) -> str:
    """Return the rows as CSV: a header of row keys, then one :func:`~turnkey_like.records.csv_line`
    per row (plain numbers in base units, ``None`` empty, text a spreadsheet would evaluate
    neutralised as OWASP recommends: see :func:`~turnkey_like.records.report.csv_cell`)."""
    import io

    out = io.StringIO(newline="")
    _write_csv(rows, out)
    return out.getvalue()


def _write_csv(rows: Iterable[Row], stream) -> None:
    """Write the rows as CSV (see :func:`render_csv`) to a text stream opened with ``newline=""``."""
    stream.write(_csv_header())
    stream.writelines(map(csv_line, rows))


def _csv_header() -> str:
    """The CSV header line: the row keys, comma-separated (none needs quoting), ``\n`` ended."""
    return ",".join(ROW_KEYS) + "\n"


def write_csv_lines(lines: Iterable[str], path: str | Path) -> Path:
    """Write a CSV report from rows already encoded by :func:`~turnkey_like.records.csv_line` (the
    cache index keeps each row's line), in the order given, under the header: the same file
    :func:`write_report` writes from the rows. Returns the path.

    Raises:
        OSError: the file cannot be written.
    """
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(_csv_header())
        f.writelines(lines)
    return path


def render_json(rows: list[Row]) -> bytes:
    """Return the rows as a JSON document (indented), with the format's version.

    Layout: ``{"schema_version": N, "tk_version": ..., "created_at": ISO-8601 UTC,
    "columns": {key: title}, "rows": [{key: value}, ...]}``; numbers in base units, missing values
    ``null``. ``schema_version`` is :data:`turnkey_like.records.SCHEMA_VERSION`.
    """
    import msgspec

    from turnkey_like import __version__
    from turnkey_like.records import encode

    doc = {"schema_version": SCHEMA_VERSION, "tk_version": __version__, "created_at": now_utc(),
           "columns": {k: c.title for k, c in COLUMNS.items()}, "rows": rows}
    return msgspec.json.format(encode(doc), indent=1)


def format_from_path(path: str | Path, default: str = "csv") -> str:
    """Return the report format named by a path's extension (``.csv``, ``.json``, ``.md``), else ``default``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"markdown": "md"}.get(suffix, suffix) if suffix in FORMATS or suffix == "markdown" else default


def write_report(rows: list[Row], path: str | Path, fmt: str | None = None) -> Path:
    """Write rows to ``path`` as ``csv`` (:func:`render_csv`), ``json`` (:func:`render_json`) or
    ``md`` (:func:`render_markdown`).

    ``fmt`` defaults to the path's extension, else ``csv``. Returns the path written.

    Raises:
        InputError: unknown format.
        OSError: the file cannot be written (the CLI turns it into a one-line error).
    """
    from turnkey_like.errors import InputError

    path = Path(path)
    fmt = (fmt or format_from_path(path)).lower()
    if fmt == "markdown":
        fmt = "md"
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as f:  # streamed: 100,000 rows are 150 MB of text
            _write_csv(rows, f)
    elif fmt == "json":
        path.write_bytes(render_json(rows) + b"\n")
    else:
        path.write_text(render_markdown(rows), encoding="utf-8")
    return path
