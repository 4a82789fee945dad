"""Generation what-ifs: the counted generation at other dtypes, split over several devices, and what
fits a device's memory, computed from the :class:`~turnkey_like.records.Generation` record alone
(the model is not run again). docs/generation.md ("What-ifs") derives every rule below.

**Bytes.** A phase's counted bytes are scaled by the what-if's element sizes against the dtypes they
were counted at: ``bytes_weights`` by the weight dtype's size ÷ the model dtype's, ``bytes_kv_read``
and ``bytes_kv_write`` by the KV dtype's ÷ the cache's element size as stored, ``bytes_activations``
by the activation dtype's ÷ the model dtype's (:data:`DTYPE_BYTES`; int4 is half a byte). The
scales and zero points of quantized weights are left out.

**Peak** (:func:`math_dtype`). A matmul runs at the wider of the weight and activation dtypes, and
at the activations' kind when they are as wide: a narrower operand is converted up inside the
kernel, never the wider one down. So W4A16 and W8A16 (weight-only) run at the 16-bit peak
(TensorRT-LLM: weight-only weights are "dequantized on the fly in linear layers", activations stay
FP16/BF16), W8A8 at the int8 peak (TensorRT-LLM SmoothQuant: "INT8 for both activations and
weights"), W4A8 with FP8 activations at the float8 peak (TensorRT Model Optimizer's W4A8 AWQ: INT4
weights, FP8 activations, Ada and later), W4A8 with int8 activations at the int8 peak. A profile
without a peak for that dtype (no such math units: A100 has no FP8, H100 no INT4) runs it at the next
wider one it has (int4 → int8; float8 → float16; 16-bit → float32).

**Time** is the phase-level roofline: max(FLOPs ÷ peak, bytes ÷ bandwidth) over each phase's totals,
every FLOP at the one peak (the record keeps no per-op figures per phase; its own
``roofline_time_s`` sums each op's roofline time at the op's dtype, which is never less). Decode is
summed over its steps, so TPOT is the phase's time ÷ its steps.

**Tensor parallelism** over N devices (Megatron-LM: Shoeybi et al. 2019, arXiv:1909.08053, §3):
FLOPs, weight and activation bytes ÷ N; the KV cache by KV heads, ⌈K ÷ N⌉ of K heads per device
(heads are replicated when N > K); two all-reduces per transformer layer in the forward pass (after
the attention's and the MLP's row-parallel matmul), each of B·T·hidden activations. A ring all-reduce
makes each device send 2(N−1)/N of the buffer, and takes (S ÷ B)·2(N−1)/N at a per-device bandwidth
B (NCCL tests, doc/PERFORMANCE.md, "AllReduce"); the profile's ``interconnect_bandwidth`` is B. The
all-reduce time adds to the phase's time (Megatron's all-reduces sit on the critical path); their
latency and the embedding's and LM head's collectives are left out.

**Capacity** (:func:`capacity`): the parameters at the weight dtype (all of them resident: every
expert of an MoE model) plus the KV cache at the final context (P + N − 1 positions; an
encoder-decoder's cross-attention K and V of its S encoder positions too) for each sequence, against
the device's memory less ``memory_reserve``. Activations, the runtime's workspace
and the CUDA context are left out.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable

import msgspec

from turnkey_like.errors import InputError
from turnkey_like.records import (Capacity, Characterization, Generation, GenerationPhase, GenerationShape,
                                  HardwareProfile, ScriptResult, Status, WhatIf, WhatIfPhase)

#: bytes per element of each dtype a what-if takes (int4: two elements a byte)
DTYPE_BYTES: dict[str, float] = {"float32": 4, "bfloat16": 2, "float16": 2, "float8": 1, "int8": 1, "int4": 0.5}

#: the names the command line accepts for each dtype
DTYPE_ALIASES: dict[str, str] = {
    "fp32": "float32", "float32": "float32", "float": "float32",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp16": "float16", "float16": "float16", "half": "float16",
    "fp8": "float8", "float8": "float8", "float8_e4m3fn": "float8", "float8_e5m2": "float8", "e4m3": "float8",
    "int8": "int8", "int4": "int4",
}

#: the dtype a profile without a peak for a dtype runs it at (the next wider one)
_WIDER = {"int4": "int8", "int8": "float16", "float8": "float16", "float16": "float32", "bfloat16": "float32"}

#: tensor-parallel degrees tried for ``Capacity.min_tensor_parallel``
TP_DEGREES = (1, 2, 4, 8, 16, 32, 64)

_MEGATRON = "Megatron-LM (Shoeybi et al. 2019, arXiv:1909.08053, §3)"
_NCCL = "NCCL tests doc/PERFORMANCE.md"


def canonical_dtype(name: str) -> str:
    """The what-if dtype called ``name`` (``fp8`` → ``float8``; see :data:`DTYPE_ALIASES`).

    Raises:
        InputError: an unknown name; the hint lists the accepted ones.
    """
    key = name.strip().lower().removeprefix("torch.")
    if key not in DTYPE_ALIASES:
        raise InputError(f"unknown dtype {name!r}", hint="choose from fp32, bf16, fp16, fp8, int8, int4")
    return DTYPE_ALIASES[key]


def _size(dtype: str) -> float:
    """Bytes per element of a model dtype (``float64`` included); float32's for one tk does not know."""
    if dtype in DTYPE_BYTES:
        return DTYPE_BYTES[dtype]
    return {"float64": 8.0, "int64": 8.0, "int32": 4.0, "int16": 2.0, "uint8": 1.0}.get(dtype, 4.0)


