"""Named models without a script: a name becomes a module and example inputs (``--model NAME``).

Sources, and how :func:`model_source` picks one from a name (first rule that matches):

1. ``package.module:factory`` or ``path/file.py:factory`` -> ``factory``: your own callable,
   called with ``--model-args`` JSON as keyword arguments.
2. ``timm/NAME`` -> ``timm`` (``timm.create_model(NAME, pretrained=False)``).
3. ``*.yaml`` / ``*.yml`` / ``*.pt`` -> ``ultralytics`` (a ``.pt`` file is a pickle: it is loaded only
   because the user named that file; nothing is downloaded).
4. a folder holding ``config.json`` -> ``transformers``.
5. a name in ``torchvision.models.list_models()`` -> ``torchvision``.
6. a transformers model type (``bert``, ``llama``, ``detr``...) -> ``transformers``.
7. anything else -> ``transformers``, read as a hub name (``bert-base-uncased``,
   ``facebook/detr-resnet-50``): its config comes from the local hub cache, or the network when
   there is one. When that fails, the error lists the closest known names of every source.

The loaders (one module per source) import their library only when used. Every loader returns a
:class:`LoadedModel`: the module in eval mode, example inputs synthesized from the request's seed,
the request with every default it used filled in, and notes naming each override it made.
"""

from __future__ import annotations

import difflib
import itertools
import re
from pathlib import Path

import msgspec

from turnkey_like.errors import InputError
from turnkey_like.records import ModelRequest
from turnkey_like.zoo.base import META_THRESHOLD_PARAMS, SOURCES, LoadedModel

__all__ = ["LoadedModel", "META_THRESHOLD_PARAMS", "SOURCES", "ModelRequest", "expand_sweep",
           "list_names", "load", "model_source", "shallow", "stem", "closest_names", "forward"]

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_FILE_FACTORY = re.compile(r"^.+\.py:[A-Za-z_][\w.]*$")

# Which sizes each source's models take; a sweep axis a source never uses is dropped.
_SOURCE_AXES = {
    "torchvision": {"batch_size", "seq_len", "imgsz"},  # seq_len = frames of video models
    "transformers": {"batch_size", "seq_len", "imgsz"},
    "ultralytics": {"batch_size", "imgsz"},
    "timm": {"batch_size", "imgsz"},
    "factory": {"batch_size", "seq_len", "imgsz"},
}


def model_source(name: str) -> str:
    """The source a model name resolves to; the rule is the module docstring's list, in order.

    Touches only the file system (rules 3-4) and torchvision's name list (rule 5); never the network.
    """
    if _FILE_FACTORY.match(name) or (_FACTORY.match(name) and not Path(name).exists()):
        return "factory"
    if name.startswith("timm/"):
        return "timm"
    if name.lower().endswith((".yaml", ".yml", ".pt")):
        return "ultralytics"
    if (Path(name) / "config.json").is_file():
        return "transformers"
    from turnkey_like.zoo import torchvision_models

    if name in torchvision_models.names():
        return "torchvision"
    return "transformers"


def _loader(source: str):
    """The loader module of ``source``."""
    if source == "torchvision":
        from turnkey_like.zoo import torchvision_models as module
    elif source == "transformers":
        from turnkey_like.zoo import transformers_models as module
    elif source == "ultralytics":
        from turnkey_like.zoo import ultralytics_models as module
    elif source == "timm":
        from turnkey_like.zoo import timm_models as module
    elif source == "factory":
        from turnkey_like.zoo import factory as module
    else:
        raise InputError(f"unknown model source {source!r}", hint=f"use one of: {', '.join(SOURCES)}")
    return module


def load(request: ModelRequest) -> LoadedModel:
    """Build the named model of ``request`` and its example inputs.

    ``request.source`` ``""`` is resolved with :func:`model_source`. The returned request has the
    source and every default used filled in (see :class:`LoadedModel`).

    Raises:
        InputError: unknown name (with the closest known names), offline hub name not in the local
            cache, missing optional package (timm, transformers, ultralytics), bad input shape,
            or a factory that fails; always one line plus a hint.
    """
    source = request.source or model_source(request.name)
    if source not in SOURCES:
        raise InputError(f"unknown model source {source!r}", hint=f"use one of: {', '.join(SOURCES)}")
    module = _loader(source)
    return module.load(msgspec.structs.replace(request, source=source))


