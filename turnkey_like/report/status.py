"""The per-script status report printed by ``tk benchmark`` (TurnkeyML-style), from the records only.

For each script: each model with "executed Nx", type, class, location, parameters, input shapes, hashes
and the stage outcomes; "With input shape k" blocks when a model ran with several signatures;
submodules indented under their parent. This module formats; it never computes results.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape

from turnkey_like.errors import TkError
from turnkey_like.records import (
    BenchmarkResult,
    BuildResult,
    Invocation,
    ModelInfo,
    ScriptResult,
    StageResult,
    Status,
)
from turnkey_like.units import format_bytes

INDENT = "    "
#: Invocations printed per model; the rest are counted ("N more (see --json)").
MAX_INVOCATIONS_SHOWN = 20
_STATUS_STYLE = {
    Status.SUCCESSFUL: "green",
    Status.ERROR: "red",
    Status.TIMEOUT: "red",
    Status.KILLED: "red",
    Status.SKIPPED: "yellow",
    Status.RUNNING: "cyan",
    Status.NOT_STARTED: "dim",
    Status.INTERRUPTED: "red",
    Status.OUT_OF_MEMORY: "red",
}


def format_signature(inv: Invocation) -> str:
    """``'x': (1, 3, 224, 224), 'mask': (1, 128) int64`` (dtype shown when it is not float32)."""
    parts = []
    for spec in inv.signature:
        if spec.kind == "other":
            parts.append(f"'{spec.name}': <{spec.dtype}>")
            continue
        shape = spec.shape if spec.kind == "tensor" else spec.dtype
        dtype = "" if spec.kind != "tensor" or spec.dtype == "float32" else f" {spec.dtype}"
        parts.append(f"'{spec.name}': {shape}{dtype}")
    return ", ".join(parts) if parts else "(no inputs)"


def relative_path(path: str | None) -> str:
    """``path`` relative to the working directory when it is below or near it, else absolute."""
    if not path:
        return "unknown"
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("../..") else path


def _location(model: ModelInfo) -> str:
    if model.location_kind == "named":
        return "named model (--model; no script)"
    where = relative_path(model.source_file)
    if model.source_line:
        where += f", line {model.source_line}"
    note = {"first_call": " (first call; creation not found)", "class": " (class definition)"}.get(
        model.location_kind, "")
    return where + note


def _stage_line(name: str, stage: StageResult) -> str:
    """One line for a stage outcome, from the stage's record."""
    line = _stage_outcome(name, stage)
    if stage.reason and stage.status != Status.SKIPPED:
        line += f" [dim]({escape(stage.reason)})[/]"
    return line


def _stage_outcome(name: str, stage: StageResult) -> str:
    style = _STATUS_STYLE.get(stage.status, "")
    if stage.status == Status.SKIPPED:
        return f"[{style}]skipped[/] ({escape(stage.reason or '')})"
    if stage.failed:
        line = f"[{style}]{stage.status.value.replace('_', ' ')}[/]: {escape(stage.error or 'no error message')}"
        kept = stage.kept
        if kept is not None and kept.status == Status.SUCCESSFUL:
            earlier = (escape(benchmark_line(kept.result)) if isinstance(kept.result, BenchmarkResult)
                       else build_line(kept.result) if isinstance(kept.result, BuildResult) else "successful")
            line += f"\n{'':<24}[dim]earlier result kept (run {escape(kept.run_id or '?')}):[/] {earlier}"
            if isinstance(kept.result, BenchmarkResult):
                line += _notes(kept.result.warnings)
        return line
    if stage.status != Status.SUCCESSFUL:
        return f"[{style}]{stage.status.value.replace('_', ' ')}[/]"
    if isinstance(stage.result, BuildResult):
        return build_line(stage.result)
    if isinstance(stage.result, BenchmarkResult):
        return escape(benchmark_line(stage.result)) + _notes(stage.result.warnings)
    return "[green]successful[/]"


def _notes(warnings: list[str]) -> str:
    """One ``note:`` line per warning a benchmark recorded (a busy machine, a wide spread)."""
    return "".join(f"\n{'':<24}[yellow]note:[/] {escape(w)}" for w in warnings)


