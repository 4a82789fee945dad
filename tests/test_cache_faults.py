"""The cache under faults: concurrent writer processes, SIGKILL mid-stage, reused pids, truncated and
corrupt records, read-only folders, and locks held by another process. Real processes, real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import filelock  # noqa: F401 - imported before any fork so the unprivileged child needs no file access
import psutil
import pytest

import turnkey_like
from turnkey_like.cache import LOCK_FILE, RECORD_FILE, Cache
from turnkey_like.errors import CacheError
from turnkey_like.records import SCHEMA_VERSION, Status

from test_cache import make_record, run_cli  # noqa: E402 - pytest puts tests/ on sys.path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + str(REPO / "tests")}


def _spawn(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ------------------------------------------------------------------------------------------- concurrency
WRITER = r"""
import os, sys, time
from pathlib import Path
from turnkey_like.cache import Cache
from test_cache import make_record
root, tag, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
cache = Cache(root)  # both processes may create the new root at the same time
if tag == "a":
    try:
        cache.save(make_record("shared_00000000", inv_hash="00000000"))
    except Exception:
        pass
for i in range(25):
    cache.save(make_record(f"own_{tag}_{i:08d}", inv_hash=f"{i:08d}"))
    while True:
        try:
            def bump(r):
                r.invocation.executed += 1
                r.invocation.time_s += 1.0
            cache.update("shared_00000000", bump)
            break
        except Exception as e:  # the shared build may not exist yet in the first iteration of "b"
            if "no build named" not in str(e) and "no record yet" not in str(e):
                raise
            time.sleep(0.01)
print("done")
"""


def test_two_writer_processes_lose_nothing(tmp_path):
    root, go = tmp_path / "cache", tmp_path / "go"
    procs = [_spawn(WRITER, str(root), tag, str(go)) for tag in ("a", "b")]
    time.sleep(0.5)  # let both start and wait on the go file
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "done"
    cache = Cache(root, create=False)
    records, problems = cache.records()
    assert problems == []
    names = {r.build_name for r in records}
    assert names == {"shared_00000000"} | {f"own_{t}_{i:08d}" for t in "ab" for i in range(25)}
    shared = cache.load("shared_00000000")
    # 2 processes x 25 locked read-modify-writes on a record saved with executed=1: none lost
    assert shared.invocation.executed == 1 + 50
    assert shared.invocation.time_s == pytest.approx(0.001 + 50.0)
    # no temp files left anywhere
    assert not [p for p in root.rglob("*.tmp")]


HOLDER = r"""
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1]); lock.acquire()
print("locked", flush=True)
time.sleep(30)
"""


def test_lock_is_per_build(tmp_path):
    cache = Cache(tmp_path, lock_timeout_s=0.5)
    cache.save(make_record("a_00000001", inv_hash="00000001"))
    cache.save(make_record("b_00000002", inv_hash="00000002"))
    holder = _spawn(HOLDER, str(tmp_path / "a_00000001" / LOCK_FILE))
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        cache.save(make_record("b_00000002", inv_hash="00000002"))  # another build: no waiting
        assert time.perf_counter() - t0 < 0.4
        with pytest.raises(CacheError, match="locked by another tk process") as e:
            cache.save(make_record("a_00000001", inv_hash="00000001"))
        assert LOCK_FILE in e.value.hint
        assert cache.load("a_00000001").build_name == "a_00000001"  # readers take no lock
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------- killed runs
RUNNER = r"""
import datetime, os, sys, time
from turnkey_like.cache import Cache
from turnkey_like.records import StageResult, Status
from test_cache import make_record
cache = Cache(sys.argv[1])
rec = make_record("victim_0a1b2c3d")
rec.invocation.build = StageResult(Status.RUNNING, pid=os.getpid(),
                                   started_at=datetime.datetime.now(datetime.timezone.utc).isoformat())
