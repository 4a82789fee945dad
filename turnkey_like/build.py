"""Build one invocation to ONNX: export, reuse of earlier builds, and the isolated build child.

:func:`build_invocation` takes the live model and the first call's real ``args``/``kwargs`` and writes,
into the invocation's build folder:

- ``model.onnx`` (plus ``model.onnx.data`` when the weights are stored as external data): the export
  at the recorded static shapes, default opset 18. The model is traced once, in the child, by the
  export rungs of :func:`turnkey_like.tracing.trace_model` (``torch.export``, non-strict then
  strict); ``torch.onnx.export``'s current (``dynamo=True``) exporter converts that
  ``ExportedProgram``, and the TorchScript exporter (``dynamo=False``) is the fallback when no
  rung traced or the conversion failed. The trace (method, attempts, times) is recorded in
  ``BuildResult.trace``; the program itself never leaves the child;
- ``model_fp16.onnx`` with ``--precision fp16`` (onnxconverter-common's float16 converter,
  ``keep_io_types=True`` so inputs and outputs stay fp32);
- ``model.opt.onnx``: ONNX Runtime's optimized copy (graph optimization level *extended*);
- ``build.log``: everything the exporters printed.

and returns a ``StageResult[BuildResult]`` (:class:`turnkey_like.records.BuildResult`).

Where the rest lives:

- calling conventions (flattening ``(args, kwargs)`` into named graph inputs with torch's pytree,
  output names, the wrapper the exporters see): :mod:`turnkey_like.calls`;
- ONNX file tools (check, fp16, optimize, external data, op counts): :mod:`turnkey_like.onnx_tools`;
- output agreement (tolerances, comparison): :mod:`turnkey_like.agreement`. The exported model runs on
  ONNX Runtime (CPU) on the same inputs as eager PyTorch; ``faithful`` says whether every output is
  within the precision's tolerance;
- where the build runs (forked child, or in-process for a CUDA model): :mod:`turnkey_like.launcher`.

An exporter crash or hang in the child becomes an ``error``/``timeout``/``killed`` stage result
instead of ending tk.

Reuse: :func:`fingerprint` says what a build depends on (weights, inputs, opset, exporter, precision,
tk and torch versions); :func:`reuse_decision` applies ``--rebuild`` to a previous :class:`BuildResult`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from turnkey_like.agreement import compare_outputs, tolerance_for
from turnkey_like.calls import (
    FlatInputs, export_wrapper, flatten_inputs, output_names_for, tensor_leaves, to_numpy, uses_cuda,
)
from turnkey_like.errors import BuildError, one_line
from turnkey_like.files import no_space_error, reset_log
from turnkey_like.kv_cache import snapshot
from turnkey_like.onnx_tools import (
    FP16_NAME,
    OPT_NAME,
    default_opset,
    external_data_files,
    file_facts,
    finish_onnx,
    graph_inputs,
    op_counts,
    ort_cpu_outputs,
    save_onnx,
)
from turnkey_like.records import BuildResult, GraphIO, StageResult, Status, TraceSummary, now_utc

if TYPE_CHECKING:
    import torch

    from turnkey_like.tracing import TraceResult

__all__ = [
    "BUILD_LOG", "EXPORTERS", "MIN_OPSET", "ONNX_NAME", "PRECISIONS", "REBUILD_POLICIES", "BuildOptions",
    "BuildResult", "build_invocation", "copy_build", "fingerprint", "reuse_decision", "weights_hash",
]

#: Fingerprint values: strings and numbers (``BuildResult.fingerprint``'s type).
Fingerprint = dict[str, str | int | float | bool | None]

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
BUILD_LOG = "build.log"


@dataclass
class BuildOptions:
    """How to build: ONNX opset, precision, reuse policy, time limit and exporter choice.

    Attributes:
        opset: ONNX opset (>= :data:`MIN_OPSET`; default 18).
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


# --------------------------------------------------------------------------------------------------
# Fingerprint (reuse)
# --------------------------------------------------------------------------------------------------


def weights_hash(model: torch.nn.Module) -> str:
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


