"""benchmarks/pairs.py: interleaved A/B pairs, the one way the scripts under benchmarks/ take a ratio.

The runs here do real work (sleeps, a child process), timed by the helper itself.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from pairs import cpu_count, format_pairs, interleaved_pairs, run_command, run_timed  # noqa: E402

UNIT_S = 0.05  # one unit of work: a 50 ms sleep (wall time; scheduling adds at most a few ms)


def spin(units: int) -> None:
    """Sleep ``units * UNIT_S`` seconds; ``None`` has the pair helper time the call itself.

    Sleeps keep their ratio on a loaded machine, where CPU-bound loops shared with other processes
    do not (a busy neighbour once turned a 2x loop into 3x in one pair).
    """
    time.sleep(units * UNIT_S)


def test_pairs_alternate_order_and_take_the_ratio_within_each_pair():
    log: list[str] = []
    calls = {"a": 0, "b": 0}

    def run(side: str, factor: int):
        def one() -> None:
            log.append(side)
            calls[side] += 1
            spin(factor * calls[side])  # the work grows pair by pair; B does twice A's
        return one

    stats = interleaved_pairs(run("a", 1), run("b", 2), pairs=5, warmup=1)

    # warm-up A B, then AB, BA, AB, BA, AB
    assert log == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]
    assert stats.a_first == [True, False, True, False, True]
    assert len(stats.a) == len(stats.b) == len(stats.loads) == 5
    # Work grows 2x..6x across the pairs, yet each pair's B ÷ A stays near 2: the ratio is taken
    # within a pair, not across pairs.
    assert stats.a[-1] > 2.5 * stats.a[0]
    # (a loaded machine can disturb one pair; most pairs, and their median, stay near 2)
    assert sum(1.4 < r < 3.0 for r in stats.ratios) >= 4, stats.ratios
    assert stats.ratio == sorted(stats.ratios)[2]
    assert 1.5 < stats.ratio < 2.7, stats.ratios
    assert all(d > 0 for d in stats.differences)


def test_a_run_returning_none_is_timed_around_the_call_and_a_number_is_taken_as_its_time():
    stats = interleaved_pairs(lambda: time.sleep(0.02), lambda: 0.5, pairs=3, warmup=0)
    assert all(a >= 0.02 for a in stats.a)
    assert stats.b == [0.5, 0.5, 0.5]
    assert stats.ratio == pytest.approx(0.5 / stats.a_median)


def test_the_printed_line_has_the_median_min_max_pair_and_load():
    stats = interleaved_pairs(lambda: spin(1), lambda: spin(3), pairs=3, warmup=0)
    line = format_pairs("spin 3 ÷ spin 1", stats, unit="ms", scale=1e3)
    m = re.search(r"ratio ([\d.]+) \(median of 3 interleaved pairs; min ([\d.]+), max ([\d.]+)\)", line)
    assert m, line
    ratio, low, high = map(float, m.groups())
    assert low <= ratio <= high
    assert ratio == pytest.approx(stats.ratio, abs=5e-4)
    assert f"A {stats.a_median * 1e3:.4g} ms" in line
    assert re.search(rf"load [\d.]+→[\d.]+ \(max [\d.]+\) on {cpu_count()} CPUs", line), line


def test_run_command_times_a_child_and_raises_with_its_output_when_it_fails():
    assert run_command([sys.executable, "-c", "import time; time.sleep(0.05)"]) >= 0.05
    with pytest.raises(RuntimeError, match=r"failed \(3\):\nboom"):
        run_command([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"])


def test_run_timed_reads_the_cpu_time_of_the_child_not_its_waiting():
    busy = run_timed([sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
                                            "while time.process_time() < end: pass"])
    idle = run_timed([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert busy.cpu_s >= 0.3
    assert idle.wall_s >= 0.3
    assert idle.cpu_s < busy.cpu_s - 0.2  # sleeping costs wall time, not CPU time
