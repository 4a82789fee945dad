"""A named model (``--model NAME``) discovered as a script's model is: built by the zoo, called once
through discovery's hook.

Lives in the zoo, above discovery (``zoo`` imports ``discovery``; discovery knows nothing of names).
"""

from __future__ import annotations

from turnkey_like.discovery import Discovery, discover
from turnkey_like.inputs import InputSpec


def discover_named(spec: InputSpec, *, max_depth: int = 0, on_found=None) -> Discovery:
    """Build a named model (``spec.model``, ``--model NAME``) and discover it from one forward call.

    The model and its inputs come from :func:`turnkey_like.zoo.load`; the call goes through the
    same hook as a script's, so a named model gives the same records, hashes and submodules. The
    top-level model is named as the user named it.

    Raises:
        InputError: the name is unknown (closest names suggested), its package is missing, or its
            config cannot be read offline (from :func:`turnkey_like.zoo.load`).
    """
    from turnkey_like.zoo import forward, load

    loaded = load(spec.model)
    discovery = discover(spec, max_depth=max_depth, on_found=on_found, call=lambda: forward(loaded))
    result = discovery.result
    result.path = spec.model.name
    result.model_request = loaded.request
    result.notes = list(loaded.notes) + result.notes  # the loader's, then discovery's own
    for model in result.models:
        model.name = spec.model.name
        model.source_file, model.source_line, model.location_kind = None, None, "named"
    return discovery
