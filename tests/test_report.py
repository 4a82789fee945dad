"""Report rows from cached records, merging several caches, and the CSV / JSON / Markdown writers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from turnkey_like.cache import Cache
from turnkey_like.errors import CacheError, InputError
from turnkey_like.records import StageResult, Status
from turnkey_like.report.table import COLUMNS, format_labels, merge_rows, report_rows, write_report

from test_cache import make_record, run_cli  # noqa: E402 - pytest puts tests/ on sys.path


def _failed_record():
    rec = make_record("bert_hf_11112222", inv_hash="11112222", latency_ms=None, class_name="BertModel",
                      labels={"author": ["huggingface"], "task": ["Natural_Language_Processing"], "group": ["a", "b"]})
    rec.invocation.benchmark = StageResult(
        Status.ERROR, duration_s=0.25, error="ORT session failed: invalid model",
        log_excerpt="Traceback (most recent call last):\n  ...\nonnxruntime.Fail: bad | node\n")
    return rec


def test_row_values_come_from_the_record():
    (row,) = report_rows([make_record()])
    assert list(row) == list(COLUMNS)
    # hand-derived for Linear(4, 3) on a (2, 4) input (see make_record): MACs 24, FLOPs 48, AI 48/116
    assert row["macs"] == 24 and row["flops"] == 48
    assert row["arithmetic_intensity"] == pytest.approx(0.41379, rel=1e-4)
    assert row["bound"] == "memory" and row["hardware"] == "generic-cpu"
    assert row["labels"] == "author::alice task::Classification" and row["author"] == "alice"
    assert row["task"] == "Classification" and row["script"] == "resnet_tiny.py"
    assert row["input_shapes"] == "Positional Arg 1: (2, 4) float32"
    assert row["opset"] == 17 and row["exporter"] == "dynamo" and row["precision"] == "fp32"
    assert row["latency_mean_ms"] == 1.5 and row["latency_p90_ms"] == pytest.approx(1.65)
    assert row["throughput_ips"] == pytest.approx(2000 / 1.5)  # batch 2 / 1.5 ms
    assert row["benchmark_status"] == "successful" and row["benchmark_duration_s"] == 2.0
    assert row["cpu"] == "Test CPU" and row["onnxruntime"] == "1.31.1" and row["error"] == ""


def test_missing_values_are_empty_and_errors_excerpted():
    (row,) = report_rows([_failed_record()])
    for key in ("runtime", "device", "latency_mean_ms", "latency_std_ms", "throughput_ips", "batch_size"):
        assert row[key] == "", key
    assert row["precision"] == "fp32"  # from the build, the benchmark having none
    assert row["benchmark_status"] == "error"
    assert row["error"] == "benchmark error: ORT session failed: invalid model | onnxruntime.Fail: bad | node"
    assert row["labels"] == "author::huggingface task::Natural_Language_Processing group::a,b"
    # a record with nothing but discovery: every figure empty, statuses not_started
    bare = make_record(latency_ms=None)
    for stage in bare.invocation.stages().values():
        stage.status, stage.result, stage.duration_s = Status.NOT_STARTED, None, None
    (row,) = report_rows([bare])
    assert row["macs"] == row["opset"] == row["hardware"] == row["characterization_duration_s"] == ""
    assert row["build_status"] == "not_started"


def test_format_labels():
    assert format_labels({}) == ""
    assert format_labels({"k": ["v1", "v2"], "k2": ["v"]}) == "k::v1,v2 k2::v"


def test_write_csv_json_md(tmp_path):
    rows = report_rows([make_record(), _failed_record()])
    write_report(rows, tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(COLUMNS)
        got = list(reader)
    assert [r["build_name"] for r in got] == ["bert_hf_11112222", "resnet_tiny_0a1b2c3d"]
    assert got[1]["macs"] == "24" and got[1]["latency_mean_ms"] == "1.5" and got[0]["latency_mean_ms"] == ""
    assert "|" in got[0]["error"]  # the log's pipe survives CSV quoting

    write_report(rows, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data[1]["flops"] == 48 and data[0]["throughput_ips"] == ""

    write_report(rows, tmp_path / "r.txt", "md")
    md = (tmp_path / "r.txt").read_text().splitlines()
    assert md[0].startswith("MACs are multiply-accumulates (1 MAC = 2 FLOPs)")
    header, rule, *body = md[2:]
    assert "| FLOPs (1 MAC = 2 FLOPs) |" in header and "| Latency mean (ms) |" in header
    assert header.count(" | ") == rule.count("|") - 2 == len(COLUMNS) - 1
    assert len(body) == 2
    assert "bad \\| node" in body[0]  # a pipe in a value is escaped, the column count holds
    assert body[0].replace("\\|", "").count("|") == len(COLUMNS) + 1
    assert "| 0.413793 |" in body[1]

    with pytest.raises(InputError, match="unknown report format"):
        write_report(rows, tmp_path / "r.xlsx", "xlsx")


def test_merge_rows_keeps_one_row_per_evaluation():
    old = make_record(latency_ms=2.0)
    old.updated_at = "2026-01-01T00:00:00+00:00"
    new = make_record(latency_ms=1.0)
    new.updated_at = "2026-02-01T00:00:00+00:00"
    other_machine = make_record(latency_ms=3.0, system={"cpu": "Other CPU", "os": "Linux 6.1", "torch": "2.14.1",
                                                        "onnxruntime": "1.31.1"})
    merged = merge_rows(report_rows([old]), report_rows([new, other_machine]))
    assert sorted(r["latency_mean_ms"] for r in merged) == [1.0, 3.0]  # newest of the duplicates; other CPU kept


def test_cli_report_merges_two_caches(tmp_path, capsys):
    a, b = Cache(tmp_path / "a"), Cache(tmp_path / "b")
    a.save(make_record("x_00000001", inv_hash="00000001", latency_ms=1.0))
    a.save(make_record("y_00000002", inv_hash="00000002", latency_ms=2.0))
    b.save(make_record("y_00000002", inv_hash="00000002", latency_ms=2.5))  # same evaluation, re-run later
    b.save(make_record("z_00000003", inv_hash="00000003", latency_ms=3.0))
    out = tmp_path / "merged.csv"
    assert run_cli(["report", "--cache-dir", str(tmp_path / "a"), "--cache-dir", str(tmp_path / "b"), "-o", str(out)]) == 0
    assert f"wrote 3 row(s) from 2 cache(s) to {out}" in capsys.readouterr().out
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["build_name"], r["latency_mean_ms"]) for r in rows] == [
        ("x_00000001", "1.0"), ("y_00000002", "2.5"), ("z_00000003", "3.0")]
    with pytest.raises(CacheError, match="no tk cache at"):
        run_cli(["report", "--cache-dir", str(tmp_path / "nope"), "-o", str(out)])


def test_cli_report_default_path_and_format(tmp_path, capsys, monkeypatch):
    cache = Cache(tmp_path / "c")
    cache.save(make_record())
    cache.save(_failed_record())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TK_CACHE_DIR", str(tmp_path / "c"))
    assert run_cli(["report", "--format", "md"]) == 0
    msg = capsys.readouterr().out
    (path,) = list(tmp_path.glob("tk_report_*.md"))
    assert str(path) in msg and path.read_text().count("\n| ") == 3  # header + 2 rows
    assert run_cli(["report", "-o", str(tmp_path / "r.json")]) == 0  # format from the extension
    assert len(json.loads(Path(tmp_path / "r.json").read_text())) == 2


def test_markdown_golden(golden):
    """The Markdown layout users paste into issues; regenerate with `pytest --overwrite` and review."""
    golden("report_table.md", write_report_text())


def write_report_text() -> str:
    from turnkey_like.report.table import render_markdown

    return render_markdown(report_rows([make_record(), _failed_record()]))  # unsaved: no times, fixed content
