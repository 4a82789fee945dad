"""``tk discover-models``: a zoo's models through the tracing ladder, serially or on Dask.

:func:`discover` surveys a source's models (:func:`try_model` one model, every rung); each model runs
in a child of its own that speaks the one channel protocol (``turnkey_like.pipeline.survey``), read
by the same ``consume_survey`` wherever it runs:

- one worker: the children are forked from tk itself, one after another, after a warm-up
  (``pipeline.survey.warm_parent``: imports of torch, the source's library and the zoo, about 4 s
  for torch with torchvision here, and a first count and trace, which a child then no longer pays);
- ``--workers N``: the one Dask runner that runs ``tk benchmark --workers N``
  (:class:`~turnkey_like.corpus.dask_runner.DaskRunner` on tk's embedded ``LocalCluster``): one
  task per model (:class:`SurveyTask`), each forking the model's child on its worker (which warms
  itself once), with ``cores // N`` torch threads; the child's messages and output come back to this
  process, which writes each result and log. A worker that dies is replaced and its model retried
  once, then recorded ``killed``.

Results are kept in the cache (``turnkey_like.zoo.survey.SurveyStore``). A cached result is reused
unless ``refresh``; unless export is asked and the cached one has no export outcome; unless
``full_depth`` is asked and the cached one traced a shallow copy; and unless it timed out under a
shorter timeout than the one asked now (``zoo.survey.reusable``).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from turnkey_like.corpus.dask_runner import DaskRunner
from turnkey_like.corpus.worker import ChildWork
from turnkey_like.errors import InputError, TkError
from turnkey_like.launcher import ChildEnded
from turnkey_like.pipeline.survey import SurveyRequest, consume_survey, survey_body, survey_in_child, warm_once
from turnkey_like.records import DEFAULT_TIMEOUT_S, ModelSurvey, Status, SurveyReport, now_utc, survey_counts
from turnkey_like.zoo import sources as zoo_sources
from turnkey_like.zoo.survey import SurveyStore, check_source, family_of, list_families, reusable, select

#: ``on_result(survey, done, total)``: called here as each model's result arrives (progress lines)
OnResult = Callable[[ModelSurvey, int, int], None]


@dataclass
class SurveyTask:
    """One model's corpus task, as the worker runs it (a :class:`~turnkey_like.corpus.worker.WorkerTask`)."""

    request: SurveyRequest
    queue: str
    stop: str

    def prepare(self, host: str, address: str) -> ChildWork:
        """Warm this worker once for the source, then the model's child runs ``survey_body``."""
        warm_once(self.request.source, self.request.export)
        return ChildWork(survey_body, (self.request,), fresh_thread=True)


class SurveyJob:
    """Zoo models as a :class:`~turnkey_like.corpus.dask_runner.DaskJob`: each model's child read by
    ``consume_survey``, its output written to its log here, each result stored as it arrives."""

    def __init__(self, store: SurveyStore, arrived: Callable[[ModelSurvey], None]):
        self.store, self.arrived = store, arrived
        self.lock = threading.Lock()

    def connected(self, client) -> None:
        pass

    def task(self, request: SurveyRequest, name: str) -> SurveyTask:
        return SurveyTask(request=request, queue=f"{name}-q", stop=f"{name}-stop")

    def label(self, request: SurveyRequest) -> str:
        return request.name

    def consume(self, index: int, request: SurveyRequest, channel) -> ModelSurvey:
        log_path = self.store.log_path(request.name)
        with open(log_path, "w", encoding="utf-8", errors="replace") as log:
            channel.outputs = (log, log)
            return consume_survey(channel, request, log=log, log_path=log_path)

    def refused(self, request: SurveyRequest, error: TkError) -> ModelSurvey:
        return _not_run(request, Status.ERROR, error.message)

    def failed(self, request: SurveyRequest, ended: ChildEnded) -> ModelSurvey:
        return _not_run(request, Status.KILLED if ended.status is Status.KILLED else Status.ERROR, ended.error)

    def interrupted(self, index: int, request: SurveyRequest) -> None:
        return None

    def started(self, index: int, request: SurveyRequest, where: str) -> None:
        pass

    def finished(self, index: int, request: SurveyRequest, survey: ModelSurvey) -> ModelSurvey:
        with self.lock:
            self.arrived(survey)
        return survey


def _not_run(request: SurveyRequest, status: Status, error: str) -> ModelSurvey:
    """The record of a model whose task never started its child (its workers died, tk failed there)."""
    return ModelSurvey(name=request.name, source=request.source, family=request.family, timeout_s=request.timeout_s,
                       surveyed_at=now_utc(), status=status, trace_method="not traced", error=error)


