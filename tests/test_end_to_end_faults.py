"""Real `tk` processes against one cache: concurrency, kill -9, corruption, read-only (issue 5 item 5).

Each test ends by checking that every completed result is still readable.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from turnkey_like.cache import Cache

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "scripts"


def _tk(*args, cache, wait=True, timeout=600):
    cmd = [sys.executable, "-m", "turnkey_like", *args, "--cache-dir", str(cache)]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _statuses(cache_dir):
    records, problems = Cache(cache_dir, create=False).records()
    return {r.build_name: {k: v.status.value for k, v in r.invocation.stages().items()} for r in records}, problems


def test_two_concurrent_tk_processes_lose_nothing(tmp_path):
    cache = tmp_path / "cache"
    scripts = [str(EXAMPLES / n) for n in ("hello_world.py", "two_models.py", "multiple_invocations.py")]
    first = _tk("benchmark", *scripts, "--analyze-only", cache=cache, wait=False)
    second = _tk("benchmark", *reversed(scripts), "--analyze-only", cache=cache, wait=False)
    out1, _ = first.communicate(timeout=600)
    out2, _ = second.communicate(timeout=600)
    assert first.returncode == 0, out1
    assert second.returncode == 0, out2
    statuses, problems = _statuses(cache)
    assert problems == []
    # hello_world 1 + two_models 2 + multiple_invocations 2 invocations
    assert len(statuses) == 5
    assert all(s["characterization"] == "successful" for s in statuses.values())


SLOW_BUILD = """
import os
import time

import torch


class Slow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x):
        # Hang only while tk's build exports it (torch.export runs forward in the build child).
        if os.environ.get("TK_TEST_SLOW") and torch.compiler.is_exporting():
            time.sleep(120)
        return self.fc(x)


