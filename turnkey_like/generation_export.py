"""A causal LM's generation as two ONNX graphs whose KV cache is an input and an output.

What ``generate()`` runs (:func:`turnkey_like.generation_trace.generate_loop`) is one *prefill* call
(the prompt, into an empty cache) and decode steps (one token each, appended to the cache). ONNX
Runtime has no cache object, so each call becomes a graph that takes the cache as tensors and
returns the grown one:

- ``generation_prefill.onnx``: inputs ``input_ids`` [B, P] and ``position_ids`` [B, P]; outputs
  ``logits`` [B, 1, V] (the last position, as ``generate()`` keeps it with ``logits_to_keep=1``)
  and ``present.{i}.key`` / ``present.{i}.value`` [B, K, P, h] for every cache layer i;
- ``generation_decode.onnx``: inputs ``input_ids`` [B, 1], ``position_ids`` [B, 1] and
  ``past_key_values.{i}.key`` / ``past_key_values.{i}.value`` [B, K, S, h], S dynamic
  (``past_sequence_length``); outputs ``logits`` [B, 1, V] and ``present.{i}.key`` / ``.value``
  [B, K, S + 1, h]. One graph serves every decode step: a step feeds the last one's ``present``
  back as its ``past_key_values``.

The names are those of Hugging Face Optimum's ONNX decoder exports (``OnnxConfigWithPast
.add_past_key_values``: ``past_key_values.{i}.key/value`` in, ``present.{i}.key/value`` out, the
sequence axis dynamic), so a user's tools for those files read these. The graph is a small wrapper
module (:func:`cache_io_module`) that rebuilds transformers' ``DynamicCache`` from the flat tensors
(``DynamicCache(ddp_cache_data=...)``, as transformers' own pytree unflattening for
``torch.export`` does, ``transformers.integrations.executorch._unflatten_dynamic_cache``), calls the
model, and returns the cache's layers flat. transformers' ExecuTorch recipes
(``TorchExportableModuleForDecoderOnlyLM``, ``convert_and_export_with_cache``) keep the cache as
module state (a ``StaticCache`` buffer mutated in place), which ONNX Runtime cannot carry from one
``run`` to the next; hence inputs and outputs here.

Each graph is traced with ``torch.export`` (non-strict) and converted by ``torch.onnx.export``'s
dynamo exporter at the recorded batch and prompt length, weights as external data beside each file.
Limits (raised as :class:`~turnkey_like.errors.BuildError` with the reason): decoder-only models
only; a cache with sliding-window layers is refused (transformers' ``DynamicSlidingWindowLayer``
counts the positions it has seen, which a tensor of the stored ones does not carry, so a restored
layer would mask wrongly once its window is full).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from turnkey_like.errors import BuildError

if TYPE_CHECKING:
    import torch

PREFILL_NAME = "generation_prefill.onnx"
DECODE_NAME = "generation_decode.onnx"
#: the name of the decode graph's dynamic axis (positions already in the cache)
PAST_AXIS = "past_sequence_length"


@dataclass
class GenerationGraphs:
    """The two exported graphs of one generation (see the module doc).

    Attributes:
        prefill_path, decode_path: the ONNX files (their weights in ``<file>.data`` beside them).
        layers: cache layers (each gives a ``.key`` and a ``.value`` input and output).
        past_inputs: the decode graph's cache inputs, in order (``past_key_values.0.key``, ...).
        outputs: both graphs' outputs, in order (``logits``, ``present.0.key``, ...).
        batch_size, prompt_tokens: the static B and P the graphs were exported at.
        opset: the ONNX opset.
    """

    prefill_path: str
    decode_path: str
    layers: int
    batch_size: int
    prompt_tokens: int
    opset: int
    past_inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def cache_names(layers: int, prefix: str) -> list[str]:
    """``[prefix.0.key, prefix.0.value, prefix.1.key, ...]`` for ``layers`` cache layers (Optimum's naming)."""
    return [f"{prefix}.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def cache_io_module(model: torch.nn.Module) -> torch.nn.Module:
    """A module running one call of ``model`` with its KV cache as tensors: ``forward(input_ids,
    position_ids, *past)`` returns ``(logits, *present)``.

    ``past`` is each layer's key then value ([B, K, S, h]); none for the prefill, which starts from
    the empty cache ``generate()`` gives the model (:func:`turnkey_like.generation_trace.empty_cache`).
    ``present`` is the cache after the call, flat in the same order. The model gets
    ``logits_to_keep=1`` and ``position_ids`` where its forward takes them, as ``generate()`` passes them.
    """
    import torch

    from turnkey_like.generation_trace import empty_cache

    params = inspect.signature(model.forward).parameters
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    positions = "position_ids" in params

    class CacheIO(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, position_ids, *past):
            from transformers import DynamicCache

            cache = (DynamicCache(ddp_cache_data=list(zip(past[0::2], past[1::2]))) if past
                     else empty_cache(self.model))
            kwargs = {"position_ids": position_ids} if positions else {}
            out = self.model(input_ids=input_ids, past_key_values=cache, use_cache=True, **kwargs, **extra)
            flat = []
            for layer in out.past_key_values.layers:
                flat += [layer.keys, layer.values]
            return (out.logits, *flat)

    return CacheIO()


def _check_exportable(model) -> None:
    """Raise :class:`BuildError` for a model whose generation these graphs cannot carry (module doc)."""
    from turnkey_like.generation_trace import empty_cache
    from turnkey_like.kv_cache import layer_windows

    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        raise BuildError("the generation export covers decoder-only models; this one is an encoder-decoder",
                         hint="its generation is measured on torch eager only")
    if any(w is not None for w in layer_windows(empty_cache(model))):
        raise BuildError("the KV cache has sliding-window layers, whose seen-position count the ONNX cache "
                         "tensors cannot carry", hint="its generation is measured on torch eager only")


def _export_one(wrapper, args: tuple, dynamic_shapes, path: Path, input_names: list[str],
                output_names: list[str], opset: int) -> None:
    """Trace ``wrapper`` on ``args`` with ``torch.export`` (non-strict) and write it to ``path`` with
    the dynamo ONNX exporter, weights as external data (``<path>.data``)."""
    import torch

    for stale in (path, path.with_name(path.name + ".data")):
        if stale.exists():
            stale.unlink()
    with torch.no_grad():
        program = torch.export.export(wrapper, args, dynamic_shapes=dynamic_shapes, strict=False)
        torch.onnx.export(program, (), os.fspath(path), dynamo=True, opset_version=opset, input_names=input_names,
                          output_names=output_names, external_data=True, optimize=True)


def export_generation(model: torch.nn.Module, input_ids: torch.Tensor, folder: str | Path, *,
                      opset: int = 18) -> GenerationGraphs:
    """Export the prefill and decode-step graphs of ``model`` generating from ``input_ids`` into
    ``folder`` (:data:`PREFILL_NAME`, :data:`DECODE_NAME`, see the module doc).

    Args:
        model: a decoder-only causal LM taking a transformers KV cache (eval mode).
        input_ids: the prompt, [B, P] token ids; B and P are the graphs' static sizes.
        folder: where the files go (the invocation's build folder).
        opset: ONNX opset.

    Raises:
        BuildError: the model is not one these graphs carry (encoder-decoder, sliding-window cache),
            or tracing or conversion failed (the exporter's one-line reason).
    """
    import torch

    from turnkey_like.errors import one_line

    _check_exportable(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = cache_io_module(model)
    batch, prompt = (int(d) for d in input_ids.shape)
    positions = torch.arange(prompt, device=input_ids.device).expand(batch, prompt)
    with torch.no_grad():
        first = wrapper(input_ids, positions)
    layers = (len(first) - 1) // 2
    outputs = ["logits"] + cache_names(layers, "present")
    past_names = cache_names(layers, "past_key_values")
    graphs = GenerationGraphs(prefill_path=os.fspath(folder / PREFILL_NAME), decode_path=os.fspath(folder / DECODE_NAME),
                              layers=layers, batch_size=batch, prompt_tokens=prompt, opset=opset,
                              past_inputs=past_names, outputs=outputs)
    step = "prefill"
    try:
        _export_one(wrapper, (input_ids, positions), None, Path(graphs.prefill_path), ["input_ids", "position_ids"],
                    outputs, opset)
        step = "decode step"
        token = first[0][:, -1:].argmax(-1)
        past_axis = torch.export.Dim(PAST_AXIS, min=1)
        shapes = {"input_ids": None, "position_ids": None, "past": tuple({2: past_axis} for _ in first[1:])}
        _export_one(wrapper, (token, torch.full((batch, 1), prompt, device=input_ids.device), *first[1:]), shapes,
                    Path(graphs.decode_path), ["input_ids", "position_ids"] + past_names, outputs, opset)
    except Exception as exc:  # noqa: BLE001 - the exporter's many failure types become one reason
        raise BuildError(f"ONNX export of the {step} graph failed: {one_line(exc)}") from exc
    return graphs
