"""The HTML report, opened in headless Chromium (Debian's chromium, driven by playwright, offline).

Pages come from real runs: ``tk profile --html`` on a script running torchvision's ResNet-18
(weights=None: its graph has repeated blocks and fusion groups) with two hardware profiles, and
``tk report --format html`` on the session's real cache (hello_world.py and two_models.py, built
and benchmarked). The page must load with no console error and no request leaving the machine,
sorting a column must reorder the rows, clicking a graph node must show its row, and a screenshot is
written. The page's tables and pictures are counted against the run's records.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from tests.browser import browser_page
from tests.conftest import run_tk
from turnkey_like.cache import Cache
from turnkey_like.characterize.hardware import get_profile
from turnkey_like.characterize.roofline import roofline_chart
from turnkey_like.records import RunReport, decode
from turnkey_like.views.compare import build_records

RESNET = textwrap.dedent("""\
    # labels: name::resnet18
    import torch, torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    model(torch.randn(1, 3, 64, 64))
""")


@pytest.fixture(scope="module")
def resnet_page(tmp_path_factory):
    """``tk profile resnet18.py --hardware a100,h100 --html page.html --json run.json``: the page and the run's records."""
    tmp = tmp_path_factory.mktemp("html")
    script = tmp / "resnet18.py"
    script.write_text(RESNET)
    out = run_tk("profile", str(script), "--hardware", "a100,h100", "--html", str(tmp / "page.html"),
                 "--json", str(tmp / "run.json"), "--cache-dir", str(tmp / "cache"))
    assert out.returncode == 0, out.stderr
    records = build_records(decode((tmp / "run.json").read_bytes(), RunReport).results)
    return tmp / "page.html", records


def _load(session, path):
    session.page.goto(path.as_uri())
    session.page.wait_for_selector("body[data-ready='1']", state="attached", timeout=20000)


def _column(page, table: str, col: int) -> list[str]:
    return page.eval_on_selector_all(f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{col}].getAttribute('data-v'))")


def test_page_is_self_contained_and_matches_the_records(resnet_page):
    path, records = resnet_page
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", page), "the page refers to the network"
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page)
    (record,) = records
    char = record.invocation.characterization.result
    section = page[page.index('<section class="inv"'):]
    op_rows = re.findall(r'<tr data-node="(n\d+)">', section)
    assert op_rows == [f"n{r.index}" for r in char.rows]
    assert re.findall(r'<tr data-node="m([^"]*)">', section) == [m.path for m in char.modules]
    nodes = set(re.findall(r'<g id="(n\d+)" class="node"', section))
    assert nodes and nodes <= set(op_rows)  # every op node has its row (folded blocks drawn once)
    assert "×2" in section  # ResNet-18's two BasicBlocks per stage, folded
    chart = roofline_chart(char, [get_profile("h100")])
    for roof in ("a100", "h100"):
        assert f'id="tk-roof-{roof}"' in section
    module_points = sum(p.kind == "module" for p in chart.points)
    drawn = re.search(r'<g id="tk-points-module-a100">(.*?)</g>\s*</g>', section, re.S).group(1)
    assert drawn.count("<use ") == module_points


def test_page_in_chromium_sorts_filters_and_shows_a_node_row(resnet_page, tmp_path):
    path, records = resnet_page
    char = records[0].invocation.characterization.result
    with browser_page() as session:
        _load(session, path)
        page = session.page
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


def test_tk_report_html_of_a_real_cache(real_cache, tmp_path):
    out = run_tk("report", "--cache-dir", str(real_cache), "-o", str(tmp_path / "all.html"))
    assert out.returncode == 0, out.stderr
    records = [Cache(real_cache, create=False).load(name) for name in Cache(real_cache, create=False).builds()]
    page = (tmp_path / "all.html").read_text(encoding="utf-8")
    assert page.count('<section class="inv"') == len(records) == 3
    for r in records:  # one node per op: these models repeat nothing
        section = page[page.index(f'id="inv-{records.index(r)}-{r.invocation.hash}"'):]
        section = section[:section.index("</section>")]
        rows = r.invocation.characterization.result.rows
        assert len(re.findall(r'<g id="n\d+" class="node"', section)) == len(rows)
        assert f"{r.invocation.benchmark.result.throughput_ips:,.1f} inferences/s" in section
    with browser_page() as session:
        _load(session, tmp_path / "all.html")
        page = session.page
        assert page.locator("#comparison-table").count() == 1
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
