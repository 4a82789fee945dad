"""Generation counted exactly: tk's Generation records against closed forms derived by hand.

For each architecture (Llama with GQA, Qwen2, Mistral across its sliding window, Mixtral's mixture
of experts (grouped_mm, transformers' default, and the eager loop over the experts hit), GPT-2,
Gemma 2's alternating sliding and global layers, T5 and Whisper), a ``Hand`` class below writes
the closed forms from the model's config: the prefill's MACs and causal MACs, a decode step's MACs
and FLOPs at cache length c, the decode totals, the KV bytes read and written (an encoder-decoder's
cross-attention K/V included), the KV-cache bytes per token and at the end, the encoder's share of
an encoder-decoder's prefill (MACs, FLOPs, weight bytes), and the parameters. docs/generation.md
derives each formula (one section per architecture, the same symbols). tk's record must equal them
exactly: MACs, FLOPs and bytes are integers.

FLOPs are derived in full: 2 per MAC, plus the element-wise FLOPs of every op the model runs, at tk's
per-element costs (``turnkey_like.characterize.ops``: RMSNorm 4d+2 a token, LayerNorm 7 an element,
SiLU 5, exact GELU 5, tanh-GELU 9, softmax 5...) and transformers 5.23's attention-mask
construction (``transformers.masking_utils``), which materializes a mask only where a sliding window
or eager attention needs one. transformers is pinned (constraints.txt); a new version that builds
its masks differently changes these FLOPs, and this file says where.

Then the same generations counted at every step must give every figure of the three-point count;
and real scripts run through the real CLI (``tk profile --json``): ``model.generate``, a
hand-written loop that passes ``past_key_values`` back (the same generation, figure for figure, and
the same as ``characterize_generation``), and T5 with a 4-token decoder prompt.

Models are tiny random configs built offline, float32 on CPU (4 bytes an element); each is built
once per module and each generation counted once (a second or less each); the CLI tests start four
tk processes of a few seconds each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import msgspec
import pytest
import torch

from conftest import assert_same_record, run_tk

transformers = pytest.importorskip("transformers")

from turnkey_like.characterize.assemble import characterize_call  # noqa: E402
from turnkey_like.characterize.generation import characterize_generation  # noqa: E402
from turnkey_like.records import RunReport, decode  # noqa: E402

HARDWARE = "a100"
ITEMSIZE = 4  # float32


# --------------------------------------------------------------------------------------------------
# Closed forms (docs/generation.md, "Derivations")
# --------------------------------------------------------------------------------------------------

class Hand:
    """Closed forms of one architecture, from its config (symbols of docs/generation.md).

    A call runs ``t`` new tokens on a cache that holds ``c`` positions before it (``c = 0``: the
    prefill). Subclasses give what one token costs in weight matmuls (:meth:`linear`) and in
    element-wise FLOPs (:meth:`token_flops`), what a call costs on top (:meth:`call_flops`: masks,
    attention scores, per-call constants) and the parameters; attention, KV bytes and sums are common.
    """

    #: positions each decoder layer cross-attends (S, encoder-decoder models; 0 otherwise)
    cross = 0

    def __init__(self, config, L, d, H, K, h, I, V, windows=None):  # noqa: E741 (the docs' symbols)
        self.config = config
        self.L, self.d, self.H, self.K, self.h, self.I, self.V = L, d, H, K, h, I, V
        self.windows = tuple(windows) if windows is not None else (None,) * L

    @classmethod
    def for_case(cls, config, p: int) -> Hand:
        """The forms of a generation after a prompt of ``p`` tokens (T5: its encoder's input)."""
        return cls(config)

    # -- per architecture ------------------------------------------------------------------------
    def linear(self) -> int:
        """MACs of the weight matmuls one token runs through the decoder layers (LM head apart)."""
        raise NotImplementedError

    def token_flops(self) -> int:
        """Element-wise FLOPs one token costs (norms, rotary, activations, residuals...)."""
        raise NotImplementedError

    def call_flops(self, t: int, c: int) -> int:
        """Element-wise FLOPs a call costs that do not scale with its tokens alone (masks, scores)."""
        return 0

    def lm_rows(self, t: int) -> int:
        """Positions the LM head runs on: 1 (``logits_to_keep=1``, as ``generate()`` passes it)."""
        return 1

    def params_total(self) -> int:
        raise NotImplementedError

    def params_active(self, c: int) -> int:
        """Parameter and buffer elements a decode step on ``c`` cached positions reads (what the
        ``params_active`` field defines: ``bytes_weights`` of the first step ÷ bytes per element)."""
        raise NotImplementedError

    # the encoder of an encoder-decoder, counted in the prefill (none here)
    def encoder_macs(self) -> int:
        """MACs of the encoder's one call (it runs before the decoder's prefill)."""
        return 0

    def encoder_flops(self) -> int:
        return 0

    def encoder_weights(self) -> int:
        """Parameter elements the encoder's call reads."""
        return 0

    # -- common ----------------------------------------------------------------------------------
    def keys(self, layer: int, t: int, c: int) -> int:
        """Keys the attention kernel of ``layer`` multiplies each query by: the prefill's kernel is
        dense over the prompt (the causal or window mask applied inside); a decode step attends to
        the positions the cache holds plus itself, at most the window (the cache keeps W − 1)."""
        w = self.windows[layer]
        return min(c + t, w) if (w and c) else c + t

    def cross_projections(self, c: int) -> int:
        """MACs of projecting the encoder's S outputs to every layer's cross K and V (prefill only)."""
        return 2 * self.L * self.d * self.H * self.h * self.cross if c == 0 else 0

    def macs(self, t: int, c: int) -> int:
        attention = sum(2 * self.H * self.h * t * self.keys(layer, t, c) for layer in range(self.L))
        cross = self.L * 2 * self.H * self.h * t * self.cross
        return (t * self.linear() + self.lm_rows(t) * self.d * self.V + attention + cross
                + self.cross_projections(c))

    def macs_causal(self, p: int) -> int:
        """The prefill's MACs with the pairs the causal mask (and window) drops left out: query i
        (1-based) keeps min(i, W) keys."""
        dense = sum(2 * self.H * self.h * p * p for _ in range(self.L))
        kept = sum(2 * self.H * self.h * sum(min(i, w or i) for i in range(1, p + 1)) for w in self.windows)
        return self.macs(p, 0) - dense + kept

    def flops(self, t: int, c: int) -> int:
        return 2 * self.macs(t, c) + t * self.token_flops() + self.call_flops(t, c)

    def bytes_per_position(self) -> int:
        """K and V bytes of one position of one layer: 2 · K · h · 4 (batch 1)."""
        return 2 * self.K * self.h * ITEMSIZE

    def cross_kv(self) -> int:
        """The cross-attention K and V of an encoder-decoder: every layer, the S encoder positions."""
        return self.L * self.bytes_per_position() * self.cross

    def kv_read(self, t: int, c: int) -> int:
        """K/V bytes a call reads: each layer the positions its new tokens attend to together, and
        (encoder-decoder) the cross K/V of the S encoder positions."""
        n = c + t
        own = sum(self.bytes_per_position() * (min(n, w + t - 1) if w else n) for w in self.windows)
        return own + self.cross_kv()

    def kv_write(self, t: int, c: int) -> int:
        """K/V bytes a call writes: its t new positions in every layer; the prefill (c = 0) of an
        encoder-decoder also writes the cross K/V, once."""
        return self.L * self.bytes_per_position() * t + (self.cross_kv() if c == 0 else 0)

    def kv_cache_bytes(self, positions: int) -> int:
        """What the cache holds after ``positions`` positions: a sliding layer keeps W − 1; an
        encoder-decoder's cache also the cross K/V."""
        own = sum(self.bytes_per_position() * (min(positions, w - 1) if w else positions) for w in self.windows)
        return own + self.cross_kv()

    # sums over the decode steps of a generation of N tokens after a prompt of P
    @staticmethod
    def caches(p: int, n: int) -> range:
        """The cache lengths of the N − 1 decode steps: P, P + 1, …, P + N − 2."""
        return range(p, p + n - 1)

    def rms(self) -> int:
        """RMSNorm of one token: pow, mean (d each), add eps, rsqrt (1 each), two muls (d each)."""
        return 4 * self.d + 2

    def rope(self) -> int:
        """Rotary table of one position: inv_freq · position (h/2), cos, sin and two scalings (h each)."""
        return self.h // 2 + 4 * self.h

    def rotate(self) -> int:
        """Applying the rotary embedding to one token's q and k: x·cos, rotate_half's neg (half),
        ·sin, + (3.5 FLOPs per element of H + K heads of h)."""
        return 7 * self.h * (self.H + self.K) // 2


class LlamaHand(Hand):
    """Llama (GQA, RoPE, RMSNorm, SwiGLU, untied LM head); SDPA, no mask materialized."""

    def __init__(self, config):
        h = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        super().__init__(config, config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                         config.num_key_value_heads, h, config.intermediate_size, config.vocab_size,
                         self.layer_windows(config))

    @staticmethod
    def layer_windows(config):
        return None

    def attention_macs(self) -> int:
        """q, k, v and o projections of one token: d·H·h + 2·d·K·h + H·h·d."""
        d, H, K, h = self.d, self.H, self.K, self.h
        return d * H * h + 2 * d * K * h + H * h * d

    def attention_params(self) -> int:
        return self.attention_macs()

    def mlp_macs(self) -> int:
        return 3 * self.d * self.I

    def linear(self) -> int:
        return self.L * (self.attention_macs() + self.mlp_macs())

    def mlp_flops(self) -> int:
        """SiLU (5 an element) on gate, times up (1)."""
        return 6 * self.I

    def token_flops(self) -> int:
        return self.rope() + self.L * (2 * self.rms() + self.rotate() + 2 * self.d + self.mlp_flops()) + self.rms()

    def mlp_params(self, active: bool = False) -> int:
        """The MLP's parameters (``active``: those one token runs)."""
        return 3 * self.d * self.I

    def lm_head_params(self) -> int:
        return 0 if self.config.tie_word_embeddings else self.V * self.d

    def params_total(self) -> int:
        layer = self.attention_params() + self.mlp_params() + 2 * self.d
        return self.V * self.d + self.L * layer + self.d + self.lm_head_params()

    def params_active(self, c: int) -> int:
        layer = self.attention_params() + self.mlp_params(active=True) + 2 * self.d
        return self.d + self.h // 2 + self.L * layer + self.d + self.V * self.d


class Qwen2Hand(LlamaHand):
    """Qwen2: Llama with biases on q, k and v (folded into addmm: no MACs, no FLOPs counted)."""

    def attention_params(self) -> int:
        return super().attention_params() + self.H * self.h + 2 * self.K * self.h


class MistralHand(LlamaHand):
    """Mistral: Llama with a sliding window W on every layer."""

    @staticmethod
    def layer_windows(config):
        return [config.sliding_window] * config.num_hidden_layers

    def call_flops(self, t: int, c: int) -> int:
        """The sliding-window mask, built once a call's keys reach W (``sdpa_mask``: q and kv
        aranges plus offsets, q − W, then kv > q − W, &, kv ≤ q, & over [t, kv]; then each layer's
        SDPA wrapper turns it into a float mask with a ``where``); below W, SDPA's is_causal serves."""
        kv = self.keys(0, t, c)
        if kv < self.windows[0]:
            return 0
        return 2 * t + kv + 4 * t * kv + self.L * t * kv


class MixtralHand(LlamaHand):
    """Mixtral: Llama's attention, a top-k router and E experts run as ``grouped_mm`` (transformers
    5.23's default experts implementation on CPU with torch 2.14): t·k token-expert rows."""

    def __init__(self, config):
        super().__init__(config)
        self.E, self.k = config.num_local_experts, config.num_experts_per_tok

    def mlp_macs(self) -> int:
        return self.E * self.d + self.k * 3 * self.d * self.I

    def mlp_flops(self) -> int:
        """Router: softmax (5 an element) and topk (1) over E, sum and divide over k; experts: sort,
        floor-divide (1 each), histc (7) over k; SiLU (5) and × up (1) on k·I; routing weight × and
        the sum over k on k·d."""
        E, k = self.E, self.k
        return 5 * E + E + 2 * k + 9 * k + 6 * k * self.I + 2 * k * self.d

    def call_flops(self, t: int, c: int) -> int:
        return self.L * self.E  # cumsum of the tokens per expert, once a call in each layer

    def mlp_params(self, active: bool = False) -> int:
        return self.E * self.d + (self.k if active else self.E) * 3 * self.d * self.I


class MixtralEagerHand(MixtralHand):
    """Mixtral with ``experts_implementation="eager"``: transformers loops over the experts hit,
    each running its routed rows (t·k rows in all, as grouped_mm; the weights of the experts hit only
    are read). ``hits``: per layer, the distinct experts the prompt is routed to (set from the
    model's own router, :func:`routed_experts`); a decode token hits k."""

    hits: tuple[int, ...] = ()

    def mlp_flops(self) -> int:
        """Router as grouped_mm's; per routed row SiLU (5) and × up (1) on I, the routing weight ×
        and ``index_add_`` on d."""
        E, k = self.E, self.k
        return 5 * E + E + 2 * k + 6 * k * self.I + 2 * k * self.d

    def call_flops(self, t: int, c: int) -> int:
        """Per layer: one_hot's range check (aminmax, t·k), the hit count (sum over (E + 1)·k·t,
        > 0 on E + 1), then one == per expert hit."""
        E, k = self.E, self.k
        hits = sum(self.hits) if c == 0 else self.L * k
        return self.L * (t * k + (E + 1) * k * t + (E + 1)) + hits


def routed_experts(model, input_ids) -> tuple[int, ...]:
    """Per MoE layer, how many distinct experts the prompt's tokens are routed to: the model's own
    router run once on the prompt (its third output holds each token's top-k expert indices)."""
    hits: list[int] = []
    hooks = [layer.mlp.gate.register_forward_hook(lambda _m, _a, out: hits.append(int(out[2].unique().numel())))
             for layer in model.model.layers]
    try:
        with torch.no_grad():
            model(input_ids=input_ids)
    finally:
        for hook in hooks:
            hook.remove()
    return tuple(hits)


class Gemma2Hand(LlamaHand):
    """Gemma 2: sliding and global layers alternating, four RMSNorms (1 + w) a layer, tanh-GELU,
    logit soft-capping, tied embeddings scaled by √d; eager attention (transformers' default here)."""

    @staticmethod
    def layer_windows(config):
        return [config.sliding_window if kind == "sliding_attention" else None for kind in config.layer_types]

    def mlp_flops(self) -> int:
        return 10 * self.I  # tanh-GELU (9) on gate, × up (1)

    def token_flops(self) -> int:
        layer = 4 * self.rms() + self.rotate() + 2 * self.d + self.mlp_flops()
        return self.d + self.rope() + self.L * layer + self.rms()

    def call_flops(self, t: int, c: int) -> int:
        """Per call: each RMSNorm's 1 + w (d, 4L + 1 norms), the final soft-capping of the kept
        logits (÷, tanh, × on V); the masks eager attention needs (global: aranges, kv ≤ q, where;
        sliding: aranges, q − W, then 4 ops and a where over [t, kv]); and per layer its scores'
        element-wise ops: scaling, soft-capping (3), + mask, softmax (5): 10 per score."""
        full = c + t
        sliding = next(self.keys(i, t, c) for i, w in enumerate(self.windows) if w)
        masks = (t + full + 2 * t * full) + (2 * t + sliding + 5 * t * sliding)
        scores = sum(10 * self.H * t * self.keys(layer, t, c) for layer in range(self.L))
        return (4 * self.L + 1) * self.d + 3 * self.V * self.lm_rows(t) + masks + scores

    def params_total(self) -> int:
        layer = self.attention_params() + self.mlp_params() + 4 * self.d
        return self.V * self.d + self.L * layer + self.d + self.lm_head_params()

    def params_active(self, c: int) -> int:
        layer = self.attention_params() + self.mlp_params() + 4 * self.d
        return self.d + 1 + self.h // 2 + self.L * layer + self.d + self.V * self.d


class GPT2Hand(Hand):
    """GPT-2: MHA, learned positions, LayerNorm, tanh-GELU (``gelu_new``, 8 ops), tied LM head."""

    def __init__(self, config):
        d = config.n_embd
        super().__init__(config, config.n_layer, d, config.n_head, config.n_head, d // config.n_head,
                         config.n_inner or 4 * d, config.vocab_size)

    def linear(self) -> int:
        d, I = self.d, self.I  # noqa: E741
        return self.L * (3 * d * d + d * d + 2 * d * I)

    def token_flops(self) -> int:
        """Token + position embeddings (d); per layer two LayerNorms (7 an element), two residual
        adds, gelu_new (8 ops on I); the final LayerNorm."""
        d = self.d
        return d + self.L * (2 * 7 * d + 2 * d + 8 * self.I) + 7 * d

    def layer_params(self) -> int:
        d, I = self.d, self.I  # noqa: E741
        return 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * I + I) + (I * d + d)

    def params_total(self) -> int:
        return self.V * self.d + self.config.n_positions * self.d + self.L * self.layer_params() + 2 * self.d

    def params_active(self, c: int) -> int:
        return 2 * self.d + self.L * self.layer_params() + 2 * self.d + self.V * self.d


