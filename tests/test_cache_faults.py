"""The cache under faults: concurrent writer processes, SIGKILL mid-stage, reused pids, truncated,
corrupt and invalid records (named and skipped by every command), read-only folders, and locks held by
another process. Real processes, real files, records from a real run (``real_cache``)."""

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
from conftest import run_tk
from turnkey_like.cache import LOCK_FILE, RECORD_FILE, Cache
from turnkey_like.errors import CacheError
from turnkey_like.records import SCHEMA_VERSION, StageResult, Status
from turnkey_like.units import format_bytes

# pytest puts tests/ on sys.path; the fixtures are used by name
from test_cache import (  # noqa: E402,F401 - fixtures
    _with_artifacts,
    assert_index_matches_records,
    hello,
    last_used,
    real_records,
    renamed,
    run_cli,
    template_file,
)

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
from test_cache import record_from_file
root, tag, go, template = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
while not go.exists():
    time.sleep(0.005)
cache = Cache(root)  # both processes may create the new root at the same time
if tag == "a":
    try:
        cache.save(record_from_file(template, "shared_00000000"))
    except Exception:
        pass
for i in range(25):
    cache.save(record_from_file(template, f"own_{tag}_{i:08d}"))
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


def test_two_writer_processes_lose_nothing(tmp_path, template_file, hello):
    root, go = tmp_path / "cache", tmp_path / "go"
    procs = [_spawn(WRITER, str(root), tag, str(go), str(template_file)) for tag in ("a", "b")]
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
    # 2 processes x 25 locked read-modify-writes on the real record: none lost
    assert shared.invocation.executed == hello.invocation.executed + 50
    assert shared.invocation.time_s == pytest.approx(hello.invocation.time_s + 50.0)
    # no temp files left anywhere
    assert not [p for p in root.rglob("*.tmp")]
    # the index the two writers kept in step holds every build's row, each made from its current record
    assert_index_matches_records(root)


HOLDER = r"""
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1]); lock.acquire()
print("locked", flush=True)
time.sleep(30)
"""


def test_lock_is_per_build(tmp_path, hello):
    cache = Cache(tmp_path, lock_timeout_s=0.5)
    cache.save(renamed(hello, "a_00000001"))
    cache.save(renamed(hello, "b_00000002"))
    holder = _spawn(HOLDER, str(tmp_path / "a_00000001" / LOCK_FILE))
    try:
        assert holder.stdout.readline().strip() == "locked"
        cache.save(renamed(hello, "b_00000002"))  # another build's lock is free: saved, where a shared lock would time out
        with pytest.raises(CacheError, match="locked by another tk process") as e:
            cache.save(renamed(hello, "a_00000001"))
        assert LOCK_FILE in e.value.hint
        assert cache.load("a_00000001").build_name == "a_00000001"  # readers take no lock
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------- killed runs
RUNNER = r"""
import os, sys, time
from turnkey_like.cache import Cache
from turnkey_like.records import StageResult, Status, now_utc
from test_cache import record_from_file
cache = Cache(sys.argv[1])
rec = record_from_file(sys.argv[2], "victim_0a1b2c3d")
rec.invocation.build = StageResult(status=Status.RUNNING, pid=os.getpid(), started_at=now_utc())
rec.invocation.benchmark = StageResult()
cache.save(rec)
print("running", flush=True)
time.sleep(60)
"""


def test_sigkill_while_running_reads_killed(tmp_path, template_file):
    proc = _spawn(RUNNER, str(tmp_path / "c"), str(template_file))
    try:
        assert proc.stdout.readline().strip() == "running"
        cache = Cache(tmp_path / "c", create=False)
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
    data = json.loads((tmp_path / "c" / "victim_0a1b2c3d" / RECORD_FILE).read_text())
    assert data["invocation"]["build"]["status"] == "running"


def _write_running(cache: Cache, hello, *, create_time=None, started_at=None, host=None) -> None:
    """Save a record whose build stage is running in *this* (live) process, then doctor the writer facts."""
    rec = renamed(hello, "resnet_tiny_0a1b2c3d")
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


