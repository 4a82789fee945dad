"""Real ONNX exports of small models: exporters, names, fp16, faithfulness, reuse policies."""

from __future__ import annotations

import copy
from pathlib import Path

import msgspec
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from turnkey_like.agreement import TOLERANCES
from turnkey_like.build import BuildOptions, BuildResult, build_invocation, copy_build, weights_hash
from turnkey_like.errors import BuildError
from turnkey_like.onnx_tools import save_onnx
from turnkey_like.records import GraphIO, Status, StageResult, decode, encode


class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


class PairModel(torch.nn.Module):
    """Takes a nested tuple and a non-tensor scale (baked into the graph)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, pair, scale=1.0):
        a, b = pair
        return self.lin(a) * scale + b


class RefusesExport(torch.nn.Module):
    """A model torch.export cannot capture (it raises under export); TorchScript tracing can."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x):
        if torch.compiler.is_exporting():
            raise RuntimeError("this model refuses torch.export")
        return self.lin(x)


def _tiny_bert():
    from transformers import BertConfig, BertModel

    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    return BertModel(config).eval()


@pytest.fixture(scope="module")
def cnn_build(tmp_path_factory):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(1, 3, 16, 16)
    build_dir = tmp_path_factory.mktemp("cnn")
    result = build_invocation(model, (x,), {}, build_dir, BuildOptions())
    return model, x, build_dir, result


def test_cnn_dynamo_export(cnn_build):
    model, x, build_dir, stage = cnn_build
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert isinstance(r, BuildResult)
    assert r.exporter == "dynamo" and r.exporter_errors == {}
    assert r.opset == 18 and r.precision == "fp32" and not r.reused
    assert r.input_names == ["x"]  # forward's parameter name
    assert r.input_specs == [GraphIO(name="x", shape=[1, 3, 16, 16], dtype="float32")]
    assert r.output_names == ["output"]
    # two Conv2d modules -> two Conv nodes; the Linear -> one Gemm (or MatMul+Add)
    assert r.onnx_op_counts["Conv"] == 2
    assert r.onnx_op_counts.get("Gemm", 0) + r.onnx_op_counts.get("MatMul", 0) == 1
    assert Path(r.onnx_path).parent == build_dir.resolve()
    assert Path(r.optimized_path).exists()
    assert r.size_bytes == Path(r.onnx_path).stat().st_size + sum(
        (Path(r.onnx_path).parent / f).stat().st_size for f in r.data_files)
    # weights: 3*8*9+8 + 8*8*9+8 + 8*10+10 = 224 + 584 + 90 = 898 fp32 values = 3592 bytes, all in the file
    assert r.size_bytes > 3592
    onnx.checker.check_model(r.onnx_path)
    assert set(r.durations) >= {"export", "check", "optimize", "validate"}
    # faithful: ORT and eager agree far inside the fp32 tolerance
    assert r.faithful is True
    assert r.tolerance == TOLERANCES["fp32"]
    assert r.faithfulness["output"].max_abs_err < 1e-5 and r.faithfulness["output"].shape == [1, 10]
    # the record survives the cache's codec unchanged
    assert decode(encode(stage), StageResult[BuildResult]) == stage


def test_cnn_onnx_matches_eager_independently(cnn_build):
    model, x, _, stage = cnn_build
    sess = ort.InferenceSession(stage.result.onnx_path, providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"x": x.numpy()})
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_bert_keyword_inputs_keep_their_names(tmp_path):
    torch.manual_seed(0)
    model = _tiny_bert()
    ids = torch.randint(1, 100, (1, 12))
    mask = torch.ones(1, 12, dtype=torch.long)
    # use_cache=False is a keyword non-tensor input: TurnkeyML failed with "use_cache given twice"
    stage = build_invocation(model, (), {"input_ids": ids, "attention_mask": mask, "use_cache": False},
                             tmp_path, BuildOptions())
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert r.exporter == "dynamo" and r.trace.method == "torch.export(strict=False)"
    assert r.input_names == ["input_ids", "attention_mask"]
    assert r.output_names == ["last_hidden_state", "pooler_output"]
    assert r.faithful is True
    assert r.faithfulness["last_hidden_state"].shape == [1, 12, 32]
    # 2 layers x (Q, K, V, attention-out, intermediate, output) = 12 Linear layers as MatMul/Gemm,
    # + the pooler's dense layer = 13
    assert r.onnx_op_counts.get("MatMul", 0) + r.onnx_op_counts.get("Gemm", 0) >= 13


