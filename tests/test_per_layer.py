"""Per-layer measured time (``--per-layer``) on real models and real runtimes, beside the roofline."""

from __future__ import annotations

import io
from collections import defaultdict

import pytest
import torch

from turnkey_like.build import BuildOptions, build_invocation
from turnkey_like.characterize import characterize_call
from turnkey_like.errors import BenchmarkError
from turnkey_like.records import BenchmarkResult, BuildRecord, HardwareProfile, StageResult, Status, decode, encode
from turnkey_like.runtimes import BenchmarkOptions, benchmark_fingerprint, benchmark_invocation, reuse_benchmark
from turnkey_like.runtimes.per_layer import (
    UNATTRIBUTED,
    UNMAPPED,
    per_layer_result,
    scope_of_name_scopes,
    scope_of_torchscript_name,
)

#: per runtime, the largest share of a profiled run's wall time its kernels may leave unattributed
#: (time between ops) on these models: ORT runs its graph in C++; eager adds Python between ops and
#: the hooks' own record_function ranges. Generous for a loaded 2-core machine.
MAX_UNATTRIBUTED = {"ort": 0.10, "torch-eager": 0.30}


def _resnet18():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval(), (torch.randn(1, 3, 224, 224),), {}


def _bert2():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(num_hidden_layers=2)).eval()  # BERT-base widths, 2 layers
    kwargs = {"input_ids": torch.randint(1, 1000, (1, 128)), "attention_mask": torch.ones(1, 128, dtype=torch.long)}
    return model, (), kwargs


MODELS = {"resnet18": _resnet18, "bert2": _bert2}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tk_cache")


@pytest.fixture(scope="module")
def built(tmp_path_factory, cache_dir):
    """Per model: (model, args, kwargs, characterization, dynamo build, build folder)."""
    out = {}
    for name, make in MODELS.items():
        model, args, kwargs = make()
        folder = tmp_path_factory.mktemp(name)
        build = build_invocation(model, args, kwargs, folder, BuildOptions())
        assert build.status is Status.SUCCESSFUL, build.error
        assert build.result.exporter == "dynamo"
        char = characterize_call(model, args, kwargs, hardware="a100", cache_dir=cache_dir)
        out[name] = (model, args, kwargs, char, build.result, folder)
    return out


def _per_layer(built, name, runtime, cache_dir):
    model, args, kwargs, char, build, folder = built[name]
    options = BenchmarkOptions(runtime=runtime, iterations=5, warmup=2, threads=1, per_layer=True)
    stage = benchmark_invocation(model, args, kwargs, build, folder, options, characterization=char,
                                 cache_dir=cache_dir)
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result.per_layer is not None
    return char, stage


@pytest.mark.parametrize("runtime", ["ort", "torch-eager"])
@pytest.mark.parametrize("name", list(MODELS))
def test_every_module_with_macs_gets_a_measured_time(built, cache_dir, name, runtime):
    char, stage = _per_layer(built, name, runtime, cache_dir)
    result = stage.result.per_layer
    rows = result.module_rows()
    # module paths are the characterization's
    assert set(rows) <= {m.path for m in char.modules}
    with_macs = [m.path for m in char.modules if m.self_macs > 0]
    assert with_macs and all(rows[p].measured_ms > 0 for p in with_macs), \
        [p for p in with_macs if p not in rows or rows[p].measured_ms <= 0]
    # own times + unmapped + unattributed = the profiled run's wall time (by construction), and the
    # kernels account for most of it
    assert sum(r.measured_ms for r in result.modules) == pytest.approx(result.wall_ms, rel=1e-9)
    assert result.unattributed_ms == pytest.approx(result.wall_ms - result.attributed_ms - result.unmapped_ms)
    assert 0 <= result.unattributed_share <= MAX_UNATTRIBUTED[runtime], result.unattributed_share
    assert result.unmapped_ms <= 0.01 * result.wall_ms  # every kernel found its module
    # the root's inclusive time holds every module's own time
    assert rows[""].inclusive_ms == pytest.approx(result.attributed_ms, rel=1e-9)
    # the roofline is on the profile the run measured on (local, with the run's 1 thread), not the
    # characterization's a100
    assert result.hardware is not None and result.hardware.name == "local" and result.hardware.measured
    assert result.hardware.threads == 1
    assert result.predicted_ms > 0 and result.efficiency == pytest.approx(
        result.predicted_ms / stage.result.latency_ms.mean)
    for r in rows.values():
        if r.efficiency is not None:
            assert r.efficiency == pytest.approx(r.predicted_ms / r.measured_ms)
            assert r.faster_than_roof == (r.efficiency > 1)
            assert (r.name in result.faster_than_roof) == r.faster_than_roof
    assert sum(r.measured_ms for r in result.categories) == pytest.approx(
        result.attributed_ms + result.unmapped_ms, rel=1e-9)
    expected_mapping = "dynamo name_scopes" if runtime == "ort" else "forward hooks"
    assert result.mapping == expected_mapping
    assert result.iterations == 5 and result.overhead > 0
    assert decode(encode(stage), StageResult[BenchmarkResult]) == stage  # survives the cache's codec
    _one_accounting(char, result, runtime)


