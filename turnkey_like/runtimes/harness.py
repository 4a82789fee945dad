"""The benchmark harness: one invocation on one runtime, warm-up, timed runs, statistics, agreement.

:func:`benchmark_invocation` is the benchmark stage. It prepares the runtime's inputs
(:meth:`Runtime.prepare_inputs`), lets :func:`turnkey_like.launcher.choose_start_method` pick where the
work runs, and runs :func:`run_benchmark` there:

1. :meth:`Runtime.load` (untimed);
2. warm-up (:func:`warm_up`): with ``warmup=None``, at least :data:`WARMUP_MIN_RUNS` runs and until
   latency is stable (the median of the last :data:`WARMUP_WINDOW` runs within
   :data:`WARMUP_STABLE_REL` of the median of the window before), bounded by :data:`WARMUP_MAX_S`
   seconds; an explicit ``warmup=N`` runs exactly N;
3. ``iterations`` timed runs, each timed alone with ``time.perf_counter``, and how busy the machine
   was meanwhile (:func:`timed_loop`: other processes' CPU use and the load average,
   :func:`turnkey_like.system.machine_load`). With ``wait_quiet_s`` (``--wait-quiet``) tk first waits
   for a quiet machine and, when other processes disturbed the timed loop, waits and times again
   (after :data:`WARMUP_MIN_RUNS` warm-up runs), keeping the least disturbed loop
   (:func:`turnkey_like.system.least_busy`);
4. statistics in ms (:func:`latency_stats`, median and IQR included), the batch counted
   (:func:`batch_of`) and throughput = batch x 1000 / mean latency (inferences/s), peak resident
   memory of the benchmarking process (``getrusage`` ``ru_maxrss``; a forked child inherits the
   parent's resident pages, so ``rss_start_bytes`` says where it started), and the warnings
   (:func:`benchmark_warnings`: a busy machine, a widely spread latency);
5. agreement of one more run's outputs with the eager PyTorch reference (:mod:`turnkey_like.agreement`,
   at the runtime's precision's tolerance), when the runtime is compared with eager (not for
   ``torch-eager`` itself, nor for ``.onnx`` inputs, which have no model);
6. with ``per_layer``: :func:`~turnkey_like.runtimes.per_layer.profiled_runs` more runs under the
   runtime's profiler (:meth:`Runtime.profile_layers`), after everything above so no figure above
   is disturbed, mapped to module paths and set beside the roofline of the invocation's
   characterization on the hardware profile the run measured on
   (:func:`turnkey_like.characterize.hardware.measured_on`): ``BenchmarkResult.per_layer``.

Every timed latency (ms) goes to ``benchmark_<runtime>_<device>.json`` in the build folder.

Reuse: :func:`benchmark_fingerprint` says what a benchmark's figures depend on (the build, the
options that change the measurement, tk and the machine); :func:`reuse_benchmark` applies
``--rebenchmark`` to the benchmark an earlier run saved (the pipeline's ``BenchmarkStage.reuse``).
"""

from __future__ import annotations

import functools
import os
import resource
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

import msgspec

from turnkey_like.agreement import compare_outputs, max_errors, tolerance_for
from turnkey_like.errors import BenchmarkError, one_line
from turnkey_like.files import reset_log, write_atomic
from turnkey_like.records import (
    BenchmarkResult,
    BuildResult,
    LatencyStats,
    StageResult,
    Status,
    encode,
    now_utc,
)
from turnkey_like.runtimes.base import Runtime

if TYPE_CHECKING:
    import numpy as np
    import torch

    from turnkey_like.records import Characterization, HardwareProfile, MachineLoad

WARMUP_MIN_RUNS = 10
WARMUP_WINDOW = 5
WARMUP_STABLE_REL = 0.05
WARMUP_MAX_S = 10.0
#: the shortest window over which a benchmark's contention is judged, s: a shorter timed loop is
#: followed by untimed runs until this much time has passed, because the kernel's CPU-time counters
#: count whole 10 ms ticks (``MachineLoad.resolution_cores``: 0.16 cores on 2 cores over 0.5 s)
MIN_LOAD_WINDOW_S = 0.5

