"""The machine and software a result was measured on (:class:`SystemInfo`), and where it ran.

``turnkey_like.system.system_record()`` gathers the facts; every :class:`~turnkey_like.records.BuildRecord`
and :class:`~turnkey_like.records.RunReport` carries them. A corpus run on Dask adds where the record was
built (``host``, ``dask_worker``) and, after ``--collect``, the host its files were collected from.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET, UnsetType

from turnkey_like.records.base import Record



class SystemInfo(Record):
    """Facts about the machine and software a record was written with.

    Stored as one JSON object with these keys (the layout tk has always written: a record of
    schema version 1 or 2 decodes, and encodes again, as it was written). Every fact of the machine
    is ``None`` where it is unknown (a version of a package that is not installed). The facts of
    where a corpus run built the record are ``msgspec.UNSET`` (falsy, and left out of the JSON)
    unless a Dask worker built it.

    Attributes:
        os: ``platform.system()`` and ``platform.release()``, e.g. ``Linux 6.1.0``.
        cpu: the CPU's model name (``turnkey_like.system.cpu_name``).
        cores_physical, cores_logical: core counts (``psutil``; ``os.cpu_count``).
        memory_gb: total memory, GiB (2**30 bytes), one decimal.
        python, torch, torchvision, onnx, onnxruntime, transformers, tk: versions.
        gpu: the CUDA devices torch sees, by name (empty when none, or torch was not imported).
        host: the host name of the Dask worker that built the record (unset: built here).
        dask_worker: that worker's address (``tcp://host:port``).
        collected_from: the host whose ONNX files ``--collect`` copied into this cache (unset: none).
    """

    os: str | None = None
    cpu: str | None = None
    cores_physical: int | None = None
    cores_logical: int | None = None
    memory_gb: float | None = None
    python: str | None = None
    torch: str | None = None
    torchvision: str | None = None
    onnx: str | None = None
    onnxruntime: str | None = None
    transformers: str | None = None
    tk: str | None = None
    gpu: list[str] = []
    host: str | UnsetType = UNSET
    dask_worker: str | UnsetType = UNSET
    collected_from: str | UnsetType = UNSET

    def __bool__(self) -> bool:
        """True when any fact is known (a record written without system facts holds none)."""
        return any(value is not None and value != [] for _name, value in self.items())

    def items(self) -> list[tuple[str, Any]]:
        """``(fact, value)`` pairs in field order, each fact of the JSON object (the placement facts
        only when set): what ``tk cache show`` and the HTML report list under "System"."""
        return [(name, getattr(self, name)) for name in self.__struct_fields__
                if getattr(self, name) is not UNSET]
