"""The cache: names, atomic save/load/update, summaries, migration of version-1 records,
delete/clean/files, and the `tk cache ...` commands.

Every record here comes from a real run (the session fixture ``real_cache``: ``tk benchmark
hello_world.py two_models.py``); variants are derived with ``msgspec.structs.replace``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from conftest import run_tk
from turnkey_like.cache_index import INDEX_FILE
from turnkey_like.cache import (
    BUILD_MARKER,
    RECORD_FILE,
    ROOT_MARKER,
    SUMMARY_FILE,
    SUMMARY_OMITS,
    Cache,
    resolve_root,
)
from turnkey_like.errors import CacheError, InputError
from turnkey_like.files import FILE_MODE
from turnkey_like.records import SCHEMA_VERSION, BuildRecord, StageResult, Status, decode, encode, to_builtins
from turnkey_like.units import format_bytes

REPO = Path(__file__).resolve().parents[1]
replace = msgspec.structs.replace

#: hello_world.py's model is Linear(10, 5) called on x of shape (10,), float32. Hand-derived:
#: MACs = 10 x 5 = 50; FLOPs = 2 x 50 = 100; params = 10 x 5 + 5 = 55;
#: bytes read = (10 input + 50 weight + 5 bias) x 4 B = 260; written = 5 x 4 B = 20;
#: arithmetic intensity = 100 / 280 FLOPs/byte.
HELLO = {"macs": 50, "flops": 100, "params": 55, "bytes_read": 260, "bytes_written": 20, "ai": 100 / 280}


# ------------------------------------------------------------------------------------------- records
@pytest.fixture(scope="session")
def real_records(real_cache) -> dict[str, BuildRecord]:
    """The real run's full records by build name (3: hello_world's model, two_models' two)."""
    records, problems = Cache(real_cache, create=False).records(full=True)
    assert problems == [] and len(records) == 3, problems
    return {r.build_name: r for r in records}


def pick(records: dict[str, BuildRecord], prefix: str = "hello_world") -> BuildRecord:
    """A deep copy (through the codec) of the real record whose build name starts with ``prefix``."""
    (name,) = [n for n in records if n.startswith(prefix)]
    return decode(encode(records[name]), BuildRecord)


def renamed(record: BuildRecord, build_name: str, inv_hash: str | None = None) -> BuildRecord:
    """A deep copy of ``record`` as another build: its name, and its invocation hash (the name's tail)."""
    inv_hash = inv_hash or build_name.rsplit("_", 1)[-1]
    rec = decode(encode(record), BuildRecord)
    return replace(rec, build_name=build_name, created_at=None, updated_at=None,
                   invocation=replace(rec.invocation, hash=inv_hash, build_name=build_name))


def record_from_file(path: str | Path, build_name: str) -> BuildRecord:
    """For child processes (which cannot use fixtures): a real record saved by :func:`template_file`."""
    return renamed(decode(Path(path).read_bytes(), BuildRecord), build_name)


@pytest.fixture(scope="session")
def template_file(real_records, tmp_path_factory) -> Path:
    """The hello_world record as a JSON file (outside every test's tmp_path), for child processes."""
    path = tmp_path_factory.mktemp("template") / "template.json"
    path.write_bytes(encode(pick(real_records)))
    return path


@pytest.fixture
def hello(real_records) -> BuildRecord:
    """A fresh deep copy of the real hello_world record."""
    return pick(real_records)


def with_latency(record: BuildRecord, mean_ms: float) -> BuildRecord:
    """``record`` with its benchmark's latency statistics scaled so that the mean is ``mean_ms``."""
    bench = record.invocation.benchmark.result
    k = mean_ms / bench.latency_ms.mean
    lat = bench.latency_ms
    latency = replace(lat, **{f: getattr(lat, f) * k for f in lat.__struct_fields__})
    result = replace(bench, latency_ms=latency, throughput_ips=bench.batch_size * 1000.0 / latency.mean)
    return replace(record, invocation=replace(record.invocation, benchmark=replace(record.invocation.benchmark,
                                                                                   result=result)))


def run_cli(argv: list[str]) -> int:
    """Parse ``argv`` with a parser that has only the cache commands registered, and run the handler."""
    from turnkey_like.cli.cache_commands import register

    parser = argparse.ArgumentParser(prog="tk")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def as_version_1(record: BuildRecord) -> str:
    """The text the previous tk (schema version 1) wrote for ``record``: the same layout through the
    standard ``json`` module, with the two shapes of version 1 that version 2 does not write: an
    infinite relative error as ``Infinity`` and a missing tolerance as ``{}``."""
    data = to_builtins(record)
    data["schema_version"] = 1
    build = data["invocation"]["build"]["result"]
    for agreement in build["faithfulness"].values():
        agreement["max_rel_err"] = float("inf")  # |e| = 0: v1 wrote what Python computed
    build["tolerance"] = {}
    return json.dumps(data, separators=(",", ":"))


