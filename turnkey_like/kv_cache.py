"""KV caches in a model's call: recognise them, read how many positions each layer holds, and
snapshot a call's inputs as they were when the call was made.

A causal LM that generates is called with the keys and values of the positions it has seen (the KV
cache), which the call itself extends. tk recognises, without any per-architecture code:

- transformers ``Cache`` objects (``transformers.cache_utils.Cache``: dynamic, static,
  sliding-window, hybrid and quantized caches; ``EncoderDecoderCache`` holds a self-attention and
  a cross-attention cache). Each cache layer (``Cache.layers``) says how many positions it stores
  (``get_seq_length()``) and, for sliding-window layers, how many it has seen
  (``cumulative_length``). Layers that keep a state instead of positions (linear attention, Mamba)
  hold no positions.
- legacy tuple caches: ``past_key_values`` given as a tuple (one entry per layer) of ``(key,
  value, ...)`` tensors shaped ``[batch, kv_heads, positions, head_dim]``.

Only ``sys.modules['transformers']`` is consulted (never imported here), so scripts that do not use
transformers pay one dictionary look-up per model call.
"""

from __future__ import annotations

import copy
import sys
from typing import Any, NamedTuple

#: Keyword names under which a legacy (tuple) cache is passed.
LEGACY_NAMES = ("past_key_values", "past_key_value", "past")


class CacheState(NamedTuple):
    """What a KV cache holds at one moment.

    Attributes:
        stored: per cache layer, the positions it stores (a sliding-window layer stores at most its
            window less one); 0 for a layer that stores no positions (a recurrent state).
        seen: per cache layer, the positions it has processed (``cumulative_length`` for sliding
            layers, else ``stored``).
        cross: per cross-attention layer of an encoder-decoder cache, the positions stored (the
            encoder's length once filled; constant while decoding).
    """

    stored: tuple[int, ...]
    seen: tuple[int, ...]
    cross: tuple[int, ...] = ()

    @property
    def context(self) -> int:
        """Positions processed so far: the longest any layer has seen (0 for an empty cache)."""
        return max(self.seen, default=0)

    @property
    def empty(self) -> bool:
        """True when no layer holds a position yet (the call that fills it is a prefill)."""
        return self.context == 0


class LayerKV(NamedTuple):
    """The shape of one cache layer's keys and values, read from its tensors.

    Attributes:
        batch, kv_heads, head_dim: of the keys ``[batch, kv_heads, positions, head_dim]`` (the value
            head dimension is ``value_dim``).
        value_dim: the values' last dimension.
        itemsize: bytes per element of the keys/values (their dtype as stored).
        stored: positions the layer stores now.
        window: the layer's sliding window (``None`` for full attention).
    """

    batch: int
    kv_heads: int
    head_dim: int
    value_dim: int
    itemsize: int
    stored: int
    window: int | None

    @property
    def bytes_per_position(self) -> int:
        """K and V bytes of one position of this layer: ``batch * kv_heads * (head_dim + value_dim) * itemsize``."""
        return self.batch * self.kv_heads * (self.head_dim + self.value_dim) * self.itemsize


def _cache_class():
    module = sys.modules.get("transformers.cache_utils")
    return getattr(module, "Cache", None) if module is not None else None


def _is_legacy(value) -> bool:
    """A tuple/list of per-layer tuples of 4-D tensors (the legacy ``past_key_values`` form)."""
    if not isinstance(value, (tuple, list)) or not value:
        return False
    first = value[0]
    return (isinstance(first, (tuple, list)) and len(first) >= 2 and all(
        hasattr(t, "shape") and len(t.shape) == 4 for t in first[:2]))


def find_cache(args: tuple, kwargs: dict) -> tuple[str, Any] | None:
    """The KV cache a call passes, as ``(argument name, cache)``; ``None`` when it passes none.

    A transformers ``Cache`` in any argument (positional ones named ``Positional Arg N``), or a legacy
    tuple cache under a :data:`LEGACY_NAMES` keyword. ``None`` values (no cache yet) do not count.
    """
    cache_cls = _cache_class()
    if cache_cls is not None:
        for name, value in kwargs.items():
            if isinstance(value, cache_cls):
                return name, value
        for i, value in enumerate(args, start=1):
            if isinstance(value, cache_cls):
                return f"Positional Arg {i}", value
    for name in LEGACY_NAMES:
        value = kwargs.get(name)
        if value is not None and _is_legacy(value):
            return name, value
    return None


def _layers(cache) -> tuple[list, list]:
    """``(self-attention layers, cross-attention layers)`` of a transformers cache."""
    inner = getattr(cache, "self_attention_cache", None)
    if inner is not None:  # EncoderDecoderCache
        cross = getattr(cache, "cross_attention_cache", None)
        return list(getattr(inner, "layers", [])), list(getattr(cross, "layers", []) if cross is not None else [])
    return list(getattr(cache, "layers", [])), []


