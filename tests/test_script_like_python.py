"""A script runs under tk as under ``python``: its ``atexit`` handlers run, closing its stdout or stderr
does not break tk's work, and (the one deliberate difference) the processes it leaves running are
ended when it ends. Real ``tk`` processes on real scripts."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import psutil

from tests.conftest import run_tk

LINEAR = "import torch\ntorch.nn.Linear(4, 2)(torch.ones(1, 4))\n"


def _stages(report: Path) -> list[dict]:
    data = json.loads(report.read_text())
    return [inv for result in data["results"] for model in result["models"] for inv in model["invocations"]]


def test_atexit_handlers_run_in_the_scripts_child_with_its_argv(tmp_path):
    mark = tmp_path / "mark.txt"
    script = tmp_path / "with_atexit.py"
    script.write_text(textwrap.dedent("""
        import atexit, os, sys, torch
        def first():
            print("first handler", flush=True)
        def second():
            with open(sys.argv[1], "w") as f:
                f.write(f"{os.getpid()} {sys.argv[1:]}")
            raise ValueError("a failing handler does not stop the others")
        atexit.register(first)
        atexit.register(second)
        torch.nn.Linear(4, 2)(torch.ones(1, 4))
        print("script pid", os.getpid(), flush=True)
    """))
    out = run_tk("benchmark", str(script), "--analyze-only", "--script-args", str(mark),
                 "--cache-dir", str(tmp_path / "cache"), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    pid, argv = mark.read_text().split(" ", 1)
    assert argv == repr([str(mark)])  # the script's sys.argv, as under python
    assert f"script pid {pid}" in out.stdout  # the handler ran in the process that ran the script
    assert "first handler" in out.stdout  # ... after the one registered later, as Python orders them
    assert "Exception ignored in atexit callback" in out.stderr and "ValueError" in out.stderr
    assert out.stdout.index("first handler") < out.stdout.index("with_atexit.py:")  # before the report


def test_a_script_that_closes_its_stdout_and_stderr_is_characterized(tmp_path):
    script = tmp_path / "closes_fds.py"
    script.write_text(LINEAR + "import os\nprint('closing', flush=True)\nos.close(1)\nos.close(2)\n")
    report = tmp_path / "run.json"
    out = run_tk("benchmark", str(script), "--analyze-only", "--cache-dir", str(tmp_path / "cache"),
                 "--json", str(report), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (inv,) = _stages(report)
    assert inv["characterization"]["status"] == "successful", inv["characterization"]["error"]
    assert inv["characterization"]["result"]["totals"]["macs"] == 8


def test_processes_a_script_leaves_running_are_ended_when_it_ends(tmp_path):
    """A raw fork, a never-joined ``multiprocessing`` child and a ``subprocess`` in a new session
    (which leaves tk's process group) made by the script, and a fork made by the model's forward in
    the characterization stage: every one is gone when tk returns, long before their 300 s sleep."""
    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "leaves_children.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing, os, subprocess, sys, time, torch
        folder = {str(pids)!r}

        def note(name, pid):
            with open(os.path.join(folder, name), "w") as f:
                f.write(str(pid))

        def sleeper():
            time.sleep(300)

        class Forks(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(4, 2)

            def forward(self, x):
                pid = os.fork()
                if pid == 0:
                    time.sleep(300)
                    os._exit(0)
                note(f"forward-{{os.getpid()}}", pid)
                return self.fc(x)

        if __name__ == "__main__":
            pid = os.fork()
            if pid == 0:
                time.sleep(300)
                os._exit(0)
            note("fork", pid)
            process = multiprocessing.Process(target=sleeper)
            process.start()
            note("multiprocessing", process.pid)
            note("setsid", subprocess.Popen(["sleep", "300"], start_new_session=True).pid)
            Forks()(torch.ones(1, 4))
    """))
    started = time.monotonic()
    out = run_tk("benchmark", str(script), "--analyze-only", "--cache-dir", str(tmp_path / "cache"), timeout=120)
    took = time.monotonic() - started
    assert out.returncode == 0, out.stdout + out.stderr
    names = sorted(p.name.split("-")[0] for p in pids.iterdir())
    assert names == ["fork", "forward", "forward", "multiprocessing", "setsid"], names  # discovery + stage
    alive = []
    for path in pids.iterdir():
        pid = int(path.read_text())
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(path.name)
        except psutil.NoSuchProcess:
            pass
        if path.name in alive:
            os.kill(pid, 9)  # never leave one behind, even when the test fails
    assert alive == [], f"left running after tk returned ({took:.1f} s): {alive}"
