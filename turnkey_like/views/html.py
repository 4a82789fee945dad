"""The HTML report (``tk profile --html PATH``, ``tk benchmark --html PATH``, ``tk report --format html``,
``tk compare --html``): one self-contained page drawn from build records.

The page holds, for the run or the caches: an overview of every model call (one row each), the
comparison of the calls (``views.compare``; its rows from ``report.compare``), and per call its
characterization (totals, bottleneck breakdown: ``report.breakdown``, the hardware profile's trust),
build and benchmark results (with how busy the machine was and the benchmark's warnings), its
dataflow graph (``views.graph``: SVG with pan and zoom; clicking a node highlights its row), its
roofline plot (``views.roofline_plot``, inline SVG), and sortable, filterable per-module and per-op
tables. A call that started a generation (a prefill) shows its phases, predicted TTFT and TPOT and
its what-ifs (``report.generation``); a page with several generations adds the generation sweep
table and its decode-throughput plot (``views.generation_plot``). Nothing is fetched at view time: the CSS and the plain JavaScript (``views/assets/report.*``)
are inlined, the roofline plots are inline SVG.

Measured time sits beside the prediction wherever there is one (``report.measured``): per
``--per-layer`` run of the call (``BenchmarkResult.per_layer_runs``), a card (profiler, whole-model
% of roof, the roof's profile and its warnings), the measured-by-category table, "Measured ms" and
"% of roof" columns in the per-module table, "Measured ms" and "Share" in the per-op table (``~``
marks a time whose spread across runs was above 10%), measured times on the graph's nodes and the
achieved points on the roofline plot. With several runs a selector (``select.tk-run-select``) shows
one run's columns, tables and plot at a time (elements carry ``data-run="K"``; the others are
``hidden``); the page opens on ``--runtime``'s run, else the latest.

The graph is laid out in the page, so writing the page needs no Graphviz program: the page holds
each graph's DOT source (``views.graph.graph_dot``, the same text ``--visualize x.dot`` writes, in a
``<pre class="tk-dot">``), and Graphviz built to WebAssembly (Viz.js, ``views/assets/viz-global.js``,
version :data:`VIZ_JS_VERSION`, inlined once per page that has a graph: 1.33 MB) turns it into inline
SVG when the page opens (``report.js``). The page's ``body`` gets ``data-ready="1"`` once every graph
is laid out (or its failure is shown in place of the graph).

Data comes from the records and from the functions that compute records for views
(``characterize.roofline.roofline_chart``, ``views.compare.comparison``); this module only formats:
every shown number goes through ``turnkey_like.units``, and each numeric cell carries the record's
raw value in ``data-v`` so the page sorts by value, not by text.

Graph node ids (``views.graph``): ``n<row index>`` for an op (``OpRow.index``, shown in the "#"
column as ``tk explore`` and ``tk profile`` show it), ``m<module path>`` for a collapsed module; the
per-op and per-module table rows carry the same id in ``data-node``.
"""

from __future__ import annotations

import html
import re
from importlib import resources
from pathlib import Path
from typing import Iterable

from turnkey_like.errors import InputError, one_line
from turnkey_like.records import BenchmarkResult, BuildRecord, Characterization, Comparison, HardwareProfile, Status
from turnkey_like.report.breakdown import breakdown_rows
from turnkey_like.report.measured import NOISY_NOTE, MeasuredRun, measured_run, ms, percent
from turnkey_like.report.text import MAC_NOTE
from turnkey_like.units import format_bytes, format_intensity, format_ms, format_seconds, format_shapes, si
from turnkey_like.views import call_label

#: Graphs with more op rows than this are drawn collapsed to modules at depth :data:`COLLAPSE_DEPTH`
#: (a browser pans a few hundred boxes smoothly; thousands of them make a page slow to open, and the
#: in-page layout of an 829-node graph, GPT-2 with 48 layers unfolded, takes 1.3-3.8 s under Node.js).
MAX_GRAPH_OPS = 800
COLLAPSE_DEPTH = 2
#: The vendored layout engine (see ``views/assets/THIRD_PARTY_NOTICES.md``): npm ``@viz-js/viz``'s
#: ``dist/viz-global.js``, unmodified, and its SHA-256 (a test checks the file against it).
VIZ_JS = "viz-global.js"
VIZ_JS_VERSION = "3.31.0"
VIZ_JS_SHA256 = "c9e0b310f9883910e01c66054b48b7ff4be3d8695141116635e72b0af152692e"

_PROLOG = re.compile(r"^\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?(<!--.*?-->\s*)*", re.S)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _asset(name: str) -> str:
    return resources.files("turnkey_like.views").joinpath("assets", name).read_text(encoding="utf-8")


