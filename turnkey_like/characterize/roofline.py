"""Roofline model: arithmetic intensity, compute- vs memory-bound, and time estimates.

Source: S. Williams, A. Waterman, D. Patterson, "Roofline: An Insightful Visual Performance Model for
Multicore Architectures", Communications of the ACM 52(4), 2009.

- arithmetic intensity (AI) = FLOPs / (bytes read + bytes written), in FLOPs/byte;
- ridge point = peak FLOP/s ÷ memory bandwidth (of the op's dtype, see ``HardwareProfile``);
- an op is ``compute-bound`` when AI >= ridge point, else ``memory-bound``; an op with no FLOPs is
  ``no compute`` (it only moves memory); there is no "balanced" class;
- roofline time = max(FLOPs / peak FLOP/s, bytes / bandwidth), seconds; a sum of ops' times assumes
  they run one after another with no overlap (what eager execution does).
"""

from __future__ import annotations

from typing import NamedTuple

from turnkey_like.records import HardwareProfile

COMPUTE_BOUND = "compute-bound"
MEMORY_BOUND = "memory-bound"
NO_COMPUTE = "no compute"
BOUNDS = (COMPUTE_BOUND, MEMORY_BOUND, NO_COMPUTE)


def arithmetic_intensity(flops: int | float, nbytes: int | float) -> float | None:
    """Return FLOPs per byte of memory traffic, or ``None`` when there is no traffic (undefined)."""
    if nbytes <= 0:
        return None
    return float(flops) / float(nbytes)


def classify(flops: int | float, nbytes: int | float, profile: HardwareProfile, dtype: str | None) -> str:
    """Return ``compute-bound``, ``memory-bound`` or ``no compute`` for one op or group on ``profile``.

    ``flops == 0`` gives ``no compute``; traffic-free compute (``nbytes == 0``) is compute-bound.
    The threshold is the profile's ridge point for ``dtype`` (peak ÷ bandwidth, FLOPs/byte).
    """
    if flops <= 0:
        return NO_COMPUTE
    ai = arithmetic_intensity(flops, nbytes)
    if ai is None or ai >= profile.ridge_point(dtype):
        return COMPUTE_BOUND
    return MEMORY_BOUND


def roofline_time_s(flops: int | float, nbytes: int | float, profile: HardwareProfile, dtype: str | None) -> float:
    """Return the roofline lower bound on execution time in seconds.

    ``max(flops / peak(dtype), nbytes / memory_bandwidth)`` (Williams et al., 2009).
    """
    return max(float(flops) / profile.peak(dtype), float(nbytes) / profile.memory_bandwidth)


class Roofline(NamedTuple):
    """The roofline annotation of one op, module or group.

    Attributes:
        arithmetic_intensity: FLOPs/byte, ``None`` without traffic.
        bound: ``compute-bound``, ``memory-bound`` or ``no compute``.
        time_s: roofline time, seconds.
    """

    arithmetic_intensity: float | None
    bound: str
    time_s: float


def annotate(flops: int | float, nbytes: int | float, profile: HardwareProfile, dtype: str | None) -> Roofline:
    """Return the :class:`Roofline` (intensity, bound, time) of ``flops`` over ``nbytes`` on ``profile``."""
    return Roofline(
        arithmetic_intensity(flops, nbytes),
        classify(flops, nbytes, profile, dtype),
        roofline_time_s(flops, nbytes, profile, dtype),
    )


def annotate_rows(rows, profile: HardwareProfile) -> None:
    """Set ``arithmetic_intensity``, ``bound`` and ``roofline_time_s`` of every op row in place, each
    equal to :func:`annotate` of the row's FLOPs, bytes read + written and dtype.

    The same arithmetic as :func:`annotate` with the profile's peak and ridge point looked up once
    per dtype instead of once per row (a row's annotation is then a few float operations).
    """
    bandwidth = profile.memory_bandwidth
    per_dtype: dict[str | None, tuple[float, float]] = {}
    for r in rows:
        dtype = r.dtype
        known = per_dtype.get(dtype)
        if known is None:
            known = per_dtype[dtype] = (profile.peak(dtype), profile.ridge_point(dtype))
        peak, ridge = known
        flops = r.flops
        nbytes = r.bytes_read + r.bytes_written
        ai = float(flops) / float(nbytes) if nbytes > 0 else None
        if flops <= 0:
            bound = NO_COMPUTE
        elif ai is None or ai >= ridge:
            bound = COMPUTE_BOUND
        else:
            bound = MEMORY_BOUND
        r.arithmetic_intensity = ai
        r.bound = bound
        r.roofline_time_s = max(float(flops) / peak, float(nbytes) / bandwidth)
