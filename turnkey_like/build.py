"""Build one invocation to ONNX: export, check, optimize, optional fp16, and a faithfulness check.

:func:`build_invocation` takes the live model and the first call's real ``args``/``kwargs`` and writes,
into the invocation's build folder:

- ``model.onnx`` (plus ``model.onnx.data`` when the weights are stored as external data): the export
  at the recorded static shapes, default opset 18, with ``torch.onnx.export``'s current
  (``dynamo=True``) exporter, falling back to the TorchScript exporter (``dynamo=False``);
- ``model_fp16.onnx`` with ``--precision fp16`` (onnxconverter-common's float16 converter,
  ``keep_io_types=True`` so inputs and outputs stay fp32);
- ``model.opt.onnx``: ONNX Runtime's optimized copy (graph optimization level *extended*, which stays
  portable across execution providers; the CPU-only layout passes of level *all* are left to session
  creation at benchmark time);
- ``build.log``: everything the exporters printed.

Inputs: a call's arguments are flattened with torch's pytree (``args`` then ``kwargs``), tensor leaves
become the ONNX graph's inputs in that order, and every other leaf (``use_cache=False``, ints,
``None``) is baked into the graph as a constant. Keyword inputs keep their names (``input_ids``,
``attention_mask``); positional ones take the forward signature's parameter names; nested leaves get
``_0``/``_key`` suffixes (``x_0``, ``x_1`` for ``forward(self, x: tuple)``). Passing keyword inputs by
position to a wrapper is what avoids TurnkeyML's ``use_cache given twice`` export failures on
BERT/GPT-2.

Faithfulness: the ONNX model runs on ONNX Runtime (CPU) on the same inputs as eager PyTorch; each output
gets ``max_abs_err = max|onnx - eager|`` and ``max_rel_err = max|onnx - eager| / max|eager|`` (relative to
the output's largest magnitude, so near-zero elements do not blow it up), and passes when every element
satisfies ``|onnx - eager| <= abs + rel * |eager|`` (numpy.allclose's rule) with :data:`TOLERANCES`.

Everything runs in a forked child (:mod:`turnkey_like.launcher`), so an exporter crash or hang becomes a
``error``/``timeout``/``killed`` stage result instead of ending tk.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from turnkey_like.errors import BuildError
from turnkey_like.records import Record, StageResult, Status

#: Faithfulness tolerances per precision: an element passes when |onnx - eager| <= abs + rel * |eager|
#: (numpy.allclose's rule). fp32: exporter rewrites (fused kernels, different summation order) move
#: results by ~1e-6 relative; 1e-4/1e-3 leaves room for deep networks while catching real mistakes.
#: fp16: a 10-bit mantissa gives ~5e-4 relative error per op (IEEE 754 binary16), accumulating over
#: layers; 1e-2/5e-2 is the usual bar for fp16 inference (e.g. ONNX Runtime's float16 tests use 1e-2..1e-1).
TOLERANCES = {"fp32": {"abs": 1e-4, "rel": 1e-3}, "fp16": {"abs": 1e-2, "rel": 5e-2}}

#: protobuf's hard limit is 2 GiB per serialized message; weights above 1.8 GiB go to external data.
EXTERNAL_DATA_THRESHOLD_BYTES = int(1.8 * 2**30)

#: bytes hashed per tensor for the weights fingerprint: tensors up to this size are hashed whole,
#: larger ones by this many bytes sampled in 16 evenly spaced chunks (plus their shape and dtype).
FINGERPRINT_SAMPLE_BYTES = 64 * 1024

MIN_OPSET = 17
PRECISIONS = ("fp32", "fp16")
REBUILD_POLICIES = ("if_needed", "always", "never")
EXPORTERS = ("auto", "dynamo", "torchscript")

ONNX_NAME = "model.onnx"
FP16_NAME = "model_fp16.onnx"
OPT_NAME = "model.opt.onnx"
BUILD_LOG = "build.log"


@dataclass
class BuildOptions:
    """How to build: ONNX opset, precision, reuse policy, time limit and exporter choice.

    Attributes:
        opset: ONNX opset (>= 17; default 18).
        precision: ``fp32`` or ``fp16`` (weights and compute in fp16, inputs/outputs kept fp32).
        rebuild: ``if_needed`` (reuse a build whose fingerprint matches and whose files exist),
            ``always`` (rebuild), ``never`` (use what is there, or fail saying why it cannot).
        timeout_s: seconds before the build's child process is killed.
        exporter: ``auto`` (dynamo, then TorchScript), ``dynamo`` or ``torchscript`` only.
    """

    opset: int = 18
    precision: str = "fp32"
    rebuild: str = "if_needed"
    timeout_s: float = 3600
    exporter: str = "auto"

    def validate(self) -> None:
        """Raise :class:`BuildError` naming the first invalid option."""
        if not isinstance(self.opset, int) or self.opset < MIN_OPSET:
            raise BuildError(f"opset {self.opset!r} is not supported", hint=f"use --opset {MIN_OPSET} or newer")
        if self.precision not in PRECISIONS:
            raise BuildError(f"unknown precision {self.precision!r}", hint="use --precision fp32 or fp16")
        if self.rebuild not in REBUILD_POLICIES:
            raise BuildError(f"unknown rebuild policy {self.rebuild!r}", hint="use if_needed, always or never")
        if self.exporter not in EXPORTERS:
            raise BuildError(f"unknown exporter {self.exporter!r}", hint="use auto, dynamo or torchscript")
        if not self.timeout_s or self.timeout_s <= 0:
            raise BuildError(f"build timeout {self.timeout_s!r} must be positive seconds")


@dataclass
class BuildResult(Record):
    """What a build produced (``StageResult.result`` of the build stage).

    Attributes:
        onnx_path: the model to run (the fp16 file with ``--precision fp16``), absolute path.
        exported_path: the exporter's fp32 output (same as ``onnx_path`` for fp32).
        optimized_path: ONNX Runtime's optimized copy (level *extended*).
        data_files: external-data files that must stay next to ``onnx_path`` (names, same folder).
        size_bytes: bytes of ``onnx_path`` plus its external data.
        external_data: whether weights are stored outside the ``.onnx`` protobuf.
        opset: default-domain opset of the exported model.
        exporter: ``dynamo`` or ``torchscript``: the one that succeeded.
        exporter_errors: one-line error per exporter that was tried and failed.
        precision: ``fp32`` or ``fp16``.
        input_names, output_names: graph input/output names, in graph order.
        input_specs: ``{"name", "shape", "dtype"}`` per graph input (numpy dtype names).
        onnx_op_counts: node count per ONNX op type (sub-graphs included), sorted by name.
        durations: seconds per step: ``export``, ``check``, ``fp16``, ``optimize``, ``validate``.
        fingerprint: what the build depends on (see :func:`fingerprint`).
        faithfulness: per output name, ``max_abs_err``, ``max_rel_err``, ``passed``.
        tolerance: ``{"abs", "rel"}`` used for ``faithful`` (:data:`TOLERANCES`).
        faithful: True when every output is within tolerance, ``None`` when not measured.
        reused: True when this result was reused from an earlier build.
        stale: fingerprint keys that differ from the current model (``rebuild=never`` reuse only).
    """

    onnx_path: str
    optimized_path: str | None
    size_bytes: int
    external_data: bool
    opset: int
    exporter: str
    precision: str = "fp32"
    exported_path: str | None = None
    data_files: list[str] = field(default_factory=list)
    exporter_errors: dict[str, str] = field(default_factory=dict)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    input_specs: list[dict] = field(default_factory=list)
    onnx_op_counts: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    faithfulness: dict[str, dict] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    faithful: bool | None = None
    reused: bool = False
    stale: list[str] = field(default_factory=list)



# --------------------------------------------------------------------------------------------------
# Inputs: flatten a call into named tensors, and a wrapper that takes them positionally
# --------------------------------------------------------------------------------------------------


@dataclass
class FlatInputs:
    """A call's inputs flattened for export.

    Attributes:
        names: one ONNX input name per tensor leaf, unique, in pytree order.
        tensors: the tensor leaves (same order).
        spec: torch pytree spec of ``(args, kwargs)``.
        constants: per pytree leaf, ``None`` for a tensor (taken from the graph input) or a 1-tuple
            holding the non-tensor value baked into the graph.
    """

    names: list[str]
    tensors: list
    spec: Any
    constants: list


def _sanitize(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.]", "_", str(name)).strip("_")
    return name or "input"


def _positional_names(model) -> tuple[list[str], str | None]:
    """Names of ``model.forward``'s positional parameters and of its ``*args`` (or ``None``)."""
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return [], None
    positional, var = [], None
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            var = p.name
    return positional, var