def inline_svg(svg: str) -> str:
    """``svg`` without its XML prolog, DOCTYPE and leading comments, ready to sit inside HTML."""
    return _PROLOG.sub("", svg, count=1)


def _run_attr(run: int | None, shown: int) -> str:
    """`` data-run="K"`` (and ``hidden`` unless run K is the one shown) for what belongs to one
    measured run; ``""`` for what belongs to none. ``report.js``'s run selector toggles them."""
    if run is None:
        return ""
    return f' data-run="{run}"' + ("" if run == shown else " hidden")


class _Table:
    """A sortable, filterable HTML table: columns ``(title, numeric)`` or ``(title, numeric, run)``
    (a column of measured run ``run``, hidden unless it is ``shown``), rows of ``(text, raw value)`` cells."""

    def __init__(self, table_id: str, columns: list[tuple], caption: str = "", shown: int = 0):
        self.id, self.caption, self.shown = table_id, caption, shown
        self.columns = [(c[0], c[1], c[2] if len(c) > 2 else None) for c in columns]
        self.rows: list[tuple[str, list[tuple[str, object]]]] = []

    def add(self, cells: list[tuple[str, object]], node: str | None = None, css: dict[int, str] | None = None) -> None:
        attrs = f' data-node="{_e(node)}"' if node is not None else ""
        out = []
        for i, (text, raw) in enumerate(cells):
            _, numeric, run = self.columns[i]
            classes = " ".join(c for c in ("num" if numeric else "", (css or {}).get(i, "")) if c)
            attr = f' class="{classes}"' if classes else ""
            attr += _run_attr(run, self.shown)
            if numeric:  # sorted by the raw value; a missing one sorts first
                attr += f' data-v="{"" if raw is None else repr(float(raw))}"'
            elif raw is not None:
                attr += f' data-v="{_e(raw)}"'
            out.append(f"<td{attr}>{_e(text)}</td>")
        self.rows.append((attrs, out))

    def html(self, filter_box: bool = True) -> str:
        num_class = ' class="num"'
        head = "".join(f'<th{num_class if num else ""}{_run_attr(run, self.shown)}>{_e(t)}</th>'
                       for t, num, run in self.columns)
        body = "\n".join(f"<tr{attrs}>{''.join(cells)}</tr>" for attrs, cells in self.rows)
        box = (f'<div class="filter"><input class="tk-filter" type="search" data-table="{self.id}" '
               f'placeholder="filter rows (any text)" aria-label="filter {self.id}"><span class="count muted"></span>'
               f"</div>") if filter_box else ""
        caption = f'<p class="muted">{_e(self.caption)}</p>' if self.caption else ""
        return (f'{caption}{box}<div class="table-wrap"><table class="tk-table" id="{self.id}"><thead><tr>{head}'
                f"</tr></thead><tbody>\n{body}\n</tbody></table></div>")


def _status(stage) -> str:
    value = stage.status.value
    return f'<span class="status-{value}">{_e(value)}</span>'


def _bound_css(bound: str | None) -> str:
    return f"bound-{(bound or '').replace(' ', '-')}" if bound else ""


def _inputs(record: BuildRecord) -> str:
    return ", ".join(f"{s.name}: {list(s.shape) if s.shape is not None else s.kind} {s.dtype}"
                     for s in record.invocation.signature) or "-"


def _char(record: BuildRecord) -> Characterization | None:
    """The record's characterization when that stage succeeded, else ``None``."""
    inv = record.invocation
    return inv.characterization.result if inv.characterization.status == Status.SUCCESSFUL else None


def _anchor(i: int, record: BuildRecord) -> str:
    return f"inv-{i}-{record.invocation.hash}"


