"""The options of one pipeline run (:class:`RunOptions`): what the command line asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from turnkey_like.build import BuildOptions
    from turnkey_like.runtimes import BenchmarkOptions


def _default_build_options() -> BuildOptions:
    from turnkey_like.build import BuildOptions

    return BuildOptions()


def _default_benchmark_options() -> BenchmarkOptions:
    from turnkey_like.runtimes import BenchmarkOptions

    return BenchmarkOptions()


@dataclass
class RunOptions:
    """Options of one pipeline run (what the command line asked for).

    Attributes:
        analyze_only: stop after characterization (no ONNX build, no benchmark).
        build_only: stop after the ONNX build.
        characterize: run the characterization stage (``tk benchmark`` and ``tk profile`` do).
        max_depth: discover submodules down to this depth (0 = the models the script calls).
        script_args: the scripts' command-line arguments (``--script-args``).
        cache_dir: cache root (``None``: ``TK_CACHE_DIR`` or ``~/.cache/turnkey_like``).
        hardware: hardware profile name for the roofline (``None``: ``local``, this machine).
        no_weights: characterize on meta tensors (no real weights or compute).
        build: how to build (opset, precision, reuse policy, time limit, exporter).
        benchmark: how to benchmark (runtime, device, iterations, warm-up, threads, time limit).
        lean_cache: delete ONNX files and other large artifacts once a build is benchmarked.
        input_shapes: ``--input-shape`` overrides for ``.onnx`` inputs, name → shape.
        trace: also trace each model with FX/export while characterizing (``tk profile --trace``:
            the traceability line and attempts); otherwise only the ONNX build traces, once.
        timeout_s: time limit, seconds, for each input's discovery (running the script) and for each
            invocation's characterization; build and benchmark take theirs from ``build`` and
            ``benchmark``.
        memory_limit_bytes: the cap on the resident memory of each child (an input's, each stage's),
            bytes (``--memory-limit``; ``turnkey_like.launcher.memory``): over it the child is killed
            and its outcome is ``out_of_memory``. ``None``: the default, 75% of the memory available
            when the run starts divided among the inputs run at once on a host; 0: no cap.
        isolate: run each input (its discovery and its stages) in a child process of its own
            (:class:`~turnkey_like.launcher.StreamingChild`), so a crash, ``os._exit``, hang or
            leaked global state in one script never reaches tk or the next script. ``False`` runs
            everything in this process (no protection, no discovery or characterization time limit).
    """

    analyze_only: bool = False
    build_only: bool = False
    characterize: bool = True
    max_depth: int = 0
    script_args: str = ""
    cache_dir: str | None = None
    hardware: str | None = None
    no_weights: bool = False
    build: BuildOptions = field(default_factory=_default_build_options)
    benchmark: BenchmarkOptions = field(default_factory=_default_benchmark_options)
    lean_cache: bool = False
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    trace: bool = False
    timeout_s: float = 3600.0
    memory_limit_bytes: int | None = None
    isolate: bool = True

    def with_memory_default(self, inputs_at_once: int = 1) -> RunOptions:
        """These options with :attr:`memory_limit_bytes` resolved when it is the default (``None``):
        :func:`~turnkey_like.launcher.memory.default_memory_limit` of ``inputs_at_once`` on this host."""
        if self.memory_limit_bytes is not None:
            return self
        from dataclasses import replace

        from turnkey_like.launcher.memory import default_memory_limit

        return replace(self, memory_limit_bytes=default_memory_limit(inputs_at_once) or 0)