# ------------------------------------------------------------------------------------------- root
def test_root_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TK_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_root(None) == tmp_path / "env"
    assert resolve_root("") == tmp_path / "env"
    monkeypatch.delenv("TK_CACHE_DIR")
    assert resolve_root(None) == Path("~/.cache/turnkey_like").expanduser()
    monkeypatch.chdir(tmp_path)
    assert resolve_root("rel") == tmp_path / "rel"  # made absolute


def test_new_cache_gets_marker_and_reader_needs_one(tmp_path):
    cache = Cache(tmp_path / "c")
    assert (tmp_path / "c" / ROOT_MARKER).is_file()
    assert Cache(tmp_path / "c", create=False).builds() == []
    with pytest.raises(CacheError, match="no tk cache at"):
        Cache(tmp_path / "missing", create=False)
    assert cache.root == tmp_path / "c"


def test_non_empty_folder_that_is_not_a_cache_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(CacheError, match="not a tk cache") as e:
        Cache(tmp_path / "photos")
    assert "new or empty folder" in e.value.hint
    with pytest.raises(CacheError, match="not a tk cache"):
        Cache(tmp_path / "photos", create=False)
    assert (tmp_path / "photos" / "cat.jpg").exists()


def test_cache_path_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(CacheError, match="not a folder"):
        Cache(tmp_path / "f")


# ------------------------------------------------------------------------------------------- names
def test_build_name_matches_turnkey_layout():
    assert Cache.build_name("/a/b/resnet50.py", {"author": ["torchvision"]}, "c69b7dea") == "resnet50_torchvision_c69b7dea"
    assert Cache.build_name("two_models.py", {}, "0123abcd") == "two_models_0123abcd"
    # unsafe characters never reach the file system
    assert Cache.build_name("my model.py", {"author": ["a/b"]}, "0123abcd") == "my_model_a_b_0123abcd"


def test_invalid_names_are_rejected(tmp_path):
    cache = Cache(tmp_path)
    for bad in ("../x", "a/b", "..", ".hidden", ""):
        with pytest.raises(CacheError, match="invalid build name"):
            cache.build_dir(bad)


def test_real_run_names_its_builds(real_records):
    # the tutorial scripts carry `author::turnkey`; two_models' hashes are TurnkeyML's (HASHING.md)
    assert sorted(real_records) == ["hello_world_turnkey_f93db89f", "two_models_turnkey_c69b7dea",
                                    "two_models_turnkey_f93db89f"]


# ------------------------------------------------------------------------------------------- save/load
def test_save_load_round_trip_and_json_on_disk(tmp_path, hello):
    cache = Cache(tmp_path)
    rec = renamed(hello, "resnet_tiny_0a1b2c3d")
    cache.save(rec)
    folder = tmp_path / rec.build_name
    assert (folder / BUILD_MARKER).is_file()
    data = json.loads((folder / RECORD_FILE).read_text())  # JSON, never pickle
    assert data["schema_version"] == SCHEMA_VERSION and data["invocation"]["benchmark"]["status"] == "successful"
    assert data["_cache"]["host"]  # the writer's facts sit next to the record
    assert stat.S_IMODE(os.stat(folder / RECORD_FILE).st_mode) == FILE_MODE  # not mkstemp's 0600
    loaded = cache.load(rec.build_name)
    assert type(loaded) is BuildRecord and loaded == rec  # every field survives, typed results included
    assert len(loaded.invocation.characterization.result.rows) == len(hello.invocation.characterization.result.rows) > 0
    assert loaded.created_at and loaded.updated_at and loaded.tk_version
    # no temp files left after atomic writes
    assert sorted(p.name for p in folder.iterdir()) == [".lock", SUMMARY_FILE, BUILD_MARKER, RECORD_FILE]


def test_save_replaces_atomically_and_keeps_created_at(tmp_path, hello):
    cache = Cache(tmp_path)
    rec = renamed(hello, "resnet_tiny_0a1b2c3d")
    cache.save(rec)
    inode = os.stat(tmp_path / rec.build_name / RECORD_FILE).st_ino
    created = rec.created_at
    rec.invocation.executed = 7
    cache.save(rec)
    # the rename puts a new file in place: a reader holding the old one still sees a whole record
    assert os.stat(tmp_path / rec.build_name / RECORD_FILE).st_ino != inode
    again = cache.load(rec.build_name)
    assert again.invocation.executed == 7 and again.created_at == created


def test_save_refuses_a_symlinked_record(tmp_path, hello):
    cache = Cache(tmp_path / "c")
    rec = renamed(hello, "x_0a1b2c3d")
    folder = cache.build_dir(rec.build_name)
    victim = tmp_path / "bashrc"
    victim.write_text("keep me\n")
    (folder / RECORD_FILE).symlink_to(victim)
    with pytest.raises(CacheError, match="symbolic link"):
        cache.save(rec)
    assert victim.read_text() == "keep me\n"