def flatten_inputs(model, args: tuple, kwargs: dict) -> FlatInputs:
    """Flatten a call's ``(args, kwargs)`` into named tensor leaves (see the module doc for names).

    ``model`` may be ``None`` (names then come from the keywords and ``input_N`` for positionals).
    """
    import torch
    from torch.utils._pytree import tree_flatten_with_path

    positional, var = _positional_names(model) if model is not None else ([], None)
    leaves_with_path, spec = tree_flatten_with_path((tuple(args), dict(kwargs or {})))
    names, tensors, constants, used = [], [], [], set()
    for path, value in leaves_with_path:
        if not isinstance(value, torch.Tensor):
            constants.append((value,))
            continue
        constants.append(None)
        root, first, rest = path[0], path[1], path[2:]
        if root.idx == 0:  # positional
            i = first.idx
            if i < len(positional):
                base = positional[i]
            elif var is not None:
                base = f"{var}_{i - len(positional)}"
            else:
                base = f"input_{i}"
        else:
            base = first.key
        name = _sanitize("_".join([str(base)] + [_key_part(key) for key in rest]))
        unique, n = name, 1
        while unique in used:
            unique, n = f"{name}_{n}", n + 1
        used.add(unique)
        names.append(unique)
        tensors.append(value)
    return FlatInputs(names, tensors, spec, constants)


