"""The stacks of layers of a transformers model: where they can be cut, and where they repeat.

Two users, one reading of a model's layers (``nn.ModuleList`` stacks, told apart by ``repr``, and the
config attributes that count and describe them):

- :func:`shallow_overrides`: the shortest copy that still holds every distinct layer, which the
  survey traces instead of a model 30 to 90 layers deep (:func:`turnkey_like.zoo.shallow`);
- :func:`repeating_layers`: the depths at which a model's costs are affine in the number of its
  layers, so that counting two copies gives the model's figures (a generation's decode steps:
  ``turnkey_like.characterize.generation_depth``).

Both build copies through ``model_args`` (dotted config keys), so a copy is the library's own model
at a smaller depth, with every kind of layer in order.
"""

from __future__ import annotations

import math
import re

from turnkey_like.zoo.base import RepeatingLayers


def _config_paths(config) -> list[tuple[str, object]]:
    """``(prefix, config)`` for ``config`` (prefix ``""``) and every config nested in it (text,
    vision, backbone, encoder, decoder), each once, the prefix being its dotted path plus ``.``
    (``"text_config."``)."""
    from transformers import PretrainedConfig

    seen: list[tuple[str, object]] = []
    stack = [("", config)]
    while stack:
        prefix, cfg = stack.pop()
        if any(cfg is c for _, c in seen):
            continue
        seen.append((prefix, cfg))
        stack += [(f"{prefix}{k}.", v) for k, v in vars(cfg).items() if isinstance(v, PretrainedConfig)]
    return seen


_DEPTH_KEY = re.compile(r"(^|_)(layers|layer|depth|blocks)$")
"""Config attributes that count a stack of layers (``num_hidden_layers``, ``n_layer``,
``encoder_layers``, ``depth``, ``max_window_layers``, xLSTM's ``num_blocks``...): found by scanning
every default config."""

_PERIOD_KEY = re.compile(r"(interval|period|every_n_layers|freq|frequency|offset)$")
"""Config attributes that place layers of another kind by their index (``full_attention_interval``,
``attn_layer_period``, ``attn_layer_offset``, ``global_attn_every_n_layers``)."""


def _distinct_prefix(items, repeats: int = 1) -> int:
    """Length of the shortest prefix of ``items`` that holds each distinct item (by ``repr``)
    ``repeats`` times, or as often as ``items`` holds it when that is fewer."""
    seen: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        seen.setdefault(repr(item), []).append(i)
    return max(at[min(repeats, len(at)) - 1] for at in seen.values()) + 1


def _layer_kinds(values) -> list:
    """The kind of each layer a per-layer config list describes: its value, except in a map from
    each layer to a layer index (Mistral Large 4's ``kv_source_layers``, mostly ``[0, 1, 2, ...]``),
    where a layer's kind is how far back its source lies (``i - value``: 0 for its own)."""
    values = list(values)
    if all(type(v) is int for v in values) and 2 * sum(v == i for i, v in enumerate(values)) > len(values):
        return [i - v for i, v in enumerate(values)]
    return values


def shallow_overrides(model, keep: int = 2, repeats: int = 1) -> tuple[dict[str, object], dict[str, tuple[int, int]]]:
    """Config overrides (dotted ``model_args`` keys) that cut each stack of layers of a transformers
    ``model`` to the shortest prefix that still holds every distinct layer, and the cuts
    (``{key: (layers kept, layers in the model)}``); ``({}, {})`` when nothing can be cut.

    A stack is an ``nn.ModuleList`` longer than ``keep``; its layers are told apart by their
    ``repr`` (module classes, shapes, options: a dense MLP from a mixture of experts, linear from
    full attention); each distinct layer is kept ``repeats`` times (2 where a layer's weights are
    shared with a later one of its kind, as Zamba's hybrid layers are, so the copy still has one to
    share with). A config attribute that counts layers (:data:`_DEPTH_KEY`) and equals a stack's
    length gets the longest prefix needed by any stack of that length, and at least ``keep`` (so the
    hand-over from one layer to the next is there) and more where the config places layers by index
    (:data:`_PERIOD_KEY`: ``full_attention_interval=4`` keeps 5). Per-layer lists of the same config
    with that length (``layer_types``, ``mlp_layer_types``, ...) are cut to the same prefix, after
    their distinct values also count as distinct layers (sliding and full attention share modules
    but not masks; :func:`_layer_kinds`).

    What a prefix keeps is what decides how a model traces: each kind of layer, in order. A copy
    this shallow has the model's code paths but not its size: parameters, MACs and node counts of
    the copy are not the model's.
    """
    import torch

    config = getattr(model, "config", None)
    if config is None:
        return {}, {}
    need: dict[int, int] = {}  # stack length -> layers to keep
    for stack in model.modules():
        if isinstance(stack, torch.nn.ModuleList) and len(stack) > keep:
            need[len(stack)] = max(need.get(len(stack), keep), _distinct_prefix(stack, repeats))
    overrides: dict[str, object] = {}
    cuts: dict[str, tuple[int, int]] = {}
    for prefix, cfg in _config_paths(config):
        attrs = {k: v for k, v in vars(cfg).items() if not k.startswith("_")}
        periods = [v for k, v in attrs.items() if _PERIOD_KEY.search(k) and type(v) is int and v > 0]
        for key, depth in attrs.items():
            if type(depth) is not int or not _DEPTH_KEY.search(key) or depth not in need:
                continue
            per_layer = {k: v for k, v in attrs.items() if isinstance(v, (list, tuple)) and len(v) == depth}
            cut = max([need[depth], *(_distinct_prefix(_layer_kinds(v), repeats) for v in per_layer.values()),
                       *(min(p + 1, depth) for p in periods)])
            if cut >= depth:
                continue
            overrides[prefix + key] = cut
            cuts[prefix + key] = (cut, depth)
            for k, v in per_layer.items():
                overrides[prefix + k] = type(v)(v[:cut])
    return overrides, cuts


