"""Assemble the :class:`~turnkey_like.records.Characterization` record of one model call.

:func:`characterize_call` does it in three steps: :func:`prepare_call` resolves the hardware profile,
initialises lazy modules and decides whether to count on ``meta``; :func:`count_call` runs the
dispatch-level counter (``counter.count_model``) on the call (the one pass: its op rows with their
``producers`` are the dataflow graph) and traces the model with FX/export only when asked
(``trace=True``, ``turnkey_like.tracing``); :func:`assemble_call` then computes once, into the
record: per-op arithmetic intensity / bound / roofline time on a hardware profile, the per-module
roll-up, totals (:func:`sum_totals`), the bottleneck breakdown, fusion groups (one per op at least)
and repeated blocks. Renderers only format this record.

1 MAC = 2 FLOPs. Bytes follow the real dtype of every tensor.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from turnkey_like.calls import map_tensors, tensor_leaves
from turnkey_like.characterize.fusion import find_fusion_groups
from turnkey_like.characterize.hardware import get_profile
from turnkey_like.characterize.ops import MAC_CATEGORIES, dtype_name
from turnkey_like.characterize.roofline import BOUNDS, annotate, annotate_rows
from turnkey_like.characterize.stack_room import call_with_stack_room
from turnkey_like.errors import CharacterizationError, TkError, one_line
from turnkey_like.records import (
    Breakdown,
    BreakdownEntry,
    Characterization,
    HardwareProfile,
    InputDesc,
    ModuleRow,
    OpRow,
    RepeatedBlocks,
    Totals,
    TraceSummary,
)
from turnkey_like.weights import ModelTensors, model_parameters, model_tensors  # noqa: F401 - model_parameters re-exported

if TYPE_CHECKING:
    from turnkey_like.characterize.counter import CountResult
    from turnkey_like.tracing import TraceResult

TOP_OPS_KEPT = 50


def _parent_path(path: str) -> str | None:
    if path == "":
        return None
    return path.rsplit(".", 1)[0] if "." in path else ""


def _module_class(model, path: str) -> str:
    if model is None:
        return ""
    try:
        return type(model.get_submodule(path)).__name__ if path else type(model).__name__
    except (AttributeError, TypeError):
        return ""


def _attribute_params(nodes: dict[str, ModuleRow], params: list[tuple[str, Any]]) -> None:
    """Add each parameter to its module's own row (a module that never ran: its nearest ancestor with a row)."""
    for name, p in params:
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        while owner not in nodes:
            owner = _parent_path(owner) or ""
        n = nodes[owner]
        numel = p.numel()
        n.self_params += numel
        n.params += numel
        n.param_bytes += numel * p.element_size()


