"""A model source for the tests, registered in-process: ``linear-IxO`` is ``torch.nn.Linear(I, O)``.

It implements :class:`turnkey_like.zoo.sources.Source` the way a new source would (module-level
names; torch imported where used), so the tests can check that registering one module is all a
source needs. Its input is ``x`` [B, I] standard-normal floats, B default 1.
"""

from __future__ import annotations

import re

import msgspec

from turnkey_like.errors import InputError
from turnkey_like.records import ModelRequest
from turnkey_like.zoo.base import DEFAULT_BATCH, LoadedModel, build_module, default

name = "linear"
package = None
listed = True
closed_list = True
priority = 45  # after transformers' folders, before torchvision's names
prefix = ""
input_axes = frozenset({"batch_size"})

_NAME = re.compile(r"^linear-(\d+)x(\d+)$")


def _sizes(model_name: str) -> tuple[int, int]:
    match = _NAME.match(model_name)
    if not match:
        raise InputError(f"{model_name!r} is not linear-IxO", hint="name it like linear-8x4")
    return int(match.group(1)), int(match.group(2))


def names() -> list[str]:
    """Three sizes, sorted."""
    return sorted(["linear-4x2", "linear-8x4", "linear-16x8"])


def claims(name: str) -> bool:
    """Whether ``name`` is ``linear-IxO``."""
    return bool(_NAME.match(name))


def load(request: ModelRequest) -> LoadedModel:
    """``torch.nn.Linear(I, O)`` and ``x`` [B, I]."""
    import torch

    from turnkey_like.zoo.inputs import Synthesizer

    features, outputs = _sizes(request.name)
    notes: list[str] = []
    model, on_meta = build_module(lambda: torch.nn.Linear(features, outputs), request, notes)
    batch = default(request.batch_size, DEFAULT_BATCH)
    x = Synthesizer(request.seed, on_meta).floats([batch, features])
    filled = msgspec.structs.replace(request, source="linear", batch_size=batch, seq_len=None, imgsz=None,
                                     no_weights=on_meta)
    return LoadedModel(model=model, args=(x,), kwargs={}, request=filled, notes=notes, on_meta=on_meta)


def family(name: str) -> str:
    """All one family."""
    return "linear"


def constructor(name: str, model) -> tuple[str | None, list[str]]:
    """``lambda: torch.nn.Linear(I, O)``."""
    features, outputs = _sizes(name)
    return f"lambda: torch.nn.Linear({features}, {outputs})", ["import torch"]


def stem(request: ModelRequest) -> str:
    """``fcIxO``."""
    return "fc" + request.name.removeprefix("linear-")
