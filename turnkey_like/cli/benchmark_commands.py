"""``tk benchmark`` and ``tk profile``: two front doors onto the one pipeline (``turnkey_like.pipeline``)."""

from __future__ import annotations

import argparse
import os
import sys

from turnkey_like.errors import BenchmarkError, InputError, TkError


def _add_input_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs")
    group.add_argument("inputs", nargs="*", metavar="INPUT",
                       help="scripts (.py), ONNX files (.onnx), input lists (.txt), globs; "
                            "append ::HASH[,HASH] to select invocations or models by hash")
    group.add_argument("--labels", action="append", metavar="KEY::V[,V]",
                       help="keep scripts whose line-1 labels pragma has KEY with at least one of the values; "
                            "repeat for several keys (all must match)")
    group.add_argument("--script-args", default="", metavar='"ARGS"',
                       help="arguments passed to every script as its sys.argv[1:]")
    _add_named_model_arguments(parser)
    group = parser.add_argument_group("discovery")
    group.add_argument("--max-depth", type=int, default=0, metavar="N",
                       help="also discover submodules down to depth N (default 0: the models the script calls)")
    group.add_argument("--timeout", type=float, default=3600, metavar="SECONDS",
                       help="time limit in seconds for each script's run (discovery), and for each invocation's "
                            "characterization, ONNX build and benchmark; each runs in a child process that is "
                            "killed at the limit, and the other inputs go on (default 3600)")


