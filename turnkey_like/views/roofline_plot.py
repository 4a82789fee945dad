"""Roofline plots (``tk profile --roofline PATH``, the HTML report): a :class:`RooflineChart` drawn
with matplotlib, with the measured points of a per-layer run under it.

The chart is computed once by ``turnkey_like.characterize.roofline.roofline_chart`` (points, roofs,
ridge points, attainable FLOP/s per profile); the measured points by
``PerLayerResult.achieved_points``; this module only draws them. Log-log axes: x is arithmetic
intensity (FLOPs/byte), y is FLOP/s (1 MAC = 2 FLOPs). Each profile's roof is
``min(peak, intensity x bandwidth)``, drawn as its two segments meeting at the ridge point, which is
marked and labelled; a roof whose profile was measured on a busy machine says so in its label
(:func:`roof_note`). Modules are circles, fusion groups triangles; the first profile's predicted
points are filled in its colour, other profiles' hollow in theirs. Without measurements the plot
says that every point is a prediction (on the roof by construction). With a per-layer run
(:class:`Measured`), each module's and each fusion group's *achieved* FLOP/s (its FLOPs ÷ its
measured time) is drawn at the same intensity in black, marker area ∝ its share of the measured
time, labelled ``measured (RUNTIME)`` in the legend, as Nsight Compute, Intel Advisor and AMD
TraceLens draw achieved points under the roof; the labelled points' predicted and measured markers
are joined by a dotted line.

Labels never overprint: each number is placed by :func:`place_labels`, which tries positions around
its point, nearest first, and keeps the first whose box overlaps no label placed before (in the
laid-out figure's display coordinates).

matplotlib is used through its object API (``Figure`` on the Agg canvas, never ``pyplot``), so
nothing depends on a display or on global state. Output is PNG, SVG or PDF by the file's extension.
Every drawn series carries an SVG ``id`` (``tk-points-<kind>-<profile>``, ``tk-measured-<kind>``,
``tk-roof-<profile>``, ``tk-ridge-<profile>``, ``tk-label-<n>``, ``tk-pair-<n>``) so a test or a
page can find it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

from turnkey_like.errors import InputError
from turnkey_like.records import HardwareProfile, RooflineChart
from turnkey_like.records.benchmark import MeasuredPoint
from turnkey_like.units import format_intensity, format_ms, si

#: File extensions :func:`write_roofline` accepts, and the matplotlib format of each.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
#: How many of the heaviest points (by roofline time on the first profile) get a text label.
LABELLED = 8
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_MARKERS = {"module": "o", "fusion group": "^"}
#: Measured markers: area in points² of a point holding the whole measured time (area ∝ share).
MEASURED_AREA = 900.0
#: Smallest measured marker, points² (a share too small to see still shows).
MEASURED_MIN_AREA = 6.0
#: Label offsets tried around a point, in points, nearest first (:func:`place_labels`).
_OFFSETS = [(dx * r, dy * r) for r in (1, 2, 3.2) for dx, dy in
            ((5, 5), (5, -13), (-12, 5), (-12, -13), (8, -4), (-16, -4), (-3, 9), (-3, -17))]


class Measured(NamedTuple):
    """A per-layer run's points for the plot: ``label`` names the run (``onnxruntime 1.31.1, CPU``),
    ``points`` are ``PerLayerResult.achieved_points``."""

    label: str
    points: list[MeasuredPoint]


def roofline_of(char, profiles: list[HardwareProfile], title: str, per_layer=None,
                label: str | None = None) -> tuple[RooflineChart, Measured | None, dict[str, str]]:
    """What a roofline plot of ``char`` (a ``Characterization``) draws: the chart under its own profile
    and ``profiles`` (and, with a per-layer run ``per_layer``, the profile it was measured on), the
    run's achieved points labelled ``label``, and the notes of the roofs that need one. The one place
    ``--roofline`` files and the HTML page put those together."""
    from turnkey_like.characterize.roofline import roofline_chart

    extra = [per_layer.hardware] if per_layer is not None and per_layer.hardware is not None else []
    chosen = [*profiles, *extra]
    measured = Measured(label, per_layer.achieved_points(char)) if per_layer is not None else None
    notes = {p.name: note for p in (char.hardware, *chosen) if (note := roof_note(p))}
    return roofline_chart(char, chosen, title=title), measured, notes


def _ids(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)


def roof_note(profile: HardwareProfile) -> str | None:
    """What a roof's label says about its profile's trust: ``measured busy`` when the local profile
    was measured while other processes kept the CPU busy, else its first warning, else ``None``."""
    if profile.load is not None and profile.load.busy:
        return "measured busy"
    return profile.warnings[0] if profile.warnings else None


def point_label(point) -> str:
    """Short text naming a point: the module path (``(model)`` for the root), and for a fusion group
    its ops without the ``aten.``/overload parts (``conv1: convolution+native_batch_norm+relu_``)."""
    where = point.module_path or "(model)"
    if point.kind != "fusion group":
        return where
    ops = "+".join(name.split(".")[1] if name.count(".") >= 2 else name for name in point.op_names)
    return f"{where}: {ops}"


def _same(a, b) -> bool:
    return a.kind == b.kind and a.module_path == b.module_path and list(a.op_names) == list(b.op_names)


def place_labels(ax, texts) -> None:
    """Move each annotation in ``texts`` (in order) to the first offset of :data:`_OFFSETS` whose
    text box overlaps no box placed before it; the figure must be laid out (drawn) already. A label
    that finds no free place keeps the last offset tried."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for text in texts:
        for offset in _OFFSETS:
            text.set_position(offset)
            box = text.get_window_extent(renderer).expanded(1.08, 1.15)
            if not any(box.overlaps(other) for other in placed):
                break
        placed.append(text.get_window_extent(renderer).expanded(1.08, 1.15))


