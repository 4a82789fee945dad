"""Generation counted exactly: the prefill and every decode step of a causal LM, from a few counted calls.

Input: a :class:`~turnkey_like.generation_trace.GenerationTrace` (what discovery saw: the prefill,
the cache's state before each decode step, and copies of the first steps of each segment) and the
prefill's own :class:`~turnkey_like.records.Characterization`. Output: a
:class:`~turnkey_like.records.Generation`.

How every step is exact without counting every step (docs/generation.md derives it): a decode step's
ops are the same from one step to the next, and the shape of each op grows with the positions each
cache layer holds, which grow by a fixed amount per step within a *segment*. Every op's MACs, FLOPs
and bytes are polynomials of degree one in those positions (attention reads and multiplies one key
and value per position; nothing else depends on them), so within a segment each figure of each op
is affine in the step index: two counted steps give the line, and a third, counted too, must lie on
it (else the figures are marked estimated, with the reason). A segment's total is then a sum of an
arithmetic series, and its roofline time the sum over its steps of each op's
max(FLOPs ÷ peak, bytes ÷ bandwidth), evaluated for every step (a few array operations).

KV-cache traffic is defined by the cache itself (``kv_cache.layer_geometry``: batch, KV heads, head
dimensions and element size of each layer that stores positions), so it is counted by KV heads
(GQA/MQA) and by window (sliding-window layers): a call reads K and V of min(context, window)
positions per layer and writes K and V of its new positions. An encoder-decoder's cache also holds
each decoder layer's cross-attention K and V of the S encoder positions (:attr:`GenerationTrace.cross`):
the prefill writes them once, every call reads them.

An encoder-decoder's encoder runs once, before the decoder's prefill, on its own call
(:attr:`GenerationTrace.encoder`): it is counted and its figures join the prefill's, so TTFT
includes it (:func:`prefill_phase`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import msgspec

from turnkey_like.characterize.generation_whatif import generation_shape
from turnkey_like.generation_trace import GenerationTrace
from turnkey_like.kv_cache import LayerKV, find_cache, layer_geometry
from turnkey_like.records import Characterization, EncoderCost, Generation, GenerationPhase, ModuleRow, StepCost

#: Op names of attention kernels whose MACs the causal mask partly wastes (SDPA and its backends).
ATTENTION_OPS = ("scaled_dot_product", "_flash_attention", "_efficient_attention", "_cudnn_attention")

_FIGURES = ("macs", "flops", "bytes_read", "bytes_written", "weight_bytes")

#: The note of a generation with more segments than its trace keeps copies of.
TRUNCATED = "more segments than tk keeps copies of: later steps estimated"


#: The per-module figures summed over the decode phase (the rest of a ModuleRow is copied or derived).
_MODULE_FIGURES = ("macs", "flops", "bytes_read", "bytes_written", "ops", "self_macs", "self_flops", "self_bytes",
                   "self_ops", "roofline_time_s")


class _Point(NamedTuple):
    """One counted decode step: its figures, its ops' FLOPs and bytes (for roofline times), its modules."""

    figures: dict[str, int]
    ops: list[tuple[str, str | None, int, int]]  # (op, dtype, flops, bytes)
    modules: list[ModuleRow]


def _point(char: Characterization) -> _Point:
    t = char.totals
    return _Point({"macs": t.macs, "flops": t.flops, "bytes_read": t.bytes_read, "bytes_written": t.bytes_written,
                   "weight_bytes": t.weight_bytes},
                  [(r.op, r.dtype, r.flops, r.bytes_read + r.bytes_written) for r in char.rows], char.modules)


