"""The typed records every stage of the pipeline reads and writes, and their one codec.

Every record is a :class:`msgspec.Struct`. Records are built by the stages, rendered by the reports,
and encoded/decoded only at the boundaries (the cache, ``--json``, a child process's report) by
:func:`encode`, :func:`decode` and :func:`to_builtins`, which validate every field against these
types. A record that fails validation raises :class:`RecordError` naming the field, never a
traceback from deep inside a renderer. msgspec was chosen over pydantic v2 because it decodes and
validates JSON straight into these classes several times faster (the cache reads thousands of
records for ``tk report``), has no runtime dependencies, and its Structs are plain attribute
classes with no validation cost when the code builds them (see ``docs/architecture.md``).

Hierarchy::

    ScriptResult            one user script (or .onnx file) given on the command line
      └─ ModelInfo          one model architecture (instances with the same repr merge)
           ├─ Invocation    one distinct input signature the model was called with
           │    ├─ characterization: StageResult[Characterization]
           │    ├─ build:            StageResult[BuildResult]
           │    └─ benchmark:        StageResult[BenchmarkResult]
           └─ ModelInfo...  submodules down to --max-depth, each with its own invocations

A :class:`BuildRecord` is what the cache stores for one invocation: the invocation plus the model
and script facts needed to read it alone (see ``turnkey_like.cache``).

Units everywhere: seconds (``*_s``), milliseconds (``*_ms``), bytes (``*bytes*``), FLOPs with
1 MAC = 2 FLOPs, arithmetic intensity in FLOPs/byte, FLOP/s and bytes/s for hardware peaks.
"""

from __future__ import annotations

import datetime as _dt
import enum
from typing import Any, Generic, TypeVar

import msgspec

from turnkey_like.errors import TkError

#: Version of the record layout written by this tk. 1: plain dataclass dicts (tk 0.1); 2: typed
#: msgspec records (stage results typed, op rows typed, hardware profile and trace as records).
SCHEMA_VERSION = 2
#: Oldest layout :func:`migrate` can bring up to :data:`SCHEMA_VERSION`.
OLDEST_READABLE_SCHEMA = 1

#: The pipeline's stages, in order; also the names of :class:`Invocation`'s stage fields.
STAGES = ("characterization", "build", "benchmark")


class RecordError(TkError):
    """A record that does not match its schema (a wrong type, a missing field, an unknown version)."""


class Record(msgspec.Struct, kw_only=True):
    """Base of every record: keyword-only fields, encoded and validated by msgspec."""

    def to_dict(self) -> dict:
        """Plain JSON-able data of this record (what ``--json`` and the cache hold)."""
        return to_builtins(self)


