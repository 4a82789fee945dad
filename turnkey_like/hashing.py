"""Model and invocation hashes, compatible with TurnkeyML (see ``shared/HASHING.md``).

- model hash: ``sha256(str(module))[:8]``: the architecture as PyTorch prints it, no weights. The
  repr can change between torch versions (e.g. a new ``extra_repr`` field), so a hash is stable for a
  given torch version; the docs say so.
- ONNX file hash: ``sha256(file bytes)[:8]``.
- invocation hash: ``sha256(model_hash + str(parent_hash) + str(shapes) + str(dtypes))[:8]``, where
  ``shapes``/``dtypes`` are dicts over the call's inputs in sorted-name order
  (:func:`describe_inputs`).

Inputs TurnkeyML could not hash (it raised) are described by their type name and left out of the
hashed dicts, with a note in the record, so a user's call is never broken by tk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from turnkey_like.records import TensorSpec

HASH_LENGTH = 8


def _sha(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:HASH_LENGTH]


def model_hash(module) -> str:
    """Return the 8-hex-char hash of a module's architecture: ``sha256(str(module))[:8]``."""
    return _sha(str(module))


def file_hash(path: str | Path) -> str:
    """Return the 8-hex-char hash of a file's bytes (used for ``.onnx`` inputs).

    Raises:
        InputError: the file cannot be read (gone, no permission, a symbolic link loop, a name the
            file system refuses); one line naming it (``inputs.path_error``).
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, ValueError) as e:
        from turnkey_like.inputs import path_error

        raise path_error(str(path), e) from None
    return digest.hexdigest()[:HASH_LENGTH]


def merge_inputs(args: tuple, kwargs: dict) -> dict[str, Any]:
    """Merge a call's arguments into one mapping: keywords by name, positionals as ``Positional Arg N``."""
    merged = dict(kwargs)
    for i, arg in enumerate(args, start=1):
        merged[f"Positional Arg {i}"] = arg
    return merged


def _numpy_dtype_name(tensor) -> str:
    """Numpy's name for a torch tensor's dtype (``float32``, ``int64``, ``bool``, ...).

    Types numpy lacks (``bfloat16``, float8 variants) keep torch's name without the ``torch.`` prefix.
    """
    return str(tensor.dtype).removeprefix("torch.")


_NDARRAY: list[type] = []  # numpy.ndarray, imported on the first array-like leaf (numpy arrays hash like tensors)


def _leaf_spec(name: str, value: Any) -> TensorSpec | None:
    """Describe one non-container value; ``None`` for values left out of the signature (``None``)."""
    if value is None:
        return None
    cls_name = type(value).__name__
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        if not _NDARRAY:
            import numpy as np

            _NDARRAY.append(np.ndarray)
        if isinstance(value, _NDARRAY[0]):
            return TensorSpec(name, "tensor", tuple(map(int, value.shape)), value.dtype.name)
        try:
            shape = tuple(map(int, value.shape))
        except TypeError:  # symbolic dims
            shape = tuple(value.shape)
        device = str(value.device) if hasattr(value, "device") else None
        return TensorSpec(name, "tensor", shape, _numpy_dtype_name(value), device)
    if isinstance(value, (bool, int, float)):
        return TensorSpec(name, "scalar", (1,), type(value).__name__)
    return TensorSpec(name, "other", None, cls_name)


def _walk(name: str, value: Any, out: list[TensorSpec]) -> None:
    if isinstance(value, (list, tuple)) and not hasattr(value, "shape"):
        for i, element in enumerate(value):
            if isinstance(element, (list, tuple)):
                for j, inner in enumerate(element):
                    _walk(f"{name}[{i}][{j}]", inner, out)
            else:
                _walk(f"{name}[{i}]", element, out)
        return
    if isinstance(value, dict):
        for key in value:
            _walk(f"{name}[{key!r}]", value[key], out)
        return
    spec = _leaf_spec(name, value)
    if spec is not None:
        out.append(spec)


def describe_inputs(args: tuple, kwargs: dict) -> list[TensorSpec]:
    """Flatten a call's inputs into :class:`TensorSpec` leaves, in the order HASHING.md walks them.

    Names are walked in plain sorted string order; lists/tuples expand to ``name[i]`` (and
    ``name[i][j]`` one level down), dicts to ``name['key']`` (a tk extension: TurnkeyML raised on
    dicts), ``None`` is left out, and anything else becomes a ``kind="other"`` leaf.
    """
    merged = merge_inputs(args, kwargs)
    specs: list[TensorSpec] = []
    for key in sorted(merged):
        _walk(key, merged[key], specs)
    return specs


def invocation_hash(model_hash_: str, parent_hash: str | None, specs: list[TensorSpec]) -> tuple[str, str | None]:
    """Return ``(invocation hash, note)`` for a model hash, its parent invocation hash and inputs.

    ``note`` is ``None`` when every input was hashed the TurnkeyML way, otherwise it names the inputs
    that were represented by their type name only (and therefore not part of the hash).
    """
    shapes: dict[str, tuple] = {}
    dtypes: dict[str, str] = {}
    others = []
    for spec in specs:
        if spec.kind == "other":
            others.append(f"{spec.name} ({spec.dtype})")
            continue
        shapes[spec.name] = spec.shape
        dtypes[spec.name] = spec.dtype
    text = model_hash_ + str(parent_hash) + str(shapes) + str(dtypes)
    note = None
    if others:
        note = "not hashable the TurnkeyML way, represented by type only: " + ", ".join(others)
        text += str(sorted(others))
    return _sha(text), note
