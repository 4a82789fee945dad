"""Fusion groups and the memory traffic they remove, on rows counted from real models (fp32), with
hand-derived bytes."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from turnkey_like.characterize.counter import count_model
from turnkey_like.characterize.fusion import find_fusion_groups
from turnkey_like.records import FUSION_ENDS, FusionResult, decode, encode


def rows_of(model, *args):
    torch.manual_seed(0)
    with torch.no_grad():
        return count_model(model.eval(), args).rows


class ConvBNReLUPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.relu(self.bn(self.conv(x))))


def test_conv_bn_relu_forms_one_group_with_hand_derived_bytes():
    # x [1, 3, 8, 8] fp32:
    # conv 3 -> 4, 3x3, pad 1: reads x 1*3*8*8*4 = 768 B + weight 4*3*3*3*4 = 432 B, writes 1*4*8*8*4
    #   = 1024 B; MACs 4*8*8 * 3*3*3 = 6912 -> 13824 FLOPs
    # batch norm (eval): reads 1024 B + weight, bias, running mean, running var (4 x 16 B = 64 B),
    #   writes 1024 B (+ the empty saved statistics of the CPU kernel); 4 FLOPs/element = 1024
    # relu: reads 1024 B, writes 1024 B; 256 FLOPs
    # max pool 2x2: reads 1024 B, writes values 1*4*4*4*4 = 256 B + int64 indices 4*4*4*8 = 512 B
    rows = rows_of(ConvBNReLUPool(), torch.randn(1, 3, 8, 8))
    assert [r.category for r in rows] == ["conv", "norm", "activation", "pooling"]
    assert [(r.bytes_read, r.bytes_written) for r in rows] == [(1200, 1024), (1088, 1024), (1024, 1024), (1024, 768)]
    result = find_fusion_groups(rows)
    assert len(result.groups) == 1
    g = result.groups[0]
    assert g.ops == [0, 1, 2]  # pooling is not an epilogue op: the chain stops before it
    assert g.op_names == [r.op for r in rows[:3]] and g.module_path == "conv"
    assert g.flops == 13824 + 1024 + 256
    # unfused: (1200+1024) + (1088+1024) + (1024+1024) = 2224 + 2112 + 2048 = 6384
    assert g.unfused_bytes == 6384
    # two intermediates of 1024 B, each written once and read once: 4 * 1024 = 4096 stay on chip
    assert g.internal_bytes == 4096
    # what is left: x + weight (1200) + BN vectors (64) + final output (1024) = 2288
    assert g.external_bytes == 2288
    assert g.arithmetic_intensity == pytest.approx((13824 + 1024 + 256) / 2288)
    assert g.macs == 6912
    # the max pool reads the relu's result: a reduction over 2x2 windows ends the group
    assert (g.end, g.end_readers) == ("reduction", [3])
    assert g.bound == "" and g.roofline_time_s == 0.0  # no hardware profile given
    s = result.summary
    total = 6384 + 1024 + 768  # plus the pool's 1792 B
    assert s.total_bytes == total
    assert s.removed_bytes == 4096
    assert s.fused_total_bytes == total - 4096
    assert s.removed_fraction == pytest.approx(4096 / total)
    assert s.fused_ops == 3 and s.groups == 1
    assert s.arithmetic_intensity_fused == pytest.approx(s.flops / (total - 4096))


class TwoConsumers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(y) + y


def test_output_with_two_consumers_is_not_fused():
    # the conv output feeds both the relu and the residual add: it must reach memory anyway
    rows = rows_of(TwoConsumers(), torch.randn(1, 3, 8, 8))
    assert [r.category for r in rows] == ["conv", "activation", "elementwise"]
    assert rows[2].producers == [1, 0]
    result = find_fusion_groups(rows)
    assert result.groups == []
    assert result.summary.removed_bytes == 0 and result.summary.groups == 0


class MatmulGeluResidual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 64)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)) + x)


def test_matmul_bias_gelu_residual_chain():
    # x [16, 64] fp32; addmm reads bias 256 + x 4096 + weight 16384 = 20736 B, writes 4096 B;
    # gelu 4096 -> 4096; residual add reads gelu out + x (8192), writes 4096; then the second addmm
    rows = rows_of(MatmulGeluResidual(), torch.randn(16, 64))
    assert [r.op for r in rows] == ["aten.addmm.default", "aten.gelu.default", "aten.add.Tensor",
                                    "aten.addmm.default"]
    result = find_fusion_groups(rows)
    assert [g.ops for g in result.groups] == [[0, 1, 2]]
    g = result.groups[0]
    # internal: addmm out (4096 write + 4096 read) + gelu out (4096 + 4096) = 16384
    assert g.internal_bytes == 16384
    # external: addmm inputs 20736 + the residual read of x 4096 + final write 4096 = 28928
    assert g.external_bytes == 20736 + 4096 + 4096
    # the second addmm reads the add's result: another anchor, which starts a group of its own
    assert (g.end, g.end_readers) == ("anchor", [3])
    assert g.macs == 16 * 64 * 64


class Endings(nn.Module):
    """Five chains, each ending for another reason (see the test)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3, self.conv4 = (nn.Conv2d(4, 4, 1) for _ in range(4))
        self.bn1, self.bn2 = nn.BatchNorm2d(4), nn.BatchNorm2d(4)
        self.fc = nn.Linear(64, 8)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)) + self.bn2(self.conv2(x)))
        z = torch.sigmoid(self.conv3(y)).permute(0, 2, 3, 1).contiguous().flatten(1)
        u = nn.functional.interpolate(self.conv4(y).relu(), scale_factor=2.0)
        return self.fc(z).relu(), u


