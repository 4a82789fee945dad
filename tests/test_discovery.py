"""Discovery runs real scripts and records their models, invocations and hashes."""

import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from turnkey_like.discovery import discover
from turnkey_like.inputs import resolve_inputs
from turnkey_like.records import Status

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "scripts"


def _discover(path, **kw):
    specs, errors = resolve_inputs([str(path)])
    assert not errors
    return discover(specs[0], **kw)


def _write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_two_models_names_locations_params_hashes():
    d = _discover(EXAMPLES / "two_models.py")
    r = d.result
    assert r.status == Status.SUCCESSFUL
    assert [(m.name, m.model_hash, m.invocations[0].hash) for m in r.models] == [
        ("pytorch_model", "479b1332", "f93db89f"), ("another_pytorch_model", "215ca1e3", "c69b7dea")]
    first = r.models[0]
    assert first.class_name == "SmallModel" and first.qualified_class == "two_models.SmallModel"
    assert first.location_kind == "created"
    line = Path(first.source_file).read_text().splitlines()[first.source_line - 1]
    assert line.startswith("pytorch_model = SmallModel(")
    assert (first.params, first.param_bytes) == (55, 55 * 4)  # 10*5 weights + 5 biases, float32
    assert set(d.live) == {"f93db89f", "c69b7dea"}


def test_max_depth_children_nest_with_parent_invocation_hash():
    r = _discover(EXAMPLES / "max_depth.py", max_depth=1).result
    (top,) = r.models
    assert top.invocations[0].hash == "7ebbe8c4"
    assert [(c.name, c.depth, c.model_hash, c.invocations[0].hash, c.invocations[0].parent_hash)
            for c in top.children] == [
        ("pytorch_model.fc", 1, "6d5eb4ee", "a1509240", "7ebbe8c4"),
        ("pytorch_model.fc2", 1, "d4b2ffa7", "f8d4746c", "7ebbe8c4")]
    assert _discover(EXAMPLES / "max_depth.py").result.models[0].children == []


def test_multiple_invocations_count_and_time():
    (model,) = _discover(EXAMPLES / "multiple_invocations.py").result.models
    assert [(i.hash, i.executed) for i in model.invocations] == [("ef80819e", 3), ("d5267eaf", 3)]
    assert all(i.time_s > 0 for i in model.invocations)


def test_shared_params_instances_merge_modes_and_environment_restored(tmp_path):
    script = _write(tmp_path, "modes.py", """
        import sys, os, torch
        os.chdir(os.path.dirname(os.path.abspath(__file__)) + '/..')
        class Tied(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.Embedding(10, 4)
                self.out = torch.nn.Linear(4, 10, bias=False)
                self.out.weight = self.emb.weight
            def forward(self, ids):
                return self.out(self.emb(ids))
        first, second = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
        act = torch.nn.ReLU()
        act(torch.rand(3))
        first(torch.rand(3))
        with torch.no_grad():
            second(torch.rand(3))
        with torch.inference_mode():
            tied = Tied()
            tied(torch.zeros(2, dtype=torch.long))
        first.train(); first(torch.rand(3))
        assert sys.argv[1:] == ['--flag', 'a b'], sys.argv
        sys.path.append('/nonexistent-tk-test')
    """)
    argv, path, cwd = sys.argv[:], sys.path[:], os.getcwd()
    original_call = torch.nn.Module.__call__
    r = _discover(script, script_args="--flag 'a b'").result
    assert r.status == Status.SUCCESSFUL, r.error
    assert (sys.argv, sys.path, os.getcwd()) == (argv, path, cwd)
    assert torch.nn.Module.__call__ is original_call
    names = [m.name for m in r.models]
    assert names == ["first", "tied"]  # ReLU has no parameters; first and second are one architecture
    assert r.models[0].invocations[0].executed == 3
    assert r.models[1].params == 10 * 4  # the tied weight counts once


