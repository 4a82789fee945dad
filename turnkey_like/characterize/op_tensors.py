"""Where an ATen op's tensors are, and what the counter reads from each: shape, storage, size.

The counter (:mod:`turnkey_like.characterize.counter`) reads an op's schema once
(:func:`schema_slots`: the positions of its tensor arguments and returns) and then, on every call,
takes the tensors from those positions (:func:`tensors_in`, :func:`slot_inputs`), never walking the
other arguments. Each tensor's storage identity (:func:`storage_key`) links an op to the ops whose
outputs it reads; its bytes (:func:`nbytes_of`) are the traffic. Symbolic sizes (``SymInt`` of
FakeTensors with dynamic shapes) are kept by name in shapes and read at their example values in
costs (:func:`plain_shape`, :func:`plain_int`).
"""

from __future__ import annotations

import torch

from turnkey_like.calls import tensor_leaves
from turnkey_like.characterize import ops as _ops

# Tensor types whose sizes are always plain ints (real and meta tensors); any other (FakeTensor, a
# subclass) may carry symbolic sizes, which the counter's finish then makes plain.
PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)


def _untyped_storage_address(t: torch.Tensor) -> int:
    """The address of a tensor's ``StorageImpl`` (``t.untyped_storage()._cdata``)."""
    return t.untyped_storage()._cdata


storage_address = getattr(torch._C, "_storage_address", _untyped_storage_address)
"""Identity of a tensor's storage, shared by its views: the address of its ``StorageImpl``; raises for
a tensor without storage. ``torch._C._storage_address`` reads it without making the Python storage
object that ``t.untyped_storage()._cdata`` makes (half the time); the same number."""


def storage_key(t: torch.Tensor):
    """Identity of a tensor's storage (shared by its views), or ``None`` when it has none."""
    try:
        return storage_address(t)
    except Exception:
        return None


def nbytes_of(t: torch.Tensor):
    """Bytes of a tensor's elements at its dtype: ``numel x element size`` (``Tensor.nbytes``, one
    call instead of two; a sparse tensor, which has no ``nbytes``, by the product)."""
    try:
        return t.nbytes
    except RuntimeError:
        return t.numel() * t.element_size()


TENSOR, TENSOR_LIST, PACKED = 0, 1, 2


def slot_kind(t) -> int | None:
    """``TENSOR`` for a ``Tensor``/``Tensor?`` schema type, ``TENSOR_LIST`` for ``Tensor[]``/
    ``Tensor?[]``, ``PACKED`` for a quantized engine's packed-params class
    (``ops.PACKED_PARAMS_TYPES``), ``None`` for types that hold no tensor; raises ``TypeError`` for
    types that might hold tensors in a way the schema does not tell (``Any``, tuples, dicts)."""
    if isinstance(t, torch._C.OptionalType):
        t = t.getElementType()
    if isinstance(t, torch._C.TensorType):
        return TENSOR
    if isinstance(t, torch._C.ClassType) and t.qualified_name() in _ops.PACKED_PARAMS_TYPES:
        return PACKED
    if isinstance(t, torch._C.ListType):
        e = t.getElementType()
        if isinstance(e, torch._C.OptionalType):
            e = e.getElementType()
        return TENSOR_LIST if isinstance(e, torch._C.TensorType) else None
    if isinstance(t, (torch._C.AnyType, torch._C.TupleType, torch._C.DictType)):
        raise TypeError(f"schema type {t} may hold tensors")
    return None


def schema_slots(func):
    """Where an ATen op's tensors are, read from its schema, or ``None`` when the schema cannot tell
    (then :func:`tensors_in` walks the values with ``turnkey_like.calls.tensor_leaves``).

    Returns ``(inputs, outputs, returns)``: ``inputs`` is ``(position, name, kind)`` per tensor
    argument, ``outputs`` ``(position, None, kind)`` per tensor return, ``returns`` the number of
    returns (a single return is the value itself, several are a tuple). Reading the schema once per
    op replaces walking every argument of every call (the counter's hot path).
    """
    try:
        schema = func._schema
        inputs = tuple((i, a.name, k) for i, a in enumerate(schema.arguments)
                       if (k := slot_kind(a.type)) is not None)
        outputs = tuple((i, None, k) for i, r in enumerate(schema.returns) if (k := slot_kind(r.type)) is not None)
        return inputs, outputs, len(schema.returns)
    except (AttributeError, TypeError, RuntimeError):
        return None