def test_nested_tuple_input_and_baked_scalar(tmp_path):
    torch.manual_seed(0)
    model = PairModel().eval()
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    stage = build_invocation(model, ((a, b),), {"scale": 3.0}, tmp_path, BuildOptions())
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result.input_names == ["pair_0", "pair_1"]
    sess = ort.InferenceSession(stage.result.onnx_path, providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"pair_0": a.numpy(), "pair_1": b.numpy()})
    with torch.no_grad():
        expected = (model.lin(a) * 3.0 + b).numpy()  # scale=3.0 was baked into the graph
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_fallback_to_torchscript_records_why(tmp_path):
    model = RefusesExport().eval()
    stage = build_invocation(model, (torch.randn(2, 4),), {}, tmp_path, BuildOptions())
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result.exporter == "torchscript"
    assert "dynamo" in stage.result.exporter_errors
    assert "\x1b" not in stage.result.exporter_errors["dynamo"]  # no terminal colour codes
    assert stage.result.faithful is True
    # both export rungs were tried once and failed; that is the dynamo exporter's recorded reason
    trace = stage.result.trace
    assert trace.method == "none"
    assert [(a.method, a.ok) for a in trace.attempts] == [
        ("torch.export(strict=False)", False), ("torch.export(strict=True)", False)]
    assert stage.result.exporter_errors["dynamo"] == f"torch.export failed: {trace.failure_reason}"
    assert "refuses torch.export" in trace.attempts[0].error  # the model's own error, in one line


