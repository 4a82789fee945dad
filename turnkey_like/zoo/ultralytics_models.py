"""ultralytics models: ``*.yaml`` definitions (``yolov8n.yaml``, ``yolo11n-seg.yaml``) and ``*.pt`` files.

- ``NAME.yaml``: a definition shipped with ultralytics (or a local yaml file), built with random
  weights (seeded) by ``ultralytics.YOLO`` (``RTDETR`` for ``rtdetr-*``); the scale letter in the
  name picks the width/depth (``n s m l x``), as ultralytics reads it.
- ``PATH.pt``: a checkpoint. A ``.pt`` file is a pickle: tk loads it only because the user named
  that file, and only when the file exists (tk never downloads one), through ultralytics' own loader
  (``ultralytics.nn.tasks.load_checkpoint``) with its restricted unpickling turned on
  (:func:`restricted_load`): ``torch.load(weights_only=True)`` against ultralytics' allow-list of
  its model classes. ultralytics leaves that off by default (``ULTRALYTICS_SAFE_LOAD``), and then
  unpickles anything, and installs a missing module it names; tk never loads a ``.pt`` that way.
  A file that references other types is refused. It holds weights, so ``pretrained`` changes
  nothing and ``no_weights`` is refused.

Input: ``images`` [B, 3, imgsz, imgsz] floats in [0, 1) (ultralytics' own scaling), imgsz default
640 (ultralytics' default ``imgsz``), B default 1. ``model_args`` is refused (the definition fixes
the model).

The :class:`~turnkey_like.zoo.sources.Source` of ``*.yaml``, ``*.yml`` and ``*.pt`` names (priority
30); ultralytics and torch are imported where used.
"""

from __future__ import annotations

import contextlib
import functools
import re
from pathlib import Path

import msgspec

from turnkey_like.errors import InputError, one_line
from turnkey_like.records import ModelRequest
from turnkey_like.zoo.base import DEFAULT_BATCH, LoadedModel, build_module, default, file_stem, require

name = "ultralytics"
package = "ultralytics"
listed = True
closed_list = False  # local yaml and .pt files too
priority = 30
prefix = ""
input_axes = frozenset({"batch_size", "imgsz"})

DEFAULT_IMGSZ = 640
"""ultralytics' default image size (``imgsz`` in ``ultralytics/cfg/default.yaml``)."""

_SCALED = re.compile(r"^(yolo(?:e-)?v?\d+)(.*)$")


def preload(requests: list[ModelRequest]) -> None:
    """Import ultralytics as :func:`load` does (:func:`turnkey_like.zoo.preload`).

    Raises:
        InputError: ultralytics is not installed.
    """
    _require()


def _require():
    """Import ultralytics without its import-time online check.

    ``import ultralytics`` resolves ``one.one.one.one`` and ``dns.google`` to set ``ONLINE``
    (``ultralytics.utils.is_online``), which costs seconds on a machine without DNS. tk never lets
    ultralytics download anything (yaml definitions get random weights, ``.pt`` files must exist),
    so ``YOLO_OFFLINE=1`` is set for the import and restored after; the user's own scripts, which
    tk runs in other processes, are unaffected.
    """
    import os

    saved = os.environ.get("YOLO_OFFLINE")
    os.environ["YOLO_OFFLINE"] = "1"
    try:
        return require("ultralytics", "ultralytics")
    finally:
        if saved is None:
            os.environ.pop("YOLO_OFFLINE", None)
        else:
            os.environ["YOLO_OFFLINE"] = saved


@functools.lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return tuple(names())


def names() -> list[str]:
    """The yaml definitions ultralytics ships, one name per scale (``yolov8n.yaml`` ... ``yolov8x.yaml``)."""
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("ultralytics")  # its files, without importing it (see _require)
    if spec is None or not spec.submodule_search_locations:
        _require()  # the InputError naming the extra
    root = Path(list(spec.submodule_search_locations)[0]) / "cfg" / "models"
    found: set[str] = set()
    for path in root.rglob("*.yaml"):
        scales = (yaml.safe_load(path.read_text()) or {}).get("scales") or {}
        match = _SCALED.match(path.stem)
        if scales and match and not match.group(2)[:1].isalpha():  # the scale letter follows the version, as ultralytics' guess_model_scale reads it
            found.update(f"{match.group(1)}{s}{match.group(2)}.yaml" for s in scales)
        else:  # rtdetr-l.yaml, yolov9c.yaml: the name is the model
            found.add(path.name)
    return sorted(found)


def claims(name: str) -> bool:
    """Whether ``name`` ends with ``.yaml``, ``.yml`` or ``.pt`` (any case)."""
    return name.lower().endswith((".yaml", ".yml", ".pt"))


_FAMILY = re.compile(r"^(.*?\d+)[nsmlx]?(-.*)?$")


def family(name: str) -> str:
    """The definition's name without its scale letter and suffix (``yolov8`` for ``yolov8n.yaml``,
    ``yolo11-seg`` for ``yolo11n-seg.yaml``)."""
    bare = Path(name).name.split(".")[0]
    match = _FAMILY.match(bare)
    return (match.group(1) + (match.group(2) or "")) if match else bare


