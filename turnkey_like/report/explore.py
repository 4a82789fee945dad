"""The dataflow graph as text, one line per node (``tk explore``): a range of it, or its summary.

Nodes are the characterization's op rows in execution order, numbered by ``OpRow.index`` (from 0),
the number ``tk profile``'s top ops, the HTML page and the graph pictures' node ids (``n<index>``)
give them too. A line gives the node number, the op, its module path, its first output shape, its
fusion group (``FusionResult.row_groups``: every op has one; a ``*`` marks a group of several ops),
MACs, FLOPs (1 MAC = 2 FLOPs), bytes read + written, arithmetic intensity (FLOPs/byte), bound and
roofline time on the record's hardware profile, and the nodes it reads from (``OpRow.producers``;
``-``: graph inputs and weights only). With a per-layer run (``--per-layer``, see
:mod:`turnkey_like.report.measured`): its measured time (ms per iteration, ``~`` when it spread more
than 10% across the profiled runs) and share of the profiled run. The summary gives node and group
counts, the top ops by roofline time (identical op and shapes grouped: ``report.top_ops``) and the
bottleneck distribution by bound and by op category (shares of roofline time), all read from the record.
With ``--groups``: the fusion groups of several ops (``FusionResult.groups``), one line each: their
nodes and ops, module, MACs, FLOPs, bytes (every op on its own), internal and external bytes, the
fused group's arithmetic intensity, bound and roofline time, and why the group ended
(``FusionGroup.end``, decided when the group was formed; ``FUSION_ENDS`` explains each).

Everything here formats the records; nothing is computed but the selection of lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from turnkey_like.errors import InputError
from turnkey_like.records import FUSION_ENDS, Characterization, FusionGroup, OpRow, PerLayerResult
from turnkey_like.report.breakdown import breakdown_rows
from turnkey_like.report.measured import NOISY_NOTE, MeasuredRun, ms, percent
from turnkey_like.report.text import short_op
from turnkey_like.report.top_ops import op_groups
from turnkey_like.units import format_bytes, format_intensity, format_ms, format_seconds, si

#: ``--context`` when ``--around`` is given without it: nodes on each side.
DEFAULT_CONTEXT = 5
#: Top ops listed in the summary.
SUMMARY_TOP = 10

COLUMNS = ("node", "op", "module", "output shape", "group", "MACs", "FLOPs", "bytes", "AI", "bound", "roofline",
           "producers")
#: The columns of ``--groups``: one line per fusion group of several ops.
GROUP_COLUMNS = ("group", "nodes", "ops", "module", "MACs", "FLOPs", "bytes", "internal", "external", "AI", "bound",
                 "roofline", "ended by")
#: The columns a per-layer run adds, after ``roofline``.
MEASURED_COLUMNS = ("measured ms", "share")
_RIGHT = {"node", "group", "MACs", "FLOPs", "bytes", "AI", "roofline", "measured ms", "share"}


@dataclass
class NodeRange:
    """Which nodes to show, by node number (``OpRow.index``, from 0), inclusive; one form at a time
    (checked by :meth:`check`).

    Attributes:
        start, end: ``--start N --end M`` (either may be left out: first / last node).
        around, context: ``--around N --context K``: node N and K nodes on each side.
        max_nodes: ``--max-nodes N``: the first N nodes (after ``--filter``).
        text: ``--filter TEXT``: keep nodes whose op or module path contains TEXT (case-insensitive).
    """

    start: int | None = None
    end: int | None = None
    around: int | None = None
    context: int | None = None
    max_nodes: int | None = None
    text: str | None = None

    def forms(self) -> list[str]:
        """The range forms given (``start/end``, ``around/context``, ``max-nodes``)."""
        forms = []
        if self.start is not None or self.end is not None:
            forms.append("--start/--end")
        if self.around is not None or self.context is not None:
            forms.append("--around/--context")
        if self.max_nodes is not None:
            forms.append("--max-nodes")
        return forms

    def check(self) -> None:
        """Raise :class:`InputError` for mixed forms, a ``--context`` without ``--around``,
        negative node numbers or a ``--max-nodes`` below 1."""
        forms = self.forms()
        if len(forms) > 1:
            raise InputError(f"{' and '.join(forms)} are different range forms: give one",
                             hint="--start N --end M, or --around N --context K, or --max-nodes N")
        if self.context is not None and self.around is None:
            raise InputError("--context needs --around N")
        for name in ("start", "end", "around"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InputError(f"--{name} {value}: nodes are numbered from 0")
        if self.max_nodes is not None and self.max_nodes < 1:
            raise InputError(f"--max-nodes {self.max_nodes}: must be at least 1")
        if self.context is not None and self.context < 0:
            raise InputError(f"--context {self.context}: must be 0 or more")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise InputError(f"--start {self.start} --end {self.end}: the end comes before the start")

    @property
    def empty(self) -> bool:
        """True when no range and no filter was given (the summary is shown)."""
        return not self.forms() and not self.text


def select(char: Characterization, rng: NodeRange) -> list[OpRow]:
    """The rows ``rng`` picks from ``char``, in execution order.

    Raises:
        InputError: the range is inconsistent (:meth:`NodeRange.check`) or names a node past the last.
    """
    rng.check()
    rows = char.rows
    count = len(rows)
    for name in ("start", "around"):
        value = getattr(rng, name)
        if value is not None and value >= count:
            raise InputError(f"--{name} {value}: the graph has {count} nodes (numbered 0 to {count - 1})")
    if rng.around is not None:
        k = DEFAULT_CONTEXT if rng.context is None else rng.context
        picked = rows[max(rng.around - k, 0): rng.around + k + 1]
    else:
        picked = rows[rng.start or 0: count if rng.end is None else rng.end + 1]
    if rng.text:
        needle = rng.text.lower()
        picked = [r for r in picked if needle in r.op.lower() or needle in r.module_path.lower()]
    if rng.max_nodes is not None:
        picked = picked[: rng.max_nodes]
    return picked


def _group(char: Characterization, row: OpRow, multi: set[int]) -> str:
    groups = char.fusion.row_groups
    if not groups:
        return "?"
    g = groups[row.index]
    return f"{g}*" if g in multi else str(g)


def _table(header: list[str], lines: list[list[str]], right: set[str] | None = None) -> list[str]:
    """Fixed-width text columns, two spaces apart; ``right`` names right-aligned columns."""
    right = right or set()
    widths = [max(len(h), *(len(x[i]) for x in lines)) if lines else len(h) for i, h in enumerate(header)]

    def fmt(cells):
        return "  ".join(c.rjust(w) if h in right else c.ljust(w)
                         for c, w, h in zip(cells, widths, header)).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(x) for x in lines)]


def _measured(per_layer: PerLayerResult | None) -> PerLayerResult | None:
    """``per_layer`` when it holds per-op times (records from before them have none)."""
    return per_layer if per_layer is not None and per_layer.op_ms else None


def node_lines(char: Characterization, rows: list[OpRow], per_layer: PerLayerResult | None = None) -> list[str]:
    """The table of ``rows``: a header, a rule, then one line per node (see the module docstring);
    with ``per_layer``, each node's measured time and share (``PerLayerResult.op_ms``)."""
    multi = {g.id for g in char.fusion.groups}
    measured = _measured(per_layer)
    header = list(COLUMNS)
    if measured is not None:
        header[-1:-1] = MEASURED_COLUMNS
    lines = []
    for r in rows:
        shape = "×".join(str(d) for d in r.output_shapes[0]) if r.output_shapes else "-"
        line = [str(r.index), short_op(r.op), r.module_path or "(model)", shape or "scalar",
                _group(char, r, multi), si(r.macs), si(r.flops), format_bytes(r.bytes),
                format_intensity(r.arithmetic_intensity), r.bound, format_seconds(r.roofline_time_s)]
        if measured is not None:
            share = measured.op_share(r.index)
            line += [ms(measured.op_time(r.index), measured.op_noisy(r.index)) or "-",
                     "-" if share is None else f"{share:.1%}"]
        line.append(",".join(str(p) for p in r.producers) or "-")
        lines.append(line)
    return _table(header, lines, _RIGHT)


