"""Terminal renderers of a :class:`~turnkey_like.records.Characterization` (``tk profile``).

They only format numbers already in the record (computed once by ``characterize``); nothing here
counts, sums or classifies. Units follow :mod:`turnkey_like.units`: MACs and FLOPs with SI prefixes
(1 MAC = 2 FLOPs), bytes with decimal SI prefixes (1 MB = 10^6 bytes, matching GB/s bandwidths),
arithmetic intensity in FLOPs/byte, roofline time in ns/µs/ms/s.
"""

from __future__ import annotations

import msgspec

from turnkey_like.records import Characterization, HardwareProfile, Invocation, PerLayerResult, TraceSummary
from turnkey_like.report.breakdown import breakdown_rows
from turnkey_like.report.measured import NOISY_NOTE, MeasuredRun, measured_run, percent
from turnkey_like.report.text import MAC_NOTE, Section, short_op
from turnkey_like.report.top_ops import op_groups
from turnkey_like.units import format_bytes, format_intensity, format_ms, format_seconds, format_shapes, si

def _table(title: str, columns: list[tuple[str, str]]) -> Section:
    return Section(title, columns)


def _hw_name(char: Characterization) -> str:
    return char.hardware.description or char.hardware.name


def trace_text(trace: TraceSummary) -> str:
    """The trace in a few words: ``fx.symbolic_trace (52 nodes)``, ``not traced``, or ``none (WHY)``
    with the one-line reason every method failed."""
    if trace.method == "none":
        return f"none ({trace.failure_reason})"
    if trace.method == "not traced":
        return trace.method
    return f"{trace.method} ({trace.node_count} nodes)"


def hardware_text(hw: HardwareProfile) -> str:
    """A profile in one line: its name, and for a measured one (``local``) the measured peaks and the
    thread count they were measured with."""
    text = hw.description or hw.name
    if hw.measured:
        text += (f" · measured with {hw.threads} thread(s): {si(hw.peak('float32'))}FLOP/s fp32 matmul, "
                 f"{format_bytes(hw.memory_bandwidth)}/s stream copy")
    return text


def invocation_per_layer(inv: Invocation, runtime: str | None = None) -> MeasuredRun | None:
    """The per-layer run ``tk profile`` shows for an invocation (measured now or kept from an earlier
    run): the latest, or the one ``runtime`` (``--runtime``) names, with the others
    (:func:`turnkey_like.report.measured.measured_run`); ``None`` when it has none."""
    return measured_run(inv, runtime)


def render_profile(char: Characterization, console, *, showshape: bool = False, top: int = 10,
                   max_depth: int | None = None, per_layer: MeasuredRun | None = None,
                   phase: str | None = None, fold: bool = True) -> None:
    """Print the full characterization of one model call to a rich ``console``.

    Sections, one function each: the heading (:func:`render_heading`), the per-module table
    (:func:`render_modules`: hierarchical, indented by depth; MACs, FLOPs, params, bytes,
    arithmetic intensity, bound, roofline time), the measured sections when ``per_layer`` is given
    (:func:`render_measured`), the summary (:func:`render_summary`), the bottleneck breakdown
    (:func:`render_breakdown`: share of roofline time by op category and by bound), the ``top``
    slowest ops (:func:`render_top_ops`, with input/output shapes when ``showshape``), and the ops
    that were not counted (:func:`render_uncounted`). ``max_depth`` hides deeper modules (their
    numbers stay inside their parents'). ``fold`` (``tk profile``'s default; ``--no-fold`` turns it
    off) prints each run of identical blocks as its first block and one row for the rest
    (:func:`render_modules`). Every header states "1 MAC = 2 FLOPs".

    ``phase``: ``decode`` prints, for a generation, the decode phase's per-module table (summed over
    its steps) after the phase table, and nothing more (the op tables are the prefill's).

    ``per_layer`` (the ``--per-layer`` run of the same invocation a view shows, see
    :func:`invocation_per_layer`) adds "Measured" (the module and everything below it, ms per
    iteration; for the model, the timed runs' mean latency) and "% of roof" (predicted ÷ measured,
    on the profile the run measured on: ``PerLayerResult.module_measure``) to the per-module table, a
    "Measured" column to the top ops, and a section of measured time by category and the rows
    measured faster than their roof. The heading says which run it is and names the others.
    """
    result = per_layer.per_layer if per_layer is not None else None
    render_heading(char, console, per_layer)
    if char.generation is not None:
        from turnkey_like.report.generation import render_generation

        render_generation(char.generation, console)
        decode = char.generation.phase("decode")
        if phase == "decode" and decode is not None:  # the decode phase's modules, summed over its steps
            render_modules(msgspec.structs.replace(char, modules=decode.modules), console, max_depth=max_depth,
                           title=f"Per module, decode phase: the sum over its {decode.steps} steps", fold=fold)
            return
    render_modules(char, console, max_depth=max_depth, per_layer=result, fold=fold)
    if result is not None:
        render_measured(result, console)
    render_summary(char, console)
    render_breakdown(char, console)
    if top:
        render_top_ops(char, console, top=top, showshape=showshape, per_layer=result)
    render_uncounted(char, console)


