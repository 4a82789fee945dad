"""Graph pictures (``turnkey_like.views.graph``, ``tk profile --visualize``): every file is opened and
checked against the characterization record it was drawn from.

SVG: the node groups (``<g id="n12" class="node">``) and edge groups are counted against the rows
and their ``producers``; fill colours against each row's bound. DOT: node statements are counted.
PNG: the signature and the IHDR size. Models are real (torchvision, transformers default configs
with 2 layers, ultralytics from its yaml), random weights, nothing downloaded; measured times come
from real per-layer runs (``tests/measured.py``).

SVG, PNG and PDF files need Graphviz's ``dot``: those tests carry the ``graphviz`` marker and skip,
saying so, where it is missing. DOT output, and the one-line error for a picture without ``dot``,
are tested everywhere (with ``PATH`` emptied, so also where ``dot`` is installed).
"""

from __future__ import annotations

import re
import shutil
import struct
import xml.etree.ElementTree as ET

import pytest
import torch

from conftest import EXAMPLES, run_tk
from measured import MODEL, measured_cache, private_copy
from turnkey_like.characterize import characterize
from turnkey_like.errors import InputError
from turnkey_like.units import si
from turnkey_like.views import output_path_for
from turnkey_like.views.graph import (BOUND_COLOURS, SHARE_COLOURS, check_color_by, check_visualize_target, graph_dot,
                                      graph_svg, render_graph)

SVG = "{http://www.w3.org/2000/svg}"


def needs_dot(test):
    """Mark a test that needs Graphviz's ``dot``: the ``graphviz`` marker, and a skip saying why where it is missing."""
    skip = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing (apt-get install graphviz)")
    return pytest.mark.graphviz(skip(test))


def _op_or_module(node_id: str) -> bool:
    return not node_id.startswith(("legend", "input_")) and node_id != "output"


def svg_nodes(svg: str) -> dict[str, ET.Element]:
    """Graph node groups of an SVG by id (legend, input and output nodes left out)."""
    root = ET.fromstring(svg)
    return {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("class") == "node" and _op_or_module(g.get("id", ""))}


def svg_edges(svg: str) -> list[str]:
    """The ``source->target`` titles of the SVG's edges between ops or modules (the legend's invisible
    edges and the graph input and output edges left out)."""
    root = ET.fromstring(svg)
    titles = [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    return [t for t in titles if all(_op_or_module(end) for end in t.split("->"))]


def expected_edges(char) -> set[str]:
    return {f"n{p}->n{r.index}" for r in char.rows for p in r.producers}


@pytest.fixture(scope="module")
def resnet50_char():
    import torchvision

    return characterize(torchvision.models.resnet50(weights=None).eval(), torch.randn(1, 3, 224, 224),
                        hardware="a100")


@pytest.fixture(scope="module")
def bert_char():
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(num_hidden_layers=2)).eval()
    ids = torch.randint(0, 1000, (1, 16))
    return characterize(model, ids, attention_mask=torch.ones(1, 16, dtype=torch.long), hardware="a100")


@needs_dot
def test_every_op_is_a_node_and_every_producer_an_edge(resnet50_char):
    svg = graph_svg(resnet50_char, fold_repeats=False)
    nodes = svg_nodes(svg)
    assert set(nodes) == {f"n{r.index}" for r in resnet50_char.rows}
    edges = svg_edges(svg)
    assert len(edges) == len(set(edges))
    assert set(edges) == expected_edges(resnet50_char)


@needs_dot
def test_nodes_show_op_shape_macs_and_are_coloured_by_bound(resnet50_char):
    svg = graph_svg(resnet50_char, fold_repeats=False)
    nodes = svg_nodes(svg)
    conv = next(r for r in resnet50_char.rows if r.op == "aten.convolution.default")
    text = " ".join(t.text for t in nodes[f"n{conv.index}"].iter(f"{SVG}text"))
    assert "convolution · conv1" in text and "1×64×112×112" in text and "MACs 118 M" in text
    assert conv.bound in text
    for r in resnet50_char.rows:
        shape = next(e for e in nodes[f"n{r.index}"].iter() if e.tag in (f"{SVG}path", f"{SVG}polygon"))
        assert shape.get("fill") == BOUND_COLOURS[r.bound], r
    legend = [g for g in ET.fromstring(svg).iter(f"{SVG}g") if (g.get("id") or "").startswith("legend_")]
    assert {" ".join(t.text for t in g.iter(f"{SVG}text")) for g in legend} == set(BOUND_COLOURS)


