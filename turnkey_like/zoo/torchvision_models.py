"""torchvision models by name: every ``torchvision.models.list_models()`` entry with the inputs it takes.

Kinds (from the builder's module) and their inputs; ``B`` = batch (default 1), ``S`` = imgsz:

==============  =====================================  ==============================================
kind            inputs                                 default size
==============  =====================================  ==============================================
classification  ``x`` [B, 3, S, S] float               the weights' ``crop_size`` (224, 299, 384...)
quantized       same, quantized with the weights'      same; the engine comes from the weights'
                backend (``fbgemm``/``qnnpack``)       ``backend`` metadata
segmentation    ``input`` [B, 3, S, S]                 the weights' ``resize_size`` (520)
video           ``x`` [B, 3, T, S, S], T = seq_len     the weights' ``crop_size``; T = 16 (the clip
                                                       length of torchvision's video references and
                                                       published figures), or the weights'
                                                       ``min_temporal_size`` where that is more
detection       ``images``: a list of B [3, S, S]      the side the model resizes to in eval
                images in [0, 1)                       (:func:`eval_side`: 800, 320, 300), so the
                                                       model computes on the recorded input
optical flow    ``image1``, ``image2`` [B, 3, S, S]    512, the size of the published figures (the
                                                       weights give only a minimum, 128; RAFT needs
                                                       sides divisible by 8)
==============  =====================================  ==============================================

``model_args`` become builder keyword arguments (``{"num_classes": 10}``). Segmentation builders that
take ``aux_loss`` (FCN, DeepLabV3) get ``aux_loss=True``: the architecture of their published weights
(torchvision's builders force it whenever weights are given) and of their published figures, since
eval runs the auxiliary head too (FCN-ResNet50: 152.717 G MACs with it, 142.726 without);
``{"aux_loss": false}`` in ``model_args`` leaves it out.
Weights: ``weights=None`` and ``weights_backbone=None`` unless ``pretrained`` (then ``"DEFAULT"``
and the builder's default backbone), so nothing is downloaded. Source: the weights' metadata of
torchvision 0.19+ (``meta["min_size"]``, ``meta["min_temporal_size"]``, ``meta["backend"]``,
``meta["num_params"]``, the preset transform's ``crop_size``/``resize_size``).

The :class:`~turnkey_like.zoo.sources.Source` of a name in ``list_models()`` (priority 50);
torch and torchvision are imported where used.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, NamedTuple

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

FLOW_DEFAULT_SIZE = 512
"""Default side of RAFT's image pairs. The weights' metadata gives only a minimum (128); their
published ``_ops`` are for 512 x 512 pairs: RAFT-small 47.655 and RAFT-large 211.007 G MACs, which
tk counts exactly at 512 and nowhere else nearby (504: 46.11 and 204.34; 520: 49.23 and 217.79)."""

VIDEO_DEFAULT_FRAMES = 16
"""Default clip length, raised to the weights' ``min_temporal_size`` where that is more. 16 frames is
the clip of torchvision's video references and of the published ``_ops`` (pytorch/vision#6936
counted video models with ``t=16``: Swin3D-T 43.88 G MACs at 16 frames, 4.5 G at its 1-frame
minimum; S3D 17.98 G at 16, 16.14 G at its 14-frame minimum)."""


def preload(requests: list[ModelRequest]) -> None:
    """Import ``torchvision.models`` as :func:`load` does (:func:`turnkey_like.zoo.preload`)."""
    from torchvision import models  # noqa: F401


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
    """``lambda: torchvision.models.<kind>.<builder>(weights=None[, weights_backbone=None][, quantize=True]
    [, aux_loss=True])`` and its import: the builder's public name; ``weights_backbone=None`` where the
    builder downloads a backbone by default; quantized models quantized and segmentation models with
    their auxiliary head, as :func:`load` builds them."""
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
    if _aux_head(name):
        kwargs.append("aux_loss=True")
    return f"lambda: {public}.{builder.__name__}({', '.join(kwargs)})", ["import torchvision"]


def stem(request: ModelRequest) -> str:
    """The model's name (``resnet50``)."""
    return request.name


def _aux_head(name: str) -> bool:
    """Whether ``name`` is a segmentation model whose builder takes ``aux_loss`` (FCN, DeepLabV3; not LRASPP)."""
    from torchvision import models

    return kind(name) == "segmentation" and "aux_loss" in inspect.signature(models.get_model_builder(name)).parameters


