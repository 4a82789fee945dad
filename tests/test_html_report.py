"""The HTML report, from real runs, with no Graphviz program installed.

Pages come from real runs: ``tk profile --html`` on a script running torchvision's ResNet-18
(weights=None: its graph has repeated blocks and fusion groups) with two hardware profiles, and
``tk report --format html`` on the session's real cache (hello_world.py and two_models.py, built
and benchmarked). The page's tables, DOT sources and pictures are counted against the run's records;
each graph's DOT source must be the text ``--visualize x.dot`` writes in the same run.

The graph is laid out in the page by the vendored Graphviz WebAssembly build (Viz.js). Two ways to
see it work: under Node.js (skipped without ``node``), the script and the DOT are taken out of the
page and laid out, and every node of the DOT must come out in the SVG (also for ResNet-50 and BERT,
timed); and in Debian's headless chromium (``browser`` marker, driven by playwright, offline), where
the page must lay out its graphs, load with no console error and no request leaving the machine,
sort a column, and show a graph node's row on a click.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.browser import browser_page
from tests.conftest import run_tk
from turnkey_like.cache import Cache
from turnkey_like.characterize.hardware import get_profile
from turnkey_like.characterize.roofline import roofline_chart
from turnkey_like.records import RunReport, decode
from turnkey_like.units import format_bytes, format_seconds, si
from turnkey_like.views.compare import build_records
from turnkey_like.views.html import VIZ_JS, VIZ_JS_SHA256, VIZ_JS_VERSION, render_html

ASSETS = Path(__file__).resolve().parent.parent / "turnkey_like" / "views" / "assets"

RESNET = textwrap.dedent("""\
    # labels: name::resnet18
    import torch, torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    model(torch.randn(1, 3, 64, 64))
