"""The terminal contract with real `tk` processes: streams, progress, global flags, --json, hints, golden report."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import EXAMPLES, REPO, run_tk
from turnkey_like import __version__
from turnkey_like.records import SCHEMA_VERSION, RunReport, Status, decode

TINY = """
import torch
model = torch.nn.Linear(4, 2)
model(torch.rand(1, 4))
"""


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def test_version_flag_and_command():
    out = run_tk("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"tk {__version__}"
    out = run_tk("version")
    assert out.returncode == 0 and out.stdout.splitlines()[0] == f"tk {__version__}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_flags_before_or_after_the_command(tmp_path, where):
    script = _write(tmp_path, "tiny.py", TINY)
    flags = ["-q", "-v", "--traceback"]
    args = ["benchmark", str(script), "--analyze-only", "--hardware", "a100", "--cache-dir", str(tmp_path / "c")]
    out = run_tk(*(flags + args if where == "before" else args + flags))
    assert out.returncode == 0, out.stderr
    assert "1 characterized" in out.stdout


def test_report_on_stdout_progress_lines_on_stderr_and_quiet(tmp_path):
    script = _write(tmp_path, "tiny.py", TINY)
    args = ["benchmark", str(script), "--analyze-only", "--hardware", "a100", "--cache-dir", str(tmp_path / "c")]
    out = run_tk(*args)
    assert out.returncode == 0
    assert "Model hash:" in out.stdout and "1 characterized" in out.stdout
    assert "input 1 of 1" in out.stderr and "characterizing model" in out.stderr
    assert "input 1 of 1" not in out.stdout  # progress never mixes into the report
    quiet = run_tk(*args, "-q")
    assert quiet.returncode == 0 and "Model hash:" in quiet.stdout
    assert "input 1 of 1" not in quiet.stderr and "characterizing" not in quiet.stderr


def _run_in_pty(args: list[str], timeout: float = 300) -> tuple[int, str]:
    """Run tk with stdout and stderr on a pseudo-terminal; return (exit code, everything it drew)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "turnkey_like", *args], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=terminal, stderr=terminal, env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(terminal)
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], timeout)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(controller, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(controller)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_live_progress_on_a_terminal_and_none_with_quiet(tmp_path):
    first = _write(tmp_path, "first.py", TINY)
    second = _write(tmp_path, "second.py", TINY.replace("(4, 2)", "(8, 2)").replace("(1, 4)", "(1, 8)"))
    args = ["benchmark", str(first), str(second), "--analyze-only", "--hardware", "a100",
            "--cache-dir", str(tmp_path / "c")]
    code, drawn = _run_in_pty(args)
    assert code == 0
    assert "input 2 of 2" in drawn and "\x1b[" in drawn  # a live display drew with cursor control
    assert "2 characterized" in drawn
    code, drawn = _run_in_pty([*args, "-q"])
    assert code == 0
    assert "input 1 of 2" not in drawn and "2 characterized" in drawn


def test_json_carries_schema_version_and_validates(tmp_path):
    script = _write(tmp_path, "tiny.py", TINY)
    target = tmp_path / "run.json"
    out = run_tk("benchmark", str(script), "--analyze-only", "--hardware", "a100", "--cache-dir", str(tmp_path / "c"),
                 "--json", str(target))
    assert out.returncode == 0, out.stderr
    report = decode(target.read_bytes(), RunReport)
    assert report.schema_version == SCHEMA_VERSION and report.tk_version == __version__ and report.exit_code == 0
    [result] = report.results
    [model] = result.models
    char = model.invocations[0].characterization
    assert char.status == Status.SUCCESSFUL and char.result.totals.macs == 4 * 2  # Linear(4, 2) on 1 row
    assert char.run_id and char.result.hardware.name == "a100"


def test_many_input_shapes_print_twenty_then_a_count(tmp_path):
    script = _write(tmp_path, "shapes.py", """
        import torch
        model = torch.nn.Linear(4, 2)
        for rows in range(1, 26):
            model(torch.rand(rows, 4))
        """)
    out = run_tk("benchmark", str(script), "--analyze-only", "--hardware", "a100", "--cache-dir", str(tmp_path / "c"),
                 "-q")
    assert out.returncode == 0, out.stderr
    assert "With input shape 20 " in out.stdout and "With input shape 21 " not in out.stdout
    assert "5 more input shape(s) (see --json" in out.stdout
    assert "25 invocation(s) (25 selected): 25 characterized" in out.stdout


def test_failure_hint_names_the_path_as_given_and_a_command_that_works(tmp_path):
    _write(tmp_path, "plain.py", TINY + "\nraise RuntimeError('broken data')\n")
    _write(tmp_path, "tkml.py", """
        from turnkeyml.parser import parse
        import torch
        batch_size, = parse(["batch_size"])
        model = torch.nn.Linear(4, 2)
        model(torch.rand(batch_size, 4))
        raise RuntimeError('broken data')
        """)
    out = run_tk("benchmark", "plain.py", "tkml.py", "--analyze-only", "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert out.returncode == 1
    plain = next(ln for ln in out.stdout.splitlines() if "hint:" in ln and "plain.py" in ln)
    assert "run `python plain.py`" in plain and str(tmp_path) not in plain
    tkml = next(ln for ln in out.stdout.splitlines() if "hint:" in ln and "tkml.py" in ln)
    assert "python tkml.py" not in tkml  # turnkeyml.parser exists only inside tk
    assert "`tk benchmark tkml.py --analyze-only --traceback`" in tkml
    # ... and that suggested command really shows where it failed
    shown = run_tk("benchmark", "tkml.py", "--analyze-only", "--traceback", "--hardware", "a100",
                   "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert 'tkml.py", line 7' in shown.stdout and "RuntimeError: broken data" in shown.stdout


def _normalised(text: str, cache: Path) -> str:
    """The report with the cache folder (shown absolute, or relative to the repository) as ``<cache>``."""
    text = text.replace(str(cache), "<cache>").replace(os.path.relpath(cache, REPO), "<cache>")
    return re.sub(r"[ \t]+\n", "\n", text)


def test_status_report_golden(tmp_path, golden):
    """The TurnkeyML-style status report of two tutorial scripts, on a datasheet profile (deterministic)."""
    cache = tmp_path / "cache"
    out = run_tk("benchmark", "examples/scripts/hello_world.py", "examples/scripts/max_depth.py", "--max-depth", "1",
                 "--analyze-only", "--hardware", "a100", "--cache-dir", str(cache), "-q",
                 env={"COLUMNS": "160"})
    assert out.returncode == 0, out.stderr
    golden("status_report.txt", _normalised(out.stdout, cache))
    assert (EXAMPLES / "hello_world.py").exists()