def constructor(name: str, model) -> tuple[str | None, list[str]]:
    """``lambda: ultralytics.YOLO("NAME").model`` and its import."""
    return f"lambda: ultralytics.YOLO({name!r}).model", ["import ultralytics"]


def stem(request: ModelRequest) -> str:
    """The file's stem (``models/yolov8n.yaml`` -> ``yolov8n``)."""
    return file_stem(request.name)


def load(request: ModelRequest) -> LoadedModel:
    """Build an ultralytics model from a yaml name or load a local ``.pt`` file; see the module docstring.

    Raises:
        InputError: unknown yaml name (closest names), missing ``.pt`` file, ``model_args``,
            ``no_weights`` with a ``.pt`` file, or a load failure (one line).
    """
    _require()
    name = request.name
    notes: list[str] = []
    if request.model_args:
        raise InputError(f"{name}: --model-args does not apply to ultralytics models",
                         hint="edit a copy of the yaml definition and name that file instead")
    if name.lower().endswith(".pt"):
        model, on_meta = _load_pt(name, request), False
    else:
        model, on_meta = _build_yaml(name, request, notes)
    batch = default(request.batch_size, DEFAULT_BATCH)
    imgsz = default(request.imgsz, DEFAULT_IMGSZ)
    from turnkey_like.zoo.inputs import Synthesizer

    synth = Synthesizer(request.seed, on_meta)
    shape = list(request.input_shapes.get("x", [batch, 3, imgsz, imgsz]))
    unknown = sorted(set(request.input_shapes) - {"x"})
    if unknown:
        raise InputError(f"{name} takes no input {', '.join(unknown)}", hint="its input is: x")
    filled = msgspec.structs.replace(request, source="ultralytics", batch_size=batch, seq_len=None,
                                     imgsz=imgsz, no_weights=on_meta)
    return LoadedModel(model=model, args=(synth.unit(shape),), kwargs={}, request=filled, notes=notes,
                       on_meta=on_meta)


def _load_pt(name: str, request: ModelRequest):
    path = Path(name)
    if not path.is_file():
        raise InputError(f"{name}: no such file (tk does not download .pt files)",
                         hint="download the checkpoint yourself and name its path, or use NAME.yaml")
    if request.no_weights:
        raise InputError(f"{name}: a .pt file holds weights; --no-weights does not apply",
                         hint="use the yaml definition (e.g. yolov8n.yaml) for a model without weights")
    from ultralytics.nn import tasks

    try:
        with restricted_load(name):
            model, _ = tasks.load_checkpoint(str(path))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{name}: cannot load the checkpoint: {one_line(exc)}",
                         hint="is it an ultralytics checkpoint? only ultralytics' own model classes are unpickled") from exc
    return model.float().eval()


@contextlib.contextmanager
def restricted_load(name: str):
    """Turn on ultralytics' restricted checkpoint loading inside the block.

    ``ultralytics.nn.tasks.torch_safe_load`` reads the module flag ``SAFE_LOAD`` (the
    ``ULTRALYTICS_SAFE_LOAD`` environment variable, read once at import; off by default) on each
    call: on, it loads with ``torch.load(weights_only=True)`` against the allow-list of ultralytics'
    and torch's model classes (``_SafeLoad``), and never installs a module a checkpoint names. The
    flag is set for the block and restored after.

    Raises:
        InputError: this ultralytics has no restricted loading (older than the pinned 8.4.190, or
            torch older than 2.6): the file is not loaded at all.
    """
    from ultralytics.nn import tasks

    if not hasattr(tasks, "SAFE_LOAD") or not getattr(getattr(tasks, "_SafeLoad", None), "SUPPORTED", False):
        import ultralytics

        raise InputError(f"{name}: ultralytics {ultralytics.__version__} cannot load a .pt file with restricted "
                         "unpickling, and tk loads none without it",
                         hint="upgrade ultralytics (8.4.190 has it) and torch (2.6 or newer)")
    saved = tasks.SAFE_LOAD
    tasks.SAFE_LOAD = True
    try:
        yield
    finally:
        tasks.SAFE_LOAD = saved


def _build_yaml(name: str, request: ModelRequest, notes: list[str]):
    from ultralytics import RTDETR, YOLO

    local = Path(name).is_file()
    if not local and name not in _names():
        from turnkey_like.zoo import unknown_name

        raise unknown_name(name, "not a yaml definition ultralytics ships, nor a local file")
    wrapper = RTDETR if Path(name).stem.lower().startswith("rtdetr") else YOLO

    def make():
        return wrapper(name, verbose=False).model

    model, on_meta = build_module(make, request, notes, params=0,  # all far below the threshold
                                  hint="check the yaml definition")
    if request.pretrained:
        notes.append("yaml definitions carry no weights: random weights (name a .pt file for trained ones)")
    return model, on_meta
