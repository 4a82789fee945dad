"""The quantized op family: int8 MACs, packed weights as parameters, real bytes, the int8 roofline.

A tiny eager-mode quantized model (prepared, calibrated and converted by ``torch.ao.quantization``) is
counted and every figure is derived by hand from its layer shapes; then torchvision's quantized
resnet18 is checked against its float twin, both counted by tk, op family by op family.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from turnkey_like.characterize import ops
from turnkey_like.characterize.counter import count_model
from turnkey_like.characterize.hardware import get_profile
from turnkey_like.characterize.assemble import characterize_call

quantized = torch.ops.quantized

pytestmark = pytest.mark.filterwarnings("ignore:.*quantiz.*:UserWarning",
                                        "ignore:.*deprecated.*:DeprecationWarning")


@pytest.fixture
def engine():
    """Restores the process's quantized engine after the test (tests set it)."""
    saved = torch.backends.quantized.engine
    yield
    torch.backends.quantized.engine = saved


def _needs(name: str):
    if name not in torch.backends.quantized.supported_engines:
        pytest.skip(f"quantized engine {name} is not in this torch build")


class Tiny(nn.Module):
    """QuantStub -> Conv2d(3, 8, 3, padding=1) + ReLU -> flatten -> Linear(512, 10) -> DeQuantStub."""

    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8 * 8 * 8, 10)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        x = self.relu(self.conv(self.quant(x)))
        return self.dequant(self.fc(torch.flatten(x, 1)))