def _overview(records: list[BuildRecord]) -> str:
    table = _Table("overview-table", [("Model", False), ("Class", False), ("Script", False), ("Invocation", False),
                                ("Inputs", False), ("Params", True), ("MACs", True), ("FLOPs", True),
                                ("Bytes", True), ("AI (FLOPs/B)", True), ("Bound", False), ("Roofline time", True),
                                ("Latency mean", True), ("Throughput (inf/s)", True), ("% of roof", True),
                                ("Characterize", False), ("Build", False), ("Benchmark", False)],
                   caption=f"One row per model call. {MAC_NOTE}; bytes read + written (unfused); "
                           "roofline time on each record's hardware profile; % of roof: the latest per-layer run's "
                           "roofline time ÷ mean latency, on the profile it measured on.")
    for i, r in enumerate(records):
        inv = r.invocation
        char = _char(r)
        bench = inv.benchmark.result if inv.benchmark.status == Status.SUCCESSFUL else None
        t = char.totals if char else None
        nbytes = t.bytes if t else None
        measured = measured_run(inv)
        roof = measured.per_layer.model_efficiency() if measured is not None and measured.per_layer else None
        table.add([
            (r.model.name, r.model.name), (r.model.class_name, None), (Path(r.script).name, None), (inv.hash, None),
            (_inputs(r), None), (si(r.model.params or (t.params if t else 0)), r.model.params or (t.params if t else 0)),
            (si(t.macs) if t else "-", t.macs if t else None), (si(t.flops) if t else "-", t.flops if t else None),
            (format_bytes(nbytes), nbytes),
            (format_intensity(t.arithmetic_intensity) if t else "-", t.arithmetic_intensity if t else None),
            (t.bound if t else "-", None),
            (format_seconds(t.roofline_time_s) if t else "-", t.roofline_time_s if t else None),
            (format_ms(bench.latency_ms.mean) if bench else "-", bench.latency_ms.mean if bench else None),
            (f"{bench.throughput_ips:,.1f}" if bench else "-", bench.throughput_ips if bench else None),
            (percent(roof) or "-", roof),
            (inv.characterization.status.value, None), (inv.build.status.value, None), (inv.benchmark.status.value, None),
        ], node=None, css={10: _bound_css(t.bound if t else None)})
    body = table.html()
    links = "".join(f'<li><a href="#{_anchor(i, r)}">{_e(r.model.name)} ({_e(r.model.class_name)}) '
                    f'::{_e(r.invocation.hash)}</a></li>' for i, r in enumerate(records))
    return f'<section id="overview"><h2>Models</h2>{body}<nav><ul>{links}</ul></nav></section>'


def _comparison(comp: Comparison, records: list[BuildRecord]) -> str:
    """The comparison's rows (``report.compare.comparison_table``, with "Measured on" and the ``!``
    marks of benchmarks with warnings when the page's records are the compared ones)."""
    from turnkey_like.report.compare import benchmark_notes, comparison_table

    same = [r.invocation.hash for r in records] == [e.invocation_hash for e in comp.entries]
    recs = records if same else None
    head = "".join(f"<th>{_e(e.label)}</th>" for e in comp.entries)
    rows = "\n".join(f"<tr><th>{_e(title)}</th>{''.join(f'<td class=num>{_e(c)}</td>' for c in cells)}</tr>"
                     for title, cells in comparison_table(comp, recs))
    notes = "".join(f'<p class="note">note: {_e(n)}</p>' for n in [*comp.notes, *benchmark_notes(comp, recs)])
    return (f'<section id="comparison"><h2>Comparison</h2><p class="muted">{MAC_NOTE}; ratios (N.NNx) are to the '
            f'first column, and only on the same hardware profile (roofline time) or machine (latency).</p>'
            f'<div class="table-wrap"><table id="comparison-table"><thead><tr><th>Quantity</th>{head}'
            f"</tr></thead><tbody>\n{rows}\n</tbody></table></div>{notes}</section>")


def _dl(title: str, pairs: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs)
    return f'<div class="card"><h4>{_e(title)}</h4><dl>{items}</dl></div>'


def _characterization_card(char: Characterization) -> str:
    t, fus = char.totals, char.fusion.summary
    hw = char.hardware
    return _dl(f"Characterization ({MAC_NOTE})", [
        ("Hardware", f"{hw.name}: {hw.description}"), ("Ridge point", f"{format_intensity(char.ridge_point)} FLOPs/B"),
        ("dtype / counted on", f"{char.dtype} / {char.device}{' (no weights)' if char.no_weights else ''}"),
        ("Parameters", f"{si(t.params)} ({format_bytes(t.param_bytes)})"), ("MACs", si(t.macs)),
        ("MACs in conv/matmul/attention", si(t.conv_matmul_macs)), ("FLOPs", si(t.flops)),
        ("Bytes read", format_bytes(t.bytes_read)), ("  of which weights", format_bytes(t.weight_bytes)),
        ("Bytes written", format_bytes(t.bytes_written)),
        ("Arithmetic intensity", f"{format_intensity(t.arithmetic_intensity)} FLOPs/B"), ("Bound", t.bound),
        ("Roofline time", format_seconds(t.roofline_time_s)), ("Ops", f"{t.ops} ({t.uncounted_ops} not counted)"),
        ("Fusion groups", f"{fus.groups} ({fus.fused_ops} ops), removes {format_bytes(fus.removed_bytes)}"),
        *_profile_trust(hw),
    ])


