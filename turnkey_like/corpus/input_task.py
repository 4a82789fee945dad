"""One input of ``tk benchmark`` as a corpus task, on the worker: the worker's pipeline (the client's
options and run id; the client's cache when the worker sees it, else its own, into which the
client's earlier records are first adopted), its share of the host's cores, the host lock around
each stage, and each record stamped with the worker that built it.

``run_task`` (:mod:`turnkey_like.corpus.worker`) runs the child and relays its messages; the
client's side is :mod:`turnkey_like.corpus.inputs`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from turnkey_like.corpus.resume import CORPUS_DIR
from turnkey_like.corpus.worker import ChildWork, prepare_worker
from turnkey_like.errors import TkError
from turnkey_like.records import LAST, Discovered, Save, decode

#: scripts shipped to a worker with ``--upload`` (in the worker's cache)
UPLOADS_DIR = "uploads"
#: the token that tells a worker it sees the client's cache folder
CACHE_ID_FILE = "cache-id"


@dataclass
class InputTask:
    """What the client sends a worker for one input of ``tk benchmark`` (pickled by Dask; a
    :class:`~turnkey_like.corpus.worker.WorkerTask`)."""

    spec: Any
    options: Any
    run_id: str
    queue: str
    stop: str
    cache_root: str
    cache_id: str
    script: bytes | None = None
    previous: list[bytes] = field(default_factory=list)
    threads_per_host: dict[str, int] = field(default_factory=dict)

    def prepare(self, host: str, address: str) -> ChildWork:
        """This worker's pipeline for the input (the client's options and run id; its cache, or the
        client's when it sees it; the uploaded script written there); the child runs
        ``Pipeline.child_body`` under the host lock, stamping each record with this worker."""
        cache_dir, shared = _worker_cache(self)
        pipeline = _worker_pipeline(self, cache_dir, shared)
        spec = self.spec
        if self.script is not None:
            spec = replace(spec, path=_upload_path(pipeline.cache.root, spec, self.script))
        body = _StampedSend(pipeline, host, address, shared)
        return ChildWork(body.run, (spec,), uploaded=str(spec.path) if self.script is not None else None,
                         memory_limit=pipeline.options.memory_limit_bytes)



#: hardware profiles resolved in this worker process, by (hardware, cache root)
_PROFILES: dict = {}


def _worker_cache(task: InputTask) -> tuple[str | None, bool]:
    """The cache folder this worker uses for ``task``, and whether it is the client's.

    The worker's own ``TK_CACHE_DIR`` when set (its operator chose it); else the client's folder when
    the worker sees it (the client's token at the same path: same host, or a shared filesystem);
    else the worker's default cache. Shared means the client's token is in the chosen folder.
    """
    from turnkey_like.cache import ENV_VAR

    root = os.environ.get(ENV_VAR) or task.cache_root
    try:
        shared = (Path(root) / CORPUS_DIR / CACHE_ID_FILE).read_text().strip() == task.cache_id
    except OSError:
        shared = False
    return (root if shared or os.environ.get(ENV_VAR) else None), shared



def _worker_pipeline(task: InputTask, cache_dir: str | None, shared: bool):
    """The pipeline that runs ``task`` on this worker: the client's options, run id and (when this
    worker sees it) cache; the host lock around each stage; the hardware profile resolved once."""
    from turnkey_like.pipeline import Pipeline

    options = _with_memory_limit(task, replace(task.options, cache_dir=cache_dir))
    prepare_worker(options.characterize)  # the first task of a worker started without --preload
    pipeline = Pipeline(options)
    pipeline.run_id = task.run_id
    default_threads = _share_cores(task)
    pipeline.stage_guard = functools.partial(_stage_guard, default_threads=default_threads)
    if not shared:
        _adopt_previous(pipeline.cache, task.previous)
    if options.characterize and not task.spec.is_onnx:
        key = (options.hardware, str(pipeline.cache.root))
        if key not in _PROFILES:
            # measuring this machine's peaks is a benchmark too: the host to itself, and torch's
            # default threads, so the profile is the one a serial run uses (and, with the client's
            # cache, the client's own, read instead of measured again)
            with _stage_guard("benchmark", default_threads):
                _PROFILES[key] = pipeline.profile
        pipeline.__dict__["profile"] = _PROFILES[key]  # the cached_property's slot: resolved once
    return pipeline



#: ``--memory-limit``'s default in this worker process, by run id: resolved at the run's first task here
_MEMORY_LIMITS: dict[str, int] = {}


def _with_memory_limit(task: InputTask, options):
    """``options`` with ``--memory-limit``'s default resolved on this worker's host, when the client
    left it to the workers (``--scheduler``: it cannot see their memory): 75% of the memory available
    at the run's first task in this worker process, divided among the worker threads of this host."""
    if options.memory_limit_bytes is not None:
        return options
    if task.run_id not in _MEMORY_LIMITS:
        host = urlsplit(get_worker_address()).hostname or ""
        _MEMORY_LIMITS[task.run_id] = options.with_memory_default(task.threads_per_host.get(host) or 1).memory_limit_bytes
    return replace(options, memory_limit_bytes=_MEMORY_LIMITS[task.run_id])


