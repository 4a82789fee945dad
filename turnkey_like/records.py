"""The core records every stage of the pipeline reads and writes.

Plain dataclasses, JSON-serialisable through :func:`to_dict` / the ``from_dict`` class methods.
Data is computed once into these records and rendered many ways (terminal, ``--json``, CSV,
Markdown); renderers never compute.

Hierarchy::

    ScriptResult            one user script (or .onnx file) given on the command line
      └─ ModelInfo          one model architecture (instances with the same repr merge)
           ├─ Invocation    one distinct input signature the model was called with
           │    └─ StageResult x3   characterization, build, benchmark
           └─ ModelInfo...  submodules down to --max-depth, each with its own invocations

A :class:`BuildRecord` is what the cache stores for one invocation: the invocation plus the model
and script facts needed to read it alone (see ``turnkey_like.cache``).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class Record:
    """Mixin for stage records: ``to_dict()`` via :func:`to_dict`, and ``from_dict()`` that ignores
    keys it does not know (so records written by a newer tk still load)."""

    def to_dict(self) -> dict:
        """Plain JSON-able dict of this record."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Rebuild the record from :meth:`to_dict`'s output (unknown keys ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class Status(str, enum.Enum):
    """State of one pipeline stage for one invocation.

    ``running`` is written when a stage starts, with the pid of the process doing it; a reader that
    finds ``running`` whose process is gone reports it as ``killed`` (see ``turnkey_like.cache``).
    """

    NOT_STARTED = "not_started"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    ERROR = "error"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    KILLED = "killed"


@dataclass
class TensorSpec:
    """One leaf of a call's input signature.

    Attributes:
        name: the argument's name as in HASHING.md: a keyword's own name, ``Positional Arg N`` for
            positional arguments, ``name[i]`` / ``name[i][j]`` for list/tuple elements and
            ``name['key']`` for dict values.
        kind: ``tensor`` (torch tensor or numpy array), ``scalar`` (bool/int/float), or ``other``
            (anything else; recorded by type name and left out of the hash, see ``hashing``).
        shape: tensor shape, ``(1,)`` for scalars, ``None`` for ``other``.
        dtype: numpy dtype name for tensors (``float32``, ``int64``, ...), the Python type name
            for scalars (``bool``, ``int``, ``float``) and for ``other``.
        device: ``cpu``, ``cuda:0``, ... for tensors; ``None`` otherwise.
    """

    name: str
    kind: str
    shape: tuple[int, ...] | None
    dtype: str
    device: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        shape = d.get("shape")
        return cls(
            name=d["name"],
            kind=d["kind"],
            shape=tuple(shape) if shape is not None else None,
            dtype=d["dtype"],
            device=d.get("device"),
        )