def _module_sums(segments: list[tuple[int, int, _Point, _Point | None, int]], profile) -> list[ModuleRow]:
    """Per-module totals over every decode step: each module figure is affine in the step index within
    a segment, as the ops' are (``segments``: (first, last, counted point, second point or None, the
    second point's distance)). Roofline times follow the same line (a module whose ops cross the ridge
    point within a segment is approximated); intensity and bound are those of the sums."""
    from turnkey_like.characterize.roofline import classify

    base = segments[0][2].modules
    sums = {m.path: dict.fromkeys(_MODULE_FIGURES, 0.0) for m in base}
    for a, b, p0, p1, d in segments:
        n = b - a + 1
        ks = n * (n - 1) / 2  # sum of (k - a) over the segment
        second = {m.path: m for m in p1.modules} if p1 is not None else {}
        for m in p0.modules:
            if m.path not in sums:
                continue
            other = second.get(m.path)
            for f in _MODULE_FIGURES:
                v0 = getattr(m, f)
                slope = (getattr(other, f) - v0) / d if other is not None else 0
                sums[m.path][f] += v0 * n + slope * ks
    rows = []
    for m in base:
        v = sums[m.path]
        kw = {f: (float(v[f]) if f == "roofline_time_s" else int(round(v[f]))) for f in _MODULE_FIGURES}
        nbytes = kw["bytes_read"] + kw["bytes_written"]
        rows.append(msgspec.structs.replace(
            m, **kw, arithmetic_intensity=kw["flops"] / nbytes if nbytes else None,
            bound=classify(kw["flops"], nbytes, profile, None)))
    return rows


def _kv_bytes(geometry: list[LayerKV | None], seen_before: tuple[int, ...], new: int) -> tuple[int, int]:
    """``(K/V bytes read, K/V bytes written)`` of one call that adds ``new`` positions to layers that
    had seen ``seen_before`` positions: each layer reads K and V of the positions its new tokens attend
    to and writes those of the new positions.

    The positions attended are the union over the new tokens: the whole context for a full-attention
    layer; for a sliding-window layer of window W, new token i (0-based) attends to positions
    ``seen + i − W + 1 … seen + i``, so together they attend to ``min(context, W + new − 1)``
    positions (W for one decode token; the whole prompt for a prefill longer than the window)."""
    read = written = 0
    for layer, seen in zip(geometry, seen_before):
        if layer is None:
            continue
        context = seen + new
        attended = min(context, layer.window + new - 1) if layer.window else context
        read += layer.bytes_per_position * attended
        written += layer.bytes_per_position * new
    return read, written


def _batch(geometry: list[LayerKV | None]) -> int:
    """The sequences a cache holds (its first layer's batch; 1 when none stores positions)."""
    return next((g.batch for g in geometry if g is not None), 1)


def cross_kv_bytes(trace: GenerationTrace) -> int:
    """K and V bytes of an encoder-decoder's cross-attention cache (:attr:`GenerationTrace.cross`):
    every decoder layer's K and V of the S encoder positions, every sequence; 0 without one. The
    prefill writes them once; every call, the prefill's and each decode step's, reads them all (the
    cross-attention of each new token attends to every encoder position)."""
    return sum(g.bytes_per_position * g.stored for g in trace.cross if g is not None)


def _grouped_bound(char: Characterization, tokens: int) -> bool:
    """Whether ``char``, a call of ``tokens`` new tokens (all sequences), counted ``_grouped_mm``
    weight reads by the bound of shapes (``ops.grouped_mm_reads``): it ran on meta tensors (no
    ``offs`` values), with a grouped product whose groups split rows (a mixture of experts), and more
    than one token, whose rows may share an expert. One sequence's decode step is exact: its token's
    k rows go to k distinct experts."""
    return tokens > 1 and char.no_weights and any(
        r.op.startswith("aten._grouped_mm") and len(r.input_shapes) >= 3 and len(r.input_shapes[0]) + len(
            r.input_shapes[1]) == 5 for r in char.rows)


#: The note of a phase whose MoE weight reads are an upper bound (:func:`_grouped_bound`).
GROUPED_BOUND = ("{phase}: on meta tensors the experts a call runs are not known (no routing values): the "
                 "weights of min(experts, token-expert rows) experts per MoE layer are counted as read, an "
                 "upper bound (exact with weights, and for one sequence's decode step)")