def _key_part(key) -> str:
    """One pytree path key as a name part: list index, dict key or attribute name."""
    from torch.utils._pytree import GetAttrKey, MappingKey, SequenceKey

    if isinstance(key, SequenceKey):
        return str(key.idx)
    if isinstance(key, MappingKey):
        return str(key.key)
    if isinstance(key, GetAttrKey):
        return key.name
    return str(key)


def output_names_for(outputs, avoid: set[str]) -> list[str]:
    """ONNX output names for a model's output pytree: ``last_hidden_state``, ``output_0``, ``output``."""
    import torch
    from torch.utils._pytree import SequenceKey, tree_flatten_with_path

    leaves, _ = tree_flatten_with_path(outputs)
    names, used = [], set(avoid)
    for path, value in leaves:
        if not isinstance(value, torch.Tensor):
            continue
        parts = [_key_part(key) for key in path]
        if not parts:
            name = "output"
        elif isinstance(path[0], SequenceKey):
            name = _sanitize("output_" + "_".join(parts))
        else:
            name = _sanitize("_".join(parts))
        unique, n = name, 1
        while unique in used:
            unique, n = f"{name}_{n}", n + 1
        used.add(unique)
        names.append(unique)
    return names


def tensor_leaves(outputs) -> list:
    """The tensor leaves of an output pytree (``ModelOutput``, tuples, dicts), in pytree order."""
    import torch
    from torch.utils._pytree import tree_flatten

    return [v for v in tree_flatten(outputs)[0] if isinstance(v, torch.Tensor)]


def _export_wrapper(model, flat: FlatInputs):
    """A module whose ``forward(*tensors)`` rebuilds the original call and returns its tensor leaves."""
    import torch
    from torch.utils._pytree import tree_unflatten

    class ExportWrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            it = iter(tensors)
            leaves = [next(it) if c is None else c[0] for c in flat.constants]
            args, kwargs = tree_unflatten(leaves, flat.spec)
            return tuple(tensor_leaves(self.model(*args, **kwargs)))

    wrapper = ExportWrapper()
    object.__setattr__(wrapper, "training", model.training)  # keep the user's mode; do not recurse
    return wrapper


def to_numpy(tensor):
    """A torch tensor as a numpy array on the CPU (bfloat16 widened to float32, numpy has none)."""
    import torch

    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.contiguous().numpy()


