"""``tk compare``, and the roofline plot and HTML report that ``tk profile`` / ``tk benchmark``
(``--roofline PATH``, ``--html PATH``) and ``tk report --format html`` write.

Everything here reads records (from the cache through :class:`turnkey_like.cache.Cache`, or from the
run that just ended) and hands them to the views (``turnkey_like.views``); nothing is computed here.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from turnkey_like.errors import InputError

_HASH = re.compile(r"^[0-9a-f]{8}$")


def resolve_builds(cache, names: list[str]):
    """Return the full :class:`~turnkey_like.records.BuildRecord` of each name, in order.

    A name is a build name (``tk cache list`` shows them) or an invocation hash (8 hex digits: the
    build whose name ends in ``_<hash>``).

    Raises:
        CacheError: no such build (with the closest names), or an unreadable record.
        InputError: a hash that several builds share (they are listed: name one of them).
    """
    builds = None
    out = []
    for name in names:
        if _HASH.match(name):
            builds = cache.builds() if builds is None else builds
            matches = [b for b in builds if b.endswith("_" + name)]
            if len(matches) > 1:
                raise InputError(f"invocation hash {name} names {len(matches)} builds: {', '.join(matches)}",
                                 hint="name the build instead")
            if matches:
                name = matches[0]
        out.append(cache.load(name))
    return out


def _named_points(args) -> list:
    from turnkey_like.cli.benchmark_commands import _named_specs

    return _named_specs(args) if getattr(args, "model", None) else []


def _characterize_named(args):
    """Characterize the ``--model`` entries through the one pipeline (a cached characterization is
    reused); return their build records and labels (``NAME`` or ``NAME::HASH`` for sweep points)."""
    from rich.console import Console

    from turnkey_like.cli.benchmark_commands import _options
    from turnkey_like.pipeline import Pipeline, RunOptions
    from turnkey_like.report.listener import ConsoleListener
    from turnkey_like.views.compare import build_records

    specs = _named_points(args)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    options = RunOptions(analyze_only=True, cache_dir=args.cache_dir, hardware=args.hardware, no_weights=args.no_weights)
    pipeline = Pipeline(options)
    with ConsoleListener(err, cache_root=str(pipeline.cache.root), quiet=True) as listener:
        pipeline.listener = listener
        summary = pipeline.run(specs)
    if summary.errors:
        raise InputError(f"--model: {summary.errors[0].message}", hint=summary.errors[0].hint)
    records = build_records(summary.results)
    several = len(records) != len(args.model)
    labels = [f"{r.script}::{r.invocation.hash}" if several else r.script for r in records]
    return records, labels


def run_compare(args) -> int:
    """``tk compare A B [C ...]``: the builds side by side (terminal table, ``--json``, ``--html``)."""
    import msgspec
    from rich.console import Console

    from turnkey_like.cache import Cache
    from turnkey_like.records import encode
    from turnkey_like.views.compare import comparison, render_comparison

    if len(args.builds) + len(_named_points(args)) < 2:
        raise InputError("`tk compare` needs at least two builds, invocation hashes or --model entries",
                         hint="`tk cache list` shows the builds in the cache; e.g. `tk compare --model resnet18 --model resnet50`")
    cache = Cache(args.cache_dir, create=not args.builds)
    records = resolve_builds(cache, args.builds)
    labels = list(args.builds)
    if args.model:
        named, named_labels = _characterize_named(args)
        records += named
        labels += named_labels
    comp = comparison(records, labels=labels)
    if args.json == "-":
        print(msgspec.json.format(encode(comp), indent=1).decode("utf-8"))
    else:
        render_comparison(comp, Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200))
    if args.json and args.json != "-":
        from turnkey_like.files import write_record

        target = Path(args.json)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_record(target, comp)
        except OSError as e:
            raise InputError(f"--json {args.json}: cannot write ({e.strerror or e})", hint="choose a writable path") from None
        print(f"comparison written to {args.json}", file=sys.stderr)
    if args.html:
        from turnkey_like.views.html import write_html

        write_html(records, args.html, title=f"tk compare {' '.join(args.builds)}", comparison=comp)
        print(f"HTML report written to {args.html}", file=sys.stderr)
    return 0


def add_view_arguments(group) -> None:
    """Add ``--roofline PATH`` and ``--html PATH`` to a ``tk profile`` / ``tk benchmark`` argument group."""
    group.add_argument("--roofline", metavar="PATH",
                       help="write a roofline plot (PNG or SVG, by extension) of each characterized invocation; "
                            "with several, each file gets _<invocation hash> before its extension. "
                            "--hardware a100,h100,local draws several profiles (the first decides the Bound column)")
    group.add_argument("--html", metavar="PATH",
                       help="write one self-contained HTML report of the run: models, characterization, "
                            "benchmark results, per-layer tables, graph, roofline and comparison")


def write_run_views(args, summary, console) -> None:
    """After a ``tk profile`` / ``tk benchmark`` run: write ``--roofline`` plots and the ``--html``
    report from the run's records (``args.extra_hardware``: the profiles after the first of
    ``--hardware a,b,c``, drawn on the plots too)."""
    roofline, html = getattr(args, "roofline", None), getattr(args, "html", None)
    if not roofline and not html:
        return
    from turnkey_like.characterize.hardware import get_profile
    from turnkey_like.views.compare import build_records

    records = build_records(summary.results)
    extra = [get_profile(name, cache_dir=args.cache_dir) for name in getattr(args, "extra_hardware", None) or []]
    if roofline:
        from turnkey_like.characterize.roofline import roofline_chart
        from turnkey_like.records import Status
        from turnkey_like.views import output_path_for
        from turnkey_like.views.roofline_plot import write_roofline

        done = [r for r in records if r.invocation.characterization.status == Status.SUCCESSFUL
                and r.invocation.characterization.result is not None]
        for record in done:
            inv = record.invocation
            path = output_path_for(roofline, inv.hash, len(done) > 1)
            chart = roofline_chart(inv.characterization.result, extra, title=chart_title(record))
            write_roofline(chart, path)
            console.print(f"[dim]roofline plot written to {path}[/]")
        if not done:
            console.print("[yellow]--roofline: no invocation was characterized; no plot written[/]")
    if html:
        from turnkey_like.views.html import write_html

        write_html(records, html, title=f"tk {args.command} {' '.join(getattr(args, 'inputs', []) or [])}",
                   profiles=extra)
        console.print(f"[dim]HTML report written to {html}[/]")


def chart_title(record) -> str:
    """``model (Class) ::hash`` for a record's plots and sections."""
    return f"{record.model.name} ({record.model.class_name}) ::{record.invocation.hash}"