def tensors_in(slots, values: tuple, kwargs: dict | None = None) -> list:
    """The tensors at ``slots`` (from :func:`schema_slots`) of positional ``values`` / ``kwargs``,
    in schema order; every tensor in them (``turnkey_like.calls.tensor_leaves``) when ``slots`` is
    ``None``. A packed-params slot holds tensors once ``counter._Counter.open_packed`` has replaced the
    object by the tuple of its tensors; an unopened object (one an op returns) holds none."""
    if slots is None:
        return tensor_leaves((values, kwargs) if kwargs else values)
    found = []
    n = len(values)
    for i, name, kind in slots:
        v = values[i] if i < n else (kwargs.get(name) if kwargs else None)
        if v is None:
            continue
        if kind == TENSOR:
            if isinstance(v, torch.Tensor):
                found.append(v)
        elif kind == PACKED:
            if type(v) is tuple:
                found.extend(v)
        else:
            for t in v:
                if isinstance(t, torch.Tensor):
                    found.append(t)
    return found


def slot_inputs(slots, args: tuple, kwargs: dict | None, plain_so_far: bool) -> tuple[list, list, list | None]:
    """The tensors at the input ``slots`` of an op call (what :func:`tensors_in` finds, in the same
    order), their shapes, and the formula's positional arguments: ``args`` with each tensor argument
    replaced by its shape as a tuple and each tensor list by the list of those (``None`` kept), as
    ``ops._shape_of`` would make them.

    The formula arguments are ``None`` (the caller then lets ``ops.entry_cost`` reduce the arguments)
    when a tensor is not a plain real or meta tensor, or ``plain_so_far`` is ``False`` (a run that has
    seen FakeTensors may pass symbolic sizes among the other arguments too).
    """
    found: list = []
    shapes: list = []
    shaped = list(args) if plain_so_far else None
    n = len(args)
    plain = PLAIN_TYPES
    for i, name, kind in slots:
        v = args[i] if i < n else (kwargs.get(name) if kwargs else None)
        if v is None:
            continue
        if kind == TENSOR:
            if isinstance(v, torch.Tensor):
                shape = v.shape
                found.append(v)
                shapes.append(shape)
                if shaped is not None:
                    if type(v) in plain:
                        if i < n:
                            shaped[i] = tuple(shape)
                    else:
                        shaped = None
        elif kind == PACKED and type(v) is not tuple:
            continue  # an unopened packed object holds no tensor
        else:  # a tensor list, or an opened packed object (the tuple of its tensors)
            reduced = []
            has_tensor = False
            for t in v:
                if isinstance(t, torch.Tensor):
                    shape = t.shape
                    found.append(t)
                    shapes.append(shape)
                    if type(t) not in plain:
                        shaped = None
                    reduced.append(tuple(shape))
                    has_tensor = True
                else:
                    reduced.append(t)
            if shaped is not None and has_tensor and i < n:
                shaped[i] = reduced
    return found, shapes, shaped


DTYPE_NAMES: dict[torch.dtype, str] = {}


def row_dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``, ``torch.quint8`` -> ``"int8"`` (``ops.dtype_name``;
    memoised: called once per row)."""
    name = DTYPE_NAMES.get(dtype)
    if name is None:
        name = DTYPE_NAMES[dtype] = _ops.dtype_name(dtype)
    return name


def plain_dim(d):
    """One size as an int, or the name/expression of a symbolic size (``SymInt`` -> ``"s0"``)."""
    if type(d) is int:
        return d
    text = str(d)
    return int(text) if text.lstrip("-").isdigit() else text


def plain_shape(shape: list) -> list:
    """A shape with symbolic sizes kept by name (never taken as 1)."""
    return [plain_dim(d) for d in shape]


def plain_int(v):
    """An int: ``v``, or a symbolic integer expression at its example value (no guard added)."""
    if v is None or type(v) is int:
        return v
    return _ops.size_hint(v) if isinstance(v, torch.SymInt) else int(v)


__all__ = ["PLAIN_TYPES", "TENSOR", "TENSOR_LIST", "PACKED", "storage_address", "storage_key", "nbytes_of",
           "slot_kind", "schema_slots", "tensors_in", "slot_inputs", "DTYPE_NAMES", "row_dtype_name",
           "plain_dim", "plain_shape", "plain_int"]
