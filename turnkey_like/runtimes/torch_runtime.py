"""PyTorch as a benchmark runtime: eager (``torch-eager``) and ``torch.compile`` (``torch-compiled``).

The recorded call ``model(*args, **kwargs)`` runs under ``torch.inference_mode()``. On CUDA the model
and the inputs are moved to ``cuda:0`` once before timing (and the model moved back by ``close``), and
every timed run ends with ``torch.cuda.synchronize()`` so the latency covers the GPU work.
``torch-compiled`` compiles with ``torch.compile(model)`` (default mode, inductor backend);
compilation happens during warm-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from turnkey_like.errors import BenchmarkError
from turnkey_like.runtimes.base import Runtime

if TYPE_CHECKING:
    import numpy as np
    import torch

    from turnkey_like.records import BuildResult

_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}


@dataclass
class TorchCall:
    """A torch runtime's inputs: the recorded call's positional and keyword arguments."""

    args: tuple
    kwargs: dict


class TorchEagerRuntime(Runtime["torch.nn.Module", TorchCall]):
    """Benchmark the live module in eager mode.

    Args:
        target: the ``torch.nn.Module``.
        inputs: the recorded call (:meth:`prepare_inputs`).
        device: ``cpu`` or ``cuda``.
        threads: ``torch.set_num_threads`` value (``None`` = leave torch's setting).
    """

    name = "torch-eager"
    source = "torch"
    compares_with_eager = False  # it is the reference

    def __init__(self, target: torch.nn.Module, inputs: TorchCall, *, device: str = "cpu",
                 threads: int | None = None) -> None:
        super().__init__(target, inputs, device=device, threads=threads)
        self.model = target
        self.call = inputs
        self.callable: Callable | None = None
        self._original_device: torch.device | None = None

    @classmethod
    def prepare_inputs(cls, model: torch.nn.Module | None, args: tuple, kwargs: dict,
                       build: BuildResult | None) -> TorchCall:
        """The recorded call as it was (moved to the device by :meth:`load`)."""
        return TorchCall(tuple(args), dict(kwargs or {}))

    @classmethod
    def check_device(cls, device: str) -> None:
        if device != "cuda":
            return
        import torch

        if not torch.cuda.is_available():
            raise BenchmarkError("--device cuda: torch sees no CUDA device",
                                 hint="use a machine with an NVIDIA GPU and a CUDA build of torch, or --device cpu")

    def _make_callable(self) -> Callable:
        return self.model

    def load(self) -> None:
        import torch

        from turnkey_like.calls import map_tensors
        from turnkey_like.system import cpu_name

        if self.requested_threads:
            torch.set_num_threads(self.requested_threads)
        self.threads = torch.get_num_threads()
        self.version = str(torch.__version__)  # TorchVersion, a str subclass the codec refuses
        if self.device == "cuda":
            first = next(self.model.parameters(), None)
            self._original_device = first.device if first is not None else None
            self.model = self.model.to("cuda")
            self.call = TorchCall(map_tensors(lambda t: t.to("cuda"), self.call.args),
                                  map_tensors(lambda t: t.to("cuda"), self.call.kwargs))
            self.device_name = torch.cuda.get_device_name(0)
            self.execution_provider = "torch-cuda"
            torch.cuda.reset_peak_memory_stats()
        else:
            self.device_name = cpu_name()
            self.execution_provider = "torch-cpu"
        first_float = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        self.precision = _PRECISION.get(str(first_float).removeprefix("torch."), str(first_float))
        self.callable = self._make_callable()

    def run(self) -> list[np.ndarray]:
        import torch

        from turnkey_like.calls import tensor_leaves, to_numpy

        with torch.inference_mode():
            out = self.callable(*self.call.args, **self.call.kwargs)
        return [to_numpy(t) for t in tensor_leaves(out)]

    def time_runs(self, n: int) -> list[float]:
        import torch

        fn, args, kwargs, clock = self.callable, self.call.args, self.call.kwargs, time.perf_counter
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

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        from turnkey_like.calls import flatten_inputs

        return flatten_inputs(self.model, self.call.args, self.call.kwargs).shapes()

    def peak_device_memory(self) -> int | None:
        if self.device != "cuda":
            return None
        import torch

        return int(torch.cuda.max_memory_allocated())

    def close(self) -> None:
        # on CUDA this runs in tk's own process (inline): give the user's model back where it was
        if self._original_device is not None and self._original_device.type != "cuda":
            self.model.to(self._original_device)


class TorchCompiledRuntime(TorchEagerRuntime):
    """Benchmark ``torch.compile(model)`` (inductor); the first warm-up runs include compilation."""

    name = "torch-compiled"
    compares_with_eager = True

    def _make_callable(self) -> Callable:
        import torch

        return torch.compile(self.model)