def build_modules(rows: list[OpRow], module_classes: dict[str, str], module_order: list[str], model,
                  profile: HardwareProfile, dtype: str, params: list[tuple[str, Any]] | None = None,
                  ) -> list[ModuleRow]:
    """Return the hierarchical per-module roll-up in pre-order (root first).

    Every module path seen (ran, or owns an op) gets a row; missing ancestors (containers such as
    ``ModuleList`` that never run themselves) are added so the tree is complete. Inclusive values
    are the sum of the children's plus the module's own direct ops/parameters. Parameters of modules
    that never ran are attributed to their nearest ancestor that has a row. ``rows`` must carry
    their roofline times already. ``params``: the model's unique ``(name, parameter)`` pairs (shared
    ones once, under the first name), as ``model.named_parameters()`` gives them; read from
    ``model`` when ``None``.
    """
    order: list[str] = []
    seen: set[str] = set()

    def add(path: str):
        if path in seen:
            return
        parent = _parent_path(path)
        if parent is not None:
            add(parent)
        seen.add(path)
        order.append(path)

    add("")
    for p in module_order:
        add(p)
    # per module: [macs, flops, bytes_read, bytes_written, ops, roofline time] of its direct ops
    direct: dict[str, list] = {}
    for r in rows:
        acc = direct.get(r.module_path)
        if acc is None:
            add(r.module_path)
            acc = direct[r.module_path] = [0, 0, 0, 0, 0, 0.0]
        acc[0] += r.macs or 0
        acc[1] += r.flops
        acc[2] += r.bytes_read
        acc[3] += r.bytes_written
        acc[4] += 1
        acc[5] += r.roofline_time_s

    nodes: dict[str, ModuleRow] = {}
    for p in order:
        n = ModuleRow(
            path=p,
            class_name=module_classes.get(p) or _module_class(model, p),
            depth=0 if p == "" else p.count(".") + 1,
            parent=_parent_path(p),
        )
        acc = direct.get(p)
        if acc is not None:
            macs, flops, read, written, ops, time_s = acc
            n.self_macs = n.macs = macs
            n.self_flops = n.flops = flops
            n.self_bytes = read + written
            n.bytes_read, n.bytes_written = read, written
            n.self_ops = n.ops = ops
            n.roofline_time_s = time_s
        nodes[p] = n
    if params is None:
        params = list(model.named_parameters()) if model is not None else []
    _attribute_params(nodes, params)
    children: dict[str, list[str]] = {p: [] for p in order}
    for p in order:
        if p != "":
            children[nodes[p].parent].append(p)
    # Roll up: deepest first, so every child is complete before it is added to its parent.
    for p in sorted(order, key=lambda q: -nodes[q].depth):
        if p == "":
            continue
        n, par = nodes[p], nodes[nodes[p].parent]
        par.macs += n.macs
        par.flops += n.flops
        par.bytes_read += n.bytes_read
        par.bytes_written += n.bytes_written
        par.params += n.params
        par.param_bytes += n.param_bytes
        par.ops += n.ops
        par.roofline_time_s += n.roofline_time_s
    for n in nodes.values():
        n.arithmetic_intensity, n.bound, _ = annotate(n.flops, n.bytes, profile, dtype)

    out: list[ModuleRow] = []

    def walk(p: str):
        out.append(nodes[p])
        for c in children[p]:
            walk(c)

    walk("")
    return out


def build_breakdown(rows: list[OpRow]) -> Breakdown:
    """Return the share of roofline time by op category and by bound, slowest first."""
    total = sum(r.roofline_time_s for r in rows) or 0.0

    def group(key: str) -> dict[str, BreakdownEntry]:
        acc: dict[str, BreakdownEntry] = {}
        for r in rows:
            k = getattr(r, key)
            e = acc.get(k)
            if e is None:
                e = acc[k] = BreakdownEntry()
            e.time_s += r.roofline_time_s
            e.flops += r.flops
            e.bytes += r.bytes_read + r.bytes_written
            e.ops += 1
        for e in acc.values():
            e.share = e.time_s / total if total else 0.0
        return dict(sorted(acc.items(), key=lambda kv: -kv[1].time_s))

    by_bound = group("bound")
    return Breakdown(by_category=group("category"),
                     by_bound={b: by_bound[b] for b in BOUNDS if b in by_bound})


def _feeds(before: list[OpRow], after: list[OpRow]) -> bool:
    """True when some row of ``after`` reads an output of a row of ``before`` (``OpRow.producers``)."""
    produced = {r.index for r in before}
    return any(p in produced for r in after for p in r.producers)


def _op_cost(row: OpRow, cut: int) -> tuple:
    """What makes one op of a block the same as its twin in another block: its path inside the block
    (``row.module_path[cut:]``), op, input and output shapes, dtype, MACs, FLOPs, bytes read and
    written, and weight bytes (the parameters it reads)."""
    return (row.module_path[cut:], row.op, tuple(tuple(s) for s in row.input_shapes),
            tuple(tuple(s) for s in row.output_shapes), row.dtype, row.macs, row.flops, row.bytes_read,
            row.bytes_written, row.weight_bytes)


