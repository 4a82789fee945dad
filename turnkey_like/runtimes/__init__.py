"""Benchmark one invocation on a runtime: ONNX Runtime (CPU/CUDA), torch eager or torch.compile.

Runtimes are plug-ins behind one small interface (:class:`Runtime`): ``prepare()`` loads the model
(session creation, compilation happens in warm-up), ``run()`` runs one inference and returns the
outputs, ``time_runs(n)`` returns ``n`` per-run latencies in seconds measured with
``time.perf_counter`` around each run and nothing else. The shared harness here does the rest:

1. warm-up: with ``warmup=None``, at least :data:`WARMUP_MIN_RUNS` runs and until latency is stable
   (the median of the last 5 runs within :data:`WARMUP_STABLE_REL` of the median of the 5 before),
   bounded by :data:`WARMUP_MAX_S` seconds; an explicit ``warmup=N`` runs exactly N;
2. ``iterations`` timed runs;
3. statistics in ms (mean, median, p90, p99 with numpy's linear interpolation, min, max, population
   std), throughput = batch size x 1000 / mean latency (inferences/s, batch = first dim of the first
   tensor input; 1 when that input is 1-D), peak resident memory of the benchmarking process
   (``getrusage`` ``ru_maxrss``; a forked child inherits the parent's resident pages, so
   ``rss_start_bytes`` says where it started),
   and agreement with eager PyTorch (max abs/rel error of the outputs) where a model is available.

The work runs in an isolated child (:mod:`turnkey_like.launcher`): forked on CPU; ONNX Runtime on CUDA
runs in a spawned child (a forked child of a process that has used CUDA cannot), and torch on CUDA
runs in-process (the live model cannot be sent to a spawned child), without a time limit.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from turnkey_like.errors import BenchmarkError
from turnkey_like.records import Record, StageResult, Status

WARMUP_MIN_RUNS = 10
WARMUP_WINDOW = 5
WARMUP_STABLE_REL = 0.05
WARMUP_MAX_S = 10.0

#: runtime name -> "module:Class" implementing :class:`Runtime` (imported only when chosen)
RUNTIMES = {
    "ort": "turnkey_like.runtimes.ort:OrtRuntime",
    "torch-eager": "turnkey_like.runtimes.torch_runtime:TorchEagerRuntime",
    "torch-compiled": "turnkey_like.runtimes.torch_runtime:TorchCompiledRuntime",
}
DEVICES = ("cpu", "cuda")


@dataclass
class BenchmarkOptions:
    """How to benchmark.

    Attributes:
        runtime: ``ort`` (ONNX Runtime on the build's ONNX file), ``torch-eager`` or ``torch-compiled``.
        device: ``cpu`` or ``cuda`` (ORT's CUDAExecutionProvider / torch on ``cuda:0``).
        iterations: timed runs (>= 1).
        warmup: warm-up runs; ``None`` = adaptive (>= 10 runs, until stable, at most 10 s).
        threads: intra-op threads (ORT ``intra_op_num_threads``, ``torch.set_num_threads``);
            ``None`` = the runtime's default (ORT: physical cores; torch: its current setting).
        timeout_s: seconds before the benchmarking child is killed.
    """

    runtime: str = "ort"
    device: str = "cpu"
    iterations: int = 100
    warmup: int | None = None
    threads: int | None = None
    timeout_s: float = 3600

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


@dataclass
class BenchmarkResult(Record):
    """One benchmark of one invocation (``StageResult.result`` of the benchmark stage).

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
        latency_ms: ``mean``, ``median``, ``p90``, ``p99``, ``min``, ``max``, ``std`` in ms.
        throughput_ips: inferences/s counting the batch: ``batch_size * 1000 / latency_ms["mean"]``.
        batch_size: first dim of the first tensor input (1 when it has fewer than 2 dims).
        peak_memory_bytes: peak resident memory of the benchmarking process, bytes.
        rss_start_bytes: its resident memory before the runtime loaded the model, bytes.
        peak_device_memory_bytes: torch's peak CUDA allocation (torch runtimes on CUDA), bytes.
        precision: ``fp32``/``fp16`` (ORT: the build's; torch: the model's first floating parameter).
        max_abs_err, max_rel_err: largest output error vs eager PyTorch across outputs, ``None`` where
            not measured (torch-eager is the reference; ``.onnx`` inputs have none).
        within_tolerance: whether those errors pass the build's tolerance (``build.TOLERANCES``).
        model_path: the ONNX file benchmarked (ORT).
        raw_path: JSON file with every timed latency (ms).
    """

    runtime: str
    runtime_version: str
    execution_provider: str
    device: str
    device_name: str
    threads: int | None
    warmup_iterations: int
    iterations: int
    latency_ms: dict[str, float]
    throughput_ips: float
    batch_size: int
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



class Runtime:
    """The plug-in interface a runtime implements (see the module doc).

    Attributes set by ``prepare``: ``version``, ``execution_provider``, ``device_name``, ``threads``,
    ``precision``, ``model_path`` (ORT).
    """

    name = "runtime"
    version = ""
    execution_provider = ""
    device_name = ""
    threads: int | None = None
    precision = "fp32"
    model_path: str | None = None

    def prepare(self) -> None:
        """Load the model and inputs; nothing here is timed."""
        raise NotImplementedError

    def run(self) -> list:
        """Run one inference; return the outputs as numpy arrays (flattened, in output order)."""
        raise NotImplementedError

    def time_runs(self, n: int) -> list[float]:
        """Run ``n`` inferences; return each one's latency in seconds."""
        raise NotImplementedError

    def peak_device_memory(self) -> int | None:
        """Peak device memory the runtime allocated, bytes (``None`` when not known)."""
        return None


def runtime_class(name: str):
    """The :class:`Runtime` subclass registered for ``name`` (imported on demand)."""
    module, cls = RUNTIMES[name].split(":")
    return getattr(importlib.import_module(module), cls)


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


def latency_stats(latencies_s: list[float]) -> dict[str, float]:
    """``mean, median, p90, p99, min, max, std`` in ms of latencies given in seconds.

    Percentiles use numpy's default linear interpolation; ``std`` is the population standard deviation.
    """
    import numpy as np

    ms = np.asarray(latencies_s, dtype=np.float64) * 1e3
    return {
        "mean": float(ms.mean()),
        "median": float(np.median(ms)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "min": float(ms.min()),
        "max": float(ms.max()),
        "std": float(ms.std()),
    }


def peak_rss_bytes() -> int:
    """Peak resident set size of this process, bytes (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int:
    """Current resident set size of this process, bytes (psutil)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def batch_size_of(arrays: list) -> int:
    """Batch size of a call: the first dim of the first tensor (numpy array or torch tensor) input.

    A 1-D or 0-D first input (``(10,)``: one sample without a batch axis) counts as batch 1.
    """
    for a in arrays:
        shape = getattr(a, "shape", None)
        if shape is not None:
            return int(shape[0]) if len(shape) >= 2 else 1
    return 1


def run_benchmark(runtime: Runtime, options: BenchmarkOptions, batch_size: int, reference, raw_path: str | None,
                  tolerance_precision: str | None = None) -> dict:
    """The harness: prepare, warm up, time, compare with the reference; returns ``BenchmarkResult.to_dict()``.

    ``reference`` is a list of numpy outputs of eager PyTorch, a zero-argument callable producing it,
    or ``None`` (no agreement check).
    """
    from turnkey_like.build import compare_outputs

    rss_start = current_rss_bytes()
    runtime.prepare()
    warm_runs, warm_s, stable = warm_up(runtime, options.warmup)
    latencies = runtime.time_runs(options.iterations)
    stats = latency_stats(latencies)
    max_abs = max_rel = within = None
    if reference is not None:
        expected = reference() if callable(reference) else reference
        actual = runtime.run()
        names = [f"output_{i}" for i in range(len(expected))]
        report, within = compare_outputs(actual, expected, names, tolerance_precision or runtime.precision)
        errs = [r for r in report.values() if "max_abs_err" in r]
        if errs and len(report) == len(expected):
            max_abs = max(r["max_abs_err"] for r in errs)
            max_rel = max(r["max_rel_err"] for r in errs)
        else:
            within = False
    if raw_path:
        _atomic_write_json(Path(raw_path), {"latency_ms": [t * 1e3 for t in latencies],
                                            "warmup_iterations": warm_runs})
    result = BenchmarkResult(
        runtime=options.runtime,
        runtime_version=runtime.version,
        execution_provider=runtime.execution_provider,
        device=options.device,
        device_name=runtime.device_name,
        threads=runtime.threads,
        warmup_iterations=warm_runs,
        iterations=options.iterations,
        latency_ms=stats,
        throughput_ips=batch_size * 1000.0 / stats["mean"] if stats["mean"] > 0 else 0.0,
        batch_size=batch_size,
        peak_memory_bytes=peak_rss_bytes(),
        rss_start_bytes=rss_start,
        peak_device_memory_bytes=runtime.peak_device_memory(),
        precision=runtime.precision,
        max_abs_err=max_abs,
        max_rel_err=max_rel,
        within_tolerance=within,
        warmup_s=round(warm_s, 4),
        warmup_stable=stable,
        model_path=runtime.model_path,
        raw_path=raw_path,
    )
    return result.to_dict()


# --------------------------------------------------------------------------------------------------
# Stage entry point
# --------------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_device(options: BenchmarkOptions) -> None:
    """Raise :class:`BenchmarkError` when ``--device cuda`` cannot be honoured (never fall back to CPU)."""
    if options.device != "cuda":
        return
    if options.runtime == "ort":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BenchmarkError(
                "--device cuda: ONNX Runtime has no CUDAExecutionProvider "
                f"(available: {', '.join(ort.get_available_providers())})",
                hint="pip install onnxruntime-gpu (instead of onnxruntime) on a machine with an NVIDIA GPU",
            )
    else:
        import torch

        if not torch.cuda.is_available():
            raise BenchmarkError("--device cuda: torch sees no CUDA device",
                                 hint="use a machine with an NVIDIA GPU and a CUDA build of torch, or --device cpu")


def _eager_reference(model, args, kwargs) -> list:
    import torch

    from turnkey_like.build import tensor_leaves, to_numpy

    with torch.no_grad():
        out = model(*args, **(kwargs or {}))
    return [to_numpy(t) for t in tensor_leaves(out)]


def _ort_feed(model, args, kwargs, build: dict) -> dict:
    """Numpy inputs for the ONNX model: from the recorded call, given arrays, or synthesized."""
    import numpy as np

    from turnkey_like.build import flatten_inputs, to_numpy

    if model is not None:
        flat = flatten_inputs(model, args, kwargs)
        return {n: to_numpy(t) for n, t in zip(flat.names, flat.tensors)}
    if kwargs:
        return {k: (to_numpy(v) if hasattr(v, "detach") else np.asarray(v)) for k, v in kwargs.items()}
    from turnkey_like.onnx_file import synthesize_inputs_for

    return synthesize_inputs_for(build.get("input_specs") or [])


def _ort_child(onnx_path: str, feed: dict, options: BenchmarkOptions, reference, raw_path: str,
               precision: str) -> dict:
    from turnkey_like.runtimes.ort import OrtRuntime

    runtime = OrtRuntime(onnx_path, feed, options.device, options.threads, precision)
    return run_benchmark(runtime, options, batch_size_of(list(feed.values())), reference, raw_path, precision)


def _torch_child(model, args, kwargs, options: BenchmarkOptions, raw_path: str, compare: bool) -> dict:
    from turnkey_like.build import flatten_inputs

    flat = flatten_inputs(model, args, kwargs)
    reference = _eager_reference(model, args, kwargs) if compare else None  # on the model's own device
    original = next(model.parameters(), None)
    original_device = original.device if original is not None else None
    runtime = runtime_class(options.runtime)(model, args, kwargs, options.device, options.threads)
    try:
        return run_benchmark(runtime, options, batch_size_of(flat.tensors), reference, raw_path)
    finally:
        # on CUDA this runs in tk's own process: give the user's model back where it was
        if original_device is not None and options.device == "cuda" and original_device.type != "cuda":
            model.to(original_device)


def benchmark_invocation(model, args: tuple, kwargs: dict, build: dict | None, build_dir: Path,
                         options: BenchmarkOptions) -> StageResult:
    """Benchmark one invocation and return the benchmark stage's result.

    Args:
        model: the live module, or ``None`` for ``.onnx`` inputs (ORT only).
        args, kwargs: the recorded call's inputs; for ``.onnx`` inputs ``kwargs`` may map input names
            to arrays, or be empty to synthesize them from ``build["input_specs"]``.
        build: the build stage's ``BuildResult`` dict (needed by ``ort``), or ``None``.
        build_dir: the invocation's folder; receives ``benchmark.log`` and the raw latencies.
        options: :class:`BenchmarkOptions`.

    Returns:
        :class:`StageResult` with ``result = BenchmarkResult.to_dict()`` when successful, else status
        ``error``/``timeout``/``killed`` with a one-line error and log excerpt.

    Raises:
        BenchmarkError: invalid options, ``--device cuda`` without CUDA support, or a torch runtime
            asked for an ONNX-only input.
    """
    from turnkey_like.launcher import default_start_method, run_isolated

    options.validate()
    _check_device(options)
    if options.runtime != "ort" and model is None:
        raise BenchmarkError(f"runtime {options.runtime} needs a PyTorch model; this input is an ONNX file",
                             hint="use --runtime ort for .onnx inputs")
    started, t0 = _now(), time.perf_counter()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    log_path = build_dir / "benchmark.log"
    log_path.write_text("")
    raw_path = os.fspath((build_dir / f"benchmark_{options.runtime}_{options.device}.json").resolve())

    def failed(message: str) -> StageResult:
        return StageResult(status=Status.ERROR, duration_s=time.perf_counter() - t0, started_at=started, error=message)

    if options.runtime == "ort":
        if not build or not build.get("onnx_path"):
            return failed("no ONNX build to benchmark: the build stage did not succeed")
        onnx_path = build["onnx_path"]
        if not Path(onnx_path).exists():
            return failed(f"ONNX file {onnx_path} is missing (rebuild with --rebuild always)")
        try:
            feed = _ort_feed(model, args, kwargs, build)
        except Exception as exc:  # noqa: BLE001
            return failed(f"could not prepare the ONNX inputs: {type(exc).__name__}: {exc}")
        precision = build.get("precision", "fp32")
        from turnkey_like.build import flatten_inputs, uses_cuda

        model_on_cuda = model is not None and uses_cuda(model, flatten_inputs(model, args, kwargs).tensors)
        if model is None:
            reference = None
        elif options.device == "cuda" or model_on_cuda:  # the child cannot run CUDA: compute it here
            reference = _eager_reference(model, args, kwargs)
        else:  # computed in the forked child, so a crashing forward cannot take tk down
            reference = lambda: _eager_reference(model, args, kwargs)  # noqa: E731
        method = "spawn" if options.device == "cuda" else default_start_method()
        outcome = run_isolated(_ort_child, onnx_path, feed, options, reference, raw_path, precision,
                               timeout_s=options.timeout_s, log_path=log_path, start_method=method)
    else:
        from turnkey_like.build import flatten_inputs, uses_cuda

        on_cuda = uses_cuda(model, flatten_inputs(model, args, kwargs).tensors)
        if on_cuda and options.device == "cpu":
            raise BenchmarkError(f"runtime {options.runtime} on cpu: the model or its inputs live on CUDA",
                                 hint="use --device cuda for this model")
        method = "inline" if options.device == "cuda" else default_start_method()
        compare = options.runtime != "torch-eager"
        outcome = run_isolated(_torch_child, model, args, kwargs, options, raw_path, compare,
                               timeout_s=options.timeout_s, log_path=log_path, start_method=method)
    return outcome.stage_result(started, time.perf_counter() - t0)


def status_line(result: StageResult, stage: str = "benchmark") -> str:
    """One line for the terminal: ``Successfully benchmarked on <device> (<runtime> <version>) mean 12.3 ms,
    81.3 inferences/s``, ``Successfully built ONNX ...`` for a build, or the failure one-liner."""
    status = result.status if isinstance(result.status, Status) else Status(result.status)
    r = result.result or {}
    if status is Status.SUCCESSFUL and "latency_ms" in r:
        return (f"Successfully benchmarked on {r.get('device_name')} ({r.get('runtime')} {r.get('runtime_version')}) "
                f"mean {r['latency_ms']['mean']:.3g} ms, {r.get('throughput_ips', 0):.1f} inferences/s")
    if status is Status.SUCCESSFUL and "onnx_path" in r:
        faithful = {True: "faithful", False: "NOT faithful", None: "faithfulness not measured"}[r.get("faithful")]
        reused = ", reused" if r.get("reused") else ""
        return (f"Successfully built ONNX (opset {r.get('opset')}, {r.get('exporter')} exporter, {r.get('precision')}, "
                f"{r.get('size_bytes', 0) / 2**20:.1f} MiB, {faithful}{reused})")
    if status is Status.SUCCESSFUL:
        return f"{stage.capitalize()} successful"
    if status is Status.SKIPPED:
        return f"{stage.capitalize()} skipped" + (f": {result.reason}" if result.reason else "")
    if status in (Status.NOT_STARTED, Status.RUNNING):
        return f"{stage.capitalize()} {status.value.replace('_', ' ')}"
    word = {Status.ERROR: "failed", Status.TIMEOUT: "timed out", Status.KILLED: "killed"}[status]
    return f"{stage.capitalize()} {word}: {result.error or 'no error message'}"
