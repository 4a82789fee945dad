"""Calling conventions: input and output names, the export wrapper, tensors to numpy."""

from __future__ import annotations

import numpy as np
import torch

from turnkey_like.calls import (
    eager_outputs,
    export_wrapper,
    flatten_inputs,
    output_names_for,
    tensor_leaves,
    to_numpy,
    uses_cuda,
)


def test_flatten_inputs_names():
    class M(torch.nn.Module):
        def forward(self, image, extras, *rest, mode="a"):
            return image

    t = torch.zeros(1)
    flat = flatten_inputs(M(), (t, {"a": t, "b": (t, t)}, t), {"mask": t, "mode": "b"})
    assert flat.names == ["image", "extras_a", "extras_b_0", "extras_b_1", "rest_0", "mask"]
    assert [c for c in flat.constants if c is not None] == [("b",)]
    assert list(flat.feed()) == flat.names and flat.shapes()["rest_0"] == (1,)
    # without a model, positionals are input_N; a repeated name gets a suffix
    anon = flatten_inputs(None, (t, t), {"input_0_": t})
    assert anon.names == ["input_0", "input_1", "input_0_1"]


def test_output_names_follow_tensor_leaves():
    t = torch.zeros(2)
    assert output_names_for(t, set()) == ["output"]
    assert output_names_for((t, (t, 3)), set()) == ["output_0", "output_1_0"]
    out = {"logits": t, "hidden": [t, t]}
    names = output_names_for(out, {"logits"})
    assert names == ["logits_1", "hidden_0", "hidden_1"]  # an input's name is not reused
    assert len(names) == len(tensor_leaves(out))


def test_export_wrapper_rebuilds_the_call():
    class Pair(torch.nn.Module):
        def forward(self, pair, scale=1.0):
            a, b = pair
            return {"sum": a * scale + b, "diff": a - b}

    model = Pair()
    a, b = torch.randn(3), torch.randn(3)
    flat = flatten_inputs(model, ((a, b),), {"scale": 2.0})
    wrapper = export_wrapper(model, flat)
    got = wrapper(*flat.tensors)
    assert isinstance(got, tuple) and len(got) == 2
    torch.testing.assert_close(got[0], a * 2.0 + b)  # scale=2.0 came back as a constant
    torch.testing.assert_close(got[1], a - b)
    ref = eager_outputs(model, ((a, b),), {"scale": 2.0})
    np.testing.assert_array_equal(ref[0], got[0].numpy())


def test_to_numpy_widens_bfloat16():
    x = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    arr = to_numpy(x)
    assert arr.dtype == np.float32 and arr.tolist() == [1.5, -2.0]
    assert not uses_cuda(torch.nn.Linear(2, 2), (x,), {"y": {"z": x}})
