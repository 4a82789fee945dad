"""Fusion groups and the memory traffic they remove, on hand-built op rows with hand-derived bytes."""

from __future__ import annotations

import pytest

from turnkey_like.characterize.fusion import FusionResult, find_fusion_groups


def row(index, op, category, bytes_read, bytes_written, producers, flops=0):
    return {
        "index": index, "op": op, "category": category, "module_path": f"m{index}", "flops": flops,
        "bytes_read": bytes_read, "bytes_written": bytes_written, "producers": producers,
    }


# conv 1x3x8x8 -> 4 channels, 3x3, pad 1, fp32:
#   reads x 1*3*8*8*4 = 768 B + weight 4*3*3*3*4 = 432 B, writes 1*4*8*8*4 = 1024 B
#   MACs = 4*8*8 * 3*3*3 = 6912 -> 13824 FLOPs
# batch norm (eval): reads 1024 B + 4 vectors of 4 channels (64 B), writes 1024 B; 2 FLOPs/elem = 512
# relu: reads 1024 B, writes 1024 B; 256 FLOPs
CONV_BN_RELU = [
    row(0, "aten.convolution.default", "conv", 768 + 432, 1024, [], flops=13824),
    row(1, "aten._native_batch_norm_legit_no_training.default", "norm", 1024 + 64, 1024, [0], flops=512),
    row(2, "aten.relu.default", "activation", 1024, 1024, [1], flops=256),
    row(3, "aten.max_pool2d_with_indices.default", "pooling", 1024, 256, [2], flops=192),
]


def test_conv_bn_relu_forms_one_group_with_hand_derived_bytes():
    result = find_fusion_groups(CONV_BN_RELU)
    assert len(result.groups) == 1
    g = result.groups[0]
    assert g.ops == [0, 1, 2]  # pooling is not an epilogue op: the chain stops before it
    assert g.flops == 13824 + 512 + 256
    # unfused: (768+432+1024) + (1088+1024) + (1024+1024) = 2224 + 2112 + 2048 = 6384
    assert g.unfused_bytes == 6384
    # two intermediates of 1024 B, each written once and read once: 4 * 1024 = 4096 stay on chip
    assert g.internal_bytes == 4096
    # what is left: x + weight (1200) + BN vectors (64) + final output (1024) = 2288
    assert g.external_bytes == 2288
    assert g.arithmetic_intensity == pytest.approx((13824 + 512 + 256) / 2288)
    s = result.summary
    total = 6384 + 1024 + 256  # plus the pool's 1280 B
    assert s.total_bytes == total
    assert s.removed_bytes == 4096
    assert s.fused_total_bytes == total - 4096
    assert s.removed_fraction == pytest.approx(4096 / total)
    assert s.fused_ops == 3 and s.groups == 1


def test_output_with_two_consumers_is_not_fused():
    # conv output feeds both the relu and a later residual add: it must reach memory anyway
    rows = [
        row(0, "aten.convolution.default", "conv", 1200, 1024, []),
        row(1, "aten.relu.default", "activation", 1024, 1024, [0]),
        row(2, "aten.add.Tensor", "elementwise", 2048, 1024, [1, 0]),
    ]
    result = find_fusion_groups(rows)
    assert result.groups == []
    assert result.summary.removed_bytes == 0


def test_matmul_bias_gelu_residual_chain():
    # linear 16x64 @ 64x64 (fp32): reads 4096 + 16384 + bias 256, writes 4096
    # gelu: 4096 -> 4096; residual add with the block input (row 0's producer is outside): reads 8192, writes 4096
    rows = [
        row(0, "aten.addmm.default", "matmul", 4096 + 16384 + 256, 4096, []),
        row(1, "aten.gelu.default", "activation", 4096, 4096, [0]),
        row(2, "aten.add.Tensor", "elementwise", 8192, 4096, [1]),
        row(3, "aten.addmm.default", "matmul", 4096 + 16384 + 256, 4096, [2]),
    ]
    result = find_fusion_groups(rows)
    assert [g.ops for g in result.groups] == [[0, 1, 2]]
    g = result.groups[0]
    # internal: addmm out (4096 write + 4096 read) + gelu out (4096 + 4096) = 16384
    assert g.internal_bytes == 16384
    # external: addmm inputs 20736 + the residual read 4096 + final write 4096 = 28928
    assert g.external_bytes == 20736 + 4096 + 4096


def test_ops_are_grouped_once_and_result_round_trips():
    result = find_fusion_groups(CONV_BN_RELU)
    again = FusionResult.from_dict(result.to_dict())
    assert again == result
    grouped = [i for g in result.groups for i in g.ops]
    assert len(grouped) == len(set(grouped))
