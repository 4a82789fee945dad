"""The per-script status report printed by ``tk benchmark`` (TurnkeyML-style), from the records only.

For each script: each model with "executed Nx", type, class, location, parameters, input shapes, hashes
and the stage outcomes; "With input shape k" blocks when a model ran with several signatures;
submodules indented under their parent. This module formats; it never computes results.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape

from turnkey_like.records import Invocation, ModelInfo, ScriptResult, StageResult, Status

INDENT = "    "
_STATUS_STYLE = {
    Status.SUCCESSFUL: "green",
    Status.ERROR: "red",
    Status.TIMEOUT: "red",
    Status.KILLED: "red",
    Status.SKIPPED: "yellow",
    Status.RUNNING: "cyan",
    Status.NOT_STARTED: "dim",
}


def format_bytes(n: int | float | None) -> str:
    """Human-readable decimal size (``97.5 MB``; ``<0.1 MB`` below 100 kB), as TurnkeyML prints it."""
    if n is None:
        return ""
    if n < 1e5:
        return "<0.1 MB"
    if n < 1e9:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e9:.2f} GB"


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
    if stage.status in (Status.ERROR, Status.TIMEOUT, Status.KILLED):
        return f"[{style}]{stage.status.value}[/]: {escape(stage.error or '')}"
    if stage.status != Status.SUCCESSFUL:
        return f"[{style}]{stage.status.value}[/]"
    result = stage.result or {}
    if name == "build":
        size = format_bytes(result.get("size_bytes"))
        line = (f"[green]built[/] {escape(relative_path(result.get('onnx_path')))} (opset {result.get('opset')}, "
                f"{result.get('exporter')} exporter, {result.get('precision', 'fp32')}, {size})")
        faithful = result.get("faithful")
        if faithful is False:
            line += " [red]MISMATCH vs PyTorch[/] (see `tk cache stats`)"
        if result.get("reused"):
            line += " [dim](reused)[/]"
        return line
    if name == "benchmark":
        from turnkey_like.runtimes import status_line

        return escape(status_line(stage))
    return "[green]successful[/]"


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
    if char.status == Status.SUCCESSFUL and char.result:
        from turnkey_like.characterize import Characterization
        from turnkey_like.report.characterization import summary_lines

        lines = summary_lines(Characterization.from_dict(char.result))
        console.print(f"{indent}{'Analysis:':<16}{escape(lines[0]) if lines else ''}")
        for line in lines[1:]:
            console.print(f"{indent}{'':<16}{escape(line)}")
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
        for k, inv in enumerate(model.invocations, start=1):
            console.print(f"{indent}With input shape {k} (executed {inv.executed}x)")
            render_invocation(console, inv, indent + INDENT)
    if cache_root and any(inv.selected and inv.build_name for inv in model.invocations):
        names = ", ".join(inv.build_name for inv in model.invocations if inv.selected and inv.build_name)
        console.print(f"{indent}{'Cache:':<16}{escape(relative_path(cache_root))} → {escape(names)}")
    for child in model.children:
        render_model(console, child, level + 1, cache_root)


def render_script(console: Console, result: ScriptResult, cache_root: str | None = None) -> None:
    """Print the whole report for one script: its models, then its failure if it failed."""
    console.print(f"\n[bold underline]{escape(os.path.basename(result.path))}[/]:")
    if not result.models:
        note = "no model was called" if result.status == Status.SUCCESSFUL else "no model was called before the failure"
        console.print(f"{INDENT}[yellow]{note}[/]")
    for model in result.models:
        render_model(console, model, 1, cache_root)
