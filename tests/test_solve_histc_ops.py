"""Triangular solves and histograms: each count derived by hand, meta like real, and a Qwen3-Next
model (transformers 5) that leaves neither uncounted.

``linalg_solve_triangular`` (and the older ``triangular_solve``) are counted as matmul: the MACs of
forward/back substitution plus one division per unknown unless the diagonal is unit. ``histc``,
``histogram`` and ``bincount`` are reductions: a fixed number of FLOPs per input element, no MACs.
Qwen3-Next dispatches both families: its MoE layers count the tokens per expert with ``histc``
(``transformers/integrations/moe.py``) and its gated-delta-rule layers solve a unit lower-triangular
system per chunk, twice a layer (``torch_chunk_gated_delta_rule``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from turnkey_like.characterize import ops
from turnkey_like.characterize.counter import count_model
from turnkey_like.characterize.assemble import characterize_call

aten = torch.ops.aten
SOLVE = "aten.linalg_solve_triangular.default"
HISTC = "aten.histc.default"

pytestmark = pytest.mark.filterwarnings("ignore:torch.triangular_solve is deprecated:UserWarning")


class Call(nn.Module):
    """A module whose forward is ``fn(*inputs)``: one op, counted through a real module call."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(*inputs)


def _rows(fn, *inputs):
    """Count ``fn(*inputs)`` inside a module; return (every row, the uncounted ops)."""
    res = count_model(Call(fn), inputs)
    return res.rows, res.uncounted


def _row(fn, *inputs, op=None):
    """The one row of the op under test (the last row, or the only row of ``op``)."""
    rows, uncounted = _rows(fn, *inputs)
    assert uncounted == {}
    picked = [r for r in rows if op is None or r.op == op]
    return picked[-1]


def _key(r):
    return r.op, r.category, r.counted, r.macs, r.flops, r.bytes_read, r.bytes_written, r.input_shapes


def _substitute(a, b, upper: bool, unitriangular: bool):
    """Solve ``a x = b`` column by column by substitution, in Python, counting what it does.

    Returns (x, MACs, divisions): every ``a_ij * x_j`` subtracted from the running ``b_i`` is one
    multiply-accumulate; every ``/ a_ii`` one division. An independent derivation of the formula.
    """
    n, k = b.shape
    x = torch.zeros_like(b)
    macs = divisions = 0
    order = range(n - 1, -1, -1) if upper else range(n)
    for c in range(k):
        for i in order:
            s = b[i, c].item()
            for j in (range(i + 1, n) if upper else range(i)):
                s -= a[i, j].item() * x[j, c].item()
                macs += 1
            if not unitriangular:
                s /= a[i, i].item()
                divisions += 1
            x[i, c] = s
    return x, macs, divisions


def _triangular(n, upper=False, seed=0):
    """A well-conditioned n x n triangular matrix (diagonal 2..3, off-diagonal small)."""
    gen = torch.Generator().manual_seed(seed)
    off = 0.3 * torch.randn(n, n, generator=gen, dtype=torch.float64)
    a = off + torch.diag(2 + torch.rand(n, generator=gen, dtype=torch.float64))
    return a.triu() if upper else a.tril()


# --- triangular solves ------------------------------------------------------------------------------


