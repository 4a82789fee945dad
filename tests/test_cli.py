"""The `tk` command line end to end, in-process: bad inputs, selection, labels, --json, help; the typed
option records each command parses once, their checks, the exit-code rule the commands share, and the
imports between the CLI modules."""

import json
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


# ------------------------------------------------------------------------------ the typed boundary
CLI = Path(__file__).resolve().parent.parent / "turnkey_like" / "cli"
HELLO = str(EXAMPLES / "hello_world.py")

FACTORIES = '''
import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode


class Uncountable(torch.nn.Module):
    """Runs in eager PyTorch; refuses to run under an op counter (a dispatch mode is active)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        if _get_current_dispatch_mode() is not None:
            raise RuntimeError("refuses to be counted")
        return self.fc(x)


def small():
    return torch.nn.Linear(4, 2), (torch.rand(1, 4),)


def wide():
    return torch.nn.Linear(8, 2), (torch.rand(1, 8),)


def uncountable():
    return Uncountable(), (torch.rand(1, 4),)


def broken():
    raise ValueError("broken on purpose")
'''


def _parsed(argv):
    """The namespace argparse makes of a real ``tk`` command line (as ``main`` parses it)."""
    from turnkey_like.cli import _normalise_argv, build_parser

    return build_parser().parse_args(_normalise_argv(list(argv)))


def _record(parse, argv):
    """``parse(args)`` of ``argv``; checks that parsing left the namespace as argparse made it."""
    args = _parsed(argv)
    before = dict(vars(args))
    record = parse(args)
    assert vars(args) == before  # validation returns values, never rewrites args
    return record


def test_benchmark_options_from_a_real_command_line(tmp_path):
    import dataclasses

    from turnkey_like.cli import options
    from turnkey_like.cli.run import run_options

    factory = _write(tmp_path, "zoo_fixtures.py", FACTORIES)
    cmd = _record(options.parse_benchmark, [
        HELLO, "--labels", "test_group::a,b", "--script-args", "--size 3", "--max-depth", "1", "--timeout", "60",
        "--model", f"{factory}:small", "--batch-size", "1,8", "--input-shape", "x:1,4", "--hardware", "a100,h100",
        "--opset", "18", "--precision", "fp16", "--iterations", "5", "--warmup", "2", "--threads", "1", "--per-layer",
        "--lean-cache", "--json", str(tmp_path / "out" / "run.json"), "--roofline", str(tmp_path / "r.svg"),
        "--html", str(tmp_path / "r.html"), "--retry-failed", "--cache-dir", str(tmp_path / "c")])
    assert isinstance(cmd, options.BenchmarkCommand)
    run = cmd.run
    assert run.inputs.inputs == (HELLO,) and run.inputs.labels == ("test_group::a,b",)
    assert run.inputs.label_filters == {"test_group": {"a", "b"}}
    assert (run.inputs.script_args, run.inputs.max_depth, run.inputs.timeout_s) == ("--size 3", 1, 60.0)
    assert run.inputs.input_shapes == {"x": (1, 4)}
    assert run.inputs.named.names == (f"{factory}:small",)
    assert [r.batch_size for r in run.inputs.named.requests] == [1, 8]  # one request per sweep point
    assert all(r.input_shapes == {"x": [1, 4]} for r in run.inputs.named.requests)
    assert run.analysis.hardware == ("a100", "h100") and run.analysis.profile == "a100"
    assert run.analysis.extra_profiles == ("h100",)
    assert run.corpus.resume and run.corpus.retry_failed  # --retry-failed alone means --resume too
    assert cmd.output == options.OutputOptions(json=str(tmp_path / "out" / "run.json"), roofline=str(tmp_path / "r.svg"),
                                               html=str(tmp_path / "r.html"))
    pipeline = run_options(run)
    assert (pipeline.analyze_only, pipeline.hardware, pipeline.cache_dir) == (False, "a100", str(tmp_path / "c"))
    assert (pipeline.build.opset, pipeline.build.precision, pipeline.build.timeout_s) == (18, "fp16", 60.0)
    assert (pipeline.benchmark.iterations, pipeline.benchmark.warmup, pipeline.benchmark.threads) == (5, 2, 1)
    assert pipeline.benchmark.per_layer and pipeline.lean_cache and pipeline.timeout_s == 60.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cmd.run = None


