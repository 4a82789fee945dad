"""tk's MACs next to FlopCounterMode's, fvcore's and DeepSpeed's, with the cause of every difference.

For each case (a real model built offline, or one op family in a small module) the script counts one
call under ``torch.no_grad()`` (inference, as ``tk profile`` runs it) with:

- **tk**: ``turnkey_like.characterize(model, *args, hardware="a100").totals.macs``;
- **FlopCounterMode** (``torch.utils.flop_counter``): it reports FLOPs with 1 MAC = 2 FLOPs for every
  op it knows (matmul family, convolution, SDPA), so its MACs are ``get_total_flops() / 2``; ops without
  a formula (and without a CompositeImplicitAutograd decomposition) count 0;
- **fvcore** (``fvcore.nn.FlopCountAnalysis``): its "flops" are MACs for the matmul family and
  convolution (its docstring: "We count one fused multiply-add as one flop"), but its total also adds
  per-element estimates for batch/group/layer/instance norm, upsampling and adaptive average pooling
  (``fvcore/nn/jit_handles.py``), which are not MACs; the table shows ``.total()`` as a user sees it.
  It counts from a ``torch.jit.trace`` graph and skips ops it has no handle for;
- **DeepSpeed** (``deepspeed.profiling.flops_profiler.FlopsProfiler``): ``get_total_macs()``. It patches
  ``torch.nn.functional`` and ``torch.matmul``-like functions in Python and hooks RNN modules, so it
  sees only calls made through those names.

The per-cause lines are derived, not written by hand: FlopCounterMode is compared op by op with tk's
op rows (both count ATen ops); fvcore and DeepSpeed per module (the MACs each charges to a module's own
ops, not its children's, against tk's ``ModuleRow.self_macs``), grouped by module class and labelled with
the ATen ops tk counted there. Where a case has a hand count (or torchvision's published ``_ops``) it is
printed beside tk's.

fvcore and DeepSpeed are not dependencies of tk; install them for this script only (a missing tool is
named and skipped)::

    pip install fvcore deepspeed        # fvcore 0.1.5.post20221221, deepspeed 0.19.8 here (CPU, no CUDA)

Usage::

    python benchmarks/crosscheck.py                         # every case (about 35 s here, 2 shared CPUs)
    python benchmarks/crosscheck.py --cases lstm,mha_fast   # some
    python benchmarks/crosscheck.py --markdown              # also the table as Markdown
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import io
import logging
import os
import sys
import time
import warnings
from collections import Counter, defaultdict
from typing import Callable, NamedTuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import turnkey_like  # noqa: E402

TOOLS = ("FlopCounterMode", "fvcore", "DeepSpeed")
SEQ, BATCH = 128, 2
"""Text models run ``input_ids`` of shape [BATCH, SEQ]."""


# ---------------------------------------------------------------------------------------------
# cases


class Case(NamedTuple):
    """One model call to count: its name, a builder returning ``(model, args)``, the input it runs,
    and an independent count (hand-derived MACs, or a published figure) with where it comes from."""

    name: str
    build: Callable[[], tuple[nn.Module, tuple]]
    input: str
    hand: int | None = None
    hand_source: str = ""


def _torchvision(name: str) -> Callable:
    def build():
        import torchvision

        return torchvision.models.get_model(name, weights=None).eval(), (torch.randn(1, 3, 224, 224),)

    return build


def _transformers(kind: str, attn: str = "sdpa", experts: str | None = None, **config) -> Callable:
    """A builder for a transformers base model (no LM head) from ``kind``'s default config updated
    with ``config``, with attention implementation ``attn``; ``use_cache=False`` and tuple outputs so
    that fvcore's JIT trace accepts the outputs."""

    def build():
        import transformers

        cfg = transformers.AutoConfig.for_model(kind, use_cache=False, return_dict=False, **config)
        extra = {"experts_implementation": experts} if experts else {}
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(cfg, attn_implementation=attn, **extra).eval()
        return model, (torch.randint(0, cfg.vocab_size, (BATCH, SEQ)),)

    return build