@needs_dot
def test_resnet50_collapsed_and_folded_stays_readable(resnet50_char):
    char = resnet50_char
    for depth in (1, 2):
        nodes = svg_nodes(graph_svg(char, collapse=depth, fold_repeats=False))
        expected = {("m" + ".".join(r.module_path.split(".")[:depth])) if r.module_path.count(".") + 1 >= depth
                    and r.module_path else f"n{r.index}" for r in char.rows}
        assert set(nodes) == expected
    # depth 2 folds layer3.1 ... layer3.5 into one node marked ×5: 4 stem ops + 8 blocks + pool + fc
    svg = graph_svg(char, collapse=2)
    nodes = svg_nodes(svg)
    assert len(nodes) <= 20
    assert "mlayer3.1" in nodes and "mlayer3.2" not in nodes
    assert "×5 (figures each)" in " ".join(t.text for t in nodes["mlayer3.1"].iter(f"{SVG}text"))
    macs = {m.path: m.macs for m in char.modules}
    assert f"MACs {si(macs['layer3.1'])}" in " ".join(t.text for t in nodes["mlayer3.1"].iter(f"{SVG}text"))


@needs_dot
def test_bert_folds_identical_layers_into_one_block_marked_x2(bert_char):
    char = bert_char
    [run] = char.repeats
    assert run.paths == ["encoder.layer.0", "encoder.layer.1"] and run.class_name == "BertLayer"
    svg = graph_svg(char)
    nodes = svg_nodes(svg)
    in_layer = lambda r, p: r.module_path == p or r.module_path.startswith(p + ".")  # noqa: E731
    assert len(nodes) == len(char.rows) - run.ops
    assert not any(f"n{r.index}" in nodes for r in char.rows if in_layer(r, "encoder.layer.1"))
    assert "encoder.layer.0 ×2 (identical blocks, one drawn; figures are each block&#39;s)" in svg
    # the block's result still reaches the pooler, and no edge goes from the drawn block to itself
    edges = svg_edges(svg)
    pooler = next(r for r in char.rows if r.module_path == "pooler.dense")
    assert any(e.endswith(f"->n{pooler.index}") for e in edges)
    # unfolded: every op and every dataflow edge
    svg = graph_svg(char, fold_repeats=False)
    assert len(svg_nodes(svg)) == len(char.rows) and set(svg_edges(svg)) == expected_edges(char)


def test_inputs_and_output_are_nodes_so_no_branch_floats_loose(bert_char):
    """BERT's inputs (the ids, positional, and attention_mask: one node, both [1, 16] int64) feed every
    op that reads no earlier op and reads a tensor of their shape, the embeddings and the mask branch
    alike; every op no later op reads feeds the output node."""
    char = bert_char
    source = graph_dot(char, fold_repeats=False).source
    edges = set(re.findall(r"^\s*(\w+) -> (\w+)", source, flags=re.M))
    assert list(char.inputs) == ["args[0]", "attention_mask"]
    assert 'input_0 [label="input: args[0], attention_mask\\n1×16 int64"' in source
    shapes = [list(d.shape) for d in char.inputs.values()]
    fed = {f"n{r.index}" for r in char.rows if not r.producers and any(s in shapes for s in r.input_shapes)}
    assert fed and {b for a, b in edges if a == "input_0"} == fed
    assert any(char.rows[int(n[1:])].op.startswith("aten.embedding") for n in fed)  # the ids
    assert any("mask" in char.rows[int(n[1:])].module_path or not char.rows[int(n[1:])].module_path
               and not char.rows[int(n[1:])].op.startswith("aten.embedding") for n in fed)  # the mask branch
    read = {p for r in char.rows for p in r.producers}
    assert {a for a, b in edges if b == "output"} == {f"n{r.index}" for r in char.rows if r.index not in read}
    targets = {b for _, b in edges}  # no op node but constant ones lacks an incoming edge
    loose = [r for r in char.rows if f"n{r.index}" not in targets]
    assert all(not r.producers and not any(s in shapes for s in r.input_shapes) for r in loose), loose