def label_boxes(fig) -> list:
    """The display-space boxes of the numbered labels (``tk-label-<n>``) of a figure from :func:`figure`."""
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for ax in fig.axes for t in ax.texts
            if (t.get_gid() or "").startswith("tk-label-")]


def _draw_roofs(ax, chart: RooflineChart, x_lo: float, x_hi: float, notes: dict[str, str]) -> list:
    """Each profile's roof, ridge point and predicted points on ``ax``; returns the roofs' legend handles."""
    from matplotlib.lines import Line2D

    handles = []
    for i, roof in enumerate(chart.roofs):
        colour = _COLOURS[i % len(_COLOURS)]
        # The roof's two segments: the bandwidth slope up to the ridge point, then the flat peak.
        (line,) = ax.plot([x_lo, roof.ridge_point, x_hi], [x_lo * roof.memory_bandwidth, roof.peak_flops,
                          roof.peak_flops], color=colour, linewidth=2 if i == 0 else 1.5)
        line.set_gid(f"tk-roof-{_ids(roof.name)}")
        note = notes.get(roof.name)
        handles.append(Line2D([], [], color=colour, linewidth=2, label=(
            f"{roof.name}{' (Bound column)' if i == 0 else ''}: {roof.description}\n"
            f"{roof.dtype} {si(roof.peak_flops, 'FLOP/s')}, {si(roof.memory_bandwidth, 'B/s')}, "
            f"ridge {format_intensity(roof.ridge_point)} FLOPs/B" + (f"\n({note})" if note else ""))))
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
    return handles


