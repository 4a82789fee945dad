"""Real busy processes for the tests that check tk notices a busy machine.

:func:`busy_processes` starts Python processes that spin on the CPU (``while True: pass``) and kills
them, each by its own pid, when the block ends. Nothing is mocked: tk sees them through the kernel's
CPU-time counters as it would see any other program.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time


def busy_count() -> int:
    """How many spinning processes make any machine busy for a one-thread measurement: one per core
    up to 4 (4 cores of other work is beyond the counters' resolution even on a 64-core machine over
    half a second)."""
    return min(os.cpu_count() or 1, 4)


@contextlib.contextmanager
def busy_processes(n: int | None = None):
    """Run ``n`` (default :func:`busy_count`) spinning processes for the duration of the block; yields
    their ``subprocess.Popen`` objects. They are started before the block runs (and given a moment to
    reach the CPU) and killed, then reaped, when it ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n or busy_count())]
    try:
        time.sleep(0.3)
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=30)