def test_dot_needs_no_program_and_counts_nodes(bert_char, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    path = render_graph(bert_char, tmp_path / "bert.dot", fold_repeats=False)
    text = path.read_text()
    assert text.startswith("digraph tk {")
    ids = re.findall(r'^\s*"?(n\d+)"? \[', text, flags=re.M)
    assert re.search(r"^\s*input_0 \[", text, flags=re.M) and re.search(r"^\s*output \[", text, flags=re.M)
    assert sorted(ids) == sorted(f"n{r.index}" for r in bert_char.rows)
    for picture in ("bert.svg", "bert.png", "bert.PDF"):  # one line naming both fixes, before any layout
        for call in (lambda: check_visualize_target(tmp_path / picture), lambda: render_graph(bert_char, tmp_path / picture)):
            with pytest.raises(InputError) as err:
                call()
            message = err.value.message
            assert "apt-get install graphviz" in message and "brew install graphviz" in message, message
            assert "--html page.html" in message and "\n" not in message
    assert not list(tmp_path.glob("bert.[sp]*"))
    assert check_visualize_target(tmp_path / "bert.gv") == "dot"
    with pytest.raises(InputError, match="unknown picture format '.jpg'"):
        check_visualize_target(tmp_path / "r50.jpg")
    with pytest.raises(InputError, match="--collapse -1"):
        check_visualize_target(tmp_path / "r50.dot", collapse=-1)
    with pytest.raises(InputError, match="--collapse -1"):
        graph_dot(bert_char, collapse=-1)
    with pytest.raises(InputError, match="--color-by measured: this invocation has no per-layer run"):
        graph_dot(bert_char, color_by="measured")
    with pytest.raises(InputError, match="--color-by heat: unknown"):
        check_color_by("heat", True)


def test_tk_profile_visualize_svg_without_dot_is_a_one_line_error(tmp_path):
    """``tk profile hello_world.py --visualize x.svg`` with no ``dot`` on ``PATH``: exit 1, one error line."""
    out = run_tk("profile", str(EXAMPLES / "hello_world.py"), "-q", "--cache-dir", str(tmp_path / "cache"),
                 "--visualize", str(tmp_path / "x.svg"), env={"PATH": str(tmp_path)})
    assert out.returncode == 1, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "apt-get install graphviz" in errors[0] and "--html page.html" in errors[0], out.stderr
    assert not (tmp_path / "x.svg").exists()


#: A tiny script for the DOT golden: a conv whose output feeds both a second conv and the residual
#: add (a fan-out), then a linear layer and a softmax.
TINY_CONVNET = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        y = F.relu(self.conv(x))
        y = y + self.conv2(y)
        return self.fc(y.flatten(1)).softmax(-1)


model = TinyConvNet()
model(torch.randn(1, 3, 8, 8))
"""


def test_visualize_dot_of_a_tiny_model_golden(tmp_path, golden):
    """``tk profile --visualize x.dot`` on the datasheet a100 profile: the whole DOT file, golden.
    Every figure in it is counted from shapes (MACs, FLOPs, bytes) or derived from them with the
    datasheet's peaks (roofline time, bound), so it does not depend on the CPU."""
    script = tmp_path / "tiny_convnet.py"
    script.write_text(TINY_CONVNET)
    out = run_tk("profile", str(script), "--hardware", "a100", "-q", "--cache-dir", str(tmp_path / "cache"),
                 "--visualize", str(tmp_path / "graph.dot"))
    assert out.returncode == 0, out.stdout + out.stderr
    text = (tmp_path / "graph.dot").read_text()
    assert "n0 -> n1" in text and "n1 -> n3" in text  # the relu's output feeds conv2 and the add
    assert "input_0 -> n0" in text and "n5 -> output" in text
    golden("visualize_tiny_convnet.dot", text)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return measured_cache(tmp_path_factory)


def test_nodes_show_roofline_and_measured_time_and_colour_by_share(measured):
    """With a per-layer run each op node shows its roofline time and its measured time and share
    (``PerLayerResult.op_ms``); ``color_by="measured"`` fills it by that share's band; a folded block's
    op says its roofline time is each block's and its measured time block 1's."""
    from turnkey_like.units import format_ms, format_seconds

    char = measured.record.invocation.characterization.result
    [run, _] = measured.runs
    per_layer = run.per_layer
    source = graph_dot(char, fold_repeats=False, per_layer=per_layer, measured_label=run.label(),
                       color_by="measured").source
    assert f"measured on {run.label()}: ms per iteration (share of the profiled run)" in source
    folded = {r.index for p in (rep.paths[0] for rep in char.repeats) for r in char.rows
              if r.module_path == p or r.module_path.startswith(p + ".")}
    for r in char.rows:
        line = re.search(rf'^\s*n{r.index} \[label="([^"]*)" fillcolor="([^"]*)"', source, flags=re.M)
        share = per_layer.op_share(r.index)
        expected = (f"roofline {format_seconds(r.roofline_time_s)} · measured {format_ms(per_layer.op_ms[r.index])} "
                    f"({share:.1%})")
        assert line.group(1).endswith(expected), (line.group(1), expected)
        band = next(c for bound, c in SHARE_COLOURS if share < bound) if share > 0 else "#ffffff"
        assert line.group(2) == band
    folded_source = graph_dot(char, per_layer=per_layer).source
    r = char.rows[min(folded)]
    assert re.search(rf'n{r.index} \[label="[^"]*roofline [^"]* each · measured [^"]* in block 1"', folded_source)
    collapsed = graph_dot(char, collapse=1, per_layer=per_layer).source
    layer2 = per_layer.module_measure("layer2")
    assert f"measured {format_ms(layer2.measured_ms)} ({layer2.share:.1%})" in collapsed


def test_tk_profile_color_by_measured_and_runtime(measured, tmp_path):
    cache = private_copy(measured, tmp_path)
    out = run_tk("profile", *MODEL, "--cache-dir", str(cache), "-q", "--visualize", str(tmp_path / "g.dot"),
                 "--color-by", "measured", "--runtime", "ort")
    assert out.returncode == 0, out.stdout + out.stderr
    text = (tmp_path / "g.dot").read_text()
    assert f"measured on {measured.ort.label()}" in text and "share of measured time" in text


@needs_dot
def test_png_and_pdf_files(resnet50_char, tmp_path):
    png = render_graph(resnet50_char, tmp_path / "r50.png", collapse=2).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert 200 < width < 5000 and 500 < height < 10000
    assert render_graph(resnet50_char, tmp_path / "r50.pdf", collapse=1).read_bytes()[:5] == b"%PDF-"


def test_output_path_gets_the_invocation_hash_only_with_several(tmp_path):
    assert output_path_for(tmp_path / "g.svg", "c69b7dea", False) == tmp_path / "g.svg"
    assert output_path_for(tmp_path / "g.svg", "c69b7dea", True) == tmp_path / "g_c69b7dea.svg"


@needs_dot
def test_tk_profile_visualize_writes_one_picture_per_invocation(tmp_path):
    out = run_tk("profile", str(EXAMPLES / "two_models.py"), "--hardware", "a100", "-q", "--cache-dir",
                 str(tmp_path / "cache"), "--visualize", str(tmp_path / "pics" / "graph.svg"))
    assert out.returncode == 0, out.stdout + out.stderr
    for h in ("f93db89f", "c69b7dea"):
        nodes = svg_nodes((tmp_path / "pics" / f"graph_{h}.svg").read_text())
        assert set(nodes) == {"n0"}  # SmallModel: one addmm
        assert f"graph_{h}.svg" in out.stdout


def _untraceable(name):
    """(model, args, kwargs) of the models the pictures must handle that do not trace (or barely)."""
    if name == "gpt2":
        from transformers import GPT2Config, GPT2Model

        return GPT2Model(GPT2Config(n_layer=2)).eval(), (torch.randint(1, 1000, (1, 16)),), {"use_cache": False}
    if name == "detr":
        from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

        config = DetrConfig(backbone_config=ResNetConfig(out_features=["stage4"]), use_pretrained_backbone=False,
                            encoder_layers=2, decoder_layers=2)
        return DetrForObjectDetection(config).eval(), (), {"pixel_values": torch.rand(1, 3, 128, 128)}
    if name == "yolov8n":
        from ultralytics import YOLO

        return YOLO("yolov8n.yaml").model.eval(), (torch.rand(1, 3, 128, 128),), {}
    import torchvision

    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    return model.eval(), ([torch.rand(3, 160, 160)],), {}


@needs_dot
@pytest.mark.parametrize("name", ["gpt2", pytest.param("detr", marks=pytest.mark.slow),
                                  pytest.param("yolov8n", marks=pytest.mark.slow),
                                  pytest.param("fasterrcnn", marks=pytest.mark.slow)])
def test_models_that_do_not_trace_are_drawn(name, tmp_path):
    model, args, kwargs = _untraceable(name)
    with torch.no_grad():
        char = characterize(model, *args, hardware="a100", **kwargs)
    assert_runs_identical_in_cost(char)  # the FPN lists (28.7 M vs 118 M MACs at 320×320): no run
    assert not any(".fpn." in p + "." for run in char.repeats for p in run.paths)
    svg = render_graph(char, tmp_path / f"{name}.svg", fold_repeats=False).read_text()
    assert set(svg_nodes(svg)) == {f"n{r.index}" for r in char.rows}
    assert set(svg_edges(svg)) == expected_edges(char)
    svg = graph_svg(char)
    folded = svg_nodes(svg)
    assert all(end in folded for edge in svg_edges(svg) for end in edge.split("->"))  # no implicit nodes
    drawn_once = len(char.rows)
    seen: set[str] = set()
    for run in char.repeats:  # outermost first; runs inside a dropped block are already gone
        if any(p.startswith(s + ".") for s in seen for p in run.paths[:1]):
            continue
        seen.update(run.paths[1:])
        drawn_once -= run.ops * (len(run.paths) - 1)
    assert len(folded) == drawn_once


def test_committed_readme_picture_is_a_real_tk_graph():
    """docs/img/resnet50.svg: `tk profile examples/scripts/resnet50.py --hardware a100 --visualize
    docs/img/resnet50.svg --collapse 2` (the README shows it)."""
    svg = (EXAMPLES.parent.parent / "docs" / "img" / "resnet50.svg").read_text()
    nodes = svg_nodes(svg)
    assert len(nodes) == 14 and {"mlayer1.0", "mlayer3.1", "mlayer4.1"} <= set(nodes)
    assert "layer3.1 (Bottleneck) ×5" in svg and "1 MAC = 2 FLOPs" in svg


# ------------------------------------------------------------------------- honest folding (×N)
def _block_ops(char, path: str) -> list[tuple]:
    """Per op of the block at ``path``, in order: its path inside the block, op, input and output
    shapes, MACs and weight bytes, as the record holds them."""
    cut = len(path) + 1
    return [(r.module_path[cut:], r.op, r.input_shapes, r.output_shapes, r.macs, r.weight_bytes)
            for r in char.rows if r.module_path == path or r.module_path.startswith(path + ".")]


def assert_runs_identical_in_cost(char) -> None:
    """Every recorded run's blocks have the same ops, shapes, MACs and weights, and the same module
    totals (MACs, parameters, bytes) as the run records for each block."""
    modules = {m.path: m for m in char.modules}
    for run in char.repeats:
        first = _block_ops(char, run.paths[0])
        assert len(first) == run.ops
        for path in run.paths:
            m = modules[path]
            assert (m.macs, m.flops, m.params, m.bytes) == (run.macs, run.flops, run.params, run.bytes), (run, path)
            assert _block_ops(char, path) == first, (run.paths[0], path)


def _four_convs():
    """The characterization of a 1×1 conv 4→8 then three 3×3 convs 8→8 (padding 1) on [1, 4, 6, 6]."""
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 1), *(torch.nn.Conv2d(8, 8, 3, padding=1) for _ in range(3)))
    return characterize(model.eval(), torch.randn(1, 4, 6, 6), hardware="a100")