def _stored(layer) -> int:
    keys = getattr(layer, "keys", None)
    if not getattr(layer, "is_initialized", keys is not None) or keys is None or not hasattr(keys, "shape"):
        return 0
    return int(keys.shape[-2]) if keys.dim() >= 2 else 0


def cache_state(cache) -> CacheState:
    """How many positions each layer of ``cache`` stores and has seen (see :class:`CacheState`).

    Reads tensor shapes and counters only (no values), so it works on meta tensors too.
    """
    if _is_legacy(cache):
        stored = tuple(int(entry[0].shape[-2]) for entry in cache)
        return CacheState(stored, stored)
    layers, cross = _layers(cache)
    stored = tuple(_stored(layer) for layer in layers)
    seen = tuple(int(getattr(layer, "cumulative_length", 0) or 0) or s for layer, s in zip(layers, stored))
    return CacheState(stored, seen, tuple(_stored(layer) for layer in cross))


def layer_windows(cache) -> tuple[int | None, ...]:
    """Per self-attention cache layer, its sliding window (``sliding_window``), ``None`` for full
    attention; ``()`` for a legacy cache (which has no windows)."""
    if _is_legacy(cache):
        return ()
    layers, _cross = _layers(cache)
    return tuple(int(w) if (w := getattr(layer, "sliding_window", None)) else None for layer in layers)


def layer_geometry(cache, *, cross: bool = False) -> list[LayerKV | None]:
    """The keys/values geometry of each self-attention cache layer (see :class:`LayerKV`), in the
    order of :func:`cache_state`'s per-layer tuples; ``cross=True``: of each cross-attention layer of
    an encoder-decoder cache instead (``stored``: the encoder positions; ``[]`` for any other cache).

    Read after a call has filled the cache; ``None`` for a layer that stores nothing (yet, or ever:
    a recurrent state).
    """
    if _is_legacy(cache):
        pairs = [] if cross else [(entry[0], entry[1], None) for entry in cache]
    else:
        layers, cross_layers = _layers(cache)
        if cross:
            layers = cross_layers
        pairs = [(getattr(layer, "keys", None), getattr(layer, "values", None), getattr(layer, "sliding_window", None))
                 for layer in layers]
    out: list[LayerKV | None] = []
    for keys, values, window in pairs:
        if keys is None or values is None or not hasattr(keys, "shape") or keys.dim() != 4 or keys.shape[-2] == 0:
            out.append(None)
            continue
        batch, heads, positions, head_dim = (int(d) for d in keys.shape)
        out.append(LayerKV(batch, heads, head_dim, int(values.shape[-1]), keys.element_size(), positions,
                           int(window) if window else None))
    return out


def snapshot(value, _memo: dict | None = None):
    """A copy of a call's input as it is now, safe from the changes the script makes later.

    Tensors are cloned (detached, ``requires_grad`` kept; an inference-mode tensor stays one), lists,
    tuples and dicts are rebuilt around their copies, KV caches (:func:`find_cache`'s kinds) are
    deep-copied with their tensors copied the same way. Anything else is kept as the same object:
    tk cannot copy an arbitrary object safely, and models take tensors, containers of them and
    caches.

    A FakeTensor (a script that runs its model under ``FakeTensorMode``) is copied as a plain
    ``meta`` tensor of its sizes, strides and dtype: it has no data either, and an op on a meta
    tensor costs a quarter of one on a FakeTensor (each op of a FakeTensor goes through the fake
    mode's dispatch), which is what characterization then runs.
    """
    import torch

    memo = {} if _memo is None else _memo
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, torch.Tensor):
        copied = _copy_tensor(value)
    elif (cache_cls := _cache_class()) is not None and isinstance(value, cache_cls):
        from turnkey_like.calls import tensor_leaves

        for t in tensor_leaves(value, objects=True):
            if id(t) not in memo:
                memo[id(t)] = _copy_tensor(t)
        copied = copy.deepcopy(value, memo)
    elif isinstance(value, dict):
        copied = type(value)((k, snapshot(v, memo)) for k, v in value.items()) if type(value) is dict else value
    elif isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        copied = type(value)(snapshot(v, memo) for v in value)
    else:
        copied = value
    memo[key] = copied
    return copied


def _copy_tensor(value):
    """:func:`snapshot`'s copy of one tensor: a clone, or a plain meta tensor for a FakeTensor of
    static sizes (made with every dispatch mode set aside, so that the fake mode does not make it
    fake again)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensor
    from torch.utils._python_dispatch import _disable_current_modes

    if isinstance(value, FakeTensor) and all(type(d) is int for d in (*value.shape, *value.stride())):
        with _disable_current_modes():
            copied = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    else:
        with torch.inference_mode(value.is_inference()):
            copied = value.detach().clone()
    if value.requires_grad and copied.is_floating_point() and not copied.is_inference():
        copied.requires_grad_(True)
    return copied
