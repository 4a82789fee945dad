"""Graph pictures: the dataflow graph the counting pass recorded, as DOT, SVG, PNG or PDF.

The graph is the characterization's op rows (``Characterization.rows``) joined by their ``producers``
(the dataflow edges): it exists for every model that runs, traceable or not (BERT, GPT-2, DETR,
YOLOv8n, detection models with several inputs or outputs). This module only draws those records;
the numbers on a node (MACs, bound) and the repeated blocks it folds are read from the record.

A node is one op (id ``n<row index>``, the ``OpRow.index`` that ``tk profile``, ``tk explore`` and
the HTML page number it by), or, with ``collapse=DEPTH``, one module at depth DEPTH with everything
below it (id ``m<module path>``; ``m`` alone is the model itself at depth 0). A node shows the op
(ATen name without ``aten.`` and overload) and its module, or the module and its class; its output
shape (the first output of the op, or of the module's last op); its MACs and its bound, and its
roofline time, on the record's hardware profile; and with a per-layer run (``per_layer``), its
measured time per iteration and its share of the profiled run (``PerLayerResult.op_ms``,
``module_measure``). Its fill colour is its bound (:data:`BOUND_COLOURS`), or with
``color_by="measured"`` its share of the measured time (:data:`SHARE_COLOURS`); a legend shows the
colours. In SVG the node's element id is its node id, and its tooltip gives FLOPs, bytes,
arithmetic intensity, roofline time and fusion group.

The graph's inputs are nodes too (``input_<k>``, one per distinct shape and dtype among
``Characterization.inputs``, inputs that share both sharing a node): an edge goes to every op that
reads no earlier op and reads a tensor of that shape (so BERT's attention-mask branch hangs from its
input instead of floating loose). One ``output`` node takes an edge from every op whose result no
later op reads.

With ``fold_repeats`` (the default) each run of identical blocks (``Characterization.repeats``: BERT's
12 layers) is drawn once, its first block, marked "×N": the other blocks' ops are drawn by the first
block's nodes, their edges to the rest of the graph come from those nodes, and the edges from one
block to the next are left out. Blocks are identical only when identical in cost (same ops, shapes,
parameters and MACs per op: ``characterize.assemble.find_repeats``), so no costlier block hides
behind a cheaper one; a run recorded before costs were compared, whose blocks' module rows differ,
is drawn unfolded. The folded block's figures are each block's (every block has the same), and its
labels say "each" (its dashed box, "×N (figures each)" on a module node, "MACs ... each" and
"roofline ... each" on its nodes).

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
from turnkey_like.records import Characterization, ModuleRow, OpRow, PerLayerResult
from turnkey_like.report.text import short_op
from turnkey_like.units import format_bytes, format_intensity, format_ms, format_seconds, si

if TYPE_CHECKING:
    import graphviz

#: Fill colour of a node by its bound (ColorBrewer RdBu: red for compute, blue for memory, grey).
BOUND_COLOURS = {"compute-bound": "#f4a582", "memory-bound": "#92c5de", "no compute": "#e0e0e0"}
#: Fill colour of a node by its share of the measured time (``--color-by measured``): ColorBrewer
#: YlOrRd, from the upper bound of each share band; nodes with no measured time are white.
SHARE_COLOURS = ((0.005, "#ffffb2"), (0.02, "#fecc5c"), (0.05, "#fd8d3c"), (0.15, "#f03b20"), (1.01, "#bd0026"))
#: What ``color_by`` takes: the bound on the record's profile, or the share of the measured time.
COLOR_BY = ("bound", "measured")
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
            for run_no, run in enumerate(char.identical_runs()):
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
        read = {p for r in rows for p in r.producers}
        self.inputs: dict[tuple, list[str]] = {}  # (shape, dtype) -> input names
        for name, desc in char.inputs.items():
            self.inputs.setdefault((tuple(desc.shape), desc.dtype), []).append(name)
        node_of_input = {key[0]: f"input_{k}" for k, key in enumerate(self.inputs)}
        for r in rows:
            if not r.producers:
                for shape in r.input_shapes:
                    if tuple(shape) in node_of_input:
                        edges[(node_of_input[tuple(shape)], self.node_of[r.index])] = None
            if r.index not in read and r.index not in alias:
                edges[(self.node_of[r.index], "output")] = None
        self.edges = list(edges)

    def _key(self, row: OpRow) -> str:
        if self.collapse is None:
            return f"n{row.index}"
        parts = row.module_path.split(".") if row.module_path else []
        if len(parts) < self.collapse:
            return f"n{row.index}"
        return "m" + ".".join(parts[: self.collapse])


def _cost(macs: int | None, bound: str, each: bool = False) -> str:
    """``MACs 118 M · compute-bound`` (``MACs 118 M each · ...`` inside a folded block); the bound
    alone for an op or module with no MACs."""
    return f"MACs {si(macs)}{' each' if each else ''} · {bound}" if macs else bound


def _inside(path: str, block: str) -> bool:
    return path == block or path.startswith(block + ".")


def _share_colour(share: float | None) -> str:
    """The :data:`SHARE_COLOURS` fill of a share of the measured time (white without one)."""
    if share is None or share <= 0:
        return "#ffffff"
    return next(colour for bound, colour in SHARE_COLOURS if share < bound)


def _time_line(roofline_s: float, measured_ms: float | None, share: float | None, folded: bool = False) -> str:
    """``roofline 4.33 ms · measured 4.95 ms (6.3%)`` (the measured part only with a measurement); in a
    folded block, ``roofline 4.33 ms each · measured 4.95 ms (6.3%) in block 1``: the roofline time is
    every block's, the measured time the drawn (first) block's."""
    text = f"roofline {format_seconds(roofline_s)}" + (" each" if folded else "")
    if measured_ms is not None:
        text += f" · measured {format_ms(measured_ms)}" + (f" ({share:.1%})" if share is not None else "")
        text += " in block 1" if folded else ""
    return text


def _tooltip(row_or_module, char: Characterization, group: str) -> str:
    m = row_or_module
    return (f"FLOPs {si(m.flops)} (1 MAC = 2 FLOPs) | bytes {format_bytes(m.bytes)} | "
            f"AI {format_intensity(m.arithmetic_intensity)} FLOPs/byte | {m.bound} | "
            f"roofline {format_seconds(m.roofline_time_s)} on {char.hardware.name}{group}")


def graph_dot(char: Characterization, *, collapse: int | None = None, fold_repeats: bool = True,
              title: str = "", per_layer: PerLayerResult | None = None, measured_label: str = "",
              color_by: str = "bound") -> graphviz.Digraph:
    """Return the dataflow graph of ``char`` as a :class:`graphviz.Digraph` (see the module docstring).

    Args:
        char: the characterization record (its rows, producers, modules, repeats, hardware).
        collapse: draw each module at this depth (1 = the model's children) as one node holding
            everything below it; ``None`` draws every op. Ops of shallower modules stay op nodes.
        fold_repeats: draw each run of identical blocks once, marked "×N".
        title: first line of the graph's label (e.g. the model and invocation); the second gives the
            hardware profile, its ridge point and ``1 MAC = 2 FLOPs``.
        per_layer: a per-layer run of the same invocation: each node also shows its measured time
            per iteration and share of the profiled run.
        measured_label: the run's name for the label (``onnxruntime 1.31.1, CPU``).
        color_by: ``bound`` (default) or ``measured`` (share of the measured time; needs ``per_layer``).

    Node ids are stable: ``n<row index>`` for op nodes, ``m<module path>`` for module nodes,
    ``input_<k>`` and ``output`` for the graph's inputs and output; every other node (the legend's)
    starts with ``legend``.

    Raises:
        InputError: ``collapse`` is negative, ``color_by`` unknown, or ``measured`` without ``per_layer``.
    """
    import graphviz

    _check_collapse(collapse)
    check_color_by(color_by, per_layer is not None)
    layout = _Layout(char, collapse, fold_repeats)
    measured = per_layer if per_layer is not None and per_layer.op_ms else None
    modules: dict[str, ModuleRow] = {m.path: m for m in char.modules}
    groups = char.fusion.row_groups
    g = graphviz.Digraph("tk", strict=False)
    hw = char.hardware
    heading = title or char.model_class
    measured_note = (f"\\nmeasured on {measured_label or 'a per-layer run'}: ms per iteration (share of the profiled run)"
                     if per_layer is not None else "")
    g.attr(label=f"{heading}\\n{hw.name} ({hw.description}), ridge point {char.ridge_point:.3g} FLOPs/byte; "
                 f"1 MAC = 2 FLOPs{measured_note}", labelloc="t", fontname="Helvetica", fontsize="12", rankdir="TB")
    g.attr("node", shape="box", style="rounded,filled", fontname="Helvetica", fontsize="9", margin="0.08,0.03")
    g.attr("edge", arrowsize="0.6", color="#555555")

    clusters: dict[str, graphviz.Digraph] = {}
    for node_id, members in layout.nodes.items():
        where_path = node_id[1:] if node_id.startswith("m") else members[0].module_path
        owners = [p for p in layout.folded if _inside(where_path, p) and node_id != f"m{p}"]
        inside_fold = bool(owners)
        if node_id.startswith("m"):
            path = node_id[1:]
            mod = modules.get(path)
            times = layout.folded.get(path)
            name = (path or char.model_class) + (f" ({mod.class_name})" if mod and path else "")
            seen = per_layer.module_measure(path) if per_layer is not None else None
            spent = seen.measured_ms if seen is not None else None
            share = seen.share if seen is not None else None
            label = "\\n".join([name + (f" ×{times} (figures each)" if times else ""), _shape(members[-1].output_shapes),
                                _cost(mod.macs if mod else None, mod.bound if mod else "?", each=bool(times or owners)),
                                _time_line(mod.roofline_time_s if mod else 0.0, spent, share, folded=bool(times or owners))])
            fill = BOUND_COLOURS.get(mod.bound if mod else "", "#ffffff")
            tip = (f"{path or char.model_class}: {len(members)} ops" + (f", one of {times} identical blocks" if times else "")
                   + (" | " + _tooltip(mod, char, "") if mod else ""))
        else:
            r = members[0]
            where = r.module_path or "(model)"
            spent = measured.op_time(r.index) if measured is not None else None
            share = measured.op_share(r.index) if measured is not None else None
            label = "\\n".join([f"{short_op(r.op)} · {where}", _shape(r.output_shapes),
                                _cost(r.macs, r.bound, each=inside_fold),
                                _time_line(r.roofline_time_s, spent, share, folded=inside_fold)])
            fill = BOUND_COLOURS.get(r.bound, "#ffffff")
            group = f" | fusion group {groups[r.index]}" if groups else ""
            tip = f"#{r.index} {r.op} in {where} ({r.module_class}) | " + _tooltip(r, char, group)
        if color_by == "measured":
            fill = _share_colour(share)
        target = _cluster(max(owners, key=len), clusters, layout.folded) if owners else g
        target.node(node_id, label=label, fillcolor=fill, id=node_id, tooltip=tip)
    # Nest each folded block's cluster in the cluster of the block around it, innermost first
    # (graphviz copies a subgraph's body when it is added).
    for path in sorted(clusters, key=len, reverse=True):
        outer = [p for p in clusters if p != path and _inside(path, p)]
        (clusters[max(outer, key=len)] if outer else g).subgraph(clusters[path])
    for k, ((shape, dtype), names) in enumerate(layout.inputs.items()):
        text = f"input: {', '.join(names)}\\n{'×'.join(str(d) for d in shape) or 'scalar'} {dtype}"
        g.node(f"input_{k}", label=text, shape="oval", style="filled", fillcolor="#ffffff", id=f"input_{k}")
    if any(dest == "output" for _, dest in layout.edges):
        g.node("output", label="output", shape="oval", style="filled", fillcolor="#ffffff", id="output")
    for source, dest in layout.edges:
        g.edge(source, dest)
    g.subgraph(_legend(color_by))
    return g


def _legend(color_by: str):
    """The legend's cluster: the bound colours, or the measured-share bands."""
    import graphviz

    legend = graphviz.Digraph("cluster_legend")
    if color_by == "measured":
        title = "share of measured time"
        lower = [0.0] + [b for b, _ in SHARE_COLOURS[:-1]]
        items = [(f"{lo:.1%}-{hi:.1%}" if hi <= 1 else f"{lo:.0%} or more", colour)
                 for lo, (hi, colour) in zip(lower, SHARE_COLOURS)]
        items.append(("not measured", "#ffffff"))
    else:
        title = "bound"
        items = list(BOUND_COLOURS.items())
    legend.attr(label=title, fontname="Helvetica", fontsize="10", style="rounded", color="#888888")
    previous = None
    for k, (text, colour) in enumerate(items):
        node = "legend_" + (text.replace(" ", "_").replace("-", "_") if color_by == "bound" else f"share_{k}")
        legend.node(node, label=text, fillcolor=colour, id=node)
        if previous:
            legend.edge(previous, node, style="invis")
        previous = node
    return legend


