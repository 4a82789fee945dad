"""Generation measured beside predicted (``runtimes/generation.py``, ``generation_export.py``).

Real models (tiny random configs), real ONNX Runtime sessions, the real CLI. No test asserts a time:
only that times exist and are positive, that ratios are measured ÷ predicted as recorded, and that a
profile a million times too slow is flagged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
ort = pytest.importorskip("onnxruntime")

from tests.conftest import run_tk  # noqa: E402
from turnkey_like.errors import BuildError  # noqa: E402
from turnkey_like.generation_export import cache_names, export_generation  # noqa: E402
from turnkey_like.records import Generation, HardwareProfile  # noqa: E402
from turnkey_like.runtimes import BenchmarkOptions  # noqa: E402
from turnkey_like.runtimes.generation import (  # noqa: E402
    GENERATION_RUNTIMES,
    PROFILE_ERROR_RATIO,
    measure_generation,
)
from turnkey_like.report.generation import measured_lines  # noqa: E402

CUDA = torch.cuda.is_available()
ORT_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                        intermediate_size=128, vocab_size=1000, num_hidden_layers=2)).eval()


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_embd=64, n_head=4, n_layer=2, vocab_size=1000, n_positions=128)).eval()


def _torch_steps(model, ids, steps: int) -> list[np.ndarray]:
    """The last-position logits of the prefill and of ``steps`` greedy decode steps, as transformers
    runs them (its own DynamicCache, positions, ``logits_to_keep=1``)."""
    from transformers import DynamicCache

    batch, prompt = ids.shape
    logits = []
    with torch.no_grad():
        out = model(input_ids=ids, position_ids=torch.arange(prompt).expand(batch, prompt),
                    past_key_values=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)
        logits.append(out.logits.numpy())
        for k in range(steps):
            out = model(input_ids=out.logits[:, -1:].argmax(-1), position_ids=torch.full((batch, 1), prompt + k),
                        past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
            logits.append(out.logits.numpy())
    return logits


@pytest.mark.parametrize("build", [_llama, _gpt2], ids=["llama", "gpt2"])
def test_the_graphs_take_and_return_the_cache(build, tmp_path):
    """The prefill graph returns the cache it filled, the decode graph takes a cache and returns it one
    position longer, under Optimum's names; prefill then decode steps through ORT, each step fed the
    last one's present tensors, give transformers' logits."""
    model = build()
    ids = torch.randint(3, 1000, (2, 7))
    graphs = export_generation(model, ids, tmp_path)
    prefill = ort.InferenceSession(graphs.prefill_path, providers=["CPUExecutionProvider"])
    decode = ort.InferenceSession(graphs.decode_path, providers=["CPUExecutionProvider"])
    layers = model.config.num_hidden_layers
    present = cache_names(layers, "present")
    assert [i.name for i in prefill.get_inputs()] == ["input_ids", "position_ids"]
    assert [i.name for i in decode.get_inputs()] == ["input_ids", "position_ids"] + cache_names(layers, "past_key_values")
    assert [o.name for o in prefill.get_outputs()] == [o.name for o in decode.get_outputs()] == ["logits"] + present
    assert graphs.past_inputs == cache_names(layers, "past_key_values")

    expected = _torch_steps(model, ids, 3)
    out = prefill.run(None, {"input_ids": ids.numpy(), "position_ids": np.tile(np.arange(7), (2, 1))})
    got = [out[0]]
    assert all(t.shape[2] == 7 for t in out[1:])
    for k in range(3):
        feed = {"input_ids": out[0][:, -1:].argmax(-1), "position_ids": np.full((2, 1), 7 + k),
                **dict(zip(graphs.past_inputs, out[1:]))}
        out = decode.run(None, feed)
        assert all(t.shape[2] == 8 + k for t in out[1:]), "each step returns the cache one position longer"
        got.append(out[0])
    for k, (a, b) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=f"call {k} (0: prefill)")


SCRIPT = """\
import torch
from transformers import GPT2Config, GPT2LMHeadModel

torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_head=4, n_layer=2, vocab_size=1000, n_positions=128)).eval()
ids = torch.randint(3, 1000, (2, 12))
model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, min_new_tokens=4, do_sample=False)
"""

LLAMA_ARGS = ('{"hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":128,'
              '"vocab_size":1000,"num_hidden_layers":2}')


def _generations(report: dict) -> list[Generation]:
    import msgspec

    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("generation"), dict):
                found.append(msgspec.convert(node["generation"], Generation))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report)
    return found


@pytest.mark.parametrize("source", ["script", "model"])
def test_tk_benchmark_records_both_runtimes(source, tmp_path):
    """``tk benchmark`` on a script that calls ``generate()``, and on ``--model llama --generate``, puts
    on the prefill's generation one entry per runtime and device: cpu measured on both runtimes with
    positive times and ratios = measured ÷ predicted; cuda measured where present, else skipped."""
    if source == "script":
        (tmp_path / "gen.py").write_text(SCRIPT, encoding="utf-8")
        inputs = [str(tmp_path / "gen.py")]
        prompt, new = 12, 4
    else:
        inputs = ["--model", "llama", "--model-args", LLAMA_ARGS, "--generate", "16:5"]
        prompt, new = 16, 5
    out = run_tk("benchmark", *inputs, "--hardware", "a100", "--iterations", "2", "--cache-dir",
                 str(tmp_path / "cache"), "--json", str(tmp_path / "out.json"))
    assert out.returncode == 0, out.stdout + out.stderr
    [gen] = _generations(json.loads((tmp_path / "out.json").read_text()))
    assert (gen.prompt_tokens, gen.new_tokens) == (prompt, new)
    entries = {(m.runtime, m.device): m for m in gen.measured}
    assert set(entries) == {(r, d) for r in GENERATION_RUNTIMES for d in ("cpu", "cuda")}
    for (runtime, device), m in entries.items():
        if device == "cuda" and not (CUDA if runtime == "torch-eager" else ORT_CUDA):
            assert m.status == "skipped" and "CUDA" in m.error
            continue
        assert m.status == "successful", m.error
        assert m.measured_ttft_s > 0 and m.measured_tpot_s > 0
        assert m.ratio_ttft == pytest.approx(m.measured_ttft_s / gen.ttft_s)
        assert m.ratio_tpot == pytest.approx(m.measured_tpot_s / gen.tpot_s)
        assert (m.repeats, m.warmup, m.decode_steps) == (2, 1, new - 1)
        assert m.load is not None and m.threads and m.device_name and m.runtime_version
    lines = measured_lines(gen)
    assert lines[0].startswith("Measured beside predicted (roofline on a100")
    cpu = entries["ort", "cpu"]
    assert any(line.startswith("  ort on cpu: TTFT") and f"({cpu.ratio_ttft:.2f}x)" in line for line in lines)
    # the plain ONNX builds of the prefill and decode calls agree with eager PyTorch: the reference
    # call runs on a copy of the inputs, so the export sees the KV cache as the call got it
    builds = [inv["build"] for r in json.loads((tmp_path / "out.json").read_text())["results"]
              for m in r["models"] for inv in m["invocations"]]
    assert len(builds) >= 2 and all(b["status"] == "successful" and b["result"]["faithful"] for b in builds), builds


class _Branchy(transformers.LlamaForCausalLM):
    """A causal LM whose forward branches on a tensor's value: it runs eagerly, but ``torch.export``
    cannot trace a data-dependent branch, so its ONNX export fails."""

    def forward(self, input_ids=None, **kwargs):
        out = super().forward(input_ids=input_ids, **kwargs)
        if out.logits.sum() > 0:
            out.logits = out.logits + 0
        return out


def test_an_export_that_fails_is_a_status(tmp_path):
    """The export's failure is the ORT entries' error (named, with the exporter's reason); torch eager
    is measured all the same."""
    from turnkey_like.characterize.generation import characterize_generation

    torch.manual_seed(0)
    model = _Branchy(_llama().config).eval()
    ids = torch.randint(3, 1000, (1, 6))
    gen = characterize_generation(model, ids, 3, hardware="a100")
    measured = measure_generation(model, (), {"input_ids": ids}, gen, tmp_path, BenchmarkOptions(iterations=1, warmup=0))
    entries = {(m.runtime, m.device): m for m in measured.measured}
    assert entries["torch-eager", "cpu"].status == "successful"
    failed = entries["ort", "cpu"]
    assert failed.status == "error" and failed.measured_ttft_s is None
    assert failed.error.startswith("export: ONNX export of the prefill graph failed")
    assert any("ort on cpu: error: export: ONNX export" in line for line in measured_lines(measured))


def test_a_sliding_window_cache_is_refused_with_the_reason(tmp_path):
    """A cache with sliding-window layers cannot be carried by tensors of its stored positions: the
    export says so rather than write graphs that mask wrongly past the window."""
    from transformers import MistralConfig, MistralForCausalLM

    model = MistralForCausalLM(MistralConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                             intermediate_size=128, vocab_size=1000, num_hidden_layers=2,
                                             sliding_window=8)).eval()
    with pytest.raises(BuildError, match="sliding-window"):
        export_generation(model, torch.randint(3, 1000, (1, 6)), tmp_path)


def test_a_roofline_the_run_beat_is_a_profile_error(tmp_path):
    """A profile a million times slower than any machine predicts seconds for microseconds of work:
    the measured ratio is far below 1 and the entry says it is a profile error."""
    from turnkey_like.characterize.generation import characterize_generation

    slow = HardwareProfile(name="too-slow", description="1 MFLOP/s, 1 MB/s",
                           peak_flops={"float32": 1e6}, memory_bandwidth=1e6)
    model = _llama()
    ids = torch.randint(3, 1000, (1, 6))
    gen = characterize_generation(model, ids, 3, hardware=slow)
    measured = measure_generation(model, (), {"input_ids": ids}, gen, tmp_path, BenchmarkOptions(iterations=1, warmup=0))
    m = next(m for m in measured.measured if (m.runtime, m.device) == ("torch-eager", "cpu"))
    assert m.ratio_ttft < PROFILE_ERROR_RATIO and m.ratio_tpot < PROFILE_ERROR_RATIO
    assert len(m.flags) == 2 and all(f.startswith("profile error: measured T") and "too-slow" in f for f in m.flags)
