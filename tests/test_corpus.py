"""Corpus runs on Dask (``--workers``, ``--scheduler``) and ``--resume``: real ``tk`` processes, a real
``LocalCluster`` of 2 workers (or a scheduler and 2 workers started here), real scripts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO, run_tk

pytest.importorskip("distributed")

EXAMPLE_SCRIPTS = [str(EXAMPLES / name) for name in ("hello_world.py", "two_models.py", "multiple_invocations.py")]


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def _invocations(report: dict) -> dict[tuple, tuple]:
    """(script name, invocation hash) -> (model hash, MACs, FLOPs, status of characterization)."""
    out = {}
    for result in report["results"]:
        stack = list(result["models"])
        while stack:
            model = stack.pop()
            stack.extend(model.get("children", []))
            for inv in model["invocations"]:
                char = inv["characterization"]
                totals = (char.get("result") or {}).get("totals") or {}
                out[Path(result["path"]).name, inv["hash"]] = (model["model_hash"], totals.get("macs"),
                                                               totals.get("flops"), char["status"])
    return out


def _records(cache: Path) -> dict[str, dict]:
    """build name -> the record the client wrote (``record.json`` of each build folder)."""
    out = {}
    for folder in cache.iterdir():
        record = folder / "record.json"
        if record.is_file():
            out[folder.name] = json.loads(record.read_text())
    return out


@pytest.fixture(scope="module")
def serial_and_dask(tmp_path_factory):
    """The three bundled examples through ``--analyze-only``: once serially, once on 2 Dask workers."""
    root = tmp_path_factory.mktemp("corpus")
    runs = {}
    for name, extra in (("serial", []), ("dask", ["--workers", "2"])):
        cache, report = root / f"cache_{name}", root / f"{name}.json"
        out = run_tk("benchmark", *EXAMPLE_SCRIPTS, "--analyze-only", "--cache-dir", str(cache),
                     "--json", str(report), *extra, timeout=600)
        assert out.returncode == 0, f"{name} run failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        runs[name] = (cache, _report(report), out)
    return runs


def test_dask_run_gives_the_serial_hashes_and_macs(serial_and_dask):
    serial = _invocations(serial_and_dask["serial"][1])
    dask = _invocations(serial_and_dask["dask"][1])
    assert len(serial) == 5  # hello_world 1, two_models 2, multiple_invocations 2
    assert dask == serial
    assert all(status == "successful" for *_rest, status in dask.values())


def test_dask_run_records_are_written_by_the_client_and_name_the_worker(serial_and_dask):
    cache, report, out = serial_and_dask["dask"]
    records = _records(cache)
    assert sorted(records) == sorted(_records(serial_and_dask["serial"][0]))
    for record in records.values():
        assert record["invocation"]["characterization"]["status"] == "successful"
        assert record["system"]["dask_worker"].startswith("tcp://")  # stamped on the worker
        assert record["system"]["host"]
    # one progress line per input names the worker it ran on; the script's own prints come through
    assert out.stderr.count("── input ") == 3
    assert "Output: tensor(" in out.stdout


def test_resume_does_no_work_on_a_finished_corpus(serial_and_dask, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(serial_and_dask["dask"][0], cache)
    before = _records(cache)
    for extra in ([], ["--workers", "2"]):
        out = run_tk("benchmark", *EXAMPLE_SCRIPTS, "--analyze-only", "--cache-dir", str(cache), "--resume",
                     "--json", str(tmp_path / "resumed.json"), *extra, timeout=300)
        assert out.returncode == 0, out.stderr
        assert "3 of 3 input(s) unchanged and complete in the cache, not run again" in out.stderr
        assert "Output: tensor(" not in out.stdout  # no script ran
        assert _records(cache) == before  # nothing rewritten: same run ids, same times
        report = _report(tmp_path / "resumed.json")
        assert _invocations(report) == _invocations(serial_and_dask["dask"][1])


def test_resume_reruns_a_changed_script_and_retry_failed_a_failed_one(tmp_path):
    cache = tmp_path / "cache"
    good = tmp_path / "good.py"
    good.write_text((EXAMPLES / "hello_world.py").read_text())
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\ntorch.nn.Linear(2, 2)(torch.ones(1, 2))\nraise ValueError('broken')\n")
    args = ["benchmark", str(good), str(bad), "--analyze-only", "--cache-dir", str(cache)]
    first = run_tk(*args)
    assert first.returncode == 1 and "broken" in first.stdout + first.stderr
    resumed = run_tk(*args, "--resume")
    assert "2 of 2 input(s) unchanged" in resumed.stderr  # a failure is a final outcome
    assert resumed.returncode == 1  # ... and still a failure of the corpus
    retried = run_tk(*args, "--retry-failed")
    assert "1 of 2 input(s) unchanged" in retried.stderr  # only bad.py ran again
    assert retried.stdout.count("broken") >= 1 and "Output: tensor(" not in retried.stdout
    good.write_text(good.read_text() + "\nprint('changed')\n")
    changed = run_tk(*args, "--resume")
    assert "1 of 2 input(s) unchanged" in changed.stderr and "changed" in changed.stdout


def test_a_segfaulting_script_takes_down_only_its_own_task(tmp_path):
    crash = tmp_path / "crash.py"
    crash.write_text("import ctypes, torch\ntorch.nn.Linear(3, 2)(torch.ones(1, 3))\nctypes.string_at(0)\n")
    report = tmp_path / "run.json"
    out = run_tk("benchmark", str(crash), str(EXAMPLES / "hello_world.py"), "--analyze-only", "--workers", "2",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report), timeout=300)
    assert out.returncode == 1, out.stderr
    results = {Path(r["path"]).name: r for r in _report(report)["results"]}
    assert results["crash.py"]["status"] == "error"
    assert "SIGSEGV" in results["crash.py"]["error"] and "line 3" in results["crash.py"]["error"]
    assert results["hello_world.py"]["status"] == "successful"
    assert _invocations(_report(report))  # hello_world's invocation was characterized
    assert "Traceback" not in out.stderr  # no worker or client crash


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        assert proc.poll() is None, f"tk ended early:\n{proc.communicate()[1]}"
        time.sleep(0.2)
    raise AssertionError(f"{path} never appeared")


def test_a_worker_killed_mid_run_is_retried_once_then_recorded_killed(tmp_path):
    """kill -9 the worker running a slow script: Dask retries the input on another worker; kill that one
    too: the input is recorded killed, and the rest of the corpus completes."""
    import psutil

    marks = tmp_path / "marks"
    marks.mkdir()
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import os, sys, time, torch\n"
        "torch.nn.Linear(4, 2)(torch.ones(1, 4))\n"
        "folder = sys.argv[1]\n"
        "attempt = len([name for name in os.listdir(folder) if name.startswith('pid')])\n"
        "with open(os.path.join(folder, f'{attempt}.tmp'), 'w') as f:\n"
        "    f.write(str(os.getpid()))\n"
        "os.replace(os.path.join(folder, f'{attempt}.tmp'), os.path.join(folder, f'pid{attempt}'))\n"
        "time.sleep(120)\n")
    report = tmp_path / "run.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnkey_like", "benchmark", str(slow), str(EXAMPLES / "hello_world.py"),
         "--analyze-only", "--workers", "2", "--script-args", str(marks), "--cache-dir", str(tmp_path / "cache"),
         "--json", str(report)],
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        tk = psutil.Process(proc.pid)
        workers = []
        for attempt in range(2):
            child = psutil.Process(_wait_for(marks / f"pid{attempt}", proc))
            worker = child.parent()
            assert worker.pid != proc.pid and worker in tk.children(recursive=True)
            workers.append(worker.pid)
            os.kill(worker.pid, signal.SIGKILL)
        assert workers[0] != workers[1]  # the retry ran in another worker process
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr
    results = {Path(r["path"]).name: r for r in _report(report)["results"]}
    assert results["hello_world.py"]["status"] == "successful"
    assert results["slow.py"]["status"] == "error"
    assert "died 2 times" in results["slow.py"]["error"], results["slow.py"]["error"]
    assert not (marks / "pid2").exists()  # retried once, not more
    assert "retried alone on another worker" in stderr


def test_a_script_that_kills_its_worker_is_retried_alone_and_charges_no_queued_input(tmp_path):
    """A script that SIGKILLs the worker running it (what an out-of-memory kill of the worker does),
    ahead of six quick scripts queued on 2 workers: it is retried once, alone, then recorded
    killed; every other script runs once and succeeds (none is charged with the deaths, none is run
    twice because a finished task's worker died)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    killer = tmp_path / "killer.py"
    killer.write_text("import os, signal, sys, torch\n"
                      "torch.nn.Linear(4, 2)(torch.ones(1, 4))\n"
                      "open(os.path.join(sys.argv[1], f'killer-{os.getpid()}'), 'w').close()\n"
                      "os.kill(os.getppid(), signal.SIGKILL)  # the worker: this script's process is its child\n")
    quick = []
    for width in range(2, 8):
        script = tmp_path / f"quick{width}.py"
        script.write_text("import os, sys, time, torch\n"
                          f"torch.nn.Linear(3, {width})(torch.ones(1, 3))\n"
                          f"open(os.path.join(sys.argv[1], f'quick{width}-{{os.getpid()}}'), 'w').close()\n"
                          "time.sleep(1)\n")
        quick.append(str(script))
    report = tmp_path / "run.json"
    out = run_tk("benchmark", str(killer), *quick, "--analyze-only", "--workers", "2", "--script-args", str(marks),
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report), timeout=600)
    assert out.returncode == 1, out.stderr
    results = {Path(r["path"]).name: r for r in _report(report)["results"]}
    assert results["killer.py"]["status"] == "error"
    assert "died 2 times" in results["killer.py"]["error"], results["killer.py"]["error"]
    for name in (Path(q).name for q in quick):
        assert results[name]["status"] == "successful", (name, results[name].get("error"))
        (model,) = results[name]["models"]
        assert model["invocations"][0]["characterization"]["status"] == "successful"
    ran = sorted(path.name.split("-")[0] for path in marks.iterdir())
    assert ran == sorted(["killer"] * 2 + [Path(q).stem for q in quick]), ran  # killer twice, the rest once
    assert out.stderr.count("is retried alone on another worker") == 1