@dataclass(frozen=True)
class WhatIfOptions:
    """What to ask of each generation: dtype lists (empty: the dtype it was counted at), tensor-parallel
    degrees and the share of memory kept back. Every combination makes one :class:`WhatIf` per profile."""

    weight_dtypes: tuple[str, ...] = ()
    act_dtypes: tuple[str, ...] = ()
    kv_dtypes: tuple[str, ...] = ()
    tensor_parallel: tuple[int, ...] = (1,)
    memory_reserve: float = 0.0


def math_dtype(weight: str, act: str, profile: HardwareProfile) -> tuple[str, str]:
    """``(dtype, rule)``: the dtype whose peak a matmul of ``weight``-dtype weights and ``act``-dtype
    activations runs at on ``profile``, and one line saying why (the rule: module docstring).

    Examples (A100): ``int4``/``bfloat16`` → ``bfloat16`` (weight-only); ``int8``/``int8`` → ``int8``;
    ``float8``/``float8`` → ``float16`` (A100 has no float8 peak). H100: ``int4``/``float8`` →
    ``float8``; ``int4``/``int4`` → ``int8`` (no int4 peak).
    """
    if DTYPE_BYTES[weight] > DTYPE_BYTES[act]:
        chosen, why = weight, f"weights {weight} wider than activations {act}: the math runs at {weight}"
    elif weight == act:
        chosen, why = act, f"weights and activations {act}"
    elif DTYPE_BYTES[weight] < DTYPE_BYTES[act]:
        chosen, why = act, f"{weight} weights converted up to the {act} activations in the matmul"
    else:
        chosen, why = act, f"{weight} weights with {act} activations: the activations' kind"
    while chosen not in profile.peak_flops and chosen in _WIDER:
        wider = _WIDER[chosen]
        why += f"; {profile.name} has no {chosen} peak, so {wider}"
        chosen = wider
    return chosen, why


def generation_shape(prefill: Characterization, geometry: Iterable) -> GenerationShape:
    """The :class:`~turnkey_like.records.GenerationShape` of a generation: the model dtype of its
    prefill's characterization, the KV cache's layers, heads and element size from ``geometry``
    (``kv_cache.LayerKV`` per cache layer, ``None`` for a layer without positions; empty when not
    known: the cache's element size is then the model dtype's), and the hidden size from the token
    embedding's output width (the ``embedding`` op with the largest table; ``None`` when there is none).
    """
    layers = [g for g in geometry if g is not None]
    embeddings = [r for r in prefill.rows if ".embedding." in f".{r.op}."]
    hidden = None
    if embeddings:
        table = max(embeddings, key=lambda r: r.input_shapes[0][0] if isinstance(r.input_shapes[0][0], int) else 0)
        width = table.output_shapes[0][-1] if table.output_shapes and table.output_shapes[0] else None
        hidden = width if isinstance(width, int) else None
    return GenerationShape(
        dtype=prefill.dtype, kv_itemsize=layers[0].itemsize if layers else int(_size(prefill.dtype)) or 1,
        layers=len(layers), kv_heads=max((g.kv_heads for g in layers), default=0),
        head_dim=layers[0].head_dim if layers else 0, value_dim=layers[0].value_dim if layers else 0,
        hidden_size=hidden)


