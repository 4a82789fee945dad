"""``--resume`` bookkeeping: each input's identity and fingerprint, and the record of how it last ended.

One :class:`~turnkey_like.records.CorpusInput` per input under ``<cache>/.corpus/inputs/<key>.json``
(a :class:`~turnkey_like.store.RecordStore`), written when the input ends, whatever the run (serial
or Dask); :meth:`InputBook.finished` answers whether a later run can skip it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

import msgspec

from turnkey_like.errors import InputError, TkError, one_line
from turnkey_like.records import CorpusInput, Invocation, ModelInfo, ScriptResult, Status, encode, now_utc
from turnkey_like.store import RecordStore

if TYPE_CHECKING:
    from turnkey_like.inputs import InputSpec
    from turnkey_like.pipeline import Pipeline, RunOptions

log = logging.getLogger(__name__)

#: folder of the cache root that holds corpus bookkeeping (never a build: build names start with a
#: letter or digit)
CORPUS_DIR = ".corpus"
#: per-input fingerprints (``--resume``), one record per input
INPUTS_DIR = "inputs"
#: outcomes that do not finish a stage: an input with one of them in a requested stage is not complete
UNFINISHED = frozenset({Status.NOT_STARTED, Status.RUNNING, Status.INTERRUPTED})


def requested_stages(options: RunOptions) -> list[str]:
    """The stages a run with ``options`` asks for, in order."""
    stages = ["characterization"] if options.characterize else []
    if not options.analyze_only:
        stages.append("build")
        if not options.build_only:
            stages.append("benchmark")
    return stages


def input_key(spec: InputSpec) -> str:
    """The identity of an input across runs: its path (or named model) and selectors (16 hex chars)."""
    identity = [str(spec.path), sorted(spec.selectors), spec.model]
    return hashlib.sha256(encode(identity)).hexdigest()[:16]


def input_fingerprint(spec: InputSpec, options: RunOptions) -> str:
    """What decides whether an earlier outcome of ``spec`` still answers this run (sha256 hex).

    It covers the input's bytes (script or ``.onnx`` file; a named model's request), the scripts'
    arguments, the discovery depth, ``--input-shape`` overrides and the requested stages.

    Raises:
        InputError: the input file cannot be read.
    """
    digest = hashlib.sha256()
    if spec.model is None:
        try:
            with open(spec.path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError as e:
            raise InputError(f"{spec.path}: cannot read ({e.strerror})") from None
    digest.update(encode([spec.model, options.script_args, options.max_depth, requested_stages(options),
                          sorted(spec.selectors), {k: list(v) for k, v in options.input_shapes.items()}]))
    return digest.hexdigest()


def _strip_results(result: ScriptResult) -> ScriptResult:
    """``result`` without the stage payloads (they live in the build records): a copy that shares
    every part without a payload with ``result``, to be written and dropped (never changed).

    Only invocations with a stage payload are copied: of a sweep's 10,000 invocations, the one
    selected (``benchmarks/discovery_scale.py``; a copy through the codec took 0.18 s).
    """
    def model(info: ModelInfo) -> ModelInfo:
        return msgspec.structs.replace(info, invocations=[invocation(inv) for inv in info.invocations],
                                       children=[model(child) for child in info.children])

    def invocation(inv: Invocation) -> Invocation:
        changes = {name: msgspec.structs.replace(stage, result=None, kept=None)
                   for name, stage in inv.stages().items() if stage.result is not None or stage.kept is not None}
        return msgspec.structs.replace(inv, **changes) if changes else inv

    return msgspec.structs.replace(result, models=[model(info) for info in result.models])


class InputBook:
    """The client's record of each input's last outcome, for ``--resume`` (``<cache>/.corpus/inputs``).

    One :class:`~turnkey_like.records.CorpusInput` per input (by :func:`input_key`) in a
    :class:`~turnkey_like.store.RecordStore`, written when the input ends, whatever the run.
    """

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.store = RecordStore(pipeline.cache.root / CORPUS_DIR / INPUTS_DIR, CorpusInput, "corpus input record")

    def record(self, spec: InputSpec, result: ScriptResult) -> None:
        """Remember how ``spec`` ended in this run (a failure to write is logged, never raised)."""
        try:
            entry = CorpusInput(key=input_key(spec), entry=spec.entry or str(spec.path),
                                fingerprint=input_fingerprint(spec, self.pipeline.options),
                                run_id=self.pipeline.run_id, finished_at=now_utc(), result=_strip_results(result))
            self.store.put(entry.key, entry, fsync=False)
        except (OSError, TkError) as e:
            log.warning("%s: could not record the input for --resume: %s", spec.entry or spec.path, one_line(e))

    def finished(self, spec: InputSpec, retry_failed: bool) -> ScriptResult | None:
        """The input's result rebuilt from the cache when it needs no work, else ``None``.

        Needs no work: the fingerprint is unchanged, and every selected invocation has a final outcome
        in the cache for every requested stage (failures included, unless ``retry_failed``).
        """
        entry = self.store.get(input_key(spec))
        try:
            if entry is None or entry.fingerprint != input_fingerprint(spec, self.pipeline.options):
                return None
        except TkError:
            return None
        result = entry.result
        if result.status in UNFINISHED or (retry_failed and result.status == Status.ERROR):
            return None
        stages = requested_stages(self.pipeline.options)
        for _model, inv in result.invocations():
            if not inv.selected:
                continue
            try:
                record = self.pipeline.cache.load(inv.build_name)
            except TkError:
                return None
            for name in stages:
                stage = getattr(record.invocation, name)
                if stage.status in UNFINISHED or (retry_failed and stage.failed):
                    return None
                setattr(inv, name, stage)
        return result


class Recording:
    """Wraps a listener: writes each input's fingerprint when it ends (serial runs)."""

    def __init__(self, inner, book: InputBook):
        self.inner, self.book = inner, book
        self._spec: InputSpec | None = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def script_started(self, spec, index):
        self._spec = spec
        self.inner.script_started(spec, index)

    def script_finished(self, result, error):
        if self._spec is not None:
            self.book.record(self._spec, result)
        self.inner.script_finished(result, error)
