"""What does it cost to start an input's child process, by start method?

tk runs every input (script, ``.onnx`` file, ``--model``) in a child process of its own (issue 9).
The child needs ``torch`` imported. Three ways to get one, timed from "start" to the child's first
message back (it has imported torch and built a small model):

- ``fork``: forked from this process, which has already imported torch (what tk does:
  ``launcher.StreamingChild``);
- ``forkserver``: multiprocessing's fork server with ``torch`` preloaded (its first start pays for
  the server; later ones fork from it);
- ``spawn``: a fresh interpreter that imports torch itself (what a process pool without fork does).

Printed as interleaved pairs (``benchmarks/pairs.py``) of fork against each of the others, with the
load average.

    python benchmarks/isolation_start.py [--pairs 9]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pairs import interleaved_pairs, print_pairs  # noqa: E402


def _child(conn) -> None:
    import torch

    model = torch.nn.Linear(8, 8)
    conn.send(model.weight.shape[0])
    conn.close()


def _streaming_child(send) -> None:
    import torch

    from turnkey_like.records import Output

    send(Output(stream="stdout", text=str(torch.nn.Linear(8, 8).weight.shape[0])))


def start_with(method: str):
    """A run that starts one child with ``method`` and waits for its first message (seconds)."""
    ctx = multiprocessing.get_context(method)

    def run() -> float:
        start = time.perf_counter()
        reader, writer = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_child, args=(writer,))
        process.start()
        writer.close()
        reader.recv()
        elapsed = time.perf_counter() - start
        process.join()
        return elapsed

    return run


def start_streaming_child() -> float:
    """tk's own path: ``launcher.StreamingChild`` (fork, own process group, output pipes)."""
    from turnkey_like.launcher import StreamingChild

    start = time.perf_counter()
    with StreamingChild(_streaming_child) as child:
        child.receive(60)
        elapsed = time.perf_counter() - start
        child.wait()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=9)
    args = parser.parse_args()
    import torch  # noqa: F401 - the parent has torch imported, as tk's does

    multiprocessing.set_forkserver_preload(["torch"])
    print(f"start of an input's child, to its first message (torch imported, a model built); "
          f"median of {args.pairs} interleaved pairs")
    for other in ("forkserver", "spawn"):
        stats = interleaved_pairs(start_streaming_child, start_with(other), pairs=args.pairs, warmup=1)
        print_pairs(f"  {other} ÷ tk's fork (StreamingChild)", stats, unit="ms", scale=1e3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
