"""Named models without a script: a name becomes a module and example inputs (``--model NAME``).

Sources are plug-ins (:mod:`turnkey_like.zoo.sources`): each is one module implementing
:class:`~turnkey_like.zoo.sources.Source`, registered in :data:`SOURCES` (torchvision,
transformers, ultralytics, timm, and ``factory``: your own callable). Every function here asks the
registry, never a source by name.

How :func:`model_source` picks one from a name: the sources' ``claims`` in ascending priority, the
first that matches (the table in :mod:`turnkey_like.zoo.sources`):

1. ``package.module:factory`` or ``path/file.py:factory`` -> ``factory``: your own callable,
   called with ``--model-args`` JSON as keyword arguments.
2. ``timm/NAME`` -> ``timm`` (``timm.create_model(NAME, pretrained=False)``).
3. ``*.yaml`` / ``*.yml`` / ``*.pt`` -> ``ultralytics`` (a ``.pt`` file is a pickle: it is loaded only
   because the user named that file; nothing is downloaded).
4. a folder holding ``config.json`` -> ``transformers``.
5. a name in ``torchvision.models.list_models()`` -> ``torchvision``.
6. anything else -> ``transformers`` (:data:`~turnkey_like.zoo.sources.FALLBACK`): a model type
   (``bert``, ``llama``, ``detr``...), else a hub name (``bert-base-uncased``,
   ``facebook/detr-resnet-50``) whose config comes from the local hub cache, or the network when
   there is one. When that fails, the error lists the closest known names of every source.

The loaders (one module per source) import their library only when used. Every loader returns a
:class:`LoadedModel`: the module in eval mode, example inputs synthesized from the request's seed,
the request with every default it used filled in, and notes naming each override it made.
"""

from __future__ import annotations

import difflib
import itertools
import re

import msgspec

from turnkey_like.errors import InputError
from turnkey_like.records import ModelRequest
from turnkey_like.zoo import sources
from turnkey_like.zoo.base import META_THRESHOLD_PARAMS, LoadedModel, RepeatingLayers
from turnkey_like.zoo.sources import SOURCES, Source, source_names, source_packages

__all__ = ["LoadedModel", "META_THRESHOLD_PARAMS", "SOURCES", "ModelRequest", "RepeatingLayers", "Source",
           "expand_sweep", "list_names", "load", "model_source", "preload", "shallow", "stem", "closest_names", "forward",
           "source_names", "source_packages", "DTYPES", "DEFAULTED", "to_dtype", "repeating_layers", "depth_copies"]


def model_source(name: str) -> str:
    """The source a model name resolves to: the first source, by priority, that claims it, else
    :data:`~turnkey_like.zoo.sources.FALLBACK` (the module docstring's list).

    The built-in sources' claims touch only the file system (rules 1, 3, 4) and torchvision's name
    list (rule 5); never the network.
    """
    for source in sources.by_priority():
        if source.claims(name):
            return source.name
    return sources.FALLBACK


def load(request: ModelRequest) -> LoadedModel:
    """Build the named model of ``request`` and its example inputs.

    ``request.source`` ``""`` is resolved with :func:`model_source`. The returned request has the
    source and every default used filled in (see :class:`LoadedModel`), and names them in
    ``defaulted`` (:data:`DEFAULTED`). ``request.dtype`` (``--dtype``) puts the floating-point
    weights and inputs in that dtype (:func:`to_dtype`).

    Raises:
        InputError: unknown name (with the closest known names), offline hub name not in the local
            cache, missing optional package (timm, transformers, ultralytics), bad input shape,
            or a factory that fails; always one line plus a hint.
    """
    source = request.source or model_source(request.name)
    if request.new_tokens and source not in ("transformers", "factory"):
        raise InputError(f"{request.name}: --generate needs a model that generates text ({source} models do not)",
                         hint="name a transformers causal LM (llama, gpt2, mistral, ...) or a seq2seq model (t5)")
    if request.dtype is not None and request.dtype not in DTYPES:
        raise InputError(f"--dtype {request.dtype}: unknown", hint=f"choose one of: {', '.join(DTYPES)}")
    loaded = sources.get(source).load(msgspec.structs.replace(request, source=source))
    if request.dtype is not None:
        to_dtype(loaded, request.dtype)
    filled = [f for f in DEFAULTED if getattr(request, f) in (None, "") and getattr(loaded.request, f) not in (None, "")]
    loaded.request = msgspec.structs.replace(loaded.request, defaulted=filled)
    return loaded