def find_repeats(rows: list[OpRow], modules: list[ModuleRow]) -> list[RepeatedBlocks]:
    """Return the runs of consecutive sibling modules that do identical work, outermost first.

    Siblings (children of one module, in the roll-up's order) are identical blocks only when they
    are identical in cost: the same class and the same parameters (count and bytes), running the
    same ops in the same order, each op at the same module path relative to its block, with the
    same input and output shapes, dtype, MACs, FLOPs, bytes read and written and weight bytes
    (:func:`_op_cost`). Same class and output shapes alone are not enough: MobileNetV3's expand and
    depthwise ``Conv2dNormActivation`` blocks, YOLOv8's detection-head convolutions and the FPN's
    ``inner_blocks``/``layer_blocks`` lists match on those but differ several-fold in MACs.
    Besides, each block runs after the one before it has ended (no interleaved ops) and reads an
    output of it (a chain, like BERT's layers; parallel branches such as query/key/value
    projections are not a run); a run needs two blocks or more. Modules that ran no op are never
    part of a run. Runs are listed by depth (outermost first), then in module order; runs nested
    inside a block of an outer run are listed too (each block has its own).
    Cost: one pass over the rows per ancestor level of the candidate modules (siblings sharing a
    class), so a few milliseconds for thousands of rows.
    """
    children: dict[str, list[ModuleRow]] = {}
    for m in modules:
        if m.parent is not None:
            children.setdefault(m.parent, []).append(m)
    candidates: set[str] = set()
    for kids in children.values():
        classes: dict[str, int] = {}
        for m in kids:
            classes[m.class_name] = classes.get(m.class_name, 0) + 1
        candidates.update(m.path for m in kids if classes[m.class_name] > 1 and m.ops)
    if not candidates:
        return []
    inside: dict[str, list[OpRow]] = {p: [] for p in candidates}
    for r in rows:
        path = r.module_path
        while path:
            if path in inside:
                inside[path].append(r)
            path = path.rpartition(".")[0]

    def signature(m: ModuleRow) -> tuple:
        cut = len(m.path) + 1
        return (m.class_name, m.params, m.param_bytes, *(_op_cost(r, cut) for r in inside[m.path]))

    def follows(before: ModuleRow, after: ModuleRow) -> bool:
        first, last = inside[before.path], inside[after.path]
        return first[-1].index < last[0].index and _feeds(first, last)

    order = {m.path: i for i, m in enumerate(modules)}
    runs: list[tuple[int, int, RepeatedBlocks]] = []
    for kids in children.values():
        run: list[ModuleRow] = []
        run_sig: tuple = ()
        for m in [*kids, None]:
            sig = signature(m) if m is not None and m.path in candidates else None
            if run and sig and sig == run_sig and follows(run[-1], m):
                run.append(m)
                continue
            if len(run) > 1:
                runs.append((run[0].depth, order[run[0].path],
                             RepeatedBlocks(paths=[b.path for b in run], class_name=run[0].class_name,
                                            ops=len(inside[run[0].path]), macs=run[0].macs,
                                            flops=run[0].flops, bytes=run[0].bytes, params=run[0].params)))
            run, run_sig = ([m], sig) if sig else ([], ())
    runs.sort(key=lambda t: t[:2])
    return [r for _, _, r in runs]


def _symbolic_dims(rows: list[OpRow]) -> list[str]:
    """Names of the symbolic sizes in the rows' shapes, in first-seen order."""
    names: list[str] = []
    for r in rows:
        for shape in (*r.input_shapes, *r.output_shapes):
            for d in shape:
                if type(d) is not int and d not in names:
                    names.append(d)
    return names


def main_dtype(model, args, kwargs) -> str:
    """``Characterization.dtype`` of calling ``model(*args, **kwargs)``, without counting: the dtype
    holding most parameter bytes (``torch.float32`` → ``float32``), else of the first floating-point
    input, else ``float32``."""
    return _main_dtype(list(model.named_parameters()), args, kwargs)


def _main_dtype(params: list[tuple[str, Any]], args, kwargs) -> str:
    """The dtype holding most parameter bytes, else of the first floating-point input, else float32."""
    import torch

    by_dtype: dict[torch.dtype, int] = {}
    for _, p in params:
        by_dtype[p.dtype] = by_dtype.get(p.dtype, 0) + p.numel() * p.element_size()
    if by_dtype:
        dt = max(by_dtype.items(), key=lambda kv: kv[1])[0]
    else:
        leaves = [t for t in tensor_leaves((args, kwargs)) if t.is_floating_point()]
        dt = leaves[0].dtype if leaves else torch.float32
    return dtype_name(dt)