def render_heading(char: Characterization, console, measured: MeasuredRun | None = None) -> None:
    """The lines above the tables: the call (class, inputs, dtype, where counted, trace), the
    hardware profile with its ridge point, and with ``measured`` which run is shown (and the others),
    how its times were measured, and the whole model's % of roof (``PerLayerResult.model_efficiency``)."""
    from rich.text import Text

    inputs = ", ".join(f"{k}: {format_shapes([v.shape])} {v.dtype}" for k, v in char.inputs.items())
    console.print(Text(
        f"{char.model_class} ({inputs}) · dtype {char.dtype} · counted on {char.device}"
        f"{' (no weights)' if char.no_weights else ''} · trace: {trace_text(char.trace)}"
    ))
    console.print(Text(f"Hardware: {hardware_text(char.hardware)} · ridge point {char.ridge_point:.3g} FLOPs/B"
                       f" · {MAC_NOTE}"))
    for warning in char.hardware.warnings:
        console.print(Text(f"  note: {warning}"))
    if measured is None:
        return
    console.print(Text(f"Measured: {measured.note()}"))
    per_layer = measured.per_layer
    if per_layer is None:
        return
    roof = hardware_text(per_layer.hardware) if per_layer.hardware is not None else "no profile for this device"
    console.print(Text(
        f"  {per_layer.method}, {per_layer.iterations} profiled run(s), "
        f"{format_ms(per_layer.wall_ms)} per run, {per_layer.unattributed_share:.1%} unattributed · "
        f"% of roof on {roof}"))
    whole = per_layer.module_measure("")
    if whole.efficiency is not None:
        console.print(Text(f"  whole model: {percent(whole.efficiency)} of roof (roofline {format_ms(whole.predicted_ms)}"
                           f" ÷ mean latency {format_ms(whole.measured_ms)} of the timed runs)"))
    if per_layer.hardware is not None and per_layer.hardware != char.hardware:  # the same profile's notes are above
        for warning in per_layer.hardware.warnings:
            console.print(Text(f"  note: {warning}"))
    for warning in measured.bench.warnings:
        console.print(Text(f"  note: {warning}"))
    if per_layer.noisy:
        console.print(Text(f"  {NOISY_NOTE}"))


