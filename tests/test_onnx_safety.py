"""A crafted `.onnx` file never makes tk read or write outside the model's folder and the cache."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_tk
from turnkey_like.errors import InputError
from turnkey_like.onnx_file import describe_onnx


def _model_with_external_weight(folder, name: str, location: str):
    """A real MatMul model whose weight lives in external data at ``location`` (written where it points)."""
    weight = np.arange(12, dtype=np.float32).reshape(4, 3)
    tensor = numpy_helper.from_array(weight, "w")
    data_path = (folder / location)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_bytes(weight.tobytes())
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(weight.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../outside/weights.bin", "sub/../../outside/w.bin"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    models = tmp_path / "models"
    models.mkdir()
    path = _model_with_external_weight(models, "crafted.onnx", location)
    with pytest.raises(InputError, match="points outside the model's folder"):
        describe_onnx(path)


def test_crafted_onnx_writes_nothing_outside_the_cache_and_the_others_run(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    crafted = _model_with_external_weight(models, "crafted.onnx", "../../victim/.bashrc")
    good = _model_with_external_weight(models, "good.onnx", "good.onnx.data")
    cache = tmp_path / "a" / "b" / "cache"
    victim = tmp_path / "a" / "victim"  # where "../../victim/.bashrc" lands from cache/<build>/
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = run_tk("benchmark", str(crafted), str(good), "--iterations", "3", "--cache-dir", str(cache))
    assert out.returncode == 1
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if "points outside the model's folder" in ln]
    assert lines and "crafted.onnx" in lines[0]
    assert "1 benchmarked" in out.stdout  # the good model still ran
    assert not victim.exists()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cache_rel = cache.relative_to(tmp_path)
    new = [p for p in after if p not in before]
    outside_cache = [p for p in new if p != cache_rel and cache_rel not in p.parents and p not in cache_rel.parents]
    assert outside_cache == []
    assert onnx.load(str(good)).graph.node[0].op_type == "MatMul"
