"""Assemble the :class:`~turnkey_like.records.Characterization` record of one model call.

:func:`characterize_call` runs the dispatch-level counter (``counter.count_model``) on one model call,
traces the model for structure (``turnkey_like.tracing``), then computes once, into the record:
per-op arithmetic intensity / bound / roofline time on a hardware profile, the per-module roll-up,
totals, the bottleneck breakdown, and fusion groups. Renderers only format this record.

1 MAC = 2 FLOPs. Bytes follow the real dtype of every tensor.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from turnkey_like.calls import map_tensors, tensor_leaves
from turnkey_like.characterize.fusion import find_fusion_groups
from turnkey_like.characterize.hardware import get_profile
from turnkey_like.characterize.ops import MAC_CATEGORIES
from turnkey_like.characterize.roofline import BOUNDS, annotate
from turnkey_like.errors import CharacterizationError, TkError, one_line
from turnkey_like.records import (
    Breakdown,
    BreakdownEntry,
    Characterization,
    HardwareProfile,
    InputDesc,
    ModuleRow,
    OpRow,
    Totals,
    TraceSummary,
)

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


def _unique_params(model) -> list[tuple[str, Any]]:
    """Unique parameters with the name of the first module registering them (shared counted once)."""
    if model is None:
        return []
    return list(model.named_parameters(remove_duplicate=True))


def build_modules(rows: list[OpRow], module_classes: dict[str, str], module_order: list[str], model,
                  profile: HardwareProfile, dtype: str) -> list[ModuleRow]:
    """Return the hierarchical per-module roll-up in pre-order (root first).

    Every module path seen (ran, or owns an op) gets a row; missing ancestors (containers such as
    ``ModuleList`` that never run themselves) are added so the tree is complete. Inclusive values
    are the sum of the children's plus the module's own direct ops/parameters. Parameters of modules
    that never ran are attributed to their nearest ancestor that has a row. ``rows`` must carry
    their roofline times already.
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
    for r in rows:
        add(r.module_path)

    nodes = {
        p: ModuleRow(
            path=p,
            class_name=module_classes.get(p) or _module_class(model, p),
            depth=0 if p == "" else p.count(".") + 1,
            parent=_parent_path(p),
        )
        for p in order
    }
    for r in rows:
        n = nodes[r.module_path]
        macs = r.macs or 0
        n.self_macs += macs
        n.self_flops += r.flops
        n.self_bytes += r.bytes_read + r.bytes_written
        n.self_ops += 1
        n.macs += macs
        n.flops += r.flops
        n.bytes_read += r.bytes_read
        n.bytes_written += r.bytes_written
        n.ops += 1
        n.roofline_time_s += r.roofline_time_s
    for name, p in _unique_params(model):
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        while owner not in nodes:
            owner = _parent_path(owner) or ""
        n = nodes[owner]
        n.self_params += p.numel()
        n.params += p.numel()
        n.param_bytes += p.numel() * p.element_size()

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


def _symbolic_dims(rows: list[OpRow]) -> list[str]:
    """Names of the symbolic sizes in the rows' shapes, in first-seen order."""
    names: list[str] = []
    for r in rows:
        for shape in (*r.input_shapes, *r.output_shapes):
            for d in shape:
                if type(d) is not int and d not in names:
                    names.append(d)
    return names


def _main_dtype(model, args, kwargs) -> str:
    import torch

    by_dtype: dict[torch.dtype, int] = {}
    for p in model.parameters():
        by_dtype[p.dtype] = by_dtype.get(p.dtype, 0) + p.numel() * p.element_size()
    if by_dtype:
        dt = max(by_dtype.items(), key=lambda kv: kv[1])[0]
    else:
        leaves = [t for t in tensor_leaves((args, kwargs)) if t.is_floating_point()]
        dt = leaves[0].dtype if leaves else torch.float32
    return str(dt).replace("torch.", "")


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


def _too_big(model) -> bool:
    """True when the model's parameters take over half of the available memory (heuristic)."""
    import psutil

    nbytes = sum(p.numel() * p.element_size() for p in model.parameters() if not p.is_meta)
    return nbytes > 0.5 * psutil.virtual_memory().available


