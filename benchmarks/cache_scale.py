"""Time `tk cache list` and `tk report` on a cache of many builds, as whole commands (wall time).

Targets (issue 13): under 0.5 s at 10,000 builds and under 5 s at 100,000, each command a fresh
``python -m turnkey_like`` process, start-up included.

Usage::

    python benchmarks/cache_scale.py [--builds 10000] [--script examples/scripts/hello_world.py]
                                     [--template RECORD_JSON] [--writers 2] [--runs 5]
                                     [--keep DIR [--reuse]] [--target-s S]

The records are real: ``tk benchmark SCRIPT --iterations 5`` runs once into a scratch cache (default
``hello_world.py``: a record of ~7 kB, small enough for 100,000 copies; ``resnet50.py`` gives the
158 kB records of a real model, random weights, offline) and its first
:class:`~turnkey_like.records.BuildRecord` is the template; ``--template`` takes an existing
``record.json`` instead. Each of the ``--builds`` copies gets its own script name, invocation and
model hash and latency (``msgspec.structs.replace``); ~5% get a failed benchmark and ~1% a benchmark
left ``running`` by a process that is gone, as the pipeline writes them. They are saved through
:class:`turnkey_like.cache.Cache` by ``--writers`` processes at once (atomic writes, per-build locks,
summaries, and the index rows those writers keep in step), with a few hundred kB of artifacts for
every 100th build so that sizes differ.

Generate once (``--keep DIR``), time several runs (``--reuse``). The commands run as an installed tk
does, from bytecode compiled once (kept under ``DIR/pycache`` through ``PYTHONPYCACHEPREFIX``, also
when the shell sets ``PYTHONDONTWRITEBYTECODE``). Printed: the median, minimum and
maximum of ``--runs`` fresh-process runs of each command, with the 1-minute load average before and
after (the machine is shared); then what a stale index costs: the index deleted (rebuilt by the next
``tk cache list``), ``tk cache reindex``, and 1% of the records rewritten behind the index's back.
Every run's output is checked: the report written from the index equals the one written from
``Cache.records()`` (the summaries). ``--baseline SRC`` also runs an earlier tk's source tree on the
same cache, in interleaved pairs with this one (``benchmarks/pairs.py``), and prints the ratio.
Returns 1 when a figure misses its target.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec  # noqa: E402
from pairs import interleaved_pairs, load_average, print_pairs  # noqa: E402

from turnkey_like.cache import Cache, decode_stored  # noqa: E402
from turnkey_like.cache_index import INDEX_FILE  # noqa: E402
from turnkey_like.records import BuildRecord, LatencyStats, StageResult, Status, decode, encode  # noqa: E402

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


def _generate(args: tuple) -> float:
    """One writer process: save builds ``start, start + step, ...`` below ``count``; returns seconds."""
    root, template_bytes, start, step, count = args
    template = decode(template_bytes, BuildRecord)
    cache = Cache(root)
    t0 = time.perf_counter()
    for i in range(start, count, step):
        record = variant(template, i, random.Random(i))
        if i % 100 == 0:  # some builds hold artifacts, as real ones do (ONNX files), so sizes differ
            folder = cache.build_dir(record.build_name)
            (folder / "model.onnx").write_bytes(b"\0" * (100_000 + 1000 * (i % 700)))
        cache.save(record)
    return time.perf_counter() - t0


def _run(argv: list[str], env: dict, cwd: Path = REPO) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def _run_ok(argv: list[str], env: dict, cwd: Path) -> float:
    """Seconds of one run; raises SystemExit when it fails."""
    t, proc = _run(argv, env, cwd)
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(argv[2:])}` failed in {cwd} (rc {proc.returncode}): {proc.stderr[-1500:]}")
    return t


def _timed_runs(label: str, argv: list[str], env: dict, runs: int, ok_codes=(0,)) -> float:
    """Run a command ``runs`` times (after one untimed run); print median/min/max and load; return the median."""
    _, proc = _run(argv, env)
    if proc.returncode not in ok_codes:
        raise SystemExit(f"`{' '.join(argv[2:])}` failed (rc {proc.returncode}): {proc.stderr[-1500:]}")
    load0 = load_average()
    times = [_run(argv, env)[0] for _ in range(runs)]
    load1 = load_average()
    med = statistics.median(times)
    print(f"{label:<28} median {med:.3f} s  (min {min(times):.3f}, max {max(times):.3f}; {runs} runs; "
          f"load {load0:.2f}→{load1:.2f})")
    return med


def _check_report(csv_path: Path, root: Path) -> int:
    """The CSV written from the index must equal the rows made from the records' summaries."""
    from turnkey_like.report.table import merge_rows, render_csv, report_rows

    records, _ = Cache(root, create=False).records()
    expected = render_csv(merge_rows(report_rows(records)))
    got = csv_path.read_text(encoding="utf-8")
    if got != expected:
        diff = next((i for i, (a, b) in enumerate(zip(got.splitlines(), expected.splitlines())) if a != b), None)
        raise SystemExit(f"report from the index differs from the records' at line {diff}")
    return len(records)