def _attention_kernels(char: Characterization) -> list[tuple[int, int, int]]:
    """``(MACs, Lq, S)`` of each attention of a call, in order, for ``Lq`` queries over ``S`` keys:
    the SDPA kernel rows (:data:`ATTENTION_OPS`; queries ``[.., Lq, E]``, keys ``[.., S, E]``), or,
    where there are none (eager attention), each pair of weightless batched matmuls of one module in
    which the scores ``[.., Lq, E] x [.., E, S]`` are then multiplied by the values ``[.., Lq, S] x
    [.., S, Ev]`` (``softmax(Q Kᵀ) V`` written out, as transformers' ``eager_attention_forward``)."""
    sdpa = [(r.macs, int(r.input_shapes[0][-2]), int(r.input_shapes[1][-2])) for r in char.rows
            if any(name in r.op for name in ATTENTION_OPS) and r.macs]
    if sdpa:
        return sdpa
    mm = [r for r in char.rows if r.macs and not r.weight_bytes and "bmm" in r.op and len(r.input_shapes) >= 2]
    kernels, i = [], 0
    while i + 1 < len(mm):
        a, b = mm[i], mm[i + 1]
        (q, k), (p, v) = a.input_shapes[:2], b.input_shapes[:2]
        if a.module_path == b.module_path and q[-2] == p[-2] and k[-1] == p[-1] == v[-2]:
            kernels.append((a.macs + b.macs, int(q[-2]), int(k[-1])))
            i += 2
        else:
            i += 1
    return kernels


def _causal_macs(char: Characterization, geometry: list[LayerKV | None], notes: list[str]) -> int:
    """MACs of ``char`` with the attention MACs a causal mask wastes left out (see
    :attr:`GenerationPhase.macs_causal`).

    Each self-attention (:func:`_attention_kernels`) of ``Lq`` queries over ``S`` keys computes
    ``Lq·S`` query-key pairs; the causal mask keeps query i's ``p + i + 1`` pairs (``p = S − Lq``
    earlier positions), at most the layer's window. The k-th self-attention belongs to the k-th cache
    layer that stores positions (decoder layers run in order). In a prefill a self-attention's keys
    are its queries (``S = Lq``), or a static cache's slots (``S`` = the positions a cache layer
    stores); any other attention attends to an encoder's outputs (cross-attention), where no causal
    mask applies and every pair counts.
    """
    layers = [g for g in geometry if g is not None]
    slots = {g.stored for g in layers}
    kernels = [k for k in _attention_kernels(char) if k[2] == k[1] or k[2] in slots]
    windows: list[int | None] = [g.window for g in layers] if len(layers) == len(kernels) else [None] * len(kernels)
    if kernels and len(layers) != len(kernels) and any(g.window for g in layers):
        notes.append(f"{len(kernels)} attention kernels for {len(layers)} cache layers: macs_causal ignores windows")
    wasted = 0
    for (macs, lq, s), window in zip(kernels, windows):
        past = s - lq
        useful = sum(min(past + i + 1, window or s) for i in range(lq)) if window else lq * past + lq * (lq + 1) // 2
        wasted += macs - macs * useful // (lq * s)
    if not kernels:
        notes.append("no attention kernel seen (SDPA, or eager Q·Kᵀ then ·V): macs_causal equals macs")
    return char.totals.macs - wasted


