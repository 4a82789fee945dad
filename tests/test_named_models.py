"""`--model NAME` on the one pipeline (issue 10): a named model is an invocation like a discovered one
(same hashes, same records, same cache), its build folder says where it came from, list-valued sizes
make a sweep, and named models mix with scripts in one run. Real `tk` processes, real models."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from conftest import run_tk
from turnkey_like.cache import Cache
from turnkey_like.records import RunReport, decode


def _report(path: Path) -> RunReport:
    return decode(path.read_bytes(), RunReport)


def test_a_named_model_has_the_same_hashes_as_the_script_that_calls_it_and_they_mix(tmp_path):
    script = tmp_path / "calls_resnet18.py"
    script.write_text(textwrap.dedent("""
        import torch, torchvision
        model = torchvision.models.resnet18(weights=None)
        model.eval()
        with torch.no_grad():
            model(torch.rand(1, 3, 64, 64))
        """))
    report = tmp_path / "run.json"
    cache = tmp_path / "cache"
    out = run_tk("profile", str(script), "--model", "resnet18", "--imgsz", "64", "--hardware", "a100",
                 "--cache-dir", str(cache), "--json", str(report))
    assert out.returncode == 0, out.stdout + out.stderr
    scripted, named = _report(report).results
    (s_model,), (n_model,) = scripted.models, named.models
    assert n_model.name == "resnet18" and n_model.model_hash == s_model.model_hash
    assert n_model.invocations[0].hash == s_model.invocations[0].hash
    s_char, n_char = (m.invocations[0].characterization.result for m in (s_model, n_model))
    assert n_char.totals.macs == s_char.totals.macs > 0
    request = named.model_request
    assert request.source == "torchvision" and request.imgsz == 64 and request.seed == 0 and not request.pretrained
    names = Cache(cache, create=False).builds()
    inv_hash = n_model.invocations[0].hash
    assert f"resnet18_torchvision_{inv_hash}" in names and f"calls_resnet18_{inv_hash}" in names
    stored = Cache(cache, create=False).load(f"resnet18_torchvision_{inv_hash}")
    assert stored.model_request.source == "torchvision" and stored.model_request.imgsz == 64
    assert "named model from torchvision" in out.stdout


def test_a_sweep_is_one_invocation_per_point_with_a_sweep_table(tmp_path):
    report = tmp_path / "run.json"
    out = run_tk("benchmark", "--model", "resnet18", "--batch-size", "1,2", "--imgsz", "32,64", "--analyze-only",
                 "--hardware", "a100", "--cache-dir", str(tmp_path / "cache"), "--json", str(report))
    assert out.returncode == 0, out.stdout + out.stderr
    results = _report(report).results
    points = [(r.model_request.batch_size, r.model_request.imgsz) for r in results]
    assert points == [(1, 32), (1, 64), (2, 32), (2, 64)]
    hashes = {r.models[0].invocations[0].hash for r in results}
    assert len(hashes) == 4
    macs = {p: r.models[0].invocations[0].characterization.result.totals.macs for p, r in zip(points, results)}
    assert macs[(2, 64)] == 2 * macs[(1, 64)] and macs[(1, 64)] > macs[(1, 32)]
    table = out.stdout[out.stdout.index("sweep: resnet18"):]
    assert all(h in table for h in hashes)
    assert "compute-bound" in table or "memory-bound" in table


def test_an_unknown_name_is_one_line_with_the_closest_names_and_the_others_run(tmp_path):
    start = time.monotonic()
    out = run_tk("profile", "--model", "resnet500", "--model", "resnet18", "--imgsz", "32", "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 1
    assert time.monotonic() - start < 180
    error = next(ln for ln in out.stdout.splitlines() if "error:" in ln)
    assert "resnet500" in error and "unknown model" in error
    assert "resnet50" in out.stdout  # closest names in the hint
    assert "resnet18 · invocation" in out.stdout  # the good one still ran


def test_compare_characterizes_named_models_on_the_spot(tmp_path):
    out = run_tk("compare", "--model", "resnet18", "--model", "mobilenet_v3_small", "--imgsz", "64",
                 "--hardware", "a100", "--cache-dir", str(tmp_path / "cache"), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    import json

    data = json.loads(out.stdout)
    labels = [e["label"] for e in data["entries"]]
    assert labels == ["resnet18", "mobilenet_v3_small"]
    assert all(e["macs"] > 0 for e in data["entries"])


def test_tk_model_shorthand_means_tk_benchmark(tmp_path):
    out = run_tk("--model", "resnet18", "--imgsz", "32", "--analyze-only", "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resnet18" in out.stdout and "1 characterized" in out.stdout
