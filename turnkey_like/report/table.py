"""Report rows: one flat row per evaluation (cached invocation record), and CSV/JSON/Markdown writers.

:func:`report_rows` only *reads* values the pipeline computed into the records (characterization
totals, build and benchmark results); it never computes a figure, and a value the record lacks is an
empty cell, never a guess. :func:`merge_rows` combines rows from several caches without duplicates.
:func:`write_report` renders rows; it formats, never computes.

Units: MACs are multiply-accumulates and ``1 MAC = 2 FLOPs``; arithmetic intensity is FLOPs per byte
of memory traffic; latencies are milliseconds; throughput is inferences per second (counting the batch);
durations are seconds; parameters are counts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable

STAGES = ("characterization", "build", "benchmark")
LATENCY_STATS = ("mean", "median", "p90", "p99", "min", "max", "std")

#: Row keys in column order, with the title used in Markdown headers.
COLUMNS: dict[str, str] = {
    "build_name": "Build",
    "script": "Script",
    "model": "Model",
    "class": "Class",
    "labels": "Labels",
    "author": "Author",
    "task": "Task",
    "params": "Params",
    "model_hash": "Model hash",
    "invocation_hash": "Invocation hash",
    "input_shapes": "Inputs",
    "macs": "MACs",
    "flops": "FLOPs (1 MAC = 2 FLOPs)",
    "arithmetic_intensity": "Arithmetic intensity (FLOPs/byte)",
    "hardware": "Hardware profile",
    "bound": "Bound",
    "runtime": "Runtime",
    "runtime_version": "Runtime version",
    "execution_provider": "Execution provider",
    "device": "Device",
    "device_name": "Device name",
    "precision": "Precision",
    "opset": "Opset",
    "exporter": "Exporter",
    "batch_size": "Batch",
    **{f"latency_{s}_ms": f"Latency {s} (ms)" for s in LATENCY_STATS},
    "throughput_ips": "Throughput (inferences/s)",
    **{k: v for s in STAGES for k, v in ((f"{s}_status", f"{s.capitalize()} status"), (f"{s}_duration_s", f"{s.capitalize()} duration (s)"))},
    "error": "Error",
    "tk_version": "tk version",
    "cpu": "CPU",
    "os": "OS",
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "updated_at": "Updated (UTC)",
}

FORMATS = ("csv", "json", "md")
ERROR_EXCERPT_CHARS = 300

#: Row keys that, with ``build_name``, identify one evaluation whatever cache it was read from.
IDENTITY_KEYS = ("build_name", "invocation_hash", "model_hash", "cpu", "os", "torch", "onnxruntime",
                 "runtime", "runtime_version", "execution_provider", "device", "precision")


def _get(d, *keys):
    """``d[k1][k2]...`` or ``None`` when any level is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _blank(v):
    return "" if v is None else v


def format_labels(labels: dict[str, list[str]] | None) -> str:
    """Return labels as the line-1 pragma writes them: ``key::v1,v2 key2::v``."""
    return " ".join(f"{k}::{','.join(str(x) for x in (v or []))}" for k, v in (labels or {}).items())


def _format_inputs(signature) -> str:
    parts = []
    for spec in signature:
        if spec.shape is None:
            parts.append(f"{spec.name}: {spec.dtype}")
        else:
            parts.append(f"{spec.name}: ({', '.join(str(d) for d in spec.shape)}) {spec.dtype}")
    return "; ".join(parts)


def _error_excerpt(inv) -> str:
    for name, stage in inv.stages().items():
        status = getattr(stage.status, "value", stage.status)
        if status in ("error", "timeout", "killed"):
            text = f"{name} {status}: {stage.error or ''}".rstrip(": ")
            if stage.log_excerpt:
                last = [ln for ln in str(stage.log_excerpt).strip().splitlines() if ln.strip()]
                if last and last[-1].strip() not in text:
                    text += f" | {last[-1].strip()}"
            text = " ".join(text.split())
            return text if len(text) <= ERROR_EXCERPT_CHARS else text[: ERROR_EXCERPT_CHARS - 3] + "..."
    return ""