#: runtime name -> "module:Class" implementing :class:`Runtime` (imported only when chosen)
RUNTIMES = {
    "ort": "turnkey_like.runtimes.ort:OrtRuntime",
    "torch-eager": "turnkey_like.runtimes.torch_runtime:TorchEagerRuntime",
    "torch-compiled": "turnkey_like.runtimes.torch_runtime:TorchCompiledRuntime",
}
DEVICES = ("cpu", "cuda")
BENCHMARK_LOG = "benchmark.log"
#: ``--rebenchmark`` policies (see :func:`reuse_benchmark`)
REBENCHMARK_POLICIES = ("if_needed", "always", "never")

#: Fingerprint values: strings and numbers (``BenchmarkResult.fingerprint``'s type).
Fingerprint = dict[str, Union[str, int, float, bool, None]]

#: the eager reference outputs, or a zero-argument callable computing them where the work runs
Reference = Union[list["np.ndarray"], Callable[[], list["np.ndarray"]], None]


@dataclass
class BenchmarkOptions:
    """How to benchmark.

    Attributes:
        runtime: a :data:`RUNTIMES` name: ``ort`` (ONNX Runtime on the build's ONNX file),
            ``torch-eager`` or ``torch-compiled``.
        device: ``cpu`` or ``cuda`` (ORT's CUDAExecutionProvider / torch on ``cuda:0``).
        iterations: timed runs (>= 1).
        warmup: warm-up runs; ``None`` = adaptive (>= 10 runs, until stable, at most 10 s).
        threads: intra-op threads (ORT ``intra_op_num_threads``, ``torch.set_num_threads``);
            ``None`` = the runtime's default (ORT: physical cores; torch: its current setting).
        timeout_s: seconds before the benchmarking child is killed.
        rebenchmark: ``if_needed`` (reuse the cached benchmark when its :func:`benchmark_fingerprint`
            is equal), ``always`` (measure again), ``never`` (reuse any successful cached benchmark,
            listing the keys that differ in ``stale``; measure only when there is none).
        per_layer: also profile per-layer times after the timed runs (``BenchmarkResult.per_layer``,
            see :mod:`turnkey_like.runtimes.per_layer`). Part of the fingerprint, so a run that asks
            for it never reuses one without it.
        wait_quiet_s: seconds to wait, at most, for other processes to leave the CPU quiet before
            timing, and to time again when they disturbed the timed loop (``--wait-quiet``; 0: time
            at once). Part of the fingerprint when set, so asking for it measures again.
    """

    runtime: str = "ort"
    device: str = "cpu"
    iterations: int = 100
    warmup: int | None = None
    threads: int | None = None
    timeout_s: float = 3600
    rebenchmark: str = "if_needed"
    per_layer: bool = False
    wait_quiet_s: float = 0.0

    def validate(self) -> None:
        """Raise :class:`BenchmarkError` naming the first invalid option."""
        if self.runtime not in RUNTIMES:
            raise BenchmarkError(f"unknown runtime {self.runtime!r}", hint="use --runtime " + ", ".join(RUNTIMES))
        if self.device not in DEVICES:
            raise BenchmarkError(f"unknown device {self.device!r}", hint="use --device cpu or cuda")
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise BenchmarkError(f"iterations {self.iterations!r} must be a positive integer")
        if self.warmup is not None and (not isinstance(self.warmup, int) or self.warmup < 0):
            raise BenchmarkError(f"warmup {self.warmup!r} must be a non-negative integer")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise BenchmarkError(f"threads {self.threads!r} must be a positive integer")
        if not self.timeout_s or self.timeout_s <= 0:
            raise BenchmarkError(f"benchmark timeout {self.timeout_s!r} must be positive seconds")
        if self.rebenchmark not in REBENCHMARK_POLICIES:
            raise BenchmarkError(f"unknown rebenchmark policy {self.rebenchmark!r}",
                                 hint="use --rebenchmark " + ", ".join(REBENCHMARK_POLICIES))
        if not isinstance(self.per_layer, bool):
            raise BenchmarkError(f"per_layer {self.per_layer!r} must be True or False")
        if not isinstance(self.wait_quiet_s, (int, float)) or self.wait_quiet_s < 0:
            raise BenchmarkError(f"wait_quiet_s {self.wait_quiet_s!r} must be 0 or more seconds")


