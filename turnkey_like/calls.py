"""Calling conventions: walking the tensors in a model's inputs and outputs.

Models take and return nested structures: tuples, lists, dicts, namedtuples, transformers'
``ModelOutput`` and cache objects. Every part of tk that needs "the tensors in this" asks here, so
they all agree on what is found and in which order: torch's pytree order, the one ``torch.export``
and the ONNX exporter use.
"""

from __future__ import annotations

from typing import Any, Callable


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
