"""Tables written through the web API and the dashboard.

Access: :class:`ApiToken` (an API token, stored as its SHA-256 only, with a role), :class:`WebUser` (a
dashboard login, its password hashed with Argon2id), :class:`WebSession` (a dashboard sign-in, ended at
logout), :class:`LoginFailure` (failed logins, for the rate
limit) and :class:`AuditEntry` (who changed what, when). Definitions saved from the web:
:class:`SavedSegment` and :class:`SavedCampaign` (a campaign file's content, validated like one), and
:class:`CampaignState` (a campaign paused from the web, whichever source defines it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from scrm.models import _time

__all__ = [
    "ApiToken",
    "AuditEntry",
    "CampaignState",
    "LoginFailure",
    "SavedCampaign",
    "SavedSegment",
    "WebSession",
    "WebUser",
]

ROLES = ("admin", "marketer", "viewer")


def _text(default: str = "") -> Any:
    return Field(default=default, sa_column=sa.Column(sa.Text, nullable=False, default=default))


class ApiToken(SQLModel, table=True):
    """An API token: ``prefix`` (its first characters, shown in lists) and the SHA-256 of the whole."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    created_at: datetime = _time(default=True)
    last_used_at: datetime | None = _time(nullable=True)
    revoked_at: datetime | None = _time(nullable=True)


class WebUser(SQLModel, table=True):
    """A dashboard user: a username, an Argon2id password hash and a role."""

    __tablename__ = "web_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)
    created_at: datetime = _time(default=True)
    disabled_at: datetime | None = _time(nullable=True)


class WebSession(SQLModel, table=True):
    """A dashboard sign-in: the session cookie carries a random id, the store keeps its SHA-256 only.

    ``ended_at`` is set at logout (or by "sign out everywhere"): a copy of the cookie is refused from
    then on, even before it expires.
    """

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    sid_hash: str = Field(max_length=64, unique=True)
    username: str = Field(max_length=64, index=True)
    created_at: datetime = _time(default=True)
    ended_at: datetime | None = _time(nullable=True)


class LoginFailure(SQLModel, table=True):
    """One failed login (by username and client address), counted by the login rate limit."""

    __tablename__ = "login_failure"
    __table_args__ = (sa.Index("ix_login_failure_username_at", "username", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    client: str = Field(default="", max_length=64)
    at: datetime = _time(default=True)


class AuditEntry(SQLModel, table=True):
    """One change made through the API or the dashboard: who (``actor``), what, when, and its details."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _time(default=True, index=True)
    actor: str = Field(max_length=120)
    action: str = Field(max_length=64, index=True)
    target: str = Field(default="", max_length=200)
    detail: str = _text("{}")


class SavedSegment(SQLModel, table=True):
    """A segment saved from the web: ``definition`` is its JSON (``{"description", "where"}``)."""

    __tablename__ = "saved_segment"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    definition: str = _text("{}")
    created_by: str = Field(default="", max_length=120)
    created_at: datetime = _time(default=True)
    updated_at: datetime = _time(default=True)


class SavedCampaign(SQLModel, table=True):
    """A campaign saved from the web: ``definition`` is the JSON of a campaign file (``campaign``,
    ``audience``), validated by the same parser as the files of ``campaigns.d/``."""

    __tablename__ = "saved_campaign"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    definition: str = _text("{}")
    created_by: str = Field(default="", max_length=120)
    created_at: datetime = _time(default=True)
    updated_at: datetime = _time(default=True)


class CampaignState(SQLModel, table=True):
    """A campaign's switch: ``paused`` stops its schedule, its triggers and the sending of its runs."""

    __tablename__ = "campaign_state"

    campaign: str = Field(max_length=100, primary_key=True)
    paused: bool = Field(default=False)
    changed_by: str = Field(default="", max_length=120)
    changed_at: datetime = _time(default=True)
