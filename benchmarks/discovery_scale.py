"""Does discovery cost grow linearly with the number of distinct calls a script makes?

A script calls one small model (``nn.Linear(8, 4)``) with N distinct input shapes (batch 1..N), so
discovery records N invocations. For each N, interleaved pairs (``benchmarks/pairs.py``) of the plain
run ``python script.py N`` (A) and ``tk benchmark script.py::HASH --analyze-only`` (B), where HASH
selects the first invocation only (so nothing heavy runs after discovery: one tiny characterization).
Printed per N: both medians and the median per-pair ratio tk ÷ python, with the load average.

Target (the reliability issue): 10,000 distinct shapes in under 2x the plain script's time, and a
curve that grows like the plain script's (linear), not faster. Before invocations were streamed one
by one, each new invocation re-sent the whole record: 1,000 shapes took 12 s, 2,000 54 s, 4,000
328 s, 10,000 gave no output in 600 s.

    python benchmarks/discovery_scale.py [--sizes 1000,2000,5000,10000] [--pairs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pairs import interleaved_pairs, print_pairs  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    selector = first_invocation_hash()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "many_shapes.py"
        script.write_text(SCRIPT)
        cache = Path(tmp) / "cache"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for n in (int(v) for v in args.sizes.split(",")):
            def plain():
                subprocess.run([sys.executable, str(script), str(n)], check=True, env=env,
                               stdout=subprocess.DEVNULL)

            def tk():
                out = subprocess.run([sys.executable, "-m", "turnkey_like", "benchmark", f"{script}::{selector}",
                                      "--script-args", str(n), "--analyze-only", "--hardware", "a100",
                                      "--cache-dir", str(cache), "-q"], env=env, capture_output=True, text=True)
                if out.returncode != 0 or f"{n} invocation(s)" not in out.stdout:
                    raise SystemExit(f"tk failed on {n} shapes ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")

            stats = interleaved_pairs(plain, tk, pairs=args.pairs)
            print_pairs(f"{n:>6} distinct shapes: tk / python", stats)


if __name__ == "__main__":
    main()
