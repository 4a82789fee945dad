"""``.onnx`` files as inputs: describe them, give dynamic dimensions a size, synthesize inputs, build.

An ONNX file skips discovery and export: :func:`describe_onnx` gives its hash (sha256 of the file's
bytes, first 8 hex chars, as TurnkeyML), parameter count and bytes (from the initializers, without
loading external data) and its input signature; :func:`build_onnx_file` copies it (with its external
data) into the build folder, checks and optimizes it, so that
``benchmark_invocation(None, (), {}, build, ...)`` benchmarks it on ONNX Runtime.

Dynamic dimensions (``batch``, ``sequence``, ``?``) must be given a size with
``--input-shape NAME:1,3,224,224`` (:func:`parse_input_shape`); tk never guesses them.

The file tools (check, fp16, optimize, external data) are :mod:`turnkey_like.onnx_tools`'s; the
reuse rule is :func:`turnkey_like.build.reuse_decision`'s; agreement is :mod:`turnkey_like.agreement`'s.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from turnkey_like.agreement import compare_outputs, tolerance_for
from turnkey_like.errors import InputError
from turnkey_like.onnx_tools import (
    default_opset,
    external_data_files,
    file_facts,
    finish_onnx,
    graph_inputs,
    op_counts,
    ort_cpu_outputs,
)
from turnkey_like.records import BuildResult, GraphIO, Record, StageResult, TensorSpec, now_utc

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from turnkey_like.build import BuildOptions, Fingerprint

#: ``BuildResult.exporter`` of an ``.onnx`` input: the file itself, nothing was exported.
FILE_EXPORTER = "file"

#: synthesized integer inputs (token ids, class indices) are drawn uniformly from [1, INT_HIGH):
#: non-zero (TurnkeyML fed all-zero ids) and small enough for any vocabulary tk has met.
INT_HIGH = 100


class OnnxFileInfo(Record):
    """Facts about an ONNX file input.

    Attributes:
        path: absolute path of the file.
        model_hash: ``sha256(file bytes)[:8]`` (``turnkey_like.hashing.file_hash``).
        params: number of weight elements (initializers; sub-graph initializers included).
        param_bytes: their bytes at their stored dtypes.
        opset: default-domain opset.
        inputs: the graph inputs (initializers excluded) with every dimension resolved.
        index_bounds: integer inputs used as ``Gather`` indices into a weight (embedding lookups):
            input name -> rows of the smallest such table (valid ids are ``0..bound-1``).
    """

    path: str
    model_hash: str
    params: int
    param_bytes: int
    opset: int | None
    inputs: list[TensorSpec] = []
    index_bounds: dict[str, int] = {}

    def graph_io(self) -> list[GraphIO]:
        """The resolved inputs as the build records them, with :attr:`index_bounds` as ``int_high``."""
        return [GraphIO(name=s.name, shape=list(s.shape or ()), dtype=s.dtype, int_high=self.index_bounds.get(s.name))
                for s in self.inputs]


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """Parse ``NAME:1,3,224,224`` into ``("NAME", (1, 3, 224, 224))``.

    Raises:
        InputError: no ``:``, an empty name, or a dimension that is not a positive integer.
    """
    hint = "write it as NAME:1,3,224,224 (input name, a colon, comma-separated sizes)"
    if ":" not in text:
        raise InputError(f"--input-shape {text!r} has no ':'", hint=hint)
    name, dims = text.rsplit(":", 1)
    name = name.strip()
    if not name:
        raise InputError(f"--input-shape {text!r} has no input name", hint=hint)
    try:
        shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip() != "")
    except ValueError:
        raise InputError(f"--input-shape {text!r}: sizes must be integers", hint=hint) from None
    if not shape or any(d < 1 for d in shape):
        raise InputError(f"--input-shape {text!r}: sizes must be positive integers", hint=hint)
    return name, shape


def _np_dtype_name(elem_type: int) -> str:
    import onnx

    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:  # noqa: BLE001 - e.g. bfloat16 / float8 without a numpy type
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _initializers(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _initializers(attr.g)
            for g in attr.graphs:
                yield from _initializers(g)


_PASS_THROUGH = {"Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten"}


def index_bounds(model_proto: onnx.ModelProto) -> dict[str, int]:
    """Graph inputs used as ``Gather`` indices into an initializer -> that table's size along the axis.

    Follows value-preserving ops (Cast, Identity, Unsqueeze, Squeeze, Reshape, Flatten) from the input
    to the Gather, so ``input_ids -> Cast -> Gather(embedding)`` is found; the smallest table wins.
    """
    graph = model_proto.graph
    inits = {i.name: list(i.dims) for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    bounds: dict[str, int] = {}
    for inp in graph.input:
        if inp.name in inits:
            continue
        frontier, seen = [inp.name], set()
        while frontier:
            value = frontier.pop()
            if value in seen:
                continue
            seen.add(value)
            for node in consumers.get(value, []):
                if node.op_type in _PASS_THROUGH and node.input and node.input[0] == value:
                    frontier.extend(node.output)
                elif node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == value:
                    dims = inits.get(node.input[0])
                    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                    if dims:
                        size = int(dims[axis])
                        bounds[inp.name] = min(size, bounds.get(inp.name, size))
    return bounds


def describe_onnx(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> OnnxFileInfo:
    """Return an :class:`OnnxFileInfo` for an ONNX file, with dynamic dims resolved from ``input_shapes``.

    Raises:
        InputError: the file is missing or not an ONNX model; an input has a dynamic dimension and no
            ``--input-shape`` for it; an override names no input or contradicts a fixed dimension.
    """
    import numpy as np
    import onnx

    from turnkey_like.hashing import file_hash

    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX file {path} does not exist", hint="check the path")
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path} is not a readable ONNX model: {exc}".splitlines()[0],
                         hint="check the file (onnx.checker) or re-export it") from None
    external_data_files(path)  # InputError for a location outside the model's folder, before any copy
    params = param_bytes = 0
    for init in _initializers(model.graph):
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        params += n
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
        except Exception:  # noqa: BLE001 - 8-bit float types without numpy equivalents
            itemsize = 1
        param_bytes += n * itemsize
    overrides = dict(input_shapes or {})
    init_names = {i.name for i in model.graph.initializer}
    inputs = []
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        ttype = inp.type.tensor_type
        dims = list(ttype.shape.dim)
        given = overrides.pop(inp.name, None)
        if given is not None:
            if len(given) != len(dims):
                raise InputError(
                    f"--input-shape for {inp.name} has {len(given)} dims, the model's input has {len(dims)}",
                    hint=f"give {len(dims)} sizes for {inp.name}")
            for i, (d, g) in enumerate(zip(dims, given)):
                if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != g:
                    raise InputError(
                        f"--input-shape for {inp.name}: dim {i} is fixed at {d.dim_value} in the model, not {g}",
                        hint=f"keep dim {i} of {inp.name} at {d.dim_value}")
            shape = tuple(int(g) for g in given)
        else:
            shape = []
            for d in dims:
                if d.HasField("dim_value") and d.dim_value > 0:
                    shape.append(int(d.dim_value))
                else:
                    label = d.dim_param or "?"
                    fixed = [x.HasField("dim_value") and x.dim_value > 0 for x in dims]
                    names = [str(x.dim_value) if f else (x.dim_param or "?") for x, f in zip(dims, fixed)]
                    example = ",".join(str(x.dim_value) if f else "1" for x, f in zip(dims, fixed))
                    raise InputError(
                        f"input {inp.name} of {path.name} has a dynamic dimension {label!r}",
                        hint=f"pass --input-shape {inp.name}:{example} with your sizes for its dims "
                             f"[{', '.join(names)}]")
            shape = tuple(shape)
        inputs.append(TensorSpec(name=inp.name, kind="tensor", shape=shape, dtype=_np_dtype_name(ttype.elem_type)))
    if overrides:
        raise InputError(f"--input-shape names {sorted(overrides)}, which {path.name} has no input called",
                         hint="inputs are: " + ", ".join(s.name for s in inputs))
    return OnnxFileInfo(path=os.fspath(path.resolve()), model_hash=file_hash(path), params=params,
                        param_bytes=param_bytes, opset=default_opset(model), inputs=inputs,
                        index_bounds=index_bounds(model))


def synthesize_inputs(specs: list[TensorSpec], seed: int = 0,
                      int_high: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Random inputs for a signature: ``{name: numpy array}``.

    ``int_high`` caps integer inputs by name (exclusive), e.g. an embedding's vocabulary from
    :func:`index_bounds`.

    Floats: standard normal. Booleans and integer inputs whose name contains ``mask``: all ones.
    Integer ``token_type``/``segment`` ids: zeros (valid for any type vocabulary). Integer
    ``position`` ids: ``0..n-1`` along the last axis. Other integers (token ids, indices): uniform in
    ``[1, INT_HIGH)``, never all zeros (TurnkeyML's zero ids hid embedding-lookup costs and bugs).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for spec in specs:
        shape = tuple(spec.shape or ())
        dtype = np.dtype(spec.dtype) if spec.dtype != "bfloat16" else np.dtype("float32")
        lname = spec.name.lower()
        if dtype == np.bool_:
            arr = np.ones(shape, dtype=np.bool_)
        elif np.issubdtype(dtype, np.floating):
            arr = rng.standard_normal(shape).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            if "mask" in lname:
                arr = np.ones(shape, dtype=dtype)
            elif "token_type" in lname or "segment" in lname:
                arr = np.zeros(shape, dtype=dtype)
            elif "position" in lname and shape:
                arr = np.broadcast_to(np.arange(shape[-1], dtype=dtype), shape).copy()
            else:
                high = min(INT_HIGH, (int_high or {}).get(spec.name, INT_HIGH))
                arr = rng.integers(1, high, size=shape).astype(dtype) if high > 1 else np.zeros(shape, dtype)
        else:
            arr = np.zeros(shape, dtype=dtype)
        out[spec.name] = arr
    return out


def synthesize_inputs_for(input_specs: list[GraphIO], seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`synthesize_inputs` for a build's ``input_specs`` (honouring their ``int_high``).

    Raises:
        InputError: a spec has a symbolic dimension (an ``.onnx`` input's dims are resolved when it is
            described, so this means the record was not written by a build of this tk).
    """
    specs = []
    for s in input_specs:
        if not all(isinstance(d, int) for d in s.shape):
            raise InputError(f"input {s.name} has a symbolic shape {s.shape}; cannot synthesize it",
                             hint=f"pass --input-shape {s.name}:... and rebuild")
        specs.append(TensorSpec(name=s.name, kind="tensor", shape=tuple(int(d) for d in s.shape), dtype=s.dtype))
    highs = {s.name: s.int_high for s in input_specs if s.int_high}
    return synthesize_inputs(specs, seed=seed, int_high=highs)