def check_color_by(color_by: str, measured: bool) -> None:
    """Raise :class:`InputError` for a ``--color-by`` other than :data:`COLOR_BY`, or ``measured``
    without a per-layer run (``measured`` is whether there is one)."""
    if color_by not in COLOR_BY:
        raise InputError(f"--color-by {color_by}: unknown", hint=f"choose one of: {', '.join(COLOR_BY)}")
    if color_by == "measured" and not measured:
        raise InputError("--color-by measured: this invocation has no per-layer run to colour by",
                         hint="run `tk benchmark --per-layer` on it first")


def _cluster(path: str, clusters: dict, folded: dict[str, int]):
    """The dashed box around the drawn block of a folded run (made on first use)."""
    import graphviz

    sub = clusters.get(path)
    if sub is None:
        sub = clusters[path] = graphviz.Digraph(f"cluster_{len(clusters)}")
        sub.attr(label=f"{path} ×{folded[path]} (identical blocks, one drawn; figures are each block's)", style="dashed",
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
                 fold_repeats: bool = True, title: str = "", per_layer: PerLayerResult | None = None,
                 measured_label: str = "", color_by: str = "bound") -> Path:
    """Write the graph picture of ``char`` to ``path`` and return it; the format is the extension's.

    ``.dot``/``.gv``: the DOT source (no program needed); ``.svg``, ``.png``, ``.pdf``: laid out by
    Graphviz's ``dot``. Written atomically (``turnkey_like.files.write_atomic``); the folder is made.
    ``per_layer``, ``measured_label``, ``color_by``: as in :func:`graph_dot`.

    Raises:
        InputError: an extension other than those, a negative ``collapse``, or ``dot`` is not
            installed (:func:`check_visualize_target`'s one line).
        TkError: ``dot`` failed.
    """
    from turnkey_like.files import write_atomic

    path = Path(path)
    fmt = check_visualize_target(path, collapse)
    g = graph_dot(char, collapse=collapse, fold_repeats=fold_repeats, title=title, per_layer=per_layer,
                  measured_label=measured_label, color_by=color_by)
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