""")

# Lays out each DOT file with the Viz.js file given, one JSON line per file: status, node ids and
# edge count of the SVG, and the layout time in ms (printed by the slow test, never asserted).
NODE_LAYOUT = textwrap.dedent("""\
    const Viz = require(process.argv[2]);
    const fs = require("fs");
    Viz.instance().then(viz => {
      for (const file of process.argv.slice(3)) {
        const start = process.hrtime.bigint();
        const r = viz.render(fs.readFileSync(file, "utf8"), { format: "svg" });
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        const svg = r.output || "";
        const nodes = [...svg.matchAll(/<g id="([^"]+)" class="node"/g)].map(m => m[1]);
        const edges = (svg.match(/<g id="[^"]*" class="edge"/g) || []).length;
        const errors = r.errors.filter(e => e.level === "error").map(e => e.message);
        console.log(JSON.stringify({ file, status: r.status, nodes, edges, ms, errors, svg_bytes: svg.length }));
      }
    }).catch(e => { console.error(String(e)); process.exit(1); });
""")


@pytest.fixture(scope="module")
def resnet_page(tmp_path_factory):
    """``tk profile resnet18.py --hardware a100,h100 --html page.html --json run.json --visualize graph.dot``:
    the page, the run's records and the DOT file."""
    tmp = tmp_path_factory.mktemp("html")
    script = tmp / "resnet18.py"
    script.write_text(RESNET)
    out = run_tk("profile", str(script), "--hardware", "a100,h100", "--html", str(tmp / "page.html"),
                 "--json", str(tmp / "run.json"), "--visualize", str(tmp / "graph.dot"),
                 "--cache-dir", str(tmp / "cache"))
    assert out.returncode == 0, out.stderr
    records = build_records(decode((tmp / "run.json").read_bytes(), RunReport).results)
    return tmp / "page.html", records, tmp / "graph.dot"


def page_dots(page: str) -> dict[str, str]:
    """The DOT sources a page holds, by the id of their ``<pre>`` (the page's HTML escaping undone)."""
    return {i: html.unescape(text) for i, text in re.findall(r'<pre class="tk-dot" id="([^"]+)">(.*?)</pre>', page, re.S)}


def page_layout_script(page: str) -> list[str]:
    """The inline scripts of a page that are the Viz.js layout engine."""
    return [s for s in re.findall(r"<script>(.*?)</script>", page, re.S) if s.startswith("/*!\nViz.js ")]


def dot_nodes(dot: str) -> list[str]:
    """Node ids of the node statements of a tk DOT source (op nodes ``n<i>`` and legend nodes)."""
    return re.findall(r"^\t+(n\d+|legend_\w+) \[", dot, re.M)


def dot_edges(dot: str) -> int:
    """How many edges of a tk DOT source are drawn (the legend's invisible ones are not)."""
    return sum(" -> " in line and "style=invis" not in line for line in dot.splitlines())


def node_layout(viz_js: Path, dots: list[Path], tmp: Path) -> list[dict]:
    """Lay out ``dots`` with ``viz_js`` under Node.js (skip the test without ``node``); one dict per DOT."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (Node.js) is missing: the page's layout engine is checked under Node.js")
    script = tmp / "layout.js"
    script.write_text(NODE_LAYOUT)
    out = subprocess.run([node, str(script), str(viz_js), *map(str, dots)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _load(session, path):
    session.page.goto(path.as_uri())
    session.page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60000)


def _column(page, table: str, col: int) -> list[str]:
    return page.eval_on_selector_all(f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{col}].getAttribute('data-v'))")


def test_vendored_layout_engine_is_the_pinned_file():
    data = (ASSETS / VIZ_JS).read_bytes()
    assert hashlib.sha256(data).hexdigest() == VIZ_JS_SHA256
    assert data.startswith(f"/*!\nViz.js {VIZ_JS_VERSION}\n".encode())
    notice = (ASSETS / "THIRD_PARTY_NOTICES.md").read_text()
    assert VIZ_JS_SHA256 in notice and f"@viz-js/viz@{VIZ_JS_VERSION}" in notice and "MIT" in notice
    # it sits in a <script> element as it is: nothing the HTML parser would end or change
    text = data.decode("utf-8")
    assert not re.search(r"</script|<!--", text, re.I) and "\r" not in text and "\0" not in text


def test_page_is_self_contained_and_matches_the_records(resnet_page):
    path, records, dot_file = resnet_page
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", page), "the page refers to the network"
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page)
    assert page_layout_script(page) == [(ASSETS / VIZ_JS).read_text(encoding="utf-8")]  # once, as vendored
    (record,) = records
    char = record.invocation.characterization.result
    section = page[page.index('<section class="inv"'):]
    op_rows = re.findall(r'<tr data-node="(n\d+)">', section)
    assert op_rows == [f"n{r.index}" for r in char.rows]
    assert re.findall(r'<tr data-node="m([^"]*)">', section) == [m.path for m in char.modules]
    # the graph: its box names the DOT source below it, the same text --visualize x.dot wrote
    (dot_id,) = re.findall(r'<div class="tk-graph" data-dot="([^"]+)">', section)
    dots = page_dots(section)
    assert list(dots) == [dot_id] and dots[dot_id] == dot_file.read_text(encoding="utf-8")
    nodes = {n for n in dot_nodes(dots[dot_id]) if not n.startswith("legend")}
    assert nodes and nodes <= set(op_rows)  # every op node has its row (folded blocks drawn once)
    assert "×2" in dots[dot_id]  # ResNet-18's two BasicBlocks per stage, folded
    conv = char.rows[0]
    assert re.search(rf'\tn0 \[label="convolution · conv1\\n{"×".join(map(str, conv.output_shapes[0]))}'
                     rf'\\nMACs {re.escape(si(conv.macs))} · {conv.bound}"', dots[dot_id])
    # the records' numbers, as the units module formats them
    t = char.totals
    for name, value in (("MACs", si(t.macs)), ("FLOPs", si(t.flops)), ("Bytes written", format_bytes(t.bytes_written)),
                        ("Roofline time", format_seconds(t.roofline_time_s)), ("Bound", t.bound)):
        assert f"<dt>{name}</dt><dd>{html.escape(value)}</dd>" in section, name
    chart = roofline_chart(char, [get_profile("h100")])
    for roof in ("a100", "h100"):
        assert f'id="tk-roof-{roof}"' in section
    module_points = sum(p.kind == "module" for p in chart.points)
    drawn = re.search(r'<g id="tk-points-module-a100">(.*?)</g>\s*</g>', section, re.S).group(1)
    assert drawn.count("<use ") == module_points


def test_a_page_without_graphs_carries_no_layout_engine():
    page = render_html([])
    assert page_layout_script(page) == [] and 'class="tk-graph"' not in page and "no builds" in page


def test_the_page_lays_out_its_own_graph_under_node(resnet_page, tmp_path):
    """The script and the DOT taken out of the page, laid out by Node.js: every DOT node comes out in the SVG."""
    path, _, _ = resnet_page
    page = path.read_text(encoding="utf-8")
    (script,) = page_layout_script(page)
    (tmp_path / "viz-from-page.js").write_text(script, encoding="utf-8")
    (dot,) = page_dots(page).values()
    (tmp_path / "graph.dot").write_text(dot, encoding="utf-8")
    (result,) = node_layout(tmp_path / "viz-from-page.js", [tmp_path / "graph.dot"], tmp_path)
    assert result["status"] == "success" and not result["errors"]
    assert sorted(result["nodes"]) == sorted(dot_nodes(dot))
    assert result["edges"] == dot_edges(dot)


@pytest.mark.slow
def test_resnet50_and_bert_dot_lay_out_under_node(tmp_path):
    """``tk profile --model resnet50 --model bert --visualize g.dot --html page.html``: both DOT files are
    in the page as written, and the vendored engine lays out every node of each (times printed)."""
    out = run_tk("profile", "--model", "resnet50", "--model", "bert", "-q", "--cache-dir", str(tmp_path / "cache"),
                 "--visualize", str(tmp_path / "g.dot"), "--html", str(tmp_path / "page.html"))
    assert out.returncode == 0, out.stdout + out.stderr
    files = sorted(tmp_path.glob("g_*.dot"))
    assert len(files) == 2
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert sorted(page_dots(page).values()) == sorted(f.read_text(encoding="utf-8") for f in files)
    results = node_layout(ASSETS / VIZ_JS, files, tmp_path)
    for f, result in zip(files, results):
        dot = f.read_text(encoding="utf-8")
        assert result["status"] == "success" and not result["errors"], result
        assert sorted(result["nodes"]) == sorted(dot_nodes(dot)) and result["edges"] == dot_edges(dot)
        title = re.search(r'label="([^\\"]*)', dot).group(1)
        print(f"\n{title}: {len(result['nodes'])} nodes, {result['edges']} edges, DOT {len(dot):,} B, "
              f"SVG {result['svg_bytes']:,} B, laid out in {result['ms']:.0f} ms under Node.js")


@pytest.mark.browser
def test_page_in_chromium_lays_out_sorts_filters_and_shows_a_node_row(resnet_page, tmp_path):
    path, records, dot_file = resnet_page
    char = records[0].invocation.characterization.result
    with browser_page() as session:
        _load(session, path)
        page = session.page
        drawn = page.eval_on_selector_all(".tk-graph svg g.node", "gs => gs.map(g => g.id)")
        assert sorted(drawn) == sorted(dot_nodes(dot_file.read_text(encoding="utf-8")))
        assert page.locator(".tk-graph .graph-status").count() == 0
        table = page.locator("table[id$='-ops']").get_attribute("id")
        macs_col = 6
        before = _column(page, table, macs_col)
        page.locator(f"#{table} th").nth(macs_col).click()
        ascending = _column(page, table, macs_col)
        page.locator(f"#{table} th").nth(macs_col).click()
        descending = _column(page, table, macs_col)
        key = lambda v: float(v) if v else float("-inf")
        assert ascending != before and ascending == sorted(before, key=key)
        assert descending == sorted(before, key=key, reverse=True)

        page.fill(f"input[data-table='{table}']", "relu")
        visible = page.eval_on_selector_all(f"#{table} tbody tr:not([hidden])", "rows => rows.map(r => r.cells[1].textContent)")
        assert visible and all("relu" in op for op in visible)
        assert len(visible) == sum("relu" in r.op for r in char.rows)

        node = page.locator(".tk-graph g.node#n0")  # the first convolution: hidden by the filter above
        node.click()
        row = page.locator(f"#{table} tr.tk-hl")
        assert row.count() == 1 and row.get_attribute("data-node") == "n0" and row.is_visible()
        assert "aten.convolution.default" in page.locator(".selected-row").inner_text()
        assert "tk-selected" in node.get_attribute("class")

        page.locator("button[data-zoom='fit']").click()
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=False)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not session.errors, session.errors
        assert not session.blocked, session.blocked


@pytest.fixture(scope="module")
def cache_page(real_cache, tmp_path_factory):
    """``tk report --cache-dir CACHE -o all.html`` on the session's real cache: the page and the records."""
    tmp = tmp_path_factory.mktemp("report")
    out = run_tk("report", "--cache-dir", str(real_cache), "-o", str(tmp / "all.html"))
    assert out.returncode == 0, out.stderr
    cache = Cache(real_cache, create=False)
    return tmp / "all.html", [cache.load(name) for name in cache.builds()]


def test_tk_report_html_of_a_real_cache(cache_page):
    path, records = cache_page
    page = path.read_text(encoding="utf-8")
    assert page.count('<section class="inv"') == len(records) == 3
    assert len(page_layout_script(page)) == 1
    for i, r in enumerate(records):  # one node per op: these models repeat nothing
        section = page[page.index(f'id="inv-{i}-{r.invocation.hash}"'):]
        section = section[:section.index("</section>")]
        rows = r.invocation.characterization.result.rows
        (dot,) = page_dots(section).values()
        assert [n for n in dot_nodes(dot) if not n.startswith("legend")] == [f"n{row.index}" for row in rows]
        assert f"{r.invocation.benchmark.result.throughput_ips:,.1f} inferences/s" in section


@pytest.mark.browser
def test_tk_report_html_of_a_real_cache_in_chromium(cache_page, tmp_path):
    path, records = cache_page
    with browser_page() as session:
        _load(session, path)
        page = session.page
        assert page.locator("#comparison-table").count() == 1
        for i, r in enumerate(records):  # every section's graph laid out, one node per op
            drawn = page.locator("section.inv").nth(i).locator(".tk-graph svg g.node:not([id^='legend'])")
            assert drawn.count() == len(r.invocation.characterization.result.rows)
        names = lambda: page.eval_on_selector_all("#overview-table tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
        before = names()
        page.locator("#overview-table th", has_text="MACs").click()
        page.locator("#overview-table th", has_text="MACs").click()  # descending: the 500-MAC model first
        assert names()[0] == "another_pytorch_model" and sorted(names()) == sorted(before)
        page.locator("section.inv").nth(2).locator("g.node#n0").click()
        assert page.locator("section.inv").nth(2).locator("tr.tk-hl").get_attribute("data-node") == "n0"
        page.screenshot(path=str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not session.errors and not session.blocked, (session.errors, session.blocked)