class T5Hand(Hand):
    """T5's decoder: self-attention, cross-attention over the encoder's S outputs, ReLU FF, T5's
    RMSNorm, relative position bias (first layer), tied LM head scaled by d^−1/2."""

    def __init__(self, config, encoder_positions: int):
        super().__init__(config, config.num_decoder_layers, config.d_model, config.num_heads, config.num_heads,
                         config.d_kv, config.d_ff, config.vocab_size)
        self.cross = encoder_positions

    @classmethod
    def for_case(cls, config, p: int) -> Hand:
        return cls(config, p)

    def lm_rows(self, t: int) -> int:
        return t  # T5's forward takes no logits_to_keep

    def linear(self) -> int:
        a = self.d * self.H * self.h
        return self.L * (4 * a + 2 * a + 2 * self.d * self.I)

    def token_flops(self) -> int:
        return self.L * (3 * self.rms() + 3 * self.d + self.I) + self.rms() + self.d

    def call_flops(self, t: int, c: int) -> int:
        """The relative position bias of layer 0: query positions (t), then 12 ops per query-key
        pair (relative position, bucket: min, neg, <, ÷, log, ÷, ×, +, min, where, +). With more
        than one query, each self-attention makes the causal mask SDPA's is_causal would have
        given (``create_position_bias_mask``: ≥ over [t, kv], then a where over [H, t, kv])."""
        kv = c + t
        causal = self.L * (t * kv + self.H * t * kv) if t > 1 else 0
        return t + 12 * t * kv + causal

    def params_total(self) -> int:
        a, B = self.d * self.H * self.h, self.config.relative_attention_num_buckets
        encoder = self.config.num_layers * (4 * a + 2 * self.d * self.I + 2 * self.d) + self.d + B * self.H
        decoder = self.L * (8 * a + 2 * self.d * self.I + 3 * self.d) + self.d + B * self.H
        return self.V * self.d + encoder + decoder

    def params_active(self, c: int) -> int:
        """The cross K/V projections do not run in a decode step (cross K/V come from the cache);
        the bias table is read for the step's (c + 1) query-key pairs of H heads."""
        a = self.d * self.H * self.h
        layer = 6 * a + 2 * self.d * self.I + 3 * self.d
        return self.d + (c + 1) * self.H + self.L * layer + self.d + self.V * self.d

    # the encoder: L_e = num_layers layers over its S input tokens, bidirectional attention
    def encoder_macs(self) -> int:
        """Per token and layer q, k, v, o (4·d·H·h) and wi, wo (2·d·I); per layer attention over
        S × S pairs (2·H·h each)."""
        S, a, Le = self.cross, self.d * self.H * self.h, self.config.num_layers
        return S * Le * (4 * a + 2 * self.d * self.I) + Le * 2 * self.H * self.h * S * S

    def encoder_flops(self) -> int:
        """2 per MAC; per token and layer two RMSNorms, two residual adds (d each), ReLU (I), then
        the final RMSNorm; the relative position bias of layer 0 (bidirectional): query positions
        (S), then 14 ops per pair (relative position, > 0, × and + of the direction's buckets, abs,
        <, ÷, log, ÷, ×, +, min, where, +)."""
        S, Le = self.cross, self.config.num_layers
        return (2 * self.encoder_macs() + S * (Le * (2 * self.rms() + 2 * self.d + self.I) + self.rms())
                + S + 14 * S * S)

    def encoder_weights(self) -> int:
        """S rows of the shared embedding, the layers (4·d·H·h + 2·d·I + two norms), the final norm;
        the bias table gathered for S² pairs of H heads, at most the whole table (buckets × H)."""
        S, a, Le = self.cross, self.d * self.H * self.h, self.config.num_layers
        table = self.config.relative_attention_num_buckets * self.H
        return S * self.d + Le * (4 * a + 2 * self.d * self.I + 2 * self.d) + self.d + min(S * S * self.H, table)


