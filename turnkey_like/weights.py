"""A model's tensors: its parameters (packed quantized weights included) and buffers, in one walk.

The one definition of what a model's parameters are, shared by discovery (``ModelInfo.params``) and
characterization (``Totals.params``/``param_bytes``): ``nn.Parameter`` s counted once however often
they are shared, plus the weight and bias that quantized engines keep packed in script objects
(``torch.ao.nn.quantized``), which a converted quantized model holds instead of parameters.
Ground level: imports torch only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

PACKED_PARAMS_TYPES = frozenset(
    f"__torch__.torch.classes.quantized.{name}"
    for name in ("Conv2dPackedParamsBase", "Conv3dPackedParamsBase", "LinearPackedParamsBase",
                 "EmbeddingPackedParamsBase")
)
"""Qualified names of the script classes in which the quantized engines keep weights
(``torch.ScriptObject._type().qualified_name()``; the argument types in the ops' schemas)."""


class PackedWeights(NamedTuple):
    """The tensors a quantized packed-params object holds (:func:`packed_weights`).

    Attributes:
        weight: the weight at its stored dtype: ``qint8`` (1 byte an element; float16 for the
            float16 dynamic linear). Shape as the float module's: conv ``[Cout, Cin/groups, *kernel]``,
            transposed conv ``[Cin, Cout/groups, *kernel]``, linear ``[out, in]``, embedding
            ``[rows, dim]``.
        bias: float32 ``[Cout]`` (the engines keep the bias in float), or ``None``.
        qparams: for a per-channel quantized weight, its scales and zero points as the engines keep
            them, float32 and int32 ``[Cout]`` (fbgemm's ``PackedConvWeight``/``PackedLinearWeight``:
            ``std::vector<float> w_scale``, ``std::vector<int32_t> w_zp``, in
            ``aten/src/ATen/native/quantized/cpu/fbgemm_utils.h``); ``()`` for a per-tensor one (a
            scalar scale and zero point, not counted).
    """

    weight: torch.Tensor
    bias: torch.Tensor | None
    qparams: tuple = ()

    @property
    def tensors(self) -> tuple:
        """Every tensor the kernel reads: ``(weight, bias, *qparams)`` without a missing bias."""
        return tuple(t for t in (self.weight, self.bias, *self.qparams) if t is not None)


_PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric, torch.per_channel_affine_float_qparams)


def is_packed(obj) -> bool:
    """Whether ``obj`` is a quantized engine's packed-params object (:data:`PACKED_PARAMS_TYPES`)."""
    if not isinstance(obj, torch.ScriptObject):
        return False
    try:
        return obj._type().qualified_name() in PACKED_PARAMS_TYPES
    except (AttributeError, RuntimeError):
        return False


def packed_weights(packed, float16: bool = False) -> PackedWeights:
    """Return the weight, bias and per-channel qparams held by a packed-params object.

    ``packed.unpack()`` (the engines' own unpacking, as ``torch.ops.quantized.conv2d_unpack`` /
    ``linear_unpack`` do) gives ``(weight, bias)`` for conv and linear, the weight alone for an
    embedding. ``float16``: the object holds float16 weights (:data:`FLOAT16_PACKED_OPS`), which
    ``unpack()`` returns as float32; the weight is given back as float16. The tensors are fresh
    copies, so calling this costs about one copy of the weights (19 ms for quantized resnet18's
    11.7 M int8 weights here).

    Raises:
        TypeError: ``packed`` is not a packed-params object (:func:`is_packed`).
    """
    if not is_packed(packed):
        raise TypeError(f"not a quantized packed-params object: {type(packed).__name__}")
    out = packed.unpack()
    weight, bias = (out, None) if isinstance(out, torch.Tensor) else (out[0], out[1])
    if float16 and weight.dtype != torch.float16:
        weight = weight.to(torch.float16)
    qparams: tuple = ()
    if weight.is_quantized and weight.qscheme() in _PER_CHANNEL:
        qparams = (weight.q_per_channel_scales().to(torch.float32),
                   weight.q_per_channel_zero_points().to(torch.int32))
    return PackedWeights(weight, bias, qparams)



class ModelTensors(NamedTuple):
    """A model's tensors, read in one walk over its modules (:func:`model_tensors`).

    Attributes:
        params: unique ``(name, parameter)`` pairs, shared ones once under their first name (what
            ``model.named_parameters()`` gives), then the weight and bias of every packed quantized
            weight (:func:`packed_weights`; ``qint8`` weights at 1 byte an element, float32 bias),
            named ``PATH.ATTRIBUTE.weight`` / ``.bias`` after the module attribute holding the packed
            object (``conv1._packed_params.weight``, ``fc._packed_params._packed_params.weight``).
        buffers: unique buffers.
        lazy: whether a lazy module (``nn.LazyLinear``...) still has uninitialised parameters.
    """

    params: list[tuple[str, Any]]
    buffers: list[Any]
    lazy: bool


def model_tensors(model) -> ModelTensors:
    """Walk ``model``'s modules once (``named_modules`` order) and return its :class:`ModelTensors`.

    One walk instead of one per question (meta? dtype? size? lazy? parameter owners?): on a model with
    hundreds of modules each ``parameters()`` walk costs about a millisecond.

    Quantized modules (``torch.ao.nn.quantized``) keep their weights packed in a script object
    attribute, not in ``nn.Parameter`` s: each such object (:func:`is_packed`) is unpacked once and its
    weight and bias count as parameters (:class:`ModelTensors`). A ``LinearPackedParams`` whose ``dtype``
    is float16 holds float16 weights (``torch.ao.nn.quantized.dynamic.Linear(dtype=torch.float16)``).
    """
    import torch
    from torch.nn.modules.lazy import LazyModuleMixin

    params: list[tuple[str, Any]] = []
    packed: list[tuple[str, Any]] = []
    buffers: list[Any] = []
    seen: set[int] = set()
    lazy = False
    script_object = torch.ScriptObject
    for prefix, mod in model.named_modules():
        if isinstance(mod, LazyModuleMixin) and mod.has_uninitialized_params():
            lazy = True
        for name, p in mod._parameters.items():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            params.append((f"{prefix}.{name}" if prefix else name, p))
        for b in mod._buffers.values():
            if b is not None and id(b) not in seen:
                seen.add(id(b))
                buffers.append(b)
        for attr, v in vars(mod).items():
            if type(v) is script_object and id(v) not in seen and is_packed(v):
                seen.add(id(v))
                unpacked = packed_weights(v, float16=getattr(mod, "dtype", None) is torch.float16)
                path = f"{prefix}.{attr}" if prefix else attr
                packed.append((f"{path}.weight", unpacked.weight))
                if unpacked.bias is not None:
                    packed.append((f"{path}.bias", unpacked.bias))
    return ModelTensors(params + packed, buffers, lazy)


def model_parameters(model) -> list[tuple[str, Any]]:
    """Return ``model``'s unique ``(name, tensor)`` parameters, the weights and biases of packed
    quantized modules included (what ``Totals.params``/``param_bytes`` count; see :func:`model_tensors`).

    For callers that describe a model outside a characterization (discovery's ``ModelInfo``): a
    converted quantized model has no ``nn.Parameter`` at all, so ``model.parameters()`` is empty.
    """
    return model_tensors(model).params
