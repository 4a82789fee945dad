"""The dataflow graph as text, one line per node (``tk explore``): a range of it, or its summary.

Nodes are the characterization's op rows in execution order, numbered from 1 (node ``N`` is row
``N - 1``). A line gives the node number, the op, its module path, its first output shape, its
fusion group (``FusionResult.row_groups``: every op has one; a ``*`` marks a group of several ops),
MACs, FLOPs (1 MAC = 2 FLOPs), arithmetic intensity (FLOPs/byte) and bound on the record's hardware
profile. The summary gives node and group counts, the top ops by roofline time and the bottleneck
distribution by bound and by op category (shares of roofline time), all read from the record.

Everything here formats the record; nothing is computed but the selection of lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from turnkey_like.errors import InputError
from turnkey_like.records import Characterization, OpRow
from turnkey_like.report.breakdown import breakdown_rows
from turnkey_like.report.text import short_op
from turnkey_like.units import format_bytes, format_intensity, format_seconds, si

#: ``--context`` when ``--around`` is given without it: nodes on each side.
DEFAULT_CONTEXT = 5
#: Top ops listed in the summary.
SUMMARY_TOP = 10

COLUMNS = ("node", "op", "module", "output shape", "group", "MACs", "FLOPs", "AI", "bound")
_RIGHT = {"node", "group", "MACs", "FLOPs", "AI"}


@dataclass
class NodeRange:
    """Which nodes to show, 1-based and inclusive; one form at a time (checked by :meth:`check`).

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
        """Raise :class:`InputError` for mixed forms, a ``--context`` without ``--around``, or
        numbers below 1 (``--context`` may be 0)."""
        forms = self.forms()
        if len(forms) > 1:
            raise InputError(f"{' and '.join(forms)} are different range forms: give one",
                             hint="--start N --end M, or --around N --context K, or --max-nodes N")
        if self.context is not None and self.around is None:
            raise InputError("--context needs --around N")
        for name in ("start", "end", "around", "max_nodes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"--{name.replace('_', '-')} {value}: nodes are numbered from 1")
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
        if value is not None and value > count:
            raise InputError(f"--{name} {value}: the graph has {count} nodes (numbered 1 to {count})")
    if rng.around is not None:
        k = DEFAULT_CONTEXT if rng.context is None else rng.context
        picked = rows[max(rng.around - 1 - k, 0): rng.around + k]
    else:
        picked = rows[(rng.start or 1) - 1: rng.end or count]
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


def node_lines(char: Characterization, rows: list[OpRow]) -> list[str]:
    """The table of ``rows``: a header, a rule, then one line per node (see the module docstring)."""
    multi = {g.id for g in char.fusion.groups}
    lines = []
    for r in rows:
        shape = "×".join(str(d) for d in r.output_shapes[0]) if r.output_shapes else "-"
        lines.append([str(r.index + 1), short_op(r.op), r.module_path or "(model)", shape or "scalar",
                      _group(char, r, multi), si(r.macs), si(r.flops), format_intensity(r.arithmetic_intensity),
                      r.bound])
    return _table(list(COLUMNS), lines, _RIGHT)


def heading(char: Characterization, label: str = "") -> list[str]:
    """Two lines naming the model call, its totals and the hardware profile."""
    t, hw = char.totals, char.hardware
    return [f"{label or char.model_class}: {len(char.rows)} nodes, MACs {si(t.macs)}, FLOPs {si(t.flops)} "
            f"(1 MAC = 2 FLOPs), {format_bytes(t.bytes)} moved",
            f"hardware {hw.name} ({hw.description}), ridge point {char.ridge_point:.3g} FLOPs/byte; "
            f"AI = arithmetic intensity, FLOPs/byte; group * = a fusion group of several ops"]


def summary_lines(char: Characterization, top: int = SUMMARY_TOP) -> list[str]:
    """Node and group counts, the top ops by roofline time, and the bottleneck distribution
    (:func:`turnkey_like.report.breakdown.breakdown_rows`)."""
    fusion = char.fusion.summary
    groups = f"{fusion.all_groups} fusion groups" if char.fusion.row_groups else "fusion groups not recorded"
    out = [f"{len(char.rows)} nodes, {groups} ({fusion.groups} of several ops, holding {fusion.fused_ops} "
           f"nodes); fusing them removes {format_bytes(fusion.removed_bytes)} of traffic"]
    if char.uncounted:
        out.append("not counted: " + ", ".join(f"{op} ×{n}" for op, n in char.uncounted.items()))
    out += ["", f"top ops by roofline time on {char.hardware.name}:"]
    multi = {g.id for g in char.fusion.groups}
    total = char.totals.roofline_time_s
    lines = []
    for i in char.top_ops[:top]:
        r = char.rows[i]
        share = f"{r.roofline_time_s / total:.1%}" if total else "-"
        lines.append([str(i + 1), short_op(r.op), r.module_path or "(model)", format_seconds(r.roofline_time_s),
                      share, _group(char, r, multi), r.bound])
    out += _table(["node", "op", "module", "time", "share", "group", "bound"], lines,
                  {"node", "time", "share", "group"})
    for axis in ("bound", "category"):
        out += ["", f"bottlenecks by {axis} (share of roofline time):"]
        out += _table([axis, "nodes", "time", "share", "FLOPs", "bytes"],
                      [[b.name, b.ops, b.time, b.share, b.flops, b.bytes] for b in breakdown_rows(char, axis)],
                      {"nodes", "time", "share", "FLOPs", "bytes"})
    out += ["", "show nodes with --start N --end M, --around N --context K, --max-nodes N or --filter TEXT"]
    return out


def explore_text(char: Characterization, rng: NodeRange, label: str = "") -> str:
    """What ``tk explore`` prints for one model call: the heading, then the summary (no range and no
    filter) or the selected nodes.

    Raises:
        InputError: see :func:`select`.
    """
    lines = heading(char, label)
    if rng.empty:
        lines += [""] + summary_lines(char)
    else:
        rows = select(char, rng)
        lines += [""] + node_lines(char, rows)
        if not rows:
            lines.append(f"(no node matches{' ' + repr(rng.text) if rng.text else ''})")
    return "\n".join(lines) + "\n"
