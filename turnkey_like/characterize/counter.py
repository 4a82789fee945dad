"""Count the ops a model really runs, at the ATen dispatch level, with the module that ran each.

:func:`count_model` calls the model once inside a ``TorchDispatchMode``: every ATen op the call
dispatches (whatever Python code, functional call, ``torch.matmul`` or fused SDPA kernel produced
it) becomes one :class:`~turnkey_like.records.OpRow`, costed by the formula registry in
:mod:`turnkey_like.characterize.ops`. Module attribution comes from global forward pre/post hooks
that keep a stack of the modules being run (see :class:`_Counter` for why not
``torch.utils.module_tracker.ModuleTracker``).

What becomes a row:

- ops with a formula (including zero-FLOP ``data_movement`` ops such as ``cat``/``clone``, whose
  bytes are real traffic);
- real ops without a formula: a row with ``counted=False`` (``macs=None``, ``flops=0``), and the op
  is tallied in :attr:`CountResult.uncounted` — never dropped silently. Composite ops without a
  formula are first decomposed (``OpOverload.decompose``) so their parts are counted.
- higher-order ops (``torch.ops.higher_order.*``): ``flex_attention`` has a formula (one
  ``attention`` row); ``cond``, ``while_loop`` and ``invoke_subgraph`` are counted through their
  bodies (the branch that ran, every loop iteration, the subgraph), whose ops become ordinary rows;
  any other higher-order op, or one whose body cannot run here (a ``cond`` predicate on meta or fake
  tensors), is one uncounted row named ``higher_order.NAME``.

What does not: **view and metadata ops** (``view``, ``t``, ``transpose``, ``expand``, ``detach``,
``_unsafe_view``, ``empty``, ...; any op whose schema marks its output as an alias of an input).
They move no data and would only add noise; their outputs inherit the producer of their base (the
producer map is keyed by storage), so dataflow through them is kept.

Quantized ops (``torch.ops.quantized.*``) take their weights packed in a script object
(``Conv2dPackedParamsBase``, ``LinearPackedParamsBase``...). The counter opens each such argument
once per run (``ops.packed_weights``) and treats its tensors as the op's inputs: the formula sees
their shapes, the row's bytes read and weight bytes include them at their real dtypes (int8 weights,
float32 bias), and its ``input_shapes`` list them where the float op lists its weight and bias.

The rows are the dataflow graph of the call (what fusion, pictures and the explorer draw from,
traceable model or not): each row's ``producers`` are the earlier rows whose outputs it reads, found
by the storage each input tensor lives in (a map storage -> last row that wrote it; an in-place op
such as ``relu_`` or ``add_`` becomes the storage's new producer, so its readers point at it). Graph
inputs, parameters and buffers have no producer, so a row that reads only them has none.

Works under ``torch.no_grad()``, ``torch.inference_mode()`` and training mode, on real, ``meta``
and FakeTensor inputs (no data is read by the counter), and with shared submodules (a module
called twice gets both calls' rows under the same path). Symbolic sizes (``SymInt`` from fake
tensors with dynamic shapes) are kept by name in shapes (``"s0"``); costs are evaluated at the
example sizes.

On ``meta`` tensors and FakeTensors, the ops that tk runs by its own rule rather than torch's meta
kernel (a boolean read of a meta tensor's value takes the plain case; ``aten._grouped_mm`` in float32
takes the CPU kernel's output) follow :data:`turnkey_like.meta_kernels.RULES`, the one place those
rules live (:func:`turnkey_like.zoo.forward` applies the same ones). An op with a rule is decided
once (kind ``_META_RULE``), so other ops pay nothing for the rules. A model with meta tensors is
also counted inside :class:`turnkey_like.meta_kernels.FusedAttention`, so that its attention runs
the fused kernel the CPU would run, as on real tensors, rather than the math backend that is all
torch offers on meta (K and V copied out to the query heads, scores materialized), and its ops run
through a :class:`turnkey_like.meta_kernels.MetaMemo` (a repeated layer's ops are made, not run).

Where each op's tensors are (read from its schema once) and what is read from each tensor (shape,
storage, bytes) is :mod:`turnkey_like.characterize.op_tensors`. The counted call runs through
:func:`turnkey_like.characterize.stack_room.call_with_stack_room`, so its per-op Python frames never
cross a CPython data-stack chunk boundary, whatever the caller's depth.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch._ops import HigherOrderOperator
from torch.utils._python_dispatch import TorchDispatchMode

from turnkey_like import meta_kernels
from turnkey_like.calls import tensor_leaves
from turnkey_like.characterize import ops as _ops
from turnkey_like.characterize.op_tensors import (
    DTYPE_NAMES,
    PACKED,
    PLAIN_TYPES,
    nbytes_of,
    plain_int,
    plain_shape,
    row_dtype_name,
    schema_slots,
    slot_inputs,
    storage_address,
    storage_key,
    tensors_in,
)
from turnkey_like.characterize.stack_room import call_with_stack_room
from turnkey_like.errors import CharacterizationError, one_line
from turnkey_like.records import OpRow

aten = torch.ops.aten

SKIP_NAMES = (
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
    "resize_as_", "set_data",
)
"""Views/metadata/allocation ops that their schema does not flag ``is_view`` but that move no data.
Resolved at import; a test checks that every name exists in ``torch.ops.aten``."""

_SKIP_PACKETS = frozenset(getattr(aten, n) for n in SKIP_NAMES if hasattr(aten, n))

BODY_HOPS = ("cond", "while_loop", "invoke_subgraph")
"""Higher-order ops counted through their bodies (see :meth:`_CountingMode._run_body`)."""

# Kinds of op, decided once per overload (see OpInfo and _Counter.info).
_SKIP, _COUNT, _DECOMPOSE, _HOP, _META_RULE, _VIEW = 0, 1, 2, 3, 4, 5

_FLOAT16_PACKETS = frozenset(_ops.resolve(n) for n in _ops.FLOAT16_PACKED_OPS) - {None}
"""Quantized ops whose packed weights are float16 (``ops.FLOAT16_PACKED_OPS``)."""


class OpInfo(NamedTuple):
    """What the counter knows about one op overload, decided when it is first seen (:meth:`_Counter.info`).

    Attributes:
        kind: how the op is handled: ``_VIEW`` (its schema says its output aliases an input: no
            row), ``_SKIP`` (another metadata or allocation op, :data:`SKIP_NAMES`: no row, and a
            fresh output storage forgets its stale producer), ``_COUNT`` (one row), ``_DECOMPOSE`` (a
            composite op without a formula: its parts are counted), ``_HOP`` (a higher-order op),
            ``_META_RULE`` (an op with a formula and a rule for tensors without data,
            :data:`turnkey_like.meta_kernels.RULES`).
        formula: the op's :class:`~turnkey_like.characterize.ops.OpFormula`, ``None`` without one.
        name: the row's op name (``aten.convolution.default``, ``higher_order.cond``).
        category: the formula's category, ``"other"`` without one.
        slots: where the op's tensors are in its arguments and returns (:func:`schema_slots`), ``None``
            when its schema cannot tell.
        packed: ``(position, name, float16)`` of each packed-params argument of a quantized op,
            ``None`` for ops without one.
    """

    kind: int
    formula: Any
    name: str
    category: str
    slots: tuple | None
    packed: tuple | None


_INFO: dict[Any, OpInfo] = {}
"""Op overload -> its :class:`OpInfo`, filled as ops are first seen and kept for the process (reading
an op's schema costs more than counting it). Cleared by :func:`count_model` when
:data:`turnkey_like.characterize.ops.REGISTRY` has grown since (a formula registered at run time)."""
_INFO_REGISTRY_SIZE = [0]

@dataclass
class CountResult:
    """Everything one counted model call ran.

    Attributes:
        rows: one :class:`~turnkey_like.records.OpRow` per op, in execution order (the roofline
            fields ``arithmetic_intensity``, ``bound``, ``roofline_time_s`` are left at their
            defaults; ``characterize_call`` fills them in place).
        uncounted: op -> number of calls that had no formula (also present as rows with
            ``counted=False``).
        module_classes: module path -> class name for every module that ran (the root is ``""``).
        module_order: module paths in the order they were first entered (root first).
        plain_shapes: ``True`` when every tensor seen was a real or meta tensor, so every size in
            ``rows`` is an int; ``False`` when some were not (FakeTensors...), and shapes may hold
            symbolic sizes by name.
    """

    rows: list[OpRow]
    uncounted: dict[str, int]
    module_classes: dict[str, str]
    module_order: list[str]
    plain_shapes: bool = True

    def total_macs(self, categories=_ops.MAC_CATEGORIES) -> int:
        """Return the MACs of the rows whose category is in ``categories`` (default conv, matmul,
        attention: the "conv+matmul MACs")."""
        return sum(r.macs or 0 for r in self.rows if r.category in categories)

    def total_flops(self, categories=None) -> int:
        """Return the FLOPs of all rows, or of the rows whose category is in ``categories``
        (1 MAC = 2 FLOPs)."""
        return sum(r.flops for r in self.rows if categories is None or r.category in categories)


def _outputs(info: OpInfo, out) -> list:
    """The tensors an op returned."""
    if isinstance(out, torch.Tensor):
        return [out]
    slots = info.slots
    if slots is None:
        return tensor_leaves(out)
    _, outputs, returns = slots
    return tensors_in(outputs, (out,) if returns == 1 else tuple(out or ()))


def _inputs(info: OpInfo, args: tuple, kwargs: dict) -> list:
    """The tensors an op was given (positional, then keyword-only arguments)."""
    slots = info.slots
    return tensors_in(None if slots is None else slots[0], args, kwargs)


class _Counter:
    """State of one counting run: the rows, the module stack and the storage -> producer map.

    Module attribution (why forward hooks and not ``torch.utils.module_tracker.ModuleTracker``):
    ModuleTracker was evaluated for this (torch 2.14.1) and does not serve:

    - it keeps the enclosing modules as a *set* of names (``ModuleTracker.parents``), not a stack,
      so the innermost module of an op is not known; taking the longest name is a guess that fails
      for a module called from a module that is not its registered parent;
    - it names a module by one registered path: a submodule shared by two parents (``a.lin`` and
      ``b.lin``, tests/zoo.py ``shared_child``) is reported as ``b.lin`` for both calls, although the
      first ran under ``a``; every name is also prefixed with the root's class name;
    - with grad enabled it installs multi-grad hooks on every module's inputs and outputs (for
      backward tracking), work that counting never uses;
    - it is slower. Counting with it (innermost = longest name in ``parents``) against these hooks
      (``benchmarks/module_attribution.py``: CPU time, 1 thread, minimum of 15 (ResNet-50) / 150
      (MLP) interleaved runs): ResNet-50 b1 224 under no_grad 128.5 ms vs 118.1 ms (+9%), with grad
      139.8 ms vs 132.7 ms (+5%); an MLP of 8 x Linear(64, 64) + ReLU, b8, 0.90 ms vs 0.67 ms (+34%),
      with grad 1.62 ms vs 0.85 ms (+90%).
    """

    def __init__(self, root):
        self.rows: list[OpRow] = []
        self.row_inputs: list[list[tuple[Any, int]]] = []  # per row: (storage key, bytes) read
        self.uncounted: dict[str, int] = {}
        self.module_classes: dict[str, str] = {}
        self.module_order: list[str] = []
        self.producer: dict[Any, int | None] = {}
        self.root = root
        self.stack: list[tuple[Any, str, str]] = []  # (module, path, class name), innermost last
        self._names: dict[int, str] | None = None
        # id(parent) -> (parent, {id(child): attribute name}); filled for a parent when its first
        # child runs (the parent is kept so its id cannot be reused by another object meanwhile)
        self.children: dict[int, tuple[Any, dict[int, str]]] = {}
        self.plain_shapes = True  # False once a tensor that may carry symbolic sizes is seen
        # id(packed-params object) -> (object, its tensors): each opened once per run, and kept so
        # the tensors' storages (their keys) stay unique for the run (see open_packed)
        self.packed: dict[int, tuple[Any, tuple]] = {}

    @property
    def names(self) -> dict[int, str]:
        """id(module) -> its first registered path under the root; built on first need (for a module
        that runs outside its registered parent: YOLO's layers, which its root calls from
        ``root.model``)."""
        if self._names is None:
            self._names = {}
            if isinstance(self.root, torch.nn.Module):
                for name, mod in self.root.named_modules(remove_duplicate=False):
                    self._names.setdefault(id(mod), name)
        return self._names

    # --- module tracking -------------------------------------------------------------------
    def pre_hook(self, module, args):
        """Push ``module`` on the module stack with its path (global forward pre-hook)."""
        mid = id(module)
        if self.stack:
            parent, ppath, _ = self.stack[-1]
            known = self.children.get(id(parent))
            if known is None:
                kids = {}
                for n, c in getattr(parent, "_modules", {}).items():
                    if c is not None:
                        kids.setdefault(id(c), n)  # a child registered twice: its first name
                self.children[id(parent)] = (parent, kids)
            else:
                kids = known[1]
            cname = kids.get(mid)
            if cname is not None:
                path = f"{ppath}.{cname}" if ppath else cname
            elif mid in self.names:
                path = self.names[mid]
            else:  # a module that is not a registered submodule of the model
                path = f"{ppath}.<{type(module).__name__}>" if ppath else f"<{type(module).__name__}>"
        elif module is self.root:
            path = ""
        else:
            path = self.names.get(mid, f"<{type(module).__name__}>")
        cls = type(module).__name__
        if path not in self.module_classes:
            self.module_classes[path] = cls
            self.module_order.append(path)
        self.stack.append((module, path, cls))

    def post_hook(self, module, *_):
        """Pop ``module`` (and anything left above it) off the module stack (global forward hook)."""
        stack = self.stack
        if stack and stack[-1][0] is module:
            stack.pop()
            return
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is module:
                del stack[i:]
                break

    # --- op recording ----------------------------------------------------------------------
    @staticmethod
    def info(func) -> OpInfo:
        """The op's :class:`OpInfo`, computed once per process (:data:`_INFO`)."""
        info = _INFO.get(func)
        if info is None:
            if isinstance(func, HigherOrderOperator):
                entry = _ops.lookup(func)
                name = f"{_ops.HIGHER_ORDER_PREFIX}{func.name()}"
                info = OpInfo(_HOP, entry, name, entry.category if entry else "other", None, None)
            else:
                packet = getattr(func, "_overloadpacket", None)
                entry = _ops.REGISTRY.get(packet) if packet is not None else None
                if entry is not None:
                    kind = _META_RULE if func in meta_kernels.RULES else _COUNT
                elif packet is not None and (
                    packet in _SKIP_PACKETS
                    or bool(getattr(func, "is_view", False))
                    or getattr(func, "namespace", "") == "prim"  # prim.device, prim.layout: metadata
                ):
                    kind = _VIEW if getattr(func, "is_view", False) else _SKIP
                elif hasattr(func, "decompose"):
                    kind = _DECOMPOSE
                else:
                    kind = _COUNT
                slots = schema_slots(func)
                packed = None
                if slots is not None and any(k == PACKED for _, _, k in slots[0]):
                    fp16 = packet in _FLOAT16_PACKETS
                    packed = tuple((i, n, fp16) for i, n, k in slots[0] if k == PACKED)
                info = OpInfo(kind, entry, str(func), entry.category if entry else "other", slots, packed)
            _INFO[func] = info
        return info

    def open_packed(self, packed, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """``args``/``kwargs`` with each packed-params argument (``packed``, from :meth:`info`)
        replaced by the tuple of its tensors (``ops.packed_weights``: weight, bias, per-channel
        scales and zero points).

        Each object is opened once per run and its tensors kept for the run: their storages then
        stay allocated, so their keys never collide with another tensor's, and they are marked as
        weights in :meth:`finish`. A stale producer left at their address by a freed tensor is
        cleared. An object that cannot be opened becomes an empty tuple (its formula then fails and
        the op is listed as uncounted, never dropped).
        """
        args = list(args)
        kwargs = dict(kwargs) if kwargs else kwargs
        for i, name, float16 in packed:
            if i < len(args):
                obj = args[i]
            elif kwargs and name in kwargs:
                obj = kwargs[name]
            else:
                continue
            known = self.packed.get(id(obj))
            if known is None or known[0] is not obj:
                try:
                    tensors = _ops.packed_weights(obj, float16).tensors
                except (TypeError, RuntimeError):
                    tensors = ()
                for t in tensors:
                    self.producer.pop(storage_key(t), None)
                known = self.packed[id(obj)] = (obj, tensors)
            if i < len(args):
                args[i] = known[1]
            else:
                kwargs[name] = known[1]
        return tuple(args), kwargs

    def cost(self, entry, name: str, shaped: list | None, out_shape, args, kwargs, out) -> tuple:
        """``(counted, macs, flops, read_elems)`` of one op call by its formula ``entry``
        (``ops.Cost``, sizes made plain ints): from the reduced arguments ``shaped`` and ``out_shape``
        when :func:`~turnkey_like.characterize.op_tensors.slot_inputs` made them, else from the call's
        own. An op without a formula, or whose formula raises, is tallied in :attr:`uncounted` (the
        error's type in the name) and is ``(False, None, 0, None)``: listed, never dropped."""
        if entry is None:
            self.uncounted[name] = self.uncounted.get(name, 0) + 1
            return False, None, 0, None
        try:
            if shaped is not None:
                data = _ops.argument_values(entry, args, kwargs) if entry.values else None
                macs, flops, read_elems = _ops.shaped_cost(entry, shaped, kwargs, out_shape, data)
            else:
                macs, flops, read_elems = _ops.entry_cost(entry, args, kwargs, out)
            if type(macs) is not int and macs is not None:
                macs = plain_int(macs)
            if type(flops) is not int:
                flops = plain_int(flops)
            return True, macs, flops, read_elems
        except Exception as exc:  # a formula that cannot handle this call: listed, not dropped
            name_err = f"{name} (formula error: {type(exc).__name__})"
            self.uncounted[name_err] = self.uncounted.get(name_err, 0) + 1
            return False, None, 0, None

    def record(self, func, info: OpInfo, args, kwargs, out):
        """Append the row of one op call.

        The counter's hot path (once per op of the model), kept to plain local operations: each
        tensor's shape, storage and size are read once (:func:`storage_address`, ``Tensor.nbytes``),
        and for real and meta tensors the formula's arguments are the call's with the tensors at the
        schema's positions replaced by those shapes (:func:`slot_inputs`, ``ops.shaped_cost``).
        """
        _, entry, name, category, slots, packed = info
        if packed is not None:
            args, kwargs = self.open_packed(packed, args, kwargs)
        plain = PLAIN_TYPES
        if slots is None:
            ins = tensor_leaves((args, kwargs) if kwargs else args)
            in_shapes = [t.shape for t in ins]
            shaped = None
        else:
            ins, in_shapes, shaped = slot_inputs(slots[0], args, kwargs, self.plain_shapes)
        if type(out) in plain:
            outs = [out]
        elif isinstance(out, torch.Tensor):
            outs = [out]
        elif slots is None:
            outs = tensor_leaves(out)
        else:
            outs = tensors_in(slots[1], (out,) if slots[2] == 1 else tuple(out or ()))
        out_shapes = [t.shape for t in outs]
        if shaped is not None and type(out) in plain:
            out_shape = tuple(out_shapes[0])
        else:
            out_shape = None if shaped is None else _ops.out_shape_of(out)
        counted, macs, flops, read_elems = self.cost(entry, name, shaped, out_shape, args, kwargs, out)
        index = len(self.rows)
        producers: list[int] = []
        in_keys: list[tuple[Any, int]] = []
        bytes_read = 0
        prod_map = self.producer
        address = storage_address
        for i, t in enumerate(ins):
            if type(t) not in plain:
                self.plain_shapes = False
            try:
                key = address(t)
            except Exception:  # noqa: BLE001 - a tensor without storage (see storage_key)
                key = None
            if read_elems is not None and i in read_elems:
                nb = plain_int(read_elems[i]) * t.element_size()
            else:
                try:
                    nb = t.nbytes
                except RuntimeError:  # a sparse tensor (see nbytes_of)
                    nb = nbytes_of(t)
            bytes_read += nb
            in_keys.append((key, nb))
            p = prod_map.get(key)
            if p is not None and p not in producers:
                producers.append(p)
        bytes_written = 0
        for t in outs:
            if type(t) not in plain:
                self.plain_shapes = False
            try:
                bytes_written += t.nbytes
            except RuntimeError:  # a sparse tensor (see nbytes_of)
                bytes_written += nbytes_of(t)
            try:
                prod_map[address(t)] = index
            except Exception:  # noqa: BLE001 - no storage: nothing can read it back by storage
                pass
        if self.stack:
            _, path, cls = self.stack[-1]
        else:
            path, cls = "", type(self.root).__name__
        if counted and entry.dtype:
            dtype = entry.dtype
        else:
            first = ins[0] if ins else (outs[0] if outs else None)
            dtype = (DTYPE_NAMES.get(first.dtype) or row_dtype_name(first.dtype)) if first is not None else ""
        self.rows.append(
            OpRow(
                index=index,
                op=name,
                category=category if counted else "other",
                module_path=path,
                module_class=cls,
                input_shapes=list(map(list, in_shapes)),
                output_shapes=list(map(list, out_shapes)),
                dtype=dtype,
                macs=macs,
                flops=flops,
                bytes_read=bytes_read,
                bytes_written=bytes_written,
                weight_bytes=0,
                counted=counted,
                producers=producers,
            )
        )
        self.row_inputs.append(in_keys)

    def forget_outputs(self, info, args, kwargs, out):
        """A skipped op that allocates fresh storage: clear any stale producer for it."""
        outs = _outputs(info, out)
        if not outs:
            return
        in_keys = {storage_key(t) for t in _inputs(info, args, kwargs)}
        for t in outs:
            key = storage_key(t)
            if key is not None and key not in in_keys:
                self.producer.pop(key, None)

    @contextlib.contextmanager
    def rollback_on_error(self):
        """Undo the rows recorded inside the block when it raises (a body that could not run)."""
        n, uncounted, producer = len(self.rows), dict(self.uncounted), dict(self.producer)
        try:
            yield
        except BaseException:
            del self.rows[n:], self.row_inputs[n:]
            self.uncounted, self.producer = uncounted, producer
            raise

    def finish(self, tensors: list | None = None) -> CountResult:
        """Attribute parameter/buffer reads, make symbolic sizes plain (names in shapes, example values
        in costs), and return the result.

        ``tensors``: the root's parameters and buffers when the caller has them; otherwise they are
        read here, after the call (lazy modules create theirs during it). The tensors of packed
        quantized weights opened during the run (:meth:`open_packed`) are weights too.
        """
        weights: set = set()
        if tensors is None and isinstance(self.root, torch.nn.Module):
            tensors = [*self.root.parameters(), *self.root.buffers()]
        if self.packed:
            tensors = [*(tensors or ()), *(t for _, opened in self.packed.values() for t in opened)]
        if tensors:
            for t in tensors:
                if isinstance(t, torch.nn.parameter.UninitializedTensorMixin):
                    continue
                key = storage_key(t)
                if key is not None:
                    weights.add(key)
        for row, in_keys in zip(self.rows, self.row_inputs):
            wb = 0
            for key, nb in in_keys:
                if key in weights:
                    wb += nb
            row.weight_bytes = wb
        if not self.plain_shapes:
            for row in self.rows:
                row.weight_bytes = plain_int(row.weight_bytes)
                for shapes in (row.input_shapes, row.output_shapes):
                    for i, shape in enumerate(shapes):
                        if not all(type(d) is int for d in shape):
                            shapes[i] = plain_shape(shape)
                row.bytes_read, row.bytes_written = plain_int(row.bytes_read), plain_int(row.bytes_written)
        return CountResult(
            rows=self.rows,
            uncounted=dict(self.uncounted),
            module_classes=dict(self.module_classes),
            module_order=list(self.module_order),
            plain_shapes=self.plain_shapes,
        )


class _CountingMode(TorchDispatchMode):
    """The dispatch mode that feeds every ATen call (and higher-order op) to a :class:`_Counter`.

    Its ``__torch_dispatch__`` is not wrapped in ``torch._disable_dynamo`` as torch wraps a mode's by
    default: that wrapper imports ``torch._dynamo`` at its first call (1.0-1.6 s on this 2-core
    machine, measured with ``python -c "import torch; import torch._dynamo"``), which every
    characterization of a script that never compiles anything would pay. :func:`_mode_class` takes
    the wrapped twin, :class:`_CountingModeDynamoOff`, whenever ``torch._dynamo`` is loaded (a
    script or model that uses ``torch.compile``): only then can Dynamo see this mode's frames.
    """

    supports_higher_order_operators = True

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # not wrapped here: _CountingModeDynamoOff is the wrapped twin

    def __init__(self, counter: _Counter, memo: meta_kernels.MetaMemo | None = None):
        super().__init__()
        self.counter = counter
        self.memo = memo  # on meta: repeated ops' outputs made, not run (meta_kernels.MetaMemo)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        c = self.counter
        info = _INFO.get(func) or c.info(func)
        kind = info.kind
        if kind == _COUNT:  # most ops: run, then one row
            if self.memo is not None:
                out = self.memo(func, args, kwargs or {})
            else:
                out = func(*args, **kwargs) if kwargs else func(*args)
            c.record(func, info, args, kwargs, out)
            return out
        if kind == _VIEW:  # shares its input's storage: nothing to record or forget
            return func(*args, **kwargs) if kwargs else func(*args)
        kwargs = kwargs or {}
        if kind == _SKIP:
            out = func(*args, **kwargs)
            c.forget_outputs(info, args, kwargs, out)
            return out
        if kind == _HOP:
            return self._higher_order(func, info, args, kwargs)
        if kind == _META_RULE:
            out = self._without_data(func, info, args, kwargs)
            if out is not NotImplemented:
                return out
        if kind == _DECOMPOSE:
            # A composite op without a formula: count its parts instead, when it has any.
            with self:
                r = func.decompose(*args, **kwargs)
            if r is not NotImplemented:
                return r
        out = func(*args, **kwargs)
        c.record(func, info, args, kwargs, out)
        return out

    def _without_data(self, func, info, args, kwargs):
        """Run the rule of a ``_META_RULE`` op (:data:`turnkey_like.meta_kernels.RULES`) when it
        applies; return ``NotImplemented`` when it does not (the op then runs as any other).

        A rule's output that the op computes (``_grouped_mm``'s) is recorded as the op's row; a value
        it assumes (a boolean read of a meta tensor) has none.
        """
        rule = meta_kernels.RULES[func]
        if not rule.applies(args):
            return NotImplemented
        out = rule.output(*args, **kwargs)
        if rule.computes:
            self.counter.record(func, info, args, kwargs, out)
        return out

    def _higher_order(self, func, info, args, kwargs):
        """Count a higher-order op: by its formula, through its body, or as one uncounted row."""
        c = self.counter
        if info.formula is None and func.name() in BODY_HOPS:
            try:
                with c.rollback_on_error():
                    return self._run_body(func, args, kwargs)
            except Exception:  # noqa: BLE001 - e.g. a cond predicate on meta/fake tensors: one row below
                pass
        out = func(*args, **kwargs)
        c.record(func, info, args, kwargs, out)
        return out

    def _run_body(self, func, args, kwargs):
        """Run ``func``'s eager (``CompositeExplicitAutograd``) kernel with its body functions run
        under this mode, so the ops of the branch taken (``cond``), of every iteration and condition
        check (``while_loop``) or of the subgraph (``invoke_subgraph``) become rows.

        The kernels are torch's own (``torch/_higher_order_ops/{cond,while_loop,invoke_subgraph}.py``);
        they require that no mode is active when they start, which holds here (the dispatcher pops
        this mode while it handles the op), and they call the bodies, which push it back.
        """
        from torch._C import DispatchKey

        kernel = func.py_kernels[DispatchKey.CompositeExplicitAutograd]

        def counted(fn):
            if fn is None or getattr(fn, "_boxed_call", False):
                return fn

            def run(*a, **k):
                with self:
                    return fn(*a, **k)

            return run

        if func.name() == "cond":
            pred, true_fn, false_fn, operands = args
            return kernel(pred, counted(true_fn), counted(false_fn), operands, **kwargs)
        if func.name() == "while_loop":
            cond_fn, body_fn, *rest = args
            return kernel(counted(cond_fn), counted(body_fn), *rest, **kwargs)
        subgraph, *rest = args  # invoke_subgraph(subgraph, identifier, *operands)
        if getattr(subgraph, "_boxed_call", False):
            raise NotImplementedError("boxed subgraphs are not counted through")
        return kernel(counted(subgraph), *rest, **kwargs)


class _CountingModeDynamoOff(_CountingMode):
    """:class:`_CountingMode` with Dynamo kept out of its ``__torch_dispatch__`` frames (as torch
    wraps every dispatch mode's); used when ``torch._dynamo`` is loaded."""

    __torch_dispatch__ = torch._disable_dynamo(_CountingMode.__torch_dispatch__, recursive=True)


def _mode_class() -> type[_CountingMode]:
    """The counting mode to enter: the Dynamo-wrapped one once ``torch._dynamo`` is imported (a
    compiled function can then run under the mode), else the plain one, which imports nothing.
    Dynamo compiles nothing before it is imported, and its import happens before it can compile.
    A model that first compiles inside the counted call has this mode's frames seen by Dynamo, which
    keeps their meaning: tried with a ``torch.compile(fn, backend="eager")`` made in ``forward``,
    the rows are the eager ones, with Dynamo's warnings about what it could not trace."""
    return _CountingModeDynamoOff if "torch._dynamo" in sys.modules else _CountingMode


@contextlib.contextmanager
def _eager_flex_attention():
    """Let ``flex_attention`` run eagerly under the counting mode.

    Called outside ``torch.compile``, ``torch.nn.attention.flex_attention.flex_attention`` wraps its
    higher-order op in ``torch.compile(fullgraph=True)``, which refuses to run while a non-infra
    dispatch mode is active (torch 2.14: "found no compiled frames"). Its debug switch
    ``_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG`` calls the op directly instead, with the same forward
    result; it is set for the counted call only, and only when the module is loaded already.
    """
    module = sys.modules.get("torch.nn.attention.flex_attention")
    flag = "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG"
    if module is None or not hasattr(module, flag):
        yield
        return
    old = getattr(module, flag)
    setattr(module, flag, True)
    try:
        yield
    finally:
        setattr(module, flag, old)


def count_model(model, args: tuple = (), kwargs: dict | None = None, *, weights: list | None = None) -> CountResult:
    """Run ``model(*args, **kwargs)`` once and return every ATen op it dispatched, costed.

    The call runs under whatever grad mode the caller set (``no_grad``, ``inference_mode`` or
    training all work) and on whatever device the model and inputs live, including ``meta`` and
    FakeTensors (formulas need shapes only). The model's output is discarded.

    Args:
        model: an ``nn.Module`` (or any callable; then module paths are those of the modules it
            calls, root ``""`` being the callable).
        args: positional inputs.
        kwargs: keyword inputs.
        weights: the model's parameters and buffers, when the caller has them already (they decide
            each row's ``weight_bytes``); ``None`` reads them from the model after the call.

    Returns:
        A :class:`CountResult`: rows in execution order with MACs, FLOPs (1 MAC = 2 FLOPs) and bytes,
        uncounted ops with call counts, and the modules that ran.

    Raises:
        CharacterizationError: when the model's forward raises (the original exception is chained).
    """
    return call_with_stack_room(_count, (model, args, kwargs or {}, weights))


def _has_meta_tensors(model, args: tuple, kwargs: dict) -> bool:
    """Whether the model's first parameter or buffer, or any input tensor (cache objects included),
    is on ``meta``."""
    if isinstance(model, torch.nn.Module):
        for t in model.parameters():
            if t.is_meta:
                return True
            break
        for t in model.buffers():
            if t.is_meta:
                return True
            break
    return any(t.is_meta for t in tensor_leaves((args, kwargs), objects=True))


def _count(model, args: tuple, kwargs: dict, weights: list | None) -> CountResult:
    """The body of :func:`count_model` (run by :func:`call_with_stack_room`)."""
    if _INFO_REGISTRY_SIZE[0] != len(_ops.REGISTRY):  # a formula was registered since: decide again
        _INFO.clear()
        _INFO_REGISTRY_SIZE[0] = len(_ops.REGISTRY)
    counter = _Counter(model)
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    h_pre = register_module_forward_pre_hook(counter.pre_hook)
    h_post = register_module_forward_hook(counter.post_hook, always_call=True)
    root_pushed = False
    try:
        if not isinstance(model, torch.nn.Module):
            counter.stack.append((model, "", type(model).__name__))
            counter.module_classes[""] = type(model).__name__
            counter.module_order.append("")
            root_pushed = True
        on_meta = _has_meta_tensors(model, args, kwargs)
        with _eager_flex_attention(), meta_kernels.FusedAttention() if on_meta else contextlib.nullcontext(), \
                _mode_class()(counter, meta_kernels.MetaMemo() if on_meta else None):
            model(*args, **kwargs)
    except CharacterizationError:
        raise
    except Exception as exc:
        raise CharacterizationError(
            f"counting ops of {type(model).__name__} failed: {one_line(exc)}",
            hint="the model must run on the given inputs outside tk first; check input shapes/dtypes",
        ) from exc
    finally:
        h_pre.remove()
        h_post.remove()
        if root_pushed:
            counter.stack.clear()
    return counter.finish(weights)


__all__ = ["OpRow", "OpInfo", "CountResult", "count_model", "SKIP_NAMES", "BODY_HOPS"]
