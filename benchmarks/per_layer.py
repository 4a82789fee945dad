"""What does ``--per-layer`` cost, and how efficient is each layer of ResNet-50 and BERT-base here?

For each model (ResNet-50 at 1x3x224x224, BERT-base at sequence length 128, random weights, built
from code: nothing is downloaded), tk builds the ONNX file once (dynamo exporter, as ``tk benchmark``
does) and characterizes the call once, then:

1. **Profiler overhead**: interleaved pairs (``benchmarks/pairs.py``) of a plain benchmark (A) and a
   ``--per-layer`` benchmark (B), both ``benchmark_invocation`` with the same iterations, warm-up and
   threads; each run's figure is its wall time (child process, load, warm-up, timed runs and, for B,
   the profiling session and the mapping). Printed: the median of the per-pair ratios B ÷ A, and
   the profiled runs' own wall time ÷ the timed runs' mean latency (what the profiler adds per run).
2. **Efficiency table** of the last ``--per-layer`` run: the 5 least efficient modules (own time;
   efficiency = roofline time on the ``local`` profile measured with the run's threads ÷ measured
   time), with attained FLOP/s and bytes/s, then measured time by op category and the unattributed
   share.

Usage::

    python benchmarks/per_layer.py [--models resnet50,bert] [--runtime ort] [--pairs 3] [--iterations 20]
        [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ort_harness_overhead import make_model  # noqa: E402
from pairs import format_load, interleaved_pairs, print_pairs  # noqa: E402


def print_efficiency(name: str, per_layer, latency_ms: float) -> None:
    """The 5 least efficient modules, the categories and the unattributed share of one per-layer result."""
    from turnkey_like.report.characterization import hardware_text
    from turnkey_like.units import format_bytes, si

    print(f"  {name}: {per_layer.method}; {per_layer.iterations} profiled runs of {per_layer.wall_ms:.1f} ms "
          f"(timed mean latency {latency_ms:.1f} ms; profiled run ÷ timed {per_layer.overhead:.3f}); "
          f"unattributed {per_layer.unattributed_share:.1%}; whole model {per_layer.efficiency:.1%} of roof "
          f"(roofline {per_layer.predicted_ms:.2f} ms)")
    print(f"  roofline on: {hardware_text(per_layer.hardware)}")
    print(f"  {'module':44s} {'class':18s} {'measured':>9s} {'roofline':>9s} {'% roof':>7s} {'FLOP/s':>9s} "
          f"{'bytes/s':>9s}")
    for r in per_layer.least_efficient(5):
        print(f"  {r.name or '(model)':44s} {r.class_name[:18]:18s} {r.measured_ms:8.3f}m {r.predicted_ms:8.3f}m "
              f"{r.efficiency:7.1%} {si(r.attained_flops_s):>9s} {format_bytes(r.attained_bytes_s):>9s}")
    print(f"  {'category':20s} {'measured':>9s} {'share':>7s} {'roofline':>9s} {'% roof':>7s}")
    for r in per_layer.categories:
        roof = f"{r.predicted_ms:8.3f}m" if r.predicted_ms is not None else f"{'':9s}"
        eff = f"{r.efficiency:7.1%}" if r.efficiency is not None else ""
        print(f"  {r.name:20s} {r.measured_ms:8.3f}m {r.share:7.1%} {roof} {eff}")
    if per_layer.faster_than_roof:
        print(f"  faster than roof (profile or counting error): {', '.join(per_layer.faster_than_roof)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,bert")
    parser.add_argument("--runtime", default="ort", help="ort or torch-eager")
    parser.add_argument("--pairs", type=int, default=3, help="timed interleaved pairs per model")
    parser.add_argument("--warmup-pairs", type=int, default=0, help="untimed pairs first")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1, see ort_harness_overhead)")
    opts = parser.parse_args(argv)

    from turnkey_like.build import BuildOptions, build_invocation
    from turnkey_like.characterize import characterize_call
    from turnkey_like.records import Status
    from turnkey_like.runtimes import BenchmarkOptions, benchmark_invocation

    print(f"--per-layer overhead: per-layer run ÷ plain run (wall time of benchmark_invocation), median of "
          f"{opts.pairs} interleaved pairs; runtime {opts.runtime}, {opts.iterations} iterations, warm-up 5, "
          f"threads {opts.threads}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tk_per_layer_") as tmp:
        cache_dir = Path(tmp) / "cache"
        for name in opts.models.split(","):
            model, args, kwargs = make_model(name)
            build_dir = Path(tmp) / name
            t0 = time.perf_counter()
            build = build_invocation(model, args, kwargs, build_dir, BuildOptions())
            if build.status is not Status.SUCCESSFUL:
                print(f"{name}: build failed: {build.error}")
                continue
            char = characterize_call(model, args, kwargs, hardware="local", cache_dir=cache_dir)
            print(f"{name}: built ({build.result.exporter}) and characterized in {time.perf_counter() - t0:.1f} s",
                  flush=True)
            last = {}

            def run(per_layer: bool):
                options = BenchmarkOptions(runtime=opts.runtime, iterations=opts.iterations, warmup=5,
                                           threads=opts.threads, per_layer=per_layer)

                def once() -> float:
                    start = time.perf_counter()
                    stage = benchmark_invocation(model, args, kwargs, build.result, build_dir, options,
                                                 characterization=char, cache_dir=cache_dir)
                    elapsed = time.perf_counter() - start
                    if stage.status is not Status.SUCCESSFUL:
                        raise SystemExit(f"{name}: benchmark failed: {stage.error}")
                    if per_layer:
                        last["result"] = stage.result
                    return elapsed
                return once

            run(True)()  # the local profile for this thread count is measured (once) before the pairs
            stats = interleaved_pairs(run(False), run(True), pairs=opts.pairs, warmup=opts.warmup_pairs)
            print_pairs(f"  {name}: per-layer ÷ plain (benchmark wall time)", stats)
            result = last["result"]
            print_efficiency(name, result.per_layer, result.latency_ms.mean)
            print(f"  ({format_load(stats)})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
