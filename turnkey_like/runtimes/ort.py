"""ONNX Runtime as a benchmark runtime (CPU or CUDA execution provider).

The session uses graph optimization level *all*, sequential execution, one inter-op thread and
``intra_op_num_threads`` threads (0 = ORT's default, one per physical core). Inputs are numpy arrays
converted once before timing; the timed loop is the bare ``session.run(None, feed)`` loop a user
would write (``benchmarks/ort_harness_overhead.py`` measures the difference). On CUDA the inputs are
host arrays, so each latency includes the host-to-device and device-to-host copies, as TurnkeyML's did.
"""

from __future__ import annotations

import os
import subprocess
import time

from turnkey_like.runtimes import Runtime


def gpu_name(index: int = 0) -> str:
    """Name of CUDA device ``index`` from ``nvidia-smi`` (no torch/CUDA initialisation), or ``CUDA device N``."""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--id={index}", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        )
        name = out.stdout.strip().splitlines()[0].strip()
        if name:
            return name
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return f"CUDA device {index}"


class OrtRuntime(Runtime):
    """Benchmark an ONNX file on ONNX Runtime.

    Args:
        onnx_path: model file (its external data beside it).
        feed: input name -> numpy array; names the model does not take are ignored.
        device: ``cpu`` or ``cuda``.
        threads: ``intra_op_num_threads`` (``None`` = ORT's default).
        precision: the build's precision, recorded with the result.

    Raises (from ``prepare``):
        RuntimeError: CUDA was asked for but the session did not place the model on it, or an input
            the model needs is missing.
    """

    name = "ort"

    def __init__(self, onnx_path: str, feed: dict, device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32"):
        self.onnx_path = os.fspath(onnx_path)
        self.model_path = self.onnx_path
        self.all_inputs = feed
        self.device = device
        self.requested_threads = threads
        self.precision = precision
        self.session = None
        self.feed: dict = {}

    def prepare(self) -> None:
        import onnxruntime as ort
        import psutil

        from turnkey_like.system import cpu_name

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        so.intra_op_num_threads = self.requested_threads or 0
        so.log_severity_level = 3
        if self.device == "cuda":
            providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(self.onnx_path, so, providers=providers)
        used = self.session.get_providers()
        self.execution_provider = used[0]
        if self.device == "cuda" and self.execution_provider != "CUDAExecutionProvider":
            raise RuntimeError(f"ONNX Runtime did not place the model on CUDA (providers: {used})")
        names = [i.name for i in self.session.get_inputs()]
        missing = [n for n in names if n not in self.all_inputs]
        if missing:
            raise RuntimeError(f"no value for ONNX input(s) {missing}; the model takes {names}")
        self.feed = {n: self.all_inputs[n] for n in names}
        self.version = ort.__version__
        self.threads = self.requested_threads or psutil.cpu_count(logical=False) or os.cpu_count()
        self.device_name = gpu_name(0) if self.device == "cuda" else cpu_name()

    def run(self) -> list:
        return self.session.run(None, self.feed)

    def time_runs(self, n: int) -> list[float]:
        run, feed, clock = self.session.run, self.feed, time.perf_counter
        times = [0.0] * n
        for i in range(n):
            start = clock()
            run(None, feed)
            times[i] = clock() - start
        return times
