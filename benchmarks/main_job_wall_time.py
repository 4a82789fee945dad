"""Wall time of the main job, `tk benchmark examples/scripts/*.py`, cold and warm.

Cold: an empty cache, so every invocation is characterized, exported to ONNX and benchmarked.
Warm: the same command again on that cache. Characterizations and ONNX builds are reused (no export
runs), and only the scripts and the benchmarks run again. Prints both times and how many builds the
warm run reused.

    python benchmarks/main_job_wall_time.py [--iterations 100]
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cache: str, iterations: int) -> tuple[float, str]:
    scripts = sorted(glob.glob(str(ROOT / "examples" / "scripts" / "*.py")))
    cmd = [sys.executable, "-m", "turnkey_like", "benchmark", *scripts, "--iterations", str(iterations)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TK_CACHE_DIR=cache))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"tk failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cold, _ = run(cache, args.iterations)
        warm, out = run(cache, args.iterations)
    reused = out.count("(reused)")
    summary = next((ln for ln in out.splitlines() if "input(s)" in ln), "")
    print(f"cold: {cold:.1f} s   warm: {warm:.1f} s   ({reused} builds reused on the warm run, no export)")
    print(f"last line of the warm run: {summary.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
