"""Named models whose characterization the cache already holds: taken from it, not built and run again.

``tk explore --model resnet50`` (and ``tk view``, ``tk profile``, ``tk benchmark --analyze-only``, ``tk
compare --model``) builds the model, runs it once under discovery's hook and characterizes it: 5-8 s
for ResNet-50 on this 2-core machine, most of it importing torch and torchvision and running the
model, and all of it again on every view of the same model. A named model (``--model NAME``) needs
no script to run, so its result is known before anything runs: the request as asked
(``ModelRequest``: name, sizes, dtype, ``model_args``, seed, weights, ...) made with the same tk and
library versions gives the same model, the same inputs and the same counts.

:func:`adopt_cached` is what the pipeline calls before running its inputs. When every input is a
named model and the run asks for nothing but characterization, it looks each one up in the cache (the
cache index: ``Cache.entries``, one read of the index, then the records of the builds whose script is
that name) and takes a record when:

- its ``model_request``, with the fields the loader filled in unset again (``ModelRequest.defaulted``),
  equals the request as asked, and it is the named model itself (depth 0), not one of its submodules;
- tk's version and those of torch and of the source's library (torchvision, transformers: the
  versions every record keeps in ``SystemInfo``) are this run's; other sources (ultralytics, timm,
  factories, local config folders: code or files that may have changed without a version saying
  so) are never taken from the cache;
- the characterization stage itself reuses it (``CharacterizeStage.reuse``: successful, same tk,
  hardware profile and weights mode, traced when ``--trace`` asks).

Then each input's record runs through the pipeline's own ``run_invocation`` as a discovered
invocation would, without a child process: the characterization is reused (``reused from cache``),
build and benchmark outcomes are kept, the record is saved (its last use), and the listener reports
it. When any input does not qualify, nothing is taken and the run goes on as before (each
characterization is still reused by its stage, after the model is built and run). Nothing here
imports torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec

from turnkey_like import __version__
from turnkey_like.errors import TkError
from turnkey_like.records import BuildRecord, ModelRequest, ScriptResult, Status

if TYPE_CHECKING:
    from turnkey_like.events import RunSummary
    from turnkey_like.inputs import InputSpec
    from turnkey_like.pipeline.options import RunOptions

#: Sources whose library version every record keeps (``SystemInfo``), by the distribution's name.
VERSIONED_SOURCES = {"torchvision": "torchvision", "transformers": "transformers"}
#: ``ReportRow`` keys in the index's listing tuple (``cache_index.LISTING_KEYS``) read here.
_SCRIPT, _CHARACTERIZATION = "script", "characterization_status"


def asked(request: ModelRequest) -> ModelRequest:
    """``request`` as it was asked: the fields its loader filled in (``request.defaulted``) unset again."""
    unset = {name: "" if name == "source" else None for name in request.defaulted}
    return msgspec.structs.replace(request, defaulted=[], **unset)


def _applies(options: RunOptions) -> bool:
    """Whether the run asks for characterization only, of the named models themselves."""
    return (options.characterize and options.analyze_only and options.max_depth == 0
            and options.build.rebuild != "always")


def _same_software(record: BuildRecord) -> bool:
    """tk's version, torch's and the source library's are this run's (see the module docstring)."""
    from turnkey_like.system import package_version

    request = record.model_request
    library = VERSIONED_SOURCES.get(request.source)
    if library is None or os.path.exists(request.name):  # unversioned source, or a local folder
        return False
    system = record.system
    return (record.tk_version == __version__ and system.torch == package_version("torch")
            and getattr(system, library) == package_version(library))


def _candidates(pipeline, names: set[str]) -> dict[str, list[str]]:
    """Build names of successful characterizations whose script is one of ``names``, by that name
    (one read of the cache index)."""
    from turnkey_like.cache_index import LISTING_KEYS

    at_script, at_status = LISTING_KEYS.index(_SCRIPT), LISTING_KEYS.index(_CHARACTERIZATION)
    by_base: dict[str, list[str]] = {}
    for name in names:
        by_base.setdefault(os.path.basename(name), []).append(name)
    found: dict[str, list[str]] = {name: [] for name in names}
    entries, _ = pipeline.cache.entries()
    for entry in entries:
        if entry.listing[at_status] == Status.SUCCESSFUL.value:
            for name in by_base.get(entry.listing[at_script], ()):
                found[name].append(entry.name)
    return found


def _result(spec: InputSpec, record: BuildRecord) -> ScriptResult:
    """The input's record rebuilt from a cached build: its model with that one invocation."""
    inv = msgspec.structs.replace(record.invocation)
    model = msgspec.structs.replace(record.model, invocations=[inv], children=[])
    note = (f"taken from the cache (build {record.build_name}, characterized by run "
            f"{inv.characterization.run_id}): the model was not built or run again")
    return ScriptResult(path=spec.model.name, labels={}, selectors=[], status=Status.SUCCESSFUL,
                        entry=spec.entry or None, model_request=record.model_request, notes=[note], models=[model])


