"""How long tk takes to stop on Ctrl-C and SIGTERM, serially and with ``--workers 2``.

Each run starts ``tk benchmark`` on 4 scripts whose characterization sleeps (in a process group of its
own, as a terminal starts a foreground job), waits until the stages are running (one serially, two
with ``--workers 2``, inputs still queued), then sends SIGINT to the whole group (what a terminal's
Ctrl-C does) or SIGTERM to tk alone (``kill PID``), and prints the seconds from the signal to tk's
exit, the exit code, how many tracebacks stderr held and how many models ``--json`` lists.

    python benchmarks/stop_time.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import os, sys, time, torch
calls, marks = 0, sys.argv[1]
class Sleepy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, {width})
    def forward(self, x):
        global calls
        calls += 1
        if calls > 1:  # the characterization stage's child
            open(os.path.join(marks, str(os.getpid())), "w").close()
            time.sleep(120)
        return self.fc(x)
Sleepy()(torch.ones(1, 4))
"""


def one(folder: Path, workers: int | None, signum: int) -> str:
    run = Path(tempfile.mkdtemp(dir=folder))
    marks = run / "marks"
    marks.mkdir()
    scripts = []
    for width in range(2, 6):
        script = run / f"sleepy{width}.py"
        script.write_text(SCRIPT.format(width=width))
        scripts.append(str(script))
    report = run / "run.json"
    command = [sys.executable, "-m", "turnkey_like", "benchmark", *scripts, "--analyze-only", "--script-args",
               str(marks), "--cache-dir", str(run / "cache"), "--json", str(report)]
    command += ["--workers", str(workers)] if workers else []
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    while len(list(marks.iterdir())) < (workers or 1):
        if proc.poll() is not None:
            raise RuntimeError(proc.communicate()[1])
        time.sleep(0.1)
    time.sleep(0.5)
    start = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    _out, err = proc.communicate(timeout=600)
    took = time.monotonic() - start
    models = sum(len(r["models"]) for r in json.loads(report.read_text())["results"]) if report.exists() else None
    return (f"{took:5.1f} s, exit {proc.returncode}, {err.count('Traceback')} traceback(s), "
            f"--json: {'none' if models is None else f'{models} model(s)'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tk_stop_time_"))
    for workers in (None, 2):
        for signum, name in ((signal.SIGINT, "Ctrl-C to the group"), (signal.SIGTERM, "SIGTERM to tk")):
            for _ in range(args.repeats):
                where = f"--workers {workers}" if workers else "serial"
                print(f"{where:12} {name:20} {one(folder, workers, signum)}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