def heading(char: Characterization, label: str = "", measured: MeasuredRun | None = None) -> list[str]:
    """The lines naming the model call, its totals and the hardware profile, one per hardware
    warning, and with ``measured`` which per-layer run the measured columns show (and the others),
    the whole model's % of roof and one line per warning of that benchmark."""
    t, hw = char.totals, char.hardware
    lines = [f"{label or char.model_class}: {len(char.rows)} nodes, MACs {si(t.macs)}, FLOPs {si(t.flops)} "
             f"(1 MAC = 2 FLOPs), {format_bytes(t.bytes)} moved",
             f"hardware {hw.name} ({hw.description}), ridge point {char.ridge_point:.3g} FLOPs/byte; "
             f"AI = arithmetic intensity, FLOPs/byte; group * = a fusion group of several ops; "
             f"producers = the nodes it reads"]
    lines += [f"hardware note: {warning}" for warning in hw.warnings]
    if measured is None:
        return lines
    lines.append(f"measured: {measured.note()}")
    per_layer = measured.per_layer
    if per_layer is None:
        return lines
    whole = per_layer.module_measure("")
    roof = per_layer.hardware.name if per_layer.hardware is not None else "no profile"
    lines.append(f"  {per_layer.iterations} profiled run(s), {format_ms(per_layer.wall_ms)} per run; whole model "
                 f"{percent(whole.efficiency) or '-'} of roof on {roof} (roofline {format_ms(whole.predicted_ms)} ÷ "
                 f"mean latency {format_ms(whole.measured_ms)}); measured ms = per iteration, share = of the "
                 f"profiled run")
    if per_layer.hardware is not None and per_layer.hardware != hw:
        lines += [f"  hardware note ({roof}): {warning}" for warning in per_layer.hardware.warnings]
    lines += [f"  benchmark note: {warning}" for warning in measured.bench.warnings]
    if any(per_layer.op_noisy(i) for i in range(len(per_layer.op_spread))):
        lines.append(f"  {NOISY_NOTE}")
    return lines


