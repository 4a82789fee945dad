"""What one benchmark of one invocation measured (:class:`BenchmarkResult`): latency statistics,
throughput, memory, agreement, and per-layer measured time beside the roofline (:class:`PerLayerResult`).

Units: milliseconds (``*_ms``), seconds (``*_s``), bytes, FLOPs (1 MAC = 2 FLOPs), FLOP/s and bytes/s.
"""

from __future__ import annotations

from turnkey_like.records.base import Record
from turnkey_like.records.characterization import Characterization
from turnkey_like.records.hardware import HardwareProfile, MachineLoad, Spread

#: How views name a runtime (``BenchmarkResult.label``).
RUNTIME_NAMES = {"ort": "onnxruntime", "torch-eager": "torch eager", "torch-compiled": "torch.compile"}

#: The two rows :attr:`PerLayerResult.modules` ends with: time between ops and framework overhead
#: (the profiled run's wall time minus all kernel time), and kernels no module could be found for.
UNATTRIBUTED = "(unattributed)"
UNMAPPED = "(unmapped kernels)"


class LayerTime(Record):
    """One row of a per-layer profile: a module (by path) or an op category, per profiled iteration.

    Attributes:
        name: the module path (``""`` for the model itself) or the op category; the two extra rows of
            :attr:`PerLayerResult.modules` are ``(unattributed)`` and ``(unmapped kernels)``.
        class_name: the module's class (module rows; ``""`` otherwise).
        measured_ms: measured time per iteration, ms: the module's own ops (not its children's),
            or the kernels of the category.
        inclusive_ms: module rows: the module and everything below it, ms (``None`` for other rows).
        share: ``measured_ms`` ÷ the profiled run's wall time per iteration (0-1).
        predicted_ms: roofline time of the same ops on the profile the run measured on, ms
            (``None`` without a characterization or a profile for that device).
        predicted_inclusive_ms: the same for ``inclusive_ms``.
        efficiency: ``predicted_ms / measured_ms``, the fraction of the roof attained (``None`` when
            either is missing or 0: ops with no counted work, such as views, have no roof).
        flops, bytes: FLOPs (1 MAC = 2 FLOPs) and bytes read + written of the row's ops (unfused), from
            the characterization.
        attained_flops_s, attained_bytes_s: ``flops`` and ``bytes`` ÷ ``measured_ms`` (FLOP/s, bytes/s).
        faster_than_roof: measured below the roofline time (efficiency > 1): the profile's peaks or the
            op count are wrong for this row; flagged, never hidden.
        kernels: kernel (or op) events attributed to the row per iteration (fractions when a fused
            kernel is split across rows).
        spread: the row's own time in each profiled run: its interquartile range ÷ its median
            (``None`` with fewer than 3 runs or no time); ``efficiency`` spreads as much.
        inclusive_spread: the same for ``inclusive_ms`` (module rows).
        noisy: ``spread`` is above ``turnkey_like.runtimes.per_layer.NOISY_SPREAD`` (10%): the row's
            ``efficiency`` (% of roof), printed to two digits, cannot bear its second digit; views mark it.
        inclusive_noisy: the same for ``inclusive_spread`` (the per-module table's % of roof).
    """

    name: str
    measured_ms: float
    share: float
    class_name: str = ""
    inclusive_ms: float | None = None
    predicted_ms: float | None = None
    predicted_inclusive_ms: float | None = None
    efficiency: float | None = None
    flops: int = 0
    bytes: int = 0
    attained_flops_s: float | None = None
    attained_bytes_s: float | None = None
    faster_than_roof: bool = False
    kernels: float = 0.0
    spread: float | None = None
    inclusive_spread: float | None = None
    noisy: bool = False
    inclusive_noisy: bool = False

    def inclusive_efficiency(self) -> float | None:
        """``predicted_inclusive_ms / inclusive_ms``: the fraction of the roof the module and everything
        below it attained (``None`` without both, or with no measured time). The per-module "% of roof"
        of every view reads this (``PerLayerResult.module_measure``)."""
        if self.predicted_inclusive_ms is None or not self.inclusive_ms:
            return None
        return self.predicted_inclusive_ms / self.inclusive_ms


