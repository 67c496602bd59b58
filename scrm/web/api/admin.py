"""Administration: API tokens and the audit log (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from scrm.access import Principal, issue_token, list_audit, list_tokens, revoke_token
from scrm.web.api.deps import Page, PagingDep, StoreDep, admin
from scrm.web.api.models import DB_INT, NO_NUL, Role

__all__ = ["router"]

router = APIRouter(tags=["admin"])


def _filter(description: str) -> Any:
    return Query(min_length=1, max_length=200, pattern=NO_NUL, description=description)


class Token(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the token's first characters, to recognise it")
    role: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]*[^\x00-\x20][^\x00-\x1f]*$")
    role: Role


class CreatedToken(Token):
    token: str = Field(description="the token itself: shown this once, only its hash is stored")


class Revoked(BaseModel):
    id: int
    revoked: bool


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: Any


@router.get("/tokens", response_model=Page[Token], summary="API tokens (never the tokens themselves)")
def tokens(store: StoreDep, page: PagingDep, _caller: Annotated[Principal, admin]) -> Any:
    rows = list_tokens(store)
    return page.of(rows)


@router.post("/tokens", response_model=CreatedToken, status_code=201, summary="Create an API token")
def create_token(body: NewToken, store: StoreDep, caller: Annotated[Principal, admin]) -> Any:
    """The answer holds the token, this once; the audit log records who created it."""
    return issue_token(store, body.name, body.role, actor=caller.actor)


@router.delete("/tokens/{token_id}", response_model=Revoked, summary="Revoke an API token")
def revoke(
    token_id: Annotated[int, Path(ge=1, le=DB_INT)], store: StoreDep, caller: Annotated[Principal, admin]
) -> Any:
    """The token is refused from now on (404 when there is no such token or it is already revoked)."""
    revoke_token(store, token_id, actor=caller.actor)
    return {"id": token_id, "revoked": True}


@router.get("/audit", response_model=Page[AuditEntry], summary="The audit log, newest first")
def audit_log(
    store: StoreDep,
    page: PagingDep,
    _caller: Annotated[Principal, admin],
    action: Annotated[str | None, _filter("an action (token.create), or a prefix ending in '.'")] = None,
    actor: Annotated[str | None, _filter("who: token:NAME, user:NAME or cli")] = None,
    target: Annotated[str | None, _filter("what was changed")] = None,
) -> Any:
    """Every change made through the API, the dashboard and the access commands: who, what, when."""
    total, rows = list_audit(
        store, action=action, actor=actor, target=target, limit=page.limit, offset=page.offset
    )
    return {**page.model_dump(), "total": total, "items": rows}