def test_each_group_records_why_it_ended():
    """Why each chain stops, recorded when the group is formed (``FusionGroup.end``/``end_readers``):
    conv1 → bn1 → add → relu: y is read by conv3 and conv4 (a second consumer); conv2 → bn2: the add
    it feeds is conv1's group's already (grouped); conv3 → sigmoid: read by the copy ``.contiguous()``
    makes of the permuted result (a layout change); conv4 → relu: read by the upsampling (not an
    epilogue op); fc → relu: nothing reads it (the model's output)."""
    rows = rows_of(Endings(), torch.randn(1, 4, 4, 4))
    index = {(r.op, r.module_path): r.index for r in rows}
    conv = {name: index["aten.convolution.default", name] for name in ("conv1", "conv2", "conv3", "conv4")}
    copy = index["aten.clone.default", ""]
    upsample = index["aten.upsample_nearest2d.default", ""]
    add = index["aten.add.Tensor", ""]
    ends = {rows[g.ops[0]].module_path: (g.end, g.end_readers) for g in find_fusion_groups(rows).groups}
    assert ends == {"conv1": ("second consumer", [conv["conv3"], conv["conv4"]]), "conv2": ("grouped", [add]),
                    "conv3": ("layout change", [copy]), "conv4": ("not fusible", [upsample]), "fc": ("output", [])}
    assert all(end in FUSION_ENDS for end, _ in ends.values())


def test_group_bound_and_roofline_time_on_a_profile():
    """With a hardware profile the group is one fused op: conv + batch norm + ReLU of
    :func:`test_conv_bn_relu_forms_one_group_with_hand_derived_bytes` do 15104 FLOPs over 2288
    external bytes, 6.6 FLOPs/byte, below the A100's fp32 ridge point (19.5 TFLOP/s ÷ 2.039 TB/s =
    9.56): memory-bound, 2288 B ÷ 2.039 TB/s = 1.12 ns."""
    from turnkey_like.characterize.hardware import get_profile

    rows = rows_of(ConvBNReLUPool(), torch.randn(1, 3, 8, 8))
    [g] = find_fusion_groups(rows, get_profile("a100")).groups
    assert g.bound == "memory-bound"
    assert g.roofline_time_s == pytest.approx(2288 / 2.039e12)


def test_ops_are_grouped_once_and_result_round_trips():
    rows = rows_of(ConvBNReLUPool(), torch.randn(1, 3, 8, 8))
    result = find_fusion_groups(rows)
    assert decode(encode(result), FusionResult) == result
    grouped = [i for g in result.groups for i in g.ops]
    assert len(grouped) == len(set(grouped))
