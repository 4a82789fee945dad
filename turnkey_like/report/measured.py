"""The measured side of every view: which per-layer run a view shows, and how its figures read.

An invocation's benchmark holds its latest per-layer run and, carried forward, the latest one of
each other runtime/device (``BenchmarkResult.per_layer_runs``). :func:`measured_run` picks the one a
view shows: the latest by default, or the one ``--runtime NAME`` names (``ort``, ``torch-eager``,
``ort:cuda``); :meth:`MeasuredRun.note` says which one it is and what else was measured, so no view
silently hides a run. The text helpers give every view (terminal, ``tk explore``, HTML, pictures) the
same "% of roof" text, with ``~`` in front when the figure's spread across runs was above 10%
(``PerLayerResult.module_measure``, ``LayerTime.noisy``). Nothing is computed here: the figures are
the records'.
"""

from __future__ import annotations

from typing import NamedTuple

from turnkey_like.records import BenchmarkResult, Invocation, PerLayerResult, Status

#: The line under a table that holds ``~`` marks.
NOISY_NOTE = "~: the time varied more than 10% (IQR ÷ median) across the profiled runs"


class MeasuredRun(NamedTuple):
    """The per-layer run a view shows, among those recorded for one invocation.

    Attributes:
        bench: the chosen benchmark (``bench.per_layer`` is set), or ``None`` when ``asked`` names a
            runtime with no per-layer run here.
        runs: every per-layer run of the invocation, newest first (``BenchmarkResult.per_layer_runs``).
        asked: the ``--runtime`` asked for (``None``: the latest).
    """

    bench: BenchmarkResult | None
    runs: list[BenchmarkResult]
    asked: str | None = None

    @property
    def per_layer(self) -> PerLayerResult | None:
        """The chosen run's per-layer record (``None`` when none was chosen)."""
        return self.bench.per_layer if self.bench is not None else None

    @property
    def label(self) -> str:
        """The chosen run as views name it (``onnxruntime 1.31.1, CPU``), ``""`` when none."""
        return self.bench.label() if self.bench is not None else ""

    def note(self) -> str:
        """One line: which run is shown and why, and the others (``--runtime KEY`` picks one)."""
        keys = ", ".join(r.key for r in self.runs)
        if self.bench is None:
            return f"no per-layer run on {self.asked} (recorded: {keys}); --runtime picks one of those"
        others = [r for r in self.runs if r is not self.bench]
        why = f"--runtime {self.asked}" if self.asked else ("the latest per-layer run" if others else "")
        text = f"{self.label}" + (f" ({why})" if why else "")
        if others:
            text += "; also measured: " + ", ".join(f"{r.label()} (--runtime {r.key})" for r in others)
        return text


def measured_runs(inv: Invocation) -> list[BenchmarkResult]:
    """Every per-layer run recorded for ``inv``, newest first: its benchmark's (when successful, else
    the earlier success the stage kept) and the runs that one carried."""
    stage = inv.benchmark
    if stage.status != Status.SUCCESSFUL and stage.kept is not None:
        stage = stage.kept
    if stage.status != Status.SUCCESSFUL or stage.result is None:
        return []
    return stage.result.per_layer_runs()


def pick(runs: list[BenchmarkResult], runtime: str | None) -> BenchmarkResult | None:
    """The run ``runtime`` names among ``runs``: its key (``ort``, ``ort:cuda``) or its runtime
    (``ort`` also names ``ort:cuda`` when that is the only ORT run); ``None`` picks the first (the
    latest); ``None`` when nothing matches."""
    if not runs:
        return None
    if runtime is None:
        return runs[0]
    exact = [r for r in runs if r.key == runtime]
    loose = [r for r in runs if r.runtime == runtime]
    return (exact or loose or [None])[0]


def measured_run(inv: Invocation, runtime: str | None = None) -> MeasuredRun | None:
    """The per-layer run a view of ``inv`` shows (:func:`pick`), with the others; ``None`` when
    ``inv`` has no per-layer run at all."""
    runs = measured_runs(inv)
    if not runs:
        return None
    return MeasuredRun(bench=pick(runs, runtime), runs=runs, asked=runtime)


def percent(value: float | None, noisy: bool = False) -> str:
    """A fraction as ``81%``, ``~81%`` when ``noisy`` (its spread was above 10%), ``""`` for ``None``."""
    if value is None:
        return ""
    return f"{'~' if noisy else ''}{value:.0%}"


def ms(value: float | None, noisy: bool = False) -> str:
    """Milliseconds to 3 significant digits (``0.324``), ``~`` in front when ``noisy``, ``""`` for ``None``."""
    if value is None:
        return ""
    return f"{'~' if noisy else ''}{value:.3g}"
