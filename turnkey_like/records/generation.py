"""Generation records: prefill and decode of a causal LM with its KV cache, measured beside the
prediction, and its what-ifs.

Generation (:class:`Generation`, :class:`GenerationPhase`, :class:`StepCost`, :class:`EncoderCost`):
A generation of ``new_tokens`` N from a prompt of P tokens (``prompt_tokens``) at batch B runs one
*prefill* call (the prompt, into an empty KV cache; it yields the first token) and N−1 *decode*
steps (one token each, appended to the cache), at contexts P+1 … P+N−1 (the positions a step's new
token attends to, itself included; ``generate(max_new_tokens=N)`` never feeds its last token back).
An encoder-decoder model runs its encoder once before the decoder's prefill: the prefill phase
includes it (its share: :attr:`GenerationPhase.encoder`), and its cache holds, besides the decoder's
own positions, the cross-attention K and V of the S encoder positions.

The field names of :class:`Generation` and :class:`GenerationPhase` are a contract other tools read
from ``--json`` (docs/generation.md): they do not change. Units: MACs, FLOPs (1 MAC = 2 FLOPs),
bytes, seconds; decode figures are totals over the phase's steps.
"""

from __future__ import annotations

from typing import Literal

from turnkey_like.records.base import Record
from turnkey_like.records.costs import ModuleRow
from turnkey_like.records.hardware import MachineLoad


class StepCost(Record):
    """The cost of one decode step (the first or the last of the phase).

    Attributes:
        context: positions the step's new token attends to (itself included).
        macs, flops: of the step (1 MAC = 2 FLOPs).
        bytes: memory traffic of its ops run one by one (read + written, unfused).
        roofline_time_s: the sum of its ops' roofline times on the generation's hardware profile.
    """

    context: int
    macs: int
    flops: int
    bytes: int
    roofline_time_s: float


class EncoderCost(Record):
    """The encoder's share of an encoder-decoder's prefill phase: its one call, which runs before the
    decoder's first call (so before the first token) and whose output every decoder call
    cross-attends. Its figures are included in the prefill phase's.

    Attributes:
        positions: S, the encoder positions the decoder cross-attends (0 when not known).
        macs, flops: of the encoder's call (1 MAC = 2 FLOPs); none of its MACs is masked (its
            attention is not causal), so they count in ``macs_causal`` too.
        bytes_weights: its parameter (and buffer) bytes read.
        bytes_activations: every other byte of its traffic (it reads and writes no KV cache).
        roofline_time_s: the sum of its ops' roofline times, seconds.
    """

    positions: int
    macs: int
    flops: int
    bytes_weights: int
    bytes_activations: int
    roofline_time_s: float


class GenerationPhase(Record):
    """One phase of a generation: ``prefill`` (one call) or ``decode`` (every step, summed).

    Attributes:
        phase: ``prefill`` or ``decode``.
        steps: calls in the phase (1 for the prefill).
        context_first, context_last: the context of its first and last call (prefill: P).
        macs: MACs as the kernels compute them (a causal prefill's attention is dense, as SDPA's math
            computes it); macs_causal: the part a causal mask keeps (the upper triangle, and positions
            beyond a sliding window, left out).
        flops: FLOPs (1 MAC = 2 FLOPs, plus the non-MAC FLOPs of norms, activations, softmax...).
        bytes_weights: parameter (and buffer) bytes read.
        bytes_kv_read: K and V of the positions each layer attends to, the new ones included, by KV
            heads: for a sliding-window layer of window W, a call of t new tokens reads the union of
            their windows, min(context, W + t − 1) positions (a decode step: min(context, W)); for
            an encoder-decoder, every call also reads each layer's cross-attention K and V of the S
            encoder positions.
        bytes_kv_write: K and V of the new positions (the prefill of an encoder-decoder also writes
            the cross-attention K and V, once).
        bytes_activations: every other byte of traffic, the cache's own copies included (a
            ``torch.cat`` that rewrites the cache is counted here, not hidden).
        roofline_time_s: the sum over its calls of their ops' roofline times, seconds.
        step_first, step_last: decode only: the first and the last step.
        modules: decode only: the per-module table summed over the steps (``tk profile --phase
            decode``); the prefill's is its characterization's own.
        encoder: prefill of an encoder-decoder only: the encoder's share of the figures above
            (:class:`EncoderCost`); ``None`` otherwise, or where the prefill call ran the encoder
            itself (its figures are then the call's own).
    """

    phase: Literal["prefill", "decode"]
    steps: int
    context_first: int
    context_last: int
    macs: int
    macs_causal: int
    flops: int
    bytes_weights: int
    bytes_kv_read: int
    bytes_kv_write: int
    bytes_activations: int
    roofline_time_s: float
    step_first: StepCost | None = None
    step_last: StepCost | None = None
    modules: list[ModuleRow] = []
    encoder: EncoderCost | None = None


