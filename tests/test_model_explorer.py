"""``tk view`` (``turnkey_like.views.model_explorer``): the graph JSON and overlays Model Explorer loads,
with measured times from real per-layer runs (tests/measured.py), and the real server loaded in
headless Chromium, offline (tests/browser.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

from browser import browser_page, require_chromium
from conftest import EXAMPLES, REPO
from measured import measured_cache
from turnkey_like.characterize import characterize
from turnkey_like.views import model_explorer as me

pytest.importorskip("model_explorer")


@pytest.fixture(scope="module")
def char():
    import torchvision

    return characterize(torchvision.models.resnet18(weights=None).eval(), torch.randn(1, 3, 64, 64), hardware="a100")


def test_graph_json_has_every_row_and_producer_nested_by_module(char, tmp_path):
    graph_path, data_paths = me.write_files(char, tmp_path, "r18")
    collection = json.loads(graph_path.read_text())
    [graph] = collection["graphs"]
    assert collection["label"] == "r18" and graph["id"] == "r18"
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert list(nodes) == [f"n{r.index}" for r in char.rows]
    for r in char.rows:
        node = nodes[f"n{r.index}"]
        assert [e["sourceNodeId"] for e in node["incomingEdges"]] == [f"n{p}" for p in r.producers]
        assert node["namespace"] == r.module_path.replace(".", "/")
        attrs = {a["key"]: a["value"] for a in node["attrs"]}
        assert attrs["bound"] == r.bound and attrs["op"] == r.op and attrs["node"] == str(r.index)
        assert [m["attrs"][0]["value"] for m in node["outputsMetadata"]] == [str(list(s)) for s in r.output_shapes]
    overlays = {p.name.split(".")[1]: json.loads(p.read_text())["r18"] for p in data_paths}
    assert set(overlays) == set(me.OVERLAYS) - {"measured"}  # no per-layer run
    values = lambda key: {k: v["value"] for k, v in overlays[key]["results"].items()}  # noqa: E731
    assert values("macs") == {f"n{r.index}": r.macs or 0 for r in char.rows}
    assert values("bytes") == {f"n{r.index}": r.bytes for r in char.rows}
    assert values("bound") == {f"n{r.index}": r.bound for r in char.rows}
    # the additive overlays a layer is judged by: its sums are its roofline time, by bound
    assert values("roofline_time") == pytest.approx({f"n{r.index}": r.roofline_time_s * 1e6 for r in char.rows})
    compute, memory = values("compute_bound_time"), values("memory_bound_time")
    for r in char.rows:
        assert compute[f"n{r.index}"] + memory[f"n{r.index}"] == pytest.approx(
            r.roofline_time_s * 1e6 if r.bound != "no compute" else 0.0)
    # a layer's intensity is no sum and no op average; the bound overlay counts no ops on layers
    assert overlays["arithmetic_intensity"]["hideAggregatedStats"] == ["sum", "avg"]
    assert not overlays["bound"].get("showExpandedSummaryOnGroupNode")
    layers = graph["groupNodeAttributes"]
    for m in char.modules:
        attrs = layers[m.path.replace(".", "/")]
        assert attrs["MACs"] == me.si(m.macs)
        under = [r for r in char.rows if m.path == "" or r.module_path == m.path or r.module_path.startswith(m.path + ".")]
        compute_s = sum(r.roofline_time_s for r in under if r.bound == "compute-bound")
        if m.roofline_time_s:
            assert attrs["compute-bound share of roofline time"] == f"{compute_s / m.roofline_time_s:.0%}"


def test_measured_overlay_and_layer_attributes_of_a_per_layer_run(tmp_path_factory, tmp_path):
    """With a per-layer run: each op's measured time (µs) as an overlay, each layer's measured time and
    % of roof (``PerLayerResult.module_measure``) in its attributes."""
    measured = measured_cache(tmp_path_factory)
    char = measured.record.invocation.characterization.result
    per_layer = measured.ort.per_layer
    graph_path, data_paths = me.write_files(char, tmp_path, "m", per_layer)
    overlays = {p.name.split(".")[1]: json.loads(p.read_text())["m"] for p in data_paths}
    assert set(overlays) == set(me.OVERLAYS)
    got = {k: v["value"] for k, v in overlays["measured"]["results"].items()}
    assert got == pytest.approx({f"n{r.index}": per_layer.op_ms[r.index] * 1e3 for r in char.rows})
    [graph] = json.loads(graph_path.read_text())["graphs"]
    layer1 = graph["groupNodeAttributes"]["layer1"]
    seen = per_layer.module_measure("layer1")
    assert layer1["measured (ms per iteration)"] == f"{seen.measured_ms:.3g}"
    assert layer1["% of roof"] == ("~" if seen.noisy else "") + f"{seen.efficiency:.0%}"
    whole = graph["groupNodeAttributes"][""]
    assert whole["% of roof"].lstrip("~") == f"{per_layer.model_efficiency():.0%}"


@pytest.mark.browser
def test_tk_view_serves_the_graph_offline_in_chromium(tmp_path):
    require_chromium()
    port = me.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnkey_like", "view", str(EXAMPLES / "max_depth.py"), "--port", str(port),
         "--no-browser", "--hardware", "a100", "--cache-dir", str(tmp_path / "cache"), "-q"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in proc.stdout:
            if line.startswith("Model Explorer: "):
                url = line.split(": ", 1)[1].strip()
                break
        assert url and url.startswith(f"http://127.0.0.1:{port}/?data="), "tk view printed no address"
        for _ in range(100):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/check_health", timeout=1).read() == b"model_explorer_ok":
                    break
            except OSError:
                time.sleep(0.2)
        with browser_page() as session:
            page = session.page
            page.goto(url)
            page.get_by_text("NODE DATA PROVIDERS").wait_for(timeout=60_000)
            body = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "model_explorer.png"))
            assert re.search(r"op node count\s+2\b", body), body[:2000]  # TwoLayerModel: fc, fc2
            for name in ("MACs", "bytes read + written", "arithmetic intensity (FLOPs/byte)", "bound on a100",
                         "roofline time on a100 (µs)", "compute-bound roofline time on a100 (µs)"):
                assert name in body
            assert not session.errors, session.errors
            # Its index.html names web fonts on fonts.gstatic.com for a few glyph ranges; offline the
            # browser falls back to local fonts and everything else works (docs/views.md).
            assert all(u.startswith("https://fonts.gstatic.com/") for u in session.blocked), session.blocked
        assert (tmp_path / "model_explorer.png").stat().st_size > 10_000
    finally:
        proc.terminate()
        proc.wait(timeout=30)
