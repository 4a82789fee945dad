"""Corpus runs on Dask: does a parallel run keep serial latency, how much faster is it, what does a task cost?

1. **Latency** (``--latency``, default on): interleaved pairs (``benchmarks/pairs.py``) of
   A = ``tk benchmark model.py`` alone (serial) and B = ``tk benchmark model.py noisy.py --workers 2``,
   where ``noisy.py`` keeps a core busy with torch matmuls for ``--noise-s`` seconds during its
   discovery, started at the same moment as ``model.py``'s. The measure of each run is the ORT mean
   latency (ms) in ``model.py``'s record, not wall time; the figure is B ÷ A (target: 1.00 within the
   pairs' spread). The host lock (``turnkey_like.hostlock``) makes the benchmark wait for the noisy
   discovery to end; without it the benchmark would share the cores.
2. **Speedup** (``--speedup``): ``--scripts`` corpus-style scripts through ``--analyze-only``, serial (A)
   vs ``--workers 2`` (B), wall time, interleaved pairs; the figure is A ÷ B (target on 2 cores: ≥ 1.7
   for 40 scripts). The scripts are written the way TurnkeyML's corpus writes them (one model per
   script, built from code, called once on its inputs): torchvision classifiers, transformers models
   from their default configs at sequence length 128, and timm models, cycled (``CORPUS_MODELS``).
3. **Overhead per task** (``--overhead N``): N trivial scripts (no model) through ``--analyze-only`` on
   ``--workers 2`` and serially; prints (wall − cluster start) ÷ N for each, in ms.

    python benchmarks/corpus_scale.py [--pairs 3] [--latency] [--speedup --scripts 40]
        [--overhead 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pairs import interleaved_pairs, print_pairs, run_timed  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

MODEL = """# labels: name::corpus_latency
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))
model(torch.rand(1, 3, 64, 64))
"""

NOISY = """# labels: name::corpus_noise
import time, torch
model = torch.nn.Linear(8, 8)
model(torch.ones(1, 8))
a = torch.rand(512, 512)
end = time.time() + {seconds}
while time.time() < end:
    a = (a @ a).clamp_(-1, 1)
"""

TORCHVISION = """# labels: name::{name} author::torchvision task::Computer_Vision
import torch
from torchvision import models

torch.manual_seed(0)
model = models.{name}(weights=None)
model.eval()
inputs = {{"x": torch.rand(1, 3, 224, 224)}}
model(**inputs)
"""

TRANSFORMERS_TEXT = """# labels: name::{name} author::huggingface task::Natural_Language_Processing
import torch
import transformers

torch.manual_seed(0)
model = transformers.{name}Model(transformers.{name}Config())
model.eval()
inputs = {{"input_ids": torch.randint(0, 1000, (1, 128)), "attention_mask": torch.ones(1, 128, dtype=torch.long)}}
model(**inputs)
"""

TRANSFORMERS_VISION = """# labels: name::{name} author::huggingface task::Computer_Vision
import torch
import transformers

torch.manual_seed(0)
model = transformers.{name}Model(transformers.{name}Config())
model.eval()
inputs = {{"pixel_values": torch.rand(1, 3, 224, 224)}}
model(**inputs)
"""

TIMM = """# labels: name::{name} author::timm task::Computer_Vision
import timm
import torch