def build_line(build: BuildResult) -> str:
    """``built PATH (opset 18, dynamo exporter, fp32, 97.5 MB)`` with a mismatch warning and reuse note."""
    line = (f"[green]built[/] {escape(relative_path(build.onnx_path))} (opset {build.opset}, "
            f"{build.exporter} exporter, {build.precision}, {format_bytes(build.size_bytes)})")
    if build.faithful is False:
        line += " [red]MISMATCH vs PyTorch[/] (see `tk cache stats`)"
    if build.reused:
        line += " [dim](reused)[/]"
    return line


def benchmark_line(bench: BenchmarkResult) -> str:
    """``Successfully benchmarked on CPU (ort 1.31.1) mean 12.3 ms, 81.3 inferences/s at batch 1``, and
    why the batch is 1 when the inputs did not agree on one (``BenchmarkResult.batch_note``)."""
    line = (f"Successfully benchmarked on {bench.device_name} ({bench.runtime} {bench.runtime_version}) "
            f"mean {bench.latency_ms.mean:.3g} ms, {bench.throughput_ips:,.1f} inferences/s "
            f"at batch {bench.batch_size}")
    if bench.latency_ms.iqr is not None and bench.latency_ms.runs:
        line += f" (median {bench.latency_ms.median:.3g} ms, IQR {bench.latency_ms.iqr:.2g} ms, {bench.latency_ms.runs} runs)"
    if (bench.batch_note or "").startswith("inputs disagree"):
        line += f" ({bench.batch_note})"
    if bench.stale:
        line += f" (stale: {', '.join(bench.stale)})"
    return line


def render_invocation(console: Console, inv: Invocation, indent: str, showshape_label: str = "Input Shape:") -> None:
    """Print one invocation's inputs, hash and stage outcomes."""
    console.print(f"{indent}{showshape_label:<16}{escape(format_signature(inv))}")
    console.print(f"{indent}{'Hash:':<16}{inv.hash}" + ("" if inv.selected else "  [yellow](not selected)[/]"))
    if inv.hash_note:
        console.print(f"{indent}{'Hash note:':<16}{escape(inv.hash_note)}")
    if inv.training:
        console.print(f"{indent}{'Mode:':<16}called in training mode (counted as called; built and "
                      "benchmarked in eval mode)")
    if not inv.selected:
        return
    char = inv.characterization
    if char.status == Status.SUCCESSFUL and char.result is not None:
        from turnkey_like.report.characterization import summary_lines

        build_trace = inv.build.result.trace if inv.build.result is not None else None
        lines = summary_lines(char.result, build_trace=build_trace)
        console.print(f"{indent}{'Analysis:':<16}{escape(lines[0]) if lines else ''}")
        for line in lines[1:]:
            console.print(f"{indent}{'':<16}{escape(line)}")
        if char.reason:
            console.print(f"{indent}{'':<16}[dim]({escape(char.reason)})[/]")
    elif char.status != Status.SKIPPED or char.reason not in ("not requested",):
        console.print(f"{indent}{'Analysis:':<16}{_stage_line('characterization', char)}")
    for name in ("build", "benchmark"):
        stage = inv.stages()[name]
        if stage.status == Status.SKIPPED and stage.reason in ("--analyze-only", "--build-only"):
            continue
        console.print(f"{indent}{name.capitalize() + ':':<16}{_stage_line(name, stage)}")


