"""The command line's values as typed option records, parsed and checked once per command.

Each command's handler calls its ``parse_<command>(args)`` first and hands the record it returns
to everything below; nothing else in the CLI reads the argparse namespace. A ``parse_*`` checks
every argument value and every output path before any script runs, and raises instead of
changing ``args``:

- :class:`~turnkey_like.errors.TkError` (an ``InputError`` mostly): a value tk cannot use
  (``--timeout 0``, ``--opset 16``, an unknown ``--hardware``, an unwritable ``--json``). The CLI
  prints ``error:`` and ``hint:``, one line each, and exits 1 (docs/exit_codes.md: a tk error
  before anything ran).
- :class:`UsageError`: the command line contradicts itself in a way argparse cannot see
  (``tk explore --max-nodes 3 --around 2``; every pair of options that make no sense together is
  in :mod:`turnkey_like.cli.contradictions`); the CLI shows the command's usage and exits 2.

Records are frozen dataclasses. Where a lower layer already has a typed record for a group of
options (:class:`~turnkey_like.build.BuildOptions`, :class:`~turnkey_like.runtimes.BenchmarkOptions`,
:class:`~turnkey_like.corpus.CorpusOptions`, :class:`~turnkey_like.records.ModelRequest`), the
option record holds that record. Heavy modules (torch, the zoo) are imported only by the commands
that need them, so ``tk cache list`` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from turnkey_like.cli.contradictions import (
    UsageError,
    hardware_contradictions,
    input_contradictions,
    named_model_contradictions,
    stage_contradictions,
    survey_contradictions,
    view_contradictions,
)
from turnkey_like.errors import InputError

if TYPE_CHECKING:
    import argparse

    from turnkey_like.build import BuildOptions
    from turnkey_like.characterize.generation_whatif import WhatIfOptions
    from turnkey_like.corpus import CorpusOptions
    from turnkey_like.records import ModelRequest
    from turnkey_like.runtimes import BenchmarkOptions
    from turnkey_like.report.explore import NodeRange


# ------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class CommonOptions:
    """``--traceback``, ``-q/--quiet`` and ``-v/--verbose`` (every command takes them)."""

    traceback: bool = False
    quiet: bool = False
    verbose: int = 0


@dataclass(frozen=True)
class NamedModelOptions:
    """``--model NAME`` entries and their input sizes.

    Attributes:
        names: the ``--model`` values, in the order given.
        requests: one request per sweep point (``--batch-size 1,8`` makes two per name), in order.
    """

    names: tuple[str, ...] = ()
    requests: tuple[ModelRequest, ...] = ()


@dataclass(frozen=True)
class InputOptions:
    """What to run: inputs, label filters, the scripts' arguments, discovery depth and time limit.

    Attributes:
        inputs: INPUT arguments as given (paths, globs, ``.txt`` lists, ``::HASH`` selectors).
        labels: the ``--labels`` values as given (for messages).
        label_filters: ``labels`` parsed, key → values.
        script_args: ``--script-args``, each script's ``sys.argv[1:]``.
        max_depth: discover submodules down to this depth.
        timeout_s: time limit, seconds, of each script's discovery and each stage.
        input_shapes: ``--input-shape`` values, input name → shape.
        named: the ``--model`` entries.
    """

    inputs: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    label_filters: dict[str, set[str]] = field(default_factory=dict)
    script_args: str = ""
    max_depth: int = 0
    timeout_s: float = 3600.0
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    named: NamedModelOptions = field(default_factory=NamedModelOptions)


@dataclass(frozen=True)
class AnalysisOptions:
    """``--hardware NAME[,NAME...]`` (checked names, in order) and ``--no-weights``."""

    hardware: tuple[str, ...] = ()
    no_weights: bool = False

    @property
    def profile(self) -> str | None:
        """The profile that decides the Bound column (the first named; ``None``: this machine)."""
        return self.hardware[0] if self.hardware else None

    @property
    def extra_profiles(self) -> tuple[str, ...]:
        """The profiles after the first, drawn on ``--roofline``/``--html`` plots too."""
        return self.hardware[1:]


@dataclass(frozen=True)
class StageOptions:
    """Which stages run and how (``build``/``benchmark`` ``None``: the pipeline's defaults)."""

    analyze_only: bool = False
    build_only: bool = False
    lean_cache: bool = False
    trace: bool = False
    build: BuildOptions | None = None
    benchmark: BenchmarkOptions | None = None


@dataclass(frozen=True)
class PipelineRun:
    """Everything :func:`turnkey_like.cli.run.run_pipeline` needs to run the pipeline on inputs
    (``whatif``: the generation what-ifs, ``None`` for a command without those options)."""

    common: CommonOptions
    inputs: InputOptions
    analysis: AnalysisOptions
    stages: StageOptions
    cache_dir: str | None
    corpus: CorpusOptions
    #: ``--memory-limit`` in bytes (``None``: the default; 0: ``none``, no cap)
    memory_limit_bytes: int | None = None
    whatif: WhatIfOptions | None = None


@dataclass(frozen=True)
class OutputOptions:
    """Files a run writes after it ends (checked paths): ``--json``, ``--roofline``, ``--html``,
    ``--visualize`` (with ``--collapse``, ``--no-fold`` and ``--color-by``), ``--generation-plot``,
    and ``runtime`` (``tk profile --runtime``): the per-layer run they show (``None``: the latest)."""

    json: str | None = None
    roofline: str | None = None
    html: str | None = None
    generation_plot: str | None = None
    visualize: str | None = None
    collapse: int | None = None
    fold_repeats: bool = True
    color_by: str = "bound"
    runtime: str | None = None


@dataclass(frozen=True)
class TableOptions:
    """``tk profile``'s tables: ``--showshape``, ``--top N``, ``--runtime`` (the per-layer run
    they show; ``None``: the latest), ``--phase`` (a generation's phase whose per-module table
    they show; ``None``: the prefill) and ``--no-fold`` (``fold``: print each run of identical
    blocks as its first block and one row for the rest)."""

    showshape: bool = False
    top: int = 10
    runtime: str | None = None
    phase: str | None = None
    fold: bool = True


@dataclass(frozen=True)
class BenchmarkCommand:
    """``tk benchmark``."""

    run: PipelineRun
    output: OutputOptions


@dataclass(frozen=True)
class ProfileCommand:
    """``tk profile``."""

    run: PipelineRun
    output: OutputOptions
    tables: TableOptions


@dataclass(frozen=True)
class ExploreCommand:
    """``tk explore``: the nodes to show, where the text goes (``None``: stdout), the per-layer
    run whose times it shows (``--runtime``; ``None``: the latest), and ``groups`` (``--groups``:
    the fusion groups instead of the nodes)."""

    run: PipelineRun
    nodes: NodeRange
    output: str | None = None
    runtime: str | None = None
    groups: bool = False


@dataclass(frozen=True)
class ViewCommand:
    """``tk view``: where Model Explorer serves (``port`` ``None``: a free one) and the per-layer run
    its measured overlay shows (``--runtime``; ``None``: the latest)."""

    run: PipelineRun
    host: str = "127.0.0.1"
    port: int | None = None
    open_browser: bool = True
    runtime: str | None = None


@dataclass(frozen=True)
class CompareCommand:
    """``tk compare``: cached builds (names or hashes) and ``--model`` entries characterized on the spot.

    Attributes:
        builds: BUILD arguments as given.
        named: the ``--model`` entries; ``run`` characterizes them (``None`` without any).
        json: ``"-"`` prints the comparison as JSON instead of the table; a path writes it there.
        html: also write a self-contained HTML report here.
    """

    common: CommonOptions
    builds: tuple[str, ...]
    cache_dir: str | None
    named: NamedModelOptions
    run: PipelineRun | None = None
    json: str | None = None
    html: str | None = None


@dataclass(frozen=True)
class CacheCommand:
    """``tk cache list|stats|delete|clean|reindex|location``: the cache and what to act on.

    Attributes:
        cache_dir: ``--cache-dir`` (``None``: ``$TK_CACHE_DIR``, else the default).
        builds: build names (``stats``: the one build; ``delete``/``clean``: the checked selection,
            empty with ``--all``).
        all: ``--all`` (``delete``/``clean``).
        json: ``--json`` (``list``, ``stats``).
    """

    cache_dir: str | None = None
    builds: tuple[str, ...] = ()
    all: bool = False
    json: bool = False


@dataclass(frozen=True)
class PruneCommand:
    """``tk cache prune``: age in days and total size in bytes (at least one is set)."""

    cache_dir: str | None
    older_than_days: float | None
    max_bytes: int | None
    dry_run: bool


@dataclass(frozen=True)
class ReportCommand:
    """``tk report``: the caches to merge (``None``: the default cache), the file and its format."""

    cache_dirs: tuple[str | None, ...]
    path: Path
    format: str


@dataclass(frozen=True)
class HardwareCommand:
    """``tk hardware list|measure``: the cache root holding ``local``, and how to measure it.

    Attributes:
        cache_dir: ``--cache-dir`` (``None``: ``$TK_CACHE_DIR``, else the default).
        json: ``--json``: print the profiles as JSON records instead of the table.
        threads: ``measure``: torch thread counts to measure with, in order (empty: torch's default).
        wait_quiet_s: ``measure``: seconds to wait, at most, for a quieter machine (``--wait-quiet``).
    """

    cache_dir: str | None = None
    json: bool = False
    threads: tuple[int, ...] = ()
    wait_quiet_s: float = 0.0


@dataclass(frozen=True)
class DiscoverModelsCommand:
    """``tk discover-models`` (see ``turnkey_like.corpus.survey.discover`` for each field)."""

    common: CommonOptions
    source: str
    family: str | None
    skip_patterns: tuple[str, ...]
    models: tuple[str, ...] | None
    test_model: str | None
    export: bool
    workers: int
    timeout_s: float
    refresh: bool
    full_depth: bool
    generate_code: bool
    json: str | None
    cache_dir: str | None


# ------------------------------------------------------------------------------------------ checks
def _at_least(flag: str, value, minimum: int, hint: str) -> None:
    """Raise InputError ``FLAG VALUE: must be ...`` unless ``value`` is ``None`` or at least ``minimum``."""
    if value is not None and value < minimum:
        bound = "0 or more" if minimum == 0 else f"at least {minimum}"
        raise InputError(f"{flag} {value:g}: must be {bound}", hint=hint)


def output_path(flag: str, value: str | None, picture_formats=None) -> str | None:
    """Check an output file's path before anything runs; return it unchanged (``None`` passes).

    ``picture_formats``: the extensions the picture writer knows (keys such as ``".svg"``), or
    ``None`` for any file.

    Raises:
        InputError: an empty name, an existing folder, an extension not in ``picture_formats``, or
            a nearest existing parent that is a file or cannot be written (the folders below it are
            made when the file is written).
    """
    if value is None:
        return None
    if not value.strip():
        raise InputError(f"{flag}: the file name is empty", hint="give a file name")
    path = Path(value)
    if path.is_dir():
        raise InputError(f"{flag} {value}: is a folder", hint="give a file name inside it")
    if picture_formats is not None and path.suffix.lower() not in picture_formats:
        raise InputError(f"{flag} {value}: unknown picture format {path.suffix or '(none)'!r}",
                         hint=f"end the file name with one of: {', '.join(picture_formats)}")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{flag} {value}: {folder} is a file, not a folder", hint="choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {value}: {folder} is not writable", hint="choose a writable path")
    return value


def measured_runtimes() -> tuple[str, ...]:
    """The runtimes a ``--runtime KEY`` of ``tk profile``/``explore``/``view`` may name
    (``BenchmarkResult.key``): the registered ones (``runtimes.RUNTIMES``)."""
    from turnkey_like.runtimes.harness import RUNTIMES

    return tuple(RUNTIMES)


def measured_runtime(value: str | None) -> str | None:
    """``--runtime KEY`` of the views, checked: a runtime of :func:`measured_runtimes`, optionally
    ``:cpu``/``:cuda`` (``ort:cpu`` is ``ort``); ``None`` passes.

    Raises:
        InputError: another value.
    """
    if value is None:
        return None
    runtime, _, device = value.partition(":")
    if runtime not in measured_runtimes() or device not in ("", "cpu", "cuda"):
        raise InputError(f"--runtime {value}: not a runtime tk measures",
                         hint=f"give one of {', '.join(measured_runtimes())}, with :cuda for a GPU run")
    return runtime if device in ("", "cpu") else value


def _wait_quiet(args: argparse.Namespace) -> float:
    """``--wait-quiet SECONDS``, checked: 0 or more (0: measure at once, whatever the load)."""
    _at_least("--wait-quiet", args.wait_quiet, 0, "give the most seconds to wait for a quieter machine, e.g. 30")
    return float(args.wait_quiet)


def _common(args: argparse.Namespace) -> CommonOptions:
    return CommonOptions(traceback=args.traceback, quiet=args.quiet, verbose=args.verbose)


def _check_inputs(args: argparse.Namespace) -> None:
    """The cheap checks of a command that runs the pipeline on inputs (``add_input_arguments``),
    made first: no contradiction (``contradictions.input_contradictions``), something to run, a
    positive ``--timeout``, ``--max-depth`` of 0 or more."""
    input_contradictions(args)
    if not args.inputs and not args.model:
        raise InputError("give at least one input: a script, an .onnx file, a .txt list, or --model NAME",
                         hint="e.g. `tk benchmark examples/scripts/hello_world.py` or `tk profile --model resnet50`")
    if args.timeout <= 0:
        raise InputError(f"--timeout {args.timeout:g}: must be more than 0 seconds",
                         hint="give the time limit in seconds, e.g. --timeout 600")
    _at_least("--max-depth", args.max_depth, 0, "0 keeps the models the script calls; 1 adds their children")


def _input_shapes(args: argparse.Namespace) -> dict[str, tuple[int, ...]]:
    if not args.input_shape:
        return {}
    from turnkey_like.onnx_file import parse_input_shape

    return dict(parse_input_shape(text) for text in args.input_shape)


def _named(args: argparse.Namespace, shapes: dict[str, tuple[int, ...]], no_weights: bool) -> NamedModelOptions:
    """The ``--model`` entries expanded to sweep points (``--model-args`` checked as a JSON object;
    ``--generate P:N`` makes a point per pair)."""
    if not args.model:
        if getattr(args, "generate", None):
            raise InputError("--generate applies to --model NAME",
                             hint="a script that generates is traced as it runs: `tk profile script.py` counts its "
                                  "prefill and decode steps")
        return NamedModelOptions()
    import json

    import msgspec

    from turnkey_like.records import ModelRequest
    from turnkey_like.zoo import expand_sweep

    try:
        model_args = json.loads(args.model_args) if args.model_args else None
    except json.JSONDecodeError as e:
        raise InputError(f"--model-args {args.model_args!r}: not valid JSON ({e.msg})",
                         hint='write a JSON object, e.g. --model-args \'{"num_classes": 10}\'') from None
    if model_args is not None and not isinstance(model_args, dict):
        raise InputError(f"--model-args {args.model_args!r}: must be a JSON object", hint='e.g. \'{"depth": 2}\'')
    if args.generate and args.seq_len:
        raise InputError("--generate P:N already sets the prompt length P: --seq-len does not apply",
                         hint="drop --seq-len, e.g. --generate 2048:256")
    requests = []
    for name in args.model:
        base = ModelRequest(name=name, input_shapes={k: list(v) for k, v in shapes.items()},
                            pretrained=args.pretrained, model_args=model_args,
                            trust_remote_code=args.trust_remote_code, no_weights=True if no_weights else None,
                            seed=args.seed, dtype=args.dtype)
        for prompt, new in args.generate or [(None, None)]:
            point = msgspec.structs.replace(base, seq_len=prompt, new_tokens=new) if new else base
            requests += expand_sweep(point, args.batch_size, args.seq_len, args.imgsz)
    return NamedModelOptions(names=tuple(args.model), requests=tuple(requests))


def _analysis(args: argparse.Namespace, *, several: bool = True) -> AnalysisOptions:
    """``--hardware`` split and checked against the known profiles, and ``--no-weights``."""
    names: list[str] = []
    if args.hardware:
        from turnkey_like.characterize.hardware import get_profile, list_profiles

        names = [name.strip() for name in args.hardware.split(",") if name.strip()]
        if not names:
            raise InputError(f"--hardware {args.hardware!r}: no profile named",
                             hint=f"choose from: {', '.join(list_profiles())}")
        if len(names) > 1 and not several:
            raise InputError(f"--hardware {args.hardware!r}: this command takes one profile",
                             hint=f"choose one of: {', '.join(list_profiles())}")
        for name in names:
            if name.lower() not in list_profiles():
                get_profile(name)  # InputError listing the known profiles
    return AnalysisOptions(hardware=tuple(names), no_weights=args.no_weights)


def _corpus(args: argparse.Namespace) -> CorpusOptions:
    """``--workers`` ... ``--retry-failed`` (``--retry-failed`` alone means ``--resume`` too), checked."""
    from turnkey_like.corpus import CorpusOptions

    corpus = CorpusOptions(workers=args.workers, scheduler=args.scheduler, upload=args.upload,
                           collect=args.collect, resume=args.resume or args.retry_failed,
                           retry_failed=args.retry_failed)
    corpus.validate()
    return corpus


def _pipeline_run(args: argparse.Namespace, stages: StageOptions, corpus: CorpusOptions | None = None) -> PipelineRun:
    """The run of a command with ``add_input_arguments`` (after :func:`_check_inputs`): hardware,
    label filters, ``--input-shape`` and ``--model`` checked, in that order."""
    from turnkey_like.corpus import CorpusOptions
    from turnkey_like.inputs import parse_label_filters

    analysis = _analysis(args)
    filters = parse_label_filters(args.labels)
    shapes = _input_shapes(args)
    inputs = InputOptions(inputs=tuple(args.inputs), labels=tuple(args.labels or ()), label_filters=filters,
                          script_args=args.script_args, max_depth=args.max_depth, timeout_s=args.timeout,
                          input_shapes=shapes, named=_named(args, shapes, analysis.no_weights))
    return PipelineRun(common=_common(args), inputs=inputs, analysis=analysis, stages=stages,
                       cache_dir=args.cache_dir, corpus=corpus or CorpusOptions(),
                       memory_limit_bytes=_memory_limit(args), whatif=_whatif(args))


def _memory_limit(args: argparse.Namespace) -> int | None:
    """``--memory-limit SIZE`` in bytes (``None`` when not given: the pipeline's default; 0 for
    ``none``: no cap).

    Raises:
        InputError: not a size, or not more than 0 bytes.
    """
    text = getattr(args, "memory_limit", None)
    if text is None:
        return None
    if text.strip().lower() in ("none", "off", "0"):
        return 0
    from turnkey_like.launcher.memory import parse_memory_size

    try:
        return parse_memory_size(text)
    except ValueError as e:
        raise InputError(f"--memory-limit {text}: {e}", hint="give a size such as 4G or 512M, or none for no cap") from None


def _dtypes(flag: str, text: str | None) -> tuple[str, ...]:
    """``--weight-dtype bf16,int4`` → ``("bfloat16", "int4")`` (empty: as counted).

    Raises:
        InputError: an unknown dtype (the hint lists the known ones).
    """
    from turnkey_like.characterize.generation_whatif import canonical_dtype

    names = [v for v in (text or "").split(",") if v.strip()]
    try:
        return tuple(dict.fromkeys(canonical_dtype(name) for name in names))
    except InputError as e:
        raise InputError(f"{flag} {text!r}: {e.message}", hint=e.hint) from None


def _whatif(args: argparse.Namespace) -> WhatIfOptions | None:
    """The generation what-if options of a command that has them (``add_generation_arguments``;
    ``None`` otherwise): dtypes known, ``--memory-reserve`` a fraction in [0, 1)."""
    if not hasattr(args, "weight_dtype"):
        return None
    from turnkey_like.characterize.generation_whatif import WhatIfOptions

    try:
        reserve = float(args.memory_reserve)
    except ValueError:
        reserve = -1.0
    if not 0.0 <= reserve < 1.0:
        raise InputError(f"--memory-reserve {args.memory_reserve}: must be a fraction from 0 up to (not) 1",
                         hint="e.g. --memory-reserve 0.1 keeps 10% of each device's memory back")
    return WhatIfOptions(weight_dtypes=_dtypes("--weight-dtype", args.weight_dtype),
                         act_dtypes=_dtypes("--act-dtype", args.act_dtype), kv_dtypes=_dtypes("--kv-dtype", args.kv_dtype),
                         tensor_parallel=tuple(dict.fromkeys(args.tensor_parallel or [1])), memory_reserve=reserve)


def _generation_plot(args: argparse.Namespace) -> str | None:
    """``--generation-plot``'s path, checked (``None`` for a command without it)."""
    path = getattr(args, "generation_plot", None)
    if path is None:
        return None
    from turnkey_like.views.generation_plot import FORMATS

    return output_path("--generation-plot", path, FORMATS)


def _run_outputs(args: argparse.Namespace, *, visualize: bool) -> OutputOptions:
    """``--json``, ``--roofline`` and ``--html`` (and with ``visualize``, ``--visualize``,
    ``--collapse``, ``--no-fold``): paths and picture formats checked."""
    roofline = None
    if args.roofline:
        from turnkey_like.views.roofline_plot import FORMATS

        roofline = output_path("--roofline", args.roofline, FORMATS)
    output = OutputOptions(json=output_path("--json", args.json), roofline=roofline,
                           html=output_path("--html", args.html), generation_plot=_generation_plot(args))
    if not visualize:
        return output
    from dataclasses import replace

    _at_least("--collapse", args.collapse, 0, "1 draws each of the model's children as one node")
    picture = None
    if args.visualize:
        from turnkey_like.views.graph import FORMATS, check_visualize_target

        picture = output_path("--visualize", args.visualize, FORMATS)
        check_visualize_target(picture, args.collapse)  # SVG/PNG/PDF without Graphviz: before any model runs
    return replace(output, visualize=picture, collapse=args.collapse, fold_repeats=not args.no_fold,
                   color_by=args.color_by, runtime=measured_runtime(args.runtime))


# ------------------------------------------------------------------------------------------ commands
def parse_benchmark(args: argparse.Namespace) -> BenchmarkCommand:
    """``tk benchmark``'s options, checked (see the module's docstring for what it raises)."""
    from turnkey_like.build import BuildOptions
    from turnkey_like.errors import BenchmarkError
    from turnkey_like.runtimes import BenchmarkOptions

    stage_contradictions(args)
    _check_inputs(args)
    hardware_contradictions(args, plots=True)
    if args.opset < 17:
        raise InputError(f"--opset {args.opset}: tk needs opset 17 or newer", hint="use --opset 17 or higher")
    _at_least("--iterations", args.iterations, 1, "e.g. --iterations 100")
    _at_least("--warmup", args.warmup, 0, "leave --warmup out to warm up until latency is stable")
    _at_least("--threads", args.threads, 1, "leave --threads out for the runtime's default")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BenchmarkError("--device cuda: no CUDA GPU is available to PyTorch on this machine",
                                 hint="run on a machine with an NVIDIA GPU and CUDA builds of torch and "
                                      "onnxruntime-gpu, or use --device cpu")
    build = BuildOptions(opset=args.opset, precision=args.precision, rebuild=args.rebuild, timeout_s=args.timeout)
    wait_quiet = _wait_quiet(args)
    if wait_quiet >= args.timeout:
        raise InputError(f"--wait-quiet {wait_quiet:g}: must be shorter than --timeout {args.timeout:g}",
                         hint="the benchmark's child is killed at --timeout, waiting included")
    benchmark = BenchmarkOptions(runtime=args.runtime, device=args.device, iterations=args.iterations,
                                 warmup=args.warmup, threads=args.threads, timeout_s=args.timeout,
                                 rebenchmark=args.rebenchmark, per_layer=args.per_layer,
                                 wait_quiet_s=wait_quiet)
    stages = StageOptions(analyze_only=args.analyze_only, build_only=args.build_only, lean_cache=args.lean_cache,
                          build=build, benchmark=benchmark)
    run = _pipeline_run(args, stages, corpus=_corpus(args))
    return BenchmarkCommand(run=run, output=_run_outputs(args, visualize=False))


def parse_profile(args: argparse.Namespace) -> ProfileCommand:
    """``tk profile``'s options, checked: discovery and characterization only."""
    _check_inputs(args)
    output = _run_outputs(args, visualize=True)
    view_contradictions(args)  # after the values: `--collapse -1` is a bad value first
    hardware_contradictions(args, plots=True)
    run = _pipeline_run(args, StageOptions(analyze_only=True, trace=args.trace))
    return ProfileCommand(run=run, output=output,
                          tables=TableOptions(showshape=args.showshape, top=args.top, runtime=output.runtime,
                                              phase=args.phase, fold=not args.no_fold))


def parse_explore(args: argparse.Namespace) -> ExploreCommand:
    """``tk explore``'s options, checked; mixed range forms raise :class:`UsageError`."""
    from turnkey_like.report.explore import NodeRange

    nodes = NodeRange(start=args.start, end=args.end, around=args.around, context=args.context,
                      max_nodes=args.max_nodes, text=args.filter)
    try:
        nodes.check()
    except InputError as e:
        raise UsageError(e.message, hint=e.hint) from None
    _check_inputs(args)
    hardware_contradictions(args, plots=False)
    runtime = measured_runtime(args.runtime)
    run = _pipeline_run(args, StageOptions(analyze_only=True))
    return ExploreCommand(run=run, nodes=nodes, output=output_path("--output", args.output), runtime=runtime,
                          groups=args.groups)


def parse_view(args: argparse.Namespace) -> ViewCommand:
    """``tk view``'s options, checked."""
    _check_inputs(args)
    hardware_contradictions(args, plots=False)
    if args.port is not None and not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: not a TCP port", hint="give 1 to 65535, or leave --port out for a free one")
    runtime = measured_runtime(args.runtime)
    run = _pipeline_run(args, StageOptions(analyze_only=True))
    return ViewCommand(run=run, host=args.host, port=args.port, open_browser=not args.no_browser, runtime=runtime)


def parse_compare(args: argparse.Namespace) -> CompareCommand:
    """``tk compare``'s options, checked: at least two builds and sweep points in all."""
    from turnkey_like.corpus import CorpusOptions

    named_model_contradictions(args)
    analysis = _analysis(args, several=False)
    shapes = _input_shapes(args)
    named = _named(args, shapes, analysis.no_weights)
    if len(args.builds) + len(named.requests) < 2:
        raise InputError("`tk compare` needs at least two builds, invocation hashes or --model entries",
                         hint="`tk cache list` shows the builds in the cache; e.g. `tk compare --model resnet18 --model resnet50`")
    common, run = _common(args), None
    if named.requests:
        inputs = InputOptions(input_shapes=shapes, named=named)
        run = PipelineRun(common=common, inputs=inputs, analysis=analysis, stages=StageOptions(analyze_only=True),
                          cache_dir=args.cache_dir, corpus=CorpusOptions())
    json_path = args.json if args.json == "-" else output_path("--json", args.json)
    return CompareCommand(common=common, builds=tuple(args.builds), cache_dir=args.cache_dir, named=named,
                          run=run, json=json_path, html=output_path("--html", args.html))


def parse_cache_list(args: argparse.Namespace) -> CacheCommand:
    """``tk cache list``'s options: the cache folder and ``--json``."""
    return CacheCommand(cache_dir=args.cache_dir, json=args.json)


def parse_cache_stats(args: argparse.Namespace) -> CacheCommand:
    """``tk cache stats BUILD``'s options: the cache folder, the build and ``--json``."""
    return CacheCommand(cache_dir=args.cache_dir, builds=(args.build,), json=args.json)


def parse_cache_folder(args: argparse.Namespace) -> CacheCommand:
    """``tk cache reindex|location``'s options: the cache folder."""
    return CacheCommand(cache_dir=args.cache_dir)


def parse_cache_selection(args: argparse.Namespace) -> CacheCommand:
    """``tk cache delete|clean``'s options: build names or ``--all``, not both, not neither."""
    if args.all and args.builds:
        raise InputError("give build names or --all, not both", hint="`tk cache list` shows the builds")
    if not args.all and not args.builds:
        raise InputError(f"`tk cache {args.cache_command}` needs build names or --all",
                         hint="`tk cache list` shows the builds")
    return CacheCommand(cache_dir=args.cache_dir, builds=tuple(args.builds), all=args.all)


def parse_prune(args: argparse.Namespace) -> PruneCommand:
    """``tk cache prune``'s options: ``--older-than``, ``--max-size`` or both."""
    if args.older_than is None and args.max_size is None:
        raise InputError("`tk cache prune` needs --older-than DAYS, --max-size SIZE or both",
                         hint="e.g. `tk cache prune --max-size 2GB --dry-run` lists what would go")
    return PruneCommand(cache_dir=args.cache_dir, older_than_days=args.older_than, max_bytes=args.max_size,
                        dry_run=args.dry_run)


def parse_report(args: argparse.Namespace) -> ReportCommand:
    """``tk report``'s options: the format from ``--format``, else ``-o``'s extension, else CSV; the
    file from ``-o``, else ``tk_report_<time>.<format>`` in the current folder."""
    import datetime as dt

    from turnkey_like.report.table import FORMATS, format_from_path

    if args.output:
        path = Path(output_path("--output", args.output))
        fmt = args.format or ("html" if path.suffix.lower() in (".html", ".htm") else format_from_path(path))
    else:
        fmt = args.format or "csv"
        path = Path.cwd() / f"tk_report_{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.{fmt}"
    if fmt != "html" and fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}", hint=f"use --format with one of: {', '.join(FORMATS)}")
    return ReportCommand(cache_dirs=tuple(args.cache_dirs or [None]), path=path, format=fmt)


