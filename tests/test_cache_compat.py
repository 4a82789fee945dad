"""Records from earlier versions still load: every command that reads the cache works on a copy of a
cache written by an earlier tk, with the numbers its records hold.

The caches are real (``tests/fixtures/README.md`` names the tk commit and the commands that wrote
them): ``cache_v2`` (schema 2, index version 1: the three tutorial calls, resnet18 characterized on
the a100 profile, resnet18 benchmarked with ``--per-layer``) and ``cache_v1`` (tk 0.1.0, schema 1,
no index). Expected values are read from the record files with the standard ``json`` module, never
through tk's own reader; the golden files pin the report's text for those records.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import run_tk
from turnkey_like.cache import RECORD_FILE, Cache
from turnkey_like.cache_index import INDEX_FILE, INDEX_VERSION
from turnkey_like.records import (
    SCHEMA_VERSION,
    STAGES,
    BuildRecord,
    CorpusInput,
    HardwareProfile,
    decode,
    encode,
)
from turnkey_like.units import format_ms

FIXTURES = Path(__file__).parent / "fixtures"
CACHES = ("cache_v2", "cache_v1")
WIDE = {"COLUMNS": "250"}
LATENCY_STATS = ("mean", "median", "p90", "p99", "min", "max", "std")


def copy_of(name: str, tmp_path: Path) -> Path:
    """A private copy of a fixture cache (the fixture itself is never written)."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name, symlinks=True))


def raw_records(root: Path) -> dict[str, dict]:
    """Every build's ``record.json`` as plain JSON (stdlib: accepts version 1's ``Infinity``), by name."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(root.glob(f"*/{RECORD_FILE}"))}


def expected_values(raw: dict) -> dict:
    """The report's numeric and status columns as the record holds them (``None`` where it has none)."""
    inv = raw["invocation"]
    char = inv["characterization"]["result"]
    build = inv["build"]["result"]
    bench = inv["benchmark"]["result"]
    per_layer = bench.get("per_layer") if bench else None
    out = {
        "build_name": raw["build_name"],
        "model": raw["model"]["name"],
        "class": raw["model"]["class_name"],
        "params": raw["model"]["params"],
        "model_hash": raw["model"]["model_hash"],
        "invocation_hash": inv["hash"],
        "macs": char["totals"]["macs"] if char else None,
        "flops": char["totals"]["flops"] if char else None,
        "arithmetic_intensity": char["totals"]["arithmetic_intensity"] if char else None,
        "hardware": char["hardware"]["name"] if char else None,
        "bound": char["totals"]["bound"] if char else None,
        "opset": build["opset"] if build else None,
        "batch_size": bench["batch_size"] if bench else None,
        "throughput_ips": bench["throughput_ips"] if bench else None,
        # recomputed by the one definition (PerLayerResult.model_efficiency): equal to the stored figure
        # up to the order of float operations
        "efficiency": pytest.approx(per_layer["efficiency"], rel=1e-12) if per_layer else None,
        "unattributed_share": per_layer["unattributed_share"] if per_layer else None,
        "updated_at": raw["updated_at"],
        "tk_version": raw["tk_version"],
    }
    for s in LATENCY_STATS:
        out[f"latency_{s}_ms"] = bench["latency_ms"][s] if bench else None
    for stage in STAGES:
        out[f"{stage}_status"] = inv[stage]["status"]
        out[f"{stage}_duration_s"] = inv[stage]["duration_s"]
    return out


def _csv_value(cell: str, value):
    """A CSV cell back as the type of ``value`` (CSV writes Python's ``str``: floats round-trip exactly)."""
    if value is None:
        return None if cell == "" else cell
    if hasattr(value, "expected"):  # pytest.approx(float)
        return float(cell)
    return type(value)(cell)