def _profile_trust(hw: HardwareProfile) -> list[tuple[str, str]]:
    """A profile's trust lines for a card: when it was measured (``local``) and each warning."""
    pairs = [("Profile measured at", hw.measured_at)] if hw.measured_at else []
    return pairs + [("Profile warning", w) for w in hw.warnings]


def _benchmark_card(record: BuildRecord) -> str:
    inv = record.invocation
    bench = inv.benchmark.result if inv.benchmark.status == Status.SUCCESSFUL else None
    build = inv.build.result if inv.build.status == Status.SUCCESSFUL else None
    cards = []
    if build is not None:
        cards.append(_dl("Build (ONNX)", [
            ("Exporter", build.exporter), ("Opset", str(build.opset)), ("Precision", build.precision),
            ("Size", format_bytes(build.size_bytes)),
            ("Faithful to PyTorch", "-" if build.faithful is None else ("yes" if build.faithful else "no")),
        ]))
    if bench is not None:
        lat = bench.latency_ms
        cards.append(_dl("Benchmark", [
            ("Runtime", f"{bench.runtime} {bench.runtime_version}"), ("Provider", bench.execution_provider),
            ("Device", bench.device_name), ("Threads", str(bench.threads) if bench.threads else "-"),
            ("Iterations (warm-up)", f"{bench.iterations} ({bench.warmup_iterations})"),
            ("Latency mean", format_ms(lat.mean)), ("Latency median", format_ms(lat.median)),
            ("Latency IQR (runs)", f"{format_ms(lat.iqr)} ({lat.runs})" if lat.iqr is not None else "-"),
            ("Latency p90 / p99", f"{format_ms(lat.p90)} / {format_ms(lat.p99)}"),
            ("Latency min / max", f"{format_ms(lat.min)} / {format_ms(lat.max)}"),
            ("Throughput", f"{bench.throughput_ips:,.1f} inferences/s (batch {bench.batch_size})"),
            ("Peak memory", format_bytes(bench.peak_memory_bytes)),
            ("Max abs error vs PyTorch", "-" if bench.max_abs_err is None else f"{bench.max_abs_err:.3g}"),
            *_load_pairs(bench),
        ]))
    return "".join(cards)


def _load_pairs(bench: BenchmarkResult) -> list[tuple[str, str]]:
    """How busy the machine was while the benchmark timed (``BenchmarkResult.load``), and its warnings."""
    load = bench.load
    pairs = []
    if load is not None:
        pairs.append(("Other processes' cores", f"{load.other_cores:.2f} of {load.cores} ({load.window})"))
        if load.load_avg_1min is not None:
            pairs.append(("Load average (1 min)", f"{load.load_avg_1min:.2f}"))
    return pairs + [("Warning", w) for w in bench.warnings]


def _breakdown(char: Characterization, prefix: str) -> str:
    """The two breakdown tables (``report.breakdown.breakdown_rows``): by category, then by bound."""
    parts = []
    for axis in ("category", "bound"):
        table = _Table(f"{prefix}-by_{axis}", [(axis.capitalize(), False), ("Share", True), ("Roofline time", True),
                                               ("FLOPs", True), ("Bytes", True), ("Ops", True)])
        for row in breakdown_rows(char, axis):
            e = row.entry
            table.add([(row.name, row.name), (row.share, e.share), (row.time, e.time_s), (row.flops, e.flops),
                       (row.bytes, e.bytes), (row.ops, e.ops)],
                      css={0: _bound_css(row.name) if axis == "bound" else ""})
        parts.append(f'<div>{table.html(filter_box=False)}</div>')
    return f'<h3>Where the time goes (share of roofline time)</h3><div class="cards">{"".join(parts)}</div>'


