"""The cache: names, atomic save/load/update, records(), delete/clean/files, and `tk cache ...` commands."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from turnkey_like.cache import BUILD_MARKER, RECORD_FILE, ROOT_MARKER, SUMMARY_FILE, Cache, resolve_root
from turnkey_like.errors import CacheError, InputError
from turnkey_like.records import BuildRecord, Invocation, ModelInfo, StageResult, Status, TensorSpec

REPO = Path(__file__).resolve().parents[1]


def make_record(build_name: str = "resnet_tiny_0a1b2c3d", *, inv_hash: str = "0a1b2c3d", script: str = "/s/resnet_tiny.py",
                labels: dict | None = None, latency_ms: float | None = 1.5, system: dict | None = None,
                model_name: str = "model", class_name: str = "Linear") -> BuildRecord:
    """A record as the pipeline writes it after all three stages of a Linear(4, 3) on a (2, 4) input.

    Hand-derived figures: MACs = 2 rows x 4 in x 3 out = 24; FLOPs = 2 x 24 = 48;
    bytes read = (2*4 input + 4*3 weight + 3 bias) x 4 B = 92; written = 2*3 x 4 B = 24;
    arithmetic intensity = 48 / 116 = 0.41379...
    """
    labels = {"author": ["alice"], "task": ["Classification"]} if labels is None else labels
    inv = Invocation(
        hash=inv_hash, parent_hash=None,
        signature=[TensorSpec("Positional Arg 1", "tensor", (2, 4), "float32", "cpu")],
        executed=1, time_s=0.001, build_name=build_name,
        characterization=StageResult(Status.SUCCESSFUL, duration_s=0.2, result={
            "totals": {"macs": 24, "conv_matmul_macs": 24, "flops": 48, "bytes_read": 92, "bytes_written": 24,
                       "arithmetic_intensity": 48 / 116, "bound": "memory", "roofline_time_s": 1e-9},
            "hardware": {"name": "generic-cpu"}}),
        build=StageResult(Status.SUCCESSFUL, duration_s=1.0, result={
            "opset": 17, "exporter": "dynamo", "precision": "fp32", "onnx_path": "model.onnx", "size_bytes": 400,
            "faithful": True}),
        benchmark=StageResult(Status.SUCCESSFUL, duration_s=2.0, result=None if latency_ms is None else {
            "runtime": "ort", "runtime_version": "1.31.1", "execution_provider": "CPUExecutionProvider",
            "device": "cpu", "device_name": "Test CPU", "threads": 2, "iterations": 100, "warmup_iterations": 10,
            "latency_ms": {"mean": latency_ms, "median": latency_ms, "p90": latency_ms * 1.1, "p99": latency_ms * 1.2,
                           "min": latency_ms * 0.9, "max": latency_ms * 1.3, "std": 0.01},
            "throughput_ips": 2 * 1000.0 / latency_ms, "batch_size": 2, "peak_memory_bytes": 1 << 20,
            "precision": "fp32"}),
    )
    model = ModelInfo(name=model_name, class_name=class_name, qualified_class=f"torch.nn.{class_name}",
                      model_hash="5f3e2d1c", params=15, param_bytes=60, source_file=script, source_line=3)
    return BuildRecord(build_name=build_name, script=script, labels=labels, model=model, invocation=inv,
                       system=system if system is not None else {"cpu": "Test CPU", "os": "Linux 6.1",
                                                                  "torch": "2.14.1", "onnxruntime": "1.31.1"})


def run_cli(argv: list[str]) -> int:
    """Parse ``argv`` with a parser that has only the cache commands registered, and run the handler."""
    from turnkey_like.cli.cache_commands import register

    parser = argparse.ArgumentParser(prog="tk")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# ------------------------------------------------------------------------------------------- root
def test_root_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TK_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_root(None) == tmp_path / "env"
    monkeypatch.delenv("TK_CACHE_DIR")
    assert resolve_root(None) == Path("~/.cache/turnkey_like").expanduser()


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


# ------------------------------------------------------------------------------------------- save/load
def test_save_load_round_trip_and_json_on_disk(tmp_path):
    cache = Cache(tmp_path)
    rec = make_record()
    cache.save(rec)
    folder = tmp_path / rec.build_name
    assert (folder / BUILD_MARKER).is_file()
    data = json.loads((folder / RECORD_FILE).read_text())  # JSON, never pickle
    assert data["schema_version"] == 1 and data["invocation"]["benchmark"]["status"] == "successful"
    loaded = cache.load(rec.build_name)
    assert loaded == rec  # every field survives, enums included
    assert loaded.created_at and loaded.updated_at and loaded.tk_version
    # no temp files left after atomic writes
    assert sorted(p.name for p in folder.iterdir()) == [".lock", SUMMARY_FILE, BUILD_MARKER, RECORD_FILE]


def test_save_replaces_atomically_and_keeps_created_at(tmp_path):
    cache = Cache(tmp_path)
    rec = make_record()
    cache.save(rec)
    inode = os.stat(tmp_path / rec.build_name / RECORD_FILE).st_ino
    created = rec.created_at
    rec.invocation.executed = 7
    cache.save(rec)
    # os.replace puts a new file in place: a reader holding the old one still sees a whole record
    assert os.stat(tmp_path / rec.build_name / RECORD_FILE).st_ino != inode
    again = cache.load(rec.build_name)
    assert again.invocation.executed == 7 and again.created_at == created


def test_update_is_read_modify_write(tmp_path):
    cache = Cache(tmp_path)
    cache.save(make_record())

    def bump(r):
        r.invocation.build.status = Status.RUNNING
        r.invocation.build.pid = os.getpid()

    out = cache.update("resnet_tiny_0a1b2c3d", bump)
    assert out.invocation.build.status == Status.RUNNING
    loaded = cache.load("resnet_tiny_0a1b2c3d")
    assert loaded.invocation.build.status == Status.RUNNING  # this process is alive: not killed
    with pytest.raises(CacheError, match="no build named"):
        cache.update("resnet_tiny_0a1b2c3e", bump)


def test_unknown_build_suggests_closest_names(tmp_path):
    cache = Cache(tmp_path)
    for name, h in (("resnet50_torchvision_c69b7dea", "c69b7dea"), ("bert_hf_11112222", "11112222")):
        cache.save(make_record(name, inv_hash=h))
    with pytest.raises(CacheError) as e:
        cache.load("resnet50_torchvison_c69b7dea")  # typo
    assert "resnet50_torchvision_c69b7dea" in e.value.hint
    with pytest.raises(CacheError) as e:
        cache.load("c69b7dea")  # just the hash: substring match
    assert e.value.hint == "did you mean: resnet50_torchvision_c69b7dea?"
    with pytest.raises(CacheError) as e:
        cache.load("zzzzzzzzzz")
    assert "tk cache list" in e.value.hint


def test_records_and_builds(tmp_path):
    cache = Cache(tmp_path)
    for i in range(3):
        cache.save(make_record(f"m{i}_0000000{i}", inv_hash=f"0000000{i}"))
    (tmp_path / "not_a_build").mkdir()  # a stray folder without a marker is ignored
    assert cache.builds() == ["m0_00000000", "m1_00000001", "m2_00000002"]
    records, problems = cache.records()
    assert [r.build_name for r in records] == cache.builds() and problems == []


def test_records_reads_summaries_without_bulky_detail_but_never_stale_ones(tmp_path):
    cache = Cache(tmp_path)
    rec = make_record()
    rec.invocation.characterization.result["nodes"] = [{"op": "aten::addmm", "macs": 24}]
    rec.invocation.characterization.result["modules"] = {f"m{i}": {"macs": i} for i in range(500)}
    cache.save(rec)
    (fast,), _ = cache.records()
    result = fast.invocation.characterization.result
    assert "nodes" not in result and "modules" not in result  # the list and the 500-key dict are left out
    assert result["totals"]["macs"] == 24 and fast.invocation.benchmark.result["latency_ms"]["mean"] == 1.5
    (full,), _ = cache.records(full=True)
    assert full == cache.load(rec.build_name) and full.invocation.characterization.result["nodes"][0]["macs"] == 24
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


# ------------------------------------------------------------------------------------------- delete/clean/files
def _with_artifacts(cache: Cache, name: str) -> Path:
    cache.save(make_record(name))
    folder = cache.build_dir(name)
    (folder / "model.onnx").write_bytes(b"\0" * 1000)
    (folder / "model.onnx.data").write_bytes(b"\0" * 500)
    (folder / "build.log").write_text("exported\n")
    (folder / "logs").mkdir()
    (folder / "logs" / "benchmark.log").write_text("ok\n")
    (folder / "raw").mkdir()
    (folder / "raw" / "latencies.npy").write_bytes(b"\0" * 24)
    return folder


def test_files_clean_and_delete(tmp_path):
    cache = Cache(tmp_path)
    folder = _with_artifacts(cache, "a_00000001")
    _with_artifacts(cache, "b_00000002")
    files = dict(cache.files("a_00000001"))
    assert files["model.onnx"] == 1000 and files["raw/latencies.npy"] == 24 and RECORD_FILE in files
    freed = cache.clean(["a_00000001"])
    assert freed == {"a_00000001": 1000 + 500 + 24}
    left = {p for p, _ in cache.files("a_00000001")}
    assert left == {".lock", BUILD_MARKER, RECORD_FILE, SUMMARY_FILE, "build.log", "logs/benchmark.log"}
    assert not (folder / "raw").exists()
    assert cache.load("a_00000001").build_name == "a_00000001"  # record still readable
    with pytest.raises(CacheError, match="no build named"):
        cache.delete(["a_00000001", "nope_00000000"])  # checked before anything is removed
    assert folder.exists()
    assert cache.delete(["a_00000001"]) == ["a_00000001"]
    assert cache.builds() == ["b_00000002"]


def test_delete_refuses_folder_without_build_marker(tmp_path):
    cache = Cache(tmp_path)
    (tmp_path / "precious_00000000").mkdir()
    (tmp_path / "precious_00000000" / "thesis.tex").write_text("x")
    with pytest.raises(CacheError, match="not a tk build folder"):
        cache.delete(["precious_00000000"])
    assert (tmp_path / "precious_00000000" / "thesis.tex").exists()


# ------------------------------------------------------------------------------------------- commands
def test_cli_list_prints_builds_and_statuses(tmp_path, capsys):
    cache = Cache(tmp_path)
    cache.save(make_record("resnet_tiny_alice_0a1b2c3d", latency_ms=1.5))
    failed = make_record("bert_alice_11112222", inv_hash="11112222", latency_ms=None, class_name="BertModel")
    failed.invocation.benchmark = StageResult(Status.ERROR, duration_s=0.1, error="ORT session failed")
    cache.save(failed)
    assert run_cli(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 build(s)" in out
    lines = {ln.split()[1]: ln for ln in out.splitlines() if "_alice_" in ln}
    assert "1.500" in lines["resnet_tiny_alice_0a1b2c3d"] and lines["resnet_tiny_alice_0a1b2c3d"].count("successful") == 3
    assert "error" in lines["bert_alice_11112222"] and "BertModel" in lines["bert_alice_11112222"]

    assert run_cli(["cache", "list", "--json", "--cache-dir", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [b["build_name"] for b in data["builds"]] == ["bert_alice_11112222", "resnet_tiny_alice_0a1b2c3d"]


def test_cli_list_plain_table_for_many_builds(tmp_path, capsys, monkeypatch):
    from turnkey_like.cli import cache_commands

    cache = Cache(tmp_path)
    cache.save(make_record("resnet_tiny_alice_0a1b2c3d", latency_ms=1.5))
    cache.save(make_record("bert_alice_11112222", inv_hash="11112222", latency_ms=12.25, class_name="BertModel"))
    monkeypatch.setattr(cache_commands, "RICH_MAX_ROWS", 1)  # the plain renderer takes over above this
    assert run_cli(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"2 build(s) in {tmp_path}"
    assert lines[1].split() == ["Build", "Script", "Model", "Class", "Characterize", "Build", "Benchmark",
                                "Latency", "mean", "(ms)"]
    assert lines[3].split() == ["bert_alice_11112222", "resnet_tiny.py", "model", "BertModel", "successful",
                                "successful", "successful", "12.250"]
    assert len({len(ln) for ln in lines[1:]}) == 1  # aligned: latency right-justified to the header's width


def test_cli_stats_shows_record_files_and_system(tmp_path, capsys):
    cache = Cache(tmp_path)
    _with_artifacts(cache, "resnet_tiny_0a1b2c3d")
    assert run_cli(["cache", "stats", "resnet_tiny_0a1b2c3d", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    sizes = {ln.split("│")[1].strip(): int(ln.split("│")[3]) for ln in out.splitlines() if ln.count("│") == 4}
    assert sizes["model.onnx"] == 1000 and sizes["model.onnx.data"] == 500 and sizes["raw/latencies.npy"] == 24
    assert sizes["total"] == sum(v for k, v in sizes.items() if k != "total")
    assert "1000 B" in out
    assert "Test CPU" in out and "2.14.1" in out  # system info
    assert "FLOPs (1 MAC = 2 FLOPs)" in out and "48" in out
    assert run_cli(["cache", "stats", "--json", "resnet_tiny_0a1b2c3d", "--cache-dir", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["record"]["invocation"]["characterization"]["result"]["totals"]["macs"] == 24
    with pytest.raises(CacheError) as e:
        run_cli(["cache", "stats", "resnet_tiny_0a1b2c3e", "--cache-dir", str(tmp_path)])
    assert "resnet_tiny_0a1b2c3d" in e.value.hint


def test_cli_delete_clean_location(tmp_path, capsys, monkeypatch):
    cache = Cache(tmp_path)
    for n in ("a_00000001", "b_00000002", "c_00000003"):
        _with_artifacts(cache, n)
    assert run_cli(["cache", "clean", "--all", "--cache-dir", str(tmp_path)]) == 0
    assert "freed" in capsys.readouterr().out
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


def test_cache_list_does_not_import_torch(tmp_path):
    cache = Cache(tmp_path)
    cache.save(make_record())
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
