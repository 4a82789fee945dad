"""Text that every renderer shares, terminal and pictures alike: how an op is named for people.

``views/`` (the DOT graph, Model Explorer, the HTML page) import from ``report/``; ``report/`` never
imports ``views/``.
"""

from __future__ import annotations


def short_op(op: str) -> str:
    """The op's name for people: ``aten.convolution.default`` → ``convolution``; other namespaces
    (``higher_order.cond``, ``torchvision.roi_align.default``) are kept whole."""
    parts = op.split(".")
    return parts[1] if parts[0] == "aten" and len(parts) > 1 else op
