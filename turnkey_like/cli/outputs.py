"""What the command line writes: ``--json``, ``--visualize``, ``--roofline``, ``--generation-plot`` and ``--html`` files,
``tk report --format html``, and the consoles and one-line messages on the terminal.

Everything here renders records that a run or the cache already holds (through
``turnkey_like.views``, ``turnkey_like.report`` and ``turnkey_like.records``); nothing is computed here. Paths arrive
checked by :mod:`turnkey_like.cli.options`; a write that still fails (a full disk, a folder
removed meanwhile) is one ``InputError`` naming the flag and the path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from turnkey_like.errors import InputError, TkError

if TYPE_CHECKING:
    from rich.console import Console

    from turnkey_like.cli.options import OutputOptions
    from turnkey_like.pipeline import RunSummary


# ------------------------------------------------------------------------------------------ terminal
def stdout_console(*, wide: int | None = None) -> Console:
    """A rich console on stdout for a run's report: soft-wrapped; ``wide`` columns when stdout is not
    a terminal and ``COLUMNS`` is unset (so piped tables are not squeezed to 80 columns)."""
    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else wide
    return Console(highlight=False, soft_wrap=True, width=width)


def stderr_console() -> Console:
    """A rich console on stderr (progress, and the report of commands whose stdout holds a view)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def table_console(stderr: bool = False, *, columns: int | None = None) -> Console:
    """A rich console on the *current* stdout/stderr for tables, not wrapped; when not a terminal
    (files, pipes, tests) ``columns`` wide, else ``$COLUMNS`` (default 200)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else columns or int(os.environ.get("COLUMNS", "200"))
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def print_error(error: TkError) -> None:
    """``error: MESSAGE`` and ``hint: HINT`` (when there is one) on stderr, one line each."""
    print(f"error: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)


def print_problems(problems) -> None:
    """Name each unreadable record on stderr, one line each (never wrapped), then how to remove one."""
    if not problems:
        return
    lines = [f"warning: skipped {len(problems)} unreadable record(s):"]
    lines += [f"  {p.build_name}: {p.message}" for p in problems]
    lines.append("hint: `tk cache delete BUILD` removes a broken build; running it again rewrites its record")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


# ------------------------------------------------------------------------------------------ files
def write_file(flag: str, path: str | Path, write: Callable[[Path], object]) -> Path:
    """Make ``path``'s folder and call ``write(path)`` (an atomic writer); return the path.

    Raises:
        InputError: the folder or file cannot be written (``FLAG PATH: cannot write (reason)``).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(target)
    except OSError as e:
        raise InputError(f"{flag} {path}: cannot write ({e.strerror or e})", hint="choose a writable path") from None
    return target


def write_run_json(path: str, summary: RunSummary, exit_code: int) -> None:
    """Write the run's records to ``path`` as a :class:`~turnkey_like.records.RunReport` (atomically)."""
    from turnkey_like import __version__
    from turnkey_like.files import write_record
    from turnkey_like.records import RunReport, now_utc
    from turnkey_like.system import system_record

    report = RunReport(tk_version=__version__, created_at=now_utc(), system=system_record(), exit_code=exit_code,
                       interrupted=summary.interrupted, results=summary.results,
                       errors=[e.message + (f" (hint: {e.hint})" if e.hint else "") for e in summary.errors])
    write_file("--json", path, lambda target: write_record(target, report))


def write_visualize(output: OutputOptions, summary: RunSummary, console: Console) -> None:
    """Write the ``--visualize`` pictures of every characterized invocation in ``summary`` (one line each).

    Raises:
        TkError: Graphviz's ``dot`` is missing (one line saying how to install it) or failed.
    """
    from rich.markup import escape

    from turnkey_like.report.measured import measured_run
    from turnkey_like.views import characterized, output_path_for
    from turnkey_like.views.graph import render_graph

    calls = characterized(summary.results)
    if not calls:
        console.print("[dim]--visualize: no invocation was characterized, so there is no graph to draw[/]")
    for call in calls:
        target = output_path_for(output.visualize, call.inv.hash, len(calls) > 1)
        measured = measured_run(call.inv, output.runtime)
        per_layer = measured.per_layer if measured is not None else None
        color_by = output.color_by
        if color_by == "measured" and per_layer is None:
            console.print(f"[yellow]--color-by measured: {escape(call.label)} has no per-layer run "
                          f"(`tk benchmark --per-layer`); coloured by bound[/]")
            color_by = "bound"
        render_graph(call.char, target, collapse=output.collapse, fold_repeats=output.fold_repeats, title=call.label,
                     per_layer=per_layer, measured_label=measured.label if measured is not None else "",
                     color_by=color_by)
        console.print(f"[dim]graph of {escape(call.label)} written to {target}[/]")


def chart_title(record) -> str:
    """``model (Class) ::hash`` for a record's plots and sections."""
    return f"{record.model.name} ({record.model.class_name}) ::{record.invocation.hash}"