def test_analysis_command_options_from_real_command_lines(tmp_path):
    from turnkey_like.cli import options
    from turnkey_like.cli.run import run_options

    profile = _record(options.parse_profile, [
        "profile", HELLO, "--trace", "--showshape", "--top", "3", "--visualize", str(tmp_path / "g.dot"),
        "--collapse", "1", "--no-fold", "--no-weights"])
    assert profile.tables == options.TableOptions(showshape=True, top=3, fold=False)
    assert (profile.output.visualize, profile.output.collapse, profile.output.fold_repeats) == (
        str(tmp_path / "g.dot"), 1, False)
    pipeline = run_options(profile.run)
    assert pipeline.analyze_only and pipeline.trace and pipeline.no_weights and pipeline.hardware is None
    assert profile.run.corpus.on_dask is False  # profile takes no corpus flags: one input at a time

    explore = _record(options.parse_explore, ["explore", HELLO, "--around", "5", "--context", "2", "--filter", "add",
                                              "--output", str(tmp_path / "graph.txt")])
    assert (explore.nodes.around, explore.nodes.context, explore.nodes.text) == (5, 2, "add")
    assert explore.output == str(tmp_path / "graph.txt") and run_options(explore.run).analyze_only

    view = _record(options.parse_view, ["view", HELLO, "--port", "8080", "--no-browser", "--host", "0.0.0.0"])
    assert (view.host, view.port, view.open_browser) == ("0.0.0.0", 8080, False)


def test_compare_cache_report_and_survey_options_from_real_command_lines(tmp_path):
    from turnkey_like.cli import options

    factory = _write(tmp_path, "zoo_fixtures.py", FACTORIES)
    compare = _record(options.parse_compare, ["compare", "a_00000001", "c69b7dea", "--json", "--hardware", "a100"])
    assert (compare.builds, compare.json, compare.run) == (("a_00000001", "c69b7dea"), "-", None)
    compare = _record(options.parse_compare, ["compare", "--model", f"{factory}:small", "--model", f"{factory}:wide",
                                              "--html", str(tmp_path / "c.html"), "--no-weights"])
    assert compare.named.names == (f"{factory}:small", f"{factory}:wide") and compare.html == str(tmp_path / "c.html")
    assert compare.run.stages.analyze_only and compare.run.analysis.no_weights
    assert all(r.no_weights for r in compare.run.inputs.named.requests)

    assert _record(options.parse_cache_list, ["cache", "list", "--json", "--cache-dir", "d"]) == options.CacheCommand(
        cache_dir="d", json=True)
    assert _record(options.parse_cache_stats, ["cache", "stats", "b_00000002"]).builds == ("b_00000002",)
    assert _record(options.parse_cache_selection, ["cache", "clean", "--all"]) == options.CacheCommand(all=True)
    prune = _record(options.parse_prune, ["cache", "prune", "--older-than", "1.5", "--max-size", "2GB", "--dry-run"])
    assert prune == options.PruneCommand(cache_dir=None, older_than_days=1.5, max_bytes=2 * 10**9, dry_run=True)
    report = _record(options.parse_report, ["report", "-o", str(tmp_path / "r.md"), "--cache-dir", "a", "--cache-dir", "b"])
    assert report == options.ReportCommand(cache_dirs=("a", "b"), path=tmp_path / "r.md", format="md")
    survey = _record(options.parse_discover_models, ["discover-models", "--family", "resnet", "--workers", "2",
                                                     "--timeout", "30", "--json", str(tmp_path / "s.json"), "-q"])
    assert (survey.source, survey.family, survey.workers, survey.timeout_s) == ("torchvision", "resnet", 2, 30.0)
    assert survey.common.quiet and survey.json == str(tmp_path / "s.json")