def _assert_holds(read, written, where="$"):
    """Every value ``written`` holds is read back exactly; fields a later tk added (absent from what
    was written) may appear, at their defaults."""
    if isinstance(written, dict):
        assert isinstance(read, dict), where
        for key, value in written.items():
            assert key in read, f"{where}.{key} was lost"
            _assert_holds(read[key], value, f"{where}.{key}")
    elif isinstance(written, list):
        assert isinstance(read, list) and len(read) == len(written), where
        for i, (r, w) in enumerate(zip(read, written)):
            _assert_holds(r, w, f"{where}[{i}]")
    else:
        assert read == written, f"{where}: {read!r} != {written!r}"


@pytest.mark.parametrize("name", CACHES)
def test_every_record_loads_through_the_cache_api(name, tmp_path):
    root = copy_of(name, tmp_path)
    raw = raw_records(root)
    cache = Cache(root, create=False)
    assert cache.builds() == sorted(raw) and len(raw) == (5 if name == "cache_v2" else 3)
    full, problems = cache.records(full=True)
    assert problems == []
    summaries, problems = cache.records()
    assert problems == []
    for record, summary in zip(full, summaries):
        data = raw[record.build_name]
        assert type(record) is BuildRecord and record.schema_version == SCHEMA_VERSION
        assert cache.load(record.build_name) == record
        if data.get("schema_version", 1) == SCHEMA_VERSION:  # read as written: every field, exactly
            written = {k: v for k, v in data.items() if k not in ("_cache", "_summary_of")}  # the cache's own keys
            _assert_holds(json.loads(encode(record)), written)
        for got in (record, summary):
            inv = got.invocation
            values = expected_values(data)
            char, bench = inv.characterization.result, inv.benchmark.result
            assert got.model.params == values["params"] and inv.hash == values["invocation_hash"]
            assert (char.totals.macs, char.totals.flops, char.hardware.name) == \
                (values["macs"], values["flops"], values["hardware"])
            assert [getattr(inv, s).status.value for s in STAGES] == [values[f"{s}_status"] for s in STAGES]
            if bench is not None:
                assert [getattr(bench.latency_ms, s) for s in LATENCY_STATS] == \
                    [values[f"latency_{s}_ms"] for s in LATENCY_STATS]
                assert bench.throughput_ips == values["throughput_ips"]
        char = record.invocation.characterization.result
        assert len(char.rows) == len(data["invocation"]["characterization"]["result"]["rows"]) > 0
    per_layer = [r.invocation.benchmark.result.per_layer for r in full
                 if r.invocation.benchmark.result is not None and r.invocation.benchmark.result.per_layer]
    assert len(per_layer) == (1 if name == "cache_v2" else 0)


def test_corpus_inputs_and_the_local_profile_still_decode(tmp_path):
    root = copy_of("cache_v2", tmp_path)
    inputs = sorted((root / ".corpus" / "inputs").glob("*.json"))
    assert len(inputs) == 4
    for path in inputs:
        entry = decode(path.read_bytes(), CorpusInput)
        assert entry.key == path.stem and entry.result.status.value == "successful"
    profiles = decode((root / "hardware" / "local.json").read_bytes(), dict[str, HardwareProfile])
    assert [p.name for p in profiles.values()] == ["local"] and all(p.measured for p in profiles.values())


@pytest.mark.parametrize("name", CACHES)
def test_cache_list_shows_what_the_records_hold(name, tmp_path):
    root = copy_of(name, tmp_path)
    raw = raw_records(root)
    first = run_tk("cache", "list", "--cache-dir", str(root), env=WIDE)
    assert (first.returncode, first.stderr) == (0, ""), first.stderr
    assert f"{len(raw)} build(s) in {root}" in first.stdout
    for build, data in raw.items():
        (line,) = [ln for ln in first.stdout.splitlines() if build in ln]
        values = expected_values(data)
        cells = [c.strip() for c in line.split("│")[1:-1]]
        assert cells[:7] == [build, Path(data["script"]).name, values["model"], values["class"],
                             *(values[f"{s}_status"] for s in STAGES)]
        mean = values["latency_mean_ms"]
        assert cells[7] == ("" if mean is None else format_ms(mean))
    again = run_tk("cache", "list", "--cache-dir", str(root), env=WIDE)  # now from the index it wrote
    assert (again.returncode, again.stdout, again.stderr) == (0, first.stdout, "")