def test_script_raising_halfway_keeps_earlier_models(tmp_path):
    script = _write(tmp_path, "halfway.py", """
        import torch
        model = torch.nn.Linear(4, 2)
        model(torch.rand(4))
        raise RuntimeError("boom")
    """)
    r = _discover(script).result
    assert r.status == Status.ERROR and r.error == "RuntimeError (line 5): boom"
    assert [m.name for m in r.models] == ["model"]


@pytest.mark.parametrize("body,expected", [
    ("import sys\nsys.exit(3)\n", "script exited with code 3"),
    ("def broken(:\n", "syntax error at line 1"),
])
def test_exit_and_syntax_errors(tmp_path, body, expected):
    r = _discover(_write(tmp_path, "bad.py", body)).result
    assert r.status == Status.ERROR and r.error.startswith(expected)


def test_sys_exit_zero_is_success(tmp_path):
    r = _discover(_write(tmp_path, "ok.py", "import sys, torch\nm = torch.nn.Linear(2, 2)\nm(torch.rand(2))\nsys.exit(0)\n")).result
    assert r.status == Status.SUCCESSFUL and [m.name for m in r.models] == ["m"]


def test_models_held_as_attributes_get_a_readable_name(tmp_path):
    script = _write(tmp_path, "pipe.py", """
        import torch
        class Pipeline:
            def __init__(self):
                self.encoder = torch.nn.Linear(4, 4)
            def run(self, x):
                return self.encoder(x)
        pipe = Pipeline()
        pipe.run(torch.rand(4))
    """)
    (model,) = _discover(script).result.models
    assert model.name in ("self.encoder", "pipe.encoder")


def test_torch_compile_is_discovered_and_marked(tmp_path):
    script = _write(tmp_path, "compiled.py", """
        import torch
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
        fast = torch.compile(model, backend="eager")
        fast(torch.rand(2, 4))
    """)
    r = _discover(script).result
    assert r.status == Status.SUCCESSFUL, r.error
    (model,) = r.models
    assert model.compiled and model.class_name == "Sequential"
    assert model.invocations[0].executed == 1


def test_calls_made_while_a_module_is_constructed_are_not_models(tmp_path):
    # ultralytics' DetectionModel runs its layers once in __init__ (stride probe); those layers must
    # not show up as top-level models of the script.
    script = _write(tmp_path, "probe.py", """
        import torch
        class Probed(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)])
                x = torch.zeros(1, 4)
                for layer in self.layers:
                    x = layer(x)
            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return x
        net = Probed()
        net(torch.rand(1, 4))
    """)
    r = _discover(script).result
    assert [m.name for m in r.models] == ["net"]


THREADED = """
import threading
import torch

class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)
        self.out = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))

model = Block()
start = threading.Barrier(4)

def worker():
    start.wait()  # all four threads call the model at once
    for _ in range(200):
        model(torch.rand(1, 8))

threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


@pytest.mark.parametrize("max_depth", [0, 1])
def test_calls_from_four_threads_are_counted_exactly_with_no_phantom_models(tmp_path, max_depth):
    d = _discover(_write(tmp_path, "threads.py", THREADED), max_depth=max_depth)
    r = d.result
    assert r.status == Status.SUCCESSFUL, r.error
    (model,) = r.models
    assert model.class_name == "Block"
    (inv,) = model.invocations
    assert inv.executed == 800
    if max_depth:
        assert sorted((c.name, c.invocations[0].executed) for c in model.children) == [
            ("model.fc", 800), ("model.out", 800)]
    else:
        assert model.children == []


SWEEP = """
import sys
import torch

class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)
        self.out = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.fc(x))

n = int(sys.argv[1])
block = torch.nn.Linear(8, 4)
stack = Block()
with torch.no_grad():
    for i in range(1, n + 1):
        block(torch.zeros(i, 8))
        if i % 10 == 0:
            stack(torch.zeros(i, 8))
    block(torch.zeros(3, 8))