def _module_table(char: Characterization, prefix: str, runs: list[BenchmarkResult], shown: int) -> str:
    """Per module, inclusive; per measured run, "Measured ms" and "% of roof" (``PerLayerResult.module_measure``:
    the model's row is the whole call's mean latency; ``~`` marks a spread over 10%)."""
    columns = [("Module", False), ("Class", False), ("Depth", True), ("MACs", True), ("FLOPs", True),
               ("Params", True), ("Bytes", True), ("AI (FLOPs/B)", True), ("Bound", False), ("Roofline time", True),
               ("Ops", True)]
    for k, _ in enumerate(runs):
        columns += [("Measured ms", True, k), ("% of roof", True, k)]
    caption = f"Per module, inclusive of its children. {MAC_NOTE}; bytes read + written, unfused."
    if runs:
        caption += (" Measured ms: the module and below, per iteration of the profiled runs; the model's row: the "
                    "timed runs' mean latency. % of roof: roofline time ÷ measured time, on the profile the run "
                    "measured on. " + NOISY_NOTE + ".")
    table = _Table(f"{prefix}-modules", columns, caption=caption, shown=shown)
    for m in char.modules:
        cells = [(m.path or "(model)", m.path), (m.class_name, None), (str(m.depth), m.depth), (si(m.macs), m.macs),
                 (si(m.flops), m.flops), (si(m.params), m.params), (format_bytes(m.bytes), m.bytes),
                 (format_intensity(m.arithmetic_intensity), m.arithmetic_intensity), (m.bound, None),
                 (format_seconds(m.roofline_time_s), m.roofline_time_s), (str(m.ops), m.ops)]
        for run in runs:
            seen = run.per_layer.module_measure(m.path)
            spent = seen.measured_ms if seen is not None else None
            roof = seen.efficiency if seen is not None else None
            cells += [(ms(spent) or "-", spent), (percent(roof, seen.noisy) if seen is not None and roof is not None
                                                  else "-", roof)]
        table.add(cells, node="m" + m.path, css={8: _bound_css(m.bound)})
    return table.html()


def _op_table(char: Characterization, prefix: str, runs: list[BenchmarkResult], shown: int) -> str:
    """One row per op (``#`` = ``OpRow.index``, the graph's ``n<index>``); per measured run with
    per-op times, "Measured ms" (``~``: spread over 10%) and "Share" of the profiled run."""
    groups = char.fusion.row_groups
    columns = [("#", True), ("Op", False), ("Category", False), ("Module", False), ("Class", False),
               ("Output shapes", False), ("MACs", True), ("FLOPs", True), ("Bytes", True), ("AI (FLOPs/B)", True),
               ("Bound", False), ("Roofline time", True)]
    if groups:
        columns.append(("Fusion group", False))
    timed = [(k, run.per_layer) for k, run in enumerate(runs) if run.per_layer.op_ms]
    for k, _ in timed:
        columns += [("Measured ms", True, k), ("Share", True, k)]
    table = _Table(f"{prefix}-ops", columns, shown=shown,
                   caption=f"One row per op, in execution order (the graph's nodes, numbered as tk explore and tk "
                           f"profile number them). {MAC_NOTE}; bytes read + written."
                           + (" Measured ms: per iteration, a fused kernel's time split over its ops by roofline "
                              "time; share: of the profiled run." if timed else ""))
    for r in char.rows:
        cells = [(str(r.index), r.index), (r.op, None), (r.category, None), (r.module_path or "(model)", None),
                 (r.module_class, None), (format_shapes(r.output_shapes), None), (si(r.macs), r.macs),
                 (si(r.flops), r.flops), (format_bytes(r.bytes), r.bytes),
                 (format_intensity(r.arithmetic_intensity), r.arithmetic_intensity), (r.bound, None),
                 (format_seconds(r.roofline_time_s), r.roofline_time_s)]
        if groups:
            cells.append((str(groups[r.index]), None))
        for _, per_layer in timed:
            spent, share = per_layer.op_time(r.index), per_layer.op_share(r.index)
            cells += [(ms(spent, per_layer.op_noisy(r.index)) or "-", spent),
                      ("-" if share is None else f"{share:.1%}", share)]
        table.add(cells, node=f"n{r.index}", css={10: _bound_css(r.bound)})
    return table.html()