def _bad_value_cases(tmp_path):
    a_file = _write(tmp_path, "a_file", "x")
    return [
        (["benchmark", HELLO, "--timeout", "0"], "--timeout 0"),
        (["benchmark", HELLO, "--opset", "16"], "--opset 16"),
        (["benchmark", HELLO, "--iterations", "0"], "--iterations 0"),
        (["benchmark", HELLO, "--warmup", "-1"], "--warmup -1"),
        (["benchmark", HELLO, "--threads", "0"], "--threads 0"),
        (["benchmark", HELLO, "--upload"], "--upload needs --workers"),
        (["benchmark", HELLO, "--roofline", str(tmp_path / "r.jpg")], "--roofline"),
        (["benchmark", HELLO, "--json", str(tmp_path)], "is a folder"),
        (["profile", HELLO, "--max-depth", "-1"], "--max-depth -1"),
        (["profile", HELLO, "--hardware", "tpu9"], "unknown hardware profile"),
        (["profile", HELLO, "--visualize", str(tmp_path / "g.jpg")], "unknown picture format '.jpg'"),
        (["profile", HELLO, "--collapse", "-1"], "--collapse -1"),
        (["profile", HELLO, "--html", str(a_file / "r.html")], "is a file, not a folder"),
        (["profile", HELLO, "--labels", "nocolons"], "malformed --labels"),
        (["profile", "--model", "resnet18", "--model-args", "[1]"], "--model-args"),
        (["profile", "--model", "resnet18", "--input-shape", "x"], "--input-shape"),
        (["profile"], "give at least one input"),
        (["explore", HELLO, "--output", str(tmp_path)], "--output"),
        (["view", HELLO, "--port", "70000"], "--port 70000"),
        (["compare", "onlyone"], "at least two"),
        (["compare", "a_00000001", "b_00000002", "--hardware", "a100,h100"], "takes one profile"),
        (["cache", "prune"], "--older-than"),
        (["cache", "delete", "x_00000001", "--all"], "not both"),
        (["discover-models", "--workers", "0"], "--workers 0"),
    ]


def test_bad_values_are_one_line_with_a_hint_exit_1_before_anything_runs(tmp_path, capsys):
    cache = tmp_path / "cache"
    for argv, expected in _bad_value_cases(tmp_path):
        code = main([*argv, "--cache-dir", str(cache)])
        out, err = capsys.readouterr()
        lines = err.splitlines()
        assert code == 1, (argv, err)
        assert len(lines) == 2 and lines[0].startswith("error: ") and expected in lines[0], (argv, err)
        assert lines[1].startswith("hint: ") and len(lines[1]) > len("hint: "), (argv, err)
        assert out == "" and not cache.exists(), argv  # nothing ran, nothing was written