def run_models(names: list[str], source: str, families: dict[str, str], store: SurveyStore, *,
               export: bool, timeout_s: float, workers: int = 1, all_rungs: bool = False,
               full_depth: bool = False, on_result: OnResult | None = None) -> list[ModelSurvey]:
    """Survey ``names``, each in its own child; store each result in ``store`` as it arrives.

    One worker: the children are forked from this process, one after another. ``workers`` > 1: on
    the one Dask runner (tk's embedded ``LocalCluster``), with ``cores // workers`` torch threads
    each (see the module doc).

    Returns:
        The results in the order of ``names``.

    Raises:
        InputError: ``workers`` > 1 without Dask's ``distributed`` package.
        KeyboardInterrupt: Ctrl-C (the results that arrived before are stored).
    """
    if not names:
        return []
    results: dict[str, ModelSurvey] = {}

    def arrived(survey: ModelSurvey) -> None:
        store.put(survey)
        results[survey.name] = survey
        if on_result is not None:
            on_result(survey, len(results), len(names))

    threads = None if workers <= 1 else max(1, (os.cpu_count() or 1) // workers)
    requests = [SurveyRequest(name=name, source=source, family=families.get(name) or family_of(source, name),
                              export=export, all_rungs=all_rungs, full_depth=full_depth, timeout_s=timeout_s,
                              threads=threads) for name in names]
    if workers <= 1:
        warm_once(source, export)
        for request in requests:
            arrived(survey_in_child(request, store.log_path(request.name)))
    else:
        _, stop = DaskRunner(SurveyJob(store, arrived), workers=workers).run(requests)
        if stop is not None:
            raise type(stop)()
    return [results[n] for n in names]


def discover(source: str = "torchvision", *, family: str | None = None, skip_patterns: Iterable[str] = (),
             export: bool = False, workers: int = 1, timeout_s: float = DEFAULT_TIMEOUT_S, refresh: bool = False,
             full_depth: bool = False, cache_dir: str | Path | None = None, models: list[str] | None = None,
             on_result: OnResult | None = None) -> SurveyReport:
    """Survey the models of ``source``: cached results where they answer, a child per model for the rest.

    Args:
        source: a registered source (:func:`turnkey_like.zoo.source_names`).
        family: only models whose name or family contains this text.
        skip_patterns: skip (and list) models whose name contains one of these texts.
        export: also try the ONNX export of each model.
        workers: models surveyed at once (one child each).
        timeout_s: seconds each model's child may run.
        refresh: survey again, ignoring cached results (and the cached name list).
        full_depth: trace models built on meta themselves, not a shallow copy.
        cache_dir: the tk cache root (``--cache-dir``).
        models: survey these names instead of every model the source lists (``--models``: hub
            names, ``.yaml`` files, ``package.module:factory`` models with source ``factory``).
        on_result: progress callback (see :func:`run_models`).

    Returns:
        A :class:`~turnkey_like.records.SurveyReport` (``wall_s`` measured here).

    Raises:
        InputError: unknown source, or ``--family`` matches no model.
        CacheError: the cache root cannot be used.
    """
    from turnkey_like import __version__

    t0 = time.perf_counter()
    check_source(source)
    if workers < 1:
        raise InputError(f"--workers {workers} must be at least 1")
    if timeout_s <= 0:
        raise InputError(f"--timeout {timeout_s:g} must be positive seconds")
    store = SurveyStore(cache_dir, source)
    if models:
        families = {name: family_of(source, name) for name in dict.fromkeys(models)}
    elif not zoo_sources.get(source).listed:
        raise InputError(f"the {source} source has no list of models", hint="name them with --models NAME ...")
    else:
        families = list_families(source, store, refresh)
    names, skipped = select(families, family, skip_patterns)
    if family and not names and not skipped:
        import difflib

        close = difflib.get_close_matches(family, sorted(set(families.values())), n=3, cutoff=0.5)
        raise InputError(f"no {source} model's name or family contains {family!r}",
                         hint=f"families close to it: {', '.join(close)}" if close else
                         "run without --family to see every family")
    done: dict[str, ModelSurvey] = {}
    todo = []
    for name in names:
        cached = None if refresh else store.get(name)
        if reusable(cached, export=export, timeout_s=timeout_s, full_depth=full_depth):
            done[name] = cached
        else:
            todo.append(name)
    for survey in run_models(todo, source, families, store, export=export, timeout_s=timeout_s, workers=workers,
                             full_depth=full_depth, on_result=on_result):
        done[survey.name] = survey
    surveyed = [done[n] for n in names]
    return SurveyReport(
        tk_version=__version__, created_at=now_utc(), source=source, versions=store.versions, family=family,
        skip_patterns=list(skip_patterns), export=export, timeout_s=timeout_s, workers=workers,
        available=len(families), counts=survey_counts(surveyed, skipped), wall_s=time.perf_counter() - t0,
        models=surveyed, skipped=skipped, cache_folder=os.fspath(store.folder),
    )


def try_model(name: str, source: str = "torchvision", *, export: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S,
              full_depth: bool = False, cache_dir: str | Path | None = None) -> ModelSurvey:
    """Survey one model afresh with every rung of the ladder tried (``--test-model``); the result is
    stored in the cache like any other.

    Raises:
        InputError: unknown source, or a name that a source with a closed list (torchvision, timm)
            does not list (with the closest names).
    """
    check_source(source)
    store = SurveyStore(cache_dir, source)
    families = store.names() or {}
    if zoo_sources.get(source).closed_list:  # transformers and ultralytics also take hub names, files
        families = list_families(source, store)
        if name not in families:
            import difflib

            close = difflib.get_close_matches(name, list(families), n=5, cutoff=0.5)
            raise InputError(f"unknown {source} model {name!r}",
                             hint=f"closest: {', '.join(close)}" if close else f"`tk discover-models --source {source}` lists them")
    return run_models([name], source, families, store, export=export, timeout_s=timeout_s, all_rungs=True,
                      full_depth=full_depth)[0]

