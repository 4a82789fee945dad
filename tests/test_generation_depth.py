"""A named model's decode steps counted on copies of it at two depths give the full count exactly.

``tk profile --model NAME --no-weights --generate P:N`` runs one decode step of the model (the
decode invocation) and counts the steps on two copies of it whose depths differ by the period of its
layers (``characterize.generation_depth``): each figure is on the line through them. Here that record
is compared, every field (MACs, FLOPs, every byte count, per phase and per module; roofline times to
1e-12), with the full count of the same model (``characterize_generation``, every layer at every
counted step) on multi-layer tiny configs: Llama, Qwen2, Mistral across its sliding window, Mixtral's
experts, GPT-2 and Gemma 2's alternating sliding and global layers (period 2). Then: where the layers
repeat (70B Llama, Gemma 2 and 3, DeepSeek-V3's dense first layers), where they do not say so
(encoder-decoders), copies that miss the prefill are refused, the pipeline's own path (discovery's
one decode step, then copies; or the full count when copies cannot be used), and the real CLI.

Models are built by the zoo on meta (``--no-weights``): counts of a model without values do not
depend on them, so copies with other (no) weights count the same layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_same_record, run_tk

pytest.importorskip("transformers")

from turnkey_like import zoo  # noqa: E402
from turnkey_like.characterize.assemble import characterize_call  # noqa: E402
from turnkey_like.characterize.generation import characterize_generation, counted_generation  # noqa: E402
from turnkey_like.characterize.generation_depth import generation_by_depth  # noqa: E402
from turnkey_like.records import ModelRequest, RunReport, decode  # noqa: E402

HARDWARE = "a100"
TINY = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
        "vocab_size": 1000}
#: name -> (zoo name, model_args): 5 layers (copies 2 and 3 deep), Gemma 2's 6 (copies 2 and 4: period 2).
ARCHS = {
    "llama": ("llama", {**TINY, "num_hidden_layers": 5}),
    "qwen2": ("qwen2", {**TINY, "num_hidden_layers": 5}),
    "mistral": ("mistral", {**TINY, "num_hidden_layers": 5, "sliding_window": 16}),
    "mixtral": ("mixtral", {**TINY, "num_hidden_layers": 5, "num_local_experts": 4, "num_experts_per_tok": 2}),
    "gpt2": ("gpt2", {"n_embd": 64, "n_head": 4, "n_layer": 5, "vocab_size": 1000, "n_positions": 256}),
    "gemma2": ("gemma2", {**TINY, "num_hidden_layers": 6, "head_dim": 16, "sliding_window": 16}),
}
CASES = [("llama", 20, 6), ("qwen2", 20, 6), ("mistral", 12, 10), ("mistral", 20, 6), ("mixtral", 20, 6),
         ("gpt2", 20, 6), ("gemma2", 12, 10), ("gemma2", 20, 6)]
"""(arch, P, N): Mistral's and Gemma 2's window of 16 crossed mid-decode (contexts 13…21), or by the prompt."""


def loaded(arch: str, p: int, n: int, **more):
    name, args = ARCHS[arch]
    return zoo.load(ModelRequest(name=name, model_args={**args, **more}, no_weights=True, new_tokens=n, seq_len=p))


def by_depth(model, request, copies=None):
    """The model's generation with its decode counted on ``copies`` (``[(depth, LoadedModel)]``; by
    default the two :func:`zoo.depth_copies`): the Generation, or the reason it was refused."""
    layers = zoo.repeating_layers(model, request)
    built = copies or list(zip(layers.depths, zoo.depth_copies(model, request, layers)))

    def use(trace, prefill, geometry, count, *, batch_size):
        return generation_by_depth(trace, prefill, geometry, [(d, c.model, c.kwargs) for d, c in built],
                                   depth=layers.depth, stacks=layers.stacks, batch_size=batch_size, no_weights=True)

    prompt = {"input_ids": zoo.load(request).kwargs["input_ids"]}
    return counted_generation(model, prompt, request.new_tokens, use, hardware=HARDWARE, no_weights=True)


def full(model, request):
    """The model's generation counted at full depth (every layer at every counted step)."""
    return characterize_generation(model, new_tokens=request.new_tokens, hardware=HARDWARE, no_weights=True,
                                   input_ids=zoo.load(request).kwargs["input_ids"])


@pytest.mark.parametrize("arch,p,n", CASES, ids=[f"{a}-P{p}-N{n}" for a, p, n in CASES])
def test_decode_counted_on_two_copies_is_the_full_count(arch, p, n):
    model = loaded(arch, p, n)
    ours, theirs = by_depth(model.model, model.request), full(model.model, model.request)
    assert not isinstance(ours, str), ours
    assert theirs.exact and ours.exact
    assert_same_record(theirs, ours, f"{arch}-P{p}-N{n}", skip=("notes",))
    first, second = zoo.repeating_layers(model.model, model.request).depths
    assert (first, second) == ((2, 4) if arch == "gemma2" else (2, 3))
    assert any(f"copies {first} and {second} layers deep" in note for note in ours.notes)