def _kv_dtype_name(shape: GenerationShape) -> str:
    """The what-if name of the dtype the cache was stored at: the model's when the sizes agree."""
    if shape.dtype in DTYPE_BYTES and DTYPE_BYTES[shape.dtype] == shape.kv_itemsize:
        return shape.dtype
    return {4: "float32", 2: "float16", 1: "int8"}.get(shape.kv_itemsize, shape.dtype)


def _heads_share(shape: GenerationShape, tp: int) -> float:
    """The share of the KV cache one of ``tp`` devices holds: ⌈K ÷ N⌉ of K heads (1 ÷ N when K is
    not known)."""
    if tp == 1:
        return 1.0
    if not shape.kv_heads:
        return 1.0 / tp
    return math.ceil(shape.kv_heads / tp) / shape.kv_heads


@dataclass(frozen=True)
class _Scale:
    """Per-device byte factors of one what-if against the counted record."""

    weights: float
    kv: float
    act: float
    flops: float


def _phase(phase: GenerationPhase, scale: _Scale, allreduce: int, peak: float, profile: HardwareProfile) -> WhatIfPhase:
    """One phase of a what-if: the counted figures scaled, and its phase-level roofline time."""
    w = int(round(phase.bytes_weights * scale.weights))
    kr, kw = int(round(phase.bytes_kv_read * scale.kv)), int(round(phase.bytes_kv_write * scale.kv))
    act = int(round(phase.bytes_activations * scale.act))
    flops = int(round(phase.flops * scale.flops))
    compute, memory = flops / peak, (w + kr + kw + act) / profile.memory_bandwidth
    comm = None
    if not allreduce:
        comm = 0.0
    elif profile.interconnect_bandwidth:
        comm = allreduce / profile.interconnect_bandwidth
    return WhatIfPhase(phase=phase.phase, steps=phase.steps, flops=flops, bytes_weights=w, bytes_kv_read=kr,
                       bytes_kv_write=kw, bytes_activations=act, bytes_allreduce=allreduce,
                       compute_time_s=compute, memory_time_s=memory, comm_time_s=comm,
                       time_s=max(compute, memory) + (comm or 0.0),
                       bound="compute-bound" if compute >= memory else "memory-bound")


def _allreduce_bytes(phase: GenerationPhase, gen: Generation, shape: GenerationShape, act_dtype: str, tp: int) -> int:
    """Bytes each of ``tp`` devices sends for the phase's all-reduces: 2 per layer (Megatron-LM) of
    B·T·hidden activations each, T the tokens of each call (prefill: P; a decode step: 1), ring
    all-reduce 2(N−1)/N of each (NCCL); 0 on one device or when the hidden size is not known."""
    if tp == 1 or not shape.hidden_size or not shape.layers:
        return 0
    tokens = gen.batch_size * (gen.prompt_tokens if phase.phase == "prefill" else phase.steps)
    buffer = 2 * shape.layers * tokens * shape.hidden_size * DTYPE_BYTES[act_dtype]
    return int(round(buffer * 2 * (tp - 1) / tp))


def capacity(gen: Generation, profile: HardwareProfile, shape: GenerationShape, *, weight_dtype: str,
             kv_dtype: str, tensor_parallel: int = 1, memory_reserve: float = 0.0) -> Capacity:
    """What fits each device of ``profile`` (see :class:`~turnkey_like.records.Capacity`): the
    parameters at ``weight_dtype`` ÷ N, and per sequence the KV cache at the final context at
    ``kv_dtype`` (its share of the KV heads), against ``memory_bytes`` × (1 − ``memory_reserve``).

    ``max_batch`` = ⌊(usable − weights) ÷ KV bytes per sequence⌋; ``min_tensor_parallel`` the smallest
    degree in :data:`TP_DEGREES` at which the generation's batch fits.
    """
    kv_factor = DTYPE_BYTES[kv_dtype] / shape.kv_itemsize

    def per_device(tp: int) -> tuple[int, int, int]:
        share = _heads_share(shape, tp)
        weights = math.ceil(gen.params_total * DTYPE_BYTES[weight_dtype] / tp)
        per_token = int(round(gen.kv_cache_bytes_per_token * kv_factor * share))
        per_seq = int(round(gen.kv_cache_bytes / max(gen.batch_size, 1) * kv_factor * share))
        return weights, per_token, per_seq

    weights, per_token, per_seq = per_device(tensor_parallel)
    context = gen.prompt_tokens + gen.new_tokens - 1
    memory = profile.memory_bytes
    if memory is None:
        return Capacity(memory_bytes=None, usable_bytes=None, weight_bytes=weights, kv_bytes_per_token=per_token,
                        context=context, kv_bytes_per_sequence=per_seq, max_batch=None, fits=None,
                        min_tensor_parallel=None)
    usable = int(memory * (1.0 - memory_reserve))
    if usable < weights:
        max_batch: int | None = 0
    else:
        max_batch = (usable - weights) // per_seq if per_seq else None
    smallest = None
    for tp in TP_DEGREES:
        w, _, s = per_device(tp)
        if w + gen.batch_size * s <= usable:
            smallest = tp
            break
    return Capacity(memory_bytes=memory, usable_bytes=usable, weight_bytes=weights, kv_bytes_per_token=per_token,
                    context=context, kv_bytes_per_sequence=per_seq, max_batch=max_batch,
                    fits=weights + gen.batch_size * per_seq <= usable, min_tensor_parallel=smallest)


