"""Per-layer measured time (``--per-layer``): profiler events mapped to module paths, beside the roofline.

A runtime's :meth:`~turnkey_like.runtimes.base.Runtime.profile_layers` profiles a few extra runs
after the timed ones (so the latency figures are not disturbed) and returns a :class:`RawProfile`:
the profiled runs' wall times and every kernel (an ORT node, a top-level ATen op) with its summed
time and the module path(s) it ran for. :func:`per_layer_result` turns that into the
:class:`~turnkey_like.records.PerLayerResult` record: per module and per op category, the measured
time per iteration, its share, the roofline time predicted for the same ops on the hardware profile
the run measured on, efficiency = predicted ÷ measured, and attained FLOP/s and bytes/s.
This module measures; reading a stored result is the record's own business
(``PerLayerResult.module_rows``, ``least_efficient``, ``top_measured``), so reports and views never
import a runtime.

Where the time goes, exactly: the module rows (each module's *own* kernels) plus
``(unmapped kernels)`` (kernels no module could be found for) plus ``(unattributed)`` (the profiled
run's wall time minus all kernel time: time between ops, framework overhead) add up to the profiled
run's wall time.

Mapping ONNX nodes to modules (:func:`onnx_kernel_modules`):

- the source graph (the ONNX file benchmarked) gives each node its module path: the dynamo exporter
  writes the module stack in the node's ``pkg.torch.onnx.name_scopes`` metadata (``['', 'model',
  'model.layer1', 'model.layer1.0', 'model.layer1.0.conv1', 'conv2d_3']``: the last entry is the
  op); the TorchScript exporter has no metadata but names nodes by scope
  (``/model/layer1/layer1.0/conv1/Conv``), which is parsed the same way. tk's export wrapper holds
  the model as ``model``, so that prefix is dropped. A node also belongs to the modules whose
  parameters it reads (initializer ``model.conv1.weight`` -> ``conv1``): the exporter's optimizer
  folds BatchNorm into the preceding Conv and keeps the BatchNorm's scope, so the folded Conv belongs
  to both ``bn1`` and ``conv1``. Each path is taken to the deepest module the characterization knows.
- ONNX Runtime then rewrites the graph (fusions, NCHWc layouts). The profiling session saves its
  optimized graph; each of its nodes (one profiler event) is matched to source nodes by name (same
  name; ``NAME/FusionName``; ``TENSOR_nchwc`` names the source tensor it computes; else the source
  tensors it outputs). A source node no kernel names was fused into a neighbour's kernel: it joins
  the adjacent kernel of its own op type that has none yet (Conv into a fused Conv+Relu named after
  the Relu), else its producer's kernel (epilogues: bias add, activation, residual add), else its
  consumer's. Layout kernels with no source node (``ReorderInput``, ``gemm_input_reshape``) join
  the kernel whose output they read, else the one that reads theirs.
- Each kernel then knows the modules it ran for, with its share of each module's ONNX nodes.

Attribution to ops (:func:`_kernel_weights`), one rule for every runtime: a kernel's time goes to the
characterization's op rows (``OpRow``) it ran, in proportion to their roofline time on the profile
the run measured on. The rows offered are each covered module's own rows, weighted by the kernel's
share of that module's nodes: all of them for an ONNX Runtime kernel, which may be fused (its
FusedConv covering ``conv1``, the BatchNorm folded into it and the ReLU after it gives ``bn1``'s
``norm`` row and ``relu``'s ``activation`` row their share); for a torch op, which is one ATen op,
the rows of its category when its module has any (``aten::conv2d`` goes to the module's
convolutions, not its residual add). So an op fused into another's kernel is never shown at 0 ms,
and the ops of one fused kernel all show that kernel's efficiency: a profiler cannot tell them
apart. With no roofline time at all, rows count equally. A module's own time is the sum of its
rows' (``PerLayerResult.op_ms``); a category's is the sum over the rows of that category; a fusion
group's is the sum over its ops (``PerLayerResult.group_times``). Kernels without a module (unmapped)
keep the kernel's own category.

torch eager: forward hooks open a ``torch.profiler.record_function`` range per module call; each
top-level ATen op's time (CPU time, or its kernels' device time on CUDA) goes to the innermost module
range around it. torch.compile: inductor fuses across modules and its kernels carry no module, so
every kernel is listed as unmapped (stated in ``mapping_note``).
"""

from __future__ import annotations

import ast
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