def runtime_class(name: str) -> type[Runtime]:
    """The :class:`Runtime` subclass registered for ``name`` in :data:`RUNTIMES` (imported on demand)."""
    import importlib

    module, cls = RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module), cls)


# --------------------------------------------------------------------------------------------------
# The rules: warm-up, statistics, batch, memory
# --------------------------------------------------------------------------------------------------


def warm_up(runtime: Runtime, fixed: int | None, max_s: float = WARMUP_MAX_S) -> tuple[int, float, bool | None]:
    """Warm a runtime up; returns ``(runs, seconds, stable)`` (``stable`` is ``None`` for a fixed count).

    Adaptive rule: at least :data:`WARMUP_MIN_RUNS` runs, then stop once the median of the last
    :data:`WARMUP_WINDOW` latencies is within :data:`WARMUP_STABLE_REL` of the median of the previous
    window, or after ``max_s`` seconds.
    """
    start = time.perf_counter()
    if fixed is not None:
        if fixed:
            runtime.time_runs(fixed)
        return fixed, time.perf_counter() - start, None
    times: list[float] = []
    stable = False
    while True:
        times.extend(runtime.time_runs(1))
        if len(times) >= max(WARMUP_MIN_RUNS, 2 * WARMUP_WINDOW):
            last = statistics.median(times[-WARMUP_WINDOW:])
            prev = statistics.median(times[-2 * WARMUP_WINDOW : -WARMUP_WINDOW])
            if prev > 0 and abs(last - prev) <= WARMUP_STABLE_REL * prev:
                stable = True
                break
        if time.perf_counter() - start >= max_s and len(times) >= 1:
            break
    return len(times), time.perf_counter() - start, stable


def latency_stats(latencies_s: Sequence[float]) -> LatencyStats:
    """Mean, median, p90, p99, min, max, std and IQR in ms of latencies given in seconds, and their count.

    Percentiles and quartiles use numpy's default linear interpolation; ``std`` is the population
    standard deviation; ``iqr`` = p75 − p25.
    """
    import numpy as np

    ms = np.asarray(latencies_s, dtype=np.float64) * 1e3
    return LatencyStats(
        mean=float(ms.mean()),
        median=float(np.median(ms)),
        p90=float(np.percentile(ms, 90)),
        p99=float(np.percentile(ms, 99)),
        min=float(ms.min()),
        max=float(ms.max()),
        std=float(ms.std()),
        iqr=float(np.percentile(ms, 75) - np.percentile(ms, 25)),
        runs=int(ms.size),
    )


def timed_loop(runtime: Runtime, iterations: int, warm: Callable[[], object],
               threads: int | None) -> tuple[list[float], MachineLoad]:
    """Warm up (``warm()``), time ``iterations`` runs; return their latencies (s) and how busy the
    machine was during the timed loop (:func:`turnkey_like.system.machine_load`, the measurement
    keeping ``threads`` cores busy). A loop shorter than :data:`MIN_LOAD_WINDOW_S` is followed by
    untimed runs until the window is that long (window ``timed loop and untimed runs after it``), so
    the counters can resolve the load while the model keeps running as it did when timed."""
    from turnkey_like.system import cpu_sample, machine_load

    warm()
    start = cpu_sample()
    latencies = runtime.time_runs(iterations)
    window = "timed loop"
    if time.perf_counter() - start.wall_s < MIN_LOAD_WINDOW_S:
        window = "timed loop and untimed runs after it"
        while time.perf_counter() - start.wall_s < MIN_LOAD_WINDOW_S:
            runtime.time_runs(1)
    return latencies, machine_load(start, cpu_sample(), threads=threads, window=window)


