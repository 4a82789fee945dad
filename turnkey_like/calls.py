"""Calling conventions: the tensors in a model's inputs and outputs, their names, and the call rebuilt.

Models take and return nested structures: tuples, lists, dicts, namedtuples, transformers'
``ModelOutput`` and cache objects. Every part of tk that needs "the tensors in this" asks here, so
they all agree on what is found and in which order: torch's pytree order, the one ``torch.export``
and the ONNX exporter use.

- :func:`tensor_leaves`, :func:`map_tensors`: walk nested tensors.
- :func:`flatten_inputs` -> :class:`FlatInputs`: a call's ``(args, kwargs)`` as named tensor leaves
  (the ONNX graph's inputs) plus the constants baked into the graph; :func:`export_wrapper` rebuilds
  the call from those tensors; :func:`output_names_for` names the output leaves.
- :func:`to_numpy`, :func:`eager_outputs`: tensors as numpy arrays, and the eager reference outputs.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch.utils._pytree import TreeSpec


def tensor_leaves(obj: Any, *, objects: bool = False) -> list:
    """The tensors in ``obj``, in pytree order (``torch.utils._pytree``).

    Args:
        obj: any nest of tuples, lists, dicts, namedtuples and pytree-registered classes
            (``ModelOutput``).
        objects: also look inside other objects' attributes (``vars()``), for cache objects such as
            transformers' ``DynamicCache`` that pytree does not know; each object is visited once.

    Returns:
        The ``torch.Tensor`` leaves (a tensor reached twice is listed twice, as pytree does).
    """
    import torch
    from torch.utils._pytree import tree_leaves

    found: list = []
    seen: set[int] = set()

    def visit(value: Any) -> None:
        for leaf in tree_leaves(value):
            if isinstance(leaf, torch.Tensor):
                found.append(leaf)
            elif objects and hasattr(leaf, "__dict__") and not isinstance(leaf, type) and id(leaf) not in seen:
                seen.add(id(leaf))
                inner = [v for v in vars(leaf).values()
                         if isinstance(v, (torch.Tensor, list, tuple, dict)) or hasattr(v, "__dict__")]
                visit(inner)

    visit(obj)
    return found


def map_tensors(fn: Callable[[Any], Any], obj: Any) -> Any:
    """``obj`` rebuilt with ``fn`` applied to every tensor leaf (other leaves unchanged), via pytree."""
    import torch
    from torch.utils._pytree import tree_map

    return tree_map(lambda v: fn(v) if isinstance(v, torch.Tensor) else v, obj)


# --------------------------------------------------------------------------------------------------
# Flattening a call into named tensors (the ONNX graph's inputs) and rebuilding it
# --------------------------------------------------------------------------------------------------


@dataclass
class FlatInputs:
    """A call's inputs flattened for export and for ONNX Runtime.

    Attributes:
        names: one ONNX input name per tensor leaf, unique, in pytree order (see :func:`flatten_inputs`).
        tensors: the tensor leaves, same order.
        spec: torch pytree spec of ``(args, kwargs)``.
        constants: per pytree leaf, ``None`` for a tensor (taken from the graph input) or a 1-tuple
            holding the non-tensor value baked into the graph (``use_cache=False``, ints, ``None``).
    """

    names: list[str]
    tensors: list[torch.Tensor]
    spec: TreeSpec
    constants: list[tuple[object] | None]

    def feed(self) -> dict[str, np.ndarray]:
        """The tensors as ``{input name: numpy array}`` (:func:`to_numpy`): an ONNX Runtime feed."""
        return {name: to_numpy(t) for name, t in zip(self.names, self.tensors)}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{input name: shape}`` of the tensors."""
        return {name: tuple(int(d) for d in t.shape) for name, t in zip(self.names, self.tensors)}


def sanitize_name(name: object) -> str:
    """An ONNX-friendly name: characters other than ``[A-Za-z0-9_.]`` become ``_`` (``input`` if empty)."""
    text = re.sub(r"[^A-Za-z0-9_.]", "_", str(name)).strip("_")
    return text or "input"


def key_part(key: object) -> str:
    """One pytree path key as a name part: a list index (``0``), a dict key or an attribute name."""
    from torch.utils._pytree import GetAttrKey, MappingKey, SequenceKey

    if isinstance(key, SequenceKey):
        return str(key.idx)
    if isinstance(key, MappingKey):
        return str(key.key)
    if isinstance(key, GetAttrKey):
        return key.name
    return str(key)


def _unique(name: str, used: set[str]) -> str:
    unique, n = name, 1
    while unique in used:
        unique, n = f"{name}_{n}", n + 1
    used.add(unique)
    return unique


def positional_names(model: object) -> tuple[list[str], str | None]:
    """Names of ``model.forward``'s positional parameters, and of its ``*args`` (or ``None``).

    ``([], None)`` when the signature cannot be read (builtins, some C extensions).
    """
    try:
        sig = inspect.signature(model.forward)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return [], None
    positional: list[str] = []
    var: str | None = None
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            var = p.name
    return positional, var