def _number_points(ax, side, chart: RooflineChart, achieved: list[MeasuredPoint], labelled: int) -> list:
    """Number the ``labelled`` heaviest points (at their measured point when there is one, joined to
    the predicted one by a dotted line) and write their key on ``side``; returns the number texts."""
    from turnkey_like.units import format_seconds

    first = chart.roofs[0].name
    key, texts = [], []
    heavy = [p for p in chart.points if p.arithmetic_intensity and p.attainable_flops.get(first, 0) > 0]
    for n, p in enumerate(heavy[:labelled], start=1):
        mine = next((m for m in achieved if _same(m, p)), None)
        at = (p.arithmetic_intensity, p.attainable_flops[first])
        entry = f"{n}. {point_label(p)}  roofline {format_seconds(p.time_s[first])}"
        if mine is not None:
            (pair,) = ax.plot([at[0], mine.arithmetic_intensity], [at[1], mine.achieved_flops], color="#777777",
                              linestyle=":", linewidth=0.8, zorder=2)
            pair.set_gid(f"tk-pair-{n}")
            at = (mine.arithmetic_intensity, mine.achieved_flops)
            entry += f", measured {format_ms(mine.measured_ms)}"
        text = ax.annotate(str(n), at, textcoords="offset points", xytext=_OFFSETS[0], fontsize=8, weight="bold",
                           zorder=5)
        text.set_gid(f"tk-label-{n}")
        texts.append(text)
        key.append(entry)
    if key:
        where = "measured point when measured" if achieved else "predicted point"
        side.text(0, 0.36, f"Heaviest (roofline time on {first}; the number sits at the {where}):\n" + "\n".join(key),
                  transform=side.transAxes, fontsize=7, va="top", family="monospace", wrap=True).set_gid("tk-key")
    return texts


def figure(chart: RooflineChart, *, labelled: int = LABELLED, measured: Measured | None = None,
           roof_notes: dict[str, str] | None = None):
    """Return a matplotlib ``Figure`` (on the Agg canvas, laid out) drawing ``chart``: the plot on the
    left, on the right the legend and the key of the numbered heaviest points (name, roofline
    time, and with ``measured`` the measured time). ``measured``: a per-layer run's achieved points;
    ``roof_notes``: per profile name, what its roof's label adds (:func:`roof_note`).

    Raises:
        InputError: the chart has no roof (no hardware profile).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if not chart.roofs:
        raise InputError(f"roofline of {chart.title}: no hardware profile to draw")
    notes = roof_notes or {}
    fig = Figure(figsize=(12, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=[2.3, 1])
    ax = fig.add_subplot(grid[0, 0])
    side = fig.add_subplot(grid[0, 1])
    side.axis("off")
    ax.set_xscale("log")
    ax.set_yscale("log")

    first = chart.roofs[0].name
    achieved = [p for p in (measured.points if measured else []) if p.arithmetic_intensity and p.achieved_flops > 0]
    intensities = [p.arithmetic_intensity for p in chart.points if p.arithmetic_intensity]
    intensities += [p.arithmetic_intensity for p in achieved]
    xs = intensities + [r.ridge_point for r in chart.roofs]
    x_lo, x_hi = min(xs) / 4, max(xs) * 4
    ys = [v for p in chart.points for v in p.attainable_flops.values() if v > 0] + [p.achieved_flops for p in achieved]
    y_hi = max([r.peak_flops for r in chart.roofs] + [p.achieved_flops for p in achieved]) * 3
    y_lo = min(ys + [x_lo * min(r.memory_bandwidth for r in chart.roofs)]) / 3

    handles = _draw_roofs(ax, chart, x_lo, x_hi, notes)
    for kind, marker in _MARKERS.items():
        pts = [p for p in achieved if p.kind == kind]
        if pts:
            coll = ax.scatter([p.arithmetic_intensity for p in pts], [p.achieved_flops for p in pts], marker=marker,
                              s=[max(MEASURED_MIN_AREA, MEASURED_AREA * p.share) for p in pts], zorder=4,
                              facecolors="#222222", edgecolors="white", linewidths=0.5, alpha=0.7)
            coll.set_gid(f"tk-measured-{_ids(kind)}")
    handles += [Line2D([], [], marker=m, color="#555555", linestyle="none", label=(
        "module (its own ops, unfused)" if kind == "module" else "fusion group (fused)")) for kind, m in _MARKERS.items()]
    handles.append(Line2D([], [], marker="o", color=_COLOURS[0], linestyle="none",
                          label=f"predicted (roofline on {first}: on the roof by construction)"))
    if achieved:
        handles.append(Line2D([], [], marker="o", color="#222222", markersize=8, linestyle="none",
                              label=f"measured ({measured.label}): achieved FLOP/s,\nmarker area ∝ share of measured time"))
    if len(chart.roofs) > 1:
        handles.append(Line2D([], [], marker="o", color="#555555", markerfacecolor="none", linestyle="none",
                              label="hollow: the same points on the other profiles"))

    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("Arithmetic intensity (FLOPs/byte)")
    ax.set_ylabel("FLOP/s (1 MAC = 2 FLOPs)")
    subtitle = f"{len(chart.points)} point(s): modules' own ops and fusion groups"
    if chart.no_compute_modules:
        subtitle += f"; {chart.no_compute_modules} module(s) without FLOPs not shown"
    subtitle += (f"\nmeasured on {measured.label} (black) beside the roofline predictions"
                 if achieved else "\nall points are predictions (roofline estimates), not measurements")
    ax.set_title(f"Roofline: {chart.title}\n{subtitle}", fontsize=10)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    side.legend(handles=handles, loc="upper left", fontsize=7, frameon=False, borderaxespad=0)

    texts = _number_points(ax, side, chart, achieved, labelled)
    fig.canvas.draw()  # lay out (constrained), then place the labels in the final coordinates
    fig.set_layout_engine("none")
    place_labels(ax, texts)
    return fig


def render_roofline(chart: RooflineChart, fmt: str = "png", *, labelled: int = LABELLED,
                    id_salt: str | None = None, measured: Measured | None = None,
                    roof_notes: dict[str, str] | None = None) -> bytes:
    """Return ``chart`` drawn as ``png``, ``svg`` or ``pdf`` bytes (``measured``, ``roof_notes``: see
    :func:`figure`).

    ``id_salt`` makes the SVG's internal ids unique (matplotlib's ``svg.hashsalt``), so several plots
    can be inlined in one HTML page without their ``<defs>`` colliding. SVG and PDF carry no date.
    """
    return figure_bytes(figure(chart, labelled=labelled, measured=measured, roof_notes=roof_notes), fmt, id_salt)


def figure_bytes(fig, fmt: str, id_salt: str | None = None) -> bytes:
    """A matplotlib ``Figure`` saved as ``png``, ``svg`` or ``pdf`` bytes: text as paths, no date in
    SVG or PDF, and ``id_salt`` as the SVG's ``svg.hashsalt`` (unique ids for plots inlined in one page)."""
    import matplotlib

    buf = io.BytesIO()
    salt = {"svg.hashsalt": id_salt} if id_salt else {}
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}.get(fmt)
    with matplotlib.rc_context({"svg.fonttype": "path", **salt}):
        fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