quick = torch.nn.Linear(4, 4)
quick(torch.rand(2, 4))
slow = Slow()
slow(torch.rand(1, 8))
"""


def _classes(cache_dir):
    records, _ = Cache(cache_dir, create=False).records()
    return {r.build_name: r.model.class_name for r in records}


def _start_slow_build(tmp_path, output=subprocess.PIPE):
    """Start ``tk benchmark`` on :data:`SLOW_BUILD` in its own session; return (process, cache, script)."""
    cache = tmp_path / "cache"
    script = tmp_path / "slow_build.py"
    script.write_text(textwrap.dedent(SLOW_BUILD))
    env = dict(os.environ, TK_TEST_SLOW="1")
    cmd = [sys.executable, "-m", "turnkey_like", "benchmark", str(script), "--iterations", "5",
           "--cache-dir", str(cache)]
    stderr = subprocess.STDOUT if output == subprocess.PIPE else output
    proc = subprocess.Popen(cmd, stdout=output, stderr=stderr, text=True, env=env, start_new_session=True)
    return proc, cache, script


def test_kill_9_mid_build_then_rerun(tmp_path):
    pytest.importorskip("onnxruntime")
    proc, cache, script = _start_slow_build(tmp_path)
    deadline = time.time() + 300
    slow_build = None
    while time.time() < deadline:
        statuses, _ = _statuses(cache) if (cache / ".tk-cache").exists() else ({}, [])
        classes = _classes(cache) if statuses else {}
        slow_build = next((n for n, s in statuses.items() if s["build"] == "running" and classes.get(n) == "Slow"),
                          None)
        if slow_build:
            break
        time.sleep(0.5)
    assert slow_build, proc.stdout.read() if proc.poll() is not None else "build never started"
    import psutil

    children = psutil.Process(proc.pid).children(recursive=True)  # the input's child and its build child
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    _, alive = psutil.wait_procs(children, timeout=30)  # they die with tk (PR_SET_PDEATHSIG)
    assert alive == []
    statuses, problems = _statuses(cache)
    assert problems == []
    assert statuses[slow_build]["build"] == "killed"
    # the quick model finished before the kill: its results are intact
    done = [s for n, s in statuses.items() if n != slow_build]
    assert done and done[0]["benchmark"] == "successful"
    # rerun without the hang: everything completes, the killed record is replaced
    rerun = _tk("benchmark", str(script), "--iterations", "5", cache=cache)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    statuses, _ = _statuses(cache)
    assert all(s["benchmark"] == "successful" for s in statuses.values())


def test_truncated_record_is_named_and_the_rest_still_works(tmp_path):
    cache = tmp_path / "cache"
    result = _tk("benchmark", str(EXAMPLES / "two_models.py"), "--analyze-only", cache=cache)
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(Cache(cache, create=False).builds())
    broken = cache / names[0] / "record.json"
    broken.write_text(broken.read_text()[:40])
    (cache / names[0] / ".summary.json").unlink(missing_ok=True)
    listing = _tk("cache", "list", cache=cache)
    assert names[1] in listing.stdout
    assert names[0] in listing.stdout + listing.stderr  # reported by name
    statuses, problems = _statuses(cache)
    assert list(statuses) == [names[1]] and [p.build_name for p in problems] == [names[0]]
    # a rerun rewrites the broken record
    assert _tk("benchmark", str(EXAMPLES / "two_models.py"), "--analyze-only", cache=cache).returncode == 0
    statuses, problems = _statuses(cache)
    assert problems == [] and len(statuses) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders; covered in test_cache_faults")
def test_read_only_cache_is_a_clear_error(tmp_path):
    cache = tmp_path / "cache"
    assert _tk("benchmark", str(EXAMPLES / "hello_world.py"), "--analyze-only", cache=cache).returncode == 0
    cache.chmod(0o555)
    try:
        result = _tk("benchmark", str(EXAMPLES / "hello_world.py"), "--analyze-only", cache=cache)
        assert result.returncode == 1
        assert "error:" in result.stderr and "writ" in result.stderr
        listing = _tk("cache", "list", cache=cache)
        assert listing.returncode == 0 and "hello_world" in listing.stdout
    finally:
        cache.chmod(0o755)


def test_read_only_cache_as_unprivileged_user():
    """Root ignores permissions: fork, drop to `nobody` in the child, and run tk's main() there."""
    if os.geteuid() != 0:
        pytest.skip("covered by test_read_only_cache_is_a_clear_error")
    import pwd
    import shutil
    import tempfile

    from turnkey_like.cli import main

    nobody = pwd.getpwnam("nobody")
    root = Path(tempfile.mkdtemp(prefix="tk-readonly-"))
    try:
        root.chmod(0o755)
        cache = root / "cache"
        assert _tk("benchmark", str(EXAMPLES / "hello_world.py"), "--analyze-only", cache=cache).returncode == 0
        # `nobody` cannot read this Python's stdlib under /root: import everything the run needs first,
        # by running the same command here against a writable cache.
        import traceback  # noqa: F401

        assert main(["benchmark", str(EXAMPLES / "hello_world.py"), "--analyze-only",
                     "--cache-dir", str(root / "warm")]) == 0
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: become nobody, then run tk in-process (no exec needed)
            try:
                os.close(read_fd)
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                sys.stdout = sys.stderr = open(write_fd, "w", buffering=1)  # pytest replaced both
                code = main(["benchmark", str(EXAMPLES / "hello_world.py"), "--analyze-only",
                             "--cache-dir", str(cache)])
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
                code = 99
            sys.stderr.flush()
            os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            output = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 1, output
        error_line = next(ln for ln in output.splitlines() if ln.startswith("error:"))
        assert str(cache) in error_line and "hint:" in output
        # what the first run measured is intact
        statuses, problems = _statuses(cache)
        assert problems == [] and [s["characterization"] for s in statuses.values()] == ["successful"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_ctrl_c_during_a_rerun_keeps_the_earlier_latency_writes_json_and_exits_130(tmp_path):
    """SIGINT to the whole process group (what a terminal's Ctrl-C sends) mid-benchmark of a rerun."""
    from turnkey_like.records import RunReport, decode

    cache = tmp_path / "cache"
    script = tmp_path / "model.py"
    script.write_text(textwrap.dedent("""
        import torch
        model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
        model(torch.rand(4, 256))
        """))
    first = _tk("benchmark", str(script), "--iterations", "5", cache=cache)
    assert first.returncode == 0, first.stdout + first.stderr
    (name,) = Cache(cache, create=False).builds()
    before = Cache(cache, create=False).load(name).invocation.benchmark
    assert before.status.value == "successful"
    report = tmp_path / "run.json"
    proc = _tk("benchmark", str(script), "--iterations", "100000000", "--json", str(report), cache=cache, wait=False)
    seen = ""
    deadline = time.time() + 300
    while "benchmarking" not in seen and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    assert "benchmarking" in seen, seen
    time.sleep(2)  # inside the timed loop of the benchmark child
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + rest
    assert "interrupted" in rest
    after = Cache(cache, create=False).load(name).invocation.benchmark
    assert after.status.value == "successful"
    assert after.result.latency_ms == before.result.latency_ms and after.run_id == before.run_id
    assert "this run was interrupted" in (after.reason or "")
    written = decode(report.read_bytes(), RunReport)
    assert written.interrupted is True and written.exit_code == 130 and written.results
    import psutil

    def in_group(p):
        try:
            return os.getpgid(p.pid) == proc.pid
        except (ProcessLookupError, psutil.Error):
            return False

    assert [p.pid for p in psutil.process_iter() if in_group(p)] == []  # no child outlived tk


def test_kill_9_of_tk_alone_takes_its_build_child_with_it(tmp_path):
    """``kill -9`` of the tk process only (not its group): the hanging build child must not outlive it."""
    import psutil

    proc, cache, script = _start_slow_build(tmp_path, subprocess.DEVNULL)
    deadline = time.time() + 300
    children = []
    while time.time() < deadline and not children:
        statuses, _ = _statuses(cache) if (cache / ".tk-cache").exists() else ({}, [])
        classes = _classes(cache) if statuses else {}
        if any(s["build"] == "running" and classes.get(n) == "Slow" for n, s in statuses.items()):
            children = psutil.Process(proc.pid).children(recursive=True)
        time.sleep(0.5)
    assert children, "the slow build never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    gone, alive = psutil.wait_procs(children, timeout=15)
    for leftover in alive:  # do not leave a hanging child behind when the test fails
        leftover.kill()
    assert alive == [], f"children outlived tk: {[p.pid for p in alive]}"
