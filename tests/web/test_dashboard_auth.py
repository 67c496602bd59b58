"""Dashboard login, sessions and CSRF, through HTTP against the served app (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import re
import stat
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from scrm.access import create_user
from scrm.config import load_settings
from scrm.models import utcnow
from scrm.models_web import WebUser
from scrm.web.dashboard.sessions import COOKIE, Session, SessionCodec, web_secret
from scrm.web_sessions import start_session
from tests.web.dashboard_env import PASSWORD, add_user, browser, csrf_of, login, signed_in
from tests.web.world import WebWorld


def test_a_page_without_a_session_redirects_to_the_login(web_world: WebWorld) -> None:
    with browser(web_world) as client:
        for path in ("/overview", "/leaderboard", "/customers/1", "/campaigns", "/communities/map.json"):
            answer = client.get(path)
            assert answer.status_code == 303, path
            target = urlsplit(answer.headers["location"])
            assert target.path == "/login" and parse_qs(target.query)["next"] == [path]
        answer = client.get("/leaderboard", params={"by": "clv", "page": "2"})  # back to the same page
        assert parse_qs(urlsplit(answer.headers["location"]).query)["next"] == ["/leaderboard?by=clv&page=2"]
        htmx = client.get("/leaderboard/explain/1", headers={"HX-Request": "true"})
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login?")
        page = f"{web_world.server_url}/leaderboard?page=2"
        htmx = client.get("/leaderboard/explain/1", headers={"HX-Request": "true", "HX-Current-URL": page})
        assert parse_qs(urlsplit(htmx.headers["HX-Redirect"]).query)["next"] == ["/leaderboard"]
        assert client.get("/").headers["location"] == "/overview"


def test_login_with_the_right_password_opens_the_page_asked_for(web_world: WebWorld) -> None:
    name = add_user(web_world, "viewer")
    with browser(web_world) as client:
        client.get("/login")
        cookie = client.cookies[COOKIE]
        answer = login(client, name, next_page="/funnel")
        assert answer.status_code == 303 and answer.headers["location"] == "/funnel"
        set_cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "samesite=lax" in set_cookie.lower()
        assert client.cookies[COOKIE] != cookie  # a new session at login: no fixation
        page = client.get("/funnel")
        assert page.status_code == 200 and name in page.text
        assert web_world.count("audit_log", "WHERE action = 'user.login' AND target = :u", u=name) == 1
        client.cookies.clear()  # an address of another site is not followed after the login
        for elsewhere in ("//evil.example/x", "/\t/evil.example", "/\\evil.example", "https://evil.example/"):
            client.cookies.clear()
            assert login(client, name, next_page=elsewhere).headers["location"] == "/overview", elsewhere


def test_a_wrong_password_is_refused_and_counted(web_world: WebWorld) -> None:
    name = add_user(web_world, "marketer")
    with browser(web_world) as client:
        answer = login(client, name, "not the password")
        assert answer.status_code == 401
        assert "Wrong username or password." in answer.text and COOKIE in client.cookies
        assert client.get("/overview").status_code == 303  # still signed out
        unknown = login(client, "nobody-" + name, PASSWORD)
        assert unknown.status_code == 401 and "Wrong username or password." in unknown.text
    assert web_world.count("login_failure", "WHERE username = :u", u=name) == 1


def test_too_many_failures_throttle_the_username_with_the_wait_in_minutes(web_world: WebWorld) -> None:
    name = add_user(web_world, "viewer")
    limit = web_world.settings.web.login_attempts
    with browser(web_world, lang="zh-CN") as client:
        for _ in range(limit):
            assert login(client, name, "wrong password!").status_code == 401
        answer = login(client, name)  # even the right password, now
        assert answer.status_code == 429
        wait = int(answer.headers["Retry-After"])
        assert 0 < wait <= web_world.settings.web.login_window_minutes * 60 + 1
        assert f"请在 {-(-wait // 60)} 分钟后重试" in answer.text
        assert client.get("/overview").status_code == 303


def test_logout_ends_the_session_and_needs_the_csrf_token(web_world: WebWorld) -> None:
    with signed_in(web_world, "viewer") as client:
        page = client.get("/overview")
        assert client.post("/logout").status_code == 403  # no token: refused, still signed in
        assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
        assert client.get("/overview").status_code == 200
        answer = client.post("/logout", data={"csrf_token": csrf_of(page.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        assert client.get("/overview").status_code == 303
    assert web_world.count("audit_log", "WHERE action = 'user.logout'") >= 1


def _copy(client: httpx.Client, world: WebWorld) -> httpx.Client:
    """Another browser holding a copy of ``client``'s session cookie."""
    other = browser(world)
    _set(other, world, client.cookies[COOKIE])
    return other