@pytest.mark.parametrize("name", CACHES)
def test_report_csv_json_md_hold_the_records_numbers(name, tmp_path, golden):
    root = copy_of(name, tmp_path)
    raw = raw_records(root)
    expected = {build: expected_values(data) for build, data in raw.items()}
    paths = {fmt: tmp_path / f"report.{fmt}" for fmt in ("csv", "json", "md")}
    for fmt, path in paths.items():
        out = run_tk("report", "--cache-dir", str(root), "--format", fmt, "-o", str(path))
        assert (out.returncode, out.stderr) == (0, ""), out.stderr
        assert out.stdout.startswith(f"wrote {len(raw)} row(s) from 1 cache(s)")

    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["build_name"] for r in rows) == sorted(raw)
    for row in rows:
        want = expected[row["build_name"]]
        assert {k: _csv_value(row[k], v) for k, v in want.items()} == want

    doc = json.loads(paths["json"].read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and list(doc["columns"]) == list(rows[0])
    assert [r["build_name"] for r in doc["rows"]] == [r["build_name"] for r in rows]
    for row in doc["rows"]:
        want = expected[row["build_name"]]
        assert {k: row[k] for k in want} == want

    md = paths["md"].read_text()
    for build, want in expected.items():
        (line,) = [ln for ln in md.splitlines() if ln.startswith(f"| {build} |")]
        if want["latency_mean_ms"] is not None:
            assert f"| {format_ms(want['latency_mean_ms'])} |" in line
    # the text itself, as tk wrote it for these records (regenerate with pytest --overwrite, review the diff)
    golden(f"{name}_report.csv", paths["csv"].read_text())
    golden(f"{name}_report.md", md)


@pytest.mark.parametrize("name", CACHES)
def test_stats_compare_prune_and_html_read_every_build(name, tmp_path):
    root = copy_of(name, tmp_path)
    raw = raw_records(root)
    builds = sorted(raw)
    for build in builds:
        out = run_tk("cache", "stats", build, "--cache-dir", str(root), env=WIDE)
        assert (out.returncode, out.stderr) == (0, ""), out.stderr
        fields = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in out.stdout.splitlines()
                  if ln.count("│") == 3}
        values = expected_values(raw[build])
        assert fields["Invocation hash"] == values["invocation_hash"] and fields["Model"] == values["model"]
        mean = values["latency_mean_ms"]
        assert fields.get("Latency mean") == (None if mean is None else format_ms(mean))
    out = run_tk("compare", *builds, "--cache-dir", str(root), "--json")
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    entries = json.loads(out.stdout)["entries"]
    assert [(e["build_name"], e["macs"], e["latency_ms"]) for e in entries] == \
        [(b, expected_values(raw[b])["macs"], expected_values(raw[b])["latency_mean_ms"]) for b in builds]
    out = run_tk("cache", "prune", "--older-than", "100000", "--dry-run", "--cache-dir", str(root))
    assert out.returncode == 0 and "would prune 0 build(s)" in out.stdout and f"{len(builds)} build(s) left" in out.stdout
    html = tmp_path / "report.html"
    out = run_tk("report", "--cache-dir", str(root), "-o", str(html))
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    assert all(b in html.read_text() for b in builds)