def test_blocks_fold_only_when_identical_in_cost():
    """A 1×1 conv 4→8 then three 3×3 convs 8→8 (padding 1) on a [1, 4, 6, 6] input: all four are
    ``Conv2d`` with output [1, 8, 6, 6], but only the last three cost the same, so only they fold.
    MACs (bias not counted): 1×1: 8·6·6 outputs × 4 inputs = 1152; 3×3: 8·6·6 × 8·3·3 = 20736 each.
    Each 3×3 block: 8·8·9 + 8 = 584 parameters; bytes = input 1152 + weight 2304 + bias 32 read,
    1152 written = 4640."""
    char = _four_convs()
    assert [r.macs for r in char.rows] == [1152, 20736, 20736, 20736]
    [run] = char.repeats
    assert run.paths == ["1", "2", "3"] and run.class_name == "Conv2d"
    assert (run.ops, run.macs, run.flops, run.params, run.bytes) == (1, 20736, 2 * 20736, 584, 4640)
    assert_runs_identical_in_cost(char)
    source = graph_dot(char).source
    assert re.search(r'^\s*n0 \[label="convolution · 0\\n1×8×6×6\\nMACs 1.15 k ·', source, flags=re.M)  # drawn apart
    assert re.search(r'^\s*n1 \[label="convolution · 1\\n1×8×6×6\\nMACs 20.7 k each ·', source, flags=re.M)
    assert not re.search(r"^\s*n[23] \[", source, flags=re.M)
    assert 'label="1 ×3 (identical blocks, one drawn; figures are each block\'s)"' in source