def _describe_inputs(args: tuple, kwargs: dict) -> dict[str, InputDesc]:
    """Name -> shape and dtype of every tensor and scalar input leaf (positional args as ``args[i]``,
    list elements ``[i]``, dict values ``['key']``; symbolic sizes by name)."""
    import torch

    out: dict[str, InputDesc] = {}

    def put(name, v):
        if isinstance(v, torch.Tensor):
            out[name] = InputDesc(shape=[d if type(d) is int else str(d) for d in v.shape],
                                  dtype=str(v.dtype).replace("torch.", ""))
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                put(f"{name}[{i}]", x)
        elif isinstance(v, dict):
            for k, x in v.items():
                put(f"{name}[{k!r}]", x)
        elif isinstance(v, (bool, int, float)):
            out[name] = InputDesc(shape=[], dtype=type(v).__name__)

    for i, a in enumerate(args):
        put(f"args[{i}]", a)
    for k, v in kwargs.items():
        put(k, v)
    return out


def _to_meta(obj):
    """``obj`` with every tensor moved to the ``meta`` device (shape and dtype kept, no data)."""
    return map_tensors(lambda t: t if t.is_meta else t.to("meta"), obj)


@contextlib.contextmanager
def meta_weights(model):
    """Swap every parameter and buffer of ``model`` for a ``meta`` tensor of the same shape and dtype.

    No data is read or copied (``Tensor.to("meta")`` keeps only metadata). Tied parameters stay tied
    (one meta tensor per original). Everything is restored on exit, even after an error.
    """
    import torch

    swapped: list[tuple[Any, str, str, Any]] = []
    memo: dict[int, Any] = {}
    try:
        for mod in model.modules():
            for kind in ("_parameters", "_buffers"):
                table = getattr(mod, kind)
                for name, t in list(table.items()):
                    if t is None or t.is_meta:
                        continue
                    if id(t) not in memo:
                        m = t.to("meta")
                        memo[id(t)] = torch.nn.Parameter(m, requires_grad=t.requires_grad) if kind == "_parameters" else m
                    swapped.append((mod, kind, name, t))
                    table[name] = memo[id(t)]
        yield model
    finally:
        for mod, kind, name, t in swapped:
            getattr(mod, kind)[name] = t


def _too_big(nbytes: int) -> bool:
    """True when ``nbytes`` of parameters take over half of the available memory (heuristic).

    "Available" is psutil's ``virtual_memory().available`` (Linux ``MemAvailable``). The free pages
    (``os.sysconf("SC_AVPHYS_PAGES")``, one cheap system call) are asked first: when the parameters
    fit in half of those, they fit in half of the available memory too (free memory is part of it),
    and the slower psutil call (0.13 ms here against 0.5 µs; it parses ``/proc/meminfo``) is skipped.
    """
    if nbytes <= 0:
        return False
    try:
        if nbytes <= 0.5 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"):
            return False
    except (AttributeError, ValueError, OSError):  # no such sysconf name on this OS
        pass
    import psutil

    return nbytes > 0.5 * psutil.virtual_memory().available


class Prepared(NamedTuple):
    """What :func:`prepare_call` decided about one call before anything is counted.

    Attributes:
        profile: the hardware profile of the roofline.
        weights: the model's parameters, buffers and lazy state (:class:`~turnkey_like.weights.ModelTensors`), read after the
            lazy warm-up when there was one.
        use_meta: whether counting runs on ``meta`` tensors (asked, forced by meta tensors in the model
            or inputs, or chosen because the parameters take over half of the available memory).
        dtype: the model's main dtype name (:func:`_main_dtype`).
        inputs: name -> shape and dtype of every input leaf, as given (before any move to meta).
    """

    profile: HardwareProfile
    weights: ModelTensors
    use_meta: bool
    dtype: str
    inputs: dict[str, InputDesc]


