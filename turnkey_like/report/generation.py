"""What ``tk profile`` prints for a generation (``--generate P:N``, or a script that generates): the
phase table and the predicted latencies, then its what-ifs (other dtypes, devices, what fits memory),
from the :class:`~turnkey_like.records.Generation` record; and the rows a generation sweep, its plot
and the HTML page share (:func:`whatif_cells`, :func:`generation_points`).

Formats only: every figure is the record's (docs/generation.md defines them). 1 MAC = 2 FLOPs.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from turnkey_like.records import EncoderCost, Generation, GenerationPhase, Invocation, Status, WhatIf
from turnkey_like.report.text import MAC_NOTE, Section
from turnkey_like.units import format_bytes, format_seconds, si

#: the phase table's columns: (header, justify); :func:`phase_cells` fills them in this order
PHASE_COLUMNS = [("Phase", "left"), ("Steps", "right"), ("Context", "right"), ("MACs", "right"),
            ("MACs (causal)", "right"), ("FLOPs", "right"), ("Bytes", "right"), ("Weights", "right"), ("KV read", "right"),
            ("KV write", "right"), ("Activations", "right"), ("Roofline time", "right")]


def phase_cells(label: str, phase: GenerationPhase) -> list[tuple[str, object]]:
    """The cells of one phase row, ``(text, raw value)`` in the phase table's column order (the
    terminal's and the HTML page's)."""
    context = (str(phase.context_first) if phase.context_first == phase.context_last
               else f"{phase.context_first}-{phase.context_last}")
    total = phase.bytes_weights + phase.bytes_kv_read + phase.bytes_kv_write + phase.bytes_activations
    return [(label, label), (str(phase.steps), phase.steps), (context, phase.context_first), (si(phase.macs), phase.macs),
            (si(phase.macs_causal), phase.macs_causal), (si(phase.flops), phase.flops), (format_bytes(total), total),
            *((format_bytes(v), v) for v in (phase.bytes_weights, phase.bytes_kv_read, phase.bytes_kv_write,
                                              phase.bytes_activations)),
            (format_seconds(phase.roofline_time_s), phase.roofline_time_s)]


def _phase_row(label: str, phase: GenerationPhase) -> list[str]:
    return [text for text, _ in phase_cells(label, phase)]


def encoder_cells(encoder: EncoderCost) -> list[tuple[str, object]]:
    """The cells of the row under the prefill that shows its encoder's share (an encoder-decoder),
    in the phase table's column order: no KV traffic, every MAC kept (no causal mask)."""
    total = encoder.bytes_weights + encoder.bytes_activations
    label = "  of which encoder"
    return [(label, label), ("1", 1), (str(encoder.positions), encoder.positions), (si(encoder.macs), encoder.macs),
            (si(encoder.macs), encoder.macs), (si(encoder.flops), encoder.flops), (format_bytes(total), total),
            (format_bytes(encoder.bytes_weights), encoder.bytes_weights), ("", None), ("", None),
            (format_bytes(encoder.bytes_activations), encoder.bytes_activations),
            (format_seconds(encoder.roofline_time_s), encoder.roofline_time_s)]


def generation_lines(gen: Generation) -> list[str]:
    """The predicted figures in a few lines: TTFT, TPOT, tokens/s and the KV cache."""
    tpot = (f"TPOT {format_seconds(gen.tpot_s)} (mean decode step) · {gen.tokens_per_s:,.1f} tokens/s at batch "
            f"{gen.batch_size}" if gen.tpot_s is not None and gen.tokens_per_s is not None else "no decode step")
    prefill = gen.phase("prefill")
    encoder = prefill.encoder if prefill is not None else None
    ttft = "prefill, the encoder included" if encoder is not None else "prefill"
    cross = (f" ({format_bytes(gen.kv_cache_cross_bytes)} of it cross-attention K/V of the encoder's positions)"
             if gen.kv_cache_cross_bytes else "")
    lines = [f"Generation of {gen.new_tokens} token(s) from a {gen.prompt_tokens}-token prompt, batch {gen.batch_size}, "
             f"on {gen.hardware}: TTFT {format_seconds(gen.ttft_s)} ({ttft}) · {tpot}",
             f"KV cache: {format_bytes(gen.kv_cache_bytes_per_token)} per token, {format_bytes(gen.kv_cache_bytes)} "
             f"at the end{cross} · params {si(gen.params_total)} ({si(gen.params_active)} read per decode step)"]
    if not gen.exact:
        lines.append("estimated: " + "; ".join(gen.notes))
    return lines + measured_lines(gen)


