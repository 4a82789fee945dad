"""Hardware profiles: peak FLOP/s per dtype and memory bandwidth, for the roofline model.

A :class:`HardwareProfile` holds the two numbers a roofline needs (peak arithmetic throughput and
memory bandwidth), the memory size, and the document each value comes from. Built-in profiles are
taken from vendor datasheets; ``local`` ("this machine") is measured by a short micro-benchmark and
kept in the cache root, with when it was measured, how busy the machine was (other processes' CPU
use, the load average) and the spread of the repeats. A measurement the machine's other processes
could have disturbed carries a warning (``HardwareProfile.warnings``); ``tk hardware measure`` waits
for a quieter machine and measures again (docs/hardware.md).

Conventions:
- FLOP/s are *dense* peaks (no 2:4 structured sparsity); datasheets that print the sparse figure
  are halved and say so in the source.
- For GPUs, ``float32`` is the CUDA-core (non tensor core) FP32 peak. Matmuls that PyTorch runs with
  TF32 enabled (``torch.backends.cuda.matmul.allow_tf32``) can go faster; the TF32 tensor-core peak is
  in ``notes``. This keeps FP32 estimates honest for code that does not enable TF32.
- ``int8`` and ``int4`` are in integer operations per second (1 multiply-accumulate = 2 ops), as
  datasheets count.
- ``float8`` and ``int4`` appear only where the datasheet gives a figure: a profile without the key has
  no such math units (A100: no FP8; H100: no INT4), and a what-if that asks for them runs at the next
  wider dtype the profile has (``turnkey_like.characterize.generation_whatif``).
- ``interconnect_bandwidth`` is what one GPU sends to its peers in one direction over NVLink (the
  datasheets' NVLink figure counts both directions); CPU profiles have none.
- 1 MAC = 2 FLOPs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from turnkey_like.errors import InputError
from turnkey_like.records import HardwareProfile, MachineLoad, RecordError, decode, now_utc
from turnkey_like.stats import WIDE_SPREAD

DTYPES = ("float32", "float16", "bfloat16", "int8")
#: dtypes some profiles add, where the datasheet gives them (a what-if's 8- and 4-bit math)
NARROW_DTYPES = ("float8", "int4")

LOCAL = "local"

#: seconds ``tk hardware measure`` waits, at most, for a quieter machine (see :func:`measure_local`)
QUIET_WAIT_S = 30.0
#: seconds of timed repeats per measurement (half matmul, half copy)
MEASURE_BUDGET_S = 4.0
#: repeats whose interquartile range exceeds this share of their median make the profile warn
#: (:data:`turnkey_like.stats.WIDE_SPREAD`; docs/hardware.md)
SPREAD_WARNING = WIDE_SPREAD
#: HBM and DRAM capacities are whole powers of two per die, so a "80GB" GPU holds 80 GiB
_GIB = 2**30

_A100_DS = "NVIDIA A100 Tensor Core GPU Datasheet (NVIDIA, 2021), column 'A100 80GB SXM'"
_A100_WP = "NVIDIA A100 Tensor Core GPU Architecture whitepaper (NVIDIA, 2020), Table 1"
_H100_DS = "NVIDIA H100 Tensor Core GPU Datasheet (NVIDIA, 2023), column 'H100 SXM'"
_EPYC_DS = "AMD EPYC 9654 product specifications (amd.com) / AMD EPYC 9004 Series Processors data sheet"
_ZEN4_SOG = "Software Optimization Guide for the AMD Zen4 Microarchitecture (AMD pub. 57647)"
_SPR_ARK = "Intel ARK: Intel Xeon Platinum 8480+ Processor (105M Cache, 2.00 GHz) specifications"
_INTEL_OPT = "Intel 64 and IA-32 Architectures Optimization Reference Manual (AMX and AVX-512 chapters)"

BUILTIN: dict[str, HardwareProfile] = {
    "a100": HardwareProfile(
        name="a100",
        description="NVIDIA A100 SXM 80GB",
        peak_flops={"float32": 19.5e12, "float16": 312e12, "bfloat16": 312e12, "int8": 624e12, "int4": 1248e12},
        memory_bandwidth=2039e9,
        memory_bytes=80 * _GIB,
        interconnect_bandwidth=300e9,
        sources={
            "peak_flops.float32": f"{_A100_DS}: FP32 19.5 TFLOPS (CUDA cores)",
            "peak_flops.float16": f"{_A100_DS}: FP16 Tensor Core 312 TFLOPS (624 is with sparsity)",
            "peak_flops.bfloat16": f"{_A100_DS}: BFLOAT16 Tensor Core 312 TFLOPS (624 is with sparsity)",
            "peak_flops.int8": f"{_A100_DS}: INT8 Tensor Core 624 TOPS (1248 is with sparsity)",
            "peak_flops.int4": f"{_A100_WP}: Peak INT4 Tensor TOPS 1,248 (2,496 is with sparsity)",
            "peak_flops.float8": f"{_A100_DS}: no FP8 Tensor Core figure (FP8 tensor cores arrived with "
            "Ada and Hopper); no float8 peak",
            "interconnect_bandwidth": f"{_A100_DS}: NVLink 600GB/s, both directions (12 links x 25 GB/s "
            "each way): 300 GB/s each way",
            "memory_bandwidth": f"{_A100_DS}: GPU Memory Bandwidth 2,039 GB/s (HBM2e)",
            "memory_bytes": f"{_A100_DS}: GPU Memory 80GB HBM2e (binary: 80 GiB)",
        },
        url="https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
            "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf",
        notes="float32 is the non-tensor-core peak; with TF32 matmuls enabled the tensor-core peak is "
        "156 TFLOPS dense (datasheet: TF32 Tensor Core 156 | 312 with sparsity).",
    ),
    "h100": HardwareProfile(
        name="h100",
        description="NVIDIA H100 SXM5 80GB",
        peak_flops={"float32": 67e12, "float16": 989.5e12, "bfloat16": 989.5e12, "int8": 1979e12,
                    "float8": 1979e12},
        memory_bandwidth=3.35e12,
        memory_bytes=80 * _GIB,
        interconnect_bandwidth=450e9,
        sources={
            "peak_flops.float32": f"{_H100_DS}: FP32 67 teraFLOPS (CUDA cores)",
            "peak_flops.float16": f"{_H100_DS}: FP16 Tensor Core 1,979 teraFLOPS with sparsity, halved "
            "for dense = 989.5",
            "peak_flops.bfloat16": f"{_H100_DS}: BFLOAT16 Tensor Core 1,979 teraFLOPS with sparsity, "
            "halved for dense = 989.5",
            "peak_flops.int8": f"{_H100_DS}: INT8 Tensor Core 3,958 TOPS with sparsity, halved for "
            "dense = 1,979",
            "peak_flops.float8": f"{_H100_DS}: FP8 Tensor Core 3,958 teraFLOPS with sparsity, halved for "
            "dense = 1,979",
            "peak_flops.int4": f"{_H100_DS}: no INT4 Tensor Core figure (Hopper's tensor cores have no "
            "INT4 mode); no int4 peak",
            "interconnect_bandwidth": f"{_H100_DS}: NVIDIA NVLink 900GB/s, both directions (18 links x "
            "25 GB/s each way): 450 GB/s each way",
            "memory_bandwidth": f"{_H100_DS}: GPU memory bandwidth 3.35 TB/s (HBM3)",
            "memory_bytes": f"{_H100_DS}: GPU memory 80GB HBM3 (binary: 80 GiB)",
        },
        url="https://www.nvidia.com/en-us/data-center/h100/",
        notes="float32 is the non-tensor-core peak; with TF32 matmuls enabled the tensor-core peak is "
        "494.5 TFLOPS dense (datasheet: 989 with sparsity).",
    ),
    "epyc9654": HardwareProfile(
        name="epyc9654",
        description="AMD EPYC 9654 (Genoa, 96 cores, 1 socket)",
        # 96 cores x 2.4 GHz base x FLOP/cycle/core.
        peak_flops={"float32": 7.3728e12, "float16": 7.3728e12, "bfloat16": 14.7456e12, "int8": 29.4912e12},
        memory_bandwidth=460.8e9,
        memory_bytes=6 * 2**40,
        sources={
            "peak_flops.float32": f"{_EPYC_DS}: 96 cores, 2.4 GHz base; {_ZEN4_SOG}: two 256-bit FMA "
            "pipes (AVX-512 is split into 2x256) = 2 x 8 lanes x 2 FLOPs = 32 FLOP/cycle/core; "
            "96 x 2.4e9 x 32 = 7.37 TFLOP/s",
            "peak_flops.float16": "Zen 4 has no native FP16 arithmetic (no AVX512-FP16); FP16 runs through "
            "FP32 units after conversion, so the FP32 peak is used",
            "peak_flops.bfloat16": f"{_ZEN4_SOG}: AVX512_BF16 VDPBF16PS does 2 BF16 products per FP32 lane "
            "= 64 FLOP/cycle/core; 96 x 2.4e9 x 64 = 14.7 TFLOP/s",
            "peak_flops.int8": f"{_ZEN4_SOG}: AVX512_VNNI VPDPBUSD does 4 int8 MACs per 32-bit lane, "
            "2 pipes x 8 lanes x 4 MACs x 2 ops = 128 op/cycle/core; 96 x 2.4e9 x 128 = 29.5 TOP/s",
            "memory_bandwidth": f"{_EPYC_DS}: 12 channels DDR5-4800, 12 x 4800e6 x 8 bytes = 460.8 GB/s",
            "memory_bytes": f"{_EPYC_DS}: up to 6 TB per socket (the most the part supports; a server has "
            "what its DIMMs hold)",
        },
        url="https://www.amd.com/en/products/processors/server/epyc/4th-generation-9004-and-8004-series/"
            "amd-epyc-9654.html",
        notes="Computed at the 2.4 GHz base clock (all-core AVX clocks vary); 1 socket.",
    ),
    "xeon8480": HardwareProfile(
        name="xeon8480",
        description="Intel Xeon Platinum 8480+ (Sapphire Rapids, 56 cores, 1 socket)",
        # 56 cores x 2.0 GHz base x FLOP/cycle/core.
        peak_flops={"float32": 7.168e12, "float16": 14.336e12, "bfloat16": 114.688e12, "int8": 229.376e12},
        memory_bandwidth=307.2e9,
        memory_bytes=4 * 2**40,
        sources={
            "peak_flops.float32": f"{_SPR_ARK}: 56 cores, 2.00 GHz base; {_INTEL_OPT}: two 512-bit FMA "
            "units = 2 x 16 lanes x 2 FLOPs = 64 FLOP/cycle/core; 56 x 2.0e9 x 64 = 7.17 TFLOP/s",
            "peak_flops.float16": f"{_INTEL_OPT}: AVX512-FP16, 2 x 32 lanes x 2 FLOPs = 128 FLOP/cycle/core;"
            " 56 x 2.0e9 x 128 = 14.3 TFLOP/s (AMX-FP16 arrives with Granite Rapids, not this part)",
            "peak_flops.bfloat16": f"{_INTEL_OPT}: AMX TMUL 1024 BF16 FLOP/cycle/core; 56 x 2.0e9 x 1024 "
            "= 114.7 TFLOP/s",
            "peak_flops.int8": f"{_INTEL_OPT}: AMX TMUL 2048 INT8 op/cycle/core; 56 x 2.0e9 x 2048 "
            "= 229.4 TOP/s",
            "memory_bandwidth": f"{_SPR_ARK}: 8 channels DDR5-4800, 8 x 4800e6 x 8 bytes = 307.2 GB/s",
            "memory_bytes": f"{_SPR_ARK}: Max Memory Size 4 TB (the most the part supports; a server has "
            "what its DIMMs hold)",
        },
        url="https://www.intel.com/content/www/us/en/products/sku/231746/"
            "intel-xeon-platinum-8480-processor-105m-cache-2-00-ghz/specifications.html",
        notes="Computed at the 2.0 GHz base clock (AVX-512/AMX clocks under load are lower); 1 socket.",
    ),
}


def _local_key(threads: int) -> str:
    from turnkey_like.system import cpu_name

    return f"{cpu_name()}|torch_threads={threads}"


def local_profile_path(cache_dir: str | Path | None = None) -> Path:
    """Return where the ``local`` profile is cached: ``<cache root>/hardware/local.json``.

    The cache root is ``turnkey_like.cache.resolve_root(cache_dir)`` (``--cache-dir``, else
    ``$TK_CACHE_DIR``, else ``~/.cache/turnkey_like``).
    """
    from turnkey_like.cache import resolve_root

    return resolve_root(cache_dir) / "hardware" / "local.json"


def _timed_rates(fn: Callable[[], object], work: float, seconds: float) -> list[float]:
    """``work`` ÷ the wall time of each call of ``fn`` after one untimed warm-up call: at least 3
    calls, and more for ``seconds`` seconds (at most 50)."""
    fn()  # warm-up
    rates: list[float] = []
    end = time.perf_counter() + seconds
    while len(rates) < 3 or (time.perf_counter() < end and len(rates) < 50):
        t0 = time.perf_counter()
        fn()
        rates.append(work / max(time.perf_counter() - t0, 1e-12))
    return rates


def _measure_once(budget_s: float, threads: int) -> tuple[tuple[list[float], list[float]], MachineLoad]:
    """One measurement: the matmul's FLOP/s and the copy's bytes/s of each repeat, and how busy the
    machine was meanwhile (:func:`turnkey_like.system.machine_load`, with ``threads`` busy)."""
    import torch

    from turnkey_like.system import cpu_sample, machine_load

    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    src = torch.ones(16 * 2**20)  # 64 MiB
    dst = torch.empty_like(src)
    start = cpu_sample()
    flops = _timed_rates(lambda: torch.mm(a, b, out=out), 2.0 * n**3, budget_s / 2)
    bandwidth = _timed_rates(lambda: dst.copy_(src), 2.0 * src.numel() * 4, budget_s / 2)
    return (flops, bandwidth), machine_load(start, cpu_sample(), threads=threads, window="measurement")


def _warnings(load: MachineLoad, flops: list[float], bandwidth: list[float]) -> list[str]:
    """What makes measured peaks doubtful, one line each with its figure: a busy machine
    (:attr:`MachineLoad.note`), repeats that spread more than :data:`SPREAD_WARNING`."""
    from turnkey_like.stats import relative_iqr

    out = []
    if load.note:
        out.append(f"measured while the machine was busy: {load.note}; peaks may be low "
                   "(`tk hardware measure` measures again)")
    for what, rates in (("matmul FLOP/s", flops), ("copy bytes/s", bandwidth)):
        rel = relative_iqr(rates)
        if rel is not None and rel > SPREAD_WARNING:
            out.append(f"the {what} repeats spread widely: interquartile range {rel:.0%} of the median")
    return out


def measure_local(budget_s: float = MEASURE_BUDGET_S, threads: int | None = None, *,
                  wait_quiet_s: float = 0.0) -> HardwareProfile:
    """Measure this machine: fp32 matmul FLOP/s with torch and stream-copy memory bandwidth.

    Compute: best of repeated 1024x1024 fp32 ``torch.mm`` (2·1024³ FLOPs each, Dongarra-style dense
    matmul peak). Bandwidth: best of repeated copies of a 64 MiB fp32 tensor, counting read + write
    bytes (the STREAM "Copy" kernel convention, McCalpin 1995). Other dtypes are not measured and
    take the fp32 figure (stated in ``sources``). One measurement takes about ``budget_s`` seconds.

    The profile records when it was measured (``measured_at``), the spread of the repeats
    (``flops_spread``, ``bandwidth_spread``) and how busy the machine was (``load``: other
    processes' CPU use and the load average, :func:`turnkey_like.system.machine_load`). With
    ``wait_quiet_s`` > 0, tk first waits for a quiet machine and, while a measurement was busy,
    waits and measures again, for at most ``wait_quiet_s`` seconds, keeping the least disturbed
    measurement (:func:`turnkey_like.system.least_busy`). A measurement still busy, or whose repeats
    spread more than :data:`SPREAD_WARNING`, is kept with ``warnings``.

    ``threads``: torch intra-op threads to measure with (``None``: torch's current setting); torch's
    setting is restored afterwards. The count is recorded in ``HardwareProfile.threads``.
    """
    import psutil
    import torch

    from turnkey_like.stats import spread
    from turnkey_like.system import cpu_name, least_busy

    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
        try:
            return measure_local(budget_s, wait_quiet_s=wait_quiet_s)
        finally:
            torch.set_num_threads(before)
    threads = before
    (flops_rates, bandwidth_rates), load = least_busy(lambda: _measure_once(budget_s, threads),
                                                      threads=threads, wait_s=wait_quiet_s)
    flops, bandwidth = max(flops_rates), max(bandwidth_rates)
    measured_at = now_utc()
    how = f"measured on this machine ({cpu_name()}, {threads} torch threads) by tk on {measured_at}"
    return HardwareProfile(
        name=LOCAL,
        description=f"this machine: {cpu_name()} ({threads} torch threads)",
        peak_flops={"float32": flops, "float16": flops, "bfloat16": flops, "int8": flops},
        memory_bandwidth=bandwidth,
        memory_bytes=int(psutil.virtual_memory().total),
        sources={
            "peak_flops.float32": f"{how}: best of {len(flops_rates)} 1024x1024 fp32 torch.mm",
            "peak_flops.float16": "not measured; float32 figure used",
            "peak_flops.bfloat16": "not measured; float32 figure used",
            "peak_flops.int8": "not measured; float32 figure used",
            "memory_bandwidth": f"{how}: best of {len(bandwidth_rates)} copies of a 64 MiB fp32 tensor, "
                                "read + write bytes",
            "memory_bytes": "psutil.virtual_memory().total",
        },
        notes="Measured peaks are achievable rates, below the theoretical datasheet peaks.",
        measured=True,
        threads=threads,
        measured_at=measured_at,
        load=load,
        flops_spread=spread(flops_rates),
        bandwidth_spread=spread(bandwidth_rates),
        warnings=_warnings(load, flops_rates, bandwidth_rates),
    )


#: seconds a look that found the machine busy stands for in this process: a run asks for ``local``
#: once, and once more per ``--per-layer`` benchmark; one look a minute is enough
LOOK_AGAIN_S = 60.0
_busy_seen: dict[str, float] = {}


def _quiet_now(key: str, threads: int) -> bool:
    """Whether a one-second look (:func:`turnkey_like.system.idle_load`) finds the machine quiet for
    a measurement on ``threads``; a busy look stands for :data:`LOOK_AGAIN_S` seconds per ``key``."""
    from turnkey_like.system import QUIET_POLL_S, idle_load

    seen = _busy_seen.get(key)
    if seen is not None and time.monotonic() - seen < LOOK_AGAIN_S:
        return False
    if idle_load(QUIET_POLL_S, threads).busy:
        _busy_seen[key] = time.monotonic()
        return False
    return True


def _doubtful(profile: HardwareProfile) -> bool:
    """A kept ``local`` profile worth measuring again when the machine is quiet: measured while busy,
    or by a tk that did not record how busy the machine was."""
    return profile.load is None or profile.load.busy


def cached_local_profiles(cache_dir: str | Path | None = None) -> dict[str, HardwareProfile]:
    """The ``local`` profiles kept under the cache root, by key (``<CPU name>|torch_threads=<N>``),
    without measuring anything; ``{}`` when there are none or the file is unreadable."""
    path = local_profile_path(cache_dir)
    try:
        return decode(path.read_bytes(), dict[str, HardwareProfile], what=str(path))
    except (OSError, RecordError):
        return {}


def local_profile(*, cache_dir: str | Path | None = None, refresh: bool = False,
                  threads: int | None = None, wait_quiet_s: float = 0.0) -> HardwareProfile:
    """Return the ``local`` profile, measuring it when the cache root has none (or a doubtful one).

    Kept in :func:`local_profile_path` (under the cache root that ``cache_dir`` resolves to), one
    entry per CPU name and thread count (``threads``; ``None``: torch's current setting), so a
    different thread setting or machine sharing the cache is measured separately.
    ``refresh=True`` measures again (``tk hardware measure``), waiting up to ``wait_quiet_s`` seconds
    for a quiet machine (:func:`measure_local`). Without ``refresh``, a kept profile is returned as
    it is, unless it was measured while the machine was busy (or without a record of the load): then
    a one-second look (:func:`turnkey_like.system.idle_load`; a busy look stands for
    :data:`LOOK_AGAIN_S` in this process) decides, and a quiet machine measures it again. A new
    measurement that was busy replaces a kept one only when other processes used fewer cores during
    it (so ``tk hardware measure`` on a busy machine never loses a quieter one).

    A cache file that is unreadable or does not match the schema is ignored and rewritten
    (atomically). The profile is written only into a tk cache (the root gets its marker, as any tk
    command would give it), never into a folder that is not one; a cache that cannot be written
    only costs a measurement next time.
    """
    import torch

    threads = threads or torch.get_num_threads()
    key = _local_key(threads)
    entries = cached_local_profiles(cache_dir)
    kept = entries.get(key)
    if kept is not None and not refresh and (not _doubtful(kept) or not _quiet_now(key, threads)):
        return kept
    profile = measure_local(threads=threads, wait_quiet_s=wait_quiet_s)
    if kept is not None and profile.load is not None and profile.load.busy and kept.load is not None \
            and kept.load.other_cores < profile.load.other_cores:
        return kept  # the new measurement was disturbed more: nothing better is lost
    entries[key] = profile
    _write_entries(cache_dir, entries)
    return profile


def _write_entries(cache_dir: str | Path | None, entries: dict[str, HardwareProfile]) -> None:
    """Write the kept ``local`` profiles into the cache root (see :func:`local_profile`)."""
    from turnkey_like.cache import Cache
    from turnkey_like.errors import CacheError
    from turnkey_like.files import write_record

    path = local_profile_path(cache_dir)
    try:
        Cache(cache_dir)  # the root becomes (or must already be) a tk cache, marker and all
        path.parent.mkdir(parents=True, exist_ok=True)
        write_record(path, entries)
    except (OSError, CacheError):
        pass  # an unwritable cache, or a folder that is not a tk cache, only costs a re-measurement


#: GPU name fragment (upper case) -> the datasheet profile a CUDA run on it is predicted with
GPU_PROFILES = {"A100": "a100", "H100": "h100"}


def gpu_profile(device_name: str) -> HardwareProfile | None:
    """The datasheet profile of a GPU by its name (``NVIDIA A100-SXM4-80GB`` -> ``a100``), or ``None``
    when tk has none for it (then per-layer rows have no predicted time; never a wrong GPU's)."""
    upper = device_name.upper()
    for fragment, name in GPU_PROFILES.items():
        if fragment in upper:
            return BUILTIN[name]
    return None


def measured_on(device: str, device_name: str, *, threads: int | None = None,
                cache_dir: str | Path | None = None) -> HardwareProfile | None:
    """The profile a benchmark on ``device`` measured on: ``local`` (measured with ``threads``) for
    ``cpu``, the GPU's datasheet profile (:func:`gpu_profile`) for ``cuda``."""
    if device == "cuda":
        return gpu_profile(device_name)
    return local_profile(cache_dir=cache_dir, threads=threads)


def list_profiles() -> list[str]:
    """Return the names :func:`get_profile` accepts: the built-ins, then ``local``."""
    return [*BUILTIN, LOCAL]


def get_profile(name: str | HardwareProfile | None = None, *, cache_dir: str | Path | None = None) -> HardwareProfile:
    """Return the hardware profile called ``name`` (``None`` or ``"local"``: this machine, measured).

    A :class:`HardwareProfile` passed in is returned as is. Names are case-insensitive.
    ``cache_dir`` is where the ``local`` profile is cached (see :func:`local_profile`).

    Raises:
        InputError: unknown name; the message lists the known names.
    """
    if isinstance(name, HardwareProfile):
        return name
    if name is None or name.lower() in (LOCAL, "this", "this-machine"):
        return local_profile(cache_dir=cache_dir)
    key = name.lower()
    if key in BUILTIN:
        return BUILTIN[key]
    raise InputError(
        f"unknown hardware profile {name!r}",
        hint=f"choose one of: {', '.join(list_profiles())}",
    )


__all__ = ["DTYPES", "NARROW_DTYPES", "LOCAL", "BUILTIN", "GPU_PROFILES", "MEASURE_BUDGET_S", "QUIET_WAIT_S", "SPREAD_WARNING",
           "HardwareProfile", "cached_local_profiles", "get_profile", "gpu_profile", "list_profiles",
           "local_profile", "local_profile_path", "measure_local", "measured_on"]
