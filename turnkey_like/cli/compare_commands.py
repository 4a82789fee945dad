"""``tk compare``: builds from the cache and ``--model`` entries characterized on the spot, side by side.

Everything here reads records (from the cache through :class:`turnkey_like.cache.Cache`, or from the
run that just ended) and hands them to the views (``turnkey_like.views``); nothing is computed here.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

from turnkey_like.cli import options, outputs
from turnkey_like.cli.arguments import CACHE_DIR_HELP, add_named_model_arguments
from turnkey_like.cli.run import EXIT_FAILED, EXIT_OK, STOPPED_CODES, run_pipeline
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


def _characterize_named(run: options.PipelineRun):
    """Characterize the ``--model`` entries through the one pipeline (a cached characterization is
    reused; their reports on stderr, no progress); return their build records, labels (``NAME``,
    or ``NAME::HASH`` for sweep points) and the run's exit code."""
    from turnkey_like.views.compare import build_records

    outcome = run_pipeline(run, outputs.stderr_console(), quiet=True)
    records = build_records(outcome.summary.results)
    points = Counter(r.script for r in records)  # a name with several sweep points labels each by its hash
    labels = [f"{r.script}::{r.invocation.hash}" if points[r.script] > 1 else r.script for r in records]
    return records, labels, outcome.exit_code


def run_compare(args: argparse.Namespace) -> int:
    """``tk compare A B [C ...]``: the builds side by side (terminal table, ``--json``, ``--html``).

    The exit code follows docs/exit_codes.md: 1 when a ``--model`` entry failed (the others are
    still compared, when two or more remain), 130 after Ctrl-C while characterizing them.
    """
    from turnkey_like.cache import Cache
    from turnkey_like.views.compare import comparison

    command = options.parse_compare(args)
    cache = Cache(command.cache_dir, create=not command.builds)
    records = resolve_builds(cache, list(command.builds))
    labels = list(command.builds)
    code = EXIT_OK
    if command.run is not None:
        named, named_labels, code = _characterize_named(command.run)
        if code in STOPPED_CODES:
            return code
        records += named
        labels += named_labels
    if len(records) < 2:
        outputs.print_error(InputError(f"only {len(records)} build(s) to compare: the other --model entries failed",
                                       hint="their errors are above; fix them or name other builds"))
        return EXIT_FAILED
    comp = comparison(records, labels=labels)
    outputs.write_comparison(comp, records, json=command.json, html=command.html,
                             title=f"tk compare {' '.join(command.builds)}",
                             console=outputs.table_console(columns=200))
    return code


def register(subparsers, parent: argparse.ArgumentParser) -> None:
    """Add the ``compare`` command (``parent``: the options every command takes)."""
    p = subparsers.add_parser(
        "compare", parents=[parent], help="compare cached builds side by side (MACs, bytes, roofline, latency)",
        description="Compare builds from the cache side by side: parameters, MACs, FLOPs, bytes, arithmetic "
                    "intensity, bound, roofline time, measured latency and throughput, and the share of "
                    "roofline time per op category. Ratios are to the first. 1 MAC = 2 FLOPs.")
    p.add_argument("builds", nargs="*", metavar="BUILD",
                   help="build names or invocation hashes (8 hex digits); `tk cache list` shows them")
    p.add_argument("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)
    add_named_model_arguments(p)  # --model NAME (characterized on the spot when not cached)
    p.add_argument("--hardware", metavar="NAME",
                   help="hardware profile for characterizing --model entries (default: local)")
    p.add_argument("--no-weights", action="store_true", help="characterize --model entries on meta tensors")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="the comparison as JSON: printed instead of the table, or written to FILE")
    p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report of these builds")
    p.set_defaults(func=run_compare, parser=p)
