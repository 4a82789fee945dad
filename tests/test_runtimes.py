"""Benchmark runtimes on real models: ONNX Runtime, torch eager, torch.compile; the harness rules."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

from turnkey_like.build import BuildOptions, build_invocation
from turnkey_like.errors import BenchmarkError
from turnkey_like.records import Status
from turnkey_like.records import BenchmarkResult, StageResult, decode, encode
from turnkey_like.runtimes import (
    BATCH_TAKEN,
    WARMUP_MIN_RUNS,
    BenchmarkOptions,
    Runtime,
    batch_of,
    benchmark_invocation,
    latency_stats,
    warm_up,
)
from turnkey_like.runtimes.harness import MIN_LOAD_WINDOW_S
from turnkey_like.stats import WIDE_SPREAD
from turnkey_like.system import QUIET_POLL_S, cpu_name

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class SmallMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    torch.manual_seed(0)
    model = SmallMLP().eval()
    x = torch.randn(4, 64)  # batch of 4
    build_dir = tmp_path_factory.mktemp("mlp")
    build = build_invocation(model, (x,), {}, build_dir, BuildOptions(exporter="torchscript"))
    assert build.status is Status.SUCCESSFUL, build.error
    return model, x, build_dir, build.result


def _check_stats(r: BenchmarkResult):
    lat = r.latency_ms
    assert 0 < lat.min <= lat.median <= lat.p90 <= lat.p99 <= lat.max
    assert lat.min <= lat.mean <= lat.max
    assert lat.std >= 0 and 0 <= lat.iqr <= lat.max - lat.min and lat.runs == r.iterations
    assert r.throughput_ips == pytest.approx(r.batch_size * 1000.0 / lat.mean)
    _check_load(r)


def _check_load(r: BenchmarkResult):
    """How busy the machine was, as every benchmark records it (whatever the machine is doing), and
    the warnings that say so."""
    load = r.load
    assert load is not None and load.window in ("timed loop", "timed loop and untimed runs after it")
    assert load.window_s >= MIN_LOAD_WINDOW_S and load.other_cpu_s >= 0 and load.other_cores >= 0
    assert load.load_avg_1min is None or load.load_avg_1min >= 0
    assert load.threads == min(r.threads or 1, load.cores)
    assert load.busy == (load.other_cores - load.resolution_cores > load.threshold_cores)
    assert (load.note in r.warnings) if load.busy else load.note is None
    wide = r.latency_ms.iqr > WIDE_SPREAD * r.latency_ms.median
    assert any(w.startswith("latency spread widely") for w in r.warnings) == wide


def test_ort_cpu_benchmark(mlp):
    model, x, build_dir, build = mlp
    stage = benchmark_invocation(model, (x,), {}, build, build_dir, BenchmarkOptions(iterations=30, threads=1))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert isinstance(r, BenchmarkResult)
    _check_stats(r)
    assert r.runtime == "ort" and r.execution_provider == "CPUExecutionProvider"
    assert r.runtime_version == __import__("onnxruntime").__version__
    assert r.device == "cpu" and r.device_name == cpu_name()
    assert r.threads == 1 and r.batch_size == 4 and r.batch_note == BATCH_TAKEN and r.iterations == 30
    assert r.warmup_iterations >= WARMUP_MIN_RUNS and r.warmup_stable in (True, False)
    assert r.precision == "fp32" and r.within_tolerance is True and r.max_abs_err < 1e-4
    assert r.peak_memory_bytes >= r.rss_start_bytes > 0
    raw = json.loads(open(r.raw_path).read())
    assert len(raw["latency_ms"]) == 30
    assert max(raw["latency_ms"]) == pytest.approx(r.latency_ms.max)
    assert decode(encode(stage), StageResult[BenchmarkResult]) == stage  # survives the cache's codec


def test_fixed_warmup_count(mlp):
    model, x, build_dir, build = mlp
    stage = benchmark_invocation(model, (x,), {}, build, build_dir, BenchmarkOptions(iterations=5, warmup=3))
    assert stage.result.warmup_iterations == 3 and stage.result.warmup_stable is None


def test_torch_eager_benchmark(mlp):
    model, x, build_dir, _ = mlp
    stage = benchmark_invocation(model, (x,), {}, None, build_dir,
                                 BenchmarkOptions(runtime="torch-eager", iterations=20, threads=1))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    _check_stats(r)
    assert r.runtime_version == torch.__version__ and r.execution_provider == "torch-cpu"
    assert r.threads == 1 and r.batch_size == 4 and r.precision == "fp32"
    assert r.max_abs_err is None  # eager is the reference
    assert decode(encode(stage), StageResult[BenchmarkResult]) == stage  # survives the cache's codec


def test_torch_compiled_benchmark(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 8).eval()
    x = torch.randn(2, 16)
    stage = benchmark_invocation(model, (x,), {}, None, tmp_path,
                                 BenchmarkOptions(runtime="torch-compiled", iterations=10, warmup=2))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert r.runtime == "torch-compiled" and r.within_tolerance is True
    assert r.max_abs_err < 1e-5


def test_ort_with_keyword_inputs(tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64)).eval()
    kwargs = {"input_ids": torch.randint(1, 100, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    build = build_invocation(model, (), kwargs, tmp_path, BuildOptions(exporter="torchscript"))
    assert build.status is Status.SUCCESSFUL, build.error
    stage = benchmark_invocation(model, (), kwargs, build.result, tmp_path, BenchmarkOptions(iterations=10))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result.batch_size == 2 and stage.result.within_tolerance is True


def test_ort_without_build_is_an_error_result(mlp):
    model, x, build_dir, _ = mlp
    stage = benchmark_invocation(model, (x,), {}, None, build_dir, BenchmarkOptions())
    assert stage.status is Status.ERROR and "no ONNX build" in stage.error
    assert stage.result is None and stage.log_excerpt is None


def test_user_option_errors_raise(mlp, tmp_path):
    model, x, _, build = mlp
    with pytest.raises(BenchmarkError, match="unknown runtime"):
        benchmark_invocation(model, (x,), {}, build, tmp_path, BenchmarkOptions(runtime="tensorrt"))
    with pytest.raises(BenchmarkError, match="iterations"):
        benchmark_invocation(model, (x,), {}, build, tmp_path, BenchmarkOptions(iterations=0))
    with pytest.raises(BenchmarkError, match="needs a PyTorch model"):
        benchmark_invocation(None, (), {}, build, tmp_path, BenchmarkOptions(runtime="torch-eager"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_gpu_is_a_clear_error(mlp, tmp_path):
    model, x, _, build = mlp
    with pytest.raises(BenchmarkError, match="--device cuda"):
        benchmark_invocation(model, (x,), {}, None, tmp_path, BenchmarkOptions(runtime="torch-eager", device="cuda"))
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BenchmarkError, match="CUDAExecutionProvider"):
            benchmark_invocation(model, (x,), {}, build, tmp_path, BenchmarkOptions(device="cuda"))


@pytest.mark.cuda
@cuda
def test_torch_eager_on_cuda(mlp, tmp_path):
    model, x, _, _ = mlp
    stage = benchmark_invocation(model, (x,), {}, None, tmp_path,
                                 BenchmarkOptions(runtime="torch-eager", device="cuda", iterations=20))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result.execution_provider == "torch-cuda"
    assert stage.result.device_name == torch.cuda.get_device_name(0)
    assert stage.result.peak_device_memory_bytes > 0
    assert next(model.parameters()).device.type == "cpu"  # the user's model is given back where it was


@pytest.mark.cuda
@cuda
def test_ort_on_cuda(mlp, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    model, x, _, build = mlp
    stage = benchmark_invocation(model, (x,), {}, build, tmp_path, BenchmarkOptions(device="cuda", iterations=20))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result.execution_provider == "CUDAExecutionProvider"
    assert stage.result.within_tolerance is True


def test_latency_stats_hand_numbers():
    stats = latency_stats([0.001, 0.002, 0.003, 0.004, 0.005])  # 1..5 ms
    assert stats.mean == pytest.approx(3.0) and stats.median == pytest.approx(3.0)
    assert stats.p90 == pytest.approx(4.6)  # rank 0.9 * 4 = 3.6 -> 4 + 0.6 * (5 - 4)
    assert stats.p99 == pytest.approx(4.96)  # rank 3.96 -> 4 + 0.96
    assert stats.std == pytest.approx(math.sqrt(2.0))  # population: mean of (4,1,0,1,4) = 2
    assert stats.min == pytest.approx(1.0) and stats.max == pytest.approx(5.0)
    assert stats.iqr == pytest.approx(2.0) and stats.runs == 5  # p75 4 - p25 2


# --------------------------------------------------------------------------------------------------
# A busy machine: recorded on every benchmark, flagged when it could have moved the figures
# --------------------------------------------------------------------------------------------------


def test_other_processes_during_the_timed_loop_are_flagged(mlp):
    """Spinning processes started here while a real benchmark times: its record says how many cores
    they used, and its warnings repeat it."""
    from busy import busy_processes

    model, x, build_dir, build = mlp
    with busy_processes():
        stage = benchmark_invocation(model, (x,), {}, build, build_dir, BenchmarkOptions(iterations=30, threads=1))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    _check_stats(r)
    assert r.load.busy and r.load.other_cores > r.load.threshold_cores == pytest.approx(0.1)
    assert r.load.attempts == 1 and r.load.waited_s == 0  # no --wait-quiet: timed at once
    assert r.warnings[0] == r.load.note and r.load.note.startswith(
        f"other processes used {r.load.other_cores:.1f} of {r.load.cores} cores during the timed loop")


def test_wait_quiet_waits_a_bounded_time_and_says_so(mlp):
    """``wait_quiet_s`` on a machine kept busy: tk looks for a quiet moment (none comes), times once,
    and records the wait; it is part of the fingerprint, so asking for it measures again."""
    from busy import busy_processes
    from turnkey_like.runtimes import benchmark_fingerprint

    model, x, build_dir, build = mlp
    options = BenchmarkOptions(iterations=30, threads=1, wait_quiet_s=2 * QUIET_POLL_S)
    with busy_processes():
        start = time.perf_counter()
        stage = benchmark_invocation(model, (x,), {}, build, build_dir, options)
        elapsed = time.perf_counter() - start
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    _check_stats(r)
    assert r.load.busy and r.load.waited_s >= 2 * QUIET_POLL_S and r.load.attempts == 1
    assert "still busy after waiting 2 s (1 attempt)" in r.load.note
    assert elapsed < 10 * (2 * QUIET_POLL_S + 5)  # hang guard
    assert r.fingerprint["wait_quiet"] == 2.0
    assert benchmark_fingerprint(build, BenchmarkOptions(iterations=30, threads=1))["wait_quiet"] is None
    with pytest.raises(BenchmarkError, match="wait_quiet_s"):
        BenchmarkOptions(wait_quiet_s=-1).validate()


def test_per_layer_rows_carry_their_spread(mlp, tmp_path):
    """A real ``--per-layer`` run: every row with measured time has the spread of its profiled runs,
    and ``noisy`` follows the rule."""
    from turnkey_like.characterize.hardware import get_profile
    from turnkey_like.characterize.assemble import characterize_call

    model, x, build_dir, build = mlp
    char = characterize_call(model, (x,), {}, hardware=get_profile("local", cache_dir=tmp_path))
    for runtime in ("torch-eager", "ort"):
        stage = benchmark_invocation(model, (x,), {}, build, build_dir,
                                     BenchmarkOptions(runtime=runtime, iterations=20, threads=1, per_layer=True),
                                     characterization=char, cache_dir=tmp_path)
        assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
        per_layer = stage.result.per_layer
        assert per_layer.wall_spread.runs == per_layer.iterations == 20
        rows = [*per_layer.modules, *per_layer.categories]
        measured = [r for r in rows if r.measured_ms > 0]
        assert measured and all(r.spread is not None and r.spread >= 0 for r in measured), runtime
        for r in rows:
            assert r.noisy == (r.spread is not None and r.spread > WIDE_SPREAD)
            assert r.inclusive_noisy == (r.inclusive_spread is not None and r.inclusive_spread > WIDE_SPREAD)
        assert set(per_layer.noisy) == {r.name for r in rows if r.noisy and r.efficiency is not None}
        assert decode(encode(stage), StageResult[BenchmarkResult]) == stage  # survives the cache's codec


class ScriptedRuntime(Runtime):
    """Returns scripted latencies (seconds) so the warm-up rule can be checked exactly."""

    def __init__(self, latencies, sleep=0.0):
        self.latencies = list(latencies)
        self.i = 0
        self.sleep = sleep

    def time_runs(self, n):
        out = []
        for _ in range(n):
            if self.sleep:
                time.sleep(self.sleep)
            out.append(self.latencies[self.i % len(self.latencies)])
            self.i += 1
        return out


def test_warm_up_stops_when_stable():
    rt = ScriptedRuntime([5, 4, 3, 2, 1] + [1] * 100)
    runs, _, stable = warm_up(rt, None)
    # n=10: medians 1 vs 3; n=11: 1 vs median(4,3,2,1,1)=2; n=12: 1 vs median(3,2,1,1,1)=1 -> stable
    assert stable is True and runs == 12


def test_warm_up_is_bounded_in_time():
    rt = ScriptedRuntime([1, 3], sleep=0.002)  # windows alternate medians 1 and 3: never stable
    start = time.perf_counter()
    runs, seconds, stable = warm_up(rt, None, max_s=0.1)
    assert stable is False and seconds >= 0.1 and time.perf_counter() - start < 5
    assert runs >= WARMUP_MIN_RUNS


def test_batch_rule():
    # dim 0 is the batch when every input with >= 2 dims agrees on it; 1-D inputs do not vote
    assert batch_of({"x": (8, 3, 4), "lengths": (2,)}) == (8, BATCH_TAKEN)
    assert batch_of({"ids": (4, 16), "mask": (4, 16)}) == (4, BATCH_TAKEN)
    assert batch_of({"x": (2708, 16), "edge_index": (2, 10556)}) == (
        1, "inputs disagree on dim 0: x=2708, edge_index=2 → batch 1")
    assert batch_of({"a": (3, 1), "b": (3, 2), "c": (5, 1)}) == (1, "inputs disagree on dim 0: a=3, c=5 → batch 1")
    assert batch_of({"v": (50,)}) == (1, "no input has 2 or more dims → batch 1")  # one sample, not 50
    assert batch_of({}) == (1, "no input has 2 or more dims → batch 1")


class TinyGCN(torch.nn.Module):
    """Two graph convolutions over an edge list: ``relu(A_hat X W1)`` then ``A_hat H W2``.

    Inputs: node features ``x [N, 16]`` and ``edge_index [2, E]`` (source, target rows), as
    PyTorch Geometric passes them; one call is one inference over one graph of N nodes.
    """

    def __init__(self, features: int = 16, hidden: int = 16, classes: int = 7):
        super().__init__()
        self.lin1 = torch.nn.Linear(features, hidden)
        self.lin2 = torch.nn.Linear(hidden, classes)

    def propagate(self, h, edge_index):
        """Mean of each node and the sum of its in-neighbours' messages (self loops kept)."""
        src, dst = edge_index[0], edge_index[1]
        index = dst.unsqueeze(1).expand(-1, h.size(1))
        return h.scatter_add(0, index, h[src]) / 2.0

    def forward(self, x, edge_index):
        h = torch.relu(self.propagate(self.lin1(x), edge_index))
        return self.propagate(self.lin2(h), edge_index)