def _measured_parts(measured: MeasuredRun, prefix: str, shown: int, profile: HardwareProfile | None) -> str:
    """The selector (several runs), then per run its card and its measured-by-category table
    (``profile``: the characterization's, whose trust lines its own card already gives)."""
    runs = measured.runs
    if len(runs) > 1:
        options = "".join(f'<option value="{k}"{" selected" if k == shown else ""}>{_e(run.label())}</option>'
                          for k, run in enumerate(runs))
        head = (f'<p class="tk-runs">Measured on <select class="tk-run-select" aria-label="measured run" '
                f'data-section="{prefix}">{options}</select> <span class="muted">{len(runs)} per-layer runs; '
                f"the measured columns, the tables and the roofline plot follow the choice</span></p>")
    else:
        head = f'<p class="tk-runs">Measured on {_e(runs[0].label())}</p>'
    if measured.bench is None:
        head += f'<p class="note">{_e(measured.note())}</p>'
    parts = [head]
    for k, run in enumerate(runs):
        per_layer = run.per_layer
        whole = per_layer.module_measure("")
        roof = per_layer.hardware
        card = _dl(f"Per-layer run: {run.label()}", [
            ("Profiler", per_layer.method), ("Profiled runs", str(per_layer.iterations)),
            ("Per run (profiled)", format_ms(per_layer.wall_ms)),
            ("Mean latency (timed)", format_ms(whole.measured_ms)),
            ("Roofline time", format_ms(whole.predicted_ms)),
            ("Whole model", f"{percent(whole.efficiency, whole.noisy) or '-'} of roof"),
            ("Roof", f"{roof.name}: {roof.description}" if roof is not None else "no profile for this device"),
            ("Unattributed", f"{per_layer.unattributed_share:.1%}"), ("Mapping", per_layer.mapping),
            *(_profile_trust(roof) if roof is not None and roof != profile else []), *_load_pairs(run),
        ])
        table = _Table(f"{prefix}-measured-{k}", [("Category", False), ("Measured ms", True), ("Share", True),
                                                   ("Predicted ms", True), ("% of roof", True), ("FLOP/s", True),
                                                   ("Bytes/s", True)],
                       caption="Measured by op category, per iteration (a fused kernel's time goes to the ops it ran, "
                               "by roofline time); predicted: roofline time on the profile measured on.")
        for r in [*per_layer.categories, *per_layer.modules[-2:]]:
            table.add([(r.name, r.name), (ms(r.measured_ms), r.measured_ms), (f"{r.share:.1%}", r.share),
                       (ms(r.predicted_ms) or "-", r.predicted_ms), (percent(r.efficiency, r.noisy) or "-", r.efficiency),
                       (si(r.attained_flops_s) if r.attained_flops_s else "-", r.attained_flops_s),
                       (format_bytes(r.attained_bytes_s) if r.attained_bytes_s else "-", r.attained_bytes_s)])
        parts.append(f'<div class="tk-run"{_run_attr(k, shown)}><div class="cards">{card}</div>'
                     f"{table.html(filter_box=False)}</div>")
    return "<h3>Measured</h3>" + "".join(parts)


def _has_graph(char: Characterization | None) -> bool:
    return char is not None and bool(char.rows)


def _graph(char: Characterization, title: str, anchor: str, measured: BenchmarkResult | None) -> str:
    """The graph's box, laid out in the page from the DOT source below it (``report.js``); with a
    measured run, each node also shows its measured time (``views.graph.graph_dot``)."""
    from turnkey_like.views.graph import graph_dot

    collapse = COLLAPSE_DEPTH if len(char.rows) > MAX_GRAPH_OPS else None
    dot = graph_dot(char, collapse=collapse, fold_repeats=True, title=title,
                    per_layer=measured.per_layer if measured is not None else None,
                    measured_label=measured.label() if measured is not None else "").source
    how = (f"modules below depth {collapse} folded into one node each; " if collapse is not None else "")
    return ('<h3>Graph</h3><p class="muted">Dataflow graph of the ops as they ran, from the inputs to the output; '
            + how + "repeated identical blocks drawn once (×N, figures each)"
            + (f"; measured times from {_e(measured.label())}" if measured is not None else "") +
            ". Click the graph, then the wheel zooms (outside it, the wheel scrolls the page); drag to pan; click "
            f'a node to show its row.</p><div class="tk-graph" tabindex="0" data-dot="{anchor}-dot"><div class="graph-tools">'
            '<button type="button" data-zoom="0.8">+</button><button type="button" data-zoom="1.25">&minus;</button>'
            '<button type="button" data-zoom="fit">fit</button></div>'
            '<p class="graph-status muted">laying out the graph&hellip; (the page needs JavaScript to draw it)</p>'
            '</div><p class="selected-row muted"></p><details class="dot-source"><summary>DOT source (Graphviz: '
            f'<code>dot -Tsvg</code> draws the same picture)</summary><pre class="tk-dot" id="{anchor}-dot">{_e(dot)}'
            "</pre></details>")


def _roofline(char: Characterization, profiles: list[HardwareProfile], title: str, salt: str,
              runs: list[BenchmarkResult], shown: int) -> str:
    """The roofline plot (``views.roofline_plot``, inline SVG): one per measured run (shown as the
    run selector says), with that run's achieved points; one plot of predictions without a run."""
    from turnkey_like.views.roofline_plot import render_roofline, roofline_of

    plots = []
    for k, run in enumerate(runs or [None]):
        chart, seen, notes = roofline_of(char, profiles, title, run.per_layer if run is not None else None,
                                         run.label() if run is not None else None)
        if not chart.points:
            return '<h3>Roofline</h3><p class="muted">no op with FLOPs to place on the roofline</p>'
        svg = render_roofline(chart, "svg", id_salt=f"{salt}-{k}", measured=seen, roof_notes=notes).decode("utf-8")
        plots.append(f'<div class="tk-roofline"{_run_attr(k if run is not None else None, shown)}>{inline_svg(svg)}</div>')
    return "<h3>Roofline</h3>" + "".join(plots)


