"""``tk hardware list`` and ``tk hardware measure``: the hardware profiles the roofline is drawn against.

``list`` prints every profile (the datasheet ones and each ``local`` profile kept in the cache root)
with its peaks per dtype, bandwidth, ridge point, memory size and where each figure comes from,
without measuring anything (and without importing torch). ``measure`` measures ``local`` again into
the cache root, waiting for a quieter machine first (``--wait-quiet``, default
:data:`~turnkey_like.characterize.hardware.QUIET_WAIT_S`). A profile measured while the machine was
busy prints its warnings under the table. See docs/hardware.md.

Exit codes: 0 (a busy measurement is still a result, kept with its warning).
"""

from __future__ import annotations

import argparse

from turnkey_like.cli import options
from turnkey_like.cli.arguments import CACHE_DIR_HELP, add_wait_quiet_argument, size_list
from turnkey_like.cli.outputs import table_console
from turnkey_like.records import HardwareProfile
from turnkey_like.units import format_bytes, si

#: the dtypes the table shows, with their column titles
#: (fp8 and int4 are blank where the datasheet gives no figure: the profile has no such math units)
_DTYPE_COLUMNS = (("float32", "fp32"), ("float16", "fp16"), ("bfloat16", "bf16"), ("float8", "fp8"),
                  ("int8", "int8 (op/s)"), ("int4", "int4 (op/s)"))