def render_generation(gen: Generation, console) -> None:
    """Print the phase table (prefill, decode at its first and last step, decode total) and the
    predicted TTFT, TPOT, tokens/s and KV-cache bytes."""
    from rich.text import Text

    table = Section(f"Generation by phase ({MAC_NOTE}; decode rows: one step, then the total over its steps; "
                    "roofline time on " + gen.hardware + ")", PHASE_COLUMNS)
    prefill, decode = gen.phase("prefill"), gen.phase("decode")
    if prefill is not None:
        table.add_row(*_phase_row("prefill", prefill))
        if prefill.encoder is not None:
            table.add_row(*(text for text, _ in encoder_cells(prefill.encoder)))
    if decode is not None:
        for label, step in (("decode, first step", decode.step_first), ("decode, last step", decode.step_last)):
            if step is not None:
                table.add_row(label, "1", str(step.context), si(step.macs), "", si(step.flops), format_bytes(step.bytes),
                              "", "", "", "", format_seconds(step.roofline_time_s))
        table.add_row(*_phase_row("decode, total", decode))
    table.print(console)
    for line in generation_lines(gen):
        console.print(Text(line))
    for note in gen.notes if gen.exact else []:
        console.print(Text(f"note: {note}"))
    render_whatifs(gen, console)


def measured_lines(gen: Generation) -> list[str]:
    """The measured TTFT and TPOT beside the predicted, per runtime and device, with their ratios and
    flags (one line each; none before a benchmark). Formats the record only."""
    if not gen.measured:
        return []

    def pair(measured: float | None, predicted: float | None, ratio: float | None) -> str:
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        return f"{format_seconds(measured)} measured, {format_seconds(predicted)} predicted ({shown})"

    lines = [f"Measured beside predicted (roofline on {gen.hardware}; ratio = measured / predicted):"]
    for m in gen.measured:
        label = f"  {m.runtime} on {m.device}"
        if m.status != "successful":
            lines.append(f"{label}: {m.status}: {m.error}")
            continue
        tpot = (f"TPOT {pair(m.measured_tpot_s, gen.tpot_s, m.ratio_tpot)}" if m.measured_tpot_s is not None
                else "no decode step")
        lines.append(f"{label}: TTFT {pair(m.measured_ttft_s, gen.ttft_s, m.ratio_ttft)} · {tpot} · median of "
                     f"{m.repeats} generation(s) after {m.warmup} warm-up, {m.device_name}, {m.threads} thread(s)")
        lines += [f"{label}: {flag}" for flag in m.flags]
        if m.load is not None and m.load.note:
            lines.append(f"{label}: note: {m.load.note}")
    return lines


# ------------------------------------------------------------------------------------------ what-ifs
#: short names of the what-if dtypes, for narrow columns
_SHORT = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "float8": "fp8", "int8": "int8", "int4": "int4"}

#: the what-if columns: (header, justify); :func:`whatif_cells` fills them in this order
WHATIF_COLUMNS = [("Hardware", "left"), ("W/A/KV", "left"), ("Math at", "left"), ("TP", "right"),
                  ("TTFT", "right"), ("Prefill", "left"), ("TPOT", "right"), ("Decode", "left"),
                  ("Tokens/s", "right"), ("Knee", "right"), ("Knee KV", "right"), ("Weights", "right"),
                  ("KV/token", "right"), ("Max batch", "right"), ("Min TP", "right")]


def short_dtype(dtype: str) -> str:
    """``bfloat16`` → ``bf16`` (the what-if dtypes' short names; others as they are)."""
    return _SHORT.get(dtype, dtype)


def _count(value: float | int | None, none: str = "-") -> str:
    """A batch or a rate: whole with separators below 100,000, else with an SI prefix."""
    if value is None:
        return none
    return f"{value:,.0f}" if value < 1e5 else si(value)


def _bound(phase) -> str:
    return "-" if phase is None else phase.bound.removesuffix("-bound")


