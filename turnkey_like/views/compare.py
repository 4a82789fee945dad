"""Model calls side by side (``tk compare``, the HTML report): the :class:`Comparison` record built
from build records.

:func:`comparison` is the one place the comparison is computed (which figures, the ratios to the
first entry, the union of op categories); ``report.compare.comparison_table`` turns it into the
labelled text rows that the terminal (``report.compare.render_comparison``) and the HTML report
both show. :func:`build_records` gives the :class:`BuildRecord` s of a run, so a run's results and the
cache's records are compared the same way.
"""

from __future__ import annotations

from typing import Iterable

from turnkey_like.records import BuildRecord, Comparison, ComparisonEntry, ScriptResult, Status
from turnkey_like.report.compare import measured_on

#: The quantities compared as ratios to the first entry (``ComparisonEntry.relative``).
RELATIVE = ("params", "macs", "flops", "bytes", "roofline_time_s", "latency_ms", "throughput_ips")
#: Ratios that hold only on one hardware profile (a roofline time on h100 against one on this CPU
#: is no comparison of the models).
ON_PROFILE = ("roofline_time_s",)
#: Ratios that hold only on one machine and device (``BenchmarkResult.device_name`` and ``device``).
ON_MACHINE = ("latency_ms", "throughput_ips")



def build_records(results: Iterable[ScriptResult]) -> list[BuildRecord]:
    """Return one :class:`BuildRecord` per invocation of a run's results (every model and submodule,
    depth first), as the cache would store it (``model`` is the summary without invocations)."""
    out = []
    for result in results:
        for model, inv in result.invocations():
            out.append(BuildRecord(build_name=inv.build_name or "", script=result.path, labels=result.labels,
                                   model=model.summary(), invocation=inv))
    return out


def _entry(label: str, record: BuildRecord) -> ComparisonEntry:
    inv, model = record.invocation, record.model
    entry = ComparisonEntry(
        label=label, model=model.name, class_name=model.class_name, invocation_hash=inv.hash,
        build_name=record.build_name or None, script=record.script, signature=inv.signature,
        params=model.params, param_bytes=model.param_bytes,
        statuses={name: stage.status.value for name, stage in inv.stages().items()},
    )
    char = inv.characterization.result
    if inv.characterization.status == Status.SUCCESSFUL and char is not None:
        t = char.totals
        entry.hardware = char.hardware.name
        entry.macs, entry.flops, entry.bytes = t.macs, t.flops, t.bytes
        entry.arithmetic_intensity, entry.bound, entry.roofline_time_s = t.arithmetic_intensity, t.bound, t.roofline_time_s
        entry.by_category = dict(char.breakdown.by_category)
        if not entry.params:
            entry.params = t.params
            entry.param_bytes = t.param_bytes
    bench = inv.benchmark.result
    if inv.benchmark.status == Status.SUCCESSFUL and bench is not None:
        entry.runtime, entry.device = bench.runtime, bench.device
        entry.latency_ms, entry.throughput_ips = bench.latency_ms.mean, bench.throughput_ips
    return entry


def comparison(records: list[BuildRecord], labels: list[str] | None = None) -> Comparison:
    """Return the :class:`Comparison` of ``records`` (full records: the breakdown is left out of cache
    summaries), in order; ``labels`` name them as the user did (default: build name, else model name).

    Ratios in ``relative`` are each entry's value ÷ the first's, never across hardware: none for a
    roofline time on another profile than the first's (:data:`ON_PROFILE`), none for a latency or
    throughput measured on another machine or device (:data:`ON_MACHINE`, ``report.compare.measured_on``).
    Notes say so, and when some were not characterized or benchmarked.
    """
    labels = labels or [r.build_name or r.model.name for r in records]
    entries = [_entry(label, record) for label, record in zip(labels, records)]
    machines = [measured_on(r) for r in records]
    if entries:
        base = entries[0]
        for e, machine in zip(entries, machines):
            for key in RELATIVE:
                a, b = getattr(e, key), getattr(base, key)
                apart = (key in ON_PROFILE and e.hardware != base.hardware) or (key in ON_MACHINE and machine != machines[0])
                e.relative[key] = a / b if a is not None and b and not apart else None
    totals: dict[str, float] = {}
    for e in entries:
        for cat, part in e.by_category.items():
            totals[cat] = totals.get(cat, 0.0) + part.time_s
    notes = []
    hardware = sorted({e.hardware for e in entries if e.hardware})
    if len(hardware) > 1:
        notes.append(f"roofline figures are on different hardware profiles ({', '.join(hardware)}): bound and "
                     "roofline time compare only on one profile, so no ratio is given across them")
    places = sorted({m for m in machines if m})
    if len(places) > 1:
        notes.append(f"latencies were measured on different machines or devices ({'; '.join(places)}): no ratio "
                     "is given across them")
    missing = [e.label for e in entries if e.hardware is None]
    if missing:
        notes.append(f"not characterized: {', '.join(missing)}")
    unmeasured = [e.label for e in entries if e.latency_ms is None]
    if unmeasured and len(unmeasured) < len(entries):
        notes.append(f"not benchmarked: {', '.join(unmeasured)}")
    runtimes = sorted({f"{e.runtime} on {e.device}" for e in entries if e.runtime})
    if len(runtimes) > 1:
        notes.append(f"latencies come from different runtimes/devices ({', '.join(runtimes)})")
    return Comparison(entries=entries, categories=sorted(totals, key=lambda c: -totals[c]), notes=notes)