def write_roofline(chart: RooflineChart, path: str | Path, *, labelled: int = LABELLED,
                   measured: Measured | None = None, roof_notes: dict[str, str] | None = None) -> Path:
    """Write ``chart`` to ``path`` as PNG, SVG or PDF (by its extension), atomically; return the path
    (``measured``, ``roof_notes``: see :func:`figure`).

    Raises:
        InputError: another extension, or the path cannot be written.
    """
    return write_picture("--roofline", path, lambda fmt: render_roofline(chart, fmt, labelled=labelled,
                                                                         measured=measured, roof_notes=roof_notes))


def write_picture(flag: str, path: str | Path, render) -> Path:
    """Write ``render(fmt)`` (bytes in the :data:`FORMATS` format of ``path``'s extension) to ``path``,
    atomically; return the path.

    Raises:
        InputError: another extension, or the path cannot be written (naming ``flag``).
    """
    from turnkey_like.files import write_atomic

    target = Path(path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise InputError(f"{flag} {path}: unknown picture format {target.suffix or '(none)'!r}",
                         hint=f"end the file name with one of: {', '.join(FORMATS)}")
    data = render(fmt)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data, fsync=False)
    except OSError as e:
        raise InputError(f"{flag} {path}: cannot write ({e.strerror or e})", hint="choose a writable path") from None
    return target
