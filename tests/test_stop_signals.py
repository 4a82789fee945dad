"""Ctrl-C and SIGTERM stop a run at once, serially and on Dask: the running stages are recorded
``interrupted``, every record already in the cache is in ``--json`` and the summary, one line says
so, and tk exits 130 (Ctrl-C) or 143 (SIGTERM). Real ``tk`` processes started as a terminal starts a
foreground job (a process group of their own), real scripts, a real ``LocalCluster``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from stop_time import SCRIPT  # noqa: E402

#: a generous hang guard (the stop itself takes about 1 s, serially and with --workers 2)
STOP_GUARD_S = 60

#: a script whose model's second call (the characterization stage's, in its own fork) sleeps after
#: leaving a mark, so that a stage is running when the signal comes: the one benchmarks/stop_time.py times
STAGE_SLEEPS = SCRIPT


def _marks(folder: Path, wanted: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < wanted:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{wanted} stage(s) never started"
        time.sleep(0.2)


@pytest.mark.parametrize("workers", [None, 2], ids=["serial", "workers2"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_the_run_at_once_and_keeps_every_record(tmp_path, workers, signum):
    if workers:
        pytest.importorskip("distributed")
    marks = tmp_path / "marks"
    marks.mkdir()
    scripts = []
    for width in range(2, 6):
        script = tmp_path / f"sleepy{width}.py"
        script.write_text(STAGE_SLEEPS.format(width=width))
        scripts.append(str(script))
    cache, report = tmp_path / "cache", tmp_path / "run.json"
    command = [sys.executable, "-m", "turnkey_like", "benchmark", *scripts, "--analyze-only", "--script-args",
               str(marks), "--cache-dir", str(cache), "--json", str(report)]
    if workers:
        command += ["--workers", str(workers)]
    # a process group of its own, as a terminal runs a foreground job: Ctrl-C goes to the whole group
    proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _marks(marks, workers or 1, proc)
        below = psutil.Process(proc.pid).children(recursive=True)
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        else:
            os.kill(proc.pid, signal.SIGTERM)  # what `kill PID`, a job scheduler or `timeout` does
        stdout, stderr = proc.communicate(timeout=STOP_GUARD_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == (130 if signum == signal.SIGINT else 143), stderr
    assert "Traceback" not in stderr, stderr  # no worker or child reports the signal itself
    stopped = [line for line in stderr.splitlines() if "results measured so far are kept" in line]
    assert len(stopped) == 1, stderr
    assert stopped[0].startswith("interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)")
    reason = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "interrupted (SIGTERM)"

    data = json.loads(report.read_text())
    assert data["interrupted"] is True and data["exit_code"] == proc.returncode
    running = [r for r in data["results"] if r["models"]]
    assert len(running) == (workers or 1) and len(data["results"]) <= len(scripts)
    records = {p.parent.name: json.loads(p.read_text()) for p in cache.glob("*/record.json")}
    assert len(records) == len(running)  # every input that reached a stage is in --json, as in the cache
    for result in running:
        (model,) = result["models"]
        (inv,) = model["invocations"]
        assert inv["characterization"]["status"] == "interrupted"
        assert inv["characterization"]["error"] == reason
        cached = records[inv["build_name"]]["invocation"]["characterization"]
        assert (cached["status"], cached["error"]) == ("interrupted", reason)
    summary = stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{len(data['results'])} input(s), {len(running)} model(s)"), summary
    time.sleep(1)
    left = [p for p in below if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"left running: {left}"  # the children, the workers and their scripts are gone