def test_reused_pid_is_not_mistaken_for_the_writer(tmp_path, hello):
    cache = Cache(tmp_path)
    _write_running(cache, hello)
    assert cache.load("resnet_tiny_0a1b2c3d").invocation.build.status == Status.RUNNING
    # the pid is alive but is a different process than the one that wrote "running" (other create time)
    _write_running(cache, hello, create_time=psutil.Process().create_time() - 3600)
    rec = cache.load("resnet_tiny_0a1b2c3d")
    assert rec.invocation.build.status == Status.KILLED and "pid reused" in rec.invocation.build.error
    # without a stored create time: the live process started after the stage did (year 2000)
    _write_running(cache, hello, started_at="2000-01-01T00:00:00+00:00")
    assert cache.load("resnet_tiny_0a1b2c3d").invocation.build.status == Status.KILLED
    # written on another host: its processes cannot be checked from here, so it stays running
    _write_running(cache, hello, create_time=1.0, host="some-other-host")
    assert cache.load("resnet_tiny_0a1b2c3d").invocation.build.status == Status.RUNNING


# ------------------------------------------------------------------------------------------- corrupt records
def test_truncated_and_corrupt_records_are_named_and_skipped(tmp_path, capsys, hello):
    cache = Cache(tmp_path)
    for i in (0, 1, 2, 3, 5):
        cache.save(renamed(hello, f"m{i}_0000000{i}"))
    rec_path = tmp_path / "m1_00000001" / RECORD_FILE
    text = rec_path.read_text()
    rec_path.write_text(text[: len(text) // 2])  # truncated mid-write by something that was not tk
    (tmp_path / "m2_00000002" / RECORD_FILE).write_text('{"build_name": "m2_00000002"}')  # fields missing
    newer = json.loads((tmp_path / "m3_00000003" / RECORD_FILE).read_text())
    newer["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "m3_00000003" / RECORD_FILE).write_text(json.dumps(newer))
    cache.build_dir("m4_00000004")  # folder created, record not written yet
    wrong = json.loads((tmp_path / "m5_00000005" / RECORD_FILE).read_text())
    wrong["invocation"]["executed"] = "x"  # valid JSON, wrong type
    (tmp_path / "m5_00000005" / RECORD_FILE).write_text(json.dumps(wrong))

    records, problems = cache.records()
    assert [r.build_name for r in records] == ["m0_00000000"]
    why = {p.build_name: p.message for p in problems}
    assert set(why) == {"m1_00000001", "m2_00000002", "m3_00000003", "m4_00000004", "m5_00000005"}
    assert all("\n" not in m and name in m for name, m in why.items())  # one line, naming the build
    assert "truncated or not JSON" in why["m1_00000001"]
    assert "missing required field" in why["m2_00000002"]
    assert "newer than this tk reads" in why["m3_00000003"]
    assert "no record yet" in why["m4_00000004"]
    assert why["m5_00000005"] == ("record of build m5_00000005 does not match the tk schema: "
                                  "Expected `int`, got `str` - at `$.invocation.executed`")
    with pytest.raises(CacheError, match="corrupt") as e:
        cache.load("m1_00000001")
    assert "tk cache delete m1_00000001" in e.value.hint
    with pytest.raises(CacheError, match="invocation.executed"):  # what the pipeline reads as "no previous record"
        cache.load("m5_00000005")

    assert run_cli(["cache", "list", "--cache-dir", str(tmp_path)]) == 1  # something failed, the rest listed
    captured = capsys.readouterr()
    assert "m0_00000000" in captured.out and "1 build(s)" in captured.out
    assert "skipped 5 unreadable record(s)" in captured.err and "m1_00000001: record of build" in captured.err
    # the broken build can still be deleted
    assert cache.delete(["m1_00000001"]).removed == ["m1_00000001"]


@pytest.mark.parametrize("damage, field", [
    (lambda d: d["invocation"].__setitem__("executed", "x"), "$.invocation.executed"),
    (lambda d: d["invocation"]["benchmark"]["result"].__setitem__("latency_ms", "fast"),
     "$.invocation.benchmark.result.latency_ms"),
], ids=["executed", "latency_ms"])
def test_every_command_names_and_skips_an_invalid_record(tmp_path, hello, damage, field):
    """`tk cache list`, `tk cache stats` and `tk report` (real processes) with one invalid record next
    to a good one: the invalid one is named on stderr in one line, the good one is still shown, and
    the exit code is 1 (no traceback)."""
    cache = Cache(tmp_path / "c")
    cache.save(renamed(hello, "good_11111111"))
    cache.save(renamed(hello, "bad_22222222"))
    path = tmp_path / "c" / "bad_22222222" / RECORD_FILE
    data = json.loads(path.read_text())
    damage(data)
    path.write_text(json.dumps(data))

    def named_once(err: str) -> str:
        (line,) = [ln for ln in err.splitlines() if field in ln]
        assert "bad_22222222" in line and "Traceback" not in err
        return line

    # exit code 1: something failed, the others still ran (docs/exit_codes.md)
    out = run_tk("cache", "list", "--cache-dir", str(cache.root), env={"COLUMNS": "250"})
    assert out.returncode == 1, out.stderr
    assert "good_11111111" in out.stdout and "bad_22222222" not in out.stdout and "1 build(s)" in out.stdout
    assert named_once(out.stderr).startswith("  bad_22222222: record of build bad_22222222 does not match")

    out = run_tk("cache", "stats", "bad_22222222", "--cache-dir", str(cache.root))
    assert out.returncode == 1 and out.stdout == ""
    assert named_once(out.stderr).startswith("error: record of build bad_22222222 does not match the tk schema")
    out = run_tk("cache", "stats", "good_11111111", "--cache-dir", str(cache.root), env={"COLUMNS": "250"})
    assert out.returncode == 0 and "good_11111111" in out.stdout, out.stderr

    report = tmp_path / "r.csv"
    out = run_tk("report", "--cache-dir", str(cache.root), "-o", str(report))
    assert out.returncode == 1, out.stderr
    assert "wrote 1 row(s)" in out.stdout
    named_once(out.stderr)
    rows = report.read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("good_11111111,")


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


def test_read_only_cache_gives_clear_errors_and_stays_readable(hello):
    base = Path(tempfile.mkdtemp(prefix="tk_ro_"))
    rec = renamed(hello, "resnet_tiny_0a1b2c3d")
    try:
        cache = Cache(base / "cache")
        cache.save(rec)
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
            entries, problems = reader.entries(rows=True)  # the index: read if it can be, never written
            out["entries"] = [e.row.build_name for e in entries] + [p.message for p in problems]
            try:
                reader.save(rec)
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
        assert out["entries"] == ["resnet_tiny_0a1b2c3d"]
        assert "cannot lock build resnet_tiny_0a1b2c3d" in out["save"] or "cannot write" in out["save"]
    finally:
        for p in [base, *base.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(base)


# ------------------------------------------------------------------------------------------- prune
def test_prune_touches_only_real_build_folders_and_skips_builds_in_use(tmp_path, hello):
    """Old builds all, but: one is a symbolic link to a build folder elsewhere, one holds a link to
    files outside the cache, one is locked by another process (a run using it). Only real build
    folders are removed, links are never followed, and the locked build is kept and named."""
    cache = Cache(tmp_path / "c")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep\n")
    old = _with_artifacts(cache, renamed(hello, "old_00000001"))
    (old / "data").symlink_to(outside, target_is_directory=True)
    (old / "notes.txt").symlink_to(outside / "precious.txt")
    elsewhere = Cache(tmp_path / "elsewhere")
    elsewhere.save(renamed(hello, "linked_00000002"))
    (cache.root / "linked_00000002").symlink_to(elsewhere.root / "linked_00000002", target_is_directory=True)
    cache.save(renamed(hello, "busy_00000003"))
    for name in ("old_00000001", "busy_00000003"):
        last_used(cache, name, 60)
    last_used(elsewhere, "linked_00000002", 60)
    cache.save(renamed(hello, "fresh_00000004"))
    holder = _spawn(HOLDER, str(cache.root / "busy_00000003" / LOCK_FILE))
    try:
        assert holder.stdout.readline().strip() == "locked"
        out = run_tk("cache", "prune", "--older-than", "30", "--cache-dir", str(cache.root))
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"pruned 1 build(s) from {cache.root}: freed ")
    assert lines[1].split()[0] == "old_00000001"
    assert lines[2] == "kept 2 chosen build(s):"
    kept = {ln.split()[0]: ln.split(None, 1)[1] for ln in lines[3:]}
    assert kept == {"busy_00000003": "in use: another tk process holds its lock",
                    "linked_00000002": "not a real folder (a symbolic link or a file); not touched"}
    assert sorted(p.name for p in cache.root.iterdir() if not p.name.startswith(".")) == [
        "busy_00000003", "fresh_00000004", "linked_00000002"]
    assert (outside / "precious.txt").read_text() == "keep\n"  # links inside a pruned build: removed, not followed
    assert elsewhere.load("linked_00000002").build_name == "linked_00000002"


def test_prune_max_size_takes_the_next_oldest_when_one_is_in_use(tmp_path, hello):
    cache = Cache(tmp_path / "c")
    for name, days in (("a_00000001", 30), ("b_00000002", 20), ("c_00000003", 10)):
        cache.save(renamed(hello, name))
        last_used(cache, name, days)
    sizes = {n: cache.folder_bytes(n) for n in cache.builds()}
    holder = _spawn(HOLDER, str(cache.root / "a_00000001" / LOCK_FILE))
    try:
        assert holder.stdout.readline().strip() == "locked"
        limit = sizes["a_00000001"] + sizes["c_00000003"]  # one build must go
        out = run_tk("cache", "prune", "--max-size", str(limit), "--cache-dir", str(cache.root))
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"pruned 1 build(s) from {cache.root}: freed {format_bytes(sizes['b_00000002'])}")
    assert lines[1].split()[0] == "b_00000002" and lines[3].split()[0] == "a_00000001"
    assert cache.builds() == ["a_00000001", "c_00000003"]


SAVE_WAITING = r"""
import sys
from turnkey_like.cache import Cache
from test_cache import record_from_file
cache = Cache(sys.argv[1])
record = record_from_file(sys.argv[2], "gone_0a1b2c3d")
print("saving", flush=True)
cache.save(record)  # waits for the lock the test holds, while the folder is removed
print("saved", flush=True)
"""


def test_a_save_waiting_while_its_build_is_pruned_writes_it_again(tmp_path, hello, template_file):
    from filelock import FileLock

    cache = Cache(tmp_path / "c")
    cache.save(renamed(hello, "gone_0a1b2c3d"))
    folder = cache.root / "gone_0a1b2c3d"
    lock = FileLock(str(folder / LOCK_FILE))
    lock.acquire()
    try:
        writer = _spawn(SAVE_WAITING, str(cache.root), str(template_file))
        assert writer.stdout.readline().strip() == "saving"
        time.sleep(0.5)  # the writer is now waiting for the lock
        shutil.rmtree(folder)  # what prune does, under the build's lock
    finally:
        lock.release()
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0 and out.strip() == "saved", err
    assert cache.load("gone_0a1b2c3d").build_name == "gone_0a1b2c3d"
    assert_index_matches_records(cache.root)


# ------------------------------------------------------------------------------------------- atomic writes
SAVER = r"""
import sys
import time
import msgspec
from turnkey_like.cache import Cache
from test_cache import record_from_file
cache = Cache(sys.argv[1])
rec = record_from_file(sys.argv[2], "big_0a1b2c3d")
char = rec.invocation.characterization.result
row = char.rows[0]
for i in range(25):
    rec.invocation.executed = i
    # a large result (~1 MB: the real op row repeated) makes a non-atomic write easy to catch half-done
    char.rows = [msgspec.structs.replace(row, index=j) for j in range(4000)]
    cache.save(rec)
    time.sleep(0.02)  # leave the reader time to read between saves, so the two really overlap
print("done", flush=True)
"""


def test_readers_never_see_a_half_written_record(tmp_path, hello, template_file):
    cache = Cache(tmp_path)
    cache.save(renamed(hello, "big_0a1b2c3d"))
    writer = _spawn(SAVER, str(tmp_path), str(template_file))
    seen, reads = set(), 0
    while writer.poll() is None:
        rec = cache.load("big_0a1b2c3d")  # raises CacheError("... corrupt ...") on a partial file
        seen.add(rec.invocation.executed)
        reads += 1
    out, err = writer.communicate()
    assert writer.returncode == 0 and out.strip() == "done", err
    assert reads > 10 and len(seen) > 2  # the reader really overlapped the writes
    assert cache.load("big_0a1b2c3d").invocation.executed == 24


# ------------------------------------------------------------------------------ symlinks (issue 9)
@pytest.mark.parametrize("command", ["delete", "clean"])
def test_delete_and_clean_all_skip_a_symlinked_build_and_say_so(tmp_path, hello, command):
    """A build folder that is a link to somewhere else is skipped by `--all` and named; its target
    (another cache here, but it could be a home folder) keeps every file."""
    cache = Cache(tmp_path / "c")
    _with_artifacts(cache, renamed(hello, "real_00000001"))
    elsewhere = Cache(tmp_path / "elsewhere")
    target = _with_artifacts(elsewhere, renamed(hello, "linked_00000002"))
    (cache.root / "linked_00000002").symlink_to(target, target_is_directory=True)
    before = sorted(p.name for p in target.iterdir())
    out = run_tk("cache", command, "--all", "--cache-dir", str(cache.root))
    assert out.returncode == 0, out.stderr
    assert "skipped linked_00000002: a symbolic link" in out.stdout
    assert sorted(p.name for p in target.iterdir()) == before  # nothing outside the cache touched
    assert (cache.root / "linked_00000002").is_symlink()
    if command == "delete":
        assert not (cache.root / "real_00000001").exists()
    else:
        assert not list((cache.root / "real_00000001").glob("*.onnx"))


def test_a_symlinked_build_log_is_refused_and_its_target_kept(tmp_path):
    """A planted `build.log -> victim` makes the build an error naming the link; the victim is intact."""
    script = tmp_path / "tiny.py"
    script.write_text("import torch\nm = torch.nn.Linear(4, 2)\nm(torch.rand(1, 4))\n")
    cache = tmp_path / "cache"
    first = run_tk("benchmark", str(script), "--build-only", "--hardware", "a100", "--cache-dir", str(cache))
    assert first.returncode == 0, first.stdout + first.stderr
    (name,) = Cache(cache, create=False).builds()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log = cache / name / "build.log"
    log.unlink()
    log.symlink_to(victim)
    again = run_tk("benchmark", str(script), "--build-only", "--rebuild", "always", "--hardware", "a100",
                   "--cache-dir", str(cache))
    assert again.returncode == 1
    assert "refusing to write" in again.stdout and "build.log" in again.stdout
    assert victim.read_text() == "precious\n"
    assert Cache(cache, create=False).load(name).invocation.build.status == Status.ERROR


# ------------------------------------------------------------------------------ builds in use (reliability 3)
#: A model that runs fast when the script calls it; while tk exports it to ONNX (fake tensors under
#: torch.export, tracing for the TorchScript exporter), it waits for the file named by $RELEASE.
SLOW_EXPORT = """\
import os
import time

import torch
from torch._subclasses.fake_tensor import FakeTensor


class SlowExport(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        if isinstance(x, FakeTensor) or torch.jit.is_tracing():
            deadline = time.monotonic() + 300
            while not os.path.exists(os.environ["RELEASE"]) and time.monotonic() < deadline:
                time.sleep(0.05)
        return self.fc(x)


model = SlowExport()
model(torch.rand(1, 4))
"""


def _running_build(root: Path, deadline_s: float = 300) -> str:
    """The name of the build whose build stage is recorded ``running`` under ``root`` (waits for it)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            records, _ = Cache(root, create=False).records()
        except CacheError:
            records = []  # the cache is not created yet
        for record in records:
            if record.invocation.build.status == Status.RUNNING:
                return record.build_name
        time.sleep(0.1)
    raise AssertionError("the build stage never started")


def test_prune_delete_and_clean_skip_a_build_whose_stage_runs_in_a_live_tk(tmp_path):
    """A real tk builds a model (its export waits); `tk cache prune/delete/clean` run meanwhile: each
    skips that build with one line naming the tk process, and the run ends with its build intact.

    Before: prune removed the folder under the running build, which then failed with
    ``FileNotFoundError: ... model.onnx``."""
    script, release, root = tmp_path / "slow.py", tmp_path / "release", tmp_path / "cache"
    script.write_text(SLOW_EXPORT)
    tk = subprocess.Popen([sys.executable, "-m", "turnkey_like", "benchmark", str(script), "--build-only",
                           "--hardware", "a100", "--cache-dir", str(root), "-q"], cwd=REPO,
                          env={**ENV, "RELEASE": str(release)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    try:
        name = _running_build(root)
        pid = Cache(root, create=False).load(name).invocation.build.pid
        assert psutil.pid_exists(pid) and pid != tk.pid  # the input's child process runs the stage
        for command in (["prune", "--max-size", "0"], ["delete", "--all"], ["clean", "--all"], ["delete", name]):
            out = run_tk("cache", *command, "--cache-dir", str(root))
            assert out.returncode == 0, out.stderr
            assert f"in use: its build stage is running in tk process {pid} since " in out.stdout, out.stdout
            assert (root / name / RECORD_FILE).is_file()
        release.touch()
        stdout, stderr = tk.communicate(timeout=600)
    finally:
        release.touch()
        tk.kill()
        tk.wait()
    assert tk.returncode == 0, stdout + stderr
    build = Cache(root, create=False).load(name).invocation.build
    assert build.status == Status.SUCCESSFUL and Path(build.result.onnx_path).is_file()
    out = run_tk("cache", "delete", "--all", "--cache-dir", str(root))  # no longer in use
    assert out.returncode == 0 and name in out.stdout and not (root / name).exists()


def test_in_use_is_the_liveness_readers_use(tmp_path, hello):
    """A stage ``running`` in a live process (another than the reader) is in use; the same after that
    process died is not (it reads ``killed``); on another host it cannot be checked and is in use."""
    cache = Cache(tmp_path)
    sleeper = _spawn("import time; print('up', flush=True); time.sleep(120)")
    try:
        assert sleeper.stdout.readline().strip() == "up"
        rec = renamed(hello, "busy_0a1b2c3d")
        rec.invocation.benchmark = StageResult(status=Status.RUNNING, pid=sleeper.pid, started_at=rec.updated_at)
        cache.save(rec)
        assert "in use: its benchmark stage is running in tk process" in cache.in_use("busy_0a1b2c3d")
        removal = cache.clean(["busy_0a1b2c3d"])
        assert removal.removed == [] and "busy_0a1b2c3d" in removal.skipped
    finally:
        sleeper.kill()
        sleeper.wait()
    assert cache.in_use("busy_0a1b2c3d") is None  # its process is gone: the stage reads killed
    path = tmp_path / "busy_0a1b2c3d" / RECORD_FILE
    data = json.loads(path.read_text())
    data["_cache"]["host"] = "some-other-host"
    path.write_text(json.dumps(data))
    assert "running on host some-other-host" in cache.in_use("busy_0a1b2c3d")
    assert cache.delete(["busy_0a1b2c3d"]).skipped.keys() == {"busy_0a1b2c3d"}
    rec.invocation.benchmark = StageResult(status=Status.RUNNING, pid=os.getpid())  # this very process
    cache.save(rec)
    assert cache.in_use("busy_0a1b2c3d") is None  # a run never blocks itself (lean cache cleans its own build)
    assert cache.delete(["busy_0a1b2c3d"]).removed == ["busy_0a1b2c3d"]
