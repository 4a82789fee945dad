"""Contradictory options are a usage error before anything runs: exit 2, the command's usage, one
line naming both options and why, and a hint saying what to do. The real CLI, in this process."""

from __future__ import annotations

import pytest

from turnkey_like.cli import build_parser, main, options
from turnkey_like.cli.contradictions import BENCHMARK_FLAGS, BUILD_FLAGS, NAMED_MODEL_FLAGS

from tests.conftest import EXAMPLES

HELLO = str(EXAMPLES / "hello_world.py")

#: a value other than the default for each option the checks know
OTHER_VALUE = {"--opset": ["19"], "--precision": ["fp16"], "--rebuild": ["always"], "--runtime": ["torch-eager"],
               "--device": ["cuda"], "--iterations": ["5"], "--warmup": ["2"], "--threads": ["1"], "--per-layer": [],
               "--wait-quiet": ["5"], "--rebenchmark": ["always"], "--batch-size": ["2"], "--seq-len": ["16"],
               "--imgsz": ["64"], "--pretrained": [], "--model-args": ['{"depth": 2}'], "--trust-remote-code": [],
               "--seed": ["3"], "--dtype": ["bf16"]}


def _cases():
    cases = [(["benchmark", HELLO, "--analyze-only", "--build-only"], ("--analyze-only", "--build-only")),
             (["benchmark", HELLO, "--analyze-only", "--lean-cache"], ("--analyze-only", "--lean-cache")),
             (["benchmark", HELLO, "--build-only", "--lean-cache"], ("--build-only", "--lean-cache")),
             (["benchmark", HELLO, "--analyze-only", "--workers", "2", "--collect"], ("--analyze-only", "--collect")),
             (["benchmark", HELLO, "--rebuild", "never", "--opset", "19"], ("--rebuild never", "--opset 19")),
             (["benchmark", HELLO, "--rebuild", "never", "--precision", "fp16"], ("--rebuild never", "--precision fp16")),
             (["benchmark", HELLO, "--rebenchmark", "never", "--iterations", "5"], ("--rebenchmark never", "--iterations 5")),
             (["benchmark", HELLO, "--rebenchmark", "never", "--per-layer"], ("--rebenchmark never", "--per-layer")),
             (["benchmark", HELLO, "--rebuild", "always", "--rebenchmark", "never"], ("--rebuild always", "--rebenchmark never")),
             (["benchmark", HELLO, "--resume", "--rebuild", "always"], ("--resume", "--rebuild always")),
             (["benchmark", HELLO, "--retry-failed", "--rebenchmark", "always"], ("--retry-failed", "--rebenchmark always")),
             (["benchmark", HELLO, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], ("--workers", "--scheduler")),
             (["profile", "--model", "resnet18", "--pretrained", "--no-weights"], ("--pretrained", "--no-weights")),
             (["profile", HELLO, "--collapse", "1"], ("--collapse 1", "--visualize")),
             (["discover-models", "--test-model", "resnet18", "--family", "resnet"], ("--test-model", "--family resnet")),
             (["discover-models", "--test-model", "resnet18", "--workers", "2"], ("--test-model", "--workers 2")),
             (["discover-models", "--test-model", "resnet18", "--refresh"], ("--test-model", "--refresh"))]
    for flag, _dest in BUILD_FLAGS + BENCHMARK_FLAGS:
        cases.append((["benchmark", HELLO, "--analyze-only", flag, *OTHER_VALUE[flag]], ("--analyze-only", flag)))
    for flag, _dest in BENCHMARK_FLAGS:
        cases.append((["benchmark", HELLO, "--build-only", flag, *OTHER_VALUE[flag]], ("--build-only", flag)))
    for flag, _dest in NAMED_MODEL_FLAGS:
        cases.append((["profile", HELLO, flag, *OTHER_VALUE[flag]], (flag, "--model")))
    return cases


@pytest.mark.parametrize("argv, named", _cases(), ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_contradictory_options_exit_2_naming_both_before_anything_runs(tmp_path, capsys, argv, named):
    cache = tmp_path / "cache"
    with pytest.raises(SystemExit) as e:
        main([*argv, "--cache-dir", str(cache)])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    command = argv[0]
    assert err.startswith(f"usage: tk {command}")
    error = [line for line in err.splitlines() if line.startswith(f"tk {command}: error: ")]
    assert len(error) == 1 and all(name in error[0] for name in named), err
    assert err.rstrip().splitlines()[-1].startswith(("hint: ", f"tk {command}: error: argument")), err
    assert not cache.exists()  # nothing ran, nothing was written


def test_a_default_repeated_is_no_contradiction():
    parser = build_parser()
    args = parser.parse_args(["benchmark", HELLO, "--analyze-only", "--iterations", "100", "--rebuild", "if_needed"])
    command = options.parse_benchmark(args)
    assert command.run.stages.analyze_only


def test_every_build_and_benchmark_option_is_checked_against_the_stages_that_skip_it():
    """A new option in the benchmark command's build or benchmark group must be listed in
    BUILD_FLAGS/BENCHMARK_FLAGS, so that --analyze-only / --build-only refuse it (--rebuild is the one
    exception: --rebuild always characterizes afresh too, so it means something with --analyze-only)."""
    parser = build_parser()
    bench = parser._subparsers._group_actions[0].choices["benchmark"]
    listed = {dest for _flag, dest in BUILD_FLAGS + BENCHMARK_FLAGS}
    for group in bench._action_groups:
        if group.title in ("build (ONNX export)", "benchmark"):
            dests = {action.dest for action in group._group_actions} - {"build_only", "rebuild"}
            assert dests <= listed, f"{group.title}: {sorted(dests - listed)} not checked"