from turnkey_like.records import (UNATTRIBUTED, UNMAPPED, Characterization, HardwareProfile, LayerTime, OpRow,
                                  PerLayerResult)
from turnkey_like.stats import WIDE_SPREAD

if TYPE_CHECKING:
    import numpy as np
    import onnx

#: profiled runs (at most ``--iterations``) and the profiling session's own warm-up runs
PER_LAYER_RUNS = 20
PER_LAYER_WARMUP = 3
#: a row whose own time spreads more than this across the profiled runs (interquartile range ÷
#: median) is noisy: its % of roof, printed to two digits, cannot bear the second (docs/hardware.md)
NOISY_SPREAD = WIDE_SPREAD
#: the attribute tk's export wrapper (``turnkey_like.calls.export_wrapper``) holds the model in
WRAPPER_ATTRIBUTE = "model"
#: name prefixes of the torch.profiler ranges the hooks open
MODULE_RANGE = "tk.module::"
RUN_RANGE = "tk.run"

#: ONNX (and ONNX Runtime contrib) op type -> tk's op category (``turnkey_like.characterize.ops.CATEGORIES``);
#: a fused kernel takes its anchor's category (FusedConv is ``conv``).
ONNX_CATEGORIES = {
    **dict.fromkeys(["Conv", "FusedConv", "ConvTranspose", "NhwcConv", "QLinearConv", "ConvInteger"], "conv"),
    **dict.fromkeys(["MatMul", "Gemm", "FusedGemm", "FusedMatMul", "MatMulInteger", "QLinearMatMul",
                     "MatMulNBits", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "Einsum"], "matmul"),
    **dict.fromkeys(["Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention"], "attention"),
    **dict.fromkeys(["BatchNormalization", "LayerNormalization", "SkipLayerNormalization",
                     "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization",
                     "InstanceNormalization", "GroupNorm", "EmbedLayerNormalization", "RMSNormalization"], "norm"),
    **dict.fromkeys(["Relu", "Gelu", "BiasGelu", "FastGelu", "QuickGelu", "Sigmoid", "Tanh", "Erf", "Elu",
                     "LeakyRelu", "HardSigmoid", "HardSwish", "Softplus", "Clip", "Selu", "Mish", "PRelu"],
                    "activation"),
    **dict.fromkeys(["Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Where", "Max",
                     "Min", "Equal", "Less", "Greater", "And", "Or", "Not", "IsNaN", "Reciprocal", "Sum"],
                    "elementwise"),
    **dict.fromkeys(["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"], "pooling"),
    **dict.fromkeys(["Softmax", "LogSoftmax"], "softmax"),
    **dict.fromkeys(["Gather", "GatherElements", "GatherND"], "embedding"),
    **dict.fromkeys(["Resize", "Upsample"], "interpolation"),
    **dict.fromkeys(["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ArgMax", "ArgMin"],
                    "reduction"),
    **dict.fromkeys(["Reshape", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze", "Flatten",
                     "Expand", "Tile", "Pad", "Cast", "Identity", "Shape", "ConstantOfShape", "ScatterND",
                     "ReorderInput", "ReorderOutput", "MemcpyToHost", "MemcpyFromHost", "Range"],
                    "data_movement"),
}
#: op types that are a kernel's main work: a fused kernel holds at most one of each
_ANCHOR_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "Attention", "MultiHeadAttention"})
_FOLDED_OPS = frozenset({"Constant"})


@dataclass
class Kernel:
    """One kernel (an ORT graph node, a top-level ATen op in one module), summed over the profiled runs.

    Attributes:
        name: ORT node name, or ``aten::op`` (torch).
        op: its op type (ONNX op type, ATen op name).
        category: tk's op category of the kernel.
        seconds: its time summed over the profiled runs, seconds.
        events: profiler events summed (per run: how often it ran).
        modules: ``(module path, share)``: the modules it ran for, each with the kernel's share of that
            module's ONNX nodes (1.0 for a torch op); empty when no module was found (unmapped).
        per_run: its time in each profiled run, seconds (index = the run, in order; shorter than the
            run count when it did not run in the last ones); ``seconds`` is their sum.
    """

    name: str
    op: str
    category: str
    seconds: float = 0.0
    events: int = 0
    modules: list[tuple[str, float]] = field(default_factory=list)
    per_run: list[float] = field(default_factory=list)

    def add(self, seconds: float, run: int) -> None:
        """Count one event of ``seconds`` in profiled run ``run`` (0-based)."""
        self.seconds += seconds
        self.events += 1
        if len(self.per_run) <= run:
            self.per_run.extend([0.0] * (run + 1 - len(self.per_run)))
        self.per_run[run] += seconds


