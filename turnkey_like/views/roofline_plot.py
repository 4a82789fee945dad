"""Roofline plots (``tk profile --roofline PATH``, the HTML report): a :class:`RooflineChart` drawn
with matplotlib.

The chart is computed once by ``turnkey_like.characterize.roofline.roofline_chart`` (points, roofs,
ridge points, attainable FLOP/s per profile); this module only draws it. Log-log axes: x is
arithmetic intensity (FLOPs/byte), y is attainable FLOP/s (1 MAC = 2 FLOPs). Each profile's roof is
``min(peak, intensity x bandwidth)``, drawn as its two segments meeting at the ridge point, which is
marked and labelled. Modules are circles, fusion groups triangles; the first profile's points are
filled and the heaviest are labelled; other profiles' points are hollow, in their roof's colour.

matplotlib is used through its object API (``Figure`` on the Agg canvas, never ``pyplot``), so
nothing depends on a display or on global state. Output is PNG or SVG by the file's extension.
Every drawn series carries an SVG ``id`` (``tk-points-<kind>-<profile>``, ``tk-roof-<profile>``,
``tk-ridge-<profile>``, ``tk-label-<n>``) so a test or a page can find it.
"""

from __future__ import annotations

import io
from pathlib import Path

from turnkey_like.errors import InputError
from turnkey_like.records import RooflineChart
from turnkey_like.units import format_intensity, si

#: File extensions :func:`write_roofline` accepts, and the matplotlib format of each.
FORMATS = {".png": "png", ".svg": "svg"}
#: How many of the heaviest points (by roofline time on the first profile) get a text label.
LABELLED = 8
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_MARKERS = {"module": "o", "fusion group": "^"}


def _ids(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)


def point_label(point) -> str:
    """Short text naming a point: the module path (``(model)`` for the root), and for a fusion group
    its ops without the ``aten.``/overload parts (``conv1: convolution+native_batch_norm+relu_``)."""
    where = point.module_path or "(model)"
    if point.kind != "fusion group":
        return where
    ops = "+".join(name.split(".")[1] if name.count(".") >= 2 else name for name in point.op_names)
    return f"{where}: {ops}"