def render_modules(char: Characterization, console, *, max_depth: int | None = None,
                   per_layer: PerLayerResult | None = None, title: str = "Per module", fold: bool = True) -> None:
    """The per-module table (modules deeper than ``max_depth`` hidden); with ``per_layer``, the
    "Measured" and "% of roof" columns. ``title`` starts the table's title.

    With ``fold``, each run of identical blocks (:meth:`Characterization.identical_runs`: a 70B
    Llama's 80 decoder layers, BERT's 12) prints its first block in full, then one row for the
    others (``1 … 79``, class ``LlamaDecoderLayer ×79, each as 0``) with each block's figures, which
    are the first block's; the parent's row holds them all. Without it every block prints (1,050
    rows for the 70B Llama against 30).
    """
    measured = per_layer
    folded = _folded_blocks(char) if fold else {}
    columns = [("Module", "left"), ("Class", "left"), ("MACs", "right"), ("FLOPs", "right"), ("Params", "right"),
               ("Bytes", "right"), ("AI (FLOPs/B)", "right"), ("Bound", "left"), ("Time", "right")]
    if measured is not None:
        columns += [("Measured", "right"), ("% of roof", "right")]
    table = _table(
        f"{title} ({MAC_NOTE}; bytes = read + written, unfused; time = roofline estimate on {_hw_name(char)}"
        + ("; measured = the module and below, per iteration; (model) = the timed runs' mean latency"
           if measured is not None else "") + ")",
        columns,
    )
    by_path = {m.path: m for m in char.modules} if folded else {}
    hidden: tuple[str, ...] = ()  # the paths of the blocks folded into the row printed last
    for m in char.modules:
        if max_depth is not None and m.depth > max_depth:
            continue
        if hidden and any(m.path == p or m.path.startswith(p + ".") for p in hidden):
            continue
        name = "(model)" if m.path == "" else m.path.rsplit(".", 1)[-1]
        class_name = m.class_name
        run = folded.get(m.path)
        if run is not None:  # the second block of a folded run: one row for it and the rest
            hidden = tuple(run.paths[1:])
            first = run.paths[0].rsplit(".", 1)[-1]
            name = f"{name} … {run.paths[-1].rsplit('.', 1)[-1]}" if len(hidden) > 1 else name
            class_name = f"{run.class_name} ×{len(hidden)}, each as {first}"
            m = by_path[run.paths[0]]
        cells = [
            "  " * m.depth + name, class_name, si(m.macs), si(m.flops), si(m.params),
            format_bytes(m.bytes), format_intensity(m.arithmetic_intensity), m.bound,
            format_seconds(m.roofline_time_s),
        ]
        if measured is not None:
            row = measured.module_measure(m.path)
            cells += ["" if row is None or row.measured_ms is None else format_ms(row.measured_ms),
                      "" if row is None else percent(row.efficiency, row.noisy)]
        table.add_row(*cells)
    table.print(console)


def _folded_blocks(char: Characterization) -> dict:
    """The path of each folded run's second block -> the run (:meth:`Characterization.identical_runs`,
    outermost first; a run inside another's folded blocks is already hidden)."""
    out: dict = {}
    for run in char.identical_runs():
        if len(run.paths) > 1:
            out.setdefault(run.paths[1], run)
    return out


def render_summary(char: Characterization, console) -> None:
    """The summary table: parameters, MACs, FLOPs, bytes, intensity, bound, roofline time, ops, fusion."""
    t = char.totals
    summary = _table(f"Summary ({MAC_NOTE})", [("Quantity", "left"), ("Value", "right")])
    fus = char.fusion.summary
    for label, value in (
        ("Parameters", f"{si(t.params)} ({format_bytes(t.param_bytes)})"),
        ("MACs", si(t.macs)),
        ("MACs in conv/matmul/attention", si(t.conv_matmul_macs)),
        ("FLOPs", si(t.flops)),
        ("Bytes read", format_bytes(t.bytes_read)),
        ("  of which weights", format_bytes(t.weight_bytes)),
        ("Bytes written", format_bytes(t.bytes_written)),
        ("Arithmetic intensity", f"{format_intensity(t.arithmetic_intensity)} FLOPs/B"),
        ("Ridge point", f"{char.ridge_point:.3g} FLOPs/B"),
        ("Bound", t.bound),
        ("Roofline time", format_seconds(t.roofline_time_s)),
        ("Ops", f"{t.ops} ({t.uncounted_ops} not counted)"),
        ("Fusion groups (ops)", f"{fus.groups} ({fus.fused_ops})"),
        ("Traffic removed by fusion", f"{format_bytes(fus.removed_bytes)} ({fus.removed_fraction:.1%})"),
        ("AI after fusion", f"{format_intensity(fus.arithmetic_intensity_fused)} FLOPs/B"),
    ):
        summary.add_row(label, value)
    summary.print(console)