@dataclass
class RawProfile:
    """What a runtime's profiler measured (:meth:`Runtime.profile_layers`), before any roofline.

    Attributes:
        method: the profiler, e.g. ``onnxruntime session profiler``.
        mapping: how kernels were mapped to modules (``dynamo name_scopes``, ``torchscript node
            names``, ``forward hooks``, ``none``); ``mapping_note`` its limits.
        wall_s: each profiled run's own wall time, seconds (the profiler's run range).
        kernels: every kernel, summed over those runs.
    """

    method: str
    mapping: str
    wall_s: list[float]
    kernels: list[Kernel]
    mapping_note: str = ""

    @property
    def runs(self) -> int:
        """Profiled runs."""
        return len(self.wall_s)


def profiled_runs(iterations: int) -> int:
    """How many runs ``--per-layer`` profiles: :data:`PER_LAYER_RUNS`, at most ``iterations``."""
    return max(1, min(PER_LAYER_RUNS, iterations))


# --------------------------------------------------------------------------------------------------
# ONNX: source graph nodes -> module paths
# --------------------------------------------------------------------------------------------------


def _strip_wrapper(path: str) -> str | None:
    """A wrapper-relative path (``model.layer1.0``) as a model path (``layer1.0``); ``None`` for the wrapper."""
    if path == WRAPPER_ATTRIBUTE:
        return ""
    if path.startswith(WRAPPER_ATTRIBUTE + "."):
        return path[len(WRAPPER_ATTRIBUTE) + 1:]
    return None


def _deepest_known(path: str, known: set[str] | None) -> str:
    """``path``, or its deepest ancestor in ``known`` (``layer1.0.relu_1`` -> ``layer1.0.relu`` when
    the TorchScript exporter numbered a second call of a module); ``path`` itself without ``known``."""
    if known is None or path in known:
        return path
    base, sep, suffix = path.rpartition("_")
    if sep and suffix.isdigit() and base in known:
        return base
    while path:
        path = path.rpartition(".")[0]
        if path in known:
            return path
    return ""


def scope_of_name_scopes(text: str) -> str | None:
    """The module path in a dynamo node's ``pkg.torch.onnx.name_scopes`` metadata (a Python list
    literal whose last entry is the op), relative to tk's export wrapper; ``None`` when unreadable."""
    try:
        scopes = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(scopes, list):
        return None
    for scope in reversed(scopes[:-1]):
        path = _strip_wrapper(str(scope)) if scope else None
        if path is not None:
            return path
    return ""


def scope_of_torchscript_name(name: str) -> str | None:
    """The module path a TorchScript-exported node name encodes (``/model/layer2/layer2.0/downsample/
    downsample.0/Conv`` -> ``layer2.0.downsample.0``); ``None`` for a name without scopes.

    The exporter names each scope by the module's attribute, except a container's children, which it
    names ``<container>.<index>``: such a segment replaces the one before it.
    """
    if not name.startswith("/"):
        return None
    segments = name.split("/")[1:-1]
    if not segments or segments[0] != WRAPPER_ATTRIBUTE:
        return None
    parts: list[str] = []
    for seg in segments[1:]:
        if parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts)


def node_modules(model: onnx.ModelProto, known: set[str] | None) -> tuple[list[list[str]], str]:
    """Each source node's module paths (its scope, then the modules whose parameters it reads), and
    the mapping used: ``dynamo name_scopes``, ``torchscript node names`` or ``none``.

    A parameter's module is added only for a node the exporter's optimizer rewrote (its
    ``pkg.onnxscript.rewriter.rule_name`` metadata, e.g. BatchNorm folded into Conv) or that has no
    scope, and only when no other node reads that initializer (the optimizer merges equal
    initializers, so a shared one names an arbitrary module).
    """
    initializers = {init.name for init in model.graph.initializer}
    readers: dict[str, int] = defaultdict(int)
    for node in model.graph.node:
        for name in set(node.input):
            readers[name] += 1
    out: list[list[str]] = []
    kinds: set[str] = set()
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scope = None
        if "pkg.torch.onnx.name_scopes" in meta:
            scope = scope_of_name_scopes(meta["pkg.torch.onnx.name_scopes"])
            kinds.add("dynamo name_scopes")
        else:
            scope = scope_of_torchscript_name(node.name)
            if scope is not None:
                kinds.add("torchscript node names")
        paths: list[str] = []
        if scope is not None:
            paths.append(_deepest_known(scope, known))
        rewritten = scope is None or "pkg.onnxscript.rewriter.rule_name" in meta
        for name in node.input if rewritten else ():
            if name in initializers and "." in name and readers[name] == 1:
                owner = _strip_wrapper(name.rpartition(".")[0])
                if owner is not None and (known is None or owner in known) and owner not in paths:
                    paths.append(owner)
        out.append(paths)
    kind = "dynamo name_scopes" if "dynamo name_scopes" in kinds else (kinds.pop() if kinds else "none")
    return out, kind


