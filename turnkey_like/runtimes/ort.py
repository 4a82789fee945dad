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
from typing import TYPE_CHECKING

from turnkey_like.errors import BenchmarkError
from turnkey_like.runtimes.base import Runtime

if TYPE_CHECKING:
    import numpy as np
    import torch

    from turnkey_like.records import BuildResult


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


class OrtRuntime(Runtime["BuildResult", "dict[str, np.ndarray]"]):
    """Benchmark a build's ONNX file on ONNX Runtime.

    Args:
        target: the build's :class:`BuildResult`: ``onnx_path`` is run (its external data beside it),
            ``precision`` is recorded with the result.
        inputs: ``{input name: numpy array}`` (:meth:`prepare_inputs`); names the model does not take
            are ignored.
        device: ``cpu`` or ``cuda``.
        threads: ``intra_op_num_threads`` (``None`` = ORT's default).

    Raises (from :meth:`load`):
        RuntimeError: CUDA was asked for but the session did not place the model on it, or an input
            the model needs is missing.
    """

    name = "ort"
    source = "onnx"

    def __init__(self, target: BuildResult, inputs: dict[str, np.ndarray], *, device: str = "cpu",
                 threads: int | None = None) -> None:
        super().__init__(target, inputs, device=device, threads=threads)
        self.model_path = os.fspath(target.onnx_path)
        self.precision = target.precision
        self.session = None
        self.feed: dict[str, np.ndarray] = {}

    @classmethod
    def prepare_inputs(cls, model: torch.nn.Module | None, args: tuple, kwargs: dict,
                       build: BuildResult | None) -> dict[str, np.ndarray]:
        """Numpy inputs named as the graph's: the recorded call flattened (:func:`turnkey_like.calls.flatten_inputs`)
        when there is a model; for ``.onnx`` inputs, ``kwargs`` (name -> array) when given, else inputs
        synthesized from ``build.input_specs`` (:func:`turnkey_like.onnx_file.synthesize_inputs_for`)."""
        import numpy as np

        from turnkey_like.calls import flatten_inputs, to_numpy

        if model is not None:
            return flatten_inputs(model, args, kwargs).feed()
        if kwargs:
            return {k: (to_numpy(v) if hasattr(v, "detach") else np.asarray(v)) for k, v in kwargs.items()}
        from turnkey_like.onnx_file import synthesize_inputs_for

        return synthesize_inputs_for(build.input_specs if build is not None else [])

    @classmethod
    def check_device(cls, device: str) -> None:
        if device != "cuda":
            return
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BenchmarkError(
                "--device cuda: ONNX Runtime has no CUDAExecutionProvider "
                f"(available: {', '.join(ort.get_available_providers())})",
                hint="pip install onnxruntime-gpu (instead of onnxruntime) on a machine with an NVIDIA GPU",
            )

    def load(self) -> None:
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
            providers: list = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(self.model_path, so, providers=providers)
        used = self.session.get_providers()
        self.execution_provider = used[0]
        if self.device == "cuda" and self.execution_provider != "CUDAExecutionProvider":
            raise RuntimeError(f"ONNX Runtime did not place the model on CUDA (providers: {used})")
        names = [i.name for i in self.session.get_inputs()]
        missing = [n for n in names if n not in self.inputs]
        if missing:
            raise RuntimeError(f"no value for ONNX input(s) {missing}; the model takes {names}")
        self.feed = {n: self.inputs[n] for n in names}
        self.version = ort.__version__
        self.threads = self.requested_threads or psutil.cpu_count(logical=False) or os.cpu_count()
        self.device_name = gpu_name(0) if self.device == "cuda" else cpu_name()

    def run(self) -> list[np.ndarray]:
        return self.session.run(None, self.feed)

    def time_runs(self, n: int) -> list[float]:
        run, feed, clock = self.session.run, self.feed, time.perf_counter
        times = [0.0] * n
        for i in range(n):
            start = clock()
            run(None, feed)
            times[i] = clock() - start
        return times

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(int(d) for d in array.shape) for name, array in self.feed.items()}
