"""ONNX Runtime as a benchmark runtime (CPU or CUDA execution provider).

The session uses graph optimization level *all*, sequential execution, one inter-op thread and
``intra_op_num_threads`` threads (0 = ORT's default, one per physical core). Inputs are numpy arrays
converted once before timing; the timed loop is the bare ``session.run(None, feed)`` loop a user
would write (``benchmarks/ort_harness_overhead.py`` measures the difference). On CUDA the inputs are
host arrays, so each latency includes the host-to-device and device-to-host copies, as TurnkeyML's did.

``--per-layer`` (:meth:`OrtRuntime.profile_layers`): a second session with the same options and
ONNX Runtime's profiler on (``SessionOptions.enable_profiling``) runs after the timed ones; it also
saves the graph it optimized, whose nodes are the profiler's events, to map them back to modules
(:func:`turnkey_like.runtimes.per_layer.onnx_kernel_modules`).
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
    from turnkey_like.runtimes.per_layer import RawProfile


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


def session_options(threads: int | None):
    """The benchmark's ``SessionOptions`` (module doc): optimization level *all*, sequential, one
    inter-op thread, ``threads`` intra-op threads (``None``: ORT's default, one per physical core)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    so.intra_op_num_threads = threads or 0
    so.log_severity_level = 3
    return so


def providers(device: str) -> list:
    """The execution providers for ``device`` (``cuda``: CUDA on device 0, then CPU for what it lacks)."""
    if device == "cuda":
        return [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


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

    @classmethod
    def default_threads(cls) -> int | None:
        """ORT's default intra-op threads: one per physical core."""
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count()

    def _session_options(self):
        return session_options(self.requested_threads)

    def _providers(self) -> list:
        return providers(self.device)

    def load(self) -> None:
        import onnxruntime as ort

        from turnkey_like.system import cpu_name

        self.session = ort.InferenceSession(self.model_path, self._session_options(), providers=self._providers())
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
        self.threads = self.requested_threads or self.default_threads()
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

    def profile_layers(self, runs: int, modules: set[str] | None) -> RawProfile:
        """Profile ``runs`` inferences on a second session with ONNX Runtime's profiler on.

        The session has this one's options and providers plus ``enable_profiling`` and
        ``optimized_model_filepath`` (its optimized graph, weights stored apart, both in a temporary
        folder removed afterwards). It runs :data:`~turnkey_like.runtimes.per_layer.PER_LAYER_WARMUP`
        warm-up runs, then ``runs`` profiled ones; only those are read. The timed session is released
        first, so the two never hold the weights together.
        """
        import json
        import shutil
        import tempfile

        import onnx
        import onnxruntime as ort

        from turnkey_like.runtimes.per_layer import (
            PER_LAYER_WARMUP,
            RawProfile,
            onnx_category,
            onnx_kernel_modules,
            ort_profile_kernels,
        )

        self.session = None
        folder = tempfile.mkdtemp(prefix="tk_ort_profile_")
        try:
            so = self._session_options()
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(folder, "profile")
            optimized_path = os.path.join(folder, "optimized.onnx")
            so.optimized_model_filepath = optimized_path
            so.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                        "optimized.onnx.data")
            so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
            session = ort.InferenceSession(self.model_path, so, providers=self._providers())
            for _ in range(PER_LAYER_WARMUP + runs):
                session.run(None, self.feed)
            with open(session.end_profiling(), encoding="utf-8") as f:
                events = json.load(f)
            del session
            try:
                optimized = onnx.load(optimized_path, load_external_data=False)
            except Exception:  # noqa: BLE001 - a graph ORT could not save: map by names only
                optimized = None
            source = onnx.load(self.model_path, load_external_data=False)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        wall_s, timed = ort_profile_kernels(events, runs)
        shares, mapping = onnx_kernel_modules(source, optimized, modules)
        kernels = list(timed.values())
        for kernel in kernels:
            kernel.category, kernel.modules = onnx_category(kernel.op), shares.get(kernel.name, [])
        note = {
            "dynamo name_scopes": "modules from the dynamo exporter's name_scopes node metadata",
            "torchscript node names": "modules from the TorchScript exporter's scoped node names "
                                      "(/model/layer1/layer1.0/conv1/Conv); a module called twice is "
                                      "numbered by the exporter (relu_1) and mapped back to its path",
            "none": "the ONNX file carries no module scopes (not exported by torch): kernels are unmapped",
        }[mapping]
        if self.device == "cuda" and not any(e.get("cat") == "Kernel" for e in events):
            note += "; this ONNX Runtime build records no CUDA kernel events, so node times are host-side " \
                    "launch times and the rest of the GPU time shows as unattributed"
        note += ("; a kernel fused from nodes of several modules is split among them in proportion to "
                 "their predicted roofline time")
        return RawProfile(method=f"onnxruntime {ort.__version__} session profiler ({self.execution_provider})",
                          mapping=mapping, wall_s=wall_s, kernels=kernels, mapping_note=note)
