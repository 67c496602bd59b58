"""The dashboard's session: a signed cookie holding who is signed in, when, and the CSRF token.

The cookie (``scrm_session``, HttpOnly, SameSite=Lax, Secure with ``[web] secure_cookies``) is signed
with ``[web] secret_key`` by itsdangerous, so it cannot be forged or altered; it holds no password and
no API token. Every visitor has one: before the login it carries only the CSRF token of the login form.
A login replaces it with a new one (new CSRF token: no session fixation). It expires

* after ``[web] session_minutes`` without a request (*idle*; every request renews it), and
* ``[web] session_max_hours`` after the login, whatever happens (*absolute*).

The cookie also carries the id of the sign-in kept in the store (:mod:`scrm.web_sessions`), checked
on every request with the user's current role (:mod:`scrm.web.dashboard.base`): a user disabled or
given another role is affected at once, and a logout ends the session for every copy of the cookie
(``/logout``: this session; ``/logout/everywhere``: all of the user's sessions).

The secret: ``[web] secret_key`` (better given as ``SCRM_WEB__SECRET_KEY``); when empty one is generated
on first start and kept in ``[web] secret_key_file`` beside the config file, created with mode 0600, so
that every worker process and every restart signs with the same key.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from scrm.config import Settings
from scrm.errors import ConfigError

__all__ = ["COOKIE", "Session", "SessionCodec", "web_secret"]

COOKIE = "scrm_session"
_SALT = "scrm.dashboard.session"
_RENEW_AFTER = 60.0  # seconds: the idle clock is renewed (a new cookie sent) at most once a minute


def web_secret(settings: Settings) -> str:
    """The key that signs session cookies: ``[web] secret_key``, else the one kept in its file."""
    given = settings.web.secret_key.get_secret_value()
    if given:
        return given
    path = Path(settings.web.secret_key_file)
    if not path.is_absolute():
        path = settings.base_dir / path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made before, or by another worker just now
        pass
    except OSError as exc:
        raise ConfigError(
            f"[web] secret_key_file {path} cannot be created ({exc}): set [web] secret_key"
        ) from None
    else:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(48))
    for _ in range(50):  # another worker may be writing it this instant
        key = path.read_text(encoding="ascii").strip()
        if key:
            return key
        time.sleep(0.01)
    raise ConfigError(f"[web] secret_key_file {path} is empty: delete it or set [web] secret_key")


@dataclass(frozen=True)
class Session:
    """One visitor's session: ``user`` is empty before the login; times are unix seconds."""

    csrf: str
    user: str = ""
    issued: float = 0.0  # the login
    seen: float = 0.0  # the latest request
    sid: str = ""  # the session's id in the store (scrm.web_sessions): ended at logout

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(24))

    @classmethod
    def signed_in(cls, user: str, now: float, sid: str) -> Session:
        return cls(csrf=secrets.token_urlsafe(24), user=user, issued=now, seen=now, sid=sid)

    def csrf_ok(self, token: str | None) -> bool:
        """Whether ``token`` (from a form field or the X-CSRF-Token header) is this session's."""
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


class SessionCodec:
    """Reads and writes the signed session cookie, applying the idle and absolute expiry."""

    def __init__(self, settings: Settings) -> None:
        self._serializer = URLSafeSerializer(web_secret(settings), salt=_SALT)
        self.idle = settings.web.session_minutes * 60.0
        self.absolute = settings.web.session_max_hours * 3600.0
        self.secure = settings.web.secure_cookies

    def load(self, cookie: str | None, now: float) -> tuple[Session, str]:
        """The session in ``cookie`` and its state: ``ok``, ``new`` (no valid cookie: a fresh anonymous
        session, to be sent) or ``expired`` (signed out by the idle or absolute limit: anonymous too)."""
        if not cookie:
            return Session.anonymous(), "new"
        try:
            data: Any = self._serializer.loads(cookie)
            session = Session(**data)
        except (BadSignature, TypeError, ValueError):
            return Session.anonymous(), "new"
        if session.user and (now - session.seen > self.idle or now - session.issued > self.absolute):
            return Session.anonymous(), "expired"
        return session, "ok"

    def touch(self, session: Session, now: float) -> Session | None:
        """The session with its idle clock renewed, or None when the cookie need not be sent again."""
        if session.user and now - session.seen >= _RENEW_AFTER:
            return replace(session, seen=now)
        return None

    def dump(self, session: Session) -> str:
        return str(self._serializer.dumps(asdict(session)))

    def cookie_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Response.set_cookie`` (the lifetime is the absolute one)."""
        return {
            "max_age": int(self.absolute),
            "httponly": True,
            "samesite": "lax",
            "secure": self.secure,
            "path": "/",
        }
