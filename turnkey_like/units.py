"""Formatting numbers with units for people: one convention, used by every renderer.

Convention: decimal SI prefixes everywhere (k = 10^3, M = 10^6, G = 10^9, T = 10^12), for counts
(MACs, FLOPs, parameters) and for bytes alike (``1 MB = 10^6 bytes``), as model cards, datasheets
(bandwidth in GB/s) and TurnkeyML's reports use them. Binary prefixes (MiB) are never printed.
Machine-readable outputs (``--json``, CSV) always hold plain numbers in base units.
"""

from __future__ import annotations

_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float | int | None, unit: str = "", digits: int = 3) -> str:
    """``value`` with an SI prefix and ``digits`` significant digits: ``si(4.1e9, "FLOPs")`` is
    ``'4.1 GFLOPs'``; ``None`` gives ``'-'``."""
    if value is None:
        return "-"
    v = float(value)
    for factor, prefix in _PREFIXES:
        if abs(v) >= factor:
            return f"{v / factor:.{digits}g} {prefix}{unit}".rstrip()
    if v == int(v):
        return f"{int(v)} {unit}".rstrip()
    return f"{v:.{digits}g} {unit}".rstrip()


def format_bytes(n: int | float | None, digits: int = 3) -> str:
    """A byte count with a decimal prefix: ``format_bytes(97_500_000) == '97.5 MB'``; ``None`` → ``'-'``."""
    return si(n, "B", digits)


def format_count(n: int | None) -> str:
    """An exact count with thousands separators: ``25,557,032``; ``None`` → ``'-'``."""
    return "-" if n is None else f"{n:,}"


def format_seconds(seconds: float | None) -> str:
    """A duration as ``ns``/``µs``/``ms``/``s`` with 3 significant digits; ``None`` → ``'-'``."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s == 0:
        return "0 s"
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if s >= factor:
            return f"{s / factor:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def format_ms(ms: float | None) -> str:
    """A latency in milliseconds, 3 significant digits (``'12.3 ms'``); ``None`` → ``'-'``."""
    return "-" if ms is None else f"{ms:.3g} ms"


def format_intensity(ai: float | None) -> str:
    """An arithmetic intensity in FLOPs/byte, 3 significant digits; ``None`` → ``'-'``."""
    return "-" if ai is None else f"{ai:.3g}"


def format_shapes(shapes: list) -> str:
    """A list of shapes as ``[1,3,224,224] [64]``."""
    return " ".join("[" + ",".join(str(d) for d in s) + "]" for s in shapes)


#: the multiples :func:`parse_size` reads: decimal SI as printed here, binary only when written so
_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str) -> int:
    """Bytes from a size as people write it: ``500MB``, ``2GB``, ``1.5 G``, ``750k``, ``123456``.

    Decimal SI prefixes, as this module prints them (``1 MB`` = 10^6 bytes; ``k``/``K`` alike); the
    binary ``KiB MiB GiB TiB`` are accepted as 2^10... A trailing ``B`` is optional.

    Raises:
        ValueError: not a size (``not a size: 'x'``).
    """
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kKmMgGtT]i?)?[bB]?\s*", text or "")
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])
