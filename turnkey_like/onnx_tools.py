"""ONNX file tools: check, optimize, convert to fp16, save (external data), and read facts from a model.

Shared by PyTorch builds (:mod:`turnkey_like.build`) and ``.onnx`` inputs (:mod:`turnkey_like.onnx_file`).
:func:`finish_onnx` is the common tail of both: check the file, convert it to float16 when asked, and
write ONNX Runtime's optimized copy.

External data: protobuf cannot serialize a message above 2 GiB, so big models keep their weights in
files beside the ``.onnx`` (:func:`save_onnx` writes one ``<name>.data`` file); ONNX refers to them by
name relative to the model's folder, so they must travel with it (:func:`external_data_files`).

onnx and onnxruntime are imported inside the functions that use them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from turnkey_like.errors import BuildError, InputError

if TYPE_CHECKING:
    import numpy as np
    import onnx

#: file name of the fp16 model in a build folder (``--precision fp16``)
FP16_NAME = "model_fp16.onnx"
#: file name of ONNX Runtime's optimized copy in a build folder
OPT_NAME = "model.opt.onnx"


class OnnxFiles(msgspec.Struct, kw_only=True):
    """The :class:`turnkey_like.records.BuildResult` fields that describe a build's files.

    Attributes:
        onnx_path: the model to run, absolute path.
        exported_path: the model before fp16 conversion (same as ``onnx_path`` for fp32), absolute.
        optimized_path: ONNX Runtime's optimized copy, absolute.
        data_files: external-data files of ``onnx_path`` (names relative to its folder).
        size_bytes: bytes of ``onnx_path`` plus its external data.
        external_data: whether ``onnx_path`` keeps weights outside the protobuf.
    """

    onnx_path: str
    exported_path: str
    optimized_path: str
    data_files: list[str]
    size_bytes: int
    external_data: bool


def file_facts(final: Path, exported: Path, optimized: Path) -> OnnxFiles:
    """The facts about a build's files: absolute paths, the final model's external data files, its size
    with them (bytes), and whether it uses external data."""
    data_files = external_data_files(final)
    return OnnxFiles(
        onnx_path=os.fspath(final.resolve()),
        exported_path=os.fspath(exported.resolve()),
        optimized_path=os.fspath(optimized.resolve()),
        data_files=data_files,
        size_bytes=onnx_size_bytes(final, data_files),
        external_data=bool(data_files),
    )


def external_data_files(onnx_path: str | Path) -> list[str]:
    """Names (relative to the model's folder) of the external-data files a model refers to, in order
    of first use. Reads the protobuf only, not the data.

    Every location must be a relative path that stays inside the model's own folder (symlinks
    resolved): a crafted ``location`` of ``../../.bashrc`` would otherwise make a copy of the model
    write, or read, outside it.

    Raises:
        InputError: a location is absolute, or resolves outside the model's folder.
    """
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    files: list[str] = []
    for tensor in _get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location" and entry.value not in files:
                    check_external_location(onnx_path, entry.value)
                    files.append(entry.value)
    return files


def check_external_location(onnx_path: str | Path, location: str) -> None:
    """Raise :class:`InputError` unless ``location`` is a relative path inside ``onnx_path``'s folder."""
    folder = Path(onnx_path).resolve().parent
    target = (folder / location).resolve()
    if os.path.isabs(location) or (target != folder and folder not in target.parents):
        raise InputError(
            f"{onnx_path}: external-data location {location!r} points outside the model's folder",
            hint="external data must be a file next to the .onnx file, named by a relative path "
                 "(onnx.save_model(..., save_as_external_data=True, location='model.onnx.data'))")


def onnx_size_bytes(onnx_path: str | Path, data_files: list[str]) -> int:
    """Bytes of a model file plus its external-data files (missing ones count 0)."""
    path = Path(onnx_path)
    return path.stat().st_size + sum((path.parent / f).stat().st_size for f in data_files if (path.parent / f).exists())


def graph_inputs(model_proto: onnx.ModelProto) -> list[str]:
    """Names of a model's real graph inputs, in order (initializers listed as inputs excluded)."""
    init_names = {i.name for i in model_proto.graph.initializer}
    return [i.name for i in model_proto.graph.input if i.name not in init_names]


