"""run_isolated with real child processes: success, exceptions, timeouts, signals, fork-safety."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from turnkey_like.launcher import choose_start_method, default_start_method, run_isolated
from turnkey_like.records import LatencyStats, StageResult, Status


def _returns(x):
    print("hello from the child")
    return {"x": x, "pid": os.getpid()}


def _raises():
    raise ValueError("boom: bad shape")


def _sleeps():
    time.sleep(60)


def _kills_itself():
    os.kill(os.getpid(), signal.SIGKILL)


def _segfaults():
    os.kill(os.getpid(), signal.SIGSEGV)


def _exits():
    os._exit(3)


def _unpicklable():
    return lambda: None


def _record():
    return LatencyStats(mean=2.0, median=2.0, p90=3.0, p99=3.5, min=1.0, max=4.0, std=0.5)


def _raises_tk_error():
    from turnkey_like.errors import BuildError

    raise BuildError("ONNX export failed: dynamo: " + "x" * 1000)


def test_success_returns_value_and_logs_output(tmp_path):
    log = tmp_path / "child.log"
    out = run_isolated(_returns, 7, timeout_s=60, log_path=log)
    assert out.status is Status.SUCCESSFUL
    assert out.value["x"] == 7
    assert out.value["pid"] != os.getpid()  # really ran in another process
    assert "hello from the child" in log.read_text()
    assert out.error is None


def test_exception_gives_last_traceback_line(tmp_path):
    log = tmp_path / "child.log"
    out = run_isolated(_raises, timeout_s=60, log_path=log)
    assert out.status is Status.ERROR
    assert out.error == "ValueError: boom: bad shape"
    assert "Traceback" in log.read_text()
    assert "ValueError: boom: bad shape" in out.log_excerpt


def test_timeout_kills_the_child(tmp_path):
    start = time.perf_counter()
    out = run_isolated(_sleeps, timeout_s=1.0, log_path=tmp_path / "child.log")
    assert out.status is Status.TIMEOUT
    assert "timed out after 1 s" in out.error
    assert time.perf_counter() - start < 20  # did not wait for the 60 s sleep


@pytest.mark.parametrize("fn, name", [(_kills_itself, "SIGKILL"), (_segfaults, "SIGSEGV")])
def test_death_by_signal_is_killed(tmp_path, fn, name):
    out = run_isolated(fn, timeout_s=60, log_path=tmp_path / "child.log")
    assert out.status is Status.KILLED
    assert name in out.error


def test_exit_without_result_is_an_error(tmp_path):
    out = run_isolated(_exits, timeout_s=60, log_path=tmp_path / "child.log")
    assert out.status is Status.ERROR
    assert "exited with code 3" in out.error


def test_unpicklable_result_is_an_error_not_a_hang(tmp_path):
    out = run_isolated(_unpicklable, timeout_s=60, log_path=tmp_path / "child.log")
    assert out.status is Status.ERROR
    assert "could not be sent" in out.error


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_records_cross_the_process_boundary_as_records(tmp_path, method):
    out = run_isolated(_record, timeout_s=120, log_path=tmp_path / "child.log", start_method=method)
    assert out.status is Status.SUCCESSFUL, out.error
    assert out.value == _record() and isinstance(out.value, LatencyStats)
    stage = out.stage_result("2026-01-01T00:00:00+00:00", 1.5)
    assert isinstance(stage, StageResult) and stage.result == out.value and stage.duration_s == 1.5


def test_error_line_is_errors_one_line(tmp_path):
    out = run_isolated(_raises_tk_error, timeout_s=60, log_path=tmp_path / "child.log")
    assert out.status is Status.ERROR
    assert out.error.startswith("ONNX export failed: dynamo: xxx")  # a TkError by its message alone
    assert len(out.error) == 500 and out.error.endswith("...")


def test_choose_start_method_is_the_one_rule():
    # no CUDA anywhere: the default (fork on Linux), which sees the live model
    assert choose_start_method("cpu", False) == default_start_method()
    assert choose_start_method("cpu", False, needs_live_model=False) == default_start_method()
    # CUDA and the live model (a CUDA model's export, torch on CUDA): in-process
    assert choose_start_method("cuda", False, needs_live_model=True) == "inline"
    assert choose_start_method("cpu", True, needs_live_model=True) == "inline"
    # CUDA with picklable work only (ORT on CUDA): a spawned child
    assert choose_start_method("cuda", False, needs_live_model=False) == "spawn"
    assert choose_start_method("cuda", True, needs_live_model=False) == "spawn"


def test_inline_start_method_runs_in_this_process(tmp_path):
    out = run_isolated(_returns, 1, timeout_s=60, log_path=tmp_path / "l.log", start_method="inline")
    assert out.status is Status.SUCCESSFUL and out.value["pid"] == os.getpid()
    bad = run_isolated(_raises, timeout_s=60, log_path=tmp_path / "l.log", start_method="inline")
    assert bad.status is Status.ERROR and bad.error == "ValueError: boom: bad shape"


def test_torch_forward_in_forked_child_after_parent_used_threads(tmp_path):
    """libgomp's pool does not survive fork: without the fresh-thread fix this child hangs forever."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.LayerNorm(1024)).eval()
    x = torch.randn(256, 1024)  # 262144 elements: above torch's 32768-element grain, so OpenMP runs
    with torch.no_grad():
        expected = model(x)  # the parent opens OpenMP parallel regions with 2 threads

    def child():
        with torch.no_grad():
            y = model(x)
        return {"threads": torch.get_num_threads(), "max_diff": float((y - expected).abs().max())}

    out = run_isolated(child, timeout_s=60, log_path=tmp_path / "child.log")
    assert out.status is Status.SUCCESSFUL, out.error
    assert out.value["threads"] == 2  # still multi-threaded in the child
    assert out.value["max_diff"] == 0.0