def test_update_is_read_modify_write(tmp_path, hello):
    cache = Cache(tmp_path)
    cache.save(renamed(hello, "resnet_tiny_0a1b2c3d"))

    def bump(r):
        r.invocation.build.status = Status.RUNNING
        r.invocation.build.pid = os.getpid()

    out = cache.update("resnet_tiny_0a1b2c3d", bump)
    assert out.invocation.build.status == Status.RUNNING
    loaded = cache.load("resnet_tiny_0a1b2c3d")
    assert loaded.invocation.build.status == Status.RUNNING  # this process is alive: not killed
    with pytest.raises(CacheError, match="no build named"):
        cache.update("resnet_tiny_0a1b2c3e", bump)


def test_unknown_build_suggests_closest_names(tmp_path, hello):
    cache = Cache(tmp_path)
    for name in ("resnet50_torchvision_c69b7dea", "bert_hf_11112222"):
        cache.save(renamed(hello, name))
    with pytest.raises(CacheError) as e:
        cache.load("resnet50_torchvison_c69b7dea")  # typo
    assert "resnet50_torchvision_c69b7dea" in e.value.hint
    with pytest.raises(CacheError) as e:
        cache.load("c69b7dea")  # just the hash: substring match
    assert e.value.hint == "did you mean: resnet50_torchvision_c69b7dea?"
    with pytest.raises(CacheError) as e:
        cache.load("zzzzzzzzzz")
    assert "tk cache list" in e.value.hint


def test_records_and_builds(tmp_path, hello):
    cache = Cache(tmp_path)
    for i in range(3):
        cache.save(renamed(hello, f"m{i}_0000000{i}"))
    (tmp_path / "not_a_build").mkdir()  # a stray folder without a marker is ignored
    assert cache.builds() == ["m0_00000000", "m1_00000001", "m2_00000002"]
    records, problems = cache.records()
    assert [r.build_name for r in records] == cache.builds() and problems == []


def test_records_reads_summaries_without_bulky_detail_but_never_stale_ones(tmp_path, hello):
    cache = Cache(tmp_path)
    rec = renamed(hello, "resnet_tiny_0a1b2c3d")
    cache.save(rec)
    full_char = rec.invocation.characterization.result
    assert full_char.rows and full_char.modules and rec.invocation.build.result.onnx_op_counts
    (fast,), _ = cache.records()
    char = fast.invocation.characterization.result
    assert char.rows == [] and char.modules == [] and char.top_ops == [] and char.fusion.groups == []
    assert fast.invocation.build.result.onnx_op_counts == {} and "onnx_op_counts" in SUMMARY_OMITS["BuildResult"]
    # what listings and reports read is all there
    assert char.totals == full_char.totals and char.hardware.name == full_char.hardware.name
    assert fast.invocation.benchmark.result == rec.invocation.benchmark.result
    assert fast.invocation.build.result.opset == rec.invocation.build.result.opset
    summary_size = (tmp_path / rec.build_name / SUMMARY_FILE).stat().st_size
    assert summary_size < (tmp_path / rec.build_name / RECORD_FILE).stat().st_size
    (full,), _ = cache.records(full=True)
    assert full == cache.load(rec.build_name) and full.invocation.characterization.result.rows == full_char.rows
    # someone rewrites record.json behind tk's back: the summary no longer matches it and is not used
    path = tmp_path / rec.build_name / RECORD_FILE
    data = json.loads(path.read_text())
    data["invocation"]["executed"] = 99
    path.write_text(json.dumps(data))
    (fast,), _ = cache.records()
    assert fast.invocation.executed == 99
    # a broken summary falls back to the record too
    (tmp_path / rec.build_name / SUMMARY_FILE).write_text("{")
    assert cache.records()[0][0].invocation.executed == 99


# ------------------------------------------------------------------------------------------- version 1
def test_version_1_record_is_migrated_everywhere(tmp_path, hello):
    """A record the previous tk wrote (schema 1, stdlib json with Infinity) reads in load(), records(),
    `tk cache list` and `tk report`, migrated; reading never rewrites it."""
    cache = Cache(tmp_path / "c")
    cache.save(renamed(hello, "fresh_11111111"))
    old = renamed(hello, "old_22222222")
    folder = cache.build_dir(old.build_name)
    text = as_version_1(old)
    assert "Infinity" in text and '"tolerance":{}' in text
    (folder / RECORD_FILE).write_text(text)

    loaded = cache.load("old_22222222")
    assert loaded.schema_version == SCHEMA_VERSION and loaded.invocation.build.result.tolerance is None
    # version 2 writes an infinite error as None (records.OutputAgreement: "None when ... infinite")
    assert all(a.max_rel_err is None for a in loaded.invocation.build.result.faithfulness.values())
    assert loaded.invocation.characterization.result.totals == hello.invocation.characterization.result.totals
    records, problems = cache.records()
    assert problems == [] and [r.build_name for r in records] == ["fresh_11111111", "old_22222222"]
    assert (folder / RECORD_FILE).read_text() == text

    out = run_tk("cache", "list", "--cache-dir", str(cache.root), env={"COLUMNS": "250"})
    assert out.returncode == 0, out.stderr
    assert "2 build(s)" in out.stdout and "old_22222222" in out.stdout and out.stderr == ""
    csv_path = tmp_path / "r.csv"
    out = run_tk("report", "--cache-dir", str(cache.root), "-o", str(csv_path))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    text = csv_path.read_text()
    assert "old_22222222" in text and "fresh_11111111" in text