class WhisperHand(Hand):
    """Whisper's decoder: biased attention (no bias on k), cross-attention over the encoder's S
    outputs, exact GELU, LayerNorm, learned positions, LM head tied to the token embedding."""

    def __init__(self, config):
        d = config.d_model
        super().__init__(config, config.decoder_layers, d, config.decoder_attention_heads,
                         config.decoder_attention_heads, d // config.decoder_attention_heads,
                         config.decoder_ffn_dim, config.vocab_size)
        self.cross = config.max_source_positions

    def lm_rows(self, t: int) -> int:
        return t

    def linear(self) -> int:
        return self.L * (6 * self.d * self.d + 2 * self.d * self.I)

    def token_flops(self) -> int:
        """Position add (1), + positions (d); per layer three LayerNorms (7 an element), q scaling in
        both attentions (2d), three residual adds, GELU (5 on I); the final LayerNorm."""
        d = self.d
        return 1 + d + self.L * (3 * 7 * d + 2 * d + 3 * d + 5 * self.I) + 7 * d

    def decoder_layer(self) -> int:
        d, I = self.d, self.I  # noqa: E741
        attention = 4 * d * d + 3 * d
        return 2 * attention + 3 * 2 * d + (d * I + I) + (I * d + d)

    def params_total(self) -> int:
        cfg, d = self.config, self.d
        encoder_layer = 4 * d * d + 3 * d + 2 * 2 * d + (d * cfg.encoder_ffn_dim + cfg.encoder_ffn_dim) + (
            cfg.encoder_ffn_dim * d + d)
        encoder = (cfg.num_mel_bins * d * 3 + d) + (d * d * 3 + d) + cfg.max_source_positions * d + (
            cfg.encoder_layers * encoder_layer) + 2 * d
        decoder = self.V * d + cfg.max_target_positions * d + self.L * self.decoder_layer() + 2 * d
        return encoder + decoder

    def params_active(self, c: int) -> int:
        """One row of the token and of the position embeddings; each layer but its cross k and v
        projections (2·d² + d: cross K/V come from the cache); the final LayerNorm; the LM head."""
        d = self.d
        return 2 * d + self.L * (self.decoder_layer() - 2 * d * d - d) + 2 * d + self.V * d

    # the encoder: two convolutions over 2S mel frames (the second of stride 2), then L_e layers over S
    def encoder_macs(self) -> int:
        """conv1 (kernel 3, mel → d) on 2S frames, conv2 (kernel 3, d → d, stride 2) on S; per layer
        q, k, v, o (4·d² a position), fc1 and fc2 (2·d·I_e), attention over S × S (2·H·h a pair)."""
        cfg, d, S = self.config, self.d, self.cross
        per_layer = 4 * S * d * d + 2 * S * d * cfg.encoder_ffn_dim + 2 * d * S * S
        return 2 * S * d * cfg.num_mel_bins * 3 + S * d * d * 3 + cfg.encoder_layers * per_layer

    def encoder_flops(self) -> int:
        """2 per MAC; exact GELU (5) after each convolution (2S·d, then S·d); + positions (S·d); per
        layer two LayerNorms (7 an element), q scaling, two residual adds (S·d each), GELU on S·I_e;
        the final LayerNorm (7·S·d)."""
        cfg, d, S = self.config, self.d, self.cross
        per_layer = 2 * 7 * S * d + S * d + 2 * S * d + 5 * S * cfg.encoder_ffn_dim
        return (2 * self.encoder_macs() + 5 * 2 * S * d + 5 * S * d + S * d + cfg.encoder_layers * per_layer
                + 7 * S * d)

    def encoder_weights(self) -> int:
        """Every encoder parameter, each read once (its position table is added whole: S rows)."""
        return self.params_total() - (self.V * self.d + self.config.max_target_positions * self.d
                                      + self.L * self.decoder_layer() + 2 * self.d)


