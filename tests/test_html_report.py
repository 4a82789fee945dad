"""The HTML report, from real runs, with no Graphviz program installed.

Pages come from real runs: ``tk profile --html`` on a script running torchvision's ResNet-18
(weights=None: its graph has repeated blocks and fusion groups) with two hardware profiles, and
``tk report --format html`` on the session's real cache (hello_world.py and two_models.py, built
and benchmarked). The page's tables, DOT sources and pictures are counted against the run's records;
each graph's DOT source must be the text ``--visualize x.dot`` writes in the same run. Measured parts
come from a real cache with per-layer runs of ResNet-18 on ONNX Runtime and torch eager, measured next
to spinning processes so the trust fields (warnings, load) are real (``tests/measured.py``).

The graph is laid out in the page by the vendored Graphviz WebAssembly build (Viz.js). Two ways to
see it work: under Node.js (skipped without ``node``), the script and the DOT are taken out of the
page and laid out, and every node of the DOT must come out in the SVG (also for ResNet-50 and BERT,
timed); and in Debian's headless chromium (``browser`` marker, driven by playwright, offline), where
the page must lay out its graphs, load with no console error and no request leaving the machine,
sort a column, show a graph node's row on a click without moving the page, open each graph in view,
let the wheel scroll the page unless the graph has the focus, and switch the measured run.
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

from measured import MODEL, measured_cache, private_copy
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
    """Node ids of the node statements of a tk DOT source (op nodes ``n<i>``, the graph's inputs and
    output, and legend nodes)."""
    return re.findall(r"^\t+(n\d+|input_\d+|output|legend_\w+) \[", dot, re.M)


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
    (dot_id,) = re.findall(r'<div class="tk-graph" tabindex="0" data-dot="([^"]+)">', section)
    dots = page_dots(section)
    assert list(dots) == [dot_id] and dots[dot_id] == dot_file.read_text(encoding="utf-8")
    nodes = {n for n in dot_nodes(dots[dot_id]) if n.startswith("n")}
    assert nodes and nodes <= set(op_rows)  # every op node has its row (folded blocks drawn once)
    assert "×2" in dots[dot_id]  # ResNet-18's two BasicBlocks per stage, folded
    conv = char.rows[0]
    assert re.search(rf'\tn0 \[label="convolution · conv1\\n{"×".join(map(str, conv.output_shapes[0]))}'
                     rf'\\nMACs {re.escape(si(conv.macs))} · {conv.bound}\\nroofline {re.escape(format_seconds(conv.roofline_time_s))}"',
                     dots[dot_id])
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
        assert [n for n in dot_nodes(dot) if n.startswith("n")] == [f"n{row.index}" for row in rows]
        assert f"{r.invocation.benchmark.result.throughput_ips:,.1f} inferences/s" in section


@pytest.mark.browser
def test_tk_report_html_of_a_real_cache_in_chromium(cache_page, tmp_path):
    path, records = cache_page
    with browser_page() as session:
        _load(session, path)
        page = session.page
        assert page.locator("#comparison-table").count() == 1
        for i, r in enumerate(records):  # every section's graph laid out, one node per op
            drawn = page.locator("section.inv").nth(i).locator(".tk-graph svg g.node[id^='n']")
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


# ----------------------------------------------------------------------------------- measured parts


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return measured_cache(tmp_path_factory)


@pytest.fixture(scope="module")
def measured_pages(measured, tmp_path_factory):
    """``tk report --format html`` of the measured cache (opens on the latest run, torch eager) and
    ``tk profile --html --runtime ort`` on a copy of it (opens on the ORT run)."""
    tmp = tmp_path_factory.mktemp("measured_html")
    out = run_tk("report", "--cache-dir", str(measured.root), "-o", str(tmp / "report.html"))
    assert out.returncode == 0, out.stderr
    cache = private_copy(measured, tmp)
    out = run_tk("profile", *MODEL, "--cache-dir", str(cache), "--runtime", "ort", "--html", str(tmp / "ort.html"), "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    return tmp / "report.html", tmp / "ort.html"


def _row_cells(section: str, node: str) -> list[tuple[str | None, bool, str]]:
    """``(data-run, hidden, text)`` of each cell of the table row ``data-node=node`` (``data-run``
    ``None`` for a cell of no measured run)."""
    row = re.search(rf'<tr data-node="{re.escape(node)}">(.*?)</tr>', section).group(1)
    out = []
    for attrs, text in re.findall(r"<td([^>]*)>(.*?)</td>", row):
        run = re.search(r'data-run="(\d+)"', attrs)
        out.append((run.group(1) if run else None, " hidden" in attrs, html.unescape(text)))
    return out


def test_measured_columns_selector_and_trust_fields(measured, measured_pages):
    """The page of a call measured on two runtimes: a selector naming both, "Measured ms" and "% of roof"
    per run (the latest shown, the other hidden), each module's figures as ``module_measure`` gives
    them with ``~`` on a noisy one, each op's measured time and share, a measured-by-category table
    per run, and every trust field: the profile's time and warnings, the benchmark's IQR, runs, other
    processes' cores, load average and warnings."""
    from turnkey_like.report.measured import ms, percent

    path, _ = measured_pages
    page = path.read_text(encoding="utf-8")
    section = page[page.index('<section class="inv"'):]
    runs = measured.runs
    options = re.findall(r'<option value="(\d)"( selected)?>([^<]*)</option>', section)
    assert options == [("0", " selected", runs[0].label()), ("1", "", runs[1].label())]
    heads = re.findall(r'<th class="num" data-run="(\d)"( hidden)?>(Measured ms|% of roof)</th>', section)
    assert ("0", "", "Measured ms") in heads and ("1", " hidden", "% of roof") in heads
    char = measured.record.invocation.characterization.result
    for m in char.modules:
        cells = [c for c in _row_cells(section, "m" + m.path) if c[0] is not None]
        expected = []
        for k, run in enumerate(runs):
            seen = run.per_layer.module_measure(m.path)
            expected += [(str(k), k != 0, ms(seen.measured_ms) if seen else "-"),
                         (str(k), k != 0, percent(seen.efficiency, seen.noisy) if seen and seen.efficiency is not None
                          else "-")]
        assert cells == expected, m.path
    for r in char.rows[:12]:
        cells = [c for c in _row_cells(section, f"n{r.index}") if c[0] is not None]
        first = cells[0][2], cells[1][2]
        per_layer = runs[0].per_layer
        assert first == (ms(per_layer.op_ms[r.index], per_layer.op_noisy(r.index)), f"{per_layer.op_share(r.index):.1%}")
        assert _row_cells(section, f"n{r.index}")[0][2] == str(r.index)  # "#" is OpRow.index
    for k, run in enumerate(runs):
        table = re.search(rf'<table class="tk-table" id="inv-0-\w+-measured-{k}">(.*?)</table>', section, re.S).group(1)
        norm = next(c for c in run.per_layer.categories if c.name == "norm")
        assert f"<td data-v=\"norm\">norm</td><td class=\"num\" data-v=\"{norm.measured_ms!r}\">{ms(norm.measured_ms)}</td>" in table
        assert norm.measured_ms > 0  # fused into the Conv kernels (ORT) or its own op (torch): never 0 ms
        assert f"Per-layer run: {html.escape(run.label())}" in section
    bench = measured.record.invocation.benchmark.result
    hw = char.hardware
    assert f"<dt>Profile measured at</dt><dd>{hw.measured_at}</dd>" in section
    assert hw.warnings and bench.warnings and bench.load is not None  # measured next to spinning processes
    for warning in hw.warnings:
        assert f"<dt>Profile warning</dt><dd>{html.escape(warning)}</dd>" in section
    for warning in bench.warnings:
        assert f"<dt>Warning</dt><dd>{html.escape(warning)}</dd>" in section
    lat = bench.latency_ms
    assert f"<dt>Latency IQR (runs)</dt><dd>{lat.iqr:.3g} ms ({lat.runs})</dd>" in section
    assert f"<dt>Other processes&#x27; cores</dt><dd>{bench.load.other_cores:.2f} of {bench.load.cores}" in section
    assert f"<dt>Load average (1 min)</dt><dd>{bench.load.load_avg_1min:.2f}</dd>" in section
    overview = page[page.index('id="overview-table"'):page.index("</table>", page.index('id="overview-table"'))]
    assert f">{percent(runs[0].per_layer.model_efficiency())}</td>" in overview