def _size_list(text: str) -> list[int]:
    """``--batch-size 1,8,32`` → ``[1, 8, 32]`` (argparse type; a sweep when more than one)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 1,8,32") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give sizes of at least 1, e.g. 1,8,32")
    return values


def _add_named_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "named models (no script needed; see docs/models.md)",
        "--model builds a model from torchvision, transformers, ultralytics, timm or your own factory with "
        "synthesized inputs. List-valued sizes make a sweep: one invocation per combination.")
    group.add_argument("--model", action="append", default=[], metavar="NAME",
                       help="resnet50, bert, bert-base-uncased, facebook/detr-resnet-50, a config folder, yolov8n.yaml, "
                            "model.pt, timm/resnet18, package.module:factory (repeatable; mixes with scripts)")
    group.add_argument("--batch-size", type=_size_list, default=[], metavar="N[,N...]",
                       help="batch size of named models' inputs (a list makes a sweep)")
    group.add_argument("--seq-len", type=_size_list, default=[], metavar="N[,N...]",
                       help="sequence length for text/speech models, frames for video models (a list makes a sweep)")
    group.add_argument("--imgsz", type=_size_list, default=[], metavar="N[,N...]",
                       help="image size for vision models (default: the weights' metadata; 640 for ultralytics)")
    group.add_argument("--input-shape", action="append", default=[], metavar="NAME:D0,D1,...",
                       help="exact shape of a named model's input, or a static shape for a dynamic input of "
                            "an .onnx input (repeatable)")
    group.add_argument("--pretrained", action="store_true",
                       help="load trained weights (network or local cache); default: random weights, no download")
    group.add_argument("--model-args", metavar="JSON",
                       help='keyword arguments for the model builder or config, e.g. \'{"num_hidden_layers": 2}\'')
    group.add_argument("--trust-remote-code", action="store_true",
                       help="allow a hub model's own Python code to run (transformers trust_remote_code)")
    group.add_argument("--seed", type=int, default=0, metavar="N",
                       help="seed of named models' random weights and synthesized inputs (default 0; recorded)")


def _named_specs(args):
    """The named-model inputs of ``--model`` (every sweep point its own input), in the order given."""
    if not args.model:
        return []
    import json

    from turnkey_like.inputs import named_model_specs
    from turnkey_like.onnx_file import parse_input_shape
    from turnkey_like.records import ModelRequest
    from turnkey_like.zoo import expand_sweep

    try:
        model_args = json.loads(args.model_args) if args.model_args else None
    except json.JSONDecodeError as e:
        raise InputError(f"--model-args {args.model_args!r}: not valid JSON ({e.msg})",
                         hint='write a JSON object, e.g. --model-args \'{"num_classes": 10}\'') from None
    if model_args is not None and not isinstance(model_args, dict):
        raise InputError(f"--model-args {args.model_args!r}: must be a JSON object", hint='e.g. \'{"depth": 2}\'')
    shapes = {name: list(shape) for name, shape in (parse_input_shape(t) for t in args.input_shape)}
    requests = []
    for name in args.model:
        base = ModelRequest(name=name, input_shapes=shapes, pretrained=args.pretrained, model_args=model_args,
                            trust_remote_code=args.trust_remote_code, no_weights=True if args.no_weights else None,
                            seed=args.seed)
        requests += expand_sweep(base, args.batch_size, args.seq_len, args.imgsz)
    return named_model_specs(requests)


def _add_analysis_arguments(group) -> None:
    from turnkey_like.characterize.hardware import list_profiles

    group.add_argument("--hardware", metavar="NAME[,NAME...]",
                       help=f"hardware profile for the roofline: {', '.join(list_profiles())} "
                            "(default: local, this machine, measured once and cached); a comma list such as "
                            "a100,h100,local draws every profile on --roofline/--html plots, the first decides "
                            "the Bound column")
    group.add_argument("--no-weights", action="store_true",
                       help="characterize on meta tensors: no real weights or compute (for models too large for memory)")


def _add_output_arguments(group) -> None:
    group.add_argument("--cache-dir", metavar="DIR",
                       help="cache root (default: $TK_CACHE_DIR or ~/.cache/turnkey_like)")
    group.add_argument("--json", metavar="FILE", help="also write the records of this run as JSON")


def register(subparsers, parent: argparse.ArgumentParser) -> None:
    """Add the ``benchmark`` and ``profile`` commands (``parent``: the options every command takes)."""
    bench = subparsers.add_parser(
        "benchmark", parents=[parent], help="discover, characterize, build to ONNX and benchmark the models scripts run",
        description="Run scripts, discover their models, characterize each invocation, export it to ONNX "
                    "and benchmark it. --analyze-only stops after characterization; --build-only after "
                    "the ONNX build.")
    _add_input_arguments(bench)
    group = bench.add_argument_group("characterization")
    group.add_argument("--analyze-only", action="store_true",
                       help="stop after discovery and characterization (no ONNX build or benchmark)")
    _add_analysis_arguments(group)
    group = bench.add_argument_group("build (ONNX export)")
    group.add_argument("--build-only", action="store_true", help="stop after the ONNX build")
    group.add_argument("--opset", type=int, default=18, metavar="N", help="ONNX opset (default 18; at least 17)")
    group.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="ONNX precision (default fp32)")
    group.add_argument("--rebuild", choices=("if_needed", "always", "never"), default="if_needed",
                       help="reuse cached builds when everything matches (if_needed, default), rebuild always, "
                            "or never rebuild")
    group = bench.add_argument_group("benchmark")
    group.add_argument("--runtime", choices=("ort", "torch-eager", "torch-compiled"), default="ort",
                       help="runtime to measure (default ort: ONNX Runtime)")
    group.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default cpu)")
    group.add_argument("--iterations", type=int, default=100, metavar="N", help="timed iterations (default 100)")
    group.add_argument("--warmup", type=int, default=None, metavar="N",
                       help="warm-up iterations (default: at least 10 and until latency is stable)")
    group.add_argument("--threads", type=int, default=None, metavar="N", help="intra-op threads (default: runtime's)")
    group.add_argument("--per-layer", action="store_true",
                       help="also profile per-layer times after the timed runs, beside each layer's roofline "
                            "(tk profile then shows Measured and %% of roof; docs/per_layer.md)")
    group.add_argument("--rebenchmark", choices=("if_needed", "always", "never"), default="if_needed",
                       help="reuse a cached benchmark when the build, runtime, device, precision, threads, "
                            "iterations, warm-up, tk version and machine all match (if_needed, default), "
                            "measure always, or never measure again when a benchmark exists")
    group = bench.add_argument_group("cache and output")
    _add_output_arguments(group)
    group.add_argument("--lean-cache", action="store_true",
                       help="delete ONNX files and large artifacts once benchmarked (records and logs stay)")
    from turnkey_like.cli.compare_commands import add_view_arguments

    add_view_arguments(group)
    from turnkey_like.cli.corpus_options import add_corpus_arguments

    add_corpus_arguments(bench)
    bench.set_defaults(func=run_benchmark)

    profile = subparsers.add_parser(
        "profile", parents=[parent], help="per-module MACs/FLOPs, memory traffic and roofline tables for the models scripts run",
        description="Run scripts, discover their models and print, per invocation, the per-module table, "
                    "summary, bottleneck breakdown, top ops and uncounted ops. 1 MAC = 2 FLOPs.")
    _add_input_arguments(profile)
    group = profile.add_argument_group("characterization")
    _add_analysis_arguments(group)
    group.add_argument("--showshape", action="store_true", help="add input/output tensor shapes to the tables")
    group.add_argument("--top", type=int, default=10, metavar="N", help="how many top ops to list (default 10)")
    group.add_argument("--trace", action="store_true",
                       help="also trace each model with FX / torch.export and report which method traces it "
                            "(the attempts and their errors); off by default: counting needs no trace")
    group = profile.add_argument_group("cache and output")
    _add_output_arguments(group)
    from turnkey_like.cli.view_commands import add_visualize_arguments

    add_visualize_arguments(group)
    add_view_arguments(group)
    profile.set_defaults(func=run_profile)


def _check_args(args) -> None:
    if not args.inputs and not args.model:
        raise InputError("give at least one input: a script, an .onnx file, a .txt list, or --model NAME",
                         hint="e.g. `tk benchmark examples/scripts/hello_world.py` or `tk profile --model resnet50`")
    if args.timeout <= 0:
        raise InputError(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    if args.max_depth < 0:
        raise InputError(f"--max-depth {args.max_depth}: must be 0 or more")
    if getattr(args, "opset", 18) < 17:
        raise InputError(f"--opset {args.opset}: tk needs opset 17 or newer", hint="use --opset 17 or higher")
    if getattr(args, "iterations", 1) < 1:
        raise InputError(f"--iterations {args.iterations}: must be at least 1")
    if getattr(args, "device", "cpu") == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BenchmarkError("--device cuda: no CUDA GPU is available to PyTorch on this machine",
                                 hint="run on a machine with an NVIDIA GPU and CUDA builds of torch and "
                                      "onnxruntime-gpu, or use --device cpu")
    if getattr(args, "hardware", None):
        from turnkey_like.characterize.hardware import get_profile, list_profiles

        names = [name.strip() for name in args.hardware.split(",") if name.strip()]
        if not names:
            raise InputError(f"--hardware {args.hardware!r}: no profile named", hint=f"choose from: {', '.join(list_profiles())}")
        for name in names:
            if name.lower() not in list_profiles():
                get_profile(name)  # InputError listing the known profiles
        # --hardware a,b,c: the pipeline (the Bound column) uses the first; --roofline/--html also draw the others
        args.hardware, args.extra_hardware = names[0], names[1:]


def _resolve(args, console):
    """Resolve the inputs and label filters; print one line per bad entry."""
    from turnkey_like.inputs import labels_match, parse_label_filters, resolve_inputs

    filters = parse_label_filters(args.labels)
    specs, errors = resolve_inputs(args.inputs)
    if filters:
        kept = [s for s in specs if not s.is_onnx and labels_match(s.labels, filters)]
        dropped = len(specs) - len(kept)
        if dropped:
            console.print(f"[dim]{dropped} input(s) skipped: labels do not match {' '.join(args.labels)}[/]")
        if specs and not kept:
            errors.append(InputError(f"no input matches --labels {' '.join(args.labels)}",
                                     hint="check the '# labels:' line 1 of your scripts (tk cache list shows labels)"))
        specs = kept
    specs += _named_specs(args)  # named models have no labels pragma: --labels filters scripts only
    for error in errors:
        _print_error(error)
    return specs, errors


def _print_error(error: TkError) -> None:
    print(f"error: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)


def _options(args, **overrides):
    """The typed :class:`~turnkey_like.pipeline.RunOptions` for what the command line asked."""
    from turnkey_like.build import BuildOptions
    from turnkey_like.onnx_file import parse_input_shape
    from turnkey_like.pipeline import RunOptions
    from turnkey_like.runtimes import BenchmarkOptions

    input_shapes = dict(parse_input_shape(text) for text in getattr(args, "input_shape", []) or [])
    build = BuildOptions()
    benchmark = BenchmarkOptions()
    if hasattr(args, "opset"):  # tk benchmark
        build = BuildOptions(opset=args.opset, precision=args.precision, rebuild=args.rebuild, timeout_s=args.timeout)
        benchmark = BenchmarkOptions(runtime=args.runtime, device=args.device, iterations=args.iterations,
                                     warmup=args.warmup, threads=args.threads, timeout_s=args.timeout,
                                     rebenchmark=args.rebenchmark, per_layer=args.per_layer)
    options = RunOptions(
        analyze_only=getattr(args, "analyze_only", False),
        build_only=getattr(args, "build_only", False),
        max_depth=args.max_depth,
        script_args=args.script_args,
        cache_dir=args.cache_dir,
        hardware=args.hardware,
        no_weights=args.no_weights,
        lean_cache=getattr(args, "lean_cache", False),
        input_shapes=input_shapes,
        trace=getattr(args, "trace", False),
        timeout_s=args.timeout,
        build=build,
        benchmark=benchmark,
    )
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


def _write_json(path: str, summary, exit_code: int, interrupted: bool) -> None:
    """Write the run's records to ``path`` as a :class:`~turnkey_like.records.RunReport` (atomically)."""
    from pathlib import Path

    from turnkey_like import __version__
    from turnkey_like.files import write_record
    from turnkey_like.records import RunReport, now_utc
    from turnkey_like.system import system_info

    report = RunReport(tk_version=__version__, created_at=now_utc(), system=system_info(), exit_code=exit_code,
                       interrupted=interrupted, results=summary.results,
                       errors=[e.message + (f" (hint: {e.hint})" if e.hint else "") for e in summary.errors])
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_record(target, report)
    except OSError as e:
        raise InputError(f"--json {path}: cannot write ({e.strerror})", hint="choose a writable path") from e