def _segment_sums(trace: GenerationTrace, points: dict[int, _Point], profile, notes: list[str]):
    """Totals of every figure over all decode steps, the roofline time, whether every step is exact,
    the first and last step's figures and the per-module totals, from the counted steps (``points``)
    of each segment (see the module docstring)."""
    import numpy as np

    totals = dict.fromkeys(_FIGURES, 0)
    lines: list[tuple[int, int, _Point, _Point | None, int]] = []
    time_s = 0.0
    exact = True
    first = last = None
    n_steps = len(trace.steps)
    bandwidth = profile.memory_bandwidth
    for start in trace.segments:
        a, b = trace.segment_of(start)
        counted = sorted(k for k in points if a <= k <= b)
        if not counted:
            raise ValueError(f"decode steps {a}-{b}: no step was counted")
        p0 = points[counted[0]]
        p1 = points[counted[1]] if len(counted) > 1 else None
        d = counted[1] - counted[0] if p1 is not None else 1
        every = len(counted) == b - a + 1  # every step counted: their own figures, no line needed
        slope = {f: 0 for f in _FIGURES} if p1 is None else {f: (p1.figures[f] - p0.figures[f]) / d for f in _FIGURES}
        aligned = p1 is None or [o[:2] for o in p0.ops] == [o[:2] for o in p1.ops]
        if not every and (not aligned or (p1 is None and b > a)):
            exact = False
            notes.append(f"decode steps {a}-{b}: estimated from step {counted[0]} (its ops changed between counted steps)"
                         if not aligned else f"decode steps {a}-{b}: estimated from one counted step")
        for k in ([] if every else counted[2:]):  # the third point checks the line
            predicted = {f: p0.figures[f] + slope[f] * (k - counted[0]) for f in _FIGURES}
            if any(predicted[f] != points[k].figures[f] for f in _FIGURES):
                exact = False
                notes.append(f"decode steps {a}-{b}: step {k} is off the line through steps {counted[0]} and "
                             f"{counted[1]} (value-dependent work, e.g. MoE routing): totals estimated")
        lines.append((a, b, p0, p1 if aligned else None, d))
        ks = np.arange(a, b + 1, dtype=np.float64) - counted[0]
        for f in _FIGURES:
            totals[f] += (sum(points[k].figures[f] for k in counted) if every
                          else int(round(p0.figures[f] * len(ks) + slope[f] * ks.sum())))
        peaks = np.array([profile.peak(dtype) for _op, dtype, _f, _b in p0.ops])
        f0 = np.array([o[2] for o in p0.ops], dtype=np.float64)
        b0 = np.array([o[3] for o in p0.ops], dtype=np.float64)
        if p1 is not None and aligned:
            fs = (np.array([o[2] for o in p1.ops], dtype=np.float64) - f0) / d
            bs = (np.array([o[3] for o in p1.ops], dtype=np.float64) - b0) / d
        else:
            fs = bs = np.zeros_like(f0)
        if every:
            per_step = np.array([sum(max(f / profile.peak(dtype), nb / bandwidth) for _op, dtype, f, nb in points[k].ops)
                                 for k in counted])
        else:
            per_step = np.maximum((f0[None, :] + ks[:, None] * fs[None, :]) / peaks[None, :],
                                  (b0[None, :] + ks[:, None] * bs[None, :]) / bandwidth).sum(axis=1)
        time_s += float(per_step.sum())

        def cost(i: int) -> StepCost:
            k = ks[i]
            return StepCost(context=0, macs=int(round(p0.figures["macs"] + slope["macs"] * k)),
                            flops=int(round(p0.figures["flops"] + slope["flops"] * k)),
                            bytes=int(round(p0.figures["bytes_read"] + p0.figures["bytes_written"]
                                            + (slope["bytes_read"] + slope["bytes_written"]) * k)),
                            roofline_time_s=float(per_step[i]))

        if a == 0:
            first = cost(0)
        if b == n_steps - 1:
            last = cost(len(ks) - 1)
    return totals, time_s, exact, first, last, _module_sums(lines, profile)


class Decode(NamedTuple):
    """A generation's decode phase as :func:`decode_phase` counts it."""

    phase: GenerationPhase
    exact: bool  # every step's figures follow exactly from the counted ones
    first_weight_bytes: int  # weight bytes the first step reads (the active parameters' bytes)