# --------------------------------------------------------------------------------------------------
# ONNX Runtime: optimized graph nodes (profiler events) -> source nodes -> modules
# --------------------------------------------------------------------------------------------------


def _constant_nodes(model: onnx.ModelProto) -> set[int]:
    """Source nodes ONNX Runtime folds away: constants and nodes computed from constants only."""
    const = {init.name for init in model.graph.initializer}
    folded: set[int] = set()
    for i, node in enumerate(model.graph.node):
        if node.op_type in _FOLDED_OPS or all(not x or x in const for x in node.input):
            folded.add(i)
            const.update(node.output)
    return folded


def onnx_kernel_modules(source: onnx.ModelProto, optimized: onnx.ModelProto | None,
                        known: set[str] | None) -> tuple[dict[str, list[tuple[str, float]]], str]:
    """Map each ONNX Runtime kernel (a node of the optimized graph, by name) to its modules and shares.

    Args:
        source: the ONNX model benchmarked (loaded without external data).
        optimized: the graph the profiling session ran (its ``optimized_model_filepath``), or ``None``
            (then only kernels named like a source node are mapped).
        known: the characterization's module paths (paths are taken to the deepest known one), or
            ``None``.

    Returns:
        ``({kernel name: [(module path, share of the module's nodes in this kernel), ...]}, mapping)``
        (see the module doc for the rules); a kernel with no module is absent.
    """
    graph = source.graph
    nodes = list(graph.node)
    modules, mapping = node_modules(source, known)
    folded = _constant_nodes(source)
    node_by_name = {n.name: i for i, n in enumerate(nodes) if n.name}
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(nodes):
        for x in n.input:
            if x:
                consumers[x].append(i)

    kernels = list(optimized.graph.node) if optimized is not None else []
    kernel_op = {k.name: k.op_type for k in kernels}
    covered: dict[str, list[int]] = defaultdict(list)  # kernel -> source nodes
    owner: dict[int, str] = {}  # source node -> kernel

    def seeds(k) -> list[int]:
        name = k.name
        if name in node_by_name:
            return [node_by_name[name]]
        head = name.split("/", 1)[0]
        if head in node_by_name:
            return [node_by_name[head]]
        if name.endswith("_nchwc") and name[: -len("_nchwc")] in producer:
            return [producer[name[: -len("_nchwc")]]]
        if onnx_category(k.op_type) == "data_movement":  # a layout kernel computes only a node of its own op
            return [producer[o] for o in k.output if o in producer and nodes[producer[o]].op_type == k.op_type]
        return [producer[o] for o in k.output if o in producer]

    for k in kernels:
        for i in seeds(k):
            if i not in owner and i not in folded:
                owner[i] = k.name
                covered[k.name].append(i)
    if optimized is None:  # names only
        for name, i in node_by_name.items():
            kernel_op[name] = nodes[i].op_type
            owner[i] = name
            covered[name].append(i)

    def has_op(kernel: str, op: str) -> bool:
        return any(nodes[j].op_type == op for j in covered[kernel])

    def join(i: int, kernel: str) -> None:
        owner[i] = kernel
        covered[kernel].append(i)

    # source nodes fused into a neighbour's kernel, in topological order, then against consumers
    pending = [i for i in range(len(nodes)) if i not in owner and i not in folded]
    for i in pending:
        node = nodes[i]
        near = [owner[producer[x]] for x in node.input if x in producer and producer[x] in owner]
        after = [owner[c] for o in node.output for c in consumers.get(o, []) if c in owner]
        same_op = [k for k in near + after if node.op_type in kernel_op.get(k, "") and not has_op(k, node.op_type)]
        if same_op:
            join(i, same_op[0])
            continue
        upstream = [k for k in near if not (node.op_type in _ANCHOR_OPS and any(has_op(k, a) for a in _ANCHOR_OPS))]
        if upstream:
            join(i, upstream[0])
    for i in reversed(pending):
        if i in owner:
            continue
        after = [owner[c] for o in nodes[i].output for c in consumers.get(o, []) if c in owner]
        if after:
            join(i, after[0])

    return _module_shares(covered, modules, kernels), mapping


