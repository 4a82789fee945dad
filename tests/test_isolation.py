"""Each input in a process of its own (issue 9): a script that exits, crashes, hangs or changes global
state never reaches tk or the next script, and nothing measured is ever lost.

Every test runs the real ``tk`` CLI as a child process (``run_tk``) on scripts written here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import run_tk
from turnkey_like.cache import Cache
from turnkey_like.records import RunReport, Status, decode

GOOD = """
import torch
model = torch.nn.Linear(4, 6)
model(torch.rand(1, 4))
print("good ran")
"""


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def _report(path: Path) -> RunReport:
    return decode(path.read_bytes(), RunReport)


def _by_name(report: RunReport) -> dict:
    return {Path(r.path).name: r for r in report.results}


def test_exit_segfault_and_hang_are_one_line_errors_and_the_good_script_still_runs(tmp_path):
    exits = _write(tmp_path, "exits.py", """
        import os, torch
        model = torch.nn.Linear(4, 2)
        model(torch.rand(1, 4))
        os._exit(0)
        """)
    crashes = _write(tmp_path, "crashes.py", """
        import ctypes, torch
        model = torch.nn.Linear(4, 3)
        model(torch.rand(1, 4))
        ctypes.string_at(0)
        """)
    hangs = _write(tmp_path, "hangs.py", """
        import time, torch
        model = torch.nn.Linear(4, 5)
        model(torch.rand(1, 4))
        time.sleep(600)
        """)
    good = _write(tmp_path, "good.py", GOOD)
    report = tmp_path / "run.json"
    start = time.monotonic()
    out = run_tk("profile", str(exits), str(crashes), str(hangs), str(good), "--timeout", "20", "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report))
    elapsed = time.monotonic() - start
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    # hang guard at about 10x the normal 23 s: hangs.py sleeps 600 s, so tk must have cut it at --timeout 20
    assert "good ran" in out.stdout and elapsed < 240
    errors = [ln for ln in text.splitlines() if ln.strip().startswith("error:")]
    assert len(errors) == 3, errors
    assert any("exits.py" in e and "exited with code 0" in e for e in errors)
    assert any("crashes.py" in e and "SIGSEGV" in e and "line 5" in e for e in errors)
    assert any("hangs.py" in e and "--timeout 20" in e for e in errors)
    results = _by_name(_report(report))
    for name, out_features in (("exits.py", 2), ("crashes.py", 3), ("hangs.py", 5)):
        result = results[name]
        assert result.status == Status.ERROR
        (model,) = result.models  # found before the crash, streamed to tk, still reported
        assert model.params == 4 * out_features + out_features and model.invocations[0].executed == 1
    assert results["good.py"].status == Status.SUCCESSFUL
    (model,) = results["good.py"].models
    assert model.invocations[0].characterization.status == Status.SUCCESSFUL
    assert "ctypes" in (results["crashes.py"].traceback or "")  # the crashing stack, for --traceback


def test_a_hang_in_characterization_is_a_timeout_for_that_invocation_only(tmp_path):
    script = _write(tmp_path, "slow_count.py", """
        import time, torch

        class HangsWhenCountedAgain(torch.nn.Module):
            calls = 0

            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(4, 4)

            def forward(self, x):
                HangsWhenCountedAgain.calls += 1
                if HangsWhenCountedAgain.calls > 1:  # the script's own call is the first
                    time.sleep(600)
                return self.fc(x)

        hangs = HangsWhenCountedAgain()
        hangs(torch.rand(1, 4))
        fine = torch.nn.Linear(4, 7)
        fine(torch.rand(1, 4))
        """)
    report = tmp_path / "run.json"
    start = time.monotonic()
    out = run_tk("benchmark", str(script), "--analyze-only", "--timeout", "15", "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report))
    assert out.returncode == 1, out.stdout + out.stderr
    assert time.monotonic() - start < 200  # hang guard, about 10x the normal 20 s: the 600 s sleep was cut
    (result,) = _report(report).results
    stages = {m.name: m.invocations[0].characterization for m in result.models}
    assert stages["hangs"].status == Status.TIMEOUT and "timed out after 15" in stages["hangs"].error
    assert stages["fine"].status == Status.SUCCESSFUL


LEAKS = """
import os, signal, sys, warnings
import torch

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
torch.set_grad_enabled(False)
sys.stdout = open(os.devnull, "w")
sys.stderr = open(os.devnull, "w")
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.alarm(3)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
warnings.simplefilter("error")
os.environ["TK_LEAK_TEST"] = "leaked"
os.chdir("/")
sys.path.insert(0, "/leaked/path")
sys.argv.append("--leaked")
model = torch.nn.Linear(4, 2)
model(torch.rand(1, 4))
"""

CHECKS = """
import os, signal, sys, warnings
import torch

