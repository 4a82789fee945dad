"""``tk benchmark`` and ``tk profile``: two front doors onto the one pipeline (``turnkey_like.pipeline``).

Each handler parses its options once (:mod:`turnkey_like.cli.options`), runs the pipeline
(:func:`turnkey_like.cli.run.run_pipeline`) and writes the files asked for
(:mod:`turnkey_like.cli.outputs`).
"""

from __future__ import annotations

import argparse

from turnkey_like.cli import options, outputs
from turnkey_like.cli.arguments import (add_analysis_arguments, add_corpus_arguments, add_generation_arguments,
                                        add_input_arguments, add_output_arguments, add_view_arguments,
                                        add_visualize_arguments, add_wait_quiet_argument)
from turnkey_like.cli.run import run_pipeline


def register(subparsers, parent: argparse.ArgumentParser) -> None:
    """Add the ``benchmark`` and ``profile`` commands (``parent``: the options every command takes)."""
    bench = subparsers.add_parser(
        "benchmark", parents=[parent], help="discover, characterize, build to ONNX and benchmark the models scripts run",
        description="Run scripts, discover their models, characterize each invocation, export it to ONNX "
                    "and benchmark it. --analyze-only stops after characterization; --build-only after "
                    "the ONNX build.")
    add_input_arguments(bench)
    group = bench.add_argument_group("characterization")
    group.add_argument("--analyze-only", action="store_true",
                       help="stop after discovery and characterization (no ONNX build or benchmark)")
    add_analysis_arguments(group)
    group = bench.add_argument_group("build (ONNX export)")
    group.add_argument("--build-only", action="store_true", help="stop after the ONNX build")
    group.add_argument("--opset", type=int, default=18, metavar="N", help="ONNX opset (default 18; at least 17)")
    group.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="ONNX precision (default fp32)")
    group.add_argument("--rebuild", choices=("if_needed", "always", "never"), default="if_needed",
                       help="reuse cached builds when everything matches (if_needed, default), rebuild always, "
                            "or never rebuild")
    group = bench.add_argument_group("benchmark")
    from turnkey_like.runtimes.harness import RUNTIMES

    group.add_argument("--runtime", choices=tuple(RUNTIMES), default="ort",
                       help="runtime to measure (default ort: ONNX Runtime)")
    group.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default cpu)")
    group.add_argument("--iterations", type=int, default=100, metavar="N", help="timed iterations (default 100)")
    group.add_argument("--warmup", type=int, default=None, metavar="N",
                       help="warm-up iterations (default: at least 10 and until latency is stable)")
    group.add_argument("--threads", type=int, default=None, metavar="N", help="intra-op threads (default: runtime's)")
    group.add_argument("--per-layer", action="store_true",
                       help="also profile per-layer times after the timed runs, beside each layer's roofline "
                            "(tk profile then shows Measured and %% of roof; docs/per_layer.md)")
    add_wait_quiet_argument(group, 0.0, "timing", "timed loop")
    group.add_argument("--rebenchmark", choices=("if_needed", "always", "never"), default="if_needed",
                       help="reuse a cached benchmark when the build, runtime, device, precision, threads, "
                            "iterations, warm-up, tk version and machine all match (if_needed, default), "
                            "measure always, or never measure again when a benchmark exists")
    group = bench.add_argument_group("cache and output")
    add_output_arguments(group)
    group.add_argument("--lean-cache", action="store_true",
                       help="delete ONNX files and large artifacts once benchmarked (records and logs stay)")
    add_view_arguments(group)
    add_generation_arguments(bench)
    add_corpus_arguments(bench)
    bench.set_defaults(func=run_benchmark, parser=bench)

    profile = subparsers.add_parser(
        "profile", parents=[parent], help="per-module MACs/FLOPs, memory traffic and roofline tables for the models scripts run",
        description="Run scripts, discover their models and print, per invocation, the per-module table, "
                    "summary, bottleneck breakdown, top ops and uncounted ops. 1 MAC = 2 FLOPs.")
    add_input_arguments(profile)
    group = profile.add_argument_group("characterization")
    add_analysis_arguments(group)
    group.add_argument("--showshape", action="store_true", help="add input/output tensor shapes to the tables")
    group.add_argument("--top", type=int, default=10, metavar="N", help="how many top ops to list (default 10)")
    group.add_argument("--phase", choices=("prefill", "decode"), default=None,
                       help="for a generation (--generate, or a script that generates): print that phase's "
                            "per-module table (decode: summed over its steps); default prefill")
    group.add_argument("--trace", action="store_true",
                       help="also trace each model with FX / torch.export and report which method traces it "
                            "(the attempts and their errors); off by default: counting needs no trace")
    group = profile.add_argument_group("cache and output")
    add_output_arguments(group)
    add_visualize_arguments(group)
    add_view_arguments(group)
    add_generation_arguments(profile)
    profile.set_defaults(func=run_profile, parser=profile)


def _run(command: str, run: options.PipelineRun, output: options.OutputOptions,
         tables: options.TableOptions | None = None) -> int:
    """Run the pipeline with the report on stdout, write the files asked for, then the sweep tables
    and the closing summary line; return the exit code."""
    from turnkey_like.report.listener import ConsoleListener
    from turnkey_like.report.sweep import render_sweeps

    console = outputs.stdout_console(wide=160)
    outcome = run_pipeline(run, console, tables=tables)
    outputs.write_run_outputs(output, outcome.summary, outcome.exit_code, console,
                              title=f"tk {command} {' '.join(run.inputs.inputs)}",
                              extra_profiles=run.analysis.extra_profiles, cache_dir=run.cache_dir)
    render_sweeps(console, outcome.summary.results)
    ConsoleListener.print_summary(console, outcome.summary)
    return outcome.exit_code


def run_benchmark(args: argparse.Namespace) -> int:
    """``tk benchmark``: the whole pipeline (or up to --analyze-only / --build-only)."""
    command = options.parse_benchmark(args)
    return _run("benchmark", command.run, command.output)


def run_profile(args: argparse.Namespace) -> int:
    """``tk profile``: discovery + characterization with the per-module tables."""
    command = options.parse_profile(args)
    return _run("profile", command.run, command.output, command.tables)