#: ``--dtype`` names and the torch dtype each stands for.
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
#: The request fields a loader fills in when the request leaves them unset (``ModelRequest.defaulted``).
DEFAULTED = ("source", "batch_size", "seq_len", "imgsz", "no_weights")


def to_dtype(loaded: LoadedModel, name: str) -> None:
    """Put ``loaded``'s floating-point parameters and buffers (``Module.to(dtype)``) and its
    floating-point inputs in the dtype ``name`` (a key of :data:`DTYPES`), in place; integer tensors
    (token ids, masks, ``num_batches_tracked``) keep theirs. A note says so."""
    import torch

    from turnkey_like.calls import map_tensors

    dtype = getattr(torch, DTYPES[name])
    loaded.model.to(dtype)
    loaded.args, loaded.kwargs = map_tensors(lambda t: t.to(dtype) if t.is_floating_point() else t,
                                             (loaded.args, loaded.kwargs))
    loaded.notes.append(f"--dtype {name}: floating-point weights and inputs in {dtype}")


def shallow(loaded: LoadedModel, keep: int = 2) -> tuple[LoadedModel, dict[str, tuple[int, int]]] | None:
    """A copy of ``loaded`` built with each stack of repeated layers cut to the shortest prefix
    that holds every distinct layer (twice, when once does not build), on ``meta``, with the same
    inputs; and what was cut (``{config key: (kept, of)}``). ``None`` when there is nothing to cut.

    A source that has ``shallow_overrides(model, keep, repeats)`` (transformers:
    :func:`turnkey_like.zoo.transformers_models.shallow_overrides`) builds the copy through
    ``model_args``, so it is the library's own model at a smaller depth, with every kind of layer in
    order. ``tk discover-models`` traces such a copy of a model built on meta, whose full depth (30
    to 90 layers) costs ``torch.export`` a minute or more while the copy decides the same trace
    method. Other sources: ``None``.

    Raises:
        InputError: the copy did not build, or came out no shallower (the caller uses the model).
    """
    overrides_of = getattr(sources.get(loaded.request.source), "shallow_overrides", None)
    if overrides_of is None:
        return None
    import torch

    def layers(model) -> int:
        return sum(len(m) for m in model.modules() if isinstance(m, torch.nn.ModuleList))

    def build(repeats: int) -> tuple[LoadedModel, dict[str, tuple[int, int]]] | None:
        overrides, cuts = overrides_of(loaded.model, keep, repeats)
        if not overrides:
            return None
        copy = load(msgspec.structs.replace(loaded.request, no_weights=True,
                                            model_args={**(loaded.request.model_args or {}), **overrides}))
        if layers(copy.model) >= layers(loaded.model):
            raise InputError(f"{loaded.request.name}: the copy with {overrides} is no shallower")
        return copy, cuts

    try:
        return build(repeats=1)
    except InputError:  # each kind twice: a layer may share its weights with a later one of its kind
        return build(repeats=2)


def preload(requests: list[ModelRequest]) -> list[str]:
    """Import, in this process, what loading ``requests`` imports, for each source with two or more
    of them (its ``preload`` hook); returns the sources imported.

    A run forks one child per input (:class:`turnkey_like.pipeline.Pipeline`): each child would
    import the source's library again (transformers and its auto classes: about 1.6 s of each
    point of a 32-point ``--generate`` sweep), while after this the children inherit it. Nothing is
    built or downloaded. A source that fails to import is left to the children, whose error names
    the package to install.
    """
    by_source: dict[str, list[ModelRequest]] = {}
    for request in requests:
        by_source.setdefault(request.source or model_source(request.name), []).append(request)
    done = []
    for source, some in by_source.items():
        hook = getattr(sources.get(source), "preload", None) if source in SOURCES and len(some) > 1 else None
        if hook is None:
            continue
        try:
            hook(some)
        except Exception:  # noqa: BLE001 - each child reports its own import error, with its hint
            continue
        done.append(source)
    return done