def register(subparsers, parent: argparse.ArgumentParser) -> None:
    """Add the ``hardware`` command and its ``list`` and ``measure`` subcommands (``parent``: the
    options every command takes)."""
    from turnkey_like.characterize.hardware import QUIET_WAIT_S

    hardware = subparsers.add_parser("hardware", parents=[parent],
                                     help="list the hardware profiles; measure this machine's (local) again")
    sub = hardware.add_subparsers(dest="hardware_command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", parents=[parent],
                       help="every profile: peaks per dtype, bandwidth, memory, ridge point and their sources")
    p.add_argument("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP + "; where the local profiles are kept")
    p.add_argument("--json", action="store_true", help="print the profiles as JSON records")
    p.set_defaults(func=hardware_list, parser=p)

    p = sub.add_parser("measure", parents=[parent],
                       help="measure this machine (the local profile) again, into the cache root",
                       description="Measure fp32 matmul FLOP/s and copy bandwidth on this machine and keep them "
                                   "as the cache root's local profile, with when, how busy the machine was and "
                                   "the spread of the repeats. A measurement other processes disturbed is "
                                   "retried when the machine is quieter, within --wait-quiet seconds, and kept "
                                   "with a warning when it never is.")
    p.add_argument("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)
    p.add_argument("--threads", type=size_list, default=[], metavar="N[,N...]",
                   help="torch threads to measure with, one profile each (default: torch's setting, as a run uses)")
    add_wait_quiet_argument(p, QUIET_WAIT_S, "measuring", "measurement")
    p.add_argument("--json", action="store_true", help="print the measured profiles as JSON records")
    p.set_defaults(func=hardware_measure, parser=p)


def _source(profile: HardwareProfile) -> str:
    """Where a profile's figures come from: the datasheet's address, or when and how it was measured."""
    if not profile.measured:
        return profile.url or "; ".join(sorted(set(profile.sources.values())))
    when = f"measured on {profile.measured_at}" if profile.measured_at else "measured (date not recorded)"
    load = profile.load
    if load is None:
        return f"{when}, {profile.threads} thread(s); load not recorded"
    text = (f"{when}, {profile.threads} thread(s); other processes used {load.other_cores:.2f} of "
            f"{load.cores} cores")
    if load.load_avg_1min is not None:
        text += f", load {load.load_avg_1min:.1f}"
    return text


def _spread(profile: HardwareProfile) -> str:
    """``matmul 26.8 GFLOP/s median (IQR 2.6 G, 7 repeats) · copy ...`` for a measured profile."""
    parts = []
    for what, unit, spread in (("matmul", "FLOP/s", profile.flops_spread), ("copy", "B/s", profile.bandwidth_spread)):
        if spread is not None:
            parts.append(f"{what} median {si(spread.median, unit)}, min {si(spread.min, unit)}, "
                         f"max {si(spread.max, unit)}, IQR {si(spread.iqr, unit)} ({spread.runs} repeats)")
    return " · ".join(parts)


def _print_profiles(title: str, profiles: list[HardwareProfile], empty: str | None = None) -> None:
    """The profiles as one table, then per profile its source, spread and warnings."""
    from rich.markup import escape
    from rich.table import Table

    console = table_console()
    table = Table(title=escape(title), title_justify="left")
    table.add_column("Name", no_wrap=True)
    table.add_column("Device")
    for _, header in _DTYPE_COLUMNS:
        table.add_column(header if header.endswith("(op/s)") else f"{header} FLOP/s", justify="right")
    for header in ("Bandwidth", "Ridge fp32 (FLOPs/B)", "Memory"):
        table.add_column(header, justify="right")
    for p in profiles:
        name = p.name + (" [yellow](warning)[/]" if p.warnings else "")
        table.add_row(name, escape(p.description), *(si(p.peak_flops[d], digits=4) if d in p.peak_flops else "" for d, _ in _DTYPE_COLUMNS),
                      f"{format_bytes(p.memory_bandwidth)}/s", f"{p.ridge_point('float32'):.3g}",
                      format_bytes(p.memory_bytes))
    if empty:
        table.add_row("local", f"[dim]{escape(empty)}[/]", *[""] * (len(_DTYPE_COLUMNS) + 3))
    console.print(table)
    console.print("Sources:")
    for p in profiles:
        console.print(f"  {p.name}: {escape(_source(p))}", soft_wrap=True)
        if p.measured and _spread(p):
            console.print(f"  {'':<{len(p.name)}}  repeats: {escape(_spread(p))}", soft_wrap=True)
        for warning in p.warnings:
            console.print(f"  {'':<{len(p.name)}}  [yellow]warning:[/] {escape(warning)}", soft_wrap=True)


def _print_json(profiles: list[HardwareProfile]) -> None:
    import msgspec

    from turnkey_like.records import encode

    print(msgspec.json.format(encode(profiles), indent=1).decode("utf-8"))


def hardware_list(args: argparse.Namespace) -> int:
    """``tk hardware list``: the datasheet profiles, then every ``local`` profile kept in the cache root."""
    from turnkey_like.cache import resolve_root
    from turnkey_like.characterize.hardware import BUILTIN, cached_local_profiles

    command = options.parse_hardware_list(args)
    local = list(cached_local_profiles(command.cache_dir).values())
    profiles = [*BUILTIN.values(), *local]
    if command.json:
        _print_json(profiles)
        return 0
    empty = None if local else "not measured in this cache root yet: `tk hardware measure` (or any run) measures it"
    _print_profiles(f"Hardware profiles (local: {resolve_root(command.cache_dir)})", profiles, empty)
    return 0


def hardware_measure(args: argparse.Namespace) -> int:
    """``tk hardware measure``: measure ``local`` again for each thread count, keep it, print it."""
    from turnkey_like.characterize.hardware import local_profile, local_profile_path

    from turnkey_like.records import now_utc

    command = options.parse_hardware_measure(args)
    import torch

    started = now_utc()
    measured = [local_profile(cache_dir=command.cache_dir, refresh=True, threads=threads,
                              wait_quiet_s=command.wait_quiet_s)
                for threads in command.threads or (torch.get_num_threads(),)]
    if command.json:
        _print_json(measured)
        return 0
    _print_profiles(f"Measured into {local_profile_path(command.cache_dir)}", measured)
    for p in measured:
        if (p.measured_at or "") < started:
            table_console().print(f"[yellow]note:[/] {p.name} ({p.threads} thread(s)): the new measurement was "
                                  f"disturbed more than the one kept from {p.measured_at}, which stays", soft_wrap=True)
    return 0