def prefill_phase(trace: GenerationTrace, prefill: Characterization, geometry: list[LayerKV | None],
                  notes: list[str], encoder: Characterization | None = None) -> GenerationPhase:
    """The prefill phase of ``trace``: the prefill call's own figures (``prefill``), its KV-cache
    traffic from the cache's ``geometry`` (:func:`_kv_bytes`) and the cross-attention cache's
    (:func:`cross_kv_bytes`: written, and read), its causal MACs (notes on ``notes``); plus, for an
    encoder-decoder whose encoder ran on its own call, that call's figures (``encoder``, counted):
    the encoder runs before the first token, so the prefill, and TTFT, include it (its share in
    :attr:`GenerationPhase.encoder`; none of its MACs is masked)."""
    p = trace.prompt_tokens
    kv_read, kv_write = _kv_bytes(geometry, (0,) * len(geometry), p)
    cross = cross_kv_bytes(trace)
    kv_read, kv_write = kv_read + cross, kv_write + cross
    if _grouped_bound(prefill, p * _batch(geometry)):
        notes.append(GROUPED_BOUND.format(phase="prefill"))
    t = prefill.totals
    phase = GenerationPhase(
        phase="prefill", steps=1, context_first=p, context_last=p, macs=t.macs,
        macs_causal=_causal_macs(prefill, geometry, notes), flops=t.flops, bytes_weights=t.weight_bytes,
        bytes_kv_read=kv_read, bytes_kv_write=kv_write,
        bytes_activations=max(0, t.bytes - t.weight_bytes - kv_read - kv_write), roofline_time_s=t.roofline_time_s)
    if encoder is None:
        return phase
    e = encoder.totals
    share = EncoderCost(positions=max((g.stored for g in trace.cross if g is not None), default=0), macs=e.macs,
                        flops=e.flops, bytes_weights=e.weight_bytes, bytes_activations=e.bytes - e.weight_bytes,
                        roofline_time_s=e.roofline_time_s)
    return msgspec.structs.replace(
        phase, macs=phase.macs + share.macs, macs_causal=phase.macs_causal + share.macs,
        flops=phase.flops + share.flops, bytes_weights=phase.bytes_weights + share.bytes_weights,
        bytes_activations=phase.bytes_activations + share.bytes_activations,
        roofline_time_s=phase.roofline_time_s + share.roofline_time_s, encoder=share)


def count_encoder(trace: GenerationTrace, prefill: Characterization) -> Characterization | None:
    """The characterization of the encoder call ``trace``'s prefill took its outputs from
    (:attr:`GenerationTrace.encoder`), counted as the prefill was (its hardware profile; on meta
    tensors when it was); ``None`` when there is none."""
    if trace.encoder is None:
        return None
    import torch

    from turnkey_like.characterize.assemble import characterize_call

    module, args, kwargs = trace.encoder
    with torch.no_grad():
        return characterize_call(module, args, kwargs, hardware=prefill.hardware, no_weights=prefill.no_weights,
                                 trace=False)


def decode_phase(trace: GenerationTrace, geometry: list[LayerKV | None],
                 count: Callable[[tuple, dict], Characterization], profile, notes: list[str]) -> Decode:
    """The decode phase of ``trace`` (which has decode steps), from its counted steps (``count``
    counts one call on ``profile``; see the module docstring); notes on ``notes``."""
    batch = _batch(geometry)
    points: dict[int, _Point] = {}
    bound = False
    for k in sorted(trace.snapshots):
        char = count(*trace.snapshots[k])
        points[k] = _point(char)
        bound = bound or _grouped_bound(char, batch * trace.steps[k].new)
    if bound:
        notes.append(GROUPED_BOUND.format(phase="decode steps"))
    totals, time_s, exact, first, last, modules = _segment_sums(trace, points, profile, notes)
    reads = writes = 0
    cross = cross_kv_bytes(trace)
    for step in trace.steps:
        r, w = _kv_bytes(geometry, step.state.seen, step.new)
        reads, writes = reads + r + cross, writes + w
    contexts = [s.state.context + s.new for s in trace.steps]
    nbytes = totals["bytes_read"] + totals["bytes_written"]
    phase = GenerationPhase(
        phase="decode", steps=len(trace.steps), context_first=contexts[0], context_last=contexts[-1],
        macs=totals["macs"], macs_causal=totals["macs"], flops=totals["flops"],
        bytes_weights=totals["weight_bytes"], bytes_kv_read=reads, bytes_kv_write=writes,
        bytes_activations=max(0, nbytes - totals["weight_bytes"] - reads - writes), roofline_time_s=time_s,
        step_first=msgspec.structs.replace(first, context=contexts[0]) if first else None,
        step_last=msgspec.structs.replace(last, context=contexts[-1]) if last else None, modules=modules)
    return Decode(phase, exact, points[0].figures["weight_bytes"])


def kv_cache_bytes(trace: GenerationTrace, geometry: list[LayerKV | None]) -> int:
    """Bytes of the KV cache at the end of ``trace``: K and V of every position each layer stores, and
    an encoder-decoder's cross-attention K and V (:func:`cross_kv_bytes`)."""
    final = trace.final.stored if trace.final is not None else ()
    return sum(g.bytes_per_position * n for g, n in zip(geometry, final) if g is not None) + cross_kv_bytes(trace)


