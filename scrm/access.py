"""Who may do what through the web: API tokens, dashboard users, roles, the login rate limit, the audit log.

Three roles, each allowed what the one before it may do and more:

``viewer``
    reads everything (customers, scores, communities, funnel, campaigns and their reports);
``marketer``
    also creates segments and campaigns, dry-runs, schedules, pauses and runs them, imports purchases;
``admin``
    also manages API tokens and users and reads the audit log.

API tokens are random (``scrm_`` and 32 url-safe bytes) and stored as their SHA-256 only: whoever reads
the database cannot use them. Passwords are hashed with Argon2id (argon2-cffi). Every change made through
the web is written to the audit log by :func:`audit`, in the same transaction as the change when the
caller passes its connection.

>>> allowed("marketer", "write"), allowed("viewer", "write"), allowed("admin", "admin")
(True, False, True)
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection

from scrm.errors import AccessError, ConfigError, LoginThrottled, NotFound, PermissionDenied
from scrm.models import utcnow
from scrm.models_web import ROLES, ApiToken, AuditEntry, LoginFailure, WebUser
from scrm.store import Store

__all__ = [
    "ROLES",
    "Principal",
    "allowed",
    "audit",
    "authenticate_token",
    "check_login",
    "create_token",
    "create_user",
    "issue_token",
    "list_audit",
    "list_tokens",
    "require",
    "revoke_token",
]

Permission = Literal["read", "write", "admin"]
_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "marketer": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}
TOKEN_PREFIX = "scrm_"
token_t = ApiToken.__table__  # type: ignore[attr-defined]
user_t = WebUser.__table__  # type: ignore[attr-defined]
failure_t = LoginFailure.__table__  # type: ignore[attr-defined]
audit_t = AuditEntry.__table__  # type: ignore[attr-defined]
_hasher = PasswordHasher()
# a hash to verify against when the user does not exist, so that the answer takes as long either way
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``kind`` is ``token`` or ``user``; ``name`` goes into the audit log."""

    kind: str
    name: str
    role: str

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


def allowed(role: str, permission: Permission) -> bool:
    """Whether ``role`` has ``permission`` (``read``, ``write`` or ``admin``)."""
    return permission in _PERMISSIONS.get(role, frozenset())


def require(principal: Principal, permission: Permission) -> None:
    """Raise :class:`PermissionDenied` unless the principal's role has ``permission``."""
    if not allowed(principal.role, permission):
        raise PermissionDenied(f"role {principal.role!r} may not do this (needs {permission!r})")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r} (known: {', '.join(ROLES)})")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, name: str, role: str, *, actor: str = "cli") -> str:
    """Create an API token; return it. Only its hash is stored: it cannot be shown again."""
    return str(issue_token(store, name, role, actor=actor)["token"])


