"""`tk discover-models`: a model zoo through the tracing ladder, one child process per model.

``register(subparsers, parent)`` adds the parser; the handler returns the exit code. The survey itself
lives in :mod:`turnkey_like.corpus.survey`; this module parses options and prints its records with
rich tables (numbers with :mod:`turnkey_like.units`). Nothing here imports torch; a run served from the
cache imports no model library at all.

Exit codes: 0 when the survey ran (models that fail to build, run or trace are results, listed, not
failures of the command); 1 with ``--test-model`` when that model did not build and run, or on a
usage problem (unknown source, ``--family`` matching nothing).
"""

from __future__ import annotations

import argparse
import sys

from turnkey_like.cli import options
from turnkey_like.cli.arguments import CACHE_DIR_HELP
from turnkey_like.cli.outputs import table_console
from turnkey_like.units import format_seconds, si

TRACE_STYLE = {"ok": "green", "failed": "bold red", "not tried": "dim", "not reached": "dim", "skipped": "dim",
               "timeout": "yellow", "killed": "bold red"}


def register(subparsers, parent: argparse.ArgumentParser) -> None:
    """Add the ``discover-models`` command (``parent``: the options every command takes; its
    ``-v/--verbose`` lists every failed rung of every model)."""
    from turnkey_like.records import DEFAULT_TIMEOUT_S
    from turnkey_like.zoo import source_names

    p = subparsers.add_parser(
        "discover-models", parents=[parent],
        help="take every model of a zoo through the tracing ladder (FX, export non-strict, export strict)",
        description="Build each model of a source without weights (on meta where large), run it once, walk the "
                    "tracing ladder (fx.symbolic_trace, torch.export non-strict, then strict) and record the "
                    "method that worked, why each other failed, parameters, MACs (1 MAC = 2 FLOPs) and time; "
                    "with --export also whether it exports to ONNX. Each model runs in its own child process "
                    "with a time limit. Results are cached per library versions: a second run is instant. "
                    "-v also lists every failed rung of every model.")
    group = p.add_argument_group("models")
    group.add_argument("--source", choices=source_names(), default="torchvision",
                       help="the zoo to survey (default torchvision); factory needs --models pkg.mod:factory")
    group.add_argument("--family", metavar="SUBSTRING",
                       help="only models whose name or family contains SUBSTRING (case-insensitive)")
    group.add_argument("--skip-patterns", nargs="+", default=[], metavar="SUBSTRING",
                       help="skip models whose name contains one of these (listed as skipped; default none)")
    group.add_argument("--models", nargs="+", default=None, metavar="NAME",
                       help="survey these names instead of the source's list (hub names, .yaml files, "
                            "pkg.mod:factory with --source factory)")
    group.add_argument("--test-model", metavar="NAME",
                       help="survey this one model afresh, trying every rung, and print each rung's outcome")
    group = p.add_argument_group("survey")
    group.add_argument("--export", action="store_true", help="also export each model to ONNX (and check it on ORT)")
    group.add_argument("--workers", type=int, default=1, metavar="N",
                       help="models surveyed at once on a Dask LocalCluster of N workers, each model in its "
                            "own child process (default 1: one at a time, no Dask)")
    group.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                       help=f"time limit for each model's child process (default {DEFAULT_TIMEOUT_S:g})")
    group.add_argument("--refresh", action="store_true", help="survey again instead of reading cached results")
    group.add_argument("--full-depth", action="store_true",
                       help="trace models built on meta at their full depth (default: a shallow copy keeping "
                            "every distinct kind of layer, e.g. Llama 2 of 32 layers; MACs are always the "
                            "full model's)")
    group = p.add_argument_group("results")
    group.add_argument("--generate-code", action="store_true",
                       help="print a Python MODEL_REGISTRY = {...} of the models that traced, grouped by family")
    group.add_argument("--json", metavar="FILE", help="also write every result as JSON (a SurveyReport)")
    group.add_argument("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)
    p.set_defaults(func=discover_models, parser=p)


def _progress(quiet: bool):
    """A callback printing one line per finished model on stderr (nothing with ``-q``)."""
    if quiet:
        return None

    def line(survey, done: int, total: int) -> None:
        outcome = (("did not trace" if survey.trace_method == "none" else survey.trace_method)
                   if survey.status.value == "successful" else f"{survey.status.value}: {_reason(survey)[:150]}")
        print(f"[{done}/{total}] {survey.name}: {outcome} ({format_seconds(survey.duration_s)})",
              file=sys.stderr, flush=True)

    return line


def discover_models(args: argparse.Namespace) -> int:
    """Handler of ``tk discover-models``."""
    from turnkey_like.corpus import survey as dm
    from turnkey_like.files import write_record
    from turnkey_like.zoo.survey import generate_code

    command = options.parse_discover_models(args)
    if command.test_model:
        survey = dm.try_model(command.test_model, command.source, export=command.export, timeout_s=command.timeout_s,
                              full_depth=command.full_depth, cache_dir=command.cache_dir)
        render_ladder(survey, table_console())
        if command.json:
            write_record(command.json, survey, fsync=False)
        return 0 if survey.status.value == "successful" else 1
    report = dm.discover(command.source, family=command.family, skip_patterns=list(command.skip_patterns),
                         export=command.export, workers=command.workers, timeout_s=command.timeout_s,
                         refresh=command.refresh, full_depth=command.full_depth, cache_dir=command.cache_dir,
                         models=list(command.models) if command.models is not None else None,
                         on_result=_progress(command.common.quiet))
    if command.json:
        write_record(command.json, report, fsync=False)
    if command.generate_code:
        sys.stdout.write(generate_code(report))
        return 0
    render_report(report, table_console(), verbose=command.common.verbose > 0)
    return 0


# ----------------------------------------------------------------------------------------- render
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
    from turnkey_like.units import format_shapes

    return ", ".join(f"{k} {format_shapes([d.shape])} {d.dtype}" for k, d in survey.inputs.items()) or "-"


def _reason(survey) -> str:
    """Why a model failed or did not trace, in one line."""
    if survey.error:
        where = f"{survey.failed_step}: " if survey.failed_step else ""
        return where + survey.error
    failed = [a for a in survey.attempts if not a.ok]
    return failed[-1].method + ": " + (failed[-1].error or "") if failed else "-"


def render_ladder(survey, console) -> None:
    """Print one model's survey rung by rung (``--test-model``): build, run, each tracing rung,
    and the ONNX export when asked, with the outcome, time and one-line error of each."""
    from rich.text import Text

    from turnkey_like.records import LADDER

    head = (f"{survey.name} ({survey.source}, family {survey.family or '-'}): {survey.model_class or '?'}, "
            f"{si(survey.params)} params, {si(survey.macs, 'MACs')} (1 MAC = 2 FLOPs"
            + (f"; {survey.uncounted_ops} op calls without a formula" if survey.uncounted_ops else "") + ")"
            + (", built on meta (no weights)" if survey.on_meta else ""))
    console.print(Text(head, style="bold"))
    console.print(Text(f"inputs: {_inputs_text(survey)}"))
    for note in survey.notes:
        console.print(Text(f"note: {note}"))
    table = _table("Tracing ladder", [("Step", "left"), ("Outcome", "left"), ("Time", "right"), ("Error", "left")])
    status = survey.status.value
    ended = status in ("timeout", "killed")  # the child was killed during failed_step
    steps = ["build", "run", *LADDER]
    stop = (survey.failed_step or "build") if ended else survey.failed_step if survey.failed_step == "build" else None
    stop_at = steps.index(stop) if stop in steps else len(steps)
    tried = {a.method: a for a in survey.attempts}
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
        label = "run (counted call)" if step == "run" else step
        table.add_row(label, _styled(outcome, outcome), format_seconds(seconds) if seconds is not None else "-",
                      Text(error or ""))
    if survey.export is not None:
        export = survey.export
        if ended and survey.failed_step == "export":
            outcome, text, error = status, status, survey.error
        else:
            outcome = {"successful": "ok", "error": "failed"}.get(export.status.value, export.status.value)
            text, error = _export_text(export), export.error
        table.add_row("ONNX export", _styled(text, outcome), format_seconds(export.duration_s), Text(error or ""))
    console.print(table)
    nodes = f"{survey.node_count} nodes" + (" in its shallow copy" if survey.traced_depth else "")
    verdict = (f"traced by {survey.trace_method} ({nodes})" if survey.traced else
               "did not trace" if survey.status.value == "successful" else f"{survey.status.value}: {_reason(survey)[:150]}")
    console.print(Text(f"{survey.name}: {verdict}; {format_seconds(survey.duration_s)} in all"))
    if survey.log_excerpt:
        console.print(Text("log (last lines):\n" + survey.log_excerpt, style="dim"))


def render_report(report, console, *, verbose: bool = False) -> None:
    """Print a survey: summary counts, models by family, failures with their reasons, failure types
    per rung, and skipped models. With ``verbose`` every failed rung of every model is listed."""
    from rich.text import Text

    from turnkey_like.records import LADDER, failure_types

    c = report.counts
    scope = f", --family {report.family!r}" if report.family else ""
    console.print(Text(
        f"tk discover-models: {report.source}{scope}: {c['surveyed']} of {report.available} models surveyed "
        f"({c['cached']} from the cache), {format_seconds(report.wall_s)}; cache {report.cache_folder}", style="bold"))

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

    failed = [m for m in report.models if not m.traced or m.status.value != "successful"]
    if failed:
        table = _table(f"Failures ({len(failed)})", [("Model", "left"), ("Outcome", "left"), ("Reason", "left")])
        for m in failed:
            outcome = ("did not trace" if m.status.value == "successful" else
                       f"{m.status.value} (traced)" if m.traced else m.status.value)
            table.add_row(m.name, _styled(outcome, "failed"), Text(_reason(m)))
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
    if report.skipped:
        table = _table(f"Skipped ({len(report.skipped)})", [("Model", "left"), ("Family", "left"), ("Reason", "left")])
        for s in report.skipped:
            table.add_row(s.name, s.family, Text(s.reason))
        console.print(table)
    else:
        console.print(Text("Skipped: none"))
