"""Generation what-ifs against figures derived by hand: bytes scaled by dtype, the peak each
weight/activation pair runs at, the largest batch that fits, tensor parallelism's KV split and
all-reduce bytes, and the decode knee; then the real CLI (terminal, sweep table, ``--json``,
``--generation-plot``, ``--html``).

The generations are counted from tiny random configs built offline (float32 on CPU, as
tests/test_generation.py counts them); the 2-layer Llama with P = 200, N = 9 is docs/generation.md's
worked example, whose record figures the doc derives (prefill weights 603,424 B, activations
7,239,456 B, KV 102,400 B read and written; decode weights 4,419,840 B, activations 1,990,528 B, KV
837,632 B read and 4,096 B written; 202,048 parameters; 512 KV bytes a token). The profiles are the
built-in datasheet ones, or a small one made here so that memory runs out at a batch of a few.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import pytest
import torch

from conftest import run_tk

transformers = pytest.importorskip("transformers")

from turnkey_like.characterize.generation import characterize_generation  # noqa: E402
from turnkey_like.characterize.generation_whatif import (WhatIfOptions, capacity, math_dtype, whatif,  # noqa: E402
                                                         with_whatifs)
from turnkey_like.characterize.hardware import BUILTIN  # noqa: E402
from turnkey_like.records import Generation, HardwareProfile, RunReport, decode, encode  # noqa: E402

A100, H100 = BUILTIN["a100"], BUILTIN["h100"]
LLAMA = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, vocab_size=1000,
             num_hidden_layers=2)
_COUNTED: dict = {}


def llama(p: int = 200, n: int = 9, batch: int = 1, hardware: str = "a100", **config) -> Generation:
    """The generation of a tiny random Llama (``LLAMA`` updated by ``config``), counted once per case."""
    key = (p, n, batch, hardware, tuple(sorted(config.items())))
    if key not in _COUNTED:
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**LLAMA, **config})).eval()
        ids = torch.randint(3, 1000, (batch, p))
        _COUNTED[key] = characterize_generation(model, ids, n, hardware=hardware)
    return _COUNTED[key]


# --------------------------------------------------------------------------------------------------
# The record's shape, and bytes scaled by dtype
# --------------------------------------------------------------------------------------------------

def test_generation_records_the_shape_the_whatifs_need():
    gen = llama()
    # 2 layers of K = 2 heads of 16 (h = 64 / 4), float32 as counted, d = 64 from the embedding's output
    assert (gen.shape.dtype, gen.shape.kv_itemsize, gen.shape.layers, gen.shape.kv_heads) == ("float32", 4, 2, 2)
    assert (gen.shape.head_dim, gen.shape.value_dim, gen.shape.hidden_size) == (16, 16, 64)
    # the doc's figures, which every what-if below scales
    prefill, decode_ = gen.phase("prefill"), gen.phase("decode")
    assert (prefill.bytes_weights, prefill.bytes_activations, prefill.bytes_kv_read) == (603_424, 7_239_456, 102_400)
    assert (decode_.bytes_weights, decode_.bytes_activations) == (4_419_840, 1_990_528)
    assert (decode_.bytes_kv_read, decode_.bytes_kv_write, gen.params_total) == (837_632, 4_096, 202_048)


def test_bytes_scale_by_each_dtype_against_the_counted_one():
    """int4 weights (0.5 B against 4), bf16 activations (2 against 4), fp8 KV (1 against 4)."""
    w = whatif(llama(), A100, weight_dtype="int4", act_dtype="bfloat16", kv_dtype="float8")
    prefill, decode_ = w.phase("prefill"), w.phase("decode")
    assert (prefill.bytes_weights, prefill.bytes_activations) == (603_424 // 8, 7_239_456 // 2)
    assert (prefill.bytes_kv_read, prefill.bytes_kv_write) == (102_400 // 4, 102_400 // 4)
    assert (decode_.bytes_weights, decode_.bytes_activations) == (4_419_840 // 8, 1_990_528 // 2)
    assert (decode_.bytes_kv_read, decode_.bytes_kv_write) == (837_632 // 4, 4_096 // 4)
    assert prefill.flops == 50_864_400 and decode_.flops == 3_071_888  # FLOPs do not change with the dtype
    # int4 weights with bf16 activations: the math runs at A100's bf16 peak (312 TFLOP/s)
    assert (w.math_dtype, w.peak_flops) == ("bfloat16", 312e12)
    memory = (603_424 // 8 + 7_239_456 // 2 + 2 * 25_600) / 2039e9
    assert prefill.memory_time_s == pytest.approx(memory, rel=1e-12)
    assert prefill.compute_time_s == pytest.approx(50_864_400 / 312e12, rel=1e-12)
    assert w.ttft_s == pytest.approx(max(memory, 50_864_400 / 312e12), rel=1e-12)
    assert prefill.bound == "memory-bound"
    decode_time = (4_419_840 // 8 + 1_990_528 // 2 + 837_632 // 4 + 4_096 // 4) / 2039e9
    assert w.tpot_s == pytest.approx(decode_time / 8, rel=1e-12)
    assert w.tokens_per_s == pytest.approx(8 / decode_time, rel=1e-12)
    assert any("scales and zero points" in note for note in w.notes)


def test_the_counted_dtypes_give_the_counted_bytes():
    w = whatif(llama(), A100)
    assert (w.weight_dtype, w.act_dtype, w.kv_dtype, w.math_dtype) == ("float32",) * 4
    for mine, counted_ in zip(w.phases, llama().phases):
        assert (mine.bytes_weights, mine.bytes_kv_read, mine.bytes_kv_write, mine.bytes_activations, mine.flops) == (
            counted_.bytes_weights, counted_.bytes_kv_read, counted_.bytes_kv_write, counted_.bytes_activations,
            counted_.flops)
        # the phase-level time never exceeds the record's per-op sum (max of sums <= sum of maxes)
        assert mine.time_s <= counted_.roofline_time_s * (1 + 1e-12)


# --------------------------------------------------------------------------------------------------
# The peak each weight/activation pair runs at
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("profile, weight, act, expected", [
    (A100, "int4", "bfloat16", "bfloat16"),   # W4A16: weights dequantized in the matmul (TensorRT-LLM weight-only)
    (A100, "int8", "float16", "float16"),     # W8A16
    (A100, "int8", "int8", "int8"),           # W8A8 SmoothQuant
    (H100, "int8", "int8", "int8"),
    (A100, "int4", "int4", "int4"),           # A100 has INT4 tensor cores (1,248 TOPS)
    (H100, "int4", "int4", "int8"),           # H100 has none: the next wider, int8
    (H100, "float8", "float8", "float8"),     # FP8 tensor cores (1,979 TFLOPS dense)
    (A100, "float8", "float8", "float16"),    # A100 has no FP8: the 16-bit float
    (A100, "float8", "bfloat16", "bfloat16"),
    (H100, "int4", "float8", "float8"),       # W4A8 AWQ: int4 weights with FP8 activations
    (H100, "int4", "int8", "int8"),           # W4A8 with int8 activations
    (H100, "int8", "float8", "float8"),       # as wide: the activations' kind
    (H100, "bfloat16", "float8", "bfloat16"),  # weights wider than activations: the weights' dtype
    (A100, "float32", "bfloat16", "float32"),
])
def test_the_math_runs_at_the_wider_dtype_the_profile_has(profile, weight, act, expected):
    chosen, rule = math_dtype(weight, act, profile)
    assert chosen == expected, rule
    assert chosen in profile.peak_flops
    # a dtype the pair does not name comes from the profile lacking the one it does
    assert (f"{profile.name} has no" in rule) == (chosen not in (weight, act))


def test_narrow_peaks_come_from_the_datasheets():
    assert H100.peak_flops["float8"] == 1979e12 and "3,958" in H100.sources["peak_flops.float8"]
    assert A100.peak_flops["int4"] == 1248e12 and "1,248" in A100.sources["peak_flops.int4"]
    assert "float8" not in A100.peak_flops and "int4" not in H100.peak_flops
    assert (A100.interconnect_bandwidth, H100.interconnect_bandwidth) == (300e9, 450e9)
    w = whatif(llama(), H100, weight_dtype="float8", act_dtype="float8")
    assert (w.math_dtype, w.peak_flops) == ("float8", 1979e12)
    assert w.phase("prefill").compute_time_s == pytest.approx(50_864_400 / 1979e12, rel=1e-12)
    w = whatif(llama(), A100, weight_dtype="float8", act_dtype="float8")
    assert (w.math_dtype, w.peak_flops) == ("float16", 312e12) and "a100 has no float8 peak" in w.peak_rule


# --------------------------------------------------------------------------------------------------
# Capacity and tensor parallelism
# --------------------------------------------------------------------------------------------------

SMALL = HardwareProfile(name="small", description="1 MB of memory", peak_flops={"float32": 1e12},
                        memory_bandwidth=1e11, memory_bytes=1_000_000, interconnect_bandwidth=1e10)


def test_largest_batch_is_what_fits_beside_the_weights():
    gen = llama()
    # float32: 202,048 parameters x 4 = 808,192 B; a sequence holds 208 positions x 512 B = 106,496 B
    cap = capacity(gen, SMALL, gen.shape, weight_dtype="float32", kv_dtype="float32")
    assert (cap.weight_bytes, cap.kv_bytes_per_token, cap.context, cap.kv_bytes_per_sequence) == (
        808_192, 512, 208, 106_496)
    assert cap.max_batch == (1_000_000 - 808_192) // 106_496 == 1 and cap.fits
    # bf16 weights and an fp8 cache: 404,096 B, then 26,624 B a sequence
    cap = capacity(gen, SMALL, gen.shape, weight_dtype="bfloat16", kv_dtype="float8")
    assert cap.max_batch == (1_000_000 - 404_096) // 26_624 == 22
    # 10% kept back: 900,000 usable
    cap = capacity(gen, SMALL, gen.shape, weight_dtype="bfloat16", kv_dtype="float8", memory_reserve=0.1)
    assert (cap.usable_bytes, cap.max_batch) == (900_000, (900_000 - 404_096) // 26_624)
    # int4 weights that alone exceed the memory of a 100 kB device: no batch fits
    tiny = msgspec.structs.replace(SMALL, memory_bytes=100_000)
    cap = capacity(gen, tiny, gen.shape, weight_dtype="int4", kv_dtype="float8")
    assert cap.weight_bytes == 101_024 and cap.max_batch == 0 and not cap.fits
    assert cap.min_tensor_parallel == 2  # 50,512 + 26,624 / 2 (1 of 2 KV heads)


def test_the_smallest_tensor_parallel_degree_that_fits_the_batch():
    gen = llama(batch=8)
    cap = capacity(gen, SMALL, gen.shape, weight_dtype="float32", kv_dtype="float32")
    # one device: 808,192 + 8 x 106,496 = 1,660,160 > 1,000,000; two: 404,096 + 8 x 53,248 = 830,080
    assert not cap.fits and cap.min_tensor_parallel == 2
    cap = capacity(gen, SMALL, gen.shape, weight_dtype="float32", kv_dtype="float32", tensor_parallel=2)
    assert (cap.weight_bytes, cap.kv_bytes_per_sequence, cap.fits) == (404_096, 53_248, True)


def test_tensor_parallel_splits_kv_by_heads_and_counts_the_all_reduces():
    gen = llama()
    w = whatif(gen, A100, act_dtype="bfloat16", tensor_parallel=4)
    prefill, decode_ = w.phase("prefill"), w.phase("decode")
    # K = 2 heads over 4 devices: each holds 1 head (replicated), half the cache
    assert w.capacity.kv_bytes_per_token == 256 and prefill.bytes_kv_read == 102_400 // 2
    # 2 all-reduces per layer x 2 layers of B·T·d bf16: prefill 200 tokens, decode 8 steps of 1;
    # a ring sends 2(N-1)/N = 1.5 of each buffer
    assert prefill.bytes_allreduce == 2 * 2 * 200 * 64 * 2 * 3 // 2 == 153_600
    assert decode_.bytes_allreduce == 2 * 2 * 8 * 64 * 2 * 3 // 2 == 6_144
    assert prefill.comm_time_s == pytest.approx(153_600 / 300e9, rel=1e-12)
    assert prefill.flops == round(50_864_400 / 4) and prefill.bytes_weights == round(603_424 / 4)
    assert prefill.time_s == pytest.approx(max(prefill.compute_time_s, prefill.memory_time_s) + 153_600 / 300e9,
                                           rel=1e-12)
    # a profile without an interconnect figure leaves the time out and says so
    bare = msgspec.structs.replace(SMALL, interconnect_bandwidth=None)
    w = whatif(gen, bare, tensor_parallel=2)
    assert w.phase("prefill").comm_time_s is None and any("no interconnect" in n for n in w.notes)


@pytest.mark.slow
def test_a_70b_model_at_bf16_needs_two_h100s():
    """Llama-3-70B's shape on meta tensors: 70,553,706,496 parameters (2·V·d + L·(2·d·H·h + 2·d·K·h +
    3·d·I + 2d) + d), 141 GB at bf16: no single 80 GB H100 holds them, two do."""
    cfg = transformers.LlamaConfig(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                                   num_key_value_heads=8, intermediate_size=28672, vocab_size=128256, head_dim=128)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    gen = characterize_generation(model, torch.zeros((1, 8), dtype=torch.long), 2, hardware="h100", no_weights=True)
    V, d, L, H, K, h, I = 128256, 8192, 80, 64, 8, 128, 28672  # noqa: E741, N806 (the docs' symbols)
    assert gen.params_total == 2 * V * d + L * (2 * d * H * h + 2 * d * K * h + 3 * d * I + 2 * d) + d
    one = whatif(gen, H100).capacity
    assert one.weight_bytes == 2 * gen.params_total and one.max_batch == 0 and not one.fits
    assert one.min_tensor_parallel == 2
    # a position: 80 layers x K and V x 8 heads x 128 x 2 B = 327,680 B; on 2 devices, 4 heads each
    assert one.kv_bytes_per_token == 327_680
    two = whatif(gen, H100, tensor_parallel=2).capacity
    assert two.fits and two.kv_bytes_per_token == 163_840
    assert two.max_batch == (80 * 2**30 - gen.params_total) // (163_840 * 9)


# --------------------------------------------------------------------------------------------------
# The decode knee
# --------------------------------------------------------------------------------------------------

WIDE = dict(hidden_size=256, intermediate_size=1024, num_attention_heads=4, num_key_value_heads=4, vocab_size=1000)


def test_the_knee_is_where_compute_time_meets_memory_time():
    gen = llama(p=4, n=3, **WIDE)
    w = whatif(gen, A100)
    decode_ = w.phase("decode")
    f = decode_.flops / 19.5e12
    s = (decode_.bytes_kv_read + decode_.bytes_kv_write + decode_.bytes_activations) / 2039e9
    assert f > s  # a short context: the per-sequence intensity is above the ridge point
    assert w.decode_knee_batch == pytest.approx(decode_.bytes_weights / 2039e9 / (f - s), rel=1e-12)
    kv_only = (decode_.bytes_kv_read + decode_.bytes_kv_write) / 2039e9
    assert w.decode_knee_batch_kv_only == pytest.approx(decode_.bytes_weights / 2039e9 / (f - kv_only), rel=1e-12)
    assert w.decode_knee_batch_kv_only < w.decode_knee_batch
    # the tiny Llama at context 201-208: its counted activations (the cache's cat copies) grow with the
    # batch as fast as its FLOPs: memory-bound at every batch
    assert whatif(llama(), A100).decode_knee_batch is None


def test_counting_at_a_larger_batch_confirms_the_knee():
    """The knee extrapolated from batch 1 tells the bound tk counts at other batches: memory-bound
    below it, compute-bound above it."""
    knee = whatif(llama(p=4, n=3, **WIDE), A100).decode_knee_batch
    below, above = max(1, math.floor(knee / 2)), math.ceil(knee * 2)
    assert whatif(llama(p=4, n=3, batch=below, **WIDE), A100).phase("decode").bound == "memory-bound"
    at_above = whatif(llama(p=4, n=3, batch=above, **WIDE), A100)
    assert at_above.phase("decode").bound == "compute-bound"
    assert at_above.decode_knee_batch == pytest.approx(knee, rel=0.02)


# --------------------------------------------------------------------------------------------------
# Records: combinations, old records, the JSON contract
# --------------------------------------------------------------------------------------------------

def test_options_cross_into_one_whatif_per_profile_and_combination():
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA)).eval()
    from turnkey_like.characterize.assemble import characterize_call

    char = characterize_call(model, (), {"input_ids": torch.randint(3, 1000, (1, 8))}, hardware="a100", trace=False)
    char.generation = llama(p=8, n=2)
    options = WhatIfOptions(weight_dtypes=("bfloat16", "int4"), kv_dtypes=("float8",), tensor_parallel=(1, 2))
    gen = with_whatifs(char, [A100, H100], options)
    assert len(gen.whatif) == 2 * 2 * 1 * 1 * 2
    assert [(w.hardware, w.weight_dtype, w.tensor_parallel) for w in gen.whatif[:4]] == [
        ("a100", "bfloat16", 1), ("a100", "bfloat16", 2), ("a100", "int4", 1), ("a100", "int4", 2)]
    # a record from a tk before what-ifs (no shape): the shape comes from the characterization, KV
    # heads unknown (the cache split N ways, and said so)
    char.generation = msgspec.structs.replace(llama(p=8, n=2), shape=None)
    old = with_whatifs(char, [A100], WhatIfOptions(tensor_parallel=(2,)))
    assert old.shape.kv_heads == 0 and old.shape.hidden_size == 64
    assert any("KV heads not known" in n for n in old.whatif[0].notes)
    # the JSON contract: the record with its what-ifs comes back field for field
    assert decode(encode(gen), Generation) == gen


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------

MODEL_ARGS = json.dumps({**LLAMA, "head_dim": 16})


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One real ``tk profile`` sweep: 2 contexts x 2 batches, on a100 and h100, bf16 and int4 weights,
    an fp8 cache, on 1 and 2 devices."""
    root = tmp_path_factory.mktemp("whatif_cli")
    out = run_tk("profile", "--model", "llama", "--model-args", MODEL_ARGS, "--generate", "32:4,16:4",
                 "--batch-size", "1,2", "--hardware", "a100,h100", "--weight-dtype", "bf16,int4", "--kv-dtype", "fp8",
                 "--tensor-parallel", "1,2", "--memory-reserve", "0.1", "--cache-dir", str(root / "cache"),
                 "--json", str(root / "out.json"), "--generation-plot", str(root / "plot.svg"),
                 "--html", str(root / "report.html"), "-q", timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return root, out


def test_cli_gives_every_generation_its_whatifs(swept):
    root, out = swept
    report = decode((root / "out.json").read_bytes(), RunReport)
    gens = [inv.characterization.result.generation for r in report.results for _m, inv in r.invocations()
            if inv.characterization.result is not None and inv.characterization.result.generation is not None]
    assert sorted((g.prompt_tokens, g.batch_size) for g in gens) == [(16, 1), (16, 2), (32, 1), (32, 2)]
    for gen in gens:
        assert len(gen.whatif) == 2 * 2 * 2  # profiles x weight dtypes x devices
        assert {w.kv_dtype for w in gen.whatif} == {"float8"} and {w.memory_reserve for w in gen.whatif} == {0.1}
        assert [w.hardware for w in gen.whatif] == ["a100"] * 4 + ["h100"] * 4
    assert out.stdout.count("What-ifs (phase-level roofline per device") == 4
    sweep = out.stdout[out.stdout.index("generation sweep: llama"):]
    assert len([line for line in sweep.splitlines() if line.startswith(("16:4", "32:4"))]) == 4 * 8


def test_cli_writes_the_plot_and_the_html_sections(swept):
    root, _ = swept
    svg = (root / "plot.svg").read_text(encoding="utf-8")
    # a line per context, hardware, weight dtype and device count: 2 x 2 x 2 x 2, each over batch 1 and 2
    assert all(f'id="tk-gen-line-{n}"' in svg for n in range(16)) and 'id="tk-gen-line-16"' not in svg
    page = (root / "report.html").read_text(encoding="utf-8")
    assert page.count("<h3>Generation</h3>") == 4 and 'id="generation-sweep"' in page


def test_cli_rejects_an_unknown_dtype_in_one_line(tmp_path):
    out = run_tk("profile", "--model", "llama", "--generate", "8:2", "--weight-dtype", "fp6",
                 "--cache-dir", str(tmp_path / "cache"), timeout=120)
    assert out.returncode == 1
    assert "error: --weight-dtype 'fp6': unknown dtype 'fp6'" in out.stderr and "hint: choose from" in out.stderr
    out = run_tk("profile", "--model", "llama", "--generate", "8:2", "--memory-reserve", "1.5",
                 "--cache-dir", str(tmp_path / "cache"), timeout=120)
    assert out.returncode == 1 and "error: --memory-reserve 1.5" in out.stderr


def test_cli_takes_several_profiles_for_a_generation_without_plots(tmp_path):
    """``--hardware h100,a100`` with ``--generate`` and no ``--html``/``--roofline``: every profile
    gives the generation its what-ifs, so the profiles after the first are not ignored; without a
    generation option they still are, and the command is refused."""
    out = run_tk("profile", "--model", "llama", "--model-args", MODEL_ARGS, "--generate", "16:4", "--hardware",
                 "h100,a100", "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "out.json"), "-q",
                 timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = decode((tmp_path / "out.json").read_bytes(), RunReport)
    gens = [inv.characterization.result.generation for r in report.results for _m, inv in r.invocations()
            if inv.characterization.result is not None and inv.characterization.result.generation is not None]
    assert [[w.hardware for w in g.whatif] for g in gens] == [["h100", "a100"]]
    out = run_tk("profile", "--model", "llama", "--model-args", MODEL_ARGS, "--seq-len", "16", "--hardware",
                 "h100,a100", "--cache-dir", str(tmp_path / "cache"), timeout=120)
    assert out.returncode == 2 and "need --roofline PATH or --html PATH" in out.stderr
