"""``tk view`` (``turnkey_like.views.model_explorer``): the graph JSON and overlays Model Explorer loads,
and the real server loaded in headless Chromium, offline (tests/browser.py)."""

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
        assert attrs["bound"] == r.bound and attrs["op"] == r.op and attrs["node"] == str(r.index + 1)
        assert [m["attrs"][0]["value"] for m in node["outputsMetadata"]] == [str(list(s)) for s in r.output_shapes]
    overlays = {p.name.split(".")[1]: json.loads(p.read_text())["r18"] for p in data_paths}
    assert set(overlays) == set(me.OVERLAYS)
    assert {k: v["value"] for k, v in overlays["macs"]["results"].items()} == \
        {f"n{r.index}": r.macs or 0 for r in char.rows}
    assert {k: v["value"] for k, v in overlays["bytes"]["results"].items()} == {f"n{r.index}": r.bytes for r in char.rows}
    assert {k: v["value"] for k, v in overlays["bound"]["results"].items()} == {f"n{r.index}": r.bound for r in char.rows}


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
            for name in ("MACs", "bytes read + written", "arithmetic intensity (FLOPs/byte)", "bound on a100"):
                assert name in body
            assert not session.errors, session.errors
            # Its index.html names web fonts on fonts.gstatic.com for a few glyph ranges; offline the
            # browser falls back to local fonts and everything else works (docs/views.md).
            assert all(u.startswith("https://fonts.gstatic.com/") for u in session.blocked), session.blocked
        assert (tmp_path / "model_explorer.png").stat().st_size > 10_000
    finally:
        proc.terminate()
        proc.wait(timeout=30)