def now_utc() -> str:
    """The current time as ISO-8601 UTC text with seconds (``2026-11-29T00:31:01+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------------
# Status of a stage
# --------------------------------------------------------------------------------------------------


class Status(str, enum.Enum):
    """State of one pipeline stage for one invocation.

    ``running`` is written when a stage starts, with the pid of the process doing it; a reader that
    finds ``running`` whose process is gone reports it as ``killed`` (see ``turnkey_like.cache``).
    ``interrupted`` is a stage stopped by Ctrl-C.
    """

    NOT_STARTED = "not_started"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    ERROR = "error"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    KILLED = "killed"
    INTERRUPTED = "interrupted"


#: Outcomes that end a stage and are kept in the record until a later run gives a new final one.
FINAL_STATUSES = frozenset({Status.SUCCESSFUL, Status.ERROR, Status.TIMEOUT, Status.KILLED})
#: Outcomes that count as a failure (the command exits non-zero).
FAILURE_STATUSES = frozenset({Status.ERROR, Status.TIMEOUT, Status.KILLED, Status.INTERRUPTED})


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------

Dim = int | str
"""One tensor dimension: an int, or the name of a symbolic dimension (``"s0"``), never taken as 1."""


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


class InputDesc(Record):
    """Shape and dtype of one input leaf as characterization saw it (``[]`` shape for scalars)."""

    shape: list[Dim]
    dtype: str


# --------------------------------------------------------------------------------------------------
# Characterization
# --------------------------------------------------------------------------------------------------


class HardwareProfile(Record):
    """Peak compute and memory bandwidth of one device (the roofline's two roofs).

    Attributes:
        name: short key used on the command line (``a100``, ``h100``, ``local``, ...).
        description: full device name.
        peak_flops: dense peak per dtype in FLOP/s (``int8`` in op/s); keys ``float32``,
            ``float16``, ``bfloat16``, ``int8``.
        memory_bandwidth: peak (or measured, for ``local``) memory bandwidth in bytes/s.
        sources: per value (``peak_flops.float32``, ``memory_bandwidth``, ...) the document it comes
            from and how it was derived.
        notes: caveats (TF32, sparsity, clock assumptions).
        measured: True for profiles measured on this machine, False for datasheet profiles.
        threads: torch threads used when the profile was measured (``local`` only).
    """

    name: str
    description: str
    peak_flops: dict[str, float]
    memory_bandwidth: float
    sources: dict[str, str] = {}
    notes: str = ""
    measured: bool = False
    threads: int | None = None

    def peak(self, dtype: str | None) -> float:
        """Return the peak FLOP/s for ``dtype`` (numpy-style name).

        Dtypes without an entry (``float64``, ``int64``, ``bool``, ...) fall back to the ``float32``
        peak: such ops are rare in inference graphs and almost always memory-bound, so the fallback
        only matters for their compute-time term.
        """
        value = self.peak_flops.get(dtype) if dtype else None
        return float(value) if value else float(self.peak_flops["float32"])

    def ridge_point(self, dtype: str | None = "float32") -> float:
        """Return the ridge point in FLOPs/byte: peak FLOP/s ÷ memory bandwidth (Williams et al., 2009).

        An op whose arithmetic intensity is at or above the ridge point is compute-bound here.
        """
        return self.peak(dtype) / self.memory_bandwidth


class TraceAttempt(Record):
    """One tracing attempt: the method, whether it worked, its error as one line, and its wall time (s)."""

    method: str
    ok: bool
    error: str | None = None
    duration_s: float = 0.0


class TraceSummary(Record):
    """What tracing found, without the graph itself (``turnkey_like.tracing.TraceResult.summary()``).

    Kept in ``Characterization.trace`` (``tk profile --trace``; ``not traced`` otherwise) and in
    ``BuildResult.trace`` (the ONNX build's one ``torch.export`` trace).

    Attributes:
        method: the method that succeeded (``fx.symbolic_trace``, ``torch.export(strict=False)``,
            ``torch.export(strict=True)``), ``none`` when every method failed, ``not traced`` when no
            trace was attempted.
        node_count: nodes in the traced graph (0 when nothing traced).
        attempts: every method tried, in order.
        duration_s: wall time of the warm-up and all attempts, seconds.
        warmup_error: one-line error when the warm-up call itself failed.
    """

    method: str = "not traced"
    node_count: int = 0
    attempts: list[TraceAttempt] = []
    duration_s: float = 0.0
    warmup_error: str | None = None

    @property
    def failure_reason(self) -> str | None:
        """Why nothing traced, in one line (the last attempt's error), or ``None`` when it traced."""
        if self.method != "none":
            return None
        if self.warmup_error:
            return f"the model's own call failed: {self.warmup_error}"
        for attempt in reversed(self.attempts):
            if attempt.error:
                return f"{attempt.method}: {attempt.error}"
        return "no tracing method applies"


class OpRow(Record):
    """One ATen op call, in execution order, with its cost and roofline annotation.

    Attributes:
        index: position in execution order (rows are numbered 0, 1, ... with no gaps).
        op: ATen overload name, e.g. ``aten.convolution.default``.
        category: the op's category (``turnkey_like.characterize.ops.CATEGORIES``), ``other``
            when it has no formula.
        module_path: innermost module that ran it, ``""`` for the root, e.g. ``layer1.0.conv1``.
        module_class: that module's class name.
        input_shapes: shapes of the tensor arguments, in order.
        output_shapes: shapes of the tensor outputs, in order.
        dtype: numpy-style name of the first tensor argument's dtype (``float32``).
        macs: multiply-accumulates, ``None`` where not defined or not counted.
        flops: FLOPs (1 MAC = 2 FLOPs); 0 when not counted.
        bytes_read: bytes of all tensor arguments at their dtype's size (numel * itemsize); for
            gathers (``embedding``) only the rows read.
        bytes_written: bytes of all tensor outputs.
        weight_bytes: the part of ``bytes_read`` that comes from the model's parameters and buffers.
        counted: ``False`` when the op has no formula (then ``macs`` is ``None`` and ``flops`` 0).
        producers: indices of earlier rows whose outputs this op reads (the dataflow edges, in the
            order its inputs read them, each once); empty when it reads only graph inputs,
            parameters and buffers. The rows with their producers are the call's dataflow graph.
        arithmetic_intensity: flops / (bytes_read + bytes_written), ``None`` without traffic.
        bound: ``compute-bound``, ``memory-bound`` or ``no compute`` on the hardware profile.
        roofline_time_s: max(flops / peak, bytes / bandwidth) on that profile, seconds.
    """

    index: int
    op: str
    category: str
    module_path: str
    module_class: str
    input_shapes: list[list[Dim]]
    output_shapes: list[list[Dim]]
    dtype: str
    macs: int | None
    flops: int
    bytes_read: int
    bytes_written: int
    weight_bytes: int
    counted: bool
    producers: list[int] = []
    arithmetic_intensity: float | None = None
    bound: str = "no compute"
    roofline_time_s: float = 0.0

    @property
    def bytes(self) -> int:
        """Bytes read + written."""
        return self.bytes_read + self.bytes_written


class ModuleRow(Record):
    """One module in the hierarchical roll-up (inclusive of everything below it).

    Attributes:
        path: dotted module path (``""`` for the model itself).
        class_name: the module's class (``ModuleList`` etc. for containers that never run themselves).
        depth: 0 for the model, 1 for its children, ...
        parent: path of the enclosing row (``None`` for the model).
        macs, flops: inclusive MACs and FLOPs (1 MAC = 2 FLOPs; ops without MACs add 0 MACs).
        bytes_read, bytes_written: inclusive memory traffic in bytes (ops run one by one, unfused).
        params, param_bytes: parameters owned by this module and below; a parameter shared by several
            modules is counted once, at the first module that registers it.
        ops: number of op rows at or below this module.
        self_macs, self_flops, self_bytes, self_params, self_ops: the part from the module's own direct
            ops / parameters (not from its children); parent = sum of children + self.
        arithmetic_intensity, bound, roofline_time_s: FLOPs/byte of the inclusive totals, its bound on
            the profile, and the sum of its ops' roofline times (seconds).
    """

    path: str
    class_name: str
    depth: int
    parent: str | None
    macs: int = 0
    flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    params: int = 0
    param_bytes: int = 0
    ops: int = 0
    self_macs: int = 0
    self_flops: int = 0
    self_bytes: int = 0
    self_params: int = 0
    self_ops: int = 0
    roofline_time_s: float = 0.0
    arithmetic_intensity: float | None = None
    bound: str = "no compute"

    @property
    def bytes(self) -> int:
        """Bytes read + written."""
        return self.bytes_read + self.bytes_written


class Totals(Record):
    """Whole-model totals.

    Attributes:
        params, param_bytes: unique parameters (tied/shared counted once, frozen included) and their
            bytes at their real dtypes.
        macs: all MACs; conv_matmul_macs: MACs of conv, matmul and attention ops only (what papers and
            torchvision's ``_ops`` report).
        flops: all FLOPs (1 MAC = 2 FLOPs, plus non-MAC FLOPs of norms, activations, ...).
        bytes_read, bytes_written: memory traffic of the ops run one by one (unfused), bytes.
        weight_bytes: the part of ``bytes_read`` that reads parameters/buffers.
        arithmetic_intensity: flops / (bytes_read + bytes_written).
        bound: the model's bound at that intensity on the profile (main dtype's ridge point).
        roofline_time_s: sum of the ops' roofline times, seconds (no overlap between ops).
        ops: op rows; uncounted_ops: calls of ops with no formula (listed in ``uncounted``).
    """

    params: int = 0
    param_bytes: int = 0
    macs: int = 0
    conv_matmul_macs: int = 0
    flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    weight_bytes: int = 0
    arithmetic_intensity: float | None = None
    bound: str = "no compute"
    roofline_time_s: float = 0.0
    ops: int = 0
    uncounted_ops: int = 0

    @property
    def bytes(self) -> int:
        """Memory traffic of the ops run one by one: ``bytes_read + bytes_written``, bytes."""
        return self.bytes_read + self.bytes_written


class BreakdownEntry(Record):
    """One slice of the roofline-time breakdown: time (s), its share (0-1), FLOPs, bytes and op count."""

    time_s: float = 0.0
    share: float = 0.0
    flops: int = 0
    bytes: int = 0
    ops: int = 0


class Breakdown(Record):
    """Share of roofline time by op category and by bound, each sorted by time, slowest first."""

    by_category: dict[str, BreakdownEntry] = {}
    by_bound: dict[str, BreakdownEntry] = {}


class FusionGroup(Record):
    """One fusible chain of ops.

    Attributes:
        ops: row indices (``OpRow.index``) in execution order, the anchor first.
        op_names: the ATen op of each member.
        module_path: module of the anchor op.
        flops: FLOPs of the group (1 MAC = 2 FLOPs).
        unfused_bytes: bytes read + written by the ops run one by one.
        internal_bytes: intermediate traffic fusion removes (writes + reads of intermediates).
        external_bytes: traffic left after fusion (inputs from outside + the final output).
        arithmetic_intensity: FLOPs / external bytes (``None`` when there is no traffic).
        id: the group's number in :attr:`FusionResult.row_groups` (``-1`` in records written before
            every op had a group).
    """

    ops: list[int]
    op_names: list[str]
    module_path: str
    flops: int
    unfused_bytes: int
    internal_bytes: int
    external_bytes: int
    arithmetic_intensity: float | None
    id: int = -1


class FusionSummary(Record):
    """Fusion over a whole model.

    Attributes:
        groups: number of groups with at least two ops.
        fused_ops: ops inside those groups.
        total_bytes: traffic of all ops run one by one (the model's unfused bytes read + written).
        removed_bytes: traffic the groups remove (sum of their ``internal_bytes``).
        fused_total_bytes: ``total_bytes - removed_bytes``.
        removed_fraction: ``removed_bytes / total_bytes`` (0 when there is no traffic).
        flops: the model's FLOPs.
        arithmetic_intensity_unfused: flops / total_bytes.
        arithmetic_intensity_fused: flops / fused_total_bytes.
        all_groups: groups of every size: the multi-op groups plus one group per op outside them
            (the kernels a fusing compiler launches); 0 in records written before every op had one.
    """

    groups: int = 0
    fused_ops: int = 0
    total_bytes: int = 0
    removed_bytes: int = 0
    fused_total_bytes: int = 0
    removed_fraction: float = 0.0
    flops: int = 0
    arithmetic_intensity_unfused: float | None = None
    arithmetic_intensity_fused: float | None = None
    all_groups: int = 0


class FusionResult(Record):
    """Fusion groups (two ops or more), their summary, and the group of every op.

    Attributes:
        groups: the groups of two ops or more, in execution order of their anchors.
        summary: see :class:`FusionSummary`.
        row_groups: per op row (``OpRow.index``), the number of its group. Every op has one:
            an op outside the multi-op groups (functional calls and tensor methods included: the
            rows are ATen ops whatever Python called them) is a group of its own. Groups are
            numbered 0, 1, ... in execution order of their first op; a multi-op group's number is
            its :attr:`FusionGroup.id`. Empty in records written before every op had a group.
    """

    groups: list[FusionGroup] = []
    summary: FusionSummary = msgspec.field(default_factory=FusionSummary)
    row_groups: list[int] = []


class RepeatedBlocks(Record):
    """A run of consecutive sibling modules that do identical work (BERT's 12 ``BertLayer`` modules).

    Two blocks are identical when they have the same class and run the same ops, in the same order,
    with the same output shapes, at the same paths relative to the block (``attention.self.query``).
    Pictures draw the first block once, marked "×N" (``turnkey_like.views.graph``).

    Attributes:
        paths: the blocks' module paths, in execution order (``encoder.layer.0`` ...).
        class_name: their class.
        ops: op rows in each block (the same for every block).
    """

    paths: list[str]
    class_name: str
    ops: int


class Characterization(Record):
    """Everything characterize found for one model call, computed once.

    Attributes:
        model_class: class name of the model.
        inputs: input name -> shape and dtype (positional args as ``args[i]``).
        dtype: the model's main dtype (most parameter bytes; else the first floating input's).
        device: where counting ran: ``cpu``/``cuda:0`` (real tensors) or ``meta`` (no weights touched).
        no_weights: True when counting ran on meta tensors (``no_weights=True`` or a model too big).
        trace: method, node count and attempts of the FX/export trace when one was asked for
            (``tk profile --trace``, ``characterize(..., trace=True)``); ``not traced`` otherwise
            (the default: the op rows' ``producers`` already give the dataflow graph).
        hardware: the profile used for the roofline.
        ridge_point: the profile's ridge point for ``dtype``, FLOPs/byte.
        rows: one :class:`OpRow` per op, in execution order.
        modules: the per-module roll-up in display (pre-)order, root first.
        totals: see :class:`Totals`.
        uncounted: op -> calls with no formula (never dropped silently), most frequent first.
        breakdown: share of roofline time by category and by bound.
        top_ops: indices into ``rows`` of the most time-consuming ops, slowest first (up to 50).
        fusion: fusion groups and the traffic they remove.
        repeats: runs of identical consecutive sibling modules (outermost first, then in module order).
        symbolic_dims: symbolic dimension names seen in shapes (reported, never replaced by 1).
        duration_s, count_duration_s, trace_duration_s: wall times, seconds (``trace_duration_s``
            is 0 when not traced).
    """

    model_class: str
    inputs: dict[str, InputDesc]
    dtype: str
    device: str
    no_weights: bool
    trace: TraceSummary
    hardware: HardwareProfile
    ridge_point: float
    rows: list[OpRow]
    modules: list[ModuleRow]
    totals: Totals
    uncounted: dict[str, int]
    breakdown: Breakdown
    top_ops: list[int]
    fusion: FusionResult
    symbolic_dims: list[str] = []
    repeats: list[RepeatedBlocks] = []
    duration_s: float = 0.0
    count_duration_s: float = 0.0
    trace_duration_s: float = 0.0

    @property
    def profile(self) -> HardwareProfile:
        """The hardware profile used (same as :attr:`hardware`)."""
        return self.hardware


class RooflineRoof(Record):
    """One hardware profile's roofline for one dtype: its two roofs and the point where they meet.

    Attributes:
        name: the profile's key (``a100``, ``local``, ...); description: its full device name.
        dtype: the dtype whose peak is used (the model's main dtype).
        peak_flops: peak FLOP/s for that dtype (the flat roof).
        memory_bandwidth: bytes/s (the slanted roof: attainable = intensity x bandwidth).
        ridge_point: peak ÷ bandwidth, FLOPs/byte, where the two roofs meet (Williams et al., 2009).
    """

    name: str
    description: str
    dtype: str
    peak_flops: float
    memory_bandwidth: float
    ridge_point: float


class RooflinePoint(Record):
    """One module's own ops, or one fusion group, placed on the roofline of every profile.

    Attributes:
        kind: ``module`` (the ops a module runs itself, its children's excluded) or ``fusion group``.
        module_path: the module (for a group: its anchor op's module); ``""`` for the model itself.
        module_class: that module's class name.
        op_names: a group's member ops (ATen names, execution order); empty for a module.
        ops: number of op rows in the point.
        flops: FLOPs (1 MAC = 2 FLOPs).
        bytes: memory traffic in bytes: a module's ops run one by one (unfused); a group's
            ``external_bytes`` (what is left once fused).
        arithmetic_intensity: flops / bytes, FLOPs/byte (``None`` without traffic).
        time_s: per profile name, the roofline time in seconds: the sum of a module's ops' times,
            a group's fused time ``max(flops / peak, bytes / bandwidth)``.
        attainable_flops: per profile name, ``flops / time_s`` in FLOP/s: at or below that profile's
            roof at this intensity (below it when a module mixes compute- and memory-bound ops).
        bound: per profile name, ``compute-bound`` or ``memory-bound`` at this intensity.
    """

    kind: str
    module_path: str
    module_class: str
    op_names: list[str] = []
    ops: int = 0
    flops: int = 0
    bytes: int = 0
    arithmetic_intensity: float | None = None
    time_s: dict[str, float] = {}
    attainable_flops: dict[str, float] = {}
    bound: dict[str, str] = {}


class RooflineChart(Record):
    """What a roofline plot draws for one model call (``characterize.roofline.roofline_chart``).

    Attributes:
        title: the model and invocation it shows.
        dtype: the dtype of the roofs (the model's main dtype).
        roofs: one per hardware profile; the first is the profile of the record's Bound column.
        points: every module with its own FLOPs and every fusion group, heaviest first (by roofline
            time on the first profile).
        no_compute_modules: modules whose own ops do no FLOPs (data movement only): a log-scale plot
            cannot place them, so they are counted here instead.
    """

    title: str
    dtype: str
    roofs: list[RooflineRoof]
    points: list[RooflinePoint] = []
    no_compute_modules: int = 0


# --------------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------------


class GraphIO(Record):
    """One ONNX graph input: name, shape (ints) and numpy dtype name.

    ``int_high``: for an ``.onnx`` input's integer input used as an index into a weight table (an
    embedding lookup), the table's rows: synthesized values stay below it. ``None`` otherwise.
    """

    name: str
    shape: list[Dim]
    dtype: str
    int_high: int | None = None


class Tolerance(Record):
    """Agreement tolerance: an output passes when ``|a - e| <= abs + rel * |e|`` elementwise."""

    abs: float
    rel: float


class OutputAgreement(Record):
    """How one output of a build or benchmark agrees with eager PyTorch.

    Attributes:
        max_abs_err: largest ``|a - e|``; ``None`` when not comparable (see ``error``) or infinite.
        max_rel_err: ``max|a - e| / max|e|``; ``None`` when not comparable or infinite.
        passed: within the tolerance (integer and bool outputs must match exactly).
        shape: the output's shape.
        error: why the output could not be compared (shape or count mismatch), else ``None``.
    """

    max_abs_err: float | None = None
    max_rel_err: float | None = None
    passed: bool = False
    shape: list[int] | None = None
    error: str | None = None


class BuildResult(Record):
    """What a build produced (``Invocation.build.result``).

    Attributes:
        onnx_path: the model to run (the fp16 file with ``--precision fp16``), absolute path.
        exported_path: the exporter's fp32 output (same as ``onnx_path`` for fp32).
        optimized_path: ONNX Runtime's optimized copy (level *extended*).
        data_files: external-data files that must stay next to ``onnx_path`` (names, same folder).
        size_bytes: bytes of ``onnx_path`` plus its external data.
        external_data: whether weights are stored outside the ``.onnx`` protobuf.
        opset: default-domain opset of the exported model.
        exporter: ``dynamo``, ``torchscript`` or ``file`` (an ``.onnx`` input): what produced it.
        exporter_errors: one-line error per exporter that was tried and failed.
        precision: ``fp32`` or ``fp16``.
        input_names, output_names: graph input/output names, in graph order.
        input_specs: per graph input, its name, shape and numpy dtype name.
        onnx_op_counts: node count per ONNX op type (sub-graphs included), sorted by name.
        durations: seconds per step: ``eager_reference`` (the eager call whose outputs the export is
            checked against), ``trace`` (``torch.export``, once), ``export`` (ONNX from that program,
            or the TorchScript fallback), ``check``, ``fp16``, ``optimize``, ``validate``.
        fingerprint: what the build depends on (``weights``, ``inputs``, ``opset``, ``exporter``,
            ``precision``, ``tk``, ``torch``; see ``turnkey_like.build.fingerprint``).
        faithfulness: per output name, its agreement with eager PyTorch.
        tolerance: the tolerance used for ``faithful`` (``turnkey_like.agreement.TOLERANCES``).
        faithful: True when every output is within tolerance, ``None`` when not measured.
        reused: True when this result was reused from an earlier build.
        stale: fingerprint keys that differ from the current model (``rebuild=never`` reuse only).
        trace: the build's one ``torch.export`` trace (method, attempts with one-line errors,
            seconds): ``not traced`` with ``--exporter torchscript``; ``None`` for ``.onnx`` inputs
            and for records written before builds recorded it.
    """

    onnx_path: str
    optimized_path: str | None
    size_bytes: int
    external_data: bool
    opset: int
    exporter: str
    precision: str = "fp32"
    exported_path: str | None = None
    data_files: list[str] = []
    exporter_errors: dict[str, str] = {}
    input_names: list[str] = []
    output_names: list[str] = []
    input_specs: list[GraphIO] = []
    onnx_op_counts: dict[str, int] = {}
    durations: dict[str, float] = {}
    fingerprint: dict[str, str | int | float | bool | None] = {}
    faithfulness: dict[str, OutputAgreement] = {}
    tolerance: Tolerance | None = None
    faithful: bool | None = None
    reused: bool = False
    stale: list[str] = []
    trace: TraceSummary | None = None


# --------------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------------


class LayerTime(Record):
    """One row of a per-layer profile: a module (by path) or an op category, per profiled iteration.

    Attributes:
        name: the module path (``""`` for the model itself) or the op category; the two extra rows of
            :attr:`PerLayerResult.modules` are ``(unattributed)`` and ``(unmapped kernels)``.
        class_name: the module's class (module rows; ``""`` otherwise).
        measured_ms: measured time per iteration, ms: the module's own ops (not its children's),
            or the kernels of the category.
        inclusive_ms: module rows: the module and everything below it, ms (``None`` for other rows).
        share: ``measured_ms`` ÷ the profiled run's wall time per iteration (0-1).
        predicted_ms: roofline time of the same ops on the profile the run measured on, ms
            (``None`` without a characterization or a profile for that device).
        predicted_inclusive_ms: the same for ``inclusive_ms``.
        efficiency: ``predicted_ms / measured_ms``, the fraction of the roof attained (``None`` when
            either is missing or 0: ops with no counted work, such as views, have no roof).
        flops, bytes: FLOPs (1 MAC = 2 FLOPs) and bytes read + written of the row's ops (unfused), from
            the characterization.
        attained_flops_s, attained_bytes_s: ``flops`` and ``bytes`` ÷ ``measured_ms`` (FLOP/s, bytes/s).
        faster_than_roof: measured below the roofline time (efficiency > 1): the profile's peaks or the
            op count are wrong for this row; flagged, never hidden.
        kernels: kernel (or op) events attributed to the row per iteration (fractions when a fused
            kernel is split across rows).
    """

    name: str
    measured_ms: float
    share: float
    class_name: str = ""
    inclusive_ms: float | None = None
    predicted_ms: float | None = None
    predicted_inclusive_ms: float | None = None
    efficiency: float | None = None
    flops: int = 0
    bytes: int = 0
    attained_flops_s: float | None = None
    attained_bytes_s: float | None = None
    faster_than_roof: bool = False
    kernels: float = 0.0


class PerLayerResult(Record):
    """Per-layer measured time of one benchmark (``--per-layer``), beside the roofline.

    Measured in profiling runs made after the timed ones (so ``BenchmarkResult.latency_ms`` is not
    disturbed). The rows of :attr:`modules` (each module's own time, plus ``(unattributed)`` and
    ``(unmapped kernels)``) add up to :attr:`wall_ms`, the profiled runs' own wall time per iteration.

    Attributes:
        method: the profiler (``onnxruntime session profiler``, ``torch.profiler``).
        mapping: how kernels were mapped to module paths (``dynamo name_scopes``, ``torchscript node
            names``, ``forward hooks``, ``none``); ``mapping_note`` states its limits.
        iterations: profiled runs (after their own warm-up).
        wall_ms: wall time of one profiled run, mean, ms.
        attributed_ms: kernel time mapped to modules, per iteration, ms.
        unmapped_ms: kernel time no module could be found for, per iteration, ms.
        unattributed_ms: ``wall_ms`` minus all kernel time (time between ops, framework overhead), ms.
        unattributed_share: ``unattributed_ms / wall_ms``.
        overhead: ``wall_ms`` ÷ the timed runs' mean latency (what the profiler costs per run).
        hardware: the profile the roofline is computed on (the one the run measured on: ``local`` on
            CPU, the GPU's datasheet profile on CUDA); ``None`` when none matches the device.
        predicted_ms: roofline time of the whole call on ``hardware``, ms.
        efficiency: ``predicted_ms`` ÷ the timed runs' mean latency (``None`` without a prediction).
        modules: one row per module with a measured or predicted time, in the characterization's
            order, then the two extra rows.
        categories: one row per op category (ONNX op types and ATen ops mapped to tk's categories),
            slowest first.
        faster_than_roof: names of the rows measured faster than their roof.
    """

    method: str
    mapping: str
    iterations: int
    wall_ms: float
    attributed_ms: float
    unmapped_ms: float
    unattributed_ms: float
    unattributed_share: float
    overhead: float | None = None
    mapping_note: str = ""
    hardware: HardwareProfile | None = None
    predicted_ms: float | None = None
    efficiency: float | None = None
    modules: list[LayerTime] = []
    categories: list[LayerTime] = []
    faster_than_roof: list[str] = []


class LatencyStats(Record):
    """Latency statistics over the timed iterations, milliseconds (p90/p99: linear interpolation)."""

    mean: float
    median: float
    p90: float
    p99: float
    min: float
    max: float
    std: float


class BenchmarkResult(Record):
    """One benchmark of one invocation (``Invocation.benchmark.result``).

    Attributes:
        runtime: ``ort``, ``torch-eager`` or ``torch-compiled``.
        runtime_version: onnxruntime's or torch's version.
        execution_provider: ORT's provider that ran the model (``CPUExecutionProvider``, ...), or
            ``torch-cpu`` / ``torch-cuda``.
        device: ``cpu`` or ``cuda``.
        device_name: CPU model name or GPU name.
        threads: intra-op threads used.
        warmup_iterations: warm-up runs done; ``warmup_s`` their wall time; ``warmup_stable`` whether
            the stability rule was met (``None`` for a fixed count).
        iterations: timed runs.
        latency_ms: latency statistics, ms.
        throughput_ips: inferences/s counting the batch: ``batch_size * 1000 / latency_ms.mean``.
        batch_size: the batch counted in the throughput (see ``batch_note``).
        batch_note: how ``batch_size`` was decided (dim 0 shared by every batched input, or why 1).
        peak_memory_bytes: peak resident memory of the benchmarking process, bytes.
        rss_start_bytes: its resident memory before the runtime loaded the model, bytes.
        peak_device_memory_bytes: torch's peak CUDA allocation (torch runtimes on CUDA), bytes.
        precision: ``fp32``/``fp16`` (ORT: the build's; torch: the model's first floating parameter).
        max_abs_err, max_rel_err: largest output error vs eager PyTorch across outputs, ``None`` where
            not measured (torch-eager is the reference; ``.onnx`` inputs have none).
        within_tolerance: whether those errors pass the build's tolerance.
        model_path: the ONNX file benchmarked (ORT).
        raw_path: JSON file with every timed latency (ms).
        fingerprint: what the figures depend on (the build's fingerprint as ``build.*`` keys,
            runtime, device, precision, requested threads, iterations, warm-up, per-layer profiling,
            tk version and the machine; see ``turnkey_like.runtimes.harness.benchmark_fingerprint``).
            A later run reuses this result when its fingerprint is equal (``--rebenchmark``).
        reused: True when this run took the result from the cache instead of measuring
            (the stage's ``run_id`` names the run that measured it).
        stale: fingerprint keys that differ from the current run's (``--rebenchmark never`` reuse only).
        per_layer: per-layer measured times beside the roofline (``--per-layer``), else ``None``.
    """

    runtime: str
    runtime_version: str
    execution_provider: str
    device: str
    device_name: str
    threads: int | None
    warmup_iterations: int
    iterations: int
    latency_ms: LatencyStats
    throughput_ips: float
    batch_size: int
    batch_note: str | None = None
    peak_memory_bytes: int | None = None
    rss_start_bytes: int | None = None
    peak_device_memory_bytes: int | None = None
    precision: str = "fp32"
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    within_tolerance: bool | None = None
    warmup_s: float | None = None
    warmup_stable: bool | None = None
    model_path: str | None = None
    raw_path: str | None = None
    fingerprint: dict[str, str | int | float | bool | None] = {}
    reused: bool = False
    stale: list[str] = []
    per_layer: PerLayerResult | None = None


# --------------------------------------------------------------------------------------------------
# Stage results, invocations, models, scripts
# --------------------------------------------------------------------------------------------------

T = TypeVar("T")


class StageResult(Record, Generic[T]):
    """Outcome of one stage (characterization, build or benchmark) for one invocation.

    Attributes:
        status: see :class:`Status`.
        duration_s: wall time of the stage in seconds (``None`` until it ends).
        started_at: ISO-8601 UTC time the stage started.
        pid: process id doing the stage while ``status`` is ``running``.
        run_id: the tk run that produced this outcome (``<started-at>-<pid>`` of that run).
        error: one-line error message when the stage did not succeed.
        log_excerpt: the last lines of the stage's log when it failed.
        result: the stage's own record (:class:`Characterization`, :class:`BuildResult`,
            :class:`BenchmarkResult`), ``None`` until successful.
        reason: why the stage was skipped (e.g. ``not selected``, ``--analyze-only``), or where a
            result came from when this run did not compute it (``reused from cache``,
            ``kept from an earlier run``).
        kept: the last final outcome of an earlier run, held while this stage runs (so a run killed
            mid-stage is read back as that outcome, never as ``killed`` over a measurement), and
            after a failed attempt (``error``/``timeout``) of this run, so the earlier successful
            result is never erased. ``None`` when there was none. Never nested more than one level.
    """

    status: Status = Status.NOT_STARTED
    duration_s: float | None = None
    started_at: str | None = None
    pid: int | None = None
    run_id: str | None = None
    error: str | None = None
    log_excerpt: str | None = None
    result: T | None = None
    reason: str | None = None
    kept: StageResult[T] | None = None

    @property
    def failed(self) -> bool:
        """True when the stage ended in a failure (error, timeout, killed, interrupted)."""
        return self.status in FAILURE_STATUSES

    @property
    def final(self) -> bool:
        """True when the stage has a final outcome worth keeping (success or failure)."""
        return self.status in FINAL_STATUSES


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


class BuildRecord(Record):
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
        model_request: for a named model (``--model``): the source and options that made it
            (``script`` is then the name as given); ``None`` for scripts and ``.onnx`` files.
        created_at, updated_at: ISO-8601 UTC times.
    """

    build_name: str
    script: str
    labels: dict[str, list[str]]
    model: ModelInfo
    invocation: Invocation
    system: dict[str, Any] = {}
    tk_version: str = ""
    schema_version: int = SCHEMA_VERSION
    created_at: str | None = None
    updated_at: str | None = None
    model_request: ModelRequest | None = None


class RunReport(Record):
    """What ``--json`` writes for one run: the format's version, the tk that wrote it, every input.

    Attributes:
        schema_version: :data:`SCHEMA_VERSION`; a consumer tells formats apart by it.
        tk_version: version of tk that wrote the file.
        created_at: ISO-8601 UTC time the run finished.
        system: the machine and software versions.
        exit_code: the command's exit code (see ``docs/exit_codes.md``).
        interrupted: True when the run was stopped by Ctrl-C before every input ran.
        results: one :class:`ScriptResult` per input, in command-line order.
        errors: one line per input or selection problem (the same lines the terminal printed).
    """

    schema_version: int = SCHEMA_VERSION
    tk_version: str = ""
    created_at: str | None = None
    system: dict[str, Any] = {}
    exit_code: int = 0
    interrupted: bool = False
    results: list[ScriptResult] = []
    errors: list[str] = []


class ComparisonEntry(Record):
    """One model call in a side-by-side comparison (``tk compare``; ``views.compare``).

    Attributes:
        label: what the user named it by (build name, invocation hash, model name).
        build_name: its cache folder, ``None`` when it was not cached.
        script: the script (or .onnx file) it came from.
        model, class_name: the model's display name and class.
        invocation_hash: the invocation hash; signature: its inputs.
        params, param_bytes: unique parameters and their bytes.
        hardware: the profile its roofline figures are on (``None`` when not characterized).
        macs, flops, bytes, arithmetic_intensity, bound, roofline_time_s: the characterization's totals
            (bytes read + written, unfused; seconds); ``None`` when it was not characterized.
        runtime, device: what the benchmark ran on; latency_ms: its mean latency (ms);
            throughput_ips: inferences/s counting the batch; ``None`` when not benchmarked.
        by_category: the share of roofline time per op category (the record's breakdown).
        statuses: stage name -> status of that stage.
        relative: per quantity (``params``, ``macs``, ``flops``, ``bytes``, ``roofline_time_s``,
            ``latency_ms``, ``throughput_ips``), this entry's value ÷ the first entry's (``None``
            where either is missing or the first is 0).
    """

    label: str
    model: str
    class_name: str
    invocation_hash: str
    build_name: str | None = None
    script: str | None = None
    signature: list[TensorSpec] = []
    params: int = 0
    param_bytes: int = 0
    hardware: str | None = None
    macs: int | None = None
    flops: int | None = None
    bytes: int | None = None
    arithmetic_intensity: float | None = None
    bound: str | None = None
    roofline_time_s: float | None = None
    runtime: str | None = None
    device: str | None = None
    latency_ms: float | None = None
    throughput_ips: float | None = None
    by_category: dict[str, BreakdownEntry] = {}
    statuses: dict[str, str] = {}
    relative: dict[str, float | None] = {}


class Comparison(Record):
    """Model calls side by side (``tk compare``, ``--json``, the HTML report).

    Attributes:
        entries: in the order given; ratios in ``relative`` are to the first.
        categories: every op category in any entry's breakdown, by total roofline time, slowest first.
        notes: caveats, one line each (entries on different hardware profiles, not characterized, ...).
    """

    entries: list[ComparisonEntry] = []
    categories: list[str] = []
    notes: list[str] = []


class CorpusInput(Record):
    """How one input of a corpus last ended, for ``--resume`` (``<cache>/.corpus/inputs/<key>.json``;
    ``turnkey_like.corpus``).

    Attributes:
        key: the input's identity (``corpus.input_key``: path or named model, and selectors).
        entry: the input as the user gave it.
        fingerprint: sha256 of what its outcome depends on (``corpus.input_fingerprint``: the file's
            bytes, script arguments, discovery depth, input shapes, requested stages).
        run_id: the run that ran it; finished_at: ISO-8601 UTC time it ended.
        result: its :class:`ScriptResult` without the stage payloads (those live in the build records).
    """

    key: str
    entry: str
    fingerprint: str
    run_id: str
    finished_at: str
    result: ScriptResult


# --------------------------------------------------------------------------------------------------
# The codec: the only place records become bytes or builtins and back
# --------------------------------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[type, msgspec.json.Decoder] = {}

R = TypeVar("R")


def encode(record: Any) -> bytes:
    """Encode a record (or builtins holding records) as compact JSON bytes.

    Non-finite floats become ``null`` (JSON has no infinity); fields typed ``float | None`` read
    them back as ``None``.
    """
    return _ENCODER.encode(record)


def to_builtins(record: Any) -> Any:
    """Plain dicts, lists, strings and numbers of a record (enums by value, tuples as lists)."""
    return msgspec.to_builtins(record)


def decode(data: bytes | str, type_: type[R], *, what: str = "record") -> R:
    """Decode JSON ``data`` into ``type_``, validating every field.

    Raises:
        RecordError: the data is not JSON or does not match the type; the message names ``what``
            and the offending field (``$.invocation.executed: Expected int, got str``).
    """
    decoder = _DECODERS.get(type_)
    if decoder is None:
        decoder = _DECODERS[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as e:
        raise RecordError(f"{what} does not match the tk schema: {e}",
                          hint="delete it (tk cache delete NAME) or rerun to rewrite it") from None
    except msgspec.DecodeError as e:
        raise RecordError(f"{what} is not valid JSON: {e}",
                          hint="delete it (tk cache delete NAME) or rerun to rewrite it") from None


def convert(obj: Any, type_: type[R], *, what: str = "record") -> R:
    """Validate builtins ``obj`` (as :func:`to_builtins` returns) into ``type_``.

    Raises:
        RecordError: ``obj`` does not match the type; the message names ``what`` and the field.
    """
    try:
        return msgspec.convert(obj, type_)
    except msgspec.ValidationError as e:
        raise RecordError(f"{what} does not match the tk schema: {e}") from None


def migrate(data: dict, *, what: str = "record") -> dict:
    """Bring a cached record's builtins up to :data:`SCHEMA_VERSION`, in place, and return it.

    Version 1 records hold the same fields as version 2, as untyped dicts; what changed is typing,
    which :func:`convert` then checks. The one v1 shape v2 does not accept: a build result with no
    tolerance wrote ``{}`` where v2 writes ``null``. (v1 stage results have no ``run_id``; it reads
    as ``None``.)

    Raises:
        RecordError: the record is newer than this tk, or older than :data:`OLDEST_READABLE_SCHEMA`.
    """
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RecordError(f"{what} has schema version {version!r}, newer than this tk reads ({SCHEMA_VERSION})",
                          hint="upgrade tk (pip install -U turnkey_like) to read it")
    if version < OLDEST_READABLE_SCHEMA:
        raise RecordError(f"{what} has outdated schema version {version}",
                          hint="delete it (tk cache delete NAME) and rerun to rebuild it")
    if version == 1:
        build = ((data.get("invocation") or {}).get("build") or {}).get("result")
        if isinstance(build, dict) and build.get("tolerance") == {}:
            build["tolerance"] = None
        data["schema_version"] = SCHEMA_VERSION
    return data