def _script_like(send):
    """An input's child: starts children as a script (a multiprocessing pool) and a stage (spawn) would,
    then writes what it saw as a message of the channel protocol (an ``Output`` holding JSON)."""
    import json
    import multiprocessing

    from turnkey_like.records import Output

    with multiprocessing.get_context("fork").Pool(1) as pool:
        pool_result = pool.map(abs, [-3])
    spawned = run_isolated(_record, timeout_s=120, log_path=None, start_method="spawn")
    facts = [multiprocessing.current_process().daemon, pool_result, spawned.status.value, spawned.error]
    send(Output(stream="stdout", text=json.dumps(facts)))


def _as_a_dask_worker(queue):
    """Runs in a daemonic process, as a worker that ``dask worker``'s nanny starts: tk's children from here."""
    import multiprocessing

    from turnkey_like.launcher import StreamingChild

    stage = run_isolated(_returns, 5, timeout_s=60, log_path=None)
    with StreamingChild(_script_like) as child:
        message = child.receive(120)
        child.wait()
    queue.put((multiprocessing.current_process().daemon, stage.status.value, stage.value["x"], message.text))


def test_children_start_from_a_daemonic_process():
    """``multiprocessing`` refuses children to a daemonic process (a Dask worker by default): tk forks
    its own with ``os.fork``, and its children are not daemonic, so a script's pool and a stage's
    spawned child start there too."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    worker = ctx.Process(target=_as_a_dask_worker, args=(queue,), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 300
        while queue.empty() and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not queue.empty(), f"the daemonic process ended with code {worker.exitcode} without its result"
        daemonic, status, value, message = queue.get(timeout=10)
    finally:
        worker.join(timeout=30)
        if worker.is_alive():
            worker.kill()
    assert daemonic is True  # the parent really is daemonic
    assert (status, value) == ("successful", 5)  # run_isolated's fork
    child_daemonic, pool_result, spawned_status, spawned_error = json.loads(message)
    assert child_daemonic is False and pool_result == [3]
    assert spawned_status == "successful", spawned_error
