"""Count the ops a model really runs, at the ATen dispatch level, with the module that ran each.

:func:`count_model` calls the model once inside a ``TorchDispatchMode``: every ATen op the call
dispatches (whatever Python code, functional call, ``torch.matmul`` or fused SDPA kernel produced
it) becomes one :class:`OpRow`, costed by the formula registry in
:mod:`turnkey_like.characterize.ops`. Module attribution comes from global forward pre/post hooks
that keep a stack of the modules being run.

What becomes a row:

- ops with a formula (including zero-FLOP ``data_movement`` ops such as ``cat``/``clone``, whose
  bytes are real traffic);
- real ops without a formula: a row with ``counted=False`` (``macs=None``, ``flops=0``), and the op
  is tallied in :attr:`CountResult.uncounted` — never dropped silently. Composite ops without a
  formula are first decomposed (``OpOverload.decompose``) so their parts are counted.

What does not: **view and metadata ops** (``view``, ``t``, ``transpose``, ``expand``, ``detach``,
``_unsafe_view``, ``empty``, ...; any op whose schema marks its output as an alias of an input).
They move no data and would only add noise; their outputs inherit the producer of their base (the
producer map is keyed by storage), so dataflow through them is kept.

Works under ``torch.no_grad()``, ``torch.inference_mode()`` and training mode, on real, ``meta``
and FakeTensor inputs (no data is read by the counter), and with shared submodules (a module
called twice gets both calls' rows under the same path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from turnkey_like.characterize import ops as _ops
from turnkey_like.errors import CharacterizationError
from turnkey_like.records import to_dict

aten = torch.ops.aten

# Views/metadata/allocation ops that are not flagged ``is_view`` by their schema but move no data.
_SKIP_PACKETS = {
    getattr(aten, n)
    for n in (
        "_unsafe_view", "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided",
        "resize_", "set_", "size", "sym_size", "stride", "sym_stride", "numel", "sym_numel", "dim",
        "storage_offset", "sym_storage_offset", "is_contiguous", "sym_is_contiguous",
        "is_strides_like_format", "is_non_overlapping_and_dense", "_has_compatible_shallow_copy_type",
        "record_stream", "_assert_tensor_metadata", "sym_constrain_range",
        "sym_constrain_range_for_size", "_functional_assert_async", "_assert_scalar", "is_same_size",
        "_nested_tensor_from_mask_left_aligned", "_resize_output_", "is_pinned", "_version",
        "detach_", "lift", "lift_fresh", "alias", "_reshape_alias", "_make_dep_token",
        "unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk",
        # in-place metadata changes (no data moves)
        "as_strided_", "squeeze_", "unsqueeze_", "transpose_", "t_", "swapdims_", "swapaxes_",
        "resize_as_", "_resize_output_", "set_data",
    )
    if hasattr(aten, n)
}


@dataclass
class OpRow:
    """One ATen op call, in execution order.

    Attributes:
        index: position in execution order (rows are numbered 0, 1, ... with no gaps).
        op: ATen overload name, e.g. ``aten.convolution.default``.
        category: the op's category (:data:`turnkey_like.characterize.ops.CATEGORIES`), ``other``
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
        producers: indices of earlier rows whose outputs this op reads (dataflow, for fusion).
    """

    index: int
    op: str
    category: str
    module_path: str
    module_class: str
    input_shapes: list[list[int]]
    output_shapes: list[list[int]]
    dtype: str
    macs: int | None
    flops: int
    bytes_read: int
    bytes_written: int
    weight_bytes: int
    counted: bool
    producers: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "OpRow":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class CountResult:
    """Everything one counted model call ran.

    Attributes:
        rows: one :class:`OpRow` per op, in execution order.
        uncounted: ATen op -> number of calls that had no formula (also present as rows with
            ``counted=False``).
        module_classes: module path -> class name for every module that ran (the root is ``""``).
        module_order: module paths in the order they were first entered (root first).
    """

    rows: list[OpRow]
    uncounted: dict[str, int]
    module_classes: dict[str, str]
    module_order: list[str]

    def total_macs(self, categories=_ops.MAC_CATEGORIES) -> int:
        """Return the MACs of the rows whose category is in ``categories`` (default conv, matmul,
        attention: the "conv+matmul MACs")."""
        return sum(r.macs or 0 for r in self.rows if r.category in categories)

    def total_flops(self) -> int:
        """Return the FLOPs of all rows (1 MAC = 2 FLOPs)."""
        return sum(r.flops for r in self.rows)

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CountResult":
        return cls(
            rows=[OpRow.from_dict(r) for r in d["rows"]],
            uncounted=dict(d["uncounted"]),
            module_classes=dict(d["module_classes"]),
            module_order=list(d["module_order"]),
        )


def _storage_key(t: torch.Tensor):
    """Identity of a tensor's storage (shared by its views), or ``None`` when it has none."""
    try:
        return t.untyped_storage()._cdata
    except Exception:
        return None