@pytest.mark.parametrize("runtime", ["ort", "torch-eager"])
def test_graph_model_counts_one_inference_per_call(tmp_path, runtime):
    """Cora-sized graph: 2,708 nodes must not count as 2,708 inferences (issue 8: "49,543 inferences/s")."""
    torch.manual_seed(0)
    model = TinyGCN().eval()
    x = torch.randn(2708, 16)
    edge_index = torch.randint(0, 2708, (2, 10556))  # Cora has 10,556 directed edges
    build = None
    if runtime == "ort":
        built = build_invocation(model, (x, edge_index), {}, tmp_path, BuildOptions(exporter="torchscript"))
        assert built.status is Status.SUCCESSFUL, (built.error, built.log_excerpt)
        assert built.result.faithful is True
        build = built.result
    stage = benchmark_invocation(model, (x, edge_index), {}, build, tmp_path,
                                 BenchmarkOptions(runtime=runtime, iterations=5, warmup=1))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert r.batch_size == 1
    assert r.batch_note == "inputs disagree on dim 0: x=2708, edge_index=2 → batch 1"
    assert r.throughput_ips == pytest.approx(1000.0 / r.latency_ms.mean)
    assert r.latency_ms.mean > 0


def test_ort_work_crosses_a_spawned_child(mlp, tmp_path):
    """ORT on CUDA runs in a spawned child (the parent may hold CUDA): its target, inputs, reference and
    result must pickle. Checked here on CPU with the same harness function and arguments."""
    from turnkey_like.calls import eager_outputs
    from turnkey_like.launcher import run_isolated
    from turnkey_like.runtimes.harness import _benchmark_child
    from turnkey_like.runtimes.ort import OrtRuntime

    model, x, _, build = mlp
    feed = OrtRuntime.prepare_inputs(model, (x,), {}, build)
    reference = eager_outputs(model, (x,), {})
    options = BenchmarkOptions(iterations=3, warmup=1)
    out = run_isolated(_benchmark_child, "ort", build, feed, options, reference, str(tmp_path / "raw.json"),
                       timeout_s=300, log_path=tmp_path / "spawn.log", start_method="spawn")
    assert out.status is Status.SUCCESSFUL, (out.error, out.log_excerpt)
    assert isinstance(out.value, BenchmarkResult)
    assert out.value.within_tolerance is True and out.value.batch_size == 4 and out.value.iterations == 3