class MeasuredGeneration(Record):
    """One generation timed on one runtime and device, beside the prediction (``tk benchmark`` on a
    generation; ``turnkey_like.runtimes.generation`` measures it, docs/generation.md says how).

    TTFT is the time of the prefill call (prompt to first token's logits); TPOT the mean time of one
    decode step over the same N − 1 steps the prediction covers; each is the median over
    ``repeats`` generations after ``warmup`` untimed ones. Ratios are measured ÷ predicted
    (:attr:`Generation.ttft_s`, :attr:`Generation.tpot_s`, on :attr:`Generation.hardware`).

    Attributes:
        runtime: ``torch-eager`` or ``ort`` (ONNX Runtime on the exported prefill and decode-step graphs).
        device: ``cpu`` or ``cuda``.
        status: ``successful``, ``error`` (``error`` says why: an export that failed, a crash, a
            timeout) or ``skipped`` (``error`` says why: no CUDA device, a model tk cannot generate with).
        measured_ttft_s, measured_tpot_s: seconds (``measured_tpot_s`` is ``None`` when N = 1).
        ratio_ttft, ratio_tpot: measured ÷ predicted (``None`` without both figures).
        repeats: generations timed; warmup: generations run before them, untimed.
        decode_steps: decode steps per generation (N − 1).
        runtime_version, device_name, threads: what ran it (threads: intra-op threads).
        flags: one line per finding the figures show: a ratio below
            ``turnkey_like.runtimes.generation.PROFILE_ERROR_RATIO`` (the run beat the roofline, so
            the profile's peaks, or the count, are wrong), never hidden.
        load: how busy the machine was while the repeats ran.
        error: why the entry has no figures (status ``error`` or ``skipped``).
    """

    runtime: str
    device: str
    status: Literal["successful", "error", "skipped"]
    measured_ttft_s: float | None = None
    measured_tpot_s: float | None = None
    ratio_ttft: float | None = None
    ratio_tpot: float | None = None
    repeats: int = 0
    warmup: int = 0
    decode_steps: int = 0
    runtime_version: str = ""
    device_name: str = ""
    threads: int | None = None
    flags: list[str] = []
    load: MachineLoad | None = None
    error: str | None = None