class ModuleMeasure(Record):
    """What the views show for one module beside its roofline figures (:meth:`PerLayerResult.module_measure`).

    Attributes:
        measured_ms: the module and everything below it, ms per iteration; for the model itself
            (path ``""``), the timed runs' mean latency (:meth:`PerLayerResult.model_ms`).
        predicted_ms: roofline time of the same ops on the profile the run measured on, ms.
        efficiency: ``predicted_ms / measured_ms`` (the "% of roof"); ``None`` without both.
        spread: the measured time's interquartile range ÷ median across runs (``None`` when not recorded).
        noisy: ``spread`` above 10%: the % of roof cannot bear its second digit; views mark it ``~``.
        share: the module's share of the profiled run's wall time (``inclusive_ms / wall_ms``; 1 for
            the model itself).
    """

    measured_ms: float | None
    predicted_ms: float | None
    efficiency: float | None
    spread: float | None = None
    noisy: bool = False
    share: float | None = None


class MeasuredPoint(Record):
    """One module's own ops, or one fusion group, placed on the roofline at its measured speed
    (:meth:`PerLayerResult.achieved_points`): Nsight Compute's "achieved" point.

    Attributes:
        kind: ``module`` (its own ops, children excluded; bytes unfused) or ``fusion group``
            (bytes left once fused: ``FusionGroup.external_bytes``), as ``RooflinePoint.kind``.
        module_path: the module (a group's anchor's); op_names: a group's ATen ops (empty for a module).
        flops, bytes: FLOPs (1 MAC = 2 FLOPs) and bytes; arithmetic_intensity: flops / bytes.
        measured_ms: measured time per iteration, ms (a group's: the sum of its ops' ``op_ms``).
        share: ``measured_ms`` ÷ the profiled run's wall time (0-1).
        achieved_flops: ``flops`` ÷ ``measured_ms``, FLOP/s: at or under the roof unless the
            profile or the count is wrong (then the point is above it, and shown so).
    """

    kind: str
    module_path: str
    flops: int
    bytes: int
    arithmetic_intensity: float | None
    measured_ms: float
    share: float
    achieved_flops: float
    op_names: list[str] = []