def _share_cores(task: InputTask) -> int | None:
    """Give this worker's inputs their share of the host's cores for torch; return torch's default.

    Several tk workers on one host each running torch with every core (torch's default) oversubscribe
    it, and OpenMP's spinning threads then slow everything several-fold (3 scripts: 27 s instead of
    13 s on 2 cores with 2 workers). Discovery, characterization and build run with
    ``cores // (worker threads on this host)`` threads (at least 1); a benchmark, which has the host
    to itself, gets torch's default back (:func:`_stage_guard`), so its latency is a serial run's.
    torch is imported here, once per worker, so the input children inherit it instead of importing it.
    """
    import torch

    if "default" not in _THREADS:
        _THREADS["default"] = torch.get_num_threads()
    host = urlsplit(get_worker_address()).hostname or ""
    sharing = task.threads_per_host.get(host)
    if sharing:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // sharing))
    return _THREADS["default"]


#: torch's default intra-op thread count in this worker process, before :func:`_share_cores`
_THREADS: dict[str, int] = {}


def get_worker_address() -> str:
    """This Dask worker's address (``tcp://host:port``)."""
    from distributed import get_worker

    return get_worker().address


@contextlib.contextmanager
def _stage_guard(stage_name: str, default_threads: int | None = None):
    """``Pipeline.stage_guard`` on a worker: the host lock (:func:`turnkey_like.hostlock.stage_guard`),
    and torch's default thread count back for a benchmark (see :func:`_share_cores`)."""
    from turnkey_like import hostlock

    with hostlock.stage_guard(stage_name):
        if stage_name not in hostlock.EXCLUSIVE_STAGES or not default_threads:
            yield
            return
        import torch

        shared_threads = torch.get_num_threads()
        torch.set_num_threads(default_threads)
        try:
            yield
        finally:
            torch.set_num_threads(shared_threads)


def _adopt_previous(cache, previous: list[bytes]) -> None:
    """Write the client's earlier records of this input into this worker's own cache, unless the
    worker's copy is as new (so reuse and kept outcomes work as in a serial run)."""
    from turnkey_like.records import BuildRecord

    for data in previous:
        record = decode(data, BuildRecord, what="earlier record")
        try:
            mine = cache.load(record.build_name)
        except TkError:
            mine = None
        if mine is None or (mine.updated_at or "") < (record.updated_at or ""):
            cache.build_dir(record.build_name)
            cache.save(record)


def _upload_path(cache_root: Path, spec, script: bytes) -> Path:
    """Write an uploaded script into ``<cache>/.corpus/uploads/<sha>/<name>``; return its path."""
    from turnkey_like.files import write_atomic

    folder = cache_root / CORPUS_DIR / UPLOADS_DIR / hashlib.sha256(script).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(str(spec.path)).name
    if not path.is_file():
        write_atomic(path, script)
    return path


def _guarded_body(pipeline, send, spec) -> None:
    """``Pipeline.child_body`` with the host lock held shared from the start until discovery ended
    (the first ``discovered``, or the input's last message); each stage then takes its own."""
    from turnkey_like import hostlock

    lock = hostlock.shared()
    lock.__enter__()
    held = True

    def guarded(message):
        nonlocal held
        if held and isinstance(message, (Discovered, *LAST)):
            held = False
            lock.__exit__(None, None, None)
        send(message)

    try:
        pipeline.child_body(guarded, spec)
    finally:
        if held:
            lock.__exit__(None, None, None)



class _StampedSend:
    """The child's body on a worker: the guarded ``child_body``, with each record stamped with the
    host it was built on (and written to the worker's own cache when it has one)."""

    def __init__(self, pipeline, host: str, address: str, shared: bool):
        self.pipeline, self.host, self.address, self.shared = pipeline, host, address, shared

    def run(self, send, spec) -> None:
        def stamped(message):
            if isinstance(message, Save):
                record = message.record
                record.system = msgspec.structs.replace(record.system, host=self.host, dask_worker=self.address)
                if not self.shared:
                    with contextlib.suppress(TkError, OSError):
                        self.pipeline.save(record)  # the worker's own cache: its ONNX files' record
            send(message)

        _guarded_body(self.pipeline, stamped, spec)



def read_build_files(files: list[str], data_files: list[str]) -> dict[str, bytes]:
    """On the worker that built them: the bytes of a build's ONNX files (and external data), by path."""
    out: dict[str, bytes] = {}
    folders = {str(Path(f).parent) for f in files}
    for path in [*files, *(str(Path(folder) / name) for folder in folders for name in data_files)]:
        if os.path.isfile(path) and path not in out:
            with open(path, "rb") as f:
                out[path] = f.read()
    return out
