"""The "top ops" lists of ``tk profile``, ``tk explore`` and the HTML page, with identical ops grouped.

ResNet's ten identical 3×3 convolutions are one line with a count, not ten lines: rows with the
same op, input and output shapes and dtype form one :class:`OpGroup` (their FLOPs, bytes, intensity,
bound and roofline time are equal, being functions of those). Groups are ordered by their total
roofline time (count × each), slowest first, so the list says where the time goes. Rows keep their
``OpRow.index``: a group is named by its first node, the number ``tk explore --around`` takes.
"""

from __future__ import annotations

from typing import NamedTuple

from turnkey_like.records import Characterization, OpRow, PerLayerResult


class OpGroup(NamedTuple):
    """Op rows with the same op, shapes and dtype, in execution order (``rows[0]`` is the first)."""

    rows: list[OpRow]

    @property
    def first(self) -> OpRow:
        """The group's first row in execution order (its number names the group)."""
        return self.rows[0]

    @property
    def count(self) -> int:
        """How many rows."""
        return len(self.rows)

    @property
    def total_s(self) -> float:
        """Roofline time of all the rows, seconds (count × each)."""
        return sum(r.roofline_time_s for r in self.rows)

    def modules(self) -> str:
        """The first row's module (``(model)`` for the root), ``+N`` for the others: ``layer1.0.conv1 +9``."""
        where = self.first.module_path or "(model)"
        return where + (f" +{self.count - 1}" if self.count > 1 else "")

    def nodes(self, most: int = 4) -> str:
        """The rows' node numbers (``OpRow.index``), the first ``most`` then ``…``: ``4, 7, 11, 14, …``."""
        shown = ", ".join(str(r.index) for r in self.rows[:most])
        return shown + (", …" if self.count > most else "")

    def measured_ms(self, per_layer: PerLayerResult | None) -> float | None:
        """Measured ms per iteration of all the rows (``PerLayerResult.op_ms``), ``None`` without."""
        if per_layer is None or not per_layer.op_ms:
            return None
        return sum(per_layer.op_time(r.index) or 0.0 for r in self.rows)

    def noisy(self, per_layer: PerLayerResult | None) -> bool:
        """True when any row's measured time spread more than 10% across the profiled runs."""
        return per_layer is not None and any(per_layer.op_noisy(r.index) for r in self.rows)


def _key(row: OpRow) -> tuple:
    return (row.op, repr(row.input_shapes), repr(row.output_shapes), row.dtype)


def op_groups(char: Characterization, top: int | None = None) -> list[OpGroup]:
    """The rows of ``char`` grouped by op, input and output shapes and dtype, slowest total roofline
    time first (ties: the earlier first node), at most ``top`` groups."""
    groups: dict[tuple, list[OpRow]] = {}
    for r in char.rows:
        groups.setdefault(_key(r), []).append(r)
    ordered = sorted((OpGroup(rows) for rows in groups.values()), key=lambda g: (-g.total_s, g.first.index))
    return ordered[:top] if top is not None else ordered
