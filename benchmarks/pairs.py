"""Interleaved A/B pairs: the one way every script under ``benchmarks/`` measures a ratio.

A ratio of two medians taken minutes apart drifts with the machine's load (a shared 2-core machine
printed 0.75 for a case that is 1.0). Here A and B run back to back in each pair, the order
alternating (AB, BA, AB, ...) so neither always runs on a warmer cache, and the ratio is taken
within each pair; the median of those per-pair ratios is the figure, printed with the smallest and
largest pair and the load average, so a reader can judge the noise.

    from pairs import interleaved_pairs, print_pairs
    stats = interleaved_pairs(lambda: run_plain(), lambda: run_tk(), pairs=7)
    print_pairs("resnet50: tk / python", stats)

Each callable runs one A (or B) and returns its time in seconds (or ``None`` to have the call timed
with ``time.perf_counter`` around it). A callable may return any other per-run measure in place of
seconds (CPU seconds, a mean latency measured inside the run): the ratio is then of those measures.

The load average printed is the 1-minute average of ``os.getloadavg`` (runnable processes, this
benchmark's own included: one busy single-threaded run alone reads about 1.0) sampled before the
first pair and after each pair, shown as ``first→last (max M) on N CPUs``. Read it against the CPU
count: on 2 CPUs a load of 3 means the runs shared the cores with other work.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class PairStats:
    """Times (s) of A and B per pair, in run order, and the load averages around the runs.

    Attributes:
        a, b: seconds (or the callables' own measure) of each run of A and B; ``a[i]`` and ``b[i]``
            form pair ``i``.
        a_first: per pair, whether A ran first (``True`` for pairs 0, 2, 4, ...).
        load_before, load_after: the 1-minute load average before the first and after the last pair.
        loads: the 1-minute load average after each pair (``len(loads) == len(a)``).
    """

    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    a_first: list[bool] = field(default_factory=list)
    load_before: float = 0.0
    load_after: float = 0.0
    loads: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """B ÷ A within each pair (pairs whose A is not positive are left out)."""
        return [b / a for a, b in zip(self.a, self.b) if a > 0]

    @property
    def ratio(self) -> float:
        """The median per-pair ratio B ÷ A: the figure to report. Raises ValueError with no pairs."""
        ratios = self.ratios
        if not ratios:
            raise ValueError("no pair with a positive A time: no ratio")
        return statistics.median(ratios)

    @property
    def differences(self) -> list[float]:
        """B − A within each pair (same unit as the runs)."""
        return [b - a for a, b in zip(self.a, self.b)]

    @property
    def difference(self) -> float:
        """The median per-pair difference B − A (e.g. the time a hook adds)."""
        return statistics.median(self.differences)

    @property
    def a_median(self) -> float:
        return statistics.median(self.a)

    @property
    def b_median(self) -> float:
        return statistics.median(self.b)

    @property
    def load_max(self) -> float:
        """The highest 1-minute load average seen before or after any pair."""
        return max([self.load_before, self.load_after, *self.loads])


def load_average() -> float:
    """The 1-minute load average (0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _timed(fn: Callable[[], float | None]) -> float:
    start = time.perf_counter()
    value = fn()
    return value if value is not None else time.perf_counter() - start


def interleaved_pairs(run_a: Callable[[], float | None], run_b: Callable[[], float | None], pairs: int = 7,
                      warmup: int = 1) -> PairStats:
    """Run A and B ``pairs`` times each, back to back, alternating which goes first.

    Pair ``i`` runs A then B when ``i`` is even, B then A when odd; the warm-up pairs run A then B.

    Args:
        run_a, run_b: one run each; return seconds (or another per-run measure), or ``None`` to be
            timed around the call with ``time.perf_counter``.
        pairs: timed pairs (at least 1).
        warmup: untimed pairs first (caches, lazy imports, the OS page cache).

    Returns:
        :class:`PairStats`.

    Raises:
        Whatever a run raises (a failed run is not a time).
    """
    for _ in range(warmup):
        run_a()
        run_b()
    stats = PairStats(load_before=load_average())
    for i in range(max(pairs, 1)):
        a_first = i % 2 == 0
        if a_first:
            a = _timed(run_a)
            b = _timed(run_b)
        else:
            b = _timed(run_b)
            a = _timed(run_a)
        stats.a.append(a)
        stats.b.append(b)
        stats.a_first.append(a_first)
        stats.loads.append(load_average())
    stats.load_after = stats.loads[-1]
    return stats


@dataclass
class CommandRun:
    """One finished command: wall seconds, CPU seconds (user + system, the child and what it waited
    for, from ``getrusage(RUSAGE_CHILDREN)``) and its captured output."""

    wall_s: float
    cpu_s: float
    stdout: str
    stderr: str


def run_timed(cmd: list[str], *, cwd=None, env=None, timeout: float | None = None) -> CommandRun:
    """Run a whole command and measure it (see :class:`CommandRun`).

    The CPU time is the difference of this process's ``RUSAGE_CHILDREN`` around the run, so it is
    exact only while no other child of this process ends meanwhile (the benchmarks run one at a time).
    CPU time is far less disturbed than wall time by other processes on a shared machine.

    Raises:
        RuntimeError: the command exited non-zero (its exit code and the tails of its output in the
            message).
        subprocess.TimeoutExpired: it ran past ``timeout`` seconds.
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return CommandRun(wall_s=elapsed, cpu_s=cpu, stdout=proc.stdout, stderr=proc.stderr)


def run_command(cmd: list[str], *, cwd=None, env=None, timeout: float | None = None) -> float:
    """Run a whole command; return its wall time in seconds (:func:`run_timed` for CPU time too).

    Raises:
        RuntimeError: the command exited non-zero (its exit code and the tails of its output in the
            message).
        subprocess.TimeoutExpired: it ran past ``timeout`` seconds.
    """
    return run_timed(cmd, cwd=cwd, env=env, timeout=timeout).wall_s


def format_load(stats: PairStats) -> str:
    """``load 1.20→1.45 (max 2.10) on 2 CPUs``: 1-minute load averages around the pairs."""
    return (f"load {stats.load_before:.2f}→{stats.load_after:.2f} (max {stats.load_max:.2f}) "
            f"on {cpu_count()} CPUs")


def format_pairs(label: str, stats: PairStats, unit: str = "s", scale: float = 1.0) -> str:
    """One line: ``label: ratio 1.040 (median of 7 interleaved pairs; min 0.980, max 1.120) ·
    A 4.51 s, B 4.69 s (medians) · load 1.20→1.45 (max 2.10) on 2 CPUs``.

    ``scale`` multiplies the A and B medians for display in ``unit`` (e.g. ``1e3`` and ``"ms"``).
    """
    ratios = stats.ratios
    return (f"{label}: ratio {stats.ratio:.3f} (median of {len(ratios)} interleaved pairs; "
            f"min {min(ratios):.3f}, max {max(ratios):.3f}) · A {stats.a_median * scale:.4g} {unit}, "
            f"B {stats.b_median * scale:.4g} {unit} (medians) · {format_load(stats)}")


def print_pairs(label: str, stats: PairStats, unit: str = "s", scale: float = 1.0) -> None:
    """Print :func:`format_pairs`."""
    print(format_pairs(label, stats, unit, scale), flush=True)