@contextlib.contextmanager
def dask_cluster(folder: Path, workers: int = 2, worker_args: tuple[str, ...] = (), worker_env=None):
    """A real Dask cluster on this machine, started as a user starts one: ``dask scheduler`` (free
    ports) and ``workers`` processes of ``dask worker ADDRESS`` plus ``worker_args`` (none: Dask's
    defaults, i.e. daemonic worker processes under a nanny, a thread per core, no preload). No
    ``DASK_*`` variable reaches them; tk is importable from this checkout. Yields the scheduler's
    address once every worker has joined; every process started (with its whole process group) is
    stopped at the end, whatever happened.

    Args:
        worker_env: ``worker_env(i)`` gives extra environment variables of worker ``i``.
    """
    dask = Path(sys.executable).parent / "dask"
    if not dask.exists():
        pytest.skip("the dask command is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    scheduler_file = folder / "scheduler.json"
    procs: list[subprocess.Popen] = []

    def start(name: str, args: list[str], extra: dict | None = None) -> None:
        with open(folder / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen([str(dask), *args], env={**env, **(extra or {})}, cwd=folder,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
                            "--scheduler-file", str(scheduler_file)])
        deadline = time.monotonic() + 120
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            assert procs[0].poll() is None, (folder / "scheduler.log").read_text()
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(workers):
            start(f"worker{i}", ["worker", address, *worker_args], worker_env(i) if worker_env else None)
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=300)
        yield address
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # what a worker started and left, if anything
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def stock_cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker ADDRESS`` with no options; checked to be stock."""
    folder = tmp_path_factory.mktemp("stock_cluster")
    with dask_cluster(folder) as address:
        from distributed import Client

        with Client(address, timeout=60) as client:
            facts = client.run(lambda: (__import__("multiprocessing").current_process().daemon,
                                        "torch" in __import__("sys").modules))
        assert list(facts.values()) == [(True, False)] * 2  # daemonic, and nothing preloaded torch
        yield address


def test_stock_dask_workers_give_the_serial_hashes(serial_and_dask, stock_cluster, tmp_path):
    """Workers started with no options (daemonic, no preload, a thread per core) run every input as
    a serial run does: the same invocations, hashes and MACs; the scripts' prints come through."""
    scripts = [str(EXAMPLES / name) for name in ("hello_world.py", "two_models.py")]
    report = tmp_path / "run.json"
    out = run_tk("benchmark", *scripts, "--analyze-only", "--scheduler", stock_cluster,
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report), timeout=600)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    serial = {key: value for key, value in _invocations(serial_and_dask["serial"][1]).items()
              if key[0] in ("hello_world.py", "two_models.py")}
    assert len(serial) == 3  # hello_world 1, two_models 2
    assert _invocations(_report(report)) == serial
    assert "Output: tensor(" in out.stdout and "no model was called" not in out.stdout


