"""``tk compare``: builds from a real cache side by side, in the terminal and as JSON.

two_models.py runs ``SmallModel(10, 5)`` on ``x: [10]`` (Linear: 10*5 = 50 MACs, 55 parameters) and
``SmallModel(50, 10)`` on ``x: [50]`` (500 MACs, 510 parameters), so the second is 10x the MACs.
hello_world.py runs the same ``SmallModel(10, 5)`` call as two_models.py, so its invocation hash
(f93db89f) names two builds.
"""

from __future__ import annotations

import shutil

from measured import measured_cache, private_copy
from tests.conftest import EXAMPLES, run_tk
from turnkey_like.cache import Cache
from turnkey_like.records import Comparison, RunReport, decode
from turnkey_like.report.compare import comparison_table
from turnkey_like.views.compare import build_records, comparison

SMALL, LARGE = "two_models_turnkey_f93db89f", "two_models_turnkey_c69b7dea"


def test_compare_json_matches_the_records_and_hand_derived_ratios(real_cache):
    out = run_tk("compare", SMALL, "c69b7dea", "--json", "--cache-dir", str(real_cache))
    assert out.returncode == 0, out.stderr
    comp = decode(out.stdout, Comparison, what="tk compare --json")
    small, large = comp.entries
    assert (small.label, large.label) == (SMALL, "c69b7dea")  # a hash picks the build ending in it
    assert (small.build_name, large.build_name) == (SMALL, LARGE)
    assert (small.macs, large.macs, small.params, large.params) == (50, 500, 55, 510)
    assert large.relative["macs"] == 10.0 and small.relative["macs"] == 1.0
    cache = Cache(real_cache, create=False)
    for entry in comp.entries:
        record = cache.load(entry.build_name)
        char, bench = record.invocation.characterization.result, record.invocation.benchmark.result
        assert entry.flops == char.totals.flops
        assert entry.bytes == char.totals.bytes_read + char.totals.bytes_written
        assert entry.roofline_time_s == char.totals.roofline_time_s and entry.bound == char.totals.bound
        assert entry.latency_ms == bench.latency_ms.mean and entry.throughput_ips == bench.throughput_ips
        assert entry.by_category == char.breakdown.by_category
    assert large.relative["latency_ms"] == large.latency_ms / small.latency_ms
    assert comp.categories == ["matmul"] and comp.notes == []