def test_mobilenet_v3_large_folds_only_its_identical_inverted_residuals():
    """torchvision's MobileNetV3-Large table (``_mobilenet_v3_conf``): features 5 and 6 (40 ch, 5×5,
    expand 120, SE), 9 and 10 (80 ch, 3×3, expand 184) and 14 and 15 (160 ch, 5×5, expand 960) are
    the only consecutive identical blocks. Inside every block the expand 1×1 and the depthwise
    ``Conv2dNormActivation`` have the same class and output shape but not the same MACs (features.3:
    2.03 M against 5.42 M... folded before, hiding the costlier one): they are no run now."""
    import torchvision

    with torch.no_grad():
        char = characterize(torchvision.models.mobilenet_v3_large(weights=None).eval(), torch.randn(1, 3, 224, 224),
                            hardware="a100")
    assert [run.paths for run in char.repeats] == [["features.5", "features.6"], ["features.9", "features.10"],
                                                   ["features.14", "features.15"]]
    assert_runs_identical_in_cost(char)
    macs = {m.path: m.macs for m in char.modules}
    assert macs["features.3.block.0"] != macs["features.3.block.1"]
    nodes = set(re.findall(r'^\s*(n\d+) \[label=', graph_dot(char).source, flags=re.M))
    depthwise = [r for r in char.rows if r.module_path.startswith("features.3.block.1.")]
    assert depthwise and all(f"n{r.index}" in nodes for r in depthwise)  # the costlier block is drawn
    folded_away = sum(run.ops * (len(run.paths) - 1) for run in char.repeats)
    assert len(nodes) == len(char.rows) - folded_away


