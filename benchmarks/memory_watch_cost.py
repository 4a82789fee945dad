"""What the memory cap's watch costs (``--memory-limit``, ``turnkey_like.launcher.memory``).

Interleaved pairs (``benchmarks/pairs.py``) of A = ``tk benchmark model.py --memory-limit none`` (no
watch) and B = the same with the default cap (a watch thread in tk and one in the input's process,
each reading ``/proc/PID/statm`` every 0.1 s). Two measures per pair: the ORT mean latency of the
model (ms, 300 iterations: does the watch disturb a benchmark that has the host to itself?) and
the wall time of the whole run (s). Target: 1.00 within the pairs' spread.

    python benchmarks/memory_watch_cost.py [--pairs 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pairs import interleaved_pairs, print_pairs, run_timed  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

MODEL = """# labels: name::memory_watch
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))
model(torch.rand(1, 3, 64, 64))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tk_memory_watch_"))
    model = folder / "model.py"
    model.write_text(MODEL)
    runs = iter(range(10**6))
    walls: dict[str, list[float]] = {"none": [], "default": []}

    def run(limit: list[str], key: str):
        def one() -> float:
            cache = folder / f"cache{next(runs)}"
            done = run_timed([sys.executable, "-m", "turnkey_like", "benchmark", str(model), "--iterations",
                                 str(args.iterations), "--cache-dir", str(cache), "-q", *limit],
                                cwd=REPO, timeout=3600)
            walls[key].append(done.wall_s)
            (record,) = cache.glob("model_*/record.json")
            return json.loads(record.read_text())["invocation"]["benchmark"]["result"]["latency_ms"]["mean"]
        return one

    stats = interleaved_pairs(run(["--memory-limit", "none"], "none"), run([], "default"), pairs=args.pairs)
    print_pairs("ORT mean latency, default cap (watched) / --memory-limit none", stats, unit="ms")
    for key, values in walls.items():
        print(f"wall time, {key}: " + ", ".join(f"{v:.1f}" for v in values) + " s")


if __name__ == "__main__":
    main()
