"""Report rows: one flat row per evaluation (a cached :class:`BuildRecord`), and CSV/JSON/Markdown writers.

:func:`report_rows` only *reads* values the pipeline computed into the typed records (the
characterization's totals, the build and benchmark results); it never computes a figure, and a value
the record lacks is ``None`` (an empty CSV cell, ``null`` in JSON, blank in Markdown), never a guess.
:func:`merge_rows` combines rows from several caches without duplicates. :func:`write_report` and
:func:`render_markdown` render rows; they format, never compute.

Units: a row holds plain numbers in base units, as the records do: MACs are multiply-accumulates and
``1 MAC = 2 FLOPs``; arithmetic intensity is FLOPs per byte of memory traffic; latencies are
milliseconds (``*_ms``); throughput is inferences per second counting the batch; durations are seconds
(``*_s``); parameters are counts. CSV and JSON keep those numbers; the Markdown table (for people)
formats them with :mod:`turnkey_like.units` (decimal SI prefixes: ``4.09 G`` MACs, ``38.5 ms``).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from turnkey_like import units
from turnkey_like.records import SCHEMA_VERSION, STAGES, BuildRecord, Invocation, TensorSpec, now_utc

LATENCY_STATS = ("mean", "median", "p90", "p99", "min", "max", "std")


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

#: Row keys, in column order.
ROW_KEYS: tuple[str, ...] = tuple(COLUMNS)

#: Version of what :func:`report_row` puts in a row. The cache index stores rows
#: (``turnkey_like.cache_index``) and uses only those of its own format, which includes this number,
#: the tk version and the column keys: bump it whenever a row's values change for the same record.
ROW_VERSION = 2

FORMATS = ("csv", "json", "md")
ERROR_EXCERPT_CHARS = 300
MARKDOWN_NOTE = ("MACs are multiply-accumulates (1 MAC = 2 FLOPs); counts use decimal SI prefixes "
                 "(k = 10^3, M = 10^6, G = 10^9, T = 10^12); arithmetic intensity in FLOPs/byte; "
                 "throughput in inferences/s counting the batch.")

#: Row keys that, with ``build_name``, identify one evaluation whatever cache it was read from.
IDENTITY_KEYS = ("build_name", "invocation_hash", "model_hash", "cpu", "os", "torch", "onnxruntime",
                 "runtime", "runtime_version", "execution_provider", "device", "precision")

Row = dict[str, Any]


def format_labels(labels: dict[str, list[str]] | None) -> str:
    """Return labels as the line-1 pragma writes them: ``key::v1,v2 key2::v``."""
    return " ".join(f"{k}::{','.join(str(x) for x in (v or []))}" for k, v in (labels or {}).items())


def _format_inputs(signature: list[TensorSpec]) -> str:
    """``name: (d0, d1) dtype; ...`` in signature (hash) order; non-tensors by their type name."""
    parts = []
    for spec in signature:
        if spec.shape is None:
            parts.append(f"{spec.name}: {spec.dtype}")
        else:
            parts.append(f"{spec.name}: ({', '.join(str(d) for d in spec.shape)}) {spec.dtype}")
    return "; ".join(parts)


def _error_excerpt(inv: Invocation) -> str | None:
    """``stage status: message | last log line`` of the first failed stage, cut to
    :data:`ERROR_EXCERPT_CHARS`; ``None`` when no stage failed."""
    for name in STAGES:
        stage = getattr(inv, name)
        if not stage.failed:
            continue
        status = stage.status.value
        text = f"{name} {status}: {stage.error or ''}".rstrip(": ")
        if stage.log_excerpt:
            last = [ln for ln in stage.log_excerpt.strip().splitlines() if ln.strip()]
            if last and last[-1].strip() not in text:
                text += f" | {last[-1].strip()}"
        text = " ".join(text.split())
        return text if len(text) <= ERROR_EXCERPT_CHARS else text[: ERROR_EXCERPT_CHARS - 3] + "..."
    return None


#: how many layers the ``top_layers`` column names
TOP_LAYERS = 3


def _top_layers(per_layer) -> str | None:
    """``path ms (% of roof); ...`` of the :data:`TOP_LAYERS` modules with the most own measured time."""
    if per_layer is None:
        return None
    from turnkey_like.runtimes.per_layer import top_measured

    parts = []
    for r in top_measured(per_layer, TOP_LAYERS):
        roof = f", {r.efficiency:.0%} of roof" if r.efficiency is not None else ""
        parts.append(f"{r.name or '(model)'} {units.format_ms(r.measured_ms)}{roof}")
    return "; ".join(parts)


def report_row(record: BuildRecord) -> Row:
    """Return one flat report row (keys of :data:`COLUMNS`, in order) for one :class:`BuildRecord`.

    Values are read from the record only (numbers in base units, see the module doc); a value the
    record lacks is ``None``. Works on full records and on the summaries ``Cache.records()`` returns.
    """
    inv = record.invocation
    model = record.model
    labels = record.labels
    charz = inv.characterization.result
    build = inv.build.result
    bench = inv.benchmark.result
    totals = charz.totals if charz is not None else None
    latency = bench.latency_ms if bench is not None else None
    system = record.system

    row: Row = {
        "build_name": record.build_name,
        "script": os.path.basename(record.script) if record.script else None,
        "model": model.name,
        "class": model.class_name,
        "labels": format_labels(labels),
        "author": ",".join(labels.get("author") or []),
        "task": ",".join(labels.get("task") or []),
        "params": model.params,
        "model_hash": model.model_hash,
        "invocation_hash": inv.hash,
        "input_shapes": _format_inputs(inv.signature),
        "macs": totals.macs if totals else None,
        "flops": totals.flops if totals else None,
        "arithmetic_intensity": totals.arithmetic_intensity if totals else None,
        "hardware": charz.hardware.name if charz else None,
        "bound": totals.bound if totals else None,
        "runtime": bench.runtime if bench else None,
        "runtime_version": bench.runtime_version if bench else None,
        "execution_provider": bench.execution_provider if bench else None,
        "device": bench.device if bench else None,
        "device_name": bench.device_name if bench else None,
        "precision": bench.precision if bench else (build.precision if build else None),
        "opset": build.opset if build else None,
        "exporter": build.exporter if build else None,
        "batch_size": bench.batch_size if bench else None,
        **{f"latency_{s}_ms": getattr(latency, s) if latency else None for s in LATENCY_STATS},
        "throughput_ips": bench.throughput_ips if bench else None,
        "top_layers": _top_layers(bench.per_layer) if bench else None,
        "efficiency": bench.per_layer.efficiency if bench and bench.per_layer else None,
        "unattributed_share": bench.per_layer.unattributed_share if bench and bench.per_layer else None,
        "benchmark_reused": bench.reused if bench else None,
        "benchmark_run_id": inv.benchmark.run_id if bench else None,
    }
    for name in STAGES:
        stage = getattr(inv, name)
        row[f"{name}_status"] = stage.status.value
        row[f"{name}_duration_s"] = stage.duration_s
    row["error"] = _error_excerpt(inv)
    row["tk_version"] = record.tk_version or None
    for key in ("cpu", "os", "torch", "onnxruntime"):
        row[key] = system.get(key)
    row["updated_at"] = record.updated_at
    return row  # built in COLUMNS order


def csv_sort_key(script: str | None, model: str | None, build_name: str | None, updated_at: str | None) -> tuple:
    """The key :func:`report_rows` and :func:`merge_rows` sort rows by, from those four values."""
    return (script or "", model or "", build_name or "", updated_at or "")


def _sort_key(row: Row) -> tuple:
    get = row.get
    return csv_sort_key(get("script"), get("model"), get("build_name"), get("updated_at"))


def report_rows(records: Iterable[BuildRecord]) -> list[Row]:
    """Return one row per record (see :func:`report_row`), sorted by script, model, build name."""
    rows = [report_row(r) for r in records]
    rows.sort(key=_sort_key)
    return rows


def row_identity(row: Row) -> tuple:
    """The key that makes two rows the same evaluation: build name + invocation, system and runtime."""
    return tuple("" if row.get(k) is None else str(row[k]) for k in IDENTITY_KEYS)


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
            if key not in best or (row.get("updated_at") or "") >= (best[key].get("updated_at") or ""):
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


def _md_cell(key: str, value: Any) -> str:
    text = human(key, value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def render_markdown(rows: list[Row]) -> str:
    """Return the rows as a GitHub-flavoured Markdown table (titles from :data:`COLUMNS`, values by
    :func:`human`) under a line stating the units."""
    keys = list(COLUMNS)
    lines = [
        MARKDOWN_NOTE,
        "",
        "| " + " | ".join(COLUMNS[k].title for k in keys) + " |",
        "|" + "|".join("---" for _ in keys) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(k, row.get(k)) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def render_csv(rows: list[Row]) -> str:
    """Return the rows as CSV: a header of row keys, plain numbers in base units, ``None`` empty."""
    out = io.StringIO(newline="")
    _write_csv(rows, out)
    return out.getvalue()


def _write_csv(rows: Iterable[Row], stream) -> None:
    """Write the rows as CSV (see :func:`render_csv`) to a text stream opened with ``newline=""``."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(ROW_KEYS)
    writer.writerows([row.get(k) for k in ROW_KEYS] for row in rows)


def csv_line(row: Row) -> str:
    """One row as the line :func:`render_csv` writes for it (``\\n`` included).

    The cache index stores it with the row, so that `tk report` writes CSV without formatting a
    number again (:func:`write_csv_lines`); CSV has no state from row to row, so the lines joined
    under the header are exactly :func:`render_csv`'s text.
    """
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerow([row.get(k) for k in ROW_KEYS])
    return out.getvalue()


def write_csv_lines(lines: Iterable[str], path: str | Path) -> Path:
    """Write a CSV report from rows already rendered by :func:`csv_line` (in the order given)
    under the header; the same file :func:`write_report` writes from the rows. Returns the path.

    Raises:
        OSError: the file cannot be written.
    """
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerow(ROW_KEYS)
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