def shallow(loaded: LoadedModel, keep: int = 2) -> tuple[LoadedModel, dict[str, tuple[int, int]]] | None:
    """A copy of ``loaded`` built with each stack of repeated layers cut to the shortest prefix
    that holds every distinct layer (twice, when once does not build), on ``meta``, with the same
    inputs; and what was cut (``{config key: (kept, of)}``). ``None`` when there is nothing to cut.

    A source whose loader has ``shallow_overrides(model, keep, repeats)`` (transformers:
    :func:`turnkey_like.zoo.transformers_models.shallow_overrides`) builds the copy through
    ``model_args``, so it is the library's own model at a smaller depth, with every kind of layer in
    order. ``tk discover-models`` traces such a copy of a model built on meta, whose full depth (30
    to 90 layers) costs ``torch.export`` a minute or more while the copy decides the same trace
    method. Other sources: ``None``.

    Raises:
        InputError: the copy did not build, or came out no shallower (the caller uses the model).
    """
    overrides_of = getattr(_loader(loaded.request.source), "shallow_overrides", None)
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


def list_names(source: str) -> list[str]:
    """Known names of ``source``, sorted.

    torchvision: ``torchvision.models.list_models()``; transformers: model types that have a base
    model class (``AutoModel``); ultralytics: the ``*.yaml`` definitions it ships, one per scale
    (``yolov8n.yaml``); timm: ``timm.list_models()`` with the ``timm/`` prefix; factory: none.

    Raises:
        InputError: unknown source, or the source's package is not installed.
    """
    if source == "factory":
        return []
    return _loader(source).names()


def closest_names(name: str, n: int = 5) -> list[str]:
    """Up to ``n`` known names of every installed source closest to ``name`` (difflib ratio)."""
    known: list[str] = []
    for source in ("torchvision", "transformers", "ultralytics", "timm"):
        try:
            known += list_names(source)
        except InputError:  # source not installed
            continue
    bare: dict[str, str] = {}
    for k in known:  # torchvision's resnet50 before timm/resnet50
        bare.setdefault(k.removeprefix("timm/"), k)
    matches = difflib.get_close_matches(name.removeprefix("timm/"), list(bare), n=n, cutoff=0.6)
    return [bare[m] for m in matches]


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

    An empty list means "the request's own value". An axis the request's source never uses
    (``seq_len`` for ultralytics and timm) is not expanded, so a sweep gives no duplicate points;
    for sources whose use depends on the model (torchvision, transformers, factory) the loader
    sets the unused size to ``None`` in ``LoadedModel.request``, and equal loaded requests are the
    same point.
    """
    source = request.source or model_source(request.name)
    axes = _SOURCE_AXES.get(source, {"batch_size", "seq_len", "imgsz"})
    batch_sizes = batch_sizes or [request.batch_size]
    seq_lens = seq_lens if (seq_lens and "seq_len" in axes) else [request.seq_len]
    imgszs = imgszs if (imgszs and "imgsz" in axes) else [request.imgsz]
    return [msgspec.structs.replace(request, batch_size=b, seq_len=s, imgsz=i)
            for b, s, i in itertools.product(batch_sizes, seq_lens, imgszs)]


def stem(request: ModelRequest) -> str:
    """``<name>_<source>`` made safe as a folder name: the prefix of a named model's build folder.

    ``/``, ``:`` and other characters outside ``[A-Za-z0-9_.-]`` become ``-``; a path keeps its last
    component without its suffix (``models/yolov8n.yaml`` -> ``yolov8n``).
    """
    source = request.source or model_source(request.name)
    name = request.name
    if source in ("ultralytics",) or (source == "transformers" and Path(name).is_dir()):
        name = Path(name.rstrip("/")).stem if Path(name).suffix in (".yaml", ".yml", ".pt") else Path(
            name.rstrip("/")).name
    if source == "timm":
        name = name.removeprefix("timm/")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"
    return f"{safe}_{source}"


def forward(loaded: LoadedModel):
    """``loaded.model(*loaded.args, **loaded.kwargs)`` under ``torch.no_grad()``; the outputs.

    A model on ``meta`` runs under ``FakeTensorMode`` with its inputs made fake: shapes propagate,
    and library code that reads values (``.item()``, ``.all()``) sees a fake tensor, which
    transformers treats as tracing and skips. The outputs are then fake (``meta``) tensors. The ops
    that torch's meta kernels cannot run as the CPU would run by the rules the counter counts with
    (:data:`turnkey_like.meta_kernels.RULES`, through ``meta_kernels.WithoutData``): a boolean read of
    a meta tensor takes the plain case (``True``), grouped matrix products (transformers' MoE experts)
    in float32 get the CPU kernel's output.
    """
    import torch

    with torch.no_grad():
        if not loaded.on_meta:
            return loaded.model(*loaded.args, **loaded.kwargs)
        from torch._subclasses.fake_tensor import FakeTensorMode

        from turnkey_like.calls import map_tensors
        from turnkey_like.meta_kernels import WithoutData

        mode = FakeTensorMode(allow_non_fake_inputs=True)
        args, kwargs = map_tensors(mode.from_tensor, (loaded.args, loaded.kwargs))
        with mode, WithoutData():
            return loaded.model(*args, **kwargs)
