"""Shared pytest configuration.

``pytest --overwrite`` regenerates golden outputs (tests/golden/*.txt) instead of comparing with them,
torchinfo-style; review the diff before committing.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"

# The Ctrl-C tests send SIGINT to a tk started as a terminal starts it, with SIGINT at its default.
# A test run started in the background (`nohup ... &`, `&` in a non-interactive shell) begins with
# SIGINT ignored, and every child would inherit that and ignore the test's Ctrl-C. A Python handler,
# unlike SIG_IGN, is reset to the default in an exec'd child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser):
    parser.addoption(
        "--overwrite",
        action="store_true",
        default=False,
        help="rewrite golden output files under tests/golden instead of comparing with them",
    )


_PRINTED_TENSOR = re.compile(r"tensor\(\[[-+0-9.e,\s\[\]]*\]")


def without_tensor_values(text: str) -> str:
    """``text`` with the values of every printed tensor replaced by ``...``.

    A script's ``print(tensor)`` shows float values rounded to 4 digits, and the last digit depends
    on the CPU (another vector width sums in another order: ``0.0022`` against ``0.0021``). Golden
    files keep where a tensor was printed, not its values.
    """
    return _PRINTED_TENSOR.sub("tensor([...]", text)


@pytest.fixture
def golden(request):
    """Return ``check(name, text)``: compare ``text`` with ``tests/golden/<name>`` (or write it with --overwrite).

    Printed tensor values are left out of both (:func:`without_tensor_values`)."""
    overwrite = request.config.getoption("--overwrite")

    def check(name: str, text: str) -> None:
        text = without_tensor_values(text)
        path = GOLDEN_DIR / name
        if overwrite or not path.exists():
            if not overwrite:
                pytest.fail(f"golden file {path} is missing; run pytest --overwrite to create it")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        expected = without_tensor_values(path.read_text(encoding="utf-8"))
        assert text == expected, f"output differs from {path}; run pytest --overwrite to regenerate"

    return check


REPO = Path(__file__).resolve().parent.parent


def assert_same_record(a, b, where: str, *, skip: tuple[str, ...] = ()):
    """Every field of two records equal, recursively, but those named in ``skip`` (at any depth);
    floats (roofline times, intensities) to 1e-12 relative, everything else exactly."""
    import msgspec

    if isinstance(a, msgspec.Struct):
        assert type(a) is type(b), where
        for name in a.__struct_fields__:
            if name not in skip:
                assert_same_record(getattr(a, name), getattr(b, name), f"{where}.{name}", skip=skip)
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_record(x, y, f"{where}[{i}]", skip=skip)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-12, abs=0), where
    else:
        assert a == b, where
EXAMPLES = REPO / "examples" / "scripts"


def run_tk(*args: str, cwd: Path | None = None, timeout: float = 900, env: dict | None = None):
    """Run the real ``tk`` CLI (``python -m turnkey_like``) in a child process; return the
    ``subprocess.CompletedProcess`` (text stdout/stderr)."""
    import os
    import subprocess
    import sys

    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "turnkey_like", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


# pytest-xdist's workers run with COLUMNS=80 and LINES=24 in their environment, which the tk processes
# the tests start inherit: their tables would wrap at 80 columns where a plain ``pytest`` run (no
# terminal: tk's default width, 200) does not. Tests that want a width give COLUMNS themselves.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


def shared_folder(tmp_path_factory, name: str, build) -> tuple[Path, str]:
    """A folder built once per test session and shared by every pytest-xdist worker: the first to
    ask runs ``build(folder)`` (which returns a short text, kept beside it) under a file lock, the
    others wait for it and read it back. Returns ``(folder, text)``."""
    import shutil

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, above each worker's own
    folder, ready = base / name, base / f"{name}.ready"
    with FileLock(str(base / f"{name}.lock")):
        if not ready.exists():
            shutil.rmtree(folder, ignore_errors=True)
            ready.write_text(build(folder))
    return folder, ready.read_text()


def _build_real_cache(cache: Path) -> str:
    out = run_tk("benchmark", str(EXAMPLES / "hello_world.py"), str(EXAMPLES / "two_models.py"),
                 "--iterations", "5", "--cache-dir", str(cache))
    assert out.returncode == 0, f"tk benchmark failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return ""


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory):
    """A cache written by a real run: ``tk benchmark`` on the tutorial scripts ``hello_world.py`` and
    ``two_models.py`` (characterized, built to ONNX and benchmarked on ORT CPU, 5 iterations).

    Yields the cache folder. Tests must treat it as read-only (copy it to change it): it is shared
    by the whole session (every worker), and the session ends with an error naming any build a
    test added to it.
    """
    cache, _ = shared_folder(tmp_path_factory, "real_cache", _build_real_cache)
    before = sorted(p.name for p in cache.iterdir() if not p.name.startswith(".tk-index"))
    yield cache
    after = sorted(p.name for p in cache.iterdir() if not p.name.startswith(".tk-index"))
    assert after == before, f"a test wrote into the shared real_cache (copy it first): {set(after) ^ set(before)}"
