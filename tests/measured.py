"""A real cache holding per-layer runs of one model on two runtimes, for the view tests.

:func:`measured_cache` runs the real CLI twice on torchvision's ResNet-18 at 64×64 (random weights):
``tk benchmark --per-layer`` on ONNX Runtime, then on torch eager, both while spinning processes keep
the machine busy (``tests/busy.py``), so the benchmarks and the ``local`` profile carry real
measurement-trust warnings for the views to show. The invocation's record then holds the torch-eager
benchmark with the ORT run carried in ``other_runs``: where the pipeline does not carry it yet, the
fixture calls the record's own ``BenchmarkResult.with_earlier`` with the ORT result it read back, as
the pipeline's benchmark stage does.

The cache is built once per test session (under pytest's base temporary folder, by whichever
pytest-xdist worker asks first: ``conftest.shared_folder``) and shared by every module that asks (each through a module-scoped fixture): tests must treat it as read-only and copy
it (:func:`private_copy`) before running a command that writes records.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

from busy import busy_processes
from conftest import run_tk, shared_folder
from turnkey_like.cache import Cache
from turnkey_like.records import BenchmarkResult, BuildRecord

#: The model and its size: small enough for a fast run, every op kind ResNet has.
MODEL = ("--model", "resnet18", "--imgsz", "64")
#: Timed runs (the per-layer profile takes as many, at most 20).
ITERATIONS = "8"


class MeasuredCache(NamedTuple):
    """The shared cache: its folder, the build's name, its record, and its ORT per-layer run."""

    root: Path
    build: str
    record: BuildRecord
    ort: BenchmarkResult

    @property
    def runs(self) -> list[BenchmarkResult]:
        """The record's per-layer runs, newest (torch eager) first."""
        return self.record.invocation.benchmark.result.per_layer_runs()


def _benchmark(root: Path, runtime: str) -> None:
    with busy_processes():
        out = run_tk("benchmark", *MODEL, "--per-layer", "--runtime", runtime, "--iterations", ITERATIONS,
                     "--cache-dir", str(root), "-q")
    assert out.returncode == 0, f"tk benchmark --runtime {runtime} failed:\n{out.stdout}\n{out.stderr}"


def _build(root: Path) -> str:
    """Run both benchmarks into ``root``; return the build's name."""
    _benchmark(root, "ort")
    cache = Cache(root, create=False)
    [build] = cache.builds()
    ort = cache.load(build).invocation.benchmark.result
    assert ort.runtime == "ort" and ort.per_layer is not None
    _benchmark(root, "torch-eager")
    if "ort" not in [r.key for r in cache.load(build).invocation.benchmark.result.per_layer_runs()]:
        def carry(record: BuildRecord) -> None:
            bench = record.invocation.benchmark.result
            record.invocation.benchmark.result = bench.with_earlier(ort)

        cache.update(build, carry)
    return build


def measured_cache(tmp_path_factory) -> MeasuredCache:
    """The shared cache (built on the first call of the session, by any worker; read back on the others)."""
    root, build = shared_folder(tmp_path_factory, "measured_views_cache", _build)
    record = Cache(root, create=False).load(build)
    ort = next(r for r in record.invocation.benchmark.result.per_layer_runs() if r.key == "ort")
    return MeasuredCache(root=root, build=build, record=record, ort=ort)


def private_copy(measured: MeasuredCache, tmp_path: Path) -> Path:
    """A copy of the shared cache that a test may write to."""
    return Path(shutil.copytree(measured.root, tmp_path / "measured_cache"))
