"""What characterization finds for one model call: op rows, the per-module roll-up, totals, the
roofline-time breakdown, fusion groups, the hardware profile it used and the trace it made; and the
roofline chart a plot draws from them.

Units: bytes (``*bytes*``), FLOPs with 1 MAC = 2 FLOPs, arithmetic intensity in FLOPs/byte, FLOP/s
and bytes/s for hardware peaks, seconds (``*_s``).

Generation (:class:`Generation`, :class:`GenerationPhase`, :class:`StepCost`):
A generation of ``new_tokens`` N from a prompt of P tokens (``prompt_tokens``) at batch B runs one
*prefill* call (the prompt, into an empty KV cache; it yields the first token) and N−1 *decode*
steps (one token each, appended to the cache), at contexts P+1 … P+N−1 (the positions a step's new
token attends to, itself included; ``generate(max_new_tokens=N)`` never feeds its last token back).

The field names of :class:`Generation` and :class:`GenerationPhase` are a contract other tools read
from ``--json`` (docs/generation.md): they do not change. Units: MACs, FLOPs (1 MAC = 2 FLOPs),
bytes, seconds; decode figures are totals over the phase's steps.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from turnkey_like.records.base import Dim, Record


class InputDesc(Record):
    """Shape and dtype of one input leaf as characterization saw it (``[]`` shape for scalars)."""

    shape: list[Dim]
    dtype: str


class Spread(Record):
    """The spread of repeated measurements of one figure, in the figure's unit.

    Quartiles are linear interpolations between the sorted values (``statistics.quantiles(...,
    method="inclusive")``, the same as numpy's default percentiles); built by
    ``turnkey_like.stats.spread``.

    Attributes:
        runs: how many values.
        min, q1, median, q3, max: the smallest value, the quartiles, the largest.
        iqr: ``q3 - q1``, the interquartile range.
        rel_iqr: ``iqr / median`` (``None`` when the median is 0).
    """

    runs: int
    min: float
    q1: float
    median: float
    q3: float
    max: float
    iqr: float
    rel_iqr: float | None = None


class MachineLoad(Record):
    """How busy the machine was while something was measured, and whether that could have moved it.

    Built by ``turnkey_like.system.machine_load`` (the rule, its threshold and why: see there and
    docs/hardware.md).

    Attributes:
        window: what the window covered (``timed loop``, ``warm-up and timed loop``, ``measurement``,
            ``idle check``).
        window_s: its wall time, s.
        load_avg_1min: the 1-minute load average when the window opened (``os.getloadavg``; it counts
            runnable threads, tk's own included, and lags by about a minute); ``None`` where the OS
            has none.
        other_cpu_s: CPU seconds every other process used during the window: the machine's busy CPU
            time (``psutil.cpu_times``: user + nice + system + irq + softirq + steal) minus the
            measuring process's own (``psutil.Process().cpu_times``: user + system, all its threads);
            never below 0.
        other_cores: ``other_cpu_s / window_s``: how many cores the other processes kept busy.
        resolution_cores: what the counters cannot tell apart over this window, in cores: the kernel
            counts CPU time in clock ticks, so ``(cores + 6)`` ticks ÷ ``window_s``
            (``turnkey_like.system.resolution_ticks``).
        cores: logical cores of the machine.
        threads: cores the measurement kept busy: its threads, at most ``cores``.
        threshold_cores: ``CONTENTION_SHARE`` × ``threads``: other processes' use above this could
            have moved the figure.
        busy: ``other_cores - resolution_cores > threshold_cores``.
        attempts: measurements made before this one was kept (retries while busy included).
        waited_s: seconds spent waiting for a quieter machine.
        note: one line saying so with the figures when ``busy``
            (``other processes used 1.4 cores during the timed loop (load 6.6)``), else ``None``.
    """

    window: str
    window_s: float
    other_cpu_s: float
    other_cores: float
    resolution_cores: float
    cores: int
    threads: int
    threshold_cores: float
    busy: bool
    load_avg_1min: float | None = None
    attempts: int = 1
    waited_s: float = 0.0
    note: str | None = None


class HardwareProfile(Record):
    """Peak compute and memory bandwidth of one device (the roofline's two roofs).

    Attributes:
        name: short key used on the command line (``a100``, ``h100``, ``local``, ...).
        description: full device name.
        peak_flops: dense peak per dtype in FLOP/s (``int8`` and ``int4`` in op/s); keys ``float32``,
            ``float16``, ``bfloat16``, ``int8``, and ``float8`` / ``int4`` where the datasheet gives
            them (a device without the key has no such math units).
        memory_bandwidth: peak (or measured, for ``local``) memory bandwidth in bytes/s.
        memory_bytes: memory size, bytes: the GPU's memory, the most a CPU socket supports
            (datasheets), or this machine's RAM (``local``); ``None`` when not known.
        interconnect_bandwidth: bytes/s one device sends to its peers in one direction (NVLink for
            GPUs; what tensor parallelism's all-reduces move at); ``None`` when not known.
        sources: per value (``peak_flops.float32``, ``memory_bandwidth``, ``memory_bytes``, ...) the
            document it comes from and how it was derived.
        url: where the datasheet can be read (datasheet profiles); ``""`` for measured ones.
        notes: caveats (TF32, sparsity, clock assumptions).
        measured: True for profiles measured on this machine, False for datasheet profiles.
        threads: torch threads used when the profile was measured (``local`` only).
        measured_at: when it was measured, ISO-8601 UTC (``local`` only; ``None`` for profiles
            measured by a tk that did not record it).
        load: how busy the machine was during the measurement kept (``local`` only).
        flops_spread: FLOP/s of each timed repeat of the matmul (``local`` only; the peak is the best).
        bandwidth_spread: bytes/s of each timed repeat of the copy (``local`` only; the peak is the best).
        warnings: what makes the measured peaks doubtful (measured while the machine was busy, repeats
            spread widely), one line each; every view of the profile repeats them.
    """

    name: str
    description: str
    peak_flops: dict[str, float]
    memory_bandwidth: float
    memory_bytes: int | None = None
    sources: dict[str, str] = {}
    url: str = ""
    notes: str = ""
    measured: bool = False
    threads: int | None = None
    measured_at: str | None = None
    load: MachineLoad | None = None
    flops_spread: Spread | None = None
    bandwidth_spread: Spread | None = None
    warnings: list[str] = []
    interconnect_bandwidth: float | None = None

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
        generation: for a call that filled an empty KV cache (a prefill), the generation it started:
            prefill and decode phases (:class:`~turnkey_like.records.Generation`).
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
    generation: Generation | None = None
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
# Generation: prefill and decode of a causal LM with its KV cache
# --------------------------------------------------------------------------------------------------

class StepCost(Record):
    """The cost of one decode step (the first or the last of the phase).

    Attributes:
        context: positions the step's new token attends to (itself included).
        macs, flops: of the step (1 MAC = 2 FLOPs).
        bytes: memory traffic of its ops run one by one (read + written, unfused).
        roofline_time_s: the sum of its ops' roofline times on the generation's hardware profile.
    """

    context: int
    macs: int
    flops: int
    bytes: int
    roofline_time_s: float


class GenerationPhase(Record):
    """One phase of a generation: ``prefill`` (one call) or ``decode`` (every step, summed).

    Attributes:
        phase: ``prefill`` or ``decode``.
        steps: calls in the phase (1 for the prefill).
        context_first, context_last: the context of its first and last call (prefill: P).
        macs: MACs as the kernels compute them (a causal prefill's attention is dense, as SDPA's math
            computes it); macs_causal: the part a causal mask keeps (the upper triangle, and positions
            beyond a sliding window, left out).
        flops: FLOPs (1 MAC = 2 FLOPs, plus the non-MAC FLOPs of norms, activations, softmax...).
        bytes_weights: parameter (and buffer) bytes read.
        bytes_kv_read: K and V of the positions each layer attends to, the new ones included, by KV
            heads: for a sliding-window layer of window W, a call of t new tokens reads the union of
            their windows, min(context, W + t − 1) positions (a decode step: min(context, W)).
        bytes_kv_write: K and V of the new positions.
        bytes_activations: every other byte of traffic, the cache's own copies included (a
            ``torch.cat`` that rewrites the cache is counted here, not hidden).
        roofline_time_s: the sum over its calls of their ops' roofline times, seconds.
        step_first, step_last: decode only: the first and the last step.
        modules: decode only: the per-module table summed over the steps (``tk profile --phase
            decode``); the prefill's is its characterization's own.
    """

    phase: Literal["prefill", "decode"]
    steps: int
    context_first: int
    context_last: int
    macs: int
    macs_causal: int
    flops: int
    bytes_weights: int
    bytes_kv_read: int
    bytes_kv_write: int
    bytes_activations: int
    roofline_time_s: float
    step_first: StepCost | None = None
    step_last: StepCost | None = None
    modules: list[ModuleRow] = []


class MeasuredGeneration(Record):
    """One generation timed on one runtime and device, beside the prediction (``tk benchmark`` on a
    generation; ``turnkey_like.runtimes.generation`` measures it, docs/generation.md says how).

    TTFT is the time of the prefill call (prompt to first token's logits); TPOT the mean time of one
    decode step over the same N − 1 steps the prediction covers; each is the median over
    ``repeats`` generations after ``warmup`` untimed ones. Ratios are measured ÷ predicted
    (:attr:`Generation.ttft_s`, :attr:`Generation.tpot_s`, on :attr:`Generation.hardware`).

    Attributes:
        runtime: ``torch-eager`` or ``ort`` (ONNX Runtime on the exported prefill and decode-step graphs).
        device: ``cpu`` or ``cuda``.
        status: ``successful``, ``error`` (``error`` says why: an export that failed, a crash, a
            timeout) or ``skipped`` (``error`` says why: no CUDA device, a model tk cannot generate with).
        measured_ttft_s, measured_tpot_s: seconds (``measured_tpot_s`` is ``None`` when N = 1).
        ratio_ttft, ratio_tpot: measured ÷ predicted (``None`` without both figures).
        repeats: generations timed; warmup: generations run before them, untimed.
        decode_steps: decode steps per generation (N − 1).
        runtime_version, device_name, threads: what ran it (threads: intra-op threads).
        flags: one line per finding the figures show: a ratio below
            ``turnkey_like.runtimes.generation.PROFILE_ERROR_RATIO`` (the run beat the roofline, so
            the profile's peaks, or the count, are wrong), never hidden.
        load: how busy the machine was while the repeats ran.
        error: why the entry has no figures (status ``error`` or ``skipped``).
    """

    runtime: str
    device: str
    status: Literal["successful", "error", "skipped"]
    measured_ttft_s: float | None = None
    measured_tpot_s: float | None = None
    ratio_ttft: float | None = None
    ratio_tpot: float | None = None
    repeats: int = 0
    warmup: int = 0
    decode_steps: int = 0
    runtime_version: str = ""
    device_name: str = ""
    threads: int | None = None
    flags: list[str] = []
    load: MachineLoad | None = None
    error: str | None = None


class Generation(Record):
    """Prefill and decode of one generation, with the predicted latencies (see the module docstring).

    Attributes:
        batch_size: sequences generated together (B).
        prompt_tokens: P; new_tokens: N.
        phases: the prefill, then the decode phase (absent when N is 1).
        ttft_s: predicted time to first token: the prefill's roofline time.
        tpot_s: predicted time per output token: the mean decode step's roofline time (``None``
            without decode steps).
        tokens_per_s: ``batch_size / tpot_s``.
        kv_cache_bytes_per_token: K and V bytes one position of one sequence adds, over all layers
            that store positions (what a position costs in the cache's memory).
        kv_cache_bytes: K and V bytes the cache holds at the end (every sequence; sliding-window
            layers hold at most their window).
        hardware: the profile the roofline times are on.
        params_total: the model's parameters; params_active: those a decode step reads (MoE
            models read only their routed experts), estimated as ``bytes_weights`` of the first
            step ÷ the bytes per parameter.
        exact: every step's cost is counted or follows exactly from counted ones (see
            docs/generation.md); ``False`` with the reason in ``notes``.
        notes: how the figures were made, and anything estimated.
        measured: the generation timed on each runtime and device (``tk benchmark``), beside the
            predicted TTFT and TPOT (:class:`MeasuredGeneration`); empty until benchmarked.
    """

    batch_size: int
    prompt_tokens: int
    new_tokens: int
    phases: list[GenerationPhase]
    ttft_s: float
    tpot_s: float | None
    tokens_per_s: float | None
    kv_cache_bytes_per_token: int
    kv_cache_bytes: int
    hardware: str = ""
    params_total: int = 0
    params_active: int = 0
    exact: bool = True
    notes: list[str] = []
    measured: list[MeasuredGeneration] = []
    shape: GenerationShape | None = None
    whatif: list[WhatIf] = []

    def phase(self, name: str) -> GenerationPhase | None:
        """The phase called ``name`` (``prefill`` or ``decode``), or ``None``."""
        return next((p for p in self.phases if p.phase == name), None)


# --------------------------------------------------------------------------------------------------
# Generation what-ifs: other dtypes, tensor parallelism and memory capacity, from the counted record
# (turnkey_like.characterize.generation_whatif; docs/generation.md, "What-ifs")
# --------------------------------------------------------------------------------------------------

class GenerationShape(Record):
    """What the what-ifs need of the model's shape, recorded when the generation is counted.

    Attributes:
        dtype: the dtype the model was counted at (its parameters' and activations' main dtype).
        kv_itemsize: bytes per K/V element as the cache stored them.
        layers: cache layers that store positions (a decoder's self-attention layers).
        kv_heads: key/value heads per layer (the most of any layer); 0 when not known.
        head_dim, value_dim: the keys' and the values' head dimension (0 when not known).
        hidden_size: the width of the residual stream, read from the token embedding's output (the
            ``embedding`` op with the largest table); ``None`` when the model ran no embedding op
            (then tensor parallelism's all-reduce bytes are left out).
    """

    dtype: str
    kv_itemsize: int
    layers: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    value_dim: int = 0
    hidden_size: int | None = None


class WhatIfPhase(Record):
    """One phase of a what-if, per device, summed over the phase's steps.

    Attributes:
        phase: ``prefill`` or ``decode``; steps: calls in the phase.
        flops: FLOPs per device (the counted FLOPs ÷ the tensor-parallel degree).
        bytes_weights, bytes_kv_read, bytes_kv_write, bytes_activations: the counted bytes scaled to
            the what-if's weight, KV and activation dtypes, per device.
        bytes_allreduce: bytes each device sends for tensor parallelism's all-reduces (ring:
            2(N−1)/N of each buffer); 0 on one device.
        compute_time_s: ``flops`` ÷ the peak of the math dtype.
        memory_time_s: (weights + KV + activation bytes) ÷ memory bandwidth.
        comm_time_s: ``bytes_allreduce`` ÷ the interconnect's bandwidth per direction; ``None`` when the
            profile has no interconnect figure (left out of ``time_s``).
        time_s: max(compute, memory) + communication: the phase's roofline time, phase-level.
        bound: ``compute-bound`` when compute time ≥ memory time, else ``memory-bound``.
    """

    phase: Literal["prefill", "decode"]
    steps: int
    flops: int
    bytes_weights: int
    bytes_kv_read: int
    bytes_kv_write: int
    bytes_activations: int
    bytes_allreduce: int
    compute_time_s: float
    memory_time_s: float
    comm_time_s: float | None
    time_s: float
    bound: str


class Capacity(Record):
    """What fits one device's memory: the weights and the KV cache at the final context.

    Left out: activations, the runtime's workspace, the CUDA context and allocator fragmentation
    (``WhatIf.memory_reserve`` keeps a share of the memory back for them).

    Attributes:
        memory_bytes: the device's memory (the profile's ``memory_bytes``); ``None`` when unknown.
        usable_bytes: ``memory_bytes`` × (1 − reserve); ``None`` when unknown.
        weight_bytes: the parameters at the weight dtype, per device (all of them stay resident:
            every expert of an MoE model).
        kv_bytes_per_token: K and V bytes one position of one sequence holds, per device.
        context: positions a sequence holds in the cache at the end (P + N − 1).
        kv_bytes_per_sequence: K and V bytes one sequence holds at the end, per device (a
            sliding-window layer holds its window).
        max_batch: the most sequences whose KV cache fits beside the weights (0: the weights alone
            do not fit); ``None`` when the memory is not known or a sequence holds no KV bytes.
        fits: the generation's own batch fits; ``None`` when the memory is not known.
        min_tensor_parallel: the smallest tensor-parallel degree (1, 2, 4 … 64) at which the
            generation's batch fits each device; ``None`` when none does or the memory is unknown.
    """

    memory_bytes: int | None
    usable_bytes: int | None
    weight_bytes: int
    kv_bytes_per_token: int
    context: int
    kv_bytes_per_sequence: int
    max_batch: int | None
    fits: bool | None
    min_tensor_parallel: int | None


class WhatIf(Record):
    """The generation on one hardware profile at other dtypes and tensor-parallel degree, computed
    from the counted record without running the model again (phase-level roofline; see
    ``turnkey_like.characterize.generation_whatif``).

    Attributes:
        hardware: the profile's name.
        weight_dtype, act_dtype, kv_dtype: the dtypes of the weights, the activations and the KV
            cache (``float32``, ``bfloat16``, ``float16``, ``float8``, ``int8``, ``int4``).
        math_dtype: the dtype whose peak the FLOPs run at; peak_flops: that peak, FLOP/s (op/s for
            integers); peak_rule: one line saying why.
        tensor_parallel: devices the model is split over (Megatron-style).
        memory_reserve: the share of each device's memory kept back (``Capacity``).
        phases: prefill, then decode (when the generation has decode steps).
        ttft_s: the prefill's time; tpot_s: the mean decode step's; tokens_per_s: batch ÷ tpot_s.
        decode_knee_batch: the batch at which decode turns compute-bound, extrapolated from this
            batch (FLOPs, KV and activation bytes grow with the batch; weight bytes do not);
            ``None`` when decode stays memory-bound at every batch (its per-sequence arithmetic
            intensity is below the ridge point).
        decode_knee_batch_kv_only: the same with decode's activation bytes left out, as if its only
            traffic besides the weights were the KV cache's reads and writes (a fused attention
            kernel over a cache written in place, as FlashAttention or PagedAttention run it; the
            counted activations include the cache's ``torch.cat`` copies and GQA's repeated K/V).
        capacity: what fits the device's memory.
        notes: what is approximated or left out, one line each.
    """

    hardware: str
    weight_dtype: str
    act_dtype: str
    kv_dtype: str
    math_dtype: str
    peak_flops: float
    peak_rule: str
    tensor_parallel: int
    memory_reserve: float
    phases: list[WhatIfPhase]
    ttft_s: float
    tpot_s: float | None
    tokens_per_s: float | None
    decode_knee_batch: float | None
    decode_knee_batch_kv_only: float | None
    capacity: Capacity
    notes: list[str] = []

    def phase(self, name: str) -> WhatIfPhase | None:
        """The phase called ``name`` (``prefill`` or ``decode``), or ``None``."""
        return next((p for p in self.phases if p.phase == name), None)