@pytest.mark.parametrize("name", CACHES)
def test_reindex_rewrites_the_index_in_the_current_layout(name, tmp_path):
    root = copy_of(name, tmp_path)
    before = run_tk("cache", "list", "--cache-dir", str(root), env=WIDE)
    out = run_tk("cache", "reindex", "--cache-dir", str(root))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    builds = sorted(raw_records(root))
    assert out.stdout.startswith(f"indexed {len(builds)} build(s) in {root}")
    con = sqlite3.connect(f"file:{root / INDEX_FILE}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == INDEX_VERSION
        assert [r[0] for r in con.execute("SELECT name FROM builds ORDER BY name")] == builds
    finally:
        con.close()
    after = run_tk("cache", "list", "--cache-dir", str(root), env=WIDE)
    assert (after.returncode, after.stdout) == (0, before.stdout)


def test_merged_report_of_both_versions(tmp_path):
    """The tutorial builds are in both caches, run on the same machine and runtime: one evaluation,
    and the row most recently updated is kept (``merge_rows``)."""
    roots = [copy_of(name, tmp_path) for name in CACHES]
    path = tmp_path / "both.csv"
    out = run_tk("report", "--cache-dir", str(roots[0]), "--cache-dir", str(roots[1]), "-o", str(path))
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    newest: dict[str, dict] = {}
    for root in roots:
        for build, data in raw_records(root).items():
            if build not in newest or data["updated_at"] >= newest[build]["updated_at"]:
                newest[build] = data
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["build_name"], r["updated_at"], r["tk_version"]) for r in rows] == \
        [(b, d["updated_at"], d["tk_version"]) for b, d in sorted(newest.items())]
    assert {r["tk_version"] for r in rows} == {"0.1.0", "0.3.0"}


def _stamp(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def test_an_index_of_the_old_layout_is_rebuilt_never_read(tmp_path):
    """cache_v2's index holds version-1 rows (an untyped array per row). Even with every row made to
    look fresh (the copy's stamps written in), no command shows what they hold: the file is rebuilt
    from the records in the current layout, and a version-1 row blob inside a current file is not
    decoded into a row (the record is read instead)."""
    root = copy_of("cache_v2", tmp_path)
    raw = raw_records(root)
    con = sqlite3.connect(root / INDEX_FILE)
    with con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1 < INDEX_VERSION
        old_blobs = dict(con.execute("SELECT name, row FROM builds"))
        for name in raw:
            con.execute("UPDATE builds SET ino = ?, size = ?, mtime_ns = ?, ctime_ns = ?, model = 'from_the_old_index', "
                        "csv = replace(csv, ',resnet18,', ',from_the_old_index,') WHERE name = ?",
                        (*_stamp(root / name / RECORD_FILE), name))
    con.close()
    assert sorted(old_blobs) == sorted(raw)
    listing = run_tk("cache", "list", "--cache-dir", str(root), env=WIDE)
    report = tmp_path / "r.csv"
    out = run_tk("report", "--cache-dir", str(root), "-o", str(report))
    assert listing.returncode == out.returncode == 0 and "from_the_old_index" not in listing.stdout + report.read_text()
    assert report.read_text() == (FIXTURES.parent / "golden" / "cache_v2_report.csv").read_text()
    con = sqlite3.connect(f"file:{root / INDEX_FILE}?mode=ro", uri=True)
    assert con.execute("PRAGMA user_version").fetchone()[0] == INDEX_VERSION
    assert con.execute("SELECT count(*) FROM builds WHERE model = 'from_the_old_index'").fetchone()[0] == 0
    con.close()

    # a version-1 blob in a current file (its row otherwise fresh): `tk report` reads the record
    name = "resnet18_torchvision_8a7b95f8"
    con = sqlite3.connect(root / INDEX_FILE)
    with con:
        con.execute("UPDATE builds SET row = ? WHERE name = ?", (old_blobs[name], name))
    con.close()
    path = tmp_path / "r.json"
    out = run_tk("report", "--cache-dir", str(root), "-o", str(path))
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    (row,) = [r for r in json.loads(path.read_text())["rows"] if r["build_name"] == name]
    want = expected_values(raw[name])
    assert {k: row[k] for k in want} == want
    con = sqlite3.connect(f"file:{root / INDEX_FILE}?mode=ro", uri=True)
    (blob,) = con.execute("SELECT row FROM builds WHERE name = ?", (name,)).fetchone()
    con.close()
    assert blob != old_blobs[name]  # rewritten from the record