class Generation(Record):
    """Prefill and decode of one generation, with the predicted latencies (see the module docstring).

    Attributes:
        batch_size: sequences generated together (B).
        prompt_tokens: P; new_tokens: N.
        phases: the prefill, then the decode phase (absent when N is 1).
        ttft_s: predicted time to first token: the prefill's roofline time (an encoder-decoder's
            encoder included).
        tpot_s: predicted time per output token: the mean decode step's roofline time (``None``
            without decode steps).
        tokens_per_s: ``batch_size / tpot_s``.
        kv_cache_bytes_per_token: K and V bytes one position of one sequence adds, over all layers
            that store positions (what a position costs in the cache's memory).
        kv_cache_bytes: K and V bytes the cache holds at the end (every sequence; sliding-window
            layers hold at most their window; an encoder-decoder's cross-attention K and V included).
        kv_cache_cross_bytes: of ``kv_cache_bytes``, the cross-attention K and V of an
            encoder-decoder (every sequence, every decoder layer, the S encoder positions): written
            once by the prefill, read by every call, fixed whatever the context; 0 for a decoder-only
            model.
        hardware: the profile the roofline times are on.
        params_total: the model's parameters; params_active: those a decode step reads (MoE
            models read only their routed experts), estimated as ``bytes_weights`` of the first
            step ÷ the bytes per parameter.
        exact: every step's cost is counted or follows exactly from counted ones (see
            docs/generation.md); ``False`` with the reason in ``notes``.
        notes: how the figures were made, and anything estimated.
        measured: the generation timed on each runtime and device (``tk benchmark``), beside the
            predicted TTFT and TPOT (:class:`MeasuredGeneration`); empty until benchmarked.
    """

    batch_size: int
    prompt_tokens: int
    new_tokens: int
    phases: list[GenerationPhase]
    ttft_s: float
    tpot_s: float | None
    tokens_per_s: float | None
    kv_cache_bytes_per_token: int
    kv_cache_bytes: int
    kv_cache_cross_bytes: int = 0
    hardware: str = ""
    params_total: int = 0
    params_active: int = 0
    exact: bool = True
    notes: list[str] = []
    measured: list[MeasuredGeneration] = []
    shape: GenerationShape | None = None
    whatif: list[WhatIf] = []

    def phase(self, name: str) -> GenerationPhase | None:
        """The phase called ``name`` (``prefill`` or ``decode``), or ``None``."""
        return next((p for p in self.phases if p.phase == name), None)


# --------------------------------------------------------------------------------------------------
# Generation what-ifs: other dtypes, tensor parallelism and memory capacity, from the counted record
# (turnkey_like.characterize.generation_whatif; docs/generation.md, "What-ifs")
# --------------------------------------------------------------------------------------------------

class GenerationShape(Record):
    """What the what-ifs need of the model's shape, recorded when the generation is counted.

    Attributes:
        dtype: the dtype the model was counted at (its parameters' and activations' main dtype).
        kv_itemsize: bytes per K/V element as the cache stored them.
        layers: cache layers that store positions (a decoder's self-attention layers).
        kv_heads: key/value heads per layer (the most of any layer); 0 when not known.
        head_dim, value_dim: the keys' and the values' head dimension (0 when not known).
        hidden_size: the width of the residual stream, read from the token embedding's output (the
            ``embedding`` op with the largest table); ``None`` when the model ran no embedding op
            (then tensor parallelism's all-reduce bytes are left out).
    """

    dtype: str
    kv_itemsize: int
    layers: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    value_dim: int = 0
    hidden_size: int | None = None


class WhatIfPhase(Record):
    """One phase of a what-if, per device, summed over the phase's steps.

    Attributes:
        phase: ``prefill`` or ``decode``; steps: calls in the phase.
        flops: FLOPs per device (the counted FLOPs ÷ the tensor-parallel degree).
        bytes_weights, bytes_kv_read, bytes_kv_write, bytes_activations: the counted bytes scaled to
            the what-if's weight, KV and activation dtypes, per device.
        bytes_allreduce: bytes each device sends for tensor parallelism's all-reduces (ring:
            2(N−1)/N of each buffer); 0 on one device.
        compute_time_s: ``flops`` ÷ the peak of the math dtype.
        memory_time_s: (weights + KV + activation bytes) ÷ memory bandwidth.
        comm_time_s: ``bytes_allreduce`` ÷ the interconnect's bandwidth per direction; ``None`` when the
            profile has no interconnect figure (left out of ``time_s``).
        time_s: max(compute, memory) + communication: the phase's roofline time, phase-level.
        bound: ``compute-bound`` when compute time ≥ memory time, else ``memory-bound``.
    """

    phase: Literal["prefill", "decode"]
    steps: int
    flops: int
    bytes_weights: int
    bytes_kv_read: int
    bytes_kv_write: int
    bytes_activations: int
    bytes_allreduce: int
    compute_time_s: float
    memory_time_s: float
    comm_time_s: float | None
    time_s: float
    bound: str


