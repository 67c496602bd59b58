"""The bot's reply rules ([bot.rules.NAME] of config.toml) and which one answers a message."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from campaigns.bot_preview import rule_rows, try_rules
from scrm.access import Principal
from scrm.web.api.deps import Page, PagingDep, SettingsDep, StoreDep, viewer
from scrm.web.api.models import NO_NUL

__all__ = ["router"]

router = APIRouter(prefix="/rules", tags=["rules"])


class Rule(BaseModel):
    name: str
    match: str
    on: str = Field(description="the keywords, pattern, scene or menu key it matches on")
    reply: str = Field(description="its template, or how many articles it answers with")
    priority: int
    active_hours: str
    timeout_seconds: float


class TryMessage(BaseModel):
    """A message (``text``) or an event (``event``, with the QR code ``scene`` or the menu ``key``)."""

    text: str = Field("", max_length=2048, pattern=NO_NUL)
    event: Literal["subscribe", "scan", "click", "unsubscribe"] | None = None
    scene: str = Field("", max_length=128, pattern=NO_NUL)
    key: str = Field("", max_length=128, pattern=NO_NUL)
    openid: str = Field("", max_length=128, pattern=NO_NUL, description="render with this follower's context")
    account: str | None = Field(
        None, max_length=100, pattern=NO_NUL, description="config name of the account"
    )


class Article(BaseModel):
    title: str
    description: str
    url: str
    image: str


class TryAnswer(BaseModel):
    rule: str | None = Field(description="the rule that answers (none: the bot answers 'success')")
    fell_back: bool = Field(description="the rule's template failed and the default reply was used")
    text: str
    articles: list[Article]


@router.get("", response_model=Page[Rule], summary="The bot's reply rules, in the order they are tried")
def rules(settings: SettingsDep, page: PagingDep, _caller: Annotated[Principal, viewer]) -> Any:
    """The enabled rules, highest priority first (as `scrm bot rules`)."""
    rows = rule_rows(settings)
    return page.of(rows)


@router.post("/try", response_model=TryAnswer, summary="Which rule answers a message, and its reply")
def try_message(
    body: TryMessage, settings: SettingsDep, store: StoreDep, _caller: Annotated[Principal, viewer]
) -> Any:
    """The rule that answers the message or event now and the reply it renders (as `scrm bot try`);
    nothing is stored or sent."""
    return try_rules(settings, store, **body.model_dump())
