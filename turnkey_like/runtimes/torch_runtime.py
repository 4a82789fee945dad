"""PyTorch as a benchmark runtime: eager (``torch-eager``) and ``torch.compile`` (``torch-compiled``).

The recorded call ``model(*args, **kwargs)`` runs under ``torch.inference_mode()``. On CUDA the model
and the inputs are moved to ``cuda:0`` once before timing (and the model moved back by ``close``), and
every timed run ends with ``torch.cuda.synchronize()`` so the latency covers the GPU work.
``torch-compiled`` compiles with ``torch.compile(model)`` (default mode, inductor backend);
compilation happens during warm-up.

``--per-layer`` (:meth:`TorchEagerRuntime.profile_layers`): ``torch.profiler`` over extra runs after
the timed ones, with a forward pre-hook and hook on every module opening and closing a
``record_function`` range named after its path; each top-level ATen op's time goes to the innermost
module range around it. A compiled model runs inductor kernels fused across modules, with no module
hooks inside the compiled graph: its kernels are listed, unmapped.
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
    from turnkey_like.runtimes.per_layer import RawProfile

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

    @classmethod
    def default_threads(cls) -> int | None:
        """torch's current intra-op thread setting."""
        import torch

        return torch.get_num_threads()

    #: whether module hooks can attribute ops to modules (not inside a compiled graph)
    hooks_attribute = True

    def profile_layers(self, runs: int, modules: set[str] | None) -> RawProfile:
        """Profile ``runs`` calls with ``torch.profiler`` (after their own warm-up), ops attributed to modules.

        Each run is a ``tk.run`` range (its wall time); on CUDA each ends with a synchronize and an op's
        time is its kernels' device time (``device_time_total``), else its CPU time
        (``cpu_time_total``, children included). An op's category is tk's (ops registry) for its
        ATen name, else its first child's that has one, else ``other``.
        """
        import torch
        from torch.profiler import ProfilerActivity, profile, record_function

        from turnkey_like.runtimes.per_layer import MODULE_RANGE, PER_LAYER_WARMUP, RUN_RANGE, Kernel, RawProfile

        handles = []
        if self.hooks_attribute:
            stack: list = []

            def enter(path):
                def pre(_module, _args):
                    rf = record_function(MODULE_RANGE + path)
                    rf.__enter__()
                    stack.append(rf)
                return pre

            def leave(_module, _args, _out):
                if stack:
                    stack.pop().__exit__(None, None, None)

            for path, module in self.model.named_modules():
                handles.append(module.register_forward_pre_hook(enter(path)))
                handles.append(module.register_forward_hook(leave))
        fn, args, kwargs = self.callable, self.call.args, self.call.kwargs
        cuda = self.device == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        try:
            with torch.inference_mode():
                for _ in range(PER_LAYER_WARMUP):
                    fn(*args, **kwargs)
                if cuda:
                    torch.cuda.synchronize()
                with profile(activities=activities) as prof:
                    for _ in range(runs):
                        with record_function(RUN_RANGE):
                            fn(*args, **kwargs)
                            if cuda:
                                torch.cuda.synchronize()
        finally:
            for h in handles:
                h.remove()
        events = prof.events()
        run_ranges = sorted((e for e in events if e.name == RUN_RANGE), key=lambda e: e.time_range.start)
        wall_s = [e.time_range.elapsed_us() * 1e-6 for e in run_ranges]
        run_of = {e.id: i for i, e in enumerate(run_ranges)}
        kernels: dict[tuple[str, str | None], Kernel] = {}
        for e in events:
            if e.name == RUN_RANGE or e.name.startswith(MODULE_RANGE) or e.name == "cudaDeviceSynchronize":
                continue
            parent, path = e.cpu_parent, None
            if parent is None or not (parent.name == RUN_RANGE or parent.name.startswith(MODULE_RANGE)):
                continue  # not a top-level op (its parent op holds its time), or outside the runs
            while parent is not None and parent.name != RUN_RANGE:
                if path is None and parent.name.startswith(MODULE_RANGE):
                    path = parent.name[len(MODULE_RANGE):]
                parent = parent.cpu_parent
            if parent is None:
                continue
            us = e.device_time_total if cuda else e.cpu_time_total
            key = (e.name, path)
            k = kernels.get(key)
            if k is None:
                k = kernels[key] = Kernel(name=e.name, op=e.name, category=_category(e),
                                          modules=[(path, 1.0)] if path is not None else [])
            k.add(us * 1e-6, run_of[parent.id])
        if self.hooks_attribute:
            mapping, note = "forward hooks", ("each top-level ATen op's time goes to the innermost module "
                                              "whose forward was running (module hooks + record_function)")
        else:
            mapping, note = "none", ("torch.compile fuses ops across modules into inductor kernels that carry no "
                                     "module: kernel times are listed unmapped; use torch-eager or ort for modules")
        if cuda:
            note += "; times are the ops' CUDA kernel times"
        return RawProfile(method=f"torch.profiler (torch {torch.__version__}, {self.execution_provider})",
                          mapping=mapping, wall_s=wall_s, kernels=list(kernels.values()), mapping_note=note)

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


def _category(event) -> str:
    """tk's op category of a torch.profiler op event: its ATen op's, else its first child's, else ``other``."""
    from turnkey_like.characterize.ops import category_of, resolve

    stack = [event]
    while stack:
        e = stack.pop(0)
        if e.name.startswith("aten::"):
            op = resolve(e.name[len("aten::"):])
            category = category_of(op) if op is not None else None
            if category:
                return category
        stack.extend(e.cpu_children)
    return "other"


class TorchCompiledRuntime(TorchEagerRuntime):
    """Benchmark ``torch.compile(model)`` (inductor); the first warm-up runs include compilation."""

    name = "torch-compiled"
    compares_with_eager = True
    hooks_attribute = False  # hooks added after compiling would recompile, and never see inside kernels

    def _make_callable(self) -> Callable:
        import torch

        return torch.compile(self.model)