def test_compare_prints_the_table(real_cache):
    out = run_tk("compare", SMALL, LARGE, "--cache-dir", str(real_cache))
    assert out.returncode == 0, out.stderr
    lines = {line.strip().split("  ")[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "(10.00x)" in lines["MACs"] and "500" in lines["MACs"]
    for quantity in ("Parameters", "Bytes (read + written)", "Arithmetic intensity (FLOPs/B)", "Bound",
                     "Roofline time", "Latency mean", "Throughput (inferences/s)", "matmul (share of roofline time)"):
        assert quantity in lines, quantity


def test_compare_writes_json_and_html_files(real_cache, tmp_path):
    out = run_tk("compare", SMALL, LARGE, "--json", str(tmp_path / "c.json"), "--html", str(tmp_path / "c.html"),
                 "--cache-dir", str(real_cache))
    assert out.returncode == 0, out.stderr
    comp = decode((tmp_path / "c.json").read_bytes(), Comparison)
    page = (tmp_path / "c.html").read_text()
    assert 'id="comparison-table"' in page
    for title, cells in comparison_table(comp):
        assert f"<th>{title.replace('&', '&amp;')}</th>" in page


def test_an_ambiguous_hash_names_its_builds(real_cache):
    out = run_tk("compare", "f93db89f", LARGE, "--cache-dir", str(real_cache))
    assert out.returncode == 1
    assert "invocation hash f93db89f names 2 builds: hello_world_turnkey_f93db89f, two_models_turnkey_f93db89f" in out.stderr


def test_unknown_build_and_a_single_build_are_errors(real_cache):
    out = run_tk("compare", "two_models_turnkey_c69b7de", SMALL, "--cache-dir", str(real_cache))
    assert out.returncode == 1
    assert "no build named 'two_models_turnkey_c69b7de'" in out.stderr and LARGE in out.stderr  # did you mean
    out = run_tk("compare", SMALL, "--cache-dir", str(real_cache))
    assert out.returncode == 1 and "at least two" in out.stderr


def test_a_run_compared_with_the_cache_notes_profile_and_benchmark_gaps(real_cache, tmp_path):
    """A ``tk profile --hardware a100`` run (not benchmarked) against a cached benchmark (``local``)."""
    out = run_tk("profile", str(EXAMPLES / "hello_world.py"), "--hardware", "a100", "--json", str(tmp_path / "run.json"),
                 "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    run = build_records(decode((tmp_path / "run.json").read_bytes(), RunReport).results)
    cached = Cache(real_cache, create=False).load(SMALL)
    comp = comparison([cached, *run])
    assert [e.hardware for e in comp.entries] == ["local", "a100"]
    assert comp.entries[1].macs == comp.entries[0].macs == 50
    assert comp.entries[1].latency_ms is None and comp.entries[1].relative["latency_ms"] is None
    assert any("different hardware profiles (a100, local)" in n for n in comp.notes)
    assert any(n.startswith("not benchmarked: ") for n in comp.notes)


def test_compare_table_of_a_sweep_golden(tmp_path, golden):
    """``tk compare`` of resnet18 at two image sizes, characterized on the spot on the datasheet a100
    profile: not benchmarked (no measured time), every figure counted from shapes or derived from the
    datasheet's peaks, so the whole table is golden. Sweep points are labelled ``NAME::HASH``."""
    out = run_tk("compare", "--model", "resnet18", "--imgsz", "32,64", "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resnet18::3944897a" in out.stdout and "MACs" in out.stdout
    golden("compare_resnet18_imgsz.txt", out.stdout)


def test_no_ratio_across_hardware_profiles_and_machines(real_cache, tmp_path):
    """A cached build characterized on ``local`` against ``--model`` entries on ``h100``: counts compare
    as ratios, roofline times never (no "(N.NNx)" across profiles), and the note says so."""
    cache = shutil.copytree(real_cache, tmp_path / "cache")  # --model characterizes into the cache
    out = run_tk("compare", SMALL, "--model", "resnet18", "--imgsz", "32", "--hardware", "h100", "--json",
                 "--cache-dir", str(cache))
    assert out.returncode == 0, out.stderr
    comp = decode(out.stdout, Comparison, what="tk compare --json")
    local, h100 = comp.entries
    assert (local.hardware, h100.hardware) == ("local", "h100")
    assert h100.relative["roofline_time_s"] is None and h100.relative["macs"] == h100.macs / local.macs
    assert any("no ratio is given across them" in n and "(h100, local)" in n for n in comp.notes)
    rows = dict(comparison_table(comp))
    assert "x)" not in rows["Roofline time"][1] and "x)" in rows["MACs"][1]
    assert rows["Hardware profile"] == ["local", "h100"]
    # the same machine: a latency ratio is given (both benchmarked here)
    both = comparison([Cache(cache, create=False).load(n) for n in (SMALL, LARGE)])
    assert both.entries[1].relative["latency_ms"] is not None


def test_a_latency_with_warnings_is_marked_and_its_machine_shown(tmp_path_factory, tmp_path):
    """A benchmark measured next to spinning processes (tests/measured.py) carries warnings: its latency
    is marked ``!``, each warning is a note, and "Measured on" names the device."""
    measured = measured_cache(tmp_path_factory)
    cache = private_copy(measured, tmp_path)
    out = run_tk("compare", measured.build, "--model", "resnet18", "--imgsz", "32", "--cache-dir", str(cache),
                 env={"COLUMNS": "250"})
    assert out.returncode == 0, out.stderr
    bench = measured.record.invocation.benchmark.result
    assert bench.warnings
    lines = {line.strip().split("  ")[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert f"!{bench.latency_ms.mean:.3g} ms" in lines["Latency mean"]
    assert bench.device_name in lines["Measured on"]
    for warning in bench.warnings:
        assert f"{measured.build}: latency marked !: {warning}" in " ".join(out.stdout.split())
