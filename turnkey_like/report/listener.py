"""Prints pipeline progress and per-script reports to the terminal (``tk benchmark`` / ``tk profile``)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from turnkey_like.errors import TkError
from turnkey_like.pipeline import Listener, RunSummary
from turnkey_like.records import ScriptResult, Status
from turnkey_like.report.status import relative_path, render_script

_STAGE_VERB = {"characterization": "characterizing", "build": "building ONNX for", "benchmark": "benchmarking"}


class ConsoleListener(Listener):
    """Renders pipeline events with rich: a progress line per stage, the report after each script.

    Args:
        console: where to print.
        cache_root: shown next to each model so users find the build folders.
        profile: also print the per-module characterization tables (``tk profile``).
        showshape, top: passed to the characterization table renderer.
    """

    def __init__(self, console: Console, cache_root: str | None = None, profile: bool = False,
                 showshape: bool = False, top: int = 10):
        self.console = console
        self.cache_root = cache_root
        self.profile = profile
        self.showshape = showshape
        self.top = top

    def script_started(self, spec) -> None:
        self.console.print(f"[dim]── running {escape(relative_path(str(spec.path)))} ──[/]")

    def stage_started(self, result, model, inv, stage) -> None:
        self.console.print(f"[dim]   {_STAGE_VERB.get(stage, stage)} {escape(model.name)} ({inv.hash})...[/]")

    def script_finished(self, result: ScriptResult, error: TkError | None) -> None:
        render_script(self.console, result, self.cache_root)
        if error is not None:
            self.console.print(f"    [red]error:[/] {escape(error.message)}")
            if error.hint:
                self.console.print(f"    [dim]hint: {escape(error.hint)}[/]")
        if self.profile:
            self._print_profiles(result)

    def _print_profiles(self, result: ScriptResult) -> None:
        from turnkey_like.characterize import Characterization
        from turnkey_like.report.characterization import render_profile

        for model, inv in result.invocations():
            char = inv.characterization
            if not inv.selected or char.status != Status.SUCCESSFUL or not char.result:
                continue
            self.console.rule(f"{escape(model.name)} · invocation {inv.hash}")
            render_profile(Characterization.from_dict(char.result), self.console,
                           showshape=self.showshape, top=self.top)

    @staticmethod
    def print_summary(console: Console, summary: RunSummary) -> None:
        """One closing line: inputs, models, invocations, stage successes and failures."""
        scripts = len(summary.results)
        models = sum(1 for r in summary.results for _ in r.walk_models())
        invs = [(m, i) for r in summary.results for m, i in r.invocations()]
        selected = [i for _, i in invs if i.selected]
        done = {name: sum(1 for i in selected if i.stages()[name].status == Status.SUCCESSFUL)
                for name in ("characterization", "build", "benchmark")}
        # summary.errors holds one error per bad input, failed script or unmatched selector
        failed_stages = sum(1 for i in selected for s in i.stages().values()
                            if s.status in (Status.ERROR, Status.TIMEOUT, Status.KILLED))
        problems = len(summary.errors) + failed_stages
        style = "red" if problems else "green"
        console.print(
            f"\n[{style}]{scripts} input(s), {models} model(s), {len(invs)} invocation(s) ({len(selected)} selected): "
            f"{done['characterization']} characterized, {done['build']} built, {done['benchmark']} benchmarked; "
            f"{problems} problem(s)[/]"
        )
