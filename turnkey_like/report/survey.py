"""What ``tk discover-models`` prints: a survey of a model zoo through the tracing ladder.

Renders the survey records (:mod:`turnkey_like.records.survey`: ``SurveyReport``,
``ModelSurvey``): the summary counts, models by family, failures with their one-line reasons, the
failure types per rung and the skipped models (:func:`render_report`); one model rung by rung
(:func:`render_ladder`, ``--test-model``); one progress line per finished model
(:func:`progress_line`). Parameters and MACs with SI prefixes (1 MAC = 2 FLOPs), times in
ns/µs/ms/s (:mod:`turnkey_like.units`). The counts come from the report
(``SurveyReport.counts``); nothing is counted here.

This module imports neither torch nor any model library.
"""

from __future__ import annotations

from typing import NamedTuple

from turnkey_like.units import format_seconds, format_shapes, si

#: The style of each outcome in the tables.
TRACE_STYLE = {"ok": "green", "failed": "bold red", "not tried": "dim", "not reached": "dim", "skipped": "dim",
               "timeout": "yellow", "killed": "bold red"}


def _table(title: str, columns: list[tuple[str, str]]):
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    return table


def _styled(text: str, outcome: str):
    from rich.text import Text

    return Text(text, style=TRACE_STYLE.get(outcome, ""))


def _export_text(export) -> str:
    if export is None:
        return "-"
    if export.status.value == "successful":
        return f"ok ({export.exporter})"
    return export.status.value


def _macs_text(survey) -> str:
    """MACs with ``*`` when some ops had no formula (the count is then a lower bound)."""
    return si(survey.macs) + ("*" if survey.uncounted_ops else "")


def _inputs_text(survey) -> str:
    return ", ".join(f"{k} {format_shapes([d.shape])} {d.dtype}" for k, d in survey.inputs.items()) or "-"


def reason(survey) -> str:
    """Why a model failed or did not trace, in one line (the failed step's error, else the last
    failed rung's)."""
    if survey.error:
        where = f"{survey.failed_step}: " if survey.failed_step else ""
        return where + survey.error
    failed = [a for a in survey.attempts if not a.ok]
    return failed[-1].method + ": " + (failed[-1].error or "") if failed else "-"


def progress_line(survey, done: int, total: int) -> str:
    """``[done/total] name: outcome (time)``: one finished model, for the progress on stderr."""
    outcome = (("did not trace" if survey.trace_method == "none" else survey.trace_method)
               if survey.status.value == "successful" else f"{survey.status.value}: {reason(survey)[:150]}")
    return f"[{done}/{total}] {survey.name}: {outcome} ({format_seconds(survey.duration_s)})"


class LadderStep(NamedTuple):
    """One line of the ``--test-model`` table: the step (``build``, ``run``, a rung, ``ONNX export``),
    its outcome (``ok``, ``failed``, ``not tried``, ``not reached``, ``timeout``, ``killed``, ...), the
    text shown for it, its time in seconds (``None``: not measured) and its one-line error."""

    label: str
    outcome: str
    text: str
    seconds: float | None
    error: str | None


def ladder_steps(survey) -> list[LadderStep]:
    """The steps of one model's survey in order: build, run, each tracing rung, and the ONNX export
    when it was asked for.

    The outcome of each step is read from the record: the step a killed or timed-out child was in
    (``failed_step``) takes that status and every later one is "not reached"; a rung without an
    attempt was "not tried".
    """
    from turnkey_like.records import LADDER

    status = survey.status.value
    ended = status in ("timeout", "killed")  # the child was killed during failed_step
    steps = ["build", "run", *LADDER]
    stop = (survey.failed_step or "build") if ended else survey.failed_step if survey.failed_step == "build" else None
    stop_at = steps.index(stop) if stop in steps else len(steps)
    tried = {a.method: a for a in survey.attempts}
    out = []
    for i, step in enumerate(steps):
        attempt = tried.get(step)
        seconds = attempt.duration_s if attempt else survey.durations.get(step)
        error = attempt.error if attempt else None
        if i > stop_at:
            outcome, seconds = "not reached", None
        elif i == stop_at:
            outcome, error = (status if ended else "failed"), survey.error
            seconds = seconds if not ended else None
        elif step == "build":
            outcome = "ok"
        elif step == "run":
            outcome, error = ("failed", survey.error) if survey.failed_step == "run" else ("ok", None)
        else:
            outcome = ("ok" if attempt.ok else "failed") if attempt else "not tried"
        out.append(LadderStep("run (counted call)" if step == "run" else step, outcome, outcome, seconds, error))
    if survey.export is not None:
        export = survey.export
        if ended and survey.failed_step == "export":
            outcome, text, error = status, status, survey.error
        else:
            outcome = {"successful": "ok", "error": "failed"}.get(export.status.value, export.status.value)
            text, error = _export_text(export), export.error
        out.append(LadderStep("ONNX export", outcome, text, export.duration_s, error))
    return out


