"""Facts about the machine and software a result was measured with.

Every evaluation record carries :func:`system_info` so results from different machines can be told
apart and compared (see the cache and report).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import sys


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


def system_record():
    """Return :func:`system_info` as the typed record every evaluation carries
    (:class:`~turnkey_like.records.SystemInfo`; a fresh copy, which a Dask worker then stamps)."""
    from turnkey_like.records import SystemInfo, convert

    return convert(system_info(), SystemInfo, what="system facts")