class CountsExportCalls(torch.nn.Module):
    """Prints a line to the build log each time torch.export runs its forward."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x):
        if torch.compiler.is_exporting():
            print("forward run by torch.export", flush=True)
        return torch.relu(self.lin(x))


def test_dynamo_export_converts_the_one_trace(tmp_path):
    torch.manual_seed(0)
    stage = build_invocation(CountsExportCalls().eval(), (torch.randn(2, 4),), {}, tmp_path, BuildOptions())
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert r.exporter == "dynamo" and r.faithful is True
    # traced once (non-strict export, the first rung); the ONNX exporter converted that program
    log = (tmp_path / "build.log").read_text()
    assert log.count("forward run by torch.export") == 1
    assert r.trace.method == "torch.export(strict=False)" and r.trace.node_count > 0
    assert [(a.method, a.ok) for a in r.trace.attempts] == [("torch.export(strict=False)", True)]
    assert r.durations["trace"] > 0 and r.durations["export"] > 0
    # the TorchScript exporter alone needs no torch.export trace
    ts = build_invocation(CountsExportCalls().eval(), (torch.randn(2, 4),), {}, tmp_path / "ts",
                          BuildOptions(exporter="torchscript"))
    assert ts.status is Status.SUCCESSFUL and ts.result.trace.method == "not traced"
    assert "forward run by torch.export" not in (tmp_path / "ts" / "build.log").read_text()


def test_dynamo_only_failure_is_a_result_not_an_exception(tmp_path):
    model = RefusesExport().eval()
    stage = build_invocation(model, (torch.randn(2, 4),), {}, tmp_path, BuildOptions(exporter="dynamo"))
    assert stage.status is Status.ERROR and stage.result is None
    assert stage.error.startswith("ONNX export failed: dynamo:")  # a TkError is given by its message
    assert stage.log_excerpt  # the exporter's traceback


def test_fp16_keeps_io_types_and_is_faithful_within_fp16_tolerance(tmp_path):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(1, 3, 16, 16)
    stage = build_invocation(model, (x,), {}, tmp_path, BuildOptions(precision="fp16", exporter="torchscript"))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert r.precision == "fp16" and r.onnx_path.endswith("model_fp16.onnx")
    proto = onnx.load(r.onnx_path)
    weights = {i.name: i for i in proto.graph.initializer}
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in weights.values())
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
    assert r.tolerance == TOLERANCES["fp16"]
    err = r.faithfulness["output"].max_abs_err
    assert 0 < err < 1e-2  # fp16 rounding shows (non-zero) but stays small
    assert r.faithful is True
    assert r.size_bytes < Path(r.exported_path).stat().st_size  # half-size weights


def test_unfaithful_export_is_flagged(tmp_path):
    # A model left in training mode: eager applies dropout, the exported inference graph does not.
    torch.manual_seed(0)
    model = torch.nn.Dropout(p=0.5).train()
    x = torch.ones(4, 64)
    stage = build_invocation(model, (x,), {}, tmp_path, BuildOptions(exporter="torchscript"))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    # eager: each element is 0 or 1/(1-0.5) = 2; ONNX (no dropout): 1 -> |error| = 1 everywhere
    assert stage.result.faithfulness["output"].max_abs_err == pytest.approx(1.0)
    assert stage.result.faithful is False


def test_weights_hash_sees_weight_changes():
    torch.manual_seed(0)
    big = torch.nn.Linear(256, 256)  # 256*256*4 = 262144 bytes > the 64 KiB whole-hash limit: sampled
    same = copy.deepcopy(big)
    assert weights_hash(big) == weights_hash(same)
    with torch.no_grad():
        same.weight.mul_(1.01)
    assert weights_hash(big) != weights_hash(same)


def test_invalid_options_raise():
    with pytest.raises(BuildError, match="opset 14"):
        build_invocation(TinyCNN(), (torch.randn(1, 3, 8, 8),), {}, Path("/tmp/unused"), BuildOptions(opset=14))
    with pytest.raises(BuildError, match="precision"):
        BuildOptions(precision="int8").validate()


def test_reuse_policies(tmp_path):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(1, 3, 8, 8)
    opts = BuildOptions(exporter="torchscript")
    first = build_invocation(model, (x,), {}, tmp_path, opts)
    assert first.status is Status.SUCCESSFUL and first.result.reused is False

    # the previous result as the cache gives it back: decoded from its JSON
    previous = decode(encode(first.result), BuildResult)
    again = build_invocation(model, (x,), {}, tmp_path, opts, previous=previous)
    assert again.result.reused is True and again.result.onnx_path == first.result.onnx_path
    assert first.result.reused is False  # reuse copies the record, never edits the one given

    always = build_invocation(model, (x,), {}, tmp_path, BuildOptions(exporter="torchscript", rebuild="always"),
                              previous=first.result)
    assert always.status is Status.SUCCESSFUL and always.result.reused is False

    other_opset = build_invocation(model, (x,), {}, tmp_path, BuildOptions(exporter="torchscript", opset=17),
                                   previous=first.result)
    assert other_opset.result.reused is False and other_opset.result.opset == 17

    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.fc.bias.add_(1.0)
    never = build_invocation(changed, (x,), {}, tmp_path, BuildOptions(exporter="torchscript", rebuild="never"),
                             previous=first.result)
    assert never.result.reused is True and never.result.stale == ["weights"]
    rebuilt = build_invocation(changed, (x,), {}, tmp_path, opts, previous=first.result)
    assert rebuilt.result.reused is False
    assert rebuilt.result.fingerprint["weights"] != first.result.fingerprint["weights"]

    nothing = build_invocation(model, (x,), {}, tmp_path / "empty", BuildOptions(rebuild="never"))
    assert nothing.status is Status.ERROR and "no previous build" in nothing.error

    Path(rebuilt.result.optimized_path).unlink()
    missing = build_invocation(changed, (x,), {}, tmp_path, BuildOptions(exporter="torchscript", rebuild="never"),
                               previous=rebuilt.result)
    assert missing.status is Status.ERROR and "model.opt.onnx is missing" in missing.error


def test_copy_build_carries_external_data(tmp_path, cnn_build):
    _, x, _, stage = cnn_build
    src = tmp_path / "src"
    src.mkdir()
    ext = src / "ext.onnx"
    save_onnx(onnx.load(stage.result.onnx_path), ext, external=True)
    assert (src / "ext.onnx.data").exists()
    ext_build = msgspec.structs.replace(stage.result, onnx_path=str(ext), exported_path=None, optimized_path=None,
                                        data_files=["ext.onnx.data"])
    moved = copy_build(ext_build, tmp_path / "dest")
    assert (tmp_path / "dest" / "ext.onnx.data").exists()
    assert moved.onnx_path == str((tmp_path / "dest" / "ext.onnx").resolve())
    sess = ort.InferenceSession(moved.onnx_path, providers=["CPUExecutionProvider"])
    assert sess.run(None, {"x": x.numpy()})[0].shape == (1, 10)


def test_gpt2_keyword_inputs_with_use_cache(tmp_path):
    """TurnkeyML's GPT-2 export failed on `use_cache` given twice; here it is a baked constant."""
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=64,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2Model(config).eval()
    kwargs = {"input_ids": torch.randint(1, 100, (1, 16)), "attention_mask": torch.ones(1, 16, dtype=torch.long),
              "use_cache": False}
    stage = build_invocation(model, (), kwargs, tmp_path, BuildOptions())
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result.exporter == "dynamo"
    assert stage.result.input_names == ["input_ids", "attention_mask"]
    assert stage.result.output_names == ["last_hidden_state"]
    assert stage.result.faithful is True


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "bert-base"])
def test_full_size_models_build_and_benchmark(tmp_path, name):
    from turnkey_like.runtimes import BenchmarkOptions, benchmark_invocation

    torch.manual_seed(0)
    if name == "resnet50":
        import torchvision

        model = torchvision.models.resnet50(weights=None).eval()
        args, kwargs = (torch.randn(1, 3, 224, 224),), {}
        # 25,557,032 parameters + BatchNorm running stats (fp32): ~97.5 MiB of weights
        min_bytes = 25_557_032 * 4
    else:
        from transformers import BertConfig, BertModel

        model = BertModel(BertConfig()).eval()
        args = ()
        kwargs = {"input_ids": torch.randint(1, 30000, (1, 128)), "attention_mask": torch.ones(1, 128, dtype=torch.long)}
        min_bytes = 109_482_240 * 4  # BERT-base with pooler: 109.48 M parameters
    stage = build_invocation(model, args, kwargs, tmp_path, BuildOptions())
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result.exporter == "dynamo" and stage.result.faithful is True
    assert stage.result.size_bytes >= min_bytes
    bench = benchmark_invocation(model, args, kwargs, stage.result, tmp_path, BenchmarkOptions(iterations=5, warmup=2))
    assert bench.status is Status.SUCCESSFUL, (bench.error, bench.log_excerpt)
    assert bench.result.within_tolerance is True and bench.result.latency_ms.mean > 0


