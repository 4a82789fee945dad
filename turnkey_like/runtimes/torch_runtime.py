"""PyTorch as a benchmark runtime: eager (``torch-eager``) and ``torch.compile`` (``torch-compiled``).

The recorded call ``model(*args, **kwargs)`` runs under ``torch.inference_mode()``. On CUDA the model
and the inputs are moved to ``cuda:0`` once before timing, and every timed run ends with
``torch.cuda.synchronize()`` so the latency covers the GPU work. ``torch-compiled`` compiles with
``torch.compile(model)`` (default mode, inductor backend); compilation happens during warm-up.
"""

from __future__ import annotations

import time

from turnkey_like.runtimes import Runtime

_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}


def _to_device(value, device):
    import torch
    from torch.utils._pytree import tree_map

    return tree_map(lambda v: v.to(device) if isinstance(v, torch.Tensor) else v, value)


class TorchEagerRuntime(Runtime):
    """Benchmark the live module in eager mode.

    Args:
        model: the ``torch.nn.Module``.
        args, kwargs: the recorded call's inputs.
        device: ``cpu`` or ``cuda``.
        threads: ``torch.set_num_threads`` value (``None`` = leave torch's setting).
    """

    name = "torch-eager"

    def __init__(self, model, args, kwargs, device: str = "cpu", threads: int | None = None):
        self.model = model
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.device = device
        self.requested_threads = threads
        self.callable = None

    def _make_callable(self):
        return self.model

    def prepare(self) -> None:
        import torch

        from turnkey_like.system import cpu_name

        if self.requested_threads:
            torch.set_num_threads(self.requested_threads)
        self.threads = torch.get_num_threads()
        self.version = torch.__version__
        if self.device == "cuda":
            self.model = self.model.to("cuda")
            self.args = _to_device(self.args, "cuda")
            self.kwargs = _to_device(self.kwargs, "cuda")
            self.device_name = torch.cuda.get_device_name(0)
            self.execution_provider = "torch-cuda"
            torch.cuda.reset_peak_memory_stats()
        else:
            self.device_name = cpu_name()
            self.execution_provider = "torch-cpu"
        first_float = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        self.precision = _PRECISION.get(str(first_float).removeprefix("torch."), str(first_float))
        self.callable = self._make_callable()

    def run(self) -> list:
        import torch

        from turnkey_like.build import tensor_leaves, to_numpy

        with torch.inference_mode():
            out = self.callable(*self.args, **self.kwargs)
        return [to_numpy(t) for t in tensor_leaves(out)]

    def time_runs(self, n: int) -> list[float]:
        import torch

        fn, args, kwargs, clock = self.callable, self.args, self.kwargs, time.perf_counter
        sync = torch.cuda.synchronize if self.device == "cuda" else None
        times = [0.0] * n
        with torch.inference_mode():
            for i in range(n):
                start = clock()
                fn(*args, **kwargs)
                if sync is not None:
                    sync()
                times[i] = clock() - start
        return times

    def peak_device_memory(self) -> int | None:
        if self.device != "cuda":
            return None
        import torch

        return int(torch.cuda.max_memory_allocated())


class TorchCompiledRuntime(TorchEagerRuntime):
    """Benchmark ``torch.compile(model)`` (inductor); the first warm-up runs include compilation."""

    name = "torch-compiled"

    def _make_callable(self):
        import torch

        return torch.compile(self.model)
