"""Characterization records: golden table, roll-up invariants, parameters, no-weights counting."""

from __future__ import annotations

import io
import os
import sys

import pytest
import torch
import torch.nn as nn

from turnkey_like.characterize import Characterization, characterize, characterize_call
from turnkey_like.characterize.roofline import BOUNDS
from turnkey_like.records import decode, encode
from turnkey_like.report.characterization import render_profile, summary_lines

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo import ZOO, build  # noqa: E402


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Tiny(nn.Module):
    """conv-bn-relu stem, a 1x1 conv called twice (shared), global pool, linear head."""

    def __init__(self):
        super().__init__()
        self.stem = Block()
        self.shared = nn.Conv2d(4, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = self.stem(x)
        x = self.shared(x)
        x = torch.relu(self.shared(x))
        return self.head(torch.flatten(self.pool(x), 1))


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.proj = nn.Linear(8, 10, bias=False)
        self.proj.weight = self.emb.weight  # tied: one 10x8 tensor

    def forward(self, ids):
        return self.proj(self.emb(ids))


class Gate(nn.Module):
    """A data-dependent branch (no tracer can capture it) and an op without a formula (det)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        y = self.proj(x)
        if x.sum() > 0:  # depends on values: FX, export(strict=False) and export(strict=True) all fail
            y = y * 2
        return torch.linalg.det(y)


@pytest.fixture(scope="module")
def gate_char():
    with torch.no_grad():
        return characterize(Gate().eval(), torch.ones(2, 4, 4), hardware="a100", trace=True)


@pytest.fixture(scope="module")
def tiny_char():
    torch.manual_seed(0)
    model = Tiny().eval()
    with torch.no_grad():
        return characterize(model, torch.randn(1, 3, 8, 8), hardware="a100", trace=True)


def render(char, **kw) -> str:
    from rich.console import Console

    console = Console(width=150, file=io.StringIO(), color_system=None, force_terminal=False)
    render_profile(char, console, **kw)
    return console.file.getvalue()


def test_golden_profile_table(tiny_char, golden):
    golden("characterize_tiny.txt", render(tiny_char, showshape=True, top=5))


def test_golden_profile_table_to_depth_1(tiny_char, golden):
    text = render(tiny_char, top=3, max_depth=1)
    golden("characterize_tiny_depth1.txt", text)
    assert "conv" not in text.split("Summary")[0].split()  # stem's children are hidden ...
    assert "6.91 k" in text  # ... and their MACs are inside stem's


def test_golden_profile_of_an_untraceable_model_with_an_uncounted_op(gate_char, golden):
    golden("characterize_untraceable.txt", render(gate_char, top=3))


def test_golden_summary_lines(tiny_char, gate_char, golden):
    golden("characterize_summary.txt", "\n".join(summary_lines(tiny_char) + [""] + summary_lines(gate_char)) + "\n")


def test_trace_none_says_why_in_one_line(gate_char):
    assert gate_char.trace.method == "none"
    assert [a.method for a in gate_char.trace.attempts] == [
        "fx.symbolic_trace", "torch.export(strict=False)", "torch.export(strict=True)"]
    (line,) = [ln for ln in summary_lines(gate_char) if ln.startswith("Trace:")]
    reason = gate_char.trace.failure_reason
    assert reason and "\n" not in reason and reason.startswith("torch.export(strict=True): ")
    assert line.startswith(f"Trace: none ({reason})")
    assert "not counted: aten._linalg_det.default x1" in line
    assert gate_char.uncounted == {"aten._linalg_det.default": 1}


def test_tiny_totals_hand_derived(tiny_char):
    t = tiny_char.totals
    # stem conv 3->4, 3x3 on 8x8 (pad 1): 4*8*8 outputs x 3*3*3 = 6912 MACs
    # shared 1x1 conv 4->4 on 8x8, called twice: 2 x 4*8*8*4 = 2048 MACs; head 4->2: 8 MACs
    assert t.conv_matmul_macs == 6912 + 2048 + 8
    # params: conv 108 + bn 8 + shared 16+4 + head 8+2 = 146 (fp32: 584 bytes)
    assert (t.params, t.param_bytes) == (146, 584)
    assert t.flops >= 2 * t.macs  # 1 MAC = 2 FLOPs, plus non-MAC FLOPs (bn, relu, pool)
    assert tiny_char.trace.method == "fx.symbolic_trace" and tiny_char.trace.failure_reason is None
    assert tiny_char.uncounted == {}


def check_invariants(char):
    """Children sum to parents (plus direct ops), the root and the rows sum to the totals."""
    rows, modules, t = char.rows, char.modules, char.totals
    for m in modules:
        kids = [c for c in modules if c.parent == m.path]
        direct = [r for r in rows if r.module_path == m.path]
        assert m.self_flops == sum(r.flops for r in direct)
        assert m.self_ops == len(direct)
        for col, self_col in (("flops", "self_flops"), ("macs", "self_macs"), ("ops", "self_ops"),
                              ("params", "self_params")):
            assert getattr(m, col) == getattr(m, self_col) + sum(getattr(c, col) for c in kids), (m.path, col)
        assert m.bytes_read + m.bytes_written == m.self_bytes + sum(c.bytes_read + c.bytes_written for c in kids)
        assert m.roofline_time_s == pytest.approx(
            sum(r.roofline_time_s for r in direct) + sum(c.roofline_time_s for c in kids))
        assert m.bound in BOUNDS
    root = modules[0]
    assert root.path == "" and root.parent is None
    assert (root.macs, root.flops, root.params) == (t.macs, t.flops, t.params)
    assert [r.index for r in rows] == list(range(len(rows)))
    assert sum(r.flops for r in rows) == t.flops
    assert sum(r.bytes_read for r in rows) == t.bytes_read
    assert sum(r.bytes_written for r in rows) == t.bytes_written
    assert sum(r.roofline_time_s for r in rows) == pytest.approx(t.roofline_time_s)
    if rows:
        for slices in (char.breakdown.by_category, char.breakdown.by_bound):
            assert sum(e.share for e in slices.values()) == pytest.approx(1.0)
            assert sum(e.ops for e in slices.values()) == len(rows)
            assert sum(e.flops for e in slices.values()) == t.flops


def test_children_sum_to_parents_and_columns_to_totals(tiny_char):
    check_invariants(tiny_char)
    # the shared 1x1 conv ran twice: both calls' rows are under one module row
    by_path = {m.path: m for m in tiny_char.modules}
    assert by_path["shared"].macs == 2048 and by_path["shared"].ops == 2


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_keep_invariants_and_hand_counted_macs(name):
    model, args, kwargs, macs = build(name)
    with torch.no_grad():
        char = characterize_call(model, args, kwargs, hardware="xeon8480", trace=False)
    check_invariants(char)
    assert char.totals.conv_matmul_macs == macs  # hand-derived in tests/zoo.py
    # unique parameters, tied/shared counted once
    assert char.totals.params == sum(p.numel() for p in model.parameters())
    if name != "lazy_mlp":  # a lazy module's shapes exist only after a real call
        model2, args2, kwargs2, _ = build(name)
        with torch.no_grad():
            meta = characterize_call(model2, args2, kwargs2, hardware="xeon8480", trace=False, no_weights=True)
        assert meta.no_weights
        assert (meta.totals.conv_matmul_macs, meta.totals.params) == (macs, char.totals.params)
        if name not in FUSED_ON_CPU_ONLY:
            assert meta.totals.flops == char.totals.flops


# On meta tensors SDPA and LSTM dispatch to their decompositions (matmul, scale, mask, softmax /
# gate ops) instead of the fused CPU kernels: the MACs agree, the non-MAC FLOPs of the pieces differ.
FUSED_ON_CPU_ONLY = {"causal_sdpa", "gqa_sdpa", "mha", "lstm"}


def test_lazy_model_without_weights_is_a_clear_error():
    from turnkey_like.errors import CharacterizationError

    model, args, kwargs, _ = build("lazy_mlp")
    with pytest.raises(CharacterizationError) as err:
        characterize_call(model, args, kwargs, hardware="a100", no_weights=True)
    assert "lazy" in str(err.value).lower()


def test_every_row_has_roofline_fields(tiny_char):
    ridge = tiny_char.ridge_point
    for r in tiny_char.rows:
        if r.flops == 0:
            assert r.bound == "no compute"
        elif r.arithmetic_intensity >= ridge:
            assert r.bound == "compute-bound"
        else:
            assert r.bound == "memory-bound"
        assert r.roofline_time_s > 0


def test_fusion_on_real_model_groups_conv_bn_relu(tiny_char):
    groups = tiny_char.fusion.groups
    stem = [g for g in groups if g.module_path == "stem.conv"]
    assert len(stem) == 1
    cats = [tiny_char.rows[i].category for i in stem[0].ops]
    assert cats == ["conv", "norm", "activation"]
    # conv out and bn out are 1x4x8x8 fp32 = 1024 bytes each, written and read once: 4096 bytes removed
    assert stem[0].internal_bytes == 4096
    assert tiny_char.fusion.summary.removed_bytes >= 4096


def test_round_trip_through_the_codec(tiny_char):
    again = decode(encode(tiny_char), Characterization)
    assert again == tiny_char
    assert render(again) == render(tiny_char)


def test_summary_lines(tiny_char):
    lines = summary_lines(tiny_char)
    text = "\n".join(lines)
    assert "1 MAC = 2 FLOPs" in text
    assert "fx.symbolic_trace" in text
    assert "NVIDIA A100" in text
    assert tiny_char.totals.bound in text
    assert 3 <= len(lines) <= 5


def test_tied_weights_count_once():
    model = TiedLM().eval()
    with torch.no_grad():
        char = characterize(model, torch.tensor([[1, 2, 3, 4, 5]]), hardware="h100")
    # one 10x8 matrix shared by embedding and projection: 80 params, 320 bytes
    assert (char.totals.params, char.totals.param_bytes) == (80, 320)
    by_path = {m.path: m for m in char.modules}
    assert by_path["emb"].params == 80 and by_path["proj"].params == 0
    # projection 5 tokens x 8 -> 10: 400 MACs
    assert char.totals.conv_matmul_macs == 400


def test_frozen_params_are_counted():
    model = Tiny().eval()
    for p in model.stem.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        char = characterize(model, torch.randn(1, 3, 8, 8), hardware="a100", trace=False)
    assert char.totals.params == 146
    assert char.trace.method == "not traced" and char.trace.attempts == []
    assert summary_lines(char)[-1] == "Trace: not traced"


class Spy(nn.Module):
    """Notes, on every call, whether torch.export or FX is tracing it (a trace calls forward too)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        from torch.fx._symbolic_trace import is_fx_tracing

        self.calls.append((torch.compiler.is_exporting(), is_fx_tracing()))
        return torch.relu(self.lin(x))


def test_characterize_does_not_trace_unless_asked():
    model = Spy().eval()
    with torch.no_grad():
        char = characterize_call(model, (torch.randn(2, 4),), {}, hardware="a100")  # the pipeline's call
        again = characterize(model, torch.randn(2, 4), hardware="a100")  # the Python API's default
    assert model.calls == [(False, False), (False, False)]  # one counted call each, no tracer
    for c in (char, again):
        assert c.trace.method == "not traced" and c.trace.attempts == [] and c.trace_duration_s == 0.0
        assert c.rows[1].producers == [c.rows[0].index]  # the graph is there without a trace
    with torch.no_grad():
        traced = characterize(model, torch.randn(2, 4), hardware="a100", trace=True)
    assert (False, True) in model.calls[2:]  # fx.symbolic_trace ran the forward on proxies
    assert traced.trace.method == "fx.symbolic_trace" and traced.trace_duration_s > 0
    assert traced.totals == again.totals  # tracing adds the trace record, never changes counts


def test_summary_lines_show_the_build_trace_when_characterization_did_not_trace(tiny_char):
    from turnkey_like.tracing import trace_model

    model = Tiny().eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        plain = characterize(model, x, hardware="a100")
        build_trace = trace_model(model, (x,), methods=("torch.export(strict=False)",)).summary()
    lines = summary_lines(plain, build_trace=build_trace)
    assert lines[-1] == f"Trace: torch.export(strict=False) ({build_trace.node_count} nodes) (ONNX build)"
    assert summary_lines(plain)[-1] == "Trace: not traced"
    # a characterization that traced keeps its own trace
    assert summary_lines(tiny_char, build_trace=build_trace) == summary_lines(tiny_char)


def test_tk_profile_traces_only_with_trace_flag(tmp_path):
    from conftest import EXAMPLES, run_tk

    script = str(EXAMPLES / "hello_world.py")
    plain = run_tk("profile", script, "--hardware", "a100", "--cache-dir", str(tmp_path / "a"))
    assert plain.returncode == 0, plain.stderr
    assert "trace: not traced" in plain.stdout
    traced = run_tk("profile", script, "--trace", "--hardware", "a100", "--cache-dir", str(tmp_path / "b"))
    assert traced.returncode == 0, traced.stderr
    assert "trace: fx.symbolic_trace (" in traced.stdout  # SmallModel: x -> fc -> output, traced by FX


def test_no_weights_counts_the_same_without_touching_weights(tiny_char):
    model = Tiny().eval()
    before = {n: p for n, p in model.named_parameters()}
    with torch.no_grad():
        char = characterize(model, torch.randn(1, 3, 8, 8), hardware="a100", no_weights=True)
    assert char.no_weights and char.device == "meta"
    for key in ("macs", "flops", "bytes_read", "weight_bytes", "params", "param_bytes"):
        assert getattr(char.totals, key) == getattr(tiny_char.totals, key), key
    # Written bytes may differ by batch norm's saved statistics: the CPU eval kernel returns empty
    # save_mean/save_invstd while the meta kernel returns [C]-shaped ones (2 x 4 x 4 bytes = 32 here).
    assert 0 <= char.totals.bytes_written - tiny_char.totals.bytes_written <= 32
    # the real parameters are back in place, same objects, not meta
    after = dict(model.named_parameters())
    assert all(after[n] is before[n] and not after[n].is_meta for n in before)


def test_meta_built_torchvision_model_counts_like_real():
    import torchvision

    x = torch.randn(1, 3, 64, 64)
    real = torchvision.models.resnet18(weights=None).eval()
    with torch.device("meta"):
        meta = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        a = characterize_call(real, (x,), {}, hardware="a100", trace=False)
        b = characterize_call(meta, (x,), {}, hardware="a100", trace=False)
    assert b.no_weights and not a.no_weights
    assert (a.totals.macs, a.totals.flops, a.totals.params) == (b.totals.macs, b.totals.flops, b.totals.params)
    assert a.totals.bytes_read == b.totals.bytes_read
    # meta batch norm kernels return [C] saved statistics where CPU eval returns empty ones (see
    # above): at most 2 x 4 bytes per BN channel more on meta
    bn_channels = sum(m.num_features for m in real.modules() if isinstance(m, nn.BatchNorm2d))
    assert 0 <= b.totals.bytes_written - a.totals.bytes_written <= 8 * bn_channels


def test_unknown_hardware_is_an_input_error():
    from turnkey_like.errors import InputError

    with pytest.raises(InputError):
        characterize(Tiny(), torch.randn(1, 3, 8, 8), hardware="nope")


def test_failing_model_raises_characterization_error():
    from turnkey_like.errors import CharacterizationError

    with pytest.raises(CharacterizationError) as err:
        characterize(Tiny(), torch.randn(1, 5, 8, 8), hardware="a100")  # 5 channels, conv wants 3
    assert "Tiny" in str(err.value)


@pytest.mark.slow
def test_llama_7b_on_meta_counts_every_parameter_and_mac():
    # Its wall time and peak memory are figures, printed by benchmarks/characterize_speed.py.
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, intermediate_size=11008, vocab_size=32000)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        c = characterize(model, input_ids=torch.randint(0, 32000, (1, 128)), hardware="a100")
    assert c.no_weights and c.device == "meta"
    assert c.uncounted == {}
    assert c.trace.method == "not traced" and c.trace_duration_s == 0.0  # counting needs no trace
    # Llama-2-7B: 32 x (4 x 4096^2 attention + 3 x 4096 x 11008 MLP + 2 x 4096 norms) + 2 x 32000 x 4096
    # (embedding, lm_head) + 4096 final norm = 6,738,415,616 parameters
    assert c.totals.params == 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 32000 * 4096 + 4096
    # MACs for 128 tokens: 128 x (32 x (4*4096^2 + 3*4096*11008) + 32000*4096) weights
    # + attention 32 layers x 2 x (128 x 128 x 4096) (QK^T and AV, full causal square as the math backend)
    per_token = 32 * (4 * 4096**2 + 3 * 4096 * 11008) + 32000 * 4096
    assert c.totals.conv_matmul_macs == 128 * per_token + 32 * 2 * 128 * 128 * 4096
    check_invariants(c)


