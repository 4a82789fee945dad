"""Time `tk cache list` and `tk report` on a cache of many builds (default 10,000; target: under 2 s each).

Usage::

    python benchmarks/cache_scale.py [--builds 10000] [--script examples/scripts/resnet50.py]
                                     [--template RECORD_JSON] [--keep DIR [--reuse]] [--target-s 2.0]

The records are real: ``tk benchmark SCRIPT --iterations 5`` runs once (ResNet-50 with random weights,
built offline: characterized, exported to ONNX and benchmarked on ORT CPU) into a scratch cache, and
its :class:`~turnkey_like.records.BuildRecord` is the template. ``--template`` takes an existing
``record.json`` instead (any schema version tk reads; older ones are migrated). Each of the
``--builds`` copies gets its own script name, invocation and model hash and a different latency
(``msgspec.structs.replace``); ~5% get a failed benchmark and ~1% a benchmark still ``running`` in a
process that is gone, with the statuses, errors and log excerpts the pipeline writes. They are saved
through :class:`turnkey_like.cache.Cache` (atomic writes, locks, summaries), then the script times:

- each command as a fresh process: ``python -m turnkey_like ...`` when that entry point works, else
  a ``python -c`` shim that registers the cache commands on an argparse parser (same imports, same
  handler, so cold-start cost is counted either way);
- the handler functions in-process (warm imports), and ``Cache.records()`` alone.

Prints one line per figure and returns 1 when a figure misses ``--target-s``.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402

from turnkey_like.cache import Cache, decode_stored  # noqa: E402
from turnkey_like.records import BuildRecord, LatencyStats, StageResult, Status  # noqa: E402

replace = msgspec.structs.replace
STEMS = ("resnet50", "mobilenet_v2", "bert", "yolov8n", "gpt2", "vit")


def real_template(script: Path, base: Path, env: dict) -> BuildRecord:
    """Run ``tk benchmark SCRIPT`` once into ``base/template`` and return its (first) record, full."""
    cache_dir = base / "template"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "turnkey_like", "benchmark", str(script), "--iterations", "5",
                           "--cache-dir", str(cache_dir)], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"`tk benchmark {script}` failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
    records, problems = Cache(cache_dir, create=False).records(full=True)
    if not records or problems:
        raise SystemExit(f"`tk benchmark {script}` left no readable record: {problems}")
    print(f"template: a real `tk benchmark {script.name}` run ({time.perf_counter() - t0:.1f} s), "
          f"record {records[0].build_name}")
    return records[0]


def variant(template: BuildRecord, i: int, rng: random.Random) -> BuildRecord:
    """Copy ``i`` of the template: its own names and hashes, a latency of its own, some failures."""
    stem = f"{STEMS[i % len(STEMS)]}_{i}"
    inv_hash = f"{i:08x}"
    script = str(Path(template.script).with_name(f"{stem}.py"))
    name = Cache.build_name(script, template.labels, inv_hash)
    inv = template.invocation
    bench = inv.benchmark
    result = bench.result
    if result is not None:
        scale = rng.uniform(0.5, 2.0)
        lat = result.latency_ms
        latency = LatencyStats(mean=lat.mean * scale, median=lat.median * scale, p90=lat.p90 * scale,
                               p99=lat.p99 * scale, min=lat.min * scale, max=lat.max * scale, std=lat.std * scale)
        bench = replace(bench, result=replace(result, latency_ms=latency,
                                              throughput_ips=result.batch_size * 1000.0 / latency.mean))
    draw = rng.random()
    if draw < 0.05:  # what the pipeline writes when ORT fails (see the benchmark stage)
        bench = StageResult(status=Status.ERROR, duration_s=0.5, started_at=bench.started_at,
                            error="BenchmarkError: ORT session failed: [ONNXRuntimeError] : 1 : FAIL : Load model failed",
                            log_excerpt="Traceback (most recent call last):\n  ...\nonnxruntime.capi.Fail: [ONNXRuntimeError]")
    elif draw < 0.06:  # a run killed mid-benchmark: pid of a process that is gone
        bench = StageResult(status=Status.RUNNING, pid=2**22 - 1 - i, started_at="2026-01-01T00:00:00+00:00")
    inv = replace(inv, hash=inv_hash, build_name=name, benchmark=bench)
    model = replace(template.model, model_hash=f"{i * 7919 % 2**32:08x}", source_file=script)
    return replace(template, build_name=name, script=script, model=model, invocation=inv,
                   created_at=None, updated_at=None)


def _time_process(argv: list[str], env: dict) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - t0, proc.returncode, proc.stderr[-500:]


def main() -> int:
    """Generate the cache, run the timings, print the figures; returns 1 when a target is missed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", type=int, default=10_000)
    ap.add_argument("--script", type=Path, default=REPO / "examples" / "scripts" / "resnet50.py",
                    help="script whose real record is the template (default: examples/scripts/resnet50.py)")
    ap.add_argument("--template", type=Path, metavar="RECORD_JSON",
                    help="use this record.json as the template instead of running tk benchmark")
    ap.add_argument("--keep", metavar="DIR", help="write the cache here and keep it (default: a temp folder)")
    ap.add_argument("--reuse", action="store_true", help="time the cache an earlier --keep DIR run left there")
    ap.add_argument("--target-s", type=float, default=2.0)
    args = ap.parse_args()

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tk_scale_"))
    base.mkdir(parents=True, exist_ok=True)
    root = base / "cache"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    if args.reuse:
        if not args.keep or not root.is_dir():
            raise SystemExit("--reuse needs --keep DIR holding the cache of an earlier run")
        print(f"timing the existing cache {root} ({len(Cache(root, create=False).builds())} builds)")
    else:
        if args.template:
            template, _ = decode_stored(args.template.read_bytes(), args.template.parent.name)
            print(f"template: {args.template} (schema version read as {template.schema_version})")
        else:
            template = real_template(args.script.resolve(), base, env)
        rng = random.Random(0)
        cache = Cache(root)
        t0 = time.perf_counter()
        for i in range(args.builds):
            cache.save(variant(template, i, rng))
        gen_s = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in root.glob("*/record.json"))
        summ = sum(f.stat().st_size for f in root.glob("*/.summary.json"))
        print(f"generated {args.builds} builds in {gen_s:.2f} s ({gen_s / args.builds * 1000:.2f} ms per atomic save); "
              f"records {size / 1e6:.1f} MB ({size / args.builds / 1e3:.1f} kB each), "
              f"summaries {summ / args.builds / 1e3:.1f} kB each")

    report_path = base / "report.csv"
    figures: dict[str, float] = {}
    probe = subprocess.run([sys.executable, "-m", "turnkey_like", "cache", "location", "--cache-dir", str(root)],
                           cwd=REPO, env=env, capture_output=True, text=True)
    if probe.returncode == 0:
        how = "python -m turnkey_like"
        prefix = [sys.executable, "-m", "turnkey_like"]
    else:
        how = "python -c shim (python -m turnkey_like not available)"
        shim = ("import argparse, sys\nfrom turnkey_like.cli.cache_commands import register\n"
                "p = argparse.ArgumentParser(prog='tk'); register(p.add_subparsers(dest='command', required=True))\n"
                "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n")
        prefix = [sys.executable, "-c", shim]
    commands = (("cache list", ["cache", "list", "--cache-dir", str(root)]),
                ("report", ["report", "--cache-dir", str(root), "-o", str(report_path)]))
    for label, argv in commands:
        best = None
        for _ in range(3):
            s, rc, err = _time_process(prefix + argv, env)
            if rc != 0:
                print(f"`tk {label}` failed (rc {rc}): {err}")
                return 1
            best = s if best is None else min(best, s)
        figures[f"process {label}"] = best
        print(f"tk {label:<10} fresh process via {how}: {best:.3f} s (best of 3)")
    startup = min(_time_process([sys.executable, "-c", "pass"], env)[0] for _ in range(3))
    print(f"(bare `python -c pass` start-up on this machine: {startup:.3f} s)")

    from turnkey_like.cli.cache_commands import register

    parser = argparse.ArgumentParser(prog="tk")
    register(parser.add_subparsers(dest="command", required=True))
    for label, argv in commands:
        a = parser.parse_args(argv)
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                a.func(a)
            best = min(best or 1e9, time.perf_counter() - t0)
        figures[f"in-process {label}"] = best
        print(f"tk {label:<10} handler in-process: {best:.3f} s (best of 3)")
    t0 = time.perf_counter()
    records, problems = Cache(root, create=False).records()
    print(f"Cache.records(): {len(records)} records, {len(problems)} problems in {time.perf_counter() - t0:.3f} s; "
          f"{sum(r.invocation.benchmark.status == Status.KILLED for r in records)} stale `running` read as killed")
    t0 = time.perf_counter()
    full, _ = Cache(root, create=False).records(full=True)
    print(f"Cache.records(full=True): {len(full)} full records in {time.perf_counter() - t0:.3f} s")
    rows = report_path.read_text().count("\n") - 1
    print(f"report rows written: {rows}")

    if not args.keep:
        shutil.rmtree(base)
    missed = [k for k, v in figures.items() if v > args.target_s]
    print("target < %.1f s: %s" % (args.target_s, "met" if not missed else "MISSED for " + ", ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
