"""The plug-in interface every benchmark runtime implements.

A runtime is constructed the same way whatever it runs::

    inputs = Cls.prepare_inputs(model, args, kwargs, build)   # the one way to get its inputs
    runtime = Cls(target, inputs, device="cpu", threads=None)  # the one constructor

where ``target`` is what the runtime runs, by its :attr:`Runtime.source`:

- ``"onnx"``: the build's :class:`turnkey_like.records.BuildResult` (the ONNX file to run is its
  ``onnx_path``, its precision and input specs come with it);
- ``"torch"``: the live ``torch.nn.Module``.

Then the harness (:mod:`turnkey_like.runtimes.harness`) calls :meth:`Runtime.load` (untimed: session
creation, moving to the device), :meth:`Runtime.time_runs` (warm-up and timed runs),
:meth:`Runtime.run` (outputs for the agreement check), :meth:`Runtime.input_shapes` (the batch rule),
:meth:`Runtime.profile_layers` (``--per-layer`` only, after everything else) and :meth:`Runtime.close`. A new runtime is one subclass and one line in
``turnkey_like.runtimes.RUNTIMES``; its heavy imports go inside its methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Generic, Literal, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import torch

    from turnkey_like.records import BuildResult
    from turnkey_like.runtimes.per_layer import RawProfile

TargetT = TypeVar("TargetT")
InputsT = TypeVar("InputsT")


class Runtime(Generic[TargetT, InputsT]):
    """A benchmark runtime (see the module doc).

    Args:
        target: the :class:`BuildResult` (``source == "onnx"``) or the ``torch.nn.Module``
            (``source == "torch"``).
        inputs: what :meth:`prepare_inputs` returned.
        device: ``cpu`` or ``cuda``.
        threads: intra-op threads (``None``: the runtime's default).

    Class attributes:
        name: the runtime's name in ``RUNTIMES`` (``ort``, ``torch-eager``, ...).
        source: ``onnx`` or ``torch``: what ``target`` is.
        compares_with_eager: whether the harness checks its outputs against eager PyTorch (the eager
            runtime is the reference itself).

    Facts set by :meth:`load`: ``version``, ``execution_provider``, ``device_name``, ``threads``,
    ``precision`` and ``model_path`` (ONNX runtimes).
    """

    name: ClassVar[str] = "runtime"
    source: ClassVar[Literal["onnx", "torch"]] = "torch"
    compares_with_eager: ClassVar[bool] = True

    version: str = ""
    execution_provider: str = ""
    device_name: str = ""
    threads: int | None = None
    precision: str = "fp32"
    model_path: str | None = None

    def __init__(self, target: TargetT, inputs: InputsT, *, device: str = "cpu", threads: int | None = None) -> None:
        self.target = target
        self.inputs = inputs
        self.device = device
        self.requested_threads = threads

    @classmethod
    def prepare_inputs(cls, model: torch.nn.Module | None, args: tuple, kwargs: dict,
                       build: BuildResult | None) -> InputsT:
        """This runtime's inputs for a recorded call (``model`` is ``None`` for ``.onnx`` inputs)."""
        raise NotImplementedError

    @classmethod
    def check_device(cls, device: str) -> None:
        """Raise :class:`turnkey_like.errors.BenchmarkError` when this runtime cannot run on ``device``
        here (never fall back silently to another device)."""

    def load(self) -> None:
        """Load the model and inputs onto the device and set the facts; nothing here is timed."""
        raise NotImplementedError

    def run(self) -> list[np.ndarray]:
        """Run one inference; return the output tensors as numpy arrays, in pytree/graph output order."""
        raise NotImplementedError

    def time_runs(self, n: int) -> list[float]:
        """Run ``n`` inferences; return each one's latency in seconds (``time.perf_counter`` around
        each run and nothing else)."""
        raise NotImplementedError

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{input name: shape}`` of the tensors one inference takes (for the batch rule)."""
        raise NotImplementedError

    @classmethod
    def default_threads(cls) -> int | None:
        """The intra-op threads this runtime uses when none are asked for (``None``: not known)."""
        return None

    def profile_layers(self, runs: int, modules: set[str] | None) -> RawProfile:
        """Profile ``runs`` more inferences (after their own warm-up) and return every kernel's time
        with the module path(s) it ran for (:mod:`turnkey_like.runtimes.per_layer`).

        ``modules``: the characterization's module paths (mapped paths are taken to the deepest of
        them), or ``None``. Called after the timed runs, so their latencies are not disturbed.
        """
        raise NotImplementedError(f"runtime {self.name} has no per-layer profiler")

    def peak_device_memory(self) -> int | None:
        """Peak device memory the runtime allocated, bytes (``None`` when not known)."""
        return None

    def close(self) -> None:
        """Undo what :meth:`load` did to objects the caller owns (e.g. move a model back to its device)."""