def test_yolov8n_head_convolutions_of_different_widths_do_not_fold():
    """YOLOv8n's Detect head (ultralytics ``Detect``: c2 = max(16, 64 // 4, 4·16) = 64, c3 = max(64,
    80) = 80): ``cv2.i`` is Conv(ch_i→64, 3×3), Conv(64→64, 3×3) and ``cv3.i`` Conv(ch_i→80),
    Conv(80→80), for ch = 64, 128, 256. Only ``cv2.0`` (64→64 twice) is two identical blocks; the
    other five pairs share class and output shape but not MACs, and were folded before."""
    from ultralytics import YOLO

    with torch.no_grad():
        char = characterize(YOLO("yolov8n.yaml").model.eval(), torch.rand(1, 3, 320, 320), hardware="a100")
    assert_runs_identical_in_cost(char)
    head = [run.paths for run in char.repeats if run.paths[0].startswith("model.22.")]
    assert head == [["model.22.cv2.0.0", "model.22.cv2.0.1"]]
    bottlenecks = [run.paths for run in char.repeats if run.class_name == "Bottleneck"]
    assert bottlenecks == [["model.4.m.0", "model.4.m.1"], ["model.6.m.0", "model.6.m.1"]]


def test_fpn_inner_and_layer_blocks_are_not_one_block_twice():
    """torchvision's ``FeaturePyramidNetwork([16, 32, 64], 32)``: ``inner_blocks`` (1×1 convs to 32
    channels) and ``layer_blocks`` (3×3 convs 32→32) are both ``ModuleList``s of three
    ``Conv2dNormActivation`` with the same output shapes, run interleaved. On [1, 16, 32, 32],
    [1, 32, 16, 16], [1, 64, 8, 8]: inner MACs 32·8·8·64 + 32·16·16·32 + 32·32·32·16 = 917504, layer
    MACs 3·3·32 × 32·(64 + 256 + 1024) = 12386304. They were folded as one block twice (and the
    faster R-CNN picture lost its costlier list); now nothing folds and every conv is drawn."""
    from collections import OrderedDict

    import torchvision

    fpn = torchvision.ops.FeaturePyramidNetwork([16, 32, 64], 32).eval()
    x = OrderedDict(feat0=torch.rand(1, 16, 32, 32), feat1=torch.rand(1, 32, 16, 16), feat2=torch.rand(1, 64, 8, 8))
    with torch.no_grad():
        char = characterize(fpn, x, hardware="a100")
    macs = {m.path: m.macs for m in char.modules}
    assert (macs["inner_blocks"], macs["layer_blocks"]) == (917504, 12386304)
    assert char.repeats == []
    source = graph_dot(char).source
    convs = [r for r in char.rows if r.op == "aten.convolution.default"]
    assert len(convs) == 6 and all(re.search(rf"^\s*n{r.index} \[", source, flags=re.M) for r in convs)
    assert "×2" not in source