def _knee(decode: WhatIfPhase, batch: int, peak: float, profile: HardwareProfile, *,
          activations: bool = True) -> float | None:
    """The batch at which decode's compute time reaches its memory time: FLOPs and KV/activation
    bytes grow with the batch, weight bytes do not, so with f FLOPs and s bytes per sequence and W
    weight bytes, b·f ÷ peak = (W + b·s) ÷ bandwidth at b = (W ÷ bandwidth) ÷ (f ÷ peak − s ÷ bandwidth);
    ``None`` when f ÷ peak ≤ s ÷ bandwidth (memory-bound at every batch). ``activations=False``
    leaves the activation bytes out of s (``WhatIf.decode_knee_batch_kv_only``)."""
    f = decode.flops / batch / peak
    per_batch = decode.bytes_kv_read + decode.bytes_kv_write + (decode.bytes_activations if activations else 0)
    s = per_batch / batch / profile.memory_bandwidth
    if f <= s:
        return None
    return decode.bytes_weights / profile.memory_bandwidth / (f - s)


def _notes(shape: GenerationShape, profile: HardwareProfile, weight: str, tp: int, encoder: bool = False) -> list[str]:
    """What a what-if approximates or leaves out, one line each (``encoder``: the prefill includes an
    encoder-decoder's encoder)."""
    notes = ["phase-level roofline: max(FLOPs ÷ peak, bytes ÷ bandwidth) over each phase's totals, every FLOP at "
             "the math dtype's peak (the record's own roofline time is summed per op, at each op's dtype)"]
    if DTYPE_BYTES[weight] <= 1:
        notes.append(f"{weight} weights: their scales and zero points are left out")
    if tp > 1:
        notes.append(f"tensor parallel {tp}: FLOPs, weight and activation bytes ÷ {tp}, the KV cache by KV heads; "
                     f"2 all-reduces per layer ({_MEGATRON}), ring: each device sends 2(N−1)/N of each ({_NCCL}); "
                     "collective latency and the embedding's and LM head's collectives left out")
        if not shape.hidden_size or not shape.layers:
            notes.append("hidden size or layers not known (no embedding op or KV cache seen): all-reduce bytes "
                         "left out")
        elif not profile.interconnect_bandwidth:
            notes.append(f"{profile.name} has no interconnect figure: all-reduce time left out")
        if not shape.kv_heads:
            notes.append(f"KV heads not known: the KV cache taken as split {tp} ways")
        if encoder:
            notes.append("the encoder's all-reduces left out (the prefill's are the decoder's layers')")
    return notes