def repeating_layers(model, request: ModelRequest) -> RepeatingLayers | None:
    """Where the named ``model`` (built for ``request``) has costs affine in its depth, so that two
    shallow copies give its generation's decode figures (:func:`depth_copies`); ``None`` when its
    source has no ``repeating_layers`` hook (transformers has:
    :func:`turnkey_like.zoo.transformers_layers.repeating_layers`), the model is not a generating one
    on ``meta`` (with real weights a mixture of experts routes by value, and copies have other
    weights), or its layers do not repeat."""
    if not (request.new_tokens and request.no_weights) or request.source not in SOURCES:
        return None
    hook = getattr(sources.get(request.source), "repeating_layers", None)
    return hook(model) if hook is not None else None


def depth_copies(model, request: ModelRequest, layers: RepeatingLayers) -> list[LoadedModel]:
    """The two copies of the named ``model`` that ``layers`` describes, ``layers.depths`` deep, built
    on ``meta`` for ``request`` with ``layers.overrides`` added to its ``model_args``.

    Raises:
        InputError: a copy did not build, or the layers of one of its stacks are not the model's
            first ones (by ``repr``).
    """
    copies = []
    for depth, overrides in zip(layers.depths, layers.overrides):
        copy = load(msgspec.structs.replace(request, no_weights=True,
                                            model_args={**(request.model_args or {}), **overrides}))
        for path in layers.stacks:
            ours, theirs = copy.model.get_submodule(path), model.get_submodule(path)
            if len(ours) != depth or any(repr(a) != repr(b) for a, b in zip(ours, theirs)):
                raise InputError(f"{request.name}: the copy with {overrides} does not hold the model's first "
                                 f"{depth} layers of {path}")
        copies.append(copy)
    return copies


def list_names(source: str) -> list[str]:
    """Known names of ``source``, sorted (its ``names()``).

    torchvision: ``torchvision.models.list_models()``; transformers: model types that have a base
    model class (``AutoModel``); ultralytics: the ``*.yaml`` definitions it ships, one per scale
    (``yolov8n.yaml``); timm: ``timm.list_models()`` with the ``timm/`` prefix; factory: none.

    Raises:
        InputError: unknown source, or the source's package is not installed.
    """
    return sources.get(source).names()


def closest_names(name: str, n: int = 5) -> list[str]:
    """Up to ``n`` known names of every installed source closest to ``name`` (difflib ratio).

    Names are compared without their source's ``prefix`` (``timm/``), on both sides; where two
    sources list the same bare name, the first source in :data:`SOURCES` order gives it
    (torchvision's ``resnet50`` before ``timm/resnet50``).
    """
    known: list[str] = []
    for source in sources.registered():
        try:
            known += source.names()
        except InputError:  # source not installed
            continue
    prefixes = [source.prefix for source in sources.registered() if source.prefix]

    def bare(text: str) -> str:
        return next((text.removeprefix(p) for p in prefixes if text.startswith(p)), text)

    by_bare: dict[str, str] = {}
    for k in known:
        by_bare.setdefault(bare(k), k)
    matches = difflib.get_close_matches(bare(name), list(by_bare), n=n, cutoff=0.6)
    return [by_bare[m] for m in matches]


def unknown_name(name: str, why: str = "") -> InputError:
    """The InputError for a name no source knows: ``why`` and the closest known names as the hint."""
    close = closest_names(name)
    message = f"unknown model {name!r}" + (f": {why}" if why else "")
    hint = f"closest known names: {', '.join(close)}" if close else (
        "see `tk discover-models --source SOURCE` for the names each source knows")
    return InputError(message, hint=hint)


