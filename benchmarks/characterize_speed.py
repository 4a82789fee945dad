"""Measure what characterization costs, against an eager forward and against FlopCounterMode.

Every ratio is the median of interleaved A/B pairs (``benchmarks/pairs.py``), printed with its
smallest and largest pair and the 1-minute load average before and after, because the machine may
be shared. Timing is wall time (``time.perf_counter``); the same pairs are also printed in CPU time of
this process (``time.process_time``), which other processes on a shared machine disturb less: with
more runnable processes than cores, a run's wall time includes waiting for a core, and the wall
ratios spread (min/max pair) far more than the CPU ones. Raise ``--pairs`` on a loaded machine.

1. Four real models, batch 1, fp32, CPU, eval, ``no_grad``, 1 thread by default (``--threads``):
   ResNet-50 and ViT-B/16 (torchvision, ``weights=None``, 224x224), BERT-base (transformers'
   default ``BertConfig``, built from code, ``input_ids`` + ``attention_mask`` of length 128) and
   YOLOv8n (ultralytics ``YOLO("yolov8n.yaml")``, 640x640). For each, three pair runs:

   - eager forward (A) vs ``turnkey_like.characterize(model, ...)`` (B): target B/A <= 1.2;
   - eager forward (A) vs ``torch.utils.flop_counter.FlopCounterMode`` around the forward (B);
   - FlopCounterMode (A) vs ``characterize`` (B): target B/A <= 1 (tk at or below the peer).

   ``characterize`` runs as the pipeline runs it: counting, roofline, roll-up, fusion; no FX/export
   trace (``--trace`` adds it, as ``tk profile --trace`` does).
2. A tiny MLP (3 x Linear(64, 64) + ReLU, batch 8): the fixed overhead of ``characterize``, the
   median over pairs of (characterize - eager) in ms; target <= 1.5 ms.
3. A Llama-2-70B-sized decoder config (hidden 8192, 80 layers, 64 heads, 8 key/value heads,
   intermediate 28672, vocab 32000) built under ``torch.device("meta")``, ``input_ids`` 1 x 128,
   characterized in a fresh subprocess: wall time of ``characterize`` (target < 5 s) and peak RSS
   of the process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, target < 2 GiB).
4. ``stack``: YOLOv8n at 64x64 (small kernels, so the counter's own cost shows) characterized once
   from each caller depth 0..299 (a recursive helper adds the frames): the page faults of each call
   (``ru_minflt``), how many depths fault over 100 pages, and the CPU time at the three worst depths
   against the three calmest and an eager forward (median of ``--pairs`` calls each). On CPython
   3.11/3.12 a depth where one of the counter's frames falls on a data-stack chunk boundary maps and
   unmaps a chunk per op (``characterize/stack_room.py``); target: no depth over 100 faults. Not
   in the default list.

Usage: ``python benchmarks/characterize_speed.py [--pairs 7] [--threads 1] [--models resnet50,vit_b_16,
bert,yolov8n,mlp,llama70b,stack] [--trace] [--hardware a100]``
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.environ.get("TK_BENCH_REPO", REPO))  # TK_BENCH_REPO: measure another checkout

from pairs import PairStats, interleaved_pairs, print_pairs  # noqa: E402

MODELS = ("resnet50", "vit_b_16", "bert", "yolov8n", "mlp", "llama70b")
"""The default list; ``stack`` (the caller-depth sweep) runs when named."""
TARGET_EAGER = 1.2
TARGET_MLP_MS = 1.5
TARGET_LLAMA_S = 5.0
TARGET_LLAMA_GIB = 2.0

LLAMA = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    import torch
    torch.set_num_threads(int(sys.argv[3]))
    from transformers import LlamaConfig, LlamaForCausalLM
    from turnkey_like.characterize import characterize
    cfg = LlamaConfig(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                      intermediate_size=28672, vocab_size=32000)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg).eval()
    t1 = time.perf_counter()
    with torch.no_grad():
        c = characterize(model, input_ids=torch.randint(0, 32000, (1, 128)), hardware=sys.argv[1],
                         trace=sys.argv[2] == "1")
    t2 = time.perf_counter()
    print(json.dumps({"total_s": t2 - t0, "build_s": t1 - t0, "characterize_s": t2 - t1,
                      "count_s": c.count_duration_s, "trace_s": c.trace_duration_s,
                      "trace": c.trace.method, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "params": c.totals.params, "macs": c.totals.macs, "flops": c.totals.flops,
                      "ops": c.totals.ops}))
    """
)


