"""What ``tk profile`` prints for a generation (``--generate P:N``, or a script that generates): the
phase table and the predicted latencies, from the :class:`~turnkey_like.records.Generation` record.

Formats only: every figure is the record's (docs/generation.md defines them). 1 MAC = 2 FLOPs.
"""

from __future__ import annotations

from turnkey_like.records import Generation, GenerationPhase
from turnkey_like.report.text import MAC_NOTE, Section
from turnkey_like.units import format_bytes, format_seconds, si

_COLUMNS = [("Phase", "left"), ("Steps", "right"), ("Context", "right"), ("MACs", "right"),
            ("MACs (causal)", "right"), ("FLOPs", "right"), ("Bytes", "right"), ("Weights", "right"), ("KV read", "right"),
            ("KV write", "right"), ("Activations", "right"), ("Roofline time", "right")]


def _phase_row(label: str, phase: GenerationPhase) -> list[str]:
    context = (str(phase.context_first) if phase.context_first == phase.context_last
               else f"{phase.context_first}-{phase.context_last}")
    total = phase.bytes_weights + phase.bytes_kv_read + phase.bytes_kv_write + phase.bytes_activations
    return [label, str(phase.steps), context, si(phase.macs), si(phase.macs_causal), si(phase.flops),
            format_bytes(total), format_bytes(phase.bytes_weights), format_bytes(phase.bytes_kv_read), format_bytes(phase.bytes_kv_write),
            format_bytes(phase.bytes_activations), format_seconds(phase.roofline_time_s)]


def generation_lines(gen: Generation) -> list[str]:
    """The predicted figures in a few lines: TTFT, TPOT, tokens/s and the KV cache."""
    tpot = (f"TPOT {format_seconds(gen.tpot_s)} (mean decode step) · {gen.tokens_per_s:,.1f} tokens/s at batch "
            f"{gen.batch_size}" if gen.tpot_s is not None and gen.tokens_per_s is not None else "no decode step")
    lines = [f"Generation of {gen.new_tokens} token(s) from a {gen.prompt_tokens}-token prompt, batch {gen.batch_size}, "
             f"on {gen.hardware}: TTFT {format_seconds(gen.ttft_s)} (prefill) · {tpot}",
             f"KV cache: {format_bytes(gen.kv_cache_bytes_per_token)} per token, {format_bytes(gen.kv_cache_bytes)} "
             f"at the end · params {si(gen.params_total)} ({si(gen.params_active)} read per decode step)"]
    if not gen.exact:
        lines.append("estimated: " + "; ".join(gen.notes))
    return lines + measured_lines(gen)


def render_generation(gen: Generation, console) -> None:
    """Print the phase table (prefill, decode at its first and last step, decode total) and the
    predicted TTFT, TPOT, tokens/s and KV-cache bytes."""
    from rich.text import Text

    table = Section(f"Generation by phase ({MAC_NOTE}; decode rows: one step, then the total over its steps; "
                    "roofline time on " + gen.hardware + ")", _COLUMNS)
    prefill, decode = gen.phase("prefill"), gen.phase("decode")
    if prefill is not None:
        table.add_row(*_phase_row("prefill", prefill))
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
