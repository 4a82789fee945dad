"""Model sources as plug-ins: the :class:`Source` protocol and the :data:`SOURCES` registry.

A source turns a name into a model and its inputs (``--model NAME``). Each one is a module that
implements :class:`Source` with module-level names, registered in :data:`SOURCES` by the path of
that module, which is imported only when the source is first asked something. A source module
imports its library (torchvision, transformers, ...) and torch inside its functions, so walking the
registry (``tk version``, ``tk discover-models --source`` choices, a cached survey) imports neither.

Adding a source is one module and one line in :data:`SOURCES`; ``tests/test_zoo.py`` walks the
registry and checks every entry against the protocol and the places users see sources. Everything
that asks about sources reads the registry: :func:`turnkey_like.zoo.model_source`, ``load``,
``list_names``, ``closest_names``, ``stem``, ``expand_sweep`` and ``shallow``, and
``tk discover-models`` (listed sources, library versions, families, constructors, ``--test-model``).

Which source a name means (:func:`turnkey_like.zoo.model_source`): the sources are asked in
ascending :attr:`Source.priority`, and the first whose :meth:`Source.claims` says yes has it; a name
none claims is the :data:`FALLBACK` source's (a transformers hub name). The built-in priorities:

== =============== =========================================================================
10 ``factory``     ``package.module:factory`` or ``path/file.py:factory`` (not an existing path)
20 ``timm``        ``timm/NAME``
30 ``ultralytics`` ``*.yaml``, ``*.yml``, ``*.pt``
40 ``transformers`` a folder holding ``config.json``
50 ``torchvision`` a name in ``torchvision.models.list_models()``
-- ``transformers`` anything else (:data:`FALLBACK`): a model type (``bert``) or a hub name
== =============== =========================================================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from turnkey_like.errors import InputError

if TYPE_CHECKING:
    from turnkey_like.records import ModelRequest
    from turnkey_like.zoo.base import LoadedModel

SOURCES: dict[str, str] = {
    "torchvision": "turnkey_like.zoo.torchvision_models",
    "transformers": "turnkey_like.zoo.transformers_models",
    "ultralytics": "turnkey_like.zoo.ultralytics_models",
    "timm": "turnkey_like.zoo.timm_models",
    "factory": "turnkey_like.zoo.factory",
}
"""Source name -> the module implementing :class:`Source`, in the order users see sources
(``--source`` choices, hints, versions, and which source's name :func:`turnkey_like.zoo.closest_names`
prefers when two are equally close)."""

FALLBACK = "transformers"
"""The source of a name that no source claims (read as a transformers model type or hub name)."""

AXES = frozenset({"batch_size", "seq_len", "imgsz"})
"""The sizes a request can sweep (:func:`turnkey_like.zoo.expand_sweep`)."""


@runtime_checkable
class Source(Protocol):
    """What a model source implements (module-level names of its module; see the module doc).

    Attributes:
        name: its key in :data:`SOURCES` and the ``ModelRequest.source`` its models record.
        package: the PyPI distribution whose version ``tk version`` prints and the survey cache is
            keyed by (``torchvision``), or ``None`` (``factory``: the user's own code).
        listed: whether ``tk discover-models --source NAME`` surveys :meth:`names` (else the user
            names models with ``--models``).
        closed_list: whether :meth:`names` is every name :meth:`load` takes, so that
            ``tk discover-models --test-model`` refuses any other at once (torchvision, timm);
            sources that also take hub names or files say ``False``.
        priority: where :meth:`claims` is asked, lower first (module doc's table); unique.
        prefix: what every listed name starts with (``timm/``), else ``""``;
            :func:`turnkey_like.zoo.closest_names` also matches names without it.
        input_axes: which of ``batch_size``, ``seq_len``, ``imgsz`` its models can take; a sweep
            axis outside them is not expanded.

    Optional: ``shallow_overrides(model, keep, repeats) -> (model_args overrides, cuts)``, the
    ``model_args`` that build ``model`` with each stack of layers cut (:func:`turnkey_like.zoo.shallow`;
    transformers has it); ``repeating_layers(model) -> RepeatingLayers | None``, the depths at which
    its costs are affine in its number of layers (:func:`turnkey_like.zoo.repeating_layers`;
    transformers has it); ``preload(requests) -> None``, import what :meth:`load` imports for
    those requests, building nothing
    (:func:`turnkey_like.zoo.preload`: a run of several of its models imports it once, before the
    inputs' children fork; the built-in library sources have it).
    """

    name: str
    package: str | None
    listed: bool
    closed_list: bool
    priority: int
    prefix: str
    input_axes: frozenset[str]

    def names(self) -> list[str]:
        """Every name it can list, sorted (``[]`` when it has no list: ``factory``).

        Raises:
            InputError: its package is not installed.
        """

    def claims(self, name: str) -> bool:
        """Whether ``name`` is this source's, by a rule that never touches the network."""

    def load(self, request: ModelRequest) -> LoadedModel:
        """The model of ``request`` and its example inputs (:func:`turnkey_like.zoo.load`).

        Raises:
            InputError: one line and a hint for every failure (unknown name, missing package...).
        """

    def family(self, name: str) -> str:
        """The group ``name`` belongs to (what ``tk discover-models --family`` matches)."""

    def constructor(self, name: str, model) -> tuple[str | None, list[str]]:
        """A Python expression that builds ``name`` without weights and the imports it needs, or
        ``(None, [])`` (``tk discover-models --generate-code``); ``model`` is the loaded module."""

    def stem(self, request: ModelRequest) -> str:
        """The name part of the model's build folder, before :func:`turnkey_like.zoo.stem` makes it
        safe and appends ``_<source>`` (a file's stem, the name without ``prefix``)."""


def get(name: str) -> Source:
    """The source registered as ``name`` (its module, imported now if not yet).

    Raises:
        InputError: no source of that name.
    """
    if name not in SOURCES:
        raise InputError(f"unknown model source {name!r}", hint=f"use one of: {', '.join(SOURCES)}")
    return importlib.import_module(SOURCES[name])


def registered() -> list[Source]:
    """Every registered source, in :data:`SOURCES` order."""
    return [get(name) for name in SOURCES]


def by_priority() -> list[Source]:
    """Every registered source in the order :func:`turnkey_like.zoo.model_source` asks them."""
    return sorted(registered(), key=lambda source: source.priority)


def source_names() -> list[str]:
    """The source names users may give (``tk discover-models --source``), in :data:`SOURCES` order."""
    return list(SOURCES)


def listed_names() -> list[str]:
    """The sources ``tk discover-models`` can survey without ``--models`` (:attr:`Source.listed`)."""
    return [source.name for source in registered() if source.listed]


def source_packages() -> list[str]:
    """The PyPI packages of the sources (``tk version``; the survey cache's key), in :data:`SOURCES`
    order, each once."""
    return list(dict.fromkeys(source.package for source in registered() if source.package))


def listed_phrase() -> str:
    """The listed sources as words: ``"torchvision, transformers, ultralytics or timm"``."""
    *head, last = listed_names()
    return f"{', '.join(head)} or {last}" if head else last
