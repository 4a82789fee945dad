"""Shared pytest configuration.

``pytest --overwrite`` regenerates golden outputs (tests/golden/*.txt) instead of comparing with them,
torchinfo-style; review the diff before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"


def pytest_addoption(parser):
    parser.addoption(
        "--overwrite",
        action="store_true",
        default=False,
        help="rewrite golden output files under tests/golden instead of comparing with them",
    )


@pytest.fixture
def golden(request):
    """Return ``check(name, text)``: compare ``text`` with ``tests/golden/<name>`` (or write it with --overwrite)."""
    overwrite = request.config.getoption("--overwrite")

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if overwrite or not path.exists():
            if not overwrite:
                pytest.fail(f"golden file {path} is missing; run pytest --overwrite to create it")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"output differs from {path}; run pytest --overwrite to regenerate"

    return check