def main() -> int:
    """Generate the cache (unless ``--reuse``), time the commands, print the figures; 1 when a target is missed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", type=int, default=10_000)
    ap.add_argument("--script", type=Path, default=REPO / "examples" / "scripts" / "hello_world.py",
                    help="script whose real record is the template (default: examples/scripts/hello_world.py)")
    ap.add_argument("--template", type=Path, metavar="RECORD_JSON",
                    help="use this record.json as the template instead of running tk benchmark")
    ap.add_argument("--writers", type=int, default=2, help="processes saving builds at once (default 2)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each command (default 5)")
    ap.add_argument("--keep", metavar="DIR", help="write the cache here and keep it (default: a temp folder)")
    ap.add_argument("--reuse", action="store_true", help="time the cache an earlier --keep DIR run left there")
    ap.add_argument("--baseline", type=Path, metavar="SRC",
                    help="also time an earlier tk's source tree (e.g. `git archive HEAD | tar -x -C SRC`) on "
                         "the same cache, in interleaved pairs with this one")
    ap.add_argument("--target-s", type=float, default=None,
                    help="target per command (default: 0.5 s up to 10,000 builds, else 5 s up to 100,000)")
    args = ap.parse_args()

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tk_scale_"))
    base.mkdir(parents=True, exist_ok=True)
    root = base / "cache"
    # as installed tk runs: from bytecode compiled once (pip writes it), not from source every time;
    # the cache goes outside the repository (a shell with PYTHONDONTWRITEBYTECODE=1 compiles every run)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(REPO), COLUMNS="200", PYTHONPYCACHEPREFIX=str(base / "pycache"))
    print(f"machine: {os.cpu_count()} CPU(s), load average {load_average():.2f} (1 min)")
    if args.reuse:
        if not args.keep or not root.is_dir():
            raise SystemExit("--reuse needs --keep DIR holding the cache of an earlier run")
        n = len(Cache(root, create=False).builds())
        print(f"timing the existing cache {root} ({n} builds)")
    else:
        if args.template:
            template, _ = decode_stored(args.template.read_bytes(), args.template.parent.name)
            print(f"template: {args.template} (schema version read as {template.schema_version})")
        else:
            template = real_template(args.script.resolve(), base, env)
        Cache(root)
        n = args.builds
        t0 = time.perf_counter()
        jobs = [(str(root), encode(template), k, args.writers, n) for k in range(args.writers)]
        with multiprocessing.get_context("fork").Pool(args.writers) as pool:
            pool.map(_generate, jobs)
        gen_s = time.perf_counter() - t0
        rec = sum(f.stat().st_size for f in root.glob("*/record.json"))
        print(f"generated {n} builds with {args.writers} writer processes in {gen_s:.1f} s "
              f"({gen_s / n * 1000 * args.writers:.2f} ms per save and writer); records {rec / 1e6:.1f} MB "
              f"({rec / n / 1e3:.1f} kB each)")
    index = root / INDEX_FILE
    print(f"index {index.name}: {index.stat().st_size / 1e6:.1f} MB" if index.exists() else "no index yet")

    report_path = base / "report.csv"
    prefix = [sys.executable, "-m", "turnkey_like"]
    list_argv = prefix + ["cache", "list", "--cache-dir", str(root)]
    report_argv = prefix + ["report", "--cache-dir", str(root), "-o", str(report_path)]
    target = args.target_s if args.target_s is not None else (0.5 if n <= 10_000 else 5.0)
    startup = statistics.median(_run([sys.executable, "-c", "pass"], env)[0] for _ in range(5))
    tk_start = statistics.median(_run(prefix + ["cache", "location", "--cache-dir", str(root)], env)[0]
                                 for _ in range(5))
    print(f"start-up: `python -c pass` {startup:.3f} s, `tk cache location` {tk_start:.3f} s (medians of 5; "
          f"bytecode cached in {env['PYTHONPYCACHEPREFIX']})")

    figures = {
        "tk cache list": _timed_runs(f"tk cache list ({n} builds)", list_argv, env, args.runs),
        "tk report": _timed_runs(f"tk report ({n} builds, CSV)", report_argv, env, args.runs),
    }
    rows = _check_report(report_path, root)
    print(f"report checked: {rows} rows, identical to the rows made from the records' summaries")
    if args.baseline:  # run from the baseline's folder: `python -m` looks in the current folder first
        src = args.baseline.resolve()
        base_env = {**env, "PYTHONPATH": str(src)}
        for label, argv in (("tk cache list", list_argv), ("tk report", report_argv)):
            stats = interleaved_pairs(lambda argv=argv: _run_ok(argv, base_env, src),
                                      lambda argv=argv: _run_ok(argv, env, REPO), pairs=args.runs)
            print_pairs(f"{label}: this tk (B) / {src} (A)", stats)

    # what a stale index costs: each case once, then the index is whole again
    os.unlink(index)
    t, proc = _run(list_argv, env)
    print(f"{'index deleted: tk cache list':<28} {t:.3f} s (rebuilds it on the way; load {load_average():.2f})")
    t, _ = _run(list_argv, env)
    print(f"{'  the next tk cache list':<28} {t:.3f} s")
    t, proc = _run(prefix + ["cache", "reindex", "--cache-dir", str(root)], env)
    print(f"{'tk cache reindex':<28} {t:.3f} s: {proc.stdout.strip()}")
    names = sorted(p.name for p in root.iterdir() if (p / "record.json").is_file())
    touched = names[:: 100]
    for name in touched:  # rewritten behind the index's back (same content, a new file)
        path = root / name / "record.json"
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)
    t, _ = _run(list_argv, env)
    print(f"{f'{len(touched)} records rewritten: list':<28} {t:.3f} s (read from the records, rows rewritten)")
    t, _ = _run(list_argv, env)
    print(f"{'  the next tk cache list':<28} {t:.3f} s")
    print(f"load average now {load_average():.2f}")

    if not args.keep:
        shutil.rmtree(base)
    missed = [k for k, v in figures.items() if v > target]
    print(f"target < {target:g} s at {n} builds: " + ("met" if not missed else "MISSED for " + ", ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