# --------------------------------------------------------------------------------------------------
# The architectures, tiny and random
# --------------------------------------------------------------------------------------------------

#: The decoder-only models' tiny dimensions (the issue's Llama).
TINY = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
        "vocab_size": 1000, "num_hidden_layers": 2}

#: name -> (model class, config class, config arguments, closed forms)
ARCHS = {
    "llama": ("LlamaForCausalLM", "LlamaConfig", TINY, LlamaHand),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Config", TINY, Qwen2Hand),
    "mistral": ("MistralForCausalLM", "MistralConfig", {**TINY, "sliding_window": 16}, MistralHand),
    "mixtral": ("MixtralForCausalLM", "MixtralConfig", {**TINY, "num_local_experts": 4, "num_experts_per_tok": 2},
                MixtralHand),
    "mixtral_eager": ("MixtralForCausalLM", "MixtralConfig", {**TINY, "num_local_experts": 4, "num_experts_per_tok": 2,
                                                              "experts_implementation": "eager"}, MixtralEagerHand),
    "gpt2": ("GPT2LMHeadModel", "GPT2Config", {"n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 1000,
                                                 "n_positions": 256, "bos_token_id": 1, "eos_token_id": 2}, GPT2Hand),
    "gemma2": ("Gemma2ForCausalLM", "Gemma2Config", {**TINY, "head_dim": 16, "sliding_window": 16}, Gemma2Hand),
    "t5": ("T5ForConditionalGeneration", "T5Config", {"d_model": 64, "d_kv": 16, "num_heads": 4, "d_ff": 128,
                                                      "num_layers": 2, "num_decoder_layers": 2, "vocab_size": 1000,
                                                      "decoder_start_token_id": 0}, T5Hand),
    "whisper": ("WhisperForConditionalGeneration", "WhisperConfig", {
        "d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
        "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128, "num_mel_bins": 16,
        "max_source_positions": 16, "max_target_positions": 64, "vocab_size": 1000, "pad_token_id": 1,
        "bos_token_id": 2, "eos_token_id": 2, "decoder_start_token_id": 3}, WhisperHand),
}


