"""Hardware profiles: peak FLOP/s per dtype and memory bandwidth, for the roofline model.

A :class:`HardwareProfile` holds the two numbers a roofline needs (peak arithmetic throughput and
memory bandwidth) with the document each value comes from. Built-in profiles are taken from vendor
datasheets; ``local`` ("this machine") is measured once by a short micro-benchmark and cached.

Conventions:
- FLOP/s are *dense* peaks (no 2:4 structured sparsity); datasheets that print the sparse figure
  are halved and say so in the source.
- For GPUs, ``float32`` is the CUDA-core (non tensor core) FP32 peak. Matmuls that PyTorch runs with
  TF32 enabled (``torch.backends.cuda.matmul.allow_tf32``) can go faster; the TF32 tensor-core peak is
  in ``notes``. This keeps FP32 estimates honest for code that does not enable TF32.
- ``int8`` is in integer operations per second (1 multiply-accumulate = 2 ops), as datasheets count.
- 1 MAC = 2 FLOPs.
"""

from __future__ import annotations

import time
from pathlib import Path

from turnkey_like.errors import InputError
from turnkey_like.records import HardwareProfile, RecordError, decode

DTYPES = ("float32", "float16", "bfloat16", "int8")

LOCAL = "local"

_A100_DS = "NVIDIA A100 Tensor Core GPU Datasheet (NVIDIA, 2021), column 'A100 80GB SXM'"
_H100_DS = "NVIDIA H100 Tensor Core GPU Datasheet (NVIDIA, 2023), column 'H100 SXM'"
_EPYC_DS = "AMD EPYC 9654 product specifications (amd.com) / AMD EPYC 9004 Series Processors data sheet"
_ZEN4_SOG = "Software Optimization Guide for the AMD Zen4 Microarchitecture (AMD pub. 57647)"
_SPR_ARK = "Intel ARK: Intel Xeon Platinum 8480+ Processor (105M Cache, 2.00 GHz) specifications"
_INTEL_OPT = "Intel 64 and IA-32 Architectures Optimization Reference Manual (AMX and AVX-512 chapters)"

BUILTIN: dict[str, HardwareProfile] = {
    "a100": HardwareProfile(
        name="a100",
        description="NVIDIA A100 SXM 80GB",
        peak_flops={"float32": 19.5e12, "float16": 312e12, "bfloat16": 312e12, "int8": 624e12},
        memory_bandwidth=2039e9,
        sources={
            "peak_flops.float32": f"{_A100_DS}: FP32 19.5 TFLOPS (CUDA cores)",
            "peak_flops.float16": f"{_A100_DS}: FP16 Tensor Core 312 TFLOPS (624 is with sparsity)",
            "peak_flops.bfloat16": f"{_A100_DS}: BFLOAT16 Tensor Core 312 TFLOPS (624 is with sparsity)",
            "peak_flops.int8": f"{_A100_DS}: INT8 Tensor Core 624 TOPS (1248 is with sparsity)",
            "memory_bandwidth": f"{_A100_DS}: GPU Memory Bandwidth 2,039 GB/s (HBM2e)",
        },
        notes="float32 is the non-tensor-core peak; with TF32 matmuls enabled the tensor-core peak is "
        "156 TFLOPS dense (datasheet: TF32 Tensor Core 156 | 312 with sparsity).",
    ),
    "h100": HardwareProfile(
        name="h100",
        description="NVIDIA H100 SXM5 80GB",
        peak_flops={"float32": 67e12, "float16": 989.5e12, "bfloat16": 989.5e12, "int8": 1979e12},
        memory_bandwidth=3.35e12,
        sources={
            "peak_flops.float32": f"{_H100_DS}: FP32 67 teraFLOPS (CUDA cores)",
            "peak_flops.float16": f"{_H100_DS}: FP16 Tensor Core 1,979 teraFLOPS with sparsity, halved "
            "for dense = 989.5",
            "peak_flops.bfloat16": f"{_H100_DS}: BFLOAT16 Tensor Core 1,979 teraFLOPS with sparsity, "
            "halved for dense = 989.5",
            "peak_flops.int8": f"{_H100_DS}: INT8 Tensor Core 3,958 TOPS with sparsity, halved for "
            "dense = 1,979",
            "memory_bandwidth": f"{_H100_DS}: GPU memory bandwidth 3.35 TB/s (HBM3)",
        },
        notes="float32 is the non-tensor-core peak; with TF32 matmuls enabled the tensor-core peak is "
        "494.5 TFLOPS dense (datasheet: 989 with sparsity).",
    ),
    "epyc9654": HardwareProfile(
        name="epyc9654",
        description="AMD EPYC 9654 (Genoa, 96 cores, 1 socket)",
        # 96 cores x 2.4 GHz base x FLOP/cycle/core.
        peak_flops={"float32": 7.3728e12, "float16": 7.3728e12, "bfloat16": 14.7456e12, "int8": 29.4912e12},
        memory_bandwidth=460.8e9,
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
        },
        notes="Computed at the 2.4 GHz base clock (all-core AVX clocks vary); 1 socket.",
    ),
    "xeon8480": HardwareProfile(
        name="xeon8480",
        description="Intel Xeon Platinum 8480+ (Sapphire Rapids, 56 cores, 1 socket)",
        # 56 cores x 2.0 GHz base x FLOP/cycle/core.
        peak_flops={"float32": 7.168e12, "float16": 14.336e12, "bfloat16": 114.688e12, "int8": 229.376e12},
        memory_bandwidth=307.2e9,
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
        },
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


