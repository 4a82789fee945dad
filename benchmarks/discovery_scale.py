"""Does discovery cost grow linearly with the number of distinct calls a script makes, and stay under 2x?

A script calls one small model (``nn.Linear(8, 4)``) with N distinct input shapes (batch 1..N), so
discovery records N invocations. For each N, interleaved pairs (``benchmarks/pairs.py``) of the plain
run ``python script.py N`` (A) and ``tk benchmark script.py::HASH --analyze-only`` (B), where HASH
selects the first invocation only (so nothing heavy runs after discovery: one tiny characterization).
Printed per N: both medians and the median per-pair ratio tk ÷ python in wall time (the target's
measure), then the same pairs in CPU time (user + system of each command and what it waited for),
which other work on a shared machine disturbs far less, with the load average.

Target (the reliability issue): 10,000 distinct shapes in under 2x the plain script's time, and a
curve that grows like the plain script's (linear), not faster. Before invocations were streamed one
by one, each new invocation re-sent the whole record: 1,000 shapes took 12 s, 2,000 54 s, 4,000
328 s, 10,000 gave no output in 600 s.

``--threads N`` sets ``OMP_NUM_THREADS`` for both sides (default: torch's own choice, one thread per
core): on a loaded 2-core machine, torch's two threads wait on each other whenever another process
takes a core, which makes the plain script's own time swing several-fold from one run to the next.
``--baseline DIR`` also times another copy of tk (a folder holding a ``turnkey_like`` package, e.g. a
commit unpacked with ``git archive``) against this one, as interleaved pairs too (A: that copy, B:
this one).

    python benchmarks/discovery_scale.py [--sizes 1000,2000,5000,10000] [--pairs 3] [--threads N]
        [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pairs import PairStats, format_load, interleaved_pairs, print_pairs, run_timed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = '''import sys
import torch

n = int(sys.argv[1])
model = torch.nn.Linear(8, 4)
with torch.no_grad():
    for i in range(1, n + 1):
        model(torch.zeros(i, 8))
'''


def first_invocation_hash() -> str:
    """The invocation hash of the script's first call (``Linear(8, 4)`` on ``[1, 8]`` float32)."""
    import torch

    from turnkey_like.hashing import describe_inputs, invocation_hash, model_hash

    model = torch.nn.Linear(8, 4)
    return invocation_hash(model_hash(model), None, describe_inputs((torch.zeros(1, 8),), {}))[0]


class Timed:
    """One side of the pairs: runs its command, returns the wall seconds and keeps the CPU seconds."""

    def __init__(self, cmd: list[str], env: dict, cwd: str, check=None):
        self.cmd, self.env, self.cwd, self.check = cmd, env, cwd, check
        self.cpu: list[float] = []

    def __call__(self) -> float:
        run = run_timed(self.cmd, env=self.env, cwd=self.cwd, timeout=1200)
        if self.check is not None:
            self.check(run.stdout)
        self.cpu.append(run.cpu_s)
        return run.wall_s


def cpu_line(label: str, stats: PairStats, a: Timed, b: Timed, warmup: int = 1) -> str:
    """The pairs of ``stats`` read in CPU seconds (the warm-up runs left out)."""
    a_cpu, b_cpu = a.cpu[warmup:], b.cpu[warmup:]
    ratios = [y / x for x, y in zip(a_cpu, b_cpu) if x > 0]
    return (f"{label}: CPU ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) · "
            f"A {statistics.median(a_cpu):.3f} s, B {statistics.median(b_cpu):.3f} s CPU (medians) · "
            f"{format_load(stats)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both sides")
    parser.add_argument("--baseline", default=None, help="a folder holding another copy of turnkey_like")
    args = parser.parse_args()
    selector = first_invocation_hash()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "many_shapes.py"
        script.write_text(SCRIPT)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        # run from the temporary folder, so that PYTHONPATH (not the working folder) picks the copy of tk
        this = {**env, "PYTHONPATH": str(ROOT)}
        print(f"python {sys.version.split()[0]}, OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'unset')}", flush=True)
        for n in (int(v) for v in args.sizes.split(",")):
            def tk(copy_env: dict, cache: str) -> Timed:
                def check(stdout: str) -> None:
                    if f"{n} invocation(s)" not in stdout:
                        raise SystemExit(f"tk did not record {n} invocations:\n{stdout[-2000:]}")

                return Timed([sys.executable, "-m", "turnkey_like", "benchmark", f"{script}::{selector}",
                              "--script-args", str(n), "--analyze-only", "--hardware", "a100",
                              "--cache-dir", str(Path(tmp) / cache), "-q"], copy_env, tmp, check)

            plain = Timed([sys.executable, str(script), str(n)], env, tmp)
            ours = tk(this, "cache")
            stats = interleaved_pairs(plain, ours, pairs=args.pairs)
            print_pairs(f"{n:>6} distinct shapes: tk / python", stats)
            print(cpu_line(f"{n:>6} distinct shapes: tk / python", stats, plain, ours), flush=True)
            if args.baseline:
                before = tk({**env, "PYTHONPATH": str(Path(args.baseline).resolve())}, "cache_baseline")
                ours = tk(this, "cache")
                stats = interleaved_pairs(before, ours, pairs=args.pairs)
                print_pairs(f"{n:>6} distinct shapes: this tk / baseline tk", stats)
                print(cpu_line(f"{n:>6} distinct shapes: this tk / baseline tk", stats, before, ours), flush=True)


if __name__ == "__main__":
    main()