def _v1_trim(value, depth: int = 0):
    """tk 0.1's summary of a stage result (its cache._trim): lists dropped, dicts over 100 keys dropped."""
    if isinstance(value, dict):
        if depth > 0 and len(value) > 100:
            return None
        out = {}
        for k, v in value.items():
            if isinstance(v, (list, tuple)):
                continue
            t = _v1_trim(v, depth + 1)
            if t is not None or v is None:
                out[k] = t
        return out
    return value


def test_version_1_summary_is_migrated_not_the_whole_record(tmp_path, hello):
    """A cache written by tk 0.1 lists from its summaries (as fast as before), without rewriting them."""
    cache = Cache(tmp_path)
    old = renamed(hello, "old_22222222")
    folder = cache.build_dir(old.build_name)
    (folder / RECORD_FILE).write_text(as_version_1(old))
    summary = json.loads(as_version_1(old))
    for name in ("characterization", "build", "benchmark"):
        summary["invocation"][name]["result"] = _v1_trim(summary["invocation"][name]["result"])
    st = os.stat(folder / RECORD_FILE)
    summary["_summary_of"] = [st.st_ino, st.st_size, st.st_mtime_ns]
    summary["invocation"]["executed"] = 5  # marks what was read: the summary, not record.json (executed 1)
    (folder / SUMMARY_FILE).write_text(json.dumps(summary))
    assert "rows" not in summary["invocation"]["characterization"]["result"] and hello.invocation.executed != 5

    (fast,), problems = cache.records()
    assert problems == [] and fast.invocation.executed == 5 and fast.schema_version == SCHEMA_VERSION
    char = fast.invocation.characterization.result
    assert char.rows == [] and char.totals == hello.invocation.characterization.result.totals
    assert fast.invocation.benchmark.result.latency_ms == hello.invocation.benchmark.result.latency_ms
    (full,), _ = cache.records(full=True)
    assert full.invocation.executed == hello.invocation.executed and full.invocation.characterization.result.rows


