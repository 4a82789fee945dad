"""The model and invocation hashes reproduce the reference table of shared/HASHING.md."""

import numpy as np
import pytest
import torch

from turnkey_like.hashing import describe_inputs, file_hash, invocation_hash, model_hash


class SmallModel(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.fc = torch.nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.fc(x)


class TwoLayerModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(10, 5)
        self.fc2 = torch.nn.Linear(5, 5)

    def forward(self, x):
        return self.fc2(self.fc(x))


def _hashes(model, args=(), kwargs=None, parent=None):
    mh = model_hash(model)
    ih, note = invocation_hash(mh, parent, describe_inputs(args, kwargs or {}))
    assert note is None
    return mh, ih


@pytest.mark.parametrize("size_in,size_out,expected_model,expected_inv", [
    (10, 5, "479b1332", "f93db89f"),
    (50, 10, "215ca1e3", "c69b7dea"),
    (11, 5, "2a1e15ca", "24adc42f"),
])
def test_small_model_reference_hashes(size_in, size_out, expected_model, expected_inv):
    model = SmallModel(size_in, size_out)
    assert _hashes(model, kwargs={"x": torch.rand(size_in)}) == (expected_model, expected_inv)


def test_two_layer_model_and_children_reference_hashes():
    model = TwoLayerModel()
    mh, ih = _hashes(model, kwargs={"x": torch.rand(10)})
    assert (mh, ih) == ("80b93950", "7ebbe8c4")
    assert _hashes(model.fc, args=(torch.rand(10),), parent=ih) == ("6d5eb4ee", "a1509240")
    assert _hashes(model.fc2, args=(torch.rand(5),), parent=ih) == ("d4b2ffa7", "f8d4746c")


def test_multiple_invocations_reference_hashes():
    model = SmallModel(12, 5)
    assert _hashes(model, kwargs={"x": torch.rand(1, 12)}) == ("d0b6b257", "ef80819e")
    assert _hashes(model, kwargs={"x": torch.rand(2, 12)}) == ("d0b6b257", "d5267eaf")


def test_weights_do_not_change_the_model_hash():
    a, b = SmallModel(10, 5), SmallModel(10, 5)
    assert not torch.equal(a.fc.weight, b.fc.weight)
    assert model_hash(a) == model_hash(b)


def test_signature_walks_sorted_names_lists_scalars_and_skips_none():
    specs = describe_inputs(
        (torch.zeros(2, 3, dtype=torch.int64),),
        {"past": [(torch.zeros(1), torch.zeros(2)), torch.zeros(3)], "flag": True, "scale": 0.5, "mask": None,
         "arr": np.zeros((4,), dtype=np.float16)},
    )
    names = [s.name for s in specs]
    assert names == ["Positional Arg 1", "arr", "flag", "past[0][0]", "past[0][1]", "past[1]", "scale"]
    by_name = {s.name: s for s in specs}
    assert by_name["Positional Arg 1"].dtype == "int64" and by_name["Positional Arg 1"].shape == (2, 3)
    assert by_name["arr"].dtype == "float16"
    assert (by_name["flag"].shape, by_name["flag"].dtype) == ((1,), "bool")
    assert (by_name["scale"].shape, by_name["scale"].dtype) == ((1,), "float")


def test_unhashable_input_falls_back_with_a_note():
    mh = model_hash(SmallModel(10, 5))
    specs = describe_inputs((), {"x": torch.rand(10), "cfg": object()})
    h, note = invocation_hash(mh, None, specs)
    assert note is not None and "cfg" in note
    # The fallback representation still changes the hash (it is not silently the tensor-only hash).
    assert h != invocation_hash(mh, None, describe_inputs((), {"x": torch.rand(10)}))[0]


def test_file_hash_is_sha256_prefix(tmp_path):
    import hashlib

    path = tmp_path / "m.onnx"
    path.write_bytes(b"abc" * 1000)
    assert file_hash(path) == hashlib.sha256(b"abc" * 1000).hexdigest()[:8]
