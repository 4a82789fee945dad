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


def roofline_chart(char, profiles=(), *, title: str = ""):
    """Return the :class:`~turnkey_like.records.RooflineChart` of one characterization on its own
    hardware profile and on ``profiles`` (extra :class:`HardwareProfile` s, for ``--hardware a,b,c``).

    The first roof is ``char.hardware`` (the profile of the record's Bound column); a profile of the
    same name in ``profiles`` is not repeated. Points, each placed on every profile with
    :func:`roofline_time_s` and :func:`classify`:

    - one per module whose own ops (``OpRow.module_path``, children excluded) do FLOPs: their FLOPs,
      unfused bytes and the sum of their roofline times; attainable FLOP/s = FLOPs ÷ that time;
    - one per fusion group (``char.fusion.groups``): FLOPs over ``external_bytes``, timed as one
      fused op at the group's anchor dtype.

    Points are sorted by roofline time on the first profile, heaviest first. Modules whose own ops
    do no FLOPs cannot sit on a log-scale plot and are counted in ``no_compute_modules``.
    """
    from turnkey_like.records import RooflineChart, RooflinePoint, RooflineRoof

    chosen = [char.hardware, *(p for p in profiles if p.name != char.hardware.name)]
    chosen = list({p.name: p for p in chosen}.values())
    dtype = char.dtype
    roofs = [RooflineRoof(name=p.name, description=p.description, dtype=dtype, peak_flops=p.peak(dtype),
                          memory_bandwidth=p.memory_bandwidth, ridge_point=p.ridge_point(dtype)) for p in chosen]
    classes = {m.path: m.class_name for m in char.modules}
    by_index = {r.index: r for r in char.rows}

    per_module: dict[str, list] = {}  # path -> [flops, bytes, ops, {profile: time}]
    for r in char.rows:
        acc = per_module.get(r.module_path)
        if acc is None:
            acc = per_module[r.module_path] = [0, 0, 0, dict.fromkeys((p.name for p in chosen), 0.0)]
        acc[0] += r.flops
        acc[1] += r.bytes_read + r.bytes_written
        acc[2] += 1
        for p in chosen:
            acc[3][p.name] += roofline_time_s(r.flops, r.bytes_read + r.bytes_written, p, r.dtype)

    def point(kind, path, flops, nbytes, ops, times, op_names=(), point_dtype=dtype):
        return RooflinePoint(
            kind=kind, module_path=path, module_class=classes.get(path, ""), op_names=list(op_names), ops=ops,
            flops=flops, bytes=nbytes, arithmetic_intensity=arithmetic_intensity(flops, nbytes),
            time_s=times, attainable_flops={k: (flops / t if t > 0 else 0.0) for k, t in times.items()},
            bound={p.name: classify(flops, nbytes, p, point_dtype) for p in chosen},
        )

    points = []
    no_compute = 0
    for path, (flops, nbytes, ops, times) in per_module.items():
        if flops <= 0:
            no_compute += 1
            continue
        points.append(point("module", path, flops, nbytes, ops, times))
    for g in char.fusion.groups:
        if g.flops <= 0:
            continue
        anchor = by_index.get(g.ops[0]) if g.ops else None
        group_dtype = anchor.dtype if anchor is not None else dtype
        times = {p.name: roofline_time_s(g.flops, g.external_bytes, p, group_dtype) for p in chosen}
        points.append(point("fusion group", g.module_path, g.flops, g.external_bytes, len(g.ops), times,
                            g.op_names, group_dtype))
    first = chosen[0].name
    points.sort(key=lambda pt: -pt.time_s[first])
    return RooflineChart(title=title or char.model_class, dtype=dtype, roofs=roofs, points=points,
                         no_compute_modules=no_compute)