# --------------------------------------------------------------------------------------------------
# Reuse (--rebenchmark): the fingerprint rule on a real result, then real `tk benchmark` reruns
# --------------------------------------------------------------------------------------------------


def test_fingerprint_says_what_the_figures_depend_on(mlp):
    from turnkey_like.runtimes import benchmark_fingerprint
    from turnkey_like.system import system_info

    _, _, _, build = mlp
    fp = benchmark_fingerprint(build, BenchmarkOptions(iterations=30, threads=1))
    assert {f"build.{k}" for k in build.fingerprint} <= set(fp)  # the build's own keys, prefixed
    assert fp["build.weights"] == build.fingerprint["weights"]
    assert (fp["runtime"], fp["device"], fp["precision"], fp["threads"], fp["iterations"], fp["warmup"],
            fp["per_layer"], fp["wait_quiet"]) == ("ort", "cpu", "fp32", 1, 30, None, False, None)
    assert fp["tk"] == __import__("turnkey_like").__version__
    assert (fp["cpu"], fp["cores"], fp["onnxruntime"]) == (
        cpu_name(), system_info()["cores_logical"], __import__("onnxruntime").__version__)
    assert "build.stale" not in fp  # ORT measures the build's file, whatever the live model became
    eager = benchmark_fingerprint(build, BenchmarkOptions(runtime="torch-eager"))
    assert eager["build.stale"] is None  # torch runtimes measure the live model: a stale build counts
    assert benchmark_fingerprint(build, BenchmarkOptions(iterations=30, threads=1)) == fp  # deterministic


