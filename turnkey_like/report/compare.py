"""``tk compare``'s table: a :class:`~turnkey_like.records.Comparison` as labelled text rows, and
those rows in the terminal.

:func:`comparison_table` turns the comparison (computed once by
:func:`turnkey_like.views.compare.comparison`) into ``(quantity, cells)`` rows that the terminal
(:func:`render_comparison`) and the HTML report (``views.html``) both show. Units from
:mod:`turnkey_like.units`; the category shares are the breakdown's rows
(:func:`turnkey_like.report.breakdown.breakdown_row`). Nothing is computed here.

A ratio (``N.NNx``) is printed only where the comparison gives one: never across hardware profiles
(roofline time) or machines (latency, throughput). Each figure that depends on hardware names it:
the "Hardware profile" row for the roofline figures, "Measured on" (the benchmark's device) for the
latencies; a latency whose benchmark carries warnings (a busy machine, a wide spread) is marked
``!`` and its warnings printed under the table.
"""

from __future__ import annotations

from turnkey_like.records import BuildRecord, Comparison, Status
from turnkey_like.report.breakdown import breakdown_row
from turnkey_like.units import format_bytes, format_intensity, format_ms, format_seconds, si

TITLE = "Comparison (1 MAC = 2 FLOPs; ratios to the first, only on the same hardware)"
#: What marks a latency whose benchmark has warnings.
WARNED = "!"


def _ratio(value: float | None) -> str:
    return "" if value is None else f" ({value:.2f}x)"


def _warnings(record: BuildRecord | None) -> list[str]:
    """The warnings of a record's successful benchmark (``BenchmarkResult.warnings``)."""
    if record is None or record.invocation.benchmark.status != Status.SUCCESSFUL:
        return []
    bench = record.invocation.benchmark.result
    return list(bench.warnings) if bench is not None else []


def measured_on(record: BuildRecord) -> str | None:
    """``DEVICE NAME (device)`` of a record's successful benchmark (``AMD EPYC (cpu)``), else ``None``:
    the machine a latency belongs to."""
    inv = record.invocation
    bench = inv.benchmark.result if inv.benchmark.status == Status.SUCCESSFUL else None
    return f"{bench.device_name} ({bench.device})" if bench is not None else None


def benchmark_notes(comp: Comparison, records: list[BuildRecord] | None) -> list[str]:
    """One line per warning of each entry's benchmark: ``LABEL: latency marked !: WARNING``."""
    return [f"{e.label}: latency marked {WARNED}: {w}" for e, r in zip(comp.entries, records or [])
            for w in _warnings(r)]


def comparison_table(comp: Comparison, records: list[BuildRecord] | None = None) -> list[tuple[str, list[str]]]:
    """Return the comparison as ``(quantity, [one text cell per entry])`` rows: identity, then the
    figures (with ``(N.NNx)``, the ratio to the first entry, where the comparison gives one), then
    each category's share of roofline time. Units: SI counts (1 MAC = 2 FLOPs), decimal bytes,
    FLOPs/byte, seconds, ms, inferences/s.

    ``records``: the build records of the entries, in the same order (``tk compare`` and the HTML
    page have them): add the "Measured on" row and the ``!`` marks of benchmarks with warnings.
    """
    es = comp.entries
    recs: list[BuildRecord | None] = list(records) if records is not None and len(records) == len(es) else [None] * len(es)
    warned = {e.label for e, r in zip(es, recs) if _warnings(r)}

    def row(title, fmt, key=None):
        return title, [fmt(e) + (_ratio(e.relative.get(key)) if key and e is not es[0] else "") for e in es]

    def latency(e):
        text = format_ms(e.latency_ms) if e.latency_ms is not None else "-"
        return f"{WARNED}{text}" if e.latency_ms is not None and e.label in warned else text

    rows = [
        row("Model", lambda e: f"{e.model} ({e.class_name})"),
        row("Build", lambda e: e.build_name or "-"),
        row("Invocation", lambda e: e.invocation_hash),
        row("Inputs", lambda e: ", ".join(f"{s.name}: {list(s.shape) if s.shape is not None else s.kind} {s.dtype}"
                                         for s in e.signature) or "-"),
        row("Hardware profile", lambda e: e.hardware or "-"),
        row("Parameters", lambda e: si(e.params), "params"),
        row("MACs", lambda e: si(e.macs), "macs"),
        row("FLOPs", lambda e: si(e.flops), "flops"),
        row("Bytes (read + written)", lambda e: format_bytes(e.bytes), "bytes"),
        row("Arithmetic intensity (FLOPs/B)", lambda e: format_intensity(e.arithmetic_intensity)),
        row("Bound", lambda e: e.bound or "-"),
        row("Roofline time", lambda e: format_seconds(e.roofline_time_s) if e.roofline_time_s is not None else "-",
            "roofline_time_s"),
        row("Runtime", lambda e: f"{e.runtime} on {e.device}" if e.runtime else "-"),
        *([("Measured on", [(measured_on(r) if r is not None else None) or "-" for r in recs])] if any(recs) else []),
        row("Latency mean", latency, "latency_ms"),
        row("Throughput (inferences/s)", lambda e: f"{e.throughput_ips:,.1f}" if e.throughput_ips is not None else "-",
            "throughput_ips"),
    ]
    for cat in comp.categories:
        cells = []
        for e in es:
            part = breakdown_row(cat, e.by_category[cat]) if cat in e.by_category else None
            cells.append(f"{part.share} ({part.time})" if part is not None else "-")
        rows.append((f"  {cat} (share of roofline time)", cells))
    return rows


def render_comparison(comp: Comparison, console, records: list[BuildRecord] | None = None) -> None:
    """Print ``comp`` to a rich ``console``: one column per entry, one row per quantity, then the notes
    (``records``: see :func:`comparison_table`; their benchmarks' warnings are notes too)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=TITLE, title_justify="left")
    table.add_column("Quantity", no_wrap=True)
    for e in comp.entries:
        table.add_column(Text(e.label), justify="right", overflow="fold")
    for title, cells in comparison_table(comp, records):
        table.add_row(Text(title), *(Text(c) for c in cells))
    console.print(table)
    for note in [*comp.notes, *benchmark_notes(comp, records)]:
        console.print(Text(f"note: {note}", style="yellow"))
