"""The spread of repeated measurements: one rule, used by the hardware profile, the benchmark harness
and per-layer profiling.

Quartiles are linear interpolations between the sorted values: ``statistics.quantiles(...,
method="inclusive")``, which gives the same numbers as numpy's default ``percentile`` (so a
benchmark's IQR and its p90/p99 follow one convention).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from turnkey_like.records import Spread

#: fewest values whose quartiles say anything (with 2 the "quartiles" only restate min and max)
MIN_SPREAD_RUNS = 3
#: a spread (interquartile range ÷ median) above this is too wide for a figure printed to two
#: significant digits (the second digit is not reproducible). pyperf draws its "the benchmark result
#: may be unstable" line at 10% too (std dev ≥ 10% of the mean, ``pyperf check``); tk uses the IQR,
#: which single iterations' outliers (already shown as p99/max) do not inflate.
WIDE_SPREAD = 0.10


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)`` of at least 2 values (linear interpolation, see the module doc), as Python
    floats whatever the values' type (numpy scalars would not encode into a record)."""
    q1, median, q3 = statistics.quantiles([float(v) for v in values], n=4, method="inclusive")
    return float(q1), float(median), float(q3)


def relative_iqr(values: Sequence[float]) -> float | None:
    """Interquartile range ÷ median of ``values``; ``None`` with fewer than :data:`MIN_SPREAD_RUNS`
    values or a median of 0 (nothing to compare the spread with)."""
    if len(values) < MIN_SPREAD_RUNS:
        return None
    q1, median, q3 = quartiles(values)
    return (q3 - q1) / median if median > 0 else None


def spread(values: Sequence[float]) -> Spread | None:
    """The :class:`~turnkey_like.records.Spread` of ``values`` (any unit, kept), or ``None`` when there
    are fewer than :data:`MIN_SPREAD_RUNS`."""
    if len(values) < MIN_SPREAD_RUNS:
        return None
    q1, median, q3 = quartiles(values)
    return Spread(runs=len(values), min=float(min(values)), q1=q1, median=median, q3=q3,
                  max=float(max(values)), iqr=q3 - q1, rel_iqr=(q3 - q1) / median if median > 0 else None)


__all__ = ["MIN_SPREAD_RUNS", "WIDE_SPREAD", "quartiles", "relative_iqr", "spread"]