def _module_shares(covered: dict[str, list[int]], modules: list, kernels: list) -> dict[str, list[tuple[str, float]]]:
    """Each kernel's modules and its share of each module's source nodes (``covered``: kernel ->
    source node indices, ``modules``: per source node its module paths); layout kernels that cover no
    source node take the modules of the kernel whose output they read, else of one reading theirs,
    with no share of nodes (:func:`onnx_kernel_modules`)."""
    # per module: its nodes, and each kernel's share of them
    totals: dict[str, float] = defaultdict(float)
    per_kernel: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for kernel, idx in covered.items():
        for i in idx:
            paths = modules[i]
            for path in paths:
                per_kernel[kernel][path] += 1.0 / len(paths)
                totals[path] += 1.0 / len(paths)
    shares = {k: [(m, n / totals[m]) for m, n in counts.items()] for k, counts in per_kernel.items()}

    # layout kernels with no source node: the kernel whose output they read, else the one reading theirs
    made_by = {o: k.name for k in kernels for o in k.output}
    read_by: dict[str, list[str]] = defaultdict(list)
    for k in kernels:
        for x in k.input:
            read_by[x].append(k.name)
    for k in kernels:
        if k.name in shares:
            continue
        near = [made_by[x] for x in k.input if x in made_by and made_by[x] in shares]
        after = [c for o in k.output for c in read_by.get(o, []) if c in shares]
        for other in near + after:
            shares[k.name] = [(m, 0.0) for m, _ in shares[other]]  # takes time, not a share of nodes
            break
    return shares


def onnx_category(op_type: str) -> str:
    """tk's op category of an ONNX (or ONNX Runtime contrib) op type (:data:`ONNX_CATEGORIES`), else ``other``."""
    return ONNX_CATEGORIES.get(op_type, "other")


def ort_profile_kernels(events: list[dict], runs: int) -> tuple[list[float], dict[str, Kernel]]:
    """The last ``runs`` session runs of an ONNX Runtime profile (its JSON events).

    Returns ``(wall seconds of each run, {node name: Kernel})`` (each :class:`Kernel` with its op
    type, summed and per-run seconds and events; category and modules left for the caller): a run
    is a ``model_run`` event of category ``Session``; a kernel is a ``<node>_kernel_time`` event of
    category ``Node`` inside one (by its start time). On a CUDA build with kernel events (category
    ``Kernel``) those are used instead and the node they belong to is read from their
    ``args.parent_name``.
    """
    run_events = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])[-runs:]
    spans = [(e["ts"], e["ts"] + e["dur"]) for e in run_events]
    gpu = [e for e in events if e.get("cat") == "Kernel"]
    out: dict[str, Kernel] = {}
    for e in events:
        if gpu:
            if e.get("cat") != "Kernel":
                continue
            name = (e.get("args") or {}).get("parent_name") or e.get("name", "")
            op = (e.get("args") or {}).get("op_name", "")
        else:
            if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
                continue
            name = e["name"][: -len("_kernel_time")]
            op = (e.get("args") or {}).get("op_name", "")
        ts = e["ts"]
        run = next((i for i, (a, b) in enumerate(spans) if a <= ts <= b), None)
        if run is None:
            continue
        kernel = out.setdefault(name, Kernel(name=name, op=op, category=""))
        kernel.op = kernel.op or op
        kernel.add(e["dur"] * 1e-6, run)
    return [(b - a) * 1e-6 for a, b in spans], out


# --------------------------------------------------------------------------------------------------
# The record
# --------------------------------------------------------------------------------------------------


@dataclass
class _Roof:
    """Predicted roofline time (s), FLOPs and bytes of one module's own ops or one category."""

    time_s: float = 0.0
    flops: int = 0
    bytes: int = 0