def render_breakdown(char: Characterization, console) -> None:
    """The two "Bottlenecks" tables: share of roofline time by op category, then by bound
    (rows from :func:`turnkey_like.report.breakdown.breakdown_rows`)."""
    titles = {"category": f"Bottlenecks: share of roofline time by category ({MAC_NOTE})",
              "bound": f"Bottlenecks: share of roofline time by bound on {_hw_name(char)}"}
    for axis, title in titles.items():
        table = _table(title, [(axis.capitalize(), "left"), ("Ops", "right"), ("FLOPs", "right"), ("Bytes", "right"),
                               ("Time", "right"), ("Share", "right")])
        for row in breakdown_rows(char, axis):
            table.add_row(row.name, row.ops, row.flops, row.bytes, row.time, row.share)
        table.print(console)


def render_top_ops(char: Characterization, console, *, top: int = 10, showshape: bool = False,
                   per_layer: PerLayerResult | None = None) -> None:
    """The ``top`` groups of identical ops (same op, shapes and dtype: :func:`turnkey_like.report.top_ops.op_groups`)
    by total roofline time, with their shapes when ``showshape``; "#" is the first node's number
    (``OpRow.index``, as ``tk explore`` and the HTML page number it), "×" the count; each op's FLOPs,
    bytes, AI and time, the group's total, and with ``per_layer`` its measured time (all its ops).
    Ops are named as ``tk explore`` names them (``convolution``: :func:`turnkey_like.report.text.short_op`)."""
    measured = per_layer is not None and bool(per_layer.op_ms)
    cols = [("#", "right"), ("×", "right"), ("Op", "left"), ("Module", "left"), ("Category", "left")]
    if showshape:
        cols += [("Input shapes", "left"), ("Output shapes", "left")]
    cols += [("FLOPs", "right"), ("Bytes", "right"), ("AI", "right"), ("Bound", "left"), ("Time", "right"),
             ("Total", "right")]
    if measured:
        cols.append(("Measured", "right"))
    groups = op_groups(char, top)
    ops = _table(f"Top {len(groups)} ops by roofline time, identical op and shapes grouped (× ops; FLOPs, bytes "
                 f"and time are each op's; total = all of them{'; measured = all of them, per iteration' if measured else ''};"
                 f" {MAC_NOTE})", cols)
    for g in groups:
        r = g.first
        cells = [str(r.index), str(g.count), short_op(r.op), g.modules(), r.category]
        if showshape:
            cells += [format_shapes(r.input_shapes), format_shapes(r.output_shapes)]
        cells += [si(r.flops), format_bytes(r.bytes), format_intensity(r.arithmetic_intensity), r.bound,
                  format_seconds(r.roofline_time_s), format_seconds(g.total_s)]
        if measured:
            total = g.measured_ms(per_layer)
            cells.append(("~" if g.noisy(per_layer) else "") + format_ms(total))
        ops.add_row(*cells)
    ops.print(console)


def render_uncounted(char: Characterization, console) -> None:
    """The ops that were not counted (op and calls), or "none"; then any symbolic dimensions."""
    from rich.text import Text

    if char.uncounted:
        unc = _table("Ops not counted (no formula; 0 FLOPs assumed, bytes still counted)",
                     [("Op", "left"), ("Calls", "right")])
        for op, n in char.uncounted.items():
            unc.add_row(op, str(n))
        unc.print(console)
    else:
        console.print(Text("Ops not counted: none"))
    if char.symbolic_dims:
        console.print(Text(f"Symbolic dimensions (kept symbolic, not taken as 1): {', '.join(char.symbolic_dims)}"))


