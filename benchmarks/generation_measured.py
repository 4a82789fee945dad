"""Measured beside predicted: TTFT and TPOT of GPT-2 small and a 1B-class Llama on this machine's CPU.

For each model (random weights, built from code: nothing is downloaded) and batch size, tk predicts
the generation on the ``local`` profile (``characterize_generation``: a P-token prompt, N new tokens,
roofline on this CPU's measured peaks, with torch's thread count) and measures it
(``measure_generation``, what ``tk benchmark`` runs on a generation: torch eager, and ONNX Runtime on
the exported prefill and decode-step graphs, each in its own child process; medians over the timed
generations after one warm-up). Printed: the ``local`` profile (peaks, the load while it was
measured), then one row per model, batch and runtime: measured and predicted TTFT and TPOT with their
ratio (measured ÷ predicted; below 0.8 flagged as a profile error), and how busy the machine was.

Models:

- ``gpt2``: ``GPT2Config()`` (GPT-2 small: 12 layers, d 768, 12 heads, vocabulary 50,257; 124 M
  parameters, tied LM head);
- ``llama1b``: ``LlamaConfig(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
  num_key_value_heads=8, intermediate_size=8192, vocab_size=128256)`` (Llama 3.2 1B's shapes, untied
  LM head: 1.50 G parameters, 6.0 GB in float32).

Usage::

    python benchmarks/generation_measured.py [--models gpt2,llama1b] [--batches 1,4,16] [--prompt 32]
        [--new 5] [--repeats 2] [--runtimes torch-eager,ort] [--ort-batches 1,4,16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(name: str):
    """The model called ``name`` (random weights), in eval mode."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if name == "gpt2":
        return GPT2LMHeadModel(GPT2Config()).eval()
    if name == "llama1b":
        return LlamaForCausalLM(LlamaConfig(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                                            num_key_value_heads=8, intermediate_size=8192,
                                            vocab_size=128256)).eval()
    raise SystemExit(f"unknown model {name!r}: use gpt2 or llama1b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gpt2,llama1b")
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--ort-batches", default=None,
                        help="batches measured on ort too (default: all; each batch exports its own graphs)")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--new", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runtimes", default="torch-eager,ort")
    args = parser.parse_args()

    import torch

    from turnkey_like.characterize.generation import characterize_generation
    from turnkey_like.characterize.hardware import local_profile
    from turnkey_like.runtimes import BenchmarkOptions
    from turnkey_like.report.generation import measured_lines
    from turnkey_like.runtimes.generation import measure_generation
    from turnkey_like.units import format_bytes, format_seconds, si

    profile = local_profile()
    load = profile.load
    print(f"local profile: {profile.description}, {profile.threads} torch threads; peak float32 "
          f"{si(profile.peak_flops['float32'], 'FLOP/s')}, bandwidth {format_bytes(profile.memory_bandwidth)}/s "
          f"(ridge {profile.peak_flops['float32'] / profile.memory_bandwidth:.1f} FLOPs/B); measured "
          f"{profile.measured_at}" + (f", other processes used {load.other_cores:.1f} of {load.cores} cores"
                                      if load is not None else ""))
    for warning in profile.warnings:
        print(f"  profile warning: {warning}")
    options = BenchmarkOptions(iterations=args.repeats, warmup=1, threads=profile.threads)
    runtimes = tuple(args.runtimes.split(","))
    ort_batches = {int(b) for b in (args.ort_batches or args.batches).split(",")}
    print(f"P = {args.prompt} prompt tokens, N = {args.new} new tokens ({args.new - 1} decode steps); "
          f"medians of {args.repeats} generations after 1 warm-up; ratio = measured / predicted")
    header = (f"{'model':8s} {'batch':>5s} {'runtime':12s} {'TTFT meas':>10s} {'pred':>9s} {'ratio':>6s} "
              f"{'TPOT meas':>10s} {'pred':>9s} {'ratio':>6s}  load (other cores)")
    for name in args.models.split(","):
        model = build(name)
        params = sum(p.numel() for p in model.parameters())
        print(f"\n{name}: {si(params)} parameters")
        print(header)
        for batch in (int(b) for b in args.batches.split(",")):
            ids = torch.randint(3, model.config.vocab_size, (batch, args.prompt))
            start = time.perf_counter()
            gen = characterize_generation(model, ids, args.new, hardware=profile)
            wanted = tuple(r for r in runtimes if r != "ort" or batch in ort_batches)
            with tempfile.TemporaryDirectory(prefix="tk_generation_") as folder:
                gen = measure_generation(model, (), {"input_ids": ids}, gen, folder, options, runtimes=wanted)
            for m in gen.measured:
                if m.device != "cpu":
                    continue
                if m.status != "successful":
                    print(f"{name:8s} {batch:5d} {m.runtime:12s} {m.status}: {m.error}")
                    continue
                other = f"{m.load.other_cores:.1f}" if m.load is not None else "-"
                print(f"{name:8s} {batch:5d} {m.runtime:12s} {format_seconds(m.measured_ttft_s):>10s} "
                      f"{format_seconds(gen.ttft_s):>9s} {m.ratio_ttft:6.2f} {format_seconds(m.measured_tpot_s):>10s} "
                      f"{format_seconds(gen.tpot_s):>9s} {m.ratio_tpot:6.2f}  {other}")
                for flag in m.flags:
                    print(f"{'':15s}{flag}")
            print(f"{'':15s}({time.perf_counter() - start:.0f} s; {len(measured_lines(gen)) - 1} entries)",
                  flush=True)
        del model


if __name__ == "__main__":
    main()
