"""Each cost formula against a hand-derived number, and backends that must agree.

Formulas are called with shapes, as the counter calls them; the cross-checks run real ops through
:func:`count_model` (real tensors on CPU).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from turnkey_like.characterize import ops
from turnkey_like.characterize.counter import count_model

aten = torch.ops.aten


def _cost(packet, *args, out_shape=None, **kwargs):
    entry = ops.lookup(packet)
    assert entry is not None, f"{packet} has no formula"
    return entry.fn(*args, out_shape=out_shape, **kwargs)


# --- matmul -----------------------------------------------------------------------------------


def test_mm_addmm_bmm_baddbmm():
    # mm [3,4] @ [4,5]: 3*4*5 = 60 MACs, 120 FLOPs
    assert _cost(aten.mm, (3, 4), (4, 5)) == (60, 120, None)
    # addmm(bias[5], [3,4], [4,5]): bias add not counted -> 60 MACs
    assert _cost(aten.addmm, (5,), (3, 4), (4, 5)).macs == 60
    # bmm [2,3,4] @ [2,4,5]: 2*3*4*5 = 120
    assert _cost(aten.bmm, (2, 3, 4), (2, 4, 5)).macs == 120
    # baddbmm(c, [7,2,3], [7,3,2]): 7*2*3*2 = 84
    assert _cost(aten.baddbmm, (7, 2, 2), (7, 2, 3), (7, 3, 2)).macs == 84
    # mv [6,5] @ [5]: 30; dot [9].[9]: 9
    assert _cost(aten.mv, (6, 5), (5,)).macs == 30
    assert _cost(aten.dot, (9,), (9,)).flops == 18


def test_linear_and_matmul_when_not_decomposed():
    # linear x[2,3,8], w[16,8]: 2*3 rows * 8 * 16 = 768
    assert _cost(aten.linear, (2, 3, 8), (16, 8), (16,)).macs == 768
    # matmul [2,1,3,4] @ [5,4,6] broadcast to out [2,5,3,6]: 2*5*3*6 outputs * k=4 = 720
    assert _cost(aten.matmul, (2, 1, 3, 4), (5, 4, 6), out_shape=(2, 5, 3, 6)).macs == 720


def test_einsum_formula():
    # "bij,bjk->bik" with b=2,i=3,j=4,k=5: every letter loops once: 2*3*4*5 = 120
    assert ops.einsum_macs("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]) == 120
    # three operands "ij,jk,kl->il" (2x3, 3x4, 4x5), left to right:
    # (ij,jk) loops i,j,k = 2*3*4 = 24 -> intermediate ik; (ik,kl) loops i,k,l = 2*4*5 = 40; total 64
    assert ops.einsum_macs("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]) == 64


def test_einsum_is_counted_at_dispatch():
    # einsum decomposes to bmm: "bqd,bkd->bqk" with b=2,q=3,k=4,d=8: 2*3*4*8 = 192
    class E(nn.Module):
        def forward(self, a, b):
            return torch.einsum("bqd,bkd->bqk", a, b)

    res = count_model(E(), (torch.randn(2, 3, 8), torch.randn(2, 4, 8)))
    assert res.total_macs() == 192
    assert res.uncounted == {}


# --- convolution --------------------------------------------------------------------------------


def test_conv2d_formula_stride_padding_groups_dilation():
    # Conv2d(8 -> 16, k=3, groups=4, stride 2, padding 2, dilation 2) on [2, 8, 11, 11]:
    # out = floor((11 + 2*2 - 2*(3-1) - 1)/2) + 1 = floor(10/2) + 1 = 6 -> [2, 16, 6, 6]
    # weight [16, 2, 3, 3] (72*4 = 288 elements); MACs = N*prod(out)*numel(w) = 2*36*288 = 20736
    c = _cost(aten.convolution, (2, 8, 11, 11), (16, 2, 3, 3), (16,), [2, 2], [2, 2], [2, 2], False,
              [0, 0], 4, out_shape=(2, 16, 6, 6))
    assert c.macs == 20736 and c.flops == 41472
    # and the real op gives that output shape and count
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=2, dilation=2, groups=4)
    res = count_model(conv, (torch.randn(2, 8, 11, 11),))
    assert res.rows[0].output_shapes[0] == [2, 16, 6, 6]
    assert res.total_macs() == 20736


def test_conv1d_conv3d_and_padding_modes():
    # Conv1d(3 -> 4, k=5) on [1, 3, 20]: out 16; MACs = 16 * (4*3*5=60) = 960
    assert count_model(nn.Conv1d(3, 4, 5), (torch.randn(1, 3, 20),)).total_macs() == 960
    # Conv3d(2 -> 3, k=3, padding=1) on [1, 2, 4, 4, 4]: out 4x4x4 = 64; w = 3*2*27 = 162; 10368
    assert count_model(nn.Conv3d(2, 3, 3, padding=1), (torch.randn(1, 2, 4, 4, 4),)).total_macs() == 10368
    # reflect padding: the pad is a separate data-movement op, the conv counts as unpadded-size out:
    # Conv2d(1 -> 2, k=3, padding=1, reflect) on [1, 1, 5, 5]: out 5x5 = 25 * (2*1*9 = 18) = 450
    res = count_model(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), (torch.randn(1, 1, 5, 5),))
    assert res.total_macs() == 450
    assert {r.category for r in res.rows} == {"data_movement", "conv"}


def test_conv_transpose_counts_input_positions_not_4x():
    # ConvTranspose2d(4 -> 6, k=3, stride 2) on [1, 4, 5, 5]: weight [4, 6, 3, 3] (216 elements).
    # MACs = N * prod(in spatial) * numel(w) = 25 * 216 = 5400, i.e. every input element times
    # Cout*k*k. (Output is [1, 6, 11, 11]; out-positions * Cin*k*k would be 121*108 = 13068.)
    c = _cost(aten.convolution, (1, 4, 5, 5), (4, 6, 3, 3), None, [2, 2], [0, 0], [1, 1], True, [0, 0], 1,
              out_shape=(1, 6, 11, 11))
    assert c.macs == 5400
    res = count_model(nn.ConvTranspose2d(4, 6, 3, stride=2), (torch.randn(1, 4, 5, 5),))
    assert res.total_macs() == 5400
    # grouped transposed 1-d: ConvTranspose1d(4 -> 6, k=2, groups=2) on [1, 4, 7]: weight [4, 3, 2]
    # = 24 elements; MACs = 7 * 24 = 168
    res = count_model(nn.ConvTranspose1d(4, 6, 2, groups=2), (torch.randn(1, 4, 7),))
    assert res.total_macs() == 168


# --- attention ----------------------------------------------------------------------------------


def test_sdpa_formula_and_gqa():
    # q,k,v [2, 4, 8, 16]: B*H*L*S*(E+Ev) = 2*4*8*8*32 = 16384
    assert ops.sdpa_macs((2, 4, 8, 16), (2, 4, 8, 16), (2, 4, 8, 16)) == 16384
    # GQA q [1, 8, 6, 16], k/v [1, 2, 6, 16]: by query heads 1*8*6*6*32 = 9216
    assert ops.sdpa_macs((1, 8, 6, 16), (1, 2, 6, 16), (1, 2, 6, 16)) == 9216
    # cross attention Lq=3, S=10, E=8, Ev=4, B*H=1*2: 2*3*10*(8+4) = 720
    assert ops.sdpa_macs((1, 2, 3, 8), (1, 2, 10, 8), (1, 2, 10, 4)) == 720


class _SDPA(nn.Module):
    def forward(self, q, k, v, **kw):
        return F.scaled_dot_product_attention(q, k, v, **kw)


@pytest.mark.parametrize("kw,shapes,expected", [
    ({}, [(2, 4, 8, 16)] * 3, 16384),
    ({"is_causal": True}, [(2, 4, 8, 16)] * 3, 16384),  # causal: full products, as the math backend
    ({"enable_gqa": True}, [(1, 8, 6, 16), (1, 2, 6, 16), (1, 2, 6, 16)], 9216),
])
def test_sdpa_math_and_fused_backends_agree(kw, shapes, expected):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    args = tuple(torch.randn(*s) for s in shapes)
    fused = count_model(_SDPA(), args, kw)
    assert [r.op for r in fused.rows if r.category == "attention"] == [
        "aten._scaled_dot_product_flash_attention_for_cpu.default"]
    with sdpa_kernel(SDPBackend.MATH):
        math = count_model(_SDPA(), args, kw)
    assert not any(r.category == "attention" for r in math.rows)  # math = bmm + softmax
    assert fused.total_macs() == math.total_macs() == expected
    assert math.uncounted == {}


def test_sdpa_on_meta_uses_math_and_agrees():
    args = tuple(torch.randn(2, 4, 8, 16, device="meta") for _ in range(3))
    assert count_model(_SDPA(), args).total_macs() == 16384


def test_mha_fast_path_equals_slow_path():
    # E=16, 4 heads, B=2, L=S=5: in-proj 2*5*16*48 = 7680, QK^T + AV 2*2*5*5*16 = 1600,
    # out-proj 2*5*16*16 = 2560: 11840
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        fast = count_model(mha, (x, x, x), {"need_weights": False})
    slow = count_model(mha, (x, x, x), {"need_weights": False})  # grad enabled: slow path
    assert [r.op for r in fast.rows] == ["aten._native_multi_head_attention.default"]
    assert "aten._native_multi_head_attention.default" not in {r.op for r in slow.rows}
    assert fast.total_macs() == slow.total_macs() == 11840


def test_transformer_encoder_layer_fast_path_equals_slow_path():
    # d_model 16, 4 heads, FFN 32, B=2, L=5: attention 11840 (as above) + FFN 2*(10*16*32) = 10240
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, dropout=0.0).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        fast = count_model(layer, (x,))
    slow = count_model(layer, (x,))
    assert [r.op for r in fast.rows] == ["aten._transformer_encoder_layer_fwd.default"]
    assert fast.total_macs() == slow.total_macs() == 22080


# --- norms, activations, elementwise, softmax ---------------------------------------------------


def test_norm_formulas():
    # batch norm [2, 3, 4, 4] = 96 elements: eval 4/elem = 384; training 8/elem = 768
    assert _cost(aten.native_batch_norm, (2, 3, 4, 4), (3,), (3,), (3,), (3,), False, 0.1, 1e-5).flops == 384
    assert _cost(aten.native_batch_norm, (2, 3, 4, 4), (3,), (3,), (3,), (3,), True, 0.1, 1e-5).flops == 768
    # layer norm [4, 10] with affine: 7/elem = 280; without: 5/elem = 200
    assert _cost(aten.native_layer_norm, (4, 10), [10], (10,), (10,), 1e-5).flops == 280
    assert _cost(aten.native_layer_norm, (4, 10), [10], None, None, 1e-5).flops == 200
    # group norm [2, 4, 3, 3] = 72 elements with affine: 7*72 = 504
    assert _cost(aten.native_group_norm, (2, 4, 3, 3), (4,), (4,), 2, 4, 9, 2, 1e-5).flops == 504
    # RMS norm [3, 8] with weight: 4/elem = 96
    assert _cost(aten._fused_rms_norm, (3, 8), [8], (8,), 1e-6).flops == 96


def test_norms_counted_on_real_modules():
    x = torch.randn(2, 4, 3, 3)  # 72 elements
    # eval BatchNorm: 4*72 = 288; training: 8*72 = 576, plus num_batches_tracked += 1 (1 add)
    bn = nn.BatchNorm2d(4)
    assert count_model(bn.eval(), (x,)).total_flops() == 288
    assert count_model(bn.train(), (x,)).total_flops() == 577
    # InstanceNorm2d(affine=False) lowers to a training-mode batch norm over [1, 8, 3, 3]: 8*72 = 576
    res = count_model(nn.InstanceNorm2d(4), (x,))
    assert {r.category for r in res.rows} == {"norm"}
    assert res.total_flops() == 576
    # GroupNorm(2, 4): 7*72 = 504; LayerNorm([3]) affine: 7*72 = 504
    assert count_model(nn.GroupNorm(2, 4), (x,)).total_flops() == 504
    assert count_model(nn.LayerNorm(3), (x,)).total_flops() == 504


def test_activation_and_elementwise_formulas():
    shape = (2, 5)  # 10 elements
    assert _cost(aten.relu, shape, out_shape=shape).flops == 10
    assert _cost(aten.sigmoid, shape, out_shape=shape).flops == 40  # neg, exp, add, div
    assert _cost(aten.silu, shape, out_shape=shape).flops == 50
    assert _cost(aten.hardswish, shape, out_shape=shape).flops == 50
    assert _cost(aten.gelu, shape).flops == 50  # erf form: 5/elem
    assert _cost(aten.gelu, shape, approximate="tanh").flops == 90  # tanh form: 9/elem
    assert _cost(aten.add, shape, shape, out_shape=shape) == (None, 10, None)
    # broadcast mul [2,5] * [5] -> 10 outputs -> 10 FLOPs
    assert _cost(aten.mul, shape, (5,), out_shape=shape).flops == 10
    assert _cost(aten.addcmul, shape, shape, shape, out_shape=shape).flops == 20
    # softmax [3, 7]: 5 per element = 105
    assert _cost(aten._softmax, (3, 7), -1, False).flops == 105


def test_activation_modules_are_categorised():
    x = torch.randn(4, 6)
    model = nn.Sequential(nn.ReLU(), nn.GELU(), nn.SiLU(), nn.Hardswish(), nn.Tanh(), nn.Sigmoid(),
                          nn.ReLU6(), nn.LeakyReLU(), nn.Mish())
    res = count_model(model, (x,))
    assert all(r.category == "activation" for r in res.rows), [(r.op, r.category) for r in res.rows]
    # 24 elements * (1 + 5 + 5 + 5 + 1 + 4 + 2 + 2 + 5 = 30) = 720
    assert res.total_flops() == 720


# --- pooling, embedding, interpolation ------------------------------------------------------------


def test_pooling_formulas():
    # max pool k=3 s=2 on [1, 2, 7, 7] -> [1, 2, 3, 3]: 18 outputs * 9 = 162
    res = count_model(nn.MaxPool2d(3, 2), (torch.randn(1, 2, 7, 7),))
    assert res.rows[0].category == "pooling" and res.total_flops() == 162
    # avg pool k=2 on [1, 3, 4, 4] -> [1, 3, 2, 2]: 12 outputs * 4 = 48
    assert count_model(nn.AvgPool2d(2), (torch.randn(1, 3, 4, 4),)).total_flops() == 48
    # adaptive avg pool 5 -> 3 along each dim: windows [0,2),[1,4),[3,5) lengths 2+3+2 = 7;
    # [1, 2, 5, 5] -> [1, 2, 3, 3]: 2 channels * 7 * 7 = 98
    assert ops.adaptive_window_sum(5, 3) == 7
    res = count_model(nn.AdaptiveAvgPool2d(3), (torch.randn(1, 2, 5, 5),))
    assert res.rows[0].category == "pooling" and res.total_flops() == 98


def test_embedding_reads_only_gathered_rows():
    # Embedding(1000, 8) on 6 ids: 0 FLOPs; reads 6 rows * 8 * 4 bytes = 192 of the table + the ids
    # (6 int64 = 48 bytes) = 240 bytes, not the 32000-byte table
    emb = nn.Embedding(1000, 8)
    res = count_model(emb, (torch.arange(6).reshape(2, 3),))
    (row,) = res.rows
    assert row.category == "embedding" and row.flops == 0 and row.macs is None
    assert row.bytes_read == 240 and row.weight_bytes == 192
    assert row.bytes_written == 2 * 3 * 8 * 4


def test_embedding_of_more_ids_than_rows_reads_the_table_once():
    # Embedding(2, 8) (a token-type table) on 2 x 6 ids: 12 rows gathered, but the table is 2 rows:
    # 2 * 8 * 4 = 64 bytes of it are read (then found in cache), + 12 int64 ids = 96: 160 bytes
    res = count_model(nn.Embedding(2, 8), (torch.zeros(2, 6, dtype=torch.long),))
    (row,) = res.rows
    assert (row.bytes_read, row.weight_bytes) == (160, 64)
    assert _cost(aten.embedding, (2, 8), (2, 6), out_shape=(2, 6, 8)) == (None, 0, {0: 16})
    assert _cost(aten.embedding, (1000, 8), (2, 3), out_shape=(2, 3, 8)) == (None, 0, {0: 48})


def test_embedding_bag_gathers_then_sums():
    # EmbeddingBag(1000, 8, mode="sum") on 6 ids in 2 bags: 6 rows gathered (48 elements, 192 bytes) and
    # summed, 1 FLOP each: 48 FLOPs
    assert _cost(aten._embedding_bag, (1000, 8), (6,), (2,), out_shape=(2, 8)) == (None, 48, {0: 48})
    # of a 4-row table, 6 ids read at most its 32 elements; still 48 FLOPs
    assert _cost(aten._embedding_bag, (4, 8), (6,), (2,), out_shape=(2, 8)) == (None, 48, {0: 32})


GATHER_TABLE = torch.arange(8000.0).reshape(1000, 8)
IDS = torch.tensor([[1, 5, 7], [2, 2, 999]])


@pytest.mark.parametrize("op, call, taken", [
    # weight[ids] (aten.index.Tensor): 6 rows of 8 -> [2, 3, 8], 48 elements taken
    ("aten.index.Tensor", lambda t, i: t[i], 48),
    # its decompositions' form, the same gather
    ("aten._unsafe_index.Tensor", lambda t, i: torch.ops.aten._unsafe_index(t, [i]), 48),
    # index_select along rows with the 6 ids flattened: [6, 8], 48 elements
    ("aten.index_select.default", lambda t, i: t.index_select(0, i.flatten()), 48),
    # gather along dim 1 with an index [2, 3] (ids mod 8): one element each, 6
    ("aten.gather.default", lambda t, i: t.gather(1, i % 8), 6),
    # take: the table flattened, 6 elements
    ("aten.take.default", lambda t, i: t.take(i), 6),
])
def test_gathers_read_the_elements_they_take(op, call, taken):
    # float32: taken * 4 bytes of the 32,000-byte table, + the ids (6 int64, 48 bytes; index_select's
    # flattened copy and gather's ids % 8 are tensors of the same 6 int64); 0 FLOPs
    res = count_model(call, (GATHER_TABLE, IDS))
    (row,) = [r for r in res.rows if r.op == op]
    assert (row.category, row.flops, row.macs) == ("data_movement", 0, None)
    assert row.bytes_read == 4 * taken + 8 * 6
    assert row.bytes_written == 4 * taken


def test_gather_reads_at_most_the_source():
    # x[ids] on a [4, 8] table with 10 ids: 80 elements taken, but the table has 32: 32 * 4 + 10 * 8 = 208
    # bytes read (an upsampling by _unsafe_index reads its input once, as before: the output is larger)
    res = count_model(lambda t, i: t[i], (torch.randn(4, 8), torch.zeros(10, dtype=torch.long)))
    (row,) = res.rows
    assert (row.bytes_read, row.bytes_written) == (208, 320)
    assert _cost(aten.index, (4, 8), [(10,)], out_shape=(10, 8)) == (None, 0, {0: 32})
    assert _cost(aten.index_select, (1000, 8), 0, (6,), out_shape=(6, 8)) == (None, 0, {0: 48})


def test_interpolation_formulas():
    x = torch.randn(1, 2, 4, 4)  # -> [1, 2, 8, 8] = 128 outputs
    nearest = count_model(nn.Upsample(scale_factor=2, mode="nearest"), (x,))
    bilinear = count_model(nn.Upsample(scale_factor=2, mode="bilinear"), (x,))
    bicubic = count_model(nn.Upsample(scale_factor=2, mode="bicubic"), (x,))
    assert {r.category for r in nearest.rows + bilinear.rows + bicubic.rows} == {"interpolation"}
    assert nearest.total_flops() == 0
    assert bilinear.total_flops() == 9 * 128  # 3 lerps x 3 FLOPs
    assert bicubic.total_flops() == 35 * 128  # 5 four-tap interpolations x 7 FLOPs


def test_lstm_formula():
    # LSTM(4, 8), T=5, B=2: 10 steps * (W_ih 32x4 + W_hh 32x8 = 384) = 3840 MACs; FLOPs = 2 * MACs plus
    # 18 gate FLOPs per hidden unit and step (3 sigmoids at 4, 2 tanh at 1, 3 mul, 1 add): 10 * 8 * 18
    res = count_model(nn.LSTM(4, 8), (torch.randn(5, 2, 4),))
    assert res.total_macs() == 3840
    assert res.total_flops() == 2 * 3840 + 10 * 8 * 18
    assert res.uncounted == {}


def test_every_registered_category_is_known_and_mac_categories():
    assert set(e.category for e in ops.REGISTRY.values()) <= set(ops.CATEGORIES)
    assert ops.MAC_CATEGORIES == ("conv", "matmul", "attention")
    for packet, entry in ops.REGISTRY.items():
        assert entry.fn.__doc__ or entry.name.startswith("elementwise_"), packet
