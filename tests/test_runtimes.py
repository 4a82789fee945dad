"""Benchmark runtimes on real models: ONNX Runtime, torch eager, torch.compile; the harness rules."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch

from turnkey_like.build import BuildOptions, build_invocation
from turnkey_like.errors import BenchmarkError
from turnkey_like.records import Status
from turnkey_like.runtimes import (
    WARMUP_MIN_RUNS,
    batch_size_of,
    BenchmarkOptions,
    BenchmarkResult,
    Runtime,
    benchmark_invocation,
    latency_stats,
    status_line,
    warm_up,
)
from turnkey_like.system import cpu_name

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
    assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert lat["std"] >= 0
    assert r.throughput_ips == pytest.approx(r.batch_size * 1000.0 / lat["mean"])


def test_ort_cpu_benchmark(mlp):
    model, x, build_dir, build = mlp
    stage = benchmark_invocation(model, (x,), {}, build, build_dir, BenchmarkOptions(iterations=30, threads=1))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = BenchmarkResult.from_dict(stage.result)
    _check_stats(r)
    assert r.runtime == "ort" and r.execution_provider == "CPUExecutionProvider"
    assert r.runtime_version == __import__("onnxruntime").__version__
    assert r.device == "cpu" and r.device_name == cpu_name()
    assert r.threads == 1 and r.batch_size == 4 and r.iterations == 30
    assert r.warmup_iterations >= WARMUP_MIN_RUNS and r.warmup_stable in (True, False)
    assert r.precision == "fp32" and r.within_tolerance is True and r.max_abs_err < 1e-4
    assert r.peak_memory_bytes >= r.rss_start_bytes > 0
    raw = json.loads(open(r.raw_path).read())
    assert len(raw["latency_ms"]) == 30
    assert max(raw["latency_ms"]) == pytest.approx(r.latency_ms["max"])
    line = status_line(stage)
    assert line.startswith(f"Successfully benchmarked on {cpu_name()} (ort {r.runtime_version}) mean ")
    assert line.endswith(" inferences/s")


def test_fixed_warmup_count(mlp):
    model, x, build_dir, build = mlp
    stage = benchmark_invocation(model, (x,), {}, build, build_dir, BenchmarkOptions(iterations=5, warmup=3))
    assert stage.result["warmup_iterations"] == 3 and stage.result["warmup_stable"] is None


def test_torch_eager_benchmark(mlp):
    model, x, build_dir, _ = mlp
    stage = benchmark_invocation(model, (x,), {}, None, build_dir,
                                 BenchmarkOptions(runtime="torch-eager", iterations=20, threads=1))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = BenchmarkResult.from_dict(stage.result)
    _check_stats(r)
    assert r.runtime_version == torch.__version__ and r.execution_provider == "torch-cpu"
    assert r.threads == 1 and r.batch_size == 4 and r.precision == "fp32"
    assert r.max_abs_err is None  # eager is the reference


def test_torch_compiled_benchmark(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 8).eval()
    x = torch.randn(2, 16)
    stage = benchmark_invocation(model, (x,), {}, None, tmp_path,
                                 BenchmarkOptions(runtime="torch-compiled", iterations=10, warmup=2))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert r["runtime"] == "torch-compiled" and r["within_tolerance"] is True
    assert r["max_abs_err"] < 1e-5


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
    assert stage.result["batch_size"] == 2 and stage.result["within_tolerance"] is True


def test_ort_without_build_is_an_error_result(mlp):
    model, x, build_dir, _ = mlp
    stage = benchmark_invocation(model, (x,), {}, None, build_dir, BenchmarkOptions())
    assert stage.status is Status.ERROR and "no ONNX build" in stage.error
    assert status_line(stage).startswith("Benchmark failed: no ONNX build")


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
    assert stage.result["execution_provider"] == "torch-cuda"
    assert stage.result["device_name"] == torch.cuda.get_device_name(0)
    assert stage.result["peak_device_memory_bytes"] > 0


@pytest.mark.cuda
@cuda
def test_ort_on_cuda(mlp, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    model, x, _, build = mlp
    stage = benchmark_invocation(model, (x,), {}, build, tmp_path, BenchmarkOptions(device="cuda", iterations=20))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result["execution_provider"] == "CUDAExecutionProvider"
    assert stage.result["within_tolerance"] is True


def test_latency_stats_hand_numbers():
    stats = latency_stats([0.001, 0.002, 0.003, 0.004, 0.005])  # 1..5 ms
    assert stats["mean"] == pytest.approx(3.0) and stats["median"] == pytest.approx(3.0)
    assert stats["p90"] == pytest.approx(4.6)  # rank 0.9 * 4 = 3.6 -> 4 + 0.6 * (5 - 4)
    assert stats["p99"] == pytest.approx(4.96)  # rank 3.96 -> 4 + 0.96
    assert stats["std"] == pytest.approx(math.sqrt(2.0))  # population: mean of (4,1,0,1,4) = 2
    assert stats["min"] == pytest.approx(1.0) and stats["max"] == pytest.approx(5.0)


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


def test_batch_size_rule():
    import numpy as np

    assert batch_size_of([np.zeros((8, 3, 4)), np.zeros((2,))]) == 8  # first tensor's first dim
    assert batch_size_of([np.zeros((50,))]) == 1  # a 1-D vector is one sample, not a batch of 50
    assert batch_size_of([np.zeros(())]) == 1