def whatif_cells(w: WhatIf) -> list[tuple[str, object]]:
    """The cells of one what-if row, ``(text, raw value)`` in :data:`WHATIF_COLUMNS`' order (the raw
    value sorts the HTML table; ``None`` where there is none)."""
    prefill, decode, cap = w.phase("prefill"), w.phase("decode"), w.capacity
    dtypes = "/".join(short_dtype(d) for d in (w.weight_dtype, w.act_dtype, w.kv_dtype))
    min_tp = "-" if cap.min_tensor_parallel is None else str(cap.min_tensor_parallel)
    if cap.memory_bytes is not None and cap.min_tensor_parallel is None:
        min_tp = "> 64"
    return [(w.hardware, w.hardware), (dtypes, dtypes), (f"{short_dtype(w.math_dtype)} {si(w.peak_flops)}", w.peak_flops),
            (str(w.tensor_parallel), w.tensor_parallel), (format_seconds(w.ttft_s), w.ttft_s),
            (_bound(prefill), None), (format_seconds(w.tpot_s), w.tpot_s), (_bound(decode), None),
            (_count(w.tokens_per_s), w.tokens_per_s),
            (_count(w.decode_knee_batch, "never"), w.decode_knee_batch),
            (_count(w.decode_knee_batch_kv_only, "never"), w.decode_knee_batch_kv_only),
            (format_bytes(cap.weight_bytes), cap.weight_bytes),
            (format_bytes(cap.kv_bytes_per_token), cap.kv_bytes_per_token),
            (_count(cap.max_batch), cap.max_batch), (min_tp, cap.min_tensor_parallel)]


def whatif_notes(gen: Generation) -> list[str]:
    """Each distinct what-if note and peak rule of ``gen``, once, in order: what the rows approximate,
    what they leave out and why each runs at its peak."""
    seen: dict[str, None] = {}
    for w in gen.whatif:
        seen.setdefault(f"W/A {'/'.join(short_dtype(d) for d in (w.weight_dtype, w.act_dtype))}: {w.peak_rule}", None)
    for w in gen.whatif:
        for note in w.notes:
            seen.setdefault(note, None)
    capacity = ("capacity: the parameters at the weight dtype (every one resident) and each sequence's KV cache at "
                "the final context, against the device's memory")
    reserve = {w.memory_reserve for w in gen.whatif}
    capacity += (f" less {', '.join(f'{r:.0%}' for r in sorted(reserve))} kept back" if any(reserve) else "")
    seen.setdefault(capacity + "; activations, workspace and the CUDA context left out", None)
    return list(seen)


def render_whatifs(gen: Generation, console) -> None:
    """Print the what-if table (one row per profile, dtype combination and tensor-parallel degree)
    and its notes; nothing when the generation has none."""
    from rich.text import Text

    if not gen.whatif:
        return
    first = gen.whatif[0].capacity
    table = Section(f"What-ifs (phase-level roofline per device; {MAC_NOTE}; batch {gen.batch_size}; KV cache at the "
                    f"final context {first.context}; Knee: the batch where decode turns compute-bound, Knee KV: the "
                    "same with decode's activation bytes left out; Max batch: the most sequences that fit the device; "
                    f"Min TP: the fewest devices batch {gen.batch_size} fits)", WHATIF_COLUMNS)
    for w in gen.whatif:
        table.add_row(*(text for text, _ in whatif_cells(w)))
    table.print(console)
    for note in whatif_notes(gen):
        console.print(Text(f"note: {note}"))


class GenerationPoint(NamedTuple):
    """One row of a generation sweep: a generation (one ``--generate``/``--batch-size`` point, or a
    script's) and one of its what-ifs."""

    model: str
    invocation: str
    gen: Generation
    whatif: WhatIf

    @property
    def series(self) -> tuple:
        """What a plot line shares: the prompt and new tokens, hardware, dtypes and devices (the
        batch varies along it)."""
        w = self.whatif
        return (self.gen.prompt_tokens, self.gen.new_tokens, w.hardware, w.weight_dtype, w.act_dtype, w.kv_dtype,
                w.tensor_parallel)

    def series_label(self) -> str:
        """``2048:256 h100 bf16/bf16/bf16`` (``TP 2`` added when split)."""
        w = self.whatif
        tp = f" TP {w.tensor_parallel}" if w.tensor_parallel > 1 else ""
        dtypes = "/".join(short_dtype(d) for d in (w.weight_dtype, w.act_dtype, w.kv_dtype))
        return f"{self.gen.prompt_tokens}:{self.gen.new_tokens} {w.hardware} {dtypes}{tp}"


def generation_points(calls: Iterable[tuple[str, Invocation]]) -> list[GenerationPoint]:
    """Every what-if of every characterized generation among ``calls`` (``(model name, invocation)``),
    ordered by model, prompt, new tokens, the what-if's place in its record, then batch."""
    points = []
    for name, inv in calls:
        stage = inv.characterization
        gen = stage.result.generation if stage.status == Status.SUCCESSFUL and stage.result is not None else None
        if gen is not None:
            points += [(i, GenerationPoint(name, inv.hash, gen, w)) for i, w in enumerate(gen.whatif)]
    points.sort(key=lambda p: (p[1].model, p[1].gen.prompt_tokens, p[1].gen.new_tokens, p[0], p[1].gen.batch_size))
    return [p for _, p in points]
