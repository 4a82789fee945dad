"""Roofline plots: the chart record (``characterize.roofline.roofline_chart``) and its pictures.

The chart is checked against the characterization it comes from (module points sum to the model's
FLOPs, a module's time is the sum of its ops' recorded roofline times, every point sits at or under
its roof, a fusion group sits on it) and against hand-derived roofs; the PNG, SVG and PDF files are
opened and their content counted against the chart. Measured points come from real per-layer runs
(``tests/measured.py``), a busy roof from a real measurement next to spinning processes. The CLI
tests run the real ``tk profile --roofline``.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET

import pytest

from busy import busy_processes
from measured import MODEL, measured_cache, private_copy
from tests.conftest import EXAMPLES, run_tk
from tests.zoo import build
from turnkey_like.characterize.hardware import get_profile, measure_local
from turnkey_like.characterize.assemble import characterize_call
from turnkey_like.characterize.roofline import roofline_chart
from turnkey_like.errors import InputError
from turnkey_like.views.roofline_plot import (LABELLED, MEASURED_AREA, MEASURED_MIN_AREA, Measured, figure, label_boxes,
                                              render_roofline, roof_note, write_roofline)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def char():
    """A real characterization of the zoo's Conv -> BN -> ReLU on the a100 profile (one fusion group)."""
    model, args, kwargs, _ = build("conv_bn_relu")
    return characterize_call(model, args, kwargs, hardware="a100")


@pytest.fixture(scope="module")
def chart(char):
    return roofline_chart(char, [get_profile("h100"), get_profile("a100")], title="conv_bn_relu")


def test_roofs_are_the_profiles_with_the_records_first(chart):
    assert [r.name for r in chart.roofs] == ["a100", "h100"]  # a100 given again is not repeated
    a100 = chart.roofs[0]
    # A100 datasheet: FP32 19.5 TFLOP/s, 2,039 GB/s -> ridge 19.5e12 / 2039e9 = 9.5635 FLOPs/byte.
    assert a100.peak_flops == 19.5e12 and a100.memory_bandwidth == 2039e9
    assert a100.ridge_point == pytest.approx(9.5635, rel=1e-4)
    # H100 SXM: FP32 67 TFLOP/s, 3.35 TB/s -> ridge 20.0 FLOPs/byte.
    assert chart.roofs[1].ridge_point == pytest.approx(67e12 / 3.35e12)


def test_module_points_hold_every_flop_and_the_recorded_times(char, chart):
    modules = [p for p in chart.points if p.kind == "module"]
    assert sum(p.flops for p in modules) == char.totals.flops
    for p in modules:
        rows = [r for r in char.rows if r.module_path == p.module_path]
        assert p.ops == len(rows)
        assert p.bytes == sum(r.bytes for r in rows)
        assert p.time_s["a100"] == pytest.approx(sum(r.roofline_time_s for r in rows))
        assert p.attainable_flops["a100"] == pytest.approx(p.flops / p.time_s["a100"])
    assert {p.module_path for p in modules} == {"conv", "bn", "relu"}


def test_points_sit_under_their_roofs_and_fused_groups_on_them(chart):
    for p in chart.points:
        for roof in chart.roofs:
            attainable = min(roof.peak_flops, p.arithmetic_intensity * roof.memory_bandwidth)
            assert p.attainable_flops[roof.name] <= attainable * (1 + 1e-9)
            if p.kind == "fusion group":
                assert p.attainable_flops[roof.name] == pytest.approx(attainable)
            expected = "compute-bound" if p.arithmetic_intensity >= roof.ridge_point else "memory-bound"
            assert p.bound[roof.name] == expected
    groups = [p for p in chart.points if p.kind == "fusion group"]
    assert len(groups) == 1 and groups[0].op_names[0] == "aten.convolution.default"
    times = [p.time_s["a100"] for p in chart.points]
    assert times == sorted(times, reverse=True)  # heaviest first


