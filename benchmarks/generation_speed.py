"""What ``--generate`` costs on a 70B Llama config: the issue's speed and memory targets.

Issue 23, item 7: "A 70B Llama config on meta with ``--generate 2048:256`` adds at most 3 s and 1 GiB
to the same command with ``--seq-len 2048``, timed back to back. A 32-point sweep on that config (4
batch sizes × 4 prompt lengths × 2 output lengths) finishes under 60 s."

The config: Llama-2-70B's shapes (hidden 8192, 80 layers, 64 heads, 8 key/value heads, intermediate
28672, vocabulary 32000), built on meta (``--no-weights``), roofline on ``h100``. Each run is a whole
``python -m turnkey_like profile`` process with a fresh ``--cache-dir`` (nothing reused), its stdout
read and dropped; wall time (``time.perf_counter`` around it) and peak RSS (``ru_maxrss`` of
``os.wait4``: the largest of tk and the child processes it waited for, in GiB).

1. ``pairs``: ``--seq-len 2048`` (A) and ``--generate 2048:256`` (B), back to back, the order
   alternating (``benchmarks/pairs.py``); per pair and as medians: both times and peak RSS, and the
   per-pair differences B − A (target: at most 3 s and 1 GiB).
2. ``sweep``: one command, ``--generate`` with 8 prompt:output pairs (prompts 128, 512, 1024, 2048 ×
   outputs 128, 256) and ``--batch-size 1,4,16,64``: 32 points; its wall time (target: under 60 s) and
   peak RSS. ``--sweep-points 4`` runs the first 4 points only (batch 1, prompts 128 and 512), for a
   quick look.

Printed with the 1-minute load average (``os.getloadavg``) around each part: on a shared 2-core
machine the times grow with the load, so compare figures taken back to back.

``--repo PATH`` runs another checkout's tk (``git worktree add --detach /tmp/gen-before main`` gives
main's), with this script's interpreter: the figures before a change, measured the same way.

Usage::

    python benchmarks/generation_speed.py [--pairs 3] [--parts pairs,sweep] [--sweep-points 32]
        [--repo PATH] [--timeout 3600]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pairs import cpu_count, interleaved_pairs, load_average  # noqa: E402

ARGS = {"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
        "intermediate_size": 28672, "vocab_size": 32000}
"""Llama-2-70B's shapes (``LlamaConfig`` keyword arguments)."""
PROMPTS = (128, 512, 1024, 2048)
OUTPUTS = (128, 256)
BATCHES = (1, 4, 16, 64)
TARGET_EXTRA_S = 3.0
TARGET_EXTRA_GIB = 1.0
TARGET_SWEEP_S = 60.0
GIB = 1 << 30


def profile_command(*options: str) -> list[str]:
    """``python -m turnkey_like profile`` on the 70B config on meta, roofline on h100, plus ``options``."""
    return [sys.executable, "-m", "turnkey_like", "profile", "--model", "llama", "--model-args", json.dumps(ARGS),
            "--no-weights", "--hardware", "h100", *options]


def run(repo: Path, options: list[str], timeout: float) -> tuple[float, float]:
    """Run :func:`profile_command` with ``options`` in ``repo`` with a fresh cache; ``(wall s, peak RSS GiB)``.

    Raises:
        RuntimeError: tk exited non-zero (with the tail of its stderr).
        subprocess.TimeoutExpired: it ran past ``timeout`` seconds.
    """
    with tempfile.TemporaryDirectory(prefix="tk-genspeed-") as cache, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        env = {**os.environ, "PYTHONPATH": str(repo)}
        start = time.perf_counter()
        proc = subprocess.Popen(profile_command(*options, "--cache-dir", cache), cwd=repo, env=env, stdout=out,
                                stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise subprocess.TimeoutExpired(proc.args, timeout)
            time.sleep(0.02)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"tk {' '.join(options)} failed ({proc.returncode}):\n"
                               f"{err.read().decode(errors='replace')[-3000:]}")
        return wall, usage.ru_maxrss * 1024 / GIB


