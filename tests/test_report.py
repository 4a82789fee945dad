"""Report rows from real cached records, merging several caches, and the CSV / JSON / Markdown writers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import msgspec
import pytest

from conftest import run_tk
from turnkey_like.cache import Cache
from turnkey_like.errors import CacheError, InputError, one_line
from turnkey_like.records import REPORT_KEYS, SCHEMA_VERSION, BuildRecord, ReportRow, StageResult, Status, SystemInfo
from turnkey_like.report.table import COLUMNS, format_labels, merge_rows, render_markdown, report_rows, write_report

from test_cache import HELLO, hello, pick, real_records, renamed, run_cli, with_latency  # noqa: F401 - fixtures

replace = msgspec.structs.replace


def failed(record: BuildRecord, build_name: str = "two_models_turnkey_11112222") -> BuildRecord:
    """``record`` as another build whose benchmark failed the way the pipeline records it."""
    rec = renamed(record, build_name)
    rec.invocation.benchmark = StageResult(
        status=Status.ERROR, duration_s=0.25, started_at=rec.invocation.benchmark.started_at,
        error=one_line(RuntimeError("ORT session failed: invalid model")),
        log_excerpt="Traceback (most recent call last):\n  ...\nonnxruntime.Fail: bad | node\n")
    return rec


def test_row_values_come_from_the_record(hello):
    (row,) = report_rows([hello])
    assert type(row) is ReportRow and REPORT_KEYS == tuple(COLUMNS)  # the table shows every field, in order
    assert row.values() == tuple(row[k] for k in COLUMNS) and row["class"] == row.class_name
    assert row.macs == HELLO["macs"] and row.flops == HELLO["flops"] and row.params == HELLO["params"]
    assert row.arithmetic_intensity == pytest.approx(HELLO["ai"])
    char = hello.invocation.characterization.result
    assert (char.totals.bytes_read, char.totals.bytes_written) == (HELLO["bytes_read"], HELLO["bytes_written"])
    assert row.bound == char.totals.bound == "memory-bound"  # 0.36 FLOPs/byte: below any ridge point
    assert row.hardware == char.hardware.name
    assert row.labels == format_labels(hello.labels) and row.author == "turnkey"
    assert row.script == "hello_world.py" and row.model == "pytorch_model" and row.class_name == "SmallModel"
    assert row.input_shapes == "x: (10) float32"
    build, bench = hello.invocation.build.result, hello.invocation.benchmark.result
    assert row.opset == build.opset >= 17 and row.exporter == build.exporter and row.precision == "fp32"
    assert row.runtime == "ort" and row.execution_provider == "CPUExecutionProvider"
    assert row.latency_mean_ms == bench.latency_ms.mean > 0 and row.latency_p90_ms == bench.latency_ms.p90
    assert row.throughput_ips == pytest.approx(row.batch_size * 1000 / row.latency_mean_ms)
    assert row.benchmark_status == "successful" and row.benchmark_duration_s == hello.invocation.benchmark.duration_s
    assert row.cpu == hello.system.cpu and row.onnxruntime == bench.runtime_version
    assert row.error is None and row.updated_at == hello.updated_at


def test_summaries_give_the_same_rows_as_full_records(real_cache):
    cache = Cache(real_cache, create=False)
    fast, _ = cache.records()
    full, _ = cache.records(full=True)
    assert report_rows(fast) == report_rows(full)


def test_report_from_the_index_is_the_report_from_the_records(real_cache, tmp_path, capsys):
    """One cache to CSV writes the index's stored CSV lines; JSON decodes the index's rows: both give
    exactly what the records' rows give."""
    from turnkey_like.report.table import render_csv, render_json

    records, _ = Cache(real_cache, create=False).records()
    rows = merge_rows(report_rows(records))
    assert run_cli(["report", "--cache-dir", str(real_cache), "-o", str(tmp_path / "r.csv")]) == 0
    assert (tmp_path / "r.csv").read_text() == render_csv(rows)
    assert run_cli(["report", "--cache-dir", str(real_cache), "-o", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["rows"] == json.loads(render_json(rows))["rows"]
    capsys.readouterr()


def test_missing_values_are_none_and_errors_excerpted(hello):
    (row,) = report_rows([failed(hello)])
    for key in ("runtime", "device", "latency_mean_ms", "latency_std_ms", "throughput_ips", "batch_size"):
        assert row[key] is None, key
    assert row.precision == "fp32"  # from the build, the benchmark having none
    assert row.benchmark_status == "error"
    assert row.error == "benchmark error: RuntimeError: ORT session failed: invalid model | onnxruntime.Fail: bad | node"
    # a record with nothing but discovery: every figure empty, statuses not_started
    bare = replace(hello, invocation=replace(hello.invocation, characterization=StageResult(),
                                             build=StageResult(), benchmark=StageResult()))
    (row,) = report_rows([bare])
    assert row.macs is row.opset is row.hardware is row.characterization_duration_s is None
    assert row.build_status == "not_started" and row.params == HELLO["params"]


def test_format_labels():
    assert format_labels({}) == ""
    assert format_labels({"k": ["v1", "v2"], "k2": ["v"]}) == "k::v1,v2 k2::v"


def test_write_csv_json_md(tmp_path, real_records):
    rows = report_rows([pick(real_records, "hello_world"), failed(pick(real_records, "two_models_turnkey_c69b7dea"))])
    write_report(rows, tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(COLUMNS)
        got = list(reader)
    assert [r["build_name"] for r in got] == ["hello_world_turnkey_f93db89f", "two_models_turnkey_11112222"]
    # plain numbers in base units, missing values empty
    assert got[0]["macs"] == "50" and float(got[0]["latency_mean_ms"]) == rows[0].latency_mean_ms
    assert got[1]["macs"] == "500" and got[1]["latency_mean_ms"] == ""  # Linear(50, 10): 50 x 10 MACs
    assert "|" in got[1]["error"]  # the log's pipe survives CSV quoting

    write_report(rows, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["tk_version"]
    assert data["columns"] == {k: c.title for k, c in COLUMNS.items()}
    assert data["rows"][1]["flops"] == 1000 and data["rows"][1]["throughput_ips"] is None
    assert data["rows"][0]["latency_mean_ms"] == rows[0].latency_mean_ms

    write_report(rows, tmp_path / "r.txt", "md")
    md = (tmp_path / "r.txt").read_text().splitlines()
    assert md[0].startswith("MACs are multiply-accumulates (1 MAC = 2 FLOPs)")
    header, rule, *body = md[2:]
    assert "| FLOPs (1 MAC = 2 FLOPs) |" in header and "| Latency mean |" in header
    assert header.count(" | ") == rule.count("|") - 2 == len(COLUMNS) - 1
    assert len(body) == 2
    assert "bad \\| node" in body[1]  # a pipe in a value is escaped, the column count holds
    assert body[1].replace("\\|", "").count("|") == len(COLUMNS) + 1
    cells = dict(zip([COLUMNS[k].title for k in COLUMNS], (c.strip() for c in body[1].split(" | "))))
    assert cells["FLOPs (1 MAC = 2 FLOPs)"] == "1 k" and cells["Params"] == "510"  # units.si, decimal
    assert cells["Arithmetic intensity (FLOPs/byte)"] == "0.439"  # 1000 / (2240 + 40)
    assert cells["Latency mean"] == "" and cells["Benchmark duration"] == "250 ms"

    with pytest.raises(InputError, match="unknown report format"):
        write_report(rows, tmp_path / "r.xlsx", "xlsx")


def test_merge_rows_keeps_one_row_per_evaluation(hello):
    old = with_latency(hello, 2.0)
    old.updated_at = "2026-01-01T00:00:00+00:00"
    new = with_latency(hello, 1.0)
    new.updated_at = "2026-02-01T00:00:00+00:00"
    other_machine = replace(with_latency(hello, 3.0), system=replace(hello.system, cpu="Other CPU"))
    merged = merge_rows(report_rows([old]), report_rows([new, other_machine]))
    assert sorted(r.latency_mean_ms for r in merged) == pytest.approx([1.0, 3.0])  # newest; other CPU kept


def test_cli_report_merges_two_caches(tmp_path, capsys, hello):
    a, b = Cache(tmp_path / "a"), Cache(tmp_path / "b")
    a.save(with_latency(renamed(hello, "x_00000001"), 1.0))
    a.save(with_latency(renamed(hello, "y_00000002"), 2.0))
    b.save(with_latency(renamed(hello, "y_00000002"), 2.5))  # same evaluation, re-run later
    b.save(with_latency(renamed(hello, "z_00000003"), 3.0))
    out = tmp_path / "merged.csv"
    assert run_cli(["report", "--cache-dir", str(tmp_path / "a"), "--cache-dir", str(tmp_path / "b"), "-o", str(out)]) == 0
    assert f"wrote 3 row(s) from 2 cache(s) to {out}" in capsys.readouterr().out
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["build_name"], float(r["latency_mean_ms"])) for r in rows] == [
        ("x_00000001", pytest.approx(1.0)), ("y_00000002", pytest.approx(2.5)), ("z_00000003", pytest.approx(3.0))]
    with pytest.raises(CacheError, match="no tk cache at"):
        run_cli(["report", "--cache-dir", str(tmp_path / "nope"), "-o", str(out)])


def test_cli_report_default_path_and_format(tmp_path, capsys, monkeypatch, real_cache):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TK_CACHE_DIR", str(real_cache))
    assert run_cli(["report", "--format", "md"]) == 0
    msg = capsys.readouterr().out
    (path,) = list(tmp_path.glob("tk_report_*.md"))
    assert str(path) in msg and path.read_text().count("\n| ") == 4  # header + 3 rows
    assert run_cli(["report", "-o", str(tmp_path / "r.json")]) == 0  # format from the extension
    assert len(json.loads(Path(tmp_path / "r.json").read_text())["rows"]) == 3


def _steady(record: BuildRecord) -> BuildRecord:
    """``record`` with what changes from run to run (timings, times, machine) set to fixed values."""
    inv = record.invocation
    bench = inv.benchmark.result
    latency = msgspec.structs.replace(bench.latency_ms, mean=1.5, median=1.5, p90=1.65, p99=1.8, min=1.35, max=1.95,
                                      std=0.01)
    bench = replace(bench, latency_ms=latency, throughput_ips=bench.batch_size * 1000 / 1.5, device_name="Test CPU",
                    runtime_version="1.31.1")
    inv = replace(inv, characterization=replace(inv.characterization, duration_s=0.2),
                  build=replace(inv.build, duration_s=1.0),
                  benchmark=replace(inv.benchmark, duration_s=2.0, result=bench,
                                    run_id="2026-01-01T00:00:00+00:00-1234"))
    return replace(record, invocation=inv, tk_version="0.0.0", updated_at="2026-01-01T00:00:00+00:00",
                   system=SystemInfo(cpu="Test CPU", os="Linux 6.1", torch="2.14.1", onnxruntime="1.31.1"))


def test_markdown_golden(golden, real_records):
    """The Markdown layout users paste into issues; regenerate with `pytest --overwrite` and review."""
    records = [_steady(r) for r in real_records.values()]
    records.append(failed(records[0], "hello_world_turnkey_11112222"))
    golden("report_table.md", render_markdown(report_rows(records)))


def test_sweep_table_golden(tmp_path, golden):
    """``tk profile --model resnet18 --imgsz 32,64`` on the datasheet a100 profile: the sweep table
    (one row per point: MACs, bytes, arithmetic intensity, bound, roofline time; no latency without a
    benchmark) is golden; its figures are counted from shapes or derived from the datasheet's peaks."""
    out = run_tk("profile", "--model", "resnet18", "--imgsz", "32,64", "--hardware", "a100", "--top", "1",
                 "--cache-dir", str(tmp_path / "cache"), env={"COLUMNS": "160"})
    assert out.returncode == 0, out.stdout + out.stderr
    start = out.stdout.index("sweep: resnet18")
    table = out.stdout[start:out.stdout.index("\n\n", start) + 1]
    assert len(table.splitlines()) == 5  # title, header, rule, one row per point
    golden("sweep_resnet18_imgsz.txt", table)


def test_renderers_import_no_layer_above_the_records():
    """``report/`` never imports ``views/``; neither imports a runtime, the CLI or the corpus runner;
    ``views/`` never imports the pipeline (the imports of every module, read from its source)."""
    import ast

    package = Path(__file__).resolve().parents[1] / "turnkey_like"
    forbidden = {"report": ("turnkey_like.views", "turnkey_like.runtimes", "turnkey_like.cli", "turnkey_like.corpus"),
                 "views": ("turnkey_like.pipeline", "turnkey_like.runtimes", "turnkey_like.cli", "turnkey_like.corpus")}
    found = []
    for folder, prefixes in forbidden.items():
        for path in sorted((package / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                found += [f"{folder}/{path.name}: {n}" for n in names if n.startswith(prefixes)]
    assert found == []


# ------------------------------------------------------------------------------ safe reports (reliability 4)
#: A script whose labels, file name, model variable and class name each carry a payload: spreadsheet
#: formulas (``= + - @``, a leading tab), HTML (``<script>``, ``<img onerror>``, ``<svg onload>``),
#: a Markdown link to ``javascript:``, table pipes and rich console markup.
PAYLOAD_SCRIPT = """\
# labels: name::=HYPERLINK("http://evil.example")<script>alert(1)</script> author::@SUM(A1) \
task::-2+3+cmd|'/C_calc'!A0 html::<img/src=x/onerror=alert(2)> md::[click](javascript:alert(5))|pipe
import torch

Evil = type("\\t<img src=x onerror=alert(4)>[red]rich[/red]", (torch.nn.Module,), {
    "__init__": lambda self: (torch.nn.Module.__init__(self), setattr(self, "fc", torch.nn.Linear(4, 2)))[0],
    "forward": lambda self, x: self.fc(x),
})
globals()["=SUM(1)+cmd|x"] = Evil()
globals()["=SUM(1)+cmd|x"](torch.rand(1, 4))
"""
PAYLOAD_FILE = "=1+2 <svg onload=alert(3)>.py"
CLASS_PAYLOAD = "\t<img src=x onerror=alert(4)>[red]rich[/red]"
RAW_HTML = ("<script>alert(1)", "<img/src=x/onerror", "<svg onload", "<img src=x onerror")


def test_csv_cells_a_spreadsheet_would_evaluate_are_neutralised_numbers_stay_numbers():
    """OWASP's CSV Injection guidance: a cell starting with ``= + - @``, tab, carriage return (or NUL)
    gets a single quote in front and is quoted; typed numbers, negative ones included, and text that
    is exactly a decimal number are written as they are."""
    from turnkey_like.records.report import csv_cell

    assert [csv_cell(v) for v in ("=1+2", "+A1", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\tx", "\rx", "\0x")] == [
        "\"'=1+2\"", "\"'+A1\"", "\"'-2+3+cmd|' /C calc'!A0\"", "\"'@SUM(A1)\"", "\"'\tx\"", "\"'\rx\"", "\"'\0x\""]
    assert [csv_cell(v) for v in (-3, -1.5, -2.5e-07, 0, True, None)] == ["-3", "-1.5", "-2.5e-07", "0", "True", ""]
    assert [csv_cell(v) for v in ("-5", "+1.5e3", ".5")] == ["-5", "+1.5e3", ".5"]  # plain numbers: no formula
    assert csv_cell('=HYPERLINK("x")') == "\"'=HYPERLINK(\"\"x\"\")\""  # quotes doubled inside (RFC 4180)
    assert csv_cell("a,b") == '"a,b"' and csv_cell("a\rb") == '"a\rb"' and csv_cell("plain") == "plain"


def test_every_report_format_shows_payloads_as_text(tmp_path):
    """A real run on a script holding each payload, then every format: the terminal, CSV, JSON,
    Markdown and the HTML page show the payloads as text and run none of them.

    Before: CSV wrote ``=1+2 ...`` and ``@SUM(A1)`` as they are (a spreadsheet evaluates them), and
    Markdown copied ``<script>``, ``<img onerror>`` and ``[click](javascript:...)`` verbatim."""
    script, cache = tmp_path / PAYLOAD_FILE, tmp_path / "cache"
    script.write_text(PAYLOAD_SCRIPT)
    run = run_tk("benchmark", str(script), "--hardware", "a100", "--iterations", "3", "--cache-dir", str(cache))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[red]rich[/red]" in run.stdout and "\x1b" not in run.stdout  # no console markup or escapes run
    reports = {}
    for fmt in ("csv", "json", "md", "html"):
        out = run_tk("report", "--cache-dir", str(cache), "--format", fmt, "-o", str(tmp_path / f"r.{fmt}"))
        assert out.returncode == 0, out.stderr
        reports[fmt] = (tmp_path / f"r.{fmt}").read_text(encoding="utf-8")

    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["script"] == "'" + PAYLOAD_FILE and row["model"] == "'=SUM(1)+cmd|x"
    assert row["class"] == "'" + CLASS_PAYLOAD and row["author"] == "'@SUM(A1)"
    assert row["task"] == "'-2+3+cmd|'/C_calc'!A0"
    assert row["params"] == "10" and float(row["latency_mean_ms"]) > 0  # numbers stay numbers
    for key, cell in row.items():  # nothing left that a spreadsheet would evaluate
        assert not cell[:1] in "=+-@\t\r" or not cell, (key, cell)
    assert "\"'=1+2 <svg onload=alert(3)>.py\"" in reports["csv"]  # neutralised cells are quoted too

    (json_row,) = json.loads(reports["json"])["rows"]  # JSON is data: the text exactly as it was
    assert json_row["script"] == PAYLOAD_FILE and json_row["class"] == CLASS_PAYLOAD
    assert json_row["author"] == "@SUM(A1)" and "<script>alert(1)</script>" in json_row["labels"]

    md_row = reports["md"].splitlines()[-1]
    for payload in RAW_HTML + ("[click](javascript", "</script>"):
        assert payload not in reports["md"], payload
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md_row and "\\[click\\](javascript:alert(5))\\|pipe" in md_row
    assert md_row.replace("\\|", "").count("|") == len(COLUMNS) + 1  # the payloads' pipes split no cell

    for payload in RAW_HTML:
        assert payload not in reports["html"], payload
    assert "&lt;img src=x onerror=alert(4)&gt;" in reports["html"]


def test_per_module_table_folds_identical_layers_into_one_row_and_no_fold_prints_them_all():
    # A real 4-layer BERT: its layers are one run of identical blocks, so the table prints layer 0
    # in full, then one row "1 … 3" carrying layer 0's figures (each block's), and nothing inside
    # layers 1-3; the encoder's row still holds all four. Without folding every layer prints.
    import torch
    from rich.console import Console
    from transformers import BertConfig, BertModel

    from turnkey_like.characterize import characterize
    from turnkey_like.report.characterization import render_modules
    from turnkey_like.units import si

    model = BertModel(BertConfig(num_hidden_layers=4, hidden_size=64, num_attention_heads=2,
                                 intermediate_size=128)).eval()
    char = characterize(model, torch.zeros(1, 8, dtype=torch.long), hardware="a100")
    [run] = char.identical_runs()
    assert run.paths == [f"encoder.layer.{i}" for i in range(4)]

    def table(fold: bool) -> list[str]:
        console = Console(record=True, width=200)
        render_modules(char, console, fold=fold)
        return console.export_text().splitlines()

    folded, unfolded = table(True), table(False)
    [row] = [line for line in folded if "BertLayer ×3, each as 0" in line]
    assert row.split()[:2] == ["1", "…"]
    layer0 = next(m for m in char.modules if m.path == "encoder.layer.0")
    assert si(layer0.macs) in row and si(layer0.params) in row
    per_layer = len([m for m in char.modules if m.path.startswith("encoder.layer.0")])
    assert len(unfolded) - len(folded) == 3 * per_layer - 1
    assert sum(line.split()[:2] == [str(i), "BertLayer"] for i in range(4) for line in unfolded) == 4
    assert sum(line.split()[:2] == ["0", "BertLayer"] for line in folded) == 1