def test_triangular_solve_counts_by_hand():
    # A 4x4, B 4x3: per column rows 1..4 have 0+1+2+3 = 6 products -> 3 * 6 = 18 MACs; 4 divisions
    # per column, 12 in all; FLOPs = 2*18 + 12 = 48 = 3 * 4^2. Unit diagonal: no divisions, 36.
    assert ops.triangular_solve_counts(4, 3) == (18, 48)
    assert ops.triangular_solve_counts(4, 3, unitriangular=True) == (18, 36)
    # a 1x1 system is one division per right-hand side, no MAC; a chunk of 64 (Qwen3-Next):
    # 64*63/2 = 2016 MACs per right-hand side
    assert ops.triangular_solve_counts(1, 5) == (0, 5)
    assert ops.triangular_solve_counts(64, 1, unitriangular=True) == (2016, 4032)
    entry = ops.lookup(aten.linalg_solve_triangular)
    assert entry.category == "matmul" and ops.is_mac_category(entry.category)
    # left=False: B is [k, n] = [3, 4], the same 3 systems of size 4; the batch broadcasts
    # [2, 1] x [3] -> [2, 3] = 6 systems: 6 * 18 = 108 MACs, 6 * 48 = 288 FLOPs
    assert entry.fn((4, 4), (3, 4), upper=True, left=False, out_shape=(3, 4)) == (18, 48, None)
    assert entry.fn((2, 1, 4, 4), (3, 4, 3), upper=False, out_shape=(2, 3, 4, 3)) == (108, 288, None)


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("unitriangular", [False, True])
@pytest.mark.parametrize("left", [True, False])
def test_solve_triangular_counts_what_substitution_does(upper, unitriangular, left):
    a, n, k = _triangular(4, upper), 4, 3
    b = torch.randn(n, k, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # X A = B is A^T X^T = B^T: substitute with A^T (its triangle flips) on B^T's columns
    x, macs, divisions = (_substitute(a, b, upper, unitriangular) if left
                          else _substitute(a.T, b, not upper, unitriangular))
    assert (macs, divisions) == (18, 0 if unitriangular else 12)  # the hand count above, redone

    def solve(a, b):
        return torch.linalg.solve_triangular(a, b if left else b.T, upper=upper, left=left,
                                             unitriangular=unitriangular)

    torch.testing.assert_close(solve(a, b), x if left else x.T)
    row = _row(solve, a, b, op=SOLVE)
    assert (row.category, row.counted, row.macs, row.flops) == ("matmul", True, macs, 2 * macs + divisions)
    # bytes: A (16) and B (12) read whole, X (12) written, float64
    assert (row.bytes_read, row.bytes_written) == (8 * (16 + 12), 8 * 12)
    meta = _row(solve, a.to("meta"), b.to("meta"), op=SOLVE)
    assert _key(meta) == _key(row)


def test_batched_solve_broadcasts_and_meta_counts_alike():
    # A [2, 1, 4, 4] lower, B [3, 4, 5]: batch [2, 3] = 6 systems of 5 right-hand sides:
    # MACs = 6 * 5 * (4*3/2) = 180, FLOPs = 6 * 5 * 4^2 = 480
    a = torch.stack([_triangular(4, seed=s) for s in (0, 1)]).unsqueeze(1)
    b = torch.randn(3, 4, 5, dtype=torch.float64)

    def solve(a, b):
        return torch.linalg.solve_triangular(a, b, upper=False)

    row = _row(solve, a, b, op=SOLVE)
    assert (row.macs, row.flops, row.output_shapes) == (180, 480, [[2, 3, 4, 5]])
    assert _key(_row(solve, a.to("meta"), b.to("meta"), op=SOLVE)) == _key(row)


def test_deprecated_triangular_solve_counts_as_the_linalg_one():
    # triangular_solve(B[4, 3], A[4, 4]) (operands swapped): A X = B, the same 18 MACs / 48 FLOPs;
    # transpose solves A^T X = B, the same count; unitriangular drops the 12 divisions
    a, b = _triangular(4, upper=True), torch.randn(4, 3, dtype=torch.float64)
    for kw, flops in (({}, 48), ({"transpose": True}, 48), ({"unitriangular": True}, 36)):
        def solve(b, a):
            return torch.triangular_solve(b, a, upper=True, **kw).solution

        row = _row(solve, b, a, op="aten.triangular_solve.default")
        assert (row.category, row.macs, row.flops) == ("matmul", 18, flops), kw
        torch.testing.assert_close(
            solve(b, a), torch.linalg.solve_triangular(a.T if kw.get("transpose") else a, b,
                                                       upper=not kw.get("transpose"),
                                                       unitriangular=bool(kw.get("unitriangular"))))
        assert _key(_row(solve, b.to("meta"), a.to("meta"), op="aten.triangular_solve.default")) == _key(row)


# --- histograms -------------------------------------------------------------------------------------


def test_histc_by_hand_and_meta():
    # 10 values, 5 bins on [0, 1]: per element compare with the range 2, bin index (x - 0) * 5 / 1
    # truncated 4, increment 1 = 7 -> 70 FLOPs, no MACs
    x = torch.tensor([0.05, 0.1, 0.25, 0.3, 0.45, 0.5, 0.7, 0.9, 1.0, 1.5])

    def histc(x):
        return torch.histc(x, bins=5, min=0, max=1)

    assert histc(x).tolist() == [2, 2, 2, 1, 2]  # 1.5 is out of range, 1.0 falls in the last bin
    row = _row(histc, x, op=HISTC)
    assert (row.category, row.counted, row.macs, row.flops) == ("reduction", True, None, 70)
    assert (row.bytes_read, row.bytes_written) == (4 * 10, 4 * 5)
    assert _key(_row(histc, x.to("meta"), op=HISTC)) == _key(row)
    # min == max (the defaults): the range is the data's min and max, 2 more per element -> 90
    row = _row(lambda x: torch.histc(x, bins=5), x, op=HISTC)
    assert row.flops == 90 == ops.lookup(aten.histc).fn((10,), 5, 2, 2, out_shape=(5,)).flops
    # the formula sees min/max given by name as well
    assert ops.lookup(aten.histc).fn((10,), 5, out_shape=(5,), min=0, max=1).flops == 70


def test_histogram_by_hand():
    x = torch.rand(10, generator=torch.Generator().manual_seed(0))
    op = "aten.histogram.bin_ct"
    # equal-width bins with a range: 2 range + 4 bin index + 2 local search + 1 increment = 9 per
    # element -> 90; without a range, + 2 (min, max) -> 110; density adds 4 per bin: 110 + 4*5 = 130
    row = _row(lambda x: torch.histogram(x, bins=5, range=(0.0, 1.0)).hist, x, op=op)
    assert (row.category, row.macs, row.flops) == ("reduction", None, 90)
    assert _row(lambda x: torch.histogram(x, bins=5).hist, x, op=op).flops == 110
    assert _row(lambda x: torch.histogram(x, bins=5, density=True).hist, x, op=op).flops == 130
    # a weight replaces the increment's 1 by the weight: the same 9 per element
    w = torch.rand(10)
    assert _row(lambda x, w: torch.histogram(x, bins=5, range=(0.0, 1.0), weight=w).hist, x, w, op=op).flops == 90
    # bins given as 6 edges: binary search, at most floor(log2 6) + 1 = 3 compares; with the range
    # compare 2 and the increment 1: 6 per element -> 60
    edges = torch.linspace(0, 1, 6)
    row = _row(lambda x, e: torch.histogram(x, bins=e).hist, x, edges, op="aten.histogram.bins_tensor")
    assert (row.category, row.macs, row.flops) == ("reduction", None, 60)


def test_bincount_by_hand():
    # 6 values: min 1 + max 1 + increment 1 = 3 per element -> 18 FLOPs, weighted or not
    x = torch.tensor([0, 1, 1, 3, 5, 5])
    row = _row(lambda x: torch.bincount(x), x, op="aten.bincount.default")
    assert (row.category, row.macs, row.flops) == ("reduction", None, 18)
    assert torch.bincount(x).tolist() == [1, 2, 0, 1, 0, 2]
    w = torch.rand(6)
    row = _row(lambda x, w: torch.bincount(x, weights=w, minlength=8), x, w, op="aten.bincount.default")
    assert (row.flops, row.output_shapes) == (18, [[8]])


# --- a real transformers model ------------------------------------------------------------------------

QWEN3_NEXT = dict(num_hidden_layers=4, layer_types=["linear_attention"] * 3 + ["full_attention"],
                  hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
                  shared_expert_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, linear_num_value_heads=4,
                  linear_num_key_heads=2, linear_key_head_dim=8, linear_value_head_dim=16,
                  vocab_size=128, max_position_embeddings=64)
"""Qwen3-Next's default config cut small: 3 gated-delta-rule layers and 1 full-attention layer (the
default pattern's first four), every layer an MoE of 4 experts with top-2 routing."""


def test_qwen3_next_counts_histc_and_triangular_solves():
    from transformers import AutoConfig, AutoModelForCausalLM

    c = AutoConfig.for_model("qwen3_next", **QWEN3_NEXT)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(c).eval()
    B, S = 2, 8
    ids = torch.randint(0, c.vocab_size, (B, S), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        char = characterize_call(model, (), {"input_ids": ids}, hardware="a100")
        meta = characterize_call(model, (), {"input_ids": ids}, hardware="a100", no_weights=True)
    assert meta.device == "meta"
    for ch in (char, meta):
        assert SOLVE not in ch.uncounted and HISTC not in ch.uncounted
        assert ch.uncounted == {} and ch.totals.uncounted_ops == 0

    # histc: one per MoE layer (all 4), over the T*k = 16*2 = 32 routed rows: 7 * 32 = 224 FLOPs
    T, k = B * S, c.num_experts_per_tok
    histc = [r for r in char.rows if r.op == HISTC]
    assert [r.module_path for r in histc] == [f"model.layers.{i}.mlp.experts" for i in range(4)]
    assert [(r.input_shapes, r.macs, r.flops) for r in histc] == [([[T * k]], None, 7 * T * k)] * 4 == \
        [([[32]], None, 224)] * 4
    # solves: two per gated-delta-rule layer, each a unit lower-triangular [64, 64] system (S = 8 padded
    # to one chunk of 64) per (batch, value head, chunk) = 2 * 4 * 1 = 8 systems; right-hand sides:
    # the values (dv = 16), then the keys (dk = 8). MACs = 8 * rhs * 64*63/2, FLOPs = 2 * MACs.
    solves = [r for r in char.rows if r.op == SOLVE]
    assert [r.module_path for r in solves] == [f"model.layers.{i}.linear_attn" for i in range(3) for _ in (0, 1)]
    hv, dv, dk = c.linear_num_value_heads, c.linear_value_head_dim, c.linear_key_head_dim
    assert [r.input_shapes for r in solves] == [[[B, hv, 1, 64, 64], [B, hv, 1, 64, d]] for d in (dv, dk)] * 3
    assert [(r.category, r.macs, r.flops) for r in solves] == \
        [("matmul", m, 2 * m) for m in (8 * 16 * 2016, 8 * 8 * 2016)] * 3 == \
        [("matmul", 258048, 516096), ("matmul", 129024, 258048)] * 3
    # on meta, each of these rows exactly as on real tensors
    key = lambda r: (r.op, r.module_path, r.macs, r.flops, r.bytes_read, r.bytes_written)
    both = lambda ch: [key(r) for r in ch.rows if r.op in (SOLVE, HISTC)]
    assert both(meta) == both(char) and len(both(char)) == 10
    # (total FLOPs differ: on meta SDPA runs its math decomposition, whose softmax is counted apart)
    assert meta.totals.macs == char.totals.macs
