"""Wall time of the main job, `tk benchmark examples/scripts/*.py`, cold once, then warm against `python`.

Cold: an empty cache, so every invocation is characterized, exported to ONNX and benchmarked (timed
once: it takes minutes).

Warm: the same command again on that cache. Characterizations, ONNX builds and benchmarks are all
reused (``--rebenchmark if_needed``: nothing changed), so what is left is running the scripts
themselves (tk must run them to discover their models) and tk's own work around them. Before timing,
one warm run is checked: every benchmark must say ``(reused from cache)``.

The warm run is compared with `python` running the same scripts, as medians of interleaved pairs
(``benchmarks/pairs.py``, the load average printed with them):

1. ``python SCRIPT`` for each script in turn, a fresh interpreter each (how a user runs them);
2. with ``--one-process`` (default on), one interpreter running every script with ``runpy`` (imports
   paid once, as tk's discovery pays them): the stricter baseline.

Target (issue 13): the warm main job within 1.2x of `python` running the same scripts.

    python benchmarks/main_job_wall_time.py [--pairs 5] [--iterations 100] [--cache DIR] [--no-one-process]

``--cache DIR`` uses (and fills, when empty) that cache instead of a temporary one: with a warm
cache the cold run is skipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairs import interleaved_pairs, load_average, print_pairs, run_command  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples" / "scripts").glob("*.py"))

#: one interpreter running every script as ``__main__``, in order (the one-process baseline)
ONE_PROCESS = (
    "import runpy, sys\n"
    "for path in sys.argv[1:]:\n"
    "    sys.argv = [path]\n"
    "    runpy.run_path(path, run_name='__main__')\n"
)


def tk_command(cache: str, iterations: int) -> list[str]:
    return [sys.executable, "-m", "turnkey_like", "benchmark", *SCRIPTS, "--iterations", str(iterations),
            "--cache-dir", cache]


def python_per_script() -> None:
    for script in SCRIPTS:
        run_command([sys.executable, script], cwd=ROOT)


def python_one_process() -> None:
    run_command([sys.executable, "-c", ONE_PROCESS, *SCRIPTS], cwd=ROOT)


def check_warm(cmd: list[str]) -> str:
    """Run the warm job once; fail unless every benchmark and build was reused. Returns a summary line."""
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "250"})
    if proc.returncode != 0:
        raise SystemExit(f"tk failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    lines = proc.stdout.splitlines()
    benchmarks = [ln for ln in lines if ln.strip().startswith("Benchmark:")]
    reused = [ln for ln in benchmarks if "(reused from cache)" in ln]
    builds = [ln for ln in lines if ln.strip().startswith("Build:")]
    builds_reused = [ln for ln in builds if "(reused)" in ln]
    if not benchmarks or len(reused) != len(benchmarks):
        raise SystemExit(f"the warm run measured {len(benchmarks) - len(reused)} of {len(benchmarks)} benchmarks "
                         "again; nothing should change between two runs:\n" + "\n".join(benchmarks))
    return (f"warm run: {len(reused)}/{len(benchmarks)} benchmarks and {len(builds_reused)}/{len(builds)} builds "
            "reused from the cache")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100, help="tk's --iterations (default 100, tk's default)")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved pairs per ratio (default 5)")
    parser.add_argument("--cache", help="cache folder to use (default: a new temporary one)")
    parser.add_argument("--no-one-process", dest="one_process", action="store_false",
                        help="skip the one-interpreter baseline")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or tmp
        cmd = tk_command(cache, args.iterations)
        print(f"{len(SCRIPTS)} scripts: {' '.join(Path(s).name for s in SCRIPTS)}", flush=True)
        if Path(cache).exists() and any(Path(cache).iterdir()):
            print(f"cold: skipped ({cache} is not empty)", flush=True)
        else:
            load = load_average()
            cold = run_command(cmd, cwd=ROOT)
            print(f"cold: {cold:.1f} s (one run, empty cache; load {load:.2f}→{load_average():.2f})", flush=True)
        print(check_warm(cmd), flush=True)

        def warm() -> None:
            run_command(cmd, cwd=ROOT)

        stats = interleaved_pairs(python_per_script, warm, pairs=args.pairs, warmup=1)
        print_pairs("warm main job: tk ÷ `python SCRIPT` per script", stats)
        if args.one_process:
            stats = interleaved_pairs(python_one_process, warm, pairs=args.pairs, warmup=0)
            print_pairs("warm main job: tk ÷ one `python` running every script", stats)
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - start:.0f} s in all)")
    sys.exit(code)
