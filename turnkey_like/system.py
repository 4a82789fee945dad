"""Facts about the machine and software a result was measured with, and how busy the machine was.

Every evaluation record carries :func:`system_info` so results from different machines can be told
apart and compared (see the cache and report).

How busy (:func:`machine_load`): the CPU time every *other* process used while something was
measured, from the kernel's counters through psutil (the machine's busy CPU time minus the measuring
process's own), with the load average. A measurement is *busy* when the other processes kept more
than :data:`CONTENTION_SHARE` of the cores it used busy, beyond what the counters can resolve.
:func:`least_busy` waits for a quieter machine and measures again, within a time bound, and keeps
the least disturbed measurement. docs/hardware.md explains the rule and where it comes from.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from turnkey_like.records import MachineLoad

T = TypeVar("T")

#: Other processes' CPU use, as a share of the cores a measurement keeps busy, above which it could
#: have moved the figure: if it all came out of the measurement's cores, the measurement lost that
#: share of its CPU time, and pyperf calls a benchmark whose std dev reaches 10% of its mean unstable
#: (``pyperf check``; docs/hardware.md).
CONTENTION_SHARE = 0.10
#: how long one look at the machine lasts while waiting for it to be quiet, s (long enough that the
#: counters' resolution, a few clock ticks, stays well under the threshold on a small machine)
QUIET_POLL_S = 1.0


def resolution_ticks(cores: int) -> int:
    """How many clock ticks (``SC_CLK_TCK``) of CPU time the counters cannot tell apart over a window:
    one per core (with tick-based accounting each core's time is sampled once per kernel tick), four
    for the machine's changing busy fields (user, system, softirq, steal: each reported truncated to
    whole ticks) and two for this process's user and system time."""
    return cores + 6


#: the CPU-time counters that mean "busy" (psutil.cpu_times fields; guest time is inside user on Linux)
_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal", "interrupt", "dpc")


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """Return the CPU model name, e.g. ``AMD EPYC 7B13`` (``unknown CPU`` if it cannot be read).

    Reads ``/proc/cpuinfo`` on Linux (instant); elsewhere asks py-cpuinfo, which takes about a second.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        import cpuinfo

        return cpuinfo.get_cpu_info().get("brand_raw") or "unknown CPU"
    except Exception:  # noqa: BLE001 - a missing name must never fail a run
        return platform.processor() or "unknown CPU"


def package_version(name: str) -> str | None:
    """Return the installed version of a distribution, or ``None`` when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def system_info() -> dict:
    """Return the machine and software facts recorded with every evaluation.

    Keys: ``os``, ``cpu``, ``cores_physical``, ``cores_logical``, ``memory_gb``, ``python``, ``torch``,
    ``torchvision``, ``onnx``, ``onnxruntime``, ``transformers``, ``tk`` (versions are ``None`` when not
    installed), and ``gpu`` (list of CUDA device names, empty when none is visible to torch).
    """
    import psutil

    from turnkey_like import __version__

    gpus: list[str] = []
    if "torch" in sys.modules:  # never import torch (or initialise CUDA) just to describe the machine
        torch = sys.modules["torch"]
        try:
            if torch.cuda.is_available():
                gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception:  # noqa: BLE001
            gpus = []
    ort_version = package_version("onnxruntime") or package_version("onnxruntime-gpu")
    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu_name(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_logical": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "torchvision": package_version("torchvision"),
        "onnx": package_version("onnx"),
        "onnxruntime": ort_version,
        "transformers": package_version("transformers"),
        "tk": __version__,
        "gpu": gpus,
    }


# --------------------------------------------------------------------------------------------------
# How busy the machine is
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSample:
    """The counters :func:`machine_load` compares, read at one instant (:func:`cpu_sample`).

    Attributes:
        wall_s: ``time.perf_counter()``, s.
        busy_s: CPU seconds the whole machine has spent busy since boot (all cores).
        own_s: CPU seconds this process has used (user + system, all its threads).
        load_avg_1min: the 1-minute load average, ``None`` where the OS has none.
    """

    wall_s: float
    busy_s: float
    own_s: float
    load_avg_1min: float | None


def cpu_sample() -> CpuSample:
    """Read the machine's and this process's CPU-time counters (psutil) and the load average."""
    import psutil

    machine = psutil.cpu_times()
    own = psutil.Process().cpu_times()
    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return CpuSample(wall_s=time.perf_counter(),
                     busy_s=sum(getattr(machine, name, 0.0) for name in _BUSY_FIELDS),
                     own_s=own.user + own.system, load_avg_1min=load)


def _clock_tick_s() -> float:
    """The kernel's CPU-time accounting unit, s (``SC_CLK_TCK``, 100 per second on Linux)."""
    try:
        return 1.0 / os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 0.01


def busy_note(load: MachineLoad) -> str | None:
    """The one line a busy measurement carries, with its figures, else ``None``:
    ``other processes used 1.4 of 2 cores during the timed loop (load 6.6)``, and when tk waited for
    a quieter machine, ``; still busy after waiting 30 s (2 attempts)``."""
    if not load.busy:
        return None
    note = f"other processes used {load.other_cores:.1f} of {load.cores} cores during the {load.window}"
    if load.load_avg_1min is not None:
        note += f" (load {load.load_avg_1min:.1f})"
    if load.waited_s > 0 or load.attempts > 1:
        tries = "1 attempt" if load.attempts == 1 else f"{load.attempts} attempts"
        note += f"; still busy after waiting {load.waited_s:.0f} s ({tries})"
    return note


