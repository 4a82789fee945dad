"""Prints pipeline progress and per-script reports to the terminal (``tk benchmark`` / ``tk profile``).

Two streams, never mixed: the report (the TurnkeyML-style status of each script, the profile tables
and the closing summary) goes to stdout; progress goes to stderr. Progress is a live rich display
(input i of N, the model and stage running, and its elapsed time) when stderr is a terminal, one
plain line per stage when it is not, and nothing at all with ``-q``.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from turnkey_like.errors import TkError
from turnkey_like.events import Listener, RunSummary
from turnkey_like.records import STAGES, ScriptResult, Status
from turnkey_like.report.status import relative_path, render_script

_STAGE_VERB = {"characterization": "characterizing", "build": "building ONNX for", "benchmark": "benchmarking"}


class ConsoleListener(Listener):
    """Renders pipeline events with rich: live progress on stderr, the report after each script on stdout.

    Use it as a context manager around ``Pipeline.run`` so the live display always stops.

    Args:
        console: where the report goes (stdout).
        cache_root: shown next to each model so users find the build folders.
        profile: also print the per-module characterization tables (``tk profile``).
        showshape, top: passed to the characterization table renderer.
        runtime: which per-layer run the tables show (``--runtime``; default the latest).
        phase: a generation's phase whose per-module table is shown (``--phase``; default the prefill).
        quiet: no progress at all (``-q``).
        show_traceback: print a failing script's traceback under its error (``--traceback``).
        progress_console: where progress goes (default: stderr).
    """

    def __init__(self, console: Console, cache_root: str | None = None, profile: bool = False,
                 showshape: bool = False, top: int = 10, quiet: bool = False, show_traceback: bool = False,
                 progress_console: Console | None = None, runtime: str | None = None, phase: str | None = None,
                 fold: bool = True):
        self.console = console
        self.cache_root = cache_root
        self.profile = profile
        self.showshape = showshape
        self.top = top
        self.runtime = runtime
        self.phase = phase
        self.fold = fold
        self.quiet = quiet
        self.show_traceback = show_traceback
        self.progress_console = progress_console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.live = not quiet and self.progress_console.is_terminal
        self._progress: Progress | None = None
        self._inputs_task = None
        self._stage_task = None
        self._total = 0

    @property
    def progress(self) -> Progress | None:
        """The live rich display while it runs (``None`` when stderr is not a terminal, or ``-q``):
        corpus runs add their own line to it."""
        return self._progress

    # -- the live display ------------------------------------------------------------------------
    def __enter__(self) -> ConsoleListener:
        if self.live:
            # The report is printed above the live display when stdout is the same terminal.
            same_terminal = sys.stdout.isatty()
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                console=self.progress_console, transient=True, redirect_stdout=same_terminal,
                redirect_stderr=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def run_started(self, specs) -> None:
        self._total = len(specs)
        if self._progress is not None:
            self._inputs_task = self._progress.add_task("starting", total=max(self._total, 1))

    def script_started(self, spec, index: int) -> None:
        where = escape(relative_path(str(spec.path)))
        if self._progress is not None:
            self._progress.update(self._inputs_task, completed=index,
                                  description=f"input {index + 1} of {self._total}: {where} (discovery)")
        elif not self.quiet:
            self.progress_console.print(f"[dim]── input {index + 1} of {self._total}: running {where} ──[/]")

    def stage_started(self, result, model, inv, stage) -> None:
        text = f"{_STAGE_VERB.get(stage, stage)} {escape(model.name)} ({inv.hash})"
        if self._progress is not None:
            if self._stage_task is not None:
                self._progress.remove_task(self._stage_task)
            self._stage_task = self._progress.add_task(f"  {text}", total=None)
        elif not self.quiet:
            self.progress_console.print(f"[dim]   {text}...[/]")

    def stage_finished(self, result, model, inv, stage) -> None:
        if self._progress is not None and self._stage_task is not None:
            self._progress.remove_task(self._stage_task)
            self._stage_task = None

    def script_finished(self, result: ScriptResult, error: TkError | None) -> None:
        render_script(self.console, result, self.cache_root, error=error, show_traceback=self.show_traceback)
        if self.profile:
            self._print_profiles(result)

    def _print_profiles(self, result: ScriptResult) -> None:
        from turnkey_like.report.characterization import invocation_per_layer, render_profile

        for model, inv in result.invocations():
            char = inv.characterization
            if not inv.selected or char.status != Status.SUCCESSFUL or char.result is None:
                continue
            self.console.rule(f"{escape(model.name)} · invocation {inv.hash}")
            render_profile(char.result, self.console, showshape=self.showshape, top=self.top,
                           per_layer=invocation_per_layer(inv, self.runtime), phase=self.phase, fold=self.fold)

    @staticmethod
    def print_summary(console: Console, summary: RunSummary) -> None:
        """One closing line: inputs, models, invocations, stage successes and failures."""
        scripts = len(summary.results)
        models = sum(1 for r in summary.results for _ in r.walk_models())
        invs = [(m, i) for r in summary.results for m, i in r.invocations()]
        selected = [i for _, i in invs if i.selected]
        done = {name: sum(1 for i in selected if i.stages()[name].status == Status.SUCCESSFUL) for name in STAGES}
        # summary.errors holds one error per bad input, failed script or unmatched selector; a failure
        # kept from an earlier run is shown in its block, not counted here
        problems = len(summary.errors) + summary.stage_failures()
        style = "red" if problems else "green"
        console.print(
            f"\n[{style}]{scripts} input(s), {models} model(s), {len(invs)} invocation(s) ({len(selected)} selected): "
            f"{done['characterization']} characterized, {done['build']} built, {done['benchmark']} benchmarked; "
            f"{problems} problem(s)[/]"
        )