def fingerprint(model: torch.nn.Module, flat: FlatInputs, options: BuildOptions) -> Fingerprint:
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
        "torch": str(torch.__version__),  # TorchVersion, a str subclass the codec refuses
    }


def _files_present(previous: BuildResult) -> str | None:
    """``None`` when a previous build's files all exist, else the first missing path."""
    for key, path in (("onnx_path", previous.onnx_path), ("optimized_path", previous.optimized_path)):
        if not path or not Path(path).exists():
            return path or key
    folder = Path(previous.onnx_path).parent
    for name in previous.data_files:
        if not (folder / name).exists():
            return os.fspath(folder / name)
    return None


def reuse_decision(previous: BuildResult | None, fp: Fingerprint, options: BuildOptions, build_dir: Path,
                   started: str, t0: float) -> StageResult[BuildResult] | None:
    """Apply ``options.rebuild`` to a previous build: the reused (or refused) result, or ``None`` to build.

    ``if_needed`` reuses when ``fp`` equals the previous fingerprint and all files exist; ``never`` reuses
    whatever is complete (listing differing fingerprint keys in ``stale``) or returns an error saying why
    it cannot; ``always`` returns ``None``. ``started`` (ISO UTC) and ``t0`` (``perf_counter``) time
    the returned stage.
    """
    def ended(status: Status, result: BuildResult | None = None, error: str | None = None) -> StageResult[BuildResult]:
        return StageResult(status=status, duration_s=time.perf_counter() - t0, started_at=started,
                           result=result, error=error)

    if previous is not None and options.rebuild != "always":
        missing = _files_present(previous)
        old_fp = previous.fingerprint
        stale = sorted(k for k in set(fp) | set(old_fp) if fp.get(k) != old_fp.get(k))
        if missing is None and (options.rebuild == "never" or not stale):
            kept = stale if options.rebuild == "never" else []
            return ended(Status.SUCCESSFUL, msgspec.structs.replace(previous, reused=True, stale=kept))
        if options.rebuild == "never":
            return ended(Status.ERROR,
                         error=f"--rebuild never, but the previous build is incomplete: {missing} is missing")
    elif options.rebuild == "never":
        return ended(Status.ERROR, error=f"--rebuild never, but there is no previous build in {build_dir}")
    return None


# --------------------------------------------------------------------------------------------------
# The build itself (runs in the child)
# --------------------------------------------------------------------------------------------------


def _onnx_capture_config():
    """The setting ``torch.onnx.export`` itself captures under (``backed_size_oblivious=True``, torch
    2.14 ``torch/onnx/_internal/exporter/_capture_strategies.py``), so the program traced here is the
    one the exporter would have captured from the module; a no-op where torch has no such setting."""
    import contextlib

    import torch.fx.experimental._config as fx_config

    if not hasattr(fx_config, "backed_size_oblivious"):
        return contextlib.nullcontext()
    return fx_config.patch(backed_size_oblivious=True)


def _trace_for_export(wrapper: torch.nn.Module, flat: FlatInputs,
                      options: BuildOptions) -> tuple[TraceResult | None, TraceSummary]:
    """Trace the export wrapper once with the export rungs of the tracing ladder (non-strict, then
    strict ``torch.export``) when the dynamo exporter is to be tried.

    Returns ``(TraceResult or None, TraceSummary)``: ``None`` and a ``not traced`` summary for
    ``--exporter torchscript`` (the TorchScript exporter traces its own way).
    """
    import torch

    from turnkey_like.tracing import EXPORT_NONSTRICT, EXPORT_STRICT, trace_model

    if options.exporter == "torchscript":
        return None, TraceSummary()
    print("tk: tracing with torch.export (non-strict, then strict)", flush=True)
    with torch.no_grad(), _onnx_capture_config():
        traced = trace_model(wrapper, tuple(flat.tensors), {}, warmup=False, methods=(EXPORT_NONSTRICT, EXPORT_STRICT))
    for attempt in traced.attempts:
        print(f"tk: {attempt.method}: {'ok' if attempt.ok else 'failed: ' + (attempt.error or '')}"
              f" ({attempt.duration_s:.2f} s)", flush=True)
    return traced, traced.summary()