@dataclass(frozen=True)
class Case:
    """One generation: ``arch`` with a prompt of ``p`` tokens (T5: its encoder's input; Whisper: the
    encoder positions S its config gives), then ``n`` new."""

    arch: str
    p: int
    n: int

    @property
    def id(self) -> str:
        return f"{self.arch}-P{self.p}-N{self.n}"


CASES = [
    Case("llama", 200, 9),     # the issue's worked example
    Case("qwen2", 20, 6),
    Case("mistral", 12, 10),   # window 16 crossed mid-decode (contexts 13…21)
    Case("mistral", 20, 6),    # a prompt longer than the window
    Case("mixtral", 20, 6),    # experts as grouped_mm (transformers' default)
    Case("mixtral_eager", 20, 6),  # experts looped over
    Case("gpt2", 20, 6),
    Case("gemma2", 12, 10),    # sliding layer's window 16 crossed mid-decode
    Case("gemma2", 20, 6),
    Case("t5", 20, 6),
    Case("whisper", 16, 6),    # S = 16 encoder positions (32 mel frames)
]


@dataclass
class Counted:
    """A case's hand forms and tk's two counts of it (three points per segment, and every step)."""

    case: Case
    hand: Hand
    model: torch.nn.Module

    @cached_property
    def inputs(self) -> dict:
        torch.manual_seed(1)
        if self.case.arch == "whisper":
            cfg = self.model.config
            return {"input_ids": None, "input_features": torch.randn(1, cfg.num_mel_bins, 2 * cfg.max_source_positions)}
        return {"input_ids": torch.randint(3, self.hand.V, (1, self.case.p))}

    def count(self, every_step: bool):
        return characterize_generation(self.model, new_tokens=self.case.n, hardware=HARDWARE,
                                       every_step=every_step, **self.inputs)

    @cached_property
    def record(self):
        return self.count(False)

    @cached_property
    def every_step(self):
        return self.count(True)

    @property
    def prompt(self) -> int:
        """P as the decoder sees it: the prompt, or the one start token of an encoder-decoder."""
        return 1 if self.hand.cross else self.case.p


_MODELS: dict[str, torch.nn.Module] = {}
_COUNTED: dict[Case, Counted] = {}


def counted(case: Case) -> Counted:
    """The case's model (built once per architecture) and its counts (once per case)."""
    if case not in _COUNTED:
        model_cls, config_cls, arguments, hand_cls = ARCHS[case.arch]
        if case.arch not in _MODELS:
            torch.manual_seed(0)
            config = getattr(transformers, config_cls)(**arguments)
            _MODELS[case.arch] = getattr(transformers, model_cls)(config).eval()
        model = _MODELS[case.arch]
        run = _COUNTED[case] = Counted(case, hand_cls.for_case(model.config, case.p), model)
        if isinstance(run.hand, MixtralEagerHand):
            run.hand.hits = routed_experts(model, run.inputs["input_ids"])
    return _COUNTED[case]


def _params(cases):
    return [pytest.param(c, id=c.id) for c in cases]


# --------------------------------------------------------------------------------------------------
# The record against the closed forms
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", _params(CASES))
def test_prefill_equals_the_hand_count(case):
    """The prefill: the decoder's first call and, for an encoder-decoder, its encoder's call, which
    runs before the first token (so TTFT, the prefill's roofline time, includes it)."""
    run = counted(case)
    hand, p = run.hand, run.prompt
    prefill = run.record.phase("prefill")
    assert (prefill.steps, prefill.context_first, prefill.context_last) == (1, p, p)
    assert prefill.macs == hand.macs(p, 0) + hand.encoder_macs()
    assert prefill.flops == hand.flops(p, 0) + hand.encoder_flops()
    assert prefill.bytes_kv_read == hand.kv_read(p, 0)
    assert prefill.bytes_kv_write == hand.kv_write(p, 0)
    assert run.record.prompt_tokens == p and run.record.new_tokens == case.n and run.record.batch_size == 1
    assert run.record.ttft_s == prefill.roofline_time_s