def report_html(cache_dirs: list[str | None], path: Path) -> int:
    """``tk report --format html -o PATH``: one HTML page of every build in the caches (full records,
    merged by build name: the first cache that has a build wins); returns the exit code (1 when
    records were skipped as unreadable, as for the other formats)."""
    from turnkey_like.cache import Cache
    from turnkey_like.cli.cache_commands import _print_problems
    from turnkey_like.views.html import write_html

    records, seen, skipped = [], set(), 0
    for d in cache_dirs:
        found, problems = Cache(d, create=False).records(full=True)
        _print_problems(problems)  # named on stderr, one line each, and left out
        skipped += len(problems)
        for record in found:
            if record.build_name not in seen:
                seen.add(record.build_name)
                records.append(record)
    write_html(records, path, title=f"tk report: {len(records)} build(s)")
    print(f"wrote {len(records)} build(s) from {len(cache_dirs)} cache(s) to {path}")
    return 1 if skipped else 0


def register(subparsers, parent: argparse.ArgumentParser) -> None:
    """Add the ``compare`` command (``parent``: the options every command takes)."""
    p = subparsers.add_parser(
        "compare", parents=[parent], help="compare cached builds side by side (MACs, bytes, roofline, latency)",
        description="Compare builds from the cache side by side: parameters, MACs, FLOPs, bytes, arithmetic "
                    "intensity, bound, roofline time, measured latency and throughput, and the share of "
                    "roofline time per op category. Ratios are to the first. 1 MAC = 2 FLOPs.")
    p.add_argument("builds", nargs="*", metavar="BUILD",
                   help="build names or invocation hashes (8 hex digits); `tk cache list` shows them")
    p.add_argument("--cache-dir", metavar="DIR", help="cache root (default: $TK_CACHE_DIR or ~/.cache/turnkey_like)")
    from turnkey_like.cli.benchmark_commands import _add_named_model_arguments

    _add_named_model_arguments(p)  # --model NAME (characterized on the spot when not cached)
    p.add_argument("--hardware", metavar="NAME",
                   help="hardware profile for characterizing --model entries (default: local)")
    p.add_argument("--no-weights", action="store_true", help="characterize --model entries on meta tensors")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="the comparison as JSON: printed instead of the table, or written to FILE")
    p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report of these builds")
    p.set_defaults(func=run_compare)
