"""How much does running a script under `tk` cost compared with `python script.py`?

For each example script (examples/scripts/): a cold ``tk benchmark SCRIPT --analyze-only`` first
(it characterizes and fills a fresh cache; its wall time is printed, not compared), then interleaved
pairs (``benchmarks/pairs.py``) of the plain run ``python SCRIPT`` (A) and the warm
``tk benchmark SCRIPT --analyze-only`` (B, the characterization reused from the cache, as a user's
reruns do). The figure is the median of the per-pair ratios tk ÷ python, printed with the smallest
and largest pair and the 1-minute load average. Target (issue 2, issue 9): ≤ 1.10 on the ResNet-50,
BERT and YOLOv8n scripts.

Then the per-call cost of the discovery hook: a model with thousands of nested module calls runs its
forward in this process, plainly (``runpy``) and under the hook (``discovery.discover``), as
interleaved pairs; each run reports the best of 15 forwards in CPU time of the calling thread (1 torch
thread), which the machine's load disturbs far less than wall time. (hooked − plain) ÷ calls, median over the
pairs, is the µs the hook adds per nested module call (target ≤ 2 µs).

Each pair is also read in CPU time (user + system seconds of the child), which the machine's load
disturbs far less than wall time; the target is on wall time.

``--breakdown`` then times the phases of instrumented runs, as interleaved pairs: interpreter start,
``import torch``, tk's work before the script, the script (and the garbage collector's passes in it),
tk's work after it, interpreter exit (medians per side and of the per-pair differences). ``--profile`` lists tk's costliest functions in
one warm run under ``cProfile`` (profiler overhead included: read them as shares).

    python benchmarks/discovery_overhead.py [--pairs 7] [--scripts resnet50,bert,yolov8n] [--breakdown]
        [--profile]

To measure another copy of tk (e.g. a commit unpacked elsewhere), put it first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairs import PairStats, format_load, interleaved_pairs, print_pairs, run_command, run_timed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "scripts"
TARGETED = ("resnet50", "bert", "yolov8n")
SCRIPT_TARGET = 1.10
CALL_TARGET_US = 2.0

CALLS_SCRIPT = '''
import time, torch
torch.set_num_threads(1)
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1, 1)
    def forward(self, x):
        return self.fc(x)
model = torch.nn.Sequential(*[Tiny() for _ in range({blocks})])  # {blocks} blocks = {calls} module calls
x = torch.rand(1, 1)
with torch.no_grad():
    model(x)
    best = float("inf")
    for _ in range(15):
        start = time.thread_time()
        model(x)
        best = min(best, time.thread_time() - start)
import sys
sys.modules["discovery_overhead_probe"].record(best)
'''


def _tk(script: str, *extra: str) -> list[str]:
    return [sys.executable, *extra, "-m", "turnkey_like", "benchmark", script, "--analyze-only"]


def _check_reused(script: str, env: dict) -> None:
    """Raise RuntimeError unless a tk run of ``script`` reuses its cached characterization (it would
    not measure what a rerun costs)."""
    run = run_timed(_tk(script), cwd=EXAMPLES, env=env)
    if "reused" not in run.stdout:
        raise RuntimeError(f"the warm tk run of {script} did not reuse its characterization:\n{run.stdout[-1500:]}")


def script_pairs(name: str, pairs: int, warmup: int) -> tuple[float, PairStats, PairStats]:
    """Cold tk run, then ``pairs`` interleaved pairs (python, warm tk) of ``examples/scripts/NAME.py``.

    Returns:
        ``(cold tk seconds, wall-time PairStats, CPU-time PairStats)``, A = python, B = warm tk; both
        PairStats come from the same runs (CPU: user + system seconds of the child).

    Raises:
        RuntimeError: a run failed, or the warm tk run did not reuse the cached characterization.
    """
    script = f"{name}.py"
    cpu: dict[str, list[float]] = {"a": [], "b": []}

    def measured(side: str, cmd: list[str], env: dict):
        def one() -> float:
            run = run_timed(cmd, cwd=EXAMPLES, env=env)
            cpu[side].append(run.cpu_s)
            return run.wall_s
        return one

    with tempfile.TemporaryDirectory(prefix="tk_discovery_") as cache:
        env = dict(os.environ, TK_CACHE_DIR=cache)
        cold = run_command(_tk(script), cwd=EXAMPLES, env=env)
        _check_reused(script, env)
        wall = interleaved_pairs(measured("a", [sys.executable, script], env), measured("b", _tk(script), env),
                                 pairs=pairs, warmup=warmup)
    n = len(wall.a)  # the warm-up runs come first in the CPU lists
    return cold, wall, dataclasses.replace(wall, a=cpu["a"][-n:], b=cpu["b"][-n:])


_last_best = 0.0


def _record_best(value: float) -> None:  # called by the script under the hook (see CALLS_SCRIPT)
    global _last_best
    _last_best = value


def _install_probe() -> None:
    import types

    probe = types.ModuleType("discovery_overhead_probe")
    probe.record = _record_best
    sys.modules["discovery_overhead_probe"] = probe


def per_call_pairs(blocks: int, pairs: int) -> tuple[int, PairStats]:
    """The same forward in this process, plainly (A) and under the discovery hook (B), as pairs.

    Each run returns the best of 15 forwards, in CPU seconds of the calling thread
    (``time.thread_time``: torch runs on 1 thread here, and CPU time is far less disturbed than wall
    time by other processes on a shared machine). Returns ``(module calls per forward, PairStats)``:
    ``stats.difference / calls`` is the seconds the hook adds per nested module call.
    """
    import runpy

    from turnkey_like.discovery import discover
    from turnkey_like.inputs import InputSpec

    _install_probe()
    calls = 2 * blocks + 1  # each Tiny and its Linear, plus the Sequential
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "many_calls.py"
        script.write_text(CALLS_SCRIPT.format(blocks=blocks, calls=calls))

        def plain() -> float:
            runpy.run_path(str(script))
            return _last_best

        def hooked() -> float:
            result = discover(InputSpec(path=script))
            if result.result.error:
                raise RuntimeError(result.result.error)
            return _last_best

        stats = interleaved_pairs(plain, hooked, pairs=pairs, warmup=1)
    return calls, stats


PHASES_SCRIPT = r'''
import gc, json, runpy, sys, time
marks = {"start": time.perf_counter(), "script_gc": 0.0, "script_full_gc": 0.0, "script_full_gc_n": 0}
import torch  # first in both, so that "before/after the script" are tk's own work
marks["torch"] = time.perf_counter()
in_script, gc_start = False, [0.0]
def gc_timer(phase, info):  # wall time of the collector's passes while the script runs
    if not in_script:
        return
    if phase == "start":
        gc_start[0] = time.perf_counter()
        return
    spent = time.perf_counter() - gc_start[0]
    marks["script_gc"] += spent
    if info["generation"] == 2:
        marks["script_full_gc"] += spent
        marks["script_full_gc_n"] += 1
gc.callbacks.append(gc_timer)
run_path = runpy.run_path
def timed_run_path(*args, **kwargs):  # tk's discovery runs the script with runpy.run_path too
    global in_script
    marks["script_start"] = time.perf_counter()
    in_script = True
    try:
        return run_path(*args, **kwargs)
    finally:
        in_script = False
        marks["script_end"] = time.perf_counter()
runpy.run_path = timed_run_path
mode, script, out = sys.argv[1:4]
code = 0
try:
    if mode == "tk":
        sys.argv = ["tk", "benchmark", script, "--analyze-only"]
        runpy.run_module("turnkey_like", run_name="__main__", alter_sys=True)
    else:
        sys.argv = [script]
        runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    code = e.code
marks["end"] = time.perf_counter()
with open(out, "w") as f:
    json.dump(marks, f)
sys.exit(code)
'''

PHASES = ("interpreter start", "import torch", "before the script", "the script", "  its GC passes",
          "  its full GC passes", "after the script", "interpreter exit", "total")


def phase_pairs(name: str, pairs: int) -> tuple[list[dict], list[dict]]:
    """Interleaved pairs of instrumented plain and warm tk runs of ``NAME.py``: seconds per phase.

    A wrapper process imports torch, then runs the script (plain) or ``tk benchmark --analyze-only``
    (tk) with ``runpy.run_path`` timed. ``time.perf_counter`` is CLOCK_MONOTONIC, one clock for this
    process and its children, so the phases are: interpreter start (launch to the wrapper's first
    line), import torch, before the script (tk: CLI imports, argument parsing, pipeline and hook
    setup), the script, after the script (tk: characterization reuse, records written, rendering)
    and interpreter exit (the wrapper's last line to the child reaped).

    Returns:
        ``(plain runs, tk runs)``: one dict of :data:`PHASES` seconds per run, pair ``i`` at index ``i``.
    """
    script = f"{name}.py"
    runs: dict[str, list[dict]] = {"plain": [], "tk": []}
    with tempfile.TemporaryDirectory(prefix="tk_phases_") as tmp:
        env = dict(os.environ, TK_CACHE_DIR=str(Path(tmp) / "cache"))
        wrapper = Path(tmp) / "phases.py"
        wrapper.write_text(PHASES_SCRIPT)
        out = Path(tmp) / "marks.json"
        run_command(_tk(script), cwd=EXAMPLES, env=env)  # cold: fill the cache
        _check_reused(script, env)

        def one(mode: str, record: bool = True) -> None:
            launched = time.perf_counter()
            run_command([sys.executable, str(wrapper), mode, script, str(out)], cwd=EXAMPLES, env=env)
            reaped = time.perf_counter()
            m = json.loads(out.read_text())
            phases = dict(zip(PHASES, (m["start"] - launched, m["torch"] - m["start"],
                                       m["script_start"] - m["torch"], m["script_end"] - m["script_start"],
                                       m["script_gc"], m["script_full_gc"],
                                       m["end"] - m["script_end"], reaped - m["end"], reaped - launched)))
            phases["full GC passes in the script"] = m["script_full_gc_n"]
            if record:
                runs[mode].append(phases)

        one("plain", False), one("tk", False)  # warm-up pair
        for i in range(pairs):
            for mode in (("plain", "tk") if i % 2 == 0 else ("tk", "plain")):
                one(mode)
    return runs["plain"], runs["tk"]


def print_phases(name: str, plain: list[dict], tk: list[dict]) -> None:
    """Median seconds per phase of each side, and the median per-pair difference tk − plain."""
    print(f"\n{name}: where a warm tk run's time goes, {len(plain)} interleaved pairs (wall s, medians)")
    print(f"  {'phase':<20}{'python':>9}{'tk':>9}{'tk − python':>13}{'min':>8}{'max':>8}")
    for phase in PHASES:
        diffs = [t[phase] - p[phase] for p, t in zip(plain, tk)]
        print(f"  {phase:<20}{statistics.median(r[phase] for r in plain):>9.3f}"
              f"{statistics.median(r[phase] for r in tk):>9.3f}{statistics.median(diffs):>+13.3f}"
              f"{min(diffs):>+8.3f}{max(diffs):>+8.3f}")
    counts = "full GC passes in the script"
    print(f"  {counts}: python {statistics.median(r[counts] for r in plain):g}, "
          f"tk {statistics.median(r[counts] for r in tk):g} (medians)")


def profile(name: str, top: int = 16) -> None:
    """Profile one warm tk run of ``NAME.py`` (cProfile) and print tk's costliest functions.

    Cumulative seconds, profiler overhead included: read them as shares, not exact times.
    """
    import pstats

    script = f"{name}.py"
    with tempfile.TemporaryDirectory(prefix="tk_profile_") as tmp:
        env = dict(os.environ, TK_CACHE_DIR=str(Path(tmp) / "cache"))
        run_command(_tk(script), cwd=EXAMPLES, env=env)  # cold: fill the cache
        prof = str(Path(tmp) / "tk.prof")
        run_command(_tk(script, "-m", "cProfile", "-o", prof), cwd=EXAMPLES, env=env)
        entries = pstats.Stats(prof).stats  # (file, line, function) -> (cc, nc, tottime, cumtime, callers)

    def cum(match) -> float:
        return max((v[3] for k, v in entries.items() if match(k)), default=0.0)

    total = cum(lambda k: k[0].endswith(os.path.join("turnkey_like", "__main__.py")) and k[2] == "<module>")
    in_script = cum(lambda k: k[0].endswith(script) and k[2] == "<module>")
    torch_import = cum(lambda k: k[0].endswith(os.path.join("torch", "__init__.py")) and k[2] == "<module>")
    print(f"\n{name}: one warm tk run under cProfile: {total:.2f} s in all; the script {in_script:.2f} s, "
          f"import torch {torch_import:.2f} s, the rest (tk's own) {total - in_script - torch_import:.2f} s")
    tk_dir = os.sep + "turnkey_like" + os.sep  # wherever it was imported from (PYTHONPATH may point elsewhere)
    skip = ("<module>", "entry_point", "main", "run_benchmark", "_run", "run", "run_input", "discover",
            "hooked_call", "call")  # the chain that encloses the script
    own = sorted(((v[3], k) for k, v in entries.items() if tk_dir in k[0] and k[2] not in skip), reverse=True)
    print(f"  top {top} turnkey_like functions by cumulative time (outside the chain that runs the script; "
          f"nested ones include each other):")
    for seconds, (file, line, func) in own[:top]:
        print(f"    {seconds:7.3f} s  {file[file.rfind(tk_dir) + 1:]}:{line} {func}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", "--repeats", type=int, default=7, help="timed interleaved pairs per script")
    parser.add_argument("--warmup", type=int, default=1, help="untimed pairs first")
    parser.add_argument("--scripts", default=",".join(TARGETED),
                        help="example scripts (names in examples/scripts/), comma-separated")
    parser.add_argument("--blocks", type=int, default=2000, help="blocks of the hook-cost model")
    parser.add_argument("--call-pairs", type=int, default=9, help="interleaved pairs for the hook cost")
    parser.add_argument("--breakdown", action="store_true",
                        help="time the phases of instrumented plain and tk runs, as interleaved pairs")
    parser.add_argument("--profile", action="store_true", help="cProfile one warm tk run per script")
    args = parser.parse_args()
    names = [n for n in args.scripts.split(",") if n]

    print(f"tk benchmark --analyze-only (warm cache) ÷ python SCRIPT: median of {args.pairs} interleaved "
          f"pairs each (A = python, B = tk); wall time is the target figure, CPU time (user + system of "
          f"the child) the same runs seen through the load", flush=True)
    ok = True
    for name in names:
        cold, wall, cpu = script_pairs(name, args.pairs, args.warmup)
        target = name in TARGETED
        verdict = ("OK" if wall.ratio <= SCRIPT_TARGET else "MISS") if target else ""
        ok &= verdict != "MISS"
        print_pairs(f"  {name}: tk ÷ python, wall", wall)
        print_pairs(f"  {name}: tk ÷ python, CPU ", cpu)
        print(f"    cold tk run (characterizes): {cold:.2f} s · warm tk − python: median "
              f"{wall.difference:+.2f} s wall, {cpu.difference:+.2f} s CPU per pair"
              + (f" · target ≤ {SCRIPT_TARGET:.2f} (wall) {verdict}" if target else ""), flush=True)

    calls, stats = per_call_pairs(args.blocks, args.call_pairs)
    per_call = [d / calls * 1e6 for d in stats.differences]
    median_us = stats.difference / calls * 1e6
    verdict = "OK" if median_us <= CALL_TARGET_US else "MISS"
    ok &= verdict == "OK"
    print()
    print_pairs(f"hook cost, {calls} module calls per forward (best of 15, thread CPU time): hooked ÷ plain",
                stats, unit="ms", scale=1e3)
    print(f"  µs added per nested module call: median {median_us:.3f} (min {min(per_call):.3f}, "
          f"max {max(per_call):.3f}) over {len(per_call)} pairs · {format_load(stats)} · "
          f"target ≤ {CALL_TARGET_US:g} µs {verdict}", flush=True)

    for name in names if args.breakdown else ():
        print_phases(name, *phase_pairs(name, args.pairs))
    for name in names if args.profile else ():
        profile(name)
    print("summary:", "all targets met" if ok else "some targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