def op_counts(model_proto: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type (``domain::Op`` outside the default domain), sub-graphs and functions
    included, sorted by name."""
    counts: dict[str, int] = {}

    def count(node: onnx.NodeProto) -> None:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        counts[key] = counts.get(key, 0) + 1

    def visit(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            count(node)
            for attr in node.attribute:
                if attr.HasField("g"):
                    visit(attr.g)
                for g in attr.graphs:
                    visit(g)

    visit(model_proto.graph)
    for fn in model_proto.functions:
        for node in fn.node:
            count(node)
    return dict(sorted(counts.items()))


def default_opset(model_proto: onnx.ModelProto) -> int | None:
    """The model's default-domain (``ai.onnx``) opset version, ``None`` when it imports none."""
    for imp in model_proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def check_onnx(onnx_path: str | Path) -> None:
    """Run ``onnx.checker`` on a model file (the path form, which handles >2 GB external data).

    Raises:
        onnx.checker.ValidationError: the model is invalid.
    """
    import onnx

    onnx.checker.check_model(os.fspath(onnx_path))


def optimize_onnx(onnx_path: str | Path, optimized_path: str | Path, external: bool) -> None:
    """Write ONNX Runtime's optimized copy of a model (graph optimization level *extended*, CPU EP).

    Level *extended* stays portable across execution providers; the CPU-only layout passes of level
    *all* are left to session creation at benchmark time. With ``external``, initializers of 1 KiB
    and more go to ``<optimized name>.data``.
    """
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


def save_onnx(model_proto: onnx.ModelProto, path: str | Path, external: bool) -> None:
    """Save a model; with ``external`` all weights of 1 KiB and more go to one ``<name>.data`` file beside it."""
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


def convert_fp16(src: str | Path, dst: str | Path, external: bool) -> None:
    """Convert a model to fp16 with onnxconverter-common (``keep_io_types=True``: inputs and outputs
    stay fp32) and save it to ``dst`` (:func:`save_onnx`).

    Two fixes around the converter: stale fp32 ``value_info`` entries are dropped before it runs
    (the TorchScript exporter writes them, and the converter then leaves mismatched types behind);
    :func:`_isolate_graph_outputs` and :func:`_align_casts_with_fp16_types` fix the two type
    mismatches ORT would reject.
    """
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(os.fspath(src))
    # ORT: "Type (tensor(float16)) ... does not match expected type"; the converter re-infers shapes itself.
    del model.graph.value_info[:]
    _isolate_graph_outputs(model)
    converted = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=external)
    _align_casts_with_fp16_types(converted)
    save_onnx(converted, dst, external)


def _align_casts_with_fp16_types(model_proto: onnx.ModelProto) -> None:
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


def _isolate_graph_outputs(model_proto: onnx.ModelProto) -> None:
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


def finish_onnx(onnx_path: Path, build_dir: Path, precision: str, external: bool,
                durations: dict[str, float]) -> tuple[Path, Path]:
    """Check an ONNX file, convert it to float16 when ``precision == "fp16"``, and save ORT's optimized copy.

    Writes ``build_dir / FP16_NAME`` (fp16 only) and ``build_dir / OPT_NAME``. Adds ``check``, ``fp16``
    and ``optimize`` step times (seconds) to ``durations``.

    Returns:
        ``(final, optimized)``: the model at the requested precision and its ORT-optimized copy.

    Raises:
        onnx.checker.ValidationError / onnxruntime errors: the file is invalid (the stage records it).
    """
    t0 = time.perf_counter()
    check_onnx(onnx_path)
    durations["check"] = time.perf_counter() - t0
    final = onnx_path
    if precision == "fp16":
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


def ort_cpu_outputs(onnx_path: str | Path, feed: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    """Run a model once on ONNX Runtime's CPU EP (default session options); returns ``(outputs, output names)``.

    ``feed`` may hold more arrays than the model takes; the extra ones are ignored.

    Raises:
        BuildError: the model takes an input ``feed`` has no value for.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(os.fspath(onnx_path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    missing = sorted(set(names) - set(feed))
    if missing:
        raise BuildError(f"no value for ONNX input(s) {missing}")
    outs = sess.run(None, {k: feed[k] for k in names})
    return outs, [o.name for o in sess.get_outputs()]