def build(name: str):
    """``(label, model, args, kwargs)`` for one of :data:`MODELS` (not llama70b)."""
    import torch

    torch.manual_seed(0)
    if name in ("resnet50", "vit_b_16"):
        import torchvision

        model = getattr(torchvision.models, name)(weights=None).eval()
        return f"{name} b1 224 fp32", model, (torch.randn(1, 3, 224, 224),), {}
    if name == "bert":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import BertConfig, BertModel

        model = BertModel(BertConfig()).eval()
        kwargs = {"input_ids": torch.randint(1, 30000, (1, 128)),
                  "attention_mask": torch.ones(1, 128, dtype=torch.long)}
        return "bert-base seq 128 fp32", model, (), kwargs
    if name == "yolov8n":
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        model = YOLO("yolov8n.yaml", verbose=False).model.eval()
        return "yolov8n b1 640 fp32", model, (torch.randn(1, 3, 640, 640),), {}
    if name == "mlp":
        layers = []
        for _ in range(3):
            layers += [torch.nn.Linear(64, 64), torch.nn.ReLU()]
        return "tiny MLP 3 x Linear(64, 64) b8 fp32", torch.nn.Sequential(*layers).eval(), (torch.randn(8, 64),), {}
    raise ValueError(name)


class Clocked:
    """Wrap a callable so each run returns its wall time and also records its CPU time."""

    def __init__(self, fn):
        self.fn = fn
        self.cpu: list[float] = []

    def __call__(self) -> float:
        c0, t0 = time.process_time(), time.perf_counter()
        self.fn()
        wall = time.perf_counter() - t0
        self.cpu.append(time.process_time() - c0)
        return wall


def timed_pairs(a, b, pairs: int, warmup: int) -> tuple[PairStats, PairStats]:
    """Interleaved pairs of ``a`` and ``b``: wall-time stats, and the same pairs in CPU time."""
    ca, cb = Clocked(a), Clocked(b)
    wall = interleaved_pairs(ca, cb, pairs=pairs, warmup=warmup)
    cpu = PairStats(a=ca.cpu[-pairs:], b=cb.cpu[-pairs:], load_before=wall.load_before, load_after=wall.load_after)
    return wall, cpu