def write_roofline_plots(path: str, records, profiles, console: Console, runtime: str | None = None) -> None:
    """One ``--roofline`` plot per characterized record (``_<hash>`` before the extension when
    several), each with the record's own profile and ``profiles`` (HardwareProfile) drawn too, and
    with a per-layer run (the latest, or ``runtime``'s) its measured points under the roof and the
    roof of the profile it measured on."""
    from turnkey_like.records import Status
    from turnkey_like.report.measured import measured_run
    from turnkey_like.views import output_path_for
    from turnkey_like.views.roofline_plot import roofline_of, write_roofline

    done = [r for r in records if r.invocation.characterization.status == Status.SUCCESSFUL
            and r.invocation.characterization.result is not None]
    for record in done:
        inv = record.invocation
        char = inv.characterization.result
        target = output_path_for(path, inv.hash, len(done) > 1)
        run = measured_run(inv, runtime)
        chart, measured, notes = roofline_of(char, list(profiles), chart_title(record),
                                             run.per_layer if run is not None else None,
                                             run.label if run is not None else None)
        write_roofline(chart, target, measured=measured, roof_notes=notes)
        how = f" with measured points of {run.label}" if measured is not None else " (predictions only)"
        console.print(f"[dim]roofline plot written to {target}{how}[/]")
    if not done:
        console.print("[yellow]--roofline: no invocation was characterized; no plot written[/]")


def write_generation_plots(path: str, summary: RunSummary, console: Console) -> None:
    """Write ``--generation-plot``: one plot per model with generations (``_<model>`` before the
    extension when several), decode tokens/s against batch from the records' what-ifs."""
    from rich.markup import escape

    from turnkey_like.report.generation import generation_points
    from turnkey_like.views import output_path_for
    from turnkey_like.views.generation_plot import write_generation_plot

    points = generation_points((model.name, inv) for result in summary.results for model, inv in result.invocations())
    models = list(dict.fromkeys(p.model for p in points))
    if not models:
        console.print("[yellow]--generation-plot: no generation was characterized; no plot written[/]")
    for name in models:
        target = output_path_for(path, name.replace("/", "_"), len(models) > 1)
        write_generation_plot([p for p in points if p.model == name], target, title=f"{name}: decode throughput")
        console.print(f"[dim]generation plot of {escape(name)} written to {target}[/]")


def write_run_outputs(output: OutputOptions, summary: RunSummary, exit_code: int, console: Console, *,
                      title: str, extra_profiles: tuple[str, ...] = (), cache_dir: str | None = None) -> None:
    """After a run: write ``--json``, then ``--visualize`` pictures, ``--roofline`` plots and the
    ``--html`` report, each from the run's records, with one line saying where.

    ``title``: the HTML page's title; ``extra_profiles``: the ``--hardware`` profiles after the
    first, drawn on the plots too (``cache_dir`` holds the measured ``local`` profile).
    """
    if output.json:
        write_run_json(output.json, summary, exit_code)
        console.print(f"[dim]records written to {output.json}[/]")
    if output.visualize:
        write_visualize(output, summary, console)
    if output.generation_plot:
        write_generation_plots(output.generation_plot, summary, console)
    if not output.roofline and not output.html:
        return
    from turnkey_like.characterize.hardware import get_profile
    from turnkey_like.views.compare import build_records

    records = build_records(summary.results)
    profiles = [get_profile(name, cache_dir=cache_dir) for name in extra_profiles]
    if output.roofline:
        write_roofline_plots(output.roofline, records, profiles, console, output.runtime)
    if output.html:
        from turnkey_like.views.html import write_html

        write_html(records, output.html, title=title, profiles=profiles, runtime=output.runtime)
        console.print(f"[dim]HTML report written to {output.html}[/]")


def write_comparison(comp, records, *, json: str | None, html: str | None, title: str, console: Console) -> None:
    """``tk compare``'s outputs: the comparison as JSON on stdout (``json == "-"``, instead of the
    table) or the table on ``console``; then the JSON file and the HTML report when asked."""
    import msgspec

    from turnkey_like.files import write_record
    from turnkey_like.records import encode
    from turnkey_like.report.compare import render_comparison

    if json == "-":
        print(msgspec.json.format(encode(comp), indent=1).decode("utf-8"))
    else:
        render_comparison(comp, console, records)
    if json and json != "-":
        write_file("--json", json, lambda target: write_record(target, comp))
        print(f"comparison written to {json}", file=sys.stderr)
    if html:
        from turnkey_like.views.html import write_html

        write_html(records, html, title=title, comparison=comp)
        print(f"HTML report written to {html}", file=sys.stderr)


def write_cache_html(cache_dirs: tuple[str | None, ...], path: Path) -> int:
    """``tk report --format html -o PATH``: one HTML page of every build in the caches (full records,
    merged by build name: the first cache that has a build wins); returns how many records were
    skipped as unreadable (each named on stderr)."""
    from turnkey_like.cache import Cache
    from turnkey_like.views.html import write_html

    records, seen, skipped = [], set(), 0
    for d in cache_dirs:
        found, problems = Cache(d, create=False).records(full=True)
        print_problems(problems)  # named on stderr, one line each, and left out
        skipped += len(problems)
        for record in found:
            if record.build_name not in seen:
                seen.add(record.build_name)
                records.append(record)
    write_html(records, path, title=f"tk report: {len(records)} build(s)")
    print(f"wrote {len(records)} build(s) from {len(cache_dirs)} cache(s) to {path}")
    return skipped