def _build_onnx_child(src: str, build_dir: str, precision: str, input_specs: list[GraphIO],
                      fp: Fingerprint) -> BuildResult:
    """The ``.onnx`` build, run in the isolated child (see :func:`build_onnx_file`)."""
    import onnx

    src_p, dest = Path(src), Path(build_dir)
    durations: dict[str, float] = {}
    t0 = time.perf_counter()
    copied = dest / src_p.name
    data_files = external_data_files(src_p)
    if copied.resolve() != src_p.resolve():
        shutil.copy2(src_p, copied)
        for name in data_files:
            (copied.parent / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src_p.parent / name, copied.parent / name)
    durations["copy"] = time.perf_counter() - t0
    external = bool(data_files)
    final, optimized = finish_onnx(copied, dest, precision, external, durations)
    faithfulness = {}
    faithful = None
    tolerance = None
    if precision == "fp16" and input_specs:  # reference: the original fp32 file on ORT CPU
        t0 = time.perf_counter()
        feed = synthesize_inputs_for(input_specs)
        expected, _ = ort_cpu_outputs(copied, feed)
        actual, names = ort_cpu_outputs(final, feed)
        tolerance = tolerance_for("fp16")
        faithfulness, faithful = compare_outputs(actual, expected, names, tolerance)
        durations["validate"] = time.perf_counter() - t0
    proto = onnx.load(os.fspath(final), load_external_data=False)
    return BuildResult(
        **msgspec.structs.asdict(file_facts(final, copied, optimized)),
        opset=default_opset(proto) or 0,
        exporter=FILE_EXPORTER,
        precision=precision,
        input_names=graph_inputs(proto),
        output_names=[o.name for o in proto.graph.output],
        input_specs=input_specs,
        onnx_op_counts=op_counts(proto),
        durations={k: round(v, 4) for k, v in durations.items()},
        fingerprint=fp,
        faithfulness=faithfulness,
        tolerance=tolerance,
        faithful=faithful,
    )


