"""The characterization stage's generation: a prefill's :class:`~turnkey_like.records.Generation`,
counted from what discovery saw, or, for a named model whose layers repeat, from copies of it at two
depths (``characterize.generation_depth``).

Lives in the pipeline because it joins the zoo (which builds the copies) and characterize (which
counts them); neither imports the other.
"""

from __future__ import annotations

from typing import Callable

from turnkey_like.errors import InputError
from turnkey_like.generation_trace import GenerationTrace
from turnkey_like.records import Characterization, Generation, ModelRequest

#: The prompt inputs of a named model's generation (``zoo.transformers_models._PROMPT_INPUTS``).
_PROMPT = ("input_ids", "input_features", "input_values")


def generation_of(model, args: tuple, kwargs: dict, request: ModelRequest | None, trace: GenerationTrace,
                  prefill: Characterization, count: Callable[[tuple, dict], Characterization]) -> Generation:
    """The Generation of ``trace``, whose prefill call ``model(*args, **kwargs)`` counted as ``prefill``
    (``count`` counts another call the same way).

    A trace whose decode steps ran in full enough to be counted is counted from its copies of them
    (:func:`~turnkey_like.characterize.generation.generation_record`). One whose loop ran a single
    decode step (:attr:`~turnkey_like.generation_trace.GenerationTrace.counted_elsewhere`: a named
    model on meta whose layers repeat, ``zoo.forward``) is counted on two copies of the model
    (:func:`turnkey_like.zoo.depth_copies`,
    :func:`~turnkey_like.characterize.generation_depth.generation_by_depth`); where they cannot give
    it (a copy does not build, or the line through them misses the prefill counted at full depth)
    the model's generation runs again and is counted at full depth, with the reason in its notes.
    """
    from turnkey_like.characterize.generation import generation_record, geometry_of

    geometry = geometry_of(trace, (args, kwargs))
    batch = next((g.batch for g in geometry if g is not None), 1)
    if not trace.counted_elsewhere:
        return generation_record(trace, prefill, geometry, count, batch_size=batch)
    from turnkey_like import zoo
    from turnkey_like.characterize.generation_depth import generation_by_depth

    layers = zoo.repeating_layers(model, request) if request is not None else None
    why = "its layers do not repeat"
    if layers is not None:
        try:
            copies = zoo.depth_copies(model, request, layers)
        except InputError as e:
            why = e.message
        else:
            record = generation_by_depth(trace, prefill, geometry,
                                         [(d, c.model, c.kwargs) for d, c in zip(layers.depths, copies)],
                                         depth=layers.depth, stacks=layers.stacks, batch_size=batch, no_weights=True)
            if not isinstance(record, str):
                return record
            why = record
    return _at_full_depth(model, kwargs, trace, prefill, why)


def _at_full_depth(model, kwargs: dict, trace: GenerationTrace, prefill: Characterization, why: str) -> Generation:
    """The generation of ``trace`` run again on ``model`` (on meta) and counted at full depth, as
    :func:`~turnkey_like.characterize.generation.characterize_generation` counts it; ``why`` the
    copies were not used goes into its notes."""
    import torch

    from turnkey_like.characterize.generation import characterize_generation

    prompt = {k: torch.empty(tuple(v.shape), dtype=v.dtype, device="meta") for k, v in kwargs.items() if k in _PROMPT}
    record = characterize_generation(model, prompt.pop("input_ids", None), trace.new_tokens, hardware=prefill.hardware,
                                     no_weights=True, **prompt)
    record.notes.append(f"decode counted at full depth, not on copies of the model: {why}")
    return record