def pairs_part(repo: Path, pairs: int, timeout: float) -> None:
    """Part 1: ``--seq-len 2048`` against ``--generate 2048:256``, interleaved pairs."""
    rss: dict[str, list[float]] = {"a": [], "b": []}

    def side(name: str, options: list[str]):
        def go() -> float:
            wall, peak = run(repo, options, timeout)
            rss[name].append(peak)
            return wall
        return go

    stats = interleaved_pairs(side("a", ["--seq-len", "2048"]), side("b", ["--generate", "2048:256"]), pairs=pairs,
                              warmup=0)
    print(f"70B Llama config on meta, h100 profile: --seq-len 2048 (A) vs --generate 2048:256 (B), {pairs} pairs, "
          f"load {stats.load_before:.2f}->{stats.load_after:.2f} (max {stats.load_max:.2f}) on {cpu_count()} CPUs")
    print(f"{'pair':>4} {'first':>5} {'A s':>7} {'B s':>7} {'B-A s':>7} {'A GiB':>7} {'B GiB':>7} {'B-A GiB':>8} "
          f"{'load':>5}")
    for i, (a, b) in enumerate(zip(stats.a, stats.b)):
        ra, rb = rss["a"][i], rss["b"][i]
        print(f"{i:>4} {'A' if stats.a_first[i] else 'B':>5} {a:7.2f} {b:7.2f} {b - a:7.2f} {ra:7.2f} {rb:7.2f} "
              f"{rb - ra:8.2f} {stats.loads[i]:5.2f}")
    extra_rss = statistics.median(b - a for a, b in zip(rss["a"], rss["b"]))
    print(f"median: A {stats.a_median:.2f} s, B {stats.b_median:.2f} s, B-A {stats.difference:.2f} s "
          f"(target <= {TARGET_EXTRA_S:g} s: {'met' if stats.difference <= TARGET_EXTRA_S else 'NOT met'}); "
          f"peak RSS A {statistics.median(rss['a']):.2f} GiB, B {statistics.median(rss['b']):.2f} GiB, "
          f"B-A {extra_rss:+.2f} GiB (target <= {TARGET_EXTRA_GIB:g} GiB: "
          f"{'met' if extra_rss <= TARGET_EXTRA_GIB else 'NOT met'})")


def sweep_part(repo: Path, points: int, timeout: float) -> None:
    """Part 2: the 32-point sweep (or its first ``points``) as one command."""
    pairs = [f"{p}:{n}" for p in PROMPTS for n in OUTPUTS]
    batches = list(BATCHES)
    if points < len(pairs) * len(batches):  # batch is the outer axis: the first points are batch 1's
        batches, pairs = batches[:max(1, points // len(pairs))], pairs[:min(points, len(pairs))]
    n = len(pairs) * len(batches)
    before = load_average()
    wall, peak = run(repo, ["--generate", ",".join(pairs), "--batch-size", ",".join(map(str, batches))], timeout)
    after = load_average()
    target = f" (target < {TARGET_SWEEP_S:g} s: {'met' if wall < TARGET_SWEEP_S else 'NOT met'})" if n == 32 else ""
    print(f"sweep: --generate {','.join(pairs)} --batch-size {','.join(map(str, batches))}: {n} points in "
          f"{wall:.1f} s{target}, {wall / n:.2f} s a point, peak RSS {peak:.2f} GiB; "
          f"load {before:.2f}->{after:.2f} on {cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="timed pairs of part 1 (default 3)")
    parser.add_argument("--parts", default="pairs,sweep", help="which parts: pairs, sweep (default both)")
    parser.add_argument("--sweep-points", type=int, default=32, help="points of the sweep (default 32: all)")
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="the checkout whose tk runs (default: this one)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per tk command (default 3600)")
    args = parser.parse_args()
    repo = args.repo.resolve()
    print(f"tk from {repo}")
    parts = args.parts.split(",")
    if "pairs" in parts:
        pairs_part(repo, args.pairs, args.timeout)
    if "sweep" in parts:
        sweep_part(repo, args.sweep_points, args.timeout)


if __name__ == "__main__":
    main()