def machine_load(start: CpuSample, end: CpuSample, *, threads: int | None, window: str) -> MachineLoad:
    """How busy the machine was between two samples taken by the measuring process.

    Args:
        start, end: :func:`cpu_sample` before and after the window, in the process that measured.
        threads: the threads the measurement ran (``None``: 1); it kept at most this many cores busy.
        window: what the window covered, for the note (``timed loop``, ``measurement``).

    The rule: other processes' CPU time = the machine's busy time − this process's own (never below
    0), in cores = ÷ the window's wall time. Busy when that exceeds :data:`CONTENTION_SHARE` × the
    cores the measurement used, by more than the counters' resolution, :func:`resolution_ticks`.
    """
    from turnkey_like.records import MachineLoad

    cores = os.cpu_count() or 1
    used = max(1, min(threads or 1, cores))
    wall = max(end.wall_s - start.wall_s, 1e-9)
    other = max(0.0, (end.busy_s - start.busy_s) - (end.own_s - start.own_s))
    resolution = resolution_ticks(cores) * _clock_tick_s() / wall
    threshold = CONTENTION_SHARE * used
    load = MachineLoad(window=window, window_s=wall, other_cpu_s=other, other_cores=other / wall,
                       resolution_cores=resolution, cores=cores, threads=used, threshold_cores=threshold,
                       busy=other / wall - resolution > threshold, load_avg_1min=start.load_avg_1min)
    return _with_note(load)


def _with_note(load: MachineLoad) -> MachineLoad:
    import msgspec

    return msgspec.structs.replace(load, note=busy_note(load))


def idle_load(seconds: float, threads: int | None) -> MachineLoad:
    """How busy the *other* processes keep the machine while this one sleeps for ``seconds``."""
    start = cpu_sample()
    time.sleep(seconds)
    return machine_load(start, cpu_sample(), threads=threads, window="idle check")


def wait_for_quiet(max_s: float, threads: int | None, poll_s: float = QUIET_POLL_S) -> tuple[bool, float]:
    """Wait, in looks of ``poll_s`` seconds (:func:`idle_load`), until the other processes' CPU use
    is below the threshold for a measurement on ``threads``: at most ``max_s // poll_s`` looks.

    Returns ``(quiet, seconds waited)``; ``quiet`` is False when no look found the machine quiet (or
    ``max_s`` leaves no time for one).
    """
    start = time.perf_counter()
    for _ in range(int(max_s // poll_s)):
        if not idle_load(poll_s, threads).busy:
            return True, time.perf_counter() - start
    return False, time.perf_counter() - start


def least_busy(measure: Callable[[], tuple[T, MachineLoad]], *, threads: int | None,
               wait_s: float, until: float | None = None) -> tuple[T, MachineLoad]:
    """Measure while the machine is quiet, if it gets quiet within ``wait_s`` seconds.

    ``measure()`` returns ``(figures, load)``, ``load`` from :func:`machine_load` over its own window.
    With ``wait_s`` 0: one measurement, kept whatever the load. Otherwise: wait for a quiet machine
    (:func:`wait_for_quiet`), measure; while that measurement was busy and the time left allows a
    look, wait again and measure again when a look finds the machine quiet. The measurement whose
    other processes used the fewest cores is kept; its load records the attempts made and the
    seconds waited (and its note says so when it is still busy). Waiting stops at ``wait_s``; a
    measurement started before then runs to its end. ``until`` (a ``time.perf_counter()`` time, e.g.
    before a time limit kills the measuring process): no measurement is retried unless one more as
    long as the last ends before it.
    """
    import msgspec

    start = time.perf_counter()
    waited = 0.0

    def look(max_s: float) -> bool:
        nonlocal waited
        quiet, seconds = wait_for_quiet(max_s, threads)
        waited += seconds
        return quiet

    def room() -> bool:
        left = wait_s - (time.perf_counter() - start)
        fits = until is None or time.perf_counter() + QUIET_POLL_S + last_s <= until
        return left >= QUIET_POLL_S and fits

    if wait_s > 0:
        look(wait_s)
    t0 = time.perf_counter()
    best, best_load = measure()
    last_s, attempts = time.perf_counter() - t0, 1
    while best_load.busy and room() and look(wait_s - (time.perf_counter() - start)) \
            and (until is None or time.perf_counter() + last_s <= until):
        t0 = time.perf_counter()
        figures, load = measure()
        last_s = time.perf_counter() - t0
        attempts += 1
        if load.other_cores < best_load.other_cores:
            best, best_load = figures, load
    return best, _with_note(msgspec.structs.replace(best_load, attempts=attempts, waited_s=round(waited, 3)))


def system_record():
    """Return :func:`system_info` as the typed record every evaluation carries
    (:class:`~turnkey_like.records.SystemInfo`; a fresh copy, which a Dask worker then stamps)."""
    from turnkey_like.records import SystemInfo, convert

    return convert(system_info(), SystemInfo, what="system facts")