def render_ladder(survey, console) -> None:
    """Print one model's survey rung by rung (``--test-model``): build, run, each tracing rung,
    and the ONNX export when asked, with the outcome, time and one-line error of each
    (:func:`ladder_steps`)."""
    from rich.text import Text

    head = (f"{survey.name} ({survey.source}, family {survey.family or '-'}): {survey.model_class or '?'}, "
            f"{si(survey.params)} params, {si(survey.macs, 'MACs')} (1 MAC = 2 FLOPs"
            + (f"; {survey.uncounted_ops} op calls without a formula" if survey.uncounted_ops else "") + ")"
            + (", built on meta (no weights)" if survey.on_meta else ""))
    console.print(Text(head, style="bold"))
    console.print(Text(f"inputs: {_inputs_text(survey)}"))
    for note in survey.notes:
        console.print(Text(f"note: {note}"))
    table = _table("Tracing ladder", [("Step", "left"), ("Outcome", "left"), ("Time", "right"), ("Error", "left")])
    for step in ladder_steps(survey):
        table.add_row(step.label, _styled(step.text, step.outcome),
                      format_seconds(step.seconds) if step.seconds is not None else "-", Text(step.error or ""))
    console.print(table)
    nodes = f"{survey.node_count} nodes" + (" in its shallow copy" if survey.traced_depth else "")
    verdict = (f"traced by {survey.trace_method} ({nodes})" if survey.traced else
               "did not trace" if survey.status.value == "successful" else f"{survey.status.value}: {reason(survey)[:150]}")
    console.print(Text(f"{survey.name}: {verdict}; {format_seconds(survey.duration_s)} in all"))
    if survey.log_excerpt:
        console.print(Text("log (last lines):\n" + survey.log_excerpt, style="dim"))


def render_report(report, console, *, verbose: bool = False) -> None:
    """Print a survey: its heading, summary counts, models by family, failures with their reasons,
    failure types per rung, and skipped models. With ``verbose`` every failed rung of every model is
    listed."""
    from rich.text import Text

    c = report.counts
    scope = f", --family {report.family!r}" if report.family else ""
    console.print(Text(
        f"tk discover-models: {report.source}{scope}: {c['surveyed']} of {report.available} models surveyed "
        f"({c['cached']} from the cache), {format_seconds(report.wall_s)}; cache {report.cache_folder}", style="bold"))
    render_summary(report, console)
    render_families(report, console)
    render_failures(report, console, verbose=verbose)
    render_skipped(report, console)


def render_summary(report, console) -> None:
    """The summary table: models per outcome (``SurveyReport.counts``), traced ones per rung."""
    from turnkey_like.records import LADDER

    c = report.counts
    summary = _table("Summary", [("Outcome", "left"), ("Models", "right")])
    rows = [("traced", c["traced"])] + [(f"  by {m}", c[m]) for m in LADDER] + [
        ("built and ran, did not trace", c["not_traced"]), ("failed to build", c["build_failed"]),
        ("failed to run", c["run_failed"]), ("timed out", c["timeout"]), ("killed (crash or out of memory)", c["killed"]),
        ("skipped", c["skipped"])]
    if report.export:
        rows += [("exported to ONNX", c.get("exported", 0)), ("export failed", c.get("export_failed", 0)),
                 ("export skipped (meta or no run)", c.get("export_skipped", 0))]
    for label, n in rows:
        summary.add_row(label, str(n))
    console.print(summary)


def render_families(report, console) -> None:
    """One row per model, grouped by family (families sorted, models in survey order): trace
    method or status, parameters, MACs, ONNX export, time."""
    from rich.text import Text

    by_family = _table("Models by family", [("Family", "left"), ("Model", "left"), ("Trace", "left"),
                                            ("Params", "right"), ("MACs", "right"), ("ONNX", "left"), ("Time", "right")])
    families: dict[str, list] = {}
    for m in report.models:
        families.setdefault(m.family or "-", []).append(m)
    for fam in sorted(families):
        for i, m in enumerate(families[fam]):
            trace = m.trace_method if m.status.value == "successful" else m.status.value
            outcome = "ok" if m.traced else "failed" if m.status.value != "timeout" else "timeout"
            meta = " (meta)" if m.on_meta else ""
            by_family.add_row(fam if i == 0 else "", m.name, _styled(trace, outcome), si(m.params) + meta,
                              _macs_text(m), _export_text(m.export), format_seconds(m.duration_s),
                              end_section=i == len(families[fam]) - 1)
    console.print(by_family)
    if any(m.uncounted_ops for m in report.models):
        console.print(Text("* some ops have no MAC formula (custom kernels, quantized embeddings): a lower bound; "
                           "`tk profile --model NAME` lists them"))


def render_failures(report, console, *, verbose: bool = False) -> None:
    """The models that failed or did not trace with their reasons; with ``verbose`` every failed
    rung; then the exception types per rung (``records.failure_types``)."""
    from rich.text import Text

    from turnkey_like.records import failure_types

    failed = [m for m in report.models if not m.traced or m.status.value != "successful"]
    if failed:
        table = _table(f"Failures ({len(failed)})", [("Model", "left"), ("Outcome", "left"), ("Reason", "left")])
        for m in failed:
            outcome = ("did not trace" if m.status.value == "successful" else
                       f"{m.status.value} (traced)" if m.traced else m.status.value)
            table.add_row(m.name, _styled(outcome, "failed"), Text(reason(m)))
        console.print(table)
    if verbose:
        table = _table("Every failed rung", [("Model", "left"), ("Rung", "left"), ("Error", "left")])
        for m in report.models:
            for a in m.attempts:
                if not a.ok:
                    table.add_row(m.name, a.method, Text(a.error or ""))
        console.print(table)
    types = failure_types(report.models)
    if any(types.values()):
        table = _table("Why rungs failed (exception type: models)", [("Rung", "left"), ("Failures", "left")])
        for rung, per in types.items():
            if per:
                table.add_row(rung, Text(", ".join(f"{k}: {n}" for k, n in per.items())))
        console.print(table)


def render_skipped(report, console) -> None:
    """The models skipped (``--skip-patterns``) with the reason, or "Skipped: none"."""
    from rich.text import Text

    if report.skipped:
        table = _table(f"Skipped ({len(report.skipped)})", [("Model", "left"), ("Family", "left"), ("Reason", "left")])
        for s in report.skipped:
            table.add_row(s.name, s.family, Text(s.reason))
        console.print(table)
    else:
        console.print(Text("Skipped: none"))
