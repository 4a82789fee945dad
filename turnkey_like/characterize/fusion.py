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

The group's MACs and FLOPs are its ops' sums; with a hardware profile, its bound and roofline time
are those of one fused op (FLOPs over external bytes) at its anchor's dtype
(``characterize.roofline.annotate``).

Why a group ends is recorded when it is formed: ``FusionGroup.end`` (one of :data:`ENDS`, each
explained in :data:`turnkey_like.records.FUSION_ENDS`) and ``FusionGroup.end_readers`` (the ops that
read its last op's result). Nothing reads it (the model's output); more than one op reads it (a
second consumer: it must reach memory anyway); or its one reader is not an epilogue op: a reduction
(categories ``reduction``, ``softmax``, ``pooling``: a kernel that reduces over an axis or a window),
a layout change (``data_movement``: view, permute, cat, copy), another anchor, another kind of op,
or an op already in a group (a residual add an earlier chain took: it joins two chains).

Every op belongs to exactly one group: an op outside the multi-op groups is a group of its own (it
runs as its own kernel). ``FusionResult.row_groups`` numbers the groups 0, 1, ... in execution order
of their first op, so the explorer and the pictures show a group for every node, nothing "not
partitioned".
"""

from __future__ import annotations

from typing import Iterable

from turnkey_like.characterize.roofline import annotate
from turnkey_like.records import FUSION_ENDS, FusionGroup, FusionResult, FusionSummary, HardwareProfile, OpRow

ANCHORS = frozenset({"conv", "matmul", "attention"})
FUSIBLE = frozenset({"norm", "activation", "elementwise"})
#: Why a group ends (``FusionGroup.end``): the keys of :data:`turnkey_like.records.FUSION_ENDS`.
ENDS = tuple(FUSION_ENDS)

#: The end of a group whose one reader is not fusible, by the reader's category (else ``not fusible``).
_END_BY_CATEGORY = {"reduction": "reduction", "softmax": "reduction", "pooling": "reduction",
                    "data_movement": "layout change", **{c: "anchor" for c in ANCHORS}}


def _chain(idx: int, consumers: dict[int, list[int]], by_index: dict[int, OpRow],
           grouped: set[int]) -> tuple[list[int], str, list[int]]:
    """The chain from anchor ``idx``, why it stops (one of :data:`ENDS`) and the ops reading its
    last op's result."""
    chain = [idx]
    while True:
        readers = consumers.get(chain[-1], [])
        if not readers:
            return chain, "output", []
        if len(readers) > 1:
            return chain, "second consumer", list(readers)
        nxt = readers[0]
        if nxt in grouped:
            return chain, "grouped", [nxt]
        category = by_index[nxt].category
        if category not in FUSIBLE:
            return chain, _END_BY_CATEGORY.get(category, "not fusible"), [nxt]
        chain.append(nxt)


def find_fusion_groups(rows: Iterable[OpRow], profile: HardwareProfile | None = None) -> FusionResult:
    """Return the fusion groups of ``rows`` (op rows in execution order) and the traffic removed.

    Uses each row's ``producers`` (indices of earlier rows whose outputs it reads) to find consumers;
    a chain continues from op A to op B only when B is A's only consumer, B's category is in
    :data:`FUSIBLE` and B is not already in a group; why it stopped is recorded in the group
    (:data:`ENDS`). Bytes as described in the module docstring. With ``profile``, each group's bound
    and roofline time as one fused op (FLOPs over external bytes, at the anchor's dtype); without,
    its bound is ``""``. ``row_groups`` gives every row its group's number (position ``i`` for the
    ``i``-th row given).
    """

    rows = list(rows)
    by_index = {r.index: r for r in rows}
    consumers: dict[int, list[int]] = {i: [] for i in by_index}
    for r in rows:
        seen = set()
        for p in r.producers or []:
            if p in consumers and p not in seen:
                consumers[p].append(r.index)
                seen.add(p)

    grouped: set[int] = set()
    groups: list[FusionGroup] = []
    for r in rows:
        idx = r.index
        if r.category not in ANCHORS or idx in grouped:
            continue
        chain, end, readers = _chain(idx, consumers, by_index, grouped)
        if len(chain) < 2:
            continue
        grouped.update(chain)
        members = [by_index[i] for i in chain]
        unfused = sum(m.bytes_read + m.bytes_written for m in members)
        internal = 0
        for prod, cons in zip(members[:-1], members[1:]):
            written = prod.bytes_written
            internal += written + min(written, cons.bytes_read)
        flops = sum(m.flops for m in members)
        external = unfused - internal
        fused = annotate(flops, external, profile, members[0].dtype) if profile is not None else None
        groups.append(
            FusionGroup(
                ops=chain,
                op_names=[m.op for m in members],
                module_path=members[0].module_path,
                flops=flops,
                unfused_bytes=unfused,
                internal_bytes=internal,
                external_bytes=external,
                arithmetic_intensity=flops / external if external > 0 else None,
                macs=sum(m.macs or 0 for m in members),
                bound=fused.bound if fused is not None else "",
                roofline_time_s=fused.time_s if fused is not None else 0.0,
                end=end,
                end_readers=readers,
            )
        )

    # Number every group, singletons included, in execution order of its first op.
    first_of = {g.ops[0]: g for g in groups}
    member_of = {i: g for g in groups for i in g.ops}
    row_groups: list[int] = []
    number = 0
    for r in rows:
        g = member_of.get(r.index)
        if g is None:
            row_groups.append(number)
            number += 1
        elif r.index in first_of:
            g.id = number
            row_groups.append(number)
            number += 1
        else:
            row_groups.append(g.id)

    total = sum(r.bytes_read + r.bytes_written for r in rows)
    flops = sum(r.flops for r in rows)
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
        all_groups=number,
    )
    return FusionResult(groups=groups, summary=summary, row_groups=row_groups)
