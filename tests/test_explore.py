"""``tk explore`` (``turnkey_like.report.explore``): node lines, ranges, filter, summary, measured
columns, and the CLI.

Characterizations come from real models (tests/zoo.py, torchvision with weights=None); expected node
numbers, groups and counts are read from those records, never written by hand. Measured columns come
from real per-layer runs (``tests/measured.py``: ResNet-18 on ONNX Runtime and torch eager).
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import EXAMPLES, run_tk
from measured import MODEL, measured_cache, private_copy
from test_fusion import Endings
from turnkey_like.characterize import characterize
from turnkey_like.errors import InputError
from turnkey_like.report.explore import COLUMNS, MEASURED_COLUMNS, NodeRange, explore_text, node_lines, select
from turnkey_like.report.measured import measured_run
from turnkey_like.report.text import short_op


class Functional(nn.Module):
    """A conv, then functional calls and tensor methods only: F.relu, .view, torch.matmul, .sum, .softmax."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.w = nn.Parameter(torch.randn(36, 5))

    def forward(self, x):
        y = F.relu(self.conv(x)).view(1, 4, 36)
        return torch.matmul(y, self.w).softmax(-1).sum(dim=1)


@pytest.fixture(scope="module")
def resnet18_char():
    import torchvision

    return characterize(torchvision.models.resnet18(weights=None).eval(), torch.randn(1, 3, 64, 64), hardware="a100")


def numbers(lines: list[str]) -> list[int]:
    """Node numbers of the node lines (after the header and the rule)."""
    return [int(line.split()[0]) for line in lines[2:]]


def test_every_node_has_a_fusion_group_functional_calls_and_methods_included():
    char = characterize(Functional(), torch.randn(1, 3, 8, 8), hardware="a100")
    groups = char.fusion.row_groups
    assert len(groups) == len(char.rows) and sorted(set(groups)) == list(range(char.fusion.summary.all_groups))
    assert groups == sorted(groups)  # numbered in execution order of their first op
    for g in char.fusion.groups:
        assert {groups[i] for i in g.ops} == {g.id}
    ops = [r.op for r in char.rows]
    assert "aten.relu.default" in ops and any("softmax" in op for op in ops) and "aten.sum.dim_IntList" in ops
    lines = node_lines(char, char.rows)
    assert lines[0].split()[:4] == ["node", "op", "module", "output"]
    assert all(line.split()[4] not in ("?", "-") for line in lines[2:])
    conv = lines[2].split()
    assert conv[:4] == ["0", "convolution", "conv", "1×4×6×6"] and conv[4].endswith("*")  # conv + relu fused


def test_line_columns_come_from_the_record(resnet18_char):
    r = resnet18_char.rows[5]
    header, _, line = node_lines(resnet18_char, [r])
    cells = line.split()
    assert cells[:3] == ["5", "native_batch_norm", r.module_path] and r.index == 5
    assert cells[3] == "×".join(map(str, r.output_shapes[0]))
    assert cells[-1] == ",".join(map(str, r.producers)) and cells[-2] != ""  # producers, after the roofline time
    assert len(COLUMNS) == 12 and header.split()[-1] == "producers"


def test_ranges_are_numbered_by_row_index_and_inclusive(resnet18_char):
    char = resnet18_char
    n = len(char.rows)
    assert [r.index for r in select(char, NodeRange(start=3, end=7))] == [3, 4, 5, 6, 7]
    assert [r.index for r in select(char, NodeRange(start=n - 2))] == [n - 2, n - 1]
    assert [r.index for r in select(char, NodeRange(end=2))] == [0, 1, 2]
    assert [r.index for r in select(char, NodeRange(around=10, context=2))] == [8, 9, 10, 11, 12]
    assert [r.index for r in select(char, NodeRange(around=0, context=2))] == [0, 1, 2]
    assert len(select(char, NodeRange(around=n - 1))) == 6  # default context 5, clipped at the end
    assert [r.index for r in select(char, NodeRange(max_nodes=4))] == [0, 1, 2, 3]
    convs = select(char, NodeRange(text="CONV"))
    assert convs and all("conv" in r.op or "conv" in r.module_path for r in convs)
    layer2 = select(char, NodeRange(text="layer2", max_nodes=3))
    assert len(layer2) == 3 and all(r.module_path.startswith("layer2") for r in layer2)
    text = explore_text(char, NodeRange(start=2, end=4))
    assert numbers(text.split("\n\n")[1].splitlines()) == [2, 3, 4]


