"""Terminal renderers of a :class:`~turnkey_like.characterize.record.Characterization`.

They only format numbers already in the record (computed once by ``characterize``); nothing here
counts, sums or classifies. Units: MACs and FLOPs with SI prefixes (1 MAC = 2 FLOPs), bytes with SI
prefixes (1 MB = 10^6 bytes, matching GB/s bandwidths), arithmetic intensity in FLOPs/byte, roofline
time in µs/ms/s.
"""

from __future__ import annotations

from typing import Any

MAC_NOTE = "1 MAC = 2 FLOPs"


def si(value: float | int | None, unit: str = "", digits: int = 3) -> str:
    """Format ``value`` with an SI prefix: ``si(4.1e9) == '4.10 G'``; ``None`` gives ``'-'``."""
    if value is None:
        return "-"
    v = float(value)
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.{digits}g} {prefix}{unit}".rstrip()
    if v == int(v):
        return f"{int(v)} {unit}".rstrip()
    return f"{v:.{digits}g} {unit}".rstrip()


def fmt_bytes(n: int | float | None) -> str:
    """Format a byte count with SI prefixes (``'1.23 MB'``)."""
    return si(n, "B")


def fmt_time(seconds: float | None) -> str:
    """Format seconds as ``ns``/``µs``/``ms``/``s`` with 3 significant digits."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s == 0:
        return "0 s"
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if s >= factor:
            return f"{s / factor:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_ai(ai: float | None) -> str:
    """Format an arithmetic intensity (FLOPs/byte)."""
    return "-" if ai is None else f"{ai:.3g}"


def fmt_shape(shapes: list) -> str:
    """Format a list of shapes as ``[1,3,224,224] [64]``."""
    return " ".join("[" + ",".join(str(d) for d in s) + "]" for s in shapes)


def _get(obj: Any, key: str):
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


# Only text columns give up width on narrow terminals (folded or shortened); numbers never do.
_WRAPPABLE = {"Module", "Input shapes", "Output shapes"}
_SHORTENED = {"Class": 24}


class _Section:
    """A titled rich table whose cells are plain text (no markup interpretation)."""

    def __init__(self, title: str, columns: list[tuple[str, str]]):
        from rich import box
        from rich.table import Table

        self.title = title
        self.table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for name, justify in columns:
            if name in _WRAPPABLE:
                self.table.add_column(name, justify=justify, overflow="fold")
            elif name in _SHORTENED:
                self.table.add_column(name, justify=justify, overflow="ellipsis", max_width=_SHORTENED[name])
            else:
                self.table.add_column(name, justify=justify, no_wrap=True, min_width=len(name))

    def add_row(self, *cells: str) -> None:
        from rich.text import Text

        self.table.add_row(*(Text(c) for c in cells))

    def print(self, console) -> None:
        from rich.text import Text

        console.print(Text(self.title, style="bold"))
        console.print(self.table)


def _table(title: str, columns: list[tuple[str, str]]) -> _Section:
    return _Section(title, columns)


def _hw_name(char) -> str:
    return char.hardware.get("description") or char.hardware.get("name", "?")


def render_profile(char, console, *, showshape: bool = False, top: int = 10, max_depth: int | None = None) -> None:
    """Print the full characterization of one model call to a rich ``console``.

    Sections: the per-module table (hierarchical, indented by depth; MACs, FLOPs, params, bytes,
    arithmetic intensity, bound, roofline time), the summary, the bottleneck breakdown (share of
    roofline time by op category and by bound), the ``top`` slowest ops (with input/output shapes
    when ``showshape``), fusion, and the ops that were not counted. ``max_depth`` hides deeper modules
    (their numbers stay inside their parents'). Every header states "1 MAC = 2 FLOPs".
    """
    hw = _hw_name(char)
    inputs = ", ".join(f"{k}: [{','.join(str(d) for d in v['shape'])}] {v['dtype']}" for k, v in char.inputs.items())
    from rich.text import Text

    console.print(Text(
        f"{char.model_class} ({inputs}) · dtype {char.dtype} · counted on {char.device}"
        f"{' (no weights)' if char.no_weights else ''} · trace: {char.trace.get('method', 'none')}"
    ))
    console.print(Text(f"Hardware: {hw} · ridge point {char.ridge_point:.3g} FLOPs/B · {MAC_NOTE}"))

    table = _table(
        f"Per module ({MAC_NOTE}; bytes = read + written, unfused; time = roofline estimate on {hw})",
        [("Module", "left"), ("Class", "left"), ("MACs", "right"), ("FLOPs", "right"), ("Params", "right"),
         ("Bytes", "right"), ("AI (FLOPs/B)", "right"), ("Bound", "left"), ("Time", "right")],
    )
    for m in char.modules:
        if max_depth is not None and m.depth > max_depth:
            continue
        name = "(model)" if m.path == "" else m.path.rsplit(".", 1)[-1]
        table.add_row(
            "  " * m.depth + name, m.class_name, si(m.macs), si(m.flops), si(m.params),
            fmt_bytes(m.bytes_read + m.bytes_written), fmt_ai(m.arithmetic_intensity), m.bound,
            fmt_time(m.roofline_time_s),
        )
    table.print(console)

    t = char.totals
    summary = _table(f"Summary ({MAC_NOTE})", [("Quantity", "left"), ("Value", "right")])
    fus = char.fusion.summary
    for label, value in (
        ("Parameters", f"{si(t.params)} ({fmt_bytes(t.param_bytes)})"),
        ("MACs", si(t.macs)),
        ("MACs in conv/matmul/attention", si(t.conv_matmul_macs)),
        ("FLOPs", si(t.flops)),
        ("Bytes read", fmt_bytes(t.bytes_read)),
        ("  of which weights", fmt_bytes(t.weight_bytes)),
        ("Bytes written", fmt_bytes(t.bytes_written)),
        ("Arithmetic intensity", f"{fmt_ai(t.arithmetic_intensity)} FLOPs/B"),
        ("Ridge point", f"{char.ridge_point:.3g} FLOPs/B"),
        ("Bound", t.bound),
        ("Roofline time", fmt_time(t.roofline_time_s)),
        ("Ops", f"{t.ops} ({t.uncounted_ops} not counted)"),
        ("Fusion groups (ops)", f"{fus.groups} ({fus.fused_ops})"),
        ("Traffic removed by fusion", f"{fmt_bytes(fus.removed_bytes)} ({fus.removed_fraction:.1%})"),
        ("AI after fusion", f"{fmt_ai(fus.arithmetic_intensity_fused)} FLOPs/B"),
    ):
        summary.add_row(label, value)
    summary.print(console)

    cats = _table(
        f"Bottlenecks: share of roofline time by category ({MAC_NOTE})",
        [("Category", "left"), ("Ops", "right"), ("FLOPs", "right"), ("Bytes", "right"), ("Time", "right"),
         ("Share", "right")],
    )
    for cat, e in char.breakdown.get("by_category", {}).items():
        cats.add_row(cat, str(e["ops"]), si(e["flops"]), fmt_bytes(e["bytes"]), fmt_time(e["time_s"]),
                     f"{e['share']:.1%}")
    cats.print(console)
    bounds = _table(
        f"Bottlenecks: share of roofline time by bound on {hw}",
        [("Bound", "left"), ("Ops", "right"), ("FLOPs", "right"), ("Bytes", "right"), ("Time", "right"),
         ("Share", "right")],
    )
    for b, e in char.breakdown.get("by_bound", {}).items():
        bounds.add_row(b, str(e["ops"]), si(e["flops"]), fmt_bytes(e["bytes"]), fmt_time(e["time_s"]),
                       f"{e['share']:.1%}")
    bounds.print(console)

    if top:
        cols = [("#", "right"), ("Op", "left"), ("Module", "left"), ("Category", "left")]
        if showshape:
            cols += [("Input shapes", "left"), ("Output shapes", "left")]
        cols += [("FLOPs", "right"), ("Bytes", "right"), ("AI", "right"), ("Bound", "left"), ("Time", "right")]
        ops = _table(f"Top {min(top, len(char.top_ops))} ops by roofline time ({MAC_NOTE})", cols)
        for i in char.top_ops[:top]:
            r = char.rows[i]
            cells = [str(r["index"]), r["op"], r["module_path"] or "(model)", r["category"]]
            if showshape:
                cells += [fmt_shape(r["input_shapes"]), fmt_shape(r["output_shapes"])]
            cells += [si(r["flops"]), fmt_bytes(r["bytes_read"] + r["bytes_written"]),
                      fmt_ai(r["arithmetic_intensity"]), r["bound"], fmt_time(r["roofline_time_s"])]
            ops.add_row(*cells)
        ops.print(console)

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


def summary_lines(char) -> list[str]:
    """Return the few lines shown per invocation by ``tk benchmark --analyze-only``.

    MACs and FLOPs (stating 1 MAC = 2 FLOPs), memory traffic, arithmetic intensity and bound on the
    chosen hardware with its ridge point and roofline time, and the trace method. Formats only.
    """
    t = char.totals
    lines = [
        f"MACs {si(t.macs)} (conv/matmul {si(t.conv_matmul_macs)}) · FLOPs {si(t.flops)} ({MAC_NOTE})"
        f" · params {si(t.params)}",
        f"Memory traffic {fmt_bytes(t.bytes_read + t.bytes_written)} (read {fmt_bytes(t.bytes_read)}, "
        f"written {fmt_bytes(t.bytes_written)}; unfused)",
        f"Arithmetic intensity {fmt_ai(t.arithmetic_intensity)} FLOPs/B · {t.bound} on {_hw_name(char)} "
        f"(ridge {char.ridge_point:.3g} FLOPs/B) · roofline time {fmt_time(t.roofline_time_s)}",
    ]
    trace = char.trace or {}
    method = trace.get("method", "none")
    line = f"Trace: {method}" + (f" ({trace.get('node_count', 0)} nodes)" if method != "none" else "")
    if char.no_weights:
        line += " · counted without weights (meta tensors)"
    if char.uncounted:
        line += f" · not counted: {', '.join(f'{op} x{n}' for op, n in char.uncounted.items())}"
    lines.append(line)
    return lines