def _one_accounting(char, result, runtime):
    """Every kernel's time went to the op rows it ran: the ops' times add up to their modules' own
    times and to their categories' times; an op fused into another's kernel is never at 0 ms; the
    whole-model efficiency is the one method every view reads."""
    assert len(result.op_ms) == len(result.op_spread) == len(char.rows)
    from turnkey_like.runtimes.per_layer import NOISY_SPREAD

    assert result.noisy_ops == [i for i, x in enumerate(result.op_spread) if x is not None and x > NOISY_SPREAD]
    assert [i for i in range(len(char.rows)) if result.op_noisy(i)] == result.noisy_ops
    own, per_category = defaultdict(float), defaultdict(float)
    for r in char.rows:
        own[r.module_path] += result.op_ms[r.index]
        per_category[r.category] += result.op_ms[r.index]
    rows = result.module_rows()
    for path, ms in own.items():
        assert rows[path].measured_ms == pytest.approx(ms, rel=1e-6, abs=1e-9), path
    categories = {c.name: c.measured_ms for c in result.categories}
    for name, ms in per_category.items():
        assert categories.get(name, 0.0) >= ms * (1 - 1e-9), name  # plus kernels that found no op row
    assert sum(result.op_ms) <= result.attributed_ms * (1 + 1e-9)
    if runtime == "ort":  # fused kernels: every op with a roofline time in a measured module gets some
        zero = [r.index for r in char.rows if r.roofline_time_s > 0 and rows[r.module_path].measured_ms > 0
                and result.op_ms[r.index] <= 0]
        assert not zero, [(i, char.rows[i].op, char.rows[i].module_path) for i in zero]
        assert categories["norm"] > 0 and categories["activation"] > 0  # fused into Conv/Gemm/... kernels
    groups = result.group_times(char.fusion.row_groups)
    assert sum(groups.values()) == pytest.approx(sum(result.op_ms))
    assert result.model_efficiency() == pytest.approx(result.predicted_ms / result.latency_mean_ms)
    assert result.efficiency == result.model_efficiency() == result.module_measure("").efficiency
    assert result.module_measure("").measured_ms == result.latency_mean_ms
    for path, row in rows.items():
        if path and row.inclusive_ms:
            assert result.module_measure(path).efficiency == pytest.approx(row.predicted_inclusive_ms / row.inclusive_ms)


def test_torchscript_export_is_mapped_by_node_names(tmp_path, cache_dir):
    """The TorchScript exporter writes no module metadata; its scoped node names map the kernels."""
    model, args, kwargs = _resnet18()
    build = build_invocation(model, args, kwargs, tmp_path, BuildOptions(exporter="torchscript"))
    assert build.status is Status.SUCCESSFUL and build.result.exporter == "torchscript"
    char = characterize_call(model, args, kwargs, hardware="a100", cache_dir=cache_dir)
    stage = benchmark_invocation(model, args, kwargs, build.result, tmp_path,
                                 BenchmarkOptions(iterations=3, warmup=1, threads=1, per_layer=True),
                                 characterization=char, cache_dir=cache_dir)
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    result = stage.result.per_layer
    assert result.mapping == "torchscript node names" and "relu_1" in result.mapping_note
    rows = result.module_rows()
    assert all(rows[m.path].measured_ms > 0 for m in char.modules if m.self_macs > 0)
    assert result.unmapped_ms <= 0.01 * result.wall_ms


