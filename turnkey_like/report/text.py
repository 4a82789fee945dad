"""Text that every renderer shares, terminal and pictures alike: how an op is named for people, the
MAC note, and the titled plain-text table of ``tk profile``'s sections (:class:`Section`).

``views/`` (the DOT graph, Model Explorer, the HTML page) import from ``report/``; ``report/`` never
imports ``views/``.
"""

from __future__ import annotations


def short_op(op: str) -> str:
    """The op's name for people: ``aten.convolution.default`` → ``convolution``; other namespaces
    (``higher_order.cond``, ``torchvision.roi_align.default``) are kept whole."""
    parts = op.split(".")
    return parts[1] if parts[0] == "aten" and len(parts) > 1 else op


MAC_NOTE = "1 MAC = 2 FLOPs"

# Only text columns give up width on narrow terminals (folded or shortened); numbers never do.
_WRAPPABLE = {"Module", "Input shapes", "Output shapes"}
_SHORTENED = {"Class": 24, "Op": 24}


class Section:
    """A titled rich table whose cells are plain text (no markup interpretation)."""

    def __init__(self, title: str, columns: list[tuple[str, str]]):
        from rich import box
        from rich.table import Table

        self.title = title
        self.table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for name, justify in columns:
            if name in _WRAPPABLE:
                self.table.add_column(name, justify=justify, overflow="fold")
            elif name in _SHORTENED:
                self.table.add_column(name, justify=justify, overflow="ellipsis", max_width=_SHORTENED[name])
            else:
                self.table.add_column(name, justify=justify, no_wrap=True, min_width=len(name))

    def add_row(self, *cells: str) -> None:
        from rich.text import Text

        self.table.add_row(*(Text(c) for c in cells))

    def print(self, console) -> None:
        from rich.text import Text

        console.print(Text(self.title, style="bold"))
        console.print(self.table)