@pytest.mark.parametrize("rng, message", [
    (NodeRange(start=1, around=3), "different range forms"),
    (NodeRange(end=4, max_nodes=2), "different range forms"),
    (NodeRange(context=2), "--context needs --around"),
    (NodeRange(start=-1), "numbered from 0"),
    (NodeRange(max_nodes=0), "at least 1"),
    (NodeRange(start=5, end=2), "before the start"),
    (NodeRange(start=10_000), "the graph has"),
    (NodeRange(around=10_000), "the graph has"),
])
def test_bad_ranges_are_input_errors(resnet18_char, rng, message):
    with pytest.raises(InputError, match=message):
        select(resnet18_char, rng)


def test_summary_without_a_range(resnet18_char):
    char = resnet18_char
    text = explore_text(char, NodeRange(), label="resnet18")
    assert text.startswith(f"resnet18: {len(char.rows)} nodes")
    assert f"{len(char.rows)} nodes, {char.fusion.summary.all_groups} fusion groups" in text
    assert "bottlenecks by bound" in text and "bottlenecks by category" in text
    for bound in char.breakdown.by_bound:
        assert bound in text
    top = char.rows[char.top_ops[0]]
    listed = text.split("top ops by roofline time")[1]
    assert f"{top.index}  " in listed
    # identical op and shapes are one line with a count: ResNet-18's 3x3 convolutions of layer1
    first = numbers(listed.split("\n\n")[0].splitlines()[1:])
    group = [r for r in char.rows if (r.op, r.input_shapes) == (char.rows[first[0]].op, char.rows[first[0]].input_shapes)]
    assert len(group) > 1 and f"{first[0]}  {len(group)}  " in listed


def test_summary_and_nodes_of_a_tiny_model_golden(golden):
    """What ``tk explore`` prints for a tiny model on the datasheet a100 profile (summary, then a
    range): counts from shapes and roofline times from the datasheet's peaks, so nothing depends on
    the CPU."""
    char = characterize(Functional(), torch.randn(1, 3, 8, 8), hardware="a100")
    summary = explore_text(char, NodeRange(), label="Functional")
    nodes = explore_text(char, NodeRange(around=3, context=1), label="Functional")
    assert numbers(nodes.split("\n\n")[1].splitlines()) == [2, 3, 4]
    golden("explore_functional.txt", summary + "\n" + nodes)