def expand_sweep(request: ModelRequest, batch_sizes: list[int | None], seq_lens: list[int | None],
                 imgszs: list[int | None]) -> list[ModelRequest]:
    """One request per combination of the listed sizes, batch outermost, then seq_len, then imgsz.

    An empty list means "the request's own value". An axis the request's source never uses (not in
    its ``input_axes``: ``seq_len`` for ultralytics and timm) is not expanded, so a sweep gives no duplicate points
    (with one value or none per such axis there is no duplicate: the source is then not resolved, and the
    value stays in the request for its loader to drop);
    for sources whose use depends on the model (torchvision, transformers, factory) the loader
    sets the unused size to ``None`` in ``LoadedModel.request``, and equal loaded requests are the
    same point.
    """
    batch_sizes = batch_sizes or [request.batch_size]
    if len(seq_lens) < 2 and len(imgszs) < 2:  # no sweep along an axis: no duplicate point to avoid, so the
        seq_len = seq_lens[0] if seq_lens else request.seq_len  # name is not resolved (torchvision's claim
        imgsz = imgszs[0] if imgszs else request.imgsz  # imports it: 3 s); a loader drops a size it never uses
        return [msgspec.structs.replace(request, batch_size=b, seq_len=seq_len, imgsz=imgsz) for b in batch_sizes]
    source = request.source or model_source(request.name)
    axes = sources.get(source).input_axes if source in SOURCES else sources.AXES
    seq_lens = seq_lens if (seq_lens and "seq_len" in axes) else [request.seq_len]
    imgszs = imgszs if (imgszs and "imgsz" in axes) else [request.imgsz]
    return [msgspec.structs.replace(request, batch_size=b, seq_len=s, imgsz=i)
            for b, s, i in itertools.product(batch_sizes, seq_lens, imgszs)]


def stem(request: ModelRequest) -> str:
    """``<name>_<source>`` made safe as a folder name: the prefix of a named model's build folder.

    ``<name>`` is the source's ``stem(request)`` (a path keeps its last component without its suffix:
    ``models/yolov8n.yaml`` -> ``yolov8n``; ``timm/`` is dropped); ``/``, ``:`` and other characters
    outside ``[A-Za-z0-9_.-]`` become ``-``. A source no longer registered keeps the name as it is.
    """
    source = request.source or model_source(request.name)
    name = sources.get(source).stem(request) if source in SOURCES else request.name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"
    return f"{safe}_{source}"


def forward(loaded: LoadedModel):
    """``loaded.model(*loaded.args, **loaded.kwargs)`` under ``torch.no_grad()``; the outputs. With
    ``--generate P:N`` (``request.new_tokens``): the generation ``generate()`` runs
    (:func:`turnkey_like.generation_trace.generate_loop`: a prefill, then N−1 decode steps). Where
    copies of the model at two depths will give the decode steps' figures (:func:`repeating_layers`),
    the loop runs one decode step, which discovery needs to find the decode invocation, and leaves
    the rest to the tracker (``decode_steps=1``).

    A model on ``meta`` runs on its meta inputs as the counter counts it: shapes propagate, the ops
    that torch's meta kernels cannot run as the CPU would run by the counter's rules
    (:data:`turnkey_like.meta_kernels.RULES`, through ``meta_kernels.WithoutData``: a boolean read
    of a meta tensor takes the plain case, ``True``; grouped matrix products, transformers' MoE
    experts, in float32 get the CPU kernel's output), and attention runs the kernel the CPU would
    (``meta_kernels.FusedAttention``). The outputs are meta tensors. (It ran under ``FakeTensorMode``
    before, whose dispatch made each op about 4x slower: 1.4 s against 0.36 s for a
    70B Llama's 2048-token prefill.)
    """
    import torch

    new_tokens = loaded.request.new_tokens

    def run(args, kwargs):
        if not new_tokens:
            return loaded.model(*args, **kwargs)
        from turnkey_like.generation_trace import generate_loop

        by_depth = repeating_layers(loaded.model, loaded.request) is not None
        return generate_loop(loaded.model, kwargs, new_tokens, decode_steps=1 if by_depth else None)

    with torch.no_grad():
        if not loaded.on_meta:
            return run(loaded.args, loaded.kwargs)
        from turnkey_like.meta_kernels import FusedAttention, WithoutData

        with FusedAttention(), WithoutData():
            return run(loaded.args, loaded.kwargs)
