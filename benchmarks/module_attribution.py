"""Why the counter attributes ops to modules with forward hooks, not ``ModuleTracker``.

Counts the same models with the counter as it is (a stack kept by global forward pre/post hooks,
``turnkey_like.characterize.counter``) and with ``torch.utils.module_tracker.ModuleTracker`` (the
innermost module taken as the longest name in ``ModuleTracker.parents``), and prints:

- the module paths each gives for a submodule shared by two parents (tests/zoo.py ``shared_child``:
  one ``Linear`` registered as ``a.lin`` and ``b.lin``, called under ``a`` then ``b``);
- CPU time of one counted call (this process, all threads; 1 torch thread by default) with each, as
  interleaved pairs (``benchmarks/pairs.py``: hooks then ModuleTracker, then the other way round, ...):
  the median of the per-pair ratios ModuleTracker ÷ hooks with the smallest and largest pair, the
  median CPU time of each and the 1-minute load average, for ResNet-50 (b1, 224) and an MLP of
  8 x Linear(64, 64) + ReLU (b8), under ``no_grad`` and with grad enabled.

Usage: ``python benchmarks/module_attribution.py [--threads 1] [--pairs 15]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from pairs import interleaved_pairs, print_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", "--runs", type=int, default=15,
                        help="interleaved pairs for ResNet-50 (MLP: 10x more)")
    args = parser.parse_args()

    import torch
    import torch.nn as nn
    import torchvision
    from torch.utils.module_tracker import ModuleTracker

    from turnkey_like.characterize import counter as C
    from zoo import build

    torch.set_num_threads(args.threads)

    class TrackerCounter(C._Counter):
        """The counter with the module path of each op read from ModuleTracker."""

        def __init__(self, root):
            super().__init__(root)
            self.tracker = ModuleTracker()
            self.prefix = type(root).__name__

        def record(self, func, info, a, k, out):
            parents = self.tracker.parents
            best = max(parents, key=len) if parents else "Global"
            path = "" if best in ("Global", self.prefix) else best[len(self.prefix) + 1:]
            self.stack[:] = [(0, path, "?")]
            return super().record(func, info, a, k, out)

    def with_tracker(model, inputs):
        counter = TrackerCounter(model)
        with counter.tracker, C._CountingMode(counter):
            model(*inputs)
        return counter.finish()

    def with_hooks(model, inputs):
        return C.count_model(model, inputs)

    model, inputs, _, _ = build("shared_child")
    for name, fn in (("hooks", with_hooks), ("ModuleTracker", with_tracker)):
        paths = [r.module_path for r in fn(model, inputs).rows if r.category == "matmul"]
        print(f"shared_child, {name:13s}: {paths}  (called under a, then b)")

    resnet = torchvision.models.resnet50(weights=None).eval()
    mlp = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.ReLU()) for _ in range(8)]).eval()
    cases = (("ResNet-50 b1 224", resnet, (torch.randn(1, 3, 224, 224),), args.pairs),
             ("MLP 8 x Linear(64, 64) b8", mlp, (torch.randn(8, 64),), 10 * args.pairs))
    print(f"CPU time of one counted call, {torch.get_num_threads()} thread(s): ModuleTracker ÷ hooks, "
          f"median of interleaved pairs (A = hooks, B = ModuleTracker):")

    def cpu_time(fn, model, inputs):
        def one() -> float:
            c0 = time.process_time()
            fn(model, inputs)
            return time.process_time() - c0
        return one

    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            for name, model, inputs, pairs in cases:
                stats = interleaved_pairs(cpu_time(with_hooks, model, inputs), cpu_time(with_tracker, model, inputs),
                                          pairs=pairs, warmup=2)
                print_pairs(f"  {name}, grad {'on ' if grad else 'off'}", stats, unit="ms", scale=1e3)


if __name__ == "__main__":
    main()