def issue_token(store: Store, name: str, role: str, *, actor: str = "cli") -> dict[str, Any]:
    """Create an API token; return its row (id, name, prefix, role, created_at) and ``token``, the
    token itself, which is shown this once (only its hash is stored). ``actor`` goes into the audit log."""
    _check_role(role)
    if not name.strip() or len(name) > 100:
        raise ConfigError("a token name needs 1 to 100 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = {"name": name, "prefix": token[:12], "role": role, "created_at": utcnow()}
    with store.connect() as conn:
        insert = token_t.insert().values(token_hash=_digest(token), **row).returning(token_t.c.id)
        token_id = int(conn.execute(insert).scalar_one())
        audit(conn, actor, "token.create", name, {"id": token_id, "role": role, "prefix": token[:12]})
    return {"id": token_id, **row, "token": token}


def list_tokens(store: Store) -> list[dict[str, Any]]:
    """Every API token (never the token itself): id, name, prefix, role, created, last used, revoked."""
    c = token_t.c
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(c.id, c.name, c.prefix, c.role, c.created_at, c.last_used_at, c.revoked_at).order_by(
                c.id
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def revoke_token(store: Store, token_id: int, *, actor: str = "cli") -> None:
    """Revoke a token: it is refused from now on."""
    with store.connect() as conn:
        done = conn.execute(
            token_t.update()
            .where(token_t.c.id == token_id, token_t.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
        if not done:
            raise NotFound(f"no active API token with id {token_id}")
        audit(conn, actor, "token.revoke", str(token_id), {})


def authenticate_token(store: Store, token: str) -> Principal:
    """The principal of an API token, or :class:`AccessError` when it is unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX):
        raise AccessError("not an scrm API token")
    c = token_t.c
    with store.connect() as conn:
        row = conn.execute(
            sa.select(c.id, c.name, c.role, c.revoked_at, c.last_used_at).where(
                c.token_hash == _digest(token)
            )
        ).first()
        if row is None or row.revoked_at is not None:
            raise AccessError("unknown or revoked API token")
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            conn.execute(token_t.update().where(c.id == row.id).values(last_used_at=now))
    return Principal("token", row.name, row.role)


def create_user(store: Store, username: str, password: str, role: str, *, actor: str = "cli") -> None:
    """Create a dashboard user, or set the password and role of an existing one."""
    _check_role(role)
    if not username or len(username) > 64:
        raise ConfigError("a username needs 1 to 64 characters")
    if len(password) < 8:
        raise ConfigError("a password needs at least 8 characters")
    hashed = _hasher.hash(password)
    with store.connect() as conn:
        updated = conn.execute(
            user_t.update()
            .where(user_t.c.username == username)
            .values(password_hash=hashed, role=role, disabled_at=None)
        ).rowcount
        if not updated:
            conn.execute(
                user_t.insert().values(
                    username=username, password_hash=hashed, role=role, created_at=utcnow()
                )
            )
        audit(conn, actor, "user.update" if updated else "user.create", username, {"role": role})


def check_login(
    store: Store,
    username: str,
    password: str,
    *,
    client: str = "",
    limit: int = 5,
    window: timedelta = timedelta(minutes=15),
    now: datetime | None = None,
) -> Principal:
    """The user's principal if the password is right.

    Raises :class:`LoginThrottled` after ``limit`` failures for the username (or ``4 * limit`` from the
    client address) within ``window``, whatever the password; :class:`AccessError` when the username or
    password is wrong (the same message for both). A failure is recorded; a success clears the user's.
    """
    now = now or utcnow()
    since = now - window
    f = failure_t.c
    with store.connect() as conn:
        by_user = conn.execute(
            sa.select(sa.func.count(), sa.func.min(f.at)).where(f.username == username, f.at > since)
        ).one()
        by_client = (
            conn.execute(sa.select(sa.func.count()).where(f.client == client, f.at > since)).scalar_one()
            if client
            else 0
        )
        if by_user[0] >= limit or by_client >= 4 * limit:
            oldest = by_user[1] or now
            wait = max(1, int((oldest + window - now).total_seconds()) + 1)
            raise LoginThrottled("too many failed logins: try again later", retry_after=wait)
        row = conn.execute(
            sa.select(user_t.c.password_hash, user_t.c.role, user_t.c.disabled_at).where(
                user_t.c.username == username
            )
        ).first()
    ok = False
    try:
        ok = _hasher.verify(row.password_hash if row else _DUMMY_HASH, password) and row is not None
    except (VerificationError, InvalidHashError):
        ok = False
    failed = not ok or row is None or row.disabled_at is not None
    with store.connect() as conn:  # committed before the error is raised
        if failed:
            conn.execute(failure_t.insert().values(username=username[:64], client=client[:64], at=now))
        else:
            conn.execute(failure_t.delete().where(f.username == username))
    if failed or row is None:
        raise AccessError("wrong username or password")
    return Principal("user", username, row.role)


def audit(conn: Connection, actor: str, action: str, target: str = "", detail: Any = None) -> None:
    """Record one change in the audit log (in the caller's transaction)."""
    conn.execute(
        audit_t.insert().values(
            at=utcnow(),
            actor=actor[:120],
            action=action[:64],
            target=str(target)[:200],
            detail=json.dumps(detail or {}, ensure_ascii=False, default=str),
        )
    )


def list_audit(
    store: Store,
    *,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """(entries matching, one page of them, newest first) of the audit log; ``action`` matches an
    action (``token.create``) or its prefix with a dot (``token.``), ``actor`` and ``target`` exactly."""
    c = audit_t.c
    where = []
    if action:
        where.append(
            c.action.startswith(action, autoescape=True) if action.endswith(".") else c.action == action
        )
    if actor:
        where.append(c.actor == actor)
    if target:
        where.append(c.target == target)
    with store.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(audit_t).where(*where)).scalar_one()
        rows = conn.execute(
            sa.select(audit_t).where(*where).order_by(c.id.desc()).limit(limit).offset(offset)
        ).all()
    return int(total), [{**r._mapping, "detail": json.loads(r.detail)} for r in rows]
