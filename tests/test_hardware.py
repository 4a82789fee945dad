"""Hardware profiles measured honestly: when, how busy the machine was, the spread of the repeats,
the warning a busy measurement keeps, and `tk hardware list|measure`.

No test asserts a speed: a measurement is checked for the fields it records and their invariants
(quartiles in order, the peak is the best repeat, the busy flag agrees with its rule). The machine's
load is made real by spinning processes (``tests/busy.py``), never mocked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import pytest

from busy import busy_processes
from conftest import run_tk
from turnkey_like.characterize.hardware import (
    BUILTIN,
    cached_local_profiles,
    local_profile,
    local_profile_path,
    measure_local,
)
from turnkey_like.records import HardwareProfile, MachineLoad, Spread, decode
from turnkey_like.stats import WIDE_SPREAD, spread
from turnkey_like.system import (
    CONTENTION_SHARE,
    QUIET_POLL_S,
    cpu_sample,
    idle_load,
    least_busy,
    machine_load,
    resolution_ticks,
)


def _check_spread(s: Spread | None, runs_at_least: int = 3) -> None:
    assert s is not None and s.runs >= runs_at_least
    assert 0 < s.min <= s.q1 <= s.median <= s.q3 <= s.max
    assert s.iqr == pytest.approx(s.q3 - s.q1) and s.rel_iqr == pytest.approx(s.iqr / s.median)


def _check_load(load: MachineLoad, threads: int) -> None:
    """The invariants of a load record (whatever the machine is doing)."""
    cores = os.cpu_count()
    assert load.cores == cores and load.threads == min(threads, cores)
    assert load.window_s > 0 and load.other_cpu_s >= 0
    assert load.other_cores == pytest.approx(load.other_cpu_s / load.window_s)
    assert load.threshold_cores == pytest.approx(CONTENTION_SHARE * load.threads)
    assert load.resolution_cores > 0
    assert load.busy == (load.other_cores - load.resolution_cores > load.threshold_cores)
    assert (load.note is not None) == load.busy
    assert load.load_avg_1min is None or load.load_avg_1min >= 0
    assert load.attempts >= 1 and load.waited_s >= 0


def test_spread_hand_numbers():
    s = spread([5.0, 1.0, 4.0, 2.0, 3.0])  # sorted 1..5: quartiles by linear interpolation 2, 3, 4
    assert (s.runs, s.min, s.q1, s.median, s.q3, s.max, s.iqr) == (5, 1.0, 2.0, 3.0, 4.0, 5.0, 2.0)
    assert s.rel_iqr == pytest.approx(2 / 3)
    assert spread([1.0, 2.0]) is None  # two values have no quartiles worth the name
    assert WIDE_SPREAD == 0.10


def test_resolution_shrinks_with_the_window():
    start = cpu_sample()
    time.sleep(0.2)
    short = machine_load(start, cpu_sample(), threads=1, window="test")
    time.sleep(0.3)
    long = machine_load(start, cpu_sample(), threads=1, window="test")
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    assert long.resolution_cores == pytest.approx(resolution_ticks(os.cpu_count()) * tick / long.window_s)
    assert long.resolution_cores < short.resolution_cores


def test_builtin_profiles_give_memory_and_where_to_read_the_datasheet():
    for p in BUILTIN.values():
        assert p.memory_bytes and p.memory_bytes > 0, p.name
        assert p.url.startswith("https://"), p.name
        assert "memory_bytes" in p.sources, p.name
        assert not p.measured and p.measured_at is None and p.load is None and p.warnings == []
    assert BUILTIN["a100"].memory_bytes == BUILTIN["h100"].memory_bytes == 80 * 2**30


def test_a_local_measurement_records_when_how_busy_and_the_spread():
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    p = measure_local(budget_s=0.5, threads=1)
    assert p.measured and p.threads == 1
    when = dt.datetime.fromisoformat(p.measured_at)
    assert before <= when <= dt.datetime.now(dt.timezone.utc)
    assert p.measured_at in p.sources["peak_flops.float32"]
    _check_spread(p.flops_spread)
    _check_spread(p.bandwidth_spread)
    assert p.peak_flops["float32"] == p.flops_spread.max  # the peak is the best repeat
    assert p.memory_bandwidth == p.bandwidth_spread.max
    assert p.memory_bytes > 0
    _check_load(p.load, threads=1)
    assert p.load.window == "measurement" and p.load.attempts == 1 and p.load.waited_s == 0
    # the warnings say exactly what the record shows: a busy machine, a wide spread
    busy = [w for w in p.warnings if "busy" in w]
    assert bool(busy) == p.load.busy and (not busy or p.load.note in busy[0])
    wide = [w for w in p.warnings if "spread widely" in w]
    expected = [s for s in (p.flops_spread, p.bandwidth_spread) if s.rel_iqr > WIDE_SPREAD]
    assert len(wide) == len(expected)


def test_other_processes_make_a_measurement_busy_and_waiting_is_bounded():
    """Spinning processes started here, during a real measurement: the profile is flagged, tk waits
    for a quieter machine (none comes) for at most the time given, and keeps it with a warning."""
    with busy_processes():
        start = time.perf_counter()
        p = measure_local(budget_s=0.5, threads=1, wait_quiet_s=2 * QUIET_POLL_S)
        elapsed = time.perf_counter() - start
    _check_load(p.load, threads=1)
    assert p.load.busy and p.load.other_cores > p.load.threshold_cores
    assert p.load.waited_s >= QUIET_POLL_S and p.load.attempts == 1  # no quiet look: no second attempt
    assert "still busy after waiting" in p.load.note
    assert any(w.startswith("measured while the machine was busy: other processes used") for w in p.warnings)
    assert elapsed < 10 * (2 * QUIET_POLL_S + 2)  # hang guard, 10x the expected


def test_idle_load_sees_a_spinning_process():
    with busy_processes(1):
        load = idle_load(QUIET_POLL_S, threads=1)
    _check_load(load, threads=1)
    assert load.other_cores > 0.5  # a spinning process keeps most of a core busy
    assert load.busy and load.window == "idle check"


def test_least_busy_keeps_the_least_disturbed_and_counts_attempts():
    """``least_busy`` with a measurement that is busy whenever the spinning processes run: no quiet look
    within the bound, so one attempt, kept with the time waited."""
    def measure():
        start = cpu_sample()
        time.sleep(0.3)
        return "figures", machine_load(start, cpu_sample(), threads=1, window="test")

    with busy_processes():
        figures, load = least_busy(measure, threads=1, wait_s=0)
        assert figures == "figures" and load.attempts == 1 and load.waited_s == 0 and load.busy
        figures, load = least_busy(measure, threads=1, wait_s=QUIET_POLL_S)
    assert load.waited_s >= QUIET_POLL_S and load.attempts == 1 and load.busy


def test_a_busy_kept_profile_is_kept_while_the_machine_stays_busy(tmp_path):
    """A ``local`` profile measured while busy is looked at again on the next use; while the machine
    is still busy it is returned as kept (no new measurement)."""
    with busy_processes():
        first = local_profile(cache_dir=tmp_path, threads=1)
        assert first.load.busy and first.warnings
        again = local_profile(cache_dir=tmp_path, threads=1)
    assert again == first
    assert decode(local_profile_path(tmp_path).read_bytes(), dict[str, HardwareProfile]) == \
        cached_local_profiles(tmp_path)
    assert list(cached_local_profiles(tmp_path).values()) == [first]


def test_a_profile_from_an_older_tk_is_read_and_listed_without_a_date(tmp_path):
    """A ``local`` entry written before tk recorded the date and the load decodes with those fields
    empty; while the machine is busy it is kept as it is, and `tk hardware list` says what is missing."""
    from turnkey_like.system import cpu_name

    older = {"name": "local", "description": "this machine", "memory_bandwidth": 5e9, "measured": True,
             "threads": 1, "peak_flops": {"float32": 3e10, "float16": 3e10, "bfloat16": 3e10, "int8": 3e10},
             "sources": {}, "notes": ""}
    local_profile_path(tmp_path).parent.mkdir(parents=True)
    local_profile_path(tmp_path).write_text(json.dumps({f"{cpu_name()}|torch_threads=1": older}))
    with busy_processes():
        p = local_profile(cache_dir=tmp_path, threads=1)
    assert p.memory_bandwidth == 5e9 and p.measured_at is None and p.load is None and p.warnings == []
    out = run_tk("hardware", "list", "--cache-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "local: measured (date not recorded), 1 thread(s); load not recorded" in out.stdout


def test_tk_hardware_list_and_measure(tmp_path):
    cache = str(tmp_path / "cache")
    out = run_tk("hardware", "list", "--cache-dir", cache)
    assert out.returncode == 0, out.stderr
    for p in BUILTIN.values():
        assert p.name in out.stdout and p.url in out.stdout
    assert "not measured in this cache root yet" in out.stdout
    assert not os.path.exists(cache)  # listing measures nothing and writes nothing

    out = run_tk("hardware", "measure", "--cache-dir", cache, "--threads", "1", "--wait-quiet", "0")
    assert out.returncode == 0, out.stderr
    (kept,) = cached_local_profiles(cache).values()
    assert kept.threads == 1 and f"measured on {kept.measured_at}" in out.stdout
    assert ("warning:" in out.stdout) == bool(kept.warnings)

    out = run_tk("hardware", "list", "--cache-dir", cache, "--json")
    assert out.returncode == 0, out.stderr
    listed = decode(out.stdout.encode(), list[HardwareProfile])
    assert [p.name for p in listed] == [*BUILTIN, "local"] and listed[-1] == kept
    assert all(p.memory_bytes for p in listed)
    assert json.loads(out.stdout)[-1]["load"]["other_cpu_s"] >= 0


def test_tk_hardware_measure_rejects_a_negative_wait(tmp_path):
    out = run_tk("hardware", "measure", "--cache-dir", str(tmp_path), "--wait-quiet", "-1")
    assert out.returncode == 1
    assert "error: --wait-quiet -1: must be 0 or more" in out.stderr