rec.invocation.benchmark = StageResult()
cache.save(rec)
print("running", flush=True)
time.sleep(60)
"""


def test_sigkill_while_running_reads_killed(tmp_path):
    proc = _spawn(RUNNER, str(tmp_path))
    try:
        assert proc.stdout.readline().strip() == "running"
        cache = Cache(tmp_path, create=False)
        assert cache.load("victim_0a1b2c3d").invocation.build.status == Status.RUNNING  # still alive
        os.kill(proc.pid, signal.SIGKILL)
        # before the parent reaps it the child is a zombie: it must already read as killed
        deadline = time.time() + 10
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE and time.time() < deadline:
            time.sleep(0.01)
        rec = cache.load("victim_0a1b2c3d")
        assert rec.invocation.build.status == Status.KILLED
        assert f"process {proc.pid}" in rec.invocation.build.error
    finally:
        proc.kill()
        proc.wait()
    records, problems = cache.records()  # reaped: gone entirely
    assert problems == [] and records[0].invocation.build.status == Status.KILLED
    assert records[0].invocation.benchmark.status == Status.NOT_STARTED
    assert records[0].invocation.characterization.status == Status.SUCCESSFUL
    # reading never rewrites the file: the stored status is still what the writer wrote
    data = json.loads((tmp_path / "victim_0a1b2c3d" / RECORD_FILE).read_text())
    assert data["invocation"]["build"]["status"] == "running"


def _write_running(cache: Cache, *, create_time=None, started_at=None, host=None) -> None:
    """Save a record whose build stage is running in *this* (live) process, then doctor the writer facts."""
    rec = make_record()
    rec.invocation.build.status = Status.RUNNING
    rec.invocation.build.pid = os.getpid()
    rec.invocation.build.started_at = started_at
    cache.save(rec)
    path = cache.root / rec.build_name / RECORD_FILE
    data = json.loads(path.read_text())
    if create_time is not None:
        data["_cache"]["running"]["build"]["create_time"] = create_time
    if host is not None:
        data["_cache"]["host"] = host
    if started_at is not None and create_time is None:
        data["_cache"].pop("running")  # an older writer that stored no create time
    path.write_text(json.dumps(data))


def test_reused_pid_is_not_mistaken_for_the_writer(tmp_path):
    cache = Cache(tmp_path)
    _write_running(cache)
    assert cache.load("resnet_tiny_0a1b2c3d").invocation.build.status == Status.RUNNING
    # the pid is alive but is a different process than the one that wrote "running" (other create time)
    _write_running(cache, create_time=psutil.Process().create_time() - 3600)
    rec = cache.load("resnet_tiny_0a1b2c3d")
    assert rec.invocation.build.status == Status.KILLED and "pid reused" in rec.invocation.build.error
    # without a stored create time: the live process started after the stage did (year 2000)
    _write_running(cache, started_at="2000-01-01T00:00:00+00:00")
    assert cache.load("resnet_tiny_0a1b2c3d").invocation.build.status == Status.KILLED
    # written on another host: its processes cannot be checked from here, so it stays running
    _write_running(cache, create_time=1.0, host="some-other-host")
    assert cache.load("resnet_tiny_0a1b2c3d").invocation.build.status == Status.RUNNING


# ------------------------------------------------------------------------------------------- corrupt records
def test_truncated_and_corrupt_records_are_named_and_skipped(tmp_path, capsys):
    cache = Cache(tmp_path)
    for i in range(4):
        cache.save(make_record(f"m{i}_0000000{i}", inv_hash=f"0000000{i}"))
    rec_path = tmp_path / "m1_00000001" / RECORD_FILE
    text = rec_path.read_text()
    rec_path.write_text(text[: len(text) // 2])  # truncated mid-write by something that was not tk
    (tmp_path / "m2_00000002" / RECORD_FILE).write_text('{"build_name": "m2_00000002"}')  # fields missing
    newer = json.loads((tmp_path / "m3_00000003" / RECORD_FILE).read_text())
    newer["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "m3_00000003" / RECORD_FILE).write_text(json.dumps(newer))
    cache.build_dir("m4_00000004")  # folder created, record not written yet

    records, problems = cache.records()
    assert [r.build_name for r in records] == ["m0_00000000"]
    why = {p.build_name: p.message for p in problems}
    assert set(why) == {"m1_00000001", "m2_00000002", "m3_00000003", "m4_00000004"}
    assert "truncated or not JSON" in why["m1_00000001"]
    assert "missing field" in why["m2_00000002"]
    assert "newer than this tk reads" in why["m3_00000003"]
    assert "no record yet" in why["m4_00000004"]
    with pytest.raises(CacheError, match="corrupt") as e:
        cache.load("m1_00000001")
    assert "tk cache delete m1_00000001" in e.value.hint

    assert run_cli(["cache", "list", "--cache-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "m0_00000000" in captured.out and "1 build(s)" in captured.out
    assert "skipped 4 unreadable record(s)" in captured.err and "m1_00000001: record of build" in captured.err
    # the broken build can still be deleted
    assert cache.delete(["m1_00000001"]) == ["m1_00000001"]


# ------------------------------------------------------------------------------------------- read-only
def _unprivileged(fn):
    """Run ``fn() -> dict`` where the file system refuses writes: as `nobody` in a fork when we are root
    (root ignores permission bits), else directly. Returns its dict."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            out = json.dumps(fn())
            with os.fdopen(w, "w") as f:
                f.write(out)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and text, "unprivileged child failed"
    return json.loads(text)


