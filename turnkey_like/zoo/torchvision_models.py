"""torchvision models by name: every ``torchvision.models.list_models()`` entry with the inputs it takes.

Kinds (from the builder's module) and their inputs; ``B`` = batch (default 1), ``S`` = imgsz:

==============  =====================================  ==============================================
kind            inputs                                 default size
==============  =====================================  ==============================================
classification  ``x`` [B, 3, S, S] float               the weights' ``crop_size`` (224, 299, 384...)
quantized       same, quantized with the weights'      same; the engine comes from the weights'
                backend (``fbgemm``/``qnnpack``)       ``backend`` metadata
segmentation    ``input`` [B, 3, S, S]                 the weights' ``resize_size`` (520)
video           ``x`` [B, 3, T, S, S], T = seq_len     the weights' ``crop_size``; T = the weights'
                                                       ``min_temporal_size``, else 16 (the clip
                                                       length of torchvision's video references)
detection       ``images``: a list of B [3, S, S]      the model's own resize target
                images in [0, 1)                       (``model.transform.min_size``: 800, 320, 300)
optical flow    ``image1``, ``image2`` [B, 3, S, S]    520 (the weights give only a minimum, 128;
                                                       RAFT needs sides divisible by 8)
==============  =====================================  ==============================================

``model_args`` become builder keyword arguments (``{"num_classes": 10}``).
Weights: ``weights=None`` and ``weights_backbone=None`` unless ``pretrained`` (then ``"DEFAULT"``
and the builder's default backbone), so nothing is downloaded. Source: the weights' metadata of
torchvision 0.19+ (``meta["min_size"]``, ``meta["min_temporal_size"]``, ``meta["backend"]``,
``meta["num_params"]``, the preset transform's ``crop_size``/``resize_size``).

The :class:`~turnkey_like.zoo.sources.Source` of a name in ``list_models()`` (priority 50);
torch and torchvision are imported where used.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from turnkey_like.errors import InputError
from turnkey_like.records import ModelRequest
from turnkey_like.zoo.base import DEFAULT_BATCH, LoadedModel, build_module, default

if TYPE_CHECKING:
    import torch

name = "torchvision"
package = "torchvision"
listed = True
closed_list = True
priority = 50
prefix = ""
input_axes = frozenset({"batch_size", "seq_len", "imgsz"})  # seq_len: the frames of video models

FLOW_DEFAULT_SIZE = 520
"""Default side of RAFT's image pairs (the weights' metadata only gives a minimum of 128)."""

VIDEO_DEFAULT_FRAMES = 16
"""Default clip length where the weights give no ``min_temporal_size`` (torchvision's video references)."""


def names() -> list[str]:
    """Every torchvision model name (``torchvision.models.list_models()``), sorted."""
    from torchvision import models

    return sorted(models.list_models())


def claims(name: str) -> bool:
    """Whether ``name`` is in ``torchvision.models.list_models()``."""
    return name in names()


def family(name: str) -> str:
    """The module of the model's builder below ``torchvision.models`` (``resnet`` for ``resnet18`` and
    ``wide_resnet50_2``, ``detection.faster_rcnn``, ``quantization.resnet``, ``video.swin_transformer``):
    torchvision's own grouping."""
    from torchvision import models

    return models.get_model_builder(name).__module__.removeprefix("torchvision.models.")


def constructor(name: str, model) -> tuple[str | None, list[str]]:
    """``lambda: torchvision.models.<kind>.<builder>(weights=None[, weights_backbone=None][, quantize=True])``
    and its import: the builder's public name; ``weights_backbone=None`` where the builder downloads
    a backbone by default; quantized models quantized, as :func:`load` builds them."""
    import importlib

    from torchvision import models

    builder = models.get_model_builder(name)
    parts = builder.__module__.split(".")
    public = ".".join(parts[:3]) if len(parts) > 3 else "torchvision.models"
    if getattr(importlib.import_module(public), builder.__name__, None) is not builder:
        public = builder.__module__
    params = inspect.signature(builder).parameters
    kwargs = ["weights=None"]
    if "weights_backbone" in params:
        kwargs.append("weights_backbone=None")
    if "quantize" in params:
        kwargs.append("quantize=True")
    return f"lambda: {public}.{builder.__name__}({', '.join(kwargs)})", ["import torchvision"]


def stem(request: ModelRequest) -> str:
    """The model's name (``resnet50``)."""
    return request.name


def kind(name: str) -> str:
    """``classification | quantized | segmentation | video | detection | optical_flow`` for a model name."""
    from torchvision import models

    module = models.get_model_builder(name).__module__
    for part in ("quantization", "segmentation", "video", "detection", "optical_flow"):
        if f".{part}." in module:
            return "quantized" if part == "quantization" else part
    return "classification"


def _preset(weights) -> dict:
    """The keyword arguments of the weights' preset transform (``crop_size``, ``resize_size``)."""
    return dict(getattr(weights.transforms, "keywords", {}) or {})


def _side(value, fallback: int) -> int:
    """First side of a size given as int, tuple or list."""
    if value is None:
        return fallback
    return int(value[0] if isinstance(value, (tuple, list)) else value)


def load(request: ModelRequest) -> LoadedModel:
    """Build torchvision model ``request.name`` and its example inputs (see the module docstring).

    Raises:
        InputError: an unknown name (closest known names in the hint), an input named in
            ``input_shapes`` that the model does not take, or a size below the weights' minimum.
    """
    import torch
    from torchvision import models

    from turnkey_like.zoo.inputs import Synthesizer

    name = request.name
    if name not in names():
        from turnkey_like.zoo import unknown_name

        raise unknown_name(name, "not a torchvision model")
    builder = models.get_model_builder(name)
    weights_enum = models.get_model_weights(name)
    weights = weights_enum.DEFAULT
    model_kind = kind(name)
    notes: list[str] = []
    params = inspect.signature(builder).parameters
    kwargs: dict = {"weights": "DEFAULT" if request.pretrained else None, **(request.model_args or {})}
    if "weights_backbone" in params and not request.pretrained:
        kwargs["weights_backbone"] = None
    if model_kind == "quantized":
        kwargs["quantize"] = True
        engine = weights.meta.get("backend", "fbgemm")
        supported = torch.backends.quantized.supported_engines
        if engine not in supported:
            engine = "qnnpack" if "qnnpack" in supported else supported[-1]
            notes.append(f"quantized engine {engine} ({weights.meta.get('backend')} not available)")
        if not request.pretrained:
            kwargs["backend"] = engine
        torch.backends.quantized.engine = engine
        notes.append(f"quantized engine: {engine}")

    model, on_meta = build_module(lambda: builder(**kwargs), request, notes,
                                  params=weights.meta.get("num_params"))
    preset = _preset(weights)
    min_side = _side(weights.meta.get("min_size"), 1)
    batch = default(request.batch_size, DEFAULT_BATCH)
    seq_len = None
    if model_kind in ("classification", "quantized"):
        # a model built with a fixed input size (ViT's image_size) takes that size without its weights
        # (vit_h_14's SWAG weights say 518, the weights=None model is built for 224)
        fixed = getattr(model, "image_size", None)
        built_for = fixed if isinstance(fixed, int) and not request.pretrained else None
        size = default(request.imgsz, built_for or _side(preset.get("crop_size"), 224))
        if built_for:
            min_side = min(min_side, built_for)
    elif model_kind == "segmentation":
        size = default(request.imgsz, _side(preset.get("resize_size"), 520))
    elif model_kind == "video":
        size = default(request.imgsz, _side(preset.get("crop_size"), 112))
        seq_len = default(request.seq_len, weights.meta.get("min_temporal_size", VIDEO_DEFAULT_FRAMES))
    elif model_kind == "detection":
        size = default(request.imgsz, _side(getattr(model.transform, "min_size", None), 800))
    else:
        size = default(request.imgsz, FLOW_DEFAULT_SIZE)
    if size < min_side:
        raise InputError(f"{name}: --imgsz {size} is below the model's minimum {min_side}",
                         hint=f"use --imgsz {min_side} or more")

    synth = Synthesizer(request.seed, on_meta)
    shapes = {k: list(v) for k, v in request.input_shapes.items()}
    input_names = [p for p in inspect.signature(model.forward).parameters if p != "self"]
    unknown = sorted(set(shapes) - set(input_names))
    if unknown:
        raise InputError(f"{name} takes no input {', '.join(unknown)}",
                         hint=f"its inputs are: {', '.join(input_names)}")

    def image(input_name: str, default_shape: list[int]) -> torch.Tensor:
        return synth.unit(shapes.get(input_name, default_shape))

    first = input_names[0]
    if model_kind == "detection":
        shape = shapes.get(first, [batch, 3, size, size])
        args: tuple = ([synth.unit(shape[1:]) for _ in range(shape[0])],)
    elif model_kind == "optical_flow":
        args = tuple(image(n, [batch, 3, size, size]) for n in input_names[:2])
    elif model_kind == "video":
        args = (image(first, [batch, 3, seq_len, size, size]),)
    else:
        args = (image(first, [batch, 3, size, size]),)
    filled = _fill(request, batch, seq_len, size, on_meta)
    return LoadedModel(model=model, args=args, kwargs={}, request=filled, notes=notes, on_meta=on_meta)


def _fill(request: ModelRequest, batch: int, seq_len: int | None, size: int, on_meta: bool) -> ModelRequest:
    """The request with the source and the sizes used filled in."""
    import msgspec

    return msgspec.structs.replace(request, source="torchvision", batch_size=batch, seq_len=seq_len,
                                   imgsz=size, no_weights=on_meta)