@pytest.mark.parametrize("case", _params(CASES))
def test_prefill_causal_macs_leave_the_masked_pairs_out(case):
    """Query i keeps min(i, W) keys, whether the kernel is SDPA or eager attention's two batched
    matmuls (Gemma 2), and cross-attention (T5, Whisper: one decoder token) keeps all S, as does an
    encoder's attention (bidirectional)."""
    run = counted(case)
    assert run.record.phase("prefill").macs_causal == run.hand.macs_causal(run.prompt) + run.hand.encoder_macs()


@pytest.mark.parametrize("case", _params([c for c in CASES if c.arch in ("t5", "whisper")]))
def test_encoder_share_of_the_prefill(case):
    """The encoder's one call, by hand: its MACs, FLOPs and weight bytes; its roofline time is part
    of TTFT: the prefill's time less the encoder's is the decoder's first call's own."""
    run = counted(case)
    hand, prefill = run.hand, run.record.phase("prefill")
    encoder = prefill.encoder
    assert (encoder.positions, encoder.macs, encoder.flops) == (hand.cross, hand.encoder_macs(), hand.encoder_flops())
    assert encoder.bytes_weights == hand.encoder_weights() * ITEMSIZE
    assert 0 < encoder.roofline_time_s < prefill.roofline_time_s == run.record.ttft_s
    with torch.no_grad():
        decoder = characterize_call(run.model, *decoder_prefill(run), hardware=HARDWARE)
    assert decoder.totals.macs == hand.macs(1, 0)
    assert run.record.ttft_s == pytest.approx(decoder.totals.roofline_time_s + encoder.roofline_time_s, rel=1e-12)
    assert prefill.bytes_weights == decoder.totals.weight_bytes + encoder.bytes_weights
    assert prefill.bytes_activations + prefill.bytes_kv_read + prefill.bytes_kv_write == (
        decoder.totals.bytes - decoder.totals.weight_bytes + encoder.bytes_activations)


@pytest.mark.parametrize("case", _params([c for c in CASES if c.arch in ("t5", "whisper")]))
def test_encoder_decoder_whatifs_hold_the_cross_kv(case):
    """What fits memory holds each sequence's cross K/V beside its self-attention cache (the KV cache
    at the end, per sequence: 1 here), split by KV heads over devices (4 heads on 2: half); the
    encoder's time is in the what-if's TTFT; over 2 devices the note says the encoder's all-reduces
    are left out."""
    from turnkey_like.characterize.generation_whatif import whatif
    from turnkey_like.characterize.hardware import BUILTIN

    run = counted(case)
    hand = run.hand
    one, two = (whatif(run.record, BUILTIN[HARDWARE], tensor_parallel=tp) for tp in (1, 2))
    assert one.capacity.kv_bytes_per_sequence == hand.kv_cache_bytes(case.n) == run.record.kv_cache_bytes
    assert two.capacity.kv_bytes_per_sequence == hand.kv_cache_bytes(case.n) // 2
    prefill = one.phase("prefill")
    assert prefill.flops == hand.flops(1, 0) + hand.encoder_flops()
    assert prefill.bytes_kv_write == hand.kv_write(1, 0)
    assert any("encoder's all-reduces left out" in note for note in two.notes)
    assert not any("encoder" in note for note in one.notes)


def decoder_prefill(run) -> tuple[tuple, dict]:
    """The decoder's first call of an encoder-decoder case, as generate() makes it: the start token,
    the encoder's outputs, an empty cache (``(args, kwargs)``)."""
    from turnkey_like.generation_trace import empty_cache

    inputs = {k: v for k, v in run.inputs.items() if v is not None}
    with torch.no_grad():
        encoded = run.model.get_encoder()(**inputs)
    start = torch.full((1, 1), run.model.config.decoder_start_token_id, dtype=torch.long)
    return (), {"encoder_outputs": encoded, "decoder_input_ids": start, "past_key_values": empty_cache(run.model),
                "use_cache": True}


@pytest.mark.parametrize("case", _params(CASES))
def test_every_decode_step_is_the_hand_count(case):
    run = counted(case)
    hand, p = run.hand, run.prompt
    decode_ = run.record.phase("decode")
    caches = hand.caches(p, case.n)
    assert (decode_.steps, decode_.context_first, decode_.context_last) == (case.n - 1, p + 1, p + case.n - 1)
    assert decode_.macs == decode_.macs_causal == sum(hand.macs(1, c) for c in caches)
    assert decode_.flops == sum(hand.flops(1, c) for c in caches)
    assert decode_.bytes_kv_read == sum(hand.kv_read(1, c) for c in caches)
    assert decode_.bytes_kv_write == sum(hand.kv_write(1, c) for c in caches)
    for step, c in ((decode_.step_first, caches[0]), (decode_.step_last, caches[-1])):
        assert (step.context, step.macs, step.flops) == (c + 1, hand.macs(1, c), hand.flops(1, c))
    assert run.record.exact and decode_.roofline_time_s > 0
    assert run.record.tpot_s == pytest.approx(decode_.roofline_time_s / (case.n - 1), rel=1e-12)


@pytest.mark.parametrize("case", _params(CASES))
def test_kv_cache_bytes(case):
    run = counted(case)
    hand = run.hand
    assert run.record.kv_cache_bytes_per_token == hand.L * hand.bytes_per_position()
    assert run.record.kv_cache_bytes == hand.kv_cache_bytes(run.prompt + case.n - 1)
    assert run.record.kv_cache_cross_bytes == hand.cross_kv()  # 0 for a decoder-only model


@pytest.mark.parametrize("case", _params(CASES))
def test_parameters_total_and_active(case):
    """params_active is bytes_weights of the first decode step ÷ 4: what the step reads. A mixture of
    experts reads its token's k experts of E (grouped_mm reads the groups that have rows; the eager
    loop the experts hit); Whisper's decoder one row of its position table (``weight[position_ids]``,
    a gather: the rows indexed)."""
    run = counted(case)
    hand = run.hand
    assert run.record.params_total == hand.params_total() == sum(p.numel() for p in run.model.parameters())
    assert run.record.params_active == hand.params_active(run.prompt)
    decode_ = run.record.phase("decode")
    if not isinstance(hand, T5Hand):  # T5 reads more of its bias table as the context grows
        assert decode_.bytes_weights == (case.n - 1) * hand.params_active(run.prompt) * ITEMSIZE