def test_read_only_cache_gives_clear_errors_and_stays_readable():
    base = Path(tempfile.mkdtemp(prefix="tk_ro_"))
    try:
        cache = Cache(base / "cache")
        cache.save(make_record())
        (base / "empty").mkdir()
        for p in (base, base / "cache", base / "cache" / "resnet_tiny_0a1b2c3d", base / "empty"):
            p.chmod(0o555)
        for f in (base / "cache").rglob("*"):
            if f.is_file():
                f.chmod(0o444)
        turnkey_like.__version__  # noqa: B018 - loaded before the fork

        def attempts():
            out = {}
            for key, make in (
                ("open_rw", lambda: Cache(base / "cache")),
                ("create_sub", lambda: Cache(base / "new")),
                ("mark_empty", lambda: Cache(base / "empty")),
            ):
                try:
                    make()
                    out[key] = "no error"
                except CacheError as e:
                    out[key] = f"{e.message} | {e.hint}"
            reader = Cache(base / "cache", create=False)
            records, problems = reader.records()
            out["read"] = [r.build_name for r in records] + [p.message for p in problems]
            try:
                reader.save(make_record())
                out["save"] = "no error"
            except CacheError as e:
                out["save"] = e.message
            return out

        out = _unprivileged(attempts)
        assert out["open_rw"].startswith(f"cache folder {base / 'cache'} is not writable")
        assert "--cache-dir" in out["open_rw"]
        assert out["create_sub"].startswith(f"cannot create the cache folder {base / 'new'}")
        assert out["mark_empty"].startswith(f"cache folder {base / 'empty'} is not writable")
        assert out["read"] == ["resnet_tiny_0a1b2c3d"]  # a read-only cache can still be listed/reported
        assert "cannot lock build resnet_tiny_0a1b2c3d" in out["save"] or "cannot write" in out["save"]
    finally:
        for p in [base, *base.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(base)


# ------------------------------------------------------------------------------------------- atomic writes
SAVER = r"""
import sys
from turnkey_like.cache import Cache
from test_cache import make_record
cache = Cache(sys.argv[1])
rec = make_record("big_0a1b2c3d")
for i in range(25):
    rec.invocation.executed = i
    # a large result (~150 KB of per-node rows) makes a non-atomic write easy to catch half-done
    rec.invocation.characterization.result["nodes"] = [{"op": "aten::mm", "i": i, "macs": j} for j in range(4000)]
    cache.save(rec)
print("done", flush=True)
"""


def test_readers_never_see_a_half_written_record(tmp_path):
    cache = Cache(tmp_path)
    cache.save(make_record("big_0a1b2c3d"))
    writer = _spawn(SAVER, str(tmp_path))
    seen, reads = set(), 0
    while writer.poll() is None:
        rec = cache.load("big_0a1b2c3d")  # raises CacheError("... corrupt ...") on a partial file
        seen.add(rec.invocation.executed)
        reads += 1
    out, err = writer.communicate()
    assert writer.returncode == 0 and out.strip() == "done", err
    assert reads > 10 and len(seen) > 2  # the reader really overlapped the writes
    assert cache.load("big_0a1b2c3d").invocation.executed == 24
