"""`.onnx` files as inputs: description, dynamic dims, synthesized inputs, build and benchmark."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest
import torch

from turnkey_like.build import BuildOptions
from turnkey_like.errors import InputError
from turnkey_like.onnx_file import (
    FILE_EXPORTER,
    INT_HIGH,
    build_onnx_file,
    describe_onnx,
    parse_input_shape,
    synthesize_inputs,
)
from turnkey_like.onnx_tools import save_onnx
from turnkey_like.records import BuildResult, GraphIO, Status, TensorSpec, decode, encode
from turnkey_like.runtimes import BenchmarkOptions, benchmark_invocation


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask):
        h = self.emb(input_ids) * attention_mask.unsqueeze(-1).float()
        return self.fc(h.mean(dim=1))


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory):
    """A model with dynamic batch and sequence dims, weights in external data."""
    folder = tmp_path_factory.mktemp("onnx_in")
    torch.manual_seed(0)
    path = folder / "classifier.onnx"
    ids = torch.randint(1, 50, (1, 5))
    mask = torch.ones(1, 5, dtype=torch.long)
    torch.onnx.export(Classifier().eval(), (ids, mask), str(path), dynamo=False, opset_version=17,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}})
    ext = folder / "classifier_ext.onnx"
    save_onnx(onnx.load(str(path)), ext, external=True)
    return path, ext


def test_parse_input_shape():
    assert parse_input_shape("input_ids:1,128") == ("input_ids", (1, 128))
    assert parse_input_shape("x:1,3,224,224") == ("x", (1, 3, 224, 224))
    for bad in ("x", ":1,2", "x:1,a", "x:0,3"):
        with pytest.raises(InputError):
            parse_input_shape(bad)


def test_describe_requires_sizes_for_dynamic_dims(dynamic_onnx):
    path, _ = dynamic_onnx
    with pytest.raises(InputError, match="dynamic dimension 'batch'") as exc:
        describe_onnx(path)
    assert "--input-shape input_ids:" in exc.value.hint


def test_describe_with_overrides(dynamic_onnx):
    path, ext = dynamic_onnx
    info = describe_onnx(path, {"input_ids": (2, 7), "attention_mask": (2, 7)})
    assert info.model_hash == hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    # Embedding 50x8 = 400, Linear 8x3 + 3 = 27 -> 427 fp32 values, 1708 bytes
    assert info.params == 427 and info.param_bytes == 1708
    assert info.inputs == [TensorSpec(name="input_ids", kind="tensor", shape=(2, 7), dtype="int64"),
                           TensorSpec(name="attention_mask", kind="tensor", shape=(2, 7), dtype="int64")]
    assert info.index_bounds == {"input_ids": 50}  # the Embedding(50, 8) table
    # external data: counted from the initializers' dims without loading the data
    assert describe_onnx(ext, {"input_ids": (1, 4), "attention_mask": (1, 4)}).params == 427
    with pytest.raises(InputError, match="has 1 dims, the model.s input has 2"):
        describe_onnx(path, {"input_ids": (2,), "attention_mask": (2, 7)})
    with pytest.raises(InputError, match="no input called"):
        describe_onnx(path, {"input_ids": (2, 7), "attention_mask": (2, 7), "pixels": (1, 3)})


def test_fixed_dims_cannot_be_overridden(tmp_path):
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(torch.nn.Linear(4, 2), (torch.randn(3, 4),), str(path), dynamo=False, input_names=["x"])
    assert describe_onnx(path).inputs[0].shape == (3, 4)
    with pytest.raises(InputError, match="fixed at 3"):
        describe_onnx(path, {"x": (5, 4)})


def test_synthesize_inputs():
    specs = [
        TensorSpec(name="input_ids", kind="tensor", shape=(2, 64), dtype="int64"),
        TensorSpec(name="attention_mask", kind="tensor", shape=(2, 64), dtype="int64"),
        TensorSpec(name="token_type_ids", kind="tensor", shape=(2, 64), dtype="int64"),
        TensorSpec(name="pixel_values", kind="tensor", shape=(100, 100), dtype="float32"),
        TensorSpec(name="flags", kind="tensor", shape=(3,), dtype="bool"),
    ]
    x = synthesize_inputs(specs)
    ids = x["input_ids"]
    assert ids.dtype == np.int64 and ids.shape == (2, 64)
    assert ids.min() >= 1 and ids.max() < INT_HIGH and len(np.unique(ids)) > 10  # not all zeros
    assert (x["attention_mask"] == 1).all()
    assert (x["token_type_ids"] == 0).all()
    px = x["pixel_values"]
    assert px.dtype == np.float32 and abs(px.mean()) < 0.05 and abs(px.std() - 1) < 0.05  # N(0, 1), 10^4 draws
    assert x["flags"].dtype == np.bool_ and x["flags"].all()
    capped = synthesize_inputs(specs[:1], int_high={"input_ids": 5})["input_ids"]
    assert capped.min() >= 1 and capped.max() <= 4  # ids 1..4 for a 5-row embedding


def test_build_and_benchmark_onnx_file_with_external_data(dynamic_onnx, tmp_path):
    _, ext = dynamic_onnx
    shapes = {"input_ids": (3, 6), "attention_mask": (3, 6)}
    stage = build_onnx_file(ext, tmp_path, BuildOptions(), input_shapes=shapes)
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    r = stage.result
    assert isinstance(r, BuildResult) and r.exporter == FILE_EXPORTER
    assert (tmp_path / "classifier_ext.onnx").exists() and (tmp_path / "classifier_ext.onnx.data").exists()
    assert r.external_data is True and r.data_files == ["classifier_ext.onnx.data"]
    assert r.input_specs[0] == GraphIO(name="input_ids", shape=[3, 6], dtype="int64", int_high=50)
    assert r.faithful is None and r.tolerance is None  # no eager model to compare with
    # the benchmark synthesizes inputs from the record as the cache gives it back
    bench = benchmark_invocation(None, (), {}, decode(encode(r), BuildResult), tmp_path, BenchmarkOptions(iterations=10))
    assert bench.status is Status.SUCCESSFUL, (bench.error, bench.log_excerpt)
    assert bench.result.batch_size == 3 and bench.result.max_abs_err is None


def test_onnx_file_fp16_is_checked_against_the_fp32_file(dynamic_onnx, tmp_path):
    path, _ = dynamic_onnx
    stage = build_onnx_file(path, tmp_path, BuildOptions(precision="fp16"),
                            input_shapes={"input_ids": (1, 4), "attention_mask": (1, 4)})
    assert stage.status is Status.SUCCESSFUL, (stage.error, stage.log_excerpt)
    assert stage.result.faithful is True
    assert 0 < stage.result.faithfulness["logits"].max_abs_err < 1e-2


def test_onnx_file_build_reuse(dynamic_onnx, tmp_path):
    path, _ = dynamic_onnx
    shapes = {"input_ids": (1, 4), "attention_mask": (1, 4)}
    first = build_onnx_file(path, tmp_path, BuildOptions(), input_shapes=shapes)
    assert first.status is Status.SUCCESSFUL and first.result.reused is False
    assert first.result.fingerprint["file"] == describe_onnx(path, shapes).model_hash
    again = build_onnx_file(path, tmp_path, BuildOptions(), input_shapes=shapes, previous=first.result)
    assert again.result.reused is True
    wider = {"input_ids": (2, 4), "attention_mask": (2, 4)}
    other = build_onnx_file(path, tmp_path, BuildOptions(), input_shapes=wider, previous=first.result)
    assert other.result.reused is False and other.result.input_specs[0].shape == [2, 4]