def test_reuse_rule_on_a_real_benchmark(mlp):
    """``reuse_benchmark`` against a benchmark measured here: equal fingerprints reuse (if_needed), any
    difference measures again, ``never`` reuses and lists what differs, ``always`` never reuses."""
    from turnkey_like.runtimes import benchmark_fingerprint, reuse_benchmark
    from turnkey_like.system import system_info

    model, x, build_dir, build = mlp
    options = BenchmarkOptions(iterations=5, warmup=1)
    measured = benchmark_invocation(model, (x,), {}, build, build_dir, options)
    assert measured.status is Status.SUCCESSFUL, (measured.error, measured.log_excerpt)
    fp = benchmark_fingerprint(build, options)
    assert measured.result.fingerprint == fp and measured.result.reused is False

    reused = reuse_benchmark(measured, fp, "if_needed")
    assert reused is not None and reused.reused is True and reused.stale == []
    assert reused.latency_ms == measured.result.latency_ms and measured.result.reused is False  # a copy
    assert reuse_benchmark(measured, fp, "always") is None

    other_machine = {**system_info(), "cpu": "another CPU", "onnxruntime": "0.0.1"}
    changes = {
        "iterations": benchmark_fingerprint(build, BenchmarkOptions(iterations=6, warmup=1)),
        "warmup": benchmark_fingerprint(build, BenchmarkOptions(iterations=5)),
        "threads": benchmark_fingerprint(build, BenchmarkOptions(iterations=5, warmup=1, threads=1)),
        "runtime": benchmark_fingerprint(build, BenchmarkOptions(runtime="torch-eager", iterations=5, warmup=1)),
        "per_layer": benchmark_fingerprint(build, BenchmarkOptions(iterations=5, warmup=1, per_layer=True)),
        "machine": benchmark_fingerprint(build, options, system=other_machine),
    }
    for what, changed in changes.items():
        assert reuse_benchmark(measured, changed, "if_needed") is None, what
    stale = reuse_benchmark(measured, changes["machine"], "never")
    assert stale.reused is True and stale.stale == ["cpu", "onnxruntime"]
    assert reuse_benchmark(measured, changes["runtime"], "never").stale == ["runtime"]

    failed = StageResult(status=Status.ERROR, error="boom")
    assert all(reuse_benchmark(prev, fp, policy) is None for prev in (None, failed)
               for policy in ("if_needed", "never"))
    with pytest.raises(BenchmarkError, match="rebenchmark"):
        BenchmarkOptions(rebenchmark="sometimes").validate()