def kind(name: str) -> str:
    """``classification | quantized | segmentation | video | detection | optical_flow`` for a model name."""
    from torchvision import models

    module = models.get_model_builder(name).__module__
    for part in ("quantization", "segmentation", "video", "detection", "optical_flow"):
        if f".{part}." in module:
            return "quantized" if part == "quantization" else part
    return "classification"


def eval_side(transform) -> int:
    """The side a square image has after a detection model's own eval-time resize.

    ``transform`` is the model's ``GeneralizedRCNNTransform``. In eval it resizes an image so that its
    short side is ``min_size[-1]`` (the last of the training scales: Keypoint R-CNN trains on
    640...800 and evaluates at 800) unless its long side would then pass ``max_size``; a model with
    ``fixed_size`` (SSD: 300, SSDlite: 320) resizes to exactly that. A square image of this side is
    left at its size, so the recorded input is what the model computes on. Source: torchvision
    ``models/detection/transform.py`` (``GeneralizedRCNNTransform.resize`` and
    ``_resize_image_and_masks``).
    """
    fixed = getattr(transform, "fixed_size", None)
    if fixed:
        return int(min(fixed))
    min_size = transform.min_size
    last = min_size[-1] if isinstance(min_size, (tuple, list)) else min_size
    return int(min(last, transform.max_size))


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
    if _aux_head(name) and not request.pretrained:
        kwargs = {"aux_loss": True, **kwargs}  # the published weights' architecture (module docstring)
        if kwargs["aux_loss"]:
            notes.append("aux_loss=True: the auxiliary head of the published weights, which eval runs")
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
        min_frames = int(weights.meta.get("min_temporal_size", 1))
        seq_len = default(request.seq_len, max(VIDEO_DEFAULT_FRAMES, min_frames))
        if seq_len < min_frames:
            raise InputError(f"{name}: --seq-len {seq_len} is below the model's minimum {min_frames} frames",
                             hint=f"use --seq-len {min_frames} or more")
    elif model_kind == "detection":
        size = default(request.imgsz, eval_side(model.transform))
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


class PublishedMacs(NamedTuple):
    """torchvision's published cost of one model call: ``weights`` (``ViT_H_14_Weights.IMAGENET1K_SWAG_LINEAR_V1``)
    and its ``meta["_ops"]`` in G MACs (3 decimals, so up to 0.0005 G of rounding)."""

    weights: str
    gmacs: float


def published_macs(loaded: LoadedModel) -> PublishedMacs | None:
    """torchvision's published MACs for the call ``loaded`` describes, or None where none is published.

    The unit: torchvision's docs label ``weights.meta["_ops"]`` "GFLOPS" ("GIPS" for quantized weights;
    ``docs/source/conf.py`` in pytorch/vision), but the figures count a multiply-add once: they are
    G MACs (ResNet-50's 4.089 is its 4.089e9 conv+matmul MACs, 8.18 GFLOPs at 1 MAC = 2 FLOPs).
    pytorch/vision#6936 computed them on one image (batch 1), video models on 16-frame clips.

    Which weights: the first of the model's weights (DEFAULT first, then in the enum's order) whose
    preset input side is ``loaded.request.imgsz``: ``crop_size`` for classification, quantized and
    video weights, ``resize_size`` for segmentation (ViT-H/14 built without weights takes 224, the
    side of ``IMAGENET1K_SWAG_LINEAR_V1``, not the DEFAULT's 518). Detection and optical-flow weights
    have no preset size; their figures are for the side the model resizes to in eval
    (:func:`eval_side`) and for :data:`FLOW_DEFAULT_SIZE` pairs. None for another batch size, clip
    length or side, or a model built with ``model_args``.
    """
    from torchvision import models

    request = loaded.request
    name, side = request.name, request.imgsz
    model_kind = kind(name)
    if request.batch_size != 1 or request.model_args or (model_kind == "video" and request.seq_len != 16):
        return None
    enum = models.get_model_weights(name)
    if model_kind in ("detection", "optical_flow"):
        published_side = eval_side(loaded.model.transform) if model_kind == "detection" else FLOW_DEFAULT_SIZE
        matching = [enum.DEFAULT] if side == published_side else []
    else:
        key = "resize_size" if model_kind == "segmentation" else "crop_size"
        matching = [w for w in (enum.DEFAULT, *enum) if _side(_preset(w).get(key), 0) == side]
    found = next((w for w in matching if "_ops" in w.meta), None)
    return PublishedMacs(f"{type(found).__name__}.{found.name}", float(found.meta["_ops"])) if found else None
