"""Signing in and out: ``/login`` (username and password, rate-limited), ``/logout`` (this session)
and ``/logout/everywhere`` (every session of the user, :mod:`scrm.web_sessions`)."""

from __future__ import annotations

import time
from datetime import timedelta

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from scrm import access, web_sessions
from scrm.errors import AccessError, LoginThrottled
from scrm.web.dashboard.base import Ctx, page
from scrm.web.dashboard.sessions import Session

__all__ = ["routes"]


def _local(target: str) -> str:
    """``target`` when it is a path of this site (no open redirect), else the overview.

    Browsers drop tabs and line breaks from addresses and read ``\\`` as ``/``: a target with either,
    or with spaces or control characters, is refused rather than cleaned.

    >>> _local("/leaderboard?page=2"), _local("//evil.example"), _local("/\t/evil.example")
    ('/leaderboard?page=2', '/overview', '/overview')
    """
    if (
        target.startswith("/")
        and not target.startswith("//")
        and not any(c <= " " or c == "\\" for c in target)
    ):
        return target
    return "/overview"


@page(None)
def login(ctx: Ctx) -> Response:
    """The login form (GET) and the login (POST)."""
    target = _local(ctx.field("next"))
    if ctx.request.method == "GET":
        if ctx.user is not None:
            return RedirectResponse(target, status_code=303)
        return ctx.render("login.html", target=target, expired=ctx.field("expired") == "1")
    username = ctx.field("username")[:64]
    password = ctx.form.get("password", "") if ctx.form is not None else ""
    web = ctx.settings.web
    client = ctx.request.client.host if ctx.request.client else ""
    try:
        user = access.check_login(
            ctx.store,
            username,
            password if isinstance(password, str) else "",
            client=client,
            limit=web.login_attempts,
            window=timedelta(minutes=web.login_window_minutes),
        )
    except LoginThrottled as exc:
        minutes = max(1, -(-exc.retry_after // 60))
        ctx.headers["Retry-After"] = str(exc.retry_after)
        message = ctx.gettext("Too many failed logins: try again in %(minutes)s min.", minutes=minutes)
        return ctx.render("login.html", status=429, target=target, error=message, username=username)
    except AccessError:
        message = ctx.gettext("Wrong username or password.")
        return ctx.render("login.html", status=401, target=target, error=message, username=username)
    max_age = timedelta(hours=ctx.settings.web.session_max_hours)
    sid = web_sessions.start_session(ctx.store, user.name, max_age=max_age)
    ctx.new_session = Session.signed_in(user.name, time.time(), sid)
    with ctx.store.connect() as conn:
        access.audit(conn, user.actor, "user.login", user.name, {"client": client})
    return RedirectResponse(target, status_code=303)


@page(None)
def logout(ctx: Ctx) -> Response:
    """End the session, in the store too: a copy of the cookie is refused (POST with the CSRF token)."""
    if ctx.session.sid:
        web_sessions.end_session(ctx.store, ctx.session.sid)
    if ctx.user is not None:
        with ctx.store.connect() as conn:
            access.audit(conn, ctx.user.actor, "user.logout", ctx.user.name)
    ctx.new_session = Session.anonymous()
    return RedirectResponse("/login", status_code=303)


@page("read")
def logout_everywhere(ctx: Ctx) -> Response:
    """End every session of the signed-in user, on every browser (POST with the CSRF token)."""
    assert ctx.user is not None  # page("read"): signed in
    ended = web_sessions.end_user_sessions(ctx.store, ctx.user.name)
    with ctx.store.connect() as conn:
        access.audit(conn, ctx.user.actor, "user.logout_everywhere", ctx.user.name, {"sessions": ended})
    ctx.new_session = Session.anonymous()
    return RedirectResponse("/login", status_code=303)


routes = [
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/logout/everywhere", logout_everywhere, methods=["POST"]),
]