def summary_lines(char: Characterization, top: int = SUMMARY_TOP, per_layer: PerLayerResult | None = None) -> list[str]:
    """Node and group counts, the top ops by roofline time (identical op and shapes grouped:
    :func:`turnkey_like.report.top_ops.op_groups`; with ``per_layer``, their measured time), and the
    bottleneck distribution (:func:`turnkey_like.report.breakdown.breakdown_rows`)."""
    fusion = char.fusion.summary
    groups = f"{fusion.all_groups} fusion groups" if char.fusion.row_groups else "fusion groups not recorded"
    out = [f"{len(char.rows)} nodes, {groups} ({fusion.groups} of several ops, holding {fusion.fused_ops} "
           f"nodes); fusing them removes {format_bytes(fusion.removed_bytes)} of traffic"]
    if char.uncounted:
        out.append("not counted: " + ", ".join(f"{op} ×{n}" for op, n in char.uncounted.items()))
    measured = _measured(per_layer)
    out += ["", f"top ops by roofline time on {char.hardware.name} (identical op and shapes grouped: × ops, "
                f"time = each op's, total = all of them):"]
    multi = {g.id for g in char.fusion.groups}
    total = char.totals.roofline_time_s
    header = ["node", "×", "op", "module", "time", "total", "share", "group", "bound"]
    if measured is not None:
        header += ["measured ms"]
    lines = []
    for g in op_groups(char, top):
        r = g.first
        share = f"{g.total_s / total:.1%}" if total else "-"
        line = [str(r.index), str(g.count), short_op(r.op), g.modules(), format_seconds(r.roofline_time_s),
                format_seconds(g.total_s), share, _group(char, r, multi), r.bound]
        if measured is not None:
            line.append(ms(g.measured_ms(measured), g.noisy(measured)) or "-")
        lines.append(line)
    out += _table(header, lines, {"node", "×", "time", "total", "share", "group", "measured ms"})
    for axis in ("bound", "category"):
        out += ["", f"bottlenecks by {axis} (share of roofline time):"]
        out += _table([axis, "nodes", "time", "share", "FLOPs", "bytes"],
                      [[b.name, b.ops, b.time, b.share, b.flops, b.bytes] for b in breakdown_rows(char, axis)],
                      {"nodes", "time", "share", "FLOPs", "bytes"})
    out += ["", "show nodes with --start N --end M, --around N --context K, --max-nodes N or --filter TEXT"]
    return out