def render_model(console: Console, model: ModelInfo, level: int, cache_root: str | None = None) -> None:
    """Print one model block (and its submodules, indented one level further)."""
    indent = INDENT * (level + 1)
    executed = sum(inv.executed for inv in model.invocations)
    compiled = " [cyan](torch.compile)[/]" if model.compiled else ""
    console.print(f"{INDENT * level}[bold]{escape(model.name)}[/] (executed {executed}x){compiled}")
    kind = "ONNX model (.onnx file)" if model.model_type == "onnx" else "Pytorch (torch.nn.Module)"
    console.print(f"{indent}{'Model Type:':<16}{kind}")
    console.print(f"{indent}{'Class:':<16}{escape(model.class_name)} ({escape(model.qualified_class)})")
    console.print(f"{indent}{'Location:':<16}{escape(_location(model))}")
    console.print(f"{indent}{'Parameters:':<16}{model.params:,} ({format_bytes(model.param_bytes)})")
    console.print(f"{indent}{'Model hash:':<16}{model.model_hash}")
    if len(model.invocations) == 1:
        render_invocation(console, model.invocations[0], indent)
    else:
        for k, inv in enumerate(model.invocations[:MAX_INVOCATIONS_SHOWN], start=1):
            console.print(f"{indent}With input shape {k} (executed {inv.executed}x)")
            render_invocation(console, inv, indent + INDENT)
        hidden = len(model.invocations) - MAX_INVOCATIONS_SHOWN
        if hidden > 0:
            console.print(f"{indent}[yellow]{hidden} more input shape(s) (see --json or tk cache list)[/]")
    if cache_root and any(inv.selected and inv.build_name for inv in model.invocations):
        built = [inv.build_name for inv in model.invocations if inv.selected and inv.build_name]
        names = ", ".join(built[:3]) + (f" and {len(built) - 3} more" if len(built) > 3 else "")
        console.print(f"{indent}{'Cache:':<16}{escape(relative_path(cache_root))} → {escape(names)}")
    for child in model.children:
        render_model(console, child, level + 1, cache_root)


def render_script(console: Console, result: ScriptResult, cache_root: str | None = None,
                  error: TkError | None = None, show_traceback: bool = False) -> None:
    """Print the whole report for one script: its models, then its failure if it failed
    (:func:`render_failure`: ``error`` when the run gave one, else the record's own reason)."""
    console.print(f"\n[bold underline]{escape(os.path.basename(result.path))}[/]:")
    request = result.model_request
    if request is not None:
        sizes = ", ".join(f"{label} {value}" for label, value in (
            ("batch", request.batch_size), ("seq_len", request.seq_len), ("imgsz", request.imgsz))
            if value is not None)
        weights = ("meta tensors (no weights)" if request.no_weights else
                   "pretrained weights" if request.pretrained else "random weights")
        source = f" from {escape(request.source)}" if request.source else ""  # unknown until it loads
        console.print(f"{INDENT}[dim]named model{source}: {escape(sizes or 'default sizes')}, "
                      f"{weights}, seed {request.seed}[/]")
    for note in result.notes:  # the loader's overrides, values recorded as their repr (sanitised), ...
        console.print(f"{INDENT}[dim]note: {escape(note)}[/]")
    if not result.models:
        note = "no model was called" if result.status == Status.SUCCESSFUL else "no model was called before the failure"
        console.print(f"{INDENT}[yellow]{note}[/]")
    for model in result.models:
        render_model(console, model, 1, cache_root)
    if result.child_processes:
        console.print(f"{INDENT}[yellow]note:[/] the script started {result.child_processes} child "
                      f"process{'es' if result.child_processes > 1 else ''}: models called in them are "
                      "not seen (discovery hooks the script's own process only)")
    render_failure(console, result, error, show_traceback)


def render_failure(console: Console, result: ScriptResult, error: TkError | None = None,
                   show_traceback: bool = False) -> None:
    """Print why an input failed: ``error: <one-line reason>``, its hint, and with ``show_traceback``
    (``--traceback``) where it happened (the record's ``traceback``: the script's Python traceback,
    or the stack a fatal signal left), or that none was recorded.

    ``error`` is the error the run gave the input (its hint says what to do); without one, a failed
    record's own ``error`` is the reason, so a failure is never printed without its cause. Prints
    nothing for an input that did not fail and has no error.
    """
    failed = result.status != Status.SUCCESSFUL
    if error is None and not failed:
        return
    message = error.message if error is not None else (
        result.error or f"{result.status.value.replace('_', ' ')} (no reason was recorded)")
    console.print(f"{INDENT}[red]error:[/] {escape(message)}")
    if error is not None and error.hint:
        console.print(f"{INDENT}[dim]hint: {escape(error.hint)}[/]")
    if not show_traceback or not failed:
        return
    if result.traceback:
        console.print(escape(result.traceback.rstrip()), style="dim")
    else:
        console.print(f"{INDENT}[dim](no Python stack was recorded for this failure)[/]")