def test_runtime_option_opens_the_page_on_that_run(measured, measured_pages):
    _, path = measured_pages
    section = path.read_text(encoding="utf-8").split('<section class="inv"', 1)[1]
    assert re.search(r'<option value="1" selected>' + re.escape(measured.ort.label()), section)
    assert '<th class="num" data-run="1">Measured ms</th>' in section
    assert '<th class="num" data-run="0" hidden>Measured ms</th>' in section
    # the graph and the roofline plot of the shown run
    assert f"measured times from {html.escape(measured.ort.label())}" in section
    assert re.search(r'<div class="tk-roofline" data-run="1">', section)


@pytest.mark.browser
def test_measured_page_in_chromium_selector_view_wheel_and_click(measured, measured_pages, tmp_path):
    """In Chromium: the graph opens in view; the wheel over it scrolls the page until the graph is
    clicked, then zooms it; a node click selects its row without moving the page; the run selector
    shows the other run's measured columns, table and plot."""
    path, _ = measured_pages
    with browser_page() as session:
        _load(session, path)
        page = session.page
        box = page.locator(".tk-graph").first
        box.scroll_into_view_if_needed()
        in_view = page.evaluate("""() => {
            const box = document.querySelector('.tk-graph').getBoundingClientRect();
            return Array.from(document.querySelectorAll('.tk-graph g.node')).filter(g => {
              const r = g.getBoundingClientRect();
              return r.width > 0 && r.right > box.left && r.left < box.right && r.bottom > box.top && r.top < box.bottom;
            }).length; }""")
        drawn = page.locator(".tk-graph g.node").count()
        assert drawn > 0 and in_view == drawn  # fitted: every node in the box
        view_box = lambda: page.evaluate("document.querySelector('.tk-graph svg').getAttribute('viewBox')")  # noqa: E731
        scroll = lambda: page.evaluate("window.scrollY")  # noqa: E731
        b = box.bounding_box()
        page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
        before, vb = scroll(), view_box()
        page.mouse.wheel(0, 200)
        page.wait_for_function(f"window.scrollY !== {before}", timeout=5000)
        assert view_box() == vb  # the page scrolled, the graph did not zoom

        box.scroll_into_view_if_needed()
        node = page.locator(".tk-graph g.node#n7")
        n = node.bounding_box()
        before = scroll()
        page.mouse.click(n["x"] + n["width"] / 2, n["y"] + n["height"] / 2)
        assert scroll() == before  # selected without moving the page
        row = page.locator("tr.tk-hl")
        assert row.count() == 1 and row.get_attribute("data-node") == "n7"
        assert "tk-selected" in node.get_attribute("class")
        assert page.evaluate("document.activeElement.classList.contains('tk-graph')")
        vb = view_box()
        page.mouse.wheel(0, -200)
        page.wait_for_function(f"document.querySelector('.tk-graph svg').getAttribute('viewBox') !== '{vb}'",
                               timeout=5000)
        assert scroll() == before  # focused: the wheel zooms the graph, not the page

        visible = lambda k: page.locator(f"th[data-run='{k}']:visible").count()  # noqa: E731
        assert visible(0) > 0 and visible(1) == 0
        page.select_option("select.tk-run-select", "1")
        assert visible(0) == 0 and visible(1) > 0
        assert page.locator(".tk-roofline[data-run='1']").is_visible()
        assert page.locator(".tk-roofline[data-run='0']").is_hidden()
        assert page.locator("table[id$='-measured-1']").is_visible()
        page.screenshot(path=str(tmp_path / "measured.png"))
        assert not session.errors and not session.blocked, (session.errors, session.blocked)
