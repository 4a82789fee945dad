"""The sweep tables: one row per point of a named model's size sweep (``--batch-size 1,8,32``, ...),
and for generations (``--generate P:N,...``) one row per point and what-if (:func:`render_generation_sweeps`).

Each point is its own invocation; the table lines them up so a user sees how MACs, memory traffic and
arithmetic intensity move with the size, and where the model crosses the hardware's ridge point
(its Bound turns from memory-bound to compute-bound). Latency and throughput appear when the points
were benchmarked. Formatting only: every figure comes from the records.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from turnkey_like.records import ScriptResult, Status
from turnkey_like.units import format_bytes, format_intensity, format_ms, format_seconds, si


def sweeps(results: list[ScriptResult]) -> dict[str, list[ScriptResult]]:
    """Named-model results grouped by the name the user gave, for names run at more than one point."""
    groups: dict[str, list[ScriptResult]] = {}
    for result in results:
        if result.model_request is not None:
            groups.setdefault(result.model_request.name, []).append(result)
    return {name: points for name, points in groups.items() if len(points) > 1}


def render_sweeps(console: Console, results: list[ScriptResult]) -> None:
    """Print one sweep table per named model run at several sizes, then the generation sweeps
    (:func:`render_generation_sweeps`); nothing when there is none."""
    for name, points in sweeps(results).items():
        table = Table(title=f"sweep: {escape(name)} (1 MAC = 2 FLOPs; bytes unfused; time = roofline estimate)",
                      title_justify="left", show_edge=False, pad_edge=False)
        for column in ("batch", "seq", "imgsz", "hash", "MACs", "bytes", "AI (FLOPs/B)", "bound",
                       "roofline", "latency", "throughput"):
            table.add_column(column, justify="left" if column in ("hash", "bound") else "right")
        for result in points:
            request = result.model_request
            sizes = [str(v) if v is not None else "-" for v in (request.batch_size, request.seq_len, request.imgsz)]
            top = [inv for model in result.models for inv in model.invocations]
            if not top:
                table.add_row(*sizes, "-", "-", f"[red]{escape(result.error or 'no model call')}[/]", *[""] * 5)
                continue
            inv = top[0]
            char = inv.characterization.result if inv.characterization.status == Status.SUCCESSFUL else None
            bench = inv.benchmark.result if inv.benchmark.status == Status.SUCCESSFUL else None
            cells = ["-"] * 5
            if char is not None:
                totals = char.totals
                cells = [si(totals.macs), format_bytes(totals.bytes),
                         format_intensity(totals.arithmetic_intensity), totals.bound,
                         format_seconds(totals.roofline_time_s)]
            timing = (["-", "-"] if bench is None else
                      [f"{format_ms(bench.latency_ms.mean)}", f"{bench.throughput_ips:,.1f}/s"])
            table.add_row(*sizes, inv.hash, *cells, *timing)
        console.print()
        console.print(table)
    render_generation_sweeps(console, results)


def render_generation_sweeps(console: Console, results: list[ScriptResult]) -> None:
    """Print one table per model with more than one generation (``--generate 128:128,2048:256
    --batch-size 1,8,64``, crossed with the what-if dtypes): a row per generation and what-if with
    TTFT, TPOT, tokens/s, the bound of each phase, the decode knee and the largest batch that fits."""
    from turnkey_like.report.generation import WHATIF_COLUMNS, generation_points, whatif_cells

    points = generation_points((model.name, inv) for result in results for model, inv in result.invocations())
    by_model: dict[str, list] = {}
    for point in points:
        by_model.setdefault(point.model, []).append(point)
    for name, rows in by_model.items():
        if len({p.invocation for p in rows}) < 2:
            continue
        table = Table(title=f"generation sweep: {escape(name)} (phase-level roofline per device, what-ifs from the "
                            "counted records; 1 MAC = 2 FLOPs; knee: the batch where decode turns compute-bound)",
                      title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                      collapse_padding=True)
        for column, justify in [("P:N", "right"), ("batch", "right"), *WHATIF_COLUMNS]:
            table.add_column(column, justify=justify, no_wrap=True)
        for p in rows:
            table.add_row(f"{p.gen.prompt_tokens}:{p.gen.new_tokens}", str(p.gen.batch_size),
                          *(escape(text) for text, _ in whatif_cells(p.whatif)))
        console.print()
        console.print(table)