def test_onnx_input_without_characterization_has_no_prediction(built, tmp_path, cache_dir):
    """An .onnx input (no model, no characterization): measured times by module scope, no roofline."""
    _, _, _, _, build, _ = built["resnet18"]
    stage = benchmark_invocation(None, (), {}, build, tmp_path,
                                 BenchmarkOptions(iterations=3, warmup=1, threads=1, per_layer=True),
                                 cache_dir=cache_dir)
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    result = stage.result.per_layer
    rows = result.module_rows()
    assert rows["layer1.0.conv1"].measured_ms > 0 and rows["layer1.0.conv1"].predicted_ms is None
    assert result.predicted_ms is None and result.efficiency is None


def test_a_layer_faster_than_its_roof_is_flagged(built, cache_dir):
    """A profile whose peaks are far too low predicts every layer slower than it ran: each is flagged."""
    from turnkey_like.runtimes.torch_runtime import TorchEagerRuntime

    model, args, kwargs, char = built["resnet18"][:4]
    slow = HardwareProfile(name="slow", description="1 MFLOP/s, 1 MB/s", peak_flops={"float32": 1e6},
                           memory_bandwidth=1e6)
    runtime = TorchEagerRuntime(model, TorchEagerRuntime.prepare_inputs(model, args, kwargs, None), threads=1)
    runtime.load()
    raw = runtime.profile_layers(2, {m.path for m in char.modules})
    result = per_layer_result(raw, char, slow, None)
    flagged = [r.name for r in result.module_rows().values() if r.faster_than_roof]
    assert "layer1.0.conv1" in flagged and set(flagged) <= set(result.faster_than_roof)
    assert result.least_efficient(5)[0].efficiency > 1  # every layer with a roof beat the (wrong) one


def test_per_layer_is_part_of_the_fingerprint(built, tmp_path, cache_dir):
    """A rerun asking for --per-layer never reuses a benchmark measured without it (and vice versa
    only under --rebenchmark never)."""
    model, args, kwargs, char, build, _ = built["resnet18"]
    plain = BenchmarkOptions(iterations=3, warmup=1, threads=1)
    measured = benchmark_invocation(model, args, kwargs, build, tmp_path, plain)
    assert measured.status is Status.SUCCESSFUL and measured.result.per_layer is None
    per_layer = BenchmarkOptions(iterations=3, warmup=1, threads=1, per_layer=True)
    fp = benchmark_fingerprint(build, per_layer)
    assert fp["per_layer"] is True and benchmark_fingerprint(build, plain)["per_layer"] is False
    assert reuse_benchmark(measured, fp, "if_needed") is None
    stale = reuse_benchmark(measured, fp, "never")
    assert stale is not None and "per_layer" in stale.stale


def test_validate_accepts_per_layer_and_refuses_nonsense():
    BenchmarkOptions(per_layer=True).validate()
    with pytest.raises(BenchmarkError, match="per_layer"):
        BenchmarkOptions(per_layer="yes").validate()


def test_scopes_from_exporter_names():
    assert scope_of_torchscript_name("/model/layer2/layer2.0/downsample/downsample.0/Conv") == "layer2.0.downsample.0"
    assert scope_of_torchscript_name("/model/encoder/layer.0/attention/self/query/MatMul") == \
        "encoder.layer.0.attention.self.query"
    assert scope_of_torchscript_name("/model/Flatten") == ""
    assert scope_of_torchscript_name("Identity_0") is None
    assert scope_of_name_scopes("['', 'model', 'model.layer1', 'model.layer1.0', 'model.layer1.0.bn1', "
                                "'_native_batch_norm_legit_no_training_1']") == "layer1.0.bn1"
    assert scope_of_name_scopes("['', 'model', 'view']") == ""
    assert scope_of_name_scopes("not a list") is None


def test_views_show_measured_beside_predicted(built, cache_dir):
    """`tk profile` gets Measured and % of roof columns; `tk report` rows get top layers and efficiency."""
    from rich.console import Console

    from turnkey_like.report.characterization import render_profile
    from turnkey_like.records.report import _top_layers

    from turnkey_like.report.measured import MeasuredRun

    char, stage = _per_layer(built, "bert2", "ort", cache_dir)
    result = stage.result.per_layer
    out = io.StringIO()
    render_profile(char, Console(file=out, width=250, soft_wrap=True), top=3,
                   per_layer=MeasuredRun(stage.result, [stage.result]))
    text = out.getvalue()
    assert "Measured" in text and "% of roof" in text and UNATTRIBUTED in text and UNMAPPED in text
    assert "measured with 1 thread(s)" in text  # the local profile's measured peaks and threads
    assert f"Measured: {stage.result.label()}" in text and "onnxruntime" in stage.result.label()
    top = _top_layers(result)
    slowest = max(result.module_rows().values(), key=lambda r: r.measured_ms)
    assert top.startswith(slowest.name)


