"""Nothing a script hands tk crashes the run: the one record sanitiser (``records.sanitise``), the
input resolver (``inputs.resolve_inputs``), and a real ``tk`` run with hostile inputs before a good one.

The property tests feed hostile values and names drawn by hypothesis: non-finite floats, integers far
beyond 64 bits, 0-d tensors and numpy scalars where numbers go, tensors that are not 0-d, text with
surrogates (bytes that are not UTF-8), NUL, newlines and terminal escapes, very long text, builtins
nested thousands deep or holding themselves, objects whose ``__repr__`` raises, generators (which must
not be consumed), bytes, sets, complex numbers, dicts with tuple keys; and file names of random bytes.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from pathlib import Path

import msgspec
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES, run_tk
from turnkey_like.cache import RECORD_FILE, Cache
from turnkey_like.errors import CacheError
from turnkey_like.inputs import resolve_inputs
from turnkey_like.records import (
    BuildRecord,
    ModelInfo,
    RunReport,
    ScriptResult,
    clean_text,
    decode,
    encode,
    sanitise,
    to_builtins,
)


# --------------------------------------------------------------------------------------------------
# hostile values
# --------------------------------------------------------------------------------------------------
class ReprRaises:
    """An object whose ``__repr__`` and ``__str__`` raise."""

    def __repr__(self):
        raise RuntimeError("repr refused")

    __str__ = __repr__


def _generator():
    yield from range(3)


def _holds_itself():
    x: list = []
    x.append(x)
    return x


def _nested(depth: int):
    x: list = []
    for _ in range(depth):
        x = [x]
    return x


_ODD_CHARS = ["\udcff", "\udc80", "\ud800", "\x00", "\n", "\r", "\t", "\x1b[2J", "é", "中", "<", '"', "\\", "a"]
HOSTILE = st.one_of(
    st.floats(),  # nan and ±inf included
    st.integers(min_value=-(2**200), max_value=2**200),
    st.text(),
    st.lists(st.sampled_from(_ODD_CHARS), max_size=40).map("".join),
    st.sampled_from(["x" * 1_000_000, "\udcfe" * 10_000]),
    st.integers(-(10**6), 10**6).map(torch.tensor),
    st.floats().map(torch.tensor),
    st.just(torch.ones(2, 2)),
    st.integers(-(10**6), 10**6).map(np.int64),
    st.floats(width=32).map(np.float32),
    st.booleans().map(np.bool_),
    st.builds(ReprRaises),
    st.builds(_generator),
    st.builds(_holds_itself),
    st.integers(1, 3000).map(_nested),
    st.binary(max_size=20),
    st.sets(st.integers(), max_size=3),
    st.complex_numbers(),
    st.none(),
    st.booleans(),
    st.dictionaries(st.one_of(st.text(max_size=5), st.integers(), st.tuples(st.integers())), st.integers(),
                    max_size=3),
    st.lists(st.one_of(st.sampled_from(_ODD_CHARS), st.floats(), st.builds(ReprRaises)), max_size=4),
)


def _slots(record) -> list[tuple[object, str]]:
    """Every (record, field name) reachable from ``record``: the fields of every record inside it
    (the first element of each list of records), so every field type of the schema is drawn."""
    out, stack, seen = [], [record], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for name in obj.__struct_fields__:
            out.append((obj, name))
            value = getattr(obj, name)
            if isinstance(value, msgspec.Struct):
                stack.append(value)
            elif isinstance(value, (list, tuple)) and value and isinstance(value[0], msgspec.Struct):
                stack.append(value[0])
            elif isinstance(value, dict):
                stack.extend(v for v in list(value.values())[:1] if isinstance(v, msgspec.Struct))
    return out


@pytest.fixture(scope="module")
def base_record(real_cache) -> BuildRecord:
    """hello_world.py's full record from a real run (characterized, built and benchmarked)."""
    records, problems = Cache(real_cache, create=False).records(full=True)
    assert problems == []
    return next(r for r in records if r.build_name.startswith("hello_world"))