def _copy_cache(real_cache, tmp_path):
    import shutil

    return shutil.copytree(real_cache, tmp_path / "cache", symlinks=True)


def _hello_world(cache, *extra):
    """Rerun ``tk benchmark hello_world.py`` as the ``real_cache`` fixture ran it (5 iterations), plus
    ``extra``; returns (the run's output, hello_world's benchmark stage from the cache)."""
    from conftest import EXAMPLES, run_tk

    iterations = () if "never" in extra else ("--iterations", "5")  # never keeps the cached one: no --iterations
    out = run_tk("benchmark", str(EXAMPLES / "hello_world.py"), *iterations, *extra, "--cache-dir", str(cache))
    assert out.returncode == 0, f"tk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr, _benchmark_stage(cache)


def _benchmark_stage(cache):
    from turnkey_like.cache import Cache

    store = Cache(cache, create=False)
    name = next(n for n in store.builds() if n.startswith("hello_world"))
    return store.load(name).invocation.benchmark


def test_a_rerun_reuses_the_benchmark(real_cache, tmp_path):
    cache = _copy_cache(real_cache, tmp_path)
    before = _benchmark_stage(cache)
    raw = Path(cache) / Path(before.result.raw_path).parent.name / Path(before.result.raw_path).name
    raw_facts = (raw.read_bytes(), raw.stat().st_mtime_ns)
    output, after = _hello_world(cache)
    assert after.status is Status.SUCCESSFUL and after.reason == "reused from cache"
    assert after.result.reused is True and after.result.stale == []
    assert after.duration_s == 0.0 and "benchmarking pytorch_model" not in output  # no benchmark child ran
    assert after.run_id == before.run_id and after.started_at == before.started_at  # the run that measured it
    assert after.result.latency_ms == before.result.latency_ms
    assert after.result.throughput_ips == before.result.throughput_ips
    assert (raw.read_bytes(), raw.stat().st_mtime_ns) == raw_facts  # the raw latencies were not rewritten
    assert "(reused from cache)" in output