def flatten_inputs(model: object | None, args: tuple, kwargs: dict | None) -> FlatInputs:
    """Flatten a call's ``(args, kwargs)`` into named tensor leaves, with torch's pytree.

    Names: keyword inputs keep their names (``input_ids``, ``attention_mask``); positional ones take
    ``model.forward``'s parameter names (``input_N`` when ``model`` is ``None`` or has no such
    parameter; ``<varargs>_N`` for ``*args``); nested leaves add ``_<index>``/``_<key>`` suffixes
    (``pair_0``, ``pair_1`` for ``forward(self, pair: tuple)``); a repeated name gets ``_1``, ``_2``.
    Non-tensor leaves are kept as constants (:attr:`FlatInputs.constants`).
    """
    import torch
    from torch.utils._pytree import tree_flatten_with_path

    positional, var = positional_names(model) if model is not None else ([], None)
    leaves_with_path, spec = tree_flatten_with_path((tuple(args), dict(kwargs or {})))
    names: list[str] = []
    tensors: list[torch.Tensor] = []
    constants: list[tuple[object] | None] = []
    used: set[str] = set()
    for path, value in leaves_with_path:
        if not isinstance(value, torch.Tensor):
            constants.append((value,))
            continue
        constants.append(None)
        root, first, rest = path[0], path[1], path[2:]
        if root.idx == 0:  # positional
            i = first.idx
            if i < len(positional):
                base = positional[i]
            elif var is not None:
                base = f"{var}_{i - len(positional)}"
            else:
                base = f"input_{i}"
        else:
            base = first.key
        names.append(_unique(sanitize_name("_".join([str(base)] + [key_part(k) for k in rest])), used))
        tensors.append(value)
    return FlatInputs(names, tensors, spec, constants)


def output_names_for(outputs: object, avoid: set[str]) -> list[str]:
    """ONNX output names for a model's output pytree, one per tensor leaf in :func:`tensor_leaves` order.

    A lone tensor is ``output``; tuple/list elements ``output_0``, ``output_1`` (``output_0_1`` when
    nested); dict or ``ModelOutput`` entries keep their keys (``last_hidden_state``). Names in
    ``avoid`` (the input names) are not reused.
    """
    import torch
    from torch.utils._pytree import SequenceKey, tree_flatten_with_path

    leaves, _ = tree_flatten_with_path(outputs)
    names: list[str] = []
    used = set(avoid)
    for path, value in leaves:
        if not isinstance(value, torch.Tensor):
            continue
        parts = [key_part(key) for key in path]
        if not parts:
            name = "output"
        elif isinstance(path[0], SequenceKey):
            name = sanitize_name("output_" + "_".join(parts))
        else:
            name = sanitize_name("_".join(parts))
        names.append(_unique(name, used))
    return names


def export_wrapper(model: torch.nn.Module, flat: FlatInputs) -> torch.nn.Module:
    """A module whose ``forward(*tensors)`` rebuilds the original call from ``flat``'s tensors (constants
    put back in place) and returns the output's tensor leaves as a tuple.

    This is what the ONNX exporters see: positional tensors in, a flat tuple out, so keyword inputs
    are never passed twice (TurnkeyML's ``use_cache given twice`` on BERT/GPT-2). The wrapper keeps
    the model's training flag without recursing into its submodules.
    """
    import torch
    from torch.utils._pytree import tree_unflatten

    class ExportWrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> tuple:
            it = iter(tensors)
            leaves = [next(it) if c is None else c[0] for c in flat.constants]
            args, kwargs = tree_unflatten(leaves, flat.spec)
            return tuple(tensor_leaves(self.model(*args, **kwargs)))

    wrapper = ExportWrapper()
    object.__setattr__(wrapper, "training", model.training)  # keep the user's mode; do not recurse
    return wrapper


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A torch tensor as a contiguous numpy array on the CPU (bfloat16 widened to float32: numpy has none)."""
    import torch

    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.contiguous().numpy()


def eager_outputs(model: Callable[..., Any], args: tuple, kwargs: dict | None) -> list[np.ndarray]:
    """Run ``model(*args, **kwargs)`` once under ``torch.no_grad()``; its tensor leaves as numpy arrays.

    The reference every agreement check compares with (ONNX export, ORT and torch.compile benchmarks).
    """
    import torch

    with torch.no_grad():
        out = model(*args, **(kwargs or {}))
    return [to_numpy(t) for t in tensor_leaves(out)]


def uses_cuda(model: torch.nn.Module | None, args: tuple = (), kwargs: dict | None = None) -> bool:
    """Whether a model's parameters/buffers or any tensor in ``(args, kwargs)`` lives on a CUDA device."""
    values: list = list(tensor_leaves((tuple(args), dict(kwargs or {}))))
    if model is not None:
        values += list(model.parameters()) + list(model.buffers())
    return any(getattr(t, "is_cuda", False) for t in values)