def transformer_macs(layers: int, tokens: int, batch: int, seq: int, hidden: int, q_out: int, kv_out: int,
                     mlp: int, extra_per_layer: int = 0) -> int:
    """MACs of ``layers`` transformer blocks over ``tokens`` = batch x seq tokens, by hand.

    Per block: the Q and output projections ``tokens * hidden * q_out`` each, K and V ``tokens * hidden *
    kv_out`` each, scores Q.K^T and the weighted sum of V ``2 * batch * seq^2 * q_out`` (query heads x
    head dim = q_out; grouped-query K/V heads are broadcast), the MLP ``mlp`` (MACs per token), and
    ``extra_per_layer``. Source: Vaswani et al. 2017, Table 1 and eq. 1; Kaplan et al. 2020, Table 1."""
    proj = tokens * hidden * (2 * q_out + 2 * kv_out)
    attn = 2 * batch * seq * seq * q_out
    return layers * (proj + attn + tokens * mlp + extra_per_layer)


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` called as self-attention (query = key = value, ``need_weights=False``);
    ``fast`` picks the fused fast path (``aten._native_multi_head_attention``) or the Python one."""

    def __init__(self, embed: int, heads: int, fast: bool):
        super().__init__()
        self.mha = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.fast = fast

    def forward(self, x):
        before = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(self.fast)
        try:
            return self.mha(x, x, x, need_weights=False)[0]
        finally:
            torch.backends.mha.set_fastpath_enabled(before)


class Fn(nn.Module):
    """A module whose forward is ``fn(*inputs)``: one op family on its own (no parameters)."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def _qkv(heads_kv: int = 8, b: int = 2, h: int = 8, lq: int = 128, e: int = 64):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, h, lq, e, generator=g), torch.randn(b, heads_kv, lq, e, generator=g),
            torch.randn(b, heads_kv, lq, e, generator=g))


def _grouped_mm_case():
    # 512 rows routed to 8 experts (64 each), [512, 256] x [8, 256, 384]
    a, b = torch.randn(512, 256), torch.randn(8, 256, 384)
    offs = torch.arange(64, 513, 64, dtype=torch.int32)
    return Fn(lambda a, b, offs: torch.nn.functional.grouped_mm(a, b, offs=offs)), (a, b, offs)


def _norms():
    return nn.Sequential(nn.BatchNorm2d(64), nn.GroupNorm(8, 64), nn.InstanceNorm2d(64, affine=True),
                         nn.LayerNorm([56, 56])).eval(), (torch.randn(1, 64, 56, 56),)


SDPA_HAND = 2 * 2 * 8 * 128 * 128 * 64
"""2*B*H*L*S*E for q, k, v ``[2, 8, 128, 64]``: Q.K^T and scores.V, B*H*L*S*E MACs each."""

MIXTRAL_HAND = transformer_macs(2, BATCH * SEQ, BATCH, SEQ, 256, 256, 128, 2 * 3 * 256 * 512, BATCH * SEQ * 256 * 8)
"""Mixtral, 2 layers, hidden 256, 8/4 heads (head dim 32), top-2 of 8 experts of intermediate 512: per token the
router (256 x 8) and two experts (gate, up, down: 3 x 256 x 512 each)."""

CASES = [
    Case("resnet18", _torchvision("resnet18"), "1x3x224²", 1_814_000_000, "torchvision _ops"),
    Case("mobilenet_v3_small", _torchvision("mobilenet_v3_small"), "1x3x224²", 57_000_000,
         "torchvision _ops"),
    Case("vit_b_16", _torchvision("vit_b_16"), "1x3x224²", 17_564_000_000, "torchvision _ops"),
    Case("bert", _transformers("bert", num_hidden_layers=2), f"{BATCH}x{SEQ}",
         transformer_macs(2, BATCH * SEQ, BATCH, SEQ, 768, 768, 768, 2 * 768 * 3072) + BATCH * 768 * 768,
         "12·T·H² + 2·B·L²·H per layer + pooler B·H²"),
    Case("gpt2", _transformers("gpt2", n_layer=2), f"{BATCH}x{SEQ}",
         transformer_macs(2, BATCH * SEQ, BATCH, SEQ, 768, 768, 768, 2 * 768 * 3072),
         "12·T·H² + 2·B·L²·H per layer"),
    Case("gpt2_eager", _transformers("gpt2", attn="eager", n_layer=2), f"{BATCH}x{SEQ}",
         transformer_macs(2, BATCH * SEQ, BATCH, SEQ, 768, 768, 768, 2 * 768 * 3072), "as gpt2"),
    Case("llama", _transformers("llama", num_hidden_layers=2, hidden_size=1024, intermediate_size=2816,
                                num_attention_heads=16, num_key_value_heads=4), f"{BATCH}x{SEQ}",
         transformer_macs(2, BATCH * SEQ, BATCH, SEQ, 1024, 1024, 256, 3 * 1024 * 2816),
         "GQA 16/4 heads: q,o T·H², k,v T·H·256, MLP 3·T·H·F"),
    Case("mixtral", _transformers("mixtral", num_hidden_layers=2, hidden_size=256, intermediate_size=512,
                                  num_attention_heads=8, num_key_value_heads=4, num_local_experts=8,
                                  num_experts_per_tok=2, vocab_size=1000), f"{BATCH}x{SEQ}",
         MIXTRAL_HAND, "top-2 of 8 experts: 2·3·T·H·F + router T·H·8"),
    Case("mixtral_eager", _transformers("mixtral", experts="eager", num_hidden_layers=2, hidden_size=256,
                                        intermediate_size=512, num_attention_heads=8, num_key_value_heads=4,
                                        num_local_experts=8, num_experts_per_tok=2, vocab_size=1000),
         f"{BATCH}x{SEQ}", MIXTRAL_HAND, "as mixtral"),
    Case("lstm", lambda: (nn.LSTM(256, 512, num_layers=2, batch_first=True).eval(), (torch.randn(4, 32, 256),)),
         "4x32x256", 4 * 32 * (4 * 512 * (256 + 512) + 4 * 512 * (512 + 512)), "T·B·Σ 4·H·(I+H)"),
    Case("gru", lambda: (nn.GRU(256, 512, batch_first=True).eval(), (torch.randn(4, 32, 256),)),
         "4x32x256", 4 * 32 * 3 * 512 * (256 + 512), "T·B·3·H·(I+H)"),
    Case("mha_fast", lambda: (SelfAttention(512, 8, fast=True).eval(), (torch.randn(2, 64, 512),)), "2x64x512",
         4 * 2 * 64 * 512 * 512 + 2 * 2 * 64 * 64 * 512, "4·B·L·E² + 2·B·L²·E"),
    Case("mha_slow", lambda: (SelfAttention(512, 8, fast=False).eval(), (torch.randn(2, 64, 512),)), "2x64x512",
         4 * 2 * 64 * 512 * 512 + 2 * 2 * 64 * 64 * 512, "as mha_fast"),
    Case("encoder_layer_fast",
         lambda: (nn.TransformerEncoderLayer(512, 8, 2048, batch_first=True).eval(), (torch.randn(2, 64, 512),)),
         "2x64x512", 4 * 2 * 64 * 512 * 512 + 2 * 2 * 64 * 64 * 512 + 2 * 2 * 64 * 512 * 2048,
         "MHA + 2·B·L·E·F"),
    Case("sdpa", lambda: (Fn(lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v)), _qkv()),
         "q,k,v 2x8x128x64", SDPA_HAND, "2·B·H·L·S·E"),
    # the function object taken before counting starts, as ``from torch.nn.functional import
    # scaled_dot_product_attention`` at import time does: DeepSpeed patches the name, not the function
    Case("sdpa_imported", lambda: (Fn(torch.nn.functional.scaled_dot_product_attention), _qkv()),
         "q,k,v 2x8x128x64", SDPA_HAND, "as sdpa"),
    Case("sdpa_gqa", lambda: (Fn(lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
        q, k, v, enable_gqa=True)), _qkv(heads_kv=2)), "q 2x8x128x64, k,v 2x2x128x64", SDPA_HAND,
         "by query heads"),
    Case("matmul_attention", lambda: (Fn(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), -1) @ v), _qkv()),
         "q,k,v 2x8x128x64", SDPA_HAND, "2·B·H·L·S·E"),
    Case("einsum_attention", lambda: (Fn(lambda q, k, v: torch.einsum(
        "bhqk,bhkd->bhqd", torch.softmax(torch.einsum("bhqd,bhkd->bhqk", q, k), -1), v)), _qkv()),
         "q,k,v 2x8x128x64", SDPA_HAND, "2·B·H·L·S·E"),
    Case("matmul_broadcast",
         lambda: (Fn(lambda a, b: torch.matmul(a, b)), (torch.randn(128, 64), torch.randn(8, 64, 32))),
         "128x64 @ 8x64x32", 8 * 128 * 64 * 32, "8·128·64·32"),
    Case("grouped_mm", _grouped_mm_case, "512x256 @ 8x256x384", 512 * 256 * 384, "M·K·N"),
    Case("conv_depthwise", lambda: (nn.Conv2d(64, 64, 3, padding=1, groups=64).eval(), (torch.randn(1, 64, 56, 56),)),
         "1x64x56²", 56 * 56 * 64 * 9, "H·W·C·k²"),
    Case("conv_groups4", lambda: (nn.Conv2d(64, 128, 3, padding=1, groups=4).eval(), (torch.randn(1, 64, 56, 56),)),
         "1x64x56²", 56 * 56 * 128 * 16 * 9, "H·W·Cout·(Cin/g)·k²"),
    Case("conv_transpose", lambda: (nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1).eval(),
                                    (torch.randn(1, 64, 28, 28),)), "1x64x28²", 28 * 28 * 64 * 32 * 16,
         "Hin·Win·Cin·Cout·k²"),
    Case("bilinear", lambda: (nn.Bilinear(64, 32, 16).eval(), (torch.randn(8, 64), torch.randn(8, 32))),
         "8x64, 8x32 -> 8x16", 8 * 16 * 64 * 32, "B·O·I1·I2"),
    Case("cdist", lambda: (Fn(lambda a, b: torch.cdist(a, b)), (torch.randn(2, 256, 64), torch.randn(2, 512, 64))),
         "2x256x64, 2x512x64", 2 * 256 * 512 * 64, "B·P·R·M, the product of ATen's mm form"),
    Case("embedding", lambda: (nn.Embedding(30522, 768), (torch.randint(0, 30522, (BATCH, SEQ)),)),
         f"{BATCH}x{SEQ}", 0, "a gather"),
    Case("norms", _norms, "1x64x56²", 0, "BN, GN, IN, LN: no MAC"),
    Case("upsample", lambda: (Fn(lambda x: torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
                                 + torch.nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear")),
                              (torch.randn(1, 64, 56, 56),)), "1x64x56² x2", 0, "no MAC"),
]


# ---------------------------------------------------------------------------------------------
# counting


class ToolCount(NamedTuple):
    """One tool's count of one call. ``macs`` is ``None`` when the tool failed (``error`` says why);
    ``by_op``: MACs per ATen op (FlopCounterMode); ``by_module``: MACs each module's own ops got
    (fvcore, DeepSpeed); ``ops_in``: fvcore's op names per module; ``skipped``: ops the tool saw but
    could not count, with their call counts."""

    macs: int | None
    by_op: dict[str, int] = {}
    by_module: dict[str, int] = {}
    ops_in: dict[str, Counter] = {}
    skipped: dict[str, int] = {}
    error: str | None = None


def _packet(op: str) -> str:
    """``aten.mm.default`` -> ``aten.mm`` (the op, without its overload)."""
    return op.rsplit(".", 1)[0] if op.count(".") >= 2 else op


def count_tk(model, args):
    """tk's Characterization of ``model(*args)`` (on the a100 profile)."""
    return turnkey_like.characterize(model, *args, hardware="a100")


def count_flop_counter(model, args) -> ToolCount:
    """``torch.utils.flop_counter.FlopCounterMode``: total FLOPs / 2 and FLOPs / 2 per op."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as mode:
        model(*args)
    by_op = {str(op): flops // 2 for op, flops in mode.get_flop_counts().get("Global", {}).items()}
    return ToolCount(mode.get_total_flops() // 2, by_op=by_op)


def _self_counts(model: nn.Module, inclusive: dict[str, Counter]) -> dict[str, Counter]:
    """Per module, its own part of ``inclusive`` (a Counter per module path, children included):
    the module's counter minus its children's."""
    own = {}
    for path, module in model.named_modules():
        mine = Counter(inclusive.get(path, Counter()))
        for child, _ in module.named_children():
            mine.subtract(inclusive.get(f"{path}.{child}" if path else child, Counter()))
        own[path] = +mine
    return own


def count_fvcore(model, args) -> ToolCount:
    """``fvcore.nn.FlopCountAnalysis``: ``.total()``, each module's own count and ops, the ops it skipped."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, args)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    total = analysis.total()
    inclusive = {path: Counter(ops) for path, ops in analysis.by_module_and_operator().items()}
    own = _self_counts(model, inclusive)
    return ToolCount(int(total), by_module={p: int(sum(c.values())) for p, c in own.items()}, ops_in=own,
                     skipped=dict(analysis.unsupported_ops()))


def count_deepspeed(model, args) -> ToolCount:
    """DeepSpeed's ``FlopsProfiler``: ``get_total_macs()`` and each module's own ``__macs__``; the
    FLOPs its RNN hooks add without MACs are listed in ``skipped`` as ``<class> FLOPs``."""
    from deepspeed.profiling.flops_profiler import FlopsProfiler

    prof = FlopsProfiler(model)
    prof.start_profile()
    try:
        model(*args)
        total = prof.get_total_macs()
        own = {path: int(m.__macs__) for path, m in model.named_modules()}
        rnn_flops = {f"{type(m).__name__} FLOPs (no MACs)": int(m.__flops__) for _, m in model.named_modules()
                     if isinstance(m, (nn.RNNBase, nn.RNNCellBase)) and m.__flops__}
    finally:
        prof.end_profile()
    return ToolCount(int(total), by_module=own, skipped=rnn_flops)


COUNTERS = {"FlopCounterMode": count_flop_counter, "fvcore": count_fvcore, "DeepSpeed": count_deepspeed}
INSTALL = {"fvcore": "pip install fvcore", "DeepSpeed": "pip install deepspeed"}
MODULES = {"FlopCounterMode": "torch", "fvcore": "fvcore", "DeepSpeed": "deepspeed"}


def available(tool: str) -> str | None:
    """The installed version of ``tool``, or ``None`` when it is missing (or does not import)."""
    try:
        with _quiet():
            __import__(MODULES[tool])
        return importlib.metadata.version(MODULES[tool])
    except Exception:  # noqa: BLE001 - a tool that does not import is as good as missing
        return None


@contextlib.contextmanager
def _quiet():
    """Silences the tools' warnings, log lines and prints (DeepSpeed logs its accelerator on import)."""
    logging.disable(logging.WARNING)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


# ---------------------------------------------------------------------------------------------
# causes


def _si(n: int | None) -> str:
    """A MAC count in G/M/k with 4 significant digits (``-`` for None)."""
    if n is None:
        return "-"
    for scale, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= scale:
            return f"{n / scale:.4g}{unit}"
    return str(n)


def _delta(tool: int | None, ref: int) -> str:
    """``tool`` relative to ``ref`` in %, ``=`` when equal."""
    if tool is None:
        return "n/a"
    if tool == ref:
        return "="
    if not ref:
        return f"+{_si(tool)}"
    rel = (tool - ref) / ref * 100
    return f"{rel:+.3f}%" if abs(rel) < 0.01 else f"{rel:+.2f}%"


def _pair(tk: int, tool: int) -> str:
    """``tk X, tool Y``, exact (with thousands separators) when the rounded figures would look equal."""
    if _si(tk) == _si(tool):
        return f"tk {tk:,}, tool {tool:,}"
    return f"tk {_si(tk)}, tool {_si(tool)}"


def op_causes(char, count: ToolCount) -> list[str]:
    """Ops where a per-op tool (FlopCounterMode) and tk disagree: ``op: tk X, tool Y``, largest first."""
    tk_ops: Counter = Counter()
    for row in char.rows:
        if row.macs:
            tk_ops[_packet(row.op)] += row.macs
    diffs = [(op, tk_ops.get(op, 0), count.by_op.get(op, 0)) for op in set(tk_ops) | set(count.by_op)]
    diffs = sorted((d for d in diffs if d[1] != d[2]), key=lambda d: -abs(d[2] - d[1]))
    return [f"{op}: {_pair(tk, tool)}" for op, tk, tool in diffs]


def module_causes(model, char, count: ToolCount) -> list[str]:
    """Module classes whose own ops a per-module tool (fvcore, DeepSpeed) counts differently from tk:
    ``Class xN [tk's ops there]: tk X, tool Y (the tool's ops there)``, largest difference first."""
    tk_own = {m.path: m.self_macs for m in char.modules}
    cls = {m.path: m.class_name for m in char.modules} | {p: type(m).__name__ for p, m in model.named_modules()}
    tk_ops: dict[str, set] = defaultdict(set)
    for row in char.rows:
        if row.counted and (row.macs or row.flops):
            tk_ops[row.module_path].add(_packet(row.op).removeprefix("aten."))
    groups: dict[str, list] = defaultdict(lambda: [0, 0, 0, set(), Counter()])
    for path in set(tk_own) | set(count.by_module):
        tk, tool = tk_own.get(path, 0), count.by_module.get(path, 0)
        if tk == tool:
            continue
        g = groups[cls.get(path, "?")]
        g[0] += 1
        g[1] += tk
        g[2] += tool
        g[3] |= tk_ops.get(path, set())
        g[4] += count.ops_in.get(path, Counter())
    out = []
    for name, (n, tk, tool, ops, theirs) in sorted(groups.items(), key=lambda kv: -abs(kv[1][2] - kv[1][1])):
        mine = ", ".join(sorted(ops)) or "no op"
        their = f" ({', '.join(sorted(theirs))})" if theirs else ""
        out.append(f"{name} x{n} [{mine}]: {_pair(tk, tool)}{their}")
    return out


MAC_WORDS = ("mm", "conv", "attention", "linear", "matmul", "einsum", "lstm", "gru", "rnn", "multi_head",
             "transformer", "baddbmm")
"""Skipped ops worth naming: those whose name says they multiply-accumulate (fvcore also skips element-wise
ops such as ``aten::add`` and ``aten::softmax``, which have no MACs)."""


def causes(model, char, tool: str, count: ToolCount) -> list[str]:
    """Every derived cause of the difference between ``tool``'s count and tk's (empty when equal)."""
    if count.macs is None or count.macs == char.totals.macs and not count.skipped:
        return []
    lines = op_causes(char, count) if tool == "FlopCounterMode" else module_causes(model, char, count)
    skipped = {op: n for op, n in count.skipped.items() if "FLOPs" in op or any(w in op for w in MAC_WORDS)}
    if skipped:
        lines.append("skipped: " + ", ".join(f"{op} x{n}" if "FLOPs" not in op else f"{op} {_si(n)}"
                                              for op, n in skipped.items()))
    return lines


# ---------------------------------------------------------------------------------------------
# running and printing


class Result(NamedTuple):
    """One case counted by tk and the other tools: tk's Characterization, each tool's ToolCount and the
    causes of its difference from tk (:func:`causes`), seconds taken."""

    case: Case
    char: object
    counts: dict[str, ToolCount]
    causes: dict[str, list[str]]
    seconds: float


def run_case(case: Case, tools: list[str]) -> Result:
    """Builds ``case`` and counts it with tk and each of ``tools``; a tool that fails gets its error."""
    start = time.perf_counter()
    model, args = case.build()
    counts = {}
    with torch.no_grad(), _quiet():
        char = count_tk(model, args)
        for tool in tools:
            try:
                counts[tool] = COUNTERS[tool](model, args)
            except Exception as exc:  # noqa: BLE001 - a tool that cannot count a model is a finding
                counts[tool] = ToolCount(None, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
    why = {tool: causes(model, char, tool, count) for tool, count in counts.items()}
    return Result(case, char, counts, why, time.perf_counter() - start)


def print_result(r: Result, tools: list[str]) -> None:
    """The case's row and, under it, the causes of each tool's difference."""
    tk = r.char.totals.macs
    hand = f"{_si(r.case.hand)} {_delta(tk, r.case.hand) if r.case.hand is not None else ''}"
    cells = "".join(f" {_si(r.counts[t].macs):>10} {_delta(r.counts[t].macs, tk):>9}" for t in tools)
    print(f"{r.case.name:<19} {_si(tk):>10} {hand:>18}{cells}  {r.seconds:5.1f}s", flush=True)
    if r.char.uncounted:
        print(f"    tk uncounted: {dict(r.char.uncounted)}")
    for t in tools:
        if r.counts[t].error:
            print(f"    {t}: FAILED {r.counts[t].error}")
        for line in r.causes[t]:
            print(f"    {t}: {line}")


def markdown(results: list[Result], tools: list[str]) -> str:
    """The results as a Markdown table (MACs; each tool's difference from tk in parentheses)."""
    head = "| case | input | tk MACs | tk vs hand count (how) | " + " | ".join(tools) + " |"
    lines = [head, "|" + "---|" * (4 + len(tools))]
    for r in results:
        tk = r.char.totals.macs
        hand = r.case.hand_source
        if r.case.hand == tk:
            hand = f"= {hand}"
        elif r.case.hand is not None:
            hand = f"{_si(r.case.hand)}, tk {_delta(tk, r.case.hand)}; {hand}"
        cells = []
        for t in tools:
            c = r.counts[t]
            cells.append("fails" if c.macs is None else f"{_si(c.macs)} ({_delta(c.macs, tk)})")
        lines.append(f"| {r.case.name} | {r.case.input} | {_si(tk)} | {hand} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", help="comma-separated case names (default: all): " + ",".join(c.name for c in CASES))
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = ap.parse_args(argv)
    chosen = [c for c in CASES if not args.cases or c.name in args.cases.split(",")]
    tools = []
    versions = [f"torch {torch.__version__}", f"tk {importlib.metadata.version('turnkey_like')}"]
    for tool in TOOLS:
        version = available(tool)
        if version is None:
            print(f"{tool}: not installed, skipped ({INSTALL[tool]})")
            continue
        tools.append(tool)
        if tool != "FlopCounterMode":
            versions.append(f"{tool} {version}")
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        versions += [f"{m} {importlib.metadata.version(m)}" for m in ("torchvision", "transformers")]
    print(f"MACs of one call under torch.no_grad() (1 MAC = 2 FLOPs; FlopCounterMode: FLOPs / 2; fvcore: "
          f".total(), its 'flops'; DeepSpeed: get_total_macs()); Δ relative to tk. {datetime.date.today()}, "
          + ", ".join(versions))
    print(f"{'case':<19} {'tk':>10} {'hand/published Δ':>18}" + "".join(f" {t[:10]:>10} {'Δ':>9}" for t in tools))
    results, load = [], os.getloadavg()[0]
    for case in chosen:
        results.append(run_case(case, tools))
        print_result(results[-1], tools)
    print(f"{len(results)} cases; load {load:.1f}→{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.markdown:
        print()
        print(markdown(results, tools))
    return 0


if __name__ == "__main__":
    sys.exit(main())