def test_png_has_the_figure_size(chart, tmp_path):
    path = write_roofline(chart, tmp_path / "roof.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert (width, height) == (1200, 650)  # 12 x 6.5 inches at 100 dpi


def _markers(group: ET.Element) -> int:
    """Markers drawn in a scatter's SVG group: ``<use>`` of a marker, or (matplotlib draws small
    collections directly) a ``<path>`` outside ``<defs>``."""
    defs = {id(e) for d in group.iter(f"{SVG}defs") for e in d.iter()}
    return sum(1 for e in group.iter() if e.tag in (f"{SVG}use", f"{SVG}path") and id(e) not in defs)


def _groups(root) -> dict[str, ET.Element]:
    return {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("id", "").startswith("tk-")}


def test_svg_draws_every_point_roof_ridge_and_label(chart, tmp_path):
    path = write_roofline(chart, tmp_path / "roof.svg")
    groups = _groups(ET.parse(path).getroot())
    for roof in chart.roofs:
        assert f"tk-roof-{roof.name}" in groups and f"tk-ridge-{roof.name}" in groups
        for kind in ("module", "fusion group"):
            expected = sum(p.kind == kind for p in chart.points)
            drawn = groups[f"tk-points-{kind.replace(' ', '-')}-{roof.name}"]
            assert _markers(drawn) == expected
    labels = [k for k in groups if k.startswith("tk-label-")]
    assert len(labels) == min(LABELLED, len(chart.points))
    assert "tk-key" in groups  # the numbered key of the labelled points


def test_svg_ids_are_salted_for_pages(chart):
    one = render_roofline(chart, "svg", id_salt="a").decode()
    two = render_roofline(chart, "svg", id_salt="b").decode()
    # markers (m + hash) and clip paths (p + hash) differ between plots; glyph and group ids may repeat
    # (same content, or never referenced)
    ids = lambda text: {e.get("id") for e in ET.fromstring(text).iter() if re.fullmatch(r"[mp][0-9a-f]{10}", e.get("id", ""))}
    assert ids(one) and not ids(one) & ids(two)


def test_pdf_output(chart, tmp_path):
    data = write_roofline(chart, tmp_path / "roof.pdf").read_bytes()
    assert data[:5] == b"%PDF-" and b"/CreationDate" not in data  # no date: the same chart, the same file


def _texts(fig) -> str:
    legend = fig.axes[1].get_legend()
    return "\n".join([fig.axes[0].get_title(), *(t.get_text() for t in legend.get_texts())])


def test_without_measurements_the_plot_says_its_points_are_predictions(chart):
    text = _texts(figure(chart))
    assert "all points are predictions (roofline estimates), not measurements" in text
    assert "measured (" not in text


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return measured_cache(tmp_path_factory)


def _measured_figure(measured, run, labelled=LABELLED):
    char = measured.record.invocation.characterization.result
    chart = roofline_chart(char, [run.per_layer.hardware], title="resnet18")
    points = run.per_layer.achieved_points(char)
    return char, chart, points, figure(chart, measured=Measured(run.label(), points), labelled=labelled)


def test_achieved_points_sit_at_their_measured_flops_beside_the_predicted_ones(measured):
    """Each module's own ops and each fusion group at FLOPs ÷ measured time (the record's), at its
    intensity; marker area ∝ its share of the measured time; the legend names the runtime."""
    for run in measured.runs:
        char, chart, points, fig = _measured_figure(measured, run)
        per_layer = run.per_layer
        rows = per_layer.module_rows()
        modules = [p for p in points if p.kind == "module"]
        assert modules and {p.module_path for p in modules} == {
            r.name for r in rows.values() if r.flops > 0 and r.bytes > 0 and r.measured_ms > 0}
        for p in modules:
            row = rows[p.module_path]
            assert p.measured_ms == row.measured_ms and p.achieved_flops == pytest.approx(row.attained_flops_s)
        groups = [p for p in points if p.kind == "fusion group"]
        times = per_layer.group_times(char.fusion.row_groups)
        assert len(groups) == len([g for g in char.fusion.groups if g.flops > 0 and times.get(g.id, 0) > 0]) > 0
        for p in groups:
            g = next(g for g in char.fusion.groups if g.module_path == p.module_path and g.op_names == p.op_names)
            assert p.measured_ms == pytest.approx(times[g.id])
            assert p.achieved_flops == pytest.approx(g.flops / (times[g.id] * 1e-3))
            assert p.arithmetic_intensity == pytest.approx(g.flops / g.external_bytes)
        ax = fig.axes[0]
        for kind in ("module", "fusion group"):
            [coll] = [c for c in ax.collections if c.get_gid() == f"tk-measured-{kind.replace(' ', '-')}"]
            mine = [p for p in points if p.kind == kind]
            assert [float(v) for xy in coll.get_offsets() for v in xy] == pytest.approx(
                [v for p in mine for v in (p.arithmetic_intensity, p.achieved_flops)])
            assert list(coll.get_sizes()) == pytest.approx([max(MEASURED_MIN_AREA, MEASURED_AREA * p.share) for p in mine])
        assert f"measured ({run.label()})" in _texts(fig)
        assert "beside the roofline predictions" in _texts(fig)


def test_labels_never_overprint_on_resnet18(measured):
    """The numbered labels of ResNet-18's heaviest points, predicted only and with each runtime's
    measured points, every one placed: no two label boxes overlap."""
    char = measured.record.invocation.characterization.result
    chart = roofline_chart(char, title="resnet18")
    figs = [figure(chart, labelled=12)] + [_measured_figure(measured, run, 12)[3] for run in measured.runs]
    for fig in figs:
        boxes = label_boxes(fig)
        assert len(boxes) == 12
        overlaps = [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j and a.overlaps(b)]
        assert not overlaps, overlaps


def test_a_busy_local_roof_says_so(chart):
    """A local profile measured while spinning processes ran: its roof's label says "(measured busy)"."""
    with busy_processes():
        busy = measure_local(budget_s=0.5, threads=1)
    assert busy.load.busy and roof_note(busy) == "measured busy"
    assert roof_note(get_profile("a100")) is None
    busy_chart = roofline_chart(characterize_call(*build("conv_bn_relu")[:3], hardware=busy), title="busy")
    text = _texts(figure(busy_chart, roof_notes={"local": roof_note(busy)}))
    assert "(measured busy)" in text


def test_tk_profile_roofline_after_per_layer_runs(measured, tmp_path):
    """``tk profile --roofline x.svg``: the latest run's measured points (torch eager); ``--runtime ort``
    the ORT run's; both say so."""
    cache = private_copy(measured, tmp_path)
    for runtime, run in ((None, measured.runs[0]), ("ort", measured.ort)):
        target = tmp_path / f"roof_{runtime}.svg"
        out = run_tk("profile", *MODEL, "--cache-dir", str(cache), "-q", "--roofline", str(target),
                     *(("--runtime", runtime) if runtime else ()))
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"with measured points of {run.label()}" in out.stdout
        groups = _groups(ET.parse(target).getroot())
        assert {"tk-measured-module", "tk-measured-fusion-group", "tk-pair-1"} <= set(groups)


def test_unknown_extension_is_a_one_line_error(chart, tmp_path):
    with pytest.raises(InputError, match=r"unknown picture format '\.jpg'"):
        write_roofline(chart, tmp_path / "roof.jpg")


def test_tk_profile_roofline_several_profiles_and_invocations(tmp_path):
    """``tk profile two_models.py --hardware a100,h100 --roofline out.svg``: one file per invocation
    (hash before the extension), both roofs drawn, the Bound column on a100."""
    out = run_tk("profile", str(EXAMPLES / "two_models.py"), "--hardware", "a100,h100", "--roofline",
                 str(tmp_path / "plots" / "roof.svg"), "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    files = sorted((tmp_path / "plots").glob("roof_*.svg"))
    assert [f.name for f in files] == ["roof_c69b7dea.svg", "roof_f93db89f.svg"]
    for f in files:
        groups = _groups(ET.parse(f).getroot())
        assert {"tk-roof-a100", "tk-roof-h100", "tk-ridge-a100", "tk-ridge-h100"} <= set(groups)
    assert "ridge point 9.56" in out.stdout  # the tables are on the first profile


def test_tk_profile_rejects_an_unknown_profile_in_the_list(tmp_path):
    out = run_tk("profile", str(EXAMPLES / "hello_world.py"), "--hardware", "a100,nope", "--roofline",
                 str(tmp_path / "r.png"), "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 1
    assert "unknown hardware profile 'nope'" in out.stderr and "a100" in out.stderr
    assert not (tmp_path / "r.png").exists()
