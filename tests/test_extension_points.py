"""Each extension point is one module plus one registry line (docs/architecture.md, "Where to add
..."), and these tests fail when a registered piece is missing from what users see. Model sources
have theirs in tests/test_zoo.py (the protocol, ``tk version``, ``--source``, ``--model``
suggestions); op formulas in tests/test_ops_registry.py (one registration per op, a formula
registered at run time is used by the next count)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from turnkey_like.cli import build_parser, main
from turnkey_like.cli.options import measured_runtime, parse_profile
from turnkey_like.runtimes import RUNTIMES, Runtime, runtime_class

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_every_registered_runtime_is_a_runtime_and_can_be_chosen(name):
    cls = runtime_class(name)
    assert issubclass(cls, Runtime)
    for method in ("prepare_inputs", "run"):
        assert callable(getattr(cls, method, None)), (name, method)
    args = build_parser().parse_args(["benchmark", "x.py", "--runtime", name])
    assert args.runtime == name  # `tk benchmark --runtime` offers it
    assert measured_runtime(name) == name  # the views' --runtime picks its runs


def test_every_builtin_hardware_profile_names_its_sources_and_is_listed():
    from turnkey_like.characterize.hardware import BUILTIN, list_profiles

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["hardware", "list"]) == 0
    listing = out.getvalue()
    for name, profile in BUILTIN.items():
        assert name in list_profiles() and name in listing
        assert profile.url.startswith("https://"), name
        assert profile.peak_flops.get("float32") and profile.memory_bandwidth > 0, name
        assert "memory_bandwidth" in profile.sources and any(k.startswith("peak_flops") for k in profile.sources), name


@pytest.mark.parametrize("module", ["graph", "roofline_plot"])
def test_every_picture_format_is_accepted_and_documented(module, tmp_path):
    import importlib

    formats = importlib.import_module(f"turnkey_like.views.{module}").FORMATS
    flag = "--visualize" if module == "graph" else "--roofline"
    views_doc = (DOCS / "views.md").read_text()
    for extension, fmt in formats.items():
        if fmt != "dot" and module == "graph" and __import__("shutil").which("dot") is None:
            continue  # without Graphviz these are refused before the run, by design
        target = tmp_path / f"picture{extension}"
        command = parse_profile(build_parser().parse_args(["profile", "x.py", flag, str(target)]))
        written = command.output.visualize if module == "graph" else command.output.roofline
        assert written is not None and str(written).endswith(extension)
        assert extension in views_doc, f"docs/views.md does not mention {extension} for {flag}"