def test_decoder_on_meta_counts_like_real_weights():
    """transformers' mask utilities read boolean values out of tensors (``padding_mask.all()``, the
    packed-sequence check on position ids); on meta those reads take the plain case, so a decoder
    built on meta (as multi-billion-parameter defaults are) counts exactly what real weights count."""
    import transformers

    config = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)
    torch.manual_seed(0)
    real = transformers.LlamaModel(config).eval()
    with torch.device("meta"):
        meta = transformers.LlamaModel(config).eval()
    ids = torch.randint(0, 1000, (1, 16))
    on_real = characterize_call(real, (), {"input_ids": ids}, hardware="a100")
    on_meta = characterize_call(meta, (), {"input_ids": ids.to("meta")}, hardware="a100", no_weights=True)
    assert on_meta.totals.macs == on_real.totals.macs > 0
    assert on_meta.totals.params == on_real.totals.params
    # attention itself: on CPU torch runs scaled_dot_product_attention as one flash kernel, on meta as
    # its math decomposition (bmm, scale, causal mask, softmax), so the softmax/mask FLOPs differ a little
    real_ops = {r.op for r in on_real.rows}
    assert "aten._scaled_dot_product_flash_attention_for_cpu.default" in real_ops
    assert abs(on_meta.totals.flops - on_real.totals.flops) < 0.01 * on_real.totals.flops
