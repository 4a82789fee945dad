"""Fusion groups: which ops a compiler would fuse, and the memory traffic fusing them removes.

A group is an *anchor* op (category ``conv``, ``matmul`` or ``attention``) followed by the chain of
``norm`` / ``activation`` / ``elementwise`` ops that consume its result, as long as each link's output
has exactly one consumer (so the intermediate never needs to reach memory). This is the epilogue
fusion that cuDNN/cuBLASLt epilogues, oneDNN post-ops, ONNX Runtime's Conv+BN+Activation fusions and
TorchInductor perform (conv -> batch norm -> ReLU, matmul -> bias add -> GELU, ...).

Traffic accounting per group (bytes at the real dtype):
- ``unfused_bytes``: the sum of the ops' own bytes read + written (each op alone);
- ``internal_bytes``: for each intermediate (output of a non-final op), the write of it plus its read
  by the next op in the chain; fusion keeps these on chip, so they are removed;
- ``external_bytes`` = unfused - internal: inputs read from outside the group + the final output;
- the group's arithmetic intensity is FLOPs / external bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from turnkey_like.records import Record, to_dict

ANCHORS = frozenset({"conv", "matmul", "attention"})
FUSIBLE = frozenset({"norm", "activation", "elementwise"})


def _get(row: Any, key: str):
    return row[key] if isinstance(row, dict) else getattr(row, key)


@dataclass
class FusionGroup(Record):
    """One fusible chain of ops.

    Attributes:
        ops: row indices (``OpRow.index``) in execution order, the anchor first.
        op_names: the ATen op of each member.
        module_path: module of the anchor op.
        flops: FLOPs of the group (1 MAC = 2 FLOPs).
        unfused_bytes: bytes read + written by the ops run one by one.
        internal_bytes: intermediate traffic fusion removes (writes + reads of intermediates).
        external_bytes: traffic left after fusion (inputs from outside + the final output).
        arithmetic_intensity: FLOPs / external bytes (``None`` when there is no traffic).
    """

    ops: list[int]
    op_names: list[str]
    module_path: str
    flops: int
    unfused_bytes: int
    internal_bytes: int
    external_bytes: int
    arithmetic_intensity: float | None



@dataclass
class FusionSummary(Record):
    """Fusion over a whole model.

    Attributes:
        groups: number of groups with at least two ops.
        fused_ops: ops inside those groups.
        total_bytes: traffic of all ops run one by one (the model's unfused bytes read + written).
        removed_bytes: traffic the groups remove (sum of their ``internal_bytes``).
        fused_total_bytes: ``total_bytes - removed_bytes``.
        removed_fraction: ``removed_bytes / total_bytes`` (0 when there is no traffic).
        flops: the model's FLOPs.
        arithmetic_intensity_unfused: flops / total_bytes.
        arithmetic_intensity_fused: flops / fused_total_bytes.
    """

    groups: int = 0
    fused_ops: int = 0
    total_bytes: int = 0
    removed_bytes: int = 0
    fused_total_bytes: int = 0
    removed_fraction: float = 0.0
    flops: int = 0
    arithmetic_intensity_unfused: float | None = None
    arithmetic_intensity_fused: float | None = None



@dataclass
class FusionResult:
    """Fusion groups (two ops or more) and their summary."""

    groups: list[FusionGroup] = field(default_factory=list)
    summary: FusionSummary = field(default_factory=FusionSummary)

    def to_dict(self) -> dict:
        """Return plain JSON-able data."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FusionResult":
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            groups=[FusionGroup.from_dict(g) for g in d.get("groups", [])],
            summary=FusionSummary.from_dict(d.get("summary", {})),
        )


def find_fusion_groups(rows: Iterable[Any]) -> FusionResult:
    """Return the fusion groups of ``rows`` (``OpRow`` objects or their dicts) and the traffic removed.

    Uses each row's ``producers`` (indices of earlier rows whose outputs it reads) to find consumers;
    a chain continues from op A to op B only when B is A's only consumer, B's category is in
    :data:`FUSIBLE` and B is not already in a group. Bytes as described in the module docstring.
    """
    rows = list(rows)
    by_index = {_get(r, "index"): r for r in rows}
    consumers: dict[int, list[int]] = {i: [] for i in by_index}
    for r in rows:
        seen = set()
        for p in _get(r, "producers") or []:
            if p in consumers and p not in seen:
                consumers[p].append(_get(r, "index"))
                seen.add(p)

    grouped: set[int] = set()
    groups: list[FusionGroup] = []
    for r in rows:
        idx = _get(r, "index")
        if _get(r, "category") not in ANCHORS or idx in grouped:
            continue
        chain = [idx]
        cur = idx
        while len(consumers.get(cur, ())) == 1:
            nxt = consumers[cur][0]
            if nxt in grouped or _get(by_index[nxt], "category") not in FUSIBLE:
                break
            chain.append(nxt)
            cur = nxt
        if len(chain) < 2:
            continue
        grouped.update(chain)
        members = [by_index[i] for i in chain]
        unfused = sum(_get(m, "bytes_read") + _get(m, "bytes_written") for m in members)
        internal = 0
        for prod, cons in zip(members[:-1], members[1:]):
            written = _get(prod, "bytes_written")
            internal += written + min(written, _get(cons, "bytes_read"))
        flops = sum(_get(m, "flops") for m in members)
        external = unfused - internal
        groups.append(
            FusionGroup(
                ops=chain,
                op_names=[_get(m, "op") for m in members],
                module_path=_get(members[0], "module_path"),
                flops=flops,
                unfused_bytes=unfused,
                internal_bytes=internal,
                external_bytes=external,
                arithmetic_intensity=flops / external if external > 0 else None,
            )
        )

    total = sum(_get(r, "bytes_read") + _get(r, "bytes_written") for r in rows)
    flops = sum(_get(r, "flops") for r in rows)
    removed = sum(g.internal_bytes for g in groups)
    fused_total = total - removed
    summary = FusionSummary(
        groups=len(groups),
        fused_ops=sum(len(g.ops) for g in groups),
        total_bytes=total,
        removed_bytes=removed,
        fused_total_bytes=fused_total,
        removed_fraction=removed / total if total else 0.0,
        flops=flops,
        arithmetic_intensity_unfused=flops / total if total else None,
        arithmetic_intensity_fused=flops / fused_total if fused_total else None,
    )
    return FusionResult(groups=groups, summary=summary)