def onnx_fingerprint(info: OnnxFileInfo, specs: list[GraphIO], options: BuildOptions) -> Fingerprint:
    """What an ONNX-file build depends on: the file's hash, its external data files' names and sizes,
    the resolved inputs, precision and tk version."""
    from turnkey_like import __version__

    folder = Path(info.path).parent
    data = sorted((name, (folder / name).stat().st_size if (folder / name).exists() else -1)
                  for name in external_data_files(info.path))
    return {
        "file": info.model_hash,
        "data": repr(data),
        "inputs": repr([(s.name, list(s.shape), s.dtype) for s in specs]),
        "precision": options.precision,
        "tk": __version__,
    }


def build_onnx_file(path: str | Path, build_dir: Path, options: BuildOptions,
                    input_shapes: dict[str, tuple[int, ...]] | None = None,
                    previous: BuildResult | None = None) -> StageResult[BuildResult]:
    """Copy an ONNX file (and its external data) into ``build_dir``, check it, optionally convert to fp16,
    and write ONNX Runtime's optimized copy; returns the build stage's result.

    ``previous`` (the cached :class:`BuildResult`) is reused per ``options.rebuild`` as in
    :func:`turnkey_like.build.build_invocation`, with :func:`onnx_fingerprint`.

    ``result.input_specs`` holds the resolved input signature (with ``int_high`` for embedding ids) so
    the benchmark can synthesize inputs; ``result.exporter`` is :data:`FILE_EXPORTER`. With
    ``--precision fp16`` the faithfulness check compares the fp16 model with the original file (both
    on ORT CPU); with fp32 there is nothing to compare with (``faithful`` is ``None``). Failures of
    the model return an ``error``/``timeout``/``killed`` result.

    Raises:
        InputError: the file is missing/unreadable or a dynamic dimension has no ``--input-shape``.
        BuildError: invalid options.
    """
    from turnkey_like.build import BUILD_LOG, reuse_decision
    from turnkey_like.launcher import choose_start_method, run_isolated

    options.validate()
    started, t0 = now_utc(), time.perf_counter()
    info = describe_onnx(path, input_shapes)
    specs = info.graph_io()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    fp = onnx_fingerprint(info, specs, options)
    decided = reuse_decision(previous, fp, options, build_dir, started, t0)
    if decided is not None:
        return decided
    log_path = build_dir / BUILD_LOG
    log_path.write_text("")
    outcome = run_isolated(_build_onnx_child, os.fspath(Path(path).resolve()), os.fspath(build_dir),
                           options.precision, specs, fp, timeout_s=options.timeout_s, log_path=log_path,
                           start_method=choose_start_method("cpu", False, needs_live_model=False))
    return outcome.stage_result(started, time.perf_counter() - t0)