state = {
    "dtype": str(torch.get_default_dtype()),
    "threads": torch.get_num_threads(),
    "grad": torch.is_grad_enabled(),
    "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
    "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
    "alarm": signal.alarm(0),
    "warnings_error": any(f[0] == "error" for f in warnings.filters),
    "env": os.environ.get("TK_LEAK_TEST"),
    "cwd_root": os.getcwd() == "/",
    "leaked_path": "/leaked/path" in sys.path,
    "argv": sys.argv[1:],
}
print("STATE " + repr(state))
model = torch.nn.Linear(4, 2)
model(torch.rand(1, 4))
"""


def test_no_global_state_leaks_from_one_script_to_the_next(tmp_path):
    leaks = _write(tmp_path, "leaks.py", LEAKS)
    checks = _write(tmp_path, "checks.py", CHECKS)
    cache = str(tmp_path / "cache")
    alone = run_tk("benchmark", str(checks), "--analyze-only", "--hardware", "a100", "--cache-dir", cache)
    after = run_tk("benchmark", str(leaks), str(checks), "--analyze-only", "--hardware", "a100", "--cache-dir", cache)
    assert alone.returncode == 0 and after.returncode == 0, after.stdout + after.stderr

    def state(out):
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("STATE "))
        return line[len("STATE "):]

    assert state(after) == state(alone)
    seen = eval(state(after))  # noqa: S307 - our own script's repr of plain values
    assert seen["dtype"] == "torch.float32" and seen["grad"] and seen["sigint"] and seen["alarm"] == 0
    assert not seen["warnings_error"] and seen["env"] is None and not seen["leaked_path"] and seen["argv"] == []
    # the same invocation hash with and without the leaky script first (its float64 did not leak)
    hashes = [ln.split()[-1] for ln in after.stdout.splitlines() if ln.strip().startswith("Hash:")]
    alone_hashes = [ln.split()[-1] for ln in alone.stdout.splitlines() if ln.strip().startswith("Hash:")]
    assert hashes[-1] == alone_hashes[-1]


def test_child_processes_of_a_script_are_reported(tmp_path):
    script = _write(tmp_path, "pool.py", """
        import multiprocessing
        import torch

        def work(n):
            return n * n

        if __name__ == "__main__":
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                print(sum(pool.map(work, range(4))))
            model = torch.nn.Linear(4, 2)
            model(torch.rand(1, 4))
        """)
    report = tmp_path / "run.json"
    out = run_tk("benchmark", str(script), "--analyze-only", "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report))
    assert out.returncode == 0, out.stdout + out.stderr
    (result,) = _report(report).results
    assert result.child_processes == 2
    assert "started 2 child processes" in out.stdout and "not seen" in out.stdout


def test_a_failed_rerun_keeps_the_earlier_latency(tmp_path):
    """A rerun whose benchmark times out records the timeout, and the earlier success rides along."""
    script = _write(tmp_path, "model.py", """
        import torch
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU())
        model(torch.rand(2, 64))
        """)
    cache = tmp_path / "cache"
    first = run_tk("benchmark", str(script), "--iterations", "5", "--cache-dir", str(cache))
    assert first.returncode == 0, first.stdout + first.stderr
    (name,) = Cache(cache, create=False).builds()
    before = Cache(cache, create=False).load(name).invocation.benchmark
    rerun = run_tk("benchmark", str(script), "--iterations", "100000000", "--rebenchmark", "always",
                   "--timeout", "15", "--cache-dir", str(cache))
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    after = Cache(cache, create=False).load(name).invocation.benchmark
    assert after.status == Status.TIMEOUT and after.run_id != before.run_id
    assert after.kept is not None and after.kept.status == Status.SUCCESSFUL
    assert after.kept.result.latency_ms == before.result.latency_ms and after.kept.run_id == before.run_id
    assert "earlier" in rerun.stdout  # the status line shows the kept latency


def _group_members(pgid: int) -> list[int]:
    import psutil

    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _wait_for(predicate, timeout_s: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _start_tk(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "turnkey_like", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


HANGS = """
import time, torch
model = torch.nn.Linear(4, 5)
model(torch.rand(1, 4))
print("script is running", flush=True)
time.sleep(600)
"""


def _start_hanging_script(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start `tk benchmark hangs.py --analyze-only`; return it once the script is running, with its output so far."""
    hangs = _write(tmp_path, "hangs.py", HANGS)
    proc = _start_tk("benchmark", str(hangs), "--analyze-only", "--hardware", "a100",
                     "--cache-dir", str(tmp_path / "cache"), *extra)
    seen = ""
    while "script is running" not in seen:
        line = proc.stdout.readline()
        assert line, seen
        seen += line
    return proc, seen


