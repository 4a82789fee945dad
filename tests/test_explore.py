"""``tk explore`` (``turnkey_like.report.explore``): node lines, ranges, filter, summary, and the CLI.

Characterizations come from real models (tests/zoo.py, torchvision with weights=None); expected node
numbers, groups and counts are read from those records, never written by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import EXAMPLES, run_tk
from turnkey_like.characterize import characterize
from turnkey_like.errors import InputError
from turnkey_like.report.explore import COLUMNS, NodeRange, explore_text, node_lines, select


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
    assert conv[:4] == ["1", "convolution", "conv", "1×4×6×6"] and conv[4].endswith("*")  # conv + relu fused


def test_line_columns_come_from_the_record(resnet18_char):
    r = resnet18_char.rows[0]
    line = node_lines(resnet18_char, [r])[2].split()
    assert line[0] == "1" and line[1] == "convolution" and line[2] == "conv1"
    assert line[3] == "×".join(map(str, r.output_shapes[0]))
    assert line[-1] == r.bound.split()[-1] and len(COLUMNS) == 9


def test_ranges_are_one_based_and_inclusive(resnet18_char):
    char = resnet18_char
    n = len(char.rows)
    assert [r.index + 1 for r in select(char, NodeRange(start=3, end=7))] == [3, 4, 5, 6, 7]
    assert [r.index + 1 for r in select(char, NodeRange(start=n - 1))] == [n - 1, n]
    assert [r.index + 1 for r in select(char, NodeRange(end=2))] == [1, 2]
    assert [r.index + 1 for r in select(char, NodeRange(around=10, context=2))] == [8, 9, 10, 11, 12]
    assert [r.index + 1 for r in select(char, NodeRange(around=1, context=2))] == [1, 2, 3]
    assert len(select(char, NodeRange(around=n))) == 6  # default context 5, clipped at the end
    assert [r.index + 1 for r in select(char, NodeRange(max_nodes=4))] == [1, 2, 3, 4]
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
    (NodeRange(start=0), "numbered from 1"),
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
    assert f"{top.index + 1}  " in text.split("top ops by roofline time")[1]


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
    out = run_tk("explore", str(EXAMPLES / "max_depth.py"), "--start", "1", "--end", "3", "--cache-dir", cache,
                 "--hardware", "a100", "--output", str(tmp_path / "nodes.txt"), "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    text = (tmp_path / "nodes.txt").read_text()
    assert text.startswith("pytorch_model (TwoLayerModel) max_depth.py::") and " 2 nodes" in text
    assert numbers(text.split("\n\n")[1].splitlines()) == [1, 2]  # --end past the last node: clipped
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
    assert numbers(out.stdout.split("\n\n")[1].splitlines()) == [1]