class Counted(NamedTuple):
    """What :func:`count_call` ran: the counter's result, the trace when asked, the time counting took.

    Attributes:
        result: the :class:`~turnkey_like.characterize.counter.CountResult` (op rows in execution order).
        traced: the :class:`~turnkey_like.tracing.TraceResult`, or ``None`` when not traced.
        duration_s: wall time of the counted call, seconds.
    """

    result: CountResult
    traced: TraceResult | None
    duration_s: float


def prepare_call(model, args: tuple, kwargs: dict, *, hardware=None, no_weights: bool = False,
                 warmup: bool = True, cache_dir: str | Path | None = None) -> Prepared:
    """Resolve the hardware profile, initialise lazy modules, and decide whether to count on ``meta``.

    Reads the model's tensors once (:func:`_weights`); a model with uninitialised lazy modules is
    called once under ``torch.no_grad()`` when ``warmup`` (its tensors are then read again). Counting
    runs on ``meta`` when ``no_weights``, when a parameter, buffer or input is on ``meta`` already, or
    when the parameters take over half of the available memory (:func:`_too_big`).

    Raises:
        InputError: unknown hardware profile name.
        CharacterizationError: ``no_weights`` was asked for a model whose lazy modules are not
            initialised yet (their shapes are unknown without a real call).
    """
    import torch

    profile = get_profile(hardware, cache_dir=cache_dir)
    weights = model_tensors(model)
    if weights.lazy:
        if no_weights:
            raise CharacterizationError(
                f"{type(model).__name__} has uninitialised lazy modules; their shapes are unknown without "
                "running it on real tensors",
                hint="run it once (or characterize without --no-weights) so the lazy modules initialise",
            )
        if warmup:
            with torch.no_grad():
                model(*args, **kwargs)
            weights = model_tensors(model)
    has_meta = (any(p.is_meta for _, p in weights.params) or any(b.is_meta for b in weights.buffers)
                or any(t.is_meta for t in tensor_leaves((args, kwargs))))
    use_meta = no_weights or has_meta or _too_big(
        sum(p.numel() * p.element_size() for _, p in weights.params if not p.is_meta))
    return Prepared(profile=profile, weights=weights, use_meta=use_meta,
                    dtype=_main_dtype(weights.params, args, kwargs), inputs=_describe_inputs(args, kwargs))


def count_call(model, args: tuple, kwargs: dict, prepared: Prepared, *, trace: bool = False) -> Counted:
    """Count ``model(*args, **kwargs)`` once (``counter.count_model``), on ``meta`` copies of the
    weights and inputs when ``prepared.use_meta`` (:func:`meta_weights`, restored afterwards), and trace
    it with the :func:`turnkey_like.tracing.trace_model` ladder when ``trace`` (a failed trace is
    recorded in the result, never raised).

    Raises:
        CharacterizationError: the model call failed while counting (the original exception is
            chained; the hint says whether meta tensors were used).
    """
    from turnkey_like.characterize.counter import count_model

    use_meta, weights = prepared.use_meta, prepared.weights
    if use_meta:
        ctx = meta_weights(model)
        args, kwargs = _to_meta(tuple(args)), _to_meta(kwargs)
        tensors = None  # swapped for meta copies inside the block: the counter reads them there
    else:
        ctx = contextlib.nullcontext(model)
        tensors = [p for _, p in weights.params] + weights.buffers
    traced = None
    with ctx:
        t0 = time.perf_counter()
        try:
            result = count_model(model, tuple(args), kwargs, weights=tensors)
        except TkError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's model failed; say which and why
            where = "on meta tensors " if use_meta else ""
            raise CharacterizationError(
                f"counting {type(model).__name__} {where}failed: {one_line(exc)}",
                hint="run without --no-weights (real tensors)" if use_meta else
                "check that the model runs with these inputs in plain PyTorch",
            ) from exc
        duration_s = time.perf_counter() - t0
        if trace:
            from turnkey_like.tracing import trace_model

            traced = trace_model(model, args, kwargs, warmup=False)
    return Counted(result=result, traced=traced, duration_s=duration_s)


