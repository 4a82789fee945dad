"""What discovery finds in one input and the pipeline fills in: the script (:class:`ScriptResult`),
its models (:class:`ModelInfo`), each model's input signatures (:class:`Invocation`, with one
:class:`~turnkey_like.records.base.StageResult` per stage), and a named model's request.
"""

from __future__ import annotations

import msgspec

from turnkey_like.records.base import STAGES, Record, StageResult, Status
from turnkey_like.records.benchmark import BenchmarkResult
from turnkey_like.records.build import BuildResult
from turnkey_like.records.characterization import Characterization


class TensorSpec(Record, kw_only=False):
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


class Invocation(Record):
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
    characterization: StageResult[Characterization] = msgspec.field(default_factory=StageResult)
    build: StageResult[BuildResult] = msgspec.field(default_factory=StageResult)
    benchmark: StageResult[BenchmarkResult] = msgspec.field(default_factory=StageResult)

    def stages(self) -> dict[str, StageResult]:
        """The three stage results by name, in pipeline order (:data:`STAGES`)."""
        return {name: getattr(self, name) for name in STAGES}

    @property
    def failed(self) -> bool:
        """True when any stage ended in a failure."""
        return any(stage.failed for stage in self.stages().values())


class ModelRequest(Record):
    """A named model (``--model NAME``) and the options that shape it (``turnkey_like.zoo.load``).

    Attributes:
        name: as the user typed it: ``resnet50``, ``bert``, ``bert-base-uncased``,
            ``timm/resnet18``, ``yolov8n.yaml``, ``pkg.mod:factory``, a local folder.
        source: ``torchvision | transformers | ultralytics | timm | factory``; ``""`` = detect from
            the name (``turnkey_like.zoo.model_source``). The loader fills it in.
        batch_size, seq_len, imgsz: ``None`` = the model's default; the loader fills in the value
            it used, and leaves ``None`` where the model takes no such dimension.
        input_shapes: ``--input-shape NAME:D0,D1,...``: exact shapes of named inputs.
        pretrained: load trained weights (network or local cache); random weights otherwise.
        model_args: ``--model-args JSON``: keyword arguments of a ``module:factory``, a
            torchvision builder or ``timm.create_model``; config attributes for transformers
            (``{"num_hidden_layers": 2}``); refused by ultralytics.
        trust_remote_code: allow a hub model's own code (``--trust-remote-code``).
        no_weights: build on the meta device (no memory for weights); ``None`` = automatic above
            ``turnkey_like.zoo.META_THRESHOLD_PARAMS`` parameters. The loader fills in the choice.
        seed: seed of the random weights and synthesized inputs (``torch.Generator``).
        new_tokens: ``--generate P:N``'s N: the model is built with its LM head and generates N
            tokens from a prompt of ``seq_len`` (P) tokens (a prefill, then N−1 decode steps);
            ``None``: one forward call.
        dtype: ``--dtype``: ``fp32``, ``bf16`` or ``fp16``, the dtype of the model's floating-point
            parameters and buffers and of its floating-point inputs (``turnkey_like.zoo.load``);
            ``None``: as the source builds it (float32 for every built-in source).
        defaulted: the fields the loader filled in because the request left them unset (``source``,
            ``batch_size``, ``seq_len``, ``imgsz``, ``no_weights``): with them unset again, a loaded
            request is the request as asked (what ``turnkey_like.pipeline.reuse`` matches). Empty in
            a request as asked, and in records written before tk kept it.
    """

    name: str
    source: str = ""
    batch_size: int | None = None
    seq_len: int | None = None
    imgsz: int | None = None
    input_shapes: dict[str, list[int]] = {}
    pretrained: bool = False
    model_args: dict | None = None
    trust_remote_code: bool = False
    no_weights: bool | None = None
    seed: int = 0
    new_tokens: int | None = None
    dtype: str | None = None
    defaulted: list[str] = []


class ModelInfo(Record):
    """One model architecture discovered in a script.

    Attributes:
        name: display name: the variable the script binds the model to, the attribute path
            (``model.fc``) for submodules, else the class name.
        class_name: ``type(model).__name__``.
        qualified_class: ``module.QualName`` of the class.
        model_type: ``pytorch`` or ``onnx``.
        source_file, source_line: where the model was created (``location_kind == "created"``) or,
            when that cannot be found, first called (``"first_call"``); ``"file"`` for ONNX inputs.
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
    invocations: list[Invocation] = []
    children: list[ModelInfo] = []

    def walk(self):
        """Yield this model and every submodule below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def summary(self) -> ModelInfo:
        """A copy without invocations and children (what a :class:`BuildRecord` stores)."""
        return msgspec.structs.replace(self, invocations=[], children=[])

    def without_invocations(self) -> ModelInfo:
        """A copy of this model and its submodules, each without its invocations (the tree alone)."""
        return msgspec.structs.replace(self, invocations=[],
                                       children=[child.without_invocations() for child in self.children])


class ScriptResult(Record):
    """Everything tk learned from one input (a ``.py`` script or an ``.onnx`` file).

    Attributes:
        path: absolute path of the input.
        labels: the line-1 pragma, ``{"test_group": ["a"], ...}``.
        selectors: the ``::HASH`` values given for this input (empty = all selected).
        status: ``successful`` or ``error``; an error still keeps the models found before it.
        error: one-line message when the script failed.
        exit_code: the script's ``sys.exit`` code when it called it.
        duration_s: wall time of running the script (discovery only), seconds.
        traceback: the last frames of the script's traceback when it raised (for ``--traceback``).
        uses_turnkeyml_parser: the script imported ``turnkeyml.parser``, which tk serves itself
            (so ``python SCRIPT`` alone may not run it).
        entry: the input as the user gave it on the command line (for messages).
        child_processes: how many child processes the script started (``multiprocessing``,
            ``os.fork``); models called inside them are not seen by discovery.
        model_request: for a named model (``--model NAME``) instead of a script: the request with
            every default the loader used filled in (source, sizes, seed); ``None`` for scripts.
        notes: what tk changed to build a named model and says so (e.g. ``DETR:
            use_pretrained_backbone=False``, ``meta tensors``).
        models: the top-level models in first-call order (submodules nest in ``children``).
    """

    path: str
    labels: dict[str, list[str]] = {}
    selectors: list[str] = []
    status: Status = Status.NOT_STARTED
    error: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    traceback: str | None = None
    uses_turnkeyml_parser: bool = False
    entry: str | None = None
    child_processes: int = 0
    model_request: ModelRequest | None = None
    notes: list[str] = []
    models: list[ModelInfo] = []

    def walk_models(self):
        """Yield every model and submodule in the script, depth first."""
        for model in self.models:
            yield from model.walk()

    def invocations(self):
        """Yield ``(model, invocation)`` for every invocation in the script, depth first."""
        for model in self.walk_models():
            for inv in model.invocations:
                yield model, inv

    def without_invocations(self) -> ScriptResult:
        """A copy with every model, none of their invocations (what a child sends once tk has each
        invocation: ``records.Discovered``, ``records.Done``); the rest is shared with this record."""
        return msgspec.structs.replace(self, models=[model.without_invocations() for model in self.models])