def test_a_twelve_layer_bert_still_folds_to_x12():
    """A 12-layer BERT (hidden 64, 2 heads, intermediate 128): its 12 ``BertLayer`` blocks are
    identical in cost and draw as one, marked ×12, with figures each."""
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(num_hidden_layers=12, hidden_size=64, num_attention_heads=2,
                                 intermediate_size=128)).eval()
    with torch.no_grad():
        char = characterize(model, torch.randint(0, 1000, (1, 16)), hardware="a100")
    [run] = char.repeats
    assert run.paths == [f"encoder.layer.{i}" for i in range(12)] and run.class_name == "BertLayer"
    assert_runs_identical_in_cost(char)
    source = graph_dot(char).source
    assert "encoder.layer.0 ×12 (identical blocks, one drawn; figures are each block's)" in source
    nodes = re.findall(r'^\s*(n\d+) \[label="([^"]*)"', source, flags=re.M)
    assert len(nodes) == len(char.rows) - 11 * run.ops
    inside = {f"n{r.index}" for r in char.rows if r.module_path.startswith("encoder.layer.0.")}
    assert all("each" in label for node, label in nodes if node in inside)
    collapsed = graph_dot(char, collapse=3).source  # encoder.layer.i as module nodes
    assert re.search(r'"?mencoder\.layer\.0"? \[label="encoder\.layer\.0 \(BertLayer\) ×12 \(figures each\)[^"]*MACs '
                     r'[^"]* each', collapsed)


def test_runs_recorded_before_costs_were_compared_are_drawn_unfolded():
    """A record from an older tk may hold a run whose blocks differ in cost: for the four convs of
    :func:`_four_convs` it recorded ``0 ... 3`` as one run of 4 (class and output shapes matched).
    Read from such a record, the picture draws every block rather than the first one ×4."""
    import msgspec

    from turnkey_like.records import RepeatedBlocks

    char = _four_convs()
    old = msgspec.structs.replace(char, repeats=[RepeatedBlocks(paths=["0", "1", "2", "3"], class_name="Conv2d", ops=1)])
    source = graph_dot(old).source
    assert " ×4" not in source and " each" not in source
    assert re.findall(r'^\s*(n\d+) \[', source, flags=re.M) == ["n0", "n1", "n2", "n3"]