def sum_totals(rows: list[OpRow], uncounted: dict[str, int], root: ModuleRow, profile: HardwareProfile,
               dtype: str) -> Totals:
    """Return the model's :class:`~turnkey_like.records.Totals`: the rows' sums, in one pass.

    MACs (ops without MACs count 0), conv+matmul MACs (categories in ``ops.MAC_CATEGORIES``), FLOPs
    (1 MAC = 2 FLOPs), bytes read and written, weight bytes and roofline time (s) are summed over
    ``rows`` (in row order, so float sums do not depend on the module tree); parameters and their
    bytes are the ``root`` module row's (unique tensors). The intensity and bound are those of the
    whole call's FLOPs over its bytes against ``profile``'s ridge point for ``dtype``.
    """
    flops = macs = conv_matmul_macs = bytes_read = bytes_written = weight_bytes = 0
    roofline_s = 0.0
    for r in rows:
        flops += r.flops
        bytes_read += r.bytes_read
        bytes_written += r.bytes_written
        weight_bytes += r.weight_bytes
        roofline_s += r.roofline_time_s
        if r.macs:
            macs += r.macs
            if r.category in MAC_CATEGORIES:
                conv_matmul_macs += r.macs
    overall = annotate(flops, bytes_read + bytes_written, profile, dtype)
    return Totals(
        params=root.params,
        param_bytes=root.param_bytes,
        macs=macs,
        conv_matmul_macs=conv_matmul_macs,
        flops=flops,
        bytes_read=bytes_read,
        bytes_written=bytes_written,
        weight_bytes=weight_bytes,
        arithmetic_intensity=overall.arithmetic_intensity,
        bound=overall.bound,
        roofline_time_s=roofline_s,
        ops=len(rows),
        uncounted_ops=sum(uncounted.values()),
    )


def assemble_call(model, prepared: Prepared, counted: Counted, *, start: float) -> Characterization:
    """Compute everything the record holds from one counted call and return the
    :class:`~turnkey_like.records.Characterization`.

    In place on the op rows: arithmetic intensity, bound and roofline time on ``prepared.profile``
    (:func:`~turnkey_like.characterize.roofline.annotate_rows`). Then the per-module roll-up
    (:func:`build_modules`), totals (:func:`sum_totals`), the :data:`TOP_OPS_KEPT` slowest ops by
    roofline time, the bottleneck breakdown, fusion groups and repeated blocks. ``start``: the
    ``time.perf_counter()`` reading when characterization began (``duration_s`` runs from it).
    """
    profile, weights, dtype, use_meta = prepared.profile, prepared.weights, prepared.dtype, prepared.use_meta
    result, traced = counted.result, counted.traced
    rows = result.rows
    annotate_rows(rows, profile)
    modules = build_modules(rows, result.module_classes, result.module_order, model, profile, dtype,
                            params=weights.params)
    top = sorted(range(len(rows)), key=lambda i: -rows[i].roofline_time_s)[:TOP_OPS_KEPT]
    first_param = weights.params[0][1] if weights.params else None
    device = "meta" if use_meta else (str(first_param.device) if first_param is not None else "cpu")
    return Characterization(
        model_class=type(model).__name__,
        inputs=prepared.inputs,
        dtype=dtype,
        device=device,
        no_weights=use_meta,
        trace=traced.summary() if traced is not None else TraceSummary(),
        hardware=profile,
        ridge_point=profile.ridge_point(dtype),
        rows=rows,
        modules=modules,
        totals=sum_totals(rows, result.uncounted, modules[0], profile, dtype),
        uncounted=dict(sorted(result.uncounted.items(), key=lambda kv: -kv[1])),
        breakdown=build_breakdown(rows),
        top_ops=top,
        fusion=find_fusion_groups(rows, profile),
        repeats=find_repeats(rows, modules),
        symbolic_dims=[] if result.plain_shapes else _symbolic_dims(rows),
        duration_s=time.perf_counter() - start,
        count_duration_s=counted.duration_s,
        trace_duration_s=traced.duration_s if traced is not None else 0.0,
    )


