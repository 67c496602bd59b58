"""Access: API tokens (hashed, revocable), dashboard users (Argon2id), the login rate limit, the audit log."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from scrm import access
from scrm.errors import AccessError, ConfigError, LoginThrottled, NotFound, PermissionDenied
from scrm.models import utcnow
from scrm.models_web import ApiToken, AuditEntry, WebUser
from scrm.store import Store

token_t = ApiToken.__table__  # type: ignore[attr-defined]
audit_t = AuditEntry.__table__  # type: ignore[attr-defined]
user_t = WebUser.__table__  # type: ignore[attr-defined]


def test_a_token_authenticates_with_its_role_and_only_its_hash_is_stored(store: Store) -> None:
    token = access.create_token(store, "ci bot", "marketer")
    principal = access.authenticate_token(store, token)
    assert principal == access.Principal("token", "ci bot", "marketer")
    with store.connect() as conn:
        row = conn.execute(sa.select(token_t)).one()
        audit_rows = conn.execute(sa.select(audit_t.c.action, audit_t.c.detail)).all()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps([str(v) for v in row]) and row.last_used_at is not None
    assert [a.action for a in audit_rows] == ["token.create"]
    assert token not in audit_rows[0].detail  # the audit log names the prefix, never the token


def test_unknown_forged_and_revoked_tokens_are_refused(store: Store) -> None:
    token = access.create_token(store, "t", "viewer")
    for bad in ["", "Bearer", "scrm_" + "x" * 43, token[:-1], "not-a-token"]:
        with pytest.raises(AccessError):
            access.authenticate_token(store, bad)
    [listed] = access.list_tokens(store)
    assert listed["prefix"] == token[:12] and "token_hash" not in listed
    access.revoke_token(store, listed["id"])
    with pytest.raises(AccessError, match="revoked"):
        access.authenticate_token(store, token)
    with pytest.raises(NotFound):
        access.revoke_token(store, listed["id"])  # already revoked


def test_roles_nest_and_unknown_roles_are_refused(store: Store) -> None:
    viewer = access.Principal("token", "v", "viewer")
    access.require(viewer, "read")
    with pytest.raises(PermissionDenied, match="viewer"):
        access.require(viewer, "write")
    with pytest.raises(PermissionDenied):
        access.require(access.Principal("user", "m", "marketer"), "admin")
    access.require(access.Principal("user", "a", "admin"), "admin")
    with pytest.raises(ConfigError, match="unknown role"):
        access.create_token(store, "t", "root")


def test_login_checks_the_argon2_hash(store: Store) -> None:
    access.create_user(store, "li", "correct horse", "marketer")
    with store.connect() as conn:
        stored = conn.execute(sa.select(user_t.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert access.check_login(store, "li", "correct horse").role == "marketer"
    with pytest.raises(AccessError, match="wrong username or password"):
        access.check_login(store, "li", "wrong horse")
    with pytest.raises(AccessError, match="wrong username or password"):
        access.check_login(store, "nobody", "correct horse")
    with pytest.raises(ConfigError, match="8 characters"):
        access.create_user(store, "wang", "short", "viewer")


def test_logins_are_throttled_after_repeated_failures_then_allowed_again(store: Store) -> None:
    access.create_user(store, "li", "correct horse", "viewer")
    now = utcnow()
    for _ in range(5):
        with pytest.raises(AccessError):
            access.check_login(store, "li", "guess", client="10.0.0.9", now=now)
    with pytest.raises(LoginThrottled) as throttled:  # even the right password waits
        access.check_login(store, "li", "correct horse", client="10.0.0.9", now=now)
    assert 0 < throttled.value.retry_after <= 15 * 60 + 1
    later = now + timedelta(minutes=16)
    assert access.check_login(store, "li", "correct horse", now=later).name == "li"


def test_audit_rows_say_who_did_what(store: Store) -> None:
    access.create_user(store, "li", "correct horse", "viewer")
    access.create_user(store, "li", "another horse", "admin", actor="user:boss")
    with store.connect() as conn:
        rows = conn.execute(sa.select(audit_t).order_by(audit_t.c.id)).all()
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("cli", "user.create", "li"),
        ("user:boss", "user.update", "li"),
    ]
    assert json.loads(rows[1].detail) == {"role": "admin"}