def benchmark_warnings(stats: LatencyStats, load: MachineLoad) -> list[str]:
    """What could have moved a benchmark's figures, one line each with its figure: the machine was
    busy (``load.note``); the latency spread widely, its interquartile range above
    :data:`turnkey_like.stats.WIDE_SPREAD` of its median (pyperf's 10% line, on a statistic that
    single iterations' outliers, shown as p99 and max, do not inflate)."""
    from turnkey_like.stats import WIDE_SPREAD

    out = [load.note] if load.note else []
    if stats.iqr is not None and stats.median > 0 and stats.iqr > WIDE_SPREAD * stats.median:
        out.append(f"latency spread widely: interquartile range {stats.iqr / stats.median:.0%} of the median "
                   f"({stats.iqr:.3g} ms around {stats.median:.3g} ms)")
    return out


#: :func:`batch_of`'s note when dim 0 is taken as the batch
BATCH_TAKEN = "dim 0 of every batched input"


def batch_of(shapes: Mapping[str, Sequence[int]]) -> tuple[int, str]:
    """The batch one inference counts, and a note saying how it was decided.

    Rule: a *batched* input is a tensor input with 2 or more dims (a 1-D vector is one sample, not a
    batch). Dim 0 is the batch only when every batched input has the same dim 0; otherwise the batch
    is 1. A graph network taking node features ``[2708, 16]`` and an edge list ``[2, 10556]`` is one
    inference over one graph, not 2,708 inferences.

    Returns:
        ``(batch, note)``: ``(8, "dim 0 of every batched input")``;
        ``(1, "inputs disagree on dim 0: x=2708, edge_index=2 → batch 1")`` (one input named per
        distinct dim 0); ``(1, "no input has 2 or more dims → batch 1")``.
    """
    batched = {name: tuple(shape) for name, shape in shapes.items() if len(shape) >= 2}
    if not batched:
        return 1, "no input has 2 or more dims → batch 1"
    firsts: dict[int, str] = {}
    for name, shape in batched.items():
        firsts.setdefault(int(shape[0]), name)
    if len(firsts) == 1:
        return next(iter(firsts)), BATCH_TAKEN
    listed = ", ".join(f"{name}={dim}" for dim, name in firsts.items())
    return 1, f"inputs disagree on dim 0: {listed} → batch 1"


def peak_rss_bytes() -> int:
    """Peak resident set size of this process, bytes (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int:
    """Current resident set size of this process, bytes (psutil)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


# --------------------------------------------------------------------------------------------------
# Reuse
# --------------------------------------------------------------------------------------------------


def benchmark_fingerprint(build: BuildResult | None, options: BenchmarkOptions,
                          system: Mapping[str, object] | None = None) -> Fingerprint:
    """What a benchmark's figures depend on; two benchmarks with equal fingerprints measure the same thing.

    Keys:

    - ``build.<key>``: every key of the build's fingerprint (``BuildResult.fingerprint``: weights,
      inputs, opset, exporter, precision, tk and torch versions); a reused build keeps the
      fingerprint it was built with, so its benchmark stays reusable. For torch runtimes, which run
      the live model rather than the build's file, ``build.stale`` lists the build's stale keys
      (``--rebuild never``): a model that changed since is measured again. ``{}`` without a build.
    - ``runtime``, ``device``, ``precision`` (the build's; ``None`` without one), ``threads`` (as
      requested; ``None`` = the runtime's default), ``iterations``, ``warmup`` (``None`` = adaptive),
      ``per_layer``, ``wait_quiet`` (``--wait-quiet`` seconds; ``None`` when 0, as in records from a
      tk without it, so those stay reusable);
    - ``tk``: this tk's version (the harness's rules come with it);
    - the machine, from ``system`` (default :func:`turnkey_like.system.system_info`): ``cpu`` (model
      name), ``cores`` (logical cores: the machine's size, which default thread counts follow),
      ``gpu`` (CUDA device names, comma-separated, ``None`` when none is visible) and ``onnxruntime``
      (version). The host name is not part of it: two machines of the same kind give comparable figures.

    Not in it: the time limit, ``--rebenchmark`` itself, paths.
    """
    from turnkey_like import __version__

    if system is None:
        from turnkey_like.system import system_info

        system = system_info()
    fp: Fingerprint = {f"build.{key}": value for key, value in sorted((build.fingerprint if build else {}).items())}
    if build is not None and runtime_class(options.runtime).source == "torch":
        fp["build.stale"] = ",".join(build.stale) or None
    gpus = system.get("gpu") or []
    fp.update({
        "runtime": options.runtime,
        "device": options.device,
        "precision": build.precision if build is not None else None,
        "threads": options.threads,
        "iterations": options.iterations,
        "warmup": options.warmup,
        "per_layer": options.per_layer,
        "wait_quiet": options.wait_quiet_s or None,
        "tk": __version__,
        "cpu": system.get("cpu"),
        "cores": system.get("cores_logical"),
        "gpu": ", ".join(map(str, gpus)) or None,
        "onnxruntime": system.get("onnxruntime"),
    })
    return fp