def measure_local(budget_s: float = 4.0, threads: int | None = None) -> HardwareProfile:
    """Measure this machine: fp32 matmul FLOP/s with torch and stream-copy memory bandwidth.

    Compute: best of repeated 1024x1024 fp32 ``torch.mm`` (2·1024³ FLOPs each, Dongarra-style dense
    matmul peak). Bandwidth: best of repeated copies of a 64 MiB fp32 tensor, counting read + write
    bytes (the STREAM "Copy" kernel convention, McCalpin 1995). Other dtypes are not measured and
    take the fp32 figure (stated in ``sources``). Takes about ``budget_s`` seconds or less.

    ``threads``: torch intra-op threads to measure with (``None``: torch's current setting); torch's
    setting is restored afterwards. The count is recorded in ``HardwareProfile.threads``.
    """
    import torch

    from turnkey_like.system import cpu_name

    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
        try:
            return measure_local(budget_s)
        finally:
            torch.set_num_threads(before)

    def best_rate(fn, work: float, seconds: float) -> float:
        fn()  # warm-up
        best, end = float("inf"), time.perf_counter() + seconds
        reps = 0
        while reps < 3 or (time.perf_counter() < end and reps < 50):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
            reps += 1
        return work / best

    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    flops = best_rate(lambda: torch.mm(a, b, out=out), 2.0 * n**3, budget_s / 2)
    src = torch.ones(16 * 2**20)  # 64 MiB
    dst = torch.empty_like(src)
    bandwidth = best_rate(lambda: dst.copy_(src), 2.0 * src.numel() * 4, budget_s / 2)
    threads = torch.get_num_threads()
    how = f"measured on this machine ({cpu_name()}, {threads} torch threads) by tk"
    return HardwareProfile(
        name=LOCAL,
        description=f"this machine: {cpu_name()} ({threads} torch threads)",
        peak_flops={"float32": flops, "float16": flops, "bfloat16": flops, "int8": flops},
        memory_bandwidth=bandwidth,
        sources={
            "peak_flops.float32": f"{how}: best 1024x1024 fp32 torch.mm",
            "peak_flops.float16": "not measured; float32 figure used",
            "peak_flops.bfloat16": "not measured; float32 figure used",
            "peak_flops.int8": "not measured; float32 figure used",
            "memory_bandwidth": f"{how}: best copy of a 64 MiB fp32 tensor, read + write bytes",
        },
        notes="Measured peaks are achievable rates, below the theoretical datasheet peaks.",
        measured=True,
        threads=threads,
    )


def local_profile(*, cache_dir: str | Path | None = None, refresh: bool = False,
                  threads: int | None = None) -> HardwareProfile:
    """Return the ``local`` profile, measuring it once and caching it.

    Cached in :func:`local_profile_path` (under the cache root that ``cache_dir`` resolves to), one
    entry per CPU name and thread count (``threads``; ``None``: torch's current setting), so a
    different thread setting or machine sharing the cache is measured separately. ``refresh=True`` measures again. A cache file that is unreadable
    or does not match the schema is ignored and rewritten (atomically). The profile is written only
    into a tk cache (the root gets its marker, as any tk command would give it), never into a folder
    that is not one; a cache that cannot be written only costs a measurement next time.
    """
    from turnkey_like.errors import CacheError
    from turnkey_like.files import write_record

    import torch

    threads = threads or torch.get_num_threads()
    path = local_profile_path(cache_dir)
    key = _local_key(threads)
    entries: dict[str, HardwareProfile] = {}
    try:
        entries = decode(path.read_bytes(), dict[str, HardwareProfile], what=str(path))
    except (OSError, RecordError):
        entries = {}
    if key in entries and not refresh:
        return entries[key]
    profile = measure_local(threads=threads)
    entries[key] = profile
    try:
        from turnkey_like.cache import Cache

        Cache(cache_dir)  # the root becomes (or must already be) a tk cache, marker and all
        path.parent.mkdir(parents=True, exist_ok=True)
        write_record(path, entries)
    except (OSError, CacheError):
        pass  # an unwritable cache, or a folder that is not a tk cache, only costs a re-measurement
    return profile


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


__all__ = ["DTYPES", "LOCAL", "BUILTIN", "GPU_PROFILES", "HardwareProfile", "get_profile", "gpu_profile",
           "list_profiles", "local_profile", "local_profile_path", "measure_local", "measured_on"]