def test_queries_of_a_stored_per_layer_result():
    """The record answers the questions reports ask of a stored result (no runtime imported):
    resnet18 benchmarked with --per-layer by tk 0.3.0 (tests/fixtures/cache_v2), checked against the
    rows as the file holds them."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).parent / "fixtures" / "cache_v2" / "resnet18_torchvision_8a7b95f8" / "record.json"
    result = decode(path.read_bytes(), BuildRecord).invocation.benchmark.result.per_layer
    raw = json.loads(path.read_text())["invocation"]["benchmark"]["result"]["per_layer"]["modules"]
    assert [r["name"] for r in raw[-2:]] == [UNMAPPED, UNATTRIBUTED]
    modules = {r["name"]: r for r in raw[:-2]}
    assert list(result.module_rows()) == list(modules) and len(modules) > 50
    slowest = sorted(modules.values(), key=lambda r: -r["measured_ms"])[:3]
    assert [r.name for r in result.top_measured(3)] == [r["name"] for r in slowest]
    with_roof = [r for r in modules.values() if r["efficiency"] is not None and r["measured_ms"] > 0]
    least = sorted(with_roof, key=lambda r: r["efficiency"])[:5]
    assert [(r.name, r.efficiency) for r in result.least_efficient(5)] == [(r["name"], r["efficiency"]) for r in least]
    # the report's column names the same three, with their time and share of the roof
    from turnkey_like.records.report import _top_layers
    from turnkey_like.units import format_ms

    assert _top_layers(result) == "; ".join(f"{r['name']} {format_ms(r['measured_ms'])}, {r['efficiency']:.0%} of roof"
                                            for r in slowest)
    code = "import sys, turnkey_like.report.table, turnkey_like.views; print(sorted(m for m in sys.modules if 'runtimes' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[1])
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("runtime", ["ort", "torch-eager"])
def test_per_layer_on_cuda(built, tmp_path, cache_dir, runtime):
    import onnxruntime as ort

    if runtime == "ort" and "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without CUDAExecutionProvider")
    model, args, kwargs, char, build, _ = built["resnet18"]
    stage = benchmark_invocation(model, args, kwargs, build, tmp_path,
                                 BenchmarkOptions(runtime=runtime, device="cuda", iterations=5, warmup=2,
                                                  per_layer=True),
                                 characterization=char, cache_dir=cache_dir)
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    result = stage.result.per_layer
    rows = result.module_rows()
    assert all(rows[m.path].measured_ms > 0 for m in char.modules if m.self_macs > 0)
    from turnkey_like.characterize.hardware import gpu_profile

    assert result.hardware == gpu_profile(stage.result.device_name)


def test_an_earlier_runtimes_run_is_carried_not_hidden(built, cache_dir):
    """A torch-eager benchmark after an ORT one keeps the ORT per-layer run (``with_earlier``): one run
    per runtime, the newest of each, none nested; the views pick among them by ``--runtime``."""
    from turnkey_like.report.measured import pick

    _, ort = _per_layer(built, "resnet18", "ort", cache_dir)
    _, eager = _per_layer(built, "resnet18", "torch-eager", cache_dir)
    ort, eager = ort.result, eager.result
    both = eager.with_earlier(ort)
    assert [r.key for r in both.per_layer_runs()] == ["torch-eager", "ort"]
    assert both.other_runs[0].per_layer == ort.per_layer and both.other_runs[0].other_runs == []
    again = ort.with_earlier(both)  # ORT measured again: the new ORT run, the carried torch-eager one
    assert [r.key for r in again.per_layer_runs()] == ["ort", "torch-eager"] and again.per_layer is ort.per_layer
    assert [r.label().split()[0] for r in again.per_layer_runs()] == ["onnxruntime", "torch"]
    runs = both.per_layer_runs()
    assert pick(runs, None) is runs[0] and pick(runs, "ort").key == "ort" and pick(runs, "torch-compiled") is None
    assert decode(encode(both), BenchmarkResult) == both  # survives the cache's codec
