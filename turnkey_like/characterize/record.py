"""The Characterization record and how it is assembled from counting, tracing, roofline and fusion.

:func:`characterize_call` runs the dispatch-level counter (``counter.count_model``) on one model call,
traces the model for structure (``turnkey_like.tracing``), then computes once, into the record:
per-op arithmetic intensity / bound / roofline time on a hardware profile, the per-module roll-up,
totals, the bottleneck breakdown, and fusion groups. Renderers only format this record.

1 MAC = 2 FLOPs. Bytes follow the real dtype of every tensor.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from turnkey_like.characterize.fusion import FusionResult, find_fusion_groups
from turnkey_like.characterize.hardware import HardwareProfile, get_profile
from turnkey_like.characterize.roofline import BOUNDS, annotate
from turnkey_like.errors import CharacterizationError, TkError
from turnkey_like.records import Record, to_dict

CONV_MATMUL = frozenset({"conv", "matmul", "attention"})
TOP_OPS_KEPT = 50


@dataclass
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



@dataclass
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



@dataclass
class Characterization:
    """Everything characterize found for one model call, computed once.

    Attributes:
        model_class: class name of the model.
        inputs: input name -> ``{"shape": [...], "dtype": "float32"}`` (positional args as ``args[i]``).
        dtype: the model's main dtype (most parameter bytes; else the first floating input's).
        device: where counting ran: ``cpu``/``cuda:0`` (real tensors) or ``meta`` (no weights touched).
        no_weights: True when counting ran on meta tensors (``no_weights=True`` or a model too big).
        trace: ``TraceResult.to_dict()`` (method, node count, attempts).
        hardware: ``HardwareProfile.to_dict()`` of the profile used.
        ridge_point: the profile's ridge point for ``dtype``, FLOPs/byte.
        rows: one dict per op (``OpRow`` fields) plus ``arithmetic_intensity``, ``bound``,
            ``roofline_time_s``.
        modules: the per-module roll-up in display (pre-)order, root first.
        totals: see :class:`Totals`.
        uncounted: op -> calls with no formula (never dropped silently).
        breakdown: share of roofline time ``{"by_category": {cat: {...}}, "by_bound": {bound: {...}}}``,
            each entry with ``time_s``, ``share`` (0-1), ``flops``, ``bytes``, ``ops``; sorted by time.
        top_ops: indices into ``rows`` of the most time-consuming ops, slowest first (up to 50).
        fusion: fusion groups and the traffic they remove (``FusionResult.to_dict()``).
        symbolic_dims: symbolic dimension names seen in shapes (reported, never replaced by 1).
        duration_s, count_duration_s, trace_duration_s: wall times, seconds.
    """

    model_class: str
    inputs: dict[str, dict]
    dtype: str
    device: str
    no_weights: bool
    trace: dict
    hardware: dict
    ridge_point: float
    rows: list[dict]
    modules: list[ModuleRow]
    totals: Totals
    uncounted: dict[str, int]
    breakdown: dict
    top_ops: list[int]
    fusion: FusionResult
    symbolic_dims: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    count_duration_s: float = 0.0
    trace_duration_s: float = 0.0

    @property
    def profile(self) -> HardwareProfile:
        """The hardware profile used, rebuilt from the record."""
        return HardwareProfile.from_dict(self.hardware)

    def to_dict(self) -> dict:
        """Return plain JSON-able data."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Characterization":
        """Rebuild from :meth:`to_dict` output."""
        d = dict(d)
        d["modules"] = [ModuleRow.from_dict(m) for m in d.get("modules", [])]
        d["totals"] = Totals.from_dict(d.get("totals", {}))
        d["fusion"] = FusionResult.from_dict(d.get("fusion", {}))
        return cls(**d)


# ----------------------------------------------------------------------------------------------
# assembly


_NUMERIC = ("macs", "flops", "bytes_read", "bytes_written", "weight_bytes")


def _plain_dim(d):
    return d if isinstance(d, int) else str(d)


def _row_dict(row: Any) -> dict:
    """An ``OpRow`` as a plain dict.

    Its fields are normally plain ints, strings and lists already. Symbolic sizes (``SymInt`` from
    fake tensors with dynamic shapes) are kept as their names in shapes (e.g. ``"s0"``), and numeric
    costs that are symbolic expressions are evaluated at the example sizes (their hints).
    """
    d = dict(row) if isinstance(row, dict) else {name: getattr(row, name) for name in row.__dataclass_fields__}
    for key in ("input_shapes", "output_shapes"):
        shapes = d.get(key) or []
        if any(not isinstance(x, int) for s in shapes for x in s):
            d[key] = [[_plain_dim(x) for x in s] for s in shapes]
    for key in _NUMERIC:
        v = d.get(key)
        if v is not None and not isinstance(v, int):
            d[key] = int(v)
    return d


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