def compare(name: str, pairs: int, hardware: str, trace: bool) -> dict:
    """Print eager / characterize / FlopCounterMode pair ratios for one model; return the figures."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from turnkey_like.characterize import characterize, get_profile

    label, model, args, kwargs = build(name)
    get_profile(hardware)  # measure/cache a `local` profile outside the timed region
    extra = {"trace": trace}

    def eager():
        model(*args, **kwargs)

    def tk():
        characterize(model, *args, hardware=hardware, **extra, **kwargs)

    def fcm():
        with FlopCounterMode(display=False):
            model(*args, **kwargs)

    with torch.no_grad():
        t0 = time.perf_counter()
        first = characterize(model, *args, hardware=hardware, **extra, **kwargs)
        cold = time.perf_counter() - t0
        warm = 1 if name != "mlp" else 20
        n = pairs if name != "mlp" else pairs * 20
        print(f"{label}, {torch.get_num_threads()} thread(s), trace: {first.trace.method}; "
              f"first (cold) characterize {cold * 1e3:.1f} ms", flush=True)
        tk_eager, tk_eager_cpu = timed_pairs(eager, tk, n, warm)
        fcm_eager, fcm_eager_cpu = timed_pairs(eager, fcm, n, warm)
        tk_fcm, tk_fcm_cpu = timed_pairs(fcm, tk, n, warm)
    ms = dict(unit="ms", scale=1e3)
    print_pairs("  characterize / eager (wall)", tk_eager, **ms)
    print_pairs("  characterize / eager (CPU) ", tk_eager_cpu, **ms)
    print_pairs("  FlopCounterMode / eager (wall)", fcm_eager, **ms)
    print_pairs("  FlopCounterMode / eager (CPU) ", fcm_eager_cpu, **ms)
    print_pairs("  characterize / FlopCounterMode (wall)", tk_fcm, **ms)
    print_pairs("  characterize / FlopCounterMode (CPU) ", tk_fcm_cpu, **ms)
    figures = {"tk/eager": tk_eager.ratio, "fcm/eager": fcm_eager.ratio, "tk/fcm": tk_fcm.ratio,
               "tk/eager cpu": tk_eager_cpu.ratio, "tk/fcm cpu": tk_fcm_cpu.ratio}
    if name == "mlp":
        over = statistics.median(b - a for a, b in zip(tk_eager.a, tk_eager.b))
        over_cpu = statistics.median(b - a for a, b in zip(tk_eager_cpu.a, tk_eager_cpu.b))
        figures["overhead_ms"] = over * 1e3
        print(f"  fixed overhead (median of per-pair characterize - eager): {over * 1e3:.3f} ms wall, "
              f"{over_cpu * 1e3:.3f} ms CPU   target <= {TARGET_MLP_MS} ms: "
              f"{'OK' if over * 1e3 <= TARGET_MLP_MS else 'MISSED'}")
    else:
        def verdict(eager_pairs, fcm_pairs):
            return "OK" if eager_pairs.ratio <= TARGET_EAGER and fcm_pairs.ratio <= 1.0 else "MISSED"

        print(f"  target characterize <= {TARGET_EAGER}x eager and <= FlopCounterMode: "
              f"{verdict(tk_eager, tk_fcm)} in wall time, {verdict(tk_eager_cpu, tk_fcm_cpu)} in CPU time")
    counts = (f"  count {first.count_duration_s * 1e3:.1f} ms of {first.duration_s * 1e3:.1f} ms; "
              f"{first.totals.ops} ops, conv+matmul MACs {first.totals.conv_matmul_macs / 1e9:.4g} G, "
              f"params {first.totals.params:,}")
    print(counts, flush=True)
    return figures


def llama70b(hardware: str, threads: int, trace: bool) -> dict:
    """Characterize the 70B config on meta in a fresh process; print time and peak RSS."""
    env = dict(os.environ, HF_HUB_OFFLINE="1",
               PYTHONPATH=os.environ.get("TK_BENCH_REPO", REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", LLAMA, hardware, "1" if trace else "0", str(threads)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print("Llama-70B config on meta: FAILED\n" + out.stderr[-3000:])
        return {}
    r = json.loads(out.stdout.strip().splitlines()[-1])
    gib = r["rss_kib"] / 2**20
    ok = r["characterize_s"] < TARGET_LLAMA_S and gib < TARGET_LLAMA_GIB
    print("Llama-2-70B-sized decoder config on meta, batch 1, seq 128 (fresh process):")
    print(f"  characterize {r['characterize_s']:.2f} s (count {r['count_s']:.2f} s, trace {r['trace']} "
          f"{r['trace_s']:.2f} s); model build {r['build_s']:.2f} s incl. imports; process total {r['total_s']:.2f} s")
    print(f"  peak RSS {gib:.2f} GiB; targets characterize < {TARGET_LLAMA_S:g} s and peak RSS < "
          f"{TARGET_LLAMA_GIB:g} GiB: {'OK' if ok else 'MISSED'}")
    print(f"  params {r['params']:,}, MACs {r['macs'] / 1e12:.3f} T, FLOPs {r['flops'] / 1e12:.3f} T "
          f"(1 MAC = 2 FLOPs), {r['ops']} ops", flush=True)
    return r


def _at_depth(depth: int, fn):
    """``fn()`` called ``depth`` Python frames deeper than this call."""
    return fn() if depth == 0 else _at_depth(depth - 1, fn)


def stack_depths(hardware: str, pairs: int, depths: int = 300) -> dict:
    """Characterize YOLOv8n (64x64) ``pairs`` times from each caller depth 0..depths-1; print page
    faults and CPU time (medians per depth)."""
    import resource

    import torch

    from turnkey_like.characterize import characterize

    _, model, (x,), _ = build("yolov8n")
    x = x[:, :, :64, :64].contiguous()

    def one() -> tuple[int, float]:
        r0, c0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
        characterize(model, x, hardware=hardware)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0, time.process_time() - c0

    per_depth = []  # (median faults, median CPU s, depth), every call made from the same place
    with torch.no_grad():
        one()
        for depth in range(depths):
            calls = [_at_depth(depth, one) for _ in range(pairs)]
            per_depth.append((statistics.median(f for f, _ in calls), statistics.median(c for _, c in calls), depth))
        eager = []
        for _ in range(3 * pairs):
            c0 = time.process_time()
            model(x)
            eager.append(time.process_time() - c0)
    per_depth.sort()
    over = [p for p in per_depth if p[0] > 100]
    worst, calm = per_depth[-3:], per_depth[:3]
    print(f"YOLOv8n 64x64, characterize from caller depths 0..{depths - 1}, {pairs} calls each: {len(over)} "
          f"depths over 100 page faults a call (worst {worst[-1][0]:.0f} at depth {worst[-1][2]}); "
          f"target none: {'OK' if not over else 'MISSED'}")
    cpu = {name: statistics.median(c for _, c, _ in chosen) * 1e3 for name, chosen in (("worst", worst), ("calm", calm))}
    print(f"  CPU a call (median): {cpu['worst']:.1f} ms at the 3 depths with most faults, {cpu['calm']:.1f} ms at "
          f"the 3 with fewest, {statistics.median(c for _, c, _ in per_depth) * 1e3:.1f} ms over all; eager forward "
          f"{statistics.median(eager) * 1e3:.1f} ms; load {os.getloadavg()[0]:.2f}", flush=True)
    return {"depths_over_100": len(over), "worst_ms": cpu["worst"], "calm_ms": cpu["calm"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7, help="timed pairs per ratio (the MLP runs 20x as many)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {','.join(MODELS)},stack")
    parser.add_argument("--hardware", default="a100", help="hardware profile for the roofline (default a100)")
    parser.add_argument("--trace", action="store_true", help="characterize with the FX/export trace too")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()} "
          f"on {os.cpu_count()} CPUs", flush=True)
    for name in args.models.split(","):
        if name == "llama70b":
            llama70b(args.hardware, args.threads, args.trace)
        elif name == "stack":
            stack_depths(args.hardware, args.pairs)
        else:
            compare(name, args.pairs, args.hardware, args.trace)


if __name__ == "__main__":
    main()