def test_stock_dask_workers_show_each_failure_with_its_reason(stock_cluster, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nraise KeyError('missing_config')\n")
    report = tmp_path / "run.json"
    out = run_tk("benchmark", str(bad), "--analyze-only", "--scheduler", stock_cluster, "--traceback",
                 "--cache-dir", str(tmp_path / "cache"), "--json", str(report), timeout=600)
    assert out.returncode == 1, out.stderr
    assert "no model was called before the failure" in out.stdout
    assert f"error: {bad}: KeyError (line 2): 'missing_config'" in out.stdout
    assert f'File "{bad}", line 2, in <module>' in out.stdout  # --traceback: where
    (result,) = _report(report)["results"]
    assert result["error"] == "KeyError (line 2): 'missing_config'"


def test_a_worker_without_this_tk_fails_each_input_with_the_reason_and_the_fix(tmp_path):
    """A worker whose ``turnkey_like`` is another package (here one without ``turnkey_like.corpus``)
    cannot run tk's task: each input fails with the import error and the fix, and the worker stays up
    (Dask closes a worker that cannot deserialize what it is sent)."""
    other = tmp_path / "other_tk" / "turnkey_like"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    scripts = [str(EXAMPLES / "hello_world.py"), str(EXAMPLES / "two_models.py")]
    report = tmp_path / "run.json"
    with dask_cluster(tmp_path, workers=1, worker_env=lambda i: {"PYTHONPATH": str(other.parent)}) as address:
        out = run_tk("benchmark", *scripts, "--analyze-only", "--scheduler", address,
                     "--cache-dir", str(tmp_path / "cache"), "--json", str(report), timeout=600)
        from distributed import Client

        with Client(address, timeout=60) as client:
            assert len(client.scheduler_info()["workers"]) == 1  # the worker is still there
    assert out.returncode == 1, out.stderr
    errors = [line for line in out.stdout.splitlines() if "error:" in line]
    assert len(errors) == 2, out.stdout
    for line in errors:  # which import fails depends on how tk is installed beside the other package
        assert "the Dask task failed on" in line and re.search(r"(ModuleNotFound|Import)Error: .*turnkey_like", line)
    assert out.stdout.count("hint: install turnkey_like") == 2
    data = _report(report)
    assert all("ImportError" in r["error"] or "ModuleNotFoundError" in r["error"] for r in data["results"])
    assert all("install turnkey_like" in e for e in data["errors"]) and len(data["errors"]) == 2


def test_scheduler_with_two_separate_workers_and_their_own_caches(tmp_path):
    """``--scheduler`` against ``dask scheduler`` + 2 ``dask worker`` processes started here, each worker
    with a cache of its own (no shared folder): ``--upload`` ships the script, records come back to the
    client's cache, ``--collect`` brings the ONNX file."""
    script = tmp_path / "scripts" / "hello_world.py"
    script.parent.mkdir()
    script.write_text((EXAMPLES / "hello_world.py").read_text())
    cache = tmp_path / "client_cache"
    report = tmp_path / "run.json"
    with dask_cluster(tmp_path, worker_args=("--nthreads", "1", "--nworkers", "1"),
                      worker_env=lambda i: {"TK_CACHE_DIR": str(tmp_path / f"worker{i}_cache")}) as address:
        out = run_tk("benchmark", str(script), "--scheduler", address, "--upload", "--collect",
                     "--iterations", "5", "--cache-dir", str(cache), "--json", str(report), timeout=600)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    (record,) = _records(cache).values()
    assert record["script"] == str(script)  # the client's path, not the worker's uploaded copy
    inv = record["invocation"]
    assert [inv[s]["status"] for s in ("characterization", "build", "benchmark")] == ["successful"] * 3
    onnx = Path(inv["build"]["result"]["onnx_path"])
    assert onnx.parent == cache / record["build_name"] and onnx.is_file()  # collected into the client's cache
    assert any((tmp_path / f"worker{i}_cache" / record["build_name"]).is_dir() for i in range(2))
    assert _invocations(_report(report))


def test_host_lock_benchmark_excludes_everything_and_waiting_writer_goes_first(tmp_path, monkeypatch):
    """Readers share; a writer waits for them; a reader arriving while the writer waits goes after it."""
    import threading

    from turnkey_like import hostlock

    monkeypatch.setenv(hostlock.ENV_VAR, str(tmp_path))
    events: list[str] = []

    def hold(name, guard, seconds, started=None):
        with guard:
            events.append(f"{name} in")
            if started is not None:
                started.set()
            time.sleep(seconds)
            events.append(f"{name} out")

    first_in = threading.Event()
    reader1 = threading.Thread(target=hold, args=("reader1", hostlock.stage_guard("characterization"), 0.6, first_in))
    reader1.start()
    first_in.wait(5)
    reader2 = threading.Thread(target=hold, args=("reader2", hostlock.stage_guard("build"), 0.1))
    reader2.start()  # a second reader shares the host with the first
    time.sleep(0.1)
    writer = threading.Thread(target=hold, args=("writer", hostlock.stage_guard("benchmark"), 0.3))
    writer.start()
    time.sleep(0.1)  # the writer now waits for reader1
    reader3 = threading.Thread(target=hold, args=("reader3", hostlock.stage_guard("characterization"), 0.1))
    reader3.start()
    for thread in (reader1, reader2, writer, reader3):
        thread.join(10)
    assert events.index("reader2 in") < events.index("reader1 out")  # shared
    assert events.index("writer in") > events.index("reader1 out")  # exclusive: waited for the readers
    assert events.index("reader3 in") > events.index("writer out")  # no reader overtook the waiting writer
    assert events[events.index("writer in") + 1] == "writer out"  # nothing ran during the benchmark