def stale_keys(current: Mapping[str, object], earlier: Mapping[str, object]) -> list[str]:
    """The keys whose values differ between two fingerprints, sorted (a key missing on one side reads as ``None``)."""
    return sorted(k for k in set(current) | set(earlier) if current.get(k) != earlier.get(k))


def reuse_benchmark(previous: StageResult[BenchmarkResult] | None, fp: Fingerprint,
                    policy: str) -> BenchmarkResult | None:
    """Apply ``--rebenchmark`` to the benchmark an earlier run saved: the result to reuse, or ``None`` to measure.

    ``if_needed`` reuses a successful benchmark whose fingerprint equals ``fp``; ``never`` reuses any
    successful benchmark, listing the keys that differ in ``stale``; ``always`` never reuses. Nothing
    successful to reuse means measuring, whatever the policy. The returned copy has ``reused=True``.
    """
    if policy == "always" or previous is None or previous.status != Status.SUCCESSFUL or previous.result is None:
        return None
    stale = stale_keys(fp, previous.result.fingerprint)
    if stale and policy != "never":
        return None
    return msgspec.structs.replace(previous.result, reused=True, stale=stale)


# --------------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------------


def run_benchmark(runtime: Runtime, options: BenchmarkOptions, reference: Reference,
                  raw_path: str | None, characterization: Characterization | None = None,
                  hardware: HardwareProfile | None = None) -> BenchmarkResult:
    """Load, warm up, time, count the batch, then check agreement with the reference (see the module doc).

    Args:
        runtime: a constructed, not yet loaded :class:`Runtime`.
        options: iterations and warm-up.
        reference: eager PyTorch's outputs (numpy), a zero-argument callable producing them, or
            ``None`` (no agreement check). A callable runs last, after :meth:`Runtime.close` (which
            gives a moved model back to its device), so nothing of it precedes the timing or counts
            in ``peak_memory_bytes``.
        raw_path: file that receives every timed latency (ms) as JSON, or ``None``.
        characterization, hardware: with ``options.per_layer``, the invocation's characterization
            (module paths and op costs; ``None`` for ``.onnx`` inputs) and the profile the run
            measures on (``None``: no predicted times).

    Returns:
        The :class:`BenchmarkResult`. Errors of the runtime propagate (the launcher records them).
    """
    from turnkey_like.system import least_busy

    rss_start = current_rss_bytes()
    began = time.perf_counter()
    actual = None
    try:
        runtime.load()
        warm_ups: list[tuple[int, float, bool | None]] = []

        def measure() -> tuple[list[float], MachineLoad]:  # a retry re-warms with a fixed count
            fixed = options.warmup if not warm_ups else WARMUP_MIN_RUNS
            return timed_loop(runtime, options.iterations, lambda: warm_ups.append(warm_up(runtime, fixed)),
                              runtime.threads)

        latencies, load = least_busy(measure, threads=runtime.threads, wait_s=options.wait_quiet_s,
                                     until=began + options.timeout_s / 2)
        warm_runs, warm_s, stable = warm_ups[0]
        peak_rss = peak_rss_bytes()
        stats = latency_stats(latencies)
        batch, batch_note = batch_of(runtime.input_shapes())
        if reference is not None:
            actual = runtime.run()
        peak_device = runtime.peak_device_memory()
        raw_profile = None
        if options.per_layer:
            from turnkey_like.runtimes.per_layer import profiled_runs

            known = {m.path for m in characterization.modules} if characterization is not None else None
            raw_profile = runtime.profile_layers(profiled_runs(options.iterations), known)
    finally:
        runtime.close()
    per_layer = None
    if raw_profile is not None:
        from turnkey_like.runtimes.per_layer import per_layer_result

        per_layer = per_layer_result(raw_profile, characterization, hardware, stats.mean)
    max_abs = max_rel = within = None
    if actual is not None:
        expected = reference() if callable(reference) else reference
        names = [f"output_{i}" for i in range(len(expected))]
        report, within = compare_outputs(actual, expected, names, tolerance_for(runtime.precision))
        max_abs, max_rel = max_errors(report)
    if raw_path:
        write_atomic(Path(raw_path), encode({"latency_ms": [t * 1e3 for t in latencies],
                                             "warmup_iterations": warm_runs}))
    return BenchmarkResult(
        runtime=options.runtime,
        runtime_version=runtime.version,
        execution_provider=runtime.execution_provider,
        device=options.device,
        device_name=runtime.device_name,
        threads=runtime.threads,
        warmup_iterations=warm_runs,
        iterations=options.iterations,
        latency_ms=stats,
        throughput_ips=batch * 1000.0 / stats.mean if stats.mean > 0 else 0.0,
        batch_size=batch,
        batch_note=batch_note,
        peak_memory_bytes=peak_rss,
        rss_start_bytes=rss_start,
        peak_device_memory_bytes=peak_device,
        precision=runtime.precision,
        max_abs_err=max_abs,
        max_rel_err=max_rel,
        within_tolerance=within,
        warmup_s=round(warm_s, 4),
        warmup_stable=stable,
        model_path=runtime.model_path,
        raw_path=raw_path,
        per_layer=per_layer,
        load=load,
        warnings=benchmark_warnings(stats, load),
    )