def predictions(char: Characterization, hardware: HardwareProfile) -> tuple[dict[str, _Roof], dict[str, _Roof]]:
    """Roofline time, FLOPs and bytes of every op of ``char`` on ``hardware`` (the profile the run
    measured on, which may differ from the one characterization used), summed per module (own ops)
    and per category. ``roofline_time_s`` = max(FLOPs / peak, bytes / bandwidth) (Williams et al. 2009)."""
    from turnkey_like.characterize.roofline import roofline_time_s

    by_module: dict[str, _Roof] = defaultdict(_Roof)
    by_category: dict[str, _Roof] = defaultdict(_Roof)
    for r in char.rows:
        t = roofline_time_s(r.flops, r.bytes_read + r.bytes_written, hardware, r.dtype)
        for roof in (by_module[r.module_path], by_category[r.category]):
            roof.time_s += t
            roof.flops += r.flops
            roof.bytes += r.bytes_read + r.bytes_written
    return by_module, by_category


def _row(name: str, measured_s: float, wall_s: float, roof: _Roof | None, *, class_name: str = "",
         kernels: float = 0.0, inclusive_s: float | None = None, roof_inclusive: _Roof | None = None,
         runs_s: Sequence[float] = (), inclusive_runs_s: Sequence[float] = ()) -> LayerTime:
    """One row; ``runs_s`` / ``inclusive_runs_s``: its own / inclusive time in each profiled run (s),
    for its spread (:func:`turnkey_like.stats.relative_iqr`)."""
    from turnkey_like.stats import relative_iqr

    spread = relative_iqr(runs_s) if measured_s > 0 else None
    inclusive_spread = relative_iqr(inclusive_runs_s) if inclusive_s else None
    predicted = roof.time_s if roof is not None else None
    efficiency = predicted / measured_s if predicted and measured_s > 0 else None  # no work counted: none
    flops = roof.flops if roof is not None else 0
    nbytes = roof.bytes if roof is not None else 0
    return LayerTime(
        name=name,
        class_name=class_name,
        measured_ms=measured_s * 1e3,
        share=measured_s / wall_s if wall_s > 0 else 0.0,
        inclusive_ms=inclusive_s * 1e3 if inclusive_s is not None else None,
        predicted_ms=predicted * 1e3 if predicted is not None else None,
        predicted_inclusive_ms=roof_inclusive.time_s * 1e3 if roof_inclusive is not None else None,
        efficiency=efficiency,
        flops=flops,
        bytes=nbytes,
        attained_flops_s=flops / measured_s if measured_s > 0 and roof is not None else None,
        attained_bytes_s=nbytes / measured_s if measured_s > 0 and roof is not None else None,
        faster_than_roof=efficiency is not None and efficiency > 1.0,
        kernels=round(kernels, 3),
        spread=spread,
        inclusive_spread=inclusive_spread,
        noisy=spread is not None and spread > NOISY_SPREAD,
        inclusive_noisy=inclusive_spread is not None and inclusive_spread > NOISY_SPREAD,
    )


def _kernel_weights(kernel: Kernel, rows_by_module: dict[str, list[OpRow]], row_time: dict[int, float],
                    one_op: bool) -> list[tuple[str, int | None, float]]:
    """Where one kernel's time goes: ``(module path, op row index or None, weight)``, weights summing
    to 1 (the rule of the module doc, "Attribution to ops").

    Each module the kernel covers (with the kernel's share ``s`` of that module's nodes) offers its
    own op rows: all of them for a kernel that may be fused (ONNX Runtime: FusedConv covering a
    folded BatchNorm offers that module's ``norm`` row); for a kernel that is one op (``one_op``:
    torch's top-level ATen ops), the rows of its category when the module has any (an
    ``aten::conv2d`` in a module that also adds goes to its convolutions). A row weighs ``s`` × its
    roofline time; with no roofline time anywhere, ``s`` ÷ the module's rows offered. A module with
    no op rows (only children) keeps its part itself (row ``None``). Layout kernels carry shares of 0
    (they take time, not nodes): then every module counts as ``s = 1``.
    """
    modules = kernel.modules
    if all(share <= 0 for _, share in modules):
        modules = [(m, 1.0) for m, _ in modules]
    offers: list[tuple[str, list[OpRow], float]] = []
    for path, share in modules:
        rows = rows_by_module.get(path, [])
        same = [r for r in rows if r.category == kernel.category] if one_op else []
        offers.append((path, same or rows, share))
    weighted = [(path, r.index, share * row_time.get(r.index, 0.0)) for path, rows, share in offers for r in rows]
    if sum(w for *_, w in weighted) <= 0:  # no roofline time: by row count, each module by its share
        weighted = [(path, r.index, share / len(rows)) for path, rows, share in offers for r in rows]
    weighted += [(path, None, share) for path, rows, share in offers if not rows]
    total = sum(w for *_, w in weighted)
    if total <= 0:
        return [(path, None, 1.0 / len(modules)) for path, _ in modules]
    return [(path, index, w / total) for path, index, w in weighted if w > 0]


