"""What every zoo source shares: the loaded-model record, the meta-device rule and seeded builds.

torch is imported inside the functions that use it, so that a source module (which imports this
one) is cheap to import: walking the source registry imports no torch (:mod:`turnkey_like.zoo.sources`).

The meta rule: a model whose parameter count is above :data:`META_THRESHOLD_PARAMS` is built on the
``meta`` device (shapes without storage) unless the request says ``no_weights=False``; the count is
taken from a first build on ``meta`` (fast: no memory, no initialisation work). One billion float32
parameters are 4 GB, already more than a laptop or a CI runner spares for a model it only counts;
the figure is a round number, not a measurement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from turnkey_like.errors import InputError, one_line
from turnkey_like.records import ModelRequest

if TYPE_CHECKING:
    import torch

META_THRESHOLD_PARAMS = 1_000_000_000
"""Above this many parameters a model builds on ``meta`` when ``no_weights`` is ``None`` (4 GB in fp32)."""

DEFAULT_BATCH = 1
"""Batch size when the request gives none."""


@dataclasses.dataclass
class LoadedModel:
    """A named model ready to call: ``model(*args, **kwargs)``.

    Attributes:
        model: the module, in eval mode, on CPU (or ``meta`` when ``on_meta``).
        args, kwargs: the synthesized example inputs (tensors, lists of tensors).
        request: the request with ``source`` and every default actually used filled in (batch,
            seq_len, imgsz, no_weights); dimensions the model does not take are ``None``.
        notes: overrides the loader made and says so (``"DETR: use_pretrained_backbone=False"``,
            ``"meta tensors: 6.6e9 parameters"``), in the order they were made.
        on_meta: True when parameters and inputs live on the ``meta`` device (no values).
    """

    model: torch.nn.Module
    args: tuple
    kwargs: dict
    request: ModelRequest
    notes: list[str]
    on_meta: bool


class RepeatingLayers(NamedTuple):
    """Where a model's costs are affine in its depth (a source's ``repeating_layers(model)``, see
    :func:`turnkey_like.zoo.repeating_layers`): its stacks of ``depth`` layers repeat every
    ``period`` layers from layer ``first`` on, so every additive cost of the model is that of a copy
    ``first`` layers deep plus ``(depth - first) / period`` times the difference between a copy
    ``first + period`` deep and that one.

    Attributes:
        depth: layers in each stack of the model (``L``).
        first: the shallower copy's depth (it holds every kind of layer; ``depth - first`` is a
            whole number of periods).
        period: layers after which the kinds of layer repeat.
        stacks: module paths of the stacks (``("model.layers",)``).
        overrides: ``model_args`` that build the copies ``first`` and ``first + period`` layers deep.
    """

    depth: int
    first: int
    period: int
    stacks: tuple[str, ...]
    overrides: tuple[dict[str, object], dict[str, object]]

    @property
    def depths(self) -> tuple[int, int]:
        """The two copies' depths: ``(first, first + period)``."""
        return self.first, self.first + self.period


def param_count(model: torch.nn.Module) -> int:
    """Parameters of ``model``, a parameter shared between submodules counted once."""
    return sum(p.numel() for p in model.parameters())  # parameters() already yields each once


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block with torch's CPU generator seeded by ``seed``, restoring its state afterwards.

    Random weight initialisation inside the block is then reproducible, and the caller's own random
    stream is left as it was.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def require(module: str, extra: str):
    """Import optional package ``module``, or raise the InputError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"{extra} models need the {module} package",
                         hint=f'pip install "turnkey_like[{extra}]"') from exc


def build_module(make: Callable[[], torch.nn.Module], request: ModelRequest, notes: list[str],
                 *, params: int | None = None, hint: str = "") -> tuple[torch.nn.Module, bool]:
    """:func:`build` with any failure other than an InputError turned into one (``hint`` as its hint)."""
    try:
        return build(make, request, notes, params=params)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{request.name}: cannot build the model: {one_line(exc)}", hint=hint or None) from exc


def needs_values(exc: BaseException) -> bool:
    """Whether ``exc``, raised while building on ``meta``, came from the meta device itself (a builder
    that reads values: ``Tensor.item() cannot be called on meta tensors``, ``Cannot copy out of meta
    tensor``, ``... from the 'Meta' backend``), so that a build on real weights may still succeed.

    Any other error is the builder's own (a default config that cannot build, as transformers'
    ``emu3``, ``granite4_vision`` or ``cohere_compass`` default configs, whose models reach for values
    the config leaves ``None``); a real build raises it too, but only after allocating and
    initialising the weights built before it (minutes, or out of memory, for their 1e9+ parameters),
    so :func:`build` raises it at once.
    """
    return any("meta" in str(e).lower() for e in _chain(exc))


def _chain(exc: BaseException):
    """``exc`` and the exceptions it was raised from or during, each once."""
    seen: list[BaseException] = []
    while exc is not None and not any(exc is s for s in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def build(make: Callable[[], torch.nn.Module], request: ModelRequest, notes: list[str],
          *, params: int | None = None) -> tuple[torch.nn.Module, bool]:
    """Build ``make()`` under the meta rule; returns ``(module in eval mode, on_meta)``.

    Args:
        make: builds the module on the current default device; called once or twice (a first call on
            ``meta`` counts the parameters when ``params`` is not known and ``no_weights`` is None;
            when that call fails for a reason other than the meta device (:func:`needs_values`),
            its error is raised).
        request: ``no_weights`` True forces meta, False forces real weights, None applies
            :data:`META_THRESHOLD_PARAMS`; weights are seeded by ``request.seed``.
        notes: receives ``"meta tensors: N parameters"`` when the model is built on meta.
        params: the parameter count when already known (e.g. from the weights' metadata).

    Raises:
        InputError: ``pretrained`` together with ``no_weights=True`` (meta tensors hold no weights).
    """
    import torch

    if request.pretrained and request.no_weights:
        raise InputError(f"{request.name}: --pretrained and --no-weights exclude each other",
                         hint="meta tensors hold no values; drop one of the two options")
    meta_model = None
    if request.no_weights is None and not request.pretrained and params is None:
        try:
            with torch.device("meta"):
                meta_model = make()
            params = param_count(meta_model)
        except Exception as exc:
            if not needs_values(exc):
                raise  # the builder's own error: a real build would raise it too, after allocating
            meta_model = None  # a builder that reads values (``.item()``) counts on real weights
    on_meta = bool(request.no_weights) or (
        request.no_weights is None and not request.pretrained and params is not None
        and params > META_THRESHOLD_PARAMS)
    if on_meta:
        if meta_model is None:
            with torch.device("meta"):
                meta_model = make()
        model = meta_model
        why = "--no-weights" if request.no_weights else f"above {META_THRESHOLD_PARAMS:.0e}"
        notes.append(f"meta tensors: {param_count(model):.3g} parameters ({why})")
    else:
        del meta_model
        with seeded(request.seed):
            model = make()
    model.eval()
    return model, on_meta


def default(value: Any, fallback: Any) -> Any:
    """``value`` unless it is None, else ``fallback``."""
    return fallback if value is None else value


def file_stem(name: str) -> str:
    """The last component of path ``name``, without its suffix when that is ``.yaml``, ``.yml`` or
    ``.pt`` (``models/yolov8n.yaml`` -> ``yolov8n``, ``ckpt/bert/`` -> ``bert``): a build folder's name."""
    last = Path(name.rstrip("/"))
    return last.stem if Path(name).suffix in (".yaml", ".yml", ".pt") else last.name
