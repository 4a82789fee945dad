"""How long does a view of a named model take once the cache holds its characterization?

``tk explore --model NAME`` on a warm cache takes the record from the cache (``pipeline/reuse.py``)
instead of building and running the model again. Interleaved pairs (``benchmarks/pairs.py``) of

- A: the same command run by another copy of tk (``--before PATH``, a checkout's root put first on
  ``PYTHONPATH``: e.g. the commit before the reuse), on its own warm cache; without ``--before``,
  this copy on a fresh, empty cache each time (the model built, run and characterized);
- B: this copy on a warm cache (the record taken from it),

each a whole ``python -m turnkey_like explore --model NAME --hardware a100`` process (interpreter
start included), printed as the per-pair ratio B ÷ A, both medians and the load average. Target
(issue "Measured, in every view"): B under 2 s for ResNet-50.

    python benchmarks/view_reuse.py [--model resnet50] [--pairs 5] [--before /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairs import interleaved_pairs, print_pairs, run_command  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 2.0


def explore(root: Path, cache: Path, model: str) -> float:
    """Wall seconds of one ``tk explore --model MODEL`` run by the tk under ``root`` on ``cache``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return run_command([sys.executable, "-m", "turnkey_like", "explore", "--model", model, "--hardware", "a100",
                        "--cache-dir", str(cache), "-q"], cwd=root, env=env, timeout=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another tk checkout's root to compare with (its warm cache)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tk-view-reuse-") as tmp:
        warm = Path(tmp) / "warm"
        print(f"{args.model}: first run, filling the cache: {explore(ROOT, warm, args.model):.2f} s", flush=True)
        if args.before is not None:
            before_cache = Path(tmp) / "before"
            explore(args.before, before_cache, args.model)
            run_a = lambda: explore(args.before, before_cache, args.model)  # noqa: E731
            label = f"{args.model}: this tk, warm ÷ {args.before}, warm"
        else:
            def run_a() -> float:
                cold = Path(tempfile.mkdtemp(dir=tmp, prefix="cold-"))
                try:
                    return explore(ROOT, cold, args.model)
                finally:
                    shutil.rmtree(cold, ignore_errors=True)
            label = f"{args.model}: warm cache ÷ empty cache"
        stats = interleaved_pairs(run_a, lambda: explore(ROOT, warm, args.model), pairs=args.pairs, warmup=0)
        print_pairs(label, stats)
        print(f"warm: {stats.b_median:.2f} s median (target under {TARGET_S:g} s: "
              f"{'met' if stats.b_median < TARGET_S else 'missed'})")


if __name__ == "__main__":
    main()