def _tensors(x, acc: list) -> list:
    """Append the tensors in ``x`` (a tensor, or a list/tuple nesting tensors) to ``acc``."""
    if isinstance(x, torch.Tensor):
        acc.append(x)
    elif isinstance(x, (list, tuple)):
        for e in x:
            if isinstance(e, torch.Tensor):
                acc.append(e)
            elif isinstance(e, (list, tuple)):
                _tensors(e, acc)
    return acc


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class _Counter:
    """State of one counting run: the rows, the module stack and the storage -> producer map."""

    def __init__(self, root):
        self.rows: list[OpRow] = []
        self.row_inputs: list[list[tuple[Any, int]]] = []  # per row: (storage key, bytes) read
        self.uncounted: dict[str, int] = {}
        self.module_classes: dict[str, str] = {}
        self.module_order: list[str] = []
        self.producer: dict[Any, int | None] = {}
        self.root = root
        self.stack: list[tuple[int, str, str]] = []  # (id(module), path, class name)
        self.names: dict[int, str] = {}
        self.children: dict[int, dict[int, str]] = {}
        if isinstance(root, torch.nn.Module):
            for name, mod in root.named_modules(remove_duplicate=False):
                self.names.setdefault(id(mod), name)
                kids = {}
                for cname, child in mod.named_children():
                    kids.setdefault(id(child), cname)
                self.children[id(mod)] = kids
        self.func_info: dict[Any, tuple] = {}

    # --- module tracking -------------------------------------------------------------------
    def pre_hook(self, module, args):
        mid = id(module)
        if self.stack:
            pid, ppath, _ = self.stack[-1]
            cname = self.children.get(pid, {}).get(mid)
            if cname is not None:
                path = f"{ppath}.{cname}" if ppath else cname
            elif mid in self.names:
                path = self.names[mid]
            else:  # a module that is not a registered submodule of the model
                path = f"{ppath}.<{type(module).__name__}>" if ppath else f"<{type(module).__name__}>"
        else:
            path = self.names.get(mid, "" if module is self.root else f"<{type(module).__name__}>")
        cls = type(module).__name__
        if path not in self.module_classes:
            self.module_classes[path] = cls
            self.module_order.append(path)
        if mid not in self.children:  # modules created lazily or outside the model
            self.children[mid] = {id(c): n for n, c in module.named_children()}
        self.stack.append((mid, path, cls))

    def post_hook(self, module, args, output):
        mid = id(module)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == mid:
                del self.stack[i:]
                break

    # --- op recording ----------------------------------------------------------------------
    def info(self, func):
        """Per-overload facts, computed once: (skip, formula, op name, category)."""
        info = self.func_info.get(func)
        if info is None:
            packet = func._overloadpacket
            skip = (
                packet in _SKIP_PACKETS
                or bool(getattr(func, "is_view", False))
                or getattr(func, "namespace", "") == "prim"  # prim.device, prim.layout: metadata
            )
            entry = _ops.REGISTRY.get(packet)
            if entry is not None:
                skip = False
            info = (skip, entry, str(func), entry.category if entry else "other")
            self.func_info[func] = info
        return info

    def record(self, func, entry, name, category, args, kwargs, out):
        ins = _tensors(args, [])
        for v in kwargs.values():
            _tensors(v, ins)
        outs = _tensors(out, [])
        counted = entry is not None
        macs, flops, read_elems = None, 0, None
        if counted:
            try:
                cost = _ops.op_cost(func, args, kwargs, out)
                macs, flops, read_elems = cost.macs, int(cost.flops), cost.read_elems
                if macs is not None:
                    macs = int(macs)
            except Exception as exc:  # a formula that cannot handle this call: listed, not dropped
                counted = False
                name_err = f"{name} (formula error: {type(exc).__name__})"
                self.uncounted[name_err] = self.uncounted.get(name_err, 0) + 1
        else:
            self.uncounted[name] = self.uncounted.get(name, 0) + 1
        index = len(self.rows)
        producers: list[int] = []
        in_keys: list[tuple[Any, int]] = []
        bytes_read = 0
        prod_map = self.producer
        for i, t in enumerate(ins):
            key = _storage_key(t)
            if read_elems is not None and i in read_elems:
                nb = int(read_elems[i]) * t.element_size()
            else:
                nb = _nbytes(t)
            bytes_read += nb
            in_keys.append((key, nb))
            p = prod_map.get(key)
            if p is not None and p not in producers:
                producers.append(p)
        bytes_written = 0
        for t in outs:
            bytes_written += _nbytes(t)
            key = _storage_key(t)
            if key is not None:
                prod_map[key] = index
        if self.stack:
            _, path, cls = self.stack[-1]
        else:
            path, cls = "", type(self.root).__name__
        self.rows.append(
            OpRow(
                index=index,
                op=name,
                category=category if counted else "other",
                module_path=path,
                module_class=cls,
                input_shapes=[list(t.shape) for t in ins],
                output_shapes=[list(t.shape) for t in outs],
                dtype=_dtype_name(ins[0].dtype) if ins else (_dtype_name(outs[0].dtype) if outs else ""),
                macs=macs if counted else None,
                flops=flops if counted else 0,
                bytes_read=bytes_read,
                bytes_written=bytes_written,
                weight_bytes=0,
                counted=counted,
                producers=producers,
            )
        )
        self.row_inputs.append(in_keys)

    def forget_outputs(self, args, kwargs, out):
        """A skipped op that allocates fresh storage: clear any stale producer for it."""
        outs = _tensors(out, [])
        if not outs:
            return
        in_keys = {_storage_key(t) for t in _tensors(args, [])}
        for t in outs:
            key = _storage_key(t)
            if key is not None and key not in in_keys:
                self.producer.pop(key, None)

    def finish(self) -> CountResult:
        """Attribute parameter/buffer reads (known only now: lazy modules create theirs during the
        call) and return the result."""
        weights: set = set()
        if isinstance(self.root, torch.nn.Module):
            for t in list(self.root.parameters()) + list(self.root.buffers()):
                if isinstance(t, torch.nn.parameter.UninitializedTensorMixin):
                    continue
                key = _storage_key(t)
                if key is not None:
                    weights.add(key)
        for row, in_keys in zip(self.rows, self.row_inputs):
            row.weight_bytes = sum(nb for key, nb in in_keys if key is not None and key in weights)
        return CountResult(
            rows=self.rows,
            uncounted=dict(self.uncounted),
            module_classes=dict(self.module_classes),
            module_order=list(self.module_order),
        )


