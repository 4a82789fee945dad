"""The house's structure as tests: imports only go down the layers written in ``pyproject.toml``
(import-linter's ``layers`` contract, imports inside functions included), no package has an import
cycle between its files (``acyclic_siblings``), every module is placed in a layer, and no module or
function outgrows the size limits (docs/architecture.md)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "turnkey_like"
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 100
#: The formula table: one short function per op family, many families (docs/architecture.md).
SIZE_EXCEPTIONS = {"turnkey_like/characterize/ops.py"}

pytest.importorskip("importlinter")


def _lint(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the package under ``root`` with ``root/pyproject.toml``'s contracts."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)


def _layers() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in config if c["type"] == "layers")["layers"]


def test_imports_go_down_the_layers_and_no_package_has_a_cycle():
    out = _lint(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_every_module_has_a_layer():
    placed = {name.strip() for layer in _layers() for name in layer.replace(":", "|").split("|")}
    modules = {f"turnkey_like.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    packages = {f"turnkey_like.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    assert modules | packages == placed, (sorted((modules | packages) - placed), sorted(placed - modules - packages))


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract bites: a copy of the package whose records import the CLI (inside a function, where
    nothing runs it at import time) fails the check."""
    shutil.copytree(PACKAGE, tmp_path / "turnkey_like", ignore=shutil.ignore_patterns("__pycache__", "*.js"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    codec = tmp_path / "turnkey_like" / "records" / "codec.py"
    codec.write_text(codec.read_text() + "\n\ndef _reach_up():\n    from turnkey_like.cli import main\n    return main\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "turnkey_like.records is not allowed to import turnkey_like.cli" in out.stdout


def test_no_module_or_function_outgrows_the_limits():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel in SIZE_EXCEPTIONS:
            continue
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, too_long