#: the rule itself is checked fast above; these reruns each measure again (~5 s), so most are slow
@pytest.mark.parametrize("extra", [
    ("--rebenchmark", "always"),
    pytest.param(("--iterations", "6"), marks=pytest.mark.slow),
    pytest.param(("--threads", "1"), marks=pytest.mark.slow),
    pytest.param(("--runtime", "torch-eager"), marks=pytest.mark.slow),
], ids=lambda e: " ".join(e))
def test_a_changed_option_measures_again(real_cache, tmp_path, extra):
    cache = _copy_cache(real_cache, tmp_path)
    before = _benchmark_stage(cache)
    output, after = _hello_world(cache, *extra)  # after its --iterations 5: argparse keeps the last value
    assert after.status is Status.SUCCESSFUL and after.reason is None and after.result.reused is False
    assert after.run_id != before.run_id and "benchmarking pytorch_model" in output
    fp = after.result.fingerprint
    assert (fp["iterations"], fp["threads"], fp["runtime"]) == (
        6 if "--iterations" in extra else 5, 1 if "--threads" in extra else None,
        "torch-eager" if "--runtime" in extra else "ort")


@pytest.mark.parametrize("key", ["tk", pytest.param("cpu", marks=pytest.mark.slow)])
def test_a_benchmark_from_another_tk_or_machine_is_measured_again(real_cache, tmp_path, key):
    """The stored fingerprint says another tk version (or CPU) measured it: ``if_needed`` measures
    again, ``never`` reuses it and names the key."""
    import msgspec

    from turnkey_like.cache import Cache

    cache = _copy_cache(real_cache, tmp_path)
    store = Cache(cache)
    name = next(n for n in store.builds() if n.startswith("hello_world"))
    record = store.load(name)
    stage = record.invocation.benchmark
    other = {**stage.result.fingerprint, key: f"another {key}"}
    record.invocation.benchmark = msgspec.structs.replace(
        stage, result=msgspec.structs.replace(stage.result, fingerprint=other))
    store.save(record)

    _, kept = _hello_world(cache, "--rebenchmark", "never")
    # never reuses it and names every key that differs: this one, and iterations (5 cached; the default now,
    # since --iterations with --rebenchmark never is a contradiction)
    assert kept.reason == "reused from cache" and sorted(kept.result.stale) == sorted([key, "iterations"])
    assert kept.run_id == stage.run_id
    _, after = _hello_world(cache)
    assert after.reason is None and after.result.reused is False and after.run_id != stage.run_id
    assert after.result.fingerprint[key] == stage.result.fingerprint[key]  # this machine's value again