def assemble_generation(trace: GenerationTrace, prefill: Characterization, geometry: list[LayerKV | None],
                        phases: list[GenerationPhase], *, batch_size: int, exact: bool, notes: list[str],
                        first_weight_bytes: int, kv_bytes: int) -> Generation:
    """The :class:`~turnkey_like.records.Generation` of ``trace`` from its ``phases`` (prefill, and
    decode where there are steps): TTFT (the prefill phase's roofline time, an encoder included),
    TPOT (the decode phase's mean step), tokens/s, KV-cache bytes per token (from ``geometry``), at
    the end (``kv_bytes``) and of the cross-attention (:func:`cross_kv_bytes`), total parameters
    (``prefill``'s) and active ones (``first_weight_bytes`` ÷ bytes per parameter)."""
    t = prefill.totals
    tpot = tokens_per_s = None
    params_active = 0
    if len(phases) > 1:
        tpot = phases[1].roofline_time_s / phases[1].steps
        tokens_per_s = batch_size / tpot if tpot > 0 else None
        bytes_per_param = t.param_bytes / t.params if t.params else 0
        params_active = int(round(first_weight_bytes / bytes_per_param)) if bytes_per_param else 0
    layers = [g for g in geometry if g is not None]
    return Generation(
        batch_size=batch_size, prompt_tokens=trace.prompt_tokens, new_tokens=trace.new_tokens, phases=phases,
        ttft_s=phases[0].roofline_time_s, tpot_s=tpot, tokens_per_s=tokens_per_s,
        kv_cache_bytes_per_token=sum(g.bytes_per_position for g in layers) // max(batch_size, 1),
        kv_cache_bytes=kv_bytes, kv_cache_cross_bytes=cross_kv_bytes(trace), hardware=prefill.hardware.name,
        params_total=t.params, params_active=params_active, exact=exact, notes=notes,
        shape=generation_shape(prefill, geometry))


def generation_record(trace: GenerationTrace, prefill: Characterization, geometry: list[LayerKV | None],
                      count: Callable[[tuple, dict], Characterization], *, batch_size: int) -> Generation:
    """The :class:`~turnkey_like.records.Generation` of ``trace``.

    Args:
        trace: the generation as discovery saw it (the prefill's state, each decode step's, and the
            copies of the steps to count).
        prefill: the prefill call's characterization (its hardware profile is the generation's).
        geometry: the KV cache's per-layer geometry (:func:`turnkey_like.kv_cache.layer_geometry`,
            read from a cache the prefill filled).
        count: counts one call ``(args, kwargs)`` into a Characterization, on the same profile.
        batch_size: the sequences generated together (the batch of the prompt).

    Raises:
        ValueError: a segment of decode steps has no counted step (discovery always copies its first),
            or the trace's steps are counted elsewhere (:attr:`GenerationTrace.counted_elsewhere`:
            ``characterize.generation_depth`` counts them).
    """
    if trace.counted_elsewhere:
        raise ValueError("the trace ran one decode step: its steps are counted on copies of the model "
                         "(characterize.generation_depth), not from it")
    notes: list[str] = []
    phases = [prefill_phase(trace, prefill, geometry, notes, count_encoder(trace, prefill))]
    exact = not trace.truncated
    if trace.truncated:
        notes.append(TRUNCATED)
    first_weight_bytes = 0
    if trace.steps:
        decode = decode_phase(trace, geometry, count, prefill.hardware, notes)
        phases.append(decode.phase)
        exact = exact and decode.exact
        first_weight_bytes = decode.first_weight_bytes
    return assemble_generation(trace, prefill, geometry, phases, batch_size=batch_size, exact=exact, notes=notes,
                               first_weight_bytes=first_weight_bytes, kv_bytes=kv_cache_bytes(trace, geometry))


def geometry_of(trace: GenerationTrace, prefill_call: tuple[tuple, dict]) -> list[LayerKV | None]:
    """The KV cache's per-layer geometry: from the first decode step's copy (the cache the prefill
    filled), else from the prefill call's own cache once the prefill has been counted (counting runs
    the call, which fills it)."""
    source = trace.snapshots.get(0) or prefill_call
    found = find_cache(*source)
    return layer_geometry(found[1]) if found is not None else []