def _ended(char: Characterization, group: FusionGroup) -> str:
    """``second consumer: #11 convolution, #16 add_``: why ``group`` ended, with the ops reading its
    last op's result (``FusionGroup.end``, ``end_readers``); ``not recorded`` for older records."""
    if not group.end:
        return "not recorded"
    if group.end == "output":
        return "output"
    readers = ", ".join(f"#{i} {short_op(char.rows[i].op)}" for i in group.end_readers)
    if group.end == "grouped" and group.end_readers and char.fusion.row_groups:
        return f"grouped: {readers} (group {char.fusion.row_groups[group.end_readers[0]]})"
    return f"{group.end}: {readers}"


def group_lines(char: Characterization, rows: list[OpRow] | None = None) -> list[str]:
    """The fusion groups of several ops (``FusionResult.groups``) holding any of ``rows`` (all with
    ``None``), one line each (:data:`GROUP_COLUMNS`), after a line saying what the columns hold,
    and then what each ending that occurs means (:data:`~turnkey_like.records.FUSION_ENDS`)."""
    fusion = char.fusion
    groups = fusion.groups
    if rows is not None:
        picked = {r.index for r in rows}
        groups = [g for g in groups if picked.intersection(g.ops)]
    out = [f"fusion groups of several ops: {len(groups)} shown of {fusion.summary.groups} "
           f"({fusion.summary.all_groups} groups in all, single ops included); MACs and FLOPs summed "
           f"(1 MAC = 2 FLOPs); bytes = read + written, every op on its own; internal = the intermediates' "
           f"traffic fusion keeps on chip; external = bytes - internal; AI, bound and roofline of the fused "
           f"group (FLOPs / external bytes) on {char.hardware.name}", ""]
    lines = []
    for g in groups:
        lines.append([str(g.id) if g.id >= 0 else "?", ",".join(str(i) for i in g.ops),
                      " → ".join(short_op(op) for op in g.op_names), g.module_path or "(model)", si(g.macs),
                      si(g.flops), format_bytes(g.unfused_bytes), format_bytes(g.internal_bytes),
                      format_bytes(g.external_bytes), format_intensity(g.arithmetic_intensity), g.bound or "-",
                      format_seconds(g.roofline_time_s) if g.bound else "-", _ended(char, g)])
    out += _table(list(GROUP_COLUMNS), lines, {"group", "MACs", "FLOPs", "bytes", "internal", "external", "AI",
                                                "roofline"})
    ends = [end for end in FUSION_ENDS if any(g.end == end for g in groups)]
    if ends:
        out += ["", "ended by (what reads the group's last result):"]
        out += [f"  {end}: {FUSION_ENDS[end]}" for end in ends]
    return out


def explore_text(char: Characterization, rng: NodeRange, label: str = "", measured: MeasuredRun | None = None,
                 groups: bool = False) -> str:
    """What ``tk explore`` prints for one model call: the heading, then the summary (no range and no
    filter) or the selected nodes; ``measured``: the per-layer run whose times it shows. With
    ``groups``: the fusion groups (:func:`group_lines`) instead, those holding a selected node when a
    range or filter is given.

    Raises:
        InputError: see :func:`select`.
    """
    lines = heading(char, label, measured)
    per_layer = measured.per_layer if measured is not None else None
    if groups:
        lines += [""] + group_lines(char, None if rng.empty else select(char, rng))
    elif rng.empty:
        lines += [""] + summary_lines(char, per_layer=per_layer)
    else:
        rows = select(char, rng)
        lines += [""] + node_lines(char, rows, per_layer)
        if not rows:
            lines.append(f"(no node matches{' ' + repr(rng.text) if rng.text else ''})")
    return "\n".join(lines) + "\n"