def _export(wrapper: torch.nn.Module, flat: FlatInputs, path: Path, options: BuildOptions, external: bool,
            output_names: list[str], traced: TraceResult | None) -> tuple[str, dict[str, str]]:
    """Export with the chosen exporter(s); returns (exporter used, one-line errors of the ones that failed).

    The dynamo exporter converts ``traced.exported_program`` (the one trace of this build, see
    :func:`_trace_for_export`): ``torch.onnx.export`` takes an ``ExportedProgram`` and then skips its
    own capture step, so the model is traced once. When no export rung traced, the dynamo exporter
    counts as failed with the trace's reason, and the TorchScript exporter (``dynamo=False``) is
    tried next under ``--exporter auto``.

    Raises:
        BuildError: every exporter tried failed (their tracebacks are in the log).
    """
    import torch

    tried = {"auto": ["dynamo", "torchscript"], "dynamo": ["dynamo"], "torchscript": ["torchscript"]}[options.exporter]
    errors: dict[str, str] = {}
    for method in tried:
        for stale in (path, path.with_name(path.name + ".data")):
            if stale.exists():
                stale.unlink()
        if method == "dynamo" and (traced is None or traced.exported_program is None):
            reason = traced.summary().failure_reason if traced is not None else "not traced"
            errors[method] = f"torch.export failed: {reason}"
            print(f"tk: the dynamo exporter needs a torch.export program: {errors[method]}", flush=True)
            continue
        print(f"tk: exporting with the {method} exporter (opset {options.opset})", flush=True)
        try:
            with torch.no_grad():
                if method == "dynamo":
                    torch.onnx.export(
                        traced.exported_program, (), os.fspath(path), dynamo=True,
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
            errors[method] = one_line(exc)
    raise BuildError("ONNX export failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))


def _param_bytes(model: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers, shared tensors counted once."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.data_ptr(), t.numel())
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


def build_here(model: torch.nn.Module, args: tuple, kwargs: dict, build_dir: str, options: BuildOptions,
                 fp: Fingerprint) -> BuildResult:
    """The build itself, in this process: export, check, optimize, fp16, compare with eager PyTorch.

    :func:`build_invocation` runs it in an isolated child under the time limit; a caller that is
    already isolated (``tk discover-models``' per-model child) calls it directly.

    Returns:
        The :class:`BuildResult`.

    Raises:
        BuildError: every exporter failed, or the model returned no tensors.
    """
    import onnx
    import torch

    build_dir_p = Path(build_dir)
    flat = flatten_inputs(model, args, kwargs)
    durations: dict[str, float] = {}

    t0 = time.perf_counter()
    with torch.no_grad():  # on a copy: a call fills a KV cache it is given, which the export must see empty
        eager_out = model(*snapshot(args), **snapshot(kwargs or {}))
    out_names = output_names_for(eager_out, set(flat.names))
    expected = [to_numpy(t) for t in tensor_leaves(eager_out)]
    durations["eager_reference"] = time.perf_counter() - t0
    if not expected:
        raise BuildError("the model returned no tensors; there is nothing to export")

    external = _param_bytes(model) > EXTERNAL_DATA_THRESHOLD_BYTES
    exported = build_dir_p / ONNX_NAME
    wrapper = export_wrapper(model, flat)
    t0 = time.perf_counter()
    traced, trace = _trace_for_export(wrapper, flat, options)
    durations["trace"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    exporter, errors = _export(wrapper, flat, exported, options, external, out_names, traced)
    durations["export"] = time.perf_counter() - t0
    del traced  # the program (and its copy of the graph) is not needed past the export

    final, optimized = finish_onnx(exported, build_dir_p, options.precision, external, durations)

    t0 = time.perf_counter()
    feed = flat.feed()
    actual, ort_out_names = ort_cpu_outputs(final, feed)
    tolerance = tolerance_for(options.precision)
    faithfulness, faithful = compare_outputs(actual, expected, ort_out_names, tolerance)
    durations["validate"] = time.perf_counter() - t0

    proto = onnx.load(os.fspath(final), load_external_data=False)
    inputs = graph_inputs(proto)
    taken = set(inputs)
    specs = [GraphIO(name=n, shape=list(a.shape), dtype=a.dtype.name) for n, a in feed.items() if n in taken]
    return BuildResult(
        **msgspec.structs.asdict(file_facts(final, exported, optimized)),
        opset=default_opset(proto) or options.opset,
        exporter=exporter,
        exporter_errors=errors,
        precision=options.precision,
        input_names=inputs,
        output_names=[o.name for o in proto.graph.output],
        input_specs=specs,
        onnx_op_counts=op_counts(proto),
        durations={k: round(v, 4) for k, v in durations.items()},
        fingerprint=fp,
        faithfulness=faithfulness,
        tolerance=tolerance,
        faithful=faithful,
        trace=trace,
    )


def build_invocation(model: torch.nn.Module, args: tuple, kwargs: dict, build_dir: Path, options: BuildOptions,
                     previous: BuildResult | None = None) -> StageResult[BuildResult]:
    """Build one invocation to ONNX (see the module doc) and return the build stage's result.

    Args:
        model: the live ``torch.nn.Module`` (in the mode to export: the pipeline sets eval mode).
        args, kwargs: the recorded call's real inputs (tensors, nested tuples/dicts, non-tensor values).
        build_dir: the invocation's build folder (created if missing).
        options: :class:`BuildOptions`.
        previous: the cached record's :class:`BuildResult`, if any; reused per ``options.rebuild``.

    Returns:
        ``StageResult[BuildResult]``: successful with the (new or reused) result; status
        ``error``/``timeout``/``killed`` with a one-line ``error`` and ``log_excerpt`` otherwise
        (model failures never raise).

    Raises:
        BuildError: invalid options (opset < 17, unknown precision/policy/exporter).
    """
    from turnkey_like.launcher import choose_start_method, run_isolated

    options.validate()
    started, t0 = now_utc(), time.perf_counter()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        flat = flatten_inputs(model, args, kwargs)
        fp = fingerprint(model, flat, options)
    except Exception as exc:  # noqa: BLE001 - a model we cannot even read is a failed build
        return StageResult(status=Status.ERROR, duration_s=time.perf_counter() - t0, started_at=started,
                           error=f"could not read the model's inputs/weights: {one_line(exc)}")

    decided = reuse_decision(previous, fp, options, build_dir, started, t0)
    if decided is not None:
        return decided

    _remove_onnx_files(build_dir)
    log_path = build_dir / BUILD_LOG
    reset_log(log_path)
    on_cuda = uses_cuda(model, args, kwargs)
    method = choose_start_method("cuda" if on_cuda else "cpu", on_cuda, needs_live_model=True)
    outcome = run_isolated(build_here, model, args, kwargs, os.fspath(build_dir), options, fp,
                           timeout_s=options.timeout_s, log_path=log_path, start_method=method)
    if outcome.status != Status.SUCCESSFUL:
        _remove_onnx_files(build_dir)  # never leave a partial or unvalidated model behind
        if outcome.error and "No space left on device" in outcome.error:
            outcome.error = no_space_error(build_dir / ONNX_NAME).message
    return outcome.stage_result(started, time.perf_counter() - t0)


def _remove_onnx_files(build_dir: Path) -> None:
    """Delete the ONNX files a build writes (exported, optimized, fp16, and their external data)."""
    for name in (ONNX_NAME, FP16_NAME, OPT_NAME):
        for stale_file in (build_dir / name, build_dir / (name + ".data")):
            if stale_file.is_file() or stale_file.is_symlink():
                stale_file.unlink()


def copy_build(result: BuildResult, dest_dir: str | Path) -> BuildResult:
    """Copy a build's ONNX files (external data included) to another folder; returns the result with
    the new absolute paths.

    The ``.onnx.data`` files must travel with their model: ONNX refers to them by relative name.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    moved: dict[str, str] = {}
    for key, src in (("onnx_path", result.onnx_path), ("exported_path", result.exported_path),
                     ("optimized_path", result.optimized_path)):
        if not src:
            continue
        src_p = Path(src)
        shutil.copy2(src_p, dest / src_p.name)
        for name in external_data_files(src_p):
            shutil.copy2(src_p.parent / name, dest / name)
        moved[key] = os.fspath((dest / src_p.name).resolve())
    return msgspec.structs.replace(result, **moved)