class PerLayerResult(Record):
    """Per-layer measured time of one benchmark (``--per-layer``), beside the roofline.

    Measured in profiling runs made after the timed ones (so ``BenchmarkResult.latency_ms`` is not
    disturbed). The rows of :attr:`modules` (each module's own time, plus ``(unattributed)`` and
    ``(unmapped kernels)``) add up to :attr:`wall_ms`, the profiled runs' own wall time per iteration.

    Attributes:
        method: the profiler (``onnxruntime session profiler``, ``torch.profiler``).
        mapping: how kernels were mapped to module paths (``dynamo name_scopes``, ``torchscript node
            names``, ``forward hooks``, ``none``); ``mapping_note`` states its limits.
        iterations: profiled runs (after their own warm-up).
        wall_ms: wall time of one profiled run, mean, ms.
        attributed_ms: kernel time mapped to modules, per iteration, ms.
        unmapped_ms: kernel time no module could be found for, per iteration, ms.
        unattributed_ms: ``wall_ms`` minus all kernel time (time between ops, framework overhead), ms.
        unattributed_share: ``unattributed_ms / wall_ms``.
        overhead: ``wall_ms`` ÷ the timed runs' mean latency (what the profiler costs per run).
        hardware: the profile the roofline is computed on (the one the run measured on: ``local`` on
            CPU, the GPU's datasheet profile on CUDA); ``None`` when none matches the device.
        predicted_ms: roofline time of the whole call on ``hardware``, ms.
        latency_mean_ms: the timed runs' mean latency, ms (``None`` in records from a tk that did not
            keep it: :meth:`model_ms` then derives it from ``wall_ms / overhead``).
        efficiency: :meth:`model_efficiency` as it was when the record was made (kept for JSON and CSV
            readers); views call the method.
        modules: one row per module with a measured or predicted time, in the characterization's
            order, then the two extra rows.
        categories: one row per op category, slowest first: the characterization's categories of
            the ops each kernel was attributed to (so a norm fused into a Conv kernel counts as
            ``norm``), and for kernels with no op (unmapped, or no characterization) the kernel's own
            category (ONNX op types and ATen ops mapped to tk's categories).
        op_ms: measured time per op row, ms per iteration, indexed by ``OpRow.index`` (each kernel's
            time split over the ops it ran, in proportion to their roofline time:
            ``turnkey_like.runtimes.per_layer``); empty without a characterization or in older records.
        op_spread: each op's time across the profiled runs, interquartile range ÷ median (``None``
            with fewer than 3 runs or no time); same indexing.
        noisy_ops: the op rows (``OpRow.index``) whose ``op_spread`` is above 10%
            (``turnkey_like.runtimes.per_layer.NOISY_SPREAD``): views mark their time ``~``.
        faster_than_roof: names of the rows measured faster than their roof.
        wall_spread: each profiled run's wall time (ms), spread (``None`` with fewer than 3 runs).
        noisy: names of the rows whose own time spread too widely for their % of roof
            (``LayerTime.noisy``).
    """

    method: str
    mapping: str
    iterations: int
    wall_ms: float
    attributed_ms: float
    unmapped_ms: float
    unattributed_ms: float
    unattributed_share: float
    overhead: float | None = None
    mapping_note: str = ""
    hardware: HardwareProfile | None = None
    predicted_ms: float | None = None
    efficiency: float | None = None
    latency_mean_ms: float | None = None
    modules: list[LayerTime] = []
    categories: list[LayerTime] = []
    faster_than_roof: list[str] = []
    wall_spread: Spread | None = None
    noisy: list[str] = []
    op_ms: list[float] = []
    op_spread: list[float | None] = []
    noisy_ops: list[int] = []

    def model_ms(self) -> float | None:
        """The whole call's measured time, ms: the timed runs' mean latency (never disturbed by the
        profiler), from ``latency_mean_ms`` or, in older records, ``wall_ms / overhead``; ``None``
        when neither was recorded."""
        if self.latency_mean_ms:
            return self.latency_mean_ms
        if self.overhead:
            return self.wall_ms / self.overhead
        return None

    def model_efficiency(self) -> float | None:
        """Whole-model efficiency, the one definition every view reads: the roofline time of the
        whole call ÷ its measured time (``predicted_ms / model_ms()``), 0-1 (above 1: faster than the
        roof). ``None`` without a prediction or a measured time."""
        measured = self.model_ms()
        if self.predicted_ms is None or not measured:
            return None
        return self.predicted_ms / measured

    def module_measure(self, path: str) -> ModuleMeasure | None:
        """The measured time and % of roof of module ``path`` and everything below it, as every
        view shows them; ``None`` when the module has no row.

        The model itself (``""``) reads the whole call: :meth:`model_ms` and :meth:`model_efficiency`,
        with the spread of its row (all its kernels' time across the profiled runs). Other modules
        read their row: ``inclusive_ms`` and :meth:`LayerTime.inclusive_efficiency`, with
        ``inclusive_spread``.
        """
        row = self.module_rows().get(path)
        if path == "":
            return ModuleMeasure(measured_ms=self.model_ms(), predicted_ms=self.predicted_ms,
                                 efficiency=self.model_efficiency(),
                                 spread=row.inclusive_spread if row is not None else None,
                                 noisy=row is not None and row.inclusive_noisy, share=1.0)
        if row is None:
            return None
        share = row.inclusive_ms / self.wall_ms if row.inclusive_ms is not None and self.wall_ms > 0 else None
        return ModuleMeasure(measured_ms=row.inclusive_ms, predicted_ms=row.predicted_inclusive_ms,
                             efficiency=row.inclusive_efficiency(), spread=row.inclusive_spread,
                             noisy=row.inclusive_noisy, share=share)

    def op_time(self, index: int) -> float | None:
        """Measured ms per iteration of op row ``index`` (``OpRow.index``), ``None`` when not recorded."""
        return self.op_ms[index] if 0 <= index < len(self.op_ms) else None

    def op_share(self, index: int) -> float | None:
        """Op row ``index``'s share of the profiled run's wall time (0-1), ``None`` when not recorded."""
        ms = self.op_time(index)
        return ms / self.wall_ms if ms is not None and self.wall_ms > 0 else None

    def op_noisy(self, index: int) -> bool:
        """True when op row ``index``'s time spread more than 10% across the profiled runs (:attr:`noisy_ops`)."""
        from bisect import bisect_left

        at = bisect_left(self.noisy_ops, index)  # ascending, as written
        return at < len(self.noisy_ops) and self.noisy_ops[at] == index

    def achieved_points(self, char: Characterization) -> list[MeasuredPoint]:
        """Where each module's own ops and each fusion group of ``char`` (the characterization this
        run was attributed against) ran: one :class:`MeasuredPoint` per module row and per multi-op
        fusion group with FLOPs, bytes and a measured time; heaviest measured time first."""
        points = []
        for row in self.module_rows().values():
            if row.flops > 0 and row.bytes > 0 and row.measured_ms > 0:
                points.append(MeasuredPoint(kind="module", module_path=row.name, flops=row.flops, bytes=row.bytes,
                                            arithmetic_intensity=row.flops / row.bytes, measured_ms=row.measured_ms,
                                            share=row.share, achieved_flops=row.flops / (row.measured_ms * 1e-3)))
        times = self.group_times(char.fusion.row_groups)
        for g in char.fusion.groups:
            ms = times.get(g.id, 0.0)
            if g.flops > 0 and g.external_bytes > 0 and ms > 0:
                points.append(MeasuredPoint(kind="fusion group", module_path=g.module_path, op_names=list(g.op_names),
                                            flops=g.flops, bytes=g.external_bytes,
                                            arithmetic_intensity=g.flops / g.external_bytes, measured_ms=ms,
                                            share=ms / self.wall_ms if self.wall_ms > 0 else 0.0,
                                            achieved_flops=g.flops / (ms * 1e-3)))
        return sorted(points, key=lambda p: -p.measured_ms)

    def group_times(self, row_groups: list[int]) -> dict[int, float]:
        """Measured ms per iteration of each fusion group (``FusionResult.row_groups``: the group of
        every op row): the sum of its ops' :attr:`op_ms`. Empty when either is missing."""
        out: dict[int, float] = {}
        if len(row_groups) != len(self.op_ms):
            return out
        for group, ms in zip(row_groups, self.op_ms):
            out[group] = out.get(group, 0.0) + ms
        return out

    def module_rows(self) -> dict[str, LayerTime]:
        """The module rows by path, without the :data:`UNMAPPED` and :data:`UNATTRIBUTED` rows."""
        return {r.name: r for r in self.modules if r.name not in (UNMAPPED, UNATTRIBUTED)}

    def least_efficient(self, n: int = 5) -> list[LayerTime]:
        """The ``n`` module rows with the lowest efficiency (those with a prediction and a measured
        time), least efficient first."""
        rows = [r for r in self.module_rows().values() if r.efficiency is not None and r.measured_ms > 0]
        return sorted(rows, key=lambda r: r.efficiency)[:n]

    def top_measured(self, n: int = 3) -> list[LayerTime]:
        """The ``n`` module rows with the most own measured time (ms per iteration), slowest first."""
        return sorted(self.module_rows().values(), key=lambda r: -r.measured_ms)[:n]


