"""Why the counter attributes ops to modules with forward hooks, not ``ModuleTracker``.

Counts the same models with the counter as it is (a stack kept by global forward pre/post hooks,
``turnkey_like.characterize.counter``) and with ``torch.utils.module_tracker.ModuleTracker`` (the
innermost module taken as the longest name in ``ModuleTracker.parents``), and prints:

- the module paths each gives for a submodule shared by two parents (tests/zoo.py ``shared_child``:
  one ``Linear`` registered as ``a.lin`` and ``b.lin``, called under ``a`` then ``b``);
- CPU time of one counted call (this process, all threads; 1 torch thread by default), minimum and
  median of interleaved runs, for ResNet-50 (b1, 224) and an MLP of 8 x Linear(64, 64) + ReLU (b8),
  under ``no_grad`` and with grad enabled.

Usage: ``python benchmarks/module_attribution.py [--threads 1] [--runs 15]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=15, help="interleaved runs for ResNet-50 (MLP: 10x more)")
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
    cases = (("ResNet-50 b1 224", resnet, (torch.randn(1, 3, 224, 224),), args.runs),
             ("MLP 8 x Linear(64, 64) b8", mlp, (torch.randn(8, 64),), 10 * args.runs))
    print(f"CPU time of one counted call, {torch.get_num_threads()} thread(s), min / median of interleaved runs:")
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            for name, model, inputs, runs in cases:
                times = {"hooks": [], "ModuleTracker": []}
                with_hooks(model, inputs), with_tracker(model, inputs)
                for _ in range(runs):
                    for key, fn in (("hooks", with_hooks), ("ModuleTracker", with_tracker)):
                        c0 = time.process_time()
                        fn(model, inputs)
                        times[key].append(time.process_time() - c0)
                h, t = min(times["hooks"]), min(times["ModuleTracker"])
                print(f"  {name}, grad {'on ' if grad else 'off'}: hooks {h * 1e3:.2f} / "
                      f"{statistics.median(times['hooks']) * 1e3:.2f} ms, ModuleTracker {t * 1e3:.2f} / "
                      f"{statistics.median(times['ModuleTracker']) * 1e3:.2f} ms ({(t / h - 1) * 100:+.0f}%)")


if __name__ == "__main__":
    main()
