"""Signing in to the dashboard of a :class:`~tests.web.world.WebWorld` with a real HTTP client."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from scrm.access import create_user
from tests.web.world import WebWorld

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = _CSRF.search(html)
    assert found, "no csrf_token field in the page"
    return found.group(1)


def add_user(world: WebWorld, role: str) -> str:
    """A new user with ``role`` (a fresh name, so module-wide worlds can add as many as they like)."""
    name = f"{role}-{secrets.token_hex(4)}"
    create_user(world.store, name, PASSWORD, role)
    return name


def browser(world: WebWorld, *, lang: str = "en") -> httpx.Client:
    """A client on the dashboard (no redirects followed, so tests see them) keeping cookies."""
    return httpx.Client(
        base_url=world.server_url, follow_redirects=False, timeout=30.0, headers={"Accept-Language": lang}
    )


def login(
    client: httpx.Client, username: str, password: str = PASSWORD, *, next_page: str | None = None
) -> httpx.Response:
    """Fetch the login form and post it (asking for ``next_page`` after it); the answer (303 on success)."""
    form = client.get("/login")
    assert form.status_code == 200, form.text
    data = {"username": username, "password": password, "csrf_token": csrf_of(form.text)}
    if next_page is not None:
        data["next"] = next_page
    return client.post("/login", data=data)


@contextmanager
def signed_in(world: WebWorld, role: str, *, lang: str = "en") -> Iterator[httpx.Client]:
    """A client signed in as a new user with ``role``."""
    with browser(world, lang=lang) as client:
        answer = login(client, add_user(world, role))
        assert answer.status_code == 303, answer.text
        yield client