def characterize_generation(model, input_ids, new_tokens: int, *, hardware=None, no_weights: bool = False,
                            every_step: bool = False, **inputs) -> Generation:
    """Count what ``model.generate(input_ids, max_new_tokens=new_tokens)`` runs: the prefill of the
    prompt and every decode step, with the KV cache (the :class:`~turnkey_like.records.Generation`
    record ``tk profile --generate P:N`` writes).

    Args:
        model: a causal LM (or an encoder-decoder model) that takes a transformers KV cache.
        input_ids: the prompt, ``[batch, P]`` token ids (an encoder-decoder model's encoder input;
            Whisper-like models take ``input_features=`` among ``inputs`` instead, with
            ``input_ids=None``).
        new_tokens: N, the tokens to generate (N−1 decode steps follow the prefill).
        hardware: the roofline's hardware profile (name or record; default ``local``).
        no_weights: run and count on meta tensors (no weights, no KV cache allocated).
        every_step: count every decode step instead of the first three of each segment (the
            figures are the same; this is how tests check it).
        inputs: more model inputs for the prompt call.

    Raises:
        ImportError: transformers is not installed (the KV cache is transformers').
        ValueError: ``new_tokens`` < 1.
    """
    return counted_generation(model, {"input_ids": input_ids, **inputs}, new_tokens, generation_record,
                              hardware=hardware, no_weights=no_weights, every_step=every_step)


def counted_generation(model, prompt: dict, new_tokens: int, use, *, hardware=None, no_weights: bool = False,
                       every_step: bool = False):
    """Run the generation ``generate(**prompt, max_new_tokens=new_tokens)`` runs
    (:func:`turnkey_like.generation_trace.generate_loop`, traced), count its prefill, and return
    ``use(trace, prefill, geometry, count, batch_size=B)`` with what :func:`generation_record` takes
    (``use`` is called while the model is set up for counting: ``count`` works only inside it).

    ``prompt``: the prompt's inputs (``None`` values left out); the other arguments as
    :func:`characterize_generation`'s. On meta tensors the loop runs under
    :class:`turnkey_like.meta_kernels.WithoutData`, as the counter counts (a mixture of experts'
    grouped products in float32 run).

    Raises:
        ImportError: transformers is not installed (the KV cache is transformers').
        ValueError: ``new_tokens`` < 1.
    """
    import contextlib

    import torch

    from turnkey_like.characterize.assemble import characterize_call, meta_weights
    from turnkey_like.generation_trace import GenerationTracker, generate_loop, tracking
    from turnkey_like.kv_cache import snapshot
    from turnkey_like.meta_kernels import WithoutData

    if new_tokens < 1:
        raise ValueError(f"new_tokens {new_tokens}: generate at least 1 token")
    tracker = GenerationTracker(points_per_segment=None, max_snapshots=None) if every_step else GenerationTracker()
    prompt = {k: v for k, v in prompt.items() if v is not None}
    prefill: list = []
    count_id = iter(range(1 << 30))

    def call(fn, **kwargs):  # the encoder's call too: an encoder-decoder's prefill finds it (module given)
        token = tracker.before(("model",) if fn is model else ("encoder",), f"call-{next(count_id)}", (), kwargs, fn)
        if token is not None and token[2] is None:
            prefill.append(((), snapshot(kwargs)))
        out = fn(**kwargs)
        if token is not None:
            tracker.after(token)
        return out

    if no_weights:
        prompt = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in prompt.items()}
    with meta_weights(model) if no_weights else contextlib.nullcontext():
        with tracking(tracker), WithoutData() if no_weights else contextlib.nullcontext():
            generate_loop(model, prompt, new_tokens, call=call)  # stops once the steps left follow from those run
        trace = next(iter(tracker.traces.values()))

        def count(args, kwargs):
            with torch.no_grad():
                return characterize_call(model, args, kwargs, hardware=hardware, no_weights=no_weights, trace=False)

        prefill_char = count(*snapshot(prefill[0]))
        geometry = geometry_of(trace, prefill[0])
        return use(trace, prefill_char, geometry, count, batch_size=_batch(geometry))