def test_cli_range_output_file_and_usage_errors(tmp_path, golden):
    cache = str(tmp_path / "cache")
    out = run_tk("explore", str(EXAMPLES / "max_depth.py"), "--start", "0", "--end", "3", "--cache-dir", cache,
                 "--hardware", "a100", "--output", str(tmp_path / "nodes.txt"), "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    text = (tmp_path / "nodes.txt").read_text()
    assert text.startswith("pytorch_model (TwoLayerModel) max_depth.py::") and " 2 nodes" in text
    assert numbers(text.split("\n\n")[1].splitlines()) == [0, 1]  # --end past the last node: clipped
    golden("explore_max_depth_nodes.txt", text)
    bad = run_tk("explore", str(EXAMPLES / "max_depth.py"), "--max-nodes", "3", "--around", "2")
    assert bad.returncode == 2 and "different range forms" in bad.stderr


def test_cli_several_invocations_first_shown_others_listed_hash_picks(tmp_path):
    cache = str(tmp_path / "cache")
    out = run_tk("explore", str(EXAMPLES / "two_models.py"), "--cache-dir", cache, "--hardware", "a100", "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pytorch_model (SmallModel) two_models.py::f93db89f: 1 nodes" in out.stdout
    assert "1 other invocation(s)" in out.stdout and "two_models.py::c69b7dea" in out.stdout
    out = run_tk("explore", f"{EXAMPLES / 'two_models.py'}::c69b7dea", "--cache-dir", cache, "--hardware", "a100",
                 "--max-nodes", "5", "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "two_models.py::c69b7dea: 1 nodes" in out.stdout and "other invocation" not in out.stdout
    assert numbers(out.stdout.split("\n\n")[1].splitlines()) == [0]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return measured_cache(tmp_path_factory)


def test_nodes_show_measured_time_and_share_of_the_shown_run(measured):
    """Node lines of a per-layer run: each op's measured time and share from the record, ``~`` where it
    spread over 10%, the run named in the heading with the other one."""
    inv = measured.record.invocation
    char = inv.characterization.result
    run = measured_run(inv)
    per_layer = run.per_layer
    text = explore_text(char, NodeRange(around=7, context=3), label="resnet18", measured=run)
    head, table = text.split("\n\n")
    assert f"measured: {run.bench.label()} (the latest per-layer run); also measured: {measured.ort.label()} " \
           "(--runtime ort)" in head
    whole = per_layer.module_measure("")
    assert f"whole model {whole.efficiency:.0%} of roof" in head
    for warning in char.hardware.warnings:
        assert f"hardware note: {warning}" in head
    for warning in run.bench.warnings:
        assert f"benchmark note: {warning}" in head
    header, _, *lines = table.splitlines()
    names = header.split()
    assert names[names.index("roofline") + 1:names.index("roofline") + 3] == ["measured", "ms"]  # "measured ms"
    assert numbers(table.splitlines()) == [4, 5, 6, 7, 8, 9, 10]  # --around 7 is row 7
    for line in lines:
        cells = line.split()
        r = char.rows[int(cells[0])]
        ms, share = cells[-3], cells[-2]
        noisy = per_layer.op_noisy(r.index)
        assert ms == f"{'~' if noisy else ''}{per_layer.op_ms[r.index]:.3g}"
        assert share == f"{per_layer.op_share(r.index):.1%}"
    assert len(MEASURED_COLUMNS) == 2


def test_cli_runtime_picks_the_run_and_numbers_match_tk_profile(measured, tmp_path):
    """``tk explore --runtime ort --around N``: the ORT run's times; node N is the op ``tk profile``
    lists as ``#`` N among its top ops."""
    cache = private_copy(measured, tmp_path)
    out = run_tk("explore", *MODEL, "--runtime", "ort", "--around", "4", "--context", "0", "--cache-dir", str(cache), "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"measured: {measured.ort.label()} (--runtime ort)" in out.stdout
    [line] = out.stdout.split("\n\n")[1].splitlines()[2:]
    ort = measured.ort.per_layer
    assert line.split()[0] == "4" and f"{ort.op_ms[4]:.3g}" in line
    profile = run_tk("profile", *MODEL, "--cache-dir", str(cache), "--top", "3", "-q", env={"COLUMNS": "250"})
    assert profile.returncode == 0, profile.stderr
    top = profile.stdout.split("Top 3 ops by roofline time")[1].splitlines()
    first = next(ln for ln in top if ln.strip()[:1].isdigit()).split()
    char = measured.record.invocation.characterization.result
    assert short_op(char.rows[int(first[0])].op) == first[2]  # "#" is OpRow.index, as explore numbers nodes
    bad = run_tk("explore", *MODEL, "--runtime", "tensorrt", "--cache-dir", str(cache), "-q")
    assert bad.returncode == 1 and "--runtime tensorrt: not a runtime tk measures" in bad.stderr


# ------------------------------------------------------------------------- --groups
def group_table(text: str) -> list[list[str]]:
    """The group lines of ``--groups`` text, split on runs of two spaces or more (header and rule left out)."""
    import re

    block = text.split("\n\n")[2].splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in block[2:]]


def test_groups_list_each_group_of_several_ops_from_the_record(resnet18_char):
    """One line per ``FusionResult.groups`` entry: its number, nodes, ops, module, MACs, FLOPs, bytes,
    internal and external bytes, fused AI, bound, roofline time and why it ended, all read from the
    record; a range keeps the groups holding a node of it."""
    from turnkey_like.units import format_bytes, format_intensity, format_seconds, si

    char = resnet18_char
    text = explore_text(char, NodeRange(), label="resnet18", groups=True)
    assert f"{len(char.fusion.groups)} shown of {char.fusion.summary.groups}" in text
    lines = group_table(text)
    assert len(lines) == len(char.fusion.groups)
    for line, g in zip(lines, char.fusion.groups):
        assert line[:4] == [str(g.id), ",".join(map(str, g.ops)), " → ".join(short_op(op) for op in g.op_names),
                            g.module_path]
        assert line[4:12] == [si(g.macs), si(g.flops), format_bytes(g.unfused_bytes), format_bytes(g.internal_bytes),
                              format_bytes(g.external_bytes), format_intensity(g.arithmetic_intensity), g.bound,
                              format_seconds(g.roofline_time_s)]
        assert line[12].startswith(g.end) and all(f"#{i} {short_op(char.rows[i].op)}" in line[12] for i in g.end_readers)
    # conv1 → bn1 → relu ends at the max pool; each downsample's conv → bn at the residual add its
    # block's main chain took (grouped); the last block's chain at the global average pool (mean)
    stem = char.fusion.groups[0]
    assert lines[0][12] == f"reduction: #{stem.end_readers[0]} max_pool2d_with_indices"
    downsample = [(line, g) for line, g in zip(lines, char.fusion.groups) if g.module_path.endswith("downsample.0")]
    assert len(downsample) == 3
    for line, g in downsample:
        add = g.end_readers[0]
        assert line[12] == f"grouped: #{add} add_ (group {char.fusion.row_groups[add]})"
    assert "grouped: the op reading the result is in an earlier group already" in text
    picked = explore_text(char, NodeRange(start=23, end=24), groups=True)
    assert [line[1] for line in group_table(picked)] == [",".join(map(str, g.ops)) for g in char.fusion.groups
                                                           if {23, 24} & set(g.ops)]


#: tests/test_fusion.py's ``Endings`` as a script (its source, then a call)
ENDINGS_SCRIPT = ("import torch\nimport torch.nn as nn\n\n\n" + inspect.getsource(Endings)
                  + "\n\nmodel = Endings().eval()\nwith torch.no_grad():\n    model(torch.randn(1, 4, 4, 4))\n")


def test_cli_groups_say_why_each_group_ended(tmp_path, golden):
    """``tk explore SCRIPT --groups`` on five chains that end for five reasons (tests/test_fusion.py
    ``Endings``): a second consumer, a residual add already grouped, a layout change, an upsampling,
    the model's output. Golden on the datasheet a100 profile: every figure comes from shapes.
    ``--runtime ort`` with no per-layer run says so on stderr instead of nothing."""
    script = tmp_path / "endings.py"
    script.write_text(ENDINGS_SCRIPT)
    out = run_tk("explore", str(script), "--groups", "--hardware", "a100", "--cache-dir", str(tmp_path / "cache"), "-q",
                 "--runtime", "ort")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "--runtime ort: model (Endings) endings.py::" in out.stderr and "has no per-layer run" in out.stderr
    ended = [line[-1].split(":")[0] for line in group_table(out.stdout)]
    assert ended == ["second consumer", "grouped", "layout change", "not fusible", "output"]
    golden("explore_groups_endings.txt", out.stdout)


# ------------------------------------------------------------------------- views reuse the cache
PROBE = """
import sys
from turnkey_like.cli import main
code = main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def _explore_probe(*argv):
    """``tk explore ARGV`` in a fresh interpreter that says on stderr whether tk imported torch: it does
    before it starts any input's child (``pipeline.runner.preload_for_children``, which children
    build and run their models in), and a run that takes everything from the cache never does."""
    import subprocess
    import sys

    from conftest import REPO

    return subprocess.run([sys.executable, "-c", PROBE, "explore", *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=900)


def test_explore_of_a_cached_named_model_takes_the_record_without_building_or_running_it(tmp_path):
    """The second ``tk explore --model resnet18 --imgsz 32`` on a cache takes its record: torch is never
    imported (no input's child, so nothing was built or run), the text is the same, the status says
    where it came from, and the record keeps the run that characterized it. A request that differs
    (another seed, another hardware profile, a size given that was a default) runs the model."""
    from turnkey_like.cache import Cache

    cache = tmp_path / "cache"
    argv = ["--model", "resnet18", "--imgsz", "32", "--hardware", "a100", "--cache-dir", str(cache), "-q"]
    first = _explore_probe(*argv)
    assert first.returncode == 0, first.stderr
    assert "torch imported: True" in first.stderr
    [build] = Cache(cache).builds()
    run_id = Cache(cache).load(build).invocation.characterization.run_id
    second = _explore_probe(*argv)
    assert second.returncode == 0, second.stderr
    assert "torch imported: False" in second.stderr
    assert second.stdout == first.stdout
    assert f"taken from the cache (build {build}, characterized by run {run_id})" in second.stderr
    record = Cache(cache).load(build)
    assert (record.invocation.characterization.run_id, record.invocation.characterization.reason) == (
        run_id, "reused from cache")
    assert record.model_request.defaulted == ["source", "batch_size", "no_weights"]
    for other in (["--seed", "1"], ["--hardware", "h100"], ["--batch-size", "1"]):
        changed = _explore_probe(*[a for a in argv if a not in ("--hardware", "a100")],
                                 *(["--hardware", "a100"] if "--hardware" not in other else []), *other)
        assert changed.returncode == 0, (other, changed.stderr)
        assert "torch imported: True" in changed.stderr and "taken from the cache" not in changed.stderr, other


def test_a_reused_record_keeps_its_measured_runs(measured, tmp_path):
    """``tk explore`` of the per-layer-measured ResNet-18 (tests/measured.py) takes the record from the
    cache and still shows its measured columns and the run they come from."""
    cache = private_copy(measured, tmp_path)
    out = run_tk("explore", *MODEL, "--cache-dir", str(cache), "--around", "7", "--context", "0", "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "taken from the cache" in out.stderr
    assert f"measured: {measured.record.invocation.benchmark.result.label()}" in out.stdout
    assert "measured ms" in out.stdout.splitlines()[-3]
