"""What ``tk discover-models`` records: one model taken through the tracing ladder (:class:`ModelSurvey`,
with its ONNX :class:`ExportOutcome`), a model left out (:class:`SkippedModel`), a source's name list
(:class:`ZooNames`) and a whole survey (:class:`SurveyReport`); and the counts every renderer prints
(:func:`survey_counts`, :func:`failure_types`), computed here once.

The survey runs in ``turnkey_like.pipeline.survey`` (one model in its child) and
``turnkey_like.corpus.survey`` (many, serially or on Dask); ``turnkey_like.zoo.survey`` keeps the
results under the cache root. Numbers are plain base units (counts, seconds).
"""

from __future__ import annotations

from typing import Iterable

from turnkey_like.records.base import Record, Status
from turnkey_like.records.costs import InputDesc, TraceAttempt
from turnkey_like.records.codec import SCHEMA_VERSION

#: Default seconds a model's child may run (build, run, trace, export) before it is killed.
DEFAULT_TIMEOUT_S = 300.0

#: The rungs of the tracing ladder, in order (turnkey_like.tracing.METHODS, without importing torch).
LADDER = ("fx.symbolic_trace", "torch.export(strict=False)", "torch.export(strict=True)")


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
            ``torchvision.models``, e.g. ``resnet``, ``detection.faster_rcnn``; see ``turnkey_like.zoo.survey.family_of``).
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
        versions: the library versions the results are keyed by (``turnkey_like.zoo.survey.library_versions``).
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
