"""timm models: ``timm/NAME`` -> ``timm.create_model(NAME, pretrained=False)``.

``NAME`` is any ``timm.list_models()`` architecture, optionally with a pretrained tag
(``timm/resnet18.a1_in1k``), which picks that tag's pretrained config (input size). Weights are
random (seeded) unless ``pretrained`` (downloaded by timm from the hub). ``model_args`` become
``create_model`` keyword arguments (``{"num_classes": 10}``).

Input: ``x`` [B, C, H, W] standard-normal floats, (C, H, W) = the model's
``pretrained_cfg["input_size"]`` (e.g. (3, 224, 224)); imgsz replaces H and W. timm is an optional
dependency (extra ``timm``).

The :class:`~turnkey_like.zoo.sources.Source` of ``timm/NAME`` names (priority 20); timm and torch
are imported where used.
"""

from __future__ import annotations

import functools

import msgspec

from turnkey_like.errors import InputError
from turnkey_like.records import ModelRequest
from turnkey_like.zoo.base import DEFAULT_BATCH, LoadedModel, build_module, default, require

PREFIX = "timm/"

name = "timm"
package = "timm"
listed = True
closed_list = True
priority = 20
prefix = PREFIX
input_axes = frozenset({"batch_size", "imgsz"})


def preload(requests: list[ModelRequest]) -> None:
    """Import timm as :func:`load` does (:func:`turnkey_like.zoo.preload`).

    Raises:
        InputError: timm is not installed.
    """
    _require()


def _require():
    return require("timm", "timm")


def names() -> list[str]:
    """``timm/NAME`` for every architecture of ``timm.list_models()``, sorted."""
    return [PREFIX + n for n in sorted(_require().list_models())]


def claims(name: str) -> bool:
    """Whether ``name`` starts with ``timm/``."""
    return name.startswith(PREFIX)


def family(name: str) -> str:
    """The timm module that registers the model (``resnet``, ``vision_transformer``), else the name."""
    return _modules().get(name.removeprefix(PREFIX), name)


@functools.lru_cache(maxsize=1)
def _modules() -> dict[str, str]:
    """timm's model name -> the module that registers it (``timm.list_modules``/``list_models``)."""
    timm = _require()
    return {model: module for module in timm.list_modules() for model in timm.list_models(module=module)}


def constructor(name: str, model) -> tuple[str | None, list[str]]:
    """``lambda: timm.create_model("NAME", pretrained=False)`` and its import."""
    return f"lambda: timm.create_model({name.removeprefix(PREFIX)!r}, pretrained=False)", ["import timm"]


def stem(request: ModelRequest) -> str:
    """The name without ``timm/`` (``resnet18``)."""
    return request.name.removeprefix(PREFIX)


def load(request: ModelRequest) -> LoadedModel:
    """Build ``timm/NAME`` and its input (see the module docstring).

    Raises:
        InputError: timm missing, unknown architecture (closest names), or a build failure.
    """
    timm = _require()
    name = request.name.removeprefix(PREFIX)
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        from turnkey_like.zoo import unknown_name

        raise unknown_name(request.name, "not a timm architecture")
    notes: list[str] = []
    kwargs = dict(request.model_args or {})

    def make():
        return timm.create_model(name, pretrained=request.pretrained, **kwargs)

    model, on_meta = build_module(make, request, notes, hint="check --model-args against timm.create_model")
    cfg = getattr(model, "pretrained_cfg", None) or {}
    channels, height, width = cfg.get("input_size", (3, 224, 224))
    batch = default(request.batch_size, DEFAULT_BATCH)
    if request.imgsz is not None:
        height = width = request.imgsz
    unknown = sorted(set(request.input_shapes) - {"x"})
    if unknown:
        raise InputError(f"{request.name} takes no input {', '.join(unknown)}", hint="its input is: x")
    shape = list(request.input_shapes.get("x", [batch, channels, height, width]))
    from turnkey_like.zoo.inputs import Synthesizer

    synth = Synthesizer(request.seed, on_meta)
    filled = msgspec.structs.replace(request, source="timm", batch_size=batch, seq_len=None,
                                     imgsz=height if height == width else None, no_weights=on_meta)
    return LoadedModel(model=model, args=(synth.floats(shape),), kwargs={}, request=filled, notes=notes,
                       on_meta=on_meta)
