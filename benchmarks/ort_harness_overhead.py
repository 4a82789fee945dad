"""How much does tk's ONNX Runtime harness add over a bare ``session.run`` loop?

For each model (a tiny linear model, ResNet-50 at 1x3x224x224, BERT-base at sequence length 128),
tk builds the ONNX file once, then, for several repeats in alternating order:

- **tk**: ``benchmark_invocation(..., BenchmarkOptions(runtime="ort"))``: forked child, adaptive
  warm-up, ``iterations`` timed runs, statistics;
- **bare**: what a user would write in this process: an ``InferenceSession`` with the same session
  options (level *all*, sequential, the same intra-op threads), 10 warm-up runs, then the same number
  of ``session.run(None, feed)`` calls timed one by one with ``time.perf_counter``.

Printed per model: mean latency (ms) of each, their ratio tk/bare (mean over repeats of each side;
target <= 1.02 for ResNet-50 and BERT), the median of the per-repeat ratios (each repeat runs both
sides back to back, so on a shared machine a burst of load from elsewhere hits one pair, not the
median), and each side's run-to-run coefficient of variation (std/mean of the per-repeat means,
population std). Models are built from code (random weights),
nothing is downloaded.

Usage::

    python benchmarks/ort_harness_overhead.py [--models tiny,resnet50,bert] [--repeats 5]
        [--iterations 50] [--threads 2] [--exporter torchscript]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--exporter", default="torchscript", help="auto, dynamo or torchscript (faster to build)")
    opts = parser.parse_args(argv)

    from turnkey_like.build import BuildOptions, build_invocation
    from turnkey_like.calls import flatten_inputs
    from turnkey_like.records import Status
    from turnkey_like.runtimes import BenchmarkOptions, benchmark_invocation

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
            tk_means, bare_means = [], []
            for rep in range(opts.repeats):
                order = ("tk", "bare") if rep % 2 == 0 else ("bare", "tk")
                for side in order:
                    if side == "tk":
                        stage = benchmark_invocation(model, args, kwargs, build.result, build_dir, bench_opts)
                        if stage.status is not Status.SUCCESSFUL:
                            raise SystemExit(f"{name}: tk benchmark failed: {stage.error}")
                        tk_means.append(stage.result.latency_ms.mean)
                    else:
                        bare_means.append(bare_mean_ms(build.result.onnx_path, feed, opts.iterations, opts.threads))
                print(f"  repeat {rep + 1}: tk {tk_means[-1]:.3f} ms, bare {bare_means[-1]:.3f} ms", flush=True)
            tk_mean, bare_mean = statistics.fmean(tk_means), statistics.fmean(bare_means)
            paired = statistics.median(t / b for t, b in zip(tk_means, bare_means))
            rows.append((name, tk_mean, bare_mean, tk_mean / bare_mean, paired, cv(tk_means), cv(bare_means)))

    print()
    print(f"ORT harness overhead ({opts.repeats} repeats x {opts.iterations} iterations, "
          f"threads={opts.threads or 'ORT default'})")
    print(f"{'model':<10} {'tk mean ms':>11} {'bare mean ms':>13} {'tk/bare':>8} {'median pair':>12} "
          f"{'CV tk':>7} {'CV bare':>8}")
    for name, tk_mean, bare_mean, ratio, paired, cv_tk, cv_bare in rows:
        print(f"{name:<10} {tk_mean:>11.3f} {bare_mean:>13.3f} {ratio:>8.3f} {paired:>12.3f} "
              f"{cv_tk:>7.1%} {cv_bare:>8.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
