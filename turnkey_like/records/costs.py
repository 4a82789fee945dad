"""The parts of a characterization: the inputs it saw, the trace it made, op rows, the per-module
roll-up, totals, the roofline-time breakdown, fusion groups, folded repeated blocks, and the roofline
chart a plot draws from them.

Units: bytes (``*bytes*``), FLOPs with 1 MAC = 2 FLOPs, arithmetic intensity in FLOPs/byte, FLOP/s
and bytes/s for hardware peaks, seconds (``*_s``).
"""

from __future__ import annotations

import msgspec

from turnkey_like.records.base import Dim, Record


class InputDesc(Record):
    """Shape and dtype of one input leaf as characterization saw it (``[]`` shape for scalars)."""

    shape: list[Dim]
    dtype: str




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


#: Why a fusion group ends (``FusionGroup.end``): what reads its last op's result, and what that means.
FUSION_ENDS = {
    "output": "nothing reads the last op's result (the model's output)",
    "second consumer": "more than one op reads the last op's result, so it goes to memory anyway",
    "reduction": "a reduction reads the result (a reduction, softmax or pooling op: it reduces over an axis or window)",
    "layout change": "a data-movement op reads the result (view, permute, transpose, cat, copy)",
    "anchor": "another conv/matmul/attention reads the result (it starts a group of its own)",
    "grouped": "the op reading the result is in an earlier group already (it joins two chains: a residual add)",
    "not fusible": "the op reading the result is no epilogue op (embedding, interpolation, an op without a formula)",
}


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
        macs: MACs of the group's ops (1 MAC = 2 FLOPs).
        bound: the group's bound as one fused op on the record's hardware profile (FLOPs over
            ``external_bytes`` at the anchor's dtype); ``""`` in records written before it was kept.
        roofline_time_s: the fused group's roofline time on that profile, seconds.
        end: why the group ends, decided when it was formed (``characterize.fusion``): a key of
            :data:`FUSION_ENDS` (``output``, ``second consumer``, ``reduction``, ``layout change``,
            ``anchor``, ``grouped``, ``not fusible``); ``""`` in records written before it was kept.
        end_readers: the ops (``OpRow.index``) that read the last op's result: none for ``output``,
            two or more for ``second consumer``, else the one op the chain stopped before.
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
    macs: int = 0
    bound: str = ""
    roofline_time_s: float = 0.0
    end: str = ""
    end_readers: list[int] = []


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

    Two blocks are identical only when they are identical in cost: the same class and parameters,
    and the same ops in the same order, at the same paths relative to the block
    (``attention.self.query``), each with the same input and output shapes, dtype, MACs, FLOPs,
    bytes and weight bytes (``turnkey_like.characterize.assemble.find_repeats``). Pictures draw the
    first block once, marked "×N", with each block's figures (``turnkey_like.views.graph``).

    Attributes:
        paths: the blocks' module paths, in execution order (``encoder.layer.0`` ...).
        class_name: their class.
        ops: op rows in each block (the same for every block).
        macs, flops, bytes, params: each block's MACs, FLOPs (1 MAC = 2 FLOPs), bytes read + written
            and parameters (the same for every block; 0 in records written before blocks were
            compared by cost).
    """

    paths: list[str]
    class_name: str
    ops: int
    macs: int = 0
    flops: int = 0
    bytes: int = 0
    params: int = 0


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