class _CountingMode(TorchDispatchMode):
    """The dispatch mode that feeds every ATen call to a :class:`_Counter`."""

    def __init__(self, counter: _Counter):
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        c = self.counter
        try:
            skip, entry, name, category = c.info(func)
        except AttributeError:  # higher-order ops and others without an overload packet
            return func(*args, **kwargs)
        if skip:
            out = func(*args, **kwargs)
            if not getattr(func, "is_view", False):
                c.forget_outputs(args, kwargs, out)
            return out
        if entry is None:
            # A composite op without a formula: count its parts instead, when it has any.
            with self:
                r = func.decompose(*args, **kwargs)
            if r is not NotImplemented:
                return r
        out = func(*args, **kwargs)
        c.record(func, entry, name, category, args, kwargs, out)
        return out


def count_model(model, args: tuple = (), kwargs: dict | None = None) -> CountResult:
    """Run ``model(*args, **kwargs)`` once and return every ATen op it dispatched, costed.

    The call runs under whatever grad mode the caller set (``no_grad``, ``inference_mode`` or
    training all work) and on whatever device the model and inputs live, including ``meta`` and
    FakeTensors (formulas need shapes only). The model's output is discarded.

    Args:
        model: an ``nn.Module`` (or any callable; then module paths are those of the modules it
            calls, root ``""`` being the callable).
        args: positional inputs.
        kwargs: keyword inputs.

    Returns:
        A :class:`CountResult`: rows in execution order with MACs, FLOPs (1 MAC = 2 FLOPs) and bytes,
        uncounted ops with call counts, and the modules that ran.

    Raises:
        CharacterizationError: when the model's forward raises (the original exception is chained).
    """
    kwargs = kwargs or {}
    counter = _Counter(model)
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    h_pre = register_module_forward_pre_hook(counter.pre_hook)
    h_post = register_module_forward_hook(counter.post_hook, always_call=True)
    root_pushed = False
    try:
        if not isinstance(model, torch.nn.Module):
            counter.stack.append((id(model), "", type(model).__name__))
            counter.module_classes[""] = type(model).__name__
            counter.module_order.append("")
            root_pushed = True
        with _CountingMode(counter):
            model(*args, **kwargs)
    except CharacterizationError:
        raise
    except Exception as exc:
        name = type(model).__name__
        raise CharacterizationError(
            f"counting ops of {name} failed: {type(exc).__name__}: {exc}",
            hint="the model must run on the given inputs outside tk first; check input shapes/dtypes",
        ) from exc
    finally:
        h_pre.remove()
        h_post.remove()
        if root_pushed:
            counter.stack.clear()
    return counter.finish()


__all__ = ["OpRow", "CountResult", "count_model"]
