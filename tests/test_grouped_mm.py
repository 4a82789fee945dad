"""Grouped matrix multiplication (``aten._grouped_mm``): MACs of each layout by hand, meta like real,
and a transformers Mixture-of-Experts model whose experts are counted.

``torch.nn.functional.grouped_mm(mat_a, mat_b, offs=...)`` runs G products at once; ``offs`` (int32
``[G]``) holds the cumulative ends of the groups along the dimension it splits. transformers 5 runs
every MoE layer's experts through it (experts implementation ``grouped_mm``), in float32 on CPU,
where torch's meta kernel refuses float32: the counter gives meta and fake tensors the CPU kernel's
output instead (``meta_kernels.grouped_mm_output``, the rule the counter and the zoo share).

Bytes read count the groups that have rows: a grouped GEMM reads the weights of the experts its rows
go to, from ``offs``'s values on real tensors; on meta and fake tensors, which hold none, at most
min(G, rows) groups (``ops.grouped_mm_reads``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from turnkey_like.characterize import ops
from turnkey_like.characterize.assemble import characterize_call
from turnkey_like.characterize.counter import count_model
from turnkey_like.errors import CharacterizationError
from turnkey_like.meta_kernels import WithoutData

GROUPED_MM = "aten._grouped_mm.default"


def _offs(*ends):
    return torch.tensor(ends, dtype=torch.int32)


def _by_groups(a, b, offs):
    """The grouped product computed group by group with plain ``@``, and the sum of each group's
    m*k*n: the layouts of the ``grouped_mm`` docstring, written out."""
    starts = [0, *offs.tolist()[:-1]] if offs is not None else []
    ends = offs.tolist() if offs is not None else []
    if a.dim() == 3 and b.dim() == 3:  # [G, M, K] x [G, K, N]: a batch of products
        parts = [a[g] @ b[g] for g in range(a.shape[0])]
        out = torch.stack(parts)
    elif a.dim() == 2 and b.dim() == 3:  # offs splits a's rows: group g is a[s:e] @ b[g]
        parts = [a[s:e] @ b[g] for g, (s, e) in enumerate(zip(starts, ends))]
        out = torch.cat(parts)
    elif a.dim() == 2:  # both 2-D: offs splits the contraction, group g is a[:, s:e] @ b[s:e]
        parts = [a[:, s:e] @ b[s:e] for s, e in zip(starts, ends)]
        out = torch.stack(parts)
    else:  # [G, M, K] x [K, N]: offs splits b's columns, group g is a[g] @ b[:, s:e]
        parts = [a[g] @ b[:, s:e] for g, (s, e) in enumerate(zip(starts, ends))]
        out = torch.cat(parts, dim=1)
    # each part is [m, n] from an [m, k] @ [k, n] product: m*k*n MACs, k the slice's contraction
    ks = {(2, 3): lambda g: a.shape[1], (3, 3): lambda g: a.shape[2],
          (2, 2): lambda g: ends[g] - starts[g], (3, 2): lambda g: a.shape[2]}[(a.dim(), b.dim())]
    macs = sum(p.shape[0] * ks(g) * p.shape[1] for g, p in enumerate(parts))
    return out, macs


# layout -> (mat_a shape, mat_b shape, offs or None, hand-derived MACs, output shape)
CASES = {
    # [16, 8] x [3, 8, 12], rows split 3 + 6 + 7: (3 + 6 + 7) * 8 * 12 = 16 * 8 * 12 = 1536
    "2d x 3d": ((16, 8), (3, 8, 12), (3, 9, 16), 1536, [16, 12]),
    # [3, 5, 8] x [3, 8, 12], no offs: a bmm, 3 * 5 * 8 * 12 = 1440
    "3d x 3d": ((3, 5, 8), (3, 8, 12), None, 1440, [3, 5, 12]),
    # [5, 16] x [16, 12], contraction split 4 + 4 + 8: 5 * (4 + 4 + 8) * 12 = 960, NOT 3 * 960
    # although the output is [3, 5, 12]: each group contracts its own slice of K
    "2d x 2d": ((5, 16), (16, 12), (4, 8, 16), 960, [3, 5, 12]),
    # [3, 5, 8] x [8, 24], columns split 4 + 8 + 12: 5 * 8 * (4 + 8 + 12) = 960
    "3d x 2d": ((3, 5, 8), (8, 24), (4, 12, 24), 960, [5, 24]),
}


def _inputs(case, device="cpu", dtype=torch.float32):
    a_shape, b_shape, ends, _, _ = CASES[case]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(a_shape, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(b_shape, generator=gen).to(device=device, dtype=dtype)
    return a, b, (_offs(*ends).to(device) if ends else None)


def _count(a, b, offs, **kw):
    """Count one ``grouped_mm`` call; returns (its row, every row, uncounted, the output the counter let
    through)."""
    seen = []

    def call(a, b, offs):
        seen.append(F.grouped_mm(a, b, offs=offs, **kw))

    res = count_model(call, (a, b, offs))
    rows = [r for r in res.rows if r.op == GROUPED_MM]
    assert len(rows) == 1
    return rows[0], res.rows, res.uncounted, seen[0]


def test_bytes_read_count_the_groups_with_rows():
    fn = ops.lookup(torch.ops.aten._grouped_mm).fn
    # [4, 8] x [3, 8, 12], offs (0, 4, 4): only group 1 has rows, so mat_b (tensor argument 1) reads one
    # group, 8 * 12 = 96 elements; without values (meta) min(G = 3, M = 4) = 3 groups: the whole of it
    assert fn((4, 8), (3, 8, 12), (3,), out_shape=(4, 12), data={"offs": (0, 4, 4)}) == (384, 768, {1: 96})
    assert fn((4, 8), (3, 8, 12), (3,), out_shape=(4, 12), data={"offs": None}) == (384, 768, None)
    # one token's top-2 of 4 experts: [2, 8] x [4, 8, 12], offs (0, 1, 2, 2): 2 groups, 192 elements;
    # on meta min(4, 2) = 2, the same (a decode step of one sequence: k rows, k distinct experts)
    for ends in ((0, 1, 2, 2), None):
        assert fn((2, 8), (4, 8, 12), (4,), out_shape=(2, 12), data={"offs": ends}) == (192, 384, {1: 192})
    # [3, 5, 8] x [8, 24], offs (0, 24, 24) split the columns: only a's group 1 is read, 5 * 8 = 40
    assert fn((3, 5, 8), (8, 24), (3,), out_shape=(5, 24), data={"offs": (0, 24, 24)}) == (960, 1920, {0: 40})
    # no offs (3D x 3D) or the contraction split (2D x 2D): every group read
    assert fn((3, 5, 8), (3, 8, 12), out_shape=(3, 5, 12), data={"offs": None}).read_elems is None
    assert fn((5, 16), (16, 12), (3,), out_shape=(3, 5, 12), data={"offs": (4, 4, 16)}).read_elems is None


def test_counted_reads_of_real_and_meta_tensors():
    # [4, 8] x [3, 8, 12] float32, rows 0, 4, 0 per group: real reads a 128 + one group of b 384 + offs 12
    a, b, offs = torch.randn(4, 8), torch.randn(3, 8, 12), _offs(0, 4, 4)
    real_row = _count(a, b, offs)[0]
    assert (real_row.bytes_read, real_row.macs) == (4 * 32 + 4 * 96 + 12, 384)
    # meta: no values, at most min(3, 4) = 3 groups: the whole b, 4 * 288 (an upper bound here)
    meta_row = _count(a.to("meta"), b.to("meta"), offs.to("meta"))[0]
    assert (meta_row.bytes_read, meta_row.macs) == (4 * 32 + 4 * 288 + 12, 384)


def test_formula_by_hand_for_each_layout():
    for case, (a_shape, b_shape, ends, macs, out_shape) in CASES.items():
        offs = (len(ends),) if ends else None
        cost = ops.lookup(torch.ops.aten._grouped_mm).fn(a_shape, b_shape, offs, out_shape=tuple(out_shape))
        assert cost == (macs, 2 * macs, None), case
    assert ops.category_of(torch.ops.aten._grouped_mm) == "matmul"
    # a bias (no torch 2.14 kernel takes one yet) adds 1 FLOP per output element: [16, 12] = 192
    cost = ops.lookup(torch.ops.aten._grouped_mm).fn((16, 8), (3, 8, 12), (3,), (3, 12), out_shape=(16, 12))
    assert cost == (1536, 2 * 1536 + 192, None)


@pytest.mark.parametrize("case", list(CASES))
def test_real_cpu_tensors_by_hand(case):
    a, b, offs = _inputs(case)
    a_shape, b_shape, ends, macs, out_shape = CASES[case]
    reference, group_macs = _by_groups(a, b, offs)
    assert group_macs == macs  # the table's derivation, redone from the per-group products
    row, rows, uncounted, out = _count(a, b, offs)
    assert (len(rows), uncounted) == (1, {})
    assert (row.category, row.counted, row.macs, row.flops) == ("matmul", True, macs, 2 * macs)
    # bytes: both operands whole and offs (int32, 4 bytes a group), float32 output
    g = len(ends) if ends else 0
    numel = lambda s: torch.Size(s).numel()
    assert row.bytes_read == 4 * (numel(a_shape) + numel(b_shape)) + 4 * g
    assert row.bytes_written == 4 * numel(out_shape)
    assert row.output_shapes == [out_shape]
    # the counter lets torch's output through unchanged, and it is the grouped product
    assert torch.equal(out, F.grouped_mm(a, b, offs=offs))
    torch.testing.assert_close(out, reference)


@pytest.mark.parametrize("case", list(CASES))
def test_meta_and_fake_tensors_count_like_real(case):
    from torch._subclasses.fake_tensor import FakeTensorMode

    real_row, _, _, real_out = _count(*_inputs(case))
    key = lambda r: (r.op, r.category, r.macs, r.flops, r.bytes_read, r.bytes_written, r.input_shapes,
                     r.output_shapes, r.dtype)
    # torch's own meta kernel refuses float32 ("Expected mat_a to be BFloat16 ..."): the rule applies
    with pytest.raises(RuntimeError, match="BFloat16"):
        F.grouped_mm(*_inputs(case, "meta")[:2], offs=_inputs(case, "meta")[2])
    meta_row, _, uncounted, meta_out = _count(*_inputs(case, "meta"))
    assert uncounted == {} and key(meta_row) == key(real_row)
    assert meta_out.is_meta
    # same shape, strides (the last dimension padded to 16 bytes) and dtype as the CPU kernel's
    assert (meta_out.shape, meta_out.stride(), meta_out.dtype) == (real_out.shape, real_out.stride(), real_out.dtype)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = [None if t is None else mode.from_tensor(t) for t in _inputs(case)]
        fake_row, _, uncounted, fake_out = _count(*fake)
    assert uncounted == {} and key(fake_row) == key(real_row)
    assert (fake_out.shape, fake_out.stride()) == (real_out.shape, real_out.stride())


def test_meta_output_keeps_the_cpu_kernels_stride_padding():
    # N = 6 float32 = 24 bytes: the CPU kernel pads each output row to 32 bytes (stride 8). mat_b
    # column-major ([E, N, K] transposed, as transformers passes nn.Linear-layout experts)
    a, b, offs = torch.randn(16, 8), torch.randn(3, 6, 8).transpose(-2, -1), _offs(3, 9, 16)
    _, _, _, real_out = _count(a, b, offs)
    _, _, _, meta_out = _count(a.to("meta"), b.to("meta"), offs.to("meta"))
    assert real_out.stride() == meta_out.stride() == (8, 1)


def test_bfloat16_on_meta_still_runs_torchs_meta_kernel():
    # torch's meta kernel takes bfloat16; the counter leaves it to it. [16, 16] x [3, 16, 16].
    a, b, offs = torch.randn(16, 16), torch.randn(3, 16, 16), _offs(3, 9, 16)
    real_row, _, _, real_out = _count(a.bfloat16(), b.bfloat16(), offs)
    meta_row, _, _, meta_out = _count(a.bfloat16().to("meta"), b.bfloat16().to("meta"), offs.to("meta"))
    assert meta_row.macs == real_row.macs == 16 * 16 * 16
    assert meta_row.dtype == "bfloat16" and meta_out.dtype == real_out.dtype == torch.bfloat16
    assert meta_row.bytes_read == real_row.bytes_read == 2 * (256 + 768) + 12


@pytest.mark.parametrize("change, message", [
    (lambda a, b, o: (a.double(), b.double(), o), "Float32, BFloat16 or Float16"),
    (lambda a, b, o: (a, torch.randn(3, 8, 16).half(), o), "same dtype"),  # float16 rows of 32 bytes
    (lambda a, b, o: (a, b, o.long()), "Offsets have to be int32"),
    (lambda a, b, o: (a, b, None), "Have to provide offsets"),
    (lambda a, b, o: (a, b[:2], o), "matrix batch sizes have to match"),
    (lambda a, b, o: (a[:, :4], b, o), "contraction dimension"),
])
def test_meta_rule_raises_where_the_cpu_kernel_raises(change, message):
    a, b, offs = _inputs("2d x 3d")
    with pytest.raises(RuntimeError, match=message):
        F.grouped_mm(*change(a, b, offs)[:2], offs=change(a, b, offs)[2])
    meta = [None if t is None else t.to("meta") for t in change(a, b, offs)]
    with pytest.raises(CharacterizationError, match=message):
        _count(*meta)


def test_bias_and_out_dtype_rules_match_the_cpu_kernel():
    a, b, offs = _inputs("2d x 3d")
    for kw, message in (({"bias": torch.zeros(3, 12)}, "Bias not supported yet"),
                        ({"out_dtype": torch.bfloat16}, "output dtype must match")):
        with pytest.raises(RuntimeError, match=message):
            F.grouped_mm(a, b, offs=offs, **kw)
        meta_kw = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
        with pytest.raises(CharacterizationError, match=message):
            _count(a.to("meta"), b.to("meta"), offs.to("meta"), **meta_kw)
    # out_dtype equal to mat_a's is accepted, on CPU and on meta
    real_row, _, _, _ = _count(a, b, offs, out_dtype=torch.float32)
    meta_row, _, _, out = _count(a.to("meta"), b.to("meta"), offs.to("meta"), out_dtype=torch.float32)
    assert meta_row.macs == real_row.macs == 1536 and out.dtype == torch.float32


# --- a real transformers MoE model --------------------------------------------------------------

MOE = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
           num_experts=4, num_experts_per_tok=2, num_attention_heads=4, num_key_value_heads=2,
           head_dim=16, vocab_size=128, max_position_embeddings=64)
"""Qwen3-MoE shrunk: every layer sparse (the default ``decoder_sparse_step=1``, no ``mlp_only_layers``),
4 experts, top-2 routing."""


def _qwen3_moe(device="cpu"):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model("qwen3_moe", **MOE)
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config).eval(), config


def test_qwen3_moe_experts_are_counted_by_hand(monkeypatch):
    model, c = _qwen3_moe()
    B, S = 2, 8
    ids = torch.randint(0, c.vocab_size, (B, S), generator=torch.Generator().manual_seed(0))
    # transformers routes every one of the tokens x top_k rows to an expert: offs[-1] == T * k, the
    # case in which the formula (whole split dimension) is exact. Seen on the calls it makes.
    ends, groups = [], []
    original = F.grouped_mm

    def spy(a, b, *, offs=None, **kw):
        ends.append((a.shape[0], int(offs[-1])))
        groups.append(sum(1 for s, e in zip([0, *offs.tolist()[:-1]], offs.tolist()) if e > s))
        return original(a, b, offs=offs, **kw)

    monkeypatch.setattr(F, "grouped_mm", spy)
    with torch.no_grad():
        char = characterize_call(model, (), {"input_ids": ids}, hardware="a100")
    monkeypatch.undo()

    T, H, V, L = B * S, c.hidden_size, c.vocab_size, c.num_hidden_layers
    I, E, k = c.moe_intermediate_size, c.num_experts, c.num_experts_per_tok
    q, kv, hd, nh = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim, c.head_dim, c.num_attention_heads
    assert ends == [(T * k, T * k)] * (2 * L)
    # It does dispatch _grouped_mm on CPU float32 (torch 2.14 > 2.10: _can_use_grouped_mm is True),
    # two per layer: gate+up fused (gate_up_proj [E, 2I, H], passed transposed as [E, H, 2I]) and down.
    experts = [r for r in char.rows if r.op == GROUPED_MM]
    assert [r.module_path for r in experts] == [f"model.layers.{i}.mlp.experts" for i in range(L) for _ in (0, 1)]
    assert all(r.counted and r.category == "matmul" for r in experts)
    # gate+up: [T*k, H] x [E, H, 2I] -> T*k*H*2I = 32*64*64 = 131072; down: [T*k, I] x [E, I, H] ->
    # T*k*I*H = 32*32*64 = 65536. Weights read: those of the experts with rows (here the 32 rows reach
    # all 4 experts of every layer, as the offs seen say), 4 bytes an element.
    assert groups == [E] * (2 * L)
    assert [r.macs for r in experts] == [T * k * H * 2 * I, T * k * I * H] * L == [131072, 65536] * L
    assert [r.weight_bytes for r in experts] == [4 * g * w for g, w in zip(groups, [2 * I * H, I * H] * L)]
    assert GROUPED_MM not in char.uncounted
    # The whole model by hand, per layer: q, k, v, o projections; attention (B*nh*S*S*(hd + hd), the
    # full causal square); the router T*H*E; the experts. Then the LM head T*H*V.
    per_layer = (T * H * q + 2 * T * H * kv + T * q * H + B * nh * S * S * 2 * hd + T * H * E
                 + T * k * H * 2 * I + T * k * I * H)
    assert char.totals.conv_matmul_macs == char.totals.macs == L * per_layer + T * H * V == 958464

    # Without weights (meta tensors): the same MACs, the same expert rows (the bound min(E, T*k) = E
    # reads every expert, as the real routing did), the same parameters
    with torch.no_grad():
        meta = characterize_call(model, (), {"input_ids": ids}, hardware="a100", no_weights=True)
    assert meta.no_weights and meta.device == "meta"
    assert GROUPED_MM not in meta.uncounted
    row = lambda r: (r.module_path, r.macs, r.flops, r.bytes_read, r.bytes_written, r.weight_bytes)
    assert [row(r) for r in meta.rows if r.op == GROUPED_MM] == [row(r) for r in experts]
    assert (meta.totals.macs, meta.totals.conv_matmul_macs, meta.totals.params) == (
        char.totals.macs, char.totals.conv_matmul_macs, char.totals.params)


def test_moe_model_runs_under_fake_tensor_mode_with_the_rule():
    # A model built on meta run under FakeTensorMode (what tk does to run a meta model outside
    # counting) fails in its experts; with meta_kernels.WithoutData entered inside, it runs.
    from torch._subclasses.fake_tensor import FakeTensorMode

    model, c = _qwen3_moe("meta")
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    ids = mode.from_tensor(torch.zeros(1, 8, dtype=torch.long))
    with torch.no_grad(), mode:
        with pytest.raises(RuntimeError, match="BFloat16"):
            model(input_ids=ids)
        with WithoutData():
            out = model(input_ids=ids)
    assert list(out.logits.shape) == [1, 8, c.vocab_size]