def _run(args, *, profile: bool) -> int:
    from rich.console import Console

    from turnkey_like.pipeline import Pipeline
    from turnkey_like.report.listener import ConsoleListener

    # Piped or redirected output gets a wide page, so tables are not squeezed to 80 columns.
    wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    console = Console(highlight=False, soft_wrap=True, width=wide)
    _check_args(args)
    specs, input_errors = _resolve(args, console)
    options = _options(args, analyze_only=True) if profile else _options(args)
    pipeline = Pipeline(options)
    listener = ConsoleListener(console, cache_root=str(pipeline.cache.root), profile=profile,
                               showshape=getattr(args, "showshape", False), top=getattr(args, "top", 10),
                               quiet=args.quiet, show_traceback=args.traceback)
    pipeline.listener = listener
    from turnkey_like.cli.corpus_options import corpus_options
    from turnkey_like.corpus import run_corpus

    with listener:
        summary = run_corpus(pipeline, specs, corpus_options(args))  # serial Pipeline.run unless --workers/--scheduler
    summary.errors[:0] = input_errors
    code = 130 if summary.interrupted else (1 if summary.failed or not specs else 0)
    if summary.interrupted:
        print("interrupted: results measured so far are kept in the cache (press Ctrl-C again to exit at once)",
              file=sys.stderr)
    if args.json:
        _write_json(args.json, summary, code, interrupted=summary.interrupted)
        console.print(f"[dim]records written to {args.json}[/]")
    from turnkey_like.cli.view_commands import write_views

    write_views(args, summary, console)
    from turnkey_like.cli.compare_commands import write_run_views

    write_run_views(args, summary, console)
    from turnkey_like.report.sweep import render_sweeps

    render_sweeps(console, summary.results)
    ConsoleListener.print_summary(console, summary)
    return code


def run_benchmark(args) -> int:
    """``tk benchmark``: the whole pipeline (or up to --analyze-only / --build-only)."""
    return _run(args, profile=False)


def run_profile(args) -> int:
    """``tk profile``: discovery + characterization with the per-module tables."""
    return _run(args, profile=True)
