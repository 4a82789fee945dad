"""What the documented worker settings buy on a Dask cluster started by hand (``docs/corpus.md``).

tk runs on workers started with no options (``dask worker ADDRESS``: daemonic processes under a nanny,
a thread per core, nothing preloaded). Two settings remain documented as speed-ups; this measures each
against stock workers, in interleaved pairs (``benchmarks/pairs.py``):

- ``daemon``: ``DASK_DISTRIBUTED__WORKER__DAEMON=False`` in the workers' environment;
- ``preload``: ``dask worker ADDRESS --preload turnkey_like.corpus`` (each worker imports torch and
  torch._dynamo as it starts, instead of in its first task).

Each run starts a fresh ``dask scheduler`` and 2 ``dask worker`` processes on this machine (the
``dask_cluster`` of ``tests/test_corpus.py``), waits until both have joined (the *start*), then times
``tk benchmark SCRIPTS --analyze-only --hardware a100 --scheduler ADDRESS`` twice, each on a fresh
cache: the *first* run after the start (where a worker without the preload imports torch) and a
*second* run (warm workers). ``--hardware a100`` (a datasheet profile) keeps the measurement of this
machine's peaks, the same in A and B, out of the figures. Printed for each: B ÷ A (setting ÷ stock)
of the start, the first run, start + first run, and the second run.

    python benchmarks/stock_workers.py [--pairs 3] [--scripts 4] [--settings daemon preload]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(REPO))

from pairs import PairStats, interleaved_pairs, print_pairs, run_timed  # noqa: E402

from tests.test_corpus import dask_cluster  # noqa: E402

EXAMPLES = REPO / "examples" / "scripts"
SCRIPTS = ["hello_world.py", "two_models.py", "multiple_invocations.py", "max_depth.py"]
SETTINGS = {
    "daemon": {"worker_env": lambda i: {"DASK_DISTRIBUTED__WORKER__DAEMON": "False"}},
    "preload": {"worker_args": ("--preload", "turnkey_like.corpus")},
}
FIGURES = ("start", "first run", "start + first run", "second run")


def one_run(folder: Path, scripts: list[str], setting: dict) -> dict[str, float]:
    """Start a cluster (stock, or with ``setting``), run tk on it twice; the seconds of each figure."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        with dask_cluster(tmp, **setting) as address:
            started = time.perf_counter() - start
            runs = [run_timed([sys.executable, "-m", "turnkey_like", "benchmark", *scripts, "--analyze-only",
                               "--scheduler", address, "--hardware", "a100", "--cache-dir", str(tmp / f"cache{i}"), "-q"],
                              cwd=REPO, timeout=1800).wall_s for i in range(2)]
    return {"start": started, "first run": runs[0], "start + first run": started + runs[0], "second run": runs[1]}


def compare(name: str, folder: Path, scripts: list[str], pairs: int) -> None:
    """Interleaved pairs of stock workers (A) and workers with setting ``name`` (B); print each figure."""
    figures: dict[str, tuple[list[float], list[float]]] = {figure: ([], []) for figure in FIGURES}

    def run(which: int, setting: dict):
        def measure() -> float:
            result = one_run(folder, scripts, setting)
            for figure, seconds in result.items():
                figures[figure][which].append(seconds)
            return result["start + first run"]
        return measure

    stats = interleaved_pairs(run(0, {}), run(1, SETTINGS[name]), pairs=pairs, warmup=0)
    for figure in FIGURES:
        a, b = figures[figure]
        print_pairs(f"{name}: {figure}, with it ÷ stock", PairStats(
            a=a, b=b, a_first=stats.a_first, load_before=stats.load_before, load_after=stats.load_after,
            loads=stats.loads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--scripts", type=int, default=4, help="tutorial scripts per tk run (cycled)")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=sorted(SETTINGS))
    args = parser.parse_args()
    scripts = [str(EXAMPLES / SCRIPTS[i % len(SCRIPTS)]) for i in range(args.scripts)]
    with tempfile.TemporaryDirectory() as folder:
        for name in args.settings:
            compare(name, Path(folder), scripts, args.pairs)


if __name__ == "__main__":
    main()