"""


def test_a_sweep_of_distinct_shapes_reaches_tk_whole_in_its_child_as_in_process(tmp_path):
    """tk's record of an input whose child streamed it (each invocation on its own, then only tallies and
    the record without its invocations) is the record discovery makes in-process: every invocation,
    in first-call order, with TurnkeyML's hashes, counts, selection and skipped stages."""
    from turnkey_like.hashing import describe_inputs, invocation_hash, model_hash
    from turnkey_like.pipeline import Pipeline, RunOptions

    from conftest import assert_same_record

    n = 300
    script = _write(tmp_path, "sweep.py", SWEEP)
    linear = model_hash(torch.nn.Linear(8, 4))
    expected = [invocation_hash(linear, None, describe_inputs((torch.zeros(i, 8),), {}))[0] for i in range(1, n + 1)]
    selected = expected[41]  # batch 42: a ::HASH that selects one invocation of thousands
    specs, errors = resolve_inputs([f"{script}::{selected}"])
    assert not errors
    results = {}
    for isolate in (False, True):
        options = RunOptions(analyze_only=True, max_depth=1, script_args=str(n), hardware="a100",
                             cache_dir=str(tmp_path / f"cache_{isolate}"), isolate=isolate)
        summary = Pipeline(options).run(specs)
        assert not summary.errors, summary.errors
        results[isolate] = summary.results[0]
    streamed = results[True]
    block, stack = streamed.models
    assert [inv.hash for inv in block.invocations] == expected  # batch 3 again is no new invocation
    assert [inv.executed for inv in block.invocations] == [1, 1, 2] + [1] * (n - 3)
    assert len(stack.invocations) == n // 10 and [len(c.invocations) for c in stack.children] == [n // 10] * 2
    assert all(inv.time_s > 0 for _model, inv in streamed.invocations())
    chosen = [inv for _model, inv in streamed.invocations() if inv.selected]
    assert [inv.hash for inv in chosen] == [selected]
    assert chosen[0].characterization.status == Status.SUCCESSFUL
    assert {(inv.characterization.status, inv.characterization.reason) for _m, inv in streamed.invocations()
            if not inv.selected} == {(Status.SKIPPED, "not selected")}
    assert all(inv.build_name == f"sweep_{inv.hash}" for _model, inv in streamed.invocations())
    assert_same_record(streamed, results[False], "result",
                       skip=("time_s", "duration_s", "count_duration_s", "trace_duration_s", "started_at", "pid",
                             "run_id", "peak_memory_bytes"))


def test_inputs_are_kept_only_for_the_invocations_the_selection_keeps(tmp_path):
    """The later stages replay an invocation from copies of its first inputs (``Discovery.live``): with
    ``::HASH`` selectors only the selected invocations' are kept (a sweep of 10,000 shapes kept
    1.6 GB of copies for one characterization), by invocation hash or by model hash; the record
    itself is the same whatever the selection."""
    script = _write(tmp_path, "sweep.py", SWEEP)
    every = _discover(script, script_args="30", max_depth=1)
    block, stack = every.result.models
    assert set(every.live) == {inv.hash for _model, inv in every.result.invocations()}
    one = _discover(f"{script}::{block.invocations[4].hash}", script_args="30", max_depth=1)
    assert set(one.live) == {block.invocations[4].hash}
    by_model = _discover(f"{script}::{stack.model_hash}", script_args="30", max_depth=1)
    assert set(by_model.live) == {inv.hash for inv in stack.invocations}
    assert by_model.live[stack.invocations[1].hash].args[0].shape == (20, 8)
    for kept in (one, by_model):
        assert [(m.model_hash, inv.hash, inv.executed) for m, inv in kept.result.invocations()] == [
            (m.model_hash, inv.hash, inv.executed) for m, inv in every.result.invocations()]
