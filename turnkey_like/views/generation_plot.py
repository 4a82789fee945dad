"""The generation sweep plot (``--generation-plot PATH``, the HTML report): decode tokens/s against
batch, one line per context (``--generate P:N``) and what-if, with where decode turns compute-bound.

Every figure is a record's: the points are the generations' what-ifs (``WhatIf.tokens_per_s`` at
``Generation.batch_size``, :func:`turnkey_like.report.generation.generation_points`), the knee is
``WhatIf.decode_knee_batch`` (a dashed vertical line in the line's colour, "never" in the legend
when decode stays memory-bound at every batch), the knee with decode's activation bytes left out is
``decode_knee_batch_kv_only`` (dotted), and the largest batch whose weights and KV cache fit the
device is ``Capacity.max_batch`` (a ▼ at the top of the plot); each is also in the line's legend
entry, and only named there when beyond :data:`_REACH` times the largest plotted batch. A line's knee
is its first point's (each point extrapolates the same line; they agree up to the batch-independent
bytes).

Log-log axes (batch, tokens/s). matplotlib's object API on the Agg canvas (no ``pyplot``); PNG, SVG
or PDF by the file's extension; SVG series carry ids ``tk-gen-line-<n>``, ``tk-gen-knee-<n>``,
``tk-gen-knee-kv-<n>``, ``tk-gen-max-<n>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from turnkey_like.errors import InputError
from turnkey_like.report.generation import GenerationPoint
from turnkey_like.units import si
from turnkey_like.views.roofline_plot import FORMATS, figure_bytes, write_picture

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_MARKERS = ("o", "s", "^", "D")
#: knees and largest batches beyond this many times the largest plotted batch are named in the legend
#: only (a line at 2^22 would squeeze the measured points into a corner)
_REACH = 64


def _batch(value: float | int | None) -> str:
    """A batch for the legend: ``never`` for ``None``, whole numbers with SI prefixes past 10,000."""
    if value is None:
        return "never"
    return f"{value:,.0f}" if value < 1e4 else si(value)


def _lines(points: Sequence[GenerationPoint]) -> list[list[GenerationPoint]]:
    """The points grouped by :attr:`GenerationPoint.series`, each line ordered by batch."""
    lines: dict[tuple, list[GenerationPoint]] = {}
    for point in points:
        lines.setdefault(point.series, []).append(point)
    return [sorted(line, key=lambda p: p.gen.batch_size) for line in lines.values()]


def figure(points: Sequence[GenerationPoint], title: str = ""):
    """The plot of ``points`` as a matplotlib ``Figure`` (see the module docstring).

    Raises:
        InputError: no point has decode tokens/s (every generation made one token).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lines = [[p for p in line if p.whatif.tokens_per_s] for line in _lines(points)]
    lines = [line for line in lines if line]
    if not lines:
        raise InputError("--generation-plot: no generation has decode steps to plot",
                         hint="generate at least 2 tokens, e.g. --generate 128:128")
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch (sequences decoded together)")
    ax.set_ylabel("decode tokens/s (batch ÷ TPOT)")
    ax.set_title(title or "decode throughput against batch", fontsize=10)
    batches = [p.gen.batch_size for line in lines for p in line]
    reach = max(batches) * _REACH  # knees and largest batches farther than this are only named in the legend
    for n, line in enumerate(lines):
        colour, marker = _COLOURS[n % len(_COLOURS)], _MARKERS[n // len(_COLOURS) % len(_MARKERS)]
        first = line[0]
        knee, knee_kv = first.whatif.decode_knee_batch, first.whatif.decode_knee_batch_kv_only
        top = first.whatif.capacity.max_batch
        label = (f"{first.series_label()}: knee {_batch(knee)}, KV only {_batch(knee_kv)}, "
                 f"fits {'-' if top is None else _batch(top)}")
        (drawn,) = ax.plot([p.gen.batch_size for p in line], [p.whatif.tokens_per_s for p in line], marker=marker,
                           color=colour, label=label)
        drawn.set_gid(f"tk-gen-line-{n}")
        if knee is not None and knee <= reach:
            ax.axvline(knee, color=colour, linestyle="--", linewidth=1).set_gid(f"tk-gen-knee-{n}")
        if knee_kv is not None and knee_kv <= reach:
            ax.axvline(knee_kv, color=colour, linestyle=":", linewidth=1).set_gid(f"tk-gen-knee-kv-{n}")
        if top and top <= reach:
            ax.plot([top], [1], marker="v", color=colour, markersize=9, linestyle="none",
                    transform=ax.get_xaxis_transform(), clip_on=False)[0].set_gid(f"tk-gen-max-{n}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best", title="P:N hardware W/A/KV; dashed: decode knee; dotted: knee with KV "
                                            "traffic only; ▼ largest batch that fits", title_fontsize=7)
    return fig


def render_generation_plot(points: Sequence[GenerationPoint], fmt: str = "png", *, title: str = "",
                           id_salt: str | None = None) -> bytes:
    """Return the plot as ``png``, ``svg`` or ``pdf`` bytes (``id_salt``: unique SVG ids for a page
    holding several plots; SVG and PDF carry no date).

    Raises:
        InputError: nothing to plot (:func:`figure`).
    """
    return figure_bytes(figure(points, title), fmt, id_salt)


def write_generation_plot(points: Sequence[GenerationPoint], path: str | Path, *, title: str = "") -> Path:
    """Write the plot to ``path`` as PNG, SVG or PDF (by its extension), atomically; return the path.

    Raises:
        InputError: another extension, nothing to plot, or the path cannot be written.
    """
    return write_picture("--generation-plot", path, lambda fmt: render_generation_plot(points, fmt, title=title))


__all__ = ["FORMATS", "figure", "render_generation_plot", "write_generation_plot"]
