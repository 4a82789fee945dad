"""The cross-check of docs/characterize.md ("Where other counters differ from tk") still holds.

``benchmarks/crosscheck.py`` counts each case with tk, ``torch.utils.flop_counter.FlopCounterMode``,
fvcore and DeepSpeed. Here, on the small cases only (well under a second each): tk equals the hand
count, and each other counter differs exactly where, and because of the op, the page says. When a
new torch, fvcore or DeepSpeed closes a gap, these fail and the page's table needs its new figures.
fvcore and DeepSpeed are not tk's dependencies: their tests skip when they are not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import crosscheck  # noqa: E402

SMALL = ["lstm", "gru", "mha_fast", "mha_slow", "encoder_layer_fast", "sdpa", "sdpa_gqa", "matmul_attention",
         "einsum_attention", "matmul_broadcast", "grouped_mm", "conv_depthwise", "conv_groups4", "conv_transpose",
         "embedding", "norms", "upsample"]
CASES = {c.name: c for c in crosscheck.CASES}


def _run(name: str, tools: list[str]) -> crosscheck.Result:
    return crosscheck.run_case(CASES[name], tools)


@pytest.mark.parametrize("name", SMALL)
def test_tk_equals_the_hand_count(name):
    result = _run(name, [])
    assert result.char.totals.macs == CASES[name].hand


# case -> the op FlopCounterMode has no formula for (on CPU), whose MACs it therefore misses
FLOP_COUNTER_MISSES = {
    "lstm": "aten.mkldnn_rnn_layer",
    "mha_fast": "aten._native_multi_head_attention",
    "encoder_layer_fast": "aten._transformer_encoder_layer_fwd",
    "sdpa": "aten._scaled_dot_product_flash_attention_for_cpu",
    "mha_slow": "aten._scaled_dot_product_flash_attention_for_cpu",
    "grouped_mm": "aten._grouped_mm",
}


@pytest.mark.parametrize("name", sorted(FLOP_COUNTER_MISSES))
def test_flop_counter_misses_the_documented_op(name):
    result = _run(name, ["FlopCounterMode"])
    count, op = result.counts["FlopCounterMode"], FLOP_COUNTER_MISSES[name]
    missed = sum(r.macs or 0 for r in result.char.rows if r.op.startswith(op + "."))
    assert missed > 0
    assert count.macs == result.char.totals.macs - missed
    assert result.causes["FlopCounterMode"] == [f"{op}: tk {crosscheck._si(missed)}, tool 0"]


@pytest.mark.parametrize("name", ["gru", "matmul_attention", "einsum_attention", "matmul_broadcast",
                                  "conv_groups4", "conv_transpose"])
def test_flop_counter_agrees_where_it_has_formulas(name):
    result = _run(name, ["FlopCounterMode"])
    assert result.counts["FlopCounterMode"].macs == result.char.totals.macs
    assert result.causes["FlopCounterMode"] == []


def test_fvcore_differences():
    pytest.importorskip("fvcore")
    tool = ["fvcore"]
    # no handle for these ops: 0, and the op named among those skipped
    for name, op in [("lstm", "aten::lstm"), ("mha_fast", "aten::_native_multi_head_attention"),
                     ("sdpa", "aten::scaled_dot_product_attention"), ("grouped_mm", "aten::_grouped_mm")]:
        result = _run(name, tool)
        assert result.counts["fvcore"].macs == 0, name
        assert op in result.counts["fvcore"].skipped, name
    # per-element estimates added to its total although these ops have no MACs: BN (affine) 2 per
    # element, group/instance/layer norm (affine) 5 per element (fvcore/nn/jit_handles.py)
    result = _run("norms", tool)
    assert result.counts["fvcore"].macs == 64 * 56 * 56 * (2 + 5 + 5 + 5)
    # [128, 64] @ [8, 64, 32]: prod(first shape) x last dim, the broadcast batch of 8 left out
    result = _run("matmul_broadcast", tool)
    assert result.counts["fvcore"].macs * 8 == result.char.totals.macs
    # numpy's einsum_path prints its FLOP count with 4 significant digits: 3.355e+07 / 2 per einsum
    result = _run("einsum_attention", tool)
    assert result.counts["fvcore"].macs == 2 * (33_550_000 // 2)


def test_fvcore_module_counts_sum_to_its_total():
    pytest.importorskip("fvcore")
    result = _run("mha_slow", ["fvcore"])
    count = result.counts["fvcore"]
    assert sum(count.by_module.values()) == count.macs > 0


def test_deepspeed_differences():
    pytest.importorskip("deepspeed")
    tool = ["DeepSpeed"]
    # fused ops it has no Python function to patch for
    for name in ("mha_fast", "grouped_mm", "sdpa_imported"):
        result = _run(name, tool)
        assert result.counts["DeepSpeed"].macs == 0, name
    # F.scaled_dot_product_attention looked up when called, and the Python MHA path: counted as tk does
    for name in ("sdpa", "sdpa_gqa", "mha_slow"):
        result = _run(name, tool)
        assert result.counts["DeepSpeed"].macs == result.char.totals.macs, name
    # its RNN hook adds FLOPs but no MACs
    result = _run("lstm", tool)
    assert result.counts["DeepSpeed"].macs == 0
    assert result.counts["DeepSpeed"].skipped["LSTM FLOPs (no MACs)"] > 2 * result.char.totals.macs
    # einsum: FLOPs from numpy's einsum_path, no MACs
    assert _run("einsum_attention", tool).counts["DeepSpeed"].macs == 0
    # its module hooks turn TransformerEncoderLayer's fast path off (torch checks for hooks): the
    # feed-forward linears are counted, the attention (still MHA's fast path) is not
    result = _run("encoder_layer_fast", tool)
    assert result.counts["DeepSpeed"].macs == 2 * 2 * 64 * 512 * 2048


def test_deepspeed_restores_what_it_patched():
    pytest.importorskip("deepspeed")
    before = (torch.nn.functional.linear, torch.matmul, torch.nn.functional.scaled_dot_product_attention)
    _run("sdpa", ["DeepSpeed"])
    assert (torch.nn.functional.linear, torch.matmul, torch.nn.functional.scaled_dot_product_attention) == before