def test_ctrl_c_during_discovery_exits_130_writes_json_and_leaves_no_process(tmp_path):
    report = tmp_path / "run.json"
    proc, seen = _start_hanging_script(tmp_path, "--json", str(report))
    script_child = [pid for pid in _group_members(proc.pid) if pid != proc.pid]
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to tk's foreground group
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + rest
    written = _report(report)
    assert written.interrupted and written.results[0].models[0].params == 25
    import psutil

    assert _wait_for(lambda: not any(psutil.pid_exists(pid) for pid in script_child), 30)
    assert _group_members(proc.pid) == []


def test_kill_9_of_tk_during_discovery_takes_the_script_process_with_it(tmp_path):
    import psutil

    proc, _ = _start_hanging_script(tmp_path)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children
    os.kill(proc.pid, signal.SIGKILL)  # tk alone: its children are in a group of their own
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(children, timeout=15)
    for leftover in alive:
        leftover.kill()
    assert alive == [], f"children outlived tk: {[p.pid for p in alive]}"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_is_a_one_line_error_and_leaves_no_partial_file(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        script = _write(tmp_path, "big.py", """
            import torch
            model = torch.nn.Linear(1024, 1024)  # 4 MB of weights: the ONNX file cannot fit in 1 MB
            model(torch.rand(1, 1024))
            """)
        report = tmp_path / "run.json"
        out = run_tk("benchmark", str(script), "--build-only", "--hardware", "a100", "--cache-dir", str(mount),
                     "--json", str(report))
        assert out.returncode == 1, out.stdout + out.stderr
        (result,) = _report(report).results
        build = result.models[0].invocations[0].build
        assert build.status == Status.ERROR and "no space left on device while writing" in build.error
        assert "killed" not in (out.stdout + out.stderr)
        (name,) = Cache(mount, create=False).builds()
        leftovers = [p.name for p in (mount / name).iterdir() if p.suffix in (".onnx", ".data", ".tmp")
                     or ".tmp" in p.name or p.name.endswith(".onnx.data")]
        assert leftovers == []
        stored = Cache(mount, create=False).load(name).invocation.build
        assert stored.status == Status.ERROR
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_json_report_of_crash_names_the_signal(tmp_path):
    crashes = _write(tmp_path, "aborts.py", """
        import os, torch
        model = torch.nn.Linear(4, 3)
        model(torch.rand(1, 4))
        os.abort()
        """)
    report = tmp_path / "run.json"
    out = run_tk("benchmark", str(crashes), "--analyze-only", "--hardware", "a100",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report))
    assert out.returncode == 1
    data = json.loads(report.read_text())
    assert "SIGABRT" in data["results"][0]["error"]


RAISES_EARLY = """
import torch
raise FileNotFoundError("no weights at /nowhere/model.pt")
"""

TERMINATES_ITSELF = """
import os
import signal

import torch


def stop():
    os.kill(os.getpid(), signal.SIGTERM)


stop()
"""


@pytest.mark.parametrize("where", [
    pytest.param([], id="serial"),
    pytest.param(["--workers", "2"], id="workers",
                 marks=pytest.mark.skipif(not __import__("importlib").util.find_spec("distributed"),
                                          reason="Dask's distributed is not installed")),
])
def test_a_failure_before_any_model_shows_its_reason_and_where(tmp_path, where):
    """A script that raises before calling a model, and one that ends by a signal: each prints its
    one-line reason and a hint that fits (no "models ... reported above" when none ran), with
    --traceback where it happened, and --json holds the same, serially and on Dask workers alike."""
    raises = _write(tmp_path, "raises.py", RAISES_EARLY)
    terminates = _write(tmp_path, "terminates.py", TERMINATES_ITSELF)
    report = tmp_path / "run.json"
    out = run_tk("benchmark", str(raises), str(terminates), "--analyze-only", "--hardware", "a100", "--traceback",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report), *where)
    assert out.returncode == 1, out.stderr
    printed = out.stdout + out.stderr
    assert printed.count("no model was called before the failure") == 2
    assert f"error: {raises}: FileNotFoundError (line 3): no weights at /nowhere/model.pt" in out.stdout
    assert f"error: {terminates}: the script: process killed by SIGTERM at line 9" in out.stdout
    assert "reported above" not in printed  # no model ran: no hint says that those which ran are shown
    # --traceback: where it happened (the script's traceback; the stack the signal left)
    assert f'File "{raises}", line 3, in <module>' in out.stdout
    assert f'File "{terminates}", line 9 in stop' in out.stdout
    data = json.loads(report.read_text())
    results = {Path(r["path"]).name: r for r in data["results"]}
    assert results["raises.py"]["error"] == "FileNotFoundError (line 3): no weights at /nowhere/model.pt"
    assert results["terminates.py"]["error"] == "the script: process killed by SIGTERM at line 9"
    assert f'File "{terminates}", line 12 in <module>' in results["terminates.py"]["traceback"]
    assert [e.split(" (hint: ")[0] for e in data["errors"]] == [
        f"{raises}: FileNotFoundError (line 3): no weights at /nowhere/model.pt",
        f"{terminates}: the script: process killed by SIGTERM at line 9"]