def _benchmark_child(runtime_name: str, target: BuildResult | torch.nn.Module, inputs: object,
                     options: BenchmarkOptions, reference: Reference, raw_path: str,
                     characterization: Characterization | None = None,
                     hardware: HardwareProfile | None = None) -> BenchmarkResult:
    """The work of the benchmark child: construct the runtime and run the harness. Module-level and
    made of picklable arguments (for ``spawn``) unless the target is a live model."""
    cls = runtime_class(runtime_name)
    runtime = cls(target, inputs, device=options.device, threads=options.threads)
    return run_benchmark(runtime, options, reference, raw_path, characterization, hardware)


def per_layer_hardware(cls: type[Runtime], options: BenchmarkOptions,
                       cache_dir: str | Path | None = None) -> HardwareProfile | None:
    """The hardware profile a ``--per-layer`` run of ``cls`` with ``options`` measures on: ``local``
    measured with the run's thread count on cpu (measured once per count and cached under
    ``cache_dir``'s cache root), the GPU's datasheet profile on cuda (``None`` when tk has none)."""
    from turnkey_like.characterize.hardware import measured_on

    if options.device == "cuda":
        from turnkey_like.runtimes.ort import gpu_name

        return measured_on("cuda", gpu_name(0))
    return measured_on("cpu", "", threads=options.threads or cls.default_threads(), cache_dir=cache_dir)