def _generation(char: Characterization, anchor: str) -> str:
    """A generation's part of its prefill call's section: the phase table (``report.generation``'s
    columns), the predicted TTFT, TPOT and KV cache, and its what-ifs with their notes."""
    from turnkey_like.report.generation import (PHASE_COLUMNS, WHATIF_COLUMNS, encoder_cells, generation_lines,
                                                phase_cells, whatif_cells, whatif_notes)

    gen = char.generation
    phases = _Table(f"{anchor}-generation", [(h, j == "right") for h, j in PHASE_COLUMNS],
                    caption=f"{MAC_NOTE}; decode summed over its steps; roofline time on {gen.hardware}, per op.")
    for phase in gen.phases:
        phases.add(phase_cells(phase.phase, phase))
        if phase.encoder is not None:  # an encoder-decoder's prefill: the encoder's share, under it
            phases.add(encoder_cells(phase.encoder))
    lines = "".join(f"<p>{_e(line)}</p>" for line in generation_lines(gen))
    parts = [f"<h3>Generation</h3>{phases.html(filter_box=False)}{lines}"]
    if gen.whatif:
        table = _Table(f"{anchor}-whatif", [(h, j == "right") for h, j in WHATIF_COLUMNS],
                       caption=f"What-ifs: phase-level roofline per device, from the counted record; batch "
                               f"{gen.batch_size}; KV cache at the final context {gen.whatif[0].capacity.context}.")
        for w in gen.whatif:
            table.add(whatif_cells(w), css={5: _bound_css(w.phases[0].bound),
                                            7: _bound_css(w.phases[-1].bound) if len(w.phases) > 1 else ""})
        notes = "".join(f'<p class="note">note: {_e(n)}</p>' for n in whatif_notes(gen))
        parts.append(f"<h4>What-ifs</h4>{table.html(filter_box=len(gen.whatif) > 4)}{notes}")
    return "".join(parts)


def _generation_sweep(records: list[BuildRecord]) -> str:
    """The generation sweep of the page's records (more than one generation): one row per generation
    and what-if (``report.generation.whatif_cells``) and the decode throughput plot
    (``views.generation_plot``, inline SVG); ``""`` otherwise."""
    from turnkey_like.report.generation import WHATIF_COLUMNS, generation_points, whatif_cells
    from turnkey_like.views.generation_plot import render_generation_plot

    points = generation_points((r.model.name, r.invocation) for r in records)
    if len({p.invocation for p in points}) < 2:
        return ""
    table = _Table("generation-sweep", [("Model", False), ("P:N", False), ("Batch", True),
                                        *((h, j == "right") for h, j in WHATIF_COLUMNS)],
                   caption=f"One row per generation and what-if. {MAC_NOTE}; phase-level roofline per device; "
                           "Knee: the batch where decode turns compute-bound (Knee KV: with decode's activation "
                           "bytes left out); Max batch: the most sequences whose KV cache fits beside the weights.")
    for p in points:
        table.add([(p.model, p.model), (f"{p.gen.prompt_tokens}:{p.gen.new_tokens}", p.gen.prompt_tokens),
                   (str(p.gen.batch_size), p.gen.batch_size), *whatif_cells(p.whatif)])
    plots = []
    for k, name in enumerate(dict.fromkeys(p.model for p in points)):
        mine = [p for p in points if p.model == name]
        if any(p.whatif.tokens_per_s for p in mine):
            svg = render_generation_plot(mine, "svg", title=f"{name}: decode throughput", id_salt=f"gen-sweep-{k}")
            plots.append(f'<div class="tk-generation-plot">{inline_svg(svg.decode("utf-8"))}</div>')
    return f'<section id="generation-sweep"><h2>Generation sweep</h2>{table.html()}{"".join(plots)}</section>'