def build_modules(rows: list[dict], module_classes: dict[str, str], module_order: list[str], model, profile,
                  dtype: str) -> list[ModuleRow]:
    """Return the hierarchical per-module roll-up in pre-order (root first).

    Every module path seen (ran, or owns an op) gets a row; missing ancestors (containers such as
    ``ModuleList`` that never run themselves) are added so the tree is complete. Inclusive values
    are the sum of the children's plus the module's own direct ops/parameters. Parameters of modules
    that never ran are attributed to their nearest ancestor that has a row.
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
        add(r["module_path"])

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
        n = nodes[r["module_path"]]
        n.self_macs += r["macs"] or 0
        n.self_flops += r["flops"]
        n.self_bytes += r["bytes_read"] + r["bytes_written"]
        n.self_ops += 1
        n.macs += r["macs"] or 0
        n.flops += r["flops"]
        n.bytes_read += r["bytes_read"]
        n.bytes_written += r["bytes_written"]
        n.ops += 1
        n.roofline_time_s += r["roofline_time_s"]
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
        info = annotate(n.flops, n.bytes, profile, dtype)
        n.arithmetic_intensity = info["arithmetic_intensity"]
        n.bound = info["bound"]

    out: list[ModuleRow] = []

    def walk(p: str):
        out.append(nodes[p])
        for c in children[p]:
            walk(c)

    walk("")
    return out


def build_breakdown(rows: list[dict]) -> dict:
    """Return the share of roofline time by op category and by bound (see ``Characterization``)."""
    total = sum(r["roofline_time_s"] for r in rows) or 0.0

    def group(key: str) -> dict:
        acc: dict[str, dict] = {}
        for r in rows:
            e = acc.setdefault(r[key], {"time_s": 0.0, "share": 0.0, "flops": 0, "bytes": 0, "ops": 0})
            e["time_s"] += r["roofline_time_s"]
            e["flops"] += r["flops"]
            e["bytes"] += r["bytes_read"] + r["bytes_written"]
            e["ops"] += 1
        for e in acc.values():
            e["share"] = e["time_s"] / total if total else 0.0
        return dict(sorted(acc.items(), key=lambda kv: -kv[1]["time_s"]))

    by_bound = group("bound")
    return {"by_category": group("category"), "by_bound": {b: by_bound[b] for b in BOUNDS if b in by_bound}}


def _symbolic_dims(rows: list[dict]) -> list[str]:
    names: list[str] = []
    for r in rows:
        for shape in (*r.get("input_shapes", []), *r.get("output_shapes", [])):
            for d in shape or []:
                if not isinstance(d, int) and str(d) not in names:
                    names.append(str(d))
    return names


def _main_dtype(model, args, kwargs) -> str:
    import torch

    by_dtype: dict[torch.dtype, int] = {}
    for p in model.parameters():
        by_dtype[p.dtype] = by_dtype.get(p.dtype, 0) + p.numel() * p.element_size()
    if by_dtype:
        dt = max(by_dtype.items(), key=lambda kv: kv[1])[0]
    else:
        leaves = [t for t in _tensors((args, kwargs)) if t.is_floating_point()]
        dt = leaves[0].dtype if leaves else torch.float32
    return str(dt).replace("torch.", "")


def _tensors(obj) -> list:
    import torch

    out = []
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            out.extend(_tensors(v))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out.extend(_tensors(v))
    return out


def _describe_inputs(args: tuple, kwargs: dict) -> dict[str, dict]:
    import torch

    out: dict[str, dict] = {}

    def put(name, v):
        if isinstance(v, torch.Tensor):
            out[name] = {"shape": [d if isinstance(d, int) else str(d) for d in v.shape],
                         "dtype": str(v.dtype).replace("torch.", "")}
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                put(f"{name}[{i}]", x)
        elif isinstance(v, dict):
            for k, x in v.items():
                put(f"{name}[{k!r}]", x)
        elif isinstance(v, (bool, int, float)):
            out[name] = {"shape": [], "dtype": type(v).__name__}

    for i, a in enumerate(args):
        put(f"args[{i}]", a)
    for k, v in kwargs.items():
        put(k, v)
    return out


def _to_meta(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj if obj.is_meta else obj.to("meta")
    if isinstance(obj, dict):
        return type(obj)({k: _to_meta(v) for k, v in obj.items()}) if type(obj) is dict else {
            k: _to_meta(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_to_meta(v) for v in obj)
    if isinstance(obj, list):
        return [_to_meta(v) for v in obj]
    return obj


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
) -> Characterization:
    """Characterize one call ``model(*args, **kwargs)``: count, roofline, roll-up, fusion, trace.

    Args:
        model: a ``torch.nn.Module`` (real, or built under ``torch.device("meta")``).
        args, kwargs: the call's inputs (tensors at their real shapes).
        hardware: profile name (``a100``, ``h100``, ``epyc9654``, ``xeon8480``), a
            :class:`HardwareProfile`, or ``None``/``"local"`` for this machine (measured once, cached).
        no_weights: count on ``meta`` tensors without touching the weights (also chosen automatically
            when the model has meta parameters or its parameters exceed half the free memory).
        trace: also trace the model for structure (``turnkey_like.tracing``); failure is recorded,
            never raised.
        warmup: run the model once before counting when it has uninitialised lazy modules
            (``nn.LazyLinear``...); otherwise the counted call is the only call.

    Returns:
        A :class:`Characterization`.

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
    profile = get_profile(hardware)
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
        t.is_meta for t in _tensors((args, kwargs)))
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
            from turnkey_like.tracing import one_line

            where = "on meta tensors " if use_meta else ""
            raise CharacterizationError(
                f"counting {type(model).__name__} {where}failed: {one_line(exc)}",
                hint="run without --no-weights (real tensors)" if use_meta else
                "check that the model runs with these inputs in plain PyTorch",
            ) from exc
        count_s = time.perf_counter() - t0
        traced = trace_model(model, args, kwargs, warmup=False) if trace else None

    rows = []
    for r in counted.rows:
        d = _row_dict(r)
        d.update(annotate(d["flops"], d["bytes_read"] + d["bytes_written"], profile, d.get("dtype")))
        rows.append(d)
    modules = build_modules(rows, counted.module_classes, counted.module_order, model, profile, dtype)
    root = modules[0]
    flops = sum(r["flops"] for r in rows)
    nbytes = sum(r["bytes_read"] + r["bytes_written"] for r in rows)
    overall = annotate(flops, nbytes, profile, dtype)
    totals = Totals(
        params=root.params,
        param_bytes=root.param_bytes,
        macs=sum(r["macs"] or 0 for r in rows),
        conv_matmul_macs=sum(r["macs"] or 0 for r in rows if r["category"] in CONV_MATMUL),
        flops=flops,
        bytes_read=sum(r["bytes_read"] for r in rows),
        bytes_written=sum(r["bytes_written"] for r in rows),
        weight_bytes=sum(r.get("weight_bytes", 0) for r in rows),
        arithmetic_intensity=overall["arithmetic_intensity"],
        bound=overall["bound"],
        roofline_time_s=sum(r["roofline_time_s"] for r in rows),
        ops=len(rows),
        uncounted_ops=sum(counted.uncounted.values()),
    )
    top = sorted(range(len(rows)), key=lambda i: -rows[i]["roofline_time_s"])[:TOP_OPS_KEPT]
    device = "meta" if use_meta else (str(next(iter(model.parameters())).device) if any(
        True for _ in model.parameters()) else "cpu")
    return Characterization(
        model_class=type(model).__name__,
        inputs=inputs,
        dtype=dtype,
        device=device,
        no_weights=use_meta,
        trace=traced.to_dict() if traced is not None else {"method": "none", "node_count": 0,
                                                           "attempts": [], "duration_s": 0.0,
                                                           "warmup_error": None},
        hardware=profile.to_dict(),
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


def characterize(model, *args, hardware=None, no_weights: bool = False, trace: bool = True, **kwargs) -> Characterization:
    """Characterize ``model(*args, **kwargs)``; see :func:`characterize_call` for what is returned.

    Example: ``characterize(resnet50, torch.randn(1, 3, 224, 224), hardware="a100")``.
    """
    return characterize_call(model, args, kwargs, hardware=hardware, no_weights=no_weights, trace=trace)