@pytest.mark.parametrize("exporter, precision", [("dynamo", "fp32"), ("torchscript", "fp32"), ("torchscript", "fp16")])
def test_external_data_path(tmp_path, monkeypatch, exporter, precision):
    """Above the threshold (2 GiB in real life; lowered here) weights go to one .onnx.data file beside the model."""
    import turnkey_like.build as build_module

    monkeypatch.setattr(build_module, "EXTERNAL_DATA_THRESHOLD_BYTES", 1000)  # TinyCNN has 3592 bytes
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = torch.randn(1, 3, 8, 8)
    stage = build_invocation(model, (x,), {}, tmp_path, BuildOptions(exporter=exporter, precision=precision))
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert r.external_data is True and r.exporter == exporter
    name = Path(r.onnx_path).name
    assert r.data_files == [name + ".data"]
    data = tmp_path / (name + ".data")
    assert r.size_bytes == Path(r.onnx_path).stat().st_size + data.stat().st_size
    # at least conv2.weight, the one tensor above the 1 KiB inline threshold: 8*8*3*3 = 576 values,
    # 2304 bytes in fp32, 1152 in fp16
    assert data.stat().st_size >= (2304 if precision == "fp32" else 1152)
    assert sorted(p.name for p in tmp_path.glob("*.onnx*")) == sorted(
        p for p in ["model.onnx", "model.onnx.data", "model.opt.onnx", "model.opt.onnx.data"]
        + (["model_fp16.onnx", "model_fp16.onnx.data"] if precision == "fp16" else []))
    assert r.faithful is True
    moved = copy_build(r, tmp_path / "moved")
    assert (tmp_path / "moved" / (name + ".data")).exists()
    sess = ort.InferenceSession(moved.onnx_path, providers=["CPUExecutionProvider"])
    assert sess.run(None, {"x": x.numpy()})[0].shape == (1, 10)


class Sleeper(torch.nn.Module):
    def forward(self, x):
        import time

        time.sleep(60)
        return x


class Crasher(torch.nn.Module):
    def forward(self, x):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)  # what a buggy native extension does
        return x


def test_build_timeout_and_crash_become_results(tmp_path):
    x = torch.randn(2, 2)
    slow = build_invocation(Sleeper(), (x,), {}, tmp_path / "slow", BuildOptions(timeout_s=1))
    assert slow.status is Status.TIMEOUT and "timed out after 1 s" in slow.error
    crash = build_invocation(Crasher(), (x,), {}, tmp_path / "crash", BuildOptions())
    assert crash.status is Status.KILLED and "SIGSEGV" in crash.error
    log = (tmp_path / "crash" / "build.log").read_text()
    assert "Fatal Python error: Segmentation fault" in log  # faulthandler's stack went to build.log
    assert crash.log_excerpt
    assert crash.error.startswith("child process killed by SIGSEGV") and crash.result is None