def test_command_line_errors_exit_2_with_the_usage_and_a_hint(capsys):
    with pytest.raises(SystemExit) as e:
        main(["explore", HELLO, "--max-nodes", "3", "--around", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: tk explore")
    assert "tk explore: error: --around/--context and --max-nodes are different range forms" in err
    assert "hint: --start N --end M" in err
    # an option typo gets the closest option of that command, as a command typo gets the closest command
    for argv, typo, meant in ((["benchmark", HELLO, "--iteratoins", "5"], "--iteratoins", "--iterations"),
                              (["cache", "list", "--jsn"], "--jsn", "--json"),
                              (["profile", HELLO, "--show-shape"], "--show-shape", "--showshape")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2
        assert f"error: unrecognized arguments: {typo}" in err and f"(did you mean {meant}?)" in err


def test_cli_modules_import_no_other_command_module_and_never_read_args():
    """Command modules import only arguments/options/run/outputs (and lower layers), never each
    other; the shared modules import no command module; only options.py (with contradictions.py,
    its checks of options given together) reads the namespace."""
    import ast

    commands = {p.stem for p in CLI.glob("*_commands.py")}
    assert {"benchmark_commands", "cache_commands", "compare_commands", "model_commands", "view_commands"} <= commands
    for path in sorted(CLI.glob("*.py")):
        if path.stem in ("__init__", "__main__"):
            continue  # the dispatcher registers every command
        tree = ast.parse(path.read_text(), filename=str(path))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.rsplit(".", 1)[-1])
                imported.update(f"{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                imported.update(alias.name.rsplit(".", 1)[-1] for alias in node.names)
        assert not (imported & commands) - {path.stem}, f"{path.name} imports {sorted(imported & commands)}"
        if path.stem in ("options", "contradictions"):  # the parsing of args, and its contradiction checks
            continue
        reads = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and isinstance(node.value, ast.Name) and node.value.id == "args"]
        getattrs = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "getattr" and node.args
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == "args"]
        assert not reads and not getattrs, f"{path.name} reads the argparse namespace at lines {reads + getattrs}"


@pytest.mark.parametrize("entries, expected", [
    (("small", "wide"), 0),
    (("small", "wide", "uncountable"), 1),  # a stage (characterization) failed; the others still ran
    (("small", "wide", "broken"), 1),  # an input failed (its factory raised); the others still ran
])
def test_the_commands_that_run_the_pipeline_agree_on_the_exit_code(tmp_path, capsys, entries, expected):
    """docs/exit_codes.md: 0 when every requested stage succeeded, 1 when anything failed while the
    others still ran; benchmark, profile, explore and compare --model follow the one rule."""
    factory = _write(tmp_path, "zoo_fixtures.py", FACTORIES)
    models = [arg for name in entries for arg in ("--model", f"{factory}:{name}")]
    common = [*models, "--hardware", "a100", "--cache-dir", str(tmp_path / "cache"), "-q"]
    codes = {}
    for argv in (["benchmark", "--analyze-only"], ["profile"], ["explore"], ["compare", "--json"]):
        codes[argv[0]] = main([*argv, *common])
        out, err = capsys.readouterr()
        if argv[0] == "compare":
            labels = [entry["label"] for entry in json.loads(out)["entries"]]
            assert labels[:2] == [f"{factory}:small", f"{factory}:wide"]  # the good ones are compared
        elif argv[0] == "explore":
            assert "Linear" in out or "linear" in out  # the first good one's graph
        else:
            assert "zoo_fixtures.py:wide" in out  # the good ones still ran and were reported
    assert codes == dict.fromkeys(codes, expected), codes


def _needs_cases(tmp_path):
    """Options given without the option they need: (command line, what the one error line says)."""
    dot = str(tmp_path / "g.dot")
    return [
        (["profile", HELLO, "--collapse", "1"], "shapes --visualize pictures, and no --visualize PATH is given"),
        (["profile", HELLO, "--collapse", "0"], "shapes --visualize pictures, and no --visualize PATH is given"),
        (["profile", HELLO, "--color-by", "measured"], "shapes --visualize pictures, and no --visualize PATH is given"),
        (["profile", HELLO, "--hardware", "a100,h100"], "need --roofline PATH or --html PATH"),
        (["benchmark", HELLO, "--hardware", "a100,h100"], "need --roofline PATH or --html PATH"),
        (["explore", HELLO, "--hardware", "a100,h100"], "this command shows one profile"),
        (["view", HELLO, "--hardware", "a100,h100"], "this command shows one profile"),
        (["profile", HELLO, "--imgsz", "64"], "applies to --model entries, and none is given"),
        (["profile", HELLO, "--batch-size", "2"], "applies to --model entries, and none is given"),
        (["explore", HELLO, "--seq-len", "8"], "applies to --model entries, and none is given"),
        (["benchmark", HELLO, "--pretrained"], "applies to --model entries, and none is given"),
        (["profile", HELLO, "--model-args", "{}"], "applies to --model entries, and none is given"),
        (["profile", HELLO, "--trust-remote-code"], "applies to --model entries, and none is given"),
        (["profile", HELLO, "--seed", "3"], "applies to --model entries, and none is given"),
        (["profile", HELLO, "--dtype", "bf16"], "applies to --model entries, and none is given"),
        (["compare", "a_00000001", "b_00000002", "--imgsz", "64"], "applies to --model entries, and none is given"),
        (["profile", "--model", "resnet18", "--script-args", "--x 1"], "--script-args needs a script INPUT"),
        (["profile", "--model", "resnet18", "--labels", "test_group::a"], "--labels needs a script INPUT"),
        (["profile", HELLO, "--input-shape", "x:1,4"], "--input-shape needs --model NAME or an .onnx INPUT"),
        (["benchmark", HELLO, "--analyze-only", "--build-only"], "--analyze-only and --build-only contradict each other"),
        (["benchmark", HELLO, "--analyze-only", "--opset", "17"], "--analyze-only and --opset "),
        (["benchmark", HELLO, "--analyze-only", "--precision", "fp16"], "--analyze-only and --precision "),
        (["benchmark", HELLO, "--analyze-only", "--iterations", "5"], "--analyze-only and --iterations"),
        (["benchmark", HELLO, "--build-only", "--per-layer"], "--build-only and --per-layer"),
        (["benchmark", HELLO, "--build-only", "--runtime", "torch-eager"], "--build-only and --runtime"),
        (["benchmark", HELLO, "--build-only", "--warmup", "3"], "--build-only and --warmup"),
        (["benchmark", HELLO, "--build-only", "--threads", "1"], "--build-only and --threads"),
        (["benchmark", HELLO, "--build-only", "--wait-quiet", "5"], "--build-only and --wait-quiet"),
        (["benchmark", HELLO, "--build-only", "--rebenchmark", "always"], "--build-only and --rebenchmark"),
        (["benchmark", HELLO, "--analyze-only", "--lean-cache"], "--analyze-only and --lean-cache"),
        (["benchmark", HELLO, "--analyze-only", "--device", "cuda"], "--analyze-only and --device"),
        (["explore", HELLO, "--context", "2"], "--context needs --around"),
    ], dot


def test_an_option_without_the_option_it_needs_is_a_usage_error_before_anything_runs(tmp_path, capsys):
    """Nothing is silently ignored: an option that only means something with another one, given
    without it, exits 2 with the command's usage and one line naming the option it needs; no input
    runs and no cache is made. With the option it needs, the same command line parses."""
    from turnkey_like.cli import options

    cache = tmp_path / "cache"
    cases, dot = _needs_cases(tmp_path)
    for argv, expected in cases:
        with pytest.raises(SystemExit) as e:
            main([*argv, "--cache-dir", str(cache)])
        err = capsys.readouterr().err
        assert e.value.code == 2, (argv, err)
        assert err.startswith(f"usage: tk {argv[0]}") and expected in err, (argv, err)
        assert not cache.exists(), argv
    # given what they need, they parse
    profile = _record(options.parse_profile, ["profile", HELLO, "--visualize", dot, "--collapse", "0", "--no-fold",
                                              "--color-by", "measured", "--hardware", "a100,h100",
                                              "--roofline", str(tmp_path / "r.pdf")])
    assert (profile.output.collapse, profile.output.fold_repeats, profile.output.color_by) == (0, False, "measured")
    assert profile.output.roofline == str(tmp_path / "r.pdf")
    named = _record(options.parse_profile, ["profile", "--model", "resnet18", "--imgsz", "64", "--seed", "3",
                                            "--dtype", "bf16", "--input-shape", "x:1,3,64,64"])
    [request] = named.run.inputs.named.requests
    assert (request.imgsz, request.seed, request.dtype) == (64, 3, "bf16")
    bench = _record(options.parse_benchmark, ["benchmark", HELLO, "--analyze-only", "--rebuild", "always"])
    assert bench.run.stages.analyze_only and bench.run.stages.build.rebuild == "always"  # --rebuild: reuse of all


def test_picture_formats_are_checked_before_any_model_runs(tmp_path, capsys):
    """``--visualize x.jpg`` and ``--roofline x.jpg`` are one-line errors (exit 1) before the named model
    is built; ``--roofline x.pdf`` and ``--visualize x.dot`` are accepted."""
    from turnkey_like.cli import options

    cache = tmp_path / "cache"
    for argv, expected in ((["profile", "--visualize", str(tmp_path / "x.jpg")], "unknown picture format '.jpg'"),
                           (["profile", "--roofline", str(tmp_path / "x.jpg")], "--roofline"),
                           (["benchmark", "--roofline", str(tmp_path / "x.jpg")], "unknown picture format '.jpg'")):
        code = main([*argv, "--model", "resnet18", "--cache-dir", str(cache)])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("error: ") and expected in err.splitlines()[0], (argv, err)
        assert not cache.exists()
    ok = _record(options.parse_profile, ["profile", "--model", "resnet18", "--roofline", str(tmp_path / "x.pdf"),
                                         "--visualize", str(tmp_path / "x.dot")])
    assert (ok.output.roofline, ok.output.visualize) == (str(tmp_path / "x.pdf"), str(tmp_path / "x.dot"))


def test_dtype_bf16_keeps_the_macs_and_halves_the_bytes_of_resnet18(tmp_path, capsys):
    """``tk profile --model resnet18 --imgsz 64 --dtype bf16``: the request records bf16, the weights and
    the input are bfloat16, the MACs equal fp32's, and every byte halves but the max pool's int64
    indices (1×64×16×16 of 8 bytes = 131072 B in both): bf16 bytes = (fp32 bytes + 131072) / 2."""
    records = {}
    for dtype in ("fp32", "bf16"):
        path = tmp_path / f"{dtype}.json"
        code, out, err = _tk(capsys, "profile", "--model", "resnet18", "--imgsz", "64", "--dtype", dtype,
                             "--hardware", "a100", "--cache-dir", str(tmp_path / "cache"), "--json", str(path), "-q")
        assert code == 0, out + err
        [result] = json.loads(path.read_text())["results"]
        assert result["model_request"]["dtype"] == dtype
        inv = result["models"][0]["invocations"][0]
        records[dtype] = (inv["signature"][0]["dtype"], inv["characterization"]["result"])
    (fp32_input, fp32), (bf16_input, bf16) = records["fp32"], records["bf16"]
    assert (fp32_input, bf16_input) == ("float32", "bfloat16") and bf16["dtype"] == "bfloat16"
    assert bf16["totals"]["macs"] == fp32["totals"]["macs"] > 0
    assert bf16["totals"]["param_bytes"] * 2 == fp32["totals"]["param_bytes"]
    indices = 64 * 16 * 16 * 8
    fp32_bytes = fp32["totals"]["bytes_read"] + fp32["totals"]["bytes_written"]
    assert bf16["totals"]["bytes_read"] + bf16["totals"]["bytes_written"] == (fp32_bytes + indices) // 2


def test_a_model_of_another_dtype_under_the_same_hash_is_characterized_again(tmp_path, capsys):
    """TurnkeyML's invocation hash leaves the weights' dtype out: an embedding model called on int64
    ids names the same build in float32 and in bfloat16 (``--dtype bf16`` on a language model,
    ``model.to(torch.bfloat16)`` in a script). A rerun in the other dtype must not take the cached
    float32 counts: its parameter bytes halve (10×4 + 4×2 + 2 = 50 parameters: 200 B, then 100 B)."""
    script = tmp_path / "ids.py"
    script.write_text("import sys, torch\n"
                      "m = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 2))\n"
                      "if '--bf16' in sys.argv:\n    m = m.to(torch.bfloat16)\n"
                      "m(torch.tensor([[1, 2, 3]]))\n")
    seen = []
    for script_args in ("--fp32", "--bf16", "--fp32"):
        path = tmp_path / "run.json"
        code, out, err = _tk(capsys, "profile", str(script), f"--script-args={script_args}", "--cache-dir",
                             str(tmp_path / "cache"), "--json", str(path), "-q")
        assert code == 0, out + err
        [result] = json.loads(path.read_text())["results"]
        inv = result["models"][0]["invocations"][0]
        char = inv["characterization"]
        seen.append((inv["build_name"], char["result"]["dtype"], char["result"]["totals"]["param_bytes"]))
    assert len({name for name, _, _ in seen}) == 1  # one build name for both dtypes
    assert [(dtype, size) for _, dtype, size in seen] == [("float32", 200), ("bfloat16", 100), ("float32", 200)]
