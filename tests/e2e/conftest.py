"""Fixtures of the end-to-end tests: headless Chromium (Debian's, driven by Playwright) and a served world.

The browser is the system's ``chromium`` (``SCRM_CHROMIUM`` names another executable); Playwright's own
browser downloads are never used. When it is missing the browser tests are skipped with the reason,
unless ``SCRM_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which makes that a failure.

``dashboard`` is :func:`tests.web.conftest.web_world` (a synced, imported, scored store served by the
whole web app, per module and backend) with a dashboard user per role; ``page`` is a fresh browser page
(1280x800) that refuses, and records, every request leaving 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from scrm.access import create_user
from tests.web.conftest import web_world
from tests.web.world import WebWorld

__all__ = ["web_world"]

REQUIRE_BROWSER = os.environ.get("SCRM_REQUIRE_BROWSER") == "1"
PASSWORDS = {"admin": "admin-pass-e2e-1", "marketer": "marketer-pass-e2e-1", "viewer": "viewer-pass-e2e-1"}
LOCAL_HOSTS = {"127.0.0.1"}


@dataclass
class Dashboard:
    """A served world and the dashboard users made for it (``e2e-<role>``, passwords in PASSWORDS)."""

    world: WebWorld
    backend: str

    @property
    def url(self) -> str:
        return self.world.server_url

    @staticmethod
    def user(role: str) -> tuple[str, str]:
        return f"e2e-{role}", PASSWORDS[role]


@dataclass
class Offsite:
    """Requests the page tried to send outside 127.0.0.1 (each was refused), and every URL it asked for."""

    urls: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    def none_left_local(self) -> bool:
        """True when nothing was sent outside 127.0.0.1 (and something was sent at all)."""
        local = all(_local(url) for url in self.seen)
        return bool(self.seen) and local and not self.urls


def _local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in ("http", "https", "ws", "wss") or parts.hostname in LOCAL_HOSTS


def _chromium() -> str | None:
    named = os.environ.get("SCRM_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _chromium()
    if path is None:
        reason = "no chromium executable (apt-get install chromium, or set SCRM_CHROMIUM)"
        if REQUIRE_BROWSER:
            pytest.fail(f"{reason}; SCRM_REQUIRE_BROWSER=1 requires it", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    """Headless Chromium for the session (Playwright's sync API)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def dashboard(web_world: WebWorld, request: pytest.FixtureRequest) -> Dashboard:
    """The module's served world with a dashboard user per role."""
    for role in PASSWORDS:
        name, password = Dashboard.user(role)
        create_user(web_world.store, name, password, role)
    backend = "sqlite" if web_world.store.dialect == "sqlite" else "postgresql"
    return Dashboard(web_world, backend)


@pytest.fixture
def offsite() -> Offsite:
    return Offsite()


@pytest.fixture
def page(browser: Browser, offsite: Offsite) -> Iterator[Page]:
    """A new page at 1280x800 whose requests outside 127.0.0.1 are refused and recorded in ``offsite``."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")

    def guard(route: Route) -> None:
        if _local(route.request.url):
            route.continue_()
        else:
            offsite.urls.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    new_page = context.new_page()
    new_page.on("request", lambda request: offsite.seen.append(request.url))
    new_page.set_default_timeout(15_000)
    try:
        yield new_page
    finally:
        context.close()
