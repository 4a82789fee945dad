"""Headless Chromium for tests: Debian's ``/usr/bin/chromium`` driven by Python playwright, offline.

Playwright's own browser downloads fail here, so the Debian package (``apt-get install chromium``,
done by ``.ci/run``) is launched by path, with ``--no-sandbox`` because CI runs as root. Every request
that leaves the machine (anything but ``file:``, ``data:``, ``blob:``, ``about:`` and
``http://127.0.0.1`` / ``localhost``) is aborted and recorded, so a page that needs the network shows
it. Tests skip when chromium or playwright is missing.

    with browser_page() as session:
        session.page.goto(url)
        assert not session.errors, session.errors
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
LOCAL_SCHEMES = {"file", "data", "blob", "about"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class BrowserSession:
    """An open page and what it reported.

    Attributes:
        page: the playwright ``Page``.
        errors: console messages of type ``error`` and uncaught page errors, in order, except the
            "failed to load" messages of blocked requests (those are in ``blocked``).
        blocked: URLs of the requests that would have left the machine (aborted).
    """

    page: object
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


def is_local(url: str) -> bool:
    """True for URLs that stay on this machine (see the module docstring)."""
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or (parsed.hostname or "") in LOCAL_HOSTS


def require_chromium() -> None:
    """Skip the calling test when Debian's chromium or python playwright is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 900):
    """Yield a :class:`BrowserSession` on a fresh headless Chromium page, offline; close it after."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            session = BrowserSession(page)

            def route(r):
                if is_local(r.request.url):
                    r.continue_()
                else:
                    session.blocked.append(r.request.url)
                    r.abort()

            def console(message):
                if message.type == "error" and not (session.blocked and "net::ERR_FAILED" in message.text):
                    session.errors.append(message.text)

            page.route("**/*", route)
            page.on("console", console)
            page.on("pageerror", lambda exc: session.errors.append(str(exc)))
            yield session
        finally:
            browser.close()