def report_row(record) -> dict:
    """Return one flat report row (keys :data:`COLUMNS`, in order) for one :class:`BuildRecord`.

    Values come from the record only; missing ones are ``""``.
    """
    inv = record.invocation
    model = record.model
    labels = record.labels or {}
    charz = inv.characterization.result or {}
    build = inv.build.result or {}
    bench = inv.benchmark.result or {}
    totals = charz.get("totals") if isinstance(charz.get("totals"), dict) else {}
    system = record.system or {}
    latency = bench.get("latency_ms") if isinstance(bench.get("latency_ms"), dict) else {}

    row = {
        "build_name": record.build_name,
        "script": Path(record.script).name if record.script else "",
        "model": model.name,
        "class": model.class_name,
        "labels": format_labels(labels),
        "author": ",".join(labels.get("author") or []),
        "task": ",".join(labels.get("task") or []),
        "params": model.params,
        "model_hash": model.model_hash,
        "invocation_hash": inv.hash,
        "input_shapes": _format_inputs(inv.signature),
        "macs": _blank(totals.get("macs")),
        "flops": _blank(totals.get("flops")),
        "arithmetic_intensity": _blank(totals.get("arithmetic_intensity")),
        "hardware": _blank(_get(charz, "hardware", "name")),
        "bound": _blank(totals.get("bound")),
        "runtime": _blank(bench.get("runtime")),
        "runtime_version": _blank(bench.get("runtime_version")),
        "execution_provider": _blank(bench.get("execution_provider")),
        "device": _blank(bench.get("device")),
        "device_name": _blank(bench.get("device_name")),
        "precision": _blank(bench.get("precision") or build.get("precision")),
        "opset": _blank(build.get("opset")),
        "exporter": _blank(build.get("exporter")),
        "batch_size": _blank(bench.get("batch_size")),
        **{f"latency_{s}_ms": _blank(latency.get(s)) for s in LATENCY_STATS},
        "throughput_ips": _blank(bench.get("throughput_ips")),
    }
    for name, stage in inv.stages().items():
        row[f"{name}_status"] = getattr(stage.status, "value", stage.status)
        row[f"{name}_duration_s"] = _blank(stage.duration_s)
    row["error"] = _error_excerpt(inv)
    row["tk_version"] = record.tk_version or ""
    for key in ("cpu", "os", "torch", "onnxruntime"):
        row[key] = _blank(system.get(key))
    row["updated_at"] = record.updated_at or ""
    return {k: row[k] for k in COLUMNS}


def report_rows(records: Iterable) -> list[dict]:
    """Return one row per record (see :func:`report_row`), sorted by script, model, build name."""
    rows = [report_row(r) for r in records]
    rows.sort(key=lambda r: (r["script"], r["model"], r["build_name"], r["updated_at"]))
    return rows


def row_identity(row: dict) -> tuple:
    """The key that makes two rows the same evaluation: build name + invocation, system and runtime."""
    return tuple(str(row.get(k, "")) for k in IDENTITY_KEYS)


def merge_rows(*row_lists: Iterable[dict]) -> list[dict]:
    """Merge rows from several caches: one row per :func:`row_identity`, the most recently updated kept.

    On equal ``updated_at`` the row from the later list wins (``tk report --cache-dir A --cache-dir B``:
    B's).
    The result is sorted like :func:`report_rows`.
    """
    best: dict[tuple, dict] = {}
    for rows in row_lists:
        for row in rows:
            key = row_identity(row)
            if key not in best or str(row.get("updated_at", "")) >= str(best[key].get("updated_at", "")):
                best[key] = row
    out = list(best.values())
    out.sort(key=lambda r: (r["script"], r["model"], r["build_name"], r["updated_at"]))
    return out


def _md_cell(v) -> str:
    if isinstance(v, float):
        text = f"{v:.6g}"
    else:
        text = str(v)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def render_markdown(rows: list[dict]) -> str:
    """Return the rows as a GitHub-flavoured Markdown table (titles from :data:`COLUMNS`)."""
    keys = list(COLUMNS)
    lines = [
        "MACs are multiply-accumulates (1 MAC = 2 FLOPs); latency in ms; throughput in inferences/s.",
        "",
        "| " + " | ".join(COLUMNS[k] for k in keys) + " |",
        "|" + "|".join("---" for _ in keys) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(row.get(k, "")) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def format_from_path(path: str | Path, default: str = "csv") -> str:
    """Return the report format named by a path's extension (``.csv``, ``.json``, ``.md``), else ``default``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"markdown": "md"}.get(suffix, suffix) if suffix in FORMATS or suffix == "markdown" else default


def write_report(rows: list[dict], path: str | Path, fmt: str | None = None) -> Path:
    """Write rows to ``path`` as ``csv`` (header = row keys), ``json`` (a list of rows) or ``md``.

    ``fmt`` defaults to the path's extension, else ``csv``. Returns the path written.

    Raises:
        InputError: unknown format.
        OSError: the file cannot be written (the CLI turns it into a CacheError-style message).
    """
    from turnkey_like.errors import InputError

    path = Path(path)
    fmt = (fmt or format_from_path(path)).lower()
    if fmt == "markdown":
        fmt = "md"
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "json":
        with open(path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")
    else:
        path.write_text(render_markdown(rows), encoding="utf-8")
    return path
