"""A deep model's generation from two shallow copies of it: its decode steps counted once per depth.

A decoder's layers repeat: the 80 layers of a 70B Llama are one layer 80 times, Gemma 2's alternate a
sliding-window and a global one. Between two depths that differ by whole periods of that repetition
the model gains only copies of the same block of layers, each with the same KV-cache state (every
full-attention layer holds the same positions, every sliding-window one the same window), so each
additive figure of a generation (MACs, FLOPs, every byte count, roofline time: sums over ops) is
affine in the number of periods. Counting the generation on two copies, ``d1`` and ``d2 = d1 +
period`` layers deep, gives it at depth ``L`` exactly: ``f(L) = f(d1) + (L - d1) / period · (f(d2) -
f(d1))``. Per module, the layers of the model are those of the deeper copy: layer ``i < d2`` is the
copy's own, a later one that of the same place in the copy's last block (``d1 + (i - d1) mod
period``); the modules above the layers (the model, the stack's parents) follow the line, and those
beside them (embeddings, final norm, LM head) are the same at every depth.

Which depths (``d1``, the period) is the zoo's to say, from the model's layers and config
(:func:`turnkey_like.zoo.repeating_layers`); the copies are the library's own model built with fewer
layers (:func:`turnkey_like.zoo.depth_copies`). Here they are counted and the line drawn; it is
checked on the one phase counted at full depth anyway: the prefill the copies give by the line must
be the model's own, figure for figure, or the copies are not used (:func:`generation_by_depth`
returns why). The prefill phase, TTFT, parameters and cache geometry of the record are the model's
own; the decode phase, the KV cache at the end and the active parameters come from the line.

Why: counting one decode step of a 70B config on meta costs about as much as its prefill, and the
three steps each segment needs, with two more full-depth forwards to reach them, made
``--generate 2048:256`` cost 2.7 × ``--seq-len 2048``; the two copies, 2 and 3 layers deep, cost
0.4 s together (docs/generation.md, benchmarks/generation_speed.py).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from turnkey_like.characterize.generation import (TRUNCATED, Decode, assemble_generation, counted_generation,
                                                  decode_phase, kv_cache_bytes, prefill_phase)
from turnkey_like.generation_trace import GenerationTrace
from turnkey_like.kv_cache import LayerKV
from turnkey_like.records import Characterization, Generation, GenerationPhase, ModuleRow, StepCost

#: The additive integer figures of a phase.
_PHASE_FIGURES = ("macs", "macs_causal", "flops", "bytes_weights", "bytes_kv_read", "bytes_kv_write",
                  "bytes_activations")
#: The additive integer figures of a module row (the rest: its place in the tree, or derived).
_MODULE_FIGURES = ("macs", "flops", "bytes_read", "bytes_written", "params", "param_bytes", "ops", "self_macs",
                   "self_flops", "self_bytes", "self_params", "self_ops")


class CopyGeneration(NamedTuple):
    """One copy's generation, in the pieces the model's record is drawn from."""

    depth: int
    prompt_tokens: int
    prefill: GenerationPhase
    decode: Decode | None
    kv_bytes: int
    notes: list[str]  # the decode phase's (the prefill's are the model's own)


def count_copy(depth: int, model, prompt: dict, new_tokens: int, *, hardware, no_weights: bool) -> CopyGeneration:
    """Count the generation of ``model``, a copy ``depth`` layers deep, as
    :func:`~turnkey_like.characterize.generation.characterize_generation` does (``prompt``: its
    inputs), into a :class:`CopyGeneration`."""

    def use(trace, prefill, geometry, count, *, batch_size):
        prefill_notes: list[str] = []
        notes: list[str] = []
        first = prefill_phase(trace, prefill, geometry, prefill_notes)
        decode = decode_phase(trace, geometry, count, prefill.hardware, notes) if trace.steps else None
        if trace.truncated:
            decode = decode._replace(exact=False) if decode else None
            notes.append(TRUNCATED)
        return CopyGeneration(depth, trace.prompt_tokens, first, decode, kv_cache_bytes(trace, geometry), notes)

    return counted_generation(model, prompt, new_tokens, use, hardware=hardware, no_weights=no_weights)


def _at(a, b, periods: int):
    """``a + periods · (b - a)``: the line through a figure at two depths, ``periods`` periods past
    the first (integers stay integers)."""
    return a + (b - a) * periods


def _layer_of(path: str, stacks: tuple[str, ...]) -> tuple[str, int, str] | None:
    """``(stack, index, rest)`` when ``path`` is layer ``index`` of one of ``stacks`` or inside it
    (``model.layers.3.mlp`` -> ``("model.layers", 3, ".mlp")``), else ``None``."""
    for stack in stacks:
        if path.startswith(stack + "."):
            head, _, rest = path[len(stack) + 1:].partition(".")
            if head.isdigit():
                return stack, int(head), "." + rest if rest else ""
    return None


def _renamed(row: ModuleRow, stack: str, index: int) -> ModuleRow:
    """``row`` (a module of layer ``j`` of ``stack``) as the same module of layer ``index``."""

    def move(path: str | None) -> str | None:
        found = _layer_of(path, (stack,)) if path is not None else None
        return path if found is None else f"{stack}.{index}{found[2]}"

    return msgspec.structs.replace(row, path=move(row.path), parent=move(row.parent))


def _module_at(a: ModuleRow, b: ModuleRow, periods: int, profile) -> ModuleRow:
    """A module beside or above the layers, at the model's depth: its figures on the line; intensity
    and bound those of the result (as the decode phase's module sums derive them)."""
    from turnkey_like.characterize.roofline import classify

    kw = {f: _at(getattr(a, f), getattr(b, f), periods) for f in _MODULE_FIGURES}
    nbytes = kw["bytes_read"] + kw["bytes_written"]
    return msgspec.structs.replace(
        a, **kw, roofline_time_s=_at(a.roofline_time_s, b.roofline_time_s, periods),
        arithmetic_intensity=kw["flops"] / nbytes if nbytes else None,
        bound=classify(kw["flops"], nbytes, profile, None))


def _modules(shallow: list[ModuleRow], deep: list[ModuleRow], depths: tuple[int, int], depth: int,
             stacks: tuple[str, ...], profile) -> list[ModuleRow] | str:
    """The decode phase's module rows at ``depth`` layers from the copies' (``shallow`` and ``deep``,
    ``depths`` layers deep; module docstring), in the deeper copy's order with each stack's layers
    repeated; or why they cannot be (a module one copy lacks, a stack's layers not in one run)."""
    first, second = depths
    period, periods = second - first, (depth - first) // (second - first)
    by_path = {m.path: m for m in shallow}
    out: list[ModuleRow] = []
    i = 0
    while i < len(deep):
        found = _layer_of(deep[i].path, stacks)
        if found is None:
            other = by_path.get(deep[i].path)
            if other is None:
                return f"module {deep[i].path!r} is in the copy {second} layers deep, not in the one {first} deep"
            out.append(_module_at(other, deep[i], periods, profile))
            i += 1
            continue
        stack = found[0]
        layers: dict[int, list[ModuleRow]] = {}
        while i < len(deep) and (found := _layer_of(deep[i].path, stacks)) is not None and found[0] == stack:
            layers.setdefault(found[1], []).append(deep[i])
            i += 1
        if list(layers) != list(range(second)):
            return f"the modules of {stack} are not its {second} layers in order, in one run"
        for index in range(depth):
            source = index if index < second else first + (index - first) % period
            out += [_renamed(row, stack, index) for row in layers[source]]
    return out


def _step_at(a: StepCost | None, b: StepCost | None, periods: int) -> StepCost | None:
    if a is None or b is None:
        return None
    return msgspec.structs.replace(a, macs=_at(a.macs, b.macs, periods), flops=_at(a.flops, b.flops, periods),
                                   bytes=_at(a.bytes, b.bytes, periods),
                                   roofline_time_s=_at(a.roofline_time_s, b.roofline_time_s, periods))


def _decode_at(a: GenerationPhase, b: GenerationPhase, periods: int,
               modules: list[ModuleRow]) -> GenerationPhase:
    return msgspec.structs.replace(a, **{f: _at(getattr(a, f), getattr(b, f), periods) for f in _PHASE_FIGURES},
                                   roofline_time_s=_at(a.roofline_time_s, b.roofline_time_s, periods),
                                   step_first=_step_at(a.step_first, b.step_first, periods),
                                   step_last=_step_at(a.step_last, b.step_last, periods), modules=modules)


def generation_by_depth(trace: GenerationTrace, prefill: Characterization, geometry: list[LayerKV | None],
                        copies: list[tuple[int, object, dict]], *, depth: int, stacks: tuple[str, ...],
                        batch_size: int, no_weights: bool) -> Generation | str:
    """The :class:`~turnkey_like.records.Generation` of ``trace``, its decode figures drawn from two
    copies of the model (module docstring), or why they cannot give it (a one-line reason).

    Args:
        trace: the model's generation as discovery saw it (its decode steps need not have been
            counted: :attr:`~turnkey_like.generation_trace.GenerationTrace.counted_elsewhere`).
        prefill: the model's prefill, counted (its hardware profile is the generation's).
        geometry: the model's KV-cache geometry (:func:`~turnkey_like.characterize.generation.geometry_of`).
        copies: ``(depth, model, prompt inputs)`` of the two copies, shallower first, whose stacks
            hold the model's first layers; ``depth - copies[0][0]`` a whole number of periods
            ``copies[1][0] - copies[0][0]``.
        depth: the model's layers per stack.
        stacks: module paths of the stacks (``model.layers``).
        batch_size: the sequences generated together.
        no_weights: count the copies on meta tensors.
    """
    (first, low_model, low_prompt), (second, high_model, high_prompt) = copies
    periods, left = divmod(depth - first, second - first)
    if left or second <= first:
        return f"depth {depth} is not copies {first} and {second} deep plus whole periods"
    hardware = prefill.hardware
    low, high = (count_copy(d, m, p, trace.new_tokens, hardware=hardware, no_weights=no_weights)
                 for d, m, p in ((first, low_model, low_prompt), (second, high_model, high_prompt)))
    notes: list[str] = []
    own = prefill_phase(trace, prefill, geometry, notes)
    for f in _PHASE_FIGURES:
        line = _at(getattr(low.prefill, f), getattr(high.prefill, f), periods)
        if line != getattr(own, f):
            return f"prefill {f}: {line} from copies {first} and {second} deep, {getattr(own, f)} counted"
    if (low.prompt_tokens, high.prompt_tokens) != (trace.prompt_tokens,) * 2:
        return f"the copies' prompts ({low.prompt_tokens}, {high.prompt_tokens}) are not {trace.prompt_tokens}"
    phases = [own]
    first_weight_bytes = 0
    exact = not trace.truncated
    kv_bytes = kv_cache_bytes(trace, geometry)
    if trace.steps:
        if low.decode is None or high.decode is None or {low.decode.phase.steps, high.decode.phase.steps} != {
                len(trace.steps)}:
            return f"the copies' decode steps are not the model's {len(trace.steps)}"
        modules = _modules(low.decode.phase.modules, high.decode.phase.modules, (first, second), depth, stacks,
                           hardware)
        if isinstance(modules, str):
            return modules
        phases.append(_decode_at(low.decode.phase, high.decode.phase, periods, modules))
        first_weight_bytes = _at(low.decode.first_weight_bytes, high.decode.first_weight_bytes, periods)
        kv_bytes = _at(low.kv_bytes, high.kv_bytes, periods)
        exact = exact and low.decode.exact and high.decode.exact
        notes.append(f"decode counted on copies {first} and {second} layers deep of {depth} "
                     f"({', '.join(stacks)}; layers repeat every {second - first} from layer {first}), "
                     f"each figure on the line through them; the prefill, counted at full depth, is on it")
        notes += high.notes
    return assemble_generation(trace, prefill, geometry, phases, batch_size=batch_size, exact=exact, notes=notes,
                               first_weight_bytes=first_weight_bytes, kv_bytes=kv_bytes)
