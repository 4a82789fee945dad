"""Inputs: paths, globs, ::HASH, .txt lists and labels."""

from pathlib import Path

import pytest

from turnkey_like.errors import InputError
from turnkey_like.inputs import labels_match, parse_label_filters, parse_labels_pragma, resolve_inputs


def _script(folder: Path, name: str, first_line: str = "") -> Path:
    path = folder / name
    path.write_text((first_line + "\n" if first_line else "") + "print('hi')\n")
    return path


def test_paths_globs_and_selectors(tmp_path):
    a = _script(tmp_path, "a.py", "# labels: test_group::a author::me")
    b = _script(tmp_path, "b.py")
    specs, errors = resolve_inputs([str(tmp_path / "*.py"), f"{a}::C69B7DEA,479b1332"])
    assert errors == []
    assert [s.path for s in specs] == [a, b]
    # a is given once without selectors (via the glob): everything stays selected
    assert specs[0].selectors == []
    assert specs[0].labels == {"test_group": ["a"], "author": ["me"]}
    specs, _ = resolve_inputs([f"{a}::c69b7dea", f"{a}::479b1332"])
    assert specs[0].selectors == ["c69b7dea", "479b1332"]


def test_txt_lists_nested_relative_with_comments(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    one = _script(sub, "one.py")
    two = _script(tmp_path, "two.py")
    (sub / "inner.txt").write_text("# a comment\n\none.py::deadbeef\n")
    (tmp_path / "outer.txt").write_text("sub/inner.txt\n  two.py  \n")
    specs, errors = resolve_inputs([str(tmp_path / "outer.txt")])
    assert errors == []
    assert [(s.path, s.selectors) for s in specs] == [(one, ["deadbeef"]), (two, [])]


@pytest.mark.parametrize("make,expected", [
    (lambda d: str(d / "missing.py"), "no such file"),
    (lambda d: str(d / "*.nomatch.py"), "glob matched no file"),
    (lambda d: str(_write(d / "model.pt", "x")), "unsupported file type .pt"),
    (lambda d: str(_write(d / "empty.txt", "# only a comment\n\n")), "input list is empty"),
    (lambda d: str(_write(d / "bad.py", "# labels: test_group:a\n")), "malformed labels token 'test_group:a'"),
    (lambda d: str(_write(d / "ok.py", "")) + "::xyz!", "malformed hash selector"),
])
def test_each_bad_entry_is_one_error_and_the_good_ones_stay(tmp_path, make, expected):
    good = _script(tmp_path, "good.py")
    specs, errors = resolve_inputs([make(tmp_path), str(good)])
    assert [s.path for s in specs] == [good]
    assert len(errors) == 1 and expected in errors[0].message
    assert "\n" not in errors[0].message


def test_self_including_list_is_reported(tmp_path):
    lst = tmp_path / "loop.txt"
    lst.write_text("loop.txt\n")
    specs, errors = resolve_inputs([str(lst)])
    assert specs == [] and "cycle" in errors[0].message


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_labels_pragma_and_filters(tmp_path):
    path = _script(tmp_path, "s.py", "# labels: name::s test_group::a,b author::x")
    labels = parse_labels_pragma(path)
    assert labels == {"name": ["s"], "test_group": ["a", "b"], "author": ["x"]}
    # at least one value of each key must match (TurnkeyML wanted all of the script's values)
    assert labels_match(labels, parse_label_filters(["test_group::a"]))
    assert labels_match(labels, parse_label_filters(["test_group::c,b", "author::x"]))
    assert not labels_match(labels, parse_label_filters(["test_group::a", "author::y"]))
    assert not labels_match({}, parse_label_filters(["test_group::a"]))
    with pytest.raises(InputError):
        parse_label_filters(["test_group"])
