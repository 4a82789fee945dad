"""turnkey_like.turnkeyml_shim.parse behaves like TurnkeyML's turnkeyml.parser.parse."""

import subprocess
import sys

import pytest

from turnkey_like.turnkeyml_shim import parse


def test_defaults_in_the_order_asked():
    assert parse(["batch_size", "max_seq_length", "pretrained"], argv=[]) == [1, 128, False]
    assert parse(["height", "width", "num_channels", "alpha", "model_path", "kvcache"], argv=[]) == [
        224, 224, 3, 2.2, None, False]
    assert parse(["max_audio_seq_length", "k", "out_channels", "num_layers", "in_channels"], argv=[]) == [
        25600, 2, 1500, 8, 1433]


def test_flags_and_values_from_argv():
    argv = ["--batch_size", "8", "--pretrained", "--alpha", "0.5", "--unrelated", "x"]
    assert parse(["pretrained", "batch_size", "alpha"], argv=argv) == [True, 8, 0.5]


def test_unknown_name_is_a_key_error():
    with pytest.raises(KeyError):
        parse(["not_a_flag"], argv=[])


def test_script_importing_turnkeyml_parser_runs_under_tk(tmp_path):
    script = tmp_path / "corpus_style.py"
    script.write_text(
        "from turnkeyml.parser import parse\n"
        "import torch\n"
        "batch_size, seq = parse(['batch_size', 'max_seq_length'])\n"
        "model = torch.nn.Linear(seq, 2)\n"
        "model(torch.rand(batch_size, seq))\n"
        "print('shape', batch_size, seq)\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "turnkey_like", "benchmark", str(script), "--analyze-only",
         "--script-args", "--batch_size 3 --max_seq_length 16", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300,
    )
    assert "shape 3 16" in out.stdout, out.stdout + out.stderr
    assert "'Positional Arg 1': (3, 16)" in out.stdout
    # The shim is gone afterwards: importing turnkeyml in this process still fails.
    import importlib.util

    assert importlib.util.find_spec("turnkeyml") is None