def _counts(attrs: dict, depth: int) -> bool:
    """Whether a (sub-)config's attributes ``attrs`` count a stack ``depth`` layers deep (:data:`_DEPTH_KEY`)."""
    return any(type(v) is int and v == depth and _DEPTH_KEY.search(k) for k, v in attrs.items())


def _cut_to(config, depth: int, cut: int) -> dict[str, object]:
    """``model_args`` that cut every stack ``depth`` layers deep to its first ``cut`` layers: each
    config attribute that counts layers (:data:`_DEPTH_KEY`) and equals ``depth``, and the per-layer
    lists of ``depth`` items of the same (sub-)config (``layer_types``...)."""
    overrides: dict[str, object] = {}
    for prefix, cfg in _config_paths(config):
        attrs = {k: v for k, v in vars(cfg).items() if not k.startswith("_")}
        if not _counts(attrs, depth):
            continue
        for key, value in attrs.items():
            if type(value) is int and value == depth and _DEPTH_KEY.search(key):
                overrides[prefix + key] = cut
            elif isinstance(value, (list, tuple)) and len(value) == depth:
                overrides[prefix + key] = type(value)(value[:cut])
    return overrides


def repeating_layers(model, keep: int = 2) -> RepeatingLayers | None:
    """The depths at which a decoder-only transformers ``model``'s costs are affine in its number
    of layers (:class:`~turnkey_like.zoo.base.RepeatingLayers`), or ``None``.

    The model's stacks are its ``nn.ModuleList``s whose length ``L`` a config attribute counts
    (:data:`_DEPTH_KEY`); there must be one such length. Layer ``i``'s kind is the ``repr`` of
    layer ``i`` of every stack plus its entry in every per-layer config list of ``L`` items
    (``layer_types``: sliding or full attention, :func:`_layer_kinds`), or of more (a config whose
    depth ``model_args`` lowered keeps its default list, whose first ``L`` items the model reads;
    another list that long only tells more layers apart). ``first`` is the shallowest
    depth that holds every kind, at least ``keep`` layers, and (where the config places layers by
    index, :data:`_PERIOD_KEY`) one more than each such period, such that ``L - first`` is a whole
    number of periods; ``period`` is the smallest (a multiple of every config period) after which
    the kinds from ``first`` on repeat: kind ``i`` = kind ``i - period`` for every ``i >=
    first + period``. Each block of ``period`` layers from ``first`` on is then the block of a copy
    ``first + period`` deep beyond its first ``first`` layers, and every additive cost of the model is
    that of a copy ``first`` deep plus ``(L - first) / period`` times the difference between the two
    copies.

    ``None``: no config, an encoder-decoder model (two stacks of their own depths), no stack or
    stacks of several counted lengths, or no period that leaves copies shallower than the model.
    """
    import torch

    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return None
    paths = _config_paths(config)
    counted = {v for _, cfg in paths for k, v in vars(cfg).items()
               if not k.startswith("_") and type(v) is int and _DEPTH_KEY.search(k)}
    stacks = [(path, m) for path, m in model.named_modules()
              if isinstance(m, torch.nn.ModuleList) and len(m) > keep and len(m) in counted]
    if len({len(m) for _, m in stacks}) != 1:
        return None
    depth = len(stacks[0][1])
    kinds: list[tuple] = [tuple(repr(m[i]) for _, m in stacks) for i in range(depth)]
    periods: list[int] = []
    for _, cfg in paths:
        attrs = {k: v for k, v in vars(cfg).items() if not k.startswith("_")}
        if not _counts(attrs, depth):
            continue
        for key, value in attrs.items():
            if isinstance(value, (list, tuple)) and len(value) >= depth:  # longer: a default list, read from the start
                kinds = [kind + (repr(x),) for kind, x in zip(kinds, _layer_kinds(value[:depth]))]
            elif _PERIOD_KEY.search(key) and type(value) is int and value > 0:
                periods.append(value)
    ids = {kind: i for i, kind in enumerate(dict.fromkeys(kinds))}
    layer = [ids[kind] for kind in kinds]
    step = math.lcm(*periods) if periods else 1
    shortest = max([keep, _distinct_prefix(layer), *(min(p + 1, depth) for p in periods)])
    for period in range(step, depth, step):
        first = depth - period * ((depth - shortest) // period)
        if first + period < depth and all(layer[i] == layer[i - period] for i in range(first + period, depth)):
            return RepeatingLayers(depth=depth, first=first, period=period, stacks=tuple(p for p, _ in stacks),
                                   overrides=(_cut_to(config, depth, first), _cut_to(config, depth, first + period)))
    return None