def tiny_quantized(engine_name: str) -> nn.Module:
    """:class:`Tiny` fused (conv + relu), prepared with the engine's default qconfig, calibrated on
    four random batches and converted: the eager-mode workflow of the PyTorch quantization docs."""
    torch.backends.quantized.engine = engine_name
    torch.manual_seed(0)
    model = Tiny().eval()
    model = torch.ao.quantization.fuse_modules(model, [["conv", "relu"]])
    model.qconfig = torch.ao.quantization.get_default_qconfig(engine_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.ao.quantization.prepare(model, inplace=True)
        with torch.no_grad():
            for _ in range(4):
                model(torch.rand(2, 3, 8, 8))
        torch.ao.quantization.convert(model, inplace=True)
    return model


# fbgemm's default qconfig quantizes weights per output channel (its scales and zero points are
# read by the kernel: float32 + int32 = 8 bytes a channel); qnnpack's per tensor (a scalar pair).
@pytest.mark.parametrize("engine_name, qparam_bytes_per_channel", [("fbgemm", 8), ("qnnpack", 0)])
def test_tiny_quantized_model_by_hand(engine, engine_name, qparam_bytes_per_channel):
    _needs(engine_name)
    model = tiny_quantized(engine_name)
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        char = characterize_call(model, (x,), hardware="a100")
    rows = {r.op.split(".")[1]: r for r in char.rows if r.op != "aten._local_scalar_dense.default"}
    assert list(rows) == ["quantize_per_tensor", "conv2d_relu", "clone", "linear", "dequantize"]
    q = qparam_bytes_per_channel

    # QuantStub: x [2, 3, 8, 8] = 384 float32 elements -> quint8. 4 FLOPs an element (divide, round,
    # add zero point, clamp); reads 384 * 4 = 1536 bytes, writes 384 * 1 = 384.
    quant = rows["quantize_per_tensor"]
    assert (quant.flops, quant.bytes_read, quant.bytes_written) == (4 * 384, 1536, 384)

    # conv 3->8, 3x3, padding 1: weight [8, 3, 3, 3] = 216 int8, bias [8] float32. Output [2, 8, 8, 8]
    # = 1024 elements, each a dot product of 216 / 8 = 27 weights: MACs = 2 * 64 * 216 = 27648.
    # FLOPs = 2 * 27648 + 1024 (the fused ReLU) = 56320. Reads x 384 (quint8) + weight 216 + bias 32
    # + qparams 8 * q; writes 1024 (quint8). Weight bytes: 216 + 32 + 8 * q.
    conv = rows["conv2d_relu"]
    assert conv.category == "conv" and conv.dtype == "int8"
    assert (conv.macs, conv.flops) == (27648, 56320)
    assert conv.input_shapes[:3] == [[2, 3, 8, 8], [8, 3, 3, 3], [8]]
    assert conv.bytes_read == 384 + 216 + 32 + 8 * q
    assert conv.bytes_written == 1024
    assert conv.weight_bytes == 216 + 32 + 8 * q

    # flatten copies: the quantized conv writes channels-last (NHWC) output, which cannot be viewed
    # as [2, 512]. 1024 quint8 elements read and written, 0 FLOPs.
    clone = rows["clone"]
    assert (clone.flops, clone.bytes_read, clone.bytes_written, clone.producers) == (0, 1024, 1024, [conv.index])

    # linear 512 -> 10 on x [2, 512] (quint8): weight [10, 512] = 5120 int8, bias [10] float32.
    # MACs = 2 * 512 * 10 = 10240, FLOPs = 20480. Reads 1024 + 5120 + 40 + 10 * q, writes 2 * 10 = 20.
    fc = rows["linear"]
    assert fc.category == "matmul" and fc.dtype == "int8"
    assert (fc.macs, fc.flops) == (10240, 20480)
    assert fc.bytes_read == 1024 + 5120 + 40 + 10 * q
    assert fc.bytes_written == 20
    assert fc.weight_bytes == 5120 + 40 + 10 * q
    assert fc.producers == [clone.index]  # packed weights are graph inputs: no producer

    # DeQuantStub: 20 quint8 -> float32, 2 FLOPs an element ((q - zero point) * scale).
    deq = rows["dequantize"]
    assert (deq.flops, deq.bytes_read, deq.bytes_written) == (40, 20, 80)

    # Parameters: conv 216 + 8, linear 5120 + 10 = 5354; bytes 216 + 8 * 4 + 5120 + 10 * 4 = 5408.
    t = char.totals
    assert (t.params, t.param_bytes) == (5354, 5408)
    assert (t.macs, t.conv_matmul_macs) == (27648 + 10240, 27648 + 10240)
    assert t.flops == 1536 + 56320 + 20480 + 40
    assert char.uncounted == {}
    modules = {m.path: m for m in char.modules}
    assert (modules["conv"].params, modules["fc"].params) == (224, 5130)
    assert (modules["conv"].param_bytes, modules["fc"].param_bytes) == (248, 5160)

    # The roofline times the int8 products at the profile's int8 peak (A100: 624e12 op/s).
    profile = get_profile("a100")
    assert char.dtype == "int8" and char.ridge_point == profile.ridge_point("int8")
    expected = max(conv.flops / profile.peak_flops["int8"],
                   (conv.bytes_read + conv.bytes_written) / profile.memory_bandwidth)
    assert conv.roofline_time_s == pytest.approx(expected, rel=1e-12)


def test_transposed_and_dynamic_quantized_layers(engine):
    _needs("fbgemm")
    torch.backends.quantized.engine = "fbgemm"
    nnq, nnqd = torch.ao.nn.quantized, torch.ao.nn.quantized.dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convt = nnq.ConvTranspose2d(4, 8, 3, stride=2, groups=2)
        x = torch.quantize_per_tensor(torch.rand(1, 4, 5, 5), 0.01, 0, torch.quint8)
        dyn, dyn16 = nnqd.Linear(16, 32), nnqd.Linear(16, 32, dtype=torch.float16)
    with torch.no_grad():
        (t,) = count_model(convt, (x,)).rows
        (d,) = count_model(dyn, (torch.rand(4, 16),)).rows
        (h,) = count_model(dyn16, (torch.rand(4, 16),)).rows
    # Transposed conv, weight [Cin 4, Cout/groups 4, 3, 3] (per tensor): every one of the 4 * 25 input
    # elements is scattered through Cout/groups * 9 = 36 weights: 3600 MACs.
    assert t.input_shapes[1] == [4, 4, 3, 3]
    assert (t.macs, t.flops, t.dtype) == (3600, 7200, "int8")
    # Dynamic int8 linear 16 -> 32 on x [4, 16] float32: 4 * 16 * 32 = 2048 int8 MACs (the kernel
    # quantizes x on the fly), so the row is timed as int8. Reads x 256 + weight 512 + bias 128.
    assert (d.op, d.macs, d.dtype) == ("quantized.linear_dynamic.default", 2048, "int8")
    assert (d.bytes_read, d.weight_bytes) == (256 + 512 + 128, 512 + 128)
    # float16 dynamic linear: same MACs, float32 products; the weight is 512 float16 = 1024 bytes
    # (its unpack() widens it to float32: 2048 bytes would be wrong).
    assert (h.macs, h.dtype) == (2048, "float32")
    assert h.weight_bytes == 1024 + 128
    char = characterize_call(dyn16, (torch.rand(4, 16),))
    assert (char.totals.params, char.totals.param_bytes) == (512 + 32, 1024 + 128)


def test_quantized_formulas_from_shapes():
    # The counter hands formulas the packed argument as the shapes of its tensors, weight first.
    conv = ops.lookup(quantized.conv2d)
    # x [1, 16, 10, 10], depthwise 3x3 (weight [16, 1, 3, 3]), output [1, 16, 8, 8]: 64 * 144 = 9216
    assert conv.fn((1, 16, 10, 10), [(16, 1, 3, 3), (16,)], out_shape=(1, 16, 8, 8)) == (9216, 18432, None)
    # linear_relu x [3, 7, 20], weight [5, 20]: 21 * 20 * 5 = 2100 MACs, + 105 ReLU FLOPs
    lin = ops.lookup(quantized.linear_relu)
    assert lin.fn((3, 7, 20), [(5, 20), (5,)], out_shape=(3, 7, 5)) == (2100, 4305, None)
    assert (conv.dtype, lin.dtype, ops.lookup(quantized.linear_dynamic_fp16).dtype) == ("int8", "int8", None)
    assert ops.lookup(quantized.add_relu).fn((2, 3), (2, 3), out_shape=(2, 3)).flops == 12
    assert ops.dtype_name(torch.quint8) == ops.dtype_name(torch.qint8) == "int8"
    assert ops.dtype_name(torch.bfloat16) == "bfloat16"


def _conv_and_linear_macs_by_hooks(model, args) -> int:
    """The float model's conv + linear MACs from its modules' own shapes (forward hooks, not tk):
    per Conv2d, output elements * Cin/groups * kh * kw; per Linear, output rows * in * out."""
    total = 0

    def hook(module, inputs, out):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += out.numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, nn.Linear):
            total += out.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for h in handles:
            h.remove()
    return total