# --------------------------------------------------------------------------------------------------
# Fingerprint (reuse)
# --------------------------------------------------------------------------------------------------


def weights_hash(model) -> str:
    """sha256 (16 hex chars) over a module's state_dict: names, shapes, dtypes and sampled bytes.

    Tensors up to :data:`FINGERPRINT_SAMPLE_BYTES` are hashed whole; larger ones by 16 evenly spaced
    chunks totalling that many bytes, which catches retrained or re-initialised weights (they change
    everywhere) in milliseconds even for multi-GB models, but may miss an edit of a few elements.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        t = tensor.detach()
        if t.is_meta:
            continue
        raw = t.reshape(-1).contiguous().cpu().view(torch.uint8) if t.numel() else t.cpu().view(torch.uint8)
        n = raw.numel()
        if n <= FINGERPRINT_SAMPLE_BYTES:
            digest.update(raw.numpy().tobytes())
        else:
            chunk = FINGERPRINT_SAMPLE_BYTES // 16
            for k in range(16):
                start = (n - chunk) * k // 15
                digest.update(raw[start : start + chunk].numpy().tobytes())
    return digest.hexdigest()[:16]


def _signature_hash(flat: FlatInputs) -> str:
    parts = [f"{n}:{tuple(t.shape)}:{t.dtype}" for n, t in zip(flat.names, flat.tensors)]
    parts += [repr(c[0]) for c in flat.constants if c is not None]
    parts.append(str(flat.spec))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def fingerprint(model, flat: FlatInputs, options: BuildOptions) -> dict:
    """What a build depends on: ``weights``, ``inputs``, ``opset``, ``exporter``, ``precision``, ``tk``, ``torch``.

    ``weights`` is :func:`weights_hash`; ``inputs`` hashes input names, shapes, dtypes, the values of
    non-tensor inputs (baked into the graph) and the call's structure. Two builds with equal
    fingerprints produce the same ONNX model.
    """
    import torch

    from turnkey_like import __version__

    return {
        "weights": weights_hash(model),
        "inputs": _signature_hash(flat),
        "opset": options.opset,
        "exporter": options.exporter,
        "precision": options.precision,
        "tk": __version__,
        "torch": torch.__version__,
    }


# --------------------------------------------------------------------------------------------------
# ONNX helpers (also used for .onnx inputs)
# --------------------------------------------------------------------------------------------------


def external_data_files(onnx_path: str | Path) -> list[str]:
    """Names (relative to the model's folder) of the external-data files a model refers to."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    files = []
    for tensor in _get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location" and entry.value not in files:
                    files.append(entry.value)
    return files


def onnx_size_bytes(onnx_path: str | Path, data_files: list[str]) -> int:
    """Bytes of a model file plus its external-data files."""
    path = Path(onnx_path)
    return path.stat().st_size + sum((path.parent / f).stat().st_size for f in data_files if (path.parent / f).exists())


def op_counts(model_proto) -> dict[str, int]:
    """Node count per op type (``domain::Op`` outside the default domain), sub-graphs and functions included."""
    counts: dict[str, int] = {}

    def visit(graph):
        for node in graph.node:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            counts[key] = counts.get(key, 0) + 1
            for attr in node.attribute:
                if attr.g is not None and attr.HasField("g"):
                    visit(attr.g)
                for g in attr.graphs:
                    visit(g)

    visit(model_proto.graph)
    for fn in model_proto.functions:
        for node in fn.node:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def default_opset(model_proto) -> int | None:
    """The model's default-domain (``ai.onnx``) opset version."""
    for imp in model_proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def check_onnx(onnx_path: str | Path) -> None:
    """Run ``onnx.checker`` on a model file (the path form, which handles >2 GB external data)."""
    import onnx

    onnx.checker.check_model(os.fspath(onnx_path))


def optimize_onnx(onnx_path: str | Path, optimized_path: str | Path, external: bool) -> None:
    """Write ONNX Runtime's optimized copy of a model (graph optimization level *extended*, CPU EP)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = os.fspath(optimized_path)
    if external:
        so.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", Path(optimized_path).name + ".data"
        )
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(os.fspath(onnx_path), so, providers=["CPUExecutionProvider"])


def convert_fp16(src: str | Path, dst: str | Path, external: bool) -> None:
    """Convert a model to fp16 with onnxconverter-common (``keep_io_types=True``) and save it."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(os.fspath(src))
    # Stale fp32 value_info entries (the TorchScript exporter writes them) make the converter leave
    # mismatched types behind (ORT: "Type (tensor(float16)) ... does not match expected type"); the
    # converter re-infers shapes itself, so drop them.
    del model.graph.value_info[:]
    _isolate_graph_outputs(model)
    converted = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=external)
    _align_casts_with_fp16_types(converted)
    save_onnx(converted, dst, external)