_CODEC = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@_CODEC
@given(data=st.data())
def test_any_hostile_value_in_any_field_is_recorded_and_read_back(base_record, data):
    """A record holding hostile values in random fields encodes (the codec sanitises it), reads back
    as its type, goes through the cache (save, load, listing, CSV line) and leaves a note per change."""
    record = copy.deepcopy(base_record)
    slots = _slots(record)
    chosen = data.draw(st.lists(st.sampled_from(range(len(slots))), min_size=1, max_size=4, unique=True))
    values = [data.draw(HOSTILE) for _ in chosen]
    for index, value in zip(chosen, values):
        obj, name = slots[index]
        msgspec.structs.force_setattr(obj, name, value)
    generators = [v for v in values if hasattr(v, "gi_frame")]

    data = encode(record)  # repairs the record in place when it must
    back = decode(data, BuildRecord)
    assert encode(record) == data  # repaired once: the record now encodes as it is
    assert all(isinstance(n, str) and clean_text(n) is n for n in back.notes)
    assert all(next(g) == 0 for g in generators), "the sanitiser consumed a generator"
    with tempfile.TemporaryDirectory() as root:
        cache = Cache(root)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}", record.build_name):  # tk names its builds
            with pytest.raises(CacheError, match="invalid build name"):
                cache.save(record)
            return
        cache.save(record)
        assert cache.load(record.build_name) == decode(encode(record), BuildRecord)
        entries, problems = cache.entries(rows=True, csv=True)
        assert problems == [] and [e.name for e in entries] == [record.build_name]
        assert entries[0].csv.startswith(record.build_name + ",")


@_CODEC
@given(value=HOSTILE, field=st.sampled_from(["path", "error", "traceback", "labels", "notes", "exit_code",
                                              "duration_s", "child_processes", "selectors", "entry"]))
def test_a_script_result_and_run_report_always_encode(value, field):
    """``--json`` writes a RunReport of ScriptResults: whatever a field holds, it is written."""
    result = ScriptResult(path="/x/s.py")
    msgspec.structs.force_setattr(result, field, value)
    report = RunReport(results=[result])
    back = decode(encode(report), RunReport)
    assert len(back.results) == 1
    json.dumps(to_builtins(report))  # builtins are JSON-able too


def test_a_traced_parameter_count_becomes_its_number_with_a_note():
    """``torch.jit.trace`` makes ``p.numel()`` a 0-d tensor: the count is recorded as its number."""
    info = ModelInfo(name="m", class_name="M", qualified_class="x.M", model_hash="0" * 8)
    msgspec.structs.force_setattr(info, "params", torch.tensor(10))
    msgspec.structs.force_setattr(info, "param_bytes", np.int64(40))
    notes = sanitise(info)
    assert (info.params, info.param_bytes) == (10, 40) and type(info.params) is int
    assert len(notes) == 2 and "params: tensor(10)" in notes[0] and "recorded as 10" in notes[0]


def test_what_cannot_be_a_number_is_recorded_and_said():
    """A non-number where a number goes: ``None`` where allowed, else the default; the note says what was
    there (a repr that raised is named as such)."""
    result = ScriptResult(path="/x/\udcffs.py")
    msgspec.structs.force_setattr(result, "exit_code", ReprRaises())
    msgspec.structs.force_setattr(result, "child_processes", float("nan"))
    notes = sanitise(result)
    assert result.path == "/x/\\xffs.py" and result.exit_code is None and result.child_processes == 0
    assert any("repr raised RuntimeError" in n for n in notes) and result.notes == notes


# --------------------------------------------------------------------------------------------------
# the input resolver
# --------------------------------------------------------------------------------------------------
def _good(folder: Path) -> Path:
    path = folder / "good.py"
    path.write_text("print('hi')\n")
    return path


def _one_line(message: str) -> bool:
    return message.isprintable() and clean_text(message) is message