def _inclusive(paths: Iterable[str], own: dict) -> dict:
    """Each path's own value plus every descendant's (``a`` holds ``a.b``; ``""`` holds everything);
    values are floats or per-run numpy arrays (then a path with nothing below it sums to 0)."""
    out = {}
    items = list(own.items())
    for p in paths:
        prefix = p + "."
        out[p] = sum(v for q, v in items if p == "" or q == p or q.startswith(prefix))
    return out


def _inclusive_roofs(paths: list[str], module_roof: dict[str, _Roof]) -> dict[str, _Roof]:
    """Each path's roof (time, FLOPs, bytes) with everything below it (:func:`_inclusive`)."""
    parts = {name: _inclusive(paths, {q: getattr(r, name) for q, r in module_roof.items()})
             for name in ("time_s", "flops", "bytes")}
    return {p: _Roof(parts["time_s"][p], parts["flops"][p], parts["bytes"][p]) for p in paths}


@dataclass
class _Ledger:
    """Per key (a module path, a category): time per iteration (s), kernel events per iteration, and
    the time in each profiled run (s, a numpy array: the spread)."""

    time: dict = field(default_factory=lambda: defaultdict(float))
    kernels: dict = field(default_factory=lambda: defaultdict(float))
    per_run: dict = field(default_factory=dict)

    def add(self, key: str, seconds: float, events: float, per_run) -> None:
        self.time[key] += seconds
        self.kernels[key] += events
        self.per_run[key] = self.per_run[key] + per_run if key in self.per_run else per_run.copy()


def _attribute(raw: RawProfile, rows: list[OpRow], row_time: dict[int, float]):
    """Every kernel of ``raw`` put where it ran (:func:`_kernel_weights`): returns the module ledger,
    the category ledger (the ops' categories; a kernel without ops keeps its own), the unmapped
    kernels' ledger (key :data:`UNMAPPED`) and each op row's time per profiled run (s, rows × runs)."""
    import numpy as np

    n = max(raw.runs, 1)
    one_op = raw.mapping == "forward hooks"  # torch eager: each kernel is one top-level ATen op
    rows_by_module: dict[str, list[OpRow]] = defaultdict(list)
    for r in rows:
        rows_by_module[r.module_path].append(r)
    modules, categories, unmapped = _Ledger(), _Ledger(), _Ledger()
    op_runs = np.zeros((len(rows), n))
    for k in raw.kernels:
        t = k.seconds / n
        per_run = np.zeros(n)
        per_run[:min(n, len(k.per_run))] = k.per_run[:n]
        if not k.modules:
            unmapped.add(UNMAPPED, t, k.events / n, per_run)
            categories.add(k.category, t, k.events / n, per_run)
            continue
        for m, index, w in _kernel_weights(k, rows_by_module, row_time, one_op):
            modules.add(m, t * w, w * k.events / n, per_run * w)
            categories.add(rows[index].category if index is not None else k.category, t * w, w * k.events / n,
                           per_run * w)
            if index is not None:
                op_runs[index] += per_run * w
    return modules, categories, unmapped, op_runs