def _align_casts_with_fp16_types(model_proto) -> None:
    """Make ``Cast(to=FLOAT)`` nodes whose output the converter typed as fp16 cast to FLOAT16.

    onnxconverter-common converts value types but leaves a model's own ``Cast(to=float)`` (e.g.
    ``mask.float()``) alone, which ORT then rejects: "Type (tensor(float16)) of output arg ... does not
    match expected type (tensor(float))".
    """
    import onnx

    fp16_values = {v.name for v in model_proto.graph.value_info
                   if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    for node in model_proto.graph.node:
        if node.op_type == "Cast" and node.output and node.output[0] in fp16_values:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                    attr.i = onnx.TensorProto.FLOAT16


def _isolate_graph_outputs(model_proto) -> None:
    """Give every graph output that other nodes also read its own ``Identity`` node.

    onnxconverter-common's ``keep_io_types`` casts graph outputs back to fp32 under their own name, so a
    node that reads an output internally (BERT's pooler reads ``last_hidden_state``) would get fp32 where
    fp16 is expected; reading an internal copy instead avoids that.
    """
    import onnx

    graph = model_proto.graph
    outputs = {o.name for o in graph.output}
    consumed = {name for node in graph.node for name in node.input}
    for name in sorted(outputs & consumed):
        internal = f"{name}__tk_internal"
        for node in graph.node:
            for i, out in enumerate(node.output):
                if out == name:
                    node.output[i] = internal
            for i, inp in enumerate(node.input):
                if inp == name:
                    node.input[i] = internal
        graph.node.append(onnx.helper.make_node("Identity", [internal], [name], name=f"{name}__tk_identity"))


def save_onnx(model_proto, path: str | Path, external: bool) -> None:
    """Save a model; with ``external`` all weights go to one ``<name>.data`` file beside it."""
    import onnx

    path = Path(path)
    if external:
        data = path.with_name(path.name + ".data")
        if data.exists():
            data.unlink()
        onnx.save_model(model_proto, os.fspath(path), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=data.name, size_threshold=1024)
    else:
        onnx.save_model(model_proto, os.fspath(path))


def compare_outputs(actual: list, expected: list, names: list[str], precision: str) -> tuple[dict, bool]:
    """Per-output error of ``actual`` (numpy) against ``expected`` (numpy) and whether all are in tolerance.

    Returns ``({name: {"max_abs_err", "max_rel_err", "passed", "shape"}}, all_passed)``.
    ``max_rel_err = max|a - e| / max|e|``; pass rule ``|a - e| <= abs + rel * |e|`` elementwise
    (:data:`TOLERANCES`); integer and bool outputs must match exactly.
    """
    import numpy as np

    tol = TOLERANCES[precision]
    report, ok = {}, True
    if len(actual) != len(expected):
        return {"_count": {"error": f"{len(actual)} ONNX outputs vs {len(expected)} eager outputs"}}, False
    for name, a, e in zip(names, actual, expected):
        a = np.asarray(a)
        e = np.asarray(e)
        if a.shape != e.shape:
            report[name] = {"error": f"shape {list(a.shape)} vs eager {list(e.shape)}", "passed": False}
            ok = False
            continue
        exact = not (np.issubdtype(e.dtype, np.floating) or np.issubdtype(e.dtype, np.complexfloating))
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        same = (a64 == e64) | (np.isnan(a64) & np.isnan(e64))  # equal infinities and NaN positions agree
        with np.errstate(invalid="ignore"):
            diff = np.where(same, 0.0, np.abs(a64 - e64))
        diff = np.where(np.isnan(diff), np.inf, diff)  # a NaN on one side only is an infinite error
        max_abs = float(diff.max()) if diff.size else 0.0
        scale = float(np.abs(e64).max()) if e64.size else 0.0
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        if exact:
            passed = bool(max_abs == 0)
        else:
            with np.errstate(invalid="ignore"):
                passed = bool(np.all(same | (diff <= tol["abs"] + tol["rel"] * np.abs(e64))))
        report[name] = {"max_abs_err": max_abs, "max_rel_err": max_rel, "passed": passed, "shape": list(e.shape)}
        ok = ok and passed
    return report, ok


def ort_cpu_outputs(onnx_path: str | Path, feed: dict) -> tuple[list, list[str]]:
    """Run a model once on ONNX Runtime's CPU EP; returns (outputs, output names)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(os.fspath(onnx_path), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    missing = names - set(feed)
    if missing:
        raise BuildError(f"no value for ONNX input(s) {sorted(missing)}")
    outs = sess.run(None, {k: v for k, v in feed.items() if k in names})
    return outs, [o.name for o in sess.get_outputs()]


# --------------------------------------------------------------------------------------------------
# The build itself (runs in the child)
# --------------------------------------------------------------------------------------------------


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(exc: BaseException) -> str:
    text = _ANSI.sub("", f"{type(exc).__name__}: {exc}").strip()
    line = next((ln for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return line if len(line) <= 300 else line[:297] + "..."


def file_facts(final: Path, exported: Path, optimized: Path) -> dict:
    """The :class:`BuildResult` fields that describe the files: absolute paths, the final model's
    external data files, its size with them (bytes), and whether it uses external data."""
    data_files = external_data_files(final)
    return {
        "onnx_path": os.fspath(final.resolve()),
        "exported_path": os.fspath(exported.resolve()),
        "optimized_path": os.fspath(optimized.resolve()),
        "data_files": data_files,
        "size_bytes": onnx_size_bytes(final, data_files),
        "external_data": bool(data_files),
    }


def finish_onnx(onnx_path: Path, build_dir: Path, options: BuildOptions, external: bool,
                durations: dict[str, float]) -> tuple[Path, Path]:
    """Check an ONNX file, convert it to float16 when asked, and save ORT's optimized copy.

    Shared by PyTorch builds and ``.onnx`` inputs. Adds ``check``, ``fp16`` and ``optimize`` stage
    times (s) to ``durations``.

    Returns:
        ``(final, optimized)``: the model at the requested precision and its ORT-optimized copy.

    Raises:
        onnx.checker.ValidationError / onnxruntime errors: the file is invalid (caught by the stage).
    """
    t0 = time.perf_counter()
    check_onnx(onnx_path)
    durations["check"] = time.perf_counter() - t0
    final = onnx_path
    if options.precision == "fp16":
        t0 = time.perf_counter()
        final = build_dir / FP16_NAME
        convert_fp16(onnx_path, final, external)
        check_onnx(final)
        durations["fp16"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    optimized = build_dir / OPT_NAME
    optimize_onnx(final, optimized, external)
    durations["optimize"] = time.perf_counter() - t0
    return final, optimized


def _export(model, flat: FlatInputs, path: Path, options: BuildOptions, external: bool, output_names):
    """Export with the chosen exporter(s); returns (exporter used, errors of the ones that failed)."""
    import torch

    wrapper = _export_wrapper(model, flat)
    tried = {"auto": ["dynamo", "torchscript"], "dynamo": ["dynamo"], "torchscript": ["torchscript"]}[options.exporter]
    errors: dict[str, str] = {}
    for method in tried:
        for stale in (path, path.with_name(path.name + ".data")):
            if stale.exists():
                stale.unlink()
        print(f"tk: exporting with the {method} exporter (opset {options.opset})", flush=True)
        try:
            with torch.no_grad():
                if method == "dynamo":
                    torch.onnx.export(
                        wrapper, tuple(flat.tensors), os.fspath(path), dynamo=True,
                        opset_version=options.opset, input_names=flat.names, output_names=output_names,
                        external_data=external, optimize=True,
                    )
                else:
                    import warnings

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        torch.onnx.export(
                            wrapper, tuple(flat.tensors), os.fspath(path), dynamo=False,
                            opset_version=options.opset, input_names=flat.names, output_names=output_names,
                            do_constant_folding=True,
                        )
                    if external:  # the TorchScript exporter scatters one file per tensor; gather them
                        import onnx

                        save_onnx(onnx.load(os.fspath(path)), path, True)
            return method, errors
        except Exception as exc:  # noqa: BLE001 - recorded, then the next exporter is tried
            import traceback

            traceback.print_exc()
            errors[method] = _one_line(exc)
    raise BuildError("ONNX export failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))


def _param_bytes(model) -> int:
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.data_ptr(), t.numel())
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


def _build_child(model, args, kwargs, build_dir: str, options: BuildOptions, fp: dict) -> dict:
    """The build, run in the isolated child; returns ``BuildResult.to_dict()``."""
    import onnx
    import torch

    build_dir_p = Path(build_dir)
    flat = flatten_inputs(model, args, kwargs)
    durations: dict[str, float] = {}

    t0 = time.perf_counter()
    with torch.no_grad():
        eager_out = model(*args, **(kwargs or {}))
    expected = [to_numpy(t) for t in tensor_leaves(eager_out)]
    out_names = output_names_for(eager_out, set(flat.names))
    durations["eager_reference"] = time.perf_counter() - t0
    if not expected:
        raise BuildError("the model returned no tensors; there is nothing to export")

    external = _param_bytes(model) > EXTERNAL_DATA_THRESHOLD_BYTES
    exported = build_dir_p / ONNX_NAME
    t0 = time.perf_counter()
    exporter, errors = _export(model, flat, exported, options, external, out_names)
    durations["export"] = time.perf_counter() - t0

    final, optimized = finish_onnx(exported, build_dir_p, options, external, durations)

    t0 = time.perf_counter()
    feed = {n: to_numpy(t) for n, t in zip(flat.names, flat.tensors)}
    actual, ort_out_names = ort_cpu_outputs(final, feed)
    faithfulness, faithful = compare_outputs(actual, expected, ort_out_names, options.precision)
    durations["validate"] = time.perf_counter() - t0

    proto = onnx.load(os.fspath(final), load_external_data=False)
    graph_inputs = [i.name for i in proto.graph.input]
    init_names = {i.name for i in proto.graph.initializer}
    graph_inputs = [n for n in graph_inputs if n not in init_names]
    specs = [
        {"name": n, "shape": list(t.shape), "dtype": str(to_numpy(t.reshape(-1)[:0]).dtype)}
        for n, t in zip(flat.names, flat.tensors)
        if n in graph_inputs
    ]
    result = BuildResult(
        **file_facts(final, exported, optimized),
        opset=default_opset(proto) or options.opset,
        exporter=exporter,
        exporter_errors=errors,
        precision=options.precision,
        input_names=graph_inputs,
        output_names=[o.name for o in proto.graph.output],
        input_specs=specs,
        onnx_op_counts=op_counts(proto),
        durations={k: round(v, 4) for k, v in durations.items()},
        fingerprint=fp,
        faithfulness=faithfulness,
        tolerance=dict(TOLERANCES[options.precision]),
        faithful=faithful,
    )
    return result.to_dict()


def uses_cuda(model, tensors) -> bool:
    """Whether a model's parameters/buffers or any of the given tensors live on a CUDA device."""
    import itertools

    values = itertools.chain(model.parameters(), model.buffers(), tensors) if model is not None else tensors
    return any(getattr(t, "is_cuda", False) for t in values)


def _files_present(previous: dict) -> str | None:
    """``None`` when a previous build's files all exist, else the first missing path."""
    for key in ("onnx_path", "optimized_path"):
        path = previous.get(key)
        if not path or not Path(path).exists():
            return path or key
    folder = Path(previous["onnx_path"]).parent
    for name in previous.get("data_files") or []:
        if not (folder / name).exists():
            return os.fspath(folder / name)
    return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _reused(previous: dict, started: str, t0: float, stale: list[str]) -> StageResult:
    result = dict(previous)
    result["reused"] = True
    result["stale"] = stale
    return StageResult(status=Status.SUCCESSFUL, duration_s=time.perf_counter() - t0, started_at=started, result=result)


def reuse_decision(previous: dict | None, fp: dict, options: BuildOptions, build_dir: Path, started: str,
                   t0: float) -> StageResult | None:
    """Apply ``options.rebuild`` to a previous build: the reused (or refused) result, or ``None`` to build.

    ``if_needed`` reuses when ``fp`` equals the previous fingerprint and all files exist; ``never`` reuses
    whatever is complete (listing differing fingerprint keys in ``stale``) or returns an error saying why
    it cannot; ``always`` returns ``None``.
    """
    if previous and options.rebuild != "always":
        missing = _files_present(previous)
        old_fp = previous.get("fingerprint") or {}
        stale = sorted(k for k in set(fp) | set(old_fp) if fp.get(k) != old_fp.get(k))
        if missing is None and (options.rebuild == "never" or not stale):
            return _reused(previous, started, t0, stale if options.rebuild == "never" else [])
        if options.rebuild == "never":
            return StageResult(status=Status.ERROR, duration_s=time.perf_counter() - t0, started_at=started,
                               error=f"--rebuild never, but the previous build is incomplete: {missing} is missing")
    elif options.rebuild == "never":
        return StageResult(status=Status.ERROR, duration_s=time.perf_counter() - t0, started_at=started,
                           error=f"--rebuild never, but there is no previous build in {build_dir}")
    return None


def build_invocation(
    model, args: tuple, kwargs: dict, build_dir: Path, options: BuildOptions, previous: dict | None = None
) -> StageResult:
    """Build one invocation to ONNX (see the module doc) and return the build stage's result.

    Args:
        model: the live ``torch.nn.Module``.
        args, kwargs: the recorded call's real inputs (tensors, nested tuples/dicts, non-tensor values).
        build_dir: the invocation's build folder (created if missing).
        options: :class:`BuildOptions`.
        previous: the cached record's ``BuildResult`` dict, if any; reused per ``options.rebuild``.

    Returns:
        :class:`StageResult` with ``result = BuildResult.to_dict()`` when successful; status
        ``error``/``timeout``/``killed`` with a one-line ``error`` and ``log_excerpt`` otherwise
        (model failures never raise).

    Raises:
        BuildError: invalid options (opset < 17, unknown precision/policy/exporter).
    """
    from turnkey_like.launcher import run_isolated

    options.validate()
    started, t0 = _now(), time.perf_counter()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        flat = flatten_inputs(model, args, kwargs)
        fp = fingerprint(model, flat, options)
    except Exception as exc:  # noqa: BLE001 - a model we cannot even read is a failed build
        return StageResult(status=Status.ERROR, duration_s=time.perf_counter() - t0, started_at=started,
                           error=f"could not read the model's inputs/weights: {_one_line(exc)}")

    decided = reuse_decision(previous, fp, options, build_dir, started, t0)
    if decided is not None:
        return decided

    for name in (ONNX_NAME, FP16_NAME, OPT_NAME):
        for stale_file in (build_dir / name, build_dir / (name + ".data")):
            if stale_file.exists():
                stale_file.unlink()
    log_path = build_dir / BUILD_LOG
    log_path.write_text("")
    # A forked child of a process that has used CUDA cannot use it: CUDA models build in-process.
    method = "inline" if uses_cuda(model, flat.tensors) else None
    outcome = run_isolated(_build_child, model, args, kwargs, os.fspath(build_dir), options, fp,
                           timeout_s=options.timeout_s, log_path=log_path, start_method=method)
    return outcome.stage_result(started, time.perf_counter() - t0)


def copy_build(result: dict, dest_dir: str | Path) -> dict:
    """Copy a build's ONNX files (external data included) to another folder; returns the updated dict.

    The ``.onnx.data`` files must travel with their model: ONNX refers to them by relative name.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    out = dict(result)
    for key in ("onnx_path", "exported_path", "optimized_path"):
        src = result.get(key)
        if not src:
            continue
        src_p = Path(src)
        shutil.copy2(src_p, dest / src_p.name)
        for name in external_data_files(src_p):
            shutil.copy2(src_p.parent / name, dest / name)
        out[key] = os.fspath((dest / src_p.name).resolve())
    return out