torch.manual_seed(0)
model = timm.create_model("{name}", pretrained=False)
model.eval()
inputs = {{"x": torch.rand(1, 3, 224, 224)}}
model(**inputs)
"""

#: (template, model) per corpus script, cycled: 20 torchvision, 12 transformers, 8 timm models
CORPUS_MODELS = (
    [(TORCHVISION, name) for name in (
        "resnet18", "resnet34", "resnet50", "resnext50_32x4d", "mobilenet_v2", "mobilenet_v3_small",
        "mobilenet_v3_large", "squeezenet1_0", "squeezenet1_1", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
        "mnasnet0_5", "mnasnet1_0", "efficientnet_b0", "efficientnet_b1", "regnet_x_400mf", "regnet_y_400mf",
        "googlenet", "densenet121", "alexnet")]
    + [(TRANSFORMERS_TEXT, name) for name in (
        "Bert", "GPT2", "DistilBert", "Electra", "Roberta", "MobileBert", "SqueezeBert", "ConvBert", "Bart")]
    + [(TRANSFORMERS_VISION, name) for name in ("ViT", "DeiT", "Swin")]
    + [(TIMM, name) for name in (
        "efficientnet_lite0", "mixnet_s", "rexnet_100", "ghostnet_100", "dla34", "hrnet_w18_small",
        "vit_tiny_patch16_224", "convnext_atto")]
)


def tk(*args: str, cache: Path):
    return run_timed([sys.executable, "-m", "turnkey_like", "benchmark", *args, "--cache-dir", str(cache), "-q"],
                     cwd=REPO, timeout=3600)


def mean_latency_ms(cache: Path) -> float:
    """The ORT mean latency of the only ``corpus_latency`` build in ``cache``."""
    for record in cache.glob("model_*/record.json"):
        data = json.loads(record.read_text())
        return data["invocation"]["benchmark"]["result"]["latency_ms"]["mean"]
    raise RuntimeError(f"no model build in {cache}")


def latency(args, folder: Path) -> None:
    model = folder / "model.py"
    model.write_text(MODEL)
    noisy = folder / "noisy.py"
    noisy.write_text(NOISY.format(seconds=args.noise_s))
    runs = iter(range(10**6))

    def serial():
        cache = folder / f"serial{next(runs)}"
        tk(str(model), "--iterations", str(args.iterations), cache=cache)
        return mean_latency_ms(cache)

    def parallel():
        cache = folder / f"parallel{next(runs)}"
        tk(str(noisy), str(model), "--analyze-only", cache=cache)  # warm: the noisy script's characterization
        tk(str(model), str(noisy), "--workers", "2", "--iterations", str(args.iterations), cache=cache)
        return mean_latency_ms(cache)

    stats = interleaved_pairs(serial, parallel, pairs=args.pairs, warmup=0)
    print_pairs(f"ORT mean latency, --workers 2 beside a busy discovery ÷ serial alone ({args.iterations} "
                "iterations)", stats, unit="ms")


def speedup(args, folder: Path) -> None:
    scripts = []
    for i in range(args.scripts):
        path = folder / "corpus" / f"script_{i:03d}_{CORPUS_MODELS[i % len(CORPUS_MODELS)][1].lower()}.py"
        path.parent.mkdir(exist_ok=True)
        template, name = CORPUS_MODELS[i % len(CORPUS_MODELS)]
        path.write_text(template.format(name=name))
        scripts.append(str(path))
    runs = iter(range(10**6))
    stats = interleaved_pairs(lambda: tk(*scripts, "--analyze-only", cache=folder / f"s{next(runs)}").wall_s,
                              lambda: tk(*scripts, "--analyze-only", "--workers", "2",
                                         cache=folder / f"p{next(runs)}").wall_s,
                              pairs=args.pairs, warmup=0)
    print_pairs(f"{args.scripts} scripts --analyze-only: --workers 2 ÷ serial (wall; speedup = 1 / ratio)", stats)
    print(f"speedup (serial ÷ --workers 2, median of pairs): {1 / stats.ratio:.2f}x")


def overhead(args, folder: Path) -> None:
    trivial = folder / "trivial"
    trivial.mkdir()
    scripts = []
    for i in range(args.overhead):
        path = trivial / f"t{i:04d}.py"
        path.write_text(f"x = {i}\n")
        scripts.append(str(path))
    one = [scripts[0]]
    cluster_s = statistics.median(tk(*one, "--analyze-only", "--workers", "2", cache=folder / f"o1_{i}").wall_s
                                  for i in range(2))
    start = time.perf_counter()
    tk(*scripts, "--analyze-only", "--workers", "2", cache=folder / "oN")
    dask_s = time.perf_counter() - start
    single_s = statistics.median(tk(*one, "--analyze-only", cache=folder / f"so1_{i}").wall_s for i in range(2))
    start = time.perf_counter()
    tk(*scripts, "--analyze-only", cache=folder / "soN")
    serial_s = time.perf_counter() - start
    n = args.overhead
    print(f"{n} trivial scripts: --workers 2 {dask_s:.1f} s (one script: {cluster_s:.1f} s) → "
          f"{(dask_s - cluster_s) / (n - 1) * 1e3:.0f} ms per task of wall time with 2 workers "
          f"(≈ {2 * (dask_s - cluster_s) / (n - 1) * 1e3:.0f} ms of a worker per task)")
    print(f"{n} trivial scripts: serial {serial_s:.1f} s (one script: {single_s:.1f} s) → "
          f"{(serial_s - single_s) / (n - 1) * 1e3:.0f} ms per script")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--speedup", action="store_true")
    parser.add_argument("--scripts", type=int, default=40)
    parser.add_argument("--overhead", type=int, default=0, metavar="N")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--noise-s", type=float, default=15.0)
    args = parser.parse_args()
    if not (args.latency or args.speedup or args.overhead):
        args.latency = True
    with tempfile.TemporaryDirectory(prefix="tk_corpus_") as tmp:
        folder = Path(tmp)
        if args.latency:
            latency(args, folder)
        if args.speedup:
            speedup(args, folder)
        if args.overhead:
            overhead(args, folder)


if __name__ == "__main__":
    main()