def whatif(gen: Generation, profile: HardwareProfile, *, shape: GenerationShape | None = None,
           weight_dtype: str | None = None, act_dtype: str | None = None, kv_dtype: str | None = None,
           tensor_parallel: int = 1, memory_reserve: float = 0.0) -> WhatIf:
    """The :class:`~turnkey_like.records.WhatIf` of ``gen`` on ``profile`` at these dtypes (``None``:
    the dtype it was counted at) over ``tensor_parallel`` devices (rules: module docstring).

    Args:
        shape: the generation's shape (default ``gen.shape``).
        memory_reserve: the share of each device's memory kept back, 0 ≤ x < 1.

    Raises:
        ValueError: no shape (a record from a tk before what-ifs: pass one built with
            :func:`generation_shape`), ``tensor_parallel`` < 1 or ``memory_reserve`` outside [0, 1).
    """
    shape = shape or gen.shape
    if shape is None:
        raise ValueError("the generation has no shape: pass shape=generation_shape(characterization, [])")
    if tensor_parallel < 1 or not 0.0 <= memory_reserve < 1.0:
        raise ValueError(f"tensor_parallel {tensor_parallel} (≥ 1), memory_reserve {memory_reserve} (0 ≤ x < 1)")
    model = shape.dtype if shape.dtype in DTYPE_BYTES else "float32"
    weight, act = weight_dtype or model, act_dtype or model
    kv = kv_dtype or _kv_dtype_name(shape)
    math_name, rule = math_dtype(weight, act, profile)
    peak = profile.peak(math_name)
    tp = tensor_parallel
    scale = _Scale(weights=DTYPE_BYTES[weight] / _size(shape.dtype) / tp,
                   kv=DTYPE_BYTES[kv] / shape.kv_itemsize * _heads_share(shape, tp),
                   act=DTYPE_BYTES[act] / _size(shape.dtype) / tp, flops=1.0 / tp)
    phases = [_phase(p, scale, _allreduce_bytes(p, gen, shape, act, tp), peak, profile) for p in gen.phases]
    prefill = next(p for p in phases if p.phase == "prefill")
    decode = next((p for p in phases if p.phase == "decode"), None)
    tpot = decode.time_s / decode.steps if decode is not None and decode.steps else None
    return WhatIf(
        hardware=profile.name, weight_dtype=weight, act_dtype=act, kv_dtype=kv, math_dtype=math_name,
        peak_flops=peak, peak_rule=rule, tensor_parallel=tp, memory_reserve=memory_reserve, phases=phases,
        ttft_s=prefill.time_s, tpot_s=tpot, tokens_per_s=gen.batch_size / tpot if tpot else None,
        decode_knee_batch=_knee(decode, gen.batch_size, peak, profile) if decode is not None else None,
        decode_knee_batch_kv_only=(_knee(decode, gen.batch_size, peak, profile, activations=False)
                                   if decode is not None else None),
        capacity=capacity(gen, profile, shape, weight_dtype=weight, kv_dtype=kv, tensor_parallel=tp,
                          memory_reserve=memory_reserve),
        notes=_notes(shape, profile, weight, tp, gen.phases[0].encoder is not None))


def with_whatifs(char: Characterization, profiles: Iterable[HardwareProfile], options: WhatIfOptions) -> Generation:
    """``char.generation`` with one :class:`~turnkey_like.records.WhatIf` per profile and per
    combination of ``options`` (weight × activation × KV dtype × tensor-parallel degree), in that
    order; a record without a shape (tk before what-ifs) gets one from ``char`` (KV heads unknown).

    Raises:
        ValueError: ``char`` has no generation.
    """
    gen = char.generation
    if gen is None:
        raise ValueError("the characterization has no generation")
    shape = gen.shape or generation_shape(char, [])
    found = [whatif(gen, profile, shape=shape, weight_dtype=weight, act_dtype=act, kv_dtype=kv, tensor_parallel=tp,
                    memory_reserve=options.memory_reserve)
             for profile, weight, act, kv, tp in itertools.product(
                 profiles, options.weight_dtypes or (None,), options.act_dtypes or (None,),
                 options.kv_dtypes or (None,), options.tensor_parallel or (1,))]
    return msgspec.structs.replace(gen, shape=shape, whatif=found)


def add_whatifs(result: ScriptResult, extra_profiles: Iterable[HardwareProfile], options: WhatIfOptions) -> int:
    """Give every generation in ``result`` its what-ifs (:func:`with_whatifs`) on its own profile, then
    ``extra_profiles`` (those of another name); the records are changed in place. Returns how many
    generations got them."""
    extra = list(extra_profiles)
    done = 0
    for _model, inv in result.invocations():
        stage = inv.characterization
        char = stage.result if stage.status == Status.SUCCESSFUL else None
        if char is None or char.generation is None:
            continue
        profiles = [char.hardware, *(p for p in extra if p.name != char.hardware.name)]
        char.generation = with_whatifs(char, profiles, options)
        done += 1
    return done


__all__ = ["DTYPE_ALIASES", "DTYPE_BYTES", "TP_DEGREES", "WhatIfOptions", "add_whatifs", "canonical_dtype", "capacity",
           "generation_shape", "math_dtype", "whatif", "with_whatifs"]
