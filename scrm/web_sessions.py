"""Dashboard sign-ins kept in the store (``web_session``), so that signing out ends them everywhere.

The session cookie is signed (:mod:`scrm.web.dashboard.sessions`) and carries a random session id
(32 url-safe bytes); the store keeps its SHA-256 only, with the username. Every request checks that the
id is one of the user's sessions not ended, in the same single query that reads the user's current
role (:func:`session_principal`), so:

* ``/logout`` ends this session: a copy of the cookie (another browser, a stolen one) is refused from
  then on, before its idle or absolute expiry;
* "sign out everywhere" ends every session of the user (:func:`end_user_sessions`);
* disabling a user ends their access at once, as before.

Ended and expired rows are deleted when their user next signs in (the table stays as small as the
number of live sessions).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa

from scrm.access import Principal
from scrm.models import utcnow
from scrm.models_web import WebSession, WebUser
from scrm.store import Store

__all__ = ["end_session", "end_user_sessions", "session_principal", "start_session"]

session_t = WebSession.__table__  # type: ignore[attr-defined]
user_t = WebUser.__table__  # type: ignore[attr-defined]


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start_session(store: Store, username: str, *, max_age: timedelta) -> str:
    """A new session of ``username``: returns its id (for the cookie only; the store keeps its hash).
    The user's ended sessions and those older than ``max_age`` (the absolute limit) are deleted."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    c = session_t.c
    with store.connect() as conn:
        conn.execute(
            sa.delete(session_t).where(
                c.username == username, sa.or_(c.ended_at.is_not(None), c.created_at < now - max_age)
            )
        )
        conn.execute(sa.insert(session_t).values(sid_hash=_digest(sid), username=username, created_at=now))
    return sid


def end_session(store: Store, sid: str) -> bool:
    """End the session ``sid`` (logout); False when it was unknown or already ended."""
    c = session_t.c
    with store.connect() as conn:
        ended = conn.execute(
            sa.update(session_t)
            .where(c.sid_hash == _digest(sid), c.ended_at.is_(None))
            .values(ended_at=utcnow())
        ).rowcount
    return bool(ended)


def end_user_sessions(store: Store, username: str) -> int:
    """End every open session of ``username`` ("sign out everywhere"); returns how many."""
    c = session_t.c
    with store.connect() as conn:
        ended = conn.execute(
            sa.update(session_t).where(c.username == username, c.ended_at.is_(None)).values(ended_at=utcnow())
        ).rowcount
    return int(ended)


def session_principal(store: Store, username: str, sid: str) -> Principal | None:
    """The principal of ``username`` (their current role) if ``sid`` is one of their sessions, not
    ended, and the user is enabled; None otherwise. One query, by the session's unique hash."""
    if not sid:
        return None
    s, u = session_t.c, user_t.c
    query = (
        sa.select(u.role)
        .join_from(session_t, user_t, u.username == s.username)
        .where(
            s.sid_hash == _digest(sid), s.username == username, s.ended_at.is_(None), u.disabled_at.is_(None)
        )
    )
    with store.connect() as conn:
        role = conn.execute(query).scalar()
    return None if role is None else Principal("user", username, role)