def figure(chart: RooflineChart, *, labelled: int = LABELLED):
    """Return a matplotlib ``Figure`` (on the Agg canvas) drawing ``chart``: the plot on the left, on
    the right the legend and the key of the numbered heaviest points (name, roofline time).

    Raises:
        InputError: the chart has no roof (no hardware profile).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from turnkey_like.units import format_seconds

    if not chart.roofs:
        raise InputError(f"roofline of {chart.title}: no hardware profile to draw")
    fig = Figure(figsize=(12, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=[2.3, 1])
    ax = fig.add_subplot(grid[0, 0])
    side = fig.add_subplot(grid[0, 1])
    side.axis("off")
    ax.set_xscale("log")
    ax.set_yscale("log")

    first = chart.roofs[0].name
    intensities = [p.arithmetic_intensity for p in chart.points if p.arithmetic_intensity]
    xs = intensities + [r.ridge_point for r in chart.roofs]
    x_lo, x_hi = min(xs) / 4, max(xs) * 4
    ys = [v for p in chart.points for v in p.attainable_flops.values() if v > 0]
    y_hi = max(r.peak_flops for r in chart.roofs) * 3
    y_lo = min(ys + [x_lo * min(r.memory_bandwidth for r in chart.roofs)]) / 3

    handles = []
    for i, roof in enumerate(chart.roofs):
        colour = _COLOURS[i % len(_COLOURS)]
        # The roof's two segments: the bandwidth slope up to the ridge point, then the flat peak.
        (line,) = ax.plot([x_lo, roof.ridge_point, x_hi], [x_lo * roof.memory_bandwidth, roof.peak_flops,
                          roof.peak_flops], color=colour, linewidth=2 if i == 0 else 1.5)
        line.set_gid(f"tk-roof-{_ids(roof.name)}")
        handles.append(Line2D([], [], color=colour, linewidth=2, label=(
            f"{roof.name}{' (Bound column)' if i == 0 else ''}: {roof.description}\n"
            f"{roof.dtype} {si(roof.peak_flops, 'FLOP/s')}, {si(roof.memory_bandwidth, 'B/s')}, "
            f"ridge {format_intensity(roof.ridge_point)} FLOPs/B")))
        (ridge,) = ax.plot([roof.ridge_point], [roof.peak_flops], marker="D", markersize=7, color=colour,
                           linestyle="none")
        ridge.set_gid(f"tk-ridge-{_ids(roof.name)}")
        ax.axvline(roof.ridge_point, color=colour, linestyle=":", linewidth=0.8)
        ax.annotate(f"ridge {format_intensity(roof.ridge_point)}", (roof.ridge_point, roof.peak_flops),
                    textcoords="offset points", xytext=(-8, 8), ha="right", fontsize=8, color=colour)

        for kind, marker in _MARKERS.items():
            pts = [p for p in chart.points if p.kind == kind and p.arithmetic_intensity
                   and p.attainable_flops.get(roof.name, 0) > 0]
            if not pts:
                continue
            coll = ax.scatter(
                [p.arithmetic_intensity for p in pts], [p.attainable_flops[roof.name] for p in pts],
                marker=marker, s=28 if kind == "module" else 40, zorder=3,
                facecolors=colour if i == 0 else "none", edgecolors=colour, alpha=0.75 if i == 0 else 0.6,
            )
            coll.set_gid(f"tk-points-{_ids(kind)}-{_ids(roof.name)}")
    handles += [Line2D([], [], marker=m, color="#555555", linestyle="none", label=(
        "module (its own ops, unfused)" if kind == "module" else "fusion group (fused)")) for kind, m in _MARKERS.items()]
    if len(chart.roofs) > 1:
        handles.append(Line2D([], [], marker="o", color="#555555", markerfacecolor="none", linestyle="none",
                              label="hollow: the same points on the other profiles"))

    key = []
    heavy = [p for p in chart.points if p.arithmetic_intensity and p.attainable_flops.get(first, 0) > 0]
    for n, p in enumerate(heavy[:labelled], start=1):
        text = ax.annotate(str(n), (p.arithmetic_intensity, p.attainable_flops[first]), textcoords="offset points",
                           xytext=(-4 - 7 * ((n - 1) % 3), -13 - 8 * ((n - 1) % 2)), fontsize=8, weight="bold")
        text.set_gid(f"tk-label-{n}")
        key.append(f"{n}. {point_label(p)}  {format_seconds(p.time_s[first])}")

    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("Arithmetic intensity (FLOPs/byte)")
    ax.set_ylabel("Attainable FLOP/s (roofline estimate; 1 MAC = 2 FLOPs)")
    subtitle = f"{len(chart.points)} point(s): modules' own ops and fusion groups"
    if chart.no_compute_modules:
        subtitle += f"; {chart.no_compute_modules} module(s) without FLOPs not shown"
    ax.set_title(f"Roofline: {chart.title}\n{subtitle}", fontsize=10)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    side.legend(handles=handles, loc="upper left", fontsize=7, frameon=False, borderaxespad=0)
    if key:
        side.text(0, 0.42, f"Heaviest (roofline time on {first}):\n" + "\n".join(key), transform=side.transAxes,
                  fontsize=7, va="top", family="monospace", wrap=True).set_gid("tk-key")
    return fig


def render_roofline(chart: RooflineChart, fmt: str = "png", *, labelled: int = LABELLED,
                    id_salt: str | None = None) -> bytes:
    """Return ``chart`` drawn as ``png`` or ``svg`` bytes.

    ``id_salt`` makes the SVG's internal ids unique (matplotlib's ``svg.hashsalt``), so several plots
    can be inlined in one HTML page without their ``<defs>`` colliding.
    """
    import matplotlib

    fig = figure(chart, labelled=labelled)
    buf = io.BytesIO()
    salt = {"svg.hashsalt": id_salt} if id_salt else {}
    with matplotlib.rc_context({"svg.fonttype": "path", **salt}):
        fig.savefig(buf, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def write_roofline(chart: RooflineChart, path: str | Path, *, labelled: int = LABELLED) -> Path:
    """Write ``chart`` to ``path`` as PNG or SVG (by its extension), atomically; return the path.

    Raises:
        InputError: another extension, or the path cannot be written.
    """
    from turnkey_like.files import write_atomic

    target = Path(path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise InputError(f"--roofline {path}: unknown picture format {target.suffix or '(none)'!r}",
                         hint=f"end the file name with one of: {', '.join(FORMATS)}")
    data = render_roofline(chart, fmt, labelled=labelled)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data, fsync=False)
    except OSError as e:
        raise InputError(f"--roofline {path}: cannot write ({e.strerror or e})", hint="choose a writable path") from None
    return target