@dataclass
class StageResult:
    """Outcome of one stage (characterization, build or benchmark) for one invocation.

    Attributes:
        status: see :class:`Status`.
        duration_s: wall time of the stage in seconds (``None`` until it ends).
        started_at: ISO-8601 UTC time the stage started.
        pid: process id doing the stage while ``status`` is ``running``.
        error: one-line error message when the stage did not succeed.
        log_excerpt: the last lines of the stage's log when it failed.
        result: the stage's own record as a dict (``Characterization.to_dict()``,
            ``BuildResult.to_dict()``, ``BenchmarkResult.to_dict()``), ``None`` until successful.
        reason: why the stage was skipped (e.g. ``not selected``, ``--analyze-only``), or where a
            result came from when this run did not compute it (``reused from cache``,
            ``kept from an earlier run``).
    """

    status: Status = Status.NOT_STARTED
    duration_s: float | None = None
    started_at: str | None = None
    pid: int | None = None
    error: str | None = None
    log_excerpt: str | None = None
    result: dict | None = None
    reason: str | None = None

    @classmethod
    def from_dict(cls, d: dict | None) -> "StageResult":
        if not d:
            return cls()
        d = dict(d)
        d["status"] = Status(d.get("status", "not_started"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Invocation:
    """One distinct input signature a model was called with.

    Attributes:
        hash: invocation hash (8 hex chars, HASHING.md), what ``script.py::HASH`` selects.
        parent_hash: the enclosing model's invocation hash for submodules, ``None`` at top level.
        signature: the flattened inputs, in the order HASHING.md walks them (sorted names).
        executed: how many times the model ran with this signature.
        time_s: total wall time spent in those calls, seconds.
        selected: False when ``::HASH`` selectors exclude it; later stages then skip it.
        hash_note: set when an input could not be hashed the TurnkeyML way and a fallback
            representation was used (see ``hashing.describe_inputs``).
        build_name: the cache folder of this invocation (``<stem>[_<author>]_<hash>``).
        training: the model was in training mode at the first call. Characterization counts the
            call as it ran; build and benchmark always use eval mode (an inference benchmark).
        characterization, build, benchmark: one :class:`StageResult` per stage.
    """

    hash: str
    parent_hash: str | None
    signature: list[TensorSpec]
    executed: int = 0
    time_s: float = 0.0
    selected: bool = True
    hash_note: str | None = None
    build_name: str | None = None
    training: bool = False
    characterization: StageResult = field(default_factory=StageResult)
    build: StageResult = field(default_factory=StageResult)
    benchmark: StageResult = field(default_factory=StageResult)

    def stages(self) -> dict[str, StageResult]:
        """The three stage results by name, in pipeline order."""
        return {
            "characterization": self.characterization,
            "build": self.build,
            "benchmark": self.benchmark,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Invocation":
        return cls(
            hash=d["hash"],
            parent_hash=d.get("parent_hash"),
            signature=[TensorSpec.from_dict(s) for s in d.get("signature", [])],
            executed=d.get("executed", 0),
            time_s=d.get("time_s", 0.0),
            selected=d.get("selected", True),
            hash_note=d.get("hash_note"),
            build_name=d.get("build_name"),
            training=d.get("training", False),
            characterization=StageResult.from_dict(d.get("characterization")),
            build=StageResult.from_dict(d.get("build")),
            benchmark=StageResult.from_dict(d.get("benchmark")),
        )


@dataclass
class ModelInfo:
    """One model architecture discovered in a script.

    Attributes:
        name: display name: the variable the script binds the model to, the attribute path
            (``model.fc``) for submodules, else the class name.
        class_name: ``type(model).__name__``.
        qualified_class: ``module.QualName`` of the class.
        model_type: ``pytorch`` or ``onnx``.
        source_file, source_line: where the model was created (``location_kind == "created"``) or,
            when that cannot be found, first called (``"first_call"``).
        depth: 0 for models the script calls itself, N for submodules at ``--max-depth`` N.
        parent_hash: model hash of the enclosing model for submodules.
        params: parameter count; a parameter shared between submodules counts once.
        param_bytes: bytes of those parameters at their real dtypes.
        model_hash: 8 hex chars (HASHING.md).
        compiled: True when the script called a ``torch.compile``d wrapper of this model.
        invocations: one per distinct input signature, in first-call order.
        children: submodules within ``--max-depth``, in first-call order.
    """

    name: str
    class_name: str
    qualified_class: str
    model_hash: str
    model_type: str = "pytorch"
    source_file: str | None = None
    source_line: int | None = None
    location_kind: str = "created"
    depth: int = 0
    parent_hash: str | None = None
    params: int = 0
    param_bytes: int = 0
    compiled: bool = False
    invocations: list[Invocation] = field(default_factory=list)
    children: list["ModelInfo"] = field(default_factory=list)

    def walk(self):
        """Yield this model and every submodule below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def summary(self) -> "ModelInfo":
        """A copy without invocations and children (what a :class:`BuildRecord` stores)."""
        return dataclasses.replace(self, invocations=[], children=[])

    @classmethod
    def from_dict(cls, d: dict) -> "ModelInfo":
        d = dict(d)
        d["invocations"] = [Invocation.from_dict(i) for i in d.get("invocations", [])]
        d["children"] = [ModelInfo.from_dict(c) for c in d.get("children", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class ScriptResult:
    """Everything tk learned from one input (a ``.py`` script or an ``.onnx`` file).

    Attributes:
        path: absolute path of the input.
        labels: the line-1 pragma, ``{"test_group": ["a"], ...}``.
        selectors: the ``::HASH`` values given for this input (empty = all selected).
        status: ``successful`` or ``error``; an error still keeps the models found before it.
        error: one-line message when the script failed.
        exit_code: the script's ``sys.exit`` code when it called it.
        duration_s: wall time of running the script (discovery only), seconds.
        models: the top-level models in first-call order (submodules nest in ``children``).
    """

    path: str
    labels: dict[str, list[str]] = field(default_factory=dict)
    selectors: list[str] = field(default_factory=list)
    status: Status = Status.NOT_STARTED
    error: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    models: list[ModelInfo] = field(default_factory=list)

    def walk_models(self):
        """Yield every model and submodule in the script, depth first."""
        for model in self.models:
            yield from model.walk()

    def invocations(self):
        """Yield ``(model, invocation)`` for every invocation in the script, depth first."""
        for model in self.walk_models():
            for inv in model.invocations:
                yield model, inv

    @classmethod
    def from_dict(cls, d: dict) -> "ScriptResult":
        d = dict(d)
        d["status"] = Status(d.get("status", "not_started"))
        d["models"] = [ModelInfo.from_dict(m) for m in d.get("models", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class BuildRecord:
    """What the cache stores for one invocation (one build folder).

    Attributes:
        build_name: ``<script-stem>[_<author>]_<invocation-hash>``.
        script: absolute path of the script (or .onnx file) the model came from.
        labels: the script's labels pragma.
        model: the model's facts without its invocations/children (``ModelInfo.summary()``).
        invocation: the invocation with its three stage results.
        system: the machine and software versions (``turnkey_like.system.system_info()``).
        tk_version: version of tk that wrote the record.
        schema_version: :data:`SCHEMA_VERSION` when written.
        created_at, updated_at: ISO-8601 UTC times.
    """

    build_name: str
    script: str
    labels: dict[str, list[str]]
    model: ModelInfo
    invocation: Invocation
    system: dict = field(default_factory=dict)
    tk_version: str = ""
    schema_version: int = SCHEMA_VERSION
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "BuildRecord":
        return cls(
            build_name=d["build_name"],
            script=d["script"],
            labels=d.get("labels", {}),
            model=ModelInfo.from_dict(d["model"]),
            invocation=Invocation.from_dict(d["invocation"]),
            system=d.get("system", {}),
            tk_version=d.get("tk_version", ""),
            schema_version=d.get("schema_version", SCHEMA_VERSION),
            created_at=d.get("created_at"),
            updated_at=d.get("updated_at"),
        )


def to_dict(record: Any) -> Any:
    """Turn a record (dataclass, enum, tuple, nested containers) into plain JSON-able data."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_dict(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, enum.Enum):
        return record.value
    if isinstance(record, dict):
        return {str(k): to_dict(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_dict(v) for v in record]
    return record
