"""What a busy machine does to tk's figures, and whether tk says so.

Interleaved pairs (``benchmarks/pairs.py``: A then B, B then A, ...) of the same measurement made
as the machine is (A) and with spinning processes added (B: ``--busy N`` Python ``while True: pass``
loops, default one per core):

- **local profile**: ``measure_local(budget_s, threads=1)``, the roof the roofline is drawn under:
  fp32 matmul GFLOP/s, copy GB/s, their ridge point, the other processes' cores, the busy flag and
  the matmul repeats' IQR ÷ median;
- **benchmark**: ``benchmark_invocation`` of an MLP (4 x Linear(1024, 1024), batch 32) on ONNX
  Runtime with 1 thread: median latency, IQR, the other processes' cores, the busy flag.

Printed per pair, then per kind the median per-pair ratio busy ÷ as-is (for the latency: how much
slower; for the roof: how much lower), with the load average. What to look for: the B side's
``busy`` column says yes whenever the ratio moved, and the A side says no on a quiet machine (on a
machine other people use, A can be busy too; the column says so).

Usage::

    python benchmarks/busy_machine.py [--pairs 5] [--busy N] [--budget 2] [--iterations 200]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairs import format_load, interleaved_pairs  # noqa: E402


@contextlib.contextmanager
def spinning(n: int):
    """``n`` spinning processes for the duration of the block (killed by pid afterwards)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.3)
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 1, help="spinning processes on the B side")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per local-profile measurement")
    parser.add_argument("--iterations", type=int, default=200, help="timed iterations per benchmark")
    args = parser.parse_args()

    import torch

    from turnkey_like.build import BuildOptions, build_invocation
    from turnkey_like.characterize.hardware import measure_local
    from turnkey_like.runtimes import BenchmarkOptions, benchmark_invocation

    rows: dict[str, list[tuple[str, str]]] = {"roof": [], "benchmark": []}

    def roof(label: str, busy: int):
        def run():
            with spinning(busy) if busy else contextlib.nullcontext():
                p = measure_local(args.budget, threads=1)
            rows["roof"].append((label, f"{p.peak_flops['float32'] / 1e9:7.1f} GFLOP/s  "
                                        f"{p.memory_bandwidth / 1e9:6.2f} GB/s  ridge {p.ridge_point():5.2f}  "
                                        f"others {p.load.other_cores:4.2f} cores  busy {_yes(p.load.busy):3}  "
                                        f"matmul IQR/median {p.flops_spread.rel_iqr:.0%}"))
            return 1.0 / p.peak_flops["float32"]  # time per FLOP: the ratio says how much lower the roof is
        return run

    torch.manual_seed(0)
    layers = [m for _ in range(4) for m in (torch.nn.Linear(1024, 1024), torch.nn.ReLU())]
    model = torch.nn.Sequential(*layers).eval()
    x = torch.randn(32, 1024)
    folder = Path(tempfile.mkdtemp(prefix="tk_busy_"))
    build = build_invocation(model, (x,), {}, folder, BuildOptions(exporter="torchscript")).result

    def bench(label: str, busy: int):
        def run():
            with spinning(busy) if busy else contextlib.nullcontext():
                r = benchmark_invocation(model, (x,), {}, build, folder,
                                         BenchmarkOptions(iterations=args.iterations, threads=1)).result
            rows["benchmark"].append((label, f"median {r.latency_ms.median:7.3f} ms  IQR {r.latency_ms.iqr:6.3f} ms  "
                                             f"others {r.load.other_cores:4.2f} cores  busy {_yes(r.load.busy):3}"))
            return r.latency_ms.median
        return run

    for kind, make in (("roof", roof), ("benchmark", bench)):
        stats = interleaved_pairs(make("as is", 0), make(f"+{args.busy} busy", args.busy), pairs=args.pairs)
        print(f"\n{kind}: {args.pairs} pairs, {format_load(stats)}")
        for label, text in rows[kind][2:]:  # the first pair was the warm-up
            print(f"  {label:>9}: {text}")
        what = "roof lower by" if kind == "roof" else "latency longer by"
        print(f"  busy ÷ as is, median of pairs: {stats.ratio:.2f}x ({what}; pairs "
              f"{min(stats.ratios):.2f}-{max(stats.ratios):.2f}x)")


if __name__ == "__main__":
    main()
