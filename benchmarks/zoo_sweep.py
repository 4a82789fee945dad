"""Figures for `tk discover-models`: how much of a zoo traces, how, what fails, and how long it takes.

Runs the real command once per source, cold (a fresh cache folder unless ``--cache-dir``)::

    tk discover-models --source SOURCE --workers 2 --timeout 120 --json OUT/SOURCE.json -q

then reads the JSON with the records codec and prints, per source: the models surveyed, the counts
per trace method, those that did not trace, failed to build or run, timed out or were killed (and
with ``--export`` the ONNX outcomes), every failure with its reason, the wall time and the load
average (1-minute, sampled every 5 s while the command ran: on a shared machine the wall time means
little without it).

Usage::

    python benchmarks/zoo_sweep.py                                   # torchvision, then transformers
    python benchmarks/zoo_sweep.py --sources torchvision --family resnet
    python benchmarks/zoo_sweep.py --sources transformers --timeout 180 --export

Targets (issue 10, this 2-core machine, ``--workers 2``): the whole torchvision zoo in under 15
minutes, the transformers model types in under 30.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from turnkey_like.records import LADDER, SurveyReport, failure_types  # noqa: E402
from turnkey_like.records import decode  # noqa: E402
from turnkey_like.units import format_seconds  # noqa: E402


class LoadSampler:
    """Samples the 1-minute load average every ``period_s`` seconds in a thread (``os.getloadavg``)."""

    def __init__(self, period_s: float = 5.0):
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period_s,), daemon=True)

    def _run(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def text(self) -> str:
        s = self.samples
        return f"load {s[0]:.1f}→{s[-1]:.1f} (mean {sum(s) / len(s):.1f}, max {max(s):.1f}) on {os.cpu_count()} CPUs"


def sweep(source: str, args, out_dir: Path) -> tuple[SurveyReport, float, str]:
    """Run the command for ``source``; return its report, the wall time (s) and the load text."""
    cache = args.cache_dir or tempfile.mkdtemp(prefix=f"tk-zoo-sweep-{source}-")
    report_path = out_dir / f"{source}.json"
    cmd = [sys.executable, "-m", "turnkey_like", "discover-models", "--source", source, "--workers", str(args.workers),
           "--timeout", str(args.timeout), "--json", str(report_path), "--cache-dir", str(cache), "-q"]
    if args.family:
        cmd += ["--family", args.family]
    if args.export:
        cmd.append("--export")
    if args.refresh:
        cmd.append("--refresh")
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with LoadSampler() as load:
        done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"tk discover-models --source {source} failed ({done.returncode}):\n{done.stderr}")
    return decode(report_path.read_bytes(), SurveyReport, what=str(report_path)), wall, load.text()


def print_figures(report: SurveyReport, wall: float, load: str) -> None:
    """Print the counts per trace method, the failures with their reasons, and the time."""
    c = report.counts
    scope = f" (--family {report.family})" if report.family else ""
    print(f"\n== {report.source}{scope}: {c['surveyed']} of {report.available} models, --workers {report.workers}, "
          f"--timeout {report.timeout_s:g} s: {format_seconds(wall)} wall, {load}")
    print(f"traced: {c['traced']}  (" + ", ".join(f"{m}: {c[m]}" for m in LADDER) + ")")
    print(f"did not trace: {c['not_traced']}  failed to build: {c['build_failed']}  failed to run: {c['run_failed']}  "
          f"timed out: {c['timeout']}  killed: {c['killed']}  skipped: {c['skipped']}  from the cache: {c['cached']}")
    if report.export:
        print(f"ONNX: exported {c.get('exported', 0)}, failed {c.get('export_failed', 0)}, "
              f"skipped {c.get('export_skipped', 0)}")
    per_model = sorted(report.models, key=lambda m: -m.duration_s)[:5]
    print("slowest: " + ", ".join(f"{m.name} {format_seconds(m.duration_s)}" for m in per_model))
    for rung, per in failure_types(report.models).items():
        if per:
            print(f"{rung} failed: " + ", ".join(f"{k} {n}" for k, n in per.items()))
    failures = [m for m in report.models if not m.traced or m.status.value != "successful"]
    if failures:
        print(f"failures ({len(failures)}):")
    for m in failures:
        if m.status.value == "successful":
            last = next((a for a in reversed(m.attempts) if not a.ok), None)
            reason = f"did not trace; {last.method}: {last.error}" if last else "did not trace"
        else:
            reason = (f"{m.status.value}" + (f" ({m.failed_step})" if m.failed_step else "") + f": {m.error}"
                      + (f"; traced by {m.trace_method}" if m.traced else ""))
        print(f"  {m.name}: {reason}")
    if report.export:
        for m in report.models:
            if m.export is not None and m.export.status.value == "error":
                print(f"  ONNX {m.name}: {m.export.error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", nargs="+", default=["torchvision", "transformers"],
                        choices=("torchvision", "transformers", "ultralytics", "timm"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per model (default 120)")
    parser.add_argument("--family", help="only models whose name or family contains this")
    parser.add_argument("--export", action="store_true", help="also export each model to ONNX")
    parser.add_argument("--cache-dir", help="reuse this cache (default: a fresh one, so the run is cold)")
    parser.add_argument("--refresh", action="store_true", help="survey again even when cached")
    parser.add_argument("--out", default=None, help="folder for the JSON reports (default: a temporary one)")
    args = parser.parse_args()
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="tk-zoo-sweep-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    for source in args.sources:
        report, wall, load = sweep(source, args, out_dir)
        print_figures(report, wall, load)
        print(f"(JSON: {out_dir / (source + '.json')})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