def parse_hardware_list(args: argparse.Namespace) -> HardwareCommand:
    """``tk hardware list``'s options: the cache folder and ``--json``."""
    return HardwareCommand(cache_dir=args.cache_dir, json=args.json)


def parse_hardware_measure(args: argparse.Namespace) -> HardwareCommand:
    """``tk hardware measure``'s options: the cache folder, ``--threads`` (sizes of at least 1,
    repeats dropped) and ``--wait-quiet`` (0 or more seconds)."""
    return HardwareCommand(cache_dir=args.cache_dir, json=args.json, threads=tuple(dict.fromkeys(args.threads)),
                           wait_quiet_s=_wait_quiet(args))


def parse_discover_models(args: argparse.Namespace) -> DiscoverModelsCommand:
    """``tk discover-models``'s options, checked."""
    survey_contradictions(args)
    _at_least("--workers", args.workers, 1, "1 surveys one model at a time, without Dask")
    if args.timeout <= 0:
        raise InputError(f"--timeout {args.timeout:g}: must be more than 0 seconds",
                         hint="give each model's time limit in seconds, e.g. --timeout 600")
    return DiscoverModelsCommand(
        common=_common(args), source=args.source, family=args.family, skip_patterns=tuple(args.skip_patterns),
        models=tuple(args.models) if args.models is not None else None, test_model=args.test_model,
        export=args.export, workers=args.workers, timeout_s=args.timeout, refresh=args.refresh,
        full_depth=args.full_depth, generate_code=args.generate_code, json=output_path("--json", args.json),
        cache_dir=args.cache_dir)
