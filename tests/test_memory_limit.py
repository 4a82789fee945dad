"""``--memory-limit``: a child over it is killed and recorded ``out of memory`` with its peak, and the
run goes on. Real ``tk`` processes, real 2 GiB allocations under a 1 GB cap."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, run_tk

LIMIT = 10**9  # --memory-limit 1G: 10^9 bytes, as tk prints sizes

#: a model whose calls after the script's own (those of the stages' children) write 2 GiB
HOG_IN_STAGES = textwrap.dedent("""
    import torch
    calls = 0
    class Hog(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)
        def forward(self, x):
            global calls
            calls += 1
            if calls > 1 and not torch.compiler.is_exporting():
                torch.ones(2**29).add_(1)  # 2 GiB, written
            return self.fc(x)
    Hog()(torch.ones(1, 4))
""")

#: a script that writes 2 GiB itself, after calling its model
HOG_IN_SCRIPT = "import torch\ntorch.nn.Linear(4, 2)(torch.ones(1, 4))\nbig = torch.ones(2**29).add_(1)\n"


def _results(report: Path) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in json.loads(report.read_text())["results"]}


def test_a_stage_over_the_memory_limit_is_out_of_memory_with_its_peak_and_the_next_input_runs(tmp_path):
    hog = tmp_path / "hog_stage.py"
    hog.write_text(HOG_IN_STAGES)
    report = tmp_path / "run.json"
    out = run_tk("benchmark", str(hog), str(EXAMPLES / "hello_world.py"), "--memory-limit", "1G", "--iterations", "5",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report), timeout=600)
    assert out.returncode == 1, out.stdout + out.stderr
    results = _results(report)
    (model,) = results["hog_stage.py"]["models"]
    (inv,) = model["invocations"]
    char = inv["characterization"]
    assert char["status"] == "out_of_memory", char
    assert char["peak_memory_bytes"] > LIMIT  # the peak it reached, over the cap
    assert "of resident memory, over --memory-limit 1 GB (killed)" in char["error"]
    assert inv["benchmark"]["status"] in ("skipped", "out_of_memory")
    assert "out of memory: " in out.stdout  # the report says so, in words
    record = json.loads((tmp_path / "cache" / inv["build_name"] / "record.json").read_text())
    assert record["invocation"]["characterization"]["status"] == "out_of_memory"
    (hello,) = results["hello_world.py"]["models"]  # the next input ran, under the same cap
    stages = hello["invocations"][0]
    assert [stages[s]["status"] for s in ("characterization", "build", "benchmark")] == ["successful"] * 3
    assert 0 < stages["build"]["peak_memory_bytes"] < LIMIT  # watched, and within the cap


def test_a_script_over_the_memory_limit_is_out_of_memory_and_the_next_input_runs(tmp_path):
    hog = tmp_path / "hog_script.py"
    hog.write_text(HOG_IN_SCRIPT)
    report = tmp_path / "run.json"
    out = run_tk("benchmark", str(hog), str(EXAMPLES / "hello_world.py"), "--analyze-only", "--memory-limit", "1G",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report), timeout=600)
    assert out.returncode == 1, out.stdout + out.stderr
    results = _results(report)
    assert results["hog_script.py"]["status"] == "out_of_memory"
    error = results["hog_script.py"]["error"]
    assert error.startswith("the script: out of memory: its process used ") and "over --memory-limit 1 GB" in error
    used = float(error.split("used ")[1].split(" GB")[0])
    assert used > 1.0  # the peak, in GB
    assert "raise --memory-limit" in out.stdout  # the hint
    assert results["hog_script.py"]["models"]  # the model it called before is kept
    assert results["hello_world.py"]["status"] == "successful"


@pytest.mark.parametrize("value", ["lots", "2 parsecs", "0.0000001"])
def test_a_bad_memory_limit_is_one_line_before_anything_runs(tmp_path, value):
    out = run_tk("profile", str(EXAMPLES / "hello_world.py"), "--memory-limit", value,
                 "--cache-dir", str(tmp_path / "cache"), timeout=120)
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: --memory-limit {value}: ") and "hint: " in out.stderr
    assert not (tmp_path / "cache").exists()