@settings(max_examples=200, deadline=None)
@given(name=st.binary(min_size=1, max_size=300), create=st.booleans())
def test_any_file_name_is_one_spec_or_one_line_error(name, create):
    """A file name of any bytes (not UTF-8, over 255 bytes, control characters), created or not, next
    to a good script: never an exception; the good script stays; the name gives one spec or one error,
    on one printable line."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        good = _good(folder)
        for special in (b"/", b"*", b"?", b"["):  # a folder separator, glob characters (an entry is then a glob)
            name = name.replace(special, b"_")
        raw = os.fsencode(folder) + b"/" + name + b".py"
        if create and b"\0" not in raw:
            try:
                with open(raw, "wb") as f:
                    f.write(b"print('x')\n")
            except OSError:
                pass  # too long, or a name the file system refuses: the entry names a missing file
        entry = os.fsdecode(raw)
        specs, errors = resolve_inputs([entry, str(good)])
        assert good in [s.path for s in specs]
        assert len(specs) + len(errors) == 2 or (len(specs) == 1 and os.path.samefile(raw, good))
        for e in errors:
            assert _one_line(e.message) and _one_line(e.hint or "")
        for s in specs:
            assert clean_text(str(s.path)) is str(s.path) and _one_line(s.entry)


@pytest.mark.parametrize("make, expected", [
    (lambda d: _not_utf8(d), "not valid UTF-8"),
    (lambda d: str(d / ("x" * 300 + ".py")), "longer than the file system allows (255 bytes)"),
    (lambda d: str(_loop(d)), "symbolic link loop"),
    (lambda d: str(d / "a\0b.py"), "NUL character"),
    (lambda d: str(_listing(d, _loop(d).name)), "symbolic link loop"),
    (lambda d: str(d / "*.py") + "::zz\n\x1b", "malformed hash selector"),
], ids=["not-utf8", "too-long", "link-loop", "nul", "loop-in-a-list", "escape-in-selector"])
def test_each_refused_path_is_one_line_error_and_the_good_one_stays(tmp_path, make, expected):
    good = _good(tmp_path)
    specs, errors = resolve_inputs([make(tmp_path), str(good)])
    assert [s.path for s in specs] == [good]
    assert len(errors) == 1 and expected in errors[0].message and _one_line(errors[0].message)


def test_a_glob_keeps_every_match_the_os_accepts(tmp_path):
    """One match that is a link loop or not UTF-8 is one error; the glob's other matches still run."""
    good = _good(tmp_path)
    _loop(tmp_path)
    _not_utf8(tmp_path)
    specs, errors = resolve_inputs([str(tmp_path / "*.py")])
    assert [s.path for s in specs] == [good]
    assert sorted(e.message.split(": ", 1)[1].split(" (")[0] for e in errors) == [
        "symbolic link loop", "symbolic link loop", "the file name is not valid UTF-8"]


def _not_utf8(folder: Path) -> str:
    """A script named ``bad_<0xff><0xfe>.py`` (not UTF-8), as Python hands such a name over."""
    path = os.fsdecode(os.fsencode(folder) + b"/bad_\xff\xfe.py")
    Path(path).write_text("print('x')\n")
    return path


def _loop(folder: Path) -> Path:
    (folder / "loop_a.py").symlink_to(folder / "loop_b.py")
    (folder / "loop_b.py").symlink_to(folder / "loop_a.py")
    return folder / "loop_a.py"


def _listing(folder: Path, entry: str) -> Path:
    path = folder / "list.txt"
    path.write_text(entry + "\n")
    return path


# --------------------------------------------------------------------------------------------------
# a real run
# --------------------------------------------------------------------------------------------------
JIT_SCRIPT = """\
import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


model = Tiny()
traced = torch.jit.trace(model, torch.rand(1, 4))  # tk sees Tiny called while tracing: numel() is a tensor
traced(torch.rand(1, 4))
"""