def _invocation(i: int, record: BuildRecord, profiles: list[HardwareProfile], runtime: str | None = None) -> str:
    inv = record.invocation
    anchor = _anchor(i, record)
    title = f"{record.model.name} ({record.model.class_name}) ::{inv.hash}"
    facts = (f'<p>Script <code>{_e(record.script)}</code> · build <code>{_e(record.build_name or "-")}</code> · '
             f"inputs {_e(_inputs(record))} · characterize {_status(inv.characterization)} · "
             f"build {_status(inv.build)} · benchmark {_status(inv.benchmark)}</p>")
    errors = "".join(f'<p class="note">{_e(name)}: {_e(stage.error)}</p>'
                     for name, stage in inv.stages().items() if stage.error)
    char = _char(record)
    measured = measured_run(inv, runtime)
    runs = measured.runs if measured is not None else []
    shown = runs.index(measured.bench) if measured is not None and measured.bench is not None else 0
    parts = [f'<section class="inv" id="{anchor}"><h2>{_e(title)}</h2>', facts, errors]
    cards = (_characterization_card(char) if char else "") + _benchmark_card(record)
    if cards:
        parts.append(f'<div class="cards">{cards}</div>')
    if measured is not None:
        parts.append(_measured_parts(measured, anchor, shown, char.hardware if char is not None else None))
    if char is not None and char.generation is not None:
        parts.append(_generation(char, anchor))
    if char is not None:
        parts.append(_breakdown(char, anchor))
        if _has_graph(char):  # titled as --visualize titles it, so the DOT is the same
            parts.append(_graph(char, call_label(record.model.name, record.model.class_name, record.script, inv.hash),
                                anchor, runs[shown] if runs else None))
            parts.append(_roofline(char, profiles, title, anchor, runs, shown))
        parts.append(f"<h3>Layers</h3>{_module_table(char, anchor, runs, shown)}")
        parts.append(f"<h3>Ops</h3>{_op_table(char, anchor, runs, shown)}")
        if char.uncounted:
            parts.append("<p class=\"muted\">Not counted (no formula): " +
                         _e(", ".join(f"{op} ×{n}" for op, n in char.uncounted.items())) + "</p>")
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def render_html(records: list[BuildRecord], *, title: str = "tk report", profiles: Iterable[HardwareProfile] = (),
                comparison: Comparison | None = None, created_at: str | None = None, runtime: str | None = None) -> str:
    """Return the whole report page for ``records`` (full records: per-op rows and breakdowns are read).

    ``profiles``: extra hardware profiles drawn on the roofline plots (each record's own profile is
    drawn first). ``comparison``: shown when given (``views.compare.comparison``); :func:`write_html`
    makes one for two records or more. ``runtime``: the per-layer run each call shows first
    (``--runtime``; default the latest); a page with several runs has a selector.
    """
    from turnkey_like import __version__
    from turnkey_like.records import now_utc

    profiles = list(profiles)
    system = next((r.system for r in records if r.system), {})
    sys_items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(', '.join(map(str, v)) if isinstance(v, list) else v)}</dd>"
                        for k, v in system.items())
    body = [
        f"<header><h1>{_e(title)}</h1><p class=\"muted\">tk {_e(__version__)} · {_e(created_at or now_utc())} · "
        f"{len(records)} model call(s) · {MAC_NOTE}; counts with decimal SI prefixes; bytes decimal "
        f"(1 MB = 10^6 B)</p>" + (f"<details><summary>System</summary><dl>{sys_items}</dl></details>" if sys_items else "")
        + "</header>",
        _overview(records) if records else '<p class="muted">no builds</p>',
        _comparison(comparison, records) if comparison is not None and len(comparison.entries) > 1 else "",
        _generation_sweep(records),
        *(_invocation(i, r, profiles, runtime) for i, r in enumerate(records)),
    ]
    # The layout engine only where a graph is drawn (viz-global.js has no "</script", NUL or CR in it,
    # so it sits in a <script> element as it is).
    layout = f"<script>{_asset(VIZ_JS)}</script>" if any(_has_graph(_char(r)) for r in records) else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{_asset('report.css')}</style>"
            f"</head><body>\n{chr(10).join(b for b in body if b)}\n{layout}<script>{_asset('report.js')}</script>"
            "</body></html>\n")


def write_html(records: list[BuildRecord], path: str | Path, *, title: str = "tk report",
               profiles: Iterable[HardwareProfile] = (), comparison: Comparison | None = None,
               runtime: str | None = None) -> Path:
    """Write the report page of ``records`` to ``path`` (atomically) and return the path
    (``runtime``: see :func:`render_html`).

    With two records or more and no ``comparison`` given, the page compares them all
    (``views.compare.comparison``).

    Raises:
        InputError: the path cannot be written.
    """
    from turnkey_like.files import write_atomic
    from turnkey_like.views.compare import comparison as compare

    if comparison is None and len(records) > 1:
        comparison = compare(records)
    page = render_html(records, title=title, profiles=profiles, comparison=comparison, runtime=runtime)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, page.encode("utf-8"), fsync=False)
    except OSError as e:
        raise InputError(f"cannot write the HTML report {path}: {one_line(e)}", hint="choose a writable path") from None
    return target