class Capacity(Record):
    """What fits one device's memory: the weights and the KV cache at the final context.

    Left out: activations, the runtime's workspace, the CUDA context and allocator fragmentation
    (``WhatIf.memory_reserve`` keeps a share of the memory back for them).

    Attributes:
        memory_bytes: the device's memory (the profile's ``memory_bytes``); ``None`` when unknown.
        usable_bytes: ``memory_bytes`` × (1 − reserve); ``None`` when unknown.
        weight_bytes: the parameters at the weight dtype, per device (all of them stay resident:
            every expert of an MoE model).
        kv_bytes_per_token: K and V bytes one position of one sequence holds, per device.
        context: positions a sequence holds in the cache at the end (P + N − 1).
        kv_bytes_per_sequence: K and V bytes one sequence holds at the end, per device (a
            sliding-window layer holds its window).
        max_batch: the most sequences whose KV cache fits beside the weights (0: the weights alone
            do not fit); ``None`` when the memory is not known or a sequence holds no KV bytes.
        fits: the generation's own batch fits; ``None`` when the memory is not known.
        min_tensor_parallel: the smallest tensor-parallel degree (1, 2, 4 … 64) at which the
            generation's batch fits each device; ``None`` when none does or the memory is unknown.
    """

    memory_bytes: int | None
    usable_bytes: int | None
    weight_bytes: int
    kv_bytes_per_token: int
    context: int
    kv_bytes_per_sequence: int
    max_batch: int | None
    fits: bool | None
    min_tensor_parallel: int | None


class WhatIf(Record):
    """The generation on one hardware profile at other dtypes and tensor-parallel degree, computed
    from the counted record without running the model again (phase-level roofline; see
    ``turnkey_like.characterize.generation_whatif``).

    Attributes:
        hardware: the profile's name.
        weight_dtype, act_dtype, kv_dtype: the dtypes of the weights, the activations and the KV
            cache (``float32``, ``bfloat16``, ``float16``, ``float8``, ``int8``, ``int4``).
        math_dtype: the dtype whose peak the FLOPs run at; peak_flops: that peak, FLOP/s (op/s for
            integers); peak_rule: one line saying why.
        tensor_parallel: devices the model is split over (Megatron-style).
        memory_reserve: the share of each device's memory kept back (``Capacity``).
        phases: prefill, then decode (when the generation has decode steps).
        ttft_s: the prefill's time; tpot_s: the mean decode step's; tokens_per_s: batch ÷ tpot_s.
        decode_knee_batch: the batch at which decode turns compute-bound, extrapolated from this
            batch (FLOPs, KV and activation bytes grow with the batch; weight bytes do not);
            ``None`` when decode stays memory-bound at every batch (its per-sequence arithmetic
            intensity is below the ridge point).
        decode_knee_batch_kv_only: the same with decode's activation bytes left out, as if its only
            traffic besides the weights were the KV cache's reads and writes (a fused attention
            kernel over a cache written in place, as FlashAttention or PagedAttention run it; the
            counted activations include the cache's ``torch.cat`` copies and GQA's repeated K/V).
        capacity: what fits the device's memory.
        notes: what is approximated or left out, one line each.
    """

    hardware: str
    weight_dtype: str
    act_dtype: str
    kv_dtype: str
    math_dtype: str
    peak_flops: float
    peak_rule: str
    tensor_parallel: int
    memory_reserve: float
    phases: list[WhatIfPhase]
    ttft_s: float
    tpot_s: float | None
    tokens_per_s: float | None
    decode_knee_batch: float | None
    decode_knee_batch_kv_only: float | None
    capacity: Capacity
    notes: list[str] = []

    def phase(self, name: str) -> WhatIfPhase | None:
        """The phase called ``name`` (``prefill`` or ``decode``), or ``None``."""
        return next((p for p in self.phases if p.phase == name), None)
