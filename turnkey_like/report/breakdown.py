"""The bottleneck breakdown as rows: where a call's roofline time goes, by op category and by bound.

One function builds the rows every renderer shows: ``tk profile``'s two "Bottlenecks" tables
(:mod:`turnkey_like.report.characterization`), ``tk explore``'s summary
(:mod:`turnkey_like.report.explore`), the HTML page's "Where the time goes"
(:mod:`turnkey_like.views.html`) and ``tk compare``'s category shares
(:mod:`turnkey_like.report.compare`). Each renderer picks its columns from a row; none formats a
breakdown figure itself, so the same slice reads the same everywhere.

The figures are the record's (``Characterization.breakdown``, computed once by
``characterize``): each slice's roofline time (s), its share of the call's roofline time (0-1),
FLOPs (1 MAC = 2 FLOPs), bytes read + written (unfused) and op count. Nothing is computed here.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from turnkey_like.records import BreakdownEntry, Characterization
from turnkey_like.units import format_bytes, format_seconds, si

#: The two breakdowns of a characterization: ``"category"`` (conv, matmul, ...) and ``"bound"``
#: (compute-bound, memory-bound, ...), as ``Breakdown.by_category`` and ``Breakdown.by_bound``.
Axis = Literal["category", "bound"]


class BreakdownRow(NamedTuple):
    """One slice of the breakdown: its name, the record's entry (raw values, for sorting and
    ``data-v``) and the text of each figure.

    Attributes:
        name: the op category or the bound.
        entry: the record's :class:`~turnkey_like.records.BreakdownEntry`.
        ops: op count (``"12"``); flops: FLOPs with an SI prefix (``"161 M"``); bytes: bytes read +
            written with a decimal prefix (``"3.82 MB"``); time: roofline time (``"8.25 µs"``);
            share: share of the call's roofline time (``"25.6%"``).
    """

    name: str
    entry: BreakdownEntry
    ops: str
    flops: str
    bytes: str
    time: str
    share: str


def breakdown_row(name: str, entry: BreakdownEntry) -> BreakdownRow:
    """The row of one slice ``entry`` named ``name`` (units: see :class:`BreakdownRow`)."""
    return BreakdownRow(name=name, entry=entry, ops=str(entry.ops), flops=si(entry.flops),
                        bytes=format_bytes(entry.bytes), time=format_seconds(entry.time_s),
                        share=f"{entry.share:.1%}")


def breakdown_rows(char: Characterization, axis: Axis) -> list[BreakdownRow]:
    """The rows of ``char``'s breakdown by ``axis`` (``"category"`` or ``"bound"``), slowest first
    (the record's order)."""
    parts = char.breakdown.by_category if axis == "category" else char.breakdown.by_bound
    return [breakdown_row(name, entry) for name, entry in parts.items()]
