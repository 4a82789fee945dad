"""Measure what characterization costs.

1. ResNet-50 (batch 1, 3x224x224, fp32, CPU, eval, no_grad): median wall time of a plain eager
   forward vs median of ``characterize(model, x)`` (count + FX trace + roofline/roll-up/fusion),
   and their ratio (target <= 1.5x). The first (cold) characterize call is reported separately.
2. A tiny MLP (3 x Linear(64, 64) + ReLU, batch 8): the same figures, where the fixed costs of
   characterize (tracing, assembling the record) dominate.
3. A Llama-2-7B-sized decoder (hidden 4096, 32 layers, 32 heads, intermediate 11008, vocab 32000)
   built under ``torch.device("meta")``, seq len 128, batch 1: wall time (build + characterize; target
   < 60 s) and peak RSS (target < 4 GiB), measured in a fresh subprocess with
   ``resource.getrusage(RUSAGE_SELF).ru_maxrss``. (tests/test_characterize.py checks its counts;
   its time and memory are figures, printed here.)

Usage: ``python benchmarks/characterize_speed.py [--repeats 7] [--skip-resnet] [--skip-mlp]
[--skip-llama] [--hardware a100]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

LLAMA = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from turnkey_like.characterize import characterize
    cfg = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, intermediate_size=11008, vocab_size=32000)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg).eval()
    t1 = time.perf_counter()
    with torch.no_grad():
        c = characterize(model, input_ids=torch.randint(0, 32000, (1, 128)), hardware=sys.argv[1])
    t2 = time.perf_counter()
    print(json.dumps({"total_s": t2 - t0, "build_s": t1 - t0, "characterize_s": t2 - t1,
                      "count_s": c.count_duration_s, "trace_s": c.trace_duration_s,
                      "trace": c.trace.method, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "params": c.totals.params, "macs": c.totals.macs, "flops": c.totals.flops}))
    """
)


def compare(name: str, model, x, repeats: int, hardware: str, target: float | None) -> None:
    """Print eager vs characterize medians (interleaved runs) for ``model(x)``."""
    import torch

    from turnkey_like.characterize import characterize, get_profile

    get_profile(hardware)  # measure/cache `local` outside the timed region
    with torch.no_grad():
        for _ in range(3):
            model(x)
        t0 = time.perf_counter()
        first = characterize(model, x, hardware=hardware)
        cold = time.perf_counter() - t0
        # Interleave the two so load from other processes hits both alike; report medians and minimums
        # of wall time, and the minimum CPU time of this process (all threads), which other processes
        # on a shared machine disturb far less than wall time.
        eager_t, char_t, eager_cpu, char_cpu, results = [], [], [], [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            model(x)
            eager_t.append(time.perf_counter() - t0)
            eager_cpu.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            results.append(characterize(model, x, hardware=hardware))
            char_t.append(time.perf_counter() - t0)
            char_cpu.append(time.process_time() - c0)
    eager, char = statistics.median(eager_t), statistics.median(char_t)
    counts = statistics.median(r.count_duration_s for r in results)
    traces = statistics.median(r.trace_duration_s for r in results)
    print(f"{name}, {torch.get_num_threads()} threads, {repeats} interleaved runs:")
    print(f"  eager forward           median {eager * 1e3:8.2f} ms   min {min(eager_t) * 1e3:8.2f} ms")
    print(f"  characterize            median {char * 1e3:8.2f} ms   min {min(char_t) * 1e3:8.2f} ms")
    print(f"    of which count {counts * 1e3:.2f} ms (min {min(r.count_duration_s for r in results) * 1e3:.2f}), "
          f"trace ({first.trace.method}) {traces * 1e3:.2f} ms, rest {(char - counts - traces) * 1e3:.2f} ms; "
          f"first (cold) call {cold * 1e3:.1f} ms")
    ratio, ratio_min = char / eager, min(char_t) / min(eager_t)
    verdict = "" if target is None else f"   target <= {target}x: {'OK' if ratio <= target else 'MISSED'}"
    print(f"  ratio                   median {ratio:6.2f} x   min {ratio_min:6.2f} x{verdict}")
    print(f"  CPU time (min)          eager {min(eager_cpu) * 1e3:.2f} ms   characterize {min(char_cpu) * 1e3:.2f} ms"
          f"   ratio {min(char_cpu) / min(eager_cpu):.2f} x")
    print(f"  MACs {first.totals.conv_matmul_macs / 1e9:.4g} G (conv+matmul), params {first.totals.params:,}, "
          f"{first.totals.ops} ops")


def resnet50(repeats: int, hardware: str) -> None:
    import torch
    import torchvision

    model = torchvision.models.resnet50(weights=None).eval()
    compare("ResNet-50 b1 224 fp32", model, torch.randn(1, 3, 224, 224), repeats, hardware, target=1.5)


def mlp(repeats: int, hardware: str) -> None:
    import torch

    torch.manual_seed(0)
    layers = []
    for _ in range(3):
        layers += [torch.nn.Linear(64, 64), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers).eval()
    compare("Tiny MLP 3 x Linear(64, 64) b8 fp32", model, torch.randn(8, 64), repeats, hardware, target=None)


def llama(hardware: str) -> None:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", LLAMA, hardware], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print("Llama-7B meta: FAILED\n" + out.stderr[-3000:])
        return
    r = json.loads(out.stdout.strip().splitlines()[-1])
    rss_gib = r["rss_kib"] / 2**20
    print("Llama-2-7B-sized decoder on meta, batch 1, seq 128 (fresh process):")
    print(f"  total {r['total_s']:.1f} s (build {r['build_s']:.1f} s, characterize {r['characterize_s']:.1f} s: "
          f"count {r['count_s']:.1f} s, trace {r['trace']} {r['trace_s']:.1f} s)  target < 60 s: "
          f"{'OK' if r['total_s'] < 60 else 'MISSED'}")
    print(f"  peak RSS {rss_gib:.2f} GiB  target < 4 GiB: {'OK' if rss_gib < 4 else 'MISSED'}")
    print(f"  params {r['params']:,}  MACs {r['macs'] / 1e9:.1f} G  FLOPs {r['flops'] / 1e12:.3f} T "
          "(1 MAC = 2 FLOPs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--hardware", default="a100", help="hardware profile for the roofline (default a100)")
    parser.add_argument("--skip-llama", action="store_true")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--skip-mlp", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not args.skip_resnet:
        resnet50(args.repeats, args.hardware)
    if not args.skip_mlp:
        mlp(args.repeats, args.hardware)
    if not args.skip_llama:
        llama(args.hardware)


if __name__ == "__main__":
    main()