def test_where_layers_repeat():
    """The depths of the copies: 2 and 3 of a 70B Llama's 80 identical layers; Gemma 2 alternates
    sliding and global layers (period 2); Gemma 3 has one global layer in 6, so copies 8 and 14 deep
    leave 26 = 8 + 3 × 6; DeepSeek-V3's first 3 layers are dense (the copies start past them); an
    encoder-decoder has two stacks of their own depths (none); with weights, copies are not used."""
    llama70b = {"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
                "intermediate_size": 28672, "vocab_size": 32000}
    expected = {("llama", "70b"): (80, 2, 1, ("model.layers",)), ("gemma2", ""): (26, 2, 2, ("model.layers",)),
                ("gemma3_text", ""): (26, 8, 6, ("model.layers",)), ("deepseek_v3", ""): (61, 4, 1, ("model.layers",)),
                ("t5", ""): None}
    for (name, size), want in expected.items():
        model = zoo.load(ModelRequest(name=name, model_args=llama70b if size else None, no_weights=True,
                                      new_tokens=4, seq_len=8))
        layers = zoo.repeating_layers(model.model, model.request)
        assert (layers and (layers.depth, layers.first, layers.period, layers.stacks)) == want, name
    small = loaded("llama", 8, 4)
    weighted = zoo.load(ModelRequest(name="llama", model_args=ARCHS["llama"][1], no_weights=False, new_tokens=4,
                                     seq_len=8))
    assert zoo.repeating_layers(small.model, small.request) is not None
    assert zoo.repeating_layers(weighted.model, weighted.request) is None


def test_copies_off_the_line_are_refused():
    """Copies 2 and 3 layers deep of Gemma 2's 6 alternating layers (as if every layer were alike):
    the line through them gives a prefill of sliding layers where the model has global ones, which
    the prefill counted at full depth refutes."""
    model = loaded("gemma2", 20, 6)
    copies = [(d, loaded("gemma2", 20, 6, num_hidden_layers=d)) for d in (2, 3)]
    reason = by_depth(model.model, model.request, copies)
    assert isinstance(reason, str) and reason.startswith("prefill ") and "from copies 2 and 3 deep" in reason


def test_the_pipeline_runs_one_decode_step_then_counts_copies():
    """Discovery of a named model on meta runs the prefill and one decode step (the decode
    invocation, executed once), the tracker appends the other steps' cache states; the stage's
    generation is then the full count, from copies; without them (no request: not a named model) the
    generation runs again and is counted at full depth, with the reason in its notes."""
    from turnkey_like.inputs import named_model_specs
    from turnkey_like.pipeline.generation import generation_of
    from turnkey_like.zoo.named import discover_named

    request = ModelRequest(name="llama", model_args=ARCHS["llama"][1], no_weights=True, new_tokens=6, seq_len=20)
    found = discover_named(named_model_specs([request])[0])
    invocations = [inv for m in found.result.models for inv in m.invocations]
    assert sorted(inv.executed for inv in invocations) == [1, 1]
    (live,) = [live for live in found.live.values() if live.generation is not None]
    trace = live.generation
    assert trace.counted_elsewhere and trace.new_tokens == 6 and trace.simulated == 4 and trace.prompt_tokens == 20

    def count(args, kwargs):
        return characterize_call(live.model, args, kwargs, hardware=HARDWARE, no_weights=True, trace=False)

    prefill = count(live.args, live.kwargs)
    expected = full(live.model, found.result.model_request)
    ours = generation_of(live.model, live.args, live.kwargs, found.result.model_request, trace, prefill, count)
    assert_same_record(expected, ours, "copies", skip=("notes",))
    assert any("copies 2 and 3 layers deep of 5" in note for note in ours.notes)
    again = generation_of(live.model, live.args, live.kwargs, None, trace, prefill, count)
    assert_same_record(expected, again, "full depth", skip=("notes",))
    assert again.notes[-1] == "decode counted at full depth, not on copies of the model: its layers do not repeat"


def test_tk_profile_generate_counts_copies(tmp_path: Path):
    """The real CLI: ``tk profile --model llama --no-weights --generate 20:6 --json`` writes the full
    count, noted as counted on copies 2 and 3 layers deep."""
    name, args = ARCHS["llama"]
    out_json = tmp_path / "out.json"
    run = run_tk("profile", "--model", name, "--model-args", json.dumps(args), "--no-weights", "--generate", "20:6",
                 "--hardware", HARDWARE, "--json", str(out_json), "--cache-dir", str(tmp_path / "cache"), timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    report = decode(out_json.read_bytes(), RunReport)
    (generation,) = [inv.characterization.result.generation for m in report.results[0].models
                     for inv in m.invocations if inv.characterization.result.generation is not None]
    model = loaded("llama", 20, 6)
    assert_same_record(full(model.model, model.request), generation, "tk profile", skip=("notes", "whatif"))
    assert any("copies 2 and 3 layers deep of 5" in note for note in generation.notes)
    assert "decode counted on copies 2 and 3 layers deep" in run.stdout
