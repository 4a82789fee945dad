"""The zoo's side of ``tk discover-models``: which models a source has and how they are grouped, which
to survey, where their results are kept, when a kept result still answers, and the registry code
written from a survey.

Nothing here builds a model or starts a process: one model's survey runs in its own child
(``turnkey_like.pipeline.survey``), many at once through the corpus runner
(``turnkey_like.corpus.survey``). The records are in ``turnkey_like.records.survey``.

Results live under the tk cache root (``Cache(...).root / "discover-models"``), in one folder per
source and library versions (:func:`library_versions`: tk, torch, every source's package
(torchvision, transformers, ultralytics, timm), onnx, onnxruntime, onnxscript; a new version of any
of them starts a new folder), kept by :class:`SurveyStore`::

    <root>/discover-models/<source>-<key>/
        names.json           the source's model names and families (so a cached run imports nothing)
        models/<name>.json   one ModelSurvey per model (name percent-encoded), written atomically
        logs/<name>.log      each child's stdout/stderr

Sources come from the zoo's registry (:mod:`turnkey_like.zoo.sources`): which ones list their
models, their packages, each model's family and constructor, and whether ``--test-model`` can refuse
an unlisted name. Reading it imports no torch nor any source's library.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

import msgspec

from turnkey_like.errors import InputError
from turnkey_like.records import ModelSurvey, SkippedModel, Status, SurveyReport, ZooNames
from turnkey_like.store import RecordStore, key_file_name
from turnkey_like.zoo import sources as zoo_sources

SURVEY_DIR = "discover-models"


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
# The store
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


class SurveyStore:
    """The results of one source's survey at one set of library versions (see the module doc): a
    :class:`~turnkey_like.store.RecordStore` of :class:`~turnkey_like.records.ModelSurvey` under the
    cache root, the source's name list, and each model's log.

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
        self.models = RecordStore(self.folder / "models", ModelSurvey, "survey of")
        self._names = RecordStore(self.folder, ZooNames, "model names of")

    def log_path(self, name: str) -> Path:
        """The log of a model's child (its folder created)."""
        path = self.folder / "logs" / (key_file_name(name) + ".log")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def names(self) -> dict[str, str] | None:
        """The stored name → family table, or ``None`` when missing or unreadable."""
        stored = self._names.get("names")
        return stored.families if stored is not None else None

    def save_names(self, families: dict[str, str]) -> None:
        """Store the source's name → family table (``names.json``)."""
        self._names.put("names", ZooNames(source=self.source, families=families))

    def get(self, name: str) -> ModelSurvey | None:
        """The stored result of ``name`` (``cached=True``), or ``None`` when missing or unreadable."""
        survey = self.models.get(name)
        return msgspec.structs.replace(survey, cached=True) if survey is not None else None

    def put(self, survey: ModelSurvey) -> None:
        """Store a result atomically."""
        self.models.put(survey.name, msgspec.structs.replace(survey, cached=False))


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


def list_families(source: str, store: SurveyStore, refresh: bool = False) -> dict[str, str]:
    """Every model name of ``source`` → its family, from the cache unless ``refresh`` (then from
    :func:`turnkey_like.zoo.list_names` and :func:`family_of`, and stored)."""
    families = None if refresh else store.names()
    if families is None:
        from turnkey_like.zoo import list_names

        families = {name: family_of(source, name) for name in list_names(source)}
        store.save_names(families)
    return families


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
