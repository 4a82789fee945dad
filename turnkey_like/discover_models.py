"""Survey a model zoo through the tracing ladder: ``tk discover-models``.

For each model of a source (torchvision, transformers, ultralytics, timm), in its own child process
(:func:`turnkey_like.launcher.run_isolated`, forked, with a timeout), :func:`survey_model`:

1. builds it with the one zoo loader (:func:`turnkey_like.zoo.load`: no weights; on ``meta`` where
   the loader decides the model is large);
2. runs it once: the dispatch-level count of :func:`turnkey_like.characterize.characterize_call`
   gives the parameter count and MACs (1 MAC = 2 FLOPs);
3. walks the tracing ladder of :func:`turnkey_like.tracing.trace_model` (``fx.symbolic_trace``,
   then ``torch.export`` non-strict, then strict), one ``trace_model`` call per rung, and stops at
   the first rung that works. Every failed rung is recorded with its exception type and first line
   (``errors.one_line``). With ``all_rungs`` (``--test-model``) the rungs after the one that worked
   are tried too. A model built on meta (above the loader's parameter threshold: 30 to 90 layers,
   whose ``torch.export`` takes one to several minutes) is traced as a shallow copy that keeps every
   distinct kind of layer in order (:func:`turnkey_like.zoo.shallow`: Llama 2 of 32 layers,
   Qwen3-Next 4 of 48, Jamba 9 of 32), recorded in ``traced_depth``; its parameters and MACs are
   still counted on the full model. ``full_depth`` (``--full-depth``) traces the model itself;
4. with ``export``, builds it to ONNX with the ONNX build's own child body
   (``turnkey_like.build.build_here``: export, check, optimize, compare with eager PyTorch on ONNX
   Runtime), into a temporary folder that is deleted afterwards. Models on ``meta`` have no weights
   to export: their export is ``skipped``.

A crash, hang or out-of-memory kill ends only that model's child: it is recorded (status ``killed``
or ``timeout``, with the log's last lines) and the survey goes on. Before each step the child writes
its record so far (``progress/<name>.json``), so such a record still holds what was found before
(parameters, MACs, the rungs that failed) and names the step that never ended.

Parallelism (``--workers N``): tk's embedded Dask ``LocalCluster``, the one ``tk benchmark --workers
N`` starts (:func:`turnkey_like.corpus.start_local_cluster`): N worker processes of one thread, one
task per model, each task forking the model's child on its worker (the same
:func:`survey_in_child` as a serial run), with ``cores // N`` torch threads. Each worker imports
torch as it starts and warms itself once (:func:`_warm_parent`); a worker that dies is replaced and
its task retried once. Without ``--workers`` the children are forked from tk itself, one after
another, after the same warm-up: imports of torch, the source library and the zoo (about 4 s for
torch with torchvision here), and a first count and trace, which a child then no longer pays.

Cache: results live under the tk cache root (``Cache(...).root / "discover-models"``), in one folder
per source and library versions (:func:`library_versions`: tk, torch, every source's package
(torchvision, transformers, ultralytics, timm), onnx, onnxruntime, onnxscript; a new version of any
of them starts a new folder)::

    <root>/discover-models/<source>-<key>/
        names.json           the source's model names and families (so a cached run imports nothing)
        models/<name>.json   one ModelSurvey per model (name percent-encoded), written atomically
        progress/<name>.json a running child's record so far (removed when the child has ended)
        logs/<name>.log      each child's stdout/stderr

A cached result is reused unless ``refresh``; unless export is asked and the cached one has no export
outcome; unless ``full_depth`` is asked and the cached one traced a shallow copy; and unless it
timed out under a shorter timeout than the one asked now.

Numbers are plain base units in the records (counts, seconds); renderers format them with
:mod:`turnkey_like.units`.

Sources come from the zoo's registry (:mod:`turnkey_like.zoo.sources`): which ones list their
models, their packages, each model's family and constructor, and whether ``--test-model`` can refuse
an unlisted name. Reading it imports no torch nor any source's library.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Callable, Iterable

import msgspec

from turnkey_like.errors import InputError, one_line
from turnkey_like.records import (
    SCHEMA_VERSION,
    InputDesc,
    Record,
    RecordError,
    Status,
    TraceAttempt,
    decode,
    now_utc,
)
from turnkey_like.zoo import sources as zoo_sources

#: Default seconds a model's child may run (build, run, trace, export) before it is killed.
DEFAULT_TIMEOUT_S = 300.0
#: Hardware profile the MAC count is computed against: a datasheet profile, so no child measures this
#: machine (the survey reports MACs and parameters, not roofline times).
PROFILE = "a100"
SURVEY_DIR = "discover-models"

#: The rungs of the tracing ladder, in order (turnkey_like.tracing.METHODS, without importing torch).
LADDER = ("fx.symbolic_trace", "torch.export(strict=False)", "torch.export(strict=True)")


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


class ExportOutcome(Record, kw_only=True):
    """Whether a model exports to ONNX (``--export``).

    Attributes:
        status: ``successful``, ``error`` (every exporter failed, or the export did not run on ONNX
            Runtime), or ``skipped`` (built on meta: there are no weights to export).
        exporter: ``dynamo`` or ``torchscript``: the exporter that produced the file.
        error: one line: why it failed or was skipped (the exporters' errors, ``;``-joined).
        faithful: the ONNX model's outputs on ONNX Runtime CPU agree with eager PyTorch within the
            fp32 tolerance (``turnkey_like.agreement``); ``None`` when not compared.
        opset: the exported model's default opset.
        size_bytes: the ONNX file and its external data, bytes.
        duration_s: wall time of the export, check, optimization and comparison, seconds.
    """

    status: Status
    exporter: str | None = None
    error: str | None = None
    faithful: bool | None = None
    opset: int | None = None
    size_bytes: int | None = None
    duration_s: float = 0.0


class ModelSurvey(Record, kw_only=True):
    """One model taken through the ladder: what built, ran and traced, and why the rest did not.

    Attributes:
        name: the model's name in its source (``resnet18``, ``bert``, ``yolov8n.yaml``).
        source: ``torchvision``, ``transformers``, ``ultralytics`` or ``timm``.
        family: the group the model belongs to (torchvision: the builder's module below
            ``torchvision.models``, e.g. ``resnet``, ``detection.faster_rcnn``; see :func:`family_of`).
        status: how the model's child ended: ``successful`` (built and ran; tracing may still have
            failed on every rung), ``error`` (the build or the run failed: ``failed_step``),
            ``timeout`` or ``killed`` (the child was killed: a hang, a crash or out of memory).
        failed_step: ``build`` or ``run`` when ``status`` is ``error``; with ``timeout`` or ``killed``
            the step the child was in (``build``, ``run``, ``shallow copy``, a rung of :data:`LADDER`,
            ``export``), the fields before it holding what the child had found; else ``None``.
        error: one line: the exception (type and first line) or how the child ended (and in which
            step: ``timed out after 120 s (child killed) during torch.export(strict=True)``).
        trace_method: the first rung that traced (``fx.symbolic_trace``,
            ``torch.export(strict=False)``, ``torch.export(strict=True)``), ``none`` when every rung
            failed, ``not traced`` when the model never got that far.
        attempts: every rung tried, in order, with its one-line error and seconds.
        node_count: nodes in the traced graph (0 when nothing traced); with ``traced_depth``, the
            shallow copy's graph.
        traced_depth: when the ladder walked a shallow copy instead of the model (a model built on
            meta, unless ``full_depth``; :func:`turnkey_like.zoo.shallow`): each config key that was
            cut -> ``(layers kept, layers in the model)``; empty when the model itself was traced.
        params: parameters (shared ones once), ``None`` when the model did not run.
        macs: multiply-accumulates of one call (1 MAC = 2 FLOPs), ``None`` when it did not run.
        uncounted_ops: op calls the counter has no formula for (MACs may be low when non-zero).
        on_meta: built on the ``meta`` device (no weights): counts are exact, nothing was computed.
        model_class: the model's class name.
        inputs: the call's inputs (name → shape and dtype), as characterization records them.
        constructor: a Python expression that builds the model (for ``--generate-code``), needing
            ``imports``; ``None`` when it could not be written.
        imports: the import lines ``constructor`` needs.
        notes: what the loader chose or overrode (from ``LoadedModel.notes``), then how the survey
            traced it when not as built (a shallow copy, or full depth because the copy failed).
        export: the ONNX export outcome (``--export``), ``None`` when not asked.
        durations: seconds per step: ``build``, ``run`` (the counted call), ``trace`` (the ladder),
            ``export``.
        duration_s: wall time of the model's child, seconds.
        timeout_s: the time limit it ran under, seconds.
        log_excerpt: the last lines of the child's log when it failed.
        surveyed_at: ISO-8601 UTC time the survey of this model finished.
        cached: True when this result was read from the cache rather than computed in this run
            (never stored as ``True``).
    """

    name: str
    source: str
    family: str = ""
    status: Status = Status.SUCCESSFUL
    failed_step: str | None = None
    error: str | None = None
    trace_method: str = "not traced"
    attempts: list[TraceAttempt] = []
    node_count: int = 0
    traced_depth: dict[str, tuple[int, int]] = {}
    params: int | None = None
    macs: int | None = None
    uncounted_ops: int = 0
    on_meta: bool = False
    model_class: str | None = None
    inputs: dict[str, InputDesc] = {}
    constructor: str | None = None
    imports: list[str] = []
    notes: list[str] = []
    export: ExportOutcome | None = None
    durations: dict[str, float] = {}
    duration_s: float = 0.0
    timeout_s: float = DEFAULT_TIMEOUT_S
    log_excerpt: str | None = None
    surveyed_at: str | None = None
    cached: bool = False

    @property
    def traced(self) -> bool:
        """True when some rung of the ladder traced the model."""
        return self.trace_method in LADDER


class SkippedModel(Record, kw_only=True):
    """A model of the source that was not surveyed, and why (nothing is skipped silently)."""

    name: str
    family: str = ""
    reason: str


class ZooNames(Record, kw_only=True):
    """What ``names.json`` holds: the source's model names with their families, in the source's order."""

    source: str
    families: dict[str, str]


class SurveyReport(Record, kw_only=True):
    """What ``tk discover-models --json FILE`` writes: the options, the versions, every model's result.

    Attributes:
        schema_version: :data:`turnkey_like.records.SCHEMA_VERSION`.
        tk_version: tk that wrote the file.
        created_at: ISO-8601 UTC time the survey finished.
        source: the zoo surveyed.
        versions: the library versions the results are keyed by (:func:`library_versions`).
        family, skip_patterns, export, timeout_s, workers: the options of the run.
        available: models the source lists.
        counts: :func:`survey_counts` of ``models`` and ``skipped``.
        wall_s: wall time of the whole command, seconds.
        models: one :class:`ModelSurvey` per model surveyed (cached or not), in the source's order.
        skipped: models not surveyed, with the reason.
        cache_folder: where the results are cached.
    """

    schema_version: int = SCHEMA_VERSION
    tk_version: str = ""
    created_at: str | None = None
    source: str = "torchvision"
    versions: dict[str, str | None] = {}
    family: str | None = None
    skip_patterns: list[str] = []
    export: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    workers: int = 1
    available: int = 0
    counts: dict[str, int] = {}
    wall_s: float = 0.0
    models: list[ModelSurvey] = []
    skipped: list[SkippedModel] = []
    cache_folder: str = ""


# --------------------------------------------------------------------------------------------------
# Counting outcomes (one place; renderers and the sweep read these numbers)
# --------------------------------------------------------------------------------------------------


def survey_counts(models: Iterable[ModelSurvey], skipped: Iterable[SkippedModel] = ()) -> dict[str, int]:
    """Count outcomes: the summary every renderer prints.

    Keys: ``surveyed`` (models with a result), ``traced`` (some rung traced), one key per rung of
    :data:`LADDER` (the rung that worked), ``not_traced`` (built and ran, every rung failed),
    ``build_failed``, ``run_failed``, ``timeout``, ``killed``, ``skipped``, ``cached`` (results read
    from the cache), and with ``--export``: ``exported``, ``export_failed``, ``export_skipped``.
    """
    models = list(models)
    counts = {"surveyed": len(models), "traced": 0, **{m: 0 for m in LADDER}, "not_traced": 0,
              "build_failed": 0, "run_failed": 0, "timeout": 0, "killed": 0,
              "skipped": len(list(skipped)), "cached": 0}
    for m in models:
        counts["cached"] += m.cached
        if m.traced:
            counts["traced"] += 1
            counts[m.trace_method] += 1
        elif m.status is Status.SUCCESSFUL:
            counts["not_traced"] += 1
        if m.status is Status.ERROR:
            counts["build_failed" if m.failed_step == "build" else "run_failed"] += 1
        elif m.status in (Status.TIMEOUT, Status.KILLED):
            counts[m.status.value] += 1
        if m.export is not None:
            key = {Status.SUCCESSFUL: "exported", Status.SKIPPED: "export_skipped"}.get(m.export.status, "export_failed")
            counts[key] = counts.get(key, 0) + 1
    return counts


def failure_types(models: Iterable[ModelSurvey]) -> dict[str, dict[str, int]]:
    """Per rung of the ladder, how often each exception type made it fail: ``{rung: {type: count}}``.

    The type is the text before the first ``:`` of the attempt's one-line error (``errors.one_line``
    writes ``Type: message``). Sorted by count, most frequent first.
    """
    table: dict[str, dict[str, int]] = {m: {} for m in LADDER}
    for model in models:
        for attempt in model.attempts:
            if attempt.ok:
                continue
            kind = (attempt.error or "unknown").split(":", 1)[0].strip() or "unknown"
            per = table.setdefault(attempt.method, {})
            per[kind] = per.get(kind, 0) + 1
    return {rung: dict(sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))) for rung, per in table.items()}


# --------------------------------------------------------------------------------------------------
# Names, families, selection
# --------------------------------------------------------------------------------------------------


def check_source(source: str) -> str:
    """Return ``source`` when the zoo registers it (:func:`turnkey_like.zoo.source_names`); raise
    :class:`InputError` otherwise."""
    names = zoo_sources.source_names()
    if source not in names:
        raise InputError(f"unknown model source {source!r}", hint=f"use --source with one of: {', '.join(names)}")
    return source


def family_of(source: str, name: str) -> str:
    """The family a model is grouped under (what ``--family`` matches, what the tables group by): the
    source's ``family(name)`` (torchvision: the builder's module below ``torchvision.models``, e.g.
    ``resnet``, ``detection.faster_rcnn``; timm: the module that registers the model; transformers:
    the model type; ultralytics: the definition without its scale letter, ``yolov8``; factory: the
    module of ``package.module:factory``). Falls back to the name itself when the source cannot say.
    """
    try:
        return zoo_sources.get(source).family(name)
    except Exception:  # noqa: BLE001 - an unknown name has no family; the survey says why it fails
        return name


def select(families: dict[str, str], family: str | None, skip_patterns: Iterable[str]) -> tuple[list[str], list[SkippedModel]]:
    """Return the names to survey and the models skipped, with the reason.

    Args:
        families: every model name of the source → its family, in the source's order.
        family: keep only models whose name or family contains this text (case-insensitive);
            ``None`` keeps all. Models it leaves out are not "skipped": they were not asked for.
        skip_patterns: models whose name contains one of these texts (case-insensitive) are skipped,
            each with the pattern that matched.
    """
    patterns = [p for p in skip_patterns if p]
    wanted = family.lower() if family else None
    chosen, skipped = [], []
    for name, fam in families.items():
        if wanted and wanted not in name.lower() and wanted not in fam.lower():
            continue
        hit = next((p for p in patterns if p.lower() in name.lower()), None)
        if hit is not None:
            skipped.append(SkippedModel(name=name, family=fam, reason=f"matches --skip-patterns {hit!r}"))
        else:
            chosen.append(name)
    return chosen, skipped


# --------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------


def versioned_packages() -> tuple[str, ...]:
    """Packages whose versions key the cache (a result depends on tk's ladder, torch's tracers, the
    source libraries' model code and the exporter): tk, torch, every source's package, onnx,
    onnxruntime, onnxscript."""
    return ("turnkey_like", "torch", *zoo_sources.source_packages(), "onnx", "onnxruntime", "onnxscript")


def library_versions() -> dict[str, str | None]:
    """Versions of :func:`versioned_packages` (``None`` when not installed), read from the installed
    distributions' metadata without importing them."""
    from turnkey_like import __version__
    from turnkey_like.system import package_version

    versions = {name: package_version(name) for name in versioned_packages()}
    versions["turnkey_like"] = __version__
    return versions


class SurveyCache:
    """The folder of one source's survey results at one set of library versions (see the module doc).

    Args:
        root: the tk cache root (``--cache-dir``), resolved and created by
            :class:`turnkey_like.cache.Cache`.
        source: a registered source (:func:`turnkey_like.zoo.source_names`).
        versions: :func:`library_versions` (the default).

    Raises:
        CacheError: the cache root cannot be created or is not a tk cache.
    """

    def __init__(self, root: str | Path | None, source: str, versions: dict[str, str | None] | None = None):
        from turnkey_like.cache import Cache

        self.versions = versions or library_versions()
        key = hashlib.sha256(repr(sorted(self.versions.items())).encode()).hexdigest()[:12]
        self.folder = Cache(root).root / SURVEY_DIR / f"{source}-{key}"
        self.source = source

    @staticmethod
    def _file_name(name: str) -> str:
        return urllib.parse.quote(name, safe="") or "_"

    def model_path(self, name: str) -> Path:
        """Where a model's :class:`ModelSurvey` is stored."""
        return self.folder / "models" / (self._file_name(name) + ".json")

    def progress_path(self, name: str) -> Path:
        """Where a running model's child writes its record so far (removed once the parent read it)."""
        path = self.folder / "progress" / (self._file_name(name) + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def log_path(self, name: str) -> Path:
        """The log of a model's child (created with its folder)."""
        path = self.folder / "logs" / (self._file_name(name) + ".log")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def names(self) -> dict[str, str] | None:
        """The stored name → family table, or ``None`` when missing or unreadable."""
        try:
            stored = decode((self.folder / "names.json").read_bytes(), ZooNames, what="names.json")
        except (OSError, RecordError):
            return None
        return stored.families

    def save_names(self, families: dict[str, str]) -> None:
        from turnkey_like.files import write_record

        self.folder.mkdir(parents=True, exist_ok=True)
        write_record(self.folder / "names.json", ZooNames(source=self.source, families=families))

    def get(self, name: str) -> ModelSurvey | None:
        """The stored result of ``name`` (``cached=True``), or ``None`` when missing or unreadable."""
        try:
            data = self.model_path(name).read_bytes()
        except OSError:
            return None
        try:
            return msgspec.structs.replace(decode(data, ModelSurvey, what=f"survey of {name}"), cached=True)
        except RecordError:
            return None  # rewritten by this run

    def put(self, survey: ModelSurvey) -> None:
        """Store a result atomically (``files.write_record``)."""
        from turnkey_like.files import write_record

        path = self.model_path(survey.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_record(path, msgspec.structs.replace(survey, cached=False))


def reusable(cached: ModelSurvey | None, *, export: bool, timeout_s: float, full_depth: bool = False) -> bool:
    """True when a cached result answers this run: it exists, has an export outcome when one is
    asked, traced the model itself when ``full_depth`` is asked, and did not time out under a
    shorter limit than ``timeout_s``."""
    if cached is None:
        return False
    if export and cached.export is None:
        return False
    if full_depth and cached.traced_depth:
        return False
    if cached.status is Status.TIMEOUT and cached.timeout_s < timeout_s:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# One model (runs in the child)
# --------------------------------------------------------------------------------------------------


def _load(name: str, source: str):
    """Build ``name`` of ``source`` with the one zoo loader: a ``LoadedModel``."""
    from turnkey_like.records import ModelRequest
    from turnkey_like.zoo import load

    return load(ModelRequest(name=name, source=source))


def _trace_rungs(model, args, kwargs, on_meta: bool, methods: tuple[str, ...]):
    """Walk ``methods`` of the tracing ladder (``tracing.trace_model``, no warm-up), on meta tensors
    when the model is on meta; returns the :class:`~turnkey_like.tracing.TraceResult`."""
    import contextlib

    from turnkey_like.calls import map_tensors
    from turnkey_like.characterize.assemble import meta_weights
    from turnkey_like.tracing import trace_model

    if on_meta:
        args, kwargs = map_tensors(lambda t: t.to("meta"), (tuple(args), dict(kwargs)))
    with meta_weights(model) if on_meta else contextlib.nullcontext():
        return trace_model(model, tuple(args), dict(kwargs), warmup=False, methods=methods)


def _export(model, args, kwargs, on_meta: bool) -> ExportOutcome:
    """Export the model to ONNX with the build's own child body, in a temporary folder."""
    if on_meta:
        return ExportOutcome(status=Status.SKIPPED, error="built on meta: no weights to export")
    from turnkey_like.build import BuildOptions, build_here

    folder = tempfile.mkdtemp(prefix="tk-discover-export-")
    t0 = time.perf_counter()
    try:
        result = build_here(model, tuple(args), dict(kwargs), folder, BuildOptions(), {})
    except Exception as exc:  # noqa: BLE001 - a failed export is an outcome, recorded
        return ExportOutcome(status=Status.ERROR, error=one_line(exc, 500), duration_s=time.perf_counter() - t0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ok = result.faithful is not False
    return ExportOutcome(
        status=Status.SUCCESSFUL if ok else Status.ERROR, exporter=result.exporter, faithful=result.faithful,
        opset=result.opset, size_bytes=result.size_bytes, duration_s=time.perf_counter() - t0,
        error=None if ok else "the ONNX model's outputs differ from eager PyTorch beyond the fp32 tolerance",
    )


def constructor_of(source: str, name: str, model) -> tuple[str | None, list[str]]:
    """A Python expression that builds ``name`` without weights, and the imports it needs: the
    source's ``constructor(name, model)``.

    - torchvision: ``lambda: torchvision.models.<kind>.<builder>(weights=None[, weights_backbone=None]
      [, quantize=True])``;
    - transformers: ``lambda: transformers.<ModelClass>(transformers.<ConfigClass>(**overrides))``
      where ``overrides`` are the loader's changes to the default config that are Python literals;
    - timm: ``lambda: timm.create_model("NAME", pretrained=False)``;
    - ultralytics: ``lambda: ultralytics.YOLO("NAME").model``.

    Returns ``(None, [])`` when no expression can be written (e.g. a ``module:factory`` model, or a
    source no longer registered).
    """
    if source not in zoo_sources.SOURCES:
        return None, []
    return zoo_sources.get(source).constructor(name, model)


def survey_model(name: str, source: str, *, export: bool = False, all_rungs: bool = False,
                 full_depth: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S, family: str | None = None,
                 threads: int | None = None, progress_path: str | None = None) -> ModelSurvey:
    """Build, run, trace (and with ``export`` export) one model; return its :class:`ModelSurvey`.

    Runs in the model's child process (it may crash or hang: the parent's ``run_isolated`` records
    that). A failed build or run is returned as a record (``status=error``, ``failed_step``), never
    raised. When the counted run fails, the ladder is still walked, so the record says whether the
    model traces at all. The rungs are tried one :func:`~turnkey_like.tracing.trace_model` call each
    (in the ladder's order, stopping at the first that works unless ``all_rungs``) so that progress
    can be written between them.

    Args:
        name, source: the model (see :func:`turnkey_like.zoo.load`).
        export: also export it to ONNX (``ExportOutcome``).
        all_rungs: try every rung of the ladder, not only up to the first that works.
        full_depth: trace a model built on meta itself, not its shallow copy (module doc, step 3).
        timeout_s: recorded as the limit the child ran under.
        family: the family (computed with :func:`family_of` when ``None``).
        threads: torch's intra-op threads in this process (``None`` keeps torch's default).
        progress_path: where to write the record so far before each step (``failed_step`` naming
            the step about to run), so that the parent can say what a killed child had found and
            where it stopped; ``None`` writes nothing.
    """
    import torch

    from turnkey_like.files import write_record

    if threads:
        torch.set_num_threads(threads)
    t_start = time.perf_counter()
    durations: dict[str, float] = {}
    survey = ModelSurvey(name=name, source=source, family=family or family_of(source, name), timeout_s=timeout_s)

    def update(**fields) -> ModelSurvey:
        return msgspec.structs.replace(survey, durations={k: round(v, 4) for k, v in durations.items()},
                                       duration_s=time.perf_counter() - t_start, surveyed_at=now_utc(), **fields)

    def checkpoint(step: str) -> None:
        if progress_path is not None:
            write_record(progress_path, update(failed_step=step), fsync=False)

    checkpoint("build")
    t0 = time.perf_counter()
    try:
        loaded = _load(name, source)
    except Exception as exc:  # noqa: BLE001 - recorded as the model's outcome
        durations["build"] = time.perf_counter() - t0
        return update(status=Status.ERROR, failed_step="build", error=one_line(exc, 500))
    durations["build"] = time.perf_counter() - t0
    model, args, kwargs = loaded.model, tuple(loaded.args), dict(loaded.kwargs)
    on_meta = bool(loaded.on_meta)
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        constructor, imports = constructor_of(source, name, model)
    except Exception:  # noqa: BLE001 - the registry entry is a convenience; the survey goes on
        constructor, imports = None, []
    survey = msgspec.structs.replace(survey, on_meta=on_meta, model_class=type(model).__name__,
                                     constructor=constructor, imports=imports, notes=list(loaded.notes or []))

    from turnkey_like.characterize import characterize_call

    checkpoint("run")
    t0 = time.perf_counter()
    run_error = None
    try:
        with torch.no_grad():  # inference, as the pipeline counts: autograd would keep every activation
            char = characterize_call(model, args, kwargs, hardware=PROFILE, no_weights=on_meta, warmup=True)
    except Exception as exc:  # noqa: BLE001 - the model's own call failed: still walk the ladder
        run_error = one_line(exc, 500)
    else:
        survey = msgspec.structs.replace(survey, params=char.totals.params, macs=char.totals.macs,
                                         uncounted_ops=char.totals.uncounted_ops, inputs=char.inputs,
                                         on_meta=char.no_weights)
    durations["run"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    target = (model, args, kwargs)
    if survey.on_meta and not full_depth:
        checkpoint("shallow copy")
        from turnkey_like.zoo import shallow

        try:
            copy = shallow(loaded)
        except Exception as exc:  # noqa: BLE001 - the model itself is traced instead, and that is said
            survey = msgspec.structs.replace(survey, notes=survey.notes + [
                f"traced at full depth: its shallow copy did not build ({one_line(exc, 200)})"])
        else:
            if copy is not None:
                shallow_model, cuts = copy
                target = (shallow_model.model, tuple(shallow_model.args), dict(shallow_model.kwargs))
                cut_text = ", ".join(f"{key} {kept} of {of}" for key, (kept, of) in cuts.items())
                survey = msgspec.structs.replace(survey, traced_depth=cuts, notes=survey.notes + [
                    f"traced a shallow copy ({cut_text}: every distinct layer kept; --full-depth traces "
                    "the model itself)"])
    for rung in LADDER:
        if survey.traced and not all_rungs:
            break
        checkpoint(rung)
        traced = _trace_rungs(*target, survey.on_meta, (rung,))
        survey = msgspec.structs.replace(survey, attempts=survey.attempts + traced.attempts)
        if traced.ok and not survey.traced:
            survey = msgspec.structs.replace(survey, trace_method=traced.method, node_count=traced.node_count)
        durations["trace"] = time.perf_counter() - t0
        del traced
    if not survey.traced:
        survey = msgspec.structs.replace(survey, trace_method="none")

    if export:
        checkpoint("export")
        t0 = time.perf_counter()
        outcome = (ExportOutcome(status=Status.SKIPPED, error="the model's own call failed")
                   if run_error else _export(model, args, kwargs, survey.on_meta))
        durations["export"] = time.perf_counter() - t0
        survey = msgspec.structs.replace(survey, export=outcome)
    if run_error:
        return update(status=Status.ERROR, failed_step="run", error=run_error)
    return update()


# --------------------------------------------------------------------------------------------------
# The survey (runs in the parent)
# --------------------------------------------------------------------------------------------------


def _child_failure(name: str, source: str, family: str, outcome, timeout_s: float, export: bool,
                   progress_path: Path) -> ModelSurvey:
    """The record of a model whose child did not return one (timeout, crash, kill): what the child
    had found before (its last progress record, when readable), the step it was in, and how it ended."""
    try:
        partial = decode(progress_path.read_bytes(), ModelSurvey, what=f"progress of {name}")
    except (OSError, RecordError):
        partial = ModelSurvey(name=name, source=source, family=family)
    step = partial.failed_step
    return msgspec.structs.replace(
        partial, status=outcome.status, error=outcome.error + (f" during {step}" if step else ""),
        trace_method="not traced" if not partial.traced else partial.trace_method,
        log_excerpt=outcome.log_excerpt, duration_s=outcome.duration_s, timeout_s=timeout_s, surveyed_at=now_utc(),
        export=(partial.export or ExportOutcome(status=Status.SKIPPED, error="the model's child did not finish"))
        if export else None,
    )


def _warm_parent(source: str, export: bool) -> None:
    """Pay once, in the parent before forking, what every child would pay on its first model (see the
    module doc): import torch, the source's library and loader, counting, tracing (and with
    ``export`` the build), then count and trace a one-layer model, which initialises the dispatch
    counter and ``torch.export`` (2.5 s and 1 s on their first call here; a few ms after)."""
    import importlib

    modules = ["torch", "turnkey_like.characterize.assemble", "turnkey_like.characterize.counter", "turnkey_like.tracing"]
    if source in zoo_sources.SOURCES:  # its library (imported by its package's name) and its module
        package = zoo_sources.get(source).package
        modules += ([package] if package else []) + [zoo_sources.SOURCES[source]]
    modules += ["turnkey_like.zoo", "turnkey_like.zoo.inputs", "turnkey_like.zoo.factory"] + (
        ["turnkey_like.build", "onnxscript"] if export else [])
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a missing library fails each model's build, with its reason
            pass
    import torch

    from turnkey_like.characterize import characterize_call
    from turnkey_like.tracing import trace_model

    model, x = torch.nn.Sequential(torch.nn.Linear(2, 2)), torch.zeros(1, 2)
    try:
        characterize_call(model, (x,), {}, hardware=PROFILE)
        trace_model(model, (x,), {}, warmup=False, methods=LADDER[1:])
    except Exception:  # noqa: BLE001 - only a warm-up: each child does the real work and records it
        pass


def survey_in_child(name: str, source: str, family: str, cache: SurveyCache, *, export: bool, timeout_s: float,
                    all_rungs: bool = False, full_depth: bool = False, threads: int | None = None) -> ModelSurvey:
    """Survey one model in a child of this process (``launcher.run_isolated``, forked, ``timeout_s``)
    and return its record: the child's own, or, when the child did not return one (timeout, crash,
    kill), what its last progress record says (:func:`_child_failure`). Runs in tk (serial) or on a
    Dask worker (``--workers N``); never raises for the model's failures."""
    from turnkey_like.launcher import log_tail, run_isolated

    log = cache.log_path(name)
    log.write_text("")
    progress = cache.progress_path(name)
    progress.unlink(missing_ok=True)
    outcome = run_isolated(survey_model, name, source, export=export, all_rungs=all_rungs, full_depth=full_depth,
                           timeout_s=timeout_s, family=family, threads=threads, progress_path=os.fspath(progress),
                           log_path=log, start_method="fork")
    try:
        if outcome.status is not Status.SUCCESSFUL or not isinstance(outcome.value, ModelSurvey):
            return _child_failure(name, source, family, outcome, timeout_s, export, progress)
    finally:
        progress.unlink(missing_ok=True)
    survey = outcome.value
    if survey.status is not Status.SUCCESSFUL:
        survey = msgspec.structs.replace(survey, log_excerpt=log_tail(log))
    return msgspec.structs.replace(survey, duration_s=outcome.duration_s)


#: (source, export) pairs this process has warmed (:func:`_warm_parent`), so a Dask worker warms once
_WARMED: set[tuple[str, bool]] = set()


def _survey_task(name: str, source: str, family: str, cache: SurveyCache, export: bool, timeout_s: float,
                 all_rungs: bool, full_depth: bool, threads: int | None) -> ModelSurvey:
    """One model's Dask task (``--workers N``): warm this worker once, then :func:`survey_in_child`."""
    if (source, export) not in _WARMED:
        _warm_parent(source, export)
        _WARMED.add((source, export))
    return survey_in_child(name, source, family, cache, export=export, timeout_s=timeout_s, all_rungs=all_rungs,
                           full_depth=full_depth, threads=threads)


def run_models(names: list[str], source: str, families: dict[str, str], cache: SurveyCache, *,
               export: bool, timeout_s: float, workers: int = 1, all_rungs: bool = False,
               full_depth: bool = False, on_result: Callable[[ModelSurvey, int, int], None] | None = None) -> list[ModelSurvey]:
    """Survey ``names``, each in its own child (:func:`survey_in_child`); store each result in
    ``cache`` as it arrives.

    One worker: the children are forked from this process, one after another. ``workers`` > 1: on
    tk's embedded Dask ``LocalCluster`` (:func:`turnkey_like.corpus.start_local_cluster`, the one
    ``tk benchmark --workers N`` uses): one task per model, each forking the model's child on its
    worker, with ``cores // workers`` torch threads. A worker that dies is replaced and its task
    retried once, then the model is recorded ``killed``.

    Args:
        on_result: called here as each result arrives, with the result, how many are done and how
            many in all (progress lines).

    Returns:
        The results in the order of ``names``.

    Raises:
        InputError: ``workers`` > 1 without Dask's ``distributed`` package.
    """
    if not names:
        return []
    results: dict[str, ModelSurvey] = {}

    def arrived(survey: ModelSurvey) -> None:
        cache.put(survey)
        results[survey.name] = survey
        if on_result is not None:
            on_result(survey, len(results), len(names))

    def family(name: str) -> str:
        return families.get(name) or family_of(source, name)

    if workers <= 1:
        _warm_parent(source, export)
        for name in names:
            arrived(survey_in_child(name, source, family(name), cache, export=export, timeout_s=timeout_s,
                                    all_rungs=all_rungs, full_depth=full_depth))
        return [results[n] for n in names]

    from turnkey_like.corpus import start_local_cluster

    client, stop = start_local_cluster(workers)
    try:
        from distributed import as_completed

        # N children share the cores: each gets its share of torch threads instead of all of them each
        threads = max(1, (os.cpu_count() or 1) // workers)
        futures = {client.submit(_survey_task, name, source, family(name), cache, export, timeout_s, all_rungs,
                                 full_depth, threads, key=f"tk-survey-{uuid.uuid4().hex}", pure=False): name for name in names}
        for future in as_completed(futures):
            name = futures[future]
            try:
                survey = future.result()
            except Exception as exc:  # noqa: BLE001 - the task itself failed (its worker died twice, ...)
                killed = type(exc).__name__ == "KilledWorker"
                survey = ModelSurvey(
                    name=name, source=source, family=family(name), timeout_s=timeout_s, surveyed_at=now_utc(),
                    status=Status.KILLED if killed else Status.ERROR, trace_method="not traced",
                    error=("the Dask worker surveying it died twice (killed, or out of memory)" if killed
                           else f"the Dask task failed: {one_line(exc)}"))
            arrived(survey)
    finally:
        stop()
    return [results[n] for n in names]


def list_families(source: str, cache: SurveyCache, refresh: bool = False) -> dict[str, str]:
    """Every model name of ``source`` → its family, from the cache unless ``refresh`` (then from
    :func:`turnkey_like.zoo.list_names` and :func:`family_of`, and stored)."""
    families = None if refresh else cache.names()
    if families is None:
        from turnkey_like.zoo import list_names

        families = {name: family_of(source, name) for name in list_names(source)}
        cache.save_names(families)
    return families


def discover(source: str = "torchvision", *, family: str | None = None, skip_patterns: Iterable[str] = (),
             export: bool = False, workers: int = 1, timeout_s: float = DEFAULT_TIMEOUT_S, refresh: bool = False,
             full_depth: bool = False, cache_dir: str | Path | None = None, models: list[str] | None = None,
             on_result: Callable[[ModelSurvey, int, int], None] | None = None) -> SurveyReport:
    """Survey the models of ``source``: cached results where they answer, a child per model for the rest.

    Args:
        source: a registered source (:func:`turnkey_like.zoo.source_names`).
        family: only models whose name or family contains this text.
        skip_patterns: skip (and list) models whose name contains one of these texts.
        export: also try the ONNX export of each model.
        workers: models surveyed at once (one child each).
        timeout_s: seconds each model's child may run.
        refresh: survey again, ignoring cached results (and the cached name list).
        full_depth: trace models built on meta themselves, not a shallow copy (:func:`survey_model`).
        cache_dir: the tk cache root (``--cache-dir``).
        models: survey these names instead of every model the source lists (``--models``: hub
            names, ``.yaml`` files, ``package.module:factory`` models with source ``factory``).
        on_result: progress callback (see :func:`run_models`).

    Returns:
        A :class:`SurveyReport` (``wall_s`` measured here).

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
    cache = SurveyCache(cache_dir, source)
    if models:
        families = {name: family_of(source, name) for name in dict.fromkeys(models)}
    elif not zoo_sources.get(source).listed:
        raise InputError(f"the {source} source has no list of models", hint="name them with --models NAME ...")
    else:
        families = list_families(source, cache, refresh)
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
        cached = None if refresh else cache.get(name)
        if reusable(cached, export=export, timeout_s=timeout_s, full_depth=full_depth):
            done[name] = cached
        else:
            todo.append(name)
    for survey in run_models(todo, source, families, cache, export=export, timeout_s=timeout_s, workers=workers,
                             full_depth=full_depth, on_result=on_result):
        done[survey.name] = survey
    models = [done[n] for n in names]
    return SurveyReport(
        tk_version=__version__, created_at=now_utc(), source=source, versions=cache.versions, family=family,
        skip_patterns=list(skip_patterns), export=export, timeout_s=timeout_s, workers=workers,
        available=len(families), counts=survey_counts(models, skipped), wall_s=time.perf_counter() - t0,
        models=models, skipped=skipped, cache_folder=os.fspath(cache.folder),
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
    cache = SurveyCache(cache_dir, source)
    families = cache.names() or {}
    if zoo_sources.get(source).closed_list:  # transformers and ultralytics also take hub names, files
        families = list_families(source, cache)
        if name not in families:
            import difflib

            close = difflib.get_close_matches(name, list(families), n=5, cutoff=0.5)
            raise InputError(f"unknown {source} model {name!r}",
                             hint=f"closest: {', '.join(close)}" if close else f"`tk discover-models --source {source}` lists them")
    return run_models([name], source, families, cache, export=export, timeout_s=timeout_s, all_rungs=True,
                      full_depth=full_depth)[0]


# --------------------------------------------------------------------------------------------------
# Code generation
# --------------------------------------------------------------------------------------------------


def generate_code(report: SurveyReport) -> str:
    """A Python module text: ``MODEL_REGISTRY = {name: constructor}`` for the models that traced,
    grouped by family (a comment line per family), each entry's trace method in a comment.

    Constructors build the model without weights (see :func:`constructor_of`). Models that did not
    trace, or have no constructor, are named in a closing comment. The text compiles (the tests
    compile and execute it).
    """
    entries = [m for m in report.models if m.traced and m.constructor]
    left = [m.name for m in report.models if not (m.traced and m.constructor)]
    imports = sorted({line for m in entries for line in m.imports})
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items() if v)
    lines = [
        f'"""{report.source} models that trace, as surveyed by `tk discover-models` on {report.created_at}.',
        "",
        f"{len(entries)} of {len(report.models)} surveyed models traced ({versions}).",
        "Each value builds the model without pretrained weights; the comment names the tracer that worked.",
        '"""',
        "",
        *imports,
        "",
        "MODEL_REGISTRY = {",
    ]
    by_family: dict[str, list[ModelSurvey]] = {}
    for m in entries:
        by_family.setdefault(m.family or "other", []).append(m)
    for fam in sorted(by_family):
        lines.append(f"    # {fam}")
        for m in by_family[fam]:
            lines.append(f"    {json.dumps(m.name)}: {m.constructor},  # {m.trace_method}")
    lines.append("}")
    if left:
        lines.append("")
        lines.append(f"# Not in the registry (did not trace, or did not build): {len(left)}")
        for i in range(0, len(left), 4):
            lines.append("#   " + ", ".join(left[i:i + 4]))
    return "\n".join(lines) + "\n"


__all__ = [
    "DEFAULT_TIMEOUT_S", "LADDER", "ExportOutcome", "ModelSurvey", "SkippedModel", "SurveyCache",
    "SurveyReport", "ZooNames", "constructor_of", "discover", "failure_types", "family_of", "generate_code",
    "library_versions", "reusable", "run_models", "select", "survey_counts", "survey_model", "try_model",
]
