"""Your own models: ``package.module:factory`` or ``path/to/file.py:factory``.

The factory (any callable, a class included; dotted attributes allowed: ``pkg.mod:Zoo.small``) is
called with ``model_args`` as keyword arguments (``--model-args '{"width": 64}'``), or with none.
It is called once: the automatic meta rule does not apply (counting would call it twice);
``no_weights=True`` calls it under ``torch.device("meta")``.
The current directory is on the import path while the module is imported, as with ``python -m``.
Importing the module runs its code: name only modules you trust.

It returns either
- a module: then its inputs come from ``input_shapes`` (``--input-shape NAME:D0,D1,...``), one
  tensor per named ``forward`` parameter (``*_ids`` ids, ``*mask`` ones, else normal floats); or
- ``(module, args)`` / ``(module, args, kwargs)``: the example inputs it chose; ``input_shapes``
  then replaces the named tensors.

The :class:`~turnkey_like.zoo.sources.Source` of ``module:factory`` names (priority 10, first): it
has no list of names and no package; torch is imported where used.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path

import msgspec

from turnkey_like.errors import InputError, one_line
from turnkey_like.records import ModelRequest
from turnkey_like.zoo.base import LoadedModel, build_module

name = "factory"
package = None
listed = False
closed_list = False
priority = 10
prefix = ""
input_axes = frozenset({"batch_size", "seq_len", "imgsz"})

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_FILE_FACTORY = re.compile(r"^.+\.py:[A-Za-z_][\w.]*$")


def names() -> list[str]:
    """None: a factory is any callable the user names."""
    return []


def claims(name: str) -> bool:
    """Whether ``name`` is ``path/file.py:factory``, or ``package.module:factory`` and not an existing path."""
    return bool(_FILE_FACTORY.match(name) or (_FACTORY.match(name) and not Path(name).exists()))


def family(name: str) -> str:
    """The module of ``package.module:factory`` (the file of ``path/file.py:factory``)."""
    return name.split(":", 1)[0]


def constructor(name: str, model) -> tuple[str | None, list[str]]:
    """``(None, [])``: tk does not write the user's own call."""
    return None, []


def stem(request: ModelRequest) -> str:
    """The name itself (``pkg.mod:make``, made safe by :func:`turnkey_like.zoo.stem`)."""
    return request.name


def _import(module_name: str):
    """Import ``module_name`` (dotted, or a ``.py`` path) with the current directory on ``sys.path``."""
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise InputError(f"{module_name}: no such file", hint="name an existing .py file before ':'")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(os.getcwd())


def resolve(name: str):
    """The callable that ``module:attr.attr`` names.

    Raises:
        InputError: the module cannot be imported or has no such attribute.
    """
    module_name, _, attr = name.rpartition(":")
    try:
        target = _import(module_name)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{name}: cannot import {module_name}: {one_line(exc)}",
                         hint="run tk from the folder the module is importable from") from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise InputError(f"{name}: {module_name} has no attribute {attr}",
                             hint=f"its names: {', '.join(n for n in dir(target) if not n.startswith('_'))[:200]}")
        target = getattr(target, part)
    if not callable(target):
        raise InputError(f"{name}: {attr} is not callable", hint="name a function or class that builds the model")
    return target


def load(request: ModelRequest) -> LoadedModel:
    """Call the factory and assemble its inputs (see the module docstring).

    Raises:
        InputError: import/attribute errors, the factory raising, a result that is not a module,
            or a module without inputs and no ``input_shapes``.
    """
    import torch

    from turnkey_like.zoo.inputs import Synthesizer

    name = request.name
    factory = resolve(name)
    notes: list[str] = []
    made: dict = {}

    def make():
        try:
            result = factory(**(request.model_args or {}))
        except Exception as exc:
            raise InputError(f"{name}: the factory raised {one_line(exc)}",
                             hint="check --model-args against its parameters") from exc
        model, *inputs = result if isinstance(result, tuple) else (result,)
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"{name}: the factory returned {type(model).__name__}, not a torch.nn.Module",
                             hint="return a module, or (module, args) / (module, args, kwargs)")
        made["inputs"] = inputs
        return model

    model, on_meta = build_module(make, request, notes, params=0)  # never call user code twice to count
    inputs = made.get("inputs", [])
    args = tuple(inputs[0]) if inputs else ()
    kwargs = dict(inputs[1]) if len(inputs) > 1 else {}
    synth = Synthesizer(request.seed, on_meta)
    params = [n for n, p in inspect.signature(model.forward).parameters.items()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    shapes = request.input_shapes
    unknown = sorted(set(shapes) - set(params))
    if unknown:
        raise InputError(f"{name} takes no input {', '.join(unknown)}", hint=f"its inputs are: {', '.join(params)}")
    if shapes:
        positional = list(args)
        for index, param in enumerate(params):
            if param not in shapes:
                continue
            tensor = synth.like_name(param, shapes[param])
            if index < len(positional):
                positional[index] = tensor
            elif index == len(positional) and param not in kwargs:
                positional.append(tensor)
            else:
                kwargs[param] = tensor
        args = tuple(positional)
    elif not inputs:
        raise InputError(f"{name}: the factory returned a module without example inputs",
                         hint=f"give them with --input-shape {params[0] if params else 'x'}:D0,D1,... "
                              "or return (module, args)")
    if on_meta:
        from turnkey_like.calls import map_tensors

        args, kwargs = map_tensors(lambda t: t.to("meta"), (args, kwargs))
    filled = msgspec.structs.replace(request, source="factory", no_weights=on_meta)
    return LoadedModel(model=model, args=args, kwargs=kwargs, request=filled, notes=notes, on_meta=on_meta)