def test_a_copied_cookie_is_refused_after_the_logout(web_world: WebWorld) -> None:
    with signed_in(web_world, "admin") as client, _copy(client, web_world) as thief:
        assert thief.get("/overview").status_code == 200  # the copy works while the session lives
        page = client.get("/overview")
        assert client.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
        answer = thief.get("/overview")
        assert answer.status_code == 303 and "expired=1" in answer.headers["location"]
        assert thief.get("/customers").status_code == 303  # and stays refused
        assert login(client, client_user(page.text)).status_code == 303  # a new login: a new session
        assert client.get("/overview").status_code == 200 and thief.get("/overview").status_code == 303


def client_user(html: str) -> str:
    found = re.search(r'data-testid="current-user">([^ <]+) ', html)
    assert found
    return found.group(1)


def test_sign_out_everywhere_ends_every_session_of_the_user_only(web_world: WebWorld) -> None:
    name = add_user(web_world, "viewer")
    with browser(web_world) as laptop, browser(web_world) as phone, signed_in(web_world, "viewer") as other:
        assert login(laptop, name).status_code == 303 and login(phone, name).status_code == 303
        page = laptop.get("/overview")
        assert 'data-testid="logout-everywhere"' in page.text and phone.get("/overview").status_code == 200
        assert laptop.post("/logout/everywhere").status_code == 403  # the CSRF token is needed
        answer = laptop.post("/logout/everywhere", data={"csrf_token": csrf_of(page.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        assert laptop.get("/overview").status_code == 303 and phone.get("/overview").status_code == 303
        assert other.get("/overview").status_code == 200  # another user's session goes on
    audit = "WHERE action = 'user.logout_everywhere' AND target = :u"
    assert web_world.count("audit_log", audit, u=name) == 1


def test_sessions_are_stored_as_hashes_and_pruned_at_the_next_login(web_world: WebWorld) -> None:
    name = add_user(web_world, "viewer")
    with browser(web_world) as client:
        for _ in range(3):
            assert login(client, name).status_code == 303
            page = client.get("/overview")
            assert client.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
        assert login(client, name).status_code == 303
        sid = SessionCodec(web_world.settings).load(client.cookies[COOKIE], time.time())[0].sid
    assert web_world.count("web_session", "WHERE username = :u", u=name) == 1  # the ended ones went
    assert web_world.count("web_session", "WHERE sid_hash = :s", s=sid) == 0  # never the id itself
    digest = hashlib.sha256(sid.encode()).hexdigest()
    assert web_world.count("web_session", "WHERE sid_hash = :s AND ended_at IS NULL", s=digest) == 1


def test_a_login_post_without_the_form_token_is_refused(web_world: WebWorld) -> None:
    name = add_user(web_world, "admin")
    with browser(web_world) as client:
        answer = client.post("/login", data={"username": name, "password": PASSWORD})
        assert answer.status_code == 403
        assert "reload the page" in answer.text
        assert client.get("/overview").status_code == 303


def _sid(world: WebWorld, name: str) -> str:
    return start_session(world.store, name, max_age=timedelta(hours=world.settings.web.session_max_hours))


def _cookie(world: WebWorld, session: Session) -> str:
    return SessionCodec(world.settings).dump(session)


def _set(client: httpx.Client, world: WebWorld, value: str) -> None:
    """Put a session cookie into the client as the server would (same host, so it replaces it)."""
    client.cookies.set(COOKIE, value, domain=str(urlsplit(world.server_url).hostname))


@pytest.mark.parametrize(
    ("idle_minutes", "age_hours", "signed_in_still"),
    [(5, 1, True), (481, 9, False), (5, 25, False)],
    ids=["fresh", "idle-too-long", "past-the-absolute-limit"],
)
def test_sessions_expire_when_idle_and_after_the_absolute_limit(
    web_world: WebWorld, idle_minutes: int, age_hours: int, signed_in_still: bool
) -> None:
    name = add_user(web_world, "viewer")
    now = time.time()
    session = replace(
        Session.signed_in(name, now - age_hours * 3600, _sid(web_world, name)), seen=now - idle_minutes * 60
    )
    with browser(web_world) as client:
        _set(client, web_world, _cookie(web_world, session))
        answer = client.get("/overview")
        if signed_in_still:
            assert answer.status_code == 200 and name in answer.text
            renewed = SessionCodec(web_world.settings).load(client.cookies[COOKIE], time.time())[0]
            assert renewed.user == name and renewed.seen > session.seen  # the idle clock restarted
        else:
            assert answer.status_code == 303
            assert "expired=1" in answer.headers["location"]
            assert "Your session expired" in client.get(answer.headers["location"]).text


def test_a_forged_or_altered_cookie_is_not_a_session(web_world: WebWorld) -> None:
    name = add_user(web_world, "admin")
    good = _cookie(web_world, Session.signed_in(name, time.time(), _sid(web_world, name)))
    with browser(web_world) as client:
        _set(client, web_world, good[:-2] + ("AA" if not good.endswith("AA") else "BB"))
        assert client.get("/overview").status_code == 303
        _set(client, web_world, "e30.not-signed")
        assert client.get("/overview").status_code == 303
        _set(client, web_world, good)  # the cookie as signed opens the page
        assert client.get("/overview").status_code == 200


def test_a_disabled_user_or_a_new_role_takes_effect_at_once(web_world: WebWorld) -> None:
    name = add_user(web_world, "marketer")
    with browser(web_world) as client:
        assert login(client, name).status_code == 303
        page = client.get("/campaigns/new")
        assert page.status_code == 200
        create_user(web_world.store, name, PASSWORD, "viewer")  # demoted
        answer = client.post("/campaigns/preview", data={"csrf_token": csrf_of(page.text)})
        assert answer.status_code == 403
        users = WebUser.__table__  # type: ignore[attr-defined]
        with web_world.store.connect() as conn:
            conn.execute(users.update().where(users.c.username == name).values(disabled_at=utcnow()))
        assert client.get("/overview").status_code == 303


def test_the_signing_key_is_made_once_beside_the_config_or_taken_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///scrm.db"\n', encoding="utf-8")
    settings = load_settings(config, environ={})
    first = web_secret(settings)
    kept = tmp_path / "scrm-web-secret.key"
    assert kept.read_text(encoding="ascii").strip() == first and len(first) >= 40
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert web_secret(load_settings(config, environ={})) == first  # every worker and restart: the same
    given = load_settings(config, environ={"SCRM_WEB__SECRET_KEY": "from-the-environment-0123456789"})
    assert web_secret(given) == "from-the-environment-0123456789"
    assert "from-the-environment" not in repr(given.web)  # a secret: masked when printed
    token = SessionCodec(given).dump(Session.signed_in("someone", time.time(), "sid"))
    assert SessionCodec(settings).load(token, time.time())[1] == "new"  # another key: not a session


def test_a_dashboard_session_does_not_open_the_api(web_world: WebWorld) -> None:
    """The API takes bearer tokens only: a signed-in browser's cookie (sent on its own, CSRF-prone)
    gets a 401 there, while the same session opens the dashboard's pages."""
    with signed_in(web_world, "admin") as client:
        assert client.get("/leaderboard").status_code == 200
        for method, path in (
            ("GET", "/api/v1/customers"),
            ("GET", "/api/v1/audit"),
            ("POST", "/api/v1/tokens"),
        ):
            answer = client.request(method, path, json={"name": "x", "role": "admin"})
            assert answer.status_code == 401, (method, path)
            assert answer.json()["error"]["code"] == "unauthenticated"
    assert web_world.count("api_token", "WHERE name = :n", n="x") == 0
