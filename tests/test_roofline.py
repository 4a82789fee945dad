"""Roofline classification and time estimates, and the hardware profiles they use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from turnkey_like.characterize.hardware import (
    BUILTIN,
    HardwareProfile,
    get_profile,
    list_profiles,
    local_profile,
    local_profile_path,
)
from turnkey_like.characterize.roofline import (
    COMPUTE_BOUND,
    MEMORY_BOUND,
    NO_COMPUTE,
    arithmetic_intensity,
    classify,
    roofline_time_s,
)
from turnkey_like.errors import InputError
from turnkey_like.records import decode, encode

# A made-up device with round numbers: 100 GFLOP/s fp32, 10 GB/s -> ridge point 10 FLOPs/byte.
TOY = HardwareProfile(
    name="toy",
    description="toy device",
    peak_flops={"float32": 100e9, "float16": 400e9, "bfloat16": 400e9, "int8": 800e9},
    memory_bandwidth=10e9,
)


def test_ridge_point_is_peak_over_bandwidth():
    assert TOY.ridge_point("float32") == pytest.approx(10.0)  # 100e9 / 10e9
    assert TOY.ridge_point("float16") == pytest.approx(40.0)  # 400e9 / 10e9
    # dtypes without an entry fall back to the fp32 peak
    assert TOY.ridge_point("int64") == pytest.approx(10.0)
    # A100: 19.5e12 / 2039e9 = 9.56 FLOPs/B (fp32 CUDA cores); 312e12 / 2039e9 = 153 (fp16 tensor cores)
    assert BUILTIN["a100"].ridge_point("float32") == pytest.approx(9.5635, rel=1e-3)
    assert BUILTIN["a100"].ridge_point("float16") == pytest.approx(153.02, rel=1e-3)


def test_classification_against_ridge_point():
    # 1024x1024x1024 fp32 matmul: 2*1024^3 FLOPs over 3*1024*1024*4 bytes -> AI = 170.7 >= 10
    flops, nbytes = 2 * 1024**3, 3 * 1024 * 1024 * 4
    assert arithmetic_intensity(flops, nbytes) == pytest.approx(2 * 1024 / 12)
    assert classify(flops, nbytes, TOY, "float32") == COMPUTE_BOUND
    # fp32 ReLU on 1M elements: 1M FLOPs over 8 MB -> AI 0.125 < 10
    assert classify(1_000_000, 8_000_000, TOY, "float32") == MEMORY_BOUND
    # exactly at the ridge point counts as compute-bound
    assert classify(100, 10, TOY, "float32") == COMPUTE_BOUND
    # AI 20 is compute-bound in fp32 (ridge 10) but memory-bound in fp16 (ridge 40)
    assert classify(200, 10, TOY, "float32") == COMPUTE_BOUND
    assert classify(200, 10, TOY, "float16") == MEMORY_BOUND


def test_zero_flop_ops_are_no_compute_never_balanced():
    assert classify(0, 4096, TOY, "float32") == NO_COMPUTE
    assert arithmetic_intensity(0, 4096) == 0.0
    assert arithmetic_intensity(10, 0) is None


def test_roofline_time_is_max_of_compute_and_memory_time():
    # 1e9 FLOPs / 100e9 = 10 ms of compute; 1e6 bytes / 10e9 = 0.1 ms of memory -> 10 ms
    assert roofline_time_s(1e9, 1e6, TOY, "float32") == pytest.approx(10e-3)
    # 1e6 FLOPs -> 10 us compute; 1e9 bytes -> 100 ms memory -> 100 ms
    assert roofline_time_s(1e6, 1e9, TOY, "float32") == pytest.approx(0.1)
    # a pure copy still costs its memory time
    assert roofline_time_s(0, 2e9, TOY, "float32") == pytest.approx(0.2)


def test_builtin_profiles_cite_a_source_for_every_value():
    for profile in BUILTIN.values():
        for dtype in ("float32", "float16", "bfloat16", "int8"):
            assert profile.peak_flops[dtype] > 0
            assert profile.sources[f"peak_flops.{dtype}"]
        assert profile.sources["memory_bandwidth"]
        # dense tensor-core/matrix peaks are well above the plain fp32 peak on every built-in
        assert profile.peak_flops["bfloat16"] > profile.peak_flops["float32"]
    # H100 SXM datasheet: 1,979 TFLOPS bf16 *with sparsity* -> dense 989.5
    assert BUILTIN["h100"].peak_flops["bfloat16"] == pytest.approx(989.5e12)
    # EPYC 9654: 12 x DDR5-4800 x 8 bytes = 460.8 GB/s
    assert BUILTIN["epyc9654"].memory_bandwidth == pytest.approx(12 * 4800e6 * 8)


def test_unknown_profile_lists_known_names():
    with pytest.raises(InputError) as err:
        get_profile("tpu-v9")
    assert "tpu-v9" in str(err.value)
    for name in list_profiles():
        assert name in err.value.hint
    assert get_profile("A100") is BUILTIN["a100"]


def test_profile_round_trips_through_the_codec():
    for p in BUILTIN.values():
        assert decode(encode(p), HardwareProfile) == p


def test_local_profile_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TK_CACHE_DIR", str(tmp_path))
    first = local_profile()
    assert first.measured and first.name == "local"
    assert first.threads == torch.get_num_threads()
    # any real CPU does more than 1 GFLOP/s in fp32 matmul and copies more than 0.5 GB/s
    assert first.peak_flops["float32"] > 1e9
    assert first.memory_bandwidth > 0.5e9
    cached = tmp_path / "hardware" / "local.json"
    entries = json.loads(cached.read_text())
    assert len(entries) == 1
    # a second call reads the cache instead of measuring again: tamper with it and see the value
    # (marked as measured on a quiet machine: a busy one is looked at again, tests/test_hardware.py)
    key = next(iter(entries))
    entries[key]["memory_bandwidth"] = 123.0
    entries[key]["load"]["busy"] = False
    cached.write_text(json.dumps(entries))
    assert get_profile(None).memory_bandwidth == 123.0
    # a file that does not match the schema is ignored and rewritten with a fresh measurement
    cached.write_text(json.dumps({key: {"name": "local"}}))
    again = get_profile("local")
    assert again.memory_bandwidth > 0.5e9
    assert decode(cached.read_bytes(), dict[str, HardwareProfile]) == {key: again}


def test_local_profile_lands_in_the_given_cache_dir_not_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TK_CACHE_DIR", raising=False)
    cache = tmp_path / "cache"
    assert local_profile_path(cache) == cache / "hardware" / "local.json"
    profile = get_profile("local", cache_dir=cache)
    assert profile.measured
    assert (cache / "hardware" / "local.json").is_file()
    assert [p for p in home.rglob("*")] == []  # nothing under $HOME
    # without a cache dir the default root is under the (redirected) home
    assert local_profile_path(None) == home / ".cache" / "turnkey_like" / "hardware" / "local.json"
    assert sorted(os.listdir(cache)) == [".tk-cache", "hardware"]  # a tk cache, marker and all


def test_python_api_local_profile_leaves_a_default_cache_that_tk_accepts(tmp_path):
    """``turnkey_like.characterize(model, x)`` measures ``local`` into the default cache root; a later
    ``tk benchmark`` with that default root must still accept it as a tk cache."""
    from conftest import EXAMPLES, run_tk

    env = {"HOME": str(tmp_path), "TK_CACHE_DIR": ""}
    code = ("import torch, turnkey_like\n"
            "c = turnkey_like.characterize(torch.nn.Linear(4, 2), torch.rand(1, 4))\n"
            "print(c.hardware.name)\n")
    api = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env})
    assert api.returncode == 0 and api.stdout.strip() == "local", api.stderr
    root = tmp_path / ".cache" / "turnkey_like"
    assert (root / "hardware" / "local.json").is_file() and (root / ".tk-cache").is_file()
    out = run_tk("benchmark", str(EXAMPLES / "hello_world.py"), "--analyze-only", "-q", env=env)
    assert out.returncode == 0, out.stderr
    assert "1 characterized" in out.stdout
