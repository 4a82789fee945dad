"""timm models: ``timm/NAME`` -> ``timm.create_model(NAME, pretrained=False)``.

``NAME`` is any ``timm.list_models()`` architecture, optionally with a pretrained tag
(``timm/resnet18.a1_in1k``), which picks that tag's pretrained config (input size). Weights are
random (seeded) unless ``pretrained`` (downloaded by timm from the hub). ``model_args`` become
``create_model`` keyword arguments (``{"num_classes": 10}``).

Input: ``x`` [B, C, H, W] standard-normal floats, (C, H, W) = the model's
``pretrained_cfg["input_size"]`` (e.g. (3, 224, 224)); imgsz replaces H and W. timm is an optional
dependency (extra ``timm``).
"""

from __future__ import annotations

import msgspec

from turnkey_like.errors import InputError
from turnkey_like.records import ModelRequest
from turnkey_like.zoo.base import DEFAULT_BATCH, LoadedModel, build_module, default, require
from turnkey_like.zoo.inputs import Synthesizer

PREFIX = "timm/"


def _require():
    return require("timm", "timm")


def names() -> list[str]:
    """``timm/NAME`` for every architecture of ``timm.list_models()``, sorted."""
    return [PREFIX + n for n in sorted(_require().list_models())]


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
    synth = Synthesizer(request.seed, on_meta)
    filled = msgspec.structs.replace(request, source="timm", batch_size=batch, seq_len=None,
                                     imgsz=height if height == width else None, no_weights=on_meta)
    return LoadedModel(model=model, args=(synth.floats(shape),), kwargs={}, request=filled, notes=notes,
                       on_meta=on_meta)
