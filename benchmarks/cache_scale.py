"""Time `tk cache list` and `tk report` on a cache of 1,000 builds (target: under 2 s each).

Usage::

    python benchmarks/cache_scale.py [--builds 1000] [--nodes 150] [--keep DIR]

Generates realistic :class:`BuildRecord`s (three stage results, a characterization with ``--nodes``
per-node rows and a module roll-up, ~5% failed builds, ~1% still ``running`` in a dead process), saves
them through :class:`turnkey_like.cache.Cache` (atomic writes, locks), then times:

- each command as a fresh process: ``python -m turnkey_like.cli ...`` when that entry point works, else
  a ``python -c`` shim that registers the cache commands on an argparse parser (same imports, same
  handler, so cold-start cost is counted either way);
- the handler functions in-process (warm imports).

Prints one line per figure. No torch import is needed (records are written from plain data).
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
from contextlib import redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from turnkey_like.cache import Cache  # noqa: E402
from turnkey_like.records import BuildRecord, Invocation, ModelInfo, StageResult, Status, TensorSpec  # noqa: E402
from turnkey_like.system import system_info  # noqa: E402

MODELS = [("resnet50", "ResNet", 25_557_032, 4_089_184_256, (1, 3, 224, 224)),
          ("mobilenet_v2", "MobileNetV2", 3_504_872, 300_774_272, (1, 3, 224, 224)),
          ("bert", "BertModel", 109_482_240, 11_174_215_680, (1, 128)),
          ("yolov8n", "DetectionModel", 3_157_200, 4_372_070_400, (1, 3, 640, 640))]


def make_record(i: int, nodes: int, rng: random.Random, system: dict) -> BuildRecord:
    """One realistic record: discovery facts, characterization with per-node rows, build, benchmark."""
    stem, cls, params, macs, shape = MODELS[i % len(MODELS)]
    inv_hash = f"{i:08x}"
    labels = {"author": ["scale"], "task": ["Benchmark"]}
    name = Cache.build_name(f"/scripts/{stem}_{i}.py", labels, inv_hash)
    dtype = "int64" if stem == "bert" else "float32"
    node_rows = [{"op": "aten::convolution", "module": f"layer{j // 10}.{j % 10}", "input_shapes": [[1, 64, 56, 56]],
                  "dtype": "float32", "macs": macs // nodes, "flops": 2 * (macs // nodes), "bytes_read": 802_816,
                  "bytes_written": 802_816, "weights_bytes": 147_456, "arithmetic_intensity": 4.6, "bound": "memory"}
                 for j in range(nodes)]
    latency = rng.uniform(1.0, 50.0)
    failed = rng.random() < 0.05
    running = not failed and rng.random() < 0.01
    bench = StageResult(Status.SUCCESSFUL, duration_s=rng.uniform(1, 10), result={
        "runtime": "ort", "runtime_version": "1.31.1", "execution_provider": "CPUExecutionProvider", "device": "cpu",
        "device_name": system.get("cpu"), "threads": 2, "iterations": 100, "warmup_iterations": 10,
        "latency_ms": {"mean": latency, "median": latency, "p90": latency * 1.05, "p99": latency * 1.1,
                       "min": latency * 0.95, "max": latency * 1.2, "std": latency * 0.02},
        "throughput_ips": 1000.0 / latency, "batch_size": 1, "peak_memory_bytes": 200 << 20, "precision": "fp32"})
    if failed:
        bench = StageResult(Status.ERROR, duration_s=0.5, error="ORT session failed",
                            log_excerpt="Traceback ...\nonnxruntime.capi.Fail: [ONNXRuntimeError]")
    if running:
        bench = StageResult(Status.RUNNING, pid=2**22 - 1 - i, started_at="2026-01-01T00:00:00+00:00")
    inv = Invocation(
        hash=inv_hash, parent_hash=None, signature=[TensorSpec("x", "tensor", shape, dtype, "cpu")], executed=1,
        time_s=0.05, build_name=name,
        characterization=StageResult(Status.SUCCESSFUL, duration_s=rng.uniform(0.5, 5), result={
            "method": "dispatch", "nodes": node_rows,
            "modules": [{"path": f"layer{k}", "macs": macs // 50} for k in range(50)],
            "totals": {"macs": macs, "conv_matmul_macs": macs, "flops": 2 * macs, "bytes_read": 110_000_000,
                       "bytes_written": 60_000_000, "arithmetic_intensity": 2 * macs / 170_000_000,
                       "bound": "compute", "roofline_time_s": 0.01},
            "not_counted": {"aten::relu": 10}, "hardware": {"name": "generic-cpu"}}),
        build=StageResult(Status.SUCCESSFUL, duration_s=rng.uniform(2, 20), result={
            "opset": 17, "exporter": "dynamo", "precision": "fp32", "onnx_path": "model.onnx",
            "size_bytes": params * 4, "faithful": True}),
        benchmark=bench,
    )
    model = ModelInfo(name="model", class_name=cls, qualified_class=f"zoo.{cls}", model_hash=f"{i * 7 % 2**32:08x}",
                      params=params, param_bytes=params * 4, source_file=f"/scripts/{stem}_{i}.py", source_line=5)
    return BuildRecord(build_name=name, script=f"/scripts/{stem}_{i}.py", labels=labels, model=model, invocation=inv,
                       system=system)


def _time_process(argv: list[str], env: dict) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - t0, proc.returncode, proc.stderr[-500:]


def main() -> int:
    """Generate the cache, run the timings, print the figures; returns 1 when a target is missed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=150, help="per-node rows in each characterization")
    ap.add_argument("--keep", metavar="DIR", help="write the cache here and keep it (default: a temp folder)")
    ap.add_argument("--target-s", type=float, default=2.0)
    args = ap.parse_args()

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tk_scale_"))
    root = base / "cache"
    rng = random.Random(0)
    system = system_info()
    cache = Cache(root)
    t0 = time.perf_counter()
    for i in range(args.builds):
        cache.save(make_record(i, args.nodes, rng, system))
    gen_s = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in root.rglob("record.json"))
    print(f"generated {args.builds} builds in {gen_s:.2f} s ({gen_s / args.builds * 1000:.2f} ms per atomic save); "
          f"records total {size / 2**20:.1f} MiB ({size / args.builds / 1024:.1f} KiB each)")

    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    report_path = base / "report.csv"
    figures: dict[str, float] = {}
    probe = subprocess.run([sys.executable, "-m", "turnkey_like.cli", "cache", "location", "--cache-dir", str(root)],
                           cwd=REPO, env=env, capture_output=True, text=True)
    if probe.returncode == 0:
        how = "python -m turnkey_like.cli"
        prefix = [sys.executable, "-m", "turnkey_like.cli"]
    else:
        how = "python -c shim (python -m turnkey_like.cli not available yet)"
        shim = ("import argparse, sys\nfrom turnkey_like.cli.cache_commands import register\n"
                "p = argparse.ArgumentParser(prog='tk'); register(p.add_subparsers(dest='command', required=True))\n"
                "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n")
        prefix = [sys.executable, "-c", shim]
    for label, argv in (("cache list", ["cache", "list", "--cache-dir", str(root)]),
                        ("report", ["report", "--cache-dir", str(root), "-o", str(report_path)])):
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
    for label, argv in (("cache list", ["cache", "list", "--cache-dir", str(root)]),
                        ("report", ["report", "--cache-dir", str(root), "-o", str(report_path)])):
        a = parser.parse_args(argv)
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            with redirect_stdout(io.StringIO()):
                a.func(a)
            best = min(best or 1e9, time.perf_counter() - t0)
        figures[f"in-process {label}"] = best
        print(f"tk {label:<10} handler in-process: {best:.3f} s (best of 3)")
    t0 = time.perf_counter()
    records, problems = Cache(root, create=False).records()
    print(f"Cache.records(): {len(records)} records, {len(problems)} problems in {time.perf_counter() - t0:.3f} s; "
          f"{sum(r.invocation.benchmark.status == Status.KILLED for r in records)} stale `running` read as killed")
    rows = report_path.read_text().count("\n") - 1
    print(f"report rows written: {rows}")

    if not args.keep:
        shutil.rmtree(base)
    missed = [k for k, v in figures.items() if v > args.target_s]
    print("target < %.1f s: %s" % (args.target_s, "met" if not missed else "MISSED for " + ", ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
