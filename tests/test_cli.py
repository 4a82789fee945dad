"""The `tk` command line end to end, in-process: bad inputs, selection, labels, --json, help."""

import textwrap
from pathlib import Path

import pytest

from turnkey_like.cli import main
from turnkey_like.records import RunReport, Status, decode

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "scripts"

GOOD = """
import torch
model = torch.nn.Linear(4, 2)
model(torch.rand(1, 4))
print("good ran")
"""


def _write(folder, name, body):
    path = Path(folder) / name
    path.write_text(textwrap.dedent(body))
    return path


def _tk(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def cache(tmp_path):
    return str(tmp_path / "cache")


BAD_CASES = {
    "missing path": (None, "missing.py", "missing.py: no such file"),
    "glob without match": (None, "nomatch_*.py", "glob matched no file"),
    "wrong extension": (("model.pt", "x"), "model.pt", "unsupported file type .pt"),
    "empty list": (("list.txt", "\n# nothing\n"), "list.txt", "input list is empty"),
    "syntax error": (("syntax.py", "def f(:\n"), "syntax.py", "syntax error at line 1"),
    "raises halfway": (("halfway.py", "import torch\nm = torch.nn.Linear(2, 2)\nm(torch.rand(2))\nraise ValueError('bad data')\n"),
                       "halfway.py", "ValueError (line 4): bad data"),
    "sys.exit": (("exits.py", "import sys\nsys.exit(4)\n"), "exits.py", "script exited with code 4"),
    "unknown hash": (None, "GOOD::0badf00d", "no model or invocation has this hash"),
    "malformed labels": (("labels.py", "# labels: test_group\nprint(1)\n"), "labels.py", "malformed labels token"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_one_line_others_still_run_exit_nonzero(tmp_path, cache, capsys, case):
    setup, entry, expected = BAD_CASES[case]
    good = _write(tmp_path, "good.py", GOOD)
    if setup:
        _write(tmp_path, *setup)
    entry = entry.replace("GOOD", str(good))
    if not Path(entry).is_absolute():
        entry = str(tmp_path / entry)
    other = _write(tmp_path, "other.py", GOOD)
    code, out, err = _tk(capsys, "benchmark", entry, str(other), "--analyze-only", "--cache-dir", cache)
    assert code == 1
    text = out + err
    assert expected in text
    line = next(ln for ln in text.splitlines() if expected in ln)
    assert Path(entry.split("::")[0]).name in line  # the one-line message names the file
    assert "good ran" in out and "other.py:" in out  # the other input still ran and was reported


def test_no_model_script_reports_and_succeeds(tmp_path, cache, capsys):
    script = _write(tmp_path, "nomodel.py", "print('nothing here')\n")
    code, out, _ = _tk(capsys, "benchmark", str(script), "--analyze-only", "--cache-dir", cache)
    assert "no model was called" in out
    assert code == 0


def test_script_args_rejected_by_the_script(tmp_path, cache, capsys):
    script = _write(tmp_path, "strict.py", """
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--size", type=int, required=True)
        parser.parse_args()
    """)
    code, out, err = _tk(capsys, "benchmark", str(script), "--script-args", "--colour red",
                         "--analyze-only", "--cache-dir", cache)
    assert code == 1
    assert "script exited with code 2" in out
    assert "unrecognized arguments" in err or "required" in err


def test_shorthand_selection_and_json(tmp_path, cache, capsys):
    out_json = tmp_path / "run.json"
    code, out, err = _tk(capsys, str(EXAMPLES / "two_models.py") + "::c69b7dea", "--analyze-only",
                         "--cache-dir", cache, "--json", str(out_json))
    assert "c69b7dea" in out and "(not selected)" in out
    report = decode(out_json.read_bytes(), RunReport)
    (script,) = report.results
    invs = {inv.hash: inv for _model, inv in script.invocations()}
    assert invs["f93db89f"].selected is False
    assert invs["f93db89f"].characterization.status == Status.SKIPPED
    assert invs["c69b7dea"].selected is True
    assert invs["c69b7dea"].build.reason == "--analyze-only"


def test_model_hash_selects_all_its_invocations(tmp_path, cache, capsys):
    out_json = tmp_path / "run.json"
    _tk(capsys, str(EXAMPLES / "multiple_invocations.py") + "::d0b6b257", "--analyze-only",
        "--cache-dir", cache, "--json", str(out_json))
    (model,) = decode(out_json.read_bytes(), RunReport).results[0].models
    assert [inv.selected for inv in model.invocations] == [True, True]


def test_labels_filter(tmp_path, cache, capsys):
    code, out, _ = _tk(capsys, "benchmark", str(EXAMPLES / "hello_world.py"), str(EXAMPLES / "max_depth.py"),
                       "--labels", "test_group::b", "--analyze-only", "--cache-dir", cache)
    assert "max_depth.py" in out and "hello_world.py:" not in out
    code, out, err = _tk(capsys, "benchmark", str(EXAMPLES / "hello_world.py"), "--labels", "test_group::zzz",
                         "--analyze-only", "--cache-dir", cache)
    assert code == 1 and "no input matches --labels" in err


def test_typo_gets_did_you_mean(capsys):
    code, _, err = _tk(capsys, "benchmrk", "x")
    assert code == 1 and "did you mean 'tk benchmark'" in err


def test_help_is_grouped_by_phase(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    out = capsys.readouterr().out
    for group in ("inputs:", "discovery:", "characterization:", "build (ONNX export):", "benchmark:", "cache and output:"):
        assert group in out


def test_version(capsys):
    code, out, _ = _tk(capsys, "version")
    assert code == 0 and out.startswith("tk ") and "torch" in out


def test_analyze_only_rerun_keeps_earlier_build_and_benchmark(tmp_path, cache, capsys):
    from turnkey_like.cache import Cache

    script = _write(tmp_path, "small.py", GOOD)
    code, out, err = _tk(capsys, "benchmark", str(script), "--iterations", "5", "--cache-dir", cache)
    assert code == 0, out + err
    (name,) = Cache(cache, create=False).builds()
    first = Cache(cache, create=False).load(name).invocation
    assert first.benchmark.status.value == "successful"
    code, out, _ = _tk(capsys, "benchmark", str(script), "--analyze-only", "--cache-dir", cache)
    assert code == 0
    again = Cache(cache, create=False).load(name).invocation
    assert again.build.status.value == again.benchmark.status.value == "successful"
    assert again.benchmark.result.latency_ms == first.benchmark.result.latency_ms
    assert again.benchmark.run_id == first.benchmark.run_id  # says which run measured it
    assert again.benchmark.reason == "kept from an earlier run"
    assert "kept from an earlier run" in out


def test_lean_cache_drops_onnx_but_keeps_the_record(tmp_path, cache, capsys):
    from turnkey_like.cache import Cache

    script = _write(tmp_path, "lean.py", GOOD)
    code, out, err = _tk(capsys, "benchmark", str(script), "--iterations", "5", "--lean-cache", "--cache-dir", cache)
    assert code == 0, out + err
    store = Cache(cache, create=False)
    (name,) = store.builds()
    files = [path for path, _size in store.files(name)]
    assert not [f for f in files if f.endswith((".onnx", ".onnx.data"))], files
    record = store.load(name).invocation
    assert record.benchmark.status.value == "successful" and record.benchmark.result.latency_ms.mean > 0


TRAINING = """
import torch
model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(16),
                            torch.nn.Linear(16, 4))
model.train()
model(torch.rand(8, 16))
"""


def test_training_mode_model_is_built_and_benchmarked_in_eval_mode(tmp_path, cache, capsys):
    from turnkey_like.cache import Cache
    from turnkey_like.pipeline import eval_mode

    script = _write(tmp_path, "train.py", TRAINING)
    code, out, err = _tk(capsys, "benchmark", str(script), "--iterations", "5", "--cache-dir", cache)
    assert code == 0, out + err
    assert "called in training mode" in out and "MISMATCH" not in out
    store = Cache(cache, create=False)
    inv = store.load(store.builds()[0]).invocation
    assert inv.training is True
    # dropout and batch statistics would make ONNX and eager disagree; in eval mode they agree
    assert inv.build.result.faithful is True

    import torch

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
    model.train()
    model[1].eval()  # a mixed state must come back exactly
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, False]