def benchmark_invocation(model: torch.nn.Module | None, args: tuple, kwargs: dict, build: BuildResult | None,
                         build_dir: Path, options: BenchmarkOptions, *,
                         characterization: Characterization | None = None,
                         cache_dir: str | Path | None = None) -> StageResult[BenchmarkResult]:
    """Benchmark one invocation and return the benchmark stage's result.

    Args:
        model: the live module, or ``None`` for ``.onnx`` inputs (ONNX runtimes only).
        args, kwargs: the recorded call's inputs; for ``.onnx`` inputs ``kwargs`` may map input names
            to arrays, or be empty to synthesize them from ``build.input_specs``.
        build: the build stage's :class:`BuildResult` (needed by ONNX runtimes), or ``None``.
        build_dir: the invocation's folder; receives ``benchmark.log`` and the raw latencies.
        options: :class:`BenchmarkOptions`.
        characterization: the invocation's characterization, for ``options.per_layer`` (module paths
            and the roofline beside the measured times); ``None``: measured times only.
        cache_dir: the cache root where the ``local`` hardware profile is kept (``--cache-dir``).

    Returns:
        ``StageResult[BenchmarkResult]``: successful with the result (its ``fingerprint`` is
        :func:`benchmark_fingerprint` of ``build`` and ``options``), else status
        ``error``/``timeout``/``killed`` with a one-line error and log excerpt. This function always
        measures; reuse is decided before it (:func:`reuse_benchmark`).

    Raises:
        BenchmarkError: invalid options, ``--device cuda`` without CUDA support, a torch runtime
            asked for an ONNX-only input, or a torch runtime on cpu for a model that lives on CUDA.
    """
    from turnkey_like.calls import eager_outputs, uses_cuda
    from turnkey_like.launcher import choose_start_method, run_isolated

    options.validate()
    cls = runtime_class(options.runtime)
    cls.check_device(options.device)
    fp = benchmark_fingerprint(build, options)
    if cls.source == "torch" and model is None:
        raise BenchmarkError(f"runtime {options.runtime} needs a PyTorch model; this input is an ONNX file",
                             hint="use --runtime ort for .onnx inputs")
    model_on_cuda = model is not None and uses_cuda(model, args, kwargs)
    if cls.source == "torch" and model_on_cuda and options.device == "cpu":
        raise BenchmarkError(f"runtime {options.runtime} on cpu: the model or its inputs live on CUDA",
                             hint="use --device cuda for this model")
    started, t0 = now_utc(), time.perf_counter()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    log_path = build_dir / BENCHMARK_LOG
    reset_log(log_path)  # never through a symlink planted in the build folder
    raw_path = os.fspath((build_dir / f"benchmark_{options.runtime}_{options.device}.json").resolve())

    def failed(message: str) -> StageResult[BenchmarkResult]:
        return StageResult(status=Status.ERROR, duration_s=time.perf_counter() - t0, started_at=started, error=message)

    target: BuildResult | torch.nn.Module
    if cls.source == "onnx":
        if build is None:
            return failed("no ONNX build to benchmark: the build stage did not succeed")
        if not Path(build.onnx_path).exists():
            return failed(f"ONNX file {build.onnx_path} is missing (rebuild with --rebuild always)")
        target = build
    else:
        assert model is not None
        target = model
    try:
        inputs = cls.prepare_inputs(model, args, kwargs, build)
    except Exception as exc:  # noqa: BLE001 - a call we cannot turn into inputs is a failed benchmark
        return failed(f"could not prepare the {options.runtime} inputs: {one_line(exc)}")

    method = choose_start_method(options.device, model_on_cuda, needs_live_model=cls.source == "torch")
    reference: Reference = None
    if model is not None and cls.compares_with_eager:
        if method == "spawn":  # a spawned child has no model: compute the reference here
            reference = eager_outputs(model, args, kwargs)
        else:  # computed where the work runs, so a crashing forward cannot take tk down
            reference = functools.partial(eager_outputs, model, args, kwargs)
    hardware = per_layer_hardware(cls, options, cache_dir) if options.per_layer else None
    outcome = run_isolated(_benchmark_child, options.runtime, target, inputs, options, reference, raw_path,
                           characterization if options.per_layer else None, hardware,
                           timeout_s=options.timeout_s, log_path=log_path, start_method=method)
    if outcome.value is not None:
        outcome.value = msgspec.structs.replace(outcome.value, fingerprint=fp)
    return outcome.stage_result(started, time.perf_counter() - t0)