def _reusable(pipeline, spec: InputSpec, record: BuildRecord) -> bool:
    """Whether ``record`` answers ``spec`` (request, depth, software) and its characterization stage
    would reuse it (``CharacterizeStage.reuse``, the one rule for that)."""
    from turnkey_like.pipeline.stages import InvocationContext

    request = record.model_request
    if request is None or record.model.depth != 0 or asked(request) != spec.model or not _same_software(record):
        return False
    result = _result(spec, record)
    model = result.models[0]
    ctx = InvocationContext(result=result, model=model, inv=model.invocations[0], live=None,
                            build_dir=pipeline.cache.root / record.build_name, previous=record)
    stage = next(s for s in pipeline.stages if s.name == "characterization")
    return stage.reuse(ctx) is not None


def _find(pipeline, specs: list[InputSpec]) -> list[BuildRecord] | None:
    """One cached record per input (the latest written, where several answer it), or ``None`` when
    an input has none."""
    candidates = _candidates(pipeline, {s.model.name for s in specs})
    chosen = []
    for spec in specs:
        records = []
        for build in candidates[spec.model.name]:
            try:
                records.append(pipeline.cache.load(build))
            except TkError:  # unreadable: the normal run rewrites it
                continue
        fitting = [r for r in records if _reusable(pipeline, spec, r)]
        if not fitting:
            return None
        chosen.append(max(fitting, key=lambda r: r.updated_at or ""))
    return chosen


def adopt_cached(pipeline, specs: list[InputSpec], summary: RunSummary) -> bool:
    """Take every input of ``specs`` from the cache when each is a named model whose characterization
    it holds for this run (the module docstring says when); return whether it did.

    On ``True``, ``summary.results`` holds one record per input, in order, each run through
    ``pipeline.run_invocation`` (characterization reused, build and benchmark kept, the record saved)
    and reported to ``pipeline.listener`` (``script_started``/``script_finished``), and nothing else
    is to run. On ``False`` nothing was done.

    ``pipeline``: the :class:`~turnkey_like.pipeline.runner.Pipeline` (its options, cache, stages,
    listener and ``run_invocation``).
    """
    from turnkey_like.pipeline.channel import LocalEvents

    if not specs or not _applies(pipeline.options) or any(s.model is None or s.selectors or s.model.new_tokens
                                                          for s in specs):
        return False
    records = _find(pipeline, specs)
    if records is None:
        return False
    events = LocalEvents(pipeline)
    for index, (spec, record) in enumerate(zip(specs, records)):
        pipeline.listener.script_started(spec, index)
        result = _result(spec, record)
        pipeline.current = result
        [model] = result.models
        pipeline.run_invocation(result, model, model.invocations[0], None, events=events)
        summary.results.append(result)
        pipeline.current = None
        pipeline.listener.script_finished(result, None)
    return True


__all__ = ["adopt_cached", "asked", "VERSIONED_SOURCES"]
