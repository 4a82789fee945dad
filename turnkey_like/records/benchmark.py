"""What one benchmark of one invocation measured (:class:`BenchmarkResult`): latency statistics,
throughput, memory, agreement, and per-layer measured time beside the roofline (:class:`PerLayerResult`).

Units: milliseconds (``*_ms``), seconds (``*_s``), bytes, FLOPs (1 MAC = 2 FLOPs), FLOP/s and bytes/s.
"""

from __future__ import annotations

from turnkey_like.records.base import Record
from turnkey_like.records.characterization import HardwareProfile, MachineLoad, Spread

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
        efficiency: ``predicted_ms`` ÷ the timed runs' mean latency (``None`` without a prediction).
        modules: one row per module with a measured or predicted time, in the characterization's
            order, then the two extra rows.
        categories: one row per op category (ONNX op types and ATen ops mapped to tk's categories),
            slowest first.
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
    modules: list[LayerTime] = []
    categories: list[LayerTime] = []
    faster_than_roof: list[str] = []
    wall_spread: Spread | None = None
    noisy: list[str] = []

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