def test_hostile_inputs_before_a_good_script_never_stop_the_run(tmp_path):
    """A jit-traced model, a script whose name is not UTF-8, a 300-byte name, a symbolic link loop and a
    250-byte name, all before a good script: the run goes on, ``--json`` is written, every build folder
    has a record (``tk cache list`` exits 0), and the traced model's parameter count is a number.

    Before: the traced model's record (a tensor as its parameter count) and each refused path raised
    out of tk (``TypeError: Encoding objects of type Tensor is unsupported``, ``OSError: [Errno 36]``,
    ``RuntimeError: Symlink loop``): no later input ran, no ``--json``, a folder without a record."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "traced.py").write_text(JIT_SCRIPT)
    good = scripts / "good.py"
    good.write_text((EXAMPLES / "hello_world.py").read_text())
    not_utf8 = _not_utf8(scripts)
    long_name = scripts / ("n" * 250 + ".py")  # exists: its build folder name is cut to fit
    long_name.write_text(good.read_text())
    cache, out_json = tmp_path / "cache", tmp_path / "run.json"
    entries = [str(scripts / "traced.py"), not_utf8, str(scripts / ("x" * 300 + ".py")), str(_loop(scripts)),
               str(long_name), str(good)]
    run = run_tk("benchmark", *entries, "--analyze-only", "--hardware", "a100", "--cache-dir", str(cache),
                 "--json", str(out_json))
    assert run.returncode == 1, run.stdout + run.stderr  # three bad inputs; the others ran
    assert "Traceback" not in run.stderr, run.stderr
    report = decode(out_json.read_bytes(), RunReport)
    by_name = {Path(r.path).name: r for r in report.results}
    assert set(by_name) == {"traced.py", long_name.name, "good.py"}
    assert all(r.status.value == "successful" for r in report.results)
    traced = by_name["traced.py"]
    tiny = next(m for m in traced.models if m.class_name == "Tiny")
    assert tiny.params == 4 * 2 + 2 and type(tiny.params) is int
    assert any("params: tensor(10)" in n for n in traced.notes), traced.notes
    errors = "\n".join(report.errors)
    for expected in ("not valid UTF-8", "longer than the file system allows", "symbolic link loop"):
        assert expected in errors
    assert len(report.errors) == 3
    folders = [p for p in cache.iterdir() if (p / ".tk-build").is_file()]
    assert folders and all((p / RECORD_FILE).is_file() for p in folders)
    assert max(len(p.name) for p in folders) <= 160
    listing = run_tk("cache", "list", "--cache-dir", str(cache))
    assert listing.returncode == 0 and "skipped" not in listing.stderr, listing.stdout + listing.stderr
    listed = json.loads(run_tk("cache", "list", "--json", "--cache-dir", str(cache)).stdout)
    assert listed["problems"] == [] and len(listed["builds"]) == len(folders) == 4  # traced.py: Tiny and traced
    assert {Path(b["script"]).name for b in listed["builds"]} == {"traced.py", long_name.name, "good.py"}


GENERATOR_SCRIPT = """\
import torch


class Summer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, xs):
        out = torch.zeros(1, 4)
        for x in xs:
            out = out + self.fc(x)
        return out


model = Summer()
model(torch.rand(1, 4) for _ in range(3))
"""


def test_a_model_called_with_a_generator_is_never_a_zero_mac_success(tmp_path):
    """The script's call consumed the generator: tk cannot replay it, and says so, instead of counting
    the model on an empty generator (before: ``successful`` with 0 MACs, built and benchmarked)."""
    script = tmp_path / "gen.py"
    script.write_text(GENERATOR_SCRIPT)
    out_json = tmp_path / "run.json"
    run_tk("benchmark", str(script), "--analyze-only", "--hardware", "a100", "--cache-dir", str(tmp_path / "c"),
           "--json", str(out_json))
    (result,) = decode(out_json.read_bytes(), RunReport).results
    (model,) = result.models
    stage = model.invocations[0].characterization
    assert stage.status.value in ("skipped", "error") and stage.result is None
    assert "called with a generator as Positional Arg 1: tk cannot replay it" in (stage.reason or stage.error)
    assert any("generator" in n for n in result.notes)