def characterize_call(
    model,
    args: tuple = (),
    kwargs: dict | None = None,
    *,
    hardware: str | HardwareProfile | None = None,
    no_weights: bool = False,
    trace: bool = True,
    warmup: bool = True,
    cache_dir: str | Path | None = None,
) -> Characterization:
    """Characterize one call ``model(*args, **kwargs)``: count, roofline, roll-up, fusion, trace.

    Args:
        model: a ``torch.nn.Module`` (real, or built under ``torch.device("meta")``).
        args, kwargs: the call's inputs (tensors at their real shapes).
        hardware: profile name (``a100``, ``h100``, ``epyc9654``, ``xeon8480``), a
            :class:`~turnkey_like.records.HardwareProfile`, or ``None``/``"local"`` for this machine
            (measured once, cached under ``cache_dir``'s cache root).
        no_weights: count on ``meta`` tensors without touching the weights (also chosen automatically
            when the model has meta parameters or its parameters exceed half the free memory).
        trace: also trace the model for structure (``turnkey_like.tracing``); failure is recorded,
            never raised. ``False`` records the trace as ``not traced``.
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
    import torch

    from turnkey_like.characterize.counter import count_model
    from turnkey_like.tracing import trace_model

    kwargs = dict(kwargs or {})
    start = time.perf_counter()
    profile = get_profile(hardware, cache_dir=cache_dir)
    if _has_lazy(model):
        if no_weights:
            raise CharacterizationError(
                f"{type(model).__name__} has uninitialised lazy modules; their shapes are unknown without "
                "running it on real tensors",
                hint="run it once (or characterize without --no-weights) so the lazy modules initialise",
            )
        if warmup:
            with torch.no_grad():
                model(*args, **kwargs)
    has_meta = any(t.is_meta for t in (*model.parameters(), *model.buffers())) or any(
        t.is_meta for t in tensor_leaves((args, kwargs)))
    use_meta = no_weights or has_meta or _too_big(model)
    dtype = _main_dtype(model, args, kwargs)
    inputs = _describe_inputs(args, kwargs)

    if use_meta:
        ctx = meta_weights(model)
        args, kwargs = _to_meta(tuple(args)), _to_meta(kwargs)
    else:
        ctx = contextlib.nullcontext(model)
    with ctx:
        t0 = time.perf_counter()
        try:
            counted = count_model(model, tuple(args), kwargs)
        except TkError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's model failed; say which and why
            where = "on meta tensors " if use_meta else ""
            raise CharacterizationError(
                f"counting {type(model).__name__} {where}failed: {one_line(exc)}",
                hint="run without --no-weights (real tensors)" if use_meta else
                "check that the model runs with these inputs in plain PyTorch",
            ) from exc
        count_s = time.perf_counter() - t0
        traced = trace_model(model, args, kwargs, warmup=False) if trace else None

    rows = counted.rows
    for r in rows:
        r.arithmetic_intensity, r.bound, r.roofline_time_s = annotate(
            r.flops, r.bytes_read + r.bytes_written, profile, r.dtype)
    modules = build_modules(rows, counted.module_classes, counted.module_order, model, profile, dtype)
    root = modules[0]
    flops = sum(r.flops for r in rows)
    bytes_read = sum(r.bytes_read for r in rows)
    bytes_written = sum(r.bytes_written for r in rows)
    overall = annotate(flops, bytes_read + bytes_written, profile, dtype)
    totals = Totals(
        params=root.params,
        param_bytes=root.param_bytes,
        macs=sum(r.macs or 0 for r in rows),
        conv_matmul_macs=sum(r.macs or 0 for r in rows if r.category in MAC_CATEGORIES),
        flops=flops,
        bytes_read=bytes_read,
        bytes_written=bytes_written,
        weight_bytes=sum(r.weight_bytes for r in rows),
        arithmetic_intensity=overall.arithmetic_intensity,
        bound=overall.bound,
        roofline_time_s=sum(r.roofline_time_s for r in rows),
        ops=len(rows),
        uncounted_ops=sum(counted.uncounted.values()),
    )
    top = sorted(range(len(rows)), key=lambda i: -rows[i].roofline_time_s)[:TOP_OPS_KEPT]
    first_param = next(iter(model.parameters()), None)
    device = "meta" if use_meta else (str(first_param.device) if first_param is not None else "cpu")
    return Characterization(
        model_class=type(model).__name__,
        inputs=inputs,
        dtype=dtype,
        device=device,
        no_weights=use_meta,
        trace=traced.summary() if traced is not None else TraceSummary(),
        hardware=profile,
        ridge_point=profile.ridge_point(dtype),
        rows=rows,
        modules=modules,
        totals=totals,
        uncounted=dict(sorted(counted.uncounted.items(), key=lambda kv: -kv[1])),
        breakdown=build_breakdown(rows),
        top_ops=top,
        fusion=find_fusion_groups(rows),
        symbolic_dims=_symbolic_dims(rows),
        duration_s=time.perf_counter() - start,
        count_duration_s=count_s,
        trace_duration_s=traced.duration_s if traced is not None else 0.0,
    )


def _has_lazy(model) -> bool:
    from torch.nn.modules.lazy import LazyModuleMixin

    return any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules())


def characterize(model, *args, hardware=None, no_weights: bool = False, trace: bool = True,
                 **kwargs) -> Characterization:
    """Characterize ``model(*args, **kwargs)``; see :func:`characterize_call` for what is returned.

    Example: ``characterize(resnet50, torch.randn(1, 3, 224, 224), hardware="a100")``.
    """
    return characterize_call(model, args, kwargs, hardware=hardware, no_weights=no_weights, trace=trace)


__all__ = ["characterize", "characterize_call", "build_modules", "build_breakdown", "meta_weights",
           "Characterization", "ModuleRow", "Totals"]