def test_mixtral_runs_k_experts_per_token_of_e():
    """MoE MACs count the experts that run: a token's k routed experts of E, whether transformers
    runs them as one grouped_mm over the t·k token-expert rows or loops over the experts hit; a
    step's MACs are L·(E − k)·3·d·I below running every expert."""
    grouped, looped = counted(Case("mixtral", 20, 6)), counted(Case("mixtral_eager", 20, 6))
    hand = grouped.hand
    every_expert = hand.macs(1, 20) + hand.L * (hand.E - hand.k) * 3 * hand.d * hand.I
    assert (hand.E, hand.k) == (4, 2)
    assert grouped.record.phase("decode").step_first.macs == hand.macs(1, 20) < every_expert
    for name in ("prefill", "decode"):
        assert grouped.record.phase(name).macs == looped.record.phase(name).macs


def test_mixtral_weight_reads_follow_the_routing():
    """grouped_mm reads the weights of the experts its rows go to: with weights, the prefill reads each
    layer's experts the prompt is routed to (the model's own router says which) and a decode step its
    token's k; on meta, where the routing is not known, min(E, P·k) experts per layer in the prefill (an
    upper bound, said in the notes) and k in one sequence's decode step (exact: k distinct experts)."""
    from turnkey_like.characterize.generation import GROUPED_BOUND

    run = counted(Case("mixtral", 20, 6))
    hand = run.hand
    d, E, k = hand.d, hand.E, hand.k

    def prefill_weights(experts) -> int:  # elements: 20 embedding rows, inv_freq, layers, norm, LM head
        layers = sum(hand.attention_params() + E * d + 2 * d + n * 3 * d * hand.I for n in experts)
        return 20 * d + hand.h // 2 + layers + d + hand.V * d

    hits = routed_experts(run.model, run.inputs["input_ids"])
    assert run.record.phase("prefill").bytes_weights == ITEMSIZE * prefill_weights(hits)
    meta = characterize_generation(run.model, new_tokens=6, hardware=HARDWARE, no_weights=True, **run.inputs)
    assert meta.phase("prefill").bytes_weights == ITEMSIZE * prefill_weights([min(E, 20 * k)] * hand.L)
    assert meta.params_active == run.record.params_active == hand.params_active(20)
    assert meta.phase("decode").bytes_weights == run.record.phase("decode").bytes_weights
    assert [n for n in meta.notes if "upper bound" in n] == [GROUPED_BOUND.format(phase="prefill")]
    assert run.record.notes == []


# --------------------------------------------------------------------------------------------------
# Three counted steps per segment give what counting every step gives
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", _params(CASES))
def test_counting_every_step_gives_the_same_figures(case):
    run = counted(case)
    assert run.every_step.exact and run.record.exact
    assert_same_record(run.record, run.every_step, case.id)


def test_closed_forms_give_the_issue_figures():
    """The hand forms reproduce the issue's worked example (2-layer Llama, P=200, N=9)."""
    hand = counted(Case("llama", 200, 9)).hand
    assert hand.macs(200, 0) == 25_049_600 and hand.macs_causal(200) == 19_955_200
    assert [hand.macs(1, c) for c in (200, 207)] == [137_728 + 256 * 201, 137_728 + 256 * 208]
    assert sum(hand.macs(1, c) for c in hand.caches(200, 9)) == 1_520_640
    assert hand.L * hand.bytes_per_position() == 512


# --------------------------------------------------------------------------------------------------
# Scripts through the real CLI
# --------------------------------------------------------------------------------------------------

_MODEL = """\
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

torch.manual_seed(0)
config = LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                     vocab_size=1000, num_hidden_layers=2)
model = LlamaForCausalLM(config).eval()
ids = torch.randint(3, 1000, (1, 200))
"""

SCRIPTS = {
    "generate": _MODEL + "model.generate(ids, max_new_tokens=9, min_new_tokens=9, do_sample=False)\n",
    # the loop generate() runs, written out: a cache passed in and back, positions, the last logits only
    "loop": _MODEL + """\
with torch.no_grad():
    out = model(input_ids=ids, past_key_values=DynamicCache(config=config), position_ids=torch.arange(200)[None],
                logits_to_keep=1, use_cache=True)
    for step in range(8):
        token = out.logits[:, -1:].argmax(-1)
        out = model(input_ids=token, past_key_values=out.past_key_values, position_ids=torch.tensor([[200 + step]]),
                    logits_to_keep=1, use_cache=True)
""",
    # the loop as people often write it: no cache in the first call, the model makes one
    "loop_without_cache": _MODEL + """\
with torch.no_grad():
    out = model(input_ids=ids, logits_to_keep=1, use_cache=True)
    for step in range(8):
        token = out.logits[:, -1:].argmax(-1)
        out = model(input_ids=token, past_key_values=out.past_key_values, logits_to_keep=1, use_cache=True)
""",
    # an encoder-decoder whose decoder prompt is 4 tokens: causal self-attention, cross-attention over 20
    "t5_prompt": """\
import torch
from transformers import DynamicCache, EncoderDecoderCache, T5Config, T5ForConditionalGeneration

torch.manual_seed(0)
config = T5Config(d_model=64, d_kv=16, num_heads=4, d_ff=128, num_layers=2, num_decoder_layers=2, vocab_size=1000,
                  decoder_start_token_id=0)
model = T5ForConditionalGeneration(config).eval()
ids = torch.randint(3, 1000, (1, 20))
with torch.no_grad():
    encoded = model.get_encoder()(input_ids=ids)
    cache = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
    out = model(encoder_outputs=encoded, decoder_input_ids=torch.tensor([[0, 5, 6, 7]]), past_key_values=cache,
                use_cache=True)
    for _ in range(3):
        out = model(encoder_outputs=encoded, decoder_input_ids=out.logits[:, -1:].argmax(-1),
                    past_key_values=out.past_key_values, use_cache=True)
""",
}


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """``profile(name)``: the invocations of ``SCRIPTS[name]`` run through ``tk profile --hardware a100
    --json`` (one real tk process per script, cached for the module); ``profile.stdout[name]`` what
    it printed."""
    root = tmp_path_factory.mktemp("generation_cli")
    done: dict[str, list] = {}
    printed: dict[str, str] = {}

    def profile(name: str):
        if name not in done:
            script = root / f"{name}.py"
            script.write_text(SCRIPTS[name], encoding="utf-8")
            out_json = root / f"{name}.json"
            out = run_tk("profile", str(script), "--hardware", HARDWARE, "--json", str(out_json),
                         "--cache-dir", str(root / "cache"), timeout=300)
            assert out.returncode == 0, f"tk profile {name} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
            report = decode(Path(out_json).read_bytes(), RunReport)
            done[name] = [inv for model in report.results[0].models for inv in model.invocations]
            printed[name] = out.stdout
        return done[name]

    profile.stdout = printed  # what each run printed, once it ran
    return profile