def test_quantized_resnet18_counts_what_the_float_model_counts(engine):
    from turnkey_like import zoo
    from turnkey_like.records import ModelRequest

    floating = zoo.load(ModelRequest(name="resnet18", imgsz=64))
    quant = zoo.load(ModelRequest(name="quantized_resnet18", imgsz=64))
    with torch.no_grad():
        f = characterize_call(floating.model, floating.args, hardware="a100")
        q = characterize_call(quant.model, quant.args, hardware="a100")
    assert q.uncounted == {} and q.dtype == "int8"

    # The quantized model is the float one with each conv + batch norm (+ ReLU) fused into one
    # quantized conv (BN folded into its weight and bias), ReLU fused into the conv or the add
    # (add_relu), a quantize at the input and a dequantize at the output. So every conv does the same
    # products at the same shapes, in the same order, and so does the classifier (512 -> 1000).
    f_conv = [(r.output_shapes[0], r.macs) for r in f.rows if r.category == "conv"]
    q_conv = [(r.output_shapes[0], r.macs) for r in q.rows if r.category == "conv"]
    assert len(q_conv) == 20 and q_conv == f_conv
    assert [r.macs for r in q.rows if r.category == "matmul"] == [512 * 1000]
    expected = _conv_and_linear_macs_by_hooks(floating.model, floating.args)
    assert q.totals.conv_matmul_macs == f.totals.conv_matmul_macs == q.totals.macs == expected

    # FLOPs: the float model's batch norms (4 an element) are gone; its ReLUs return inside
    # conv_relu / add_relu (1 an element either way); the quantize (4 per input element,
    # 3 * 64 * 64) and the dequantize (2 per logit) are new. Everything else is the same op.
    bn = sum(r.flops for r in f.rows if r.category == "norm")
    assert bn == 4 * sum(r.output_shapes[0][1] * r.output_shapes[0][2] * r.output_shapes[0][3]
                         for r in f.rows if r.category == "conv")
    assert f.totals.flops - q.totals.flops == bn - 4 * 3 * 64 * 64 - 2 * 1000

    # Parameters: each conv keeps its weight and gains a float32 bias [Cout] (the folded BN), the BN's
    # weight and bias [Cout] each go: float params - quantized params = sum of Cout over the 20 convs.
    couts = sum(r.output_shapes[0][1] for r in f.rows if r.category == "conv")
    assert f.totals.params - q.totals.params == couts
    # Bytes: int8 weights at 1 byte, float32 biases at 4.
    weights = sum(r.input_shapes[1][0] * r.input_shapes[1][1] * r.input_shapes[1][2] * r.input_shapes[1][3]
                  for r in q.rows if r.category == "conv") + 512 * 1000
    biases = couts + 1000
    assert (q.totals.params, q.totals.param_bytes) == (weights + biases, weights + 4 * biases)



def test_named_quantized_model_is_discovered_with_its_packed_parameters(tmp_path):
    """A converted model has no ``nn.Parameter``: the hook still finds it as a model (before, tk said
    "no model was called"), its parameters being the packed weights and biases, as torch's own
    ``weight()``/``bias()`` accessors of the quantized conv and linear modules give them."""
    import json

    from conftest import run_tk

    from turnkey_like.records import ModelRequest
    from turnkey_like.zoo import load

    name = "quantized_shufflenet_v2_x0_5"
    done = run_tk("benchmark", "--model", name, "--imgsz", "64", "--analyze-only", "--cache-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(f.read_text()) for f in tmp_path.glob(f"{name}_*/record.json")]

    model = load(ModelRequest(name=name, source="torchvision", imgsz=64)).model
    packed = [m for m in model.modules() if isinstance(m, (torch.ao.nn.quantized.Conv2d, torch.ao.nn.quantized.Linear))]
    weights = [m.weight() for m in packed] + [m.bias() for m in packed if m.bias() is not None]
    assert packed and not list(model.parameters())
    assert record["model"]["params"] == sum(t.numel() for t in weights)
    assert record["model"]["param_bytes"] == sum(t.numel() * t.element_size() for t in weights)
    assert record["invocation"]["characterization"]["result"]["dtype"] == "int8"
