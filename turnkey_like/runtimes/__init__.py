"""Benchmark runtimes: ONNX Runtime (CPU/CUDA), torch eager and torch.compile, as uniform plug-ins.

- :mod:`turnkey_like.runtimes.base`: the :class:`Runtime` interface (one constructor
  ``Runtime(target, inputs, *, device, threads)``, one ``prepare_inputs`` per runtime class).
- :mod:`turnkey_like.runtimes.harness`: the benchmark stage (:func:`benchmark_invocation`), the
  harness rules (warm-up, statistics, batch), reuse (:func:`benchmark_fingerprint`,
  :func:`reuse_benchmark`) and the registry :data:`RUNTIMES`.
- :mod:`turnkey_like.runtimes.ort`, :mod:`turnkey_like.runtimes.torch_runtime`: the runtimes,
  imported only when chosen.

This package only re-exports; register a new runtime in :data:`RUNTIMES`.
"""

from __future__ import annotations

from turnkey_like.records import BenchmarkResult, LatencyStats
from turnkey_like.runtimes.base import Runtime
from turnkey_like.runtimes.harness import (
    BATCH_TAKEN,
    DEVICES,
    REBENCHMARK_POLICIES,
    RUNTIMES,
    WARMUP_MAX_S,
    WARMUP_MIN_RUNS,
    WARMUP_STABLE_REL,
    WARMUP_WINDOW,
    BenchmarkOptions,
    batch_of,
    benchmark_fingerprint,
    benchmark_invocation,
    latency_stats,
    reuse_benchmark,
    run_benchmark,
    runtime_class,
    warm_up,
)

__all__ = [
    "BATCH_TAKEN", "DEVICES", "REBENCHMARK_POLICIES", "RUNTIMES", "WARMUP_MAX_S", "WARMUP_MIN_RUNS",
    "WARMUP_STABLE_REL", "WARMUP_WINDOW",
    "BenchmarkOptions", "BenchmarkResult", "LatencyStats", "Runtime", "batch_of", "benchmark_fingerprint",
    "benchmark_invocation", "latency_stats", "reuse_benchmark", "run_benchmark", "runtime_class", "warm_up",
]