def render_measured(per_layer: PerLayerResult, console) -> None:
    """The measured-time sections of ``tk profile``: by category, the extra rows, the flagged rows."""
    from rich.text import Text

    cats = _table(
        "Measured by op category (per iteration; predicted = roofline on the profile measured on)",
        [("Category", "left"), ("Measured", "right"), ("Share", "right"), ("Predicted", "right"),
         ("% of roof", "right"), ("FLOP/s", "right"), ("Bytes/s", "right")],
    )
    for r in per_layer.categories:
        cats.add_row(r.name, format_ms(r.measured_ms), f"{r.share:.1%}",
                     "" if r.predicted_ms is None else format_ms(r.predicted_ms), percent(r.efficiency, r.noisy),
                     "" if r.attained_flops_s is None else si(r.attained_flops_s),
                     "" if r.attained_bytes_s is None else format_bytes(r.attained_bytes_s))
    for r in per_layer.modules[-2:]:  # unmapped kernels, unattributed
        cats.add_row(r.name, format_ms(r.measured_ms), f"{r.share:.1%}", "", "", "", "")
    cats.add_row("(profiled run)", format_ms(per_layer.wall_ms), "100.0%",
                 "" if per_layer.predicted_ms is None else format_ms(per_layer.predicted_ms), "", "", "")
    cats.print(console)
    console.print(Text(f"Mapping: {per_layer.mapping} ({per_layer.mapping_note})"))
    if per_layer.faster_than_roof:
        console.print(Text("Measured faster than their roof (a profile or counting error): "
                           + ", ".join(n or "(model)" for n in per_layer.faster_than_roof)))


def summary_lines(char: Characterization, build_trace: TraceSummary | None = None) -> list[str]:
    """Return the few lines shown per invocation by ``tk benchmark`` (and ``--analyze-only``).

    MACs and FLOPs (stating 1 MAC = 2 FLOPs), memory traffic, arithmetic intensity and bound on the
    chosen hardware with its ridge point and roofline time, and the trace method (when every method
    failed, ``Trace: none (...)`` says why in one line). Formats only.

    ``build_trace``: the ONNX build's trace (``BuildResult.trace``), shown as the ``Trace:`` line
    with `` (ONNX build)`` when the characterization itself was not traced (the default: only
    ``tk profile --trace`` traces while characterizing).
    """
    t = char.totals
    lines = [
        f"MACs {si(t.macs)} (conv/matmul {si(t.conv_matmul_macs)}) · FLOPs {si(t.flops)} ({MAC_NOTE})"
        f" · params {si(t.params)}",
        f"Memory traffic {format_bytes(t.bytes)} (read {format_bytes(t.bytes_read)}, "
        f"written {format_bytes(t.bytes_written)}; unfused)",
        f"Arithmetic intensity {format_intensity(t.arithmetic_intensity)} FLOPs/B · {t.bound} on {_hw_name(char)} "
        f"(ridge {char.ridge_point:.3g} FLOPs/B) · roofline time {format_seconds(t.roofline_time_s)}",
    ]
    if char.trace.method == "not traced" and build_trace is not None and build_trace.method != "not traced":
        line = f"Trace: {trace_text(build_trace)} (ONNX build)"
    else:
        line = f"Trace: {trace_text(char.trace)}"
    if char.no_weights:
        line += " · counted without weights (meta tensors)"
    if char.uncounted:
        line += f" · not counted: {', '.join(f'{op} x{n}' for op, n in char.uncounted.items())}"
    lines.append(line)
    lines += [f"Hardware note: {warning}" for warning in char.hardware.warnings]
    if char.generation is not None:
        from turnkey_like.report.generation import generation_lines

        lines += generation_lines(char.generation)
    return lines
