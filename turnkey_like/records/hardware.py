"""The machine a figure belongs to: a hardware profile's peaks (:class:`HardwareProfile`), and how
quiet the machine was while something was measured (:class:`MachineLoad`) with the spread of the
repeated measurements (:class:`Spread`).

Units: FLOP/s and bytes/s for peaks, bytes, seconds (``*_s``), milliseconds (``*_ms``).
"""

from __future__ import annotations

from turnkey_like.records.base import Record


class Spread(Record):
    """The spread of repeated measurements of one figure, in the figure's unit.

    Quartiles are linear interpolations between the sorted values (``statistics.quantiles(...,
    method="inclusive")``, the same as numpy's default percentiles); built by
    ``turnkey_like.stats.spread``.

    Attributes:
        runs: how many values.
        min, q1, median, q3, max: the smallest value, the quartiles, the largest.
        iqr: ``q3 - q1``, the interquartile range.
        rel_iqr: ``iqr / median`` (``None`` when the median is 0).
    """

    runs: int
    min: float
    q1: float
    median: float
    q3: float
    max: float
    iqr: float
    rel_iqr: float | None = None


class MachineLoad(Record):
    """How busy the machine was while something was measured, and whether that could have moved it.

    Built by ``turnkey_like.system.machine_load`` (the rule, its threshold and why: see there and
    docs/hardware.md).

    Attributes:
        window: what the window covered (``timed loop``, ``warm-up and timed loop``, ``measurement``,
            ``idle check``).
        window_s: its wall time, s.
        load_avg_1min: the 1-minute load average when the window opened (``os.getloadavg``; it counts
            runnable threads, tk's own included, and lags by about a minute); ``None`` where the OS
            has none.
        other_cpu_s: CPU seconds every other process used during the window: the machine's busy CPU
            time (``psutil.cpu_times``: user + nice + system + irq + softirq + steal) minus the
            measuring process's own (``psutil.Process().cpu_times``: user + system, all its threads);
            never below 0.
        other_cores: ``other_cpu_s / window_s``: how many cores the other processes kept busy.
        resolution_cores: what the counters cannot tell apart over this window, in cores: the kernel
            counts CPU time in clock ticks, so ``(cores + 6)`` ticks ÷ ``window_s``
            (``turnkey_like.system.resolution_ticks``).
        cores: logical cores of the machine.
        threads: cores the measurement kept busy: its threads, at most ``cores``.
        threshold_cores: ``CONTENTION_SHARE`` × ``threads``: other processes' use above this could
            have moved the figure.
        busy: ``other_cores - resolution_cores > threshold_cores``.
        attempts: measurements made before this one was kept (retries while busy included).
        waited_s: seconds spent waiting for a quieter machine.
        note: one line saying so with the figures when ``busy``
            (``other processes used 1.4 cores during the timed loop (load 6.6)``), else ``None``.
    """

    window: str
    window_s: float
    other_cpu_s: float
    other_cores: float
    resolution_cores: float
    cores: int
    threads: int
    threshold_cores: float
    busy: bool
    load_avg_1min: float | None = None
    attempts: int = 1
    waited_s: float = 0.0
    note: str | None = None


class HardwareProfile(Record):
    """Peak compute and memory bandwidth of one device (the roofline's two roofs).

    Attributes:
        name: short key used on the command line (``a100``, ``h100``, ``local``, ...).
        description: full device name.
        peak_flops: dense peak per dtype in FLOP/s (``int8`` and ``int4`` in op/s); keys ``float32``,
            ``float16``, ``bfloat16``, ``int8``, and ``float8`` / ``int4`` where the datasheet gives
            them (a device without the key has no such math units).
        memory_bandwidth: peak (or measured, for ``local``) memory bandwidth in bytes/s.
        memory_bytes: memory size, bytes: the GPU's memory, the most a CPU socket supports
            (datasheets), or this machine's RAM (``local``); ``None`` when not known.
        interconnect_bandwidth: bytes/s one device sends to its peers in one direction (NVLink for
            GPUs; what tensor parallelism's all-reduces move at); ``None`` when not known.
        sources: per value (``peak_flops.float32``, ``memory_bandwidth``, ``memory_bytes``, ...) the
            document it comes from and how it was derived.
        url: where the datasheet can be read (datasheet profiles); ``""`` for measured ones.
        notes: caveats (TF32, sparsity, clock assumptions).
        measured: True for profiles measured on this machine, False for datasheet profiles.
        threads: torch threads used when the profile was measured (``local`` only).
        measured_at: when it was measured, ISO-8601 UTC (``local`` only; ``None`` for profiles
            measured by a tk that did not record it).
        load: how busy the machine was during the measurement kept (``local`` only).
        flops_spread: FLOP/s of each timed repeat of the matmul (``local`` only; the peak is the best).
        bandwidth_spread: bytes/s of each timed repeat of the copy (``local`` only; the peak is the best).
        warnings: what makes the measured peaks doubtful (measured while the machine was busy, repeats
            spread widely), one line each; every view of the profile repeats them.
    """

    name: str
    description: str
    peak_flops: dict[str, float]
    memory_bandwidth: float
    memory_bytes: int | None = None
    sources: dict[str, str] = {}
    url: str = ""
    notes: str = ""
    measured: bool = False
    threads: int | None = None
    measured_at: str | None = None
    load: MachineLoad | None = None
    flops_spread: Spread | None = None
    bandwidth_spread: Spread | None = None
    warnings: list[str] = []
    interconnect_bandwidth: float | None = None

    def peak(self, dtype: str | None) -> float:
        """Return the peak FLOP/s for ``dtype`` (numpy-style name).

        Dtypes without an entry (``float64``, ``int64``, ``bool``, ...) fall back to the ``float32``
        peak: such ops are rare in inference graphs and almost always memory-bound, so the fallback
        only matters for their compute-time term.
        """
        value = self.peak_flops.get(dtype) if dtype else None
        return float(value) if value else float(self.peak_flops["float32"])

    def ridge_point(self, dtype: str | None = "float32") -> float:
        """Return the ridge point in FLOPs/byte: peak FLOP/s ÷ memory bandwidth (Williams et al., 2009).

        An op whose arithmetic intensity is at or above the ridge point is compute-bound here.
        """
        return self.peak(dtype) / self.memory_bandwidth
