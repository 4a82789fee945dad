"""Corpus runs: many inputs at once on a Dask cluster, and ``--resume`` for any run.

:func:`run_corpus` is the one entry point of ``tk benchmark``: serial (``Pipeline.run``, exactly as
without this module) unless :class:`CorpusOptions` asks for workers, and in both cases it skips
inputs that ``--resume`` finds complete and records each input's fingerprint when it ends.

On Dask (``--workers N``: an embedded ``LocalCluster``; ``--scheduler ADDRESS``: an existing
cluster), the unit of work is one input (script): one Dask task, which runs
:class:`~turnkey_like.launcher.StreamingChild` with ``Pipeline.child_body`` *on the worker* (the
script's discovery, then every stage, each in a further fork, exactly as on one machine; a model class
defined in a script cannot be pickled, so all of an input's work stays on one worker). The task relays
every message of that child (the one channel protocol, ``records.Message``) to the client through a
``distributed.Queue`` of its own; on the client a :class:`~turnkey_like.corpus.channel.DaskChannel`
(the same ``receive``/``kill``/``wait`` interface as a local child) feeds ``Pipeline.consume``, which
writes each record to the *client's* cache and turns a dead or hung child into the input's one-line
error, as for a local run. No shared filesystem is needed for records. ``tk discover-models
--workers N`` runs its zoo models through the same runner (:mod:`turnkey_like.corpus.survey`).

The package, by concept::

    resume        --resume: each input's key and fingerprint, the book of how each last ended
    cluster       tk's embedded LocalCluster, or an existing scheduler
    worker        the worker's side of every task: start its child, relay its messages
    channel       the client's side of one task (DaskChannel)
    dask_runner   the one Dask runner: a task per item, each consumed in a thread (DaskRunner, DaskJob)
    input_task    a tk benchmark input on the worker (its pipeline, cache, cores, host lock)
    inputs        tk benchmark inputs on the client (InputJob, the corpus progress line)
    survey        tk discover-models: the zoo survey, serial or on the same runner
    local_worker  the preload of tk's own LocalCluster's workers (their own process group)

Where files live: a worker uses the client's cache folder when it sees the same folder (the
client's ``.corpus/cache-id`` token is readable at the same path: same host, or a shared
filesystem); otherwise its own cache (``TK_CACHE_DIR`` on the worker, else its default), into which
the client first ships the input's earlier records (so reuse and kept outcomes work as in a serial
run). ONNX files stay where they were built: ``BuildResult.onnx_path`` is absolute on the worker, and
``record.system.host`` names the machine; ``--collect`` copies them into the client's cache.

Failures: ``--timeout`` applies on the workers (each stage's fork; the client stops a discovery that
runs past it). tk places each task on a worker itself (:mod:`turnkey_like.corpus.dask_runner`): a
worker that dies mid-task (killed, out of memory) costs only the input it ran, which is retried alone,
then recorded ``killed`` after a second death; no queued input is charged; the rest of the corpus goes
on. A worker that cannot run tk's task (another tk, or none) fails each input with the reason and the
fix, and stays up. Ctrl-C and SIGTERM stop every running input at once and close the cluster.

A benchmark has its host to itself: each worker's input child holds :mod:`turnkey_like.hostlock`
shared during discovery, characterization and build, and exclusive during a benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from turnkey_like.corpus.cluster import LOCAL_CLUSTER_CONFIG, connect_scheduler, start_local_cluster
from turnkey_like.corpus.resume import InputBook, Recording, input_fingerprint, input_key, requested_stages
from turnkey_like.errors import InputError
from turnkey_like.events import RunSummary
from turnkey_like.records import ScriptResult

if TYPE_CHECKING:
    from turnkey_like.inputs import InputSpec
    from turnkey_like.pipeline import Pipeline

@dataclass
class CorpusOptions:
    """How a corpus runs (the command line's ``--workers`` ... ``--retry-failed``).

    Attributes:
        workers: start an embedded ``LocalCluster`` with this many worker processes, one thread each.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``); exclusive with ``workers``.
        upload: send each script's text with its task (workers that cannot read the client's files).
        collect: copy ONNX files built in a worker's own cache into the client's cache.
        resume: skip inputs whose content, arguments and requested stages are unchanged and complete.
        retry_failed: with ``resume``, rerun the inputs that failed (script or any stage).
        in_flight: inputs submitted ahead of the free worker threads (``None``: one per thread), so a
            worker never waits for the client between inputs.
    """

    workers: int | None = None
    scheduler: str | None = None
    upload: bool = False
    collect: bool = False
    resume: bool = False
    retry_failed: bool = False
    in_flight: int | None = None

    @property
    def on_dask(self) -> bool:
        return bool(self.workers) or bool(self.scheduler)

    def validate(self) -> None:
        """Raises :class:`InputError` for contradictory or out-of-range options."""
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers {self.workers}: must be at least 1")
        if self.workers and self.scheduler:
            raise InputError("--workers and --scheduler exclude each other",
                             hint="--workers N starts a cluster on this machine; --scheduler ADDRESS uses yours")
        if (self.upload or self.collect) and not self.on_dask:
            flag = "--upload" if self.upload else "--collect"
            raise InputError(f"{flag} needs --workers or --scheduler", hint="without them every input runs here")
        if self.retry_failed and not self.resume:
            self.resume = True  # --retry-failed alone means: resume, rerunning failures


def run_corpus(pipeline: Pipeline, specs: list[InputSpec], corpus: CorpusOptions | None = None) -> RunSummary:
    """Run ``specs`` serially (``Pipeline.run``) or on Dask; skip what ``--resume`` finds complete.

    Returns the :class:`~turnkey_like.pipeline.RunSummary` of every input in the order given
    (resumed inputs included, rebuilt from the cache). Never raises for a bad input or script.

    Raises:
        InputError: bad corpus options, or ``distributed`` is not installed while Dask was asked for.
        TkError: the Dask cluster could not be started or reached.
    """
    from turnkey_like.corpus.inputs import progress_line, run_on_dask

    corpus = corpus or CorpusOptions()
    corpus.validate()
    book = InputBook(pipeline)
    resumed: dict[int, ScriptResult] = {}
    if corpus.resume:
        for index, spec in enumerate(specs):
            done = book.finished(spec, corpus.retry_failed)
            if done is not None:
                resumed[index] = done
        if resumed:
            progress_line(pipeline.listener, f"--resume: {len(resumed)} of {len(specs)} input(s) unchanged "
                                              "and complete in the cache, not run again")
    todo = [spec for index, spec in enumerate(specs) if index not in resumed]
    if corpus.on_dask and todo:
        summary = run_on_dask(pipeline, corpus, book, todo)
    else:
        listener = pipeline.listener
        pipeline.listener = Recording(listener, book)
        try:
            summary = pipeline.run(todo) if todo else RunSummary(run_id=pipeline.run_id)
        finally:
            pipeline.listener = listener
    if not resumed:
        return summary
    ran = iter(summary.results)
    merged = [resumed[i] if i in resumed else next(ran, None) for i in range(len(specs))]
    summary.results = [r for r in merged if r is not None]
    return summary


def dask_setup(worker) -> None:
    """Dask's preload hook for workers you start (``dask worker ADDRESS --preload turnkey_like.corpus``):
    :func:`~turnkey_like.corpus.worker.prepare_worker` as the worker starts rather than in its first
    task. Optional: a worker started without it prepares in its first task. (tk's own ``LocalCluster``
    preloads :mod:`turnkey_like.corpus.local_worker`, which also gives each worker its own process group.)"""
    from turnkey_like.corpus.worker import prepare_worker

    prepare_worker()


__all__ = ["CorpusOptions", "run_corpus", "dask_setup", "InputBook", "requested_stages", "input_key",
           "input_fingerprint", "LOCAL_CLUSTER_CONFIG", "start_local_cluster", "connect_scheduler"]