def per_layer_result(raw: RawProfile, char: Characterization | None, hardware: HardwareProfile | None,
                     latency_mean_ms: float | None) -> PerLayerResult:
    """The :class:`PerLayerResult` of a profile, per iteration, beside the roofline on ``hardware``.

    Args:
        raw: what the profiler measured.
        char: the invocation's characterization (module paths, classes and op costs), or ``None``
            (``.onnx`` inputs: measured times only).
        hardware: the profile the run measured on (see :func:`turnkey_like.characterize.hardware.measured_on`),
            or ``None`` (no prediction).
        latency_mean_ms: the timed runs' mean latency (for ``overhead`` and the overall ``efficiency``).
    """
    import numpy as np

    from turnkey_like.characterize.roofline import roofline_time_s
    from turnkey_like.stats import relative_iqr, spread

    n = max(raw.runs, 1)
    wall = statistics.fmean(raw.wall_s) if raw.wall_s else 0.0
    module_roof: dict[str, _Roof] = {}
    category_roof: dict[str, _Roof] = {}
    if char is not None and hardware is not None:
        module_roof, category_roof = predictions(char, hardware)
    elif char is not None:  # costs without a time
        module_roof, category_roof = predictions(char, char.hardware)
        for roof in (*module_roof.values(), *category_roof.values()):
            roof.time_s = 0.0

    rows = char.rows if char is not None else []
    row_time = {r.index: (roofline_time_s(r.flops, r.bytes_read + r.bytes_written, hardware, r.dtype)
                          if hardware is not None else r.roofline_time_s)  # no time: the record's profile weighs
                for r in rows}
    mods, cats, lost, op_runs = _attribute(raw, rows, row_time)
    own, unmapped = mods.time, lost.time[UNMAPPED]
    attributed = sum(own.values())
    unattributed = wall - attributed - unmapped
    walls = np.zeros(n)
    walls[:len(raw.wall_s)] = raw.wall_s[:n]
    unmapped_runs = lost.per_run.get(UNMAPPED, np.zeros(n))
    unattributed_runs = walls - sum(mods.per_run.values(), np.zeros(n)) - unmapped_runs

    classes = {m.path: m.class_name for m in char.modules} if char is not None else {}
    order = [m.path for m in char.modules] if char is not None else []
    order += sorted(set(own) - set(order))
    inclusive = _inclusive(order, own)
    inclusive_runs = _inclusive(order, mods.per_run)
    roof_incl = _inclusive_roofs(order, module_roof)
    has_roof = hardware is not None
    modules = []
    for p in order:
        roof = module_roof.get(p)
        if own.get(p, 0.0) <= 0 and inclusive[p] <= 0 and (roof is None or roof.time_s <= 0):
            continue
        modules.append(_row(p, own.get(p, 0.0), wall, (roof or _Roof()) if char is not None else None,
                            class_name=classes.get(p, ""), kernels=mods.kernels.get(p, 0.0),
                            inclusive_s=inclusive[p], roof_inclusive=roof_incl[p] if char is not None else None,
                            runs_s=mods.per_run.get(p, ()), inclusive_runs_s=inclusive_runs[p]))
    if not has_roof:
        modules = [_no_prediction(r) for r in modules]
    modules.append(_row(UNMAPPED, unmapped, wall, None, kernels=lost.kernels[UNMAPPED], runs_s=unmapped_runs))
    modules.append(_row(UNATTRIBUTED, unattributed, wall, None, runs_s=unattributed_runs))

    categories = [_row(c, cats.time.get(c, 0.0), wall, category_roof.get(c) if char is not None else None,
                       kernels=cats.kernels.get(c, 0.0), runs_s=cats.per_run.get(c, ()))
                  for c in sorted(set(cats.time) | set(category_roof), key=lambda c: (-cats.time.get(c, 0.0), c))]
    if not has_roof:
        categories = [_no_prediction(r) for r in categories]
    predicted = sum(r.time_s for r in module_roof.values()) if has_roof and char is not None else None
    mean_s = latency_mean_ms * 1e-3 if latency_mean_ms else None
    op_spread = [relative_iqr(list(x)) if x.sum() > 0 else None for x in op_runs]
    result = PerLayerResult(
        method=raw.method,
        mapping=raw.mapping,
        mapping_note=raw.mapping_note,
        iterations=raw.runs,
        wall_ms=wall * 1e3,
        attributed_ms=attributed * 1e3,
        unmapped_ms=unmapped * 1e3,
        unattributed_ms=unattributed * 1e3,
        unattributed_share=unattributed / wall if wall > 0 else 0.0,
        overhead=wall / mean_s if mean_s else None,
        hardware=hardware,
        predicted_ms=predicted * 1e3 if predicted is not None else None,
        latency_mean_ms=latency_mean_ms or None,
        modules=modules,
        categories=categories,
        faster_than_roof=[r.name for r in (*modules, *categories) if r.faster_than_roof],
        wall_spread=spread([w * 1e3 for w in raw.wall_s]),
        noisy=[r.name for r in (*modules, *categories) if r.noisy and r.efficiency is not None],
        op_ms=[float(x) for x in op_runs.sum(axis=1) / n * 1e3],
        op_spread=op_spread,
        noisy_ops=[i for i, x in enumerate(op_spread) if x is not None and x > NOISY_SPREAD],
    )
    result.efficiency = result.model_efficiency()  # the one definition, stored for JSON and CSV readers
    return result


def _no_prediction(row: LayerTime) -> LayerTime:
    """A row with its costs but no predicted time, efficiency or flag (no profile for the device)."""
    import msgspec

    return msgspec.structs.replace(row, predicted_ms=None, predicted_inclusive_ms=None, efficiency=None,
                                   faster_than_roof=False)
