"""Graph pictures: the dataflow graph the counting pass recorded, as DOT, SVG, PNG or PDF.

The graph is the characterization's op rows (``Characterization.rows``) joined by their ``producers``
(the dataflow edges): it exists for every model that runs, traceable or not (BERT, GPT-2, DETR,
YOLOv8n, detection models with several inputs or outputs). This module only draws those records;
the numbers on a node (MACs, bound) and the repeated blocks it folds are read from the record.

A node is one op (id ``n<row index>``), or, with ``collapse=DEPTH``, one module at depth DEPTH with
everything below it (id ``m<module path>``; ``m`` alone is the model itself at depth 0). A node shows
the op (ATen name without ``aten.`` and overload) and its module, or the module and its class; its
output shape (the first output of the op, or of the module's last op); its MACs and its bound on the
record's hardware profile. Its fill colour is its bound (:data:`BOUND_COLOURS`, shown in a legend). In
SVG the node's element id is its node id, and its tooltip gives FLOPs, bytes, arithmetic intensity,
roofline time and fusion group.

With ``fold_repeats`` (the default) each run of identical blocks (``Characterization.repeats``: BERT's
12 layers) is drawn once, its first block, marked "×N": the other blocks' ops are drawn by the first
block's nodes, their edges to the rest of the graph come from those nodes, and the edges from one
block to the next are left out. The folded block's figures are one block's (every block has the same).

``dot`` (Graphviz) lays out SVG, PNG and PDF files; DOT output needs no program, and the HTML report
lays out the same DOT source in the page (``views.html``, with the WebAssembly build of Graphviz in
``views/assets/viz-global.js``), so it needs no program either. :func:`check_visualize_target` says
before a run whether a picture path can be written. Units: MACs with decimal SI prefixes
(1 MAC = 2 FLOPs), bytes decimal (``turnkey_like.units``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from turnkey_like.errors import InputError, TkError
from turnkey_like.records import Characterization, ModuleRow, OpRow
from turnkey_like.report.text import short_op
from turnkey_like.units import format_bytes, format_intensity, format_seconds, si

if TYPE_CHECKING:
    import graphviz

#: Fill colour of a node by its bound (ColorBrewer RdBu: red for compute, blue for memory, grey).
BOUND_COLOURS = {"compute-bound": "#f4a582", "memory-bound": "#92c5de", "no compute": "#e0e0e0"}
#: Output formats by file extension; ``dot`` is the DOT source itself (no layout program needed).
FORMATS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png", ".pdf": "pdf"}
#: Install line for Graphviz's ``dot`` program, in the error when it is missing.
INSTALL_HINT = "apt-get install graphviz (Debian/Ubuntu) or brew install graphviz (macOS)"


def _shape(shapes: list) -> str:
    """First output shape as ``1×64×56×56`` (``+2`` when there are more outputs), ``-`` without."""
    if not shapes:
        return "-"
    text = "×".join(str(d) for d in shapes[0]) or "scalar"
    return text + (f" +{len(shapes) - 1}" if len(shapes) > 1 else "")


class _Layout:
    """Which node draws each op row, which module nodes are folded "×N", and which edges to draw."""

    def __init__(self, char: Characterization, collapse: int | None, fold_repeats: bool):
        rows = char.rows
        self.char = char
        self.collapse = collapse
        alias: dict[int, int] = {}          # row -> the row that draws it (first block's twin)
        block: dict[int, dict[int, int]] = {}   # row -> {run number: block number} for folded runs
        self.folded: dict[str, int] = {}    # first block's path -> N
        if fold_repeats:
            for run_no, run in enumerate(char.repeats):
                blocks = [[r.index for r in rows if _inside(r.module_path, p)] for p in run.paths]
                if not blocks[0] or blocks[0][0] in alias or any(len(b) != len(blocks[0]) for b in blocks):
                    continue  # nested in a block already folded, or not the recorded shape
                self.folded[run.paths[0]] = len(run.paths)
                for b_no, members in enumerate(blocks):
                    for pos, i in enumerate(members):
                        block.setdefault(i, {})[run_no] = b_no
                        if b_no:
                            alias[i] = blocks[0][pos]

        def drawn_by(i: int) -> int:  # follow nested folds to the row that is drawn
            while i in alias:
                i = alias[i]
            return i

        self.node_of = [self._key(rows[drawn_by(r.index)]) for r in rows]
        self.nodes: dict[str, list[OpRow]] = {}  # node id -> the rows it draws (first block only)
        for r in rows:
            if r.index not in alias:
                self.nodes.setdefault(self.node_of[r.index], []).append(r)
        edges: dict[tuple[str, str], None] = {}
        for r in rows:
            target = self.node_of[r.index]
            for p in r.producers:
                source = self.node_of[p]
                if source == target:
                    continue
                a, b = block.get(p, {}), block.get(r.index, {})
                if any(run in b and b[run] != n for run, n in a.items()):
                    continue  # one block feeding the next: drawn once, as the "×N"
                edges[(source, target)] = None
        self.edges = list(edges)

    def _key(self, row: OpRow) -> str:
        if self.collapse is None:
            return f"n{row.index}"
        parts = row.module_path.split(".") if row.module_path else []
        if len(parts) < self.collapse:
            return f"n{row.index}"
        return "m" + ".".join(parts[: self.collapse])


def _cost(macs: int | None, bound: str) -> str:
    """``MACs 118 M · compute-bound``; the bound alone for an op or module with no MACs."""
    return f"MACs {si(macs)} · {bound}" if macs else bound


def _inside(path: str, block: str) -> bool:
    return path == block or path.startswith(block + ".")


def _tooltip(row_or_module, char: Characterization, group: str) -> str:
    m = row_or_module
    return (f"FLOPs {si(m.flops)} (1 MAC = 2 FLOPs) | bytes {format_bytes(m.bytes)} | "
            f"AI {format_intensity(m.arithmetic_intensity)} FLOPs/byte | {m.bound} | "
            f"roofline {format_seconds(m.roofline_time_s)} on {char.hardware.name}{group}")


def graph_dot(char: Characterization, *, collapse: int | None = None, fold_repeats: bool = True,
              title: str = "") -> graphviz.Digraph:
    """Return the dataflow graph of ``char`` as a :class:`graphviz.Digraph` (see the module docstring).

    Args:
        char: the characterization record (its rows, producers, modules, repeats, hardware).
        collapse: draw each module at this depth (1 = the model's children) as one node holding
            everything below it; ``None`` draws every op. Ops of shallower modules stay op nodes.
        fold_repeats: draw each run of identical blocks once, marked "×N".
        title: first line of the graph's label (e.g. the model and invocation); the second gives the
            hardware profile, its ridge point and ``1 MAC = 2 FLOPs``.

    Node ids are stable: ``n<row index>`` for op nodes, ``m<module path>`` for module nodes; every
    other node (the legend's) starts with ``legend``.

    Raises:
        InputError: ``collapse`` is negative.
    """
    import graphviz

    _check_collapse(collapse)
    layout = _Layout(char, collapse, fold_repeats)
    modules: dict[str, ModuleRow] = {m.path: m for m in char.modules}
    groups = char.fusion.row_groups
    g = graphviz.Digraph("tk", strict=False)
    hw = char.hardware
    heading = title or char.model_class
    g.attr(label=f"{heading}\\n{hw.name} ({hw.description}), ridge point {char.ridge_point:.3g} FLOPs/byte; "
                 f"1 MAC = 2 FLOPs", labelloc="t", fontname="Helvetica", fontsize="12", rankdir="TB")
    g.attr("node", shape="box", style="rounded,filled", fontname="Helvetica", fontsize="9", margin="0.08,0.03")
    g.attr("edge", arrowsize="0.6", color="#555555")

    clusters: dict[str, graphviz.Digraph] = {}
    for node_id, members in layout.nodes.items():
        if node_id.startswith("m"):
            path = node_id[1:]
            mod = modules.get(path)
            times = layout.folded.get(path)
            name = (path or char.model_class) + (f" ({mod.class_name})" if mod and path else "")
            label = "\\n".join([name + (f" ×{times}" if times else ""), _shape(members[-1].output_shapes),
                                _cost(mod.macs if mod else None, mod.bound if mod else "?")])
            fill = BOUND_COLOURS.get(mod.bound if mod else "", "#ffffff")
            tip = (f"{path or char.model_class}: {len(members)} ops" + (f", one of {times} identical blocks" if times else "")
                   + (" | " + _tooltip(mod, char, "") if mod else ""))
        else:
            r = members[0]
            where = r.module_path or "(model)"
            label = "\\n".join([f"{short_op(r.op)} · {where}", _shape(r.output_shapes), _cost(r.macs, r.bound)])
            fill = BOUND_COLOURS.get(r.bound, "#ffffff")
            group = f" | fusion group {groups[r.index]}" if groups else ""
            tip = f"#{r.index + 1} {r.op} in {where} ({r.module_class}) | " + _tooltip(r, char, group)
        owners = [p for p in layout.folded if _inside(members[0].module_path, p) and node_id != f"m{p}"]
        target = _cluster(max(owners, key=len), clusters, layout.folded) if owners else g
        target.node(node_id, label=label, fillcolor=fill, id=node_id, tooltip=tip)
    # Nest each folded block's cluster in the cluster of the block around it, innermost first
    # (graphviz copies a subgraph's body when it is added).
    for path in sorted(clusters, key=len, reverse=True):
        outer = [p for p in clusters if p != path and _inside(path, p)]
        (clusters[max(outer, key=len)] if outer else g).subgraph(clusters[path])
    for source, dest in layout.edges:
        g.edge(source, dest)

    legend = graphviz.Digraph("cluster_legend")
    legend.attr(label="bound", fontname="Helvetica", fontsize="10", style="rounded", color="#888888")
    previous = None
    for bound, colour in BOUND_COLOURS.items():
        node = "legend_" + bound.replace(" ", "_").replace("-", "_")
        legend.node(node, label=bound, fillcolor=colour, id=node)
        if previous:
            legend.edge(previous, node, style="invis")
        previous = node
    g.subgraph(legend)
    return g


def _cluster(path: str, clusters: dict, folded: dict[str, int]):
    """The dashed box around the drawn block of a folded run (made on first use)."""
    import graphviz

    sub = clusters.get(path)
    if sub is None:
        sub = clusters[path] = graphviz.Digraph(f"cluster_{len(clusters)}")
        sub.attr(label=f"{path} ×{folded[path]} (identical blocks, one drawn)", style="dashed",
                 fontname="Helvetica", fontsize="10", color="#888888")
    return sub


def _dot_program_error(path: Path) -> InputError:
    return InputError(f"cannot write {path}: Graphviz's `dot` program is not installed ({INSTALL_HINT}); "
                      "--html page.html draws the graph without it, and .dot output needs nothing")


def _check_collapse(collapse: int | None) -> None:
    if collapse is not None and collapse < 0:
        raise InputError(f"--collapse {collapse}: must be 0 or more (1 = the model's children)")


def check_visualize_target(path: str | Path, collapse: int | None = None) -> str:
    """Return the picture format (``dot``, ``svg``, ``png``, ``pdf``) of ``path``, by its extension,
    once sure it can be written: the CLI calls it before a run, so no model runs for a picture that
    cannot be drawn. ``collapse``: the ``--collapse`` depth, checked too.

    Raises:
        InputError: an extension other than those of :data:`FORMATS`; SVG, PNG or PDF and Graphviz's
            ``dot`` is not on ``PATH`` (one line naming both fixes: install Graphviz, or ``--html``);
            a negative ``collapse``.
    """
    _check_collapse(collapse)
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"--visualize {path}: unknown picture format '{path.suffix}'",
                         hint="use .svg, .png, .pdf or .dot")
    if fmt != "dot" and shutil.which("dot") is None:
        raise _dot_program_error(path)
    return fmt


def render_graph(char: Characterization, path: str | Path, *, collapse: int | None = None,
                 fold_repeats: bool = True, title: str = "") -> Path:
    """Write the graph picture of ``char`` to ``path`` and return it; the format is the extension's.

    ``.dot``/``.gv``: the DOT source (no program needed); ``.svg``, ``.png``, ``.pdf``: laid out by
    Graphviz's ``dot``. Written atomically (``turnkey_like.files.write_atomic``); the folder is made.

    Raises:
        InputError: an extension other than those, a negative ``collapse``, or ``dot`` is not
            installed (:func:`check_visualize_target`'s one line).
        TkError: ``dot`` failed.
    """
    from turnkey_like.files import write_atomic

    path = Path(path)
    fmt = check_visualize_target(path, collapse)
    g = graph_dot(char, collapse=collapse, fold_repeats=fold_repeats, title=title)
    data = g.source.encode() if fmt == "dot" else _layout_with_dot(g, fmt, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return path


def _layout_with_dot(g: graphviz.Digraph, fmt: str, path: Path) -> bytes:
    """Run ``dot`` on ``g`` and return the ``fmt`` bytes (InputError when dot is missing, TkError when it fails)."""
    import graphviz

    if shutil.which("dot") is None:
        raise _dot_program_error(path)
    try:
        return g.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise _dot_program_error(path) from None
    except graphviz.CalledProcessError as e:
        from turnkey_like.errors import one_line

        raise TkError(f"cannot write {path}: dot failed: {one_line(e)}") from None


def graph_svg(char: Characterization, *, collapse: int | None = None, fold_repeats: bool = True,
              title: str = "") -> str:
    """The graph picture of ``char`` as SVG text, laid out by Graphviz's ``dot``; ids as in :func:`graph_dot`.

    (The HTML report does not use it: it lays out :func:`graph_dot`'s source in the page.)

    Raises:
        InputError: ``dot`` is not installed.
        TkError: ``dot`` failed.
    """
    g = graph_dot(char, collapse=collapse, fold_repeats=fold_repeats, title=title)
    return _layout_with_dot(g, "svg", Path("graph.svg")).decode()