class LatencyStats(Record):
    """Latency statistics over the timed iterations, milliseconds (percentiles and quartiles: linear
    interpolation).

    ``iqr`` is the interquartile range (p75 − p25) and ``runs`` the number of timed runs; both are
    ``None`` in records from a tk that did not keep them.
    """

    mean: float
    median: float
    p90: float
    p99: float
    min: float
    max: float
    std: float
    iqr: float | None = None
    runs: int | None = None


class BenchmarkResult(Record):
    """One benchmark of one invocation (``Invocation.benchmark.result``).

    Attributes:
        runtime: ``ort``, ``torch-eager`` or ``torch-compiled``.
        runtime_version: onnxruntime's or torch's version.
        execution_provider: ORT's provider that ran the model (``CPUExecutionProvider``, ...), or
            ``torch-cpu`` / ``torch-cuda``.
        device: ``cpu`` or ``cuda``.
        device_name: CPU model name or GPU name.
        threads: intra-op threads used.
        warmup_iterations: warm-up runs done; ``warmup_s`` their wall time; ``warmup_stable`` whether
            the stability rule was met (``None`` for a fixed count).
        iterations: timed runs.
        latency_ms: latency statistics, ms.
        throughput_ips: inferences/s counting the batch: ``batch_size * 1000 / latency_ms.mean``.
        batch_size: the batch counted in the throughput (see ``batch_note``).
        batch_note: how ``batch_size`` was decided (dim 0 shared by every batched input, or why 1).
        peak_memory_bytes: peak resident memory of the benchmarking process, bytes.
        rss_start_bytes: its resident memory before the runtime loaded the model, bytes.
        peak_device_memory_bytes: torch's peak CUDA allocation (torch runtimes on CUDA), bytes.
        precision: ``fp32``/``fp16`` (ORT: the build's; torch: the model's first floating parameter).
        max_abs_err, max_rel_err: largest output error vs eager PyTorch across outputs, ``None`` where
            not measured (torch-eager is the reference; ``.onnx`` inputs have none).
        within_tolerance: whether those errors pass the build's tolerance.
        model_path: the ONNX file benchmarked (ORT).
        raw_path: JSON file with every timed latency (ms).
        fingerprint: what the figures depend on (the build's fingerprint as ``build.*`` keys,
            runtime, device, precision, requested threads, iterations, warm-up, per-layer profiling,
            tk version and the machine; see ``turnkey_like.runtimes.harness.benchmark_fingerprint``).
            A later run reuses this result when its fingerprint is equal (``--rebenchmark``).
        reused: True when this run took the result from the cache instead of measuring
            (the stage's ``run_id`` names the run that measured it).
        stale: fingerprint keys that differ from the current run's (``--rebenchmark never`` reuse only).
        per_layer: per-layer measured times beside the roofline (``--per-layer``), else ``None``.
        load: how busy the machine was during the timed loop kept (load average, other processes'
            CPU, whether that could have moved the figures, retries under ``--wait-quiet``); ``None``
            in records from a tk that did not measure it.
        warnings: what could have moved the figures, one line each with its figure (the machine was
            busy: ``load.note``; latency unstable: std dev ≥ 10% of the mean, pyperf's rule); the
            benchmark line prints each.
        other_runs: the latest per-layer benchmark of each *other* runtime and device on this
            invocation, newest first (each without its own ``other_runs``), carried forward by
            :meth:`with_earlier` so that one runtime's run never hides another's (``tk profile
            --runtime`` and the HTML page's selector choose among :meth:`per_layer_runs`).
    """

    runtime: str
    runtime_version: str
    execution_provider: str
    device: str
    device_name: str
    threads: int | None
    warmup_iterations: int
    iterations: int
    latency_ms: LatencyStats
    throughput_ips: float
    batch_size: int
    batch_note: str | None = None
    peak_memory_bytes: int | None = None
    rss_start_bytes: int | None = None
    peak_device_memory_bytes: int | None = None
    precision: str = "fp32"
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    within_tolerance: bool | None = None
    warmup_s: float | None = None
    warmup_stable: bool | None = None
    model_path: str | None = None
    raw_path: str | None = None
    fingerprint: dict[str, str | int | float | bool | None] = {}
    reused: bool = False
    stale: list[str] = []
    per_layer: PerLayerResult | None = None
    load: MachineLoad | None = None
    warnings: list[str] = []
    other_runs: list[BenchmarkResult] = []

    @property
    def key(self) -> str:
        """What tells runs apart for :meth:`with_earlier` and ``--runtime``: the runtime
        (``ort``, ``torch-eager``, ``torch-compiled``), with ``:DEVICE`` when not on the CPU (``ort:cuda``)."""
        return self.runtime if self.device == "cpu" else f"{self.runtime}:{self.device}"

    def label(self) -> str:
        """The run as views name it: runtime, version and device, e.g. ``onnxruntime 1.31.1, CPU``,
        ``torch eager 2.8.0, CPU`` (:data:`RUNTIME_NAMES`)."""
        name = RUNTIME_NAMES.get(self.runtime, self.runtime)
        return f"{name} {self.runtime_version}, {self.device.upper()}".replace("  ", " ")

    def per_layer_runs(self) -> list[BenchmarkResult]:
        """The benchmarks with a per-layer profile: this one first (when it has one), then
        :attr:`other_runs` (newest first)."""
        return [r for r in (self, *self.other_runs) if r.per_layer is not None]

    def with_earlier(self, earlier: BenchmarkResult | None) -> BenchmarkResult:
        """This result with the per-layer runs of ``earlier`` (the invocation's previous benchmark,
        and the runs it carried) for other runtimes/devices (:attr:`key`) in :attr:`other_runs`:
        newest first, one per key, each without its own ``other_runs``. The pipeline calls it when a
        benchmark replaces an earlier one, so an ORT per-layer run stays visible after a torch-eager one.
        """
        import msgspec

        carried: dict[str, BenchmarkResult] = {}
        pool = [*self.other_runs, *((earlier, *earlier.other_runs) if earlier is not None else ())]
        for run in pool:
            if run.per_layer is not None and run.key != self.key and run.key not in carried:
                carried[run.key] = msgspec.structs.replace(run, other_runs=[])
        return msgspec.structs.replace(self, other_runs=list(carried.values()))