def _by_tokens(invocations, tokens: int, ids: str = "input_ids"):
    """The invocation whose ``ids`` hold ``tokens`` positions (the prefill: P; a decode step: 1)."""
    (inv,) = [i for i in invocations for s in i.signature if s.name == ids and s.shape == (1, tokens)]
    return inv


def test_generate_script_counts_the_prefill_and_every_decode_step(profiled):
    """Issue item 1's regression: the prefill is counted against the hand count (not against a full
    cache: 111,027,200 MACs before the fix) and the decode invocation's own characterization is the
    first decode step (context 201), a step that ran."""
    hand = counted(Case("llama", 200, 9)).hand
    invocations = profiled("generate")
    prefill, step = _by_tokens(invocations, 200), _by_tokens(invocations, 1)
    assert (prefill.executed, step.executed) == (1, 8)
    assert prefill.characterization.result.totals.macs == hand.macs(200, 0) == 25_049_600
    assert step.characterization.result.totals.macs == hand.macs(1, 200)
    assert step.characterization.result.generation is None
    generation = prefill.characterization.result.generation
    decode_ = generation.phase("decode")
    assert (generation.prompt_tokens, generation.new_tokens, decode_.steps) == (200, 9, 8)
    assert decode_.macs == sum(hand.macs(1, c) for c in hand.caches(200, 9)) == 1_520_640
    assert decode_.bytes_kv_read == sum(hand.kv_read(1, c) for c in hand.caches(200, 9))
    assert generation.kv_cache_bytes == hand.kv_cache_bytes(208) and generation.exact
    assert not any("copies" in note for note in generation.notes)  # a script's model is counted, not copies of it


def test_hand_written_loop_counts_like_generate(profiled):
    """A loop that passes ``past_key_values`` back, with the inputs generate() gives the model, makes
    the same generation record: every figure, roofline times included."""
    ours = _by_tokens(profiled("loop"), 200).characterization.result.generation
    theirs = _by_tokens(profiled("generate"), 200).characterization.result.generation
    assert_same_record(ours, theirs, "loop vs generate")


def test_loop_whose_first_call_passes_no_cache_is_a_generation(profiled):
    hand = counted(Case("llama", 200, 9)).hand
    generation = _by_tokens(profiled("loop_without_cache"), 200).characterization.result.generation
    assert generation is not None
    assert generation.phase("decode").macs == sum(hand.macs(1, c) for c in hand.caches(200, 9))


def test_characterize_generation_counts_what_the_scripts_generate_runs(profiled):
    """The public entry (generate_loop: prefill into transformers' own cache, positions and
    ``logits_to_keep=1`` as generate() passes them) gives the record discovery makes of a real
    ``model.generate`` (same architecture; MACs, FLOPs and bytes do not depend on the weights)."""
    theirs = _by_tokens(profiled("generate"), 200).characterization.result.generation
    theirs = msgspec.structs.replace(theirs, whatif=[])  # the CLI adds what-ifs (test_generation_whatif.py)
    assert_same_record(counted(Case("llama", 200, 9)).record, theirs, "characterize_generation vs generate()")


def test_encoder_decoder_prompt_keeps_every_cross_attention_pair(profiled):
    """A T5 decoder prompt of 4 tokens: its self-attention is causal (query i keeps i keys), its
    cross-attention over the encoder's 20 outputs is not (every pair counts), then 3 decode steps.
    The script calls the encoder itself (``model.get_encoder()``), as generate() does: the prefill
    includes that call (TTFT is the two invocations' roofline times), and the cache the
    cross-attention's K and V."""
    invocations = profiled("t5_prompt")
    hand = counted(Case("t5", 20, 6)).hand  # S = 20, as the script's encoder input
    prefill_inv = _by_tokens(invocations, 4, "decoder_input_ids")
    encoder_inv = _by_tokens(invocations, 20)
    generation = prefill_inv.characterization.result.generation
    prefill, decode_ = generation.phase("prefill"), generation.phase("decode")
    assert (prefill.macs, prefill.macs_causal) == (hand.macs(4, 0) + hand.encoder_macs(),
                                                   hand.macs_causal(4) + hand.encoder_macs())
    assert prefill.flops == hand.flops(4, 0) + hand.encoder_flops()
    assert (prefill.bytes_kv_read, prefill.bytes_kv_write) == (hand.kv_read(4, 0), hand.kv_write(4, 0))
    own = (encoder_inv.characterization.result.totals, prefill_inv.characterization.result.totals)
    assert (prefill.encoder.macs, own[0].macs) == (hand.encoder_macs(),) * 2
    assert generation.ttft_s == pytest.approx(own[0].roofline_time_s + own[1].roofline_time_s, rel=1e-12)
    caches = hand.caches(4, 4)
    assert decode_.steps == 3 and decode_.macs == sum(hand.macs(1, c) for c in caches)
    assert decode_.flops == sum(hand.flops(1, c) for c in caches)
    assert decode_.bytes_kv_read == sum(hand.kv_read(1, c) for c in caches)
    assert generation.kv_cache_bytes == hand.kv_cache_bytes(7) and generation.exact
    assert generation.kv_cache_cross_bytes == hand.cross_kv() == 2 * 512 * 20
    # the phase table shows the encoder's share under the prefill; the KV line the cross K/V
    printed = profiled.stdout["t5_prompt"]
    # its steps, S, MACs, causal MACs, FLOPs
    assert re.search(r"\n +of which encoder +1 +20 +1\.41 M +1\.41 M +2\.87 M ", printed)
    assert "TTFT" in printed and "(prefill, the encoder included)" in printed
    assert "at the end (20.5 kB of it cross-attention K/V of the encoder's positions)" in printed