def characterize_call(
    model,
    args: tuple = (),
    kwargs: dict | None = None,
    *,
    hardware: str | HardwareProfile | None = None,
    no_weights: bool = False,
    trace: bool = False,
    warmup: bool = True,
    cache_dir: str | Path | None = None,
) -> Characterization:
    """Characterize one call ``model(*args, **kwargs)``: count, roofline, roll-up, fusion (and trace).

    One counted call gives every number and the dataflow graph (each op row's ``producers``); the
    FX/export trace is extra work that only the traceability report needs, so it runs only when
    ``trace=True`` (``tk profile --trace``); the ONNX build traces on its own, once, in its child.
    Three steps: :func:`prepare_call` (profile, lazy warm-up, meta or real), :func:`count_call`
    (the counted call, and the trace), :func:`assemble_call` (everything computed into the record);
    the first and the last run from a fresh Python stack chunk, as counting does
    (:func:`~turnkey_like.characterize.stack_room.call_with_stack_room`: their per-module and per-op
    calls cross no chunk boundary, whatever the caller's depth).

    Args:
        model: a ``torch.nn.Module`` (real, or built under ``torch.device("meta")``).
        args, kwargs: the call's inputs (tensors at their real shapes).
        hardware: profile name (``a100``, ``h100``, ``epyc9654``, ``xeon8480``), a
            :class:`~turnkey_like.records.HardwareProfile`, or ``None``/``"local"`` for this machine
            (measured once, cached under ``cache_dir``'s cache root).
        no_weights: count on ``meta`` tensors without touching the weights (also chosen automatically
            when the model has meta parameters or its parameters exceed half the free memory).
        trace: also trace the model with the :func:`turnkey_like.tracing.trace_model` ladder (FX,
            then non-strict and strict ``torch.export``); its method and attempts go to
            ``Characterization.trace``, a failure is recorded, never raised. ``False`` (default)
            records the trace as ``not traced`` with ``trace_duration_s == 0``.
        warmup: run the model once before counting when it has uninitialised lazy modules
            (``nn.LazyLinear``...); otherwise the counted call is the only call.
        cache_dir: the cache root for the ``local`` profile (``turnkey_like.cache.resolve_root``).

    Returns:
        A :class:`~turnkey_like.records.Characterization` with typed op rows.

    Raises:
        InputError: unknown hardware profile name.
        CharacterizationError: the model call itself failed while counting, or ``no_weights`` was
            asked for a model whose lazy modules are not initialised yet.
    """
    kwargs = dict(kwargs or {})
    start = time.perf_counter()
    prepared = call_with_stack_room(prepare_call, (model, args, kwargs), dict(
        hardware=hardware, no_weights=no_weights, warmup=warmup, cache_dir=cache_dir))
    counted = count_call(model, args, kwargs, prepared, trace=trace)
    return call_with_stack_room(assemble_call, (model, prepared, counted), {"start": start})


def characterize(model, *args, hardware=None, no_weights: bool = False, trace: bool = False,
                 **kwargs) -> Characterization:
    """Characterize ``model(*args, **kwargs)``; see :func:`characterize_call` for what is returned.

    ``trace`` defaults to ``False``, as in ``tk profile``: a caller from Python mostly wants the
    counts, at about the cost of one forward pass, and the dataflow graph is in the op rows
    (``OpRow.producers``) either way. The FX/export trace can cost many times the forward (BERT-base
    4x, YOLOv8n 7x, a 70B Llama config on meta 26 s of 28 s); ``trace=True`` adds it when the
    traceability of the model is the question.

    Example: ``characterize(resnet50, torch.randn(1, 3, 224, 224), hardware="a100")``.
    """
    return characterize_call(model, args, kwargs, hardware=hardware, no_weights=no_weights, trace=trace)


__all__ = ["characterize", "characterize_call", "prepare_call", "count_call", "assemble_call", "sum_totals",
           "Prepared", "Counted", "build_modules", "build_breakdown", "find_repeats", "meta_weights",
           "model_parameters",
           "Characterization", "ModuleRow", "Totals"]
