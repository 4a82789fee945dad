"""How much does tk's ONNX Runtime harness add over a bare ``session.run`` loop?

For each model (a tiny linear model, ResNet-50 at 1x3x224x224, BERT-base at sequence length 128),
tk builds the ONNX file once, then runs interleaved pairs (``benchmarks/pairs.py``: A then B, B then
A, ...) of:

- **bare** (A): what a user would write in this process: an ``InferenceSession`` with the same
  session options (level *all*, sequential, the same intra-op threads), 10 warm-up runs, then
  ``iterations`` calls of ``session.run(None, feed)`` timed one by one with ``time.perf_counter``;
- **tk** (B): ``benchmark_invocation(..., BenchmarkOptions(runtime="ort"))``: forked child, adaptive
  warm-up, ``iterations`` timed runs, statistics.

Each run's figure is its mean latency. Printed per model: the median of the per-pair ratios tk ÷ bare
(target <= 1.02 for ResNet-50 and BERT) with the smallest and largest pair, the median mean latency
of each side (ms), the 1-minute load average, and each side's run-to-run coefficient of variation
(population std ÷ mean of the per-run means). Models are built from code (random weights), nothing
is downloaded.

Usage::

    python benchmarks/ort_harness_overhead.py [--models tiny,resnet50,bert] [--pairs 7] [--warmup 1]
        [--iterations 50] [--threads 1] [--exporter torchscript]

Both sides run with 1 intra-op thread unless ``--threads`` says otherwise: on a shared machine a run
that needs every core at once is stalled by any other load (with ORT's default of one thread per
core, 2 here, the per-run means varied by 25-45% under a load of 3).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairs import format_load, interleaved_pairs, print_pairs  # noqa: E402

TARGETS = {"resnet50": 1.02, "bert": 1.02}  # tk ÷ bare, median of pairs


def make_model(name: str):
    """Return ``(model, args, kwargs)`` for ``tiny``, ``resnet50`` or ``bert``."""
    import torch

    torch.manual_seed(0)
    if name == "tiny":
        return torch.nn.Linear(16, 8).eval(), (torch.randn(1, 16),), {}
    if name == "resnet50":
        import torchvision

        return torchvision.models.resnet50(weights=None).eval(), (torch.randn(1, 3, 224, 224),), {}
    if name == "bert":
        from transformers import BertConfig, BertModel

        model = BertModel(BertConfig()).eval()  # BERT-base: 12 layers, hidden 768, 12 heads
        ids = torch.randint(1, 30000, (1, 128))
        return model, (), {"input_ids": ids, "attention_mask": torch.ones(1, 128, dtype=torch.long)}
    raise SystemExit(f"unknown model {name!r}: use tiny, resnet50, bert")


def bare_mean_ms(onnx_path: str, feed: dict, iterations: int, threads: int | None) -> float:
    """Mean latency (ms) of a plain session.run loop with tk's session options."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    so.intra_op_num_threads = threads or 0
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feed = {n: feed[n] for n in names}
    for _ in range(10):
        sess.run(None, feed)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.fmean(times) * 1e3


def cv(values: list[float]) -> float:
    """Coefficient of variation: population std / mean."""
    return statistics.pstdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,resnet50,bert")
    parser.add_argument("--pairs", "--repeats", type=int, default=7, help="timed interleaved pairs per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed pairs first")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of both sides (default 1: on a shared machine a run that needs "
                             "every core at once is stalled by any other load; 0: ORT's default)")
    parser.add_argument("--exporter", default="torchscript", help="auto, dynamo or torchscript (faster to build)")
    opts = parser.parse_args(argv)
    opts.threads = opts.threads or None  # 0 -> None: ORT's default (one thread per core)

    from turnkey_like.build import BuildOptions, build_invocation
    from turnkey_like.calls import flatten_inputs
    from turnkey_like.records import Status
    from turnkey_like.runtimes import BenchmarkOptions, benchmark_invocation

    print(f"ORT harness overhead: tk ÷ bare, median of {opts.pairs} interleaved pairs per model "
          f"(A = bare session.run loop, B = tk), {opts.iterations} iterations per run, "
          f"threads={opts.threads or 'ORT default'}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tk_harness_") as tmp:
        for name in opts.models.split(","):
            model, args, kwargs = make_model(name)
            build_dir = Path(tmp) / name
            t0 = time.perf_counter()
            build = build_invocation(model, args, kwargs, build_dir, BuildOptions(exporter=opts.exporter))
            if build.status is not Status.SUCCESSFUL:
                print(f"{name}: build failed: {build.error}")
                continue
            print(f"{name}: built in {time.perf_counter() - t0:.1f} s ({build.result.exporter})", flush=True)
            feed = flatten_inputs(model, args, kwargs).feed()
            bench_opts = BenchmarkOptions(iterations=opts.iterations, threads=opts.threads)

            def bare() -> float:
                return bare_mean_ms(build.result.onnx_path, feed, opts.iterations, opts.threads) / 1e3

            def tk() -> float:
                stage = benchmark_invocation(model, args, kwargs, build.result, build_dir, bench_opts)
                if stage.status is not Status.SUCCESSFUL:
                    raise SystemExit(f"{name}: tk benchmark failed: {stage.error}")
                return stage.result.latency_ms.mean / 1e3

            stats = interleaved_pairs(bare, tk, pairs=opts.pairs, warmup=opts.warmup)
            print_pairs(f"  {name}: tk ÷ bare (mean latency per run)", stats, unit="ms", scale=1e3)
            rows.append((name, stats))

    print()
    print(f"{'model':<10} {'tk ms':>9} {'bare ms':>9} {'tk÷bare':>8} {'min pair':>9} {'max pair':>9} "
          f"{'CV tk':>7} {'CV bare':>8}  target")
    for name, stats in rows:
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target:.2f} {'OK' if stats.ratio <= target else 'MISS'}"
        print(f"{name:<10} {stats.b_median * 1e3:>9.4g} {stats.a_median * 1e3:>9.4g} {stats.ratio:>8.3f} "
              f"{min(stats.ratios):>9.3f} {max(stats.ratios):>9.3f} {cv(stats.b):>7.1%} {cv(stats.a):>8.1%}  "
              f"{verdict}")
        print(f"{'':<10} {format_load(stats)}")
    print("(tk ms and bare ms: medians of the per-run mean latencies; tk÷bare: median of the per-pair ratios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