def test_newer_record_is_named_with_a_hint_to_upgrade(tmp_path, hello):
    cache = Cache(tmp_path)
    cache.save(renamed(hello, "new_33333333"))
    path = tmp_path / "new_33333333" / RECORD_FILE
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(CacheError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this tk") as e:
        cache.load("new_33333333")
    assert "upgrade tk" in e.value.hint


# ------------------------------------------------------------------------------------------- delete/clean/files
def _with_artifacts(cache: Cache, record: BuildRecord) -> Path:
    cache.save(record)
    folder = cache.build_dir(record.build_name)
    (folder / "model.onnx").write_bytes(b"\0" * 1000)
    (folder / "model.onnx.data").write_bytes(b"\0" * 500)
    (folder / "build.log").write_text("exported\n")
    (folder / "logs").mkdir()
    (folder / "logs" / "benchmark.log").write_text("ok\n")
    (folder / "raw").mkdir()
    (folder / "raw" / "latencies.json").write_bytes(b"\0" * 24)
    return folder


def test_files_clean_and_delete(tmp_path, hello):
    cache = Cache(tmp_path)
    folder = _with_artifacts(cache, renamed(hello, "a_00000001"))
    _with_artifacts(cache, renamed(hello, "b_00000002"))
    files = dict(cache.files("a_00000001"))
    assert files["model.onnx"] == 1000 and files["raw/latencies.json"] == 24 and RECORD_FILE in files
    cleaned = cache.clean(["a_00000001"])
    assert cleaned.freed == {"a_00000001": 1000 + 500 + 24} and cleaned.removed == ["a_00000001"]
    assert cleaned.skipped == {}
    left = {p for p, _ in cache.files("a_00000001")}
    assert left == {".lock", BUILD_MARKER, RECORD_FILE, SUMMARY_FILE, "build.log", "logs/benchmark.log"}
    assert not (folder / "raw").exists()
    assert cache.load("a_00000001").build_name == "a_00000001"  # record still readable
    with pytest.raises(CacheError, match="no build named"):
        cache.delete(["a_00000001", "nope_00000000"])  # checked before anything is removed
    assert folder.exists()
    assert cache.delete(["a_00000001"]).removed == ["a_00000001"]
    assert cache.builds() == ["b_00000002"]


def test_delete_refuses_folder_without_build_marker(tmp_path):
    cache = Cache(tmp_path)
    (tmp_path / "precious_00000000").mkdir()
    (tmp_path / "precious_00000000" / "thesis.tex").write_text("x")
    with pytest.raises(CacheError, match="not a tk build folder"):
        cache.delete(["precious_00000000"])
    assert (tmp_path / "precious_00000000" / "thesis.tex").exists()


# ------------------------------------------------------------------------------------------- commands
def test_cli_list_prints_builds_and_statuses(tmp_path, capsys, hello):
    cache = Cache(tmp_path)
    cache.save(with_latency(renamed(hello, "resnet_tiny_alice_0a1b2c3d"), 1.5))
    failed = renamed(hello, "bert_alice_11112222")
    failed.invocation.benchmark = StageResult(status=Status.ERROR, duration_s=0.1, error="ORT session failed")
    cache.save(failed)
    assert run_cli(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 build(s)" in out
    lines = {ln.split()[1]: ln for ln in out.splitlines() if "_alice_" in ln}
    assert "1.5 ms" in lines["resnet_tiny_alice_0a1b2c3d"]
    assert lines["resnet_tiny_alice_0a1b2c3d"].count("successful") == 3
    assert "error" in lines["bert_alice_11112222"] and "SmallModel" in lines["bert_alice_11112222"]

    assert run_cli(["cache", "list", "--json", "--cache-dir", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == SCHEMA_VERSION and data["problems"] == []
    assert [b["build_name"] for b in data["builds"]] == ["bert_alice_11112222", "resnet_tiny_alice_0a1b2c3d"]
    assert data["builds"][1]["invocation"]["benchmark"]["result"]["latency_ms"]["mean"] == pytest.approx(1.5)
    assert data["total_bytes"] == sum(cache.folder_bytes(n) for n in cache.builds()) > 0


def test_cli_list_plain_table_for_many_builds(tmp_path, capsys, monkeypatch, hello):
    from turnkey_like.report import cache_listing

    cache = Cache(tmp_path)
    cache.save(with_latency(renamed(hello, "resnet_tiny_alice_0a1b2c3d"), 1.5))
    cache.save(with_latency(renamed(hello, "bert_alice_11112222"), 12.5))
    monkeypatch.setattr(cache_listing, "RICH_MAX_ROWS", 1)  # the plain renderer takes over above this
    assert run_cli(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    sizes = {n: cache.folder_bytes(n) for n in cache.builds()}
    assert lines[0] == f"2 build(s) in {tmp_path}: {format_bytes(sum(sizes.values()))} (records and artifacts)"
    assert lines[1].split() == ["Build", "Script", "Model", "Class", "Characterize", "Build", "Benchmark",
                                "Latency", "mean", "Size"]
    assert lines[3].split() == ["bert_alice_11112222", "hello_world.py", "pytorch_model", "SmallModel", "successful",
                                "successful", "successful", "12.5", "ms",
                                *format_bytes(sizes["bert_alice_11112222"]).split()]
    assert len({len(ln) for ln in lines[1:]}) == 1  # aligned: latency and size right-justified to the header's width


def test_cli_stats_shows_record_files_and_system(tmp_path, capsys, hello):
    cache = Cache(tmp_path)
    _with_artifacts(cache, renamed(hello, "resnet_tiny_0a1b2c3d"))
    assert run_cli(["cache", "stats", "resnet_tiny_0a1b2c3d", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    sizes = {ln.split("│")[1].strip(): int(ln.split("│")[3]) for ln in out.splitlines() if ln.count("│") == 4}
    assert sizes["model.onnx"] == 1000 and sizes["model.onnx.data"] == 500 and sizes["raw/latencies.json"] == 24
    assert sizes["total"] == sum(v for k, v in sizes.items() if k != "total")
    assert "1 kB" in out  # units.format_bytes: decimal prefixes
    assert hello.system.cpu in out and hello.system.torch in out  # system info
    fields = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in out.splitlines() if ln.count("│") == 3}
    assert fields["FLOPs (1 MAC = 2 FLOPs)"] == str(HELLO["flops"]) and fields["MACs"] == str(HELLO["macs"])
    assert fields["Latency mean"].endswith(" ms")
    assert run_cli(["cache", "stats", "--json", "resnet_tiny_0a1b2c3d", "--cache-dir", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["record"]["invocation"]["characterization"]["result"]["totals"]["macs"] == HELLO["macs"]
    assert len(data["record"]["invocation"]["characterization"]["result"]["rows"]) > 0  # the full record
    with pytest.raises(CacheError) as e:
        run_cli(["cache", "stats", "resnet_tiny_0a1b2c3e", "--cache-dir", str(tmp_path)])
    assert "resnet_tiny_0a1b2c3d" in e.value.hint


def test_cli_delete_clean_location(tmp_path, capsys, monkeypatch, hello):
    cache = Cache(tmp_path)
    for n in ("a_00000001", "b_00000002", "c_00000003"):
        _with_artifacts(cache, renamed(hello, n))
    assert run_cli(["cache", "clean", "--all", "--cache-dir", str(tmp_path)]) == 0
    assert "freed 4.57 kB (4572 bytes)" in capsys.readouterr().out  # 3 x (1000 + 500 + 24)
    assert all("model.onnx" not in dict(cache.files(n)) for n in cache.builds())
    assert run_cli(["cache", "delete", "a_00000001", "--cache-dir", str(tmp_path)]) == 0
    assert cache.builds() == ["b_00000002", "c_00000003"]
    with pytest.raises(InputError, match="needs build names or --all"):
        run_cli(["cache", "delete", "--cache-dir", str(tmp_path)])
    assert run_cli(["cache", "delete", "--all", "--cache-dir", str(tmp_path)]) == 0
    assert cache.builds() == [] and (tmp_path / ROOT_MARKER).is_file()
    capsys.readouterr()
    monkeypatch.setenv("TK_CACHE_DIR", str(tmp_path / "envcache"))
    assert run_cli(["cache", "location"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "envcache")


def test_cache_list_does_not_import_torch(tmp_path, hello):
    cache = Cache(tmp_path)
    cache.save(renamed(hello, "resnet_tiny_0a1b2c3d"))
    code = (
        "import argparse, sys\n"
        "from turnkey_like.cli.cache_commands import register\n"
        "p = argparse.ArgumentParser(); register(p.add_subparsers(dest='c'))\n"
        f"a = p.parse_args(['cache', 'list', '--cache-dir', {str(tmp_path)!r}]); rc = a.func(a)\n"
        "a = p.parse_args(['report', '-o', sys.argv[1], '--cache-dir', " + repr(str(tmp_path)) + "]); a.func(a)\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH', rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.csv")], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("NO_TORCH 0")


# ------------------------------------------------------------------------------------------- the index
TESTS_ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), "COLUMNS": "250"}


def copy_cache(real_cache: Path, tmp_path: Path) -> Path:
    """A private copy of the session's real cache (new inodes: every index row it holds is stale)."""
    return Path(shutil.copytree(real_cache, tmp_path / "cache", symlinks=True))


def index_rows(root: Path) -> dict[str, dict]:
    """The rows of a cache's index file by build name, read with the standard ``sqlite3``."""
    con = sqlite3.connect(f"file:{root / INDEX_FILE}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return {r["name"]: dict(r) for r in con.execute("SELECT * FROM builds")}
    finally:
        con.close()


def record_stamp(root: Path, name: str) -> tuple[int, int, int, int]:
    st = os.stat(root / name / RECORD_FILE)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def assert_index_matches_records(root: Path) -> None:
    """Every build has an index row made from its current record.json: same stamp, same report row,
    same CSV line, and the folder's size."""
    from turnkey_like.cache_index import decode_rows
    from turnkey_like.records import csv_line, report_row

    cache = Cache(root, create=False)
    rows = index_rows(root)
    assert sorted(rows) == cache.builds()
    for name, got in rows.items():
        assert (got["ino"], got["size"], got["mtime_ns"], got["ctime_ns"]) == record_stamp(root, name), name
        expected = report_row(cache.load(name))
        assert decode_rows([got["row"]]) == [expected] and got["csv"] == csv_line(expected)
        assert got["bytes"] == cache.folder_bytes(name) and got["updated_at"] == expected.updated_at


def listed(out: str, name: str) -> str:
    (line,) = [ln for ln in out.splitlines() if name in ln]
    return line


def test_a_real_run_keeps_the_index_in_step(real_cache):
    """The session's `tk benchmark` run wrote the index as it saved each stage: every row is fresh."""
    assert_index_matches_records(real_cache)


def test_entries_are_the_records_rows_from_the_records_then_from_the_index(real_cache, tmp_path):
    from turnkey_like.records import csv_line
    from turnkey_like.report.table import report_rows

    root = copy_cache(real_cache, tmp_path)
    cache = Cache(root, create=False)
    records, _ = cache.records()
    expected = sorted(report_rows(records), key=lambda r: r.build_name)
    for _ in range(2):  # the copy's rows are stale: read from the records and rewritten; then read from the index
        entries, problems = cache.entries(rows=True, csv=True)
        assert problems == [] and [e.row for e in entries] == expected
        assert [e.csv for e in entries] == [csv_line(r) for r in expected]
        assert [e.updated_at for e in entries] == [r.updated_at for r in records]
        assert [e.bytes for e in entries] == [cache.folder_bytes(r.build_name) for r in records]
        assert_index_matches_records(root)
    bare, _ = cache.entries()
    assert [(e.row, e.csv) for e in bare] == [(None, None)] * 3  # only what listing needs unless asked


WITHOUT_INDEX = r"""
import sys
from turnkey_like import cache_index
cache_index.CacheIndex.put = lambda self, rows: False  # a tk that keeps no index (tk 0.1)
from turnkey_like.cache import Cache
from test_cache import with_latency
cache = Cache(sys.argv[1])
cache.save(with_latency(cache.load(sys.argv[2]), 42.0))
"""


def test_list_and_report_read_the_index_but_never_over_a_changed_record(real_cache, tmp_path):
    """`tk cache list` and `tk report` (real processes) take a build's row from the index while its
    record.json has the stamp stored with it, and from the record once it has not: touched, or
    rewritten by another process that did not update the index."""
    root = copy_cache(real_cache, tmp_path)
    first = run_tk("cache", "list", "--cache-dir", str(root), env=TESTS_ENV)
    assert first.returncode == 0, first.stderr
    assert_index_matches_records(root)  # the copy's stale rows were rewritten from the records
    names = sorted(index_rows(root))
    hello, other = names[0], names[1]
    assert hello.startswith("hello_world")

    # the index is what is read while the records do not change: mark one row in the index itself
    con = sqlite3.connect(root / INDEX_FILE)
    with con:
        con.execute("UPDATE builds SET model = 'from_the_index', csv = replace(csv, 'pytorch_model', 'from_the_index') "
                    "WHERE name = ?", (hello,))
    con.close()
    out = run_tk("cache", "list", "--cache-dir", str(root), env=TESTS_ENV)
    assert "from_the_index" in listed(out.stdout, hello)
    report = tmp_path / "r.csv"
    assert run_tk("report", "--cache-dir", str(root), "-o", str(report)).returncode == 0
    assert "from_the_index" in listed(report.read_text(), hello)

    # touched: the stamp differs, so the record is read and the row rewritten
    os.utime(root / hello / RECORD_FILE)
    out = run_tk("cache", "list", "--cache-dir", str(root), env=TESTS_ENV)
    assert "from_the_index" not in out.stdout and "pytorch_model" in listed(out.stdout, hello)
    assert run_tk("report", "--cache-dir", str(root), "-o", str(report)).returncode == 0
    assert "from_the_index" not in report.read_text()
    assert index_rows(root)[hello]["model"] == "pytorch_model"

    # rewritten by a process that keeps no index: the new latency is shown, and the row follows
    before = index_rows(root)[other]
    child = subprocess.run([sys.executable, "-c", WITHOUT_INDEX, str(root), other], cwd=REPO,
                           env={**os.environ, **TESTS_ENV}, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert index_rows(root)[other] == before  # the index did not follow the record
    out = run_tk("cache", "list", "--cache-dir", str(root), env=TESTS_ENV)
    assert "42 ms" in listed(out.stdout, other)
    assert run_tk("report", "--cache-dir", str(root), "-o", str(report)).returncode == 0
    with open(report, newline="") as f:
        (row,) = [r for r in csv.DictReader(f) if r["build_name"] == other]
    assert float(row["latency_mean_ms"]) == pytest.approx(42.0)
    assert_index_matches_records(root)


def test_missing_or_damaged_index_is_rebuilt_and_reindex(real_cache, tmp_path):
    root = copy_cache(real_cache, tmp_path)
    base = run_tk("cache", "list", "--cache-dir", str(root), env=TESTS_ENV)
    assert base.returncode == 0 and (root / INDEX_FILE).is_file()
    (root / INDEX_FILE).unlink()  # deleted: rebuilt on the way by the next reader
    again = run_tk("cache", "list", "--cache-dir", str(root), env=TESTS_ENV)
    assert (again.returncode, again.stdout, again.stderr) == (0, base.stdout, "")
    assert_index_matches_records(root)
    (root / INDEX_FILE).write_bytes(b"not a database\n" * 500)  # damaged: never trusted, replaced
    again = run_tk("cache", "list", "--cache-dir", str(root), env=TESTS_ENV)
    assert (again.returncode, again.stdout, again.stderr) == (0, base.stdout, "")
    assert_index_matches_records(root)

    out = run_tk("cache", "reindex", "--cache-dir", str(root))
    assert out.returncode == 0, out.stderr
    total = sum(Cache(root, create=False).folder_bytes(n) for n in index_rows(root))
    assert out.stdout.startswith(f"indexed 3 build(s) in {root} ({format_bytes(total)}) in ")
    assert_index_matches_records(root)
    # a damaged record is named, left out of the index, and listed by every command as before
    (root / index_rows(root).popitem()[0] / RECORD_FILE).write_text("{")
    out = run_tk("cache", "reindex", "--cache-dir", str(root))
    assert out.returncode == 1 and "indexed 2 build(s)" in out.stdout and "is corrupt" in out.stderr
    assert len(index_rows(root)) == 2


def test_parse_size_decimal_units():
    from turnkey_like.cli.cache_commands import parse_size

    assert parse_size("500MB") == 500 * 10**6 and parse_size("2GB") == 2 * 10**9 and parse_size("2 gb") == 2 * 10**9
    assert parse_size("1.5G") == 1_500_000_000 and parse_size("750k") == parse_size("750kB") == 750_000
    assert parse_size("123456") == 123456 and parse_size("1TB") == 10**12
    assert parse_size("2GiB") == 2 * 2**30  # binary only when asked for
    for bad in ("", "MB", "2 parsecs", "-1GB"):
        with pytest.raises(InputError, match="not a size"):
            parse_size(bad)


def last_used(cache: Cache, name: str, days_ago: float) -> None:
    """Make a build's record say it was last written ``days_ago`` days ago (its ``updated_at``), the way
    a run that long ago left it; the record is rewritten behind the index's back."""
    path = cache.root / name / RECORD_FILE
    data = json.loads(path.read_text())
    data["updated_at"] = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days_ago)).isoformat(timespec="seconds")
    path.write_text(json.dumps(data))


def test_prune_older_than_removes_the_least_recently_used_and_says_what_it_freed(tmp_path, hello):
    cache = Cache(tmp_path / "c")
    ages = {"older_00000002": 120, "old_00000001": 90, "recent_00000003": 2, "new_00000004": 0}
    for name, days in ages.items():
        _with_artifacts(cache, renamed(hello, name))
        if days:
            last_used(cache, name, days)
    (tmp_path / "c" / "notes").mkdir()  # not a build (no marker): never touched
    (tmp_path / "c" / "notes" / "todo.txt").write_text("keep\n")
    os.utime(tmp_path / "c" / "notes", (0, 0))
    sizes = {n: cache.folder_bytes(n) for n in ages}
    freed = sizes["older_00000002"] + sizes["old_00000001"]
    left = sizes["recent_00000003"] + sizes["new_00000004"]
    argv = ["cache", "prune", "--older-than", "30", "--cache-dir", str(cache.root)]

    dry = run_tk(*argv, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0] == (f"would prune 2 build(s) from {cache.root}: would free {format_bytes(freed)} ({freed} bytes); "
                        f"2 build(s) left, {format_bytes(left)}")
    assert [ln.split()[0] for ln in lines[1:]] == ["older_00000002", "old_00000001"]  # least recently used first
    assert cache.builds() == sorted(ages)  # a dry run removes nothing

    out = run_tk(*argv)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (f"pruned 2 build(s) from {cache.root}: freed {format_bytes(freed)} "
                                          f"({freed} bytes); 2 build(s) left, {format_bytes(left)}")
    assert cache.builds() == ["new_00000004", "recent_00000003"]
    assert (tmp_path / "c" / "notes" / "todo.txt").read_text() == "keep\n"
    assert_index_matches_records(cache.root)  # the pruned builds' rows are gone too
    listing = run_tk("cache", "list", "--cache-dir", str(cache.root), env=TESTS_ENV)
    assert f"2 build(s) in {cache.root}: {format_bytes(left)}" in listing.stdout


def test_prune_max_size_removes_oldest_first_until_under_the_limit(tmp_path, hello):
    cache = Cache(tmp_path / "c")
    ages = {"a_00000001": 40, "b_00000002": 30, "c_00000003": 20, "d_00000004": 10}
    for i, (name, days) in enumerate(ages.items()):
        folder = _with_artifacts(cache, renamed(hello, name))
        (folder / "model.onnx").write_bytes(b"\0" * 10_000 * (4 - i))  # the oldest is the largest
        last_used(cache, name, days)
    sizes = {n: cache.folder_bytes(n) for n in ages}
    limit = sizes["c_00000003"] + sizes["d_00000004"] + sizes["b_00000002"] - 1  # b must go too, c need not
    out = run_tk("cache", "prune", "--max-size", str(limit), "--cache-dir", str(cache.root))
    assert out.returncode == 0, out.stderr
    freed = sizes["a_00000001"] + sizes["b_00000002"]
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"pruned 2 build(s) from {cache.root}: freed {format_bytes(freed)} ({freed} bytes)")
    assert [ln.split()[0] for ln in lines[1:]] == ["a_00000001", "b_00000002"]
    assert cache.builds() == ["c_00000003", "d_00000004"]
    assert sum(cache.folder_bytes(n) for n in cache.builds()) <= limit
    # decimal units, as units.format_bytes prints them: 1 MB is more than all that is left
    out = run_tk("cache", "prune", "--max-size", "1MB", "--cache-dir", str(cache.root))
    assert out.stdout.startswith("pruned 0 build(s)") and cache.builds() == ["c_00000003", "d_00000004"]
    out = run_tk("cache", "prune", "--max-size", "0B", "--older-than", "15", "--dry-run",
                 "--cache-dir", str(cache.root))
    assert [ln.split()[0] for ln in out.stdout.splitlines()[1:]] == ["c_00000003", "d_00000004"]
    out = run_tk("cache", "prune", "--cache-dir", str(cache.root))
    assert out.returncode == 1 and "needs --older-than DAYS, --max-size SIZE or both" in out.stderr
    out = run_tk("cache", "prune", "--max-size", "lots", "--cache-dir", str(cache.root))
    assert out.returncode == 2 and "not a size: 'lots'" in out.stderr
